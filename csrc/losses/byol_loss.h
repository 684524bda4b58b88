#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

namespace ecgfast {

inline void check_byol_args(const at::Tensor& p, const at::Tensor& z) {
  TORCH_CHECK(p.device() == z.device(), "byol_loss: all tensors must be on one device, got p on ", p.device(),
              " and z on ", z.device());
  TORCH_CHECK(p.dim() == 2 && p.sizes() == z.sizes(), "byol_loss: p and z must be (N, D) of one shape, got ",
              p.sizes(), " and ", z.sizes());
  TORCH_CHECK(p.size(0) >= 1, "byol_loss: empty batch");
  TORCH_CHECK(p.scalar_type() == z.scalar_type() &&
                  (p.scalar_type() == at::kFloat || p.scalar_type() == at::kDouble),
              "byol_loss: p and z must both be float32 or float64");
}

// The upstream gradient of the scalar loss: one element on the device of p.
inline void check_byol_grad(const at::Tensor& grad, const at::Tensor& p) {
  TORCH_CHECK(grad.device() == p.device(), "_byol_loss_backward: all tensors must be on one device, got grad on ",
              grad.device(), " and p on ", p.device());
  TORCH_CHECK(grad.numel() == 1, "_byol_loss_backward: grad must have one element, got ", grad.sizes());
}

// Per row: cos = p.z / (|p| |z|) (norms clamped at 1e-12 as F.normalize does);
// d(-2 cos)/dp = -2 (z / (|p||z|) - cos p / |p|^2), and symmetrically for z.
template <typename scalar_t>
inline void byol_row(const scalar_t* p, const scalar_t* z, int64_t D, double* cos_out, double* inv_p,
                     double* inv_z) {
  double pz = 0, pp = 0, zz = 0;
  for (int64_t d = 0; d < D; ++d) {
    pz += static_cast<double>(p[d]) * z[d];
    pp += static_cast<double>(p[d]) * p[d];
    zz += static_cast<double>(z[d]) * z[d];
  }
  const double np = std::max(std::sqrt(pp), 1e-12), nz = std::max(std::sqrt(zz), 1e-12);
  *inv_p = 1.0 / np;
  *inv_z = 1.0 / nz;
  *cos_out = pz / (np * nz);
}

}  // namespace ecgfast
