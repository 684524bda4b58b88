// ecgfast::nt_xent -- the NT-Xent (SimCLR) loss computed in row tiles.
//
// Rows R = [normalise(z1); normalise(z2)] (2n x D), columns H (2N x D), logits
// S = R H^T / tau. Row i has a "self" column s(i), excluded, and a positive
// column p(i):
//   loss = 1/(2n) sum_i [ logsumexp_{j != s(i)} S_ij - S_{i, p(i)} ].
// Single process: H = R (N = n), s(i) = i, p(i) = i +- N.
// Data-parallel (lightly's NTXentLoss(gather_distributed=True)): z1, z2 are
// this rank's n rows, H = [normalise(z1_all); normalise(z2_all)] all ranks'
// columns and offset this rank's first row in the global batch, so row a of
// view 1 is global column offset + a with its positive at N + offset + a, and
// symmetrically for view 2. The mean over ranks of these losses is the global
// loss, and the column gradients summed over ranks (all_gather's backward)
// plus the row gradients give the global gradients.
//
// Rows are processed kTile at a time against all 2N columns, so memory is
// O((n + N) D + kTile N), never a 2n x 2N matrix; the backward recomputes each
// tile. Built from ATen ops only, the kernel is device-generic: registered for
// CompositeExplicitAutograd it serves CPU and CUDA tensors alike.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <limits>
#include <optional>

