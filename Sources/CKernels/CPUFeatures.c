#include "CKernels.h"

uint32_t ck_cpu_features(void) {
    static uint32_t cached = 0xffffffffu;
    if (cached != 0xffffffffu) return cached;
    uint32_t f = 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) f |= ck_feature_sse42;
    if (__builtin_cpu_supports("avx")) f |= ck_feature_avx;
    if (__builtin_cpu_supports("avx2")) f |= ck_feature_avx2;
    if (__builtin_cpu_supports("fma")) f |= ck_feature_fma;
    if (__builtin_cpu_supports("avx512f")) f |= ck_feature_avx512f;
    if (__builtin_cpu_supports("avx512bw")) f |= ck_feature_avx512bw;
    if (__builtin_cpu_supports("avx512vl")) f |= ck_feature_avx512vl;
    if (__builtin_cpu_supports("avx512vnni")) f |= ck_feature_avx512vnni;
    if (__builtin_cpu_supports("avx512bf16")) f |= ck_feature_avx512bf16;
#elif defined(__aarch64__)
    f |= ck_feature_neon;
#endif
    cached = f;
    return f;
}

const char *ck_kernel_isa(void) {
    uint32_t f = ck_cpu_features();
    if ((f & ck_feature_avx512f) && (f & ck_feature_avx512vl)) return "avx512";
    if ((f & ck_feature_avx2) && (f & ck_feature_fma)) return "avx2";
    return "generic";
}
