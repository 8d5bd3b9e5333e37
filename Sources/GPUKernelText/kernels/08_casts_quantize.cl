CK_CAST_KERNEL(cast_f16_f32, ck_u16, float, ck_half_to_float(v))
CK_CAST_KERNEL(cast_f32_f16, float, ck_u16, ck_float_to_half(v))
CK_CAST_KERNEL(cast_bf16_f32, ck_u16, float, ck_bf16_to_float((ck_u32)v))
CK_CAST_KERNEL(cast_f32_bf16, float, ck_u16, (ck_u16)ck_float_to_bf16(v))

/* The quantized operators on 8-bit data (bytes; `isSigned` reads them as int8). Parameters per tensor
   (axisLen 1) or per axis (index (i / inner) % axisLen). Quantizing divides in float32, rounds half to
   even, adds the zero point and saturates (NaN to the low end), as the CPU kernels do. */
DEVICE int ck_byte(GLOBAL const uchar *p, int i, int isSigned) {
    int v = (int)p[i];
    return (isSigned != 0 && v > 127) ? v - 256 : v;
}
KERNEL void dequantize_8(GLOBAL const uchar *x, int xOff, int xSigned, GLOBAL const float *scale, int sOff,
                         GLOBAL const uchar *zero, int zOff, int hasZero, GLOBAL float *y, int yOff,
                         int count, int axisLen, int inner) {
    int i = GID0;
    if (i >= count) return;
    int p = axisLen > 1 ? (i / inner) % axisLen : 0;
    int z = hasZero != 0 ? ck_byte(zero, zOff + p, xSigned) : 0;
    y[yOff + i] = ((float)ck_byte(x, xOff + i, xSigned) - (float)z) * scale[sOff + p];
}
KERNEL void quantize_8(GLOBAL const float *x, int xOff, GLOBAL const float *scale, int sOff,
                       GLOBAL const uchar *zero, int zOff, int hasZero, int ySigned, GLOBAL uchar *y,
                       int yOff, int count, int axisLen, int inner) {
    int i = GID0;
    if (i >= count) return;
    int p = axisLen > 1 ? (i / inner) % axisLen : 0;
    int z = hasZero != 0 ? ck_byte(zero, zOff + p, ySigned) : 0;
    float lo = ySigned != 0 ? -128.0f : 0.0f, hi = ySigned != 0 ? 127.0f : 255.0f;
    float q = rint(x[xOff + i] / scale[sOff + p]) + (float)z;
    q = (q >= lo) ? (q > hi ? hi : q) : lo;
    y[yOff + i] = (uchar)((int)q & 255);
}
/* An int32 sum requantized to a byte: saturate(rint(sum · m) + zero) for an int8 (ySigned) or uint8 output;
   `relu` (a Relu planned into the node) raises the low end to the zero point. As the CPU kernels do. */
DEVICE uchar ck_requantize_byte(ck_u32 sum, float m, GLOBAL const uchar *yz, int yzOff, int ySigned, int relu) {
    float zero = (float)ck_byte(yz, yzOff, ySigned);
    float lo = ySigned != 0 ? -128.0f : 0.0f, hi = ySigned != 0 ? 127.0f : 255.0f;
    if (relu != 0 && zero > lo) lo = zero;
    float q = rint((float)(int)sum * m) + zero;
    q = (q >= lo) ? (q > hi ? hi : q) : lo;
    return (uchar)((int)q & 255);
}

/* ConvInteger / QLinearConv (meta as conv3d): the exact int32 sum (wrapping, as the CPU's) of
   (x - x_zero)(w - w_zero[m]) over output element i's window, where padding adds nothing (it holds the zero
   point). W's zero point per tensor or per output channel (wzCount 1 or M; 0 when absent). *channel is m. */
