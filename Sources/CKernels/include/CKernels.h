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
    ck_feature_avx512dq = 1 << 9,
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

/// The 8-bit integer GEMM (IntegerGemm.c): C[m, n] = sum_k (A[m, k] - a_zero[m]) * (B[k, n] - b_zero[n]) in int32,
/// exact (wrapping modulo 2^32 like int32 arithmetic), for signed or unsigned bytes on either side. Operands are
/// packed first; the zero points given to ck_qgemm_packed are shifted with the operands: a_zero - 128 for unsigned
/// A (else a_zero), b_zero + 128 for signed B (else b_zero). Which path runs: "avx512-vnni", "avx2" or "generic".
const char *ck_qgemm_path(void);
/// Columns per packed B panel (16 on the VNNI path, else 8); threads split C by whole panels.
size_t ck_qgemm_panel_width(void);
size_t ck_qgemm_packed_b_bytes(size_t k, size_t n);
size_t ck_qgemm_packed_a_bytes(size_t m, size_t k);
/// Packs B (K x N bytes, row-major with ldb); column_sums (n values) receives the sums of the packed columns.
void ck_qgemm_pack_b(size_t k, size_t n, const void *b, size_t ldb, int b_signed, void *packed, int32_t *column_sums);
/// Packs the column panels [panel_begin, panel_end) of B only (threads pack the panels they multiply).
void ck_qgemm_pack_b_panels(size_t k, size_t n, const void *b, size_t ldb, int b_signed, void *packed,
                            int32_t *column_sums, size_t panel_begin, size_t panel_end);
/// Whether ck_qgemm_pack_conv_panels packs convolutions of this stride (1 or 2, no dilation) on this machine.
int ck_qgemm_conv_direct(size_t stride);
/// The panels [panel_begin, panel_end) of ck_qgemm_pack_b_panels for the im2col matrix of a convolution (no
/// dilation), read from its zero-point-padded image (`ck_pad_u8`: channels x padded_h x padded_w, followed by at
/// least 64 readable bytes) instead of the matrix; returns 0 (and packs nothing) where ck_qgemm_conv_direct is 0.
int ck_qgemm_pack_conv_panels(const uint8_t *padded, size_t padded_h, size_t padded_w, size_t kernel_h,
                              size_t kernel_w, size_t stride, size_t out_h, size_t out_w, size_t channels,
                              int b_signed, void *packed, int32_t *column_sums, size_t panel_begin,
                              size_t panel_end);
/// Copies a C x H x W byte image into padded_h x padded_w planes, its pixel (y, x) at (y + pad_top, x + pad_left)
/// (rows and columns past the padded size dropped), the rest `pad`.
void ck_pad_u8(const uint8_t *x, size_t channels, size_t height, size_t width, size_t pad_top, size_t pad_left,
               size_t padded_h, size_t padded_w, uint8_t pad, uint8_t *padded);
/// The rows [row_begin, row_end) of the im2col matrix of one byte image (C x H x W): row (c, ky, kx), column
/// (oy, ox), positions outside the image filled with `pad` (the input's zero point).
void ck_im2col_u8(const uint8_t *x, size_t height, size_t width, size_t kernel_h, size_t kernel_w, size_t stride_h,
                  size_t stride_w, size_t dilation_h, size_t dilation_w, size_t pad_top, size_t pad_left,
                  size_t out_h, size_t out_w, uint8_t pad, uint8_t *columns, size_t row_begin, size_t row_end);
/// Packs A (M x K bytes, row-major with lda); row_sums (m values) receives the sums of the packed rows.
void ck_qgemm_pack_a(size_t m, size_t k, const void *a, size_t lda, int a_signed, void *packed, int32_t *row_sums);
/// C for the column panels [panel_begin, panel_end); a_zero (m values) and b_zero (n values) shifted as above.
void ck_qgemm_packed(size_t m, size_t n, size_t k, const void *packed_a, const int32_t *row_sums,
                     const int32_t *a_zero, const void *packed_b, const int32_t *column_sums, const int32_t *b_zero,
                     int32_t *c, size_t ldc, size_t panel_begin, size_t panel_end);
/// ck_qgemm_packed with float output: C[i][j] = float(sum) * scale[j], the float's bits stored in C's int32 slot
/// (MatMulInteger, Cast to float and a Mul by the scales in one store: the same roundings in the same order).
void ck_qgemm_packed_scaled(size_t m, size_t n, size_t k, const void *packed_a, const int32_t *row_sums,
                            const int32_t *a_zero, const void *packed_b, const int32_t *column_sums,
                            const int32_t *b_zero, const float *scale, int32_t *c, size_t ldc, size_t panel_begin,
                            size_t panel_end);
