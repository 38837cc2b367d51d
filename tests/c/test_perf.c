/* perf_event set-up (core/perf.c) and the timer triggers (core/timer.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* F_SETSIG, F_SETOWN_EX, SIGEV_THREAD_ID */
#endif
#include "harness.h"

#include "hyprof/perf.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void test_encode_software(void) {
    hyp_perf_event_t ev = {.size = sizeof(ev)};
    char msg[512] = "";

    CU_ASSERT_EQUAL_FATAL(hyp_perf_encode("cpu-clock", &ev, msg, sizeof(msg)), 0);
    CU_ASSERT_EQUAL(ev.attr.type, PERF_TYPE_SOFTWARE);
    CU_ASSERT_EQUAL(ev.attr.config, PERF_COUNT_SW_CPU_CLOCK);
    CU_ASSERT(strncmp(ev.name, "perf::PERF_COUNT_SW_CPU_CLOCK", 29) == 0);
    CU_ASSERT_STRING_EQUAL(ev.pmu, "perf");
    CU_ASSERT(ev.is_clock);
    CU_ASSERT(!ev.is_hardware);
    CU_ASSERT_EQUAL(hyp_perf_encode("task-clock", &ev, msg, sizeof(msg)), 0);
    CU_ASSERT_EQUAL(ev.attr.config, PERF_COUNT_SW_TASK_CLOCK);
    CU_ASSERT(ev.is_clock);
    CU_ASSERT_EQUAL(hyp_perf_encode("page-faults", &ev, msg, sizeof(msg)), 0);
    CU_ASSERT(!ev.is_clock);
    CU_ASSERT(!ev.is_hardware);
}

static void test_encode_hardware_names(void) {
    hyp_perf_event_t ev = {.size = sizeof(ev)};
    char msg[512] = "";

    /* Generic hardware events encode even without a PMU; opening them is
     * what fails (see the hardware test program). */
    CU_ASSERT_EQUAL_FATAL(hyp_perf_encode("cycles", &ev, msg, sizeof(msg)), 0);
    CU_ASSERT(ev.is_hardware);
    CU_ASSERT(strstr(ev.name, "CYCLES") != NULL);
    CU_ASSERT_EQUAL(hyp_perf_encode("instructions", &ev, msg, sizeof(msg)), 0);
    CU_ASSERT_EQUAL(ev.attr.config, PERF_COUNT_HW_INSTRUCTIONS);
}

static void test_encode_errors(void) {
    hyp_perf_event_t ev = {.size = sizeof(ev)};
    char msg[512] = "";

    CU_ASSERT_EQUAL(hyp_perf_encode("no-such-event-xyz", &ev, msg, sizeof(msg)), HYP_ENOENT);
    CU_ASSERT(strstr(msg, "unknown event 'no-such-event-xyz'") != NULL);
    CU_ASSERT(strstr(msg, "cpu-clock") != NULL);
    CU_ASSERT_EQUAL(hyp_perf_encode("", &ev, msg, sizeof(msg)), HYP_EINVAL);
    CU_ASSERT(strstr(msg, "empty event name") != NULL);
    CU_ASSERT_EQUAL(hyp_perf_encode("cpu-clock:nosuchmod=1", &ev, msg, sizeof(msg)), HYP_EINVAL);
    CU_ASSERT(strstr(msg, "cpu-clock:nosuchmod=1") != NULL);
    ev.size = 1;
    CU_ASSERT_EQUAL(hyp_perf_encode("cpu-clock", &ev, msg, sizeof(msg)), HYP_EINVAL);
}

