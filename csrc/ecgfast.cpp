// The ecgfast operator library. Every op declares its schema exactly once, in
// its own csrc/<area>/<op>.cpp (TORCH_LIBRARY_FRAGMENT), with one kernel file
// per device under cpu/ and cuda/ -- the layout of torchvision/csrc/ops.
#include <torch/library.h>

TORCH_LIBRARY(ecgfast, m) {
  // Schemas live beside their ops; this block only opens the namespace.
}
