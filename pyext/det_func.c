/* pyext/det_func.c: the functions a deterministic profile counts. A Python
 * function is its code object, found again at each call through the code
 * object's co_extra slot (one pointer load) and held by the profile so that
 * its address cannot be reused while the profile lives; a C function is its
 * PyMethodDef, found in the profiler's table by pointer, with the name
 * cProfile gives it. Each function has an index in the profiler's funcs[],
 * which every live thread's top[] (det_tree.h) covers. Functions are made
 * at their first call, on the hot path's slow half (det_hot.h). */
#include "det.h"

#include "hyprof/internal/util.h"

#include <string.h>

/* The co_extra API was renamed in 3.12 (PyUnstable_); the old names warn. */
#if PY_VERSION_HEX >= 0x030C0000
#define det_code_get_extra PyUnstable_Code_GetExtra
#define det_code_set_extra PyUnstable_Code_SetExtra
#define det_request_extra_index PyUnstable_Eval_RequestCodeExtraIndex
#else
#define det_code_get_extra _PyCode_GetExtra
#define det_code_set_extra _PyCode_SetExtra
#define det_request_extra_index _PyEval_RequestCodeExtraIndex
#endif

static Py_ssize_t det_extra_index = -1;

/* The co_extra slot holds one of these per code object seen: it outlives
 * profilers (freed with the code object), so it says which session its
 * function belongs to. */
typedef struct {
    uint64_t session;
    det_func_t *func;
} det_extra_t;

static void hyp__det_extra_free(void *ptr) {
    hyp__free(ptr);
}

/* ------------------------------------------------------------ functions */

det_func_t *hyp__det_func_new(det_prof_t *p, const void *key, uint32_t kind) {
    det_thread_t *th;
    det_func_t *f;

    if (p->nfuncs == p->funcs_cap &&
        hyp__grow((void **)&p->funcs, &p->funcs_cap, p->nfuncs + 1, sizeof(det_func_t *)) != 0)
        return NULL;
    f = hyp__calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->key = key;
    f->kind = kind;
    f->index = (uint32_t)p->nfuncs;
    p->funcs[p->nfuncs++] = f;
    for (th = p->live; th != NULL; th = th->live_next)
        if (hyp__det_top_grow(&th->tree, p->nfuncs) != 0)
            return NULL; /* f stays in funcs[], freed with them */
    return f;
}

static int hyp__ctab_grow(det_prof_t *p);

/* The function of key in p's table of functions by key (C functions, and
 * special functions by name, and the Python functions of a profiler whose
 * co_extra slot another one took), or NULL. */
det_func_t *hyp__det_ctab_find(det_prof_t *p, const void *key) {
    size_t j;

    if (p->ctab_cap == 0)
        return NULL;
    for (j = hyp__det_ptr_hash(key, p->ctab_cap - 1); p->ctab[j] != NULL; j = (j + 1) & (p->ctab_cap - 1))
        if (p->ctab[j]->key == key)
            return p->ctab[j];
    return NULL;
}

int hyp__det_ctab_add(det_prof_t *p, det_func_t *f) {
    size_t j;

    if ((p->ctab_used + 1) * 2 > p->ctab_cap && hyp__ctab_grow(p) != 0)
        return HYP_ENOMEM;
    for (j = hyp__det_ptr_hash(f->key, p->ctab_cap - 1); p->ctab[j] != NULL; j = (j + 1) & (p->ctab_cap - 1))
        ;
    p->ctab[j] = f;
    p->ctab_used++;
    return 0;
}

