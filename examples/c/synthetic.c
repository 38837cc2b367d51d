/* A deterministic profile of a made-up program, recorded through the public
 * C API and written as a trace: what a profile hook does, without Python.
 *
 * The program: main() calls parse() 10 times, each parse() calls walk(),
 * which recurses twice (walk -> walk -> walk), and main() sleeps once. Each
 * function's own time is fixed, so the trace's numbers are known:
 *   main   1 call,            10 ms own, 100 ms cumulative
 *   parse  10 calls,          20 ms own,  50 ms cumulative
 *   walk   30 calls (10 primitive), 30 ms own, 30 ms cumulative
 *   time.sleep  1 call,       40 ms own
 *
 * Build it against an installed libhyprof:
 *   cc synthetic.c $(pkg-config --cflags --libs hyprof) -o synthetic
 * Run: ./synthetic out.hyprof && python -m hyprof show out.hyprof */
#include <hyprof.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000000ull

enum { CALLS, WALL_OWN, WALL_CUM, NMETRICS };

static const hyp_metric_t metrics[NMETRICS] = {
    {"calls", "count", HYP_METRIC_CALLS},
    {"wall_own", "ns", HYP_METRIC_OWN},
    {"wall_cum", "ns", HYP_METRIC_CUM},
};

/* The shadow stack a profile hook keeps: the node of each active call, when
 * it started, and the time its callees took. */
typedef struct {
    hyp_id_t node;
    uint64_t start, children;
} frame_t;

typedef struct {
    hyp_profile_t *p;
    hyp_id_t thread;
    frame_t stack[64];
    int depth;
    uint64_t now; /* a synthetic clock, in ns */
    int err;
} recorder_t;

static hyp_id_t function(recorder_t *r, const char *name, const char *file, uint32_t line,
                         hyp_func_kind_t kind) {
    hyp_func_t f = {0, 0, line, (uint32_t)kind};
    hyp_id_t id = HYP_NO_ID;
    int rc;

    if ((rc = hyp_profile_string(r->p, name, strlen(name), &f.name)) < 0 ||
        (rc = hyp_profile_string(r->p, file, strlen(file), &f.file)) < 0 ||
        (rc = hyp_profile_func(r->p, &f, &id)) < 0)
        r->err = rc;
    return id;
}

static void enter(recorder_t *r, hyp_id_t func) {
    hyp_id_t parent = r->depth ? r->stack[r->depth - 1].node : HYP_ROOT_NODE;
    frame_t *f = &r->stack[r->depth++];
    int rc = hyp_profile_node(r->p, parent, func, 0, &f->node);

    if (rc < 0)
        r->err = rc;
    f->start = r->now;
    f->children = 0;
}

static void leave(recorder_t *r) {
    frame_t *f = &r->stack[--r->depth];
    uint64_t cum = r->now - f->start, v[NMETRICS];
    int rc;

    v[CALLS] = 1;
    v[WALL_OWN] = cum - f->children;
    v[WALL_CUM] = cum;
    if ((rc = hyp_profile_add(r->p, r->thread, f->node, v)) < 0)
        r->err = rc;
    if (r->depth > 0)
        r->stack[r->depth - 1].children += cum;
}

static void work(recorder_t *r, uint64_t ns) {
    r->now += ns;
}

int main(int argc, char **argv) {
    const char *out = argc > 1 ? argv[1] : "synthetic.hyprof";
    recorder_t r = {0};
    hyp_thread_t th = {1, 0, 0};
    hyp_id_t f_main, f_parse, f_walk, f_sleep;
    hyp_writer_t *w;
    int i, d, rc;

    r.p = hyp_profile_new(HYP_MODE_DETERMINISTIC, metrics, NMETRICS);
    if (r.p == NULL) {
        fprintf(stderr, "synthetic: out of memory\n");
        return 1;
    }
    hyp_profile_set_meta_str(r.p, "producer", "examples/c/synthetic");
    hyp_profile_set_meta_strv(r.p, "argv", (const char *const *)argv, (size_t)argc);
    hyp_profile_set_meta_str(r.p, "clock", "synthetic");
    if ((rc = hyp_profile_string(r.p, "MainThread", 10, &th.name)) < 0 ||
        (rc = hyp_profile_thread(r.p, &th, &r.thread)) < 0) {
        fprintf(stderr, "synthetic: %s\n", hyp_strerror(rc));
        return 1;
    }
    f_main = function(&r, "main", "synthetic.py", 1, HYP_FUNC_PYTHON);
    f_parse = function(&r, "parse", "synthetic.py", 10, HYP_FUNC_PYTHON);
    f_walk = function(&r, "walk", "synthetic.py", 20, HYP_FUNC_PYTHON);
    f_sleep = function(&r, "time.sleep", "", 0, HYP_FUNC_BUILTIN);

    enter(&r, f_main);
    work(&r, 5 * MS);
    for (i = 0; i < 10; i++) {
        enter(&r, f_parse);
        work(&r, 1 * MS);
        for (d = 0; d < 3; d++) {
            enter(&r, f_walk);
            work(&r, 1 * MS);
        }
        for (d = 0; d < 3; d++)
            leave(&r);
        work(&r, 1 * MS);
        leave(&r);
    }
    enter(&r, f_sleep);
    work(&r, 40 * MS);
    leave(&r);
    work(&r, 5 * MS);
    leave(&r);

    if (r.err < 0) {
        fprintf(stderr, "synthetic: recording failed: %s\n", hyp_strerror(r.err));
        return 1;
    }
    /* the streaming writer: begin writes the header, finish the tables,
     * rows and end record; close reports the first error of any call */
    rc = hyp_writer_open(&w, out);
    if (rc < 0) {
        fprintf(stderr, "synthetic: cannot write %s: %s\n", out, hyp_strerror(rc));
        return 1;
    }
    hyp_writer_begin(w, r.p);
    hyp_writer_finish(w, r.p);
    rc = hyp_writer_close(w);
    if (rc < 0) {
        fprintf(stderr, "synthetic: writing %s failed: %s\n", out, hyp_strerror(rc));
        return 1;
    }
    printf("wrote %s: %zu functions, %zu nodes\n", out, hyp_profile_func_count(r.p),
           hyp_profile_node_count(r.p));
    hyp_profile_free(r.p);
    return 0;
}
