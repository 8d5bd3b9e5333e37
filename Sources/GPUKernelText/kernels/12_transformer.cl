/* Attention (opset 23/24), one work-item per query row (b, h, i): scores over the past then new keys, the
   mask (meta), causal and padding biases, a softmax and the weighted sum of values, in three passes that
   recompute the scores (no scratch). meta = [B, Hq, Hkv, Sq, Snew, P, D, Dv, packed, maskKind (0 none,
   1 float, 2 bool), maskLength, maskStrides[4], causal, hasNonpad, scoresMode (-1: no scores output)]. */
DEVICE int attn_offset(int packed, int heads, int length, int size, int b, int h, int s) {
    return packed ? ((b * length + s) * heads + h) * size : ((b * heads + h) * length + s) * size;
}
DEVICE float attn_key(GLOBAL const float *k, int kOff, GLOBAL const float *pk, int pkOff, GLOBAL const int *m,
                      int b, int h, int j, int d) {
    int Hkv = m[2], Snew = m[4], P = m[5], D = m[6];
    if (j < P) return pk[pkOff + ((b * Hkv + h) * P + j) * D + d];
    return k[kOff + attn_offset(m[8], Hkv, Snew, D, b, h, j - P) + d];
}
DEVICE float attn_value(GLOBAL const float *v, int vOff, GLOBAL const float *pv, int pvOff, GLOBAL const int *m,
                        int b, int h, int j, int d) {
    int Hkv = m[2], Snew = m[4], P = m[5], Dv = m[7];
    if (j < P) return pv[pvOff + ((b * Hkv + h) * P + j) * Dv + d];
    return v[vOff + attn_offset(m[8], Hkv, Snew, Dv, b, h, j - P) + d];
}
/* The raw score (scaled, soft-capped) of key j, and its bias in *bias. */
DEVICE float attn_score(GLOBAL const float *q, int qOff, GLOBAL const float *k, int kOff, GLOBAL const float *pk,
                        int pkOff, GLOBAL const float *mask, int maskOff, GLOBAL const long *nonpad, int npOff,
                        GLOBAL const int *m, float scale, float softcap, int b, int h, int i, int j,
                        float *bias) {
    int Hq = m[1], Hkv = m[2], Sq = m[3], D = m[6], P = m[5];
    int kvh = h / (Hq / Hkv);
    int qBase = qOff + attn_offset(m[8], Hq, Sq, D, b, h, i);
    float s = 0.0f;
    for (int d = 0; d < D; d++) s += q[qBase + d] * attn_key(k, kOff, pk, pkOff, m, b, kvh, j, d);
    s *= scale;
    if (softcap > 0.0f) s = softcap * tanh(s / softcap);
    float bb = 0.0f;
    int kind = m[9];
    if (kind != 0) {
        if (j < m[10]) {
            int at = b * m[11] + h * m[12] + i * m[13] + j * m[14];
            if (kind == 1) {
                bb = mask[maskOff + at];
            } else {
                GLOBAL const uchar *bytes = (GLOBAL const uchar *)mask;
                bb = bytes[maskOff + at] ? 0.0f : -INFINITY;
            }
        } else {
            bb = -INFINITY;
        }
    }
    if (m[15] && j - P > i) bb = -INFINITY;
    if (m[16]) {
        long valid = nonpad[npOff + b];
        if ((long)j >= valid) bb = -INFINITY;
    }
    *bias = bb;
    return s;
}
KERNEL void attention_rows(GLOBAL const float *q, int qOff, GLOBAL const float *k, int kOff,
                           GLOBAL const float *v, int vOff, GLOBAL const float *pk, int pkOff,
                           GLOBAL const float *pv, int pvOff, GLOBAL const float *mask, int maskOff,
                           GLOBAL const long *nonpad, int npOff, GLOBAL float *y, int yOff,
                           GLOBAL float *scores, int sOff, float scale, float softcap, GLOBAL const int *m) {
    int row = GID0;
    int B = m[0], Hq = m[1], Hkv = m[2], Sq = m[3], P = m[5], Dv = m[7], mode = m[17];
    int T = P + m[4];
    if (row >= B * Hq * Sq) return;
    int i = row % Sq, h = (row / Sq) % Hq, b = row / (Sq * Hq);
    int kvh = h / (Hq / Hkv);
    float largest = -INFINITY, bias;
    for (int j = 0; j < T; j++) {
        float s = attn_score(q, qOff, k, kOff, pk, pkOff, mask, maskOff, nonpad, npOff, m, scale, softcap, b, h, i,
                             j, &bias);
        if (mode == 0 || mode == 1) scores[sOff + row * T + j] = s;
        if (mode == 2) scores[sOff + row * T + j] = s + bias;
        largest = fmax(largest, s + bias);
    }
    float total = 0.0f;
    for (int j = 0; j < T; j++) {
        float s = attn_score(q, qOff, k, kOff, pk, pkOff, mask, maskOff, nonpad, npOff, m, scale, softcap, b, h, i,
                             j, &bias);
        total += exp(s + bias - largest);
    }
    int yBase = yOff + attn_offset(m[8], Hq, Sq, Dv, b, h, i);
    for (int d = 0; d < Dv; d++) y[yBase + d] = 0.0f;
    for (int j = 0; j < T; j++) {
        float s = attn_score(q, qOff, k, kOff, pk, pkOff, mask, maskOff, nonpad, npOff, m, scale, softcap, b, h, i,
                             j, &bias);
        float p = exp(s + bias - largest) / total;
        if (mode == 3) scores[sOff + row * T + j] = p;
        for (int d = 0; d < Dv; d++) y[yBase + d] += p * attn_value(v, vOff, pv, pvOff, m, b, kvh, j, d);
    }
}
/* present_key / present_value: the past then the new positions, [B, Hkv, T, size]; which = 0 keys, 1 values. */
KERNEL void attention_present(GLOBAL const float *x, int xOff, GLOBAL const float *past, int pOff,
                              GLOBAL float *y, int yOff, int count, int which, GLOBAL const int *m) {
    int e = GID0;
    if (e >= count) return;
    int size = which ? m[7] : m[6], P = m[5], T = P + m[4], Hkv = m[2];
    int d = e % size, j = (e / size) % T, h = (e / (size * T)) % Hkv, b = e / (size * T * Hkv);
    y[yOff + e] = which ? attn_value(x, xOff, past, pOff, m, b, h, j, d) : attn_key(x, xOff, past, pOff, m, b, h, j, d);
}

