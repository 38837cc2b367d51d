/* pyext/det.c: the deterministic mode's engine, hyprof._hyprof.DetProfiler.
 *
 * Two ways to receive the interpreter's call events, with one bookkeeping:
 *   - "setprofile": a C Py_tracefunc installed on every thread with
 *     _PyEval_SetProfile() (threads started later are caught through
 *     threading.setprofile(), whose hook swaps itself for the C function);
 *   - "monitoring" (3.12+): C callables registered with sys.monitoring under
 *     the profiler tool id, which covers every thread at once and reports
 *     generator resumptions and suspensions as their own events.
 *
 * The hot path (det_enter / det_leave) reads the clocks once, finds the
 * callee among the current node's children (first child first: the list is
 * kept in most-recently-used order), pushes or pops a preallocated stack
 * entry, and adds. It makes no Python API call and no allocation unless a
 * call path, a function or a thread is seen for the first time; a failed
 * allocation sets a sticky error that stop() reports.
 *
 * Generators and coroutines are counted once per instance: a resumption
 * finds its instance's node again through the table of suspended frames, so
 * own and CPU time count only while the frame runs, and the instance's
 * cumulative wall time spans its first entry to its final exit. */
#include "det.h"

#include "hyprof/internal/util.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The interpreter's frame and code layouts come from its own internal
 * headers (3.11: pycore_frame.h's struct _frame; 3.13 moved f_code to
 * f_executable), never from copies. */
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#include "internal/pycore_frame.h"
#include "internal/pycore_context.h"
#if PY_VERSION_HEX >= 0x030D0000
#include "internal/pycore_ceval.h"
#endif
#include <opcode.h>

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

#define DET_GEN_FLAGS (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR)
/* Instances whose cumulative wall time spans their life: what they await is
 * theirs (a generator decorated with types.coroutine is one of them). */
#define DET_LIFETIME_FLAGS (CO_COROUTINE | CO_ASYNC_GENERATOR | CO_ITERABLE_COROUTINE)
#define DET_DEFAULT_MAX_NODES 1000000u
#define DET_CHUNK_NODES 1024u
#define DET_GENS_MAX ((size_t)1 << 22)
#define DET_TOOL_ID 2 /* sys.monitoring.PROFILER_ID */

#if defined(__GNUC__)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#endif

PyObject *hyp_py_profiler_error;

/* The one active profiler without a context (it excludes every other
 * profiler, on all threads) and the calling thread's state for the profiler
 * it last recorded into. The session number tells a thread state left over
 * from an earlier start() from a current one without touching it.
 * initial-exec keeps the lookup a single load from the thread pointer. */
static det_prof_t *det_active;
static uint64_t det_sessions;
static __thread struct {
    uint64_t session;
    det_thread_t *th;
} det_tls __attribute__((tls_model("initial-exec")));

/* The context-bound profilers running at once (DetProfiler(context=(var,
 * value))): they share one ContextVar and one engine, whose hooks are
 * installed while at least one runs, and each event goes to the profiler
 * whose value the variable holds in the running context, or to none. The
 * generation changes at every start and stop, so a thread's cached choice
 * (det_pick) is checked with one compare. */
static struct {
    det_prof_t **profs;       /* strong references */
    size_t n, cap;
    PyObject *var;            /* the shared ContextVar, strong */
    int engine;
    uint64_t gen;
    PyObject *bootstrap;      /* threading.setprofile() hook for new threads */
    PyObject *callbacks;      /* sys.monitoring callables, a tuple */
    long mask;                /* sys.monitoring events set */
} det_group = {NULL, 0, 0, NULL, 0, 1, NULL, NULL, 0};

/* The calling thread's last choice: the variable's value it was made for
 * (borrowed: a running profiler holds its value, and a value with no
 * profiler cannot become one's without a generation change), the profiler
 * (NULL for none) and the thread's state in it. */
static __thread struct {
    uint64_t gen;
    PyObject *value;
    det_prof_t *p;
    det_thread_t *th;
} det_pick __attribute__((tls_model("initial-exec")));

static Py_ssize_t det_extra_index = -1;

/* A forked child is another thread (new tid) whose CPU clock must be its own:
 * the inherited perf page still follows the parent's thread. Forgetting the
 * thread-local state makes the child's next event register it afresh. */
static void det_atfork_child(void) {
    det_tls.session = 0;
    det_tls.th = NULL;
    det_pick.gen = 0;
    det_pick.p = NULL;
    det_pick.th = NULL;
}

/* The co_extra slot holds one of these per code object seen: it outlives
 * profilers (freed with the code object), so it says which session its
 * function belongs to. */
typedef struct {
    uint64_t session;
    det_func_t *func;
} det_extra_t;

static void det_extra_free(void *ptr) {
    hyp__free(ptr);
}

/* ------------------------------------------------------------------ helpers */

static inline PyCodeObject *frame_code(PyFrameObject *frame) {
#if PY_VERSION_HEX >= 0x030D0000
    return (PyCodeObject *)frame->f_frame->f_executable;
#else
    return frame->f_frame->f_code;
#endif
}

static inline const void *current_iframe(det_thread_t *th) {
#if PY_VERSION_HEX >= 0x030D0000
    return th->tstate->current_frame;
#else
    return th->tstate->cframe->current_frame;
#endif
}

static void set_error(det_prof_t *p, int err) {
    if (p->error == 0)
        p->error = err;
}

/* The instruction a frame stands on, seen through sys.monitoring's line and
 * instruction instrumentation (3.12+, Include/cpython/code.h). */
