/* The allocation collector (pyext/alloc.h).
 *
 * Hooks PYMEM_DOMAIN_MEM and PYMEM_DOMAIN_OBJ with PyMem_SetAllocator(),
 * chaining to whatever was installed before (pymalloc, the debug hooks,
 * tracemalloc, another profiler). Both domains are only ever called with the
 * GIL held (Objects/obmalloc.c checks it in debug builds), which is what
 * makes the slow path simple: the live-heap table and the pending records
 * are shared and need no lock.
 *
 * PYMEM_DOMAIN_RAW is not hooked. It is called without the GIL, from threads
 * that may have no thread state at all (and from inside the interpreter's
 * own locks), so a sample could not read a Python stack safely, and the
 * live-heap table would need a lock on every raw free. The raw domain holds
 * few Python-level allocations (large buffers go through the MEM/OBJ domains
 * first), see docs/memory.md.
 *
 * Fast path, per allocation: call the previous allocator, subtract the size
 * from a thread-local countdown, compare. Per free: one load from the
 * live-heap filter. Only when the countdown crosses zero does the hook walk
 * the stack (the sampler's walker, pyext/walk.h), take a reference to each
 * code object (so a code object cannot die and its address be reused before
 * the record is resolved), and draw the next gap. Names and lines are
 * resolved later, outside the hook, with a reentrancy guard set so that
 * hyprof's own allocations are never sampled. */
#include "alloc.h"

#include "det.h" /* hyp_py_profiler_error() */
#include "hyprof/internal/heap.h"
#include "hyprof/internal/util.h"
#include "walk.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__GNUC__)
#define HYP_PY_LIKELY(x) __builtin_expect(!!(x), 1)
#define HYP_PY_TLS __thread __attribute__((tls_model("initial-exec")))
/* Kept out of line, so the hooks' fast path saves no registers for it. */
#define HYP_PY_COLD __attribute__((noinline, cold))
#else
#define HYP_PY_LIKELY(x) (x)
#define HYP_PY_TLS _Thread_local
#define HYP_PY_COLD
#endif

#define HYP_PY_ALLOC_MAX_FRAMES_DEFAULT 128
/* Pending records past which the hook asks the interpreter to resolve them
 * soon (Py_AddPendingCall), so a long run holds a bounded number of records
 * and of code-object references. */
#define HYP_PY_RESOLVE_BATCH 4096
/* A record's live-table tag is its pending index until it is resolved, then
 * this bit with the profile's thread id (bits 32-62) and node id (0-31). */
#define HYP_PY_TAG_RESOLVED (UINT64_C(1) << 63)

const hyp_metric_t hyp_py_alloc_metrics[HYP_PY_ALLOC_NMETRICS] = {
    {"alloc_samples", "count", HYP_METRIC_OWN},
    {"alloc_bytes", "bytes", HYP_METRIC_OWN},
    {"live_samples", "count", HYP_METRIC_OWN},
    {"live_bytes", "bytes", HYP_METRIC_OWN},
};

/* Per-thread state of the fast path. gen is compared with the collector's
 * generation, so a thread that never allocated in this run (or whose
 * countdown was drawn for an earlier run, with another interval) draws a
 * fresh gap before its first sample, and no run inherits a stale countdown. */
typedef struct {
    int64_t countdown;
    uint64_t gen;
    uint64_t rng;
    int64_t saved; /* countdown put aside while the guard is up */
    int guard;     /* > 0 while hyprof itself allocates */
} hyp_py_alloc_tls_t;

static HYP_PY_TLS hyp_py_alloc_tls_t hyp_py_tls;

/* A sampled allocation waiting to be resolved. */
typedef struct {
    uintptr_t ptr;
    uint64_t size;
    uint64_t weight;
    uint64_t time_ns;
    uint64_t ident;  /* threading.get_ident() */
    uint64_t native; /* kernel thread id */
    size_t frame0;   /* first frame in the frames array */
    uint32_t depth;
    uint32_t truncated;
} hyp_py_pending_t;

typedef struct {
    PyCodeObject *code; /* strong reference */
    uint32_t lasti;     /* in code units */
} hyp_py_frame_t;

typedef struct {
    PyCodeObject *code; /* strong reference; NULL marks an empty slot */
    uint32_t lasti;
    hyp_id_t func;
    uint32_t line;
} hyp_py_site_t;

typedef struct {
    uint64_t ident, native;
    hyp_id_t id;      /* the profile's thread, HYP_NO_ID until resolved */
    PyObject *thread; /* its threading.Thread, or NULL; a strong reference */
} hyp_py_athread_t;

static struct {
    /* Set by start, read by the hooks. */
    _Atomic uint64_t gen;      /* bumped at every start and stop */
    int running;
    double interval;
    int max_frames;
    /* Samples go straight into metric rows, not the pending sample list: a
     * collector that runs for days (the continuous profiler's) keeps no
     * record per sample. */
    int fold;
    uint64_t start_ns;
    pid_t pid;

    /* The chain: our hook's ctx points at the allocator it replaced. */
    PyMemAllocatorEx prev_mem, prev_obj;
    int hooked_mem, hooked_obj; /* our hook is (still) somewhere in the chain */

    hyp__heap_t heap;

    hyp_py_pending_t *pend;
    size_t npend, cpend;
    hyp_py_frame_t *frames;
    size_t nframes, cframes;
    uint64_t walk[2 * HYP_WALK_MAX_DEPTH];

    /* Resolved data of the current or last run. */
    hyp_profile_t *prof;
    uint32_t kind_alloc, kind_live;
    /* (code, instruction) -> (function, line): resolution's cache. Each
     * entry holds a reference to its code, so an address in it cannot be
     * reused by another code object. Keyed by address, because hashing a
     * code object hashes its whole bytecode on 3.12+ (Objects/codeobject.c). */
    hyp_py_site_t *sites;
    size_t nsites, site_mask;
    PyObject *active; /* threading._active, {ident: Thread} */
    hyp_py_athread_t *threads;
    size_t nthreads, cthreads;
    hyp_id_t trunc_func;

    /* Counters, written on the slow path. */
    uint64_t nsampled;      /* samples taken */
    uint64_t dropped_nomem; /* samples lost to a failed hyprof allocation */
    uint64_t dropped_heap;  /* blocks the live table could not hold */
    uint64_t est_bytes;     /* sum of the alloc samples' weights */
    int live_added;         /* live samples already written for this run */
    int resolve_scheduled;  /* a pending call to resolve is queued */
} hyp_py_alloc;

static void hyp__guard_enter(hyp_py_alloc_tls_t *t) {
    if (t->guard++ == 0) {
        t->saved = t->countdown;
        t->countdown = INT64_MAX;
    }
}

static void hyp__guard_exit(hyp_py_alloc_tls_t *t) {
    if (--t->guard == 0)
        t->countdown = t->saved;
}

/* ---------------------------------------------------------------- slow path */

