/* pyext/det_export.c: turns the deterministic engine's per-thread trees into
 * a hyp_profile_t (the shared model), converting ticks to nanoseconds. */
#include "det.h"

#include "hyprof/internal/util.h"

#include <string.h>
#include <unistd.h>

/* Column order documented in docs/FORMAT.md. The ".rec" and ".edge_rec"
 * columns carry the recursion the engine saw on the live stack. */
static const hyp_metric_t det_metrics[] = {
    {"calls", "count", HYP_METRIC_CALLS},
    {"wall_own", "ns", HYP_METRIC_OWN},
    {"cpu_own", "ns", HYP_METRIC_OWN},
    {"wall_cum", "ns", HYP_METRIC_CUM},
    {"cpu_cum", "ns", HYP_METRIC_CUM},
    {"calls.rec", "count", HYP_METRIC_REC},
    {"wall_cum.rec", "ns", HYP_METRIC_REC},
    {"cpu_cum.rec", "ns", HYP_METRIC_REC},
    {"calls.edge_rec", "count", HYP_METRIC_EDGE_REC},
    {"wall_cum.edge_rec", "ns", HYP_METRIC_EDGE_REC},
    {"cpu_cum.edge_rec", "ns", HYP_METRIC_EDGE_REC},
};
#define DET_NMETRICS HYP__ARRAY_SIZE(det_metrics)

static int hyp__export_func(hyp_profile_t *prof, det_func_t *f) {
    hyp_func_t hf;
    int rc;

    if (f->export_id != HYP_NO_ID)
        return 0;
    memset(&hf, 0, sizeof hf);
    if (f->kind == DET_FUNC_PYTHON)
        return hyp_py_code_func(prof, (PyCodeObject *)f->code, &f->export_id);
    if ((rc = hyp_py_intern_str(prof, f->name, &hf.name)) != 0 ||
        (rc = hyp_profile_string(prof, "", 0, &hf.file)) != 0)
        return rc;
    hf.kind = f->kind == DET_FUNC_BUILTIN ? HYP_FUNC_BUILTIN : HYP_FUNC_SPECIAL;
    return hyp_profile_func(prof, &hf, &f->export_id);
}

/* Own times round down and cumulative times up, so that a function's summed
 * own time never exceeds its cumulative time by a rounding. */
static uint64_t hyp__to_ns_down(uint64_t ticks, double ns_per_tick) {
    return (uint64_t)((double)ticks * ns_per_tick);
}

static uint64_t hyp__to_ns_up(uint64_t ticks, double ns_per_tick) {
    double ns = (double)ticks * ns_per_tick;
    uint64_t r = (uint64_t)ns;
    return (double)r < ns ? r + 1 : r;
}

/* Sorts a list of siblings by creation: the engine keeps them in
 * most-recently-used order, a trace lists them in the order they were first
 * called (what a time-ordered view shows). A merge sort, iterative. */
static det_node_t *hyp__sort_siblings(det_node_t *list) {
    size_t width, n = 0;
    det_node_t *x;

    for (x = list; x != NULL; x = x->next_sibling)
        n++;
    for (width = 1; width < n; width *= 2) {
        det_node_t *rest = list, *head = NULL, **tail = &head;
        while (rest != NULL) {
            det_node_t *a = rest, *b, *end;
            size_t i, na = 0, nb = 0;
            for (i = 0; i < width && rest != NULL; i++, na++)
                rest = rest->next_sibling;
            b = rest;
            for (i = 0; i < width && rest != NULL; i++, nb++)
                rest = rest->next_sibling;
            end = rest;
            while (na > 0 || nb > 0) {
                det_node_t **pick = nb == 0 || (na > 0 && a->seq <= b->seq) ? &a : &b;
                *tail = *pick;
                tail = &(*pick)->next_sibling;
                *pick = (*pick)->next_sibling;
                if (pick == &a)
                    na--;
                else
                    nb--;
            }
            *tail = end;
        }
        list = head;
    }
    return list;
}

static void hyp__sort_tree(det_thread_t *th) {
    det_chunk_t *c;
    size_t i;

    th->tree.root.first_child = hyp__sort_siblings(th->tree.root.first_child);
    for (c = th->tree.chunks; c != NULL; c = c->next)
        for (i = 0; i < c->used; i++)
            if (c->nodes[i].first_child != NULL)
                c->nodes[i].first_child = hyp__sort_siblings(c->nodes[i].first_child);
}

/* Walks one thread's tree in preorder without recursion (trees can be as
 * deep as the recursion limit allows), giving each node its shared id. */
static int hyp__export_thread(hyp_profile_t *prof, det_thread_t *th, hyp_id_t tid, double k,
                         uint64_t *folded) {
    det_node_t *n;
    uint64_t v[DET_NMETRICS];
    int rc;

    hyp__sort_tree(th);
    n = th->tree.root.first_child;
    th->tree.root.export_id = HYP_ROOT_NODE;
    while (n != NULL) {
        /* A leaf whose only call was the profiler's own stop path has
         * nothing to show. */
        if (n->calls == 0 && n->first_child == NULL && n->wall_own == 0 && n->wall_cum == 0 &&
            n->cpu_own == 0 && n->cpu_cum == 0)
            goto next;
        if ((rc = hyp__export_func(prof, n->func)) != 0)
            return rc;
        if ((rc = hyp_profile_node(prof, n->parent->export_id, n->func->export_id, 0,
                                   &n->export_id)) != 0)
            return rc;
        v[0] = n->calls;
        v[1] = hyp__to_ns_down(n->wall_own, k);
        v[2] = hyp__to_ns_down(n->cpu_own, k);
        v[3] = hyp__to_ns_up(n->wall_cum, k);
        v[4] = hyp__to_ns_up(n->cpu_cum, k);
        /* The recursive parts round like the totals they are taken from, so
         * that a node that only recursed keeps nothing outside. */
        if (n->rec != NULL) {
            v[5] = n->rec->calls;
            v[6] = hyp__to_ns_up(n->rec->wall, k);
            v[7] = hyp__to_ns_up(n->rec->cpu, k);
            v[8] = n->rec->edge_calls;
            v[9] = hyp__to_ns_up(n->rec->edge_wall, k);
            v[10] = hyp__to_ns_up(n->rec->edge_cpu, k);
        } else {
            memset(v + 5, 0, 6 * sizeof v[0]);
        }
        if (n->truncated)
            *folded += n->calls;
        if ((rc = hyp_profile_add(prof, tid, n->export_id, v)) != 0)
            return rc;
        if (n->first_child != NULL) {
            n = n->first_child;
            continue;
        }
    next:
        while (n != NULL && n->next_sibling == NULL)
            n = n->parent != &th->tree.root ? n->parent : NULL;
        if (n != NULL)
            n = n->next_sibling;
    }
    return 0;
}

