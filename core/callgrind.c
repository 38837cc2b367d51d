/* The function blocks of the callgrind format (include/hyprof/callgrind.h).
 *
 * Everything is arrays of small records sorted with qsort: the edges of the
 * aggregation (hyprof/aggregate.h) mapped to output functions, the nodes'
 * own costs per (function, line) and, where nodes carry lines, their call
 * sites per (caller, callee, caller's line, callee's line). Sums saturate at
 * UINT64_MAX, so a hostile trace's values cannot wrap around; the split of an
 * edge's cost over its sites is exact (a 128-bit product). */
#include "hyprof/callgrind.h"
#include "hyprof/aggregate.h"
#include "hyprof/internal/util.h"

#include <stdlib.h>
#include <string.h>

static inline uint64_t hyp__sat_add(uint64_t a, uint64_t b) {
    uint64_t s = a + b;
    return s < a ? UINT64_MAX : s;
}

/* floor(a * b / c) for b <= c and c > 0. The product's high word is below c
 * (a < 2^64 and b <= c), so the quotient fits in 64 bits; it comes from a
 * long division of the 128-bit product, a bit at a time. */
static uint64_t hyp__muldiv(uint64_t a, uint64_t b, uint64_t c) {
    uint64_t ll = (a & 0xffffffffu) * (b & 0xffffffffu), lh = (a & 0xffffffffu) * (b >> 32);
    uint64_t hl = (a >> 32) * (b & 0xffffffffu), hh = (a >> 32) * (b >> 32);
    uint64_t mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
    uint64_t lo = (ll & 0xffffffffu) | mid << 32;
    uint64_t r = hh + (lh >> 32) + (hl >> 32) + (mid >> 32), q = 0;
    int i;

    for (i = 63; i >= 0; i--) {
        uint64_t top = r >> 63;

        r = r << 1 | (lo >> i & 1);
        q <<= 1;
        if (top || r >= c) {
            r -= c;
            q |= 1;
        }
    }
    return q;
}

/* ---------------------------------------------------------------- output */

typedef struct {
    hyp_callgrind_write_func write;
    void *ctx;
    char buf[65536];
    size_t len;
    int err;
} hyp__cg_out_t;

static void hyp__cg_flush(hyp__cg_out_t *o) {
    if (o->err == 0 && o->len > 0)
        o->err = o->write(o->ctx, o->buf, o->len);
    o->len = 0;
}

static void hyp__cg_put(hyp__cg_out_t *o, const char *s, size_t n) {
    while (n > 0) {
        size_t k = sizeof(o->buf) - o->len;

        if (k == 0) {
            hyp__cg_flush(o);
            k = sizeof(o->buf);
        }
        if (k > n)
            k = n;
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
    }
}

static void hyp__cg_str(hyp__cg_out_t *o, const char *s) {
    hyp__cg_put(o, s, strlen(s));
}

static void hyp__cg_u64(hyp__cg_out_t *o, uint64_t v) {
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    hyp__cg_put(o, tmp + i, sizeof(tmp) - i);
}

/* " c1 c2 ...\n" */
static void hyp__cg_costs(hyp__cg_out_t *o, const uint64_t *c, size_t n) {
    size_t j;

    for (j = 0; j < n; j++) {
        hyp__cg_put(o, " ", 1);
        hyp__cg_u64(o, c[j]);
    }
    hyp__cg_put(o, "\n", 1);
}

/* ---------------------------------------------------------------- records */

typedef struct {
    uint32_t a, b; /* caller (nfuncs: the program) and callee */
    uint32_t order; /* the first aggregation edge of the pair */
    uint32_t id;    /* its row of calls and costs */
} hyp__cg_edge_t;

typedef struct {
    uint32_t f, g;         /* caller and callee (a call site); f and line (own cost) */
    uint32_t line, gline;  /* caller's line and callee's first line */
    uint32_t id;           /* the node, or the row of costs */
} hyp__cg_site_t;

typedef struct {
    const char *file;
    uint32_t first, f;
} hyp__cg_file_t;

typedef struct {
    uint32_t outside; /* the caller is not in the callee's component */
    uint32_t pos;
    uint64_t cost;
    uint32_t id;
} hyp__cg_cut_t;

#define HYP__CMP(x, y)                                                                          \
    do {                                                                                       \
        if ((x) != (y))                                                                        \
            return (x) < (y) ? -1 : 1;                                                         \
    } while (0)

static int hyp__cg_edge_by_pair(const void *x, const void *y) {
    const hyp__cg_edge_t *a = x, *b = y;

    HYP__CMP(a->a, b->a);
    HYP__CMP(a->b, b->b);
    HYP__CMP(a->order, b->order);
    return 0;
}

