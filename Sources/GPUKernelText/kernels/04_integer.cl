/* Integer element types by code: 0 int8, 1 int16, 2 int32, 3 int64, 4 uint8, 5 uint16, 6 uint32, 7 uint64,
   in byte buffers at byte offsets. Loaded as 64-bit values (uint64 as its bits); stored saturated to the
   type's range, as the CPU backend stores its results (the 64-bit types wrap). */
DEVICE int int_width(int t) { return 1 << (t & 3); }

DEVICE long int_load(GLOBAL const uchar *p, int at, int t) {
    switch (t) {
    case 0: return (long)p[at] - (p[at] >= 128 ? 256 : 0);
    case 1: return (long)*(GLOBAL const short *)(p + at);
    case 2: return (long)*(GLOBAL const int *)(p + at);
    case 4: return (long)p[at];
    case 5: return (long)*(GLOBAL const ck_u16 *)(p + at);
    case 6: return (long)*(GLOBAL const ck_u32 *)(p + at);
    default: return *(GLOBAL const long *)(p + at);
    }
}

DEVICE long int_clamp(long v, long low, long high) { return v < low ? low : (v > high ? high : v); }

DEVICE void int_store(GLOBAL uchar *p, int at, int t, long v) {
    switch (t) {
    case 0: p[at] = (uchar)(int_clamp(v, -128, 127) & 255); break;
    case 1: *(GLOBAL short *)(p + at) = (short)int_clamp(v, -32768, 32767); break;
    case 2: *(GLOBAL int *)(p + at) = (int)int_clamp(v, -2147483647 - 1, 2147483647); break;
    case 4: p[at] = (uchar)int_clamp(v, 0, 255); break;
    case 5: *(GLOBAL ck_u16 *)(p + at) = (ck_u16)int_clamp(v, 0, 65535); break;
    case 6: *(GLOBAL ck_u32 *)(p + at) = (ck_u32)int_clamp(v, 0, 4294967295L); break;
    default: *(GLOBAL long *)(p + at) = v; break;
    }
}

/* Both operands of a broadcasting integer operator for output element i (meta as for binary): a's as the
   result, b's in *v, loaded as 64-bit values. */
DEVICE long int_operands(GLOBAL const uchar *a, int aOff, GLOBAL const uchar *b, int bOff, int i, int type,
                         GLOBAL const int *meta, long *v) {
    int o[2];
    broadcast_offsets(i, meta, 2, o);
    int w = int_width(type);
    *v = int_load(b, bOff + o[1] * w, type);
    return int_load(a, aOff + o[0] * w, type);
}

/* Integer arithmetic with broadcasting (meta as for binary) on 64-bit values: op 0 +, 1 -, 2 *, 3 / (toward
   zero), 4 max, 5 min, 6 modulo with the divisor's sign (Mod), 7 remainder with the dividend's sign
   (Mod fmod=1); a zero divisor gives 0. uint64 (type 7) divides, compares and takes remainders unsigned. */
KERNEL void binary_int(GLOBAL const uchar *a, int aOff, GLOBAL const uchar *b, int bOff, GLOBAL uchar *y, int yOff,
                       int count, int op, int type, GLOBAL const int *meta) {
    int i = GID0;
    if (i >= count) return;
    int w = int_width(type);
    long v, u = int_operands(a, aOff, b, bOff, i, type, meta, &v), r;
    ck_u64 uu = (ck_u64)u, vv = (ck_u64)v;
    if (type == 7 && op >= 3) {
        switch (op) {
        case 3: r = vv == 0 ? 0 : (long)(uu / vv); break;
        case 4: r = (long)(uu > vv ? uu : vv); break;
        case 5: r = (long)(uu < vv ? uu : vv); break;
        default: r = vv == 0 ? 0 : (long)(uu % vv); break;
        }
    } else {
        switch (op) {
        case 0: r = (long)(uu + vv); break;
        case 1: r = (long)(uu - vv); break;
        case 2: r = (long)(uu * vv); break;
        /* x / -1 as a wrapping negation: the most negative int64 divided by -1 overflows. */
        case 3: r = v == 0 ? 0 : (v == -1 ? (long)(0 - uu) : u / v); break;
        case 4: r = u > v ? u : v; break;
        case 5: r = u < v ? u : v; break;
        case 6:
            r = (v == 0 || v == -1) ? 0 : u % v;
            if (r != 0 && ((r < 0) != (v < 0))) r += v;
            break;
        default: r = (v == 0 || v == -1) ? 0 : u % v; break;
        }
    }
    int_store(y, yOff + i * w, type, r);
}

/* Integer comparisons with broadcasting, as compare (uint64 compared unsigned). */
KERNEL void compare_int(GLOBAL const uchar *a, int aOff, GLOBAL const uchar *b, int bOff, GLOBAL uchar *y, int yOff,
                        int count, int op, int type, GLOBAL const int *meta) {
    int i = GID0;
    if (i >= count) return;
    long v, u = int_operands(a, aOff, b, bOff, i, type, meta, &v);
    int r;
    if (type == 7) {
        ck_u64 uu = (ck_u64)u, vv = (ck_u64)v;
        r = op == 0 ? uu == vv : op == 1 ? uu < vv : op == 2 ? uu > vv : op == 3 ? uu <= vv : uu >= vv;
    } else {
        r = op == 0 ? u == v : op == 1 ? u < v : op == 2 ? u > v : op == 3 ? u <= v : u >= v;
    }
    y[yOff + i] = (uchar)r;
}

