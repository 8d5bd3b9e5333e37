// QLinearConv without im2col on AVX-512 VNNI machines: the image is copied once into quads of channels
// ([C/4][padded H][padded W][4] bytes) and each window row is read from it in place, as the tile broadcasts four
// channels of one position against sixteen filters' weights (positions are the GEMM's rows, filters its columns).
// The im2col path packed every 3x3 window's nine copies of the image per run: 22% of a 64-channel 56x56 layer.
// Sums are exact int32 (wrapping) and requantized by ck_requant_core16, so the bytes are the im2col path's.
#include "CKernels.h"
#include "Requant.h"
#include <string.h>

static size_t round_up(size_t value, size_t step) { return (value + step - 1) / step * step; }

// Positions per tile (5 x 4 panels: 20 accumulators, 4 weight vectors and the broadcasts in 32 registers; 6 rows
// spilled three accumulators) and per block (the transposes to planes take 16 at a time).
#define CK_TILE_ROWS 5
#define CK_BLOCK_POSITIONS 80

size_t ck_qconv4_scratch_bytes(void) { return CK_BLOCK_POSITIONS * 64; }

int ck_qconv4_available(void) { return strcmp(ck_qgemm_path(), "avx512-vnni") == 0; }

size_t ck_qconv4_weight_bytes(size_t filters, size_t channels, size_t kernel_h, size_t kernel_w) {
    return round_up(filters, 16) * round_up(channels, 4) * kernel_h * kernel_w;
}

void ck_qconv4_pack_weights(const void *w, int w_signed, size_t filters, size_t channels, size_t kernel_h,
                            size_t kernel_w, int8_t *packed, int32_t *sums) {
    const size_t quads = round_up(channels, 4) / 4, taps = kernel_h * kernel_w, kq = quads * taps;
    const uint8_t *bytes = (const uint8_t *)w;
    const size_t panels = round_up(filters, 16) / 16;
    for (size_t f = 0; f < filters; f++) sums[f] = 0;
    for (size_t p = 0; p < panels; p++) {
        for (size_t q = 0; q < quads; q++) {
            for (size_t t = 0; t < taps; t++) {
                int8_t *dst = packed + (p * kq + q * taps + t) * 64;
                for (size_t j = 0; j < 16; j++) {
                    const size_t f = p * 16 + j;
                    for (size_t i = 0; i < 4; i++) {
                        const size_t c = q * 4 + i;
                        int8_t value = 0;
                        if (f < filters && c < channels) {
                            const uint8_t raw = bytes[(f * channels + c) * taps + t];
                            value = (int8_t)(w_signed ? raw : (uint8_t)(raw ^ 0x80));
                            sums[f] += value;
                        }
                        dst[j * 4 + i] = value;
                    }
                }
            }
        }
    }
}

size_t ck_qconv4_image_bytes(size_t channels, size_t padded_h, size_t padded_w) {
    return round_up(channels, 4) * padded_h * padded_w + 64;
}

#if defined(__x86_64__)
// Channel quads [quad_begin, quad_end) of the image: quad q, padded row y, column x holds channels 4q..4q+3 of
// pixel (y - pad_top, x - pad_left), `pad` outside the image and past the last channel; signed bytes flipped to
// unsigned (x ^ 0x80, as `pad` must be already).
// Four channel rows of `count` bytes (NULL: absent, `pad` bytes) interleaved into dst (4 x count bytes); the last
// partial 16 through masked loads and stores.
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) static inline void
interleave_quads(const uint8_t *const *src, size_t count, __m128i flip, __m128i pads, uint8_t *dst) {
    for (size_t ix = 0; ix < count; ix += 16) {
        const size_t valid = count - ix < 16 ? count - ix : 16;
        const __mmask16 mask = valid == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1);
        __m128i r[4];
        for (int i = 0; i < 4; i++)
            r[i] = src[i] ? _mm_xor_si128(_mm_maskz_loadu_epi8(mask, src[i] + ix), flip) : pads;
        const __m128i a = _mm_unpacklo_epi8(r[0], r[1]), b = _mm_unpackhi_epi8(r[0], r[1]);
        const __m128i c = _mm_unpacklo_epi8(r[2], r[3]), d = _mm_unpackhi_epi8(r[2], r[3]);
        const __m512i out = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_set_m128i(_mm_unpackhi_epi16(a, c), _mm_unpacklo_epi16(a, c))),
            _mm256_set_m128i(_mm_unpackhi_epi16(b, d), _mm_unpacklo_epi16(b, d)), 1);
        const __mmask64 bytes = valid == 16 ? ~(__mmask64)0 : (((__mmask64)1 << (valid * 4)) - 1);
        _mm512_mask_storeu_epi8(dst + ix * 4, bytes, out);
    }
}

