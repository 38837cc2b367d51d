/* pyext/pytrace_read.c: traces into Python. _hyprof.read_trace() reads a
 * file with the core's reader; hyp_py_trace_take_profile() and
 * hyp_py_trace_from_profile() (through hyp_profile_copy(), in memory) make
 * a Trace of a profile the module built;
 * flat() and node_values() compute a loaded trace's aggregations in C,
 * callgrind() writes its callgrind function blocks;
 * label_sets(), label_set_rows() and where_labels() read and cut it by
 * label set.
 *
 * A Trace is made from a dict of plain Python objects (header, tables, the
 * node array as bytes) plus a capsule that keeps the C profile, so that
 * hyprof.trace.Trace asks for flat statistics and node values per thread
 * later, computed in C, and writes itself from it. */
#include "pyhyprof.h"

#include "hyprof/internal/util.h"

#include <errno.h>
#include <string.h>

/* ---------------------------------------------------------------- msgpack -> Python */

static PyObject *hyp__str(const char *s, size_t len) {
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)len, "surrogateescape");
}

static PyObject *hyp__meta_value(const hyp_meta_t *m) {
    size_t i;
    PyObject *l;

    switch (m->type) {
    case HYP_META_NIL:
        Py_RETURN_NONE;
    case HYP_META_BOOL:
        return PyBool_FromLong(m->v.b);
    case HYP_META_INT:
        return PyLong_FromLongLong(m->v.i);
    case HYP_META_UINT:
        return PyLong_FromUnsignedLongLong(m->v.u);
    case HYP_META_FLOAT:
        return PyFloat_FromDouble(m->v.f);
    case HYP_META_STR:
        return hyp__str(m->v.s, strlen(m->v.s));
    case HYP_META_STRV:
        l = PyList_New((Py_ssize_t)m->v.sv.n);
        for (i = 0; l != NULL && i < m->v.sv.n; i++) {
            PyObject *s = hyp__str(m->v.sv.v[i], strlen(m->v.sv.v[i]));

            if (s == NULL) {
                Py_CLEAR(l);
                break;
            }
            PyList_SET_ITEM(l, (Py_ssize_t)i, s);
        }
        return l;
    }
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------- profile -> dict */

static void hyp__capsule_free(PyObject *cap) {
    hyp_profile_free(PyCapsule_GetPointer(cap, HYP_PY_CAPSULE));
}

PyObject *hyp_py_profile_capsule(hyp_profile_t *p) {
    PyObject *cap = PyCapsule_New(p, HYP_PY_CAPSULE, hyp__capsule_free);

    if (cap == NULL)
        hyp_profile_free(p);
    return cap;
}

static int hyp__set(PyObject *d, const char *key, PyObject *v) {
    int rc;

    if (v == NULL)
        return -1;
    rc = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return rc;
}

/* Like hyp__set with a key decoded as the trace's strings are (lossless
 * for bytes that are not UTF-8). */
static int hyp__set_key(PyObject *d, const char *key, PyObject *v) {
    PyObject *k;
    int rc;

    if (v == NULL)
        return -1;
    k = hyp__str(key, strlen(key));
    if (k == NULL) {
        Py_DECREF(v);
        return -1;
    }
    rc = PyDict_SetItem(d, k, v);
    Py_DECREF(k);
    Py_DECREF(v);
    return rc;
}

static PyObject *hyp__cstr(const char *s) {
    return hyp__str(s, strlen(s));
}

/* The metric columns and the sample kinds, as tuples (the Trace's tables) or
 * as the lists a header written to msgpack reads back as. */
static PyObject *hyp__metrics_list(const hyp_profile_t *p, int as_lists) {
    size_t i, n = hyp_profile_metric_count(p);
    PyObject *l = PyList_New((Py_ssize_t)n);

    for (i = 0; l != NULL && i < n; i++) {
        const hyp_metric_t *m = hyp_profile_metric_at(p, i);
        PyObject *t = Py_BuildValue(as_lists ? "[NNs]" : "(NNs)", hyp__cstr(m->name),
                                    hyp__cstr(m->unit), hyp_metric_kind_name(m->kind));
        if (t == NULL)
            Py_CLEAR(l);
        else
            PyList_SET_ITEM(l, (Py_ssize_t)i, t);
    }
    return l;
}

static PyObject *hyp__kinds_list(const hyp_profile_t *p, int as_lists) {
    size_t i, n = hyp_profile_sample_kind_count(p);
    PyObject *l = PyList_New((Py_ssize_t)n);

    for (i = 0; l != NULL && i < n; i++) {
        const hyp_sample_kind_t *k = hyp_profile_sample_kind_at(p, i);
        PyObject *t = Py_BuildValue(as_lists ? "[NNII]" : "(NNII)", hyp__cstr(k->name),
                                    hyp__cstr(k->unit), k->count_metric, k->weight_metric);
        if (t == NULL)
            Py_CLEAR(l);
        else
            PyList_SET_ITEM(l, (Py_ssize_t)i, t);
    }
    return l;
}

/* Builds the dict hyprof.trace.Trace is made from. Takes ownership of p. */
static PyObject *hyp__trace_data(hyp_profile_t *p, unsigned minor,
                                   const hyp_sample_t *samples, size_t nsamples, int keep,
                                   const hyp_read_status_t *st) {
    PyObject *d = NULL, *cap, *l, *header;
    const char *mode = hyp_profile_mode(p) == HYP_MODE_SAMPLING ? "sampling" : "deterministic";
    size_t i, n;

    cap = hyp_py_profile_capsule(p);
    if (cap == NULL)
        return NULL;
    d = PyDict_New();
    if (d == NULL || hyp__set(d, "profile", Py_NewRef(cap)) < 0)
        goto fail;

    /* The header: the format's own entries, then the profile's metadata
     * (the reader's, which has bounded and typed every value). */
    header = PyDict_New();
    if (header == NULL)
        goto fail;
    if (hyp__set(header, "format", PyUnicode_FromString(HYP_FORMAT_NAME)) < 0 ||
        hyp__set(header, "version", Py_BuildValue("[iI]", HYP_FORMAT_MAJOR, minor)) < 0 ||
        hyp__set(header, "mode", PyUnicode_FromString(mode)) < 0 ||
        hyp__set(header, "metrics", hyp__metrics_list(p, 1)) < 0 ||
        hyp__set(header, "sample_kinds", hyp__kinds_list(p, 1)) < 0) {
        Py_DECREF(header);
        goto fail;
    }
    for (i = 0; i < hyp_profile_meta_count(p); i++) {
        const hyp_meta_t *m = hyp_profile_meta_at(p, i);

        if (hyp__set_key(header, m->key, hyp__meta_value(m)) < 0) {
            Py_DECREF(header);
            goto fail;
        }
    }
    if (hyp__set(d, "header", header) < 0)
        goto fail;
    if (hyp__set(d, "mode", PyUnicode_FromString(mode)) < 0)
        goto fail;

    if (hyp__set(d, "metrics", hyp__metrics_list(p, 0)) < 0 ||
        hyp__set(d, "sample_kinds", hyp__kinds_list(p, 0)) < 0)
        goto fail;

    n = hyp_profile_string_count(p);
    l = PyList_New((Py_ssize_t)n);
    for (i = 0; l != NULL && i < n; i++) {
        size_t len;
        const char *str = hyp_profile_string_at(p, (hyp_id_t)i, &len);
        PyObject *s = hyp__str(str, len);
        if (s == NULL)
            Py_CLEAR(l);
        else
            PyList_SET_ITEM(l, (Py_ssize_t)i, s);
    }
    if (hyp__set(d, "strings", l) < 0)
        goto fail;

    n = hyp_profile_func_count(p);
    l = PyList_New((Py_ssize_t)n);
    for (i = 0; l != NULL && i < n; i++) {
        const hyp_func_t *f = hyp_profile_func_at(p, (hyp_id_t)i);
        PyObject *t = Py_BuildValue("(IIII)", f->name, f->file, f->lineno, f->kind);
        if (t == NULL)
            Py_CLEAR(l);
        else
            PyList_SET_ITEM(l, (Py_ssize_t)i, t);
    }
    if (hyp__set(d, "functions", l) < 0)
        goto fail;

    n = hyp_profile_thread_count(p);
    l = PyList_New((Py_ssize_t)n);
    for (i = 0; l != NULL && i < n; i++) {
        const hyp_thread_t *t = hyp_profile_thread_at(p, (hyp_id_t)i);
        PyObject *x = Py_BuildValue("(KKI)", (unsigned long long)t->os_tid,
                                    (unsigned long long)t->ident, t->name);
        if (x == NULL)
            Py_CLEAR(l);
        else
            PyList_SET_ITEM(l, (Py_ssize_t)i, x);
    }
    if (hyp__set(d, "threads", l) < 0)
        goto fail;

    /* The node table stays in the profile (node_table() copies it out). */
    if (hyp__set(d, "node_count", PyLong_FromSize_t(hyp_profile_node_count(p))) < 0)
        goto fail;

    {
        PyObject *dropped = PyDict_New();

        if (dropped == NULL)
            goto fail;
        for (i = 0; i < hyp_profile_dropped_count(p); i++) {
            uint64_t count;
            const char *reason = hyp_profile_dropped_at(p, i, &count);

            if (hyp__set_key(dropped, reason, PyLong_FromUnsignedLongLong(count)) < 0) {
                Py_DECREF(dropped);
                goto fail;
            }
        }
        if (hyp__set(d, "dropped", dropped) < 0)
            goto fail;
    }
    if (hyp__set(d, "truncated_nodes", PyLong_FromUnsignedLongLong(hyp_profile_truncated(p))) < 0 ||
        hyp__set(d, "sample_total", PyLong_FromUnsignedLongLong(hyp_profile_sample_total(p))) < 0 ||
        hyp__set(d, "truncated", PyBool_FromLong(st != NULL && st->truncated)) < 0 ||
        hyp__set(d, "message", PyUnicode_FromString(st != NULL ? st->message : "")) < 0 ||
        hyp__set(d, "skipped", PyLong_FromUnsignedLongLong(st != NULL ? st->skipped : 0)) < 0)
        goto fail;

    if (keep) {
        /* columns: thread, node, kind, labels (uint32), time, weight (uint64) */
        PyObject *cols[6] = {NULL};
        static const char *names[6] = {"thread", "node", "kind", "labels", "time", "weight"};
        PyObject *sd = PyDict_New();
        int k;

        if (sd == NULL)
            goto fail;
        n = nsamples;
        for (k = 0; k < 6; k++) {
            cols[k] = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * (k < 4 ? 4 : 8)));
            if (cols[k] == NULL)
                break;
        }
        if (k == 6) {
            uint32_t *th = (uint32_t *)PyBytes_AS_STRING(cols[0]);
            uint32_t *no = (uint32_t *)PyBytes_AS_STRING(cols[1]);
            uint32_t *ki = (uint32_t *)PyBytes_AS_STRING(cols[2]);
            uint32_t *la = (uint32_t *)PyBytes_AS_STRING(cols[3]);
            uint64_t *ti = (uint64_t *)PyBytes_AS_STRING(cols[4]);
            uint64_t *we = (uint64_t *)PyBytes_AS_STRING(cols[5]);

            for (i = 0; i < n; i++) {
                th[i] = samples[i].thread;
                no[i] = samples[i].node;
                ki[i] = samples[i].kind;
                la[i] = samples[i].labels;
                ti[i] = samples[i].time_ns;
                we[i] = samples[i].weight;
            }
        }
        for (k = 0; k < 6; k++) {
            if (cols[k] == NULL || hyp__set(sd, names[k], cols[k]) < 0) {
                int j;

                for (j = k + 1; j < 6; j++)
                    Py_XDECREF(cols[j]);
                Py_DECREF(sd);
                goto fail;
            }
        }
        if (hyp__set(d, "samples", sd) < 0)
            goto fail;
    } else if (PyDict_SetItemString(d, "samples", Py_None) < 0) {
        goto fail;
    }
    Py_DECREF(cap);
    return d;
