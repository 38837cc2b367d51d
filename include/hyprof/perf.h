/* hyprof/perf.h: sampling triggers. Hardware and software perf events named
 * through libpfm4, opened one per thread with their overflow delivered as a
 * signal to that thread; per-thread POSIX CPU-time timers; and the process
 * interval timer (setitimer), the last resort. Linux only.
 *
 * Functions that take a `msg` buffer write one sentence there on failure,
 * naming the event and the cause, and what would work instead. */
#ifndef HYPROF_PERF_H
#define HYPROF_PERF_H

#include "common.h"

#include <linux/perf_event.h>
#include <signal.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An event encoded by libpfm4, ready for perf_event_open(). */
typedef struct {
    size_t size;                  /* sizeof(hyp_perf_event_t), set by the caller */
    struct perf_event_attr attr;  /* type and config as libpfm4 encoded them */
    char name[256];               /* libpfm4's fully qualified name */
    char pmu[64];                 /* the PMU that knows it ("perf", "skl", ...) */
    int is_hardware;              /* needs a hardware PMU (PERF_TYPE_HARDWARE, _RAW, caches) */
    int is_clock;                 /* cpu-clock or task-clock: counts nanoseconds */
} hyp_perf_event_t;

/* Initialises libpfm4 once (thread-safe). Returns 0 or HYP_ENOTSUP with the
 * reason in msg. Every other hyp_perf_ function calls it. */
HYP_EXTERN int hyp_perf_init(char *msg, size_t msglen);

/* Encodes an event name ("cycles", "cpu-clock", "INST_RETIRED.ANY",
 * "perf::PERF_COUNT_SW_TASK_CLOCK") with pfm_get_os_event_encoding(...,
 * PFM_OS_PERF_EVENT_EXT, ...), counting user-level only. Returns 0, or
 * HYP_ENOENT for a name no PMU of this machine knows, HYP_EINVAL for a bad
 * modifier, with the reason in msg. */
HYP_EXTERN int hyp_perf_encode(const char *name, hyp_perf_event_t *ev, char *msg, size_t msglen);

/* How an opened event samples. */
typedef struct {
    size_t size;        /* sizeof(hyp_perf_config_t), set by the caller */
    uint64_t period;    /* events between two overflows; or, when freq is set, */
    int freq;           /*   the rate in Hz the kernel keeps by adjusting the period */
    int signo;          /* signal sent to the thread at each overflow; 0: counting only */
} hyp_perf_config_t;

/* Opens ev on thread tid (0: the calling thread), enabled, counting user
 * space only. With cfg->signo, each overflow sends that signal to that very
 * thread (O_ASYNC, F_SETSIG, F_SETOWN_EX with F_OWNER_TID), with si_fd set to
 * the descriptor. Returns 0 and *fd (the caller closes it), or HYP_ENOENT (no
 * PMU, or the kernel does not know the event), HYP_EPERM (perf_event_paranoid,
 * capabilities, seccomp), HYP_ENOTSUP (no perf_event_open, or no overflow
 * interrupt), HYP_EINVAL, HYP_ELIMIT (out of descriptors), with msg set. */
HYP_EXTERN int hyp_perf_open(const hyp_perf_event_t *ev, const hyp_perf_config_t *cfg, pid_t tid,
                             int *fd, char *msg, size_t msglen);

/* Maps an errno from perf_event_open() for event `name` to a HYP_E* code and
 * a sentence (reads /proc/sys/kernel/perf_event_paranoid for EACCES/EPERM). */
HYP_EXTERN int hyp_perf_explain_errno(int err, const char *name, char *msg, size_t msglen);

/* The current perf_event_paranoid level, or INT32_MIN when unreadable. */
HYP_EXTERN int hyp_perf_paranoid(void);

/* Reads the counter of an event opened by hyp_perf_open(). Async-signal-safe
 * (one read(2)). Returns 0 or HYP_EIO. */
HYP_EXTERN int hyp_perf_read(int fd, uint64_t *value);

/* One event known to libpfm4 on this machine. */
typedef struct {
    const char *pmu;    /* PMU name ("perf", "perf_raw", "skl", ...) */
    const char *name;   /* event name within the PMU */
    const char *desc;   /* libpfm4's description */
    int is_hardware;    /* event of a hardware PMU, or a generic hardware perf event */
} hyp_perf_event_info_t;

/* Calls cb for every event of every PMU present (as libpfm4 detects it),
 * until cb returns non-zero, which is then returned. Returns 0 when every
 * event was visited, or an error from hyp_perf_init(). */
HYP_EXTERN int hyp_perf_foreach_event(int (*cb)(const hyp_perf_event_info_t *info, void *arg),
                                      void *arg);

/* ---------------------------------------------------------------- timers */

/* Creates a POSIX timer on the CPU time of thread tid (CLOCK_THREAD_CPUTIME_ID
 * of that thread, via its pthread CPU clock id semantics: clockid from tid),
 * that sends signo to that very thread (SIGEV_THREAD_ID) every period_ns of
 * its CPU time, with si_value.sival_ptr = value. With wall set, the timer runs
 * on CLOCK_MONOTONIC instead. Returns 0 and *timer, HYP_EINVAL, HYP_EPERM,
 * HYP_ENOTSUP or HYP_ELIMIT with msg set. */
HYP_EXTERN int hyp_timer_thread_create(pid_t tid, int wall, int signo, uint64_t period_ns,
                                       void *value, timer_t *timer, char *msg, size_t msglen);
/* Deletes a timer made by hyp_timer_thread_create(). Returns 0 or HYP_EINVAL. */
HYP_EXTERN int hyp_timer_thread_delete(timer_t timer);

/* Starts (period_ns > 0) or stops (0) the process's ITIMER_PROF interval
 * timer, which sends SIGPROF to the process every period_ns of its CPU time.
 * Fails with HYP_EBUSY when starting while another ITIMER_PROF is armed.
 * Returns 0, HYP_EBUSY or HYP_EINVAL with msg set (msg may be NULL). */
HYP_EXTERN int hyp_itimer_set(uint64_t period_ns, char *msg, size_t msglen);

#ifdef __cplusplus
}
#endif
#endif /* HYPROF_PERF_H */