static void test_errno_messages(void) {
    char msg[1024], want[64];
    int level = hyp_perf_paranoid();

    CU_ASSERT_EQUAL(hyp_perf_explain_errno(ENOENT, "cycles", msg, sizeof(msg)), HYP_ENOENT);
    CU_ASSERT(strstr(msg, "'cycles'") != NULL);
    CU_ASSERT(strstr(msg, "no hardware PMU") != NULL);
    CU_ASSERT(strstr(msg, "cpu-clock") != NULL);
    CU_ASSERT_EQUAL(hyp_perf_explain_errno(EACCES, "cycles", msg, sizeof(msg)), HYP_EPERM);
    CU_ASSERT_NOT_EQUAL(level, INT32_MIN);
    snprintf(want, sizeof(want), "perf_event_paranoid is %d", level);
    CU_ASSERT(strstr(msg, want) != NULL);
    CU_ASSERT_EQUAL(hyp_perf_explain_errno(ENOSYS, "cpu-clock", msg, sizeof(msg)), HYP_ENOTSUP);
    CU_ASSERT(strstr(msg, "seccomp") != NULL);
    CU_ASSERT_EQUAL(hyp_perf_explain_errno(EMFILE, "cpu-clock", msg, sizeof(msg)), HYP_ELIMIT);
    CU_ASSERT_EQUAL(hyp_perf_explain_errno(EOPNOTSUPP, "x", msg, sizeof(msg)), HYP_ENOTSUP);
    CU_ASSERT_EQUAL(hyp_perf_explain_errno(EINVAL, "x", msg, sizeof(msg)), HYP_EINVAL);
}

/* ---------------------------------------------------------- signal delivery */

static _Atomic int hits;
static _Atomic int wrong_fd;
static _Atomic int wrong_thread;
static volatile int expect_fd = -1;
static volatile pid_t expect_tid;

static void on_overflow(int sig, siginfo_t *si, void *uc) {
    int saved = errno;

    (void)sig;
    (void)uc;
    if (si->si_fd != expect_fd)
        atomic_fetch_add(&wrong_fd, 1);
    if ((pid_t)syscall(SYS_gettid) != expect_tid)
        atomic_fetch_add(&wrong_thread, 1);
    atomic_fetch_add(&hits, 1);
    errno = saved;
}

static double thread_cpu_s(void) {
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void spin_cpu(double seconds) {
    double end = thread_cpu_s() + seconds;
    volatile unsigned long x = 0;

    while (thread_cpu_s() < end)
        for (int i = 0; i < 10000; i++)
            x += (unsigned long)i;
}

static struct sigaction install(int signo) {
    struct sigaction sa, old;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_overflow;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(signo, &sa, &old);
    return old;
}

/* A 1 ms cpu-clock event on this thread delivers about one signal per
 * millisecond of CPU, each carrying its descriptor, to this thread, and its
 * counter reads the CPU nanoseconds spent. */
static void test_software_event_signals(void) {
    hyp_perf_event_t ev = {.size = sizeof(ev)};
    hyp_perf_config_t cfg = {.size = sizeof(cfg), .period = 1000000, .signo = SIGRTMIN + 3};
    struct sigaction old = install(SIGRTMIN + 3);
    uint64_t count = 0;
    char msg[512] = "";
    int fd = -1, ret;

    CU_ASSERT_EQUAL_FATAL(hyp_perf_encode("cpu-clock", &ev, msg, sizeof(msg)), 0);
    atomic_store(&hits, 0);
    atomic_store(&wrong_fd, 0);
    atomic_store(&wrong_thread, 0);
    expect_tid = (pid_t)syscall(SYS_gettid);
    ret = hyp_perf_open(&ev, &cfg, 0, &fd, msg, sizeof(msg));
    if (ret != 0)
        fprintf(stderr, "\n  cpu-clock did not open: %s\n", msg);
    CU_ASSERT_EQUAL_FATAL(ret, 0);
    expect_fd = fd;
    spin_cpu(0.2);
    CU_ASSERT_EQUAL(hyp_perf_read(fd, &count), 0);
    close(fd);
    sigaction(SIGRTMIN + 3, &old, NULL);
    /* 200 ms of CPU at 1 ms: about 200 signals (queued real-time signals). */
    CU_ASSERT(atomic_load(&hits) >= 150 && atomic_load(&hits) <= 230);
    CU_ASSERT_EQUAL(atomic_load(&wrong_fd), 0);
    CU_ASSERT_EQUAL(atomic_load(&wrong_thread), 0);
    CU_ASSERT(count >= 180000000u && count <= 260000000u);
}

struct spinner {
    _Atomic pid_t tid;
    _Atomic int stop;
    _Atomic long cpu_us; /* the spinner's own CPU time */
};

static void *spinner_main(void *arg) {
    struct spinner *s = arg;

    double t0 = thread_cpu_s();

    atomic_store(&s->tid, (pid_t)syscall(SYS_gettid));
    while (!atomic_load(&s->stop)) {
        spin_cpu(0.01);
        atomic_store(&s->cpu_us, (long)((thread_cpu_s() - t0) * 1e6));
    }
    return NULL;
}

/* An event opened for another thread signals that thread only. */
static void test_software_event_other_thread(void) {
    hyp_perf_event_t ev = {.size = sizeof(ev)};
    hyp_perf_config_t cfg = {.size = sizeof(cfg), .period = 1000000, .signo = SIGRTMIN + 3};
    struct sigaction old = install(SIGRTMIN + 3);
    struct spinner s = {0, 0, 0};
    long base;
    pthread_t th;
    char msg[512] = "";
    int fd = -1;

    CU_ASSERT_EQUAL_FATAL(hyp_perf_encode("task-clock", &ev, msg, sizeof(msg)), 0);
    atomic_store(&hits, 0);
    atomic_store(&wrong_thread, 0);
    atomic_store(&wrong_fd, 0);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, spinner_main, &s), 0);
    while (atomic_load(&s.tid) == 0)
        usleep(1000);
    expect_tid = atomic_load(&s.tid);
    CU_ASSERT_EQUAL(hyp_perf_open(&ev, &cfg, expect_tid, &fd, msg, sizeof(msg)), 0);
    expect_fd = fd;
    /* 150 ms of the spinner's CPU (a loaded machine gives it less than the
     * wall time). */
    base = atomic_load(&s.cpu_us);
    while (atomic_load(&s.cpu_us) < base + 150000)
        usleep(5000);
    close(fd);
    atomic_store(&s.stop, 1);
    pthread_join(th, NULL);
    sigaction(SIGRTMIN + 3, &old, NULL);
    CU_ASSERT(atomic_load(&hits) >= 100);
    CU_ASSERT_EQUAL(atomic_load(&wrong_thread), 0);
    CU_ASSERT_EQUAL(atomic_load(&wrong_fd), 0);
}