static int frame_opcode(PyCodeObject *co, int lasti_bytes) {
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
static int frame_suspends(PyFrameObject *frame, PyCodeObject *co, PyObject *arg) {
    int op;

    if (arg == NULL)
        return 0;
    op = frame_opcode(co, PyFrame_GetLasti(frame));
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
static int frame_is_fresh(PyFrameObject *frame, PyCodeObject *co) {
    return PyFrame_GetLasti(frame) <= co->_co_firsttraceable * 2;
}

/* ------------------------------------------------------------------ tables */

static inline size_t ptr_hash(const void *p, size_t mask) {
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & mask;
}

/* Makes th's top[] hold every function of p: the hot path indexes it
 * without a bound check. */
static int top_grow(det_prof_t *p, det_thread_t *th) {
    size_t cap = th->top_cap * 2 > p->nfuncs + 64 ? th->top_cap * 2 : p->nfuncs + 64;

    if (th->top_cap >= p->nfuncs)
        return 0;
    uint32_t *t;

    t = hyp__realloc(th->top, cap * sizeof *t);
    if (t == NULL)
        return HYP_ENOMEM;
    memset(t + th->top_cap, 0, (cap - th->top_cap) * sizeof *t);
    th->top = t;
    th->top_cap = cap;
    return 0;
}

static det_func_t *func_new(det_prof_t *p, const void *key, uint32_t kind) {
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
        if (top_grow(p, th) != 0)
            return NULL; /* f stays in funcs[], freed with them */
    return f;
}

static int ctab_grow(det_prof_t *p);

/* The function of key in p's table of functions by key (C functions, and
 * the Python functions of a profiler whose co_extra slot another one took),
 * or NULL. */
static det_func_t *ctab_find(det_prof_t *p, const void *key) {
    size_t j;

    if (p->ctab_cap == 0)
        return NULL;
    for (j = ptr_hash(key, p->ctab_cap - 1); p->ctab[j] != NULL; j = (j + 1) & (p->ctab_cap - 1))
        if (p->ctab[j]->key == key)
            return p->ctab[j];
    return NULL;
}

static int ctab_add(det_prof_t *p, det_func_t *f) {
    size_t j;

    if ((p->ctab_used + 1) * 2 > p->ctab_cap && ctab_grow(p) != 0)
        return HYP_ENOMEM;
    for (j = ptr_hash(f->key, p->ctab_cap - 1); p->ctab[j] != NULL; j = (j + 1) & (p->ctab_cap - 1))
        ;
    p->ctab[j] = f;
    p->ctab_used++;
    return 0;
}

static det_func_t *py_func(det_prof_t *p, PyCodeObject *co) {
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
    f = p->ctx_var != NULL ? ctab_find(p, co) : NULL;
    if (f != NULL) {
        if (extra != NULL) {
            extra->session = p->session;
            extra->func = f;
        }
        return f;
    }
    f = func_new(p, co, DET_FUNC_PYTHON);
    if (f == NULL)
        return NULL;
    Py_INCREF(co);
    f->code = (PyObject *)co;
    if (p->ctx_var != NULL && ctab_add(p, f) != 0)
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
static int is_c_descriptor(PyObject *o) {
    return Py_IS_TYPE(o, &PyMethodDescr_Type) || Py_IS_TYPE(o, &PyClassMethodDescr_Type) ||
           Py_IS_TYPE(o, &PyWrapperDescr_Type);
}

/* The descriptor of ml in the MRO of type, borrowed, or NULL. */
static PyObject *c_method_descr(PyTypeObject *type, PyMethodDef *ml) {
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
static PyObject *unaddressed(PyObject *repr) {
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
static PyObject *c_func_name(PyMethodDef *ml, PyObject *self, PyObject *module) {
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
        if (mo != NULL && !is_c_descriptor(mo))
            mo = c_method_descr(Py_TYPE(self), ml);
        if (mo == NULL)
            mo = found; /* its repr, with the address taken out below */
        if (mo != NULL) {
            Py_INCREF(mo);
            res = PyObject_Repr(mo);
            Py_DECREF(mo);
            if (res != NULL)
                return unaddressed(res);
        }
    }
    PyErr_Clear();
    if (module != NULL && PyUnicode_Check(module))
        return PyUnicode_FromFormat("<built-in method %S.%s>", module, ml->ml_name);
    return PyUnicode_FromFormat("<built-in method %s>", ml->ml_name);
}

static int ctab_grow(det_prof_t *p) {
    size_t cap = p->ctab_cap ? p->ctab_cap * 2 : 256, i;
    det_func_t **tab = hyp__calloc(cap, sizeof *tab);

    if (tab == NULL)
        return HYP_ENOMEM;
    for (i = 0; i < p->ctab_cap; i++) {
        det_func_t *f = p->ctab[i];
        size_t j;
        if (f == NULL)
            continue;
        for (j = ptr_hash(f->key, cap - 1); tab[j] != NULL; j = (j + 1) & (cap - 1))
            ;
        tab[j] = f;
    }
    hyp__free(p->ctab);
    p->ctab = tab;
    p->ctab_cap = cap;
    return 0;
}

#if PY_VERSION_HEX >= 0x030C0000
/* The C function behind a call event's callable, or NULL when the callable
 * is not one cProfile would count (the same test as _lsprof's
 * get_cfunc_from_callable and 3.12's legacy profile shim). */
static PyMethodDef *c_method_def(det_prof_t *p, PyObject *callable, PyObject *self_arg) {
    if (PyCFunction_Check(callable))
        return ((PyCFunctionObject *)callable)->m_ml;
    if (Py_IS_TYPE(callable, &PyMethodDescr_Type) && self_arg != NULL && self_arg != p->missing)
        return ((PyMethodDescrObject *)callable)->d_method;
    return NULL;
}
#endif

static det_func_t *c_func(det_prof_t *p, PyMethodDef *ml, PyObject *callable, PyObject *self_arg) {
    det_func_t *f;
    size_t j;
    PyObject *name;

    if (p->ctab_cap != 0) {
        for (j = ptr_hash(ml, p->ctab_cap - 1); p->ctab[j] != NULL; j = (j + 1) & (p->ctab_cap - 1))
            if (p->ctab[j]->key == ml)
                return p->ctab[j];
    }
    if ((p->ctab_used + 1) * 2 > p->ctab_cap && ctab_grow(p) != 0)
        return NULL;
    if (PyCFunction_Check(callable)) {
        PyCFunctionObject *fn = (PyCFunctionObject *)callable;
        name = c_func_name(ml, fn->m_self, fn->m_module);
    } else {
        name = c_func_name(ml, self_arg, NULL);
    }
    if (name == NULL) {
        PyErr_Clear();
        return NULL;
    }
    f = func_new(p, ml, DET_FUNC_BUILTIN);
    if (f == NULL) {
        Py_DECREF(name);
        return NULL;
    }
    f->name = name;
    for (j = ptr_hash(ml, p->ctab_cap - 1); p->ctab[j] != NULL; j = (j + 1) & (p->ctab_cap - 1))
        ;
    p->ctab[j] = f;
    p->ctab_used++;
    return f;
}

/* --------------------------------------------------------------- suspended */

static int gens_grow(det_prof_t *p) {
    size_t cap = p->gens_cap ? p->gens_cap * 2 : 64, i;
    det_gen_t *tab;

    if (cap > DET_GENS_MAX)
        return HYP_ELIMIT;
    tab = hyp__calloc(cap, sizeof *tab);
    if (tab == NULL)
        return HYP_ENOMEM;
    for (i = 0; i < p->gens_cap; i++) {
        size_t j;
        if (p->gens[i].frame == NULL)
            continue;
        for (j = ptr_hash(p->gens[i].frame, cap - 1); tab[j].frame != NULL; j = (j + 1) & (cap - 1))
            ;
        tab[j] = p->gens[i];
    }
    hyp__free(p->gens);
    p->gens = tab;
    p->gens_cap = cap;
    return 0;
}

/* Stores a suspended instance, replacing a stale entry of the same frame (an
 * instance that was dropped without a final event, whose memory now holds a
 * new generator). */
static void gens_put(det_prof_t *p, const void *frame, det_node_t *node, uint64_t first,
                     uint64_t run) {
    size_t j, mask;

    if ((p->gens_used + 1) * 2 > p->gens_cap && gens_grow(p) != 0) {
        p->gens_lost++;
        return;
    }
    mask = p->gens_cap - 1;
    for (j = ptr_hash(frame, mask); p->gens[j].frame != NULL; j = (j + 1) & mask)
        if (p->gens[j].frame == frame)
            break;
    if (p->gens[j].frame == NULL)
        p->gens_used++;
    p->gens[j].frame = frame;
    p->gens[j].node = node;
    p->gens[j].first_wall = first;
    p->gens[j].run_wall = run;
}

/* Removes and returns the entry of frame (in *out); 0 if there is none. */
static int gens_take(det_prof_t *p, const void *frame, det_gen_t *out) {
    size_t j, k, mask;

    if (p->gens_used == 0)
        return 0;
    mask = p->gens_cap - 1;
    for (j = ptr_hash(frame, mask); p->gens[j].frame != frame; j = (j + 1) & mask)
        if (p->gens[j].frame == NULL)
            return 0;
    *out = p->gens[j];
    /* Backward-shift deletion keeps probe chains whole without tombstones. */
    for (k = (j + 1) & mask; p->gens[k].frame != NULL; k = (k + 1) & mask) {
        size_t home = ptr_hash(p->gens[k].frame, mask);
        if (((k - home) & mask) >= ((k - j) & mask)) {
            p->gens[j] = p->gens[k];
            j = k;
        }
    }
    p->gens[j].frame = NULL;
    p->gens_used--;
    return 1;
}

/* ------------------------------------------------------------------- nodes */

static det_node_t *node_alloc(det_thread_t *th) {
    det_chunk_t *c = th->chunks;

    if (c == NULL || c->used == DET_CHUNK_NODES) {
        c = hyp__calloc(1, sizeof *c + DET_CHUNK_NODES * sizeof(det_node_t));
        if (c == NULL)
            return NULL;
        c->next = th->chunks;
        th->chunks = c;
    }
    return &c->nodes[c->used++];
}

/* Children beyond this many are found through the thread's table. */
#define DET_LIST_MAX 8u

static inline size_t kid_hash(const det_node_t *parent, const void *key, size_t mask) {
    uint64_t h = (uint64_t)(uintptr_t)parent * 0x9E3779B97F4A7C15ull ^
                 (uint64_t)(uintptr_t)key * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h ^ h >> 31) & mask;
}

static det_node_t *kids_find(const det_thread_t *th, const det_node_t *parent,
                             const void *key) {
    size_t j, mask = th->kids_cap - 1;
    det_node_t *n;

    for (j = kid_hash(parent, key, mask); (n = th->kids[j]) != NULL; j = (j + 1) & mask)
        if (n->parent == parent && n->key == key)
            return n;
    return NULL;
}

static void kids_put(det_thread_t *th, det_node_t *n) {
    size_t j, mask = th->kids_cap - 1;

    for (j = kid_hash(n->parent, n->key, mask); th->kids[j] != NULL; j = (j + 1) & mask)
        ;
    th->kids[j] = n;
    th->kids_used++;
}

/* Room for `more` entries at most half full. */
static int kids_reserve(det_thread_t *th, size_t more) {
    det_node_t **old = th->kids;
    size_t i, cap = th->kids_cap ? th->kids_cap : 256, old_cap = th->kids_cap;

    while ((th->kids_used + more) * 2 > cap)
        cap *= 2;
    if (cap == old_cap)
        return 0;
    th->kids = hyp__calloc(cap, sizeof *th->kids);
    if (th->kids == NULL) {
        th->kids = old;
        return HYP_ENOMEM;
    }
    th->kids_cap = cap;
    th->kids_used = 0;
    for (i = 0; i < old_cap; i++)
        if (old[i] != NULL)
            kids_put(th, old[i]);
    hyp__free(old);
    return 0;
}

/* Recounts the children of every node of th's tree and refills the table
 * from them: for stop(), after it took nodes out of the tree or moved them
 * to another parent. Walks the tree without recursion. */
static int kids_rebuild(det_thread_t *th) {
    det_node_t *n = &th->root, *c;
    int rc = 0;

    if (th->kids != NULL)
        memset(th->kids, 0, th->kids_cap * sizeof *th->kids);
    th->kids_used = 0;
    while (n != NULL) {
        uint32_t k = 0;
        for (c = n->first_child; c != NULL; c = c->next_sibling)
            k++;
        n->nkids = k;
        n->hot = n->first_child;
        if (k > DET_LIST_MAX && kids_reserve(th, k) == 0) {
            for (c = n->first_child; c != NULL; c = c->next_sibling)
                kids_put(th, c);
        } else if (k > DET_LIST_MAX) {
            n->nkids = DET_LIST_MAX; /* no room: found through the list, slowly */
            rc = HYP_ENOMEM;
        }
        if (n->first_child != NULL) {
            n = n->first_child;
            continue;
        }
        while (n != NULL && n != &th->root && n->next_sibling == NULL)
            n = n->parent;
        n = n == NULL || n == &th->root ? NULL : n->next_sibling;
    }
    return rc;
}

/* The child of parent for key, or NULL: the list for a few children, the
 * table for many. A hit in the list moves to its front. */
static det_node_t *kid_find(det_thread_t *th, det_node_t *parent, const void *key) {
    det_node_t *prev = NULL, *n;

    if (parent->nkids > DET_LIST_MAX)
        return kids_find(th, parent, key);
    for (n = parent->first_child; n != NULL; prev = n, n = n->next_sibling) {
        if (n->key == key) {
            if (prev != NULL) {
                prev->next_sibling = n->next_sibling;
                n->next_sibling = parent->first_child;
                parent->first_child = n;
            }
            return n;
        }
    }
    return NULL;
}

static det_node_t *node_link(det_thread_t *th, det_node_t *parent, const void *key,
                             det_func_t *f) {
    det_node_t *n, *c;

    /* The table's room first, so that a node is never linked without it. */
    if (parent->nkids >= DET_LIST_MAX &&
        kids_reserve(th, parent->nkids == DET_LIST_MAX ? DET_LIST_MAX + 1 : 1) != 0)
        return NULL;
    n = node_alloc(th);
    if (n == NULL)
        return NULL;
    n->key = key;
    n->func = f;
    n->fidx = f->index;
    n->seq = th->nseq++;
    n->parent = parent;
    n->next_sibling = parent->first_child;
    parent->first_child = n;
    parent->hot = n;
    if (++parent->nkids == DET_LIST_MAX + 1) {
        for (c = parent->first_child; c != NULL; c = c->next_sibling)
            kids_put(th, c);
    } else if (parent->nkids > DET_LIST_MAX + 1) {
        kids_put(th, n);
    }
    return n;
}

/* The slow half of the child lookup: walk the siblings and move a hit to the
 * front, or create the node, resolving the function (which may call into
 * Python: the caller has saved any pending exception). Past the node limit,
 * calls fold into one "[truncated]" child per parent, and everything below a
 * truncated node folds into it. Returns NULL on allocation failure. */
static void thread_name(det_thread_t *th);
static inline void det_pop(det_prof_t *p, det_thread_t *th, uint64_t wall, uint64_t cpu,
                           int suspend);

static det_node_t *child_slow(det_prof_t *p, det_thread_t *th, det_node_t *parent,
                              const void *key, PyObject *callable, PyObject *self_arg) {
    det_node_t *n;
    det_func_t *f;

    if (UNLIKELY(th->name_pending))
        thread_name(th); /* also when every call of the thread is folded */
    if (parent->truncated)
        return parent;
    n = kid_find(th, parent, key);
    if (n != NULL)
        return parent->hot = n;
    if (p->max_nodes != 0 && p->nodes >= p->max_nodes) {
        p->truncated++;
        n = kid_find(th, parent, &p->trunc_func);
        if (n != NULL)
            return parent->hot = n;
        n = node_link(th, parent, &p->trunc_func, p->trunc_func);
        if (n != NULL)
            n->truncated = 1;
        return n;
    }
    if (callable == NULL)
        f = py_func(p, (PyCodeObject *)key);
    else
        f = c_func(p, (PyMethodDef *)key, callable, self_arg);
    if (f == NULL)
        return NULL;
    n = node_link(th, parent, key, f);
    if (n != NULL)
        p->nodes++;
    return n;
}

/* ----------------------------------------------------------------- threads */

static void thread_name(det_thread_t *th) {
    PyObject *threading, *active, *t = NULL, *name = NULL, *key;

    /* A thread's first events can come before threading registers it; the
     * name is looked up again when its next call path is created. */
    th->name_pending = th->name_pending == 0 ? 256 : th->name_pending - 1;
    if (th->name[0] == '\0')
        snprintf(th->name, sizeof th->name, "Thread-%lu", th->ident);
    threading = PyImport_ImportModule("threading");
    if (threading == NULL)
        goto done;
    active = PyObject_GetAttrString(threading, "_active");
    Py_DECREF(threading);
    if (active == NULL)
        goto done;
    key = PyLong_FromUnsignedLong(th->ident);
    if (key != NULL && PyDict_Check(active))
        t = PyDict_GetItemWithError(active, key);
    Py_XDECREF(key);
    if (t != NULL)
        name = PyObject_GetAttrString(t, "name");
    Py_DECREF(active);
    if (name != NULL && PyUnicode_Check(name)) {
        const char *s = PyUnicode_AsUTF8(name);
        if (s != NULL) {
            snprintf(th->name, sizeof th->name, "%s", s);
            th->name_pending = 0;
        }
    }
    Py_XDECREF(name);
done:
    PyErr_Clear();
}

/* The calling thread's state, created at its first event. Called with the
 * GIL held and any pending exception saved. */
static int thread_alive(PyInterpreterState *interp, det_thread_t *th) {
    PyThreadState *ts;

    for (ts = PyInterpreterState_ThreadHead(interp); ts != NULL; ts = PyThreadState_Next(ts))
        if (ts->thread_id == th->ident && (uint64_t)ts->native_thread_id == th->os_tid)
            return 1;
    return 0;
}

/* Frees the stack and the CPU clock of the threads that have ended (their
 * calls all returned; any left open are closed at their last event). */
static void sweep_dead_threads(det_prof_t *p) {
    PyInterpreterState *interp = PyThreadState_Get()->interp;
    det_thread_t **pp = &p->live, *th;

    while ((th = *pp) != NULL) {
        if (thread_alive(interp, th)) {
            pp = &th->live_next;
            continue;
        }
        *pp = th->live_next;
        th->live_next = NULL;
        th->live = 0;
        p->nlive--;
        while (th->depth != 0)
            det_pop(p, th, th->last_wall, th->last_cpu, 0);
        th->lost = 0;
        hyp_cpu_clock_destroy(&th->cpu);
        hyp__free(th->stack);
        th->stack = NULL;
        th->cap = 0;
        hyp__free(th->top);
        th->top = NULL;
        th->top_cap = 0;
    }
}

static det_thread_t *thread_slow(det_prof_t *p) {
    unsigned long ident = PyThread_get_thread_ident();
    uint64_t tid = (uint64_t)syscall(SYS_gettid);
    det_thread_t *th;

    for (th = p->threads; th != NULL; th = th->next)
        if (th->ident == ident && th->os_tid == tid)
            break;
    if (th == NULL || !th->live)
        sweep_dead_threads(p);
    if (th == NULL) {
        th = hyp__calloc(1, sizeof *th);
        if (th == NULL)
            return NULL;
        th->ident = ident;
        th->os_tid = tid;
        thread_name(th);
        th->next = p->threads;
        p->threads = th;
        p->nthreads++;
    }
    if (!th->live) {
        /* A new thread, or one whose ident and tid a dead one had. */
        th->cap = 256;
        th->stack = hyp__malloc(th->cap * sizeof *th->stack);
        if (th->stack == NULL) {
            th->cap = 0;
            return NULL;
        }
        if (top_grow(p, th) != 0) {
            hyp__free(th->stack);
            th->stack = NULL;
            th->cap = 0;
            return NULL;
        }
        hyp_cpu_clock_init(&th->cpu, p->cpu_flags, &th->cpu_err);
        th->live = 1;
        th->live_next = p->live;
        p->live = th;
        p->nlive++;
    }
    th->tstate = PyThreadState_Get();
    th->session = p->session;
    det_tls.session = p->session;
    det_tls.th = th;
    return th;
}

/* ---------------------------------------------------------------- hot path */

static inline det_thread_t *thread_get(det_prof_t *p) {
    if (LIKELY(det_tls.session == p->session))
        return det_tls.th;
    return NULL;
}

/* The calling thread's state in p if it has one for this run, else NULL. */
static det_thread_t *thread_find(det_prof_t *p) {
    unsigned long ident;
    uint64_t tid;
    det_thread_t *th = thread_get(p);

    if (th != NULL)
        return th;
    ident = PyThread_get_thread_ident();
    tid = (uint64_t)syscall(SYS_gettid);
    for (th = p->threads; th != NULL; th = th->next) {
        if (th->ident == ident && th->os_tid == tid && th->live && th->session == p->session &&
            th->tstate == PyThreadState_Get()) {
            det_tls.session = p->session;
            det_tls.th = th;
            return th;
        }
    }
    return NULL;
}

/* The calling thread's state in p, made at its first event there; NULL when
 * it cannot be allocated. Called with the GIL held. */
static det_thread_t *thread_of(det_prof_t *p) {
    det_thread_t *th = thread_find(p);
    PyObject *exc_type, *exc_value, *exc_tb;

    if (th != NULL)
        return th;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    th = thread_slow(p);
    PyErr_Restore(exc_type, exc_value, exc_tb);
    return th;
}

/* ------------------------------------------------- context-bound profilers */

/* The context-bound profiler that owns the calling thread's running context
 * (the shared ContextVar holds its value there) and the thread's state in
 * it, or NULL. The thread's last choice stands while the variable's value is
 * the one it was made for, which CPython's own cache of the variable says
 * without a lookup (Python/context.c, 3.11-3.13, contextvar_get): var_cached
 * is the value in the running context as long as var_cached_tsid and
 * var_cached_tsver are the thread state's id and context_ver. context_ver
 * changes whenever the thread enters or leaves a context (Context.run, an
 * asyncio task's step), and ContextVar.set()/reset() refresh or clear the
 * cache, so neither a context switch nor a set() in place can leave a stale
 * choice standing. A miss looks the variable up (a HAMT search) and caches
 * the choice when CPython cached the value. */
static det_prof_t *pick_slow(det_thread_t **pth) {
    PyContextVar *var = (PyContextVar *)det_group.var;
    PyThreadState *ts = PyThreadState_Get();
    PyObject *v = NULL;
    det_prof_t *p = NULL;
    det_thread_t *th = NULL;
    size_t i;

    *pth = NULL;
    if (var == NULL)
        return NULL;
    if (PyContextVar_Get((PyObject *)var, NULL, &v) < 0) {
        PyErr_Clear(); /* cannot happen for a ContextVar; nothing was pending */
        return NULL;
    }
    for (i = 0; v != NULL && i < det_group.n; i++) {
        if (det_group.profs[i]->ctx_value == v) {
            p = det_group.profs[i];
            break;
        }
    }
    if (p != NULL && (th = thread_of(p)) == NULL) {
        set_error(p, HYP_ENOMEM);
        Py_DECREF(v);
        return NULL;
    }
    if (v != NULL && var->var_cached == v && var->var_cached_tsid == ts->id &&
        var->var_cached_tsver == ts->context_ver) {
        det_pick.gen = det_group.gen;
        det_pick.value = v;
        det_pick.p = p;
        det_pick.th = th;
    }
    Py_XDECREF(v);
    *pth = th;
    return p;
}

static inline det_prof_t *pick(det_thread_t **pth) {
    PyContextVar *var = (PyContextVar *)det_group.var;
    PyThreadState *ts = PyThreadState_Get();

    if (LIKELY(det_pick.gen == det_group.gen && var != NULL && var->var_cached != NULL &&
               var->var_cached == det_pick.value && var->var_cached_tsid == ts->id &&
               var->var_cached_tsver == ts->context_ver)) {
        *pth = det_pick.th;
        return det_pick.p;
    }
    return pick_slow(pth);
}

static int stack_grow(det_thread_t *th) {
    size_t cap = th->cap * 2;
    det_frame_t *s = hyp__realloc(th->stack, cap * sizeof *s);

    if (s == NULL)
        return HYP_ENOMEM;
    th->stack = s;
    th->cap = cap;
    return 0;
}

/* The cold parts of closing a frame, out of line so that the common path
 * stays small. A generator or coroutine frame: stores a suspended instance
 * and returns what its activation adds to the cumulative wall time. */
static __attribute__((noinline)) uint64_t det_pop_gen(det_prof_t *p, const det_frame_t *f,
                                                      det_node_t *n, uint64_t wall, uint64_t w,
                                                      int suspend) {
    if (suspend) {
        gens_put(p, f->gen_frame, n, f->first_wall, f->run_wall + w);
        return w;
    }
    if (f->lifetime) {
        /* A coroutine's whole life: earlier activations were added at their
         * suspension, the time suspended is added now. */
        uint64_t span = wall - f->first_wall;
        return span > f->run_wall ? span - f->run_wall : w;
    }
    return w; /* a generator counts the time it ran, activation by activation */
}

static __attribute__((noinline)) void det_pop_rec(det_node_t *n, int rec, uint64_t cum,
                                                  uint64_t c) {
    if (rec & DET_REC_FUNC) {
        n->rec->wall += cum;
        n->rec->cpu += c;
    }
    if (rec & DET_REC_EDGE) {
        n->rec->edge_wall += cum;
        n->rec->edge_cpu += c;
    }
}

/* Closes the top frame at (wall, cpu). */
static inline void det_pop(det_prof_t *p, det_thread_t *th, uint64_t wall, uint64_t cpu,
                           int suspend) {
    det_frame_t *f = &th->stack[--th->depth];
    det_node_t *n = f->node;
    uint64_t w = wall - f->t0, c = cpu - f->c0, cum;

    if (UNLIKELY(wall < f->t0))
        w = 0;
    cum = w;
    th->top[n->fidx] = f->prev_same;
    n->wall_own += w > f->child_wall ? w - f->child_wall : 0;
    n->cpu_own += c > f->child_cpu ? c - f->child_cpu : 0;
    if (UNLIKELY(f->gen_frame != NULL))
        cum = det_pop_gen(p, f, n, wall, w, suspend);
    if (LIKELY(th->depth != 0)) {
        det_frame_t *below = f - 1;
        below->child_wall += w;
        below->child_cpu += c;
        /* Calls folded into their caller's "[truncated]" node are inside its
         * time already. */
        if (UNLIKELY(n->truncated) && below->node == n)
            return;
    }
    n->wall_cum += cum;
    n->cpu_cum += c;
    if (UNLIKELY(f->rec != 0))
        det_pop_rec(n, f->rec, cum, c);
}

/* How an open call of n's function (the topmost, 1 + its stack index in
 * prev) makes a new call of n recursive: always for the function, and for
 * the edge when one of the function's open calls has n's caller. */
static int det_rec(const det_thread_t *th, uint32_t prev, const det_node_t *n) {
    const det_func_t *caller = n->parent->func;

    for (; prev != 0; prev = th->stack[prev - 1].prev_same)
        if (th->stack[prev - 1].node->parent->func == caller)
            return DET_REC_FUNC | DET_REC_EDGE;
    return DET_REC_FUNC;
}

#define DET_CHUNK_RECS 256u

static det_rec_t *rec_alloc(det_thread_t *th) {
    det_rec_chunk_t *c = th->rec_chunks;

    if (c == NULL || c->used == DET_CHUNK_RECS) {
        c = hyp__calloc(1, sizeof *c + DET_CHUNK_RECS * sizeof(det_rec_t));
        if (c == NULL)
            return NULL;
        c->next = th->rec_chunks;
        th->rec_chunks = c;
    }
    return &c->recs[c->used++];
}

/* A call of n made while its function is open (prev): how it is recursive,
 * its node's recursive parts made room for and, for a call rather than a
 * resumption, counted. Out of line: most calls are not recursive. */
static __attribute__((noinline)) int det_enter_rec(det_prof_t *p, det_thread_t *th, uint32_t prev,
                                                   det_node_t *n, int call) {
    int rec = det_rec(th, prev, n);

    if (n->rec == NULL && (n->rec = rec_alloc(th)) == NULL) {
        set_error(p, HYP_ENOMEM); /* stop() reports it; the call still counts */
        return 0;
    }
    if (call) {
        n->rec->calls++;
        n->rec->edge_calls += (rec & DET_REC_EDGE) != 0;
    }
    return rec;
}


/* Enters a call of key (a code object, or a PyMethodDef when callable is
 * not NULL). gen_frame is the frame of a generator or coroutine (NULL
 * otherwise); fresh says whether it starts rather than resumes. */
static void det_enter(det_prof_t *p, det_thread_t *th, const void *key, PyObject *callable,
                      PyObject *self_arg, const void *gen_frame, int fresh, uint64_t wall,
                      uint64_t cpu) {
    det_node_t *parent, *n;
    det_frame_t *f;
    det_gen_t g;
    uint32_t idx, prev;
    int resumed = 0, rec = 0;

    if (UNLIKELY(th->lost != 0 || th->depth == th->cap)) {
        if (th->lost != 0 || stack_grow(th) != 0) {
            th->lost++;
            set_error(p, HYP_ENOMEM);
            return;
        }
    }
    if (UNLIKELY(gen_frame != NULL) && !fresh && gens_take(p, gen_frame, &g)) {
        n = g.node;
        resumed = 1;
    } else {
        parent = th->depth != 0 ? th->stack[th->depth - 1].node : &th->root;
        n = parent->hot;
        if (UNLIKELY(n == NULL || n->key != key)) {
            PyObject *exc_type, *exc_value, *exc_tb;
            PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
            n = child_slow(p, th, parent, key, callable, self_arg);
            PyErr_Restore(exc_type, exc_value, exc_tb);
            if (n == NULL) {
                th->lost++;
                set_error(p, HYP_ENOMEM);
                return;
            }
        }
    }
    idx = n->fidx; /* below top_cap: func_new() and thread_slow() see to it */
    prev = th->top[idx];
    if (UNLIKELY(prev != 0))
        rec = det_enter_rec(p, th, prev, n, !resumed);
    n->calls += !resumed;
    f = &th->stack[th->depth++];
    th->top[idx] = (uint32_t)th->depth;
    f->key = key;
    f->node = n;
    f->gen_frame = gen_frame;
    f->t0 = wall;
    f->c0 = cpu;
    f->child_wall = 0;
    f->child_cpu = 0;
    f->prev_same = prev;
    f->rec = (uint8_t)rec;
    f->lifetime = 0;
    if (gen_frame != NULL) {
        f->first_wall = resumed ? g.first_wall : wall;
        f->run_wall = resumed ? g.run_wall : 0;
        f->lifetime = (((PyCodeObject *)key)->co_flags & DET_LIFETIME_FLAGS) != 0;
    }
}

/* Leaves the call of key. A return that matches no open call (the frame was
 * entered before start()) is ignored; one that matches a deeper call (an
 * event lost to another tool) closes the calls above it first. */
static void det_leave(det_prof_t *p, det_thread_t *th, const void *key, int suspend,
                      uint64_t wall, uint64_t cpu) {
    size_t i;

    if (UNLIKELY(th->lost != 0)) {
        th->lost--;
        return;
    }
    if (UNLIKELY(th->depth == 0))
        return;
    if (LIKELY(th->stack[th->depth - 1].key == key)) {
        det_pop(p, th, wall, cpu, suspend);
        return;
    }
    for (i = th->depth - 1; i-- > 0;)
        if (th->stack[i].key == key)
            break;
    if (i == (size_t)-1 || th->stack[i].key != key) {
        p->unmatched++;
        return;
    }
    while (th->depth > i + 1)
        det_pop(p, th, wall, cpu, 0);
    det_pop(p, th, wall, cpu, suspend);
}

/* -------------------------------------------------------- setprofile engine */

/* One event for p on the calling thread (th). */
static inline void trace_event(det_prof_t *p, det_thread_t *th, PyFrameObject *frame, int what,
                               PyObject *arg) {
    PyCodeObject *co;
    uint64_t wall, cpu;

    cpu = hyp_cpu_clock_read(&th->cpu, &wall);
    switch (what) {
    case PyTrace_CALL:
        co = frame_code(frame);
        if (UNLIKELY(co->co_flags & DET_GEN_FLAGS))
            det_enter(p, th, co, NULL, NULL, frame, frame_is_fresh(frame, co), wall, cpu);
        else
            det_enter(p, th, co, NULL, NULL, NULL, 1, wall, cpu);
        break;
    case PyTrace_RETURN:
        co = frame_code(frame);
        det_leave(p, th, co,
                  UNLIKELY(co->co_flags & DET_GEN_FLAGS) ? frame_suspends(frame, co, arg) : 0,
                  wall, cpu);
        break;
    case PyTrace_C_CALL:
        if (PyCFunction_Check(arg))
            det_enter(p, th, ((PyCFunctionObject *)arg)->m_ml, arg, NULL, NULL, 1, wall, cpu);
        break;
    case PyTrace_C_RETURN:
    case PyTrace_C_EXCEPTION:
        if (PyCFunction_Check(arg))
            det_leave(p, th, ((PyCFunctionObject *)arg)->m_ml, 0, wall, cpu);
        break;
    default:
        break;
    }
    th->last_wall = wall;
    th->last_cpu = cpu;
}

/* The profile function of the profiler without a context (obj). */
static int det_tracefunc(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg) {
    det_prof_t *p = (det_prof_t *)obj;
    det_thread_t *th;

    if (what >= PyTrace_C_CALL && !p->builtins)
        return 0;
    th = thread_get(p);
    if (UNLIKELY(th == NULL)) {
        PyObject *exc_type, *exc_value, *exc_tb;
        PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
        th = thread_slow(p);
        PyErr_Restore(exc_type, exc_value, exc_tb);
        if (th == NULL) {
            set_error(p, HYP_ENOMEM);
            return 0;
        }
    }
    trace_event(p, th, frame, what, arg);
    return 0;
}

/* The profile function of the context-bound profilers (obj, their
 * threading hook, unused): the event goes to the profiler of the running
 * context, if any. */
static int det_ctx_tracefunc(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg) {
    det_thread_t *th;
    det_prof_t *p = pick(&th);

    (void)obj;
    if (p == NULL || (what >= PyTrace_C_CALL && !p->builtins))
        return 0;
    trace_event(p, th, frame, what, arg);
    return 0;
}

/* threading.setprofile()'s hook, run by each thread started while profiling:
 * it installs the C function on its thread in place of itself. self is the
 * profiler without a context, or None for the context-bound ones. */
static PyObject *det_bootstrap(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    det_prof_t *p = (det_prof_t *)self;

    (void)args;
    (void)nargs;
    if (self == Py_None) {
        if (det_group.n != 0 && det_group.engine == DET_ENGINE_SETPROFILE)
            PyEval_SetProfile(det_ctx_tracefunc, det_group.bootstrap);
        else
            PyEval_SetProfile(NULL, NULL);
    } else if (det_active == p && p->running && p->engine == DET_ENGINE_SETPROFILE) {
        PyEval_SetProfile(det_tracefunc, (PyObject *)p);
    } else {
        PyEval_SetProfile(NULL, NULL);
    }
    Py_RETURN_NONE;
}

static PyMethodDef det_bootstrap_def = {"_hyprof_thread_bootstrap", (PyCFunction)(void (*)(void))det_bootstrap,
                                        METH_FASTCALL, NULL};

/* -------------------------------------------------------- monitoring engine */

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

static inline det_thread_t *mon_thread(det_prof_t *p) {
    det_thread_t *th = thread_get(p);

    if (UNLIKELY(th == NULL)) {
        PyObject *exc_type, *exc_value, *exc_tb;
        PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
        th = thread_slow(p);
        PyErr_Restore(exc_type, exc_value, exc_tb);
        if (th == NULL)
            set_error(p, HYP_ENOMEM);
    }
    return th;
}

static inline void mon_enter_py(PyObject *self, PyObject *const *args, int fresh) {
    det_prof_t *p;
    det_thread_t *th;
    PyCodeObject *co = (PyCodeObject *)args[0];
    uint64_t wall, cpu;

    if (LIKELY(self != Py_None)) {
        p = (det_prof_t *)self;
        th = mon_thread(p);
        if (UNLIKELY(th == NULL || !p->running))
            return;
    } else if ((p = pick(&th)) == NULL) {
        return;
    }
    cpu = hyp_cpu_clock_read(&th->cpu, &wall);
    if (UNLIKELY(co->co_flags & DET_GEN_FLAGS))
        det_enter(p, th, co, NULL, NULL, current_iframe(th), fresh, wall, cpu);
    else
        det_enter(p, th, co, NULL, NULL, NULL, 1, wall, cpu);
    th->last_wall = wall;
    th->last_cpu = cpu;
}

static inline void mon_leave_py(PyObject *self, PyObject *const *args, int suspend) {
    det_prof_t *p;
    det_thread_t *th;
    uint64_t wall, cpu;

    if (LIKELY(self != Py_None)) {
        p = (det_prof_t *)self;
        th = mon_thread(p);
        if (UNLIKELY(th == NULL || !p->running))
            return;
    } else if ((p = pick(&th)) == NULL) {
        return;
    }
    cpu = hyp_cpu_clock_read(&th->cpu, &wall);
    det_leave(p, th, args[0], suspend, wall, cpu);
    th->last_wall = wall;
    th->last_cpu = cpu;
}

static PyObject *mon_py_start(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)nargs;
    mon_enter_py(self, args, 1);
    Py_RETURN_NONE;
}

static PyObject *mon_py_resume(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)nargs;
    mon_enter_py(self, args, 0);
    Py_RETURN_NONE;
}

static PyObject *mon_py_return(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)nargs;
    mon_leave_py(self, args, 0);
    Py_RETURN_NONE;
}

