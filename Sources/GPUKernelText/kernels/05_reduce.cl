/* Reductions over any axes: meta = [keptRank, keptDims, keptStrides, reducedRank, reducedDims,
   reducedStrides] (strides into x); op 0 sum, 1 mean, 2 max, 3 min, 4 sum of squares, 5 product, 6 L2 norm.
   NaN propagates. */
KERNEL void reduce(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int count, int op,
                   GLOBAL const int *meta) {
    int i = GID0;
    if (i >= count) return;
    int kr = meta[0], rest = i, base = 0;
    for (int axis = kr - 1; axis >= 0; axis--) {
        int d = meta[1 + axis];
        base += (rest % d) * meta[1 + kr + axis];
        rest /= d;
    }
    int p = 1 + 2 * kr, rr = meta[p], total = 1;
    for (int axis = 0; axis < rr; axis++) total *= meta[p + 1 + axis];
    /* LogSumExp (op 9) subtracts the largest value first: a pass for it, then the sum. */
    float shift = 0.0f;
    for (int pass = op == 9 ? 0 : 1; pass < 2; pass++) {
        float acc = pass == 0 ? -INFINITY : (op == 2 ? -INFINITY : (op == 3 ? INFINITY : (op == 5 ? 1.0f : 0.0f)));
        for (int j = 0; j < total; j++) {
            int r = j, offset = base;
            for (int axis = rr - 1; axis >= 0; axis--) {
                int d = meta[p + 1 + axis];
                offset += (r % d) * meta[p + 1 + rr + axis];
                r /= d;
            }
            float v = x[xOff + offset];
            if (pass == 0) acc = v > acc ? v : acc;
            else if (op == 2) acc = (v > acc || v != v) ? v : acc;
            else if (op == 3) acc = (v < acc || v != v) ? v : acc;
            else if (op == 4 || op == 6) acc += v * v;
            else if (op == 5) acc *= v;
            else if (op == 7) acc += fabs(v);
            else if (op == 9) acc += exp(v - shift);
            else acc += v;
        }
        if (pass == 0) {
            shift = isinf(acc) ? 0.0f : acc;
            continue;
        }
        y[yOff + i] = op == 1 ? acc / (float)total
                      : op == 6 ? sqrt(acc)
                      : op == 8 ? log(acc)
                      : op == 9 ? log(acc) + shift : acc;
    }
}

/* And, Or, Xor on bool bytes with broadcasting (meta as for binary); Not when op is 3 (b unused). */
KERNEL void logic(GLOBAL const uchar *a, int aOff, GLOBAL const uchar *b, int bOff, GLOBAL uchar *y, int yOff,
                  int count, int op, GLOBAL const int *meta) {
    int i = GID0;
    if (i >= count) return;
    int ib, ia = pair_offsets(i, meta, &ib);
    int u = a[aOff + ia] != 0, v = op == 3 ? 0 : b[bOff + ib] != 0;
    y[yOff + i] = (uchar)(op == 0 ? (u & v) : op == 1 ? (u | v) : op == 2 ? (u ^ v) : !u);
}

/* ArgMax/ArgMin along one axis (x viewed as [outer, n, inner]); ties go to the first index, or the last
   when `last` is set. int64 results. */
KERNEL void arg_reduce(GLOBAL const float *x, int xOff, GLOBAL long *y, int yOff, int count, int n, int inner,
                       int isMax, int last) {
    int i = GID0;
    if (i >= count) return;
    GLOBAL const float *p = x + xOff + (i / inner) * n * inner + i % inner;
    float best = p[0];
    int bestIndex = 0;
    for (int k = 1; k < n; k++) {
        float v = p[k * inner];
        int better = isMax ? (last ? v >= best : v > best) : (last ? v <= best : v < best);
        if (better) { best = v; bestIndex = k; }
    }
    y[yOff + i] = (long)bestIndex;
}

