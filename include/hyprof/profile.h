/* hyprof/profile.h: the in-memory profile, the data model both modes share.
 *
 * A profile is what a trace file holds, in memory: header metadata, a string
 * table, a function table, a thread table, the calling-context tree (CCT) of
 * call paths, and metric values attached to (thread, node) pairs. Both modes
 * build one; the writer serialises it, the reader rebuilds it, and the
 * aggregations (flat per-function statistics, caller/callee edges) work on
 * it, so every report works for both modes.
 *
 * Identifiers are dense uint32 indexes into their tables. Node 0 is the root
 * of the CCT: it has no function and no metrics of its own. A node is the
 * triple (parent, function, line); the same triple always gives the same node.
 * The deterministic mode uses line 0; the sampling mode keeps the line each
 * frame was executing, so per-line reports come from the same tree.
 *
 * Metric columns are declared once per profile (name, unit, kind). A metric's
 * kind says how it aggregates:
 *   HYP_METRIC_OWN   exclusive to the node (time spent in the node itself,
 *                    samples whose leaf is the node); a node's inclusive value
 *                    is derived by summing its subtree.
 *   HYP_METRIC_CUM   inclusive, measured by the producer (the deterministic
 *                    mode's cumulative times: a generator's cumulative wall time
 *                    is not the sum of its children's).
 *   HYP_METRIC_CALLS call counts; a function's primitive calls are its calls on
 *                    nodes that have no ancestor of the same function.
 * Per-function cumulative values never double-count recursion: a node counts
 * only when no ancestor is the same function.
 *
 * A producer that sees the live stack (the deterministic mode) can say
 * exactly which part of a CALLS or CUM column was recursive, which the tree
 * cannot tell when a generator resumed elsewhere or two functions share a
 * name. It adds, for such a base column named B:
 *   HYP_METRIC_REC       named "B.rec": the part of the node's B that was
 *                        recursive for its function (already running);
 *   HYP_METRIC_EDGE_REC  named "B.edge_rec": the part that was recursive for
 *                        its caller -> callee edge.
 * The aggregations then use base minus rec instead of the ancestor rule.
 *
 * Thread safety: none; a profile is owned by one thread at a time. */
#ifndef HYPROF_PROFILE_H
#define HYPROF_PROFILE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t hyp_id_t;

#define HYP_ROOT_NODE ((hyp_id_t)0)
#define HYP_NO_ID ((hyp_id_t)UINT32_MAX)

typedef enum { HYP_MODE_DETERMINISTIC = 0, HYP_MODE_SAMPLING = 1 } hyp_mode_t;

typedef enum {
    HYP_FUNC_PYTHON = 0,  /* a Python function (code object) */
    HYP_FUNC_BUILTIN = 1, /* a C function: builtin, or method of a C type */
    HYP_FUNC_SPECIAL = 2  /* made by hyprof: "[truncated]", "[unknown]", "[gc]", ... */
} hyp_func_kind_t;

typedef enum {
    HYP_METRIC_OWN = 0,
    HYP_METRIC_CUM = 1,
    HYP_METRIC_CALLS = 2,
    HYP_METRIC_REC = 3,     /* see below */
    HYP_METRIC_EDGE_REC = 4
} hyp_metric_kind_t;

typedef struct {
    hyp_id_t name;     /* string id of the qualified name ("Foo.bar", "list.append") */
    hyp_id_t file;     /* string id of the file name ("" for builtins) */
    uint32_t lineno;   /* first line of the function, 0 if none */
    uint32_t kind;     /* hyp_func_kind_t */
} hyp_func_t;

typedef struct {
    hyp_id_t parent;   /* parent node; HYP_NO_ID only for the root */
    hyp_id_t func;     /* function id; HYP_NO_ID only for the root */
    uint32_t line;     /* line executing in this frame, 0 if not recorded */
} hyp_node_t;

typedef struct {
    uint64_t os_tid;   /* kernel thread id */
    uint64_t ident;    /* threading.get_ident(), 0 outside Python */
    hyp_id_t name;     /* string id of the thread's name */
} hyp_thread_t;

