// ecgfast::byol_loss -- BYOL's normalised regression loss, mean_i (2 - 2 cos(p_i, z_i)),
// forward and backward each one pass over the rows.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(ecgfast, m) {
  m.def("byol_loss(Tensor p, Tensor z) -> Tensor");
  m.def("byol_loss_backward(Tensor grad, Tensor p, Tensor z) -> (Tensor, Tensor)");
}
