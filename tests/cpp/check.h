// Minimal test harness for the kernels' C++ tests (run by ctest).
#pragma once
#include <ATen/core/dispatch/Dispatcher.h>

#include "check_macro.h"

// The op as the dispatcher sees it, e.g. find_op<Sig>("ecgfast::gather_dequantize", "out").
template <typename Sig>
c10::TypedOperatorHandle<Sig> find_op(const char* name, const char* overload = "") {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, overload).template typed<Sig>();
}
