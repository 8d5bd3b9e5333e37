// Elementwise conversions of the quantized and float16 paths: QuantizeLinear / DynamicQuantizeLinear (float32 to
// 8-bit), DequantizeLinear (8-bit to float32), the requantization of int32 sums (QLinearMatMul, QLinearConv), and
// float16 <-> float32 / int32 -> float32 casts. AVX2 (+F16C) paths and scalar paths compute the same values: IEEE
// division, round half to even, the same clamps; a NaN quantizes to the low end of the range (as onnxruntime's).
#include "CKernels.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static int simd_path(void) {
#if defined(__x86_64__)
    return strcmp(ck_kernel_isa(), "generic") != 0 && (ck_cpu_features() & ck_feature_avx2);
#else
    return 0;
#endif
}

static inline float clampf(float v, float low, float high) {
    // NaN compares false both times and lands on `low`.
    if (!(v >= low)) return low;
    return v > high ? high : v;
}

static void store_byte(void *y, size_t i, int32_t v, int is_signed) {
    if (is_signed) ((int8_t *)y)[i] = (int8_t)v;
    else ((uint8_t *)y)[i] = (uint8_t)v;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma")))
static size_t quantize_avx2(const float *x, size_t n, float scale, float zero, float low, float high, void *y,
                            int is_signed) {
    const __m256 vs = _mm256_set1_ps(scale), vz = _mm256_set1_ps(zero);
    const __m256 vl = _mm256_set1_ps(low), vh = _mm256_set1_ps(high);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + i), vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm256_add_ps(v, vz);
        // max(v, low) takes `low` when v is NaN (the second operand wins on unordered).
        v = _mm256_min_ps(_mm256_max_ps(v, vl), vh);
        const __m256i q = _mm256_cvtps_epi32(v);
        const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        const __m128i words = _mm_packs_epi32(lo, hi);
        const __m128i bytes = is_signed ? _mm_packs_epi16(words, words) : _mm_packus_epi16(words, words);
        _mm_storel_epi64((__m128i *)((uint8_t *)y + i), bytes);
    }
    return i;
}
#endif

#if defined(__x86_64__)
// The same operations sixteen lanes at a time; the clamped values are whole numbers within the byte range, so
// truncating them to bytes (vpmovdb) is exact either sign.
__attribute__((target("avx512f,avx512vl,avx2,fma")))
static size_t quantize_avx512(const float *x, size_t n, float scale, float zero, float low, float high, void *y) {
    const __m512 vs = _mm512_set1_ps(scale), vz = _mm512_set1_ps(zero);
    const __m512 vl = _mm512_set1_ps(low), vh = _mm512_set1_ps(high);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_roundscale_ps(_mm512_div_ps(_mm512_loadu_ps(x + i), vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, vz), vl), vh);
        _mm_storeu_si128((__m128i *)((uint8_t *)y + i), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
    }
    return i;
}
#endif

void ck_quantize_f32(const float *x, size_t n, float scale, int32_t zero, int32_t low, int32_t high, void *y,
                     int is_signed) {
    size_t i = 0;
#if defined(__x86_64__)
    if (simd_path()) {
        i = ck_kernel_isa()[3] == '5' ? quantize_avx512(x, n, scale, (float)zero, (float)low, (float)high, y)
                                      : quantize_avx2(x, n, scale, (float)zero, (float)low, (float)high, y, is_signed);
    }
#endif
    for (; i < n; i++) {
        const float v = clampf(nearbyintf(x[i] / scale) + (float)zero, (float)low, (float)high);
        store_byte(y, i, (int32_t)v, is_signed);
    }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma")))
static size_t dequantize_avx2(const void *x, int is_signed, size_t n, float zero, float scale, float *y) {
    const __m256 vz = _mm256_set1_ps(zero), vs = _mm256_set1_ps(scale);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i bytes = _mm_loadl_epi64((const __m128i *)((const uint8_t *)x + i));
        const __m256i wide = is_signed ? _mm256_cvtepi8_epi32(bytes) : _mm256_cvtepu8_epi32(bytes);
        // (v - z) * s as two roundings, like the scalar path (no fused multiply-add).
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(wide), vz), vs));
    }
    return i;
}
#endif

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512vl,avx2,fma")))
static size_t dequantize_avx512(const void *x, int is_signed, size_t n, float zero, float scale, float *y) {
    const __m512 vz = _mm512_set1_ps(zero), vs = _mm512_set1_ps(scale);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m128i bytes = _mm_loadu_si128((const __m128i *)((const uint8_t *)x + i));
        const __m512i wide = is_signed ? _mm512_cvtepi8_epi32(bytes) : _mm512_cvtepu8_epi32(bytes);
        _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(wide), vz), vs));
    }
    return i;
}
#endif

