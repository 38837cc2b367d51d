/* pyext/locks.c: lock contention, in both modes (locks.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* gettid */
#endif
#include "locks.h"

#include "collect.h"
#include "det.h"
#include "hyprof/clock.h"
#include "hyprof/internal/util.h"
#include "walk.h"

#include <math.h>
#include <structmember.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

const hyp_metric_t hyp_py_lock_metrics[HYP_PY_LOCK_NMETRICS] = {
    {"lock_wait_samples", "count", HYP_METRIC_OWN},
    {"lock_wait_ns", "ns", HYP_METRIC_OWN},
    {"lock_hold_samples", "count", HYP_METRIC_OWN},
    {"lock_hold_ns", "ns", HYP_METRIC_OWN},
};

#define HYP__LOCK_MAX_SITES 4096 /* creation sites named; later ones share site 0 */

enum { LOCK_WAIT = 0, LOCK_HOLD = 1 };

static struct {
    /* Users: deterministic profilers, and the sampled collector (one). */
    int det_users;
    int installed;           /* threading's constructors are hyprof's */
    PyObject *threading;     /* the module, while installed */
    PyObject *orig_lock;     /* threading.Lock and threading.RLock as found */
    PyObject *orig_rlock;
    PyObject *asyncio_locks; /* asyncio.locks and asyncio, while installed */
    PyObject *asyncio;
    PyObject *orig_async;    /* asyncio.Lock and asyncio.locks.Lock as found */
    PyObject *orig_async_locks;
    PyObject *async_lock;    /* hyprof's */
    PyObject *async_codes;   /* the code objects of hyprof's asyncio.Lock */
    PyObject *async_acquire; /* the original's acquire code: what waits */
    PyObject *make_lock;     /* _thread.allocate_lock and _thread.RLock: what a hyprof */
    PyObject *make_rlock;    /*   lock wraps */
    PyObject *skip_files;    /* frozenset: the files whose frames a creation site skips */
    PyObject *cwd;           /* the working directory at install, + "/": cut from sites */
    /* Creation sites: (code, line) -> index; by index, (name, file, line). */
    PyObject *site_index;
    PyObject *sites;
    /* The sampled collector: its mean interval, what it saw. */
    uint64_t interval_ns;
    double ns_per_tick;      /* the clock's rate at the run's start */
    uint64_t run;            /* runs started, from 1 */
    uint64_t events[2];
    hyp_collector_t col;
} L = {.col = {hyp_py_lock_metrics,
               HYP_PY_LOCK_NMETRICS,
               {{"lock-wait", "lock_wait_samples", "lock_wait_ns"},
                {"lock-hold", "lock_hold_samples", "lock_hold_ns"}},
               2,
               "lock: out of memory"}};

static inline int hyp__timing(void) {
    return L.col.running || L.det_users != 0;
}

/* ---------------------------------------------------------------- sites */

/* The site of index i: its name, a borrowed str... */
static PyObject *hyp__site_name(uint32_t i) {
    return PyTuple_GET_ITEM(PyList_GET_ITEM(L.sites, i), 0);
}

/* ...and the name of its holds' special function in the deterministic mode,
 * "<lock held, created at FILE:LINE>". */
static PyObject *hyp__hold_name(uint32_t i) {
    return PyTuple_GET_ITEM(PyList_GET_ITEM(L.sites, i), 3);
}

/* A site's entry in L.sites: (name, file or None, line, hold name). */
static PyObject *hyp__site_entry(PyObject *name, PyObject *file, int line) {
    PyObject *from = PyUnicode_FromString("<lock created at ");
    PyObject *to = PyUnicode_FromString("<lock held, created at ");
    PyObject *held = from != NULL && to != NULL ? PyUnicode_Replace(name, from, to, 1) : NULL;
    PyObject *entry = NULL;

    if (held != NULL) {
        PyUnicode_InternInPlace(&held);
        entry = Py_BuildValue("(OOiN)", name, file, line, held);
    }
    Py_XDECREF(from);
    Py_XDECREF(to);
    return entry;
}

/* The creation site of a lock made now: the first frame of the caller's
 * stack outside the standard library's lock users. Never fails: site 0 is
 * the unknown place. */
