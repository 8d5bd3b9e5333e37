/* Direct convolution over up to three spatial axes (1-D and 2-D run with unit leading axes), one work-item
   per output element (n, m, od, oy, ox); geometry in meta:
   [C, D, H, W, M, OD, OH, OW, KD, KH, KW, SD, SY, SX, DD, DY, DX, PD, PY, PX, group]. Over each float storage
   type (float32 sums from the bias on, one rounding per output). */
#define CK_CONV3D(name, T, LOAD, STORE)                                                                         \
    KERNEL void name(GLOBAL const T *x, int xOff, GLOBAL const T *w, int wOff, GLOBAL const T *b, int bOff,      \
                     int hasBias, GLOBAL T *y, int yOff, int count, GLOBAL const int *meta) {                  \
        int i = GID0;                                                                                          \
        if (i >= count) return;                                                                                \
        CK_CONV_META(i);                                                                                       \
        int cg = C / G, mg = M / G, g = m / mg;                                                                \
        float acc = hasBias ? LOAD(b[bOff + m]) : 0.0f;                                                        \
        for (int c = 0; c < cg; c++) {                                                                         \
            GLOBAL const T *xc = x + xOff + ((n * C) + g * cg + c) * D * H * W;                                \
            GLOBAL const T *wc = w + wOff + (m * cg + c) * KD * KH * KW;                                       \
            CK_CONV_WINDOW_BEGIN                                                                               \
            acc += LOAD(xc[xi]) * LOAD(wc[wi]);                                                                \
            CK_CONV_WINDOW_END                                                                                 \
        }                                                                                                      \
        y[yOff + i] = STORE(acc);                                                                              \
    }
CK_CONV3D(conv3d, float, CK_LOAD_F32, CK_STORE_F32)
CK_CONV3D(conv3d_f16, ck_u16, CK_LOAD_F16, CK_STORE_F16)
CK_CONV3D(conv3d_bf16, ck_u16, CK_LOAD_BF16, CK_STORE_BF16)

/* im2col for convolution as a GEMM (group 1): cols[n][(c, kd, ky, kx)][(od, oy, ox)] from x, PAD outside it
   (zero; for bytes the `pad` argument, the input's zero point), one work-item per column element; meta as conv3d.
   One body for float32 (im2col3d), 2-byte floats (im2col3d_u16: float16 or bfloat16 bits, +0 outside) and bytes. */
#define CK_IM2COL(name, T, PAD_PARAMETER, PAD)                                                                  \
    KERNEL void name(GLOBAL const T *x, int xOff, GLOBAL T *cols, int cOff, int count PAD_PARAMETER,           \
                     GLOBAL const int *meta) {                                                                 \
        int i = GID0;                                                                                          \
        if (i >= count) return;                                                                                \
        int C = meta[0], D = meta[1], H = meta[2], W = meta[3], OD = meta[5], OH = meta[6], OW = meta[7];      \
        int KD = meta[8], KH = meta[9], KW = meta[10], SD = meta[11], SY = meta[12], SX = meta[13];            \
        int DD = meta[14], DY = meta[15], DX = meta[16], PD = meta[17], PY = meta[18], PX = meta[19];          \
        int spatial = OD * OH * OW, taps = KD * KH * KW;                                                       \
        int o = i % spatial, r = (i / spatial) % (C * taps), n = i / (spatial * C * taps);                     \
        int ox = o % OW, oy = (o / OW) % OH, od = o / (OW * OH);                                               \
        int kx = r % KW, ky = (r / KW) % KH, kd = (r / (KW * KH)) % KD, c = r / taps;                          \
        int id = od * SD - PD + kd * DD, iy = oy * SY - PY + ky * DY, ix = ox * SX - PX + kx * DX;             \
        T v = PAD;                                                                                             \
        if (id >= 0 && id < D && iy >= 0 && iy < H && ix >= 0 && ix < W) {                                     \
            v = x[xOff + (((n * C + c) * D + id) * H + iy) * W + ix];                                          \
        }                                                                                                      \
        cols[cOff + i] = v;                                                                                    \
    }
