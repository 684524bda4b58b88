// ecgfast::augment_views -- both views of a batch through the seven ECG
// augmentations, fused into one pass per (view, sample, lead).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(ecgfast, m) {
  // x: (B, C, T) float32 in mV; params: (2, B, P) float64 per-view, per-sample
  // parameters (ecgfast/augment/params.py); -> (2, B, C, T) float32.
  m.def("augment_views(Tensor x, Tensor params, float sampling_rate) -> Tensor");
}
