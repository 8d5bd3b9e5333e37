/* Transposed convolution over up to three spatial axes (1-D and 2-D run with unit leading axes), one
   work-item per output element (n, m, od, oy, ox), W laid out [C, M/group, KD, KH, KW]; meta as conv3d. */
KERNEL void conv_transpose3d(GLOBAL const float *x, int xOff, GLOBAL const float *w, int wOff, GLOBAL const float *b,
                             int bOff, int hasBias, GLOBAL float *y, int yOff, int count, GLOBAL const int *meta) {
    int i = GID0;
    if (i >= count) return;
    CK_CONV_META(i);
    int cg = C / G, mg = M / G, g = m / mg, mm = m % mg;
    float acc = hasBias ? b[bOff + m] : 0.0f;
    for (int c = 0; c < cg; c++) {
        GLOBAL const float *xc = x + xOff + ((n * C) + g * cg + c) * D * H * W;
        GLOBAL const float *wc = w + wOff + ((g * cg + c) * mg + mm) * KD * KH * KW;
        for (int kd = 0; kd < KD; kd++) {
            int td = od + PD - kd * DD;
            if (td < 0 || td % SD != 0 || td / SD >= D) continue;
            for (int ky = 0; ky < KH; ky++) {
                int ty = oy + PY - ky * DY;
                if (ty < 0 || ty % SY != 0 || ty / SY >= H) continue;
                for (int kx = 0; kx < KW; kx++) {
                    int tx = ox + PX - kx * DX;
                    if (tx < 0 || tx % SX != 0 || tx / SX >= W) continue;
                    acc += xc[((td / SD) * H + ty / SY) * W + tx / SX] * wc[(kd * KH + ky) * KW + kx];
                }
            }
        }
    }
    y[yOff + i] = acc;
}

