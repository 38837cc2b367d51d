/* Suite for core/trace_write.c and core/trace_read.c: round trips of both
 * modes, streaming flushes, the size of samples, and every way a trace can be
 * bad (cut at every byte, garbage, wrong magic, unknown version, references
 * out of range, oversized records), each with its own error code. */
#include "harness.h"

#include "hyprof.h"

#include <fcntl.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const hyp_metric_t det_metrics[] = {
    {"calls", "count", HYP_METRIC_CALLS},
    {"wall_own", "ns", HYP_METRIC_OWN},
    {"wall_cum", "ns", HYP_METRIC_CUM},
};

static const hyp_metric_t smp_metrics[] = {
    {"samples", "count", HYP_METRIC_OWN},
    {"cpu-clock", "ns", HYP_METRIC_OWN},
    {"alloc_samples", "count", HYP_METRIC_OWN},
    {"alloc_bytes", "bytes", HYP_METRIC_OWN},
};

static hyp_id_t str_id(hyp_profile_t *p, const char *s) {
    hyp_id_t id = HYP_NO_ID;

    CU_ASSERT_EQUAL_FATAL(hyp_profile_string(p, s, strlen(s), &id), 0);
    return id;
}

static hyp_id_t func_id(hyp_profile_t *p, const char *name, const char *file, uint32_t line,
                        uint32_t kind) {
    hyp_func_t f = {str_id(p, name), str_id(p, file), line, kind};
    hyp_id_t id = HYP_NO_ID;

    CU_ASSERT_EQUAL_FATAL(hyp_profile_func(p, &f, &id), 0);
    return id;
}

/* A deterministic profile: main -> {fib -> fib -> fib, len} on two threads. */
static hyp_profile_t *make_det(void) {
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_DETERMINISTIC, det_metrics, 3);
    const char *argv[] = {"prog.py", "--n", "3"};
    hyp_thread_t th = {1000, 2000, 0};
    hyp_id_t fm, ff, fl, t0, t1, n1, n2, n3, n4, n5;
    uint64_t v[3];

    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    hyp_profile_set_meta_str(p, "python", "3.12.1");
    hyp_profile_set_meta_int(p, "pid", 4242);
    hyp_profile_set_meta_strv(p, "argv", argv, 3);
    hyp_profile_set_meta_float(p, "start_time", 1700000000.25);
    hyp_profile_set_meta_bool(p, "builtins", 1);
    fm = func_id(p, "main", "prog.py", 1, HYP_FUNC_PYTHON);
    ff = func_id(p, "fib", "prog.py", 10, HYP_FUNC_PYTHON);
    fl = func_id(p, "len", "", 0, HYP_FUNC_BUILTIN);
    th.name = str_id(p, "MainThread");
    CU_ASSERT_EQUAL_FATAL(hyp_profile_thread(p, &th, &t0), 0);
    th.os_tid = 1001;
    th.name = str_id(p, "worker");
    CU_ASSERT_EQUAL_FATAL(hyp_profile_thread(p, &th, &t1), 0);
    hyp_profile_node(p, 0, fm, 0, &n1);
    hyp_profile_node(p, n1, ff, 0, &n2);
    hyp_profile_node(p, n2, ff, 0, &n3);
    hyp_profile_node(p, n3, ff, 0, &n4);
    hyp_profile_node(p, n1, fl, 0, &n5);
    v[0] = 1, v[1] = 100, v[2] = 1000;
    hyp_profile_add(p, t0, n1, v);
    v[0] = 1, v[1] = 300, v[2] = 800;
    hyp_profile_add(p, t0, n2, v);
    v[0] = 2, v[1] = 300, v[2] = 500;
    hyp_profile_add(p, t0, n3, v);
    v[0] = 4, v[1] = 200, v[2] = 200;
    hyp_profile_add(p, t0, n4, v);
    v[0] = 7, v[1] = 100, v[2] = 100;
    hyp_profile_add(p, t0, n5, v);
    v[0] = 1, v[1] = 50, v[2] = 60;
    hyp_profile_add(p, t1, n1, v);
    v[0] = 3, v[1] = 10, v[2] = 10;
    hyp_profile_add(p, t1, n5, v);
    return p;
}

static void *write_mem(hyp_profile_t *p, size_t *len) {
    hyp_writer_t *w;
    const void *data;
    void *copy;

    CU_ASSERT_EQUAL_FATAL(hyp_writer_open_mem(&w), 0);
    CU_ASSERT_EQUAL(hyp_writer_begin(w, p), 0);
    CU_ASSERT_EQUAL(hyp_writer_finish(w, p), 0);
    data = hyp_writer_data(w, len);
    copy = malloc(*len);
    memcpy(copy, data, *len);
    CU_ASSERT_EQUAL(hyp_writer_close(w), 0);
    return copy;
}

static int read_mem(const void *buf, size_t len, const hyp_read_options_t *opts,
                    hyp_profile_t **out, hyp_read_status_t *st) {
    hyp_reader_t *r;
    int rc;

    *out = NULL;
    CU_ASSERT_EQUAL_FATAL(hyp_reader_open_mem(&r, buf, len, opts), 0);
    while ((rc = hyp_reader_next(r)) > 0)
        ;
    *st = *hyp_reader_status(r);
    *out = hyp_reader_take_profile(r);
    hyp_reader_close(r);
    return rc;
}

