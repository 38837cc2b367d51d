/* Suite for core/heap.c: the byte-interval sampler and the live-heap table. */
#include "harness.h"

#include "hyprof/internal/heap.h"
#include "hyprof.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- interval sampler */

static void test_intervals_are_exponential(void) {
    uint64_t rng = hyp__heap_seed(42);
    const double mean = 4096.0;
    const int n = 400000;
    double sum = 0.0;
    int above_mean = 0, above_3mean = 0, i;

    for (i = 0; i < n; i++) {
        int64_t g = hyp__heap_next_interval(&rng, mean);

        CU_ASSERT_FATAL(g >= 1);
        sum += (double)g;
        above_mean += g > mean;
        above_3mean += g > 3 * mean;
    }
    /* Mean within 1% (the standard error is mean / sqrt(n) = 0.16%). */
    CU_ASSERT_DOUBLE_EQUAL(sum / n / mean, 1.0, 0.01);
    /* P(X > T) = e^-1 = 0.3679 and P(X > 3T) = e^-3 = 0.0498 for an exponential. */
    CU_ASSERT_DOUBLE_EQUAL((double)above_mean / n, exp(-1.0), 0.005);
    CU_ASSERT_DOUBLE_EQUAL((double)above_3mean / n, exp(-3.0), 0.003);
}

static void test_seeds_differ(void) {
    uint64_t a = hyp__heap_seed(1), b = hyp__heap_seed(2), z = hyp__heap_seed(0);
    int same = 0, i;

    CU_ASSERT_NOT_EQUAL(z, 0);
    for (i = 0; i < 100; i++)
        same += hyp__heap_next_interval(&a, 1e6) == hyp__heap_next_interval(&b, 1e6);
    CU_ASSERT(same < 5);
}

static void test_interval_bounds(void) {
    uint64_t rng = hyp__heap_seed(7);
    int i;

    CU_ASSERT_EQUAL(hyp__heap_check_interval(HYP_HEAP_INTERVAL_DEFAULT), 0);
    CU_ASSERT_EQUAL(hyp__heap_check_interval(1.0), 0);
    CU_ASSERT_EQUAL(hyp__heap_check_interval(HYP_HEAP_INTERVAL_MAX), 0);
    CU_ASSERT_EQUAL(hyp__heap_check_interval(0.0), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp__heap_check_interval(0.5), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp__heap_check_interval(-1.0), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp__heap_check_interval(NAN), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp__heap_check_interval(INFINITY), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp__heap_check_interval(HYP_HEAP_INTERVAL_MAX * 2), HYP_EINVAL);
    /* The extremes still give usable gaps. */
    for (i = 0; i < 1000; i++) {
        CU_ASSERT(hyp__heap_next_interval(&rng, 1.0) >= 1);
        CU_ASSERT(hyp__heap_next_interval(&rng, HYP_HEAP_INTERVAL_MAX) >= 1);
    }
}

static void test_weight_formula(void) {
    const double t = 524288.0;

    CU_ASSERT_EQUAL(hyp__heap_weight(0, t), 0);
    /* A small block stands for about one interval: s / (1 - e^(-s/T)) -> T + s/2. */
    CU_ASSERT_EQUAL(hyp__heap_weight(8, t), 524292);
    CU_ASSERT_EQUAL(hyp__heap_weight(1, t), 524289); /* T + 1/2, rounded up */
    /* s = T: T / (1 - 1/e) = 1.5819767 T. */
    CU_ASSERT_EQUAL(hyp__heap_weight(524288, t), (uint64_t)llround(524288.0 / (1.0 - exp(-1.0))));
    /* A block far larger than T is always sampled and weighs its size. */
    CU_ASSERT_EQUAL(hyp__heap_weight(UINT64_C(1) << 40, t), UINT64_C(1) << 40);
    CU_ASSERT_EQUAL(hyp__heap_weight(100, 1.0), 100);
}

/* Drives the fast path exactly as the allocator hook does, over a workload
 * whose true totals are known, and checks the estimates. */
static void estimate(const size_t *sizes, size_t nsizes, size_t rounds, double mean,
                     double *est_out, double *true_out, uint64_t *samples_out) {
    uint64_t rng = hyp__heap_seed(12345);
    int64_t countdown = hyp__heap_next_interval(&rng, mean);
    double est = 0.0, truth = 0.0;
    uint64_t samples = 0;
    size_t r, i;

    for (r = 0; r < rounds; r++) {
        for (i = 0; i < nsizes; i++) {
            truth += (double)sizes[i];
            if (hyp__heap_tick(&countdown, sizes[i])) {
                est += (double)hyp__heap_weight(sizes[i], mean);
                samples++;
                countdown = hyp__heap_next_interval(&rng, mean);
            }
        }
    }
    *est_out = est;
    *true_out = truth;
    *samples_out = samples;
}

