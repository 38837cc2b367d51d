/* hyprof/clock.h: the deterministic mode's clocks.
 *
 * Wall time is read in "ticks": the time stamp counter (rdtsc) when the CPU
 * has an invariant one (constant_tsc and nonstop_tsc), otherwise
 * CLOCK_MONOTONIC in nanoseconds. hyp_clock_ns_per_tick() converts; its
 * calibration against CLOCK_MONOTONIC refines itself over the process's life.
 *
 * Thread CPU time is read in the same ticks, cheaply: each thread opens one
 * software perf event on itself and maps its control page. The kernel
 * rewrites the page (and bumps its seqlock word) whenever the thread is
 * scheduled out or in, so if the word did not change between two reads the
 * thread ran the whole time and its CPU time advanced by exactly the wall
 * time; if it changed, one clock_gettime(CLOCK_THREAD_CPUTIME_ID)
 * resynchronises. Where perf_event_open is refused (seccomp, paranoid level)
 * the clock falls back to that system call on every read.
 *
 * "Ran the whole time" is true of the scheduler but not quite of the
 * kernel's accounting: time a hypervisor steals and time spent in interrupts
 * pass on the TSC without being charged to the thread. So a fast read counts
 * from the last resync, never from the previous read, and a resync happens
 * at least every HYP_CPU_CLOCK_SPAN_NS: whatever the fast path counted that
 * the system call does not is given back at the next resync (the clock holds
 * still until the system call catches up; it never goes back), and the error
 * at any instant is bounded by what was stolen within one span instead of
 * growing with the run.
 *
 * Thread safety: hyp_clock_init() may be called from any thread, any number
 * of times. A hyp_cpu_clock_t belongs to the thread that initialised it and
 * must be read only by that thread. */
#ifndef HYPROF_CLOCK_H
#define HYPROF_CLOCK_H

#include "common.h"

#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    HYP_WALL_TSC = 0,       /* rdtsc, calibrated against CLOCK_MONOTONIC */
    HYP_WALL_MONOTONIC = 1  /* clock_gettime(CLOCK_MONOTONIC), ticks are nanoseconds */
} hyp_wall_source_t;

typedef enum {
    HYP_CPU_PERF_MMAP = 0,  /* perf_event page seqlock + wall ticks, resync by syscall */
    HYP_CPU_SYSCALL = 1     /* clock_gettime(CLOCK_THREAD_CPUTIME_ID) on every read */
} hyp_cpu_source_t;

/* Options for hyp_clock_init(). */
#define HYP_CLOCK_FORCE_MONOTONIC 0x1 /* do not use the TSC even if it is invariant */

/* Chooses the wall source and calibrates it (about 10 ms the first time).
 * Later calls return at once, unless flags ask for another source than the
 * one chosen, which returns HYP_EBUSY. Returns 0. */
HYP_EXTERN int hyp_clock_init(int flags);
HYP_EXTERN hyp_wall_source_t hyp_clock_wall_source(void);
/* "tsc" or "monotonic". */
HYP_EXTERN const char *hyp_clock_wall_name(void);

/* Reads the wall clock in ticks (hyp_clock_init() must have run). */
HYP_EXTERN uint64_t hyp_clock_ticks(void);
/* Nanoseconds per tick, refined against CLOCK_MONOTONIC over the time since
 * hyp_clock_init(); 1.0 for the monotonic source. */
HYP_EXTERN double hyp_clock_ns_per_tick(void);
/* clock_gettime(CLOCK_MONOTONIC) in nanoseconds. */
HYP_EXTERN uint64_t hyp_clock_monotonic_ns(void);
/* clock_gettime(CLOCK_THREAD_CPUTIME_ID) of the calling thread, in nanoseconds. */
HYP_EXTERN uint64_t hyp_clock_thread_cpu_ns(void);
/* The clock id of the CPU time of thread tid (a kernel thread id of this
 * process, 0 for the calling thread), as glibc's pthread_getcpuclockid()
 * builds it: what a per-thread CPU timer is created on. */
HYP_EXTERN clockid_t hyp_clock_thread_cpu_id(pid_t tid);
/* The CPU time of thread tid (0: the calling thread) in nanoseconds, or 0 if
 * the thread is gone. Async-signal-safe. */
HYP_EXTERN uint64_t hyp_clock_tid_cpu_ns(pid_t tid);

/* A thread's CPU clock. Fields are internal; the struct is public so that
 * hyp_cpu_clock_read() can be inlined on the profile hook's path. */
typedef struct {
    volatile const uint32_t *lock; /* seqlock word of the perf page, NULL without one */
    void *page;                    /* the mapped perf page, NULL without one */
    uint32_t seen;                 /* lock value at the last resync */
    hyp_cpu_source_t source;
    uint64_t sync_wall;            /* wall ticks at the last resync */
    uint64_t sync_cpu;             /* the system call's CPU time then, in ticks */
    uint64_t span;                 /* ticks after which a read resyncs */
    double ticks_per_ns;           /* the system call's ns to ticks, fixed at init */
    uint64_t last_cpu;             /* CPU ticks last returned */
    uint64_t resyncs;              /* reads that needed the system call */
    uint64_t reads;
    int64_t owner_pid;             /* the process that mapped the page */
} hyp_cpu_clock_t;

/* Options for hyp_cpu_clock_init(). */
#define HYP_CPU_CLOCK_FORCE_SYSCALL 0x1 /* skip perf_event_open */

/* The longest a fast read may count from the last resync. */
#define HYP_CPU_CLOCK_SPAN_NS 4000000ull

/* Sets up c for the calling thread: opens and maps the perf event, or falls
 * back to the system call (c->source says which; the reason perf was refused
 * is returned through *perf_err when it is not NULL: 0, HYP_EPERM,
 * HYP_ENOTSUP, ...). Returns 0, or HYP_EINVAL if c is NULL. */
HYP_EXTERN int hyp_cpu_clock_init(hyp_cpu_clock_t *c, int flags, int *perf_err);
/* Unmaps the page. Safe to call from any thread, and twice. In a forked
 * child it leaves the parent's mapping alone: the kernel does not copy perf
 * mappings into a child, so the address may since hold another mapping. */
HYP_EXTERN void hyp_cpu_clock_destroy(hyp_cpu_clock_t *c);
/* The slow path of hyp_cpu_clock_read(): resynchronises with the system
 * call. */
HYP_EXTERN uint64_t hyp_cpu_clock_resync(hyp_cpu_clock_t *c, uint64_t *wall);

/* Reads the thread's CPU time in wall ticks, and the wall ticks of the same
 * instant into *wall. Must be called on the thread that owns c. */
static inline uint64_t hyp_cpu_clock_read(hyp_cpu_clock_t *c, uint64_t *wall) {
#if defined(__x86_64__) || defined(__i386__)
    if (c->lock != NULL) {
        uint32_t before = *c->lock;
        uint64_t now;
        uint32_t lo, hi;

        __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
        now = ((uint64_t)hi << 32) | lo;
        if (before == c->seen && *c->lock == before && now - c->sync_wall < c->span) {
            uint64_t cpu = c->sync_cpu + (now - c->sync_wall);
            if (cpu > c->last_cpu)
                c->last_cpu = cpu;
            c->reads++;
            *wall = now;
            return c->last_cpu;
        }
    }
#endif
    return hyp_cpu_clock_resync(c, wall);
}

#ifdef __cplusplus
}
#endif
#endif /* HYPROF_CLOCK_H */
