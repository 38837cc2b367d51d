/* The wall and per-thread CPU clocks (include/hyprof/clock.h). */
#include "hyprof/clock.h"

#include "hyprof/internal/util.h"

#include <errno.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The calibration: (tsc, monotonic) pairs taken at init and at the latest
 * refinement. Written under the mutex, read racily by the converters (a torn
 * read of a double is not possible on x86-64, and a slightly stale ratio is
 * harmless). */
static pthread_mutex_t clock_mutex = PTHREAD_MUTEX_INITIALIZER;
static int clock_ready;
static hyp_wall_source_t wall_source = HYP_WALL_MONOTONIC;
static uint64_t base_tsc, base_ns;
static double ns_per_tick = 1.0;
static double ticks_per_ns = 1.0;

#define HYP__CALIBRATE_NS 10000000ull /* first calibration interval: 10 ms */

static inline uint64_t read_tsc(void) {
#if defined(__x86_64__) || defined(__i386__)
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
#else
    return 0;
#endif
}

uint64_t hyp_clock_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t hyp_clock_thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED): CPUCLOCK_PERTHREAD_MASK |
 * CPUCLOCK_SCHED under the complemented id (Linux include/linux/
 * posix-timers.h, kernel/time/posix-cpu-timers.c). */
clockid_t hyp_clock_thread_cpu_id(pid_t tid) {
    return tid == 0 ? CLOCK_THREAD_CPUTIME_ID : (clockid_t)((~(unsigned)tid << 3) | 4 | 2);
}

