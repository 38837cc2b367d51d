/* pyext/labels.c: the process-wide table of label sets and each thread's
 * current set (labels.h), and the functions hyprof.labels calls:
 * _labels_intern(), _labels_swap(), _labels_stats(). */
#include "labels.h"
#include "sampler.h"

#include "hyprof/internal/util.h"

#include <string.h>

/* Bounds of one label, in UTF-8 bytes: a name and a short value. */
#define HYP_PY_LABEL_KEY_MAX 128
#define HYP_PY_LABEL_VALUE_MAX 1024

__thread uint32_t hyp_py_labels_tls __attribute__((tls_model("initial-exec")));

typedef struct {
    char *s;
    size_t len;
} hyp_py_lstr_t;

typedef struct {
    size_t n;
    hyp_py_lstr_t *kv; /* 2 * n strings: key, value, key, value, ... */
} hyp_py_lset_t;

static struct {
    hyp_py_lset_t *sets; /* sets[0] is the empty set */
    size_t n, cap;
    PyObject *index;  /* {((key, value), ...): id} */
    uint64_t refused; /* sets not made: the table was full */
} L;

/* ---------------------------------------------------------------- mapping */

const char *const hyp_py_gil_names[HYP_GIL_STATES] = {"", "held", "released", "waiting"};

int hyp_py_labels_map(hyp_profile_t *p, uint32_t id, unsigned gil, hyp_id_t **cache,
                      size_t *ncache, hyp_id_t *out) {
    hyp_label_t set[HYP_MAX_LABELS];
    const hyp_py_lset_t *ls;
    size_t i, n = 0, slot;
    int rc;

    *out = HYP_NO_LABELS;
    if (id >= L.n)
        id = 0;
    if (gil >= HYP_GIL_STATES)
        gil = HYP_GIL_UNKNOWN;
    if (id == 0 && gil == HYP_GIL_UNKNOWN)
        return 0;
    slot = (size_t)id * HYP_GIL_STATES + gil;
    if (slot >= *ncache) {
        size_t cap = *ncache, old = *ncache;

        if (hyp__grow((void **)cache, &cap, slot + 1, sizeof(**cache)) < 0)
            return HYP_ENOMEM;
        for (i = old; i < cap; i++)
            (*cache)[i] = HYP_NO_ID;
        *ncache = cap;
    }
    if ((*cache)[slot] != HYP_NO_ID) {
        *out = (*cache)[slot];
        return 0;
    }
    ls = &L.sets[id];
    for (i = 0; i < ls->n; i++) {
        /* A program's own "gil" label gives way to the sampler's. */
        if (gil != HYP_GIL_UNKNOWN && ls->kv[2 * i].len == 3 &&
            memcmp(ls->kv[2 * i].s, "gil", 3) == 0)
            continue;
        if ((rc = hyp_profile_string(p, ls->kv[2 * i].s, ls->kv[2 * i].len, &set[n].key)) < 0 ||
            (rc = hyp_profile_string(p, ls->kv[2 * i + 1].s, ls->kv[2 * i + 1].len,
                                     &set[n].value)) < 0)
            return rc;
        n++;
    }
    if (gil != HYP_GIL_UNKNOWN && n < HYP_MAX_LABELS) { /* a full set keeps its own */
        if ((rc = hyp_profile_string(p, "gil", 3, &set[n].key)) < 0 ||
            (rc = hyp_profile_string(p, hyp_py_gil_names[gil], strlen(hyp_py_gil_names[gil]),
                                     &set[n].value)) < 0)
            return rc;
        n++;
    }
    if ((rc = hyp_profile_labels(p, set, n, out)) < 0)
        return rc;
    (*cache)[slot] = *out;
    return 0;
}

/* ---------------------------------------------------------------- the table */

/* The UTF-8 bytes of a label's key or value (surrogates written back as the
 * bytes they stand for, as every name hyprof records), checked against max. */
