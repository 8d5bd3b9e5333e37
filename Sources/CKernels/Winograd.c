// Winograd F(2x2, 3x3) convolution transforms (Lavin & Gray, 2015): a 3x3, stride-1 convolution computed as 16
// independent GEMMs over 4x4 input tiles that overlap by 2, with 16 multiplies per 2x2 outputs instead of 36.
//
//   U = G g Gᵀ (per filter and channel, at plan time),  V = Bᵀ d B (per tile and channel),
//   M_ξ = V_ξ · U_ξ (one GEMM per ξ of the 4x4 transform domain),  Y = Aᵀ M A (per tile and filter).
//
//   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]   Aᵀ = [1 1 1 0; 0 1 -1 -1]
//
// Layouts: U is [16][C][M] (B operands, packed by the caller), V is [16][tiles][C] and M is [16][tiles][M]
// (row-major A operands and results of the GEMMs), so every GEMM has the tiles as rows and the filters as
// columns. The transforms are compiled per ISA so their loops vectorize at the GEMM's width.
#include "CKernels.h"
#include <string.h>

// Swift's max(x, y) for floats (y >= x ? y : x), so fused pooling picks the same value, NaN included, as the
// MaxPool kernel does.
#define CK_SWIFT_MAX(x, y) ((y) >= (x) ? (y) : (x))

// mask ? a : b, lane by lane, for GCC/Clang vectors (comparison masks: all-ones or zero lanes), and for scalars.
#define CK_SELECT_VECTOR(mask, a, b)                                                                         \
    ((__typeof__(a))((((__typeof__(mask))(a)) & (mask)) | (((__typeof__(mask))(b)) & ~(mask))))
#define CK_SELECT_SCALAR(mask, a, b) ((mask) ? (a) : (b))

void ck_winograd_filter_2x2_3x3(const float *w, size_t filters, size_t channels, float *u) {
    for (size_t m = 0; m < filters; m++) {
        for (size_t c = 0; c < channels; c++) {
            const float *g = w + (m * channels + c) * 9;
            float t[4][3];  // G g
            for (int j = 0; j < 3; j++) {
                t[0][j] = g[j];
                t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
                t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
                t[3][j] = g[6 + j];
            }
            for (int i = 0; i < 4; i++) {
                const float r[4] = {t[i][0], 0.5f * (t[i][0] + t[i][1] + t[i][2]), 0.5f * (t[i][0] - t[i][1] + t[i][2]),
                                    t[i][2]};
                for (int j = 0; j < 4; j++) u[((size_t)(i * 4 + j) * channels + c) * filters + m] = r[j];
            }
        }
    }
}

void ck_winograd_channels_last(const float *x, size_t channels, size_t height, size_t width, size_t p_begin,
                               size_t p_end, float *hwc) {
    // Blocks of 16 pixels: each channel's 16 contiguous reads land in 16 output rows that stay in L1.
    const size_t plane = height * width;
    for (size_t p0 = p_begin; p0 < p_end; p0 += 16) {
        const size_t p1 = p_end - p0 < 16 ? p_end : p0 + 16;
        for (size_t c = 0; c < channels; c++) {
            const float *xc = x + c * plane;
            for (size_t p = p0; p < p1; p++) hwc[p * channels + c] = xc[p];
        }
    }
}

// One tile's Bᵀ d B for channels [c0, c0 + lanes of VF), from the channels-last image (zero outside it).
#define CK_WINOGRAD_INPUT_TILE(VF)                                                                           \
    {                                                                                                        \
        VF d[4][4];                                                                                          \
        for (int i = 0; i < 4; i++) {                                                                        \
            for (int j = 0; j < 4; j++) {                                                                    \
                const long yy = y0 + i, xx = x0 + j;                                                         \
                if (inside || (yy >= 0 && xx >= 0 && yy < (long)height && xx < (long)width))                 \
                    memcpy(&d[i][j], hwc + ((size_t)yy * width + (size_t)xx) * channels + c0, sizeof(VF));   \
                else                                                                                         \
                    d[i][j] = (VF){0};                                                                       \
            }                                                                                                \
        }                                                                                                    \
        VF b[4][4];                                                                                          \
        for (int j = 0; j < 4; j++) {                                                                        \
            b[0][j] = d[0][j] - d[2][j];                                                                     \
            b[1][j] = d[1][j] + d[2][j];                                                                     \
            b[2][j] = d[2][j] - d[1][j];                                                                     \
            b[3][j] = d[1][j] - d[3][j];                                                                     \
        }                                                                                                    \
        for (int i = 0; i < 4; i++) {                                                                        \
            const VF r[4] = {b[i][0] - b[i][2], b[i][1] + b[i][2], b[i][2] - b[i][1], b[i][1] - b[i][3]};    \
            for (int j = 0; j < 4; j++) memcpy(vt + (size_t)(i * 4 + j) * stride + c0, &r[j], sizeof(VF));   \
        }                                                                                                    \
    }

