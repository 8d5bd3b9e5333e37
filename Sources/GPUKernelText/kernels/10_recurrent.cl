/* LSTM and GRU, one launch per time step (GRU without linear_before_reset takes two). The state lives in a
   scratch buffer of 5 * D * B * H floats: [parity 0: h, c][parity 1: h, c][r * h]; step s reads parity s % 2
   and writes the other. meta: [S, B, I, H, D, layout, isLSTM, reverseOnly, linearBeforeReset, hasClip,
   clip bits, then per direction and activation (f, g, h for LSTM; f, g for GRU): code, alpha bits, beta bits]. */
DEVICE float rnn_activation(int code, float v, float alpha, float beta) {
    switch (code) {
    case 0: return 1.0f / (1.0f + exp(-v));
    case 1: return tanh(v);
    case 2: return fmax(v, 0.0f);
    case 3: return v / (1.0f + fabs(v));
    case 4: return log(1.0f + exp(v));
    case 5: return v >= 0.0f ? v : alpha * v;
    case 6: return v > alpha ? v : 0.0f;
    case 7: return v >= 0.0f ? v : alpha * (exp(v) - 1.0f);
    case 8: return fmax(0.0f, fmin(1.0f, alpha * v + beta));
    case 9: return alpha * v + beta;
    default: return alpha * tanh(beta * v);
    }
}

/* Activation `slot` of direction d, applied after the clip. */
DEVICE float rnn_gate(GLOBAL const int *meta, int d, int slot, float v) {
    if (meta[9]) v = fmin(fmax(v, -INT_AS_FLOAT(meta[10])), INT_AS_FLOAT(meta[10]));
    int a = 11 + 3 * (d * (meta[6] ? 3 : 2) + slot);
    return rnn_activation(meta[a], v, INT_AS_FLOAT(meta[a + 1]), INT_AS_FLOAT(meta[a + 2]));
}

/* Bias + W x_t and bias + R h for gate row `row` of direction d. */
DEVICE void rnn_products(GLOBAL const float *xt, GLOBAL const float *w, GLOBAL const float *r, GLOBAL const float *bias,
                         int hasBias, GLOBAL const float *hp, int d, int row, int G, int I, int H, float *fromX,
                         float *fromH) {
    float sx = hasBias ? bias[d * 2 * G * H + row] : 0.0f;
    float sh = hasBias ? bias[d * 2 * G * H + G * H + row] : 0.0f;
    GLOBAL const float *wr = w + (d * G * H + row) * I;
    GLOBAL const float *rr = r + (d * G * H + row) * H;
    for (int k = 0; k < I; k++) sx += wr[k] * xt[k];
    for (int k = 0; k < H; k++) sh += rr[k] * hp[k];
    *fromX = sx;
    *fromH = sh;
}

/* Work-item (d, b, j): the time index step `step` processes for batch entry b, or -1 past its length. */
DEVICE int rnn_time(GLOBAL const int *lens, int lOff, int hasLens, GLOBAL const int *meta, int d, int b, int step) {
    int S = meta[0];
    int length = hasLens ? min(max(lens[lOff + b], 0), S) : S;
    if (step >= length) return -1;
    return (meta[7] || d == 1) ? length - 1 - step : step;
}

/* Initial state: h and c from the optional inputs (laid out [D, B, H], or [B, D, H] for layout 1), else 0. */
KERNEL void rnn_init(GLOBAL const float *h0, int hOff, int hasH, GLOBAL const float *c0, int cOff, int hasC,
                     GLOBAL float *state, int sOff, int D, int B, int H, int layout) {
    int e = GID0;
    if (e >= D * B * H) return;
    int j = e % H, b = (e / H) % B, d = e / (H * B);
    int from = (layout == 0 ? d * B + b : b * D + d) * H + j;
    state[sOff + e] = hasH ? h0[hOff + from] : 0.0f;
    state[sOff + D * B * H + e] = hasC ? c0[cOff + from] : 0.0f;
}

/* GRU without linear_before_reset: r ⊙ h for every unit, which the candidate gate reads whole. */
KERNEL void gru_reset(GLOBAL const float *x, int xOff, GLOBAL const float *w, int wOff, GLOBAL const float *r, int rOff,
                      GLOBAL const float *bias, int bOff, int hasBias, GLOBAL const int *lens, int lOff, int hasLens,
                      GLOBAL float *state, int sOff, int step, GLOBAL const int *meta) {
    int S = meta[0], B = meta[1], I = meta[2], H = meta[3], D = meta[4], layout = meta[5];
    int e = GID0;
    if (e >= D * B * H) return;
    int j = e % H, b = (e / H) % B, d = e / (H * B);
    int t = rnn_time(lens, lOff, hasLens, meta, d, b, step);
    if (t < 0) return;
    GLOBAL const float *hp = state + sOff + (step % 2) * 2 * D * B * H + (d * B + b) * H;
    GLOBAL const float *xt = x + xOff + (layout == 0 ? t * B + b : b * S + t) * I;
    float fromX, fromH;
    rnn_products(xt, w + wOff, r + rOff, bias + bOff, hasBias, hp, d, H + j, 3, I, H, &fromX, &fromH);
    state[sOff + 4 * D * B * H + e] = rnn_gate(meta, d, 0, fromX + fromH) * hp[j];
}

