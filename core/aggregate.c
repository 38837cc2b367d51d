/* Flat per-function statistics and caller/callee edges derived from the
 * calling-context tree (include/hyprof/aggregate.h).
 *
 * Everything is linear in the number of nodes. A node's id is always larger
 * than its parent's (the profile creates parents first, the reader checks
 * it), so subtree sums are one backward pass. Recursion is found with one
 * iterative depth-first walk that keeps, per function and per edge, how many
 * nodes of it are on the current path: a node is outermost when none is. */
#include "hyprof/aggregate.h"
#include "profile_int.h"

#include <string.h>

struct hyp_flat_s {
    size_t nmetrics;
    hyp_flat_entry_t *entries;
    size_t nentries;
    hyp_edge_t *edges;
    size_t nedges;
    uint64_t *store; /* the own/cum arrays of entries and edges */
};

typedef struct {
    hyp_id_t caller, callee;
} hyp__edge_key_t;

typedef struct {
    hyp__edge_key_t *keys;
    size_t n, cap;
    hyp__htab_t ht;
} hyp__edges_t;

static inline uint64_t hyp__edge_hash(hyp_id_t caller, hyp_id_t callee) {
    return hyp__mix64((uint64_t)caller << 32 | callee);
}

static uint64_t hyp__edge_hash_of(const void *ctx, uint32_t id) {
    const hyp__edge_key_t *k = &((const hyp__edges_t *)ctx)->keys[id];
    return hyp__edge_hash(k->caller, k->callee);
}

static int64_t hyp__edge_id(hyp__edges_t *e, hyp_id_t caller, hyp_id_t callee) {
    uint64_t hash = hyp__edge_hash(caller, callee);
    size_t i;

    if (e->ht.cap > 0) {
        HYP__HTAB_PROBE(&e->ht, hash, i,
                        e->keys[hid].caller == caller && e->keys[hid].callee == callee);
        if (e->ht.slots[i] != 0)
            return (int64_t)e->ht.slots[i] - 1;
    }
    if (hyp__grow((void **)&e->keys, &e->cap, e->n + 1, sizeof(*e->keys)) < 0 ||
        hyp__htab_reserve(&e->ht, hyp__edge_hash_of, e) < 0)
        return HYP_ENOMEM;
    e->keys[e->n].caller = caller;
    e->keys[e->n].callee = callee;
    HYP__HTAB_PROBE(&e->ht, hash, i, e->keys[hid].caller == caller && e->keys[hid].callee == callee);
    e->ht.slots[i] = (uint32_t)e->n + 1;
    e->ht.count++;
    return (int64_t)e->n++;
}

void hyp_flat_free(hyp_flat_t *f) {
    if (f == NULL)
        return;
    hyp__free(f->entries);
    hyp__free(f->edges);
    hyp__free(f->store);
    hyp__free(f);
}

static int hyp__all_zero(const uint64_t *a, const uint64_t *b, size_t m) {
    size_t i;

    for (i = 0; i < m; i++)
        if (a[i] != 0 || b[i] != 0)
            return 0;
    return 1;
}

int hyp_flat_compute(const hyp_profile_t *p, hyp_id_t thread, hyp_flat_t **out) {
    return hyp_flat_compute_ex(p, thread, 0, out);
}