// Tiles are transformed from a channels-last copy of the image, so each tile's 16 loads and stores are vectors
// across channels (a scalar pass covers channels past the last whole vector).
#define CK_WINOGRAD_INPUT_BODY(VF, VL)                                                                       \
    for (size_t t = tile_begin; t < tile_end; t++) {                                                         \
        const long ty = (long)(t / tiles_x), tx = (long)(t % tiles_x);                                       \
        const long y0 = 2 * ty - pad_top, x0 = 2 * tx - pad_left;                                            \
        const int inside = y0 >= 0 && x0 >= 0 && y0 + 4 <= (long)height && x0 + 4 <= (long)width;           \
        float *vt = v + (t - tile_begin) * channels;                                                         \
        size_t c0 = 0;                                                                                       \
        for (; c0 + VL <= channels; c0 += VL) CK_WINOGRAD_INPUT_TILE(VF)                                     \
        for (; c0 < channels; c0++) CK_WINOGRAD_INPUT_TILE(float)                                            \
    }

#define CK_WINOGRAD_INPUT_ARGS                                                                               \
    (const float *hwc, size_t channels, size_t height, size_t width, long pad_top, long pad_left, size_t tiles_x, \
     size_t tile_begin, size_t tile_end, float *v, size_t stride)

typedef float ck_w4 __attribute__((vector_size(16)));
typedef float ck_w8 __attribute__((vector_size(32)));
typedef float ck_w16 __attribute__((vector_size(64)));

static void winograd_input_generic CK_WINOGRAD_INPUT_ARGS { CK_WINOGRAD_INPUT_BODY(ck_w4, 4) }
__attribute__((target("avx2,fma"))) static void winograd_input_avx2 CK_WINOGRAD_INPUT_ARGS {
    CK_WINOGRAD_INPUT_BODY(ck_w8, 8)
}
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void winograd_input_avx512 CK_WINOGRAD_INPUT_ARGS {
    CK_WINOGRAD_INPUT_BODY(ck_w16, 16)
}

void ck_winograd_input_2x2_3x3(const float *hwc, size_t channels, size_t height, size_t width, long pad_top,
                               long pad_left, size_t tiles_x, size_t tile_begin, size_t tile_end, float *v,
                               size_t stride) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5')
        winograd_input_avx512(hwc, channels, height, width, pad_top, pad_left, tiles_x, tile_begin, tile_end, v, stride);
    else if (isa[0] == 'a')
        winograd_input_avx2(hwc, channels, height, width, pad_top, pad_left, tiles_x, tile_begin, tile_end, v, stride);
    else
        winograd_input_generic(hwc, channels, height, width, pad_top, pad_left, tiles_x, tile_begin, tile_end, v,
                               stride);
}

// One tile's Aᵀ M A for filters [f0, f0 + lanes of VF), with bias and Relu, into r[0..3] (the 2x2 outputs).
#define CK_WINOGRAD_OUTPUT_TILE(VF, CK_SELECT)                                                                       \
    VF r[4];                                                                                                 \
    {                                                                                                        \
        VF s0[4], s1[4];                                                                                     \
        for (int j = 0; j < 4; j++) {                                                                        \
            VF m[4];                                                                                         \
            for (int i = 0; i < 4; i++) memcpy(&m[i], mt + (size_t)(i * 4 + j) * stride, sizeof(VF));        \
            s0[j] = m[0] + m[1] + m[2];                                                                      \
            s1[j] = m[1] - m[2] - m[3];                                                                      \
        }                                                                                                    \
        VF b;                                                                                                \
        if (bias) memcpy(&b, bias + f0, sizeof(VF));                                                         \
        else b = (VF){0};                                                                                    \
        r[0] = (s0[0] + s0[1] + s0[2]) + b;                                                                  \
        r[1] = (s0[1] - s0[2] - s0[3]) + b;                                                                  \
        r[2] = (s1[0] + s1[1] + s1[2]) + b;                                                                  \
        r[3] = (s1[1] - s1[2] - s1[3]) + b;                                                                  \
        if (relu) {                                                                                          \
            for (int i = 0; i < 4; i++) {                                                                    \
                /* Keep lanes that are positive or NaN (all-ones masks), zero the rest. */                   \
                const __typeof__(r[i] > 0.0f) keep = (r[i] > 0.0f) | (r[i] != r[i]);                         \
                r[i] = CK_SELECT(keep, r[i], (VF){0});                                                       \
            }                                                                                                \
        }                                                                                                    \
    }

