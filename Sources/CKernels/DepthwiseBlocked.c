// Depthwise convolution with channels in vector lanes: a block of V channels (16 with AVX-512, 8 with AVX2) is
// transposed, a strip of rows at a time, into a zero-padded [row][column][V] scratch, so every output position of
// every channel of the block is V lanes of one vector and each tap one load and one fused multiply-add, whatever
// the stride; the results are transposed back into the channels' planes. For the small planes and stride-2
// layers of mobile networks this beats the per-plane kernel (which splits even and odd columns and pays a fixed
// cost per channel); onnxruntime gets the same effect from its NCHWc layout. 3x3 stride-1 windows over rows of 48
// and more (the first layers of MobileNetV2 and EfficientNet) take a per-channel kernel here instead (dwp256), where
// the transposes cost more than they save.
#include "CKernels.h"
#include "Transpose8.h"
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

// Output rows per strip: the strip's input rows (STRIP - 1)·stride + k stay in L2 for wide planes.
#define CK_DWB_STRIP 8

size_t ck_depthwise_blocked_floats(size_t out_h, size_t out_w, size_t k, size_t s) {
    if (out_h == 0 || out_w == 0 || out_w > SIZE_MAX - 3) return 0;
    const size_t rows = (CK_DWB_STRIP - 1) * s + k;
    // Rows are computed four outputs at a time, a partial last group into padding columns (CK_DWB_BODY).
    const size_t out_w4 = (out_w + 3) / 4 * 4;
    size_t wp, floats;
    if (__builtin_mul_overflow(out_w4 - 1, s, &wp) || __builtin_add_overflow(wp, k, &wp) ||
        __builtin_mul_overflow(wp, rows, &floats) || __builtin_add_overflow(floats, out_w4 + 16, &floats) ||
        __builtin_mul_overflow(floats, (size_t)16, &floats) || floats > SIZE_MAX / sizeof(float))
        return SIZE_MAX;
    return floats;
}

