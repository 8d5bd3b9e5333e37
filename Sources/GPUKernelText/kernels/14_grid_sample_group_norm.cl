/* GridSample (rank 1-3): one work-item per (image, channel, output point), as the CPU kernel computes it
   (PyTorch's grid_sample). meta = [N, C, rank, points, mode (0 nearest, 1 linear, 2 cubic), padding (0 zeros,
   1 border, 2 reflection), alignCorners, dims[rank]]. */
DEVICE float gs_reflect(float v, float lo, float hi) {
    float range = hi - lo;
    if (range <= 0.0f) return lo;
    if (v < lo) {
        float dx = lo - v, k = trunc(dx / range), r = dx - k * range;
        return fmod(k, 2.0f) == 0.0f ? lo + r : hi - r;
    }
    if (v > hi) {
        float dx = v - hi, k = trunc(dx / range), r = dx - k * range;
        return fmod(k, 2.0f) == 0.0f ? hi - r : lo + r;
    }
    return v;
}
DEVICE int gs_index(int i, int d, int padding, float lo, float hi) {
    if (i >= 0 && i < d) return i;
    if (padding == 0) return -1;
    if (padding == 1) return i < 0 ? 0 : d - 1;
    int r = (int)gs_reflect((float)i, lo, hi);
    return r < 0 ? 0 : (r >= d ? d - 1 : r);
}
DEVICE void gs_cubic(float t, float *w) {
    float a = -0.75f, x0 = t + 1.0f, x1 = t, x2 = 1.0f - t, x3 = 2.0f - t;
    w[0] = ((a * x0 - 5.0f * a) * x0 + 8.0f * a) * x0 - 4.0f * a;
    w[1] = ((a + 2.0f) * x1 - (a + 3.0f)) * x1 * x1 + 1.0f;
    w[2] = ((a + 2.0f) * x2 - (a + 3.0f)) * x2 * x2 + 1.0f;
    w[3] = ((a * x3 - 5.0f * a) * x3 + 8.0f * a) * x3 - 4.0f * a;
}
KERNEL void grid_sample(GLOBAL const float *x, int xOff, GLOBAL const float *grid, int gOff, GLOBAL float *y,
                        int yOff, int count, GLOBAL const int *meta) {
    int e = GID0;
    if (e >= count) return;
    int C = meta[1], rank = meta[2], points = meta[3], mode = meta[4], padding = meta[5], align = meta[6];
    int p = e % points, c = (e / points) % C, b = e / (points * C);
    int plane = 1;
    for (int a = 0; a < rank; a++) plane *= meta[7 + a];
    int taps = mode == 2 ? 4 : (mode == 1 ? 2 : 1);
    int index[3][4];
    float weight[3][4];
    int outside = 0;
    for (int a = 0; a < rank; a++) {
        int d = meta[7 + a];
        float lo = align ? 0.0f : -0.5f, hi = align ? (float)(d - 1) : (float)d - 0.5f;
        float g = grid[gOff + (b * points + p) * rank + rank - 1 - a];
        float v = align ? (g + 1.0f) / 2.0f * (float)(d - 1) : ((g + 1.0f) * (float)d - 1.0f) / 2.0f;
        if (mode == 0) v = rint(v);
        if (v < lo || v > hi) {
            if (padding == 1) v = v < 0.0f ? 0.0f : (v > (float)(d - 1) ? (float)(d - 1) : v);
            else if (padding == 2) v = gs_reflect(v, lo, hi);
        }
        if (!(fabs(v) <= 1.0e15f)) outside = 1;
        if (outside) continue;
        if (mode == 0) {
            index[a][0] = gs_index((int)trunc(v), d, padding, lo, hi);
            weight[a][0] = 1.0f;
        } else if (mode == 1) {
            float f = floor(v), t = v - f;
            index[a][0] = gs_index((int)f, d, padding, lo, hi);
            index[a][1] = gs_index((int)f + 1, d, padding, lo, hi);
            weight[a][0] = 1.0f - t;
            weight[a][1] = t;
        } else {
            float f = floor(v), w[4];
            gs_cubic(v - f, w);
            for (int k = 0; k < 4; k++) {
                index[a][k] = gs_index((int)f + k - 1, d, padding, lo, hi);
                weight[a][k] = w[k];
            }
        }
    }
    float sum = 0.0f;
    if (!outside) {
        int corners = 1;
        for (int a = 0; a < rank; a++) corners *= taps;
        for (int corner = 0; corner < corners; corner++) {
            int rest = corner, offset = 0, stride = 1;
            float w = 1.0f;
            for (int a = rank - 1; a >= 0; a--) {
                int k = rest % taps;
                rest /= taps;
                int i = index[a][k];
                if (i < 0) {
                    w = 0.0f;
                    break;
                }
                offset += i * stride;
                stride *= meta[7 + a];
                w *= weight[a][k];
            }
            if (w != 0.0f) sum += w * x[xOff + (b * C + c) * plane + offset];
        }
    }
    y[yOff + e] = sum;
}
/* Instance and group normalization: one work-item per (image, group) of `cpg` channels of `spatial` values:
   mean and variance over the group, then a per-channel (perChannel) or per-group scale and bias. */