/// QLinearConv's requantization in the GEMM's tiles: row i of C (a filter) becomes
/// y[i·ldy + j] = clamp(round_half_even((c + bias[i]) · multiplier[i]) + zero, low, high) as int8 or uint8, the
/// same values as ck_requantize with that row's multiplier (the int32 sums never reach memory).
typedef struct {
    const double *multiplier;  // per row; each a float32 value (formed in the scales' precision)
    const int32_t *bias;       // per row (added wrapping), or NULL
    double zero, low, high;
    void *y;
    size_t ldy;
    int y_signed;
} ck_qrequant;
/// ck_qgemm_packed writing requantized bytes instead of C: row i of this call is row `row_offset + i` of `rq`.
void ck_qgemm_packed_requant(size_t m, size_t n, size_t k, const void *packed_a, const int32_t *row_sums,
                             const int32_t *a_zero, const void *packed_b, const int32_t *column_sums,
                             const int32_t *b_zero, const ck_qrequant *rq, size_t row_offset, size_t panel_begin,
                             size_t panel_end);
/// IntegerConvDirect.c: QLinearConv on AVX-512 VNNI machines without im2col. The image is copied into quads of
/// channels (ck_qconv4_image: [ceil(C/4)][padded_h][padded_w][4] bytes, unsigned) and each window reads it in place;
/// the weights are packed once (ck_qconv4_pack_weights: [ceil(F/16)][ceil(C/4)][kh·kw][16][4] signed bytes; sums[f]
/// the packed filter's sum). Whether this machine runs it:
int ck_qconv4_available(void);
size_t ck_qconv4_weight_bytes(size_t filters, size_t channels, size_t kernel_h, size_t kernel_w);
void ck_qconv4_pack_weights(const void *w, int w_signed, size_t filters, size_t channels, size_t kernel_h,
                            size_t kernel_w, int8_t *packed, int32_t *sums);
size_t ck_qconv4_scratch_bytes(void);
/// Bytes of the quads image (with 64 readable bytes after it).
size_t ck_qconv4_image_bytes(size_t channels, size_t padded_h, size_t padded_w);
/// The quads [quad_begin, quad_end) of a C x H x W byte image, pixel (y, x) at (y + pad_top, x + pad_left), `pad`
/// elsewhere and past the last channel; signed bytes flipped (x ^ 0x80; `pad` given flipped).
void ck_qconv4_image(const uint8_t *x, int x_signed, size_t channels, size_t height, size_t width, size_t pad_top,
                     size_t pad_left, size_t padded_h, size_t padded_w, uint8_t pad, uint8_t *out, size_t quad_begin,
                     size_t quad_end);
/// A channels-last image ([H][W][C] unsigned bytes, C a multiple of 4) copied into padded rows for the window reads
/// (position_bytes = C), rows [row_begin, row_end) of the padded image.
void ck_qconv4_image_nhwc(const uint8_t *x, size_t channels, size_t height, size_t width, size_t pad_top,
                          size_t pad_left, size_t padded_h, size_t padded_w, uint8_t pad, uint8_t *out, size_t row_begin,
                          size_t row_end);
/// One convolution: y[f][p] = clamp(round_half_even((sum + bias[f]) · multiplier[f]) + zero, low, high) with sum the
/// packed weights times the image's window at output position p (offsets[g]: where quad-and-tap g of a window
/// lies from its corner); bias, multiplier_f and multiplier hold ceil(F/16)·16 values (bias folds in the image's
/// zero point: bias - zero' · sums[f]); scratch ck_qconv4_scratch_bytes() per part.
typedef struct {
    const uint8_t *image;
    /// Bytes between adjacent positions of an image row: 4 for quads, the channel count for channels last.
    size_t position_bytes;
    size_t padded_w, stride, out_h, out_w;
    const int64_t *offsets;
    size_t kq;
    const int8_t *weights;
    size_t filters;
    const int32_t *bias;
    const float *multiplier_f;
    const double *multiplier;
    double zero, low, high;
    uint8_t *y;
    /// Whether y is channels last ([positions][filters]) rather than planes.
    int y_nhwc;
    /// Non-NULL: y holds floats, float(sum + bias[f]) · scale[f] (MatMulInteger's Cast and Mul; channels last
    /// only; ceil(F/16)·16 values), instead of requantized bytes.
    const float *scale;
    uint8_t *scratch;
} ck_qconv4;
/// The output's units of work (blocks of 64 filters x 80 positions, filter block by filter block).
size_t ck_qconv4_units(const ck_qconv4 *cv);
/// Units [unit_begin, unit_end), with the scratch of part `part`.
void ck_qconv4_run(const ck_qconv4 *cv, size_t unit_begin, size_t unit_end, size_t part);
/// IntegerConvPairs.c: QLinearConv at stride 1 on AVX2 machines without VNNI, without im2col. The image is copied
/// into pairs of channels as int16 with its zero point subtracted (ck_qconv2_image: [ceil(C/2)][padded_h][padded_w]
/// 32-bit lanes, channel 2q in the low half), the weights once with theirs (ck_qconv2_pack_weights:
/// [ceil(F/6)][ceil(C/2)][kh·kw][6][2] int16). Whether this machine runs it:
int ck_qconv2_available(void);
size_t ck_qconv2_weight_bytes(size_t filters, size_t channels, size_t kernel_h, size_t kernel_w);
/// w_zero: 1 or `filters` zero points of the weights (in their own signedness).
void ck_qconv2_pack_weights(const void *w, int w_signed, const int32_t *w_zero, size_t zero_count, size_t filters,
                            size_t channels, size_t kernel_h, size_t kernel_w, int16_t *packed);
