/* pyext/det.c: the deterministic mode's profiler type,
 * hyprof._hyprof.DetProfiler (its errors are hyprof.errors', from the module
 * state, pyext/module.c): the options (the
 * engine, builtins, the node limit, the CPU clock, a context), the methods
 * (start() and stop() run in det_session.c; write() and trace()
 * export the trees through det_export.c), the counters, and the object's
 * life. How the call events are received and counted: det.h lists the
 * files.
 *
 * Two ways to receive the interpreter's call events, with one bookkeeping:
 *   - "setprofile": a C Py_tracefunc on every thread (det_setprofile.c);
 *   - "monitoring" (3.12+): C callables registered with sys.monitoring under
 *     the profiler tool id (det_monitoring.c).
 * Both inline the same hot path (det_hot.h) into the call tree
 * (det_tree.h). Generators and coroutines are counted once per instance: a
 * resumption finds its instance's node again through the table of suspended
 * frames, so own and CPU time count only while the frame runs, and the
 * instance's cumulative wall time spans its first entry to its final exit. */
#include "det.h"

#include "hyprof/internal/util.h"

#include <errno.h>
#include <string.h>

#define DET_DEFAULT_MAX_NODES 1000000u


static PyMethodDef det_methods[];

static PyObject *hyp__det_py_start(det_prof_t *p, PyObject *unused) {
    (void)unused;
    return hyp__det_start(p);
}

/* stop()'s own C call, its PyMethodDef, leaves the profile with it. */
static PyObject *hyp__det_py_stop(det_prof_t *p, PyObject *unused) {
    (void)unused;
    return hyp__det_stop(p, &det_methods[1]);
}

static int hyp__det_py_init(det_prof_t *p, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"builtins", "engine",     "max_nodes", "cpu_clock",
                             "context",  "locks",      "exceptions", NULL};
    int builtins = 1, locks = 0, exceptions = 0;
    const char *engine = "auto", *cpu_clock = "auto";
    Py_ssize_t max_nodes = DET_DEFAULT_MAX_NODES;
    PyObject *context = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|psnsOpp:DetProfiler", kwlist, &builtins,
                                     &engine, &max_nodes, &cpu_clock, &context, &locks,
                                     &exceptions))
        return -1;
    if (context != Py_None &&
        (!PyTuple_Check(context) || PyTuple_GET_SIZE(context) != 2 ||
         !PyContextVar_CheckExact(PyTuple_GET_ITEM(context, 0)))) {
        PyErr_Format(hyp_py_profiler_error(),
                     "context=%R must be None or a (contextvars.ContextVar, value) pair: "
                     "calls count only while the variable holds the value", context);
        return -1;
    }
    if (p->funcs != NULL || p->running) {
        PyErr_SetString(hyp_py_profiler_error(), "a DetProfiler cannot be initialised twice");
        return -1;
    }
    if (engine == NULL || strcmp(engine, "auto") == 0) {
        p->engine = PY_VERSION_HEX >= 0x030C0000 ? DET_ENGINE_MONITORING : DET_ENGINE_SETPROFILE;
    } else if (strcmp(engine, "setprofile") == 0) {
        p->engine = DET_ENGINE_SETPROFILE;
    } else if (strcmp(engine, "monitoring") == 0) {
        if (PY_VERSION_HEX < 0x030C0000) {
            PyErr_SetString(hyp_py_profiler_error(),
                            "engine='monitoring' needs Python 3.12 or later (sys.monitoring); "
                            "use engine='setprofile' or 'auto'");
            return -1;
        }
        p->engine = DET_ENGINE_MONITORING;
    } else {
        PyErr_Format(hyp_py_profiler_error(),
                     "engine='%s' is not known: use 'auto', 'setprofile' or 'monitoring'", engine);
        return -1;
    }
    if (strcmp(cpu_clock, "auto") == 0) {
        p->cpu_flags = 0;
    } else if (strcmp(cpu_clock, "syscall") == 0) {
        p->cpu_flags = HYP_CPU_CLOCK_FORCE_SYSCALL;
    } else {
        PyErr_Format(hyp_py_profiler_error(),
                     "cpu_clock='%s' is not known: use 'auto' or 'syscall'", cpu_clock);
        return -1;
    }
    if (max_nodes < 0 || (size_t)max_nodes > (size_t)UINT32_MAX / 2) {
        PyErr_Format(hyp_py_profiler_error(),
                     "max_nodes=%zd is out of range: use 0 (no limit) up to %u", max_nodes,
                     UINT32_MAX / 2);
        return -1;
    }
    p->builtins = builtins;
    p->locks = locks;
    p->exceptions = exceptions;
    p->max_nodes = (size_t)max_nodes;
    if (context != Py_None) {
        Py_XSETREF(p->ctx_var, Py_NewRef(PyTuple_GET_ITEM(context, 0)));
        Py_XSETREF(p->ctx_value, Py_NewRef(PyTuple_GET_ITEM(context, 1)));
    }
    p->session = ++hyp__det_sessions;
    p->trunc_func = hyp__det_func_new(p, NULL, DET_FUNC_SPECIAL);
    if (p->trunc_func == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    p->trunc_func->key = &p->trunc_func;
    p->trunc_func->name = PyUnicode_FromString("[truncated]");
    p->replaced = PyList_New(0);
    if (p->trunc_func->name == NULL || p->replaced == NULL)
        return -1;
    return 0;
}

