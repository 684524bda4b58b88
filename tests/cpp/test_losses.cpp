// ecgfast::nt_xent and ecgfast::byol_loss against their formulas, through the dispatcher.
#include <ATen/ATen.h>

#include <optional>

#include "check.h"

namespace {

// Cross-entropy over the logits of rows [offset, offset + n) of each view against all 2N columns.
double nt_xent_formula(const at::Tensor& z1, const at::Tensor& z2, double tau, int64_t offset, int64_t n) {
  const int64_t N = z1.size(0);
  auto hh = at::cat({z1, z2});
  hh = hh / hh.norm(2, {1}, true);
  const auto view1 = at::arange(offset, offset + n), view2 = at::arange(N + offset, N + offset + n);
  const auto self = at::cat({view1, view2}), target = at::cat({view2, view1});
  auto logits = at::mm(hh.index_select(0, self), hh.t()) / tau;
  logits.scatter_(1, self.unsqueeze(1), -std::numeric_limits<double>::infinity());
  return at::cross_entropy_loss(logits, target).item<double>();
}

}  // namespace

int main() {
  at::manual_seed(0);
  const int64_t N = 300, D = 16;  // 2N = 600 rows: several tiles of 256
  auto z1 = at::randn({N, D}, at::kDouble), z2 = at::randn({N, D}, at::kDouble);
  const double tau = 0.2;

  using Opt = const std::optional<at::Tensor>&;
  auto nt = find_op<std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, double, Opt,
                                                                    Opt, int64_t)>("ecgfast::nt_xent");
  auto [loss, h, lse] = nt.call(z1, z2, tau, std::nullopt, std::nullopt, 0);
  ECG_CHECK(std::abs(loss.item<double>() - nt_xent_formula(z1, z2, tau, 0, N)) < 1e-10);
  ECG_CHECK(h.sizes() == at::IntArrayRef({2 * N, D}) && lse.sizes() == at::IntArrayRef({2 * N}));

  // Data-parallel form: this rank's 100 rows from offset 120 against all 2N columns.
  const int64_t n = 100, offset = 120;
  auto [dloss, dh, dlse] = nt.call(z1.slice(0, offset, offset + n), z2.slice(0, offset, offset + n), tau, z1, z2,
                                   offset);
  ECG_CHECK(std::abs(dloss.item<double>() - nt_xent_formula(z1, z2, tau, offset, n)) < 1e-10);
  ECG_CHECK(dh.sizes() == at::IntArrayRef({2 * N, D}) && dlse.sizes() == at::IntArrayRef({2 * n}));

  auto byol = find_op<at::Tensor(const at::Tensor&, const at::Tensor&)>("ecgfast::byol_loss");
  auto p = at::randn({N, D}, at::kDouble), z = at::randn({N, D}, at::kDouble);
  auto cos = (p * z).sum(1) / (p.norm(2, {1}) * z.norm(2, {1}));
  ECG_CHECK(std::abs(byol.call(p, z).item<double>() - (2 - 2 * cos).mean().item<double>()) < 1e-12);
  std::puts("test_losses: ok");
  return 0;
}
