// Packed, cache-blocked single-precision GEMM: C = A·B (+ C), row-major.
//
// B is packed once (at plan time for weights) into panels of NR columns: panel p holds, for every k, the
// NR values B[k, p*NR ..< p*NR+NR] contiguously (zero-padded past N). A is read in place. The loops block
// K by KC and M by MC so a KC x NR panel slice stays in L1 and an MC x KC block of A in L2; the register
// tile is MR x NR (AVX-512: 12 x 32, AVX2+FMA: 6 x 16, generic: 4 x 16).
#include "CKernels.h"
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KC 384
#define MC 96

// Per thread: one packed MC x KC block of A (147 KB).
static _Thread_local float packed_a[MC * KC] __attribute__((aligned(64)));

size_t ck_gemm_panel_width(void) {
    const char *isa = ck_kernel_isa();
    return isa[3] == '5' ? 32 : 16;
}

size_t ck_packed_b_floats(size_t k, size_t n) {
    size_t nr = ck_gemm_panel_width();
    return ((n + nr - 1) / nr) * nr * k;
}

void ck_pack_b(size_t k, size_t n, const float *b, size_t ldb, int transposed, float *packed) {
    size_t nr = ck_gemm_panel_width();
    size_t panels = (n + nr - 1) / nr;
    for (size_t p = 0; p < panels; p++) {
        float *dst = packed + p * k * nr;
        size_t j0 = p * nr;
        size_t valid = n - j0 < nr ? n - j0 : nr;
        for (size_t kk = 0; kk < k; kk++) {
            float *row = dst + kk * nr;
            if (!transposed) {
                memcpy(row, b + kk * ldb + j0, valid * sizeof(float));
            } else {
                for (size_t j = 0; j < valid; j++) row[j] = b[(j0 + j) * ldb + kk];
            }
            for (size_t j = valid; j < nr; j++) row[j] = 0.0f;
        }
    }
}

#define CK_INLINE static inline __attribute__((always_inline))

// Calls tile(MR, ...) with the row count as a compile-time constant, so each tile size gets its own fully
// unrolled register allocation.
#define CK_CASE(tile, r) case r: tile(r, kc, a, lda, ks, bp, bs, c, ldc, acc, nv, te); break;
#define CK_DISPATCH_12(tile)                                                                                 \
    switch (mr) {                                                                                            \
        CK_CASE(tile, 12) CK_CASE(tile, 11) CK_CASE(tile, 10) CK_CASE(tile, 9) CK_CASE(tile, 8)               \
        CK_CASE(tile, 7) CK_CASE(tile, 6) CK_CASE(tile, 5) CK_CASE(tile, 4) CK_CASE(tile, 3) CK_CASE(tile, 2) \
        default: tile(1, kc, a, lda, ks, bp, bs, c, ldc, acc, nv, te); break;                                    \
    }
#define CK_DISPATCH_6(tile)                                                                                  \
    switch (mr) {                                                                                            \
        CK_CASE(tile, 6) CK_CASE(tile, 5) CK_CASE(tile, 4) CK_CASE(tile, 3) CK_CASE(tile, 2)                  \
        default: tile(1, kc, a, lda, ks, bp, bs, c, ldc, acc, nv, te); break;                                    \
    }

// The epilogues a tile applies in registers before its only store (the last K block): a bias per column (a
// convolution's filter in the transposed form), a bias per row (its filter in the plain form) and Relu, a clamp or
// HardSwish. Others (Swish, GELU) run over the stored tile.
typedef struct {
    const float *col_bias;  // at the tile's first column, or NULL
    const float *row_bias;  // at the tile's first row, or NULL
    float low, high;        // min(max(v, low), high), NaN kept; -inf/+inf for none
    int relu;               // max(v, 0) + 0: -0 becomes +0 as the scalar Relu makes it
    int hard_swish;         // v·min(max((v + 3)·(1/6), 0), 1) as ck_hard_swish (NaN kept), instead of the clamp
} ck_tile_ep;

// v = min(max((v + CB) + bias[r], low), high) (or Relu, or HardSwish) in the ISA's vectors P##_..._ps, CB the
// vector's column biases (when te->col_bias is set).
#define CK_TILE_EP(v, VT, P, r, CB)                                                                          \
    do {                                                                                                     \
        if (te->col_bias) v = P##_add_ps(v, CB);                                                             \
        if (te->row_bias) v = P##_add_ps(v, P##_set1_ps(te->row_bias[r]));                                   \
        if (te->relu) {                                                                                      \
            v = P##_add_ps(P##_max_ps(P##_setzero_ps(), v), P##_setzero_ps());                               \
        } else if (te->hard_swish) {                                                                         \
            /* max and min return their second operand, t, when it is NaN. */                               \
            const VT t = P##_mul_ps(P##_add_ps(v, P##_set1_ps(3.0f)), P##_set1_ps(1.0f / 6.0f));             \
            v = P##_mul_ps(v, P##_min_ps(P##_set1_ps(1.0f), P##_max_ps(P##_setzero_ps(), t)));               \
        } else {                                                                                             \
            v = P##_min_ps(P##_set1_ps(te->high), P##_max_ps(P##_set1_ps(te->low), v));                      \
        }                                                                                                    \
    } while (0)