fail:
    Py_DECREF(cap);
    Py_XDECREF(d);
    return NULL;
}

/* ---------------------------------------------------------------- read_trace */

static PyObject *hyp__read_trace(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"path", "keep_samples", "data", NULL};
    PyObject *path_obj, *path_bytes = NULL, *result = NULL;
    Py_buffer data = {0};
    hyp_read_options_t opts;
    hyp_reader_t *r = NULL;
    const hyp_read_status_t *st;
    hyp_profile_t *p;
    int keep = 0, rc, saved_errno = 0;
    const char *path;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|pz*:read_trace", kwlist, &path_obj, &keep,
                                     &data))
        return NULL;
    if (!PyUnicode_FSConverter(path_obj, &path_bytes)) {
        PyBuffer_Release(&data);
        return NULL;
    }
    path = PyBytes_AS_STRING(path_bytes);
    memset(&opts, 0, sizeof(opts));
    opts.size = sizeof(opts);
    opts.keep_samples = keep;

    Py_BEGIN_ALLOW_THREADS
    /* With data, path only names where the bytes came from. */
    rc = data.buf != NULL ? hyp_reader_open_mem(&r, data.buf, (size_t)data.len, &opts)
                          : hyp_reader_open(&r, path, &opts);
    if (rc < 0)
        saved_errno = errno;
    else
        while ((rc = hyp_reader_next(r)) > 0)
            ;
    Py_END_ALLOW_THREADS

    if (r == NULL) {
        errno = saved_errno;
        if (rc == HYP_ENOMEM)
            PyErr_NoMemory();
        else
            PyErr_SetFromErrnoWithFilenameObject(saved_errno == ENOENT   ? PyExc_FileNotFoundError
                                                 : saved_errno == EACCES ? PyExc_PermissionError
                                                                         : PyExc_OSError,
                                                 path_obj);
        goto out;
    }
    st = hyp_reader_status(r);
    if (rc == HYP_ENOMEM) {
        PyErr_NoMemory();
        goto out;
    }
    if (rc == HYP_EIO) {
        PyErr_Format(PyExc_OSError, "%U: %s", path_obj, st->message);
        goto out;
    }
    if (rc < 0 && rc != HYP_ETRUNCATED) {
        PyErr_Format(hyp_py_trace_error(), "%U: %s", path_obj, st->message);
        goto out;
    }
    if (hyp_reader_profile(r) == NULL) {
        PyErr_Format(hyp_py_trace_error(), "%U: %s (nothing usable: the header is incomplete)",
                     path_obj, st->message);
        goto out;
    }
    {
        unsigned major, minor = HYP_FORMAT_MINOR;
        size_t ns;
        const hyp_sample_t *samples = hyp_reader_samples(r, &ns);

        hyp_reader_version(r, &major, &minor);
        p = hyp_reader_take_profile(r);
        result = hyp__trace_data(p, minor, samples, ns, keep, st);
    }
