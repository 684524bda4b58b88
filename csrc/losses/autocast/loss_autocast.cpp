// Autocast kernels of the loss ops: a loss is computed in float32 whatever the
// caller's autocast. Without them, the at::mm inside nt_xent (and its backward)
// would be re-dispatched through the Autocast key and run in bf16/fp16, while the
// positive logit stays in float32: at low losses the gradient then points the
// wrong way. Each kernel casts bf16/fp16 inputs to float32 (float64 stays), turns
// autocast off for everything below it, and calls the op again. The casts sit
// above autograd, so gradients flow back to the caller's dtype.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

namespace ecgfast {
namespace {

at::Tensor to_float32(const at::Tensor& t) {
  const auto s = t.scalar_type();
  return s == at::kHalf || s == at::kBFloat16 ? t.to(at::kFloat) : t;
}

std::optional<at::Tensor> to_float32(const std::optional<at::Tensor>& t) {
  return t.has_value() ? std::optional<at::Tensor>(to_float32(*t)) : std::nullopt;
}

// The op below the Autocast key, looked up once.
template <typename Signature>
c10::TypedOperatorHandle<Signature> op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

using Tensors2 = std::tuple<at::Tensor, at::Tensor>;
using Tensors3 = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using Tensors4 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

Tensors3 nt_xent_autocast(const at::Tensor& z1, const at::Tensor& z2, double temperature,
                          const std::optional<at::Tensor>& z1_all, const std::optional<at::Tensor>& z2_all,
                          int64_t offset) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  static const auto call = op<Tensors3(const at::Tensor&, const at::Tensor&, double, const std::optional<at::Tensor>&,
                                       const std::optional<at::Tensor>&, int64_t)>("ecgfast::nt_xent");
  return call.call(to_float32(z1), to_float32(z2), temperature, to_float32(z1_all), to_float32(z2_all), offset);
}

Tensors2 nt_xent_backward_autocast(const at::Tensor& grad, const at::Tensor& z1, const at::Tensor& z2,
                                   const at::Tensor& h, const at::Tensor& lse, double temperature) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  static const auto call = op<Tensors2(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                       const at::Tensor&, double)>("ecgfast::_nt_xent_backward");
  return call.call(to_float32(grad), to_float32(z1), to_float32(z2), to_float32(h), to_float32(lse), temperature);
}

Tensors4 nt_xent_distributed_backward_autocast(const at::Tensor& grad, const at::Tensor& z1, const at::Tensor& z2,
                                               const at::Tensor& z1_all, const at::Tensor& z2_all,
                                               const at::Tensor& h, const at::Tensor& lse, double temperature,
                                               int64_t offset) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  static const auto call =
      op<Tensors4(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                  const at::Tensor&, const at::Tensor&, double, int64_t)>("ecgfast::_nt_xent_distributed_backward");
  return call.call(to_float32(grad), to_float32(z1), to_float32(z2), to_float32(z1_all), to_float32(z2_all),
                   to_float32(h), to_float32(lse), temperature, offset);
}

at::Tensor byol_loss_autocast(const at::Tensor& p, const at::Tensor& z) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  static const auto call = op<at::Tensor(const at::Tensor&, const at::Tensor&)>("ecgfast::byol_loss");
  return call.call(to_float32(p), to_float32(z));
}

Tensors2 byol_loss_backward_autocast(const at::Tensor& grad, const at::Tensor& p, const at::Tensor& z) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  static const auto call =
      op<Tensors2(const at::Tensor&, const at::Tensor&, const at::Tensor&)>("ecgfast::_byol_loss_backward");
  return call.call(to_float32(grad), to_float32(p), to_float32(z));
}

void register_autocast(torch::Library& m) {
  m.impl("nt_xent", &nt_xent_autocast);
  m.impl("_nt_xent_backward", &nt_xent_backward_autocast);
  m.impl("_nt_xent_distributed_backward", &nt_xent_distributed_backward_autocast);
  m.impl("byol_loss", &byol_loss_autocast);
  m.impl("_byol_loss_backward", &byol_loss_backward_autocast);
}

}  // namespace

TORCH_LIBRARY_IMPL(ecgfast, AutocastCPU, m) { register_autocast(m); }
TORCH_LIBRARY_IMPL(ecgfast, AutocastCUDA, m) { register_autocast(m); }

}  // namespace ecgfast
