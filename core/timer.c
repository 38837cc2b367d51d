/* Timer triggers: per-thread POSIX timers and the process ITIMER_PROF
 * (include/hyprof/perf.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* F_SETSIG, F_SETOWN_EX, SIGEV_THREAD_ID */
#endif
#include "hyprof/perf.h"
#include "hyprof/clock.h"

#include "hyprof/internal/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

int hyp_timer_thread_create(pid_t tid, int wall, int signo, uint64_t period_ns, void *value,
                            timer_t *timer, char *msg, size_t msglen) {
    struct sigevent sev;
    struct itimerspec its;
    pid_t target = tid > 0 ? tid : (pid_t)syscall(SYS_gettid);
    clockid_t clock = wall ? CLOCK_MONOTONIC : hyp_clock_thread_cpu_id(target);
    timer_t t;
    int err;

    if (signo <= 0 || signo >= NSIG || period_ns == 0 || timer == NULL) {
        if (msg)
            snprintf(msg, msglen, "a timer needs a valid signal and a period above zero");
        return HYP_EINVAL;
    }
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = signo;
    sev.sigev_value.sival_ptr = value;
    sev._sigev_un._tid = target;
    if (timer_create(clock, &sev, &t) < 0) {
        err = errno;
        if (msg)
            snprintf(msg, msglen, "cannot create a %s timer for thread %d: %s",
                     wall ? "CLOCK_MONOTONIC" : "thread CPU-time", (int)target, strerror(err));
        return err == EAGAIN ? HYP_ELIMIT
               : err == EPERM ? HYP_EPERM
               : err == ENOSYS || err == ENOTSUP ? HYP_ENOTSUP
               : err == EINVAL ? HYP_ENOENT
                               : HYP_EIO;
    }
    its.it_interval.tv_sec = (time_t)(period_ns / 1000000000u);
    its.it_interval.tv_nsec = (long)(period_ns % 1000000000u);
    its.it_value = its.it_interval;
    if (timer_settime(t, 0, &its, NULL) < 0) {
        err = errno;
        timer_delete(t);
        if (msg)
            snprintf(msg, msglen, "cannot arm the timer of thread %d: %s", (int)target,
                     strerror(err));
        return HYP_EIO;
    }
    *timer = t;
    return 0;
}

int hyp_timer_thread_delete(timer_t timer) {
    return timer_delete(timer) == 0 ? 0 : HYP_EINVAL;
}

int hyp_itimer_set(uint64_t period_ns, char *msg, size_t msglen) {
    struct itimerval it, old;

    if (period_ns > 0) {
        if (getitimer(ITIMER_PROF, &old) == 0 &&
            (old.it_value.tv_sec != 0 || old.it_value.tv_usec != 0)) {
            if (msg)
                snprintf(msg, msglen, "ITIMER_PROF is already armed by someone else in this "
                                      "process (another profiler?); hyprof does not take it over");
            return HYP_EBUSY;
        }
        it.it_interval.tv_sec = (time_t)(period_ns / 1000000000u);
        it.it_interval.tv_usec = (suseconds_t)((period_ns % 1000000000u) / 1000u);
        if (it.it_interval.tv_sec == 0 && it.it_interval.tv_usec == 0)
            it.it_interval.tv_usec = 1;
        it.it_value = it.it_interval;
    } else {
        memset(&it, 0, sizeof(it));
    }
    if (setitimer(ITIMER_PROF, &it, NULL) < 0) {
        if (msg)
            snprintf(msg, msglen, "setitimer(ITIMER_PROF) failed: %s", strerror(errno));
        return HYP_EINVAL;
    }
    return 0;
}
