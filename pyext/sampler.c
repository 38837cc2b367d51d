/* The sampling mode's engine: per-thread triggers, the signal handler, the
 * per-thread sample rings, the wall-clock sampler thread and the resolver
 * that turns ring records into profile samples (docs/sampling.md).
 *
 * Threads of execution that touch this file:
 *   - the signal handler, on the sampled thread itself: reads its own frames
 *     and writes one record into its own ring; nothing else (no malloc, no
 *     lock, no Python API but PyGILState_GetThisThreadState(), a
 *     pthread_getspecific() read);
 *   - the wall-clock sampler (a pthread without Python): reads the GIL's
 *     state and reads the frames of the threads that do not hold it (waiting
 *     ones) through process_vm_readv(), into its own ring; the threads
 *     running Python sample themselves through their CPU clock, which fires
 *     in user mode only, so no thread is ever signalled inside a system call;
 *   - everything else runs with the GIL: start, stop, thread registration,
 *     the resolver, code-death notices. The GIL serialises the consumers of
 *     the rings, so each ring has one producer and one consumer at a time. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* gettid, SIGEV_THREAD_ID */
#endif
#include "sampler.h"

#include "alloc.h"
#include "codemap.h"
#include "hyprof/internal/util.h"
#include "pyhyprof.h"
#include "hyprof/internal/ring.h"
#include "walk.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define HYP__MAX_THREADS 1024
#define HYP__MAX_KINDS 8
#define HYP__REC_MAGIC 0xA5ULL
#define HYP__REC_HEAD 3 /* header, time, weight */
#define HYP__POISON_MAX 64
#define HYP__LAST_DEPTH 64 /* frames of the last stack kept per thread (wall clock) */

enum { TRIG_NONE = 0, TRIG_PERF, TRIG_TIMER, TRIG_ITIMER };
static const char *const hyp__trig_names[] = {"none", "perf_event", "posix-timer", "setitimer"};

/* Reasons a sample can be lost before it reaches the profile. A thread found
 * without a Python frame (starting, ending, or running C code from its first
 * call) is not one: there was nothing to sample, and it is counted apart
 * (S.no_frames). */
enum {
    LOST_RING_FULL = 0,  /* the thread's ring had no room */
    LOST_REENTRANT,      /* the signal interrupted another capture on its thread */
    LOST_UNKNOWN_THREAD, /* the signal hit a thread hyprof has not registered */
    LOST_THREAD_EXITING, /* the thread was tearing down its Python state */
    LOST_CODE_FREED,     /* a frame's code object died unseen before resolution */
    LOST_WALL_RACE,      /* a waiting thread woke up while its stack was read */
    LOST_NO_SLOT,        /* more threads than hyprof can follow, or a trigger failed */
    LOST_WALK_FAULT,     /* the frame chain pointed to freed memory mid-pop */
    LOST_HANDLER_GONE,   /* the program replaced hyprof's signal handler (estimated) */
    LOST_OWN,            /* the stack was hyprof's own (starting, stopping), not the program's */
    LOST_COUNT
};
static const char *const hyp__lost_names[LOST_COUNT] = {
    "ring-full",  "reentrant",  "unknown-thread", "thread-exiting",   "code-freed",
    "wall-race",  "thread-unsampled", "walk-fault", "handler-replaced", "profiler-frames"};

typedef struct {
    _Atomic int live;    /* 1 while the slot's thread is sampled */
    _Atomic int busy;    /* a capture runs on the slot's thread */
    _Atomic int sbusy;   /* the wall sampler works on this slot */
    int used;            /* registered (GIL-owned bookkeeping) */
    int index;
    int seen;            /* found by the last enumeration */
    PyThreadState *tstate;
    pid_t tid;
    unsigned long ident;
    hyp_id_t thread;     /* the profile's thread id, HYP_NO_ID until its first sample */
    hyp_id_t name;       /* string id of its name, HYP_NO_ID until threading names it */
    int fd;              /* perf event, or -1 */
    uint64_t perf_id;    /* its kernel id (PERF_EVENT_IOC_ID), 0 if unknown */
    /* A clock event's control page (NULL without one), read by the handler
     * for the thread's CPU time (hyp__slot_cpu_ns). */
    volatile const struct perf_event_mmap_page *page;
    uint32_t page_seen;  /* its seqlock word at the previous reading (handler-owned) */
    uint64_t page_ticks; /* wall ticks at the previous reading (handler-owned) */
    uint64_t page_cpu;   /* CPU ns at the previous reading (handler-owned) */
    timer_t timer;
    int has_timer;
    uint64_t last_count; /* counter at the previous sample (handler-owned) */
    uint64_t rng;        /* period jitter state (handler-owned) */
    uint64_t nsamples;   /* samples taken by the handler (handler-owned) */
    _Atomic uint64_t wall_last; /* wall clock: the sampler's previous tick for this thread */
    _Atomic uint64_t wall_pending; /* wall clock: tick time owed to the thread's next sample */
    _Atomic uint64_t wall_ran; /* wall clock: time of its last CPU signal holding the GIL */
    int wall_held;       /* wall clock: the sampler's previous tick found it holding the GIL */
    /* Wall clock: the stack the sampler last read from this waiting thread,
     * good for as long as the thread has not taken the GIL since (sampler-
     * owned; the buffer is kept across sessions' reuse of the slot). */
    uint64_t *wall_cache;
    int wall_cache_n;    /* frames in it, 0: none */
    int wall_cache_trunc;
    unsigned long wall_cache_sw; /* the GIL's switch counter when it was read */
    /* Wall clock: the stack of the thread's last self-taken sample, for the
     * time owed to it that it could not take itself (seqlock: odd while the
     * handler writes). */
    _Atomic uint64_t last_seq;
    uint64_t last_hdr;
    uint64_t last[HYP_WALK_WORDS * HYP__LAST_DEPTH];
    hyp__ring_t ring;
} hyp_slot_t;

static struct {
    _Atomic int active;  /* handlers record samples */
    int running;         /* a session exists (GIL-owned) */
    int trigger;
    int wall;
    int signo;
    int depth;
    pid_t pid;
    uint64_t period_ns;  /* timers and the wall sampler */
    double ns_per_tick;  /* hyp_clock_ticks() to ns, fixed for the session */
    hyp_perf_event_t event;
    hyp_perf_config_t pcfg;
    size_t ring_words;
    uint64_t t0;
    hyp_slot_t *slots;
    int nslots;          /* high-water mark of used slots */
    hyp_slot_t **fd_slot;
    int fd_slot_len;
    hyp_profile_t *profile;
    hyp_writer_t *writer;
    int writer_err;
    hyp_id_t func_truncated;
    uint32_t kinds;      /* sample kinds declared */
    _Atomic uint64_t lost[LOST_COUNT];
    /* Samples that found their thread without a Python frame: no loss, and
     * reported apart from the losses ("no_python_frames"). */
    _Atomic uint64_t no_frames;
    uint64_t lost_given[LOST_COUNT]; /* the part of lost[] already in a window */
    uint64_t no_frames_given;        /* and of no_frames */
    uint64_t window_start;           /* hyp__now() when the current window began */
    /* wall-clock sampler */
    pthread_t wall_thread;
    int wall_started;
    _Atomic int wall_stop;
    _Atomic int remote_inflight;
    hyp__ring_t wall_ring;
    /* Wall clock, the program having replaced hyprof's handler: the running
     * threads' samples went to its handler with the signal, and the time
     * owed to them is no stack's. wall_gone: the sampler's last tick found
     * the handler replaced (sampler-owned; stop sets it once the sampler
     * has ended); wall_gone_seen: some tick did; wall_lost_ns: the time
     * owed to GIL holders while it was, counted lost at stop as samples of
     * the period (handler-replaced). */
    _Atomic int wall_gone;
    _Atomic int wall_gone_seen;
    _Atomic uint64_t wall_lost_ns;
    /* resolver */
    int resolving;
    PyCodeObject *poison[HYP__POISON_MAX];
    int npoison;
    int poison_overflow;
    PyThreadState *exclude; /* the resolver thread's own state */
    PyObject *threads_active; /* threading._active, for names */
    char kind_names[HYP__MAX_KINDS][64];
    int memory; /* the allocation collector's samples are merged at stop */
    int handler_gone_seen; /* a resolver pass found the signal's handler replaced */
} S;

static _Atomic int hyp__handler_sigs[NSIG];

static __thread hyp_slot_t *hyp__tls_slot __attribute__((tls_model("initial-exec")));

static inline uint64_t hyp__now(void) {
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The CPU time of thread tid (0: the calling thread), in ns; 0 if it is
 * gone. clock_gettime() is async-signal-safe. A thread's CPU clock is
 * MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED) (Linux include/linux/posix-timers.h),
 * as in core/timer.c. */
