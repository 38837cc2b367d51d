/* pyext/det_special.c: calls of special functions in the deterministic
 * mode's trees, for what the program does that is no call of its own: a
 * garbage collection ("[gc] generation N", gcwatch.c) is a call under
 * whatever call was running when it began (a C function that allocated,
 * gc.collect()), and the finalizers it runs are its callees; a wait for a
 * contended lock ("<lock created at FILE:LINE>", locks.c) is a call under
 * the code that acquires it. Either engine records them: both share the
 * trees. An asyncio lock's wait is over before the task that waited runs
 * again: it is recorded afterwards, as a finished call of the time it took
 * under the call that waited (hyp__det_special_record()). */
#include "det_hot.h"

/* The callable hyp__det_enter() is given for a special function's call;
 * its key is the function's name. */
const char hyp__det_special_marker;

det_func_t *hyp__det_special_func(det_prof_t *p, PyObject *name) {
    det_func_t *f = hyp__det_ctab_find(p, name);

    if (f != NULL)
        return f;
    f = hyp__det_func_new(p, name, DET_FUNC_SPECIAL);
    if (f == NULL)
        return NULL;
    f->name = Py_NewRef(name);
    if (hyp__det_ctab_add(p, f) != 0)
        return NULL; /* f stays in funcs[], freed with them */
    return f;
}

/* The profiler recording the calling thread now, and its state there. */
static det_prof_t *hyp__recording(det_thread_t **pth) {
    det_prof_t *p = hyp__det_active;

    if (p != NULL && p->running && p->ctx_var == NULL) {
        *pth = hyp__det_thread_get(p);
        if (*pth == NULL)
            *pth = hyp__det_thread_slow(p);
        return *pth != NULL ? p : NULL;
    }
    if (hyp__det_group.n != 0)
        return hyp__det_pick(pth);
    return NULL;
}

/* Whether p records what (DET_SPECIAL_*). */
static int hyp__asked(const det_prof_t *p, int what) {
    return (what != DET_SPECIAL_LOCK || p->locks) && (what != DET_SPECIAL_EXCEPTION || p->exceptions);
}

int hyp__det_special_enter(int what, PyObject *name, det_special_t *tok) {
    det_thread_t *th = NULL;
    det_prof_t *p;
    uint64_t wall, cpu;

    tok->p = NULL;
    if (hyp__det_active == NULL && hyp__det_group.n == 0)
        return 0;
    HYP_PY_EXC_SAVE(exc);
    p = hyp__recording(&th);
    HYP_PY_EXC_RESTORE(exc);
    if (p == NULL || !hyp__asked(p, what))
        return 0;
    cpu = hyp_cpu_clock_read(&th->cpu, &wall);
    hyp__det_enter(p, th, name, DET_SPECIAL_CALLABLE, NULL, NULL, 1, wall, cpu);
    th->last_wall = wall;
    th->last_cpu = cpu;
    tok->p = (det_prof_t *)Py_NewRef((PyObject *)p);
    tok->session = p->session;
    tok->key = name;
    return 1;
}

void hyp__det_special_leave(det_special_t *tok) {
    det_prof_t *p = tok->p;
    det_thread_t *th;
    uint64_t wall, cpu;

    if (p == NULL)
        return;
    tok->p = NULL;
    /* Only into the run that entered it, on the same thread. */
    if (p->running && p->session == tok->session && (th = hyp__det_thread_get(p)) != NULL) {
        cpu = hyp_cpu_clock_read(&th->cpu, &wall);
        hyp__det_leave(p, th, tok->key, 0, wall, cpu);
        th->last_wall = wall;
        th->last_cpu = cpu;
    }
    Py_DECREF(p);
}

void hyp__det_special_record(int what, PyObject *name, uint64_t ticks, const void *caller,
                             const void *callee) {
    det_thread_t *th = NULL;
    det_prof_t *p;
    det_node_t *under = NULL, *n;
    size_t i;

    if (hyp__det_active == NULL && hyp__det_group.n == 0)
        return;
    HYP_PY_EXC_SAVE(exc);
    p = hyp__recording(&th);
    if (p != NULL && hyp__asked(p, what)) {
        for (i = th->tree.depth; under == NULL && i-- > 0;)
            if (th->tree.stack[i].key == caller)
                under = th->tree.stack[i].node;
        if (under != NULL && !under->truncated) {
            n = hyp__det_kid_find(&th->tree, under, callee);
            under = n != NULL ? n : under;
        }
        if (under == NULL)
            under = hyp__det_tree_top(&th->tree);
        n = hyp__det_child(p, th, under, name, DET_SPECIAL_CALLABLE, NULL);
        if (n == NULL) {
            hyp__det_set_error(p, HYP_ENOMEM);
        } else if (n != under) { /* not folded into a truncated caller */
            /* The thread ran other tasks meanwhile, whose own time that
             * was: the wait is the call's cumulative time, none its own. */
            n->calls++;
            n->wall_cum += ticks;
        }
    }
    HYP_PY_EXC_RESTORE(exc);
}
