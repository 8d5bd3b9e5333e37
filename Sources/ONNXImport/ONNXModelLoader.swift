import InferenceGraph
import InferenceTensor
import ONNXProto
import SwiftProtobuf

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Reads ONNX model files into `Graph`. The only code that sees protobuf types.
///
/// Accepts any IR version and opset number: each operator's own version decides its semantics at plan
/// time. Initializers in every storage form, Constant nodes (turned into initializers), attributes of
/// every type, subgraphs, symbolic and unknown dimensions.
public enum ONNXModelLoader {
    /// Facts about a model file beyond its graph.
    public struct Metadata: Sendable {
        public var irVersion: Int
        public var producer: String
        public var opsets: [String: Int]
    }

    /// Loads a model file; external tensor data is read from files next to it.
    /// - Throws: `ONNXImportError` naming the file and the problem.
    public static func load(path: String) throws -> Graph { try loadWithMetadata(path: path).graph }

    public static func loadWithMetadata(path: String) throws -> (graph: Graph, metadata: Metadata) {
        let url = URL(fileURLWithPath: path)
        let data: Data
        do {
            let file = try UserFiles.openForReading(path)
            defer { file.close() }
            // Protobuf messages are limited to 2 GiB; larger weights belong in external data files.
            guard file.size <= Int(Int32.max) else {
                throw FileAccessError(
                    path: path, problem: "is \(file.size) bytes, over protobuf's 2 GiB limit (use external data)")
            }
            // Mapped, not copied (the checked descriptor of a regular file): only the pages protobuf reads are
            // brought in, and a large model is not held twice while its tensors are built.
            if file.size == 0 {
                data = Data()
            } else if let mapped = mmap(nil, file.size, PROT_READ, MAP_PRIVATE, file.fd, 0), mapped != MAP_FAILED {
                let size = file.size
                data = Data(
                    bytesNoCopy: mapped, count: size, deallocator: .custom { pointer, _ in munmap(pointer, size) })
            } else {
                var bytes = Data(count: file.size)
                let got = try bytes.withUnsafeMutableBytes { buffer throws(FileAccessError) in
                    try file.read(into: buffer)
                }
                data = bytes.prefix(got)
            }
        } catch let error as FileAccessError {
            throw ONNXImportError(
                source: path,
                problem: error.isMissing
                    ? "no such file"
                    : error.problem.hasPrefix("is a folder")
                        ? "is a directory, not an .onnx file"
                        : error.problem)
        }
        return try load(data: data, source: path, baseDirectory: url.deletingLastPathComponent())
    }

    /// Loads a serialized ModelProto held in memory.
    /// - Throws: `ONNXImportError` naming `source`.
    public static func load(data: Data, source: String, baseDirectory: URL?) throws -> (
        graph: Graph, metadata: Metadata
    ) {
        let model: Onnx_ModelProto
        do {
            var options = BinaryDecodingOptions()
            options.messageDepthLimit = 256
            model = try Onnx_ModelProto(serializedBytes: data, options: options)
        } catch {
            throw ONNXImportError(
                source: source,
                problem: "not an ONNX model (protobuf decoding failed: \(error)); is the file truncated?")
        }
        guard model.hasGraph else {
            throw ONNXImportError(
                source: source, problem: "not an ONNX model: it has no graph (a truncated or non-ONNX file?)")
        }
        var opsets: [String: Int] = [:]
        for entry in model.opsetImport {
            let domain = entry.domain == "ai.onnx" ? "" : entry.domain
            opsets[domain] = Int(entry.version)
        }
        if opsets[""] == nil { opsets[""] = model.irVersion <= 2 ? 1 : 7 }
        let converter = GraphConverter(source: source, baseDirectory: baseDirectory, opsets: opsets)
        let graph = try converter.graph(model.graph, isSubgraph: false)
        return (
            graph,
            Metadata(
                irVersion: Int(model.irVersion), producer: "\(model.producerName) \(model.producerVersion)",
                opsets: opsets)
        )
    }
}