// Channel quads [quad_begin, quad_end) of the image: quad q, padded row y, column x holds channels 4q..4q+3 of
// pixel (y - pad_top, x - pad_left), `pad` outside the image and past the last channel; signed bytes flipped to
// unsigned (x ^ 0x80, as `pad` must be already).
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void
image_quads(const uint8_t *x, int x_signed, size_t channels, size_t height, size_t width, size_t pad_top,
            size_t pad_left, size_t padded_h, size_t padded_w, uint8_t pad, uint8_t *out, size_t quad_begin,
            size_t quad_end) {
    const __m128i flip = _mm_set1_epi8(x_signed ? (char)0x80 : 0), pads = _mm_set1_epi8((char)pad);
    const size_t plane = padded_h * padded_w * 4;
    // Unpadded: each channel's plane is one row.
    const int whole = pad_top == 0 && pad_left == 0 && padded_h == height && padded_w == width;
    for (size_t q = quad_begin; q < quad_end; q++) {
        uint8_t *quad = out + q * plane;
        const uint8_t *src[4];
        if (whole) {
            for (int i = 0; i < 4; i++) {
                const size_t c = q * 4 + (size_t)i;
                src[i] = c < channels ? x + c * height * width : NULL;
            }
            interleave_quads(src, height * width, flip, pads, quad);
            continue;
        }
        for (size_t y = 0; y < padded_h; y++) {
            uint8_t *row = quad + y * padded_w * 4;
            const int inside = y >= pad_top && y - pad_top < height;
            if (!inside) {
                memset(row, pad, padded_w * 4);
                continue;
            }
            const size_t iy = y - pad_top;
            const size_t count = pad_left + width <= padded_w ? width : padded_w - pad_left;
            memset(row, pad, pad_left * 4);
            for (int i = 0; i < 4; i++) {
                const size_t c = q * 4 + (size_t)i;
                src[i] = c < channels ? x + (c * height + iy) * width : NULL;
            }
            interleave_quads(src, count, flip, pads, row + pad_left * 4);
            memset(row + (pad_left + count) * 4, pad, (padded_w - pad_left - count) * 4);
        }
    }
}
#endif

void ck_qconv4_image_nhwc(const uint8_t *x, size_t channels, size_t height, size_t width, size_t pad_top,
                          size_t pad_left, size_t padded_h, size_t padded_w, uint8_t pad, uint8_t *out, size_t row_begin,
                          size_t row_end) {
    const size_t row_bytes = padded_w * channels;
    for (size_t y = row_begin; y < row_end && y < padded_h; y++) {
        uint8_t *row = out + y * row_bytes;
        if (y < pad_top || y - pad_top >= height || pad_left >= padded_w) {
            memset(row, pad, row_bytes);
            continue;
        }
        const size_t count = pad_left + width <= padded_w ? width : padded_w - pad_left;
        memset(row, pad, pad_left * channels);
        memcpy(row + pad_left * channels, x + (y - pad_top) * width * channels, count * channels);
        memset(row + (pad_left + count) * channels, pad, (padded_w - pad_left - count) * channels);
    }
}

