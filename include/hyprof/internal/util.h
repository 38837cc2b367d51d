/* hyprof/internal/util.h: shared by the core and the CPython binding;
 * not installed, not API.
 *
 * The core's allocator wrapper and array growth, the seqlock reading of a
 * thread's CPU time, which the binding's engines use as the core does, and
 * the one hash mixer of the hash tables and caches. */
#ifndef HYPROF_INTERNAL_UTIL_H
#define HYPROF_INTERNAL_UTIL_H

#include "hyprof/common.h"

#include <stddef.h>
#include <stdint.h>

/* The allocator wrapper (core/alloc.c). Internal non-static helpers carry the
 * hyp__ prefix. Each returns NULL on failure and never aborts. */
void *hyp__malloc(size_t size);
void *hyp__calloc(size_t count, size_t size);
void *hyp__realloc(void *ptr, size_t size);
void hyp__free(void *ptr);
char *hyp__strdup(const char *s);
char *hyp__strndup(const char *s, size_t n);

/* Grows *ptr (an array of elem-sized items with capacity *cap) so that it
 * holds at least need items; doubles to amortise. Returns 0 or HYP_ENOMEM,
 * leaving the array unchanged on failure. */
int hyp__grow(void **ptr, size_t *cap, size_t need, size_t elem);

/* The calling thread's CPU time in ns (*ns) and hyp_clock_ticks() at the
 * same instant (*ticks), both read between two reads of *lock, the seqlock
 * word of a perf event's control page, which the kernel bumps when the
 * thread is scheduled in or out (core/clock.c). Returns the word they were
 * stable at; after three tries that each saw the thread switched, the last
 * word + 1 (the pair is still a fair reading, only not known to be
 * unswitched). Async-signal-safe. */
uint32_t hyp__cpu_pair(volatile const uint32_t *lock, uint64_t *ns, uint64_t *ticks);

/* Mixes 64 bits into a well-spread hash (the splitmix64 finaliser). */
static inline uint64_t hyp__mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

#define HYP__UNUSED(x) ((void)(x))
#define HYP__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif /* HYPROF_INTERNAL_UTIL_H */