/* Asserts that two profiles hold the same tables and row values. */
static void assert_same_profile(const hyp_profile_t *a, const hyp_profile_t *b) {
    size_t i, m = hyp_profile_metric_count(a), n = hyp_profile_node_count(a);
    uint64_t *va, *vb;

    CU_ASSERT_EQUAL_FATAL(hyp_profile_mode(a), hyp_profile_mode(b));
    CU_ASSERT_EQUAL_FATAL(m, hyp_profile_metric_count(b));
    for (i = 0; i < m; i++) {
        CU_ASSERT_STRING_EQUAL(hyp_profile_metric_at(a, i)->name, hyp_profile_metric_at(b, i)->name);
        CU_ASSERT_STRING_EQUAL(hyp_profile_metric_at(a, i)->unit, hyp_profile_metric_at(b, i)->unit);
        CU_ASSERT_EQUAL(hyp_profile_metric_at(a, i)->kind, hyp_profile_metric_at(b, i)->kind);
    }
    CU_ASSERT_EQUAL_FATAL(hyp_profile_string_count(a), hyp_profile_string_count(b));
    for (i = 0; i < hyp_profile_string_count(a); i++) {
        size_t la, lb;
        const char *sa = hyp_profile_string_at(a, (hyp_id_t)i, &la);
        const char *sb = hyp_profile_string_at(b, (hyp_id_t)i, &lb);

        CU_ASSERT_EQUAL(la, lb);
        CU_ASSERT(la == lb && memcmp(sa, sb, la) == 0);
    }
    CU_ASSERT_EQUAL_FATAL(hyp_profile_func_count(a), hyp_profile_func_count(b));
    for (i = 0; i < hyp_profile_func_count(a); i++)
        CU_ASSERT(memcmp(hyp_profile_func_at(a, (hyp_id_t)i), hyp_profile_func_at(b, (hyp_id_t)i),
                         sizeof(hyp_func_t)) == 0);
    CU_ASSERT_EQUAL_FATAL(n, hyp_profile_node_count(b));
    for (i = 0; i < n; i++)
        CU_ASSERT(memcmp(hyp_profile_node_at(a, (hyp_id_t)i), hyp_profile_node_at(b, (hyp_id_t)i),
                         sizeof(hyp_node_t)) == 0);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_thread_count(a), hyp_profile_thread_count(b));
    va = calloc(n * m + 1, sizeof(*va));
    vb = calloc(n * m + 1, sizeof(*vb));
    for (i = 0; i < hyp_profile_thread_count(a); i++) {
        const hyp_thread_t *ta = hyp_profile_thread_at(a, (hyp_id_t)i);
        const hyp_thread_t *tb = hyp_profile_thread_at(b, (hyp_id_t)i);

        CU_ASSERT(ta->os_tid == tb->os_tid && ta->ident == tb->ident && ta->name == tb->name);
        hyp_profile_node_values(a, (hyp_id_t)i, va);
        hyp_profile_node_values(b, (hyp_id_t)i, vb);
        CU_ASSERT(memcmp(va, vb, n * m * sizeof(*va)) == 0);
    }
    free(va);
    free(vb);
    CU_ASSERT_EQUAL(hyp_profile_truncated(a), hyp_profile_truncated(b));
    CU_ASSERT_EQUAL(hyp_profile_sample_total(a), hyp_profile_sample_total(b));
}

