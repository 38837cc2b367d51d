/* The deterministic engine's call tree (pyext/det_tree.c), built without
 * Python: push and pop with own and cumulative times, the children list and
 * the table beyond DET_LIST_MAX children, recursion records for the function
 * and the edge, the table rebuilt after nodes left the tree, and suspended
 * generator instances. */
#include "harness.h"

#include "det_tree.h"

#include <stdint.h>
#include <string.h>

/* The tree only points to its functions; here a function is its index. */
struct det_func_s {
    uint32_t index;
};

#define NFUNCS 64
static struct det_func_s funcs[NFUNCS];
/* Keys: any distinct addresses, one per function. */
static char keys[NFUNCS];

static void tree_open(det_tree_t *t) {
    uint32_t i;

    memset(t, 0, sizeof *t);
    for (i = 0; i < NFUNCS; i++)
        funcs[i].index = i;
    CU_ASSERT_EQUAL_FATAL(hyp__det_stack_open(t, NFUNCS), 0);
}

/* The child of the top of the stack for function i, made at its first call,
 * the way the engine's slow half finds it. */
static det_node_t *child(det_tree_t *t, uint32_t i) {
    det_node_t *parent = hyp__det_tree_top(t), *n;

    n = parent->hot;
    if (n != NULL && n->key == &keys[i])
        return n;
    n = hyp__det_kid_find(t, parent, &keys[i]);
    if (n != NULL)
        return parent->hot = n;
    return hyp__det_node_link(t, parent, &keys[i], &funcs[i], i);
}

static void call(det_tree_t *t, uint32_t i, uint64_t wall) {
    det_node_t *n = child(t, i);

    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    if (t->depth == t->cap)
        CU_ASSERT_EQUAL_FATAL(hyp__det_stack_grow(t), 0);
    CU_ASSERT_EQUAL(hyp__det_tree_push(t, n, &keys[i], NULL, NULL, 0, wall, wall / 2), 0);
}

static void ret(det_tree_t *t, det_gens_t *g, uint32_t i, uint64_t wall) {
    CU_ASSERT_EQUAL(hyp__det_tree_leave(t, g, &keys[i], 0, wall, wall / 2), 0);
}

/* main calls a (10 ticks, of which b takes 4) twice: own and cumulative
 * times, calls, and the stack's per-function table back at zero. */
static void test_det_tree_push_pop(void) {
    det_tree_t t;
    det_gens_t g = {0};
    det_node_t *a, *b;

    tree_open(&t);
    call(&t, 1, 100);
    call(&t, 2, 102);
    ret(&t, &g, 2, 106);
    ret(&t, &g, 1, 110);
    call(&t, 1, 200);
    call(&t, 2, 202);
    ret(&t, &g, 2, 206);
    ret(&t, &g, 1, 210);
    CU_ASSERT_EQUAL(t.depth, 0);
    a = t.root.first_child;
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NULL(a->next_sibling);
    b = a->first_child;
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(a->calls, 2);
    CU_ASSERT_EQUAL(a->wall_cum, 20);
    CU_ASSERT_EQUAL(a->wall_own, 12);
    CU_ASSERT_EQUAL(b->calls, 2);
    CU_ASSERT_EQUAL(b->wall_cum, 8);
    CU_ASSERT_EQUAL(b->wall_own, 8);
    CU_ASSERT_EQUAL(a->cpu_cum, 10);
    CU_ASSERT_PTR_NULL(a->rec);
    CU_ASSERT_EQUAL(t.top[1], 0);
    CU_ASSERT_EQUAL(t.top[2], 0);
    /* A return that matches no open call is told apart; one that matches a
     * deeper call closes the calls above it. */
    CU_ASSERT_EQUAL(hyp__det_tree_leave(&t, &g, &keys[1], 0, 300, 150), 0); /* empty stack */
    call(&t, 1, 300);
    CU_ASSERT_EQUAL(hyp__det_tree_leave(&t, &g, &keys[5], 0, 301, 150), 1);
    call(&t, 2, 302);
    call(&t, 3, 303);
    ret(&t, &g, 1, 310);
    CU_ASSERT_EQUAL(t.depth, 0);
    CU_ASSERT_EQUAL(a->calls, 3);
    CU_ASSERT_EQUAL(a->wall_cum, 30);
    CU_ASSERT_EQUAL(b->first_child->wall_cum, 7);
    hyp__det_tree_free(&t);
}

/* A stack deeper than its first allocation grows, and the pops find every
 * frame again. */
static void test_det_tree_deep(void) {
    det_tree_t t;
    det_gens_t g = {0};
    uint32_t i;
    det_node_t *n;

    tree_open(&t);
    for (i = 0; i < 1000; i++)
        call(&t, i % 2, i);
    CU_ASSERT_EQUAL(t.depth, 1000);
    CU_ASSERT(t.cap >= 1000);
    for (i = 1000; i-- > 0;)
        ret(&t, &g, i % 2, 2000 - i);
    CU_ASSERT_EQUAL(t.depth, 0);
    for (n = t.root.first_child, i = 0; n != NULL; n = n->first_child, i++)
        CU_ASSERT_EQUAL(n->calls, 1);
    CU_ASSERT_EQUAL(i, 1000);
    hyp__det_tree_free(&t);
}

