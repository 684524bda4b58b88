#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <limits>
#include <optional>

#include "augment/augment_lead.h"

namespace ecgfast {

// Shared argument checks of every augment_views kernel.
inline void check_augment_views_args(const at::Tensor& x, const at::Tensor& params, double fs) {
  // First: a kernel must never read a tensor of another device.
  TORCH_CHECK(x.device() == params.device(), "augment_views: all tensors must be on one device, got x on ",
              x.device(), " and params on ", params.device());
  TORCH_CHECK(x.dim() == 3, "augment_views: x must be (batch, leads, time), got ", x.dim(), " dims");
  TORCH_CHECK(x.scalar_type() == at::kFloat, "augment_views: x must be float32, got ", x.scalar_type());
  TORCH_CHECK(params.scalar_type() == at::kDouble, "augment_views: params must be float64");
  TORCH_CHECK(params.dim() == 3 && params.size(0) == 2 && params.size(1) == x.size(0) &&
                  params.size(2) == augment::kNumParams,
              "augment_views: params must be (2, ", x.size(0), ", ", augment::kNumParams, "), got ",
              params.sizes());
  TORCH_CHECK(fs > 0, "augment_views: sampling rate must be positive, got ", fs);
  TORCH_CHECK(x.size(2) > 2 * augment::kBandpassPad,
              "augment_views: signal length ", x.size(2), " is too short for the band-pass filter (needs > ",
              2 * augment::kBandpassPad, ")");
  // The per-lead code indexes time with int.
  TORCH_CHECK(x.size(2) <= std::numeric_limits<int>::max(), "augment_views: signal length ", x.size(2),
              " is too long");
}

// The views' length: view_length when given (the crop step runs), else the record's (no crop step).
inline int64_t checked_view_length(const at::Tensor& x, std::optional<int64_t> view_length) {
  if (!view_length.has_value()) return x.size(2);
  const int64_t L = *view_length;
  TORCH_CHECK(L <= x.size(2), "augment_views: view length ", L, " is longer than the record (", x.size(2),
              " samples)");
  TORCH_CHECK(L > 2 * augment::kBandpassPad, "augment_views: view length ", L,
              " is too short for the band-pass filter (needs > ", 2 * augment::kBandpassPad, ")");
  return L;
}

}  // namespace ecgfast
