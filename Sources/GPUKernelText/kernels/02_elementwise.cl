DEVICE float erf_approx(float x) {
    float ax = fabs(x);
    float t = 1.0f / (1.0f + 0.5f * ax);
    float q = -ax * ax - 1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f +
              t * (-0.18628806f + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f +
              t * (-0.82215223f + t * 0.17087277f))))))));
    float v = 1.0f - t * exp(q);
    return x < 0.0f ? -v : v;
}

/* The unary kernel's op codes, the same numbers as GPUUnaryCode in Sources/InferenceGraph/Operators/
   UnaryOperators.swift (a test reads this enum and compares the two name by name). */
enum unary_op {
    UNARY_RELU = 0,
    UNARY_SIGMOID = 1,
    UNARY_TANH = 2,
    UNARY_EXP = 3,
    UNARY_LOG = 4,
    UNARY_SQRT = 5,
    UNARY_NEG = 6,
    UNARY_ABS = 7,
    UNARY_ERF = 8,
    UNARY_GELU = 9,
    UNARY_LEAKY_RELU = 10,
    UNARY_IDENTITY = 11,
    UNARY_RECIPROCAL = 12,
    UNARY_FLOOR = 13,
    UNARY_CEIL = 14,
    UNARY_HARD_SIGMOID = 15,
    UNARY_ELU = 16,
    UNARY_HARD_SWISH = 17,
    UNARY_SOFTPLUS = 18,
    UNARY_SIN = 19,
    UNARY_COS = 20,
    UNARY_ROUND = 21,
    UNARY_SELU = 22,
    UNARY_CELU = 23,
    UNARY_THRESHOLDED_RELU = 24,
    UNARY_MISH = 25,
    UNARY_SOFTSIGN = 26,
    UNARY_SIGN = 27,
    UNARY_CLIP = 28,
    UNARY_SCALE = 29,
    UNARY_GELU_TANH = 30,
    UNARY_TAN = 31,
    UNARY_ASIN = 32,
    UNARY_ACOS = 33,
    UNARY_ATAN = 34,
    UNARY_SINH = 35,
    UNARY_COSH = 36,
    UNARY_ASINH = 37,
    UNARY_ACOSH = 38,
    UNARY_ATANH = 39,
    UNARY_SHRINK = 40,
    UNARY_SWISH = 41,
};

DEVICE float ck_unary(float v, int op, float alpha, float beta) {
    float r;
    switch (op) {
    case UNARY_RELU: r = v > 0.0f ? v : (v != v ? v : 0.0f); break;
    case UNARY_SIGMOID: r = v >= 0.0f ? 1.0f / (1.0f + exp(-v)) : exp(v) / (1.0f + exp(v)); break;
    case UNARY_TANH: r = tanh(v); break;
    case UNARY_EXP: r = exp(v); break;
    case UNARY_LOG: r = log(v); break;
    case UNARY_SQRT: r = sqrt(v); break;
    case UNARY_NEG: r = -v; break;
    case UNARY_ABS: r = fabs(v); break;
    case UNARY_ERF: r = erf_approx(v); break;
    case UNARY_GELU: r = 0.5f * v * (1.0f + erf_approx(v * 0.70710678118654752f)); break;
    case UNARY_LEAKY_RELU: r = v >= 0.0f ? v : alpha * v; break;
    case UNARY_IDENTITY: r = v; break;
    case UNARY_RECIPROCAL: r = 1.0f / v; break;
    case UNARY_FLOOR: r = floor(v); break;
    case UNARY_CEIL: r = ceil(v); break;
    case UNARY_HARD_SIGMOID: r = fmax(0.0f, fmin(1.0f, alpha * v + beta)); break;
    case UNARY_ELU: r = v >= 0.0f ? v : alpha * (exp(v) - 1.0f); break;
    case UNARY_HARD_SWISH: r = v * fmax(0.0f, fmin(1.0f, v / 6.0f + 0.5f)); break;
    case UNARY_SOFTPLUS: r = v > 0.0f ? v + log(1.0f + exp(-v)) : log(1.0f + exp(v)); break;
    case UNARY_SIN: r = sin(v); break;
    case UNARY_COS: r = cos(v); break;
    case UNARY_ROUND: r = rint(v); break;
    case UNARY_SELU: r = v > 0.0f ? beta * v : beta * (alpha * exp(v) - alpha); break;
    case UNARY_CELU: r = fmax(0.0f, v) + fmin(0.0f, alpha * (exp(v / alpha) - 1.0f)); break;
    case UNARY_THRESHOLDED_RELU: r = v > alpha ? v : 0.0f; break;
    case UNARY_MISH: r = v * tanh(v > 0.0f ? v + log(1.0f + exp(-v)) : log(1.0f + exp(v))); break;
    case UNARY_SOFTSIGN: r = v / (1.0f + fabs(v)); break;
    case UNARY_SIGN: r = v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : v); break;
    case UNARY_CLIP: r = v < alpha ? alpha : (v > beta ? beta : v); break;
    case UNARY_SCALE: r = alpha * v; break;
    case UNARY_GELU_TANH: r = 0.5f * v * (1.0f + tanh(0.7978845608028654f * (v + 0.044715f * v * v * v))); break;
    case UNARY_TAN: r = tan(v); break;
    case UNARY_ASIN: r = asin(v); break;
    case UNARY_ACOS: r = acos(v); break;
    case UNARY_ATAN: r = atan(v); break;
    case UNARY_SINH: r = sinh(v); break;
    case UNARY_COSH: r = cosh(v); break;
    case UNARY_ASINH: r = asinh(v); break;
    case UNARY_ACOSH: r = acosh(v); break;
    case UNARY_ATANH: r = atanh(v); break;
    case UNARY_SHRINK: r = v < -alpha ? v + beta : (v > alpha ? v - beta : 0.0f); break;
    case UNARY_SWISH: r = v / (1.0f + exp(-alpha * v)); break;
    default: r = v; break;
    }
    return r;
}
/* The unary kernel over each float storage type (y may be x). */
#define CK_UNARY_KERNEL(name, T, LOAD, STORE)                                                                    \
    KERNEL void name(GLOBAL const T *x, int xOff, GLOBAL T *y, int yOff, int count, int op, float alpha,         \
                     float beta) {                                                                               \
        int i = GID0;                                                                                            \
        if (i < count) y[yOff + i] = STORE(ck_unary(LOAD(x[xOff + i]), op, alpha, beta));                        \
    }
