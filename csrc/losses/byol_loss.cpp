// ecgfast::byol_loss -- BYOL's normalised regression loss, mean_i (2 - 2 cos(p_i, z_i)),
// forward and backward each one pass over the rows.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(ecgfast, m) {
  m.def("byol_loss(Tensor p, Tensor z) -> Tensor");
  // Private: only the autograd formula registered in ecgfast/losses/byol.py calls it.
  m.def("_byol_loss_backward(Tensor grad, Tensor p, Tensor z) -> (Tensor, Tensor)");
}