/// Bytes of the pairs image, with what the last tiles read past it.
size_t ck_qconv2_image_bytes(size_t channels, size_t padded_h, size_t padded_w, size_t kernel_w);
/// Pairs [pair_begin, pair_end) of a C x H x W byte image (signed or not) less x_zero, pixel (y, x) at padded
/// (y + pad_top, x + pad_left), zero elsewhere and past the last channel; padded_h = out_h + kh - 1.
void ck_qconv2_image(const uint8_t *x, int x_signed, int32_t x_zero, size_t channels, size_t height, size_t width,
                     size_t pad_top, size_t pad_left, size_t padded_h, size_t padded_w, int32_t *out,
                     size_t pair_begin, size_t pair_end);
/// One convolution into planes: y[f · rq.ldy + oy · out_w + ox] = the requantization (rq: per-filter multiplier
/// and bias) of the sum over pairs and taps g of weights against image[p + offsets[g]], p = oy · padded_w + ox.
typedef struct {
    const int32_t *image;
    size_t padded_w, out_h, out_w;
    const int64_t *offsets;
    size_t kq;
    const int32_t *weights;
    size_t filters;
    ck_qrequant rq;
} ck_qconv2;
/// The units of work (16 positions against a group of filters each).
size_t ck_qconv2_units(const ck_qconv2 *cv);
void ck_qconv2_run(const ck_qconv2 *cv, size_t unit_begin, size_t unit_end);
/// The scalar reference (unshifted zero points, unpacked operands) that tests compare the paths against.
void ck_qgemm_reference(size_t m, size_t n, size_t k, const void *a, size_t lda, int a_signed, const int32_t *a_zero,
                        const void *b, size_t ldb, int b_signed, const int32_t *b_zero, int32_t *c, size_t ldc);

/// Quantize.c: MaxPool over int8 (`is_signed`) or uint8 planes [plane_begin, plane_end) (in_h x in_w each, into
/// out_h x out_w), no dilation, the padding never chosen; `row` holds (out_w - 1) · stride_w + kernel_w + 64 bytes.
void ck_maxpool_8(const uint8_t *x, int is_signed, size_t in_h, size_t in_w, size_t kernel_h, size_t kernel_w,
                  size_t stride_h, size_t stride_w, size_t pad_top, size_t pad_left, size_t out_h, size_t out_w,
                  uint8_t *y, size_t plane_begin, size_t plane_end, uint8_t *row);
/// Quantize.c: y = clamp(round_half_even(x / scale) + zero, low, high) as int8 (`is_signed`) or uint8; NaN -> low.
void ck_quantize_f32(const float *x, size_t n, float scale, int32_t zero, int32_t low, int32_t high, void *y,
                     int is_signed);
/// QLinearAdd of n same-shape elements, as DequantizeLinear of each input, a float32 Add and QuantizeLinear compute
/// it (same roundings, same order); `low`/`high` the output range (a fused Relu raises `low` to the zero point).
void ck_qlinear_add(const void *a, int a_signed, int32_t a_zero, float a_scale, const void *b, int b_signed,
                    int32_t b_zero, float b_scale, size_t n, float y_scale, int32_t y_zero, int32_t low,
                    int32_t high, void *y, int y_signed);
/// y = (x - zero) * scale for int8 (`is_signed`) or uint8 x.
void ck_dequantize_8(const void *x, int is_signed, size_t n, int32_t zero, float scale, float *y);
/// Lowers *low and raises *high to the range of x (NaN elements skipped).
void ck_minmax_f32(const float *x, size_t n, float *low, float *high);
/// y = clamp(round_half_even((acc + bias) * multiplier) + zero, low, high) in double precision, as int8 or uint8;
/// the multiplier per element (`per_column`) or one for all; the int32 bias (added wrapping) per element
/// (`bias_step` 1), one for all (0), or none (NULL). A NaN product lands on `low`.
void ck_requantize(const int32_t *acc, size_t n, const double *multiplier, int per_column, const int32_t *bias,
                   int bias_step, double zero, double low, double high, void *y, int is_signed);