__attribute__((target("avx512f,avx512vl,avx2,fma"), always_inline)) static inline void tr16(__m512 *r) {
    __m512 t[16], s[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // s[4g + j]: lane q holds column 4q + j of rows 4g..4g+3.
    for (int g = 0; g < 4; g++) {
        s[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        s[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        s[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        s[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        const __m512 u0 = _mm512_shuffle_f32x4(s[j], s[4 + j], 0x44), u1 = _mm512_shuffle_f32x4(s[j], s[4 + j], 0xEE);
        const __m512 u2 = _mm512_shuffle_f32x4(s[8 + j], s[12 + j], 0x44);
        const __m512 u3 = _mm512_shuffle_f32x4(s[8 + j], s[12 + j], 0xEE);
        r[j] = _mm512_shuffle_f32x4(u0, u2, 0x88);
        r[4 + j] = _mm512_shuffle_f32x4(u0, u2, 0xDD);
        r[8 + j] = _mm512_shuffle_f32x4(u1, u3, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(u1, u3, 0xDD);
    }
}

// The kernel body for one ISA: V lanes, vector type VT, and the ISA's loads and stores of n <= V floats.
// XT is the input's element type, read by INLOAD (V elements) and INLOADN (n of them) as V floats; FINISH turns a
// pixel's V sums into its results (the clamp); OUTSTORE and OUTSTOREN write channel l's vector of results at
// element `off` of the output planes.
#define CK_DWB_BODY(V, VT, SET1, LOADU, STOREU, FMA, MAXV, MINV, ZERO, XT, INLOAD, INLOADN, FINISH, OUTSTORE,          \
                    OUTSTOREN, POSSTORE, TRANSPOSE, K)                                                       \
    /* Outputs four at a time; a row's last three (or two, for 5x5 and 7x7 windows) are computed as a group    \
       into padding columns (zeros in, results never stored), others one at a time: a lone output is one chain \
       of K·K dependent multiply-adds. Measured (one thread, Zen 4): 7x7 planes of 768 channels 7x7 0.125 ->    \
       0.092 ms (AVX2), 14x14 of 384 0.176 -> 0.160; 3x3 over 14x14 stays faster one at a time. */            \
    const size_t rem = out_w % 4;                                                                            \
    const size_t out_wg = rem == 3 || (K >= 5 && rem == 2) ? out_w + 4 - rem : out_w - rem;                  \
    const size_t wp = ((out_wg > out_w ? out_wg : out_w) - 1) * s + K;                                       \
    float *strip = scratch;                                                                                  \
    float *orow = scratch + (size_t)((CK_DWB_STRIP - 1) * s + K) * wp * V;                                   \
    /* Per tap: the V channels' weights as one vector; the bias likewise. */                                 \
    VT wv[K * K];                                                                                            \
    float lane[V];                                                                                           \
    /* V taps of the V channels per transpose (lane by lane through the stack, each vector's load waited on V  \
       scalar stores: as long as the 7x7 planes' multiply-adds), the last K·K mod V taps lane by lane. */     \
    size_t t0 = 0;                                                                                           \
    for (; t0 + V <= K * K; t0 += V) {                                                                       \
        VT v[V];                                                                                             \
        for (size_t l = 0; l < V; l++) v[l] = l < cn ? LOADU(w + l * K * K + t0) : ZERO;                     \
        TRANSPOSE(v);                                                                                        \
        for (size_t q = 0; q < V; q++) wv[t0 + q] = v[q];                                                    \
    }                                                                                                        \
    for (size_t t = t0; t < K * K; t++) {                                                                    \
        for (size_t l = 0; l < V; l++) lane[l] = l < cn ? w[l * K * K + t] : 0.0f;                           \
        wv[t] = LOADU(lane);                                                                                 \
    }                                                                                                        \
    for (size_t l = 0; l < V; l++) lane[l] = l < cn && bias ? bias[l] : 0.0f;                                \
    const VT bv = LOADU(lane), lov = SET1(lo), hiv = SET1(hi);                                               \
    const ptrdiff_t first = pad_left > 0 ? pad_left : 0;                                                     \
    ptrdiff_t last = pad_left + (ptrdiff_t)in_w;                                                             \
    if (last > (ptrdiff_t)wp) last = (ptrdiff_t)wp;                                                          \
    for (size_t oh0 = row_begin; oh0 < row_end; oh0 += CK_DWB_STRIP) {                                       \
        const size_t oh1 = oh0 + CK_DWB_STRIP < row_end ? oh0 + CK_DWB_STRIP : row_end;                      \
        const size_t rows = (oh1 - 1 - oh0) * s + K;                                                         \
        const ptrdiff_t ih0 = (ptrdiff_t)(oh0 * s) - pad_top;                                                \
        for (size_t r = 0; r < rows; r++) {                                                                  \
            const ptrdiff_t ih = ih0 + (ptrdiff_t)r;                                                         \
            float *dst = strip + r * wp * V;                                                                 \
            if (ih < 0 || ih >= (ptrdiff_t)in_h || last <= first) {                                          \
                memset(dst, 0, wp * V * sizeof(float));                                                      \
                continue;                                                                                    \
            }                                                                                                \
            memset(dst, 0, (size_t)first * V * sizeof(float));                                               \
            memset(dst + (size_t)last * V, 0, (size_t)((ptrdiff_t)wp - last) * V * sizeof(float));           \
            /* Columns [first, last) of the strip are input columns [first - pad_left, ...). */             \
            if (in_nhwc) {                                                                                   \
                /* Channels last: each position's cn channels are adjacent, one load per strip column. */   \
                const XT *src = x + ((size_t)ih * in_w + (size_t)(first - pad_left)) * cs;                   \
                for (ptrdiff_t j = first; j < last; j++, src += cs)                                          \
                    STOREU(dst + (size_t)j * V, cn == V ? INLOAD(src) : INLOADN(src, cn));                   \
                continue;                                                                                    \
            }                                                                                                \
            for (ptrdiff_t j = first; j < last; j += V) {                                                    \
                const size_t n = (size_t)(last - j) < V ? (size_t)(last - j) : V;                            \
                const XT *src = x + (size_t)ih * in_w + (size_t)(j - pad_left);                              \
                VT v[V];                                                                                     \
                if (n == V && cn == V) {                                                                     \
                    /* Whole blocks (all but a row's last columns): no per-lane conditions. */              \
                    for (size_t l = 0; l < V; l++) v[l] = INLOAD(src + l * in_h * in_w);                     \
                    TRANSPOSE(v);                                                                            \
                    for (size_t q = 0; q < V; q++) STOREU(dst + ((size_t)j + q) * V, v[q]);                  \
                    continue;                                                                                \
                }                                                                                            \
                for (size_t l = 0; l < V; l++) v[l] = l < cn ? INLOADN(src + l * in_h * in_w, n) : ZERO;     \
                TRANSPOSE(v);                                                                                \
                /* A constant trip count keeps v in registers (a loop to n became a memcpy call). */         \
                for (size_t q = 0; q < V; q++)                                                               \
                    if (q < n) STOREU(dst + ((size_t)j + q) * V, v[q]);                                      \
            }                                                                                                \
        }                                                                                                    \
        for (size_t oh = oh0; oh < oh1; oh++) {                                                              \
            const float *base = strip + (oh - oh0) * s * wp * V;                                             \
            size_t ow = 0;                                                                                   \
            for (; ow < out_wg; ow += 4) {                                                                   \
                VT a0 = bv, a1 = bv, a2 = bv, a3 = bv;                                                       \
                for (size_t ki = 0; ki < K; ki++) {                                                          \
                    /* Each input vector of the row once, into every output it reaches (stride and K are      \
                       constants, so the conditions vanish): 3s + K loads for 4K multiply-adds instead of 4K, \
                       and the row's K weights stay in registers. Each output still adds its taps in kj order. */ \
                    const float *row = base + ki * wp * V + ow * s * V;                                      \
                    const VT *wk = wv + ki * K;                                                              \
                    for (size_t j = 0; j < 3 * s + K; j++) {                                                 \
                        const VT in = LOADU(row + j * V);                                                    \
                        if (j < K) a0 = FMA(in, wk[j], a0);                                                  \
                        if (j >= s && j - s < K) a1 = FMA(in, wk[j - s], a1);                                \
                        if (j >= 2 * s && j - 2 * s < K) a2 = FMA(in, wk[j - 2 * s], a2);                    \
                        if (j >= 3 * s && j - 3 * s < K) a3 = FMA(in, wk[j - 3 * s], a3);                    \
                    }                                                                                        \
                }                                                                                            \
                STOREU(orow + ow * V, FINISH(a0));                                                \
                STOREU(orow + (ow + 1) * V, FINISH(a1));                                          \
                STOREU(orow + (ow + 2) * V, FINISH(a2));                                          \
                STOREU(orow + (ow + 3) * V, FINISH(a3));                                          \
            }                                                                                                \
            for (; ow < out_w; ow++) {                                                                       \
                VT a = bv;                                                                                   \
                for (size_t ki = 0; ki < K; ki++) {                                                          \
                    const float *row = base + ki * wp * V + ow * s * V;                                      \
                    for (size_t kj = 0; kj < K; kj++) a = FMA(LOADU(row + kj * V), wv[ki * K + kj], a);      \
                }                                                                                            \
                STOREU(orow + ow * V, FINISH(a));                                                            \
            }                                                                                                \
            ck_depthwise_after(orow, out_w * V, after);                                                      \
            if (out_nhwc) {                                                                                  \
                for (size_t o = 0; o < out_w; o++) POSSTORE(((size_t)oh * out_w + o) * cs, LOADU(orow + o * V), cn); \
                continue;                                                                                    \
            }                                                                                                \
            /* Back to planes: V output columns of the V channels per transpose. */                         \
            for (size_t o = 0; o < out_w; o += V) {                                                          \
                const size_t n = out_w - o < V ? out_w - o : V;                                              \
                VT v[V];                                                                                     \
                if (n == V && cn == V) {                                                                     \
                    for (size_t q = 0; q < V; q++) v[q] = LOADU(orow + (o + q) * V);                         \
                    TRANSPOSE(v);                                                                            \
                    for (size_t l = 0; l < V; l++) OUTSTORE(l, (l * out_h + oh) * out_w + o, v[l]);          \
                    continue;                                                                                \
                }                                                                                            \
                for (size_t q = 0; q < V; q++) v[q] = q < n ? LOADU(orow + (o + q) * V) : ZERO;              \
                TRANSPOSE(v);                                                                                \
                for (size_t l = 0; l < cn; l++) OUTSTOREN(l, (l * out_h + oh) * out_w + o, v[l], n);         \
            }                                                                                                \
        }                                                                                                    \
    }

#define CK_DWB_ARGS                                                                                          \
    (const float *x, const float *w, const float *bias, float *y, size_t cn, size_t in_h, size_t in_w, size_t s, \
     ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w, size_t row_begin, size_t row_end, float lo,   \
     float hi, int after, float *scratch, size_t cs, int in_nhwc, int out_nhwc)

#define CK512_LOADN(p, n) _mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1u), (p))
#define CK512_STOREN(p, v, n) _mm512_mask_storeu_ps((p), (__mmask16)((1u << (n)) - 1u), (v))
#define CK512_CLAMP(a) _mm512_min_ps(hiv, _mm512_max_ps(lov, (a)))
#define CK512_FSTORE(l, off, v) _mm512_storeu_ps(y + (off), (v))
#define CK512_FSTOREN(l, off, v, n) CK512_STOREN(y + (off), (v), (n))
// One position's n channels, channels last.
#define CK512_POSSTORE(off, v, n) CK512_STOREN(y + (off), (v), (n))
#define CK512_BODY(K)                                                                                        \
    CK_DWB_BODY(16, __m512, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_max_ps,  \
                _mm512_min_ps, _mm512_setzero_ps(), float, _mm512_loadu_ps, CK512_LOADN, CK512_CLAMP, CK512_FSTORE, \
                CK512_FSTOREN, CK512_POSSTORE, tr16, K)

__attribute__((target("avx2,fma"), always_inline)) static inline __m256i ck256_mask(size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
// vmaskmovps is microcoded on AMD cores (a masked store costs several cycles): whole vectors use plain moves, and a
// partial store goes through the stack.
__attribute__((target("avx2,fma"), always_inline)) static inline __m256 ck256_loadn(const float *p, size_t n) {
    return n == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, ck256_mask(n));
}
__attribute__((target("avx2,fma"), always_inline)) static inline void ck256_storen(float *p, __m256 v, size_t n) {
    if (n == 8) {
        _mm256_storeu_ps(p, v);
    } else {
        float t[8];
        _mm256_storeu_ps(t, v);
        for (size_t i = 0; i < n; i++) p[i] = t[i];
    }
}
#define CK256_LOADN(p, n) ck256_loadn((p), (n))
#define CK256_STOREN(p, v, n) ck256_storen((p), (v), (n))
#define CK256_CLAMP(a) _mm256_min_ps(hiv, _mm256_max_ps(lov, (a)))
#define CK256_FSTORE(l, off, v) _mm256_storeu_ps(y + (off), (v))
#define CK256_FSTOREN(l, off, v, n) CK256_STOREN(y + (off), (v), (n))
#define CK256_POSSTORE(off, v, n) CK256_STOREN(y + (off), (v), (n))
#define CK256_BODY(K)                                                                                        \
    CK_DWB_BODY(8, __m256, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_max_ps,   \
                _mm256_min_ps, _mm256_setzero_ps(), float, _mm256_loadu_ps, CK256_LOADN, CK256_CLAMP, CK256_FSTORE,  \
                CK256_FSTOREN, CK256_POSSTORE, tr8, K)

// The body once per stride (1 or 2), with s a constant in each.
#define CK_DWB_STRIDES(body)                                                                                 \
    if (s == 1) {                                                                                            \
        const size_t s = 1;                                                                                  \
        body                                                                                                 \
    } else {                                                                                                 \
        const size_t s = 2;                                                                                  \
        body                                                                                                 \
    }

__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void dwb512_3 CK_DWB_ARGS { CK_DWB_STRIDES(CK512_BODY(3)) }
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void dwb512_5 CK_DWB_ARGS { CK_DWB_STRIDES(CK512_BODY(5)) }
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void dwb512_7 CK_DWB_ARGS { CK_DWB_STRIDES(CK512_BODY(7)) }
__attribute__((target("avx2,fma"))) static void dwb256_3 CK_DWB_ARGS { CK_DWB_STRIDES(CK256_BODY(3)) }
__attribute__((target("avx2,fma"))) static void dwb256_5 CK_DWB_ARGS { CK_DWB_STRIDES(CK256_BODY(5)) }
__attribute__((target("avx2,fma"))) static void dwb256_7 CK_DWB_ARGS { CK_DWB_STRIDES(CK256_BODY(7)) }

// 3x3 stride-1 windows over wide rows, one channel at a time: the window's rows copied, zero-padded, into the
// scratch a strip at a time, then R rows by NV vectors of outputs summed over the nine taps from unaligned loads
// of those rows, each loaded vector feeding every output row whose window covers it. No transposes: the
// channels-in-lanes kernel spent longer moving values between planes and lanes than multiplying there.
// YT the output's element type; OUT(p, a) stores V results from the sums a, OUTN(p, a, n) the first n.
#define CK_DWP_ROW(oh, from, V, VT, FMA, LOADU, YT, OUT, OUTN)                                               \
    {                                                                                                        \
        const float *b_ = scratch + ((oh) - oh0) * wp;                                                       \
        YT *o_ = yc + (oh) * out_w;                                                                          \
        for (size_t ow_ = (from); ow_ < out_w; ow_ += V) {                                                   \
            VT a_ = bv;                                                                                      \
            for (size_t ki = 0; ki < 3; ki++)                                                                \
                for (size_t kj = 0; kj < 3; kj++) a_ = FMA(LOADU(b_ + ki * wp + ow_ + kj), wv[ki * 3 + kj], a_); \
            if (ow_ + V <= out_w) {                                                                          \
                OUT(o_ + ow_, a_);                                                                           \
            } else {                                                                                         \
                OUTN(o_ + ow_, a_, out_w - ow_);                                                             \
            }                                                                                                \
        }                                                                                                    \
    }
// XT the input's element type: INLOAD(p) reads V of them as floats, IN1(p) one; CHANNEL(c) sets up a channel's
// output conversion; AFTER(p, n) the activation over n stored results.
#define CK_DWP_BODY(V, VT, SET1, ZERO, LOADU, STOREU, FMA, MAXV, MINV, R, NV, XT, INLOAD, IN1, YT, OUT, OUTN,      \
                    CHANNEL, AFTER)                                                                          \
    /* Padded row: 1 + out_w + 1 columns, rounded up with V spare for the last vector's reads. */           \
    const size_t wp = (out_w + 2 + 2 * V - 1) / V * V;                                                       \
    for (size_t c = 0; c < cn; c++) {                                                                        \
        const XT *xc = x + c * in_h * in_w;                                                                  \
        YT *yc = y + c * out_h * out_w;                                                                      \
        CHANNEL(c)                                                                                           \
        VT wv[9];                                                                                            \
        for (size_t t = 0; t < 9; t++) wv[t] = SET1(w[c * 9 + t]);                                           \
        const VT bv = SET1(bias ? bias[c] : 0.0f), lov = SET1(lo), hiv = SET1(hi);                           \
        for (size_t oh0 = row_begin; oh0 < row_end; oh0 += CK_DWB_STRIP) {                                   \
            const size_t oh1 = oh0 + CK_DWB_STRIP < row_end ? oh0 + CK_DWB_STRIP : row_end;                  \
            for (size_t r = 0; r < oh1 - oh0 + 2; r++) {                                                     \
                const ptrdiff_t ih = (ptrdiff_t)(oh0 + r) - pad_top;                                         \
                float *dst = scratch + r * wp;                                                               \
                if (ih < 0 || ih >= (ptrdiff_t)in_h) {                                                       \
                    for (size_t j = 0; j < wp; j += V) STOREU(dst + j, ZERO);                                \
                    continue;                                                                                \
                }                                                                                            \
                /* Zero vectors at both ends, then the row over them (input column j at pad_left + j). */  \
                const XT *src = xc + (size_t)ih * in_w;                                                      \
                STOREU(dst, ZERO);                                                                           \
                for (size_t j = (size_t)pad_left + in_w; j < wp; j += V) STOREU(dst + j, ZERO);              \
                size_t j = 0;                                                                                \
                for (; j + V <= in_w; j += V) STOREU(dst + pad_left + j, INLOAD(src + j));                   \
                for (; j < in_w; j++) dst[pad_left + j] = IN1(src + j);                                      \
            }                                                                                                \
            size_t oh = oh0;                                                                                 \
            for (; oh + R <= oh1; oh += R) {                                                                 \
                const float *base = scratch + (oh - oh0) * wp;                                               \
                size_t ow = 0;                                                                               \
                for (; ow + NV * V <= out_w; ow += NV * V) {                                                 \
                    VT acc[R][NV];                                                                           \
                    for (size_t q = 0; q < R; q++)                                                           \
                        for (size_t v = 0; v < NV; v++) acc[q][v] = bv;                                      \
                    for (size_t r = 0; r < R + 2; r++)                                                       \
                        for (size_t kj = 0; kj < 3; kj++)                                                    \
                            for (size_t v = 0; v < NV; v++) {                                                \
                                const VT in = LOADU(base + r * wp + ow + v * V + kj);                        \
                                for (size_t q = 0; q < R; q++)                                               \
                                    if (r >= q && r - q < 3) acc[q][v] = FMA(in, wv[(r - q) * 3 + kj], acc[q][v]); \
                            }                                                                                \
                    for (size_t q = 0; q < R; q++)                                                           \
                        for (size_t v = 0; v < NV; v++) OUT(yc + (oh + q) * out_w + ow + v * V, acc[q][v]);  \
                }                                                                                            \
                for (size_t q = 0; q < R; q++) CK_DWP_ROW(oh + q, ow, V, VT, FMA, LOADU, YT, OUT, OUTN)      \
            }                                                                                                \
            for (; oh < oh1; oh++) CK_DWP_ROW(oh, 0, V, VT, FMA, LOADU, YT, OUT, OUTN)                       \
            AFTER(yc + oh0 * out_w, (oh1 - oh0) * out_w);                                                    \
        }                                                                                                    \
    }

#define CK_DWP_ARGS                                                                                          \
    (const float *x, const float *w, const float *bias, float *y, size_t cn, size_t in_h, size_t in_w,          \
     ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_w, size_t row_begin, size_t row_end, float lo, float hi,    \
     int after, float *scratch, size_t out_h)
#define CKP_OUT(p, a) _mm256_storeu_ps((p), _mm256_min_ps(hiv, _mm256_max_ps(lov, (a))))
#define CKP_OUTN(p, a, n)                                                                                    \
    {                                                                                                        \
        float t_[8];                                                                                         \
        _mm256_storeu_ps(t_, _mm256_min_ps(hiv, _mm256_max_ps(lov, (a))));                                   \
        for (size_t q_ = 0; q_ < (n); q_++) (p)[q_] = t_[q_];                                                \
    }
#define CKP_IN1(p) (*(p))
#define CKP_CHANNEL(c)
#define CKP_AFTER(p, n) ck_depthwise_after((p), (n), after)
__attribute__((target("avx2,fma"))) static void dwp256 CK_DWP_ARGS {
    CK_DWP_BODY(8, __m256, _mm256_set1_ps, _mm256_setzero_ps(), _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps,
                _mm256_max_ps, _mm256_min_ps, 2, 2, float, _mm256_loadu_ps, CKP_IN1, float, CKP_OUT, CKP_OUTN,
                CKP_CHANNEL, CKP_AFTER)
}

// Whether a shape takes the per-channel kernel: 3x3, stride 1, rows of 48 and more (eight lanes on either ISA:
// sixteen-wide vectors over 56-wide rows waste a third on partial vectors). Measured in C, one thread (Zen 4):
// 32 channels at 112x112 160 -> 120 us, 144 at 56x56 183 -> 157; at 28x28 (96 channels) 38 -> 47, so narrower
// rows stay with channels in lanes.
static int ck_dw_planes(size_t k, size_t s, ptrdiff_t pad_left, size_t in_w, size_t out_w) {
    return s == 1 && k == 3 && pad_left >= 0 && pad_left <= 1 && out_w >= 48 && (size_t)pad_left + in_w <= out_w + 2;
}

// AVX-512 blocks 3x3 windows over wide rows in eight lanes too: the sixteen-lane kernel's transposes read and write
// sixteen planes at a time and its strip is twice the size, and on MobileNetV2's 112-, 56- and 28-wide layers it
// ran 10-20% slower (32 channels at 112x112: 0.218 -> 0.187 ms; 144 at 56x56: 0.232 -> 0.194; `inference profile`,
// one thread, Zen 4). From 14 wide, and for 5x5 windows (EfficientNet's 240 channels at 28x28: 0.237 -> 0.271 ms
// in eight), sixteen stay faster.
size_t ck_depthwise_blocked_lanes(size_t k, size_t out_w) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') return k == 3 && out_w >= 20 ? 8 : 16;
    return isa[0] == 'a' ? 8 : 0;
}

int ck_depthwise_blocked(const float *x, const float *w, const float *bias, float *y, size_t c_begin, size_t c_end,
                         size_t in_h, size_t in_w, size_t k, size_t s, ptrdiff_t pad_top, ptrdiff_t pad_left,
                         size_t out_h, size_t out_w, size_t row_begin, size_t row_end, float lo, float hi, int after,
                         float *scratch) {
    const size_t lanes = ck_depthwise_blocked_lanes(k, out_w);
    if (lanes == 0) return 0;
    const int wide = lanes == 16;
    if ((k != 3 && k != 5 && k != 7) || (s != 1 && s != 2) || scratch == NULL) return 0;
    if (row_end > out_h) row_end = out_h;
    if (ck_dw_planes(k, s, pad_left, in_w, out_w)) {
        const float *xc = x + c_begin * in_h * in_w, *wc = w + c_begin * 9, *bc = bias ? bias + c_begin : NULL;
        float *yc = y + c_begin * out_h * out_w;
        dwp256(xc, wc, bc, yc, c_end - c_begin, in_h, in_w, pad_top, pad_left, out_w, row_begin, row_end, lo, hi, after,
               scratch, out_h);
        return 1;
    }
    const size_t V = wide ? 16 : 8;
    for (size_t c = c_begin; c < c_end; c += V) {
        const size_t cn = c_end - c < V ? c_end - c : V;
        const float *xc = x + c * in_h * in_w, *wc = w + c * k * k, *bc = bias ? bias + c : NULL;
        float *yc = y + c * out_h * out_w;
        if (wide) {
            if (k == 3) dwb512_3(xc, wc, bc, yc, cn, in_h, in_w, s, pad_top, pad_left, out_h, out_w, row_begin, row_end, lo, hi, after, scratch, 0, 0, 0);
            else if (k == 5) dwb512_5(xc, wc, bc, yc, cn, in_h, in_w, s, pad_top, pad_left, out_h, out_w, row_begin, row_end, lo, hi, after, scratch, 0, 0, 0);
            else dwb512_7(xc, wc, bc, yc, cn, in_h, in_w, s, pad_top, pad_left, out_h, out_w, row_begin, row_end, lo, hi, after, scratch, 0, 0, 0);
        } else {
            if (k == 3) dwb256_3(xc, wc, bc, yc, cn, in_h, in_w, s, pad_top, pad_left, out_h, out_w, row_begin, row_end, lo, hi, after, scratch, 0, 0, 0);
            else if (k == 5) dwb256_5(xc, wc, bc, yc, cn, in_h, in_w, s, pad_top, pad_left, out_h, out_w, row_begin, row_end, lo, hi, after, scratch, 0, 0, 0);
            else dwb256_7(xc, wc, bc, yc, cn, in_h, in_w, s, pad_top, pad_left, out_h, out_w, row_begin, row_end, lo, hi, after, scratch, 0, 0, 0);
        }
    }
    return 1;
}


// Channels per block of ck_depthwise_nhwc: the vector width (16 with AVX-512, 8 with AVX2), 0 without AVX2. With
// either side channels last there is no transpose on that side, so the wide-row exception above does not apply.
size_t ck_depthwise_nhwc_lanes(void) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') return 16;
    return isa[0] == 'a' ? 8 : 0;
}

int ck_depthwise_nhwc(const float *x, const float *w, const float *bias, float *y, size_t channels, size_t in_h,
                      size_t in_w, size_t k, size_t s, ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h,
                      size_t out_w, size_t row_begin, size_t row_end, float lo, float hi, int after, int in_nhwc,
                      int out_nhwc, float *scratch) {
    const size_t lanes = ck_depthwise_nhwc_lanes();
    if (lanes == 0 || (k != 3 && k != 5 && k != 7) || (s != 1 && s != 2) || scratch == NULL) return 0;
    if (row_end > out_h) row_end = out_h;
    // A strip of rows for every channel block before the next strip: the strip's input rows (all channels, adjacent
    // when channels last) are read once from memory and then from L2 by each block.
    for (size_t oh0 = row_begin; oh0 < row_end; oh0 += CK_DWB_STRIP) {
        const size_t oh1 = oh0 + CK_DWB_STRIP < row_end ? oh0 + CK_DWB_STRIP : row_end;
        for (size_t c = 0; c < channels; c += lanes) {
            const size_t cn = channels - c < lanes ? channels - c : lanes;
            const float *xc = x + (in_nhwc ? c : c * in_h * in_w), *wc = w + c * k * k, *bc = bias ? bias + c : NULL;
            float *yc = y + (out_nhwc ? c : c * out_h * out_w);
#define CKN_CALL(fn)                                                                                         \
    fn(xc, wc, bc, yc, cn, in_h, in_w, s, pad_top, pad_left, out_h, out_w, oh0, oh1, lo, hi, after, scratch, channels, \
       in_nhwc, out_nhwc)
            if (lanes == 16) {
                if (k == 3) CKN_CALL(dwb512_3);
                else if (k == 5) CKN_CALL(dwb512_5);
                else CKN_CALL(dwb512_7);
            } else {
                if (k == 3) CKN_CALL(dwb256_3);
                else if (k == 5) CKN_CALL(dwb256_5);
                else CKN_CALL(dwb256_7);
            }
#undef CKN_CALL
        }
    }
    return 1;
}

// ---- The integer depthwise convolution (QLinearConv, one filter per channel) through the same bodies: bytes
// enter the strip as exact floats (x - x_zero), the weights as (w - w_zero), so every product (at most 255·255)
// and sum (at most 49 of them, under 3.2 million) is an integer below 2^24 and the float multiply-adds are exact
// in any order; each channel's results, back in their plane's order, are requantized (Requant.h) and stored as
// bytes. No float copy of the image, no float output and no pass over either.
#include "Requant.h"

// The integer bodies read and write planes only: the channels-last paths (in_nhwc, out_nhwc) are compiled out.
#define CK_NO_NHWC                                                                                           \
    const int in_nhwc = 0, out_nhwc = 0;                                                                     \
    const size_t cs = 0;
#define CK_NO_POSSTORE(off, v, n) ((void)(off), (void)(v), (void)(n))

// Input bytes as floats: (b ^ flip) - zero_adj is b - x_zero for uint8, (int8)b - x_zero for int8.
#define CKQ512_IN(p) _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(p)), flipv))), zadj)
#define CKQ512_INN(p, n) _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_xor_si128(_mm_maskz_loadu_epi8((__mmask16)((1u << (n)) - 1u), (const void *)(p)), flipv))), zadj)
// Each pixel's V sums requantized with the block's per-lane multipliers and biases (int32 results carried in float
// vectors through the transposes), then each channel's values narrowed to bytes.
#define CKQ512_FINISH(a)                                                                                     \
    _mm512_castsi512_ps(ck_requant_lanes16_avx512(_mm512_cvtps_epi32(a), qbv, qmf, qmd, zero, low, high))
#define CKQ512_OUT(l, off, v) _mm_storeu_si128((__m128i *)(void *)(y + (off)), _mm512_cvtepi32_epi8(_mm512_castps_si512(v)))
#define CKQ512_OUTN(l, off, v, n)                                                                           \
    _mm_mask_storeu_epi8(y + (off), (__mmask16)((1u << (n)) - 1u), _mm512_cvtepi32_epi8(_mm512_castps_si512(v)))
#define CKQ512_BODY(K)                                                                                       \
    CK_DWB_BODY(16, __m512, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_max_ps,  \
                _mm512_min_ps, _mm512_setzero_ps(), uint8_t, CKQ512_IN, CKQ512_INN, CKQ512_FINISH, CKQ512_OUT,    \
                CKQ512_OUTN, CK_NO_POSSTORE, tr16, K)

// n (<= 8) bytes at p as eight lanes, without a library call (a memcpy of n bytes was a call, and its byte stores
// stalled the load after it: a third of the layer's time): the eight bytes ending at p + n shifted down where the
// row holds eight before that point (`back`), else assembled byte by byte.
__attribute__((target("avx2"), always_inline)) static inline __m128i ckq_bytes8(const uint8_t *p, size_t n, int back) {
    if (n == 8) return _mm_loadl_epi64((const __m128i *)(const void *)p);
    if (back) {
        uint64_t bits;
        memcpy(&bits, p + n - 8, 8);
        return _mm_srl_epi64(_mm_cvtsi64_si128((long long)bits), _mm_cvtsi32_si128((int)(8 * (8 - n))));
    }
    uint64_t bits = 0;
    for (size_t q = 0; q < 7; q++)
        if (q < n) bits |= (uint64_t)p[q] << (8 * q);
    return _mm_cvtsi64_si128((long long)bits);
}
__attribute__((target("avx2"), always_inline)) static inline __m256 ckq256_in(const uint8_t *p, size_t n, int back,
                                                                               __m128i flipv, __m256 zadj) {
    const __m128i b = _mm_xor_si128(ckq_bytes8(p, n, back), flipv);
    return _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)), zadj);
}
// The first n (<= 8) of eight bytes to p: overlapping fixed-size stores, no library call.
__attribute__((target("avx2"), always_inline)) static inline void ckq256_out(uint8_t *p, size_t n, __m128i bytes) {
    uint64_t bits = (uint64_t)_mm_cvtsi128_si64(bytes);
    if (n == 8) {
        memcpy(p, &bits, 8);
    } else if (n >= 4) {
        const uint32_t low = (uint32_t)bits, high = (uint32_t)(bits >> (8 * (n - 4)));
        memcpy(p, &low, 4);
        memcpy(p + n - 4, &high, 4);
    } else {
        for (size_t q = 0; q < 3; q++)
            if (q < n) p[q] = (uint8_t)(bits >> (8 * q));
    }
}
#define CKQ256_IN(p) ckq256_in((p), 8, 0, flipv, zadj)
#define CKQ256_INN(p, n) ckq256_in((p), (n), (size_t)(j - pad_left) + (n) >= 8, flipv, zadj)
#define CKQ256_FINISH(a)                                                                                     \
    _mm256_castsi256_ps(ck_requant_lanes8_avx2(_mm256_cvtps_epi32(a), qbv, qmf, qmd, zero, low, high))
