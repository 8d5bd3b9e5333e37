// Direct convolution for few input channels (stride 1, no dilation, one group), where im2col's GEMM would have a
// K of only C·KH·KW. The image is first copied into a zero-padded buffer, so every tap (c, ky, kx) of a filter is
// one shifted read of it; each output row accumulates in vector registers over all taps, four filters at a
// time, and is stored with bias and Relu applied.
#include "CKernels.h"
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Positions per row segment at the widest ISA (4 vectors of 16); the padded buffer's slack covers a segment's
// reads past the end of the last row.
#define CK_DIRECT_CHUNK 64

size_t ck_conv2d_direct_padded_floats(size_t channels, size_t padded_height, size_t padded_width, size_t kw) {
    return channels * padded_height * padded_width + kw + CK_DIRECT_CHUNK;
}

// The pads write the image's positions only: the caller zeroes the buffer once, and every copy of the same
// geometry writes the same positions (a memset of the whole buffer per run was 1.3% of MobileNetV2, a serial 3% at
// two threads).
void ck_conv2d_direct_pad(const float *x, size_t channels, size_t height, size_t width, size_t pad_top,
                          size_t pad_left, size_t padded_height, size_t padded_width, size_t kw, float *padded) {
    (void)kw;
    for (size_t c = 0; c < channels; c++) {
        for (size_t i = 0; i < height; i++) {
            memcpy(padded + (c * padded_height + pad_top + i) * padded_width + pad_left, x + (c * height + i) * width,
                   width * sizeof(float));
        }
    }
}

// A vector of one value. `(VF){0} + x` would be an add of 0 (kept without fast math: -0 + 0 is +0) before the
// broadcast, and in the AVX2 tile it pushed an accumulator out of registers (a store and reload per tap).
#define CK_SPLAT(VF, x) ((VF)__builtin_shufflevector((VF){(x)}, (VF){(x)}, CK_ZERO_INDEX_##VF))
#define CK_ZERO_INDEX_ck_v4 0, 0, 0, 0
#define CK_ZERO_INDEX_ck_v8 0, 0, 0, 0, 0, 0, 0, 0
#define CK_ZERO_INDEX_ck_v16 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0