static uint32_t hyp__site_here(void) {
    PyFrameObject *f = PyEval_GetFrame(), *back;
    PyObject *key, *v, *name, *file, *entry;
    PyCodeObject *co = NULL;
    uint32_t idx = 0;
    int line;

    if (L.sites == NULL)
        return 0;
    Py_XINCREF(f);
    while (f != NULL) {
        co = PyFrame_GetCode(f);
        if (PySet_Contains(L.skip_files, co->co_filename) != 1)
            break;
        Py_CLEAR(co);
        back = PyFrame_GetBack(f);
        Py_DECREF(f);
        f = back;
    }
    PyErr_Clear();
    if (f == NULL)
        return 0;
    line = PyFrame_GetLineNumber(f);
    Py_DECREF(f);
    key = Py_BuildValue("(Oi)", (PyObject *)co, line);
    if (key == NULL)
        goto out;
    v = PyDict_GetItemWithError(L.site_index, key);
    if (v != NULL) {
        idx = (uint32_t)PyLong_AsUnsignedLong(v);
        goto out;
    }
    if (PyErr_Occurred() || PyList_GET_SIZE(L.sites) >= HYP__LOCK_MAX_SITES)
        goto out;
    file = co->co_filename;
    if (PyUnicode_Check(file) && L.cwd != NULL &&
        PyUnicode_Tailmatch(file, L.cwd, 0, PY_SSIZE_T_MAX, -1) == 1) {
        /* Under the working directory: the path from there, as people say it. */
        PyObject *rel = PyUnicode_Substring(file, PyUnicode_GET_LENGTH(L.cwd),
                                            PyUnicode_GET_LENGTH(file));

        name = rel != NULL ? PyUnicode_FromFormat("<lock created at %U:%d>", rel, line) : NULL;
        Py_XDECREF(rel);
    } else {
        name = PyUnicode_FromFormat("<lock created at %S:%d>", file, line);
    }
    if (name == NULL)
        goto out;
    PyUnicode_InternInPlace(&name);
    entry = hyp__site_entry(name, file, line);
    Py_DECREF(name);
    v = PyLong_FromSsize_t(PyList_GET_SIZE(L.sites));
    if (entry != NULL && v != NULL && PyList_Append(L.sites, entry) == 0 &&
        PyDict_SetItem(L.site_index, key, v) == 0)
        idx = (uint32_t)(PyList_GET_SIZE(L.sites) - 1);
    Py_XDECREF(entry);
    Py_XDECREF(v);
out:
    PyErr_Clear();
    Py_XDECREF(key);
    Py_XDECREF(co);
    return idx;
}

/* A wait or a hold that lasted ticks: sampled with probability
 * p = 1 - exp(-t / interval) for its time t, and weighted t / p. The draw is
 * a countdown: the times of each kind on a thread are laid end to end and
 * cut at the points of a Poisson process of rate 1 / interval, whose
 * distances are exponential; a time is sampled when a cut falls in it, which
 * it does with that very probability, independently of the others. So a time
 * that no cut falls in (nearly every short one) costs a subtraction. */
static __thread double hyp__lock_budget[2]; /* ns until the next cut */
static __thread uint64_t hyp__lock_budget_run; /* the run they were drawn in */

static double hyp__next_cut(void) {
    return -log1p(-hyp_collect_uniform()) * (double)L.interval_ns;
}

static void hyp__observe(uint32_t site, int kind, uint64_t ticks) {
    PyObject *entry;
    double ns, p;

    if (!L.col.running || ticks == 0)
        return;
    L.events[kind]++;
    ns = (double)ticks * L.ns_per_tick;
    if (hyp__lock_budget_run != L.run) {
        hyp__lock_budget_run = L.run;
        hyp__lock_budget[0] = hyp__next_cut();
        hyp__lock_budget[1] = hyp__next_cut();
    }
    if ((hyp__lock_budget[kind] -= ns) > 0)
        return;
    hyp__lock_budget[kind] = hyp__next_cut();
    p = -expm1(-ns / (double)L.interval_ns);
    entry = PyList_GET_ITEM(L.sites, site);
    hyp_collector_sample(&L.col, kind, (uint64_t)(ns / p + 0.5), PyTuple_GET_ITEM(entry, 0),
                         PyTuple_GET_ITEM(entry, 1) != Py_None ? PyTuple_GET_ITEM(entry, 1) : NULL,
                         (int)PyLong_AsLong(PyTuple_GET_ITEM(entry, 2)));
}

/* A hold of a lock of site that lasted ticks is over: sampled, and in the
 * deterministic mode a finished call of the site's hold function under the
 * code that released it, whose cumulative time is the hold (the holder ran
 * its own calls meanwhile, whose own time that was). */
static void hyp__held(uint32_t site, uint64_t ticks) {
    if (L.det_users != 0)
        hyp__det_special_record(DET_SPECIAL_LOCK, hyp__hold_name(site), ticks, NULL, NULL);
    hyp__observe(site, LOCK_HOLD, ticks);
}

