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

/// TensorProto ↔ Tensor: every storage form (raw_data, the typed fields, external data files).
public enum ONNXTensor {
    /// ONNX's TensorProto.DataType numbers (one table, shared with shape inference's Cast).
    static func dtype(onnx code: Int32) -> DType? { ShapeInference.onnxDType(Int(code)) }

    static func typeName(onnx code: Int32) -> String {
        let names: [Int32: String] = [
            0: "undefined", 8: "string", 14: "complex64", 15: "complex128", 17: "float8e4m3fn",
            18: "float8e4m3fnuz", 19: "float8e5m2", 20: "float8e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4e2m1",
        ]
        return dtype(onnx: code)?.rawValue ?? names[code] ?? "type \(code)"
    }

    /// Decodes a serialized TensorProto (the `.pb` files of the ONNX backend tests).
    /// - Throws: `ONNXImportError` naming `source`.
    public static func decode(serialized data: Data, source: String) throws -> NamedTensor {
        let proto: Onnx_TensorProto
        do { proto = try Onnx_TensorProto(serializedBytes: data) } catch {
            throw ONNXImportError(source: source, problem: "not a serialized ONNX TensorProto (\(error))")
        }
        return NamedTensor(name: proto.name, tensor: try tensor(from: proto, source: source, baseDirectory: nil))
    }

    /// Converts a TensorProto. External data is read relative to `baseDirectory` (the model's folder).
    /// - Throws: `ONNXImportError` for unsupported element types, sizes that do not match the dims,
    ///   and external data that is missing or outside the model's folder.
    static func tensor(from proto: Onnx_TensorProto, source: String, baseDirectory: URL?) throws -> Tensor {
        let what = proto.name.isEmpty ? "tensor" : "tensor '\(proto.name)'"
        guard let dtype = dtype(onnx: proto.dataType) else {
            throw ONNXImportError(
                source: source,
                problem: "\(what) has element type \(typeName(onnx: proto.dataType)), which is not supported")
        }
        guard proto.dims.allSatisfy({ $0 >= 0 }) else {
            throw ONNXImportError(source: source, problem: "\(what) has a negative dimension \(proto.dims)")
        }
        let dims = proto.dims.map { Int($0) }
        let byteCount: Int
        do { byteCount = try Tensor.byteCount(dtype: dtype, dimensions: dims) } catch {
            throw ONNXImportError(source: source, problem: "\(what) of shape \(dims) is too large")
        }
        let count = byteCount / dtype.byteSize
        func mismatch(_ got: Int) -> ONNXImportError {
            ONNXImportError(source: source, problem: "\(what) has shape \(dims) (\(count) elements) but holds \(got)")
        }
        // The data must match the shape before anything is allocated: a few bytes of model can claim any shape.
        var external: ExternalData?
        if proto.dataLocation == .external {
            external = try externalData(
                proto, what: what, source: source, baseDirectory: baseDirectory, byteCount: byteCount,
                elementSize: dtype.byteSize)
        } else if proto.hasRawData {
            guard proto.rawData.count == byteCount else { throw mismatch(proto.rawData.count / max(dtype.byteSize, 1)) }
        } else {
            let provided = typedCount(proto, dtype)
            guard provided == count else { throw mismatch(provided) }
        }
        var tensor: Tensor
        do { tensor = try Tensor(zeros: dtype, shape: Shape(dims)) } catch {
            throw ONNXImportError(source: source, problem: "cannot allocate \(what) of shape \(dims)")
        }
        if let external {
            defer { external.file.close() }
            do {
                try tensor.withUnsafeMutableBytes { buffer in try external.file.read(into: buffer, at: external.offset)
                }
            } catch let error as FileAccessError {
                throw ONNXImportError(source: source, problem: "\(what): external data \(error)")
            }
        } else if proto.hasRawData {
            try tensor.withUnsafeMutableBytes { $0.copyBytes(from: proto.rawData) }
        } else {
            try fillTyped(&tensor, from: proto, count: count, mismatch: mismatch)
        }
        if dtype == .bool { try tensor.withUnsafeMutableBytes { for i in $0.indices where $0[i] > 1 { $0[i] = 1 } } }
        return tensor
    }

