// ECG_CHECK, the C++ tests' one assertion: torch-free, so a test of plain kernel code can use it alone.
#pragma once
#include <cstdio>
#include <cstdlib>

#define ECG_CHECK(cond)                                                          \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::exit(1);                                                              \
    }                                                                            \
  } while (0)