#define CKQ256_BYTES(v)                                                                                      \
    (y_signed ? _mm_packs_epi16(ckq256_words(v), ckq256_words(v)) : _mm_packus_epi16(ckq256_words(v), ckq256_words(v)))
#define CKQ256_OUTN(l, off, v, n) ckq256_out(y + (off), (n), CKQ256_BYTES(v))
#define CKQ256_OUT(l, off, v) CKQ256_OUTN(l, off, v, 8)
#define CKQ256_BODY(K)                                                                                       \
    CK_DWB_BODY(8, __m256, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_max_ps,   \
                _mm256_min_ps, _mm256_setzero_ps(), uint8_t, CKQ256_IN, CKQ256_INN, CKQ256_FINISH, CKQ256_OUT,    \
                CKQ256_OUTN, CK_NO_POSSTORE, tr8, K)
__attribute__((target("avx2"), always_inline)) static inline __m128i ckq256_words(__m256 v) {
    const __m256i q = _mm256_castps_si256(v);
    return _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
}

// The float kernels' arguments (x and y bytes, no bias, no activation) and the requantization's.
#define CKQ_ARGS                                                                                             \
    (const uint8_t *x, const float *w, uint8_t *y, size_t cn, size_t in_h, size_t in_w, size_t s,                  \
     ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w, size_t row_begin, size_t row_end,         \
     float *scratch, int x_signed, int32_t x_zero, const double *qm, const int32_t *qbias, double zero, double low, \
     double high, int y_signed)
