// Elementwise activations over contiguous float buffers.
#include "CKernels.h"
#include <math.h>

void ck_sigmoid(const float *x, float *y, size_t count) {
    for (size_t i = 0; i < count; i++) {
        const float v = x[i];
        // Split by sign so exp never overflows to inf/inf.
        if (v >= 0.0f) {
            y[i] = 1.0f / (1.0f + expf(-v));
        } else {
            const float e = expf(v);
            y[i] = e / (1.0f + e);
        }
    }
}

void ck_relu(const float *x, float *y, size_t count) {
    for (size_t i = 0; i < count; i++) {
        const float v = x[i];
        y[i] = v > 0.0f ? v : (v != v ? v : 0.0f);
    }
}