out:
    hyp_reader_close(r);
    Py_DECREF(path_bytes);
    PyBuffer_Release(&data);
    return result;
}

/* hyprof.trace.Trace of the dict hyp__trace_data() built (a reference
 * it takes over). */
static PyObject *hyp__trace_of_data(PyObject *data) {
    PyObject *mod, *result = NULL;

    if (data == NULL)
        return NULL;
    mod = PyImport_ImportModule("hyprof.trace");
    if (mod != NULL) {
        result = PyObject_CallMethod(mod, "_from_data", "(Os)", data, "<profile>");
        Py_DECREF(mod);
    }
    Py_DECREF(data);
    return result;
}

/* Used by the rest of the module: a Trace made from a profile it built,
 * without touching the disk. */
PyObject *hyp_py_trace_take_profile(hyp_profile_t *p) {
    return hyp__trace_of_data(hyp__trace_data(p, HYP_FORMAT_MINOR, NULL, 0, 1, NULL));
}

PyObject *hyp_py_trace_from_profile(const hyp_profile_t *src) {
    size_t ns;
    const hyp_sample_t *samples = hyp_profile_samples(src, &ns);
    hyp_profile_t *p = hyp_profile_copy(src);

    /* The copy has src's ids, so src's pending samples are the Trace's, and
     * their values are in the copy's rows as in a trace read from a file. */
    if (p == NULL)
        return PyErr_NoMemory();
    return hyp__trace_of_data(hyp__trace_data(p, HYP_FORMAT_MINOR, samples, ns, 1, NULL));
}

/* ---------------------------------------------------------------- aggregations */

hyp_profile_t *hyp_py_capsule_profile(PyObject *cap) {
    return PyCapsule_GetPointer(cap, HYP_PY_CAPSULE);
}

static int hyp__thread_arg(const hyp_profile_t *p, long long thread, hyp_id_t *out) {
    if (thread < 0) {
        *out = HYP_NO_ID;
        return 0;
    }
    if ((unsigned long long)thread >= hyp_profile_thread_count(p)) {
        PyErr_Format(PyExc_ValueError, "no thread %lld: the trace has %zu threads", thread,
                     hyp_profile_thread_count(p));
        return -1;
    }
    *out = (hyp_id_t)thread;
    return 0;
}

