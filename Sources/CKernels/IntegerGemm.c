// The 8-bit integer GEMM behind MatMulInteger, QLinearMatMul, ConvInteger and QLinearConv:
//   C[m, n] = sum_k (A[m, k] - a_zero[m]) * (B[k, n] - b_zero[n])   (int32, wrapping like int32 hardware)
// for signed or unsigned bytes on either side, exactly.
//
// The products are formed on shifted operands so that one kernel serves every signedness: A becomes signed
// (a' = a - 128 for unsigned A) and B unsigned (b' = b + 128 for signed B); zero points shift with them, so
// (a - a_zero) = (a' - a_zero') and the same for B. With row sums of A' and column sums of B':
//   sum_k (a' - za)(b' - zb) = sum_k a'b' - zb * rowsum(a') - za * colsum(b') + K * za * zb.
// Paths: AVX-512 VNNI (vpdpbusd: unsigned x signed bytes, four per 32-bit lane, no saturation), AVX2 and the
// generic path (operands widened to int16, vpmaddwd: exact; the AVX2 vpmaddubsw shortcut saturates at 32767 for
// pairs of large products and is not used).
#include "CKernels.h"
#include "Requant.h"
#include <math.h>

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define CK_INLINE static inline __attribute__((always_inline))

static int qgemm_vnni(void) {
    static int cached = -1;
    int value = __atomic_load_n(&cached, __ATOMIC_ACQUIRE);
    if (value >= 0) return value;
    const uint32_t f = ck_cpu_features();
    const uint32_t needed = ck_feature_avx512f | ck_feature_avx512bw | ck_feature_avx512vl | ck_feature_avx512dq |
                            ck_feature_avx512vnni;
    value = strcmp(ck_kernel_isa(), "avx512") == 0 && (f & needed) == needed;
    __atomic_store_n(&cached, value, __ATOMIC_RELEASE);
    return value;
}

static int qgemm_avx2(void) { return strcmp(ck_kernel_isa(), "generic") != 0; }

const char *ck_qgemm_path(void) {
    if (qgemm_vnni()) return "avx512-vnni";
    return qgemm_avx2() ? "avx2" : "generic";
}

// Layouts. VNNI: panels of 16 columns; per group of 4 k, 64 bytes (column j: b'[4g..4g+3][j]); A' rows of bytes,
// K rounded up to 4. Others: panels of 8 columns; per pair of k, 8 x 2 int16 (column j: b'[2g][j], b'[2g+1][j]);
// A' rows of int16, K rounded up to 2. Padding is zero in B', so it adds nothing whatever A' holds there.
size_t ck_qgemm_panel_width(void) { return qgemm_vnni() ? 16 : 8; }

static size_t qgemm_group(void) { return qgemm_vnni() ? 4 : 2; }

static size_t round_up(size_t value, size_t step) { return (value + step - 1) / step * step; }

size_t ck_qgemm_packed_b_bytes(size_t k, size_t n) {
    const size_t kp = round_up(k, qgemm_group()), np = round_up(n, ck_qgemm_panel_width());
    return kp * np * (qgemm_vnni() ? 1 : 2);
}

size_t ck_qgemm_packed_a_bytes(size_t m, size_t k) {
    return m * round_up(k, qgemm_group()) * (qgemm_vnni() ? 1 : 2);
}

static inline int32_t load_b(const uint8_t *b, size_t index, int b_signed) {
    return b_signed ? (int32_t)(int8_t)b[index] + 128 : (int32_t)b[index];
}

static inline int32_t load_a(const uint8_t *a, size_t index, int a_signed) {
    return a_signed ? (int32_t)(int8_t)a[index] : (int32_t)a[index] - 128;
}

// Scalar packing of the columns [col_begin, col_end) (whole panels); the SIMD packers below finish their tails here.
static void pack_b_scalar(size_t k, size_t n, const uint8_t *src, size_t ldb, int b_signed, void *packed,
                          int32_t *column_sums, size_t panel_begin, size_t panel_end, size_t row_begin) {
    const size_t width = ck_qgemm_panel_width(), group = qgemm_group();
    const size_t kp = round_up(k, group);
    const int vnni = qgemm_vnni();
    for (size_t p = panel_begin; p < panel_end; p++) {
        for (size_t g = row_begin / group; g < kp / group; g++) {
            for (size_t j = 0; j < width; j++) {
                const size_t col = p * width + j;
                for (size_t t = 0; t < group; t++) {
                    const size_t row = g * group + t;
                    int32_t v = 0;
                    if (col < n && row < k) {
                        v = load_b(src, row * ldb + col, b_signed);
                        column_sums[col] = (int32_t)((uint32_t)column_sums[col] + (uint32_t)v);
                    }
                    if (vnni) ((uint8_t *)packed)[p * kp * width + g * 64 + j * 4 + t] = (uint8_t)v;
                    else ((int16_t *)packed)[p * kp * width + g * 16 + j * 2 + t] = (int16_t)v;
                }
            }
        }
    }
}

#if defined(__x86_64__)
// VNNI layout: four rows of 16 bytes transposed into 16 columns of 4 bytes (byte and word unpacks); column sums
// by vpdpbusd against ones. Whole panels of whole row groups; the rest goes to the scalar packer.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
static void pack_b_vnni(size_t k, size_t n, const uint8_t *src, size_t ldb, int b_signed, uint8_t *packed,
                        int32_t *column_sums, size_t panel_begin, size_t panel_end) {
    const size_t kp = round_up(k, 4), groups = k / 4;
    const __m128i flip = _mm_set1_epi8(b_signed ? (char)0x80 : 0);
    const __m512i ones = _mm512_set1_epi8(1);
    for (size_t p = panel_begin; p < panel_end; p++) {
        const size_t col = p * 16;
        if (col >= n) {
            pack_b_scalar(k, n, src, ldb, b_signed, packed, column_sums, p, p + 1, 0);  // zeros
            continue;
        }
        // A last, partial panel reads its columns through a mask (no byte past them) and zeros the others, as the
        // scalar packer writes them (which cost 2% of QDQ MobileNetV2, 16 columns x K per layer one at a time).
        const size_t valid = n - col < 16 ? n - col : 16;
        const __mmask16 keep = valid == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1);
#define CK_PACK_ROW(p) _mm_maskz_mov_epi8(keep, _mm_xor_si128(_mm_maskz_loadu_epi8(keep, (const void *)(p)), flip))
        uint8_t *panel = packed + p * kp * 16;
        __m512i sums = _mm512_setzero_si512();
        for (size_t g = 0; g < groups; g++) {
            const uint8_t *row = src + g * 4 * ldb + col;
            const __m128i r0 = CK_PACK_ROW(row);
            const __m128i r1 = CK_PACK_ROW(row + ldb);
            const __m128i r2 = CK_PACK_ROW(row + 2 * ldb);
            const __m128i r3 = CK_PACK_ROW(row + 3 * ldb);
            const __m128i a = _mm_unpacklo_epi8(r0, r1), b = _mm_unpackhi_epi8(r0, r1);
            const __m128i c = _mm_unpacklo_epi8(r2, r3), d = _mm_unpackhi_epi8(r2, r3);
            const __m512i out = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_set_m128i(_mm_unpackhi_epi16(a, c), _mm_unpacklo_epi16(a, c))),
                _mm256_set_m128i(_mm_unpackhi_epi16(b, d), _mm_unpacklo_epi16(b, d)), 1);
            _mm512_storeu_si512((void *)(panel + g * 64), out);
            sums = _mm512_dpbusd_epi32(sums, out, ones);
        }