static uint64_t hyp__thread_cpu_ns(pid_t tid) {
    struct timespec ts;
    clockid_t clock =
        tid ? (clockid_t)((~(unsigned)tid << 3) | 4 | 2) : CLOCK_THREAD_CPUTIME_ID;

    if (clock_gettime(clock, &ts) < 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The calling thread's CPU time in ns, for the weights of a clock event
 * (cpu-clock, task-clock: their count is that time), without a system call
 * while the thread has not been switched since its previous sample. The
 * kernel rewrites an event's control page, bumping its seqlock word, when the
 * thread is scheduled in or out, and not at an overflow; if the word is the
 * one seen at the previous sample, the thread has run all along, and its CPU
 * time advanced by the wall time. Otherwise one clock_gettime() resynchronises
 * (hyp__cpu_pair(), which core/clock.c uses for the deterministic mode's
 * clock; that clock counts in ticks, these weights in ns, converted at one
 * rate for the whole session). Measured in the handler
 * on a VM: read(2) of the counter took about 2.2 us, this path about 0.1 us.
 * Called by the slot's own thread only, with the slot claimed. */
static uint64_t hyp__slot_cpu_ns(hyp_slot_t *slot) {
    volatile const uint32_t *lock = &slot->page->lock;
    uint32_t before = *lock;
    uint64_t ticks = hyp_clock_ticks();
    uint64_t ns;

    if (before == slot->page_seen && *lock == before) {
        slot->page_cpu += (uint64_t)((double)(ticks - slot->page_ticks) * S.ns_per_tick);
        slot->page_ticks = ticks;
        return slot->page_cpu;
    }
    slot->page_seen = hyp__cpu_pair(lock, &ns, &ticks);
    slot->page_ticks = ticks;
    slot->page_cpu = ns;
    return ns;
}

static inline void hyp__lose(int why) {
    atomic_fetch_add_explicit(&S.lost[why], 1, memory_order_relaxed);
}

/* A sample found its thread without a Python frame (no loss). */
static inline void hyp__no_frames(void) {
    atomic_fetch_add_explicit(&S.no_frames, 1, memory_order_relaxed);
}

static inline uint64_t hyp__rec_header(int slot, uint32_t kind, int truncated, int n) {
    return (HYP__REC_MAGIC << 56) | ((uint64_t)(slot & 0xffff) << 32) |
           ((uint64_t)(kind & 0xff) << 24) | ((uint64_t)(truncated ? 1 : 0) << 16) |
           (uint64_t)(n & 0xffff);
}

/* ---------------------------------------------------------------- capture */

/* Records the calling thread's stack into slot's ring. The thread is the
 * slot's own (checked by the caller) and is stopped here. */
static int hyp__capture(hyp_slot_t *slot, uint32_t kind, uint64_t weight, int keep_last) {
    uint64_t buf[HYP__REC_HEAD + HYP_WALK_WORDS * HYP_WALK_MAX_DEPTH];
    int truncated = 0, n, k;

    n = hyp__walk_own(slot->tstate, buf + HYP__REC_HEAD, S.depth, &truncated);
    if (n == 0) {
        hyp__no_frames(); /* its weight is no stack's: it ran no Python */
        return -1;
    }
    if (n < 0) {
        hyp__lose(n == HYP_WALK_OWN ? LOST_OWN : LOST_WALK_FAULT);
        return -1;
    }
    buf[0] = hyp__rec_header(slot->index, kind, truncated, n);
    if (keep_last) {
        /* The innermost frames (a deeper stack is marked truncated). */
        k = n < HYP__LAST_DEPTH ? n : HYP__LAST_DEPTH;
        atomic_fetch_add(&slot->last_seq, 1);
        memcpy(slot->last, buf + HYP__REC_HEAD, sizeof(uint64_t) * HYP_WALK_WORDS * (size_t)k);
        slot->last_hdr = hyp__rec_header(slot->index, kind, truncated || k < n, k);
        atomic_fetch_add(&slot->last_seq, 1);
    }
    buf[1] = hyp__now() - S.t0;
    buf[2] = weight;
    /* A full ring counts the drop itself (ring.h). */
    return hyp__ring_write(&slot->ring, buf, HYP__REC_HEAD + (size_t)HYP_WALK_WORDS * n) == 0
               ? 0
               : -1;
}

/* Claims slot for a capture on the calling thread. busy is raised before
 * live is checked, and the retiring side lowers live before it waits for busy
 * to fall (both sequentially consistent), so a capture never runs on a slot
 * being recycled. */
static inline int hyp__claim(hyp_slot_t *slot) {
    if (atomic_exchange(&slot->busy, 1)) {
        hyp__lose(LOST_REENTRANT);
        return -1;
    }
    if (!atomic_load(&slot->live)) {
        atomic_store(&slot->busy, 0);
        hyp__lose(LOST_THREAD_EXITING);
        return -1;
    }
    /* The thread's own Python state, as CPython keeps it in a pthread key
     * until the thread state is deleted (Python/pystate.c); a thread tearing
     * down, or a signal meant for a previous owner of the slot, fails here. */
    if (PyGILState_GetThisThreadState() != slot->tstate) {
        atomic_store(&slot->busy, 0);
        hyp__lose(LOST_THREAD_EXITING);
        return -1;
    }
    return 0;
}

static inline int hyp__valid_slot(const hyp_slot_t *slot) {
    return slot != NULL && S.slots != NULL && slot >= S.slots &&
           slot < S.slots + HYP__MAX_THREADS &&
           ((const char *)slot - (const char *)S.slots) % sizeof(hyp_slot_t) == 0;
}

static hyp_slot_t *hyp__slot_by_tid(pid_t tid) {
    int i;

    for (i = 0; i < S.nslots; i++)
        if (atomic_load(&S.slots[i].live) && S.slots[i].tid == tid)
            return &S.slots[i];
    return NULL;
}

int hyp_py_sampler_capture(uint32_t kind, uint64_t weight) {
    hyp_slot_t *slot;
    int ret;

    if (!atomic_load_explicit(&S.active, memory_order_acquire) || kind >= S.kinds)
        return -1;
    slot = hyp__tls_slot;
    if (!hyp__valid_slot(slot) || slot->tid != (pid_t)syscall(SYS_gettid)) {
        slot = hyp__slot_by_tid((pid_t)syscall(SYS_gettid));
        if (slot == NULL) {
            hyp__lose(LOST_UNKNOWN_THREAD);
            return -1;
        }
        hyp__tls_slot = slot;
    }
    if (hyp__claim(slot) < 0)
        return -1;
    ret = hyp__capture(slot, kind, weight, 0);
    atomic_store(&slot->busy, 0);
    return ret;
}

/* ---------------------------------------------------------------- signal handler */

/* The count since the slot's previous sample, from its handler: exact even
 * when signals of a standard signal number coalesced. A clock event's count
 * is the thread's CPU time, read from its control page without a system
 * call. Timers: the thread's CPU time too; a timer's expiries are checked at
 * the kernel's tick, on the CPU the thread runs on, and on a loaded machine,
 * where a thread runs in slices shorter than a tick, whole expiries go
 * unseen, overruns included (measured on Linux 6.18: 0 to 12 expiries for
 * 100 ms of CPU at 8 ms), so period * (1 + overrun) would undercount. Never
 * backwards: a control-page reading may run a little ahead of the next
 * resynchronisation. */
static inline uint64_t hyp__cpu_weight(hyp_slot_t *slot) {
    uint64_t count, weight;

    if (S.trigger != TRIG_PERF)
        count = hyp__thread_cpu_ns(0);
    else if (slot->page != NULL)
        count = hyp__slot_cpu_ns(slot);
    else if (hyp_perf_read(slot->fd, &count) < 0)
        return S.pcfg.freq ? 0 : S.pcfg.period;
    if (count <= slot->last_count)
        return 0;
    weight = count - slot->last_count;
    slot->last_count = count;
    return weight;
}

/* A fixed period locks onto a program that repeats at the same rate and
 * samples one phase of it (aliasing): now and then, the period is drawn anew
 * uniformly within +-12.5% of the one asked for. The weights are measured,
 * so the jitter biases nothing. The ioctl is costly: on a clock event it
 * restarts the kernel's timer, which took about 10 us on a VM, against under
 * 1 us for the whole handler otherwise. Hardware counts, which can repeat to
 * the cycle, are redrawn every 8th sample; a clock, whose expiries interrupt
 * latency already blurs, every 64th. */
static inline void hyp__redraw_period(hyp_slot_t *slot) {
    uint64_t x, next;

    if (S.pcfg.freq || S.pcfg.period < 8 ||
        (++slot->nsamples & (S.event.is_clock ? 63 : 7)) != 0)
        return;
    x = slot->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    slot->rng = x;
    next = S.pcfg.period - S.pcfg.period / 8 + x % (S.pcfg.period / 4 + 1);
    ioctl(slot->fd, PERF_EVENT_IOC_PERIOD, &next);
}

static void hyp__on_signal(int signo, siginfo_t *si, void *uc) {
    int saved = errno;
    hyp_slot_t *slot = NULL;
    uint64_t weight = 0;

    (void)uc;
    if (!atomic_load_explicit(&S.active, memory_order_acquire) || signo != S.signo)
        goto out; /* late signal of a stopped session, or another hyprof signal */
    switch (S.trigger) {
    case TRIG_PERF:
        if (si->si_fd >= 0 && si->si_fd < S.fd_slot_len)
            slot = S.fd_slot[si->si_fd];
        break;
    case TRIG_TIMER:
        if (si->si_code == SI_TIMER)
            slot = si->si_value.sival_ptr;
        break;
    case TRIG_ITIMER:
        slot = hyp__tls_slot;
        if (!hyp__valid_slot(slot))
            slot = hyp__slot_by_tid((pid_t)syscall(SYS_gettid));
        break;
    }
    if (!hyp__valid_slot(slot)) {
        hyp__lose(LOST_UNKNOWN_THREAD);
        goto out;
    }
    if (hyp__claim(slot) < 0)
        goto out;
    if (S.trigger == TRIG_PERF)
        hyp__redraw_period(slot);
    if (!S.wall) {
        weight = hyp__cpu_weight(slot);
    } else {
        int holder = 0, last = 0;
        unsigned long sw;

        /* Wall clock: this trigger samples the thread only while it runs
         * Python (holds the GIL); the wall sampler covers the rest. */
        if (hyp__walk_gil_state(slot->tstate, &holder, &last, &sw) < 0 || !holder) {
            atomic_store(&slot->busy, 0);
            goto out;
        }
        /* Proof that it ran Python until now, for the sampler's next tick. */
        atomic_store(&slot->wall_ran, hyp__now());
        if ((weight = atomic_exchange(&slot->wall_pending, 0)) == 0) {
            atomic_store(&slot->busy, 0);
            goto out;
        }
        /* The sampler's ticks decide when a sample is due (uniformly in wall
         * time, whatever the thread does); this thread, running Python, takes
         * the ones owed to it at its next CPU-clock signal, with their time. */
    }
    hyp__capture(slot, 0, weight, 1);
    atomic_store(&slot->busy, 0);
out:
    errno = saved;
}

/* Installs the handler on signo. A handler someone else installed there is
 * never replaced: that is an error naming the signal. Once installed, ours
 * stays until the process ends, so a signal still pending when a session
 * stops is ignored instead of killing the process with the default action. */
static int hyp__install(int signo, char *msg, size_t msglen) {
    struct sigaction sa, old;

    if (sigaction(signo, NULL, &old) < 0) {
        snprintf(msg, msglen, "signal %d cannot be used: %s", signo, strerror(errno));
        return -1;
    }
    if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction == hyp__on_signal)
        return 0;
    if (!(old.sa_flags & SA_SIGINFO) && (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN)) {
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = hyp__on_signal;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(signo, &sa, NULL) < 0) {
            snprintf(msg, msglen, "cannot install a handler on signal %d: %s", signo,
                     strerror(errno));
            return -1;
        }
        atomic_store(&hyp__handler_sigs[signo], 1);
        return 0;
    }
    snprintf(msg, msglen,
             "signal %d (%s) already has a handler that hyprof did not install; hyprof does not "
             "replace it: choose another signal with signal= (for instance signal.SIGRTMIN + 2) "
             "or remove that handler",
             signo, strsignal(signo));
    return -1;
}

/* 1 when the session's signal no longer runs hyprof's handler: the program
 * installed its own (signal.signal(SIGPROF, ...)), and the signals meant
 * for samples go to it. hyprof does not take the signal back; the loss is
 * counted and reported (LOST_HANDLER_GONE). */