/// Depthwise integer convolution of one channel plane (square k <= 7, stride 1 or 2, no dilation): acc[oh][ow] =
/// the exact int32 sum over the window of (x - x_zero)(w - w_zero), padding contributing nothing; `padded` holds
/// ck_depthwise_q_padded_elements(out_h, out_w, k, s) floats. Returns 0 (and does nothing) for other shapes.
size_t ck_depthwise_q_padded_elements(size_t out_h, size_t out_w, size_t k, size_t s);
int ck_depthwise_q(const uint8_t *x, int x_signed, int32_t x_zero, size_t in_h, size_t in_w, const uint8_t *w,
                   int w_signed, int32_t w_zero, size_t k, size_t s, ptrdiff_t pad_top, ptrdiff_t pad_left,
                   size_t out_h, size_t out_w, float *padded, int32_t *acc);
/// float16 (IEEE binary16 bits) <-> float32, round half to even; int32 -> float32.
void ck_convert_f16_f32(const uint16_t *x, size_t n, float *y);
void ck_convert_f32_f16(const float *x, size_t n, uint16_t *y);
void ck_convert_i32_f32(const int32_t *x, size_t n, float *y);
/// bfloat16 (bits) <-> float32, round half to even, NaN kept.
void ck_convert_bf16_f32(const uint16_t *x, size_t n, float *y);
void ck_convert_f32_bf16(const float *x, size_t n, uint16_t *y);

/// A persistent thread pool: `threads` includes the calling thread, which runs part 0 of every job.
typedef struct ck_pool ck_pool;
/// One part of a job: fn(context, part, parts) for part in 0..<parts.
typedef void (*ck_task_fn)(void *context, size_t part, size_t parts);
/// Starts threads - 1 workers; NULL when the threads cannot be created.
ck_pool *ck_pool_create(size_t threads);
/// Stops and joins the workers. No job may be running.
void ck_pool_destroy(ck_pool *pool);
/// The pool's thread count including the caller (1 for NULL).
size_t ck_pool_threads(const ck_pool *pool);
/// Runs min(parts, threads) parts, part 0 on the caller, and returns when all are done. One job runs at a time:
/// a call while another job runs (from another thread, or from inside a part) runs its parts on its caller.
void ck_pool_run(ck_pool *pool, size_t parts, ck_task_fn fn, void *context);

/// Activations a GEMM can apply to its results before storing them.
typedef enum {
    ck_activation_none = 0,
    ck_activation_relu = 1,
    ck_activation_clip = 2,
    ck_activation_swish = 3,
    /// GELU with erf (approximate = none): x·Φ(x), as ck_gelu.
    ck_activation_gelu = 4,
    /// HardSwish: x·clamp((x + 3)/6, 0, 1), as ck_hard_swish.
    ck_activation_hard_swish = 5
} ck_activation;

/// Work folded into a GEMM's store: C[i, j] = (C[i, j] + col_bias[j]) + row_bias[i], then the activation.
/// Either bias may be NULL. Row and column indices are those of the call's C.
typedef struct {
    const float *row_bias;
    const float *col_bias;
    ck_activation activation;
    /// Bounds of ck_activation_clip: min(max(v, low), high), NaN kept.
    float low, high;
} ck_epilogue;

/// ck_sgemm_packed, then the epilogue (if not NULL) on every finished tile while it is in cache.
void ck_sgemm_packed_epilogue(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *packed,
                              int accumulate, float *c, size_t ldc, size_t panel_begin, size_t panel_end,
                              const ck_epilogue *epilogue);
/// C = A·B (+ C) with B row-major (ldb), then the epilogue, for panels [panel_begin, panel_end) of C's columns:
/// panels of B are packed into `scratch` (room for `scratch_panels` panels of k x ck_gemm_panel_width() floats) just
/// before A's row tiles use them (a 1x1 convolution's input read in place instead of a packed copy of all of it).
/// How many panels of B ck_sgemm_rowmajor_b_epilogue packs at a time for these sizes (its `scratch_panels` at most).
size_t ck_sgemm_rowmajor_b_group(size_t m, size_t n, size_t k);
void ck_sgemm_rowmajor_b_epilogue(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                                  size_t ldb, int accumulate, float *c, size_t ldc, size_t panel_begin,
                                  size_t panel_end, const ck_epilogue *epilogue, float *scratch,
                                  size_t scratch_panels);