/* Packs n rows of own and cum values into two bytes objects of uint64. */
static int hyp__pack_values(size_t n, size_t m, const uint64_t *(*own_at)(const hyp_flat_t *,
                                                                            size_t, int),
                              const hyp_flat_t *f, PyObject **own, PyObject **cum) {
    uint64_t *po, *pc;
    size_t i;

    *own = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * m * sizeof(uint64_t)));
    *cum = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * m * sizeof(uint64_t)));
    if (*own == NULL || *cum == NULL)
        return -1;
    po = (uint64_t *)PyBytes_AS_STRING(*own);
    pc = (uint64_t *)PyBytes_AS_STRING(*cum);
    for (i = 0; i < n && m > 0; i++) {
        memcpy(po + i * m, own_at(f, i, 0), m * sizeof(uint64_t));
        memcpy(pc + i * m, own_at(f, i, 1), m * sizeof(uint64_t));
    }
    return 0;
}

static const uint64_t *hyp__entry_vals(const hyp_flat_t *f, size_t i, int cum) {
    return cum ? hyp_flat_at(f, i)->cum : hyp_flat_at(f, i)->own;
}

static const uint64_t *hyp__edge_vals(const hyp_flat_t *f, size_t i, int cum) {
    return cum ? hyp_flat_edge_at(f, i)->cum : hyp_flat_edge_at(f, i)->own;
}

/* flat(profile, thread=-1, edges=True) -> (funcs, own, cum, callers, callees, eown, ecum):
 * packed arrays, so that a trace of 100 000 functions or edges costs no
 * Python object per value. funcs, callers, callees are uint32 (a caller of
 * 0xffffffff is the root), the value arrays uint64, metric_count per row.
 * The edge arrays are empty unless edges is true. */
static PyObject *hyp__flat(PyObject *self, PyObject *args) {
    PyObject *cap, *res = NULL, *o[7] = {NULL};
    long long thread = -1;
    int want_edges = 1, rc, k;
    hyp_profile_t *p;
    hyp_flat_t *f = NULL;
    hyp_id_t tid;
    size_t i, m, n, ne;

    if (!PyArg_ParseTuple(args, "O|Lp:flat", &cap, &thread, &want_edges))
        return NULL;
    p = hyp_py_capsule_profile(cap);
    if (p == NULL || hyp__thread_arg(p, thread, &tid) < 0)
        return NULL;
    m = hyp_profile_metric_count(p);
    Py_BEGIN_ALLOW_THREADS
    rc = hyp_flat_compute_ex(p, tid, want_edges ? 0 : HYP_FLAT_NO_EDGES, &f);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        if (rc == HYP_ENOMEM)
            return PyErr_NoMemory();
        PyErr_SetString(PyExc_ValueError, hyp_strerror(rc));
        return NULL;
    }
    n = hyp_flat_count(f);
    ne = want_edges ? hyp_flat_edge_count(f) : 0;
    o[0] = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * sizeof(uint32_t)));
    o[3] = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(ne * sizeof(uint32_t)));
    o[4] = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(ne * sizeof(uint32_t)));
    if (o[0] == NULL || o[3] == NULL || o[4] == NULL ||
        hyp__pack_values(n, m, hyp__entry_vals, f, &o[1], &o[2]) < 0 ||
        hyp__pack_values(ne, m, hyp__edge_vals, f, &o[5], &o[6]) < 0)
        goto out;
    for (i = 0; i < n; i++)
        ((uint32_t *)PyBytes_AS_STRING(o[0]))[i] = hyp_flat_at(f, i)->func;
    for (i = 0; i < ne; i++) {
        ((uint32_t *)PyBytes_AS_STRING(o[3]))[i] = hyp_flat_edge_at(f, i)->caller;
        ((uint32_t *)PyBytes_AS_STRING(o[4]))[i] = hyp_flat_edge_at(f, i)->callee;
    }
    res = PyTuple_Pack(7, o[0], o[1], o[2], o[3], o[4], o[5], o[6]);
out:
    for (k = 0; k < 7; k++)
        Py_XDECREF(o[k]);
    hyp_flat_free(f);
    return res;
}

/* node_table(profile) -> bytes: the nodes as (parent, func, line) uint32
 * triples; the root's are all ~0. */
static PyObject *hyp__node_table(PyObject *self, PyObject *cap) {
    hyp_profile_t *p = hyp_py_capsule_profile(cap);

    (void)self;
    if (p == NULL)
        return NULL;
    return PyBytes_FromStringAndSize((const char *)hyp_profile_nodes(p),
                                     (Py_ssize_t)(hyp_profile_node_count(p) * sizeof(hyp_node_t)));
}

/* Runs stmt without the GIL when cond holds, with it otherwise. */
#define HYP__WITHOUT_GIL_IF(cond, stmt)                                                            \
    do {                                                                                           \
        if (cond) {                                                                                \
            Py_BEGIN_ALLOW_THREADS stmt;                                                           \
            Py_END_ALLOW_THREADS                                                                   \
        } else {                                                                                   \
            stmt;                                                                                  \
        }                                                                                          \
    } while (0)

/* A parent array as int32 (array('i'), or anything with that buffer), read
 * into *view. Returns its length, or -1 with TypeError set. */
