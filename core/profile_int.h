/* core/profile_int.h: internal to the hyprof core; not installed, not API.
 *
 * The layout of hyp_profile_t, shared by profile.c, the trace writer and
 * reader, and the aggregations. */
#ifndef HYPROF_CORE_PROFILE_INT_H
#define HYPROF_CORE_PROFILE_INT_H

#include "hyprof/profile.h"
#include "htab.h"
#include "hyprof/internal/util.h"

typedef struct {
    char *s;
    size_t len;
} hyp__str_t;

typedef struct {
    hyp_meta_t m;  /* strings owned by the profile */
    uint64_t seq;  /* when it was last set; the writer puts late entries in the end record */
} hyp__meta_entry_t;

typedef struct {
    hyp_id_t thread;
    hyp_id_t node;
    hyp_id_t labels;
} hyp__rowkey_t;

typedef struct {
    char *reason;
    uint64_t n;       /* since creation */
    uint64_t flushed; /* part of n already written in a DROPPED record */
} hyp__dropped_t;

struct hyp_profile_s {
    hyp_mode_t mode;
    hyp_metric_t *metrics;
    size_t nmetrics;

    hyp__meta_entry_t *meta;
    size_t nmeta, cmeta;
    uint64_t meta_seq;

    hyp__str_t *strs;
    uint64_t *str_hash;
    size_t nstrs, cstrs;
    hyp__htab_t str_ht;

    hyp_func_t *funcs;
    size_t nfuncs, cfuncs;
    hyp__htab_t func_ht;

    hyp_node_t *nodes;
    size_t nnodes, cnodes;
    hyp__htab_t node_ht;

    hyp_thread_t *threads;
    size_t nthreads, cthreads;

    /* Label sets: set i is labs[lab_off[i]] .. labs[lab_off[i + 1] - 1],
     * sorted by key id; set 0 (HYP_NO_LABELS) is empty and not hashed. */
    hyp_label_t *labs;
    size_t nlabs, clabs;
    size_t *lab_off; /* nlabsets + 1 offsets */
    size_t nlabsets, clabsets;
    hyp__htab_t lab_ht;

    /* Rows of metric values, one per (thread, node) that has any. vals holds
     * nmetrics values per row. svals, allocated with the first flushed sample,
     * holds the part of vals that came from samples already written by a
     * writer, so hyp_writer_finish() does not write them twice. */
    hyp__rowkey_t *rowkeys;
    uint64_t *vals;
    uint64_t *svals;
    size_t nrows, crows;
    hyp__htab_t row_ht;

    hyp_sample_kind_t *kinds;
    size_t nkinds, ckinds;

    hyp_sample_t *pending;
    size_t npending, cpending;
    uint64_t sample_total;

    hyp__dropped_t *dropped;
    size_t ndropped, cdropped;

    size_t node_limit;
    uint64_t truncated;
    hyp_id_t trunc_func; /* HYP_NO_ID until the first fold */
};


/* Fills out with metrics first .. first + count - 1 of every node (count
 * values a node), summed over one thread's rows or all (HYP_NO_ID) and over
 * the label sets keep allows (NULL: all). thread must be in range. */
void hyp__node_values_range(const hyp_profile_t *p, hyp_id_t thread, const unsigned char *keep,
                            size_t first, size_t count, uint64_t *out);

/* Returns the row index of (thread, node, labels), creating it; or a
 * negative error. Unchecked ids. */
int64_t hyp__profile_row_index(hyp_profile_t *p, hyp_id_t thread, hyp_id_t node,
                               hyp_id_t labels);
/* The row index of (thread, node, labels), or -1. */
int64_t hyp__profile_find_row(const hyp_profile_t *p, hyp_id_t thread, hyp_id_t node,
                              hyp_id_t labels);

/* Records that the pending samples were written: adds their weights to svals
 * and empties the list. Returns 0 or HYP_ENOMEM. */
int hyp__profile_samples_flushed(hyp_profile_t *p);

void hyp__profile_set_sample_total(hyp_profile_t *p, uint64_t n);
/* Sets the dropped count of a reason (the end record's totals). */
int hyp__profile_set_dropped(hyp_profile_t *p, const char *reason, size_t len, uint64_t n);

/* The column a REC or EDGE_REC column qualifies, found by name; SIZE_MAX for
 * other kinds and for a name that has no valid base (see profile.h). */
size_t hyp__metric_base(const hyp_metric_t *metrics, size_t nmetrics, size_t i);

#endif /* HYPROF_CORE_PROFILE_INT_H */
