/* pyext/walk.h: internal to the _hyprof extension; not API.
 *
 * The frame walker of the sampler. walk.c is compiled against the internal
 * headers of the very CPython the extension is built for (Py_BUILD_CORE and
 * internal/pycore_frame.h), never against copied structures.
 *
 * A walk stores, leaf first, two words per Python frame: the code object's
 * address and (instruction offset in code units | fingerprint << 32). The
 * fingerprint is a hash of the code object's identity (first line, qualified
 * name and file name objects, size) that the resolver checks again before it
 * trusts the address (see codemap.h). */
#ifndef HYPROF_PYEXT_WALK_H
#define HYPROF_PYEXT_WALK_H

#include <Python.h>
#include <stdint.h>

#define HYP_WALK_WORDS 2        /* ring words per frame */
#define HYP_WALK_MAX_DEPTH 512  /* deepest stack a sample keeps */

/* Walks the Python frames of ts, which must be the calling thread's own
 * thread state (the thread is stopped in a signal handler or an allocator
 * hook, so its frame chain cannot change under the walk). Async-signal-safe:
 * reads memory only. Stores at most max frames in out (2 words each) and
 * returns their number; *truncated is set when more frames were left out.
 * Returns -1 when a read faulted (the interpreter was between freeing a frame
 * and unlinking it): with hyp__walk_guard_install() done, that fault is
 * caught and the walk abandoned instead of crashing; HYP_WALK_OWN for a stack
 * of hyprof's own code. */
int hyp__walk_own(PyThreadState *ts, uint64_t *out, int max, int *truncated);

/* What a walk returns for a stack that is hyprof's own code (see
 * hyp__walk_set_scope()): the sample is dropped. */
#define HYP_WALK_OWN (-2)

/* The program's part of a stack. root is the frame (a PyFrameObject, or
 * NULL for none) that called the profiled program: a walk stops there, so
 * that the frames that ran the program (hyprof run, runpy, a decorator's
 * wrapper) are not recorded. codes are up to HYP_WALK_MAX_HIDDEN code
 * objects of hyprof's own: a frame of one is left out, and, when its cut
 * flag is set (a start or stop path), so are the frames it called, which
 * leaves the sample to the program's frame that called into hyprof. A stack
 * left with no frame returns HYP_WALK_OWN. Both hold for the walks of the
 * sampler and of the allocation collector. Set with the GIL, before the
 * signals that read them are armed; root must be reset (NULL) before its
 * frame returns. */
#define HYP_WALK_MAX_HIDDEN 64
void hyp__walk_set_root(PyFrameObject *root);
int hyp__walk_set_hidden(PyCodeObject *const *codes, const int *cut, int n);

/* Installs the fault guard of hyp__walk_own() on SIGSEGV and SIGBUS, once per
 * process, on top of the handlers installed before: any fault outside a
 * guarded walk puts the previous handler back and reaches it. Returns 0 or
 * -1 (errno set). */
int hyp__walk_guard_install(void);

/* Walks a made-up thread state whose frame chain points to an unmapped page,
 * under the guard: returns -1 when the guard caught the fault (a test). */
int hyp__walk_guard_check(void);

/* The same walk for a thread that is not the caller, reading every word
 * through process_vm_readv(), so a frame chain that changes under the walk
 * gives garbage at worst, never a fault. ts may have been freed since it was
 * registered (a thread that ended, a PyGILState_Release() of a C thread):
 * its memory is not trusted unless it still names thread native_id. Returns
 * the number of frames, -1 when a read failed or ts is no longer that
 * thread's, or HYP_WALK_OWN. The caller decides whether the snapshot is consistent
 * (hyp__walk_gil_state() before and after). */
int hyp__walk_remote(PyThreadState *ts, unsigned long native_id, uint64_t *out, int max,
                     int *truncated);

/* Reads the 32-bit word at addr, which may be another thread's and may be
 * gone, through process_vm_readv(): 0 and *out, or -1 when it cannot be
 * read. For the wall sampler. */
int hyp__walk_read_u32(const uint32_t *addr, uint32_t *out);

/* Remembers the GIL of ts's interpreter (with the GIL, at the start of a
 * session), so that hyp__walk_gil_state() never reads a thread state, which
 * may have been freed by the time it runs. */
void hyp__walk_gil_bind(PyThreadState *ts);

/* Reads the GIL bound by hyp__walk_gil_bind() without taking it, and without
 * reading ts (only its address is compared): *holder is 1 when the GIL is
 * held by ts; *last is 1 when ts was the last to take it (held or not); and
 * *switches is the GIL's switch counter, which moves each time the GIL goes to
 * another thread than its last holder. A thread that does not hold the GIL
 * cannot change its frames. If the counter has not moved and ts was not the
 * last holder, ts has not taken the GIL since; if ts was the last holder, it
 * may have taken it back without moving the counter. Returns 0, or -1 when it
 * cannot be read (none bound). */
int hyp__walk_gil_state(PyThreadState *ts, int *holder, int *last, unsigned long *switches);

/* The bound GIL's condition variable (where take_gil() waits: the futex a
 * thread waiting for the GIL sleeps on lies inside it), its size, and
 * whether the GIL is held now. Returns 0, or -1 when none is bound. */
int hyp__walk_gil_cond(uintptr_t *cond, size_t *len, int *locked);

/* A thread state of the interpreter, as hyp__walk_threads() lists it. */
typedef struct {
    PyThreadState *ts;
    unsigned long native_id; /* kernel thread id */
    unsigned long ident;     /* threading.get_ident() */
} hyp_walk_thread_t;

/* Lists the thread states of interp under the runtime's HEAD lock (thread
 * states are created without the GIL by PyGILState_Ensure()). Stores at most
 * max and returns how many there are. Needs the GIL. */
size_t hyp__walk_threads(PyInterpreterState *interp, hyp_walk_thread_t *out, size_t max);

/* 1 when reads through process_vm_readv() work in this process (a seccomp
 * filter may refuse them). */
int hyp__walk_remote_available(void);

/* The fingerprint hyp__walk_own() stores for code, computed the same way. */
uint32_t hyp__walk_fingerprint(PyCodeObject *code);

/* The source line of instruction offset lasti (in code units) of code, or
 * -1. Needs the GIL. */
int hyp__walk_line(PyCodeObject *code, uint32_t lasti);

/* The code object's size in code units. */
Py_ssize_t hyp__walk_code_units(PyCodeObject *code);

#endif
