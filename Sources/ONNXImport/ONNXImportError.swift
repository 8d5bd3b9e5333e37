/// A model file that cannot be imported, naming the file and what is wrong.
public struct ONNXImportError: Error, Equatable, CustomStringConvertible {
    public var source: String
    public var problem: String

    public init(source: String, problem: String) {
        self.source = source
        self.problem = problem
    }

    public var description: String { "\(source): \(problem)" }
}