static int hyp__handler_gone(void) {
    struct sigaction cur;

    if (S.signo <= 0 || sigaction(S.signo, NULL, &cur) < 0)
        return 0;
    return !((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == hyp__on_signal);
}

/* ---------------------------------------------------------------- threads */

/* The thread's name from threading._active[ident]._name, read from the
 * dicts without running any Python code (this runs in the resolver, which a
 * code object's destruction can call). Returns 1 and sets *name when the
 * thread is known to threading, 0 when not (yet), or HYP_ENOMEM. */
static int hyp__thread_name(unsigned long ident, hyp_id_t *name) {
    PyObject *key, *th = NULL, *dict, *nm = NULL;
    const char *u = NULL;
    Py_ssize_t n = 0;

    if (S.threads_active != NULL && (key = PyLong_FromUnsignedLong(ident)) != NULL) {
        th = PyDict_GetItemWithError(S.threads_active, key); /* borrowed */
        Py_DECREF(key);
        if (th != NULL && (dict = PyObject_GenericGetDict(th, NULL)) != NULL) {
            nm = PyDict_GetItemString(dict, "_name"); /* borrowed */
            if (nm != NULL && PyUnicode_Check(nm))
                u = PyUnicode_AsUTF8AndSize(nm, &n);
            Py_DECREF(dict);
        }
    }
    PyErr_Clear();
    if (u == NULL)
        return 0;
    return hyp_profile_string(S.profile, u, (size_t)n, name) < 0 ? HYP_ENOMEM : 1;
}

/* The slot's thread in the profile, made at its first sample, so that a
 * thread found by the enumeration before threading named it gets its name.
 * Returns 0 or HYP_ENOMEM. */
static int hyp__slot_thread(hyp_slot_t *slot) {
    hyp_thread_t th;
    int ret;

    if (slot->thread != HYP_NO_ID)
        return 0;
    th.os_tid = (uint64_t)slot->tid;
    th.ident = slot->ident;
    th.name = slot->name;
    ret = slot->name != HYP_NO_ID ? 1 : hyp__thread_name(slot->ident, &th.name);
    if (ret < 0)
        return ret;
    if (ret == 0 && hyp_profile_string(S.profile, "", 0, &th.name) < 0)
        return HYP_ENOMEM;
    return hyp_profile_thread(S.profile, &th, &slot->thread);
}

static void hyp__fd_map(int fd, hyp_slot_t *slot) {
    if (fd >= 0 && fd < S.fd_slot_len)
        S.fd_slot[fd] = slot;
}

/* Opens the slot's trigger. Returns 0 or a HYP_E* code with msg set. */
static int hyp__arm(hyp_slot_t *slot, char *msg, size_t msglen) {
    int ret;

    switch (S.trigger) {
    case TRIG_PERF:
        ret = hyp_perf_open(&S.event, &S.pcfg, slot->tid, &slot->fd, msg, msglen);
        if (ret < 0)
            return ret;
        if (slot->fd >= S.fd_slot_len) {
            close(slot->fd);
            slot->fd = -1;
            snprintf(msg, msglen, "descriptor beyond hyprof's table");
            return HYP_ELIMIT;
        }
        slot->last_count = 0;
        if (ioctl(slot->fd, PERF_EVENT_IOC_ID, &slot->perf_id) < 0)
            slot->perf_id = 0;
        if (S.event.is_clock) {
            /* Its control page, for the handler's CPU time (no data pages:
             * the samples themselves are not read from the kernel). Without
             * it the handler reads the counter. */
            void *page = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_READ, MAP_SHARED,
                              slot->fd, 0);

            if (page != MAP_FAILED) {
                slot->page = page;
                slot->page_seen = ((volatile const struct perf_event_mmap_page *)page)->lock + 1;
                slot->last_count = hyp__thread_cpu_ns(slot->tid); /* the weights start here */
            }
        }
        hyp__fd_map(slot->fd, slot);
        return 0;
    case TRIG_TIMER:
        ret = hyp_timer_thread_create(slot->tid, 0, S.signo, S.period_ns, slot, &slot->timer, msg,
                                      msglen);
        if (ret == 0)
            slot->has_timer = 1;
        return ret;
    default:
        return 0;
    }
}

/* Unmaps the slot's control page, once no handler can be reading it. */
static void hyp__unmap(hyp_slot_t *slot) {
    if (slot->page != NULL)
        munmap((void *)slot->page, (size_t)sysconf(_SC_PAGESIZE));
    slot->page = NULL;
}

/* 1 while the slot's descriptor is still its perf event. A program may
 * close descriptors it did not open (a daemon closing them all, then opening
 * its log files), and the number then names one of its files, which must
 * not be read, changed or closed. */
static int hyp__fd_ours(const hyp_slot_t *slot) {
    uint64_t id;

    if (slot->fd < 0)
        return 0;
    if (slot->perf_id == 0)
        return 1;
    return ioctl(slot->fd, PERF_EVENT_IOC_ID, &id) == 0 && id == slot->perf_id;
}

/* The slot's count now, read from outside its handler (at stop, with the
 * handler quiet), in the unit of slot->last_count: the perf event's counter
 * where the handler reads it, else the thread's CPU time. 0 when it cannot
 * be read. */
static uint64_t hyp__slot_count_now(const hyp_slot_t *slot) {
    uint64_t c;

    if (S.trigger == TRIG_PERF && slot->page == NULL)
        return hyp__fd_ours(slot) && hyp_perf_read(slot->fd, &c) == 0 ? c : 0;
    return hyp__thread_cpu_ns(slot->tid);
}

static void hyp__disarm(hyp_slot_t *slot) {
    if (slot->fd >= 0) {
        hyp__fd_map(slot->fd, NULL);
        if (hyp__fd_ours(slot)) {
            /* The mapped page keeps the event alive after close() until it
             * is unmapped: stop its signals now. */
            if (slot->page != NULL)
                ioctl(slot->fd, PERF_EVENT_IOC_DISABLE, 0);
            close(slot->fd);
        }
        slot->fd = -1;
    }
    if (slot->has_timer) {
        hyp_timer_thread_delete(slot->timer);
        slot->has_timer = 0;
    }
}

/* Registers a thread state. Returns the slot, or NULL (counted; msg set). */
static hyp_slot_t *hyp__register(PyThreadState *ts, pid_t tid, unsigned long ident, char *msg,
                                 size_t msglen) {
    hyp_slot_t *slot = NULL;
    int i, ret;

    for (i = 0; i < HYP__MAX_THREADS; i++) {
        if (!S.slots[i].used && !atomic_load(&S.slots[i].busy) &&
            !atomic_load(&S.slots[i].sbusy)) {
            slot = &S.slots[i];
            break;
        }
    }
    if (slot == NULL) {
        snprintf(msg, msglen, "more than %d threads at once", HYP__MAX_THREADS);
        hyp__lose(LOST_NO_SLOT);
        return NULL;
    }
    if (slot->ring.buf == NULL) {
        if (hyp__ring_init(&slot->ring, S.ring_words) < 0) {
            snprintf(msg, msglen, "out of memory for a sample ring");
            hyp__lose(LOST_NO_SLOT);
            return NULL;
        }
    } else {
        hyp__ring_reset(&slot->ring);
    }
    slot->index = i;
    slot->tstate = ts;
    slot->tid = tid;
    slot->ident = ident;
    slot->fd = -1;
    slot->perf_id = 0;
    slot->page = NULL;
    slot->has_timer = 0;
    slot->seen = 1;
    atomic_store(&slot->wall_last, hyp__now());
    atomic_store(&slot->wall_pending, 0);
    atomic_store(&slot->wall_ran, 0);
    slot->wall_held = 0;
    slot->wall_cache_n = 0;
    atomic_store(&slot->last_seq, 0);
    slot->rng = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)tid << 17) ^ hyp__now();
    slot->thread = HYP_NO_ID;
    slot->last_count = hyp__thread_cpu_ns(tid); /* timers' weights start here */
    if (hyp__thread_name(ident, &slot->name) != 1)
        slot->name = HYP_NO_ID;
    ret = hyp__arm(slot, msg, msglen);
    if (ret < 0) {
        hyp__lose(LOST_NO_SLOT);
        return NULL;
    }
    slot->used = 1;
    if (i >= S.nslots)
        S.nslots = i + 1;
    atomic_store(&slot->live, 1);
    return slot;
}

static void hyp__drain_all(void);

/* Stops sampling a slot; its ring must have been drained. */
static void hyp__retire(hyp_slot_t *slot) {
    atomic_store(&slot->live, 0);
    hyp__disarm(slot);
    while (atomic_load(&slot->busy) || atomic_load(&slot->sbusy))
        sched_yield();
    hyp__unmap(slot);
    atomic_fetch_add(&S.lost[LOST_RING_FULL], hyp__ring_dropped(&slot->ring));
    hyp__ring_reset(&slot->ring);
    slot->used = 0;
    slot->tstate = NULL;
    if (hyp__tls_slot == slot)
        hyp__tls_slot = NULL;
}

static hyp_slot_t *hyp__slot_of(PyThreadState *ts) {
    int i;

    for (i = 0; i < S.nslots; i++)
        if (S.slots[i].used && S.slots[i].tstate == ts)
            return &S.slots[i];
    return NULL;
}

/* Registers new thread states and retires those that are gone. */
static void hyp__sync_threads(void) {
    hyp_walk_thread_t list[256], *all = list;
    size_t n, i;
    int j;
    char msg[512];
    hyp_slot_t *slot;

    n = hyp__walk_threads(PyThreadState_GetInterpreter(PyThreadState_Get()), list, 256);
    if (n > 256) {
        all = hyp__malloc(n * sizeof(*all));
        if (all == NULL)
            return;
        n = hyp__walk_threads(PyThreadState_GetInterpreter(PyThreadState_Get()), all, n);
    }
    for (j = 0; j < S.nslots; j++)
        S.slots[j].seen = 0;
    for (i = 0; i < n; i++) {
        if (all[i].ts == S.exclude || all[i].native_id == 0)
            continue;
        slot = hyp__slot_of(all[i].ts);
        if (slot != NULL && slot->tid != (pid_t)all[i].native_id) {
            /* The thread state's memory now belongs to another thread. */
            hyp__retire(slot);
            slot = NULL;
        }
        if (slot == NULL)
            slot = hyp__register(all[i].ts, (pid_t)all[i].native_id, all[i].ident, msg,
                                 sizeof(msg));
        if (slot != NULL) {
            slot->seen = 1;
            if (slot->name == HYP_NO_ID && hyp__thread_name(slot->ident, &slot->name) != 1)
                slot->name = HYP_NO_ID;
        }
    }
    for (j = 0; j < S.nslots; j++)
        if (S.slots[j].used && !S.slots[j].seen)
            hyp__retire(&S.slots[j]);
    if (all != list)
        hyp__free(all);
}

/* ---------------------------------------------------------------- resolver */

static int hyp__poisoned(uint64_t code) {
    int i;

    for (i = 0; i < S.npoison; i++)
        if ((uint64_t)(uintptr_t)S.poison[i] == code)
            return 1;
    return 0;
}

/* Resolves the records of one ring into profile samples. */
static void hyp__drain_ring(hyp__ring_t *r) {
    uint64_t pos, hdr, code, info;
    hyp_sample_t s;
    hyp_id_t node, func;
    hyp_slot_t *slot;
    uint32_t line;
    size_t avail, len;
    int n, i, idx, ret, lost;

    avail = hyp__ring_readable(r, &pos);
    while (avail >= HYP__REC_HEAD) {
        hdr = hyp__ring_get(r, pos);
        n = (int)(hdr & 0xffff);
        len = HYP__REC_HEAD + (size_t)HYP_WALK_WORDS * (size_t)n;
        idx = (int)((hdr >> 32) & 0xffff);
        if ((hdr >> 56) != HYP__REC_MAGIC || len > avail || idx >= HYP__MAX_THREADS) {
            /* Cannot happen with whole-record commits; do not loop on it. */
            hyp__lose(LOST_RING_FULL);
            hyp__ring_release(r, avail);
            return;
        }
        slot = &S.slots[idx];
        node = HYP_ROOT_NODE;
        lost = 0;
        ret = 0;
        if ((hdr >> 16) & 1)
            ret = hyp_profile_node(S.profile, node, S.func_truncated, 0, &node);
        for (i = n - 1; i >= 0 && ret == 0 && !lost; i--) {
            code = hyp__ring_get(r, pos + HYP__REC_HEAD + (uint64_t)(2 * i));
            info = hyp__ring_get(r, pos + HYP__REC_HEAD + (uint64_t)(2 * i + 1));
            if (S.poison_overflow || (S.npoison && hyp__poisoned(code))) {
                lost = 1;
                break;
            }
            ret = hyp__codemap_resolve(code, info, &func, &line);
            if (ret == 1)
                lost = 1;
            else if (ret == 0)
                ret = hyp_profile_node(S.profile, node, func, line, &node);
        }
        if (lost) {
            hyp__lose(LOST_CODE_FREED);
        } else if (ret < 0) {
            if (S.writer_err == 0)
                S.writer_err = ret;
        } else {
            if ((ret = hyp__slot_thread(slot)) < 0 && S.writer_err == 0)
                S.writer_err = ret;
            s.thread = slot->thread;
            s.node = node;
            s.kind = (uint32_t)((hdr >> 24) & 0xff);
            s.time_ns = hyp__ring_get(r, pos + 1);
            s.weight = hyp__ring_get(r, pos + 2);
            s.labels = HYP_NO_LABELS;
            if ((ret = hyp_profile_add_sample(S.profile, &s)) < 0 && S.writer_err == 0)
                S.writer_err = ret;
        }
        hyp__ring_release(r, len);
        pos += len;
        avail -= len;
        if (avail < HYP__REC_HEAD)
            avail = hyp__ring_readable(r, &pos);
    }
}

