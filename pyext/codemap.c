/* Code-object resolution and lifetime for the sampler (pyext/codemap.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* process_vm_readv */
#endif
#include "codemap.h"
#include "pyhyprof.h" /* hyp_py_code_func */

#include "hyprof/internal/util.h"
#include "walk.h"

#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct {
    PyCodeObject *code;  /* key; NULL: empty; HYP__TOMB: deleted */
    uint32_t fp;         /* fingerprint at resolution */
    hyp_id_t func;
    uint32_t nunits;
    uint32_t *lines;     /* per instruction offset: line + 1, 0 until computed */
} hyp_codeent_t;

#define HYP__TOMB ((PyCodeObject *)1)

static struct {
    int active;
    hyp_profile_t *profile;
    hyp_code_death_fn on_death;
    hyp_codeent_t *tab;
    size_t cap, used, tombs;
    uint64_t deaths;
#if PY_VERSION_HEX >= 0x030C0000
    int watcher; /* -1 when none */
#endif
} M = {0};

#if PY_VERSION_HEX < 0x030C0000
static destructor hyp__code_dealloc_next;
#endif

static inline size_t hyp__hash(const void *p) {
    uint64_t h = (uint64_t)(uintptr_t)p;

    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return (size_t)h;
}

static hyp_codeent_t *hyp__find(PyCodeObject *code) {
    size_t i, mask;

    if (M.cap == 0)
        return NULL;
    mask = M.cap - 1;
    for (i = hyp__hash(code) & mask;; i = (i + 1) & mask) {
        if (M.tab[i].code == code)
            return &M.tab[i];
        if (M.tab[i].code == NULL)
            return NULL;
    }
}

static int hyp__rehash(size_t cap) {
    hyp_codeent_t *old = M.tab, *tab;
    size_t oldcap = M.cap, i, j;

    tab = hyp__calloc(cap, sizeof(*tab));
    if (tab == NULL)
        return HYP_ENOMEM;
    for (i = 0; i < oldcap; i++) {
        if (old[i].code == NULL || old[i].code == HYP__TOMB)
            continue;
        for (j = hyp__hash(old[i].code) & (cap - 1); tab[j].code != NULL; j = (j + 1) & (cap - 1))
            ;
        tab[j] = old[i];
    }
    hyp__free(old);
    M.tab = tab;
    M.cap = cap;
    M.tombs = 0;
    return 0;
}

static hyp_codeent_t *hyp__insert(PyCodeObject *code) {
    size_t i, mask;

    if ((M.used + M.tombs + 1) * 2 > M.cap &&
        hyp__rehash(M.cap == 0 ? 256 : (M.used + 1) * 4 > M.cap ? M.cap * 2 : M.cap) < 0)
        return NULL;
    mask = M.cap - 1;
    for (i = hyp__hash(code) & mask;; i = (i + 1) & mask) {
        if (M.tab[i].code == NULL || M.tab[i].code == HYP__TOMB) {
            if (M.tab[i].code == HYP__TOMB)
                M.tombs--;
            memset(&M.tab[i], 0, sizeof(M.tab[i]));
            M.tab[i].code = code;
            M.used++;
            return &M.tab[i];
        }
    }
}

static void hyp__free_all(void) {
    size_t i;

    for (i = 0; i < M.cap; i++)
        if (M.tab[i].code != NULL && M.tab[i].code != HYP__TOMB)
            hyp__free(M.tab[i].lines);
    hyp__free(M.tab);
    M.tab = NULL;
    M.cap = M.used = M.tombs = 0;
}

static void hyp__died(PyCodeObject *code) {
    hyp_codeent_t *e;

    if (!M.active)
        return;
    M.deaths++;
    if (M.on_death != NULL)
        M.on_death(code);
    e = hyp__find(code);
    if (e != NULL) {
        hyp__free(e->lines);
        e->lines = NULL;
        e->code = HYP__TOMB;
        M.used--;
        M.tombs++;
    }
}

#if PY_VERSION_HEX >= 0x030C0000
static int hyp__watch(PyCodeEvent event, PyCodeObject *co) {
    if (event == PY_CODE_EVENT_DESTROY)
        hyp__died(co);
    return 0;
}
#else
/* 3.11 has no code watchers, so the code type's deallocator is wrapped: it
 * hears of every code object's destruction before code_dealloc()
 * (Objects/codeobject.c) takes it apart, as a watcher would. Installed once
 * and kept for the process's life (the map is inactive between sessions), so
 * a deallocator someone wrapped over it is never cut out of the chain. */
static void hyp__code_dealloc(PyObject *op) {
    /* Alive while it is heard of, as 3.12's code_dealloc() keeps it for its
     * watchers: samples that name it are resolved now, and the resolver
     * trusts a live reference count only. */
    Py_SET_REFCNT(op, 1);
    hyp__died((PyCodeObject *)op);
    Py_SET_REFCNT(op, 0);
    hyp__code_dealloc_next(op);
}
#endif