void ck_dequantize_8(const void *x, int is_signed, size_t n, int32_t zero, float scale, float *y) {
    size_t i = 0;
    const float z = (float)zero;
#if defined(__x86_64__)
    if (simd_path()) {
        i = ck_kernel_isa()[3] == '5' ? dequantize_avx512(x, is_signed, n, z, scale, y)
                                      : dequantize_avx2(x, is_signed, n, z, scale, y);
    }
#endif
    for (; i < n; i++) {
        const float v = is_signed ? (float)((const int8_t *)x)[i] : (float)((const uint8_t *)x)[i];
        y[i] = (v - z) * scale;
    }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma")))
static size_t minmax_avx2(const float *x, size_t n, float *low, float *high) {
    __m256 lo = _mm256_set1_ps(*low), hi = _mm256_set1_ps(*high);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        // The accumulator is the second operand: a NaN element leaves it unchanged.
        lo = _mm256_min_ps(v, lo);
        hi = _mm256_max_ps(v, hi);
    }
    float l[8], h[8];
    _mm256_storeu_ps(l, lo);
    _mm256_storeu_ps(h, hi);
    for (int j = 0; j < 8; j++) {
        if (l[j] < *low) *low = l[j];
        if (h[j] > *high) *high = h[j];
    }
    return i;
}
#endif

void ck_minmax_f32(const float *x, size_t n, float *low, float *high) {
    size_t i = 0;
#if defined(__x86_64__)
    if (simd_path()) i = minmax_avx2(x, n, low, high);
#endif
    for (; i < n; i++) {
        if (x[i] < *low) *low = x[i];
        if (x[i] > *high) *high = x[i];
    }
}

#if defined(__x86_64__)
// acc + bias (wrapping, as int32 hardware adds): the bias per element, one for all (bias_step 0), or none.
__attribute__((target("avx2,fma")))
static size_t requantize_avx2(const int32_t *acc, size_t n, const double *multiplier, int per_column,
                              const int32_t *bias, int bias_step, double zero, double low, double high, void *y,
                              int is_signed) {
    const __m256d vz = _mm256_set1_pd(zero), vl = _mm256_set1_pd(low), vh = _mm256_set1_pd(high);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256d m = per_column ? _mm256_loadu_pd(multiplier + i) : _mm256_set1_pd(multiplier[0]);
        __m128i sums = _mm_loadu_si128((const __m128i *)(acc + i));
        if (bias) sums = _mm_add_epi32(sums, bias_step ? _mm_loadu_si128((const __m128i *)(bias + i)) : _mm_set1_epi32(bias[0]));
        __m256d v = _mm256_mul_pd(_mm256_cvtepi32_pd(sums), m);
        v = _mm256_add_pd(_mm256_round_pd(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), vz);
        v = _mm256_min_pd(_mm256_max_pd(v, vl), vh);
        const __m128i q = _mm256_cvtpd_epi32(v);
        const __m128i words = _mm_packs_epi32(q, q);
        const __m128i bytes = is_signed ? _mm_packs_epi16(words, words) : _mm_packus_epi16(words, words);
        const int32_t four = _mm_cvtsi128_si32(bytes);
        memcpy((uint8_t *)y + i, &four, 4);
    }
    return i;
}