#undef CK_PACK_ROW
        _mm512_mask_storeu_epi32(column_sums + col, keep, sums);
        if (groups * 4 < k) {
            // The last, partial group of rows (padded with zeros), and its share of the sums.
            pack_b_scalar(k, n, src, ldb, b_signed, packed, column_sums, p, p + 1, groups * 4);
        }
    }
}

// The first n (< 8) bytes at p, zeros after them, without reading past them (nor a library call).
__attribute__((target("avx2"), always_inline)) static inline __m128i partial_bytes(const uint8_t *p, size_t n) {
    uint64_t bits = 0;
    for (size_t q = 0; q < 7; q++)
        if (q < n) bits |= (uint64_t)p[q] << (8 * q);
    return _mm_cvtsi64_si128((long long)bits);
}

// int16 layout: two rows of 8 bytes widened and interleaved into 8 columns of 2 values.
__attribute__((target("avx2")))
static void pack_b_avx2(size_t k, size_t n, const uint8_t *src, size_t ldb, int b_signed, int16_t *packed,
                        int32_t *column_sums, size_t panel_begin, size_t panel_end) {
    const size_t kp = round_up(k, 2), pairs = k / 2;
    const __m128i flip = _mm_set1_epi8(b_signed ? (char)0x80 : 0);
    for (size_t p = panel_begin; p < panel_end; p++) {
        const size_t col = p * 8;
        if (col >= n) {
            pack_b_scalar(k, n, src, ldb, b_signed, packed, column_sums, p, p + 1, 0);  // zeros
            continue;
        }
        // A last, partial panel: its columns' bytes one by one (none past them), the others zero.
        const size_t valid = n - col < 8 ? n - col : 8;
        const __m128i keep = _mm_cmpgt_epi8(_mm_set1_epi8((char)valid), _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                                                                                      11, 12, 13, 14, 15));
#define CK_PACK_ROW(p)                                                                                        \
    (valid == 8 ? _mm_xor_si128(_mm_loadl_epi64((const __m128i *)(const void *)(p)), flip)                     \
                : _mm_and_si128(_mm_xor_si128(partial_bytes(p, valid), flip), keep))
        int16_t *panel = packed + p * kp * 8;
        __m256i sums = _mm256_setzero_si256();
        for (size_t g = 0; g < pairs; g++) {
            const uint8_t *row = src + g * 2 * ldb + col;
            const __m128i w0 = _mm_cvtepu8_epi16(CK_PACK_ROW(row));
            const __m128i w1 = _mm_cvtepu8_epi16(CK_PACK_ROW(row + ldb));
            _mm_storeu_si128((__m128i *)(panel + g * 16), _mm_unpacklo_epi16(w0, w1));
            _mm_storeu_si128((__m128i *)(panel + g * 16 + 8), _mm_unpackhi_epi16(w0, w1));
            sums = _mm256_add_epi32(sums, _mm256_cvtepu16_epi32(_mm_add_epi16(w0, w1)));
        }
#undef CK_PACK_ROW
        int32_t lanes[8];
        _mm256_storeu_si256((__m256i *)(void *)lanes, sums);
        for (size_t j = 0; j < valid; j++) column_sums[col + j] = lanes[j];
        if (pairs * 2 < k) pack_b_scalar(k, n, src, ldb, b_signed, packed, column_sums, p, p + 1, pairs * 2);
    }
}
#endif

#if defined(__x86_64__)
// The VNNI panels of a convolution's im2col matrix, packed from the zero-point-padded image without the matrix:
// row (c, ky, kx), column (oy, ox) is padded[c][oy·s + ky][ox·s + kx]. A panel's 16 positions in one output row
// are one load per row (every other byte of 32 at stride 2); panels across output rows gather them (measured
// faster than one masked load per output row they cover). Same bytes and column sums as ck_im2col_u8 followed by
// ck_qgemm_pack_b_panels.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
static void pack_conv_vnni(const uint8_t *padded, size_t padded_h, size_t padded_w, size_t kernel_h,
                           size_t kernel_w, size_t stride, size_t out_h, size_t out_w, size_t k, int b_signed,
                           uint8_t *packed, int32_t *column_sums, size_t panel_begin, size_t panel_end) {
    const size_t n = out_h * out_w, kp = round_up(k, 4), plane = padded_h * padded_w;
    const __m128i flip = _mm_set1_epi8(b_signed ? (char)0x80 : 0);
    const __m512i ones = _mm512_set1_epi8(1);
    for (size_t p = panel_begin; p < panel_end; p++) {
        const size_t col = p * 16;
        if (col >= n) break;
        const size_t valid = n - col < 16 ? n - col : 16;
        const __mmask16 keep = valid == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1);
        // Offsets of the panel's positions in a padded plane (lanes past the last position repeat it).
        int32_t offsets[16];
        size_t oy = col / out_w, ox = col % out_w;
        const int contiguous = valid == 16 && ox + 16 <= out_w;
        for (size_t j = 0; j < 16; j++) {
            offsets[j] = (int32_t)((oy * stride) * padded_w + ox * stride);
            if (j + 1 < valid && ++ox == out_w) {
                ox = 0;
                oy++;
            }
        }
        const __m512i index = _mm512_loadu_si512((const void *)offsets);
        // Up to four runs (one per output row the panel covers): lanes [first, first + count) are bytes (or every
        // other byte) from lane `first`'s position on; a plain load from `first` positions before it, blended in.
        // Unmasked loads stay inside the padded image and its 64 readable bytes after it.
        size_t runs = 0;
        ptrdiff_t origin[4] = {0, 0, 0, 0};
        __mmask16 lanes[4] = {0, 0, 0, 0};
        if (!contiguous) {
            for (size_t j = 0; j < valid && runs <= 4;) {
                size_t count = 1;
                while (j + count < valid && offsets[j + count] == offsets[j] + (int32_t)(count * stride)) count++;
                if (runs < 4) {
                    origin[runs] = (ptrdiff_t)offsets[j] - (ptrdiff_t)(j * stride);
                    lanes[runs] = (__mmask16)(((1u << count) - 1) << j);
                }
                runs++;
                j += count;
            }
        }
        uint8_t *panel = packed + p * kp * 16;
        __m512i sums = _mm512_setzero_si512();
        size_t c = 0, ky = 0, kx = 0;
        for (size_t g = 0; g < kp / 4; g++) {
            __m128i r[4];
            for (int t = 0; t < 4; t++) {
                if (g * 4 + (size_t)t >= k) {
                    r[t] = _mm_setzero_si128();  // rows past K: zeros, as the scalar packer writes
                    continue;
                }
                const uint8_t *base = padded + c * plane + ky * padded_w + kx;
                __m128i v;
                if (contiguous && stride == 1) v = _mm_loadu_si128((const __m128i *)(base + offsets[0]));
                else if (contiguous) v = _mm256_cvtepi16_epi8(_mm256_loadu_si256((const __m256i *)(base + offsets[0])));
                else if (runs <= 4 && origin[0] >= 0) {
                    v = _mm_setzero_si128();
                    for (size_t q = 0; q < runs; q++) {
                        const uint8_t *at = base + origin[q];
                        const __m128i part = stride == 1 ? _mm_loadu_si128((const __m128i *)at)
                                                         : _mm256_cvtepi16_epi8(_mm256_loadu_si256((const __m256i *)at));
                        v = _mm_mask_blend_epi8(lanes[q], v, part);
                    }
                } else {
                    v = _mm512_cvtepi32_epi8(_mm512_i32gather_epi32(index, (const void *)base, 1));
                }
                r[t] = _mm_maskz_mov_epi8(keep, _mm_xor_si128(v, flip));
                if (++kx == kernel_w) {
                    kx = 0;
                    if (++ky == kernel_h) {
                        ky = 0;
                        c++;
                    }
                }
            }
            const __m128i a = _mm_unpacklo_epi8(r[0], r[1]), b = _mm_unpackhi_epi8(r[0], r[1]);
            const __m128i cc = _mm_unpacklo_epi8(r[2], r[3]), d = _mm_unpackhi_epi8(r[2], r[3]);
            const __m512i out = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_set_m128i(_mm_unpackhi_epi16(a, cc), _mm_unpacklo_epi16(a, cc))),
                _mm256_set_m128i(_mm_unpackhi_epi16(b, d), _mm_unpacklo_epi16(b, d)), 1);
            _mm512_storeu_si512((void *)(panel + g * 64), out);
            sums = _mm512_dpbusd_epi32(sums, out, ones);
        }
        _mm512_mask_storeu_epi32(column_sums + col, keep, sums);
    }
}
#endif

