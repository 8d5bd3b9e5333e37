import CKernels
import CPUBackend
import Foundation
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import Testing

/// The 8-bit integer GEMM on the path this process dispatches to (scripts/test runs the suite per ISA), exact
/// against the scalar reference for every signedness, zero-point form and tail shape.
struct IntegerGemmTests {
    struct Case: CustomStringConvertible, Sendable {
        var m: Int, n: Int, k: Int
        var aSigned: Bool, bSigned: Bool
        var description: String { "\(m)x\(n)x\(k) a\(aSigned ? "s8" : "u8") b\(bSigned ? "s8" : "u8")" }
    }

    static let cases: [Case] = {
        var cases: [Case] = []
        let shapes = [
            (1, 1, 1), (1, 17, 3), (3, 8, 4), (9, 33, 7), (8, 16, 64), (17, 49, 130), (5, 100, 1), (64, 64, 257),
        ]
        for (index, (m, n, k)) in shapes.enumerated() {
            for signs in [(false, true), (true, true), (false, false), (true, false)] {
                if index % 2 == 0 || signs == (false, true) {
                    cases.append(Case(m: m, n: n, k: k, aSigned: signs.0, bSigned: signs.1))
                }
            }
        }
        return cases
    }()

    @Test(arguments: cases)
    func packedMatchesReference(_ c: Case) {
        var generator = SystemRandomNumberGenerator()
        let a = (0..<(c.m * c.k)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let b = (0..<(c.k * c.n)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        // Extremes included: zero points at the ends of the range make the largest products.
        let aZero = (0..<c.m).map { _ in Int32(c.aSigned ? Int.random(in: -128...127) : Int.random(in: 0...255)) }
        let bZero = (0..<c.n).map { j in
            j % 3 == 0
                ? Int32(c.bSigned ? -128 : 255)
                : Int32(c.bSigned ? Int.random(in: -128...127) : Int.random(in: 0...255))
        }
        var expected = [Int32](repeating: 0, count: c.m * c.n)
        ck_qgemm_reference(
            c.m, c.n, c.k, a, c.k, c.aSigned ? 1 : 0, aZero, b, c.n, c.bSigned ? 1 : 0, bZero, &expected, c.n)

        var packedB = [UInt8](repeating: 0, count: ck_qgemm_packed_b_bytes(c.k, c.n))
        var columnSums = [Int32](repeating: 0, count: c.n)
        ck_qgemm_pack_b(c.k, c.n, b, c.n, c.bSigned ? 1 : 0, &packedB, &columnSums)
        var packedA = [UInt8](repeating: 0, count: ck_qgemm_packed_a_bytes(c.m, c.k))
        var rowSums = [Int32](repeating: 0, count: c.m)
        ck_qgemm_pack_a(c.m, c.k, a, c.k, c.aSigned ? 1 : 0, &packedA, &rowSums)
        let shiftedA = aZero.map { $0 - (c.aSigned ? 0 : 128) }
        let shiftedB = bZero.map { $0 + (c.bSigned ? 128 : 0) }
        var actual = [Int32](repeating: -1, count: c.m * c.n)
        let width = ck_qgemm_panel_width()
        let panels = (c.n + width - 1) / width
        // Two calls over disjoint panel ranges, as two threads would make them.
        let split = panels / 2
        for (begin, end) in [(0, split), (split, panels)] {
            ck_qgemm_packed(
                c.m, c.n, c.k, packedA, rowSums, shiftedA, packedB, columnSums, shiftedB, &actual, c.n, begin, end)
        }
        #expect(actual == expected, "\(c) on \(String(cString: ck_qgemm_path()))")
    }

    @Test func pathMatchesTheKernelISA() {
        let path = String(cString: ck_qgemm_path())
        let isa = String(cString: ck_kernel_isa())
        switch isa {
        case "generic": #expect(path == "generic")
        case "avx2": #expect(path == "avx2")
        default: #expect(path == "avx512-vnni" || path == "avx2")
        }
    }
}

/// The C conversions of the float16/bfloat16 paths agree with Swift's own rounding, edge cases included.
/// The requantization of int32 sums on this process's path (8 doubles per vector with AVX-512, 4 with AVX2, the
/// scalar loop for tails and the generic path): equal to the double-precision formula for every bias form
/// (per element, one for all, none), per-element or shared multipliers, either output sign, the clamps, and a sum
/// plus bias that wraps.
struct RequantizeTests {
    @Test(arguments: [false, true]) func matchesTheFormula(_ signed: Bool) {
        var rng = SplitMix64(seed: 7)
        let n = 77
        var acc = (0..<n).map { _ in Int32(truncatingIfNeeded: Int(rng.next() % 400_000) - 200_000) }
        acc[3] = Int32.max - 5
        var multipliers = (0..<n).map { _ in Double(Float(rng.next() % 1000) / 997_000) }
        // Products on a half exactly (ties to even) and a hair either side of one (the float path must defer to
        // double there), sums past 2^24, and products past the clamps.
        for i in 40..<56 {
            acc[i] = Int32(2 * (i - 40) + 1) * (i % 2 == 0 ? 1 : -1)
            multipliers[i] = 0.5
        }
        for i in 56..<64 { (acc[i], multipliers[i]) = (Int32(201 + 2 * i), Double(Float(0.5) + Float(0.5).ulp)) }
        for i in 64..<72 { (acc[i], multipliers[i]) = (Int32(16_777_217 + 3 * i), Double(Float(1) / 4_096)) }
        for i in 72..<77 { (acc[i], multipliers[i]) = (Int32(1 << 30), Double(Float(0.001))) }
        let bias = (0..<n).map { _ in Int32(truncatingIfNeeded: Int(rng.next() % 20_000) - 10_000) }
        let (zero, low, high): (Double, Double, Double) = signed ? (3, -128, 127) : (128, 0, 255)
        for perColumn in [false, true] {
            for biasStep in [-1, 0, 1] {
                var got = [UInt8](repeating: 0, count: n)
                acc.withUnsafeBufferPointer { a in
                    multipliers.withUnsafeBufferPointer { m in
                        bias.withUnsafeBufferPointer { b in
                            got.withUnsafeMutableBytes { y in
                                ck_requantize(
                                    a.baseAddress, n, m.baseAddress, perColumn ? 1 : 0,
                                    biasStep < 0 ? nil : b.baseAddress, Int32(max(biasStep, 0)), zero, low, high,
                                    y.baseAddress, signed ? 1 : 0)
                            }
                        }
                    }
                }
                for i in 0..<n {
                    let addend = biasStep < 0 ? 0 : bias[biasStep == 1 ? i : 0]
                    let sum = Double(acc[i] &+ addend)
                    let v = min(max((sum * multipliers[perColumn ? i : 0]).rounded(.toNearestOrEven) + zero, low), high)
                    let want = signed ? UInt8(bitPattern: Int8(v)) : UInt8(v)
                    #expect(got[i] == want, "element \(i), perColumn \(perColumn), bias step \(biasStep)")
                }
            }
        }
    }
}

/// QuantizeLinear and DequantizeLinear on this process's path (16 lanes with AVX-512, 8 with AVX2, scalar tails and
/// the generic path): equal to the formulas for ties, NaN, infinities and values past both ends of the range.
struct QuantizeTests {
    @Test(arguments: [false, true]) func matchesTheFormulas(_ signed: Bool) {
        let scale: Float = 0.25
        var x: [Float] = (0..<45).map { Float($0) * 0.3125 - 7 }
        x += [0.125, 0.375, -0.125, -0.375, .nan, .infinity, -.infinity, 1e9, -1e9, 31.875, -32.125]
        let (zero, low, high): (Int32, Int32, Int32) = signed ? (-3, -128, 127) : (130, 0, 255)
        var q = [UInt8](repeating: 0, count: x.count)
        q.withUnsafeMutableBytes { ck_quantize_f32(x, x.count, scale, zero, low, high, $0.baseAddress, signed ? 1 : 0) }
        for (i, v) in x.enumerated() {
            let r = (v / scale).rounded(.toNearestOrEven) + Float(zero)
            let clamped = r.isNaN ? Float(low) : min(max(r, Float(low)), Float(high))
            let want = signed ? UInt8(bitPattern: Int8(clamped)) : UInt8(clamped)
            #expect(q[i] == want, "quantize \(v): \(q[i]), expected \(want)")
        }
        var back = [Float](repeating: 0, count: q.count)
        q.withUnsafeBytes { ck_dequantize_8($0.baseAddress, signed ? 1 : 0, q.count, zero, scale, &back) }
        for (i, byte) in q.enumerated() {
            let value = signed ? Float(Int8(bitPattern: byte)) : Float(byte)
            #expect(back[i] == (value - Float(zero)) * scale, "dequantize \(byte)")
        }
    }
}

struct NarrowFloatConversionTests {
    static let edges: [Float] = [
        0, -0, 1, -2.5, 65504, 65520, 1e-8, 6e-8, -6.1e-5, .infinity, -.infinity, .nan, .greatestFiniteMagnitude,
        Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x3F80_8001),
        Float(bitPattern: 0x0000_0001), 3.14159, -123456.789,
    ]

    @Test func bfloat16MatchesSwift() {
        var bits = [UInt16](repeating: 0, count: Self.edges.count)
        ck_convert_f32_bf16(Self.edges, Self.edges.count, &bits)
        for (value, got) in zip(Self.edges, bits) {
            let want = BFloat16(value)
            #expect(value.isNaN ? BFloat16(bitPattern: got).float.isNaN : got == want.bitPattern, "\(value)")
        }
        var back = [Float](repeating: 0, count: bits.count)
        ck_convert_bf16_f32(bits, bits.count, &back)
        for (got, b) in zip(back, bits) {
            let want = BFloat16(bitPattern: b).float
            #expect(got.bitPattern == want.bitPattern || (got.isNaN && want.isNaN))
        }
    }

    @Test func float16MatchesSwift() {
        var bits = [UInt16](repeating: 0, count: Self.edges.count)
        ck_convert_f32_f16(Self.edges, Self.edges.count, &bits)
        for (value, got) in zip(Self.edges, bits) {
            let want = Float16(value)
            #expect(value.isNaN ? Float16(bitPattern: got).isNaN : got == want.bitPattern, "\(value)")
        }
        var back = [Float](repeating: 0, count: bits.count)
        ck_convert_f16_f32(bits, bits.count, &back)
        for (got, b) in zip(back, bits) {
            let want = Float(Float16(bitPattern: b))
            #expect(got.bitPattern == want.bitPattern || (got.isNaN && want.isNaN))
        }
    }
}

/// A ConvInteger whose window times output positions would need a terabyte of columns is an error naming the node,
/// not an overflow or an allocation the machine cannot make (the tensors themselves are a few MiB).
struct IntegerConvolutionLimitTests {
    @Test func hugeColumnMatrixIsAnError() throws {
        let height = 1 << 21, kernel = 1 << 20
        let graph = Graph(
            name: "huge", inputs: [ValueInfo(name: "x", dtype: .uint8, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .int32, dimensions: nil)],
            nodes: [Node(name: "conv", opType: "ConvInteger", inputs: ["x", "w"], outputs: ["y"])],
            initializers: ["w": try Tensor(zeros: .uint8, shape: Shape([1, 1, kernel, 1]))])
        let session = try Session(graph: graph, backend: CPUBackend(threads: 1))
        let x = try Tensor(zeros: .uint8, shape: Shape([1, 1, height, 1]))
        #expect {
            _ = try session.run([NamedTensor(name: "x", tensor: x)])
        } throws: { error in
            String(describing: error).contains("too large") && String(describing: error).contains("conv")
        }
    }
}