static int hyp__resolve_later(void *arg);

/* Remembers a sampling thread the first time it samples, with its
 * threading.Thread while it is still registered: a thread that ends before
 * the samples are resolved keeps its name. Runs inside the hook: it walks the
 * dict with PyDict_Next (no allocation, no Python code, no exception), and
 * an allocation made by the dict's own resize leaves the old table intact
 * until the swap (Objects/dictobject.c), so the walk sees a whole table. */
static void hyp__note_thread(uint64_t ident, uint64_t native) {
    hyp_py_athread_t *a = NULL;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    size_t i;

    for (i = 0; i < hyp_py_alloc.nthreads && a == NULL; i++)
        if (hyp_py_alloc.threads[i].ident == ident && hyp_py_alloc.threads[i].native == native)
            a = &hyp_py_alloc.threads[i];
    /* A thread samples before threading registers it (its start-up
     * allocates); it is looked up again at its next samples. */
    if (a != NULL && (a->thread != NULL || a->id != HYP_NO_ID))
        return;
    if (a == NULL) {
        if (hyp__grow((void **)&hyp_py_alloc.threads, &hyp_py_alloc.cthreads,
                      hyp_py_alloc.nthreads + 1, sizeof(*hyp_py_alloc.threads)) < 0)
            return; /* the thread is then unnamed: reports show its kernel id */
        a = &hyp_py_alloc.threads[hyp_py_alloc.nthreads++];
        a->ident = ident;
        a->native = native;
        a->id = HYP_NO_ID;
        a->thread = NULL;
    }
    if (hyp_py_alloc.active == NULL || !PyDict_Check(hyp_py_alloc.active))
        return;
    while (PyDict_Next(hyp_py_alloc.active, &pos, &key, &value)) {
        if (PyLong_CheckExact(key) && PyLong_AsUnsignedLongLong(key) == ident) {
            a->thread = Py_NewRef(value);
            return;
        }
    }
}

/* Records the sampled block ptr of size bytes: stack, thread, weight, and an
 * entry in the live table. Runs inside the hook with the GIL held; allocates
 * only through hyp__malloc (the C library, not a hooked domain). */
static void hyp__record(void *ptr, size_t size) {
    hyp_py_pending_t *rec;
    PyThreadState *ts;
    int n, truncated = 0, i;
    uint64_t weight = hyp__heap_weight(size, hyp_py_alloc.interval);

    hyp_py_alloc.nsampled++;
    hyp_py_alloc.est_bytes += weight;
    ts = _PyThreadState_UncheckedGet(); /* PyThreadState_GetUnchecked() in 3.13 */
    n = ts != NULL ? hyp__walk_own(ts, hyp_py_alloc.walk, hyp_py_alloc.max_frames, &truncated)
                   : 0;
    if (n < 0)
        n = 0; /* a faulted walk, or hyprof's own stack: the block has no frames */
    if (hyp__grow((void **)&hyp_py_alloc.pend, &hyp_py_alloc.cpend, hyp_py_alloc.npend + 1,
                  sizeof(*hyp_py_alloc.pend)) < 0 ||
        hyp__grow((void **)&hyp_py_alloc.frames, &hyp_py_alloc.cframes,
                  hyp_py_alloc.nframes + (size_t)n, sizeof(*hyp_py_alloc.frames)) < 0) {
        hyp_py_alloc.dropped_nomem++;
        return;
    }
    if (ts != NULL)
        hyp__note_thread((uint64_t)ts->thread_id, (uint64_t)ts->native_thread_id);
    rec = &hyp_py_alloc.pend[hyp_py_alloc.npend];
    rec->ptr = (uintptr_t)ptr;
    rec->size = size;
    rec->weight = weight;
    rec->time_ns = hyp_clock_monotonic_ns() - hyp_py_alloc.start_ns;
    rec->ident = ts != NULL ? (uint64_t)ts->thread_id : 0;
    rec->native = ts != NULL ? (uint64_t)ts->native_thread_id : (uint64_t)gettid();
    rec->frame0 = hyp_py_alloc.nframes;
    rec->depth = (uint32_t)n;
    rec->truncated = (uint32_t)truncated;
    for (i = 0; i < n; i++) {
        hyp_py_frame_t *f = &hyp_py_alloc.frames[hyp_py_alloc.nframes++];

        /* The frame is live and the GIL held, so its code object is alive. */
        f->code = (PyCodeObject *)(uintptr_t)hyp_py_alloc.walk[2 * i];
        f->lasti = (uint32_t)hyp_py_alloc.walk[2 * i + 1];
        Py_INCREF(f->code);
    }
    if (hyp__heap_insert(&hyp_py_alloc.heap, (uintptr_t)ptr, size, weight,
                         (uint64_t)hyp_py_alloc.npend) < 0)
        hyp_py_alloc.dropped_heap++;
    hyp_py_alloc.npend++;
    if (hyp_py_alloc.npend >= HYP_PY_RESOLVE_BATCH && !hyp_py_alloc.resolve_scheduled &&
        Py_AddPendingCall(hyp__resolve_later, NULL) == 0)
        hyp_py_alloc.resolve_scheduled = 1;
}

/* The countdown crossed zero, or this thread's state belongs to another run.
 * Decides whether the block is sampled and draws the next gap. */
static HYP_PY_COLD void hyp__slow(hyp_py_alloc_tls_t *t, void *ptr, size_t size) {
    uint64_t gen = atomic_load_explicit(&hyp_py_alloc.gen, memory_order_relaxed);

    if (t->guard)
        return; /* hyprof's own allocation; the countdown is parked */
    if (!hyp_py_alloc.running) {
        /* A hook left in a foreign chain after stop: pass-through. */
        t->gen = gen;
        t->countdown = INT64_MAX;
        return;
    }
    if (t->gen != gen) {
        if (t->rng == 0)
            t->rng = hyp__heap_seed((uint64_t)gettid() ^ (hyp_clock_monotonic_ns() << 20) ^
                                    (uint64_t)(uintptr_t)t);
        t->gen = gen;
        /* A fresh gap starts at this block: it is sampled only if the gap
         * ends inside it, as for any other block. */
        t->countdown = hyp__heap_next_interval(&t->rng, hyp_py_alloc.interval);
        if (!hyp__heap_tick(&t->countdown, size))
            return;
    }
    t->countdown = hyp__heap_next_interval(&t->rng, hyp_py_alloc.interval);
    hyp__guard_enter(t);
    hyp__record(ptr, size);
    hyp__guard_exit(t);
}

static inline void hyp__account(void *ptr, size_t size) {
    hyp_py_alloc_tls_t *t = &hyp_py_tls;

    /* size <= PY_SSIZE_T_MAX: PyMem_Malloc and PyObject_Malloc refuse more
     * before calling the allocator (Objects/obmalloc.c). */
    t->countdown -= (int64_t)size;
    if (HYP_PY_LIKELY(t->countdown > 0 &&
                      t->gen == atomic_load_explicit(&hyp_py_alloc.gen, memory_order_relaxed)))
        return;
    hyp__slow(t, ptr, size);
}