static PyObject *hyp__det_py_hide(det_prof_t *p, PyObject *codes) {
    if (!PyTuple_Check(codes)) {
        PyErr_SetString(PyExc_TypeError, "hide() takes a tuple of code objects");
        return NULL;
    }
    Py_INCREF(codes);
    Py_XSETREF(p->hidden, codes);
    Py_RETURN_NONE;
}

static PyObject *hyp__det_py_omit(det_prof_t *p, PyObject *args) {
    PyObject *cut, *skip;

    if (!PyArg_ParseTuple(args, "O!O!:omit", &PyTuple_Type, &cut, &PyTuple_Type, &skip))
        return NULL;
    Py_INCREF(cut);
    Py_INCREF(skip);
    Py_XSETREF(p->omit_cut, cut);
    Py_XSETREF(p->omit_skip, skip);
    Py_RETURN_NONE;
}

/* The object members of a profiler, so that traverse and clear cannot
 * disagree. */
#define DET_PROF_OBJECTS(X)                                                                    \
    X(omit_cut) X(omit_skip) X(hidden) X(argv) X(ctx_var) X(ctx_value) X(bootstrap) X(callbacks)

static int hyp__det_py_traverse(det_prof_t *p, visitproc visit, void *arg) {
#define DET_VISIT(m) Py_VISIT(p->m);
    DET_PROF_OBJECTS(DET_VISIT)
#undef DET_VISIT
    return 0;
}

static int hyp__det_py_clear(det_prof_t *p) {
#define DET_CLEAR(m) Py_CLEAR(p->m);
    DET_PROF_OBJECTS(DET_CLEAR)
#undef DET_CLEAR
    return 0;
}

