/* The sampler's frame walker (pyext/walk.h), one source compiled against the
 * internal headers of each supported CPython:
 *   3.11, 3.12: tstate->cframe->current_frame, lasti from frame->prev_instr
 *               (Include/internal/pycore_frame.h);
 *   3.13:       tstate->current_frame, lasti from frame->instr_ptr, the code
 *               in frame->f_executable;
 *   3.12+:      frames owned by the C stack (FRAME_OWNED_BY_CSTACK, the shims
 *               the interpreter pushes on entry) are skipped. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* process_vm_readv */
#endif
#define Py_BUILD_CORE 1
#include "walk.h"

#include "hyprof/internal/util.h"

#include <internal/pycore_code.h>
#include <internal/pycore_frame.h>
#include <internal/pycore_interp.h>
#include <internal/pycore_pystate.h>
#if PY_VERSION_HEX < 0x030C0000
#include <internal/pycore_runtime.h>
#endif

#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030E0000
#error "the frame walker supports CPython 3.11 to 3.13"
#endif
#ifdef Py_GIL_DISABLED
#error "the frame walker needs a CPython with a GIL"
#endif

/* A chain longer than this is corrupt (or a cycle): stop there. */
#define HYP__WALK_HARD_LIMIT 100000

static inline int hyp__read(void *dst, const void *src, size_t n, int remote) {
    struct iovec local, far;

    if (!remote) {
        memcpy(dst, src, n);
        return 0;
    }
    local.iov_base = dst;
    local.iov_len = n;
    far.iov_base = (void *)src;
    far.iov_len = n;
    return process_vm_readv(getpid(), &local, 1, &far, 1, 0) == (ssize_t)n ? 0 : -1;
}

static inline uint32_t hyp__fp(const PyCodeObject *co) {
    return (uint32_t)hyp__mix64((uint64_t)(uintptr_t)co->co_qualname ^
                                ((uint64_t)(uintptr_t)co->co_filename << 7) ^
                                ((uint64_t)(uint32_t)co->co_firstlineno << 40) ^
                                (uint64_t)Py_SIZE(co));
}

uint32_t hyp__walk_fingerprint(PyCodeObject *code) {
    return hyp__fp(code);
}

int hyp__walk_line(PyCodeObject *code, uint32_t lasti) {
    return PyCode_Addr2Line(code, (int)(lasti * sizeof(_Py_CODEUNIT)));
}

Py_ssize_t hyp__walk_code_units(PyCodeObject *code) {
    return Py_SIZE(code);
}

/* A code object the interpreter runs for itself, not the program's: 3.13's
 * shim that runs __init__ after a class call (_Py_InitCleanup, "__init__" in
 * file "__init__"), which it flags so that sys.monitoring skips it too. */
static inline int hyp__interp_shim(const PyCodeObject *code) {
#ifdef CO_NO_MONITORING_EVENTS
    return (code->co_flags & CO_NO_MONITORING_EVENTS) != 0;
#else
    (void)code;
    return 0;
#endif
}

static inline _PyInterpreterFrame *hyp__first_frame(PyThreadState *ts, int remote) {
#if PY_VERSION_HEX >= 0x030D0000
    _PyInterpreterFrame *f = NULL;

    if (hyp__read(&f, &ts->current_frame, sizeof(f), remote) < 0)
        return NULL;
    return f;
#else
    _PyCFrame *cf = NULL;
    _PyInterpreterFrame *f = NULL;

    if (hyp__read(&cf, &ts->cframe, sizeof(cf), remote) < 0 || cf == NULL)
        return NULL;
    if (hyp__read(&f, &cf->current_frame, sizeof(f), remote) < 0)
        return NULL;
    return f;
#endif
}

/* The scope of hyp__walk_set_root() and hyp__walk_set_hidden(): written
 * with the GIL while no signal reads them, or (root) atomically. */
