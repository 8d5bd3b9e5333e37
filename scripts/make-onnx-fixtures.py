#!/usr/bin/env python3
"""Builds the ONNX fixture models the tests run, with the onnx helper API, and saves onnxruntime's outputs.

For every model NAME it writes Tests/ONNXImportTests/Fixtures/models/NAME.onnx, NAME.inputs.npz (arrays named
like the graph inputs) and NAME.outputs.npz (onnxruntime's results, named like the graph outputs). Models: an
MLP, a small CNN, a one-block transformer encoder (dynamic batch, shapes computed with Shape/Gather/Concat as
PyTorch exports them), and one model per operator family. Run from the repository root:
    .venv/bin/python scripts/make-onnx-fixtures.py
"""
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OUT = "Tests/ONNXImportTests/Fixtures/models"
rng = np.random.default_rng(20261129)


def w(name, *shape, scale=None):
    fan_in = shape[-1] if len(shape) > 1 else shape[0]
    scale = scale or 1.0 / np.sqrt(fan_in)
    return numpy_helper.from_array(rng.uniform(-scale, scale, size=shape).astype(np.float32), name)


def const(name, values, dtype=np.int64):
    return numpy_helper.from_array(np.array(values, dtype=dtype), name)


def save(name, graph, feeds, opset=17):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="make-onnx-fixtures")
    model.ir_version = 8
    if all(o.type.tensor_type.HasField("shape") for o in graph.output):
        onnx.checker.check_model(model)  # it rejects outputs of unknown rank, which some fixtures use on purpose
    path = os.path.join(OUT, name + ".onnx")
    onnx.save(model, path)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    outputs = session.run(None, feeds)
    np.savez(os.path.join(OUT, name + ".inputs.npz"), **feeds)
    np.savez(os.path.join(OUT, name + ".outputs.npz"), **{o.name: v for o, v in zip(session.get_outputs(), outputs)})
    print(f"{name}: {len(graph.node)} nodes, outputs {[v.shape for v in outputs]}")