/* ---------------------------------------------------------------- the types */

typedef struct {
    PyObject_HEAD
    PyObject *inner;
    PyObject *acquire; /* inner's bound methods */
    PyObject *release;
    PyObject *weakrefs;
    uint32_t site;
    long count;        /* acquisitions this wrapper saw held (an RLock's levels) */
    uint64_t since;    /* when it was taken, timed (clock ticks), or 0 */
} hyp_lock_t;

static PyTypeObject *hyp__lock_type, *hyp__rlock_type;

static PyObject *hyp__lock_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *make = type == hyp__rlock_type ? L.make_rlock : L.make_lock;
    hyp_lock_t *self;

    if (make == NULL || L.sites == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "hyprof's lock types are not set up");
        return NULL;
    }
    if ((args != NULL && PyTuple_GET_SIZE(args) != 0) || (kw != NULL && PyDict_GET_SIZE(kw))) {
        PyErr_Format(PyExc_TypeError, "%s() takes no arguments", type->tp_name);
        return NULL;
    }
    self = (hyp_lock_t *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->inner = PyObject_CallNoArgs(make);
    if (self->inner != NULL) {
        self->acquire = PyObject_GetAttrString(self->inner, "acquire");
        self->release = PyObject_GetAttrString(self->inner, "release");
    }
    if (self->acquire == NULL || self->release == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->site = hyp__site_here();
    return (PyObject *)self;
}

static void hyp__lock_dealloc(hyp_lock_t *self) {
    PyTypeObject *tp = Py_TYPE(self);

    if (self->weakrefs != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    Py_XDECREF(self->acquire);
    Py_XDECREF(self->release);
    Py_XDECREF(self->inner);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* The lock was taken. */
static inline void hyp__taken(hyp_lock_t *self) {
    if (self->count++ == 0)
        self->since = hyp__timing() ? hyp_clock_ticks() : 0;
}

/* A blocking call on the inner lock that may wait: timed, and in the
 * deterministic mode a call of the site's special function. */
static PyObject *hyp__waiting_call(hyp_lock_t *self, PyObject *callable, PyObject *const *args,
                                   size_t nargsf, PyObject *kwnames) {
    det_special_t tok = {NULL, 0, NULL};
    uint64_t t0, t1;
    PyObject *r;

    if (L.det_users != 0)
        hyp__det_special_enter(DET_SPECIAL_LOCK, hyp__site_name(self->site), &tok);
    t0 = hyp_clock_ticks();
    r = PyObject_Vectorcall(callable, args, nargsf, kwnames);
    t1 = hyp_clock_ticks();
    if (tok.p != NULL) {
        HYP_PY_EXC_SAVE(exc);
        hyp__det_special_leave(&tok);
        HYP_PY_EXC_RESTORE(exc);
    }
    hyp__observe(self->site, LOCK_WAIT, t1 - t0);
    return r;
}

/* Whether an acquire() call's arguments are ones the inner lock takes, and
 * whether it blocks, as _thread's acquire parses them (at most blocking and
 * timeout; a timeout -1 or at least 0, none with blocking=False). 0: valid,
 * *blocking set; -1: not, and the inner lock's own call gives the error. */
static int hyp__acquire_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                             int *blocking) {
    PyObject *timeout = nargs > 1 ? args[1] : NULL, *b = nargs > 0 ? args[0] : NULL;
    Py_ssize_t i, nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    double t = -1;

    if (nargs > 2)
        return -1;
    for (i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);

        if (PyUnicode_CompareWithASCIIString(k, "blocking") == 0 && b == NULL)
            b = args[nargs + i];
        else if (PyUnicode_CompareWithASCIIString(k, "timeout") == 0 && timeout == NULL)
            timeout = args[nargs + i];
        else
            return -1;
    }
    *blocking = 1;
    if (b != NULL && (*blocking = PyObject_IsTrue(b)) < 0) {
        PyErr_Clear();
        return -1;
    }
    if (timeout != NULL) {
        t = PyFloat_AsDouble(timeout);
        if (t == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return -1;
        }
    }
    if (t != -1 && (t < 0 || !*blocking))
        return -1;
    return 0;
}

/* acquire(blocking=True, timeout=-1): as the inner lock's; a blocking call
 * tries without blocking first, and only a failed try is a wait. Arguments
 * the inner lock refuses go to it as they are, for its own error. */
static PyObject *hyp__lock_acquire(hyp_lock_t *self, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames) {
    PyObject *no_wait[1] = {Py_False}, *r;
    int blocking = 1, timing = hyp__timing(), valid = 0;

    if (timing && (nargs != 0 || kwnames != NULL))
        valid = hyp__acquire_args(args, nargs, kwnames, &blocking);
    if (!timing || valid < 0 || !blocking) {
        r = PyObject_Vectorcall(self->acquire, args, (size_t)nargs, kwnames);
    } else {
        r = PyObject_Vectorcall(self->acquire, no_wait, 1, NULL);
        if (r == Py_False) {
            Py_DECREF(r);
            r = hyp__waiting_call(self, self->acquire, args, (size_t)nargs, kwnames);
        }
    }
    if (r == Py_True)
        hyp__taken(self);
    return r;
}

static PyObject *hyp__lock_release(hyp_lock_t *self, PyObject *unused) {
    uint64_t since = self->count == 1 ? self->since : 0, now = since ? hyp_clock_ticks() : 0;
    PyObject *r;

    (void)unused;
    r = PyObject_CallNoArgs(self->release);
    if (r == NULL)
        return NULL;
    if (self->count > 0 && --self->count == 0) {
        self->since = 0;
        if (since != 0 && now > since)
            hyp__held(self->site, now - since);
    }
    return r;
}

static PyObject *hyp__lock_enter(hyp_lock_t *self, PyObject *unused) {
    (void)unused;
    return hyp__lock_acquire(self, NULL, 0, NULL);
}

static PyObject *hyp__lock_exit(hyp_lock_t *self, PyObject *args) {
    PyObject *r = hyp__lock_release(self, NULL);

    (void)args;
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *hyp__lock_at_fork_reinit(hyp_lock_t *self, PyObject *unused) {
    (void)unused;
    self->count = 0;
    self->since = 0;
    return PyObject_CallMethod(self->inner, "_at_fork_reinit", NULL);
}

/* An RLock's Condition.wait(): all levels released at once... */
static PyObject *hyp__rlock_release_save(hyp_lock_t *self, PyObject *unused) {
    uint64_t since = self->since, now = since ? hyp_clock_ticks() : 0;
    PyObject *r;

    (void)unused;
    r = PyObject_CallMethod(self->inner, "_release_save", NULL);
    if (r == NULL)
        return NULL;
    self->count = 0;
    self->since = 0;
    if (since != 0 && now > since)
        hyp__held(self->site, now - since);
    return r;
}

/* ...and taken back, which waits for whoever holds it then. */
static PyObject *hyp__rlock_acquire_restore(hyp_lock_t *self, PyObject *state) {
    PyObject *m = PyObject_GetAttrString(self->inner, "_acquire_restore"), *r;
    long levels = 1;

    if (m == NULL)
        return NULL;
    r = hyp__timing() ? hyp__waiting_call(self, m, &state, 1, NULL)
                      : PyObject_CallOneArg(m, state);
    Py_DECREF(m);
    if (r == NULL)
        return NULL;
    if (PyTuple_Check(state) && PyTuple_GET_SIZE(state) > 0 &&
        PyLong_Check(PyTuple_GET_ITEM(state, 0)))
        levels = PyLong_AsLong(PyTuple_GET_ITEM(state, 0));
    PyErr_Clear();
    self->count = 0;
    hyp__taken(self);
    self->count = levels > 0 ? levels : 1;
    return r;
}

/* Anything else (locked(), _is_owned(), _recursion_count(), ...) is the
 * inner lock's. */
static PyObject *hyp__lock_getattro(PyObject *self, PyObject *name) {
    PyObject *r = PyObject_GenericGetAttr(self, name);

    if (r != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError))
        return r;
    PyErr_Clear();
    return PyObject_GetAttr(((hyp_lock_t *)self)->inner, name);
}

static PyObject *hyp__lock_repr(hyp_lock_t *self) {
    return PyUnicode_FromFormat("<%R, profiled by hyprof: %U>", self->inner,
                                hyp__site_name(self->site));
}

static PyMethodDef hyp__lock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))hyp__lock_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1) -> bool: as threading.Lock's."},
    {"release", (PyCFunction)hyp__lock_release, METH_NOARGS, "release(): as threading.Lock's."},
    {"__enter__", (PyCFunction)hyp__lock_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)hyp__lock_exit, METH_VARARGS, NULL},
    {"_at_fork_reinit", (PyCFunction)hyp__lock_at_fork_reinit, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef hyp__rlock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))hyp__lock_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1) -> bool: as threading.RLock's."},
    {"release", (PyCFunction)hyp__lock_release, METH_NOARGS, "release(): as threading.RLock's."},
    {"__enter__", (PyCFunction)hyp__lock_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)hyp__lock_exit, METH_VARARGS, NULL},
    {"_at_fork_reinit", (PyCFunction)hyp__lock_at_fork_reinit, METH_NOARGS, NULL},
    {"_release_save", (PyCFunction)hyp__rlock_release_save, METH_NOARGS, NULL},
    {"_acquire_restore", (PyCFunction)hyp__rlock_acquire_restore, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef hyp__lock_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(hyp_lock_t, weakrefs), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot hyp__lock_slots[] = {
    {Py_tp_new, hyp__lock_new},
    {Py_tp_dealloc, hyp__lock_dealloc},
    {Py_tp_getattro, hyp__lock_getattro},
    {Py_tp_repr, hyp__lock_repr},
    {Py_tp_methods, hyp__lock_methods},
    {Py_tp_members, hyp__lock_members},
    {Py_tp_doc, "threading.Lock while hyprof profiles lock contention (docs/locks.md)."},
    {0, NULL},
};

static PyType_Slot hyp__rlock_slots[] = {
    {Py_tp_new, hyp__lock_new},
    {Py_tp_dealloc, hyp__lock_dealloc},
    {Py_tp_getattro, hyp__lock_getattro},
    {Py_tp_repr, hyp__lock_repr},
    {Py_tp_methods, hyp__rlock_methods},
    {Py_tp_members, hyp__lock_members},
    {Py_tp_doc, "threading.RLock while hyprof profiles lock contention (docs/locks.md)."},
    {0, NULL},
};

static PyType_Spec hyp__lock_spec = {"hyprof._hyprof.Lock", sizeof(hyp_lock_t), 0,
                                     Py_TPFLAGS_DEFAULT, hyp__lock_slots};
static PyType_Spec hyp__rlock_spec = {"hyprof._hyprof.RLock", sizeof(hyp_lock_t), 0,
                                      Py_TPFLAGS_DEFAULT, hyp__rlock_slots};

/* ---------------------------------------------------------------- install */

/* The first use: what the types wrap, and what creation sites skip. */
static int hyp__setup(void) {
    PyObject *thread, *os, *path = NULL, *dir = NULL, *cwd = NULL;
    static const char *const skipped[] = {"threading.py",
                                          "queue.py",
                                          "concurrent/futures/_base.py",
                                          "concurrent/futures/thread.py",
                                          "asyncio/locks.py"};
    size_t i;

    if (L.sites != NULL)
        return 0;
    thread = PyImport_ImportModule("_thread");
    if (thread == NULL)
        return -1;
    L.make_lock = PyObject_GetAttrString(thread, "allocate_lock");
    L.make_rlock = PyObject_GetAttrString(thread, "RLock");
    Py_DECREF(thread);
    if (L.make_lock == NULL || L.make_rlock == NULL)
        goto fail;
    if ((L.threading = PyImport_ImportModule("threading")) == NULL ||
        (os = PyImport_ImportModule("os.path")) == NULL)
        goto fail;
    path = PyObject_GetAttrString(L.threading, "__file__");
    if (path != NULL)
        dir = PyObject_CallMethod(os, "dirname", "O", path);
    Py_XDECREF(path);
    L.skip_files = PyFrozenSet_New(NULL);
    for (i = 0; dir != NULL && L.skip_files != NULL && i < HYP__ARRAY_SIZE(skipped); i++) {
        PyObject *f = PyUnicode_FromFormat("%U/%s", dir, skipped[i]);

        if (f == NULL || PySet_Add(L.skip_files, f) < 0) {
            Py_XDECREF(f);
            Py_CLEAR(L.skip_files);
            break;
        }
        Py_DECREF(f);
    }
    Py_XDECREF(dir);
    Py_DECREF(os);
    os = PyImport_ImportModule("os");
    if (os != NULL)
        cwd = PyObject_CallMethod(os, "getcwd", NULL);
    Py_XDECREF(os);
    if (cwd != NULL)
        L.cwd = PyUnicode_FromFormat("%U/", cwd);
    Py_XDECREF(cwd);
    PyErr_Clear(); /* no working directory: sites keep whole paths */
    L.site_index = PyDict_New();
    L.sites = PyList_New(0);
    if (L.skip_files == NULL || L.site_index == NULL || L.sites == NULL)
        goto fail;
    {
        PyObject *name = PyUnicode_FromString("<lock created at an unknown place>");
        PyObject *unknown = name != NULL ? hyp__site_entry(name, Py_None, 0) : NULL;

        Py_XDECREF(name);
        if (unknown == NULL || PyList_Append(L.sites, unknown) < 0) {
            Py_XDECREF(unknown);
            goto fail;
        }
        Py_DECREF(unknown);
    }
    return 0;
fail:
    /* Nothing half made: the next use tries again from the start. */
    Py_CLEAR(L.site_index);
    Py_CLEAR(L.sites);
    Py_CLEAR(L.skip_files);
    Py_CLEAR(L.cwd);
    Py_CLEAR(L.threading);
    Py_CLEAR(L.make_lock);
    Py_CLEAR(L.make_rlock);
    if (!PyErr_Occurred())
        PyErr_NoMemory();
    return -1;
}

/* asyncio.Lock becomes hyprof's subclass (hyprof/_asyncio_locks.py), whose
 * frames the creation site skips and the walks leave out. Importing asyncio
 * is the price of locks=True, paid before the profiler's hooks are set. */
static int hyp__asyncio_install(void) {
    PyObject *mod = PyImport_ImportModule("hyprof._asyncio_locks"), *file;

    if (mod == NULL) {
        /* An interpreter without a working asyncio (a build without select
         * or _socket): threading's locks are profiled, asyncio's cannot be. */
        if (PyErr_ExceptionMatches(PyExc_ImportError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    if (L.async_lock == NULL) {
        L.async_lock = PyObject_GetAttrString(mod, "Lock");
        L.async_codes = PyObject_GetAttrString(mod, "OWN_CODES");
        L.async_acquire = PyObject_GetAttrString(mod, "WAITING_CODE");
        file = PyObject_GetAttrString(mod, "__file__");
        if (L.async_lock == NULL || L.async_codes == NULL || !PyTuple_Check(L.async_codes) ||
            PyTuple_GET_SIZE(L.async_codes) < 2 || L.async_acquire == NULL || file == NULL ||
            PySet_Add(L.skip_files, file) < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_RuntimeError,
                                "hyprof._asyncio_locks does not define OWN_CODES as hyprof's");
            Py_XDECREF(file);
            Py_CLEAR(L.async_lock);
            Py_CLEAR(L.async_codes);
            Py_CLEAR(L.async_acquire);
            Py_DECREF(mod);
            return -1;
        }
        Py_DECREF(file);
    }
    Py_DECREF(mod);
    /* The classes as found now, each given back to its own module. */
    if ((L.asyncio_locks = PyImport_ImportModule("asyncio.locks")) == NULL ||
        (L.asyncio = PyImport_ImportModule("asyncio")) == NULL ||
        (L.orig_async_locks = PyObject_GetAttrString(L.asyncio_locks, "Lock")) == NULL ||
        (L.orig_async = PyObject_GetAttrString(L.asyncio, "Lock")) == NULL)
        goto fail;
    if (PyObject_SetAttrString(L.asyncio_locks, "Lock", L.async_lock) < 0)
        goto fail;
    if (PyObject_SetAttrString(L.asyncio, "Lock", L.async_lock) < 0) {
        HYP_PY_EXC_SAVE(exc);
        if (PyObject_SetAttrString(L.asyncio_locks, "Lock", L.orig_async_locks) < 0)
            PyErr_Clear();
        HYP_PY_EXC_RESTORE(exc);
        goto fail;
    }
    return 0;
fail:
    Py_CLEAR(L.orig_async);
    Py_CLEAR(L.orig_async_locks);
    Py_CLEAR(L.asyncio_locks);
    Py_CLEAR(L.asyncio);
    return -1;
}

/* threading.Lock and RLock, and asyncio.Lock, become hyprof's at the first
 * user, and are given back after the last, unless the program has replaced
 * them since. */
static int hyp__install(void) {
    if (L.installed++ != 0)
        return 0;
    if (hyp__setup() < 0)
        goto fail;
    L.orig_lock = PyObject_GetAttrString(L.threading, "Lock");
    L.orig_rlock = PyObject_GetAttrString(L.threading, "RLock");
    if (L.orig_lock == NULL || L.orig_rlock == NULL ||
        PyObject_SetAttrString(L.threading, "Lock", (PyObject *)hyp__lock_type) < 0 ||
        PyObject_SetAttrString(L.threading, "RLock", (PyObject *)hyp__rlock_type) < 0 ||
        hyp__asyncio_install() < 0)
        goto fail;
    return 0;
fail:
    if (L.orig_lock != NULL && L.threading != NULL) {
        HYP_PY_EXC_SAVE(exc);
        if (PyObject_SetAttrString(L.threading, "Lock", L.orig_lock) < 0 ||
            (L.orig_rlock != NULL && PyObject_SetAttrString(L.threading, "RLock", L.orig_rlock) < 0))
            PyErr_Clear();
        HYP_PY_EXC_RESTORE(exc);
    }
    Py_CLEAR(L.orig_lock);
    Py_CLEAR(L.orig_rlock);
    L.installed--;
    return -1;
}

static void hyp__give_back(PyObject *mod, const char *name, PyObject *orig, PyObject *ours) {
    PyObject *now;

    if (mod == NULL || orig == NULL)
        return; /* not installed there */
    now = PyObject_GetAttrString(mod, name);

    if (now == ours && PyObject_SetAttrString(mod, name, orig) < 0)
        PyErr_WriteUnraisable(NULL);
    PyErr_Clear();
    Py_XDECREF(now);
}

static void hyp__uninstall(void) {
    if (L.installed == 0 || --L.installed != 0)
        return;
    HYP_PY_EXC_SAVE(exc);
    hyp__give_back(L.threading, "Lock", L.orig_lock, (PyObject *)hyp__lock_type);
    hyp__give_back(L.threading, "RLock", L.orig_rlock, (PyObject *)hyp__rlock_type);
    hyp__give_back(L.asyncio_locks, "Lock", L.orig_async_locks, L.async_lock);
    hyp__give_back(L.asyncio, "Lock", L.orig_async, L.async_lock);
    Py_CLEAR(L.orig_lock);
    Py_CLEAR(L.orig_rlock);
    Py_CLEAR(L.orig_async);
    Py_CLEAR(L.orig_async_locks);
    Py_CLEAR(L.asyncio_locks);
    Py_CLEAR(L.asyncio);
    HYP_PY_EXC_RESTORE(exc);
}

int hyp_py_locks_det_retain(void) {
    if (hyp__install() < 0)
        return -1;
    L.det_users++;
    return 0;
}

void hyp_py_locks_det_release(void) {
    if (L.det_users == 0)
        return;
    L.det_users--;
    hyp__uninstall();
}

/* ---------------------------------------------------------------- the collector's run */

/* locks_start(interval_ns, depth): the sampled collector starts a run. */
static PyObject *hyp__locks_start(PyObject *self, PyObject *args) {
    unsigned long long interval;
    int depth;

    (void)self;
    if (!PyArg_ParseTuple(args, "Ki:locks_start", &interval, &depth))
        return NULL;
    if (interval == 0 || depth < 1 || depth > HYP_WALK_MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError, "locks_start: interval and depth out of range");
        return NULL;
    }
    if (hyp_clock_init(0) != 0) {
        PyErr_SetString(hyp_py_profiler_error(), "cannot initialise the clocks");
        return NULL;
    }
    if (hyp_collector_start(&L.col, depth) < 0)
        return NULL;
    if (hyp__install() < 0) {
        hyp_collector_reset(&L.col);
        return NULL;
    }
    if (hyp_profile_set_meta_int(L.col.prof, "lock_interval", (int64_t)interval) < 0) {
        hyp__uninstall();
        hyp_collector_reset(&L.col);
        return PyErr_NoMemory();
    }
    L.interval_ns = interval;
    L.ns_per_tick = hyp_clock_ns_per_tick();
    L.run++;
    memset(L.events, 0, sizeof L.events);
    Py_RETURN_NONE;
}

static PyObject *hyp__locks_stop(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    if (!L.col.running) {
        PyErr_SetString(hyp_py_profiler_error(), "lock contention is not being sampled");
        return NULL;
    }
    hyp_collector_stop(&L.col);
    hyp__uninstall();
    Py_RETURN_NONE;
}

static PyObject *hyp__locks_stats(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:n,s:O}", "waits", L.events[LOCK_WAIT],
                         "holds", L.events[LOCK_HOLD], "sampled_waits", L.col.sampled[LOCK_WAIT],
                         "sampled_holds", L.col.sampled[LOCK_HOLD], "failed", L.col.failed,
                         "sites", L.sites != NULL ? PyList_GET_SIZE(L.sites) : 0, "running",
                         L.col.running ? Py_True : Py_False);
}

