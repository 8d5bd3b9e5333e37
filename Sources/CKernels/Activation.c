// Elementwise activations over contiguous float buffers.
#include "CKernels.h"
#include <immintrin.h>
#include <math.h>

void ck_relu(const float *x, float *y, size_t count) {
    for (size_t i = 0; i < count; i++) {
        const float v = x[i];
        y[i] = v > 0.0f ? v : (v != v ? v : 0.0f);
    }
}

// Vectorizable float32 math for the hot elementwise operators. Each body is compiled for AVX-512, AVX2 and
// generic x86-64 and picked at run time; accuracy is within a few ulp of the correctly rounded result.

// exp(x) = 2^n · p(r), r = x - n·ln2 in [-ln2/2, ln2/2], p the degree-7 Taylor polynomial (truncation error
// 5e-9 relative, below float rounding; degree 6 left 1.2e-7). Returns p(r) and sets *n.
// x = n·ln2 + r with n an integer and r in [-ln2/2, ln2/2] (Cody-Waite: ln2 in two parts, n·ln2_hi exact).
static inline __attribute__((always_inline)) float reduce_ln2(float x, float *n_out) {
    const float n = __builtin_roundevenf(x * 1.44269504088896341f);
    const float r = x - n * 0.693145751953125f;
    *n_out = n;
    return r - n * 1.428606765330187045e-06f;
}

static inline __attribute__((always_inline)) float exp_reduced(float x, float *n_out) {
    float n;
    const float r = reduce_ln2(x, &n);
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    *n_out = n;
    return p;
}

static inline __attribute__((always_inline)) float exp_body(float x) {
    // Above ln(FLT_MAX) = 88.7228 the result overflows to +inf (89 keeps n at 128, where p·2^128 rounds to inf).
    x = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : x);
    float n;
    const float p = exp_reduced(x, &n);
    // Normal results (n >= -125): p·2^n, scaled in two steps so n = 128 stays representable.
    const int ni = (int)n;
    const int nn = ni < -125 ? -125 : ni;
    const int half = nn / 2;
    union { unsigned u; float f; } s1 = { (unsigned)(half + 127) << 23 }, s2 = { (unsigned)(nn - half + 127) << 23 };
    const float normal = p * s1.f * s2.f;
    // Subnormal results (n <= -126) without a subnormal-producing multiply (a microcode assist costing ~100
    // cycles per vector on x86): p·2^(n+149) is normal and below 2^24, and rounding it to an integer gives the
    // subnormal's bit pattern, rounded to nearest even exactly as the multiply would.
    const int ns = ni > -126 ? -126 : ni;
    union { unsigned u; float f; } s3 = { (unsigned)(ns + 149 + 127) << 23 };
    union { int i; float f; } sub = { (int)__builtin_rintf(p * s3.f) };
    return ni <= -126 ? sub.f : normal;
}

// Splits v >= 0 as h + l with h holding 12 significant bits, so h·h is exact and v² = h·h + l·(v + h)
// with the second part rounded only relative to itself.
static inline __attribute__((always_inline)) void square_split(float v, float *hi, float *lo) {
    union { float f; uint32_t u; } split = { v };
    split.u &= 0xfffff000u;
    const float h = split.f, l = v - h;
    *hi = h * h;
    *lo = l * (v + h);
}

// erfc(ax) for ax >= 0 as t·exp(-ax² + R(t)), t = 1/(1 + ax/2): the Numerical Recipes erfcc rational fit,
// fractional error below 1.2e-7 everywhere. The exponent reaches -90, where one rounding of it costs 5e-6
// relative in the result, so the caller passes ax² exactly as sq_hi + sq_lo, TwoSum carries -ax² + R as
// s + err, and exp(s + err) = exp(s)·(1 + err) to first order (|err| <= 2^-24·|s|).
static inline __attribute__((always_inline)) float erfc_positive(float ax, float sq_hi, float sq_lo) {
    const float t = 1.0f / (1.0f + 0.5f * ax);
    float q = 0.17087277f;
    q = q * t - 0.82215223f;
    q = q * t + 1.48851587f;
    q = q * t - 1.13520398f;
    q = q * t + 0.27886807f;
    q = q * t - 0.18628806f;
    q = q * t + 0.09678418f;
    q = q * t + 0.37409196f;
    q = q * t + 1.00002368f;
    q = q * t - 1.26551223f;
    const float big = -sq_hi, small = q - sq_lo;
    const float s = big + small;
    const float bb = s - big;
    const float err = (big - (s - bb)) + (small - bb);
    return t * (exp_body(s) * (1.0f + err));
}

static inline __attribute__((always_inline)) float erf_body(float x) {
    // erf is ±1 in float beyond |x| = 4; capping at 10 keeps infinities and huge values out of the square (NaN).
    float ax = x < 0 ? -x : x;
    ax = ax < 10.0f ? ax : 10.0f;
    if (ax < 0.5f) {
        // Taylor series near zero keeps relative accuracy for tiny x.
        const float z = x * x;
        float p = -1.0f / 75600.0f;
        p = p * z + 1.0f / 9360.0f;
        p = p * z + -1.0f / 1320.0f;
        p = p * z + 1.0f / 216.0f;
        p = p * z + -1.0f / 42.0f;
        p = p * z + 1.0f / 10.0f;
        p = p * z + -1.0f / 3.0f;
        p = p * z + 1.0f;
        return x * p * 1.12837916709551257f;
    }
    float sq_hi, sq_lo;
    square_split(ax, &sq_hi, &sq_lo);
    const float v = 1.0f - erfc_positive(ax, sq_hi, sq_lo);
    return x < 0 ? -v : v;
}

