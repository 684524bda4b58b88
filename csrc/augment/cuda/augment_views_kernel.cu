// Plain CUDA (no torch headers): compiled by nvcc on any machine, bound to the
// dispatcher by augment_views_cuda.cpp when torch itself has CUDA. One thread
// per (view, sample, lead) runs the same per-lead code as the CPU kernel
// (augment/augment_lead.h).
#include <cuda_runtime.h>
#include <cstdint>

#include "augment/augment_lead.h"

namespace {

using namespace ecgfast::augment;

struct AddHashNoise {
  __device__ void operator()(float* y, int T, uint32_t e0, uint32_t lo, uint32_t hi, float sigma) const {
    for (int t = 0; t < T; ++t) y[t] += sigma * hash_normal(e0 + static_cast<uint32_t>(t), lo, hi);
  }
};

__global__ void augment_views_kernel(const float* __restrict__ x, const double* __restrict__ params,
                                     float* __restrict__ out, double* __restrict__ workspace, int64_t B,
                                     int64_t C, int64_t T, double fs) {
  const int64_t item = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (item >= 2 * B * C) return;
  const int64_t vb = item / C, c = item % C, b = vb % B;
  const double* p = params + vb * kNumParams;
  const int64_t mix = static_cast<int64_t>(p[kMixPartner]), cut = static_cast<int64_t>(p[kCutPartner]);
  double* ext = workspace + item * (T + 2 * kBandpassPad);
  augment_lead(x + (b * C + c) * T, x + (mix * C + c) * T, x + (cut * C + c) * T, out + item * T,
               static_cast<int>(T), static_cast<int>(c), fs, p, ext, AddHashNoise{});
}

}  // namespace

// workspace: 2 * B * C * (T + 30) doubles of scratch for the band-pass.
extern "C" cudaError_t ecgfast_augment_views_cuda(const float* x, const double* params, float* out,
                                                  double* workspace, int64_t B, int64_t C, int64_t T,
                                                  double sampling_rate, cudaStream_t stream) {
  const int64_t items = 2 * B * C;
  if (items == 0) return cudaSuccess;
  const int threads = 128;
  const int64_t blocks = (items + threads - 1) / threads;
  augment_views_kernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(x, params, out, workspace, B, C, T,
                                                                              sampling_rate);
  return cudaGetLastError();
}

extern "C" int64_t ecgfast_augment_views_workspace(int64_t B, int64_t C, int64_t T) {
  return 2 * B * C * (T + 2 * kBandpassPad);
}