// ---- AVX-512: 12 x 32 tile, 24 accumulators. ----
__attribute__((target("avx512f,avx512vl,avx2,fma")))
CK_INLINE void tile512(const int mr, size_t kc, const float *a, size_t lda, size_t ks, const float *bp, size_t bs, float *c, size_t ldc,
                       int accumulate, size_t nvalid, const ck_tile_ep *te) {
    // The first step multiplies rather than adding to zeroed accumulators: zeroing them in a loop became a
    // memset of the stack array and a reload of every accumulator per tile (7% of SqueezeNet's time).
    __m512 acc[12][2];
    {
        const __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
        for (int r = 0; r < mr; r++) {
            const __m512 av = _mm512_set1_ps(a[r * lda]);
            acc[r][0] = _mm512_mul_ps(av, b0);
            acc[r][1] = _mm512_mul_ps(av, b1);
        }
    }
    for (size_t k = 1; k < kc; k++) {
        const __m512 b0 = _mm512_loadu_ps(bp + k * bs);
        const __m512 b1 = _mm512_loadu_ps(bp + k * bs + 16);
        for (int r = 0; r < mr; r++) {
            const __m512 av = _mm512_set1_ps(a[r * lda + k * ks]);
            acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    const __mmask16 m0 = nvalid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nvalid) - 1);
    const __mmask16 m1 = nvalid >= 32 ? (__mmask16)0xFFFF : (nvalid <= 16 ? 0 : (__mmask16)((1u << (nvalid - 16)) - 1));
    __m512 cb0 = _mm512_setzero_ps(), cb1 = _mm512_setzero_ps();
    if (te && te->col_bias) {
        cb0 = _mm512_maskz_loadu_ps(m0, te->col_bias);
        cb1 = _mm512_maskz_loadu_ps(m1, te->col_bias + 16);
    }
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * ldc;
        if (accumulate) {
            acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_maskz_loadu_ps(m0, cr));
            acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_maskz_loadu_ps(m1, cr + 16));
        }
        if (te) {
            CK_TILE_EP(acc[r][0], __m512, _mm512, r, cb0);
            CK_TILE_EP(acc[r][1], __m512, _mm512, r, cb1);
        }
        _mm512_mask_storeu_ps(cr, m0, acc[r][0]);
        _mm512_mask_storeu_ps(cr + 16, m1, acc[r][1]);
    }
}

// The in-register epilogue of the tile whose first row is `row` and first column `col`: `value` with the biases
// moved there.
static inline const ck_tile_ep *tile_epilogue(const ck_tile_ep *value, const ck_epilogue *epilogue, size_t row,
                                              size_t col, ck_tile_ep *storage) {
    *storage = *value;
    storage->row_bias = epilogue->row_bias ? epilogue->row_bias + row : NULL;
    storage->col_bias = epilogue->col_bias ? epilogue->col_bias + col : NULL;
    return storage;
}

// The last panel of a matrix whose width is not a multiple of 32, when at most 16 columns are left: half the
// accumulators and half the multiply-adds of the full tile.
__attribute__((target("avx512f,avx512vl,avx2,fma")))
CK_INLINE void tile512half(const int mr, size_t kc, const float *a, size_t lda, size_t ks, const float *bp, size_t bs, float *c, size_t ldc,
                           int accumulate, size_t nvalid, const ck_tile_ep *te) {
    __m512 acc[12];
    {
        const __m512 b0 = _mm512_loadu_ps(bp);
        for (int r = 0; r < mr; r++) acc[r] = _mm512_mul_ps(_mm512_set1_ps(a[r * lda]), b0);
    }
    for (size_t k = 1; k < kc; k++) {
        const __m512 b0 = _mm512_loadu_ps(bp + k * bs);
        for (int r = 0; r < mr; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r * lda + k * ks]), b0, acc[r]);
    }
    const __mmask16 m0 = nvalid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nvalid) - 1);
    const __m512 cb0 = te && te->col_bias ? _mm512_maskz_loadu_ps(m0, te->col_bias) : _mm512_setzero_ps();
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * ldc;
        if (accumulate) acc[r] = _mm512_add_ps(acc[r], _mm512_maskz_loadu_ps(m0, cr));
        if (te) CK_TILE_EP(acc[r], __m512, _mm512, r, cb0);
        _mm512_mask_storeu_ps(cr, m0, acc[r]);
    }
}

__attribute__((target("avx512f,avx512vl,avx2,fma")))
static void kernel512half(int mr, size_t kc, const float *a, size_t lda, size_t ks, const float *bp, size_t bs, float *c, size_t ldc, int acc,
                          size_t nv, const ck_tile_ep *te) {
    CK_DISPATCH_12(tile512half)
}

__attribute__((target("avx512f,avx512vl,avx2,fma")))
static void kernel512(int mr, size_t kc, const float *a, size_t lda, size_t ks, const float *bp, size_t bs, float *c, size_t ldc, int acc, size_t nv,
                      const ck_tile_ep *te) {
    if (nv <= 16) {
        kernel512half(mr, kc, a, lda, ks, bp, bs, c, ldc, acc, nv, te);
        return;
    }
    CK_DISPATCH_12(tile512)
}