/// QLinearConv over planes wide enough for many column chunks (each requantized right after its GEMM, by the thread
/// that summed it), on one and two threads: equal to the formula computed here for a pointwise and a padded 3x3
/// convolution with per-channel weight scales and zero points of zero, an int32 bias and a Relu-free clamp.
struct QLinearConvChunkTests {
    @Test(arguments: [1, 3]) func chunkedRequantizationMatchesTheFormula(_ kernel: Int) throws {
        try check(channels: 16, filters: 24, kernel: kernel, stride: 1, height: 40, width: 45)
    }

    /// The panels packed straight from the padded image (`ck_qgemm_pack_conv_panels`, where VNNI runs; the im2col
    /// matrix elsewhere): a 7x7 stride-2 stem over 3 channels (K = 147, not a multiple of 4), 3x3 over a 7x9 plane
    /// (every panel spans output rows), 5x5, grouped stride 2 over an even width, a 1x1 window at stride 2; 40
    /// filters over six panels (two threads split the rows) and K = 576 (the GEMM's panel-pair-outer order).
    /// [channels, filters, kernel, stride, height, width, group]
    @Test(arguments: [
        [3, 4, 7, 2, 37, 53, 1], [16, 8, 3, 1, 7, 9, 1], [5, 12, 5, 1, 13, 15, 1], [6, 10, 3, 2, 17, 16, 2],
        [3, 16, 1, 2, 20, 21, 1], [8, 40, 3, 1, 9, 9, 1], [64, 24, 3, 1, 20, 20, 1], [16, 8, 3, 1, 5, 6, 1],
        [4, 8, 3, 2, 15, 16, 1],
    ]) func directPackingMatchesTheFormula(_ c: [Int]) throws {
        try check(channels: c[0], filters: c[1], kernel: c[2], stride: c[3], height: c[4], width: c[5], group: c[6])
    }

    /// int8 images (the packers flip their sign bit): pointwise, 3x3 at both strides, a plane narrower than a panel.
    @Test(arguments: [[16, 24, 1, 1, 30, 31], [8, 40, 3, 1, 9, 9], [12, 20, 3, 2, 19, 22], [16, 8, 3, 1, 5, 6]])
    func signedInputMatchesTheFormula(_ c: [Int]) throws {
        try check(
            channels: c[0], filters: c[1], kernel: c[2], stride: c[3], height: c[4], width: c[5], signedInput: true)
    }