def tensor(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def mlp():
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], transB=1),
        helper.make_node("Relu", ["h1"], ["a1"]),
        helper.make_node("MatMul", ["a1", "w2"], ["m2"]),
        helper.make_node("Add", ["m2", "b2"], ["h2"]),
        helper.make_node("Relu", ["h2"], ["a2"]),
        helper.make_node("Gemm", ["a2", "w3", "b3"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "mlp", [tensor("x", TensorProto.FLOAT, ["batch", 64])], [tensor("logits", TensorProto.FLOAT, ["batch", 10])],
        [w("w1", 128, 64), w("b1", 128), w("w2", 128, 64), w("b2", 64), w("w3", 10, 64), w("b3", 10)])
    save("mlp", graph, {"x": rng.standard_normal((5, 64)).astype(np.float32)})


def cnn():
    nodes = [
        helper.make_node("Conv", ["x", "c1w", "c1b"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"], epsilon=1e-5),
        helper.make_node("Relu", ["bn"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "c2w", "c2b"], ["c2"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "dww"], ["dw"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=16),
        helper.make_node("Relu", ["dw"], ["r3"]),
        helper.make_node("GlobalAveragePool", ["r3"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fcw", "fcb"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    inits = [
        w("c1w", 8, 1, 3, 3, scale=0.5), w("c1b", 8), w("c2w", 16, 8, 3, 3, scale=0.2), w("c2b", 16),
        w("dww", 16, 1, 3, 3, scale=0.4), w("fcw", 10, 16), w("fcb", 10),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 8).astype(np.float32), "bn_s"),
        numpy_helper.from_array(rng.uniform(-0.2, 0.2, 8).astype(np.float32), "bn_b"),
        numpy_helper.from_array(rng.uniform(-0.2, 0.2, 8).astype(np.float32), "bn_m"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 8).astype(np.float32), "bn_v"),
    ]
    graph = helper.make_graph(
        nodes, "cnn", [tensor("x", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [tensor("probabilities", TensorProto.FLOAT, ["batch", 10])], inits)
    save("cnn", graph, {"x": rng.random((3, 1, 28, 28)).astype(np.float32)})


def encoder():
    d, heads, ffn = 32, 4, 64
    dk = d // heads
    n = []
    # Dynamic batch and sequence: the head split shape is computed from Shape, as exporters do.
    n += [helper.make_node("Shape", ["x"], ["xs"]),
          helper.make_node("Gather", ["xs", "i0"], ["B"], axis=0),
          helper.make_node("Gather", ["xs", "i1"], ["S"], axis=0),
          helper.make_node("Unsqueeze", ["B", "ax0"], ["B1"]),
          helper.make_node("Unsqueeze", ["S", "ax0"], ["S1"]),
          helper.make_node("Concat", ["B1", "S1", "heads", "dk"], ["split_shape"], axis=0),
          helper.make_node("Concat", ["B1", "S1", "dmodel"], ["merge_shape"], axis=0)]
    for name in ["q", "k", "v"]:
        n += [helper.make_node("MatMul", ["x", f"w{name}"], [f"{name}0"]),
              helper.make_node("Add", [f"{name}0", f"b{name}"], [f"{name}1"]),
              helper.make_node("Reshape", [f"{name}1", "split_shape"], [f"{name}2"]),
              helper.make_node("Transpose", [f"{name}2"], [f"{name}h"], perm=[0, 2, 1, 3] if name != "k" else [0, 2, 3, 1])]
    n += [helper.make_node("MatMul", ["qh", "kh"], ["scores0"]),
          helper.make_node("Div", ["scores0", "sqrt_dk"], ["scores"]),
          helper.make_node("Softmax", ["scores"], ["attn"], axis=-1),
          helper.make_node("MatMul", ["attn", "vh"], ["ctx0"]),
          helper.make_node("Transpose", ["ctx0"], ["ctx1"], perm=[0, 2, 1, 3]),
          helper.make_node("Reshape", ["ctx1", "merge_shape"], ["ctx"]),
          helper.make_node("MatMul", ["ctx", "wo"], ["o0"]),
          helper.make_node("Add", ["o0", "bo"], ["o1"]),
          helper.make_node("Add", ["x", "o1"], ["res1"]),
          helper.make_node("LayerNormalization", ["res1", "ln1_s", "ln1_b"], ["ln1"], axis=-1, epsilon=1e-5),
          helper.make_node("MatMul", ["ln1", "wf1"], ["f0"]),
          helper.make_node("Add", ["f0", "bf1"], ["f1"]),
          # GELU as PyTorch exports it: 0.5 * x * (1 + erf(x / sqrt(2))).
          helper.make_node("Div", ["f1", "sqrt2"], ["g0"]),
          helper.make_node("Erf", ["g0"], ["g1"]),
          helper.make_node("Add", ["g1", "one"], ["g2"]),
          helper.make_node("Mul", ["f1", "g2"], ["g3"]),
          helper.make_node("Mul", ["g3", "half"], ["gelu"]),
          helper.make_node("MatMul", ["gelu", "wf2"], ["f2"]),
          helper.make_node("Add", ["f2", "bf2"], ["f3"]),
          helper.make_node("Add", ["ln1", "f3"], ["res2"]),
          helper.make_node("LayerNormalization", ["res2", "ln2_s", "ln2_b"], ["y"], axis=-1, epsilon=1e-5)]
    inits = [const("i0", 0), const("i1", 1), const("ax0", [0]), const("heads", [heads]), const("dk", [dk]),
             const("dmodel", [d]), const("sqrt_dk", np.sqrt(dk), np.float32), const("sqrt2", np.sqrt(2.0), np.float32),
             const("one", 1.0, np.float32), const("half", 0.5, np.float32)]
    for name in ["q", "k", "v", "o"]:
        inits += [w(f"w{name}", d, d), w(f"b{name}", d)]
    inits += [w("wf1", d, ffn), w("bf1", ffn), w("wf2", ffn, d), w("bf2", d)]
    for ln in ["ln1", "ln2"]:
        inits += [numpy_helper.from_array(rng.uniform(0.8, 1.2, d).astype(np.float32), f"{ln}_s"),
                  numpy_helper.from_array(rng.uniform(-0.1, 0.1, d).astype(np.float32), f"{ln}_b")]
    graph = helper.make_graph(n, "encoder", [tensor("x", TensorProto.FLOAT, ["batch", "seq", d])],
                              [tensor("y", TensorProto.FLOAT, ["batch", "seq", d])], inits)
    save("encoder", graph, {"x": rng.standard_normal((2, 16, d)).astype(np.float32)})


def elementwise():
    ops = []
    add = lambda *a, **k: ops.append(helper.make_node(*a, **k))
    add("Add", ["a", "b"], ["t0"]); add("Sub", ["t0", "c"], ["t1"]); add("Mul", ["t1", "b"], ["t2"])
    add("Div", ["t2", "pos"], ["t3"]); add("Abs", ["t3"], ["t4"]); add("Sqrt", ["t4"], ["t5"])
    add("Pow", ["t5", "two"], ["t6"]); add("Exp", ["c"], ["t7"]); add("Log", ["pos"], ["t8"])
    add("Neg", ["t8"], ["t9"]); add("Reciprocal", ["pos"], ["t10"]); add("Tanh", ["a"], ["t11"])
    add("Sigmoid", ["b"], ["t12"]); add("LeakyRelu", ["a"], ["t13"], alpha=0.1); add("Elu", ["a"], ["t14"], alpha=0.7)
    add("HardSigmoid", ["a"], ["t15"]); add("HardSwish", ["a"], ["t16"]); add("Erf", ["a"], ["t17"])
    add("Floor", ["a"], ["t18"]); add("Ceil", ["a"], ["t19"]); add("Clip", ["a", "lo", "hi"], ["t20"])
    add("Greater", ["a", "b"], ["m0"]); add("Less", ["a", "c"], ["m1"]); add("And", ["m0", "m1"], ["m2"])
    add("Not", ["m2"], ["m3"]); add("Equal", ["t18", "t19"], ["m4"]); add("Where", ["m3", "t11", "t12"], ["t21"])
    add("Max", ["t13", "t14", "t15"], ["t22"]); add("Min", ["t16", "t17"], ["t23"])
    add("Sum", ["t6", "t9", "t10", "t20", "t21", "t22", "t23"], ["s0"])
    add("Cast", ["m4"], ["m5"], to=TensorProto.FLOAT); add("Add", ["s0", "m5"], ["y"])
    add("Relu", ["t7"], ["z0"]); add("Identity", ["z0"], ["z1"]); add("Dropout", ["z1"], ["z"])
    graph = helper.make_graph(
        ops, "elementwise",
        [tensor("a", TensorProto.FLOAT, [3, 4]), tensor("b", TensorProto.FLOAT, [4]), tensor("c", TensorProto.FLOAT, [3, 1]),
         tensor("pos", TensorProto.FLOAT, [3, 4])],
        [tensor("y", TensorProto.FLOAT, [3, 4]), tensor("z", TensorProto.FLOAT, [3, 1])],
        [const("two", 2.0, np.float32), const("lo", -0.5, np.float32), const("hi", 0.8, np.float32)])
    save("elementwise", graph, {
        "a": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32),
        "c": rng.standard_normal((3, 1)).astype(np.float32), "pos": rng.uniform(0.5, 2, (3, 4)).astype(np.float32)})


def shapes():
    ops = []
    add = lambda *a, **k: ops.append(helper.make_node(*a, **k))
    add("Shape", ["x"], ["s"]); add("Size", ["x"], ["n"]); add("Slice", ["s", "st", "en"], ["s12"])
    add("Concat", ["s12", "m1"], ["target"], axis=0); add("Reshape", ["x", "target"], ["r"])
    add("Transpose", ["r"], ["t"], perm=[2, 0, 1]); add("Split", ["t", "sp"], ["u", "v"], axis=0)
    add("Squeeze", ["u", "ax0"], ["v2"]); add("Unsqueeze", ["v2", "ax2"], ["v3"])
    add("Expand", ["v3", "eshape"], ["e"]); add("Tile", ["v", "reps"], ["tl"])
    add("Pad", ["tl", "pads", "pv"], ["pd"], mode="constant"); add("Pad", ["x", "pads4"], ["pr"], mode="reflect")
    add("Flatten", ["pr"], ["fl"], axis=2); add("Gather", ["fl", "idx"], ["g"], axis=1)
    add("ConstantOfShape", ["s12"], ["zeros"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.25]))
    add("Range", ["r0", "r1", "r2"], ["rg"]); add("Cast", ["rg"], ["rgf"], to=TensorProto.FLOAT)
    add("Cast", ["n"], ["nf"], to=TensorProto.FLOAT); add("Mul", ["zeros", "nf"], ["zn"])
    add("Slice", ["x", "ss", "se", "sa", "sst"], ["sl"])
    graph = helper.make_graph(
        ops, "shapes", [tensor("x", TensorProto.FLOAT, [2, 3, 4, 5])],
        [tensor(o, TensorProto.FLOAT, None) for o in ["e", "pd", "g", "rgf", "zn", "sl"]],
        [const("st", [1]), const("en", [3]), const("m1", [-1]), const("sp", [1, 9]), const("ax0", [0]), const("ax2", [2]),
         const("eshape", [2, 3, 1, 1]), const("reps", [1, 2, 1]), const("pads", [0, 1, 0, 0, 2, 1]), const("pv", 1.5, np.float32),
         const("pads4", [0, 0, 1, 2, 0, 0, 1, 1]), const("idx", [[0, 2], [5, -1]]), const("r0", 2), const("r1", 11), const("r2", 3),
         const("ss", [3, 0]), const("se", [-100, 5]), const("sa", [3, 2]), const("sst", [-2, 2])])
    save("shapes", graph, {"x": rng.standard_normal((2, 3, 4, 5)).astype(np.float32)}, opset=18)


def reductions():
    ops = []
    add = lambda *a, **k: ops.append(helper.make_node(*a, **k))
    add("ReduceMean", ["x", "axes1"], ["mean"], keepdims=1); add("ReduceSum", ["x", "axes02"], ["sum"], keepdims=0)
    add("ReduceMax", ["x"], ["max"], keepdims=0); add("ArgMax", ["x"], ["argmax"], axis=2, keepdims=0)
    add("Softmax", ["x"], ["sm"], axis=1); add("LogSoftmax", ["x"], ["lsm"], axis=-1)
    add("LayerNormalization", ["x", "scale"], ["ln"], axis=1, epsilon=1e-3)
    graph = helper.make_graph(
        ops, "reductions", [tensor("x", TensorProto.FLOAT, [2, 3, 5])],
        [tensor("mean", TensorProto.FLOAT, None), tensor("sum", TensorProto.FLOAT, None), tensor("max", TensorProto.FLOAT, None),
         tensor("argmax", TensorProto.INT64, None), tensor("sm", TensorProto.FLOAT, None), tensor("lsm", TensorProto.FLOAT, None),
         tensor("ln", TensorProto.FLOAT, None)],
        [const("axes1", [1]), const("axes02", [0, -1]), w("scale", 3, 5)])
    save("reductions", graph, {"x": rng.standard_normal((2, 3, 5)).astype(np.float32)}, opset=18)


def convolutions():
    ops = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], dilations=[2, 2], pads=[2, 1, 2, 1], group=2),
        helper.make_node("ConvTranspose", ["c1", "wt", "bt"], ["ct"], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
        helper.make_node("AveragePool", ["ct"], ["ap"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0, ceil_mode=1),
        helper.make_node("MaxPool", ["ct"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalMaxPool", ["mp"], ["gmp"]),
        helper.make_node("Resize", ["ap", "", "scales"], ["up"], mode="linear", coordinate_transformation_mode="half_pixel"),
        helper.make_node("Resize", ["mp", "", "", "sizes"], ["nn"], mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
    ]
    graph = helper.make_graph(
        ops, "convolutions", [tensor("x", TensorProto.FLOAT, [1, 4, 9, 8])],
        [tensor(o, TensorProto.FLOAT, None) for o in ["gmp", "up", "nn"]],
        [w("w1", 6, 2, 3, 3, scale=0.3), w("b1", 6), w("wt", 6, 3, 3, 3, scale=0.3), w("bt", 3),
         const("scales", [1, 1, 2, 1.5], np.float32), const("sizes", [1, 3, 7, 5])])
    save("convolutions", graph, {"x": rng.standard_normal((1, 4, 9, 8)).astype(np.float32)}, opset=18)


def recurrent():
    seq, batch, inp, hid = 5, 2, 3, 4
    ops = [
        helper.make_node("LSTM", ["x", "lw", "lr", "lb"], ["ly", "lh", "lc"], hidden_size=hid, direction="bidirectional"),
        helper.make_node("GRU", ["x", "gw", "gr", "gb"], ["gy", "gh"], hidden_size=hid, linear_before_reset=1),
    ]
    graph = helper.make_graph(
        ops, "recurrent", [tensor("x", TensorProto.FLOAT, [seq, batch, inp])],
        [tensor(o, TensorProto.FLOAT, None) for o in ["ly", "lh", "lc", "gy", "gh"]],
        [w("lw", 2, 4 * hid, inp), w("lr", 2, 4 * hid, hid), w("lb", 2, 8 * hid),
         w("gw", 1, 3 * hid, inp), w("gr", 1, 3 * hid, hid), w("gb", 1, 6 * hid)])
    save("recurrent", graph, {"x": rng.standard_normal((seq, batch, inp)).astype(np.float32)})


def control():
    then_graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["r"])], "then", [], [tensor("r", TensorProto.FLOAT, [3])],
                                   [const("two", [2.0, 2.0, 2.0], np.float32)])
    else_graph = helper.make_graph([helper.make_node("Neg", ["x"], ["r"])], "else", [], [tensor("r", TensorProto.FLOAT, [3])])
    ops = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
           helper.make_node("Greater", ["s", "zero"], ["cond"]),
           helper.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph)]
    graph = helper.make_graph(ops, "control", [tensor("x", TensorProto.FLOAT, [3])], [tensor("y", TensorProto.FLOAT, [3])],
                              [const("zero", 0.0, np.float32)])
    save("control", graph, {"x": np.array([0.5, -2.0, 0.25], dtype=np.float32)})