uint64_t hyp_clock_tid_cpu_ns(pid_t tid) {
    struct timespec ts;

    if (clock_gettime(hyp_clock_thread_cpu_id(tid), &ts) < 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* An invariant TSC ticks at a constant rate in every P- and C-state, which is
 * what lets it measure time; /proc/cpuinfo's flags say whether it has one. */
static int tsc_is_invariant(void) {
#if defined(__x86_64__) || defined(__i386__)
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[4096];
    int constant = 0, nonstop = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        constant = strstr(line, " constant_tsc") != NULL;
        nonstop = strstr(line, " nonstop_tsc") != NULL;
        break;
    }
    fclose(f);
    return constant && nonstop;
#else
    return 0;
#endif
}

/* Takes a (tsc, monotonic) pair whose two reads are as close as possible:
 * the best of a few tries, judged by the tsc ticks the monotonic read took. */
static void take_pair(uint64_t *tsc, uint64_t *ns) {
    uint64_t best = UINT64_MAX;
    int i;

    *tsc = *ns = 0;

    for (i = 0; i < 5; i++) {
        uint64_t t0 = read_tsc();
        uint64_t n = hyp_clock_monotonic_ns();
        uint64_t t1 = read_tsc();
        if (t1 - t0 < best) {
            best = t1 - t0;
            *tsc = t0 + (t1 - t0) / 2;
            *ns = n;
        }
    }
}

int hyp_clock_init(int flags) {
    hyp_wall_source_t want;
    int rc = 0;

    pthread_mutex_lock(&clock_mutex);
    if (clock_ready) {
        if ((flags & HYP_CLOCK_FORCE_MONOTONIC) && wall_source != HYP_WALL_MONOTONIC)
            rc = HYP_EBUSY;
        pthread_mutex_unlock(&clock_mutex);
        return rc;
    }
    want = (!(flags & HYP_CLOCK_FORCE_MONOTONIC) && tsc_is_invariant()) ? HYP_WALL_TSC
                                                                        : HYP_WALL_MONOTONIC;
    if (want == HYP_WALL_TSC) {
        uint64_t t1 = 0, n1 = 0;

        take_pair(&base_tsc, &base_ns);
        do {
            take_pair(&t1, &n1);
        } while (n1 - base_ns < HYP__CALIBRATE_NS);
        if (t1 > base_tsc) {
            ns_per_tick = (double)(n1 - base_ns) / (double)(t1 - base_tsc);
            ticks_per_ns = 1.0 / ns_per_tick;
        } else {
            want = HYP_WALL_MONOTONIC; /* a TSC that does not advance cannot be used */
        }
    }
    if (want == HYP_WALL_MONOTONIC) {
        ns_per_tick = ticks_per_ns = 1.0;
        base_tsc = base_ns = 0;
    }
    wall_source = want;
    clock_ready = 1;
    pthread_mutex_unlock(&clock_mutex);
    return 0;
}

hyp_wall_source_t hyp_clock_wall_source(void) {
    return wall_source;
}

const char *hyp_clock_wall_name(void) {
    return wall_source == HYP_WALL_TSC ? "tsc" : "monotonic";
}

uint64_t hyp_clock_ticks(void) {
    return wall_source == HYP_WALL_TSC ? read_tsc() : hyp_clock_monotonic_ns();
}

/* The ratio over the longest baseline available, the time since init: the
 * error of the two end reads (tens of nanoseconds) shrinks relative to it. */
double hyp_clock_ns_per_tick(void) {
    uint64_t t, n;

    if (wall_source != HYP_WALL_TSC)
        return 1.0;
    pthread_mutex_lock(&clock_mutex);
    take_pair(&t, &n);
    if (t > base_tsc && n - base_ns >= HYP__CALIBRATE_NS) {
        ns_per_tick = (double)(n - base_ns) / (double)(t - base_tsc);
        ticks_per_ns = 1.0 / ns_per_tick;
    }
    pthread_mutex_unlock(&clock_mutex);
    return ns_per_tick;
}

static long perf_event_open(struct perf_event_attr *attr, pid_t pid, int cpu, int group,
                            unsigned long flags) {
    return syscall(SYS_perf_event_open, attr, pid, cpu, group, flags);
}

static int errno_to_hyp(int e) {
    switch (e) {
    case EACCES:
    case EPERM:
        return HYP_EPERM;
    case ENOENT:
        return HYP_ENOENT;
    case ENOMEM:
        return HYP_ENOMEM;
    default:
        return HYP_ENOTSUP;
    }
}

int hyp_cpu_clock_init(hyp_cpu_clock_t *c, int flags, int *perf_err) {
    struct perf_event_attr attr;
    int err = 0;
    long fd;
    void *page;
    uint64_t wall;

    if (c == NULL)
        return HYP_EINVAL;
    memset(c, 0, sizeof *c);
    c->source = HYP_CPU_SYSCALL;
    if (!clock_ready)
        hyp_clock_init(0);
    if (flags & HYP_CPU_CLOCK_FORCE_SYSCALL) {
        err = HYP_ENOTSUP;
    } else if (wall_source != HYP_WALL_TSC) {
        /* The fast path counts CPU time in TSC ticks; without a TSC there is
         * nothing to add. */
        err = HYP_ENOTSUP;
    } else {
        /* A dummy software event counts nothing and costs nothing at context
         * switches beyond the page update that is all this clock needs. */
        memset(&attr, 0, sizeof attr);
        attr.size = sizeof attr;
        attr.type = PERF_TYPE_SOFTWARE;
        attr.config = PERF_COUNT_SW_DUMMY;
        attr.exclude_kernel = 1;
        attr.exclude_hv = 1;
        fd = perf_event_open(&attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
        if (fd < 0) {
            err = errno_to_hyp(errno);
        } else {
            page = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_READ, MAP_SHARED, (int)fd, 0);
            if (page == MAP_FAILED)
                err = errno_to_hyp(errno);
            /* The mapping keeps the event alive, so no descriptor stays open
             * per thread. */
            close((int)fd);
            if (err == 0) {
                c->page = page;
                c->owner_pid = (int64_t)getpid();
                c->lock = &((volatile struct perf_event_mmap_page *)page)->lock;
                c->source = HYP_CPU_PERF_MMAP;
            }
        }
    }
    if (perf_err != NULL)
        *perf_err = err;
    /* The ratio is taken once: converting the thread's whole CPU time with a
     * ratio refined later (another session's start or stop refines it) would
     * move the clock by that time times the change at the next resync. */
    pthread_mutex_lock(&clock_mutex);
    c->ticks_per_ns = ticks_per_ns;
    pthread_mutex_unlock(&clock_mutex);
    c->span = (uint64_t)((double)HYP_CPU_CLOCK_SPAN_NS * c->ticks_per_ns);
    c->seen = c->lock != NULL ? *c->lock + 1 : 0; /* force the first read to resync */
    hyp_cpu_clock_resync(c, &wall);
    c->resyncs = 0;
    return 0;
}

void hyp_cpu_clock_destroy(hyp_cpu_clock_t *c) {
    if (c == NULL || c->page == NULL)
        return;
    if (c->owner_pid == (int64_t)getpid())
        munmap(c->page, (size_t)sysconf(_SC_PAGESIZE));
    c->page = NULL;
    c->lock = NULL;
    c->source = HYP_CPU_SYSCALL;
}

/* The clock never goes back, since callers subtract readings: where the
 * fast path ran ahead of the system call (the ticks between the two reads,
 * time not charged to the thread), the clock holds still until the system
 * call's value passes it. */
static uint64_t set_cpu(hyp_cpu_clock_t *c, uint64_t cpu, uint64_t now, uint64_t *wall) {
    c->sync_cpu = cpu;
    c->sync_wall = now;
    if (cpu > c->last_cpu)
        c->last_cpu = cpu;
    *wall = now;
    return c->last_cpu;
}

uint32_t hyp__cpu_pair(volatile const uint32_t *lock, uint64_t *ns, uint64_t *ticks) {
    uint32_t before = 0;
    int tries;

    for (tries = 0; tries < 3; tries++) {
        before = *lock;
        *ns = hyp_clock_thread_cpu_ns();
        *ticks = hyp_clock_ticks();
        if (*lock == before)
            return before;
    }
    return *lock + 1;
}

uint64_t hyp_cpu_clock_resync(hyp_cpu_clock_t *c, uint64_t *wall) {
    uint64_t ns, now;

    c->resyncs++;
    if (c->lock == NULL) {
        ns = hyp_clock_thread_cpu_ns();
        now = hyp_clock_ticks();
        return set_cpu(c, wall_source == HYP_WALL_TSC ? (uint64_t)((double)ns * c->ticks_per_ns) : ns,
                       now, wall);
    }
    /* The lock is set only with the TSC as the wall source, so the ticks are
     * the TSC's; a word that never held still keeps the next read
     * resynchronising. */
    c->seen = hyp__cpu_pair(c->lock, &ns, &now);
    return set_cpu(c, (uint64_t)((double)ns * c->ticks_per_ns), now, wall);
}
