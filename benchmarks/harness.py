#!/usr/bin/env python3
"""Runs this project and onnxruntime (C API, in process) on the same .onnx files and batch sizes, interleaved,
and prints p50 latency and throughput for both with the ratio; also GEMM GFLOP/s against numpy/OpenBLAS.
Invoked by benchmarks/run, which builds the two drivers first."""
import argparse
import datetime
import glob
import json
import os
import platform
import statistics
import subprocess
import sys

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(__file__))
import models  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, ".build", "benchmarks")
OURS = os.path.join(ROOT, "benchmarks", ".build", "release", "runtime-bench")
ORT = os.path.join(WORK, "ort_bench")
BATCHES = {"linear": [1, 16, 256, 1024], "mlp": [1, 16, 256, 1024], "cnn": [1, 16, 128], "encoder": [1, 8],
           "conv1": [1, 16], "conv2": [1, 16]}


def ort_library():
    import onnxruntime
    found = glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*"))
    return found[0], onnxruntime.__version__


def run_json(command, env=None):
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def measure(path, sample_shape, batch, threads, seconds, lib):
    ours = run_json([OURS, path, str(batch), str(seconds), str(threads)])
    theirs = run_json([ORT, lib, path, "x", "y", str(batch), str(seconds), str(threads)] + [str(d) for d in sample_shape])
    return ours, theirs


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def numpy_gflops(size, threads, repeats=5):
    """Best-of-N numpy matmul GFLOP/s in a fresh process with OpenBLAS limited to `threads`."""
    code = ("import numpy as np, time\n"
            f"a = np.random.rand({size}, {size}).astype(np.float32); b = np.random.rand({size}, {size}).astype(np.float32)\n"
            "a @ b\nbest = float('inf')\n"
            f"for _ in range({repeats}):\n    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)\n"
            f"print(2 * {size} ** 3 / best / 1e9)\n")
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=0.4, help="minimum time per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per configuration")
    parser.add_argument("--models", default="linear,mlp,cnn,encoder")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--gemm", default="1024,2048,4096", help="square GEMM sizes (empty for none)")
    parser.add_argument("--output", default=None, help="markdown results file")
    args = parser.parse_args()
    os.makedirs(WORK, exist_ok=True)
    lib, ort_version = ort_library()
    threads_list = [int(t) for t in args.threads.split(",")]
    rows = []
    for name in args.models.split(","):
        model, sample_shape = models.MODELS[name]()
        path = os.path.join(WORK, f"{name}.onnx")
        onnx.save(model, path)
        for threads in threads_list:
            for batch in BATCHES[name]:
                ours_p50, ort_p50, ours_p99, ort_p99, allocs = [], [], [], [], []
                for _ in range(args.rounds):  # interleaved, so drift in machine load hits both alike
                    ours, theirs = measure(path, sample_shape, batch, threads, args.seconds, lib)
                    ours_p50.append(ours["p50_ms"]); ort_p50.append(theirs["p50_ms"])
                    ours_p99.append(ours["p99_ms"]); ort_p99.append(theirs["p99_ms"])
                    allocs.append(ours.get("allocations_per_run", float("nan")))
                row = {"model": name, "batch": batch, "threads": threads,
                       "ours_p50_ms": statistics.median(ours_p50), "ort_p50_ms": statistics.median(ort_p50),
                       "ours_p50_spread": [min(ours_p50), max(ours_p50)], "ort_p50_spread": [min(ort_p50), max(ort_p50)],
                       "ours_p99_ms": statistics.median(ours_p99), "ort_p99_ms": statistics.median(ort_p99),
                       "ours_allocations": max(allocs)}
                row["ratio"] = row["ours_p50_ms"] / row["ort_p50_ms"]
                rows.append(row)
                print(f"{name:8} batch {batch:5} threads {threads}: ours {row['ours_p50_ms']:.4f} ms, "
                      f"onnxruntime {row['ort_p50_ms']:.4f} ms, ratio {row['ratio']:.2f}", file=sys.stderr, flush=True)
    gemm = []
    for size in [int(v) for v in args.gemm.split(",") if v]:
        model, _ = models.matmul(size)
        path = os.path.join(WORK, f"gemm{size}.onnx")
        onnx.save(model, path)
        for threads in threads_list:
            ours = run_json([OURS, path, str(size), "1.0", str(threads)])
            # The same run with the run-time OpenBLAS turned off: the project's own packed kernel.
            own = run_json([OURS, path, str(size), "1.0", str(threads)], env=dict(os.environ, INFERENCE_BLAS="0"))
            entry = {"size": size, "threads": threads, "numpy": numpy_gflops(size, threads),
                     "ours": 2 * size ** 3 / (ours["p50_ms"] / 1e3) / 1e9,
                     "own": 2 * size ** 3 / (own["p50_ms"] / 1e3) / 1e9}
            print(f"gemm {size} threads {threads}: ours {entry['ours']:.1f} GFLOP/s (own kernel {entry['own']:.1f}), "
                  f"numpy {entry['numpy']:.1f}", file=sys.stderr, flush=True)
            gemm.append(entry)

    lines = [f"# Benchmark results, {datetime.date.today().isoformat()}", "",
             f"- CPU: {cpu_name()}, {os.cpu_count()} logical cores",
             f"- onnxruntime {ort_version} through its C API in process (dlopen of the wheel's libonnxruntime),"
             " graph optimizations on, inter-op threads 1",
             "- this project: `benchmarks/runtime-bench`, in process, same inputs, same timing loop",
             f"- p50 of per-run latency; median over {args.rounds} interleaved rounds (spread = min..max of the rounds'"
             " p50s); ratio = ours / onnxruntime (below 1 is faster)",
             "- threads: onnxruntime's intra-op threads; for this project the size of the CPU backend's thread pool"
             " (GEMM/MatMul/Conv, im2col, LayerNorm, Softmax, Transpose and activations split across it)", "",
             "- ours allocs/run: heap allocations per run counted by wrapping malloc in runtime-bench (0 means none)", "",
             "| model | batch | threads | ours p50 ms (spread) | onnxruntime p50 ms (spread) | ratio | ours p99 | ort p99 | ours samples/s | ort samples/s | ours allocs/run |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['threads']} | {r['ours_p50_ms']:.4f} ({r['ours_p50_spread'][0]:.4f}..{r['ours_p50_spread'][1]:.4f}) "
            f"| {r['ort_p50_ms']:.4f} ({r['ort_p50_spread'][0]:.4f}..{r['ort_p50_spread'][1]:.4f}) | {r['ratio']:.2f} "
            f"| {r['ours_p99_ms']:.4f} | {r['ort_p99_ms']:.4f} | {r['batch'] / r['ours_p50_ms'] * 1e3:,.0f} "
            f"| {r['batch'] / r['ort_p50_ms'] * 1e3:,.0f} | {r['ours_allocations']:g} |")
    lines += ["", "GEMM (square, float32; ours: p50 through a MatMul model with a constant B; numpy/OpenBLAS: best of 5"
              " in a fresh process with OPENBLAS_NUM_THREADS = threads and OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset;"
              " own kernel: the same run with INFERENCE_BLAS=0, so no product goes to a run-time OpenBLAS):", "",
              "| size | threads | ours GFLOP/s | own kernel GFLOP/s | numpy GFLOP/s | ours / numpy | own kernel / numpy |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for g in gemm:
        lines.append(f"| {g['size']} | {g['threads']} | {g['ours']:.1f} | {g['own']:.1f} | {g['numpy']:.1f} "
                     f"| {g['ours'] / g['numpy']:.2f} | {g['own'] / g['numpy']:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