static void test_open_bad_config(void) {
    hyp_perf_event_t ev = {.size = sizeof(ev)};
    hyp_perf_config_t cfg = {.size = sizeof(cfg), .period = 0, .signo = SIGPROF};
    char msg[512] = "";
    int fd = -1;

    CU_ASSERT_EQUAL_FATAL(hyp_perf_encode("cpu-clock", &ev, msg, sizeof(msg)), 0);
    CU_ASSERT_EQUAL(hyp_perf_open(&ev, &cfg, 0, &fd, msg, sizeof(msg)), HYP_EINVAL);
    CU_ASSERT(strstr(msg, "period") != NULL);
    CU_ASSERT_EQUAL(fd, -1);
    /* A thread that does not exist. */
    cfg.period = 1000000;
    CU_ASSERT_EQUAL(hyp_perf_open(&ev, &cfg, 0x3ffffff0, &fd, msg, sizeof(msg)), HYP_EIO);
}

static int count_event(const hyp_perf_event_info_t *info, void *arg) {
    int *n = arg;

    if (strcmp(info->pmu, "perf") == 0 && strcmp(info->name, "PERF_COUNT_SW_CPU_CLOCK") == 0)
        n[0]++;
    if (strcmp(info->pmu, "perf") == 0 && strcmp(info->name, "PERF_COUNT_HW_CPU_CYCLES") == 0 &&
        info->is_hardware)
        n[1]++;
    n[2]++;
    return 0;
}

static void test_event_listing(void) {
    int n[3] = {0, 0, 0};

    CU_ASSERT_EQUAL(hyp_perf_foreach_event(count_event, n), 0);
    CU_ASSERT_EQUAL(n[0], 1);
    CU_ASSERT_EQUAL(n[1], 1);
    CU_ASSERT(n[2] >= 20);
}

/* A per-thread CPU-time timer signals its thread with the value given, at
 * its period of the thread's CPU time. The kernel checks CPU timers at its
 * tick, and only on the CPU the thread runs on: on a loaded machine, where a
 * thread runs in slices shorter than a tick, expiries are seen late (measured
 * on Linux 6.18 at load 10 on 2 CPUs: 0 to 12 expiries, overruns included,
 * for 100 ms of CPU at 8 ms). So the test counts expiries (signals and their
 * overruns) until 12 have come, checks that none came before its time of CPU
 * and that none comes while the thread sleeps, and reads the period back. */