#if defined(__x86_64__)
// The int16 panels (8 columns) of a convolution's im2col matrix from the zero-point-padded image, as pack_conv_vnni
// makes the VNNI ones: a panel's 8 positions in one output row are one 8-byte load per row (16 bytes at stride 2,
// their even bytes); a panel across two output rows blends two such loads; narrower planes and the last, partial
// panel gather their bytes one by one. Same values and column sums as ck_im2col_u8 followed by
// ck_qgemm_pack_b_panels (im2col and its packing were 20% of QDQ ResNet-18 on the AVX2 path).
__attribute__((target("avx2")))
static void pack_conv_avx2(const uint8_t *padded, size_t padded_h, size_t padded_w, size_t kernel_h,
                           size_t kernel_w, size_t stride, size_t out_h, size_t out_w, size_t k, int b_signed,
                           int16_t *packed, int32_t *column_sums, size_t panel_begin, size_t panel_end) {
    const size_t n = out_h * out_w, kp = round_up(k, 2), plane = padded_h * padded_w;
    const __m128i flip = _mm_set1_epi8(b_signed ? (char)0x80 : 0);
    const __m128i evens = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1);
    for (size_t p = panel_begin; p < panel_end; p++) {
        const size_t col = p * 8;
        if (col >= n) break;
        const size_t valid = n - col < 8 ? n - col : 8;
        // Offsets of the panel's positions in a padded plane.
        size_t offsets[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        size_t oy = col / out_w, ox = col % out_w;
        const size_t first_row = out_w - ox;  // lanes in the panel's first output row
        for (size_t j = 0; j < valid; j++) {
            offsets[j] = (oy * stride) * padded_w + ox * stride;
            if (++ox == out_w) {
                ox = 0;
                oy++;
            }
        }
        // 0: one load; 1: two loads blended at lane first_row (the second from first_row positions before its
        // lane, inside the plane: a padded row holds at least 8 positions); 2: byte by byte.
        const int form = valid == 8 && first_row >= 8 ? 0 : valid == 8 && out_w >= 8 ? 1 : 2;
        const size_t origin1 = form == 1 ? offsets[first_row] - first_row * stride : 0;
        // Lanes from the second load: those at first_row and after (only the low 8 bytes are used).
        const __m128i second = _mm_cmpgt_epi8(_mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                              _mm_set1_epi8((char)(form == 1 ? first_row - 1 : 15)));
        int16_t *panel = packed + p * kp * 8;
        __m256i sums = _mm256_setzero_si256();
        size_t c = 0, ky = 0, kx = 0;
        for (size_t g = 0; g < kp / 2; g++) {
            __m128i r[2];
            for (int t = 0; t < 2; t++) {
                if (g * 2 + (size_t)t >= k) {
                    r[t] = _mm_setzero_si128();  // rows past K: zeros, as the scalar packer writes
                    continue;
                }
                const uint8_t *base = padded + c * plane + ky * padded_w + kx;
                __m128i v;
                if (form == 2) {
                    uint8_t bytes[16] = {0};
                    for (size_t j = 0; j < valid; j++) bytes[j] = base[offsets[j]] ^ (b_signed ? 0x80 : 0);
                    v = _mm_loadu_si128((const __m128i *)(const void *)bytes);
                } else {
                    const uint8_t *at0 = base + offsets[0];
                    __m128i v0 = stride == 1 ? _mm_loadl_epi64((const __m128i *)(const void *)at0)
                                             : _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)at0), evens);
                    if (form == 1) {
                        const uint8_t *at1 = base + origin1;
                        const __m128i v1 =
                            stride == 1 ? _mm_loadl_epi64((const __m128i *)(const void *)at1)
                                        : _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)at1), evens);
                        v0 = _mm_blendv_epi8(v0, v1, second);
                    }
                    v = _mm_xor_si128(v0, flip);  // the high 8 bytes are not widened
                }
                r[t] = v;
                if (++kx == kernel_w) {
                    kx = 0;
                    if (++ky == kernel_h) {
                        ky = 0;
                        c++;
                    }
                }
            }
            const __m128i w0 = _mm_cvtepu8_epi16(r[0]), w1 = _mm_cvtepu8_epi16(r[1]);
            _mm_storeu_si128((__m128i *)(void *)(panel + g * 16), _mm_unpacklo_epi16(w0, w1));
            _mm_storeu_si128((__m128i *)(void *)(panel + g * 16 + 8), _mm_unpackhi_epi16(w0, w1));
            sums = _mm256_add_epi32(sums, _mm256_cvtepu16_epi32(_mm_add_epi16(w0, w1)));
        }
        int32_t lanes[8];
        _mm256_storeu_si256((__m256i *)(void *)lanes, sums);
        for (size_t j = 0; j < valid; j++) column_sums[col + j] = lanes[j];
    }
}
#endif