// GELU(x) = x·Φ(x) with Φ(x) = 1 − ½·erfc(x/√2) for x ≥ 0 and ½·erfc(|x|/√2) for x < 0: one erfc per element
// and no cancellation on either side (vectorized code evaluates every branch, so one path is what counts).
// |x| is capped at 30 for the erfc (already 0 in float there) so infinities stay finite inside.
static inline __attribute__((always_inline)) float gelu_body(float x) {
    float ax = x < 0 ? -x : x;
    ax = ax < 30.0f ? ax : 30.0f;
    float sq_hi, sq_lo;
    square_split(ax, &sq_hi, &sq_lo);
    // (|x|/√2)² = x²/2 exactly from x, not from the rounded |x|/√2.
    const float e = erfc_positive(ax * 0.70710678118654752f, 0.5f * sq_hi, 0.5f * sq_lo);
    // Below −30 the product underflows to −0 anyway; clamping keeps −∞·0 from making a NaN.
    return x < 0 ? 0.5f * (x > -30.0f ? x : -30.0f) * e : x * (1.0f - 0.5f * e);
}

// tanh(x) = sign(x)·e/(e + 2) with e = expm1(2|x|): one exponential and one division, accurate near zero too
// (expm1(r) = r + r²·q(r) keeps r's own bits), where (e^2x - 1)/(e^2x + 1) would cancel. 2|x| is capped at 20
// (tanh(10) rounds to 1); n <= 29 keeps 2^n normal. Worst error 1.6e-7 relative over [-12, 12].
static inline __attribute__((always_inline)) float tanh_body(float x) {
    const float ax = x < 0 ? -x : x;
    float y = 2.0f * ax;
    y = y > 20.0f ? 20.0f : y;  // a NaN passes through
    float n;
    const float r = reduce_ln2(y, &n);
    // The Taylor coefficients 1/2! .. 1/9! (truncation below 1e-9 relative on [-ln2/2, ln2/2]).
    float q = 1.0f / 362880.0f;
    q = q * r + 1.0f / 40320.0f;
    q = q * r + 1.0f / 5040.0f;
    q = q * r + 1.0f / 720.0f;
    q = q * r + 1.0f / 120.0f;
    q = q * r + 1.0f / 24.0f;
    q = q * r + 1.0f / 6.0f;
    q = q * r + 0.5f;
    const float p = r + (r * r) * q;
    union { unsigned u; float f; } scale = { (unsigned)((int)n + 127) << 23 };
    const float e = scale.f * p + (scale.f - 1.0f);  // expm1(y) = 2^n·(1 + p) - 1
    const float v = e / (e + 2.0f);
    return x < 0 ? -v : v;
}

// y[i] = f(x[i]) reads x[i] before writing y[i], so x == y (in place) is safe; `assume_safety` tells the
// vectorizer so, which otherwise falls back to scalar code when the ranges overlap.
#define CK_UNARY_LOOP(expr)                                                                                  \
    _Pragma("clang loop vectorize(assume_safety) interleave_count(1)") for (size_t i = 0; i < n; i++) {                          \
        const float v = x[i];                                                                                \
        y[i] = (expr);                                                                                       \
    }
#define CK_UNARY(name, expr)                                                                                 \
    static void name##_generic(const float *x, float *y, size_t n) { CK_UNARY_LOOP(expr) }                   \
    __attribute__((target("avx2,fma"))) static void name##_avx2(const float *x, float *y, size_t n) {        \
        CK_UNARY_LOOP(expr)                                                                                  \
    }                                                                                                        \
    __attribute__((target("avx512f,avx512vl,avx2,fma"))) static void name##_avx512(const float *x, float *y, \
                                                                                   size_t n) {               \
        CK_UNARY_LOOP(expr)                                                                                  \
    }                                                                                                        \
    void ck_##name(const float *x, float *y, size_t n) {                                                     \
        const char *isa = ck_kernel_isa();                                                                   \
        if (isa[3] == '5') name##_avx512(x, y, n);                                                           \
        else if (isa[0] == 'a') name##_avx2(x, y, n);                                                        \
        else name##_generic(x, y, n);                                                                        \
    }

// exp(x) in double for x in [-110, 0]: 2^n · p(r), p the degree-11 Taylor polynomial (relative error ~3e-15).
static inline __attribute__((always_inline)) double exp_body_double(double x) {
    x = x < -110.0 ? -110.0 : x;
    const double n = __builtin_roundeven(x * 1.4426950408889634);
    const double r = (x - n * 0.6931471803691238) - n * 1.9082149292705877e-10;
    double p = 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    union { unsigned long long u; double d; } scale = { (unsigned long long)((long long)n + 1023) << 52 };
    return p * scale.d;
}

// sigmoid(x) from e = exp(−|x|) in double: 1/(1 + e) for x ≥ 0, e/(1 + e) for x < 0, rounded to float once, so
// results are the correctly rounded sigmoid except in cases closer to a rounding boundary than ~1e-14.
static inline __attribute__((always_inline)) float sigmoid_body(float x) {
    const double xd = (double)x;
    const double e = exp_body_double(xd < 0 ? xd : -xd);
    return (float)((xd < 0 ? e : 1.0) / (1.0 + e));
}

CK_UNARY(exp, v != v ? v : exp_body(v))
CK_UNARY(sigmoid, v != v ? v : sigmoid_body(v))
CK_UNARY(erf, v != v ? v : erf_body(v))
CK_UNARY(tanh, v != v ? v : tanh_body(v))

