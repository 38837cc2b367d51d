/* pyext/det_setprofile.c: the deterministic mode's "setprofile" engine: a C
 * Py_tracefunc installed on every thread with _PyEval_SetProfile(); the
 * threads started later are caught through threading.setprofile(), whose
 * hook swaps itself for the C function on its thread. The profile function
 * of the profiler without a context records into it; the one of the
 * context-bound profilers into the profiler the running context picks
 * (det_hot.h). A generator's frame tells a suspension from a return by the
 * instruction it stands on. Also: installing the hooks, removing them (and
 * naming the threads where another tool replaced them), and describing a
 * foreign profile function for start()'s refusal. */
#include "det_hot.h"

#include <string.h>

static inline PyCodeObject *hyp__frame_code(PyFrameObject *frame) {
#if PY_VERSION_HEX >= 0x030D0000
    return (PyCodeObject *)frame->f_frame->f_executable;
#else
    return frame->f_frame->f_code;
#endif
}

/* The instruction a frame stands on, seen through sys.monitoring's line and
 * instruction instrumentation (3.12+, Include/cpython/code.h). */
static int hyp__frame_opcode(PyCodeObject *co, int lasti_bytes) {
    int i = lasti_bytes / 2;
    int op;

    if (lasti_bytes < 0 || i >= Py_SIZE(co))
        return -1;
    op = ((const uint8_t *)co->co_code_adaptive)[i * 2];
#if PY_VERSION_HEX >= 0x030C0000
    if (co->_co_monitoring != NULL) {
        if (op == INSTRUMENTED_LINE && co->_co_monitoring->lines != NULL)
            op = co->_co_monitoring->lines[i].original_opcode;
        if (op == INSTRUMENTED_INSTRUCTION && co->_co_monitoring->per_instruction_opcodes != NULL)
            op = co->_co_monitoring->per_instruction_opcodes[i];
    }
#endif
    return op;
}

/* A generator frame leaves either by returning, by unwinding (arg NULL) or
 * by suspending; the return instructions tell the first from the last. The
 * instruction pointer is on the return when the hook runs (on YIELD_VALUE
 * for a suspension before 3.13, on the RESUME after it since). */
static int hyp__frame_suspends(PyFrameObject *frame, PyCodeObject *co, PyObject *arg) {
    int op;

    if (arg == NULL)
        return 0;
    op = hyp__frame_opcode(co, PyFrame_GetLasti(frame));
    switch (op) {
    case RETURN_VALUE:
#if PY_VERSION_HEX >= 0x030C0000
    case RETURN_CONST:
    case INSTRUMENTED_RETURN_VALUE:
    case INSTRUMENTED_RETURN_CONST:
#endif
        return 0;
    default:
        return 1;
    }
}

/* A generator frame enters fresh on its function-start RESUME (or before it,
 * for a throw() into an unstarted generator); later entries are resumptions. */
static int hyp__frame_is_fresh(PyFrameObject *frame, PyCodeObject *co) {
    return PyFrame_GetLasti(frame) <= co->_co_firsttraceable * 2;
}

/* ------------------------------------------------------------ the hooks */

/* One event for p on the calling thread (th). */
static inline void hyp__trace_event(det_prof_t *p, det_thread_t *th, PyFrameObject *frame, int what,
                               PyObject *arg) {
    PyCodeObject *co;
    uint64_t wall, cpu;

    cpu = hyp_cpu_clock_read(&th->cpu, &wall);
    switch (what) {
    case PyTrace_CALL:
        co = hyp__frame_code(frame);
        if (DET_UNLIKELY(co->co_flags & DET_GEN_FLAGS))
            hyp__det_enter(p, th, co, NULL, NULL, frame, hyp__frame_is_fresh(frame, co), wall, cpu);
        else
            hyp__det_enter(p, th, co, NULL, NULL, NULL, 1, wall, cpu);
        break;
    case PyTrace_RETURN:
        co = hyp__frame_code(frame);
        hyp__det_leave(p, th, co,
                  DET_UNLIKELY(co->co_flags & DET_GEN_FLAGS) ? hyp__frame_suspends(frame, co, arg) : 0,
                  wall, cpu);
        break;
    case PyTrace_C_CALL:
        if (PyCFunction_Check(arg))
            hyp__det_enter(p, th, ((PyCFunctionObject *)arg)->m_ml, arg, NULL, NULL, 1, wall, cpu);
        break;
    case PyTrace_C_RETURN:
    case PyTrace_C_EXCEPTION:
        if (PyCFunction_Check(arg))
            hyp__det_leave(p, th, ((PyCFunctionObject *)arg)->m_ml, 0, wall, cpu);
        break;
    default:
        break;
    }
    th->last_wall = wall;
    th->last_cpu = cpu;
}