/* One time step of every (direction, batch entry, unit); entries past their length carry their state and
   write zeros to Y. */
KERNEL void rnn_step(GLOBAL const float *x, int xOff, GLOBAL const float *w, int wOff, GLOBAL const float *r, int rOff,
                     GLOBAL const float *bias, int bOff, int hasBias, GLOBAL const int *lens, int lOff, int hasLens,
                     GLOBAL const float *peep, int pOff, int hasPeep, GLOBAL float *state, int sOff,
                     GLOBAL float *y, int yOff, int hasY, int step, GLOBAL const int *meta) {
    int S = meta[0], B = meta[1], I = meta[2], H = meta[3], D = meta[4], layout = meta[5], lstm = meta[6];
    int e = GID0;
    if (e >= D * B * H) return;
    int j = e % H, b = (e / H) % B, d = e / (H * B);
    int DBH = D * B * H;
    GLOBAL float *hPrev = state + sOff + (step % 2) * 2 * DBH;
    GLOBAL float *hNext = state + sOff + ((step + 1) % 2) * 2 * DBH;
    int t = rnn_time(lens, lOff, hasLens, meta, d, b, step);
    if (t < 0) {
        hNext[e] = hPrev[e];
        hNext[DBH + e] = hPrev[DBH + e];
        if (hasY) y[yOff + (layout == 0 ? ((step * D + d) * B + b) * H : ((b * S + step) * D + d) * H) + j] = 0.0f;
        return;
    }
    GLOBAL const float *hp = hPrev + (d * B + b) * H;
    GLOBAL const float *xt = x + xOff + (layout == 0 ? t * B + b : b * S + t) * I;
    int G = lstm ? 4 : 3;
    float fromX[4], fromH[4];
    for (int g = 0; g < G; g++) {
        rnn_products(xt, w + wOff, r + rOff, bias + bOff, hasBias, hp, d, g * H + j, G, I, H, &fromX[g], &fromH[g]);
    }
    float h;
    if (lstm) {
        float c0 = hPrev[DBH + e];
        GLOBAL const float *p = peep + pOff + d * 3 * H;
        float ig = rnn_gate(meta, d, 0, fromX[0] + fromH[0] + (hasPeep ? p[j] * c0 : 0.0f));
        float fg = rnn_gate(meta, d, 0, fromX[2] + fromH[2] + (hasPeep ? p[2 * H + j] * c0 : 0.0f));
        float cc = rnn_gate(meta, d, 1, fromX[3] + fromH[3]);
        float c1 = fg * c0 + ig * cc;
        float og = rnn_gate(meta, d, 0, fromX[1] + fromH[1] + (hasPeep ? p[H + j] * c1 : 0.0f));
        hNext[DBH + e] = c1;
        /* The output activation takes no clip. */
        int a = 11 + 3 * (d * 3 + 2);
        h = og * rnn_activation(meta[a], c1, INT_AS_FLOAT(meta[a + 1]), INT_AS_FLOAT(meta[a + 2]));
    } else {
        float z = rnn_gate(meta, d, 0, fromX[0] + fromH[0]);
        float candidate;
        if (meta[8]) {
            candidate = fromX[2] + rnn_gate(meta, d, 0, fromX[1] + fromH[1]) * fromH[2];
        } else {
            GLOBAL const float *rh = state + sOff + 4 * DBH + (d * B + b) * H;
            GLOBAL const float *rr = r + rOff + (d * 3 * H + 2 * H + j) * H;
            float q = hasBias ? bias[bOff + d * 6 * H + 3 * H + 2 * H + j] : 0.0f;
            for (int k = 0; k < H; k++) q += rr[k] * rh[k];
            candidate = fromX[2] + q;
        }
        float hh = rnn_gate(meta, d, 1, candidate);
        h = (1.0f - z) * hh + z * hp[j];
    }
    hNext[e] = h;
    if (hasY) y[yOff + (layout == 0 ? ((t * D + d) * B + b) * H : ((b * S + t) * D + d) * H) + j] = h;
}

/* Y_h and Y_c from the final state (parity S % 2), in the output layout. */
KERNEL void rnn_final(GLOBAL const float *state, int sOff, GLOBAL float *yh, int hOff, int hasH, GLOBAL float *yc,
                      int cOff, int hasC, int parity, int D, int B, int H, int layout) {
    int e = GID0;
    if (e >= D * B * H) return;
    int j = e % H, b = (e / H) % B, d = e / (H * B);
    int to = (layout == 0 ? d * B + b : b * D + d) * H + j;
    GLOBAL const float *s = state + sOff + parity * 2 * D * B * H;
    if (hasH) yh[hOff + to] = s[e];
    if (hasC) yc[cOff + to] = s[D * B * H + e];
}
