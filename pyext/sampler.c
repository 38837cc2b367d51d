/* pyext/sampler.c: the sampling mode's engine (docs/sampling.md): a thread's
 * slot and trigger, the signal handler, the capture of a stack into the
 * thread's ring, thread registration, and the resolver that drains the rings
 * into profile samples, with the code map's notices of dying code objects.
 * The wall-clock sampler thread is in sampler_wall.c, the Python binding in
 * sampler_py.c; sampler_int.h holds what they share and its contract.
 *
 * Threads of execution that touch this file:
 *   - the signal handler, on the sampled thread itself: reads its own frames
 *     and writes one record into its own ring; nothing else (no malloc, no
 *     lock, no Python API but PyGILState_GetThisThreadState(), a
 *     pthread_getspecific() read);
 *   - the wall-clock sampler (sampler_wall.c) writes the last stack of a
 *     thread running Python through hyp__sampler_write_last(); the threads
 *     running Python sample themselves through their CPU clock, which fires
 *     in user mode only, so no thread is ever signalled inside a system call;
 *   - everything else runs with the GIL: registration, the resolver,
 *     code-death notices. The GIL serialises the consumers of the rings, so
 *     each ring has one producer and one consumer at a time. */
#include "sampler_int.h"

hyp__sampler_state_t hyp__sampler_state;

static _Atomic int hyp__handler_sigs[NSIG];

static __thread hyp_slot_t *hyp__tls_slot __attribute__((tls_model("initial-exec")));

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

/* ---------------------------------------------------------------- capture */

/* Records the calling thread's stack into slot's ring. The thread is the
 * slot's own (checked by the caller) and is stopped here. */
int hyp__sampler_capture(hyp_slot_t *slot, uint32_t kind, uint64_t weight, int keep_last) {
    uint64_t buf[HYP__REC_HEAD + HYP_WALK_WORDS * HYP_WALK_MAX_DEPTH];
    int truncated = 0, n, k;

    int holder = 0, last = 0;
    unsigned long sw;
    unsigned gil;

    n = hyp__walk_own(slot->tstate, buf + HYP__REC_HEAD, S.depth, &truncated);
    /* On its own thread, in a signal: it runs, holding the GIL (Python) or
     * not (C code that released it). */
    gil = hyp__walk_gil_state(slot->tstate, &holder, &last, &sw) < 0 ? HYP_GIL_UNKNOWN
          : holder                                                 ? HYP_GIL_HELD
                                                                   : HYP_GIL_RELEASED;
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
        slot->last_labels =
            hyp__rec_context(slot->tstate, hyp__labels_now(), k, truncated || k < n, gil);
        atomic_fetch_add(&slot->last_seq, 1);
    }
    buf[1] = hyp_clock_monotonic_ns() - S.t0;
    buf[2] = weight;
    buf[3] = hyp__rec_context(slot->tstate, hyp__labels_now(), n, truncated, gil);
    atomic_store_explicit(&slot->labels_word, &hyp_py_labels_tls, memory_order_relaxed);
    /* A full ring counts the drop itself (ring.h). */
    return hyp__ring_write(&slot->ring, buf, HYP__REC_HEAD + (size_t)HYP_WALK_WORDS * n) == 0 ? 0
                                                                                              : -1;
}

/* Writes a record of weight for the stack of slot's last self-taken sample
 * into ring (the wall clock's time owed to a running thread, a CPU
 * session's last interval at stop). Returns 0, or -1 when there is none or the handler is writing
 * it. */
