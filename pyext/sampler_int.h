/* pyext/sampler_int.h: private to the sampling mode's three files; not API,
 * not for the rest of the extension (which sees sampler.h).
 *
 * What it holds: the session's state (one per process, since the signal
 * handler is process-wide), a thread's slot, the ring record format, the
 * reasons a sample is lost, and the functions the parts call in each other:
 *   - sampler.c, the engine: slots, the signal handler, the capture into the
 *     rings, thread registration, the drain of the rings and the code-object
 *     resolver;
 *   - sampler_wall.c: the wall-clock sampler thread and the last ticks of a
 *     wall-clock session;
 *   - sampler_py.c: the binding, _hyprof.Sampler (options, start in its
 *     steps, stop, windows, statistics), the event listing and the walk
 *     scope helpers.
 *
 * The contract:
 *   - the handler touches only its own thread's slot (claimed with
 *     hyp__claim()) and the atomics of the state; the wall sampler touches
 *     the slots it marks sbusy, its own ring and the wall_* atomics;
 *     everything else, and every other field, is the GIL's. The GIL
 *     serialises the rings' consumers, so a ring has one producer and one
 *     consumer at a time;
 *   - a slot is recycled only after hyp__sampler_retire(), which lowers live
 *     and waits for busy and sbusy to fall;
 *   - S.active is raised once the tables, the profile and the code map
 *     exist, before any trigger is armed, and lowered first at stop: a
 *     handler that sees it raised finds them whole.
 *
 * Naming: static functions are hyp__name, as in the rest of pyext; a
 * function one of these files calls in another is hyp__sampler_name,
 * declared here with HYP__SAMPLER_FN (hidden, so the compiler may inline it
 * into the handler as it would a static one). The state is
 * hyp__sampler_state, written S in these files: a macro, defined after every
 * header they need, so each of them includes this one alone. */
#ifndef HYPROF_PYEXT_SAMPLER_INT_H
#define HYPROF_PYEXT_SAMPLER_INT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* gettid, SIGEV_THREAD_ID */
#endif
#include "sampler.h"

#include "codemap.h"
#include "gcwatch.h"
#include "labels.h"
#include "exceptions.h"
#include "locks.h"
#include "hyprof/internal/util.h"
#include "pyhyprof.h"
#include "hyprof/internal/ring.h"
#include "walk.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define HYP__SAMPLER_FN __attribute__((visibility("hidden")))

#define HYP__MAX_THREADS 1024
#define HYP__REC_MAGIC 0xA5ULL
#define HYP__REC_HEAD 4 /* header, time, weight, label set (labels.h) */
#define HYP__POISON_MAX 64
#define HYP__LAST_DEPTH 64 /* frames of a thread's last stack kept (wall clock, CPU stop) */

/* The trigger that signals a thread (for the wall clock, a running one). */
enum { TRIG_NONE = 0, TRIG_PERF, TRIG_TIMER, TRIG_ITIMER };

/* Reasons a sample can be lost before it reaches the profile. A thread found
 * without a Python frame (starting, ending, or running C code from its first
 * call) is not one: there was nothing to sample, and it is counted apart
 * (S.no_frames). Their names are in sampler_py.c, which reports them. */
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

