// Row-wise normalization kernels.
#include "CKernels.h"
#include <string.h>

// Mean and variance accumulate in double (two passes: no cancellation from E[x²] − E[x]²); the normalized
// value is formed in double and rounded once before the scale and bias.
#define CK_LAYER_NORM_BODY                                                                                   \
    for (size_t r = 0; r < rows; r++) {                                                                      \
        const float *row = x + r * n;                                                                        \
        /* Eight running sums (lanes of one vector), combined at the end. */                                 \
        double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                          \
        size_t i = 0;                                                                                        \
        for (; i + 8 <= n; i += 8)                                                                           \
            for (size_t l = 0; l < 8; l++) lanes[l] += (double)row[i + l];                                   \
        double sum = 0.0;                                                                                    \
        for (; i < n; i++) sum += (double)row[i];                                                            \
        for (size_t l = 0; l < 8; l++) sum += lanes[l];                                                      \
        const double mean = sum / (double)n;                                                                 \
        double squareLanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                    \
        for (i = 0; i + 8 <= n; i += 8)                                                                      \
            for (size_t l = 0; l < 8; l++) {                                                                 \
                const double d = (double)row[i + l] - mean;                                                  \
                squareLanes[l] += d * d;                                                                     \
            }                                                                                                \
        double squares = 0.0;                                                                                \
        for (; i < n; i++) {                                                                                 \
            const double d = (double)row[i] - mean;                                                          \
            squares += d * d;                                                                                \
        }                                                                                                    \
        for (size_t l = 0; l < 8; l++) squares += squareLanes[l];                                            \
        const double inv = 1.0 / __builtin_sqrt(squares / (double)n + epsilon);                              \
        float *out = y + r * n;                                                                              \
        if (bias) {                                                                                          \
            for (size_t i = 0; i < n; i++) out[i] = (float)(((double)row[i] - mean) * inv) * scale[i] + bias[i]; \
        } else {                                                                                             \
            for (size_t i = 0; i < n; i++) out[i] = (float)(((double)row[i] - mean) * inv) * scale[i];       \
        }                                                                                                    \
        if (mean_out) mean_out[r] = (float)mean;                                                             \
        if (inv_out) inv_out[r] = (float)inv;                                                                \
    }

#define CK_LAYER_NORM_ARGS                                                                                   \
    (const float *x, float *y, size_t rows, size_t n, const float *scale, const float *bias, double epsilon, \
     float *mean_out, float *inv_out)

static void layer_norm_generic CK_LAYER_NORM_ARGS { CK_LAYER_NORM_BODY }
__attribute__((target("avx2,fma"))) static void layer_norm_avx2 CK_LAYER_NORM_ARGS { CK_LAYER_NORM_BODY }
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void layer_norm_avx512 CK_LAYER_NORM_ARGS {
    CK_LAYER_NORM_BODY
}

void ck_layer_norm_rows(const float *x, float *y, size_t rows, size_t n, const float *scale, const float *bias,
                        double epsilon, float *mean_out, float *inv_out) {
    if (n == 0) return;
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') layer_norm_avx512(x, y, rows, n, scale, bias, epsilon, mean_out, inv_out);
    else if (isa[0] == 'a') layer_norm_avx2(x, y, rows, n, scale, bias, epsilon, mean_out, inv_out);
    else layer_norm_generic(x, y, rows, n, scale, bias, epsilon, mean_out, inv_out);
}

// Global average (sum in double, 8 independent lanes so the adds vectorize) and max pooling of `planes`
// contiguous planes of `spatial` values each.
#define CK_GLOBAL_POOL_BODY                                                                                  \
    for (size_t p = 0; p < planes; p++) {                                                                    \
        const float *xp = x + p * spatial;                                                                   \
        if (is_max) {                                                                                        \
            float lanes[16];                                                                                 \
            for (size_t l = 0; l < 16; l++) lanes[l] = -__builtin_inff();                                    \
            size_t i = 0;                                                                                    \
            for (; i + 16 <= spatial; i += 16)                                                               \
                for (size_t l = 0; l < 16; l++) lanes[l] = xp[i + l] > lanes[l] ? xp[i + l] : lanes[l];      \
            float m = -__builtin_inff();                                                                     \
            for (; i < spatial; i++) m = xp[i] > m ? xp[i] : m;                                              \
            for (size_t l = 0; l < 16; l++) m = lanes[l] > m ? lanes[l] : m;                                 \
            y[p] = m;                                                                                        \
        } else {                                                                                             \
            double lanes[8] = {0};                                                                           \
            size_t i = 0;                                                                                    \
            for (; i + 8 <= spatial; i += 8)                                                                 \
                for (size_t l = 0; l < 8; l++) lanes[l] += (double)xp[i + l];                                \
            double sum = 0;                                                                                  \
            for (; i < spatial; i++) sum += (double)xp[i];                                                   \
            for (size_t l = 0; l < 8; l++) sum += lanes[l];                                                  \
            y[p] = (float)(sum / (double)spatial);                                                           \
        }                                                                                                    \
    }