/* Sorts edges by caller (by_caller) or callee in O(n + keys), keeping the
 * order of equal keys: from edges in aggregation order, by callee gives
 * (callee, order); then by caller gives (caller, callee, order). */
static int hyp__cg_count_sort(hyp__cg_edge_t *e, size_t n, size_t nkeys, int by_caller) {
    size_t *at = hyp__calloc(nkeys + 1, sizeof(size_t)), i;
    hyp__cg_edge_t *tmp = hyp__malloc((n ? n : 1) * sizeof(*tmp));

    if (at == NULL || tmp == NULL) {
        hyp__free(at);
        hyp__free(tmp);
        return HYP_ENOMEM;
    }
    for (i = 0; i < n; i++)
        at[(by_caller ? e[i].a : e[i].b) + 1]++;
    for (i = 0; i < nkeys; i++)
        at[i + 1] += at[i];
    for (i = 0; i < n; i++)
        tmp[at[by_caller ? e[i].a : e[i].b]++] = e[i];
    memcpy(e, tmp, n * sizeof(*e));
    hyp__free(at);
    hyp__free(tmp);
    return 0;
}

static int hyp__cg_site_cmp(const void *x, const void *y) {
    const hyp__cg_site_t *a = x, *b = y;

    HYP__CMP(a->f, b->f);
    HYP__CMP(a->line, b->line);
    HYP__CMP(a->g, b->g);
    HYP__CMP(a->gline, b->gline);
    HYP__CMP(a->id, b->id);
    return 0;
}

/* Call sites grouped by edge: (caller, callee, caller's line, callee's line). */
static int hyp__cg_site_by_edge(const void *x, const void *y) {
    const hyp__cg_site_t *a = x, *b = y;

    HYP__CMP(a->f, b->f);
    HYP__CMP(a->g, b->g);
    HYP__CMP(a->line, b->line);
    HYP__CMP(a->gline, b->gline);
    HYP__CMP(a->id, b->id);
    return 0;
}

static int hyp__cg_file_cmp(const void *x, const void *y) {
    const hyp__cg_file_t *a = x, *b = y;
    int c = strcmp(a->file, b->file);

    if (c != 0)
        return c;
    HYP__CMP(a->first, b->first);
    HYP__CMP(a->f, b->f);
    return 0;
}

static int hyp__cg_cut_cmp(const void *x, const void *y) {
    const hyp__cg_cut_t *a = x, *b = y;

    HYP__CMP(a->outside, b->outside);
    HYP__CMP(b->cost, a->cost);
    HYP__CMP(a->pos, b->pos);
    return 0;
}

/* ---------------------------------------------------------------- the writer */

typedef struct {
    const hyp_callgrind_spec_t *s;
    size_t nc;     /* cost columns */
    uint32_t root; /* the program's number: s->nfuncs */
    /* The edges, and per edge id its calls and ncosts costs. */
    hyp__cg_edge_t *edges;
    size_t nedges;
    uint64_t *ecalls, *ecost;
    /* Per function: own costs and totals (nfuncs * nc). */
    uint64_t *own, *target;
    uint32_t *comp; /* strongly connected component per function, or NULL */
    /* Own costs per (function, line): sites with g = gline = 0, costs in scost. */
    hyp__cg_site_t *self;
    size_t nself;
    uint64_t *scost;
    /* Call sites, costs in ccost, calls in ccalls. */
    hyp__cg_site_t *calls;
    size_t ncalls;
    uint64_t *ccost, *ccalls;
} hyp__cg_t;

/* Tarjan's algorithm without recursion over the edges: comp[v] is the first
 * vertex of v's component to be finished. */
