/* pyext/alloc.h: internal to the _hyprof extension module; not API.
 *
 * The allocation collector of the sampling mode (pyext/alloc.c): a hook on
 * CPython's PYMEM_DOMAIN_MEM and PYMEM_DOMAIN_OBJ allocators that samples
 * allocations by bytes (hyprof/internal/heap.h), records each sampled block's Python
 * stack, size and thread, and keeps the sampled blocks still alive.
 *
 * The collector fills its own profile, whose metric columns are
 * HYP_PY_ALLOC_METRICS: sample kind "alloc" (alloc_samples, alloc_bytes) for
 * every sampled allocation, and sample kind "live" (live_samples, live_bytes)
 * for the sampled blocks still allocated when the collector stops or a
 * snapshot is taken. The profile's pending samples are the run's samples:
 * alloc_trace() hands them to a Trace with a copy of the profile
 * (hyp_py_trace_from_profile()), and hyp_py_alloc_merge() adds the profile,
 * samples included, into another (the CPU sampler's) with
 * hyp_profile_merge_ex(), so one trace holds both. */
#ifndef HYPROF_PYEXT_ALLOC_H
#define HYPROF_PYEXT_ALLOC_H

#include "pyhyprof.h"

/* The collector's metric columns, in this order. */
#define HYP_PY_ALLOC_NMETRICS 4
extern const hyp_metric_t hyp_py_alloc_metrics[HYP_PY_ALLOC_NMETRICS];

/* Declares the "alloc" and "live" sample kinds in p, whose metric columns
 * must include the four columns above (looked up by name); a kind already
 * declared is kept. The CPU sampler calls it before its writer begins, so the
 * trace header lists the kinds. Returns 0, HYP_EINVAL or HYP_ENOMEM. */
int hyp_py_alloc_declare(hyp_profile_t *p);

/* Adds the collector's last run into dst, whose metric columns must include
 * the four columns above (looked up by name): declares the "alloc" and
 * "live" sample kinds in dst, then merges the run's profile into it with its
 * samples (HYP_MERGE_SAMPLES), its dropped counts included. The samples that
 * memory ran out for are counted in dst as dropped, "alloc: out of memory".
 * Needs the GIL. Returns 0, HYP_ESTATE (no data), HYP_EINVAL (dst lacks the
 * columns, or declares the kinds on other ones) or HYP_ENOMEM. */
int hyp_py_alloc_merge(hyp_profile_t *dst);

/* Registers the collector's functions on the module. */
int hyp_py_alloc_init(PyObject *module);

#endif