void ck_qconv4_image(const uint8_t *x, int x_signed, size_t channels, size_t height, size_t width, size_t pad_top,
                     size_t pad_left, size_t padded_h, size_t padded_w, uint8_t pad, uint8_t *out, size_t quad_begin,
                     size_t quad_end) {
#if defined(__x86_64__)
    if (ck_qconv4_available())
        image_quads(x, x_signed, channels, height, width, pad_top, pad_left, padded_h, padded_w, pad, out, quad_begin,
                    quad_end);
#else
    (void)x, (void)x_signed, (void)channels, (void)height, (void)width, (void)pad_top, (void)pad_left;
    (void)padded_h, (void)padded_w, (void)pad, (void)out, (void)quad_begin, (void)quad_end;
#endif
}

#if defined(__x86_64__)
#define CK_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

// Requantized bytes (or, `scaled`, floats: float(sum + bias) · scale) of `mr` positions x `np` panels of 16
// filters: row r of the tile to element r * ldo + 16 j of out, the lanes of masks[j].
CK_VNNI __attribute__((always_inline)) static inline void
conv_tile(const int mr, const int np, const int scaled, const ck_qconv4 *cv, const uint8_t *const *rows, size_t kq,
          const int8_t *w, size_t panel_stride, size_t f0, uint8_t *out, size_t ldo, const __mmask16 *masks) {
    __m512i acc[CK_TILE_ROWS][4];
    _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++)
        _Pragma("clang loop unroll(full)") for (int j = 0; j < np; j++) acc[r][j] = _mm512_setzero_si512();
    const int64_t *offsets = cv->offsets;
    for (size_t g = 0; g < kq; g++) {
        const int64_t o = offsets[g];
        __m512i bv[4];
        _Pragma("clang loop unroll(full)") for (int j = 0; j < np; j++)
            bv[j] = _mm512_loadu_si512((const void *)(w + (size_t)j * panel_stride + g * 64));
        _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++) {
            int32_t quad;
            memcpy(&quad, rows[r] + o, sizeof quad);
            const __m512i av = _mm512_set1_epi32(quad);
            _Pragma("clang loop unroll(full)") for (int j = 0; j < np; j++)
                acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], av, bv[j]);
        }
    }
    if (scaled) {
        // MatMulInteger's Cast and Mul by the column scales: the same roundings as ck_qgemm_packed_scaled.
        const int32_t *bias_all = cv->bias;
        const float *scale_all = cv->scale;
        __m512i biases[4];
        __m512 scales[4];
        _Pragma("clang loop unroll(full)") for (int j = 0; j < np; j++) {
            biases[j] = _mm512_loadu_si512((const void *)(bias_all + f0 + (size_t)j * 16));
            scales[j] = _mm512_loadu_ps(scale_all + f0 + (size_t)j * 16);
        }
        float *fout = (float *)(void *)out;
        _Pragma("clang loop unroll(full)") for (int j = 0; j < np; j++)
            _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++) {
                const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc[r][j], biases[j])), scales[j]);
                _mm512_mask_storeu_ps(fout + (size_t)r * ldo + (size_t)j * 16, masks[j], v);
            }
        return;
    }
    // Everything the byte stores below may alias (they may alias any memory) read before the first of them.
    const double zero = cv->zero, low = cv->low, high = cv->high;
    const int32_t *bias_all = cv->bias;
    const float *mf_all = cv->multiplier_f;
    const double *md_all = cv->multiplier;
    __m512i biases[4];
    __m512 mfs[4];
    __m512d mds[4][2];
    __mmask16 store[4];
    _Pragma("clang loop unroll(full)") for (int j = 0; j < np; j++) {
        const size_t f = f0 + (size_t)j * 16;
        biases[j] = _mm512_loadu_si512((const void *)(bias_all + f));
        mfs[j] = _mm512_loadu_ps(mf_all + f);
        mds[j][0] = _mm512_loadu_pd(md_all + f);
        mds[j][1] = _mm512_loadu_pd(md_all + f + 8);
        store[j] = masks[j];
    }
    _Pragma("clang loop unroll(full)") for (int j = 0; j < np; j++) {
        _Pragma("clang loop unroll(full)") for (int r = 0; r < mr; r++) {
            const __m512i v = ck_requant_lanes16_avx512(acc[r][j], biases[j], mfs[j], mds[j], zero, low, high);
            _mm_mask_storeu_epi8(out + (size_t)r * ldo + (size_t)j * 16, store[j], _mm512_cvtepi32_epi8(v));
        }
    }
}

