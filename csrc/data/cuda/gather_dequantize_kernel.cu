// CUDA kernel of ecgfast::gather_dequantize: a grid-stride loop over the
// output, so reads of one (record, lead) row stay coalesced (when raw's time
// stride is 1, the usual layout). raw is read through its strides: a
// contiguous copy would copy the whole split per batch.
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/macros/Macros.h>
#include <torch/library.h>

#include <algorithm>

#include "data/gather_dequantize.h"

namespace ecgfast {
namespace {

__global__ void gather_dequantize_kernel(const int16_t* __restrict__ raw, const int64_t* __restrict__ index,
                                         const float* __restrict__ gain, const float* __restrict__ baseline,
                                         float* __restrict__ out, int64_t N, int64_t B, int64_t C, int64_t T,
                                         int64_t sn, int64_t sc, int64_t st) {
  const int64_t total = B * C * T;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t t = i % T, c = (i / T) % C, b = i / (T * C);
    const int64_t r = index[b];
    // Device-side assert: checking the index on the host would need a sync.
    CUDA_KERNEL_ASSERT(r >= 0 && r < N && "gather_dequantize: index out of range");
    // Divide (not multiply by 1/gain): bit-identical to the CPU kernel.
    out[i] = (static_cast<float>(raw[r * sn + c * sc + t * st]) - baseline[c]) / gain[c];
  }
}

void gather_dequantize_into(const at::Tensor& raw, const at::Tensor& index, const at::Tensor& gain,
                            const at::Tensor& baseline, at::Tensor& out) {
  const c10::cuda::CUDAGuard guard(raw.device());
  const auto idx_c = index.contiguous();
  const auto gain_c = gain.contiguous();
  const auto base_c = baseline.contiguous();
  const int64_t N = raw.size(0), C = raw.size(1), T = raw.size(2), B = index.size(0);
  const int64_t total = B * C * T;
  if (total == 0) return;
  constexpr int threads = 256;
  const int64_t blocks = std::min<int64_t>((total + threads - 1) / threads, 65535);  // grid-stride covers the rest
  gather_dequantize_kernel<<<static_cast<unsigned>(blocks), threads, 0, at::cuda::getCurrentCUDAStream()>>>(
      raw.data_ptr<int16_t>(), idx_c.data_ptr<int64_t>(), gain_c.data_ptr<float>(), base_c.data_ptr<float>(),
      out.data_ptr<float>(), N, B, C, T, raw.stride(0), raw.stride(1), raw.stride(2));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

at::Tensor gather_dequantize_cuda(const at::Tensor& raw, const at::Tensor& index, const at::Tensor& gain,
                                  const at::Tensor& baseline) {
  check_gather_dequantize_args(raw, index, gain, baseline);
  auto out = at::empty({index.size(0), raw.size(1), raw.size(2)}, raw.options().dtype(at::kFloat));
  gather_dequantize_into(raw, index, gain, baseline, out);
  return out;
}

void gather_dequantize_out_cuda(const at::Tensor& raw, const at::Tensor& index, const at::Tensor& gain,
                                       const at::Tensor& baseline, at::Tensor& out) {
  check_gather_dequantize_args(raw, index, gain, baseline);
  check_gather_dequantize_out(raw, index, out);
  gather_dequantize_into(raw, index, gain, baseline, out);
}

}  // namespace

TORCH_LIBRARY_IMPL(ecgfast, CUDA, m) {
  m.impl("gather_dequantize", &gather_dequantize_cuda);
  m.impl("gather_dequantize.out", &gather_dequantize_out_cuda);
}

}  // namespace ecgfast