    /// Values in the typed field that holds `dtype`'s data.
    private static func typedCount(_ proto: Onnx_TensorProto, _ dtype: DType) -> Int {
        switch dtype {
        case .float32: proto.floatData.count
        case .float64: proto.doubleData.count
        case .int64: proto.int64Data.count
        case .int32, .int16, .int8, .uint16, .uint8, .bool, .float16, .bfloat16: proto.int32Data.count
        case .uint32, .uint64: proto.uint64Data.count
        }
    }

    private static func fillTyped(
        _ tensor: inout Tensor, from proto: Onnx_TensorProto, count: Int, mismatch: (Int) -> ONNXImportError
    ) throws {
        func store<T>(_ values: [T]) throws {
            guard values.count == count else { throw mismatch(values.count) }
            try tensor.withUnsafeMutableBytes { bytes in values.withUnsafeBytes { bytes.copyMemory(from: $0) } }
        }
        switch tensor.dtype {
        case .float32: try store(proto.floatData)
        case .float64: try store(proto.doubleData)
        case .int64: try store(proto.int64Data)
        case .int32: try store(proto.int32Data)
        case .int16: try store(proto.int32Data.map { Int16(truncatingIfNeeded: $0) })
        case .int8: try store(proto.int32Data.map { Int8(truncatingIfNeeded: $0) })
        case .uint16: try store(proto.int32Data.map { UInt16(truncatingIfNeeded: $0) })
        case .uint8: try store(proto.int32Data.map { UInt8(truncatingIfNeeded: $0) })
        case .bool: try store(proto.int32Data.map { $0 != 0 })
        case .float16, .bfloat16: try store(proto.int32Data.map { UInt16(truncatingIfNeeded: $0) })  // bit patterns
        case .uint32: try store(proto.uint64Data.map { UInt32(truncatingIfNeeded: $0) })
        case .uint64: try store(proto.uint64Data)
        }
    }

    /// An external data record, checked: an open regular file inside the model's folder and the offset of
    /// exactly the tensor's bytes within it.
    private struct ExternalData {
        var file: ReadableFile
        var offset: Int
    }

    /// Validates an external data record before anything is read or allocated: the location must resolve (after
    /// symlinks) inside the model's folder, the file must be a regular file, and offset + length must lie within
    /// it and hold exactly the tensor's `byteCount` bytes. Only those bytes are read later.
    private static func externalData(
        _ proto: Onnx_TensorProto, what: String, source: String, baseDirectory: URL?, byteCount: Int, elementSize: Int
    ) throws -> ExternalData {
        var location = ""
        var offset = 0
        var length: Int?
        func fail(_ problem: String) -> ONNXImportError {
            ONNXImportError(source: source, problem: "\(what): external data \(problem)")
        }
        for entry in proto.externalData {
            switch entry.key {
            case "location": location = entry.value
            case "offset":
                guard let value = Int(entry.value), value >= 0 else {
                    throw fail("offset '\(entry.value)' is not a non-negative integer")
                }
                offset = value
            case "length":
                guard let value = Int(entry.value), value >= 0 else {
                    throw fail("length '\(entry.value)' is not a non-negative integer")
                }
                length = value
            default: break
            }
        }
        guard let baseDirectory, !location.isEmpty else {
            throw ONNXImportError(source: source, problem: "\(what) refers to external data without a usable location")
        }
        let path: String
        let file: ReadableFile
        do {
            path = try UserFiles.resolveInside(folder: baseDirectory.path, location: location)
            file = try UserFiles.openForReading(path)
        } catch {
            throw fail("'\(location)': \(error.problem)")
        }
        let available = file.size >= offset ? file.size - offset : -1
        let problem: String? =
            if available < 0 {
                "offset \(offset) lies past the end of '\(path)' (\(file.size) bytes)"
            } else if let length, length > available {
                "length \(length) at offset \(offset) runs past the end of '\(path)' (\(file.size) bytes)"
            } else if let length, length != byteCount {
                "holds \(length) bytes (\(length / max(elementSize, 1)) elements) but the shape needs \(byteCount)"
            } else if length == nil && available != byteCount {
                "'\(path)' holds \(available) bytes after offset \(offset) but the shape needs \(byteCount)"
            } else {
                nil
            }
        if let problem {
            file.close()
            throw fail(problem)
        }
        return ExternalData(file: file, offset: offset)
    }
}