    /// int8 outputs (the tiles' requantization stores signed bytes), a pointwise and a 3x3 layer, rows split across
    /// two threads (40 filters over few panels) and panels split (24 filters over many).
    @Test(arguments: [[16, 24, 1, 1, 30, 31], [8, 40, 3, 1, 9, 9], [12, 20, 3, 2, 19, 22]])
    func signedOutputMatchesTheFormula(_ c: [Int]) throws {
        try check(
            channels: c[0], filters: c[1], kernel: c[2], stride: c[3], height: c[4], width: c[5], signedOutput: true)
    }

    /// The path an ungrouped QLinearConv of these test sizes takes here: the in-place windows where AVX-512 VNNI runs
    /// (weights centred: zero point 0 once signed; stride 1 or 2), or on AVX2 without VNNI at stride 1 with at most
    /// 128 channel pairs per window or 64 channels (`PairIntegerConv`; any zero points); im2col elsewhere.
    static func path(channels: Int, kernel: Int, stride: Int, centered: Bool) -> String {
        if ck_qconv4_available() != 0, centered, stride <= 2 { return "IntegerConvKernel (windows in place)" }
        if ck_qconv2_available() != 0, stride == 1, (channels + 1) / 2 * kernel * kernel <= 128 || channels <= 64 {
            return "IntegerConvKernel (windows in place)"
        }
        return "IntegerConvKernel (im2col)"
    }

    /// Windows read in place (`QuadIntegerConv` where AVX-512 VNNI runs, `PairIntegerConv` on AVX2 at stride 1;
    /// im2col elsewhere): two blocks of filters, the last partial (100 = 64 + 36: a panel of 4), a filter count under
    /// one panel, positions over several blocks with a partial last tile, 1x1 over one unpadded plane, stride 2,
    /// channels off the quads and pairs (5, 7).
    /// [channels, filters, kernel, stride, height, width]
    @Test(arguments: [
        [8, 100, 3, 1, 11, 13], [7, 5, 3, 1, 23, 19], [5, 70, 1, 1, 17, 9], [12, 66, 3, 2, 14, 15],
        [64, 64, 1, 1, 7, 7],
    ]) func windowsInPlaceMatchTheFormula(_ c: [Int]) throws {
        let path = Self.path(channels: c[0], kernel: c[2], stride: c[3], centered: true)
        try check(
            channels: c[0], filters: c[1], kernel: c[2], stride: c[3], height: c[4], width: c[5], expect: path)
        try check(
            channels: c[0], filters: c[1], kernel: c[2], stride: c[3], height: c[4], width: c[5], signedInput: true,
            expect: path)
    }

    /// The AVX2 windows (`PairIntegerConv`; the other paths elsewhere): the image less its zero point and the
    /// weights less theirs (per filter, uint8 off 128), rows narrower than a vector (width 5: outputs stored one by
    /// one), a 1x1 layer whose padded row is the output's (stores across rows), 5x5, filters off the 6-filter tiles
    /// (13), int8 images and outputs, two threads; 300 channels at 1x1 (150 pairs per window) stay on im2col.
    /// [channels, filters, kernel, height, width]
    @Test(arguments: [
        [7, 13, 3, 9, 5], [9, 20, 1, 6, 11], [6, 11, 5, 12, 17], [64, 6, 3, 5, 40], [300, 8, 1, 4, 9],
    ]) func pairWindowsMatchTheFormula(_ c: [Int]) throws {
        let path = Self.path(channels: c[0], kernel: c[2], stride: 1, centered: false)
        try check(
            channels: c[0], filters: c[1], kernel: c[2], stride: 1, height: c[3], width: c[4], weightZeros: true,
            expect: path)
        try check(
            channels: c[0], filters: c[1], kernel: c[2], stride: 1, height: c[3], width: c[4], weightZeros: true,
            signedOutput: true, signedInput: true, expect: path)
        try check(
            channels: c[0], filters: c[1], kernel: c[2], stride: 1, height: c[3], width: c[4], weightZeros: true,
            unsignedWeights: true, expect: path)
    }

    /// Small layers of seeded random sizes (1-9 channels, 1-14 filters, windows 1x1 to 5x5 over planes of 1-19 rows
    /// and columns, windows larger than the image included): edges of the windows' tiles (fewer than 6 filters, 8 or
    /// 16 positions, rows narrower than a vector) against the formula on every path.
    @Test(arguments: 0..<12) func randomShapesMatchTheFormula(_ seed: Int) throws {
        var rng = SplitMix64(seed: UInt64(1000 + seed))
        let channels = Int(rng.next() % 9) + 1, filters = Int(rng.next() % 14) + 1
        let kernel = [1, 3, 5][Int(rng.next() % 3)]
        let height = Int(rng.next() % 19) + 1, width = Int(rng.next() % 19) + 1
        try check(
            channels: channels, filters: filters, kernel: kernel, stride: 1, height: height, width: width,
            weightZeros: seed % 2 == 0, signedInput: seed % 3 == 0,
            expect: Self.path(channels: channels, kernel: kernel, stride: 1, centered: seed % 2 == 1))
    }

    /// Outputs on a half exactly (to even) and a hair above one, through the windows' requantization (one rounding
    /// of v · m + zero in float, double near halves) and the im2col tiles'.
    @Test(arguments: [1, 3]) func tiesRoundToEven(_ kernel: Int) throws {
        let path = Self.path(channels: 8, kernel: kernel, stride: 1, centered: true)
        try check(channels: 8, filters: 20, kernel: kernel, stride: 1, height: 9, width: 11, ties: true, expect: path)
        try check(
            channels: 8, filters: 20, kernel: kernel, stride: 1, height: 9, width: 11, signedOutput: true, ties: true,
            expect: path)
        try check(
            channels: 8, filters: 20, kernel: kernel, stride: 1, height: 9, width: 11, weightZeros: true, ties: true,
            expect: Self.path(channels: 8, kernel: kernel, stride: 1, centered: false))
    }

    /// uint8 weights: zero point 128 is 0 once signed (windows in place where VNNI runs); any other zero point, and
    /// per-filter zero points, take the im2col path there (and the AVX2 windows at stride 1).
    @Test(arguments: [true, false]) func unsignedWeightsMatchTheFormula(_ centered: Bool) throws {
        try check(
            channels: 9, filters: 20, kernel: 3, stride: 1, height: 10, width: 12, weightZeros: !centered,
            unsignedWeights: true, expect: Self.path(channels: 9, kernel: 3, stride: 1, centered: centered))
        try check(
            channels: 9, filters: 20, kernel: 3, stride: 2, height: 10, width: 12, weightZeros: true,
            expect: Self.path(channels: 9, kernel: 3, stride: 2, centered: false))
    }

    /// One filter per channel (`IntegerDepthwiseKernel`): odd and even windows, both strides, nonzero weight zero
    /// points per channel, planes with partial vectors.
    @Test(arguments: [(3, 1), (3, 2), (5, 2), (7, 1), (2, 2)]) func depthwiseMatchesTheFormula(
        _ kernel: Int, _ stride: Int
    ) throws {
        try check(
            channels: 20, filters: 20, kernel: kernel, stride: stride, height: 23, width: 37, group: 20,
            weightZeros: true, expect: "IntegerDepthwiseKernel")
    }

