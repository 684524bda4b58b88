// ecgfast::nt_xent -- the NT-Xent (SimCLR) loss computed in row tiles.
//
// For H = [normalise(z1); normalise(z2)] (2N x D) and logits S = H H^T / tau,
//   loss = 1/(2N) sum_i [ logsumexp_{j != i} S_ij - S_{i, p(i)} ],  p(i) = i +- N.
// Rows are processed TILE at a time against all 2N columns, so memory is
// O(N D + TILE N), never the 2N x 2N matrix; the backward recomputes each tile.
// Built from ATen ops only, the kernel is device-generic: registered for
// CompositeExplicitAutograd it serves CPU, CUDA and meta (shape) tensors alike.
#include <ATen/ATen.h>
#include <torch/library.h>

namespace ecgfast {
namespace {

constexpr int64_t kTile = 256;

void check(const at::Tensor& z1, const at::Tensor& z2, double temperature) {
  TORCH_CHECK(z1.dim() == 2 && z1.sizes() == z2.sizes(), "nt_xent: z1 and z2 must be (N, D) of one shape, got ",
              z1.sizes(), " and ", z2.sizes());
  TORCH_CHECK(z1.size(0) >= 1, "nt_xent: empty batch");
  TORCH_CHECK(at::isFloatingType(z1.scalar_type()) && z1.scalar_type() == z2.scalar_type(),
              "nt_xent: z1 and z2 must be floating point of one dtype");
  TORCH_CHECK(temperature > 0, "nt_xent: temperature must be positive, got ", temperature);
}

// Rows i in [r0, r1) against all columns: S_ij / tau with the diagonal removed.
at::Tensor logits_tile(const at::Tensor& h, int64_t r0, int64_t r1, double temperature) {
  auto s = at::mm(h.slice(0, r0, r1), h.t()).div_(temperature);
  s.diagonal(/*offset=*/r0).fill_(-std::numeric_limits<double>::infinity());
  return s;
}

at::Tensor positives_of(const at::Tensor& h, int64_t N) {
  return at::cat({h.slice(0, N, 2 * N), h.slice(0, 0, N)});  // row i's positive is row p(i)
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> nt_xent_forward(const at::Tensor& z1, const at::Tensor& z2,
                                                               double temperature) {
  check(z1, z2, temperature);
  const auto dtype = z1.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;  // bf16/fp16 in float32
  const auto z = at::cat({z1, z2}).to(dtype);
  const auto h = z / z.norm(2, {1}, true).clamp_min(1e-12);
  const int64_t M = h.size(0), N = M / 2;
  auto lse = at::empty({M}, h.options());
  for (int64_t r0 = 0; r0 < M; r0 += kTile) {
    const int64_t r1 = std::min(M, r0 + kTile);
    lse.slice(0, r0, r1).copy_(at::logsumexp(logits_tile(h, r0, r1, temperature), {1}));
  }
  const auto pos = (h * positives_of(h, N)).sum(1).div_(temperature);
  const auto loss = (lse - pos).mean();
  return std::make_tuple(loss, h, lse);
}

// Gradient w.r.t. H of row tile I: with P = softmax over j != i, A = (P - onehot(p(i))) / (2N),
// dH = (A + A^T) H / tau. S is symmetric, so the tile S_IJ also gives A_JI^T from lse_J.
std::tuple<at::Tensor, at::Tensor> nt_xent_backward(const at::Tensor& grad, const at::Tensor& z1,
                                                    const at::Tensor& z2, const at::Tensor& h,
                                                    const at::Tensor& lse, double temperature) {
  const int64_t M = h.size(0), N = M / 2;
  auto dh = at::empty_like(h);
  const auto pos_index = at::cat({at::arange(N, M, h.options().dtype(at::kLong)),
                                  at::arange(0, N, h.options().dtype(at::kLong))});
  for (int64_t r0 = 0; r0 < M; r0 += kTile) {
    const int64_t r1 = std::min(M, r0 + kTile);
    const auto s = logits_tile(h, r0, r1, temperature);  // exp(-inf) = 0 on the diagonal
    auto w = at::exp(s - lse.slice(0, r0, r1).unsqueeze(1)).add_(at::exp(s - lse.unsqueeze(0)));
    w.scatter_add_(1, pos_index.slice(0, r0, r1).unsqueeze(1),
                   at::full({r1 - r0, 1}, -2.0, w.options()));
    dh.slice(0, r0, r1).copy_(at::mm(w, h));
  }
  dh.mul_(grad.to(h.scalar_type()) / (static_cast<double>(M) * temperature));
  // Through the normalisation h = z / |z|: dz = (dh - h (h . dh)) / |z|.
  const auto z = at::cat({z1, z2}).to(h.scalar_type());
  const auto dz = (dh - h * (h * dh).sum(1, true)) / z.norm(2, {1}, true).clamp_min(1e-12);
  return std::make_tuple(dz.slice(0, 0, N).to(z1.scalar_type()), dz.slice(0, N, M).to(z2.scalar_type()));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(ecgfast, m) {
  // -> (loss, normalised embeddings H (2N, D), per-row logsumexp (2N,)), the latter two saved for backward.
  m.def("nt_xent(Tensor z1, Tensor z2, float temperature) -> (Tensor, Tensor, Tensor)");
  m.def("nt_xent_backward(Tensor grad, Tensor z1, Tensor z2, Tensor h, Tensor lse, float temperature) "
        "-> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(ecgfast, CompositeExplicitAutograd, m) {
  m.impl("nt_xent", &nt_xent_forward);
  m.impl("nt_xent_backward", &nt_xent_backward);
}

}  // namespace ecgfast
