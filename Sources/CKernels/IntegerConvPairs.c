// QLinearConv without im2col on AVX2 machines without VNNI (the in-place windows of IntegerConvDirect.c, in the
// form vpmaddwd wants). The image is copied once per run into pairs of channels as int16 with its zero point
// subtracted ((a - za) for channels 2c and 2c + 1 in one 32-bit lane), the weights once with theirs ((w - zw), any
// zero points, per filter or not): the products are exact in vpmaddwd's int16 x int16 -> int32 pairs
// (|a - za|, |w - zw| <= 255), so no zero-point corrections are left for the tiles and the sums are the im2col
// path's (exact int32, wrapping), requantized to the same bytes (ck_requant2x8_avx2).
//
// Positions are the tiles' vector lanes, as in the AVX2 GEMM (6 filters x 16 positions): a tile loads 8 adjacent
// positions' pairs straight from the image where the GEMM loaded a packed panel. For that the tiles run over every
// position of the padded rows, the columns past the output's width included (their sums are computed and never
// stored): tap (ky, kx) of position p is then image element p + offset(ky, kx), one linear address. Per 64-channel
// 3x3 layer at 56x56 that is 3.5% more multiply-adds and none of im2col's nine copies of the image. Stride 1 only:
// at stride 2 (the image split into four phases of even and odd rows and columns, so that adjacent outputs read
// adjacent pairs) a 64 -> 128 3x3 layer at 56x56 ran 30% slower than im2col.
#include "CKernels.h"
#include "Requant.h"
#include <string.h>

static size_t round_up(size_t value, size_t step) { return (value + step - 1) / step * step; }

#define CK_PAIR_ROWS 6
#define CK_PAIR_VECTORS 2
#define CK_PAIR_TILE (8 * CK_PAIR_VECTORS)
#define CK_PAIR_GROUP_BYTES (192 * 1024)

int ck_qconv2_available(void) { return strcmp(ck_qgemm_path(), "avx2") == 0; }

size_t ck_qconv2_weight_bytes(size_t filters, size_t channels, size_t kernel_h, size_t kernel_w) {
    return round_up(filters, CK_PAIR_ROWS) * round_up(channels, 2) * kernel_h * kernel_w * sizeof(int16_t);
}

void ck_qconv2_pack_weights(const void *w, int w_signed, const int32_t *w_zero, size_t zero_count, size_t filters,
                            size_t channels, size_t kernel_h, size_t kernel_w, int16_t *packed) {
    const size_t pairs = round_up(channels, 2) / 2, taps = kernel_h * kernel_w, kq = pairs * taps;
    const uint8_t *bytes = (const uint8_t *)w;
    const size_t blocks = round_up(filters, CK_PAIR_ROWS) / CK_PAIR_ROWS;
    for (size_t b = 0; b < blocks; b++) {
        for (size_t q = 0; q < pairs; q++) {
            for (size_t t = 0; t < taps; t++) {
                int16_t *dst = packed + ((b * kq + q * taps + t) * CK_PAIR_ROWS) * 2;
                for (size_t r = 0; r < CK_PAIR_ROWS; r++) {
                    const size_t f = b * CK_PAIR_ROWS + r;
                    for (size_t i = 0; i < 2; i++) {
                        const size_t c = q * 2 + i;
                        int32_t value = 0;
                        if (f < filters && c < channels) {
                            const uint8_t raw = bytes[(f * channels + c) * taps + t];
                            value = (w_signed ? (int32_t)(int8_t)raw : (int32_t)raw) - w_zero[zero_count == 1 ? 0 : f];
                        }
                        dst[r * 2 + i] = (int16_t)value;
                    }
                }
            }
        }
    }
}

size_t ck_qconv2_image_bytes(size_t channels, size_t padded_h, size_t padded_w, size_t kernel_w) {
    // The last tile reads up to 15 positions and a tap's columns past the last plane's end.
    return (round_up(channels, 2) / 2 * padded_h * padded_w + CK_PAIR_TILE + kernel_w + 16) * sizeof(int32_t);
}

#if defined(__x86_64__)
#include <immintrin.h>

