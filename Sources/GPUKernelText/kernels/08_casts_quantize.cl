/* float16 (IEEE binary16 bits) <-> float32 in integer arithmetic, so that no half-precision extension is
   needed: float16 tensors are stored as half and computed in float32 (nodes widened by the runtime).
   Rounding to half is to nearest even; overflow gives infinity; NaN stays NaN. */
DEVICE float ck_half_to_float(ck_u32 h) {
    ck_u32 sign = (h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu, bits;
    if (exponent == 0x1fu) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent == 0u) {
        if (mantissa == 0u) {
            bits = sign;
        } else {
            int shift = 0;
            while ((mantissa & 0x400u) == 0u) { mantissa <<= 1; shift++; }
            mantissa &= 0x3ffu;
            bits = sign | ((ck_u32)(127 - 15 - shift + 1) << 23) | (mantissa << 13);
        }
    } else {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    }
    return INT_AS_FLOAT((int)bits);
}
DEVICE ck_u32 ck_float_to_half(float f) {
    ck_u32 bits = FLOAT_AS_UINT(f);
    ck_u32 sign = (bits >> 16) & 0x8000u, exponent = (bits >> 23) & 0xffu, mantissa = bits & 0x7fffffu;
    if (exponent == 0xffu) return sign | 0x7c00u | (mantissa != 0u ? 0x200u | (mantissa >> 13) : 0u);
    int e = (int)exponent - 127 + 15;
    if (e >= 0x1f) return sign | 0x7c00u;
    if (e <= 0) {
        if (e < -10) return sign;
        ck_u32 full = mantissa | 0x800000u;
        int shift = 14 - e;
        ck_u32 value = full >> shift, rest = full & ((1u << shift) - 1u), tie = 1u << (shift - 1);
        if (rest > tie || (rest == tie && (value & 1u) != 0u)) value++;
        return sign | value;
    }
    ck_u32 value = ((ck_u32)e << 10) | (mantissa >> 13), rest = mantissa & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (value & 1u) != 0u)) value++;
    return sign | value;
}
CK_CAST_KERNEL(cast_f16_f32, ck_u16, float, ck_half_to_float((ck_u32)v))
CK_CAST_KERNEL(cast_f32_f16, float, ck_u16, (ck_u16)ck_float_to_half(v))
/* bfloat16: the upper half of a float32; narrowing rounds half to even, NaN stays a quiet NaN. */
CK_CAST_KERNEL(cast_bf16_f32, ck_u16, float, INT_AS_FLOAT((int)((ck_u32)v << 16)))
KERNEL void cast_f32_bf16(GLOBAL const float *x, int xOff, GLOBAL ck_u16 *y, int yOff, int count) {
    int i = GID0;
    if (i >= count) return;
    ck_u32 bits = FLOAT_AS_UINT(x[xOff + i]);
    ck_u32 out = (bits & 0x7fffffffu) > 0x7f800000u ? ((bits >> 16) | 0x40u)
                                                      : ((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
    y[yOff + i] = (ck_u16)out;
}

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
/* MatMulInteger / QLinearMatMul: A [rows x k] bytes times B [k x n] bytes, exact int32 sums (wrapping);
   A's zero point per tensor, B's per tensor or per column (bzCount 1 or n, 0 when absent). With
   `requantize`: y = saturate(rint(sum * a_scale * b_scale / y_scale) + y_zero) as bytes. */
KERNEL void matmul_integer(GLOBAL const uchar *a, int aOff, int aSigned, GLOBAL const uchar *b, int bOff,
                           int bSigned, GLOBAL const uchar *az, int azOff, int hasAz, GLOBAL const uchar *bz,
                           int bzOff, int bzCount, GLOBAL int *y, int yOff, int rows, int n, int k) {
    int col = GID0, row = GID1;
    if (col >= n || row >= rows) return;
    int za = hasAz != 0 ? ck_byte(az, azOff, aSigned) : 0;
    int zb = bzCount > 0 ? ck_byte(bz, bzOff + (bzCount > 1 ? col : 0), bSigned) : 0;
    ck_u32 acc = 0u;
    for (int t = 0; t < k; t++) {
        acc += (ck_u32)((ck_byte(a, aOff + row * k + t, aSigned) - za) * (ck_byte(b, bOff + t * n + col, bSigned) - zb));
    }
    y[yOff + row * n + col] = (int)acc;
}
KERNEL void qlinear_matmul(GLOBAL const uchar *a, int aOff, int aSigned, GLOBAL const float *as, int asOff,
                           GLOBAL const uchar *az, int azOff, GLOBAL const uchar *b, int bOff, int bSigned,
                           GLOBAL const float *bs, int bsOff, int bsCount, GLOBAL const uchar *bz, int bzOff,
                           int bzCount, GLOBAL const float *ys, int ysOff, GLOBAL const uchar *yz, int yzOff,
                           int ySigned, GLOBAL uchar *y, int yOff, int rows, int n, int k) {
    int col = GID0, row = GID1;
    if (col >= n || row >= rows) return;
    int za = ck_byte(az, azOff, aSigned);
    int zb = ck_byte(bz, bzOff + (bzCount > 1 ? col : 0), bSigned);
    ck_u32 acc = 0u;
    for (int t = 0; t < k; t++) {
        acc += (ck_u32)((ck_byte(a, aOff + row * k + t, aSigned) - za) * (ck_byte(b, bOff + t * n + col, bSigned) - zb));
    }
    float m = (as[asOff] * bs[bsOff + (bsCount > 1 ? col : 0)]) / ys[ysOff];
    float lo = ySigned != 0 ? -128.0f : 0.0f, hi = ySigned != 0 ? 127.0f : 255.0f;
    float q = rint((float)(int)acc * m) + (float)ck_byte(yz, yzOff, ySigned);
    q = (q >= lo) ? (q > hi ? hi : q) : lo;
    y[yOff + row * n + col] = (uchar)((int)q & 255);
}

/* Cast between float32 and int64, int32 or bool (bytes); float to integer truncates toward zero. */
CK_CAST_KERNEL(cast_f32_i64, float, long, (long)v)
CK_CAST_KERNEL(cast_i64_f32, long, float, (float)v)
CK_CAST_KERNEL(cast_f32_i32, float, int, (int)v)
CK_CAST_KERNEL(cast_i32_f32, int, float, (float)v)
CK_CAST_KERNEL(cast_f32_u8, float, uchar, (uchar)(v != 0.0f))
CK_CAST_KERNEL(cast_u8_f32, uchar, float, v ? 1.0f : 0.0f)

