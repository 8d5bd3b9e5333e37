import InferenceGraph
import InferenceTensor

/// Small graphs whose shapes depend on run-time values, for the staged-plan tests on every backend.
public enum StagedGraphs {
    static func info(_ name: String, _ dtype: DType, _ dims: [Dimension]?) -> ValueInfo {
        ValueInfo(name: name, dtype: dtype, dimensions: dims)
    }

    /// x [n] → the positive elements (NonZero, then Gather) and their sum: outputs `positives`, `sum`.
    public static func positives() throws -> Graph {
        Graph(
            name: "positives", inputs: [info("x", .float32, [.symbolic("n")])],
            outputs: [info("positives", .float32, nil), info("sum", .float32, nil)],
            nodes: [
                Node(name: "mask", opType: "Greater", inputs: ["x", "zero"], outputs: ["mask"]),
                Node(name: "where", opType: "NonZero", inputs: ["mask"], outputs: ["where"]),
                Node(name: "flat", opType: "Reshape", inputs: ["where", "minus_one"], outputs: ["flat"]),
                Node(name: "gather", opType: "Gather", inputs: ["x", "flat"], outputs: ["positives"]),
                Node(
                    name: "sum", opType: "ReduceSum", inputs: ["positives"], outputs: ["sum"],
                    attributes: ["keepdims": .int(0)]),
            ],
            initializers: [
                "zero": try Tensor(shape: [], scalars: [Float(0)]),
                "minus_one": try Tensor(shape: [1], scalars: [Int64(-1)]),
            ], opsetImports: ["": 13])
    }

    /// x [n] → Range(0, floor(max(x))) as float: a shape computed from data (`counted`).
    public static func rangeToMaximum() throws -> Graph {
        Graph(
            name: "range", inputs: [info("x", .float32, [.symbolic("n")])],
            outputs: [info("counted", .float32, nil)],
            nodes: [
                Node(
                    name: "max", opType: "ReduceMax", inputs: ["x"], outputs: ["max"],
                    attributes: ["keepdims": .int(0)]),
                Node(name: "limit", opType: "Cast", inputs: ["max"], outputs: ["limit"], attributes: ["to": .int(7)]),
                Node(name: "range", opType: "Range", inputs: ["start", "limit", "step"], outputs: ["range"]),
                Node(
                    name: "as_float", opType: "Cast", inputs: ["range"], outputs: ["counted"],
                    attributes: ["to": .int(1)]),
            ],
            initializers: [
                "start": try Tensor(shape: [], scalars: [Int64(0)]),
                "step": try Tensor(shape: [], scalars: [Int64(1)]),
            ], opsetImports: ["": 13])
    }

    /// A Loop adding the outer value `w` [2] to an accumulator `m` times, collecting each step, then doubling
    /// the final value: outputs `doubled` (2·m·w) and `steps` ([m, 2]: w, 2w, …).
    public static func accumulatingLoop() throws -> Graph {
        let body = Graph(
            name: "body",
            inputs: [info("i", .int64, []), info("cond_in", .bool, []), info("acc_in", .float32, [.fixed(2)])],
            outputs: [info("cond_out", .bool, []), info("acc_out", .float32, nil), info("step", .float32, nil)],
            nodes: [
                Node(name: "keep_going", opType: "Identity", inputs: ["cond_in"], outputs: ["cond_out"]),
                Node(name: "accumulate", opType: "Add", inputs: ["acc_in", "w"], outputs: ["acc_out"]),
                Node(name: "record", opType: "Identity", inputs: ["acc_out"], outputs: ["step"]),
            ], opsetImports: ["": 13])
        return Graph(
            name: "loop", inputs: [info("m", .int64, []), info("w", .float32, [.fixed(2)])],
            outputs: [info("doubled", .float32, nil), info("steps", .float32, nil)],
            nodes: [
                Node(
                    name: "loop", opType: "Loop", inputs: ["m", "", "zeros"], outputs: ["final", "steps"],
                    attributes: ["body": .graph(body)]),
                Node(name: "double", opType: "Add", inputs: ["final", "final"], outputs: ["doubled"]),
            ],
            initializers: ["zeros": try Tensor(shape: [2], scalars: [Float(0), 0])], opsetImports: ["": 13])
    }
}