/// Converts GraphProto (and nested subgraphs) into `Graph`.
struct GraphConverter {
    let source: String
    let baseDirectory: URL?
    let opsets: [String: Int]

    func graph(_ proto: Onnx_GraphProto, isSubgraph: Bool) throws -> Graph {
        var initializers: [String: Tensor] = [:]
        for initializer in proto.initializer {
            // onnxruntime keeps the first of two initializers with one name, other readers the last: refuse.
            guard initializers[initializer.name] == nil else {
                throw ONNXImportError(
                    source: source,
                    problem: "initializer '\(initializer.name)' is defined twice; each initializer needs its own name")
            }
            initializers[initializer.name] = try ONNXTensor.tensor(
                from: initializer, source: source, baseDirectory: baseDirectory)
        }
        if !proto.sparseInitializer.isEmpty {
            throw ONNXImportError(source: source, problem: "sparse initializers are not supported")
        }
        var nodes: [Node] = []
        for (index, nodeProto) in proto.node.enumerated() {
            let node = try self.node(nodeProto, index: index)
            if node.opType == "Constant" && node.domain.isEmpty, let output = node.outputs.first {
                initializers[output] = try constantValue(node)
                continue
            }
            if node.opType == "Upsample" && node.domain.isEmpty {
                nodes.append(try upsampleAsResize(node, initializers: &initializers))
                continue
            }
            nodes.append(node)
        }
        let inputs = try proto.input.map {
            try valueInfo($0, role: "input", required: !isSubgraph && initializers[$0.name] == nil)
        }
        let outputs = try proto.output.map { try valueInfo($0, role: "output", required: false) }
        return Graph(
            name: proto.name.isEmpty ? "graph" : proto.name, inputs: inputs, outputs: outputs, nodes: nodes,
            initializers: initializers, opsetImports: opsets)
    }

    /// Upsample (opsets 7-9, deprecated since 10) is Resize with asymmetric coordinates, nearest rounding down:
    /// rewritten so one kernel serves both. Opset 7's `scales` attribute becomes an initializer.
    private func upsampleAsResize(_ node: Node, initializers: inout [String: Tensor]) throws -> Node {
        var resize = node
        resize.opType = "Resize"
        let mode = (try? node.string("mode", default: "nearest")) ?? "nearest"
        resize.attributes = [
            "mode": .string(mode == "bilinear" ? "linear" : mode),
            "coordinate_transformation_mode": .string("asymmetric"), "nearest_mode": .string("floor"),
        ]
        var scales = node.inputs.count > 1 ? node.inputs[1] : ""
        if scales.isEmpty, let values = try node.floats("scales") {
            scales = "\(node.outputs.first ?? "upsample")__scales"
            initializers[scales] = try Tensor(shape: [values.count], scalars: values)
        }
        let opset = opsets[""] ?? 1
        resize.inputs = opset >= 11 ? [node.inputs.first ?? "", "", scales] : [node.inputs.first ?? "", scales]
        return resize
    }

    private func valueInfo(_ proto: Onnx_ValueInfoProto, role: String, required: Bool) throws -> ValueInfo {
        guard case .tensorType(let tensorType)? = proto.type.value else {
            if required || proto.type.value != nil {
                throw ONNXImportError(
                    source: source,
                    problem:
                        "graph \(role) '\(proto.name)' is not a tensor (sequences, maps and optionals are not supported)"
                )
            }
            return ValueInfo(name: proto.name, dtype: .float32, dimensions: nil)
        }
        guard let dtype = ONNXTensor.dtype(onnx: tensorType.elemType) else {
            if required || tensorType.elemType != 0 {
                throw ONNXImportError(
                    source: source,
                    problem:
                        "graph \(role) '\(proto.name)' has element type \(ONNXTensor.typeName(onnx: tensorType.elemType)), which is not supported"
                )
            }
            return ValueInfo(name: proto.name, dtype: .float32, dimensions: nil)
        }
        guard tensorType.hasShape else { return ValueInfo(name: proto.name, dtype: dtype, dimensions: nil) }
        let dims: [InferenceGraph.Dimension] = tensorType.shape.dim.map { dim in
            switch dim.value {
            case .dimValue(let n)? where n >= 0: .fixed(Int(n))
            case .dimParam(let name)? where !name.isEmpty: .symbolic(name)
            default: .symbolic("?")
            }
        }
        return ValueInfo(name: proto.name, dtype: dtype, dimensions: dims)
    }

