/* pyext/collect.c: the collectors of samples taken with the GIL
 * (collect.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* gettid */
#endif
#include "collect.h"

#include "hyprof/clock.h"
#include "hyprof/internal/util.h"
#include "labels.h"
#include "walk.h"

#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* A thread's generator for the sampling draws, seeded at its first use. */
static __thread uint64_t hyp__collect_rng;

double hyp_collect_uniform(void) {
    uint64_t x = hyp__collect_rng;

    if (x == 0)
        x = (uint64_t)syscall(SYS_gettid) * 0x9E3779B97F4A7C15ull ^ hyp_clock_monotonic_ns();
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    hyp__collect_rng = x ? x : 1;
    return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}

/* Forgets the ids of c's profile that its caches hold: the dictionaries are
 * emptied (keep: a fresh profile follows) or dropped. */
static void hyp__forget_ids(hyp_collector_t *c, int keep) {
    if (keep) {
        PyDict_Clear(c->funcs);
        PyDict_Clear(c->tops);
        PyDict_Clear(c->thread_ids);
    } else {
        Py_CLEAR(c->funcs);
        Py_CLEAR(c->tops);
        Py_CLEAR(c->thread_ids);
    }
    hyp__free(c->lab_cache);
    c->lab_cache = NULL;
    c->nlab_cache = 0;
    c->trunc_func = HYP_NO_ID;
}

void hyp_collector_reset(hyp_collector_t *c) {
    hyp_profile_free(c->prof);
    c->prof = NULL;
    hyp__forget_ids(c, 0);
    c->running = 0;
}

int hyp_collector_start(hyp_collector_t *c, int depth) {
    struct timespec now;
    size_t i;
    int rc = 0;

    if (c->running) {
        PyErr_Format(hyp_py_profiler_error(), "%s samples are already being taken",
                     c->kinds[0].name);
        return -1;
    }
    hyp_collector_reset(c);
    if (c->threading == NULL && (c->threading = PyImport_ImportModule("threading")) == NULL)
        return -1;
    c->prof = hyp_profile_new(HYP_MODE_SAMPLING, c->metrics, c->nmetrics);
    c->funcs = PyDict_New();
    c->tops = PyDict_New();
    c->thread_ids = PyDict_New();
    if (c->prof == NULL || c->funcs == NULL || c->tops == NULL || c->thread_ids == NULL)
        goto nomem;
    for (i = 0; i < c->nkinds && rc == 0; i++)
        rc = hyp_py_kind_declare(c->prof, c->kinds[i].name, c->kinds[i].count,
                                 c->kinds[i].weight, &c->kind_ids[i]);
    clock_gettime(CLOCK_REALTIME, &now);
    if (rc < 0 ||
        hyp_py_set_run_meta(c->prof, (double)now.tv_sec + now.tv_nsec * 1e-9, NULL) < 0)
        goto nomem;
    /* The same bound as the CPU sampler's: past it, call paths fold into
     * "[truncated]" (counted in the trace), so memory stays bounded. */
    hyp_profile_set_node_limit(c->prof, 1000000);
    c->depth = depth;
    c->t0 = hyp_clock_monotonic_ns();
    c->failed = 0;
    memset(c->sampled, 0, sizeof c->sampled);
    c->running = 1;
    return 0;
nomem:
    hyp_collector_reset(c);
    PyErr_NoMemory();
    return -1;
}

void hyp_collector_stop(hyp_collector_t *c) {
    if (!c->running)
        return;
    c->running = 0;
    if (c->failed != 0)
        hyp_profile_add_dropped(c->prof, c->nomem, c->failed);
}

static int hyp__fail(hyp_collector_t *c, int rc) {
    c->failed++;
    return rc < 0 ? rc : HYP_ENOMEM;
}

/* The function id that cache keeps for key, or the one made now: a code
 * object's, or a special function's (code NULL: key is its name). */
