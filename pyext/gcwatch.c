/* pyext/gcwatch.c: the callback in gc.callbacks that both modes share
 * (gcwatch.h). */
#include "gcwatch.h"

#include "det.h"
#include "hyprof/clock.h"
#include "walk.h"

#include <stdio.h>

_Atomic uintptr_t hyp_py_gc_word;
_Atomic uint32_t hyp_py_gc_depth = HYP_GC_DEPTH_UNKNOWN;

static struct {
    PyObject *callback;   /* the callable put in gc.callbacks, made once */
    PyObject *list;       /* gc.callbacks while it is there (strong) */
    PyObject *key_gen, *key_collected, *key_uncollectable; /* interned */
    PyObject *names[HYP_GC_GENS]; /* "[gc] generation N" as str, for the deterministic mode */
    det_special_t det;             /* the collection's call there */
    int users, depth_users;
    /* The collection under way: its generation and start, when its "start"
     * was seen. */
    int open;
    unsigned gen;
    uint64_t t0;
    hyp_gc_totals_t totals;
} G;

static const char *const hyp__gc_names[HYP_GC_GENS] = {
    "[gc] generation 0", "[gc] generation 1", "[gc] generation 2"};

const char *hyp_py_gc_func_name(unsigned gen) {
    return hyp__gc_names[gen < HYP_GC_GENS ? gen : HYP_GC_GENS - 1];
}

/* An int entry of the callback's info dict, or 0. */
static uint64_t hyp__info_u64(PyObject *info, PyObject *key) {
    PyObject *v = PyDict_GetItemWithError(info, key); /* borrowed */
    unsigned long long x;

    if (v == NULL || !PyLong_Check(v)) {
        PyErr_Clear();
        return 0;
    }
    x = PyLong_AsUnsignedLongLong(v);
    if (x == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return (uint64_t)x;
}

static void hyp__gc_start(unsigned gen) {
    PyThreadState *ts = PyThreadState_Get();
    uint32_t depth = HYP_GC_DEPTH_UNKNOWN;

    G.open = 1;
    G.gen = gen;
    if (G.depth_users > 0) {
        /* The frames the sampler's walk would record now: a sample taken
         * during the collection has these at its root, and any frame above
         * them is a finalizer's the collection called. */
        uint64_t buf[HYP_WALK_WORDS * HYP_WALK_MAX_DEPTH];
        int truncated = 0;
        int n = hyp__walk_own(ts, buf, HYP_WALK_MAX_DEPTH, &truncated);
        if (n == HYP_WALK_OWN)
            depth = 0;
        else if (n >= 0 && !truncated)
            depth = (uint32_t)n;
    }
    atomic_store_explicit(&hyp_py_gc_depth, depth, memory_order_relaxed);
    atomic_store_explicit(&hyp_py_gc_word, (uintptr_t)ts | (gen + 1), memory_order_release);
    hyp__det_special_enter(DET_SPECIAL_GC, G.names[gen], &G.det);
    G.t0 = hyp_clock_monotonic_ns();
}

static void hyp__gc_stop(unsigned gen, PyObject *info) {
    uint64_t t1 = hyp_clock_monotonic_ns();

    if (!G.open || G.gen != gen)
        return; /* the callback was put in place during this collection */
    G.open = 0;
    hyp__det_special_leave(&G.det);
    atomic_store_explicit(&hyp_py_gc_word, 0, memory_order_release);
    G.totals.collections[gen]++;
    G.totals.ns[gen] += t1 - G.t0;
    G.totals.collected[gen] += hyp__info_u64(info, G.key_collected);
    G.totals.uncollectable[gen] += hyp__info_u64(info, G.key_uncollectable);
}

/* gc.callbacks' signature: (phase, info). It must not raise: the collector
 * would print the exception as ignored. */
static PyObject *hyp__gc_callback(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    uint64_t gen;

    (void)self;
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyDict_Check(args[1]))
        Py_RETURN_NONE;
    HYP_PY_EXC_SAVE(exc);
    gen = hyp__info_u64(args[1], G.key_gen);
    if (gen >= HYP_GC_GENS)
        gen = HYP_GC_GENS - 1;
    if (PyUnicode_CompareWithASCIIString(args[0], "start") == 0)
        hyp__gc_start((unsigned)gen);
    else if (PyUnicode_CompareWithASCIIString(args[0], "stop") == 0)
        hyp__gc_stop((unsigned)gen, args[1]);
    HYP_PY_EXC_RESTORE(exc);
    Py_RETURN_NONE;
}

