/* Suite for core/callgrind.c: the whole file of a small profile, recursion's
 * excess taken off the calls that close a cycle, call sites split by line
 * exactly at values near 2^63, and refused specs. */
#include "harness.h"

#include "hyprof.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *data;
    size_t len;
    int fail_after; /* a write error after so many calls; 0: never */
    int calls;
} text_t;

static int collect(void *ctx, const char *data, size_t len) {
    text_t *t = ctx;
    char *grown;

    if (t->fail_after && ++t->calls >= t->fail_after)
        return HYP_EIO;
    grown = realloc(t->data, t->len + len + 1);
    if (grown == NULL)
        return HYP_ENOMEM;
    t->data = grown;
    memcpy(t->data + t->len, data, len);
    t->len += len;
    t->data[t->len] = '\0';
    return 0;
}

static hyp_id_t func(hyp_profile_t *p, const char *name, uint32_t line) {
    hyp_func_t f = {0, 0, line, HYP_FUNC_PYTHON};
    hyp_id_t id;

    CU_ASSERT_EQUAL_FATAL(hyp_profile_string(p, name, strlen(name), &f.name), 0);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_string(p, "t.py", 4, &f.file), 0);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_func(p, &f, &id), 0);
    return id;
}

static hyp_profile_t *det_profile(void) {
    static const hyp_metric_t metrics[] = {
        {"calls", "count", HYP_METRIC_CALLS},
        {"wall_own", "ns", HYP_METRIC_OWN},
        {"wall_cum", "ns", HYP_METRIC_CUM},
    };
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_DETERMINISTIC, metrics, 3);
    hyp_thread_t t = {100, 1, 0};

    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_string(p, "main", 4, &t.name), 0);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_thread(p, &t, NULL), 0);
    return p;
}

static void add(hyp_profile_t *p, hyp_id_t node, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t v[3];

    v[0] = a, v[1] = b, v[2] = c;
    CU_ASSERT_EQUAL_FATAL(hyp_profile_add(p, 0, node, v), 0);
}

static const uint32_t index2[] = {0, 1};
static const char *const names2[] = {"a", "b", "<program>"};
static const char *const files2[] = {"t.py", "t.py", ""};
static const uint32_t first2[] = {10, 20, 0};
static const char *const wall_event[] = {"Wall_ns"};
static const size_t own_col[] = {1}, cum_col[] = {2};

static hyp_callgrind_spec_t spec2(void) {
    hyp_callgrind_spec_t s;

    memset(&s, 0, sizeof(s));
    s.nfuncs = 2;
    s.index = index2;
    s.names = names2;
    s.files = files2;
    s.first = first2;
    s.ncosts = 1;
    s.events = wall_event;
    s.cost = own_col;
    s.cum = cum_col;
    s.calls = 0;
    s.header = "pid: 1\n";
    return s;
}

/* root -> a -> b: every line of the file, names written in full once. */
static void test_whole_file(void) {
    hyp_profile_t *p = det_profile();
    hyp_id_t a = func(p, "a", 10), b = func(p, "b", 20), n1, n2;
    hyp_callgrind_spec_t s = spec2();
    text_t t = {NULL, 0, 0, 0};

    CU_ASSERT_EQUAL_FATAL(hyp_profile_node(p, 0, a, 0, &n1), 0);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_node(p, n1, b, 0, &n2), 0);
    add(p, n1, 1, 5, 12);
    add(p, n2, 2, 7, 7);
    CU_ASSERT_EQUAL_FATAL(hyp_callgrind_write(p, &s, collect, &t), 0);
    CU_ASSERT_STRING_EQUAL(t.data, "# callgrind format\n"
                                   "version: 1\n"
                                   "creator: hyprof\n"
                                   "pid: 1\n"
                                   "part: 1\n"
                                   "positions: line\n"
                                   "events: Wall_ns\n"
                                   "summary: 12\n"
                                   "\n"
                                   "fl=(1) t.py\n"
                                   "fn=(1) a\n"
                                   "10 5\n"
                                   "cfi=(1)\n"
                                   "cfn=(2) b\n"
                                   "calls=2 20\n"
                                   "10 7\n"
                                   "\n"
                                   "fl=(1)\n"
                                   "fn=(2)\n"
                                   "20 7\n"
                                   "\n"
                                   "fl=(2) <built-in>\n"
                                   "fn=(3) <program>\n"
                                   "0 0\n"
                                   "cfi=(1)\n"
                                   "cfn=(1)\n"
                                   "calls=1 10\n"
                                   "0 12\n"
                                   "\n"
                                   "totals: 12\n");
    free(t.data);
    hyp_profile_free(p);
}

