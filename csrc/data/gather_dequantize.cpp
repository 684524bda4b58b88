// ecgfast::gather_dequantize -- fetch a batch from int16 storage as mV.
//
// The HDF5 cache keeps signals as the WFDB ADC integers (int16) with a gain
// and baseline per lead, so a batch is a gather of rows plus an affine map.
// Doing both in one pass avoids materialising the int16 batch.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(ecgfast, m) {
  // raw: (N, C, T) int16, index: (B,) int64 into N, gain/baseline: (C,) float32
  // -> (B, C, T) float32 with out[b, c, t] = (raw[index[b], c, t] - baseline[c]) / gain[c]
  m.def("gather_dequantize(Tensor raw, Tensor index, Tensor gain, Tensor baseline) -> Tensor");
  // The same into a caller's (B, C, T) float32 buffer: a loader that recycles its batch memory
  // (the corpus stream) skips the allocation and the page faults of a fresh batch. It returns
  // nothing (not an alias of out) so that torch.compile can functionalize it.
  m.def("gather_dequantize.out(Tensor raw, Tensor index, Tensor gain, Tensor baseline, *, Tensor(a!) out) -> ()");
}
