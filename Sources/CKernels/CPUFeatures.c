#include "CKernels.h"

#include <stdlib.h>
#include <string.h>

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
    if (__builtin_cpu_supports("avx512dq")) f |= ck_feature_avx512dq;
#elif defined(__aarch64__)
    f |= ck_feature_neon;
#endif
    cached = f;
    return f;
}

static const char *ck_detect_kernel_isa(void) {
    uint32_t f = ck_cpu_features();
    const char *best = "generic";
    if ((f & ck_feature_avx2) && (f & ck_feature_fma)) best = "avx2";
    if ((f & ck_feature_avx512f) && (f & ck_feature_avx512vl)) best = "avx512";
    // INFERENCE_CPU_ISA may narrow the kernels (to test or compare the narrower paths), never widen them.
    const char *requested = getenv("INFERENCE_CPU_ISA");
    if (requested == NULL) return best;
    if (strcmp(requested, "generic") == 0) return "generic";
    if (strcmp(requested, "avx2") == 0 && strcmp(best, "avx512") == 0) return "avx2";
    return best;
}

const char *ck_kernel_isa(void) {
    static const char *cached = NULL;
    const char *isa = __atomic_load_n(&cached, __ATOMIC_ACQUIRE);
    if (isa != NULL) return isa;
    isa = ck_detect_kernel_isa();
    __atomic_store_n(&cached, isa, __ATOMIC_RELEASE);
    return isa;
}
