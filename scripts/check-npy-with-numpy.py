#!/usr/bin/env python3
"""Loads every array listed in DIR/manifest.json with numpy and checks dtype, shape and bytes.

Used by the InferenceTensor tests to prove numpy reads what the project writes. Exit code 1 on any mismatch.
"""
import json
import os
import sys

import numpy as np


def main(directory):
    with open(os.path.join(directory, "manifest.json")) as f:
        manifest = json.load(f)
    failures = 0
    for entry in manifest:
        path = os.path.join(directory, entry["file"])
        if entry.get("member"):
            with np.load(path) as archive:
                arr = archive[entry["member"]]
        else:
            arr = np.load(path)
        problems = []
        if np.dtype(arr.dtype).name != entry["dtype"]:
            problems.append(f"dtype {arr.dtype} != {entry['dtype']}")
        if list(arr.shape) != entry["shape"]:
            problems.append(f"shape {arr.shape} != {entry['shape']}")
        if np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes().hex() != entry["hex"]:
            problems.append("bytes differ")
        if problems:
            failures += 1
            print(f"{entry['file']}:{entry.get('member') or ''}: {'; '.join(problems)}")
    print(f"checked {len(manifest)} arrays, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
