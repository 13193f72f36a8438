// Marks the functions compiled for both the CPU and the GPU: the arithmetic the CPU code and the
// CUDA kernels share (logistic.hpp, step_math.hpp, pair_rules.hpp, pair_walk.hpp), so that the
// CPU tests exercise every line the kernels run.
#pragma once

#if defined(__CUDACC__)
#define KHSGD_HOST_DEVICE __host__ __device__
// Before a host-and-device template that calls its type parameter's members: nvcc would
// otherwise warn when a device-only type (a kernel's rows in registers) is plugged in.
#define KHSGD_EXEC_CHECK_DISABLE _Pragma("nv_exec_check_disable")
#else
#define KHSGD_HOST_DEVICE
#define KHSGD_EXEC_CHECK_DISABLE
#endif
