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
    uint32_t index;   /* in the profiler's funcs[], and the threads' top[] */
} det_func_t;

/* The part of a node's calls and cumulative times that was recursive on the
 * live stack: for the function (it was already running on the thread), and
 * for the edge (the same caller -> callee pair was). Allocated at a node's
 * first recursive call, so the nodes that never recurse stay small. */
typedef struct {
    uint64_t calls, wall, cpu;
    uint64_t edge_calls, edge_wall, edge_cpu;
} det_rec_t;

typedef struct det_rec_chunk_s {
    struct det_rec_chunk_s *next;
    size_t used;
    det_rec_t recs[];
} det_rec_chunk_t;

/* A calling-context tree node: one call path. Children form a singly linked
 * list kept in most-recently-used order, so the usual lookup is one compare;
 * the children of a node that has more than a few are also in the thread's
 * table by (parent, key), so a call costs the same however many siblings
 * its node has. */
typedef struct det_node_s {
    const void *key;
    struct det_node_s *parent;
    struct det_node_s *hot;   /* the child found last: the first one compared */
    struct det_node_s *first_child;
    struct det_node_s *next_sibling;
    det_func_t *func;
    uint32_t fidx;        /* func->index, read on every call without a load of func */
    uint32_t export_id;
    uint32_t nkids;
    uint32_t seq : 31;    /* creation order in its thread: exports list children by it */
    uint32_t truncated : 1;
    uint64_t calls;
    uint64_t wall_own, wall_cum, cpu_own, cpu_cum; /* ticks */
    det_rec_t *rec;       /* NULL until the node's first recursive call */
} det_node_t;

/* Recursion of an open call, decided on the thread's live stack. */
enum { DET_REC_FUNC = 1, DET_REC_EDGE = 2 };

/* An open call. A generator or coroutine frame also carries its instance's
 * first entry and the running time of its earlier activations. prev_same
 * links the open calls of one function (1 + the stack index of the next one
 * down, 0 for none), so recursion is one load and an edge check walks only
 * the function's own open calls. */
typedef struct {
    const void *key;
    det_node_t *node;
    const void *gen_frame; /* NULL for ordinary calls */
    uint64_t t0, c0;       /* wall and CPU ticks at entry (or resumption) */
    uint64_t child_wall, child_cpu;
    uint64_t first_wall, run_wall;
    uint32_t prev_same;
    uint8_t rec;           /* DET_REC_* */
    uint8_t lifetime;      /* a coroutine: its cumulative wall time is its life */
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
    /* Per function (det_func_t.index): 1 + the stack index of its topmost
     * open call, 0 when it is not running on this thread. */
    uint32_t *top;
    size_t top_cap;
    size_t lost;              /* open calls whose push failed (no memory) */
    det_node_t root;
    det_chunk_t *chunks;
    det_rec_chunk_t *rec_chunks;
    uint32_t nseq;            /* nodes created, for det_node_t.seq */
    int reshaped;             /* stop() took nodes out of the tree or moved them */
    /* Children of the nodes with more than DET_LIST_MAX, by (parent, key):
     * open addressing, at most half full, never shrunk. */
    det_node_t **kids;
    size_t kids_cap, kids_used;
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

/* det.c */
int hyp_py_det_init(PyObject *module);
extern PyObject *hyp_py_profiler_error;

/* det_export.c: builds a profile from p's trees. Returns NULL with a Python
 * exception set on failure; the caller owns the profile. */
hyp_profile_t *hyp__det_export(det_prof_t *p);

#endif
