#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// CPU features found at run time (bit set of ck_feature_*).
enum {
    ck_feature_sse42 = 1 << 0,
    ck_feature_avx = 1 << 1,
    ck_feature_avx2 = 1 << 2,
    ck_feature_fma = 1 << 3,
    ck_feature_avx512f = 1 << 4,
    ck_feature_avx512bw = 1 << 5,
    ck_feature_avx512vl = 1 << 6,
    ck_feature_avx512vnni = 1 << 7,
    ck_feature_avx512bf16 = 1 << 8,
    ck_feature_neon = 1 << 9,
};

/// The features of the CPU this process runs on, read once.
uint32_t ck_cpu_features(void);

/// The instruction set the float kernels dispatch to: "avx512", "avx2" or "generic". The environment variable
/// INFERENCE_CPU_ISA ("avx2" or "generic") narrows it, read once.
const char *ck_kernel_isa(void);

/// C[m, n] = alpha * sum_k A[m, k] * B[k, n] + beta * C[m, n]; row-major, B stored as K x N (ldb >= n).
/// With beta == 0, C is not read.
void ck_sgemm_nn(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda, const float *b,
                 size_t ldb, float beta, float *c, size_t ldc);

/// C[m, n] = alpha * sum_k A[m, k] * B[n, k] + beta * C[m, n]; row-major, B stored as N x K (ldb >= k).
/// The dot-product form, used where N is small (GEMV-like shapes).
void ck_sgemm_nt(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda, const float *b,
                 size_t ldb, float beta, float *c, size_t ldc);

/// The scalar reference GEMM (same contract as ck_sgemm_nn) that tests compare the SIMD kernels against.
void ck_sgemm_nn_reference(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
                           const float *b, size_t ldb, float beta, float *c, size_t ldc);

/// Columns per packed B panel for the ISA in use (32 with AVX-512, else 16).
size_t ck_gemm_panel_width(void);

/// Floats needed to pack a K x N matrix B (N rounded up to whole panels).
size_t ck_packed_b_floats(size_t k, size_t n);

/// Packs B (K x N row-major with ldb, or N x K when `transposed`) into panels for ck_sgemm_packed.
void ck_pack_b(size_t k, size_t n, const float *b, size_t ldb, int transposed, float *packed);

/// C[m, n] = A[m, k]·B (+ C when `accumulate`) for the panels [panel_begin, panel_end) of a packed B; row-major A
/// and C. Disjoint panel ranges touch disjoint columns of C, so threads may split the panels.
void ck_sgemm_packed(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *packed, int accumulate,
                     float *c, size_t ldc, size_t panel_begin, size_t panel_end);

/// y[i] = 1 / (1 + exp(-x[i])); x and y may alias.
void ck_sigmoid(const float *x, float *y, size_t count);

/// Vectorized float32 exp, erf, tanh and GELU (erf form); x and y may alias; NaN propagates.
void ck_exp(const float *x, float *y, size_t count);
void ck_erf(const float *x, float *y, size_t count);
void ck_tanh(const float *x, float *y, size_t count);
void ck_gelu(const float *x, float *y, size_t count);

/// Softmax (or log-softmax) over each contiguous row of n values; x and y may alias.
void ck_softmax_rows(const float *x, float *y, size_t rows, size_t n, int logarithm);

/// y[i] = max(x[i], 0); x and y may alias. NaN propagates.
void ck_relu(const float *x, float *y, size_t count);

#ifdef __cplusplus
}
#endif

#endif