static inline void hyp__forget(void *ptr) {
    if (HYP_PY_LIKELY(!hyp__heap_maybe(&hyp_py_alloc.heap, (uintptr_t)ptr)))
        return;
    hyp__heap_remove(&hyp_py_alloc.heap, (uintptr_t)ptr, NULL);
}

/* ---------------------------------------------------------------- the hooks */

static void *hyp__hook_malloc(void *ctx, size_t size) {
    PyMemAllocatorEx *prev = ctx;
    void *ptr = prev->malloc(prev->ctx, size);

    if (ptr != NULL)
        hyp__account(ptr, size);
    return ptr;
}

static void *hyp__hook_calloc(void *ctx, size_t nelem, size_t elsize) {
    PyMemAllocatorEx *prev = ctx;
    void *ptr = prev->calloc(prev->ctx, nelem, elsize);

    /* A successful calloc proves nelem * elsize did not overflow. */
    if (ptr != NULL)
        hyp__account(ptr, nelem * elsize);
    return ptr;
}

static void *hyp__hook_realloc(void *ctx, void *old, size_t size) {
    PyMemAllocatorEx *prev = ctx;
    void *ptr = prev->realloc(prev->ctx, old, size);

    /* A realloc is a free of the old block and an allocation of size bytes,
     * sampled afresh: keeping the old block's sample would bias the live
     * estimate towards blocks that were once sampled. On failure the old
     * block is untouched and stays live. */
    if (ptr == NULL)
        return NULL;
    if (old != NULL)
        hyp__forget(old);
    hyp__account(ptr, size);
    return ptr;
}

static void hyp__hook_free(void *ctx, void *ptr) {
    PyMemAllocatorEx *prev = ctx;

    if (ptr != NULL)
        hyp__forget(ptr);
    prev->free(prev->ctx, ptr);
}

static int hyp__is_ours(PyMemAllocatorDomain domain) {
    PyMemAllocatorEx cur;

    PyMem_GetAllocator(domain, &cur);
    return cur.malloc == hyp__hook_malloc;
}

static void hyp__hook(PyMemAllocatorDomain domain, PyMemAllocatorEx *prev) {
    PyMemAllocatorEx hook = {prev, hyp__hook_malloc, hyp__hook_calloc, hyp__hook_realloc,
                             hyp__hook_free};

    PyMem_GetAllocator(domain, prev);
    PyMem_SetAllocator(domain, &hook);
}

/* Takes our hook out of each domain where it is on top. Where another hook
 * was installed over it (tracemalloc started after hyprof and still
 * running), removing ours would cut that hook's chain, so ours stays as a
 * pass-through until a later call finds it on top again. */
static void hyp__unhook(void) {
    if (hyp_py_alloc.hooked_obj && hyp__is_ours(PYMEM_DOMAIN_OBJ)) {
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &hyp_py_alloc.prev_obj);
        hyp_py_alloc.hooked_obj = 0;
    }
    if (hyp_py_alloc.hooked_mem && hyp__is_ours(PYMEM_DOMAIN_MEM)) {
        PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &hyp_py_alloc.prev_mem);
        hyp_py_alloc.hooked_mem = 0;
    }
}

/* ---------------------------------------------------------------- resolution */

static int hyp__alloc_fail(int rc) {
    if (rc == HYP_ENOMEM)
        PyErr_NoMemory();
    else
        PyErr_Format(hyp_py_profiler_error(), "hyprof: allocation profile: %s", hyp_strerror(rc));
    return -1;
}

static size_t hyp__site_slot(PyCodeObject *code, uint32_t lasti, size_t mask) {
    uint64_t x = (uint64_t)(uintptr_t)code ^ ((uint64_t)lasti << 40) ^ lasti;

    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    return (size_t)x & mask;
}

/* Entries of the resolution cache at most: each holds its code object, so
 * a program that keeps making functions must not keep them all alive. */
#define HYP_PY_MAX_SITES ((size_t)1 << 16)

/* Empties the resolution cache, releasing its code objects: when it is full
 * (the functions met since are resolved again, once each), and at stop(),
 * after which nothing is resolved. */
static void hyp__drop_sites(void) {
    size_t i;

    for (i = 0; hyp_py_alloc.sites != NULL && i <= hyp_py_alloc.site_mask; i++)
        Py_XDECREF(hyp_py_alloc.sites[i].code);
    hyp__free(hyp_py_alloc.sites);
    hyp_py_alloc.sites = NULL;
    hyp_py_alloc.nsites = hyp_py_alloc.site_mask = 0;
}

static int hyp__site_grow(void) {
    size_t cap = hyp_py_alloc.sites == NULL ? 256 : (hyp_py_alloc.site_mask + 1) * 2, i;
    hyp_py_site_t *t = hyp__calloc(cap, sizeof(*t));

    if (t == NULL)
        return hyp__alloc_fail(HYP_ENOMEM);
    for (i = 0; hyp_py_alloc.sites != NULL && i <= hyp_py_alloc.site_mask; i++) {
        hyp_py_site_t *e = &hyp_py_alloc.sites[i];
        size_t j;

        if (e->code == NULL)
            continue;
        for (j = hyp__site_slot(e->code, e->lasti, cap - 1); t[j].code != NULL;
             j = (j + 1) & (cap - 1))
            ;
        t[j] = *e;
    }
    hyp__free(hyp_py_alloc.sites);
    hyp_py_alloc.sites = t;
    hyp_py_alloc.site_mask = cap - 1;
    return 0;
}

/* The function and line of an instruction of a code object. The sampler's
 * resolver (codemap.c) is not used: it is bound to the CPU sampler's profile
 * and session, and guards code objects it holds no reference to, where each
 * record here holds its code object alive until it is resolved. Both name
 * the function with hyp_py_code_func(). */
static int hyp__site(PyCodeObject *code, uint32_t lasti, hyp_id_t *func, uint32_t *line) {
    hyp_py_site_t *e;
    size_t i;
    int rc, ln;

    if (hyp_py_alloc.nsites >= HYP_PY_MAX_SITES)
        hyp__drop_sites();
    if ((hyp_py_alloc.nsites + 1) * 2 > hyp_py_alloc.site_mask + 1 && hyp__site_grow() < 0)
        return -1;
    for (i = hyp__site_slot(code, lasti, hyp_py_alloc.site_mask);
         (e = &hyp_py_alloc.sites[i])->code != NULL; i = (i + 1) & hyp_py_alloc.site_mask) {
        if (e->code == code && e->lasti == lasti) {
            *func = e->func;
            *line = e->line;
            return 0;
        }
    }
    if ((rc = hyp_py_code_func(hyp_py_alloc.prof, code, func)) < 0)
        return hyp__alloc_fail(rc);
    ln = hyp__walk_line(code, lasti);
    *line = ln > 0 ? (uint32_t)ln : 0;
    e->code = (PyCodeObject *)Py_NewRef(code);
    e->lasti = lasti;
    e->func = *func;
    e->line = *line;
    hyp_py_alloc.nsites++;
    return 0;
}