int hyp__sampler_write_last(hyp_slot_t *slot, hyp__ring_t *ring, uint64_t weight, uint64_t now) {
    uint64_t buf[HYP__REC_HEAD + HYP_WALK_WORDS * HYP__LAST_DEPTH], seq, hdr, labels;
    int n;

    seq = atomic_load(&slot->last_seq);
    hdr = slot->last_hdr;
    labels = slot->last_labels;
    n = (int)(hdr & 0xffff);
    if ((seq & 1) == 0 && seq != 0 && n > 0 && n <= HYP__LAST_DEPTH &&
        seq != atomic_load(&slot->last_void_seq)) {
        memcpy(buf + HYP__REC_HEAD, slot->last, sizeof(uint64_t) * HYP_WALK_WORDS * (size_t)n);
        atomic_thread_fence(memory_order_acquire); /* the copy, then the check */
        if (atomic_load(&slot->last_seq) == seq) {
            buf[0] = hdr;
            buf[1] = now - S.t0;
            buf[2] = weight;
            buf[3] = labels;
            hyp__ring_write(ring, buf, HYP__REC_HEAD + (size_t)HYP_WALK_WORDS * n);
            return 0;
        }
    }
    return -1;
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
        count = hyp_clock_tid_cpu_ns(0);
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

    if (S.pcfg.freq || S.pcfg.period < 8 || (++slot->nsamples & (S.event.is_clock ? 63 : 7)) != 0)
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
        atomic_store(&slot->wall_ran, hyp_clock_monotonic_ns());
        if ((weight = atomic_exchange(&slot->wall_pending, 0)) == 0) {
            atomic_store(&slot->busy, 0);
            goto out;
        }
        /* The sampler's ticks decide when a sample is due (uniformly in wall
         * time, whatever the thread does); this thread, running Python, takes
         * the ones owed to it at its next CPU-clock signal, with their time. */
    }
    hyp__sampler_capture(slot, 0, weight, 1);
    atomic_store(&slot->busy, 0);
out:
    errno = saved;
}

/* Installs the handler on signo. A handler someone else installed there is
 * never replaced: that is an error naming the signal. Once installed, ours
 * stays until the process ends, so a signal still pending when a session
 * stops is ignored instead of killing the process with the default action. */