// GELU for x >= -13, where the result and every intermediate are normal floats: erfc(a), a = |x|/√2, as
// t·h(t)·exp(-a²) with t = 1/(1 + a/2) and h(t) = erfc(a)·exp(a²)/t a degree-11 polynomial in s = 2t - 1
// (a relative least-squares fit over a in [0, 21.3], fit error 1.1e-8), exp(-a²) from the exact split of
// x²/2 as for gelu_body. About half the operations of gelu_body (one exp, no rational fit inside it, no
// subnormal path); worst error 4.4e-7 relative to the correctly rounded result over x in [-13, 13].
static const float gelu_h[12] = {
    5.107913537e-01f,  3.435803379e-01f, 1.397359480e-01f,  1.822121476e-02f,
    -1.075384997e-02f, -3.240289720e-03f, 1.537151646e-03f, 4.214099282e-04f,
    -3.110839327e-04f, -2.446640221e-05f, 4.816538643e-05f, -5.880178702e-06f,
};
static inline __attribute__((always_inline)) float gelu_normal_body(float x) {
    float ax = x < 0 ? -x : x;
    ax = ax < 30.0f ? ax : 30.0f;
    float sq_hi, sq_lo;
    square_split(ax, &sq_hi, &sq_lo);
    // -(x²/2) as sum + err exactly (Fast2Sum: the high part dominates), so exp(-x²/2) = exp(sum)·(1 + err).
    const float hi = 0.5f * sq_hi, lo = 0.5f * sq_lo;
    const float sum = -hi - lo;
    const float err = -lo - (sum + hi);
    // Below -87 (only for x > 13, whose erfc term is far below the result's precision) exp stays normal.
    float n;
    const float p = exp_reduced(sum > -87.0f ? sum : -87.0f, &n);
    union { unsigned u; float f; } scale = { (unsigned)((int)n + 127) << 23 };
    float e = p * scale.f;
    e = e + e * err;
    const float t = 1.0f / (1.0f + ax * 0.35355339059327376f);
    const float s = 2.0f * t - 1.0f;
    float q = gelu_h[11];
    for (int i = 10; i >= 0; i--) q = q * s + gelu_h[i];
    // w = ½·x·erfc(a), small factors first so nothing passes through a subnormal: GELU = w below zero, x - w above.
    const float w = (0.5f * x * t) * q * e;
    return x < 0 ? w : x - w;
}

// GELU in blocks of 256: a block whose values are all at least -13 (a NaN compares false) takes gelu_normal_body,
// any other (results in the subnormal range, infinities, NaN) gelu_body. NORMAL_LOOP is the normal loop's pragma:
// with AVX2 two vectors per iteration (interleave 2) keep the FMA units busy through the body's chain of dependent
// operations, 1.32 -> 1.14 ns per value; with AVX-512 (16 lanes) one is as fast, and two spilled registers.
#define CK_GELU_LOOP_1 _Pragma("clang loop vectorize(assume_safety) interleave_count(1)")
#define CK_GELU_LOOP_2 _Pragma("clang loop vectorize(assume_safety) interleave_count(2)")
#define CK_GELU_BODY_WITH(NORMAL_LOOP)                                                                       \
    for (size_t i0 = 0; i0 < n; i0 += 256) {                                                                 \
        const size_t m = n - i0 < 256 ? n - i0 : 256;                                                        \
        const float *xb = x + i0;                                                                            \
        float *yb = y + i0;                                                                                  \
        int normal = 1;                                                                                      \
        for (size_t i = 0; i < m; i++) normal &= xb[i] >= -13.0f;                                            \
        if (normal) {                                                                                        \
            NORMAL_LOOP for (size_t i = 0; i < m; i++) yb[i] = gelu_normal_body(xb[i]);                      \
        } else {                                                                                             \
            _Pragma("clang loop vectorize(assume_safety) interleave_count(1)") for (size_t i = 0; i < m; i++) { \
                const float v = xb[i];                                                                       \
                yb[i] = v != v ? v : gelu_body(v);                                                           \
            }                                                                                                \
        }                                                                                                    \
    }
#define CK_GELU_BODY CK_GELU_BODY_WITH(CK_GELU_LOOP_1)
static void gelu_generic(const float *x, float *y, size_t n) { CK_GELU_BODY }
__attribute__((target("avx2,fma"))) static void gelu_avx2(const float *x, float *y, size_t n) {
    CK_GELU_BODY_WITH(CK_GELU_LOOP_2)
}
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void gelu_avx512(const float *x, float *y, size_t n) {
    CK_GELU_BODY
}
void ck_gelu(const float *x, float *y, size_t n) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') gelu_avx512(x, y, n);
    else if (isa[0] == 'a') gelu_avx2(x, y, n);
    else gelu_generic(x, y, n);
}

// In place over `rows` rows of `cols` values, `ldc` apart (a GEMM tile's epilogue): one call for the tile, so
// the dispatch and the loops' constants are paid once rather than per 16- or 32-value row.
#define CK_ROWS(body)                                                                                        \
    for (size_t r_ = 0; r_ < rows; r_++) {                                                                   \
        const float *x = c + r_ * ldc;                                                                       \
        float *y = c + r_ * ldc;                                                                             \
        const size_t n = cols;                                                                               \
        body                                                                                                 \
    }
#define CK_GELU_ROWS_ARGS (float *c, size_t ldc, size_t rows, size_t cols)
static void gelu_rows_generic CK_GELU_ROWS_ARGS { CK_ROWS(CK_GELU_BODY) }
__attribute__((target("avx2,fma"))) static void gelu_rows_avx2 CK_GELU_ROWS_ARGS {
    CK_ROWS(CK_GELU_BODY_WITH(CK_GELU_LOOP_2))
}
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void gelu_rows_avx512 CK_GELU_ROWS_ARGS {
    CK_ROWS(CK_GELU_BODY)
}
void ck_gelu_rows(float *c, size_t ldc, size_t rows, size_t cols) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') gelu_rows_avx512(c, ldc, rows, cols);
    else if (isa[0] == 'a') gelu_rows_avx2(c, ldc, rows, cols);
    else gelu_rows_generic(c, ldc, rows, cols);
}

