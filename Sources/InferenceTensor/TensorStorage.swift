#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A host allocation aligned for SIMD loads. Owned by `Tensor`; never exposed mutable while shared.
@usableFromInline
final class TensorStorage: @unchecked Sendable {
    /// 64 bytes: one cache line and one AVX-512 register.
    static let alignment = 64

    @usableFromInline let pointer: UnsafeMutableRawPointer
    @usableFromInline let byteCount: Int

    /// - Throws: `TensorError.allocationFailed` when the system cannot provide `byteCount` bytes.
    /// Physical memory: a request above it cannot succeed, and would only get the process killed later.
    static let physicalMemory = Int(clamping: ProcessInfo.processInfo.physicalMemory)

    init(byteCount: Int, zeroed: Bool) throws {
        guard byteCount <= Self.physicalMemory else { throw TensorError.allocationFailed(bytes: byteCount) }
        var raw: UnsafeMutableRawPointer?
        // posix_memalign returns an error instead of aborting when the request is absurd.
        let status = posix_memalign(&raw, Self.alignment, max(byteCount, Self.alignment))
        guard status == 0, let raw else { throw TensorError.allocationFailed(bytes: byteCount) }
        if zeroed { memset(raw, 0, byteCount) }
        self.pointer = raw
        self.byteCount = byteCount
    }

    @usableFromInline
    func copy() throws -> TensorStorage {
        let copy = try TensorStorage(byteCount: byteCount, zeroed: false)
        copy.pointer.copyMemory(from: pointer, byteCount: byteCount)
        return copy
    }

    deinit { free(pointer) }
}
