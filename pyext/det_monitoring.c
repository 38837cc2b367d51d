/* pyext/det_monitoring.c: the deterministic mode's "monitoring" engine
 * (3.12+): C callables registered with sys.monitoring under the profiler
 * tool id, which covers every thread at once and reports generator
 * resumptions and suspensions as their own events. The callables are plain
 * vectorcall objects bound to the profiler without a context, or to None for
 * the context-bound profilers' group, whose events go to the profiler the
 * running context picks (det_hot.h). Also: taking and giving back the tool
 * id, and the group's event mask. Empty before 3.12. */
#include "det_hot.h"

#if PY_VERSION_HEX >= 0x030C0000
enum {
    EV_PY_START, EV_PY_RESUME, EV_PY_THROW, EV_PY_RETURN, EV_PY_YIELD, EV_PY_UNWIND,
    EV_CALL, EV_C_RETURN, EV_C_RAISE, EV_COUNT
};
/* sys.monitoring.events bit numbers (Include/cpython/monitoring.h). */
static const struct {
    const char *name;
    int bit;
} det_events[EV_COUNT] = {
    {"PY_START", 0}, {"PY_RESUME", 1}, {"PY_THROW", 13}, {"PY_RETURN", 2}, {"PY_YIELD", 3},
    {"PY_UNWIND", 12}, {"CALL", 4}, {"C_RETURN", 15}, {"C_RAISE", 16},
};


static inline const void *hyp__current_iframe(det_thread_t *th) {
#if PY_VERSION_HEX >= 0x030D0000
    return th->tstate->current_frame;
#else
    return th->tstate->cframe->current_frame;
#endif
}

/* The C function behind a call event's callable, or NULL when the callable
 * is not one cProfile would count (the same test as _lsprof's
 * get_cfunc_from_callable and 3.12's legacy profile shim). */
static inline PyMethodDef *hyp__c_method_def(det_prof_t *p, PyObject *callable, PyObject *self_arg) {
    if (PyCFunction_Check(callable))
        return ((PyCFunctionObject *)callable)->m_ml;
    if (Py_IS_TYPE(callable, &PyMethodDescr_Type) && self_arg != NULL && self_arg != p->missing)
        return ((PyMethodDescrObject *)callable)->d_method;
    return NULL;
}

static inline det_thread_t *hyp__mon_thread(det_prof_t *p) {
    det_thread_t *th = hyp__det_thread_get(p);

    if (DET_UNLIKELY(th == NULL)) {
        HYP_PY_EXC_SAVE(exc);
        th = hyp__det_thread_slow(p);
        HYP_PY_EXC_RESTORE(exc);
        if (th == NULL)
            hyp__det_set_error(p, HYP_ENOMEM);
    }
    return th;
}

/* The profiler and thread a Python function's event is for (self: the
 * callback's profiler, or None for the group's), or 0 when there is none. */
static inline int hyp__mon_py_target(PyObject *self, det_prof_t **pp, det_thread_t **thp) {
    if (DET_LIKELY(self != Py_None)) {
        *pp = (det_prof_t *)self;
        *thp = hyp__mon_thread(*pp);
        return DET_LIKELY(*thp != NULL && (*pp)->running);
    }
    return (*pp = hyp__det_pick(thp)) != NULL;
}

static inline void hyp__mon_enter_py(PyObject *self, PyObject *const *args, int fresh) {
    det_prof_t *p;
    det_thread_t *th;
    PyCodeObject *co = (PyCodeObject *)args[0];
    uint64_t wall, cpu;

    if (!hyp__mon_py_target(self, &p, &th))
        return;
    cpu = hyp_cpu_clock_read(&th->cpu, &wall);
    if (DET_UNLIKELY(co->co_flags & DET_GEN_FLAGS))
        hyp__det_enter(p, th, co, NULL, NULL, hyp__current_iframe(th), fresh, wall, cpu);
    else
        hyp__det_enter(p, th, co, NULL, NULL, NULL, 1, wall, cpu);
    th->last_wall = wall;
    th->last_cpu = cpu;
}

