// CUDA kernels of ecgfast::byol_loss and its backward: one warp per row
// reduces p.z, |p|^2, |z|^2 in double (as the CPU kernel's byol_row).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/mean.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/macros/Macros.h>
#include <torch/library.h>

#include "losses/byol_loss.h"

namespace ecgfast {
namespace {

constexpr int kWarp = 32;

// One row per block of exactly one warp (kWarp threads): the lanes stride over the D columns
// (any D) and the full-mask shuffles reduce them, which is only right with all 32 lanes present.
template <typename scalar_t>
__device__ void row_stats(const scalar_t* p, const scalar_t* z, int64_t D, double* pz, double* pp, double* zz) {
  CUDA_KERNEL_ASSERT(blockDim.x == kWarp && "byol_loss: row_stats needs blocks of one warp");
  double a = 0, b = 0, c = 0;
  for (int64_t d = threadIdx.x; d < D; d += kWarp) {
    const double pd = static_cast<double>(p[d]), zd = static_cast<double>(z[d]);
    a += pd * zd;
    b += pd * pd;
    c += zd * zd;
  }
  for (int off = kWarp / 2; off > 0; off /= 2) {
    a += __shfl_down_sync(0xffffffffu, a, off);
    b += __shfl_down_sync(0xffffffffu, b, off);
    c += __shfl_down_sync(0xffffffffu, c, off);
  }
  *pz = __shfl_sync(0xffffffffu, a, 0);
  *pp = __shfl_sync(0xffffffffu, b, 0);
  *zz = __shfl_sync(0xffffffffu, c, 0);
}

// term[i] = 2 - 2 cos(p_i, z_i); norms clamped at 1e-12 as F.normalize does.
template <typename scalar_t>
__global__ void byol_forward_kernel(const scalar_t* __restrict__ p, const scalar_t* __restrict__ z,
                                    double* __restrict__ term, int64_t D) {
  const int64_t i = blockIdx.x;
  double pz, pp, zz;
  row_stats(p + i * D, z + i * D, D, &pz, &pp, &zz);
  if (threadIdx.x == 0) term[i] = 2.0 - 2.0 * pz / (fmax(sqrt(pp), 1e-12) * fmax(sqrt(zz), 1e-12));
}

// The upstream gradient is read on the device (grad[0]): no host sync.
template <typename scalar_t>
__global__ void byol_backward_kernel(const double* __restrict__ grad, const scalar_t* __restrict__ p,
                                     const scalar_t* __restrict__ z, scalar_t* __restrict__ dp,
                                     scalar_t* __restrict__ dz, int64_t N, int64_t D) {
  const int64_t i = blockIdx.x;
  double pz, pp, zz;
  row_stats(p + i * D, z + i * D, D, &pz, &pp, &zz);
  const double g = grad[0] * -2.0 / static_cast<double>(N);
  const double ip = 1.0 / fmax(sqrt(pp), 1e-12), iz = 1.0 / fmax(sqrt(zz), 1e-12);
  const double c = pz * ip * iz, a = ip * iz, cp = c * ip * ip, cz = c * iz * iz;
  for (int64_t d = threadIdx.x; d < D; d += kWarp) {
    const double pd = static_cast<double>(p[i * D + d]), zd = static_cast<double>(z[i * D + d]);
    dp[i * D + d] = static_cast<scalar_t>(g * (zd * a - pd * cp));
    dz[i * D + d] = static_cast<scalar_t>(g * (pd * a - zd * cz));
  }
}

void check_grid(int64_t N, const char* op) {
  TORCH_CHECK(N <= std::numeric_limits<int32_t>::max(), op, ": too many rows for one launch (", N, ")");
}

at::Tensor byol_loss_cuda(const at::Tensor& p_in, const at::Tensor& z_in) {
  check_byol_args(p_in, z_in);
  const c10::cuda::CUDAGuard guard(p_in.device());
  const auto p = p_in.contiguous(), z = z_in.contiguous();
  const int64_t N = p.size(0), D = p.size(1);
  check_grid(N, "byol_loss");
  auto term = at::empty({N}, p.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "byol_loss_cuda", [&] {
    byol_forward_kernel<scalar_t><<<static_cast<unsigned>(N), kWarp, 0, at::cuda::getCurrentCUDAStream()>>>(
        p.data_ptr<scalar_t>(), z.data_ptr<scalar_t>(), term.data_ptr<double>(), D);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return at::mean(term).to(p.scalar_type());  // summed in double on the device, as the CPU kernel does
}

std::tuple<at::Tensor, at::Tensor> byol_loss_backward_cuda(const at::Tensor& grad, const at::Tensor& p_in,
                                                           const at::Tensor& z_in) {
  check_byol_args(p_in, z_in);
  check_byol_grad(grad, p_in);
  const c10::cuda::CUDAGuard guard(p_in.device());
  const auto p = p_in.contiguous(), z = z_in.contiguous();
  const auto g = grad.to(at::kDouble).contiguous();  // on the device: stays asynchronous
  const int64_t N = p.size(0), D = p.size(1);
  check_grid(N, "_byol_loss_backward");
  auto dp = at::empty_like(p), dz = at::empty_like(z);
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "_byol_loss_backward_cuda", [&] {
    byol_backward_kernel<scalar_t><<<static_cast<unsigned>(N), kWarp, 0, at::cuda::getCurrentCUDAStream()>>>(
        g.data_ptr<double>(), p.data_ptr<scalar_t>(), z.data_ptr<scalar_t>(), dp.data_ptr<scalar_t>(),
        dz.data_ptr<scalar_t>(), N, D);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return std::make_tuple(dp, dz);
}

}  // namespace

TORCH_LIBRARY_IMPL(ecgfast, CUDA, m) {
  m.impl("byol_loss", &byol_loss_cuda);
  m.impl("_byol_loss_backward", &byol_loss_backward_cuda);
}

}  // namespace ecgfast
