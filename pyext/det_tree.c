/* pyext/det_tree.c: the deterministic engine's call tree, the parts that do
 * not run on every event: node and recursion-record allocation (in chunks,
 * freed with the tree), linking a new child and the children table, taking a
 * node out and rebuilding the table after stop() reshaped the tree, the
 * recursive and generator halves of push and pop, the stack's growth, and
 * the table of suspended instances. Plain C, no Python (det_tree.h). */
#include "det_tree.h"

#include "hyprof/internal/util.h"

#include <string.h>

#define DET_CHUNK_NODES 1024u
#define DET_CHUNK_RECS 256u
#define DET_GENS_MAX ((size_t)1 << 22)

/* ------------------------------------------------------------------ stack */

int hyp__det_top_grow(det_tree_t *t, size_t nfuncs) {
    size_t cap = t->top_cap * 2 > nfuncs + 64 ? t->top_cap * 2 : nfuncs + 64;
    uint32_t *top;

    if (t->top_cap >= nfuncs)
        return 0;
    top = hyp__realloc(t->top, cap * sizeof *top);
    if (top == NULL)
        return HYP_ENOMEM;
    memset(top + t->top_cap, 0, (cap - t->top_cap) * sizeof *top);
    t->top = top;
    t->top_cap = cap;
    return 0;
}

int hyp__det_stack_open(det_tree_t *t, size_t nfuncs) {
    t->cap = 256;
    t->stack = hyp__malloc(t->cap * sizeof *t->stack);
    if (t->stack == NULL) {
        t->cap = 0;
        return HYP_ENOMEM;
    }
    if (hyp__det_top_grow(t, nfuncs) != 0) {
        hyp__free(t->stack);
        t->stack = NULL;
        t->cap = 0;
        return HYP_ENOMEM;
    }
    return 0;
}

void hyp__det_stack_close(det_tree_t *t) {
    t->lost = 0;
    hyp__free(t->stack);
    t->stack = NULL;
    t->cap = 0;
    hyp__free(t->top);
    t->top = NULL;
    t->top_cap = 0;
}

int hyp__det_stack_grow(det_tree_t *t) {
    size_t cap = t->cap * 2;
    det_frame_t *s = hyp__realloc(t->stack, cap * sizeof *s);

    if (s == NULL)
        return HYP_ENOMEM;
    t->stack = s;
    t->cap = cap;
    return 0;
}

void hyp__det_tree_free(det_tree_t *t) {
    det_chunk_t *c, *cn;
    det_rec_chunk_t *r, *rn;

    for (c = t->chunks; c != NULL; c = cn) {
        cn = c->next;
        hyp__free(c);
    }
    for (r = t->rec_chunks; r != NULL; r = rn) {
        rn = r->next;
        hyp__free(r);
    }
    t->chunks = NULL;
    t->rec_chunks = NULL;
    hyp__free(t->kids);
    t->kids = NULL;
    t->kids_cap = t->kids_used = 0;
    hyp__det_stack_close(t);
}

/* ------------------------------------------------------------------- nodes */

static det_node_t *hyp__node_alloc(det_tree_t *t) {
    det_chunk_t *c = t->chunks;

    if (c == NULL || c->used == DET_CHUNK_NODES) {
        c = hyp__calloc(1, sizeof *c + DET_CHUNK_NODES * sizeof(det_node_t));
        if (c == NULL)
            return NULL;
        c->next = t->chunks;
        t->chunks = c;
    }
    return &c->nodes[c->used++];
}

static void hyp__kids_put(det_tree_t *t, det_node_t *n) {
    size_t j, mask = t->kids_cap - 1;

    for (j = hyp__det_kid_hash(n->parent, n->key, mask); t->kids[j] != NULL; j = (j + 1) & mask)
        ;
    t->kids[j] = n;
    t->kids_used++;
}

