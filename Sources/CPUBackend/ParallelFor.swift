import CKernels

/// Splits a kernel's work across the CPU backend's persistent thread pool (`ck_pool`: workers created once per
/// backend, the calling thread runs the first part, no allocation per job). Without a pool, or for work too
/// small to split, the body runs inline on the caller.
struct ParallelFor: Sendable {
    let pool: ThreadPool?

    /// Runs everything on the calling thread.
    static let serial = ParallelFor(pool: nil)

    var threads: Int { pool?.threads ?? 1 }

    /// Calls `body(begin, end)` for up to `threads` contiguous chunks covering 0..<count.
    @inline(__always)
    func run(_ count: Int, _ body: (Int, Int) -> Void) {
        runIndexed(count) { _, begin, end in body(begin, end) }
    }

    /// Like `run`, also passing the chunk's index (0..<threads) for per-thread scratch space.
    @inline(__always)
    func runIndexed(_ count: Int, _ body: (Int, Int, Int) -> Void) {
        let parts = min(threads, count)
        guard parts > 1, let pool else {
            body(0, 0, count)
            return
        }
        withoutActuallyEscaping(body) { body in
            var job = Job(count: count, body: body)
            withUnsafeMutablePointer(to: &job) { pointer in
                ck_pool_run(
                    pool.handle, parts,
                    { context, part, parts in
                        guard let job = context?.assumingMemoryBound(to: Job.self) else { return }
                        let count = job.pointee.count
                        let begin = count * part / parts
                        let end = count * (part + 1) / parts
                        if begin < end { job.pointee.body(part, begin, end) }
                    }, pointer)
            }
        }
    }

    private struct Job {
        let count: Int
        let body: (Int, Int, Int) -> Void
    }
}

/// Owns a `ck_pool`; the workers stop when the last reference goes.
final class ThreadPool: @unchecked Sendable {
    let handle: OpaquePointer
    let threads: Int

    /// Nil when the worker threads cannot be created (the backend then runs on the calling thread).
    init?(threads: Int) {
        guard threads > 1, let handle = ck_pool_create(threads) else { return nil }
        self.handle = handle
        self.threads = threads
    }

    deinit { ck_pool_destroy(handle) }
}

/// Work for the pool that allocates nothing per run: a kernel creates its tasks when it is built, sets any
/// per-call fields on the calling thread, and `ParallelFor.run(_:count:)` hands the object itself to the
/// workers (the closure form above pays one small heap block per call for `withoutActuallyEscaping`).
class ParallelTask: @unchecked Sendable {
    /// Runs chunk `index` of the split, covering [begin, end).
    func part(_ index: Int, _ begin: Int, _ end: Int) {}
    fileprivate var count = 0
}

/// A task whose body is a closure made once, when the kernel is built.
final class ClosureTask: ParallelTask, @unchecked Sendable {
    private let body: (Int, Int, Int) -> Void
    init(_ body: @escaping (Int, Int, Int) -> Void) { self.body = body }
    override func part(_ index: Int, _ begin: Int, _ end: Int) { body(index, begin, end) }
}

extension ParallelFor {
    /// Calls `task.part(index, begin, end)` for up to `threads` contiguous chunks covering 0..<count.
    func run(_ task: ParallelTask, count: Int) {
        let parts = min(threads, count)
        guard parts > 1, let pool else {
            task.part(0, 0, count)
            return
        }
        task.count = count
        ck_pool_run(
            pool.handle, parts,
            { context, part, parts in
                guard let context else { return }
                let task = Unmanaged<ParallelTask>.fromOpaque(context).takeUnretainedValue()
                let begin = task.count * part / parts
                let end = task.count * (part + 1) / parts
                if begin < end { task.part(part, begin, end) }
            }, Unmanaged.passUnretained(task).toOpaque())
    }
}
