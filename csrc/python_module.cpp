// Lets `import ecgfast._C` load the shared library (which registers the ops
// with the dispatcher) without tying the extension to one Python ABI.
#include <Python.h>

extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr,
  };
  return PyModule_Create(&module_def);
}
}