static int hyp__cg_components(hyp__cg_t *w) {
    size_t nv = (size_t)w->root + 1, i, top = 0, sp = 0, next = 0;
    size_t *start = hyp__calloc(nv + 1, sizeof(size_t));
    uint32_t *adj = hyp__malloc((w->nedges ? w->nedges : 1) * sizeof(uint32_t));
    uint32_t *index = hyp__malloc(nv * sizeof(uint32_t)), *low = hyp__malloc(nv * sizeof(uint32_t));
    uint32_t *stack = hyp__malloc(nv * sizeof(uint32_t));
    unsigned char *on = hyp__calloc(nv, 1);
    struct {
        uint32_t v;
        size_t at;
    } *work = hyp__malloc(nv * sizeof(*work));
    int rc = HYP_ENOMEM;

    w->comp = hyp__malloc(nv * sizeof(uint32_t));
    if (!start || !adj || !index || !low || !stack || !on || !work || !w->comp)
        goto out;
    for (i = 0; i < w->nedges; i++)
        start[w->edges[i].a + 1]++;
    for (i = 0; i < nv; i++)
        start[i + 1] += start[i];
    for (i = 0; i < nv; i++) /* low: each caller's next free slot in adj, for now */
        low[i] = (uint32_t)start[i];
    for (i = 0; i < w->nedges; i++)
        adj[low[w->edges[i].a]++] = w->edges[i].b;
    for (i = 0; i < nv; i++)
        index[i] = UINT32_MAX;
    for (i = 0; i < nv; i++) {
        if (index[i] != UINT32_MAX || start[i] == start[i + 1])
            continue;
        index[i] = low[i] = (uint32_t)next++;
        stack[sp++] = (uint32_t)i;
        on[i] = 1;
        work[0].v = (uint32_t)i;
        work[0].at = start[i];
        top = 1;
        while (top > 0) {
            uint32_t v = work[top - 1].v;

            if (work[top - 1].at < start[v + 1]) {
                uint32_t x = adj[work[top - 1].at++];

                if (index[x] == UINT32_MAX) {
                    index[x] = low[x] = (uint32_t)next++;
                    stack[sp++] = x;
                    on[x] = 1;
                    work[top].v = x;
                    work[top].at = start[x];
                    top++;
                } else if (on[x] && index[x] < low[v]) {
                    low[v] = index[x];
                }
                continue;
            }
            top--;
            if (top > 0 && low[v] < low[work[top - 1].v])
                low[work[top - 1].v] = low[v];
            if (low[v] == index[v]) {
                uint32_t x;

                do {
                    x = stack[--sp];
                    on[x] = 0;
                    w->comp[x] = v;
                } while (x != v);
            }
        }
    }
    for (i = 0; i < nv; i++) /* vertices without edges: their own component */
        if (index[i] == UINT32_MAX)
            w->comp[i] = (uint32_t)i;
    rc = 0;
out:
    hyp__free(start);
    hyp__free(adj);
    hyp__free(index);
    hyp__free(low);
    hyp__free(stack);
    hyp__free(on);
    hyp__free(work);
    return rc;
}

static int hyp__cg_edge_by_order(const void *x, const void *y) {
    const hyp__cg_edge_t *a = x, *b = y;

    HYP__CMP(a->order, b->order);
    return 0;
}

/* 0 if every profile function has an output function of its own, 1 if some
 * share one, or HYP_ENOMEM. */
static int hyp__cg_injective(const hyp_callgrind_spec_t *s, size_t nfp) {
    unsigned char *seen = hyp__calloc(s->nfuncs + 1, 1);
    size_t i;
    int shared = 0;

    if (seen == NULL)
        return HYP_ENOMEM;
    for (i = 0; i < nfp && !shared; i++) {
        shared = seen[s->index[i]];
        seen[s->index[i]] = 1;
    }
    hyp__free(seen);
    return shared;
}

/* The aggregation's edges and per-function totals, mapped to output
 * functions; pairs that map to one are merged. */
static int hyp__cg_collect(hyp__cg_t *w, const hyp_profile_t *p) {
    const hyp_callgrind_spec_t *s = w->s;
    size_t nc = w->nc, nfp = hyp_profile_func_count(p), i, j, n = 0, ne;
    hyp_flat_t *flat = NULL;
    int rc = hyp_flat_compute(p, HYP_NO_ID, &flat);

    if (rc < 0)
        return rc;
    ne = hyp_flat_edge_count(flat);
    rc = HYP_ENOMEM;
    w->own = hyp__calloc(s->nfuncs ? s->nfuncs * nc : 1, sizeof(uint64_t));
    w->target = hyp__calloc(s->nfuncs ? s->nfuncs * nc : 1, sizeof(uint64_t));
    w->edges = hyp__malloc((ne ? ne : 1) * sizeof(*w->edges));
    w->ecalls = hyp__calloc(ne ? ne : 1, sizeof(uint64_t));
    w->ecost = hyp__calloc(ne ? ne * nc : 1, sizeof(uint64_t));
    if (!w->own || !w->target || !w->edges || !w->ecalls || !w->ecost)
        goto out;
    for (i = 0; i < hyp_flat_count(flat); i++) {
        const hyp_flat_entry_t *e = hyp_flat_at(flat, i);
        uint64_t *own = w->own + (size_t)s->index[e->func] * nc;
        uint64_t *tot = w->target + (size_t)s->index[e->func] * nc;

        for (j = 0; j < nc; j++) {
            own[j] = hyp__sat_add(own[j], e->own[s->cost[j]]);
            if (s->cum[j] != HYP_CALLGRIND_NONE)
                tot[j] = hyp__sat_add(tot[j], e->cum[s->cum[j]]);
        }
    }
    for (i = 0; i < ne; i++) {
        const hyp_edge_t *e = hyp_flat_edge_at(flat, i);

        if (e->callee >= nfp || (e->caller != HYP_NO_ID && e->caller >= nfp))
            continue;
        w->edges[n].a = e->caller == HYP_NO_ID ? w->root : s->index[e->caller];
        w->edges[n].b = s->index[e->callee];
        w->edges[n].order = (uint32_t)i;
        w->edges[n].id = (uint32_t)n;
        if (s->calls != HYP_CALLGRIND_NONE)
            w->ecalls[n] = e->own[s->calls];
        for (j = 0; j < nc; j++)
            w->ecost[n * nc + j] = s->cum[j] == HYP_CALLGRIND_NONE ? 0 : e->cum[s->cum[j]];
        n++;
    }
    hyp_flat_free(flat);
    flat = NULL;
    w->nedges = n;
    /* Pairs are unique unless functions share an output number. */
    if ((rc = hyp__cg_injective(s, nfp)) <= 0)
        goto out;
    rc = HYP_ENOMEM;
    qsort(w->edges, n, sizeof(*w->edges), hyp__cg_edge_by_pair);
    ne = n;
    n = 0;
    for (i = 0; i < ne; i++) {
        if (n > 0 && w->edges[n - 1].a == w->edges[i].a && w->edges[n - 1].b == w->edges[i].b) {
            uint32_t to = w->edges[n - 1].id, from = w->edges[i].id;

            w->ecalls[to] = hyp__sat_add(w->ecalls[to], w->ecalls[from]);
            for (j = 0; j < nc; j++)
                w->ecost[to * nc + j] = hyp__sat_add(w->ecost[to * nc + j],
                                                     w->ecost[from * nc + j]);
            continue;
        }
        w->edges[n++] = w->edges[i];
    }
    w->nedges = n;
    /* Back into aggregation order (the first edge of each pair). */
    qsort(w->edges, n, sizeof(*w->edges), hyp__cg_edge_by_order);
    rc = 0;
out:
    hyp_flat_free(flat);
    return rc;
}

