/* Suite for core/profile.c and core/merge.c: interning, the node cap, metric
 * rows, metadata, samples, label sets, merging and copying, and behaviour
 * when allocation fails. */
#include "harness.h"

#include "hyprof.h"

#include <stdlib.h>
#include <string.h>

static const hyp_metric_t det_metrics[] = {
    {"calls", "count", HYP_METRIC_CALLS},
    {"wall_own", "ns", HYP_METRIC_OWN},
    {"wall_cum", "ns", HYP_METRIC_CUM},
};

static hyp_id_t func_named(hyp_profile_t *p, const char *name) {
    hyp_func_t f = {0, 0, 1, HYP_FUNC_PYTHON};
    hyp_id_t id = HYP_NO_ID;

    CU_ASSERT_EQUAL_FATAL(hyp_profile_string(p, name, strlen(name), &f.name), 0);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_string(p, "m.py", 4, &f.file), 0);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_func(p, &f, &id), 0);
    return id;
}

static void test_new_rejects_bad_metrics(void) {
    hyp_metric_t dup[] = {{"a", "ns", HYP_METRIC_OWN}, {"a", "ns", HYP_METRIC_OWN}};
    hyp_metric_t empty[] = {{"", "ns", HYP_METRIC_OWN}};
    hyp_metric_t kind[] = {{"a", "ns", (hyp_metric_kind_t)7}};
    hyp_profile_t *p;

    CU_ASSERT_PTR_NULL(hyp_profile_new(HYP_MODE_DETERMINISTIC, dup, 2));
    CU_ASSERT_PTR_NULL(hyp_profile_new(HYP_MODE_DETERMINISTIC, empty, 1));
    CU_ASSERT_PTR_NULL(hyp_profile_new(HYP_MODE_DETERMINISTIC, kind, 1));
    CU_ASSERT_PTR_NULL(hyp_profile_new((hyp_mode_t)5, det_metrics, 3));
    p = hyp_profile_new(HYP_MODE_SAMPLING, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(hyp_profile_node_count(p), 1);
    CU_ASSERT_EQUAL(hyp_profile_node_at(p, 0)->parent, HYP_NO_ID);
    CU_ASSERT_EQUAL(hyp_profile_node_at(p, 0)->func, HYP_NO_ID);
    CU_ASSERT_EQUAL(hyp_profile_mode(p), HYP_MODE_SAMPLING);
    hyp_profile_free(p);
}

static void test_strings_intern(void) {
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_DETERMINISTIC, det_metrics, 3);
    hyp_id_t a, b, c, d, e;
    size_t len;
    char name[32];
    int i;

    CU_ASSERT_EQUAL(hyp_profile_string(p, "foo", 3, &a), 0);
    CU_ASSERT_EQUAL(hyp_profile_string(p, "foobar", 3, &b), 0); /* the same 3 bytes */
    CU_ASSERT_EQUAL(hyp_profile_string(p, "a\0b", 3, &c), 0);   /* NUL inside is kept */
    CU_ASSERT_EQUAL(hyp_profile_string(p, "a\0c", 3, &d), 0);
    CU_ASSERT_EQUAL(hyp_profile_string(p, NULL, 0, &e), 0);
    CU_ASSERT_EQUAL(a, b);
    CU_ASSERT_NOT_EQUAL(c, d);
    CU_ASSERT_EQUAL(hyp_profile_string_count(p), 4);
    CU_ASSERT_EQUAL(memcmp(hyp_profile_string_at(p, d, &len), "a\0c", 3), 0);
    CU_ASSERT_EQUAL(len, 3);
    CU_ASSERT_STRING_EQUAL(hyp_profile_string_at(p, e, &len), "");
    CU_ASSERT_PTR_NULL(hyp_profile_string_at(p, 99, &len));
    /* many strings force the table to grow; ids stay stable */
    for (i = 0; i < 5000; i++) {
        hyp_id_t id, again;

        snprintf(name, sizeof(name), "s%d", i);
        CU_ASSERT_EQUAL_FATAL(hyp_profile_string(p, name, strlen(name), &id), 0);
        CU_ASSERT_EQUAL_FATAL(hyp_profile_string(p, name, strlen(name), &again), 0);
        CU_ASSERT_EQUAL_FATAL(id, again);
        CU_ASSERT_EQUAL_FATAL(id, (hyp_id_t)(4 + i));
    }
    CU_ASSERT_EQUAL(hyp_profile_string(p, "foo", 3, &b), 0);
    CU_ASSERT_EQUAL(a, b);
    hyp_profile_free(p);
}

static void test_functions_and_nodes_intern(void) {
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_DETERMINISTIC, det_metrics, 3);
    hyp_func_t bad = {42, 0, 0, HYP_FUNC_PYTHON};
    hyp_id_t f, g, n1, n2, n3, n4, x;

    f = func_named(p, "f");
    g = func_named(p, "g");
    CU_ASSERT_NOT_EQUAL(f, g);
    CU_ASSERT_EQUAL(func_named(p, "f"), f);
    CU_ASSERT_EQUAL(hyp_profile_func_count(p), 2);
    CU_ASSERT_EQUAL(hyp_profile_func(p, &bad, &x), HYP_ERANGE);
    CU_ASSERT_EQUAL(hyp_profile_node(p, 0, f, 0, &n1), 0);
    CU_ASSERT_EQUAL(hyp_profile_node(p, n1, g, 0, &n2), 0);
    CU_ASSERT_EQUAL(hyp_profile_node(p, n1, g, 7, &n3), 0); /* another line, another node */
    CU_ASSERT_EQUAL(hyp_profile_node(p, n1, g, 0, &n4), 0);
    CU_ASSERT_EQUAL(n2, n4);
    CU_ASSERT_NOT_EQUAL(n2, n3);
    CU_ASSERT_EQUAL(hyp_profile_node_count(p), 4);
    CU_ASSERT_EQUAL(hyp_profile_node_at(p, n3)->parent, n1);
    CU_ASSERT_EQUAL(hyp_profile_node_at(p, n3)->line, 7);
    CU_ASSERT_EQUAL(hyp_profile_node(p, 99, f, 0, &x), HYP_ERANGE);
    CU_ASSERT_EQUAL(hyp_profile_node(p, 0, 99, 0, &x), HYP_ERANGE);
    CU_ASSERT_PTR_NULL(hyp_profile_node_at(p, 99));
    hyp_profile_free(p);
}

