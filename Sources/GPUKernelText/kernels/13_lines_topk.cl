/* Hardmax (mode 0) and LpNormalization (mode 1: L1, 2: L2) along an axis: one work-item per line of n
   elements `inner` apart. */
KERNEL void axis_lines(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int lines, int n, int inner,
                       int mode) {
    int l = GID0;
    if (l >= lines) return;
    int base = (l / inner) * n * inner + l % inner;
    if (mode == 0) {
        int best = 0;
        float bestValue = x[xOff + base];
        for (int s = 1; s < n; s++) {
            float v = x[xOff + base + s * inner];
            if (v > bestValue) {
                best = s;
                bestValue = v;
            }
        }
        for (int s = 0; s < n; s++) y[yOff + base + s * inner] = s == best ? 1.0f : 0.0f;
        return;
    }
    float norm = 0.0f;
    for (int s = 0; s < n; s++) {
        float v = x[xOff + base + s * inner];
        norm += mode == 1 ? fabs(v) : v * v;
    }
    if (mode == 2) norm = sqrt(norm);
    for (int s = 0; s < n; s++) {
        float v = x[xOff + base + s * inner];
        y[yOff + base + s * inner] = norm == 0.0f ? 0.0f : v / norm;
    }
}
/* TopK along an axis: one work-item per line of n values `inner` apart; output s is the best element that
   ranks after output s - 1 (values first, ties to the lower index; NaN above every number when largest,
   below when smallest), so no scratch is needed: O(n·k) per line. */
DEVICE int topk_before(float a, int ai, float b, int bi, int largest) {
    int an = a != a, bn = b != b;
    if (an || bn) {
        if (an && bn) return ai < bi;
        return largest ? an : bn;
    }
    if (a != b) return largest ? a > b : a < b;
    return ai < bi;
}
KERNEL void topk_lines(GLOBAL const float *x, int xOff, GLOBAL float *values, int vOff, GLOBAL long *indices,
                       int iOff, int lines, int n, int inner, int k, int largest) {
    int l = GID0;
    if (l >= lines) return;
    int o = l / inner, in = l % inner;
    int base = o * n * inner + in, outBase = o * k * inner + in;
    float pv = 0.0f;
    int pi = -1;
    for (int s = 0; s < k; s++) {
        int best = -1;
        float bv = 0.0f;
        for (int j = 0; j < n; j++) {
            float v = x[xOff + base + j * inner];
            if (pi >= 0 && !topk_before(pv, pi, v, j, largest)) continue;
            if (best < 0 || topk_before(v, j, bv, best, largest)) {
                best = j;
                bv = v;
            }
        }
        values[vOff + outBase + s * inner] = bv;
        indices[iOff + outBase + s * inner] = (long)best;
        pv = bv;
        pi = best;
    }
}