int ck_qgemm_pack_conv_panels(const uint8_t *padded, size_t padded_h, size_t padded_w, size_t kernel_h,
                              size_t kernel_w, size_t stride, size_t out_h, size_t out_w, size_t channels,
                              int b_signed, void *packed, int32_t *column_sums, size_t panel_begin,
                              size_t panel_end) {
#if defined(__x86_64__)
    if (qgemm_vnni() && (stride == 1 || stride == 2) && out_w > 0) {
        pack_conv_vnni(padded, padded_h, padded_w, kernel_h, kernel_w, stride, out_h, out_w,
                       channels * kernel_h * kernel_w, b_signed, (uint8_t *)packed, column_sums, panel_begin,
                       panel_end);
        return 1;
    }
    if (qgemm_avx2() && (stride == 1 || stride == 2) && out_w > 0) {
        pack_conv_avx2(padded, padded_h, padded_w, kernel_h, kernel_w, stride, out_h, out_w,
                       channels * kernel_h * kernel_w, b_signed, (int16_t *)packed, column_sums, panel_begin,
                       panel_end);
        return 1;
    }
#endif
    (void)padded, (void)padded_h, (void)padded_w, (void)kernel_h, (void)kernel_w, (void)stride, (void)out_h;
    (void)out_w, (void)channels, (void)b_signed, (void)packed, (void)column_sums, (void)panel_begin, (void)panel_end;
    return 0;
}

int ck_qgemm_conv_direct(size_t stride) {
#if defined(__x86_64__)
    return (qgemm_vnni() || qgemm_avx2()) && (stride == 1 || stride == 2);
#else
    (void)stride;
    return 0;
#endif
}

// dst[0, count) = src[0, count) for short rows: 16-byte moves, the last one overlapping (no library call per row).
static inline void copy_row(uint8_t *dst, const uint8_t *src, size_t count) {
    if (count < 16) {
        for (size_t i = 0; i < count; i++) dst[i] = src[i];
        return;
    }
    uint8_t chunk[16];
    for (size_t i = 0; i + 16 <= count; i += 16) {
        memcpy(chunk, src + i, 16);
        memcpy(dst + i, chunk, 16);
    }
    memcpy(chunk, src + count - 16, 16);
    memcpy(dst + count - 16, chunk, 16);
}

// dst[0, count) = value, the same way.
static inline void fill_row(uint8_t *dst, uint8_t value, size_t count) {
    if (count < 16) {
        for (size_t i = 0; i < count; i++) dst[i] = value;
        return;
    }
    uint8_t chunk[16];
    memset(chunk, value, 16);
    for (size_t i = 0; i + 16 <= count; i += 16) memcpy(dst + i, chunk, 16);
    memcpy(dst + count - 16, chunk, 16);
}

void ck_pad_u8(const uint8_t *x, size_t channels, size_t height, size_t width, size_t pad_top, size_t pad_left,
               size_t padded_h, size_t padded_w, uint8_t pad, uint8_t *padded) {
    for (size_t c = 0; c < channels; c++) {
        const uint8_t *src = x + c * height * width;
        uint8_t *dst = padded + c * padded_h * padded_w;
        for (size_t y = 0; y < padded_h; y++) {
            uint8_t *line = dst + y * padded_w;
            const long iy = (long)y - (long)pad_top;
            if (iy < 0 || iy >= (long)height || pad_left >= padded_w) {
                fill_row(line, pad, padded_w);
                continue;
            }
            const size_t inside = width < padded_w - pad_left ? width : padded_w - pad_left;
            for (size_t i = 0; i < pad_left; i++) line[i] = pad;
            copy_row(line + pad_left, src + (size_t)iy * width, inside);
            for (size_t i = pad_left + inside; i < padded_w; i++) line[i] = pad;
        }
    }
}

void ck_qgemm_pack_b_panels(size_t k, size_t n, const void *b, size_t ldb, int b_signed, void *packed,
                            int32_t *column_sums, size_t panel_begin, size_t panel_end) {
    const uint8_t *src = (const uint8_t *)b;
#if defined(__x86_64__)
    if (qgemm_vnni()) {
        pack_b_vnni(k, n, src, ldb, b_signed, (uint8_t *)packed, column_sums, panel_begin, panel_end);
        return;
    }
    if (qgemm_avx2()) {
        pack_b_avx2(k, n, src, ldb, b_signed, (int16_t *)packed, column_sums, panel_begin, panel_end);
        return;
    }
#endif
    const size_t width = ck_qgemm_panel_width();
    for (size_t j = panel_begin * width; j < n && j < panel_end * width; j++) column_sums[j] = 0;
    pack_b_scalar(k, n, src, ldb, b_signed, packed, column_sums, panel_begin, panel_end, 0);
}

void ck_qgemm_pack_b(size_t k, size_t n, const void *b, size_t ldb, int b_signed, void *packed, int32_t *column_sums) {
    const size_t width = ck_qgemm_panel_width();
    ck_qgemm_pack_b_panels(k, n, b, ldb, b_signed, packed, column_sums, 0, (n + width - 1) / width);
}

void ck_qgemm_pack_a(size_t m, size_t k, const void *a, size_t lda, int a_signed, void *packed, int32_t *row_sums) {
    const uint8_t *src = (const uint8_t *)a;
    const size_t kp = round_up(k, qgemm_group());
    const int vnni = qgemm_vnni();
    for (size_t i = 0; i < m; i++) {
        uint32_t sum = 0;
        if (vnni) {
            int8_t *row = (int8_t *)packed + i * kp;
            for (size_t t = 0; t < k; t++) {
                const int32_t v = load_a(src, i * lda + t, a_signed);
                sum += (uint32_t)v;
                row[t] = (int8_t)v;
            }
            for (size_t t = k; t < kp; t++) row[t] = 0;
        } else {
            int16_t *row = (int16_t *)packed + i * kp;
            for (size_t t = 0; t < k; t++) {
                const int32_t v = load_a(src, i * lda + t, a_signed);
                sum += (uint32_t)v;
                row[t] = (int16_t)v;
            }
            for (size_t t = k; t < kp; t++) row[t] = 0;
        }
        row_sums[i] = (int32_t)sum;
    }
}

// The correction of one row: c = raw - zb' * rowsum - za' * colsum + K * za' * zb' = raw - s * zb' - za' * colsum
// with s = rowsum - K * za'. Unsigned arithmetic: wraps like the int32 lanes, never undefined.
typedef struct {
    const int32_t *row_sums;     // per row of A'
    const int32_t *a_zero;       // per row, shifted (za')
    const int32_t *column_sums;  // per column of B'
    const int32_t *b_zero;       // per column, shifted (zb')
    uint32_t k;
    int b_uniform;               // every column of this call has the same zb': b_zero_value
    int32_t b_zero_value;
    const float *scale;          // per column: C is float(c) * scale[j] (float bits in the int32 slots); NULL: c
    const ck_qrequant *rq;       // requantized bytes instead of C (C unused); row i of the call is rq row rq_row + i
    size_t rq_row;
} qgemm_fix;

// One requantized output, as ck_requantize's scalar path computes it (double precision).
static inline void requant_scalar(const ck_qrequant *rq, size_t row, size_t col, int32_t value) {
    const int32_t sum = rq->bias ? (int32_t)((uint32_t)value + (uint32_t)rq->bias[row]) : value;
    double v = nearbyint((double)sum * rq->multiplier[row]) + rq->zero;
    v = !(v >= rq->low) ? rq->low : (v > rq->high ? rq->high : v);
    const int32_t q = (int32_t)v;
    ((uint8_t *)rq->y)[row * rq->ldy + col] = rq->y_signed ? (uint8_t)(int8_t)q : (uint8_t)q;
}