static int hyp__thread(uint64_t ident, uint64_t native, hyp_id_t *id) {
    hyp_py_athread_t *a = NULL;
    hyp_thread_t th;
    PyObject *pyname;
    size_t i;
    int rc;

    for (i = 0; i < hyp_py_alloc.nthreads && a == NULL; i++)
        if (hyp_py_alloc.threads[i].ident == ident && hyp_py_alloc.threads[i].native == native)
            a = &hyp_py_alloc.threads[i];
    if (a != NULL && a->id != HYP_NO_ID) {
        *id = a->id;
        return 0;
    }
    /* No Python code runs here (hyp_py_thread_name()): this is the middle of
     * a batch that another thread or a pending call must not touch. */
    if (a != NULL && a->thread == NULL && hyp_py_alloc.active != NULL)
        /* Not registered at its samples; perhaps it is by now. */
        a->thread = Py_XNewRef(hyp_py_thread_object(hyp_py_alloc.active, (unsigned long)ident));
    if (a != NULL && (pyname = hyp_py_thread_name(a->thread)) != NULL) {
        rc = hyp_py_intern_str(hyp_py_alloc.prof, pyname, &th.name);
        Py_DECREF(pyname);
    } else {
        rc = hyp_profile_string(hyp_py_alloc.prof, "", 0, &th.name); /* FORMAT.md 4.3 */
    }
    if (rc < 0)
        return hyp__alloc_fail(rc);
    th.os_tid = native;
    th.ident = ident;
    if ((rc = hyp_profile_thread(hyp_py_alloc.prof, &th, id)) < 0)
        return hyp__alloc_fail(rc);
    if (a != NULL)
        a->id = *id;
    return 0;
}

/* Adds a sample of kind (kind_alloc or kind_live) to p, which keeps it in
 * its pending list (the Trace's samples, and what hyp_py_alloc_merge()
 * carries into the CPU sampler's profile), or with fold to the metric row of
 * (thread, node): one more sample of the kind and its weight. */
static int hyp__add_sample_to(hyp_profile_t *p, int fold, hyp_id_t thread, hyp_id_t node,
                              uint32_t kind, uint64_t time_ns, uint64_t weight) {
    int rc;

    if (fold) {
        const hyp_sample_kind_t *k = hyp_profile_sample_kind_at(p, kind);
        uint64_t values[HYP_PY_ALLOC_NMETRICS] = {0};

        values[k->count_metric] = 1;
        values[k->weight_metric] = weight;
        rc = hyp_profile_add(p, thread, node, values);
    } else {
        hyp_sample_t s = {thread, node, kind, time_ns, weight, HYP_NO_LABELS};

        rc = hyp_profile_add_sample(p, &s);
    }
    return rc < 0 ? hyp__alloc_fail(rc) : 0;
}

static int hyp__add_sample(hyp_id_t thread, hyp_id_t node, uint32_t kind, uint64_t time_ns,
                           uint64_t weight) {
    return hyp__add_sample_to(hyp_py_alloc.prof, hyp_py_alloc.fold, thread, node, kind, time_ns,
                              weight);
}

/* The node of one pending record's stack, root first. */
static int hyp__stack_node(const hyp_py_pending_t *rec, hyp_id_t *node) {
    hyp_id_t parent = HYP_ROOT_NODE, func;
    uint32_t i;
    int rc;

    if (rec->truncated || rec->depth == 0) {
        if (hyp_py_alloc.trunc_func == HYP_NO_ID) {
            hyp_func_t f = {0, 0, 0, HYP_FUNC_SPECIAL};

            if ((rc = hyp_profile_string(hyp_py_alloc.prof, "[truncated]", 11, &f.name)) < 0 ||
                (rc = hyp_profile_string(hyp_py_alloc.prof, "", 0, &f.file)) < 0 ||
                (rc = hyp_profile_func(hyp_py_alloc.prof, &f, &hyp_py_alloc.trunc_func)) < 0)
                return hyp__alloc_fail(rc);
        }
        if (rec->depth == 0) {
            /* No Python frame: an allocation made by C code outside any
             * Python function (interpreter start-up, a C thread). */
            hyp_func_t f = {0, 0, 0, HYP_FUNC_SPECIAL};

            if ((rc = hyp_profile_string(hyp_py_alloc.prof, "[no Python frame]", 17, &f.name)) <
                    0 ||
                (rc = hyp_profile_string(hyp_py_alloc.prof, "", 0, &f.file)) < 0 ||
                (rc = hyp_profile_func(hyp_py_alloc.prof, &f, &func)) < 0 ||
                (rc = hyp_profile_node(hyp_py_alloc.prof, parent, func, 0, node)) < 0)
                return hyp__alloc_fail(rc);
            return 0;
        }
        if ((rc = hyp_profile_node(hyp_py_alloc.prof, parent, hyp_py_alloc.trunc_func, 0,
                                   &parent)) < 0)
            return hyp__alloc_fail(rc);
    }
    for (i = rec->depth; i-- > 0;) {
        const hyp_py_frame_t *f = &hyp_py_alloc.frames[rec->frame0 + i];
        uint32_t line;

        if (hyp__site(f->code, f->lasti, &func, &line) < 0)
            return -1;
        if ((rc = hyp_profile_node(hyp_py_alloc.prof, parent, func, line, &parent)) < 0)
            return hyp__alloc_fail(rc);
    }
    *node = parent;
    return 0;
}

/* Turns every pending record into an alloc sample of the profile, and the
 * live table's entries for them into resolved tags. With the GIL held and
 * outside the hook; the caller holds the guard. */
