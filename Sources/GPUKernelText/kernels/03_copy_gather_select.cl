/* y[i] = x[offset(i)] for a permutation: meta = [rank, outDims[rank], inStridesPermuted[rank]]. */
/* Data movement computes where each output element comes from once (the *_source helpers); the float
   kernels move 4-byte elements (float32, int32), the *_bytes kernels elements of `width` bytes at byte
   offsets (bool, int8/16/64, uint*, float16/64). */
DEVICE void copy_element(GLOBAL const uchar *x, int from, GLOBAL uchar *y, int to, int width) {
    for (int b = 0; b < width; b++) y[to + b] = x[from + b];
}

/* Strided views: for each index of the iteration space, y[yBase + sum idx*ys] = x[xBase + sum idx*xs].
   meta = [rank, xBase, yBase, dims[rank], xs[rank], ys[rank]]. Expand (stride 0 on broadcast axes), Slice
   (base and stepped strides), Concat and Split (one launch per part, into or out of an offset view). */
DEVICE void strided_offsets(int i, GLOBAL const int *meta, int *xo, int *yo) {
    int rank = meta[0], rest = i, xs = meta[1], ys = meta[2];
    for (int axis = rank - 1; axis >= 0; axis--) {
        int d = meta[3 + axis];
        int k = rest % d;
        rest /= d;
        xs += k * meta[3 + rank + axis];
        ys += k * meta[3 + 2 * rank + axis];
    }
    *xo = xs;
    *yo = ys;
}
KERNEL void strided_copy(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int count,
                         GLOBAL const int *meta) {
    int i = GID0;
    if (i >= count) return;
    int xo, yo;
    strided_offsets(i, meta, &xo, &yo);
    y[yOff + yo] = x[xOff + xo];
}
KERNEL void strided_copy_bytes(GLOBAL const uchar *x, int xOff, GLOBAL uchar *y, int yOff, int count, int width,
                               GLOBAL const int *meta) {
    int i = GID0;
    if (i >= count) return;
    int xo, yo;
    strided_offsets(i, meta, &xo, &yo);
    copy_element(x, xOff + xo * width, y, yOff + yo * width, width);
}

/* Gather along an axis with int64 indices (negative counts from the end): meta = [axisDim, inner, nIdx].
   An index outside the axis gives -1 and sets status[0]: the element is written as 0 and the backend
   reports the node when it synchronizes. */
DEVICE int gather_source(int i, GLOBAL const long *idx, int idxOff, GLOBAL const int *meta, GLOBAL int *status) {
    int axisDim = meta[0], inner = meta[1], n = meta[2];
    int in = i % inner, rest = i / inner;
    int j = rest % n, o = rest / n;
    long k = idx[idxOff + j];
    if (k < 0) k += axisDim;
    if (k < 0 || k >= axisDim) {
        status[0] = 1;
        return -1;
    }
    return (o * axisDim + (int)k) * inner + in;
}
KERNEL void gather_axis(GLOBAL const float *x, int xOff, GLOBAL const long *idx, int idxOff, GLOBAL float *y,
                        int yOff, int count, GLOBAL const int *meta, GLOBAL int *status) {
    int i = GID0;
    if (i >= count) return;
    int from = gather_source(i, idx, idxOff, meta, status);
    y[yOff + i] = from < 0 ? 0.0f : x[xOff + from];
}
KERNEL void gather_axis_bytes(GLOBAL const uchar *x, int xOff, GLOBAL const long *idx, int idxOff, GLOBAL uchar *y,
                              int yOff, int count, int width, GLOBAL const int *meta, GLOBAL int *status) {
    int i = GID0;
    if (i >= count) return;
    int from = gather_source(i, idx, idxOff, meta, status);
    if (from >= 0) {
        copy_element(x, xOff + from * width, y, yOff + i * width, width);
    } else {
        for (int b = 0; b < width; b++) y[yOff + i * width + b] = 0;
    }
}

/* A plain copy of `count` bytes (Identity and the Reshape family on elements that are not 4 bytes). */
KERNEL void copy_bytes(GLOBAL const uchar *x, int xOff, GLOBAL uchar *y, int yOff, int count) {
    int i = GID0;
    if (i < count) y[yOff + i] = x[xOff + i];
}

/* Comparisons with broadcasting (meta as for binary), bool results as bytes: op 0 ==, 1 <, 2 >, 3 <=, 4 >=. */
KERNEL void compare(GLOBAL const float *a, int aOff, GLOBAL const float *b, int bOff, GLOBAL uchar *y, int yOff,
                    int count, int op, GLOBAL const int *meta) {
    int i = GID0;
    if (i >= count) return;
    int ib, ia = pair_offsets(i, meta, &ib);
    float u = a[aOff + ia], v = b[bOff + ib];
    int r = op == 0 ? u == v : op == 1 ? u < v : op == 2 ? u > v : op == 3 ? u <= v : u >= v;
    y[yOff + i] = (uchar)r;
}

/* Where(cond, x, y) with broadcasting: meta = [rank, dims[rank], condStrides, xStrides, yStrides]. */
KERNEL void where_select(GLOBAL const uchar *c, int cOff, GLOBAL const float *x, int xOff, GLOBAL const float *y,
                         int yOff, GLOBAL float *out, int oOff, int count, GLOBAL const int *meta) {
    int i = GID0;
    if (i >= count) return;
    int o[3];
    broadcast_offsets(i, meta, 3, o);
    out[oOff + i] = c[cOff + o[0]] ? x[xOff + o[1]] : y[yOff + o[2]];
}

/* Where on elements of `width` bytes at byte offsets (every type but float32). */
KERNEL void where_bytes(GLOBAL const uchar *c, int cOff, GLOBAL const uchar *x, int xOff, GLOBAL const uchar *y,
                        int yOff, GLOBAL uchar *out, int oOff, int count, int width, GLOBAL const int *meta) {
    int i = GID0;
    if (i >= count) return;
    int o[3];
    broadcast_offsets(i, meta, 3, o);
    if (c[cOff + o[0]]) {
        copy_element(x, xOff + o[1] * width, out, oOff + i * width, width);
    } else {
        copy_element(y, yOff + o[2] * width, out, oOff + i * width, width);
    }
}