/// im2col of one image's channels `x` ([channels, in_h, in_w]) for a 2-D convolution, rows [row_begin, row_end)
/// of the rows = channels·kernel_h·kernel_w, written into the packed-panel layout of ck_pack_b with panel width
/// `nr` (element (r, o) at panel o / nr, row r, lane o % nr). Padding reads as zero.
void ck_im2col_panels_2d(const float *x, size_t in_h, size_t in_w, size_t kernel_h, size_t kernel_w,
                         size_t stride_h, size_t stride_w, size_t dilation_h, size_t dilation_w, ptrdiff_t pad_top,
                         ptrdiff_t pad_left, size_t out_h, size_t out_w, float *col, size_t nr, size_t rows,
                         size_t row_begin, size_t row_end);
/// The same matrix's column panels [panel_begin, panel_end) only, every row, written from the start of `col`
/// (panel panel_begin first; rows·nr floats a panel): a chunk a GEMM multiplies while it is in cache.
void ck_im2col_panel_range_2d(const float *x, size_t in_h, size_t in_w, size_t kernel_h, size_t kernel_w,
                              size_t stride_h, size_t stride_w, size_t dilation_h, size_t dilation_w,
                              ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w, float *col, size_t nr,
                              size_t rows, size_t panel_begin, size_t panel_end);

/// LayerNormalization over `rows` contiguous rows of n: y = (x − mean)/√(var + ε)·scale + bias, with scale and
/// bias (may be NULL) of length n; mean_out and inv_out (may be NULL) receive per-row mean and 1/√(var + ε).
void ck_layer_norm_rows(const float *x, float *y, size_t rows, size_t n, const float *scale, const float *bias,
                        double epsilon, float *mean_out, float *inv_out);

/// The epilogue alone, over a rows x cols block of C.
void ck_apply_epilogue(const ck_epilogue *epilogue, float *c, size_t ldc, size_t rows, size_t cols);
/// y[i] = A[i, :]·x for rows [row_begin, row_end) of a row-major A (lda apart): a matrix-vector product.
void ck_gemv_rows(size_t row_begin, size_t row_end, size_t k, const float *a, size_t lda, const float *x, float *y);

/// Transposes 4-byte elements: output axes `dims` (rank ≤ 16), input element stride of each output axis in
/// `strides`; writes output elements [begin, end), which must be whole rows of the last output axis.
void ck_permute_u32(const uint32_t *x, uint32_t *y, size_t rank, const size_t *dims, const size_t *strides,
                    size_t begin, size_t end);
/// y = xᵀ for a batch of row-major `rows` x `cols` matrices of 4-byte elements (matrix b at b·rows·cols in both x
/// and y); writes output rows [begin, end), counted over the batch (cols per matrix, each `rows` long).
void ck_transpose_u32(const uint32_t *x, uint32_t *y, size_t rows, size_t cols, size_t begin, size_t end);

/// y[i] = 1 / (1 + exp(-x[i])); x and y may alias.
void ck_sigmoid(const float *x, float *y, size_t count);

/// Vectorized float32 exp, erf, tanh and GELU (erf form); x and y may alias; NaN propagates.
void ck_exp(const float *x, float *y, size_t count);
void ck_erf(const float *x, float *y, size_t count);
void ck_tanh(const float *x, float *y, size_t count);
void ck_gelu(const float *x, float *y, size_t count);
/// ck_gelu in place over `rows` rows of `cols` values, `ldc` apart (one call per GEMM tile).
void ck_gelu_rows(float *c, size_t ldc, size_t rows, size_t cols);

/// One LSTM step over `rows` batch rows of h units (gates i, o, f, c; sigmoid/tanh/tanh): pre (input projection
/// plus all biases, row stride pre_stride) + rec (R·h, row stride rec_stride), peepholes `peep` (i, o, f; may be
/// NULL), clip (<= 0: none); updates the cell state c and hidden state hs (both rows x h) in place.
void ck_lstm_cell(size_t rows, size_t h, const float *pre, size_t pre_stride, const float *rec, size_t rec_stride,
                  const float *peep, float clip, float *c, float *hs);
/// One GRU step (gates z, r, h; sigmoid/tanh): rec holds z and r (and the candidate's R·h + Rb when
/// linear_before_reset); rec_h the candidate's recurrent part; updates hs (rows x h) in place.
void ck_gru_cell(size_t rows, size_t h, const float *pre, size_t pre_stride, const float *rec, size_t rec_stride,
                 const float *rec_h, size_t rec_h_stride, int linear_before_reset, float clip, float *hs);
/// out = sigmoid(pre_r + rec_r) ⊙ hs, the GRU reset applied to the state (rows x h), for the candidate's product.
void ck_gru_reset(size_t rows, size_t h, const float *pre, size_t pre_stride, const float *rec, size_t rec_stride,
                  float clip, const float *hs, float *out);