static int hyp__set_meta(hyp_profile_t *prof, det_prof_t *p, double k) {
    det_thread_t *th;
    int perf = 0, sys = 0, rc;
    const char *cpu;
    char clocks[64];

    for (th = p->threads; th != NULL; th = th->next) {
        if (th->cpu.source == HYP_CPU_PERF_MMAP)
            perf++;
        else
            sys++;
    }
    cpu = perf != 0 && sys != 0 ? "mixed" : perf != 0 ? "perf_mmap" : "thread_cputime";
    if (p->cpu_flags & HYP_CPU_CLOCK_FORCE_SYSCALL)
        cpu = "thread_cputime";
    snprintf(clocks, sizeof clocks, "wall=%s cpu=%s", hyp_clock_wall_name(), cpu);
    if ((rc = hyp_profile_set_meta_str(prof, "clock", clocks)) != 0 ||
        (rc = hyp_profile_set_meta_str(prof, "clock_wall", hyp_clock_wall_name())) != 0 ||
        (rc = hyp_profile_set_meta_str(prof, "clock_cpu", cpu)) != 0 ||
        (rc = hyp_profile_set_meta_float(prof, "ns_per_tick", k)) != 0 ||
        (rc = hyp_profile_set_meta_str(prof, "engine", p->engine == DET_ENGINE_MONITORING
                                                           ? "monitoring"
                                                           : "setprofile")) != 0 ||
        (rc = hyp_profile_set_meta_bool(prof, "builtins", p->builtins)) != 0 ||
        (rc = hyp_py_set_run_meta(prof, p->unix_start, p->argv)) != 0 ||
        (rc = hyp_profile_set_meta_float(prof, "duration", (double)p->wall_total * k / 1e9)) !=
            0 ||
        (rc = hyp_profile_set_meta_int(prof, "max_nodes", (int64_t)p->max_nodes)) != 0 ||
        (rc = hyp_profile_set_meta_int(prof, "unmatched_returns", (int64_t)p->unmatched)) != 0 ||
        (rc = hyp_profile_set_meta_int(prof, "generators_lost", (int64_t)p->gens.lost)) != 0)
        return rc;
    {
        static const hyp_gc_totals_t none;
        return hyp_py_gc_meta(prof, &none, &p->gc_run);
    }
}

hyp_profile_t *hyp__det_export(det_prof_t *p) {
    hyp_profile_t *prof;
    det_thread_t *th;
    double k = p->ns_per_tick != 0 ? p->ns_per_tick : hyp_clock_ns_per_tick();
    uint64_t folded = 0;
    size_t i;
    int rc = 0;

    prof = hyp_profile_new(HYP_MODE_DETERMINISTIC, det_metrics, DET_NMETRICS);
    if (prof == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    /* The engine folds calls past its own limit already (its "[truncated]"
     * nodes come on top, one per parent at most), and the export can only
     * merge nodes: the profile needs no limit of its own, which would fold
     * the engine's folds again and count them twice. */
    for (i = 0; i < p->nfuncs; i++)
        p->funcs[i]->export_id = HYP_NO_ID;
    rc = hyp__set_meta(prof, p, k);
    /* Threads in the order they were first seen. */
    {
        det_thread_t **order = hyp__calloc(p->nthreads + 1, sizeof *order);
        size_t n = 0;
        if (order == NULL)
            rc = HYP_ENOMEM;
        for (th = p->threads; rc == 0 && th != NULL; th = th->next)
            order[n++] = th;
        while (rc == 0 && n-- > 0) {
            hyp_thread_t t;
            hyp_id_t tid;
            th = order[n];
            memset(&t, 0, sizeof t);
            t.os_tid = th->os_tid;
            t.ident = th->ident;
            if ((rc = hyp_profile_string(prof, th->name, strlen(th->name), &t.name)) != 0 ||
                (rc = hyp_profile_thread(prof, &t, &tid)) != 0)
                break;
            rc = hyp__export_thread(prof, th, tid, k, &folded);
        }
        hyp__free(order);
    }
    /* The calls the engine folded into "[truncated]", whichever place says
     * it: the header and the end record. */
    if (rc == 0) {
        hyp_profile_set_truncated(prof, folded);
        rc = hyp_profile_set_meta_int(prof, "truncated", (int64_t)folded);
    }
    if (rc != 0) {
        hyp_profile_free(prof);
        if (rc == HYP_ENOMEM)
            PyErr_NoMemory();
        else
            PyErr_Format(hyp_py_profiler_error(), "cannot build the profile: %s", hyp_strerror(rc));
        return NULL;
    }
    return prof;
}
