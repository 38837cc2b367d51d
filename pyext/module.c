/* The _hyprof extension module: one module, made of parts that each register
 * their types and functions here. */
#include "pyhyprof.h"

#include "alloc.h"
#include "sampler.h"

static int hyp_py_exec(PyObject *module) {
    if (hyp_py_trace_read_init(module) < 0 || hyp_py_trace_write_init(module) < 0)
        return -1;
    if (hyp_py_det_init(module) < 0)
        return -1;
    if (hyp_py_alloc_init(module) < 0)
        return -1;
    if (hyp_py_sampler_init(module) < 0)
        return -1;
    if (PyModule_AddStringConstant(module, "__version__", HYP_VERSION_STRING) < 0)
        return -1;
    return 0;
}

static PyModuleDef_Slot hyp_py_slots[] = {
    {Py_mod_exec, hyp_py_exec},
    {0, NULL},
};

static struct PyModuleDef hyp_py_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hyprof._hyprof",
    .m_doc = "The C engine of hyprof: profile hooks, the sampler and the trace reader.",
    .m_size = 0,
    .m_slots = hyp_py_slots,
};

PyMODINIT_FUNC PyInit__hyprof(void);

PyMODINIT_FUNC PyInit__hyprof(void) {
    return PyModuleDef_Init(&hyp_py_module);
}