static void test_det_round_trip(void) {
    hyp_profile_t *p = make_det(), *q;
    hyp_read_status_t st;
    const hyp_meta_t *m;
    size_t len;
    void *buf = write_mem(p, &len);

    CU_ASSERT_EQUAL(read_mem(buf, len, NULL, &q, &st), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    CU_ASSERT_EQUAL(st.error, 0);
    CU_ASSERT_EQUAL(st.truncated, 0);
    CU_ASSERT_EQUAL(st.skipped, 0);
    assert_same_profile(p, q);
    m = hyp_profile_meta_get(q, "argv");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(m->type, HYP_META_STRV);
    CU_ASSERT_EQUAL(m->v.sv.n, 3);
    CU_ASSERT_STRING_EQUAL(m->v.sv.v[1], "--n");
    m = hyp_profile_meta_get(q, "pid");
    CU_ASSERT(m != NULL && m->type == HYP_META_INT && m->v.i == 4242);
    m = hyp_profile_meta_get(q, "start_time");
    CU_ASSERT(m != NULL && m->type == HYP_META_FLOAT && m->v.f == 1700000000.25);
    m = hyp_profile_meta_get(q, "builtins");
    CU_ASSERT(m != NULL && m->type == HYP_META_BOOL && m->v.b == 1);
    m = hyp_profile_meta_get(q, "python");
    CU_ASSERT(m != NULL && m->type == HYP_META_STR && strcmp(m->v.s, "3.12.1") == 0);
    hyp_profile_free(q);
    hyp_profile_free(p);
    free(buf);
}

/* A sampling run flushed in chunks: tables, samples and dropped counts come
 * back the same, and the samples' order and times are kept. */
static void test_sampling_streams_in_chunks(void) {
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_SAMPLING, smp_metrics, 4), *q;
    hyp_sample_kind_t kc = {"cpu-clock", "ns", 0, 1}, ka = {"alloc", "bytes", 2, 3};
    hyp_read_options_t opts = {sizeof(opts), 0, 0, 1};
    hyp_id_t funcs[8], nodes[40], th[2];
    hyp_sample_t *want;
    const hyp_sample_t *got;
    hyp_read_status_t st;
    hyp_writer_t *w;
    const void *data;
    size_t len, n, i, nwant = 0;
    int chunk;

    CU_ASSERT_EQUAL_FATAL(hyp_profile_sample_kind(p, &kc, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_sample_kind(p, &ka, NULL), 0);
    hyp_profile_set_meta_str(p, "event", "cpu-clock");
    want = calloc(3000, sizeof(*want));
    CU_ASSERT_EQUAL_FATAL(hyp_writer_open_mem(&w), 0);
    CU_ASSERT_EQUAL(hyp_writer_begin(w, p), 0);
    for (chunk = 0; chunk < 3; chunk++) {
        /* each chunk brings new functions, nodes and a thread */
        char name[16];

        snprintf(name, sizeof(name), "t%d", chunk);
        if (chunk < 2) {
            hyp_thread_t t = {(uint64_t)(500 + chunk), 0, str_id(p, name)};
            CU_ASSERT_EQUAL(hyp_profile_thread(p, &t, &th[chunk]), 0);
        }
        for (i = 0; i < 8; i++) {
            snprintf(name, sizeof(name), "f%d_%zu", chunk, i);
            funcs[i] = func_id(p, name, "mod.py", (uint32_t)i, HYP_FUNC_PYTHON);
        }
        for (i = 0; i < 40; i++)
            CU_ASSERT_EQUAL(hyp_profile_node(p, i < 8 ? 0 : nodes[i / 2 - 4], funcs[i % 8],
                                             (uint32_t)(i * 3), &nodes[i]), 0);
        for (i = 0; i < 1000; i++) {
            hyp_sample_t s;

            s.thread = th[i % 3 == 0 && chunk > 0 ? 1 : 0];
            s.node = nodes[(i * 7) % 40];
            s.kind = i % 10 == 0 ? 1 : 0;
            s.time_ns = (uint64_t)chunk * 10000000000ull + i * 1000000ull + (i % 5);
            s.weight = s.kind ? 524288 : 1000000 + (i % 3);
            s.labels = HYP_NO_LABELS;
            CU_ASSERT_EQUAL_FATAL(hyp_profile_add_sample(p, &s), 0);
            want[nwant++] = s;
        }
        hyp_profile_add_dropped(p, "ring full", (uint64_t)chunk + 1);
        CU_ASSERT_EQUAL(hyp_writer_flush(w, p), 0);
    }
    hyp_profile_add_dropped(p, "unresolved", 4);
    hyp_profile_set_meta_float(p, "duration", 30.5); /* after begin: in the end record */
    CU_ASSERT_EQUAL(hyp_writer_finish(w, p), 0);
    data = hyp_writer_data(w, &len);

    CU_ASSERT_EQUAL(read_mem(data, len, &opts, &q, &st), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    assert_same_profile(p, q);
    CU_ASSERT_EQUAL(hyp_profile_sample_total(q), 3000);
    CU_ASSERT_PTR_NOT_NULL(hyp_profile_meta_get(q, "duration"));
    {
        hyp_reader_t *r;

        CU_ASSERT_EQUAL_FATAL(hyp_reader_open_mem(&r, data, len, &opts), 0);
        while (hyp_reader_next(r) > 0)
            ;
        got = hyp_reader_samples(r, &n);
        CU_ASSERT_EQUAL_FATAL(n, nwant);
        /* the writer groups samples by (thread, kind) within a flush; compare
         * as multisets by sorting both on (time, thread, kind) */
        {
            size_t matched = 0, j;
            for (i = 0; i < n; i++)
                for (j = 0; j < nwant; j++)
                    if (want[j].time_ns == got[i].time_ns && want[j].thread == got[i].thread &&
                        want[j].kind == got[i].kind) {
                        matched += want[j].node == got[i].node &&
                                   want[j].weight == got[i].weight;
                        break;
                    }
            CU_ASSERT_EQUAL(matched, nwant);
        }
        hyp_reader_close(r);
    }
    /* the dropped counts: 1 + 2 + 3 ring full, 4 unresolved; they reach
     * Python as part of the end record, checked by the Python suite too */
    hyp_profile_free(q);
    CU_ASSERT_EQUAL(hyp_writer_close(w), 0);
    hyp_profile_free(p);
    free(want);
}

/* A steady workload: 200k samples on 300 leaves at a 1 ms period. */
static void test_samples_are_compact(void) {
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_SAMPLING, smp_metrics, 4);
    hyp_sample_kind_t kc = {"cpu-clock", "ns", 0, 1};
    hyp_thread_t t = {1, 1, 0};
    hyp_id_t nodes[300], f;
    hyp_writer_t *w;
    size_t before, after, i;
    uint64_t now = 0, seed = 12345;

    hyp_profile_sample_kind(p, &kc, NULL);
    t.name = str_id(p, "main");
    hyp_profile_thread(p, &t, NULL);
    for (i = 0; i < 300; i++) {
        char name[16];

        snprintf(name, sizeof(name), "f%zu", i);
        f = func_id(p, name, "x.py", 1, HYP_FUNC_PYTHON);
        CU_ASSERT_EQUAL_FATAL(hyp_profile_node(p, i < 10 ? 0 : nodes[i / 10], f, 40, &nodes[i]),
                              0);
    }
    CU_ASSERT_EQUAL_FATAL(hyp_writer_open_mem(&w), 0);
    hyp_writer_begin(w, p);
    hyp_writer_flush(w, p);
    hyp_writer_data(w, &before);
    for (i = 0; i < 200000; i++) {
        hyp_sample_t s;

        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        now += 1000000 + (seed >> 54); /* 1 ms plus up to 1 us of jitter */
        s.thread = 0;
        s.node = nodes[(seed >> 33) % 300];
        s.kind = 0;
        s.time_ns = now;
        s.weight = 1000000 + ((seed >> 20) & 0xfff);
        s.labels = HYP_NO_LABELS;
        hyp_profile_add_sample(p, &s);
        if (i % 50000 == 49999)
            CU_ASSERT_EQUAL(hyp_writer_flush(w, p), 0);
    }
    hyp_writer_data(w, &after);
    CU_ASSERT((after - before) <= 16 * 200000);
    printf("(%.2f bytes/sample) ", (double)(after - before) / 200000.0);
    hyp_writer_close(w);
    hyp_profile_free(p);
}

/* The trace cut at every byte offset: each prefix reads exactly the records
 * that end within it and says truncated, never anything else. */
static void test_cut_at_every_offset(void) {
    hyp_profile_t *p = make_det(), *q;
    hyp_read_status_t st;
    size_t ends[64], len, cut, nrec = 0, off = 0;
    unsigned char *buf;
    msgpack_unpacked obj;

    buf = write_mem(p, &len);
    /* where each record ends, found by msgpack-c itself */
    msgpack_unpacked_init(&obj);
    while (off < len && nrec < 64 &&
           msgpack_unpack_next(&obj, (const char *)buf, len, &off) == MSGPACK_UNPACK_SUCCESS)
        ends[nrec++] = off;
    msgpack_unpacked_destroy(&obj);
    CU_ASSERT_EQUAL_FATAL(off, len);
    CU_ASSERT_FATAL(nrec >= 8);
    for (cut = 0; cut < len; cut++) {
        size_t complete = 0;
        int rc;

        while (complete < nrec && ends[complete] <= cut)
            complete++;
        rc = read_mem(buf, cut, NULL, &q, &st);
        CU_ASSERT_EQUAL(rc, HYP_ETRUNCATED);
        CU_ASSERT_EQUAL(st.error, HYP_ETRUNCATED);
        CU_ASSERT_EQUAL(st.truncated, 1);
        CU_ASSERT_EQUAL(st.records, complete);
        CU_ASSERT_EQUAL(st.offset, complete ? ends[complete - 1] : 0);
        CU_ASSERT(strstr(st.message, "record ") == st.message);
        if (complete >= 2) /* the header is complete: a profile exists */
            CU_ASSERT_PTR_NOT_NULL(q);
        hyp_profile_free(q);
        if (rc != HYP_ETRUNCATED || st.records != complete) {
            printf("cut at %zu: %s\n", cut, st.message);
            break;
        }
    }
    /* a prefix holding all but the end record keeps every node and row */
    CU_ASSERT_EQUAL(read_mem(buf, ends[nrec - 2], NULL, &q, &st), HYP_ETRUNCATED);
    CU_ASSERT_EQUAL(st.records, nrec - 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    CU_ASSERT_EQUAL(hyp_profile_node_count(q), hyp_profile_node_count(p));
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "without an end record"));
    hyp_profile_free(q);
    hyp_profile_free(p);
    free(buf);
}

