import Dispatch

/// Splits work across the CPU backend's threads. Uses libdispatch's persistent worker pool (no thread is
/// created per run); with one thread, or work too small to split, the body runs inline on the caller.
struct ParallelFor: Sendable {
    let threads: Int

    /// Calls `body(begin, end)` for `parts` contiguous chunks covering 0..<count.
    @inline(__always)
    func run(_ count: Int, _ body: (Int, Int) -> Void) {
        let parts = min(threads, count)
        if parts <= 1 {
            body(0, count)
            return
        }
        withoutActuallyEscaping(body) { body in
            let box = UnsafeSendableBox(body)
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                let begin = count * part / parts
                let end = count * (part + 1) / parts
                if begin < end { box.value(begin, end) }
            }
        }
    }
}

/// Carries a non-Sendable closure into concurrentPerform; the chunks it is called with never overlap.
private struct UnsafeSendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
