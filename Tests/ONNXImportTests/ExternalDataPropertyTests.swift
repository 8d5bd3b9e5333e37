import Foundation
import InferenceTensor
import InferenceTestSupport
import ONNXImport
import ONNXProto
import Testing

/// External data records are user input: any location, offset and length either loads exactly the tensor's bytes
/// from a regular file inside the model's folder or is an `ONNXImportError`; never a trap, a read outside the
/// folder, or an allocation the file cannot back.
struct ExternalDataPropertyTests {
    static func model(location: String?, offset: String?, length: String?, dims: [Int64]) throws -> Data {
        var tensor = Onnx_TensorProto()
        tensor.name = "w"
        tensor.dataType = 1
        tensor.dims = dims
        tensor.dataLocation = .external
        for (key, value) in [("location", location), ("offset", offset), ("length", length)] {
            guard let value else { continue }
            var entry = Onnx_StringStringEntryProto()
            entry.key = key
            entry.value = value
            tensor.externalData.append(entry)
        }
        var graph = Onnx_GraphProto()
        graph.name = "g"
        graph.initializer = [tensor]
        var node = Onnx_NodeProto()
        node.opType = "Identity"
        node.input = ["w"]
        node.output = ["y"]
        graph.node = [node]
        var output = Onnx_ValueInfoProto()
        output.name = "y"
        graph.output = [output]
        var model = Onnx_ModelProto()
        model.irVersion = 8
        model.graph = graph
        var opset = Onnx_OperatorSetIdProto()
        opset.version = 13
        model.opsetImport = [opset]
        return try model.serializedData()
    }

    @Test func randomRecordsLoadExactlyOrFailTyped() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = root.appendingPathComponent("m")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent("m_x"), withIntermediateDirectories: true)
        let bytes = (0..<256).map { UInt8($0) }
        try Data(bytes).write(to: folder.appendingPathComponent("w.bin"))
        try Data(bytes).write(to: root.appendingPathComponent("m_x/w.bin"))
        try FileManager.default.createSymbolicLink(
            atPath: folder.appendingPathComponent("up").path, withDestinationPath: root.path)
        let locations: [String?] = [
            "w.bin", "./w.bin", "../m/w.bin", "../m_x/w.bin", "up/m_x/w.bin", "up/m/w.bin", "/etc/passwd", "", ".",
            "w.bin/", "missing", "w.bin\u{0}x", nil,
        ]
        let numbers: [String?] = [
            nil, "0", "1", "4", "16", "64", "252", "256", "257", "-1", "-9223372036854775808", "9223372036854775807",
            "18446744073709551616", "abc", "", " 4", "0x10",
        ]
        var generator = SystemRandomNumberGenerator()
        var loaded = 0
        // Records that must load, then random ones.
        let valid: [(String?, String?, String?, Int)] = [
            ("w.bin", "0", "64", 16), ("./w.bin", "4", nil, 63), ("up/m/w.bin", "252", "4", 1),
            ("../m/w.bin", nil, nil, 64),
        ]
        for index in 0..<(valid.count + 600) {
            let draw =
                index < valid.count
                ? valid[index]
                : (
                    locations.randomElement(using: &generator) ?? nil, numbers.randomElement(using: &generator) ?? nil,
                    numbers.randomElement(using: &generator) ?? nil,
                    [0, 1, 4, 16, 64, 1 << 40, -1].randomElement(using: &generator) ?? 1
                )
            let (location, offset, length, count) = draw
            let data = try Self.model(location: location, offset: offset, length: length, dims: [Int64(count)])
            do {
                let graph = try ONNXModelLoader.load(data: data, source: "m.onnx", baseDirectory: folder).graph
                // Loaded: the record named a file inside the folder, and exactly the tensor's bytes were read.
                let tensor = try #require(graph.initializers["w"])
                let start = Int(offset ?? "0") ?? -1
                #expect(start >= 0 && tensor.byteCount == 4 * count)
                let expected = Array(bytes[start..<(start + tensor.byteCount)])
                #expect(tensor.withUnsafeBytes { Array($0) } == expected, "\(String(describing: location)) \(start)")
                #expect(location.map { !$0.contains("m_x") && !$0.hasPrefix("/") } == true)
                loaded += 1
            } catch is ONNXImportError {
                continue
            }
        }
        #expect(loaded >= valid.count)
    }
}
