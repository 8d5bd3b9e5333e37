// im2col for 2-D convolution, written straight into the packed-panel layout ck_sgemm_packed reads: element
// (row r, output position o) goes to panel o / nr, row r, lane o % nr. Rows are (channel, ky, kx).
#include "CKernels.h"
#include <immintrin.h>
#include <string.h>

// Writes `count` values (zeros when src is NULL) for row r starting at output position o, across panels.
// Runs are short (an output row, at most one panel), so the copies are inline loops, not libc calls.
#define CK_PUT_RUN_BODY                                                                                      \
    while (count > 0) {                                                                                      \
        const size_t lane = o % nr;                                                                          \
        const size_t take = nr - lane < count ? nr - lane : count;                                           \
        float *dst = col + (o / nr - panel0) * panel_stride + r * nr + lane;                                 \
        if (src) {                                                                                           \
            for (size_t j = 0; j < take; j++) dst[j] = src[j];                                               \
            src += take;                                                                                     \
        } else {                                                                                             \
            for (size_t j = 0; j < take; j++) dst[j] = 0.0f;                                                 \
        }                                                                                                    \
        o += take;                                                                                           \
        count -= take;                                                                                       \
    }

#define CK_IM2COL_BODY                                                                                       \
    const size_t kernel = kernel_h * kernel_w;                                                               \
    const size_t panel_stride = rows * nr;                                                                   \
    float gathered[256];                                                                                     \
    for (size_t r = row_begin; r < row_end; r++) {                                                           \
        const size_t c = r / kernel, kp = r % kernel;                                                        \
        const ptrdiff_t ky = (ptrdiff_t)(kp / kernel_w), kx = (ptrdiff_t)(kp % kernel_w);                    \
        const float *xc = x + c * in_h * in_w;                                                               \
        /* Columns ox with 0 <= ox·stride + offset < in_w are inside the image. */                           \
        const ptrdiff_t offset = kx * (ptrdiff_t)dilation_w - pad_left;                                      \
        size_t lo = 0, hi = out_w;                                                                           \
        while (lo < out_w && (ptrdiff_t)(lo * stride_w) + offset < 0) lo++;                                  \
        while (hi > lo && (ptrdiff_t)((hi - 1) * stride_w) + offset >= (ptrdiff_t)in_w) hi--;                \
        for (size_t oy = 0; oy < out_h; oy++) {                                                              \
            const ptrdiff_t iy = (ptrdiff_t)(oy * stride_h) - pad_top + ky * (ptrdiff_t)dilation_h;          \
            const size_t o = oy * out_w;                                                                     \
            if (iy < 0 || iy >= (ptrdiff_t)in_h || lo == hi) {                                               \
                PUT_RUN(col, nr, panel_stride, 0, r, o, NULL, out_w);                                           \
                continue;                                                                                    \
            }                                                                                                \
            const float *src = xc + (size_t)iy * in_w;                                                       \
            if (lo > 0) PUT_RUN(col, nr, panel_stride, 0, r, o, NULL, lo);                                      \
            if (stride_w == 1) {                                                                             \
                PUT_RUN(col, nr, panel_stride, 0, r, o + lo, src + (ptrdiff_t)lo + offset, hi - lo);            \
            } else {                                                                                         \
                for (size_t start = lo; start < hi; start += 256) {                                          \
                    const size_t n = hi - start < 256 ? hi - start : 256;                                    \
                    const float *first = src + (ptrdiff_t)(start * stride_w) + offset;                       \
                    if (stride_w == 2) {                                                                     \
                        /* Every second value in vectors (the gather of stride-2 layers: UNet's 32 -> 64     \
                           at 128x128 spent 1 ms here); `first` reads stop at the row's end. */              \
                        GATHER2(first, gathered, n, (size_t)((xc + (size_t)iy * in_w + in_w) - first));       \
                    } else {                                                                                 \
                        for (size_t j = 0; j < n; j++) gathered[j] = first[(ptrdiff_t)(j * stride_w)];       \
                    }                                                                                        \
                    PUT_RUN(col, nr, panel_stride, 0, r, o + start, gathered, n);                               \
                }                                                                                            \
            }                                                                                                \
            if (hi < out_w) PUT_RUN(col, nr, panel_stride, 0, r, o + hi, NULL, out_w - hi);                     \
        }                                                                                                    \
    }