// Softmax / LogSoftmax over contiguous rows. Reductions run in 16 independent lanes (one vector) so they
// vectorize; the sum of exponentials accumulates in double.
#define CK_SOFTMAX_BODY                                                                                      \
    for (size_t r = 0; r < rows; r++) {                                                                      \
        const float *xr = x + r * n;                                                                         \
        float *yr = y + r * n;                                                                               \
        float lanes[16];                                                                                     \
        for (size_t l = 0; l < 16; l++) lanes[l] = -__builtin_inff();                                        \
        size_t i = 0;                                                                                        \
        for (; i + 16 <= n; i += 16)                                                                         \
            for (size_t l = 0; l < 16; l++) lanes[l] = xr[i + l] > lanes[l] ? xr[i + l] : lanes[l];          \
        float m = -__builtin_inff();                                                                         \
        for (; i < n; i++) m = xr[i] > m ? xr[i] : m;                                                        \
        for (size_t l = 0; l < 16; l++) m = lanes[l] > m ? lanes[l] : m;                                     \
        /* LogSoftmax keeps x intact (y may alias x): its exponentials are summed, not stored. */           \
        double sums[16] = {0};                                                                               \
        double sum = 0;                                                                                      \
        if (logarithm) {                                                                                     \
            for (i = 0; i + 16 <= n; i += 16)                                                                \
                for (size_t l = 0; l < 16; l++) {                                                            \
                    const float d = xr[i + l] - m;                                                           \
                    sums[l] += (double)(d != d ? d : exp_body(d));                                           \
                }                                                                                            \
            for (; i < n; i++) {                                                                             \
                const float d = xr[i] - m;                                                                   \
                sum += (double)(d != d ? d : exp_body(d));                                                   \
            }                                                                                                \
        } else {                                                                                             \
            _Pragma("clang loop vectorize(assume_safety)") for (size_t j = 0; j < n; j++) {                  \
                const float d = xr[j] - m;                                                                   \
                yr[j] = d != d ? d : exp_body(d);                                                            \
            }                                                                                                \
            for (i = 0; i + 16 <= n; i += 16)                                                                \
                for (size_t l = 0; l < 16; l++) sums[l] += (double)yr[i + l];                                \
            for (; i < n; i++) sum += (double)yr[i];                                                         \
        }                                                                                                    \
        for (size_t l = 0; l < 16; l++) sum += sums[l];                                                      \
        if (logarithm) {                                                                                     \
            const float l = (float)log(sum);                                                                 \
            for (size_t j = 0; j < n; j++) yr[j] = (xr[j] - m) - l;                                          \
        } else {                                                                                             \
            const float inv = (float)(1.0 / sum);                                                            \
            for (size_t j = 0; j < n; j++) yr[j] *= inv;                                                     \
        }                                                                                                    \
    }

#define CK_SOFTMAX_ARGS (const float *x, float *y, size_t rows, size_t n, int logarithm)
static void softmax_generic CK_SOFTMAX_ARGS { CK_SOFTMAX_BODY }
__attribute__((target("avx2,fma"))) static void softmax_avx2 CK_SOFTMAX_ARGS { CK_SOFTMAX_BODY }
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void softmax_avx512 CK_SOFTMAX_ARGS { CK_SOFTMAX_BODY }

void ck_softmax_rows(const float *x, float *y, size_t rows, size_t n, int logarithm) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') softmax_avx512(x, y, rows, n, logarithm);
    else if (isa[0] == 'a') softmax_avx2(x, y, rows, n, logarithm);
    else softmax_generic(x, y, rows, n, logarithm);
}

// Recurrent cells over `rows` batch rows of `h` units, with the default activations (sigmoid gates, tanh cell):
// the gate pre-activations come in two parts, `pre` (input projection with every bias that can be folded in,
// row stride pre_stride) and `rec` (recurrent product, row stride rec_stride). clip <= 0 means no clip.
static inline __attribute__((always_inline)) float clip_value(float v, float clip) {
    return clip > 0 ? (v < -clip ? -clip : (v > clip ? clip : v)) : v;
}

// The gates' sigmoid in float (within ~3e-7 relative): the double-precision one of the Sigmoid operator costs
// a fifth of an LSTM's time, and a gate's error is damped by the cell's own rounding anyway.
static inline __attribute__((always_inline)) float sigmoid_cell(float x) {
    // exp(-x) below e^-87 adds nothing to 1 (it is under 2^-125): clamped there, the subnormal path of exp_body
    // is never needed and the result keeps its bits.
    float z = -x < -87.0f ? -87.0f : -x;
    z = z > 89.0f ? 89.0f : z;
    float n;
    const float p = exp_reduced(z, &n);
    const int ni = (int)n, half = ni / 2;
    union { unsigned u; float f; } s1 = { (unsigned)(half + 127) << 23 }, s2 = { (unsigned)(ni - half + 127) << 23 };
    return x != x ? x : 1.0f / (1.0f + p * s1.f * s2.f);
}

// LSTM, gates i, o, f, c: c1 = f·c0 + i·g, h1 = o·tanh(c1); peepholes p (3h: i, o, f; may be NULL). The loop is
// written twice, with and without peepholes: a `peep ? peep[j] : 0` inside it became masked loads (vmaskmovps,
// microcoded on AMD cores: three fifths of the cell's time).
#define CK_LSTM_LOOP(PI, PO, PF)                                                                             \
    _Pragma("clang loop vectorize(assume_safety)") for (size_t j = 0; j < h; j++) {                          \
        const float c0 = cr[j];                                                                              \
        const float i = sigmoid_cell(clip_value(pr[j] + rr[j] + (PI) * c0, clip));                           \
        const float f = sigmoid_cell(clip_value(pr[2 * h + j] + rr[2 * h + j] + (PF) * c0, clip));           \
        const float g = tanh_body(clip_value(pr[3 * h + j] + rr[3 * h + j], clip));                          \
        const float c1 = f * c0 + i * g;                                                                     \
        const float o = sigmoid_cell(clip_value(pr[h + j] + rr[h + j] + (PO) * c1, clip));                   \
        cr[j] = c1;                                                                                          \
        hr[j] = o * tanh_body(c1);                                                                           \
    }
