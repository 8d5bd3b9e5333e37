#!/usr/bin/env python3
"""Integer GEMM shapes as users' quantized models run them, for `benchmarks/run --quantized`:

  dynamic-MxKxN  float x -> DynamicQuantizeLinear -> MatMulInteger (int8 weights, per tensor) -> Cast -> Mul
                 (what onnxruntime.quantization.quantize_dynamic writes for a MatMul)
  qlinear-MxKxN  float x -> QuantizeLinear (uint8) -> QLinearMatMul (int8 weights) -> DequantizeLinear

  qdq-NAME       a corpus CNN (.build/corpus, `benchmarks/corpus.py make`) quantized by onnxruntime's own
                 quantize_static (QDQ, int8 weights per channel, uint8 activations, MinMax over 8 random inputs):
                 the int8 model a user deploys; both runtimes run the same file

Written to .build/quantized (weights random, seeded); timed like the corpus (benchmarks/corpus.py run --dir)."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, ".build", "quantized")
SHAPES = [(1, 768, 768), (1, 768, 3072), (128, 768, 768), (128, 768, 3072), (128, 3072, 768), (512, 1024, 1024)]


def model(kind, m, k, n, rng):
    w = rng.integers(-127, 128, size=(k, n), dtype=np.int8)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(0, np.int8), "w_zero"),
             numpy_helper.from_array(np.array(0.01, np.float32), "w_scale")]
    if kind == "dynamic":
        nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
                 helper.make_node("MatMulInteger", ["xq", "w", "xz", "w_zero"], ["acc"]),
                 helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
                 helper.make_node("Mul", ["xs", "w_scale"], ["scale"]),
                 helper.make_node("Mul", ["accf", "scale"], ["y"])]
    else:
        inits += [numpy_helper.from_array(np.array(0.02, np.float32), "x_scale"),
                  numpy_helper.from_array(np.array(128, np.uint8), "x_zero"),
                  numpy_helper.from_array(np.array(0.5, np.float32), "y_scale"),
                  numpy_helper.from_array(np.array(128, np.uint8), "y_zero")]
        nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
                 helper.make_node("QLinearMatMul", ["xq", "x_scale", "x_zero", "w", "w_scale", "w_zero", "y_scale",
                                                    "y_zero"], ["yq"]),
                 helper.make_node("DequantizeLinear", ["yq", "y_scale", "y_zero"], ["y"])]
    graph = helper.make_graph(nodes, f"{kind}-{m}x{k}x{n}",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


CNNS = ["resnet18", "resnet50", "mobilenet_v2"]


def qdq_cnns():
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name):
            self.batches = [{name: np.random.default_rng(i).standard_normal((1, 3, 224, 224)).astype(np.float32)}
                            for i in range(8)]

        def get_next(self):
            return self.batches.pop() if self.batches else None

    for name in CNNS:
        source = os.path.join(ROOT, ".build", "corpus", f"{name}.onnx")
        target = os.path.join(OUT, f"qdq-{name}.onnx")
        if not os.path.exists(source) or os.path.exists(target):
            continue
        with tempfile.TemporaryDirectory() as scratch:
            prepared = os.path.join(scratch, "prepared.onnx")
            quant_pre_process(source, prepared)
            input_name = onnx.load(prepared, load_external_data=False).graph.input[0].name
            quantize_static(prepared, target, Reader(input_name), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)


def make():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261205)
    for kind in ["dynamic", "qlinear"]:
        for m, k, n in SHAPES:
            onnx.save(model(kind, m, k, n, rng), os.path.join(OUT, f"{kind}-{m}x{k}x{n}.onnx"))
    qdq_cnns()


if __name__ == "__main__":
    make()
    print(OUT if len(sys.argv) < 2 else "")
