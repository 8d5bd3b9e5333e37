import Foundation
import InferenceGraph
import InferenceTensor

/// The Open Inference Protocol (KServe v2) as Triton and KServe speak it over REST: request and response
/// bodies, tensor datatypes, and Triton's binary tensor extension.
public enum OIP {
    /// OIP's datatype names for our element types.
    public static func datatype(_ dtype: DType) -> String {
        switch dtype {
        case .float16: "FP16"
        case .bfloat16: "BF16"
        case .float32: "FP32"
        case .float64: "FP64"
        case .int8: "INT8"
        case .int16: "INT16"
        case .int32: "INT32"
        case .int64: "INT64"
        case .uint8: "UINT8"
        case .uint16: "UINT16"
        case .uint32: "UINT32"
        case .uint64: "UINT64"
        case .bool: "BOOL"
        }
    }

    public static func dtype(_ datatype: String) -> DType? {
        DType.allCases.first { Self.datatype($0) == datatype }
    }

    /// One value of a JSON `data` array.
    enum Scalar: Sendable {
        case integer(Int64)
        case unsigned(UInt64)
        case real(Double)
        case boolean(Bool)
    }

    /// A `data` array, flat or nested (row-major), flattened.
    struct Values: Decodable, Sendable {
        var scalars: [Scalar] = []

        init(from decoder: any Decoder) throws {
            var container = try decoder.unkeyedContainer()
            try Self.flatten(&container, into: &scalars, depth: 0)
        }