typedef struct {
    const char *name;  /* "calls", "wall_own", "samples", "cycles", "alloc_bytes", ... */
    const char *unit;  /* "count", "ns", "bytes", or the event's unit */
    hyp_metric_kind_t kind;
} hyp_metric_t;

/* One sample: a leaf node, a timestamp and a weight (event count since the
 * previous sample, or bytes for an allocation sample). */
typedef struct {
    hyp_id_t thread;
    hyp_id_t node;
    uint32_t kind;     /* index into the profile's sample kinds */
    uint64_t time_ns;  /* nanoseconds since the profile's start */
    uint64_t weight;
    hyp_id_t labels;   /* the label set the sample carries: HYP_NO_LABELS, or see below */
} hyp_sample_t;

/* A sample kind ties samples to two OWN metric columns: one counts the
 * samples, the other sums their weights. */
typedef struct {
    const char *name;    /* "cpu-clock", "cycles", "alloc" */
    const char *unit;    /* unit of the weight: "ns", "events", "bytes" */
    uint32_t count_metric;
    uint32_t weight_metric;
} hyp_sample_kind_t;

/* Header metadata values: what the trace header's map holds. */
typedef enum {
    HYP_META_NIL = 0,
    HYP_META_BOOL = 1,
    HYP_META_INT = 2,
    HYP_META_UINT = 3,
    HYP_META_FLOAT = 4,
    HYP_META_STR = 5,
    HYP_META_STRV = 6  /* array of strings */
} hyp_meta_type_t;

typedef struct {
    const char *key;
    hyp_meta_type_t type;
    union {
        int b;
        int64_t i;
        uint64_t u;
        double f;
        const char *s;
        struct {
            const char *const *v;
            size_t n;
        } sv;
    } v;
} hyp_meta_t;

typedef struct hyp_profile_s hyp_profile_t;

/* ---------------------------------------------------------------- lifecycle */

/* Creates an empty profile with the root node and the given metric columns
 * (copied). Returns NULL when out of memory or when a metric is invalid. The
 * caller owns the profile and frees it with hyp_profile_free(). */
HYP_EXTERN hyp_profile_t *hyp_profile_new(hyp_mode_t mode, const hyp_metric_t *metrics,
                                          size_t nmetrics);
HYP_EXTERN void hyp_profile_free(hyp_profile_t *p);
/* Creates an empty profile shaped like src: the same mode, metric columns,
 * sample kinds (same numbers), header entries (but its run counts,
 * hyp_meta_key_summed()) and node limit, and no tables, rows or samples. For a producer that hands out what it recorded so far and
 * goes on in a fresh profile (the sampler's windows). NULL when out of
 * memory. */
HYP_EXTERN hyp_profile_t *hyp_profile_new_like(const hyp_profile_t *src);
/* Adds src into dst (core/merge.c): its strings, functions, call paths and
 * threads are interned in dst (a thread of the same kernel id and Python
 * ident is the same thread), its label sets by their strings, its rows
 * added value by value, its dropped counts, folded calls, sample total and
 * the header's run counts (hyp_meta_key_summed()) added. The profiles must have the same mode; dst may have more metric
 * columns and sample kinds than src (hyp_profile_new_like() makes one with
 * the same): each of src's is found in dst by name and must agree there (a
 * column's kind and unit; a sample kind's unit and its two columns).
 * HYP_EINVAL otherwise, dst unchanged.
 *
 * src's pending samples are not carried over as samples (their values are in
 * the rows), unless flags holds HYP_MERGE_SAMPLES: then each is added to dst
 * in order as hyp_profile_add_sample() adds one (its thread, node, kind and
 * label set mapped), so that dst's writer writes it as a sample. Should
 * memory run out on the way, the samples carried are the first ones, and are
 * in dst's pending list (hyp_profile_samples()); the others are not in dst
 * at all. flags is 0 or HYP_MERGE_SAMPLES (HYP_EINVAL otherwise);
 * hyp_profile_merge() is flags 0. Returns 0, HYP_EINVAL or HYP_ENOMEM (dst
 * then holds part of src). src is not changed. */