static Py_ssize_t hyp__parent_view(PyObject *parent, Py_buffer *view) {
    if (PyObject_GetBuffer(parent, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (view->itemsize != 4 || view->format == NULL || view->format[0] == '\0' ||
        strchr("il", view->format[0]) == NULL || view->format[1] != '\0') {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_TypeError, "a parent array of int32 (array('i')) is expected");
        return -1;
    }
    return view->len / 4;
}

/* Raises for a tree walk's error code; NULL. */
static PyObject *hyp__tree_fail(int rc) {
    if (rc == HYP_ENOMEM)
        return PyErr_NoMemory();
    PyErr_SetString(PyExc_ValueError, "not a call tree: the root must come first and every "
                                      "node after its parent");
    return NULL;
}

/* tree_preorder(parent) -> (order, depth, size, pos): hyp_tree_preorder(),
 * four bytes objects of uint32. */
static PyObject *hyp__tree_preorder(PyObject *self, PyObject *parent) {
    PyObject *o[4] = {NULL, NULL, NULL, NULL}, *res = NULL;
    Py_buffer view;
    Py_ssize_t n;
    int k, rc;

    (void)self;
    if ((n = hyp__parent_view(parent, &view)) < 0)
        return NULL;
    for (k = 0; k < 4; k++)
        if ((o[k] = PyBytes_FromStringAndSize(NULL, n * 4)) == NULL)
            goto done;
    /* The walk indexes by the parents it checked: a buffer another thread
     * could write meanwhile (an array) is walked with the GIL held. */
    HYP__WITHOUT_GIL_IF(view.readonly,
                        rc = hyp_tree_preorder((const int32_t *)view.buf, (size_t)n,
                                               (uint32_t *)PyBytes_AS_STRING(o[0]),
                                               (uint32_t *)PyBytes_AS_STRING(o[1]),
                                               (uint32_t *)PyBytes_AS_STRING(o[2]),
                                               (uint32_t *)PyBytes_AS_STRING(o[3])));
    res = rc < 0 ? hyp__tree_fail(rc) : PyTuple_Pack(4, o[0], o[1], o[2], o[3]);
done:
    for (k = 0; k < 4; k++)
        Py_XDECREF(o[k]);
    PyBuffer_Release(&view);
    return res;
}

/* tree_children(parent) -> (first, kids): hyp_tree_children(), bytes of
 * uint32. */
static PyObject *hyp__tree_children(PyObject *self, PyObject *parent) {
    PyObject *first = NULL, *kids = NULL, *res = NULL;
    Py_buffer view;
    Py_ssize_t n;
    int rc;

    (void)self;
    if ((n = hyp__parent_view(parent, &view)) < 0)
        return NULL;
    if ((first = PyBytes_FromStringAndSize(NULL, (n + 1) * 4)) != NULL &&
        (kids = PyBytes_FromStringAndSize(NULL, (n > 0 ? n - 1 : 0) * 4)) != NULL) {
        HYP__WITHOUT_GIL_IF(view.readonly,
                            rc = hyp_tree_children((const int32_t *)view.buf, (size_t)n,
                                                   (uint32_t *)PyBytes_AS_STRING(first),
                                                   (uint32_t *)PyBytes_AS_STRING(kids)));
        res = rc < 0 ? hyp__tree_fail(rc) : PyTuple_Pack(2, first, kids);
    }
    Py_XDECREF(first);
    Py_XDECREF(kids);
    PyBuffer_Release(&view);
    return res;
}

/* node_values(profile, thread=-1) -> bytes of node_count * metric_count uint64 */
static PyObject *hyp__node_values(PyObject *self, PyObject *args) {
    PyObject *cap, *b;
    long long thread = -1;
    hyp_profile_t *p;
    hyp_id_t tid;

    if (!PyArg_ParseTuple(args, "O|L:node_values", &cap, &thread))
        return NULL;
    p = hyp_py_capsule_profile(cap);
    if (p == NULL || hyp__thread_arg(p, thread, &tid) < 0)
        return NULL;
    b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(hyp_profile_node_count(p) *
                                                   hyp_profile_metric_count(p) * sizeof(uint64_t)));
    if (b == NULL)
        return NULL;
    hyp_profile_node_values(p, tid, (uint64_t *)PyBytes_AS_STRING(b));
    return b;
}

/* call_tree(profile, columns, thread=-1, split=None) -> (parent, func,
 * line, values): a loaded trace's call tree as columns, what the renderers'
 * model holds without a Python object per node. columns: uint32 metric
 * indices. parent and func are int32 (-1 at the root), line uint32, and
 * values one uint64 column per metric asked for. Node ids and function ids
 * are the trace's own. With split (uint32 pseudo function ids, one per
 * thread) every thread gets a copy of the tree under a pseudo-root of its own
 * below node 0, holding that thread's values: thread t's node i (i >= 1)
 * becomes 1 + t * n + i, its pseudo-root 1 + t * n. */
