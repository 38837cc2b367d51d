/* pyext/pytrace_write.c: Python into traces. What every producer of the
 * module writes (hyp_py_intern_str(), hyp_py_code_func(),
 * hyp_py_set_run_meta(), hyp_py_set_meta_dict()); _hyprof.write_trace(),
 * which builds a profile from the Python tables of a merge or a diff;
 * merge_profiles(), which adds up profiles of one shape in C (a sampler's
 * windows); save_profile(), which writes a loaded Trace's own C profile;
 * copy_trace(). */
#include "pyhyprof.h"

#include "hyprof/internal/util.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int hyp_py_intern_str(hyp_profile_t *p, PyObject *s, hyp_id_t *id) {
    const char *u;
    Py_ssize_t len;
    PyObject *b;
    int rc;

    if (s == NULL || !PyUnicode_Check(s))
        return hyp_profile_string(p, HYP_PY_NO_NAME, sizeof(HYP_PY_NO_NAME) - 1, id);
    u = PyUnicode_AsUTF8AndSize(s, &len);
    if (u != NULL)
        return hyp_profile_string(p, u, (size_t)len, id);
    PyErr_Clear();
    b = PyUnicode_AsEncodedString(s, "utf-8", "surrogateescape");
    if (b == NULL) {
        /* a surrogate that no byte stands for: made in Python, never a file name */
        PyErr_Clear();
        b = PyUnicode_AsEncodedString(s, "utf-8", "backslashreplace");
        if (b == NULL) {
            PyErr_Clear();
            return HYP_ENOMEM;
        }
    }
    rc = hyp_profile_string(p, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b), id);
    Py_DECREF(b);
    return rc;
}

static int hyp__metric_index(const hyp_profile_t *p, const char *name, uint32_t *i) {
    size_t k;

    for (k = 0; k < hyp_profile_metric_count(p); k++) {
        if (strcmp(hyp_profile_metric_at(p, k)->name, name) == 0) {
            *i = (uint32_t)k;
            return 0;
        }
    }
    return HYP_EINVAL;
}

int hyp_py_kind_declare(hyp_profile_t *p, const char *name, const char *count,
                        const char *weight, uint32_t *kind) {
    hyp_sample_kind_t k = {name, NULL, 0, 0};
    size_t i;

    for (i = 0; i < hyp_profile_sample_kind_count(p); i++) {
        if (strcmp(hyp_profile_sample_kind_at(p, i)->name, name) == 0) {
            *kind = (uint32_t)i;
            return 0;
        }
    }
    if (hyp__metric_index(p, count, &k.count_metric) < 0 ||
        hyp__metric_index(p, weight, &k.weight_metric) < 0)
        return HYP_EINVAL;
    k.unit = hyp_profile_metric_at(p, k.weight_metric)->unit;
    return hyp_profile_sample_kind(p, &k, kind);
}

int hyp_py_merge_samples(hyp_profile_t *dst, const hyp_profile_t *src, const char *nomem_reason) {
    size_t before, after, n;
    int rc;

    hyp_profile_samples(dst, &before);
    rc = hyp_profile_merge_ex(dst, src, HYP_MERGE_SAMPLES);
    if (rc == HYP_ENOMEM) {
        /* The samples carried are the first ones; the rest are lost. */
        hyp_profile_samples(dst, &after);
        hyp_profile_samples(src, &n);
        hyp_profile_add_dropped(dst, nomem_reason, n - (after - before));
    }
    return rc;
}

int hyp_py_code_func(hyp_profile_t *p, PyCodeObject *code, hyp_id_t *id) {
    hyp_func_t f;
    int rc;

    f.kind = HYP_FUNC_PYTHON;
    f.lineno = code->co_firstlineno > 0 ? (uint32_t)code->co_firstlineno : 0;
    if ((rc = hyp_py_intern_str(p, code->co_qualname, &f.name)) < 0 ||
        (rc = hyp_py_intern_str(p, code->co_filename, &f.file)) < 0)
        return rc;
    return hyp_profile_func(p, &f, id);
}

PyObject *hyp_py_thread_object(PyObject *active, unsigned long ident) {
    PyObject *key, *th = NULL;

    if (active == NULL) {
        PyObject *mod = PyDict_GetItemString(PyImport_GetModuleDict(), "threading");

        if (mod != NULL && PyModule_Check(mod))
            active = PyDict_GetItemString(PyModule_GetDict(mod), "_active");
    }
    if (active != NULL && PyDict_Check(active) && (key = PyLong_FromUnsignedLong(ident)) != NULL) {
        th = PyDict_GetItemWithError(active, key);
        Py_DECREF(key);
    }
    PyErr_Clear();
    return th;
}

PyObject *hyp_py_thread_name(PyObject *thread) {
    PyObject *dict, *name = NULL;

    if (thread == NULL || (dict = PyObject_GenericGetDict(thread, NULL)) == NULL) {
        PyErr_Clear();
        return NULL;
    }
    name = PyDict_GetItemString(dict, "_name");
    if (name != NULL && PyUnicode_Check(name))
        Py_INCREF(name);
    else
        name = NULL;
    Py_DECREF(dict);
    PyErr_Clear();
    return name;
}