/* a -> a -> a under the root: the edges into a add up to 60 + 50, its
 * total is 60, and the 50 comes off a -> a (in a's cycle), not off the
 * root's call. b -> c -> b -> c: the same for the mutual recursion. */
static void test_recursion_excess_off_the_cycle(void) {
    hyp_profile_t *p = det_profile();
    hyp_id_t a = func(p, "a", 10), b = func(p, "b", 20), c = func(p, "c", 30);
    hyp_id_t n1, n2, n3, m1, m2, m3, m4;
    static const uint32_t index3[] = {0, 1, 2};
    static const char *const names3[] = {"a", "b", "c", "<program>"};
    static const char *const files3[] = {"t.py", "t.py", "t.py", ""};
    static const uint32_t first3[] = {10, 20, 30, 0};
    hyp_callgrind_spec_t s = spec2();
    text_t t = {NULL, 0, 0, 0};

    hyp_profile_node(p, 0, a, 0, &n1);
    hyp_profile_node(p, n1, a, 0, &n2);
    hyp_profile_node(p, n2, a, 0, &n3);
    add(p, n1, 1, 10, 60);
    add(p, n2, 1, 20, 50);
    add(p, n3, 1, 30, 30);
    hyp_profile_node(p, 0, b, 0, &m1);
    hyp_profile_node(p, m1, c, 0, &m2);
    hyp_profile_node(p, m2, b, 0, &m3);
    hyp_profile_node(p, m3, c, 0, &m4);
    add(p, m1, 1, 1, 10);
    add(p, m2, 1, 2, 9);
    add(p, m3, 1, 3, 7);
    add(p, m4, 1, 4, 4);
    s.nfuncs = 3;
    s.index = index3;
    s.names = names3;
    s.files = files3;
    s.first = first3;
    CU_ASSERT_EQUAL_FATAL(hyp_callgrind_write(p, &s, collect, &t), 0);
    /* a -> a: 2 calls, cost 0; the root's call into a keeps a's 60. */
    CU_ASSERT_PTR_NOT_NULL(strstr(t.data, "fn=(1) a\n10 60\ncfi=(1)\ncfn=(1)\ncalls=2 10\n10 0\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t.data, "cfn=(1)\ncalls=1 10\n0 60\n"));
    /* c -> b (7) closes the cycle into b, whose total is 10: the root's
     * call keeps 10 and c -> b gives up 7; b -> c sums to c's total, 9. */
    CU_ASSERT_PTR_NOT_NULL(strstr(t.data, "cfn=(3) c\ncalls=2 30\n20 9\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t.data, "cfn=(2)\ncalls=1 20\n30 0\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t.data, "cfn=(2)\ncalls=1 20\n0 10\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t.data, "summary: 70\n"));
    free(t.data);
    hyp_profile_free(p);
}

/* Nodes with lines: f runs on lines 6 and 8 and calls g from each; the
 * edge f -> g is split over the two sites by their inclusive values,
 * exactly, at values a 64-bit product would overflow. */
static void test_sites_split_by_line_exactly(void) {
    static const hyp_metric_t metrics[] = {
        {"samples", "count", HYP_METRIC_OWN},
        {"cpu", "ns", HYP_METRIC_OWN},
    };
    static const uint32_t index[] = {0, 1};
    static const char *const names[] = {"f", "g", "<program app.py>"};
    static const char *const files[] = {"t.py", "t.py", "app.py"};
    static const uint32_t first[] = {5, 50, 0};
    static const char *const events[] = {"samples", "cpu_ns"};
    static const size_t cost[] = {0, 1}, cum[] = {0, 1};
    hyp_profile_t *p = hyp_profile_new(HYP_MODE_SAMPLING, metrics, 2);
    hyp_thread_t th = {100, 1, 0};
    hyp_callgrind_spec_t s;
    hyp_id_t f, g, n1, n2, n3, n4;
    uint64_t v[2];
    text_t t = {NULL, 0, 0, 0};

    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_string(p, "main", 4, &th.name), 0);
    CU_ASSERT_EQUAL_FATAL(hyp_profile_thread(p, &th, NULL), 0);
    f = func(p, "f", 5);
    g = func(p, "g", 50);
    hyp_profile_node(p, 0, f, 6, &n1);
    hyp_profile_node(p, 0, f, 8, &n2);
    hyp_profile_node(p, n1, g, 51, &n3);
    hyp_profile_node(p, n2, g, 52, &n4);
    v[0] = 1, v[1] = 9223372036854775807ull; /* 2^63 - 1 */
    hyp_profile_add(p, 0, n3, v);
    v[0] = 2, v[1] = 4611686018427387904ull; /* 2^62 */
    hyp_profile_add(p, 0, n4, v);
    v[0] = 1, v[1] = 1;
    hyp_profile_add(p, 0, n1, v);
    memset(&s, 0, sizeof(s));
    s.nfuncs = 2;
    s.index = index;
    s.names = names;
    s.files = files;
    s.first = first;
    s.ncosts = 2;
    s.events = events;
    s.cost = cost;
    s.cum = cum;
    s.calls = HYP_CALLGRIND_NONE; /* each node one call */
    CU_ASSERT_EQUAL_FATAL(hyp_callgrind_write(p, &s, collect, &t), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(t.data, "events: samples cpu_ns\n"
                                          "summary: 4 13835058055282163712\n"));
    /* A line of its own for every frame's line, costs or none. */
    CU_ASSERT_PTR_NOT_NULL(strstr(t.data, "fn=(1) f\n6 1 1\n8 0 0\n"
                                          "cfi=(1)\ncfn=(2) g\ncalls=1 50\n6 1 9223372036854775807\n"
                                          "cfi=(1)\ncfn=(2)\ncalls=1 50\n8 2 4611686018427387904\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t.data, "fn=(2)\n51 1 9223372036854775807\n"
                                          "52 2 4611686018427387904\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t.data, "fl=(2) app.py\nfn=(3) <program app.py>\n0 0 0\n"
                                          "cfi=(1)\ncfn=(1)\ncalls=2 5\n0 4 13835058055282163712\n"));
    free(t.data);
    hyp_profile_free(p);
}

static void test_refused_specs_and_write_errors(void) {
    hyp_profile_t *p = det_profile();
    hyp_id_t a = func(p, "a", 10), b = func(p, "b", 20), n1, n2;
    static const uint32_t bad_index[] = {0, 2};
    static const char *const nl_names[] = {"a", "b\nfn=(9) x", "<program>"};
    static const char *const bad_events[] = {"Wall ns"};
    static const size_t bad_col[] = {3};
    hyp_callgrind_spec_t s = spec2();
    text_t t = {NULL, 0, 0, 0};

    hyp_profile_node(p, 0, a, 0, &n1);
    hyp_profile_node(p, n1, b, 0, &n2);
    add(p, n1, 1, 5, 12);
    add(p, n2, 2, 7, 7);
    CU_ASSERT_EQUAL(hyp_callgrind_write(NULL, &s, collect, &t), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp_callgrind_write(p, NULL, collect, &t), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp_callgrind_write(p, &s, NULL, &t), HYP_EINVAL);
    s.index = bad_index; /* an output function past nfuncs */
    CU_ASSERT_EQUAL(hyp_callgrind_write(p, &s, collect, &t), HYP_EINVAL);
    s = spec2();
    s.names = nl_names; /* a newline would start a line of its own */
    CU_ASSERT_EQUAL(hyp_callgrind_write(p, &s, collect, &t), HYP_EINVAL);
    s = spec2();
    s.events = bad_events;
    CU_ASSERT_EQUAL(hyp_callgrind_write(p, &s, collect, &t), HYP_EINVAL);
    s = spec2();
    s.cost = bad_col; /* no such metric */
    CU_ASSERT_EQUAL(hyp_callgrind_write(p, &s, collect, &t), HYP_EINVAL);
    s = spec2();
    s.header = "pid: 1"; /* without its newline */
    CU_ASSERT_EQUAL(hyp_callgrind_write(p, &s, collect, &t), HYP_EINVAL);
    s = spec2();
    s.ncosts = 0;
    CU_ASSERT_EQUAL(hyp_callgrind_write(p, &s, collect, &t), HYP_EINVAL);
    CU_ASSERT_PTR_NULL(t.data); /* nothing written by a refused spec */
    s = spec2();
    t.fail_after = 1; /* the writer's error comes back */
    CU_ASSERT_EQUAL(hyp_callgrind_write(p, &s, collect, &t), HYP_EIO);
    free(t.data);
    hyp_profile_free(p);
}

static const hyp_test_case_t cases[] = {
    {"the whole file", test_whole_file},
    {"recursion's excess off the cycle", test_recursion_excess_off_the_cycle},
    {"sites split by line, exactly", test_sites_split_by_line_exactly},
    {"refused specs and write errors", test_refused_specs_and_write_errors},
    {NULL, NULL},
};

const hyp_test_suite_t hyp_suite_callgrind = {"callgrind", cases, NULL, NULL};