// ---- AVX2 + FMA: 6 x 16 tile, 12 accumulators. ----
__attribute__((target("avx2,fma")))
CK_INLINE void tile256(const int mr, size_t kc, const float *a, size_t lda, size_t ks, const float *bp, size_t bs, float *c, size_t ldc,
                       int accumulate, size_t nvalid, const ck_tile_ep *te) {
    __m256 acc[6][2];
    {
        const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
        for (int r = 0; r < mr; r++) {
            const __m256 av = _mm256_broadcast_ss(a + r * lda);
            acc[r][0] = _mm256_mul_ps(av, b0);
            acc[r][1] = _mm256_mul_ps(av, b1);
        }
    }
    for (size_t k = 1; k < kc; k++) {
        const __m256 b0 = _mm256_loadu_ps(bp + k * bs);
        const __m256 b1 = _mm256_loadu_ps(bp + k * bs + 8);
        for (int r = 0; r < mr; r++) {
            const __m256 av = _mm256_broadcast_ss(a + r * lda + k * ks);
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    // Column biases of a partial tile through the stack, zeros past nvalid.
    __m256 cb0 = _mm256_setzero_ps(), cb1 = _mm256_setzero_ps();
    if (te && te->col_bias) {
        float cb[16];
        for (size_t j = 0; j < 16; j++) cb[j] = j < nvalid ? te->col_bias[j] : 0.0f;
        cb0 = _mm256_loadu_ps(cb);
        cb1 = _mm256_loadu_ps(cb + 8);
    }
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * ldc;
        if (nvalid == 16) {
            if (accumulate) {
                acc[r][0] = _mm256_add_ps(acc[r][0], _mm256_loadu_ps(cr));
                acc[r][1] = _mm256_add_ps(acc[r][1], _mm256_loadu_ps(cr + 8));
            }
            if (te) {
                CK_TILE_EP(acc[r][0], __m256, _mm256, r, cb0);
                CK_TILE_EP(acc[r][1], __m256, _mm256, r, cb1);
            }
            _mm256_storeu_ps(cr, acc[r][0]);
            _mm256_storeu_ps(cr + 8, acc[r][1]);
        } else {
            float tmp[16];
            if (accumulate) {
                // The partial row through the stack: the lanes past nvalid add zeros and are not stored.
                for (size_t j = 0; j < 16; j++) tmp[j] = j < nvalid ? cr[j] : 0.0f;
                acc[r][0] = _mm256_add_ps(acc[r][0], _mm256_loadu_ps(tmp));
                acc[r][1] = _mm256_add_ps(acc[r][1], _mm256_loadu_ps(tmp + 8));
            }
            if (te) {
                CK_TILE_EP(acc[r][0], __m256, _mm256, r, cb0);
                CK_TILE_EP(acc[r][1], __m256, _mm256, r, cb1);
            }
            _mm256_storeu_ps(tmp, acc[r][0]);
            _mm256_storeu_ps(tmp + 8, acc[r][1]);
            for (size_t j = 0; j < nvalid; j++) cr[j] = tmp[j];
        }
    }
}

// The last panel of a matrix when at most 8 of its 16 columns are left (ResNet's 7x7 and 14x14 planes: 49 = 3·16 + 1,
// 196 = 12·16 + 4): one vector per row, up to 12 rows (the caller uses 8), instead of two vectors of which one is
// padding.
__attribute__((target("avx2,fma")))
CK_INLINE void tile256half(const int mr, size_t kc, const float *a, size_t lda, size_t ks, const float *bp, size_t bs, float *c, size_t ldc,
                           int accumulate, size_t nvalid, const ck_tile_ep *te) {
    __m256 acc[12];
    {
        const __m256 b0 = _mm256_loadu_ps(bp);
        for (int r = 0; r < mr; r++) acc[r] = _mm256_mul_ps(_mm256_broadcast_ss(a + r * lda), b0);
    }
    for (size_t k = 1; k < kc; k++) {
        const __m256 b0 = _mm256_loadu_ps(bp + k * bs);
        for (int r = 0; r < mr; r++) acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + r * lda + k * ks), b0, acc[r]);
    }
    // Partial rows through the stack, as tile256's: vmaskmovps is microcoded on AMD cores.
    __m256 cb0 = _mm256_setzero_ps();
    if (te && te->col_bias) {
        float cb[8];
        for (size_t j = 0; j < 8; j++) cb[j] = j < nvalid ? te->col_bias[j] : 0.0f;
        cb0 = _mm256_loadu_ps(cb);
    }
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * ldc;
        float tmp[8];
        if (accumulate) {
            for (size_t j = 0; j < 8; j++) tmp[j] = j < nvalid ? cr[j] : 0.0f;
            acc[r] = _mm256_add_ps(acc[r], _mm256_loadu_ps(tmp));
        }
        if (te) CK_TILE_EP(acc[r], __m256, _mm256, r, cb0);
        if (nvalid == 8) {
            _mm256_storeu_ps(cr, acc[r]);
        } else {
            _mm256_storeu_ps(tmp, acc[r]);
            for (size_t j = 0; j < nvalid; j++) cr[j] = tmp[j];
        }
    }
}