#define CKQ_PROLOGUE(SET1, V)                                                                                \
    CK_NO_NHWC                                                                                               \
    const float *bias = NULL;                                                                                \
    const float lo = -__builtin_inff(), hi = __builtin_inff();                                               \
    const int after = 0;                                                                                     \
    const __m128i flipv = _mm_set1_epi8(x_signed ? (char)0x80 : 0);                                          \
    const __typeof__(SET1(0.0f)) zadj = SET1(x_signed ? (float)(x_zero + 128) : (float)x_zero);              \
    /* Per lane (channel): the multiplier as float and double, the bias; lanes past cn get zeros. */          \
    float qmf_lanes[V];                                                                                      \
    double qmd_lanes[V];                                                                                     \
    int32_t qb_lanes[V];                                                                                     \
    for (size_t l = 0; l < V; l++) {                                                                         \
        qmd_lanes[l] = l < cn ? qm[l] : 0.0;                                                                 \
        qmf_lanes[l] = (float)qmd_lanes[l];                                                                  \
        qb_lanes[l] = l < cn && qbias ? qbias[l] : 0;                                                        \
    }
#define CKQ512_SETUP                                                                                         \
    (void)y_signed;                                                                                          \
    CKQ_PROLOGUE(_mm512_set1_ps, 16)                                                                         \
    const __m512 qmf = _mm512_loadu_ps(qmf_lanes);                                                           \
    const __m512i qbv = _mm512_loadu_si512((const void *)qb_lanes);                                          \
    const __m512d qmd[2] = {_mm512_loadu_pd(qmd_lanes), _mm512_loadu_pd(qmd_lanes + 8)};