#define CK_LSTM_BODY                                                                                         \
    for (size_t r = 0; r < rows; r++) {                                                                      \
        const float *pr = pre + r * pre_stride, *rr = rec + r * rec_stride;                                  \
        float *cr = c + r * h, *hr = hs + r * h;                                                             \
        if (peep) {                                                                                          \
            CK_LSTM_LOOP(peep[j], peep[h + j], peep[2 * h + j])                                              \
        } else {                                                                                             \
            CK_LSTM_LOOP(0.0f, 0.0f, 0.0f)                                                                   \
        }                                                                                                    \
    }
#define CK_LSTM_ARGS                                                                                         \
    (size_t rows, size_t h, const float *pre, size_t pre_stride, const float *rec, size_t rec_stride,         \
     const float *peep, float clip, float *c, float *hs)
static void lstm_generic CK_LSTM_ARGS { CK_LSTM_BODY }
__attribute__((target("avx2,fma"))) static void lstm_avx2 CK_LSTM_ARGS { CK_LSTM_BODY }
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void lstm_avx512 CK_LSTM_ARGS { CK_LSTM_BODY }

void ck_lstm_cell(size_t rows, size_t h, const float *pre, size_t pre_stride, const float *rec, size_t rec_stride,
                  const float *peep, float clip, float *c, float *hs) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') lstm_avx512(rows, h, pre, pre_stride, rec, rec_stride, peep, clip, c, hs);
    else if (isa[0] == 'a') lstm_avx2(rows, h, pre, pre_stride, rec, rec_stride, peep, clip, c, hs);
    else lstm_generic(rows, h, pre, pre_stride, rec, rec_stride, peep, clip, c, hs);
}

// GRU, gates z, r, h. rec holds z and r (and, with linear_before_reset, the candidate's R·h + Rb); rec_h the
// candidate's recurrent part with its bias (row stride rec_h_stride). Without linear_before_reset the candidate
// reads (r ⊙ h)·Rᵀ, which the caller computes from ck_gru_reset's output first.
#define CK_GRU_BODY                                                                                          \
    for (size_t r = 0; r < rows; r++) {                                                                      \
        const float *pr = pre + r * pre_stride, *rr = rec + r * rec_stride, *rh = rec_h + r * rec_h_stride;  \
        float *hr = hs + r * h;                                                                              \
        _Pragma("clang loop vectorize(assume_safety)") for (size_t j = 0; j < h; j++) {                      \
            const float z = sigmoid_cell(clip_value(pr[j] + rr[j], clip));                                      \
            const float reset = sigmoid_cell(clip_value(pr[h + j] + rr[h + j], clip));                          \
            const float candidate = linear_before_reset ? pr[2 * h + j] + reset * rh[j] : pr[2 * h + j] + rh[j]; \
            const float hh = tanh_body(clip_value(candidate, clip));                                            \
            hr[j] = (1.0f - z) * hh + z * hr[j];                                                             \
        }                                                                                                    \
    }
#define CK_GRU_ARGS                                                                                          \
    (size_t rows, size_t h, const float *pre, size_t pre_stride, const float *rec, size_t rec_stride,         \
     const float *rec_h, size_t rec_h_stride, int linear_before_reset, float clip, float *hs)
static void gru_generic CK_GRU_ARGS { CK_GRU_BODY }
__attribute__((target("avx2,fma"))) static void gru_avx2 CK_GRU_ARGS { CK_GRU_BODY }
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void gru_avx512 CK_GRU_ARGS { CK_GRU_BODY }

void ck_gru_cell(size_t rows, size_t h, const float *pre, size_t pre_stride, const float *rec, size_t rec_stride,
                 const float *rec_h, size_t rec_h_stride, int linear_before_reset, float clip, float *hs) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5')
        gru_avx512(rows, h, pre, pre_stride, rec, rec_stride, rec_h, rec_h_stride, linear_before_reset, clip, hs);
    else if (isa[0] == 'a')
        gru_avx2(rows, h, pre, pre_stride, rec, rec_stride, rec_h, rec_h_stride, linear_before_reset, clip, hs);
    else gru_generic(rows, h, pre, pre_stride, rec, rec_stride, rec_h, rec_h_stride, linear_before_reset, clip, hs);
}

// (r ⊙ h) for the GRU candidate without linear_before_reset: out[row][j] = sigmoid(pre_r + rec_r)·h.
void ck_gru_reset(size_t rows, size_t h, const float *pre, size_t pre_stride, const float *rec, size_t rec_stride,
                  float clip, const float *hs, float *out) {
    for (size_t r = 0; r < rows; r++) {
        const float *pr = pre + r * pre_stride + h, *rr = rec + r * rec_stride + h;
        for (size_t j = 0; j < h; j++) out[r * h + j] = sigmoid_cell(clip_value(pr[j] + rr[j], clip)) * hs[r * h + j];
    }
}

// Parameterized piecewise-linear activations (MobileNet's HardSigmoid/HardSwish, LeakyRelu, Relu6 as Clip).
#define CK_UNARY_PARAMS(name, params, call_args, expr)                                                       \
    static void name##_generic(const float *x, float *y, size_t n, params) { CK_UNARY_LOOP(expr) }           \
    __attribute__((target("avx2,fma"))) static void name##_avx2(const float *x, float *y, size_t n, params) { \
        CK_UNARY_LOOP(expr)                                                                                  \
    }                                                                                                        \
    __attribute__((target("avx512f,avx512vl,avx2,fma"))) static void name##_avx512(const float *x, float *y, \
                                                                                   size_t n, params) {       \
        CK_UNARY_LOOP(expr)                                                                                  \
    }                                                                                                        \
    void ck_##name(const float *x, float *y, size_t n, params) {                                             \
        const char *isa = ck_kernel_isa();                                                                   \
        if (isa[3] == '5') name##_avx512 call_args;                                                          \
        else if (isa[0] == 'a') name##_avx2 call_args;                                                       \
        else name##_generic call_args;                                                                       \
    }

static inline __attribute__((always_inline)) float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