/// Depthwise 2-D convolution (group = channels, one filter each): channels [c_begin, c_end) of one image
/// x [C][H][W], w [C][KH][KW], into y [C][OH][OW] with bias (may be NULL), clamped to [lo, hi] (NaN kept: Relu is
/// [0, inf], Relu6/Clip its bounds, none [-inf, inf]), then Swish (x·sigmoid(x)) when `after` is 1 or HardSwish
/// (x·clamp((x + 3)/6, 0, 1), as ck_hard_swish) when it is 2, over each row or plane while in cache; any stride,
/// dilation and padding. `padded` (ck_depthwise_padded_floats, may be NULL) is scratch for a zero-padded copy of
/// one channel, which 3x3/5x5 kernels with stride 1 or 2 use.
void ck_depthwise_conv2d(const float *x, const float *w, const float *bias, float *y, size_t c_begin, size_t c_end,
                         size_t in_h, size_t in_w, size_t kh, size_t kw, size_t sh, size_t sw, size_t dh, size_t dw,
                         ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w, float lo, float hi,
                         int after, float *padded);
/// The depthwise kernels' activation after the clamp over n values in place: 1 Swish, 2 HardSwish, else nothing.
void ck_depthwise_after(float *y, size_t n, int after);
/// Floats of ck_depthwise_conv2d's padded scratch for an output of out_h x out_w.
size_t ck_depthwise_padded_floats(size_t out_h, size_t out_w, size_t kh, size_t kw, size_t sh, size_t sw);
/// Depthwise convolution with channels in vector lanes (3x3/5x5/7x7, stride 1 or 2, no dilation; AVX2 or AVX-512):
/// the arguments of ck_depthwise_conv2d for a square kernel `k` and stride `s`, output rows [row_begin, row_end);
/// `scratch` holds ck_depthwise_blocked_floats floats. Returns 0 (nothing written) when the shape or the ISA does
/// not fit.
int ck_depthwise_blocked(const float *x, const float *w, const float *bias, float *y, size_t c_begin, size_t c_end,
                         size_t in_h, size_t in_w, size_t k, size_t s, ptrdiff_t pad_top, ptrdiff_t pad_left,
                         size_t out_h, size_t out_w, size_t row_begin, size_t row_end, float lo, float hi, int after,
                         float *scratch);
/// Channels per block of ck_depthwise_blocked for a k x k window and output rows `out_w` wide (the vector width: 16
/// with AVX-512, 8 with AVX2 and for AVX-512's 3x3 windows over rows of 20 and more), 0 without AVX2.
size_t ck_depthwise_blocked_lanes(size_t k, size_t out_w);
/// ck_depthwise_blocked over all `channels` with the input channels last ([in_h][in_w][channels], `in_nhwc`) or in
/// planes, and the output likewise (`out_nhwc`), output rows [row_begin, row_end); the vector width's channel
/// blocks (ck_depthwise_nhwc_lanes) for every shape. Scratch as ck_depthwise_blocked's; returns 0 (nothing
/// written) when the shape or the ISA does not fit.
int ck_depthwise_nhwc(const float *x, const float *w, const float *bias, float *y, size_t channels, size_t in_h,
                      size_t in_w, size_t k, size_t s, ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h,
                      size_t out_w, size_t row_begin, size_t row_end, float lo, float hi, int after, int in_nhwc,
                      int out_nhwc, float *scratch);
/// Channels per block of ck_depthwise_nhwc: 16 with AVX-512, 8 with AVX2, 0 without.
size_t ck_depthwise_nhwc_lanes(void);
/// Floats of ck_depthwise_blocked's scratch: a strip of rows of one channel block, and one output row; SIZE_MAX
/// when it does not fit in memory.
size_t ck_depthwise_blocked_floats(size_t out_h, size_t out_w, size_t k, size_t s);
/// QLinearConv with one filter per channel through the channels-in-lanes kernel: channels [c_begin, c_end) of
/// the byte image x (int8 when `x_signed`), the float weights (w - w_zero) per channel (k·k each), output rows
/// [row_begin, row_end) requantized per channel (multiplier and optional int32 bias per channel, then zero, low,
/// high as ck_requantize) into the byte planes y. The sums are exact (integers below 2^24). Scratch as
/// ck_depthwise_blocked's; returns 0 (nothing written) where that kernel does not run.
/// Channels per block of ck_depthwise_blocked_q (0 where it does not run).
size_t ck_depthwise_blocked_q_lanes(void);
int ck_depthwise_blocked_q(const uint8_t *x, int x_signed, int32_t x_zero, const float *w, const double *multiplier,
                           const int32_t *bias, double zero, double low, double high, int y_signed, uint8_t *y,
                           size_t c_begin, size_t c_end, size_t in_h, size_t in_w, size_t k, size_t s,
                           ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w, size_t row_begin,
                           size_t row_end, float *scratch);