static int hyp__lstr(PyObject *o, const char *what, size_t max, hyp_py_lstr_t *out) {
    PyObject *b;
    char *data;
    Py_ssize_t len;

    if (!PyUnicode_Check(o)) {
        PyErr_Format(hyp_py_profiler_error(), "a label's %s must be a str, not %.100s", what,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    b = PyUnicode_AsEncodedString(o, "utf-8", "surrogateescape");
    if (b == NULL)
        return -1;
    PyBytes_AsStringAndSize(b, &data, &len);
    if ((size_t)len > max || (len == 0 && max == HYP_PY_LABEL_KEY_MAX)) {
        if (max == HYP_PY_LABEL_KEY_MAX)
            PyErr_Format(hyp_py_profiler_error(), "a label's name must be 1 to %d bytes: %R",
                         HYP_PY_LABEL_KEY_MAX, o);
        else
            PyErr_Format(hyp_py_profiler_error(), "a label's value must be at most %d bytes",
                         HYP_PY_LABEL_VALUE_MAX);
        Py_DECREF(b);
        return -1;
    }
    out->s = hyp__strndup(data, (size_t)len);
    out->len = (size_t)len;
    Py_DECREF(b);
    if (out->s == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void hyp__lset_clear(hyp_py_lset_t *ls) {
    size_t i;

    for (i = 0; ls->kv != NULL && i < 2 * ls->n; i++)
        hyp__free(ls->kv[i].s);
    hyp__free(ls->kv);
    ls->kv = NULL;
    ls->n = 0;
}

/* _labels_intern(pairs) -> id: pairs is a tuple of (key, value) str tuples
 * with distinct keys, sorted by key (hyprof.labels sorts them). The same
 * pairs always give the same id; () gives 0; a full table gives 0 too,
 * counted. */
static PyObject *hyp__labels_intern(PyObject *self, PyObject *pairs) {
    hyp_py_lset_t ls = {0, NULL};
    PyObject *id;
    Py_ssize_t n, i;

    (void)self;
    if (!PyTuple_Check(pairs)) {
        PyErr_SetString(PyExc_TypeError, "_labels_intern() takes a tuple of (key, value)");
        return NULL;
    }
    n = PyTuple_GET_SIZE(pairs);
    if (n == 0)
        return PyLong_FromLong(0);
    id = PyDict_GetItemWithError(L.index, pairs);
    if (id != NULL)
        return Py_NewRef(id);
    if (PyErr_Occurred())
        return NULL;
    if (n > HYP_MAX_LABELS) {
        PyErr_Format(hyp_py_profiler_error(), "%zd labels at once: at most %d", n, HYP_MAX_LABELS);
        return NULL;
    }
    if (L.n >= HYP_PY_LABELS_MAX) {
        L.refused++;
        return PyLong_FromLong(0);
    }
    ls.kv = hyp__calloc(2 * (size_t)n, sizeof(*ls.kv));
    if (ls.kv == NULL)
        return PyErr_NoMemory();
    for (i = 0; i < n; i++) {
        PyObject *kv = PyTuple_GET_ITEM(pairs, i);

        if (!PyTuple_Check(kv) || PyTuple_GET_SIZE(kv) != 2) {
            PyErr_SetString(PyExc_TypeError, "a label is a (key, value) tuple");
            goto fail;
        }
        ls.n = (size_t)i + 1;
        if (hyp__lstr(PyTuple_GET_ITEM(kv, 0), "name", HYP_PY_LABEL_KEY_MAX, &ls.kv[2 * i]) < 0 ||
            hyp__lstr(PyTuple_GET_ITEM(kv, 1), "value", HYP_PY_LABEL_VALUE_MAX,
                        &ls.kv[2 * i + 1]) < 0)
            goto fail;
        if (i > 0 && PyUnicode_Compare(PyTuple_GET_ITEM(PyTuple_GET_ITEM(pairs, i - 1), 0),
                                       PyTuple_GET_ITEM(kv, 0)) >= 0) {
            PyErr_SetString(PyExc_ValueError, "_labels_intern(): keys must be sorted and distinct");
            goto fail;
        }
    }
    if (hyp__grow((void **)&L.sets, &L.cap, L.n + 1, sizeof(*L.sets)) < 0) {
        PyErr_NoMemory();
        goto fail;
    }
    id = PyLong_FromSize_t(L.n);
    if (id == NULL || PyDict_SetItem(L.index, pairs, id) < 0) {
        Py_XDECREF(id);
        goto fail;
    }
    L.sets[L.n++] = ls;
    return id;
fail:
    hyp__lset_clear(&ls);
    return NULL;
}

/* _labels_swap(id) -> previous id: the calling thread carries set id from
 * now on. */
static PyObject *hyp__labels_swap(PyObject *self, PyObject *arg) {
    unsigned long id = PyLong_AsUnsignedLong(arg);
    uint32_t prev;

    (void)self;
    if (id == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    if (id >= L.n) {
        PyErr_Format(PyExc_ValueError, "no label set %lu", id);
        return NULL;
    }
    prev = hyp_py_labels_tls;
    __atomic_store_n(&hyp_py_labels_tls, (uint32_t)id, __ATOMIC_RELAXED);
    hyp_py_sampler_labels_here();
    return PyLong_FromUnsignedLong(prev);
}

static PyObject *hyp__labels_stats(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return Py_BuildValue("{s:n,s:K,s:i}", "sets", (Py_ssize_t)L.n, "refused",
                         (unsigned long long)L.refused, "max", HYP_PY_LABELS_MAX);
}

static PyMethodDef hyp_py_labels_methods[] = {
    {"_labels_intern", hyp__labels_intern, METH_O,
     "_labels_intern(pairs) -> int\n\nThe process-wide id of a label set: a tuple of (key, "
     "value) str tuples sorted by key."},
    {"_labels_swap", hyp__labels_swap, METH_O,
     "_labels_swap(id) -> int\n\nMakes the calling thread carry label set id; returns the set "
     "it carried."},
    {"_labels_stats", hyp__labels_stats, METH_NOARGS,
     "_labels_stats() -> dict\n\nThe label sets made, and those refused once the table was "
     "full."},
    {NULL, NULL, 0, NULL},
};

int hyp_py_labels_init(PyObject *module) {
    if (L.index == NULL) {
        L.index = PyDict_New();
        if (L.index == NULL)
            return -1;
        if (hyp__grow((void **)&L.sets, &L.cap, 1, sizeof(*L.sets)) < 0) {
            PyErr_NoMemory();
            return -1;
        }
        L.sets[0].n = 0;
        L.sets[0].kv = NULL;
        L.n = 1;
    }
    return PyModule_AddFunctions(module, hyp_py_labels_methods);
}
