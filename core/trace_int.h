/* core/trace_int.h: internal to the hyprof core; not installed, not API.
 *
 * Constants of the trace format v1 shared by the writer and the reader; the
 * format is specified in docs/FORMAT.md. */
#ifndef HYPROF_CORE_TRACE_INT_H
#define HYPROF_CORE_TRACE_INT_H

#include "hyprof/trace.h"
#include "profile_int.h"

#define HYP__MAGIC "HYPROF"
#define HYP__MAGIC_LEN 6
#define HYP__FORMAT_NAME HYP_FORMAT_NAME

/* Record type codes: the first element of every record array. */
enum {
    HYP__REC_STRINGS = 1, /* [1, first_id, [str, ...]] */
    HYP__REC_FUNCS = 2,   /* [2, first_id, [name, file, lineno, kind, ...]] */
    HYP__REC_THREADS = 3, /* [3, first_id, [os_tid, ident, name, ...]] */
    HYP__REC_NODES = 4,   /* [4, first_id, [parent, func, line, ...]] */
    HYP__REC_METRICS = 5, /* [5, thread, [node, v0 .. v(m-1), node, ...], labels?] */
    HYP__REC_SAMPLES = 6, /* [6, thread, kind, base_time, [node, dt, weight, ...], labels?] */
    HYP__REC_DROPPED = 7, /* [7, {reason: count, ...}] (counts since the last one) */
    HYP__REC_END = 8,     /* [8, {"samples":, "nodes":, "truncated_nodes":, "dropped":, "meta":}] */
    HYP__REC_LABELS = 9   /* [9, first_id, [n, key, value, ..., n, ...]] (1.2) */
};

/* Batch sizes of the writer: a record stays well below the reader's default
 * record limit, and a cut file loses at most one batch. */
#define HYP__BATCH_ENTRIES 8192
#define HYP__BATCH_BYTES (1u << 20)
#define HYP__BATCH_SAMPLES 65536

#endif /* HYPROF_CORE_TRACE_INT_H */
