/* Suite for core/aggregate.c: flat statistics and edges against a brute-force
 * computation on random trees, cProfile's primitive calls on recursion, deep
 * trees (no recursion in C), and per-thread results. */
#include "harness.h"

#include "hyprof.h"

#include <stdlib.h>
#include <string.h>

static const hyp_metric_t metrics[] = {
    {"calls", "count", HYP_METRIC_CALLS},
    {"wall_own", "ns", HYP_METRIC_OWN},
    {"wall_cum", "ns", HYP_METRIC_CUM},
};
#define M 3

static hyp_id_t mkfunc(hyp_profile_t *p, int i) {
    char name[16];
    hyp_func_t f = {0, 0, (uint32_t)i, HYP_FUNC_PYTHON};
    hyp_id_t id;

    snprintf(name, sizeof(name), "f%d", i);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_string(p, name, strlen(name), &f.name), 0);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_string(p, "t.py", 4, &f.file), 0);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_func(p, &f, &id), 0);
    return id;
}

static hyp_profile_t *with_threads(int n) {
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_DETERMINISTIC, metrics, M);
    hyp_thread_t t = {1, 1, 0};
    int i;

    CU_ASSERT_EQUAL_FATAL(hyp_profile_string(p, "main", 4, &t.name), 0);
    for (i = 0; i < n; i++) {
        t.os_tid = (uint64_t)(100 + i);
        CU_ASSERT_EQUAL_FATAL(hyp_profile_thread(p, &t, NULL), 0);
    }
    return p;
}

static const hyp_flat_entry_t *entry_of(const hyp_flat_t *f, hyp_id_t func) {
    size_t i;

    for (i = 0; i < hyp_flat_count(f); i++)
        if (hyp_flat_at(f, i)->func == func)
            return hyp_flat_at(f, i);
    return NULL;
}

static const hyp_edge_t *edge_of(const hyp_flat_t *f, hyp_id_t caller, hyp_id_t callee) {
    size_t i;

    for (i = 0; i < hyp_flat_edge_count(f); i++)
        if (hyp_flat_edge_at(f, i)->caller == caller && hyp_flat_edge_at(f, i)->callee == callee)
            return hyp_flat_edge_at(f, i);
    return NULL;
}

/* fib-like recursion: a -> a -> a, and mutual recursion b -> c -> b -> c.
 * cProfile counts a's primitive calls as 1 (the outermost), its cumulative
 * time once, and the edge a -> a as 2 calls of which 1 is primitive (its
 * callers' "nc/cc" in pstats). */
