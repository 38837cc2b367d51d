/* Suite for core/clock.c: the wall clock's calibration and the cheap thread
 * CPU clock against the system call it replaces. */
#include "harness.h"

#include "hyprof.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int init_suite(void) {
    return hyp_clock_init(0) == 0 ? 0 : -1;
}

static void sleep_ns(long ns) {
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    nanosleep(&ts, NULL);
}

static void spin_cpu_ns(uint64_t ns) {
    uint64_t end = hyp_clock_thread_cpu_ns() + ns;
    volatile uint64_t x = 0;

    while (hyp_clock_thread_cpu_ns() < end)
        for (int i = 0; i < 1000; i++)
            x += (uint64_t)i;
}

static void test_wall_matches_monotonic(void) {
    uint64_t n0 = hyp_clock_monotonic_ns(), t0 = hyp_clock_ticks();
    uint64_t n1, t1;
    double wall_ns, ratio;

    sleep_ns(60 * 1000000L);
    spin_cpu_ns(20 * 1000000ull);
    n1 = hyp_clock_monotonic_ns();
    t1 = hyp_clock_ticks();
    wall_ns = (double)(t1 - t0) * hyp_clock_ns_per_tick();
    ratio = wall_ns / (double)(n1 - n0);
    CU_ASSERT(ratio > 0.999 && ratio < 1.001);
    CU_ASSERT_STRING_EQUAL(hyp_clock_wall_name(),
                           hyp_clock_wall_source() == HYP_WALL_TSC ? "tsc" : "monotonic");
}

static void test_init_is_idempotent(void) {
    CU_ASSERT_EQUAL(hyp_clock_init(0), 0);
    if (hyp_clock_wall_source() == HYP_WALL_TSC)
        CU_ASSERT_EQUAL(hyp_clock_init(HYP_CLOCK_FORCE_MONOTONIC), HYP_EBUSY);
}

static volatile int hogs_stop;

static void *hog(void *arg) {
    volatile uint64_t x = 0;
    (void)arg;
    while (!hogs_stop)
        x++;
    return NULL;
}

/* Reads the clock the way the profile hook does (many reads between
 * resyncs) through sleeps, spins, yields and preemption by busy threads on
 * every core, and checks the total against the system call. */
static void check_cpu_clock(int flags, const char *label) {
    hyp_cpu_clock_t c;
    pthread_t hogs[3];
    uint64_t wall, c0, c1, s0, s1, prev;
    double ours, ref, err;
    int perf_err = 0, i, monotonic = 1;
    long nhogs = sysconf(_SC_NPROCESSORS_ONLN) + 1;

    if (nhogs > 3)
        nhogs = 3;
    CU_ASSERT_EQUAL_FATAL(hyp_cpu_clock_init(&c, flags, &perf_err), 0);
    hogs_stop = 0;
    for (i = 0; i < nhogs; i++)
        pthread_create(&hogs[i], NULL, hog, NULL);

    s0 = hyp_clock_thread_cpu_ns();
    c0 = prev = hyp_cpu_clock_read(&c, &wall);
    for (i = 0; i < 40; i++) {
        uint64_t end = hyp_clock_monotonic_ns() + 3000000ull;
        while (hyp_clock_monotonic_ns() < end) {
            uint64_t v = hyp_cpu_clock_read(&c, &wall);
            if (v < prev)
                monotonic = 0;
            prev = v;
        }
        sleep_ns(1000000L);
        sched_yield();
    }
    c1 = hyp_cpu_clock_read(&c, &wall);
    s1 = hyp_clock_thread_cpu_ns();

    hogs_stop = 1;
    for (i = 0; i < nhogs; i++)
        pthread_join(hogs[i], NULL);

    ours = (double)(c1 - c0) * hyp_clock_ns_per_tick();
    ref = (double)(s1 - s0);
    err = (ours - ref) / ref;
    printf("\n    %s (%s): ours %.3f ms, CLOCK_THREAD_CPUTIME_ID %.3f ms, error %+.3f%%, "
           "%llu fast reads, %llu resyncs ",
           label, c.source == HYP_CPU_PERF_MMAP ? "perf page" : "system call", ours / 1e6,
           ref / 1e6, err * 100, (unsigned long long)c.reads, (unsigned long long)c.resyncs);
    CU_ASSERT(monotonic);
    CU_ASSERT(err > -0.02 && err < 0.02);
    CU_ASSERT(ref > 20e6); /* the spins ran */
    if (c.source == HYP_CPU_PERF_MMAP) {
        /* The cheap path must be the common one, and the context switches
         * must have been noticed. */
        CU_ASSERT(c.reads > 10 * c.resyncs);
        CU_ASSERT(c.resyncs >= 40);
    }
    hyp_cpu_clock_destroy(&c);
    hyp_cpu_clock_destroy(&c);
    CU_ASSERT_PTR_NULL(c.page);
}

static void test_cpu_clock_perf_page(void) {
    hyp_cpu_clock_t c;
    int perf_err = 0;

    hyp_cpu_clock_init(&c, 0, &perf_err);
    hyp_cpu_clock_destroy(&c);
    if (c.source != HYP_CPU_PERF_MMAP && perf_err != 0)
        printf("\n    perf_event_open refused (%s): checking the fallback only ",
               hyp_strerror(perf_err));
    check_cpu_clock(0, "default");
}

