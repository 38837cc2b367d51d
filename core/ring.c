/* The sampler's single-producer single-consumer word ring (hyprof/internal/ring.h). */
#include "hyprof/internal/ring.h"

#include "hyprof/internal/util.h"

#include <string.h>

int hyp__ring_init(hyp__ring_t *r, size_t words) {
    size_t cap = 64;

    memset(r, 0, sizeof(*r));
    if (words > ((size_t)1 << 32))
        return HYP_EINVAL;
    while (cap < words)
        cap <<= 1;
    r->buf = hyp__calloc(cap, sizeof(uint64_t));
    if (r->buf == NULL)
        return HYP_ENOMEM;
    r->mask = cap - 1;
    return 0;
}

void hyp__ring_destroy(hyp__ring_t *r) {
    hyp__free(r->buf);
    memset(r, 0, sizeof(*r));
}

void hyp__ring_reset(hyp__ring_t *r) {
    atomic_store(&r->head, 0);
    atomic_store(&r->tail, 0);
    atomic_store(&r->dropped, 0);
    atomic_store(&r->written, 0);
}

int hyp__ring_write(hyp__ring_t *r, const uint64_t *words, size_t n) {
    uint64_t pos;
    size_t i;

    if (hyp__ring_begin(r, n, &pos) < 0)
        return HYP_ELIMIT;
    for (i = 0; i < n; i++)
        hyp__ring_put(r, pos, i, words[i]);
    hyp__ring_commit(r, pos, n);
    return 0;
}