#define CK_IM2COL_ARGS                                                                                       \
    (const float *x, size_t in_h, size_t in_w, size_t kernel_h, size_t kernel_w, size_t stride_h,            \
     size_t stride_w, size_t dilation_h, size_t dilation_w, ptrdiff_t pad_top, ptrdiff_t pad_left,           \
     size_t out_h, size_t out_w, float *col, size_t nr, size_t rows, size_t row_begin, size_t row_end)

#define CK_PUT_RUN_ARGS                                                                                      \
    (float *col, size_t nr, size_t panel_stride, size_t panel0, size_t r, size_t o, const float *src, size_t count)

static inline __attribute__((always_inline)) void put_run_generic CK_PUT_RUN_ARGS { CK_PUT_RUN_BODY }
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void put_run_avx2 CK_PUT_RUN_ARGS {
    CK_PUT_RUN_BODY
}
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static inline __attribute__((always_inline)) void
put_run_avx512 CK_PUT_RUN_ARGS { CK_PUT_RUN_BODY }

// Panels [panel_begin, panel_end) of every row, written from the start of `col` (one chunk of the matrix, for a
// GEMM that multiplies it while it is in cache): per row and output row, the run of inside columns that falls in
// the chunk, zeros around it; the inside columns from the window's offset in constant time.
#define CK_IM2COL_RANGE_BODY                                                                                 \
    const size_t kernel = kernel_h * kernel_w;                                                               \
    const size_t panel_stride = rows * nr;                                                                   \
    const size_t outputs = out_h * out_w;                                                                    \
    const size_t o_begin = panel_begin * nr, o_end = panel_end * nr < outputs ? panel_end * nr : outputs;    \
    if (o_begin >= o_end) return;                                                                            \
    float gathered[256];                                                                                     \
    for (size_t r = 0; r < rows; r++) {                                                                      \
        const size_t c = r / kernel, kp = r % kernel;                                                        \
        const ptrdiff_t ky = (ptrdiff_t)(kp / kernel_w), kx = (ptrdiff_t)(kp % kernel_w);                    \
        const float *xc = x + c * in_h * in_w;                                                               \
        const ptrdiff_t offset = kx * (ptrdiff_t)dilation_w - pad_left, sw_ = (ptrdiff_t)stride_w;           \
        /* Inside columns: 0 <= ox·stride + offset < in_w. */                                                \
        ptrdiff_t lo_ = offset < 0 ? (-offset + sw_ - 1) / sw_ : 0;                                          \
        ptrdiff_t hi_ = (ptrdiff_t)in_w - offset <= 0 ? 0 : ((ptrdiff_t)in_w - offset - 1) / sw_ + 1;        \
        if (hi_ > (ptrdiff_t)out_w) hi_ = (ptrdiff_t)out_w;                                                  \
        if (lo_ > hi_) lo_ = hi_;                                                                            \
        const size_t lo = (size_t)lo_, hi = (size_t)hi_;                                                     \
        for (size_t oy = o_begin / out_w; oy * out_w < o_end; oy++) {                                        \
            const size_t row0 = oy * out_w;                                                                  \
            const size_t a = o_begin > row0 ? o_begin - row0 : 0;                                            \
            const size_t b = o_end - row0 < out_w ? o_end - row0 : out_w;                                    \
            const ptrdiff_t iy = (ptrdiff_t)(oy * stride_h) - pad_top + ky * (ptrdiff_t)dilation_h;          \
            if (iy < 0 || iy >= (ptrdiff_t)in_h || lo == hi) {                                               \
                PUT_RUN(col, nr, panel_stride, panel_begin, r, row0 + a, NULL, b - a);                       \
                continue;                                                                                    \
            }                                                                                                \
            const float *src = xc + (size_t)iy * in_w;                                                       \
            const size_t in0 = a > lo ? a : lo, in1 = b < hi ? b : hi;                                       \
            if (in0 >= in1) {                                                                                \
                PUT_RUN(col, nr, panel_stride, panel_begin, r, row0 + a, NULL, b - a);                       \
                continue;                                                                                    \
            }                                                                                                \
            if (in0 > a) PUT_RUN(col, nr, panel_stride, panel_begin, r, row0 + a, NULL, in0 - a);            \
            if (stride_w == 1) {                                                                             \
                PUT_RUN(col, nr, panel_stride, panel_begin, r, row0 + in0, src + (ptrdiff_t)in0 + offset, in1 - in0); \
            } else {                                                                                         \
                for (size_t start = in0; start < in1; start += 256) {                                        \
                    const size_t n = in1 - start < 256 ? in1 - start : 256;                                  \
                    const float *first = src + (ptrdiff_t)(start * stride_w) + offset;                       \
                    if (stride_w == 2) {                                                                     \
                        GATHER2(first, gathered, n, (size_t)((src + in_w) - first));                         \
                    } else {                                                                                 \
                        for (size_t j = 0; j < n; j++) gathered[j] = first[(ptrdiff_t)(j * stride_w)];       \
                    }                                                                                        \
                    PUT_RUN(col, nr, panel_stride, panel_begin, r, row0 + start, gathered, n);               \
                }                                                                                            \
            }                                                                                                \
            if (in1 < b) PUT_RUN(col, nr, panel_stride, panel_begin, r, row0 + in1, NULL, b - in1);          \
        }                                                                                                    \
    }
