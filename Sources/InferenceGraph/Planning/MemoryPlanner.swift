/// Assigns arena offsets to values by liveness: a value reuses the space of values that died before it
/// was defined (first fit over the free gaps, 64-byte aligned).
public enum MemoryPlanner {
    public static let alignment = 64

    public struct Allocation: Sendable {
        public var offsets: [Int?]
        public var arenaBytes: Int
        public var unsharedBytes: Int
    }

    /// - Parameters:
    ///   - sizes: bytes per value, nil for values that do not live in the arena.
    ///   - firstDefinition: step that writes the value (-1: before the first step).
    ///   - lastUse: last step that reads it.
    public static func assign(sizes: [Int?], firstDefinition: [Int], lastUse: [Int]) -> Allocation {
        struct Block { var offset: Int; var size: Int; var lastUse: Int }
        var live: [Block] = []
        var offsets = [Int?](repeating: nil, count: sizes.count)
        var arena = 0
        var unshared = 0
        // Values in order of definition; ties keep index order so plans are deterministic.
        let order = sizes.indices.filter { sizes[$0] != nil }.sorted {
            (firstDefinition[$0], $0) < (firstDefinition[$1], $1)
        }
        for value in order {
            guard let raw = sizes[value] else { continue }
            let size = max(alignment, (raw + alignment - 1) / alignment * alignment)
            unshared += size
            // Free blocks whose last reader ran before this value is written.
            live.removeAll { $0.lastUse < firstDefinition[value] }
            live.sort { $0.offset < $1.offset }
            var candidate = 0
            for block in live {
                if candidate + size <= block.offset { break }
                candidate = max(candidate, block.offset + block.size)
            }
            offsets[value] = candidate
            live.append(Block(offset: candidate, size: size, lastUse: lastUse[value]))
            arena = max(arena, candidate + size)
        }
        return Allocation(offsets: offsets, arenaBytes: arena, unsharedBytes: unshared)
    }
}