__attribute__((target("avx2,fma")))
static void kernel256half(int mr, size_t kc, const float *a, size_t lda, size_t ks, const float *bp, size_t bs, float *c, size_t ldc, int acc,
                          size_t nv, const ck_tile_ep *te) {
    CK_DISPATCH_12(tile256half)
}

__attribute__((target("avx2,fma")))
static void kernel256(int mr, size_t kc, const float *a, size_t lda, size_t ks, const float *bp, size_t bs, float *c, size_t ldc, int acc, size_t nv,
                      const ck_tile_ep *te) {
    CK_DISPATCH_6(tile256)
}

// ---- Generic: 4 x 16 tile in plain C. ----
static void kernelGeneric(int mr, size_t kc, const float *a, size_t lda, size_t ks, const float *bp, size_t bs, float *c, size_t ldc, int accumulate,
                          size_t nvalid) {
    float acc[4][16];
    memset(acc, 0, sizeof(acc));
    for (size_t k = 0; k < kc; k++) {
        for (int r = 0; r < mr; r++) {
            const float av = a[r * lda + k * ks];
            for (int j = 0; j < 16; j++) acc[r][j] += av * bp[k * bs + j];
        }
    }
    for (int r = 0; r < mr; r++) {
        for (size_t j = 0; j < nvalid; j++) c[r * ldc + j] = accumulate ? c[r * ldc + j] + acc[r][j] : acc[r][j];
    }
}

// Bias and activation on a finished tile of C while it is still in L1, compiled per ISA so the loops vectorize
// at the width the GEMM kernel uses.
#define CK_EPILOGUE_BODY(SWISH_BIASED)                                                                       \
    if (SWISH_BIASED && ep->activation == ck_activation_swish) {                                             \
        /* Bias and Swish in one pass (vector paths). */                                                     \
        ck_swish_rows_biased_fn swish_biased = SWISH_BIASED;                                                 \
        swish_biased(c, ldc, rows, cols, ep->row_bias ? ep->row_bias + row0 : NULL,                          \
                     ep->col_bias ? ep->col_bias + col0 : NULL);                                             \
        return;                                                                                              \
    }                                                                                                        \
    for (size_t r = 0; r < rows; r++) {                                                                      \
        float *cr = c + r * ldc;                                                                             \
        const float rb = ep->row_bias ? ep->row_bias[row0 + r] : 0.0f;                                       \
        if (ep->col_bias) {                                                                                  \
            const float *cb = ep->col_bias + col0;                                                           \
            for (size_t j = 0; j < cols; j++) cr[j] = (cr[j] + cb[j]) + rb;                                  \
        } else if (ep->row_bias) {                                                                           \
            for (size_t j = 0; j < cols; j++) cr[j] += rb;                                                   \
        }                                                                                                    \
        if (ep->activation == ck_activation_relu) {                                                          \
            for (size_t j = 0; j < cols; j++) {                                                              \
                const float v = cr[j];                                                                       \
                cr[j] = v > 0.0f ? v : (v != v ? v : 0.0f);                                                  \
            }                                                                                                \
        } else if (ep->activation == ck_activation_clip) {                                                   \
            const float lo = ep->low, hi = ep->high;                                                         \
            for (size_t j = 0; j < cols; j++) {                                                              \
                const float v = cr[j], t = v < lo ? lo : v;                                                  \
                cr[j] = v != v ? v : (t > hi ? hi : t);                                                      \
            }                                                                                                \
        } else if (ep->activation == ck_activation_hard_swish) {                                             \
            /* As ck_hard_swish: x + 3 exact near the kink at -3, then a product by 1/6. */                 \
            for (size_t j = 0; j < cols; j++) {                                                              \
                const float v = cr[j], t = (v + 3.0f) * (1.0f / 6.0f);                                       \
                cr[j] = v != v ? v : v * (t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t));                         \
            }                                                                                                \
        }                                                                                                    \
    }                                                                                                        \
    /* The transcendental activations once for the whole tile (their constants and dispatch paid once). */ \
    if (ep->activation == ck_activation_swish) ck_swish_rows(c, ldc, rows, cols, 1.0f);                      \
    else if (ep->activation == ck_activation_gelu) ck_gelu_rows(c, ldc, rows, cols);

#define CK_EPILOGUE_ARGS                                                                                     \
    (const ck_epilogue *ep, float *c, size_t ldc, size_t row0, size_t rows, size_t col0, size_t cols)

typedef void (*ck_swish_rows_biased_fn)(float *, size_t, size_t, size_t, const float *, const float *);
static void epilogue_generic CK_EPILOGUE_ARGS { CK_EPILOGUE_BODY((ck_swish_rows_biased_fn)NULL) }
__attribute__((target("avx2,fma"))) static void epilogue_avx2 CK_EPILOGUE_ARGS {
    CK_EPILOGUE_BODY(ck_swish_rows_biased_avx2)
}
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void epilogue_avx512 CK_EPILOGUE_ARGS {
    CK_EPILOGUE_BODY(ck_swish_rows_biased_avx512)
}

