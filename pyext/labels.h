/* pyext/labels.h: internal to the _hyprof extension; not API.
 *
 * The labels a thread carries while it runs (hyprof.label(), the Django
 * middleware's view and method): a process-wide table of label sets, each
 * interned once under the GIL and never removed, and each thread's current
 * set as an id in a thread-local word. The signal handler cannot run Python,
 * so it reads that word (hyp__labels_now()) and stores the id with its
 * sample; the resolver turns the id into the profile's own label set
 * (hyp_py_labels_map()) when it adds the sample.
 *
 * Ids: 0 is the empty set. The table holds at most HYP_PY_LABELS_MAX sets;
 * beyond that a new set is not made, the thread carries none, and the
 * refusals are counted (labels are for a few values, such as views and
 * tenants, not for one value per request). */
#ifndef HYPROF_PYEXT_LABELS_H
#define HYPROF_PYEXT_LABELS_H

#include "pyhyprof.h"

#include <stdint.h>

#define HYP_PY_LABELS_MAX 65536

/* The calling thread's label set id. Async-signal-safe (an initial-exec
 * thread-local word, written only by its own thread). */
extern __thread uint32_t hyp_py_labels_tls __attribute__((tls_model("initial-exec")));

static inline uint32_t hyp__labels_now(void) {
    return __atomic_load_n(&hyp_py_labels_tls, __ATOMIC_RELAXED);
}

/* The GIL's state a sample found its thread in (sampler.c): none known, or
 * the "gil" label's value. */
enum { HYP_GIL_UNKNOWN = 0, HYP_GIL_HELD = 1, HYP_GIL_RELEASED = 2, HYP_GIL_WAITING = 3 };
#define HYP_GIL_STATES 4
/* "held", "released", "waiting" ("" for HYP_GIL_UNKNOWN). */
extern const char *const hyp_py_gil_names[HYP_GIL_STATES];

/* Maps a process-wide label set id to p's label set, interning its strings
 * and labels in p, with the label gil=<state> added unless gil is
 * HYP_GIL_UNKNOWN; cache (*cache, *ncache entries, HYP_NO_ID where unknown)
 * remembers what it mapped for p and grows as needed; the caller frees it
 * with hyp__free() and empties it when it moves to another profile. Needs
 * the GIL. Returns 0 and sets *out (HYP_NO_LABELS for an unknown id and no
 * gil), or an HYP_E* code. */
int hyp_py_labels_map(hyp_profile_t *p, uint32_t id, unsigned gil, hyp_id_t **cache,
                      size_t *ncache, hyp_id_t *out);

int hyp_py_labels_init(PyObject *module);

#endif