static PyObject *mon_py_yield(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)nargs;
    mon_leave_py(self, args, 1);
    Py_RETURN_NONE;
}

/* The profiler, thread and method definition a CALL or C_RETURN event is
 * for, or 0 when the event is not one to record. Inlined into both callbacks,
 * so the hot path pays for no extra call. */
static inline int mon_c_target(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               det_prof_t **pp, det_thread_t **thp, PyMethodDef **mlp) {
    det_prof_t *p;
    det_thread_t *th;
    PyMethodDef *ml;

    if (LIKELY(self != Py_None)) {
        p = (det_prof_t *)self;
        ml = c_method_def(p, args[2], nargs > 3 ? args[3] : NULL);
        if (ml == NULL || (th = mon_thread(p)) == NULL || !p->running)
            return 0;
    } else {
        /* The group's events are those of all its profilers. */
        if ((p = pick(&th)) == NULL || !p->builtins)
            return 0;
        ml = c_method_def(p, args[2], nargs > 3 ? args[3] : NULL);
        if (ml == NULL)
            return 0;
    }
    *pp = p;
    *thp = th;
    *mlp = ml;
    return 1;
}

static PyObject *mon_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    det_prof_t *p;
    PyMethodDef *ml;
    det_thread_t *th;
    uint64_t wall, cpu;

    if (!mon_c_target(self, args, nargs, &p, &th, &ml))
        Py_RETURN_NONE;
    cpu = hyp_cpu_clock_read(&th->cpu, &wall);
    det_enter(p, th, ml, args[2], nargs > 3 ? args[3] : NULL, NULL, 1, wall, cpu);
    th->last_wall = wall;
    th->last_cpu = cpu;
    Py_RETURN_NONE;
}