static void hyp__drain_all(void) {
    int i;

    if (S.resolving)
        return;
    S.resolving = 1;
    if (S.wall)
        hyp__drain_ring(&S.wall_ring);
    for (i = 0; i < S.nslots; i++)
        if (S.slots[i].used)
            hyp__drain_ring(&S.slots[i].ring);
    S.resolving = 0;
    S.npoison = 0;
    S.poison_overflow = 0;
}

/* A code object dies (with the GIL, before its memory is freed): every
 * sample recorded so far that names it is resolved now, while it is whole.
 * No sample recorded later can name it: a frame holds a strong reference to
 * its code, and the wall sampler's in-flight snapshot is waited for. */
static void hyp__on_code_death(PyCodeObject *code) {
    uint64_t pos;
    int i, pending = 0;

    if (S.resolving) {
        if (S.npoison < HYP__POISON_MAX)
            S.poison[S.npoison++] = code;
        else
            S.poison_overflow = 1;
        return;
    }
    if (S.wall) {
        while (atomic_load(&S.remote_inflight))
            sched_yield();
        pending = hyp__ring_readable(&S.wall_ring, &pos) > 0;
    }
    for (i = 0; i < S.nslots && !pending; i++)
        if (S.slots[i].used && hyp__ring_readable(&S.slots[i].ring, &pos) > 0)
            pending = 1;
    if (pending)
        hyp__drain_all();
}

/* ---------------------------------------------------------------- wall sampler */

/* Time owed to a thread as a GIL holder that it stopped running before it
 * could take it (its CPU clock signals it only after a CPU period): that time
 * was spent where the thread's last self-taken sample was, so it goes there,
 * read under the seqlock; if the handler is writing it, to the next sample.
 * While the program holds the signal (S.wall_gone) it goes to no stack: the
 * thread ran on meanwhile, and its samples went to the program's handler. */
static int hyp__write_last(hyp_slot_t *slot, hyp__ring_t *ring, uint64_t weight, uint64_t now);

static void hyp__wall_owed(hyp_slot_t *slot, uint64_t now) {
    uint64_t owed = atomic_exchange(&slot->wall_pending, 0);

    if (owed != 0 && atomic_load(&S.wall_gone))
        atomic_fetch_add(&S.wall_lost_ns, owed);
    else if (owed != 0 && hyp__write_last(slot, &S.wall_ring, owed, now) < 0)
        atomic_fetch_add(&slot->wall_pending, owed);
}

/* Writes a record of weight for the stack of slot's last self-taken sample
 * into ring. Returns 0, or -1 when there is none or the handler is writing
 * it. */
static int hyp__write_last(hyp_slot_t *slot, hyp__ring_t *ring, uint64_t weight, uint64_t now) {
    uint64_t buf[HYP__REC_HEAD + HYP_WALK_WORDS * HYP__LAST_DEPTH], seq, hdr;
    int n;

    seq = atomic_load(&slot->last_seq);
    hdr = slot->last_hdr;
    n = (int)(hdr & 0xffff);
    if ((seq & 1) == 0 && seq != 0 && n > 0 && n <= HYP__LAST_DEPTH) {
        memcpy(buf + HYP__REC_HEAD, slot->last, sizeof(uint64_t) * HYP_WALK_WORDS * (size_t)n);
        if (atomic_load(&slot->last_seq) == seq) {
            buf[0] = hdr;
            buf[1] = now - S.t0;
            buf[2] = weight;
            hyp__ring_write(ring, buf, HYP__REC_HEAD + (size_t)HYP_WALK_WORDS * n);
            return 0;
        }
    }
    return -1;
}

/* Keeps the stack just read from slot's waiting thread, with the switch
 * counter it was read at (sampler thread; a failed allocation only means no
 * cache). */
static void hyp__wall_cache_keep(hyp_slot_t *slot, const uint64_t *frames, int n, int truncated,
                                 unsigned long sw) {
    if (slot->wall_cache == NULL &&
        (slot->wall_cache = malloc(sizeof(uint64_t) * HYP_WALK_WORDS * HYP_WALK_MAX_DEPTH)) ==
            NULL)
        return;
    memcpy(slot->wall_cache, frames, sizeof(uint64_t) * HYP_WALK_WORDS * (size_t)n);
    slot->wall_cache_n = n;
    slot->wall_cache_trunc = truncated;
    slot->wall_cache_sw = sw;
}

/* One tick of the wall-clock sampler for one thread. A thread that holds the
 * GIL runs Python and samples itself through its CPU trigger (in user mode
 * only, so never inside a system call); any other thread is waiting (I/O, a
 * lock, sleep, the GIL) or in C code without the GIL, and is read from here,
 * without being signalled. */
static void hyp__wall_tick(hyp_slot_t *slot, uint64_t now) {
    uint64_t buf[HYP__REC_HEAD + HYP_WALK_WORDS * HYP_WALK_MAX_DEPTH], prev, ran;
    unsigned long sw1, sw2;
    int holder = 0, holder2 = 0, last = 0, last2 = 0, truncated = 0, n, attempt, stable, cached;

    for (attempt = 0; attempt < 3; attempt++) {
        if (hyp__walk_gil_state(slot->tstate, &holder, &last, &sw1) < 0)
            return;
        if (holder) {
            /* Running Python: the sample is owed, and taken by the thread
             * itself at its next CPU-clock signal (never inside a system
             * call). With the signal taken over, no signal will take it:
             * the tick's time and what was owed before are lost. */
            prev = now - atomic_exchange(&slot->wall_last, now);
            if (atomic_load(&S.wall_gone))
                atomic_fetch_add(&S.wall_lost_ns,
                                 prev + atomic_exchange(&slot->wall_pending, 0));
            else
                atomic_fetch_add(&slot->wall_pending, prev);
            slot->wall_held = 1;
            return;
        }
        /* Its frames cannot change until it takes the GIL back, which moves
         * the switch counter unless it was the last to hold it. */
        atomic_store(&S.remote_inflight, 1);
        cached = slot->wall_cache_n > 0 && !last && sw1 == slot->wall_cache_sw;
        if (cached) {
            /* It has not taken the GIL since its stack was read: the stack is
             * the same, and its frames, which hold their code objects, are
             * all still there. A thread that waits long (a worker pool's
             * idle threads) costs a copy per tick instead of a walk through
             * process_vm_readv(). */
            n = slot->wall_cache_n;
            truncated = slot->wall_cache_trunc;
            memcpy(buf + HYP__REC_HEAD, slot->wall_cache,
                   sizeof(uint64_t) * HYP_WALK_WORDS * (size_t)n);
        } else {
            n = hyp__walk_remote(slot->tstate, (unsigned long)slot->tid, buf + HYP__REC_HEAD,
                                 S.depth, &truncated);
        }
        stable = hyp__walk_gil_state(slot->tstate, &holder2, &last2, &sw2) == 0 && sw1 == sw2 &&
                 !holder2;
        if (stable && n == HYP_WALK_OWN) {
            atomic_store(&S.remote_inflight, 0);
            hyp__lose(LOST_OWN);
            return;
        }
        if (stable && n < 0) {
            /* Its thread state is gone (the thread ended, or a C thread
             * released its PyGILState) and is retired at the next pass. */
            atomic_store(&S.remote_inflight, 0);
            hyp__lose(LOST_THREAD_EXITING);
            return;
        }
        if (stable && n >= 0) {
            if (n > 0 && !cached && !last)
                hyp__wall_cache_keep(slot, buf + HYP__REC_HEAD, n, truncated, sw1);
            prev = atomic_exchange(&slot->wall_last, now);
            ran = atomic_load(&slot->wall_ran);
            if (slot->wall_held && ran > prev && ran < now) {
                /* It held the GIL at the previous tick and still ran Python
                 * at ran: until then the time is its running stack's, not
                 * this waiting one's. This matters when this tick comes
                 * late: on a machine short of CPUs the sampler often gets
                 * one just when this thread blocks and frees its own, and
                 * the whole late interval would go to the wait. */
                atomic_fetch_add(&slot->wall_pending, ran - prev);
                prev = ran;
            }
            slot->wall_held = 0;
            hyp__wall_owed(slot, now);
            if (n == 0) {
                /* No Python frame (a thread starting or ending, or one
                 * waiting in C code called from its first call, such as
                 * _thread.start_new_thread(time.sleep, ...)): nothing was
                 * lost, and the time since the previous tick is no stack's,
                 * not the thread's next one's. */
                hyp__no_frames();
            } else {
                buf[0] = hyp__rec_header(slot->index, 0, truncated, n);
                buf[1] = now - S.t0;
                buf[2] = now - prev;
                hyp__ring_write(&S.wall_ring, buf, HYP__REC_HEAD + (size_t)HYP_WALK_WORDS * n);
            }
            atomic_store(&S.remote_inflight, 0);
            return;
        }
        atomic_store(&S.remote_inflight, 0);
    }
    hyp__lose(LOST_WALL_RACE);
}

