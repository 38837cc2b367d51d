/* core/htab.h: internal to the hyprof core; not installed, not API.
 *
 * An open-addressing hash set of dense uint32 ids. The table stores only ids;
 * the entries live in the caller's arrays, so the caller supplies the hash of
 * an id (to rehash) and the equality test (to probe). Linear probing, load
 * factor at most 1/2, capacity a power of two. Used to intern strings,
 * functions and nodes, and to find (thread, node) rows. */
#ifndef HYPROF_CORE_HTAB_H
#define HYPROF_CORE_HTAB_H

#include "hyprof/internal/util.h"

#include <stdint.h>

typedef struct {
    uint32_t *slots; /* id + 1; 0 marks an empty slot */
    size_t cap;      /* a power of two, or 0 before the first insertion */
    size_t count;
} hyp__htab_t;

static inline uint64_t hyp__hash_bytes(const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then mixed */
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return hyp__mix64(h ^ len);
}

static inline void hyp__htab_destroy(hyp__htab_t *h) {
    hyp__free(h->slots);
    h->slots = NULL;
    h->cap = h->count = 0;
}

/* Makes room for one more id. hash_of(ctx, id) gives the hash of an id
 * already in the table. Returns 0 or HYP_ENOMEM (the table is unchanged). */
static inline int hyp__htab_reserve(hyp__htab_t *h, uint64_t (*hash_of)(const void *, uint32_t),
                                    const void *ctx) {
    size_t ncap, i, mask;
    uint32_t *slots;

    if ((h->count + 1) * 2 <= h->cap)
        return 0;
    ncap = h->cap ? h->cap * 2 : 64;
    if (ncap > SIZE_MAX / sizeof(uint32_t) / 2)
        return HYP_ENOMEM;
    slots = hyp__calloc(ncap, sizeof(uint32_t));
    if (slots == NULL)
        return HYP_ENOMEM;
    mask = ncap - 1;
    for (i = 0; i < h->cap; i++) {
        uint32_t v = h->slots[i];
        size_t j;

        if (v == 0)
            continue;
        j = (size_t)hash_of(ctx, v - 1) & mask;
        while (slots[j] != 0)
            j = (j + 1) & mask;
        slots[j] = v;
    }
    hyp__free(h->slots);
    h->slots = slots;
    h->cap = ncap;
    return 0;
}

/* Returns the slot where an id equal to the key is, or the empty slot where
 * it would go (check slots[i] == 0). The table must have a capacity. */
#define HYP__HTAB_PROBE(h, hash, i, eq_expr)                                                    \
    do {                                                                                       \
        size_t hyp__mask = (h)->cap - 1;                                                       \
        (i) = (size_t)(hash)&hyp__mask;                                                        \
        while ((h)->slots[(i)] != 0) {                                                         \
            uint32_t hid = (h)->slots[(i)] - 1;                                                \
            if (eq_expr)                                                                       \
                break;                                                                         \
            (i) = ((i) + 1) & hyp__mask;                                                       \
        }                                                                                      \
    } while (0)

#endif /* HYPROF_CORE_HTAB_H */
