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