// Sixteen floats per vector, exact: the multiplier is a float32 value (formed in the scales' precision), so the
// float product t differs from the double one by at most 2^-23·|t| (2^-24 for the product, as much again for a
// sum of 2^24 or more rounded to float). Below |t| = 2^11 that is under 2^-12, so t rounds to the same integer
// unless it lies within 2^-10 of a half: such a vector (about one in a hundred) is redone in double. From 2^11 up
// the result clamps either way (the zero point and both bounds lie within [-128, 255]). NaN lands on `low` as in
// the double path. Four times the rate of the double path (QDQ MobileNetV2 spent 15% of its time requantizing).
__attribute__((target("avx512f,avx512vl,avx2,fma")))
static size_t requantize_avx512(const int32_t *acc, size_t n, const double *multiplier, int per_column,
                                const int32_t *bias, int bias_step, double zero, double low, double high, void *y) {
    const __m512 vz = _mm512_set1_ps((float)zero), vl = _mm512_set1_ps((float)low), vh = _mm512_set1_ps((float)high);
    const __m512 margin = _mm512_set1_ps(0.5f - 0.0009765625f);
    const __m512 big = _mm512_set1_ps(2048.0f);
    const __m512 shared = _mm512_set1_ps((float)multiplier[0]);
    const __m512d vzd = _mm512_set1_pd(zero), vld = _mm512_set1_pd(low), vhd = _mm512_set1_pd(high);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i sums = _mm512_loadu_si512((const void *)(acc + i));
        if (bias) {
            sums = _mm512_add_epi32(
                sums, bias_step ? _mm512_loadu_si512((const void *)(bias + i)) : _mm512_set1_epi32(bias[0]));
        }
        __m512 m = shared;
        if (per_column) {
            const __m256 lo = _mm512_cvtpd_ps(_mm512_loadu_pd(multiplier + i));
            const __m256 hi = _mm512_cvtpd_ps(_mm512_loadu_pd(multiplier + i + 8));
            m = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
        }
        const __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(sums), m);
        const __m512 r = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m512 distance = _mm512_abs_ps(_mm512_sub_ps(t, r));
        const __mmask16 near = _mm512_cmp_ps_mask(distance, margin, _CMP_GE_OQ) &
                               _mm512_cmp_ps_mask(_mm512_abs_ps(t), big, _CMP_LT_OQ);
        __m128i bytes;
        if (near == 0) {
            const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(r, vz), vl), vh);
            bytes = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v));
        } else {
            // Near a half: the double path for these sixteen.
            __m256i halves[2];
            for (int h = 0; h < 2; h++) {
                const __m512d md = per_column ? _mm512_loadu_pd(multiplier + i + 8 * h) : _mm512_set1_pd(multiplier[0]);
                const __m256i part = h == 0 ? _mm512_castsi512_si256(sums) : _mm512_extracti64x4_epi64(sums, 1);
                __m512d v = _mm512_mul_pd(_mm512_cvtepi32_pd(part), md);
                v = _mm512_add_pd(_mm512_roundscale_pd(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), vzd);
                halves[h] = _mm512_cvtpd_epi32(_mm512_min_pd(_mm512_max_pd(v, vld), vhd));
            }
            bytes = _mm512_cvtepi32_epi8(_mm512_inserti64x4(_mm512_castsi256_si512(halves[0]), halves[1], 1));
        }
        _mm_storeu_si128((__m128i *)((uint8_t *)y + i), bytes);
    }
    return i;
}
#endif

void ck_requantize(const int32_t *acc, size_t n, const double *multiplier, int per_column, const int32_t *bias,
                   int bias_step, double zero, double low, double high, void *y, int is_signed) {
    size_t i = 0;
#if defined(__x86_64__)
    if (simd_path()) {
        i = ck_kernel_isa()[3] == '5'
                ? requantize_avx512(acc, n, multiplier, per_column, bias, bias_step, zero, low, high, y)
                : requantize_avx2(acc, n, multiplier, per_column, bias, bias_step, zero, low, high, y, is_signed);
    }
#endif
    for (; i < n; i++) {
        const int32_t sum = bias ? (int32_t)((uint32_t)acc[i] + (uint32_t)bias[bias_step ? i : 0]) : acc[i];
        double v = nearbyint((double)sum * multiplier[per_column ? i : 0]) + zero;
        // NaN (from a NaN or infinite scale) lands on `low`, as the vector paths' max does.
        v = !(v >= low) ? low : (v > high ? high : v);
        store_byte(y, i, (int32_t)v, is_signed);
    }
}

// ---- float16 and int32 conversions. ----
#if defined(__x86_64__)
__attribute__((target("avx2,f16c")))
static size_t f16_to_f32_avx2(const uint16_t *x, size_t n, float *y) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    return i;
}

__attribute__((target("avx2,f16c")))
static size_t f32_to_f16_avx2(const float *x, size_t n, uint16_t *y) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    }
    return i;
}

static int f16c_path(void) {
    return simd_path() && __builtin_cpu_supports("f16c");
}
#endif

