import InferenceTensor

/// Marks the values of int8 networks that pass channels last (`FusionRules.channelsLastQuantized`).
///
/// The int8 convolution that reads its windows in place (the CPU backend's `QuadIntegerConv`) makes each output
/// position's filters as one row of its tiles, so it writes channels last ([H][W][C]) as cheaply as planes, and reads
/// a channels-last image four channels at a time with no copy at all for a 1x1 layer; the QDQ depthwise layer
/// computes channels in vector lanes, so channels last spares its transposes both ways; a residual `_QLinearAdd` of
/// two same-shape tensors is the same per element in either order. So between such nodes every value is kept
/// channels last, as onnxruntime keeps a quantized network in NHWC: in QDQ MobileNetV2 every value from the stem's
/// output to the last 1x1 layer's input. A value is marked only where its producer writes and every reader reads
/// channels last (and it is not a graph output); an Add's two inputs and its output are marked together or not at
/// all. Everything else stays in planes, so the marks change no value anyone can observe.
extension Fusion.Candidates {
    mutating func markQuantizedChannelsLast() {
        let producer = producers()
        var marked = Set<String>()
        for (value, p) in producer {
            guard !graphOutputs.contains(value), let readers = consumers[value], !readers.isEmpty,
                writesChannelsLast(p), readers.allSatisfy({ readsChannelsLast($0, value) })
            else { continue }
            marked.insert(value)
        }
        // An Add's operands and result in one layout: drop all three where only some are marked, until none changes.
        var changed = true
        while changed {
            changed = false
            for entry in nodes {
                guard let entry, entry.node.opType == QuantizedFusion.qlinearAdd, entry.node.inputs.count >= 4,
                    let output = entry.node.outputs.first
                else { continue }
                let values = [entry.node.inputs[0], entry.node.inputs[3], output]
                let inside = values.filter { marked.contains($0) }.count
                if inside > 0, inside < values.count {
                    for value in values { marked.remove(value) }
                    changed = true
                }
            }
        }
        for value in marked {
            guard let p = producer[value] else { continue }
            if nodes[p]?.node.opType != QuantizedFusion.qlinearAdd {
                markAttribute(p, FusionRules.channelsLastOutputAttribute)
            }
            for reader in consumers[value] ?? [] where nodes[reader]?.node.opType != QuantizedFusion.qlinearAdd {
                markAttribute(reader, FusionRules.channelsLastInputAttribute)
            }
        }
    }

    private mutating func markAttribute(_ index: Int, _ attribute: String) {
        guard var entry = nodes[index] else { return }
        entry.node.attributes[attribute] = .int(1)
        nodes[index] = entry
    }

    /// Whether node `index` can write its output channels last.
    private func writesChannelsLast(_ index: Int) -> Bool {
        guard let entry = nodes[index], entry.node.domain.isEmpty, entry.node.outputs.count == 1 else { return false }
        switch entry.node.opType {
        case "QLinearConv": return inPlaceConv(entry) != nil
        case QuantizedFusion.qdqDepthwiseConv: return lanesDepthwise(entry)
        case QuantizedFusion.qlinearAdd: return sameShapeAdd(entry)
        default: return false
        }
    }

    /// Whether node `index` can read `value` channels last (and reads it only where that applies).
    private func readsChannelsLast(_ index: Int, _ value: String) -> Bool {
        guard let entry = nodes[index], entry.node.domain.isEmpty else { return false }
        let positions = entry.node.inputs.indices.filter { entry.node.inputs[$0] == value }
        switch entry.node.opType {
        case "QLinearConv":
            // Unsigned bytes in whole quads of channels, read four at a time.
            guard positions == [0], let x = inPlaceConv(entry), x.dtype == .uint8, x.shape[1] % 4 == 0 else {
                return false
            }
            return true
        case QuantizedFusion.qdqDepthwiseConv:
            return positions == [0] && lanesDepthwise(entry)
        case QuantizedFusion.qlinearAdd:
            return (positions == [0] || positions == [3]) && sameShapeAdd(entry)
        default: return false
        }
    }

    /// A 2-D QLinearConv the in-place windows run: one group, no dilation, equal strides of 1 or 2, constant int8
    /// weights with zero points 0 (or uint8 with 128); its image's type.
    private func inPlaceConv(_ entry: Fusion.LiveNode) -> TensorType? {
        let node = entry.node
        guard node.inputs.count >= 8, let x = types[node.inputs[0]], x.shape.rank == 4,
            x.shape.dimensions.allSatisfy({ $0 > 0 }),
            entry.outputTypes.first.map({ $0.shape.dimensions.allSatisfy { $0 > 0 } }) ?? false,
            let weight = known[node.inputs[3]], weight.shape.rank == 4, [.int8, .uint8].contains(weight.dtype),
            entry.outputTypes.first.map({ [.int8, .uint8].contains($0.dtype) && $0.shape.rank == 4 }) ?? false,
            (try? node.int("group", default: 1)) == 1,
            ((try? node.ints("dilations")) ?? nil).map({ $0.allSatisfy { $0 == 1 } }) ?? true,
            case let strides = ((try? node.ints("strides")) ?? nil) ?? [1, 1], strides.count == 2,
            strides[0] == strides[1], [1, 2].contains(strides[0]),
            let zeros = known[node.inputs[5]], zeros.dtype == weight.dtype
        else { return nil }
        let centred = weight.dtype == .int8 ? 0 : 128
        let values: [Int]? =
            weight.dtype == .int8
            ? (try? zeros.scalars(as: Int8.self)).map { $0.map(Int.init) }
            : (try? zeros.scalars(as: UInt8.self)).map { $0.map(Int.init) }
        guard let values, values.allSatisfy({ $0 == centred }) else { return nil }
        return x
    }

    /// A `_QDQDepthwiseConv` the channels-in-lanes kernel runs: a square 3x3, 5x5 or 7x7 window, no dilation,
    /// equal strides of 1 or 2, a 2-D image.
    private func lanesDepthwise(_ entry: Fusion.LiveNode) -> Bool {
        let node = entry.node
        guard node.inputs.count >= 4, let x = types[node.inputs[0]], x.shape.rank == 4,
            let w = types[node.inputs[3]], w.shape.rank == 4, w.shape[2] == w.shape[3], [3, 5, 7].contains(w.shape[2]),
            ((try? node.ints("dilations")) ?? nil).map({ $0.allSatisfy { $0 == 1 } }) ?? true,
            case let strides = ((try? node.ints("strides")) ?? nil) ?? [1, 1], strides.count == 2,
            strides[0] == strides[1], [1, 2].contains(strides[0])
        else { return false }
        return true
    }

    /// A `_QLinearAdd` of two operands of its output's shape (no broadcasting: the same per element in any order).
    private func sameShapeAdd(_ entry: Fusion.LiveNode) -> Bool {
        let node = entry.node
        guard node.inputs.count >= 4, let a = types[node.inputs[0]], let b = types[node.inputs[3]],
            let y = entry.outputTypes.first, a.shape == y.shape, b.shape == y.shape, y.shape.rank == 4
        else { return false }
        return true
    }
}
