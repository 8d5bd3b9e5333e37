/* Bitwise operators on integers with broadcasting (meta as for binary): op 0 and, 1 or, 2 xor, 3 not (b
   unused), 4 shift left, 5 shift right (BitShift: unsigned types; a shift by the width or more gives 0).
   Results are stored by truncation to the element type (bitwise results always fit it). */
KERNEL void bitwise_int(GLOBAL const uchar *a, int aOff, GLOBAL const uchar *b, int bOff, GLOBAL uchar *y,
                        int yOff, int count, int op, int type, GLOBAL const int *meta) {
    int i = GID0;
    if (i >= count) return;
    int o[2];
    broadcast_offsets(i, meta, 2, o);
    int w = int_width(type), bits = 8 * w;
    ck_u64 mask = bits == 64 ? ~(ck_u64)0 : (((ck_u64)1 << bits) - 1);
    ck_u64 u = (ck_u64)int_load(a, aOff + o[0] * w, type) & mask;
    ck_u64 v = op == 3 ? 0 : (ck_u64)int_load(b, bOff + o[1] * w, type) & mask;
    ck_u64 r;
    switch (op) {
    case 0: r = u & v; break;
    case 1: r = u | v; break;
    case 2: r = u ^ v; break;
    case 3: r = ~u; break;
    case 4: r = v >= (ck_u64)bits ? 0 : (u << v); break;
    default: r = v >= (ck_u64)bits ? 0 : (u >> v); break;
    }
    r &= mask;
    for (int k = 0; k < w; k++) y[yOff + i * w + k] = (uchar)((r >> (8 * k)) & 255);
}