static int hyp__resolve(void) {
    size_t i;
    int rc = 0;

    for (i = 0; i < hyp_py_alloc.npend && rc == 0; i++) {
        const hyp_py_pending_t *rec = &hyp_py_alloc.pend[i];
        hyp_id_t thread, node;
        hyp__live_t *e;

        if (hyp__thread(rec->ident, rec->native, &thread) < 0 ||
            hyp__stack_node(rec, &node) < 0 ||
            hyp__add_sample(thread, node, hyp_py_alloc.kind_alloc, rec->time_ns, rec->weight) <
                0) {
            rc = -1;
            break;
        }
        /* The block may have been freed, or its address reused by a later
         * sample: only the entry still tagged with this record is ours. */
        e = (hyp__live_t *)hyp__heap_find(&hyp_py_alloc.heap, rec->ptr);
        if (e != NULL && e->tag == (uint64_t)i)
            e->tag = HYP_PY_TAG_RESOLVED | ((uint64_t)thread << 32) | node;
    }
    if (rc < 0) {
        /* Whatever was not resolved is lost, and said so in the trace. */
        size_t j;

        for (j = i; j < hyp_py_alloc.npend; j++) {
            hyp__live_t out;
            const hyp__live_t *e = hyp__heap_find(&hyp_py_alloc.heap, hyp_py_alloc.pend[j].ptr);

            if (e != NULL && e->tag == (uint64_t)j)
                hyp__heap_remove(&hyp_py_alloc.heap, hyp_py_alloc.pend[j].ptr, &out);
        }
        hyp_profile_add_dropped(hyp_py_alloc.prof, "alloc: resolution failed",
                                hyp_py_alloc.npend - i);
    }
    for (i = 0; i < hyp_py_alloc.nframes; i++)
        Py_DECREF(hyp_py_alloc.frames[i].code);
    hyp_py_alloc.nframes = 0;
    hyp_py_alloc.npend = 0;
    return rc;
}

/* Runs from the eval loop (Py_AddPendingCall), with the GIL and outside any
 * allocator call. It must not raise into the code it interrupts: a failure is
 * counted in the trace's dropped map by hyp__resolve(). */
static int hyp__resolve_later(void *arg) {
    hyp_py_alloc_tls_t *t = &hyp_py_tls;

    HYP__UNUSED(arg);
    hyp_py_alloc.resolve_scheduled = 0;
    if (!hyp_py_alloc.running || hyp_py_alloc.npend == 0)
        return 0;
    HYP_PY_EXC_SAVE(exc);
    hyp__guard_enter(t);
    if (hyp__resolve() < 0)
        PyErr_Clear();
    hyp__guard_exit(t);
    HYP_PY_EXC_RESTORE(exc);
    return 0;
}

/* ---------------------------------------------------------------- run state */

static void hyp__release_run(void) {
    size_t i;

    for (i = 0; i < hyp_py_alloc.nframes; i++)
        Py_DECREF(hyp_py_alloc.frames[i].code);
    hyp_py_alloc.nframes = hyp_py_alloc.npend = 0;
    hyp__heap_destroy(&hyp_py_alloc.heap);
    hyp_profile_free(hyp_py_alloc.prof);
    hyp_py_alloc.prof = NULL;
    hyp__drop_sites();
    Py_CLEAR(hyp_py_alloc.active);
    for (i = 0; i < hyp_py_alloc.nthreads; i++)
        Py_CLEAR(hyp_py_alloc.threads[i].thread);
    hyp_py_alloc.nthreads = 0;
    hyp_py_alloc.trunc_func = HYP_NO_ID;
    hyp_py_alloc.nsampled = hyp_py_alloc.dropped_nomem = hyp_py_alloc.dropped_heap = 0;
    hyp_py_alloc.est_bytes = 0;
    hyp_py_alloc.live_added = 0;
}

static int hyp__new_profile(void) {
    hyp_sample_kind_t ka = {"alloc", "bytes", 0, 1}, kl = {"live", "bytes", 2, 3};
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_SAMPLING, hyp_py_alloc_metrics,
                                       HYP_PY_ALLOC_NMETRICS);
    struct timespec now;
    int rc;

    clock_gettime(CLOCK_REALTIME, &now);
    if (p == NULL)
        return hyp__alloc_fail(HYP_ENOMEM);
    if ((rc = hyp_profile_sample_kind(p, &ka, &hyp_py_alloc.kind_alloc)) < 0 ||
        (rc = hyp_profile_sample_kind(p, &kl, &hyp_py_alloc.kind_live)) < 0 ||
        (rc = hyp_profile_set_meta_str(p, "trigger", "alloc")) < 0 ||
        (rc = hyp_profile_set_meta_str(p, "event", "alloc")) < 0 ||
        (rc = hyp_profile_set_meta_float(p, "memory_interval", hyp_py_alloc.interval)) < 0 ||
        (rc = hyp_profile_set_meta_int(p, "memory_max_frames", hyp_py_alloc.max_frames)) < 0 ||
        (rc = hyp_profile_set_meta_str(p, "memory_domains", "mem,obj")) < 0 ||
        (rc = hyp_py_set_run_meta(p, (double)now.tv_sec + now.tv_nsec * 1e-9, NULL)) < 0) {
        hyp_profile_free(p);
        return hyp__alloc_fail(rc);
    }
    /* The same bound as the CPU sampler's: past it, call paths fold into
     * "[truncated]" (counted in the trace), so memory stays bounded. */
    hyp_profile_set_node_limit(p, 1000000);
    hyp_py_alloc.prof = p;
    return 0;
}

/* Adds to p (the collector's profile, or a copy of it) one live sample per
 * sampled block still allocated, timed now. */
static int hyp__add_live(hyp_profile_t *p) {
    uint64_t now = hyp_clock_monotonic_ns() - hyp_py_alloc.start_ns;
    const hyp__live_t *e;
    size_t pos = 0;

    while ((e = hyp__heap_next(&hyp_py_alloc.heap, &pos)) != NULL) {
        if (!(e->tag & HYP_PY_TAG_RESOLVED))
            continue; /* cannot happen after a resolve; never guess a stack */
        if (hyp__add_sample_to(p, hyp_py_alloc.fold, (hyp_id_t)((e->tag >> 32) & 0x7fffffff),
                               (hyp_id_t)e->tag, hyp_py_alloc.kind_live, now, e->weight) < 0)
            return -1;
    }
    return 0;
}

static int hyp__finish_profile(void) {
    hyp_profile_t *p = hyp_py_alloc.prof;

    if (hyp_py_alloc.dropped_nomem)
        hyp_profile_add_dropped(p, "alloc: out of memory", hyp_py_alloc.dropped_nomem);
    if (hyp_py_alloc.dropped_heap)
        hyp_profile_add_dropped(p, "live: out of memory", hyp_py_alloc.dropped_heap);
    if (hyp_profile_set_meta_int(p, "memory_samples", (int64_t)hyp_py_alloc.nsampled) < 0)
        return hyp__alloc_fail(HYP_ENOMEM);
    if (hyp__add_live(p) < 0)
        return -1;
    hyp_py_alloc.live_added = 1;
    return 0;
}

/* Stops sampling: resolves, writes the live samples, restores the chain. */
static int hyp__alloc_stop(void) {
    hyp_py_alloc_tls_t *t = &hyp_py_tls;
    int rc;

    hyp__guard_enter(t);
    hyp_py_alloc.running = 0;
    atomic_fetch_add(&hyp_py_alloc.gen, 1);
    hyp__unhook();
    rc = hyp__resolve();
    if (rc == 0)
        rc = hyp__finish_profile();
    hyp__drop_sites();
    hyp__guard_exit(t);
    return rc;
}

/* ---------------------------------------------------------------- Python API */