        private static func flatten(
            _ container: inout any UnkeyedDecodingContainer, into out: inout [Scalar], depth: Int
        )
            throws
        {
            guard depth < 32 else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: container.codingPath, debugDescription: "nested too deep"))
            }
            while !container.isAtEnd {
                if var nested = try? container.nestedUnkeyedContainer() {
                    try flatten(&nested, into: &out, depth: depth + 1)
                } else if let value = try? container.decode(Bool.self) {
                    out.append(.boolean(value))
                } else if let value = try? container.decode(Int64.self) {
                    out.append(.integer(value))
                } else if let value = try? container.decode(UInt64.self) {
                    out.append(.unsigned(value))
                } else if let value = try? container.decode(Double.self) {
                    out.append(.real(value))
                } else if let text = try? container.decode(String.self), let value = Self.special(text) {
                    out.append(.real(value))
                } else {
                    throw DecodingError.dataCorrupted(
                        .init(
                            codingPath: container.codingPath, debugDescription: "a value that is not a number or bool"))
                }
            }
        }

        /// NaN and the infinities, which JSON has no number for.
        static func special(_ text: String) -> Double? {
            switch text {
            case "NaN", "nan": .nan
            case "Infinity", "inf": .infinity
            case "-Infinity", "-inf": -.infinity
            default: nil
            }
        }
    }

    /// A parameter value: OIP allows strings, numbers and booleans.
    enum Parameter: Decodable, Sendable {
        case text(String)
        case number(Double)
        case flag(Bool)

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let value = try? container.decode(Bool.self) {
                self = .flag(value)
            } else if let value = try? container.decode(Double.self) {
                self = .number(value)
            } else {
                self = .text(try container.decode(String.self))
            }
        }

        var number: Double? { if case .number(let v) = self { v } else { nil } }
        var flag: Bool? {
            switch self {
            case .flag(let v): v
            case .number(let v): v != 0
            case .text(let t): t == "true"
            }
        }
    }

    struct RequestInput: Decodable, Sendable {
        var name: String
        var shape: [Int64]
        var datatype: String
        var parameters: [String: Parameter]?
        var data: Values?
    }

    struct RequestOutput: Decodable, Sendable {
        var name: String
        var parameters: [String: Parameter]?
    }

    struct Request: Decodable, Sendable {
        var id: String?
        var parameters: [String: Parameter]?
        var inputs: [RequestInput]
        var outputs: [RequestOutput]?
    }

    struct ResponseOutput: Encodable {
        var name: String
        var datatype: String
        var shape: [Int]
        var parameters: [String: Int]?
        var data: AnyValues?
    }

    struct Response: Encodable {
        var modelName: String
        var modelVersion: String
        var id: String?
        var outputs: [ResponseOutput]

        enum CodingKeys: String, CodingKey {
            case modelName = "model_name", modelVersion = "model_version", id, outputs
        }
    }

    /// Output values for JSON.
    enum AnyValues: Encodable {
        case reals([Double])
        case floats([Float])
        case integers([Int64])
        case unsigned([UInt64])
        case booleans([Bool])

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .reals(let v): try container.encode(v)
            case .floats(let v): try container.encode(v)
            case .integers(let v): try container.encode(v)
            case .unsigned(let v): try container.encode(v)
            case .booleans(let v): try container.encode(v)
            }
        }

        init(_ tensor: Tensor) throws {
            switch tensor.dtype {
            case .float32: self = .floats(try tensor.scalars(as: Float.self))
            case .float16: self = .floats(try tensor.scalars(as: Float16.self).map { Float($0) })
            case .bfloat16: self = .floats(try tensor.scalars(as: BFloat16.self).map(\.float))
            case .float64: self = .reals(try tensor.scalars(as: Double.self))
            case .bool: self = .booleans(try tensor.scalars(as: Bool.self))
            case .int8: self = .integers(try tensor.scalars(as: Int8.self).map { Int64($0) })
            case .int16: self = .integers(try tensor.scalars(as: Int16.self).map { Int64($0) })
            case .int32: self = .integers(try tensor.scalars(as: Int32.self).map { Int64($0) })
            case .int64: self = .integers(try tensor.scalars(as: Int64.self))
            case .uint8: self = .unsigned(try tensor.scalars(as: UInt8.self).map { UInt64($0) })
            case .uint16: self = .unsigned(try tensor.scalars(as: UInt16.self).map { UInt64($0) })
            case .uint32: self = .unsigned(try tensor.scalars(as: UInt32.self).map { UInt64($0) })
            case .uint64: self = .unsigned(try tensor.scalars(as: UInt64.self))
            }
        }
    }

    struct TensorMetadata: Encodable {
        var name: String
        var datatype: String
        var shape: [Int]
    }

    struct ModelMetadata: Encodable {
        var name: String
        var versions: [String]
        var platform: String
        var inputs: [TensorMetadata]
        var outputs: [TensorMetadata]
    }

    struct ServerMetadata: Encodable {
        var name: String
        var version: String
        var extensions: [String]
    }

    struct ErrorBody: Encodable {
        var error: String
    }

    static func metadata(of info: ValueInfo) -> TensorMetadata {
        let shape = (info.dimensions ?? []).map { dimension -> Int in
            if case .fixed(let n) = dimension { return n }
            return -1
        }
        return TensorMetadata(name: info.name, datatype: datatype(info.dtype), shape: shape)
    }
}

/// A request the server refuses: the HTTP status and the message of the `{"error": ...}` body.
public struct ServeError: Error, CustomStringConvertible, Sendable {
    public var status: Int
    public var description: String

    public init(_ status: Int, _ description: String) {
        self.status = status
        self.description = description
    }

    static func badRequest(_ text: String) -> ServeError { ServeError(400, text) }
}

extension OIP {
    /// A tensor from a request input: its JSON `data`, or `binary` bytes (Triton's binary extension).
    /// - Throws: `ServeError` (400) for a shape that is negative or too large, data of the wrong size or a
    ///   value outside the datatype.
    static func tensor(_ input: RequestInput, binary: ArraySlice<UInt8>?, maxElements: Int) throws -> Tensor {
        guard let dtype = dtype(input.datatype) else {
            throw ServeError.badRequest("input '\(input.name)': unsupported datatype '\(input.datatype)'")
        }
        guard input.shape.count <= 16 else {
            throw ServeError.badRequest("input '\(input.name)': shape has \(input.shape.count) dimensions (at most 16)")
        }
        let (dims, count) = try checkedShape(input, maxElements: maxElements)
        let shape = Shape(dims)
        if let binary {
            guard binary.count == count * dtype.byteSize else {
                throw ServeError.badRequest(
                    "input '\(input.name)': binary data has \(binary.count) bytes; shape \(input.shape) of "
                        + "\(input.datatype) needs \(count * dtype.byteSize)")
            }
            var tensor = try Tensor(uninitialized: dtype, shape: shape)
            try tensor.withUnsafeMutableBytes { target in
                binary.withUnsafeBytes { source in
                    if let base = source.baseAddress, let to = target.baseAddress {
                        to.copyMemory(from: base, byteCount: source.count)
                    }
                }
            }
            return tensor
        }
        guard let values = input.data?.scalars else {
            throw ServeError.badRequest("input '\(input.name)': no data (neither \"data\" nor binary_data_size)")
        }
        guard values.count == count else {
            throw ServeError.badRequest(
                "input '\(input.name)': \(values.count) values for shape \(input.shape) (\(count) elements)")
        }
        return try typed(values, dtype: dtype, shape: shape, input: input)
    }

