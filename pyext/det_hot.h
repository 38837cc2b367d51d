/* pyext/det_hot.h: internal to the _hyprof extension; not API.
 *
 * The deterministic engine's call hot path, static inline so that each
 * engine's translation unit (det_setprofile.c, det_monitoring.c) compiles
 * it into its own hook, with no call across files per event: the calling
 * thread's state, the context-bound profilers' pick, and entering and
 * leaving a call. hyp__det_enter reads the current node's hot child (the
 * child found last), pushes a preallocated stack entry and adds; it makes no
 * Python API call and no allocation unless a call path, a function or a
 * thread is seen for the first time, and a failed allocation sets a sticky
 * error that stop() reports.
 *
 * The interpreter's frame, code and context layouts come from its own
 * internal headers (3.11: pycore_frame.h's struct _frame; 3.13 moved f_code
 * to f_executable), never from copies. */
#ifndef HYPROF_PYEXT_DET_HOT_H
#define HYPROF_PYEXT_DET_HOT_H

#include "det.h"

#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#include "internal/pycore_frame.h"
#include "internal/pycore_context.h"
#if PY_VERSION_HEX >= 0x030D0000
#include "internal/pycore_ceval.h"
#endif
#include <opcode.h>

#define DET_GEN_FLAGS (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR)
/* Instances whose cumulative wall time spans their life: what they await is
 * theirs (a generator decorated with types.coroutine is one of them). */
#define DET_LIFETIME_FLAGS (CO_COROUTINE | CO_ASYNC_GENERATOR | CO_ITERABLE_COROUTINE)

/* The calling thread's state in p if it is the one it last recorded into
 * in this run, else NULL. */
static inline det_thread_t *hyp__det_thread_get(det_prof_t *p) {
    if (DET_LIKELY(hyp__det_tls.session == p->session))
        return hyp__det_tls.th;
    return NULL;
}

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
 * choice standing. A miss (hyp__det_pick_slow) looks the variable up. */
static inline det_prof_t *hyp__det_pick(det_thread_t **pth) {
    PyContextVar *var = (PyContextVar *)hyp__det_group.var;
    PyThreadState *ts = PyThreadState_Get();

    if (DET_LIKELY(hyp__det_pick_tls.gen == hyp__det_group.gen && var != NULL &&
                   var->var_cached != NULL && var->var_cached == hyp__det_pick_tls.value &&
                   var->var_cached_tsid == ts->id && var->var_cached_tsver == ts->context_ver)) {
        *pth = hyp__det_pick_tls.th;
        return hyp__det_pick_tls.p;
    }
    return hyp__det_pick_slow(pth);
}

/* The slow half of the child lookup: walk the siblings and move a hit to the
 * front, or create the node, resolving the function (which may call into
 * Python: the caller has saved any pending exception). Past the node limit,
 * calls fold into one "[truncated]" child per parent, and everything below a
 * truncated node folds into it. Returns NULL on allocation failure. */
static inline det_node_t *hyp__det_child(det_prof_t *p, det_thread_t *th, det_node_t *parent,
                                         const void *key, PyObject *callable,
                                         PyObject *self_arg) {
    det_tree_t *t = &th->tree;
    det_node_t *n;
    det_func_t *f;

    if (DET_UNLIKELY(th->name_pending))
        hyp__det_thread_name(th); /* also when every call of the thread is folded */
    if (parent->truncated)
        return parent;
    n = hyp__det_kid_find(t, parent, key);
    if (n != NULL)
        return parent->hot = n;
    if (p->max_nodes != 0 && p->nodes >= p->max_nodes) {
        p->truncated++;
        n = hyp__det_kid_find(t, parent, &p->trunc_func);
        if (n != NULL)
            return parent->hot = n;
        n = hyp__det_node_link(t, parent, &p->trunc_func, p->trunc_func, p->trunc_func->index);
        if (n != NULL)
            n->truncated = 1;
        return n;
    }
    if (callable == NULL)
        f = hyp__det_py_func(p, (PyCodeObject *)key);
    else if (callable == DET_SPECIAL_CALLABLE)
        f = hyp__det_special_func(p, (PyObject *)key);
    else
        f = hyp__det_c_func(p, (PyMethodDef *)key, callable, self_arg);
    if (f == NULL)
        return NULL;
    n = hyp__det_node_link(t, parent, key, f, f->index);
    if (n != NULL)
        p->nodes++;
    return n;
}

/* Enters a call of key (a code object; a PyMethodDef when callable is a C
 * function; the special function's name when it is DET_SPECIAL_CALLABLE,
 * det_special.c). gen_frame is the frame of a generator or coroutine (NULL
 * otherwise); fresh says whether it starts rather than resumes. */
static inline void hyp__det_enter(det_prof_t *p, det_thread_t *th, const void *key,
                                  PyObject *callable, PyObject *self_arg, const void *gen_frame,
                                  int fresh, uint64_t wall, uint64_t cpu) {
    det_tree_t *t = &th->tree;
    det_node_t *parent, *n;
    det_gen_t g;
    int resumed = 0;

    if (DET_UNLIKELY(t->lost != 0 || t->depth == t->cap)) {
        if (t->lost != 0 || hyp__det_stack_grow(t) != 0) {
            t->lost++;
            hyp__det_set_error(p, HYP_ENOMEM);
            return;
        }
    }
    if (DET_UNLIKELY(gen_frame != NULL) && !fresh && hyp__det_gens_take(&p->gens, gen_frame, &g)) {
        n = g.node;
        resumed = 1;
    } else {
        parent = hyp__det_tree_top(t);
        n = parent->hot;
        if (DET_UNLIKELY(n == NULL || n->key != key)) {
            HYP_PY_EXC_SAVE(exc);
            n = hyp__det_child(p, th, parent, key, callable, self_arg);
            HYP_PY_EXC_RESTORE(exc);
            if (n == NULL) {
                t->lost++;
                hyp__det_set_error(p, HYP_ENOMEM);
                return;
            }
        }
    }
    /* n's function is below top_cap: hyp__det_func_new() and
     * hyp__det_thread_slow() see to it. */
    if (DET_UNLIKELY(hyp__det_tree_push(
                         t, n, key, gen_frame, resumed ? &g : NULL,
                         gen_frame != NULL &&
                             (((PyCodeObject *)key)->co_flags & DET_LIFETIME_FLAGS) != 0,
                         wall, cpu) != 0))
        hyp__det_set_error(p, HYP_ENOMEM); /* stop() reports it; the call still counts */
}

/* Leaves the call of key (det_tree.h's hyp__det_tree_leave), counting a
 * return that matched no open call. */
static inline void hyp__det_leave(det_prof_t *p, det_thread_t *th, const void *key, int suspend,
                                  uint64_t wall, uint64_t cpu) {
    if (DET_UNLIKELY(hyp__det_tree_leave(&th->tree, &p->gens, key, suspend, wall, cpu)))
        p->unmatched++;
}

#endif
