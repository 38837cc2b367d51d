/* The _hyprof extension module: one module, made of parts that each register
 * their types and functions here. */
#include "pyhyprof.h"

#include "alloc.h"
#include "labels.h"
#include "exceptions.h"
#include "locks.h"
#include "sampler.h"

/* The loaded module's state; NULL before its exec and after its clear. */
static hyp_py_state_t *hyp_py_st;

PyObject *hyp_py_profiler_error(void) {
    return hyp_py_st != NULL ? hyp_py_st->profiler_error : PyExc_RuntimeError;
}

PyObject *hyp_py_event_error(void) {
    return hyp_py_st != NULL ? hyp_py_st->event_error : PyExc_RuntimeError;
}

PyObject *hyp_py_trace_error(void) {
    return hyp_py_st != NULL ? hyp_py_st->trace_error : PyExc_ValueError;
}

/* Takes the exception classes from hyprof.errors, which imports nothing, so
 * loading it here cannot come back to this module. */
static int hyp__module_errors_init(PyObject *module, hyp_py_state_t *st) {
    PyObject *errors = PyImport_ImportModule("hyprof.errors");

    if (errors == NULL)
        return -1;
    st->profiler_error = PyObject_GetAttrString(errors, "ProfilerError");
    st->event_error = PyObject_GetAttrString(errors, "EventError");
    st->trace_error = PyObject_GetAttrString(errors, "TraceError");
    Py_DECREF(errors);
    if (st->profiler_error == NULL || st->event_error == NULL || st->trace_error == NULL)
        return -1;
    hyp_py_st = st;
    return 0;
}

static int hyp__module_exec(PyObject *module) {
    if (hyp__module_errors_init(module, PyModule_GetState(module)) < 0)
        return -1;
    if (hyp_py_trace_read_init(module) < 0 || hyp_py_trace_write_init(module) < 0)
        return -1;
    if (hyp_py_det_init(module) < 0)
        return -1;
    if (hyp_py_alloc_init(module) < 0)
        return -1;
    if (hyp_py_labels_init(module) < 0)
        return -1;
    if (hyp_py_locks_init(module) < 0 || hyp_py_exc_init(module) < 0)
        return -1;
    if (hyp_py_sampler_init(module) < 0)
        return -1;
    if (PyModule_AddStringConstant(module, "__version__", HYP_VERSION_STRING) < 0)
        return -1;
    return 0;
}

static PyModuleDef_Slot hyp_py_slots[] = {
    {Py_mod_exec, hyp__module_exec},
    {0, NULL},
};

static int hyp__module_traverse(PyObject *module, visitproc visit, void *arg) {
    hyp_py_state_t *st = PyModule_GetState(module);

    Py_VISIT(st->profiler_error);
    Py_VISIT(st->event_error);
    Py_VISIT(st->trace_error);
    return 0;
}

static int hyp__module_clear(PyObject *module) {
    hyp_py_state_t *st = PyModule_GetState(module);

    if (hyp_py_st == st)
        hyp_py_st = NULL;
    Py_CLEAR(st->profiler_error);
    Py_CLEAR(st->event_error);
    Py_CLEAR(st->trace_error);
    return 0;
}

static void hyp__module_free(void *module) {
    hyp__module_clear((PyObject *)module);
}

static struct PyModuleDef hyp_py_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hyprof._hyprof",
    .m_doc = "The C engine of hyprof: profile hooks, the sampler and the trace reader.",
    .m_size = sizeof(hyp_py_state_t),
    .m_slots = hyp_py_slots,
    .m_traverse = hyp__module_traverse,
    .m_clear = hyp__module_clear,
    .m_free = hyp__module_free,
};

PyMODINIT_FUNC PyInit__hyprof(void);

PyMODINIT_FUNC PyInit__hyprof(void) {
    return PyModuleDef_Init(&hyp_py_module);
}