/* Makes every function's incoming call costs add up to its total (see the
 * header), column by column. */
static int hyp__cg_adjust(hyp__cg_t *w) {
    size_t nc = w->nc, nv = (size_t)w->root + 1, j, k, lo, hi;
    hyp__cg_cut_t *cut = NULL;
    int rc;

    /* The adjustment wants the edges by callee, in aggregation order. */
    if ((rc = hyp__cg_count_sort(w->edges, w->nedges, nv, 0)) < 0)
        return rc;
    for (lo = 0; lo < w->nedges; lo = hi) {
        uint32_t b = w->edges[lo].b;

        for (hi = lo; hi < w->nedges && w->edges[hi].b == b; hi++)
            ;
        if (b == w->root) /* nothing calls the program */
            continue;
        for (j = 0; j < nc; j++) {
            uint64_t sum = 0, goal = w->target[(size_t)b * nc + j], excess;

            for (k = lo; k < hi; k++)
                sum = hyp__sat_add(sum, w->ecost[(size_t)w->edges[k].id * nc + j]);
            if (sum == goal)
                continue;
            if (sum < goal) { /* short: the costliest caller (the first such) gets it */
                size_t best = lo;

                for (k = lo + 1; k < hi; k++)
                    if (w->ecost[(size_t)w->edges[k].id * nc + j] >
                        w->ecost[(size_t)w->edges[best].id * nc + j])
                        best = k;
                w->ecost[(size_t)w->edges[best].id * nc + j] =
                    hyp__sat_add(w->ecost[(size_t)w->edges[best].id * nc + j], goal - sum);
                continue;
            }
            if (w->comp == NULL && (rc = hyp__cg_components(w)) < 0)
                goto fail;
            if (cut == NULL && (cut = hyp__malloc(w->nedges * sizeof(*cut))) == NULL)
                goto nomem;
            for (k = lo; k < hi; k++) {
                cut[k - lo].outside = w->comp[w->edges[k].a] != w->comp[b];
                cut[k - lo].pos = (uint32_t)(k - lo);
                cut[k - lo].id = w->edges[k].id;
                cut[k - lo].cost = w->ecost[(size_t)w->edges[k].id * nc + j];
            }
            qsort(cut, hi - lo, sizeof(*cut), hyp__cg_cut_cmp);
            excess = sum - goal;
            for (k = 0; k < hi - lo && excess > 0; k++) {
                uint64_t *c = &w->ecost[(size_t)cut[k].id * nc + j];
                uint64_t take = excess < *c ? excess : *c;

                *c -= take;
                excess -= take;
            }
        }
    }
    hyp__free(cut);
    return hyp__cg_count_sort(w->edges, w->nedges, nv, 1); /* (caller, callee, order) */
nomem:
    rc = HYP_ENOMEM;
fail:
    hyp__free(cut);
    return rc;
}

