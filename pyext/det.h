/* pyext/det.h: internal to the _hyprof extension; not API.
 *
 * The deterministic mode's profiler, hyprof._hyprof.DetProfiler, and what
 * its files share. Every Python call and, by default, every call of a C
 * function lands in a per-thread calling-context tree (det_tree.h, plain C);
 * the tree is turned into a hyp_profile_t only when the profile is read
 * (det_export.c). Times are kept in wall-clock ticks (include/hyprof/clock.h)
 * until then.
 *
 * The files, by idea:
 *   det.c            the Python type: options, methods, counters
 *   det_tree.[ch]    the call tree, its stack, children table, recursion
 *                    records and suspended instances (no Python)
 *   det_func.c       the functions a profile counts: code objects through
 *                    their co_extra slot, C functions by PyMethodDef and the
 *                    name cProfile gives them
 *   det_hot.h        the call hot path both engines inline: thread lookup,
 *                    the context-bound profilers' pick, enter and leave
 *   det_setprofile.c the setprofile engine: the C profile function, the
 *                    threading bootstrap, installing and removing the hooks
 *   det_monitoring.c the sys.monitoring engine (3.12+)
 *   det_session.c    start/stop, threads, the context-bound profilers' group
 *   det_omit.c       leaving hyprof's own code out of the trees at stop
 *   det_special.c    calls of special functions: garbage collections, lock waits
 *   det_export.c     the trees to a hyp_profile_t
 * Names that cross files begin with hyp__det_; each file's own are short. */
#ifndef HYPROF_PYEXT_DET_H
#define HYPROF_PYEXT_DET_H

#include "pyhyprof.h"

#include "det_tree.h"
#include "gcwatch.h"

#include <stdint.h>

/* A special function is one hyprof makes: "[truncated]", "[gc] generation N". */
enum { DET_FUNC_PYTHON = 0, DET_FUNC_BUILTIN = 1, DET_FUNC_SPECIAL = 2 };
enum { DET_ENGINE_SETPROFILE = 0, DET_ENGINE_MONITORING = 1 };

#define DET_TOOL_ID 2 /* sys.monitoring.PROFILER_ID */

/* A function: a code object (held, so its address cannot be reused while the
 * profile lives) or a C function's PyMethodDef with the name cProfile gives
 * it. */
struct det_func_s {
    const void *key;
    PyObject *code;   /* strong reference, Python functions only */
    PyObject *name;   /* strong reference, C functions and "[truncated]" */
    uint32_t kind;
    uint32_t export_id;
    uint32_t index;   /* in the profiler's funcs[], and the threads' top[] */
};

typedef struct det_thread_s {
    struct det_thread_s *next;
    uint64_t session;
    det_tree_t tree;          /* the tree and the stack of open calls */
    hyp_cpu_clock_t cpu;
    int cpu_err;
    PyThreadState *tstate;
    unsigned long ident;
    uint64_t os_tid;
    char name[64];
    int name_pending;         /* threading did not know the thread yet */
    uint64_t last_wall, last_cpu;
    /* Threads holding a stack and a CPU clock, swept of the dead ones when a
     * thread registers and at stop(), so short-lived threads do not pile up
     * resources; a dead thread keeps only its tree. */
    struct det_thread_s *live_next;
    int live;
} det_thread_t;

typedef struct {
    PyObject_HEAD
    int builtins;
    int locks;                /* contended lock waits are calls (locks.h) */
    int exceptions;           /* raises are calls (exceptions.h) */
    int engine;
    int cpu_flags;
    int running;
    int error;                /* sticky HYP_E*: set on the hot path, raised by stop() */
    uint64_t session;
    size_t max_nodes, nodes;
    uint64_t truncated;
    uint64_t unmatched;       /* returns that matched no open call */
    det_thread_t *threads;
    size_t nthreads;
    det_thread_t *live;       /* threads holding resources (live_next list) */
    size_t nlive;
    /* Functions, in creation order. */
    det_func_t **funcs;
    size_t nfuncs, funcs_cap;
    /* C functions by PyMethodDef pointer: open addressing. */
    det_func_t **ctab;
    size_t ctab_cap, ctab_used;
    det_gens_t gens;          /* suspended generators and coroutines by frame */
    det_func_t *trunc_func;
    hyp_gc_totals_t gc_base;  /* the collections' totals at start() */
    hyp_gc_totals_t gc_run;   /* ...and over the runs so far */
    uint64_t wall_start, wall_total; /* ticks */
    double ns_per_tick;       /* the clock's rate at the last stop(): every export agrees */
    double unix_start;
    PyObject *bootstrap;      /* threading.setprofile() hook for new threads */
    PyObject *callbacks;      /* sys.monitoring callables, a tuple */
    PyObject *missing;        /* sys.monitoring.MISSING */
    PyObject *replaced;       /* names of threads whose hook was replaced, a list */
    PyObject *weakrefs;
    PyObject *hidden;         /* code objects of the Python wrappers' stop path, a tuple */
    PyObject *omit_cut;       /* code objects left out with their callees at stop, a tuple */
    PyObject *omit_skip;      /* ...and left out alone (their callees move up), a tuple */
    PyObject *ctx_var;        /* context filter: a ContextVar, or NULL for none */
    PyObject *ctx_value;      /* ...and the value it must hold for an event to count */
    PyObject *argv;           /* a copy of sys.argv at the first start(), or NULL */
} det_prof_t;

