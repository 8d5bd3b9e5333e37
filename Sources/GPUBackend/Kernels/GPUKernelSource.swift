/// The GPU kernels, written once in a C dialect that compiles as OpenCL C and (through the macros at the
/// top) as CUDA C++. Buffers are passed with an element offset so one device allocation (the plan's arena)
/// can hold many values. Small int metadata (shapes, strides) lives in a per-node device buffer.
enum GPUKernelSource {
    static let source = #"""
        #ifdef __OPENCL_VERSION__
        #define KERNEL __kernel
        #define DEVICE
        #define GLOBAL __global
        #define GID0 ((int)get_global_id(0))
        #define GID1 ((int)get_global_id(1))
        #define GID2 ((int)get_global_id(2))
        #define INT_AS_FLOAT(v) as_float(v)
        #define FLOAT_AS_UINT(v) as_uint(v)
        #define LOCAL __local
        #define BARRIER() barrier(CLK_LOCAL_MEM_FENCE)
        #define LID0 ((int)get_local_id(0))
        #define LID1 ((int)get_local_id(1))
        typedef ushort ck_u16;
        typedef uint ck_u32;
        typedef ulong ck_u64;
        #else
        #define KERNEL extern "C" __global__
        #define DEVICE __device__
        #define GLOBAL
        #ifndef INFINITY
        #define INFINITY __int_as_float(0x7f800000)
        #endif
        typedef unsigned char uchar;
        typedef unsigned short ck_u16;
        typedef unsigned int ck_u32;
        typedef unsigned long long ck_u64;
        #define GID0 ((int)(blockIdx.x * blockDim.x + threadIdx.x))
        #define GID1 ((int)(blockIdx.y * blockDim.y + threadIdx.y))
        #define GID2 ((int)(blockIdx.z * blockDim.z + threadIdx.z))
        #define INT_AS_FLOAT(v) __int_as_float(v)
        #define FLOAT_AS_UINT(v) __float_as_uint(v)
        #define LOCAL __shared__
        #define BARRIER() __syncthreads()
        #define LID0 ((int)threadIdx.x)
        #define LID1 ((int)threadIdx.y)
        #endif

        /* Gemm and (batched) MatMul: Y[s] = alpha · op(A[s]) · op(B[s]) (+ beta · C broadcast), A[s] and B[s] at the
           element offsets meta[2s] and meta[2s + 1]. Work-groups of 16 x 16 outputs stage 16-wide slices of A and B
           through local memory (the global size is whole groups, so every work-item reaches the barriers and only
           the stores are bounds-checked); each output still sums its K products in order. */
        KERNEL void gemm_tiled(GLOBAL const float *a, int aOff, GLOBAL const float *b, int bOff, GLOBAL const float *c,
                               int cOff, GLOBAL float *y, int yOff, int m, int n, int k, int transA, int transB,
                               float alpha, float beta, int cRows, int cCols, int hasC, GLOBAL const int *meta) {
            LOCAL float as[16][16];
            LOCAL float bs[16][17];
            int tx = LID0, ty = LID1;
            int j = GID0, i = GID1, s = GID2;
            /* Rows and columns of the group's first work-items, for the tile loads. */
            int i0 = i - ty, j0 = j - tx;
            GLOBAL const float *ap = a + aOff + meta[2 * s];
            GLOBAL const float *bp = b + bOff + meta[2 * s + 1];
            float acc = 0.0f;
            for (int p0 = 0; p0 < k; p0 += 16) {
                /* as[r][q] = A'[i0 + r, p0 + q]; bs[q][t] = B'[p0 + q, j0 + t]. */
                int ar = i0 + ty, aq = p0 + tx;
                as[ty][tx] = (ar < m && aq < k) ? (transA ? ap[aq * m + ar] : ap[ar * k + aq]) : 0.0f;
                int bq = p0 + ty, bt = j0 + tx;
                bs[ty][tx] = (bt < n && bq < k) ? (transB ? bp[bt * k + bq] : bp[bq * n + bt]) : 0.0f;
                BARRIER();
                int steps = k - p0 < 16 ? k - p0 : 16;
                for (int q = 0; q < steps; q++) acc += as[ty][q] * bs[q][tx];
                BARRIER();
            }
            if (i >= m || j >= n) return;
            float v = alpha * acc;
            if (hasC) v += beta * c[cOff + (cRows == 1 ? 0 : i) * cCols + (cCols == 1 ? 0 : j)];
            y[yOff + s * m * n + i * n + j] = v;
        }