static void hyp__det_py_dealloc(det_prof_t *p) {
    PyObject_GC_UnTrack(p);
    if (p->weakrefs != NULL)
        PyObject_ClearWeakRefs((PyObject *)p);
    hyp__det_py_clear(p);
    hyp__det_threads_free(p);
    hyp__det_funcs_free(p);
    hyp__det_gens_free(&p->gens);
    Py_XDECREF(p->missing);
    Py_XDECREF(p->replaced);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

/* The profile of a stopped profiler's trees; NULL with an exception set
 * while it runs or when out of memory. */
static hyp_profile_t *hyp__det_py_export_stopped(det_prof_t *p) {
    if (p->running) {
        PyErr_SetString(hyp_py_profiler_error(), "the profiler is running: stop() it first");
        return NULL;
    }
    return hyp__det_export(p);
}

static PyObject *hyp__det_py_write(det_prof_t *p, PyObject *arg) {
    hyp_profile_t *prof;
    PyObject *res;

    prof = hyp__det_py_export_stopped(p);
    if (prof == NULL)
        return NULL;
    res = hyp_py_save(prof, arg);
    hyp_profile_free(prof);
    return res;
}

static PyObject *hyp__det_py_trace(det_prof_t *p, PyObject *unused) {
    hyp_profile_t *prof;

    (void)unused;
    prof = hyp__det_py_export_stopped(p);
    if (prof == NULL)
        return NULL;
    return hyp_py_trace_take_profile(prof);
}

static PyObject *hyp__det_py_get_running(det_prof_t *p, void *closure) {
    (void)closure;
    return PyBool_FromLong(p->running);
}

static PyObject *hyp__det_py_get_engine(det_prof_t *p, void *closure) {
    (void)closure;
    return PyUnicode_FromString(p->engine == DET_ENGINE_MONITORING ? "monitoring" : "setprofile");
}

/* Counters a user or a test checks: nodes, functions, threads, truncations,
 * returns that matched no call, and the CPU clock reads by kind. */
static PyObject *hyp__det_py_get_counters(det_prof_t *p, void *closure) {
    det_thread_t *th;
    unsigned long long fast = 0, slow = 0;

    (void)closure;
    for (th = p->threads; th != NULL; th = th->next) {
        fast += th->cpu.reads;
        slow += th->cpu.resyncs;
    }
    return Py_BuildValue("{s:n,s:n,s:n,s:n,s:K,s:K,s:K,s:K,s:K,s:O}", "nodes",
                         (Py_ssize_t)p->nodes, "functions", (Py_ssize_t)p->nfuncs, "threads",
                         (Py_ssize_t)p->nthreads, "threads_holding_clocks", (Py_ssize_t)p->nlive, "truncated", (unsigned long long)p->truncated,
                         "unmatched", (unsigned long long)p->unmatched, "generators_lost",
                         (unsigned long long)p->gens.lost, "cpu_fast_reads", fast,
                         "cpu_resyncs", slow, "replaced", p->replaced);
}

static PyMethodDef det_methods[] = {
    {"start", (PyCFunction)hyp__det_py_start, METH_NOARGS,
     "Starts profiling every thread; raises ProfilerError over another profiler."},
    {"stop", (PyCFunction)hyp__det_py_stop, METH_NOARGS,
     "Stops profiling and closes the calls still open at this instant."},
    {"write", (PyCFunction)hyp__det_py_write, METH_O, "Writes the trace to a file."},
    {"trace", (PyCFunction)hyp__det_py_trace, METH_NOARGS, "Returns the profile as a hyprof.Trace."},
    {"hide", (PyCFunction)hyp__det_py_hide, METH_O,
     "Names the code objects of the wrappers that call stop(), left out of the profile."},
    {"omit", (PyCFunction)hyp__det_py_omit, METH_VARARGS,
     "omit(cut, skip): code objects of hyprof's own that the program calls, left out of the "
     "profile at stop: cut with their callees, skip alone."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef det_getset[] = {
    {"running", (getter)hyp__det_py_get_running, NULL, "Whether the profiler is running.", NULL},
    {"engine", (getter)hyp__det_py_get_engine, NULL, "'setprofile' or 'monitoring'.", NULL},
    {"counters", (getter)hyp__det_py_get_counters, NULL, "Bookkeeping counters (a dict).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject det_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hyprof._hyprof.DetProfiler",
    .tp_basicsize = sizeof(det_prof_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "DetProfiler(builtins=True, engine='auto', max_nodes=1000000, cpu_clock='auto')\n"
              "The deterministic profiler's engine; hyprof.Profiler wraps it.",
    .tp_weaklistoffset = offsetof(det_prof_t, weakrefs),
    .tp_traverse = (traverseproc)hyp__det_py_traverse,
    .tp_clear = (inquiry)hyp__det_py_clear,
    .tp_dealloc = (destructor)hyp__det_py_dealloc,
    .tp_init = (initproc)hyp__det_py_init,
    .tp_new = PyType_GenericNew,
    .tp_methods = det_methods,
    .tp_getset = det_getset,
};

int hyp_py_det_init(PyObject *module) {
    if (hyp__det_session_init() < 0 || hyp__det_func_init() < 0)
        return -1;
    if (PyType_Ready(&det_type) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "DetProfiler", (PyObject *)&det_type) < 0)
        return -1;
    if (PyModule_AddStringConstant(module, "DEFAULT_ENGINE",
                                   PY_VERSION_HEX >= 0x030C0000 ? "monitoring" : "setprofile") < 0)
        return -1;
    return 0;
}