static void test_node_limit_folds_into_truncated(void) {
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_DETERMINISTIC, det_metrics, 3);
    hyp_id_t f, g, h, n1, n2, t1, t2, t3;
    const hyp_func_t *tf;
    size_t len;

    hyp_profile_set_node_limit(p, 3);
    f = func_named(p, "f");
    g = func_named(p, "g");
    h = func_named(p, "h");
    CU_ASSERT_EQUAL(hyp_profile_node(p, 0, f, 0, &n1), 0);
    CU_ASSERT_EQUAL(hyp_profile_node(p, n1, g, 0, &n2), 0);
    CU_ASSERT_EQUAL(hyp_profile_truncated(p), 0);
    /* the cap (3 with the root) is reached: new paths fold */
    CU_ASSERT_EQUAL(hyp_profile_node(p, n2, h, 0, &t1), 0);
    CU_ASSERT_EQUAL(hyp_profile_node(p, n2, f, 0, &t2), 0);
    CU_ASSERT_EQUAL(t1, t2);
    CU_ASSERT_EQUAL(hyp_profile_node_at(p, t1)->parent, n2);
    tf = hyp_profile_func_at(p, hyp_profile_node_at(p, t1)->func);
    CU_ASSERT_EQUAL(tf->kind, HYP_FUNC_SPECIAL);
    CU_ASSERT_STRING_EQUAL(hyp_profile_string_at(p, tf->name, &len), "[truncated]");
    /* calls below a truncated node stay in it */
    CU_ASSERT_EQUAL(hyp_profile_node(p, t1, g, 0, &t3), 0);
    CU_ASSERT_EQUAL(t3, t1);
    CU_ASSERT_EQUAL(hyp_profile_truncated(p), 3);
    /* existing paths still resolve to their nodes */
    CU_ASSERT_EQUAL(hyp_profile_node(p, n1, g, 0, &t3), 0);
    CU_ASSERT_EQUAL(t3, n2);
    CU_ASSERT_EQUAL(hyp_profile_truncated(p), 3);
    CU_ASSERT_EQUAL(hyp_profile_node_count(p), 4);
    hyp_profile_free(p);
}

static void test_rows_per_thread(void) {
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_DETERMINISTIC, det_metrics, 3);
    hyp_thread_t th = {100, 200, 0};
    hyp_id_t f, n1, t0, t1;
    uint64_t v1[] = {1, 10, 30}, v2[] = {2, 5, 5}, out[2 * 3];
    const uint64_t *row;

    f = func_named(p, "f");
    CU_ASSERT_EQUAL(hyp_profile_thread(p, &th, &t0), 0);
    th.os_tid = 101;
    CU_ASSERT_EQUAL(hyp_profile_thread(p, &th, &t1), 0);
    th.name = 77;
    CU_ASSERT_EQUAL(hyp_profile_thread(p, &th, NULL), HYP_ERANGE);
    CU_ASSERT_EQUAL(hyp_profile_thread_count(p), 2);
    CU_ASSERT_EQUAL(hyp_profile_thread_at(p, t1)->os_tid, 101);
    CU_ASSERT_EQUAL(hyp_profile_node(p, 0, f, 0, &n1), 0);
    CU_ASSERT_PTR_NULL(hyp_profile_row(p, t0, n1));
    CU_ASSERT_EQUAL(hyp_profile_add(p, t0, n1, v1), 0);
    CU_ASSERT_EQUAL(hyp_profile_add(p, t0, n1, v1), 0);
    CU_ASSERT_EQUAL(hyp_profile_add(p, t1, n1, v2), 0);
    CU_ASSERT_EQUAL(hyp_profile_add(p, 5, n1, v2), HYP_ERANGE);
    CU_ASSERT_EQUAL(hyp_profile_add(p, t0, 9, v2), HYP_ERANGE);
    row = hyp_profile_row(p, t0, n1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(row);
    CU_ASSERT_EQUAL(row[0], 2);
    CU_ASSERT_EQUAL(row[1], 20);
    CU_ASSERT_EQUAL(row[2], 60);
    CU_ASSERT_EQUAL(hyp_profile_node_values(p, HYP_NO_ID, out), 0);
    CU_ASSERT_EQUAL(out[3 + 0], 4);
    CU_ASSERT_EQUAL(out[3 + 1], 25);
    CU_ASSERT_EQUAL(out[3 + 2], 65);
    CU_ASSERT_EQUAL(out[0] + out[1] + out[2], 0);
    CU_ASSERT_EQUAL(hyp_profile_node_values(p, t1, out), 0);
    CU_ASSERT_EQUAL(out[3 + 1], 5);
    CU_ASSERT_EQUAL(hyp_profile_node_values(p, 9, out), HYP_ERANGE);
    hyp_profile_free(p);
}

static void test_meta(void) {
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_DETERMINISTIC, det_metrics, 3);
    const char *argv[] = {"python", "-c", "pass"};
    char key[] = "argv";
    const hyp_meta_t *m;

    CU_ASSERT_EQUAL(hyp_profile_set_meta_str(p, "python", "3.12.1"), 0);
    CU_ASSERT_EQUAL(hyp_profile_set_meta_int(p, "pid", 42), 0);
    CU_ASSERT_EQUAL(hyp_profile_set_meta_strv(p, key, argv, 3), 0);
    key[0] = 'X'; /* copied, so changing the caller's string changes nothing */
    CU_ASSERT_EQUAL(hyp_profile_set_meta_int(p, "pid", 43), 0);
    CU_ASSERT_EQUAL(hyp_profile_meta_count(p), 3);
    m = hyp_profile_meta_get(p, "pid");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(m->v.i, 43);
    m = hyp_profile_meta_get(p, "argv");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(m->type, HYP_META_STRV);
    CU_ASSERT_EQUAL(m->v.sv.n, 3);
    CU_ASSERT_STRING_EQUAL(m->v.sv.v[2], "pass");
    CU_ASSERT_STRING_EQUAL(hyp_profile_meta_at(p, 0)->key, "python");
    /* the format's own keys and bad values are refused */
    CU_ASSERT_EQUAL(hyp_profile_set_meta_str(p, "version", "2"), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp_profile_set_meta_str(p, "mode", "x"), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp_profile_set_meta_str(p, "", "x"), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp_profile_set_meta_str(p, "x", NULL), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp_profile_meta_count(p), 3);
    hyp_profile_free(p);
}