static PyObject *hyp__alloc_start(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"interval", "max_frames", "fold", NULL};
    PyObject *interval_obj = NULL;
    double interval = HYP_HEAP_INTERVAL_DEFAULT;
    int max_frames = HYP_PY_ALLOC_MAX_FRAMES_DEFAULT, fold = 0;
    hyp_py_alloc_tls_t *t = &hyp_py_tls;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|Oip:alloc_start", kwlist, &interval_obj,
                                     &max_frames, &fold))
        return NULL;
    if (interval_obj != NULL && interval_obj != Py_None) {
        if (PyBool_Check(interval_obj) ||
            !(PyLong_Check(interval_obj) || PyFloat_Check(interval_obj))) {
            PyErr_Format(hyp_py_profiler_error(),
                         "memory_interval must be a number of bytes, not %.100s",
                         Py_TYPE(interval_obj)->tp_name);
            return NULL;
        }
        interval = PyFloat_AsDouble(interval_obj);
        if (interval == -1.0 && PyErr_Occurred())
            return NULL;
        if (hyp__heap_check_interval(interval) < 0) {
            PyErr_Format(hyp_py_profiler_error(),
                         "memory_interval=%R is out of range: the mean sampling interval "
                         "must be between 1 byte and 1 TiB (1099511627776 bytes); the "
                         "default is 524288 (512 KiB)",
                         interval_obj);
            return NULL;
        }
    }
    if (max_frames < 1 || max_frames > HYP_WALK_MAX_DEPTH) {
        PyErr_Format(hyp_py_profiler_error(), "max_frames=%d is out of range: it must be between 1 "
                     "and %d", max_frames, HYP_WALK_MAX_DEPTH);
        return NULL;
    }
    if (hyp_py_alloc.running) {
        PyErr_SetString(hyp_py_profiler_error(),
                        "the allocation profiler is already running in this process");
        return NULL;
    }
    /* A hook of an earlier run still chained under a foreign one: finish
     * taking it out if it is on top again, otherwise refuse to wrap twice. */
    hyp__unhook();
    if (hyp_py_alloc.hooked_mem || hyp_py_alloc.hooked_obj) {
        PyErr_SetString(hyp_py_profiler_error(),
                        "cannot start the allocation profiler: the hook of its previous run is "
                        "still chained under an allocator hook installed after it (for "
                        "instance tracemalloc started while hyprof was sampling); stop that "
                        "one first");
        return NULL;
    }
    hyp__guard_enter(t);
    hyp__release_run();
    hyp_py_alloc.interval = interval;
    hyp_py_alloc.max_frames = max_frames;
    hyp_py_alloc.fold = fold;
    {
        PyObject *threading = PyImport_ImportModule("threading");

        if (threading != NULL) {
            hyp_py_alloc.active = PyObject_GetAttrString(threading, "_active");
            Py_DECREF(threading);
        }
        if (hyp_py_alloc.active == NULL)
            PyErr_Clear(); /* threads are then unnamed: reports show their kernel id */
    }
    if (hyp__new_profile() < 0) {
        hyp__release_run();
        hyp__guard_exit(t);
        return NULL;
    }
    hyp_py_alloc.start_ns = hyp_clock_monotonic_ns();
    hyp_py_alloc.pid = getpid();
    atomic_fetch_add(&hyp_py_alloc.gen, 1);
    hyp_py_alloc.running = 1;
    hyp__hook(PYMEM_DOMAIN_MEM, &hyp_py_alloc.prev_mem);
    hyp_py_alloc.hooked_mem = 1;
    hyp__hook(PYMEM_DOMAIN_OBJ, &hyp_py_alloc.prev_obj);
    hyp_py_alloc.hooked_obj = 1;
    hyp__guard_exit(t);
    Py_RETURN_NONE;
}

