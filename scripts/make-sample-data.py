#!/usr/bin/env python3
"""Writes data/sample1.npy (10 values) and data/batch_samples.npy (4 x 10) for the embedded default model.

The inputs are drawn at random (fixed seed) and the last feature of each sample is then solved for so that
the default model, sigmoid(x . w + b) with the weights of Sources/BuiltinModels/BuiltinModels.swift, predicts
0.87, 0.45, 0.92 and 0.33: the numbers the seed tutorial prints. Run from the repository root:
    .venv/bin/python scripts/make-sample-data.py
"""
import numpy as np

WEIGHTS = np.array([0.42, -0.31, 0.77, 0.15, -0.58, 0.36, 0.23, -0.12, 0.64, -0.27], dtype=np.float32)
BIAS = np.float32(0.1)
TARGETS = [0.87, 0.45, 0.92, 0.33]


def model(x):
    x = x.astype(np.float32)
    return 1.0 / (1.0 + np.exp(-(x @ WEIGHTS + BIAS)))


def main():
    rng = np.random.default_rng(20261129)
    rows = []
    for target in TARGETS:
        x = rng.random(10).astype(np.float64)
        logit = np.log(target / (1.0 - target))
        partial = float(x[:9] @ WEIGHTS[:9].astype(np.float64)) + float(BIAS)
        x[9] = (logit - partial) / float(WEIGHTS[9])
        rows.append(x.astype(np.float32))
    batch = np.stack(rows)
    np.save("data/batch_samples.npy", batch)
    np.save("data/sample1.npy", batch[0].copy())
    print("sample1 ->", model(batch[0]))
    print("batch   ->", model(batch))


if __name__ == "__main__":
    main()