static _Atomic int timer_hits;
static _Atomic int timer_expiries;
static _Atomic int timer_early;
static double timer_cpu0;
static void *timer_value;
static void on_timer(int sig, siginfo_t *si, void *uc) {
    int saved = errno, n;

    (void)sig;
    (void)uc;
    if (si->si_value.sival_ptr == timer_value && (pid_t)syscall(SYS_gettid) == expect_tid) {
        atomic_fetch_add(&timer_hits, 1);
        n = atomic_fetch_add(&timer_expiries, 1 + (si->si_overrun > 0 ? si->si_overrun : 0)) + 1 +
            (si->si_overrun > 0 ? si->si_overrun : 0);
        if (thread_cpu_s() < timer_cpu0 + n * 0.008)
            atomic_fetch_add(&timer_early, 1);
    }
    errno = saved;
}

static void test_thread_cpu_timer(void) {
    struct sigaction sa, old;
    struct itimerspec its;
    struct timespec nap = {0, 40000000};
    timer_t t;
    char msg[256] = "";
    int marker, before;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_timer;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGRTMIN + 4, &sa, &old);
    timer_value = &marker;
    expect_tid = (pid_t)syscall(SYS_gettid);
    atomic_store(&timer_hits, 0);
    atomic_store(&timer_expiries, 0);
    atomic_store(&timer_early, 0);
    timer_cpu0 = thread_cpu_s(); /* the timer starts after this */
    CU_ASSERT_EQUAL_FATAL(
        hyp_timer_thread_create(0, 0, SIGRTMIN + 4, 8000000, &marker, &t, msg, sizeof(msg)), 0);
    while (atomic_load(&timer_expiries) < 12 && thread_cpu_s() < timer_cpu0 + 5.0)
        spin_cpu(0.001);
    CU_ASSERT(atomic_load(&timer_expiries) >= 12);
    CU_ASSERT_EQUAL(atomic_load(&timer_early), 0);
    CU_ASSERT_EQUAL(timer_gettime(t, &its), 0);
    CU_ASSERT(its.it_interval.tv_sec == 0 && its.it_interval.tv_nsec == 8000000);
    /* Asleep, the thread spends no CPU: no expiry (one seen before the sleep
     * may still be delivered at its start). */
    before = atomic_load(&timer_hits);
    while (nanosleep(&nap, &nap) < 0 && errno == EINTR)
        ;
    CU_ASSERT(atomic_load(&timer_hits) <= before + 1);
    CU_ASSERT_EQUAL(hyp_timer_thread_delete(t), 0);
    sigaction(SIGRTMIN + 4, &old, NULL);
    CU_ASSERT_EQUAL(hyp_timer_thread_create(0, 0, 0, 1000, NULL, &t, msg, sizeof(msg)),
                    HYP_EINVAL);
}

static void test_itimer_busy(void) {
    struct itimerval it = {{0, 0}, {100, 0}};
    char msg[256] = "";
    struct sigaction sa, old;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPROF, &sa, &old);
    CU_ASSERT_EQUAL(hyp_itimer_set(10000000, msg, sizeof(msg)), 0);
    CU_ASSERT_EQUAL(hyp_itimer_set(10000000, msg, sizeof(msg)), HYP_EBUSY);
    CU_ASSERT(strstr(msg, "already armed") != NULL);
    CU_ASSERT_EQUAL(hyp_itimer_set(0, msg, sizeof(msg)), 0);
    setitimer(ITIMER_PROF, &it, NULL);
    CU_ASSERT_EQUAL(hyp_itimer_set(10000000, msg, sizeof(msg)), HYP_EBUSY);
    memset(&it, 0, sizeof(it));
    setitimer(ITIMER_PROF, &it, NULL);
    sigaction(SIGPROF, &old, NULL);
}

static const hyp_test_case_t cases[] = {
    {"encode software events", test_encode_software},
    {"encode hardware names", test_encode_hardware_names},
    {"encode errors", test_encode_errors},
    {"errno messages", test_errno_messages},
    {"software event signals its thread", test_software_event_signals},
    {"software event on another thread", test_software_event_other_thread},
    {"bad open config", test_open_bad_config},
    {"event listing", test_event_listing},
    {"thread CPU timer", test_thread_cpu_timer},
    {"itimer busy", test_itimer_busy},
    {NULL, NULL},
};

const hyp_test_suite_t hyp_suite_perf = {"perf", cases, NULL, NULL};
