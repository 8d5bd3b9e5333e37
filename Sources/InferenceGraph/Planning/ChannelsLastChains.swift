import InferenceTensor

/// Marks the values around depthwise convolutions that pass channels last (`FusionRules.channelsLastDepthwise`).
///
/// A depthwise layer computes V channels at once in the lanes of a vector, so it needs each position's channels
/// adjacent; in planes ([C][H][W]) it transposes its whole input into that order and its output back. A 1x1
/// convolution is a GEMM either way round: Y = W·X over planes, or Yᵀ = Xᵀ·Wᵀ with positions as rows, which reads
/// and writes channels last. So in the chains of inverted-residual blocks (1x1 expansion → depthwise → 1x1
/// projection) the expansion writes its output channels last, the depthwise layer reads and writes it so, and the
/// projection reads it so: the two wide tensors (six times the block's channels in MobileNetV2) are never
/// transposed; only the thin ones at the chain's ends are, inside the 1x1 layers. A value is marked only where its
/// producer and its only reader both take the layout, so every value anyone else reads stays in planes.
extension Fusion.Candidates {
    mutating func markChannelsLastChains() {
        let producer = producers()
        for index in nodes.indices {
            guard let depthwise = nodes[index], isChannelsLastDepthwise(depthwise),
                let input = depthwise.node.inputs.first, let output = depthwise.node.outputs.first
            else { continue }
            // Only where the depthwise layer is at least twice as wide as the chain's ends: each end's 1x1 layer
            // transposes its thin side instead, and with equal widths (ShuffleNetV2's 58 channels at 28x28) that
            // cost as much as it saved, the 1x1 layers running 30% slower.
            // Over 28x28 planes and more, four times as wide: MobileNetV3's 40 -> 120 -> 40 blocks at 28x28 ran
            // their 1x1 layers 0.013-0.022 ms slower each for 0.015-0.021 ms saved in the depthwise layer (one
            // thread, AVX-512); MobileNetV2's 32 -> 192 -> 32 gained.
            let channels = depthwise.outputTypes.first?.shape[1] ?? 0
            let factor = (depthwise.outputTypes.first?.shape[3] ?? 0) >= 28 ? 4 : 2
            let thin = channels / factor
            let projection = soleConsumer(of: output).flatMap { c in
                nodes[c].flatMap { isChannelsLastPointwise($0, thinSide: 0, atMost: thin) ? c : nil }
            }
            if let c = projection {
                mark(index, FusionRules.channelsLastOutputAttribute)
                mark(c, FusionRules.channelsLastInputAttribute)
            }
            let excitation = projection == nil ? self.excitation(of: output, channels: channels, thin: thin) : nil
            if let (pool, mul, image, c) = excitation {
                // A squeeze-and-excitation block between: its pool and gate multiply read the output channels
                // last too, and the gated output reaches the projection so.
                mark(index, FusionRules.channelsLastOutputAttribute)
                mark(pool, FusionRules.channelsLastInputAttribute)
                mark(mul, FusionRules.channelsLastInputAttribute, value: image + 1)
                mark(mul, FusionRules.channelsLastOutputAttribute)
                mark(c, FusionRules.channelsLastInputAttribute)
            }
            // Without the projection (another reader of the output), only the input's transpose is saved, and the
            // expansion pays one of its own input: a gain over 14x14 and 7x7 planes, a loss over 28x28 and 56x56
            // (MobileNetV3's 40 -> 120 expansion at 28x28 0.083 -> 0.098 ms, its depthwise layer level; one
            // thread, AVX-512).
            if let p = producer[input], let expansion = nodes[p],
                isChannelsLastPointwise(expansion, thinSide: 1, atMost: thin),
                soleConsumer(of: input) == index,
                projection != nil || excitation != nil
                    || (depthwise.outputTypes.first.map { $0.shape[3] <= 14 } ?? false)
            {
                mark(p, FusionRules.channelsLastOutputAttribute)
                mark(index, FusionRules.channelsLastInputAttribute)
            }
        }
    }

    private mutating func mark(_ index: Int, _ attribute: String, value: Int = 1) {
        guard var entry = nodes[index] else { return }
        entry.node.attributes[attribute] = .int(value)
        nodes[index] = entry
    }