static void test_estimate_is_unbiased(void) {
    /* Small objects, medium buffers and blocks larger than the interval. */
    static const size_t mix[] = {24, 32, 56, 64, 64, 100, 1000, 4096, 70000, 1 << 20};
    static const size_t small[] = {16, 24, 32, 48};
    double est, truth;
    uint64_t samples;

    estimate(mix, ARRAY_SIZE(mix), 20000, 65536.0, &est, &truth, &samples);
    CU_ASSERT(samples > 1000);
    CU_ASSERT_DOUBLE_EQUAL(est / truth, 1.0, 0.03);
    /* Only small blocks: each sample stands for about one interval. */
    estimate(small, ARRAY_SIZE(small), 2000000, 8192.0, &est, &truth, &samples);
    CU_ASSERT_DOUBLE_EQUAL(est / truth, 1.0, 0.03);
    CU_ASSERT_DOUBLE_EQUAL((double)samples, truth / 8192.0, truth / 8192.0 * 0.03);
}

static void test_tick_crosses_once_per_gap(void) {
    int64_t countdown = 100;

    CU_ASSERT_FALSE(hyp__heap_tick(&countdown, 60));
    CU_ASSERT_FALSE(hyp__heap_tick(&countdown, 39));
    CU_ASSERT_TRUE(hyp__heap_tick(&countdown, 1)); /* the 100th byte */
    countdown = 10;
    CU_ASSERT_TRUE(hyp__heap_tick(&countdown, 1000));
}

/* ---------------------------------------------------------------- live-heap table */

static void test_insert_find_remove(void) {
    hyp__heap_t *h = malloc(sizeof(*h));
    hyp__live_t out;
    uintptr_t p;

    hyp__heap_init(h);
    CU_ASSERT_PTR_NULL(hyp__heap_find(h, 0x1000));
    CU_ASSERT_EQUAL(hyp__heap_remove(h, 0x1000, &out), 0);
    CU_ASSERT_EQUAL(hyp__heap_insert(h, 0, 1, 1, 1), HYP_EINVAL);
    for (p = 1; p <= 10000; p++)
        CU_ASSERT_EQUAL_FATAL(hyp__heap_insert(h, p * 16, p, p * 10, p + 7), 0);
    CU_ASSERT_EQUAL(h->count, 10000);
    CU_ASSERT_EQUAL(h->bytes, 10u * 10000u * 10001u / 2u);
    CU_ASSERT_EQUAL(hyp__heap_find(h, 5000 * 16)->tag, 5007);
    /* Free the odd ones. */
    for (p = 1; p <= 10000; p += 2) {
        CU_ASSERT_EQUAL(hyp__heap_remove(h, p * 16, &out), 1);
        CU_ASSERT_EQUAL(out.size, p);
        CU_ASSERT_EQUAL(out.weight, p * 10);
    }
    CU_ASSERT_EQUAL(h->count, 5000);
    CU_ASSERT_EQUAL(h->bytes, 10u * 2u * (5000u * 5001u / 2u));
    for (p = 1; p <= 10000; p++) {
        const hyp__live_t *e = hyp__heap_find(h, p * 16);

        if (p % 2) {
            CU_ASSERT_PTR_NULL(e);
        } else {
            CU_ASSERT_PTR_NOT_NULL_FATAL(e);
            CU_ASSERT_EQUAL(e->tag, p + 7);
        }
    }
    /* A second insert at a live address replaces the entry (realloc in place). */
    CU_ASSERT_EQUAL(hyp__heap_insert(h, 2 * 16, 99, 1000, 3), 0);
    CU_ASSERT_EQUAL(h->count, 5000);
    CU_ASSERT_EQUAL(h->bytes, 10u * 2u * (5000u * 5001u / 2u) - 20u + 1000u);
    CU_ASSERT_EQUAL(hyp__heap_find(h, 2 * 16)->size, 99);
    CU_ASSERT_EQUAL(hyp__heap_remove(h, 2 * 16, NULL), 1);
    CU_ASSERT_EQUAL(hyp__heap_remove(h, 2 * 16, NULL), 0);
    hyp__heap_destroy(h);
    CU_ASSERT_EQUAL(h->count, 0);
    CU_ASSERT_PTR_NULL(hyp__heap_find(h, 4 * 16));
    free(h);
}

/* Many addresses on one filter counter: the counter saturates and stays set,
 * yet every address is still found, removed and then absent. */
static void test_filter_saturation(void) {
    hyp__heap_t *h = malloc(sizeof(*h));
    uintptr_t ptrs[400];
    size_t n = 0, i, pos = 0;
    uintptr_t p;

    hyp__heap_init(h);
    for (p = 8; n < ARRAY_SIZE(ptrs); p += 8)
        if (hyp__heap_filter_index(p) == 5)
            ptrs[n++] = p;
    for (i = 0; i < n; i++)
        CU_ASSERT_EQUAL_FATAL(hyp__heap_insert(h, ptrs[i], 8, 8, i), 0);
    CU_ASSERT_EQUAL(h->filter[5], UINT8_MAX);
    for (i = 0; hyp__heap_next(h, &pos) != NULL; i++)
        ;
    CU_ASSERT_EQUAL(i, n);
    for (i = 0; i < n; i++)
        CU_ASSERT_EQUAL(hyp__heap_remove(h, ptrs[i], NULL), 1);
    for (i = 0; i < n; i++)
        CU_ASSERT_PTR_NULL(hyp__heap_find(h, ptrs[i]));
    CU_ASSERT_EQUAL(h->count, 0);
    CU_ASSERT_EQUAL(h->bytes, 0);
    CU_ASSERT_EQUAL(h->filter[5], UINT8_MAX);
    hyp__heap_destroy(h);
    free(h);
}