det_func_t *hyp__det_py_func(det_prof_t *p, PyCodeObject *co) {
    det_extra_t *extra = NULL;
    det_func_t *f;

    if (det_code_get_extra((PyObject *)co, det_extra_index, (void **)&extra) < 0) {
        PyErr_Clear();
        extra = NULL;
    }
    if (extra != NULL && extra->session == p->session && extra->func != NULL)
        return extra->func;
    /* Context-bound profilers running together share the one slot: the one
     * that filled it last owns it, the others keep their functions in their
     * table by key too, so a function is never made twice in a profile. */
    f = p->ctx_var != NULL ? hyp__det_ctab_find(p, co) : NULL;
    if (f != NULL) {
        if (extra != NULL) {
            extra->session = p->session;
            extra->func = f;
        }
        return f;
    }
    f = hyp__det_func_new(p, co, DET_FUNC_PYTHON);
    if (f == NULL)
        return NULL;
    Py_INCREF(co);
    f->code = (PyObject *)co;
    if (p->ctx_var != NULL && hyp__det_ctab_add(p, f) != 0)
        return NULL;
    if (extra == NULL) {
        extra = hyp__malloc(sizeof *extra);
        if (extra == NULL)
            return f; /* the function works; only its cache slot is missing */
        if (det_code_set_extra((PyObject *)co, det_extra_index, extra) < 0) {
            PyErr_Clear();
            hyp__free(extra);
            return f;
        }
    }
    /* The session number of a profiler is fixed at its creation, so a slot
     * filled by a profiler that is gone cannot match a live one. */
    extra->session = p->session;
    extra->func = f;
    return f;
}

/* Whether repr(o) names a C method without an address: the descriptors of C
 * types print as "<method 'append' of 'list' objects>". */
static int hyp__is_c_descriptor(PyObject *o) {
    return Py_IS_TYPE(o, &PyMethodDescr_Type) || Py_IS_TYPE(o, &PyClassMethodDescr_Type) ||
           Py_IS_TYPE(o, &PyWrapperDescr_Type);
}

/* The descriptor of ml in the MRO of type, borrowed, or NULL. */
static PyObject *hyp__c_method_descr(PyTypeObject *type, PyMethodDef *ml) {
    PyObject *mro = type->tp_mro;
    Py_ssize_t i;

    for (i = 0; mro != NULL && PyTuple_Check(mro) && i < PyTuple_GET_SIZE(mro); i++) {
        /* 3.12 keeps the dict of a static builtin type out of tp_dict. */
#if PY_VERSION_HEX >= 0x030C0000
        PyObject *dict = PyType_GetDict((PyTypeObject *)PyTuple_GET_ITEM(mro, i));
#else
        PyObject *dict = Py_XNewRef(((PyTypeObject *)PyTuple_GET_ITEM(mro, i))->tp_dict);
#endif
        PyObject *o = dict != NULL ? PyDict_GetItemString(dict, ml->ml_name) : NULL;
        int found = o != NULL &&
                    (Py_IS_TYPE(o, &PyMethodDescr_Type) || Py_IS_TYPE(o, &PyClassMethodDescr_Type)) &&
                    ((PyMethodDescrObject *)o)->d_method == ml;
        /* The type, in the MRO, keeps its dict and the descriptor alive. */
        Py_XDECREF(dict);
        if (found)
            return o;
    }
    return NULL;
}

/* A repr without the address it may hold: "<built-in method __new__ of
 * type object at 0x7f...>" becomes "<built-in method __new__ of type
 * object>", the same in every process. Steals repr. */
static PyObject *hyp__unaddressed(PyObject *repr) {
    PyObject *needle = PyUnicode_FromString(" at 0x"), *head = NULL, *tail = NULL, *out;
    Py_ssize_t len = PyUnicode_GET_LENGTH(repr), at = -1, end = -1;

    if (needle != NULL)
        at = PyUnicode_Find(repr, needle, 0, len, 1);
    Py_XDECREF(needle);
    if (at >= 0)
        end = PyUnicode_FindChar(repr, '>', at, len, 1);
    if (end >= 0) {
        head = PyUnicode_Substring(repr, 0, at);
        tail = PyUnicode_Substring(repr, end, len);
    }
    out = head != NULL && tail != NULL ? PyUnicode_Concat(head, tail) : NULL;
    Py_XDECREF(head);
    Py_XDECREF(tail);
    PyErr_Clear();
    if (out == NULL)
        return repr;
    Py_DECREF(repr);
    return out;
}

/* cProfile's name for a C function (Modules/_lsprof.c, normalizeUserObj):
 * "<built-in method builtins.len>", "<method 'append' of 'list' objects>".
 * Where cProfile would print the repr of a Python override found under the
 * method's name ("<function Random.seed at 0x7f...>", an address that
 * differs in every process), the C method's own descriptor names it
 * ("<method 'seed' of '_random.Random' objects>"), so that a name is the
 * same in every run. */
