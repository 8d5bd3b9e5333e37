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

/* float16 (IEEE binary16 bits in a ck_u16) <-> float32 by the device's own conversions, which need no
   half-precision extension: OpenCL's vload_half / vstore_half_rte (core since 1.0; pointers to half may be
   used without cl_khr_fp16) and PTX's cvt. Widening is exact; narrowing rounds to nearest even, overflow
   gives infinity, NaN stays NaN. float16 tensors are stored as half and computed in float32 (by the kernels
   with half storage below, or by float32 kernels between two casts). */
#ifdef __OPENCL_VERSION__
DEVICE float ck_half_to_float(ck_u16 h) { return vload_half(0, (const half *)&h); }
DEVICE ck_u16 ck_float_to_half(float f) {
    ck_u16 h;
    vstore_half_rte(f, 0, (half *)&h);
    return h;
}
#else
DEVICE float ck_half_to_float(ck_u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
DEVICE ck_u16 ck_float_to_half(float f) {
    ck_u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
#endif
/* bfloat16: the upper half of a float32; narrowing rounds half to even, NaN stays a quiet NaN. */
DEVICE float ck_bf16_to_float(ck_u32 h) { return INT_AS_FLOAT((int)(h << 16)); }
DEVICE ck_u32 ck_float_to_bf16(float f) {
    ck_u32 bits = FLOAT_AS_UINT(f);
    return (bits & 0x7fffffffu) > 0x7f800000u ? ((bits >> 16) | 0x40u) : ((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}
/* Loads and stores of the three float storage types, for kernels written once over a storage type T: float32
   as is, float16 and bfloat16 (ck_u16 bits) widened on load and rounded to nearest even on store. Each kernel
   then gives exactly the bits of the float32 kernel between two casts, with a third of the launches and of the
   memory traffic. */
#define CK_LOAD_F32(v) (v)
#define CK_STORE_F32(v) (v)
#define CK_LOAD_F16(v) ck_half_to_float(v)
#define CK_STORE_F16(v) ck_float_to_half(v)
#define CK_LOAD_BF16(v) ck_bf16_to_float((ck_u32)(v))
#define CK_STORE_BF16(v) ((ck_u16)ck_float_to_bf16(v))

/* An element-wise conversion kernel: y[i] = CONVERT applied to v = x[i] (v names the loaded element). */
#define CK_CAST_KERNEL(name, From, To, CONVERT)                                                  \
    KERNEL void name(GLOBAL const From *x, int xOff, GLOBAL To *y, int yOff, int count) {       \
        int i = GID0;                                                                           \
        if (i < count) {                                                                        \
            From v = x[xOff + i];                                                               \
            y[yOff + i] = CONVERT;                                                              \
        }                                                                                       \
    }

/* The taps of output (od, oy, ox)'s window that lie inside the input (after CK_CONV_META): the statement between
   CK_CONV_WINDOW_BEGIN and CK_CONV_WINDOW_END runs with xi, the tap's offset in one input channel, and wi, its
   offset in one filter channel. */
#define CK_CONV_WINDOW_BEGIN                                                                                    \
    for (int kd = 0; kd < KD; kd++) {                                                                           \
        int id = od * SD - PD + kd * DD;                                                                        \
        if (id < 0 || id >= D) continue;                                                                        \
        for (int ky = 0; ky < KH; ky++) {                                                                       \
            int iy = oy * SY - PY + ky * DY;                                                                    \
            if (iy < 0 || iy >= H) continue;                                                                    \
            for (int kx = 0; kx < KW; kx++) {                                                                   \
                int ix = ox * SX - PX + kx * DX;                                                                \
                if (ix < 0 || ix >= W) continue;                                                                \
                int xi = (id * H + iy) * W + ix, wi = (kd * KH + ky) * KW + kx;
#define CK_CONV_WINDOW_END                                                                                      \
            }                                                                                                   \
        }                                                                                                       \
    }

/* The geometry conv3d and conv_transpose3d read from meta ([C, D, H, W, M, OD, OH, OW, KD, KH, KW, SD, SY, SX,
   DD, DY, DX, PD, PY, PX, group]), and output element i's indices (n, m, od, oy, ox). */
#define CK_CONV_META(i)                                                                                         \
    int C = meta[0], D = meta[1], H = meta[2], W = meta[3], M = meta[4], OD = meta[5], OH = meta[6], OW = meta[7]; \
    int KD = meta[8], KH = meta[9], KW = meta[10], SD = meta[11], SY = meta[12], SX = meta[13];                    \
    int DD = meta[14], DY = meta[15], DX = meta[16], PD = meta[17], PY = meta[18], PX = meta[19], G = meta[20];    \
    int ox = (i) % OW, oy = ((i) / OW) % OH, od = ((i) / (OW * OH)) % OD, m = ((i) / (OW * OH * OD)) % M;         \
    int n = (i) / (OW * OH * OD * M)