/* Random inserts and removes against a plain array as the reference, with
 * clustered addresses so that probe runs wrap and deletions shift. */
static void test_random_against_reference(void) {
    enum { N = 3000 };
    hyp__heap_t *h = malloc(sizeof(*h));
    static uint64_t ref[N]; /* weight per address slot, 0 when absent */
    uint64_t rng = hyp__heap_seed(99), bytes = 0;
    size_t live = 0, i, op;

    memset(ref, 0, sizeof(ref));
    hyp__heap_init(h);
    for (op = 0; op < 200000; op++) {
        uint64_t r = (uint64_t)hyp__heap_next_interval(&rng, 1e9);
        size_t k = (size_t)(r % N);
        uintptr_t ptr = 0x10000 + k * 16;

        if (ref[k] == 0) {
            uint64_t w = 1 + r % 1000;

            CU_ASSERT_EQUAL_FATAL(hyp__heap_insert(h, ptr, w, w, k), 0);
            ref[k] = w;
            bytes += w;
            live++;
        } else {
            hyp__live_t out;

            CU_ASSERT_EQUAL_FATAL(hyp__heap_remove(h, ptr, &out), 1);
            CU_ASSERT_EQUAL(out.weight, ref[k]);
            CU_ASSERT_EQUAL(out.tag, k);
            bytes -= ref[k];
            ref[k] = 0;
            live--;
        }
    }
    CU_ASSERT_EQUAL(h->count, live);
    CU_ASSERT_EQUAL(h->bytes, bytes);
    for (i = 0; i < N; i++) {
        const hyp__live_t *e = hyp__heap_find(h, 0x10000 + i * 16);

        if (ref[i] == 0) {
            CU_ASSERT_PTR_NULL(e);
        } else {
            CU_ASSERT(e != NULL && e->weight == ref[i]);
        }
    }
    hyp__heap_destroy(h);
    free(h);
}

static int fail_after;
static void *failing_malloc(size_t n) {
    return fail_after-- > 0 ? malloc(n) : NULL;
}
static void *failing_calloc(size_t c, size_t n) {
    return fail_after-- > 0 ? calloc(c, n) : NULL;
}
static void *failing_realloc(void *p, size_t n) {
    return fail_after-- > 0 ? realloc(p, n) : NULL;
}

static void test_out_of_memory_leaves_table_unchanged(void) {
    hyp__heap_t *h = malloc(sizeof(*h));
    uintptr_t p;

    hyp__heap_init(h);
    CU_ASSERT_EQUAL(
        hyp_replace_allocator(failing_malloc, failing_realloc, failing_calloc, free), 0);
    fail_after = 1; /* the first table, then nothing */
    for (p = 1; p <= 32; p++)
        CU_ASSERT_EQUAL_FATAL(hyp__heap_insert(h, p * 8, 1, 1, p), 0);
    CU_ASSERT_EQUAL(hyp__heap_insert(h, 33 * 8, 1, 1, 33), HYP_ENOMEM);
    CU_ASSERT_EQUAL(h->count, 32);
    CU_ASSERT_EQUAL(h->bytes, 32);
    CU_ASSERT_PTR_NULL(hyp__heap_find(h, 33 * 8));
    CU_ASSERT_PTR_NOT_NULL(hyp__heap_find(h, 32 * 8));
    CU_ASSERT_EQUAL(hyp_replace_allocator(malloc, realloc, calloc, free), 0);
    CU_ASSERT_EQUAL(hyp__heap_insert(h, 33 * 8, 1, 1, 33), 0);
    CU_ASSERT_EQUAL(h->count, 33);
    hyp__heap_destroy(h);
    free(h);
}

static const hyp_test_case_t cases[] = {
    {"intervals are exponential", test_intervals_are_exponential},
    {"seeds differ", test_seeds_differ},
    {"interval bounds", test_interval_bounds},
    {"weight formula", test_weight_formula},
    {"estimate is unbiased", test_estimate_is_unbiased},
    {"tick crosses once per gap", test_tick_crosses_once_per_gap},
    {"insert, find, remove", test_insert_find_remove},
    {"filter saturation", test_filter_saturation},
    {"random against reference", test_random_against_reference},
    {"out of memory leaves table unchanged", test_out_of_memory_leaves_table_unchanged},
    {NULL, NULL},
};

const hyp_test_suite_t hyp_suite_heap = {"heap", cases, NULL, NULL};
