#include "pyhyprof.h"
int hyp_py_trace_init(PyObject *module) { (void)module; return 0; }