static void test_recursion_counted_once(void) {
    hyp_profile_t *p = with_threads(1);
    hyp_id_t a = mkfunc(p, 0), b = mkfunc(p, 1), c = mkfunc(p, 2);
    hyp_id_t n1, n2, n3, m1, m2, m3, m4;
    uint64_t v[M];
    const hyp_flat_entry_t *e;
    const hyp_edge_t *ed;
    hyp_flat_t *f;

    hyp_profile_node(p, 0, a, 0, &n1);
    hyp_profile_node(p, n1, a, 0, &n2);
    hyp_profile_node(p, n2, a, 0, &n3);
    v[0] = 1, v[1] = 10, v[2] = 60;
    hyp_profile_add(p, 0, n1, v);
    v[0] = 1, v[1] = 20, v[2] = 50;
    hyp_profile_add(p, 0, n2, v);
    v[0] = 1, v[1] = 30, v[2] = 30;
    hyp_profile_add(p, 0, n3, v);
    hyp_profile_node(p, 0, b, 0, &m1);
    hyp_profile_node(p, m1, c, 0, &m2);
    hyp_profile_node(p, m2, b, 0, &m3);
    hyp_profile_node(p, m3, c, 0, &m4);
    v[0] = 1, v[1] = 1, v[2] = 10;
    hyp_profile_add(p, 0, m1, v);
    v[0] = 1, v[1] = 2, v[2] = 9;
    hyp_profile_add(p, 0, m2, v);
    v[0] = 1, v[1] = 3, v[2] = 7;
    hyp_profile_add(p, 0, m3, v);
    v[0] = 1, v[1] = 4, v[2] = 4;
    hyp_profile_add(p, 0, m4, v);

    CU_ASSERT_EQUAL_FATAL(hyp_flat_compute(p, HYP_NO_ID, &f), 0);
    CU_ASSERT_EQUAL(hyp_flat_count(f), 3);
    e = entry_of(f, a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->own[0], 3);  /* calls */
    CU_ASSERT_EQUAL(e->cum[0], 1);  /* primitive calls */
    CU_ASSERT_EQUAL(e->own[1], 60); /* own time, all levels */
    CU_ASSERT_EQUAL(e->cum[1], 60); /* inclusive, recursion once */
    CU_ASSERT_EQUAL(e->cum[2], 60); /* the measured cumulative of the outermost call */
    CU_ASSERT_EQUAL(e->own[2], 60); /* each level's cum less its children's: 10 + 20 + 30 */
    e = entry_of(f, b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->own[0], 2);
    CU_ASSERT_EQUAL(e->cum[0], 1);
    CU_ASSERT_EQUAL(e->cum[1], 10);
    CU_ASSERT_EQUAL(e->cum[2], 10);
    e = entry_of(f, c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->own[0], 2);
    CU_ASSERT_EQUAL(e->cum[0], 1);
    CU_ASSERT_EQUAL(e->cum[1], 9);
    CU_ASSERT_EQUAL(e->cum[2], 9);

    ed = edge_of(f, a, a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ed);
    CU_ASSERT_EQUAL(ed->own[0], 2);
    CU_ASSERT_EQUAL(ed->cum[0], 1);
    CU_ASSERT_EQUAL(ed->cum[1], 50); /* the outermost a -> a call's subtree */
    ed = edge_of(f, HYP_NO_ID, a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ed);
    CU_ASSERT_EQUAL(ed->own[0], 1);
    CU_ASSERT_EQUAL(ed->cum[1], 60);
    ed = edge_of(f, c, b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ed);
    CU_ASSERT_EQUAL(ed->own[0], 1);
    CU_ASSERT_EQUAL(ed->cum[1], 7);
    ed = edge_of(f, b, c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ed);
    CU_ASSERT_EQUAL(ed->own[0], 2);
    CU_ASSERT_EQUAL(ed->cum[0], 1);
    CU_ASSERT_EQUAL(ed->cum[1], 9);
    CU_ASSERT_EQUAL(hyp_flat_edge_count(f), 5); /* root->a, a->a, root->b, b->c, c->b */
    hyp_flat_free(f);
    hyp_profile_free(p);
}

/* ---------------------------------------------------------------- brute force */

static int has_ancestor_func(const hyp_profile_t *p, hyp_id_t n, hyp_id_t func) {
    hyp_id_t a = hyp_profile_node_at(p, n)->parent;

    for (; a != HYP_ROOT_NODE; a = hyp_profile_node_at(p, a)->parent)
        if (hyp_profile_node_at(p, a)->func == func)
            return 1;
    return 0;
}

static hyp_id_t caller_of(const hyp_profile_t *p, hyp_id_t n) {
    hyp_id_t parent = hyp_profile_node_at(p, n)->parent;
    return parent == HYP_ROOT_NODE ? HYP_NO_ID : hyp_profile_node_at(p, parent)->func;
}

static int has_ancestor_edge(const hyp_profile_t *p, hyp_id_t n) {
    hyp_id_t caller = caller_of(p, n), callee = hyp_profile_node_at(p, n)->func, a;

    for (a = hyp_profile_node_at(p, n)->parent; a != HYP_ROOT_NODE;
         a = hyp_profile_node_at(p, a)->parent)
        if (hyp_profile_node_at(p, a)->func == callee && caller_of(p, a) == caller)
            return 1;
    return 0;
}