    private func node(_ proto: Onnx_NodeProto, index: Int) throws -> Node {
        var attributes: [String: AttributeValue] = [:]
        let name = proto.name.isEmpty ? "#\(index)" : proto.name
        for attribute in proto.attribute {
            attributes[attribute.name] = try value(attribute, node: "\(proto.opType) node '\(name)'")
        }
        return Node(
            name: proto.name, opType: proto.opType, domain: proto.domain == "ai.onnx" ? "" : proto.domain,
            inputs: proto.input, outputs: proto.output, attributes: attributes)
    }

    private func value(_ attribute: Onnx_AttributeProto, node: String) throws -> AttributeValue {
        let what = "\(node), attribute '\(attribute.name)'"
        if !attribute.refAttrName.isEmpty {
            throw ONNXImportError(
                source: source,
                problem: "\(what) refers to a function attribute; model-local functions are not supported")
        }
        var type = attribute.type
        if type == .undefined {
            // Very old exporters leave the type unset: take the field that is present.
            if attribute.hasF {
                type = .float
            } else if attribute.hasI {
                type = .int
            } else if attribute.hasS {
                type = .string
            } else if attribute.hasT {
                type = .tensor
            } else if attribute.hasG {
                type = .graph
            } else if !attribute.floats.isEmpty {
                type = .floats
            } else if !attribute.ints.isEmpty {
                type = .ints
            } else if !attribute.strings.isEmpty {
                type = .strings
            } else if !attribute.tensors.isEmpty {
                type = .tensors
            } else if !attribute.graphs.isEmpty {
                type = .graphs
            }
        }
        switch type {
        case .float: return .float(attribute.f)
        case .int: return .int(Int(attribute.i))
        case .string: return .string(String(decoding: attribute.s, as: UTF8.self))
        case .tensor:
            return .tensor(try ONNXTensor.tensor(from: attribute.t, source: source, baseDirectory: baseDirectory))
        case .graph: return .graph(try graph(attribute.g, isSubgraph: true))
        case .floats: return .floats(attribute.floats)
        case .ints: return .ints(attribute.ints.map { Int($0) })
        case .strings: return .strings(attribute.strings.map { String(decoding: $0, as: UTF8.self) })
        case .tensors:
            return .tensors(
                try attribute.tensors.map {
                    try ONNXTensor.tensor(from: $0, source: source, baseDirectory: baseDirectory)
                })
        case .graphs: return .graphs(try attribute.graphs.map { try graph($0, isSubgraph: true) })
        default:
            throw ONNXImportError(source: source, problem: "\(what) has type \(type), which is not supported")
        }
    }

    /// The tensor a Constant node produces, from whichever value attribute it carries.
    private func constantValue(_ node: Node) throws -> Tensor {
        let what = "\(node.displayName)"
        do {
            switch node.attributes.first(where: { $0.key.hasPrefix("value") || $0.key == "sparse_value" }) {
            case (_, .tensor(let t))?: return t
            case ("value_float", .float(let v))?: return try Tensor(shape: [], scalars: [v])
            case ("value_floats", .floats(let v))?: return try Tensor(shape: [v.count], scalars: v)
            case ("value_int", .int(let v))?: return try Tensor(shape: [], scalars: [Int64(v)])
            case ("value_ints", .ints(let v))?: return try Tensor(shape: [v.count], scalars: v.map { Int64($0) })
            case (let key, _)?:
                throw ONNXImportError(
                    source: source,
                    problem: "\(what): Constant with '\(key)' is not supported (string and sparse constants)")
            case nil:
                throw ONNXImportError(source: source, problem: "\(what): Constant without a value attribute")
            }
        } catch let error as ONNXImportError {
            throw error
        } catch {
            throw ONNXImportError(source: source, problem: "\(what): \(error)")
        }
    }
}
