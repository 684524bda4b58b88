// Minimal test harness for the kernels' C++ tests (run by ctest).
#pragma once
#include <ATen/core/dispatch/Dispatcher.h>
#include <cstdio>
#include <cstdlib>

#define ECG_CHECK(cond)                                                          \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::exit(1);                                                              \
    }                                                                            \
  } while (0)

// The op as the dispatcher sees it, e.g. find_op<Sig>("ecgfast::gather_dequantize", "out").
template <typename Sig>
c10::TypedOperatorHandle<Sig> find_op(const char* name, const char* overload = "") {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, overload).template typed<Sig>();
}