static PyObject *hyp__alloc_py_stop(PyObject *self, PyObject *unused) {
    if (!hyp_py_alloc.running) {
        PyErr_SetString(hyp_py_profiler_error(), "the allocation profiler is not running");
        return NULL;
    }
    if (hyp__alloc_stop() < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *hyp__alloc_running(PyObject *self, PyObject *unused) {
    return PyBool_FromLong(hyp_py_alloc.running);
}

/* The frames of node, root first, as (name, filename, line) tuples. */
static PyObject *hyp__node_frames(hyp_id_t node) {
    const hyp_profile_t *p = hyp_py_alloc.prof;
    PyObject *list = PyList_New(0), *tuple;
    hyp_id_t n;

    if (list == NULL)
        return NULL;
    for (n = node; n != HYP_ROOT_NODE; n = hyp_profile_node_at(p, n)->parent) {
        const hyp_node_t *nd = hyp_profile_node_at(p, n);
        const hyp_func_t *f = hyp_profile_func_at(p, nd->func);
        size_t nlen, flen;
        const char *name = hyp_profile_string_at(p, f->name, &nlen);
        const char *file = hyp_profile_string_at(p, f->file, &flen);
        PyObject *t = Py_BuildValue("(s#s#I)", name, (Py_ssize_t)nlen, file, (Py_ssize_t)flen,
                                    nd->line);

        if (t == NULL || PyList_Append(list, t) < 0) {
            Py_XDECREF(t);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(t);
    }
    if (PyList_Reverse(list) < 0) {
        Py_DECREF(list);
        return NULL;
    }
    tuple = PyList_AsTuple(list);
    Py_DECREF(list);
    return tuple;
}

/* heap(): the live sampled blocks by stack, largest first. */
static PyObject *hyp__alloc_heap_impl(void) {
    PyObject *by_node = NULL, *result = NULL, *items = NULL;
    const hyp__live_t *e;
    size_t pos = 0;
    Py_ssize_t i;

    if (hyp_py_alloc.prof == NULL)
        return PyList_New(0);
    if (hyp_py_alloc.npend && hyp__resolve() < 0)
        return NULL;
    by_node = PyDict_New(); /* node -> [bytes, blocks] */
    if (by_node == NULL)
        return NULL;
    while ((e = hyp__heap_next(&hyp_py_alloc.heap, &pos)) != NULL) {
        PyObject *key, *acc;
        unsigned long long bytes = 0, count = 0;

        if (!(e->tag & HYP_PY_TAG_RESOLVED))
            continue;
        key = PyLong_FromUnsignedLong((uint32_t)e->tag);
        if (key == NULL)
            goto done;
        acc = PyDict_GetItemWithError(by_node, key);
        if (acc != NULL) {
            bytes = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(acc, 0));
            count = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(acc, 1));
        } else if (PyErr_Occurred()) {
            Py_DECREF(key);
            goto done;
        }
        acc = Py_BuildValue("(KK)", bytes + e->weight, count + 1);
        if (acc == NULL || PyDict_SetItem(by_node, key, acc) < 0) {
            Py_XDECREF(acc);
            Py_DECREF(key);
            goto done;
        }
        Py_DECREF(acc);
        Py_DECREF(key);
    }
    items = PyDict_Items(by_node);
    if (items == NULL)
        goto done;
    result = PyList_New(PyList_GET_SIZE(items));
    if (result == NULL)
        goto done;
    for (i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *kv = PyList_GET_ITEM(items, i);
        PyObject *acc = PyTuple_GET_ITEM(kv, 1);
        PyObject *frames = hyp__node_frames((hyp_id_t)PyLong_AsUnsignedLong(
            PyTuple_GET_ITEM(kv, 0)));
        PyObject *row;

        if (frames == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        row = Py_BuildValue("(NOO)", frames, PyTuple_GET_ITEM(acc, 0), PyTuple_GET_ITEM(acc, 1));
        if (row == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, row);
    }
done:
    Py_XDECREF(items);
    Py_XDECREF(by_node);
    return result;
}

static PyObject *hyp__alloc_heap(PyObject *self, PyObject *unused) {
    hyp_py_alloc_tls_t *t = &hyp_py_tls;
    PyObject *r;

    hyp__guard_enter(t);
    r = hyp__alloc_heap_impl();
    hyp__guard_exit(t);
    return r;
}

static PyObject *hyp__alloc_stats(PyObject *self, PyObject *unused) {
    return Py_BuildValue(
        "{s:O,s:d,s:K,s:K,s:K,s:n,s:K,s:K,s:O}", "running", hyp_py_alloc.running ? Py_True
                                                                             : Py_False,
        "interval", hyp_py_alloc.interval, "samples", (unsigned long long)hyp_py_alloc.nsampled,
        "allocated_bytes", (unsigned long long)hyp_py_alloc.est_bytes, "live_bytes",
        (unsigned long long)hyp_py_alloc.heap.bytes, "live_blocks",
        (Py_ssize_t)hyp_py_alloc.heap.count, "dropped",
        (unsigned long long)(hyp_py_alloc.dropped_nomem + hyp_py_alloc.dropped_heap), "pending",
        (unsigned long long)hyp_py_alloc.npend, "chained",
        (hyp_py_alloc.hooked_mem || hyp_py_alloc.hooked_obj) && !hyp_py_alloc.running ? Py_True
                                                                                     : Py_False);
}

/* The last run's trace: a hyprof.Trace of the collector's profile. */
static PyObject *hyp__alloc_trace(PyObject *self, PyObject *unused) {
    hyp_py_alloc_tls_t *t = &hyp_py_tls;
    PyObject *r;

    if (hyp_py_alloc.running) {
        PyErr_SetString(hyp_py_profiler_error(),
                        "the allocation trace is complete at stop; stop the profiler first "
                        "(heap() gives the live heap while it runs)");
        return NULL;
    }
    if (hyp_py_alloc.prof == NULL) {
        PyErr_SetString(hyp_py_profiler_error(), "the allocation profiler has not run");
        return NULL;
    }
    hyp__guard_enter(t);
    r = hyp_py_trace_from_profile(hyp_py_alloc.prof);
    hyp__guard_exit(t);
    return r;
}

/* Subtracts from d the rows of base, a copy of the same profile taken
 * earlier: the profile only grows, so every row of base is in d with values
 * at least as large, and adding the two's complement subtracts exactly. A
 * base that is not such a copy is refused with HYP_EINVAL (d then half
 * subtracted): the run's id in the mark is checked first, this is the
 * invariant behind it. */
static int hyp__subtract(hyp_profile_t *d, const hyp_profile_t *base) {
    size_t i, j;
    uint64_t neg[HYP_PY_ALLOC_NMETRICS];
    int rc;

    for (i = 0; i < hyp_profile_row_count(base); i++) {
        hyp_id_t thread, node;
        const uint64_t *v = hyp_profile_row_at(base, i, &thread, &node, NULL);
        const uint64_t *now = hyp_profile_row(d, thread, node);

        if (now == NULL)
            return HYP_EINVAL;
        for (j = 0; j < HYP_PY_ALLOC_NMETRICS; j++) {
            if (now[j] < v[j])
                return HYP_EINVAL;
            neg[j] = (uint64_t)0 - v[j];
        }
        if ((rc = hyp_profile_add(d, thread, node, neg)) < 0)
            return rc;
    }
    return 0;
}

/* snapshot(since=None, mark=False) -> (Trace, mark or None): while a
 * folding collector runs, a Trace of what it has (the allocations since
 * start, or since the mark of an earlier call, and the live heap now), made
 * from a copy so the run goes on unchanged; with mark, also a copy of the
 * allocations now, for a later call's since. */
static PyObject *hyp__alloc_snapshot(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"since", "mark", NULL};
    hyp_py_alloc_tls_t *t = &hyp_py_tls;
    hyp_profile_t *copy = NULL, *mark = NULL;
    const hyp_profile_t *base = NULL;
    PyObject *since = Py_None, *trace, *cap = Py_None, *res;
    uint64_t now;
    int rc = 0, want_mark = 0;

    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|Op:alloc_snapshot", kwlist, &since,
                                     &want_mark))
        return NULL;
    if (since != Py_None && (base = hyp_py_capsule_profile(since)) == NULL)
        return NULL;
    if (!hyp_py_alloc.running || !hyp_py_alloc.fold) {
        PyErr_SetString(hyp_py_profiler_error(),
                        hyp_py_alloc.running ? "a snapshot is taken of a collector started with "
                                               "fold=True (the continuous profiler's)"
                                             : "the allocation profiler is not running");
        return NULL;
    }
    if (base != NULL) {
        /* A mark names its run: the profile of another has other ids. */
        const hyp_meta_t *run = hyp_profile_meta_get(base, "alloc_run");

        if (hyp_profile_metric_count(base) != HYP_PY_ALLOC_NMETRICS || run == NULL ||
            run->type != HYP_META_INT || run->v.i != (int64_t)hyp_py_alloc.start_ns) {
            PyErr_SetString(PyExc_ValueError,
                            "alloc_snapshot(): since is not a mark of this run");
            return NULL;
        }
    }
    hyp__guard_enter(t);
    now = hyp_clock_monotonic_ns();
    if (hyp_py_alloc.npend)
        rc = hyp__resolve();
    if (rc == 0 && ((copy = hyp_profile_copy(hyp_py_alloc.prof)) == NULL ||
                    (want_mark && ((mark = hyp_profile_copy(hyp_py_alloc.prof)) == NULL ||
                                   hyp_profile_set_meta_int(mark, "alloc_run",
                                                            (int64_t)hyp_py_alloc.start_ns) < 0))))
        rc = hyp__alloc_fail(HYP_ENOMEM);
    if (rc == 0 && base != NULL && (rc = hyp__subtract(copy, base)) < 0) {
        if (rc == HYP_EINVAL)
            PyErr_SetString(PyExc_ValueError,
                            "alloc_snapshot(): since is not a mark of this run");
        else
            hyp__alloc_fail(rc);
        rc = -1;
    }
    if (rc == 0 && (rc = hyp__add_live(copy)) == 0) {
        int e = hyp_profile_set_meta_float(copy, "duration",
                                           (double)(now - hyp_py_alloc.start_ns) * 1e-9);
        if (e == 0)
            e = hyp_profile_set_meta_int(copy, "memory_samples", (int64_t)hyp_py_alloc.nsampled);
        if (e < 0)
            rc = hyp__alloc_fail(e);
    }
    hyp__guard_exit(t);
    if (rc < 0) {
        hyp_profile_free(copy);
        hyp_profile_free(mark);
        return NULL;
    }
    if (mark != NULL && (cap = hyp_py_profile_capsule(mark)) == NULL) {
        hyp_profile_free(copy);
        return NULL;
    }
    if (mark == NULL)
        Py_INCREF(cap); /* None */
    if ((trace = hyp_py_trace_take_profile(copy)) == NULL) {
        Py_DECREF(cap);
        return NULL;
    }
    res = PyTuple_Pack(2, trace, cap);
    Py_DECREF(trace);
    Py_DECREF(cap);
    return res;
}

