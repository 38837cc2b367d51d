/* bench/timer_floor.c: what a CPU-clock sampling signal costs before any
 * profiler does anything with it, for bench/bench_sampling.py.
 *
 * floor_start(period_ns) opens a cpu-clock perf event on the calling thread,
 * counting user space only, whose overflow sends a signal to that thread, as
 * hyprof's default software trigger does; the handler does nothing but count.
 * The slowdown it causes is the kernel's part of every sample (the timer
 * interrupt and the signal delivery and return), which no in-process sampler
 * can avoid; hyprof's own cost is what it adds on top.
 *
 *     cc -O2 -shared -fPIC -o timer_floor.so bench/timer_floor.c
 *
 * Loaded with ctypes: floor_start(period_ns, signo) returns 0 or -errno;
 * floor_stop() returns the number of signals handled. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile sig_atomic_t hits;
static int fd = -1;

static void on_signal(int signo, siginfo_t *si, void *uc) {
    (void)signo;
    (void)si;
    (void)uc;
    hits++;
}

int floor_start(long long period_ns, int signo) {
    struct perf_event_attr attr;
    struct f_owner_ex owner;
    struct sigaction sa;
    int err;

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(signo, &sa, NULL) < 0)
        return -errno;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.sample_period = (unsigned long long)period_ns;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    attr.disabled = 1;
    attr.wakeup_events = 1;
    fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0)
        return -errno;
    owner.type = F_OWNER_TID;
    owner.pid = (pid_t)syscall(SYS_gettid);
    if (fcntl(fd, F_SETFL, O_ASYNC) < 0 || fcntl(fd, F_SETSIG, signo) < 0 ||
        fcntl(fd, F_SETOWN_EX, &owner) < 0 || ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) < 0) {
        err = -errno;
        close(fd);
        fd = -1;
        return err;
    }
    return 0;
}

long floor_stop(void) {
    if (fd >= 0) {
        ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
        close(fd);
        fd = -1;
    }
    return (long)hits;
}