// Row `row` of the call, columns [col0, col0 + count): C at c_row (unused with requantization).
static void correct_scalar(const qgemm_fix *fix, size_t row, size_t col0, size_t count, const int32_t *raw,
                           int32_t *c_row) {
    const uint32_t za = (uint32_t)fix->a_zero[row];
    const uint32_t s = (uint32_t)fix->row_sums[row] - fix->k * za;
    for (size_t j = 0; j < count; j++) {
        const uint32_t value = (uint32_t)raw[j] - s * (uint32_t)fix->b_zero[col0 + j] -
                               za * (uint32_t)fix->column_sums[col0 + j];
        if (fix->rq) {
            requant_scalar(fix->rq, fix->rq_row + row, col0 + j, (int32_t)value);
        } else if (fix->scale) {
            const float y = (float)(int32_t)value * fix->scale[col0 + j];
            memcpy(c_row + col0 + j, &y, sizeof y);
        } else {
            c_row[col0 + j] = (int32_t)value;
        }
    }
}

// ---- Generic: int16 layout, scalar. ----
static void qgemm_generic(size_t m, size_t n, size_t kp, const int16_t *a, const int16_t *b, const qgemm_fix *fix,
                          int32_t *c, size_t ldc, size_t panel_begin, size_t panel_end) {
    int32_t raw[8];
    for (size_t p = panel_begin; p < panel_end; p++) {
        const int16_t *panel = b + p * kp * 8;
        const size_t col0 = p * 8, count = n - col0 < 8 ? n - col0 : 8;
        for (size_t i = 0; i < m; i++) {
            uint32_t acc[8] = {0};
            const int16_t *row = a + i * kp;
            for (size_t t = 0; t < kp; t++) {
                const int32_t av = row[t];
                const int16_t *bp = panel + (t / 2) * 16 + (t % 2);
                for (size_t j = 0; j < 8; j++) acc[j] += (uint32_t)(av * (int32_t)bp[j * 2]);
            }
            for (size_t j = 0; j < 8; j++) raw[j] = (int32_t)acc[j];
            correct_scalar(fix, i, col0, count, raw, fix->rq ? c : c + i * ldc);
        }
    }
}

// The per-row values of a tile's requantization, read before its first byte store (those may alias any memory):
// A's shifted zero point, its row sum less K times it, the row's bias and multiplier.
typedef struct {
    int32_t za[8], bias[8];
    uint32_t s[8];
    double multiplier[8];
} qgemm_rq_rows;
static inline void qgemm_rq_rows_load(const qgemm_fix *fix, size_t row0, int mr, qgemm_rq_rows *rows) {
    for (int r = 0; r < mr; r++) {
        const size_t row = fix->rq_row + row0 + (size_t)r;
        rows->za[r] = fix->a_zero[row0 + r];
        rows->s[r] = (uint32_t)fix->row_sums[row0 + r] - fix->k * (uint32_t)rows->za[r];
        rows->bias[r] = fix->rq->bias ? fix->rq->bias[row] : 0;
        rows->multiplier[r] = fix->rq->multiplier[row];
    }
}

#if defined(__x86_64__)
// Eight requantized outputs of one row from their corrected sums.
__attribute__((target("avx2"))) CK_INLINE void requant8_avx2(const ck_qrequant *rq, size_t row, size_t col,
                                                               __m256i v) {
    const __m128i bytes = ck_requant8_avx2(v, rq->bias ? rq->bias[row] : 0, rq->multiplier[row], rq->zero, rq->low,
                                           rq->high, rq->y_signed);
    _mm_storel_epi64((__m128i *)(void *)((uint8_t *)rq->y + row * rq->ldy + col), bytes);
}

// ---- AVX2: int16 pairs through vpmaddwd, 6 rows x 2 panels of 8 columns. ----
// Twelve accumulators, two B vectors, the broadcast A pair and one product: the sixteen ymm registers. (Four rows
// by three panels needs a seventeenth, and the compiler kept one accumulator on the stack: a load, add and store
// per step whose store-forwarding chain held the loop to half the multiplier's rate.)
__attribute__((target("avx2")))
CK_INLINE void tile_avx2(const int mr, const int np, size_t kp, const int16_t *a, const int16_t *panel, size_t panel_stride,
                         const qgemm_fix *fix, size_t row0, size_t col0, size_t n, int32_t *c, size_t ldc) {
    __m256i acc[6][2];
    _Pragma("clang loop unroll(full)")
    for (int r = 0; r < mr; r++)
        _Pragma("clang loop unroll(full)")
        for (int q = 0; q < np; q++) acc[r][q] = _mm256_setzero_si256();
    for (size_t g = 0; g < kp / 2; g++) {
        __m256i bv[2];
        _Pragma("clang loop unroll(full)")
        for (int q = 0; q < np; q++) bv[q] = _mm256_loadu_si256((const __m256i *)(panel + q * panel_stride + g * 16));
        _Pragma("clang loop unroll(full)")
        for (int r = 0; r < mr; r++) {
            int32_t pair;
            memcpy(&pair, a + r * kp + g * 2, sizeof pair);
            const __m256i av = _mm256_set1_epi32(pair);
            _Pragma("clang loop unroll(full)")
            for (int q = 0; q < np; q++) acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(av, bv[q]));
        }
    }
    if (fix->rq) {
        // Requantized bytes, as in tile_vnni: what the byte stores could alias read before the first of them.
        const ck_qrequant rq = *fix->rq;
        const int uniform = fix->b_uniform;
        const uint32_t zb_value = (uint32_t)fix->b_zero_value;
        size_t counts[2];
        __m256i colsums[2], zbs[2];
        _Pragma("clang loop unroll(full)")
        for (int q = 0; q < np; q++) {
            const size_t col = col0 + (size_t)q * 8;
            counts[q] = col < n ? (n - col < 8 ? n - col : 8) : 0;
            if (counts[q] == 8) {
                colsums[q] = _mm256_loadu_si256((const __m256i *)(fix->column_sums + col));
                zbs[q] = _mm256_loadu_si256((const __m256i *)(fix->b_zero + col));
            } else {
                colsums[q] = zbs[q] = _mm256_setzero_si256();
            }
        }
        qgemm_rq_rows rows;
        qgemm_rq_rows_load(fix, row0, mr, &rows);
        const int32_t *za = rows.za, *bias = rows.bias;
        const uint32_t *s = rows.s;
        const double *multiplier = rows.multiplier;
        _Pragma("clang loop unroll(full)")
        for (int r = 0; r < mr; r++) {
            uint8_t *yrow = (uint8_t *)rq.y + (fix->rq_row + row0 + (size_t)r) * rq.ldy + col0;
            _Pragma("clang loop unroll(full)")
            for (int q = 0; q < np; q++) {
                if (counts[q] == 0) continue;
                if (counts[q] < 8) {
                    int32_t raw[8];
                    _mm256_storeu_si256((__m256i *)(void *)raw, acc[r][q]);
                    correct_scalar(fix, row0 + (size_t)r, col0 + (size_t)q * 8, counts[q], raw, c);
                    continue;
                }
                __m256i v = uniform ? _mm256_sub_epi32(acc[r][q], _mm256_set1_epi32((int32_t)(s[r] * zb_value)))
                                    : _mm256_sub_epi32(acc[r][q],
                                                       _mm256_mullo_epi32(_mm256_set1_epi32((int32_t)s[r]), zbs[q]));
                if (za[r] != 0) v = _mm256_sub_epi32(v, _mm256_mullo_epi32(_mm256_set1_epi32(za[r]), colsums[q]));
                const __m128i bytes =
                    ck_requant8_avx2(v, bias[r], multiplier[r], rq.zero, rq.low, rq.high, rq.y_signed);
                _mm_storel_epi64((__m128i *)(void *)(yrow + q * 8), bytes);
            }
        }
        return;
    }
    _Pragma("clang loop unroll(full)")
    for (int q = 0; q < np; q++) {
        const size_t col = col0 + (size_t)q * 8;
        if (col >= n) continue;
        const size_t count = n - col < 8 ? n - col : 8;
        if (count == 8) {
            const __m256i colsum = _mm256_loadu_si256((const __m256i *)(fix->column_sums + col));
            const __m256i zb = _mm256_loadu_si256((const __m256i *)(fix->b_zero + col));
            _Pragma("clang loop unroll(full)")
            for (int r = 0; r < mr; r++) {
                const int32_t za = fix->a_zero[row0 + r];
                const uint32_t s = (uint32_t)fix->row_sums[row0 + r] - fix->k * (uint32_t)za;
                __m256i v = fix->b_uniform
                                ? _mm256_sub_epi32(acc[r][q], _mm256_set1_epi32((int32_t)(s * (uint32_t)fix->b_zero_value)))
                                : _mm256_sub_epi32(acc[r][q], _mm256_mullo_epi32(_mm256_set1_epi32((int32_t)s), zb));
                if (za != 0) v = _mm256_sub_epi32(v, _mm256_mullo_epi32(_mm256_set1_epi32(za), colsum));
                if (fix->rq) {
                    requant8_avx2(fix->rq, fix->rq_row + row0 + r, col, v);
                } else if (fix->scale) {
                    const __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_loadu_ps(fix->scale + col));
                    _mm256_storeu_ps((float *)(void *)(c + (size_t)r * ldc + col), y);
                } else {
                    _mm256_storeu_si256((__m256i *)(c + (size_t)r * ldc + col), v);
                }
            }
        } else {
            int32_t raw[8];
            _Pragma("clang loop unroll(full)")
            for (int r = 0; r < mr; r++) {
                _mm256_storeu_si256((__m256i *)raw, acc[r][q]);
                correct_scalar(fix, row0 + r, col, count, raw, fix->rq ? c : c + (size_t)r * ldc);
            }
        }
    }
}