// Sixteen pixels of two channel rows (c1 NULL: a missing odd channel) as (a - za) pairs into dst (16 lanes).
__attribute__((target("avx2"), always_inline)) static inline void pairs16(const uint8_t *c0, const uint8_t *c1,
                                                                          int x_signed, __m256i za, int32_t *dst) {
    const __m128i b0 = _mm_loadu_si128((const __m128i *)(const void *)c0);
    const __m256i w0 = _mm256_sub_epi16(x_signed ? _mm256_cvtepi8_epi16(b0) : _mm256_cvtepu8_epi16(b0), za);
    __m256i w1 = _mm256_setzero_si256();
    if (c1) {
        const __m128i b1 = _mm_loadu_si128((const __m128i *)(const void *)c1);
        w1 = _mm256_sub_epi16(x_signed ? _mm256_cvtepi8_epi16(b1) : _mm256_cvtepu8_epi16(b1), za);
    }
    // Interleaved within 128-bit halves: lo holds pixels 0-3 and 8-11, hi 4-7 and 12-15.
    const __m256i lo = _mm256_unpacklo_epi16(w0, w1), hi = _mm256_unpackhi_epi16(w0, w1);
    _mm256_storeu_si256((__m256i *)(void *)dst, _mm256_permute2x128_si256(lo, hi, 0x20));
    _mm256_storeu_si256((__m256i *)(void *)(dst + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
}

// `count` pixels of channels c0 and c1 (c1 NULL: zero) as pairs into dst.
__attribute__((target("avx2"))) static void pair_row(const uint8_t *c0, const uint8_t *c1, size_t count, int x_signed,
                                                     int32_t zero, int32_t *dst) {
    size_t i = 0;
    const __m256i za = _mm256_set1_epi16((short)zero);
    for (; i + 16 <= count; i += 16) pairs16(c0 + i, c1 ? c1 + i : NULL, x_signed, za, dst + i);
    for (; i < count; i++) {
        const int32_t a0 = (x_signed ? (int32_t)(int8_t)c0[i] : (int32_t)c0[i]) - zero;
        const int32_t a1 = c1 ? (x_signed ? (int32_t)(int8_t)c1[i] : (int32_t)c1[i]) - zero : 0;
        dst[i] = (int32_t)(((uint32_t)(uint16_t)(int16_t)a1 << 16) | (uint32_t)(uint16_t)(int16_t)a0);
    }
}
#endif

void ck_qconv2_image(const uint8_t *x, int x_signed, int32_t x_zero, size_t channels, size_t height, size_t width,
                     size_t pad_top, size_t pad_left, size_t padded_h, size_t padded_w, int32_t *out,
                     size_t pair_begin, size_t pair_end) {
#if defined(__x86_64__)
    const size_t plane = padded_h * padded_w;
    const int whole = pad_top == 0 && pad_left == 0 && padded_h == height && padded_w == width;
    // Image columns [pad_left, pad_left + count) of each padded row.
    const size_t count = pad_left >= padded_w ? 0 : (pad_left + width <= padded_w ? width : padded_w - pad_left);
    for (size_t q = pair_begin; q < pair_end; q++) {
        const uint8_t *c0 = x + 2 * q * height * width;
        const uint8_t *c1 = 2 * q + 1 < channels ? c0 + height * width : NULL;
        int32_t *pair = out + q * plane;
        if (whole) {
            pair_row(c0, c1, height * width, x_signed, x_zero, pair);
            continue;
        }
        for (size_t y = 0; y < padded_h; y++) {
            int32_t *row = pair + y * padded_w;
            if (y < pad_top || y - pad_top >= height || count == 0) {
                memset(row, 0, padded_w * sizeof(int32_t));
                continue;
            }
            const size_t iy = y - pad_top;
            memset(row, 0, pad_left * sizeof(int32_t));
            pair_row(c0 + iy * width, c1 ? c1 + iy * width : NULL, count, x_signed, x_zero, row + pad_left);
            memset(row + pad_left + count, 0, (padded_w - pad_left - count) * sizeof(int32_t));
        }
    }
    // The slack after the last plane, read by the last tiles' unused lanes.
    if (pair_end == round_up(channels, 2) / 2 && pair_begin < pair_end) {
        memset(out + pair_end * plane, 0, (CK_PAIR_TILE + 16) * sizeof(int32_t));
    }
#else
    (void)x, (void)x_signed, (void)x_zero, (void)channels, (void)height, (void)width, (void)pad_top, (void)pad_left;
    (void)padded_h, (void)padded_w, (void)out, (void)pair_begin, (void)pair_end;
#endif
}

// Filter blocks per group: as many as keep the group's weights within 192 KB (at least one).
static size_t pair_group_blocks(const ck_qconv2 *cv) {
    const size_t block_bytes = cv->kq * CK_PAIR_ROWS * sizeof(int32_t);
    const size_t fblocks = (cv->filters + CK_PAIR_ROWS - 1) / CK_PAIR_ROWS;
    const size_t fit = block_bytes > 0 ? CK_PAIR_GROUP_BYTES / block_bytes : fblocks;
    return fit == 0 ? 1 : (fit < fblocks ? fit : fblocks);
}

// Where a tile's two vectors of eight positions go: one 8-byte store each at `at`, or (direct 0) position by
// position (rows narrower than a vector, the columns past the output's width, the plane's end). Formed once per
// tile, not per filter block (a division each).
typedef struct {
    size_t at[CK_PAIR_VECTORS];
    int direct[CK_PAIR_VECTORS];
} pair_stores;

static pair_stores pair_stores_at(const ck_qconv2 *cv, size_t p0) {
    const size_t padded_w = cv->padded_w, out_w = cv->out_w, out_h = cv->out_h, plane = out_h * out_w;
    pair_stores stores;
    size_t oy = p0 / padded_w, ox = p0 % padded_w;
    for (int j = 0; j < CK_PAIR_VECTORS; j++) {
        stores.at[j] = oy * out_w + ox;
        stores.direct[j] = padded_w == out_w ? stores.at[j] + 8 <= plane : (oy < out_h && ox + 8 <= out_w);
        ox += 8;
        while (ox >= padded_w) {
            ox -= padded_w;
            oy++;
        }
    }
    return stores;
}

#if defined(__x86_64__)
// `mr` filters x `np` vectors of eight grid positions from p0: sums over every pair and tap, requantized, stored
// where the position is an output (column below out_w). Six filters x 16 positions (the AVX2 GEMM's tile: twelve
// accumulators, two image vectors, a broadcast and a product); two filters x 48 positions (one broadcast per six
// multiply-adds) measured 6% slower on 3x3 layers and 40% slower on a 64 -> 256 1x1 layer.
__attribute__((target("avx2,fma"), always_inline)) static inline void
pair_tile(const int mr, const int np, const ck_qconv2 *cv, size_t f0, size_t p0, const pair_stores *stores,
          const int32_t *w) {
    __m256i acc[CK_PAIR_ROWS][CK_PAIR_VECTORS];
    _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++)
        _Pragma("clang loop unroll(full)") for (int j = 0; j < np; j++) acc[r][j] = _mm256_setzero_si256();
    const int32_t *base = cv->image + p0;
    const int64_t *offsets = cv->offsets;
    const size_t kq = cv->kq;
    for (size_t g = 0; g < kq; g++) {
        const int32_t *src = base + offsets[g];
        __m256i b[CK_PAIR_VECTORS];
        _Pragma("clang loop unroll(full)") for (int j = 0; j < np; j++) b[j] =
            _mm256_loadu_si256((const __m256i *)(const void *)(src + 8 * j));
        _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++) {
            const __m256i av = _mm256_set1_epi32(w[g * CK_PAIR_ROWS + (size_t)r]);
            _Pragma("clang loop unroll(full)") for (int j = 0; j < np; j++) acc[r][j] =
                _mm256_add_epi32(acc[r][j], _mm256_madd_epi16(av, b[j]));
        }
    }
    // Everything the byte stores may alias read before the first of them.
    const ck_qrequant rq = cv->rq;
    const size_t padded_w = cv->padded_w, out_w = cv->out_w, out_h = cv->out_h;
    const size_t filters = cv->filters;
    uint8_t *y = (uint8_t *)rq.y;
    const __m256 vz = _mm256_set1_ps((float)rq.zero), vl = _mm256_set1_ps((float)rq.low);
    const __m256 vh = _mm256_set1_ps((float)rq.high);
    _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++) {
        const size_t f = f0 + (size_t)r;
        if (f >= filters) break;
        const double multiplier = rq.multiplier[f];
        const __m128i bytes = ck_requant2x8_avx2(
            acc[r][0], acc[r][np - 1], _mm256_set1_epi32(rq.bias ? rq.bias[f] : 0), _mm256_set1_ps((float)multiplier),
            multiplier, vz, vl, vh, rq.zero, rq.low, rq.high, rq.y_signed);
        uint8_t *dst = y + f * rq.ldy;
        _Pragma("clang loop unroll(full)") for (int j = 0; j < np; j++) {
            if (stores->direct[j]) {
                if (j == 0) {
                    _mm_storel_epi64((__m128i *)(void *)(dst + stores->at[j]), bytes);
                } else {
                    _mm_storeh_pd((double *)(void *)(dst + stores->at[j]), _mm_castsi128_pd(bytes));
                }
                continue;
            }
            uint8_t values[16];
            _mm_storeu_si128((__m128i *)(void *)values, bytes);
            size_t p = p0 + (size_t)j * 8, oy = p / padded_w, ox = p % padded_w;
            for (int i = 0; i < 8; i++) {
                if (oy < out_h && ox < out_w) dst[oy * out_w + ox] = values[j * 8 + i];
                if (++ox == padded_w) {
                    ox = 0;
                    oy++;
                }
            }
        }
    }
}

