// Permutation of 4-byte elements: y[i] = x[offset(i)], walking the output in order with the input strides of
// each output axis; runs along an output axis with input stride 1 are copied as blocks.
#include "CKernels.h"
#include <string.h>

#include "Transpose8.h"

void ck_permute_u32(const uint32_t *x, uint32_t *y, size_t rank, const size_t *dims, const size_t *strides,
                    size_t begin, size_t end) {
    if (rank == 0) {
        if (begin < end) y[0] = x[0];
        return;
    }
    const size_t last = dims[rank - 1], step = strides[rank - 1];
    if (last == 0) return;
    size_t index[16] = {0};
    if (rank > 16) return;
    // Position the counter at `begin` (a multiple of the last dimension, as callers split by rows).
    size_t rest = begin / last, offset = 0;
    for (size_t axis = rank - 1; axis-- > 0;) {
        index[axis] = rest % dims[axis];
        rest /= dims[axis];
        offset += index[axis] * strides[axis];
    }
    for (size_t row = begin; row < end; row += last) {
        uint32_t *out = y + row;
        if (step == 1) {
            memcpy(out, x + offset, last * sizeof(uint32_t));
        } else {
            const uint32_t *in = x + offset;
            for (size_t j = 0; j < last; j++) out[j] = in[j * step];
        }
        // Advance the counter over the outer axes.
        for (size_t axis = rank - 1; axis-- > 0;) {
            offset += strides[axis];
            if (++index[axis] < dims[axis]) break;
            offset -= index[axis] * strides[axis];
            index[axis] = 0;
        }
    }
}

// Output rows [begin, end) of y = xᵀ for `batch` row-major rows x cols matrices, rows counted over the batch
// (row r of y is column r % cols of matrix r / cols). 8x8 blocks go through registers; a block's eight input
// column strips stay in L1 while the next block of output rows reads the rest of their cache lines.
__attribute__((target("avx2,fma"))) static void transpose_avx2(const float *x, float *y, size_t rows, size_t cols,
                                                              size_t j0, size_t j1) {
    size_t j = j0;
    for (; j + 8 <= j1; j += 8) {
        size_t i = 0;
        for (; i + 8 <= rows; i += 8) {
            __m256 v[8];
            for (int r = 0; r < 8; r++) v[r] = _mm256_loadu_ps(x + (i + (size_t)r) * cols + j);
            tr8(v);
            for (int q = 0; q < 8; q++) _mm256_storeu_ps(y + (j + (size_t)q) * rows + i, v[q]);
        }
        for (; i < rows; i++)
            for (size_t q = 0; q < 8; q++) y[(j + q) * rows + i] = x[i * cols + j + q];
    }
    for (; j < j1; j++)
        for (size_t i = 0; i < rows; i++) y[j * rows + i] = x[i * cols + j];
}

static void transpose_generic(const uint32_t *x, uint32_t *y, size_t rows, size_t cols, size_t j0, size_t j1) {
    for (size_t j = j0; j < j1; j += 8) {
        const size_t je = j + 8 < j1 ? j + 8 : j1;
        for (size_t i = 0; i < rows; i++)
            for (size_t q = j; q < je; q++) y[q * rows + i] = x[i * cols + q];
    }
}

void ck_transpose_u32(const uint32_t *x, uint32_t *y, size_t rows, size_t cols, size_t begin, size_t end) {
    if (rows == 0 || cols == 0) return;
    const int vector = ck_kernel_isa()[0] == 'a';
    while (begin < end) {
        const size_t b = begin / cols, j0 = begin % cols;
        const size_t j1 = end - begin < cols - j0 ? j0 + (end - begin) : cols;
        const uint32_t *xb = x + b * rows * cols;
        uint32_t *yb = y + b * rows * cols;
        if (vector)
            transpose_avx2((const float *)xb, (float *)yb, rows, cols, j0, j1);
        else
            transpose_generic(xb, yb, rows, cols, j0, j1);
        begin += j1 - j0;
    }
}