static void check_against_brute_force(const hyp_profile_t *p, hyp_id_t thread) {
    size_t N = hyp_profile_node_count(p), F = hyp_profile_func_count(p), n, m, i;
    uint64_t *vals = calloc(N * M, sizeof(uint64_t)), *sub = calloc(N * M, sizeof(uint64_t));
    uint64_t *own = calloc(F * M, sizeof(uint64_t)), *cum = calloc(F * M, sizeof(uint64_t));
    hyp_flat_t *f;
    size_t nonzero = 0, bad = 0;

    hyp_profile_node_values(p, thread, vals);
    for (n = 1; n < N; n++) {
        hyp_id_t a;

        for (a = (hyp_id_t)n; a != HYP_NO_ID; a = hyp_profile_node_at(p, a)->parent)
            for (m = 0; m < M; m++)
                sub[(size_t)a * M + m] += vals[n * M + m];
    }
    for (n = 1; n < N; n++) {
        hyp_id_t func = hyp_profile_node_at(p, (hyp_id_t)n)->func;
        int outer = !has_ancestor_func(p, (hyp_id_t)n, func);
        uint64_t childcum = 0;
        size_t c;

        for (c = n + 1; c < N; c++)
            if (hyp_profile_node_at(p, (hyp_id_t)c)->parent == n)
                childcum += vals[c * M + 2];
        own[func * M + 0] += vals[n * M + 0];
        own[func * M + 1] += vals[n * M + 1];
        own[func * M + 2] += vals[n * M + 2] > childcum ? vals[n * M + 2] - childcum : 0;
        if (outer) {
            cum[func * M + 0] += vals[n * M + 0];
            cum[func * M + 1] += sub[n * M + 1];
            cum[func * M + 2] += vals[n * M + 2];
        }
    }
    CU_ASSERT_EQUAL_FATAL(hyp_flat_compute(p, thread, &f), 0);
    for (i = 0; i < F; i++) {
        const hyp_flat_entry_t *e = entry_of(f, (hyp_id_t)i);
        int zero = 1;

        for (m = 0; m < M; m++)
            zero &= own[i * M + m] == 0 && cum[i * M + m] == 0;
        if (zero) {
            CU_ASSERT_PTR_NULL(e);
            continue;
        }
        nonzero++;
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        for (m = 0; m < M; m++) {
            bad += e->own[m] != own[i * M + m];
            bad += e->cum[m] != cum[i * M + m];
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(hyp_flat_count(f), nonzero);
    /* edges: every non-root node's edge, outermost per (caller, callee) */
    {
        size_t e;

        for (e = 0; e < hyp_flat_edge_count(f); e++) {
            const hyp_edge_t *ed = hyp_flat_edge_at(f, e);
            uint64_t calls = 0, prim = 0, wcum = 0;

            for (n = 1; n < N; n++) {
                if (hyp_profile_node_at(p, (hyp_id_t)n)->func != ed->callee ||
                    caller_of(p, (hyp_id_t)n) != ed->caller)
                    continue;
                calls += vals[n * M + 0];
                if (!has_ancestor_edge(p, (hyp_id_t)n)) {
                    prim += vals[n * M + 0];
                    wcum += sub[n * M + 1];
                }
            }
            CU_ASSERT_EQUAL(ed->own[0], calls);
            CU_ASSERT_EQUAL(ed->cum[0], prim);
            CU_ASSERT_EQUAL(ed->cum[1], wcum);
        }
    }
    hyp_flat_free(f);
    free(vals);
    free(sub);
    free(own);
    free(cum);
}

/* HYP_FLAT_NO_EDGES: the same function entries, in the same order, and no
 * edges; an unknown flag is refused. */
static void check_without_edges(const hyp_profile_t *p, hyp_id_t thread) {
    hyp_flat_t *all = NULL, *fn = NULL;
    size_t i, m;

    CU_ASSERT_EQUAL_FATAL(hyp_flat_compute(p, thread, &all), 0);
    CU_ASSERT_EQUAL_FATAL(hyp_flat_compute_ex(p, thread, HYP_FLAT_NO_EDGES, &fn), 0);
    CU_ASSERT_EQUAL(hyp_flat_edge_count(fn), 0);
    CU_ASSERT_EQUAL_FATAL(hyp_flat_count(fn), hyp_flat_count(all));
    for (i = 0; i < hyp_flat_count(all); i++) {
        const hyp_flat_entry_t *a = hyp_flat_at(all, i), *b = hyp_flat_at(fn, i);

        CU_ASSERT_EQUAL(a->func, b->func);
        for (m = 0; m < M; m++) {
            CU_ASSERT_EQUAL(a->own[m], b->own[m]);
            CU_ASSERT_EQUAL(a->cum[m], b->cum[m]);
        }
    }
    hyp_flat_free(all);
    hyp_flat_free(fn);
    CU_ASSERT_EQUAL(hyp_flat_compute_ex(p, thread, 1u << 7, &fn), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp_flat_compute_ex(NULL, thread, 0, &fn), HYP_EINVAL);
}

static void test_random_trees_match_brute_force(void) {
    uint64_t seed = 42;
    int round;

    for (round = 0; round < 20; round++) {
        hyp_profile_t *p = with_threads(3);
        hyp_id_t funcs[12], ids[600];
        size_t n = 1, i, nf = 3 + (size_t)round % 9;

        ids[0] = 0;
        for (i = 0; i < nf; i++)
            funcs[i] = mkfunc(p, (int)i);
        for (i = 0; i < 400; i++) {
            hyp_id_t parent, id;
            uint64_t v[M];

            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            /* mostly deep paths, so functions recur often */
            parent = ids[(seed >> 40) % 4 == 0 ? (seed >> 20) % n : n - 1];
            CU_ASSERT_EQUAL_FATAL(hyp_profile_node(p, parent, funcs[(seed >> 33) % nf], 0, &id),
                                  0);
            if (id == n)
                ids[n++] = id;
            v[0] = 1 + (seed >> 60);
            v[1] = (seed >> 45) % 1000;
            v[2] = v[1] + (seed >> 50) % 5000;
            CU_ASSERT_EQUAL_FATAL(hyp_profile_add(p, (hyp_id_t)((seed >> 10) % 3), id, v), 0);
        }
        check_against_brute_force(p, HYP_NO_ID);
        check_against_brute_force(p, 0);
        check_against_brute_force(p, 2);
        check_without_edges(p, HYP_NO_ID);
        check_without_edges(p, 1);
        hyp_profile_free(p);
    }
}

static void test_threads_add_up(void) {
    hyp_profile_t *p = with_threads(2);
    hyp_id_t a = mkfunc(p, 0), n1;
    uint64_t v[M] = {2, 100, 100};
    hyp_flat_t *all, *t0, *t1;

    hyp_profile_node(p, 0, a, 0, &n1);
    hyp_profile_add(p, 0, n1, v);
    v[0] = 3;
    v[1] = v[2] = 50;
    hyp_profile_add(p, 1, n1, v);
    CU_ASSERT_EQUAL_FATAL(hyp_flat_compute(p, HYP_NO_ID, &all), 0);
    CU_ASSERT_EQUAL_FATAL(hyp_flat_compute(p, 0, &t0), 0);
    CU_ASSERT_EQUAL_FATAL(hyp_flat_compute(p, 1, &t1), 0);
    CU_ASSERT_EQUAL(hyp_flat_at(all, 0)->own[0], 5);
    CU_ASSERT_EQUAL(hyp_flat_at(t0, 0)->own[0], 2);
    CU_ASSERT_EQUAL(hyp_flat_at(t1, 0)->own[0], 3);
    CU_ASSERT_EQUAL(hyp_flat_at(all, 0)->cum[1], 150);
    CU_ASSERT_EQUAL(hyp_flat_compute(p, 7, &t1), HYP_ERANGE);
    hyp_flat_free(all);
    hyp_flat_free(t0);
    hyp_flat_free(t1);
    hyp_profile_free(p);
}

/* 200 000 nested calls of 4 alternating functions: an iterative walk. */
static void test_deep_tree(void) {
    hyp_profile_t *p = with_threads(1);
    hyp_id_t funcs[4], parent = 0;
    uint64_t v[M] = {1, 1, 0};
    const hyp_flat_entry_t *e;
    hyp_flat_t *f;
    int i;

    for (i = 0; i < 4; i++)
        funcs[i] = mkfunc(p, i);
    for (i = 0; i < 200000; i++) {
        CU_ASSERT_EQUAL_FATAL(hyp_profile_node(p, parent, funcs[i % 4], 0, &parent), 0);
        v[2] = (uint64_t)(200000 - i);
        hyp_profile_add(p, 0, parent, v);
    }
    CU_ASSERT_EQUAL_FATAL(hyp_flat_compute(p, HYP_NO_ID, &f), 0);
    e = entry_of(f, funcs[0]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->own[0], 50000);
    CU_ASSERT_EQUAL(e->cum[0], 1);
    CU_ASSERT_EQUAL(e->cum[1], 200000);
    CU_ASSERT_EQUAL(e->cum[2], 200000);
    e = entry_of(f, funcs[3]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->cum[1], 200000 - 3);
    CU_ASSERT_EQUAL(hyp_flat_edge_count(f), 5); /* the root's and the cycle's four */
    CU_ASSERT_EQUAL(edge_of(f, funcs[0], funcs[1])->own[0], 50000);
    CU_ASSERT_EQUAL(edge_of(f, funcs[0], funcs[1])->cum[0], 1);
    hyp_flat_free(f);
    hyp_profile_free(p);
}

static void test_empty_profile(void) {
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_SAMPLING, NULL, 0);
    hyp_flat_t *f;

    CU_ASSERT_EQUAL_FATAL(hyp_flat_compute(p, HYP_NO_ID, &f), 0);
    CU_ASSERT_EQUAL(hyp_flat_count(f), 0);
    CU_ASSERT_EQUAL(hyp_flat_edge_count(f), 0);
    CU_ASSERT_PTR_NULL(hyp_flat_at(f, 0));
    hyp_flat_free(f);
    hyp_profile_free(p);
}

/* Recursion measured by the producer on the live stack: a generator g
 * created under a resumes later under b, whose body calls a again. The tree
 * says a -> g -> a (the inner a "recursive"), the stack said otherwise for
 * g's inner a only when a really was running; the rec columns carry it, and
 * the aggregation takes base minus rec for functions and edges. */
static const hyp_metric_t rec_metrics[] = {
    {"calls", "count", HYP_METRIC_CALLS},
    {"wall_own", "ns", HYP_METRIC_OWN},
    {"wall_cum", "ns", HYP_METRIC_CUM},
    {"calls.rec", "count", HYP_METRIC_REC},
    {"wall_cum.rec", "ns", HYP_METRIC_REC},
    {"calls.edge_rec", "count", HYP_METRIC_EDGE_REC},
    {"wall_cum.edge_rec", "ns", HYP_METRIC_EDGE_REC},
};

static void test_rec_columns(void) {
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_DETERMINISTIC, rec_metrics, 7);
    hyp_thread_t t = {1, 1, 0};
    hyp_id_t a, g, n1, n2, n3;
    /* calls, own, cum, calls.rec, cum.rec, calls.edge_rec, cum.edge_rec */
    uint64_t v1[7] = {2, 30, 100, 0, 0, 0, 0}; /* root -> a: two calls */
    uint64_t v2[7] = {1, 10, 40, 0, 0, 0, 0};  /* a -> g */
    uint64_t v3[7] = {3, 30, 30, 1, 10, 1, 10}; /* g -> a: one of three recursive */
    const hyp_flat_entry_t *e;
    const hyp_edge_t *ed;
    hyp_flat_t *f;

    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_string(p, "main", 4, &t.name), 0);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_thread(p, &t, NULL), 0);
    a = mkfunc(p, 0);
    g = mkfunc(p, 1);
    hyp_profile_node(p, 0, a, 0, &n1);
    hyp_profile_node(p, n1, g, 0, &n2);
    hyp_profile_node(p, n2, a, 0, &n3);
    hyp_profile_add(p, 0, n1, v1);
    hyp_profile_add(p, 0, n2, v2);
    hyp_profile_add(p, 0, n3, v3);
    CU_ASSERT_EQUAL_FATAL(hyp_flat_compute(p, HYP_NO_ID, &f), 0);
    e = entry_of(f, a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->own[0], 5);
    CU_ASSERT_EQUAL(e->cum[0], 4);        /* the ancestor rule would say 2 */
    CU_ASSERT_EQUAL(e->cum[2], 100 + 20); /* it would say 100 */
    CU_ASSERT_EQUAL(e->own[3], 1);        /* the rec columns add up as they are */
    ed = edge_of(f, g, a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ed);
    CU_ASSERT_EQUAL(ed->own[0], 3);
    CU_ASSERT_EQUAL(ed->cum[0], 2);
    CU_ASSERT_EQUAL(ed->cum[2], 20);
    e = entry_of(f, g);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->cum[0], 1);
    CU_ASSERT_EQUAL(e->cum[2], 40);
    hyp_flat_free(f);
    hyp_profile_free(p);
}