#define CK_GLOBAL_POOL_ARGS (const float *x, size_t planes, size_t spatial, int is_max, float *y)
static void global_pool_generic CK_GLOBAL_POOL_ARGS { CK_GLOBAL_POOL_BODY }
__attribute__((target("avx2,fma"))) static void global_pool_avx2 CK_GLOBAL_POOL_ARGS { CK_GLOBAL_POOL_BODY }
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void global_pool_avx512 CK_GLOBAL_POOL_ARGS {
    CK_GLOBAL_POOL_BODY
}

// Global average pooling of one image stored channels last ([positions][channels]), channels [c_begin, c_end): for
// each channel the planes form's arithmetic in the planes form's order (8 double lanes over positions i + l, the
// tail in turn, then the lanes), so both layouts give the same bits; eight channels at a time across the vector.
#define CK_GLOBAL_AVERAGE_NHWC_BODY                                                                          \
    size_t c0 = c_begin;                                                                                     \
    for (; c0 + 8 <= c_end; c0 += 8) {                                                                       \
        double lanes[8][8] = {{0}}, sum[8] = {0};                                                            \
        size_t i = 0;                                                                                        \
        for (; i + 8 <= positions; i += 8)                                                                   \
            for (size_t l = 0; l < 8; l++)                                                                   \
                for (size_t j = 0; j < 8; j++) lanes[l][j] += (double)x[(i + l) * channels + c0 + j];        \
        for (; i < positions; i++)                                                                           \
            for (size_t j = 0; j < 8; j++) sum[j] += (double)x[i * channels + c0 + j];                       \
        for (size_t l = 0; l < 8; l++)                                                                       \
            for (size_t j = 0; j < 8; j++) sum[j] += lanes[l][j];                                            \
        for (size_t j = 0; j < 8; j++) y[c0 + j] = (float)(sum[j] / (double)positions);                      \
    }                                                                                                        \
    for (; c0 < c_end; c0++) {                                                                               \
        double lanes[8] = {0}, sum = 0;                                                                      \
        size_t i = 0;                                                                                        \
        for (; i + 8 <= positions; i += 8)                                                                   \
            for (size_t l = 0; l < 8; l++) lanes[l] += (double)x[(i + l) * channels + c0];                   \
        for (; i < positions; i++) sum += (double)x[i * channels + c0];                                      \
        for (size_t l = 0; l < 8; l++) sum += lanes[l];                                                      \
        y[c0] = (float)(sum / (double)positions);                                                            \
    }
#define CK_GLOBAL_AVERAGE_NHWC_ARGS                                                                          \
    (const float *x, size_t positions, size_t channels, size_t c_begin, size_t c_end, float *y)
static void global_average_nhwc_generic CK_GLOBAL_AVERAGE_NHWC_ARGS { CK_GLOBAL_AVERAGE_NHWC_BODY }
__attribute__((target("avx2,fma"))) static void global_average_nhwc_avx2 CK_GLOBAL_AVERAGE_NHWC_ARGS {
    CK_GLOBAL_AVERAGE_NHWC_BODY
}
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void global_average_nhwc_avx512 CK_GLOBAL_AVERAGE_NHWC_ARGS {
    CK_GLOBAL_AVERAGE_NHWC_BODY
}

void ck_global_average_nhwc(const float *x, size_t positions, size_t channels, size_t c_begin, size_t c_end, float *y) {
    if (c_end > channels) c_end = channels;
    if (positions == 0 || c_begin >= c_end) return;
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') global_average_nhwc_avx512(x, positions, channels, c_begin, c_end, y);
    else if (isa[0] == 'a') global_average_nhwc_avx2(x, positions, channels, c_begin, c_end, y);
    else global_average_nhwc_generic(x, positions, channels, c_begin, c_end, y);
}

// y[p][c] = x[p][c] · s[c] for positions [p_begin, p_end) of an image stored channels last: a Mul by a [1, C, 1, 1]
// gate (squeeze-and-excitation), the same products as over planes.
#define CK_SCALE_NHWC_BODY                                                                                   \
    for (size_t p = p_begin; p < p_end; p++) {                                                               \
        const float *xp = x + p * channels;                                                                  \
        float *yp = y + p * channels;                                                                        \
        for (size_t c = 0; c < channels; c++) yp[c] = xp[c] * s[c];                                          \
    }
#define CK_SCALE_NHWC_ARGS (const float *x, const float *s, float *y, size_t channels, size_t p_begin, size_t p_end)
static void scale_nhwc_generic CK_SCALE_NHWC_ARGS { CK_SCALE_NHWC_BODY }
__attribute__((target("avx2,fma"))) static void scale_nhwc_avx2 CK_SCALE_NHWC_ARGS { CK_SCALE_NHWC_BODY }
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void scale_nhwc_avx512 CK_SCALE_NHWC_ARGS {
    CK_SCALE_NHWC_BODY
}

void ck_scale_channels_last(const float *x, const float *s, float *y, size_t channels, size_t p_begin, size_t p_end) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') scale_nhwc_avx512(x, s, y, channels, p_begin, p_end);
    else if (isa[0] == 'a') scale_nhwc_avx2(x, s, y, channels, p_begin, p_end);
    else scale_nhwc_generic(x, s, y, channels, p_begin, p_end);
}

