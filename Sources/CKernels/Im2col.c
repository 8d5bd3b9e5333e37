// im2col for 2-D convolution, written straight into the packed-panel layout ck_sgemm_packed reads: element
// (row r, output position o) goes to panel o / nr, row r, lane o % nr. Rows are (channel, ky, kx).
#include "CKernels.h"
#include <string.h>

// Writes `count` values (zeros when src is NULL) for row r starting at output position o, across panels.
static inline void put_run(float *col, size_t nr, size_t panel_stride, size_t r, size_t o, const float *src,
                           size_t count) {
    while (count > 0) {
        const size_t lane = o % nr;
        const size_t take = nr - lane < count ? nr - lane : count;
        float *dst = col + (o / nr) * panel_stride + r * nr + lane;
        if (src) {
            memcpy(dst, src, take * sizeof(float));
            src += take;
        } else {
            memset(dst, 0, take * sizeof(float));
        }
        o += take;
        count -= take;
    }
}

void ck_im2col_panels_2d(const float *x, size_t in_h, size_t in_w, size_t kernel_h, size_t kernel_w,
                         size_t stride_h, size_t stride_w, size_t dilation_h, size_t dilation_w, ptrdiff_t pad_top,
                         ptrdiff_t pad_left, size_t out_h, size_t out_w, float *col, size_t nr, size_t rows,
                         size_t row_begin, size_t row_end) {
    const size_t kernel = kernel_h * kernel_w;
    const size_t panel_stride = rows * nr;
    float gathered[256];
    for (size_t r = row_begin; r < row_end; r++) {
        const size_t c = r / kernel, kp = r % kernel;
        const ptrdiff_t ky = (ptrdiff_t)(kp / kernel_w), kx = (ptrdiff_t)(kp % kernel_w);
        const float *xc = x + c * in_h * in_w;
        // Columns ox with 0 <= ox·stride + offset < in_w are inside the image.
        const ptrdiff_t offset = kx * (ptrdiff_t)dilation_w - pad_left;
        size_t lo = 0, hi = out_w;
        while (lo < out_w && (ptrdiff_t)(lo * stride_w) + offset < 0) lo++;
        while (hi > lo && (ptrdiff_t)((hi - 1) * stride_w) + offset >= (ptrdiff_t)in_w) hi--;
        for (size_t oy = 0; oy < out_h; oy++) {
            const ptrdiff_t iy = (ptrdiff_t)(oy * stride_h) - pad_top + ky * (ptrdiff_t)dilation_h;
            const size_t o = oy * out_w;
            if (iy < 0 || iy >= (ptrdiff_t)in_h || lo == hi) {
                put_run(col, nr, panel_stride, r, o, NULL, out_w);
                continue;
            }
            const float *src = xc + (size_t)iy * in_w;
            if (lo > 0) put_run(col, nr, panel_stride, r, o, NULL, lo);
            if (stride_w == 1) {
                put_run(col, nr, panel_stride, r, o + lo, src + (ptrdiff_t)lo + offset, hi - lo);
            } else {
                for (size_t start = lo; start < hi; start += 256) {
                    const size_t n = hi - start < 256 ? hi - start : 256;
                    for (size_t j = 0; j < n; j++) gathered[j] = src[(ptrdiff_t)((start + j) * stride_w) + offset];
                    put_run(col, nr, panel_stride, r, o + start, gathered, n);
                }
            }
            if (hi < out_w) put_run(col, nr, panel_stride, r, o + hi, NULL, out_w - hi);
        }
    }
}
