/* pyext/sampler_wall.c: the wall-clock sampler (clock="wall",
 * docs/sampling.md): a pthread without Python that ticks at the session's
 * period, reads the GIL's state and the frames of the threads that do not
 * hold it (waiting ones) through process_vm_readv(), into its own ring,
 * and leaves the threads running Python to sample themselves through their
 * CPU clock (the handler in sampler.c), with the time owed to them; and the
 * last tick of every thread when the session stops.
 *
 * The sampler thread touches a slot only while it has marked it sbusy, the
 * wall ring, and the wall_* atomics of the state (sampler_int.h). */
#include "sampler_int.h"

/* Time owed to a thread as a GIL holder that it stopped running before it
 * could take it (its CPU clock signals it only after a CPU period): that time
 * was spent where the thread's last self-taken sample was, so it goes there,
 * read under the seqlock; if the handler is writing it, to the next sample.
 * While the program holds the signal (S.wall_gone) it goes to no stack: the
 * thread ran on meanwhile, and its samples went to the program's handler. */

static void hyp__wall_owed(hyp_slot_t *slot, uint64_t now) {
    uint64_t owed = atomic_exchange(&slot->wall_pending, 0);

    if (owed != 0 && atomic_load(&S.wall_gone))
        atomic_fetch_add(&S.wall_lost_ns, owed);
    else if (owed != 0 && hyp__sampler_write_last(slot, &S.wall_ring, owed, now) < 0)
        atomic_fetch_add(&slot->wall_pending, owed);
}

/* Keeps the stack just read from slot's waiting thread, with the switch
 * counter it was read at (sampler thread; a failed allocation only means no
 * cache). */
static void hyp__wall_cache_keep(hyp_slot_t *slot, const uint64_t *frames, int n, int truncated,
                                 unsigned long sw) {
    if (slot->wall_cache == NULL &&
        (slot->wall_cache = malloc(sizeof(uint64_t) * HYP_WALK_WORDS * HYP_WALK_MAX_DEPTH)) == NULL)
        return;
    memcpy(slot->wall_cache, frames, sizeof(uint64_t) * HYP_WALK_WORDS * (size_t)n);
    slot->wall_cache_n = n;
    slot->wall_cache_trunc = truncated;
    slot->wall_cache_sw = sw;
}

/* The GIL's state of a thread that does not hold it: waiting for it, when
 * the GIL is held and the thread sleeps in a futex inside the GIL's
 * condition variable (take_gil(), as its /proc/self/task/TID/syscall says:
 * "202 0x7f...", the call's number and first argument), else released (I/O,
 * a lock, sleep, C code that let it go). Sampler thread. */
