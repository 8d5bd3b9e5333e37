import Testing

@testable import GPUBackend

/// The row-major → column-major mapping of the cuBLAS calls, checked without a GPU: a reference column-major
/// SGEMM with cuBLAS's exact semantics (op, leading dimensions, strided batches) runs the computed call on host
/// memory and must give the row-major product, for every transpose combination and shared or strided batches.
struct CUBLASMappingTests {
    /// cublasSgemmStridedBatched's definition, on host pointers carried as addresses.
    func referenceColumnMajor(_ c: CUBLAS.Call, alpha: Float, beta: Float) {
        func matrix(_ address: UInt64) -> UnsafeMutablePointer<Float> {
            UnsafeMutablePointer<Float>(bitPattern: UInt(address)).unsafelyUnwrapped
        }
        for batch in 0..<Int(c.batch) {
            let a = matrix(c.first) + batch * Int(c.strideFirst), b = matrix(c.second) + batch * Int(c.strideSecond)
            let y = matrix(c.output) + batch * Int(c.strideOutput)
            for i in 0..<Int(c.m) {
                for j in 0..<Int(c.n) {
                    var sum: Float = 0
                    for p in 0..<Int(c.k) {
                        // op(A)[i, p] and op(B)[p, j], column-major with leading dimensions.
                        let av = c.opFirst == CUBLAS.operationN ? a[i + p * Int(c.ldFirst)] : a[p + i * Int(c.ldFirst)]
                        let bv =
                            c.opSecond == CUBLAS.operationN ? b[p + j * Int(c.ldSecond)] : b[j + p * Int(c.ldSecond)]
                        sum += av * bv
                    }
                    y[i + j * Int(c.ldOutput)] = alpha * sum + beta * y[i + j * Int(c.ldOutput)]
                }
            }
        }
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func gemmMatchesRowMajorProduct(_ transposes: (Bool, Bool)) {
        let (transA, transB) = transposes
        let (m, n, k) = (3, 5, 4)
        var a = (0..<(m * k)).map { Float($0 % 7) - 3 }, b = (0..<(k * n)).map { Float($0 % 5) - 2 }
        var y = (0..<(m * n)).map { Float($0) }
        let initial = y
        // Logical row-major A' [m, k] and B' [k, n] as stored under each transpose flag.
        func aValue(_ i: Int, _ p: Int) -> Float { transA ? a[p * m + i] : a[i * k + p] }
        func bValue(_ p: Int, _ j: Int) -> Float { transB ? b[j * k + p] : b[p * n + j] }
        a.withUnsafeMutableBufferPointer { ap in
            b.withUnsafeMutableBufferPointer { bp in
                y.withUnsafeMutableBufferPointer { yp in
                    let product = CUBLAS.Product(
                        m: m, n: n, k: k, transA: transA, transB: transB,
                        a: UInt64(UInt(bitPattern: ap.baseAddress)), b: UInt64(UInt(bitPattern: bp.baseAddress)),
                        y: UInt64(UInt(bitPattern: yp.baseAddress)), alpha: 2, beta: 0.5)
                    referenceColumnMajor(CUBLAS.call(for: product), alpha: 2, beta: 0.5)
                }
            }
        }
        for i in 0..<m {
            for j in 0..<n {
                let expected =
                    2 * (0..<k).reduce(Float(0)) { $0 + aValue(i, $1) * bValue($1, j) } + 0.5 * initial[i * n + j]
                #expect(y[i * n + j] == expected, "transA \(transA) transB \(transB) [\(i), \(j)]")
            }
        }
    }

    @Test func batchedWithASharedOperand() {
        let (m, n, k, batches) = (2, 3, 4, 3)
        var a = (0..<(batches * m * k)).map { Float($0 % 9) - 4 }, b = (0..<(k * n)).map { Float($0 % 4) - 1 }
        var y = [Float](repeating: 0, count: batches * m * n)
        a.withUnsafeMutableBufferPointer { ap in
            b.withUnsafeMutableBufferPointer { bp in
                y.withUnsafeMutableBufferPointer { yp in
                    let product = CUBLAS.Product(
                        m: m, n: n, k: k, transA: false, transB: false, a: UInt64(UInt(bitPattern: ap.baseAddress)),
                        b: UInt64(UInt(bitPattern: bp.baseAddress)), y: UInt64(UInt(bitPattern: yp.baseAddress)),
                        alpha: 1, beta: 0, batch: batches, strideA: m * k, strideB: 0, strideY: m * n)
                    referenceColumnMajor(CUBLAS.call(for: product), alpha: 1, beta: 0)
                }
            }
        }
        for s in 0..<batches {
            for i in 0..<m {
                for j in 0..<n {
                    let expected = (0..<k).reduce(Float(0)) { $0 + a[s * m * k + i * k + $1] * b[$1 * n + j] }
                    #expect(y[s * m * n + i * n + j] == expected)
                }
            }
        }
    }

    /// float16 and bfloat16 GEMMs go through cublasGemmEx with their cudaDataType on every operand (float32 sums,
    /// `compute32F`); the mapping of operands, leading dimensions and strides is the float32 one.
    @Test func narrowTypesKeepTheirDataType() {
        #expect(CUBLAS.dataType(for: .float32) == 0)
        #expect(CUBLAS.dataType(for: .float16) == 2)
        #expect(CUBLAS.dataType(for: .bfloat16) == 14)
        #expect(CUBLAS.dataType(for: .float64) == nil && CUBLAS.dataType(for: .int8) == nil)
        #expect(CUBLAS.compute32F == 68 && CUBLAS.defaultMath == 16)
        for type in [CUBLAS.float16Type, CUBLAS.bfloat16Type] {
            var product = CUBLAS.Product(
                m: 3, n: 5, k: 4, transA: true, transB: false, a: 0x1000, b: 0x2000, y: 0x3000, alpha: 1, beta: 0,
                batch: 2, strideA: 12, strideB: 0, strideY: 15)
            let float = CUBLAS.call(for: product)
            product.dataType = type
            var narrow = CUBLAS.call(for: product)
            #expect(narrow.dataType == type)
            narrow.dataType = float.dataType
            #expect(narrow == float)
        }
    }

    /// Without libcuda (or with INFERENCE_CUBLAS=0) there is no cuBLAS handle, and the own kernels run.
    @Test func absentOrDisabledLibraryGivesNil() {
        #expect(CUBLAS.load(environment: ["INFERENCE_CUBLAS": "0"]) == nil)
    }
}