static PyObject *mon_c_return(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    det_prof_t *p;
    PyMethodDef *ml;
    det_thread_t *th;
    uint64_t wall, cpu;

    if (!mon_c_target(self, args, nargs, &p, &th, &ml))
        Py_RETURN_NONE;
    cpu = hyp_cpu_clock_read(&th->cpu, &wall);
    det_leave(p, th, ml, 0, wall, cpu);
    th->last_wall = wall;
    th->last_cpu = cpu;
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
    {"hyprof_call", DET_FASTCALL(mon_call), METH_FASTCALL, NULL},
    {"hyprof_c_return", DET_FASTCALL(mon_c_return), METH_FASTCALL, NULL},
    {"hyprof_c_raise", DET_FASTCALL(mon_c_return), METH_FASTCALL, NULL},
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

static PyObject *det_cb_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames) {
    det_cb_t *cb = (det_cb_t *)self;

    (void)kwnames; /* sys.monitoring passes none */
    return cb->fn(cb->prof, args, PyVectorcall_NARGS(nargsf));
}

static int det_cb_traverse(det_cb_t *cb, visitproc visit, void *arg) {
    Py_VISIT(cb->prof);
    return 0;
}

static int det_cb_clear(det_cb_t *cb) {
    Py_CLEAR(cb->prof);
    return 0;
}