/* A rec column must name a calls or cum column it qualifies. */
static void test_rec_columns_need_a_base(void) {
    static const hyp_metric_t no_base[] = {
        {"calls", "count", HYP_METRIC_CALLS},
        {"wall.rec", "ns", HYP_METRIC_REC},
    };
    static const hyp_metric_t own_base[] = {
        {"wall_own", "ns", HYP_METRIC_OWN},
        {"wall_own.edge_rec", "ns", HYP_METRIC_EDGE_REC},
    };
    static const hyp_metric_t bad_suffix[] = {
        {"calls", "count", HYP_METRIC_CALLS},
        {"calls.edge_rec", "count", HYP_METRIC_REC},
    };
    hyp_profile_t *p;

    CU_ASSERT_PTR_NULL(hyp_profile_new(HYP_MODE_DETERMINISTIC, no_base, 2));
    CU_ASSERT_PTR_NULL(hyp_profile_new(HYP_MODE_DETERMINISTIC, own_base, 2));
    CU_ASSERT_PTR_NULL(hyp_profile_new(HYP_MODE_DETERMINISTIC, bad_suffix, 2));
    p = hyp_profile_new(HYP_MODE_DETERMINISTIC, rec_metrics, 7);
    CU_ASSERT_PTR_NOT_NULL(p);
    hyp_profile_free(p);
}