static float half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff, bits;
    if (exponent == 0x1f) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else {
            // Subnormal: normalize.
            int shift = 0;
            while (!(mantissa & 0x400)) { mantissa <<= 1; shift++; }
            mantissa &= 0x3ff;
            bits = sign | ((uint32_t)(127 - 15 - shift + 1) << 23) | (mantissa << 13);
        }
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t float_to_half(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    const uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    const uint32_t exponent = (bits >> 23) & 0xff, mantissa = bits & 0x7fffff;
    if (exponent == 0xff) return (uint16_t)(sign | 0x7c00 | (mantissa ? 0x200 | (mantissa >> 13) : 0));
    const int e = (int)exponent - 127 + 15;
    if (e >= 0x1f) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) {
        if (e < -10) return sign;
        // Subnormal result: shift the full mantissa, round half to even.
        const uint32_t full = mantissa | 0x800000;
        const int shift = 14 - e;
        uint32_t value = full >> shift;
        const uint32_t rest = full & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rest > half || (rest == half && (value & 1))) value++;
        return (uint16_t)(sign | value);
    }
    uint32_t value = ((uint32_t)e << 10) | (mantissa >> 13);
    const uint32_t rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (value & 1))) value++;  // may carry into the exponent: still right
    return (uint16_t)(sign | value);
}

void ck_convert_f16_f32(const uint16_t *x, size_t n, float *y) {
    size_t i = 0;
#if defined(__x86_64__)
    if (f16c_path()) i = f16_to_f32_avx2(x, n, y);
#endif
    for (; i < n; i++) y[i] = half_to_float(x[i]);
}

void ck_convert_f32_f16(const float *x, size_t n, uint16_t *y) {
    size_t i = 0;
#if defined(__x86_64__)
    if (f16c_path()) i = f32_to_f16_avx2(x, n, y);
#endif
    for (; i < n; i++) y[i] = float_to_half(x[i]);
}

void ck_convert_i32_f32(const int32_t *x, size_t n, float *y) {
    for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
}

// bfloat16 is the upper half of a float32: widening is a shift; narrowing rounds half to even on the dropped 16
// bits, and a NaN stays a (quiet) NaN. Plain loops: the compiler vectorizes them.
void ck_convert_bf16_f32(const uint16_t *x, size_t n, float *y) {
    for (size_t i = 0; i < n; i++) {
        const uint32_t bits = (uint32_t)x[i] << 16;
        memcpy(y + i, &bits, 4);
    }
}

void ck_convert_f32_bf16(const float *x, size_t n, uint16_t *y) {
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, 4);
        const int nan = (bits & 0x7fffffffu) > 0x7f800000u;
        const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
        y[i] = (uint16_t)(nan ? ((bits >> 16) | 0x40u) : rounded);
    }
}

// QLinearAdd as the three nodes it replaces compute it: each input dequantized ((v - zero) · scale, two
// roundings), the float32 sum, quantized (IEEE division, round half to even, plus the zero point, clamped).
#if defined(__x86_64__)
__attribute__((target("avx2,fma")))
static size_t qlinear_add_avx2(const void *a, int a_signed, float a_zero, float a_scale, const void *b, int b_signed,
                               float b_zero, float b_scale, size_t n, float y_scale, float y_zero, float low,
                               float high, void *y, int y_signed) {
    const __m256 za = _mm256_set1_ps(a_zero), sa = _mm256_set1_ps(a_scale), zb = _mm256_set1_ps(b_zero);
    const __m256 sb = _mm256_set1_ps(b_scale), sy = _mm256_set1_ps(y_scale), zy = _mm256_set1_ps(y_zero);
    const __m256 vl = _mm256_set1_ps(low), vh = _mm256_set1_ps(high);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i ab = _mm_loadl_epi64((const __m128i *)((const uint8_t *)a + i));
        const __m128i bb = _mm_loadl_epi64((const __m128i *)((const uint8_t *)b + i));
        const __m256 fa = _mm256_cvtepi32_ps(a_signed ? _mm256_cvtepi8_epi32(ab) : _mm256_cvtepu8_epi32(ab));
        const __m256 fb = _mm256_cvtepi32_ps(b_signed ? _mm256_cvtepi8_epi32(bb) : _mm256_cvtepu8_epi32(bb));
        const __m256 sum = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(fa, za), sa), _mm256_mul_ps(_mm256_sub_ps(fb, zb), sb));
        __m256 v = _mm256_round_ps(_mm256_div_ps(sum, sy), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(v, zy), vl), vh);
        const __m256i q = _mm256_cvtps_epi32(v);
        const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        const __m128i bytes = y_signed ? _mm_packs_epi16(words, words) : _mm_packus_epi16(words, words);
        _mm_storel_epi64((__m128i *)((uint8_t *)y + i), bytes);
    }
    return i;
}