namespace ecgfast {
namespace {

constexpr int64_t kTile = 256;
constexpr double kInf = std::numeric_limits<double>::infinity();

void check(const at::Tensor& z1, const at::Tensor& z2, double temperature, const std::optional<at::Tensor>& z1_all,
           const std::optional<at::Tensor>& z2_all, int64_t offset) {
  TORCH_CHECK(z1.device() == z2.device(), "nt_xent: all tensors must be on one device, got z1 on ", z1.device(),
              " and z2 on ", z2.device());
  TORCH_CHECK(z1.dim() == 2 && z1.sizes() == z2.sizes(), "nt_xent: z1 and z2 must be (N, D) of one shape, got ",
              z1.sizes(), " and ", z2.sizes());
  TORCH_CHECK(z1.size(0) >= 1, "nt_xent: empty batch");
  TORCH_CHECK(at::isFloatingType(z1.scalar_type()) && z1.scalar_type() == z2.scalar_type(),
              "nt_xent: z1 and z2 must be floating point of one dtype");
  TORCH_CHECK(temperature > 0, "nt_xent: temperature must be positive, got ", temperature);
  TORCH_CHECK(z1_all.has_value() == z2_all.has_value(), "nt_xent: give both z1_all and z2_all, or neither");
  if (!z1_all.has_value()) {
    TORCH_CHECK(offset == 0, "nt_xent: offset ", offset, " without z1_all and z2_all");
    return;
  }
  const auto &a1 = *z1_all, &a2 = *z2_all;
  TORCH_CHECK(a1.device() == z1.device() && a2.device() == z1.device(),
              "nt_xent: all tensors must be on one device, got z1 on ", z1.device(), ", z1_all on ", a1.device(),
              " and z2_all on ", a2.device());
  TORCH_CHECK(a1.dim() == 2 && a1.sizes() == a2.sizes() && a1.size(1) == z1.size(1),
              "nt_xent: z1_all and z2_all must be (N, ", z1.size(1), ") of one shape, got ", a1.sizes(), " and ",
              a2.sizes());
  TORCH_CHECK(a1.scalar_type() == z1.scalar_type() && a2.scalar_type() == z1.scalar_type(),
              "nt_xent: z1_all and z2_all must have z1's dtype ", z1.scalar_type());
  TORCH_CHECK(offset >= 0 && offset + z1.size(0) <= a1.size(0), "nt_xent: rows [", offset, ", ",
              offset + z1.size(0), ") are not inside the ", a1.size(0), " gathered rows");
}

at::ScalarType compute_type(const at::Tensor& z) {
  return z.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;  // bf16/fp16 in float32
}

at::Tensor normalised(const at::Tensor& a, const at::Tensor& b, at::ScalarType dtype) {
  const auto z = at::cat({a, b}).to(dtype);
  return z / z.norm(2, {1}, true).clamp_min(1e-12);
}

// Through the normalisation h = z / |z|: dz = (dh - h (h . dh)) / |z|.
at::Tensor through_normalisation(const at::Tensor& dh, const at::Tensor& h, const at::Tensor& a,
                                 const at::Tensor& b) {
  const auto z = at::cat({a, b}).to(h.scalar_type());
  return (dh - h * (h * dh).sum(1, true)) / z.norm(2, {1}, true).clamp_min(1e-12);
}

// Rows [r0, r1) of a gradient as a tensor of their own in like's dtype: the schema promises
// outputs that alias neither each other nor an input, so two slices of one buffer won't do.
at::Tensor own_rows(const at::Tensor& grad, int64_t r0, int64_t r1, const at::Tensor& like) {
  return grad.slice(0, r0, r1).to(like.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
}

// Columns of the self (excluded) and positive entries of the 2n rows, in the 2N columns.
std::pair<at::Tensor, at::Tensor> self_and_positive(int64_t n, int64_t N, int64_t offset,
                                                    const at::TensorOptions& opt) {
  const auto o = opt.dtype(at::kLong);
  const auto view1 = at::arange(offset, offset + n, o), view2 = at::arange(N + offset, N + offset + n, o);
  return {at::cat({view1, view2}), at::cat({view2, view1})};
}

// Rows [r0, r1) of R against all columns: S / tau with each row's self column at -inf.
at::Tensor logits_tile(const at::Tensor& r, const at::Tensor& h, const at::Tensor& self, int64_t r0, int64_t r1,
                       double temperature) {
  auto s = at::mm(r.slice(0, r0, r1), h.t()).div_(temperature);
  return s.scatter_(1, self.slice(0, r0, r1).unsqueeze(1), -kInf);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> nt_xent_forward(const at::Tensor& z1, const at::Tensor& z2,
                                                               double temperature,
                                                               const std::optional<at::Tensor>& z1_all,
                                                               const std::optional<at::Tensor>& z2_all,
                                                               int64_t offset) {
  check(z1, z2, temperature, z1_all, z2_all, offset);
  const auto dtype = compute_type(z1);
  const auto r = normalised(z1, z2, dtype);
  const auto h = z1_all.has_value() ? normalised(*z1_all, *z2_all, dtype) : r;
  const int64_t M = r.size(0), n = M / 2, N = h.size(0) / 2;
  const auto [self, pos] = self_and_positive(n, N, offset, r.options());
  auto lse = at::empty({M}, r.options());
  for (int64_t r0 = 0; r0 < M; r0 += kTile) {
    const int64_t r1 = std::min(M, r0 + kTile);
    lse.slice(0, r0, r1).copy_(at::logsumexp(logits_tile(r, h, self, r0, r1, temperature), {1}));
  }
  const auto positive = (r * h.index_select(0, pos)).sum(1).div_(temperature);
  return std::make_tuple((lse - positive).mean(), h, lse);
}

// Single process, gradient w.r.t. H of row tile I: with P = softmax over j != i,
// A = (P - onehot(p(i))) / (2N), dH = (A + A^T) H / tau. S is symmetric, so the
// tile S_IJ also gives A_JI^T from lse_J: one pass, no column accumulator.
std::tuple<at::Tensor, at::Tensor> nt_xent_backward(const at::Tensor& grad, const at::Tensor& z1,
                                                    const at::Tensor& z2, const at::Tensor& h,
                                                    const at::Tensor& lse, double temperature) {
  const int64_t M = h.size(0), N = M / 2;
  auto dh = at::empty_like(h);
  const auto [self, pos] = self_and_positive(N, N, 0, h.options());
  for (int64_t r0 = 0; r0 < M; r0 += kTile) {
    const int64_t r1 = std::min(M, r0 + kTile);
    const auto s = logits_tile(h, h, self, r0, r1, temperature);  // exp(-inf) = 0 on the diagonal
    auto w = at::exp(s - lse.slice(0, r0, r1).unsqueeze(1)).add_(at::exp(s - lse.unsqueeze(0)));
    w.scatter_add_(1, pos.slice(0, r0, r1).unsqueeze(1), at::full({r1 - r0, 1}, -2.0, w.options()));
    dh.slice(0, r0, r1).copy_(at::mm(w, h));
  }
  dh.mul_(grad.to(h.scalar_type()) / (static_cast<double>(M) * temperature));  // a tensor: no host sync
  const auto dz = through_normalisation(dh, h, z1, z2);
  return std::make_tuple(own_rows(dz, 0, N, z1), own_rows(dz, N, M, z2));
}

// Data-parallel form: A = (P - onehot(p(i))) / (2n) for this rank's rows only,
// dR = A H / tau, dH = A^T R / tau, accumulated tile by tile.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> nt_xent_distributed_backward(
    const at::Tensor& grad, const at::Tensor& z1, const at::Tensor& z2, const at::Tensor& z1_all,
    const at::Tensor& z2_all, const at::Tensor& h, const at::Tensor& lse, double temperature, int64_t offset) {
  const auto r = normalised(z1, z2, h.scalar_type());  // recomputed: O(n D)
  const int64_t M = r.size(0), n = M / 2, N = h.size(0) / 2;
  const auto [self, pos] = self_and_positive(n, N, offset, r.options());
  auto dr = at::empty_like(r);
  auto dh = at::zeros_like(h);
  for (int64_t r0 = 0; r0 < M; r0 += kTile) {
    const int64_t r1 = std::min(M, r0 + kTile);
    auto w = at::exp(logits_tile(r, h, self, r0, r1, temperature).sub_(lse.slice(0, r0, r1).unsqueeze(1)));
    w.scatter_add_(1, pos.slice(0, r0, r1).unsqueeze(1), at::full({r1 - r0, 1}, -1.0, w.options()));
    dr.slice(0, r0, r1).copy_(at::mm(w, h));
    dh.addmm_(w.t(), r.slice(0, r0, r1));
  }
  const auto scale = grad.to(h.scalar_type()) / (static_cast<double>(M) * temperature);
  const auto dz = through_normalisation(dr.mul_(scale), r, z1, z2);
  const auto dz_all = through_normalisation(dh.mul_(scale), h, z1_all, z2_all);
  return std::make_tuple(own_rows(dz, 0, n, z1), own_rows(dz, n, M, z2), own_rows(dz_all, 0, N, z1_all),
                         own_rows(dz_all, N, 2 * N, z2_all));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(ecgfast, m) {
  // -> (loss, normalised columns H (2N, D), per-row logsumexp (2n,)), the latter two saved for backward.
  // Without z1_all/z2_all the columns are the rows (single process) and offset must be 0.
  m.def("nt_xent(Tensor z1, Tensor z2, float temperature, Tensor? z1_all=None, Tensor? z2_all=None, "
        "int offset=0) -> (Tensor, Tensor, Tensor)");
  // The backward ops are private (a leading underscore, as ATen's): only the autograd formula registered
  // in ecgfast/losses/simclr.py calls them, on the tensors the forward saved.
  m.def("_nt_xent_backward(Tensor grad, Tensor z1, Tensor z2, Tensor h, Tensor lse, float temperature) "
        "-> (Tensor, Tensor)");
  // -> gradients of z1, z2, z1_all, z2_all.
  m.def("_nt_xent_distributed_backward(Tensor grad, Tensor z1, Tensor z2, Tensor z1_all, Tensor z2_all, Tensor h, "
        "Tensor lse, float temperature, int offset) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(ecgfast, CompositeExplicitAutograd, m) {
  m.impl("nt_xent", &nt_xent_forward);
  m.impl("_nt_xent_backward", &nt_xent_backward);
  m.impl("_nt_xent_distributed_backward", &nt_xent_distributed_backward);
}

}  // namespace ecgfast