static PyMethodDef hyp__gc_callback_def = {
    "_hyprof_gc_callback", (PyCFunction)(void (*)(void))hyp__gc_callback, METH_FASTCALL,
    "hyprof's garbage collection callback (gc.callbacks): counts collections and marks them "
    "in profiles."};

static int hyp__gc_objects(void) {
    int g;

    if (G.callback != NULL)
        return 0;
    G.key_gen = PyUnicode_InternFromString("generation");
    G.key_collected = PyUnicode_InternFromString("collected");
    G.key_uncollectable = PyUnicode_InternFromString("uncollectable");
    if (G.key_gen == NULL || G.key_collected == NULL || G.key_uncollectable == NULL)
        return -1;
    for (g = 0; g < HYP_GC_GENS; g++)
        if ((G.names[g] = PyUnicode_InternFromString(hyp__gc_names[g])) == NULL)
            return -1;
    G.callback = PyCFunction_New(&hyp__gc_callback_def, NULL);
    return G.callback != NULL ? 0 : -1;
}

int hyp_py_gc_retain(int with_depth) {
    if (G.users == 0) {
        PyObject *gc, *list;

        if (hyp__gc_objects() < 0)
            return -1;
        gc = PyImport_ImportModule("gc");
        if (gc == NULL)
            return -1;
        list = PyObject_GetAttrString(gc, "callbacks");
        Py_DECREF(gc);
        if (list == NULL)
            return -1;
        if (!PyList_Check(list)) {
            PyErr_SetString(hyp_py_profiler_error(), "gc.callbacks is not a list");
            Py_DECREF(list);
            return -1;
        }
        if (PyList_Append(list, G.callback) < 0) {
            Py_DECREF(list);
            return -1;
        }
        G.list = list;
    }
    G.users++;
    if (with_depth)
        G.depth_users++;
    return 0;
}

void hyp_py_gc_release(int with_depth) {
    Py_ssize_t i;

    if (G.users == 0)
        return;
    if (with_depth && G.depth_users > 0)
        G.depth_users--;
    if (--G.users != 0)
        return;
    /* By identity, wherever the program has moved it; a list the program
     * emptied or replaced no longer holds it. */
    for (i = PyList_GET_SIZE(G.list) - 1; i >= 0; i--) {
        if (PyList_GET_ITEM(G.list, i) == G.callback) {
            if (PySequence_DelItem(G.list, i) < 0)
                PyErr_Clear();
            break;
        }
    }
    Py_CLEAR(G.list);
    /* Leaving during a collection (a finalizer stopped the profiler): its
     * "stop" will not be seen. */
    G.open = 0;
    hyp__det_special_leave(&G.det);
    atomic_store_explicit(&hyp_py_gc_word, 0, memory_order_release);
}

void hyp_py_gc_totals(hyp_gc_totals_t *out) {
    *out = G.totals;
}

int hyp_py_gc_meta(hyp_profile_t *p, const hyp_gc_totals_t *since, const hyp_gc_totals_t *now) {
    uint64_t collected = 0, uncollectable = 0;
    char key[32];
    int g, rc;

    for (g = 0; g < HYP_GC_GENS; g++) {
        snprintf(key, sizeof key, "gc_collections_gen%d", g);
        if ((rc = hyp_profile_set_meta_int(
                 p, key, (int64_t)(now->collections[g] - since->collections[g]))) < 0)
            return rc;
        snprintf(key, sizeof key, "gc_ns_gen%d", g);
        if ((rc = hyp_profile_set_meta_int(p, key, (int64_t)(now->ns[g] - since->ns[g]))) < 0)
            return rc;
        collected += now->collected[g] - since->collected[g];
        uncollectable += now->uncollectable[g] - since->uncollectable[g];
    }
    if ((rc = hyp_profile_set_meta_int(p, "gc_collected", (int64_t)collected)) < 0)
        return rc;
    return hyp_profile_set_meta_int(p, "gc_uncollectable", (int64_t)uncollectable);
}