#define CKQ256_SETUP                                                                                         \
    CKQ_PROLOGUE(_mm256_set1_ps, 8)                                                                          \
    const __m256 qmf = _mm256_loadu_ps(qmf_lanes);                                                           \
    const __m256i qbv = _mm256_loadu_si256((const __m256i *)(const void *)qb_lanes);                         \
    const __m256d qmd[2] = {_mm256_loadu_pd(qmd_lanes), _mm256_loadu_pd(qmd_lanes + 4)};
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma"))) static void dwq512_3 CKQ_ARGS { CKQ512_SETUP CK_DWB_STRIDES(CKQ512_BODY(3)) }
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma"))) static void dwq512_5 CKQ_ARGS { CKQ512_SETUP CK_DWB_STRIDES(CKQ512_BODY(5)) }
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma"))) static void dwq512_7 CKQ_ARGS { CKQ512_SETUP CK_DWB_STRIDES(CKQ512_BODY(7)) }
__attribute__((target("avx2,fma"))) static void dwq256_3 CKQ_ARGS { CKQ256_SETUP CK_DWB_STRIDES(CKQ256_BODY(3)) }
__attribute__((target("avx2,fma"))) static void dwq256_5 CKQ_ARGS { CKQ256_SETUP CK_DWB_STRIDES(CKQ256_BODY(5)) }
__attribute__((target("avx2,fma"))) static void dwq256_7 CKQ_ARGS { CKQ256_SETUP CK_DWB_STRIDES(CKQ256_BODY(7)) }

