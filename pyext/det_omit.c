/* pyext/det_omit.c: omit(cut, skip) names code objects of hyprof's own that
 * the program calls (the integrations' wrappers and helpers): at stop, once
 * every call is closed, their nodes leave the trees. A cut node goes with
 * its subtree, its time becoming its caller's own; a skipped node alone, its
 * own time going to its caller and its children moving up to the caller,
 * merged with the caller's children of the same function. The trees'
 * children tables are rebuilt afterwards (det_session.c). */
#include "det.h"

#include "hyprof/internal/util.h"
#include "locks.h"

enum { OMIT_KEEP = 0, OMIT_SKIP = 1, OMIT_CUT = 2 };

static int hyp__omit_kind(det_prof_t *p, const void *key) {
    Py_ssize_t i;

    for (i = 0; p->omit_cut != NULL && i < PyTuple_GET_SIZE(p->omit_cut); i++)
        if (key == (const void *)PyTuple_GET_ITEM(p->omit_cut, i))
            return OMIT_CUT;
    for (i = 0; p->omit_skip != NULL && i < PyTuple_GET_SIZE(p->omit_skip); i++)
        if (key == (const void *)PyTuple_GET_ITEM(p->omit_skip, i))
            return OMIT_SKIP;
    if (p->locks && hyp_py_locks_own_code(key))
        return OMIT_SKIP;
    return OMIT_KEEP;
}

/* A growable array of node pointers (a work list). */
typedef struct {
    det_node_t **v;
    size_t n, cap;
} det_nodes_t;

static int hyp__nodes_push(det_nodes_t *a, det_node_t *n) {
    if (a->n == a->cap && hyp__grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v) != 0)
        return HYP_ENOMEM;
    a->v[a->n++] = n;
    return 0;
}

static det_node_t *hyp__child_like(det_node_t *parent, det_node_t *n) {
    det_node_t *c;

    for (c = parent->first_child; c != NULL; c = c->next_sibling)
        if (c != n && c->key == n->key && c->truncated == n->truncated)
            return c;
    return NULL;
}

/* Adds src (a node moving up) into dst, a node of the same function at its
 * new place, and so on down: children of src without a counterpart under
 * dst become dst's. dst has not been scanned yet. */
static int hyp__merge_into(det_node_t *dst, det_node_t *src) {
    det_nodes_t pairs = {NULL, 0, 0};
    int rc;

    if ((rc = hyp__nodes_push(&pairs, dst)) == 0)
        rc = hyp__nodes_push(&pairs, src);
    while (rc == 0 && pairs.n != 0) {
        det_node_t *s = pairs.v[--pairs.n], *d = pairs.v[--pairs.n], *c, *next, *same;
        d->calls += s->calls;
        d->wall_own += s->wall_own;
        d->wall_cum += s->wall_cum;
        d->cpu_own += s->cpu_own;
        d->cpu_cum += s->cpu_cum;
        if (s->rec != NULL && d->rec == NULL) {
            d->rec = s->rec;
        } else if (s->rec != NULL) {
            d->rec->calls += s->rec->calls;
            d->rec->wall += s->rec->wall;
            d->rec->cpu += s->rec->cpu;
            d->rec->edge_calls += s->rec->edge_calls;
            d->rec->edge_wall += s->rec->edge_wall;
            d->rec->edge_cpu += s->rec->edge_cpu;
        }
        s->rec = NULL;
        for (c = s->first_child; rc == 0 && c != NULL; c = next) {
            next = c->next_sibling;
            same = hyp__child_like(d, c);
            if (same != NULL) {
                if ((rc = hyp__nodes_push(&pairs, same)) == 0)
                    rc = hyp__nodes_push(&pairs, c);
            } else {
                c->parent = d;
                c->next_sibling = d->first_child;
                d->first_child = c;
            }
        }
        s->first_child = NULL;
    }
    hyp__free(pairs.v);
    return rc;
}

/* Scans one thread's tree in preorder (a node's children are scanned after
 * its own list is settled). */
static int hyp__omit_thread(det_prof_t *p, det_thread_t *th) {
    det_nodes_t todo = {NULL, 0, 0};
    int rc = hyp__nodes_push(&todo, &th->tree.root);

    while (rc == 0 && todo.n != 0) {
        det_node_t *parent = todo.v[--todo.n], **link = &parent->first_child;
        while (rc == 0 && *link != NULL) {
            det_node_t *c = *link, *g, *next, *same;
            int kind = c->truncated ? OMIT_KEEP : hyp__omit_kind(p, c->key);
            if (kind == OMIT_KEEP) {
                rc = hyp__nodes_push(&todo, c);
                link = &c->next_sibling;
                continue;
            }
            *link = c->next_sibling;
            th->tree.reshaped = 1;
            if (kind == OMIT_CUT) {
                parent->wall_own += c->wall_cum;
                parent->cpu_own += c->cpu_cum;
                continue;
            }
            parent->wall_own += c->wall_own;
            parent->cpu_own += c->cpu_own;
            for (g = c->first_child; rc == 0 && g != NULL; g = next) {
                next = g->next_sibling;
                same = hyp__child_like(parent, g);
                if (same != NULL) {
                    rc = hyp__merge_into(same, g);
                } else {
                    /* In c's place, so that this loop scans it next. */
                    g->parent = parent;
                    g->next_sibling = *link;
                    *link = g;
                }
            }
            c->first_child = NULL;
        }
    }
    hyp__free(todo.v);
    return rc;
}

void hyp__det_omit_nodes(det_prof_t *p) {
    det_thread_t *th;

    if ((p->omit_cut == NULL || PyTuple_GET_SIZE(p->omit_cut) == 0) &&
        (p->omit_skip == NULL || PyTuple_GET_SIZE(p->omit_skip) == 0) && !p->locks)
        return;
    for (th = p->threads; th != NULL; th = th->next)
        if (hyp__omit_thread(p, th) != 0)
            hyp__det_set_error(p, HYP_ENOMEM);
}