KERNEL void group_norm(GLOBAL const float *x, int xOff, GLOBAL const float *g, int gOff, GLOBAL const float *b,
                       int bOff, GLOBAL float *y, int yOff, int items, int groups, int cpg, int spatial,
                       int perChannel, float epsilon) {
    int item = GID0;
    if (item >= items) return;
    int grp = item % groups, width = cpg * spatial;
    int base = item * width;
    float sum = 0.0f;
    for (int i = 0; i < width; i++) sum += x[xOff + base + i];
    float mean = sum / (float)width, squares = 0.0f;
    for (int i = 0; i < width; i++) {
        float d = x[xOff + base + i] - mean;
        squares += d * d;
    }
    float inverse = 1.0f / sqrt(squares / (float)width + epsilon);
    for (int c = 0; c < cpg; c++) {
        int pidx = perChannel ? grp * cpg + c : grp;
        float gamma = g[gOff + pidx], beta = b[bOff + pidx];
        for (int s = 0; s < spatial; s++) {
            int at = base + c * spatial + s;
            y[yOff + at] = (x[xOff + at] - mean) * inverse * gamma + beta;
        }
    }
}

/* LRN across channels: one work-item per element of [N][C][spatial]. */
KERNEL void lrn(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int count, int C, int spatial,
                int size, float alpha, float beta, float bias) {
    int i = GID0;
    if (i >= count) return;
    int s = i % spatial, c = (i / spatial) % C, n = i / (spatial * C);
    int before = (size - 1) / 2, after = size - 1 - before;
    int lo = c - before < 0 ? 0 : c - before, hi = c + after > C - 1 ? C - 1 : c + after;
    float squares = 0.0f;
    for (int k = lo; k <= hi; k++) {
        float v = x[xOff + (n * C + k) * spatial + s];
        squares += v * v;
    }
    y[yOff + i] = x[xOff + i] / pow(bias + alpha / (float)size * squares, beta);
}

/* OneHot: one work-item per output element [outer][depth][inner]; the index (int64, or float when isFloat)
   picks the `on` value (values element 1), every other position and any index outside [-depth, depth)
   the `off` value (element 0); elements of `width` bytes. */
KERNEL void one_hot(GLOBAL const uchar *idx, int idxOff, int isFloat, GLOBAL const uchar *values, int vOff,
                    GLOBAL uchar *y, int yOff, int count, int width, int depth, int inner) {
    int i = GID0;
    if (i >= count) return;
    int in = i % inner, d = (i / inner) % depth, o = i / (inner * depth);
    int at = o * inner + in;
    long k;
    if (isFloat) {
        float f = ((GLOBAL const float *)idx)[idxOff / 4 + at];
        k = (f == f && f > -(float)depth - 1.0f && f < (float)depth) ? (long)f : (long)depth;
    } else {
        k = ((GLOBAL const long *)idx)[idxOff / 8 + at];
    }
    if (k < 0) k += depth;
    int on = k == (long)d;
    copy_element(values, vOff + (on ? width : 0), y, yOff + i * width, width);
}
