"""The tool's cold start against onnxruntime's C API: process start to first prediction, paired runs.

    benchmarks/cold-start [--runs 30] [--binary .build/release/inference]

Each round runs, in alternating order, (a) `inference --device cpu --input data/sample1.npy` on the embedded
default, (b) the same with the seed's linear model as an .onnx file, (c) ort_bench in its cold mode on that
file (dlopen of the wheel's libonnxruntime, environment, session, one run, print, exit), each timed from fork
to exit. Prints medians, the ratios to onnxruntime and the 95% interval of each median.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import onnx  # noqa: E402

import models  # noqa: E402
from harness import ort_library  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, ".build", "benchmarks")


def timed(command):
    start = time.perf_counter_ns()
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = (time.perf_counter_ns() - start) / 1e6
    if result.returncode != 0 or b"Prediction" not in result.stdout:
        sys.exit(f"{command[0]} failed: {result.stderr.decode()[-500:]}")
    return elapsed


def interval(values):
    """Order-statistic 95% interval of the median (ranks from the binomial distribution)."""
    from math import comb
    n = len(values)
    ordered = sorted(values)
    cdf, total = [], 0.0
    for k in range(n + 1):
        total += comb(n, k) / 2 ** n
        cdf.append(total)
    lower = max([l for l in range(1, n + 1) if cdf[l - 1] <= 0.025], default=1)
    upper = min([u for u in range(1, n + 1) if cdf[u - 1] >= 0.975], default=n)
    return ordered[lower - 1], ordered[upper - 1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "inference"))
    args = parser.parse_args()
    os.makedirs(WORK, exist_ok=True)
    model = os.path.join(WORK, "linear.onnx")
    onnx.save(models.linear()[0], model)
    sample = os.path.join(ROOT, "data", "sample1.npy")
    commands = {
        "inference (embedded default)": [args.binary, "--device", "cpu", "--input", sample, "--repeat", "1",
                                         "--warmup", "0"],
        "inference (linear.onnx)": [args.binary, "--device", "cpu", "--model", model, "--input", sample,
                                    "--repeat", "1", "--warmup", "0"],
        "onnxruntime C API (linear.onnx)": [os.path.join(WORK, "ort_bench"), ort_library()[0], model, "x", "y", "1",
                                            "cold", "1", "10"],
    }
    names = list(commands)
    for name in names:  # one untimed run each: page cache warm for every contender
        timed(commands[name])
    samples = {name: [] for name in names}
    for round_index in range(args.runs):
        order = names if round_index % 2 == 0 else list(reversed(names))
        for name in order:
            samples[name].append(timed(commands[name]))
    reference = statistics.median(samples[names[-1]])
    print(f"cold start, process start to first prediction, {args.runs} paired rounds (ms, median and 95% interval)")
    for name in names:
        median = statistics.median(samples[name])
        low, high = interval(samples[name])
        print(f"  {name:34s} {median:8.2f}  [{low:.2f}, {high:.2f}]  {median / reference:5.2f}x onnxruntime")


if __name__ == "__main__":
    main()