/* The edge (a, b)'s row, or -1; the edges sorted by pair. */
static int64_t hyp__cg_edge_row(const hyp__cg_t *w, uint32_t a, uint32_t b) {
    size_t lo = 0, hi = w->nedges;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const hyp__cg_edge_t *e = &w->edges[mid];

        if (e->a < a || (e->a == a && e->b < b))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < w->nedges && w->edges[lo].a == a && w->edges[lo].b == b)
        return w->edges[lo].id;
    return -1;
}

/* A profile without lines: a function's own cost on its first line, an
 * edge's on one site. The functions written are the callees and the program. */
static int hyp__cg_by_function(hyp__cg_t *w, const hyp_profile_t *p) {
    const hyp_callgrind_spec_t *s = w->s;
    size_t nc = w->nc, i, j, n;
    unsigned char *seen = hyp__calloc((size_t)w->root + 1, 1);

    w->self = hyp__malloc((w->nedges + 1) * sizeof(*w->self));
    w->scost = hyp__calloc((w->nedges + 1) * nc, sizeof(uint64_t));
    w->calls = hyp__malloc((w->nedges ? w->nedges : 1) * sizeof(*w->calls));
    if (!seen || !w->self || !w->scost || !w->calls) {
        hyp__free(seen);
        return HYP_ENOMEM;
    }
    /* The program's own cost: the root node's, in every thread. */
    w->self[0].f = w->root;
    w->self[0].line = w->self[0].g = w->self[0].gline = 0;
    w->self[0].id = 0;
    for (i = 0; i < hyp_profile_row_count(p); i++) {
        hyp_id_t node;
        const uint64_t *row = hyp_profile_row_at(p, i, NULL, &node, NULL);

        if (row != NULL && node == 0)
            for (j = 0; j < nc; j++)
                w->scost[j] = hyp__sat_add(w->scost[j], row[s->cost[j]]);
    }
    seen[w->root] = 1;
    n = 1;
    for (i = 0; i < w->nedges; i++) {
        const hyp__cg_edge_t *e = &w->edges[i];
        hyp__cg_site_t *c = &w->calls[i];

        c->f = e->a;
        c->g = e->b;
        c->line = e->a == w->root ? 0 : s->first[e->a];
        c->gline = s->first[e->b];
        c->id = e->id;
        if (!seen[e->b]) {
            seen[e->b] = 1;
            w->self[n].f = e->b;
            w->self[n].line = s->first[e->b];
            w->self[n].g = w->self[n].gline = 0;
            w->self[n].id = (uint32_t)n;
            memcpy(w->scost + n * nc, w->own + (size_t)e->b * nc, nc * sizeof(uint64_t));
            n++;
        }
    }
    hyp__free(seen);
    w->nself = n;
    w->ncalls = w->nedges;
    w->ccost = w->ecost; /* the calls are the edges: rows by edge id */
    w->ccalls = w->ecalls;
    return 0;
}

/* A profile whose nodes carry lines: own costs per executing line, call
 * sites per (caller's line, callee's first line), each edge's cost split over
 * its sites in proportion to their inclusive values. */
