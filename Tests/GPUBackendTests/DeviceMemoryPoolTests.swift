import BuiltinModels
import CPUBackend
import InferenceRuntime
import InferenceTensor
import Synchronization
import Testing

@testable import GPUBackend

private let poolDevice: OpenCLBackend? = try? OpenCLBackend(index: 0)

/// The device memory pool: size classes, reuse of released memory, the cache limit, the retry after running out
/// of memory; and on a real OpenCL device, that a second plan is served from the first one's released memory.
struct DeviceMemoryPoolTests {
    /// Allocations are numbered; released ones are recorded.
    final class Device: Sendable {
        let next = Mutex(0)
        let released = Mutex<[Int]>([])
        func create(_ bytes: Int) -> Int {
            next.withLock {
                $0 += 1; return $0
            }
        }
    }

    @Test func sizeClassesRoundUpByAtMostAQuarter() {
        #expect(DeviceMemoryPool<Int>.sizeClass(0) == 256)
        #expect(DeviceMemoryPool<Int>.sizeClass(256) == 256)
        #expect(DeviceMemoryPool<Int>.sizeClass(257) == 512)
        #expect(DeviceMemoryPool<Int>.sizeClass(4096) == 4096)
        #expect(DeviceMemoryPool<Int>.sizeClass(4097) == 5120)
        for bytes in [1000, 12_345, 1 << 20 | 1, 300_000_000] {
            let size = DeviceMemoryPool<Int>.sizeClass(bytes)
            #expect(size >= bytes && Double(size) <= Double(bytes) * 1.25 + 256, "\(bytes) -> \(size)")
        }
    }

    @Test func releasedMemoryIsReusedUpToTheLimit() throws {
        let device = Device()
        let pool = DeviceMemoryPool<Int>(capacity: 8192) { id in device.released.withLock { $0.append(id) } }
        let a = try pool.allocate(bytes: 4000, create: device.create)
        let b = try pool.allocate(bytes: 4000, create: device.create)
        #expect(a.allocation != b.allocation)
        pool.recycle(a.allocation, classBytes: a.classBytes)
        // Same class: the released allocation comes back; another class gets a new one.
        let c = try pool.allocate(bytes: 3900, create: device.create)
        #expect(c.allocation == a.allocation)
        let d = try pool.allocate(bytes: 100, create: device.create)
        #expect(d.allocation != a.allocation && d.allocation != b.allocation)
        #expect(pool.statistics == .init(created: 3, reused: 1, cachedBytes: 0))
        // 4096 + 4096 fit the 8 KiB limit; the third release is freed at once.
        pool.recycle(b.allocation, classBytes: b.classBytes)
        pool.recycle(c.allocation, classBytes: c.classBytes)
        pool.recycle(d.allocation, classBytes: d.classBytes)
        #expect(pool.statistics.cachedBytes == 8192)
        #expect(device.released.withLock { $0 } == [d.allocation])
        pool.trim()
        #expect(pool.statistics.cachedBytes == 0)
        #expect(Set(device.released.withLock { $0 }) == [b.allocation, c.allocation, d.allocation])
    }

    @Test func outOfMemoryFreesTheCacheAndRetries() throws {
        let device = Device()
        let pool = DeviceMemoryPool<Int>(capacity: 1 << 20) { id in device.released.withLock { $0.append(id) } }
        let cached = try pool.allocate(bytes: 1000, create: device.create)
        pool.recycle(cached.allocation, classBytes: cached.classBytes)
        var attempts = 0
        let fresh = try pool.allocate(bytes: 50_000) { bytes in
            attempts += 1
            if attempts == 1 { throw RuntimeError.outOfMemory(device: "test", bytes: bytes) }
            return device.create(bytes)
        }
        #expect(attempts == 2)
        #expect(device.released.withLock { $0 } == [cached.allocation])
        #expect(fresh.allocation != cached.allocation)
        #expect(throws: RuntimeError.self) {
            _ = try pool.allocate(bytes: 60_000) { bytes in throw RuntimeError.outOfMemory(device: "test", bytes: bytes)
            }
        }
    }

    @Test func limitFromTheEnvironment() {
        #expect(DeviceMemoryPool<Int>.capacity(environment: [:]) == 1 << 30)
        #expect(DeviceMemoryPool<Int>.capacity(environment: ["INFERENCE_GPU_POOL_MB": "0"]) == 0)
        #expect(DeviceMemoryPool<Int>.capacity(environment: ["INFERENCE_GPU_POOL_MB": "64"]) == 64 << 20)
        #expect(DeviceMemoryPool<Int>.capacity(environment: ["INFERENCE_GPU_POOL_MB": "x"]) == 1 << 30)
    }

    @Test(.enabled(if: poolDevice != nil, "no OpenCL device (install pocl-opencl-icd)"))
    func aSecondPlanReusesTheFirstPlansMemory() throws {
        let device = try OpenCLBackend(index: 0)
        let graph = try BuiltinModels.graph(named: "mlp")
        let input = try Tensor(shape: [4, 784], scalars: [Float](repeating: 0.5, count: 4 * 784))
        let first = try Session(graph: graph, backend: device, evaluator: CPUBackend())
        let expected = try first.run([NamedTensor(name: graph.inputs[0].name, tensor: input)]).outputs
        let made = device.pool.statistics.created
        #expect(made > 0 && device.pool.statistics.reused == 0)
        _ = consume first
        #expect(device.pool.statistics.cachedBytes > 0)
        let second = try Session(graph: graph, backend: device, evaluator: CPUBackend())
        let outputs = try second.run([NamedTensor(name: graph.inputs[0].name, tensor: input)]).outputs
        #expect(device.pool.statistics.created == made, "\(device.pool.summary)")
        #expect(device.pool.statistics.reused == made)
        #expect(outputs[0].tensor.bitwiseEqual(expected[0].tensor))
        #expect(device.configuration.contains { $0.hasPrefix("device memory pool: \(made) allocations made") })
    }
}
