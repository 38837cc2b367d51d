/* pyext/pyhyprof.h: internal to the _hyprof extension module; not API.
 * Each part of the module registers its types and functions through one
 * init function called from module.c.
 *
 * Names in the binding: what a part offers the other parts is hyp_py_*
 * (declared here or in the part's header: alloc.h, labels.h, sampler.h);
 * what the files of one part share is hyp__<part>_* (det.h, det_tree.h,
 * sampler_int.h, codemap.h, walk.h); a static function is hyp__* (a
 * Python type's methods hyp__<type>_py_*, the module's hyp__module_*). */
#ifndef HYPROF_PYEXT_H
#define HYPROF_PYEXT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "hyprof.h"

/* The module's state: the exception classes of hyprof.errors, which
 * module.c imports when the module loads. Every part raises them from here;
 * none defines an exception of its own. */
typedef struct {
    PyObject *profiler_error; /* hyprof.ProfilerError: cannot start, bad option */
    PyObject *event_error;    /* hyprof.EventError: an event this machine lacks */
    PyObject *trace_error;    /* hyprof.TraceError: a file that is not a trace */
} hyp_py_state_t;

/* The classes to raise, from the state of the loaded module (the engines
 * are process-wide, so there is one); once the interpreter has cleared the
 * module, RuntimeError (ValueError for a trace) stands in. Borrowed. */
PyObject *hyp_py_profiler_error(void);
PyObject *hyp_py_event_error(void);
PyObject *hyp_py_trace_error(void);

/* Saving and restoring the pending exception around code that must run with
 * none set (a hook that calls back into Python, a cleanup on an error path):
 * the one place that knows each version's way. HYP_PY_EXC_SAVE declares the
 * variable it names. */
#if PY_VERSION_HEX >= 0x030C0000
#define HYP_PY_EXC_SAVE(saved) PyObject *saved = PyErr_GetRaisedException()
#define HYP_PY_EXC_RESTORE(saved) PyErr_SetRaisedException(saved)
#else
#define HYP_PY_EXC_SAVE(saved)                                                                     \
    PyObject *saved##_type, *saved##_value, *saved##_tb;                                           \
    PyErr_Fetch(&saved##_type, &saved##_value, &saved##_tb)
#define HYP_PY_EXC_RESTORE(saved) PyErr_Restore(saved##_type, saved##_value, saved##_tb)
#endif

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
/* det.c: hyprof._hyprof.DetProfiler (the deterministic mode). */
int hyp_py_det_init(PyObject *module);
/* Returns a new hyprof.Trace holding a copy of the profile made in memory
 * (hyp_profile_copy(); its pending samples are the Trace's samples, the
 * profile itself unchanged), or NULL with an exception set. Needs the GIL. */
PyObject *hyp_py_trace_from_profile(const hyp_profile_t *p);
/* The same for a profile that nothing else holds: the Trace takes it over
 * (freed on failure too), with no copy. */
PyObject *hyp_py_trace_take_profile(hyp_profile_t *p);
/* Sets the header entries every producer writes about the run: "python"
 * (the version, as sys.version.split()[0]), "pid", "start_time" (Unix
 * seconds) and "argv" (a list of str: the program's when it started, or
 * NULL for sys.argv now). Returns 0 or an HYP_E* code. Needs the GIL. */
int hyp_py_set_run_meta(hyp_profile_t *p, double start_time, PyObject *argv);
/* What a name or file name that is not a str (or NULL) is written as, by
 * every producer. */
#define HYP_PY_NO_NAME "<unknown>"
/* Interns a str in p's string table exactly: as UTF-8, with the surrogates
 * of an undecodable file name written back as the bytes they stand for
 * (surrogateescape), which readers decode the same way; anything else as
 * HYP_PY_NO_NAME. Returns 0 or an HYP_E* code; no Python exception is left
 * set. */
int hyp_py_intern_str(hyp_profile_t *p, PyObject *s, hyp_id_t *id);
/* Interns the function of a Python code object in p: its qualified name,
 * file name and first line, kind HYP_FUNC_PYTHON. Every producer names a
 * code object through it (the sampler's resolver in codemap.c, the
 * allocation collector, the deterministic export), so that one code object
 * is one function to all of them. Returns 0 or an HYP_E* code; no Python
 * exception is left set. Needs the GIL. */
int hyp_py_code_func(hyp_profile_t *p, PyCodeObject *code, hyp_id_t *id);
/* What threading knows of a thread, read from its dicts without running any
 * Python code. The producers name threads where Python code must not run:
 * a resolver in the middle of a batch, a profile hook, a signal's deferred
 * work. Python code there lets other threads take the GIL and pending calls
 * fire, which could append to the batch being resolved or resolve it twice.
 * A Thread subclass that overrides the name property is named by what
 * Thread.__init__ and the name setter store (Thread._name).
 * hyp_py_thread_object(): threading._active[ident], borrowed. active is
 * that dict, or NULL to find it through sys.modules (threading is never
 * imported from here). Returns NULL if threading does not know the thread
 * (yet).
 * hyp_py_thread_name(): thread's name as a new str reference, or NULL.
 * Neither leaves an exception set. Both need the GIL. */
PyObject *hyp_py_thread_object(PyObject *active, unsigned long ident);
PyObject *hyp_py_thread_name(PyObject *thread);
/* Sets header entries from a dict of str keys to None, bool, int, float,
 * str or a list of str (strings kept exactly, as hyp_py_intern_str does;
 * the format's own keys are ignored). Returns 0, or -1 with an exception. */
int hyp_py_set_meta_dict(hyp_profile_t *p, PyObject *dict);
/* The sample kind name of p, declared on its metric columns count and
 * weight (looked up by name; the kind's unit is the weight column's) unless
 * p has it already: its number in *kind. For a collector whose profile is
 * merged into the CPU sampler's. Returns 0, HYP_EINVAL (no such column) or
 * HYP_ENOMEM. */
int hyp_py_kind_declare(hyp_profile_t *p, const char *name, const char *count,
                        const char *weight, uint32_t *kind);
/* Merges a collector's profile src into dst with its samples
 * (HYP_MERGE_SAMPLES); should memory run out, the samples not carried are
 * counted in dst as dropped for nomem_reason. Returns 0 or an HYP_E* code. */
int hyp_py_merge_samples(hyp_profile_t *dst, const hyp_profile_t *src, const char *nomem_reason);

#endif