// 3x3 stride-1 windows over wide rows, one channel at a time (dwp256's body): rows converted on their copy into the
// scratch, each vector of a channel's outputs requantized with that channel's multiplier and bias.
#define CKQP_IN1(p) ((float)((int32_t)(*(p) ^ (uint8_t)(x_signed ? 0x80 : 0))) - zero_adj)
#define CKQP_BYTES(a) ck_requant8_avx2(_mm256_cvtps_epi32(a), cbias, cmult, zero, low, high, y_signed)
#define CKQP_OUT(p, a) _mm_storel_epi64((__m128i *)(void *)(p), CKQP_BYTES(a))
#define CKQP_OUTN(p, a, n) ckq256_out((p), (n), CKQP_BYTES(a))
#define CKQP_CHANNEL(c)                                                                                      \
    const double cmult = qm[c];                                                                              \
    const int32_t cbias = qbias ? qbias[c] : 0;
#define CKQP_AFTER(p, n)
__attribute__((target("avx2,fma"))) static void dwqp256(const uint8_t *x, const float *w, uint8_t *y, size_t cn,
                                                        size_t in_h, size_t in_w, ptrdiff_t pad_top, ptrdiff_t pad_left,
                                                        size_t out_w, size_t row_begin, size_t row_end, float *scratch,
                                                        size_t out_h, int x_signed, int32_t x_zero, const double *qm,
                                                        const int32_t *qbias, double zero, double low, double high,
                                                        int y_signed) {
    const float *bias = NULL;
    const float lo = -__builtin_inff(), hi = __builtin_inff();
    const __m128i flipv = _mm_set1_epi8(x_signed ? (char)0x80 : 0);
    const float zero_adj = x_signed ? (float)(x_zero + 128) : (float)x_zero;
    const __m256 zadj = _mm256_set1_ps(zero_adj);
    (void)lo;
    (void)hi;
    CK_DWP_BODY(8, __m256, _mm256_set1_ps, _mm256_setzero_ps(), _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps,
                _mm256_max_ps, _mm256_min_ps, 2, 2, uint8_t, CKQ256_IN, CKQP_IN1, uint8_t, CKQP_OUT, CKQP_OUTN,
                CKQP_CHANNEL, CKQP_AFTER)
}

// Sixteen lanes for every shape with AVX-512 (the requantization per output, not the transposes, is the cost), eight
// with AVX2 (and on AVX-512 machines without BW or DQ).
size_t ck_depthwise_blocked_q_lanes(void) {
    const char *isa = ck_kernel_isa();
    const uint32_t needed = ck_feature_avx512f | ck_feature_avx512bw | ck_feature_avx512vl | ck_feature_avx512dq;
    if (isa[3] == '5' && (ck_cpu_features() & needed) == needed) return 16;
    return isa[0] == 'a' ? 8 : 0;
}

int ck_depthwise_blocked_q(const uint8_t *x, int x_signed, int32_t x_zero, const float *w, const double *multiplier,
                           const int32_t *bias, double zero, double low, double high, int y_signed, uint8_t *y,
                           size_t c_begin, size_t c_end, size_t in_h, size_t in_w, size_t k, size_t s,
                           ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w, size_t row_begin,
                           size_t row_end, float *scratch) {
    const size_t lanes = ck_depthwise_blocked_q_lanes();
    if (lanes == 0 || (k != 3 && k != 5 && k != 7) || (s != 1 && s != 2) || scratch == NULL) return 0;
    if (row_end > out_h) row_end = out_h;
    if (lanes == 8 && ck_dw_planes(k, s, pad_left, in_w, out_w)) {
        dwqp256(x + c_begin * in_h * in_w, w + c_begin * 9, y + c_begin * out_h * out_w, c_end - c_begin, in_h, in_w,
                pad_top, pad_left, out_w, row_begin, row_end, scratch, out_h, x_signed, x_zero, multiplier + c_begin,
                bias ? bias + c_begin : NULL, zero, low, high, y_signed);
        return 1;
    }
    for (size_t c = c_begin; c < c_end; c += lanes) {
        const size_t cn = c_end - c < lanes ? c_end - c : lanes;
        const uint8_t *xc = x + c * in_h * in_w;
        const float *wc = w + c * k * k;
        const int32_t *bc = bias ? bias + c : NULL;
        uint8_t *yc = y + c * out_h * out_w;
#define CKQ_CALL(fn)                                                                                         \
    fn(xc, wc, yc, cn, in_h, in_w, s, pad_top, pad_left, out_h, out_w, row_begin, row_end, scratch, x_signed, x_zero, \
       multiplier + c, bc, zero, low, high, y_signed)
        if (lanes == 16) {
            if (k == 3) CKQ_CALL(dwq512_3);
            else if (k == 5) CKQ_CALL(dwq512_5);
            else CKQ_CALL(dwq512_7);
        } else {
            if (k == 3) CKQ_CALL(dwq256_3);
            else if (k == 5) CKQ_CALL(dwq256_5);
            else CKQ_CALL(dwq256_7);
        }
#undef CKQ_CALL
    }
    return 1;
}

