/* hyprof/callgrind.h: a profile's calling-context tree written in the
 * callgrind profile format (https://valgrind.org/docs/manual/cl-format.html),
 * which KCachegrind, QCachegrind, callgrind_annotate and gprof2dot read.
 *
 * The writer emits the whole file: the header with the caller's lines
 * (pid, command), the events and their summary; then for each function its
 * own cost per line and one "cfi=/cfn=/calls=" entry per call site with the
 * callee's inclusive cost on that site; then the totals.
 *
 * Positions are lines. A profile whose nodes carry executing lines (the
 * sampling mode) gives a function's own cost per executing line and a call
 * site per pair (caller's line, callee's first line), the cost of an edge
 * split over its sites in proportion to their inclusive values. A profile
 * without lines (the deterministic mode) puts a function's own cost on its
 * first line and each edge on one site.
 *
 * Inclusive costs are the aggregation's (hyprof/aggregate.h): a callee's
 * cumulative value on each edge, recursion counted once. callgrind_annotate
 * gives a function the sum of its incoming call costs as its inclusive cost,
 * so where recursion makes those add up to more than the function's total,
 * the excess comes off the calls that close a cycle back into the function
 * (the callers in its strongly connected component of the call graph first,
 * the costliest first); where they add up to less, the difference goes to
 * its costliest caller. Every function's incoming calls then add up to its
 * exact total. */
#ifndef HYPROF_CALLGRIND_H
#define HYPROF_CALLGRIND_H

#include "common.h"
#include "profile.h"

#ifdef __cplusplus
extern "C" {
#endif

/* No metric: a cost column without a cumulative metric (its calls cost 0
 * beyond the adjustment above), or a profile without a calls column (each
 * node then counts as one call). */
#define HYP_CALLGRIND_NONE ((size_t)-1)

/* What to write. Output functions are numbered 0 .. nfuncs - 1; number
 * nfuncs is the program, the caller of the root's children. */
typedef struct {
    size_t nfuncs;
    /* hyp_profile_func_count() entries: each profile function's output
     * function (several may share one: their costs add up). */
    const uint32_t *index;
    /* nfuncs + 1 each, the program's last. Names and files are written as
     * given (a file "" as "<built-in>") and must hold no newline. Functions
     * are written in order of (file, first line, number), the program last. */
    const char *const *names;
    const char *const *files;
    const uint32_t *first;
    /* The cost columns, in the order of the header's "events:": each
     * column's metric of own values, and the metric of its cumulative
     * values on an edge (the same metric, a measured "_cum" metric beside
     * an "_own" one, or HYP_CALLGRIND_NONE). */
    size_t ncosts;
    const char *const *events; /* each column's event name: letters, digits, '_' */
    const size_t *cost;
    const size_t *cum;
    size_t calls; /* the calls metric, or HYP_CALLGRIND_NONE */
    /* Header lines written after "creator:" ("pid: 42\ncmd: app.py\n"),
     * each ending in a newline; NULL or "" for none. */
    const char *header;
} hyp_callgrind_spec_t;

/* Receives the output in pieces; returns 0, or a negative code that stops
 * the writer, which then returns it. */
typedef int (*hyp_callgrind_write_func)(void *ctx, const char *data, size_t len);

/* Writes the callgrind file of every thread's profile. Time O(n log n) in
 * the nodes and edges. Returns 0, HYP_EINVAL (a NULL or inconsistent spec: a
 * metric or function out of range, no cost column, a newline in a name or
 * an event, a header line without its newline), HYP_ENOMEM, or what write
 * returned. */
HYP_EXTERN int hyp_callgrind_write(const hyp_profile_t *p, const hyp_callgrind_spec_t *spec,
                                   hyp_callgrind_write_func write, void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* HYPROF_CALLGRIND_H */