/// The QDQ depthwise convolution (DequantizeLinear → depthwise Conv → QuantizeLinear as one kernel): channels
/// [c_begin, c_end) of the byte image x dequantized ((x - x_zero) · x_scale), the float weights and optional bias
/// of ck_depthwise_blocked, its clamp to [lo, hi], then output rows [row_begin, row_end) quantized
/// (clamp(round_half_even(v / y_scale) + y_zero, q_low, q_high), a NaN to q_low) into the byte planes y: the values
/// of the three nodes. Scratch as ck_depthwise_blocked's; returns 0 (nothing written) where that kernel does not run.
int ck_depthwise_blocked_dq(const uint8_t *x, int x_signed, int32_t x_zero, float x_scale, const float *w,
                            const float *bias, uint8_t *y, int y_signed, float y_zero, float y_scale, float q_low,
                            float q_high, size_t c_begin, size_t c_end, size_t in_h, size_t in_w, size_t k, size_t s,
                            ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w, size_t row_begin,
                            size_t row_end, float lo, float hi, float *scratch);
/// ck_depthwise_blocked_dq's sixteen-lane form reading (in_nhwc) or writing (out_nhwc) channels last: [H][W][C]
/// bytes per image with `channels` per position, channels [c_begin, c_end) of them; the same bytes. Whether this
/// machine runs it (AVX-512 with BW); returns 0 (nothing written) where it does not.
int ck_depthwise_dq_nhwc_available(void);
int ck_depthwise_dq_nhwc(const uint8_t *x, int x_signed, int32_t x_zero, float x_scale, const float *w,
                         const float *bias, uint8_t *y, int y_signed, float y_zero, float y_scale, float q_low,
                         float q_high, size_t channels, size_t c_begin, size_t c_end, size_t in_h, size_t in_w,
                         size_t k, size_t s, ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w,
                         size_t row_begin, size_t row_end, float lo, float hi, int in_nhwc, int out_nhwc,
                         float *scratch);
/// Separable 2-D resize (bilinear; nearest with zero weights) of `planes` contiguous [in_h][in_w] planes into
/// [out_h][out_w]: output row oh blends input rows low_h/high_h (weight w_h of the high one), column ow blends
/// low_w/high_w (weight w_w); `scratch` holds 2·out_w floats.
void ck_resize_2d(const float *x, size_t planes, size_t in_h, size_t in_w, float *y, size_t out_h, size_t out_w,
                  const int32_t *low_h, const int32_t *high_h, const float *w_h, const int32_t *low_w,
                  const int32_t *high_w, const float *w_w, float *scratch);
/// Max pooling without dilation of `planes` [in_h][in_w] planes into [out_h][out_w]; `padded` holds
/// ck_depthwise_padded_floats(out_h, out_w, kh, kw, sh, sw) floats (one plane with its padding), or is NULL for a
/// per-thread buffer kept between calls. Returns 0, or -1 when that buffer cannot be allocated.
int ck_max_pool2d(const float *x, size_t planes, size_t in_h, size_t in_w, size_t kh, size_t kw, size_t sh,
                  size_t sw, ptrdiff_t pad_top, ptrdiff_t pad_left, size_t out_h, size_t out_w, float *y,
                  float *padded);
/// GlobalAveragePool (sum in double) or GlobalMaxPool (`is_max`) of `planes` contiguous planes of `spatial`
/// values into y[planes].
void ck_global_pool(const float *x, size_t planes, size_t spatial, int is_max, float *y);
/// Global average pooling of one image stored channels last ([positions][channels]) into y[c] for channels
/// [c_begin, c_end): bit for bit ck_global_pool's averages of the same values in planes.
void ck_global_average_nhwc(const float *x, size_t positions, size_t channels, size_t c_begin, size_t c_end, float *y);
/// y[p][c] = x[p][c] · s[c] for positions [p_begin, p_end) of an image stored channels last.
void ck_scale_channels_last(const float *x, const float *s, float *y, size_t channels, size_t p_begin, size_t p_end);
/// x as [outer][n][inner] reduced over n into y [outer][inner]: mode 0 sum × scale (mean: scale 1/n), 1 max,
/// 2 min (NaN propagates), 3 sum of squares × scale. Sums in double; `scratch` holds `inner` doubles.
void ck_reduce_axis(const float *x, size_t outer, size_t n, size_t inner, int mode, double scale, double *scratch,
                    float *y);