// ---- QDQ depthwise (`_QDQDepthwiseConv`, planned by QuantizedFusion from DequantizeLinear → depthwise Conv →
// QuantizeLinear): the float kernel with the dequantization folded into its input and the quantization into its
// output. Bytes enter the strip as (x - x_zero) · x_scale (ck_dequantize_8's two roundings), the float sums and
// clamp are the float kernel's, and each channel's results leave as clamp(round_half_even(y / y_scale) + y_zero)
// (ck_quantize_f32's operations): the three nodes' values without the float tensors between them.
#define CKD_ARGS                                                                                             \
    (const uint8_t *x, const float *w, const float *bias, uint8_t *y, size_t cn, size_t in_h, size_t in_w, size_t s, \
     ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w, size_t row_begin, size_t row_end, float lo, \
     float hi, float *scratch, int x_signed, int32_t x_zero, float x_scale, float y_zero, float y_scale,          \
     float q_low, float q_high, int y_signed)
#define CKD_PROLOGUE(SET1)                                                                                   \
    CK_NO_NHWC                                                                                               \
    const int after = 0;                                                                                     \
    const __m128i flipv = _mm_set1_epi8(x_signed ? (char)0x80 : 0);                                          \
    const __typeof__(SET1(0.0f)) zadj = SET1(x_signed ? (float)(x_zero + 128) : (float)x_zero);              \
    const __typeof__(SET1(0.0f)) xsv = SET1(x_scale), ysv = SET1(y_scale), yzv = SET1(y_zero);                \
    const __typeof__(SET1(0.0f)) qlv = SET1(q_low), qhv = SET1(q_high);

#define CKD512_IN(p) _mm512_mul_ps(CKQ512_IN(p), xsv)
#define CKD512_INN(p, n) _mm512_mul_ps(CKQ512_INN(p, n), xsv)
// max(v, low) takes `low` for a NaN (the second operand wins on unordered), as ck_quantize_f32.
#define CKD512_Q(v)                                                                                          \
    _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_min_ps(                                                   \
        _mm512_max_ps(_mm512_add_ps(_mm512_roundscale_ps(_mm512_div_ps((v), ysv),                            \
                                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),     \
                                    yzv),                                                                    \
                      qlv),                                                                                  \
        qhv)))
#define CKD512_OUT(l, off, v) _mm_storeu_si128((__m128i *)(void *)(y + (off)), CKD512_Q(v))
#define CKD512_OUTN(l, off, v, n) _mm_mask_storeu_epi8(y + (off), (__mmask16)((1u << (n)) - 1u), CKD512_Q(v))
#define CKD512_BODY(K)                                                                                       \
    CK_DWB_BODY(16, __m512, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_max_ps,  \
                _mm512_min_ps, _mm512_setzero_ps(), uint8_t, CKD512_IN, CKD512_INN, CK512_CLAMP, CKD512_OUT,      \
                CKD512_OUTN, CK_NO_POSSTORE, tr16, K)

// Eight floats quantized to bytes (the low 8 of the result) as quantize_avx2 does.
__attribute__((target("avx2"), always_inline)) static inline __m128i ckd256_q(__m256 v, __m256 ysv, __m256 yzv,
                                                                               __m256 qlv, __m256 qhv, int y_signed) {
    __m256 r = _mm256_round_ps(_mm256_div_ps(v, ysv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r, yzv), qlv), qhv);
    const __m256i q = _mm256_cvtps_epi32(r);
    const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    return y_signed ? _mm_packs_epi16(words, words) : _mm_packus_epi16(words, words);
}
#define CKD256_IN(p) _mm256_mul_ps(CKQ256_IN(p), xsv)
#define CKD256_INN(p, n) _mm256_mul_ps(CKQ256_INN(p, n), xsv)
#define CKD256_OUTN(l, off, v, n) ckq256_out(y + (off), (n), ckd256_q((v), ysv, yzv, qlv, qhv, y_signed))
#define CKD256_OUT(l, off, v) CKD256_OUTN(l, off, v, 8)
#define CKD256_BODY(K)                                                                                       \
    CK_DWB_BODY(8, __m256, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_max_ps,   \
                _mm256_min_ps, _mm256_setzero_ps(), uint8_t, CKD256_IN, CKD256_INN, CK256_CLAMP, CKD256_OUT,      \
                CKD256_OUTN, CK_NO_POSSTORE, tr8, K)

__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))) static void dwd512_3 CKD_ARGS { CKD_PROLOGUE(_mm512_set1_ps) CK_DWB_STRIDES(CKD512_BODY(3)) }
__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))) static void dwd512_5 CKD_ARGS { CKD_PROLOGUE(_mm512_set1_ps) CK_DWB_STRIDES(CKD512_BODY(5)) }
__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))) static void dwd512_7 CKD_ARGS { CKD_PROLOGUE(_mm512_set1_ps) CK_DWB_STRIDES(CKD512_BODY(7)) }
__attribute__((target("avx2,fma"))) static void dwd256_3 CKD_ARGS { CKD_PROLOGUE(_mm256_set1_ps) CK_DWB_STRIDES(CKD256_BODY(3)) }
__attribute__((target("avx2,fma"))) static void dwd256_5 CKD_ARGS { CKD_PROLOGUE(_mm256_set1_ps) CK_DWB_STRIDES(CKD256_BODY(5)) }
__attribute__((target("avx2,fma"))) static void dwd256_7 CKD_ARGS { CKD_PROLOGUE(_mm256_set1_ps) CK_DWB_STRIDES(CKD256_BODY(7)) }

// 3x3 stride-1 windows over wide rows one channel at a time (dwp256's body), rows dequantized on their copy and each
// vector of outputs clamped and quantized.
#define CKDP_IN1(p) (CKQP_IN1(p) * x_scale)
#define CKDP_BYTES(a) ckd256_q(_mm256_min_ps(hiv, _mm256_max_ps(lov, (a))), ysv, yzv, qlv, qhv, y_signed)
#define CKDP_OUT(p, a) _mm_storel_epi64((__m128i *)(void *)(p), CKDP_BYTES(a))
#define CKDP_OUTN(p, a, n) ckq256_out((p), (n), CKDP_BYTES(a))
__attribute__((target("avx2,fma"))) static void dwdp256 CKD_ARGS {
    CKD_PROLOGUE(_mm256_set1_ps)
    const float zero_adj = x_signed ? (float)(x_zero + 128) : (float)x_zero;
    (void)s;
    (void)after;
    CK_DWP_BODY(8, __m256, _mm256_set1_ps, _mm256_setzero_ps(), _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps,
                _mm256_max_ps, _mm256_min_ps, 2, 2, uint8_t, CKD256_IN, CKDP_IN1, uint8_t, CKDP_OUT, CKDP_OUTN,
                CKP_CHANNEL, CKQP_AFTER)
}