static _PyInterpreterFrame *hyp__root;
static PyCodeObject *hyp__hidden[HYP_WALK_MAX_HIDDEN];
static int hyp__hidden_cut[HYP_WALK_MAX_HIDDEN];
static int hyp__nhidden;

void hyp__walk_set_root(PyFrameObject *root) {
    __atomic_store_n(&hyp__root, root != NULL ? root->f_frame : NULL, __ATOMIC_RELEASE);
}

int hyp__walk_set_hidden(PyCodeObject *const *codes, const int *cut, int n) {
    int i;

    if (n < 0 || n > HYP_WALK_MAX_HIDDEN)
        return -1;
    __atomic_store_n(&hyp__nhidden, 0, __ATOMIC_RELEASE);
    for (i = 0; i < n; i++) {
        hyp__hidden[i] = codes[i];
        hyp__hidden_cut[i] = cut[i];
    }
    __atomic_store_n(&hyp__nhidden, n, __ATOMIC_RELEASE);
    return 0;
}

/* 0 for the program's code, 1 for a frame to leave out, 2 for one to leave
 * out with its callees. */
static inline int hyp__hidden_kind(const PyCodeObject *code, int nhidden) {
    int i;

    for (i = 0; i < nhidden; i++)
        if (hyp__hidden[i] == code)
            return hyp__hidden_cut[i] ? 2 : 1;
    return 0;
}

/* A frame of hyprof's own is left out of the stack, and a cut one drops
 * what it called too (*n back to 0); either way the walk met hyprof (*own).
 * Returns 1 when the frame is such a one. (volatile: the walk of the
 * thread's own stack keeps them across its fault recovery's longjmp.) */
static inline int hyp__skip_hidden(const PyCodeObject *code, int nhidden, volatile int *n,
                                   volatile int *own) {
    int kind = hyp__hidden_kind(code, nhidden);

    if (kind == 0)
        return 0;
    if (kind == 2)
        *n = 0; /* what it called is hyprof's too */
    *own = 1;
    return 1;
}

/* The part of a frame the walk needs: everything before localsplus. */
#define HYP__FRAME_HEAD offsetof(_PyInterpreterFrame, localsplus)
/* The part of a code object the walk needs: everything before the bytecode. */
#define HYP__CODE_HEAD offsetof(PyCodeObject, co_code_adaptive)

static int hyp__walk(PyThreadState *ts, unsigned long native_id, uint64_t *out, int max,
                     int *truncated, int remote) {
    union {
        _PyInterpreterFrame f;
        char bytes[HYP__FRAME_HEAD];
    } fb;
    union {
        PyCodeObject c;
        char bytes[HYP__CODE_HEAD];
    } cb;
    _PyInterpreterFrame *addr, *root;
    const _Py_CODEUNIT *instr;
    PyCodeObject *code;
    Py_ssize_t lasti;
    unsigned long tid = 0;
    int n = 0, steps = 0, nhidden, own = 0;

    *truncated = 0;
    /* Another thread's state may be gone (freed when its thread ended, or at
     * a C thread's PyGILState_Release()) and its memory reused: a state that
     * no longer names the thread is not read further. */
    if (remote && (hyp__read(&tid, &ts->native_thread_id, sizeof(tid), remote) < 0 ||
                   tid != native_id))
        return -1;
    root = __atomic_load_n(&hyp__root, __ATOMIC_ACQUIRE);
    nhidden = __atomic_load_n(&hyp__nhidden, __ATOMIC_ACQUIRE);
    addr = hyp__first_frame(ts, remote);
    for (; addr != NULL && steps < HYP__WALK_HARD_LIMIT; addr = fb.f.previous, steps++) {
        if (addr == root)
            return n != 0 ? n : HYP_WALK_OWN;
        if (hyp__read(&fb, addr, HYP__FRAME_HEAD, remote) < 0)
            return remote ? -1 : n;
#if PY_VERSION_HEX >= 0x030C0000
        if (fb.f.owner == FRAME_OWNED_BY_CSTACK)
            continue;
#endif
#if PY_VERSION_HEX >= 0x030D0000
        code = (PyCodeObject *)fb.f.f_executable;
        instr = fb.f.instr_ptr;
#else
        code = fb.f.f_code;
        instr = fb.f.prev_instr;
#endif
        if (code == NULL || hyp__read(&cb, code, HYP__CODE_HEAD, remote) < 0)
            continue;
        /* 3.13 frames may run something else than code (f_executable). */
        if (Py_TYPE(&cb.c) != &PyCode_Type || hyp__interp_shim(&cb.c))
            continue;
        if (hyp__skip_hidden(code, nhidden, &n, &own))
            continue;
        if (n == max) {
            *truncated = 1;
            break;
        }
        lasti = instr - (const _Py_CODEUNIT *)((const char *)code + HYP__CODE_HEAD);
        if (lasti < 0 || lasti >= Py_SIZE(&cb.c))
            lasti = 0; /* a frame still being set up (before RESUME) */
        out[2 * n] = (uint64_t)(uintptr_t)code;
        out[2 * n + 1] = (uint64_t)(uint32_t)lasti | ((uint64_t)hyp__fp(&cb.c) << 32);
        n++;
    }
    return n == 0 && own ? HYP_WALK_OWN : n;
}

