"""The benchmark models, built with the onnx helper API: the seed's linear model, an MLP 784-512-512-10,
a small MNIST-like CNN, and a one-block transformer encoder (d=256, 4 heads, ffn 1024, seq 128)."""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(7)

LINEAR_WEIGHTS = [0.42, -0.31, 0.77, 0.15, -0.58, 0.36, 0.23, -0.12, 0.64, -0.27]


def _w(name, *shape):
    bound = 1.0 / np.sqrt(shape[-1] if len(shape) > 1 else shape[0])
    return numpy_helper.from_array(rng.uniform(-bound, bound, size=shape).astype(np.float32), name)


def _c(name, values, dtype=np.int64):
    return numpy_helper.from_array(np.array(values, dtype=dtype), name)


def _model(graph):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="benchmarks")
    model.ir_version = 8
    return model


def _io(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def linear():
    g = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["t"], transB=1), helper.make_node("Sigmoid", ["t"], ["y"])],
        "linear", [_io("x", ["batch", 10])], [_io("y", ["batch", 1])],
        [numpy_helper.from_array(np.array([LINEAR_WEIGHTS], dtype=np.float32), "w"), _c("b", [0.1], np.float32)])
    return _model(g), [10]


def mlp():
    nodes, inits, cur = [], [], "x"
    sizes = [784, 512, 512, 10]
    for i in range(3):
        inits += [_w(f"w{i}", sizes[i + 1], sizes[i]), _w(f"b{i}", sizes[i + 1])]
        out = "y" if i == 2 else f"h{i}"
        nodes.append(helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [out], transB=1))
        if i < 2:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            out = f"r{i}"
        cur = out
    return _model(helper.make_graph(nodes, "mlp", [_io("x", ["batch", 784])], [_io("y", ["batch", 10])], inits)), [784]


def cnn():
    nodes = [
        helper.make_node("Conv", ["x", "c1", "c1b"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("MaxPool", ["b"], ["c"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["c", "c2", "c2b"], ["d"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["d"], ["e"]),
        helper.make_node("MaxPool", ["e"], ["f"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["f"], ["g"]),
        helper.make_node("Gemm", ["g", "f1", "f1b"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["i"]),
        helper.make_node("Gemm", ["i", "f2", "f2b"], ["y"], transB=1),
    ]
    inits = [_w("c1", 32, 1, 3, 3), _w("c1b", 32), _w("c2", 64, 32, 3, 3), _w("c2b", 64),
             _w("f1", 128, 64 * 7 * 7), _w("f1b", 128), _w("f2", 10, 128), _w("f2b", 10)]
    return _model(helper.make_graph(nodes, "cnn", [_io("x", ["batch", 1, 28, 28])], [_io("y", ["batch", 10])], inits)), [1, 28, 28]


def encoder(d=256, heads=4, ffn=1024, seq=128):
    dk = d // heads
    n = [helper.make_node("Shape", ["x"], ["xs"]), helper.make_node("Gather", ["xs", "i0"], ["B"], axis=0),
         helper.make_node("Unsqueeze", ["B", "ax0"], ["B1"]),
         helper.make_node("Concat", ["B1", "seq", "heads", "dk"], ["split"], axis=0),
         helper.make_node("Concat", ["B1", "seq", "dmodel"], ["merge"], axis=0)]
    for name in ["q", "k", "v"]:
        n += [helper.make_node("MatMul", ["x", f"w{name}"], [f"{name}0"]),
              helper.make_node("Add", [f"{name}0", f"b{name}"], [f"{name}1"]),
              helper.make_node("Reshape", [f"{name}1", "split"], [f"{name}2"]),
              helper.make_node("Transpose", [f"{name}2"], [f"{name}h"], perm=[0, 2, 1, 3] if name != "k" else [0, 2, 3, 1])]
    n += [helper.make_node("MatMul", ["qh", "kh"], ["s0"]), helper.make_node("Div", ["s0", "sqrt_dk"], ["s1"]),
          helper.make_node("Softmax", ["s1"], ["p"], axis=-1), helper.make_node("MatMul", ["p", "vh"], ["c0"]),
          helper.make_node("Transpose", ["c0"], ["c1"], perm=[0, 2, 1, 3]), helper.make_node("Reshape", ["c1", "merge"], ["c2"]),
          helper.make_node("MatMul", ["c2", "wo"], ["o0"]), helper.make_node("Add", ["o0", "bo"], ["o1"]),
          helper.make_node("Add", ["x", "o1"], ["r1"]),
          helper.make_node("LayerNormalization", ["r1", "g1", "be1"], ["l1"], axis=-1, epsilon=1e-5),
          helper.make_node("MatMul", ["l1", "wf1"], ["f0"]), helper.make_node("Add", ["f0", "bf1"], ["f1"]),
          helper.make_node("Div", ["f1", "sqrt2"], ["e0"]), helper.make_node("Erf", ["e0"], ["e1"]),
          helper.make_node("Add", ["e1", "one"], ["e2"]), helper.make_node("Mul", ["f1", "e2"], ["e3"]),
          helper.make_node("Mul", ["e3", "half"], ["gelu"]),
          helper.make_node("MatMul", ["gelu", "wf2"], ["f2"]), helper.make_node("Add", ["f2", "bf2"], ["f3"]),
          helper.make_node("Add", ["l1", "f3"], ["r2"]),
          helper.make_node("LayerNormalization", ["r2", "g2", "be2"], ["y"], axis=-1, epsilon=1e-5)]
    inits = [_c("i0", 0), _c("ax0", [0]), _c("seq", [seq]), _c("heads", [heads]), _c("dk", [dk]), _c("dmodel", [d]),
             _c("sqrt_dk", np.sqrt(dk), np.float32), _c("sqrt2", np.sqrt(2.0), np.float32), _c("one", 1.0, np.float32),
             _c("half", 0.5, np.float32)]
    for name in ["q", "k", "v", "o"]:
        inits += [_w(f"w{name}", d, d), _w(f"b{name}", d)]
    inits += [_w("wf1", d, ffn), _w("bf1", ffn), _w("wf2", ffn, d), _w("bf2", d),
              _c("g1", np.ones(d), np.float32), _c("be1", np.zeros(d), np.float32),
              _c("g2", np.ones(d), np.float32), _c("be2", np.zeros(d), np.float32)]
    g = helper.make_graph(n, "encoder", [_io("x", ["batch", seq, d])], [_io("y", ["batch", seq, d])], inits)
    return _model(g), [seq, d]


def matmul(size):
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], f"gemm{size}",
                          [_io("x", ["batch", size])], [_io("y", ["batch", size])], [_w("w", size, size)])
    return _model(g), [size]


def conv_layer(cin, cout, size):
    """One 3x3 Conv (pad 1) + Relu: the CNN's layers alone, to see where its time goes."""
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    g = helper.make_graph(nodes, f"conv{cin}x{cout}", [_io("x", ["batch", cin, size, size])], [_io("y", None)],
                          [_w("w", cout, cin, 3, 3), _w("b", cout)])
    return _model(g), [cin, size, size]


MODELS = {"linear": linear, "mlp": mlp, "cnn": cnn, "encoder": encoder,
          # Not in the default run: the CNN's two convolutions alone (benchmarks/run --models conv1,conv2).
          "conv1": lambda: conv_layer(1, 32, 28), "conv2": lambda: conv_layer(32, 64, 14)}