/* The first error of a run, which stop() raises. */
static inline void hyp__det_set_error(det_prof_t *p, int err) {
    if (p->error == 0)
        p->error = err;
}

/* ------------------------------------------------------------ det.c */
int hyp_py_det_init(PyObject *module);

/* ------------------------------------------------------------ det_func.c */
/* Takes the co_extra slot and registers its free function, once; 0, or -1
 * with an exception set. */
int hyp__det_func_init(void);
/* A new function of p for key (NULL with no memory); every live thread's
 * top[] grows to hold it. */
det_func_t *hyp__det_func_new(det_prof_t *p, const void *key, uint32_t kind);
/* The function of a code object, or of a C function with its callable (and
 * the self of a method descriptor's call, or NULL), made at its first call;
 * NULL with no memory, no Python exception left set. */
det_func_t *hyp__det_py_func(det_prof_t *p, PyCodeObject *co);
det_func_t *hyp__det_c_func(det_prof_t *p, PyMethodDef *ml, PyObject *callable,
                            PyObject *self_arg);
/* Frees p's functions and their table. */
void hyp__det_funcs_free(det_prof_t *p);
/* p's table of functions by key (C and special functions): the function of
 * key or NULL, and adding one (0 or HYP_ENOMEM). */
det_func_t *hyp__det_ctab_find(det_prof_t *p, const void *key);
int hyp__det_ctab_add(det_prof_t *p, det_func_t *f);

/* ------------------------------------------------------------ det_session.c */
/* The one active profiler without a context (it excludes every other
 * profiler, on all threads), and the session count: each start(), stop()
 * and new profiler takes the next number. */
extern det_prof_t *hyp__det_active;
extern uint64_t hyp__det_sessions;

/* The calling thread's state for the profiler it last recorded into. The
 * session number tells a thread state left over from an earlier start()
 * from a current one without touching it. initial-exec keeps the lookup a
 * single load from the thread pointer. */
typedef struct {
    uint64_t session;
    det_thread_t *th;
} det_tls_t;
extern __thread det_tls_t hyp__det_tls __attribute__((tls_model("initial-exec")));

/* The context-bound profilers running at once (DetProfiler(context=(var,
 * value))): they share one ContextVar and one engine, whose hooks are
 * installed while at least one runs, and each event goes to the profiler
 * whose value the variable holds in the running context, or to none. The
 * generation changes at every start and stop, so a thread's cached choice
 * (hyp__det_pick) is checked with one compare. */
typedef struct {
    det_prof_t **profs;       /* strong references */
    size_t n, cap;
    PyObject *var;            /* the shared ContextVar, strong */
    int engine;
    uint64_t gen;
    PyObject *bootstrap;      /* threading.setprofile() hook for new threads */
    PyObject *callbacks;      /* sys.monitoring callables, a tuple */
    long mask;                /* sys.monitoring events set */
} det_group_t;
extern det_group_t hyp__det_group;

/* The calling thread's last choice: the variable's value it was made for
 * (borrowed: a running profiler holds its value, and a value with no
 * profiler cannot become one's without a generation change), the profiler
 * (NULL for none) and the thread's state in it. */
typedef struct {
    uint64_t gen;
    PyObject *value;
    det_prof_t *p;
    det_thread_t *th;
} det_pick_t;
extern __thread det_pick_t hyp__det_pick_tls __attribute__((tls_model("initial-exec")));

/* Registers the fork handler, once; 0, or -1 with an exception set. */
int hyp__det_session_init(void);
/* The calling thread's state in p, registered (or made live again) now;
 * NULL with no memory. Called with the GIL held and any pending exception
 * saved. */