#define QG_CASES_AVX2(np)                                                                                     \
    switch (mr) {                                                                                              \
    case 6: tile_avx2(6, np, kp, a, panel, stride, fix, row0, col0, n, c, ldc); break;                      \
    case 5: tile_avx2(5, np, kp, a, panel, stride, fix, row0, col0, n, c, ldc); break;                      \
    case 4: tile_avx2(4, np, kp, a, panel, stride, fix, row0, col0, n, c, ldc); break;                      \
    case 3: tile_avx2(3, np, kp, a, panel, stride, fix, row0, col0, n, c, ldc); break;                      \
    case 2: tile_avx2(2, np, kp, a, panel, stride, fix, row0, col0, n, c, ldc); break;                      \
    default: tile_avx2(1, np, kp, a, panel, stride, fix, row0, col0, n, c, ldc); break;                     \
    }

__attribute__((target("avx2")))
static void qgemm_avx2_run(size_t m, size_t n, size_t kp, const int16_t *a_all, const int16_t *b, const qgemm_fix *fix,
                           int32_t *c_all, size_t ldc, size_t panel_begin, size_t panel_end) {
    const size_t stride = kp * 8;
    for (size_t p = panel_begin; p < panel_end; p += 2) {
        const int np = panel_end - p >= 2 ? 2 : 1;
        const int16_t *panel = b + p * stride;
        const size_t col0 = p * 8;
        for (size_t row0 = 0; row0 < m; row0 += 6) {
            const int mr = m - row0 >= 6 ? 6 : (int)(m - row0);
            const int16_t *a = a_all + row0 * kp;
            int32_t *c = c_all + row0 * ldc;
            if (np == 2) {
                QG_CASES_AVX2(2)
            } else {
                QG_CASES_AVX2(1)
            }
        }
    }
}

// Sixteen requantized outputs of one row, the lanes of `mask` stored.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) CK_INLINE void requant16_avx512(const ck_qrequant *rq, size_t row,
                                                                                   size_t col, __m512i v,
                                                                                   __mmask16 mask) {
    const __m128i bytes =
        ck_requant16_avx512(v, rq->bias ? rq->bias[row] : 0, rq->multiplier[row], rq->zero, rq->low, rq->high);
    _mm_mask_storeu_epi8((uint8_t *)rq->y + row * rq->ldy + col, mask, bytes);
}

