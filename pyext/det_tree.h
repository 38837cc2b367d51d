/* pyext/det_tree.h: internal to the _hyprof extension; not API.
 *
 * The deterministic engine's call tree, in plain C: a thread's
 * calling-context tree of det_node_t, its stack of open calls, the children
 * table of the nodes with many children, the recursion records, and the
 * table of suspended generator and coroutine instances. It needs no Python
 * (tests/c/test_det_tree.c builds it alone): a function is an opaque
 * det_func_t the tree only points to, a node's key any address that names
 * its function. Times are ticks, whatever clock the caller reads.
 *
 * What the hook runs on every event is here as static inline (the child
 * lookup, push, pop, leave and the suspended table's take), so that each
 * engine's translation unit inlines it; what runs rarely (node creation, the
 * recursive parts, table growth, the rebuild at stop) is in det_tree.c. */
#ifndef HYPROF_PYEXT_DET_TREE_H
#define HYPROF_PYEXT_DET_TREE_H

#include "hyprof/common.h"

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define DET_LIKELY(x) __builtin_expect(!!(x), 1)
#define DET_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define DET_LIKELY(x) (x)
#define DET_UNLIKELY(x) (x)
#endif

/* A function of the profile (det.h): the tree only compares and stores
 * pointers to it; a node carries the function's index for the stack's
 * per-function table. */
typedef struct det_func_s det_func_t;

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
 * the children of a node that has more than a few are also in the tree's
 * table by (parent, key), so a call costs the same however many siblings
 * its node has. */