typedef struct {
    _Atomic int live;  /* 1 while the slot's thread is sampled */
    _Atomic int busy;  /* a capture runs on the slot's thread */
    _Atomic int sbusy; /* the wall sampler works on this slot */
    int used;          /* registered (GIL-owned bookkeeping) */
    int index;
    int seen; /* found by the last enumeration */
    PyThreadState *tstate;
    pid_t tid;
    unsigned long ident;
    hyp_id_t thread;  /* the profile's thread id, HYP_NO_ID until its first sample */
    hyp_id_t name;    /* string id of its name, HYP_NO_ID until threading names it */
    int fd;           /* perf event, or -1 */
    int sysfd;        /* wall clock: its /proc/self/task/TID/syscall, or -1 */
    uint64_t perf_id; /* its kernel id (PERF_EVENT_IOC_ID), 0 if unknown */
    /* A clock event's control page (NULL without one), read by the handler
     * for the thread's CPU time (hyp__slot_cpu_ns). */
    volatile const struct perf_event_mmap_page *page;
    uint32_t page_seen;  /* its seqlock word at the previous reading (handler-owned) */
    uint64_t page_ticks; /* wall ticks at the previous reading (handler-owned) */
    uint64_t page_cpu;   /* CPU ns at the previous reading (handler-owned) */
    timer_t timer;
    int has_timer;
    uint64_t last_count;           /* counter at the previous sample (handler-owned) */
    uint64_t rng;                  /* period jitter state (handler-owned) */
    uint64_t nsamples;             /* samples taken by the handler (handler-owned) */
    _Atomic uint64_t wall_last;    /* wall clock: the sampler's previous tick for this thread */
    _Atomic uint64_t wall_pending; /* wall clock: tick time owed to the thread's next sample */
    _Atomic uint64_t wall_ran;     /* wall clock: time of its last CPU signal holding the GIL */
    int wall_held; /* wall clock: the sampler's previous tick found it holding the GIL */
    /* Wall clock: the stack the sampler last read from this waiting thread,
     * good for as long as the thread has not taken the GIL since (sampler-
     * owned; the buffer is kept across sessions' reuse of the slot). */
    uint64_t *wall_cache;
    int wall_cache_n; /* frames in it, 0: none */
    int wall_cache_trunc;
    unsigned long wall_cache_sw; /* the GIL's switch counter when it was read */
    /* Wall clock: the stack of the thread's last self-taken sample, for the
     * time owed to it that it could not take itself (seqlock: odd while the
     * handler writes). */
    _Atomic uint64_t last_seq;
    uint64_t last_hdr;
    uint64_t last_labels; /* its context word (hyp__rec_context()) */
    /* A last_seq whose stack names a code object that has died since: not
     * to be written (hyp__sampler_on_code_death() sets it, GIL held). */
    _Atomic uint64_t last_void_seq;
    /* The thread's label-set word (labels.h), for the wall sampler, which
     * reads it through hyp__walk_read_u32(); set by the thread itself (its
     * own registration, each of its samples), NULL until then. */
    _Atomic(const uint32_t *) labels_word;
    uint64_t last[HYP_WALK_WORDS * HYP__LAST_DEPTH];
    hyp__ring_t ring;
} hyp_slot_t;

typedef struct {
    _Atomic int active; /* handlers record samples */
    int running;        /* a session exists (GIL-owned) */
    PyObject *owner;    /* the _hyprof.Sampler of the current or last session (strong) */
    int trigger;
    int wall;
    int signo;
    int depth;
    pid_t pid;
    uint64_t period_ns; /* timers and the wall sampler */
    double ns_per_tick; /* hyp_clock_ticks() to ns, fixed for the session */
    hyp_perf_event_t event;
    hyp_perf_config_t pcfg;
    size_t ring_words;
    uint64_t t0;
    hyp_slot_t *slots;
    int nslots; /* high-water mark of used slots */
    hyp_slot_t **fd_slot;
    int fd_slot_len;
    hyp_profile_t *profile;
    hyp_writer_t *writer;
    int writer_err;
    hyp_id_t func_truncated;
    hyp_id_t func_gc[HYP_GC_GENS]; /* "[gc] generation N" in the profile, or HYP_NO_ID */
    uint64_t gil_samples[HYP_GIL_STATES];  /* the resolver's, by the GIL's state */
    uint64_t gil_given[HYP_GIL_STATES];    /* the part already in a window */
    hyp_gc_totals_t gc_given;      /* the collections' totals at the current window's start */
    int gc_retained;               /* the session holds the gc callback */
    _Atomic uint64_t lost[LOST_COUNT];
    /* Samples that found their thread without a Python frame: no loss, and
     * reported apart from the losses ("no_python_frames"). */
    _Atomic uint64_t no_frames;
    uint64_t lost_given[LOST_COUNT]; /* the part of lost[] already in a window */
    uint64_t no_frames_given;        /* and of no_frames */
    uint64_t window_start;           /* hyp_clock_monotonic_ns() when the current window began */
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
    PyThreadState *exclude;   /* the resolver thread's own state */
    PyObject *threads_active; /* threading._active, for names */
    int memory;               /* the allocation collector's samples are merged at stop */
    int locks;                /* and the lock collector's */
    int exceptions;           /* and the exception collector's */
    int handler_gone_seen;    /* a resolver pass found the signal's handler replaced */
    /* The profile's label set of each process-wide one met so far
     * (hyp_py_labels_map()); forgotten with the profile it maps to. */
    hyp_id_t *lab_cache;
    size_t nlab_cache;
} hyp__sampler_state_t;

