/* pyext/codemap.h: internal to the _hyprof extension; not API.
 *
 * Turns the code-object addresses the sampler records into function ids and
 * line numbers of a profile, with the GIL, and guards against code objects
 * that die between a sample and its resolution and whose address is reused:
 *   3.12+: a code watcher (PyCode_AddWatcher) hears of every code object's
 *          destruction before its memory is freed;
 *   3.11:  the code type's deallocator is wrapped and hears the same.
 * On a death the sampler's drain callback runs first (the code object is
 * still whole, so samples that name it resolve correctly), then the code's
 * cache entry goes. An address is still checked before its first resolution
 * (its header read through process_vm_readv(), the fingerprint the sample
 * recorded), so that a record the death could not reach is dropped and
 * counted, never named wrongly. */
#ifndef HYPROF_PYEXT_CODEMAP_H
#define HYPROF_PYEXT_CODEMAP_H

#include <Python.h>

#include "hyprof.h"

/* Called with the GIL when a code object the map may hold dies, before it is
 * freed. */
typedef void (*hyp_code_death_fn)(PyCodeObject *code);

/* Starts watching code deaths for a new profile (an empty cache). Returns 0,
 * or -1 with a Python exception set (no code watcher slot left). */
int hyp__codemap_start(hyp_profile_t *profile, hyp_code_death_fn on_death);
/* Stops watching and frees the cache. Idempotent. */
void hyp__codemap_stop(void);
/* Resolves into another profile from now on (the sampler's next window):
 * every cached function id is made again there at its next resolution; the
 * line tables and the death watch are kept. */
void hyp__codemap_rebind(hyp_profile_t *profile);
/* Forgets everything without calling Python (a forked child). */
void hyp__codemap_abandon(void);

/* Resolves one recorded frame (code address and its info word, walk.h).
 * Returns 0 and sets *func and *line; 1 when the code object cannot be
 * trusted (it died unseen, or the address now holds something else); or a
 * negative HYP_E* code (HYP_ENOMEM). Needs the GIL; never raises. */
int hyp__codemap_resolve(uint64_t code, uint64_t info, hyp_id_t *func, uint32_t *line);

/* Cache statistics: entries held, and code deaths seen. */
void hyp__codemap_stats(size_t *entries, uint64_t *deaths);

#endif
