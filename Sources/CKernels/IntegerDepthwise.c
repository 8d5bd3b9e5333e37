// Depthwise integer convolution (QLinearConv with group = channels and one filter each) of one channel plane,
// exact: the plane's values minus the input zero point in a zero-padded float copy (the padding holds the zero
// point, which contributes nothing), then per output the K·K taps times (w - w_zero) summed with fused
// multiply-adds in float, which is exact here: every product (at most 255·255) and partial sum (at most 49 of
// them, under 3.2 million) is an integer below 2^24. One multiply-add per tap and vector, against a widening,
// an int32 multiply and an add in integer lanes. Stride 2 splits each padded row into its even and
// odd columns (even first) so that every tap reads a contiguous run. Requantization is the caller's
// (ck_requantize over the plane's sums).
#include "CKernels.h"

#include <string.h>

size_t ck_depthwise_q_padded_elements(size_t out_h, size_t out_w, size_t k, size_t s) {
    if (out_h == 0 || out_w == 0) return 0;
    size_t rows, cols, elements;
    if (__builtin_mul_overflow(out_h - 1, s, &rows) || __builtin_add_overflow(rows, k, &rows) ||
        __builtin_mul_overflow(out_w - 1, s, &cols) || __builtin_add_overflow(cols, k, &cols) ||
        __builtin_mul_overflow(rows, cols, &elements) || __builtin_add_overflow(elements, cols, &elements) ||
        elements > SIZE_MAX / sizeof(float))
        return SIZE_MAX;
    return elements;
}

static inline int32_t byte_value(const uint8_t *p, size_t i, int is_signed) {
    return is_signed ? (int32_t)(int8_t)p[i] : (int32_t)p[i];
}

// One output row from the padded rows it reads: K and S compile-time constants, every tap of an output summed in
// registers (the loop over output columns vectorizes; each tap one load, multiply and add per vector).
#define CK_DWQ_ROW(K, S)                                                                                     \
    for (size_t ow = 0; ow < out_w; ow++) {                                                                  \
        float sum = 0;                                                                                       \
        for (size_t ky = 0; ky < (K); ky++)                                                                  \
            for (size_t kx = 0; kx < (K); kx++) {                                                            \
                const float *in = (S) == 1 ? rows[ky] + kx : ((kx & 1) ? rows[ky] + wpe : rows[ky]) + kx / 2; \
                sum += in[ow] * taps[ky * (K) + kx];                                                         \
            }                                                                                                \
        out[ow] = (int32_t)sum;                                                                              \
    }

#define CK_DWQ_BODY                                                                                          \
    const size_t hp = (out_h - 1) * s + k, wp = (out_w - 1) * s + k, wpe = (wp + 1) / 2;                     \
    const ptrdiff_t first = pad_left > 0 ? (pad_left < (ptrdiff_t)wp ? pad_left : (ptrdiff_t)wp) : 0;       \
    ptrdiff_t last = pad_left + (ptrdiff_t)in_w;                                                             \
    if (last > (ptrdiff_t)wp) last = (ptrdiff_t)wp;                                                          \
    if (last < first) last = first;                                                                          \
    /* Stride 2 builds each row in column order past the plane, then splits it. */                          \
    float *line = padded + hp * wp;                                                                        \
    for (size_t i = 0; i < hp; i++) {                                                                        \
        float *row = padded + i * wp;                                                                      \
        const ptrdiff_t ih = (ptrdiff_t)i - pad_top;                                                         \
        if (ih < 0 || ih >= (ptrdiff_t)in_h) {                                                               \
            memset(row, 0, wp * sizeof(float));                                                            \
            continue;                                                                                        \
        }                                                                                                    \
        const uint8_t *src = x + (size_t)ih * in_w - pad_left;                                               \
        float *dst = s == 1 ? row : line;                                                                  \
        for (ptrdiff_t j = 0; j < first; j++) dst[j] = 0;                                                    \
        if (x_signed) {                                                                                      \
            for (ptrdiff_t j = first; j < last; j++) dst[j] = (float)((int32_t)(int8_t)src[j] - x_zero);   \
        } else {                                                                                             \
            for (ptrdiff_t j = first; j < last; j++) dst[j] = (float)((int32_t)src[j] - x_zero);           \
        }                                                                                                    \
        for (size_t j = (size_t)last; j < wp; j++) dst[j] = 0;                                               \
        if (s == 2) {                                                                                        \
            for (size_t e = 0; e < wpe; e++) row[e] = line[2 * e];                                           \
            for (size_t o = 0; o < wp / 2; o++) row[wpe + o] = line[2 * o + 1];                              \
        }                                                                                                    \
    }                                                                                                        \
    float taps[49];                                                                                          \
    for (size_t t = 0; t < k * k; t++) taps[t] = (float)(byte_value(w, t, w_signed) - w_zero);                        \
    for (size_t oh = 0; oh < out_h; oh++) {                                                                  \
        int32_t *restrict out = acc + oh * out_w;                                                            \
        const float *rows[7];                                                                              \
        for (size_t ky = 0; ky < k; ky++) rows[ky] = padded + (oh * s + ky) * wp;                            \
        if (k == 3 && s == 1) { CK_DWQ_ROW(3, 1) }                                                           \
        else if (k == 3) { CK_DWQ_ROW(3, 2) }                                                                \
        else if (k == 5 && s == 1) { CK_DWQ_ROW(5, 1) }                                                      \
        else if (k == 5) { CK_DWQ_ROW(5, 2) }                                                                \
        else if (s == 1) { CK_DWQ_ROW(k, 1) }                                                                \
        else { CK_DWQ_ROW(k, 2) }                                                                            \
    }

#define CK_DWQ_ARGS                                                                                          \
    (const uint8_t *x, int x_signed, int32_t x_zero, size_t in_h, size_t in_w, const uint8_t *w, int w_signed,   \
     int32_t w_zero, size_t k, size_t s, ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w,     \
     float *padded, int32_t *acc)

static void dwq_generic CK_DWQ_ARGS { CK_DWQ_BODY }
#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static void dwq_avx2 CK_DWQ_ARGS { CK_DWQ_BODY }
__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))) static void dwq_avx512 CK_DWQ_ARGS { CK_DWQ_BODY }
#endif

int ck_depthwise_q(const uint8_t *x, int x_signed, int32_t x_zero, size_t in_h, size_t in_w, const uint8_t *w,
                   int w_signed, int32_t w_zero, size_t k, size_t s, ptrdiff_t pad_top, ptrdiff_t pad_left,
                   size_t out_h, size_t out_w, float *padded, int32_t *acc) {
    if (k < 1 || k > 7 || (s != 1 && s != 2)) return 0;
    if (out_h == 0 || out_w == 0) return 1;
#if defined(__x86_64__)
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') {
        dwq_avx512(x, x_signed, x_zero, in_h, in_w, w, w_signed, w_zero, k, s, pad_top, pad_left, out_h, out_w, padded,
                   acc);
        return 1;
    }
    if (isa[0] == 'a') {
        dwq_avx2(x, x_signed, x_zero, in_h, in_w, w, w_signed, w_zero, k, s, pad_top, pad_left, out_h, out_w, padded,
                 acc);
        return 1;
    }
#endif
    dwq_generic(x, x_signed, x_zero, in_h, in_w, w, w_signed, w_zero, k, s, pad_top, pad_left, out_h, out_w, padded,
                acc);
    return 1;
}