int hyp__sampler_install(int signo, char *msg, size_t msglen) {
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
int hyp__sampler_handler_gone(void) {
    struct sigaction cur;

    if (S.signo <= 0 || sigaction(S.signo, NULL, &cur) < 0)
        return 0;
    return !((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == hyp__on_signal);
}

/* ---------------------------------------------------------------- threads */

/* The thread's name from threading._active[ident]._name, read without
 * running any Python code (hyp_py_thread_name(): this runs in the resolver,
 * which a code object's destruction can call). Returns 1 and sets *name when
 * the thread is known to threading, 0 when not (yet), or HYP_ENOMEM. */
int hyp__sampler_thread_name(unsigned long ident, hyp_id_t *name) {
    PyObject *nm;
    int rc;

    if (S.threads_active == NULL ||
        (nm = hyp_py_thread_name(hyp_py_thread_object(S.threads_active, ident))) == NULL)
        return 0;
    rc = hyp_py_intern_str(S.profile, nm, name);
    Py_DECREF(nm);
    return rc < 0 ? HYP_ENOMEM : 1;
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
    ret = slot->name != HYP_NO_ID ? 1 : hyp__sampler_thread_name(slot->ident, &th.name);
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
            void *page =
                mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_READ, MAP_SHARED, slot->fd, 0);

            if (page != MAP_FAILED) {
                slot->page = page;
                slot->page_seen = ((volatile const struct perf_event_mmap_page *)page)->lock + 1;
                slot->last_count = hyp_clock_tid_cpu_ns(slot->tid); /* the weights start here */
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
int hyp__sampler_fd_ours(const hyp_slot_t *slot) {
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
uint64_t hyp__sampler_slot_count_now(const hyp_slot_t *slot) {
    uint64_t c;

    if (S.trigger == TRIG_PERF && slot->page == NULL)
        return hyp__sampler_fd_ours(slot) && hyp_perf_read(slot->fd, &c) == 0 ? c : 0;
    return hyp_clock_tid_cpu_ns(slot->tid);
}

void hyp__sampler_disarm(hyp_slot_t *slot) {
    if (slot->fd >= 0) {
        hyp__fd_map(slot->fd, NULL);
        if (hyp__sampler_fd_ours(slot)) {
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
hyp_slot_t *hyp__sampler_register(PyThreadState *ts, pid_t tid, unsigned long ident, char *msg,
                                  size_t msglen) {
    hyp_slot_t *slot = NULL;
    int i, ret;

    for (i = 0; i < HYP__MAX_THREADS; i++) {
        if (!S.slots[i].used && !atomic_load(&S.slots[i].busy) && !atomic_load(&S.slots[i].sbusy)) {
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
    slot->sysfd = -1;
    if (S.wall) {
        /* Where the wall sampler reads whether the thread waits for the GIL
         * (hyp__sampler_waits_gil()). */
        char path[64];

        snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
        slot->sysfd = open(path, O_RDONLY | O_CLOEXEC);
    }
    slot->perf_id = 0;
    slot->page = NULL;
    slot->has_timer = 0;
    slot->seen = 1;
    atomic_store(&slot->wall_last, hyp_clock_monotonic_ns());
    atomic_store(&slot->wall_pending, 0);
    atomic_store(&slot->wall_ran, 0);
    slot->wall_held = 0;
    slot->wall_cache_n = 0;
    atomic_store(&slot->last_seq, 0);
    slot->rng = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)tid << 17) ^ hyp_clock_monotonic_ns();
    slot->thread = HYP_NO_ID;
    slot->last_count = hyp_clock_tid_cpu_ns(tid); /* timers' weights start here */
    if (hyp__sampler_thread_name(ident, &slot->name) != 1)
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

/* Stops sampling a slot; its ring must have been drained. */
void hyp__sampler_retire(hyp_slot_t *slot) {
    atomic_store(&slot->live, 0);
    hyp__sampler_disarm(slot);
    while (atomic_load(&slot->busy) || atomic_load(&slot->sbusy))
        sched_yield();
    hyp__unmap(slot);
    if (slot->sysfd >= 0)
        close(slot->sysfd);
    slot->sysfd = -1;
    atomic_fetch_add(&S.lost[LOST_RING_FULL], hyp__ring_dropped(&slot->ring));
    hyp__ring_reset(&slot->ring);
    slot->used = 0;
    slot->tstate = NULL;
    atomic_store(&slot->labels_word, NULL);
    if (hyp__tls_slot == slot)
        hyp__tls_slot = NULL;
}

void hyp__sampler_own_slot(hyp_slot_t *slot) {
    hyp__tls_slot = slot;
    if (slot != NULL)
        atomic_store(&slot->labels_word, &hyp_py_labels_tls);
}

void hyp_py_sampler_labels_here(void) {
    /* The thread's slot as last found, and in which session: a thread that
     * changes its labels often (a request's each) looks it up once. */
    static __thread hyp_slot_t *mine;
    static __thread uint64_t mine_t0;
    PyThreadState *ts;

    if (!S.running || S.slots == NULL)
        return;
    ts = PyThreadState_Get();
    if (mine == NULL || mine_t0 != S.t0 || !mine->used || mine->tstate != ts) {
        mine = hyp__sampler_slot_of(ts);
        mine_t0 = S.t0;
    }
    if (mine != NULL && atomic_load(&mine->labels_word) != &hyp_py_labels_tls)
        atomic_store(&mine->labels_word, &hyp_py_labels_tls);
}

void hyp__sampler_labels_forget(void) {
    hyp__free(S.lab_cache);
    S.lab_cache = NULL;
    S.nlab_cache = 0;
}

hyp_slot_t *hyp__sampler_slot_of(PyThreadState *ts) {
    int i;

    for (i = 0; i < S.nslots; i++)
        if (S.slots[i].used && S.slots[i].tstate == ts)
            return &S.slots[i];
    return NULL;
}

/* Registers new thread states and retires those that are gone. */
void hyp__sampler_sync_threads(void) {
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
        slot = hyp__sampler_slot_of(all[i].ts);
        if (slot != NULL && slot->tid != (pid_t)all[i].native_id) {
            /* The thread state's memory now belongs to another thread. */
            hyp__sampler_retire(slot);
            slot = NULL;
        }
        if (slot == NULL)
            slot = hyp__sampler_register(all[i].ts, (pid_t)all[i].native_id, all[i].ident, msg,
                                         sizeof(msg));
        if (slot != NULL) {
            slot->seen = 1;
            if (slot->name == HYP_NO_ID && hyp__sampler_thread_name(slot->ident, &slot->name) != 1)
                slot->name = HYP_NO_ID;
        }
    }
    for (j = 0; j < S.nslots; j++)
        if (S.slots[j].used && !S.slots[j].seen)
            hyp__sampler_retire(&S.slots[j]);
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

/* The node of "[gc] generation gen" under parent, the function declared in
 * the profile at its first sample. Returns 0 or an HYP_E* code. */
static int hyp__gc_node(unsigned gen, hyp_id_t parent, hyp_id_t *node) {
    int rc;

    if (S.func_gc[gen] == HYP_NO_ID) {
        const char *name = hyp_py_gc_func_name(gen);
        hyp_func_t f;

        if ((rc = hyp_profile_string(S.profile, name, strlen(name), &f.name)) < 0 ||
            (rc = hyp_profile_string(S.profile, "", 0, &f.file)) < 0)
            return rc;
        f.lineno = 0;
        f.kind = HYP_FUNC_SPECIAL;
        if ((rc = hyp_profile_func(S.profile, &f, &S.func_gc[gen])) < 0)
            return rc;
    }
    return hyp_profile_node(S.profile, parent, S.func_gc[gen], 0, node);
}

/* Resolves the records of one ring into profile samples. */
static void hyp__drain_ring(hyp__ring_t *r) {
    uint64_t pos, hdr, code, info, context;
    hyp_sample_t s;
    hyp_id_t node, func;
    hyp_slot_t *slot;
    uint32_t line;
    size_t avail, len;
    int n, i, idx, ret, lost;
    unsigned gc_gen1;
    int64_t gc_at; /* the frames, from the root, under "[gc]"; -1: none */

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
        context = hyp__ring_get(r, pos + 3);
        gc_gen1 = (unsigned)(context >> 32) & 3;
        gc_at = -1;
        if (gc_gen1 != 0) {
            uint32_t above = (uint32_t)(context >> 34) & HYP__GC_ABOVE_UNKNOWN;
            gc_at = above <= (uint32_t)n ? n - (int64_t)above : n;
        }
        if ((hdr >> 16) & 1)
            ret = hyp_profile_node(S.profile, node, S.func_truncated, 0, &node);
        for (i = n - 1; i >= 0 && ret == 0 && !lost; i--) {
            if (n - 1 - i == gc_at && (ret = hyp__gc_node(gc_gen1 - 1, node, &node)) < 0)
                break;
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
        if (ret == 0 && !lost && gc_at == n)
            ret = hyp__gc_node(gc_gen1 - 1, node, &node);
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
            S.gil_samples[context >> 62]++;
            if ((ret = hyp_py_labels_map(S.profile, (uint32_t)context, (unsigned)(context >> 62),
                                         &S.lab_cache, &S.nlab_cache, &s.labels)) < 0 &&
                S.writer_err == 0)
                S.writer_err = ret;
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

void hyp__sampler_drain_all(void) {
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
/* A thread's last stack (kept for the time it owes, written at a wall tick
 * or at stop) may name a code object that has died since, as the main
 * module's does once the program has run: that stack is not written. One
 * being written now is the thread's current one, whose frames hold their
 * code alive, so only a finished one is checked. */
static void hyp__void_last_stacks(PyCodeObject *code) {
    uint64_t want = (uint64_t)(uintptr_t)code, seq;
    int i, j, n;

    for (i = 0; i < S.nslots; i++) {
        hyp_slot_t *slot = &S.slots[i];

        if (!slot->used || ((seq = atomic_load(&slot->last_seq)) & 1) != 0 || seq == 0)
            continue;
        n = (int)(slot->last_hdr & 0xffff);
        for (j = 0; j < n && j < HYP__LAST_DEPTH; j++) {
            if (slot->last[HYP_WALK_WORDS * j] == want) {
                atomic_store(&slot->last_void_seq, seq);
                break;
            }
        }
    }
}

void hyp__sampler_on_code_death(PyCodeObject *code) {
    uint64_t pos;
    int i, pending = 0;

    hyp__void_last_stacks(code);
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
        hyp__sampler_drain_all();
}