int hyp_py_set_run_meta(hyp_profile_t *p, double start_time, PyObject *argv) {
    const char *full = Py_GetVersion();
    char version[32];
    const char **v;
    PyObject *held;
    Py_ssize_t i, n;
    int rc;

    /* "3.12.4 (main, ...) [GCC ...]": the version is the first word. */
    snprintf(version, sizeof version, "%.*s", (int)strcspn(full, " "), full);
    if ((rc = hyp_profile_set_meta_str(p, "python", version)) < 0 ||
        (rc = hyp_profile_set_meta_int(p, "pid", (int64_t)getpid())) < 0 ||
        (rc = hyp_profile_set_meta_float(p, "start_time", start_time)) < 0)
        return rc;
    if (argv == NULL)
        argv = PySys_GetObject("argv"); /* borrowed; may be unset */
    if (argv == NULL || !PyList_Check(argv))
        return hyp_profile_set_meta_strv(p, "argv", NULL, 0);
    n = PyList_GET_SIZE(argv);
    v = hyp__calloc((size_t)n + 1, sizeof *v);
    held = PyList_New(0);
    if (v == NULL || held == NULL) {
        hyp__free(v);
        Py_XDECREF(held);
        PyErr_Clear();
        return HYP_ENOMEM;
    }
    /* Arguments as the bytes they were (surrogateescape), like file names. */
    for (i = 0; i < n; i++) {
        PyObject *a = PyList_GET_ITEM(argv, i);
        PyObject *b = PyUnicode_Check(a) ? PyUnicode_AsEncodedString(a, "utf-8",
                                                                      "surrogateescape")
                                         : PyObject_Str(a);
        if (b != NULL && PyUnicode_Check(b))
            Py_SETREF(b, PyUnicode_AsEncodedString(b, "utf-8", "backslashreplace"));
        if (b == NULL || PyList_Append(held, b) < 0 ||
            strlen(PyBytes_AS_STRING(b)) != (size_t)PyBytes_GET_SIZE(b)) {
            PyErr_Clear();
            v[i] = "?"; /* not a str that bytes stand for, or one holding a NUL */
        } else {
            v[i] = PyBytes_AS_STRING(b);
        }
        Py_XDECREF(b);
    }
    rc = hyp_profile_set_meta_strv(p, "argv", v, (size_t)n);
    hyp__free(v);
    Py_DECREF(held);
    return rc;
}

/* ---------------------------------------------------------------- write_trace */

static int hyp__fail_rc(int rc, const char *what) {
    if (rc == HYP_ENOMEM)
        PyErr_NoMemory();
    else
        PyErr_Format(PyExc_ValueError, "write_trace: %s: %s", what, hyp_strerror(rc));
    return -1;
}

static int hyp__intern(hyp_profile_t *p, PyObject *s, const char *what, hyp_id_t *id) {
    int rc;

    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "write_trace: %s must be a str, not %.100s", what,
                     Py_TYPE(s)->tp_name);
        return -1;
    }
    rc = hyp_py_intern_str(p, s, id);
    return rc < 0 ? hyp__fail_rc(rc, what) : 0;
}

static PyObject *hyp__seq(PyObject *data, const char *key, int required) {
    PyObject *v = PyDict_GetItemString(data, key), *seq;

    if (v == NULL || v == Py_None) {
        if (required)
            PyErr_Format(PyExc_ValueError, "write_trace: the data has no \"%s\"", key);
        return required ? NULL : PyList_New(0);
    }
    seq = PySequence_Fast(v, "write_trace: expected a sequence");
    return seq;
}

static int hyp__get_u64(PyObject *o, const char *what, uint64_t *v) {
    unsigned long long x;

    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "write_trace: %s must be an int, not %.100s", what,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    x = PyLong_AsUnsignedLongLong(o);
    if (x == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "write_trace: %s must be an int from 0 to 2**64-1", what);
        return -1;
    }
    *v = x;
    return 0;
}

static int hyp__get_u32(PyObject *o, const char *what, uint32_t *v) {
    uint64_t x;

    if (hyp__get_u64(o, what, &x) < 0)
        return -1;
    if (x > UINT32_MAX) {
        PyErr_Format(PyExc_ValueError, "write_trace: %s must be below 2**32", what);
        return -1;
    }
    *v = (uint32_t)x;
    return 0;
}

/* Unpacks a tuple of n items, with a message naming what was expected. */
static PyObject **hyp__items(PyObject *o, Py_ssize_t n, const char *what, Py_ssize_t i,
                               PyObject **holder) {
    PyObject *seq;

    /* tuples and lists only: their items outlive the borrowed UTF-8 buffers */
    seq = (PyTuple_Check(o) || PyList_Check(o)) ? PySequence_Fast(o, "") : NULL;
    if (seq == NULL || PySequence_Fast_GET_SIZE(seq) != n) {
        Py_XDECREF(seq);
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "write_trace: %s %zd must be a sequence of %zd items",
                     what, i, n);
        return NULL;
    }
    *holder = seq;
    return PySequence_Fast_ITEMS(seq);
}