def recurrent_variants():
    seq, batch, inp, hid = 6, 3, 4, 5
    ops = [
        helper.make_node("GRU", ["x", "gw", "gr", "gb", "lens", "gh0"], ["gy", "gh"], hidden_size=hid,
                         direction="bidirectional", linear_before_reset=0),
        helper.make_node("LSTM", ["x", "lw", "lr", "lb", "lens", "lh0", "lc0", "lp"], ["ly", "lh", "lc"], hidden_size=hid,
                         direction="reverse", clip=1.5, activations=["HardSigmoid", "Tanh", "Softsign"],
                         activation_alpha=[0.3], activation_beta=[0.4]),
    ]
    graph = helper.make_graph(
        ops, "recurrent_variants", [tensor("x", TensorProto.FLOAT, [seq, batch, inp])],
        [tensor(o, TensorProto.FLOAT, None) for o in ["gy", "gh", "ly", "lh", "lc"]],
        [w("gw", 2, 3 * hid, inp), w("gr", 2, 3 * hid, hid), w("gb", 2, 6 * hid), w("gh0", 2, batch, hid, scale=0.5),
         const("lens", [6, 2, 4], np.int32), w("lw", 1, 4 * hid, inp), w("lr", 1, 4 * hid, hid), w("lb", 1, 8 * hid),
         w("lh0", 1, batch, hid, scale=0.5), w("lc0", 1, batch, hid, scale=0.5), w("lp", 1, 3 * hid)])
    save("recurrent_variants", graph, {"x": rng.standard_normal((seq, batch, inp)).astype(np.float32)})