/* A forked child: the parent's run is not the child's. */
static PyObject *hyp__locks_after_fork(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    if (L.col.running)
        hyp__uninstall();
    hyp_collector_reset(&L.col);
    Py_RETURN_NONE;
}

hyp_collector_t *hyp_py_lock_collector(void) {
    return &L.col;
}

/* ---------------------------------------------------------------- asyncio.Lock's recorders */

/* _lock_site(): the creation site of an asyncio lock made now. */
static PyObject *hyp__lock_site(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyLong_FromUnsignedLong(hyp__site_here());
}

/* _lock_clock(): the clock now when waits and holds are timed, else 0. */
static PyObject *hyp__lock_clock(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyLong_FromUnsignedLongLong(hyp__timing() ? hyp_clock_ticks() : 0);
}

/* The (site, since) arguments of _lock_waited() and _lock_held(), and the
 * ticks since then; 0 for a site that is not one. */
static uint64_t hyp__lock_since(PyObject *const *args, Py_ssize_t nargs, const char *fn,
                                uint32_t *site) {
    unsigned long s;
    unsigned long long since;
    uint64_t now = hyp_clock_ticks();

    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes a site and a clock reading", fn);
        return 0;
    }
    s = PyLong_AsUnsignedLong(args[0]);
    since = PyLong_AsUnsignedLongLong(args[1]);
    if (PyErr_Occurred())
        return 0;
    if (L.sites == NULL || s >= (unsigned long)PyList_GET_SIZE(L.sites) || since == 0 ||
        now <= since)
        return 0;
    *site = (uint32_t)s;
    return now - since;
}