    /// 3x3 stride-1 rows of 48 and more: with AVX2 the per-channel form (`dwqp256`), rows converted on their copy
    /// and requantized per vector, partial last vectors; int8 outputs too.
    @Test(arguments: [false, true]) func wideDepthwiseRowsMatchTheFormula(_ signed: Bool) throws {
        try check(
            channels: 12, filters: 12, kernel: 3, stride: 1, height: 9, width: 53, group: 12, weightZeros: true,
            signedOutput: signed, expect: "IntegerDepthwiseKernel")
    }

    func check(
        channels: Int, filters: Int, kernel: Int, stride: Int, height: Int, width: Int, group: Int = 1,
        weightZeros: Bool = false, signedOutput: Bool = false, signedInput: Bool = false, unsignedWeights: Bool = false,
        ties: Bool = false, expect: String = "IntegerConvKernel"
    ) throws {
        var rng = SplitMix64(seed: UInt64(kernel * 10 + stride))
        let pad = kernel / 2, perGroup = channels / group, filtersPerGroup = filters / group
        let (outH, outW) = ((height + 2 * pad - kernel) / stride + 1, (width + 2 * pad - kernel) / stride + 1)
        let (xScale, xZero, yScale): (Float, Int, Float) =
            ties ? (1, signedInput ? -11 : 117, 2) : (0.02, signedInput ? -11 : 117, 0.05)
        // `ties`: small sums times a multiplier of 0.5 (half the filters: every odd sum is a tie) or a hair above
        // it (the float path must defer to double).
        let x = (0..<channels * height * width).map { _ in
            ties
                ? UInt8(truncatingIfNeeded: xZero + Int(rng.next() % 7) - 3) : UInt8(truncatingIfNeeded: rng.next())
        }
        let w = (0..<filters * perGroup * kernel * kernel).map { _ in
            ties ? Int8(Int(rng.next() % 5) - 2) : Int8(truncatingIfNeeded: rng.next() % 255)
        }
        let wZeros = (0..<filters).map { f in weightZeros ? Int8(f % 7 - 3) : 0 }
        let bias = (0..<filters).map { _ in
            ties ? Int32(Int(rng.next() % 7) - 3) : Int32(Int(rng.next() % 20_000) - 10_000)
        }
        let wScales = (0..<filters).map { f in
            ties ? (f % 2 == 0 ? 1 : Float(1).nextUp) : Float(rng.next() % 100 + 1) / 40_000
        }
        let xZeroTensor =
            signedInput
            ? try Tensor(shape: [], scalars: [Int8(xZero)]) : try Tensor(shape: [], scalars: [UInt8(xZero)])
        // The same bytes read as int8 for a signed image.
        let xValue = { (byte: UInt8) -> Int32 in signedInput ? Int32(Int8(bitPattern: byte)) : Int32(byte) }
        let yZero = signedOutput ? -3 : 121
        let yZeroTensor =
            signedOutput
            ? try Tensor(shape: [], scalars: [Int8(yZero)]) : try Tensor(shape: [], scalars: [UInt8(yZero)])
        let graph = Graph(
            name: "qconv", inputs: [ValueInfo(name: "x", dtype: signedInput ? .int8 : .uint8, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: signedOutput ? .int8 : .uint8, dimensions: nil)],
            nodes: [
                Node(
                    opType: "QLinearConv", inputs: ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], outputs: ["y"],
                    attributes: [
                        "pads": .ints([pad, pad, pad, pad]), "strides": .ints([stride, stride]), "group": .int(group),
                    ])
            ],
            initializers: [
                "xs": try Tensor(shape: [], scalars: [xScale]), "xz": xZeroTensor,
                // uint8 weights hold the same values shifted by 128, with the zero point shifted alike.
                "w": unsignedWeights
                    ? try Tensor(shape: [filters, perGroup, kernel, kernel], scalars: w.map { UInt8(Int($0) + 128) })
                    : try Tensor(shape: [filters, perGroup, kernel, kernel], scalars: w),
                "ws": try Tensor(shape: [filters], scalars: wScales),
                "wz": unsignedWeights
                    ? try Tensor(shape: [filters], scalars: wZeros.map { UInt8(Int($0) + 128) })
                    : try Tensor(shape: [filters], scalars: wZeros),
                "ys": try Tensor(shape: [], scalars: [yScale]), "yz": yZeroTensor,
                "b": try Tensor(shape: [filters], scalars: bias),
            ])
        var want = [Int](repeating: 0, count: filters * outH * outW)
        for f in 0..<filters {
            let multiplier = Double((wScales[f] * xScale) / yScale)
            let firstChannel = f / filtersPerGroup * perGroup
            for i in 0..<outH {
                for j in 0..<outW {
                    var sum = Int32(bias[f])
                    for c in 0..<perGroup {
                        for ky in 0..<kernel {
                            for kx in 0..<kernel {
                                let (iy, ix) = (i * stride + ky - pad, j * stride + kx - pad)
                                guard iy >= 0, iy < height, ix >= 0, ix < width else { continue }
                                let xv = xValue(x[((firstChannel + c) * height + iy) * width + ix]) - Int32(xZero)
                                let wv = Int32(w[((f * perGroup + c) * kernel + ky) * kernel + kx]) - Int32(wZeros[f])
                                sum += xv * wv
                            }
                        }
                    }
                    let v = (Double(sum) * multiplier).rounded(.toNearestOrEven) + Double(yZero)
                    want[(f * outH + i) * outW + j] = Int(signedOutput ? min(max(v, -128), 127) : min(max(v, 0), 255))
                }
            }
        }
        let feeds = [
            NamedTensor(
                name: "x",
                tensor: signedInput
                    ? try Tensor(shape: [1, channels, height, width], scalars: x.map { Int8(bitPattern: $0) })
                    : try Tensor(shape: [1, channels, height, width], scalars: x))
        ]
        for threads in [1, 2] {
            let session = try Session(graph: graph, backend: CPUBackend(threads: threads))
            let kernels = try session.prepare(feeds).steps.map(\.implementation)
            #expect(kernels.contains { $0.hasPrefix(expect) }, "\(kernels)")
            let got = try session.run(feeds).outputs[0].tensor
            #expect(got.shape == [1, filters, outH, outW])
            let values =
                signedOutput
                ? try got.scalars(as: Int8.self).map(Int.init) : try got.scalars(as: UInt8.self).map(Int.init)
            let wrong = zip(values, want).filter { $0 != $1 }.count
            #expect(
                wrong == 0,
                "\(kernel)x\(kernel) s\(stride) g\(group), \(threads) threads: \(wrong) of \(want.count) differ")
        }
    }
}