/* The profile function of the profiler without a context (obj). */
static int hyp__det_tracefunc(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg) {
    det_prof_t *p = (det_prof_t *)obj;
    det_thread_t *th;

    if (what >= PyTrace_C_CALL && !p->builtins)
        return 0;
    th = hyp__det_thread_get(p);
    if (DET_UNLIKELY(th == NULL)) {
        HYP_PY_EXC_SAVE(exc);
        th = hyp__det_thread_slow(p);
        HYP_PY_EXC_RESTORE(exc);
        if (th == NULL) {
            hyp__det_set_error(p, HYP_ENOMEM);
            return 0;
        }
    }
    hyp__trace_event(p, th, frame, what, arg);
    return 0;
}

/* The profile function of the context-bound profilers (obj, their
 * threading hook, unused): the event goes to the profiler of the running
 * context, if any. */
int hyp__det_ctx_tracefunc(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg) {
    det_thread_t *th;
    det_prof_t *p = hyp__det_pick(&th);

    (void)obj;
    if (p == NULL || (what >= PyTrace_C_CALL && !p->builtins))
        return 0;
    hyp__trace_event(p, th, frame, what, arg);
    return 0;
}

/* threading.setprofile()'s hook, run by each thread started while profiling:
 * it installs the C function on its thread in place of itself. self is the
 * profiler without a context, or None for the context-bound ones. */
static PyObject *hyp__det_bootstrap(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    det_prof_t *p = (det_prof_t *)self;

    (void)args;
    (void)nargs;
    if (self == Py_None) {
        if (hyp__det_group.n != 0 && hyp__det_group.engine == DET_ENGINE_SETPROFILE)
            PyEval_SetProfile(hyp__det_ctx_tracefunc, hyp__det_group.bootstrap);
        else
            PyEval_SetProfile(NULL, NULL);
    } else if (hyp__det_active == p && p->running && p->engine == DET_ENGINE_SETPROFILE) {
        PyEval_SetProfile(hyp__det_tracefunc, (PyObject *)p);
    } else {
        PyEval_SetProfile(NULL, NULL);
    }
    Py_RETURN_NONE;
}

static PyMethodDef det_bootstrap_def = {"_hyprof_thread_bootstrap", (PyCFunction)(void (*)(void))hyp__det_bootstrap,
                                        METH_FASTCALL, NULL};

/* ------------------------------------------------------------ installing */

/* Describes a foreign profile function for the refusal message. */
PyObject *hyp__det_describe_profiler(PyThreadState *ts) {
    PyObject *obj = ts->c_profileobj;
    const char *tname = obj != NULL ? Py_TYPE(obj)->tp_name : "no object";
    PyTypeObject *t;

    for (t = obj != NULL ? Py_TYPE(obj) : NULL; t != NULL; t = t->tp_base)
        if (strcmp(t->tp_name, "_lsprof.Profiler") == 0)
            return PyUnicode_FromFormat("cProfile (%s)", tname);
    if (obj != NULL && PyCallable_Check(obj) && !PyType_Check(obj)) {
        PyObject *r = PyObject_Repr(obj);
        if (r != NULL) {
            PyObject *s = PyUnicode_FromFormat("%s %U", tname, r);
            Py_DECREF(r);
            return s;
        }
        PyErr_Clear();
    }
    return PyUnicode_FromFormat("a C profile function with a %s object", tname);
}

/* threading's hook for the threads started later (threading.getprofile()),
 * a new reference; NULL with no exception if it cannot be read. */
PyObject *hyp__det_threading_getprofile(void) {
    PyObject *threading = PyImport_ImportModule("threading"), *r = NULL;

    if (threading != NULL) {
        r = PyObject_CallMethod(threading, "getprofile", NULL);
        Py_DECREF(threading);
    }
    if (r == NULL)
        PyErr_Clear();
    return r;
}

