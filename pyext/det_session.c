/* pyext/det_session.c: the deterministic profilers' runs. The session
 * state (the one active profiler without a context, the session count, the
 * calling thread's cached state), the threads (registered at their first
 * event, named after threading's name, swept of the dead ones), the
 * context-bound profilers' group and its pick, start() with its refusal to
 * run over another profiler, and stop(): it removes the hooks, drops the
 * stop path's own calls, closes every open call, takes omitted code out
 * (det_omit.c), rebuilds the children tables of reshaped trees and raises
 * the run's sticky error. */
#include "det_hot.h"
#include "exceptions.h"
#include "locks.h"

#include "hyprof/internal/util.h"

#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

det_prof_t *hyp__det_active;
uint64_t hyp__det_sessions;
__thread det_tls_t hyp__det_tls __attribute__((tls_model("initial-exec")));
det_group_t hyp__det_group = {NULL, 0, 0, NULL, 0, 1, NULL, NULL, 0};
__thread det_pick_t hyp__det_pick_tls __attribute__((tls_model("initial-exec")));

/* A forked child is another thread (new tid) whose CPU clock must be its own:
 * the inherited perf page still follows the parent's thread. Forgetting the
 * thread-local state makes the child's next event register it afresh. */
static void hyp__det_atfork_child(void) {
    hyp__det_tls.session = 0;
    hyp__det_tls.th = NULL;
    hyp__det_pick_tls.gen = 0;
    hyp__det_pick_tls.p = NULL;
    hyp__det_pick_tls.th = NULL;
}

/* ----------------------------------------------------------------- threads */

void hyp__det_thread_name(det_thread_t *th) {
    PyObject *name;
    const char *s;

    /* A thread's first events can come before threading registers it; the
     * name is looked up again when its next call path is created, and stays
     * empty (as every producer writes a thread threading does not know) if
     * it never is. This runs in the profile hook: the name is read without
     * running Python code. */
    th->name_pending = th->name_pending == 0 ? 256 : th->name_pending - 1;
    if ((name = hyp_py_thread_name(hyp_py_thread_object(NULL, th->ident))) == NULL)
        return;
    if ((s = PyUnicode_AsUTF8(name)) != NULL) {
        snprintf(th->name, sizeof th->name, "%s", s);
        th->name_pending = 0;
    }
    PyErr_Clear();
    Py_DECREF(name);
}

/* Whether th's thread still runs in interp. */
static int hyp__thread_alive(PyInterpreterState *interp, det_thread_t *th) {
    PyThreadState *ts;

    for (ts = PyInterpreterState_ThreadHead(interp); ts != NULL; ts = PyThreadState_Next(ts))
        if (ts->thread_id == th->ident && (uint64_t)ts->native_thread_id == th->os_tid)
            return 1;
    return 0;
}

/* Frees the stack and the CPU clock of the threads that have ended (their
 * calls all returned; any left open are closed at their last event). */
static void hyp__sweep_dead_threads(det_prof_t *p) {
    PyInterpreterState *interp = PyThreadState_Get()->interp;
    det_thread_t **pp = &p->live, *th;

    while ((th = *pp) != NULL) {
        if (hyp__thread_alive(interp, th)) {
            pp = &th->live_next;
            continue;
        }
        *pp = th->live_next;
        th->live_next = NULL;
        th->live = 0;
        p->nlive--;
        while (th->tree.depth != 0)
            hyp__det_tree_pop(&th->tree, &p->gens, th->last_wall, th->last_cpu, 0);
        hyp_cpu_clock_destroy(&th->cpu);
        hyp__det_stack_close(&th->tree);
    }
}