/// A depthwise QLinearConv whose weight zero point has neither one value nor one per channel is an error naming the
/// node and the input, not a read past the zero points.
struct IntegerDepthwiseErrorTests {
    @Test func weightZeroPointOfTheWrongLengthIsAnError() throws {
        let channels = 8
        let graph = Graph(
            name: "dw", inputs: [ValueInfo(name: "x", dtype: .uint8, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .uint8, dimensions: nil)],
            nodes: [
                Node(
                    name: "dwq", opType: "QLinearConv", inputs: ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"],
                    outputs: ["y"], attributes: ["group": .int(channels), "pads": .ints([1, 1, 1, 1])])
            ],
            initializers: [
                "xs": try Tensor(shape: [], scalars: [Float(0.1)]), "xz": try Tensor(shape: [], scalars: [UInt8(3)]),
                "w": try Tensor(shape: [channels, 1, 3, 3], scalars: [Int8](repeating: 1, count: channels * 9)),
                "ws": try Tensor(shape: [], scalars: [Float(0.01)]),
                "wz": try Tensor(shape: [3], scalars: [Int8](repeating: 0, count: 3)),
                "ys": try Tensor(shape: [], scalars: [Float(0.2)]), "yz": try Tensor(shape: [], scalars: [UInt8(0)]),
            ])
        let x = try Tensor(shape: [1, channels, 6, 6], scalars: [UInt8](repeating: 9, count: channels * 36))
        #expect {
            _ = try Session(graph: graph, backend: CPUBackend(threads: 1)).run([NamedTensor(name: "x", tensor: x)])
        } throws: { error in
            let text = String(describing: error)
            return text.contains("dwq") && text.contains("w_zero_point")
        }
    }
}

/// Dynamic quantization's MatMulInteger → Cast(float) → Mul(scale) plans into one `_ScaledMatMulInteger` that
/// converts and scales in the GEMM's store: the same bits as the three nodes run apart (fusion off), for a scale
/// per column (DynamicQuantizeLinear's scale times per-column weight scales, as `quantize_dynamic` and
/// `--precision int8` write it) and one constant scale, signed and unsigned weights with zero points, a batched A,
/// widths with partial panels, one and two threads. A scale per row (shape [M, 1], `scales` 0) is left unfused.
struct ScaledMatMulIntegerTests {
    static func graph(
        m: Int, k: Int, n: Int, signed: Bool, scales: Int, constantScale: Bool, centred: Bool = false
    ) throws -> Graph {
        var nodes = [
            Node(name: "dql", opType: "DynamicQuantizeLinear", inputs: ["x"], outputs: ["xq", "xs", "xz"]),
            Node(name: "mmi", opType: "MatMulInteger", inputs: ["xq", "w", "xz", "wz"], outputs: ["acc"]),
            Node(name: "cast", opType: "Cast", inputs: ["acc"], outputs: ["accf"], attributes: ["to": .int(1)]),
        ]
        if constantScale {
            nodes.append(Node(name: "rescale", opType: "Mul", inputs: ["ws", "accf"], outputs: ["y"]))
        } else {
            nodes.append(Node(name: "scale", opType: "Mul", inputs: ["xs", "ws"], outputs: ["s"]))
            nodes.append(Node(name: "rescale", opType: "Mul", inputs: ["accf", "s"], outputs: ["y"]))
        }
        let bytes = (0..<(k * n)).map { _ in UInt8.random(in: 0...255) }
        let weights =
            signed
            ? try Tensor(shape: Shape([k, n]), scalars: bytes.map { Int8(bitPattern: $0) })
            : try Tensor(shape: Shape([k, n]), scalars: bytes)
        let zero =
            signed
            ? try Tensor(shape: Shape([]), scalars: [Int8(centred ? 0 : -3)])
            : try Tensor(shape: Shape([]), scalars: [UInt8(centred ? 128 : 131)])
        return Graph(
            name: "dynamic",
            inputs: [ValueInfo(name: "x", dtype: .float32, dimensions: [.fixed(2), .fixed(m), .fixed(k)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)], nodes: nodes,
            initializers: [
                "w": weights, "wz": zero,
                "ws": try Tensor(
                    shape: Shape(scales == 0 ? [m, 1] : [scales]),
                    scalars: (0..<(scales == 0 ? m : scales)).map { _ in Float.random(in: 1e-3...2e-2) }),
            ])
    }

    @Test(arguments: [(37, 70, 33, false, 33), (64, 128, 100, true, 1), (5, 40, 17, true, 17), (9, 24, 40, false, 0)])
    func fusedMatchesTheThreeNodes(_ m: Int, _ k: Int, _ n: Int, _ signed: Bool, _ scales: Int) throws {
        for constantScale in [false, true] {
            let graph = try Self.graph(m: m, k: k, n: n, signed: signed, scales: scales, constantScale: constantScale)
            let x = try Tensor(
                shape: Shape([2, m, k]), scalars: (0..<(2 * m * k)).map { _ in Float.random(in: -3...3) })
            let plan = try ExecutionPlan(
                graph: graph, inputTypes: ["x": TensorType(dtype: .float32, shape: Shape([2, m, k]))],
                evaluator: CPUBackend(), fusion: CPUBackend().fusion)
            let fused = plan.steps.contains { $0.node.opType == QuantizedFusion.scaledMatMulInteger }
            #expect(fused == (scales != 0), "\(plan.steps.map(\.node.opType))")
            let reference = try Session(graph: graph, backend: CPUBackend(threads: 1, fuses: false))
                .run([NamedTensor(name: "x", tensor: x)]).outputs[0].tensor.scalars(as: Float.self)
            for threads in [1, 2] {
                let got = try Session(graph: graph, backend: CPUBackend(threads: threads))
                    .run([NamedTensor(name: "x", tensor: x)]).outputs[0].tensor.scalars(as: Float.self)
                #expect(
                    got.map(\.bitPattern) == reference.map(\.bitPattern),
                    "\(m)x\(k)x\(n) signed \(signed) scales \(scales) constant \(constantScale) threads \(threads)")
            }
        }
    }
}

/// Rows read in place (`QuadIntegerConv` as a 1x1 layer, where AVX-512 VNNI runs; packed rows elsewhere): weights
/// whose zero point is 0 once signed (int8 0, uint8 128), K a multiple of 4; MatMulInteger with its scale (the same
/// bits as the three nodes) and QLinearMatMul (the formula), over two batches of rows, N off the panel width, one row.
struct MatMulRowsInPlaceTests {
    static var path: String {
        ck_qconv4_available() != 0 ? "IntegerMatMulKernel (rows in place)" : "IntegerMatMulKernel (packed rows)"
    }

