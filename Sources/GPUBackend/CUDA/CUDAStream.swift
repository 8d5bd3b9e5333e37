import InferenceRuntime
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Page-locked host memory every copy of the CUDA backend goes through. DMA reads and writes it directly (from
/// pageable memory the driver would stage through its own buffers first), and a copy in returns as soon as its
/// bytes are staged and the transfer is queued: regions are handed out in order and reused only after the stream
/// has been synchronized. A copy out waits for its transfer and then copies to the caller. Copies larger than
/// `limit` go straight from and to the caller's memory. If page-locked memory cannot be had, copies fall back to
/// the caller's memory too.
final class PinnedStaging: @unchecked Sendable {
    /// Largest copy staged, and so the most page-locked memory held.
    static let limit = 64 << 20

    private struct State {
        var base: UInt = 0
        var capacity = 0
        var used = 0
    }

    private let driver: CUDADriver
    private let stream: OpaquePointer
    private let state = Mutex(State())

    init(driver: CUDADriver, stream: OpaquePointer) {
        self.driver = driver
        self.stream = stream
    }

    deinit {
        state.withLock { state in
            if state.base != 0 { _ = driver.cuMemFreeHost(UnsafeMutableRawPointer(bitPattern: state.base)) }
        }
    }

    var capacity: Int { state.withLock { $0.capacity } }

    func synchronize() throws {
        try state.withLock { state in
            try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
            state.used = 0
        }
    }

    func copy(from host: UnsafeRawBufferPointer, to device: UInt64, bytes: Int) throws {
        guard let source = host.baseAddress else { return }
        try state.withLock { state in
            guard let region = try reserve(&state, bytes) else {
                // Pageable source: the call returns once the driver has taken the bytes.
                try driver.check(driver.cuMemcpyHtoDAsync(device, source, bytes, stream), "cuMemcpyHtoDAsync")
                return
            }
            region.copyMemory(from: source, byteCount: bytes)
            try driver.check(driver.cuMemcpyHtoDAsync(device, region, bytes, stream), "cuMemcpyHtoDAsync")
        }
    }

    func copy(from device: UInt64, to host: UnsafeMutableRawBufferPointer, bytes: Int) throws {
        guard let destination = host.baseAddress else { return }
        try state.withLock { state in
            let region = try reserve(&state, bytes)
            try driver.check(
                driver.cuMemcpyDtoHAsync(region ?? destination, device, bytes, stream), "cuMemcpyDtoHAsync")
            try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
            state.used = 0
            if let region { destination.copyMemory(from: region, byteCount: bytes) }
        }
    }

    /// The next free region of `bytes`, after waiting for the stream when the buffer is full and growing it when
    /// too small; nil when the copy is too large to stage or no page-locked memory can be had.
    private func reserve(_ state: inout State, _ bytes: Int) throws -> UnsafeMutableRawPointer? {
        guard bytes <= Self.limit else { return nil }
        if state.used + bytes > state.capacity {
            try driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
            state.used = 0
            if bytes > state.capacity {
                let size = min(max(bytes, state.capacity * 2, 1 << 20), Self.limit)
                var pointer: UnsafeMutableRawPointer?
                guard driver.cuMemHostAlloc(&pointer, size, 0) == 0, let pointer else { return nil }
                if state.base != 0 { _ = driver.cuMemFreeHost(UnsafeMutableRawPointer(bitPattern: state.base)) }
                state.base = UInt(bitPattern: pointer)
                state.capacity = size
            }
        }
        guard let base = UnsafeMutableRawPointer(bitPattern: state.base) else { return nil }
        let region = base + state.used
        state.used += (bytes + 255) & ~255
        return region
    }
}

/// A plan's kernels recorded once on the backend's stream as a CUDA graph; `run` launches the whole graph with
/// one call instead of one launch per node. The kernels stay referenced: the graph points at their arguments'
/// device memory.
final class CUDAGraphReplay: Kernel {
    private let driver: CUDADriver
    private let graphs: CUDAGraphAPI
    private let stream: OpaquePointer
    private let graph: OpaquePointer
    private let executable: OpaquePointer
    private let kernels: [any Kernel]

    init(backend: CUDABackend, graphs: CUDAGraphAPI, kernels: [any Kernel]) throws {
        driver = backend.driver
        self.graphs = graphs
        stream = backend.stream
        self.kernels = kernels
        try driver.check(
            graphs.cuStreamBeginCapture(stream, CUDAGraphAPI.captureThreadLocal), "cuStreamBeginCapture")
        var failure: (any Error)?
        do {
            for kernel in kernels { try kernel.run() }
        } catch {
            failure = error
        }
        var captured: OpaquePointer?
        let ended = graphs.cuStreamEndCapture(stream, &captured)
        if let failure {
            if let captured { _ = graphs.cuGraphDestroy(captured) }
            throw failure
        }
        try driver.check(ended, "cuStreamEndCapture")
        guard let captured else { throw RuntimeError.device("cuStreamEndCapture returned no graph") }
        var executable: OpaquePointer?
        let instantiated = graphs.cuGraphInstantiateWithFlags(&executable, captured, 0)
        guard instantiated == 0, let executable else {
            _ = graphs.cuGraphDestroy(captured)
            try driver.check(instantiated == 0 ? -1 : instantiated, "cuGraphInstantiateWithFlags")
            throw RuntimeError.device("cuGraphInstantiateWithFlags returned no graph")
        }
        graph = captured
        self.executable = executable
    }

    deinit {
        _ = graphs.cuGraphExecDestroy(executable)
        _ = graphs.cuGraphDestroy(graph)
    }

    func run() throws { try driver.check(graphs.cuGraphLaunch(executable, stream), "cuGraphLaunch") }
}

extension CUDABackend {
    /// Records the kernels as one CUDA graph, or nil when graphs are off or the driver lacks them.
    /// - Throws: the driver's error when the capture fails (the plan then keeps launching node by node).
    public func replay(_ kernels: [any Kernel]) throws -> (any Kernel)? {
        guard usesGraphs, let graphs = driver.graphs, !kernels.isEmpty else { return nil }
        return try CUDAGraphReplay(backend: self, graphs: graphs, kernels: kernels)
    }
}
