// CUDA dispatch of ecgfast::byol_loss; built only when torch has CUDA.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include "losses/byol_loss.h"

extern "C" cudaError_t ecgfast_byol_forward_cuda(const void* p, const void* z, double* cos, int64_t N, int64_t D,
                                                 bool is_double, cudaStream_t stream);
extern "C" cudaError_t ecgfast_byol_backward_cuda(const void* p, const void* z, void* dp, void* dz, double g,
                                                  int64_t N, int64_t D, bool is_double, cudaStream_t stream);

namespace ecgfast {
namespace {

at::Tensor byol_loss_cuda(const at::Tensor& p_in, const at::Tensor& z_in) {
  check_byol_args(p_in, z_in);
  const c10::cuda::CUDAGuard guard(p_in.device());
  const auto p = p_in.contiguous(), z = z_in.contiguous();
  auto cos = at::empty({p.size(0)}, p.options().dtype(at::kDouble));
  const auto err = ecgfast_byol_forward_cuda(p.data_ptr(), z.data_ptr(), cos.data_ptr<double>(), p.size(0),
                                             p.size(1), p.scalar_type() == at::kDouble,
                                             c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "byol_loss: CUDA launch failed: ", cudaGetErrorString(err));
  return (2.0 - 2.0 * cos).mean().to(p.scalar_type());
}

std::tuple<at::Tensor, at::Tensor> byol_loss_backward_cuda(const at::Tensor& grad, const at::Tensor& p_in,
                                                           const at::Tensor& z_in) {
  check_byol_args(p_in, z_in);
  const c10::cuda::CUDAGuard guard(p_in.device());
  const auto p = p_in.contiguous(), z = z_in.contiguous();
  auto dp = at::empty_like(p), dz = at::empty_like(z);
  const double g = grad.item<double>() * -2.0 / p.size(0);
  const auto err = ecgfast_byol_backward_cuda(p.data_ptr(), z.data_ptr(), dp.data_ptr(), dz.data_ptr(), g,
                                              p.size(0), p.size(1), p.scalar_type() == at::kDouble,
                                              c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "byol_loss_backward: CUDA launch failed: ", cudaGetErrorString(err));
  return std::make_tuple(dp, dz);
}

}  // namespace

TORCH_LIBRARY_IMPL(ecgfast, CUDA, m) {
  m.impl("byol_loss", &byol_loss_cuda);
  m.impl("byol_loss_backward", &byol_loss_backward_cuda);
}

}  // namespace ecgfast
