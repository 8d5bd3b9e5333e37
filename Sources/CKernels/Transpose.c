// Permutation of 4-byte elements: y[i] = x[offset(i)], walking the output in order with the input strides of
// each output axis; runs along an output axis with input stride 1 are copied as blocks.
#include "CKernels.h"
#include <string.h>

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
