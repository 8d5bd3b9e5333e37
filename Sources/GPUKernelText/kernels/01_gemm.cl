/* Gemm and (batched) MatMul: Y[s] = alpha · op(A[s]) · op(B[s]) (+ beta · C broadcast), A[s] and B[s] at the
   element offsets meta[2s] and meta[2s + 1]. Work-groups of 16 x 16 outputs stage 16-wide slices of A and B
   through local memory (the global size is whole groups, so every work-item reaches the barriers and only
   the stores are bounds-checked); each output still sums its K products in order, in float32 whatever the
   storage type T (gemm_tiled_f16 and gemm_tiled_bf16 widen A, B and C on load and round Y once). */
#define CK_GEMM_TILED(name, T, LOAD, STORE)                                                                       \
    KERNEL void name(GLOBAL const T *a, int aOff, GLOBAL const T *b, int bOff, GLOBAL const T *c, int cOff,        \
                     GLOBAL T *y, int yOff, int m, int n, int k, int transA, int transB, float alpha, float beta, \
                     int cRows, int cCols, int hasC, GLOBAL const int *meta) {                                    \
        LOCAL float as[16][16];                                                                                   \
        LOCAL float bs[16][17];                                                                                   \
        int tx = LID0, ty = LID1;                                                                                 \
        int j = GID0, i = GID1, s = GID2;                                                                         \
        /* Rows and columns of the group's first work-items, for the tile loads. */                               \
        int i0 = i - ty, j0 = j - tx;                                                                             \
        GLOBAL const T *ap = a + aOff + meta[2 * s];                                                              \
        GLOBAL const T *bp = b + bOff + meta[2 * s + 1];                                                          \
        float acc = 0.0f;                                                                                         \
        for (int p0 = 0; p0 < k; p0 += 16) {                                                                      \
            /* as[r][q] = A'[i0 + r, p0 + q]; bs[q][t] = B'[p0 + q, j0 + t]. */                                   \
            int ar = i0 + ty, aq = p0 + tx;                                                                       \
            as[ty][tx] = (ar < m && aq < k) ? LOAD(transA ? ap[aq * m + ar] : ap[ar * k + aq]) : 0.0f;            \
            int bq = p0 + ty, bt = j0 + tx;                                                                       \
            bs[ty][tx] = (bt < n && bq < k) ? LOAD(transB ? bp[bt * k + bq] : bp[bq * n + bt]) : 0.0f;            \
            BARRIER();                                                                                            \
            int steps = k - p0 < 16 ? k - p0 : 16;                                                                \
            for (int q = 0; q < steps; q++) acc += as[ty][q] * bs[q][tx];                                         \
            BARRIER();                                                                                            \
        }                                                                                                         \
        if (i >= m || j >= n) return;                                                                             \
        float v = alpha * acc;                                                                                    \
        if (hasC) v += beta * LOAD(c[cOff + (cRows == 1 ? 0 : i) * cCols + (cCols == 1 ? 0 : j)]);                \
        y[yOff + s * m * n + i * n + j] = STORE(v);                                                               \
    }
CK_GEMM_TILED(gemm_tiled, float, CK_LOAD_F32, CK_STORE_F32)
CK_GEMM_TILED(gemm_tiled_f16, ck_u16, CK_LOAD_F16, CK_STORE_F16)
CK_GEMM_TILED(gemm_tiled_bf16, ck_u16, CK_LOAD_BF16, CK_STORE_BF16)