static inline void apply_epilogue(int level, const ck_epilogue *ep, float *c, size_t ldc, size_t row0, size_t rows,
                                  size_t col0, size_t cols) {
    if (level == 2) epilogue_avx512(ep, c, ldc, row0, rows, col0, cols);
    else if (level == 1) epilogue_avx2(ep, c, ldc, row0, rows, col0, cols);
    else epilogue_generic(ep, c, ldc, row0, rows, col0, cols);
}

void ck_apply_epilogue(const ck_epilogue *epilogue, float *c, size_t ldc, size_t rows, size_t cols) {
    const char *isa = ck_kernel_isa();
    const int level = isa[0] == 'a' ? (isa[3] == '5' ? 2 : 1) : 0;
    apply_epilogue(level, epilogue, c, ldc, 0, rows, 0, cols);
}

void ck_sgemm_packed(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *packed, int accumulate,
                     float *c, size_t ldc, size_t panel_begin, size_t panel_end) {
    ck_sgemm_packed_epilogue(m, n, k, a, lda, packed, accumulate, c, ldc, panel_begin, panel_end, NULL);
}

// ---- One row of A (m = 1): y = a·B panel by panel. The tiles' single accumulator per vector would wait on
// each FMA's latency; four independent k phases keep the FMA units busy (same panels, so threads may split). ----
__attribute__((target("avx512f,avx512vl,avx2,fma")))
static void gemv512(size_t k, const float *a, const float *bp, float *c, int accumulate, size_t nvalid) {
    __m512 s[8];
    for (int q = 0; q < 8; q++) s[q] = _mm512_setzero_ps();
    size_t kk = 0;
    for (; kk + 4 <= k; kk += 4) {
        for (int q = 0; q < 4; q++) {
            const __m512 av = _mm512_set1_ps(a[kk + q]);
            s[2 * q] = _mm512_fmadd_ps(av, _mm512_loadu_ps(bp + (kk + q) * 32), s[2 * q]);
            s[2 * q + 1] = _mm512_fmadd_ps(av, _mm512_loadu_ps(bp + (kk + q) * 32 + 16), s[2 * q + 1]);
        }
    }
    for (; kk < k; kk++) {
        const __m512 av = _mm512_set1_ps(a[kk]);
        s[0] = _mm512_fmadd_ps(av, _mm512_loadu_ps(bp + kk * 32), s[0]);
        s[1] = _mm512_fmadd_ps(av, _mm512_loadu_ps(bp + kk * 32 + 16), s[1]);
    }
    __m512 lo = _mm512_add_ps(_mm512_add_ps(s[0], s[2]), _mm512_add_ps(s[4], s[6]));
    __m512 hi = _mm512_add_ps(_mm512_add_ps(s[1], s[3]), _mm512_add_ps(s[5], s[7]));
    const __mmask16 m0 = nvalid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nvalid) - 1);
    const __mmask16 m1 = nvalid >= 32 ? (__mmask16)0xFFFF : (nvalid <= 16 ? 0 : (__mmask16)((1u << (nvalid - 16)) - 1));
    if (accumulate) {
        lo = _mm512_add_ps(lo, _mm512_maskz_loadu_ps(m0, c));
        hi = _mm512_add_ps(hi, _mm512_maskz_loadu_ps(m1, c + 16));
    }
    _mm512_mask_storeu_ps(c, m0, lo);
    _mm512_mask_storeu_ps(c + 16, m1, hi);
}

__attribute__((target("avx2,fma")))
static void gemv256(size_t k, const float *a, const float *bp, float *c, int accumulate, size_t nvalid) {
    __m256 s[8];
    for (int q = 0; q < 8; q++) s[q] = _mm256_setzero_ps();
    size_t kk = 0;
    for (; kk + 4 <= k; kk += 4) {
        for (int q = 0; q < 4; q++) {
            const __m256 av = _mm256_broadcast_ss(a + kk + q);
            s[2 * q] = _mm256_fmadd_ps(av, _mm256_loadu_ps(bp + (kk + q) * 16), s[2 * q]);
            s[2 * q + 1] = _mm256_fmadd_ps(av, _mm256_loadu_ps(bp + (kk + q) * 16 + 8), s[2 * q + 1]);
        }
    }
    for (; kk < k; kk++) {
        const __m256 av = _mm256_broadcast_ss(a + kk);
        s[0] = _mm256_fmadd_ps(av, _mm256_loadu_ps(bp + kk * 16), s[0]);
        s[1] = _mm256_fmadd_ps(av, _mm256_loadu_ps(bp + kk * 16 + 8), s[1]);
    }
    float out[16];
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(s[0], s[2]), _mm256_add_ps(s[4], s[6])));
    _mm256_storeu_ps(out + 8, _mm256_add_ps(_mm256_add_ps(s[1], s[3]), _mm256_add_ps(s[5], s[7])));
    for (size_t j = 0; j < nvalid; j++) c[j] = accumulate ? c[j] + out[j] : out[j];
}

static void gemvGeneric(size_t k, const float *a, const float *bp, float *c, int accumulate, size_t nvalid) {
    float s[4][16] = {{0}};
    size_t kk = 0;
    for (; kk + 4 <= k; kk += 4)
        for (int q = 0; q < 4; q++)
            for (int j = 0; j < 16; j++) s[q][j] += a[kk + q] * bp[(kk + q) * 16 + j];
    for (; kk < k; kk++)
        for (int j = 0; j < 16; j++) s[0][j] += a[kk] * bp[kk * 16 + j];
    for (size_t j = 0; j < nvalid; j++) {
        const float v = (s[0][j] + s[1][j]) + (s[2][j] + s[3][j]);
        c[j] = accumulate ? c[j] + v : v;
    }
}

