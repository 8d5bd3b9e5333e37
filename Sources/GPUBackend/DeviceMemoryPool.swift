import InferenceRuntime
import Synchronization

/// Device allocations kept for reuse once the buffers holding them are released: creating and freeing device
/// memory is slow (cuMemAlloc/cuMemFree may synchronize the device), and a session makes a new arena, constant
/// buffers and kernel metadata for every new input shape. Sizes are rounded up to classes, four per doubling
/// (at most 25 % more than asked), and a request is served from a released allocation of exactly its class.
/// At most `capacity` bytes stay cached; past it, released memory is freed at once. Reuse is safe because every
/// backend runs its work in one in-order queue (stream): whatever used the memory before was queued earlier.
final class DeviceMemoryPool<Allocation: Sendable>: Sendable {
    struct Statistics: Sendable, Equatable {
        /// Allocations made on the device.
        var created = 0
        /// Requests served from released memory.
        var reused = 0
        /// Bytes released and kept for reuse now.
        var cachedBytes = 0
    }

    private struct State {
        var free: [Int: [Allocation]] = [:]
        var statistics = Statistics()
    }

    let capacity: Int
    private let state = Mutex(State())
    private let release: @Sendable (Allocation) -> Void

    /// - Parameters:
    ///   - capacity: most bytes kept cached.
    ///   - release: frees an allocation on the device.
    init(capacity: Int, release: @escaping @Sendable (Allocation) -> Void) {
        self.capacity = capacity
        self.release = release
    }

    deinit {
        state.withLock { state in
            for allocations in state.free.values { for allocation in allocations { release(allocation) } }
        }
    }

    /// The size class of a request: 256-byte minimum, then four classes per power of two.
    static func sizeClass(_ bytes: Int) -> Int {
        let n = max(bytes, 256)
        let power = 1 << (Int.bitWidth - 1 - n.leadingZeroBitCount)
        let step = max(power / 4, 256)
        return (n + step - 1) / step * step
    }

    /// A released allocation of `bytes`' class, else one made by `create` (given the class size). When the device
    /// is out of memory (`create` throws `RuntimeError.outOfMemory`), the cache is freed and `create` tried once more.
    func allocate(bytes: Int, create: (Int) throws -> Allocation) throws -> (allocation: Allocation, classBytes: Int) {
        let classBytes = Self.sizeClass(bytes)
        let cached: Allocation? = state.withLock { state in
            guard let allocation = state.free[classBytes]?.popLast() else { return nil }
            state.statistics.reused += 1
            state.statistics.cachedBytes -= classBytes
            return allocation
        }
        if let cached { return (cached, classBytes) }
        let allocation: Allocation
        do {
            allocation = try create(classBytes)
        } catch RuntimeError.outOfMemory {
            trim()
            allocation = try create(classBytes)
        }
        state.withLock { $0.statistics.created += 1 }
        return (allocation, classBytes)
    }

    /// Takes back an allocation whose buffer was released: cached while under capacity, else freed.
    func recycle(_ allocation: Allocation, classBytes: Int) {
        let kept = state.withLock { state in
            guard state.statistics.cachedBytes + classBytes <= capacity else { return false }
            state.free[classBytes, default: []].append(allocation)
            state.statistics.cachedBytes += classBytes
            return true
        }
        if !kept { release(allocation) }
    }

    /// Frees every cached allocation.
    func trim() {
        let all = state.withLock { state in
            let all = state.free.values.flatMap { $0 }
            state.free = [:]
            state.statistics.cachedBytes = 0
            return all
        }
        for allocation in all { release(allocation) }
    }

    var statistics: Statistics { state.withLock { $0.statistics } }

    /// The cache limit: INFERENCE_GPU_POOL_MB mebibytes (0 turns caching off), 1 GiB by default.
    static func capacity(environment: [String: String]) -> Int {
        guard let text = environment["INFERENCE_GPU_POOL_MB"], let megabytes = Int(text), megabytes >= 0 else {
            return 1 << 30
        }
        return megabytes.multipliedReportingOverflow(by: 1 << 20).overflow ? Int.max : megabytes << 20
    }

    /// One configuration line: what the pool did so far.
    var summary: String {
        let s = statistics
        return
            "device memory pool: \(s.created) allocations made, \(s.reused) reused, "
            + "\(s.cachedBytes >> 10) KiB cached (limit \(capacity >> 20) MiB)"
    }
}