/* The reference walk: recursive, each node's children found by a scan. */
static void tree_walk_ref(const int32_t *parent, size_t n, uint32_t i, uint32_t d,
                          uint32_t *order, uint32_t *depth, size_t *k) {
    size_t j;

    order[*k] = i;
    depth[(*k)++] = d;
    for (j = i + 1; j < n; j++)
        if (parent[j] == (int32_t)i)
            tree_walk_ref(parent, n, (uint32_t)j, d + 1, order, depth, k);
}

/* Random trees, deep chains and wide fans: the linear walk is the recursive
 * one's, sizes and places describe each subtree, and the children arrays
 * list each node's children in id order. */
static void test_tree_walks_match_a_recursive_walk(void) {
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int round;

    for (round = 0; round < 60; round++) {
        size_t n = 1 + (size_t)(round * 37 % 400), i, k = 0, bad = 0;
        int32_t *parent = malloc(n * sizeof(*parent));
        uint32_t *order = malloc(n * 4), *depth = malloc(n * 4), *size = malloc(n * 4),
                 *pos = malloc(n * 4), *rorder = malloc(n * 4), *rdepth = malloc(n * 4),
                 *first = malloc((n + 1) * 4), *kids = malloc(n * 4);

        parent[0] = -1;
        for (i = 1; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* round % 3: random parents, a chain, or fans under few nodes */
            parent[i] = round % 3 == 1   ? (int32_t)(i - 1)
                        : round % 3 == 2 ? (int32_t)(x % (i < 5 ? i : 5))
                                         : (int32_t)(x % i);
        }
        CU_ASSERT_EQUAL(hyp_tree_preorder(parent, n, order, depth, size, pos), 0);
        tree_walk_ref(parent, n, 0, 0, rorder, rdepth, &k);
        CU_ASSERT_EQUAL(k, n);
        for (i = 0; i < n; i++) {
            uint32_t node = order[i];

            bad += order[i] != rorder[i] || depth[i] != rdepth[i] || pos[node] != i;
            /* the subtree is the run after the node of deeper nodes */
            bad += i + size[node] > n ||
                   (i + size[node] < n && depth[i + size[node]] > depth[i]) ||
                   (size[node] > 1 && depth[i + 1] != depth[i] + 1);
        }
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT_EQUAL(hyp_tree_preorder(parent, n, order, NULL, NULL, NULL), 0);
        for (i = 0; i < n; i++)
            bad += order[i] != rorder[i];
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT_EQUAL(hyp_tree_children(parent, n, first, kids), 0);
        CU_ASSERT_EQUAL(first[0], 0);
        CU_ASSERT_EQUAL(first[n], n - 1);
        for (i = 0; i < n; i++) {
            uint32_t j, prev = 0;

            for (j = first[i]; j < first[i + 1]; j++) {
                /* under its parent, in id order; with first[n] == n - 1,
                 * every node but the root is listed exactly once */
                bad += parent[kids[j]] != (int32_t)i || kids[j] <= prev;
                prev = kids[j];
            }
        }
        CU_ASSERT_EQUAL(bad, 0);
        free(parent), free(order), free(depth), free(size), free(pos);
        free(rorder), free(rdepth), free(first), free(kids);
    }
}