static void *hyp__wall_main(void *arg) {
    struct timespec next;
    sigset_t all;
    uint64_t t, now;
    int i;

    (void)arg;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    t = hyp__now();
    while (!atomic_load(&S.wall_stop)) {
        t += S.period_ns;
        next.tv_sec = (time_t)(t / 1000000000u);
        next.tv_nsec = (long)(t % 1000000000u);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
            ;
        now = hyp__now();
        if (now > t + S.period_ns / 2)
            t = now; /* woke up late: no burst of catch-up ticks (weights
                      * measure the time that really passed) */
        /* Whether the program has taken the signal over, once per tick (one
         * sigaction() call): from the first tick that finds it so, the time
         * owed to GIL holders, whose samples the signal was to take, goes to
         * no stack. Found by the tick after the takeover, so at most one
         * period of time before it is counted lost with the rest. */
        if (hyp__handler_gone()) {
            atomic_store(&S.wall_gone, 1);
            atomic_store(&S.wall_gone_seen, 1);
        } else {
            atomic_store(&S.wall_gone, 0);
        }
        for (i = 0; i < S.nslots && !atomic_load(&S.wall_stop); i++) {
            hyp_slot_t *slot = &S.slots[i];

            atomic_store(&slot->sbusy, 1);
            if (atomic_load(&slot->live))
                hyp__wall_tick(slot, now);
            atomic_store(&slot->sbusy, 0);
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- Python API */

static PyObject *hyp__raise(PyObject *cls, const char *msg) {
    PyErr_SetString(cls != NULL ? cls : PyExc_RuntimeError, msg);
    return NULL;
}

/* Tries to open the trigger on the calling thread (the first registration).
 * Returns 0, or a HYP_E* code with msg set. */
static int hyp__probe_event(const char *name, uint64_t period, int freq, char *msg,
                            size_t msglen) {
    int ret;

    memset(&S.event, 0, sizeof(S.event));
    S.event.size = sizeof(S.event);
    ret = hyp_perf_encode(name, &S.event, msg, msglen);
    if (ret < 0)
        return ret;
    memset(&S.pcfg, 0, sizeof(S.pcfg));
    S.pcfg.size = sizeof(S.pcfg);
    S.pcfg.signo = S.signo;
    if (freq && S.event.is_clock) {
        S.pcfg.period = 1000000000u / period; /* ns per sample */
        S.pcfg.freq = 0;
    } else {
        S.pcfg.period = period;
        S.pcfg.freq = freq;
    }
    return 0;
}

static void hyp__reset_session(void) {
    int i;

    if (S.slots != NULL) {
        for (i = 0; i < HYP__MAX_THREADS; i++) {
            hyp__ring_destroy(&S.slots[i].ring);
            free(S.slots[i].wall_cache);
        }
        hyp__free(S.slots);
    }
    hyp__free(S.fd_slot);
    hyp__ring_destroy(&S.wall_ring);
    S.slots = NULL;
    S.fd_slot = NULL;
    S.nslots = 0;
    Py_CLEAR(S.threads_active);
}

/* What every producer says about the run, at the start of this session. */
static int hyp__set_run_meta(void) {
    struct timespec now;
    int rc;

    clock_gettime(CLOCK_REALTIME, &now);
    rc = hyp_py_set_run_meta(S.profile, (double)now.tv_sec + now.tv_nsec * 1e-9, NULL);
    if (rc < 0) {
        PyErr_Format(PyExc_MemoryError, "cannot set the trace's header: %s", hyp_strerror(rc));
        return -1;
    }
    return 0;
}

static void hyp__free_profile(void) {
    if (S.writer != NULL)
        hyp_writer_close(S.writer);
    S.writer = NULL;
    if (S.profile != NULL)
        hyp_profile_free(S.profile);
    S.profile = NULL;
}

/* Undoes a start that failed after the threads were registered: stops the
 * sampling, retires every slot and forgets the session. */
static void hyp__undo_start(void) {
    int i;

    atomic_store(&S.active, 0);
    for (i = 0; i < S.nslots; i++)
        if (S.slots[i].used)
            hyp__retire(&S.slots[i]);
    S.running = 0;
    hyp__codemap_stop();
    hyp__free_profile();
    hyp__reset_session();
}

/* start(path, event, clock, period, frequency, depth, signo, ring_words,
 *       meta, disable, threads_active, kinds, memory) -> dict */
/* The "[truncated]" function the samples deeper than the depth start with,
 * in p (each session's profile and each window's). Returns 0 or an HYP_E*
 * code. */
static int hyp__declare_truncated(hyp_profile_t *p) {
    hyp_func_t tf;
    int rc;

    if ((rc = hyp_profile_string(p, "[truncated]", 11, &tf.name)) < 0 ||
        (rc = hyp_profile_string(p, "", 0, &tf.file)) < 0)
        return rc;
    tf.lineno = 0;
    tf.kind = HYP_FUNC_SPECIAL;
    return hyp_profile_func(p, &tf, &S.func_truncated);
}

static PyObject *sampler_start(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"path", "event", "clock", "period", "frequency", "depth", "signo",
                             "ring_words", "meta", "disable", "threads_active", "kinds",
                             "memory", NULL};
    const char *path, *event = NULL, *clock = "cpu";
    unsigned long long period = 0;
    double frequency = 0;
    int depth = 128, signo = SIGPROF, ring_words = 1 << 17, ret, i;
    PyObject *meta = NULL, *disable = NULL, *active = NULL;
    PyObject *extra = NULL;
    int memory = 0;
    const char *xname[HYP__MAX_KINDS], *xunit[HYP__MAX_KINDS];
    char xcount[HYP__MAX_KINDS][80];
    Py_ssize_t nextra = 0;
    char msg[1024], chainbuf[8][512], evname[64];
    const char *chain[8];
    size_t nchain = 0;
    int dis_perf = 0, dis_hw = 0, dis_timer = 0, dis_itimer = 0;
    hyp_metric_t metrics[2 * HYP__MAX_KINDS + HYP_PY_ALLOC_NMETRICS];
    size_t nmetrics;
    hyp_sample_kind_t kind;
    struct rlimit rl;
    hyp_slot_t *first;
    uint64_t hz;
    PyObject *result;

    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "z|zsKdiiiOOOOp", kwlist, &path, &event, &clock,
                                     &period, &frequency, &depth, &signo, &ring_words, &meta,
                                     &disable, &active, &extra, &memory))
        return NULL;
    if (S.running)
        return hyp__raise(hyp_py_profiler_error(), "a sampling profiler is already running in this "
                                                     "process; stop it first");
    if (path == NULL && memory)
        return hyp__raise(hyp_py_profiler_error(),
                          "memory sampling is not available in windows yet: "
                          "the allocation samples are merged at stop");
    if (extra != NULL && extra != Py_None) {
        Py_ssize_t k;

        if (!PyList_Check(extra) || PyList_GET_SIZE(extra) > HYP__MAX_KINDS - 1)
            return hyp__raise(PyExc_TypeError, "kinds must be a list of at most 7 (name, unit)");
        nextra = PyList_GET_SIZE(extra);
        for (k = 0; k < nextra; k++) {
            if (!PyArg_ParseTuple(PyList_GET_ITEM(extra, k), "ss", &xname[k], &xunit[k]))
                return NULL;
            snprintf(xcount[k], sizeof(xcount[k]), "%s_samples", xname[k]);
        }
    }
    if (strcmp(clock, "cpu") != 0 && strcmp(clock, "wall") != 0)
        return hyp__raise(hyp_py_profiler_error(), "clock must be \"cpu\" or \"wall\"");
    if (depth < 1 || depth > HYP_WALK_MAX_DEPTH) {
        snprintf(msg, sizeof(msg), "depth must be between 1 and %d, not %d", HYP_WALK_MAX_DEPTH,
                 depth);
        return hyp__raise(hyp_py_profiler_error(), msg);
    }
    if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP) {
        snprintf(msg, sizeof(msg), "signal %d cannot carry samples; use SIGPROF or a real-time "
                                   "signal (SIGRTMIN to SIGRTMAX)", signo);
        return hyp__raise(hyp_py_profiler_error(), msg);
    }
    if (period == 0 && frequency <= 0)
        frequency = 100;
    if (frequency > 0 && (frequency < 1 || frequency > 20000)) {
        snprintf(msg, sizeof(msg), "frequency must be between 1 and 20000 Hz, not %g", frequency);
        return hyp__raise(hyp_py_profiler_error(), msg);
    }
    if (ring_words < 1024 || ring_words > (1 << 26))
        return hyp__raise(hyp_py_profiler_error(), "ring_words must be between 1024 and 2**26");
    if (disable != NULL && disable != Py_None) {
        PyObject *seq = PySequence_Fast(disable, "disable must be a sequence of trigger names");
        Py_ssize_t k;

        if (seq == NULL)
            return NULL;
        for (k = 0; k < PySequence_Fast_GET_SIZE(seq); k++) {
            const char *d = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, k));
            if (d == NULL) {
                Py_DECREF(seq);
                return NULL;
            }
            dis_perf |= strcmp(d, "perf") == 0;
            dis_hw |= strcmp(d, "hardware") == 0;
            dis_timer |= strcmp(d, "timer") == 0;
            dis_itimer |= strcmp(d, "itimer") == 0;
        }
        Py_DECREF(seq);
    }

    memset(&S.lost, 0, sizeof(S.lost));
    atomic_store(&S.no_frames, 0);
    atomic_store(&S.wall_gone, 0);
    atomic_store(&S.wall_gone_seen, 0);
    atomic_store(&S.wall_lost_ns, 0);
    S.handler_gone_seen = 0;
    S.wall = strcmp(clock, "wall") == 0;
    S.signo = signo;
    S.depth = depth;
    S.pid = getpid();
    S.ring_words = (size_t)ring_words;
    hz = frequency > 0 ? (uint64_t)frequency : 0;
    S.period_ns = hz ? 1000000000u / hz : period;
    hyp_clock_init(0); /* calibrated once per process, about 10 ms */
    S.ns_per_tick = hyp_clock_ns_per_tick();
    hyp__free_profile();
    hyp__reset_session();
    S.slots = hyp__calloc(HYP__MAX_THREADS, sizeof(hyp_slot_t));
    S.fd_slot_len = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)S.fd_slot_len)
        S.fd_slot_len = (int)rl.rlim_cur;
    S.fd_slot = hyp__calloc((size_t)S.fd_slot_len, sizeof(hyp_slot_t *));
    if (S.slots == NULL || S.fd_slot == NULL ||
        (S.wall && hyp__ring_init(&S.wall_ring, S.ring_words * 2) < 0)) {
        hyp__reset_session();
        return PyErr_NoMemory();
    }
    if (hyp__walk_guard_install() < 0) {
        hyp__reset_session();
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (hyp__install(signo, msg, sizeof(msg)) < 0) {
        hyp__reset_session();
        return hyp__raise(hyp_py_profiler_error(), msg);
    }

    /* Choose the trigger: the event named, or the first that works of
     * hardware cycles, a software perf event, a POSIX CPU timer, setitimer.
     * Each step tried is reported. */
    S.trigger = TRIG_NONE;
    snprintf(evname, sizeof(evname), "%s", S.wall ? "wall-time" : "cpu-time");
    if (S.wall) {
        if (event != NULL) {
            hyp__reset_session();
            return hyp__raise(hyp_py_profiler_error(),
                              "clock=\"wall\" samples on elapsed time and takes no event; give "
                              "either event= (CPU events) or clock=\"wall\"");
        }
        if (!hyp__walk_remote_available()) {
            hyp__reset_session();
            return hyp__raise(hyp_py_profiler_error(),
                              "clock=\"wall\" needs process_vm_readv() to read waiting threads' "
                              "stacks, and this process may not use it (seccomp?); use "
                              "clock=\"cpu\"");
        }
        /* Waiting threads: the sampler thread. Running ones: their own CPU
         * clock, chosen below (no hardware counter, no process-wide timer). */
        snprintf(chainbuf[nchain], sizeof(chainbuf[0]), "wall-sampler: used for waiting threads");
        chain[nchain] = chainbuf[nchain];
        nchain++;
        dis_hw = 1;
        dis_itimer = 1;
    }
    if (!S.wall && event != NULL) {
        ret = hyp__probe_event(event, hz ? hz : period, hz != 0, msg, sizeof(msg));
        if (ret == 0) {
            /* Open it once on this thread to learn whether it works here. */
            int fd = -1;

            ret = hyp_perf_open(&S.event, &S.pcfg, 0, &fd, msg, sizeof(msg));
            if (fd >= 0)
                close(fd);
        }
        if (ret < 0) {
            char full[1200];

            snprintf(full, sizeof(full), "event=%s: %s", event, msg);
            hyp__reset_session();
            return hyp__raise(hyp_py_event_error(), full);
        }
        S.trigger = TRIG_PERF;
        snprintf(evname, sizeof(evname), "%s", event);
        snprintf(chainbuf[nchain], sizeof(chainbuf[0]), "%s: used", event);
        chain[nchain] = chainbuf[nchain];
        nchain++;
    } else {
        static const char *const tries[] = {"cycles", "cpu-clock"};
        size_t t;

        for (t = 0; t < 2 && S.trigger == TRIG_NONE; t++) {
            int fd = -1;

            if (dis_perf || (t == 0 && dis_hw)) {
                snprintf(chainbuf[nchain], sizeof(chainbuf[0]), "%s: disabled", tries[t]);
            } else {
                ret = hyp__probe_event(tries[t], hz ? hz : period, hz != 0, msg, sizeof(msg));
                if (ret == 0)
                    ret = hyp_perf_open(&S.event, &S.pcfg, 0, &fd, msg, sizeof(msg));
                if (fd >= 0)
                    close(fd);
                if (ret == 0) {
                    S.trigger = TRIG_PERF;
                    if (!S.wall)
                        snprintf(evname, sizeof(evname), "%s", tries[t]);
                    snprintf(chainbuf[nchain], sizeof(chainbuf[0]), "%s: used", tries[t]);
                } else {
                    snprintf(chainbuf[nchain], sizeof(chainbuf[0]), "%s: %s (%.440s)", tries[t],
                             hyp_err_name(ret), msg);
                }
            }
            chain[nchain] = chainbuf[nchain];
            nchain++;
        }
        if (S.trigger == TRIG_NONE) {
            timer_t t0;

            if (dis_timer) {
                snprintf(chainbuf[nchain], sizeof(chainbuf[0]), "posix-timer: disabled");
            } else if ((ret = hyp_timer_thread_create(0, 0, signo, S.period_ns, NULL, &t0, msg,
                                                      sizeof(msg))) == 0) {
                hyp_timer_thread_delete(t0);
                S.trigger = TRIG_TIMER;
                snprintf(chainbuf[nchain], sizeof(chainbuf[0]), "posix-timer: used");
            } else {
                snprintf(chainbuf[nchain], sizeof(chainbuf[0]), "posix-timer: %s (%.440s)",
                         hyp_err_name(ret), msg);
            }
            chain[nchain] = chainbuf[nchain];
            nchain++;
        }
        if (S.trigger == TRIG_NONE) {
            if (dis_itimer)
                snprintf(chainbuf[nchain], sizeof(chainbuf[0]), "setitimer: disabled");
            else if (signo != SIGPROF)
                snprintf(chainbuf[nchain], sizeof(chainbuf[0]),
                         "setitimer: needs signal SIGPROF, not %d", signo);
            else
                S.trigger = TRIG_ITIMER;
            if (S.trigger == TRIG_ITIMER)
                snprintf(chainbuf[nchain], sizeof(chainbuf[0]), "setitimer: used");
            chain[nchain] = chainbuf[nchain];
            nchain++;
        }
        if (S.trigger == TRIG_NONE) {
            size_t k, used = 0;

            used += (size_t)snprintf(msg, sizeof(msg), "no sampling trigger works here:");
            for (k = 0; k < nchain && used < sizeof(msg); k++)
                used += (size_t)snprintf(msg + used, sizeof(msg) - used, " %s;", chain[k]);
            hyp__reset_session();
            return hyp__raise(hyp_py_event_error(), msg);
        }
    }

    /* The profile, its sample kind, and the trace header. */
    metrics[0].name = "samples";
    metrics[0].unit = "count";
    metrics[0].kind = HYP_METRIC_OWN;
    metrics[1].name = evname;
    metrics[1].unit = (S.trigger != TRIG_PERF || S.event.is_clock) ? "ns" : "events";
    metrics[1].kind = HYP_METRIC_OWN;
    for (i = 0; i < (int)nextra; i++) {
        metrics[2 + 2 * i].name = xcount[i];
        metrics[2 + 2 * i].unit = "count";
        metrics[2 + 2 * i].kind = HYP_METRIC_OWN;
        metrics[3 + 2 * i].name = xname[i];
        metrics[3 + 2 * i].unit = xunit[i];
        metrics[3 + 2 * i].kind = HYP_METRIC_OWN;
    }
    nmetrics = 2 + 2 * (size_t)nextra;
    if (memory) {
        /* The allocation collector's columns (pyext/alloc.c), merged at stop. */
        memcpy(metrics + nmetrics, hyp_py_alloc_metrics, sizeof(hyp_py_alloc_metrics));
        nmetrics += HYP_PY_ALLOC_NMETRICS;
    }
    S.profile = hyp_profile_new(HYP_MODE_SAMPLING, metrics, nmetrics);
    if (S.profile == NULL) {
        hyp__reset_session();
        return PyErr_NoMemory();
    }
    S.kinds = 0;
    for (i = 0; i <= (int)nextra; i++) {
        uint32_t k;

        kind.name = metrics[1 + 2 * i].name;
        kind.unit = metrics[1 + 2 * i].unit;
        kind.count_metric = (uint32_t)(2 * i);
        kind.weight_metric = (uint32_t)(2 * i + 1);
        if (hyp_profile_sample_kind(S.profile, &kind, &k) < 0)
            goto nomem;
        snprintf(S.kind_names[i], sizeof(S.kind_names[i]), "%s", kind.name);
    }
    S.kinds = (uint32_t)nextra + 1;
    S.memory = memory;
    if (memory && hyp_py_alloc_declare(S.profile) < 0)
        goto nomem;
    hyp_profile_set_node_limit(S.profile, 1000000);
    if (hyp__declare_truncated(S.profile) < 0)
        goto nomem;
    if ((meta != NULL && meta != Py_None && hyp_py_set_meta_dict(S.profile, meta) < 0) ||
        hyp__set_run_meta() < 0) {
        hyp__free_profile();
        hyp__reset_session();
        return NULL;
    }
    if (hyp_profile_set_meta_str(S.profile, "clock", clock) < 0 ||
        hyp_profile_set_meta_str(S.profile, "trigger",
                                 S.wall ? "wall-sampler" : hyp__trig_names[S.trigger]) < 0 ||
        (S.wall && hyp_profile_set_meta_str(S.profile, "running_trigger",
                                            hyp__trig_names[S.trigger]) < 0) ||
        hyp_profile_set_meta_str(S.profile, "event", S.trigger == TRIG_PERF ? evname : evname) <
            0 ||
        hyp_profile_set_meta_strv(S.profile, "fallback", chain, nchain) < 0 ||
        hyp_profile_set_meta_int(S.profile, "signal", signo) < 0 ||
        hyp_profile_set_meta_int(S.profile, "depth", depth) < 0)
        goto nomem;
    if (S.trigger == TRIG_PERF) {
        if (hyp_profile_set_meta_str(S.profile, "event_name", S.event.name) < 0 ||
            hyp_profile_set_meta_str(S.profile, "event_pmu", S.event.pmu) < 0)
            goto nomem;
        if (S.pcfg.freq)
            ret = hyp_profile_set_meta_int(S.profile, "frequency", (int64_t)S.pcfg.period);
        else
            ret = hyp_profile_set_meta_int(S.profile, "period", (int64_t)S.pcfg.period);
        if (ret < 0)
            goto nomem;
        if (hz && hyp_profile_set_meta_int(S.profile, "frequency", (int64_t)hz) < 0)
            goto nomem;
    } else {
        if (hyp_profile_set_meta_int(S.profile, "period", (int64_t)S.period_ns) < 0 ||
            hyp_profile_set_meta_int(S.profile, "frequency",
                                     (int64_t)(1000000000u / (S.period_ns ? S.period_ns : 1))) < 0)
            goto nomem;
    }
    /* No path: windows. The profile stays in memory and is handed out by
     * hyp__take_window(); nothing is streamed. */
    if (path != NULL && (ret = hyp_writer_open(&S.writer, path)) < 0) {
        snprintf(msg, sizeof(msg), "cannot open the trace file %s: %s", path, strerror(errno));
        hyp__free_profile();
        hyp__reset_session();
        return hyp__raise(PyExc_OSError, msg);
    }
    if (S.writer != NULL && hyp_writer_begin(S.writer, S.profile) < 0) {
        snprintf(msg, sizeof(msg), "cannot write the trace header to %s", path);
        hyp__free_profile();
        hyp__reset_session();
        return hyp__raise(PyExc_OSError, msg);
    }
    S.writer_err = 0;
    if (hyp__codemap_start(S.profile, hyp__on_code_death) < 0) {
        hyp__free_profile();
        hyp__reset_session();
        return NULL;
    }
    if (active != NULL && active != Py_None)
        S.threads_active = Py_NewRef(active);
    S.exclude = NULL;
    S.t0 = hyp__now();
    S.window_start = S.t0;
    memset(S.lost_given, 0, sizeof S.lost_given);
    S.no_frames_given = 0;
    S.running = 1;
    hyp__walk_gil_bind(PyThreadState_Get());
    atomic_store(&S.active, 1);

    /* Every thread that exists now, this one first (its trigger was probed). */
    first = hyp__register(PyThreadState_Get(), (pid_t)syscall(SYS_gettid),
                          PyThread_get_thread_ident(), msg, sizeof(msg));
    if (first == NULL) {
        atomic_store(&S.active, 0);
        S.running = 0;
        hyp__codemap_stop();
        hyp__free_profile();
        hyp__reset_session();
        return hyp__raise(hyp_py_event_error(), msg);
    }
    hyp__tls_slot = first;
    hyp__sync_threads();
    if (S.trigger == TRIG_ITIMER && (ret = hyp_itimer_set(S.period_ns, msg, sizeof(msg))) < 0) {
        hyp__undo_start();
        return hyp__raise(hyp_py_event_error(), msg);
    }
    if (S.wall) {
        atomic_store(&S.wall_stop, 0);
        if (pthread_create(&S.wall_thread, NULL, hyp__wall_main, NULL) != 0) {
            hyp__undo_start();
            return hyp__raise(hyp_py_profiler_error(),
                              "cannot start the wall-clock sampler thread");
        }
        S.wall_started = 1;
    }
    result = Py_BuildValue(
        "{s:s,s:s,s:s,s:K,s:K,s:i,s:N}", "trigger",
        S.wall ? "wall-sampler" : hyp__trig_names[S.trigger], "event", evname,
        "event_name", S.trigger == TRIG_PERF ? S.event.name : evname, "period",
        (unsigned long long)(S.trigger == TRIG_PERF && !S.pcfg.freq ? S.pcfg.period : S.period_ns),
        "frequency", (unsigned long long)(hz ? hz : (S.period_ns ? 1000000000u / S.period_ns : 0)),
        "signal", signo, "fallback", PyList_New(0));
    if (result != NULL) {
        PyObject *lst = PyDict_GetItemString(result, "fallback");
        size_t k;

        for (k = 0; k < nchain; k++) {
            PyObject *s = PyUnicode_FromString(chain[k]);
            if (s == NULL || PyList_Append(lst, s) < 0) {
                Py_XDECREF(s);
                Py_DECREF(result);
                return NULL;
            }
            Py_DECREF(s);
        }
    }
    return result;
nomem:
    hyp__free_profile();
    hyp__reset_session();
    return PyErr_NoMemory();
}