/* Writes the last run's trace to a file. */
static PyObject *hyp__alloc_write(PyObject *self, PyObject *path) {
    (void)self;
    if (hyp_py_alloc.running || hyp_py_alloc.prof == NULL) {
        PyErr_SetString(hyp_py_profiler_error(),
                        hyp_py_alloc.running ? "the allocation profiler is running: stop it first"
                                             : "the allocation profiler has not run");
        return NULL;
    }
    return hyp_py_save(hyp_py_alloc.prof, path);
}

/* os.register_at_fork(after_in_child=...): the child keeps only the thread
 * that forked; a collector copied half-way (pending records of threads that
 * no longer exist, a table the parent keeps updating) is dropped, and the
 * child allocates through the previous allocators. */
static PyObject *hyp__alloc_after_fork(PyObject *self, PyObject *unused) {
    if (hyp_py_alloc.running || hyp_py_alloc.prof != NULL) {
        hyp_py_alloc_tls_t *t = &hyp_py_tls;

        hyp__guard_enter(t);
        hyp_py_alloc.running = 0;
        atomic_fetch_add(&hyp_py_alloc.gen, 1);
        hyp__unhook();
        hyp__release_run();
        hyp__guard_exit(t);
    }
    Py_RETURN_NONE;
}

/* For hyprof's own threads (the sampler's resolver): everything the calling
 * thread allocates from now on stays out of the allocation profile. */
static PyObject *hyp__alloc_exclude_thread(PyObject *self, PyObject *unused) {
    hyp_py_alloc_tls_t *t = &hyp_py_tls;

    if (t->guard == 0)
        hyp__guard_enter(t);
    Py_RETURN_NONE;
}

static PyMethodDef hyp_py_alloc_methods[] = {
    {"alloc_start", (PyCFunction)(void (*)(void))hyp__alloc_start, METH_VARARGS | METH_KEYWORDS,
     "alloc_start(interval=524288, max_frames=128, fold=False)\n\nStarts sampling allocations "
     "of the MEM and OBJ domains, one sample per `interval` bytes on average; with fold, "
     "samples go into metric rows (no record per sample is kept)."},
    {"alloc_stop", hyp__alloc_py_stop, METH_NOARGS,
     "alloc_stop()\n\nStops sampling, resolves the samples and records the live heap."},
    {"alloc_running", hyp__alloc_running, METH_NOARGS, "True while allocations are sampled."},
    {"alloc_heap", hyp__alloc_heap, METH_NOARGS,
     "alloc_heap() -> [(frames, bytes, blocks)]\n\nThe sampled blocks still allocated, by "
     "stack; frames are (name, filename, line), root first; bytes is the estimate."},
    {"alloc_stats", hyp__alloc_stats, METH_NOARGS, "Counters of the current or last run."},
    {"alloc_snapshot", (PyCFunction)(void (*)(void))hyp__alloc_snapshot,
     METH_VARARGS | METH_KEYWORDS,
     "alloc_snapshot(since=None, mark=False) -> (Trace, mark or None)\n\nWhile a collector "
     "started with fold=True runs: its allocations since start (or since the mark of an "
     "earlier call) and the live heap now, the run unchanged; with mark, a mark of now for a "
     "later call's since."},
    {"alloc_trace", hyp__alloc_trace, METH_NOARGS,
     "alloc_trace() -> Trace\n\nThe last run's allocation trace."},
    {"alloc_write", hyp__alloc_write, METH_O,
     "alloc_write(path)\n\nWrites the last run's allocation trace to path."},
    {"alloc_exclude_thread", hyp__alloc_exclude_thread, METH_NOARGS,
     "Leaves the calling thread's allocations out of every later allocation profile."},
    {"_alloc_after_fork", hyp__alloc_after_fork, METH_NOARGS,
     "Drops the collector in a forked child."},
    {NULL, NULL, 0, NULL},
};

int hyp_py_alloc_declare(hyp_profile_t *p) {
    uint32_t k;
    int rc;

    if ((rc = hyp_py_kind_declare(p, "alloc", "alloc_samples", "alloc_bytes", &k)) < 0)
        return rc;
    return hyp_py_kind_declare(p, "live", "live_samples", "live_bytes", &k);
}

int hyp_py_alloc_merge(hyp_profile_t *dst) {
    const hyp_profile_t *src = hyp_py_alloc.prof;
    int rc;

    if (src == NULL || hyp_py_alloc.running)
        return HYP_ESTATE;
    if ((rc = hyp_py_alloc_declare(dst)) < 0)
        return rc;
    return hyp_py_merge_samples(dst, src, "alloc: out of memory");
}

int hyp_py_alloc_init(PyObject *module) {
    PyObject *os, *cb, *kw, *r;

    hyp__heap_init(&hyp_py_alloc.heap);
    hyp_py_alloc.trunc_func = HYP_NO_ID;
    hyp_py_alloc.interval = HYP_HEAP_INTERVAL_DEFAULT;
    if (PyModule_AddFunctions(module, hyp_py_alloc_methods) < 0)
        return -1;
    cb = PyObject_GetAttrString(module, "_alloc_after_fork");
    if (cb == NULL)
        return -1;
    os = PyImport_ImportModule("os");
    kw = Py_BuildValue("{s:O}", "after_in_child", cb);
    r = NULL;
    if (os != NULL && kw != NULL) {
        PyObject *reg = PyObject_GetAttrString(os, "register_at_fork");
        PyObject *noargs = PyTuple_New(0);

        if (reg != NULL && noargs != NULL)
            r = PyObject_Call(reg, noargs, kw);
        Py_XDECREF(reg);
        Py_XDECREF(noargs);
    }
    Py_XDECREF(kw);
    Py_XDECREF(os);
    Py_DECREF(cb);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}