// The GEMM over panels [panel_begin, panel_end) of B, panel p's row k at b + p·panel_stride + k·bs: packed
// panels (panel_stride k·NR, bs NR), or full panels of a row-major B read in place (panel_stride NR, bs ldb).
static void sgemm_panels(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *packed,
                         size_t panel_stride, size_t bs, int accumulate, float *c, size_t ldc, size_t panel_begin,
                         size_t panel_end, const ck_epilogue *epilogue) {
    const char *isa = ck_kernel_isa();
    const int level = isa[0] == 'a' ? (isa[3] == '5' ? 2 : 1) : 0;
    const size_t nr = level == 2 ? 32 : 16;
    const size_t mrMax = level == 2 ? 12 : (level == 1 ? 6 : 4);
    if (epilogue && !epilogue->row_bias && !epilogue->col_bias && epilogue->activation == ck_activation_none) {
        epilogue = NULL;
    }
    if (k == 0) {
        size_t j0 = panel_begin * nr, j1 = panel_end * nr < n ? panel_end * nr : n;
        if (j1 <= j0) return;
        if (!accumulate) {
            for (size_t i = 0; i < m; i++) memset(c + i * ldc + j0, 0, (j1 - j0) * sizeof(float));
        }
        if (epilogue) apply_epilogue(level, epilogue, c + j0, ldc, 0, m, j0, j1 - j0);
        return;
    }
    if (m == 1 && bs == nr) {
        for (size_t p = panel_begin; p < panel_end; p++) {
            const size_t j0 = p * nr;
            const size_t nvalid = n - j0 < nr ? n - j0 : nr;
            const float *bp = packed + p * panel_stride;
            if (level == 2) gemv512(k, a, bp, c + j0, accumulate, nvalid);
            else if (level == 1) gemv256(k, a, bp, c + j0, accumulate, nvalid);
            else gemvGeneric(k, a, bp, c + j0, accumulate, nvalid);
            if (epilogue) apply_epilogue(level, epilogue, c + j0, ldc, 0, 1, j0, nvalid);
        }
        return;
    }
    // A is packed per (K block, M block) for long rows: rows 8 KB or more apart (K >= 2048) make the tile's
    // broadcasts touch mr distant pages per step (2048³: 93 → 100 GFLOP/s, 4096³: 89 → 96 on one Zen 4 core).
    // Packed, each tile is k-major (mr values per k) and contiguous. Shorter rows run faster unpacked: the
    // copy is not repaid (CNN and encoder layers measured 5-8% slower packed).
    // AVX2: a last panel with at most 8 columns runs as one-vector tiles (tile256half).
    const int half_last = level == 1 && panel_end > panel_begin && panel_end * nr > n && n - (panel_end - 1) * nr <= 8;
    const int packs_a = lda >= 2048 && panel_end - panel_begin >= 8 && m >= 2 * mrMax;
    // Biases with Relu, a clamp, HardSwish or nothing after them run in the tile's registers (the vector
    // kernels); anything else over the stored tile.
    const int in_tile = epilogue && level > 0 &&
                        (epilogue->activation == ck_activation_none || epilogue->activation == ck_activation_relu ||
                         epilogue->activation == ck_activation_clip || epilogue->activation == ck_activation_hard_swish);
    ck_tile_ep te_value = {NULL, NULL, -__builtin_inff(), __builtin_inff(), 0, 0};
    if (in_tile) {
        te_value.relu = epilogue->activation == ck_activation_relu;
        te_value.hard_swish = epilogue->activation == ck_activation_hard_swish;
        if (epilogue->activation == ck_activation_clip) {
            te_value.low = epilogue->low;
            te_value.high = epilogue->high;
        }
    }
    for (size_t kk = 0; kk < k; kk += KC) {
        const size_t kc = k - kk < KC ? k - kk : KC;
        const int acc = accumulate || kk > 0;
        const int last = kk + kc == k;
        for (size_t i0 = 0; i0 < m; i0 += MC) {
            const size_t i1 = m - i0 < MC ? m : i0 + MC;
            // Rows split into equal tiles (sizes differ by at most one) rather than full tiles and a
            // remainder: 64 rows run as 11,11,11,11,10,10, not 12,12,12,12,12,4.
            const size_t block = i1 - i0, tiles = (block + mrMax - 1) / mrMax;
            const size_t base = block / tiles, extra = block % tiles;
            if (packs_a) {
                size_t i = i0;
                float *dst = packed_a;
                for (size_t t = 0; t < tiles; t++) {
                    const size_t mr = base + (t < extra ? 1 : 0);
                    for (size_t q = 0; q < kc; q++)
                        for (size_t r = 0; r < mr; r++) dst[q * mr + r] = a[(i + r) * lda + kk + q];
                    dst += mr * kc;
                    i += mr;
                }
            }
            const int deferred = last && epilogue && !in_tile;
            // Panels per epilogue group: about 64 KB of C.
            const size_t group = block * nr >= 16384 ? 1 : 16384 / (block * nr);
            size_t group_begin = panel_begin;
            for (size_t p = panel_begin; p + (size_t)half_last < panel_end; p++) {
                const size_t j0 = p * nr;
                const size_t nvalid = n - j0 < nr ? n - j0 : nr;
                const float *bp = packed + p * panel_stride + kk * bs;
                size_t i = i0;
                const float *tile_a = packed_a;
                for (size_t t = 0; t < tiles; t++) {
                    const int mr = (int)(base + (t < extra ? 1 : 0));
                    const float *ai = packs_a ? tile_a : a + i * lda + kk;
                    const size_t rs = packs_a ? 1 : lda, ks = packs_a ? (size_t)mr : 1;
                    tile_a += (size_t)mr * kc;
                    float *ci = c + i * ldc + j0;
                    ck_tile_ep te_rows;
                    const ck_tile_ep *te = last && in_tile ? tile_epilogue(&te_value, epilogue, i, j0, &te_rows) : NULL;
                    if (level == 2) kernel512(mr, kc, ai, rs, ks, bp, bs, ci, ldc, acc, nvalid, te);
                    else if (level == 1) kernel256(mr, kc, ai, rs, ks, bp, bs, ci, ldc, acc, nvalid, te);
                    else kernelGeneric(mr, kc, ai, rs, ks, bp, bs, ci, ldc, acc, nvalid);
                    i += (size_t)mr;
                }
                // The epilogue over a group of panels' finished rows, still in L2: a tile's rows are only 16 or
                // 32 values long, and per tile the loops' setup cost GELU a third more with AVX2.
                if (deferred && (p + 1 - group_begin == group || p + 2 + (size_t)half_last > panel_end)) {
                    const size_t g0 = group_begin * nr, g1 = j0 + nvalid;
                    apply_epilogue(level, epilogue, c + i0 * ldc + g0, ldc, i0, block, g0, g1 - g0);
                    group_begin = p + 1;
                }
            }
            if (half_last) {
                // Tiles of up to 8 rows of A read in place (the packed tiles hold 6): 12 rows measured faster in
                // cache, but rows a multiple of 4 KB apart (2048-wide weights) then share too few L1 ways.
                const size_t p = panel_end - 1, j0 = p * nr, nvalid = n - j0;
                const float *bp = packed + p * panel_stride + kk * bs;
                const size_t tiles8 = (block + 7) / 8, base8 = block / tiles8, extra8 = block % tiles8;
                size_t i = i0;
                for (size_t t = 0; t < tiles8; t++) {
                    const int mr = (int)(base8 + (t < extra8 ? 1 : 0));
                    float *ci = c + i * ldc + j0;
                    ck_tile_ep te_rows;
                    const ck_tile_ep *te = last && in_tile ? tile_epilogue(&te_value, epilogue, i, j0, &te_rows) : NULL;
                    kernel256half(mr, kc, a + i * lda + kk, lda, 1, bp, bs, ci, ldc, acc, nvalid, te);
                    i += (size_t)mr;
                }
                if (deferred) apply_epilogue(level, epilogue, c + i0 * ldc + j0, ldc, i0, block, j0, nvalid);
            }
        }
    }
}

