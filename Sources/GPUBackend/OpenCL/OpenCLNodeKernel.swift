import InferenceGraph
import InferenceRuntime
import InferenceTensor

/// One argument of a kernel launch.
enum KernelArgument {
    /// An OpenCL memory object.
    case buffer(OpaquePointer)
    /// A CUDA device address.
    case address(UInt64)
    case int(Int32)
    case float(Float)
}

/// A kernel of the built program with its arguments set once at plan time; `run` only enqueues it.
final class OpenCLNodeKernel: Kernel, DescribedKernel {
    private let backend: OpenCLBackend
    /// The kernel source's function, for profiles (`gemm_tiled_f16`, say).
    let name: String
    var kernelDescription: String { "kernel \(name)" }
    private let kernel: OpaquePointer
    private let global: [Int]
    private let local: [Int]?
    /// Keeps metadata buffers alive as long as the kernel refers to them.
    private let retained: [AnyObject]

    init(
        backend: OpenCLBackend, name: String, arguments: [KernelArgument], global: [Int], local: [Int]? = nil,
        retained: [AnyObject] = []
    ) throws {
        self.backend = backend
        self.name = name
        self.kernel = try backend.makeKernel(name)
        // With a work-group size, whole groups: the global size rounded up in every dimension.
        self.global = global.enumerated().map { axis, size in
            let group = local.map { axis < $0.count ? max($0[axis], 1) : 1 } ?? 1
            return (max(size, 1) + group - 1) / group * group
        }
        self.local = local.map { sizes in global.indices.map { $0 < sizes.count ? max(sizes[$0], 1) : 1 } }
        self.retained = retained
        for (index, argument) in arguments.enumerated() {
            let status: Int32
            switch argument {
            case .buffer(let memory):
                var value: OpaquePointer? = memory
                status = backend.cl.clSetKernelArg(kernel, UInt32(index), MemoryLayout<OpaquePointer>.size, &value)
            case .address:
                throw RuntimeError.device("a CUDA address was passed to an OpenCL kernel")
            case .int(var value):
                status = backend.cl.clSetKernelArg(kernel, UInt32(index), 4, &value)
            case .float(var value):
                status = backend.cl.clSetKernelArg(kernel, UInt32(index), 4, &value)
            }
            try backend.cl.check(status, "clSetKernelArg(\(name), \(index))")
        }
    }

    func run() throws {
        try global.withUnsafeBufferPointer { size in
            try (local ?? []).withUnsafeBufferPointer { group in
                try backend.cl.check(
                    backend.cl.clEnqueueNDRangeKernel(
                        backend.queue, kernel, UInt32(size.count), nil, size.baseAddress,
                        local == nil ? nil : group.baseAddress, 0, nil, nil),
                    "clEnqueueNDRangeKernel")
            }
        }
    }
}