// ---- AVX-512 VNNI: vpdpbusd, 8 rows x 2 panels of 16 columns. ----
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
CK_INLINE void tile_vnni(const int mr, const int np, size_t kp, const int8_t *a, const uint8_t *panel, size_t panel_stride,
                         const qgemm_fix *fix, size_t row0, size_t col0, size_t n, int32_t *c, size_t ldc) {
    __m512i acc[8][2];
    _Pragma("clang loop unroll(full)")
    for (int r = 0; r < mr; r++)
        _Pragma("clang loop unroll(full)")
        for (int q = 0; q < np; q++) acc[r][q] = _mm512_setzero_si512();
    for (size_t g = 0; g < kp / 4; g++) {
        __m512i bv[2];
        _Pragma("clang loop unroll(full)")
        for (int q = 0; q < np; q++) bv[q] = _mm512_loadu_si512((const void *)(panel + q * panel_stride + g * 64));
        _Pragma("clang loop unroll(full)")
        for (int r = 0; r < mr; r++) {
            int32_t quad;
            memcpy(&quad, a + r * kp + g * 4, sizeof quad);
            const __m512i av = _mm512_set1_epi32(quad);
            _Pragma("clang loop unroll(full)")
            for (int q = 0; q < np; q++) acc[r][q] = _mm512_dpbusd_epi32(acc[r][q], bv[q], av);
        }
    }
    if (fix->rq) {
        // Requantized bytes: row by row, with everything the byte stores could alias (they may alias any memory)
        // read before the first of them, so nothing is reloaded per vector.
        const ck_qrequant rq = *fix->rq;
        const int uniform = fix->b_uniform;
        const uint32_t zb_value = (uint32_t)fix->b_zero_value;
        __mmask16 masks[2];
        __m512i colsums[2], zbs[2];
        _Pragma("clang loop unroll(full)")
        for (int q = 0; q < np; q++) {
            const size_t col = col0 + (size_t)q * 16;
            const size_t count = col < n ? (n - col < 16 ? n - col : 16) : 0;
            masks[q] = count == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
            colsums[q] = _mm512_maskz_loadu_epi32(masks[q], fix->column_sums + (col < n ? col : 0));
            zbs[q] = _mm512_maskz_loadu_epi32(masks[q], fix->b_zero + (col < n ? col : 0));
        }
        qgemm_rq_rows rows;
        qgemm_rq_rows_load(fix, row0, mr, &rows);
        const int32_t *za = rows.za, *bias = rows.bias;
        const uint32_t *s = rows.s;
        const double *multiplier = rows.multiplier;
        const __m512 vz = _mm512_set1_ps((float)rq.zero), vl = _mm512_set1_ps((float)rq.low);
        const __m512 vh = _mm512_set1_ps((float)rq.high);
        _Pragma("clang loop unroll(full)")
        for (int r = 0; r < mr; r++) {
            uint8_t *yrow = (uint8_t *)rq.y + (fix->rq_row + row0 + (size_t)r) * rq.ldy + col0;
            const __m512 mf = _mm512_set1_ps((float)multiplier[r]);
            // The bias joins the zero-point correction: one subtraction per vector.
            const __m512i shift = _mm512_set1_epi32((int32_t)(s[r] * zb_value - (uint32_t)bias[r]));
            _Pragma("clang loop unroll(full)")
            for (int q = 0; q < np; q++) {
                if (masks[q] == 0) continue;
                __m512i v = uniform ? _mm512_sub_epi32(acc[r][q], shift)
                                    : _mm512_add_epi32(_mm512_sub_epi32(acc[r][q], _mm512_mullo_epi32(
                                                                                      _mm512_set1_epi32((int32_t)s[r]), zbs[q])),
                                                       _mm512_set1_epi32(bias[r]));
                if (za[r] != 0) v = _mm512_sub_epi32(v, _mm512_mullo_epi32(_mm512_set1_epi32(za[r]), colsums[q]));
                const __m128i bytes =
                    ck_requant16_prepared(v, mf, multiplier[r], vz, vl, vh, rq.zero, rq.low, rq.high);
                _mm_mask_storeu_epi8(yrow + q * 16, masks[q], bytes);
            }
        }
        return;
    }
    // No early exit and constant trip counts: the accumulators stay in registers.
    _Pragma("clang loop unroll(full)")
    for (int q = 0; q < np; q++) {
        const size_t col = col0 + (size_t)q * 16;
        if (col < n) {
            const size_t count = n - col < 16 ? n - col : 16;
            const __mmask16 mask = count == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
            const __m512i colsum = _mm512_maskz_loadu_epi32(mask, fix->column_sums + col);
            const __m512i zb = _mm512_maskz_loadu_epi32(mask, fix->b_zero + col);
            _Pragma("clang loop unroll(full)")
            for (int r = 0; r < mr; r++) {
                const int32_t za = fix->a_zero[row0 + r];
                const uint32_t s = (uint32_t)fix->row_sums[row0 + r] - fix->k * (uint32_t)za;
                // One B zero point for every column (per-tensor activations): s * zb is one scalar per row.
                __m512i v = fix->b_uniform
                                ? _mm512_sub_epi32(acc[r][q], _mm512_set1_epi32((int32_t)(s * (uint32_t)fix->b_zero_value)))
                                : _mm512_sub_epi32(acc[r][q], _mm512_mullo_epi32(_mm512_set1_epi32((int32_t)s), zb));
                // Symmetric A (zero point 0 after the shift, e.g. signed weights): no column-sum term.
                if (za != 0) v = _mm512_sub_epi32(v, _mm512_mullo_epi32(_mm512_set1_epi32(za), colsum));
                if (fix->rq) {
                    requant16_avx512(fix->rq, fix->rq_row + row0 + r, col, v, mask);
                } else if (fix->scale) {
                    const __m512 y =
                        _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_maskz_loadu_ps(mask, fix->scale + col));
                    _mm512_mask_storeu_ps((float *)(void *)(c + (size_t)r * ldc + col), mask, y);
                } else {
                    _mm512_mask_storeu_epi32(c + (size_t)r * ldc + col, mask, v);
                }
            }
        }
    }
}

#define QG_CASES_VNNI(np)                                                                                     \
    switch (mr) {                                                                                              \
    case 8: tile_vnni(8, np, kp, a, panel, stride, fix, row0, col0, n, c, ldc); break;                      \
    case 7: tile_vnni(7, np, kp, a, panel, stride, fix, row0, col0, n, c, ldc); break;                      \
    case 6: tile_vnni(6, np, kp, a, panel, stride, fix, row0, col0, n, c, ldc); break;                      \
    case 5: tile_vnni(5, np, kp, a, panel, stride, fix, row0, col0, n, c, ldc); break;                      \
    case 4: tile_vnni(4, np, kp, a, panel, stride, fix, row0, col0, n, c, ldc); break;                      \
    case 3: tile_vnni(3, np, kp, a, panel, stride, fix, row0, col0, n, c, ldc); break;                      \
    case 2: tile_vnni(2, np, kp, a, panel, stride, fix, row0, col0, n, c, ldc); break;                      \
    default: tile_vnni(1, np, kp, a, panel, stride, fix, row0, col0, n, c, ldc); break;                     \
    }

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
static void qgemm_vnni_run(size_t m, size_t n, size_t kp, const int8_t *a_all, const uint8_t *b, const qgemm_fix *fix,
                           int32_t *c_all, size_t ldc, size_t panel_begin, size_t panel_end) {
    const size_t stride = kp * 16;
    // Few panels (up to 128 KB of B, a 7x7 plane's four): row tiles outside, so each row tile of A is read once for
    // all of them instead of once per pair (ResNet-50's 512 x 2048 int8 layers stream 1 MB of weights per pass).
    if ((panel_end - panel_begin) * stride <= 128 * 1024) {
        for (size_t row0 = 0; row0 < m; row0 += 8) {
            const int mr = m - row0 >= 8 ? 8 : (int)(m - row0);
            const int8_t *a = a_all + row0 * kp;
            int32_t *c = c_all + row0 * ldc;
            for (size_t p = panel_begin; p < panel_end; p += 2) {
                const int np = panel_end - p >= 2 ? 2 : 1;
                const uint8_t *panel = b + p * stride;
                const size_t col0 = p * 16;
                if (np == 2) {
                    QG_CASES_VNNI(2)
                } else {
                    QG_CASES_VNNI(1)
                }
            }
        }
        return;
    }
    for (size_t p = panel_begin; p < panel_end; p += 2) {
        const int np = panel_end - p >= 2 ? 2 : 1;
        const uint8_t *panel = b + p * stride;
        const size_t col0 = p * 16;
        for (size_t row0 = 0; row0 < m; row0 += 8) {
            const int mr = m - row0 >= 8 ? 8 : (int)(m - row0);
            const int8_t *a = a_all + row0 * kp;
            int32_t *c = c_all + row0 * ldc;
            if (np == 2) {
                QG_CASES_VNNI(2)
            } else {
                QG_CASES_VNNI(1)
            }
        }
    }
}
#endif

void ck_qgemm_packed(size_t m, size_t n, size_t k, const void *packed_a, const int32_t *row_sums,
                     const int32_t *a_zero, const void *packed_b, const int32_t *column_sums, const int32_t *b_zero,
                     int32_t *c, size_t ldc, size_t panel_begin, size_t panel_end) {
    ck_qgemm_packed_scaled(m, n, k, packed_a, row_sums, a_zero, packed_b, column_sums, b_zero, NULL, c, ldc,
                           panel_begin, panel_end);
}