/* ------------------------------------------------------------ fault guard
 *
 * The own-thread walk reads frames in place. A sample can land in the few
 * instructions where the interpreter has already freed what the frame chain
 * still points to: 3.11 and 3.12 pop a frame (and may unmap its data-stack
 * chunk, Python/pystate.c _PyThreadState_PopFrame) before they move
 * current_frame to the caller (Python/ceval.c). A read there faults. The walk
 * therefore runs under a guard: a SIGSEGV/SIGBUS handler that, when the fault
 * happens inside a guarded walk on this thread, jumps back out of it (the
 * sample is dropped and counted); any other fault goes to the handler that
 * was installed before (faulthandler, or the default action), unchanged. */

static __thread sigjmp_buf *hyp__guard_jmp __attribute__((tls_model("initial-exec")));
static struct sigaction hyp__prev_segv, hyp__prev_bus;

static void hyp__on_fault(int signo, siginfo_t *si, void *uc) {
    struct sigaction *prev = signo == SIGBUS ? &hyp__prev_bus : &hyp__prev_segv;
    sigjmp_buf *jmp = hyp__guard_jmp;

    if (jmp != NULL) {
        hyp__guard_jmp = NULL;
        siglongjmp(*jmp, 1);
    }
    /* Not ours: put back the handler that was there before and let the fault
     * happen again, now reaching it exactly as if hyprof were not there
     * (faulthandler's dump, or the default action). A fault sent with
     * kill() is not re-executed: raise it again. */
    sigaction(signo, prev, NULL);
    if (si != NULL && si->si_code <= 0)
        raise(signo);
    (void)uc;
}

int hyp__walk_guard_install(void) {
    static int installed;
    struct sigaction sa;

    /* Once per process: re-installing on top of a handler installed later
     * (faulthandler.enable()) would make that handler and this one hand a
     * real fault back and forth. */
    if (installed)
        return 0;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = hyp__on_fault;
    /* SA_NODEFER: the jump out leaves the signal mask as the walk had it. */
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &hyp__prev_segv) < 0)
        return -1;
    if (sigaction(SIGBUS, &sa, &hyp__prev_bus) < 0) {
        sigaction(SIGSEGV, &hyp__prev_segv, NULL);
        return -1;
    }
    installed = 1;
    return 0;
}

/* The walk of the caller's own frames: the same steps as hyp__walk(), reading
 * the fields in place instead of copying each frame and code header (this
 * runs in the signal handler at every sample), under the fault guard. */
