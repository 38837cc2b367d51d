/* The hardware-counter path: a cycles event opened per thread, sampled by
 * overflow signals. Exits 77 (skipped) with the reason where the machine has
 * no hardware PMU or perf_event_open is refused. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* F_SETSIG, F_SETOWN_EX, SIGEV_THREAD_ID */
#endif
#include "hyprof/perf.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Atomic int hits;
static volatile int want_fd;

static void on_overflow(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    if (si->si_fd == want_fd)
        atomic_fetch_add(&hits, 1);
}

int main(void) {
    hyp_perf_event_t ev = {.size = sizeof(ev)};
    hyp_perf_config_t cfg = {.size = sizeof(cfg), .period = 1000, .freq = 1, .signo = SIGRTMIN + 5};
    struct sigaction sa;
    uint64_t count = 0;
    char msg[1024] = "";
    volatile unsigned long x = 0;
    unsigned long i;
    int fd, ret;

    if (hyp_perf_encode("cycles", &ev, msg, sizeof(msg)) != 0) {
        printf("FAIL: cycles does not encode: %s\n", msg);
        return 1;
    }
    ret = hyp_perf_open(&ev, &cfg, 0, &fd, msg, sizeof(msg));
    if (ret == HYP_ENOENT) {
        printf("SKIP: no hardware PMU on this machine (%s)\n", msg);
        return 77;
    }
    if (ret == HYP_EPERM || ret == HYP_ENOTSUP) {
        printf("SKIP: hardware events cannot be opened here: %s\n", msg);
        return 77;
    }
    if (ret != 0) {
        printf("FAIL: %s\n", msg);
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_overflow;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGRTMIN + 5, &sa, NULL);
    want_fd = fd;
    for (i = 0; i < 400000000ul; i++)
        x += i;
    hyp_perf_read(fd, &count);
    close(fd);
    /* 4e8 additions take well over 1e8 cycles and 0.1 s: at 1 kHz, dozens of
     * overflows. */
    if (count < 100000000u || atomic_load(&hits) < 20) {
        printf("FAIL: cycles=%llu overflow signals=%d\n", (unsigned long long)count,
               atomic_load(&hits));
        return 1;
    }
    printf("1 passed, 0 failed: cycles=%llu overflow signals=%d (%s)\n",
           (unsigned long long)count, atomic_load(&hits), ev.name);
    return 0;
}
