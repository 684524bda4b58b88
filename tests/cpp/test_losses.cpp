// ecgfast::nt_xent and ecgfast::byol_loss against their formulas, through the dispatcher.
#include <ATen/ATen.h>

#include "check.h"

int main() {
  at::manual_seed(0);
  const int64_t N = 300, D = 16;  // 2N = 600 rows: several tiles of 256
  auto z1 = at::randn({N, D}, at::kDouble), z2 = at::randn({N, D}, at::kDouble);
  const double tau = 0.2;

  auto nt = find_op<std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, double)>(
      "ecgfast::nt_xent");
  auto [loss, h, lse] = nt.call(z1, z2, tau);
  // The plain formula: cross-entropy over the 2N x 2N logits with the diagonal removed.
  auto hh = at::cat({z1, z2});
  hh = hh / hh.norm(2, {1}, true);
  auto logits = at::mm(hh, hh.t()) / tau;
  logits.diagonal().fill_(-std::numeric_limits<double>::infinity());
  auto target = at::cat({at::arange(N, 2 * N), at::arange(0, N)});
  auto ref = at::cross_entropy_loss(logits, target);
  ECG_CHECK(std::abs(loss.item<double>() - ref.item<double>()) < 1e-10);
  ECG_CHECK(h.sizes() == at::IntArrayRef({2 * N, D}) && lse.sizes() == at::IntArrayRef({2 * N}));

  auto byol = find_op<at::Tensor(const at::Tensor&, const at::Tensor&)>("ecgfast::byol_loss");
  auto p = at::randn({N, D}, at::kDouble), z = at::randn({N, D}, at::kDouble);
  auto cos = (p * z).sum(1) / (p.norm(2, {1}) * z.norm(2, {1}));
  ECG_CHECK(std::abs(byol.call(p, z).item<double>() - (2 - 2 * cos).mean().item<double>()) < 1e-12);
  std::puts("test_losses: ok");
  return 0;
}