static void det_cb_dealloc(det_cb_t *cb) {
    PyObject_GC_UnTrack(cb);
    det_cb_clear(cb);
    PyObject_GC_Del(cb);
}

static PyObject *det_cb_repr(det_cb_t *cb) {
    return PyUnicode_FromFormat("<hyprof monitoring callback %s>", cb->name);
}

static PyTypeObject det_cb_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hyprof._hyprof.MonitoringCallback",
    .tp_basicsize = sizeof(det_cb_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(det_cb_t, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)det_cb_traverse,
    .tp_clear = (inquiry)det_cb_clear,
    .tp_dealloc = (destructor)det_cb_dealloc,
    .tp_repr = (reprfunc)det_cb_repr,
};

static PyObject *det_cb_new(PyObject *prof, const PyMethodDef *def) {
    det_cb_t *cb;

    if (!(det_cb_type.tp_flags & Py_TPFLAGS_READY) && PyType_Ready(&det_cb_type) < 0)
        return NULL;
    cb = PyObject_GC_New(det_cb_t, &det_cb_type);
    if (cb == NULL)
        return NULL;
    cb->vectorcall = det_cb_vectorcall;
    cb->prof = Py_NewRef(prof);
    cb->fn = (det_cb_fn)(void (*)(void))def->ml_meth;
    cb->name = def->ml_name;
    PyObject_GC_Track(cb);
    return (PyObject *)cb;
}

static PyObject *monitoring_module(void) {
    PyObject *sys = PyImport_ImportModule("sys"), *mon;

    if (sys == NULL)
        return NULL;
    mon = PyObject_GetAttrString(sys, "monitoring");
    Py_DECREF(sys);
    return mon;
}