#define CK_TILE_CASES(np)                                                                                             \
    switch (mr) {                                                                                                     \
    case 5: conv_tile(5, np, scaled, cv, rows, kq, w, panel_stride, f0, tile_out, ldo, masks); break;                                     \
    case 4: conv_tile(4, np, scaled, cv, rows, kq, w, panel_stride, f0, tile_out, ldo, masks); break;                                     \
    case 3: conv_tile(3, np, scaled, cv, rows, kq, w, panel_stride, f0, tile_out, ldo, masks); break;                                     \
    case 2: conv_tile(2, np, scaled, cv, rows, kq, w, panel_stride, f0, tile_out, ldo, masks); break;                                     \
    default: conv_tile(1, np, scaled, cv, rows, kq, w, panel_stride, f0, tile_out, ldo, masks); break;                                    \
    }

// scratch[positions][64] (filters f0.. in columns) to the planes: y[(f0 + f) * plane + p0 + i], 16 x 16 blocks
// transposed in registers (four rounds of byte interleaves, four blocks per 512-bit vector).
CK_VNNI static void store_planes(const uint8_t *scratch, size_t count, size_t filters, uint8_t *y, size_t plane) {
    for (size_t i0 = 0; i0 < count; i0 += 16) {
        const size_t valid = count - i0 < 16 ? count - i0 : 16;
        const __mmask16 mask = valid == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1);
        __m512i r[16], t[16];
        _Pragma("clang loop unroll(full)") for (int i = 0; i < 16; i++)
            r[i] = _mm512_loadu_si512((const void *)(scratch + (i0 + (size_t)i) * 64));
        // Each round maps bit address (row, column) to its rotation by one; four rounds swap the nibbles.
#define CK_INTERLEAVE(in, out)                                                                                        \
    _Pragma("clang loop unroll(full)") for (int i = 0; i < 8; i++) {                                                  \
        out[2 * i] = _mm512_unpacklo_epi8(in[i], in[i + 8]);                                                          \
        out[2 * i + 1] = _mm512_unpackhi_epi8(in[i], in[i + 8]);                                                      \
    }
        CK_INTERLEAVE(r, t)
        CK_INTERLEAVE(t, r)
        CK_INTERLEAVE(r, t)
        CK_INTERLEAVE(t, r)
#undef CK_INTERLEAVE
        // r[f] lane j: filter 16 j + f, positions i0 .. i0 + 15.
        _Pragma("clang loop unroll(full)") for (int f = 0; f < 16; f++) {
            const __m128i lanes[4] = {_mm512_castsi512_si128(r[f]), _mm512_extracti32x4_epi32(r[f], 1),
                                      _mm512_extracti32x4_epi32(r[f], 2), _mm512_extracti32x4_epi32(r[f], 3)};
            for (size_t j = 0; j < 4; j++) {
                const size_t filter = j * 16 + (size_t)f;
                if (filter < filters) _mm_mask_storeu_epi8(y + filter * plane + i0, mask, lanes[j]);
            }
        }
    }
}