    @Test(arguments: [(37, 68, 33, false, 33), (64, 128, 100, true, 1), (1, 40, 17, true, 17), (9, 24, 70, false, 70)])
    func scaledMatchesTheThreeNodes(_ m: Int, _ k: Int, _ n: Int, _ signed: Bool, _ scales: Int) throws {
        let graph = try ScaledMatMulIntegerTests.graph(
            m: m, k: k, n: n, signed: signed, scales: scales, constantScale: true, centred: true)
        // Inputs of other ranges in one session: each run's dynamic zero point and scale (the folded bias is kept
        // while the zero point stays, formed again when it changes).
        let inputs = try [(-3, 3), (-3, 3), (0, 5), (-6, 1)].map { (low: Float, high: Float) in
            [
                NamedTensor(
                    name: "x",
                    tensor: try Tensor(
                        shape: Shape([2, m, k]), scalars: (0..<(2 * m * k)).map { _ in Float.random(in: low...high) }))
            ]
        }
        let reference = try Session(graph: graph, backend: CPUBackend(threads: 1, fuses: false))
        for threads in [1, 2] {
            let session = try Session(graph: graph, backend: CPUBackend(threads: threads))
            let kernels = try session.prepare(inputs[0]).steps.map(\.implementation)
            #expect(kernels.contains(Self.path), "\(kernels)")
            for (index, feeds) in inputs.enumerated() {
                let want = try reference.run(feeds).outputs[0].tensor.scalars(as: Float.self)
                let got = try session.run(feeds).outputs[0].tensor.scalars(as: Float.self)
                #expect(
                    got.map(\.bitPattern) == want.map(\.bitPattern), "\(m)x\(k)x\(n) threads \(threads) input \(index)")
            }
        }
    }

    @Test(arguments: [(5, 36, 40, true, false), (33, 64, 70, false, true), (1, 16, 19, true, true)])
    func requantizedMatchesTheFormula(_ m: Int, _ k: Int, _ n: Int, _ signed: Bool, _ relu: Bool) throws {
        var rng = SplitMix64(seed: UInt64(m * k + n))
        let a = (0..<(2 * m * k)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let w = (0..<(k * n)).map { _ in Int(rng.next() % 255) - 127 }
        let bScales = (0..<n).map { _ in Float(rng.next() % 100 + 1) / 20_000 }
        let bias = (0..<n).map { _ in Int32(Int(rng.next() % 4000) - 2000) }
        let (aScale, aZero, yScale, yZero): (Float, Int, Float, Int) = (0.03, 119, 0.05, 101)
        let graph = Graph(
            name: "qmm", inputs: [ValueInfo(name: "a", dtype: .uint8, dimensions: nil)],
            outputs: [ValueInfo(name: "y", dtype: .uint8, dimensions: nil)],
            nodes: [
                Node(
                    name: "mm", opType: "QLinearMatMul",
                    inputs: ["a", "as", "az", "b", "bs", "bz", "ys", "yz", "bias"],
                    outputs: ["y"], attributes: relu ? [QuantizedFusion.reluAttribute: .int(1)] : [:])
            ],
            initializers: [
                "as": try Tensor(shape: [], scalars: [aScale]), "az": try Tensor(shape: [], scalars: [UInt8(aZero)]),
                "b": signed
                    ? try Tensor(shape: [k, n], scalars: w.map { Int8($0) })
                    : try Tensor(shape: [k, n], scalars: w.map { UInt8($0 + 128) }),
                "bs": try Tensor(shape: [n], scalars: bScales),
                "bz": signed
                    ? try Tensor(shape: [n], scalars: [Int8](repeating: 0, count: n))
                    : try Tensor(shape: [n], scalars: [UInt8](repeating: 128, count: n)),
                "ys": try Tensor(shape: [], scalars: [yScale]), "yz": try Tensor(shape: [], scalars: [UInt8(yZero)]),
                "bias": try Tensor(shape: [n], scalars: bias),
            ])
        var want = [UInt8](repeating: 0, count: 2 * m * n)
        for row in 0..<(2 * m) {
            for j in 0..<n {
                var sum = bias[j]
                for i in 0..<k { sum += (Int32(a[row * k + i]) - Int32(aZero)) * Int32(w[i * n + j]) }
                let multiplier = Double((aScale * bScales[j]) / yScale)
                let v = (Double(sum) * multiplier).rounded(.toNearestOrEven) + Double(yZero)
                want[row * n + j] = UInt8(min(max(v, relu ? Double(yZero) : 0), 255))
            }
        }
        let feeds = [NamedTensor(name: "a", tensor: try Tensor(shape: [2, m, k], scalars: a))]
        for threads in [1, 2] {
            let session = try Session(graph: graph, backend: CPUBackend(threads: threads))
            let kernels = try session.prepare(feeds).steps.map(\.implementation)
            #expect(kernels.contains(Self.path), "\(kernels)")
            let got = try session.run(feeds).outputs[0].tensor.scalars(as: UInt8.self)
            let wrong = zip(got, want).filter { $0 != $1 }.count
            #expect(got.count == want.count && wrong == 0, "\(m)x\(k)x\(n), \(threads) threads: \(wrong) differ")
        }
    }
}

/// `_ScaledMatMulInteger` is written by planning, but a model file can name it too: a scale of the wrong length or
/// type, or none, is an error naming the node, not an out-of-bounds read.
struct ScaledMatMulIntegerInputTests {
    @Test(arguments: [2, 0, -1]) func badScaleIsAnError(_ scales: Int) throws {
        let (k, n) = (4, 5)
        var inputs = ["x", "w", "", ""]
        var initializers: [String: Tensor] = [
            "w": try Tensor(shape: Shape([k, n]), scalars: [UInt8](repeating: 3, count: k * n))
        ]
        if scales > 0 {
            inputs.append("s")
            initializers["s"] = try Tensor(shape: Shape([scales]), scalars: [Float](repeating: 0.5, count: scales))
        } else if scales == -1 {
            inputs.append("s")
            initializers["s"] = try Tensor(shape: Shape([n]), scalars: [Int32](repeating: 1, count: n))
        }
        let graph = Graph(
            name: "hostile", inputs: [ValueInfo(name: "x", dtype: .uint8, dimensions: [.fixed(3), .fixed(k)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(name: "scaled", opType: QuantizedFusion.scaledMatMulInteger, inputs: inputs, outputs: ["y"])
            ],
            initializers: initializers)
        let x = try Tensor(shape: Shape([3, k]), scalars: [UInt8](repeating: 7, count: 3 * k))
        #expect {
            _ = try Session(graph: graph, backend: CPUBackend(threads: 1)).run([NamedTensor(name: "x", tensor: x)])
        } throws: { error in
            String(describing: error).contains("scaled")
        }
    }
}

/// Add(DQ(a), DQ(b)) → [Relu] → Q planned into `_QLinearAdd`: the same bytes as the three (or four) nodes unfused,
/// on one and two threads, for unsigned and signed inputs and outputs, same shapes (large enough to split) and
/// broadcast inputs (element by element, and a bias row added to every row a row at a time).
struct QLinearAddFusionTests {
    static func graph(aShape: [Int], bShape: [Int], signed: Bool, relu: Bool) throws -> Graph {
        let byte: DType = signed ? .int8 : .uint8
        func zero(_ value: Int) throws -> Tensor {
            signed
                ? try Tensor(shape: [], scalars: [Int8(value - 128)]) : try Tensor(shape: [], scalars: [UInt8(value)])
        }
        var nodes = [
            Node(name: "dqa", opType: "DequantizeLinear", inputs: ["a", "as", "az"], outputs: ["af"]),
            Node(name: "dqb", opType: "DequantizeLinear", inputs: ["b", "bs", "bz"], outputs: ["bf"]),
            Node(name: "add", opType: "Add", inputs: ["af", "bf"], outputs: [relu ? "sum" : "r"]),
        ]
        if relu { nodes.append(Node(name: "relu", opType: "Relu", inputs: ["sum"], outputs: ["r"])) }
        nodes.append(Node(name: "q", opType: "QuantizeLinear", inputs: ["r", "ys", "yz"], outputs: ["y"]))
        return Graph(
            name: "qadd",
            inputs: [
                ValueInfo(name: "a", dtype: byte, dimensions: aShape.map { .fixed($0) }),
                ValueInfo(name: "b", dtype: byte, dimensions: bShape.map { .fixed($0) }),
            ],
            outputs: [ValueInfo(name: "y", dtype: byte, dimensions: nil)], nodes: nodes,
            initializers: [
                "as": try Tensor(shape: [], scalars: [Float(0.0371)]), "az": try zero(119),
                "bs": try Tensor(shape: [], scalars: [Float(0.0213)]), "bz": try zero(131),
                "ys": try Tensor(shape: [], scalars: [Float(0.0457)]), "yz": try zero(101),
            ],
            opsetImports: ["": 17])
    }

