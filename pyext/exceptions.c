/* pyext/exceptions.c: exceptions raised, in both modes (exceptions.h). */
#include "exceptions.h"

#include "collect.h"
#include "det.h"
#include "hyprof/internal/util.h"
#include "walk.h"

#include <string.h>

const hyp_metric_t hyp_py_exc_metrics[HYP_PY_EXC_NMETRICS] = {
    {"exception_samples", "count", HYP_METRIC_OWN},
    {"exceptions", "count", HYP_METRIC_OWN},
};

#define HYP__EXC_MAX_TYPES 4096 /* names kept; later types share one */

static struct {
    int det_users;
    int users;           /* det_users and the collector's run */
    int tool;            /* the sys.monitoring tool id held, or -1 */
    PyObject *callback;  /* the RAISE callback */
    PyObject *raise;     /* sys.monitoring.events.RAISE, while the tool is held */
    PyObject *names;     /* type -> "<raise TYPE>" */
    PyObject *other;     /* the name past HYP__EXC_MAX_TYPES types */
    uint64_t interval;   /* N: one exception in N on average is a sample */
    uint64_t seen;       /* exceptions counted while the collector ran */
    hyp_collector_t col;
} X = {.tool = -1,
       .col = {hyp_py_exc_metrics,
               HYP_PY_EXC_NMETRICS,
               {{"exceptions", "exception_samples", "exceptions"}},
               1,
               "exceptions: out of memory"}};

#if PY_VERSION_HEX >= 0x030C0000
/* "<raise KeyError>", "<raise app.errors.NotFound>": a str kept for the
 * type (the deterministic mode's special function is keyed by it). */
static PyObject *hyp__name_of(PyTypeObject *type) {
    PyObject *name = PyDict_GetItemWithError(X.names, (PyObject *)type), *mod, *qual;

    if (name != NULL || PyErr_Occurred() || PyDict_GET_SIZE(X.names) >= HYP__EXC_MAX_TYPES) {
        PyErr_Clear();
        return name != NULL ? name : X.other;
    }
    mod = PyObject_GetAttrString((PyObject *)type, "__module__");
    qual = PyObject_GetAttrString((PyObject *)type, "__qualname__");
    PyErr_Clear(); /* a type without either is named by what it has */
    if (qual != NULL && PyUnicode_Check(qual)) {
        if (mod != NULL && PyUnicode_Check(mod) &&
            PyUnicode_CompareWithASCIIString(mod, "builtins") != 0)
            name = PyUnicode_FromFormat("<raise %U.%U>", mod, qual);
        else
            name = PyUnicode_FromFormat("<raise %U>", qual);
    }
    Py_XDECREF(mod);
    Py_XDECREF(qual);
    if (name == NULL || PyDict_SetItem(X.names, (PyObject *)type, name) < 0) {
        Py_XDECREF(name);
        PyErr_Clear();
        return X.other;
    }
    Py_DECREF(name); /* the dict holds it */
    return name;
}

/* The exception and traceback the calling thread's last report named. */
static __thread const PyObject *hyp__last_exc, *hyp__last_tb;

/* sys.monitoring's RAISE callback: (code, instruction_offset, exception).
 * It must not raise, and runs with no exception set (CPython keeps the one
 * being raised aside while it calls). */
static PyObject *hyp__on_raise(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *tb, *name;
    int first;

    (void)self;
    if (nargs != 3 || !PyExceptionInstance_Check(args[2]))
        Py_RETURN_NONE;
    tb = PyException_GetTraceback(args[2]);
    /* The same exception whose traceback grew by a caller's frame on top of
     * the one seen last on this thread is passing up to that caller;
     * anything else is a raise, of a new exception or of one again (raise e,
     * in the same frame or another). The addresses kept are only compared. */
    first = !(args[2] == hyp__last_exc && tb != NULL && PyTraceBack_Check(tb) &&
              hyp__last_tb != NULL &&
              (PyObject *)((PyTracebackObject *)tb)->tb_next == hyp__last_tb &&
              ((PyTracebackObject *)tb)->tb_frame !=
                  ((PyTracebackObject *)tb)->tb_next->tb_frame);
    hyp__last_exc = args[2];
    hyp__last_tb = tb;
    Py_XDECREF(tb);
    if (!first)
        Py_RETURN_NONE; /* passing through a caller of the frame that raised it */
    name = hyp__name_of(Py_TYPE(args[2]));
    if (X.det_users != 0) {
        det_special_t tok;

        if (hyp__det_special_enter(DET_SPECIAL_EXCEPTION, name, &tok))
            hyp__det_special_leave(&tok);
        PyErr_Clear();
    }
    if (X.col.running) {
        X.seen++;
        if (X.interval <= 1 || hyp_collect_uniform() * (double)X.interval < 1.0)
            hyp_collector_sample(&X.col, 0, X.interval, name, NULL, 0);
    }
    Py_RETURN_NONE;
}

static PyMethodDef hyp__on_raise_def = {"_hyprof_on_raise",
                                        (PyCFunction)(void (*)(void))hyp__on_raise, METH_FASTCALL,
                                        "hyprof's sys.monitoring RAISE callback."};
#endif