#define HYP_MERGE_SAMPLES 0x1u
HYP_EXTERN int hyp_profile_merge_ex(hyp_profile_t *dst, const hyp_profile_t *src, unsigned flags);
HYP_EXTERN int hyp_profile_merge(hyp_profile_t *dst, const hyp_profile_t *src);
/* A copy of src in memory (core/merge.c): its shape, as hyp_profile_new_like()
 * gives it, then every table with the same ids, its rows, dropped counts,
 * folded calls and sample total. The pending samples' values are in the
 * copy's rows but the list itself is not copied, as in a profile read back
 * from a file: src's list (hyp_profile_samples()) names the copy's ids too.
 * For a consumer that takes a profile over while its producer keeps the
 * original (the allocation collector's Trace). NULL when out of memory. */
HYP_EXTERN hyp_profile_t *hyp_profile_copy(const hyp_profile_t *src);
/* The same, with only the rows whose label set has keep[set] != 0 (keep
 * holds hyp_profile_labels_count(src) flags; NULL keeps them all: a copy): a
 * profile of what the program did under some labels. Its tables are src's
 * with src's ids (two threads that look alike stay two), so a path that
 * holds no kept row is there with no values; the run's totals (dropped
 * counts, folded calls, sample total) are carried only when keep is NULL. */
HYP_EXTERN hyp_profile_t *hyp_profile_copy_where(const hyp_profile_t *src,
                                                 const unsigned char *keep);

HYP_EXTERN hyp_mode_t hyp_profile_mode(const hyp_profile_t *p);

/* Caps the number of CCT nodes (0: no cap). Once the cap is reached,
 * hyp_profile_node() returns, instead of a new node, the node of the special
 * function "[truncated]" under the requested parent (or the parent itself if
 * it is such a node, so a whole folded subtree lands in one node), and counts
 * each fold; nothing is dropped silently. Each ordinary node gets at most one
 * "[truncated]" child, so the tree stays below twice the cap. */
HYP_EXTERN void hyp_profile_set_node_limit(hyp_profile_t *p, size_t max_nodes);
/* The calls folded into "[truncated]" nodes. A producer that folds its own
 * tree before it builds the profile (the deterministic mode) sets its count;
 * hyp_profile_node() adds its own folds to it. */
HYP_EXTERN uint64_t hyp_profile_truncated(const hyp_profile_t *p);
HYP_EXTERN void hyp_profile_set_truncated(hyp_profile_t *p, uint64_t n);

/* ---------------------------------------------------------------- metadata */

/* Sets a header entry, replacing any entry of the same key. Strings are
 * copied. Returns 0, HYP_EINVAL or HYP_ENOMEM. */
HYP_EXTERN int hyp_profile_set_meta(hyp_profile_t *p, const hyp_meta_t *entry);
HYP_EXTERN int hyp_profile_set_meta_str(hyp_profile_t *p, const char *key, const char *value);
HYP_EXTERN int hyp_profile_set_meta_int(hyp_profile_t *p, const char *key, int64_t value);
HYP_EXTERN int hyp_profile_set_meta_float(hyp_profile_t *p, const char *key, double value);
HYP_EXTERN int hyp_profile_set_meta_bool(hyp_profile_t *p, const char *key, int value);
HYP_EXTERN int hyp_profile_set_meta_strv(hyp_profile_t *p, const char *key,
                                         const char *const *values, size_t n);
/* 1 for the header keys the format itself uses ("format", "version",
 * "mode", "metrics", "sample_kinds"), which hyp_profile_set_meta() refuses. */
HYP_EXTERN int hyp_meta_key_reserved(const char *key);
/* 1 for the header keys that count something over the run ("no_python_frames",
 * the "gc_" and "gil_" entries): a merge adds them up (their integer values, saturating),
 * and hyp_profile_new_like() does not copy them, as it copies no dropped
 * count. */
HYP_EXTERN int hyp_meta_key_summed(const char *key);
/* Entries in insertion order; the pointers live as long as the profile. */
HYP_EXTERN size_t hyp_profile_meta_count(const hyp_profile_t *p);
HYP_EXTERN const hyp_meta_t *hyp_profile_meta_at(const hyp_profile_t *p, size_t i);
HYP_EXTERN const hyp_meta_t *hyp_profile_meta_get(const hyp_profile_t *p, const char *key);

/* ---------------------------------------------------------------- tables */