    @Test(arguments: [
        ([1, 4, 128, 130], [1, 4, 128, 130], false, true), ([2, 3, 17, 19], [2, 3, 17, 19], true, false),
        ([2, 3, 5, 7], [3, 1, 1], false, false), ([2, 3, 5, 7], [1, 3, 5, 1], true, true),
        ([4, 6, 33], [33], false, true),
    ])
    func fusedMatchesTheNodes(_ aShape: [Int], _ bShape: [Int], _ signed: Bool, _ relu: Bool) throws {
        let graph = try Self.graph(aShape: aShape, bShape: bShape, signed: signed, relu: relu)
        var rng = SplitMix64(seed: UInt64(aShape.reduce(1, *) + bShape.count))
        func bytes(_ shape: [Int]) throws -> Tensor {
            let count = shape.reduce(1, *)
            return signed
                ? try Tensor(
                    shape: Shape(shape), scalars: (0..<count).map { _ in Int8(truncatingIfNeeded: rng.next()) })
                : try Tensor(
                    shape: Shape(shape), scalars: (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        }
        let feeds = [
            NamedTensor(name: "a", tensor: try bytes(aShape)), NamedTensor(name: "b", tensor: try bytes(bShape)),
        ]
        let byte: DType = signed ? .int8 : .uint8
        let plan = try ExecutionPlan(
            graph: graph,
            inputTypes: [
                "a": TensorType(dtype: byte, shape: Shape(aShape)), "b": TensorType(dtype: byte, shape: Shape(bShape)),
            ],
            evaluator: CPUBackend(), fusion: CPUBackend().fusion)
        #expect(plan.steps.map(\.node.opType) == [QuantizedFusion.qlinearAdd], "\(plan.steps.map(\.node.opType))")
        let reference = try Session(graph: graph, backend: CPUBackend(threads: 1, fuses: false)).run(feeds).outputs[0]
            .tensor
        for threads in [1, 2] {
            let got = try Session(graph: graph, backend: CPUBackend(threads: threads)).run(feeds).outputs[0].tensor
            #expect(got.shape == reference.shape)
            let same =
                signed
                ? try got.scalars(as: Int8.self) == reference.scalars(as: Int8.self)
                : try got.scalars(as: UInt8.self) == reference.scalars(as: UInt8.self)
            #expect(same, "\(aShape) + \(bShape) signed \(signed) relu \(relu), \(threads) threads")
        }
    }
}

/// `_QLinearAdd` is written by planning, but a model file can name it too: a missing output scale, a scale of two
/// values or of int32, or a float input is an error naming the node, not an out-of-bounds read.
struct QLinearAddInputTests {
    @Test(arguments: ["missing", "two", "int32", "float"]) func badInputIsAnError(_ kind: String) throws {
        var inputs = ["a", "s", "z", "b", "s", "z", "ys", "z"]
        var initializers: [String: Tensor] = [
            "s": try Tensor(shape: [], scalars: [Float(0.5)]), "z": try Tensor(shape: [], scalars: [UInt8(3)]),
            "b": try Tensor(shape: [2, 3], scalars: [UInt8](repeating: 9, count: 6)),
            "ys": try Tensor(shape: [], scalars: [Float(0.25)]),
        ]
        switch kind {
        case "missing": inputs = Array(inputs.prefix(6))
        case "two": initializers["ys"] = try Tensor(shape: [2], scalars: [Float(0.25), 0.5])
        case "int32": initializers["ys"] = try Tensor(shape: [], scalars: [Int32(4)])
        default: initializers["b"] = try Tensor(shape: [2, 3], scalars: [Float](repeating: 1, count: 6))
        }
        let graph = Graph(
            name: "hostile", inputs: [ValueInfo(name: "a", dtype: .uint8, dimensions: [.fixed(2), .fixed(3)])],
            outputs: [ValueInfo(name: "y", dtype: .uint8, dimensions: nil)],
            nodes: [Node(name: "qadd", opType: QuantizedFusion.qlinearAdd, inputs: inputs, outputs: ["y"])],
            initializers: initializers)
        let a = try Tensor(shape: [2, 3], scalars: [UInt8](repeating: 7, count: 6))
        #expect {
            _ = try Session(graph: graph, backend: CPUBackend(threads: 1)).run([NamedTensor(name: "a", tensor: a)])
        } throws: { error in
            String(describing: error).contains("qadd")
        }
    }
}

/// DequantizeLinear → depthwise Conv → [Relu] → QuantizeLinear planned into `_QDQDepthwiseConv`: the bytes of the
/// unfused nodes (a backend without fusion) for 3x3 windows over wide rows (the per-channel form) and narrow ones,
/// both strides, 5x5 and 7x7, fewer channels than a block (rows split across threads), int8 image and output, a
/// Relu, no bias, two images, and shapes only the fallback serves (a 1x1 window, dilation 2); 1 and 2 threads.
struct QDQDepthwiseFusionTests {
    struct Case: CustomStringConvertible, Sendable {
        var channels: Int, kernel: Int, stride: Int, height: Int, width: Int
        var signed = false, relu = false, bias = true, batch = 1, dilation = 1
        /// Scales that put many outputs exactly on a half before rounding: every sum a multiple of 0.5 and an output
        /// scale of 7, so y / 7 is a tie for one y in 14, where y · fl(1/7) rounds the other way for 78 of 256 ties
        /// (a multiply by the reciprocal instead of QuantizeLinear's division fails here).
        var ties = false
        var description: String {
            "\(batch)x\(channels)x\(height)x\(width) k\(kernel) s\(stride) d\(dilation)"
                + "\(signed ? " int8" : "")\(relu ? " relu" : "")\(bias ? "" : " no bias")\(ties ? " ties" : "")"
        }
    }

    static let cases: [Case] = [
        Case(channels: 24, kernel: 3, stride: 1, height: 20, width: 60),
        Case(channels: 40, kernel: 3, stride: 2, height: 29, width: 31, relu: true),
        Case(channels: 20, kernel: 5, stride: 1, height: 14, width: 14, signed: true),
        Case(channels: 33, kernel: 5, stride: 2, height: 17, width: 22, bias: false),
        Case(channels: 17, kernel: 7, stride: 1, height: 9, width: 9, relu: true, batch: 2),
        Case(channels: 3, kernel: 3, stride: 1, height: 64, width: 40, signed: true, relu: true),
        Case(channels: 12, kernel: 1, stride: 1, height: 10, width: 11),
        Case(channels: 8, kernel: 3, stride: 1, height: 15, width: 16, dilation: 2),
        Case(channels: 40, kernel: 3, stride: 1, height: 14, width: 14, ties: true),
        Case(channels: 24, kernel: 3, stride: 2, height: 30, width: 61, ties: true),
    ]