extern hyp__sampler_state_t hyp__sampler_state HYP__SAMPLER_FN;

/* ---------------------------------------------------------------- small helpers */



static inline void hyp__lose(int why) {
    atomic_fetch_add_explicit(&hyp__sampler_state.lost[why], 1, memory_order_relaxed);
}

/* A sample found its thread without a Python frame (no loss). */
static inline void hyp__no_frames(void) {
    atomic_fetch_add_explicit(&hyp__sampler_state.no_frames, 1, memory_order_relaxed);
}

/* A ring record: this header word (magic, slot, kind, truncated, frames),
 * the time since the session's start, the weight, the context word
 * (hyp__rec_context()), then HYP_WALK_WORDS words a frame, innermost first. */
static inline uint64_t hyp__rec_header(int slot, uint32_t kind, int truncated, int n) {
    return (HYP__REC_MAGIC << 56) | ((uint64_t)(slot & 0xffff) << 32) |
           ((uint64_t)(kind & 0xff) << 24) | ((uint64_t)(truncated ? 1 : 0) << 16) |
           (uint64_t)(n & 0xffff);
}

/* A record's context word: the label set in the low 32 bits; the GIL's
 * state (labels.h's HYP_GIL_*) in the top 2; between them, while ts collects
 * garbage, the generation plus one (2 bits) and the number of the sample's n
 * frames that the collection itself called (finalizers, 28 bits), which the
 * resolver puts above "[gc] generation N" (HYP__GC_ABOVE_UNKNOWN: the
 * collection's frames cannot be told apart, "[gc]" goes on top).
 * Async-signal-safe. */
#define HYP__GC_ABOVE_UNKNOWN 0x0fffffffu
static inline uint64_t hyp__rec_context(const PyThreadState *ts, uint32_t labels, int n,
                                        int truncated, unsigned gil) {
    uint32_t depth = 0, above = HYP__GC_ABOVE_UNKNOWN;
    unsigned gen1 = hyp_py_gc_now(ts, &depth);
    uint64_t w = (uint64_t)labels | ((uint64_t)(gil & 3) << 62);

    if (gen1 == 0)
        return w;
    if (!truncated && depth != HYP_GC_DEPTH_UNKNOWN && (uint32_t)n >= depth &&
        (uint32_t)n - depth < HYP__GC_ABOVE_UNKNOWN)
        above = (uint32_t)n - depth;
    return w | ((uint64_t)(gen1 | (above << 2)) << 32);
}

/* Claims slot for a capture on the calling thread. busy is raised before
 * live is checked, and the retiring side lowers live before it waits for busy
 * to fall (both sequentially consistent), so a capture never runs on a slot
 * being recycled. Returns 0 (release with atomic_store(&slot->busy, 0)), or
 * -1 with the loss counted. */
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

/* ---------------------------------------------------------------- sampler.c: the engine */

/* Records the calling thread's stack into slot's ring as a sample of kind
 * with weight; keep_last also keeps it as the slot's last stack (wall
 * clock). The thread is the slot's own, claimed. Async-signal-safe. Returns
 * 0, or -1 when nothing was recorded (counted). */