/* Interns a string: the same bytes always give the same id. Returns 0 and
 * sets *id, or HYP_ENOMEM. */
HYP_EXTERN int hyp_profile_string(hyp_profile_t *p, const char *s, size_t len, hyp_id_t *id);
HYP_EXTERN size_t hyp_profile_string_count(const hyp_profile_t *p);
/* Returns the string and sets *len, or NULL if id is out of range. */
HYP_EXTERN const char *hyp_profile_string_at(const hyp_profile_t *p, hyp_id_t id, size_t *len);

/* Interns a function (name, file, lineno, kind): the same four values always
 * give the same id. Returns 0, HYP_ERANGE for an unknown string id, or
 * HYP_ENOMEM. */
HYP_EXTERN int hyp_profile_func(hyp_profile_t *p, const hyp_func_t *f, hyp_id_t *id);
HYP_EXTERN size_t hyp_profile_func_count(const hyp_profile_t *p);
HYP_EXTERN const hyp_func_t *hyp_profile_func_at(const hyp_profile_t *p, hyp_id_t id);

/* Returns the node (parent, func, line), creating it if needed (see the node
 * limit above). Returns 0, HYP_ERANGE for an unknown parent or function, or
 * HYP_ENOMEM. */
HYP_EXTERN int hyp_profile_node(hyp_profile_t *p, hyp_id_t parent, hyp_id_t func, uint32_t line,
                                hyp_id_t *id);
HYP_EXTERN size_t hyp_profile_node_count(const hyp_profile_t *p);
HYP_EXTERN const hyp_node_t *hyp_profile_node_at(const hyp_profile_t *p, hyp_id_t id);
/* The node table, node_count() entries indexed by id (the root first); valid
 * until the next node is added. */
HYP_EXTERN const hyp_node_t *hyp_profile_nodes(const hyp_profile_t *p);

/* Adds a thread. Returns 0, HYP_ERANGE or HYP_ENOMEM. */
HYP_EXTERN int hyp_profile_thread(hyp_profile_t *p, const hyp_thread_t *t, hyp_id_t *id);
HYP_EXTERN size_t hyp_profile_thread_count(const hyp_profile_t *p);
HYP_EXTERN const hyp_thread_t *hyp_profile_thread_at(const hyp_profile_t *p, hyp_id_t id);

/* ---------------------------------------------------------------- labels */

/* A label of a sample or a row: what the program was doing, as a key and a
 * value, both string ids ("view" = "catalog.views.product_list"). Rows and
 * samples carry a label set; rows of one (thread, node) with different sets
 * are different rows, and every aggregation over nodes adds them up. */
typedef struct {
    hyp_id_t key;
    hyp_id_t value;
} hyp_label_t;

/* The empty label set, which unlabelled rows and samples carry. */
#define HYP_NO_LABELS 0u
/* The most labels one set holds. */
#define HYP_MAX_LABELS 64

/* Interns a label set: n labels with distinct keys, in any order (the set
 * keeps them sorted by key id). The same labels always give the same id; no
 * label gives HYP_NO_LABELS. Returns 0, HYP_EINVAL (a key given twice, more
 * than HYP_MAX_LABELS), HYP_ERANGE (an unknown string id) or HYP_ENOMEM. */
HYP_EXTERN int hyp_profile_labels(hyp_profile_t *p, const hyp_label_t *labels, size_t n,
                                  hyp_id_t *id);
/* The number of label sets, HYP_NO_LABELS included (at least 1). */
HYP_EXTERN size_t hyp_profile_labels_count(const hyp_profile_t *p);
/* The labels of set id, sorted by key id, and their number in *n; NULL for
 * an id out of range. Valid until the next set is added. */
HYP_EXTERN const hyp_label_t *hyp_profile_labels_at(const hyp_profile_t *p, hyp_id_t id,
                                                    size_t *n);

/* ---------------------------------------------------------------- metrics */

HYP_EXTERN size_t hyp_profile_metric_count(const hyp_profile_t *p);
HYP_EXTERN const hyp_metric_t *hyp_profile_metric_at(const hyp_profile_t *p, size_t i);
/* The format's name of a metric kind ("own", "cum", "calls", "rec",
 * "edge_rec"; "?" for a value outside the enum). */
