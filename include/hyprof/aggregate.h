/* hyprof/aggregate.h: flat per-function statistics and caller/callee edges,
 * derived from a profile's calling-context tree. */
#ifndef HYPROF_AGGREGATE_H
#define HYPROF_AGGREGATE_H

#include "common.h"
#include "profile.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per-function totals. For each metric column m:
 *   own[m]: the sum over the function's nodes (OWN and CALLS columns), or over
 *           its nodes' OWN part where the column is CUM (see FORMAT.md);
 *   cum[m]: OWN columns: the subtree sums of the function's outermost nodes
 *           (no ancestor of the same function); CUM columns: those nodes'
 *           values; CALLS columns: the primitive calls.
 * Arrays are metric_count() long. */
typedef struct {
    hyp_id_t func;
    uint64_t *own;
    uint64_t *cum;
} hyp_flat_entry_t;

typedef struct {
    hyp_id_t caller; /* function id; HYP_NO_ID for calls from the root */
    hyp_id_t callee;
    uint64_t *own;   /* the callee's own values on those call paths */
    uint64_t *cum;   /* its cumulative values, recursion counted once */
} hyp_edge_t;

typedef struct hyp_flat_s hyp_flat_t;

/* Computes flat statistics for one thread or all (HYP_NO_ID). Linear in the
 * number of nodes. Returns 0, HYP_ERANGE or HYP_ENOMEM; *out is the caller's,
 * freed with hyp_flat_free(). */
HYP_EXTERN int hyp_flat_compute(const hyp_profile_t *p, hyp_id_t thread, hyp_flat_t **out);

/* Flags of hyp_flat_compute_ex(). */
enum {
    /* Per-function totals only: no edges (hyp_flat_edge_count() is 0), in
     * less time and without the memory the edges take (some 100 bytes per
     * distinct caller/callee pair). */
    HYP_FLAT_NO_EDGES = 1u << 0
};

/* hyp_flat_compute() with flags (HYP_FLAT_*; 0: as hyp_flat_compute()).
 * Returns HYP_EINVAL for an unknown flag. */
HYP_EXTERN int hyp_flat_compute_ex(const hyp_profile_t *p, hyp_id_t thread, unsigned flags,
                                   hyp_flat_t **out);
HYP_EXTERN size_t hyp_flat_count(const hyp_flat_t *f);
HYP_EXTERN const hyp_flat_entry_t *hyp_flat_at(const hyp_flat_t *f, size_t i);
HYP_EXTERN size_t hyp_flat_edge_count(const hyp_flat_t *f);
HYP_EXTERN const hyp_edge_t *hyp_flat_edge_at(const hyp_flat_t *f, size_t i);
HYP_EXTERN void hyp_flat_free(hyp_flat_t *f);

/* Walks of a call tree held as a parent array, as reports hold it:
 * parent[0] < 0 for the root and 0 <= parent[i] < i for every other node
 * (every producer numbers nodes so). Both refuse another shape, or more
 * than UINT32_MAX nodes, with HYP_EINVAL. */

/* Depth first from the root, each node's children in id order: order[k] is
 * the k-th node entered (order[0] is the root) and depth[k] its depth (the
 * root's is 0); size[i] counts node i's subtree, i included, and pos[i] is
 * i's place in order, so that node i's subtree is order[pos[i] ..
 * pos[i] + size[i]). Arrays are n long; any but order may be NULL. Linear,
 * with no stack: a node's place is its parent's, plus one, plus the sizes of
 * its earlier siblings. Returns 0, HYP_EINVAL or HYP_ENOMEM. */
HYP_EXTERN int hyp_tree_preorder(const int32_t *parent, size_t n, uint32_t *order,
                                 uint32_t *depth, uint32_t *size, uint32_t *pos);
/* Each node's children, in id order: node i's are kids[first[i] ..
 * first[i + 1]). first has n + 1 entries and kids n - 1. Returns 0 or
 * HYP_EINVAL. */
HYP_EXTERN int hyp_tree_children(const int32_t *parent, size_t n, uint32_t *first,
                                 uint32_t *kids);

#ifdef __cplusplus
}
#endif
#endif /* HYPROF_AGGREGATE_H */