    static func graph(_ c: Case) throws -> Graph {
        let byte: DType = c.signed ? .int8 : .uint8
        func zero(_ value: Int) throws -> Tensor {
            c.signed
                ? try Tensor(shape: [], scalars: [Int8(value - 128)]) : try Tensor(shape: [], scalars: [UInt8(value)])
        }
        var rng = SplitMix64(seed: UInt64(c.channels * 31 + c.kernel))
        let taps = c.kernel * c.kernel
        let weights = (0..<c.channels * taps).map { _ in
            c.ties ? Int8(Int(rng.next() % 5) - 2) : Int8(truncatingIfNeeded: rng.next() % 255)
        }
        let pad = c.dilation * (c.kernel / 2)
        var convInputs = ["xf", "wf"]
        var initializers: [String: Tensor] = [
            "xs": try Tensor(shape: [], scalars: [Float(c.ties ? 0.5 : 0.0231)]), "xz": try zero(121),
            "wq": try Tensor(shape: [c.channels, 1, c.kernel, c.kernel], scalars: weights),
            "ws": try Tensor(
                shape: [c.channels], scalars: (0..<c.channels).map { c.ties ? 1 : Float($0 % 5 + 1) / 300 }),
            "wz": try Tensor(shape: [c.channels], scalars: [Int8](repeating: 0, count: c.channels)),
            "ys": try Tensor(shape: [], scalars: [Float(c.ties ? 7 : 0.0419)]), "yz": try zero(97),
        ]
        var nodes = [
            Node(name: "dqx", opType: "DequantizeLinear", inputs: ["x", "xs", "xz"], outputs: ["xf"]),
            Node(
                name: "dqw", opType: "DequantizeLinear", inputs: ["wq", "ws", "wz"], outputs: ["wf"],
                attributes: ["axis": .int(0)]),
        ]
        if c.bias {
            initializers["b"] = try Tensor(
                shape: [c.channels],
                scalars: (0..<c.channels).map { _ in Float(Int(rng.next() % 200) - 100) / (c.ties ? 2 : 50) })
            convInputs.append("b")
        }
        nodes.append(
            Node(
                name: "conv", opType: "Conv", inputs: convInputs, outputs: [c.relu ? "c" : "r"],
                attributes: [
                    "group": .int(c.channels), "pads": .ints([pad, pad, pad, pad]),
                    "strides": .ints([c.stride, c.stride]), "dilations": .ints([c.dilation, c.dilation]),
                ]))
        if c.relu { nodes.append(Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"])) }
        nodes.append(Node(name: "q", opType: "QuantizeLinear", inputs: ["r", "ys", "yz"], outputs: ["y"]))
        return Graph(
            name: "qdqdw",
            inputs: [
                ValueInfo(
                    name: "x", dtype: byte,
                    dimensions: [c.batch, c.channels, c.height, c.width].map { .fixed($0) })
            ],
            outputs: [ValueInfo(name: "y", dtype: byte, dimensions: nil)], nodes: nodes, initializers: initializers,
            opsetImports: ["": 17])
    }

    @Test(arguments: cases) func fusedMatchesTheNodes(_ c: Case) throws {
        let graph = try Self.graph(c)
        var rng = SplitMix64(seed: UInt64(c.height * 7 + c.width))
        let shape = [c.batch, c.channels, c.height, c.width]
        let count = shape.reduce(1, *)
        let x =
            c.signed
            ? try Tensor(shape: Shape(shape), scalars: (0..<count).map { _ in Int8(truncatingIfNeeded: rng.next()) })
            : try Tensor(shape: Shape(shape), scalars: (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        let feeds = [NamedTensor(name: "x", tensor: x)]
        let reference = try Session(graph: graph, backend: CPUBackend(threads: 1, fuses: false)).run(feeds).outputs[0]
            .tensor
        for threads in [1, 2] {
            let session = try Session(graph: graph, backend: CPUBackend(threads: threads))
            let kernels = try session.prepare(feeds).steps.map(\.implementation)
            #expect(kernels.count == 1 && kernels[0].hasPrefix("QDQDepthwiseKernel"), "\(kernels)")
            let got = try session.run(feeds).outputs[0].tensor
            #expect(got.shape == reference.shape)
            let (a, b) =
                c.signed
                ? (try got.scalars(as: Int8.self).map(Int.init), try reference.scalars(as: Int8.self).map(Int.init))
                : (try got.scalars(as: UInt8.self).map(Int.init), try reference.scalars(as: UInt8.self).map(Int.init))
            let wrong = zip(a, b).filter { $0 != $1 }.count
            // Outputs spread over the byte range (a test of the clamps needs both ends reached).
            #expect(Set(a).count > 40, "\(c): \(Set(a).count) distinct outputs")
            #expect(wrong == 0, "\(c), \(threads) threads: \(wrong) of \(a.count) differ")
        }
    }

    /// `_QDQDepthwiseConv` is written by planning, but a model file can name it too: a float image, weights that are
    /// not one filter per channel or a missing output scale are errors naming the node, not a read out of bounds.
    @Test(arguments: ["float", "grouped", "missing", "bias"]) func badInputIsAnError(_ kind: String) throws {
        let image: DType = kind == "float" ? .float32 : .uint8
        var inputs = ["x", "s", "z", "w", kind == "bias" ? "b" : "", "s", "z"]
        if kind == "missing" { inputs = Array(inputs.prefix(5)) }
        let filters = kind == "grouped" ? 8 : 4
        let graph = Graph(
            name: "bad", inputs: [ValueInfo(name: "x", dtype: image, dimensions: [1, 4, 6, 6].map { .fixed($0) })],
            outputs: [ValueInfo(name: "y", dtype: .uint8, dimensions: nil)],
            nodes: [
                Node(
                    name: "dw", opType: QuantizedFusion.qdqDepthwiseConv, inputs: inputs, outputs: ["y"],
                    attributes: ["group": .int(4), "pads": .ints([1, 1, 1, 1])])
            ],
            initializers: [
                "s": try Tensor(shape: [], scalars: [Float(0.5)]), "z": try Tensor(shape: [], scalars: [UInt8(3)]),
                "w": try Tensor(
                    shape: [filters, 1, 3, 3],
                    scalars: [Float](repeating: 0.25, count: filters * 9)),
                "b": try Tensor(shape: [3], scalars: [Float](repeating: 1, count: 3)),
            ],
            opsetImports: ["": 17])
        let x =
            image == .float32
            ? try Tensor(shape: [1, 4, 6, 6], scalars: [Float](repeating: 1, count: 144))
            : try Tensor(shape: [1, 4, 6, 6], scalars: [UInt8](repeating: 1, count: 144))
        do {
            _ = try Session(graph: graph, backend: CPUBackend(threads: 1)).run([NamedTensor(name: "x", tensor: x)])
            Issue.record("\(kind): ran")
        } catch {
            #expect("\(error)".contains("dw"), "\(kind): \(error)")
        }
    }
}