int hyp__walk_own(PyThreadState *ts, uint64_t *out, int max, int *truncated) {
    sigjmp_buf jmp;
    _PyInterpreterFrame *f, *root = __atomic_load_n(&hyp__root, __ATOMIC_ACQUIRE);
    const _Py_CODEUNIT *instr;
    PyCodeObject *code;
    Py_ssize_t lasti;
    int steps = 0, nhidden = __atomic_load_n(&hyp__nhidden, __ATOMIC_ACQUIRE);
    volatile int n = 0, own = 0; /* not needed after a jump, but -Wclobbered cannot tell */

    *truncated = 0;
    if (sigsetjmp(jmp, 0) != 0)
        return -1; /* a read faulted: hyp__on_fault jumped here */
    hyp__guard_jmp = &jmp;
#if PY_VERSION_HEX >= 0x030D0000
    f = ts->current_frame;
#else
    f = ts->cframe != NULL ? ts->cframe->current_frame : NULL;
#endif
    for (; f != NULL && steps < HYP__WALK_HARD_LIMIT; f = f->previous, steps++) {
        /* 3.11 and 3.12 point tstate->cframe at a new C-stack cframe a few
         * instructions before they set its current_frame (ceval.c's
         * prologue): a sample there reads an uninitialised stack word. A
         * misaligned frame or code pointer is such garbage: the sample is
         * dropped (walk-fault) instead of reading through it. */
        if (((uintptr_t)f & (sizeof(void *) - 1)) != 0)
            break;
        if (f == root) {
            hyp__guard_jmp = NULL;
            return n != 0 ? n : HYP_WALK_OWN;
        }
#if PY_VERSION_HEX >= 0x030C0000
        if (f->owner == FRAME_OWNED_BY_CSTACK)
            continue;
#endif
#if PY_VERSION_HEX >= 0x030D0000
        code = (PyCodeObject *)f->f_executable;
        instr = f->instr_ptr;
#else
        code = f->f_code;
        instr = f->prev_instr;
#endif
        if (((uintptr_t)code & (sizeof(void *) - 1)) != 0) {
            f = (_PyInterpreterFrame *)1; /* garbage, as above */
            break;
        }
        if (code == NULL || Py_TYPE(code) != &PyCode_Type || hyp__interp_shim(code))
            continue;
        if (hyp__skip_hidden(code, nhidden, &n, &own))
            continue;
        if (n == max) {
            *truncated = 1;
            break;
        }
        lasti = instr - _PyCode_CODE(code);
        if (lasti < 0 || lasti >= Py_SIZE(code))
            lasti = 0;
        out[2 * n] = (uint64_t)(uintptr_t)code;
        out[2 * n + 1] = (uint64_t)(uint32_t)lasti | ((uint64_t)hyp__fp(code) << 32);
        n++;
    }
    hyp__guard_jmp = NULL;
    if (((uintptr_t)f & (sizeof(void *) - 1)) != 0)
        return -1;
    return n == 0 && own ? HYP_WALK_OWN : n;
}

int hyp__walk_guard_check(void) {
    /* A thread state whose frame chain points into a page that no longer
     * exists: the situation of a sample taken mid-pop, made on purpose. */
    union {
        PyThreadState ts;
        char b[sizeof(PyThreadState)];
    } fake;
#if PY_VERSION_HEX < 0x030D0000
    _PyCFrame cf;
#endif
    uint64_t out[8];
    int truncated = 0, n;
    long page = sysconf(_SC_PAGESIZE);
    void *gone = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);

    if (gone == MAP_FAILED)
        return -2;
    munmap(gone, (size_t)page);
    memset(&fake, 0, sizeof(fake));
#if PY_VERSION_HEX >= 0x030D0000
    fake.ts.current_frame = (_PyInterpreterFrame *)gone;
#else
    memset(&cf, 0, sizeof(cf));
    cf.current_frame = (_PyInterpreterFrame *)gone;
    fake.ts.cframe = &cf;
#endif
    n = hyp__walk_own(&fake.ts, out, 4, &truncated);
    return n;
}

int hyp__walk_remote(PyThreadState *ts, unsigned long native_id, uint64_t *out, int max,
                     int *truncated) {
    return hyp__walk(ts, native_id, out, max, truncated, 1);
}