int hyp_flat_compute_ex(const hyp_profile_t *p, hyp_id_t thread, unsigned flags,
                        hyp_flat_t **out) {
    size_t N, M, F, i, m, n;
    uint64_t *vcol = NULL, *dcol = NULL, *rcol = NULL, *ecol = NULL, *store = NULL;
    uint64_t *fown, *fcum, *eown, *ecum;
    uint32_t *child_start = NULL, *children = NULL, *edge_of = NULL;
    uint32_t *fdepth = NULL, *edepth = NULL, *stack = NULL, *next = NULL;
    size_t *rec_of = NULL, *erec_of = NULL;
    unsigned char *outer_f = NULL, *outer_e = NULL;
    hyp__edges_t edges = {0};
    hyp_flat_t *f = NULL;
    int rc = HYP_ENOMEM;

    int want_edges = !(flags & HYP_FLAT_NO_EDGES);

    if (p == NULL || out == NULL || (flags & ~(unsigned)HYP_FLAT_NO_EDGES) != 0)
        return HYP_EINVAL;
    N = p->nnodes;
    M = p->nmetrics;
    F = p->nfuncs;
    if (thread != HYP_NO_ID && thread >= p->nthreads)
        return HYP_ERANGE;
    if (N > SIZE_MAX / sizeof(uint64_t))
        return HYP_ENOMEM;

    child_start = hyp__calloc(N + 1, sizeof(uint32_t));
    children = hyp__calloc(N, sizeof(uint32_t));
    edge_of = hyp__calloc(N, sizeof(uint32_t));
    fdepth = hyp__calloc(F, sizeof(uint32_t));
    stack = hyp__calloc(N, sizeof(uint32_t));
    next = hyp__calloc(N, sizeof(uint32_t));
    outer_f = hyp__calloc(N, 1);
    outer_e = hyp__calloc(N, 1);
    rec_of = hyp__calloc(M + 1, sizeof(size_t));
    erec_of = hyp__calloc(M + 1, sizeof(size_t));
    if (!child_start || !children || !edge_of || !fdepth || !stack || !next || !outer_f ||
        !outer_e || !rec_of || !erec_of)
        goto out;
    /* Columns whose recursive part the producer measured on the live stack
     * (REC, EDGE_REC): those take it out instead of the ancestor rule. */
    for (m = 0; m < M; m++)
        rec_of[m] = erec_of[m] = SIZE_MAX;
    for (m = 0; m < M; m++) {
        size_t b = hyp__metric_base(p->metrics, M, m);
        if (b != SIZE_MAX) {
            if (p->metrics[m].kind == HYP_METRIC_REC)
                rec_of[b] = m;
            else
                erec_of[b] = m;
        }
    }

    /* children lists, and the edge of every node */
    for (n = 1; n < N; n++)
        child_start[p->nodes[n].parent + 1]++;
    for (n = 0; n < N; n++)
        child_start[n + 1] += child_start[n];
    memcpy(next, child_start, N * sizeof(uint32_t));
    for (n = 1; n < N; n++) {
        hyp_id_t parent = p->nodes[n].parent;
        int64_t e;

        children[next[parent]++] = (uint32_t)n;
        if (!want_edges)
            continue;
        e = hyp__edge_id(&edges, parent == HYP_ROOT_NODE ? HYP_NO_ID : p->nodes[parent].func,
                         p->nodes[n].func);
        if (e < 0)
            goto out;
        edge_of[n] = (uint32_t)e;
    }
    /* One more than the edges: without them every node's edge is 0. */
    edepth = hyp__calloc(edges.n + 1, sizeof(uint32_t));
    if (edepth == NULL)
        goto out;

    /* the walk: next[x] is the next child of x to visit */
    memcpy(next, child_start, N * sizeof(uint32_t));
    {
        size_t sp = 0;

        stack[sp++] = HYP_ROOT_NODE;
        while (sp > 0) {
            uint32_t x = stack[sp - 1];

            if (next[x] < child_start[x + 1]) {
                uint32_t c = children[next[x]++];

                outer_f[c] = fdepth[p->nodes[c].func]++ == 0;
                outer_e[c] = edepth[edge_of[c]]++ == 0;
                stack[sp++] = c;
            } else {
                sp--;
                if (x != HYP_ROOT_NODE) {
                    fdepth[p->nodes[x].func]--;
                    edepth[edge_of[x]]--;
                }
            }
        }
    }

    /* The walk's buffers and the edges' hash table are done with: freed
     * before the totals' store. */
    hyp__htab_destroy(&edges.ht);
    hyp__free(fdepth);
    hyp__free(edepth);
    fdepth = NULL;
    edepth = NULL;
    hyp__free(stack);
    hyp__free(next);
    hyp__free(children);
    hyp__free(child_start);
    stack = next = children = child_start = NULL;

    /* per-function and per-edge totals, summed where the result keeps them:
     * one store of rows fown | fcum | eown | ecum, M values a row */
    if (F + edges.n > SIZE_MAX / sizeof(uint64_t) / 2 / (M ? M : 1))
        goto out;
    store = hyp__calloc((F + edges.n) * 2 * M + 1, sizeof(uint64_t));
    vcol = hyp__calloc(N + 1, sizeof(uint64_t));
    dcol = hyp__calloc(N + 1, sizeof(uint64_t));
    if (store == NULL || vcol == NULL || dcol == NULL)
        goto out;
    fown = store;
    fcum = fown + F * M;
    eown = fcum + F * M;
    ecum = eown + edges.n * M;

    /* Column by column, so that a column of node values and one derived
     * column are all the node-sized memory the totals take, whatever the
     * number of metrics. The derived column: the subtree sums of an OWN
     * column, the exclusive part of a CUM column (its value less its
     * children's). */
    for (m = 0; m < M; m++) {
        hyp_metric_kind_t kind = p->metrics[m].kind;
        int rec = kind == HYP_METRIC_REC || kind == HYP_METRIC_EDGE_REC;
        size_t rm = rec_of[m], em = erec_of[m];

        hyp__node_values_range(p, thread, NULL, m, 1, vcol);
        if (rm != SIZE_MAX) {
            if (rcol == NULL && (rcol = hyp__malloc((N + 1) * sizeof(uint64_t))) == NULL)
                goto out;
            hyp__node_values_range(p, thread, NULL, rm, 1, rcol);
        }
        if (em != SIZE_MAX && want_edges) {
            if (ecol == NULL && (ecol = hyp__malloc((N + 1) * sizeof(uint64_t))) == NULL)
                goto out;
            hyp__node_values_range(p, thread, NULL, em, 1, ecol);
        }
        memcpy(dcol, vcol, N * sizeof(uint64_t));
        if (kind == HYP_METRIC_OWN) {
            for (n = N; n-- > 1;)
                dcol[p->nodes[n].parent] += dcol[n];
        } else if (kind == HYP_METRIC_CUM) {
            for (n = N; n-- > 1;) {
                uint64_t *pd = &dcol[p->nodes[n].parent];

                *pd = *pd > vcol[n] ? *pd - vcol[n] : 0;
            }
        }
        for (n = 1; n < N; n++) {
            size_t fr = (size_t)p->nodes[n].func * M + m, er = (size_t)edge_of[n] * M + m;
            uint64_t o = kind == HYP_METRIC_CUM ? dcol[n] : vcol[n];
            uint64_t c = kind == HYP_METRIC_OWN ? dcol[n] : vcol[n];

            fown[fr] += o;
            if (rm != SIZE_MAX)
                fcum[fr] += c > rcol[n] ? c - rcol[n] : 0;
            else if (outer_f[n] || rec)
                fcum[fr] += c;
            if (!want_edges)
                continue;
            eown[er] += o;
            if (em != SIZE_MAX)
                ecum[er] += c > ecol[n] ? c - ecol[n] : 0;
            else if (outer_e[n] || rec)
                ecum[er] += c;
        }
    }

    hyp__free(vcol);
    hyp__free(dcol);
    hyp__free(rcol);
    hyp__free(ecol);
    vcol = dcol = rcol = ecol = NULL;

    /* the result, without functions and edges whose values are all zero:
     * entries pointing into the store, which the result takes over */
    f = hyp__calloc(1, sizeof(*f));
    if (f == NULL)
        goto out;
    f->nmetrics = M;
    f->store = store;
    store = NULL;
    f->entries = hyp__calloc(F, sizeof(*f->entries));
    f->edges = hyp__calloc(edges.n + 1, sizeof(*f->edges));
    if (!f->entries || !f->edges)
        goto out;
    for (i = 0; i < F; i++) {
        hyp_flat_entry_t *e;

        if (hyp__all_zero(fown + i * M, fcum + i * M, M))
            continue;
        e = &f->entries[f->nentries++];
        e->func = (hyp_id_t)i;
        e->own = fown + i * M;
        e->cum = fcum + i * M;
    }
    for (i = 0; i < edges.n; i++) {
        hyp_edge_t *e;

        if (hyp__all_zero(eown + i * M, ecum + i * M, M))
            continue;
        e = &f->edges[f->nedges++];
        e->caller = edges.keys[i].caller;
        e->callee = edges.keys[i].callee;
        e->own = eown + i * M;
        e->cum = ecum + i * M;
    }
    *out = f;
    f = NULL;
    rc = 0;
out:
    hyp_flat_free(f);
    hyp__free(vcol);
    hyp__free(dcol);
    hyp__free(rcol);
    hyp__free(ecol);
    hyp__free(store);
    hyp__free(child_start);
    hyp__free(children);
    hyp__free(edge_of);
    hyp__free(fdepth);
    hyp__free(edepth);
    hyp__free(stack);
    hyp__free(next);
    hyp__free(outer_f);
    hyp__free(outer_e);
    hyp__free(rec_of);
    hyp__free(erec_of);
    hyp__free(edges.keys);
    hyp__htab_destroy(&edges.ht);
    return rc;
}