/* ---------------------------------------------------------------- bad traces */

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} mp_t;

static void mp_init(mp_t *m) {
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_str(mp_t *m, const char *s) {
    msgpack_pack_str(&m->pk, strlen(s));
    msgpack_pack_str_body(&m->pk, s, strlen(s));
}

/* Magic and a header of the given major version, deterministic with one
 * calls column. */
static void mp_head(mp_t *m, unsigned major) {
    mp_str(m, "HYPROF");
    msgpack_pack_map(&m->pk, 4);
    mp_str(m, "format");
    mp_str(m, "hyprof");
    mp_str(m, "version");
    msgpack_pack_array(&m->pk, 2);
    msgpack_pack_uint32(&m->pk, major);
    msgpack_pack_uint32(&m->pk, 3);
    mp_str(m, "mode");
    mp_str(m, "deterministic");
    mp_str(m, "metrics");
    msgpack_pack_array(&m->pk, 1);
    msgpack_pack_array(&m->pk, 3);
    mp_str(m, "calls");
    mp_str(m, "count");
    mp_str(m, "calls");
}

/* strings ["f", "x.py"], function 0, one thread, nodes 1 and 2 */
static void mp_tables(mp_t *m) {
    msgpack_pack_array(&m->pk, 3);
    msgpack_pack_uint32(&m->pk, 1);
    msgpack_pack_uint32(&m->pk, 0);
    msgpack_pack_array(&m->pk, 2);
    mp_str(m, "f");
    mp_str(m, "x.py");
    msgpack_pack_array(&m->pk, 3);
    msgpack_pack_uint32(&m->pk, 2);
    msgpack_pack_uint32(&m->pk, 0);
    msgpack_pack_array(&m->pk, 4);
    msgpack_pack_uint32(&m->pk, 0);
    msgpack_pack_uint32(&m->pk, 1);
    msgpack_pack_uint32(&m->pk, 3);
    msgpack_pack_uint32(&m->pk, 0);
    msgpack_pack_array(&m->pk, 3);
    msgpack_pack_uint32(&m->pk, 3);
    msgpack_pack_uint32(&m->pk, 0);
    msgpack_pack_array(&m->pk, 3);
    msgpack_pack_uint32(&m->pk, 7);
    msgpack_pack_uint32(&m->pk, 7);
    msgpack_pack_uint32(&m->pk, 0);
    msgpack_pack_array(&m->pk, 3);
    msgpack_pack_uint32(&m->pk, 4);
    msgpack_pack_uint32(&m->pk, 1);
    msgpack_pack_array(&m->pk, 6);
    msgpack_pack_uint32(&m->pk, 0);
    msgpack_pack_uint32(&m->pk, 0);
    msgpack_pack_uint32(&m->pk, 0);
    msgpack_pack_uint32(&m->pk, 1);
    msgpack_pack_uint32(&m->pk, 0);
    msgpack_pack_uint32(&m->pk, 0);
}

static void mp_end(mp_t *m, unsigned nodes) {
    msgpack_pack_array(&m->pk, 2);
    msgpack_pack_uint32(&m->pk, 8);
    msgpack_pack_map(&m->pk, 1);
    mp_str(m, "nodes");
    msgpack_pack_uint32(&m->pk, nodes);
}

static int read_sb(mp_t *m, hyp_read_status_t *st, const hyp_read_options_t *opts) {
    hyp_profile_t *q;
    int rc = read_mem(m->sb.data, m->sb.size, opts, &q, st);

    hyp_profile_free(q);
    msgpack_sbuffer_destroy(&m->sb);
    return rc;
}

static void test_valid_handmade_trace(void) {
    hyp_read_status_t st;
    mp_t m;

    mp_init(&m);
    mp_head(&m, 1);
    mp_tables(&m);
    mp_end(&m, 3);
    CU_ASSERT_EQUAL(read_sb(&m, &st, NULL), 0);
    CU_ASSERT_EQUAL(st.records, 7);
}

/* A writer that repeats table entries: the repeats are the same entries. */
static void test_repeated_entries_are_one(void) {
    hyp_read_status_t st;
    hyp_profile_t *q;
    hyp_flat_t *f;
    mp_t m;

    mp_init(&m);
    mp_head(&m, 1);
    mp_tables(&m); /* strings f, x.py; function 0; thread 0; nodes 1 (f), 2 (f under f) */
    msgpack_pack_array(&m.pk, 3); /* strings 2, 3 repeat "f" and "x.py" */
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, 2);
    msgpack_pack_array(&m.pk, 2);
    mp_str(&m, "f");
    mp_str(&m, "x.py");
    msgpack_pack_array(&m.pk, 3); /* function 1 = function 0, through the repeated strings */
    msgpack_pack_uint32(&m.pk, 2);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_array(&m.pk, 4);
    msgpack_pack_uint32(&m.pk, 2);
    msgpack_pack_uint32(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 0);
    msgpack_pack_array(&m.pk, 3); /* node 3 = node 1 (root > f), node 4: f under node 3 */
    msgpack_pack_uint32(&m.pk, 4);
    msgpack_pack_uint32(&m.pk, 3);
    msgpack_pack_array(&m.pk, 6);
    msgpack_pack_uint32(&m.pk, 0);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, 0);
    msgpack_pack_uint32(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, 0);
    msgpack_pack_array(&m.pk, 3); /* calls: 2 on node 1, 3 on node 3, 4 on node 4 */
    msgpack_pack_uint32(&m.pk, 5);
    msgpack_pack_uint32(&m.pk, 0);
    msgpack_pack_array(&m.pk, 6);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, 2);
    msgpack_pack_uint32(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 4);
    msgpack_pack_uint32(&m.pk, 4);
    mp_end(&m, 5);
    CU_ASSERT_EQUAL_FATAL(read_mem(m.sb.data, m.sb.size, NULL, &q, &st), 0);
    msgpack_sbuffer_destroy(&m.sb);
    CU_ASSERT_EQUAL(hyp_profile_string_count(q), 2);
    CU_ASSERT_EQUAL(hyp_profile_func_count(q), 1);
    CU_ASSERT_EQUAL(hyp_profile_node_count(q), 3); /* root, f, f > f */
    CU_ASSERT_EQUAL(hyp_profile_row(q, 0, 1)[0], 5);
    CU_ASSERT_EQUAL(hyp_profile_row(q, 0, 2)[0], 4);
    CU_ASSERT_EQUAL_FATAL(hyp_flat_compute(q, HYP_NO_ID, &f), 0);
    CU_ASSERT_EQUAL(hyp_flat_count(f), 1);
    CU_ASSERT_EQUAL(hyp_flat_at(f, 0)->own[0], 9);
    CU_ASSERT_EQUAL(hyp_flat_at(f, 0)->cum[0], 5); /* primitive: the outer f */
    hyp_flat_free(f);
    hyp_profile_free(q);
}

