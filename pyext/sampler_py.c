/* pyext/sampler_py.c: the sampling mode's Python binding, _hyprof.Sampler:
 * its options checked into a configuration (the constructor), start in its
 * steps (the session's tables and handler, the trigger with its fallbacks,
 * the profile and its header, the threads, the arming), stop, windows for
 * hyprof.continuous, statistics, the resolver's periodic pass and thread
 * registration, and the forked child's reset; then the event listing
 * (perf_events, perf_probe) and the helpers that set the walks' scope. The
 * engine it drives is sampler.c (and sampler_wall.c); hyprof.sampling wraps
 * it. Everything here runs with the GIL.
 *
 * One session runs at a time in a process (the handler is process-wide):
 * start() of any Sampler while one runs raises hyprof.ProfilerError. The
 * Sampler that started the current or last session owns it (S.owner): its
 * stop(), window(), stats() and sync() act on it, another's refuse. */
#include "sampler_int.h"

#include "alloc.h"

static const char *const hyp__trig_names[] = {"none", "perf_event", "posix-timer", "setitimer"};

static const char *const hyp__lost_names[LOST_COUNT] = {
    "ring-full", "reentrant",        "unknown-thread", "thread-exiting",   "code-freed",
    "wall-race", "thread-unsampled", "walk-fault",     "handler-replaced", "profiler-frames"};

static PyObject *hyp__raise(PyObject *cls, const char *msg) {
    PyErr_SetString(cls != NULL ? cls : PyExc_RuntimeError, msg);
    return NULL;
}

/* ---------------------------------------------------------------- options */

/* A Sampler's options, checked by its constructor; start() reads them. The
 * strings are kept with the objects that hold their UTF-8 text. */
typedef struct {
    PyObject *path_obj;       /* str, or None: windows, nothing streamed */
    PyObject *event_obj;      /* str, or None: the first trigger that works */
    PyObject *meta;           /* dict of header entries, or None */
    PyObject *threads_active; /* threading._active, for names, or None */
    const char *path, *event; /* their text, NULL for None */
    const char *clock;        /* "cpu" or "wall" */
    int wall;
    uint64_t period; /* events (or ns for timers) per sample, when hz is 0 */
    uint64_t hz;     /* samples per second, 0: by period */
    int depth, signo, ring_words, memory, locks, exceptions;
    int dis_perf, dis_hw, dis_timer, dis_itimer; /* triggers left out of the chain */
} hyp__config_t;

typedef struct {
    PyObject_HEAD hyp__config_t cfg;
    int ready; /* the constructor succeeded */
} hyp__sampler_obj_t;

/* 1 when self runs the process's session. */
static int hyp__owns(const hyp__sampler_obj_t *self) {
    return S.running && S.owner == (const PyObject *)self;
}

static void hyp__config_clear(hyp__config_t *c) {
    Py_CLEAR(c->path_obj);
    Py_CLEAR(c->event_obj);
    Py_CLEAR(c->meta);
    Py_CLEAR(c->threads_active);
}

/* The text of o, a str or None, into *text (NULL for None). Returns 0, or -1
 * with TypeError set. */
static int hyp__opt_str(PyObject *o, const char *what, const char **text) {
    if (o == Py_None) {
        *text = NULL;
        return 0;
    }
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str or None, not %.100s", what,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    *text = PyUnicode_AsUTF8(o);
    return *text != NULL ? 0 : -1;
}

/* disable=: the names of the triggers left out of the chain. */
static int hyp__opt_disable(PyObject *disable, hyp__config_t *c) {
    PyObject *seq;
    Py_ssize_t k;

    if (disable == NULL || disable == Py_None)
        return 0;
    seq = PySequence_Fast(disable, "disable must be a sequence of trigger names");
    if (seq == NULL)
        return -1;
    for (k = 0; k < PySequence_Fast_GET_SIZE(seq); k++) {
        const char *d = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, k));
        if (d == NULL) {
            Py_DECREF(seq);
            return -1;
        }
        c->dis_perf |= strcmp(d, "perf") == 0;
        c->dis_hw |= strcmp(d, "hardware") == 0;
        c->dis_timer |= strcmp(d, "timer") == 0;
        c->dis_itimer |= strcmp(d, "itimer") == 0;
    }
    Py_DECREF(seq);
    return 0;
}

/* Checks the numbers and names of the options into c. Returns 0, or -1 with
 * hyprof.ProfilerError (or TypeError) set. */
static int hyp__config_check(hyp__config_t *c, const char *clock, unsigned long long period,
                             double frequency) {
    PyObject *err = hyp_py_profiler_error();

    if (c->path == NULL && c->memory) {
        PyErr_SetString(err, "memory sampling in windows is the continuous profiler's own "
                             "(memory=True there): its allocations are cumulative, not cut");
        return -1;
    }
    if (strcmp(clock, "cpu") != 0 && strcmp(clock, "wall") != 0) {
        PyErr_SetString(err, "clock must be \"cpu\" or \"wall\"");
        return -1;
    }
    c->wall = strcmp(clock, "wall") == 0;
    c->clock = c->wall ? "wall" : "cpu";
    if (c->depth < 1 || c->depth > HYP_WALK_MAX_DEPTH) {
        PyErr_Format(err, "depth must be between 1 and %d, not %d", HYP_WALK_MAX_DEPTH, c->depth);
        return -1;
    }
    if (c->signo <= 0 || c->signo >= NSIG || c->signo == SIGKILL || c->signo == SIGSTOP) {
        PyErr_Format(err,
                     "signal %d cannot carry samples; use SIGPROF or a real-time signal "
                     "(SIGRTMIN to SIGRTMAX)",
                     c->signo);
        return -1;
    }
    if (period == 0 && frequency <= 0)
        frequency = 100;
    if (frequency > 0 && (frequency < 1 || frequency > 20000)) {
        char msg[128];

        /* %g, which PyErr_Format() lacks */
        snprintf(msg, sizeof(msg), "frequency must be between 1 and 20000 Hz, not %g", frequency);
        PyErr_SetString(err, msg);
        return -1;
    }
    c->period = period;
    c->hz = frequency > 0 ? (uint64_t)frequency : 0;
    if (c->ring_words < 1024 || c->ring_words > (1 << 26)) {
        PyErr_SetString(err, "ring_words must be between 1024 and 2**26");
        return -1;
    }
    if (c->wall && c->event != NULL) {
        PyErr_SetString(err, "clock=\"wall\" samples on elapsed time and takes no event; give "
                             "either event= (CPU events) or clock=\"wall\"");
        return -1;
    }
    if (c->wall) {
        /* Running threads sample on their own CPU clock: no hardware
         * counter, no process-wide timer. */
        c->dis_hw = 1;
        c->dis_itimer = 1;
    }
    return 0;
}