static unsigned hyp__remote_gil(const hyp_slot_t *slot) {
    uintptr_t cond;
    size_t len;
    int locked;
    char text[192], *end, *after;
    ssize_t k;
    long nr;
    unsigned long long addr;

    if (slot->sysfd < 0 || hyp__walk_gil_cond(&cond, &len, &locked) < 0)
        return HYP_GIL_RELEASED;
    if (!locked)
        return HYP_GIL_RELEASED; /* nobody holds it: a waiter would take it */
    k = pread(slot->sysfd, text, sizeof text - 1, 0);
    if (k <= 0)
        return HYP_GIL_RELEASED;
    text[k] = '\0';
    nr = strtol(text, &end, 10);
    if (end == text || nr != SYS_futex)
        return HYP_GIL_RELEASED; /* "running", or another call */
    addr = strtoull(end, &after, 16);
    if (after == end)
        return HYP_GIL_RELEASED;
    return addr >= cond && addr < cond + len ? HYP_GIL_WAITING : HYP_GIL_RELEASED;
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
                atomic_fetch_add(&S.wall_lost_ns, prev + atomic_exchange(&slot->wall_pending, 0));
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
                uint32_t labels = 0;

                /* The label set the thread carries now: read from its own
                 * word, which it may be changing (a torn read is impossible
                 * for an aligned word; an old value is the sample's). */
                const uint32_t *word = atomic_load(&slot->labels_word);

                if (word != NULL && hyp__walk_read_u32(word, &labels) < 0)
                    labels = 0;
                buf[0] = hyp__rec_header(slot->index, 0, truncated, n);
                buf[1] = now - S.t0;
                buf[2] = now - prev;
                buf[3] = hyp__rec_context(slot->tstate, labels, n, truncated,
                                          hyp__remote_gil(slot));
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
    t = hyp_clock_monotonic_ns();
    while (!atomic_load(&S.wall_stop)) {
        t += S.period_ns;
        next.tv_sec = (time_t)(t / 1000000000u);
        next.tv_nsec = (long)(t % 1000000000u);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
            ;
        now = hyp_clock_monotonic_ns();
        if (now > t + S.period_ns / 2)
            t = now; /* woke up late: no burst of catch-up ticks (weights
                      * measure the time that really passed) */
        /* Whether the program has taken the signal over, once per tick (one
         * sigaction() call): from the first tick that finds it so, the time
         * owed to GIL holders, whose samples the signal was to take, goes to
         * no stack. Found by the tick after the takeover, so at most one
         * period of time before it is counted lost with the rest. */
        if (hyp__sampler_handler_gone()) {
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

int hyp__sampler_wall_start(void) {
    atomic_store(&S.wall_stop, 0);
    if (pthread_create(&S.wall_thread, NULL, hyp__wall_main, NULL) != 0)
        return -1;
    S.wall_started = 1;
    return 0;
}

void hyp__sampler_wall_join(void) {
    PyThreadState *ts;

    if (!S.wall_started)
        return;
    atomic_store(&S.wall_stop, 1);
    ts = PyEval_SaveThread(); /* other threads run while its tick ends */
    pthread_join(S.wall_thread, NULL);
    PyEval_RestoreThread(ts);
    S.wall_started = 0;
}

/* A last tick for every thread (the sampler thread has ended, the handlers
 * record nothing more): the time since its previous tick, and the time it
 * owed as a GIL holder, go to its stacks instead of nowhere, so that each
 * thread's weights add up to its wall time; to the loss while the program
 * holds the signal, as at every tick. */
void hyp__sampler_wall_last_ticks(int gone) {
    PyThreadState *self_ts = PyThreadState_Get();
    uint64_t now = hyp_clock_monotonic_ns(), lost;
    int i;

    /* The sampler has ended: these ticks are the last, and see the handler
     * as it is now. */
    atomic_store(&S.wall_gone, gone);
    for (i = 0; i < S.nslots; i++) {
        hyp_slot_t *slot = &S.slots[i];

        if (!slot->used || !atomic_load(&slot->live))
            continue;
        if (slot->tstate == self_ts) {
            hyp__wall_owed(slot, now);
            if (gone) {
                atomic_fetch_add(&S.wall_lost_ns, now - atomic_exchange(&slot->wall_last, now));
            } else if (hyp__claim(slot) == 0) {
                hyp__sampler_capture(slot, 0, now - atomic_exchange(&slot->wall_last, now), 0);
                atomic_store(&slot->busy, 0);
            }
        } else {
            hyp__wall_tick(slot, now);
            hyp__wall_owed(slot, now);
        }
    }
    /* The running threads' time while the program held the signal, as
     * samples of the period (the waiting threads were still read); at least
     * one if it ever held it, so that the stop warns. */
    lost = (atomic_load(&S.wall_lost_ns) + S.period_ns / 2) / (S.period_ns ? S.period_ns : 1);
    if (lost == 0 && (gone || S.handler_gone_seen || atomic_load(&S.wall_gone_seen)))
        lost = 1;
    atomic_fetch_add(&S.lost[LOST_HANDLER_GONE], lost);
}