        DEVICE float erf_approx(float x) {
            float ax = fabs(x);
            float t = 1.0f / (1.0f + 0.5f * ax);
            float q = -ax * ax - 1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f +
                      t * (-0.18628806f + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f +
                      t * (-0.82215223f + t * 0.17087277f))))))));
            float v = 1.0f - t * exp(q);
            return x < 0.0f ? -v : v;
        }

        KERNEL void unary(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int count, int op, float alpha,
                          float beta) {
            int i = GID0;
            if (i >= count) return;
            float v = x[xOff + i], r;
            switch (op) {
            case 0: r = v > 0.0f ? v : (v != v ? v : 0.0f); break;
            case 1: r = v >= 0.0f ? 1.0f / (1.0f + exp(-v)) : exp(v) / (1.0f + exp(v)); break;
            case 2: r = tanh(v); break;
            case 3: r = exp(v); break;
            case 4: r = log(v); break;
            case 5: r = sqrt(v); break;
            case 6: r = -v; break;
            case 7: r = fabs(v); break;
            case 8: r = erf_approx(v); break;
            case 9: r = 0.5f * v * (1.0f + erf_approx(v * 0.70710678118654752f)); break;
            case 10: r = v >= 0.0f ? v : alpha * v; break;
            case 11: r = v; break;
            case 12: r = 1.0f / v; break;
            case 13: r = floor(v); break;
            case 14: r = ceil(v); break;
            case 15: r = fmax(0.0f, fmin(1.0f, alpha * v + beta)); break;
            case 16: r = v >= 0.0f ? v : alpha * (exp(v) - 1.0f); break;
            case 17: r = v * fmax(0.0f, fmin(1.0f, v / 6.0f + 0.5f)); break;
            case 18: r = v > 0.0f ? v + log(1.0f + exp(-v)) : log(1.0f + exp(v)); break;
            case 19: r = sin(v); break;
            case 20: r = cos(v); break;
            case 21: r = rint(v); break;
            case 22: r = v > 0.0f ? beta * v : beta * (alpha * exp(v) - alpha); break;
            case 23: r = fmax(0.0f, v) + fmin(0.0f, alpha * (exp(v / alpha) - 1.0f)); break;
            case 24: r = v > alpha ? v : 0.0f; break;
            case 25: r = v * tanh(v > 0.0f ? v + log(1.0f + exp(-v)) : log(1.0f + exp(v))); break;
            case 26: r = v / (1.0f + fabs(v)); break;
            case 27: r = v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : v); break;
            case 28: r = v < alpha ? alpha : (v > beta ? beta : v); break;
            case 29: r = alpha * v; break;
            case 30: r = 0.5f * v * (1.0f + tanh(0.7978845608028654f * (v + 0.044715f * v * v * v))); break;
            case 31: r = tan(v); break;
            case 32: r = asin(v); break;
            case 33: r = acos(v); break;
            case 34: r = atan(v); break;
            case 35: r = sinh(v); break;
            case 36: r = cosh(v); break;
            case 37: r = asinh(v); break;
            case 38: r = acosh(v); break;
            case 39: r = atanh(v); break;
            case 40: r = v < -alpha ? v + beta : (v > alpha ? v - beta : 0.0f); break;
            case 41: r = v / (1.0f + exp(-alpha * v)); break;
            default: r = v; break;
            }
            y[yOff + i] = r;
        }

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

        /* Broadcasting binary op. meta = [rank, outDims[rank], aStrides[rank], bStrides[rank]]. */
        KERNEL void binary(GLOBAL const float *a, int aOff, GLOBAL const float *b, int bOff, GLOBAL float *y, int yOff,
                           int count, int op, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int o[2];
            broadcast_offsets(i, meta, 2, o);
            int ia = o[0], ib = o[1];
            float u = a[aOff + ia], v = b[bOff + ib], r;
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
            y[yOff + i] = r;
        }

        /* y[i] = x[offset(i)] for a permutation: meta = [rank, outDims[rank], inStridesPermuted[rank]]. */
        /* Data movement computes where each output element comes from once (the *_source helpers); the float
           kernels move 4-byte elements (float32, int32), the *_bytes kernels elements of `width` bytes at byte
           offsets (bool, int8/16/64, uint*, float16/64). */
        DEVICE void copy_element(GLOBAL const uchar *x, int from, GLOBAL uchar *y, int to, int width) {
            for (int b = 0; b < width; b++) y[to + b] = x[from + b];
        }

        /* Strided views: for each index of the iteration space, y[yBase + sum idx*ys] = x[xBase + sum idx*xs].
           meta = [rank, xBase, yBase, dims[rank], xs[rank], ys[rank]]. Expand (stride 0 on broadcast axes), Slice
           (base and stepped strides), Concat and Split (one launch per part, into or out of an offset view). */
        DEVICE void strided_offsets(int i, GLOBAL const int *meta, int *xo, int *yo) {
            int rank = meta[0], rest = i, xs = meta[1], ys = meta[2];
            for (int axis = rank - 1; axis >= 0; axis--) {
                int d = meta[3 + axis];
                int k = rest % d;
                rest /= d;
                xs += k * meta[3 + rank + axis];
                ys += k * meta[3 + 2 * rank + axis];
            }
            *xo = xs;
            *yo = ys;
        }
        KERNEL void strided_copy(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int count,
                                 GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int xo, yo;
            strided_offsets(i, meta, &xo, &yo);
            y[yOff + yo] = x[xOff + xo];
        }
        KERNEL void strided_copy_bytes(GLOBAL const uchar *x, int xOff, GLOBAL uchar *y, int yOff, int count, int width,
                                       GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int xo, yo;
            strided_offsets(i, meta, &xo, &yo);
            copy_element(x, xOff + xo * width, y, yOff + yo * width, width);
        }

        /* Gather along an axis with int64 indices (negative counts from the end): meta = [axisDim, inner, nIdx].
           An index outside the axis gives -1 and sets status[0]: the element is written as 0 and the backend
           reports the node when it synchronizes. */
        DEVICE int gather_source(int i, GLOBAL const long *idx, int idxOff, GLOBAL const int *meta, GLOBAL int *status) {
            int axisDim = meta[0], inner = meta[1], n = meta[2];
            int in = i % inner, rest = i / inner;
            int j = rest % n, o = rest / n;
            long k = idx[idxOff + j];
            if (k < 0) k += axisDim;
            if (k < 0 || k >= axisDim) {
                status[0] = 1;
                return -1;
            }
            return (o * axisDim + (int)k) * inner + in;
        }
        KERNEL void gather_axis(GLOBAL const float *x, int xOff, GLOBAL const long *idx, int idxOff, GLOBAL float *y,
                                int yOff, int count, GLOBAL const int *meta, GLOBAL int *status) {
            int i = GID0;
            if (i >= count) return;
            int from = gather_source(i, idx, idxOff, meta, status);
            y[yOff + i] = from < 0 ? 0.0f : x[xOff + from];
        }
        KERNEL void gather_axis_bytes(GLOBAL const uchar *x, int xOff, GLOBAL const long *idx, int idxOff, GLOBAL uchar *y,
                                      int yOff, int count, int width, GLOBAL const int *meta, GLOBAL int *status) {
            int i = GID0;
            if (i >= count) return;
            int from = gather_source(i, idx, idxOff, meta, status);
            if (from >= 0) {
                copy_element(x, xOff + from * width, y, yOff + i * width, width);
            } else {
                for (int b = 0; b < width; b++) y[yOff + i * width + b] = 0;
            }
        }

        /* A plain copy of `count` bytes (Identity and the Reshape family on elements that are not 4 bytes). */
        KERNEL void copy_bytes(GLOBAL const uchar *x, int xOff, GLOBAL uchar *y, int yOff, int count) {
            int i = GID0;
            if (i < count) y[yOff + i] = x[xOff + i];
        }

        /* Comparisons with broadcasting (meta as for binary), bool results as bytes: op 0 ==, 1 <, 2 >, 3 <=, 4 >=. */
        KERNEL void compare(GLOBAL const float *a, int aOff, GLOBAL const float *b, int bOff, GLOBAL uchar *y, int yOff,
                            int count, int op, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int o[2];
            broadcast_offsets(i, meta, 2, o);
            int ia = o[0], ib = o[1];
            float u = a[aOff + ia], v = b[bOff + ib];
            int r = op == 0 ? u == v : op == 1 ? u < v : op == 2 ? u > v : op == 3 ? u <= v : u >= v;
            y[yOff + i] = (uchar)r;
        }

        /* Where(cond, x, y) with broadcasting: meta = [rank, dims[rank], condStrides, xStrides, yStrides]. */
        KERNEL void where_select(GLOBAL const uchar *c, int cOff, GLOBAL const float *x, int xOff, GLOBAL const float *y,
                                 int yOff, GLOBAL float *out, int oOff, int count, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int o[3];
            broadcast_offsets(i, meta, 3, o);
            out[oOff + i] = c[cOff + o[0]] ? x[xOff + o[1]] : y[yOff + o[2]];
        }

        /* Where on elements of `width` bytes at byte offsets (every type but float32). */
        KERNEL void where_bytes(GLOBAL const uchar *c, int cOff, GLOBAL const uchar *x, int xOff, GLOBAL const uchar *y,
                                int yOff, GLOBAL uchar *out, int oOff, int count, int width, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int o[3];
            broadcast_offsets(i, meta, 3, o);
            if (c[cOff + o[0]]) {
                copy_element(x, xOff + o[1] * width, out, oOff + i * width, width);
            } else {
                copy_element(y, yOff + o[2] * width, out, oOff + i * width, width);
            }
        }

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

        /* Integer arithmetic with broadcasting (meta as for binary) on 64-bit values: op 0 +, 1 -, 2 *, 3 / (toward
           zero), 4 max, 5 min, 6 modulo with the divisor's sign (Mod), 7 remainder with the dividend's sign
           (Mod fmod=1); a zero divisor gives 0. uint64 (type 7) divides, compares and takes remainders unsigned. */
        KERNEL void binary_int(GLOBAL const uchar *a, int aOff, GLOBAL const uchar *b, int bOff, GLOBAL uchar *y, int yOff,
                               int count, int op, int type, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int o[2];
            broadcast_offsets(i, meta, 2, o);
            int w = int_width(type);
            long u = int_load(a, aOff + o[0] * w, type), v = int_load(b, bOff + o[1] * w, type), r;
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
            int o[2];
            broadcast_offsets(i, meta, 2, o);
            int w = int_width(type);
            long u = int_load(a, aOff + o[0] * w, type), v = int_load(b, bOff + o[1] * w, type);
            int r;
            if (type == 7) {
                ck_u64 uu = (ck_u64)u, vv = (ck_u64)v;
                r = op == 0 ? uu == vv : op == 1 ? uu < vv : op == 2 ? uu > vv : op == 3 ? uu <= vv : uu >= vv;
            } else {
                r = op == 0 ? u == v : op == 1 ? u < v : op == 2 ? u > v : op == 3 ? u <= v : u >= v;
            }
            y[yOff + i] = (uchar)r;
        }

        /* Reductions over any axes: meta = [keptRank, keptDims, keptStrides, reducedRank, reducedDims,
           reducedStrides] (strides into x); op 0 sum, 1 mean, 2 max, 3 min, 4 sum of squares, 5 product, 6 L2 norm.
           NaN propagates. */
        KERNEL void reduce(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int count, int op,
                           GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int kr = meta[0], rest = i, base = 0;
            for (int axis = kr - 1; axis >= 0; axis--) {
                int d = meta[1 + axis];
                base += (rest % d) * meta[1 + kr + axis];
                rest /= d;
            }
            int p = 1 + 2 * kr, rr = meta[p], total = 1;
            for (int axis = 0; axis < rr; axis++) total *= meta[p + 1 + axis];
            /* LogSumExp (op 9) subtracts the largest value first: a pass for it, then the sum. */
            float shift = 0.0f;
            for (int pass = op == 9 ? 0 : 1; pass < 2; pass++) {
                float acc = pass == 0 ? -INFINITY : (op == 2 ? -INFINITY : (op == 3 ? INFINITY : (op == 5 ? 1.0f : 0.0f)));
                for (int j = 0; j < total; j++) {
                    int r = j, offset = base;
                    for (int axis = rr - 1; axis >= 0; axis--) {
                        int d = meta[p + 1 + axis];
                        offset += (r % d) * meta[p + 1 + rr + axis];
                        r /= d;
                    }
                    float v = x[xOff + offset];
                    if (pass == 0) acc = v > acc ? v : acc;
                    else if (op == 2) acc = (v > acc || v != v) ? v : acc;
                    else if (op == 3) acc = (v < acc || v != v) ? v : acc;
                    else if (op == 4 || op == 6) acc += v * v;
                    else if (op == 5) acc *= v;
                    else if (op == 7) acc += fabs(v);
                    else if (op == 9) acc += exp(v - shift);
                    else acc += v;
                }
                if (pass == 0) {
                    shift = isinf(acc) ? 0.0f : acc;
                    continue;
                }
                y[yOff + i] = op == 1 ? acc / (float)total
                              : op == 6 ? sqrt(acc)
                              : op == 8 ? log(acc)
                              : op == 9 ? log(acc) + shift : acc;
            }
        }

        /* And, Or, Xor on bool bytes with broadcasting (meta as for binary); Not when op is 3 (b unused). */
        KERNEL void logic(GLOBAL const uchar *a, int aOff, GLOBAL const uchar *b, int bOff, GLOBAL uchar *y, int yOff,
                          int count, int op, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int o[2];
            broadcast_offsets(i, meta, 2, o);
            int ia = o[0], ib = o[1];
            int u = a[aOff + ia] != 0, v = op == 3 ? 0 : b[bOff + ib] != 0;
            y[yOff + i] = (uchar)(op == 0 ? (u & v) : op == 1 ? (u | v) : op == 2 ? (u ^ v) : !u);
        }

        /* ArgMax/ArgMin along one axis (x viewed as [outer, n, inner]); ties go to the first index, or the last
           when `last` is set. int64 results. */
        KERNEL void arg_reduce(GLOBAL const float *x, int xOff, GLOBAL long *y, int yOff, int count, int n, int inner,
                               int isMax, int last) {
            int i = GID0;
            if (i >= count) return;
            GLOBAL const float *p = x + xOff + (i / inner) * n * inner + i % inner;
            float best = p[0];
            int bestIndex = 0;
            for (int k = 1; k < n; k++) {
                float v = p[k * inner];
                int better = isMax ? (last ? v >= best : v > best) : (last ? v <= best : v < best);
                if (better) { best = v; bestIndex = k; }
            }
            y[yOff + i] = (long)bestIndex;
        }

        /* Tile: y[idx] = x[idx mod inDims]; meta = [rank, outDims[rank], inDims[rank], inStrides[rank]]. */
        /* meta = [rank, outDims[rank], inDims[rank], inStrides[rank]]. */
        DEVICE int tile_source(int i, GLOBAL const int *meta) {
            int rank = meta[0], rest = i, offset = 0;
            for (int axis = rank - 1; axis >= 0; axis--) {
                int d = meta[1 + axis];
                offset += ((rest % d) % meta[1 + rank + axis]) * meta[1 + 2 * rank + axis];
                rest /= d;
            }
            return offset;
        }
        KERNEL void tile(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int count, GLOBAL const int *meta) {
            int i = GID0;
            if (i < count) y[yOff + i] = x[xOff + tile_source(i, meta)];
        }
        KERNEL void tile_bytes(GLOBAL const uchar *x, int xOff, GLOBAL uchar *y, int yOff, int count, int width,
                               GLOBAL const int *meta) {
            int i = GID0;
            if (i < count) copy_element(x, xOff + tile_source(i, meta) * width, y, yOff + i * width, width);
        }

        /* Pad; meta = [rank, mode (0 constant, 1 reflect, 2 edge, 3 wrap), outDims[rank], inDims[rank],
           inStrides[rank], padsBegin[rank]]. */
        KERNEL void pad(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int count, float value,
                        GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int rank = meta[0], mode = meta[1], rest = i, offset = 0;
            for (int axis = rank - 1; axis >= 0; axis--) {
                int d = meta[2 + axis], inDim = meta[2 + rank + axis];
                int c = rest % d - meta[2 + 3 * rank + axis];
                rest /= d;
                if (c < 0 || c >= inDim) {
                    if (mode == 0) { y[yOff + i] = value; return; }
                    if (mode == 1) {
                        int period = 2 * (inDim - 1);
                        c = ((c % period) + period) % period;
                        if (c >= inDim) c = period - c;
                    } else if (mode == 2) {
                        c = c < 0 ? 0 : inDim - 1;
                    } else {
                        c = ((c % inDim) + inDim) % inDim;
                    }
                }
                offset += c * meta[2 + 2 * rank + axis];
            }
            y[yOff + i] = x[xOff + offset];
        }

        /* Resize (nearest and N-linear) from per-axis tables made on the host. meta = [rank, extrapolation bits,
           outDims[rank], inStrides[rank], tableStart[rank]]; at tableStart[a], four rows of outDims[a] ints: low
           index, high index, outside flag, weight of high (float bits). Corners with weight 0 are skipped. */
        KERNEL void resize(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int count, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int rank = meta[0];
            int index[8];
            int rest = i;
            for (int axis = rank - 1; axis >= 0; axis--) {
                int d = meta[2 + axis];
                index[axis] = rest % d;
                rest /= d;
            }
            for (int axis = 0; axis < rank; axis++) {
                int t = meta[2 + 2 * rank + axis], d = meta[2 + axis];
                if (meta[t + 2 * d + index[axis]]) { y[yOff + i] = INT_AS_FLOAT(meta[1]); return; }
            }
            float value = 0.0f;
            for (int corner = 0; corner < (1 << rank); corner++) {
                float weight = 1.0f;
                int offset = 0;
                for (int axis = 0; axis < rank; axis++) {
                    int t = meta[2 + 2 * rank + axis], d = meta[2 + axis], k = index[axis];
                    float w = INT_AS_FLOAT(meta[t + 3 * d + k]);
                    if (corner & (1 << axis)) {
                        weight *= w;
                        offset += meta[t + d + k] * meta[2 + rank + axis];
                    } else {
                        weight *= 1.0f - w;
                        offset += meta[t + k] * meta[2 + rank + axis];
                    }
                    if (weight == 0.0f) break;
                }
                if (weight != 0.0f) value += weight * x[xOff + offset];
            }
            y[yOff + i] = value;
        }

        /* Transposed convolution over up to three spatial axes (1-D and 2-D run with unit leading axes), one
           work-item per output element (n, m, od, oy, ox), W laid out [C, M/group, KD, KH, KW]; meta as conv3d. */
        KERNEL void conv_transpose3d(GLOBAL const float *x, int xOff, GLOBAL const float *w, int wOff, GLOBAL const float *b,
                                     int bOff, int hasBias, GLOBAL float *y, int yOff, int count, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int C = meta[0], D = meta[1], H = meta[2], W = meta[3], M = meta[4], OD = meta[5], OH = meta[6], OW = meta[7];
            int KD = meta[8], KH = meta[9], KW = meta[10], SD = meta[11], SY = meta[12], SX = meta[13];
            int DD = meta[14], DY = meta[15], DX = meta[16], PD = meta[17], PY = meta[18], PX = meta[19], G = meta[20];
            int ox = i % OW, oy = (i / OW) % OH, od = (i / (OW * OH)) % OD, m = (i / (OW * OH * OD)) % M;
            int n = i / (OW * OH * OD * M);
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

        /* float16 (IEEE binary16 bits) <-> float32 in integer arithmetic, so that no half-precision extension is
           needed: float16 tensors are stored as half and computed in float32 (nodes widened by the runtime).
           Rounding to half is to nearest even; overflow gives infinity; NaN stays NaN. */
        DEVICE float ck_half_to_float(ck_u32 h) {
            ck_u32 sign = (h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu, bits;
            if (exponent == 0x1fu) {
                bits = sign | 0x7f800000u | (mantissa << 13);
            } else if (exponent == 0u) {
                if (mantissa == 0u) {
                    bits = sign;
                } else {
                    int shift = 0;
                    while ((mantissa & 0x400u) == 0u) { mantissa <<= 1; shift++; }
                    mantissa &= 0x3ffu;
                    bits = sign | ((ck_u32)(127 - 15 - shift + 1) << 23) | (mantissa << 13);
                }
            } else {
                bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
            }
            return INT_AS_FLOAT((int)bits);
        }
        DEVICE ck_u32 ck_float_to_half(float f) {
            ck_u32 bits = FLOAT_AS_UINT(f);
            ck_u32 sign = (bits >> 16) & 0x8000u, exponent = (bits >> 23) & 0xffu, mantissa = bits & 0x7fffffu;
            if (exponent == 0xffu) return sign | 0x7c00u | (mantissa != 0u ? 0x200u | (mantissa >> 13) : 0u);
            int e = (int)exponent - 127 + 15;
            if (e >= 0x1f) return sign | 0x7c00u;
            if (e <= 0) {
                if (e < -10) return sign;
                ck_u32 full = mantissa | 0x800000u;
                int shift = 14 - e;
                ck_u32 value = full >> shift, rest = full & ((1u << shift) - 1u), tie = 1u << (shift - 1);
                if (rest > tie || (rest == tie && (value & 1u) != 0u)) value++;
                return sign | value;
            }
            ck_u32 value = ((ck_u32)e << 10) | (mantissa >> 13), rest = mantissa & 0x1fffu;
            if (rest > 0x1000u || (rest == 0x1000u && (value & 1u) != 0u)) value++;
            return sign | value;
        }
        KERNEL void cast_f16_f32(GLOBAL const ck_u16 *x, int xOff, GLOBAL float *y, int yOff, int count) {
            int i = GID0;
            if (i < count) y[yOff + i] = ck_half_to_float((ck_u32)x[xOff + i]);
        }
        KERNEL void cast_f32_f16(GLOBAL const float *x, int xOff, GLOBAL ck_u16 *y, int yOff, int count) {
            int i = GID0;
            if (i < count) y[yOff + i] = (ck_u16)ck_float_to_half(x[xOff + i]);
        }
        /* bfloat16: the upper half of a float32; narrowing rounds half to even, NaN stays a quiet NaN. */
        KERNEL void cast_bf16_f32(GLOBAL const ck_u16 *x, int xOff, GLOBAL float *y, int yOff, int count) {
            int i = GID0;
            if (i < count) y[yOff + i] = INT_AS_FLOAT((int)((ck_u32)x[xOff + i] << 16));
        }
        KERNEL void cast_f32_bf16(GLOBAL const float *x, int xOff, GLOBAL ck_u16 *y, int yOff, int count) {
            int i = GID0;
            if (i >= count) return;
            ck_u32 bits = FLOAT_AS_UINT(x[xOff + i]);
            ck_u32 out = (bits & 0x7fffffffu) > 0x7f800000u ? ((bits >> 16) | 0x40u)
                                                              : ((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
            y[yOff + i] = (ck_u16)out;
        }

        /* The quantized operators on 8-bit data (bytes; `isSigned` reads them as int8). Parameters per tensor
           (axisLen 1) or per axis (index (i / inner) % axisLen). Quantizing divides in float32, rounds half to
           even, adds the zero point and saturates (NaN to the low end), as the CPU kernels do. */
        DEVICE int ck_byte(GLOBAL const uchar *p, int i, int isSigned) {
            int v = (int)p[i];
            return (isSigned != 0 && v > 127) ? v - 256 : v;
        }
        KERNEL void dequantize_8(GLOBAL const uchar *x, int xOff, int xSigned, GLOBAL const float *scale, int sOff,
                                 GLOBAL const uchar *zero, int zOff, int hasZero, GLOBAL float *y, int yOff,
                                 int count, int axisLen, int inner) {
            int i = GID0;
            if (i >= count) return;
            int p = axisLen > 1 ? (i / inner) % axisLen : 0;
            int z = hasZero != 0 ? ck_byte(zero, zOff + p, xSigned) : 0;
            y[yOff + i] = ((float)ck_byte(x, xOff + i, xSigned) - (float)z) * scale[sOff + p];
        }
        KERNEL void quantize_8(GLOBAL const float *x, int xOff, GLOBAL const float *scale, int sOff,
                               GLOBAL const uchar *zero, int zOff, int hasZero, int ySigned, GLOBAL uchar *y,
                               int yOff, int count, int axisLen, int inner) {
            int i = GID0;
            if (i >= count) return;
            int p = axisLen > 1 ? (i / inner) % axisLen : 0;
            int z = hasZero != 0 ? ck_byte(zero, zOff + p, ySigned) : 0;
            float lo = ySigned != 0 ? -128.0f : 0.0f, hi = ySigned != 0 ? 127.0f : 255.0f;
            float q = rint(x[xOff + i] / scale[sOff + p]) + (float)z;
            q = (q >= lo) ? (q > hi ? hi : q) : lo;
            y[yOff + i] = (uchar)((int)q & 255);
        }
        /* MatMulInteger / QLinearMatMul: A [rows x k] bytes times B [k x n] bytes, exact int32 sums (wrapping);
           A's zero point per tensor, B's per tensor or per column (bzCount 1 or n, 0 when absent). With
           `requantize`: y = saturate(rint(sum * a_scale * b_scale / y_scale) + y_zero) as bytes. */
        KERNEL void matmul_integer(GLOBAL const uchar *a, int aOff, int aSigned, GLOBAL const uchar *b, int bOff,
                                   int bSigned, GLOBAL const uchar *az, int azOff, int hasAz, GLOBAL const uchar *bz,
                                   int bzOff, int bzCount, GLOBAL int *y, int yOff, int rows, int n, int k) {
            int col = GID0, row = GID1;
            if (col >= n || row >= rows) return;
            int za = hasAz != 0 ? ck_byte(az, azOff, aSigned) : 0;
            int zb = bzCount > 0 ? ck_byte(bz, bzOff + (bzCount > 1 ? col : 0), bSigned) : 0;
            ck_u32 acc = 0u;
            for (int t = 0; t < k; t++) {
                acc += (ck_u32)((ck_byte(a, aOff + row * k + t, aSigned) - za) * (ck_byte(b, bOff + t * n + col, bSigned) - zb));
            }
            y[yOff + row * n + col] = (int)acc;
        }
        KERNEL void qlinear_matmul(GLOBAL const uchar *a, int aOff, int aSigned, GLOBAL const float *as, int asOff,
                                   GLOBAL const uchar *az, int azOff, GLOBAL const uchar *b, int bOff, int bSigned,
                                   GLOBAL const float *bs, int bsOff, int bsCount, GLOBAL const uchar *bz, int bzOff,
                                   int bzCount, GLOBAL const float *ys, int ysOff, GLOBAL const uchar *yz, int yzOff,
                                   int ySigned, GLOBAL uchar *y, int yOff, int rows, int n, int k) {
            int col = GID0, row = GID1;
            if (col >= n || row >= rows) return;
            int za = ck_byte(az, azOff, aSigned);
            int zb = ck_byte(bz, bzOff + (bzCount > 1 ? col : 0), bSigned);
            ck_u32 acc = 0u;
            for (int t = 0; t < k; t++) {
                acc += (ck_u32)((ck_byte(a, aOff + row * k + t, aSigned) - za) * (ck_byte(b, bOff + t * n + col, bSigned) - zb));
            }
            float m = (as[asOff] * bs[bsOff + (bsCount > 1 ? col : 0)]) / ys[ysOff];
            float lo = ySigned != 0 ? -128.0f : 0.0f, hi = ySigned != 0 ? 127.0f : 255.0f;
            float q = rint((float)(int)acc * m) + (float)ck_byte(yz, yzOff, ySigned);
            q = (q >= lo) ? (q > hi ? hi : q) : lo;
            y[yOff + row * n + col] = (uchar)((int)q & 255);
        }

        /* Cast between float32 and int64, int32 or bool (bytes); float to integer truncates toward zero. */
        KERNEL void cast_f32_i64(GLOBAL const float *x, int xOff, GLOBAL long *y, int yOff, int count) {
            int i = GID0;
            if (i < count) y[yOff + i] = (long)x[xOff + i];
        }
        KERNEL void cast_i64_f32(GLOBAL const long *x, int xOff, GLOBAL float *y, int yOff, int count) {
            int i = GID0;
            if (i < count) y[yOff + i] = (float)x[xOff + i];
        }
        KERNEL void cast_f32_i32(GLOBAL const float *x, int xOff, GLOBAL int *y, int yOff, int count) {
            int i = GID0;
            if (i < count) y[yOff + i] = (int)x[xOff + i];
        }
        KERNEL void cast_i32_f32(GLOBAL const int *x, int xOff, GLOBAL float *y, int yOff, int count) {
            int i = GID0;
            if (i < count) y[yOff + i] = (float)x[xOff + i];
        }
        KERNEL void cast_f32_u8(GLOBAL const float *x, int xOff, GLOBAL uchar *y, int yOff, int count) {
            int i = GID0;
            if (i < count) y[yOff + i] = (uchar)(x[xOff + i] != 0.0f);
        }
        KERNEL void cast_u8_f32(GLOBAL const uchar *x, int xOff, GLOBAL float *y, int yOff, int count) {
            int i = GID0;
            if (i < count) y[yOff + i] = x[xOff + i] ? 1.0f : 0.0f;
        }

        /* Direct convolution over up to three spatial axes (1-D and 2-D run with unit leading axes), one work-item
           per output element (n, m, od, oy, ox); geometry in meta:
           [C, D, H, W, M, OD, OH, OW, KD, KH, KW, SD, SY, SX, DD, DY, DX, PD, PY, PX, group]. */
        KERNEL void conv3d(GLOBAL const float *x, int xOff, GLOBAL const float *w, int wOff, GLOBAL const float *b, int bOff,
                           int hasBias, GLOBAL float *y, int yOff, int count, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int C = meta[0], D = meta[1], H = meta[2], W = meta[3], M = meta[4], OD = meta[5], OH = meta[6], OW = meta[7];
            int KD = meta[8], KH = meta[9], KW = meta[10], SD = meta[11], SY = meta[12], SX = meta[13];
            int DD = meta[14], DY = meta[15], DX = meta[16], PD = meta[17], PY = meta[18], PX = meta[19], G = meta[20];
            int ox = i % OW, oy = (i / OW) % OH, od = (i / (OW * OH)) % OD, m = (i / (OW * OH * OD)) % M;
            int n = i / (OW * OH * OD * M);
            int cg = C / G, mg = M / G, g = m / mg;
            float acc = hasBias ? b[bOff + m] : 0.0f;
            for (int c = 0; c < cg; c++) {
                GLOBAL const float *xc = x + xOff + ((n * C) + g * cg + c) * D * H * W;
                GLOBAL const float *wc = w + wOff + (m * cg + c) * KD * KH * KW;
                for (int kd = 0; kd < KD; kd++) {
                    int id = od * SD - PD + kd * DD;
                    if (id < 0 || id >= D) continue;
                    for (int ky = 0; ky < KH; ky++) {
                        int iy = oy * SY - PY + ky * DY;
                        if (iy < 0 || iy >= H) continue;
                        for (int kx = 0; kx < KW; kx++) {
                            int ix = ox * SX - PX + kx * DX;
                            if (ix < 0 || ix >= W) continue;
                            acc += xc[(id * H + iy) * W + ix] * wc[(kd * KH + ky) * KW + kx];
                        }
                    }
                }
            }
            y[yOff + i] = acc;
        }

        /* im2col for convolution as a GEMM (group 1): cols[n][(c, kd, ky, kx)][(od, oy, ox)] from x, zero outside
           it, one work-item per column element; meta as conv3d. */
        KERNEL void im2col3d(GLOBAL const float *x, int xOff, GLOBAL float *cols, int cOff, int count,
                             GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int C = meta[0], D = meta[1], H = meta[2], W = meta[3], OD = meta[5], OH = meta[6], OW = meta[7];
            int KD = meta[8], KH = meta[9], KW = meta[10], SD = meta[11], SY = meta[12], SX = meta[13];
            int DD = meta[14], DY = meta[15], DX = meta[16], PD = meta[17], PY = meta[18], PX = meta[19];
            int spatial = OD * OH * OW, taps = KD * KH * KW;
            int o = i % spatial, r = (i / spatial) % (C * taps), n = i / (spatial * C * taps);
            int ox = o % OW, oy = (o / OW) % OH, od = o / (OW * OH);
            int kx = r % KW, ky = (r / KW) % KH, kd = (r / (KW * KH)) % KD, c = r / taps;
            int id = od * SD - PD + kd * DD, iy = oy * SY - PY + ky * DY, ix = ox * SX - PX + kx * DX;
            float v = 0.0f;
            if (id >= 0 && id < D && iy >= 0 && iy < H && ix >= 0 && ix < W) {
                v = x[xOff + (((n * C + c) * D + id) * H + iy) * W + ix];
            }
            cols[cOff + i] = v;
        }

        /* Max/average pooling over up to three spatial axes, one work-item per output; the first largest value
           wins (its flat input index goes to `indices` when hasIndices, spatial part column-major when asked).
           meta: [D, H, W, OD, OH, OW, KD, KH, KW, SD, SY, SX, DD, DY, DX, PD, PY, PX, PED, PEY, PEX, isMax,
           includePad, columnMajor]. */
        KERNEL void pool3d(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, GLOBAL long *indices, int iOff,
                           int hasIndices, int count, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int D = meta[0], H = meta[1], W = meta[2], OD = meta[3], OH = meta[4], OW = meta[5];
            int KD = meta[6], KH = meta[7], KW = meta[8], SD = meta[9], SY = meta[10], SX = meta[11];
            int DD = meta[12], DY = meta[13], DX = meta[14], PD = meta[15], PY = meta[16], PX = meta[17];
            int PED = meta[18], PEY = meta[19], PEX = meta[20], isMax = meta[21], includePad = meta[22];
            int ox = i % OW, oy = (i / OW) % OH, od = (i / (OW * OH)) % OD, p = i / (OW * OH * OD);
            GLOBAL const float *xp = x + xOff + p * D * H * W;
            float best = -INFINITY, sum = 0.0f;
            int valid = 0, padded = 0, bestAt = -1;
            for (int kd = 0; kd < KD; kd++) {
                int id = od * SD - PD + kd * DD;
                for (int ky = 0; ky < KH; ky++) {
                    int iy = oy * SY - PY + ky * DY;
                    for (int kx = 0; kx < KW; kx++) {
                        int ix = ox * SX - PX + kx * DX;
                        if (id >= 0 && id < D && iy >= 0 && iy < H && ix >= 0 && ix < W) {
                            int at = (id * H + iy) * W + ix;
                            float v = xp[at];
                            if (v > best || bestAt < 0) { best = v; bestAt = at; }
                            sum += meta[24] ? pow(fabs(v), (float)meta[24]) : v;
                            valid++;
                        } else if (id >= -PD && id < D + PED && iy >= -PY && iy < H + PEY && ix >= -PX && ix < W + PEX) {
                            padded++;
                        }
                    }
                }
            }
            int divisor = includePad ? valid + padded : valid;
            /* meta[24] > 0: LpPool of that p, (sum of |v|^p)^(1/p) over the window (padding adds nothing). */
            y[yOff + i] = meta[24] ? pow(sum, 1.0f / (float)meta[24]) : (isMax ? best : (divisor > 0 ? sum / divisor : 0.0f));
            if (hasIndices) {
                int at = bestAt < 0 ? 0 : bestAt;
                if (meta[23]) at = at / (W * H) + ((at / W) % H) * D + (at % W) * D * H;
                indices[iOff + i] = (long)p * D * H * W + at;
            }
        }

        /* One work-item per (n, c) plane: global average or max over `spatial` values. */
        KERNEL void global_pool(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int planes, int spatial, int isMax) {
            int p = GID0;
            if (p >= planes) return;
            GLOBAL const float *xp = x + xOff + p * spatial;
            float best = -INFINITY, sum = 0.0f;
            for (int i = 0; i < spatial; i++) { best = fmax(best, xp[i]); sum += xp[i]; }
            y[yOff + p] = isMax ? best : sum / spatial;
        }

        /* Inference batch normalization, one work-item per element; per-channel tensors at sOff..vOff. */
        KERNEL void batchnorm(GLOBAL const float *x, int xOff, GLOBAL const float *s, int sOff, GLOBAL const float *b, int bOff,
                              GLOBAL const float *mean, int mOff, GLOBAL const float *var, int vOff, GLOBAL float *y, int yOff,
                              int count, int channels, int spatial, float epsilon) {
            int i = GID0;
            if (i >= count) return;
            int c = (i / spatial) % channels;
            float a = s[sOff + c] / sqrt(var[vOff + c] + epsilon);
            y[yOff + i] = (x[xOff + i] - mean[mOff + c]) * a + b[bOff + c];
        }

        /* Softmax (or log-softmax) along an axis of n values `inner` apart, one work-item per (outer, inner) pair. */
        KERNEL void softmax_axis(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int outer, int n, int inner,
                                 int logarithm) {
            int r = GID0;
            if (r >= outer * inner) return;
            int base = (r / inner) * n * inner + r % inner;
            GLOBAL const float *xr = x + xOff + base;
            GLOBAL float *yr = y + yOff + base;
            float m = xr[0];
            for (int i = 1; i < n; i++) m = fmax(m, xr[i * inner]);
            float sum = 0.0f;
            for (int i = 0; i < n; i++) sum += exp(xr[i * inner] - m);
            for (int i = 0; i < n; i++) yr[i * inner] = logarithm ? xr[i * inner] - m - log(sum) : exp(xr[i * inner] - m) / sum;
        }

        /* One work-item per row: (x - mean) / sqrt(var + eps) * scale + bias over n contiguous values. */
        KERNEL void layernorm_rows(GLOBAL const float *x, int xOff, GLOBAL const float *s, int sOff, GLOBAL const float *b,
                                   int bOff, int hasBias, GLOBAL float *y, int yOff, int rows, int n, float epsilon) {
            int r = GID0;
            if (r >= rows) return;
            GLOBAL const float *xr = x + xOff + r * n;
            float mean = 0.0f;
            for (int i = 0; i < n; i++) mean += xr[i];
            mean /= n;
            float var = 0.0f;
            for (int i = 0; i < n; i++) var += (xr[i] - mean) * (xr[i] - mean);
            float inv = 1.0f / sqrt(var / n + epsilon);
            for (int i = 0; i < n; i++) {
                float v = (xr[i] - mean) * inv * s[sOff + i];
                y[yOff + r * n + i] = hasBias ? v + b[bOff + i] : v;
            }
        }

        /* LayerNormalization's optional outputs: per-row mean and 1/sqrt(var + epsilon), as layernorm_rows. */
        KERNEL void layernorm_stats(GLOBAL const float *x, int xOff, GLOBAL float *meanOut, int mOff, GLOBAL float *invOut,
                                    int iOff, int hasInv, int rows, int n, float epsilon) {
            int r = GID0;
            if (r >= rows) return;
            GLOBAL const float *xr = x + xOff + r * n;
            float mean = 0.0f;
            for (int i = 0; i < n; i++) mean += xr[i];
            mean /= n;
            float var = 0.0f;
            for (int i = 0; i < n; i++) var += (xr[i] - mean) * (xr[i] - mean);
            meanOut[mOff + r] = mean;
            if (hasInv) invOut[iOff + r] = 1.0f / sqrt(var / n + epsilon);
        }

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
        /* Indexing with checked indices (int64): an index outside [-extent, extent) sets status[0] and its element
           is neither read nor written; the backend reports the node when it synchronizes. */
        DEVICE int checked_index(long k, int extent, GLOBAL int *status) {
            if (k < 0) k += extent;
            if (k < 0 || k >= extent) {
                status[0] = 1;
                return -1;
            }
            return (int)k;
        }

        /* GatherElements/ScatterElements: the data offset for element i of indices; meta = [rank, axis, axisExtent,
           indexDims[rank], dataStrides[rank]]. */
        DEVICE int elements_offset(int i, GLOBAL const long *idx, int idxOff, GLOBAL const int *meta,
                                   GLOBAL int *status) {
            int rank = meta[0], axis = meta[1], rest = i, offset = 0;
            for (int a = rank - 1; a >= 0; a--) {
                int d = meta[3 + a];
                int k = rest % d;
                rest /= d;
                if (a == axis) {
                    k = checked_index(idx[idxOff + i], meta[2], status);
                    if (k < 0) return -1;
                }
                offset += k * meta[3 + rank + a];
            }
            return offset;
        }
        KERNEL void gather_elements_bytes(GLOBAL const uchar *x, int xOff, GLOBAL const long *idx, int idxOff,
                                          GLOBAL uchar *y, int yOff, int count, int width, GLOBAL const int *meta,
                                          GLOBAL int *status) {
            int i = GID0;
            if (i >= count) return;
            int from = elements_offset(i, idx, idxOff, meta, status);
            if (from >= 0) {
                copy_element(x, xOff + from * width, y, yOff + i * width, width);
            } else {
                for (int b = 0; b < width; b++) y[yOff + i * width + b] = 0;
            }
        }
        KERNEL void scatter_elements_bytes(GLOBAL const uchar *u, int uOff, GLOBAL const long *idx, int idxOff,
                                           GLOBAL uchar *y, int yOff, int count, int width, GLOBAL const int *meta,
                                           GLOBAL int *status) {
            int i = GID0;
            if (i >= count) return;
            int to = elements_offset(i, idx, idxOff, meta, status);
            if (to >= 0) copy_element(u, uOff + i * width, y, yOff + to * width, width);
        }

        /* GatherND/ScatterND: the data offset of index tuple t; meta = [tupleLength, tuplesPerBatch, sliceCount,
           batchStride, indexedDims[tupleLength], indexedStrides[tupleLength]]. */
        DEVICE int tuple_offset(int t, GLOBAL const long *idx, int idxOff, GLOBAL const int *meta, GLOBAL int *status) {
            int n = meta[0];
            int offset = (t / meta[1]) * meta[3];
            for (int j = 0; j < n; j++) {
                int k = checked_index(idx[idxOff + t * n + j], meta[4 + j], status);
                if (k < 0) return -1;
                offset += k * meta[4 + n + j];
            }
            return offset;
        }
        KERNEL void gather_nd_bytes(GLOBAL const uchar *x, int xOff, GLOBAL const long *idx, int idxOff,
                                    GLOBAL uchar *y, int yOff, int count, int width, GLOBAL const int *meta,
                                    GLOBAL int *status) {
            int i = GID0;
            if (i >= count) return;
            int slice = meta[2];
            int from = tuple_offset(i / slice, idx, idxOff, meta, status);
            if (from >= 0) {
                copy_element(x, xOff + (from + i % slice) * width, y, yOff + i * width, width);
            } else {
                for (int b = 0; b < width; b++) y[yOff + i * width + b] = 0;
            }
        }
        KERNEL void scatter_nd_bytes(GLOBAL const uchar *u, int uOff, GLOBAL const long *idx, int idxOff,
                                     GLOBAL uchar *y, int yOff, int count, int width, GLOBAL const int *meta,
                                     GLOBAL int *status) {
            int i = GID0;
            if (i >= count) return;
            int slice = meta[2];
            int to = tuple_offset(i / slice, idx, idxOff, meta, status);
            if (to >= 0) copy_element(u, uOff + i * width, y, yOff + (to + i % slice) * width, width);
        }

        /* Trilu on the last two axes: keep element (r, c) when c - r >= k (upper) or c - r <= k (lower), else 0. k is
           kConst, or read from kp[kOff] when hasK (clamped to the matrix: beyond it all elements are kept or zeroed). */
        KERNEL void trilu_bytes(GLOBAL const uchar *x, int xOff, GLOBAL uchar *y, int yOff, int count, int width,
                                int rows, int cols, int kConst, int upper, GLOBAL const long *kp, int kOff, int hasK) {
            int i = GID0;
            if (i >= count) return;
            long kl = hasK ? kp[kOff] : (long)kConst;
            int k = kl > cols + 1 ? cols + 1 : (kl < -rows - 1 ? -rows - 1 : (int)kl);
            int c = i % cols, r = (i / cols) % rows;
            int keep = upper ? (c - r >= k) : (c - r <= k);
            for (int b = 0; b < width; b++) y[yOff + i * width + b] = keep ? x[xOff + i * width + b] : 0;
        }

        /* CumSum along an axis: one work-item per line of n elements `inner` apart, summed in order. */
        KERNEL void cumsum_f32(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int lines, int n, int inner,
                               int exclusive, int reverse) {
            int l = GID0;
            if (l >= lines) return;
            int base = (l / inner) * n * inner + l % inner;
            float running = 0.0f;
            for (int s = 0; s < n; s++) {
                int at = base + (reverse ? n - 1 - s : s) * inner;
                float v = x[xOff + at];
                if (!exclusive) running += v;
                y[yOff + at] = running;
                if (exclusive) running += v;
            }
        }

        /* IsNaN (mode 0) and IsInf (mode 1: both signs, 2: +inf only, 3: -inf only, 4: neither) as bytes. */
        KERNEL void float_class(GLOBAL const float *x, int xOff, GLOBAL uchar *y, int yOff, int count, int mode) {
            int i = GID0;
            if (i >= count) return;
            float v = x[xOff + i];
            int infinite = isinf(v);
            y[yOff + i] = (uchar)(mode == 0 ? isnan(v) != 0
                                  : mode == 1 ? infinite != 0
                                  : mode == 2 ? (infinite != 0 && v > 0.0f)
                                  : mode == 3 ? (infinite != 0 && v < 0.0f) : 0);
        }

        /* Casts between the integer types and bool. */
        KERNEL void cast_i64_u8(GLOBAL const long *x, int xOff, GLOBAL uchar *y, int yOff, int count) {
            int i = GID0;
            if (i < count) y[yOff + i] = (uchar)(x[xOff + i] != 0);
        }
        KERNEL void cast_i32_u8(GLOBAL const int *x, int xOff, GLOBAL uchar *y, int yOff, int count) {
            int i = GID0;
            if (i < count) y[yOff + i] = (uchar)(x[xOff + i] != 0);
        }
        KERNEL void cast_u8_i64(GLOBAL const uchar *x, int xOff, GLOBAL long *y, int yOff, int count) {
            int i = GID0;
            if (i < count) y[yOff + i] = x[xOff + i] ? 1 : 0;
        }
        KERNEL void cast_u8_i32(GLOBAL const uchar *x, int xOff, GLOBAL int *y, int yOff, int count) {
            int i = GID0;
            if (i < count) y[yOff + i] = x[xOff + i] ? 1 : 0;
        }
        KERNEL void cast_i64_i32(GLOBAL const long *x, int xOff, GLOBAL int *y, int yOff, int count) {
            int i = GID0;
            if (i < count) y[yOff + i] = (int)x[xOff + i];
        }
        KERNEL void cast_i32_i64(GLOBAL const int *x, int xOff, GLOBAL long *y, int yOff, int count) {
            int i = GID0;
            if (i < count) y[yOff + i] = (long)x[xOff + i];
        }
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

        /* Hardmax (mode 0) and LpNormalization (mode 1: L1, 2: L2) along an axis: one work-item per line of n
           elements `inner` apart. */
        KERNEL void axis_lines(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int lines, int n, int inner,
                               int mode) {
            int l = GID0;
            if (l >= lines) return;
            int base = (l / inner) * n * inner + l % inner;
            if (mode == 0) {
                int best = 0;
                float bestValue = x[xOff + base];
                for (int s = 1; s < n; s++) {
                    float v = x[xOff + base + s * inner];
                    if (v > bestValue) {
                        best = s;
                        bestValue = v;
                    }
                }
                for (int s = 0; s < n; s++) y[yOff + base + s * inner] = s == best ? 1.0f : 0.0f;
                return;
            }
            float norm = 0.0f;
            for (int s = 0; s < n; s++) {
                float v = x[xOff + base + s * inner];
                norm += mode == 1 ? fabs(v) : v * v;
            }
            if (mode == 2) norm = sqrt(norm);
            for (int s = 0; s < n; s++) {
                float v = x[xOff + base + s * inner];
                y[yOff + base + s * inner] = norm == 0.0f ? 0.0f : v / norm;
            }
        }
        /* TopK along an axis: one work-item per line of n values `inner` apart; output s is the best element that
           ranks after output s - 1 (values first, ties to the lower index; NaN above every number when largest,
           below when smallest), so no scratch is needed: O(n·k) per line. */
        DEVICE int topk_before(float a, int ai, float b, int bi, int largest) {
            int an = a != a, bn = b != b;
            if (an || bn) {
                if (an && bn) return ai < bi;
                return largest ? an : bn;
            }
            if (a != b) return largest ? a > b : a < b;
            return ai < bi;
        }
        KERNEL void topk_lines(GLOBAL const float *x, int xOff, GLOBAL float *values, int vOff, GLOBAL long *indices,
                               int iOff, int lines, int n, int inner, int k, int largest) {
            int l = GID0;
            if (l >= lines) return;
            int o = l / inner, in = l % inner;
            int base = o * n * inner + in, outBase = o * k * inner + in;
            float pv = 0.0f;
            int pi = -1;
            for (int s = 0; s < k; s++) {
                int best = -1;
                float bv = 0.0f;
                for (int j = 0; j < n; j++) {
                    float v = x[xOff + base + j * inner];
                    if (pi >= 0 && !topk_before(pv, pi, v, j, largest)) continue;
                    if (best < 0 || topk_before(v, j, bv, best, largest)) {
                        best = j;
                        bv = v;
                    }
                }
                values[vOff + outBase + s * inner] = bv;
                indices[iOff + outBase + s * inner] = (long)best;
                pv = bv;
                pi = best;
            }
        }
        /* GridSample (rank 1-3): one work-item per (image, channel, output point), as the CPU kernel computes it
           (PyTorch's grid_sample). meta = [N, C, rank, points, mode (0 nearest, 1 linear, 2 cubic), padding (0 zeros,
           1 border, 2 reflection), alignCorners, dims[rank]]. */
        DEVICE float gs_reflect(float v, float lo, float hi) {
            float range = hi - lo;
            if (range <= 0.0f) return lo;
            if (v < lo) {
                float dx = lo - v, k = trunc(dx / range), r = dx - k * range;
                return fmod(k, 2.0f) == 0.0f ? lo + r : hi - r;
            }
            if (v > hi) {
                float dx = v - hi, k = trunc(dx / range), r = dx - k * range;
                return fmod(k, 2.0f) == 0.0f ? hi - r : lo + r;
            }
            return v;
        }
        DEVICE int gs_index(int i, int d, int padding, float lo, float hi) {
            if (i >= 0 && i < d) return i;
            if (padding == 0) return -1;
            if (padding == 1) return i < 0 ? 0 : d - 1;
            int r = (int)gs_reflect((float)i, lo, hi);
            return r < 0 ? 0 : (r >= d ? d - 1 : r);
        }
        DEVICE void gs_cubic(float t, float *w) {
            float a = -0.75f, x0 = t + 1.0f, x1 = t, x2 = 1.0f - t, x3 = 2.0f - t;
            w[0] = ((a * x0 - 5.0f * a) * x0 + 8.0f * a) * x0 - 4.0f * a;
            w[1] = ((a + 2.0f) * x1 - (a + 3.0f)) * x1 * x1 + 1.0f;
            w[2] = ((a + 2.0f) * x2 - (a + 3.0f)) * x2 * x2 + 1.0f;
            w[3] = ((a * x3 - 5.0f * a) * x3 + 8.0f * a) * x3 - 4.0f * a;
        }
        KERNEL void grid_sample(GLOBAL const float *x, int xOff, GLOBAL const float *grid, int gOff, GLOBAL float *y,
                                int yOff, int count, GLOBAL const int *meta) {
            int e = GID0;
            if (e >= count) return;
            int C = meta[1], rank = meta[2], points = meta[3], mode = meta[4], padding = meta[5], align = meta[6];
            int p = e % points, c = (e / points) % C, b = e / (points * C);
            int plane = 1;
            for (int a = 0; a < rank; a++) plane *= meta[7 + a];
            int taps = mode == 2 ? 4 : (mode == 1 ? 2 : 1);
            int index[3][4];
            float weight[3][4];
            int outside = 0;
            for (int a = 0; a < rank; a++) {
                int d = meta[7 + a];
                float lo = align ? 0.0f : -0.5f, hi = align ? (float)(d - 1) : (float)d - 0.5f;
                float g = grid[gOff + (b * points + p) * rank + rank - 1 - a];
                float v = align ? (g + 1.0f) / 2.0f * (float)(d - 1) : ((g + 1.0f) * (float)d - 1.0f) / 2.0f;
                if (mode == 0) v = rint(v);
                if (v < lo || v > hi) {
                    if (padding == 1) v = v < 0.0f ? 0.0f : (v > (float)(d - 1) ? (float)(d - 1) : v);
                    else if (padding == 2) v = gs_reflect(v, lo, hi);
                }
                if (!(fabs(v) <= 1.0e15f)) outside = 1;
                if (outside) continue;
                if (mode == 0) {
                    index[a][0] = gs_index((int)trunc(v), d, padding, lo, hi);
                    weight[a][0] = 1.0f;
                } else if (mode == 1) {
                    float f = floor(v), t = v - f;
                    index[a][0] = gs_index((int)f, d, padding, lo, hi);
                    index[a][1] = gs_index((int)f + 1, d, padding, lo, hi);
                    weight[a][0] = 1.0f - t;
                    weight[a][1] = t;
                } else {
                    float f = floor(v), w[4];
                    gs_cubic(v - f, w);
                    for (int k = 0; k < 4; k++) {
                        index[a][k] = gs_index((int)f + k - 1, d, padding, lo, hi);
                        weight[a][k] = w[k];
                    }
                }
            }
            float sum = 0.0f;
            if (!outside) {
                int corners = 1;
                for (int a = 0; a < rank; a++) corners *= taps;
                for (int corner = 0; corner < corners; corner++) {
                    int rest = corner, offset = 0, stride = 1;
                    float w = 1.0f;
                    for (int a = rank - 1; a >= 0; a--) {
                        int k = rest % taps;
                        rest /= taps;
                        int i = index[a][k];
                        if (i < 0) {
                            w = 0.0f;
                            break;
                        }
                        offset += i * stride;
                        stride *= meta[7 + a];
                        w *= weight[a][k];
                    }
                    if (w != 0.0f) sum += w * x[xOff + (b * C + c) * plane + offset];
                }
            }
            y[yOff + e] = sum;
        }
        /* Instance and group normalization: one work-item per (image, group) of `cpg` channels of `spatial` values:
           mean and variance over the group, then a per-channel (perChannel) or per-group scale and bias. */
        KERNEL void group_norm(GLOBAL const float *x, int xOff, GLOBAL const float *g, int gOff, GLOBAL const float *b,
                               int bOff, GLOBAL float *y, int yOff, int items, int groups, int cpg, int spatial,
                               int perChannel, float epsilon) {
            int item = GID0;
            if (item >= items) return;
            int grp = item % groups, width = cpg * spatial;
            int base = item * width;
            float sum = 0.0f;
            for (int i = 0; i < width; i++) sum += x[xOff + base + i];
            float mean = sum / (float)width, squares = 0.0f;
            for (int i = 0; i < width; i++) {
                float d = x[xOff + base + i] - mean;
                squares += d * d;
            }
            float inverse = 1.0f / sqrt(squares / (float)width + epsilon);
            for (int c = 0; c < cpg; c++) {
                int pidx = perChannel ? grp * cpg + c : grp;
                float gamma = g[gOff + pidx], beta = b[bOff + pidx];
                for (int s = 0; s < spatial; s++) {
                    int at = base + c * spatial + s;
                    y[yOff + at] = (x[xOff + at] - mean) * inverse * gamma + beta;
                }
            }
        }

        /* LRN across channels: one work-item per element of [N][C][spatial]. */
        KERNEL void lrn(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int count, int C, int spatial,
                        int size, float alpha, float beta, float bias) {
            int i = GID0;
            if (i >= count) return;
            int s = i % spatial, c = (i / spatial) % C, n = i / (spatial * C);
            int before = (size - 1) / 2, after = size - 1 - before;
            int lo = c - before < 0 ? 0 : c - before, hi = c + after > C - 1 ? C - 1 : c + after;
            float squares = 0.0f;
            for (int k = lo; k <= hi; k++) {
                float v = x[xOff + (n * C + k) * spatial + s];
                squares += v * v;
            }
            y[yOff + i] = x[xOff + i] / pow(bias + alpha / (float)size * squares, beta);
        }

        /* OneHot: one work-item per output element [outer][depth][inner]; the index (int64, or float when isFloat)
           picks the `on` value (values element 1), every other position and any index outside [-depth, depth)
           the `off` value (element 0); elements of `width` bytes. */
        KERNEL void one_hot(GLOBAL const uchar *idx, int idxOff, int isFloat, GLOBAL const uchar *values, int vOff,
                            GLOBAL uchar *y, int yOff, int count, int width, int depth, int inner) {
            int i = GID0;
            if (i >= count) return;
            int in = i % inner, d = (i / inner) % depth, o = i / (inner * depth);
            int at = o * inner + in;
            long k;
            if (isFloat) {
                float f = ((GLOBAL const float *)idx)[idxOff / 4 + at];
                k = (f == f && f > -(float)depth - 1.0f && f < (float)depth) ? (long)f : (long)depth;
            } else {
                k = ((GLOBAL const long *)idx)[idxOff / 8 + at];
            }
            if (k < 0) k += depth;
            int on = k == (long)d;
            copy_element(values, vOff + (on ? width : 0), y, yOff + i * width, width);
        }
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
        """#
}