#define CK_PARAMS2(a, b) float a, float b
static inline __attribute__((always_inline)) float ck_clamp_keep_nan(float v, float low, float high) {
    const float t = v < low ? low : v;
    return t > high ? high : t;
}
// A product that is not fused with the following add (the result rounds here, as in the scalar reference).
static inline __attribute__((always_inline)) float ck_no_contract_mul(float a, float b) {
#pragma clang fp contract(off)
    return a * b;
}
// alpha·x + beta in double (the product is exact there), rounded once: no cancellation error near the kinks on
// any path, with or without FMA.
CK_UNARY_PARAMS(hard_sigmoid, CK_PARAMS2(alpha, beta), (x, y, n, alpha, beta),
                v != v ? v : clamp01((float)((double)alpha * (double)v + (double)beta)))
CK_UNARY_PARAMS(leaky_relu, float alpha, (x, y, n, alpha), v >= 0.0f ? v : (v != v ? v : alpha * v))
// min(max(v, low), high), as ONNX defines it (high wins when low > high).
CK_UNARY_PARAMS(clip, CK_PARAMS2(low, high), (x, y, n, low, high),
                v != v ? v : ((v < low ? low : v) > high ? high : (v < low ? low : v)))
#define CK_PARAMS4(a, b, c, d) float a, float b, float c, float d
// Inference BatchNormalization of one channel plane (x·scale + shift, one rounding per operation as the
// reference computes it: no contraction into an FMA) with a fused clamp to [low, high]; NaN passes through.
CK_UNARY_PARAMS(scale_shift_clamp, CK_PARAMS4(scale, shift, low, high), (x, y, n, scale, shift, low, high),
                ck_clamp_keep_nan(ck_no_contract_mul(v, scale) + shift, low, high))
// x·clamp((x + 3)/6, 0, 1): x + 3 is exact near the kink at -3 (where x/6 + 1/2 would cancel), then a product by
// 1/6 (within 1.3 ulp of the division, which costs several times a product: GEMM epilogues apply the same formula).
CK_UNARY(hard_swish, v != v ? v : v * clamp01((v + 3.0f) * (1.0f / 6.0f)))

// Swish (SiLU for alpha 1): x·sigmoid(alpha·x) = x / (1 + exp(-alpha·x)), in float (within a few ulp).
// exp(x) for x <= 87 (clamped below at -87): the same reduction and polynomial as exp_body, with one scaling step and no
// subnormal path (2^n stays normal there), about a third fewer operations.
static inline __attribute__((always_inline)) float exp_normal_body(float x) {
    // Below -87 (alpha·x above 87, up to +inf) exp is under 2^-125, where 1 + exp rounds to 1 as well.
    x = x < -87.0f ? -87.0f : x;
    float n;
    const float p = exp_reduced(x, &n);
    union { unsigned u; float f; } scale = { (unsigned)((int)n + 127) << 23 };
    return p * scale.f;
}

// Swish (x·sigmoid(alpha·x) = x / (1 + exp(-alpha·x))) over a block of m values: when every alpha·x is at least
// -87 it uses exp_normal_body (exp(-alpha·x) <= e^87; above +87 the sum rounds to 1 either way); a block with a
// smaller one (or NaN) is computed in double, where the far tail (overflowing exp, subnormal results) is exact.
static inline __attribute__((always_inline)) void swish_block(const float *xb, float *yb, size_t m, float alpha) {
    // An and-reduction of comparisons vectorizes (a NaN compares false: the careful path).
    int near = 1;
    for (size_t i = 0; i < m; i++) near &= alpha * xb[i] >= -87.0f;
    if (near) {
        _Pragma("clang loop vectorize(assume_safety) interleave_count(1)") for (size_t i = 0; i < m; i++) {
            const float v = xb[i];
            yb[i] = v / (1.0f + exp_normal_body(-alpha * v));
        }
    } else {
        // Rare: exp(-alpha·x) overflows float and the result may be subnormal; double keeps both exact enough
        // that the one rounding to float is the only error. Only those values: the others take the formula above,
        // so each result depends on its value alone, whatever block (or thread's share) it falls in.
        for (size_t i = 0; i < m; i++) {
            const float f = xb[i];
            const double v = (double)f;
            yb[i] = alpha * f >= -87.0f ? f / (1.0f + exp_normal_body(-alpha * f))
                    : v != v            ? (float)v
                                        : (float)(v / (1.0 + exp(-(double)alpha * v)));
        }
    }
}
#define CK_SWISH_BODY                                                                                        \
    for (size_t i0 = 0; i0 < n; i0 += 256) swish_block(x + i0, y + i0, n - i0 < 256 ? n - i0 : 256, alpha);
static void swish_generic(const float *x, float *y, size_t n, float alpha) { CK_SWISH_BODY }

