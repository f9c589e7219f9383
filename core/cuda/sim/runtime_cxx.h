// The C++ overloads <cuda_runtime.h> adds to the runtime API (typed pointers instead of
// void**, kernels instead of const void*), for the SIM build. Like cuda_runtime.h they
// are visible to .cu files only: core/cuda/kernel.h includes this header.
#pragma once

#include "kiln/core/cuda/sim/runtime.h"

template <class T>
cudaError_t cudaMalloc(T** devPtr, std::size_t size) {
  return ::cudaMalloc(reinterpret_cast<void**>(devPtr), size);
}
template <class T>
cudaError_t cudaMallocHost(T** ptr, std::size_t size) {
  return ::cudaMallocHost(reinterpret_cast<void**>(ptr), size);
}
template <class T>
cudaError_t cudaHostAlloc(T** ptr, std::size_t size, unsigned int flags) {
  return ::cudaHostAlloc(reinterpret_cast<void**>(ptr), size, flags);
}
template <class T>
cudaError_t cudaFuncSetAttribute(T* entry, cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(entry), attr, value);
}
inline cudaError_t cudaEventCreate(cudaEvent_t* event, unsigned int flags) {
  return ::cudaEventCreateWithFlags(event, flags);
}