CK_VNNI static void conv_run(const ck_qconv4 *cv, size_t begin, size_t end, size_t part) {
    const size_t positions = cv->out_h * cv->out_w;
    const size_t pblocks = (positions + CK_BLOCK_POSITIONS - 1) / CK_BLOCK_POSITIONS;
    const size_t kq = cv->kq, panel_stride = kq * 64;
    const size_t step = cv->stride * cv->position_bytes, row_step = cv->stride * cv->padded_w * cv->position_bytes;
    uint8_t *scratch = cv->scratch + part * CK_BLOCK_POSITIONS * 64;
    const size_t fblocks = (cv->filters + 63) / 64;
    // Floats (scaled) are written channels last only.
    const size_t esize = cv->scale ? sizeof(float) : 1;
    // Position blocks outer (threads split the positions, each with every filter: a layer of 96 filters split by
    // filter blocks gave one thread 64 and the other 32) unless the weights outgrow the L2 cache, which each
    // position block would then stream again.
    const int positions_outer = (cv->filters + 15) / 16 * panel_stride <= 512 * 1024;
    for (size_t u = begin; u < end; u++) {
        const size_t fb = positions_outer ? u % fblocks : u / pblocks;
        const size_t pb = positions_outer ? u / fblocks : u % pblocks;
        const size_t f0 = fb * 64, p0 = pb * CK_BLOCK_POSITIONS;
        const size_t fcount = cv->filters - f0 < 64 ? cv->filters - f0 : 64;
        const size_t pcount = positions - p0 < CK_BLOCK_POSITIONS ? positions - p0 : CK_BLOCK_POSITIONS;
        const int np = (int)((fcount + 15) / 16);
        const int8_t *w = cv->weights + (f0 / 16) * panel_stride;
        // Channels last: the tiles store each position's filters in place (the last panel masked); in planes, to
        // the block's scratch, transposed after.
        __mmask16 masks[4];
        for (size_t j = 0; j < 4; j++) {
            const size_t valid = fcount > j * 16 ? (fcount - j * 16 < 16 ? fcount - j * 16 : 16) : 0;
            masks[j] = cv->y_nhwc ? (__mmask16)((1u << valid) - 1u) : (__mmask16)0xFFFF;
        }
        const size_t ldo = cv->y_nhwc ? cv->filters : 64;
        uint8_t *block_out = cv->y_nhwc ? cv->y + (p0 * cv->filters + f0) * esize : scratch;
        size_t oy = p0 / cv->out_w, ox = p0 % cv->out_w;
        for (size_t i = 0; i < pcount; i += CK_TILE_ROWS) {
            const int mr = pcount - i < CK_TILE_ROWS ? (int)(pcount - i) : CK_TILE_ROWS;
            const uint8_t *rows[CK_TILE_ROWS];
            for (int r = 0; r < CK_TILE_ROWS; r++) {
                rows[r] = cv->image + oy * row_step + ox * step;
                if (r < mr && ++ox == cv->out_w) {
                    ox = 0;
                    oy++;
                }
            }
            uint8_t *tile_out = block_out + i * ldo * esize;
            // Each (scaled, np, mr) its own tile with constant trip counts.
#define CK_PANEL_CASES                                                                                                \
    switch (np) {                                                                                                     \
    case 4: CK_TILE_CASES(4) break;                                                                                   \
    case 3: CK_TILE_CASES(3) break;                                                                                   \
    case 2: CK_TILE_CASES(2) break;                                                                                   \
    default: CK_TILE_CASES(1) break;                                                                                  \
    }
            if (cv->scale) {
                const int scaled = 1;
                CK_PANEL_CASES
            } else {
                const int scaled = 0;
                CK_PANEL_CASES
            }
#undef CK_PANEL_CASES
        }
        if (!cv->y_nhwc) store_planes(scratch, pcount, fcount, cv->y + f0 * positions + p0, positions);
    }
}
#endif

size_t ck_qconv4_units(const ck_qconv4 *cv) {
    const size_t positions = cv->out_h * cv->out_w;
    return (cv->filters + 63) / 64 * ((positions + CK_BLOCK_POSITIONS - 1) / CK_BLOCK_POSITIONS);
}

void ck_qconv4_run(const ck_qconv4 *cv, size_t unit_begin, size_t unit_end, size_t part) {
#if defined(__x86_64__)
    if (ck_qconv4_available()) conv_run(cv, unit_begin, unit_end, part);
#else
    (void)cv, (void)unit_begin, (void)unit_end, (void)part;
#endif
}