/* Sampler(path, event=None, clock="cpu", period=0, frequency=0, depth=128,
 *         signo=SIGPROF, ring_words=2**17, meta=None, disable=None,
 *         threads_active=None, memory=False, locks=False, exceptions=False) */
static int hyp__init(hyp__sampler_obj_t *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"path",           "event",  "clock",      "period", "frequency",
                             "depth",          "signo",  "ring_words", "meta",   "disable",
                             "threads_active", "memory", "locks",      "exceptions", NULL};
    hyp__config_t c = {.depth = 128, .signo = SIGPROF, .ring_words = 1 << 17};
    PyObject *path, *event = Py_None, *meta = Py_None, *disable = NULL, *active = Py_None;
    const char *clock = "cpu";
    unsigned long long period = 0;
    double frequency = 0;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OsKdiiiOOOppp:Sampler", kwlist, &path, &event,
                                     &clock, &period, &frequency, &c.depth, &c.signo, &c.ring_words,
                                     &meta, &disable, &active, &c.memory, &c.locks,
                                     &c.exceptions))
        return -1;
    if (S.running && S.owner == (PyObject *)self) {
        PyErr_SetString(hyp_py_profiler_error(), "a running Sampler cannot be initialised again");
        return -1;
    }
    if (hyp__opt_str(path, "path", &c.path) < 0 || hyp__opt_str(event, "event", &c.event) < 0 ||
        hyp__opt_disable(disable, &c) < 0 || hyp__config_check(&c, clock, period, frequency) < 0)
        return -1;
    c.path_obj = Py_NewRef(path);
    c.event_obj = Py_NewRef(event);
    c.meta = Py_NewRef(meta);
    c.threads_active = Py_NewRef(active);
    hyp__config_clear(&self->cfg);
    self->cfg = c;
    self->ready = 1;
    return 0;
}

/* ---------------------------------------------------------------- session */

/* Tries to open the trigger on the calling thread (the first registration).
 * Returns 0, or a HYP_E* code with msg set. */
