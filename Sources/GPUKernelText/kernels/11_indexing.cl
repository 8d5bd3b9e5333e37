/* Indexing with checked indices (int64): an index outside [-extent, extent) sets status[0] and its element
   is neither read nor written; the backend reports the node when it synchronizes. */
DEVICE int checked_index(long k, int extent, GLOBAL int *status) {
    if (k < 0) k += extent;
    if (k < 0 || k >= extent) {
        status[0] = 1;
        return -1;
    }
    return (int)k;
}

/* GatherElements/ScatterElements: the data offset for element i of indices; meta = [rank, axis, axisExtent,
   indexDims[rank], dataStrides[rank]]. */
DEVICE int elements_offset(int i, GLOBAL const long *idx, int idxOff, GLOBAL const int *meta,
                           GLOBAL int *status) {
    int rank = meta[0], axis = meta[1], rest = i, offset = 0;
    for (int a = rank - 1; a >= 0; a--) {
        int d = meta[3 + a];
        int k = rest % d;
        rest /= d;
        if (a == axis) {
            k = checked_index(idx[idxOff + i], meta[2], status);
            if (k < 0) return -1;
        }
        offset += k * meta[3 + rank + a];
    }
    return offset;
}
KERNEL void gather_elements_bytes(GLOBAL const uchar *x, int xOff, GLOBAL const long *idx, int idxOff,
                                  GLOBAL uchar *y, int yOff, int count, int width, GLOBAL const int *meta,
                                  GLOBAL int *status) {
    int i = GID0;
    if (i >= count) return;
    int from = elements_offset(i, idx, idxOff, meta, status);
    if (from >= 0) {
        copy_element(x, xOff + from * width, y, yOff + i * width, width);
    } else {
        for (int b = 0; b < width; b++) y[yOff + i * width + b] = 0;
    }
}
KERNEL void scatter_elements_bytes(GLOBAL const uchar *u, int uOff, GLOBAL const long *idx, int idxOff,
                                   GLOBAL uchar *y, int yOff, int count, int width, GLOBAL const int *meta,
                                   GLOBAL int *status) {
    int i = GID0;
    if (i >= count) return;
    int to = elements_offset(i, idx, idxOff, meta, status);
    if (to >= 0) copy_element(u, uOff + i * width, y, yOff + to * width, width);
}

/* GatherND/ScatterND: the data offset of index tuple t; meta = [tupleLength, tuplesPerBatch, sliceCount,
   batchStride, indexedDims[tupleLength], indexedStrides[tupleLength]]. */
DEVICE int tuple_offset(int t, GLOBAL const long *idx, int idxOff, GLOBAL const int *meta, GLOBAL int *status) {
    int n = meta[0];
    int offset = (t / meta[1]) * meta[3];
    for (int j = 0; j < n; j++) {
        int k = checked_index(idx[idxOff + t * n + j], meta[4 + j], status);
        if (k < 0) return -1;
        offset += k * meta[4 + n + j];
    }
    return offset;
}
KERNEL void gather_nd_bytes(GLOBAL const uchar *x, int xOff, GLOBAL const long *idx, int idxOff,
                            GLOBAL uchar *y, int yOff, int count, int width, GLOBAL const int *meta,
                            GLOBAL int *status) {
    int i = GID0;
    if (i >= count) return;
    int slice = meta[2];
    int from = tuple_offset(i / slice, idx, idxOff, meta, status);
    if (from >= 0) {
        copy_element(x, xOff + (from + i % slice) * width, y, yOff + i * width, width);
    } else {
        for (int b = 0; b < width; b++) y[yOff + i * width + b] = 0;
    }
}
KERNEL void scatter_nd_bytes(GLOBAL const uchar *u, int uOff, GLOBAL const long *idx, int idxOff,
                             GLOBAL uchar *y, int yOff, int count, int width, GLOBAL const int *meta,
                             GLOBAL int *status) {
    int i = GID0;
    if (i >= count) return;
    int slice = meta[2];
    int to = tuple_offset(i / slice, idx, idxOff, meta, status);
    if (to >= 0) copy_element(u, uOff + i * width, y, yOff + (to + i % slice) * width, width);
}

/* Trilu on the last two axes: keep element (r, c) when c - r >= k (upper) or c - r <= k (lower), else 0. k is
   kConst, or read from kp[kOff] when hasK (clamped to the matrix: beyond it all elements are kept or zeroed). */
KERNEL void trilu_bytes(GLOBAL const uchar *x, int xOff, GLOBAL uchar *y, int yOff, int count, int width,
                        int rows, int cols, int kConst, int upper, GLOBAL const long *kp, int kOff, int hasK) {
    int i = GID0;
    if (i >= count) return;
    long kl = hasK ? kp[kOff] : (long)kConst;
    int k = kl > cols + 1 ? cols + 1 : (kl < -rows - 1 ? -rows - 1 : (int)kl);
    int c = i % cols, r = (i / cols) % rows;
    int keep = upper ? (c - r >= k) : (c - r <= k);
    for (int b = 0; b < width; b++) y[yOff + i * width + b] = keep ? x[xOff + i * width + b] : 0;
}

/* CumSum along an axis: one work-item per line of n elements `inner` apart, summed in order. */
KERNEL void cumsum_f32(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int lines, int n, int inner,
                       int exclusive, int reverse) {
    int l = GID0;
    if (l >= lines) return;
    int base = (l / inner) * n * inner + l % inner;
    float running = 0.0f;
    for (int s = 0; s < n; s++) {
        int at = base + (reverse ? n - 1 - s : s) * inner;
        float v = x[xOff + at];
        if (!exclusive) running += v;
        y[yOff + at] = running;
        if (exclusive) running += v;
    }
}

/* IsNaN (mode 0) and IsInf (mode 1: both signs, 2: +inf only, 3: -inf only, 4: neither) as bytes. */
KERNEL void float_class(GLOBAL const float *x, int xOff, GLOBAL uchar *y, int yOff, int count, int mode) {
    int i = GID0;
    if (i >= count) return;
    float v = x[xOff + i];
    int infinite = isinf(v);
    y[yOff + i] = (uchar)(mode == 0 ? isnan(v) != 0
                          : mode == 1 ? infinite != 0
                          : mode == 2 ? (infinite != 0 && v > 0.0f)
                          : mode == 3 ? (infinite != 0 && v < 0.0f) : 0);
}

/* Casts between the integer types and bool. */
CK_CAST_KERNEL(cast_i64_u8, long, uchar, (uchar)(v != 0))
CK_CAST_KERNEL(cast_i32_u8, int, uchar, (uchar)(v != 0))
CK_CAST_KERNEL(cast_u8_i64, uchar, long, v ? 1 : 0)
CK_CAST_KERNEL(cast_u8_i32, uchar, int, v ? 1 : 0)
CK_CAST_KERNEL(cast_i64_i32, long, int, (int)v)
CK_CAST_KERNEL(cast_i32_i64, int, long, (long)v)