static inline void hyp__mon_leave_py(PyObject *self, PyObject *const *args, int suspend) {
    det_prof_t *p;
    det_thread_t *th;
    uint64_t wall, cpu;

    if (!hyp__mon_py_target(self, &p, &th))
        return;
    cpu = hyp_cpu_clock_read(&th->cpu, &wall);
    hyp__det_leave(p, th, args[0], suspend, wall, cpu);
    th->last_wall = wall;
    th->last_cpu = cpu;
}

/* The callbacks of the Python functions' events: start and resume (throw)
 * enter, return (unwind) and yield leave. */
#define DET_MON_PY(name, fn, arg)                                                   \
    static PyObject *name(PyObject *self, PyObject *const *args, Py_ssize_t nargs) { \
        (void)nargs;                                                                \
        fn(self, args, arg);                                                        \
        Py_RETURN_NONE;                                                             \
    }
DET_MON_PY(mon_py_start, hyp__mon_enter_py, 1)
DET_MON_PY(mon_py_resume, hyp__mon_enter_py, 0)
DET_MON_PY(mon_py_return, hyp__mon_leave_py, 0)
DET_MON_PY(mon_py_yield, hyp__mon_leave_py, 1)

/* The profiler, thread and method definition a CALL or C_RETURN event is
 * for, or 0 when the event is not one to record. Inlined into both callbacks,
 * so the hot path pays for no extra call. */
static inline int hyp__mon_c_target(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               det_prof_t **pp, det_thread_t **thp, PyMethodDef **mlp) {
    det_prof_t *p;
    det_thread_t *th;
    PyMethodDef *ml;

    if (DET_LIKELY(self != Py_None)) {
        p = (det_prof_t *)self;
        ml = hyp__c_method_def(p, args[2], nargs > 3 ? args[3] : NULL);
        if (ml == NULL || (th = hyp__mon_thread(p)) == NULL || !p->running)
            return 0;
    } else {
        /* The group's events are those of all its profilers. */
        if ((p = hyp__det_pick(&th)) == NULL || !p->builtins)
            return 0;
        ml = hyp__c_method_def(p, args[2], nargs > 3 ? args[3] : NULL);
        if (ml == NULL)
            return 0;
    }
    *pp = p;
    *thp = th;
    *mlp = ml;
    return 1;
}

/* A C function's call (enter) or return, raise included. */
static inline void hyp__mon_c_event(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               int enter) {
    det_prof_t *p;
    PyMethodDef *ml;
    det_thread_t *th;
    uint64_t wall, cpu;

    if (!hyp__mon_c_target(self, args, nargs, &p, &th, &ml))
        return;
    cpu = hyp_cpu_clock_read(&th->cpu, &wall);
    if (enter)
        hyp__det_enter(p, th, ml, args[2], nargs > 3 ? args[3] : NULL, NULL, 1, wall, cpu);
    else
        hyp__det_leave(p, th, ml, 0, wall, cpu);
    th->last_wall = wall;
    th->last_cpu = cpu;
}

static PyObject *hyp__mon_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    hyp__mon_c_event(self, args, nargs, 1);
    Py_RETURN_NONE;
}

static PyObject *hyp__mon_c_return(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    hyp__mon_c_event(self, args, nargs, 0);
    Py_RETURN_NONE;
}

#define DET_FASTCALL(f) ((PyCFunction)(void (*)(void))(f))
static PyMethodDef det_mon_defs[EV_COUNT] = {
    {"hyprof_py_start", DET_FASTCALL(mon_py_start), METH_FASTCALL, NULL},
    {"hyprof_py_resume", DET_FASTCALL(mon_py_resume), METH_FASTCALL, NULL},
    {"hyprof_py_throw", DET_FASTCALL(mon_py_resume), METH_FASTCALL, NULL},
    {"hyprof_py_return", DET_FASTCALL(mon_py_return), METH_FASTCALL, NULL},
    {"hyprof_py_yield", DET_FASTCALL(mon_py_yield), METH_FASTCALL, NULL},
    {"hyprof_py_unwind", DET_FASTCALL(mon_py_return), METH_FASTCALL, NULL},
    {"hyprof_call", DET_FASTCALL(hyp__mon_call), METH_FASTCALL, NULL},
    {"hyprof_c_return", DET_FASTCALL(hyp__mon_c_return), METH_FASTCALL, NULL},
    {"hyprof_c_raise", DET_FASTCALL(hyp__mon_c_return), METH_FASTCALL, NULL},
};