/* The tool id and the callback, at the first user. */
static int hyp__hook(void) {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *mon, *events, *r;
    static const int ids[] = {4, 3};
    size_t i;

    if (X.users++ != 0)
        return 0;
    if (X.names == NULL && ((X.names = PyDict_New()) == NULL ||
                            (X.other = PyUnicode_FromString("<raise another type>")) == NULL))
        goto fail;
    if (X.callback == NULL &&
        (X.callback = PyCFunction_New(&hyp__on_raise_def, NULL)) == NULL)
        goto fail;
    if ((mon = PySys_GetObject("monitoring")) == NULL) { /* borrowed */
        PyErr_SetString(hyp_py_profiler_error(), "sys.monitoring is missing");
        goto fail;
    }
    for (i = 0; i < HYP__ARRAY_SIZE(ids) && X.tool < 0; i++) {
        r = PyObject_CallMethod(mon, "use_tool_id", "is", ids[i], "hyprof-exceptions");
        if (r != NULL)
            X.tool = ids[i];
        else
            PyErr_Clear();
        Py_XDECREF(r);
    }
    if (X.tool < 0) {
        PyErr_SetString(hyp_py_profiler_error(),
                        "cannot count exceptions: sys.monitoring tool ids 3 and 4 are both "
                        "taken by other tools");
        goto fail;
    }
    events = PyObject_GetAttrString(mon, "events");
    X.raise = events != NULL ? PyObject_GetAttrString(events, "RAISE") : NULL;
    Py_XDECREF(events);
    r = X.raise != NULL ? PyObject_CallMethod(mon, "register_callback", "iOO", X.tool, X.raise,
                                              X.callback)
                        : NULL;
    Py_XDECREF(r);
    r = r != NULL ? PyObject_CallMethod(mon, "set_events", "iO", X.tool, X.raise) : NULL;
    if (r == NULL) {
        PyObject *f;
        HYP_PY_EXC_SAVE(exc);
        f = PyObject_CallMethod(mon, "free_tool_id", "i", X.tool);
        Py_XDECREF(f);
        PyErr_Clear();
        HYP_PY_EXC_RESTORE(exc);
        X.tool = -1;
        Py_CLEAR(X.raise);
        goto fail;
    }
    Py_DECREF(r);
    return 0;
fail:
    X.users--;
    return -1;
#else
    PyErr_SetString(hyp_py_profiler_error(),
                    "exceptions=True needs Python 3.12 or later: hyprof counts raises through "
                    "sys.monitoring's RAISE event, which this Python does not have");
    return -1;
#endif
}

static void hyp__unhook(void) {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *mon, *r;

    if (X.users == 0 || --X.users != 0 || X.tool < 0)
        return;
    HYP_PY_EXC_SAVE(exc);
    mon = PySys_GetObject("monitoring");
    if (mon != NULL) {
        r = PyObject_CallMethod(mon, "set_events", "ii", X.tool, 0);
        Py_XDECREF(r);
        r = PyObject_CallMethod(mon, "register_callback", "iOO", X.tool, X.raise, Py_None);
        Py_XDECREF(r);
        r = PyObject_CallMethod(mon, "free_tool_id", "i", X.tool);
        Py_XDECREF(r);
    }
    PyErr_Clear();
    HYP_PY_EXC_RESTORE(exc);
    X.tool = -1;
    Py_CLEAR(X.raise);
#endif
}

int hyp_py_exc_det_retain(void) {
    if (hyp__hook() < 0)
        return -1;
    X.det_users++;
    return 0;
}

void hyp_py_exc_det_release(void) {
    if (X.det_users == 0)
        return;
    X.det_users--;
    hyp__unhook();
}

/* exceptions_start(interval, depth): the sampled collector starts a run. */
static PyObject *hyp__exc_start(PyObject *self, PyObject *args) {
    unsigned long long interval;
    int depth;

    (void)self;
    if (!PyArg_ParseTuple(args, "Ki:exceptions_start", &interval, &depth))
        return NULL;
    if (interval == 0 || depth < 1 || depth > HYP_WALK_MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError, "exceptions_start: interval and depth out of range");
        return NULL;
    }
    if (hyp__hook() < 0)
        return NULL;
    if (hyp_collector_start(&X.col, depth) < 0) {
        hyp__unhook(); /* a run that goes on keeps its own use */
        return NULL;
    }
    if (hyp_profile_set_meta_int(X.col.prof, "exception_interval", (int64_t)interval) < 0) {
        hyp_collector_reset(&X.col);
        hyp__unhook();
        return PyErr_NoMemory();
    }
    X.interval = interval;
    X.seen = 0;
    Py_RETURN_NONE;
}

static PyObject *hyp__exc_stop(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    if (!X.col.running) {
        PyErr_SetString(hyp_py_profiler_error(), "exceptions are not being sampled");
        return NULL;
    }
    hyp_collector_stop(&X.col);
    hyp__unhook();
    Py_RETURN_NONE;
}

static PyObject *hyp__exc_stats(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return Py_BuildValue("{s:K,s:K,s:K,s:O}", "raised", X.seen, "sampled", X.col.sampled[0],
                         "failed", X.col.failed, "running", X.col.running ? Py_True : Py_False);
}

static PyObject *hyp__exc_after_fork(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    if (X.col.running)
        hyp__unhook();
    hyp_collector_reset(&X.col);
    Py_RETURN_NONE;
}

hyp_collector_t *hyp_py_exc_collector(void) {
    return &X.col;
}

static PyMethodDef hyp__exc_functions[] = {
    {"exceptions_start", hyp__exc_start, METH_VARARGS,
     "exceptions_start(interval, depth): samples one raised exception in interval "
     "(docs/exceptions.md) until exceptions_stop(); the sampling profiler's stop merges them "
     "into its trace."},
    {"exceptions_stop", hyp__exc_stop, METH_NOARGS, "Stops sampling exceptions."},
    {"exceptions_stats", hyp__exc_stats, METH_NOARGS,
     "The collector's counts: exceptions raised while it ran, and sampled."},
    {"_exceptions_after_fork", hyp__exc_after_fork, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

int hyp_py_exc_init(PyObject *module) {
    X.col.trunc_func = HYP_NO_ID;
    return PyModule_AddFunctions(module, hyp__exc_functions);
}
