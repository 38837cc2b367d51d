"""The sampling events of this machine (what ``python -m hyprof events``,
hyprof.cli.events, lists).

Lists every event libpfm4 knows for the PMUs it detects here (the generic
perf_events ones always, plus the CPU's own PMU when there is one), and
whether each opens on this machine, in this process: a hardware event fails
without a PMU (ENOENT in virtual machines), any event fails when
perf_event_paranoid or a seccomp filter forbids perf_event_open. The
POSIX-timer and setitimer fallbacks are listed too.
"""

import collections

from . import _hyprof

__all__ = ["Event", "list_events", "probe", "format_events"]

Event = collections.namedtuple("Event", "pmu name description hardware opens qualified reason")

# Short names people type, as perf(1) spells them, that libpfm4's generic
# PMU knows under its PERF_COUNT_* names.
ALIASES = {
    "PERF_COUNT_HW_CPU_CYCLES": "cycles",
    "PERF_COUNT_HW_INSTRUCTIONS": "instructions",
    "PERF_COUNT_HW_CACHE_REFERENCES": "cache-references",
    "PERF_COUNT_HW_CACHE_MISSES": "cache-misses",
    "PERF_COUNT_HW_BRANCH_INSTRUCTIONS": "branches",
    "PERF_COUNT_HW_BRANCH_MISSES": "branch-misses",
    "PERF_COUNT_SW_CPU_CLOCK": "cpu-clock",
    "PERF_COUNT_SW_TASK_CLOCK": "task-clock",
    "PERF_COUNT_SW_PAGE_FAULTS": "page-faults",
    "PERF_COUNT_SW_CONTEXT_SWITCHES": "context-switches",
    "PERF_COUNT_SW_CPU_MIGRATIONS": "cpu-migrations",
}


def probe(name):
    """(opens, libpfm4's fully qualified name, reason) for one event name."""
    ok, qualified, message = _hyprof.perf_probe(name)
    return bool(ok), qualified, message


def list_events(pmu=None, probe_all=True):
    """[Event] for every event of every PMU libpfm4 detects, optionally of
    one PMU only. With probe_all, each event is opened once on this thread to
    say whether it works here; events of the raw PMU are not probed (they
    need an encoding)."""
    out = []
    for pmu_name, name, desc, hardware in _hyprof.perf_events():
        if pmu is not None and pmu_name != pmu:
            continue
        full = "%s::%s" % (pmu_name, name)
        if probe_all and pmu_name != "perf_raw":
            ok, qualified, reason = probe(full)
        else:
            ok, qualified, reason = None, "", "not probed"
        out.append(Event(pmu_name, name, desc, bool(hardware), ok, qualified, reason))
    return out


def _short_reason(reason):
    if "ENOENT" in reason:
        return "no hardware PMU here (ENOENT)"
    if "permission denied" in reason or "EPERM" in reason or "EACCES" in reason:
        return "permission denied (perf_event_paranoid or seccomp)"
    if "ENOSYS" in reason:
        return "perf_event_open unavailable (ENOSYS)"
    if "EOPNOTSUPP" in reason:
        return "cannot be sampled (EOPNOTSUPP)"
    return reason.split(":")[-1].strip()[:60]


def format_events(events, verbose=False):
    """The table `hyprof events` prints."""
    lines = []
    width = max([len(e.pmu) + 2 + len(e.name) for e in events] + [10])
    lines.append("%-*s  %-16s  %-5s  %s" % (width, "EVENT", "ALIAS", "OPENS", "WHY / DESCRIPTION"))
    for e in events:
        opens = "-" if e.opens is None else ("yes" if e.opens else "no")
        why = e.description if e.opens or e.opens is None else _short_reason(e.reason)
        if verbose and e.opens is False:
            why = e.reason
        why = why.replace("\n", " ")
        if not verbose:
            why = why[:100]
        lines.append("%-*s  %-16s  %-5s  %s" % (width, "%s::%s" % (e.pmu, e.name),
                                               ALIASES.get(e.name, ""), opens, why))
    lines.append("")
    lines.append("Timer triggers (no perf_event_open needed): posix-timer (per-thread CPU time, "
                 "at most CONFIG_HZ samples/s), setitimer (ITIMER_PROF, SIGPROF).")
    lines.append("Use an event with: python -m hyprof run --mode sampling --event NAME script.py")
    return "\n".join(lines)