static PyObject *hyp__c_func_name(PyMethodDef *ml, PyObject *self, PyObject *module) {
    PyObject *name, *mo, *res = NULL;

    if (self == NULL) {
        PyObject *modname = NULL;
        if (module != NULL) {
            if (PyUnicode_Check(module)) {
                modname = Py_NewRef(module);
            } else if (PyModule_Check(module)) {
                modname = PyModule_GetNameObject(module);
                if (modname == NULL)
                    PyErr_Clear();
            }
        }
        if (modname != NULL) {
            if (PyUnicode_CompareWithASCIIString(modname, "builtins") != 0)
                res = PyUnicode_FromFormat("<%U.%s>", modname, ml->ml_name);
            Py_DECREF(modname);
            if (res != NULL)
                return res;
        }
        return PyUnicode_FromFormat("<%s>", ml->ml_name);
    }
    name = PyUnicode_FromString(ml->ml_name);
    if (name != NULL) {
        PyObject *found;
        mo = found = _PyType_Lookup(Py_TYPE(self), name);
        Py_DECREF(name);
        if (mo != NULL && !hyp__is_c_descriptor(mo))
            mo = hyp__c_method_descr(Py_TYPE(self), ml);
        if (mo == NULL)
            mo = found; /* its repr, with the address taken out below */
        if (mo != NULL) {
            Py_INCREF(mo);
            res = PyObject_Repr(mo);
            Py_DECREF(mo);
            if (res != NULL)
                return hyp__unaddressed(res);
        }
    }
    PyErr_Clear();
    if (module != NULL && PyUnicode_Check(module))
        return PyUnicode_FromFormat("<built-in method %S.%s>", module, ml->ml_name);
    return PyUnicode_FromFormat("<built-in method %s>", ml->ml_name);
}

static int hyp__ctab_grow(det_prof_t *p) {
    size_t cap = p->ctab_cap ? p->ctab_cap * 2 : 256, i;
    det_func_t **tab = hyp__calloc(cap, sizeof *tab);

    if (tab == NULL)
        return HYP_ENOMEM;
    for (i = 0; i < p->ctab_cap; i++) {
        det_func_t *f = p->ctab[i];
        size_t j;
        if (f == NULL)
            continue;
        for (j = hyp__det_ptr_hash(f->key, cap - 1); tab[j] != NULL; j = (j + 1) & (cap - 1))
            ;
        tab[j] = f;
    }
    hyp__free(p->ctab);
    p->ctab = tab;
    p->ctab_cap = cap;
    return 0;
}

det_func_t *hyp__det_c_func(det_prof_t *p, PyMethodDef *ml, PyObject *callable,
                            PyObject *self_arg) {
    det_func_t *f;
    PyObject *name;

    if ((f = hyp__det_ctab_find(p, ml)) != NULL)
        return f;
    if (PyCFunction_Check(callable)) {
        PyCFunctionObject *fn = (PyCFunctionObject *)callable;
        name = hyp__c_func_name(ml, fn->m_self, fn->m_module);
    } else {
        name = hyp__c_func_name(ml, self_arg, NULL);
    }
    if (name == NULL) {
        PyErr_Clear();
        return NULL;
    }
    f = hyp__det_func_new(p, ml, DET_FUNC_BUILTIN);
    if (f == NULL) {
        Py_DECREF(name);
        return NULL;
    }
    f->name = name;
    if (hyp__det_ctab_add(p, f) != 0)
        return NULL; /* f stays in funcs[], freed with them */
    return f;
}

void hyp__det_funcs_free(det_prof_t *p) {
    size_t i;

    for (i = 0; i < p->nfuncs; i++) {
        Py_XDECREF(p->funcs[i]->code);
        Py_XDECREF(p->funcs[i]->name);
        hyp__free(p->funcs[i]);
    }
    hyp__free(p->funcs);
    p->funcs = NULL;
    p->nfuncs = p->funcs_cap = 0;
    hyp__free(p->ctab);
    p->ctab = NULL;
    p->ctab_cap = p->ctab_used = 0;
}

int hyp__det_func_init(void) {
    if (det_extra_index >= 0)
        return 0;
    det_extra_index = det_request_extra_index(hyp__det_extra_free);
    if (det_extra_index < 0) {
        PyErr_SetString(PyExc_RuntimeError, "no co_extra slot left for hyprof");
        return -1;
    }
    return 0;
}