det_thread_t *hyp__det_thread_slow(det_prof_t *p) {
    unsigned long ident = PyThread_get_thread_ident();
    uint64_t tid = (uint64_t)syscall(SYS_gettid);
    det_thread_t *th;

    for (th = p->threads; th != NULL; th = th->next)
        if (th->ident == ident && th->os_tid == tid)
            break;
    if (th == NULL || !th->live)
        hyp__sweep_dead_threads(p);
    if (th == NULL) {
        th = hyp__calloc(1, sizeof *th);
        if (th == NULL)
            return NULL;
        th->ident = ident;
        th->os_tid = tid;
        hyp__det_thread_name(th);
        th->next = p->threads;
        p->threads = th;
        p->nthreads++;
    }
    if (!th->live) {
        /* A new thread, or one whose ident and tid a dead one had. */
        if (hyp__det_stack_open(&th->tree, p->nfuncs) != 0)
            return NULL;
        hyp_cpu_clock_init(&th->cpu, p->cpu_flags, &th->cpu_err);
        th->live = 1;
        th->live_next = p->live;
        p->live = th;
        p->nlive++;
    }
    th->tstate = PyThreadState_Get();
    th->session = p->session;
    hyp__det_tls.session = p->session;
    hyp__det_tls.th = th;
    return th;
}

/* The calling thread's state in p if it has one for this run, else NULL. */
static det_thread_t *hyp__thread_find(det_prof_t *p) {
    unsigned long ident;
    uint64_t tid;
    det_thread_t *th = hyp__det_thread_get(p);

    if (th != NULL)
        return th;
    ident = PyThread_get_thread_ident();
    tid = (uint64_t)syscall(SYS_gettid);
    for (th = p->threads; th != NULL; th = th->next) {
        if (th->ident == ident && th->os_tid == tid && th->live && th->session == p->session &&
            th->tstate == PyThreadState_Get()) {
            hyp__det_tls.session = p->session;
            hyp__det_tls.th = th;
            return th;
        }
    }
    return NULL;
}

/* The calling thread's state in p, made at its first event there; NULL when
 * it cannot be allocated. Called with the GIL held. */
static det_thread_t *hyp__thread_of(det_prof_t *p) {
    det_thread_t *th = hyp__thread_find(p);

    if (th != NULL)
        return th;
    HYP_PY_EXC_SAVE(exc);
    th = hyp__det_thread_slow(p);
    HYP_PY_EXC_RESTORE(exc);
    return th;
}

/* ------------------------------------------------- context-bound profilers */

det_prof_t *hyp__det_pick_slow(det_thread_t **pth) {
    PyContextVar *var = (PyContextVar *)hyp__det_group.var;
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
    for (i = 0; v != NULL && i < hyp__det_group.n; i++) {
        if (hyp__det_group.profs[i]->ctx_value == v) {
            p = hyp__det_group.profs[i];
            break;
        }
    }
    if (p != NULL && (th = hyp__thread_of(p)) == NULL) {
        hyp__det_set_error(p, HYP_ENOMEM);
        Py_DECREF(v);
        return NULL;
    }
    if (v != NULL && var->var_cached == v && var->var_cached_tsid == ts->id &&
        var->var_cached_tsver == ts->context_ver) {
        hyp__det_pick_tls.gen = hyp__det_group.gen;
        hyp__det_pick_tls.value = v;
        hyp__det_pick_tls.p = p;
        hyp__det_pick_tls.th = th;
    }
    Py_XDECREF(v);
    *pth = th;
    return p;
}

/* Adds a context-bound profiler to the running ones, installing the hooks
 * for the first. On error nothing is changed and an exception is set. */
static int hyp__group_join(det_prof_t *p) {
    if (hyp__det_group.n == hyp__det_group.cap &&
        hyp__grow((void **)&hyp__det_group.profs, &hyp__det_group.cap, hyp__det_group.n + 1,
                  sizeof *hyp__det_group.profs) != 0) {
        PyErr_NoMemory();
        return -1;
    }
    if (hyp__det_group.n == 0) {
        /* The variable first: a hook may run before this returns. */
        hyp__det_group.var = Py_NewRef(p->ctx_var);
        hyp__det_group.engine = p->engine;
        if (p->engine == DET_ENGINE_MONITORING) {
#if PY_VERSION_HEX >= 0x030C0000
            if (hyp__det_monitoring_group_set(p) < 0)
                goto fail;
#endif
        } else {
            if (hyp__det_setprofile_group_start() < 0)
                goto fail;
        }
    } else if (p->engine == DET_ENGINE_MONITORING) {
#if PY_VERSION_HEX >= 0x030C0000
        if (hyp__det_monitoring_group_set(p) < 0)
            return -1;
#endif
    }
    hyp__det_group.profs[hyp__det_group.n++] = (det_prof_t *)Py_NewRef((PyObject *)p);
    hyp__det_group.gen++;
    return 0;
fail:
    Py_CLEAR(hyp__det_group.var);
    return -1;
}