DEVICE ck_u32 conv_integer_sum(GLOBAL const uchar *x, int xOff, int xSigned, int zx, GLOBAL const uchar *w, int wOff,
                               int wSigned, GLOBAL const uchar *wz, int wzOff, int wzCount, int i,
                               GLOBAL const int *meta, int *channel) {
    CK_CONV_META(i);
    int cg = C / G, mg = M / G, g = m / mg;
    int zw = wzCount > 0 ? ck_byte(wz, wzOff + (wzCount > 1 ? m : 0), wSigned) : 0;
    ck_u32 acc = 0u;
    for (int c = 0; c < cg; c++) {
        int xc = xOff + ((n * C) + g * cg + c) * D * H * W;
        int wc = wOff + (m * cg + c) * KD * KH * KW;
        CK_CONV_WINDOW_BEGIN
        acc += (ck_u32)((ck_byte(x, xc + xi, xSigned) - zx) * (ck_byte(w, wc + wi, wSigned) - zw));
        CK_CONV_WINDOW_END
    }
    *channel = m;
    return acc;
}
KERNEL void conv_integer(GLOBAL const uchar *x, int xOff, int xSigned, GLOBAL const uchar *xz, int xzOff, int hasXz,
                         GLOBAL const uchar *w, int wOff, int wSigned, GLOBAL const uchar *wz, int wzOff, int wzCount,
                         GLOBAL int *y, int yOff, int count, GLOBAL const int *meta) {
    int i = GID0;
    if (i >= count) return;
    int m;
    int zx = hasXz != 0 ? ck_byte(xz, xzOff, xSigned) : 0;
    y[yOff + i] = (int)conv_integer_sum(x, xOff, xSigned, zx, w, wOff, wSigned, wz, wzOff, wzCount, i, meta, &m);
}
/* QLinearConv: the sum plus the int32 bias of channel m, requantized with the multiplier (w_scale[m] · x_scale) /
   y_scale. */
KERNEL void qlinear_conv(GLOBAL const uchar *x, int xOff, int xSigned, GLOBAL const float *xs, int xsOff,
                         GLOBAL const uchar *xz, int xzOff, GLOBAL const uchar *w, int wOff, int wSigned,
                         GLOBAL const float *ws, int wsOff, int wsCount, GLOBAL const uchar *wz, int wzOff, int wzCount,
                         GLOBAL const float *ys, int ysOff, GLOBAL const uchar *yz, int yzOff, int ySigned,
                         GLOBAL const int *bias, int bOff, int hasBias, int relu, GLOBAL uchar *y, int yOff, int count,
                         GLOBAL const int *meta) {
    int i = GID0;
    if (i >= count) return;
    int m;
    ck_u32 acc = conv_integer_sum(x, xOff, xSigned, ck_byte(xz, xzOff, xSigned), w, wOff, wSigned, wz, wzOff, wzCount,
                                  i, meta, &m);
    if (hasBias != 0) acc += (ck_u32)bias[bOff + m];
    float mult = (ws[wsOff + (wsCount > 1 ? m : 0)] * xs[xsOff]) / ys[ysOff];
    y[yOff + i] = ck_requantize_byte(acc, mult, yz, yzOff, ySigned, relu);
}

/* The integer GEMM of MatMulInteger, QLinearMatMul and (as im2col + GEMM) ConvInteger and QLinearConv, in the
   style of dp4a. Y[s] = sum over t of (A[row, t] - za)(B[t, col] - zb) for A [rows x k] and B [k x n] bytes at
   aOff + meta[2s] and bOff + meta[2s + 1]; zero points per tensor (count 1), per row of A or column of B (count
   rows or n), or absent (0). Bytes are taken to the signed domain (a uint8 v as v - 128: its top bit flipped;
   its zero point likewise, so every difference is unchanged) and packed four to an int along K; 16 x 16
   work-groups stage 64-deep slices through local memory, and each work-item sums its output's products four at
   a time (ck_dot4: CUDA's __dp4a, one instruction; elsewhere four multiply-adds), with the slice sums of its
   row's and column's bytes (formed once per packed int, when staged) for the zero points:
   sum (a' - za')(b' - zb') = sum a'b' - zb' sum a' - za' sum b' + k za' zb', in wrapping 32-bit arithmetic: the
   CPU's exact int32 sums, bit for bit. mode 0 stores the sum to y32; mode 1 adds an int32 bias (biasMode 1 per row,
   2 per column) and requantizes (ck_requantize_byte) to bytes y8: saturate(rint(sum · (as · bs) / ys) + yz), as
   per row or tensor, bs per column or tensor; `relu` raises the low end to yz. */
