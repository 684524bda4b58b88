// CUDA dispatch of ecgfast::augment_views; built only when torch has CUDA.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include "augment/augment_views.h"

extern "C" cudaError_t ecgfast_augment_views_cuda(const float* x, const double* params, float* out,
                                                  double* workspace, int64_t B, int64_t C, int64_t T,
                                                  double sampling_rate, cudaStream_t stream);
extern "C" int64_t ecgfast_augment_views_workspace(int64_t B, int64_t C, int64_t T);

namespace ecgfast {
namespace {

at::Tensor augment_views_cuda(const at::Tensor& x_in, const at::Tensor& params_in, double fs) {
  check_augment_views_args(x_in, params_in, fs);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const auto x = x_in.contiguous();
  const auto params = params_in.contiguous();
  const int64_t B = x.size(0), C = x.size(1), T = x.size(2);
  auto out = at::empty({2, B, C, T}, x.options());
  auto workspace = at::empty({ecgfast_augment_views_workspace(B, C, T)}, x.options().dtype(at::kDouble));
  const auto err = ecgfast_augment_views_cuda(x.data_ptr<float>(), params.data_ptr<double>(),
                                              out.data_ptr<float>(), workspace.data_ptr<double>(), B, C, T, fs,
                                              c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "augment_views: CUDA launch failed: ", cudaGetErrorString(err));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(ecgfast, CUDA, m) { m.impl("augment_views", &augment_views_cuda); }

}  // namespace ecgfast