    /// A squeeze-and-excitation block over the depthwise output `value` (C channels): its only readers are a
    /// GlobalAveragePool and a Mul by a [1, C, 1, 1] gate, and the Mul's output is read only by a 1x1 projection
    /// to at most `thin` channels. Returns the pool, the Mul, the Mul's input index of `value`, and the projection.
    private func excitation(of value: String, channels: Int, thin: Int) -> (Int, Int, Int, Int)? {
        guard !graphOutputs.contains(value), let readers = consumers[value], readers.count == 2 else { return nil }
        var pool: Int?, gated: (Int, Int)?
        for r in readers {
            guard let reader = nodes[r], reader.node.domain.isEmpty else { return nil }
            if reader.node.opType == "GlobalAveragePool", reader.node.inputs == [value] {
                pool = r
            } else if reader.node.opType == "Mul", reader.node.inputs.count == 2,
                reader.node.inputs.filter({ $0 == value }).count == 1,
                let image = reader.node.inputs.firstIndex(of: value),
                let gate = types[reader.node.inputs[1 - image]], gate.dtype == .float32,
                gate.shape == [1, channels, 1, 1], reader.outputTypes.first?.shape == types[value]?.shape,
                reader.outputTypes.first?.dtype == .float32
            {
                gated = (r, image)
            }
        }
        guard let pool, let (mul, image) = gated, let gatedValue = nodes[mul]?.node.outputs.first,
            let c = soleConsumer(of: gatedValue), let projection = nodes[c],
            isChannelsLastPointwise(projection, thinSide: 0, atMost: thin)
        else { return nil }
        return (pool, mul, image, c)
    }

    /// A float32 Conv of one image (rank 4, batch 1) with a plan-time weight and no fused max pool.
    private func isPlainConv(_ entry: Fusion.LiveNode) -> (x: Shape, w: Shape)? {
        guard entry.node.opType == "Conv", entry.node.domain.isEmpty, entry.node.outputs.count == 1,
            entry.node.inputs.count >= 2, entry.outputTypes.first?.dtype == .float32,
            entry.outputTypes.first?.shape.rank == 4, entry.node.attributes[FusionRules.maxPoolAttribute] == nil,
            let xType = types[entry.node.inputs[0]], xType.dtype == .float32, xType.shape.rank == 4,
            xType.shape[0] == 1, let weight = known[entry.node.inputs[1]], weight.dtype == .float32,
            weight.shape.rank == 4,
            (try? entry.node.ints("dilations")).map({ $0 == [1, 1] }) ?? true
        else { return nil }
        if entry.node.inputs.count > 2, !entry.node.inputs[2].isEmpty {
            guard let bias = known[entry.node.inputs[2]], bias.dtype == .float32,
                bias.shape.elementCount == weight.shape[0]
            else { return nil }
        }
        return (xType.shape, weight.shape)
    }

    /// A 1x1, stride-1, unpadded, ungrouped convolution (`ConvKernel`'s transposed GEMM) whose other side (weight
    /// dimension `thinSide`: 0 its outputs, 1 its inputs) has at most `atMost` channels.
    private func isChannelsLastPointwise(_ entry: Fusion.LiveNode, thinSide: Int, atMost: Int) -> Bool {
        guard let (x, w) = isPlainConv(entry), w[2] == 1, w[3] == 1, w[1] == x[1], w[thinSide] <= atMost,
            (try? entry.node.int("group", default: 1)) == 1,
            (try? entry.node.ints("strides")).map({ $0 == [1, 1] }) ?? true,
            (try? entry.node.ints("pads")).map({ $0.allSatisfy { $0 == 0 } }) ?? true,
            ["NOTSET", "VALID"].contains((try? entry.node.string("auto_pad", default: "NOTSET")) ?? "")
        else { return false }
        return true
    }

    /// A depthwise convolution the channels-in-lanes kernel runs: one filter per channel, a 3x3, 5x5 or 7x7
    /// window, stride 1 or 2 both ways.
    private func isChannelsLastDepthwise(_ entry: Fusion.LiveNode) -> Bool {
        guard let (x, w) = isPlainConv(entry), let group = try? entry.node.int("group", default: 1), group > 1,
            group == x[1], w[0] == group, w[1] == 1, w[2] == w[3], [3, 5, 7].contains(w[2]),
            case let strides = ((try? entry.node.ints("strides")) ?? nil) ?? [1, 1], strides.count == 2,
            strides[0] == strides[1],
            [1, 2].contains(strides[0]),
            // Over rows of 48 and more, 3x3 stride-1 windows run per plane without transposes, and the chain's 1x1
            // layers run faster over planes: MobileNetV2's 32 channels at 112x112 (stride-1) 0.134 -> 0.230 ms,
            // its 16 -> 96 expansion at 112x112 0.583 -> 0.808, 144 -> 24 at 56x56 0.227 -> 0.295 channels last
            // (one thread, AVX-512); from 28x28 down every layer of the chain was as fast or faster.
            let width = entry.outputTypes.first?.shape[3], width < 48
        else { return false }
        return true
    }
}