/// Elementwise float32 activations with parameters; x and y may alias; NaN propagates.
void ck_hard_sigmoid(const float *x, float *y, size_t count, float alpha, float beta);
void ck_hard_swish(const float *x, float *y, size_t count);
void ck_leaky_relu(const float *x, float *y, size_t count, float alpha);
void ck_clip(const float *x, float *y, size_t count, float low, float high);
/// y = clamp(x·scale + shift, low, high) (no FMA contraction; NaN kept): inference BatchNormalization with a
/// fused Relu/Clip on one channel plane (low, high = ±inf for none).
void ck_scale_shift_clamp(const float *x, float *y, size_t count, float scale, float shift, float low, float high);
void ck_swish(const float *x, float *y, size_t count, float alpha);
/// ck_swish in place over `rows` rows of `cols` values, `ldc` apart (one call per GEMM tile).
void ck_swish_rows(float *c, size_t ldc, size_t rows, size_t cols, float alpha);
/// A GEMM epilogue's bias and Swish in one pass over a tile: c[r][j] = swish((c[r][j] + col_bias[j]) + row_bias[r])
/// with either bias NULL for none (the ISA is the caller's: the GEMM's own level).
void ck_swish_rows_biased_avx2(float *c, size_t ldc, size_t rows, size_t cols, const float *row_bias,
                               const float *col_bias);
void ck_swish_rows_biased_avx512(float *c, size_t ldc, size_t rows, size_t cols, const float *row_bias,
                                 const float *col_bias);
/// Softmax (or log-softmax) over each contiguous row of n values; x and y may alias.
void ck_softmax_rows(const float *x, float *y, size_t rows, size_t n, int logarithm);

/// y[i] = max(x[i], 0); x and y may alias. NaN propagates.
void ck_relu(const float *x, float *y, size_t count);

/// Winograd F(2x2, 3x3) transforms (Winograd.c). Filter: w [M][C][3][3] → u [16][C][M].
void ck_winograd_filter_2x2_3x3(const float *w, size_t filters, size_t channels, float *u);
/// One image x [C][H][W] copied channels-last into hwc [H][W][C], which the input transform reads.
void ck_winograd_channels_last(const float *x, size_t channels, size_t height, size_t width, size_t p_begin,
                               size_t p_end, float *hwc);
/// Input tiles [tile_begin, tile_end) of one channels-last image hwc [H][W][C] (tile t at rows
/// 2·(t / tiles_x) - pad_top, columns 2·(t % tiles_x) - pad_left; zero outside) → v[ξ·stride + (t - tile_begin)·C + c].
void ck_winograd_input_2x2_3x3(const float *hwc, size_t channels, size_t height, size_t width, long pad_top,
                               long pad_left, size_t tiles_x, size_t tile_begin, size_t tile_end, float *v,
                               size_t stride);
/// Output of tiles [tile_begin, tile_end) and filters [filter_begin, filter_end) from
/// mm[ξ·stride + (t - tile_begin)·M + f] into y [M][OH][OW], plus bias (may be NULL) and Relu when `relu`; with
/// `pool`, each whole tile's 2x2 maximum into y [M][OH/2][OW/2] instead (a fused 2x2, stride-2 MaxPool).
void ck_winograd_output_2x2_3x3(const float *mm, size_t stride, size_t filters, size_t filter_begin,
                                size_t filter_end, size_t tiles_x, size_t tile_begin, size_t tile_end,
                                const float *bias, int relu, int pool, float *y, size_t out_height,
                                size_t out_width);

/// Direct 2-D convolution (stride 1, no dilation, one group; DirectConv.c). Floats of the zero-padded copy of one
/// image [C][Hp][Wp] plus the slack the kernel reads past it; the copy itself (the image's positions only: the
/// buffer starts zeroed, and copies of one geometry write the same positions, so its pads stay zero); and filters
/// [filter_begin, filter_end) of w [M][C][KH][KW], output rows [row_begin, row_end), into y [M][OH][OW] with bias
/// (may be NULL), clamped to
/// [low, high] in the store (Relu: 0 and infinity; Clip; none: -infinity and infinity; NaN stays NaN).
size_t ck_conv2d_direct_padded_floats(size_t channels, size_t padded_height, size_t padded_width, size_t kw);
void ck_conv2d_direct_pad(const float *x, size_t channels, size_t height, size_t width, size_t pad_top,
                          size_t pad_left, size_t padded_height, size_t padded_width, size_t kw, float *padded);
/// Stride 2 (sh = sw = 2): the padded copy comes from ck_conv2d_direct_pad_stride2, which stores each padded row
/// as its even columns then its odd ones; padded_width = (OW - 1)·2 + KW, padded_height = (OH - 1)·2 + KH.
void ck_conv2d_direct_pad_stride2(const float *x, size_t channels, size_t height, size_t width, size_t pad_top,
                                  size_t pad_left, size_t padded_height, size_t padded_width, size_t kw,
                                  float *padded);
void ck_conv2d_direct(const float *padded, size_t channels, size_t padded_height, size_t padded_width,
                      const float *w, size_t kh, size_t kw, size_t sh, size_t sw, const float *bias, float low,
                      float high, size_t filter_begin, size_t filter_end, size_t row_begin, size_t row_end,
                      float *y, size_t out_height, size_t out_width);

#ifdef __cplusplus
}
#endif

#endif