/* Removes p from the running context-bound profilers, removing the hooks
 * with the last one. The reference the group held passes to the caller. */
static void hyp__group_leave(det_prof_t *p) {
    size_t i;

    for (i = 0; i < hyp__det_group.n && hyp__det_group.profs[i] != p; i++)
        ;
    if (i == hyp__det_group.n)
        return;
    memmove(&hyp__det_group.profs[i], &hyp__det_group.profs[i + 1],
            (hyp__det_group.n - i - 1) * sizeof *hyp__det_group.profs);
    hyp__det_group.n--;
    hyp__det_group.gen++;
    HYP_PY_EXC_SAVE(exc);
    if (hyp__det_group.n != 0) {
#if PY_VERSION_HEX >= 0x030C0000
        /* The C events may no longer be needed. */
        if (hyp__det_group.engine == DET_ENGINE_MONITORING && hyp__det_monitoring_group_set(NULL) < 0)
            PyErr_Clear();
#endif
    } else if (hyp__det_group.engine == DET_ENGINE_MONITORING) {
#if PY_VERSION_HEX >= 0x030C0000
        hyp__det_monitoring_stop(NULL);
        hyp__det_group.mask = 0;
#endif
    } else {
        hyp__det_setprofile_group_stop(p->replaced);
    }
    if (hyp__det_group.n == 0)
        Py_CLEAR(hyp__det_group.var);
    HYP_PY_EXC_RESTORE(exc);
}

/* ------------------------------------------------------------ start / stop */

/* Refuses to start over another profiler: hyprof never silently replaces a
 * profile function, nor takes a monitoring tool id that is in use. */
