#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "data/gather_dequantize.h"

namespace ecgfast {
namespace {

void gather_dequantize_into(const at::Tensor& raw, const at::Tensor& index, const at::Tensor& gain,
                            const at::Tensor& baseline, at::Tensor& out) {
  // raw is read where it is, through its strides: a contiguous copy would copy the whole split
  // (N records) per batch of B. The small arguments are copied if they need to be.
  const auto idx_c = index.contiguous();
  const auto gain_c = gain.contiguous();
  const auto base_c = baseline.contiguous();
  const int64_t N = raw.size(0), C = raw.size(1), T = raw.size(2), B = index.size(0);
  const int64_t sn = raw.stride(0), sc = raw.stride(1), st = raw.stride(2);

  const int64_t* idx = idx_c.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    TORCH_CHECK(idx[b] >= 0 && idx[b] < N, "gather_dequantize: index ", idx[b],
                " out of range for ", N, " records");
  }
  const int16_t* src = raw.data_ptr<int16_t>();
  const float* g = gain_c.data_ptr<float>();
  const float* z = base_c.data_ptr<float>();
  float* dst = out.data_ptr<float>();

  // One (record, lead) row per work item: T values written contiguously, read at stride st.
  at::parallel_for(0, B * C, 16, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / C, c = row % C;
      const int16_t* s = src + idx[b] * sn + c * sc;
      float* d = dst + row * T;
      // Divide (not multiply by 1/gain) so the result is bit-identical to the
      // reference and to wfdb's own (adc - baseline) / gain.
      const float gain_c = g[c], shift = z[c];
      if (st == 1) {  // the usual layout: a loop the compiler vectorises
        for (int64_t t = 0; t < T; ++t) d[t] = (static_cast<float>(s[t]) - shift) / gain_c;
      } else {
        for (int64_t t = 0; t < T; ++t) d[t] = (static_cast<float>(s[t * st]) - shift) / gain_c;
      }
    }
  });
}

at::Tensor gather_dequantize_cpu(const at::Tensor& raw, const at::Tensor& index,
                                 const at::Tensor& gain, const at::Tensor& baseline) {
  check_gather_dequantize_args(raw, index, gain, baseline);
  auto out = at::empty({index.size(0), raw.size(1), raw.size(2)}, raw.options().dtype(at::kFloat));
  gather_dequantize_into(raw, index, gain, baseline, out);
  return out;
}

void gather_dequantize_out_cpu(const at::Tensor& raw, const at::Tensor& index, const at::Tensor& gain,
                               const at::Tensor& baseline, at::Tensor& out) {
  check_gather_dequantize_args(raw, index, gain, baseline);
  check_gather_dequantize_out(raw, index, out);
  gather_dequantize_into(raw, index, gain, baseline, out);
}

}  // namespace

TORCH_LIBRARY_IMPL(ecgfast, CPU, m) {
  m.impl("gather_dequantize", &gather_dequantize_cpu);
  m.impl("gather_dequantize.out", &gather_dequantize_out_cpu);
}

}  // namespace ecgfast