static int hyp__cg_by_line(hyp__cg_t *w, const hyp_profile_t *p) {
    const hyp_callgrind_spec_t *s = w->s;
    const hyp_node_t *nodes = hyp_profile_nodes(p);
    size_t nn = hyp_profile_node_count(p), m = hyp_profile_metric_count(p), nc = w->nc;
    size_t i, j, k, lo, hi, n;
    uint64_t *vals = hyp__malloc(nn * m * sizeof(uint64_t) + 1);
    uint64_t *inc = hyp__malloc(nn * nc * sizeof(uint64_t) + 1);
    uint32_t *pos = hyp__malloc(nn * sizeof(uint32_t) + 1);
    hyp__cg_site_t *sites = hyp__malloc(nn * sizeof(*sites) + 1);
    int rc = HYP_ENOMEM;

    w->self = hyp__malloc(nn * sizeof(*w->self) + 1);
    w->scost = hyp__calloc(nn * nc + 1, sizeof(uint64_t));
    w->calls = hyp__malloc(nn * sizeof(*w->calls) + 1);
    w->ccost = hyp__calloc(nn * nc + 1, sizeof(uint64_t));
    w->ccalls = hyp__calloc(nn + 1, sizeof(uint64_t));
    if (!vals || !inc || !pos || !sites || !w->self || !w->scost || !w->calls || !w->ccost ||
        !w->ccalls)
        goto out;
    if ((rc = hyp_profile_node_values(p, HYP_NO_ID, vals)) < 0)
        goto out;
    for (i = 0; i < nn; i++) {
        for (j = 0; j < nc; j++)
            inc[i * nc + j] = vals[i * m + s->cost[j]];
        pos[i] = nodes[i].line ? nodes[i].line : i ? s->first[s->index[nodes[i].func]] : 0;
    }
    for (i = nn; i-- > 1;)
        for (j = 0; j < nc; j++)
            inc[nodes[i].parent * nc + j] =
                hyp__sat_add(inc[nodes[i].parent * nc + j], inc[i * nc + j]);

    /* Own costs per (function, line). */
    for (i = 0; i < nn; i++) {
        w->self[i].f = i ? s->index[nodes[i].func] : w->root;
        w->self[i].line = pos[i];
        w->self[i].g = w->self[i].gline = 0;
        w->self[i].id = (uint32_t)i;
    }
    qsort(w->self, nn, sizeof(*w->self), hyp__cg_site_cmp);
    for (n = 0, lo = 0; lo < nn; lo = hi, n++) {
        for (hi = lo; hi < nn && w->self[hi].f == w->self[lo].f &&
                      w->self[hi].line == w->self[lo].line;
             hi++)
            for (j = 0; j < nc; j++)
                w->scost[n * nc + j] =
                    hyp__sat_add(w->scost[n * nc + j], vals[w->self[hi].id * m + s->cost[j]]);
        w->self[n] = w->self[lo];
        w->self[n].id = (uint32_t)n;
    }
    w->nself = n;

    /* Call sites per (caller, callee, caller's line, callee's line). */
    for (i = 1; i < nn; i++) {
        hyp_id_t par = nodes[i].parent;
        uint32_t f = s->index[nodes[i].func];

        sites[i - 1].f = par > 0 ? s->index[nodes[par].func] : w->root;
        sites[i - 1].g = f;
        sites[i - 1].line = pos[par];
        sites[i - 1].gline = s->first[f] ? s->first[f] : pos[i];
        sites[i - 1].id = (uint32_t)i;
    }
    nn = nn ? nn - 1 : 0; /* the sites, one per node below the root */
    qsort(sites, nn, sizeof(*sites), hyp__cg_site_by_edge);
    n = 0;
    for (lo = 0; lo < nn; lo = hi) { /* one edge's sites */
        size_t first = n, edge_end;
        int64_t row;

        for (edge_end = lo; edge_end < nn && sites[edge_end].f == sites[lo].f &&
                            sites[edge_end].g == sites[lo].g;
             edge_end++)
            ;
        for (k = lo; k < edge_end; k = hi, n++) { /* one site's nodes */
            w->calls[n] = sites[k];
            w->calls[n].id = (uint32_t)n;
            for (hi = k; hi < edge_end && sites[hi].line == sites[k].line &&
                         sites[hi].gline == sites[k].gline;
                 hi++) {
                uint32_t id = sites[hi].id;

                w->ccalls[n] = hyp__sat_add(w->ccalls[n], s->calls == HYP_CALLGRIND_NONE
                                                              ? 1
                                                              : vals[id * m + s->calls]);
                for (j = 0; j < nc; j++) /* the weights, replaced by costs below */
                    w->ccost[n * nc + j] = hyp__sat_add(w->ccost[n * nc + j], inc[id * nc + j]);
            }
        }
        hi = edge_end;
        row = hyp__cg_edge_row(w, sites[lo].f, sites[lo].g);
        for (j = 0; j < nc; j++) {
            uint64_t cost = row < 0 ? 0 : w->ecost[(size_t)row * nc + j], total = 0, given = 0;
            size_t best = first;

            for (k = first; k < n; k++) {
                total = hyp__sat_add(total, w->ccost[k * nc + j]);
                if (w->ccost[k * nc + j] > w->ccost[best * nc + j])
                    best = k;
            }
            for (k = first; k < n; k++) {
                uint64_t weight = w->ccost[k * nc + j];

                w->ccost[k * nc + j] = n - first == 1 ? cost
                                       : total == 0   ? (k == first ? cost : 0)
                                                      : hyp__muldiv(cost, weight, total);
                given += w->ccost[k * nc + j];
            }
            w->ccost[best * nc + j] += cost - given; /* the remainder to the heaviest site */
        }
    }
    w->ncalls = n;
    rc = 0;
out:
    hyp__free(vals);
    hyp__free(inc);
    hyp__free(pos);
    hyp__free(sites);
    return rc;
}

/* Sorts sites (own costs or calls) by caller, line, callee, callee's line;
 * those of a profile without lines mostly come in that order already. */
static void hyp__cg_sort_sites(hyp__cg_site_t *v, size_t n) {
    size_t i;

    for (i = 1; i < n; i++)
        if (hyp__cg_site_cmp(&v[i - 1], &v[i]) > 0)
            break;
    if (i < n)
        qsort(v, n, sizeof(*v), hyp__cg_site_cmp);
}

