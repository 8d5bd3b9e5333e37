import CPUBackend
import InferenceGraph
import InferenceRuntime
import InferenceTensor
import InferenceTestSupport
import Testing

@testable import CPUBackend

/// Products of 1024³ multiply-adds and more go to OpenBLAS when it is installed (CI installs Debian's
/// libopenblas0-pthread), split into column blocks over the backend's threads. Sampled outputs are checked against
/// a double-precision sum within the float32 bound; smaller products keep the packed kernel.
@Suite(.enabled(if: RuntimeBLAS.shared != nil, "no OpenBLAS (apt-get install libopenblas0-pthread)"))
struct RuntimeBLASTests {
    /// Checks `samples` entries of y = alpha·op(A)·op(B) + beta·C (C broadcast from [m, 1]), then Relu if asked.
    func check(
        _ y: [Float], a: [Float], b: [Float], c: [Float]?, m: Int, n: Int, k: Int, transA: Bool, transB: Bool,
        alpha: Float, beta: Float, relu: Bool
    ) {
        var actual: [Float] = [], expected: [Double] = [], magnitudes: [Double] = []
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let i = Int.random(in: 0..<m, using: &generator), j = Int.random(in: 0..<n, using: &generator)
            var sum = 0.0, magnitude = 0.0
            for p in 0..<k {
                let term =
                    Double(alpha) * Double(transA ? a[p * m + i] : a[i * k + p])
                    * Double(transB ? b[j * k + p] : b[p * n + j])
                sum += term
                magnitude += abs(term)
            }
            if let c {
                sum += Double(beta) * Double(c[i])
                magnitude += abs(Double(beta) * Double(c[i]))
            }
            actual.append(y[i * n + j])
            expected.append(relu ? max(sum, 0) : sum)
            magnitudes.append(magnitude)
        }
        // One more term (the scaling by alpha) than k.
        let report = ToleranceReport.compareSums(actual, expected, magnitudes: magnitudes, terms: k + 2)
        #expect(report.passed, "\(report)")
    }

    @Test(arguments: [1, 2])
    func matMulOfAConstantGoesToOpenBLAS(threads: Int) throws {
        let (m, n, k) = (1024, 1040, 1024)
        #expect(RuntimeBLAS.handles(m: m, n: n, k: k) && !RuntimeBLAS.handles(m: 512, n: 512, k: 512))
        let a = (0..<(m * k)).map { _ in Float.random(in: -1...1) }
        let b = (0..<(k * n)).map { _ in Float.random(in: -1...1) }
        let graph = Graph(
            name: "matmul", inputs: [ValueInfo(name: "a", dtype: .float32, dimensions: [.fixed(m), .fixed(k)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [Node(name: "product", opType: "MatMul", inputs: ["a", "b"], outputs: ["y"])],
            initializers: ["b": try Tensor(shape: [k, n], scalars: b)], opsetImports: ["": 17])
        let backend = CPUBackend(threads: threads)
        #expect(backend.configuration.contains { $0.contains("OpenBLAS") })
        let session = try Session(graph: graph, backend: backend)
        let before = RuntimeBLAS.products.load(ordering: .relaxed)
        let y = try session.run([NamedTensor(name: "a", tensor: try Tensor(shape: [m, k], scalars: a))]).outputs[0]
        #expect(RuntimeBLAS.products.load(ordering: .relaxed) > before)
        check(
            try y.tensor.scalars(as: Float.self), a: a, b: b, c: nil, m: m, n: n, k: k, transA: false, transB: false,
            alpha: 1, beta: 0, relu: false)
    }

    @Test func gemmWithTransposesBiasAndReluGoesToOpenBLAS() throws {
        let (m, n, k) = (1030, 1024, 1024)
        let a = (0..<(m * k)).map { _ in Float.random(in: -1...1) }
        let b = (0..<(k * n)).map { _ in Float.random(in: -1...1) }
        let c = (0..<m).map { _ in Float.random(in: -4...4) }
        let graph = Graph(
            name: "gemm",
            inputs: [
                ValueInfo(name: "a", dtype: .float32, dimensions: [.fixed(k), .fixed(m)]),
                ValueInfo(name: "b", dtype: .float32, dimensions: [.fixed(n), .fixed(k)]),
            ],
            outputs: [ValueInfo(name: "y", dtype: .float32, dimensions: nil)],
            nodes: [
                Node(
                    name: "gemm", opType: "Gemm", inputs: ["a", "b", "c"], outputs: ["g"],
                    attributes: [
                        "transA": .int(1), "transB": .int(1), "alpha": .float(0.5), "beta": .float(2),
                    ]),
                Node(name: "relu", opType: "Relu", inputs: ["g"], outputs: ["y"]),
            ],
            initializers: ["c": try Tensor(shape: [m, 1], scalars: c)], opsetImports: ["": 17])
        let session = try Session(graph: graph, backend: CPUBackend(threads: 2))
        let before = RuntimeBLAS.products.load(ordering: .relaxed)
        let y = try session.run([
            NamedTensor(name: "a", tensor: try Tensor(shape: [k, m], scalars: a)),
            NamedTensor(name: "b", tensor: try Tensor(shape: [n, k], scalars: b)),
        ]).outputs[0]
        #expect(RuntimeBLAS.products.load(ordering: .relaxed) > before)
        check(
            try y.tensor.scalars(as: Float.self), a: a, b: b, c: c, m: m, n: n, k: k, transA: true, transB: true,
            alpha: 0.5, beta: 2, relu: true)
    }

    /// A 2x3 · 3x2 product (then transposed operands) through a loaded library's binding, checked exactly.
    func multiplies(_ blas: RuntimeBLAS) {
        let a: [Float] = [1, 2, 3, 4, 5, 6], b: [Float] = [7, 8, 9, 10, 11, 12]
        var c = [Float](repeating: 1, count: 4)
        blas.sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 1, &c, 2)
        #expect(c == [59, 65, 140, 155])
        // Aᵀ·Bᵀ with A stored 3x2 and B 2x3 (the same numbers read the other way), alpha 2, beta 0.
        blas.sgemm(true, true, 2, 2, 3, 2, [1, 4, 2, 5, 3, 6], 2, [7, 9, 11, 8, 10, 12], 3, 0, &c, 2)
        #expect(c == [116, 128, 278, 308])
    }

    @Test func searchOrderAndBindings() throws {
        #expect(RuntimeBLAS.load(environment: ["INFERENCE_BLAS": "0"]) == nil)
        let found = try #require(RuntimeBLAS.shared)
        multiplies(found)
        // A library that is not a BLAS, or one that does not exist, is passed over for the next candidate.
        #expect(RuntimeBLAS.load(environment: ["INFERENCE_BLAS": "libz.so.1"])?.path == found.path)
        #expect(RuntimeBLAS.load(environment: ["INFERENCE_BLAS": "/nonexistent/libblas.so"])?.path == found.path)
        // numpy's OpenBLAS (64-bit integers, prefixed and suffixed symbols) where the virtualenv has one.
        let venv = TestEnvironment.packageRoot.appendingPathComponent(".venv").path
        if let numpy = RuntimeBLAS.numpyOpenBLAS(in: venv).first {
            let blas = try #require(RuntimeBLAS.load(environment: ["INFERENCE_BLAS": numpy]))
            #expect(blas.path == numpy)
            multiplies(blas)
        } else if TestEnvironment.pythonRequired {
            Issue.record("numpy's OpenBLAS not found in \(venv)")
        }
    }
}
