#!/usr/bin/env python3
"""Times one model on OpenVINO's CPU plugin, as ort_bench does onnxruntime:
  ov_bench.py MODEL SECONDS THREADS DIM...   prints {"p50_ms": ...}

Latency hint, one stream, THREADS inference threads, float32 inference precision (on CPUs with bfloat16
instructions the plugin would otherwise run bfloat16, a different precision from the other runtimes). A random
float32 input of the given shape is bound once; warm runs first, then runs until SECONDS have passed (at least 10),
each timed alone; the median is reported."""
import json
import sys
import time

import numpy as np
import openvino as ov


def main():
    path, seconds, threads = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    dims = [int(d) for d in sys.argv[4:]]
    core = ov.Core()
    compiled = core.compile_model(path, "CPU", {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1",
        "INFERENCE_NUM_THREADS": str(threads),
        "INFERENCE_PRECISION_HINT": "f32",
    })
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).random(dims, dtype=np.float32)
    request.set_input_tensor(ov.Tensor(x))
    for _ in range(3):
        request.infer()
    times = []
    start = time.perf_counter()
    while len(times) < 10 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        request.infer()
        times.append(time.perf_counter() - t0)
    times.sort()
    print(json.dumps({"p50_ms": times[len(times) // 2] * 1e3, "runs": len(times)}))


if __name__ == "__main__":
    main()