__attribute__((target("avx2,fma"))) static void pair_run(const ck_qconv2 *cv, size_t begin, size_t end) {
    const size_t positions = cv->out_h * cv->padded_w;
    const size_t tiles = (positions + CK_PAIR_TILE - 1) / CK_PAIR_TILE;
    const size_t fblocks = (cv->filters + CK_PAIR_ROWS - 1) / CK_PAIR_ROWS;
    const size_t group = pair_group_blocks(cv), block_stride = cv->kq * CK_PAIR_ROWS;
    // A unit is one tile of positions against a group of filter blocks: the tile's windows stay in the L1 cache
    // while the group's weights stream from the L2 (as the GEMM keeps a packed panel and streams the weights).
    // (A first version's units of 64 positions against one filter block read each block's windows once per filter
    // block; the two orders were not compared in alternating runs.)
    for (size_t u = begin; u < end; u++) {
        const size_t first = (u / tiles) * group, p0 = (u % tiles) * CK_PAIR_TILE;
        const size_t last = first + group < fblocks ? first + group : fblocks;
        const pair_stores stores = pair_stores_at(cv, p0);
        for (size_t fb = first; fb < last; fb++) {
            const int32_t *w = cv->weights + fb * block_stride;
            if (positions - p0 > 8) {
                pair_tile(CK_PAIR_ROWS, 2, cv, fb * CK_PAIR_ROWS, p0, &stores, w);
            } else {
                pair_tile(CK_PAIR_ROWS, 1, cv, fb * CK_PAIR_ROWS, p0, &stores, w);
            }
        }
    }
}
#endif

size_t ck_qconv2_units(const ck_qconv2 *cv) {
    const size_t positions = cv->out_h * cv->padded_w;
    const size_t fblocks = (cv->filters + CK_PAIR_ROWS - 1) / CK_PAIR_ROWS, group = pair_group_blocks(cv);
    return (fblocks + group - 1) / group * ((positions + CK_PAIR_TILE - 1) / CK_PAIR_TILE);
}

void ck_qconv2_run(const ck_qconv2 *cv, size_t unit_begin, size_t unit_end) {
#if defined(__x86_64__)
    if (ck_qconv2_available()) pair_run(cv, unit_begin, unit_end);
#else
    (void)cv, (void)unit_begin, (void)unit_end;
#endif
}