__attribute__((target("avx512f,avx512vl,avx2,fma")))
static size_t qlinear_add_avx512(const void *a, int a_signed, float a_zero, float a_scale, const void *b,
                                 int b_signed, float b_zero, float b_scale, size_t n, float y_scale, float y_zero,
                                 float low, float high, void *y) {
    const __m512 za = _mm512_set1_ps(a_zero), sa = _mm512_set1_ps(a_scale), zb = _mm512_set1_ps(b_zero);
    const __m512 sb = _mm512_set1_ps(b_scale), sy = _mm512_set1_ps(y_scale), zy = _mm512_set1_ps(y_zero);
    const __m512 vl = _mm512_set1_ps(low), vh = _mm512_set1_ps(high);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m128i ab = _mm_loadu_si128((const __m128i *)((const uint8_t *)a + i));
        const __m128i bb = _mm_loadu_si128((const __m128i *)((const uint8_t *)b + i));
        const __m512 fa = _mm512_cvtepi32_ps(a_signed ? _mm512_cvtepi8_epi32(ab) : _mm512_cvtepu8_epi32(ab));
        const __m512 fb = _mm512_cvtepi32_ps(b_signed ? _mm512_cvtepi8_epi32(bb) : _mm512_cvtepu8_epi32(bb));
        const __m512 sum = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(fa, za), sa), _mm512_mul_ps(_mm512_sub_ps(fb, zb), sb));
        __m512 v = _mm512_roundscale_ps(_mm512_div_ps(sum, sy), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, zy), vl), vh);
        _mm_storeu_si128((__m128i *)((uint8_t *)y + i), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
    }
    return i;
}
#endif

void ck_qlinear_add(const void *a, int a_signed, int32_t a_zero, float a_scale, const void *b, int b_signed,
                    int32_t b_zero, float b_scale, size_t n, float y_scale, int32_t y_zero, int32_t low,
                    int32_t high, void *y, int y_signed) {
    size_t i = 0;
    const float za = (float)a_zero, zb = (float)b_zero, zy = (float)y_zero, lo = (float)low, hi = (float)high;
#if defined(__x86_64__)
    if (simd_path()) {
        i = ck_kernel_isa()[3] == '5'
                ? qlinear_add_avx512(a, a_signed, za, a_scale, b, b_signed, zb, b_scale, n, y_scale, zy, lo, hi, y)
                : qlinear_add_avx2(a, a_signed, za, a_scale, b, b_signed, zb, b_scale, n, y_scale, zy, lo, hi, y,
                                   y_signed);
    }
#endif
    for (; i < n; i++) {
        const float fa = a_signed ? (float)((const int8_t *)a)[i] : (float)((const uint8_t *)a)[i];
        const float fb = b_signed ? (float)((const int8_t *)b)[i] : (float)((const uint8_t *)b)[i];
        // Separate statements: no multiply-add contraction, the roundings of the unfused nodes.
        const float pa = (fa - za) * a_scale;
        const float pb = (fb - zb) * b_scale;
        const float sum = pa + pb;
        store_byte(y, i, (int32_t)clampf(nearbyintf(sum / y_scale) + zy, lo, hi), y_signed);
    }
}

