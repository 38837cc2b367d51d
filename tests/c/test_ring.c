/* The sample ring (core/ring.c): SPSC order, wraparound, overflow counting. */
#include "harness.h"

#include "hyprof/internal/ring.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>

static void test_ring_capacity(void) {
    hyp__ring_t r;

    CU_ASSERT_EQUAL(hyp__ring_init(&r, 100), 0);
    CU_ASSERT_EQUAL(hyp__ring_capacity(&r), 128);
    hyp__ring_destroy(&r);
    CU_ASSERT_EQUAL(hyp__ring_init(&r, 1), 0);
    CU_ASSERT_EQUAL(hyp__ring_capacity(&r), 64);
    hyp__ring_destroy(&r);
    CU_ASSERT_EQUAL(hyp__ring_init(&r, ((size_t)1 << 32) + 1), HYP_EINVAL);
    CU_ASSERT_PTR_NULL(r.buf);
}

/* Writes records of 5 words through many laps of a 64-word ring, so records
 * straddle the end of the buffer, and reads them back in order. */
static void test_ring_wraparound(void) {
    hyp__ring_t r;
    uint64_t rec[5], pos;
    unsigned i, j, straddled = 0;

    CU_ASSERT_EQUAL_FATAL(hyp__ring_init(&r, 64), 0);
    for (i = 0; i < 1000; i++) {
        for (j = 0; j < 5; j++)
            rec[j] = i * 10u + j;
        CU_ASSERT_EQUAL_FATAL(hyp__ring_write(&r, rec, 5), 0);
        CU_ASSERT_EQUAL_FATAL(hyp__ring_readable(&r, &pos), 5);
        if ((pos & r.mask) + 5 > 64)
            straddled++;
        for (j = 0; j < 5; j++)
            CU_ASSERT_EQUAL(hyp__ring_get(&r, pos + j), i * 10u + j);
        hyp__ring_release(&r, 5);
    }
    CU_ASSERT(straddled > 50);
    CU_ASSERT_EQUAL(hyp__ring_written(&r), 1000);
    CU_ASSERT_EQUAL(hyp__ring_dropped(&r), 0);
    hyp__ring_destroy(&r);
}

/* A full ring refuses whole records and counts each refusal; after the
 * consumer frees room, writing resumes with nothing corrupted. */
static void test_ring_overflow(void) {
    hyp__ring_t r;
    uint64_t rec[10] = {0}, pos;
    unsigned i, ok = 0, refused = 0;

    CU_ASSERT_EQUAL_FATAL(hyp__ring_init(&r, 64), 0);
    for (i = 0; i < 10; i++) {
        rec[0] = i;
        if (hyp__ring_write(&r, rec, 10) == 0)
            ok++;
        else
            refused++;
    }
    CU_ASSERT_EQUAL(ok, 6); /* 60 of 64 words */
    CU_ASSERT_EQUAL(refused, 4);
    CU_ASSERT_EQUAL(hyp__ring_dropped(&r), 4);
    CU_ASSERT_EQUAL(hyp__ring_readable(&r, &pos), 60);
    /* A 4-word record still fits exactly. */
    CU_ASSERT_EQUAL(hyp__ring_write(&r, rec, 4), 0);
    CU_ASSERT_EQUAL(hyp__ring_write(&r, rec, 1), HYP_ELIMIT);
    CU_ASSERT_EQUAL(hyp__ring_dropped(&r), 5);
    hyp__ring_release(&r, 10);
    rec[0] = 99;
    CU_ASSERT_EQUAL(hyp__ring_write(&r, rec, 10), 0);
    CU_ASSERT_EQUAL(hyp__ring_readable(&r, &pos), 64);
    CU_ASSERT_EQUAL(hyp__ring_get(&r, pos), 1);             /* the second record */
    CU_ASSERT_EQUAL(hyp__ring_get(&r, pos + 50 + 4), 99);   /* the newest one */
    hyp__ring_reset(&r);
    CU_ASSERT_EQUAL(hyp__ring_readable(&r, &pos), 0);
    CU_ASSERT_EQUAL(hyp__ring_dropped(&r), 0);
    hyp__ring_destroy(&r);
}

#define HYP_T_RECORDS 200000u

struct hyp_t_spsc {
    hyp__ring_t ring;
    /* 64 bits, like the ring's counter: on a loaded machine the producer can
     * be refused billions of times while the consumer waits for a CPU. */
    uint64_t refused;
};

static void *hyp_t_producer(void *arg) {
    struct hyp_t_spsc *s = arg;
    uint64_t rec[8];
    unsigned i, j, n;

    for (i = 0; i < HYP_T_RECORDS; i++) {
        n = 1 + i % 7;
        rec[0] = ((uint64_t)i << 8) | n;
        for (j = 1; j < n + 1; j++)
            rec[j] = (uint64_t)i * 31u + j;
        while (hyp__ring_write(&s->ring, rec, n + 1) != 0) {
            s->refused++;
            sched_yield();
        }
    }
    return NULL;
}

/* Producer and consumer on two threads: every record arrives whole, in
 * order, and the refusals the producer saw are exactly those counted. */
static void test_ring_spsc_threads(void) {
    struct hyp_t_spsc s;
    pthread_t th;
    uint64_t pos, hdr;
    unsigned expect = 0, j, n, bad = 0;
    size_t avail;

    s.refused = 0;
    CU_ASSERT_EQUAL_FATAL(hyp__ring_init(&s.ring, 256), 0);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, hyp_t_producer, &s), 0);
    while (expect < HYP_T_RECORDS) {
        avail = hyp__ring_readable(&s.ring, &pos);
        while (avail > 0) {
            hdr = hyp__ring_get(&s.ring, pos);
            n = (unsigned)(hdr & 0xff);
            if ((hdr >> 8) != expect || n != 1 + expect % 7 || avail < n + 1u) {
                bad++;
                break;
            }
            for (j = 1; j < n + 1; j++)
                if (hyp__ring_get(&s.ring, pos + j) != (uint64_t)expect * 31u + j)
                    bad++;
            hyp__ring_release(&s.ring, n + 1);
            pos += n + 1;
            avail -= n + 1;
            expect++;
        }
        if (bad)
            break;
    }
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(expect, HYP_T_RECORDS);
    CU_ASSERT_EQUAL(hyp__ring_written(&s.ring), HYP_T_RECORDS);
    CU_ASSERT_EQUAL(hyp__ring_dropped(&s.ring), s.refused);
    hyp__ring_destroy(&s.ring);
}

static const hyp_test_case_t cases[] = {
    {"capacity", test_ring_capacity},
    {"wraparound", test_ring_wraparound},
    {"overflow counted", test_ring_overflow},
    {"spsc across threads", test_ring_spsc_threads},
    {NULL, NULL},
};

const hyp_test_suite_t hyp_suite_ring = {"ring", cases, NULL, NULL};
