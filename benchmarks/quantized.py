#!/usr/bin/env python3
"""Integer GEMM shapes as users' quantized models run them, for `benchmarks/run --quantized`:

  dynamic-MxKxN  float x -> DynamicQuantizeLinear -> MatMulInteger (int8 weights, per tensor) -> Cast -> Mul
                 (what onnxruntime.quantization.quantize_dynamic writes for a MatMul)
  qlinear-MxKxN  float x -> QuantizeLinear (uint8) -> QLinearMatMul (int8 weights) -> DequantizeLinear

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


def make():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261205)
    for kind in ["dynamic", "qlinear"]:
        for m, k, n in SHAPES:
            onnx.save(model(kind, m, k, n, rng), os.path.join(OUT, f"{kind}-{m}x{k}x{n}.onnx"))


if __name__ == "__main__":
    make()
    print(OUT if len(sys.argv) < 2 else "")