#define CK_IM2COL_RANGE_ARGS                                                                                 \
    (const float *x, size_t in_h, size_t in_w, size_t kernel_h, size_t kernel_w, size_t stride_h,            \
     size_t stride_w, size_t dilation_h, size_t dilation_w, ptrdiff_t pad_top, ptrdiff_t pad_left,           \
     size_t out_h, size_t out_w, float *col, size_t nr, size_t rows, size_t panel_begin, size_t panel_end)

// gathered[j] = first[2j] for j < n, reading at most `avail` values from `first` (whole vectors while they fit,
// then one at a time).
static inline __attribute__((always_inline)) void gather2_generic(const float *first, float *gathered, size_t n,
                                                                  size_t avail) {
    (void)avail;
    for (size_t j = 0; j < n; j++) gathered[j] = first[2 * j];
}
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void gather2_avx2(
    const float *first, float *gathered, size_t n, size_t avail) {
    size_t j = 0;
    for (; j + 8 <= n && 2 * j + 16 <= avail; j += 8) {
        const __m256 v0 = _mm256_loadu_ps(first + 2 * j), v1 = _mm256_loadu_ps(first + 2 * j + 8);
        const __m256 evens = _mm256_shuffle_ps(v0, v1, 0x88);
        _mm256_storeu_ps(gathered + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(evens), 0xD8)));
    }
    for (; j < n; j++) gathered[j] = first[2 * j];
}
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static inline __attribute__((always_inline)) void gather2_avx512(
    const float *first, float *gathered, size_t n, size_t avail) {
    const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    size_t j = 0;
    for (; j + 16 <= n && 2 * j + 32 <= avail; j += 16) {
        const __m512 v0 = _mm512_loadu_ps(first + 2 * j), v1 = _mm512_loadu_ps(first + 2 * j + 16);
        _mm512_storeu_ps(gathered + j, _mm512_permutex2var_ps(v0, evens, v1));
    }
    for (; j < n; j++) gathered[j] = first[2 * j];
}
#define PUT_RUN put_run_generic
#define GATHER2 gather2_generic
static void im2col_generic CK_IM2COL_ARGS { CK_IM2COL_BODY }
static void im2col_range_generic CK_IM2COL_RANGE_ARGS { CK_IM2COL_RANGE_BODY }
#undef PUT_RUN
#undef GATHER2
#define PUT_RUN put_run_avx2
#define GATHER2 gather2_avx2
__attribute__((target("avx2,fma"))) static void im2col_avx2 CK_IM2COL_ARGS { CK_IM2COL_BODY }
__attribute__((target("avx2,fma"))) static void im2col_range_avx2 CK_IM2COL_RANGE_ARGS { CK_IM2COL_RANGE_BODY }
#undef PUT_RUN
#undef GATHER2
#define PUT_RUN put_run_avx512
#define GATHER2 gather2_avx512
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void im2col_runs_avx512 CK_IM2COL_ARGS { CK_IM2COL_BODY }
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void im2col_range_avx512 CK_IM2COL_RANGE_ARGS {
    CK_IM2COL_RANGE_BODY
}
#undef PUT_RUN
#undef GATHER2

