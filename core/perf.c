/* perf_event set-up through libpfm4 (include/hyprof/perf.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* F_SETSIG, F_SETOWN_EX, SIGEV_THREAD_ID */
#endif
#include "hyprof/perf.h"

#include "hyprof/internal/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <perfmon/pfmlib_perf_event.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_once_t hyp__pfm_once = PTHREAD_ONCE_INIT;
static int hyp__pfm_status = PFM_SUCCESS;

static void hyp__pfm_init_once(void) {
    hyp__pfm_status = pfm_initialize();
}

static void hyp__msg(char *msg, size_t msglen, const char *fmt, ...) {
    va_list ap;

    if (msg == NULL || msglen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

int hyp_perf_init(char *msg, size_t msglen) {
    pthread_once(&hyp__pfm_once, hyp__pfm_init_once);
    if (hyp__pfm_status != PFM_SUCCESS) {
        hyp__msg(msg, msglen, "libpfm4 cannot initialise: %s", pfm_strerror(hyp__pfm_status));
        return HYP_ENOTSUP;
    }
    return 0;
}

static int hyp__type_is_hardware(uint32_t type) {
    return type == PERF_TYPE_HARDWARE || type == PERF_TYPE_HW_CACHE || type == PERF_TYPE_RAW ||
           type == PERF_TYPE_BREAKPOINT || type >= PERF_TYPE_MAX;
}

/* The PMUs libpfm4 detected, for messages ("perf, perf_raw"). */
static void hyp__present_pmus(char *buf, size_t len) {
    pfm_pmu_info_t info;
    size_t used = 0;
    int pmu;

    buf[0] = '\0';
    pfm_for_all_pmus(pmu) {
        memset(&info, 0, sizeof(info));
        info.size = sizeof(info);
        if (pfm_get_pmu_info(pmu, &info) != PFM_SUCCESS || !info.is_present)
            continue;
        used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s%s",
                                 used ? ", " : "", info.name);
        if (used >= len)
            break;
    }
}

int hyp_perf_encode(const char *name, hyp_perf_event_t *ev, char *msg, size_t msglen) {
    pfm_perf_encode_arg_t arg;
    pfm_event_info_t einfo;
    pfm_pmu_info_t pinfo;
    char *fstr = NULL;
    size_t size;
    int ret;

    if (ev == NULL || ev->size < sizeof(*ev) || name == NULL) {
        hyp__msg(msg, msglen, "invalid arguments to hyp_perf_encode()");
        return HYP_EINVAL;
    }
    if (name[0] == '\0') {
        hyp__msg(msg, msglen, "empty event name: give an event such as cpu-clock, task-clock, "
                              "cycles or instructions (see `python -m hyprof events`)");
        return HYP_EINVAL;
    }
    if ((ret = hyp_perf_init(msg, msglen)) < 0)
        return ret;
    size = ev->size;
    memset(ev, 0, sizeof(*ev));
    ev->size = size;
    memset(&arg, 0, sizeof(arg));
    arg.attr = &ev->attr;
    arg.fstr = &fstr;
    arg.size = sizeof(arg);
    ret = pfm_get_os_event_encoding(name, PFM_PLM3, PFM_OS_PERF_EVENT_EXT, &arg);
    if (ret != PFM_SUCCESS) {
        char pmus[256];

        hyp__present_pmus(pmus, sizeof(pmus));
        if (ret == PFM_ERR_NOTFOUND) {
            hyp__msg(msg, msglen,
                     "unknown event '%s': no PMU that libpfm4 detects on this machine (%s) "
                     "has an event of that name; `python -m hyprof events` lists those it "
                     "knows, and cpu-clock or task-clock work everywhere perf_event_open does",
                     name, pmus[0] ? pmus : "none");
            return HYP_ENOENT;
        }
        hyp__msg(msg, msglen, "cannot encode event '%s': %s (libpfm4)", name,
                 pfm_strerror(ret));
        return HYP_EINVAL;
    }
    snprintf(ev->name, sizeof(ev->name), "%s", fstr ? fstr : name);
    free(fstr); /* allocated by libpfm4 with malloc */
    memset(&einfo, 0, sizeof(einfo));
    einfo.size = sizeof(einfo);
    memset(&pinfo, 0, sizeof(pinfo));
    pinfo.size = sizeof(pinfo);
    if (pfm_get_event_info(arg.idx, PFM_OS_NONE, &einfo) == PFM_SUCCESS &&
        pfm_get_pmu_info(einfo.pmu, &pinfo) == PFM_SUCCESS)
        snprintf(ev->pmu, sizeof(ev->pmu), "%s", pinfo.name);
    ev->attr.size = sizeof(ev->attr);
    ev->is_hardware = hyp__type_is_hardware(ev->attr.type);
    ev->is_clock = ev->attr.type == PERF_TYPE_SOFTWARE &&
                   (ev->attr.config == PERF_COUNT_SW_CPU_CLOCK ||
                    ev->attr.config == PERF_COUNT_SW_TASK_CLOCK);
    return 0;
}

int hyp_perf_paranoid(void) {
    char buf[32];
    ssize_t n;
    int fd = open("/proc/sys/kernel/perf_event_paranoid", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return INT32_MIN;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return INT32_MIN;
    buf[n] = '\0';
    return (int)strtol(buf, NULL, 10);
}

/* 1 when a seccomp filter is active on this process (/proc/self/status). */
static int hyp__seccomp_filtered(void) {
    char buf[4096];
    const char *p;
    ssize_t n;
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    p = strstr(buf, "\nSeccomp:");
    return p != NULL && strtol(p + 9, NULL, 10) == 2;
}

int hyp_perf_explain_errno(int err, const char *name, char *msg, size_t msglen) {
    const char *alt = "omit event= to let hyprof pick the best trigger that works here "
                      "(a POSIX CPU timer needs no perf_event_open)";

    if (name == NULL)
        name = "(unnamed)";
    switch (err) {
    case ENOENT:
        hyp__msg(msg, msglen,
                 "cannot open event '%s': perf_event_open failed with ENOENT: this machine has "
                 "no hardware PMU for it (usual in virtual machines and containers), or the "
                 "kernel does not know the event; software events such as cpu-clock or "
                 "task-clock work without a PMU, or %s", name, alt);
        return HYP_ENOENT;
    case EACCES:
    case EPERM: {
        int level = hyp_perf_paranoid();

        if (hyp__seccomp_filtered() && err == EPERM && level != INT32_MIN && level <= 2)
            hyp__msg(msg, msglen,
                     "cannot open event '%s': perf_event_open is refused (EPERM) although "
                     "kernel.perf_event_paranoid is %d: a seccomp filter (as container "
                     "runtimes install) blocks it; allow perf_event_open in the filter, or %s",
                     name, level, alt);
        else if (level != INT32_MIN)
            hyp__msg(msg, msglen,
                     "cannot open event '%s': permission denied (%s): kernel.perf_event_paranoid "
                     "is %d; profiling your own threads needs 2 or less (sysctl -w "
                     "kernel.perf_event_paranoid=2), or CAP_PERFMON; a seccomp filter can also "
                     "refuse it; or %s",
                     name, err == EACCES ? "EACCES" : "EPERM", level, alt);
        else
            hyp__msg(msg, msglen,
                     "cannot open event '%s': permission denied (%s) and "
                     "/proc/sys/kernel/perf_event_paranoid is unreadable (a sandbox or seccomp "
                     "filter); %s", name, err == EACCES ? "EACCES" : "EPERM", alt);
        return HYP_EPERM;
    }
    case ENOSYS:
        hyp__msg(msg, msglen,
                 "cannot open event '%s': perf_event_open is not available (ENOSYS): the "
                 "kernel lacks CONFIG_PERF_EVENTS or a seccomp filter hides the system call; %s",
                 name, alt);
        return HYP_ENOTSUP;
    case EOPNOTSUPP:
        hyp__msg(msg, msglen,
                 "cannot sample event '%s': its PMU has no overflow interrupt (EOPNOTSUPP), so "
                 "it can be counted but not sampled; use cpu-clock, or %s", name, alt);
        return HYP_ENOTSUP;
    case EMFILE:
    case ENFILE:
        hyp__msg(msg, msglen,
                 "cannot open event '%s': out of file descriptors (%s); raise the limit "
                 "(ulimit -n), since hyprof opens one descriptor per thread",
                 name, err == EMFILE ? "EMFILE" : "ENFILE");
        return HYP_ELIMIT;
    case EINVAL:
    case E2BIG:
        hyp__msg(msg, msglen,
                 "cannot open event '%s': the kernel refused its attributes (%s): the "
                 "frequency may exceed kernel.perf_event_max_sample_rate, or the event does "
                 "not support sampling; try a lower frequency or another event",
                 name, err == EINVAL ? "EINVAL" : "E2BIG");
        return HYP_EINVAL;
    case EBUSY:
        hyp__msg(msg, msglen, "cannot open event '%s': the PMU is in exclusive use by another "
                              "tool (EBUSY)", name);
        return HYP_EBUSY;
    default:
        hyp__msg(msg, msglen, "cannot open event '%s': perf_event_open failed: %s", name,
                 strerror(err));
        return HYP_EIO;
    }
}

int hyp_perf_open(const hyp_perf_event_t *ev, const hyp_perf_config_t *cfg, pid_t tid, int *fd,
                  char *msg, size_t msglen) {
    struct perf_event_attr attr;
    struct f_owner_ex owner;
    pid_t target = tid > 0 ? tid : (pid_t)syscall(SYS_gettid);
    int f, err;

    if (ev == NULL || cfg == NULL || fd == NULL || ev->size < sizeof(*ev) ||
        cfg->size < sizeof(*cfg) || cfg->signo < 0 || cfg->signo >= NSIG ||
        (cfg->signo && cfg->period == 0)) {
        hyp__msg(msg, msglen, "invalid arguments to hyp_perf_open(): a sampled event needs a "
                              "period or a frequency above zero and a valid signal");
        return HYP_EINVAL;
    }
    attr = ev->attr;
    attr.size = sizeof(attr);
    attr.disabled = 1;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    attr.inherit = 0;
    if (cfg->signo) {
        attr.freq = cfg->freq ? 1 : 0;
        attr.sample_period = cfg->period; /* union with sample_freq */
        attr.wakeup_events = 1;
    }
    f = (int)syscall(SYS_perf_event_open, &attr, target, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (f < 0)
        return hyp_perf_explain_errno(errno, ev->name, msg, msglen);
    if (cfg->signo) {
        owner.type = F_OWNER_TID;
        owner.pid = target;
        if (fcntl(f, F_SETFL, O_ASYNC | O_NONBLOCK) < 0 || fcntl(f, F_SETSIG, cfg->signo) < 0 ||
            fcntl(f, F_SETOWN_EX, &owner) < 0) {
            err = errno;
            close(f);
            hyp__msg(msg, msglen, "cannot route the overflow signal of '%s' to thread %d: %s",
                     ev->name, (int)target, strerror(err));
            return err == ESRCH ? HYP_ENOENT : HYP_EIO;
        }
    }
    if (ioctl(f, PERF_EVENT_IOC_ENABLE, 0) < 0) {
        err = errno;
        close(f);
        return hyp_perf_explain_errno(err, ev->name, msg, msglen);
    }
    *fd = f;
    return 0;
}

int hyp_perf_read(int fd, uint64_t *value) {
    ssize_t n = read(fd, value, sizeof(*value));

    return n == (ssize_t)sizeof(*value) ? 0 : HYP_EIO;
}

int hyp_perf_foreach_event(int (*cb)(const hyp_perf_event_info_t *info, void *arg), void *arg) {
    pfm_pmu_info_t pinfo;
    pfm_event_info_t einfo;
    hyp_perf_event_info_t out;
    int pmu, i, ret;

    if ((ret = hyp_perf_init(NULL, 0)) < 0)
        return ret;
    pfm_for_all_pmus(pmu) {
        memset(&pinfo, 0, sizeof(pinfo));
        pinfo.size = sizeof(pinfo);
        if (pfm_get_pmu_info(pmu, &pinfo) != PFM_SUCCESS || !pinfo.is_present)
            continue;
        for (i = pinfo.first_event; i != -1; i = pfm_get_event_next(i)) {
            memset(&einfo, 0, sizeof(einfo));
            einfo.size = sizeof(einfo);
            if (pfm_get_event_info(i, PFM_OS_PERF_EVENT_EXT, &einfo) != PFM_SUCCESS)
                continue;
            out.pmu = pinfo.name;
            out.name = einfo.name;
            out.desc = einfo.desc ? einfo.desc : "";
            /* libpfm4's generic "perf" PMU mixes hardware and software events;
             * its software ones are named PERF_COUNT_SW_*. */
            out.is_hardware = pinfo.type != PFM_PMU_TYPE_OS_GENERIC ||
                              strncmp(einfo.name, "PERF_COUNT_SW_", 14) != 0;
            if (strcmp(pinfo.name, "perf_raw") == 0)
                out.is_hardware = 1;
            if ((ret = cb(&out, arg)) != 0)
                return ret;
        }
    }
    return 0;
}