void ck_sgemm_packed_epilogue(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *packed,
                              int accumulate, float *c, size_t ldc, size_t panel_begin, size_t panel_end,
                              const ck_epilogue *epilogue) {
    const size_t nr = ck_gemm_panel_width();
    sgemm_panels(m, n, k, a, lda, packed, k * nr, nr, accumulate, c, ldc, panel_begin, panel_end, epilogue);
}

size_t ck_sgemm_rowmajor_b_group(size_t m, size_t n, size_t k) {
    // Grouped only for an A of 1 MB and more (beyond L2, streamed again for every group): for smaller ones,
    // ResNet-50's 64 -> 256 layers over 3136 columns, groups of 64 panels ran 15-25% slower than one at a time.
    const size_t nr = ck_gemm_panel_width();
    const size_t panels = (n + nr - 1) / nr;
    if (m == 0 || k == 0 || m > SIZE_MAX / k || m * k < ((size_t)1 << 18) || k > ((size_t)1 << 18) / nr) return 1;
    const size_t fit = ((size_t)1 << 16) / (k * nr);  // 256 KB of panels
    const size_t g = fit < panels ? fit : panels;
    return g > 1 ? g : 1;
}

void ck_sgemm_rowmajor_b_epilogue(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                                  size_t ldb, int accumulate, float *c, size_t ldc, size_t panel_begin,
                                  size_t panel_end, const ck_epilogue *epilogue, float *scratch,
                                  size_t scratch_panels) {
    const size_t nr = ck_gemm_panel_width();
    // Full panels are read in place, row k at b + k·ldb, and only a partial last panel is copied: the copy
    // cost as much as the multiply-adds of the narrow projections of inverted residuals (16-32 filters over a
    // 112x112 or 56x56 plane), whose panels only one to four register tiles read. With AVX-512 reading in
    // place measured faster for every pointwise layer of MobileNetV2 and level on ResNet-50's; with AVX2's
    // 6-row tiles ResNet-50's 64-filter layers (11 tiles over 256 rows a page apart) ran 2-4% slower, so
    // there only up to 48 rows.
    const int wide = ck_kernel_isa()[3] == '5';
    if (m >= 2 && (wide || m <= 48)) {
        const size_t full_end = n / nr < panel_end ? n / nr : panel_end;
        if (panel_begin < full_end) {
            sgemm_panels(m, full_end * nr, k, a, lda, b, nr, ldb, accumulate, c, ldc, panel_begin, full_end,
                         epilogue);
            panel_begin = full_end;
        }
    }
    const size_t most = ck_sgemm_rowmajor_b_group(m, n, k);
    if (scratch_panels == 0) scratch_panels = 1;
    if (scratch_panels > most) scratch_panels = most;
    while (panel_begin < panel_end) {
        const size_t j0 = panel_begin * nr;
        if (j0 >= n) break;
        // Up to scratch_panels panels at a time: each row of B copied in one run of their columns (a panel's 16
        // columns alone are a quarter of a page-strided line), and A's blocks read once for all of them, not
        // once per panel (ResNet-50's 512 x 2048 weights over a 7x7 plane's four panels).
        const size_t group = panel_end - panel_begin < scratch_panels ? panel_end - panel_begin : scratch_panels;
        const size_t width = n - j0 < group * nr ? n - j0 : group * nr;
        const size_t count = (width + nr - 1) / nr;
        // The columns of every row of B, panel by panel, zero-padded to NR: a copy that stays in cache while all
        // of A's row tiles use it (packing the whole of B first wrote and re-read it through memory). A partial
        // panel is zeroed once, not per row.
        if (width < count * nr) memset(scratch + (count - 1) * k * nr, 0, k * nr * sizeof(float));
        if (width == count * nr && (nr == 16 || nr == 32)) {
            // Whole panels: copies of a constant size, inlined (a library call per 64-byte row cost 5% of
            // MobileNetV2 at two threads).
            for (size_t kk = 0; kk < k; kk++) {
                const float *row = b + kk * ldb + j0;
                for (size_t q = 0; q < count; q++) {
                    if (nr == 16) memcpy(scratch + q * k * nr + kk * nr, row + q * nr, 16 * sizeof(float));
                    else memcpy(scratch + q * k * nr + kk * nr, row + q * nr, 32 * sizeof(float));
                }
            }
        } else if (count == 1) {
            for (size_t kk = 0; kk < k; kk++) memcpy(scratch + kk * nr, b + kk * ldb + j0, width * sizeof(float));
        } else {
            for (size_t kk = 0; kk < k; kk++) {
                const float *row = b + kk * ldb + j0;
                for (size_t q = 0; q < count; q++) {
                    const size_t cols = width - q * nr < nr ? width - q * nr : nr;
                    memcpy(scratch + q * k * nr + kk * nr, row + q * nr, cols * sizeof(float));
                }
            }
        }
        ck_epilogue shifted;
        const ck_epilogue *ep = epilogue;
        if (epilogue && epilogue->col_bias) {
            shifted = *epilogue;
            shifted.col_bias = epilogue->col_bias + j0;
            ep = &shifted;
        }
        ck_sgemm_packed_epilogue(m, width, k, a, lda, scratch, accumulate, c + j0, ldc, 0, count, ep);
        panel_begin += count;
    }
}