static inline __mmask16 lanes_below(ptrdiff_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : (n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1));
}

// Unit horizontal stride, whole image up to 4096 outputs: build each im2col row contiguously with masked
// 16-lane moves (an output row is one or two moves; padding lanes load as zero), then move it into the panels.
// Masked-off lanes are never read, so the shifted source pointers may point past the row's ends.
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void im2col_avx512 CK_IM2COL_ARGS {
    const size_t outputs = out_h * out_w;
    if (stride_w != 1 || outputs > 4096 || nr != 32) {
        im2col_runs_avx512(x, in_h, in_w, kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top,
                           pad_left, out_h, out_w, col, nr, rows, row_begin, row_end);
        return;
    }
    float line[4096 + 32] __attribute__((aligned(64)));
    const size_t kernel = kernel_h * kernel_w;
    const size_t panel_stride = rows * nr;
    const size_t panels = (outputs + nr - 1) / nr;
    for (size_t r = row_begin; r < row_end; r++) {
        const size_t c = r / kernel, kp = r % kernel;
        const ptrdiff_t ky = (ptrdiff_t)(kp / kernel_w), kx = (ptrdiff_t)(kp % kernel_w);
        const float *xc = x + c * in_h * in_w;
        const ptrdiff_t offset = kx * (ptrdiff_t)dilation_w - pad_left;
        // Valid output columns: 0 <= ox + offset < in_w.
        const ptrdiff_t lo = offset < 0 ? -offset : 0;
        const ptrdiff_t hi = (ptrdiff_t)in_w - offset < (ptrdiff_t)out_w ? (ptrdiff_t)in_w - offset : (ptrdiff_t)out_w;
        for (size_t oy = 0; oy < out_h; oy++) {
            const ptrdiff_t iy = (ptrdiff_t)(oy * stride_h) - pad_top + ky * (ptrdiff_t)dilation_h;
            float *d = line + oy * out_w;
            const int inside = iy >= 0 && iy < (ptrdiff_t)in_h && lo < hi;
            const float *src = inside ? xc + (size_t)iy * in_w + offset : NULL;
            for (ptrdiff_t j = 0; j < (ptrdiff_t)out_w; j += 16) {
                const __mmask16 store = lanes_below((ptrdiff_t)out_w - j);
                __mmask16 load = 0;
                if (inside) load = store & lanes_below(hi - j) & (__mmask16)~lanes_below(lo - j);
                const __m512 v = load ? _mm512_maskz_loadu_ps(load, src + j) : _mm512_setzero_ps();
                _mm512_mask_storeu_ps(d + j, store, v);
            }
        }
        for (size_t p = 0; p < panels; p++) {
            float *dst = col + p * panel_stride + r * nr;
            const ptrdiff_t left = (ptrdiff_t)(outputs - p * nr);
            _mm512_mask_storeu_ps(dst, lanes_below(left), _mm512_maskz_loadu_ps(lanes_below(left), line + p * nr));
            _mm512_mask_storeu_ps(dst + 16, lanes_below(left - 16),
                                  _mm512_maskz_loadu_ps(lanes_below(left - 16), line + p * nr + 16));
        }
    }
}

void ck_im2col_panels_2d(const float *x, size_t in_h, size_t in_w, size_t kernel_h, size_t kernel_w,
                         size_t stride_h, size_t stride_w, size_t dilation_h, size_t dilation_w, ptrdiff_t pad_top,
                         ptrdiff_t pad_left, size_t out_h, size_t out_w, float *col, size_t nr, size_t rows,
                         size_t row_begin, size_t row_end) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') {
        im2col_avx512(x, in_h, in_w, kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top,
                      pad_left, out_h, out_w, col, nr, rows, row_begin, row_end);
    } else if (isa[0] == 'a') {
        im2col_avx2(x, in_h, in_w, kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left,
                    out_h, out_w, col, nr, rows, row_begin, row_end);
    } else {
        im2col_generic(x, in_h, in_w, kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top,
                       pad_left, out_h, out_w, col, nr, rows, row_begin, row_end);
    }
}