def volumes():
    ops = [
        helper.make_node("Conv", ["s", "w1", "b1"], ["c1"], kernel_shape=[3], strides=[2], pads=[1, 0], dilations=[2]),
        helper.make_node("MaxPool", ["c1"], ["p1"], kernel_shape=[2], strides=[1]),
        helper.make_node("Conv", ["v", "w3", "b3"], ["c3"], kernel_shape=[2, 3, 2], pads=[1, 1, 0, 0, 1, 1], group=2),
        helper.make_node("AveragePool", ["c3"], ["a3"], kernel_shape=[2, 2, 2], strides=[1, 2, 2], pads=[0, 1, 1, 1, 0, 0],
                         ceil_mode=1),
        helper.make_node("MaxPool", ["c3"], ["m3", "i3"], kernel_shape=[2, 2, 3], strides=[2, 1, 2], storage_order=1),
        helper.make_node("ConvTranspose", ["a3", "wt", "bt"], ["t3"], strides=[2, 1, 2], pads=[0, 1, 1, 0, 0, 0]),
        helper.make_node("Softmax", ["t3"], ["sm"], axis=1),
        helper.make_node("LogSoftmax", ["t3"], ["lsm"], axis=2),
        helper.make_node("MatMul", ["ma", "mb"], ["mm"]),
    ]
    graph = helper.make_graph(
        ops, "volumes",
        [tensor("s", TensorProto.FLOAT, [2, 3, 11]), tensor("v", TensorProto.FLOAT, [1, 4, 4, 5, 6]),
         tensor("ma", TensorProto.FLOAT, [2, 1, 3, 4]), tensor("mb", TensorProto.FLOAT, [3, 4, 2])],
        [tensor(o, TensorProto.FLOAT, None) for o in ["p1", "m3"]] + [tensor("i3", TensorProto.INT64, None)]
        + [tensor(o, TensorProto.FLOAT, None) for o in ["sm", "lsm", "mm"]],
        [w("w1", 4, 3, 3, scale=0.4), w("b1", 4), w("w3", 6, 2, 2, 3, 2, scale=0.3), w("b3", 6),
         w("wt", 6, 2, 2, 2, 3, scale=0.3), w("bt", 2)])
    feeds = {"s": rng.standard_normal((2, 3, 11)).astype(np.float32),
             "v": rng.standard_normal((1, 4, 4, 5, 6)).astype(np.float32),
             "ma": rng.standard_normal((2, 1, 3, 4)).astype(np.float32),
             "mb": rng.standard_normal((3, 4, 2)).astype(np.float32)}
    save("volumes", graph, feeds)


def control_runtime():
    # Over 4096 elements, so the condition is not folded at plan time and If runs as a kernel.
    n = 5000
    then_graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["r"])], "then", [], [tensor("r", TensorProto.FLOAT, [n])],
                                   [const("two", [2.0], np.float32)])
    else_graph = helper.make_graph([helper.make_node("Neg", ["x"], ["r"])], "else", [], [tensor("r", TensorProto.FLOAT, [n])])
    ops = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
           helper.make_node("Greater", ["s", "zero"], ["cond"]),
           helper.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph)]
    graph = helper.make_graph(ops, "control_runtime", [tensor("x", TensorProto.FLOAT, [n])], [tensor("y", TensorProto.FLOAT, [n])],
                              [const("zero", 0.0, np.float32)])
    save("control_runtime", graph, {"x": (rng.standard_normal(n) + 0.1).astype(np.float32)})


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    mlp(); cnn(); encoder(); elementwise(); shapes(); reductions(); convolutions(); recurrent(); control(); recurrent_variants(); volumes(); control_runtime()
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}")