// MaxPool on bytes (int8 models, and DequantizeLinear → MaxPool → QuantizeLinear with one scale and zero point,
// which is the max of the bytes): planes [plane_begin, plane_end) of a 2-D pooling without dilation. Each output row
// takes the maximum of its window's input rows into a padded row (the type's least value in the padding, which a
// window never picks over a real element: every window holds one), then of each window along it, 16 outputs at a
// time at strides 1 and 2 (the even bytes picked by a pack); signed bytes are compared with their sign bit flipped
// (an order-preserving map to unsigned).
void ck_maxpool_8(const uint8_t *x, int is_signed, size_t in_h, size_t in_w, size_t kernel_h, size_t kernel_w,
                  size_t stride_h, size_t stride_w, size_t pad_top, size_t pad_left, size_t out_h, size_t out_w,
                  uint8_t *y, size_t plane_begin, size_t plane_end, uint8_t *row) {
    const uint8_t flip = is_signed ? 0x80 : 0;
    const __m128i flipv = _mm_set1_epi8((char)flip), low_bytes = _mm_set1_epi16(0x00FF);
    // The padded row: windows of the last output end at (out_w - 1) · stride_w + kernel_w; 32 bytes of slack for the
    // 16-output groups past it.
    const size_t width = (out_w - 1) * stride_w + kernel_w;
    for (size_t p = plane_begin; p < plane_end; p++) {
        const uint8_t *plane = x + p * in_h * in_w;
        uint8_t *out_plane = y + p * out_h * out_w;
        for (size_t oy = 0; oy < out_h; oy++) {
            const ptrdiff_t top = (ptrdiff_t)(oy * stride_h) - (ptrdiff_t)pad_top;
            const size_t first = pad_left < width ? pad_left : width;
            const size_t count = in_w < width - first ? in_w : width - first;
            // Only the padding is cleared; each 16 columns take the max over the window's rows in a register.
            memset(row, 0, first);
            memset(row + first + count, 0, width + 64 - first - count);
            // The window's rows inside the image: [ky0, ky1) (none where a ceil-mode window lies past the end).
            const size_t ky0 = top < 0 ? (size_t)(-top) : 0;
            const ptrdiff_t end = top + (ptrdiff_t)kernel_h < (ptrdiff_t)in_h ? (ptrdiff_t)kernel_h : (ptrdiff_t)in_h - top;
            const size_t ky1 = end > (ptrdiff_t)ky0 ? (size_t)end : ky0;
            const uint8_t *src = ky1 > ky0 ? plane + (size_t)(top + (ptrdiff_t)ky0) * in_w : plane;
            uint8_t *dst = row + first;
            size_t i = 0;
            for (; i + 16 <= count; i += 16) {
                __m128i v = _mm_setzero_si128();
                for (size_t ky = ky0; ky < ky1; ky++)
                    v = _mm_max_epu8(
                        v, _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(src + (ky - ky0) * in_w + i)),
                                         flipv));
                _mm_storeu_si128((__m128i *)(void *)(dst + i), v);
            }
            for (; i < count; i++) {
                uint8_t v = 0;
                for (size_t ky = ky0; ky < ky1; ky++) {
                    const uint8_t b = (uint8_t)(src[(ky - ky0) * in_w + i] ^ flip);
                    if (b > v) v = b;
                }
                dst[i] = v;
            }
            uint8_t *out = out_plane + oy * out_w;
            size_t ox = 0;
            if (stride_w <= 2 && out_w >= 16) {
                // Groups of 16 outputs, the last one overlapping the one before (the same values written twice).
                for (size_t g = 0; g < out_w; g += 16) {
                    ox = g + 16 <= out_w ? g : out_w - 16;
                    // Window maxima at 16 (stride 1) or 32 (stride 2) consecutive starts.
                    __m128i m0 = _mm_setzero_si128(), m1 = _mm_setzero_si128();
                    const uint8_t *at = row + ox * stride_w;
                    for (size_t kx = 0; kx < kernel_w; kx++) {
                        m0 = _mm_max_epu8(m0, _mm_loadu_si128((const __m128i *)(const void *)(at + kx)));
                        if (stride_w == 2)
                            m1 = _mm_max_epu8(m1, _mm_loadu_si128((const __m128i *)(const void *)(at + 16 + kx)));
                    }
                    const __m128i r = stride_w == 2 ? _mm_packus_epi16(_mm_and_si128(m0, low_bytes), _mm_and_si128(m1, low_bytes)) : m0;
                    _mm_storeu_si128((__m128i *)(void *)(out + ox), _mm_xor_si128(r, flipv));
                }
                ox = out_w;
            }
            for (; ox < out_w; ox++) {
                uint8_t best = 0;
                for (size_t kx = 0; kx < kernel_w; kx++) {
                    const uint8_t v = row[ox * stride_w + kx];
                    if (v > best) best = v;
                }
                out[ox] = (uint8_t)(best ^ flip);
            }
        }
    }
}
