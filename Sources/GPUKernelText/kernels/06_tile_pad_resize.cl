/* Tile: y[idx] = x[idx mod inDims]; meta = [rank, outDims[rank], inDims[rank], inStrides[rank]]. */
/* meta = [rank, outDims[rank], inDims[rank], inStrides[rank]]. */
DEVICE int tile_source(int i, GLOBAL const int *meta) {
    int rank = meta[0], rest = i, offset = 0;
    for (int axis = rank - 1; axis >= 0; axis--) {
        int d = meta[1 + axis];
        offset += ((rest % d) % meta[1 + rank + axis]) * meta[1 + 2 * rank + axis];
        rest /= d;
    }
    return offset;
}
KERNEL void tile(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int count, GLOBAL const int *meta) {
    int i = GID0;
    if (i < count) y[yOff + i] = x[xOff + tile_source(i, meta)];
}
KERNEL void tile_bytes(GLOBAL const uchar *x, int xOff, GLOBAL uchar *y, int yOff, int count, int width,
                       GLOBAL const int *meta) {
    int i = GID0;
    if (i < count) copy_element(x, xOff + tile_source(i, meta) * width, y, yOff + i * width, width);
}

/* Pad; meta = [rank, mode (0 constant, 1 reflect, 2 edge, 3 wrap), outDims[rank], inDims[rank],
   inStrides[rank], padsBegin[rank]]. */
KERNEL void pad(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int count, float value,
                GLOBAL const int *meta) {
    int i = GID0;
    if (i >= count) return;
    int rank = meta[0], mode = meta[1], rest = i, offset = 0;
    for (int axis = rank - 1; axis >= 0; axis--) {
        int d = meta[2 + axis], inDim = meta[2 + rank + axis];
        int c = rest % d - meta[2 + 3 * rank + axis];
        rest /= d;
        if (c < 0 || c >= inDim) {
            if (mode == 0) { y[yOff + i] = value; return; }
            if (mode == 1) {
                int period = 2 * (inDim - 1);
                c = ((c % period) + period) % period;
                if (c >= inDim) c = period - c;
            } else if (mode == 2) {
                c = c < 0 ? 0 : inDim - 1;
            } else {
                c = ((c % inDim) + inDim) % inDim;
            }
        }
        offset += c * meta[2 + 2 * rank + axis];
    }
    y[yOff + i] = x[xOff + offset];
}

/* Resize (nearest and N-linear) from per-axis tables made on the host. meta = [rank, extrapolation bits,
   outDims[rank], inStrides[rank], tableStart[rank]]; at tableStart[a], four rows of outDims[a] ints: low
   index, high index, outside flag, weight of high (float bits). Corners with weight 0 are skipped. */
KERNEL void resize(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int count, GLOBAL const int *meta) {
    int i = GID0;
    if (i >= count) return;
    int rank = meta[0];
    int index[8];
    int rest = i;
    for (int axis = rank - 1; axis >= 0; axis--) {
        int d = meta[2 + axis];
        index[axis] = rest % d;
        rest /= d;
    }
    for (int axis = 0; axis < rank; axis++) {
        int t = meta[2 + 2 * rank + axis], d = meta[2 + axis];
        if (meta[t + 2 * d + index[axis]]) { y[yOff + i] = INT_AS_FLOAT(meta[1]); return; }
    }
    float value = 0.0f;
    for (int corner = 0; corner < (1 << rank); corner++) {
        float weight = 1.0f;
        int offset = 0;
        for (int axis = 0; axis < rank; axis++) {
            int t = meta[2 + 2 * rank + axis], d = meta[2 + axis], k = index[axis];
            float w = INT_AS_FLOAT(meta[t + 3 * d + k]);
            if (corner & (1 << axis)) {
                weight *= w;
                offset += meta[t + d + k] * meta[2 + rank + axis];
            } else {
                weight *= 1.0f - w;
                offset += meta[t + k] * meta[2 + rank + axis];
            }
            if (weight == 0.0f) break;
        }
        if (weight != 0.0f) value += weight * x[xOff + offset];
    }
    y[yOff + i] = value;
}