static PyObject *hyp__call_tree(PyObject *self, PyObject *args) {
    PyObject *cap, *o[4] = {NULL, NULL, NULL, NULL}, *res = NULL;
    Py_buffer cols, split = {0};
    long long thread = -1;
    hyp_profile_t *p;
    hyp_id_t tid;
    uint64_t *vals = NULL, **outv;
    int32_t *par, *fn;
    uint32_t *ln;
    size_t n, m, k, nthreads, total, t, i, c;
    const hyp_node_t *nodes;

    (void)self;
    if (!PyArg_ParseTuple(args, "Oy*|Lz*:call_tree", &cap, &cols, &thread, &split))
        return NULL;
    p = hyp_py_capsule_profile(cap);
    if (p == NULL || hyp__thread_arg(p, thread, &tid) < 0)
        goto out;
    n = hyp_profile_node_count(p);
    m = hyp_profile_metric_count(p);
    k = (size_t)cols.len / sizeof(uint32_t);
    nthreads = split.buf != NULL ? (size_t)split.len / sizeof(uint32_t) : 0;
    if (split.buf != NULL && nthreads != hyp_profile_thread_count(p)) {
        PyErr_SetString(PyExc_ValueError, "call_tree(): one pseudo function per thread");
        goto out;
    }
    for (c = 0; c < k; c++)
        if (((const uint32_t *)cols.buf)[c] >= m) {
            PyErr_Format(PyExc_ValueError, "call_tree(): no metric %u",
                         ((const uint32_t *)cols.buf)[c]);
            goto out;
        }
    total = split.buf != NULL ? 1 + nthreads * n : n;
    if (n == 0 || total > INT32_MAX || (split.buf != NULL && nthreads > (INT32_MAX - 1) / n)) {
        PyErr_SetString(PyExc_ValueError, n == 0 ? "call_tree(): the trace has no root node"
                                                 : "call_tree(): too many nodes");
        goto out;
    }
    o[0] = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(total * sizeof(int32_t)));
    o[1] = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(total * sizeof(int32_t)));
    o[2] = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(total * sizeof(uint32_t)));
    o[3] = PyTuple_New((Py_ssize_t)k);
    vals = hyp__malloc(n * m * sizeof(uint64_t) + k * sizeof(uint64_t *) + 1);
    if (o[0] == NULL || o[1] == NULL || o[2] == NULL || o[3] == NULL || vals == NULL) {
        if (vals == NULL)
            PyErr_NoMemory();
        goto out;
    }
    outv = (uint64_t **)(vals + n * m);
    for (c = 0; c < k; c++) {
        PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(total * sizeof(uint64_t)));
        if (b == NULL)
            goto out;
        PyTuple_SET_ITEM(o[3], (Py_ssize_t)c, b);
        outv[c] = (uint64_t *)PyBytes_AS_STRING(b);
    }
    par = (int32_t *)PyBytes_AS_STRING(o[0]);
    fn = (int32_t *)PyBytes_AS_STRING(o[1]);
    ln = (uint32_t *)PyBytes_AS_STRING(o[2]);
    nodes = hyp_profile_nodes(p);
    par[0] = fn[0] = -1;
    ln[0] = 0;
    for (t = 0; t < (split.buf != NULL ? nthreads : 1); t++) {
        /* The copy's base: where its node 0 lands (the pseudo-root). */
        size_t base = split.buf != NULL ? 1 + t * n : 0;

        hyp_profile_node_values(p, split.buf != NULL ? (hyp_id_t)t : tid, vals);
        if (split.buf != NULL) {
            par[base] = 0;
            fn[base] = (int32_t)((const uint32_t *)split.buf)[t];
            ln[base] = 0;
        }
        for (i = 1; i < n; i++) {
            par[base + i] = (int32_t)(base + nodes[i].parent);
            fn[base + i] = (int32_t)nodes[i].func;
            ln[base + i] = nodes[i].line;
        }
        for (c = 0; c < k; c++) {
            uint32_t col = ((const uint32_t *)cols.buf)[c];
            for (i = 0; i < n; i++)
                outv[c][base + i] = vals[i * m + col];
        }
    }
    if (split.buf != NULL)
        for (c = 0; c < k; c++)
            outv[c][0] = 0;
    res = PyTuple_Pack(4, o[0], o[1], o[2], o[3]);
out:
    for (c = 0; c < 4; c++)
        Py_XDECREF(o[c]);
    hyp__free(vals);
    PyBuffer_Release(&cols);
    if (split.buf != NULL)
        PyBuffer_Release(&split);
    return res;
}

/* label_sets(profile) -> [((key, value), ...), ...]: every label set of a
 * loaded trace by id, the empty set first. */
static PyObject *hyp__label_sets(PyObject *self, PyObject *cap) {
    hyp_profile_t *p = hyp_py_capsule_profile(cap);
    size_t i, j, n, count;
    PyObject *out;

    (void)self;
    if (p == NULL)
        return NULL;
    count = hyp_profile_labels_count(p);
    out = PyList_New((Py_ssize_t)count);
    for (i = 0; out != NULL && i < count; i++) {
        const hyp_label_t *l = hyp_profile_labels_at(p, (hyp_id_t)i, &n);
        PyObject *set = PyTuple_New((Py_ssize_t)n);

        for (j = 0; set != NULL && j < n; j++) {
            size_t klen, vlen;
            const char *k = hyp_profile_string_at(p, l[j].key, &klen);
            const char *v = hyp_profile_string_at(p, l[j].value, &vlen);
            PyObject *kv = Py_BuildValue("(NN)", hyp__str(k, klen), hyp__str(v, vlen));

            if (kv == NULL)
                Py_CLEAR(set);
            else
                PyTuple_SET_ITEM(set, (Py_ssize_t)j, kv);
        }
        if (set == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, (Py_ssize_t)i, set);
    }
    return out;
}

/* label_set_rows(profile) -> [rows of each label set, by id]. */
static PyObject *hyp__label_set_rows(PyObject *self, PyObject *cap) {
    hyp_profile_t *p = hyp_py_capsule_profile(cap);
    size_t i, count, *n;
    hyp_id_t labels;
    PyObject *out;

    (void)self;
    if (p == NULL)
        return NULL;
    count = hyp_profile_labels_count(p);
    n = hyp__calloc(count, sizeof(*n));
    if (n == NULL)
        return PyErr_NoMemory();
    for (i = 0; i < hyp_profile_row_count(p); i++)
        if (hyp_profile_row_at(p, i, NULL, NULL, &labels) != NULL && labels < count)
            n[labels]++;
    out = PyList_New((Py_ssize_t)count);
    for (i = 0; out != NULL && i < count; i++) {
        PyObject *v = PyLong_FromSize_t(n[i]);

        if (v == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, (Py_ssize_t)i, v);
    }
    hyp__free(n);
    return out;
}

