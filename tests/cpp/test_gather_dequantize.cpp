#include <ATen/ATen.h>

#include <cmath>

#include "check.h"

int main() {
  auto op = find_op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                               const at::Tensor&)>("ecgfast::gather_dequantize");
  at::manual_seed(0);
  auto raw = at::randint(-5000, 5000, {20, 12, 257}, at::kShort);
  auto index = at::tensor({7, 0, 19, 7}, at::kLong);
  auto gain = at::rand({12}) * 900 + 100;
  auto baseline = at::randint(-50, 50, {12}).to(at::kFloat);

  auto out = op.call(raw, index, gain, baseline);
  auto expected = (raw.index_select(0, index).to(at::kFloat) - baseline.view({12, 1})) /
                  gain.view({12, 1});
  ECG_CHECK(out.sizes() == expected.sizes());
  ECG_CHECK(at::equal(out, expected));

  // The out= overload writes the same values into the caller's buffer.
  auto op_out = find_op<void(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                             at::Tensor&)>("ecgfast::gather_dequantize", "out");
  auto into = at::full({4, 12, 257}, NAN);
  op_out.call(raw, index, gain, baseline, into);
  ECG_CHECK(at::equal(into, expected));

  // An out-of-range index is an error, never a wild read.
  bool threw = false;
  try {
    op.call(raw, at::tensor({20}, at::kLong), gain, baseline);
  } catch (const c10::Error&) {
    threw = true;
  }
  ECG_CHECK(threw);
  std::puts("test_gather_dequantize: ok");
  return 0;
}