static int monitoring_start(det_prof_t *p) {
    PyObject *mon = monitoring_module(), *r, *cbs;
    int i, nev = p->builtins ? EV_COUNT : EV_CALL;
    long mask = 0;

    if (mon == NULL)
        return -1;
    if (p->missing == NULL) {
        p->missing = PyObject_GetAttrString(mon, "MISSING");
        if (p->missing == NULL)
            goto fail;
    }
    if (p->callbacks == NULL) {
        cbs = PyTuple_New(EV_COUNT);
        if (cbs == NULL)
            goto fail;
        for (i = 0; i < EV_COUNT; i++) {
            PyObject *f = det_cb_new((PyObject *)p, &det_mon_defs[i]);
            if (f == NULL) {
                Py_DECREF(cbs);
                goto fail;
            }
            PyTuple_SET_ITEM(cbs, i, f);
        }
        p->callbacks = cbs;
    }
    r = PyObject_CallMethod(mon, "use_tool_id", "is", DET_TOOL_ID, "hyprof");
    if (r == NULL)
        goto fail;
    Py_DECREF(r);
    for (i = 0; i < nev; i++) {
        r = PyObject_CallMethod(mon, "register_callback", "iiO", DET_TOOL_ID,
                                1 << det_events[i].bit, PyTuple_GET_ITEM(p->callbacks, i));
        if (r == NULL)
            goto fail_free;
        Py_DECREF(r);
        mask |= 1L << det_events[i].bit;
    }
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

static void monitoring_stop(det_prof_t *p) {
    PyObject *mon = monitoring_module(), *r;
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

/* The name of the tool holding the profiler's sys.monitoring id, or NULL. */
static PyObject *monitoring_owner(void) {
    PyObject *mon = monitoring_module(), *r;

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
#endif

/* ------------------------------------------------------------ start / stop */

static PyMethodDef det_methods[];
#define det_methods_stop_def (det_methods[1])

/* Describes a foreign profile function for the refusal message. */
static PyObject *describe_profiler(PyThreadState *ts) {
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
static PyObject *threading_getprofile(void) {
    PyObject *threading = PyImport_ImportModule("threading"), *r = NULL;

    if (threading != NULL) {
        r = PyObject_CallMethod(threading, "getprofile", NULL);
        Py_DECREF(threading);
    }
    if (r == NULL)
        PyErr_Clear();
    return r;
}

/* Refuses to start over another profiler: hyprof never silently replaces a
 * profile function, nor takes a monitoring tool id that is in use. */
static int check_foreign(det_prof_t *p) {
    PyInterpreterState *interp = PyThreadState_Get()->interp;
    PyThreadState *ts;
    PyObject *hook;

    if (p->running) {
        PyErr_SetString(hyp_py_profiler_error, "this profiler is already running");
        return -1;
    }
    if (det_active != NULL) {
        PyErr_SetString(hyp_py_profiler_error,
                        "another hyprof profiler is already running; stop it before starting "
                        "this one (a profiler without a context runs alone, on all threads)");
        return -1;
    }
    if (det_group.n != 0 && p->ctx_var == NULL) {
        PyErr_Format(hyp_py_profiler_error,
                     "%zu hyprof profiler(s) bound to a context are running; a profiler without "
                     "a context cannot run beside them: stop them first, or give this one a "
                     "context=(var, value) of its own",
                     det_group.n);
        return -1;
    }
    if (det_group.n != 0) {
        /* Joining the running context-bound profilers: the hooks, the tool
         * id and threading's hook are already theirs. */
        if (p->ctx_var != det_group.var) {
            PyErr_Format(hyp_py_profiler_error,
                         "context-bound profilers running at the same time must share one "
                         "ContextVar (each with its own value): %R is running, not %R",
                         det_group.var, p->ctx_var);
            return -1;
        }
        if (p->engine != det_group.engine) {
            PyErr_Format(hyp_py_profiler_error,
                         "context-bound profilers running at the same time must use one engine: "
                         "'%s' is running",
                         det_group.engine == DET_ENGINE_MONITORING ? "monitoring" : "setprofile");
            return -1;
        }
        for (size_t i = 0; i < det_group.n; i++) {
            if (det_group.profs[i]->ctx_value == p->ctx_value) {
                PyErr_Format(hyp_py_profiler_error,
                             "another profiler bound to the same context value (%R) is running: "
                             "each event goes to one profiler, so each needs its own value",
                             p->ctx_value);
                return -1;
            }
        }
    }
    for (ts = PyInterpreterState_ThreadHead(interp); ts != NULL; ts = PyThreadState_Next(ts)) {
        if (ts->c_profilefunc != NULL &&
            !(det_group.n != 0 && ts->c_profilefunc == det_ctx_tracefunc)) {
            PyObject *who = describe_profiler(ts);
            PyErr_Format(hyp_py_profiler_error,
                         "cannot start: thread %lu already has a profile function (%U); hyprof "
                         "does not replace another profiler; stop it first",
                         (unsigned long)ts->thread_id, who != NULL ? who : Py_None);
            Py_XDECREF(who);
            return -1;
        }
    }
    if (det_group.n != 0)
        return 0;
#if PY_VERSION_HEX >= 0x030C0000
    {
        PyObject *owner = monitoring_owner();
        if (owner != NULL) {
            PyErr_Format(hyp_py_profiler_error,
                         "cannot start: the sys.monitoring profiler tool id (%d) is used by %R; "
                         "hyprof does not replace another profiler; stop it first",
                         DET_TOOL_ID, owner);
            Py_DECREF(owner);
            return -1;
        }
        if (PyErr_Occurred())
            return -1;
    }
#endif
    hook = threading_getprofile();
    if (hook == NULL)
        return 0;
    if (hook != Py_None) {
        PyErr_Format(hyp_py_profiler_error,
                     "cannot start: threading.setprofile() holds another profile function (%R) "
                     "for new threads; hyprof does not replace another profiler",
                     hook);
        Py_DECREF(hook);
        return -1;
    }
    Py_DECREF(hook);
    return 0;
}

static int threading_setprofile(PyObject *hook) {
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
static int hook_chains_to(PyObject *hook, PyObject *bootstrap) {
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
static void hooks_remove(Py_tracefunc fn, PyObject *obj, PyObject *bootstrap,
                         PyObject *replaced) {
    PyObject *exc_type, *exc_value, *exc_tb, *hook;
    PyThreadState *ts;

    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
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
    hook = threading_getprofile();
    if (hook == NULL || hook == Py_None || hook_chains_to(hook, bootstrap)) {
        threading_setprofile(Py_None);
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
    PyErr_Restore(exc_type, exc_value, exc_tb);
}

/* Sets the profile hook fn(obj) on every thread, and bootstrap as
 * threading's hook for the threads started later. On failure nothing stays
 * set. Returns 0, or -1 with an exception set. */
static int hooks_install(Py_tracefunc fn, PyObject *obj, PyObject *bootstrap) {
    PyThreadState *ts;

    if (threading_setprofile(bootstrap) < 0)
        return -1;
    for (ts = PyInterpreterState_ThreadHead(PyThreadState_Get()->interp); ts != NULL;
         ts = PyThreadState_Next(ts)) {
        if (_PyEval_SetProfile(ts, fn, obj) < 0) {
            hooks_remove(fn, obj, bootstrap, NULL);
            return -1;
        }
    }
    return 0;
}

#if PY_VERSION_HEX >= 0x030C0000
/* Sets the sys.monitoring events the context-bound profilers need (those of
 * the running ones and of joining, which may be NULL), taking the tool id
 * and registering the callbacks the first time. */
static int group_monitoring_set(det_prof_t *joining) {
    PyObject *mon = monitoring_module(), *r;
    int i, builtins = joining != NULL && joining->builtins, fresh = det_group.mask == 0;
    long mask = 0;
    size_t k;

    if (mon == NULL)
        return -1;
    if (joining != NULL && joining->missing == NULL) {
        joining->missing = PyObject_GetAttrString(mon, "MISSING");
        if (joining->missing == NULL)
            goto fail;
    }
    for (k = 0; k < det_group.n; k++)
        builtins |= det_group.profs[k]->builtins;
    if (det_group.callbacks == NULL) {
        PyObject *cbs = PyTuple_New(EV_COUNT);
        if (cbs == NULL)
            goto fail;
        for (i = 0; i < EV_COUNT; i++) {
            PyObject *f = det_cb_new(Py_None, &det_mon_defs[i]);
            if (f == NULL) {
                Py_DECREF(cbs);
                goto fail;
            }
            PyTuple_SET_ITEM(cbs, i, f);
        }
        det_group.callbacks = cbs;
    }
    if (fresh) {
        r = PyObject_CallMethod(mon, "use_tool_id", "is", DET_TOOL_ID, "hyprof");
        if (r == NULL)
            goto fail;
        Py_DECREF(r);
        for (i = 0; i < EV_COUNT; i++) {
            r = PyObject_CallMethod(mon, "register_callback", "iiO", DET_TOOL_ID,
                                    1 << det_events[i].bit,
                                    PyTuple_GET_ITEM(det_group.callbacks, i));
            if (r == NULL)
                goto fail_free;
            Py_DECREF(r);
        }
    }
    for (i = 0; i < (builtins ? EV_COUNT : EV_CALL); i++)
        mask |= 1L << det_events[i].bit;
    if (mask != det_group.mask) {
        r = PyObject_CallMethod(mon, "set_events", "il", DET_TOOL_ID, mask);
        if (r == NULL)
            goto fail_free;
        Py_DECREF(r);
        det_group.mask = mask;
    }
    Py_DECREF(mon);
    return 0;
fail_free:
    if (fresh) {
        PyObject *exc_type, *exc_value, *exc_tb;
        PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
        monitoring_stop(NULL);
        PyErr_Restore(exc_type, exc_value, exc_tb);
    }
fail:
    Py_DECREF(mon);
    return -1;
}
#endif

/* Adds a context-bound profiler to the running ones, installing the hooks
 * for the first. On error nothing is changed and an exception is set. */
static int group_join(det_prof_t *p) {
    if (det_group.n == det_group.cap &&
        hyp__grow((void **)&det_group.profs, &det_group.cap, det_group.n + 1,
                  sizeof *det_group.profs) != 0) {
        PyErr_NoMemory();
        return -1;
    }
    if (det_group.n == 0) {
        /* The variable first: a hook may run before this returns. */
        det_group.var = Py_NewRef(p->ctx_var);
        det_group.engine = p->engine;
        if (p->engine == DET_ENGINE_MONITORING) {
#if PY_VERSION_HEX >= 0x030C0000
            if (group_monitoring_set(p) < 0)
                goto fail;
#endif
        } else {
            if (det_group.bootstrap == NULL) {
                det_group.bootstrap = PyCFunction_New(&det_bootstrap_def, Py_None);
                if (det_group.bootstrap == NULL)
                    goto fail;
            }
            /* The object sys.getprofile() shows: the hook itself. */
            if (hooks_install(det_ctx_tracefunc, det_group.bootstrap, det_group.bootstrap) < 0)
                goto fail;
        }
    } else if (p->engine == DET_ENGINE_MONITORING) {
#if PY_VERSION_HEX >= 0x030C0000
        if (group_monitoring_set(p) < 0)
            return -1;
#endif
    }
    det_group.profs[det_group.n++] = (det_prof_t *)Py_NewRef((PyObject *)p);
    det_group.gen++;
    return 0;
fail:
    Py_CLEAR(det_group.var);
    return -1;
}

/* Removes p from the running context-bound profilers, removing the hooks
 * with the last one. The reference the group held passes to the caller. */
static void group_leave(det_prof_t *p) {
    PyObject *exc_type, *exc_value, *exc_tb;
    size_t i;

    for (i = 0; i < det_group.n && det_group.profs[i] != p; i++)
        ;
    if (i == det_group.n)
        return;
    memmove(&det_group.profs[i], &det_group.profs[i + 1],
            (det_group.n - i - 1) * sizeof *det_group.profs);
    det_group.n--;
    det_group.gen++;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    if (det_group.n != 0) {
#if PY_VERSION_HEX >= 0x030C0000
        /* The C events may no longer be needed. */
        if (det_group.engine == DET_ENGINE_MONITORING && group_monitoring_set(NULL) < 0)
            PyErr_Clear();
#endif
    } else if (det_group.engine == DET_ENGINE_MONITORING) {
#if PY_VERSION_HEX >= 0x030C0000
        monitoring_stop(NULL);
        det_group.mask = 0;
#endif
    } else {
        hooks_remove(det_ctx_tracefunc, det_group.bootstrap, det_group.bootstrap, p->replaced);
    }
    if (det_group.n == 0)
        Py_CLEAR(det_group.var);
    PyErr_Restore(exc_type, exc_value, exc_tb);
}

static PyObject *det_start(det_prof_t *p, PyObject *unused) {
    (void)unused;
    if (check_foreign(p) < 0)
        return NULL;
    if (hyp_clock_init(0) != 0) {
        PyErr_SetString(hyp_py_profiler_error, "cannot initialise the clocks");
        return NULL;
    }
    p->session = ++det_sessions;
    /* Stacks left from an earlier run were closed by stop(); only the
     * session changes, so the trees keep accumulating. */
    if (p->wall_start == 0 && p->wall_total == 0) {
        struct timespec ts_now;
        clock_gettime(CLOCK_REALTIME, &ts_now);
        p->unix_start = (double)ts_now.tv_sec + ts_now.tv_nsec / 1e9;
    }
    if (p->argv == NULL) {
        /* The program's command line as it started, not what sys.argv says
         * when the trace is written (hyprof run gives it back at the end). */
        PyObject *argv = PySys_GetObject("argv"); /* borrowed */
        if (argv != NULL && PyList_Check(argv)) {
            p->argv = PyList_GetSlice(argv, 0, PyList_GET_SIZE(argv));
            if (p->argv == NULL)
                return NULL;
        }
    }
    p->wall_start = hyp_clock_ticks();
    if (p->ctx_var != NULL) {
        /* The group holds the reference det_active would. */
        if (group_join(p) < 0)
            return NULL;
        p->running = 1;
        Py_RETURN_NONE;
    }
    if (p->engine == DET_ENGINE_MONITORING) {
#if PY_VERSION_HEX >= 0x030C0000
        if (monitoring_start(p) < 0)
            return NULL;
#endif
    } else {
        if (p->bootstrap == NULL) {
            p->bootstrap = PyCFunction_New(&det_bootstrap_def, (PyObject *)p);
            if (p->bootstrap == NULL)
                return NULL;
        }
        if (hooks_install(det_tracefunc, (PyObject *)p, p->bootstrap) < 0)
            return NULL;
    }
    Py_INCREF(p);
    det_active = p;
    p->running = 1;
    Py_RETURN_NONE;
}

/* Takes n (with everything under it) out of its parent's children: a node
 * whose only calls were the stop path's has nothing of the program's. */
static void unlink_node(det_node_t *n) {
    det_node_t **link;

    if (n->parent == NULL)
        return;
    for (link = &n->parent->first_child; *link != NULL; link = &(*link)->next_sibling) {
        if (*link == n) {
            *link = n->next_sibling;
            n->next_sibling = NULL;
            return;
        }
    }
}

/* Drops the calls of the stopping path itself (the C stop() and the Python
 * wrappers named by hide()) from the top of the calling thread's stack: they
 * are the profiler's, not the program's. A call path entered only by them
 * leaves the tree, so that no report shows it. */
static void drop_stop_frames(det_prof_t *p) {
    det_thread_t *th = thread_find(p);

    while (th != NULL && th->depth != 0) {
        det_frame_t *f = &th->stack[th->depth - 1];
        det_node_t *n = f->node;
        int hidden = f->key == &det_methods_stop_def;
        Py_ssize_t i;

        for (i = 0; !hidden && p->hidden != NULL && i < PyTuple_GET_SIZE(p->hidden); i++)
            hidden = f->key == (const void *)PyTuple_GET_ITEM(p->hidden, i);
        if (!hidden)
            break;
        if (f->gen_frame == NULL && n->calls != 0) {
            n->calls--;
            if (f->rec & DET_REC_FUNC)
                n->rec->calls--;
            if (f->rec & DET_REC_EDGE)
                n->rec->edge_calls--;
        }
        th->top[n->fidx] = f->prev_same;
        th->depth--;
        if (f->gen_frame == NULL && n->calls == 0 && n->wall_cum == 0 && n->cpu_cum == 0 &&
            !n->truncated && n != &th->root) {
            unlink_node(n);
            th->reshaped = 1;
        }
    }
}

/* ------------------------------------------------------------ omitted code
 *
 * omit(cut, skip) names code objects of hyprof's own that the program calls
 * (the integrations' wrappers and helpers): at stop, once every call is
 * closed, their nodes leave the trees. A cut node goes with its subtree, its
 * time becoming its caller's own; a skipped node alone, its own time going
 * to its caller and its children moving up to the caller, merged with the
 * caller's children of the same function. */

enum { OMIT_KEEP = 0, OMIT_SKIP = 1, OMIT_CUT = 2 };

static int omit_kind(det_prof_t *p, const void *key) {
    Py_ssize_t i;

    for (i = 0; p->omit_cut != NULL && i < PyTuple_GET_SIZE(p->omit_cut); i++)
        if (key == (const void *)PyTuple_GET_ITEM(p->omit_cut, i))
            return OMIT_CUT;
    for (i = 0; p->omit_skip != NULL && i < PyTuple_GET_SIZE(p->omit_skip); i++)
        if (key == (const void *)PyTuple_GET_ITEM(p->omit_skip, i))
            return OMIT_SKIP;
    return OMIT_KEEP;
}

/* A growable array of node pointers (a work list). */
typedef struct {
    det_node_t **v;
    size_t n, cap;
} det_nodes_t;

static int nodes_push(det_nodes_t *a, det_node_t *n) {
    if (a->n == a->cap && hyp__grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v) != 0)
        return HYP_ENOMEM;
    a->v[a->n++] = n;
    return 0;
}

static det_node_t *child_like(det_node_t *parent, det_node_t *n) {
    det_node_t *c;

    for (c = parent->first_child; c != NULL; c = c->next_sibling)
        if (c != n && c->key == n->key && c->truncated == n->truncated)
            return c;
    return NULL;
}

/* Adds src (a node moving up) into dst, a node of the same function at its
 * new place, and so on down: children of src without a counterpart under
 * dst become dst's. dst has not been scanned yet. */
static int merge_into(det_node_t *dst, det_node_t *src) {
    det_nodes_t pairs = {NULL, 0, 0};
    int rc;

    if ((rc = nodes_push(&pairs, dst)) == 0)
        rc = nodes_push(&pairs, src);
    while (rc == 0 && pairs.n != 0) {
        det_node_t *s = pairs.v[--pairs.n], *d = pairs.v[--pairs.n], *c, *next, *same;
        d->calls += s->calls;
        d->wall_own += s->wall_own;
        d->wall_cum += s->wall_cum;
        d->cpu_own += s->cpu_own;
        d->cpu_cum += s->cpu_cum;
        if (s->rec != NULL && d->rec == NULL) {
            d->rec = s->rec;
        } else if (s->rec != NULL) {
            d->rec->calls += s->rec->calls;
            d->rec->wall += s->rec->wall;
            d->rec->cpu += s->rec->cpu;
            d->rec->edge_calls += s->rec->edge_calls;
            d->rec->edge_wall += s->rec->edge_wall;
            d->rec->edge_cpu += s->rec->edge_cpu;
        }
        s->rec = NULL;
        for (c = s->first_child; rc == 0 && c != NULL; c = next) {
            next = c->next_sibling;
            same = child_like(d, c);
            if (same != NULL) {
                if ((rc = nodes_push(&pairs, same)) == 0)
                    rc = nodes_push(&pairs, c);
            } else {
                c->parent = d;
                c->next_sibling = d->first_child;
                d->first_child = c;
            }
        }
        s->first_child = NULL;
    }
    hyp__free(pairs.v);
    return rc;
}

/* Scans one thread's tree in preorder (a node's children are scanned after
 * its own list is settled). */
static int omit_thread(det_prof_t *p, det_thread_t *th) {
    det_nodes_t todo = {NULL, 0, 0};
    int rc = nodes_push(&todo, &th->root);

    while (rc == 0 && todo.n != 0) {
        det_node_t *parent = todo.v[--todo.n], **link = &parent->first_child;
        while (rc == 0 && *link != NULL) {
            det_node_t *c = *link, *g, *next, *same;
            int kind = c->truncated ? OMIT_KEEP : omit_kind(p, c->key);
            if (kind == OMIT_KEEP) {
                rc = nodes_push(&todo, c);
                link = &c->next_sibling;
                continue;
            }
            *link = c->next_sibling;
            th->reshaped = 1;
            if (kind == OMIT_CUT) {
                parent->wall_own += c->wall_cum;
                parent->cpu_own += c->cpu_cum;
                continue;
            }
            parent->wall_own += c->wall_own;
            parent->cpu_own += c->cpu_own;
            for (g = c->first_child; rc == 0 && g != NULL; g = next) {
                next = g->next_sibling;
                same = child_like(parent, g);
                if (same != NULL) {
                    rc = merge_into(same, g);
                } else {
                    /* In c's place, so that this loop scans it next. */
                    g->parent = parent;
                    g->next_sibling = *link;
                    *link = g;
                }
            }
            c->first_child = NULL;
        }
    }
    hyp__free(todo.v);
    return rc;
}

/* After the stop path's and omit()'s nodes left the trees, the lookups of
 * the next start() must not find them: each reshaped tree's table of
 * children and its last-found children are made again from the tree. */
static void reindex_trees(det_prof_t *p) {
    det_thread_t *th;

    for (th = p->threads; th != NULL; th = th->next) {
        if (!th->reshaped)
            continue;
        th->reshaped = 0;
        if (kids_rebuild(th) != 0)
            set_error(p, HYP_ENOMEM);
    }
}

static void omit_nodes(det_prof_t *p) {
    det_thread_t *th;

    if ((p->omit_cut == NULL || PyTuple_GET_SIZE(p->omit_cut) == 0) &&
        (p->omit_skip == NULL || PyTuple_GET_SIZE(p->omit_skip) == 0))
        return;
    for (th = p->threads; th != NULL; th = th->next)
        if (omit_thread(p, th) != 0)
            set_error(p, HYP_ENOMEM);
}

/* Closes every open call at stop time: the calling thread's at its clock,
 * other threads' at the wall clock now and their CPU time at their last
 * event (their CPU clock can only be read on their own thread). */
static void close_open_frames(det_prof_t *p) {
    det_thread_t *me = thread_find(p), *th;
    uint64_t wall_now = hyp_clock_ticks();

    for (th = p->threads; th != NULL; th = th->next) {
        uint64_t wall, cpu;
        if (th == me) {
            cpu = hyp_cpu_clock_read(&th->cpu, &wall);
        } else {
            wall = wall_now;
            cpu = th->last_cpu;
        }
        while (th->depth != 0) {
            det_frame_t *f = &th->stack[th->depth - 1];
            if (cpu < f->c0)
                cpu = f->c0;
            det_pop(p, th, wall, cpu, 0);
        }
        th->lost = 0;
    }
    /* Instances still suspended keep the time they ran; their next
     * resumption, if any, happens outside this run. */
    p->gens_used = 0;
    if (p->gens != NULL)
        memset(p->gens, 0, p->gens_cap * sizeof *p->gens);
}

static PyObject *det_stop(det_prof_t *p, PyObject *unused) {
    int err;

    (void)unused;
    if (!p->running) {
        PyErr_SetString(hyp_py_profiler_error, "the profiler is not running");
        return NULL;
    }
    if (p->ctx_var != NULL) {
        group_leave(p);
    } else if (p->engine == DET_ENGINE_MONITORING) {
#if PY_VERSION_HEX >= 0x030C0000
        monitoring_stop(p);
#endif
    } else {
        hooks_remove(det_tracefunc, (PyObject *)p, p->bootstrap, p->replaced);
    }
    p->running = 0;
    drop_stop_frames(p);
    close_open_frames(p);
    omit_nodes(p);
    reindex_trees(p);
    sweep_dead_threads(p);
    {
        /* Names as they are now: a thread may have been renamed since it
         * registered. */
        PyObject *exc_type, *exc_value, *exc_tb;
        det_thread_t *th;
        PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
        for (th = p->live; th != NULL; th = th->live_next)
            thread_name(th);
        PyErr_Restore(exc_type, exc_value, exc_tb);
    }
    p->wall_total += hyp_clock_ticks() - p->wall_start;
    p->ns_per_tick = hyp_clock_ns_per_tick();
    if (p->replaced != NULL && PyList_GET_SIZE(p->replaced) != 0) {
        PyObject *sep = PyUnicode_FromString(", "), *where = NULL;
        if (sep != NULL)
            where = PyUnicode_Join(sep, p->replaced);
        if (where == NULL ||
            PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                             "hyprof: another profile function replaced hyprof's while it ran, "
                             "on %U; the calls made there after that are missing",
                             where) < 0)
            PyErr_Clear();
        Py_XDECREF(sep);
        Py_XDECREF(where);
        PyList_SetSlice(p->replaced, 0, PyList_GET_SIZE(p->replaced), NULL);
    }
    if (p->ctx_var == NULL) {
        det_active = NULL;
        det_tls.session = 0;
        det_tls.th = NULL;
    }
    p->session = ++det_sessions; /* old co_extra slots and thread states stop matching */
    err = p->error;
    p->error = 0;
    /* The reference start() took for det_active or the group; the caller
     * holds another. */
    Py_DECREF(p);
    if (err != 0) {
        if (err == HYP_ENOMEM)
            return PyErr_NoMemory();
        PyErr_Format(hyp_py_profiler_error, "profiling failed: %s", hyp_strerror(err));
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------- the object */

static int det_init(det_prof_t *p, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"builtins", "engine", "max_nodes", "cpu_clock", "context", NULL};
    int builtins = 1;
    const char *engine = "auto", *cpu_clock = "auto";
    Py_ssize_t max_nodes = DET_DEFAULT_MAX_NODES;
    PyObject *context = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|psnsO:DetProfiler", kwlist, &builtins,
                                     &engine, &max_nodes, &cpu_clock, &context))
        return -1;
    if (context != Py_None &&
        (!PyTuple_Check(context) || PyTuple_GET_SIZE(context) != 2 ||
         !PyContextVar_CheckExact(PyTuple_GET_ITEM(context, 0)))) {
        PyErr_Format(hyp_py_profiler_error,
                     "context=%R must be None or a (contextvars.ContextVar, value) pair: "
                     "calls count only while the variable holds the value", context);
        return -1;
    }
    if (p->funcs != NULL || p->running) {
        PyErr_SetString(hyp_py_profiler_error, "a DetProfiler cannot be initialised twice");
        return -1;
    }
    if (engine == NULL || strcmp(engine, "auto") == 0) {
        p->engine = PY_VERSION_HEX >= 0x030C0000 ? DET_ENGINE_MONITORING : DET_ENGINE_SETPROFILE;
    } else if (strcmp(engine, "setprofile") == 0) {
        p->engine = DET_ENGINE_SETPROFILE;
    } else if (strcmp(engine, "monitoring") == 0) {
        if (PY_VERSION_HEX < 0x030C0000) {
            PyErr_SetString(hyp_py_profiler_error,
                            "engine='monitoring' needs Python 3.12 or later (sys.monitoring); "
                            "use engine='setprofile' or 'auto'");
            return -1;
        }
        p->engine = DET_ENGINE_MONITORING;
    } else {
        PyErr_Format(hyp_py_profiler_error,
                     "engine='%s' is not known: use 'auto', 'setprofile' or 'monitoring'", engine);
        return -1;
    }
    if (strcmp(cpu_clock, "auto") == 0) {
        p->cpu_flags = 0;
    } else if (strcmp(cpu_clock, "syscall") == 0) {
        p->cpu_flags = HYP_CPU_CLOCK_FORCE_SYSCALL;
    } else {
        PyErr_Format(hyp_py_profiler_error,
                     "cpu_clock='%s' is not known: use 'auto' or 'syscall'", cpu_clock);
        return -1;
    }
    if (max_nodes < 0 || (size_t)max_nodes > (size_t)UINT32_MAX / 2) {
        PyErr_Format(hyp_py_profiler_error,
                     "max_nodes=%zd is out of range: use 0 (no limit) up to %u", max_nodes,
                     UINT32_MAX / 2);
        return -1;
    }
    p->builtins = builtins;
    p->max_nodes = (size_t)max_nodes;
    if (context != Py_None) {
        Py_XSETREF(p->ctx_var, Py_NewRef(PyTuple_GET_ITEM(context, 0)));
        Py_XSETREF(p->ctx_value, Py_NewRef(PyTuple_GET_ITEM(context, 1)));
    }
    p->session = ++det_sessions;
    p->trunc_func = func_new(p, NULL, DET_FUNC_TRUNCATED);
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

static void free_threads(det_prof_t *p) {
    det_thread_t *th, *next;

    for (th = p->threads; th != NULL; th = next) {
        det_chunk_t *c, *cn;
        det_rec_chunk_t *r, *rn;
        next = th->next;
        for (c = th->chunks; c != NULL; c = cn) {
            cn = c->next;
            hyp__free(c);
        }
        for (r = th->rec_chunks; r != NULL; r = rn) {
            rn = r->next;
            hyp__free(r);
        }
        hyp__free(th->kids);
        hyp_cpu_clock_destroy(&th->cpu);
        hyp__free(th->stack);
        hyp__free(th->top);
        hyp__free(th);
    }
    p->threads = NULL;
    p->nthreads = 0;
}

static PyObject *det_hide(det_prof_t *p, PyObject *codes) {
    if (!PyTuple_Check(codes)) {
        PyErr_SetString(PyExc_TypeError, "hide() takes a tuple of code objects");
        return NULL;
    }
    Py_INCREF(codes);
    Py_XSETREF(p->hidden, codes);
    Py_RETURN_NONE;
}

static PyObject *det_omit(det_prof_t *p, PyObject *args) {
    PyObject *cut, *skip;

    if (!PyArg_ParseTuple(args, "O!O!:omit", &PyTuple_Type, &cut, &PyTuple_Type, &skip))
        return NULL;
    Py_INCREF(cut);
    Py_INCREF(skip);
    Py_XSETREF(p->omit_cut, cut);
    Py_XSETREF(p->omit_skip, skip);
    Py_RETURN_NONE;
}

static int det_traverse(det_prof_t *p, visitproc visit, void *arg) {
    Py_VISIT(p->omit_cut);
    Py_VISIT(p->omit_skip);
    Py_VISIT(p->hidden);
    Py_VISIT(p->argv);
    Py_VISIT(p->ctx_var);
    Py_VISIT(p->ctx_value);
    Py_VISIT(p->bootstrap);
    Py_VISIT(p->callbacks);
    return 0;
}

static int det_clear(det_prof_t *p) {
    Py_CLEAR(p->omit_cut);
    Py_CLEAR(p->omit_skip);
    Py_CLEAR(p->hidden);
    Py_CLEAR(p->argv);
    Py_CLEAR(p->ctx_var);
    Py_CLEAR(p->ctx_value);
    Py_CLEAR(p->bootstrap);
    Py_CLEAR(p->callbacks);
    return 0;
}

static void det_dealloc(det_prof_t *p) {
    size_t i;

    PyObject_GC_UnTrack(p);
    if (p->weakrefs != NULL)
        PyObject_ClearWeakRefs((PyObject *)p);
    det_clear(p);
    free_threads(p);
    for (i = 0; i < p->nfuncs; i++) {
        Py_XDECREF(p->funcs[i]->code);
        Py_XDECREF(p->funcs[i]->name);
        hyp__free(p->funcs[i]);
    }
    hyp__free(p->funcs);
    hyp__free(p->ctab);
    hyp__free(p->gens);
    Py_XDECREF(p->missing);
    Py_XDECREF(p->replaced);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyObject *det_write(det_prof_t *p, PyObject *arg) {
    PyObject *bytes;
    hyp_profile_t *prof;
    int rc, saved_errno = 0;

    if (!PyUnicode_FSConverter(arg, &bytes))
        return NULL;
    if (p->running) {
        Py_DECREF(bytes);
        PyErr_SetString(hyp_py_profiler_error, "the profiler is running: stop() it first");
        return NULL;
    }
    prof = hyp__det_export(p);
    if (prof == NULL) {
        Py_DECREF(bytes);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = hyp_trace_save(prof, PyBytes_AS_STRING(bytes));
    saved_errno = errno;
    Py_END_ALLOW_THREADS
    hyp_profile_free(prof);
    if (rc != 0) {
        /* A file that cannot be created or written is the OSError a user
         * expects (FileNotFoundError, PermissionError, ...), with its name. */
        if ((rc == HYP_EIO || rc == HYP_ENOENT || rc == HYP_EPERM) && saved_errno != 0) {
            errno = saved_errno;
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, arg);
        } else {
            PyErr_Format(hyp_py_profiler_error, "cannot write %R: %s", arg, hyp_strerror(rc));
        }
        Py_DECREF(bytes);
        return NULL;
    }
    Py_DECREF(bytes);
    Py_RETURN_NONE;
}

/* The trace as bytes, written by the core's memory writer. */
static PyObject *det_dumps(det_prof_t *p, PyObject *unused) {
    hyp_profile_t *prof;
    hyp_writer_t *w = NULL;
    const void *data;
    size_t len = 0;
    PyObject *res = NULL;
    int rc;

    (void)unused;
    if (p->running) {
        PyErr_SetString(hyp_py_profiler_error, "the profiler is running: stop() it first");
        return NULL;
    }
    prof = hyp__det_export(p);
    if (prof == NULL)
        return NULL;
    rc = hyp_writer_open_mem(&w);
    if (rc == 0) {
        rc = hyp_writer_begin(w, prof);
        if (rc == 0)
            rc = hyp_writer_finish(w, prof);
        if (rc == 0) {
            data = hyp_writer_data(w, &len);
            res = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
        }
        if (hyp_writer_close(w) != 0 && rc == 0)
            rc = HYP_EIO;
    }
    hyp_profile_free(prof);
    if (rc != 0) {
        Py_XDECREF(res);
        PyErr_Format(hyp_py_profiler_error, "cannot serialise the profile: %s", hyp_strerror(rc));
        return NULL;
    }
    return res;
}

static PyObject *det_trace(det_prof_t *p, PyObject *unused) {
    hyp_profile_t *prof;

    (void)unused;
    if (p->running) {
        PyErr_SetString(hyp_py_profiler_error, "the profiler is running: stop() it first");
        return NULL;
    }
    prof = hyp__det_export(p);
    if (prof == NULL)
        return NULL;
    return hyp_py_trace_take_profile(prof);
}

static PyObject *det_get_running(det_prof_t *p, void *closure) {
    (void)closure;
    return PyBool_FromLong(p->running);
}

static PyObject *det_get_engine(det_prof_t *p, void *closure) {
    (void)closure;
    return PyUnicode_FromString(p->engine == DET_ENGINE_MONITORING ? "monitoring" : "setprofile");
}

/* Counters a user or a test checks: nodes, functions, threads, truncations,
 * returns that matched no call, and the CPU clock reads by kind. */
static PyObject *det_get_counters(det_prof_t *p, void *closure) {
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
                         (unsigned long long)p->gens_lost, "cpu_fast_reads", fast,
                         "cpu_resyncs", slow, "replaced", p->replaced);
}

static PyMethodDef det_methods[] = {
    {"start", (PyCFunction)det_start, METH_NOARGS,
     "Starts profiling every thread; raises ProfilerError over another profiler."},
    {"stop", (PyCFunction)det_stop, METH_NOARGS,
     "Stops profiling and closes the calls still open at this instant."},
    {"write", (PyCFunction)det_write, METH_O, "Writes the trace to a file."},
    {"dumps", (PyCFunction)det_dumps, METH_NOARGS, "Returns the trace as bytes."},
    {"trace", (PyCFunction)det_trace, METH_NOARGS, "Returns the profile as a hyprof.Trace."},
    {"hide", (PyCFunction)det_hide, METH_O,
     "Names the code objects of the wrappers that call stop(), left out of the profile."},
    {"omit", (PyCFunction)det_omit, METH_VARARGS,
     "omit(cut, skip): code objects of hyprof's own that the program calls, left out of the "
     "profile at stop: cut with their callees, skip alone."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef det_getset[] = {
    {"running", (getter)det_get_running, NULL, "Whether the profiler is running.", NULL},
    {"engine", (getter)det_get_engine, NULL, "'setprofile' or 'monitoring'.", NULL},
    {"counters", (getter)det_get_counters, NULL, "Bookkeeping counters (a dict).", NULL},
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
    .tp_traverse = (traverseproc)det_traverse,
    .tp_clear = (inquiry)det_clear,
    .tp_dealloc = (destructor)det_dealloc,
    .tp_init = (initproc)det_init,
    .tp_new = PyType_GenericNew,
    .tp_methods = det_methods,
    .tp_getset = det_getset,
};

int hyp_py_det_init(PyObject *module) {
    PyObject *bases;

    if (det_extra_index < 0) {
        if (pthread_atfork(NULL, NULL, det_atfork_child) != 0) {
            PyErr_SetString(PyExc_RuntimeError, "cannot register hyprof's fork handler");
            return -1;
        }
        det_extra_index = det_request_extra_index(det_extra_free);
        if (det_extra_index < 0) {
            PyErr_SetString(PyExc_RuntimeError, "no co_extra slot left for hyprof");
            return -1;
        }
    }
    if (PyType_Ready(&det_type) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "DetProfiler", (PyObject *)&det_type) < 0)
        return -1;
    if (hyp_py_profiler_error == NULL) {
        /* A RuntimeError (a profiler is in the way) and a ValueError (a bad
         * option), so either handler catches it. */
        bases = PyTuple_Pack(2, PyExc_RuntimeError, PyExc_ValueError);
        if (bases == NULL)
            return -1;
        hyp_py_profiler_error = PyErr_NewExceptionWithDoc(
            "hyprof.ProfilerError",
            "A profiler cannot start (another one, or a foreign profile function, is active) "
            "or was given a bad option.",
            bases, NULL);
        Py_DECREF(bases);
        if (hyp_py_profiler_error == NULL)
            return -1;
    }
    if (PyModule_AddObjectRef(module, "ProfilerError", hyp_py_profiler_error) < 0)
        return -1;
    if (PyModule_AddStringConstant(module, "DEFAULT_ENGINE",
                                   PY_VERSION_HEX >= 0x030C0000 ? "monitoring" : "setprofile") < 0)
        return -1;
    return 0;
}