static void test_unknown_record_is_skipped(void) {
    hyp_read_status_t st;
    mp_t m;

    mp_init(&m);
    mp_head(&m, 1);
    msgpack_pack_array(&m.pk, 3); /* a record type from a later minor version */
    msgpack_pack_uint32(&m.pk, 99);
    mp_str(&m, "future");
    msgpack_pack_map(&m.pk, 1);
    mp_str(&m, "k");
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_nil(&m.pk);
    msgpack_pack_double(&m.pk, 1.5);
    mp_tables(&m);
    mp_end(&m, 3);
    CU_ASSERT_EQUAL(read_sb(&m, &st, NULL), 0);
    CU_ASSERT_EQUAL(st.skipped, 1);
    CU_ASSERT_EQUAL(st.records, 8);
}

static void test_wrong_magic(void) {
    static const char text[] = "#!/usr/bin/env python\nprint('hello')\n";
    hyp_read_status_t st;
    hyp_profile_t *q;
    mp_t m;

    CU_ASSERT_EQUAL(read_mem(text, sizeof(text) - 1, NULL, &q, &st), HYP_EMAGIC);
    CU_ASSERT_PTR_NULL(q);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "not a hyprof trace"));
    CU_ASSERT_EQUAL(read_mem("\xa6HYPROX", 7, NULL, &q, &st), HYP_EMAGIC);
    CU_ASSERT_EQUAL(read_mem("\xc1", 1, NULL, &q, &st), HYP_EMAGIC);
    CU_ASSERT_EQUAL(read_mem("\xa6HYQ", 4, NULL, &q, &st), HYP_EMAGIC); /* cut, but not ours */
    CU_ASSERT_EQUAL(read_mem("\xa6HYP", 4, NULL, &q, &st), HYP_ETRUNCATED);
    mp_init(&m);
    mp_str(&m, "HYPROF");
    msgpack_pack_map(&m.pk, 2);
    mp_str(&m, "format");
    mp_str(&m, "pprof");
    mp_str(&m, "version");
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, 0);
    CU_ASSERT_EQUAL(read_sb(&m, &st, NULL), HYP_EMAGIC);
}

static void test_unknown_major_version(void) {
    hyp_read_status_t st;
    mp_t m;

    mp_init(&m);
    mp_head(&m, 2);
    mp_tables(&m);
    mp_end(&m, 3);
    CU_ASSERT_EQUAL(read_sb(&m, &st, NULL), HYP_EVERSION);
    CU_ASSERT_EQUAL(st.record, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "version 2.3 is not supported"));
}

static void test_garbage_record(void) {
    hyp_read_status_t st;
    mp_t m;

    mp_init(&m);
    mp_head(&m, 1);
    mp_tables(&m);
    msgpack_sbuffer_write(&m.sb, "\xc1\x00\x00", 3);
    CU_ASSERT_EQUAL(read_sb(&m, &st, NULL), HYP_EFORMAT);
    CU_ASSERT_EQUAL(st.record, 6);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "not valid msgpack"));

    mp_init(&m); /* a header with two "metrics" entries (found by the fuzzer: it leaked) */
    mp_str(&m, "HYPROF");
    msgpack_pack_map(&m.pk, 4);
    mp_str(&m, "version");
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, 0);
    mp_str(&m, "metrics");
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_array(&m.pk, 3);
    mp_str(&m, "n");
    mp_str(&m, "ns");
    mp_str(&m, "own");
    mp_str(&m, "metrics");
    msgpack_pack_array(&m.pk, 0);
    mp_str(&m, "mode");
    mp_str(&m, "sampling");
    CU_ASSERT_EQUAL(read_sb(&m, &st, NULL), HYP_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "two \"metrics\""));

    mp_init(&m);
    mp_head(&m, 1);
    msgpack_pack_uint32(&m.pk, 5); /* a record that is not an array */
    CU_ASSERT_EQUAL(read_sb(&m, &st, NULL), HYP_EFORMAT);

    mp_init(&m);
    mp_head(&m, 1);
    mp_tables(&m);
    mp_end(&m, 3);
    msgpack_pack_array(&m.pk, 1); /* data after the end record */
    msgpack_pack_uint32(&m.pk, 1);
    CU_ASSERT_EQUAL(read_sb(&m, &st, NULL), HYP_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "follows the end record"));

    mp_init(&m);
    mp_head(&m, 1);
    mp_tables(&m);
    mp_end(&m, 9); /* the end record disagrees with the node table */
    CU_ASSERT_EQUAL(read_sb(&m, &st, NULL), HYP_EFORMAT);
}

