/* pyext/gcwatch.h: internal to the _hyprof extension; not API.
 *
 * The garbage collector as both modes see it. One C callable sits in
 * gc.callbacks while any profiler wants it (hyp_py_gc_retain() and
 * hyp_py_gc_release(), counted); CPython calls it with the GIL on the thread
 * that collects, at the start and at the end of each collection. It
 *   - counts the collections, their time and what they freed per generation
 *     since the extension loaded (hyp_py_gc_totals(); a profile's header holds
 *     the difference over its run or window, hyp_py_gc_meta());
 *   - tells the deterministic mode, which records the collection as a call of
 *     the special function "[gc] generation N" on the collecting thread
 *     (hyp__det_special_enter(), det.h);
 *   - publishes, for the sampler's signal handler and wall-clock thread, which
 *     thread collects and which generation (hyp_py_gc_now()), and how many
 *     Python frames the collecting thread had when it began, so that a sample
 *     places "[gc] generation N" above the frames that triggered the
 *     collection and below any finalizer the collection runs.
 *
 * CPython collects on one thread at a time per interpreter (gcstate's
 * "collecting" flag); only the main interpreter's gc.callbacks is used. */
#ifndef HYPROF_PYEXT_GCWATCH_H
#define HYPROF_PYEXT_GCWATCH_H

#include "pyhyprof.h"

#include <stdatomic.h>
#include <stdint.h>

#define HYP_GC_GENS 3 /* the generations gc.callbacks reports: 0, 1, 2 */

typedef struct {
    uint64_t collections[HYP_GC_GENS];
    uint64_t ns[HYP_GC_GENS]; /* from the "start" callback to the "stop" one */
    uint64_t collected[HYP_GC_GENS];
    uint64_t uncollectable[HYP_GC_GENS];
} hyp_gc_totals_t;

/* While a collection runs: the collecting thread state's address with the
 * generation plus one in its low two bits (thread states are aligned to at
 * least 8), else 0; and its Python frame count at the start, as the sampler's
 * walk counts them (HYP_GC_DEPTH_UNKNOWN when no sampler asked for it or the
 * walk was truncated). Written by the collecting thread, read by signal
 * handlers and the wall sampler. */
#define HYP_GC_DEPTH_UNKNOWN 0xffffffffu
extern _Atomic uintptr_t hyp_py_gc_word;
extern _Atomic uint32_t hyp_py_gc_depth;

/* The generation plus one that ts is collecting now, or 0. Async-signal-safe.
 * *depth is the frame count at the collection's start. */
static inline unsigned hyp_py_gc_now(const PyThreadState *ts, uint32_t *depth) {
    uintptr_t w = atomic_load_explicit(&hyp_py_gc_word, memory_order_acquire);

    if (w == 0 || (w & ~(uintptr_t)3) != (uintptr_t)ts)
        return 0;
    *depth = atomic_load_explicit(&hyp_py_gc_depth, memory_order_relaxed);
    return (unsigned)(w & 3);
}

/* Puts the callback in gc.callbacks for one more user (with_depth: a sampler,
 * which needs the collecting thread's frame count), or takes it out when the
 * last one leaves. With the GIL; retain returns 0, or -1 with an exception. */
int hyp_py_gc_retain(int with_depth);
void hyp_py_gc_release(int with_depth);

/* The totals since the extension loaded (counted while the callback was in
 * place). With the GIL. */
void hyp_py_gc_totals(hyp_gc_totals_t *out);

/* Adds the header entries of the collections between since and now to p:
 * per generation N, gc_collections_genN and gc_ns_genN; over all of them,
 * gc_collected and gc_uncollectable (docs/FORMAT.md). Returns 0 or an HYP_E*
 * code. */
int hyp_py_gc_meta(hyp_profile_t *p, const hyp_gc_totals_t *since, const hyp_gc_totals_t *now);

/* The name of the special function a collection of generation gen is
 * recorded as: "[gc] generation 0" ... */
const char *hyp_py_gc_func_name(unsigned gen);

#endif