/* _lock_waited(site, since): an asyncio lock's wait, which began at since,
 * is over. */
static PyObject *hyp__lock_waited(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    uint32_t site = 0;
    uint64_t ticks = hyp__lock_since(args, nargs, "_lock_waited", &site);

    (void)self;
    if (PyErr_Occurred())
        return NULL;
    if (ticks != 0) {
        if (L.det_users != 0 && L.async_codes != NULL)
            hyp__det_special_record(DET_SPECIAL_LOCK, hyp__site_name(site), ticks,
                                    PyTuple_GET_ITEM(L.async_codes, 1), L.async_acquire);
        hyp__observe(site, LOCK_WAIT, ticks);
    }
    Py_RETURN_NONE;
}

/* _lock_held(site, since): an asyncio lock taken at since was released. */
static PyObject *hyp__lock_held(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    uint32_t site = 0;
    uint64_t ticks = hyp__lock_since(args, nargs, "_lock_held", &site);

    (void)self;
    if (PyErr_Occurred())
        return NULL;
    if (ticks != 0)
        hyp__held(site, ticks);
    Py_RETURN_NONE;
}

static PyMethodDef hyp__locks_functions[] = {
    {"locks_start", hyp__locks_start, METH_VARARGS,
     "locks_start(interval_ns, depth): samples lock waits and holds (docs/locks.md) until "
     "locks_stop(); the sampling profiler's stop merges them into its trace."},
    {"locks_stop", hyp__locks_stop, METH_NOARGS, "Stops sampling lock contention."},
    {"locks_stats", hyp__locks_stats, METH_NOARGS,
     "The collector's counts: waits and holds seen and sampled, creation sites."},
    {"_locks_after_fork", hyp__locks_after_fork, METH_NOARGS, NULL},
    {"_lock_site", hyp__lock_site, METH_NOARGS, NULL},
    {"_lock_clock", hyp__lock_clock, METH_NOARGS, NULL},
    {"_lock_waited", (PyCFunction)(void (*)(void))hyp__lock_waited, METH_FASTCALL, NULL},
    {"_lock_held", (PyCFunction)(void (*)(void))hyp__lock_held, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

int hyp_py_locks_own_code(const void *key) {
    Py_ssize_t i;

    for (i = 0; L.async_codes != NULL && i < PyTuple_GET_SIZE(L.async_codes); i++)
        if (key == (const void *)PyTuple_GET_ITEM(L.async_codes, i))
            return 1;
    /* The recorders it calls, C functions known by their method entries. */
    for (i = 0; hyp__locks_functions[i].ml_name != NULL; i++)
        if (key == (const void *)&hyp__locks_functions[i] &&
            strncmp(hyp__locks_functions[i].ml_name, "_lock_", 6) == 0)
            return 1;
    return 0;
}

int hyp_py_locks_init(PyObject *module) {
    L.col.trunc_func = HYP_NO_ID;
    hyp__lock_type = (PyTypeObject *)PyType_FromSpec(&hyp__lock_spec);
    hyp__rlock_type = (PyTypeObject *)PyType_FromSpec(&hyp__rlock_spec);
    if (hyp__lock_type == NULL || hyp__rlock_type == NULL)
        return -1;
    if (PyModule_AddObjectRef(module, "Lock", (PyObject *)hyp__lock_type) < 0 ||
        PyModule_AddObjectRef(module, "RLock", (PyObject *)hyp__rlock_type) < 0)
        return -1;
    return PyModule_AddFunctions(module, hyp__locks_functions);
}