/* The GIL of the sampled interpreter. Read through the thread state at every
 * tick, it was a read of freed memory (and a crash of the wall sampler once
 * that memory was reused) for a thread that had ended since it was last
 * enumerated. */
static struct _gil_runtime_state *hyp__gil;

void hyp__walk_gil_bind(PyThreadState *ts) {
#if PY_VERSION_HEX >= 0x030C0000
    __atomic_store_n(&hyp__gil, ts->interp->ceval.gil, __ATOMIC_RELEASE);
#else
    (void)ts;
    __atomic_store_n(&hyp__gil, &_PyRuntime.ceval.gil, __ATOMIC_RELEASE);
#endif
}

int hyp__walk_gil_state(PyThreadState *ts, int *holder, int *last, unsigned long *switches) {
    struct _gil_runtime_state *gil = __atomic_load_n(&hyp__gil, __ATOMIC_ACQUIRE);
    int locked;

    if (gil == NULL)
        return -1;
#if PY_VERSION_HEX >= 0x030D0000
    *switches = __atomic_load_n(&gil->switch_number, __ATOMIC_ACQUIRE);
    locked = __atomic_load_n(&gil->locked, __ATOMIC_ACQUIRE);
    *last = __atomic_load_n(&gil->last_holder, __ATOMIC_ACQUIRE) == ts;
#else
    *switches = __atomic_load_n(&gil->switch_number, __ATOMIC_ACQUIRE);
    locked = (int)_Py_atomic_load(&gil->locked);
    *last = (PyThreadState *)_Py_atomic_load(&gil->last_holder) == ts;
#endif
    *holder = locked && *last;
    return 0;
}

int hyp__walk_gil_cond(uintptr_t *cond, size_t *len, int *locked) {
    struct _gil_runtime_state *gil = __atomic_load_n(&hyp__gil, __ATOMIC_ACQUIRE);

    if (gil == NULL)
        return -1;
    *cond = (uintptr_t)&gil->cond;
    *len = sizeof(gil->cond);
#if PY_VERSION_HEX >= 0x030D0000
    *locked = __atomic_load_n(&gil->locked, __ATOMIC_ACQUIRE);
#else
    *locked = (int)_Py_atomic_load(&gil->locked);
#endif
    return 0;
}

size_t hyp__walk_threads(PyInterpreterState *interp, hyp_walk_thread_t *out, size_t max) {
    PyThreadState *ts;
    size_t n = 0;

#if PY_VERSION_HEX >= 0x030D0000
    /* HEAD_LOCK() of 3.13 calls a function libpython does not export; the
     * exported PyMutex_Lock() takes the same mutex (and may let other threads
     * run while it waits, which the caller allows). */
    PyMutex_Lock(&_PyRuntime.interpreters.mutex);
#elif PY_VERSION_HEX >= 0x030C0000
    HEAD_LOCK(&_PyRuntime);
#else
    PyThread_acquire_lock(_PyRuntime.interpreters.mutex, WAIT_LOCK);
#endif
    for (ts = interp->threads.head; ts != NULL; ts = ts->next, n++) {
        if (n < max) {
            out[n].ts = ts;
            out[n].native_id = ts->native_thread_id;
            out[n].ident = ts->thread_id;
        }
    }
#if PY_VERSION_HEX >= 0x030D0000
    PyMutex_Unlock(&_PyRuntime.interpreters.mutex);
#elif PY_VERSION_HEX >= 0x030C0000
    HEAD_UNLOCK(&_PyRuntime);
#else
    PyThread_release_lock(_PyRuntime.interpreters.mutex);
#endif
    return n;
}

int hyp__walk_read_u32(const uint32_t *addr, uint32_t *out) {
    return hyp__read(out, addr, sizeof(*out), 1);
}

int hyp__walk_remote_available(void) {
    uint64_t src = 0x5eed, dst = 0;

    return hyp__read(&dst, &src, sizeof(dst), 1) == 0 && dst == src;
}
