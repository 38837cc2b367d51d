/* pyext/pyhyprof.h: internal to the _hyprof extension module; not API.
 * Each part of the module registers its types and functions through one
 * init function called from module.c. */
#ifndef HYPROF_PYEXT_H
#define HYPROF_PYEXT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "hyprof.h"

/* Module state shared by the parts. */
typedef struct {
    PyObject *trace_error; /* hyprof.TraceError, set by the Python package */
} hyp_py_state_t;

/* The capsule name of a C profile a loaded Trace holds. */
#define HYP_PY_CAPSULE "hyprof._hyprof.profile"

/* pytrace_read.c: read_trace() and a loaded trace's aggregations. */
int hyp_py_trace_read_init(PyObject *module);
/* pytrace_write.c: write_trace(), save_profile(), merge_profiles(), copy_trace(). */
int hyp_py_trace_write_init(PyObject *module);
/* Writes p to the file path names (str, bytes or os.PathLike) with
 * hyp_trace_save(), the GIL released. Returns None, or NULL with OSError
 * (errno's subclass and the file name where the system said why) or
 * MemoryError set. */
PyObject *hyp_py_save(const hyp_profile_t *p, PyObject *path);
/* A capsule that owns p (freed with it, or at once on failure), as a Trace
 * holds its profile; merge_profiles() takes a list of them. */
PyObject *hyp_py_profile_capsule(hyp_profile_t *p);
/* The C profile in a loaded Trace's capsule, or NULL with an exception set. */
hyp_profile_t *hyp_py_capsule_profile(PyObject *cap);
/* det.c: hyprof._hyprof.DetProfiler and ProfilerError (the deterministic mode). */
int hyp_py_det_init(PyObject *module);
/* Returns a new hyprof.Trace holding a copy of the profile (its pending
 * samples included, the profile itself unchanged), or NULL with an exception
 * set. Needs the GIL. */
PyObject *hyp_py_trace_from_profile(hyp_profile_t *p);
/* The same for a profile that nothing else holds: the Trace takes it over
 * (freed on failure too), with no copy. */
PyObject *hyp_py_trace_take_profile(hyp_profile_t *p);
/* Sets the header entries every producer writes about the run: "python"
 * (the version, as sys.version.split()[0]), "pid", "start_time" (Unix
 * seconds) and "argv" (a list of str: the program's when it started, or
 * NULL for sys.argv now). Returns 0 or an HYP_E* code. Needs the GIL. */
int hyp_py_set_run_meta(hyp_profile_t *p, double start_time, PyObject *argv);
/* Interns a str in p's string table exactly: as UTF-8, with the surrogates
 * of an undecodable file name written back as the bytes they stand for
 * (surrogateescape), which readers decode the same way. fallback (may be
 * NULL for "") stands for s when it is not a str. Returns 0 or an HYP_E*
 * code; no Python exception is left set. */
int hyp_py_intern_str(hyp_profile_t *p, PyObject *s, const char *fallback, hyp_id_t *id);
/* Sets header entries from a dict of str keys to None, bool, int, float,
 * str or a list of str (strings kept exactly, as hyp_py_intern_str does;
 * the format's own keys are ignored). Returns 0, or -1 with an exception. */
int hyp_py_set_meta_dict(hyp_profile_t *p, PyObject *dict);

#endif