int hyp__det_kids_reserve(det_tree_t *t, size_t more) {
    det_node_t **old = t->kids;
    size_t i, cap = t->kids_cap ? t->kids_cap : 256, old_cap = t->kids_cap;

    while ((t->kids_used + more) * 2 > cap)
        cap *= 2;
    if (cap == old_cap)
        return 0;
    t->kids = hyp__calloc(cap, sizeof *t->kids);
    if (t->kids == NULL) {
        t->kids = old;
        return HYP_ENOMEM;
    }
    t->kids_cap = cap;
    t->kids_used = 0;
    for (i = 0; i < old_cap; i++)
        if (old[i] != NULL)
            hyp__kids_put(t, old[i]);
    hyp__free(old);
    return 0;
}

/* Walks the tree without recursion. */
int hyp__det_kids_rebuild(det_tree_t *t) {
    det_node_t *n = &t->root, *c;
    int rc = 0;

    if (t->kids != NULL)
        memset(t->kids, 0, t->kids_cap * sizeof *t->kids);
    t->kids_used = 0;
    while (n != NULL) {
        uint32_t k = 0;
        for (c = n->first_child; c != NULL; c = c->next_sibling)
            k++;
        n->nkids = k;
        n->hot = n->first_child;
        if (k > DET_LIST_MAX && hyp__det_kids_reserve(t, k) == 0) {
            for (c = n->first_child; c != NULL; c = c->next_sibling)
                hyp__kids_put(t, c);
        } else if (k > DET_LIST_MAX) {
            n->nkids = DET_LIST_MAX; /* no room: found through the list, slowly */
            rc = HYP_ENOMEM;
        }
        if (n->first_child != NULL) {
            n = n->first_child;
            continue;
        }
        while (n != NULL && n != &t->root && n->next_sibling == NULL)
            n = n->parent;
        n = n == NULL || n == &t->root ? NULL : n->next_sibling;
    }
    return rc;
}

det_node_t *hyp__det_node_link(det_tree_t *t, det_node_t *parent, const void *key,
                               det_func_t *func, uint32_t fidx) {
    det_node_t *n, *c;

    /* The table's room first, so that a node is never linked without it. */
    if (parent->nkids >= DET_LIST_MAX &&
        hyp__det_kids_reserve(t, parent->nkids == DET_LIST_MAX ? DET_LIST_MAX + 1 : 1) != 0)
        return NULL;
    n = hyp__node_alloc(t);
    if (n == NULL)
        return NULL;
    n->key = key;
    n->func = func;
    n->fidx = fidx;
    n->seq = t->nseq++;
    n->parent = parent;
    n->next_sibling = parent->first_child;
    parent->first_child = n;
    parent->hot = n;
    if (++parent->nkids == DET_LIST_MAX + 1) {
        for (c = parent->first_child; c != NULL; c = c->next_sibling)
            hyp__kids_put(t, c);
    } else if (parent->nkids > DET_LIST_MAX + 1) {
        hyp__kids_put(t, n);
    }
    return n;
}

void hyp__det_node_unlink(det_node_t *n) {
    det_node_t **link;

    if (n->parent == NULL)
        return;
    for (link = &n->parent->first_child; *link != NULL; link = &(*link)->next_sibling) {
        if (*link == n) {
            *link = n->next_sibling;
            n->next_sibling = NULL;
            return;
        }
    }
}

/* --------------------------------------------------------------- recursion */

/* How an open call of n's function (the topmost, 1 + its stack index in
 * prev) makes a new call of n recursive: always for the function, and for
 * the edge when one of the function's open calls has n's caller. */
static int hyp__rec_kind(const det_tree_t *t, uint32_t prev, const det_node_t *n) {
    const det_func_t *caller = n->parent->func;

    for (; prev != 0; prev = t->stack[prev - 1].prev_same)
        if (t->stack[prev - 1].node->parent->func == caller)
            return DET_REC_FUNC | DET_REC_EDGE;
    return DET_REC_FUNC;
}

