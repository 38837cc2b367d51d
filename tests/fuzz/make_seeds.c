/* Writes the fuzz seed corpus: small real traces of both modes, one cut
 * short and one with a record type from the future. Run by
 * tests/fuzz/run.sh --seeds DIR; the results are kept in tests/fuzz/corpus
 * (named *.seed: git and the distribution leave out *.hyprof files). */
#include "hyprof.h"

#include <stdio.h>
#include <string.h>

static hyp_id_t func(hyp_profile_t *p, const char *name, const char *file, uint32_t line,
                     uint32_t kind) {
    hyp_func_t f = {0, 0, line, kind};
    hyp_id_t id = 0;

    hyp_profile_string(p, name, strlen(name), &f.name);
    hyp_profile_string(p, file, strlen(file), &f.file);
    hyp_profile_func(p, &f, &id);
    return id;
}

static int save(const char *dir, const char *name, const void *buf, size_t len) {
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

static int deterministic(const char *dir) {
    static const hyp_metric_t m[] = {{"calls", "count", HYP_METRIC_CALLS},
                                     {"wall_own", "ns", HYP_METRIC_OWN},
                                     {"wall_cum", "ns", HYP_METRIC_CUM}};
    const char *argv[] = {"app.py", "-v"};
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_DETERMINISTIC, m, 3);
    hyp_thread_t th = {7, 8, 0};
    hyp_id_t a, b, c, n1, n2, n3, n4;
    uint64_t v[3] = {1, 10, 100};
    hyp_writer_t *w;
    const void *buf;
    size_t len;
    int rc;

    hyp_profile_set_meta_strv(p, "argv", argv, 2);
    hyp_profile_set_meta_int(p, "pid", 4242);
    hyp_profile_set_meta_float(p, "start_time", 1.5);
    hyp_profile_set_node_limit(p, 5);
    a = func(p, "main", "app.py", 1, HYP_FUNC_PYTHON);
    b = func(p, "fib", "app.py", 9, HYP_FUNC_PYTHON);
    c = func(p, "len", "", 0, HYP_FUNC_BUILTIN);
    hyp_profile_string(p, "MainThread", 10, &th.name);
    hyp_profile_thread(p, &th, NULL);
    hyp_profile_node(p, 0, a, 0, &n1);
    hyp_profile_node(p, n1, b, 0, &n2);
    hyp_profile_node(p, n2, b, 0, &n3);
    hyp_profile_node(p, n3, b, 0, &n4); /* beyond the cap: "[truncated]" */
    hyp_profile_add(p, 0, n1, v);
    hyp_profile_add(p, 0, n2, v);
    hyp_profile_add(p, 0, n3, v);
    hyp_profile_add(p, 0, n4, v);
    hyp_profile_node(p, n1, c, 0, &n2);
    hyp_profile_add(p, 0, n2, v);
    hyp_writer_open_mem(&w);
    hyp_writer_begin(w, p);
    hyp_writer_finish(w, p);
    buf = hyp_writer_data(w, &len);
    rc = save(dir, "deterministic.seed", buf, len);
    rc |= save(dir, "deterministic-cut.seed", buf, len * 2 / 3);
    hyp_writer_close(w);
    hyp_profile_free(p);
    return rc;
}

static int sampling(const char *dir) {
    static const hyp_metric_t m[] = {{"samples", "count", HYP_METRIC_OWN},
                                     {"cpu-clock", "ns", HYP_METRIC_OWN},
                                     {"alloc_samples", "count", HYP_METRIC_OWN},
                                     {"alloc_bytes", "bytes", HYP_METRIC_OWN}};
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_SAMPLING, m, 4);
    hyp_sample_kind_t k1 = {"cpu-clock", "ns", 0, 1}, k2 = {"alloc", "bytes", 2, 3};
    hyp_thread_t th = {11, 12, 0};
    hyp_id_t f[4], nodes[6];
    hyp_writer_t *w;
    const void *buf;
    size_t len, i;
    int rc, chunk;

    hyp_profile_sample_kind(p, &k1, NULL);
    hyp_profile_sample_kind(p, &k2, NULL);
    hyp_profile_set_meta_str(p, "event", "cpu-clock");
    hyp_profile_set_meta_int(p, "period", 1000000);
    hyp_writer_open_mem(&w);
    hyp_writer_begin(w, p);
    for (chunk = 0; chunk < 2; chunk++) {
        hyp_profile_string(p, chunk ? "worker" : "MainThread", chunk ? 6 : 10, &th.name);
        th.os_tid += (uint64_t)chunk;
        hyp_profile_thread(p, &th, NULL);
        for (i = 0; i < 4; i++)
            f[i] = func(p, chunk ? "g" : "f", "m.py", (uint32_t)i, HYP_FUNC_PYTHON);
        for (i = 0; i < 6; i++)
            hyp_profile_node(p, i < 2 ? 0 : nodes[i - 2], f[i % 4], (uint32_t)(10 + i), &nodes[i]);
        for (i = 0; i < 40; i++) {
            hyp_sample_t s = {(hyp_id_t)chunk, nodes[i % 6], i % 9 == 0, 1000000 * i + 3 * chunk,
                              i % 9 == 0 ? 4096 : 1000000};
            hyp_profile_add_sample(p, &s);
        }
        hyp_profile_add_dropped(p, "ring full", 2);
        hyp_writer_flush(w, p);
    }
    hyp_profile_set_meta_float(p, "duration", 0.5);
    hyp_writer_finish(w, p);
    buf = hyp_writer_data(w, &len);
    rc = save(dir, "sampling.seed", buf, len);
    hyp_writer_close(w);
    hyp_profile_free(p);
    return rc;
}

/* A minimal trace with a record of an unknown type (99), written by hand. */
static int future(const char *dir) {
    static const unsigned char t[] =
        "\xa6HYPROF"
        "\x84\xa6" "format" "\xa6" "hyprof" "\xa7" "version" "\x92\x01\x05"
        "\xa4" "mode" "\xad" "deterministic" "\xa7" "metrics" "\x91\x93\xa5" "calls"
        "\xa5" "count" "\xa5" "calls"
        "\x92\x63\x81\xa1" "x" "\xc0"             /* [99, {"x": nil}] */
        "\x93\x01\x00\x92\xa1" "f" "\xa0"         /* strings ["f", ""] */
        "\x93\x02\x00\x94\x00\x01\x00\x00"        /* function 0 */
        "\x93\x03\x00\x93\x01\x01\x00"            /* thread 0 */
        "\x93\x04\x01\x93\x00\x00\x00"            /* node 1 */
        "\x93\x05\x00\x92\x01\x05"                /* node 1: 5 calls */
        "\x92\x08\x81\xa5" "nodes" "\x02";        /* end */

    return save(dir, "future-record.seed", t, sizeof(t) - 1);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    return deterministic(argv[1]) | sampling(argv[1]) | future(argv[1]);
}