#ifdef __OPENCL_VERSION__
DEVICE ck_u32 ck_dot4(int a, int b, ck_u32 acc) {
    char4 x = as_char4(a), y = as_char4(b);
    return acc + (ck_u32)((int)x.s0 * (int)y.s0 + (int)x.s1 * (int)y.s1 + (int)x.s2 * (int)y.s2 + (int)x.s3 * (int)y.s3);
}
#else
DEVICE ck_u32 ck_dot4(int a, int b, ck_u32 acc) { return (ck_u32)__dp4a(a, b, (int)acc); }
#endif
/* The value of a signed-domain byte (flip 0x80 takes a uint8 there). */
DEVICE int ck_signed_byte(int raw, int flip) {
    int bits = (raw ^ flip) & 255;
    return bits - ((bits & 0x80) << 1);
}
/* Four bytes p[at], p[at + step], ... (the first `valid`; the rest 0, which adds nothing) in the signed domain,
   packed low byte first, and their sum in *sum. */
DEVICE int ck_pack4(GLOBAL const uchar *p, int at, int step, int valid, int flip, int *sum) {
    ck_u32 packed = 0u;
    int total = 0;
    for (int j = 0; j < 4; j++) {
        if (j < valid) {
            int v = ck_signed_byte((int)p[at + j * step], flip);
            packed |= ((ck_u32)v & 255u) << (8 * j);
            total += v;
        }
    }
    *sum = total;
    return (int)packed;
}
KERNEL void integer_gemm(GLOBAL const uchar *a, int aOff, int aSigned, GLOBAL const uchar *b, int bOff, int bSigned,
                         GLOBAL const uchar *az, int azOff, int azCount, GLOBAL const uchar *bz, int bzOff,
                         int bzCount, int rows, int n, int k, GLOBAL const int *meta, int mode, GLOBAL int *y32,
                         int y32Off, GLOBAL uchar *y8, int y8Off, GLOBAL const float *as, int asOff, int asCount,
                         GLOBAL const float *bs, int bsOff, int bsCount, GLOBAL const float *ys, int ysOff,
                         GLOBAL const uchar *yz, int yzOff, int ySigned, GLOBAL const int *bias, int biasOff,
                         int biasMode, int relu) {
    LOCAL int at[16][16];
    LOCAL int bt[16][17];
    LOCAL int atSum[16][16];
    LOCAL int btSum[16][17];
    int tx = LID0, ty = LID1;
    int j = GID0, i = GID1, s = GID2;
    /* Rows and columns of the group's first work-items, for the slice loads. */
    int i0 = i - ty, j0 = j - tx;
    int aFlip = aSigned != 0 ? 0 : 0x80, bFlip = bSigned != 0 ? 0 : 0x80;
    int aBase = aOff + meta[2 * s], bBase = bOff + meta[2 * s + 1];
    ck_u32 acc = 0u, sumA = 0u, sumB = 0u;
    for (int p0 = 0; p0 < k; p0 += 64) {
        /* at[r][q] packs A[i0 + r, p0 + 4q ..]; bt[q][c] packs B[p0 + 4q .., j0 + c]. */
        /* Offsets are formed only for bytes inside the operands (a past-the-end product could overflow int). */
        int ar = i0 + ty, ak = p0 + 4 * tx, sa;
        int aIn = ar < rows && ak < k;
        at[ty][tx] = ck_pack4(a, aIn ? aBase + ar * k + ak : 0, 1, aIn ? k - ak : 0, aFlip, &sa);
        atSum[ty][tx] = sa;
        int bk = p0 + 4 * ty, bc = j0 + tx, sb;
        int bIn = bc < n && bk < k;
        bt[ty][tx] = ck_pack4(b, bIn ? bBase + bk * n + bc : 0, n, bIn ? k - bk : 0, bFlip, &sb);
        btSum[ty][tx] = sb;
        BARRIER();
        for (int q = 0; q < 16; q++) {
            acc = ck_dot4(at[ty][q], bt[q][tx], acc);
            sumA += (ck_u32)atSum[ty][q];
            sumB += (ck_u32)btSum[q][tx];
        }
        BARRIER();
    }
    if (i >= rows || j >= n) return;
    ck_u32 za = (ck_u32)ck_signed_byte(azCount > 0 ? (int)az[azOff + (azCount > 1 ? i : 0)] : 0, aFlip);
    ck_u32 zb = (ck_u32)ck_signed_byte(bzCount > 0 ? (int)bz[bzOff + (bzCount > 1 ? j : 0)] : 0, bFlip);
    ck_u32 sum = acc - zb * sumA - za * sumB + (ck_u32)k * za * zb;
    int out = s * rows * n + i * n + j;
    if (mode == 0) {
        y32[y32Off + out] = (int)sum;
        return;
    }
    if (biasMode != 0) sum += (ck_u32)bias[biasOff + (biasMode == 1 ? i : j)];
    float m = (as[asOff + (asCount > 1 ? i : 0)] * bs[bsOff + (bsCount > 1 ? j : 0)]) / ys[ysOff];
    y8[y8Off + out] = ck_requantize_byte(sum, m, yz, yzOff, ySigned, relu);
}
/* DynamicQuantizeLinear in three launches: minmax_chunks gives each work-item's [min, max] over `chunk`
   elements of x (from 0, NaN skipped); dynamic_quantize_parameters reduces them on one work-item into
   y_scale = (max - min) / 255 (1 when equal) and y_zero_point = saturate(rint(-min / y_scale)), as the CPU
   kernel does; quantize_8 then quantizes with those outputs. */