// Filters in vectors of the ISA's width (a scalar pass for the rest), tiles inside: the transform of one tile
// runs across the vector's filters, then its 2x2 results (or, with `pool`, their maximum) go to the filters'
// output planes.
#define CK_WINOGRAD_OUTPUT_FILTERS(VF, VL, CK_SELECT)                                                                \
    for (; f0 + VL <= filter_end; f0 += VL) {                                                                \
        for (size_t t = tile_begin; t < tile_end; t++) {                                                     \
            const size_t ty = t / tiles_x, tx = t % tiles_x;                                                 \
            const size_t oy = 2 * ty, ox = 2 * tx;                                                           \
            const float *mt = mm + (t - tile_begin) * filters + f0;                                          \
            const size_t rows = oy + 2 <= out_height ? 2 : 1, cols = ox + 2 <= out_width ? 2 : 1;            \
            if (pool && (rows < 2 || cols < 2)) continue; /* outside the pooled output (floor mode) */      \
            CK_WINOGRAD_OUTPUT_TILE(VF, CK_SELECT)                                                           \
            float lanes[4][VL];                                                                              \
            if (pool) {                                                                                      \
                /* The tile is the window of a 2x2, stride-2 max pool: max(max(a, b), max(c, d)) with       \
                   Swift's max (y >= x ? y : x), as the MaxPool kernel computes it. */                      \
                const VF top = CK_SELECT(r[1] >= r[0], r[1], r[0]), bottom = CK_SELECT(r[3] >= r[2], r[3], r[2]); \
                const VF best = CK_SELECT(bottom >= top, bottom, top);                                       \
                memcpy(lanes[0], &best, sizeof(VF));                                                         \
                const size_t pw = out_width / 2, ph = out_height / 2;                                        \
                for (size_t k = 0; k < VL; k++) y[(f0 + k) * ph * pw + ty * pw + tx] = lanes[0][k];          \
                continue;                                                                                    \
            }                                                                                                \
            for (int i = 0; i < 4; i++) memcpy(lanes[i], &r[i], sizeof(VF));                                 \
            for (size_t k = 0; k < VL; k++) {                                                                \
                float *yf = y + (f0 + k) * out_height * out_width + oy * out_width + ox;                     \
                for (size_t i = 0; i < rows; i++) {                                                          \
                    for (size_t j = 0; j < cols; j++) yf[i * out_width + j] = lanes[i * 2 + j][k];           \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }

#define CK_WINOGRAD_OUTPUT_BODY(VF, VL)                                                                      \
    size_t f0 = filter_begin;                                                                                \
    CK_WINOGRAD_OUTPUT_FILTERS(VF, VL, CK_SELECT_VECTOR)                                                     \
    CK_WINOGRAD_OUTPUT_FILTERS(float, 1, CK_SELECT_SCALAR)

#define CK_WINOGRAD_OUTPUT_ARGS                                                                              \
    (const float *mm, size_t stride, size_t filters, size_t filter_begin, size_t filter_end, size_t tiles_x,   \
     size_t tile_begin, size_t tile_end, const float *bias, int relu, int pool, float *y, size_t out_height,   \
     size_t out_width)

static void winograd_output_generic CK_WINOGRAD_OUTPUT_ARGS { CK_WINOGRAD_OUTPUT_BODY(ck_w4, 4) }
__attribute__((target("avx2,fma"))) static void winograd_output_avx2 CK_WINOGRAD_OUTPUT_ARGS {
    CK_WINOGRAD_OUTPUT_BODY(ck_w8, 8)
}
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void winograd_output_avx512 CK_WINOGRAD_OUTPUT_ARGS {
    CK_WINOGRAD_OUTPUT_BODY(ck_w16, 16)
}

void ck_winograd_output_2x2_3x3(const float *mm, size_t stride, size_t filters, size_t filter_begin,
                                size_t filter_end, size_t tiles_x, size_t tile_begin, size_t tile_end,
                                const float *bias, int relu, int pool, float *y, size_t out_height,
                                size_t out_width) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5')
        winograd_output_avx512(mm, stride, filters, filter_begin, filter_end, tiles_x, tile_begin, tile_end, bias, relu,
                               pool, y, out_height, out_width);
    else if (isa[0] == 'a')
        winograd_output_avx2(mm, stride, filters, filter_begin, filter_end, tiles_x, tile_begin, tile_end, bias, relu,
                             pool, y, out_height, out_width);
    else
        winograd_output_generic(mm, stride, filters, filter_begin, filter_end, tiles_x, tile_begin, tile_end, bias,
                                relu, pool, y, out_height, out_width);
}