int hyp__codemap_start(hyp_profile_t *profile, hyp_code_death_fn on_death) {
    hyp__free_all();
    M.profile = profile;
    M.on_death = on_death;
    M.deaths = 0;
#if PY_VERSION_HEX >= 0x030C0000
    M.watcher = PyCode_AddWatcher(hyp__watch);
    if (M.watcher < 0)
        return -1;
#else
    if (hyp__code_dealloc_next == NULL) {
        hyp__code_dealloc_next = PyCode_Type.tp_dealloc;
        PyCode_Type.tp_dealloc = hyp__code_dealloc;
    }
#endif
    M.active = 1;
    return 0;
}

void hyp__codemap_stop(void) {
    M.active = 0;
#if PY_VERSION_HEX >= 0x030C0000
    if (M.watcher >= 0 && M.profile != NULL) {
        HYP_PY_EXC_SAVE(exc);

        if (PyCode_ClearWatcher(M.watcher) < 0)
            PyErr_Clear();
        HYP_PY_EXC_RESTORE(exc);
    }
    M.watcher = -1;
#endif
    hyp__free_all();
    M.profile = NULL;
}

void hyp__codemap_rebind(hyp_profile_t *profile) {
    size_t i;

    M.profile = profile;
    for (i = 0; i < M.cap; i++)
        if (M.tab[i].code != NULL && M.tab[i].code != HYP__TOMB)
            M.tab[i].func = HYP_NO_ID;
}

void hyp__codemap_abandon(void) {
    M.active = 0;
    M.tab = NULL; /* the parent's memory, left alone in a forked child */
    M.cap = M.used = M.tombs = 0;
    M.profile = NULL;
#if PY_VERSION_HEX >= 0x030C0000
    M.watcher = -1;
#endif
}

void hyp__codemap_stats(size_t *entries, uint64_t *deaths) {
    *entries = M.used;
    *deaths = M.deaths;
}

/* Reads a code object's header without trusting the address. */
static int hyp__probe(const void *addr, void *dst, size_t n) {
    struct iovec local = {dst, n}, far = {(void *)addr, n};

    return process_vm_readv(getpid(), &local, 1, &far, 1, 0) == (ssize_t)n ? 0 : -1;
}

/* 1 when addr holds a live code object with fingerprint fp. Reference counts
 * of freed memory are overwritten by the allocators' free lists (pymalloc,
 * glibc's tcache also overwrites the type word), so a dead object fails. */
static int hyp__trustworthy(PyCodeObject *addr, uint32_t fp) {
    union {
        PyCodeObject c;
        char b[sizeof(PyCodeObject)];
    } copy;
    Py_ssize_t rc;

    if (((uintptr_t)addr & (sizeof(void *) - 1)) != 0 || addr == NULL)
        return 0;
    if (hyp__probe(addr, &copy, sizeof(copy)) < 0)
        return 0;
    rc = Py_REFCNT(&copy.c);
    if (rc <= 0 || rc > ((Py_ssize_t)1 << 40) || Py_TYPE(&copy.c) != &PyCode_Type)
        return 0;
    return hyp__walk_fingerprint(&copy.c) == fp;
}


int hyp__codemap_resolve(uint64_t code_word, uint64_t info, hyp_id_t *func, uint32_t *line) {
    PyCodeObject *code = (PyCodeObject *)(uintptr_t)code_word;
    uint32_t fp = (uint32_t)(info >> 32), lasti = (uint32_t)info;
    hyp_codeent_t *e = hyp__find(code);
    int ln, ret;

    if (M.profile == NULL)
        return HYP_ESTATE;
    if (e != NULL && e->fp != fp)
        return 1; /* cannot happen while deaths are heard; never guess */
    if (e == NULL) {
        Py_ssize_t units;

        if (!hyp__trustworthy(code, fp))
            return 1;
        units = hyp__walk_code_units(code);
        e = hyp__insert(code);
        if (e == NULL)
            return HYP_ENOMEM;
        e->fp = fp;
        e->nunits = units > 0 ? (uint32_t)units : 0;
        e->func = HYP_NO_ID;
    }
    /* New, or the profile was changed (hyp__codemap_rebind()). */
    if (e->func == HYP_NO_ID && (ret = hyp_py_code_func(M.profile, code, &e->func)) < 0) {
        e->func = HYP_NO_ID;
        return ret;
    }
    *func = e->func;
    if (lasti >= e->nunits) {
        *line = 0;
        return 0;
    }
    if (e->lines == NULL) {
        e->lines = hyp__calloc(e->nunits, sizeof(uint32_t));
        if (e->lines == NULL)
            return HYP_ENOMEM;
    }
    if (e->lines[lasti] == 0) {
        ln = hyp__walk_line(code, lasti);
        e->lines[lasti] = ln > 0 ? (uint32_t)ln + 1 : 1;
    }
    *line = e->lines[lasti] - 1;
    return 0;
}