CK_UNARY_KERNEL(unary, float, CK_LOAD_F32, CK_STORE_F32)
CK_UNARY_KERNEL(unary_f16, ck_u16, CK_LOAD_F16, CK_STORE_F16)
CK_UNARY_KERNEL(unary_bf16, ck_u16, CK_LOAD_BF16, CK_STORE_BF16)

/* The offsets into each of `operands` broadcast inputs of output element i: meta = [rank, dims[rank],
   strides of operand 0 [rank], strides of operand 1 [rank], ...] (0 on broadcast axes). */
DEVICE void broadcast_offsets(int i, GLOBAL const int *meta, int operands, int *offsets) {
    int rank = meta[0], rest = i;
    for (int o = 0; o < operands; o++) offsets[o] = 0;
    for (int axis = rank - 1; axis >= 0; axis--) {
        int d = meta[1 + axis];
        int k = rest % d;
        rest /= d;
        for (int o = 0; o < operands; o++) offsets[o] += k * meta[1 + (o + 1) * rank + axis];
    }
}

/* Output element i's offsets into the two operands of a broadcasting binary operator: a's as the result, b's in
   *ib. */
DEVICE int pair_offsets(int i, GLOBAL const int *meta, int *ib) {
    int o[2];
    broadcast_offsets(i, meta, 2, o);
    *ib = o[1];
    return o[0];
}

DEVICE float ck_binary(float u, float v, int op) {
    float r;
    switch (op) {
    case 0: r = u + v; break;
    case 1: r = u - v; break;
    case 2: r = u * v; break;
    case 3: r = u / v; break;
    case 4: r = pow(u, v); break;
    case 5: r = fmax(u, v); break;
    case 6: r = fmin(u, v); break;
    case 7: r = fmod(u, v); break;
    case 8: r = fmod(u, v); if (r != 0.0f && ((r < 0.0f) != (v < 0.0f))) r += v; break;
    case 9: r = u < 0.0f ? u * v : u; break;
    case 10: r = u < v ? v : u; break;
    case 11: r = u > v ? v : u; break;
    default: r = u; break;
    }
    return r;
}
/* Broadcasting binary op over each float storage type. meta = [rank, outDims[rank], aStrides[rank],
   bStrides[rank]]. */
#define CK_BINARY_KERNEL(name, T, LOAD, STORE)                                                                   \
    KERNEL void name(GLOBAL const T *a, int aOff, GLOBAL const T *b, int bOff, GLOBAL T *y, int yOff, int count, \
                     int op, GLOBAL const int *meta) {                                                           \
        int i = GID0;                                                                                            \
        if (i >= count) return;                                                                                  \
        int ib, ia = pair_offsets(i, meta, &ib);                                                                 \
        y[yOff + i] = STORE(ck_binary(LOAD(a[aOff + ia]), LOAD(b[bOff + ib]), op));                              \
    }
CK_BINARY_KERNEL(binary, float, CK_LOAD_F32, CK_STORE_F32)
CK_BINARY_KERNEL(binary_f16, ck_u16, CK_LOAD_F16, CK_STORE_F16)
CK_BINARY_KERNEL(binary_bf16, ck_u16, CK_LOAD_BF16, CK_STORE_BF16)