static void test_reference_out_of_range(void) {
    hyp_read_status_t st;
    uint64_t offset;
    mp_t m;

    mp_init(&m);
    mp_head(&m, 1);
    mp_tables(&m);
    offset = m.sb.size;
    msgpack_pack_array(&m.pk, 3); /* node 3 whose parent is 120 */
    msgpack_pack_uint32(&m.pk, 4);
    msgpack_pack_uint32(&m.pk, 3);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 120);
    msgpack_pack_uint32(&m.pk, 0);
    msgpack_pack_uint32(&m.pk, 0);
    CU_ASSERT_EQUAL(read_sb(&m, &st, NULL), HYP_ERANGE);
    CU_ASSERT_EQUAL(st.record, 6);
    CU_ASSERT_EQUAL(st.offset, offset);
    {
        char want[128];

        snprintf(want, sizeof(want),
                 "record 6 at byte %llu: node 3 refers to parent 120 beyond the node table",
                 (unsigned long long)offset);
        CU_ASSERT_STRING_EQUAL(st.message, want);
    }

    mp_init(&m); /* a function naming string 9 of 2 */
    mp_head(&m, 1);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 2);
    msgpack_pack_uint32(&m.pk, 0);
    msgpack_pack_array(&m.pk, 4);
    msgpack_pack_uint32(&m.pk, 9);
    msgpack_pack_uint32(&m.pk, 0);
    msgpack_pack_uint32(&m.pk, 0);
    msgpack_pack_uint32(&m.pk, 0);
    CU_ASSERT_EQUAL(read_sb(&m, &st, NULL), HYP_ERANGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "string 9"));

    mp_init(&m); /* metrics of thread 4 */
    mp_head(&m, 1);
    mp_tables(&m);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 5);
    msgpack_pack_uint32(&m.pk, 4);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, 1);
    CU_ASSERT_EQUAL(read_sb(&m, &st, NULL), HYP_ERANGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "thread 4"));

    mp_init(&m); /* metrics of node 50 */
    mp_head(&m, 1);
    mp_tables(&m);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 5);
    msgpack_pack_uint32(&m.pk, 0);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_uint32(&m.pk, 50);
    msgpack_pack_uint32(&m.pk, 1);
    CU_ASSERT_EQUAL(read_sb(&m, &st, NULL), HYP_ERANGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "node 50"));

    mp_init(&m); /* samples of kind 3 in a trace with none */
    mp_head(&m, 1);
    mp_tables(&m);
    msgpack_pack_array(&m.pk, 5);
    msgpack_pack_uint32(&m.pk, 6);
    msgpack_pack_uint32(&m.pk, 0);
    msgpack_pack_uint32(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 0);
    msgpack_pack_array(&m.pk, 0);
    CU_ASSERT_EQUAL(read_sb(&m, &st, NULL), HYP_ERANGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "sample kind 3"));
}

/* Labelled samples and rows (format 1.2) come back with their label sets,
 * through a flush in the middle of the run. */
static void test_labels_round_trip(void) {
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_SAMPLING, smp_metrics, 4), *q;
    hyp_sample_kind_t kc = {"cpu-clock", "ns", 0, 1};
    hyp_read_options_t opts = {sizeof(opts), 0, 0, 1};
    hyp_thread_t th = {500, 1, 0};
    hyp_id_t t, nodes[4], sets[3], fn;
    hyp_label_t l[2];
    uint64_t extra[4] = {0, 0, 3, 4096}, weight[3] = {0, 0, 0}, got_weight[3] = {0, 0, 0};
    const hyp_sample_t *got;
    hyp_read_status_t st;
    hyp_writer_t *w;
    const void *data;
    size_t len, n, i, j;

    CU_ASSERT_EQUAL_FATAL(hyp_profile_sample_kind(p, &kc, NULL), 0);
    th.name = str_id(p, "MainThread");
    CU_ASSERT_EQUAL_FATAL(hyp_profile_thread(p, &th, &t), 0);
    fn = func_id(p, "handle", "app.py", 3, HYP_FUNC_PYTHON);
    for (i = 0; i < 4; i++)
        CU_ASSERT_EQUAL_FATAL(hyp_profile_node(p, i ? nodes[i - 1] : 0, fn, (uint32_t)i, &nodes[i]),
                              0);
    sets[0] = HYP_NO_LABELS;
    l[0] = (hyp_label_t){str_id(p, "view"), str_id(p, "shop.list")};
    l[1] = (hyp_label_t){str_id(p, "tenant"), str_id(p, "acme")};
    CU_ASSERT_EQUAL_FATAL(hyp_profile_labels(p, l, 2, &sets[1]), 0);
    CU_ASSERT_EQUAL_FATAL(hyp_writer_open_mem(&w), 0);
    CU_ASSERT_EQUAL(hyp_writer_begin(w, p), 0);
    for (i = 0; i < 600; i++) {
        hyp_sample_t s = {t, nodes[i % 4], 0, 1000 * i, 100 + i % 7, sets[(i / 5) % 2]};

        if (i == 300) { /* a set made after the first flush */
            CU_ASSERT_EQUAL(hyp_writer_flush(w, p), 0);
            l[1] = (hyp_label_t){l[1].key, str_id(p, "globex")};
            CU_ASSERT_EQUAL_FATAL(hyp_profile_labels(p, l, 2, &sets[2]), 0);
        }
        if (i >= 300 && i % 3 == 0)
            s.labels = sets[2];
        weight[s.labels] += s.weight;
        CU_ASSERT_EQUAL(hyp_profile_add_sample(p, &s), 0);
    }
    /* a labelled row that did not come from samples */
    CU_ASSERT_EQUAL(hyp_profile_add_labeled(p, t, nodes[1], sets[2], extra), 0);
    CU_ASSERT_EQUAL(hyp_writer_finish(w, p), 0);
    data = hyp_writer_data(w, &len);
    CU_ASSERT_EQUAL_FATAL(read_mem(data, len, &opts, &q, &st), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    CU_ASSERT_EQUAL(st.skipped, 0);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_labels_count(q), 3);
    for (i = 1; i < 3; i++) {
        size_t na, nb;
        const hyp_label_t *a = hyp_profile_labels_at(p, (hyp_id_t)i, &na);
        const hyp_label_t *b = hyp_profile_labels_at(q, (hyp_id_t)i, &nb);

        CU_ASSERT(na == nb && memcmp(a, b, na * sizeof(*a)) == 0);
    }
    /* every row of p is a row of q with the same values */
    CU_ASSERT_EQUAL(hyp_profile_row_count(q), hyp_profile_row_count(p));
    for (i = 0; i < hyp_profile_row_count(p); i++) {
        hyp_id_t pt, pn, pl, qt, qn, ql;
        const uint64_t *pv = hyp_profile_row_at(p, i, &pt, &pn, &pl);
        int found = 0;

        for (j = 0; j < hyp_profile_row_count(q) && !found; j++) {
            const uint64_t *qv = hyp_profile_row_at(q, j, &qt, &qn, &ql);

            found = qt == pt && qn == pn && ql == pl && memcmp(pv, qv, 4 * sizeof(*pv)) == 0;
        }
        CU_ASSERT(found);
    }
    hyp_profile_free(q);
    /* and the samples keep their sets */
    {
        hyp_reader_t *r;

        CU_ASSERT_EQUAL_FATAL(hyp_reader_open_mem(&r, data, len, &opts), 0);
        while (hyp_reader_next(r) > 0)
            ;
        got = hyp_reader_samples(r, &n);
        CU_ASSERT_EQUAL(n, 600);
        for (i = 0; i < n; i++)
            if (got[i].labels < 3)
                got_weight[got[i].labels] += got[i].weight;
        hyp_reader_close(r);
    }
    CU_ASSERT(memcmp(weight, got_weight, sizeof(weight)) == 0);
    CU_ASSERT(weight[0] != 0 && weight[1] != 0 && weight[2] != 0);
    CU_ASSERT_EQUAL(hyp_writer_close(w), 0);
    hyp_profile_free(p);
}