HYP__SAMPLER_FN int hyp__sampler_capture(hyp_slot_t *slot, uint32_t kind, uint64_t weight,
                                         int keep_last);

/* Writes a record of weight for the stack of slot's last self-taken sample
 * into ring. Returns 0, or -1 when there is none or the handler is writing
 * it. */
HYP__SAMPLER_FN int hyp__sampler_write_last(hyp_slot_t *slot, hyp__ring_t *ring, uint64_t weight,
                                            uint64_t now);

/* Installs the handler on signo, never over someone else's. Returns 0, or -1
 * with msg set. */
HYP__SAMPLER_FN int hyp__sampler_install(int signo, char *msg, size_t msglen);

/* 1 when the session's signal no longer runs hyprof's handler. */
HYP__SAMPLER_FN int hyp__sampler_handler_gone(void);

/* The thread's name from threading's table into *name: 1, 0 when not known
 * (yet), or HYP_ENOMEM. With the GIL. */
HYP__SAMPLER_FN int hyp__sampler_thread_name(unsigned long ident, hyp_id_t *name);

/* Registers a thread state and arms its trigger. Returns the slot, or NULL
 * (counted; msg set). With the GIL. */
HYP__SAMPLER_FN hyp_slot_t *hyp__sampler_register(PyThreadState *ts, pid_t tid, unsigned long ident,
                                                  char *msg, size_t msglen);

/* Stops sampling a slot, its ring drained, and frees it for reuse. */
HYP__SAMPLER_FN void hyp__sampler_retire(hyp_slot_t *slot);

/* Closes the slot's trigger (its signals stop; a late one finds no slot). */
HYP__SAMPLER_FN void hyp__sampler_disarm(hyp_slot_t *slot);

/* 1 while the slot's descriptor is still its perf event. */
HYP__SAMPLER_FN int hyp__sampler_fd_ours(const hyp_slot_t *slot);

/* The slot's count now, read from outside its handler, in the unit of
 * slot->last_count; 0 when it cannot be read. */
HYP__SAMPLER_FN uint64_t hyp__sampler_slot_count_now(const hyp_slot_t *slot);

/* The used slot of thread state ts, or NULL. */
HYP__SAMPLER_FN hyp_slot_t *hyp__sampler_slot_of(PyThreadState *ts);

/* Makes slot the calling thread's own, for the setitimer trigger's handler,
 * which finds its slot from the thread (NULL: none). */
HYP__SAMPLER_FN void hyp__sampler_own_slot(hyp_slot_t *slot);
/* Forgets the label sets mapped into the session's profile: called wherever
 * S.profile is replaced or freed. */
HYP__SAMPLER_FN void hyp__sampler_labels_forget(void);

/* Registers new thread states and retires those that are gone. */
HYP__SAMPLER_FN void hyp__sampler_sync_threads(void);

/* Resolves every ring's records into profile samples. With the GIL. */
HYP__SAMPLER_FN void hyp__sampler_drain_all(void);

/* The code map's notice that a code object dies: resolves what names it. */
HYP__SAMPLER_FN void hyp__sampler_on_code_death(PyCodeObject *code);

/* ---------------------------------------------------------------- sampler_wall.c */

/* Starts the wall-clock sampler thread. Returns 0 or -1 (nothing started). */
HYP__SAMPLER_FN int hyp__sampler_wall_start(void);

/* Ends the sampler thread, if started, and waits for it without the GIL. */
HYP__SAMPLER_FN void hyp__sampler_wall_join(void);

/* A wall-clock session's last tick for every thread, the sampler thread
 * ended and the handlers quiet; gone: the program holds the signal now. */
HYP__SAMPLER_FN void hyp__sampler_wall_last_ticks(int gone);

/* The session's state by its short name, in the sampler's files only. */
#define S hyp__sampler_state

#endif
