import InferenceGraph
import InferenceTensor

/// Model inputs read from a file and fitted to the model's declared inputs.
struct LoadedInputs {
    var tensors: [NamedTensor]
    /// Samples in the batch (the leading dimension after fitting); 1 for a single sample.
    var batchSize: Int
    /// Notes for stderr about conversions made (e.g. float64 → float32).
    var notes: [String]

    /// Reads the `--input` arguments and fits them to `graph`'s inputs. Each argument is `file.npy`,
    /// `file.npz` (arrays matched to inputs by name, or `arr_0`, … by position) or `name=file.npy`.
    /// A file without the batch dimension is one sample; float64/float16 data is converted to float32.
    /// - Throws: `NPYError` for unreadable files, `InputError` naming the file, the expected and the actual
    ///   shape or dtype when the data cannot feed the model.
    static func load(arguments: [String], for graph: Graph) throws -> LoadedInputs {
        let arrays = try readArguments(arguments)
        let declared = graph.runtimeInputs
        var notes: [String] = []
        var fitted: [NamedTensor] = []
        var batch = 1
        for (position, info) in declared.enumerated() {
            let entry: GivenArray
            if let named = arrays.first(where: { $0.array.name == info.name && $0.explicitName }) {
                entry = named
            } else if declared.count > 1, let named = arrays.first(where: { $0.array.name == info.name }) {
                entry = named
            } else if declared.count == 1 && arrays.count == 1, let only = arrays.first {
                entry = only
            } else if let named = arrays.first(where: { $0.array.name == info.name }) {
                entry = named
            } else if declared.count == arrays.count && arrays.allSatisfy({ $0.array.name.hasPrefix("arr_") }) {
                entry = arrays[position]  // np.savez(positional, ...) names arrays arr_0, arr_1, ...
            } else {
                throw InputError(
                    description: """
                        no data for model input '\(info.name)' (given: \(arrays.map(\.source).joined(separator: ", ")); \
                        the model's inputs: \(declared.map(\.name).joined(separator: ", "))). Use --input \(info.name)=file.npy
                        """)
            }
            let array = entry.array
            let source = entry.source
            var tensor = array.tensor
            if tensor.dtype != info.dtype {
                guard info.dtype == .float32, tensor.dtype.isFloatingPoint else {
                    throw InputError(
                        description: """
                            \(source): holds \(tensor.dtype) data, but model input '\(info.name)' takes \(info.dtype). \
                            Save the array as \(info.dtype) (e.g. x.astype(np.\(info.dtype)))
                            """)
                }
                notes.append("\(source): converted \(tensor.dtype) to float32, the type of model input '\(info.name)'")
                tensor = try convertToFloat32(tensor)
            }
            if let dims = info.dimensions, dims.count == tensor.shape.rank + 1, case .symbolic = dims[0] {
                let candidate = try tensor.reshaped(Shape([1] + tensor.shape.dimensions))
                if info.accepts(candidate.shape) { tensor = candidate }
            }
            guard info.accepts(tensor.shape) else {
                throw InputError(
                    description: """
                        \(source): shape \(array.tensor.shape) does not fit model input '\(info.name)' of shape \(info.shapeDescription) \
                        (\(graph.name) expects \(describeExpected(info)))
                        """)
            }
            if position == 0, let first = tensor.shape.dimensions.first, tensor.shape.rank > 0 { batch = first }
            fitted.append(NamedTensor(name: info.name, tensor: tensor))
        }
        for extra in arrays where extra.explicitName && !declared.contains(where: { $0.name == extra.array.name }) {
            throw InputError(
                description:
                    "\(extra.source): the model has no input named '\(extra.array.name)' (its inputs: \(declared.map(\.name).joined(separator: ", ")))"
            )
        }
        return LoadedInputs(tensors: fitted, batchSize: batch, notes: notes)
    }

    typealias GivenArray = (array: NamedTensor, source: String, explicitName: Bool)

    /// The arrays of every --input argument (`name=file.npy`, or every array of a file or archive), each with the
    /// file (and archive member) it came from; no two with the same name.
    private static func readArguments(_ arguments: [String]) throws -> [GivenArray] {
        var arrays: [GivenArray] = []
        for argument in arguments {
            if let equals = argument.firstIndex(of: "="), !argument.hasPrefix("/"), !argument.hasPrefix(".") {
                let name = String(argument[..<equals])
                let path = String(argument[argument.index(after: equals)...])
                let read = try NumPyFile.readArrays(path: path)
                guard read.count == 1, let only = read.first else {
                    throw InputError(
                        description: "\(path): holds \(read.count) arrays; name=file needs a file with exactly one")
                }
                arrays.append((NamedTensor(name: name, tensor: only.tensor), path, true))
            } else {
                let read = try NumPyFile.readArrays(path: argument)
                guard !read.isEmpty else { throw InputError(description: "\(argument): the archive holds no arrays") }
                let isArchive = argument.hasSuffix(".npz") || read.count > 1
                for array in read {
                    arrays.append((array, isArchive ? "\(argument):\(array.name)" : argument, false))
                }
            }
        }
        for (index, entry) in arrays.enumerated() {
            if let earlier = arrays[..<index].first(where: { $0.array.name == entry.array.name }) {
                throw InputError(
                    description: "two inputs are named '\(entry.array.name)' (\(earlier.source) and \(entry.source)); "
                        + "give each model input once")
            }
        }
        return arrays
    }

    private static func describeExpected(_ info: ValueInfo) -> String {
        guard let dims = info.dimensions, let first = dims.first, case .symbolic = first else {
            return "exactly \(info.shapeDescription)"
        }
        let sample = Array(dims.dropFirst())
        let sampleText =
            sample.count == 1 ? "(\(sample[0]),)" : "(" + sample.map(\.description).joined(separator: ", ") + ")"
        return "one sample of shape \(sampleText) or a batch of shape \(info.shapeDescription)"
    }

    private static func convertToFloat32(_ tensor: Tensor) throws -> Tensor {
        let values: [Float]
        switch tensor.dtype {
        case .float64: values = try tensor.scalars(as: Double.self).map { Float($0) }
        case .float16: values = try tensor.scalars(as: Float16.self).map { Float($0) }
        case .bfloat16: values = try tensor.scalars(as: BFloat16.self).map(\.float)
        default: values = try tensor.scalars(as: Float.self)
        }
        return try Tensor(shape: tensor.shape, scalars: values)
    }
}

struct InputError: Error, CustomStringConvertible {
    var description: String
}