static void test_cpu_clock_syscall_fallback(void) {
    hyp_cpu_clock_t c;
    int perf_err = 0;

    CU_ASSERT_EQUAL(hyp_cpu_clock_init(&c, HYP_CPU_CLOCK_FORCE_SYSCALL, &perf_err), 0);
    CU_ASSERT_EQUAL(c.source, HYP_CPU_SYSCALL);
    CU_ASSERT_EQUAL(perf_err, HYP_ENOTSUP);
    hyp_cpu_clock_destroy(&c);
    check_cpu_clock(HYP_CPU_CLOCK_FORCE_SYSCALL, "forced fallback");
}

static void test_cpu_clock_rejects_null(void) {
    CU_ASSERT_EQUAL(hyp_cpu_clock_init(NULL, 0, NULL), HYP_EINVAL);
}

/* A sleeping thread uses no CPU: the clock must not count the sleep as CPU
 * time (the seqlock word must have moved). What the kernel charged the
 * thread over the same interval is the reference: on a loaded virtual
 * machine it can be milliseconds (time the host took from the vCPU while the
 * thread ran is charged to it), which a fixed bound would count as the
 * clock's error. */
static void test_cpu_clock_excludes_sleep(void) {
    hyp_cpu_clock_t c;
    uint64_t wall0, wall1, c0, c1, k0, k1;
    double cpu_ns, wall_ns, kernel_ns;

    hyp_cpu_clock_init(&c, 0, NULL);
    k0 = hyp_clock_thread_cpu_ns();
    c0 = hyp_cpu_clock_read(&c, &wall0);
    sleep_ns(50 * 1000000L);
    c1 = hyp_cpu_clock_read(&c, &wall1);
    k1 = hyp_clock_thread_cpu_ns();
    cpu_ns = (double)(c1 - c0) * hyp_clock_ns_per_tick();
    wall_ns = (double)(wall1 - wall0) * hyp_clock_ns_per_tick();
    kernel_ns = (double)(k1 - k0);
    CU_ASSERT(wall_ns >= 49e6);
    /* The sleep is not counted: at most what the kernel charged, plus the
     * fast path's lead (its span) if the first read ran ahead. */
    CU_ASSERT(cpu_ns <= kernel_ns + (double)HYP_CPU_CLOCK_SPAN_NS);
    CU_ASSERT(cpu_ns < wall_ns / 2);
    if (cpu_ns > kernel_ns + (double)HYP_CPU_CLOCK_SPAN_NS || cpu_ns >= wall_ns / 2)
        printf("\n    clock %.3f ms, kernel %.3f ms, wall %.3f ms ", cpu_ns / 1e6,
               kernel_ns / 1e6, wall_ns / 1e6);
    hyp_cpu_clock_destroy(&c);
}

/* Time the fast path counts that the kernel does not charge to the thread
 * (stolen by a hypervisor, spent in interrupts) must not pile up: a lead is
 * given back at the next resync, and a resync comes at least once a span even
 * in a thread that is never switched out. The lead is planted by hand, as
 * steal cannot be caused from here. */
static void test_cpu_clock_gives_back_a_lead(void) {
    hyp_cpu_clock_t c;
    uint64_t wall, a = 0, b = 0, synced = 0, lead, resyncs = 0, s0, s1, c0, c1;
    double ns_per_tick = hyp_clock_ns_per_tick();

    hyp_cpu_clock_init(&c, 0, NULL);
    if (c.source != HYP_CPU_PERF_MMAP) {
        printf("\n    no perf page here (the system call has no lead to give back) ");
        hyp_cpu_clock_destroy(&c);
        return;
    }
    /* A thread that spins for ten spans resyncs at least once a span. */
    resyncs = c.resyncs;
    s0 = hyp_clock_thread_cpu_ns();
    do {
        hyp_cpu_clock_read(&c, &wall);
    } while (hyp_clock_thread_cpu_ns() - s0 < 10 * HYP_CPU_CLOCK_SPAN_NS);
    CU_ASSERT(c.resyncs - resyncs >= 9);

    /* 20 ms counted that the thread did not run, just after a resync (again
     * if a switch came between the two reads and resynced the lead away). */
    lead = (uint64_t)(20e6 / ns_per_tick);
    for (int tries = 0; tries < 100; tries++) {
        c.seen = *c.lock + 1;
        a = hyp_cpu_clock_read(&c, &wall);
        resyncs = c.resyncs;
        synced = c.sync_cpu; /* a may be above it: the clock never goes back */
        c.sync_cpu += lead;
        b = hyp_cpu_clock_read(&c, &wall);
        if (c.resyncs == resyncs)
            break;
    }
    CU_ASSERT_EQUAL_FATAL(c.resyncs, resyncs);
    CU_ASSERT(b >= synced + lead && b > a);
    /* The next resync finds the system call behind: the clock holds still. */
    c.seen = *c.lock + 1;
    CU_ASSERT_EQUAL(hyp_cpu_clock_read(&c, &wall), b);
    /* Once the system call has passed it, the clock follows the system call
     * again, 20 ms behind where the old fast path would have kept it. */
    spin_cpu_ns(30 * 1000000ull);
    s0 = hyp_clock_thread_cpu_ns();
    c0 = hyp_cpu_clock_read(&c, &wall);
    spin_cpu_ns(10 * 1000000ull);
    c1 = hyp_cpu_clock_read(&c, &wall);
    s1 = hyp_clock_thread_cpu_ns();
    CU_ASSERT(c1 > c0);
    CU_ASSERT((double)(c1 - b) * ns_per_tick > 15e6);
    CU_ASSERT((double)(c1 - b) * ns_per_tick < 30e6);
    CU_ASSERT((double)(c1 - c0) * ns_per_tick <= (double)(s1 - s0) * 1.02 + 1e5);
    hyp_cpu_clock_destroy(&c);
}

