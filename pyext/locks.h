/* pyext/locks.h: internal to the _hyprof extension; not API.
 *
 * Lock contention (docs/locks.md). While a profiler asks for it,
 * threading.Lock and threading.RLock are hyprof's types (_hyprof.Lock,
 * _hyprof.RLock): each wraps a lock of the type it replaces, made by the
 * original constructor, and passes every call on to it, so a lock behaves
 * exactly as before; what they add is
 *   - the place the lock was created, found once when it is made: the first
 *     frame outside the standard library's lock users (threading, queue,
 *     concurrent.futures), named "<lock created at FILE:LINE>";
 *   - for an acquisition that cannot take the lock at once (a non-blocking
 *     try failed), the time it waited; for every acquisition, in the sampled
 *     collector, the time until its release (the hold).
 * The deterministic mode records every contended wait as a call of the
 * creation site's special function under the code that acquires
 * (det_special.c): exact counts and times. The sampled collector records a
 * share of the waits and of the holds, each with probability 1 - exp(-t/I)
 * for a time t and a mean interval I, weighted t/p, so that the weights add
 * up to the total time: long waits are never missed and short ones are
 * sampled without bias, as the allocation sampler samples bytes. A sample's
 * stack is the thread's (the acquirer's for a wait, the releaser's for a
 * hold) with the creation site's frame on top, in its own profile, whose
 * kinds are "lock-wait" and "lock-hold" (ns), merged into the CPU sampler's
 * at its stop (hyp_py_lock_collector()).
 *
 * asyncio.Lock is replaced the same way, by a subclass in Python
 * (hyprof/_asyncio_locks.py) that times waits and holds with the recorders
 * below (_lock_waited(), _lock_held()); a task's wait is recorded in the
 * deterministic mode when the task runs again (hyp__det_special_record()).
 *
 * A lock made before the profiler started is the original type and is not
 * seen; a hyprof lock made while it ran keeps working, unprofiled, after it
 * stopped (the constructors are given back at the last user's stop). */
#ifndef HYPROF_PYEXT_LOCKS_H
#define HYPROF_PYEXT_LOCKS_H

#include "collect.h"
#include "pyhyprof.h"

/* The collector's metric columns, in this order. */
#define HYP_PY_LOCK_NMETRICS 4
extern const hyp_metric_t hyp_py_lock_metrics[HYP_PY_LOCK_NMETRICS];

/* The deterministic mode's use: puts hyprof's lock types in threading for
 * one more user (0, or -1 with an exception), or gives them back after the
 * last. With the GIL. */
int hyp_py_locks_det_retain(void);
void hyp_py_locks_det_release(void);

/* The sampled collector (collect.h), whose kinds are "lock-wait" and
 * "lock-hold" over the four columns above: the CPU sampler declares them in
 * its profile, cuts the run per window and merges it at stop. */
hyp_collector_t *hyp_py_lock_collector(void);

/* Whether key (a code object, or a C function's PyMethodDef) is hyprof's
 * asyncio.Lock's (hyprof/_asyncio_locks.py), or a recorder it calls: the
 * deterministic mode's trees leave those calls out, as omit()'s skip does. */
int hyp_py_locks_own_code(const void *key);

/* Registers the types and the collector's functions on the module. */
int hyp_py_locks_init(PyObject *module);

#endif
