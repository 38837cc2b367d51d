/* pyext/sampler.h: internal to the _hyprof extension; not API.
 *
 * The sampling mode's engine (sampler.c): per-thread triggers, the signal
 * handler, the per-thread rings and the resolver. The stack capture is
 * exposed here so that other samplers of the same session (an allocation
 * hook) record their samples the same way: same ring, same resolver, same
 * trace. */
#ifndef HYPROF_PYEXT_SAMPLER_H
#define HYPROF_PYEXT_SAMPLER_H

#include <Python.h>
#include <stdint.h>

int hyp_py_sampler_init(PyObject *module);

/* The index of a sample kind of the running session: the trigger's (index
 * 0, named after its event), or one declared by the start option
 * kinds=[(name, unit)] (two OWN columns: "<name>_samples" counting and name
 * summing the weights in unit). Needs the GIL. Returns 0 and sets *kind,
 * HYP_ESTATE when no session runs, or HYP_ENOENT for an unknown name. */
int hyp_py_sampler_kind(const char *name, uint32_t *kind);

/* Captures the calling thread's Python stack as one sample of kind with
 * weight, into the thread's ring; the resolver turns it into a profile sample
 * like the trigger's. Async-signal-safe: callable from a signal handler or an
 * allocator hook (a capture interrupted by a signal makes the signal's sample
 * drop, counted, never both corrupt). Returns 0, or -1 when the sample was
 * not recorded (no session, thread not registered, ring full: counted as
 * dropped). */
int hyp_py_sampler_capture(uint32_t kind, uint64_t weight);

#endif