/* The callables registered with sys.monitoring: plain vectorcall objects,
 * so an event costs one indirect call into the engine, without the
 * builtin-function layer's keyword and recursion checks. */
typedef PyObject *(*det_cb_fn)(PyObject *, PyObject *const *, Py_ssize_t);

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *prof;
    det_cb_fn fn;
    const char *name;
} det_cb_t;

static PyObject *hyp__det_cb_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames) {
    det_cb_t *cb = (det_cb_t *)self;

    (void)kwnames; /* sys.monitoring passes none */
    return cb->fn(cb->prof, args, PyVectorcall_NARGS(nargsf));
}

static int hyp__det_cb_traverse(det_cb_t *cb, visitproc visit, void *arg) {
    Py_VISIT(cb->prof);
    return 0;
}

static int hyp__det_cb_clear(det_cb_t *cb) {
    Py_CLEAR(cb->prof);
    return 0;
}

static void hyp__det_cb_dealloc(det_cb_t *cb) {
    PyObject_GC_UnTrack(cb);
    hyp__det_cb_clear(cb);
    PyObject_GC_Del(cb);
}

static PyObject *hyp__det_cb_repr(det_cb_t *cb) {
    return PyUnicode_FromFormat("<hyprof monitoring callback %s>", cb->name);
}

static PyTypeObject det_cb_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hyprof._hyprof.MonitoringCallback",
    .tp_basicsize = sizeof(det_cb_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(det_cb_t, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)hyp__det_cb_traverse,
    .tp_clear = (inquiry)hyp__det_cb_clear,
    .tp_dealloc = (destructor)hyp__det_cb_dealloc,
    .tp_repr = (reprfunc)hyp__det_cb_repr,
};

static PyObject *hyp__det_cb_new(PyObject *prof, const PyMethodDef *def) {
    det_cb_t *cb;

    if (!(det_cb_type.tp_flags & Py_TPFLAGS_READY) && PyType_Ready(&det_cb_type) < 0)
        return NULL;
    cb = PyObject_GC_New(det_cb_t, &det_cb_type);
    if (cb == NULL)
        return NULL;
    cb->vectorcall = hyp__det_cb_vectorcall;
    cb->prof = Py_NewRef(prof);
    cb->fn = (det_cb_fn)(void (*)(void))def->ml_meth;
    cb->name = def->ml_name;
    PyObject_GC_Track(cb);
    return (PyObject *)cb;
}

/* One callback of prof (a profiler, or None for the group) per event, a
 * tuple in det_events' order. */
static PyObject *hyp__callbacks_new(PyObject *prof) {
    PyObject *cbs = PyTuple_New(EV_COUNT);
    int i;

    if (cbs == NULL)
        return NULL;
    for (i = 0; i < EV_COUNT; i++) {
        PyObject *f = hyp__det_cb_new(prof, &det_mon_defs[i]);
        if (f == NULL) {
            Py_DECREF(cbs);
            return NULL;
        }
        PyTuple_SET_ITEM(cbs, i, f);
    }
    return cbs;
}

/* Takes the profiler tool id and registers the first nev callbacks of cbs:
 * 0, or -1 (the id was not taken) or -2 (it was) with an exception set. */
static int hyp__tool_take(PyObject *mon, PyObject *cbs, int nev) {
    PyObject *r = PyObject_CallMethod(mon, "use_tool_id", "is", DET_TOOL_ID, "hyprof");
    int i;

    if (r == NULL)
        return -1;
    Py_DECREF(r);
    for (i = 0; i < nev; i++) {
        r = PyObject_CallMethod(mon, "register_callback", "iiO", DET_TOOL_ID,
                                1 << det_events[i].bit, PyTuple_GET_ITEM(cbs, i));
        if (r == NULL)
            return -2;
        Py_DECREF(r);
    }
    return 0;
}

static PyObject *hyp__monitoring_module(void) {
    PyObject *sys = PyImport_ImportModule("sys"), *mon;

    if (sys == NULL)
        return NULL;
    mon = PyObject_GetAttrString(sys, "monitoring");
    Py_DECREF(sys);
    return mon;
}

