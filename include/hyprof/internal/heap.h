/* hyprof/internal/heap.h: shared by the core and the CPython binding;
 * not installed, not API.
 *
 * The two pure-C halves of the allocation profiler:
 *
 * - The byte-interval sampler. Allocations are sampled by bytes, as tcmalloc
 *   does: sample points fall on the stream of allocated bytes as a Poisson
 *   process of mean spacing T (exponential gaps), and an allocation is
 *   sampled when at least one point falls inside it. A block of s bytes is
 *   then sampled with probability 1 - exp(-s/T), whatever came before it (the
 *   exponential is memoryless), so weighting each sampled block by
 *   s / (1 - exp(-s/T)) makes the estimate of allocated bytes unbiased, for
 *   any mix of sizes. Gaps are drawn as ceil(Exp(T)) whole bytes, which keeps
 *   both the memorylessness and the formula exact for integer sizes.
 *
 * - The live-heap table: the sampled blocks still allocated, keyed by
 *   address, with a small counting filter in front so that the common free
 *   of an unsampled block costs one load from a 16 KiB array.
 *
 * Neither locks: the caller serialises (the extension calls both with the
 * GIL held). Neither calls into Python. */
#ifndef HYPROF_INTERNAL_HEAP_H
#define HYPROF_INTERNAL_HEAP_H

#include "hyprof/common.h"

#include <stddef.h>
#include <stdint.h>

/* The accepted mean sampling intervals, in bytes. */
#define HYP_HEAP_INTERVAL_MIN 1.0
#define HYP_HEAP_INTERVAL_MAX 1099511627776.0 /* 1 TiB */
#define HYP_HEAP_INTERVAL_DEFAULT 524288.0    /* 512 KiB, tcmalloc's default */

/* ---------------------------------------------------------------- interval sampler */

/* Seeds a generator state from any 64-bit value; the state is never 0. */
uint64_t hyp__heap_seed(uint64_t x);

/* Draws the next gap between sample points: ceil(Exp(mean)) bytes, at least
 * 1. Advances *rng. mean must lie in [HYP_HEAP_INTERVAL_MIN, _MAX]. */
int64_t hyp__heap_next_interval(uint64_t *rng, double mean);

/* The unbiased weight, in bytes, of a sampled block of size bytes:
 * size / (1 - exp(-size / mean)), rounded to the nearest byte. A block of
 * size 0 (a malloc(0)) weighs nothing. */
uint64_t hyp__heap_weight(uint64_t size, double mean);

/* The hook's fast path: counts size bytes down from *countdown and returns
 * nonzero when a sample point fell inside the block (the caller then samples
 * it and draws a new gap with hyp__heap_next_interval()). */
static inline int hyp__heap_tick(int64_t *countdown, size_t size) {
    *countdown -= (int64_t)size;
    return *countdown <= 0;
}

/* Checks a user-supplied mean interval; returns 0 or HYP_EINVAL (NaN, below
 * the minimum, above the maximum). */
int hyp__heap_check_interval(double mean);

/* ---------------------------------------------------------------- live-heap table */

typedef struct {
    uintptr_t ptr;   /* the block's address; 0 marks an empty slot */
    uint64_t size;   /* requested bytes */
    uint64_t weight; /* the estimated bytes the sample stands for */
    uint64_t tag;    /* the caller's reference to the sample (its stack, thread) */
} hyp__live_t;

#define HYP__HEAP_FILTER_BITS 14
#define HYP__HEAP_FILTER_SIZE ((size_t)1 << HYP__HEAP_FILTER_BITS)

typedef struct {
    hyp__live_t *slots; /* open addressing, linear probing, power-of-two capacity */
    size_t mask;        /* capacity - 1, or 0 before the first insert */
    size_t count;
    uint64_t bytes;     /* sum of the live entries' weights */
    /* filter[h] counts the live entries whose address hashes to h; 255 is
     * sticky (never decremented), so a saturated counter only costs lookups. */
    uint8_t filter[HYP__HEAP_FILTER_SIZE];
} hyp__heap_t;

/* Initialises an empty table; allocates nothing until the first insert. */
void hyp__heap_init(hyp__heap_t *h);
/* Frees the slots; the table is empty and usable again afterwards. */
void hyp__heap_destroy(hyp__heap_t *h);

/* Records a live sampled block. An entry already at that address (a block
 * freed behind the profiler's back, for instance before it started) is
 * replaced. Returns 0, HYP_EINVAL for a NULL address, or HYP_ENOMEM (the
 * table is then unchanged). */
int hyp__heap_insert(hyp__heap_t *h, uintptr_t ptr, uint64_t size, uint64_t weight,
                     uint64_t tag);

/* Forgets the block at ptr. Returns 1 and copies the entry to *out (when not
 * NULL) if it was live, 0 if it was not. */
int hyp__heap_remove(hyp__heap_t *h, uintptr_t ptr, hyp__live_t *out);

/* The entry at ptr, or NULL. */
const hyp__live_t *hyp__heap_find(const hyp__heap_t *h, uintptr_t ptr);

/* Iterates: *pos starts at 0; returns the next live entry, or NULL at the end.
 * The table must not change during the iteration. */
const hyp__live_t *hyp__heap_next(const hyp__heap_t *h, size_t *pos);

static inline size_t hyp__heap_filter_index(uintptr_t ptr) {
    /* Blocks are at least 8-byte aligned; Fibonacci hashing spreads the rest. */
    return (size_t)(((uint64_t)ptr * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - HYP__HEAP_FILTER_BITS));
}

/* The free path's test: 0 means ptr is certainly not a live sample; 1 means
 * it may be (call hyp__heap_remove()). */
static inline int hyp__heap_maybe(const hyp__heap_t *h, uintptr_t ptr) {
    return h->filter[hyp__heap_filter_index(ptr)] != 0;
}

#endif /* HYPROF_INTERNAL_HEAP_H */