/* Encodes a str as the trace stores strings (UTF-8, surrogates from
 * undecodable bytes back to those bytes) into a new bytes object kept in
 * holder (a list). Returns the C string, or NULL with an exception set. */
static const char *hyp__encode(PyObject *s, PyObject *holder, const char *what) {
    PyObject *b;

    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "write_trace: %s must be a str, not %.100s", what,
                     Py_TYPE(s)->tp_name);
        return NULL;
    }
    b = PyUnicode_AsEncodedString(s, "utf-8", "surrogateescape");
    if (b == NULL)
        return NULL;
    if (PyList_Append(holder, b) < 0) {
        Py_DECREF(b);
        return NULL;
    }
    Py_DECREF(b);
    if (strlen(PyBytes_AS_STRING(b)) != (size_t)PyBytes_GET_SIZE(b)) {
        PyErr_Format(PyExc_ValueError, "write_trace: %s %R contains a NUL character", what, s);
        return NULL;
    }
    return PyBytes_AS_STRING(b);
}

static int hyp__meta_set_held(hyp_profile_t *p, PyObject *key, PyObject *v, PyObject *held);

int hyp_py_set_meta_dict(hyp_profile_t *p, PyObject *dict) {
    PyObject *key, *value, *held;
    Py_ssize_t pos = 0;
    int rc = 0;

    if (!PyDict_Check(dict)) {
        PyErr_SetString(PyExc_TypeError, "header entries must be a dict");
        return -1;
    }
    held = PyList_New(0);
    if (held == NULL)
        return -1;
    while (rc == 0 && PyDict_Next(dict, &pos, &key, &value))
        rc = hyp__meta_set_held(p, key, value, held);
    Py_DECREF(held);
    return rc;
}

static int hyp__meta_set_held(hyp_profile_t *p, PyObject *key, PyObject *v, PyObject *held) {
    const char *k;
    int rc;

    k = hyp__encode(key, held, "a header key");
    if (k == NULL)
        return -1;
    if (hyp_meta_key_reserved(k))
        return 0; /* the format's own keys come from the other fields */
    if (v == Py_None) {
        hyp_meta_t m = {.key = k, .type = HYP_META_NIL};
        rc = hyp_profile_set_meta(p, &m);
    } else if (PyBool_Check(v)) {
        rc = hyp_profile_set_meta_bool(p, k, v == Py_True);
    } else if (PyLong_Check(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);

        if (overflow > 0) {
            hyp_meta_t m = {.key = k, .type = HYP_META_UINT};
            m.v.u = PyLong_AsUnsignedLongLong(v);
            if (PyErr_Occurred())
                return -1;
            rc = hyp_profile_set_meta(p, &m);
        } else if (overflow < 0) {
            PyErr_Format(PyExc_ValueError, "header entry %R is below -2**63", key);
            return -1;
        } else {
            rc = hyp_profile_set_meta_int(p, k, x);
        }
    } else if (PyFloat_Check(v)) {
        rc = hyp_profile_set_meta_float(p, k, PyFloat_AS_DOUBLE(v));
    } else if (PyUnicode_Check(v)) {
        const char *s = hyp__encode(v, held, "a header value");

        if (s == NULL)
            return -1;
        rc = hyp_profile_set_meta_str(p, k, s);
    } else if (PyList_Check(v) || PyTuple_Check(v)) {
        PyObject *seq = PySequence_Fast(v, "");
        Py_ssize_t i, n;
        const char **sv;

        if (seq == NULL)
            return -1;
        n = PySequence_Fast_GET_SIZE(seq);
        sv = PyMem_Calloc((size_t)n + 1, sizeof(*sv));
        if (sv == NULL) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return -1;
        }
        for (i = 0; i < n; i++) {
            PyObject *s = PySequence_Fast_GET_ITEM(seq, i);

            sv[i] = PyUnicode_Check(s) ? hyp__encode(s, held, "a header value") : NULL;
            if (sv[i] == NULL) {
                PyMem_Free(sv);
                Py_DECREF(seq);
                if (!PyErr_Occurred())
                    PyErr_Format(PyExc_TypeError,
                                 "header entry %R: only lists of str are supported", key);
                return -1;
            }
        }
        rc = hyp_profile_set_meta_strv(p, k, sv, (size_t)n);
        PyMem_Free(sv);
        Py_DECREF(seq);
    } else {
        PyErr_Format(PyExc_TypeError,
                     "header entry %R is a %.100s (None, bool, int, float, str or a list of str "
                     "expected)",
                     key, Py_TYPE(v)->tp_name);
        return -1;
    }
    if (rc == HYP_ENOMEM) {
        PyErr_NoMemory();
        return -1;
    }
    if (rc < 0) {
        PyErr_Format(PyExc_ValueError, "header entry %R: %s", key, hyp_strerror(rc));
        return -1;
    }
    return 0;
}