static int hyp__func_of(hyp_collector_t *c, PyObject *cache, PyObject *key, PyCodeObject *code,
                        PyObject *file, int line, hyp_id_t *id) {
    PyObject *v = PyDict_GetItemWithError(cache, key);
    int rc;

    if (v != NULL) {
        *id = (hyp_id_t)PyLong_AsUnsignedLong(v);
        return 0;
    }
    if (PyErr_Occurred())
        return hyp__fail(c, HYP_ENOMEM);
    if (code != NULL) {
        rc = hyp_py_code_func(c->prof, code, id);
    } else {
        hyp_func_t f;

        f.kind = HYP_FUNC_SPECIAL;
        f.lineno = line > 0 ? (uint32_t)line : 0;
        if ((rc = hyp_py_intern_str(c->prof, key, &f.name)) == 0 &&
            (rc = file != NULL ? hyp_py_intern_str(c->prof, file, &f.file)
                               : hyp_profile_string(c->prof, "", 0, &f.file)) == 0)
            rc = hyp_profile_func(c->prof, &f, id);
    }
    if (rc < 0)
        return hyp__fail(c, rc);
    v = PyLong_FromUnsignedLong(*id);
    if (v == NULL || PyDict_SetItem(cache, key, v) < 0) {
        Py_XDECREF(v);
        return hyp__fail(c, HYP_ENOMEM);
    }
    Py_DECREF(v);
    return 0;
}

/* The calling thread in the profile, named as threading names it. Known by
 * its Python ident and kernel id together: a new thread may get an ended
 * one's ident. Runs no Python code (a stop elsewhere could free the run):
 * the name is read from the Thread's own dict. */
static int hyp__thread_id(hyp_collector_t *c, hyp_id_t *id) {
    unsigned long ident = PyThread_get_thread_ident();
    pid_t tid = (pid_t)syscall(SYS_gettid);
    PyObject *key = Py_BuildValue("(ki)", ident, (int)tid), *v, *name;
    hyp_thread_t th;
    int rc;

    if (key == NULL)
        return hyp__fail(c, HYP_ENOMEM);
    v = PyDict_GetItemWithError(c->thread_ids, key);
    if (v != NULL) {
        *id = (hyp_id_t)PyLong_AsUnsignedLong(v);
        Py_DECREF(key);
        return 0;
    }
    name = hyp_py_thread_name(hyp_py_thread_object(NULL, ident));
    th.os_tid = (uint64_t)tid;
    th.ident = ident;
    /* A thread threading does not know is unnamed (FORMAT.md 4.3). */
    rc = name != NULL ? hyp_py_intern_str(c->prof, name, &th.name)
                      : hyp_profile_string(c->prof, "", 0, &th.name);
    if (rc == 0 &&
        (rc = hyp_profile_thread(c->prof, &th, id)) == 0) {
        v = PyLong_FromUnsignedLong(*id);
        if (v == NULL || PyDict_SetItem(c->thread_ids, key, v) < 0)
            rc = HYP_ENOMEM;
        Py_XDECREF(v);
    }
    Py_XDECREF(name);
    Py_DECREF(key);
    return rc < 0 ? hyp__fail(c, rc) : 0;
}

/* The node of the calling thread's stack, root first. */
static int hyp__stack_node(hyp_collector_t *c, hyp_id_t *node) {
    uint64_t buf[HYP_WALK_WORDS * HYP_WALK_MAX_DEPTH];
    hyp_id_t func;
    int truncated = 0, n, i, rc;

    *node = HYP_ROOT_NODE;
    n = hyp__walk_own(PyThreadState_Get(), buf, c->depth, &truncated);
    if (n == HYP_WALK_OWN || n < 0)
        return 1; /* hyprof's own code, or a stack that cannot be read */
    if (truncated) {
        if (c->trunc_func == HYP_NO_ID) {
            hyp_func_t f = {0, 0, 0, HYP_FUNC_SPECIAL};

            if ((rc = hyp_profile_string(c->prof, "[truncated]", 11, &f.name)) < 0 ||
                (rc = hyp_profile_string(c->prof, "", 0, &f.file)) < 0 ||
                (rc = hyp_profile_func(c->prof, &f, &c->trunc_func)) < 0)
                return hyp__fail(c, rc);
        }
        if ((rc = hyp_profile_node(c->prof, *node, c->trunc_func, 0, node)) < 0)
            return hyp__fail(c, rc);
    }
    for (i = n - 1; i >= 0; i--) {
        PyCodeObject *code = (PyCodeObject *)(uintptr_t)buf[2 * i];
        int line = hyp__walk_line(code, (uint32_t)buf[2 * i + 1]);

        if ((rc = hyp__func_of(c, c->funcs, (PyObject *)code, code, NULL, 0, &func)) < 0)
            return rc;
        if ((rc = hyp_profile_node(c->prof, *node, func, line > 0 ? (uint32_t)line : 0, node)) <
            0)
            return hyp__fail(c, rc);
    }
    return 0;
}

