#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace ecgfast {

// Shared argument checks of every gather_dequantize kernel.
inline void check_gather_dequantize_args(const at::Tensor& raw, const at::Tensor& index,
                                         const at::Tensor& gain, const at::Tensor& baseline) {
  // First: a kernel must never read a tensor of another device.
  TORCH_CHECK(raw.device() == index.device() && raw.device() == gain.device() &&
                  raw.device() == baseline.device(),
              "gather_dequantize: all tensors must be on one device, got raw on ", raw.device(), ", index on ",
              index.device(), ", gain on ", gain.device(), " and baseline on ", baseline.device());
  TORCH_CHECK(raw.dim() == 3, "gather_dequantize: raw must be (N, C, T), got ", raw.dim(), " dims");
  TORCH_CHECK(raw.scalar_type() == at::kShort, "gather_dequantize: raw must be int16, got ",
              raw.scalar_type());
  TORCH_CHECK(index.dim() == 1 && index.scalar_type() == at::kLong,
              "gather_dequantize: index must be a 1-D int64 tensor");
  const auto C = raw.size(1);
  TORCH_CHECK(gain.dim() == 1 && gain.size(0) == C && gain.scalar_type() == at::kFloat,
              "gather_dequantize: gain must be float32 of shape (", C, ",)");
  TORCH_CHECK(baseline.dim() == 1 && baseline.size(0) == C && baseline.scalar_type() == at::kFloat,
              "gather_dequantize: baseline must be float32 of shape (", C, ",)");
}

// Checks of the out= overload: out must be the float32 (B, C, T) result, contiguous, beside raw.
inline void check_gather_dequantize_out(const at::Tensor& raw, const at::Tensor& index, const at::Tensor& out) {
  TORCH_CHECK(out.device() == raw.device(), "gather_dequantize: out must be on ", raw.device(), ", got ",
              out.device());
  TORCH_CHECK(out.scalar_type() == at::kFloat, "gather_dequantize: out must be float32, got ", out.scalar_type());
  TORCH_CHECK(out.dim() == 3 && out.size(0) == index.size(0) && out.size(1) == raw.size(1) &&
                  out.size(2) == raw.size(2),
              "gather_dequantize: out must have shape (", index.size(0), ", ", raw.size(1), ", ", raw.size(2),
              "), got ", out.sizes());
  TORCH_CHECK(out.is_contiguous(), "gather_dequantize: out must be contiguous");
}

}  // namespace ecgfast
