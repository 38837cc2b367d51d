/* pyext/det.h: internal to the _hyprof extension; not API.
 *
 * The deterministic mode's hot-path structures. Every Python call and, by
 * default, every call of a C function lands in a per-thread calling-context
 * tree of det_node_t; the tree is turned into a hyp_profile_t only when the
 * profile is read (det_export.c). Times are kept in wall-clock ticks
 * (include/hyprof/clock.h) until then. */
#ifndef HYPROF_PYEXT_DET_H
#define HYPROF_PYEXT_DET_H

#include "pyhyprof.h"

#include <stdint.h>

enum { DET_FUNC_PYTHON = 0, DET_FUNC_BUILTIN = 1, DET_FUNC_TRUNCATED = 2 };
enum { DET_ENGINE_SETPROFILE = 0, DET_ENGINE_MONITORING = 1 };

/* A function: a code object (held, so its address cannot be reused while the
 * profile lives) or a C function's PyMethodDef with the name cProfile gives
 * it. */
typedef struct {
    const void *key;
    PyObject *code;   /* strong reference, Python functions only */
    PyObject *name;   /* strong reference, C functions and "[truncated]" */
    uint32_t kind;
    uint32_t export_id;
} det_func_t;

/* A calling-context tree node: one call path. Children form a singly linked
 * list kept in most-recently-used order, so the usual lookup is one compare. */
typedef struct det_node_s {
    const void *key;
    struct det_node_s *parent;
    struct det_node_s *first_child;
    struct det_node_s *next_sibling;
    det_func_t *func;
    uint32_t export_id;
    uint32_t truncated;
    uint64_t calls;
    uint64_t wall_own, wall_cum, cpu_own, cpu_cum; /* ticks */
} det_node_t;

/* An open call. A generator or coroutine frame also carries its instance's
 * first entry and the running time of its earlier activations. */
typedef struct {
    const void *key;
    det_node_t *node;
    const void *gen_frame; /* NULL for ordinary calls */
    uint64_t t0, c0;       /* wall and CPU ticks at entry (or resumption) */
    uint64_t child_wall, child_cpu;
    uint64_t first_wall, run_wall;
} det_frame_t;

/* A suspended generator or coroutine instance, keyed by its frame. */
typedef struct {
    const void *frame;
    det_node_t *node;
    uint64_t first_wall, run_wall;
} det_gen_t;

typedef struct det_chunk_s {
    struct det_chunk_s *next;
    size_t used;
    det_node_t nodes[];
} det_chunk_t;

typedef struct det_thread_s {
    struct det_thread_s *next;
    uint64_t session;
    det_frame_t *stack;
    size_t depth, cap;
    size_t lost;              /* open calls whose push failed (no memory) */
    det_node_t root;
    det_chunk_t *chunks;
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
    int engine;
    int cpu_flags;
    int running;
    int error;                /* sticky HYP_E*: set on the hot path, raised by stop() */
    uint64_t session;
    size_t max_nodes, nodes;
    uint64_t truncated;
    uint64_t unmatched;       /* returns that matched no open call */
    uint64_t gens_lost;       /* suspended instances the table had no room for */
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
    /* Suspended generators by frame: open addressing, backward-shift delete. */
    det_gen_t *gens;
    size_t gens_cap, gens_used;
    det_func_t *trunc_func;
    uint64_t wall_start, wall_total; /* ticks */
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
} det_prof_t;

/* det.c */
int hyp_py_det_init(PyObject *module);
extern PyObject *hyp_py_profiler_error;

/* det_export.c: builds a profile from p's trees. Returns NULL with a Python
 * exception set on failure; the caller owns the profile. */
hyp_profile_t *hyp__det_export(det_prof_t *p);

#endif