static void test_samples(void) {
    hyp_metric_t metrics[] = {
        {"samples", "count", HYP_METRIC_OWN},
        {"cpu-clock", "ns", HYP_METRIC_OWN},
        {"wall_cum", "ns", HYP_METRIC_CUM},
    };
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_SAMPLING, metrics, 3);
    hyp_sample_kind_t k = {"cpu-clock", "ns", 0, 1};
    hyp_sample_kind_t bad = {"x", "ns", 0, 2};
    hyp_thread_t th = {1, 1, 0};
    hyp_sample_t s = {0, 0, 0, 0, 0, HYP_NO_LABELS};
    hyp_id_t f, n1;
    uint32_t kind;
    const uint64_t *row;
    int i;

    f = func_named(p, "f");
    CU_ASSERT_EQUAL(hyp_profile_thread(p, &th, NULL), 0);
    CU_ASSERT_EQUAL(hyp_profile_node(p, 0, f, 12, &n1), 0);
    CU_ASSERT_EQUAL(hyp_profile_sample_kind(p, &bad, NULL), HYP_EINVAL); /* a cum column */
    bad.weight_metric = 0;
    CU_ASSERT_EQUAL(hyp_profile_sample_kind(p, &bad, NULL), HYP_EINVAL); /* the same column */
    CU_ASSERT_EQUAL(hyp_profile_sample_kind(p, &k, &kind), 0);
    CU_ASSERT_EQUAL(kind, 0);
    CU_ASSERT_EQUAL(hyp_profile_sample_kind_count(p), 1);
    s.node = n1;
    for (i = 0; i < 10; i++) {
        s.time_ns = 1000u * (unsigned)i;
        s.weight = 250;
        CU_ASSERT_EQUAL(hyp_profile_add_sample(p, &s), 0);
    }
    s.kind = 3;
    CU_ASSERT_EQUAL(hyp_profile_add_sample(p, &s), HYP_ERANGE);
    row = hyp_profile_row(p, 0, n1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(row);
    CU_ASSERT_EQUAL(row[0], 10);
    CU_ASSERT_EQUAL(row[1], 2500);
    CU_ASSERT_EQUAL(row[2], 0);
    CU_ASSERT_EQUAL(hyp_profile_sample_total(p), 10);
    hyp_profile_add_dropped(p, "ring full", 3);
    hyp_profile_add_dropped(p, "ring full", 2);
    hyp_profile_add_dropped(p, NULL, 1);
    hyp_profile_free(p);
}

/* ---------------------------------------------------------------- merge, copy */

/* The collector's shape, and a wider one holding its columns elsewhere (the
 * CPU sampler's with memory sampling on). */
static const hyp_metric_t alloc_metrics[] = {
    {"alloc_samples", "count", HYP_METRIC_OWN},
    {"alloc_bytes", "bytes", HYP_METRIC_OWN},
};
static const hyp_metric_t wide_metrics[] = {
    {"samples", "count", HYP_METRIC_OWN},
    {"cpu-clock", "ns", HYP_METRIC_OWN},
    {"alloc_samples", "count", HYP_METRIC_OWN},
    {"alloc_bytes", "bytes", HYP_METRIC_OWN},
};

/* An allocation profile: thread 7 allocating under f -> g (3 samples of 100,
 * 200 and 300 bytes) and under f (one of 50), plus a row of no sample. */
static hyp_profile_t *alloc_profile(void) {
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_SAMPLING, alloc_metrics, 2);
    hyp_sample_kind_t k = {"alloc", "bytes", 0, 1};
    hyp_thread_t th = {7, 70, 0};
    hyp_sample_t s = {0, 0, 0, 0, 0, HYP_NO_LABELS};
    uint64_t extra[2] = {0, 5};
    hyp_func_t fn = {0, 0, 1, HYP_FUNC_PYTHON};
    hyp_id_t f, g, nf, ng;
    int i;

    if (p == NULL || hyp_profile_sample_kind(p, &k, NULL) < 0 ||
        hyp_profile_string(p, "t7", 2, &th.name) < 0 || hyp_profile_thread(p, &th, &s.thread) < 0)
        goto fail;
    if (hyp_profile_string(p, "f", 1, &fn.name) < 0 ||
        hyp_profile_string(p, "m.py", 4, &fn.file) < 0 || hyp_profile_func(p, &fn, &f) < 0 ||
        hyp_profile_string(p, "g", 1, &fn.name) < 0 || hyp_profile_func(p, &fn, &g) < 0 ||
        hyp_profile_node(p, 0, f, 1, &nf) < 0 || hyp_profile_node(p, nf, g, 2, &ng) < 0)
        goto fail;
    for (i = 1; i <= 4; i++) {
        s.node = i < 4 ? ng : nf;
        s.time_ns = 10u * (unsigned)i;
        s.weight = i < 4 ? 100u * (unsigned)i : 50u;
        if (hyp_profile_add_sample(p, &s) < 0)
            goto fail;
    }
    if (hyp_profile_add(p, s.thread, nf, extra) < 0)
        goto fail;
    hyp_profile_add_dropped(p, "alloc: out of memory", 2);
    return p;
fail:
    hyp_profile_free(p);
    return NULL;
}

/* A profile of the wide shape with the "alloc" kind declared second. */
static hyp_profile_t *wide_profile(void) {
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_SAMPLING, wide_metrics, 4);
    hyp_sample_kind_t cpu = {"cpu-clock", "ns", 0, 1}, alloc = {"alloc", "bytes", 2, 3};

    if (p != NULL && (hyp_profile_sample_kind(p, &cpu, NULL) < 0 ||
                      hyp_profile_sample_kind(p, &alloc, NULL) < 0)) {
        hyp_profile_free(p);
        return NULL;
    }
    return p;
}

