import Dispatch

/// Splits work across the CPU backend's threads. Uses libdispatch's persistent worker pool (no thread is
/// created per run); with one thread, or work too small to split, the body runs inline on the caller.
struct ParallelFor: Sendable {
    let threads: Int

    /// Calls `body(begin, end)` for up to `threads` contiguous chunks covering 0..<count.
    @inline(__always)
    func run(_ count: Int, _ body: (Int, Int) -> Void) {
        runIndexed(count) { _, begin, end in body(begin, end) }
    }

    /// Like `run`, also passing the chunk's index (0..<threads) for per-thread scratch space.
    @inline(__always)
    func runIndexed(_ count: Int, _ body: (Int, Int, Int) -> Void) {
        let parts = min(threads, count)
        if parts <= 1 {
            body(0, 0, count)
            return
        }
        withoutActuallyEscaping(body) { body in
            let box = UnsafeSendableBox(body)
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                let begin = count * part / parts
                let end = count * (part + 1) / parts
                if begin < end { box.value(part, begin, end) }
            }
        }
    }
}

/// Carries a non-Sendable closure into concurrentPerform; the chunks it is called with never overlap.
private struct UnsafeSendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