// y[i] = A[i, :]·x for rows [row_begin, row_end) of a row-major A (a 1x1 convolution of a 1x1 image: the squeeze
// and excitation layers of MobileNetV3 and EfficientNet), 16 independent lanes per row summed in a fixed order.
#define CK_GEMV_ROWS_BODY                                                                                    \
    for (size_t i = row_begin; i < row_end; i++) {                                                           \
        const float *ar = a + i * lda;                                                                       \
        float lanes[16] = {0};                                                                               \
        size_t j = 0;                                                                                        \
        for (; j + 16 <= k; j += 16)                                                                         \
            for (size_t l = 0; l < 16; l++) lanes[l] += ar[j + l] * x[j + l];                                \
        float sum = 0.0f;                                                                                    \
        for (size_t l = 0; l < 16; l++) sum += lanes[l];                                                     \
        for (; j < k; j++) sum += ar[j] * x[j];                                                              \
        y[i] = sum;                                                                                          \
    }
#define CK_GEMV_ROWS_ARGS (size_t row_begin, size_t row_end, size_t k, const float *a, size_t lda, const float *x, float *y)
static void gemv_rows_generic CK_GEMV_ROWS_ARGS { CK_GEMV_ROWS_BODY }
__attribute__((target("avx2,fma"))) static void gemv_rows_avx2 CK_GEMV_ROWS_ARGS { CK_GEMV_ROWS_BODY }
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void gemv_rows_avx512 CK_GEMV_ROWS_ARGS { CK_GEMV_ROWS_BODY }

void ck_gemv_rows(size_t row_begin, size_t row_end, size_t k, const float *a, size_t lda, const float *x, float *y) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') gemv_rows_avx512(row_begin, row_end, k, a, lda, x, y);
    else if (isa[0] == 'a') gemv_rows_avx2(row_begin, row_end, k, a, lda, x, y);
    else gemv_rows_generic(row_begin, row_end, k, a, lda, x, y);
}