int hyp__det_monitoring_start(det_prof_t *p) {
    PyObject *mon = hyp__monitoring_module(), *r;
    int i, rc, nev = p->builtins ? EV_COUNT : EV_CALL;
    long mask = 0;

    if (mon == NULL)
        return -1;
    if (p->missing == NULL) {
        p->missing = PyObject_GetAttrString(mon, "MISSING");
        if (p->missing == NULL)
            goto fail;
    }
    if (p->callbacks == NULL && (p->callbacks = hyp__callbacks_new((PyObject *)p)) == NULL)
        goto fail;
    if ((rc = hyp__tool_take(mon, p->callbacks, nev)) != 0) {
        if (rc == -2)
            goto fail_free;
        goto fail;
    }
    for (i = 0; i < nev; i++)
        mask |= 1L << det_events[i].bit;
    r = PyObject_CallMethod(mon, "set_events", "il", DET_TOOL_ID, mask);
    if (r == NULL)
        goto fail_free;
    Py_DECREF(r);
    Py_DECREF(mon);
    return 0;
fail_free:
    r = PyObject_CallMethod(mon, "free_tool_id", "i", DET_TOOL_ID);
    Py_XDECREF(r);
fail:
    Py_DECREF(mon);
    return -1;
}

void hyp__det_monitoring_stop(det_prof_t *p) {
    PyObject *mon = hyp__monitoring_module(), *r;
    int i;

    (void)p;
    if (mon == NULL) {
        PyErr_Clear();
        return;
    }
    r = PyObject_CallMethod(mon, "set_events", "ii", DET_TOOL_ID, 0);
    Py_XDECREF(r);
    for (i = 0; i < EV_COUNT; i++) {
        r = PyObject_CallMethod(mon, "register_callback", "iiO", DET_TOOL_ID,
                                1 << det_events[i].bit, Py_None);
        Py_XDECREF(r);
    }
    r = PyObject_CallMethod(mon, "free_tool_id", "i", DET_TOOL_ID);
    Py_XDECREF(r);
    Py_DECREF(mon);
    PyErr_Clear();
}

PyObject *hyp__det_monitoring_owner(void) {
    PyObject *mon = hyp__monitoring_module(), *r;

    if (mon == NULL)
        return NULL;
    r = PyObject_CallMethod(mon, "get_tool", "i", DET_TOOL_ID);
    Py_DECREF(mon);
    if (r == Py_None) {
        Py_DECREF(r);
        return NULL;
    }
    return r;
}

int hyp__det_monitoring_group_set(det_prof_t *joining) {
    PyObject *mon = hyp__monitoring_module(), *r;
    int i, rc, builtins = joining != NULL && joining->builtins, fresh = hyp__det_group.mask == 0;
    long mask = 0;
    size_t k;

    if (mon == NULL)
        return -1;
    if (joining != NULL && joining->missing == NULL) {
        joining->missing = PyObject_GetAttrString(mon, "MISSING");
        if (joining->missing == NULL)
            goto fail;
    }
    for (k = 0; k < hyp__det_group.n; k++)
        builtins |= hyp__det_group.profs[k]->builtins;
    if (hyp__det_group.callbacks == NULL &&
        (hyp__det_group.callbacks = hyp__callbacks_new(Py_None)) == NULL)
        goto fail;
    if (fresh && (rc = hyp__tool_take(mon, hyp__det_group.callbacks, EV_COUNT)) != 0) {
        if (rc == -2)
            goto fail_free;
        goto fail;
    }
    for (i = 0; i < (builtins ? EV_COUNT : EV_CALL); i++)
        mask |= 1L << det_events[i].bit;
    if (mask != hyp__det_group.mask) {
        r = PyObject_CallMethod(mon, "set_events", "il", DET_TOOL_ID, mask);
        if (r == NULL)
            goto fail_free;
        Py_DECREF(r);
        hyp__det_group.mask = mask;
    }
    Py_DECREF(mon);
    return 0;
fail_free:
    if (fresh) {
        HYP_PY_EXC_SAVE(exc);
        hyp__det_monitoring_stop(NULL);
        HYP_PY_EXC_RESTORE(exc);
    }
fail:
    Py_DECREF(mon);
    return -1;
}
#endif
