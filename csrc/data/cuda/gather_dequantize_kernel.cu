// Plain CUDA (no torch headers): compiled by nvcc on any machine, bound to the
// dispatcher by gather_dequantize_cuda.cpp when torch itself has CUDA.
#include <cuda_runtime.h>
#include <cstdint>

namespace {

__global__ void gather_dequantize_kernel(const int16_t* __restrict__ raw,
                                         const int64_t* __restrict__ index,
                                         const float* __restrict__ gain,
                                         const float* __restrict__ baseline,
                                         float* __restrict__ out, int64_t B, int64_t C,
                                         int64_t T) {
  const int64_t total = B * C * T;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)blockDim.x * gridDim.x) {
    const int64_t t = i % T;
    const int64_t c = (i / T) % C;
    const int64_t b = i / (T * C);
    const int16_t v = raw[(index[b] * C + c) * T + t];
    out[i] = (static_cast<float>(v) - baseline[c]) / gain[c];
  }
}

}  // namespace

extern "C" cudaError_t ecgfast_gather_dequantize_cuda(const int16_t* raw, const int64_t* index,
                                                       const float* gain, const float* baseline,
                                                       float* out, int64_t B, int64_t C, int64_t T,
                                                       cudaStream_t stream) {
  const int64_t total = B * C * T;
  if (total == 0) return cudaSuccess;
  const int threads = 256;
  const int blocks = static_cast<int>((total + threads - 1) / threads < 65535 ? (total + threads - 1) / threads : 65535);
  gather_dequantize_kernel<<<blocks, threads, 0, stream>>>(raw, index, gain, baseline, out, B, C, T);
  return cudaGetLastError();
}