// The vector paths in intrinsics, one vector at a time with the range check on the same registers: the
// auto-vectorized block above spent a third again on a separate checking pass and on loop control, which a GEMM
// epilogue (rows of 16 or 32 values per tile) pays per row. Same arithmetic as exp_normal_body, except that n is
// rounded with the 1.5·2^23 shifter (the FMA's exact product, then one rounding) and 2^n comes from the shifter's
// low bits: n is in [-126, 126] here, so n + 127 fits the exponent field. Lanes whose -alpha·x is above 87 (or NaN)
// are recomputed by the careful scalar path.
#define CK_SWISH_SHIFTER (12582912.0f + 127.0f)
// One formula for both widths: VT the vector type, P the intrinsics' prefix, SI the integer vector's suffix.
#define CK_SWISH_VECTOR(VT, P, SI)                                                                           \
    t = P##_max_ps(t, P##_set1_ps(-87.0f));                                                                  \
    const VT z = P##_fmadd_ps(t, P##_set1_ps(1.44269504088896341f), P##_set1_ps(CK_SWISH_SHIFTER));          \
    const VT n = P##_sub_ps(z, P##_set1_ps(CK_SWISH_SHIFTER));                                               \
    VT r = P##_fnmadd_ps(n, P##_set1_ps(0.693145751953125f), t);                                             \
    r = P##_fnmadd_ps(n, P##_set1_ps(1.428606765330187045e-06f), r);                                         \
    VT p = P##_fmadd_ps(P##_set1_ps(1.0f / 5040.0f), r, P##_set1_ps(1.0f / 720.0f));                         \
    p = P##_fmadd_ps(p, r, P##_set1_ps(1.0f / 120.0f));                                                      \
    p = P##_fmadd_ps(p, r, P##_set1_ps(1.0f / 24.0f));                                                       \
    p = P##_fmadd_ps(p, r, P##_set1_ps(1.0f / 6.0f));                                                        \
    p = P##_fmadd_ps(p, r, P##_set1_ps(0.5f));                                                               \
    p = P##_fmadd_ps(p, r, P##_set1_ps(1.0f));                                                               \
    p = P##_fmadd_ps(p, r, P##_set1_ps(1.0f));                                                               \
    const VT scale = P##_castsi##SI##_ps(P##_slli_epi32(P##_castps_si##SI(z), 23));                          \
    return P##_div_ps(v, P##_add_ps(P##_mul_ps(p, scale), P##_set1_ps(1.0f)));
__attribute__((target("avx2,fma"))) static inline __m256 swish_vector_avx2(__m256 v, __m256 t) {
    CK_SWISH_VECTOR(__m256, _mm256, 256)
}
// Lanes whose -alpha·x is above 87 (or NaN), out of line: `v` holds the vector's inputs (biases added), `bad` the
// lanes to recompute in double, where the far tail (overflowing exp, subnormal results) is exact; the other lanes
// keep the vector result. Each value's result depends on it alone, not on its neighbours, so any split of a tensor
// across threads or tiles computes the same bits. A call inside the vector loop would make the compiler reload
// every constant of the polynomial around it on each iteration (measured 15 against 10 cycles per vector with
// AVX2), hence noinline.
static __attribute__((noinline)) void swish_lanes_careful(const float *v, float *y, unsigned bad, size_t n,
                                                          float alpha) {
    for (size_t l = 0; l < n; l++) {
        if (!(bad >> l & 1u)) continue;
        const double d = (double)v[l];
        y[l] = d != d ? (float)d : (float)(d / (1.0 + exp(-(double)alpha * d)));
    }
}
// y = swish(x) over n values; with `col_bias` and/or `row_bias` (a GEMM epilogue), of x + col_bias[i] + *row_bias
// first, in that order (the unfused epilogue's), so the tile is read and written once. A partial last vector goes
// through a zero-padded copy so every value takes the vector formula.
// Where a tile run stopped: at row r, column i, a vector of m values whose lanes `bad` are in the far tail (their
// inputs, biases added, in vs).
typedef struct {
    size_t r, i, m;
    unsigned bad;
    float vs[8];
} ck_swish_stop;