void hyp_collector_sample(hyp_collector_t *c, int k, uint64_t weight, PyObject *top,
                          PyObject *file, int line) {
    hyp_id_t node, func;
    hyp_sample_t s;
    int rc;

    if (!c->running)
        return;
    HYP_PY_EXC_SAVE(exc);
    if (hyp__stack_node(c, &node) != 0 ||
        hyp__func_of(c, c->tops, top, NULL, file, line, &func) < 0)
        goto out;
    if ((rc = hyp_profile_node(c->prof, node, func, 0, &node)) < 0) {
        hyp__fail(c, rc);
        goto out;
    }
    if (hyp__thread_id(c, &s.thread) < 0)
        goto out;
    s.node = node;
    s.kind = c->kind_ids[k];
    s.time_ns = hyp_clock_monotonic_ns() - c->t0;
    s.weight = weight;
    if ((rc = hyp_py_labels_map(c->prof, hyp__labels_now(), HYP_GIL_UNKNOWN, &c->lab_cache,
                                &c->nlab_cache, &s.labels)) < 0 ||
        (rc = hyp_profile_add_sample(c->prof, &s)) < 0) {
        hyp__fail(c, rc);
        goto out;
    }
    c->sampled[k]++;
out:
    PyErr_Clear();
    HYP_PY_EXC_RESTORE(exc);
}

int hyp_collector_declare(const hyp_collector_t *c, hyp_profile_t *p) {
    uint32_t id;
    size_t i;
    int rc;

    for (i = 0; i < c->nkinds; i++)
        if ((rc = hyp_py_kind_declare(p, c->kinds[i].name, c->kinds[i].count, c->kinds[i].weight,
                                      &id)) < 0)
            return rc;
    return 0;
}

int hyp_collector_merge(hyp_collector_t *c, hyp_profile_t *dst) {
    int rc;

    if (c->prof == NULL || c->running)
        return HYP_ESTATE;
    if ((rc = hyp_collector_declare(c, dst)) < 0 ||
        (rc = hyp_py_merge_samples(dst, c->prof, c->nomem)) < 0)
        return rc;
    hyp_collector_reset(c); /* merged once */
    return 0;
}

int hyp_collector_cut(hyp_collector_t *c, hyp_profile_t *dst) {
    hyp_profile_t *fresh;
    int rc;

    if (c->prof == NULL || !c->running)
        return HYP_ESTATE;
    if ((fresh = hyp_profile_new_like(c->prof)) == NULL)
        return HYP_ENOMEM;
    if (c->failed != 0)
        hyp_profile_add_dropped(c->prof, c->nomem, c->failed);
    if ((rc = hyp_collector_declare(c, dst)) < 0) {
        hyp_profile_free(fresh);
        return rc;
    }
    /* Out of memory in the merge, the samples not carried are counted as
     * dropped in dst: the run goes on in the fresh profile all the same, or
     * the next window would carry them (and count them) again. */
    rc = hyp_py_merge_samples(dst, c->prof, c->nomem);
    hyp_profile_free(c->prof);
    c->prof = fresh;
    hyp__forget_ids(c, 1);
    c->failed = 0;
    return rc < 0 ? rc : 0;
}
