// The requantization of int32 sums to bytes shared by the integer GEMM's tiles and the integer depthwise kernel:
// y = clamp(round_half_even((sum + bias) * multiplier) + zero, low, high), the values ck_requantize gives (the
// double formula), computed in float and redone in double where the float product lies within 2^-10 of a half
// (as requantize_avx512 argues, the float product of an exact float32 multiplier errs by at most 2^-23 of itself,
// so below 2^11 it rounds alike elsewhere; from 2^11 up the result clamps either way, and a vector redone there for
// nothing costs only time: these paths skip requantize_avx512's test for it).
#ifndef CK_REQUANT_H
#define CK_REQUANT_H
#include <immintrin.h>
#include <stdint.h>

#if defined(__x86_64__)
// The core, per lane: sums v (bias added), the multiplier as float (mf) and as double (md, two halves of eight
// lanes), the zero and bounds as float vectors and as doubles; the clamped results as int32 lanes.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"), always_inline)) static inline __m512i
ck_requant_core16(__m512i v, __m512 mf, const __m512d md[2], __m512 vz, __m512 vl, __m512 vh, double zero,
                  double low, double high) {
    // t = v · m + zero in one rounding (the zero is an integer, so t's fraction is that of v · m): below 2^11 in
    // magnitude v · m errs by at most 2^-13 from float(v) and t by 2^-13 more from its rounding, so away from a
    // half by 2^-10, round(t) is round(v · m) + zero; from 2^11 up t lies beyond the bounds either way. Clamped
    // before the conversion, which rounds to nearest even.
    const __m512 t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), mf, vz);
    // t minus t rounded to the nearest integer (even on ties), in one instruction.
    const __m512 fraction = _mm512_reduce_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __mmask16 near = _mm512_cmp_ps_mask(_mm512_abs_ps(fraction), _mm512_set1_ps(0.5f - 0.0009765625f),
                                              _CMP_GE_OQ);
    if (near == 0)
        return _mm512_cvt_roundps_epi32(_mm512_min_ps(_mm512_max_ps(t, vl), vh),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512d dz = _mm512_set1_pd(zero), dl = _mm512_set1_pd(low), dh = _mm512_set1_pd(high);
    __m256i halves[2];
    for (int h = 0; h < 2; h++) {
        const __m256i part = h == 0 ? _mm512_castsi512_si256(v) : _mm512_extracti64x4_epi64(v, 1);
        __m512d d = _mm512_mul_pd(_mm512_cvtepi32_pd(part), md[h]);
        d = _mm512_add_pd(_mm512_roundscale_pd(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), dz);
        halves[h] = _mm512_cvtpd_epi32(_mm512_min_pd(_mm512_max_pd(d, dl), dh));
    }
    return _mm512_inserti64x4(_mm512_castsi256_si512(halves[0]), halves[1], 1);
}

__attribute__((target("avx2"), always_inline)) static inline __m256i
ck_requant_core8(__m256i v, __m256 mf, const __m256d md[2], double zero, double low, double high) {
    const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(v), mf);
    const __m256 r = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 distance = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(t, r));
    const __m256 near = _mm256_cmp_ps(distance, _mm256_set1_ps(0.5f - 0.0009765625f), _CMP_GE_OQ);
    if (_mm256_movemask_ps(near) == 0) {
        const __m256 y = _mm256_min_ps(
            _mm256_max_ps(_mm256_add_ps(r, _mm256_set1_ps((float)zero)), _mm256_set1_ps((float)low)),
            _mm256_set1_ps((float)high));
        return _mm256_cvtps_epi32(y);
    }
    const __m256d dz = _mm256_set1_pd(zero), dl = _mm256_set1_pd(low), dh = _mm256_set1_pd(high);
    __m128i q[2];
    for (int h = 0; h < 2; h++) {
        const __m128i part = h == 0 ? _mm256_castsi256_si128(v) : _mm256_extracti128_si256(v, 1);
        __m256d d = _mm256_mul_pd(_mm256_cvtepi32_pd(part), md[h]);
        d = _mm256_add_pd(_mm256_round_pd(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), dz);
        q[h] = _mm256_cvtpd_epi32(_mm256_min_pd(_mm256_max_pd(d, dl), dh));
    }
    return _mm256_inserti128_si256(_mm256_castsi128_si256(q[0]), q[1], 1);
}

// Sixteen bytes from sixteen sums with the bias already added and one multiplier; mf is that multiplier broadcast,
// vz, vl, vh the zero and bounds as floats (prepared once by callers that requantize many vectors alike).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"), always_inline)) static inline __m128i
ck_requant16_prepared(__m512i v, __m512 mf, double multiplier, __m512 vz, __m512 vl, __m512 vh, double zero, double low,
                      double high) {
    const __m512d md[2] = {_mm512_set1_pd(multiplier), _mm512_set1_pd(multiplier)};
    return _mm512_cvtepi32_epi8(ck_requant_core16(v, mf, md, vz, vl, vh, zero, low, high));
}

