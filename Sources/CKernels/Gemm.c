// Row-major single-precision GEMM. Each body is written once as an always-inline function and compiled
// three times (generic, AVX2+FMA, AVX-512) so the compiler vectorizes it for each instruction set; the
// entry points pick one by the CPU features read at run time. These unblocked loops serve small and odd shapes
// (the inner dimension kept contiguous so they vectorize cleanly); large products go to the cache-blocked,
// packed kernels of PackedGemm.c.
#include "CKernels.h"
#include <string.h>

#define CK_INLINE static inline __attribute__((always_inline))

// C[i, :] = beta * C[i, :] + alpha * sum_k A[i, k] * B[k, :]: axpy over contiguous rows of B.
CK_INLINE void sgemm_nn_body(size_t m, size_t n, size_t k, float alpha, const float *restrict a, size_t lda,
                             const float *restrict b, size_t ldb, float beta, float *restrict c, size_t ldc) {
    for (size_t i = 0; i < m; i++) {
        float *restrict ci = c + i * ldc;
        if (beta == 0.0f) {
            memset(ci, 0, n * sizeof(float));
        } else if (beta != 1.0f) {
            for (size_t j = 0; j < n; j++) ci[j] *= beta;
        }
        const float *restrict ai = a + i * lda;
        size_t p = 0;
        // Four rows of B per pass: four independent multiply-adds per element of C.
        for (; p + 4 <= k; p += 4) {
            const float a0 = alpha * ai[p], a1 = alpha * ai[p + 1], a2 = alpha * ai[p + 2], a3 = alpha * ai[p + 3];
            const float *restrict b0 = b + p * ldb;
            const float *restrict b1 = b0 + ldb;
            const float *restrict b2 = b1 + ldb;
            const float *restrict b3 = b2 + ldb;
            for (size_t j = 0; j < n; j++) ci[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
        }
        for (; p < k; p++) {
            const float ap = alpha * ai[p];
            const float *restrict bp = b + p * ldb;
            for (size_t j = 0; j < n; j++) ci[j] += ap * bp[j];
        }
    }
}

// C[i, j] = beta * C[i, j] + alpha * dot(A[i, :], B[j, :]): eight partial sums per dot product.
CK_INLINE void sgemm_nt_body(size_t m, size_t n, size_t k, float alpha, const float *restrict a, size_t lda,
                             const float *restrict b, size_t ldb, float beta, float *restrict c, size_t ldc) {
    for (size_t i = 0; i < m; i++) {
        const float *restrict ai = a + i * lda;
        for (size_t j = 0; j < n; j++) {
            const float *restrict bj = b + j * ldb;
            float acc[16] = {0};
            size_t p = 0;
            for (; p + 16 <= k; p += 16) {
                for (size_t q = 0; q < 16; q++) acc[q] += ai[p + q] * bj[p + q];
            }
            float sum = 0.0f;
            for (size_t q = 0; q < 16; q++) sum += acc[q];
            for (; p < k; p++) sum += ai[p] * bj[p];
            float *cij = c + i * ldc + j;
            *cij = beta == 0.0f ? alpha * sum : alpha * sum + beta * *cij;
        }
    }
}

#define CK_DEFINE_VARIANTS(name, args, call)                                                                 \
    static void name##_generic args { name##_body call; }                                                  \
    __attribute__((target("avx2,fma"))) static void name##_avx2 args { name##_body call; }                 \
    __attribute__((target("avx512f,avx512vl,avx2,fma"))) static void name##_avx512 args { name##_body call; }

#define GEMM_ARGS                                                                                            \
    (size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda, const float *b, size_t ldb,     \
     float beta, float *c, size_t ldc)
#define GEMM_CALL (m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

CK_DEFINE_VARIANTS(sgemm_nn, GEMM_ARGS, GEMM_CALL)
CK_DEFINE_VARIANTS(sgemm_nt, GEMM_ARGS, GEMM_CALL)

typedef void (*gemm_fn) GEMM_ARGS;

static int isa_level(void) {
    static int level = -1;
    if (level >= 0) return level;
    const char *isa = ck_kernel_isa();
    level = isa[0] == 'a' ? (isa[3] == '5' ? 2 : 1) : 0;
    return level;
}

void ck_sgemm_nn GEMM_ARGS {
    static const gemm_fn table[3] = {sgemm_nn_generic, sgemm_nn_avx2, sgemm_nn_avx512};
    table[isa_level()] GEMM_CALL;
}

// Dot products of length k <= 16 (narrow models such as the default Linear(10 → 1)) in double: products of
// floats are exact there, so α·sum + β·C rounded once is the float nearest the exact value on every ISA,
// instead of a 16-lane loop that never runs and a float scalar tail.
CK_INLINE void sgemm_nt_short_body(size_t m, size_t n, size_t k, float alpha, const float *restrict a, size_t lda,
                                   const float *restrict b, size_t ldb, float beta, float *restrict c, size_t ldc) {
    // Eight rows at a time: eight independent sums keep the FMA units busy (one row's sum is a chain of
    // dependent additions).
    for (size_t j = 0; j < n; j++) {
        const float *restrict bj = b + j * ldb;
        size_t i = 0;
        for (; i + 8 <= m; i += 8) {
            double sums[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (size_t p = 0; p < k; p++) {
                const double bp = (double)bj[p];
                for (size_t r = 0; r < 8; r++) sums[r] += (double)a[(i + r) * lda + p] * bp;
            }
            for (size_t r = 0; r < 8; r++) {
                float *cij = c + (i + r) * ldc + j;
                *cij = beta == 0.0f ? (float)((double)alpha * sums[r])
                                    : (float)((double)alpha * sums[r] + (double)beta * *cij);
            }
        }
        for (; i < m; i++) {
            double sum = 0.0;
            for (size_t p = 0; p < k; p++) sum += (double)a[i * lda + p] * (double)bj[p];
            float *cij = c + i * ldc + j;
            *cij = beta == 0.0f ? (float)((double)alpha * sum) : (float)((double)alpha * sum + (double)beta * *cij);
        }
    }
}
CK_DEFINE_VARIANTS(sgemm_nt_short, GEMM_ARGS, GEMM_CALL)

void ck_sgemm_nt GEMM_ARGS {
    static const gemm_fn table[3] = {sgemm_nt_generic, sgemm_nt_avx2, sgemm_nt_avx512};
    static const gemm_fn short_table[3] = {sgemm_nt_short_generic, sgemm_nt_short_avx2, sgemm_nt_short_avx512};
    if (k <= 16) {
        short_table[isa_level()] GEMM_CALL;
        return;
    }
    table[isa_level()] GEMM_CALL;
}

void ck_sgemm_nn_reference GEMM_ARGS {
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            double sum = 0.0;
            for (size_t p = 0; p < k; p++) sum += (double)a[i * lda + p] * (double)b[p * ldb + j];
            float *cij = c + i * ldc + j;
            *cij = beta == 0.0f ? (float)(alpha * sum) : (float)(alpha * sum + beta * *cij);
        }
    }
}