// Per output row: segments of up to 4 vectors of the ISA's width (VF, VL floats), for FB filters at once (the
// input loads are shared), kept in registers across all taps (one flat loop over precomputed offsets). The
// last vector of a row is stored through a temporary when the row ends inside it.
#define CK_CONV_DIRECT_SEGMENT(VF, VL, FB, NV, STORE_PARTIAL)                                                \
    {                                                                                                        \
        VF acc[FB][NV];                                                                                      \
        for (int q = 0; q < FB; q++) {                                                                       \
            const float b = bias ? bias[f + q] : 0.0f;                                                       \
            for (int v = 0; v < NV; v++) acc[q][v] = CK_SPLAT(VF, b);                                            \
        }                                                                                                    \
        const float *base = padded + oy * sh * padded_width + x0;                                            \
        for (size_t t = 0; t < taps; t++) {                                                                  \
            VF src[NV];                                                                                      \
            memcpy(src, base + offsets[t], sizeof src);                                                      \
            for (int q = 0; q < FB; q++) {                                                                   \
                const VF wv = CK_SPLAT(VF, w[(f + q) * taps + t]);                                               \
                for (int v = 0; v < NV; v++) acc[q][v] += wv * src[v];                                       \
            }                                                                                                \
        }                                                                                                    \
        for (int q = 0; q < FB; q++) {                                                                       \
            float *yrow = y + ((f + q) * out_height + oy) * out_width + x0;                                  \
            for (int v = 0; v < NV; v++) {                                                                   \
                VF r = acc[q][v];                                                                            \
                if (clip) {                                                                                  \
                    /* Lanes below low take low, above high take high; NaN lanes compare false and stay. */  \
                    const VF lo = CK_SPLAT(VF, low), hi = CK_SPLAT(VF, high);                                        \
                    const __typeof__(r > 0.0f) below = r < lo, above = r > hi;                               \
                    r = (VF)(((__typeof__(below))r & ~below) | ((__typeof__(below))lo & below));            \
                    r = (VF)(((__typeof__(above))r & ~above) | ((__typeof__(above))hi & above));            \
                }                                                                                            \
                const size_t start = (size_t)v * VL;                                                         \
                if (start + VL <= width_left) {                                                              \
                    memcpy(yrow + start, &r, sizeof r);                                                      \
                } else {                                                                                     \
                    STORE_PARTIAL(yrow + start, r, width_left - start);                                      \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }

#define CK_CONV_DIRECT_FILTERS(VF, VL, FB, STORE_PARTIAL)                                                                 \
    for (; f + FB <= filter_end; f += FB) {                                                                  \
        for (size_t oy = row_begin; oy < row_end; oy++) {                                                    \
            for (size_t x0 = 0; x0 < out_width; x0 += 4 * VL) {                                              \
                const size_t width_left = out_width - x0;                                                    \
                const size_t vectors = (width_left + VL - 1) / VL;                                           \
                if (vectors >= 4) CK_CONV_DIRECT_SEGMENT(VF, VL, FB, 4, STORE_PARTIAL)                                      \
                else if (vectors == 3) CK_CONV_DIRECT_SEGMENT(VF, VL, FB, 3, STORE_PARTIAL)                                 \
                else if (vectors == 2) CK_CONV_DIRECT_SEGMENT(VF, VL, FB, 2, STORE_PARTIAL)                                 \
                else CK_CONV_DIRECT_SEGMENT(VF, VL, FB, 1, STORE_PARTIAL)                                                   \
            }                                                                                                \
        }                                                                                                    \
    }

/* AVX2 has 16 vector registers: 6 filters x 2 vectors (12 accumulators, 2 inputs, 1 weight) fit, where the
   4 x 4 tile of the 32-register ISA would spill. */
#define CK_CONV_DIRECT_FILTERS_2(VF, VL, FB, STORE_PARTIAL)                                                  \
    for (; f + FB <= filter_end; f += FB) {                                                                  \
        for (size_t oy = row_begin; oy < row_end; oy++) {                                                    \
            for (size_t x0 = 0; x0 < out_width; x0 += 2 * VL) {                                              \
                const size_t width_left = out_width - x0;                                                    \
                if (width_left > VL) CK_CONV_DIRECT_SEGMENT(VF, VL, FB, 2, STORE_PARTIAL)                   \
                else CK_CONV_DIRECT_SEGMENT(VF, VL, FB, 1, STORE_PARTIAL)                                    \
            }                                                                                                \
        }                                                                                                    \
    }

#define CK_CONV_DIRECT_BODY(VF, VL, STORE_PARTIAL)                                                                        \
    const size_t plane = padded_height * padded_width;                                                       \
    const size_t taps = channels * kh * kw;                                                                  \
    /* Stride 2: each padded row holds its even columns, then its odd ones (tap kx reads half kx & 1 at       \
       column ox + kx / 2, so every load stays contiguous). */                                               \
    const size_t half = (padded_width + 1) / 2;                                                              \
    size_t offsets[taps];                                                                                    \
    for (size_t c = 0, t = 0; c < channels; c++) {                                                           \
        for (size_t ky = 0; ky < kh; ky++) {                                                                 \
            for (size_t kx = 0; kx < kw; kx++, t++)                                                          \
                offsets[t] = c * plane + ky * padded_width + (sw == 2 ? ((kx & 1) ? half : 0) + kx / 2 : kx);  \
        }                                                                                                    \
    }                                                                                                        \
    size_t f = filter_begin;                                                                                 \
    if (VL == 8) {                                                                                           \
        CK_CONV_DIRECT_FILTERS_2(VF, VL, 6, STORE_PARTIAL)                                                   \
    }                                                                                                        \
    CK_CONV_DIRECT_FILTERS(VF, VL, 4, STORE_PARTIAL)                                                         \
    CK_CONV_DIRECT_FILTERS(VF, VL, 1, STORE_PARTIAL)

typedef float ck_v4 __attribute__((vector_size(16)));
typedef float ck_v8 __attribute__((vector_size(32)));
typedef float ck_v16 __attribute__((vector_size(64)));

#define CK_CONV_DIRECT_ARGS                                                                                  \
    (const float *padded, size_t channels, size_t padded_height, size_t padded_width, const float *w, size_t kh, \
     size_t kw, size_t sh, size_t sw, const float *bias, int clip, float low, float high, size_t filter_begin,      \
     size_t filter_end, size_t row_begin, size_t row_end, float *y, size_t out_height, size_t out_width)

// The first n (< vector width) lanes of a vector, stored: AVX-512 and AVX2 with masked stores, else by lane.
#define CK_STORE_PARTIAL_SCALAR(p, r, n)                                                                      \
    do {                                                                                                     \
        float tmp_[sizeof(r) / sizeof(float)];                                                               \
        memcpy(tmp_, &(r), sizeof(r));                                                                       \
        for (size_t j_ = 0; j_ < (n); j_++) (p)[j_] = tmp_[j_];                                              \
    } while (0)
#define CK_STORE_PARTIAL_AVX512(p, r, n) _mm512_mask_storeu_ps((p), (__mmask16)((1u << (n)) - 1), (__m512)(r))
// vmaskmovps stores are microcoded on AMD cores: the AVX2 paths store partial vectors lane by lane.
#define CK_STORE_PARTIAL_AVX2(p, r, n) CK_STORE_PARTIAL_SCALAR(p, r, n)

static void conv_direct_generic CK_CONV_DIRECT_ARGS { CK_CONV_DIRECT_BODY(ck_v4, 4, CK_STORE_PARTIAL_SCALAR) }
__attribute__((target("avx2,fma"))) static void conv_direct_avx2 CK_CONV_DIRECT_ARGS {
    CK_CONV_DIRECT_BODY(ck_v8, 8, CK_STORE_PARTIAL_AVX2)
}
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void conv_direct_avx512 CK_CONV_DIRECT_ARGS {
    CK_CONV_DIRECT_BODY(ck_v16, 16, CK_STORE_PARTIAL_AVX512)
}

void ck_conv2d_direct(const float *padded, size_t channels, size_t padded_height, size_t padded_width,
                      const float *w, size_t kh, size_t kw, size_t sh, size_t sw, const float *bias, float low,
                      float high, size_t filter_begin, size_t filter_end, size_t row_begin, size_t row_end,
                      float *y, size_t out_height, size_t out_width) {
    if (row_end > out_height) row_end = out_height;
    const int clip = low > -__builtin_inff() || high < __builtin_inff();
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5')
        conv_direct_avx512(padded, channels, padded_height, padded_width, w, kh, kw, sh, sw, bias, clip, low, high, filter_begin,
                           filter_end, row_begin, row_end, y, out_height, out_width);
    else if (isa[0] == 'a')
        conv_direct_avx2(padded, channels, padded_height, padded_width, w, kh, kw, sh, sw, bias, clip, low, high, filter_begin,
                         filter_end, row_begin, row_end, y, out_height, out_width);
    else
        conv_direct_generic(padded, channels, padded_height, padded_width, w, kh, kw, sh, sw, bias, clip, low, high,
                            filter_begin, filter_end, row_begin, row_end, y, out_height, out_width);
}

void ck_conv2d_direct_pad_stride2(const float *x, size_t channels, size_t height, size_t width, size_t pad_top,
                                  size_t pad_left, size_t padded_height, size_t padded_width, size_t kw,
                                  float *padded) {
    (void)kw;
    const size_t half = (padded_width + 1) / 2;
    // Padded column 2j + p (parity p) holds image column 2j + p - pad_left: per parity a stride-2 gather of the
    // row, which vectorizes (the per-element parity test it replaces cost as much as the convolution of a
    // 3-channel stem).
    for (size_t c = 0; c < channels; c++) {
        for (size_t py = 0; py < padded_height; py++) {
            if (py < pad_top || py - pad_top >= height) continue;
            const float *src = x + (c * height + (py - pad_top)) * width;
            float *dst = padded + (c * padded_height + py) * padded_width;
            for (size_t p = 0; p < 2; p++) {
                float *d = dst + (p ? half : 0);
                // j from the first with 2j + p >= pad_left to the last with 2j + p - pad_left < min(width, padded
                // width - pad_left) (columns past the padded width are never read).
                const size_t limit = width + pad_left < padded_width ? width + pad_left : padded_width;
                const size_t j0 = pad_left > p ? (pad_left - p + 1) / 2 : 0;
                const size_t j1 = limit > p ? (limit - p + 1) / 2 : 0;
                for (size_t j = j0; j < j1; j++) d[j] = src[2 * j + p - pad_left];
            }
        }
    }
}

// Depthwise 2-D convolution (one filter per channel, group = channels): channels [c_begin, c_end) of one image
// x [C][H][W] with w [C][KH][KW] into y [C][OH][OW], plus bias (may be NULL), clamped to [lo, hi] (Relu, Relu6, Clip).
// 3x3, 5x5 and 7x7 kernels with stride 1 or 2 and no dilation (MobileNet, EfficientNet, ConvNeXt) run with channels in
// vector lanes (DepthwiseBlocked.c) wherever AVX2 is present; without it they copy each channel into a zero-padded
// plane and compute every output over its K·K taps. Other shapes accumulate one tap at a time over the columns whose
// input lies inside the image.
// One output row of a 3x3/5x5 depthwise window, stride 1 or 2, from padded rows (stride 2: even and odd column
// halves, so tap kj reads element ow + kj/2 of one half and every load is contiguous).
static void dw_row_generic(const float *const *rows_e, const float *const *rows_o, const float *wc, size_t k, size_t s,
                           float b, float *y, size_t out_w, float lo, float hi) {
    for (size_t ow = 0; ow < out_w; ow++) {
        float acc = b;
        for (size_t ki = 0; ki < k; ki++)
            for (size_t kj = 0; kj < k; kj++) {
                const float *src = s == 1 ? rows_e[ki] + ow + kj : ((kj & 1) ? rows_o[ki] : rows_e[ki]) + ow + kj / 2;
                acc += wc[ki * k + kj] * *src;
            }
        acc = acc < lo ? lo : acc;
        y[ow] = acc > hi ? hi : acc;
    }
}

// Splits a padded row into its even columns (pr[0, wpe)) and odd columns (pr[wpe, wpe + wp / 2)).
static void dw_split_generic(const float *tmp, float *pr, size_t wp, size_t wpe) {
    for (size_t j = 0; j < wpe; j++) pr[j] = tmp[2 * j];
    for (size_t j = 0; j < wp / 2; j++) pr[wpe + j] = tmp[2 * j + 1];
}

#define CK_DEPTHWISE_BODY                                                                                                                   \
    const int fast = dh == 1 && dw == 1 && kh == kw && (kh == 3 || kh == 5 || kh == 7) && sh == sw && (sh == 1 || sh == 2) && \
                     padded != NULL;                                                                         \
    const size_t wp = (out_w - 1) * sw + kw, hp = (out_h - 1) * sh + kh, wpe = (wp + 1) / 2;                 \
    float *tmp = padded ? padded + hp * wp : NULL;                                                           \
    for (size_t c = c_begin; c < c_end; c++) {                                                               \
        const float *xc = x + c * in_h * in_w;                                                               \
        const float *wc = w + c * kh * kw;                                                                   \
        const float b = bias ? bias[c] : 0.0f;                                                               \
        if (fast) {                                                                                          \
            /* The padded plane: rows and columns the windows reach, zero outside the image. */             \
            for (size_t i = 0; i < hp; i++) {                                                                \
                const ptrdiff_t ih = (ptrdiff_t)i - pad_top;                                                 \
                float *pr = padded + i * wp;                                                                 \
                if (ih < 0 || ih >= (ptrdiff_t)in_h) {                                                       \
                    memset(pr, 0, wp * sizeof(float));                                                      \
                    continue;                                                                                \
                }                                                                                            \
                /* Left padding, the row, right padding (columns j - pad_left inside the image). */         \
                const ptrdiff_t first = pad_left > 0 ? pad_left : 0;                                         \
                ptrdiff_t last = pad_left + (ptrdiff_t)in_w;                                                 \
                if (last > (ptrdiff_t)wp) last = (ptrdiff_t)wp;                                              \
                const ptrdiff_t from = first - pad_left;                                                     \
                float *dst = sh == 2 ? tmp : pr;                                                             \
                memset(dst, 0, (size_t)first * sizeof(float));                                               \
                if (last > first) memcpy(dst + first, xc + (size_t)ih * in_w + from, (size_t)(last - first) * sizeof(float)); \
                if ((ptrdiff_t)wp > last && last >= first) memset(dst + last, 0, (size_t)((ptrdiff_t)wp - last) * sizeof(float)); \
                else if (last < first) memset(dst + first, 0, (size_t)((ptrdiff_t)wp - first) * sizeof(float)); \
                if (sh == 2) dw_split_generic(tmp, pr, wp, wpe);                                                   \
            }                                                                                                \
            for (size_t oh = 0; oh < out_h; oh++) {                                                          \
                float *yr = y + (c * out_h + oh) * out_w;                                                    \
                const float *rows[7], *rowsE[7], *rowsO[7];                                                  \
                for (size_t ki = 0; ki < kh; ki++) {                                                         \
                    rows[ki] = padded + (oh * sh + ki) * wp;                                                 \
                    rowsE[ki] = rows[ki];                                                                    \
                    rowsO[ki] = rows[ki] + wpe;                                                              \
                }                                                                                            \
                dw_row_generic(rowsE, rowsO, wc, kh, sh, b, yr, out_w, lo, hi);                                    \
            }                                                                                                \
            /* Swish over the channel's plane while it is in cache (one call: rows can be short). */        \
            ck_depthwise_after(y + c * out_h * out_w, out_h * out_w, after);                                 \
            continue;                                                                                        \
        }                                                                                                    \
        for (size_t oh = 0; oh < out_h; oh++) {                                                              \
            float *yr = y + (c * out_h + oh) * out_w;                                                        \
            for (size_t ow = 0; ow < out_w; ow++) yr[ow] = b;                                                \
            for (size_t ki = 0; ki < kh; ki++) {                                                             \
                const ptrdiff_t ih = (ptrdiff_t)(oh * sh + ki * dh) - pad_top;                               \
                if (ih < 0 || ih >= (ptrdiff_t)in_h) continue;                                               \
                const float *xr = xc + (size_t)ih * in_w;                                                    \
                for (size_t kj = 0; kj < kw; kj++) {                                                         \
                    const float wv = wc[ki * kw + kj];                                                       \
                    const ptrdiff_t shift = (ptrdiff_t)(kj * dw) - pad_left;                                 \
                    /* Columns with 0 <= ow·sw + shift < in_w. */                                            \
                    ptrdiff_t lo = shift >= 0 ? 0 : (-shift + (ptrdiff_t)sw - 1) / (ptrdiff_t)sw;            \
                    ptrdiff_t hi = (ptrdiff_t)in_w - shift <= 0 ? 0                                          \
                                                                : ((ptrdiff_t)in_w - shift - 1) / (ptrdiff_t)sw + 1; \
                    if (hi > (ptrdiff_t)out_w) hi = (ptrdiff_t)out_w;                                        \
                    for (ptrdiff_t ow = lo; ow < hi; ow++) yr[ow] += wv * xr[ow * (ptrdiff_t)sw + shift];    \
                }                                                                                            \
            }                                                                                                \
            for (size_t ow = 0; ow < out_w; ow++) {                                                          \
                const float v = yr[ow] < lo ? lo : yr[ow];                                                   \
                yr[ow] = v > hi ? hi : v;                                                                    \
            }                                                                                                \
        }                                                                                                    \
        ck_depthwise_after(y + c * out_h * out_w, out_h * out_w, after);                                     \
    }
#define CK_DEPTHWISE_ARGS                                                                                    \
    (const float *x, const float *w, const float *bias, float *y, size_t c_begin, size_t c_end, size_t in_h,     \
     size_t in_w, size_t kh, size_t kw, size_t sh, size_t sw, size_t dh, size_t dw, ptrdiff_t pad_top,          \
     ptrdiff_t pad_left, size_t out_h, size_t out_w, float lo, float hi, int after, float *padded)
// The fast path here runs only where the channels-in-lanes kernel (ck_depthwise_blocked) declines: without AVX2.
// The other shapes (dilated, rectangular, other strides) vectorize at each ISA's width.
static void depthwise_generic CK_DEPTHWISE_ARGS { CK_DEPTHWISE_BODY }
__attribute__((target("avx2,fma"))) static void depthwise_avx2 CK_DEPTHWISE_ARGS { CK_DEPTHWISE_BODY }
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void depthwise_avx512 CK_DEPTHWISE_ARGS { CK_DEPTHWISE_BODY }

size_t ck_depthwise_padded_floats(size_t out_h, size_t out_w, size_t kh, size_t kw, size_t sh, size_t sw) {
    // The padded plane, plus one row of scratch for splitting stride-2 rows into even and odd columns. The sizes
    // come from a model: SIZE_MAX when the product does not fit (the caller then cannot allocate it).
    if (out_h == 0 || out_w == 0) return 0;
    size_t rows, cols, floats;
    if (__builtin_mul_overflow(out_h - 1, sh, &rows) || __builtin_add_overflow(rows, kh + 1, &rows) ||
        __builtin_mul_overflow(out_w - 1, sw, &cols) || __builtin_add_overflow(cols, kw, &cols) ||
        __builtin_mul_overflow(rows, cols, &floats) || floats > SIZE_MAX / sizeof(float))
        return SIZE_MAX;
    return floats;
}

void ck_depthwise_conv2d(const float *x, const float *w, const float *bias, float *y, size_t c_begin, size_t c_end,
                         size_t in_h, size_t in_w, size_t kh, size_t kw, size_t sh, size_t sw, size_t dh, size_t dw,
                         ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w, float lo, float hi,
                         int after, float *padded) {
    if (out_h == 0 || out_w == 0) return;
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5')
        depthwise_avx512(x, w, bias, y, c_begin, c_end, in_h, in_w, kh, kw, sh, sw, dh, dw, pad_top, pad_left, out_h,
                         out_w, lo, hi, after, padded);
    else if (isa[0] == 'a')
        depthwise_avx2(x, w, bias, y, c_begin, c_end, in_h, in_w, kh, kw, sh, sw, dh, dw, pad_top, pad_left, out_h,
                       out_w, lo, hi, after, padded);
    else
        depthwise_generic(x, w, bias, y, c_begin, c_end, in_h, in_w, kh, kw, sh, sw, dh, dw, pad_top, pad_left, out_h,
                          out_w, lo, hi, after, padded);
}

// Max pooling (no dilation) of `planes` contiguous [in_h][in_w] planes into [out_h][out_w], separably: per output
// row, the maximum down each column of the window's rows (contiguous, vectorized) into one row of `padded`, -inf
// where the window reaches past the image (padding, ceil_mode), then the maximum across each window of that row.
// A NaN wins exactly when it is the window's first element (top-left), as in the direct loop `m = v > m ? v : m`
// started from that element.
#define CK_MAXPOOL_BODY                                                                                      \
    const size_t wp = (out_w - 1) * sw + kw;                                                                 \
    ptrdiff_t first = pad_left > 0 ? pad_left : 0;                                                           \
    if (first > (ptrdiff_t)wp) first = (ptrdiff_t)wp;                                                        \
    ptrdiff_t last = pad_left + (ptrdiff_t)in_w;                                                             \
    if (last > (ptrdiff_t)wp) last = (ptrdiff_t)wp;                                                          \
    if (last < first) last = first;                                                                          \
    const size_t span = (size_t)(last - first);                                                              \
    float *__restrict cm = padded;                                                                           \
    for (size_t p = 0; p < planes; p++) {                                                                    \
        const float *xc = x + p * in_h * in_w + (first - pad_left);                                          \
        for (size_t oh = 0; oh < out_h; oh++) {                                                              \
            float *__restrict out = y + (p * out_h + oh) * out_w;                                            \
            for (ptrdiff_t j = 0; j < first; j++) cm[j] = -__builtin_inff();                                 \
            for (size_t j = (size_t)last; j < wp; j++) cm[j] = -__builtin_inff();                            \
            float *__restrict inner = cm + first;                                                            \
            const ptrdiff_t top = (ptrdiff_t)(oh * sh) - pad_top;                                            \
            if (kh == 3 && top >= 0 && top + 3 <= (ptrdiff_t)in_h) {                                         \
                /* A 3-row window inside the image in one pass, in the window's order (a copy and two        \
                   passes over the row buffer cost a third more: 64x111x111, 3x3/2, 155 -> 100 us). */       \
                const float *__restrict r0 = xc + (size_t)top * in_w, *__restrict r1 = r0 + in_w,            \
                                        *__restrict r2 = r1 + in_w;                                          \
                for (size_t j = 0; j < span; j++) {                                                          \
                    float m = r0[j];                                                                         \
                    m = r1[j] > m ? r1[j] : m;                                                               \
                    inner[j] = r2[j] > m ? r2[j] : m;                                                        \
                }                                                                                            \
            } else {                                                                                         \
                for (size_t ki = 0; ki < kh; ki++) {                                                         \
                    const ptrdiff_t ih = (ptrdiff_t)(oh * sh + ki) - pad_top;                                \
                    const int inside = ih >= 0 && ih < (ptrdiff_t)in_h;                                      \
                    if (ki == 0) {                                                                           \
                        if (inside) memcpy(inner, xc + (size_t)ih * in_w, span * sizeof(float));             \
                        else for (size_t j = 0; j < span; j++) inner[j] = -__builtin_inff();                 \
                    } else if (inside) {                                                                     \
                        const float *__restrict r = xc + (size_t)ih * in_w;                                  \
                        for (size_t j = 0; j < span; j++) inner[j] = r[j] > inner[j] ? r[j] : inner[j];      \
                    }                                                                                        \
                }                                                                                            \
            }                                                                                                \
            if (kw == 3 && sw == 2) {                                                                        \
                for (size_t ow = 0; ow < out_w; ow++) {                                                      \
                    float m = cm[2 * ow];                                                                    \
                    m = cm[2 * ow + 1] > m ? cm[2 * ow + 1] : m;                                             \
                    out[ow] = cm[2 * ow + 2] > m ? cm[2 * ow + 2] : m;                                       \
                }                                                                                            \
            } else if (kw == 3 && sw == 1) {                                                                 \
                for (size_t ow = 0; ow < out_w; ow++) {                                                      \
                    float m = cm[ow];                                                                        \
                    m = cm[ow + 1] > m ? cm[ow + 1] : m;                                                     \
                    out[ow] = cm[ow + 2] > m ? cm[ow + 2] : m;                                               \
                }                                                                                            \
            } else if (kw == 2 && sw == 2) {                                                                 \
                for (size_t ow = 0; ow < out_w; ow++)                                                        \
                    out[ow] = cm[2 * ow + 1] > cm[2 * ow] ? cm[2 * ow + 1] : cm[2 * ow];                     \
            } else {                                                                                         \
                for (size_t ow = 0; ow < out_w; ow++) {                                                      \
                    const float *c = cm + ow * sw;                                                           \
                    float m = c[0];                                                                          \
                    for (size_t kj = 1; kj < kw; kj++) m = c[kj] > m ? c[kj] : m;                            \
                    out[ow] = m;                                                                             \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }
#define CK_MAXPOOL_ARGS                                                                                      \
    (const float *x, size_t planes, size_t in_h, size_t in_w, size_t kh, size_t kw, size_t sh, size_t sw,       \
     ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w, float *y, float *padded)
static void maxpool_generic CK_MAXPOOL_ARGS { CK_MAXPOOL_BODY }
__attribute__((target("avx2,fma"))) static void maxpool_avx2 CK_MAXPOOL_ARGS { CK_MAXPOOL_BODY }
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void maxpool_avx512 CK_MAXPOOL_ARGS { CK_MAXPOOL_BODY }

// Per thread: the padded plane when the caller passes none; grown on first use, then reused (a warm run
// allocates nothing).
static _Thread_local float *pool_scratch = NULL;
static _Thread_local size_t pool_scratch_floats = 0;

int ck_max_pool2d(const float *x, size_t planes, size_t in_h, size_t in_w, size_t kh, size_t kw, size_t sh,
                  size_t sw, ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w, float *y,
                  float *padded) {
    if (out_h == 0 || out_w == 0) return 0;
    if (padded == NULL) {
        const size_t floats = ck_depthwise_padded_floats(out_h, out_w, kh, kw, sh, sw);
        // A padded plane past 1 GiB (windows sized by attributes alone) falls back to the window-by-window path.
        if (floats == SIZE_MAX || floats > ((size_t)1 << 28)) return -1;
        if (floats > pool_scratch_floats) {
            float *grown = (float *)realloc(pool_scratch, floats * sizeof(float));
            if (grown == NULL) return -1;
            pool_scratch = grown;
            pool_scratch_floats = floats;
        }
        padded = pool_scratch;
    }
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') maxpool_avx512(x, planes, in_h, in_w, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, y, padded);
    else if (isa[0] == 'a')
        maxpool_avx2(x, planes, in_h, in_w, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, y, padded);
    else maxpool_generic(x, planes, in_h, in_w, kh, kw, sh, sw, pad_top, pad_left, out_h, out_w, y, padded);
    return 0;
}