/* More than DET_LIST_MAX children: found through the table, each once,
 * and told apart from the children of the same functions under another
 * parent. */
static void test_det_tree_many_children(void) {
    det_tree_t t;
    det_gens_t g = {0};
    det_node_t *p1, *p2, *n;
    uint32_t i, round;

    tree_open(&t);
    for (round = 0; round < 3; round++) {
        call(&t, 0, 0);
        for (i = 1; i <= 20; i++) {
            call(&t, i, 0);
            ret(&t, &g, i, 1);
        }
        ret(&t, &g, 0, 2);
        call(&t, 21, 0);
        for (i = 1; i <= 12; i++) {
            call(&t, i, 0);
            ret(&t, &g, i, 1);
        }
        ret(&t, &g, 21, 2);
    }
    p1 = hyp__det_kid_find(&t, &t.root, &keys[0]);
    p2 = hyp__det_kid_find(&t, &t.root, &keys[21]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p2);
    CU_ASSERT_EQUAL(p1->nkids, 20);
    CU_ASSERT_EQUAL(p2->nkids, 12);
    CU_ASSERT(p1->nkids > DET_LIST_MAX);
    CU_ASSERT_EQUAL(t.kids_used, 32);
    CU_ASSERT(t.kids_cap >= 2 * t.kids_used);
    for (i = 1; i <= 20; i++) {
        n = hyp__det_kids_find(&t, p1, &keys[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(n);
        CU_ASSERT_PTR_EQUAL(n->parent, p1);
        CU_ASSERT_EQUAL(n->calls, 3);
        CU_ASSERT_EQUAL(n->fidx, i);
        n = hyp__det_kids_find(&t, p2, &keys[i]);
        CU_ASSERT(i <= 12 ? n != NULL && n->parent == p2 && n->calls == 3 : n == NULL);
    }
    CU_ASSERT_PTR_NULL(hyp__det_kid_find(&t, p1, &keys[30]));
    /* A parent with few children keeps them in its list alone. */
    CU_ASSERT_EQUAL(t.root.nkids, 2);
    hyp__det_tree_free(&t);
}

/* f -> g -> f -> g: the second f recurses for the function only (its
 * caller g has no open call of f under it), the second g for the function
 * and the edge (f -> g is open already). Its cumulative time goes to the
 * record of what it recursed. */
static void test_det_tree_recursion(void) {
    det_tree_t t;
    det_gens_t g = {0};
    det_node_t *f1, *g1, *f2, *g2;

    tree_open(&t);
    call(&t, 1, 0);
    call(&t, 2, 10);
    call(&t, 1, 20);
    call(&t, 2, 30);
    CU_ASSERT_EQUAL(t.stack[2].rec, DET_REC_FUNC);
    CU_ASSERT_EQUAL(t.stack[3].rec, DET_REC_FUNC | DET_REC_EDGE);
    CU_ASSERT_EQUAL(t.stack[3].prev_same, 2); /* the first g's call, 1 + its index */
    CU_ASSERT_EQUAL(t.top[2], 4);
    ret(&t, &g, 2, 34);
    CU_ASSERT_EQUAL(t.top[2], 2);
    ret(&t, &g, 1, 40);
    ret(&t, &g, 2, 50);
    ret(&t, &g, 1, 60);
    f1 = t.root.first_child;
    g1 = f1->first_child;
    f2 = g1->first_child;
    g2 = f2->first_child;
    CU_ASSERT_PTR_NULL(f1->rec);
    CU_ASSERT_PTR_NULL(g1->rec);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f2->rec);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g2->rec);
    CU_ASSERT_EQUAL(f2->rec->calls, 1);
    CU_ASSERT_EQUAL(f2->rec->edge_calls, 0);
    CU_ASSERT_EQUAL(f2->rec->wall, 20);
    CU_ASSERT_EQUAL(f2->rec->edge_wall, 0);
    CU_ASSERT_EQUAL(g2->rec->calls, 1);
    CU_ASSERT_EQUAL(g2->rec->edge_calls, 1);
    CU_ASSERT_EQUAL(g2->rec->wall, 4);
    CU_ASSERT_EQUAL(g2->rec->edge_wall, 4);
    CU_ASSERT_EQUAL(f1->wall_cum, 60);
    CU_ASSERT_EQUAL(f2->wall_cum, 20);
    CU_ASSERT_EQUAL(t.top[1], 0);
    hyp__det_tree_free(&t);
}

/* Nodes taken out of the tree leave the table; the rest are found again,
 * with the counts of children made anew. */