/* Builds a profile from the dict Trace.to_data() returns. */
static hyp_profile_t *hyp__build_profile(PyObject *data) {
    PyObject *o, *seq = NULL, *holder = NULL, **it, *names = NULL;
    hyp_metric_t *metrics = NULL;
    hyp_profile_t *p = NULL;
    hyp_id_t *func_ids = NULL, *node_ids = NULL, *label_ids = NULL;
    Py_ssize_t i, nmetrics = 0, nfuncs = 0, nnodes = 0, nlabels = 0;
    hyp_mode_t mode;
    const char *s;
    int rc;

    if (!PyDict_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "write_trace: data must be a dict");
        return NULL;
    }
    o = PyDict_GetItemString(data, "mode");
    s = o != NULL && PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
    if (s != NULL && strcmp(s, "deterministic") == 0) {
        mode = HYP_MODE_DETERMINISTIC;
    } else if (s != NULL && strcmp(s, "sampling") == 0) {
        mode = HYP_MODE_SAMPLING;
    } else {
        PyErr_SetString(PyExc_ValueError,
                        "write_trace: \"mode\" must be \"deterministic\" or \"sampling\"");
        return NULL;
    }

    /* Metric and sample kind names, encoded as hyp__encode() does (names
     * are kept exactly), held until the profile has copied them. */
    names = PyList_New(0);
    if (names == NULL)
        return NULL;
    seq = hyp__seq(data, "metrics", 1);
    if (seq == NULL)
        goto fail;
    nmetrics = PySequence_Fast_GET_SIZE(seq);
    metrics = PyMem_Calloc((size_t)nmetrics + 1, sizeof(*metrics));
    if (metrics == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (i = 0; i < nmetrics; i++) {
        const char *kind;

        it = hyp__items(PySequence_Fast_GET_ITEM(seq, i), 3, "metric", i, &holder);
        if (it == NULL)
            goto fail;
        metrics[i].name = PyUnicode_Check(it[0]) ? hyp__encode(it[0], names, "a metric") : NULL;
        metrics[i].unit = PyUnicode_Check(it[1]) ? hyp__encode(it[1], names, "a unit") : NULL;
        kind = PyUnicode_Check(it[2]) ? PyUnicode_AsUTF8(it[2]) : NULL;
        /* the strings live as long as data holds the tuples */
        Py_CLEAR(holder);
        if (metrics[i].name == NULL || metrics[i].unit == NULL || kind == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError,
                             "write_trace: metric %zd must be (name, unit, kind) strings", i);
            goto fail;
        }
        if (hyp_metric_kind_parse(kind, strlen(kind), &metrics[i].kind) != 0) {
            PyErr_Format(PyExc_ValueError,
                         "write_trace: metric %zd has kind %R (\"own\", \"cum\", \"calls\","
                         " \"rec\" or \"edge_rec\")",
                         i, it[2]);
            goto fail;
        }
    }
    p = hyp_profile_new(mode, metrics, (size_t)nmetrics);
    Py_CLEAR(seq);
    if (p == NULL) {
        PyErr_SetString(PyExc_ValueError,
                        "write_trace: invalid metric columns (empty or repeated names, or a"
                        " rec column without its calls or cum column)");
        goto fail;
    }

    seq = hyp__seq(data, "sample_kinds", 0);
    if (seq == NULL)
        goto fail;
    for (i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        hyp_sample_kind_t k;

        it = hyp__items(PySequence_Fast_GET_ITEM(seq, i), 4, "sample kind", i, &holder);
        if (it == NULL)
            goto fail;
        k.name = PyUnicode_Check(it[0]) ? hyp__encode(it[0], names, "a sample kind") : NULL;
        k.unit = PyUnicode_Check(it[1]) ? hyp__encode(it[1], names, "a unit") : NULL;
        if (k.name == NULL || k.unit == NULL || hyp__get_u32(it[2], "count_metric",
                                                               &k.count_metric) < 0 ||
            hyp__get_u32(it[3], "weight_metric", &k.weight_metric) < 0) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError,
                             "write_trace: sample kind %zd must be (name, unit, count_metric, "
                             "weight_metric)",
                             i);
            goto fail;
        }
        rc = hyp_profile_sample_kind(p, &k, NULL);
        Py_CLEAR(holder);
        if (rc < 0) {
            PyErr_Format(PyExc_ValueError,
                         "write_trace: sample kind %zd must name two distinct own metric columns",
                         i);
            goto fail;
        }
    }
    Py_CLEAR(seq);

    o = PyDict_GetItemString(data, "header");
    if (o != NULL && o != Py_None) {
        if (!PyDict_Check(o)) {
            PyErr_SetString(PyExc_TypeError, "write_trace: \"header\" must be a dict");
            goto fail;
        }
        if (hyp_py_set_meta_dict(p, o) < 0)
            goto fail;
    }

    /* functions: (name, filename, lineno, kind) */
    seq = hyp__seq(data, "functions", 0);
    if (seq == NULL)
        goto fail;
    nfuncs = PySequence_Fast_GET_SIZE(seq);
    func_ids = PyMem_Calloc((size_t)nfuncs + 1, sizeof(*func_ids));
    if (func_ids == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (i = 0; i < nfuncs; i++) {
        hyp_func_t f;

        it = hyp__items(PySequence_Fast_GET_ITEM(seq, i), 4, "function", i, &holder);
        if (it == NULL || hyp__intern(p, it[0], "a function name", &f.name) < 0 ||
            hyp__intern(p, it[1], "a function file name", &f.file) < 0 ||
            hyp__get_u32(it[2], "a function's lineno", &f.lineno) < 0 ||
            hyp__get_u32(it[3], "a function's kind", &f.kind) < 0)
            goto fail;
        Py_CLEAR(holder);
        if (f.kind > HYP_FUNC_SPECIAL) {
            PyErr_Format(PyExc_ValueError, "write_trace: function %zd has kind %u (0, 1 or 2)", i,
                         f.kind);
            goto fail;
        }
        rc = hyp_profile_func(p, &f, &func_ids[i]);
        if (rc < 0) {
            hyp__fail_rc(rc, "function");
            goto fail;
        }
    }
    Py_CLEAR(seq);

    /* threads: (os_tid, ident, name) */
    seq = hyp__seq(data, "threads", 0);
    if (seq == NULL)
        goto fail;
    for (i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        hyp_thread_t t;

        it = hyp__items(PySequence_Fast_GET_ITEM(seq, i), 3, "thread", i, &holder);
        if (it == NULL || hyp__get_u64(it[0], "a thread's os_tid", &t.os_tid) < 0 ||
            hyp__get_u64(it[1], "a thread's ident", &t.ident) < 0 ||
            hyp__intern(p, it[2], "a thread name", &t.name) < 0)
            goto fail;
        Py_CLEAR(holder);
        rc = hyp_profile_thread(p, &t, NULL);
        if (rc < 0) {
            hyp__fail_rc(rc, "thread");
            goto fail;
        }
    }
    Py_CLEAR(seq);

    /* nodes: (parent, func, line) for ids 1, 2, ...; parents come first */
    seq = hyp__seq(data, "nodes", 0);
    if (seq == NULL)
        goto fail;
    nnodes = PySequence_Fast_GET_SIZE(seq);
    node_ids = PyMem_Calloc((size_t)nnodes + 2, sizeof(*node_ids));
    if (node_ids == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    node_ids[0] = HYP_ROOT_NODE;
    for (i = 0; i < nnodes; i++) {
        uint32_t parent, func, line;

        it = hyp__items(PySequence_Fast_GET_ITEM(seq, i), 3, "node", i + 1, &holder);
        if (it == NULL || hyp__get_u32(it[0], "a node's parent", &parent) < 0 ||
            hyp__get_u32(it[1], "a node's function", &func) < 0 ||
            hyp__get_u32(it[2], "a node's line", &line) < 0)
            goto fail;
        Py_CLEAR(holder);
        if (parent > (uint32_t)i) {
            PyErr_Format(PyExc_ValueError,
                         "write_trace: node %zd refers to parent %u, which does not come before "
                         "it",
                         i + 1, parent);
            goto fail;
        }
        if (func >= (uint32_t)nfuncs) {
            PyErr_Format(PyExc_ValueError,
                         "write_trace: node %zd refers to function %u beyond the %zd functions",
                         i + 1, func, nfuncs);
            goto fail;
        }
        rc = hyp_profile_node(p, node_ids[parent], func_ids[func], line, &node_ids[i + 1]);
        if (rc < 0) {
            hyp__fail_rc(rc, "node");
            goto fail;
        }
    }
    Py_CLEAR(seq);

    /* label sets: [((key, value), ...), ...] by id, the first the empty set */
    seq = hyp__seq(data, "label_sets", 0);
    if (seq == NULL)
        goto fail;
    nlabels = PySequence_Fast_GET_SIZE(seq);
    label_ids = PyMem_Calloc((size_t)nlabels + 1, sizeof(*label_ids));
    if (label_ids == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (i = 0; i < nlabels; i++) {
        PyObject *set = PySequence_Fast(PySequence_Fast_GET_ITEM(seq, i),
                                        "write_trace: a label set must be a sequence");
        hyp_label_t l[HYP_MAX_LABELS];
        Py_ssize_t j, n;

        if (set == NULL)
            goto fail;
        n = PySequence_Fast_GET_SIZE(set);
        if (n > HYP_MAX_LABELS) {
            PyErr_Format(PyExc_ValueError, "write_trace: label set %zd has %zd labels (at most "
                                           "%d)", i, n, HYP_MAX_LABELS);
            Py_DECREF(set);
            goto fail;
        }
        for (j = 0; j < n; j++) {
            it = hyp__items(PySequence_Fast_GET_ITEM(set, j), 2, "label", j, &holder);
            if (it == NULL || !PyUnicode_Check(it[0]) || !PyUnicode_Check(it[1]) ||
                hyp_py_intern_str(p, it[0], &l[j].key) < 0 ||
                hyp_py_intern_str(p, it[1], &l[j].value) < 0) {
                if (!PyErr_Occurred())
                    PyErr_Format(PyExc_ValueError, "write_trace: label set %zd: a label is a "
                                                   "(str, str) pair", i);
                Py_DECREF(set);
                goto fail;
            }
            Py_CLEAR(holder);
        }
        Py_DECREF(set);
        rc = hyp_profile_labels(p, l, (size_t)n, &label_ids[i]);
        if (rc < 0) {
            if (rc == HYP_EINVAL)
                PyErr_Format(PyExc_ValueError, "write_trace: label set %zd names a key twice",
                             i);
            else
                hyp__fail_rc(rc, "label set");
            goto fail;
        }
    }
    Py_CLEAR(seq);

    /* rows: (thread, node, values) or (thread, node, values, label set) */
    seq = hyp__seq(data, "rows", 0);
    if (seq == NULL)
        goto fail;
    {
        uint64_t *vals = PyMem_Calloc((size_t)nmetrics + 1, sizeof(uint64_t));

        if (vals == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        for (i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
            PyObject *vseq, *row = PySequence_Fast_GET_ITEM(seq, i);
            uint32_t thread, node, labels = 0;
            Py_ssize_t j, width = PyTuple_Check(row) && PyTuple_GET_SIZE(row) == 4 ? 4 : 3;

            it = hyp__items(row, width, "row", i, &holder);
            if (it == NULL || hyp__get_u32(it[0], "a row's thread", &thread) < 0 ||
                hyp__get_u32(it[1], "a row's node", &node) < 0 ||
                (width == 4 && hyp__get_u32(it[3], "a row's label set", &labels) < 0)) {
                PyMem_Free(vals);
                goto fail;
            }
            if (labels != 0 && labels >= (uint64_t)nlabels) {
                PyErr_Format(PyExc_ValueError,
                             "write_trace: row %zd refers to label set %u beyond the %zd sets",
                             i, labels, nlabels);
                PyMem_Free(vals);
                goto fail;
            }
            if (node > (uint64_t)nnodes || thread >= hyp_profile_thread_count(p)) {
                PyErr_Format(PyExc_ValueError,
                             "write_trace: row %zd refers to %s %u beyond its table", i,
                             node > (uint64_t)nnodes ? "node" : "thread",
                             node > (uint64_t)nnodes ? node : thread);
                PyMem_Free(vals);
                goto fail;
            }
            vseq = PySequence_Fast(it[2], "write_trace: a row's values must be a sequence");
            if (vseq == NULL || PySequence_Fast_GET_SIZE(vseq) != nmetrics) {
                if (vseq != NULL)
                    PyErr_Format(PyExc_ValueError,
                                 "write_trace: row %zd has %zd values for %zd metric columns", i,
                                 PySequence_Fast_GET_SIZE(vseq), nmetrics);
                Py_XDECREF(vseq);
                PyMem_Free(vals);
                goto fail;
            }
            for (j = 0; j < nmetrics; j++) {
                if (hyp__get_u64(PySequence_Fast_GET_ITEM(vseq, j), "a metric value",
                                   &vals[j]) < 0) {
                    Py_DECREF(vseq);
                    PyMem_Free(vals);
                    goto fail;
                }
            }
            Py_DECREF(vseq);
            Py_CLEAR(holder);
            rc = hyp_profile_add_labeled(p, thread, node_ids[node],
                                         labels ? label_ids[labels] : HYP_NO_LABELS, vals);
            if (rc < 0) {
                PyMem_Free(vals);
                hyp__fail_rc(rc, "row");
                goto fail;
            }
        }
        PyMem_Free(vals);
    }
    Py_CLEAR(seq);

    /* samples: (thread, node, kind, time, weight) */
    seq = hyp__seq(data, "sample_list", 0);
    if (seq == NULL)
        goto fail;
    for (i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        hyp_sample_t sm = {.labels = HYP_NO_LABELS};
        uint32_t node;

        it = hyp__items(PySequence_Fast_GET_ITEM(seq, i), 5, "sample", i, &holder);
        if (it == NULL || hyp__get_u32(it[0], "a sample's thread", &sm.thread) < 0 ||
            hyp__get_u32(it[1], "a sample's node", &node) < 0 ||
            hyp__get_u32(it[2], "a sample's kind", &sm.kind) < 0 ||
            hyp__get_u64(it[3], "a sample's time", &sm.time_ns) < 0 ||
            hyp__get_u64(it[4], "a sample's weight", &sm.weight) < 0)
            goto fail;
        Py_CLEAR(holder);
        if (node > (uint64_t)nnodes) {
            PyErr_Format(PyExc_ValueError, "write_trace: sample %zd refers to node %u beyond the "
                                           "%zd nodes",
                         i, node, nnodes + 1);
            goto fail;
        }
        sm.node = node_ids[node];
        rc = hyp_profile_add_sample(p, &sm);
        if (rc < 0) {
            if (rc == HYP_ERANGE)
                PyErr_Format(PyExc_ValueError,
                             "write_trace: sample %zd refers to a thread or kind beyond its table",
                             i);
            else
                hyp__fail_rc(rc, "sample");
            goto fail;
        }
    }
    Py_CLEAR(seq);

    o = PyDict_GetItemString(data, "dropped");
    if (o != NULL && o != Py_None) {
        PyObject *key, *value;
        Py_ssize_t pos = 0;

        if (!PyDict_Check(o)) {
            PyErr_SetString(PyExc_TypeError, "write_trace: \"dropped\" must be a dict");
            goto fail;
        }
        while (PyDict_Next(o, &pos, &key, &value)) {
            uint64_t cnt;
            PyObject *held = PyList_New(0);
            const char *reason = held ? hyp__encode(key, held, "a dropped reason") : NULL;

            if (reason == NULL) {
                Py_XDECREF(held);
                goto fail;
            }
            if (hyp__get_u64(value, "a dropped count", &cnt) < 0) {
                Py_DECREF(held);
                goto fail;
            }
            hyp_profile_add_dropped(p, reason, cnt);
            Py_DECREF(held);
        }
    }
    o = PyDict_GetItemString(data, "truncated_nodes");
    if (o != NULL && o != Py_None) {
        uint64_t t;

        if (hyp__get_u64(o, "truncated_nodes", &t) < 0)
            goto fail;
        hyp_profile_set_truncated(p, hyp_profile_truncated(p) + t);
    }
    PyMem_Free(metrics);
    PyMem_Free(func_ids);
    PyMem_Free(node_ids);
    PyMem_Free(label_ids);
    Py_DECREF(names);
    return p;
fail:
    Py_XDECREF(names);
    Py_XDECREF(holder);
    Py_XDECREF(seq);
    PyMem_Free(metrics);
    PyMem_Free(func_ids);
    PyMem_Free(node_ids);
    PyMem_Free(label_ids);
    hyp_profile_free(p);
    return NULL;
}

PyObject *hyp_py_save(const hyp_profile_t *p, PyObject *path_obj) {
    PyObject *path = NULL;
    int rc, saved_errno;

    if (!PyUnicode_FSConverter(path_obj, &path))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    errno = 0;
    rc = hyp_trace_save(p, PyBytes_AS_STRING(path));
    saved_errno = errno;
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (rc == 0)
        Py_RETURN_NONE;
    if (rc == HYP_ENOMEM)
        return PyErr_NoMemory();
    if ((rc == HYP_EIO || rc == HYP_ENOENT || rc == HYP_EPERM) && saved_errno != 0) {
        /* FileNotFoundError, PermissionError, ...: the OSError a user
         * expects, with the file's name. */
        errno = saved_errno;
        return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path_obj);
    }
    return PyErr_Format(PyExc_OSError, "cannot write %R: %s", path_obj, hyp_strerror(rc));
}

static PyObject *hyp__write_trace(PyObject *self, PyObject *args) {
    PyObject *path_obj, *data, *res;
    hyp_profile_t *p;

    (void)self;
    if (!PyArg_ParseTuple(args, "OO!:write_trace", &path_obj, &PyDict_Type, &data))
        return NULL;
    p = hyp__build_profile(data);
    if (p == NULL)
        return NULL;
    res = hyp_py_save(p, path_obj);
    hyp_profile_free(p);
    return res;
}

/* merge_profiles([capsule, ...], header) -> Trace: a new profile shaped like
 * the first, with every one added in (hyp_profile_merge()) and the header
 * entries of the dict set over theirs. The inputs are not changed. */
static PyObject *hyp__merge_profiles(PyObject *self, PyObject *args) {
    PyObject *list, *header, *seq;
    hyp_profile_t *dst = NULL;
    Py_ssize_t i, n;
    int rc;

    (void)self;
    if (!PyArg_ParseTuple(args, "OO!:merge_profiles", &list, &PyDict_Type, &header))
        return NULL;
    seq = PySequence_Fast(list, "merge_profiles: expected a sequence of profiles");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    for (i = 0; i < n; i++) {
        hyp_profile_t *src = hyp_py_capsule_profile(PySequence_Fast_GET_ITEM(seq, i));

        if (src == NULL)
            goto fail;
        if (dst == NULL && (dst = hyp_profile_new_like(src)) == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        if ((rc = hyp_profile_merge(dst, src)) < 0) {
            if (rc == HYP_ENOMEM)
                PyErr_NoMemory();
            else
                PyErr_Format(PyExc_ValueError,
                             "merge_profiles: profile %zd is not shaped like the first (mode, "
                             "metrics or sample kinds differ)", i);
            goto fail;
        }
    }
    Py_DECREF(seq);
    if (dst == NULL) {
        PyErr_SetString(PyExc_ValueError, "merge_profiles: no profile to merge");
        return NULL;
    }
    if (hyp_py_set_meta_dict(dst, header) < 0) {
        hyp_profile_free(dst);
        return NULL;
    }
    return hyp_py_trace_take_profile(dst);
fail:
    Py_DECREF(seq);
    hyp_profile_free(dst);
    return NULL;
}

static PyObject *hyp__meta_key_summed(PyObject *self, PyObject *key) {
    const char *s;

    (void)self;
    if (!PyUnicode_Check(key))
        Py_RETURN_FALSE;
    if ((s = PyUnicode_AsUTF8(key)) == NULL) {
        /* A key no UTF-8 spells (a hostile trace's surrogates) is no count. */
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    return PyBool_FromLong(hyp_meta_key_summed(s));
}

/* A loaded trace writes its own C profile: no tables rebuilt from Python. */
static PyObject *hyp__save_profile(PyObject *self, PyObject *args) {
    PyObject *cap, *path_obj;
    hyp_profile_t *p;

    (void)self;
    if (!PyArg_ParseTuple(args, "O!O:save_profile", &PyCapsule_Type, &cap, &path_obj))
        return NULL;
    if ((p = hyp_py_capsule_profile(cap)) == NULL)
        return NULL;
    return hyp_py_save(p, path_obj);
}

/* A loaded trace's C profile as the bytes of a trace file. */
static PyObject *hyp__profile_bytes(PyObject *self, PyObject *cap) {
    hyp_profile_t *p;
    hyp_writer_t *w = NULL;
    PyObject *out;
    const void *buf;
    size_t len;
    int rc;

    (void)self;
    if ((p = hyp_py_capsule_profile(cap)) == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = hyp_trace_save_mem(p, &w);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        return rc == HYP_ENOMEM ? PyErr_NoMemory()
                                : PyErr_Format(PyExc_OSError, "cannot encode the trace: %s",
                                               hyp_strerror(rc));
    buf = hyp_writer_data(w, &len);
    out = PyBytes_FromStringAndSize(buf, (Py_ssize_t)len);
    hyp_writer_close(w);
    return out;
}

static PyObject *hyp__copy_trace(PyObject *self, PyObject *args) {
    PyObject *src_obj, *dst_obj, *src = NULL, *dst = NULL;
    int rc;

    (void)self;
    if (!PyArg_ParseTuple(args, "OO:copy_trace", &src_obj, &dst_obj))
        return NULL;
    if (!PyUnicode_FSConverter(src_obj, &src) || !PyUnicode_FSConverter(dst_obj, &dst)) {
        Py_XDECREF(src);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = hyp_trace_copy(PyBytes_AS_STRING(src), PyBytes_AS_STRING(dst));
    Py_END_ALLOW_THREADS
    Py_DECREF(src);
    Py_DECREF(dst);
    if (rc < 0)
        return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, dst_obj);
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------- registration */

static PyMethodDef hyp_py_trace_write_methods[] = {
    {"write_trace", hyp__write_trace, METH_VARARGS,
     "write_trace(path, data) -> None\n\nWrites a trace through the C writer from Python "
     "tables (the dict hyprof.trace.Trace.to_data() returns)."},
    {"save_profile", hyp__save_profile, METH_VARARGS,
     "save_profile(profile, path) -> None\n\nWrites a loaded trace's C profile (its "
     "capsule) to path; samples are folded into the rows."},
    {"profile_bytes", hyp__profile_bytes, METH_O,
     "profile_bytes(profile) -> bytes\n\nA loaded trace's C profile (its capsule) as the "
     "bytes of a trace file, as save_profile() would write it."},
    {"meta_key_summed", hyp__meta_key_summed, METH_O,
     "meta_key_summed(key) -> bool\n\nWhether a header entry counts something over the run, "
     "so that merged traces add it up (no_python_frames, the gc_ entries)."},
    {"merge_profiles", hyp__merge_profiles, METH_VARARGS,
     "merge_profiles(profiles, header) -> Trace\n\nAdds up profiles of one shape (a "
     "sampler's windows: Trace._profile capsules) into a new Trace, with the header "
     "entries given set over theirs."},
    {"copy_trace", hyp__copy_trace, METH_VARARGS,
     "copy_trace(src, dst) -> None\n\nCopies a trace file by the writer's rules: dst is "
     "replaced by renaming a file created exclusively beside it, never written through a "
     "symlink."},
    {NULL, NULL, 0, NULL},
};

int hyp_py_trace_write_init(PyObject *module) {
    return PyModule_AddFunctions(module, hyp_py_trace_write_methods);
}
