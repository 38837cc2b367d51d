/* pyext/exceptions.h: internal to the _hyprof extension; not API.
 *
 * Exceptions raised (docs/exceptions.md), through sys.monitoring's RAISE
 * event (CPython 3.12 and later), in a tool id of hyprof's own, held while a
 * profiler asks for it. CPython reports RAISE in every frame an exception
 * passes through; an exception is counted once per raise, in the frame that
 * raised it: a report is a raise unless it names the exception of the
 * thread's previous report with that report's traceback under a caller's
 * frame. Each one is
 * "<raise TYPE>" (TYPE qualified by its module unless builtin):
 *   - in the deterministic mode, a call of that special function under the
 *     code that raised (det_special.c): exact counts per call path;
 *   - in the sampling mode, with probability 1/N (exception_interval N), a
 *     sample of kind "exceptions" of weight N, the raiser's stack under that
 *     frame, in a collector (collect.h) merged into the sampler's profile at
 *     its stop.
 * On 3.11 there is no such event: starting either asks for 3.12. */
#ifndef HYPROF_PYEXT_EXCEPTIONS_H
#define HYPROF_PYEXT_EXCEPTIONS_H

#include "collect.h"
#include "pyhyprof.h"

#define HYP_PY_EXC_NMETRICS 2
extern const hyp_metric_t hyp_py_exc_metrics[HYP_PY_EXC_NMETRICS];

/* The deterministic mode's use, counted (0, or -1 with an exception). */
int hyp_py_exc_det_retain(void);
void hyp_py_exc_det_release(void);

/* The sampled collector, as hyp_py_lock_collector(), for kind "exceptions". */
hyp_collector_t *hyp_py_exc_collector(void);

int hyp_py_exc_init(PyObject *module);

#endif
