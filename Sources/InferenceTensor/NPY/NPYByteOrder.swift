/// Byte-order and memory-order fixes applied once after a .npy file's data is read.
enum NPYByteOrder {
    /// Reverses the bytes of every element in place.
    static func swapInPlace(_ buffer: UnsafeMutableRawBufferPointer, elementSize: Int) {
        guard let base = buffer.baseAddress else { return }
        let count = buffer.count / elementSize
        switch elementSize {
        case 2:
            let p = base.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { p[i] = p[i].byteSwapped }
        case 4:
            let p = base.assumingMemoryBound(to: UInt32.self)
            for i in 0..<count { p[i] = p[i].byteSwapped }
        case 8:
            let p = base.assumingMemoryBound(to: UInt64.self)
            for i in 0..<count { p[i] = p[i].byteSwapped }
        default:
            break
        }
    }

    /// Maps every byte to 0 or 1, the only bit patterns a Swift `Bool` may hold.
    static func normalizeBools(_ buffer: UnsafeMutableRawBufferPointer) {
        for i in buffer.indices where buffer[i] > 1 { buffer[i] = 1 }
    }

    /// Reorders column-major (Fortran) data into row-major order.
    static func fortranToRowMajor(_ source: Tensor) throws -> Tensor {
        let result = try Tensor(uninitialized: source.dtype, shape: source.shape)
        let dims = source.shape.dimensions
        let rank = dims.count
        let size = source.dtype.byteSize
        // Column-major strides (in elements) of the source, walked with a row-major counter.
        var fortranStrides = [Int](repeating: 1, count: rank)
        for axis in 1..<rank { fortranStrides[axis] = fortranStrides[axis - 1] * dims[axis - 1] }
        var index = [Int](repeating: 0, count: rank)
        var sourceOffset = 0
        let src = source.storage.pointer
        let dst = result.storage.pointer
        for destination in 0..<source.elementCount {
            (dst + destination * size).copyMemory(from: src + sourceOffset * size, byteCount: size)
            var axis = rank - 1
            while axis >= 0 {
                index[axis] += 1
                sourceOffset += fortranStrides[axis]
                if index[axis] < dims[axis] { break }
                sourceOffset -= fortranStrides[axis] * dims[axis]
                index[axis] = 0
                axis -= 1
            }
        }
        return result
    }
}
