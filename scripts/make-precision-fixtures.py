#!/usr/bin/env python3
"""Builds the float16 and int8 variants of the MLP, CNN and encoder fixtures with onnxruntime's own tools, and
saves onnxruntime's outputs for them.

For every model NAME in Tests/ONNXImportTests/Fixtures/models (mlp, cnn, encoder) it writes, into
Tests/ONNXImportTests/Fixtures/precision:
  NAME-fp16.onnx     onnxruntime.transformers.float16.convert_float_to_float16 (float16 inputs, weights, outputs)
  NAME-dynamic.onnx  onnxruntime.quantization.quantize_dynamic (int8 weights; DynamicQuantizeLinear + MatMulInteger
                     or ConvInteger)
  NAME-qdq.onnx      onnxruntime.quantization.quantize_static, QDQ format, int8 weights and uint8 activations,
                     MinMax calibration over 16 random inputs shaped like the fixture's
and for each NAME-VARIANT.inputs.npz / NAME-VARIANT.outputs.npz (onnxruntime's CPU results; for QDQ also
NAME-qdq.reference.npz, onnxruntime with graph optimizations off). Run from the
repository root:
    .venv/bin/python scripts/make-precision-fixtures.py
"""
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.transformers.float16 import convert_float_to_float16

SOURCE = "Tests/ONNXImportTests/Fixtures/models"
OUT = "Tests/ONNXImportTests/Fixtures/precision"
rng = np.random.default_rng(20261205)


class Reader(CalibrationDataReader):
    def __init__(self, feeds):
        self.batches = [
            {k: (rng.standard_normal(v.shape) * v.std() + v.mean()).astype(v.dtype) if v.dtype.kind == "f" else v
             for k, v in feeds.items()}
            for _ in range(16)
        ]

    def get_next(self):
        return self.batches.pop() if self.batches else None


def save(name, path, feeds, reference=False):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    used = {k: v for k, v in feeds.items() if k in names}
    outputs = session.run(None, used)
    np.savez(os.path.join(OUT, f"{name}.inputs.npz"), **used)
    np.savez(os.path.join(OUT, f"{name}.outputs.npz"), **{o.name: v for o, v in zip(session.get_outputs(), outputs)})
    if reference:
        # onnxruntime with its graph optimizations off runs each QuantizeLinear/DequantizeLinear as written: the
        # ONNX semantics of the model, which the tests hold to tightly (the fused integer kernels of the optimized
        # session round differently by a quantization step here and there).
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        plain = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        np.savez(os.path.join(OUT, f"{name}.reference.npz"),
                 **{o.name: v for o, v in zip(plain.get_outputs(), plain.run(None, used))})
    model = onnx.load(path)
    ops = sorted({n.op_type for n in model.graph.node})
    print(f"{name}: {os.path.getsize(path) // 1024} KiB, ops {ops}")


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in ["mlp", "cnn", "encoder"]:
        source = os.path.join(SOURCE, f"{name}.onnx")
        feeds = dict(np.load(os.path.join(SOURCE, f"{name}.inputs.npz")))

        half = convert_float_to_float16(onnx.load(source), keep_io_types=False)
        path = os.path.join(OUT, f"{name}-fp16.onnx")
        onnx.save(half, path)
        save(f"{name}-fp16", path, {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in feeds.items()})

        path = os.path.join(OUT, f"{name}-dynamic.onnx")
        quantize_dynamic(source, path, weight_type=QuantType.QInt8)
        save(f"{name}-dynamic", path, feeds)

        path = os.path.join(OUT, f"{name}-qdq.onnx")
        quantize_static(source, path, Reader(feeds), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        save(f"{name}-qdq", path, feeds, reference=True)


if __name__ == "__main__":
    main()
