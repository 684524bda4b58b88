// ecgfast::augment_views -- both views of a batch through the seven ECG
// augmentations, fused into one pass per (view, sample, lead), after an
// optional step 0 that crops each view (short crop, random-resized-crop).
#include <torch/library.h>

#include <string>
#include <vector>

#include "augment/augment_lead.h"

namespace ecgfast {
namespace {

// The parameter row's column names in the kernels' order (ECGFAST_AUGMENT_COLUMNS).
std::vector<std::string> augment_param_layout() {
  return {
#define ECGFAST_AUGMENT_COLUMN_NAME(id, name) name,
      ECGFAST_AUGMENT_COLUMNS(ECGFAST_AUGMENT_COLUMN_NAME)
#undef ECGFAST_AUGMENT_COLUMN_NAME
  };
}

int64_t augment_bandpass_pad() { return augment::kBandpassPad; }

}  // namespace
}  // namespace ecgfast

TORCH_LIBRARY_FRAGMENT(ecgfast, m) {
  // x: (B, C, T) float32 in mV; params: (2, B, P) float64 per-view, per-sample
  // parameters (ecgfast/augment/params.py); -> (2, B, C, L) float32.
  // view_length L: None, views are the whole record (no crop step; the crop
  // columns are not read, the seed's op); an int <= T, each view is first
  // cropped to L samples by its crop columns (augment_lead.h: crop_sample),
  // then the seven augmentations run on the crops, partners reading the
  // partner's crop of the same view.
  m.def("augment_views(Tensor x, Tensor params, float sampling_rate, int? view_length=None) -> Tensor");
  // What the kernels were compiled with, for ecgfast/augment/params.py to check its COLUMNS and
  // BANDPASS_PADLEN against at import (no tensor: one kernel for every call).
  m.def("augment_param_layout() -> str[]", &ecgfast::augment_param_layout);
  m.def("augment_bandpass_pad() -> int", &ecgfast::augment_bandpass_pad);
}
