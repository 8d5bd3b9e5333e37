// The GPU kernel source and its PTX, embedded into the binary when it is built, so the binary needs no file
// beside it. The source is real C in kernels/*.cl (one file per family of kernels, concatenated in the order
// below): OpenCL C as written, and CUDA C++ through the macros of 00_prelude.cl. kernels/gpu_kernels.ptx is
// generated from it by scripts/generate-ptx (never edited by hand; CI checks that it is current).
#pragma clang diagnostic ignored "-Wc23-extensions"
#include "GPUKernelText.h"

static const char kernel_source[] = {
#embed "kernels/00_prelude.cl"
    ,
#embed "kernels/01_gemm.cl"
    ,
#embed "kernels/02_elementwise.cl"
    ,
#embed "kernels/03_copy_gather_select.cl"
    ,
#embed "kernels/04_integer.cl"
    ,
#embed "kernels/05_reduce.cl"
    ,
#embed "kernels/06_tile_pad_resize.cl"
    ,
#embed "kernels/07_conv_transpose.cl"
    ,
#embed "kernels/08_casts_quantize.cl"
    ,
#embed "kernels/09_conv_pool_norm.cl"
    ,
#embed "kernels/10_recurrent.cl"
    ,
#embed "kernels/11_indexing.cl"
    ,
#embed "kernels/12_transformer.cl"
    ,
#embed "kernels/13_lines_topk.cl"
    ,
#embed "kernels/14_grid_sample_group_norm.cl"
    ,
#embed "kernels/15_bitwise.cl"
    , 0};

static const char kernel_ptx[] = {
#embed "kernels/gpu_kernels.ptx"
    , 0};

const char *inference_gpu_kernel_source(void) { return kernel_source; }

const char *inference_gpu_kernel_ptx(void) { return kernel_ptx; }
