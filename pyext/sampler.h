/* pyext/sampler.h: internal to the _hyprof extension; not API.
 *
 * The sampling mode (docs/sampling.md): the engine in sampler.c, the
 * wall-clock sampler thread in sampler_wall.c, the binding, _hyprof.Sampler,
 * in sampler_py.c; what those three share is in sampler_int.h. The rest of
 * the extension sees only the registration below. */
#ifndef HYPROF_PYEXT_SAMPLER_H
#define HYPROF_PYEXT_SAMPLER_H

#include <Python.h>

/* Adds _hyprof.Sampler, the event listing (perf_events, perf_probe) and the
 * walk scope helpers to module. Returns 0 or -1 with an exception set. */
int hyp_py_sampler_init(PyObject *module);

/* Tells a running session where the calling thread's label word is
 * (labels.h), so that the wall sampler reads the labels of a thread that
 * was registered by another one; labels.c calls it when the thread changes
 * its labels. Needs the GIL; does nothing without a session. */
void hyp_py_sampler_labels_here(void);

#endif