HYP_EXTERN const char *hyp_metric_kind_name(hyp_metric_kind_t kind);
/* The kind named by s (len bytes): 0, or HYP_EINVAL for an unknown name. */
HYP_EXTERN int hyp_metric_kind_parse(const char *s, size_t len, hyp_metric_kind_t *kind);

/* Adds values (an array of metric_count() values) to the row of (thread,
 * node), creating the row. Returns 0, HYP_ERANGE or HYP_ENOMEM. */
HYP_EXTERN int hyp_profile_add(hyp_profile_t *p, hyp_id_t thread, hyp_id_t node,
                               const uint64_t *values);
/* The same for the row of (thread, node, labels), labels a label set. */
HYP_EXTERN int hyp_profile_add_labeled(hyp_profile_t *p, hyp_id_t thread, hyp_id_t node,
                                       hyp_id_t labels, const uint64_t *values);
/* The unlabelled row of (thread, node), or NULL if it has none. */
HYP_EXTERN const uint64_t *hyp_profile_row(const hyp_profile_t *p, hyp_id_t thread, hyp_id_t node);
/* The rows in the order they were made: row i's values (metric_count() of
 * them), its thread, node and label set in *thread, *node and *labels (each
 * may be NULL); NULL for i out of range. */
HYP_EXTERN size_t hyp_profile_row_count(const hyp_profile_t *p);
HYP_EXTERN const uint64_t *hyp_profile_row_at(const hyp_profile_t *p, size_t i, hyp_id_t *thread,
                                              hyp_id_t *node, hyp_id_t *labels);
/* Fills out (node_count() * metric_count() values, node-major) with the
 * values of every node, summed over all threads (thread == HYP_NO_ID) or for
 * one thread, and over every label set. Returns 0 or HYP_ERANGE. */
HYP_EXTERN int hyp_profile_node_values(const hyp_profile_t *p, hyp_id_t thread, uint64_t *out);
/* The same over the rows whose label set has keep[set] != 0 (keep holds
 * labels_count() flags; NULL keeps every row). */
HYP_EXTERN int hyp_profile_node_values_where(const hyp_profile_t *p, hyp_id_t thread,
                                             const unsigned char *keep, uint64_t *out);

/* ---------------------------------------------------------------- samples */

/* Declares a sample kind; its two metric columns must be OWN columns.
 * Returns 0, HYP_EINVAL or HYP_ENOMEM. */
HYP_EXTERN int hyp_profile_sample_kind(hyp_profile_t *p, const hyp_sample_kind_t *k,
                                       uint32_t *kind);
HYP_EXTERN size_t hyp_profile_sample_kind_count(const hyp_profile_t *p);
HYP_EXTERN const hyp_sample_kind_t *hyp_profile_sample_kind_at(const hyp_profile_t *p, size_t i);

/* Records a sample: adds 1 and its weight to its kind's metric columns of
 * (thread, node), and keeps the sample in the pending list that the next
 * hyp_writer_flush() writes and empties. Returns 0, HYP_ERANGE or HYP_ENOMEM. */
HYP_EXTERN int hyp_profile_add_sample(hyp_profile_t *p, const hyp_sample_t *s);
/* The pending samples, in the order they were added; sets *n. Valid until
 * the next sample is added or the list is flushed. */
HYP_EXTERN const hyp_sample_t *hyp_profile_samples(const hyp_profile_t *p, size_t *n);
/* Total samples added since creation (pending or already flushed). */
HYP_EXTERN uint64_t hyp_profile_sample_total(const hyp_profile_t *p);

/* Counts samples lost before they reached the profile (full ring, failed
 * resolution), by reason; written to the trace's end record. */
HYP_EXTERN void hyp_profile_add_dropped(hyp_profile_t *p, const char *reason, uint64_t n);
/* The reasons counted so far, in the order first seen: the i-th reason (NUL
 * terminated, living as long as the profile) and its count in *n. */
HYP_EXTERN size_t hyp_profile_dropped_count(const hyp_profile_t *p);
HYP_EXTERN const char *hyp_profile_dropped_at(const hyp_profile_t *p, size_t i, uint64_t *n);

#ifdef __cplusplus
}
#endif
#endif /* HYPROF_PROFILE_H */