void ck_im2col_panel_range_2d(const float *x, size_t in_h, size_t in_w, size_t kernel_h, size_t kernel_w,
                              size_t stride_h, size_t stride_w, size_t dilation_h, size_t dilation_w,
                              ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w, float *col, size_t nr,
                              size_t rows, size_t panel_begin, size_t panel_end) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5') {
        im2col_range_avx512(x, in_h, in_w, kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top,
                            pad_left, out_h, out_w, col, nr, rows, panel_begin, panel_end);
    } else if (isa[0] == 'a') {
        im2col_range_avx2(x, in_h, in_w, kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top,
                          pad_left, out_h, out_w, col, nr, rows, panel_begin, panel_end);
    } else {
        im2col_range_generic(x, in_h, in_w, kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top,
                             pad_left, out_h, out_w, col, nr, rows, panel_begin, panel_end);
    }
}

// Resize of `planes` contiguous [in_h][in_w] planes to [out_h][out_w], separable: each output row blends two
// input rows (low_h, high_h with weight w_h of the high one), each of those blended across columns (low_w,
// high_w, w_w) into `scratch` (2·out_w floats). Nearest is the same with zero weights.
#define CK_RESIZE_BODY                                                                                       \
    float *r0 = scratch, *r1 = scratch + out_w;                                                              \
    for (size_t p = 0; p < planes; p++) {                                                                    \
        const float *xp = x + p * in_h * in_w;                                                               \
        float *yp = y + p * out_h * out_w;                                                                   \
        for (size_t oh = 0; oh < out_h; oh++) {                                                              \
            const float *a = xp + low_h[oh] * in_w, *b = xp + high_h[oh] * in_w;                             \
            const float wh = w_h[oh];                                                                        \
            for (size_t ow = 0; ow < out_w; ow++) {                                                          \
                const float ww = w_w[ow];                                                                    \
                r0[ow] = a[low_w[ow]] + ww * (a[high_w[ow]] - a[low_w[ow]]);                                 \
            }                                                                                                \
            float *yr = yp + oh * out_w;                                                                     \
            if (wh == 0.0f) {                                                                                \
                for (size_t ow = 0; ow < out_w; ow++) yr[ow] = r0[ow];                                       \
                continue;                                                                                    \
            }                                                                                                \
            for (size_t ow = 0; ow < out_w; ow++) {                                                          \
                const float ww = w_w[ow];                                                                    \
                r1[ow] = b[low_w[ow]] + ww * (b[high_w[ow]] - b[low_w[ow]]);                                 \
            }                                                                                                \
            for (size_t ow = 0; ow < out_w; ow++) yr[ow] = r0[ow] + wh * (r1[ow] - r0[ow]);                  \
        }                                                                                                    \
    }
#define CK_RESIZE_ARGS                                                                                       \
    (const float *x, size_t planes, size_t in_h, size_t in_w, float *y, size_t out_h, size_t out_w,          \
     const int32_t *low_h, const int32_t *high_h, const float *w_h, const int32_t *low_w, const int32_t *high_w, \
     const float *w_w, float *scratch)
static void resize_generic CK_RESIZE_ARGS { CK_RESIZE_BODY }
__attribute__((target("avx2,fma"))) static void resize_avx2 CK_RESIZE_ARGS { CK_RESIZE_BODY }
__attribute__((target("avx512f,avx512vl,avx2,fma"))) static void resize_avx512 CK_RESIZE_ARGS { CK_RESIZE_BODY }

void ck_resize_2d(const float *x, size_t planes, size_t in_h, size_t in_w, float *y, size_t out_h, size_t out_w,
                  const int32_t *low_h, const int32_t *high_h, const float *w_h, const int32_t *low_w,
                  const int32_t *high_w, const float *w_w, float *scratch) {
    const char *isa = ck_kernel_isa();
    if (isa[3] == '5')
        resize_avx512(x, planes, in_h, in_w, y, out_h, out_w, low_h, high_h, w_h, low_w, high_w, w_w, scratch);
    else if (isa[0] == 'a')
        resize_avx2(x, planes, in_h, in_w, y, out_h, out_w, low_h, high_h, w_h, low_w, high_w, w_w, scratch);
    else resize_generic(x, planes, in_h, in_w, y, out_h, out_w, low_h, high_h, w_h, low_w, high_w, w_w, scratch);
}
