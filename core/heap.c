/* The byte-interval sampler and the live-heap table (hyprof/internal/heap.h). */
#include "hyprof/internal/heap.h"

#include "hyprof/internal/util.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- interval sampler */

uint64_t hyp__heap_seed(uint64_t x) {
    /* splitmix64's finaliser: distinct inputs give well-spread states. */
    x += UINT64_C(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    x ^= x >> 31;
    return x ? x : UINT64_C(0x2545F4914F6CDD1D);
}

static uint64_t hyp__heap_rand(uint64_t *state) {
    /* xorshift64*: one multiply, period 2^64 - 1; its weaker low bits do not
     * matter since only the top 53 are used. */
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

int64_t hyp__heap_next_interval(uint64_t *rng, double mean) {
    /* u is uniform in the open interval (0, 1), so log(u) is finite and < 0. */
    double u = ((double)(hyp__heap_rand(rng) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double gap = ceil(-log(u) * mean);

    if (gap < 1.0)
        return 1;
    if (gap > 4.0e18) /* beyond int64; only reachable with the largest means */
        return INT64_C(4000000000000000000);
    return (int64_t)gap;
}

uint64_t hyp__heap_weight(uint64_t size, double mean) {
    double s = (double)size;
    double p;

    if (size == 0)
        return 0;
    /* -expm1(-x) is 1 - exp(-x) without cancellation for small x. */
    p = -expm1(-s / mean);
    if (!(p > 0.0))
        return size;
    s = s / p + 0.5;
    return s >= 1.8e19 ? UINT64_MAX : (uint64_t)s;
}

int hyp__heap_check_interval(double mean) {
    if (!(mean >= HYP_HEAP_INTERVAL_MIN && mean <= HYP_HEAP_INTERVAL_MAX))
        return HYP_EINVAL;
    return 0;
}

/* ---------------------------------------------------------------- live-heap table */

static size_t hyp__heap_slot(uintptr_t ptr, size_t mask) {
    uint64_t x = (uint64_t)ptr;

    /* murmur3's fmix64: independent of the filter's hash. */
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return (size_t)x & mask;
}

void hyp__heap_init(hyp__heap_t *h) {
    memset(h, 0, sizeof(*h));
}

void hyp__heap_destroy(hyp__heap_t *h) {
    hyp__free(h->slots);
    hyp__heap_init(h);
}

static int hyp__heap_resize(hyp__heap_t *h, size_t cap) {
    hyp__live_t *slots = hyp__calloc(cap, sizeof(*slots));
    size_t i;

    if (slots == NULL)
        return HYP_ENOMEM;
    if (h->slots != NULL) {
        for (i = 0; i <= h->mask; i++) {
            size_t j;

            if (h->slots[i].ptr == 0)
                continue;
            j = hyp__heap_slot(h->slots[i].ptr, cap - 1);
            while (slots[j].ptr != 0)
                j = (j + 1) & (cap - 1);
            slots[j] = h->slots[i];
        }
        hyp__free(h->slots);
    }
    h->slots = slots;
    h->mask = cap - 1;
    return 0;
}

static hyp__live_t *hyp__heap_lookup(const hyp__heap_t *h, uintptr_t ptr) {
    size_t i;

    if (h->slots == NULL)
        return NULL;
    for (i = hyp__heap_slot(ptr, h->mask); h->slots[i].ptr != 0; i = (i + 1) & h->mask)
        if (h->slots[i].ptr == ptr)
            return &h->slots[i];
    return NULL;
}

const hyp__live_t *hyp__heap_find(const hyp__heap_t *h, uintptr_t ptr) {
    if (ptr == 0 || !hyp__heap_maybe(h, ptr))
        return NULL;
    return hyp__heap_lookup(h, ptr);
}

int hyp__heap_insert(hyp__heap_t *h, uintptr_t ptr, uint64_t size, uint64_t weight,
                     uint64_t tag) {
    hyp__live_t *e;
    uint8_t *f;
    size_t i;

    if (ptr == 0)
        return HYP_EINVAL;
    e = hyp__heap_lookup(h, ptr);
    if (e != NULL) {
        h->bytes = h->bytes - e->weight + weight;
        e->size = size;
        e->weight = weight;
        e->tag = tag;
        return 0;
    }
    /* Keep the load factor at most 1/2 so probes stay short. */
    if (h->slots == NULL || (h->count + 1) * 2 > h->mask + 1) {
        size_t cap = h->slots == NULL ? 64 : (h->mask + 1) * 2;

        if (cap > SIZE_MAX / sizeof(hyp__live_t) || hyp__heap_resize(h, cap) < 0)
            return HYP_ENOMEM;
    }
    for (i = hyp__heap_slot(ptr, h->mask); h->slots[i].ptr != 0; i = (i + 1) & h->mask)
        ;
    h->slots[i].ptr = ptr;
    h->slots[i].size = size;
    h->slots[i].weight = weight;
    h->slots[i].tag = tag;
    h->count++;
    h->bytes += weight;
    f = &h->filter[hyp__heap_filter_index(ptr)];
    if (*f != UINT8_MAX)
        (*f)++;
    return 0;
}

int hyp__heap_remove(hyp__heap_t *h, uintptr_t ptr, hyp__live_t *out) {
    hyp__live_t *e;
    uint8_t *f;
    size_t i, j;

    if (ptr == 0 || !hyp__heap_maybe(h, ptr))
        return 0;
    e = hyp__heap_lookup(h, ptr);
    if (e == NULL)
        return 0;
    if (out != NULL)
        *out = *e;
    h->count--;
    h->bytes -= e->weight;
    f = &h->filter[hyp__heap_filter_index(ptr)];
    if (*f != UINT8_MAX)
        (*f)--;
    /* Backward-shift deletion: move later members of the probe run into the
     * hole when their home slot does not lie cyclically in (hole, j]. */
    i = (size_t)(e - h->slots);
    j = i;
    for (;;) {
        size_t home;

        h->slots[i].ptr = 0;
        for (;;) {
            j = (j + 1) & h->mask;
            if (h->slots[j].ptr == 0)
                return 1;
            home = hyp__heap_slot(h->slots[j].ptr, h->mask);
            if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
                break;
        }
        h->slots[i] = h->slots[j];
        i = j;
    }
}

const hyp__live_t *hyp__heap_next(const hyp__heap_t *h, size_t *pos) {
    if (h->slots == NULL)
        return NULL;
    while (*pos <= h->mask) {
        const hyp__live_t *e = &h->slots[(*pos)++];

        if (e->ptr != 0)
            return e;
    }
    return NULL;
}