typedef struct det_node_s {
    const void *key;
    struct det_node_s *parent;
    struct det_node_s *hot;   /* the child found last: the first one compared */
    struct det_node_s *first_child;
    struct det_node_s *next_sibling;
    det_func_t *func;
    uint32_t fidx;        /* the function's index, read on every call without a load of func */
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

/* The suspended instances by frame: open addressing, at most half full,
 * backward-shift delete. One per profiler: an instance may resume on
 * another thread. */
typedef struct {
    det_gen_t *v;
    size_t cap, used;
    uint64_t lost;            /* suspended instances it had no room for */
} det_gens_t;

typedef struct det_chunk_s {
    struct det_chunk_s *next;
    size_t used;
    det_node_t nodes[];
} det_chunk_t;

/* One thread's tree and its stack of open calls. */
typedef struct {
    det_frame_t *stack;
    size_t depth, cap;
    /* Per function (det_node_t.fidx): 1 + the stack index of its topmost
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
} det_tree_t;

/* Children beyond this many are found through the tree's table. */
#define DET_LIST_MAX 8u

/* ------------------------------------------------------------ det_tree.c */

/* Gives t a stack (and top[] for nfuncs functions); 0 or HYP_ENOMEM, with
 * nothing allocated on failure. */
int hyp__det_stack_open(det_tree_t *t, size_t nfuncs);
/* Frees the stack and top[] of t (its calls must all be closed); the tree
 * stays. */
void hyp__det_stack_close(det_tree_t *t);
/* Doubles the stack; 0 or HYP_ENOMEM. */
int hyp__det_stack_grow(det_tree_t *t);
/* Makes top[] hold nfuncs functions: the hot path indexes it without a
 * bound check. 0 or HYP_ENOMEM. */
int hyp__det_top_grow(det_tree_t *t, size_t nfuncs);
/* Frees everything t holds. */
void hyp__det_tree_free(det_tree_t *t);

/* A new child of parent for key and func (whose index is fidx), first in
 * parent's list and its hot child; NULL when there is no memory (then
 * nothing changed). */
det_node_t *hyp__det_node_link(det_tree_t *t, det_node_t *parent, const void *key,
                               det_func_t *func, uint32_t fidx);
/* Takes n (with everything under it) out of its parent's list; the table
 * still finds it until hyp__det_kids_rebuild(). */
void hyp__det_node_unlink(det_node_t *n);
/* Room in the children table for `more` entries at most half full; 0 or
 * HYP_ENOMEM. */
int hyp__det_kids_reserve(det_tree_t *t, size_t more);
/* Recounts the children of every node of t and refills the table from
 * them, after nodes left the tree or moved to another parent. 0, or
 * HYP_ENOMEM when some node's many children are left to its list. */
int hyp__det_kids_rebuild(det_tree_t *t);

/* A call of n made while its function is open (prev, as in top[]): how it
 * is recursive (DET_REC_*), its node's record made and, for a call (not a
 * resumption), counted; -1 when the record cannot be allocated. */
int hyp__det_enter_rec(det_tree_t *t, uint32_t prev, det_node_t *n, int call);
/* The cold parts of closing a frame f of n after w ticks: a generator or
 * coroutine frame, stored in gens when it suspends, gives what its
 * activation adds to the cumulative wall time; a recursive one adds its
 * times to n's record. */
uint64_t hyp__det_pop_gen(det_gens_t *gens, const det_frame_t *f, det_node_t *n, uint64_t wall,
                          uint64_t w, int suspend);
void hyp__det_pop_rec(det_node_t *n, int rec, uint64_t cum, uint64_t c);

/* Stores a suspended instance, replacing a stale entry of the same frame (an
 * instance that was dropped without a final event, whose memory now holds a
 * new generator); counts it in gens->lost when there is no room. */
void hyp__det_gens_put(det_gens_t *gens, const void *frame, det_node_t *node, uint64_t first,
                       uint64_t run);
/* Forgets every suspended instance (at stop: their next resumption, if
 * any, happens outside the run). */
void hyp__det_gens_clear(det_gens_t *gens);
void hyp__det_gens_free(det_gens_t *gens);

/* ------------------------------------------------------------ hot path */

static inline size_t hyp__det_ptr_hash(const void *p, size_t mask) {
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & mask;
}

static inline size_t hyp__det_kid_hash(const det_node_t *parent, const void *key, size_t mask) {
    uint64_t h = (uint64_t)(uintptr_t)parent * 0x9E3779B97F4A7C15ull ^
                 (uint64_t)(uintptr_t)key * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h ^ h >> 31) & mask;
}

/* The child of parent for key in the table, or NULL. */
static inline det_node_t *hyp__det_kids_find(const det_tree_t *t, const det_node_t *parent,
                                             const void *key) {
    size_t j, mask = t->kids_cap - 1;
    det_node_t *n;

    for (j = hyp__det_kid_hash(parent, key, mask); (n = t->kids[j]) != NULL; j = (j + 1) & mask)
        if (n->parent == parent && n->key == key)
            return n;
    return NULL;
}

/* The child of parent for key, or NULL: the list for a few children, the
 * table for many. A hit in the list moves to its front. */
static inline det_node_t *hyp__det_kid_find(det_tree_t *t, det_node_t *parent, const void *key) {
    det_node_t *prev = NULL, *n;

    if (parent->nkids > DET_LIST_MAX)
        return hyp__det_kids_find(t, parent, key);
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

/* The node of the topmost open call, or the root. */
static inline det_node_t *hyp__det_tree_top(det_tree_t *t) {
    return t->depth != 0 ? t->stack[t->depth - 1].node : &t->root;
}

/* Removes and returns the entry of frame (in *out); 0 if there is none. */
static inline int hyp__det_gens_take(det_gens_t *gens, const void *frame, det_gen_t *out) {
    size_t j, k, mask;

    if (gens->used == 0)
        return 0;
    mask = gens->cap - 1;
    for (j = hyp__det_ptr_hash(frame, mask); gens->v[j].frame != frame; j = (j + 1) & mask)
        if (gens->v[j].frame == NULL)
            return 0;
    *out = gens->v[j];
    /* Backward-shift deletion keeps probe chains whole without tombstones. */
    for (k = (j + 1) & mask; gens->v[k].frame != NULL; k = (k + 1) & mask) {
        size_t home = hyp__det_ptr_hash(gens->v[k].frame, mask);
        if (((k - home) & mask) >= ((k - j) & mask)) {
            gens->v[j] = gens->v[k];
            j = k;
        }
    }
    gens->v[j].frame = NULL;
    gens->used--;
    return 1;
}

/* Opens a call of n (key: its function's) at (wall, cpu). The stack has
 * room and top[] covers n's function. gen_frame is a generator's or
 * coroutine's frame (NULL otherwise); resumed, the instance it resumes
 * (NULL for a call, which counts); lifetime, whether the instance's
 * cumulative wall time is its life. Returns 0, or HYP_ENOMEM when the
 * recursion record could not be made (the call still counts). */
static inline int hyp__det_tree_push(det_tree_t *t, det_node_t *n, const void *key,
                                     const void *gen_frame, const det_gen_t *resumed, int lifetime,
                                     uint64_t wall, uint64_t cpu) {
    uint32_t idx = n->fidx, prev = t->top[idx];
    det_frame_t *f;
    int rec = 0, rc = 0;

    if (DET_UNLIKELY(prev != 0)) {
        rec = hyp__det_enter_rec(t, prev, n, resumed == NULL);
        if (rec < 0) {
            rec = 0;
            rc = HYP_ENOMEM;
        }
    }
    n->calls += resumed == NULL;
    f = &t->stack[t->depth++];
    t->top[idx] = (uint32_t)t->depth;
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
        f->first_wall = resumed != NULL ? resumed->first_wall : wall;
        f->run_wall = resumed != NULL ? resumed->run_wall : 0;
        f->lifetime = (uint8_t)lifetime;
    }
    return rc;
}

/* Closes the top frame at (wall, cpu); a generator's frame that suspends
 * goes to gens. */
static inline void hyp__det_tree_pop(det_tree_t *t, det_gens_t *gens, uint64_t wall, uint64_t cpu,
                                     int suspend) {
    det_frame_t *f = &t->stack[--t->depth];
    det_node_t *n = f->node;
    uint64_t w = wall - f->t0, c = cpu - f->c0, cum;

    if (DET_UNLIKELY(wall < f->t0))
        w = 0;
    cum = w;
    t->top[n->fidx] = f->prev_same;
    n->wall_own += w > f->child_wall ? w - f->child_wall : 0;
    n->cpu_own += c > f->child_cpu ? c - f->child_cpu : 0;
    if (DET_UNLIKELY(f->gen_frame != NULL))
        cum = hyp__det_pop_gen(gens, f, n, wall, w, suspend);
    if (DET_LIKELY(t->depth != 0)) {
        det_frame_t *below = f - 1;
        below->child_wall += w;
        below->child_cpu += c;
        /* Calls folded into their caller's "[truncated]" node are inside its
         * time already. */
        if (DET_UNLIKELY(n->truncated) && below->node == n)
            return;
    }
    n->wall_cum += cum;
    n->cpu_cum += c;
    if (DET_UNLIKELY(f->rec != 0))
        hyp__det_pop_rec(n, f->rec, cum, c);
}

/* Leaves the call of key. A return that matches no open call (the frame was
 * entered before the run) is ignored and returns 1; one that matches a
 * deeper call (an event lost to another tool) closes the calls above it
 * first. Returns 0 otherwise. */
static inline int hyp__det_tree_leave(det_tree_t *t, det_gens_t *gens, const void *key,
                                      int suspend, uint64_t wall, uint64_t cpu) {
    size_t i;

    if (DET_UNLIKELY(t->lost != 0)) {
        t->lost--;
        return 0;
    }
    if (DET_UNLIKELY(t->depth == 0))
        return 0;
    if (DET_LIKELY(t->stack[t->depth - 1].key == key)) {
        hyp__det_tree_pop(t, gens, wall, cpu, suspend);
        return 0;
    }
    for (i = t->depth - 1; i-- > 0;)
        if (t->stack[i].key == key)
            break;
    if (i == (size_t)-1 || t->stack[i].key != key)
        return 1;
    while (t->depth > i + 1)
        hyp__det_tree_pop(t, gens, wall, cpu, 0);
    hyp__det_tree_pop(t, gens, wall, cpu, suspend);
    return 0;
}

#endif
