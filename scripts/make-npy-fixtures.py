#!/usr/bin/env python3
"""Writes the NumPy fixtures the InferenceTensor tests read, with numpy itself, plus manifest.json.

Each manifest entry names a file, the array name (for .npz members), the dtype and shape the reader must
produce, and the expected bytes as little-endian, C-order hex. Covers every supported dtype in both memory
orders and both byte orders, format versions 1.0/2.0/3.0, 0-d and empty arrays, a header padded to
16 bytes as older numpy wrote it, and .npz archives stored and deflated (numpy writes ZIP64 fields).
Run from the repository root:  .venv/bin/python scripts/make-npy-fixtures.py
"""
import json
import os
import struct

import numpy as np

OUT = "Tests/InferenceTensorTests/Fixtures/npy"
DTYPES = ["f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"]
NAMES = {"f2": "float16", "f4": "float32", "f8": "float64", "i1": "int8", "i2": "int16", "i4": "int32",
         "i8": "int64", "u1": "uint8", "u2": "uint16", "u4": "uint32", "u8": "uint64", "b1": "bool"}


def values(code, shape):
    n = int(np.prod(shape))
    dt = np.dtype(code)
    if dt.kind == "f":
        info = np.finfo(dt)
        base = (np.arange(n, dtype=np.float64) - n / 2) * 0.37
        arr = base.astype(dt)
        specials = [np.nan, np.inf, -np.inf, -0.0, info.tiny / 4, info.max, info.min, info.eps]
        for i, v in enumerate(specials[: n]):
            arr[i] = v
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        arr = (np.arange(n, dtype=np.int64) * 37 % 251).astype(dt)
        if n >= 2:
            arr[0] = info.min
            arr[1] = info.max
    else:
        arr = (np.arange(n) % 3 == 0)
    return arr.reshape(shape)


def expected_hex(arr):
    return arr.astype(arr.dtype.newbyteorder("<"), order="C").tobytes(order="C").hex()


manifest = []


def record(file, arr, member=None):
    manifest.append({"file": file, "member": member, "dtype": NAMES[arr.dtype.str[1:]] if arr.dtype.str[1:] in NAMES else NAMES["b1"],
                     "shape": list(arr.shape), "hex": expected_hex(arr)})


def save(name, arr, version=None, order="C"):
    path = os.path.join(OUT, name)
    data = arr if arr.ndim == 0 else (np.asfortranarray(arr) if order == "F" else np.ascontiguousarray(arr))
    with open(path, "wb") as f:
        np.lib.format.write_array(f, data, version=version)
    record(name, arr)


def main():
    os.makedirs(OUT, exist_ok=True)
    for old in os.listdir(OUT):
        os.remove(os.path.join(OUT, old))
    for code in DTYPES:
        base = values(code, (2, 3, 4))
        orders = ["<", ">"] if np.dtype(code).itemsize > 1 else ["|"]
        for bo in orders:
            arr = base.astype(np.dtype(code).newbyteorder(bo)) if bo != "|" else base
            tag = {"<": "le", ">": "be", "|": "na"}[bo]
            for order in ["C", "F"]:
                save(f"{NAMES[code]}_{tag}_{order}_v1.npy", arr, version=(1, 0), order=order)
    for version in [(2, 0), (3, 0)]:
        for code in ["f4", "i8", "f2", "b1"]:
            save(f"{NAMES[code]}_v{version[0]}.npy", values(code, (3, 5)), version=version, order="F" if code == "i8" else "C")
    save("scalar_f8.npy", np.array(3.25, dtype="<f8"))
    save("scalar_bool.npy", np.array(True))
    save("empty_f4.npy", np.zeros((0,), dtype="<f4"))
    save("empty_3x0x2_i4.npy", np.zeros((3, 0, 2), dtype="<i4"))
    save("vector_f4.npy", values("f4", (7,)))
    save("big_endian_fortran_4d_f8.npy", values("f8", (2, 3, 2, 2)).astype(">f8"), order="F")

    # Older numpy padded the header to 16 bytes, not 64: write one by hand.
    arr = values("f4", (2, 5))
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 5), }"
    total = 10 + len(header) + 1
    header += " " * ((16 - total % 16) % 16) + "\n"
    with open(os.path.join(OUT, "pad16_f4.npy"), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + arr.tobytes())
    record("pad16_f4.npy", arr)

    a = values("f4", (4, 10))
    b = values("i8", (3,))
    c = values("b1", (2, 2))
    np.savez(os.path.join(OUT, "stored.npz"), a=a, b=b, c=c)
    np.savez_compressed(os.path.join(OUT, "deflated.npz"), a=a, b=b, c=c)
    np.savez(os.path.join(OUT, "positional.npz"), a, b)
    for name in ["stored.npz", "deflated.npz"]:
        for member, arr in [("a", a), ("b", b), ("c", c)]:
            record(name, arr, member)
    record("positional.npz", a, "arr_0")
    record("positional.npz", b, "arr_1")

    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"numpy": np.__version__, "entries": manifest}, f, indent=1)
    print(f"wrote {len(manifest)} arrays to {OUT} with numpy {np.__version__}")


if __name__ == "__main__":
    main()