/* A hand-made trace (mp_tables) and then a LABELS record of first id first
 * holding the n values given; returns what reading it returns. */
static int read_labels_record(hyp_read_status_t *st, unsigned first, size_t n,
                              const uint32_t *values) {
    mp_t m;
    size_t i;

    mp_init(&m);
    mp_head(&m, 1);
    mp_tables(&m);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 9);
    msgpack_pack_uint32(&m.pk, first);
    msgpack_pack_array(&m.pk, n);
    for (i = 0; i < n; i++)
        msgpack_pack_uint32(&m.pk, values[i]);
    return read_sb(&m, st, NULL);
}

/* Labels that point where they must not: each refused with its own message. */
static void test_labels_out_of_range(void) {
    static const uint32_t bad_string[] = {1, 0, 9};        /* string 9 of 2 */
    static const uint32_t key_twice[] = {2, 0, 1, 0, 0};   /* key 0 twice */
    static const uint32_t too_long[] = {40, 0, 1};         /* 40 labels, one given */
    hyp_read_status_t st;
    mp_t m;

    mp_init(&m); /* metrics of label set 5 with no labels table */
    mp_head(&m, 1);
    mp_tables(&m);
    msgpack_pack_array(&m.pk, 4);
    msgpack_pack_uint32(&m.pk, 5);
    msgpack_pack_uint32(&m.pk, 0);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, 5);
    CU_ASSERT_EQUAL(read_sb(&m, &st, NULL), HYP_ERANGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "label set 5"));

    CU_ASSERT_EQUAL(read_labels_record(&st, 1, 3, bad_string), HYP_ERANGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "beyond the string table"));
    CU_ASSERT_EQUAL(read_labels_record(&st, 1, 5, key_twice), HYP_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "twice"));
    CU_ASSERT_EQUAL(read_labels_record(&st, 1, 3, too_long), HYP_EFORMAT);
    CU_ASSERT_EQUAL(read_labels_record(&st, 4, 0, NULL), HYP_EFORMAT); /* skips ids 1-3 */
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "starts at id 4"));
}

static void test_limits_and_hostile_lengths(void) {
    hyp_read_options_t opts = {sizeof(opts), 64, 0, 0};
    hyp_read_status_t st;
    hyp_profile_t *q;
    mp_t m;
    static const unsigned char huge_array[] = {0xa6, 'H', 'Y', 'P', 'R', 'O', 'F',
                                               0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    static const unsigned char huge_str[] = {0xa6, 'H', 'Y', 'P', 'R', 'O', 'F',
                                             0xdb, 0x7f, 0xff, 0xff, 0xff, 'x'};
    static const unsigned char deep[] = {0xa6, 'H', 'Y', 'P', 'R', 'O', 'F', 0x91, 0x91, 0x91,
                                         0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
                                         0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x01};

    /* a record larger than max_record_bytes */
    mp_init(&m);
    mp_head(&m, 1);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint32(&m.pk, 1);
    msgpack_pack_uint32(&m.pk, 0);
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_str(&m.pk, 100);
    msgpack_pack_str_body(&m.pk, "0123456789012345678901234567890123456789012345678901234567890"
                                 "123456789012345678901234567890123456789",
                          100);
    CU_ASSERT_EQUAL(read_sb(&m, &st, &opts), HYP_ELIMIT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "limit of 64 bytes"));
    /* declared lengths of 4 G elements or 2 GB in a 13-byte file */
    CU_ASSERT_EQUAL(read_mem(huge_array, sizeof(huge_array), NULL, &q, &st), HYP_ELIMIT);
    hyp_profile_free(q);
    CU_ASSERT_EQUAL(read_mem(huge_str, sizeof(huge_str), NULL, &q, &st), HYP_ELIMIT);
    hyp_profile_free(q);
    CU_ASSERT_EQUAL(read_mem(deep, sizeof(deep), NULL, &q, &st), HYP_EFORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "nested too deeply"));
    hyp_profile_free(q);
    /* a table larger than max_table_entries */
    opts.max_record_bytes = 0;
    opts.max_table_entries = 1;
    mp_init(&m);
    mp_head(&m, 1);
    mp_tables(&m);
    CU_ASSERT_EQUAL(read_sb(&m, &st, &opts), HYP_ELIMIT);
}

static void test_error_codes_are_distinct(void) {
    int codes[] = {HYP_ETRUNCATED, HYP_EFORMAT, HYP_EMAGIC, HYP_EVERSION, HYP_ERANGE,
                   HYP_ELIMIT};
    size_t i, j;

    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        for (j = i + 1; j < sizeof(codes) / sizeof(codes[0]); j++)
            CU_ASSERT_NOT_EQUAL(codes[i], codes[j]);
}