/* where_labels(profile, keep) -> Trace: a trace of the rows whose label set
 * is kept (keep: bytes, one flag per set), made in C from the profile. */
static PyObject *hyp__where_labels(PyObject *self, PyObject *args) {
    PyObject *cap;
    Py_buffer keep;
    hyp_profile_t *p, *q;

    (void)self;
    if (!PyArg_ParseTuple(args, "Oy*:where_labels", &cap, &keep))
        return NULL;
    p = hyp_py_capsule_profile(cap);
    if (p == NULL || (size_t)keep.len != hyp_profile_labels_count(p)) {
        if (p != NULL)
            PyErr_SetString(PyExc_ValueError, "where_labels(): one flag per label set");
        PyBuffer_Release(&keep);
        return NULL;
    }
    q = hyp_profile_copy_where(p, keep.buf);
    PyBuffer_Release(&keep);
    return q == NULL ? PyErr_NoMemory() : hyp_py_trace_take_profile(q);
}

/* ---------------------------------------------------------------- registration */

/* ---------------------------------------------------------------- callgrind */

typedef struct {
    char *data;
    size_t len, cap;
} hyp__text_t;

static int hyp__text_append(void *ctx, const char *data, size_t len) {
    hyp__text_t *t = ctx;

    if (hyp__grow((void **)&t->data, &t->cap, t->len + len, 1) < 0)
        return HYP_ENOMEM;
    memcpy(t->data + t->len, data, len);
    t->len += len;
    return 0;
}