static int hyp__threading_setprofile(PyObject *hook) {
    PyObject *threading = PyImport_ImportModule("threading"), *r;

    if (threading == NULL)
        return -1;
    r = PyObject_CallMethod(threading, "setprofile", "O", hook);
    Py_DECREF(threading);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* Whether hook is bootstrap, or a hook that hands new threads on to it
 * (one that names what it wraps in __wrapped__, as hyprof's sampler does). */
static int hyp__hook_chains_to(PyObject *hook, PyObject *bootstrap) {
    PyObject *h = Py_NewRef(hook);
    int depth, found = 0;

    for (depth = 0; h != NULL && h != Py_None && depth < 16; depth++) {
        PyObject *next;
        if (h == bootstrap) {
            found = 1;
            break;
        }
        next = PyObject_GetAttrString(h, "__wrapped__");
        if (next == NULL)
            PyErr_Clear();
        Py_SETREF(h, next);
    }
    Py_XDECREF(h);
    return found;
}

/* Removes the profile hook fn(obj) from every thread that still has it,
 * names in replaced (when not NULL) the threads where someone replaced it
 * while it ran, and clears threading's hook if it still is bootstrap: a
 * program that set its own with threading.setprofile() keeps it, and
 * replaced says that the threads started after it are missing. Leaves any
 * pending exception as it was. */
static void hyp__hooks_remove(Py_tracefunc fn, PyObject *obj, PyObject *bootstrap,
                         PyObject *replaced) {
    PyObject *hook;
    PyThreadState *ts;

    HYP_PY_EXC_SAVE(exc);
    for (ts = PyInterpreterState_ThreadHead(PyThreadState_Get()->interp); ts != NULL;
         ts = PyThreadState_Next(ts)) {
        if (ts->c_profilefunc == fn && ts->c_profileobj == obj) {
            _PyEval_SetProfile(ts, NULL, NULL);
        } else if (replaced != NULL) {
            PyObject *who = PyUnicode_FromFormat("thread %lu", (unsigned long)ts->thread_id);
            if (who != NULL) {
                PyList_Append(replaced, who);
                Py_DECREF(who);
            }
        }
    }
    hook = hyp__det_threading_getprofile();
    if (hook == NULL || hook == Py_None || hyp__hook_chains_to(hook, bootstrap)) {
        hyp__threading_setprofile(Py_None);
    } else if (replaced != NULL) {
        PyObject *who = PyUnicode_FromFormat("the threads started after threading.setprofile(%R)",
                                             hook);
        if (who != NULL) {
            PyList_Append(replaced, who);
            Py_DECREF(who);
        }
    }
    Py_XDECREF(hook);
    PyErr_Clear();
    HYP_PY_EXC_RESTORE(exc);
}

/* Sets the profile hook fn(obj) on every thread, and bootstrap as
 * threading's hook for the threads started later. On failure nothing stays
 * set. Returns 0, or -1 with an exception set. */
static int hyp__hooks_install(Py_tracefunc fn, PyObject *obj, PyObject *bootstrap) {
    PyThreadState *ts;

    if (hyp__threading_setprofile(bootstrap) < 0)
        return -1;
    for (ts = PyInterpreterState_ThreadHead(PyThreadState_Get()->interp); ts != NULL;
         ts = PyThreadState_Next(ts)) {
        if (_PyEval_SetProfile(ts, fn, obj) < 0) {
            hyp__hooks_remove(fn, obj, bootstrap, NULL);
            return -1;
        }
    }
    return 0;
}

int hyp__det_setprofile_start(det_prof_t *p) {
    if (p->bootstrap == NULL) {
        p->bootstrap = PyCFunction_New(&det_bootstrap_def, (PyObject *)p);
        if (p->bootstrap == NULL)
            return -1;
    }
    return hyp__hooks_install(hyp__det_tracefunc, (PyObject *)p, p->bootstrap);
}

void hyp__det_setprofile_stop(det_prof_t *p) {
    hyp__hooks_remove(hyp__det_tracefunc, (PyObject *)p, p->bootstrap, p->replaced);
}

int hyp__det_setprofile_group_start(void) {
    if (hyp__det_group.bootstrap == NULL) {
        hyp__det_group.bootstrap = PyCFunction_New(&det_bootstrap_def, Py_None);
        if (hyp__det_group.bootstrap == NULL)
            return -1;
    }
    /* The object sys.getprofile() shows: the hook itself. */
    return hyp__hooks_install(hyp__det_ctx_tracefunc, hyp__det_group.bootstrap,
                         hyp__det_group.bootstrap);
}

void hyp__det_setprofile_group_stop(PyObject *replaced) {
    hyp__hooks_remove(hyp__det_ctx_tracefunc, hyp__det_group.bootstrap, hyp__det_group.bootstrap,
                 replaced);
}