void ck_global_pool(const float *x, size_t planes, size_t spatial, int is_max, float *y) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') global_pool_avx512(x, planes, spatial, is_max, y);
    else if (isa[0] == 'a') global_pool_avx2(x, planes, spatial, is_max, y);
    else global_pool_generic(x, planes, spatial, is_max, y);
}

// Reductions of x viewed as [outer][n][inner] over the middle axis (the axes a ReduceSum/Mean/Max/Min/SumSquare
// reduces, when they are adjacent): y[o][i] = scale · Σ (or the max, min, Σ squares) of x[o][k][i] over k. Sums
// accumulate in double (8 independent lanes for inner == 1, one per column otherwise, in `scratch`), max and min
// propagate NaN like the reference.
// m stays when it is NaN; else v when v is NaN or beyond m. Bitwise & and | (no short circuit) so v is read
// whatever m holds: a conditional read became a masked load (slow on AMD cores).
#define CK_REDUCE_PICK(m, v) \
    (((((v) != (v)) | (mode == 1 ? (v) > (m) : (v) < (m))) & ((m) == (m))) ? (v) : (m))
#define CK_REDUCE_AXIS_BODY                                                                                  \
    const int squares = mode == 3, extreme = mode == 1 || mode == 2;                                         \
    for (size_t o = 0; o < outer; o++) {                                                                     \
        const float *xo = x + o * n * inner;                                                                 \
        float *yo = y + o * inner;                                                                           \
        if (inner == 1) {                                                                                    \
            if (extreme) {                                                                                   \
                float m = n > 0 ? xo[0] : (mode == 1 ? -__builtin_inff() : __builtin_inff());                \
                for (size_t k = 1; k < n; k++) m = CK_REDUCE_PICK(m, xo[k]);                                 \
                yo[0] = m;                                                                                   \
                continue;                                                                                    \
            }                                                                                                \
            double lanes[8] = {0};                                                                           \
            size_t k = 0;                                                                                    \
            for (; k + 8 <= n; k += 8)                                                                       \
                for (size_t l = 0; l < 8; l++) {                                                             \
                    const double v = (double)xo[k + l];                                                      \
                    lanes[l] += squares ? v * v : v;                                                         \
                }                                                                                            \
            double sum = 0;                                                                                  \
            for (; k < n; k++) sum += squares ? (double)xo[k] * (double)xo[k] : (double)xo[k];               \
            for (size_t l = 0; l < 8; l++) sum += lanes[l];                                                  \
            yo[0] = (float)(sum * scale);                                                                    \
            continue;                                                                                        \
        }                                                                                                    \
        if (extreme) {                                                                                       \
            /* The condition outside the loop: inside, it became masked loads (slow on AMD cores). */      \
            if (n > 0) memcpy(yo, xo, inner * sizeof(float));                                               \
            else for (size_t i = 0; i < inner; i++) yo[i] = mode == 1 ? -__builtin_inff() : __builtin_inff(); \
            for (size_t k = 1; k < n; k++)                                                                   \
                for (size_t i = 0; i < inner; i++) {                                                         \
                    /* Both loaded before the pick, which would otherwise load v under a mask. */             \
                    const float m = yo[i], v = xo[k * inner + i];                                            \
                    yo[i] = CK_REDUCE_PICK(m, v);                                                            \
                }                                                                                            \
            continue;                                                                                        \
        }                                                                                                    \
        for (size_t i = 0; i < inner; i++) scratch[i] = 0;                                                   \
        for (size_t k = 0; k < n; k++)                                                                       \
            for (size_t i = 0; i < inner; i++) {                                                             \
                const double v = (double)xo[k * inner + i];                                                  \
                scratch[i] += squares ? v * v : v;                                                           \
            }                                                                                                \
        for (size_t i = 0; i < inner; i++) yo[i] = (float)(scratch[i] * scale);                              \
    }
#define CK_REDUCE_AXIS_ARGS                                                                                  \
    (const float *x, size_t outer, size_t n, size_t inner, int mode, double scale, double *scratch, float *y)
static void reduce_axis_generic CK_REDUCE_AXIS_ARGS { CK_REDUCE_AXIS_BODY }
__attribute__((target("avx2,fma"))) static void reduce_axis_avx2 CK_REDUCE_AXIS_ARGS { CK_REDUCE_AXIS_BODY }
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void reduce_axis_avx512 CK_REDUCE_AXIS_ARGS {
    CK_REDUCE_AXIS_BODY
}

void ck_reduce_axis(const float *x, size_t outer, size_t n, size_t inner, int mode, double scale, double *scratch,
                    float *y) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') reduce_axis_avx512(x, outer, n, inner, mode, scale, scratch, y);
    else if (isa[0] == 'a') reduce_axis_avx2(x, outer, n, inner, mode, scale, scratch, y);
    else reduce_axis_generic(x, outer, n, inner, mode, scale, scratch, y);
}
