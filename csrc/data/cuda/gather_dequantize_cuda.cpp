// CUDA dispatch of ecgfast::gather_dequantize; built only when torch has CUDA.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include "data/gather_dequantize.h"

extern "C" cudaError_t ecgfast_gather_dequantize_cuda(const int16_t* raw, const int64_t* index,
                                                       const float* gain, const float* baseline,
                                                       float* out, int64_t B, int64_t C, int64_t T,
                                                       cudaStream_t stream);

namespace ecgfast {
namespace {

at::Tensor gather_dequantize_cuda(const at::Tensor& raw, const at::Tensor& index,
                                  const at::Tensor& gain, const at::Tensor& baseline) {
  check_gather_dequantize_args(raw, index, gain, baseline);
  const c10::cuda::CUDAGuard guard(raw.device());
  const auto raw_c = raw.contiguous();
  const auto idx_c = index.contiguous();
  const auto gain_c = gain.contiguous();
  const auto base_c = baseline.contiguous();
  const int64_t C = raw.size(1), T = raw.size(2), B = index.size(0);
  auto out = at::empty({B, C, T}, raw.options().dtype(at::kFloat));
  const auto err = ecgfast_gather_dequantize_cuda(
      raw_c.data_ptr<int16_t>(), idx_c.data_ptr<int64_t>(), gain_c.data_ptr<float>(),
      base_c.data_ptr<float>(), out.data_ptr<float>(), B, C, T,
      c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "gather_dequantize: CUDA launch failed: ", cudaGetErrorString(err));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ecgfast, CUDA, m) { m.impl("gather_dequantize", &gather_dequantize_cuda); }

}  // namespace ecgfast