/* "(id) name" the first time, "(id)" after. */
static void hyp__cg_name(hyp__cg_out_t *o, uint32_t *ids, uint32_t at, uint32_t *next,
                         const char *name) {
    if (ids[at] == 0) {
        ids[at] = ++*next;
        hyp__cg_put(o, "(", 1);
        hyp__cg_u64(o, ids[at]);
        hyp__cg_put(o, ") ", 2);
        hyp__cg_str(o, name);
    } else {
        hyp__cg_put(o, "(", 1);
        hyp__cg_u64(o, ids[at]);
        hyp__cg_put(o, ")", 1);
    }
    hyp__cg_put(o, "\n", 1);
}

static int hyp__cg_emit(hyp__cg_t *w, hyp__cg_out_t *o) {
    const hyp_callgrind_spec_t *s = w->s;
    size_t nv = (size_t)w->root + 1, nc = w->nc, i, k;
    hyp__cg_file_t *byfile = hyp__malloc(nv * sizeof(*byfile));
    uint32_t *group = hyp__malloc(nv * sizeof(uint32_t)), *fl_ids = hyp__calloc(nv, 4);
    uint32_t *fn_ids = hyp__calloc(nv, 4), *order = hyp__malloc(nv * sizeof(uint32_t));
    size_t *self_at = hyp__malloc((nv + 1) * sizeof(size_t));
    size_t *calls_at = hyp__malloc((nv + 1) * sizeof(size_t));
    uint64_t *totals = hyp__malloc(nc * sizeof(uint64_t));
    uint32_t nfl = 0, nfn = 0, norder = 0;
    int rc = HYP_ENOMEM;

    if (!totals || !byfile || !group || !fl_ids || !fn_ids || !order || !self_at || !calls_at)
        goto out;
    /* Equal files share a number, given at their first use. */
    for (i = 0; i < nv; i++) {
        byfile[i].file = s->files[i];
        byfile[i].first = s->first[i];
        byfile[i].f = (uint32_t)i;
    }
    qsort(byfile, nv, sizeof(*byfile), hyp__cg_file_cmp);
    for (i = 0; i < nv; i++)
        group[byfile[i].f] = i > 0 && strcmp(byfile[i].file, byfile[i - 1].file) == 0
                                 ? group[byfile[i - 1].f]
                                 : (uint32_t)i;
    hyp__cg_sort_sites(w->self, w->nself);
    hyp__cg_sort_sites(w->calls, w->ncalls);
    for (i = 0; i <= nv; i++)
        self_at[i] = calls_at[i] = 0;
    for (i = 0; i < w->nself; i++)
        self_at[w->self[i].f + 1]++;
    for (i = 0; i < w->ncalls; i++)
        calls_at[w->calls[i].f + 1]++;
    for (i = 0; i < nv; i++) {
        self_at[i + 1] += self_at[i];
        calls_at[i + 1] += calls_at[i];
    }
    /* The functions written, in order of (file, first line, number), the
     * program last. */
    for (i = 0; i < nv; i++) {
        uint32_t f = byfile[i].f;

        if (f != w->root && self_at[f + 1] > self_at[f])
            order[norder++] = f;
    }
    order[norder++] = w->root;

    /* Every node's own cost is in one (function, line) entry. */
    for (i = 0; i < nc; i++)
        totals[i] = 0;
    for (i = 0; i < w->nself; i++)
        for (k = 0; k < nc; k++)
            totals[k] = hyp__sat_add(totals[k], w->scost[(size_t)w->self[i].id * nc + k]);
    hyp__cg_str(o, "# callgrind format\nversion: 1\ncreator: hyprof\n");
    if (s->header != NULL)
        hyp__cg_str(o, s->header);
    hyp__cg_str(o, "part: 1\npositions: line\nevents:");
    for (i = 0; i < nc; i++) {
        hyp__cg_put(o, " ", 1);
        hyp__cg_str(o, s->events[i]);
    }
    hyp__cg_str(o, "\nsummary:");
    hyp__cg_costs(o, totals, nc);
    hyp__cg_put(o, "\n", 1);
    for (k = 0; k < norder; k++) {
        uint32_t f = order[k];

        hyp__cg_str(o, "fl=");
        hyp__cg_name(o, fl_ids, group[f], &nfl, s->files[f][0] ? s->files[f] : "<built-in>");
        hyp__cg_str(o, "fn=");
        hyp__cg_name(o, fn_ids, f, &nfn, s->names[f]);
        for (i = self_at[f]; i < self_at[f + 1]; i++) {
            hyp__cg_u64(o, w->self[i].line);
            hyp__cg_costs(o, w->scost + (size_t)w->self[i].id * nc, nc);
        }
        for (i = calls_at[f]; i < calls_at[f + 1]; i++) {
            const hyp__cg_site_t *c = &w->calls[i];
            uint32_t g = c->g;

            hyp__cg_str(o, "cfi=");
            hyp__cg_name(o, fl_ids, group[g], &nfl, s->files[g][0] ? s->files[g] : "<built-in>");
            hyp__cg_str(o, "cfn=");
            hyp__cg_name(o, fn_ids, g, &nfn, s->names[g]);
            hyp__cg_str(o, "calls=");
            hyp__cg_u64(o, w->ccalls[c->id]);
            hyp__cg_put(o, " ", 1);
            hyp__cg_u64(o, c->gline);
            hyp__cg_put(o, "\n", 1);
            hyp__cg_u64(o, c->line);
            hyp__cg_costs(o, w->ccost + (size_t)c->id * nc, nc);
        }
        hyp__cg_put(o, "\n", 1);
        if (o->err)
            break;
    }
    hyp__cg_str(o, "totals:");
    hyp__cg_costs(o, totals, nc);
    hyp__cg_flush(o);
    rc = o->err;
out:
    hyp__free(totals);
    hyp__free(byfile);
    hyp__free(group);
    hyp__free(fl_ids);
    hyp__free(fn_ids);
    hyp__free(order);
    hyp__free(self_at);
    hyp__free(calls_at);
    return rc;
}

