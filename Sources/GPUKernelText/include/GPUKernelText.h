#ifndef INFERENCE_GPU_KERNEL_TEXT_H
#define INFERENCE_GPU_KERNEL_TEXT_H

/// The GPU kernel source (kernels/*.cl, in order), NUL-terminated: built as OpenCL C, or as CUDA C++ by NVRTC.
const char *inference_gpu_kernel_source(void);

/// The PTX scripts/generate-ptx made from that source (compute_70), NUL-terminated; loaded where NVRTC is not.
const char *inference_gpu_kernel_ptx(void);

#endif