/* RMSNormalization over the last `width` elements of each row: y = x / sqrt(mean(x²) + eps) · scale[offset],
   scale broadcast through meta = [rank, dims[rank], scaleStrides[rank]]. One work-item per row. */
KERNEL void rms_norm_rows(GLOBAL const float *x, int xOff, GLOBAL const float *g, int gOff, GLOBAL float *y,
                          int yOff, int rows, int width, float epsilon, GLOBAL const int *meta) {
    int r = GID0;
    if (r >= rows) return;
    float squares = 0.0f;
    for (int c = 0; c < width; c++) {
        float v = x[xOff + r * width + c];
        squares += v * v;
    }
    float inverse = 1.0f / sqrt(squares / (float)width + epsilon);
    int rank = meta[0];
    for (int c = 0; c < width; c++) {
        int i = r * width + c, rest = i, at = 0;
        for (int a = rank - 1; a >= 0; a--) {
            int d = meta[1 + a];
            at += (rest % d) * meta[1 + rank + a];
            rest /= d;
        }
        y[yOff + i] = x[xOff + i] * inverse * g[gOff + at];
    }
}

/* RotaryEmbedding: one work-item per (b, s, h, d < rotary/2) rotating a pair, plus the untouched tail copied
   by the items d >= rotary/2 (d < head size - rotary/2). meta = [B, H, S, D, packed, rotary, interleaved,
   hasPositions, cacheRows]. */
KERNEL void rotary_embedding(GLOBAL const float *x, int xOff, GLOBAL const float *cs, int cOff,
                             GLOBAL const float *sn, int sOff, GLOBAL const long *pos, int pOff, GLOBAL float *y,
                             int yOff, int count, GLOBAL const int *meta, GLOBAL int *status) {
    int e = GID0;
    if (e >= count) return;
    int B = meta[0], H = meta[1], S = meta[2], D = meta[3], packed = meta[4], R = meta[5];
    int pairs = R / 2, lanes = D - pairs;
    int d = e % lanes, h = (e / lanes) % H, s = (e / (lanes * H)) % S, b = e / (lanes * H * S);
    int base = xOff + (packed ? ((b * S + s) * H + h) * D : ((b * H + h) * S + s) * D);
    int out = yOff + (packed ? ((b * S + s) * H + h) * D : ((b * H + h) * S + s) * D);
    if (d >= pairs) {
        int t = R + (d - pairs);
        if (t < D) y[out + t] = x[base + t];
        return;
    }
    int row = b * S + s;
    if (meta[7]) {
        long p = pos[pOff + b * S + s];
        if (p < 0 || p >= meta[8]) {
            status[0] = 1;
            return;
        }
        row = (int)p;
    }
    float c = cs[cOff + row * pairs + d], si = sn[sOff + row * pairs + d];
    int first = meta[6] ? 2 * d : d, second = meta[6] ? 2 * d + 1 : d + pairs;
    float x1 = x[base + first], x2 = x[base + second];
    y[out + first] = c * x1 - si * x2;
    y[out + second] = si * x1 + c * x2;
}