static int hyp__probe_event(const char *name, uint64_t period, int freq, char *msg, size_t msglen) {
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

/* Gives the gc callback back, if the session holds it. */
static void hyp__gc_leave(void) {
    if (S.gc_retained)
        hyp_py_gc_release(1);
    S.gc_retained = 0;
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
    hyp__gc_leave();
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
    hyp__sampler_labels_forget();
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
            hyp__sampler_retire(&S.slots[i]);
    S.running = 0;
    hyp__codemap_stop();
    hyp__free_profile();
    hyp__reset_session();
}

/* The "[truncated]" function the samples deeper than the depth start with,
 * in p (each session's profile and each window's); the "[gc]" ones are
 * declared at their first sample. Returns 0 or an HYP_E* code. */
static int hyp__declare_special(hyp_profile_t *p) {
    hyp_func_t tf;
    int rc, g;

    for (g = 0; g < HYP_GC_GENS; g++)
        S.func_gc[g] = HYP_NO_ID;
    if ((rc = hyp_profile_string(p, "[truncated]", 11, &tf.name)) < 0 ||
        (rc = hyp_profile_string(p, "", 0, &tf.file)) < 0)
        return rc;
    tf.lineno = 0;
    tf.kind = HYP_FUNC_SPECIAL;
    return hyp_profile_func(p, &tf, &S.func_truncated);
}

/* ---------------------------------------------------------------- start, in its steps */

/* The trigger chain tried at start, as reported (the header's "fallback",
 * start()'s info): one line a step, and the name of the sample kind. */
typedef struct {
    char evname[64]; /* the trigger's event, or "cpu-time" / "wall-time" */
    char buf[8][512];
    const char *step[8];
    size_t n;
} hyp__chain_t;

static void hyp__chain_add(hyp__chain_t *ch, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void hyp__chain_add(hyp__chain_t *ch, const char *fmt, ...) {
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(ch->buf[ch->n], sizeof(ch->buf[0]), fmt, ap);
    va_end(ap);
    ch->step[ch->n] = ch->buf[ch->n];
    ch->n++;
}

/* Step 1: the session's counters, its slot and descriptor tables, the fault
 * guard of the walks and the signal handler (installed before any trigger is
 * tried, so that no signal of a probe finds the default action). Forgets
 * the previous session's profile (an untaken last window). Returns 0, or -1
 * with an exception set and nothing left. */
static int hyp__start_tables(const hyp__config_t *c) {
    struct rlimit rl;
    char msg[1024];

    memset(&S.lost, 0, sizeof(S.lost));
    atomic_store(&S.no_frames, 0);
    atomic_store(&S.wall_gone, 0);
    atomic_store(&S.wall_gone_seen, 0);
    atomic_store(&S.wall_lost_ns, 0);
    S.handler_gone_seen = 0;
    S.wall = c->wall;
    S.signo = c->signo;
    S.depth = c->depth;
    S.pid = getpid();
    S.ring_words = (size_t)c->ring_words;
    S.period_ns = c->hz ? 1000000000u / c->hz : c->period;
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
        PyErr_NoMemory();
        return -1;
    }
    if (hyp__walk_guard_install() < 0) {
        hyp__reset_session();
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (hyp__sampler_install(c->signo, msg, sizeof(msg)) < 0) {
        hyp__reset_session();
        hyp__raise(hyp_py_profiler_error(), msg);
        return -1;
    }
    return 0;
}

/* Tries the perf event name on the calling thread: encoded, then opened
 * once and closed. Returns 0 (S.event and S.pcfg set) or a HYP_E* code with
 * msg set. */
static int hyp__try_event(const hyp__config_t *c, const char *name, char *msg, size_t msglen) {
    int ret, fd = -1;

    ret = hyp__probe_event(name, c->hz ? c->hz : c->period, c->hz != 0, msg, msglen);
    if (ret == 0)
        ret = hyp_perf_open(&S.event, &S.pcfg, 0, &fd, msg, msglen);
    if (fd >= 0)
        close(fd);
    return ret;
}

/* Step 2, the event named: it works here or start fails. */
static int hyp__trigger_named(const hyp__config_t *c, hyp__chain_t *ch) {
    char msg[1024];

    if (hyp__try_event(c, c->event, msg, sizeof(msg)) < 0) {
        PyErr_Format(hyp_py_event_error(), "event=%s: %s", c->event, msg);
        return -1;
    }
    S.trigger = TRIG_PERF;
    snprintf(ch->evname, sizeof(ch->evname), "%s", c->event);
    hyp__chain_add(ch, "%s: used", c->event);
    return 0;
}

/* Step 2, no event named: the first that works of hardware cycles, a
 * software perf event, a POSIX CPU timer, setitimer; each step tried is
 * reported. */
static int hyp__trigger_fallback(const hyp__config_t *c, hyp__chain_t *ch) {
    static const char *const tries[] = {"cycles", "cpu-clock"};
    char msg[1024];
    size_t t, k, used = 0;
    timer_t t0;
    int ret;

    for (t = 0; t < 2 && S.trigger == TRIG_NONE; t++) {
        if (c->dis_perf || (t == 0 && c->dis_hw)) {
            hyp__chain_add(ch, "%s: disabled", tries[t]);
        } else if ((ret = hyp__try_event(c, tries[t], msg, sizeof(msg))) == 0) {
            S.trigger = TRIG_PERF;
            if (!S.wall)
                snprintf(ch->evname, sizeof(ch->evname), "%s", tries[t]);
            hyp__chain_add(ch, "%s: used", tries[t]);
        } else {
            hyp__chain_add(ch, "%s: %s (%.440s)", tries[t], hyp_err_name(ret), msg);
        }
    }
    if (S.trigger == TRIG_NONE) {
        if (c->dis_timer) {
            hyp__chain_add(ch, "posix-timer: disabled");
        } else if ((ret = hyp_timer_thread_create(0, 0, c->signo, S.period_ns, NULL, &t0, msg,
                                                  sizeof(msg))) == 0) {
            hyp_timer_thread_delete(t0);
            S.trigger = TRIG_TIMER;
            hyp__chain_add(ch, "posix-timer: used");
        } else {
            hyp__chain_add(ch, "posix-timer: %s (%.440s)", hyp_err_name(ret), msg);
        }
    }
    if (S.trigger == TRIG_NONE) {
        if (c->dis_itimer) {
            hyp__chain_add(ch, "setitimer: disabled");
        } else if (c->signo != SIGPROF) {
            hyp__chain_add(ch, "setitimer: needs signal SIGPROF, not %d", c->signo);
        } else {
            S.trigger = TRIG_ITIMER;
            hyp__chain_add(ch, "setitimer: used");
        }
    }
    if (S.trigger != TRIG_NONE)
        return 0;
    used += (size_t)snprintf(msg, sizeof(msg), "no sampling trigger works here:");
    for (k = 0; k < ch->n && used < sizeof(msg); k++)
        used += (size_t)snprintf(msg + used, sizeof(msg) - used, " %s;", ch->step[k]);
    hyp__raise(hyp_py_event_error(), msg);
    return -1;
}

/* Step 2: the trigger. The wall clock reads waiting threads from its
 * sampler thread and lets running ones sample themselves on their CPU clock,
 * found by the same chain. Returns 0 (S.trigger set), or -1 with
 * hyprof.EventError (or ProfilerError) set. */
static int hyp__start_trigger(const hyp__config_t *c, hyp__chain_t *ch) {
    S.trigger = TRIG_NONE;
    ch->n = 0;
    snprintf(ch->evname, sizeof(ch->evname), "%s", S.wall ? "wall-time" : "cpu-time");
    if (S.wall) {
        if (!hyp__walk_remote_available()) {
            hyp__raise(hyp_py_profiler_error(),
                       "clock=\"wall\" needs process_vm_readv() to read waiting threads' "
                       "stacks, and this process may not use it (seccomp?); use clock=\"cpu\"");
            return -1;
        }
        hyp__chain_add(ch, "wall-sampler: used for waiting threads");
    }
    if (c->event != NULL)
        return hyp__trigger_named(c, ch);
    return hyp__trigger_fallback(c, ch);
}

/* The header entries that say how the session samples. Returns 0 or an
 * HYP_E* code. */
static int hyp__start_meta(const hyp__config_t *c, const hyp__chain_t *ch) {
    hyp_profile_t *p = S.profile;
    int rc;

    if ((rc = hyp_profile_set_meta_str(p, "clock", c->clock)) < 0 ||
        (rc = hyp_profile_set_meta_str(p, "trigger",
                                       S.wall ? "wall-sampler" : hyp__trig_names[S.trigger])) < 0 ||
        (S.wall &&
         (rc = hyp_profile_set_meta_str(p, "running_trigger", hyp__trig_names[S.trigger])) < 0) ||
        (rc = hyp_profile_set_meta_str(p, "event", ch->evname)) < 0 ||
        (rc = hyp_profile_set_meta_strv(p, "fallback", ch->step, ch->n)) < 0 ||
        (rc = hyp_profile_set_meta_int(p, "signal", c->signo)) < 0 ||
        (rc = hyp_profile_set_meta_int(p, "depth", c->depth)) < 0)
        return rc;
    if (S.trigger != TRIG_PERF) {
        if ((rc = hyp_profile_set_meta_int(p, "period", (int64_t)S.period_ns)) < 0)
            return rc;
        return hyp_profile_set_meta_int(p, "frequency",
                                        (int64_t)(1000000000u / (S.period_ns ? S.period_ns : 1)));
    }
    if ((rc = hyp_profile_set_meta_str(p, "event_name", S.event.name)) < 0 ||
        (rc = hyp_profile_set_meta_str(p, "event_pmu", S.event.pmu)) < 0 ||
        (rc = hyp_profile_set_meta_int(p, S.pcfg.freq ? "frequency" : "period",
                                       (int64_t)S.pcfg.period)) < 0)
        return rc;
    return c->hz ? hyp_profile_set_meta_int(p, "frequency", (int64_t)c->hz) : 0;
}

/* The collectors of samples taken with the GIL (collect.h) that the session
 * asked for: their columns and kinds are the profile's, their runs are cut
 * into each window and merged at stop. Returns their number. */
#define HYP__NCOLLECTORS 2
static int hyp__collectors(hyp_collector_t **out) {
    int n = 0;

    if (S.locks)
        out[n++] = hyp_py_lock_collector();
    if (S.exceptions)
        out[n++] = hyp_py_exc_collector();
    return n;
}

/* Step 3: the profile, its sample kind (the trigger's: a count and a weight
 * column), the allocation collector's columns with memory=, the collectors'
 * with locks= and exceptions=, the header, and
 * the stream when there is a path (none: windows, the profile stays in
 * memory and is handed out by hyp__take_window()). Returns 0, or -1 with an
 * exception set; the caller frees what was made. */
static int hyp__start_profile(const hyp__config_t *c, const hyp__chain_t *ch) {
    hyp_metric_t metrics[2 + HYP_PY_ALLOC_NMETRICS + HYP_PY_LOCK_NMETRICS + HYP_PY_EXC_NMETRICS];
    size_t nmetrics = 2;
    hyp_sample_kind_t kind;
    hyp_collector_t *cols[HYP__NCOLLECTORS];
    int i, ncol;
    uint32_t k;
    char msg[1200];

    metrics[0].name = "samples";
    metrics[0].unit = "count";
    metrics[0].kind = HYP_METRIC_OWN;
    metrics[1].name = ch->evname;
    metrics[1].unit = (S.trigger != TRIG_PERF || S.event.is_clock) ? "ns" : "events";
    metrics[1].kind = HYP_METRIC_OWN;
    if (c->memory) {
        /* The allocation collector's columns (pyext/alloc.c), merged at stop. */
        memcpy(metrics + nmetrics, hyp_py_alloc_metrics, sizeof(hyp_py_alloc_metrics));
        nmetrics += HYP_PY_ALLOC_NMETRICS;
    }
    S.locks = c->locks;
    S.exceptions = c->exceptions;
    ncol = hyp__collectors(cols);
    for (i = 0; i < ncol; i++) {
        memcpy(metrics + nmetrics, cols[i]->metrics, cols[i]->nmetrics * sizeof *metrics);
        nmetrics += cols[i]->nmetrics;
    }
    hyp__sampler_labels_forget();
    S.profile = hyp_profile_new(HYP_MODE_SAMPLING, metrics, nmetrics);
    if (S.profile == NULL)
        goto nomem;
    kind.name = metrics[1].name;
    kind.unit = metrics[1].unit;
    kind.count_metric = 0;
    kind.weight_metric = 1;
    if (hyp_profile_sample_kind(S.profile, &kind, &k) < 0)
        goto nomem;
    S.memory = c->memory;
    if (c->memory && hyp_py_alloc_declare(S.profile) < 0)
        goto nomem;
    for (i = 0; i < ncol; i++)
        if (hyp_collector_declare(cols[i], S.profile) < 0)
            goto nomem;
    hyp_profile_set_node_limit(S.profile, 1000000);
    if (hyp__declare_special(S.profile) < 0)
        goto nomem;
    if ((c->meta != Py_None && hyp_py_set_meta_dict(S.profile, c->meta) < 0) ||
        hyp__set_run_meta() < 0)
        return -1;
    if (hyp__start_meta(c, ch) < 0)
        goto nomem;
    if (c->path != NULL && hyp_writer_open(&S.writer, c->path) < 0) {
        snprintf(msg, sizeof(msg), "cannot open the trace file %s: %s", c->path, strerror(errno));
        hyp__raise(PyExc_OSError, msg);
        return -1;
    }
    if (S.writer != NULL && hyp_writer_begin(S.writer, S.profile) < 0) {
        snprintf(msg, sizeof(msg), "cannot write the trace header to %s", c->path);
        hyp__raise(PyExc_OSError, msg);
        return -1;
    }
    S.writer_err = 0;
    return 0;
nomem:
    PyErr_NoMemory();
    return -1;
}

/* Step 4: the code map, then sampling on (S.active), then every thread that
 * exists now, this one first (its trigger was probed). Returns 0, or -1 with
 * an exception set and the session undone. */
static int hyp__start_threads(const hyp__config_t *c) {
    hyp_slot_t *first;
    char msg[1024];

    if (hyp__codemap_start(S.profile, hyp__sampler_on_code_death) < 0) {
        hyp__free_profile();
        hyp__reset_session();
        return -1;
    }
    if (c->threads_active != Py_None)
        S.threads_active = Py_NewRef(c->threads_active);
    S.exclude = NULL;
    S.t0 = hyp_clock_monotonic_ns();
    S.window_start = S.t0;
    memset(S.lost_given, 0, sizeof S.lost_given);
    S.no_frames_given = 0;
    memset(S.gil_samples, 0, sizeof S.gil_samples);
    memset(S.gil_given, 0, sizeof S.gil_given);
    if (hyp_py_gc_retain(1) < 0) {
        hyp__codemap_stop();
        hyp__free_profile();
        hyp__reset_session();
        return -1;
    }
    S.gc_retained = 1;
    hyp_py_gc_totals(&S.gc_given);
    S.running = 1;
    hyp__walk_gil_bind(PyThreadState_Get());
    atomic_store(&S.active, 1);
    first = hyp__sampler_register(PyThreadState_Get(), (pid_t)syscall(SYS_gettid),
                                  PyThread_get_thread_ident(), msg, sizeof(msg));
    if (first == NULL) {
        hyp__undo_start();
        hyp__raise(hyp_py_event_error(), msg);
        return -1;
    }
    hyp__sampler_own_slot(first);
    hyp__sampler_sync_threads();
    return 0;
}

/* Step 5: the triggers that are not per thread, armed last: the interval
 * timer (setitimer) and the wall-clock sampler thread. Returns 0, or -1
 * with an exception set; the caller undoes the session. */
static int hyp__start_arm(void) {
    char msg[512];

    if (S.trigger == TRIG_ITIMER && hyp_itimer_set(S.period_ns, msg, sizeof(msg)) < 0) {
        hyp__raise(hyp_py_event_error(), msg);
        return -1;
    }
    if (S.wall && hyp__sampler_wall_start() < 0) {
        hyp__raise(hyp_py_profiler_error(), "cannot start the wall-clock sampler thread");
        return -1;
    }
    return 0;
}

/* start()'s answer: what the session really uses. */
static PyObject *hyp__start_info(const hyp__config_t *c, const hyp__chain_t *ch) {
    PyObject *result, *lst;
    size_t k;

    result = Py_BuildValue(
        "{s:s,s:s,s:s,s:K,s:K,s:i,s:N}", "trigger",
        S.wall ? "wall-sampler" : hyp__trig_names[S.trigger], "event", ch->evname, "event_name",
        S.trigger == TRIG_PERF ? S.event.name : ch->evname, "period",
        (unsigned long long)(S.trigger == TRIG_PERF && !S.pcfg.freq ? S.pcfg.period : S.period_ns),
        "frequency",
        (unsigned long long)(c->hz ? c->hz : (S.period_ns ? 1000000000u / S.period_ns : 0)),
        "signal", c->signo, "fallback", PyList_New(0));
    if (result == NULL)
        return NULL;
    lst = PyDict_GetItemString(result, "fallback");
    for (k = 0; k < ch->n; k++) {
        PyObject *s = PyUnicode_FromString(ch->step[k]);
        if (s == NULL || PyList_Append(lst, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(s);
    }
    return result;
}

/* start() -> dict: starts the process's session with self's options. */
static PyObject *hyp__start(hyp__sampler_obj_t *self, PyObject *noargs) {
    const hyp__config_t *c = &self->cfg;
    hyp__chain_t chain;

    (void)noargs;
    if (!self->ready)
        return hyp__raise(hyp_py_profiler_error(), "Sampler.__init__() was not called");
    if (S.running)
        return hyp__raise(hyp_py_profiler_error(),
                          "a sampling profiler is already running in this process; stop it first");
    if (hyp__start_tables(c) < 0)
        return NULL;
    if (hyp__start_trigger(c, &chain) < 0 || hyp__start_profile(c, &chain) < 0) {
        hyp__free_profile();
        hyp__reset_session();
        return NULL;
    }
    if (hyp__start_threads(c) < 0)
        return NULL;
    if (hyp__start_arm() < 0) {
        hyp__undo_start();
        return NULL;
    }
    Py_XSETREF(S.owner, Py_NewRef((PyObject *)self));
    return hyp__start_info(c, &chain);
}

/* ---------------------------------------------------------------- threads, the resolver's pass */

/* register_thread() -> bool: the thread hook's call, in a new thread. */
static PyObject *hyp__register_thread(hyp__sampler_obj_t *self, PyObject *noargs) {
    PyThreadState *ts = PyThreadState_Get();
    hyp_slot_t *slot;
    char msg[512];

    (void)noargs;
    if (!hyp__owns(self))
        Py_RETURN_FALSE;
    slot = hyp__sampler_slot_of(ts);
    if (slot != NULL && slot->tid != (pid_t)syscall(SYS_gettid)) {
        hyp__sampler_drain_all();
        hyp__sampler_retire(slot);
        slot = NULL;
    }
    if (slot == NULL)
        slot = hyp__sampler_register(ts, (pid_t)syscall(SYS_gettid), PyThread_get_thread_ident(),
                                     msg, sizeof(msg));
    if (slot == NULL)
        Py_RETURN_FALSE;
    /* The resolver's enumeration may have found the thread state before
     * threading had named the thread; it has now (this runs from the thread
     * hook, in the thread's first call), and the thread may end before the
     * resolver next looks. */
    if (slot->name == HYP_NO_ID && hyp__sampler_thread_name(slot->ident, &slot->name) != 1)
        slot->name = HYP_NO_ID;
    hyp__sampler_own_slot(slot);
    Py_RETURN_TRUE;
}

/* Marks the calling thread as the resolver: never sampled. */
static PyObject *hyp__exclude_thread(hyp__sampler_obj_t *self, PyObject *noargs) {
    PyThreadState *ts = PyThreadState_Get();
    hyp_slot_t *slot;

    (void)noargs;
    if (!hyp__owns(self))
        Py_RETURN_NONE;
    S.exclude = ts;
    slot = hyp__sampler_slot_of(ts);
    if (slot != NULL) {
        hyp__sampler_drain_all();
        hyp__sampler_retire(slot);
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

/* sync() -> bool: the resolver's periodic work: resolve, follow threads,
 * flush a chunk. */
static PyObject *hyp__sync(hyp__sampler_obj_t *self, PyObject *noargs) {
    (void)noargs;
    if (!hyp__owns(self))
        Py_RETURN_FALSE;
    if (!S.handler_gone_seen && hyp__sampler_handler_gone())
        S.handler_gone_seen = 1;
    hyp__sampler_drain_all();
    hyp__sampler_sync_threads();
    hyp__flush();
    Py_RETURN_TRUE;
}

/* ---------------------------------------------------------------- statistics, windows, stop */

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
#define HYP__SET(name, expr)                                                                       \
    v = (expr);                                                                                    \
    if (v == NULL || PyDict_SetItemString(d, name, v) < 0) {                                       \
        Py_XDECREF(v);                                                                             \
        Py_DECREF(d);                                                                              \
        return NULL;                                                                               \
    }                                                                                              \
    Py_DECREF(v);
        HYP__SET("samples",
                 PyLong_FromUnsignedLongLong(S.profile ? hyp_profile_sample_total(S.profile) : 0));
        HYP__SET("no_python_frames", PyLong_FromUnsignedLongLong(atomic_load(&S.no_frames)));
        HYP__SET("code_deaths", PyLong_FromUnsignedLongLong(deaths));
        HYP__SET("code_cached", PyLong_FromSize_t(entries));
        HYP__SET("running", PyBool_FromLong(S.running));
        HYP__SET("threads", PyLong_FromSize_t(S.profile ? hyp_profile_thread_count(S.profile) : 0));
#undef HYP__SET
    }
    return d;
}

static PyObject *hyp__stats(hyp__sampler_obj_t *self, PyObject *noargs) {
    (void)noargs;
    if (S.owner != (PyObject *)self)
        return hyp__raise(hyp_py_profiler_error(), "this Sampler has not run");
    return hyp__stats_dict();
}

/* Adds the losses counted since the previous window (or the session's
 * start) to p's dropped counts: samples that never reached the profile,
 * reported in the window they were lost in. A ring's refusals are counted
 * when its thread is retired; live rings are read here. The samples that
 * found no Python frame, which are no loss, go apart, in the header's
 * "no_python_frames" (written with the end record), and so do the counts of
 * samples by the GIL's state and the window's garbage collections
 * (gcwatch.h). Returns 0 or an HYP_E* code. */
static int hyp__add_losses(hyp_profile_t *p) {
    uint64_t ring = 0, n;
    hyp_gc_totals_t gc;
    int i, g;

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
    for (g = 1; g < HYP_GIL_STATES && i == 0; g++) {
        /* The samples by the GIL's state: the header's "gil_held", ... */
        char key[32];

        snprintf(key, sizeof key, "gil_%s", hyp_py_gil_names[g]);
        i = hyp_profile_set_meta_int(p, key, (int64_t)(S.gil_samples[g] - S.gil_given[g]));
        S.gil_given[g] = S.gil_samples[g];
    }
    if (i < 0 || !S.gc_retained)
        return i;
    hyp_py_gc_totals(&gc);
    i = hyp_py_gc_meta(p, &S.gc_given, &gc);
    S.gc_given = gc;
    return i;
}

/* Sets p's "window_start" and "window_end" (Unix seconds) and "duration":
 * from the previous window's end (or the session's start) to now, which
 * begins the next one. Returns 0 or an HYP_E* code. */
static int hyp__end_window(hyp_profile_t *p) {
    struct timespec wall;
    uint64_t now = hyp_clock_monotonic_ns();
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
    hyp_collector_t *cols[HYP__NCOLLECTORS];
    int i, ncol;

    hyp__sampler_drain_all();
    hyp__sampler_sync_threads();
    fresh = hyp_profile_new_like(old);
    if (fresh == NULL || (*rc = hyp__declare_special(fresh)) < 0) {
        *rc = fresh == NULL ? HYP_ENOMEM : *rc;
        hyp_profile_free(fresh);
        return NULL;
    }
    /* What can fail comes first: on a failure the slots still name the
     * session's profile. A collector's cut that ran out of memory has
     * counted what it could not carry as dropped in the window. */
    ncol = hyp__collectors(cols);
    for (i = 0; i < ncol; i++)
        (void)hyp_collector_cut(cols[i], old);
    if ((*rc = hyp__add_losses(old)) < 0 || (*rc = hyp__end_window(old)) < 0) {
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
    S.profile = fresh;
    hyp__sampler_labels_forget();
    hyp__codemap_rebind(fresh);
    return old;
}

/* The losses of a CPU session at stop, the triggers quiet: with its signal
 * taken over by the program, what each thread ran since its last sample went
 * to the program's handler, about one sample per period (a frequency-driven
 * counter's period is unknown: at least one); otherwise the stopping
 * thread's CPU time since its last sample (which a timer on a loaded machine
 * delivers late, see the handler) goes to that sample's stack, so that its
 * weights add up to its CPU time. */
static void hyp__stop_cpu(int gone) {
    uint64_t c;
    int i;

    if (gone) {
        uint64_t missed = 0,
                 per = S.trigger == TRIG_PERF ? (S.pcfg.freq ? 0 : S.pcfg.period) : S.period_ns;

        for (i = 0; i < S.nslots; i++) {
            hyp_slot_t *slot = &S.slots[i];

            if (!slot->used || !atomic_load(&slot->live))
                continue;
            while (atomic_load(&slot->busy))
                sched_yield();
            if ((c = hyp__sampler_slot_count_now(slot)) > slot->last_count)
                missed += per ? (c - slot->last_count) / per : 1;
        }
        atomic_fetch_add(&S.lost[LOST_HANDLER_GONE], missed ? missed : 1);
    } else if (S.trigger != TRIG_NONE) {
        hyp_slot_t *slot = hyp__sampler_slot_of(PyThreadState_Get());

        if (slot != NULL && atomic_load(&slot->live)) {
            while (atomic_load(&slot->busy))
                sched_yield();
            if ((c = hyp__sampler_slot_count_now(slot)) > slot->last_count)
                hyp__sampler_write_last(slot, &slot->ring, c - slot->last_count,
                                        hyp_clock_monotonic_ns());
        }
    }
}

/* Completes the session's profile once every ring is resolved: the
 * allocation collector's samples, the losses, the window's end (windows),
 * the last chunk and the end of the stream. Returns 0 or the first HYP_E*
 * code met since start. */
static int hyp__stop_finish(void) {
    hyp_collector_t *cols[HYP__NCOLLECTORS];
    int i, ncol = hyp__collectors(cols), ret;

    for (i = 0; i < ncol; i++)
        if ((ret = hyp_collector_merge(cols[i], S.profile)) < 0 && ret != HYP_ESTATE &&
            S.writer_err == 0)
            S.writer_err = ret;
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
    return ret == 0 ? S.writer_err : ret;
}

/* stop() -> dict: the session stops (triggers off, every ring resolved, the
 * trace finished); returns its statistics. */
static PyObject *hyp__stop(hyp__sampler_obj_t *self, PyObject *noargs) {
    int i, ret, gone;
    char msg[256];

    (void)noargs;
    if (!hyp__owns(self))
        return hyp__raise(hyp_py_profiler_error(), "the sampling profiler is not running");
    atomic_store(&S.active, 0);
    gone = hyp__sampler_handler_gone();
    if (!S.wall && !gone && S.handler_gone_seen)
        atomic_fetch_add(&S.lost[LOST_HANDLER_GONE], 1); /* it came back: at least one */
    if (S.trigger == TRIG_ITIMER)
        hyp_itimer_set(0, NULL, 0);
    hyp__sampler_wall_join();
    if (S.wall)
        hyp__sampler_wall_last_ticks(gone);
    else
        hyp__stop_cpu(gone);
    for (i = 0; i < S.nslots; i++) {
        if (!S.slots[i].used)
            continue;
        hyp__sampler_disarm(&S.slots[i]);
        while (atomic_load(&S.slots[i].busy))
            sched_yield();
    }
    hyp__sampler_drain_all();
    for (i = 0; i < S.nslots; i++)
        if (S.slots[i].used)
            hyp__sampler_retire(&S.slots[i]);
    if (S.wall)
        atomic_fetch_add(&S.lost[LOST_RING_FULL], hyp__ring_dropped(&S.wall_ring));
    S.running = 0;
    hyp__codemap_stop();
    ret = hyp__stop_finish();
    hyp__gc_leave();
    Py_CLEAR(S.threads_active);
    if (ret < 0) {
        snprintf(msg, sizeof(msg), "the sampling trace could not be completed: %s",
                 hyp_strerror(ret));
        return hyp__raise(PyExc_OSError, msg);
    }
    return hyp__stats_dict();
}

/* window() -> capsule: the profile of the samples since the session
 * started or the previous window, while a session without a stream runs;
 * after its stop, the last of them, once. Windows are added up into Traces
 * by _hyprof.merge_profiles(), which a consumer asks for when it needs one. */
static PyObject *hyp__window(hyp__sampler_obj_t *self, PyObject *noargs) {
    hyp_profile_t *p;
    int rc = 0;

    (void)noargs;
    if (S.profile == NULL || S.owner != (PyObject *)self)
        return hyp__raise(hyp_py_profiler_error(), "no sampling session to take a window of");
    if (S.writer != NULL)
        return hyp__raise(hyp_py_profiler_error(),
                          "this sampling session streams to a file; windows are taken from a "
                          "session started without one");
    if (!S.running) {
        /* The last window: stop added its losses and ended the code map. */
        p = S.profile;
        S.profile = NULL;
        hyp__sampler_labels_forget();
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
static PyObject *hyp__after_fork_child(PyObject *cls, PyObject *noargs) {
    int i;

    (void)cls;
    (void)noargs;
    atomic_store(&S.active, 0);
    if (!S.running)
        Py_RETURN_NONE;
    for (i = 0; i < S.nslots; i++) {
        if (S.slots[i].used && hyp__sampler_fd_ours(&S.slots[i]))
            close(S.slots[i].fd);
        if (S.slots[i].used && S.slots[i].sysfd >= 0)
            close(S.slots[i].sysfd);
        S.slots[i].fd = -1;
        S.slots[i].sysfd = -1;
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
    hyp__sampler_labels_forget();
    S.slots = NULL;
    S.fd_slot = NULL;
    S.nslots = 0;
    hyp__gc_leave();
    hyp__sampler_own_slot(NULL);
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
static PyObject *hyp__perf_events(PyObject *self, PyObject *noargs) {
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
static PyObject *hyp__perf_probe(PyObject *self, PyObject *args) {
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
        PyThreadState *ts = PyEval_SaveThread();

        ret = hyp_perf_open(&ev, &cfg, 0, &fd, msg, sizeof(msg));
        if (fd >= 0)
            close(fd);
        PyEval_RestoreThread(ts);
    }
    return Py_BuildValue("(Oss)", ret == 0 ? Py_True : Py_False, ev.name, ret == 0 ? "opens" : msg);
}

/* _walk_guard_check() -> int: walks a frame chain into an unmapped page under
 * the fault guard; -1 means the fault was caught (tests). */
static PyObject *hyp__guard_check(PyObject *self, PyObject *noargs) {
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
static PyObject *hyp__set_scope(PyObject *self, PyObject *args) {
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

/* ---------------------------------------------------------------- the type */

static int hyp__traverse(hyp__sampler_obj_t *self, visitproc visit, void *arg) {
    Py_VISIT(self->cfg.meta);
    Py_VISIT(self->cfg.threads_active);
    return 0;
}

static int hyp__clear(hyp__sampler_obj_t *self) {
    Py_CLEAR(self->cfg.meta);
    Py_CLEAR(self->cfg.threads_active);
    return 0;
}

static void hyp__dealloc(hyp__sampler_obj_t *self) {
    PyObject_GC_UnTrack(self);
    hyp__config_clear(&self->cfg);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef hyp__sampler_methods[] = {
    {"start", (PyCFunction)hyp__start, METH_NOARGS,
     "Starts the process's sampling session with these options; returns what it uses "
     "(trigger, event, period, frequency, signal, fallback). Raises ProfilerError while "
     "a session runs."},
    {"stop", (PyCFunction)hyp__stop, METH_NOARGS, "Stops the session; returns its statistics."},
    {"sync", (PyCFunction)hyp__sync, METH_NOARGS,
     "Resolves pending samples, follows new and finished threads, flushes a trace chunk; "
     "False once the session is over."},
    {"register_thread", (PyCFunction)hyp__register_thread, METH_NOARGS,
     "Starts sampling the calling thread."},
    {"exclude_thread", (PyCFunction)hyp__exclude_thread, METH_NOARGS,
     "Never samples the calling thread (the resolver)."},
    {"stats", (PyCFunction)hyp__stats, METH_NOARGS, "The session's statistics."},
    {"window", (PyCFunction)hyp__window, METH_NOARGS,
     "The profile of the samples since the previous window (a capsule for merge_profiles), "
     "from a session started without a path."},
    {"after_fork_child", hyp__after_fork_child, METH_NOARGS | METH_STATIC,
     "Forgets the parent's session in a forked child."},
    {NULL, NULL, 0, NULL},
};

/* PyVarObject_HEAD_INIT() brings its own comma, which clang-format does not
 * know of. */
/* clang-format off */
static PyTypeObject hyp__sampler_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hyprof._hyprof.Sampler",
    .tp_basicsize = sizeof(hyp__sampler_obj_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Sampler(path, event=None, clock='cpu', period=0, frequency=0, depth=128,\n"
              "        signo=SIGPROF, ring_words=2**17, meta=None, disable=None,\n"
              "        threads_active=None, memory=False, locks=False, exceptions=False)\n"
              "The sampling mode's engine (one session at a time in a process); path None "
              "takes windows instead of streaming. hyprof.Profiler(mode='sampling') wraps it.",
    .tp_traverse = (traverseproc)hyp__traverse,
    .tp_clear = (inquiry)hyp__clear,
    .tp_dealloc = (destructor)hyp__dealloc,
    .tp_init = (initproc)hyp__init,
    .tp_new = PyType_GenericNew,
    .tp_methods = hyp__sampler_methods,
};
/* clang-format on */

static PyMethodDef hyp__module_methods[] = {
    {"_walk_set_scope", hyp__set_scope, METH_VARARGS,
     "Sets the frame that called the profiled program and hyprof's own code objects "
     "(internal)."},
    {"_walk_guard_check", hyp__guard_check, METH_NOARGS,
     "Walks a frame chain into an unmapped page under the fault guard (tests)."},
    {"perf_events", hyp__perf_events, METH_NOARGS,
     "[(pmu, name, description, is_hardware)] for every event libpfm4 knows here."},
    {"perf_probe", hyp__perf_probe, METH_VARARGS,
     "(ok, fully qualified name, message): whether the event opens on this machine."},
    {NULL, NULL, 0, NULL},
};

int hyp_py_sampler_init(PyObject *module) {
    if (PyType_Ready(&hyp__sampler_type) < 0 ||
        PyModule_AddObjectRef(module, "Sampler", (PyObject *)&hyp__sampler_type) < 0)
        return -1;
    return PyModule_AddFunctions(module, hyp__module_methods);
}