/* A list of ints as n size_t values (HYP_CALLGRIND_NONE for None), or -1. */
static int hyp__size_list(PyObject *seq, size_t n, size_t *out, const char *what) {
    size_t i;

    if (!PyList_Check(seq) || (size_t)PyList_GET_SIZE(seq) != n) {
        PyErr_Format(PyExc_ValueError, "callgrind: %s must be a list of %zu ints", what, n);
        return -1;
    }
    for (i = 0; i < n; i++) {
        PyObject *o = PyList_GET_ITEM(seq, i);

        if (o == Py_None) {
            out[i] = HYP_CALLGRIND_NONE;
            continue;
        }
        out[i] = PyLong_AsSize_t(o);
        if (out[i] == (size_t)-1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

/* callgrind(profile, index, names, files, first, events, cost, cum, calls,
 * header) -> str: hyp_callgrind_write()'s file. index: each profile function's
 * output function; names, files, first: per output function, the
 * program's last; events: the cost columns' names; cost, cum: their metric
 * indices (cum may hold None); calls: the calls metric or None; header: the
 * lines after "creator:". */
static PyObject *hyp__callgrind(PyObject *self, PyObject *args) {
    PyObject *cap, *index, *names, *files, *first, *events, *cost, *cum, *calls, *res = NULL;
    PyObject **keep = NULL, *header, *header_b = NULL;
    hyp_callgrind_spec_t spec;
    hyp__text_t text = {NULL, 0, 0};
    size_t nf, nfp, nc, i, *cost_v = NULL, *cum_v = NULL, calls_v = HYP_CALLGRIND_NONE;
    size_t *index_v = NULL, *first_v = NULL;
    const char **event_v = NULL;
    uint32_t *index32 = NULL, *first32 = NULL;
    const char **name_v = NULL, **file_v = NULL;
    hyp_profile_t *p;
    int rc;

    (void)self;
    if (!PyArg_ParseTuple(args, "OO!O!O!O!O!O!O!OU:callgrind", &cap, &PyList_Type, &index,
                          &PyList_Type, &names, &PyList_Type, &files, &PyList_Type, &first,
                          &PyList_Type, &events, &PyList_Type, &cost, &PyList_Type, &cum, &calls,
                          &header))
        return NULL;
    if ((p = hyp_py_capsule_profile(cap)) == NULL)
        return NULL;
    nfp = hyp_profile_func_count(p);
    nf = (size_t)PyList_GET_SIZE(names);
    nc = (size_t)PyList_GET_SIZE(cost);
    if ((size_t)PyList_GET_SIZE(events) != nc) {
        PyErr_SetString(PyExc_ValueError, "callgrind: one event name per cost column");
        return NULL;
    }
    if (nf == 0 || (size_t)PyList_GET_SIZE(files) != nf) {
        PyErr_SetString(PyExc_ValueError, "callgrind: names and files must be one per function"
                                          " and the program");
        return NULL;
    }
    index_v = PyMem_Calloc(nfp + 1, sizeof(size_t));
    first_v = PyMem_Calloc(nf, sizeof(size_t));
    index32 = PyMem_Calloc(nfp + 1, sizeof(uint32_t));
    first32 = PyMem_Calloc(nf, sizeof(uint32_t));
    cost_v = PyMem_Calloc(nc + 1, sizeof(size_t));
    cum_v = PyMem_Calloc(nc + 1, sizeof(size_t));
    name_v = PyMem_Calloc(nf, sizeof(char *));
    file_v = PyMem_Calloc(nf, sizeof(char *));
    keep = PyMem_Calloc(2 * nf, sizeof(PyObject *));
    event_v = PyMem_Calloc(nc + 1, sizeof(char *));
    if (!event_v || !index_v || !first_v || !index32 || !first32 || !cost_v || !cum_v || !name_v ||
        !file_v || !keep) {
        PyErr_NoMemory();
        goto out;
    }
    if (hyp__size_list(index, nfp, index_v, "index") < 0 ||
        hyp__size_list(first, nf, first_v, "first") < 0 ||
        hyp__size_list(cost, nc, cost_v, "cost") < 0 || hyp__size_list(cum, nc, cum_v, "cum") < 0)
        goto out;
    if (calls != Py_None && (calls_v = PyLong_AsSize_t(calls)) == (size_t)-1 && PyErr_Occurred())
        goto out;
    for (i = 0; i < nfp; i++)
        index32[i] = index_v[i] > UINT32_MAX ? UINT32_MAX : (uint32_t)index_v[i];
    for (i = 0; i < nf; i++) {
        first32[i] = first_v[i] > UINT32_MAX ? UINT32_MAX : (uint32_t)first_v[i];
        keep[2 * i] = PyUnicode_AsEncodedString(PyList_GET_ITEM(names, i), "utf-8",
                                                "surrogateescape");
        keep[2 * i + 1] = PyUnicode_AsEncodedString(PyList_GET_ITEM(files, i), "utf-8",
                                                    "surrogateescape");
        if (keep[2 * i] == NULL || keep[2 * i + 1] == NULL)
            goto out;
        name_v[i] = PyBytes_AS_STRING(keep[2 * i]);
        file_v[i] = PyBytes_AS_STRING(keep[2 * i + 1]);
    }
    for (i = 0; i < nc; i++)
        if ((event_v[i] = PyUnicode_AsUTF8(PyList_GET_ITEM(events, i))) == NULL)
            goto out;
    spec.nfuncs = nf - 1;
    spec.index = index32;
    spec.names = name_v;
    spec.files = file_v;
    spec.first = first32;
    spec.ncosts = nc;
    spec.events = event_v;
    if ((header_b = PyUnicode_AsEncodedString(header, "utf-8", "surrogateescape")) == NULL)
        goto out;
    spec.header = PyBytes_AS_STRING(header_b);
    spec.cost = cost_v;
    spec.cum = cum_v;
    spec.calls = calls_v;
    Py_BEGIN_ALLOW_THREADS
    rc = hyp_callgrind_write(p, &spec, hyp__text_append, &text);
    Py_END_ALLOW_THREADS
    if (rc == HYP_ENOMEM)
        PyErr_NoMemory();
    else if (rc < 0)
        PyErr_Format(PyExc_ValueError, "callgrind: %s", hyp_strerror(rc));
    else
        res = PyUnicode_DecodeUTF8(text.data ? text.data : "", (Py_ssize_t)text.len,
                                   "surrogateescape");
out:
    if (keep != NULL)
        for (i = 0; i < 2 * nf; i++)
            Py_XDECREF(keep[i]);
    PyMem_Free(keep);
    Py_XDECREF(header_b);
    PyMem_Free(event_v);
    PyMem_Free(index_v);
    PyMem_Free(first_v);
    PyMem_Free(index32);
    PyMem_Free(first32);
    PyMem_Free(cost_v);
    PyMem_Free(cum_v);
    PyMem_Free(name_v);
    PyMem_Free(file_v);
    hyp__free(text.data);
    return res;
}

static PyMethodDef hyp_py_trace_read_methods[] = {
    {"read_trace", (PyCFunction)(void (*)(void))hyp__read_trace, METH_VARARGS | METH_KEYWORDS,
     "read_trace(path, keep_samples=False, data=None) -> dict\n\nReads a trace with the C "
     "reader, from the file at path or from data (bytes; path then names their source). Raises "
     "hyprof.TraceError naming the file, the record and the byte offset of a problem; a "
     "truncated trace returns what is complete with 'truncated' set."},
    {"flat", hyp__flat, METH_VARARGS,
     "flat(profile, thread=-1, edges=True) -> (functions, edges)\n\nFlat statistics of a "
     "loaded trace (edges empty unless asked for)."},
    {"label_sets", hyp__label_sets, METH_O,
     "label_sets(profile) -> list\n\nEvery label set of a loaded trace, by id: a tuple of "
     "(key, value)."},
    {"label_set_rows", hyp__label_set_rows, METH_O,
     "label_set_rows(profile) -> list\n\nThe number of rows of each label set, by id."},
    {"where_labels", hyp__where_labels, METH_VARARGS,
     "where_labels(profile, keep) -> Trace\n\nA trace of the rows whose label set is kept "
     "(one flag byte per set)."},
    {"call_tree", hyp__call_tree, METH_VARARGS,
     "call_tree(profile, columns, thread=-1, split=None) -> (parent, func, line, values)\n\n"
     "The call tree as columns (int32, int32, uint32, a tuple of uint64 per metric asked "
     "for); with split, one copy per thread under a pseudo-root of the given function."},
    {"callgrind", hyp__callgrind, METH_VARARGS,
     "callgrind(profile, index, names, files, first, events, cost, cum, calls, header) -> str"
     "\n\nThe callgrind file of a loaded trace (hyprof/callgrind.h)."},
    {"node_table", hyp__node_table, METH_O,
     "node_table(profile) -> bytes\n\nThe nodes of a loaded trace as (parent, func, line) "
     "uint32 triples."},
    {"tree_preorder", hyp__tree_preorder, METH_O,
     "tree_preorder(parent) -> (order, depth, size, pos)\n\nA call tree's nodes depth first, "
     "children in id order, as uint32 bytes (hyprof/aggregate.h: hyp_tree_preorder())."},
    {"tree_children", hyp__tree_children, METH_O,
     "tree_children(parent) -> (first, kids)\n\nEach node's children in id order: node i's "
     "are kids[first[i]:first[i + 1]] (uint32 bytes)."},
    {"node_values", hyp__node_values, METH_VARARGS,
     "node_values(profile, thread=-1) -> bytes\n\nEvery node's metric values, node-major "
     "uint64."},
    {NULL, NULL, 0, NULL},
};

int hyp_py_trace_read_init(PyObject *module) {
    return PyModule_AddFunctions(module, hyp_py_trace_read_methods);
}
