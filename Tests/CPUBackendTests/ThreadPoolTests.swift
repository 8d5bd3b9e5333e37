import BuiltinModels
import CKernels
import CPUBackend
import Foundation
import InferenceRuntime
import InferenceTensor
import Testing

/// The persistent pool the CPU kernels split work across: every part of every job runs exactly once, whether
/// workers are spinning or asleep, and concurrent or nested callers fall back to running parts themselves.
struct ThreadPoolTests {
    /// Counts, per part, how often it ran; `parts` records the part count each call saw.
    final class Tally: @unchecked Sendable {
        var counts: [Int]
        var partsSeen: [Int]
        init(_ n: Int) {
            counts = [Int](repeating: 0, count: n)
            partsSeen = [Int](repeating: 0, count: n)
        }
    }

    static let record: ck_task_fn = { context, part, parts in
        guard let tally = context?.assumingMemoryBound(to: Tally.self).pointee else { return }
        tally.counts[part] += 1
        tally.partsSeen[part] = parts
    }

    func runJobs(_ pool: OpaquePointer?, jobs: Int, parts: Int, pauseMicroseconds: UInt32 = 0) -> Tally {
        var tally = Tally(parts)
        for _ in 0..<jobs {
            withUnsafeMutablePointer(to: &tally) { ck_pool_run(pool, parts, Self.record, $0) }
            if pauseMicroseconds > 0 { usleep(pauseMicroseconds) }
        }
        return tally
    }

    @Test(arguments: [1, 2, 3, 5])
    func everyPartRunsOncePerJob(threads: Int) throws {
        let pool = try #require(ck_pool_create(threads))
        defer { ck_pool_destroy(pool) }
        #expect(ck_pool_threads(pool) == threads)
        // Back to back (workers spinning), then with pauses longer than the spin (workers asleep).
        let busy = runJobs(pool, jobs: 5_000, parts: threads)
        #expect(busy.counts == [Int](repeating: 5_000, count: threads))
        let sleepy = runJobs(pool, jobs: 50, parts: threads, pauseMicroseconds: 1_000)
        #expect(sleepy.counts == [Int](repeating: 50, count: threads))
        #expect(sleepy.partsSeen == [Int](repeating: threads, count: threads))
        // Fewer parts than threads: idle workers still check in, and only parts 0..<2 run.
        if threads > 2 {
            let few = runJobs(pool, jobs: 1_000, parts: 2)
            #expect(few.counts == [1_000, 1_000])
        }
    }

    @Test func concurrentCallersOnOnePoolAllFinish() async throws {
        let pool = try #require(ck_pool_create(2))
        defer { ck_pool_destroy(pool) }
        let handle = UInt(bitPattern: pool)
        let totals = await withTaskGroup(of: [Int].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    runJobs(OpaquePointer(bitPattern: handle), jobs: 5_000, parts: 2).counts
                }
            }
            var all: [[Int]] = []
            for await counts in group { all.append(counts) }
            return all
        }
        #expect(totals.count == 4)
        for counts in totals { #expect(counts == [5_000, 5_000]) }
    }

    @Test func aPartThatSplitsAgainRunsInline() throws {
        final class Nested: @unchecked Sendable {
            let pool: OpaquePointer
            var inner = [Int](repeating: 0, count: 2)
            var outer = [Int](repeating: 0, count: 2)
            init(_ pool: OpaquePointer) { self.pool = pool }
        }
        let pool = try #require(ck_pool_create(2))
        defer { ck_pool_destroy(pool) }
        var nested = Nested(pool)
        withUnsafeMutablePointer(to: &nested) { pointer in
            ck_pool_run(
                pool, 2,
                { context, part, _ in
                    guard let state = context?.assumingMemoryBound(to: Nested.self).pointee else { return }
                    state.outer[part] += 1
                    var inner = Tally(2)
                    withUnsafeMutablePointer(to: &inner) { ck_pool_run(state.pool, 2, ThreadPoolTests.record, $0) }
                    state.inner[part] = inner.counts.reduce(0, +)
                }, pointer)
        }
        #expect(nested.outer == [1, 1])
        #expect(nested.inner == [2, 2])
    }
}

/// Splitting never changes a result: every output element is computed by one thread in the same order, so two
/// threads give the same bits as one, run after run (a data race between split parts would break this).
struct ThreadCountInvarianceTests {
    @Test(arguments: ["mlp", "cnn", "encoder"])
    func twoThreadsGiveTheBitsOfOne(_ name: String) throws {
        let graph = try BuiltinModels.graph(named: name)
        let dims =
            graph.runtimeInputs[0].dimensions?.enumerated().map { index, dim -> Int in
                if case .fixed(let n) = dim { return n }
                return index == 0 ? 8 : 32
            } ?? []
        let input = try Tensor(shape: Shape(dims), scalars: KernelTests.random(dims.reduce(1, *), in: 0...1))
        let feeds = [NamedTensor(name: graph.runtimeInputs[0].name, tensor: input)]
        let one = try Session(graph: graph, backend: CPUBackend(threads: 1)).run(feeds).outputs[0].tensor
        let two = try Session(graph: graph, backend: CPUBackend(threads: 2))
        for run in 0..<10 {
            let got = try two.run(feeds).outputs[0].tensor
            #expect(got.bitwiseEqual(one), "\(name): run \(run) on 2 threads differs from 1 thread")
        }
    }
}