static PyObject *sampler_register_thread(PyObject *self, PyObject *noargs) {
    PyThreadState *ts = PyThreadState_Get();
    hyp_slot_t *slot;
    char msg[512];

    (void)self;
    (void)noargs;
    if (!S.running)
        Py_RETURN_FALSE;
    slot = hyp__slot_of(ts);
    if (slot != NULL && slot->tid != (pid_t)syscall(SYS_gettid)) {
        hyp__drain_all();
        hyp__retire(slot);
        slot = NULL;
    }
    if (slot == NULL)
        slot = hyp__register(ts, (pid_t)syscall(SYS_gettid), PyThread_get_thread_ident(), msg,
                             sizeof(msg));
    if (slot == NULL)
        Py_RETURN_FALSE;
    /* The resolver's enumeration may have found the thread state before
     * threading had named the thread; it has now (this runs from the thread
     * hook, in the thread's first call), and the thread may end before the
     * resolver next looks. */
    if (slot->name == HYP_NO_ID && hyp__thread_name(slot->ident, &slot->name) != 1)
        slot->name = HYP_NO_ID;
    hyp__tls_slot = slot;
    Py_RETURN_TRUE;
}

/* Marks the calling thread as the resolver: never sampled. */
static PyObject *sampler_exclude_thread(PyObject *self, PyObject *noargs) {
    PyThreadState *ts = PyThreadState_Get();
    hyp_slot_t *slot;

    (void)self;
    (void)noargs;
    if (!S.running)
        Py_RETURN_NONE;
    S.exclude = ts;
    slot = hyp__slot_of(ts);
    if (slot != NULL) {
        hyp__drain_all();
        hyp__retire(slot);
    }
    Py_RETURN_NONE;
}