    /// The shape of a request input, checked: at most 16 dimensions, none negative, at most `maxElements` in all.
    static func checkedShape(_ input: RequestInput, maxElements: Int) throws -> (dims: [Int], count: Int) {
        var dims: [Int] = []
        var count = 1
        for dim in input.shape {
            guard dim >= 0, let d = Int(exactly: dim) else {
                throw ServeError.badRequest("input '\(input.name)': negative dimension \(dim) in shape \(input.shape)")
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, product <= maxElements else {
                throw ServeError.badRequest(
                    "input '\(input.name)': shape \(input.shape) exceeds \(maxElements) elements")
            }
            count = product
            dims.append(d)
        }
        return (dims, count)
    }

    /// JSON values as a tensor of `dtype`: every value must fit the type exactly (integers from whole reals, bools
    /// from 0 and 1).
    static func typed(_ values: [Scalar], dtype: DType, shape: Shape, input: RequestInput) throws -> Tensor {
        func fail(_ index: Int) -> ServeError {
            ServeError.badRequest("input '\(input.name)': value \(index) does not fit \(input.datatype)")
        }
        func reals() throws -> [Double] {
            try values.enumerated().map { index, value in
                switch value {
                case .real(let v): v
                case .integer(let v): Double(v)
                case .unsigned(let v): Double(v)
                case .boolean: throw fail(index)
                }
            }
        }
        func integers<T: FixedWidthInteger>(_: T.Type) throws -> [T] {
            try values.enumerated().map { index, value in
                switch value {
                case .integer(let v): guard let x = T(exactly: v) else { throw fail(index) }; return x
                case .unsigned(let v): guard let x = T(exactly: v) else { throw fail(index) }; return x
                case .real(let v):
                    guard v.rounded() == v, let x = T(exactly: v) else { throw fail(index) }
                    return x
                case .boolean(let b): return b ? 1 : 0
                }
            }
        }
        switch dtype {
        case .float32: return try Tensor(shape: shape, scalars: try reals().map { Float($0) })
        case .float64: return try Tensor(shape: shape, scalars: try reals())
        case .float16: return try Tensor(shape: shape, scalars: try reals().map { Float16(Float($0)) })
        case .bfloat16: return try Tensor(shape: shape, scalars: try reals().map { BFloat16(Float($0)) })
        case .bool:
            return try Tensor(
                shape: shape,
                scalars: try values.enumerated().map { index, value -> Bool in
                    switch value {
                    case .boolean(let b): return b
                    case .integer(let v) where v == 0 || v == 1: return v == 1
                    default: throw fail(index)
                    }
                })
        case .int8: return try Tensor(shape: shape, scalars: try integers(Int8.self))
        case .int16: return try Tensor(shape: shape, scalars: try integers(Int16.self))
        case .int32: return try Tensor(shape: shape, scalars: try integers(Int32.self))
        case .int64: return try Tensor(shape: shape, scalars: try integers(Int64.self))
        case .uint8: return try Tensor(shape: shape, scalars: try integers(UInt8.self))
        case .uint16: return try Tensor(shape: shape, scalars: try integers(UInt16.self))
        case .uint32: return try Tensor(shape: shape, scalars: try integers(UInt32.self))
        case .uint64: return try Tensor(shape: shape, scalars: try integers(UInt64.self))
        }
    }
}