static void test_det_tree_rebuild(void) {
    det_tree_t t;
    det_gens_t g = {0};
    det_node_t *p, *n;
    uint32_t i;

    tree_open(&t);
    call(&t, 0, 0);
    for (i = 1; i <= 12; i++) {
        call(&t, i, 0);
        ret(&t, &g, i, 1);
    }
    ret(&t, &g, 0, 2);
    p = t.root.first_child;
    CU_ASSERT_EQUAL(p->nkids, 12);
    /* Down to 10 children: still beyond the list. */
    hyp__det_node_unlink(hyp__det_kid_find(&t, p, &keys[3]));
    hyp__det_node_unlink(hyp__det_kid_find(&t, p, &keys[7]));
    CU_ASSERT_EQUAL(hyp__det_kids_rebuild(&t), 0);
    CU_ASSERT_EQUAL(p->nkids, 10);
    CU_ASSERT_EQUAL(t.kids_used, 10);
    CU_ASSERT_PTR_EQUAL(p->hot, p->first_child);
    for (i = 1; i <= 12; i++) {
        n = hyp__det_kid_find(&t, p, &keys[i]);
        CU_ASSERT(i == 3 || i == 7 ? n == NULL : n != NULL && n->fidx == i);
    }
    /* Down to 6: back to the list, and the table empty. */
    for (i = 8; i <= 11; i++)
        hyp__det_node_unlink(hyp__det_kid_find(&t, p, &keys[i]));
    CU_ASSERT_EQUAL(hyp__det_kids_rebuild(&t), 0);
    CU_ASSERT_EQUAL(p->nkids, 6);
    CU_ASSERT_EQUAL(t.kids_used, 0);
    for (i = 1; i <= 12; i++) {
        n = hyp__det_kid_find(&t, p, &keys[i]);
        CU_ASSERT(i == 3 || (i >= 7 && i <= 11) ? n == NULL : n != NULL);
    }
    /* A new child after the rebuild is linked and found as before. */
    call(&t, 0, 10);
    call(&t, 40, 11);
    ret(&t, &g, 40, 12);
    ret(&t, &g, 0, 13);
    CU_ASSERT_EQUAL(p->nkids, 7);
    CU_ASSERT_PTR_NOT_NULL(hyp__det_kid_find(&t, p, &keys[40]));
    hyp__det_tree_free(&t);
}

/* A generator's frame that suspends goes to the table with the time it
 * ran, and its resumption finds the same node; an instance never resumed
 * is forgotten at clear. */
static void test_det_tree_suspended(void) {
    det_tree_t t;
    det_gens_t g = {0};
    det_gen_t got;
    det_node_t *n;
    static char frames[200];
    uint32_t i;

    tree_open(&t);
    n = child(&t, 5);
    CU_ASSERT_EQUAL(hyp__det_tree_push(&t, n, &keys[5], &frames[0], NULL, 0, 100, 0), 0);
    CU_ASSERT_EQUAL(hyp__det_tree_leave(&t, &g, &keys[5], 1, 103, 0), 0);
    CU_ASSERT_EQUAL(g.used, 1);
    CU_ASSERT_FATAL(hyp__det_gens_take(&g, &frames[0], &got));
    CU_ASSERT_PTR_EQUAL(got.node, n);
    CU_ASSERT_EQUAL(got.first_wall, 100);
    CU_ASSERT_EQUAL(got.run_wall, 3);
    CU_ASSERT_EQUAL(g.used, 0);
    CU_ASSERT_EQUAL(hyp__det_tree_push(&t, n, &keys[5], &frames[0], &got, 0, 200, 0), 0);
    CU_ASSERT_EQUAL(hyp__det_tree_leave(&t, &g, &keys[5], 0, 205, 0), 0);
    CU_ASSERT_EQUAL(n->calls, 1); /* a resumption is not a call */
    CU_ASSERT_EQUAL(n->wall_cum, 8);
    CU_ASSERT_FALSE(hyp__det_gens_take(&g, &frames[0], &got));
    /* Many instances at once: the table grows, and backward-shift deletion
     * leaves every other entry findable. */
    for (i = 0; i < 200; i++)
        hyp__det_gens_put(&g, &frames[i], n, i, i);
    CU_ASSERT_EQUAL(g.used, 200);
    for (i = 0; i < 200; i += 2)
        CU_ASSERT(hyp__det_gens_take(&g, &frames[i], &got) && got.run_wall == i);
    for (i = 1; i < 200; i += 2)
        CU_ASSERT(hyp__det_gens_take(&g, &frames[i], &got) && got.first_wall == i);
    CU_ASSERT_EQUAL(g.used, 0);
    hyp__det_gens_put(&g, &frames[1], n, 1, 1);
    hyp__det_gens_clear(&g);
    CU_ASSERT_FALSE(hyp__det_gens_take(&g, &frames[1], &got));
    CU_ASSERT_EQUAL(g.lost, 0);
    hyp__det_gens_free(&g);
    hyp__det_tree_free(&t);
}

static const hyp_test_case_t cases[] = {
    {"push and pop", test_det_tree_push_pop},
    {"deep stack", test_det_tree_deep},
    {"children beyond the list", test_det_tree_many_children},
    {"recursion records", test_det_tree_recursion},
    {"children table rebuilt", test_det_tree_rebuild},
    {"suspended instances", test_det_tree_suspended},
    {NULL, NULL},
};

const hyp_test_suite_t hyp_suite_det_tree = {"det_tree", cases, NULL, NULL};
