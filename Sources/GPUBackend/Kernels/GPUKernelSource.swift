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
        #else
        #define KERNEL extern "C" __global__
        #define DEVICE __device__
        #define GLOBAL
        #ifndef INFINITY
        #define INFINITY __int_as_float(0x7f800000)
        #endif
        typedef unsigned char uchar;
        #define GID0 ((int)(blockIdx.x * blockDim.x + threadIdx.x))
        #define GID1 ((int)(blockIdx.y * blockDim.y + threadIdx.y))
        #define GID2 ((int)(blockIdx.z * blockDim.z + threadIdx.z))
        #define INT_AS_FLOAT(v) __int_as_float(v)
        #endif

        /* Y[i, j] = alpha * sum_p A'[i, p] B'[p, j] + beta * C[broadcast], one work-item per output. */
        KERNEL void gemm(GLOBAL const float *a, int aOff, GLOBAL const float *b, int bOff, GLOBAL const float *c, int cOff,
                         GLOBAL float *y, int yOff, int m, int n, int k, int transA, int transB, float alpha, float beta,
                         int cRows, int cCols, int hasC) {
            int j = GID0, i = GID1;
            if (i >= m || j >= n) return;
            float acc = 0.0f;
            for (int p = 0; p < k; p++) {
                float av = transA ? a[aOff + p * m + i] : a[aOff + i * k + p];
                float bv = transB ? b[bOff + j * k + p] : b[bOff + p * n + j];
                acc += av * bv;
            }
            float v = alpha * acc;
            if (hasC) v += beta * c[cOff + (cRows == 1 ? 0 : i) * cCols + (cCols == 1 ? 0 : j)];
            y[yOff + i * n + j] = v;
        }

        /* Batched row-major matmul; a zero batch stride broadcasts that operand. */
        KERNEL void matmul(GLOBAL const float *a, int aOff, GLOBAL const float *b, int bOff, GLOBAL float *y, int yOff,
                           int m, int n, int k, int aStride, int bStride) {
            int j = GID0, i = GID1, s = GID2;
            if (i >= m || j >= n) return;
            GLOBAL const float *ap = a + aOff + s * aStride + i * k;
            GLOBAL const float *bp = b + bOff + s * bStride + j;
            float acc = 0.0f;
            for (int p = 0; p < k; p++) acc += ap[p] * bp[p * n];
            y[yOff + s * m * n + i * n + j] = acc;
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
            default: r = v; break;
            }
            y[yOff + i] = r;
        }

        /* Broadcasting binary op. meta = [rank, outDims[rank], aStrides[rank], bStrides[rank]]. */
        KERNEL void binary(GLOBAL const float *a, int aOff, GLOBAL const float *b, int bOff, GLOBAL float *y, int yOff,
                           int count, int op, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int rank = meta[0], rest = i, ia = 0, ib = 0;
            for (int axis = rank - 1; axis >= 0; axis--) {
                int d = meta[1 + axis];
                int c = rest % d;
                rest /= d;
                ia += c * meta[1 + rank + axis];
                ib += c * meta[1 + 2 * rank + axis];
            }
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
        KERNEL void permute(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int count, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int rank = meta[0], rest = i, offset = 0;
            for (int axis = rank - 1; axis >= 0; axis--) {
                int d = meta[1 + axis];
                offset += (rest % d) * meta[1 + rank + axis];
                rest /= d;
            }
            y[yOff + i] = x[xOff + offset];
        }

        /* Copies 4-byte elements between strided views: for each index of the iteration space,
           y[yBase + sum idx*ys] = x[xBase + sum idx*xs]. meta = [rank, xBase, yBase, dims[rank], xs[rank], ys[rank]].
           Expand (stride 0 on broadcast axes), Slice (base and stepped strides), Concat and Split (one launch per
           part, into or out of an offset view). */
        KERNEL void strided_copy(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int count,
                                 GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int rank = meta[0], rest = i, xo = meta[1], yo = meta[2];
            for (int axis = rank - 1; axis >= 0; axis--) {
                int d = meta[3 + axis];
                int k = rest % d;
                rest /= d;
                xo += k * meta[3 + rank + axis];
                yo += k * meta[3 + 2 * rank + axis];
            }
            y[yOff + yo] = x[xOff + xo];
        }

        /* Gather along an axis with int64 indices (negative counts from the end): meta = [axisDim, inner, nIdx].
           An index outside the axis writes 0 (the CPU backend reports it as an error). */
        KERNEL void gather_axis(GLOBAL const float *x, int xOff, GLOBAL const long *idx, int idxOff, GLOBAL float *y,
                                int yOff, int count, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int axisDim = meta[0], inner = meta[1], n = meta[2];
            int in = i % inner, rest = i / inner;
            int j = rest % n, o = rest / n;
            long k = idx[idxOff + j];
            if (k < 0) k += axisDim;
            y[yOff + i] = (k < 0 || k >= axisDim) ? 0.0f : x[xOff + (o * axisDim + (int)k) * inner + in];
        }

        /* Comparisons with broadcasting (meta as for binary), bool results as bytes: op 0 ==, 1 <, 2 >, 3 <=, 4 >=. */
        KERNEL void compare(GLOBAL const float *a, int aOff, GLOBAL const float *b, int bOff, GLOBAL uchar *y, int yOff,
                            int count, int op, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int rank = meta[0], rest = i, ia = 0, ib = 0;
            for (int axis = rank - 1; axis >= 0; axis--) {
                int d = meta[1 + axis];
                int c = rest % d;
                rest /= d;
                ia += c * meta[1 + rank + axis];
                ib += c * meta[1 + 2 * rank + axis];
            }
            float u = a[aOff + ia], v = b[bOff + ib];
            int r = op == 0 ? u == v : op == 1 ? u < v : op == 2 ? u > v : op == 3 ? u <= v : u >= v;
            y[yOff + i] = (uchar)r;
        }

        /* Where(cond, x, y) with broadcasting: meta = [rank, dims[rank], condStrides, xStrides, yStrides]. */
        KERNEL void where_select(GLOBAL const uchar *c, int cOff, GLOBAL const float *x, int xOff, GLOBAL const float *y,
                                 int yOff, GLOBAL float *out, int oOff, int count, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int rank = meta[0], rest = i, ic = 0, ix = 0, iy = 0;
            for (int axis = rank - 1; axis >= 0; axis--) {
                int d = meta[1 + axis];
                int k = rest % d;
                rest /= d;
                ic += k * meta[1 + rank + axis];
                ix += k * meta[1 + 2 * rank + axis];
                iy += k * meta[1 + 3 * rank + axis];
            }
            out[oOff + i] = c[cOff + ic] ? x[xOff + ix] : y[yOff + iy];
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
            float acc = op == 2 ? -INFINITY : (op == 3 ? INFINITY : (op == 5 ? 1.0f : 0.0f));
            for (int j = 0; j < total; j++) {
                int r = j, offset = base;
                for (int axis = rr - 1; axis >= 0; axis--) {
                    int d = meta[p + 1 + axis];
                    offset += (r % d) * meta[p + 1 + rr + axis];
                    r /= d;
                }
                float v = x[xOff + offset];
                if (op == 2) acc = (v > acc || v != v) ? v : acc;
                else if (op == 3) acc = (v < acc || v != v) ? v : acc;
                else if (op == 4 || op == 6) acc += v * v;
                else if (op == 5) acc *= v;
                else acc += v;
            }
            y[yOff + i] = op == 1 ? acc / (float)total : (op == 6 ? sqrt(acc) : acc);
        }

        /* And, Or, Xor on bool bytes with broadcasting (meta as for binary); Not when op is 3 (b unused). */
        KERNEL void logic(GLOBAL const uchar *a, int aOff, GLOBAL const uchar *b, int bOff, GLOBAL uchar *y, int yOff,
                          int count, int op, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int rank = meta[0], rest = i, ia = 0, ib = 0;
            for (int axis = rank - 1; axis >= 0; axis--) {
                int d = meta[1 + axis];
                int c = rest % d;
                rest /= d;
                ia += c * meta[1 + rank + axis];
                ib += c * meta[1 + 2 * rank + axis];
            }
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
        KERNEL void tile(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int count, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int rank = meta[0], rest = i, offset = 0;
            for (int axis = rank - 1; axis >= 0; axis--) {
                int d = meta[1 + axis];
                offset += ((rest % d) % meta[1 + rank + axis]) * meta[1 + 2 * rank + axis];
                rest /= d;
            }
            y[yOff + i] = x[xOff + offset];
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

        /* 2-D transposed convolution, one work-item per output element (n, m, oy, ox), W laid out
           [C, M/group, KH, KW]; meta as conv2d: [C, H, W, M, OH, OW, KH, KW, SY, SX, DY, DX, PY, PX, group]. */
        KERNEL void conv_transpose2d(GLOBAL const float *x, int xOff, GLOBAL const float *w, int wOff, GLOBAL const float *b,
                                     int bOff, int hasBias, GLOBAL float *y, int yOff, int count, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int C = meta[0], H = meta[1], W = meta[2], M = meta[3], OH = meta[4], OW = meta[5], KH = meta[6], KW = meta[7];
            int SY = meta[8], SX = meta[9], DY = meta[10], DX = meta[11], PY = meta[12], PX = meta[13], G = meta[14];
            int ox = i % OW, oy = (i / OW) % OH, m = (i / (OW * OH)) % M, n = i / (OW * OH * M);
            int cg = C / G, mg = M / G, g = m / mg, mm = m % mg;
            float acc = hasBias ? b[bOff + m] : 0.0f;
            for (int c = 0; c < cg; c++) {
                GLOBAL const float *xc = x + xOff + ((n * C) + g * cg + c) * H * W;
                GLOBAL const float *wc = w + wOff + ((g * cg + c) * mg + mm) * KH * KW;
                for (int ky = 0; ky < KH; ky++) {
                    int ty = oy + PY - ky * DY;
                    if (ty < 0 || ty % SY != 0 || ty / SY >= H) continue;
                    for (int kx = 0; kx < KW; kx++) {
                        int tx = ox + PX - kx * DX;
                        if (tx < 0 || tx % SX != 0 || tx / SX >= W) continue;
                        acc += xc[(ty / SY) * W + tx / SX] * wc[ky * KW + kx];
                    }
                }
            }
            y[yOff + i] = acc;
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

        /* Direct 2-D convolution, one work-item per output element (n, m, oy, ox); geometry in meta:
           [C, H, W, M, OH, OW, KH, KW, SY, SX, DY, DX, PY, PX, group]. */
        KERNEL void conv2d(GLOBAL const float *x, int xOff, GLOBAL const float *w, int wOff, GLOBAL const float *b, int bOff,
                           int hasBias, GLOBAL float *y, int yOff, int count, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int C = meta[0], H = meta[1], W = meta[2], M = meta[3], OH = meta[4], OW = meta[5], KH = meta[6], KW = meta[7];
            int SY = meta[8], SX = meta[9], DY = meta[10], DX = meta[11], PY = meta[12], PX = meta[13], G = meta[14];
            int ox = i % OW, oy = (i / OW) % OH, m = (i / (OW * OH)) % M, n = i / (OW * OH * M);
            int cg = C / G, mg = M / G, g = m / mg;
            float acc = hasBias ? b[bOff + m] : 0.0f;
            for (int c = 0; c < cg; c++) {
                GLOBAL const float *xc = x + xOff + ((n * C) + g * cg + c) * H * W;
                GLOBAL const float *wc = w + wOff + (m * cg + c) * KH * KW;
                for (int ky = 0; ky < KH; ky++) {
                    int iy = oy * SY - PY + ky * DY;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < KW; kx++) {
                        int ix = ox * SX - PX + kx * DX;
                        if (ix < 0 || ix >= W) continue;
                        acc += xc[iy * W + ix] * wc[ky * KW + kx];
                    }
                }
            }
            y[yOff + i] = acc;
        }

        /* 2-D max/average pooling, one work-item per output; meta: [H, W, OH, OW, KH, KW, SY, SX, DY, DX, PY, PX,
           PEY, PEX, isMax, includePad]. */
        KERNEL void pool2d(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int count, GLOBAL const int *meta) {
            int i = GID0;
            if (i >= count) return;
            int H = meta[0], W = meta[1], OH = meta[2], OW = meta[3], KH = meta[4], KW = meta[5], SY = meta[6], SX = meta[7];
            int DY = meta[8], DX = meta[9], PY = meta[10], PX = meta[11], PEY = meta[12], PEX = meta[13];
            int isMax = meta[14], includePad = meta[15];
            int ox = i % OW, oy = (i / OW) % OH, p = i / (OW * OH);
            GLOBAL const float *xp = x + xOff + p * H * W;
            float best = -INFINITY, sum = 0.0f;
            int valid = 0, padded = 0;
            for (int ky = 0; ky < KH; ky++) {
                int iy = oy * SY - PY + ky * DY;
                for (int kx = 0; kx < KW; kx++) {
                    int ix = ox * SX - PX + kx * DX;
                    if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
                        float v = xp[iy * W + ix];
                        best = fmax(best, v);
                        sum += v;
                        valid++;
                    } else if (iy >= -PY && iy < H + PEY && ix >= -PX && ix < W + PEX) {
                        padded++;
                    }
                }
            }
            int divisor = includePad ? valid + padded : valid;
            y[yOff + i] = isMax ? best : (divisor > 0 ? sum / divisor : 0.0f);
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

        /* One work-item per row: softmax (or log-softmax) over n contiguous values. */
        KERNEL void softmax_rows(GLOBAL const float *x, int xOff, GLOBAL float *y, int yOff, int rows, int n, int logarithm) {
            int r = GID0;
            if (r >= rows) return;
            GLOBAL const float *xr = x + xOff + r * n;
            GLOBAL float *yr = y + yOff + r * n;
            float m = xr[0];
            for (int i = 1; i < n; i++) m = fmax(m, xr[i]);
            float sum = 0.0f;
            for (int i = 0; i < n; i++) sum += exp(xr[i] - m);
            for (int i = 0; i < n; i++) yr[i] = logarithm ? xr[i] - m - log(sum) : exp(xr[i] - m) / sum;
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
        """#
}