static void test_merge_maps_columns_and_carries_samples(void) {
    hyp_profile_t *src = alloc_profile(), *dst = wide_profile(), *bad;
    hyp_metric_t other[] = {
        {"alloc_samples", "count", HYP_METRIC_OWN},
        {"alloc_bytes", "ns", HYP_METRIC_OWN}, /* another unit */
    };
    hyp_sample_kind_t k = {"alloc", "bytes", 0, 1};
    hyp_thread_t th = {7, 70, 0};
    const hyp_sample_t *s;
    const uint64_t *row;
    size_t n;

    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dst);
    /* the same thread is already in dst, after another one */
    CU_ASSERT_EQUAL(hyp_profile_string(dst, "t7", 2, &th.name), 0);
    th.ident = 1;
    CU_ASSERT_EQUAL(hyp_profile_thread(dst, &th, NULL), 0);
    th.ident = 70;
    CU_ASSERT_EQUAL(hyp_profile_thread(dst, &th, NULL), 0);
    CU_ASSERT_EQUAL(hyp_profile_merge_ex(dst, src, 0x2), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp_profile_merge_ex(dst, src, HYP_MERGE_SAMPLES), 0);
    CU_ASSERT_EQUAL(hyp_profile_thread_count(dst), 2);
    CU_ASSERT_EQUAL(hyp_profile_node_count(dst), 3);
    /* src's columns landed in dst's of the same name; the others are 0 */
    row = hyp_profile_row(dst, 1, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(row);
    CU_ASSERT_EQUAL(row[0], 0);
    CU_ASSERT_EQUAL(row[1], 0);
    CU_ASSERT_EQUAL(row[2], 3);
    CU_ASSERT_EQUAL(row[3], 600);
    row = hyp_profile_row(dst, 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(row);
    CU_ASSERT_EQUAL(row[2], 1);
    CU_ASSERT_EQUAL(row[3], 55); /* a sample of 50 and 5 that no sample carries */
    /* the samples, in order, with dst's thread and kind */
    s = hyp_profile_samples(dst, &n);
    CU_ASSERT_EQUAL_FATAL(n, 4);
    CU_ASSERT_EQUAL(s[0].thread, 1);
    CU_ASSERT_EQUAL(s[0].kind, 1);
    CU_ASSERT_EQUAL(s[0].node, 2);
    CU_ASSERT_EQUAL(s[2].weight, 300);
    CU_ASSERT_EQUAL(s[3].node, 1);
    CU_ASSERT_EQUAL(s[3].time_ns, 40);
    CU_ASSERT_EQUAL(hyp_profile_sample_total(dst), 4);
    CU_ASSERT_EQUAL(hyp_profile_dropped_count(dst), 1);
    /* src is as it was */
    hyp_profile_samples(src, &n);
    CU_ASSERT_EQUAL(n, 4);
    /* without the flag, the same values and no sample */
    hyp_profile_free(dst);
    dst = wide_profile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(dst);
    CU_ASSERT_EQUAL(hyp_profile_merge(dst, src), 0);
    hyp_profile_samples(dst, &n);
    CU_ASSERT_EQUAL(n, 0);
    row = hyp_profile_row(dst, 0, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(row);
    CU_ASSERT_EQUAL(row[3], 600);
    CU_ASSERT_EQUAL(hyp_profile_sample_total(dst), 4);
    /* src's columns must all be in dst, agreeing: the other way round fails,
     * as do another unit and a missing kind, and dst is left unchanged */
    CU_ASSERT_EQUAL(hyp_profile_merge(src, dst), HYP_EINVAL);
    bad = hyp_profile_new(HYP_MODE_SAMPLING, other, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
    CU_ASSERT_EQUAL(hyp_profile_merge(bad, src), HYP_EINVAL);
    hyp_profile_free(bad);
    bad = hyp_profile_new(HYP_MODE_SAMPLING, alloc_metrics, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
    CU_ASSERT_EQUAL(hyp_profile_merge(bad, src), HYP_EINVAL);
    k.unit = "count";
    CU_ASSERT_EQUAL(hyp_profile_sample_kind(bad, &k, NULL), 0);
    CU_ASSERT_EQUAL(hyp_profile_merge(bad, src), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp_profile_string_count(bad), 0);
    hyp_profile_free(bad);
    hyp_profile_free(src);
    hyp_profile_free(dst);
}

static void test_copy_keeps_ids_and_leaves_samples_in_rows(void) {
    hyp_profile_t *src = alloc_profile(), *q;
    hyp_thread_t th = {7, 70, 0};
    const hyp_sample_t *s;
    const uint64_t *row;
    hyp_id_t f, n1, n2;
    size_t n, i;

    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    /* a second thread of the same ids stays a second thread */
    CU_ASSERT_EQUAL(hyp_profile_thread(src, &th, NULL), 0);
    CU_ASSERT_EQUAL(hyp_profile_set_meta_str(src, "event", "alloc"), 0);
    /* a tree past the node limit: the copy does not fold it again */
    f = func_named(src, "h");
    CU_ASSERT_EQUAL(hyp_profile_node(src, 0, f, 9, &n1), 0);
    hyp_profile_set_node_limit(src, 4);
    CU_ASSERT_EQUAL(hyp_profile_node(src, n1, f, 10, &n2), 0);
    CU_ASSERT(hyp_profile_truncated(src) > 0);

    q = hyp_profile_copy(src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    CU_ASSERT_EQUAL(hyp_profile_string_count(q), hyp_profile_string_count(src));
    CU_ASSERT_EQUAL(hyp_profile_func_count(q), hyp_profile_func_count(src));
    CU_ASSERT_EQUAL_FATAL(hyp_profile_node_count(q), hyp_profile_node_count(src));
    for (i = 0; i < hyp_profile_node_count(q); i++) {
        CU_ASSERT_EQUAL(hyp_profile_node_at(q, (hyp_id_t)i)->parent,
                        hyp_profile_node_at(src, (hyp_id_t)i)->parent);
        CU_ASSERT_EQUAL(hyp_profile_node_at(q, (hyp_id_t)i)->func,
                        hyp_profile_node_at(src, (hyp_id_t)i)->func);
    }
    CU_ASSERT_EQUAL(hyp_profile_thread_count(q), 2);
    CU_ASSERT_EQUAL(hyp_profile_truncated(q), hyp_profile_truncated(src));
    CU_ASSERT_EQUAL(hyp_profile_sample_total(q), 4);
    CU_ASSERT_STRING_EQUAL(hyp_profile_meta_get(q, "event")->v.s, "alloc");
    row = hyp_profile_row(q, 0, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(row);
    CU_ASSERT_EQUAL(row[0], 3);
    CU_ASSERT_EQUAL(row[1], 600);
    /* the list stays with src, whose ids are the copy's */
    hyp_profile_samples(q, &n);
    CU_ASSERT_EQUAL(n, 0);
    s = hyp_profile_samples(src, &n);
    CU_ASSERT_EQUAL_FATAL(n, 4);
    CU_ASSERT_PTR_NOT_NULL(hyp_profile_row(q, s[3].thread, s[3].node));
    /* the node limit comes along */
    CU_ASSERT_EQUAL(hyp_profile_node(q, n2, f, 11, &n1), 0);
    CU_ASSERT_EQUAL(n1, n2); /* folded into the "[truncated]" node it is */
    hyp_profile_free(src);
    hyp_profile_free(q);
}

/* ---------------------------------------------------------------- failing allocator */

static long fail_after = -1; /* allocations left before failing; -1: never */
static long live = 0;

static int should_fail(void) {
    if (fail_after < 0)
        return 0;
    if (fail_after == 0)
        return 1;
    fail_after--;
    return 0;
}

static void *t_malloc(size_t n) {
    void *p = should_fail() ? NULL : malloc(n);
    live += p != NULL;
    return p;
}

static void *t_calloc(size_t c, size_t n) {
    void *p = should_fail() ? NULL : calloc(c, n);
    live += p != NULL;
    return p;
}

static void *t_realloc(void *old, size_t n) {
    void *p = should_fail() ? NULL : realloc(old, n);
    if (old == NULL)
        live += p != NULL;
    return p;
}

static void t_free(void *p) {
    live -= p != NULL;
    free(p);
}

/* Builds a small profile of both kinds of data, returning the first error. */
static int build_under_pressure(void) {
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_DETERMINISTIC, det_metrics, 3), *q = NULL;
    hyp_thread_t th = {1, 1, 0};
    uint64_t v[] = {1, 2, 3};
    hyp_id_t parent = 0, f, t;
    char name[16];
    int i, rc = 0;

    if (p == NULL)
        return HYP_ENOMEM;
    hyp_profile_set_node_limit(p, 40);
    if ((rc = hyp_profile_string(p, "main", 4, &th.name)) < 0 ||
        (rc = hyp_profile_thread(p, &th, &t)) < 0 ||
        (rc = hyp_profile_set_meta_str(p, "python", "3.12")) < 0)
        goto out;
    for (i = 0; i < 60; i++) {
        hyp_func_t fn = {0, 0, (uint32_t)i, HYP_FUNC_PYTHON};

        hyp_label_t lab;
        hyp_id_t set;

        snprintf(name, sizeof(name), "f%d", i % 17);
        if ((rc = hyp_profile_string(p, name, strlen(name), &fn.name)) < 0 ||
            (rc = hyp_profile_string(p, "x.py", 4, &fn.file)) < 0 ||
            (rc = hyp_profile_func(p, &fn, &f)) < 0 ||
            (rc = hyp_profile_node(p, parent, f, 0, &parent)) < 0 ||
            (rc = hyp_profile_add(p, t, parent, v)) < 0)
            goto out;
        /* and the same call path under a label set of its own */
        lab.key = fn.file;
        lab.value = fn.name;
        if ((rc = hyp_profile_labels(p, &lab, 1, &set)) < 0 ||
            (rc = hyp_profile_add_labeled(p, t, parent, set, v)) < 0)
            goto out;
        if (i % 7 == 6)
            parent = 0;
    }
    /* and a copy of it, merged into a profile shaped like it */
    q = hyp_profile_new_like(p);
    if (q == NULL) {
        rc = HYP_ENOMEM;
        goto out;
    }
    if ((rc = hyp_profile_merge(q, p)) < 0)
        goto out;
out:
    hyp_profile_free(p);
    hyp_profile_free(q);
    return rc;
}

/* Copies an allocation profile, and merges it with its samples into a
 * wider one; the first error. Whatever fails, the samples carried are the
 * first ones and dst's rows hold exactly them. */
static int copy_and_merge_under_pressure(void) {
    hyp_profile_t *src = alloc_profile(), *dst = NULL, *q = NULL;
    const hyp_sample_t *s, *ss;
    const uint64_t *row;
    uint64_t bytes = 0;
    size_t n, ns, i;
    int rc = HYP_ENOMEM;

    if (src == NULL || (dst = wide_profile()) == NULL || (q = hyp_profile_copy(src)) == NULL)
        goto out;
    rc = hyp_profile_merge_ex(dst, src, HYP_MERGE_SAMPLES);
    s = hyp_profile_samples(dst, &n);
    ss = hyp_profile_samples(src, &ns);
    CU_ASSERT(n <= ns);
    for (i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(s[i].weight, ss[i].weight);
        bytes += s[i].node == 2 ? s[i].weight : 0;
    }
    row = hyp_profile_row(dst, 0, 2);
    CU_ASSERT_EQUAL(row != NULL ? row[3] : 0, bytes);
out:
    hyp_profile_free(src);
    hyp_profile_free(dst);
    hyp_profile_free(q);
    return rc;
}

static void test_new_like_keeps_the_shape_not_the_data(void) {
    hyp_metric_t metrics[] = {
        {"samples", "count", HYP_METRIC_OWN},
        {"cpu-clock", "ns", HYP_METRIC_OWN},
    };
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_SAMPLING, metrics, 2), *q;
    hyp_sample_kind_t k = {"cpu-clock", "ns", 0, 1};
    hyp_thread_t th = {1, 1, 0};
    hyp_sample_t s = {0, 0, 0, 0, 7, HYP_NO_LABELS};
    hyp_id_t f, n1;
    uint32_t kind;

    CU_ASSERT_EQUAL_FATAL(hyp_profile_sample_kind(p, &k, &kind), 0);
    CU_ASSERT_EQUAL(hyp_profile_set_meta_str(p, "event", "cpu-clock"), 0);
    hyp_profile_set_node_limit(p, 3);
    f = func_named(p, "f");
    CU_ASSERT_EQUAL(hyp_profile_thread(p, &th, NULL), 0);
    CU_ASSERT_EQUAL(hyp_profile_node(p, 0, f, 1, &n1), 0);
    s.node = n1;
    CU_ASSERT_EQUAL(hyp_profile_add_sample(p, &s), 0);
    hyp_profile_add_dropped(p, "ring full", 2);

    q = hyp_profile_new_like(p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    CU_ASSERT_EQUAL(hyp_profile_mode(q), HYP_MODE_SAMPLING);
    CU_ASSERT_EQUAL(hyp_profile_metric_count(q), 2);
    CU_ASSERT_STRING_EQUAL(hyp_profile_metric_at(q, 1)->name, "cpu-clock");
    CU_ASSERT_EQUAL(hyp_profile_sample_kind_count(q), 1);
    CU_ASSERT_EQUAL(hyp_profile_sample_kind_at(q, 0)->weight_metric, 1);
    CU_ASSERT_STRING_EQUAL(hyp_profile_meta_get(q, "event")->v.s, "cpu-clock");
    /* nothing recorded comes along */
    CU_ASSERT_EQUAL(hyp_profile_string_count(q), 0);
    CU_ASSERT_EQUAL(hyp_profile_func_count(q), 0);
    CU_ASSERT_EQUAL(hyp_profile_node_count(q), 1);
    CU_ASSERT_EQUAL(hyp_profile_thread_count(q), 0);
    CU_ASSERT_EQUAL(hyp_profile_sample_total(q), 0);
    CU_ASSERT_EQUAL(hyp_profile_dropped_count(q), 0);
    /* the node limit does: the fourth node folds */
    f = func_named(q, "g");
    CU_ASSERT_EQUAL(hyp_profile_node(q, 0, f, 1, &n1), 0);
    CU_ASSERT_EQUAL(hyp_profile_node(q, n1, f, 2, &n1), 0);
    CU_ASSERT_EQUAL(hyp_profile_node(q, n1, f, 3, &n1), 0);
    CU_ASSERT(hyp_profile_truncated(q) > 0);
    hyp_profile_free(p);
    hyp_profile_free(q);
}

/* The header's run counts (no_python_frames, gc_*) add up in a merge, as
 * dropped counts do, and a fresh profile shaped like one does not start with
 * them; other entries are the shape's. */
static void test_merge_adds_the_header_counts(void) {
    hyp_metric_t metrics[] = {{"samples", "count", HYP_METRIC_OWN}};
    hyp_profile_t *a = hyp_profile_new(HYP_MODE_SAMPLING, metrics, 1), *b, *m;
    hyp_meta_t big = {"gc_ns_gen2", HYP_META_UINT, {0}};

    CU_ASSERT(hyp_meta_key_summed("gc_collections_gen0"));
    CU_ASSERT(hyp_meta_key_summed("no_python_frames"));
    CU_ASSERT(!hyp_meta_key_summed("pid"));
    CU_ASSERT(!hyp_meta_key_summed("gc"));
    CU_ASSERT_EQUAL(hyp_profile_set_meta_int(a, "gc_collections_gen0", 3), 0);
    CU_ASSERT_EQUAL(hyp_profile_set_meta_int(a, "no_python_frames", 5), 0);
    CU_ASSERT_EQUAL(hyp_profile_set_meta_str(a, "event", "cpu-clock"), 0);
    b = hyp_profile_new_like(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NULL(hyp_profile_meta_get(b, "gc_collections_gen0"));
    CU_ASSERT_PTR_NULL(hyp_profile_meta_get(b, "no_python_frames"));
    CU_ASSERT_STRING_EQUAL(hyp_profile_meta_get(b, "event")->v.s, "cpu-clock");
    CU_ASSERT_EQUAL(hyp_profile_set_meta_int(b, "gc_collections_gen0", 4), 0);
    CU_ASSERT_EQUAL(hyp_profile_set_meta_int(b, "gc_collected", -1), 0); /* no count */
    big.v.u = UINT64_MAX;
    CU_ASSERT_EQUAL(hyp_profile_set_meta(b, &big), 0);
    m = hyp_profile_new_like(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(hyp_profile_merge(m, a), 0);
    CU_ASSERT_EQUAL(hyp_profile_merge(m, b), 0);
    CU_ASSERT_EQUAL(hyp_profile_meta_get(m, "gc_collections_gen0")->v.i, 7);
    CU_ASSERT_EQUAL(hyp_profile_meta_get(m, "no_python_frames")->v.i, 5);
    CU_ASSERT_PTR_NULL(hyp_profile_meta_get(m, "gc_collected"));
    CU_ASSERT_EQUAL(hyp_profile_meta_get(m, "gc_ns_gen2")->v.i, INT64_MAX); /* saturates */
    CU_ASSERT_EQUAL(hyp_profile_merge(m, b), 0);
    CU_ASSERT_EQUAL(hyp_profile_meta_get(m, "gc_ns_gen2")->v.i, INT64_MAX);
    hyp_profile_free(a);
    hyp_profile_free(b);
    hyp_profile_free(m);
}

static void test_merge_adds_rows_by_path_and_thread(void) {
    hyp_metric_t metrics[] = {
        {"samples", "count", HYP_METRIC_OWN},
        {"cpu-clock", "ns", HYP_METRIC_OWN},
    };
    hyp_sample_kind_t k = {"cpu-clock", "ns", 0, 1};
    hyp_profile_t *a = hyp_profile_new(HYP_MODE_SAMPLING, metrics, 2), *b, *c;
    hyp_thread_t t1 = {11, 1, 0}, t2 = {22, 2, 0};
    hyp_sample_t s = {0, 0, 0, 0, 100, HYP_NO_LABELS};
    hyp_id_t fa, fb, n, m, th;
    const uint64_t *row;

    CU_ASSERT_EQUAL_FATAL(hyp_profile_sample_kind(a, &k, NULL), 0);
    b = hyp_profile_new_like(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    /* a: t1 runs f -> g once */
    fa = func_named(a, "f");
    fb = func_named(a, "g");
    CU_ASSERT_EQUAL(hyp_profile_thread(a, &t1, &th), 0);
    CU_ASSERT_EQUAL(hyp_profile_node(a, 0, fa, 1, &n), 0);
    CU_ASSERT_EQUAL(hyp_profile_node(a, n, fb, 2, &m), 0);
    s.thread = th;
    s.node = m;
    CU_ASSERT_EQUAL(hyp_profile_add_sample(a, &s), 0);
    /* b: its tables in another order; t2, then t1 running f -> g twice */
    fb = func_named(b, "g");
    fa = func_named(b, "f");
    CU_ASSERT_EQUAL(hyp_profile_thread(b, &t2, NULL), 0);
    CU_ASSERT_EQUAL(hyp_profile_thread(b, &t1, &th), 0);
    CU_ASSERT_EQUAL(hyp_profile_node(b, 0, fa, 1, &n), 0);
    CU_ASSERT_EQUAL(hyp_profile_node(b, n, fb, 2, &m), 0);
    s.thread = th;
    s.node = m;
    CU_ASSERT_EQUAL(hyp_profile_add_sample(b, &s), 0);
    CU_ASSERT_EQUAL(hyp_profile_add_sample(b, &s), 0);
    hyp_profile_add_dropped(b, "ring full", 3);

    CU_ASSERT_EQUAL(hyp_profile_merge(a, b), 0);
    CU_ASSERT_EQUAL(hyp_profile_thread_count(a), 2); /* t1 is one thread */
    CU_ASSERT_EQUAL(hyp_profile_node_count(a), 3);   /* f -> g is one path */
    row = hyp_profile_row(a, 0, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(row);
    CU_ASSERT_EQUAL(row[0], 3);
    CU_ASSERT_EQUAL(row[1], 300);
    CU_ASSERT_EQUAL(hyp_profile_sample_total(a), 3);
    CU_ASSERT_EQUAL(hyp_profile_dropped_count(a), 1);
    /* profiles of another shape are refused */
    c = hyp_profile_new(HYP_MODE_SAMPLING, metrics, 2);
    CU_ASSERT_EQUAL(hyp_profile_merge(c, a), HYP_EINVAL); /* a kind c lacks */
    CU_ASSERT_EQUAL(hyp_profile_merge(a, a), HYP_EINVAL);
    hyp_profile_free(a);
    hyp_profile_free(b);
    hyp_profile_free(c);
}

static hyp_id_t str_named(hyp_profile_t *p, const char *s) {
    hyp_id_t id = HYP_NO_ID;

    CU_ASSERT_EQUAL_FATAL(hyp_profile_string(p, s, strlen(s), &id), 0);
    return id;
}

static void test_label_sets(void) {
    hyp_metric_t metrics[] = {
        {"samples", "count", HYP_METRIC_OWN},
        {"cpu-clock", "ns", HYP_METRIC_OWN},
    };
    hyp_sample_kind_t k = {"cpu-clock", "ns", 0, 1};
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_SAMPLING, metrics, 2), *q;
    hyp_thread_t th = {7, 7, 0};
    hyp_sample_t s = {0, 0, 0, 0, 10, HYP_NO_LABELS};
    hyp_id_t view, method, list, get, post, a, b, c, id, t, n, labels;
    hyp_label_t l[3];
    const hyp_label_t *got;
    uint64_t vals[2 * 2], v2[2] = {5, 50};
    unsigned char keep[8] = {0};
    size_t count, i;

    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_sample_kind(p, &k, NULL), 0);
    CU_ASSERT_EQUAL(hyp_profile_labels_count(p), 1); /* the empty set */
    view = str_named(p, "view");
    method = str_named(p, "method");
    list = str_named(p, "shop.list");
    get = str_named(p, "GET");
    post = str_named(p, "POST");
    /* the same labels in any order are one set, sorted by key */
    l[0] = (hyp_label_t){view, list};
    l[1] = (hyp_label_t){method, get};
    CU_ASSERT_EQUAL(hyp_profile_labels(p, l, 2, &a), 0);
    l[0] = (hyp_label_t){method, get};
    l[1] = (hyp_label_t){view, list};
    CU_ASSERT_EQUAL(hyp_profile_labels(p, l, 2, &b), 0);
    CU_ASSERT_EQUAL(a, b);
    CU_ASSERT_NOT_EQUAL(a, HYP_NO_LABELS);
    got = hyp_profile_labels_at(p, a, &count);
    CU_ASSERT_EQUAL_FATAL(count, 2);
    CU_ASSERT(got[0].key < got[1].key);
    l[1] = (hyp_label_t){method, post};
    l[0] = (hyp_label_t){view, list};
    CU_ASSERT_EQUAL(hyp_profile_labels(p, l, 2, &c), 0);
    CU_ASSERT_NOT_EQUAL(c, a);
    CU_ASSERT_EQUAL(hyp_profile_labels(p, l, 0, &id), 0);
    CU_ASSERT_EQUAL(id, HYP_NO_LABELS);
    /* bad sets */
    l[1] = (hyp_label_t){view, get};
    CU_ASSERT_EQUAL(hyp_profile_labels(p, l, 2, &id), HYP_EINVAL); /* view twice */
    l[1] = (hyp_label_t){method, 999};
    CU_ASSERT_EQUAL(hyp_profile_labels(p, l, 2, &id), HYP_ERANGE);
    CU_ASSERT_EQUAL(hyp_profile_labels(p, l, HYP_MAX_LABELS + 1, &id), HYP_EINVAL);
    CU_ASSERT_PTR_NULL(hyp_profile_labels_at(p, 99, &count));
    CU_ASSERT_EQUAL(hyp_profile_labels_count(p), 3);
    /* a sample and a row of each set on one (thread, node): three rows */
    CU_ASSERT_EQUAL(hyp_profile_thread(p, &th, &t), 0);
    CU_ASSERT_EQUAL(hyp_profile_node(p, 0, func_named(p, "f"), 3, &n), 0);
    s.thread = t;
    s.node = n;
    CU_ASSERT_EQUAL(hyp_profile_add_sample(p, &s), 0);
    s.labels = a;
    CU_ASSERT_EQUAL(hyp_profile_add_sample(p, &s), 0);
    CU_ASSERT_EQUAL(hyp_profile_add_sample(p, &s), 0);
    CU_ASSERT_EQUAL(hyp_profile_add_labeled(p, t, n, c, v2), 0);
    s.labels = 77;
    CU_ASSERT_EQUAL(hyp_profile_add_sample(p, &s), HYP_ERANGE);
    CU_ASSERT_EQUAL(hyp_profile_add_labeled(p, t, n, 77, v2), HYP_ERANGE);
    CU_ASSERT_EQUAL(hyp_profile_row_count(p), 3);
    for (i = 0; i < hyp_profile_row_count(p); i++) {
        const uint64_t *row = hyp_profile_row_at(p, i, NULL, NULL, &labels);

        CU_ASSERT_EQUAL(row[0], labels == a ? 2 : labels == c ? 5 : 1);
    }
    CU_ASSERT_PTR_NULL(hyp_profile_row_at(p, 3, NULL, NULL, NULL));
    CU_ASSERT_EQUAL(hyp_profile_row(p, t, n)[0], 1); /* the unlabelled row */
    /* node values add every set up, or those kept */
    CU_ASSERT_EQUAL(hyp_profile_node_values(p, HYP_NO_ID, vals), 0);
    CU_ASSERT_EQUAL(vals[2], 8);
    CU_ASSERT_EQUAL(vals[3], 80);
    keep[a] = 1;
    CU_ASSERT_EQUAL(hyp_profile_node_values_where(p, t, keep, vals), 0);
    CU_ASSERT_EQUAL(vals[2], 2);
    CU_ASSERT_EQUAL(vals[3], 20);
    /* a merge carries the sets by their strings */
    q = hyp_profile_new_like(p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    str_named(q, "unrelated"); /* so that the string ids differ */
    CU_ASSERT_EQUAL(hyp_profile_merge(q, p), 0);
    CU_ASSERT_EQUAL(hyp_profile_labels_count(q), 3);
    CU_ASSERT_EQUAL(hyp_profile_row_count(q), 3);
    for (i = 0; i < hyp_profile_row_count(q); i++) {
        const uint64_t *row = hyp_profile_row_at(q, i, NULL, NULL, &labels);
        const hyp_label_t *set = hyp_profile_labels_at(q, labels, &count);
        const char *val = NULL;
        size_t len, j;

        for (j = 0; j < count; j++) /* the method label's value */
            if (strcmp(hyp_profile_string_at(q, set[j].key, &len), "method") == 0)
                val = hyp_profile_string_at(q, set[j].value, &len);

        if (count == 0) {
            CU_ASSERT_EQUAL(row[0], 1);
        } else {
            CU_ASSERT_EQUAL(count, 2);
            CU_ASSERT(val != NULL && (strcmp(val, "GET") == 0 || strcmp(val, "POST") == 0));
            CU_ASSERT_EQUAL(row[0], strcmp(val, "GET") == 0 ? 2 : 5);
        }
    }
    hyp_profile_free(q);
    /* a part by label set keeps the tables' ids, even two threads alike */
    CU_ASSERT_EQUAL(hyp_profile_thread(p, &th, &id), 0);
    CU_ASSERT_EQUAL(id, t + 1);
    CU_ASSERT_EQUAL(hyp_profile_add_labeled(p, id, n, c, v2), 0);
    memset(keep, 0, sizeof(keep));
    keep[c] = 1;
    q = hyp_profile_copy_where(p, keep);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    CU_ASSERT_EQUAL(hyp_profile_thread_count(q), 2);
    CU_ASSERT_EQUAL(hyp_profile_node_count(q), hyp_profile_node_count(p));
    CU_ASSERT_EQUAL(hyp_profile_row_count(q), 2);
    CU_ASSERT_EQUAL(hyp_profile_sample_total(q), 0); /* the run's total is not a part's */
    for (i = 0; i < hyp_profile_row_count(q); i++) {
        hyp_id_t rt;
        const uint64_t *row = hyp_profile_row_at(q, i, &rt, NULL, &labels);

        CU_ASSERT_EQUAL(labels, c);
        CU_ASSERT_EQUAL(row[0], 5);
        CU_ASSERT(rt == t || rt == id);
    }
    hyp_profile_free(q);
    hyp_profile_free(p);
}

static void under_pressure(int (*build)(void), long min_allocs) {
    long n;
    int rc = HYP_ENOMEM;

    CU_ASSERT_EQUAL_FATAL(hyp_replace_allocator(t_malloc, t_realloc, t_calloc, t_free), 0);
    for (n = 0; n < 5000 && rc != 0; n++) {
        fail_after = n;
        live = 0;
        rc = build();
        CU_ASSERT(rc == 0 || rc == HYP_ENOMEM);
        CU_ASSERT_EQUAL(live, 0); /* nothing leaks on any failure path */
    }
    fail_after = -1;
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(n > min_allocs); /* the build does allocate that often: every path was hit */
    hyp_replace_allocator(malloc, realloc, calloc, free);
}

static void test_allocation_failures_are_clean(void) {
    under_pressure(build_under_pressure, 50);
}

static void test_copy_and_merge_allocation_failures_are_clean(void) {
    under_pressure(copy_and_merge_under_pressure, 50);
}

static const hyp_test_case_t cases[] = {
    {"new rejects bad metric columns", test_new_rejects_bad_metrics},
    {"strings are interned by bytes", test_strings_intern},
    {"functions and nodes are interned", test_functions_and_nodes_intern},
    {"the node cap folds into [truncated]", test_node_limit_folds_into_truncated},
    {"rows per thread and merged", test_rows_per_thread},
    {"metadata entries", test_meta},
    {"samples feed their kind's columns", test_samples},
    {"new_like keeps the shape, not the data", test_new_like_keeps_the_shape_not_the_data},
    {"merge adds the header's run counts", test_merge_adds_the_header_counts},
    {"merge adds rows by call path and thread", test_merge_adds_rows_by_path_and_thread},
    {"label sets: interning, rows, filters, merge", test_label_sets},
    {"merge maps columns by name and carries samples", test_merge_maps_columns_and_carries_samples},
    {"copy keeps ids, its samples stay in the rows",
     test_copy_keeps_ids_and_leaves_samples_in_rows},
    {"allocation failures leave no leak", test_allocation_failures_are_clean},
    {"copy and merge: allocation failures leave no leak",
     test_copy_and_merge_allocation_failures_are_clean},
    {NULL, NULL},
};

const hyp_test_suite_t hyp_suite_profile = {"profile", cases, NULL, NULL};