static int hyp__check_foreign(det_prof_t *p) {
    PyInterpreterState *interp = PyThreadState_Get()->interp;
    PyThreadState *ts;
    PyObject *hook;

    if (p->running) {
        PyErr_SetString(hyp_py_profiler_error(), "this profiler is already running");
        return -1;
    }
    if (hyp__det_active != NULL) {
        PyErr_SetString(hyp_py_profiler_error(),
                        "another hyprof profiler is already running; stop it before starting "
                        "this one (a profiler without a context runs alone, on all threads)");
        return -1;
    }
    if (hyp__det_group.n != 0 && p->ctx_var == NULL) {
        PyErr_Format(hyp_py_profiler_error(),
                     "%zu hyprof profiler(s) bound to a context are running; a profiler without "
                     "a context cannot run beside them: stop them first, or give this one a "
                     "context=(var, value) of its own",
                     hyp__det_group.n);
        return -1;
    }
    if (hyp__det_group.n != 0) {
        /* Joining the running context-bound profilers: the hooks, the tool
         * id and threading's hook are already theirs. */
        if (p->ctx_var != hyp__det_group.var) {
            PyErr_Format(hyp_py_profiler_error(),
                         "context-bound profilers running at the same time must share one "
                         "ContextVar (each with its own value): %R is running, not %R",
                         hyp__det_group.var, p->ctx_var);
            return -1;
        }
        if (p->engine != hyp__det_group.engine) {
            PyErr_Format(hyp_py_profiler_error(),
                         "context-bound profilers running at the same time must use one engine: "
                         "'%s' is running",
                         hyp__det_group.engine == DET_ENGINE_MONITORING ? "monitoring" : "setprofile");
            return -1;
        }
        for (size_t i = 0; i < hyp__det_group.n; i++) {
            if (hyp__det_group.profs[i]->ctx_value == p->ctx_value) {
                PyErr_Format(hyp_py_profiler_error(),
                             "another profiler bound to the same context value (%R) is running: "
                             "each event goes to one profiler, so each needs its own value",
                             p->ctx_value);
                return -1;
            }
        }
    }
    for (ts = PyInterpreterState_ThreadHead(interp); ts != NULL; ts = PyThreadState_Next(ts)) {
        if (ts->c_profilefunc != NULL &&
            !(hyp__det_group.n != 0 && ts->c_profilefunc == hyp__det_ctx_tracefunc)) {
            PyObject *who = hyp__det_describe_profiler(ts);
            PyErr_Format(hyp_py_profiler_error(),
                         "cannot start: thread %lu already has a profile function (%U); hyprof "
                         "does not replace another profiler; stop it first",
                         (unsigned long)ts->thread_id, who != NULL ? who : Py_None);
            Py_XDECREF(who);
            return -1;
        }
    }
    if (hyp__det_group.n != 0)
        return 0;
#if PY_VERSION_HEX >= 0x030C0000
    {
        PyObject *owner = hyp__det_monitoring_owner();
        if (owner != NULL) {
            PyErr_Format(hyp_py_profiler_error(),
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
    hook = hyp__det_threading_getprofile();
    if (hook == NULL)
        return 0;
    if (hook != Py_None) {
        PyErr_Format(hyp_py_profiler_error(),
                     "cannot start: threading.setprofile() holds another profile function (%R) "
                     "for new threads; hyprof does not replace another profiler",
                     hook);
        Py_DECREF(hook);
        return -1;
    }
    Py_DECREF(hook);
    return 0;
}

/* What start() took besides the hooks: the gc callback, the lock types. */
static void hyp__release_watches(det_prof_t *p) {
    hyp_py_gc_release(0);
    if (p->locks)
        hyp_py_locks_det_release();
    if (p->exceptions)
        hyp_py_exc_det_release();
}

PyObject *hyp__det_start(det_prof_t *p) {
    if (hyp__check_foreign(p) < 0)
        return NULL;
    if (hyp_clock_init(0) != 0) {
        PyErr_SetString(hyp_py_profiler_error(), "cannot initialise the clocks");
        return NULL;
    }
    p->session = ++hyp__det_sessions;
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
    if (hyp_py_gc_retain(0) < 0)
        return NULL;
    if (p->locks && hyp_py_locks_det_retain() < 0) {
        hyp_py_gc_release(0);
        return NULL;
    }
    if (p->exceptions && hyp_py_exc_det_retain() < 0) {
        hyp_py_gc_release(0);
        if (p->locks)
            hyp_py_locks_det_release();
        return NULL;
    }
    hyp_py_gc_totals(&p->gc_base);
    if (p->ctx_var != NULL) {
        /* The group holds the reference hyp__det_active would. */
        if (hyp__group_join(p) < 0) {
            hyp__release_watches(p);
            return NULL;
        }
        p->running = 1;
        Py_RETURN_NONE;
    }
    if (p->engine == DET_ENGINE_MONITORING) {
#if PY_VERSION_HEX >= 0x030C0000
        if (hyp__det_monitoring_start(p) < 0) {
            hyp__release_watches(p);
            return NULL;
        }
#endif
    } else {
        if (hyp__det_setprofile_start(p) < 0) {
            hyp__release_watches(p);
            return NULL;
        }
    }
    Py_INCREF(p);
    hyp__det_active = p;
    p->running = 1;
    Py_RETURN_NONE;
}

/* Drops the calls of the stopping path itself (the C stop() and the Python
 * wrappers named by hide()) from the top of the calling thread's stack: they
 * are the profiler's, not the program's. A call path entered only by them
 * leaves the tree, so that no report shows it. */
static void hyp__drop_stop_frames(det_prof_t *p, const void *stop_key) {
    det_thread_t *th = hyp__thread_find(p);

    while (th != NULL && th->tree.depth != 0) {
        det_frame_t *f = &th->tree.stack[th->tree.depth - 1];
        det_node_t *n = f->node;
        int hidden = f->key == stop_key;
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
        th->tree.top[n->fidx] = f->prev_same;
        th->tree.depth--;
        if (f->gen_frame == NULL && n->calls == 0 && n->wall_cum == 0 && n->cpu_cum == 0 &&
            !n->truncated && n != &th->tree.root) {
            hyp__det_node_unlink(n);
            th->tree.reshaped = 1;
        }
    }
}

/* After the stop path's and omit()'s nodes left the trees, the lookups of
 * the next start() must not find them: each reshaped tree's table of
 * children and its last-found children are made again from the tree. */
static void hyp__reindex_trees(det_prof_t *p) {
    det_thread_t *th;

    for (th = p->threads; th != NULL; th = th->next) {
        if (!th->tree.reshaped)
            continue;
        th->tree.reshaped = 0;
        if (hyp__det_kids_rebuild(&th->tree) != 0)
            hyp__det_set_error(p, HYP_ENOMEM);
    }
}

/* Closes every open call at stop time: the calling thread's at its clock,
 * other threads' at the wall clock now and their CPU time at their last
 * event (their CPU clock can only be read on their own thread). */
static void hyp__close_open_frames(det_prof_t *p) {
    det_thread_t *me = hyp__thread_find(p), *th;
    uint64_t wall_now = hyp_clock_ticks();

    for (th = p->threads; th != NULL; th = th->next) {
        uint64_t wall, cpu;
        if (th == me) {
            cpu = hyp_cpu_clock_read(&th->cpu, &wall);
        } else {
            wall = wall_now;
            cpu = th->last_cpu;
        }
        while (th->tree.depth != 0) {
            det_frame_t *f = &th->tree.stack[th->tree.depth - 1];
            if (cpu < f->c0)
                cpu = f->c0;
            hyp__det_tree_pop(&th->tree, &p->gens, wall, cpu, 0);
        }
        th->tree.lost = 0;
    }
    /* Instances still suspended keep the time they ran; their next
     * resumption, if any, happens outside this run. */
    hyp__det_gens_clear(&p->gens);
}

PyObject *hyp__det_stop(det_prof_t *p, const void *stop_key) {
    int err;

    if (!p->running) {
        PyErr_SetString(hyp_py_profiler_error(), "the profiler is not running");
        return NULL;
    }
    if (p->ctx_var != NULL) {
        hyp__group_leave(p);
    } else if (p->engine == DET_ENGINE_MONITORING) {
#if PY_VERSION_HEX >= 0x030C0000
        hyp__det_monitoring_stop(p);
#endif
    } else {
        hyp__det_setprofile_stop(p);
    }
    p->running = 0;
    {
        hyp_gc_totals_t now;
        int g;

        hyp__release_watches(p);
        hyp_py_gc_totals(&now);
        for (g = 0; g < HYP_GC_GENS; g++) {
            p->gc_run.collections[g] += now.collections[g] - p->gc_base.collections[g];
            p->gc_run.ns[g] += now.ns[g] - p->gc_base.ns[g];
            p->gc_run.collected[g] += now.collected[g] - p->gc_base.collected[g];
            p->gc_run.uncollectable[g] += now.uncollectable[g] - p->gc_base.uncollectable[g];
        }
    }
    hyp__drop_stop_frames(p, stop_key);
    hyp__close_open_frames(p);
    hyp__det_omit_nodes(p);
    hyp__reindex_trees(p);
    hyp__sweep_dead_threads(p);
    {
        /* Names as they are now: a thread may have been renamed since it
         * registered. */
        det_thread_t *th;
        HYP_PY_EXC_SAVE(exc);
        for (th = p->live; th != NULL; th = th->live_next)
            hyp__det_thread_name(th);
        HYP_PY_EXC_RESTORE(exc);
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
        hyp__det_active = NULL;
        hyp__det_tls.session = 0;
        hyp__det_tls.th = NULL;
    }
    p->session = ++hyp__det_sessions; /* old co_extra slots and thread states stop matching */
    err = p->error;
    p->error = 0;
    /* The reference start() took for hyp__det_active or the group; the caller
     * holds another. */
    Py_DECREF(p);
    if (err != 0) {
        if (err == HYP_ENOMEM)
            return PyErr_NoMemory();
        PyErr_Format(hyp_py_profiler_error(), "profiling failed: %s", hyp_strerror(err));
        return NULL;
    }
    Py_RETURN_NONE;
}

void hyp__det_threads_free(det_prof_t *p) {
    det_thread_t *th, *next;

    for (th = p->threads; th != NULL; th = next) {
        next = th->next;
        hyp__det_tree_free(&th->tree);
        hyp_cpu_clock_destroy(&th->cpu);
        hyp__free(th);
    }
    p->threads = NULL;
    p->nthreads = 0;
}

int hyp__det_session_init(void) {
    static int registered;

    if (registered)
        return 0;
    if (pthread_atfork(NULL, NULL, hyp__det_atfork_child) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "cannot register hyprof's fork handler");
        return -1;
    }
    registered = 1;
    return 0;
}
