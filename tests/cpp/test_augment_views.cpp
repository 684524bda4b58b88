// ecgfast::augment_views through the dispatcher: parameters set by hand.
#include <ATen/ATen.h>

#include "augment/augment_lead.h"
#include "check.h"

using ecgfast::augment::kNumParams;
namespace col = ecgfast::augment;

int main() {
  auto op = find_op<at::Tensor(const at::Tensor&, const at::Tensor&, double)>("ecgfast::augment_views");
  at::manual_seed(0);
  const int64_t B = 3, C = 12, T = 200;
  auto x = at::randn({B, C, T});
  auto params = at::zeros({2, B, kNumParams}, at::kDouble);

  // Every augmentation off: both views are the input.
  auto out = op.call(x, params, 100.0);
  ECG_CHECK(out.sizes() == at::IntArrayRef({2, B, C, T}));
  ECG_CHECK(at::equal(out[0], x) && at::equal(out[1], x));

  // CutMix on view 1 of sample 0 with partner 2 over [50, 90): exactly the partner's samples.
  params[1][0][col::kCutOn] = 1;
  params[1][0][col::kCutStart] = 50;
  params[1][0][col::kCutLen] = 40;
  params[1][0][col::kCutPartner] = 2;
  out = op.call(x, params, 100.0);
  ECG_CHECK(at::equal(out[1][0].slice(1, 50, 90), x[2].slice(1, 50, 90)));
  ECG_CHECK(at::equal(out[1][0].slice(1, 0, 50), x[0].slice(1, 0, 50)));
  ECG_CHECK(at::equal(out[0], x));

  // Mixup with lambda 0.75 and partner 1 on view 0 of sample 2.
  params[0][2][col::kMixOn] = 1;
  params[0][2][col::kMixLambda] = 0.75;
  params[0][2][col::kMixPartner] = 1;
  out = op.call(x, params, 100.0);
  ECG_CHECK(at::allclose(out[0][2], 0.75 * x[2] + 0.25 * x[1], 1e-6, 1e-6));

  // Temporal dropout: a straight line between the span's edges.
  params[0][1][col::kDropOn] = 1;
  params[0][1][col::kDropStart] = 20;
  params[0][1][col::kDropLen] = 9;
  out = op.call(x, params, 100.0);
  auto y = out[0][1][4];
  const float left = y[19].item<float>(), right = y[29].item<float>();
  for (int k = 0; k < 9; ++k) ECG_CHECK(std::abs(y[20 + k].item<float>() - (left + (right - left) * (k + 1) / 10.0f)) < 1e-5);

  // A partner outside the batch is refused.
  params[0][0][col::kMixPartner] = 7;
  bool threw = false;
  try {
    op.call(x, params, 100.0);
  } catch (const c10::Error&) {
    threw = true;
  }
  ECG_CHECK(threw);
  std::puts("test_augment_views: ok");
  return 0;
}