#define CK_NO_PARAMETER
#define CK_PAD_PARAMETER , int pad
CK_IM2COL(im2col3d, float, CK_NO_PARAMETER, 0.0f)
CK_IM2COL(im2col3d_u16, ck_u16, CK_NO_PARAMETER, (ck_u16)0)
CK_IM2COL(im2col3d_bytes, uchar, CK_PAD_PARAMETER, (uchar)pad)

/* Max/average pooling over up to three spatial axes, one work-item per output; the first largest value
   wins (its flat input index goes to `indices` when hasIndices, spatial part column-major when asked).
   meta: [D, H, W, OD, OH, OW, KD, KH, KW, SD, SY, SX, DD, DY, DX, PD, PY, PX, PED, PEY, PEX, isMax,
   includePad, columnMajor, p]. Over each float storage type (float32 arithmetic, one rounding per output). */
#define CK_POOL3D(name, T, LOAD, STORE)                                                                         \
    KERNEL void name(GLOBAL const T *x, int xOff, GLOBAL T *y, int yOff, GLOBAL long *indices, int iOff,        \
                     int hasIndices, int count, GLOBAL const int *meta) {                                      \
        int i = GID0;                                                                                          \
        if (i >= count) return;                                                                                \
        int D = meta[0], H = meta[1], W = meta[2], OD = meta[3], OH = meta[4], OW = meta[5];                   \
        int KD = meta[6], KH = meta[7], KW = meta[8], SD = meta[9], SY = meta[10], SX = meta[11];              \
        int DD = meta[12], DY = meta[13], DX = meta[14], PD = meta[15], PY = meta[16], PX = meta[17];          \
        int PED = meta[18], PEY = meta[19], PEX = meta[20], isMax = meta[21], includePad = meta[22];           \
        int ox = i % OW, oy = (i / OW) % OH, od = (i / (OW * OH)) % OD, p = i / (OW * OH * OD);                \
        GLOBAL const T *xp = x + xOff + p * D * H * W;                                                         \
        float best = -INFINITY, sum = 0.0f;                                                                    \
        int valid = 0, padded = 0, bestAt = -1;                                                                \
        for (int kd = 0; kd < KD; kd++) {                                                                      \
            int id = od * SD - PD + kd * DD;                                                                   \
            for (int ky = 0; ky < KH; ky++) {                                                                  \
                int iy = oy * SY - PY + ky * DY;                                                               \
                for (int kx = 0; kx < KW; kx++) {                                                              \
                    int ix = ox * SX - PX + kx * DX;                                                           \
                    if (id >= 0 && id < D && iy >= 0 && iy < H && ix >= 0 && ix < W) {                        \
                        int at = (id * H + iy) * W + ix;                                                       \
                        float v = LOAD(xp[at]);                                                                \
                        if (v > best || bestAt < 0) { best = v; bestAt = at; }                                 \
                        sum += meta[24] ? pow(fabs(v), (float)meta[24]) : v;                                   \
                        valid++;                                                                               \
                    } else if (id >= -PD && id < D + PED && iy >= -PY && iy < H + PEY && ix >= -PX &&          \
                               ix < W + PEX) {                                                                 \
                        padded++;                                                                              \
                    }                                                                                          \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
        int divisor = includePad ? valid + padded : valid;                                                     \
        /* meta[24] > 0: LpPool of that p, (sum of |v|^p)^(1/p) over the window (padding adds nothing). */     \
        y[yOff + i] = STORE(meta[24] ? pow(sum, 1.0f / (float)meta[24])                                        \
                                     : (isMax ? best : (divisor > 0 ? sum / divisor : 0.0f)));                 \
        if (hasIndices) {                                                                                      \
            int at = bestAt < 0 ? 0 : bestAt;                                                                  \
            if (meta[23]) at = at / (W * H) + ((at / W) % H) * D + (at % W) * D * H;                           \
            indices[iOff + i] = (long)p * D * H * W + at;                                                      \
        }                                                                                                      \
    }
CK_POOL3D(pool3d, float, CK_LOAD_F32, CK_STORE_F32)
CK_POOL3D(pool3d_f16, ck_u16, CK_LOAD_F16, CK_STORE_F16)
CK_POOL3D(pool3d_bf16, ck_u16, CK_LOAD_BF16, CK_STORE_BF16)

/* One work-item per (n, c) plane: global average or max over `spatial` values, over each float storage type. */
#define CK_GLOBAL_POOL(name, T, LOAD, STORE)                                                                    \
    KERNEL void name(GLOBAL const T *x, int xOff, GLOBAL T *y, int yOff, int planes, int spatial, int isMax) { \
        int p = GID0;                                                                                          \
        if (p >= planes) return;                                                                               \
        GLOBAL const T *xp = x + xOff + p * spatial;                                                           \
        float best = -INFINITY, sum = 0.0f;                                                                    \
        for (int i = 0; i < spatial; i++) {                                                                    \
            float v = LOAD(xp[i]);                                                                             \
            best = fmax(best, v);                                                                              \
            sum += v;                                                                                          \
        }                                                                                                      \
        y[yOff + p] = STORE(isMax ? best : sum / spatial);                                                     \
    }
CK_GLOBAL_POOL(global_pool, float, CK_LOAD_F32, CK_STORE_F32)
CK_GLOBAL_POOL(global_pool_f16, ck_u16, CK_LOAD_F16, CK_STORE_F16)
CK_GLOBAL_POOL(global_pool_bf16, ck_u16, CK_LOAD_BF16, CK_STORE_BF16)

/* Inference batch normalization, one work-item per element; per-channel tensors at sOff..vOff; x, the parameters
   and y of one float storage type. */
#define CK_BATCHNORM(name, T, LOAD, STORE)                                                                      \
    KERNEL void name(GLOBAL const T *x, int xOff, GLOBAL const T *s, int sOff, GLOBAL const T *b, int bOff,      \
                     GLOBAL const T *mean, int mOff, GLOBAL const T *var, int vOff, GLOBAL T *y, int yOff,      \
                     int count, int channels, int spatial, float epsilon) {                                    \
        int i = GID0;                                                                                          \
        if (i >= count) return;                                                                                \
        int c = (i / spatial) % channels;                                                                      \
        float a = LOAD(s[sOff + c]) / sqrt(LOAD(var[vOff + c]) + epsilon);                                     \
        y[yOff + i] = STORE((LOAD(x[xOff + i]) - LOAD(mean[mOff + c])) * a + LOAD(b[bOff + c]));               \
    }
CK_BATCHNORM(batchnorm, float, CK_LOAD_F32, CK_STORE_F32)
CK_BATCHNORM(batchnorm_f16, ck_u16, CK_LOAD_F16, CK_STORE_F16)
CK_BATCHNORM(batchnorm_bf16, ck_u16, CK_LOAD_BF16, CK_STORE_BF16)

/* Softmax / LogSoftmax along an axis: one work-item per (outer, inner) line of n values `inner` apart, over each
   float storage type (float32 arithmetic; float16 and bfloat16 rounded once per output). */
#define CK_SOFTMAX(name, T, LOAD, STORE)                                                                        \
    KERNEL void name(GLOBAL const T *x, int xOff, GLOBAL T *y, int yOff, int outer, int n, int inner,            \
                     int logarithm) {                                                                          \
        int r = GID0;                                                                                          \
        if (r >= outer * inner) return;                                                                        \
        int base = (r / inner) * n * inner + r % inner;                                                        \
        GLOBAL const T *xr = x + xOff + base;                                                                  \
        GLOBAL T *yr = y + yOff + base;                                                                        \
        float m = LOAD(xr[0]);                                                                                 \
        for (int i = 1; i < n; i++) m = fmax(m, LOAD(xr[i * inner]));                                          \
        float sum = 0.0f;                                                                                      \
        for (int i = 0; i < n; i++) sum += exp(LOAD(xr[i * inner]) - m);                                       \
        for (int i = 0; i < n; i++) {                                                                          \
            float v = LOAD(xr[i * inner]);                                                                     \
            yr[i * inner] = STORE(logarithm ? v - m - log(sum) : exp(v - m) / sum);                            \
        }                                                                                                      \
    }
CK_SOFTMAX(softmax_axis, float, CK_LOAD_F32, CK_STORE_F32)
CK_SOFTMAX(softmax_axis_f16, ck_u16, CK_LOAD_F16, CK_STORE_F16)
CK_SOFTMAX(softmax_axis_bf16, ck_u16, CK_LOAD_BF16, CK_STORE_BF16)

/* The mean of n contiguous values, and the sum of their squared deviations from it in *var (two passes). */
#define CK_ROW_MOMENTS(name, T, LOAD)                                                                           \
    DEVICE float name(GLOBAL const T *xr, int n, float *var) {                                                 \
        float mean = 0.0f;                                                                                     \
        for (int i = 0; i < n; i++) mean += LOAD(xr[i]);                                                       \
        mean /= n;                                                                                             \
        float sum = 0.0f;                                                                                      \
        for (int i = 0; i < n; i++) sum += (LOAD(xr[i]) - mean) * (LOAD(xr[i]) - mean);                        \
        *var = sum;                                                                                            \
        return mean;                                                                                           \
    }
CK_ROW_MOMENTS(row_moments, float, CK_LOAD_F32)
CK_ROW_MOMENTS(row_moments_f16, ck_u16, CK_LOAD_F16)
CK_ROW_MOMENTS(row_moments_bf16, ck_u16, CK_LOAD_BF16)

/* One work-item per row: (x - mean) / sqrt(var + eps) * scale + bias over n contiguous values, over each float
   storage type (x, scale, bias and y of one type). */
#define CK_LAYERNORM(name, T, LOAD, STORE, MOMENTS)                                                             \
    KERNEL void name(GLOBAL const T *x, int xOff, GLOBAL const T *s, int sOff, GLOBAL const T *b, int bOff,      \
                     int hasBias, GLOBAL T *y, int yOff, int rows, int n, float epsilon) {                      \
        int r = GID0;                                                                                          \
        if (r >= rows) return;                                                                                 \
        GLOBAL const T *xr = x + xOff + r * n;                                                                 \
        float var, mean = MOMENTS(xr, n, &var);                                                                \
        float inv = 1.0f / sqrt(var / n + epsilon);                                                            \
        for (int i = 0; i < n; i++) {                                                                          \
            float v = (LOAD(xr[i]) - mean) * inv * LOAD(s[sOff + i]);                                          \
            y[yOff + r * n + i] = STORE(hasBias ? v + LOAD(b[bOff + i]) : v);                                  \
        }                                                                                                      \
    }
CK_LAYERNORM(layernorm_rows, float, CK_LOAD_F32, CK_STORE_F32, row_moments)
CK_LAYERNORM(layernorm_rows_f16, ck_u16, CK_LOAD_F16, CK_STORE_F16, row_moments_f16)
CK_LAYERNORM(layernorm_rows_bf16, ck_u16, CK_LOAD_BF16, CK_STORE_BF16, row_moments_bf16)

/* LayerNormalization's optional outputs: per-row mean and 1/sqrt(var + epsilon), as layernorm_rows. */
KERNEL void layernorm_stats(GLOBAL const float *x, int xOff, GLOBAL float *meanOut, int mOff, GLOBAL float *invOut,
                            int iOff, int hasInv, int rows, int n, float epsilon) {
    int r = GID0;
    if (r >= rows) return;
    GLOBAL const float *xr = x + xOff + r * n;
    float var, mean = row_moments(xr, n, &var);
    meanOut[mOff + r] = mean;
    if (hasInv) invOut[iOff + r] = 1.0f / sqrt(var / n + epsilon);
}