static int hyp__cg_check(const hyp_profile_t *p, const hyp_callgrind_spec_t *s) {
    size_t m = hyp_profile_metric_count(p), i;

    if (!s->index || !s->names || !s->files || !s->first || !s->cost || !s->cum ||
        s->ncosts == 0 || s->nfuncs >= UINT32_MAX)
        return HYP_EINVAL;
    if (s->calls != HYP_CALLGRIND_NONE && s->calls >= m)
        return HYP_EINVAL;
    for (i = 0; i < s->ncosts; i++)
        if (s->cost[i] >= m || (s->cum[i] != HYP_CALLGRIND_NONE && s->cum[i] >= m))
            return HYP_EINVAL;
    for (i = 0; i < hyp_profile_func_count(p); i++)
        if (s->index[i] >= s->nfuncs)
            return HYP_EINVAL;
    if (s->events == NULL)
        return HYP_EINVAL;
    for (i = 0; i < s->ncosts; i++)
        if (s->events[i] == NULL || s->events[i][0] == '\0' ||
            strspn(s->events[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
                strlen(s->events[i]))
            return HYP_EINVAL;
    if (s->header != NULL && s->header[0] != '\0' && s->header[strlen(s->header) - 1] != '\n')
        return HYP_EINVAL;
    for (i = 0; i <= s->nfuncs; i++)
        if (!s->names[i] || !s->files[i] || strchr(s->names[i], '\n') || strchr(s->files[i], '\n'))
            return HYP_EINVAL;
    return 0;
}

int hyp_callgrind_write(const hyp_profile_t *p, const hyp_callgrind_spec_t *spec,
                        hyp_callgrind_write_func write, void *ctx) {
    hyp__cg_t w;
    hyp__cg_out_t *o = NULL;
    size_t i;
    int rc, lines = 0;

    if (p == NULL || spec == NULL || write == NULL)
        return HYP_EINVAL;
    if ((rc = hyp__cg_check(p, spec)) < 0)
        return rc;
    memset(&w, 0, sizeof(w));
    w.s = spec;
    w.nc = spec->ncosts;
    w.root = (uint32_t)spec->nfuncs;
    for (i = 0; i < hyp_profile_node_count(p) && !lines; i++)
        lines = hyp_profile_nodes(p)[i].line != 0;
    if ((rc = hyp__cg_collect(&w, p)) < 0 || (rc = hyp__cg_adjust(&w)) < 0)
        goto out;
    rc = lines ? hyp__cg_by_line(&w, p) : hyp__cg_by_function(&w, p);
    if (rc < 0)
        goto out;
    if ((o = hyp__malloc(sizeof(*o))) == NULL) {
        rc = HYP_ENOMEM;
        goto out;
    }
    o->write = write;
    o->ctx = ctx;
    o->len = 0;
    o->err = 0;
    rc = hyp__cg_emit(&w, o);
out:
    if (w.ccost != w.ecost)
        hyp__free(w.ccost);
    if (w.ccalls != w.ecalls)
        hyp__free(w.ccalls);
    hyp__free(w.edges);
    hyp__free(w.ecalls);
    hyp__free(w.ecost);
    hyp__free(w.own);
    hyp__free(w.target);
    hyp__free(w.comp);
    hyp__free(w.self);
    hyp__free(w.scost);
    hyp__free(w.calls);
    hyp__free(o);
    return rc;
}