static void qgemm_run(size_t m, size_t n, size_t kp, const void *packed_a, const void *packed_b,
                      const qgemm_fix *fix, int32_t *c, size_t ldc, size_t panel_begin, size_t panel_end);

void ck_qgemm_packed_scaled(size_t m, size_t n, size_t k, const void *packed_a, const int32_t *row_sums,
                            const int32_t *a_zero, const void *packed_b, const int32_t *column_sums,
                            const int32_t *b_zero, const float *scale, int32_t *c, size_t ldc, size_t panel_begin,
                            size_t panel_end) {
    const size_t kp = round_up(k, qgemm_group());
    if (m == 0 || panel_begin >= panel_end) return;
    // Whether the B zero points of this call's columns are all the same (per-tensor activations).
    const size_t width = ck_qgemm_panel_width();
    const size_t first = panel_begin * width, last = panel_end * width < n ? panel_end * width : n;
    int uniform = 1;
    for (size_t j = first; j < last && uniform; j++) uniform = b_zero[j] == b_zero[first];
    const qgemm_fix call = {row_sums, a_zero, column_sums, b_zero, (uint32_t)k, uniform, b_zero[first], scale, NULL, 0};
    qgemm_run(m, n, kp, packed_a, packed_b, &call, c, ldc, panel_begin, panel_end);
}

void ck_qgemm_packed_requant(size_t m, size_t n, size_t k, const void *packed_a, const int32_t *row_sums,
                             const int32_t *a_zero, const void *packed_b, const int32_t *column_sums,
                             const int32_t *b_zero, const ck_qrequant *rq, size_t row_offset, size_t panel_begin,
                             size_t panel_end) {
    const size_t kp = round_up(k, qgemm_group());
    if (m == 0 || panel_begin >= panel_end || rq == NULL) return;
    const size_t width = ck_qgemm_panel_width();
    const size_t first = panel_begin * width, last = panel_end * width < n ? panel_end * width : n;
    int uniform = 1;
    for (size_t j = first; j < last && uniform; j++) uniform = b_zero[j] == b_zero[first];
    const qgemm_fix call = {row_sums, a_zero, column_sums, b_zero, (uint32_t)k, uniform, b_zero[first], NULL, rq,
                            row_offset};
    // C is never written: the tiles store bytes through rq (ldc 0 keeps the row pointers on this one value).
    int32_t unused = 0;
    qgemm_run(m, n, kp, packed_a, packed_b, &call, &unused, 0, panel_begin, panel_end);
}

static void qgemm_run(size_t m, size_t n, size_t kp, const void *packed_a, const void *packed_b,
                      const qgemm_fix *fix, int32_t *c, size_t ldc, size_t panel_begin, size_t panel_end) {
    const qgemm_fix call = *fix;
#if defined(__x86_64__)
    if (qgemm_vnni()) {
        qgemm_vnni_run(m, n, kp, (const int8_t *)packed_a, (const uint8_t *)packed_b, &call, c, ldc, panel_begin,
                       panel_end);
        return;
    }
    if (qgemm_avx2()) {
        qgemm_avx2_run(m, n, kp, (const int16_t *)packed_a, (const int16_t *)packed_b, &call, c, ldc, panel_begin,
                       panel_end);
        return;
    }
#endif
    qgemm_generic(m, n, kp, (const int16_t *)packed_a, (const int16_t *)packed_b, &call, c, ldc, panel_begin,
                  panel_end);
}

void ck_qgemm_reference(size_t m, size_t n, size_t k, const void *a, size_t lda, int a_signed, const int32_t *a_zero,
                        const void *b, size_t ldb, int b_signed, const int32_t *b_zero, int32_t *c, size_t ldc) {
    const uint8_t *pa = (const uint8_t *)a, *pb = (const uint8_t *)b;
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            int64_t sum = 0;
            for (size_t t = 0; t < k; t++) {
                const int64_t av = a_signed ? (int8_t)pa[i * lda + t] : pa[i * lda + t];
                const int64_t bv = b_signed ? (int8_t)pb[t * ldb + j] : pb[t * ldb + j];
                sum += (av - a_zero[i]) * (bv - b_zero[j]);
            }
            c[i * ldc + j] = (int32_t)(uint32_t)(uint64_t)sum;
        }
    }
}

// Copies a short run of bytes: 16-byte moves, then single bytes.
static inline void copy_bytes(uint8_t *dst, const uint8_t *src, size_t count) {
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        uint8_t chunk[16];
        memcpy(chunk, src + i, 16);
        memcpy(dst + i, chunk, 16);
    }
    for (; i < count; i++) dst[i] = src[i];
}

void ck_im2col_u8(const uint8_t *x, size_t height, size_t width, size_t kernel_h, size_t kernel_w, size_t stride_h,
                  size_t stride_w, size_t dilation_h, size_t dilation_w, size_t pad_top, size_t pad_left,
                  size_t out_h, size_t out_w, uint8_t pad, uint8_t *columns, size_t row_begin, size_t row_end) {
    const size_t window = kernel_h * kernel_w, count = out_h * out_w;
    for (size_t row = row_begin; row < row_end; row++) {
        const size_t c = row / window, ky = (row % window) / kernel_w, kx = row % kernel_w;
        const uint8_t *plane = x + c * height * width;
        uint8_t *dst = columns + row * count;
        for (size_t oy = 0; oy < out_h; oy++) {
            uint8_t *line = dst + oy * out_w;
            // Input row and column of output (oy, 0), in signed arithmetic: padding makes them negative.
            const long iy = (long)(oy * stride_h + ky * dilation_h) - (long)pad_top;
            if (iy < 0 || iy >= (long)height) {
                for (size_t ox = 0; ox < out_w; ox++) line[ox] = pad;
                continue;
            }
            const uint8_t *source = plane + (size_t)iy * width;
            const long x0 = (long)(kx * dilation_w) - (long)pad_left;
            if (stride_w == 1) {
                // Columns ox with 0 <= x0 + ox < width are one copy; the rest is padding.
                long first = x0 < 0 ? -x0 : 0, last = (long)width - x0;
                if (last > (long)out_w) last = (long)out_w;
                if (first > (long)out_w) first = (long)out_w;
                if (last < first) last = first;
                // Lines are short (tens of bytes): inline loops, not library calls per line.
                for (long ox = 0; ox < first; ox++) line[ox] = pad;
                copy_bytes(line + first, source + x0 + first, (size_t)(last - first));
                for (size_t ox = (size_t)last; ox < out_w; ox++) line[ox] = pad;
            } else {
                // Columns inside the image: x0 + ox * stride in [0, width), a contiguous range of ox.
                const long s = (long)stride_w;
                long first = x0 < 0 ? (-x0 + s - 1) / s : 0;
                long last = x0 < (long)width ? ((long)width - x0 + s - 1) / s : 0;
                if (last > (long)out_w) last = (long)out_w;
                if (first > last) first = last;
                for (long ox = 0; ox < first; ox++) line[ox] = pad;
                for (long ox = first; ox < last; ox++) line[ox] = source[x0 + ox * s];
                for (long ox = last; ox < (long)out_w; ox++) line[ox] = pad;
            }
        }
    }
}
