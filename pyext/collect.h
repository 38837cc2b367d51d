/* pyext/collect.h: internal to the _hyprof extension; not API.
 *
 * A collector of the samples that are taken with the GIL, on the thread they
 * describe, when the program does something (a lock wait or hold, locks.c;
 * an exception raised, exceptions.c), rather than when a signal comes: each
 * sample's stack is walked (hyp__walk_own(), so hyprof's own frames are left
 * out as in every sample) and resolved at once into the collector's own
 * profile, with a special function on top that says what happened
 * ("<lock created at app/cache.py:41>", "<raise KeyError>"). A run's profile
 * is merged, samples included, into the CPU sampler's at its stop, whose
 * metric columns include the collector's (hyp_collector_declare()).
 *
 * A collector is a static object of its file; its description (columns,
 * kinds) is constant, its run state is the GIL's. */
#ifndef HYPROF_PYEXT_COLLECT_H
#define HYPROF_PYEXT_COLLECT_H

#include "pyhyprof.h"

#define HYP_COLLECT_MAX_KINDS 2

typedef struct {
    /* What it records: its metric columns, and its kinds as names of a
     * count column and a weight column among them. */
    const hyp_metric_t *metrics;
    size_t nmetrics;
    struct {
        const char *name, *count, *weight;
    } kinds[HYP_COLLECT_MAX_KINDS];
    size_t nkinds;
    const char *nomem; /* the dropped reason for samples memory ran out for */
    /* The run. */
    int running;
    int depth;
    uint64_t t0;
    hyp_profile_t *prof;
    uint32_t kind_ids[HYP_COLLECT_MAX_KINDS];
    PyObject *funcs;      /* code -> function id in prof */
    PyObject *tops;       /* top function name -> function id in prof */
    PyObject *thread_ids; /* threading ident -> thread id in prof */
    PyObject *threading;  /* imported at start: thread names are read from it */
    hyp_id_t trunc_func;
    hyp_id_t *lab_cache;
    size_t nlab_cache;
    uint64_t sampled[HYP_COLLECT_MAX_KINDS];
    uint64_t failed;
} hyp_collector_t;

/* Starts a run: a fresh profile (its samples' stacks keep depth frames).
 * With the GIL; 0, or -1 with an exception (hyprof.ProfilerError when it
 * already runs). */
int hyp_collector_start(hyp_collector_t *c, int depth);
/* Ends the run; its profile waits for hyp_collector_merge(). */
void hyp_collector_stop(hyp_collector_t *c);
/* One sample of kind k with weight for the calling thread's stack, under the
 * special function top (a str; file and line: where it is, or NULL and 0).
 * Never raises: a failure is counted and reported in the profile. */
void hyp_collector_sample(hyp_collector_t *c, int k, uint64_t weight, PyObject *top,
                          PyObject *file, int line);
/* Declares the collector's kinds in p, whose columns include its own
 * (hyp_py_kind_declare()). Returns 0 or an HYP_E* code. */
int hyp_collector_declare(const hyp_collector_t *c, hyp_profile_t *p);
/* Adds the last run's profile into dst, samples included, once: HYP_ESTATE
 * when there is none or the run goes on. */
int hyp_collector_merge(hyp_collector_t *c, hyp_profile_t *dst);
/* Adds the running run's samples so far into dst, and goes on in a fresh
 * profile of the same shape (a window of the continuous profiler, whose
 * tables must not grow with the run). Returns 0; HYP_ESTATE when it does not
 * run; HYP_ENOMEM when no fresh profile could be made (nothing moved, the
 * next cut carries them) or when samples could not be carried into dst
 * (they are counted there as dropped, and the run goes on fresh). With the
 * GIL. */
int hyp_collector_cut(hyp_collector_t *c, hyp_profile_t *dst);
/* Forgets the run (a forked child, or a start). */
void hyp_collector_reset(hyp_collector_t *c);
/* A uniform draw in [0, 1) from the calling thread's generator, for the
 * collectors' sampling decisions. */
double hyp_collect_uniform(void);

#endif
