/// A small, fast, seedable generator (Steele et al.'s SplitMix64): builtin weights the same on every machine,
/// reproducible bootstrap resamples and load schedules, generated inputs without a system call per draw.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Floats uniform in [-bound, bound), from the top 24 bits of each draw.
    public mutating func uniform(count: Int, bound: Float) -> [Float] {
        (0..<count).map { _ in (Float(next() >> 40) / Float(1 << 24) * 2 - 1) * bound }
    }
}