size_t hyp_flat_count(const hyp_flat_t *f) {
    return f->nentries;
}

const hyp_flat_entry_t *hyp_flat_at(const hyp_flat_t *f, size_t i) {
    return i < f->nentries ? &f->entries[i] : NULL;
}

size_t hyp_flat_edge_count(const hyp_flat_t *f) {
    return f->nedges;
}

const hyp_edge_t *hyp_flat_edge_at(const hyp_flat_t *f, size_t i) {
    return i < f->nedges ? &f->edges[i] : NULL;
}

/* ---------------------------------------------------------------- tree walks */

static int hyp__tree_check(const int32_t *parent, size_t n) {
    size_t i;

    if (n > UINT32_MAX || (n > 0 && (parent == NULL || parent[0] >= 0)))
        return HYP_EINVAL;
    for (i = 1; i < n; i++)
        if (parent[i] < 0 || (size_t)parent[i] >= i)
            return HYP_EINVAL;
    return 0;
}

int hyp_tree_preorder(const int32_t *parent, size_t n, uint32_t *order, uint32_t *depth,
                      uint32_t *size, uint32_t *pos) {
    uint32_t *sz = size, *at = pos, *next;
    size_t i;
    int rc;

    if ((rc = hyp__tree_check(parent, n)) < 0 || (n > 0 && order == NULL))
        return rc < 0 ? rc : HYP_EINVAL;
    if (n == 0)
        return 0;
    next = hyp__malloc(n * sizeof(*next));
    if (sz == NULL)
        sz = hyp__malloc(n * sizeof(*sz));
    if (at == NULL)
        at = hyp__malloc(n * sizeof(*at));
    if (next == NULL || sz == NULL || at == NULL) {
        rc = HYP_ENOMEM;
        goto out;
    }
    for (i = 0; i < n; i++)
        sz[i] = 1;
    for (i = n - 1; i > 0; i--)
        sz[parent[i]] += sz[i];
    /* Siblings come in id order, after their parent: each takes the next
     * place under its parent and leaves its subtree's room behind it. */
    at[0] = 0;
    next[0] = 1;
    for (i = 1; i < n; i++) {
        uint32_t p = (uint32_t)parent[i];

        at[i] = next[p];
        next[p] += sz[i];
        next[i] = at[i] + 1;
    }
    for (i = 0; i < n; i++)
        order[at[i]] = (uint32_t)i;
    if (depth != NULL) {
        depth[0] = 0;
        for (i = 1; i < n; i++)
            depth[at[i]] = depth[at[parent[i]]] + 1;
    }
out:
    hyp__free(next);
    if (sz != size)
        hyp__free(sz);
    if (at != pos)
        hyp__free(at);
    return rc;
}

int hyp_tree_children(const int32_t *parent, size_t n, uint32_t *first, uint32_t *kids) {
    size_t i;
    int rc;

    if ((rc = hyp__tree_check(parent, n)) < 0 || first == NULL || (n > 1 && kids == NULL))
        return rc < 0 ? rc : HYP_EINVAL;
    memset(first, 0, (n + 1) * sizeof(*first));
    /* A counting sort by parent; the ids go in increasing, so each node's
     * children stay in id order. first[p + 1] counts, then is turned into
     * the end of p's run, which the second pass fills up to. */
    for (i = 1; i < n; i++)
        first[parent[i] + 1]++;
    for (i = 1; i <= n; i++)
        first[i] += first[i - 1];
    for (i = 1; i < n; i++)
        kids[first[parent[i]]++] = (uint32_t)i;
    for (i = n; i > 0; i--)
        first[i] = first[i - 1];
    first[0] = 0;
    return 0;
}