KERNEL void minmax_chunks(GLOBAL const float *x, int xOff, int count, int chunk, GLOBAL float *parts, int pOff,
                          int partCount) {
    int t = GID0;
    if (t >= partCount) return;
    float lo = 0.0f, hi = 0.0f;
    int begin = t * chunk, end = count - begin < chunk ? count : begin + chunk;
    for (int i = begin; i < end; i++) {
        float v = x[xOff + i];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    parts[pOff + 2 * t] = lo;
    parts[pOff + 2 * t + 1] = hi;
}
KERNEL void dynamic_quantize_parameters(GLOBAL const float *parts, int pOff, int partCount, GLOBAL float *scale,
                                        int sOff, GLOBAL uchar *zero, int zOff) {
    if (GID0 != 0) return;
    float lo = 0.0f, hi = 0.0f;
    for (int t = 0; t < partCount; t++) {
        float l = parts[pOff + 2 * t], h = parts[pOff + 2 * t + 1];
        if (l < lo) lo = l;
        if (h > hi) hi = h;
    }
    float s = hi == lo ? 1.0f : (hi - lo) / 255.0f;
    float z = rint(0.0f - lo / s);
    z = z < 0.0f ? 0.0f : (z > 255.0f ? 255.0f : z);
    scale[sOff] = s;
    zero[zOff] = (uchar)(int)z;
}

/* Cast between float32 and 8-bit integers as numbers (not bool): float to integer truncates toward zero and
   saturates to the type's range, NaN to 0, as the CPU's Cast does. */
DEVICE float ck_trunc_saturate(float v, float lo, float hi) {
    return v != v ? 0.0f : (v <= lo ? lo : (v >= hi ? hi : trunc(v)));
}
CK_CAST_KERNEL(cast_f32_u8_number, float, uchar, (uchar)(int)ck_trunc_saturate(v, 0.0f, 255.0f))
CK_CAST_KERNEL(cast_f32_i8, float, uchar, (uchar)((int)ck_trunc_saturate(v, -128.0f, 127.0f) & 255))
CK_CAST_KERNEL(cast_u8_number_f32, uchar, float, (float)v)
CK_CAST_KERNEL(cast_i8_f32, uchar, float, (float)((int)v - ((int)v > 127 ? 256 : 0)))

/* Cast between float32 and int64, int32 or bool (bytes); float to integer truncates toward zero. */
CK_CAST_KERNEL(cast_f32_i64, float, long, (long)v)
CK_CAST_KERNEL(cast_i64_f32, long, float, (float)v)
CK_CAST_KERNEL(cast_f32_i32, float, int, (int)v)
CK_CAST_KERNEL(cast_i32_f32, int, float, (float)v)
CK_CAST_KERNEL(cast_f32_u8, float, uchar, (uchar)(v != 0.0f))
CK_CAST_KERNEL(cast_u8_f32, uchar, float, v ? 1.0f : 0.0f)