// Sixteen bytes from sixteen sums (bias added wrapping).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"), always_inline)) static inline __m128i
ck_requant16_avx512(__m512i v, int32_t bias, double multiplier, double zero, double low, double high) {
    return ck_requant16_prepared(_mm512_add_epi32(v, _mm512_set1_epi32(bias)), _mm512_set1_ps((float)multiplier),
                                 multiplier, _mm512_set1_ps((float)zero), _mm512_set1_ps((float)low),
                                 _mm512_set1_ps((float)high), zero, low, high);
}

// Eight bytes (the low half of the result) from eight sums. Measured: the double path alone (requantize_avx2's)
// cost QDQ MobileNetV2's integer depthwise layers twice their multiply-adds.
__attribute__((target("avx2"), always_inline)) static inline __m128i
ck_requant8_avx2(__m256i v, int32_t bias, double multiplier, double zero, double low, double high, int is_signed) {
    const __m256d md[2] = {_mm256_set1_pd(multiplier), _mm256_set1_pd(multiplier)};
    const __m256i q = ck_requant_core8(_mm256_add_epi32(v, _mm256_set1_epi32(bias)),
                                       _mm256_set1_ps((float)multiplier), md, zero, low, high);
    const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    return is_signed ? _mm_packs_epi16(words, words) : _mm_packus_epi16(words, words);
}

// Two vectors of eight sums of one row (bias added here) to sixteen bytes, the first vector's in the low half: the
// AVX-512 core's one rounding (t = v · m + zero fused, its argument above), one near-half test for both vectors,
// the clamp on the rounded floats and one pack for both (the AVX2 pair windows' stores: a 16 -> 96 1x1 layer spent
// two thirds of its time requantizing eight bytes at a time through ck_requant8_avx2).
__attribute__((target("avx2,fma"), always_inline)) static inline __m128i
ck_requant2x8_avx2(__m256i a0, __m256i a1, __m256i bias, __m256 mf, double multiplier, __m256 vz, __m256 vl,
                   __m256 vh, double zero, double low, double high, int is_signed) {
    const __m256i v0 = _mm256_add_epi32(a0, bias), v1 = _mm256_add_epi32(a1, bias);
    const __m256 t0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v0), mf, vz);
    const __m256 t1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v1), mf, vz);
    const __m256 r0 = _mm256_round_ps(t0, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 r1 = _mm256_round_ps(t1, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 distance =
        _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(t0, r0)), _mm256_andnot_ps(sign, _mm256_sub_ps(t1, r1)));
    __m256i q0, q1;
    if (_mm256_movemask_ps(_mm256_cmp_ps(distance, _mm256_set1_ps(0.5f - 0.0009765625f), _CMP_GE_OQ)) == 0) {
        // Integers already: the conversion is exact.
        q0 = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r0, vl), vh));
        q1 = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r1, vl), vh));
    } else {
        const __m256d md[2] = {_mm256_set1_pd(multiplier), _mm256_set1_pd(multiplier)};
        q0 = ck_requant_core8(v0, _mm256_set1_ps((float)multiplier), md, zero, low, high);
        q1 = ck_requant_core8(v1, _mm256_set1_ps((float)multiplier), md, zero, low, high);
    }
    // words: q0 0-3, q1 0-3 | q0 4-7, q1 4-7; bytes alike per 128-bit lane, gathered to q0 0-7, q1 0-7.
    const __m256i words = _mm256_packs_epi32(q0, q1);
    const __m256i bytes = is_signed ? _mm256_packs_epi16(words, words) : _mm256_packus_epi16(words, words);
    return _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 0, 4, 1, 5)));
}

// Per lane: each lane its own multiplier (mf float, md double halves) and bias; the clamped results as int32 lanes.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"), always_inline)) static inline __m512i
ck_requant_lanes16_avx512(__m512i v, __m512i bias, __m512 mf, const __m512d md[2], double zero, double low,
                          double high) {
    return ck_requant_core16(_mm512_add_epi32(v, bias), mf, md, _mm512_set1_ps((float)zero),
                             _mm512_set1_ps((float)low), _mm512_set1_ps((float)high), zero, low, high);
}

__attribute__((target("avx2"), always_inline)) static inline __m256i
ck_requant_lanes8_avx2(__m256i v, __m256i bias, __m256 mf, const __m256d md[2], double zero, double low, double high) {
    return ck_requant_core8(_mm256_add_epi32(v, bias), mf, md, zero, low, high);
}
#endif
#endif