static det_rec_t *hyp__rec_alloc(det_tree_t *t) {
    det_rec_chunk_t *c = t->rec_chunks;

    if (c == NULL || c->used == DET_CHUNK_RECS) {
        c = hyp__calloc(1, sizeof *c + DET_CHUNK_RECS * sizeof(det_rec_t));
        if (c == NULL)
            return NULL;
        c->next = t->rec_chunks;
        t->rec_chunks = c;
    }
    return &c->recs[c->used++];
}

/* Out of line: most calls are not recursive. */
int hyp__det_enter_rec(det_tree_t *t, uint32_t prev, det_node_t *n, int call) {
    int rec = hyp__rec_kind(t, prev, n);

    if (n->rec == NULL && (n->rec = hyp__rec_alloc(t)) == NULL)
        return -1;
    if (call) {
        n->rec->calls++;
        n->rec->edge_calls += (rec & DET_REC_EDGE) != 0;
    }
    return rec;
}

/* Out of line, so that the common path of a pop stays small. */
uint64_t hyp__det_pop_gen(det_gens_t *gens, const det_frame_t *f, det_node_t *n, uint64_t wall,
                          uint64_t w, int suspend) {
    if (suspend) {
        hyp__det_gens_put(gens, f->gen_frame, n, f->first_wall, f->run_wall + w);
        return w;
    }
    if (f->lifetime) {
        /* A coroutine's whole life: earlier activations were added at their
         * suspension, the time suspended is added now. */
        uint64_t span = wall - f->first_wall;
        return span > f->run_wall ? span - f->run_wall : w;
    }
    return w; /* a generator counts the time it ran, activation by activation */
}

void hyp__det_pop_rec(det_node_t *n, int rec, uint64_t cum, uint64_t c) {
    if (rec & DET_REC_FUNC) {
        n->rec->wall += cum;
        n->rec->cpu += c;
    }
    if (rec & DET_REC_EDGE) {
        n->rec->edge_wall += cum;
        n->rec->edge_cpu += c;
    }
}

/* --------------------------------------------------------------- suspended */

static int hyp__gens_grow(det_gens_t *gens) {
    size_t cap = gens->cap ? gens->cap * 2 : 64, i;
    det_gen_t *tab;

    if (cap > DET_GENS_MAX)
        return HYP_ELIMIT;
    tab = hyp__calloc(cap, sizeof *tab);
    if (tab == NULL)
        return HYP_ENOMEM;
    for (i = 0; i < gens->cap; i++) {
        size_t j;
        if (gens->v[i].frame == NULL)
            continue;
        for (j = hyp__det_ptr_hash(gens->v[i].frame, cap - 1); tab[j].frame != NULL;
             j = (j + 1) & (cap - 1))
            ;
        tab[j] = gens->v[i];
    }
    hyp__free(gens->v);
    gens->v = tab;
    gens->cap = cap;
    return 0;
}

void hyp__det_gens_put(det_gens_t *gens, const void *frame, det_node_t *node, uint64_t first,
                       uint64_t run) {
    size_t j, mask;

    if ((gens->used + 1) * 2 > gens->cap && hyp__gens_grow(gens) != 0) {
        gens->lost++;
        return;
    }
    mask = gens->cap - 1;
    for (j = hyp__det_ptr_hash(frame, mask); gens->v[j].frame != NULL; j = (j + 1) & mask)
        if (gens->v[j].frame == frame)
            break;
    if (gens->v[j].frame == NULL)
        gens->used++;
    gens->v[j].frame = frame;
    gens->v[j].node = node;
    gens->v[j].first_wall = first;
    gens->v[j].run_wall = run;
}

void hyp__det_gens_clear(det_gens_t *gens) {
    gens->used = 0;
    if (gens->v != NULL)
        memset(gens->v, 0, gens->cap * sizeof *gens->v);
}

void hyp__det_gens_free(det_gens_t *gens) {
    hyp__free(gens->v);
    gens->v = NULL;
    gens->cap = gens->used = 0;
}