static void test_files(void) {
    char path[] = "/tmp/hyprof-test-XXXXXX";
    hyp_profile_t *p = make_det(), *q;
    hyp_read_status_t st;
    hyp_writer_t *w;
    int fd;

    fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    CU_ASSERT_EQUAL(hyp_trace_save(p, path), 0);
    CU_ASSERT_EQUAL(hyp_trace_load(path, NULL, &q, &st), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    assert_same_profile(p, q);
    hyp_profile_free(q);
    /* through a file descriptor the caller keeps */
    fd = open(path, O_WRONLY | O_TRUNC);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(hyp_writer_open_fd(&w, fd), 0);
    CU_ASSERT_EQUAL(hyp_writer_flush(w, p), HYP_ESTATE); /* before begin */
    CU_ASSERT_EQUAL(hyp_writer_close(w), HYP_ESTATE);
    CU_ASSERT_EQUAL(hyp_writer_open_fd(&w, fd), 0);
    CU_ASSERT_EQUAL(hyp_writer_begin(w, p), 0);
    CU_ASSERT_EQUAL(hyp_writer_finish(w, p), 0);
    CU_ASSERT_EQUAL(hyp_writer_close(w), 0);
    CU_ASSERT_EQUAL(fcntl(fd, F_GETFD), 0); /* still open */
    close(fd);
    CU_ASSERT_EQUAL(hyp_trace_load(path, NULL, &q, &st), 0);
    assert_same_profile(p, q);
    hyp_profile_free(q);
    unlink(path);
    CU_ASSERT_EQUAL(hyp_trace_load(path, NULL, &q, &st), HYP_ENOENT);
    CU_ASSERT_PTR_NULL(q);
    CU_ASSERT_EQUAL(hyp_trace_save(p, "/nonexistent-dir/x.hyprof"), HYP_ENOENT);
    hyp_profile_free(p);
}

/* A trace larger than the reader's buffer, read from a file and from a pipe
 * fed in odd-sized pieces: records cut across reads are reassembled. */
static void test_large_trace_through_file_and_pipe(void) {
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_SAMPLING, smp_metrics, 4), *q;
    hyp_sample_kind_t kc = {"cpu-clock", "ns", 0, 1};
    hyp_thread_t t = {1, 1, 0};
    char path[] = "/tmp/hyprof-test-XXXXXX";
    hyp_id_t nodes[500], f;
    hyp_read_status_t st;
    hyp_reader_t *r;
    const uint64_t *row;
    unsigned char *buf;
    size_t len, i, off;
    int fd, pfd[2], rc;
    pid_t child;

    hyp_profile_sample_kind(p, &kc, NULL);
    t.name = str_id(p, "main");
    hyp_profile_thread(p, &t, NULL);
    for (i = 0; i < 500; i++) {
        char name[24];

        snprintf(name, sizeof(name), "a_rather_long_name_%zu", i);
        f = func_id(p, name, "some/module/path.py", (uint32_t)i, HYP_FUNC_PYTHON);
        CU_ASSERT_EQUAL_FATAL(hyp_profile_node(p, i < 5 ? 0 : nodes[i / 5], f, 1, &nodes[i]), 0);
    }
    for (i = 0; i < 300000; i++) {
        hyp_sample_t s = {0, nodes[(i * 7919) % 500], 0, i * 1000000, 1000000 + i % 3, HYP_NO_LABELS};
        CU_ASSERT_EQUAL_FATAL(hyp_profile_add_sample(p, &s), 0);
    }
    fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    CU_ASSERT_EQUAL_FATAL(hyp_trace_save(p, path), 0);
    CU_ASSERT_EQUAL(hyp_trace_load(path, NULL, &q, &st), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    CU_ASSERT_EQUAL(hyp_profile_sample_total(q), 300000);
    row = hyp_profile_row(q, 0, nodes[0]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(row);
    CU_ASSERT_EQUAL(row[0], 600); /* every 500th sample */
    assert_same_profile(p, q);
    hyp_profile_free(q);

    buf = write_mem(p, &len);
    CU_ASSERT_FATAL(len > 1000000);
    CU_ASSERT_EQUAL_FATAL(pipe(pfd), 0);
    child = fork();
    CU_ASSERT_FATAL(child >= 0);
    if (child == 0) {
        close(pfd[0]);
        for (off = 0; off < len;) {
            size_t n = len - off < 4099 ? len - off : 4099;
            ssize_t w = write(pfd[1], buf + off, n);

            if (w <= 0)
                _exit(1);
            off += (size_t)w;
        }
        _exit(0);
    }
    close(pfd[1]);
    CU_ASSERT_EQUAL_FATAL(hyp_reader_open_fd(&r, pfd[0], NULL), 0);
    while ((rc = hyp_reader_next(r)) > 0)
        ;
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(hyp_reader_status(r)->error, 0);
    q = hyp_reader_profile(r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    assert_same_profile(p, q);
    hyp_reader_close(r);
    close(pfd[0]);
    waitpid(child, NULL, 0);
    free(buf);
    unlink(path);
    hyp_profile_free(p);
}

static const hyp_test_case_t cases[] = {
    {"deterministic round trip", test_det_round_trip},
    {"sampling streams in chunks", test_sampling_streams_in_chunks},
    {"samples take at most 16 bytes", test_samples_are_compact},
    {"cut at every byte offset", test_cut_at_every_offset},
    {"a hand-made trace reads", test_valid_handmade_trace},
    {"unknown record types are skipped", test_unknown_record_is_skipped},
    {"repeated table entries are one", test_repeated_entries_are_one},
    {"wrong magic", test_wrong_magic},
    {"unknown major version", test_unknown_major_version},
    {"garbage records", test_garbage_record},
    {"references out of range", test_reference_out_of_range},
    {"labels round trip", test_labels_round_trip},
    {"labels out of range", test_labels_out_of_range},
    {"limits and hostile lengths", test_limits_and_hostile_lengths},
    {"error codes are distinct", test_error_codes_are_distinct},
    {"files and descriptors", test_files},
    {"a large trace through a file and a pipe", test_large_trace_through_file_and_pipe},
    {NULL, NULL},
};

const hyp_test_suite_t hyp_suite_trace = {"trace", cases, NULL, NULL};