/* Not a tree in producer order: refused, nothing walked. */
static void test_tree_walks_refuse_other_shapes(void) {
    const int32_t no_root[] = {0, 0, 1}, forward[] = {-1, 2, 0}, second_root[] = {-1, 0, -1};
    uint32_t order[3], first[4], kids[2];

    CU_ASSERT_EQUAL(hyp_tree_preorder(no_root, 3, order, NULL, NULL, NULL), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp_tree_preorder(forward, 3, order, NULL, NULL, NULL), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp_tree_preorder(second_root, 3, order, NULL, NULL, NULL), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp_tree_preorder(forward, 3, NULL, NULL, NULL, NULL), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp_tree_children(forward, 3, first, kids), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp_tree_children(no_root, 3, first, kids), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp_tree_preorder(NULL, 0, NULL, NULL, NULL, NULL), 0);
}

static const hyp_test_case_t cases[] = {
    {"recursion is counted once", test_recursion_counted_once},
    {"random trees match a brute force", test_random_trees_match_brute_force},
    {"threads add up", test_threads_add_up},
    {"a 200 000-deep tree", test_deep_tree},
    {"an empty profile", test_empty_profile},
    {"live-stack recursion columns", test_rec_columns},
    {"rec columns need a base column", test_rec_columns_need_a_base},
    {"tree walks match a recursive walk", test_tree_walks_match_a_recursive_walk},
    {"tree walks refuse other shapes", test_tree_walks_refuse_other_shapes},
    {NULL, NULL},
};

const hyp_test_suite_t hyp_suite_aggregate = {"aggregate", cases, NULL, NULL};