/* perf mappings are not copied into a forked child, so the child's own page
 * can land at the address of one of the parent's: destroying the parent's
 * copy there must not unmap the child's page. */
static void test_cpu_clock_destroy_in_forked_child(void) {
    hyp_cpu_clock_t parent;
    pid_t pid;
    int status = -1;

    hyp_cpu_clock_init(&parent, 0, NULL);
    if (parent.source != HYP_CPU_PERF_MMAP) {
        printf("\n    no perf page (perf_event_open refused): nothing to check ");
        hyp_cpu_clock_destroy(&parent);
        return;
    }
    pid = fork();
    if (pid == 0) {
        hyp_cpu_clock_t mine;
        uint64_t wall, a, b;

        hyp_cpu_clock_init(&mine, 0, NULL);
        hyp_cpu_clock_destroy(&parent);
        a = hyp_cpu_clock_read(&mine, &wall); /* faults if the page went */
        spin_cpu_ns(2000000ull);
        b = hyp_cpu_clock_read(&mine, &wall);
        hyp_cpu_clock_destroy(&mine);
        _exit(b > a ? 0 : 3);
    }
    CU_ASSERT_FATAL(pid > 0);
    waitpid(pid, &status, 0);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    hyp_cpu_clock_destroy(&parent);
}

static volatile int spinner_go = 1;
static volatile pid_t spinner_tid;

static void *spinner(void *arg) {
    (void)arg;
    spinner_tid = (pid_t)syscall(SYS_gettid);
    spin_cpu_ns(30 * 1000000ull);
    while (spinner_go)
        sched_yield();
    return NULL;
}

static void test_tid_cpu_clock(void) {
    uint64_t a = hyp_clock_thread_cpu_ns(), b = hyp_clock_tid_cpu_ns(0);
    uint64_t c = hyp_clock_tid_cpu_ns((pid_t)syscall(SYS_gettid)), d = hyp_clock_thread_cpu_ns();
    pthread_t t;

    /* the calling thread's, by 0 or by its id */
    CU_ASSERT(a <= b && b <= c && c <= d);
    CU_ASSERT_EQUAL(hyp_clock_thread_cpu_id(0), CLOCK_THREAD_CPUTIME_ID);
    /* another thread's, read from here */
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, spinner, NULL), 0);
    while (spinner_tid == 0)
        sched_yield();
    /* Read from here until it has run 30 ms: how soon depends on the load
     * of the machine, not on the clock, so the wait is long. */
    {
        uint64_t deadline = hyp_clock_monotonic_ns() + 20000000000ull, seen = 0, again;

        while ((seen = hyp_clock_tid_cpu_ns(spinner_tid)) < 30 * 1000000ull &&
               hyp_clock_monotonic_ns() < deadline)
            sleep_ns(5 * 1000000L);
        CU_ASSERT(seen >= 30 * 1000000ull);
        again = hyp_clock_tid_cpu_ns(spinner_tid);
        CU_ASSERT(again >= seen);
    }
    spinner_go = 0;
    pthread_join(t, NULL);
    /* above PID_MAX_LIMIT (2^22): no such thread */
    CU_ASSERT_EQUAL(hyp_clock_tid_cpu_ns((pid_t)(1 << 22) + 1), 0);
}

static const hyp_test_case_t cases[] = {
    {"wall ticks match CLOCK_MONOTONIC within 0.1%", test_wall_matches_monotonic},
    {"init is idempotent", test_init_is_idempotent},
    {"CPU clock within 2% of the syscall (perf page)", test_cpu_clock_perf_page},
    {"CPU clock within 2% of the syscall (fallback)", test_cpu_clock_syscall_fallback},
    {"CPU clock excludes sleeps", test_cpu_clock_excludes_sleep},
    {"CPU clock gives back time it counted ahead", test_cpu_clock_gives_back_a_lead},
    {"CPU clock init rejects NULL", test_cpu_clock_rejects_null},
    {"destroy in a forked child leaves its page", test_cpu_clock_destroy_in_forked_child},
    {"CPU time of a thread by its id", test_tid_cpu_clock},
    {NULL, NULL},
};

const hyp_test_suite_t hyp_suite_clock = {"clock", cases, init_suite, NULL};
