import InferenceRuntime
import InferenceTensor

/// The CPU backend's kernel table: the one place that says which operators, opsets and element types
/// it runs. Kernels live in Kernels/, one file per operator family.
public enum CPUKernelTable {
    public static let registry = KernelRegistry([
        KernelRegistration("Gemm", opsets: 7...Int.max, dtypes: [.float32]) { node, _ in try GemmKernel(node: node) },
        KernelRegistration("MatMul", opsets: 1...Int.max, dtypes: [.float32]) { node, _ in try MatMulKernel(node: node)
        },
        KernelRegistration("Add", opsets: 7...Int.max, dtypes: [.float32]) { node, _ in
            try BinaryKernel(node: node, op: .add)
        },
        KernelRegistration("Sub", opsets: 7...Int.max, dtypes: [.float32]) { node, _ in
            try BinaryKernel(node: node, op: .sub)
        },
        KernelRegistration("Mul", opsets: 7...Int.max, dtypes: [.float32]) { node, _ in
            try BinaryKernel(node: node, op: .mul)
        },
        KernelRegistration("Div", opsets: 7...Int.max, dtypes: [.float32]) { node, _ in
            try BinaryKernel(node: node, op: .div)
        },
        KernelRegistration("Relu", opsets: 6...Int.max, dtypes: [.float32]) { node, _ in
            try UnaryKernel(node: node, op: .relu)
        },
        KernelRegistration("Sigmoid", opsets: 6...Int.max, dtypes: [.float32]) { node, _ in
            try UnaryKernel(node: node, op: .sigmoid)
        },
        KernelRegistration("Identity", opsets: 1...Int.max, dtypes: Set(DType.allCases)) { node, _ in
            try UnaryKernel(node: node, op: .identity)
        },
    ])
}
