/* hyprof/internal/ring.h: shared by the core and the CPython binding;
 * not installed, not API.
 *
 * A single-producer single-consumer ring of 64-bit words, lock-free, for the
 * sampler: the producer is a signal handler on one thread (or the wall-clock
 * sampler's thread, for its own ring), the consumer the resolver. The producer side never allocates, never
 * locks and never calls into libc, so it is async-signal-safe; it only needs
 * lock-free 64-bit atomics (checked below).
 *
 * Records are variable-length runs of words. The producer asks for room with
 * hyp__ring_begin(), stores the words with hyp__ring_put(), and publishes them
 * at once with hyp__ring_commit(); the consumer sees whole records only. A
 * record that does not fit is not written and counted in `dropped`, so a full
 * ring loses samples visibly, never silently. Positions are free-running
 * 64-bit word counts (they never wrap in practice), indexed modulo the
 * capacity, so a record may straddle the end of the buffer. */
#ifndef HYPROF_INTERNAL_RING_H
#define HYPROF_INTERNAL_RING_H

#include "hyprof/common.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#if ATOMIC_LLONG_LOCK_FREE != 2
#error "the sample ring needs lock-free 64-bit atomics"
#endif

typedef struct {
    uint64_t *buf;
    uint64_t mask;             /* capacity - 1; the capacity is a power of two */
    _Atomic uint64_t head;     /* next word the producer writes; producer-owned */
    _Atomic uint64_t tail;     /* next word the consumer reads; consumer-owned */
    _Atomic uint64_t dropped;  /* records refused for lack of room; producer-owned */
    _Atomic uint64_t written;  /* records committed; producer-owned */
} hyp__ring_t;

/* Allocates a ring of at least `words` words (rounded up to a power of two,
 * minimum 64). Returns 0, HYP_EINVAL (words beyond 2^32) or HYP_ENOMEM; on
 * failure the ring is left zeroed. */
int hyp__ring_init(hyp__ring_t *r, size_t words);
/* Frees the buffer. Neither side may use the ring any more. */
void hyp__ring_destroy(hyp__ring_t *r);
/* Forgets every unread word and zeroes the counters. Only when neither side
 * is running (between profiling sessions). */
void hyp__ring_reset(hyp__ring_t *r);
/* Producer side, outside signal handlers: copies n words as one record.
 * Returns 0, or HYP_ELIMIT when there is no room (counted as dropped). */
int hyp__ring_write(hyp__ring_t *r, const uint64_t *words, size_t n);

static inline size_t hyp__ring_capacity(const hyp__ring_t *r) {
    return (size_t)(r->mask + 1);
}

/* Producer: reserves n words. Returns 0 and sets *pos, or -1 when they do not
 * fit (the record is then counted as dropped). */
static inline int hyp__ring_begin(hyp__ring_t *r, size_t n, uint64_t *pos) {
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);

    if (r->buf == NULL || head - tail + n > r->mask + 1) {
        atomic_store_explicit(&r->dropped,
                              atomic_load_explicit(&r->dropped, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        return -1;
    }
    *pos = head;
    return 0;
}

static inline void hyp__ring_put(hyp__ring_t *r, uint64_t pos, size_t i, uint64_t word) {
    r->buf[(pos + i) & r->mask] = word;
}

/* Producer: publishes the n words reserved at pos. */
static inline void hyp__ring_commit(hyp__ring_t *r, uint64_t pos, size_t n) {
    atomic_store_explicit(&r->written,
                          atomic_load_explicit(&r->written, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&r->head, pos + n, memory_order_release);
}

/* Consumer: the number of committed words not yet released, and the position
 * of the first one. */
static inline size_t hyp__ring_readable(hyp__ring_t *r, uint64_t *pos) {
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);

    *pos = tail;
    return (size_t)(head - tail);
}

static inline uint64_t hyp__ring_get(const hyp__ring_t *r, uint64_t pos) {
    return r->buf[pos & r->mask];
}

/* Consumer: gives n words back to the producer. */
static inline void hyp__ring_release(hyp__ring_t *r, size_t n) {
    atomic_store_explicit(&r->tail, atomic_load_explicit(&r->tail, memory_order_relaxed) + n,
                          memory_order_release);
}

static inline uint64_t hyp__ring_dropped(hyp__ring_t *r) {
    return atomic_load_explicit(&r->dropped, memory_order_relaxed);
}

static inline uint64_t hyp__ring_written(hyp__ring_t *r) {
    return atomic_load_explicit(&r->written, memory_order_relaxed);
}

#endif /* HYPROF_INTERNAL_RING_H */