int ck_depthwise_blocked_dq(const uint8_t *x, int x_signed, int32_t x_zero, float x_scale, const float *w,
                            const float *bias, uint8_t *y, int y_signed, float y_zero, float y_scale, float q_low,
                            float q_high, size_t c_begin, size_t c_end, size_t in_h, size_t in_w, size_t k, size_t s,
                            ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w, size_t row_begin,
                            size_t row_end, float lo, float hi, float *scratch) {
    size_t lanes = ck_depthwise_blocked_lanes(k, out_w);
    // Sixteen lanes store bytes with AVX-512 BW; without it eight (the same sums in the same order either way).
    if (lanes == 16 && (ck_cpu_features() & ck_feature_avx512bw) == 0) lanes = 8;
    if (lanes == 0 || (k != 3 && k != 5 && k != 7) || (s != 1 && s != 2) || scratch == NULL) return 0;
    if (row_end > out_h) row_end = out_h;
    if (ck_dw_planes(k, s, pad_left, in_w, out_w)) {
        dwdp256(x + c_begin * in_h * in_w, w + c_begin * 9, bias ? bias + c_begin : NULL, y + c_begin * out_h * out_w,
                c_end - c_begin, in_h, in_w, s, pad_top, pad_left, out_h, out_w, row_begin, row_end, lo, hi, scratch,
                x_signed, x_zero, x_scale, y_zero, y_scale, q_low, q_high, y_signed);
        return 1;
    }
    for (size_t c = c_begin; c < c_end; c += lanes) {
        const size_t cn = c_end - c < lanes ? c_end - c : lanes;
        const uint8_t *xc = x + c * in_h * in_w;
        const float *wc = w + c * k * k, *bc = bias ? bias + c : NULL;
        uint8_t *yc = y + c * out_h * out_w;
#define CKD_CALL(fn)                                                                                         \
    fn(xc, wc, bc, yc, cn, in_h, in_w, s, pad_top, pad_left, out_h, out_w, row_begin, row_end, lo, hi, scratch,     \
       x_signed, x_zero, x_scale, y_zero, y_scale, q_low, q_high, y_signed)
        if (lanes == 16) {
            if (k == 3) CKD_CALL(dwd512_3);
            else if (k == 5) CKD_CALL(dwd512_5);
            else CKD_CALL(dwd512_7);
        } else {
            if (k == 3) CKD_CALL(dwd256_3);
            else if (k == 5) CKD_CALL(dwd256_5);
            else CKD_CALL(dwd256_7);
        }
#undef CKD_CALL
    }
    return 1;
}

// The QDQ depthwise layer reading or writing channels last ([H][W][C] bytes per image) inside int8 chains
// (`QuantizedChannelsLast`): the same body, sums and roundings as ck_depthwise_blocked_dq's sixteen-lane form
// (its bytes), with the strip filled by one 16-byte load per position and each position's results stored as bytes.
#define CKDN_ARGS                                                                                            \
    (const uint8_t *x, const float *w, const float *bias, uint8_t *y, size_t cn, size_t in_h, size_t in_w, size_t s, \
     ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w, size_t row_begin, size_t row_end, float lo, \
     float hi, float *scratch, int x_signed, int32_t x_zero, float x_scale, float y_zero, float y_scale,          \
     float q_low, float q_high, int y_signed, size_t cs, int in_nhwc, int out_nhwc)
#define CKDN_PROLOGUE                                                                                        \
    const int after = 0;                                                                                     \
    (void)y_signed;                                                                                          \
    const __m128i flipv = _mm_set1_epi8(x_signed ? (char)0x80 : 0);                                          \
    const __m512 zadj = _mm512_set1_ps(x_signed ? (float)(x_zero + 128) : (float)x_zero);                    \
    const __m512 xsv = _mm512_set1_ps(x_scale), ysv = _mm512_set1_ps(y_scale), yzv = _mm512_set1_ps(y_zero);  \
    const __m512 qlv = _mm512_set1_ps(q_low), qhv = _mm512_set1_ps(q_high);
#define CKD512_POSSTORE(off, v, n) _mm_mask_storeu_epi8(y + (off), (__mmask16)((1u << (n)) - 1u), CKD512_Q(v))
#define CKDN512_BODY(K)                                                                                      \
    CK_DWB_BODY(16, __m512, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_max_ps,  \
                _mm512_min_ps, _mm512_setzero_ps(), uint8_t, CKD512_IN, CKD512_INN, CK512_CLAMP, CKD512_OUT,      \
                CKD512_OUTN, CKD512_POSSTORE, tr16, K)
__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))) static void dwdn512_3 CKDN_ARGS { CKDN_PROLOGUE CK_DWB_STRIDES(CKDN512_BODY(3)) }
__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))) static void dwdn512_5 CKDN_ARGS { CKDN_PROLOGUE CK_DWB_STRIDES(CKDN512_BODY(5)) }
__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))) static void dwdn512_7 CKDN_ARGS { CKDN_PROLOGUE CK_DWB_STRIDES(CKDN512_BODY(7)) }

int ck_depthwise_dq_nhwc_available(void) {
    return ck_depthwise_nhwc_lanes() == 16 && (ck_cpu_features() & ck_feature_avx512bw) != 0;
}

int ck_depthwise_dq_nhwc(const uint8_t *x, int x_signed, int32_t x_zero, float x_scale, const float *w,
                         const float *bias, uint8_t *y, int y_signed, float y_zero, float y_scale, float q_low,
                         float q_high, size_t channels, size_t c_begin, size_t c_end, size_t in_h, size_t in_w,
                         size_t k, size_t s, ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w,
                         size_t row_begin, size_t row_end, float lo, float hi, int in_nhwc, int out_nhwc,
                         float *scratch) {
    if (!ck_depthwise_dq_nhwc_available() || (k != 3 && k != 5 && k != 7) || (s != 1 && s != 2) || scratch == NULL)
        return 0;
    if (row_end > out_h) row_end = out_h;
    if (c_end > channels) c_end = channels;
    // A strip of rows for every channel block before the next (as ck_depthwise_nhwc).
    for (size_t oh0 = row_begin; oh0 < row_end; oh0 += CK_DWB_STRIP) {
        const size_t oh1 = oh0 + CK_DWB_STRIP < row_end ? oh0 + CK_DWB_STRIP : row_end;
        for (size_t c = c_begin; c < c_end; c += 16) {
            const size_t cn = c_end - c < 16 ? c_end - c : 16;
            const uint8_t *xc = x + (in_nhwc ? c : c * in_h * in_w);
            const float *wc = w + c * k * k, *bc = bias ? bias + c : NULL;
            uint8_t *yc = y + (out_nhwc ? c : c * out_h * out_w);
#define CKDN_CALL(fn)                                                                                        \
    fn(xc, wc, bc, yc, cn, in_h, in_w, s, pad_top, pad_left, out_h, out_w, oh0, oh1, lo, hi, scratch, x_signed,    \
       x_zero, x_scale, y_zero, y_scale, q_low, q_high, y_signed, channels, in_nhwc, out_nhwc)
            if (k == 3) CKDN_CALL(dwdn512_3);
            else if (k == 5) CKDN_CALL(dwdn512_5);
            else CKDN_CALL(dwdn512_7);
#undef CKDN_CALL
        }
    }
    return 1;
}
