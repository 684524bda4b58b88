#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/scalar_tensor.h>
#include <torch/library.h>

#include <vector>

#include "losses/byol_loss.h"

namespace ecgfast {
namespace {

at::Tensor byol_loss_cpu(const at::Tensor& p_in, const at::Tensor& z_in) {
  check_byol_args(p_in, z_in);
  const auto p = p_in.contiguous(), z = z_in.contiguous();
  const int64_t N = p.size(0), D = p.size(1);
  std::vector<double> cos(N);
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "byol_loss_cpu", [&] {
    const scalar_t *pp = p.data_ptr<scalar_t>(), *zp = z.data_ptr<scalar_t>();
    at::parallel_for(0, N, 64, [&](int64_t b, int64_t e) {
      double ip, iz;
      for (int64_t i = b; i < e; ++i) byol_row(pp + i * D, zp + i * D, D, &cos[i], &ip, &iz);
    });
  });
  double total = 0;
  for (double c : cos) total += 2.0 - 2.0 * c;
  return at::scalar_tensor(total / N, p.options());
}

std::tuple<at::Tensor, at::Tensor> byol_loss_backward_cpu(const at::Tensor& grad, const at::Tensor& p_in,
                                                          const at::Tensor& z_in) {
  check_byol_args(p_in, z_in);
  check_byol_grad(grad, p_in);
  const auto p = p_in.contiguous(), z = z_in.contiguous();
  const int64_t N = p.size(0), D = p.size(1);
  auto dp = at::empty_like(p), dz = at::empty_like(z);
  const double g = grad.item<double>() * -2.0 / N;  // a CPU tensor: no device sync
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "_byol_loss_backward_cpu", [&] {
    const scalar_t *pp = p.data_ptr<scalar_t>(), *zp = z.data_ptr<scalar_t>();
    scalar_t *dpp = dp.data_ptr<scalar_t>(), *dzp = dz.data_ptr<scalar_t>();
    at::parallel_for(0, N, 64, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        double c, ip, iz;
        byol_row(pp + i * D, zp + i * D, D, &c, &ip, &iz);
        const double a = ip * iz, cp = c * ip * ip, cz = c * iz * iz;
        for (int64_t d = 0; d < D; ++d) {
          dpp[i * D + d] = static_cast<scalar_t>(g * (zp[i * D + d] * a - pp[i * D + d] * cp));
          dzp[i * D + d] = static_cast<scalar_t>(g * (pp[i * D + d] * a - zp[i * D + d] * cz));
        }
      }
    });
  });
  return std::make_tuple(dp, dz);
}

}  // namespace

TORCH_LIBRARY_IMPL(ecgfast, CPU, m) {
  m.impl("byol_loss", &byol_loss_cpu);
  m.impl("_byol_loss_backward", &byol_loss_backward_cpu);
}

}  // namespace ecgfast