// Rows [stop->r, rows) of x (ldx apart) into y (ldy apart; x == y in place), from column stop->i of the first,
// eight values at a time (a partial last vector of a row through a zero-padded copy, so every value takes the
// vector formula), until a vector with a far-tail lane (returns 1, stop filled in) or the end (returns 0). No call
// inside, so the polynomial's constants stay in registers: with a call in the loop the compiler reloaded all of
// them per vector (17 against 13 cycles per 8 values), and a call per GEMM tile row paid their setup per 16 values.
__attribute__((target("avx2,fma"), always_inline)) static inline int swish_tile_run_avx2(
    const float *x, size_t ldx, float *y, size_t ldy, size_t rows, size_t cols, float alpha, const float *col_bias,
    const float *row_bias, ck_swish_stop *stop) {
    const __m256 negated = _mm256_set1_ps(-alpha), limit = _mm256_set1_ps(87.0f);
    size_t i = stop->i;
    for (size_t r = stop->r; r < rows; r++, i = 0) {
        const float *xr = x + r * ldx;
        float *yr = y + r * ldy;
        const __m256 rb = _mm256_set1_ps(row_bias ? row_bias[r] : 0.0f);
        for (; i < cols; i += 8) {
            const size_t m = cols - i < 8 ? cols - i : 8;
            __m256 v;
            if (m == 8) {
                v = _mm256_loadu_ps(xr + i);
                if (col_bias) v = _mm256_add_ps(v, _mm256_loadu_ps(col_bias + i));
            } else {
                float in[8] = {0}, cb[8] = {0};
                for (size_t l = 0; l < 8; l++) {
                    if (l < m) in[l] = xr[i + l];
                    if (l < m && col_bias) cb[l] = col_bias[i + l];
                }
                v = _mm256_loadu_ps(in);
                if (col_bias) v = _mm256_add_ps(v, _mm256_loadu_ps(cb));
            }
            if (row_bias) v = _mm256_add_ps(v, rb);
            const __m256 t = _mm256_mul_ps(v, negated);
            const unsigned b =
                ~(unsigned)_mm256_movemask_ps(_mm256_cmp_ps(t, limit, _CMP_LE_OQ)) & ((1u << m) - 1u);
            const __m256 result = swish_vector_avx2(v, t);
            if (m == 8) {
                _mm256_storeu_ps(yr + i, result);
            } else {
                float out[8];
                _mm256_storeu_ps(out, result);
                for (size_t l = 0; l < 8; l++)
                    if (l < m) yr[i + l] = out[l];
            }
            if (b) {
                _mm256_storeu_ps(stop->vs, v);
                stop->r = r;
                stop->i = i;
                stop->m = m;
                stop->bad = b;
                return 1;
            }
        }
    }
    return 0;
}
__attribute__((target("avx2,fma"), noinline)) static int swish_tile_run_avx2_plain(const float *x, size_t ldx, float *y,
                                                                                  size_t ldy, size_t rows, size_t cols,
                                                                                  float alpha, ck_swish_stop *stop) {
    return swish_tile_run_avx2(x, ldx, y, ldy, rows, cols, alpha, NULL, NULL, stop);
}
__attribute__((target("avx2,fma"), noinline)) static int swish_tile_run_avx2_biased(
    const float *x, size_t ldx, float *y, size_t ldy, size_t rows, size_t cols, float alpha, const float *col_bias,
    const float *row_bias, ck_swish_stop *stop) {
    return swish_tile_run_avx2(x, ldx, y, ldy, rows, cols, alpha, col_bias, row_bias, stop);
}
// y = swish(x) over rows x cols (ldx and ldy apart); with `col_bias` (per column) and/or `row_bias` (per row, a
// GEMM epilogue's), of x + col_bias[j] + row_bias[r] first, in that order (the unfused epilogue's), so the tile
// is read and written once.
__attribute__((target("avx2,fma"))) static void swish_tile_avx2(const float *x, size_t ldx, float *y, size_t ldy,
                                                                size_t rows, size_t cols, float alpha,
                                                                const float *col_bias, const float *row_bias) {
    ck_swish_stop stop = {0, 0, 0, 0, {0}};
    while (col_bias || row_bias ? swish_tile_run_avx2_biased(x, ldx, y, ldy, rows, cols, alpha, col_bias, row_bias, &stop)
                                : swish_tile_run_avx2_plain(x, ldx, y, ldy, rows, cols, alpha, &stop)) {
        swish_lanes_careful(stop.vs, y + stop.r * ldy + stop.i, stop.bad, stop.m, alpha);
        stop.i += stop.m;
    }
}
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static inline __m512 swish_vector_avx512(__m512 v, __m512 t) {
    CK_SWISH_VECTOR(__m512, _mm512, 512)
}
// AVX-512 takes a partial last vector with masked loads and stores.
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static inline void swish_row_avx512(const float *x, float *y,
                                                                                       size_t n, float alpha,
                                                                                       const float *col_bias,
                                                                                       const float *row_bias) {
    const __m512 negated = _mm512_set1_ps(-alpha), limit = _mm512_set1_ps(87.0f);
    const __m512 rb = _mm512_set1_ps(row_bias ? *row_bias : 0.0f);
    size_t i = 0;
    float vs[16];
    while (i < n) {
        unsigned bad = 0;
        size_t m = 16;
        for (; i < n; i += 16) {
            m = n - i < 16 ? n - i : 16;
            const __mmask16 lanes = m == 16 ? (__mmask16)0xffff : (__mmask16)((1u << m) - 1u);
            __m512 v = _mm512_maskz_loadu_ps(lanes, x + i);
            if (col_bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(lanes, col_bias + i));
            if (row_bias) v = _mm512_add_ps(v, rb);
            const __m512 t = _mm512_mul_ps(v, negated);
            bad = (unsigned)(~_mm512_cmp_ps_mask(t, limit, _CMP_LE_OQ) & lanes);
            _mm512_mask_storeu_ps(y + i, lanes, swish_vector_avx512(v, t));
            if (bad) {
                _mm512_storeu_ps(vs, v);
                break;
            }
        }
        if (bad) {
            swish_lanes_careful(vs, y + i, bad, m, alpha);
            i += m;
        }
    }
}
__attribute__((target("avx2,fma"))) static void swish_avx2(const float *x, float *y, size_t n, float alpha) {
    swish_tile_avx2(x, n, y, n, 1, n, alpha, NULL, NULL);
}
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void swish_avx512(const float *x, float *y, size_t n,
                                                                               float alpha) {
    swish_row_avx512(x, y, n, alpha, NULL, NULL);
}
void ck_swish(const float *x, float *y, size_t n, float alpha) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') swish_avx512(x, y, n, alpha);
    else if (isa[0] == 'a') swish_avx2(x, y, n, alpha);
    else swish_generic(x, y, n, alpha);
}

#define CK_SWISH_ROWS_ARGS (float *c, size_t ldc, size_t rows, size_t cols, float alpha)
static void swish_rows_generic CK_SWISH_ROWS_ARGS { CK_ROWS(CK_SWISH_BODY) }
__attribute__((target("avx2,fma"))) static void swish_rows_avx2 CK_SWISH_ROWS_ARGS {
    swish_tile_avx2(c, ldc, c, ldc, rows, cols, alpha, NULL, NULL);
}
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void swish_rows_avx512 CK_SWISH_ROWS_ARGS {
    for (size_t r = 0; r < rows; r++) swish_row_avx512(c + r * ldc, c + r * ldc, cols, alpha, NULL, NULL);
}
#define CK_SWISH_BIASED_ARGS                                                                                 \
    (float *c, size_t ldc, size_t rows, size_t cols, const float *row_bias, const float *col_bias)
__attribute__((target("avx2,fma"))) void ck_swish_rows_biased_avx2 CK_SWISH_BIASED_ARGS {
    swish_tile_avx2(c, ldc, c, ldc, rows, cols, 1.0f, col_bias, row_bias);
}
__attribute__((target("avx512f,avx512vl,avx2,fma"))) void ck_swish_rows_biased_avx512 CK_SWISH_BIASED_ARGS {
    for (size_t r = 0; r < rows; r++)
        swish_row_avx512(c + r * ldc, c + r * ldc, cols, 1.0f, col_bias, row_bias ? row_bias + r : NULL);
}
void ck_swish_rows(float *c, size_t ldc, size_t rows, size_t cols, float alpha) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') swish_rows_avx512(c, ldc, rows, cols, alpha);
    else if (isa[0] == 'a') swish_rows_avx2(c, ldc, rows, cols, alpha);
    else swish_rows_generic(c, ldc, rows, cols, alpha);
}

void ck_depthwise_after(float *y, size_t n, int after) {
    if (after == 1) ck_swish(y, y, n, 1.0f);
    else if (after == 2) ck_hard_swish(y, y, n);
}