static int hyp__flush(void) {
    int ret;

    if (S.writer == NULL)
        return 0;
    ret = hyp_writer_flush(S.writer, S.profile);
    if (ret < 0 && S.writer_err == 0)
        S.writer_err = ret;
    return ret;
}

/* The resolver's periodic work: resolve, follow threads, flush a chunk. */
static PyObject *sampler_sync(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    if (!S.running)
        Py_RETURN_FALSE;
    if (!S.handler_gone_seen && hyp__handler_gone())
        S.handler_gone_seen = 1;
    hyp__drain_all();
    hyp__sync_threads();
    hyp__flush();
    Py_RETURN_TRUE;
}

static PyObject *hyp__stats_dict(void) {
    PyObject *d = PyDict_New(), *lost;
    size_t entries;
    uint64_t deaths;
    int i;

    if (d == NULL)
        return NULL;
    lost = PyDict_New();
    if (lost == NULL || PyDict_SetItemString(d, "lost", lost) < 0) {
        Py_XDECREF(lost);
        Py_DECREF(d);
        return NULL;
    }
    Py_DECREF(lost);
    for (i = 0; i < LOST_COUNT; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(atomic_load(&S.lost[i]));
        if (v == NULL || PyDict_SetItemString(lost, hyp__lost_names[i], v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(v);
    }
    hyp__codemap_stats(&entries, &deaths);
    {
        PyObject *v;
#define HYP__SET(name, expr)                                                  \
    v = (expr);                                                               \
    if (v == NULL || PyDict_SetItemString(d, name, v) < 0) {                  \
        Py_XDECREF(v);                                                        \
        Py_DECREF(d);                                                         \
        return NULL;                                                          \
    }                                                                         \
    Py_DECREF(v);
        HYP__SET("samples", PyLong_FromUnsignedLongLong(
                                S.profile ? hyp_profile_sample_total(S.profile) : 0));
        HYP__SET("no_python_frames", PyLong_FromUnsignedLongLong(atomic_load(&S.no_frames)));
        HYP__SET("code_deaths", PyLong_FromUnsignedLongLong(deaths));
        HYP__SET("code_cached", PyLong_FromSize_t(entries));
        HYP__SET("running", PyBool_FromLong(S.running));
        HYP__SET("threads", PyLong_FromSize_t(S.profile ? hyp_profile_thread_count(S.profile)
                                                        : 0));
#undef HYP__SET
    }
    return d;
}

static PyObject *sampler_stats(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    return hyp__stats_dict();
}

/* Adds the losses counted since the previous window (or the session's
 * start) to p's dropped counts: samples that never reached the profile,
 * reported in the window they were lost in. A ring's refusals are counted
 * when its thread is retired; live rings are read here. The samples that
 * found no Python frame, which are no loss, go apart, in the header's
 * "no_python_frames" (written with the end record). Returns 0 or an HYP_E*
 * code. */
static int hyp__add_losses(hyp_profile_t *p) {
    uint64_t ring = 0, n;
    int i;

    for (i = 0; i < S.nslots; i++)
        if (S.slots[i].used)
            ring += hyp__ring_dropped(&S.slots[i].ring);
    if (S.wall && S.running)
        ring += hyp__ring_dropped(&S.wall_ring);
    for (i = 0; i < LOST_COUNT; i++) {
        n = atomic_load(&S.lost[i]) + (i == LOST_RING_FULL ? ring : 0);
        if (n > S.lost_given[i])
            hyp_profile_add_dropped(p, hyp__lost_names[i], n - S.lost_given[i]);
        S.lost_given[i] = n;
    }
    n = atomic_load(&S.no_frames);
    i = hyp_profile_set_meta_int(p, "no_python_frames", (int64_t)(n - S.no_frames_given));
    S.no_frames_given = n;
    return i;
}

/* Sets p's "window_start" and "window_end" (Unix seconds) and "duration":
 * from the previous window's end (or the session's start) to now, which
 * begins the next one. Returns 0 or an HYP_E* code. */
static int hyp__end_window(hyp_profile_t *p) {
    struct timespec wall;
    uint64_t now = hyp__now();
    double end, start;
    int rc;

    clock_gettime(CLOCK_REALTIME, &wall);
    end = (double)wall.tv_sec + wall.tv_nsec * 1e-9;
    start = end - (double)(now - S.window_start) * 1e-9;
    if ((rc = hyp_profile_set_meta_float(p, "window_start", start)) < 0 ||
        (rc = hyp_profile_set_meta_float(p, "window_end", end)) < 0 ||
        (rc = hyp_profile_set_meta_float(p, "duration", end - start)) < 0)
        return rc;
    S.window_start = now;
    return 0;
}

/* Hands out the profile recorded since the session started or the previous
 * window, and goes on in a fresh one of the same shape: the string, function,
 * call-path and thread tables start empty, so a service that runs for days
 * with code churn holds only what the current window saw. The slots' thread
 * ids and the code map's function ids belong to the profile and are made
 * again in the new one; the code map keeps its line tables. Returns the old
 * profile, its window's times and losses set, or NULL with an HYP_E* code in
 * *rc. With the GIL, while the session runs. */
static hyp_profile_t *hyp__take_window(int *rc) {
    hyp_profile_t *old = S.profile, *fresh;
    int i;

    hyp__drain_all();
    hyp__sync_threads();
    fresh = hyp_profile_new_like(old);
    if (fresh == NULL || (*rc = hyp__declare_truncated(fresh)) < 0) {
        *rc = fresh == NULL ? HYP_ENOMEM : *rc;
        hyp_profile_free(fresh);
        return NULL;
    }
    for (i = 0; i < S.nslots; i++) {
        hyp_slot_t *slot = &S.slots[i];
        size_t len;
        const char *name;

        if (!slot->used)
            continue;
        slot->thread = HYP_NO_ID;
        if (slot->name != HYP_NO_ID) {
            name = hyp_profile_string_at(old, slot->name, &len);
            if (name == NULL || hyp_profile_string(fresh, name, len, &slot->name) < 0)
                slot->name = HYP_NO_ID; /* named again at its next sample */
        }
    }
    if ((*rc = hyp__add_losses(old)) < 0 || (*rc = hyp__end_window(old)) < 0) {
        hyp_profile_free(fresh);
        return NULL;
    }
    S.profile = fresh;
    hyp__codemap_rebind(fresh);
    return old;
}

/* Stops the session: triggers off, every ring resolved, the trace finished.
 * Returns the statistics. */
static PyObject *sampler_stop(PyObject *self, PyObject *noargs) {
    int i, ret, gone;
    char msg[256];

    (void)self;
    (void)noargs;
    if (!S.running)
        return hyp__raise(hyp_py_profiler_error(), "the sampling profiler is not running");
    atomic_store(&S.active, 0);
    gone = hyp__handler_gone();
    if (!S.wall && !gone && S.handler_gone_seen)
        atomic_fetch_add(&S.lost[LOST_HANDLER_GONE], 1); /* it came back: at least one */
    if (S.trigger == TRIG_ITIMER)
        hyp_itimer_set(0, NULL, 0);
    if (S.wall_started) {
        atomic_store(&S.wall_stop, 1);
        Py_BEGIN_ALLOW_THREADS
        pthread_join(S.wall_thread, NULL);
        Py_END_ALLOW_THREADS
        S.wall_started = 0;
    }
    if (S.wall) {
        /* A last tick for every thread (the sampler thread has ended, the
         * handlers record nothing more): the time since its previous tick,
         * and the time it owed as a GIL holder, go to its stacks instead of
         * nowhere, so that each thread's weights add up to its wall time;
         * to the loss while the program holds the signal, as at every tick. */
        PyThreadState *self_ts = PyThreadState_Get();
        uint64_t now = hyp__now(), lost;

        /* The sampler has ended: these ticks are the last, and see the
         * handler as it is now. */
        atomic_store(&S.wall_gone, gone);
        for (i = 0; i < S.nslots; i++) {
            hyp_slot_t *slot = &S.slots[i];

            if (!slot->used || !atomic_load(&slot->live))
                continue;
            if (slot->tstate == self_ts) {
                hyp__wall_owed(slot, now);
                if (gone) {
                    atomic_fetch_add(&S.wall_lost_ns,
                                     now - atomic_exchange(&slot->wall_last, now));
                } else if (hyp__claim(slot) == 0) {
                    hyp__capture(slot, 0, now - atomic_exchange(&slot->wall_last, now), 0);
                    atomic_store(&slot->busy, 0);
                }
            } else {
                hyp__wall_tick(slot, now);
                hyp__wall_owed(slot, now);
            }
        }
        /* The running threads' time while the program held the signal, as
         * samples of the period (the waiting threads were still read); at
         * least one if it ever held it, so that the stop warns. */
        lost = (atomic_load(&S.wall_lost_ns) + S.period_ns / 2) / (S.period_ns ? S.period_ns : 1);
        if (lost == 0 && (gone || S.handler_gone_seen || atomic_load(&S.wall_gone_seen)))
            lost = 1;
        atomic_fetch_add(&S.lost[LOST_HANDLER_GONE], lost);
    } else if (gone) {
        /* The program took the signal: what each thread ran since its last
         * sample went to the program's handler, about one sample per period
         * (a frequency-driven counter's period is unknown: at least one). */
        uint64_t missed = 0, per = S.trigger == TRIG_PERF ? (S.pcfg.freq ? 0 : S.pcfg.period)
                                                          : S.period_ns;

        for (i = 0; i < S.nslots; i++) {
            hyp_slot_t *slot = &S.slots[i];
            uint64_t c;

            if (!slot->used || !atomic_load(&slot->live))
                continue;
            while (atomic_load(&slot->busy))
                sched_yield();
            if ((c = hyp__slot_count_now(slot)) > slot->last_count)
                missed += per ? (c - slot->last_count) / per : 1;
        }
        atomic_fetch_add(&S.lost[LOST_HANDLER_GONE], missed ? missed : 1);
    } else if (S.trigger != TRIG_NONE) {
        /* The stopping thread's CPU time since its last sample (which a
         * timer on a loaded machine delivers late, see the handler) goes to
         * that sample's stack, so that its weights add up to its CPU time. */
        hyp_slot_t *slot = hyp__slot_of(PyThreadState_Get());
        uint64_t c;

        if (slot != NULL && atomic_load(&slot->live)) {
            while (atomic_load(&slot->busy))
                sched_yield();
            if ((c = hyp__slot_count_now(slot)) > slot->last_count)
                hyp__write_last(slot, &slot->ring, c - slot->last_count, hyp__now());
        }
    }
    for (i = 0; i < S.nslots; i++) {
        if (!S.slots[i].used)
            continue;
        hyp__disarm(&S.slots[i]);
        while (atomic_load(&S.slots[i].busy))
            sched_yield();
    }
    hyp__drain_all();
    for (i = 0; i < S.nslots; i++)
        if (S.slots[i].used)
            hyp__retire(&S.slots[i]);
    if (S.wall)
        atomic_fetch_add(&S.lost[LOST_RING_FULL], hyp__ring_dropped(&S.wall_ring));
    S.running = 0;
    hyp__codemap_stop();
    if (S.memory && (ret = hyp_py_alloc_merge(S.profile)) < 0 && ret != HYP_ESTATE &&
        S.writer_err == 0)
        S.writer_err = ret;
    if ((ret = hyp__add_losses(S.profile)) < 0 && S.writer_err == 0)
        S.writer_err = ret;
    if (S.writer == NULL && (ret = hyp__end_window(S.profile)) < 0 && S.writer_err == 0)
        S.writer_err = ret; /* windows: the last one ends here */
    hyp__flush();
    ret = 0;
    if (S.writer != NULL) {
        ret = hyp_writer_finish(S.writer, S.profile);
        if (ret == 0)
            ret = hyp_writer_close(S.writer);
        else
            hyp_writer_close(S.writer);
        S.writer = NULL;
    }
    if (ret == 0)
        ret = S.writer_err;
    Py_CLEAR(S.threads_active);
    if (ret < 0) {
        snprintf(msg, sizeof(msg), "the sampling trace could not be completed: %s",
                 hyp_strerror(ret));
        return hyp__raise(PyExc_OSError, msg);
    }
    return hyp__stats_dict();
}

/* _sampler_window() -> capsule: the profile of the samples since the session
 * started or the previous window, while a session without a stream runs;
 * after its stop, the last of them, once. Windows are added up into Traces
 * by _hyprof.merge_profiles(), which a consumer asks for when it needs one. */
static PyObject *sampler_window(PyObject *self, PyObject *noargs) {
    hyp_profile_t *p;
    int rc = 0;

    (void)self;
    (void)noargs;
    if (S.profile == NULL)
        return hyp__raise(hyp_py_profiler_error(), "no sampling session to take a window of");
    if (S.writer != NULL)
        return hyp__raise(hyp_py_profiler_error(),
                          "this sampling session streams to a file; windows are taken from a "
                          "session started without one");
    if (!S.running) {
        /* The last window: stop added its losses and ended the code map. */
        p = S.profile;
        S.profile = NULL;
        return hyp_py_profile_capsule(p);
    }
    p = hyp__take_window(&rc);
    if (p == NULL) {
        if (rc == HYP_ENOMEM)
            return PyErr_NoMemory();
        return hyp__raise(hyp_py_profiler_error(), hyp_strerror(rc));
    }
    return hyp_py_profile_capsule(p);
}

/* In a forked child: the parent's session does not exist here. No signal
 * can come (perf events and POSIX timers belong to the parent's threads,
 * interval timers are not inherited); the descriptors are closed, the memory
 * is left to the child's exit. */
static PyObject *sampler_after_fork_child(PyObject *self, PyObject *noargs) {
    int i;

    (void)self;
    (void)noargs;
    atomic_store(&S.active, 0);
    if (!S.running)
        Py_RETURN_NONE;
    for (i = 0; i < S.nslots; i++) {
        if (S.slots[i].used && hyp__fd_ours(&S.slots[i]))
            close(S.slots[i].fd);
        S.slots[i].fd = -1;
        S.slots[i].has_timer = 0;
        S.slots[i].used = 0;
        atomic_store(&S.slots[i].live, 0);
    }
    if (S.trigger == TRIG_ITIMER)
        hyp_itimer_set(0, NULL, 0);
    S.wall_started = 0;
    S.running = 0;
    S.writer = NULL; /* the parent's file: never written from here */
    S.profile = NULL;
    S.slots = NULL;
    S.fd_slot = NULL;
    S.nslots = 0;
    hyp__tls_slot = NULL;
    hyp__codemap_abandon();
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------- events */

struct hyp__ev_list {
    PyObject *list;
    int err;
};

static int hyp__ev_add(const hyp_perf_event_info_t *info, void *arg) {
    struct hyp__ev_list *l = arg;
    PyObject *t = Py_BuildValue("(sssO)", info->pmu, info->name, info->desc,
                                info->is_hardware ? Py_True : Py_False);

    if (t == NULL || PyList_Append(l->list, t) < 0) {
        Py_XDECREF(t);
        l->err = 1;
        return 1;
    }
    Py_DECREF(t);
    return 0;
}

/* perf_events() -> [(pmu, name, description, is_hardware)] */
static PyObject *perf_events(PyObject *self, PyObject *noargs) {
    struct hyp__ev_list l;
    char msg[256];
    int ret;

    (void)self;
    (void)noargs;
    if ((ret = hyp_perf_init(msg, sizeof(msg))) < 0)
        return hyp__raise(hyp_py_event_error(), msg);
    l.list = PyList_New(0);
    l.err = 0;
    if (l.list == NULL)
        return NULL;
    hyp_perf_foreach_event(hyp__ev_add, &l);
    if (l.err) {
        Py_DECREF(l.list);
        return NULL;
    }
    return l.list;
}

/* perf_probe(name) -> (ok, fully qualified name or "", message) */
static PyObject *perf_probe(PyObject *self, PyObject *args) {
    hyp_perf_event_t ev = {.size = sizeof(ev)};
    hyp_perf_config_t cfg = {.size = sizeof(cfg), .period = 1000000, .freq = 0, .signo = 0};
    const char *name;
    char msg[1024] = "";
    int fd = -1, ret;

    (void)self;
    if (!PyArg_ParseTuple(args, "s", &name))
        return NULL;
    ret = hyp_perf_encode(name, &ev, msg, sizeof(msg));
    if (ret == 0) {
        Py_BEGIN_ALLOW_THREADS
        ret = hyp_perf_open(&ev, &cfg, 0, &fd, msg, sizeof(msg));
        if (fd >= 0)
            close(fd);
        Py_END_ALLOW_THREADS
    }
    return Py_BuildValue("(Oss)", ret == 0 ? Py_True : Py_False, ev.name,
                         ret == 0 ? "opens" : msg);
}

/* _walk_guard_check() -> int: walks a frame chain into an unmapped page under
 * the fault guard; -1 means the fault was caught (tests). */
static PyObject *walk_guard_check(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    if (hyp__walk_guard_install() < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(hyp__walk_guard_check());
}

/* _walk_set_scope(root, cut, skip): the frame that called the profiled
 * program (or None), the code objects of hyprof's start and stop paths (left
 * out with what they call) and of its pass-through wrappers (left out
 * alone), tuples; see hyp__walk_set_root(). The tuples are kept, so their
 * code objects live. */
static PyObject *walk_set_scope(PyObject *self, PyObject *args) {
    static PyObject *kept;
    PyObject *root, *cut, *skip, *both;
    PyCodeObject *codes[HYP_WALK_MAX_HIDDEN];
    int flags[HYP_WALK_MAX_HIDDEN];
    Py_ssize_t i, n;

    (void)self;
    if (!PyArg_ParseTuple(args, "OO!O!", &root, &PyTuple_Type, &cut, &PyTuple_Type, &skip))
        return NULL;
    if (root != Py_None && !PyFrame_Check(root)) {
        PyErr_SetString(PyExc_TypeError, "_walk_set_scope(): root must be a frame or None");
        return NULL;
    }
    both = PySequence_Concat(cut, skip);
    if (both == NULL)
        return NULL;
    n = PyTuple_GET_SIZE(both);
    if (n > HYP_WALK_MAX_HIDDEN) {
        Py_DECREF(both);
        PyErr_Format(PyExc_ValueError, "_walk_set_scope(): at most %d code objects",
                     HYP_WALK_MAX_HIDDEN);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (!PyCode_Check(PyTuple_GET_ITEM(both, i))) {
            Py_DECREF(both);
            PyErr_SetString(PyExc_TypeError, "_walk_set_scope(): code objects only");
            return NULL;
        }
        codes[i] = (PyCodeObject *)PyTuple_GET_ITEM(both, i);
        flags[i] = i < PyTuple_GET_SIZE(cut);
    }
    hyp__walk_set_root(root != Py_None ? (PyFrameObject *)root : NULL);
    hyp__walk_set_hidden(codes, flags, (int)n);
    Py_XSETREF(kept, both); /* the old codes are no longer compared against */
    Py_RETURN_NONE;
}

static PyMethodDef hyp__sampler_methods[] = {
    {"_walk_set_scope", walk_set_scope, METH_VARARGS,
     "Sets the frame that called the profiled program and hyprof's own code objects "
     "(internal)."},
    {"_sampler_start", (PyCFunction)(void (*)(void))sampler_start, METH_VARARGS | METH_KEYWORDS,
     "Starts the sampling session (internal; use hyprof.Profiler(mode=\"sampling\"))."},
    {"_sampler_stop", sampler_stop, METH_NOARGS, "Stops the session; returns its statistics."},
    {"_sampler_sync", sampler_sync, METH_NOARGS,
     "Resolves pending samples, follows new and finished threads, flushes a trace chunk."},
    {"_sampler_register_thread", sampler_register_thread, METH_NOARGS,
     "Starts sampling the calling thread."},
    {"_sampler_exclude_thread", sampler_exclude_thread, METH_NOARGS,
     "Never samples the calling thread (the resolver)."},
    {"_sampler_stats", sampler_stats, METH_NOARGS, "The session's statistics."},
    {"_sampler_window", sampler_window, METH_NOARGS,
     "The profile of the samples since the previous window (a capsule for merge_profiles), "
     "from a session started without a path."},
    {"_sampler_after_fork_child", sampler_after_fork_child, METH_NOARGS,
     "Forgets the parent's session in a forked child."},
    {"_walk_guard_check", walk_guard_check, METH_NOARGS,
     "Walks a frame chain into an unmapped page under the fault guard (tests)."},
    {"perf_events", perf_events, METH_NOARGS,
     "[(pmu, name, description, is_hardware)] for every event libpfm4 knows here."},
    {"perf_probe", perf_probe, METH_VARARGS,
     "(ok, fully qualified name, message): whether the event opens on this machine."},
    {NULL, NULL, 0, NULL},
};

int hyp_py_sampler_kind(const char *name, uint32_t *kind) {
    uint32_t k;

    if (!S.running)
        return HYP_ESTATE;
    for (k = 0; k < S.kinds; k++) {
        if (strcmp(S.kind_names[k], name) == 0) {
            *kind = k;
            return 0;
        }
    }
    return HYP_ENOENT;
}

int hyp_py_sampler_init(PyObject *module) {
    return PyModule_AddFunctions(module, hyp__sampler_methods);
}