det_thread_t *hyp__det_thread_slow(det_prof_t *p);
/* Looks up threading's name of th (again while threading does not know it). */
void hyp__det_thread_name(det_thread_t *th);
/* The context-bound profiler of the running context, and the thread's state
 * in it, when the cached choice does not stand. */
det_prof_t *hyp__det_pick_slow(det_thread_t **pth);
/* start() and stop(); stop_key is the key stop()'s own C call has in the
 * trees, dropped from the profile. */
PyObject *hyp__det_start(det_prof_t *p);
PyObject *hyp__det_stop(det_prof_t *p, const void *stop_key);
/* Frees p's threads and their trees. */
void hyp__det_threads_free(det_prof_t *p);

/* ------------------------------------------------------------ det_setprofile.c */
/* The profile function of the context-bound profilers. */
int hyp__det_ctx_tracefunc(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg);
/* Installs p's hooks on every thread and threading's for new ones (0, or
 * -1 with an exception and nothing installed), and removes them, naming in
 * p->replaced the threads where another tool had replaced them. */
int hyp__det_setprofile_start(det_prof_t *p);
void hyp__det_setprofile_stop(det_prof_t *p);
/* The same for the context-bound profilers' group. */
int hyp__det_setprofile_group_start(void);
void hyp__det_setprofile_group_stop(PyObject *replaced);
/* A foreign profile function, for the refusal message. */
PyObject *hyp__det_describe_profiler(PyThreadState *ts);
/* threading.getprofile(), a new reference; NULL with no exception if it
 * cannot be read. */
PyObject *hyp__det_threading_getprofile(void);

/* ------------------------------------------------------------ det_monitoring.c */
#if PY_VERSION_HEX >= 0x030C0000
/* Takes the profiler tool id for p, registers its callbacks and sets its
 * events (0, or -1 with an exception); gives them all back (p may be NULL:
 * the group's). */
int hyp__det_monitoring_start(det_prof_t *p);
void hyp__det_monitoring_stop(det_prof_t *p);
/* Sets the events the context-bound profilers need (those of the running
 * ones and of joining, which may be NULL), taking the tool id and
 * registering the callbacks the first time. */
int hyp__det_monitoring_group_set(det_prof_t *joining);
/* The name of the tool holding the profiler's sys.monitoring id, or NULL. */
PyObject *hyp__det_monitoring_owner(void);
#endif

/* ------------------------------------------------------------ det_special.c */
/* The callable hyp__det_enter() is given for a special function's call, whose
 * key is the function's name (a str that outlives the call). */
extern const char hyp__det_special_marker;
#define DET_SPECIAL_CALLABLE ((PyObject *)&hyp__det_special_marker)
/* The special function named name in p, made at its first call (NULL with no
 * memory). */
det_func_t *hyp__det_special_func(det_prof_t *p, PyObject *name);
/* A special function's call entered, for its leave. */
typedef struct {
    det_prof_t *p; /* strong; NULL: nothing was entered */
    uint64_t session;
    const void *key;
} det_special_t;
/* What a special call stands for: a profiler records locks and exceptions
 * only when it was made with locks=True or exceptions=True. */
enum { DET_SPECIAL_GC = 0, DET_SPECIAL_LOCK = 1, DET_SPECIAL_EXCEPTION = 2 };
/* Enters a call of the special function name on the calling thread, in the
 * profiler that records it now if it asked for what = DET_SPECIAL_* (none:
 * nothing, 0 returned), and leaves it; a leave counts only in the run, and
 * on the thread, that entered it. With the GIL, no exception pending. */
int hyp__det_special_enter(int what, PyObject *name, det_special_t *tok);
void hyp__det_special_leave(det_special_t *tok);
/* Records a finished call of the special function name that lasted ticks
 * (wall clock ticks, as its cumulative time; no own or CPU time: the thread
 * ran other code meanwhile), as hyp__det_special_enter() would have
 * entered it: for a wait that happened while the caller's task was
 * suspended (an asyncio lock's). It goes under the call of callee (a key)
 * that the nearest open call of caller made last, which has returned and
 * whose cumulative time spans the wait (a coroutine's), or under caller's
 * call without one, or under the top call without caller on the stack. */
void hyp__det_special_record(int what, PyObject *name, uint64_t ticks, const void *caller,
                             const void *callee);

/* ------------------------------------------------------------ det_omit.c */
/* Takes the nodes of the code objects omit() named out of p's trees. */
void hyp__det_omit_nodes(det_prof_t *p);

/* ------------------------------------------------------------ det_export.c */
/* Builds a profile from p's trees. Returns NULL with a Python exception set
 * on failure; the caller owns the profile. */
hyp_profile_t *hyp__det_export(det_prof_t *p);

#endif
