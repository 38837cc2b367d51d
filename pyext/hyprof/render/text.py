"""The text table: one row per function, sortable, for a console.

Deterministic traces show calls (``total/primitive`` when recursion made
them differ, as pstats does), wall and CPU time, own and cumulative, and
the per-call cumulative wall time; sampling traces show own and cumulative
samples with their share of the total.
"""

import os

from ._model import ReportError, format_value, read_source

# --sort keys: name -> (attribute, descending).
DET_SORTS = {
    "calls": ("calls", True),
    "pcalls": ("primitive_calls", True),
    "own": ("wall_own", True),
    "tottime": ("wall_own", True),
    "cum": ("wall_cum", True),
    "cumtime": ("wall_cum", True),
    "cpu": ("cpu_own", True),
    "cpucum": ("cpu_cum", True),
    "percall": ("_percall", True),
    "name": ("name", False),
    "file": ("_location", False),
}
SAMPLING_SORTS = {
    "own": ("own_samples", True),
    "cum": ("cum_samples", True),
    "samples": ("own_samples", True),
    "name": ("name", False),
    "file": ("_location", False),
}
SORTS = sorted(set(DET_SORTS) | set(SAMPLING_SORTS))


def location(f):
    """``file:line`` for Python functions, ``~`` for C functions."""
    if f.kind == "python" and f.filename:
        return "%s:%d" % (f.filename, f.lineno)
    return "~"


def short_location(f, width=50):
    loc = location(f)
    if len(loc) <= width:
        return loc
    base = os.path.basename(f.filename)
    return "...%s:%d" % (os.sep + base, f.lineno) if f.kind == "python" else loc


def _key(f, attr):
    if attr == "_percall":
        return f.wall_cum / f.calls if f.calls else 0.0
    if attr == "_location":
        return (f.filename, f.lineno, f.name)
    return getattr(f, attr)


def sorted_functions(trace, sort="cum", thread=None, builtins=True):
    """The trace's functions in report order; ReportError for a sort key the
    trace's mode does not have."""
    table = DET_SORTS if trace.mode == "deterministic" else SAMPLING_SORTS
    if sort not in table:
        raise ReportError("cannot sort a %s trace by %r; choose one of: %s"
                          % (trace.mode, sort, ", ".join(sorted(table))))
    attr, desc = table[sort]
    funcs = [f for f in trace.functions(thread) if builtins or f.kind == "python"]
    funcs.sort(key=lambda f: (f.name, f.filename, f.lineno))
    funcs.sort(key=lambda f: _key(f, attr), reverse=desc)
    return funcs


def _seconds(s):
    return "%.6f" % s


OVERLAP_MARK = "[>run]"
OVERLAP_NOTE = ("note: %s rows have a cumulative wall time longer than the run: their instances"
                " overlapped (concurrent coroutines each count their own span)" % OVERLAP_MARK)


def longer_than_run(trace, wall_seconds):
    """Whether a deterministic row's cumulative wall time exceeds the
    profile's duration, which only overlapping instances can make it do."""
    d = trace.header.get("duration")
    return (trace.mode == "deterministic" and isinstance(d, (int, float)) and d > 0
            and wall_seconds > d * 1.001 + 1e-6)


def _calls(f):
    if f.calls != f.primitive_calls:
        return "%d/%d" % (f.calls, f.primitive_calls)
    return "%d" % f.calls


def summary(trace):
    """One line saying what the trace holds."""
    h = trace.header
    funcs = trace.functions()
    threads = len(trace.threads())
    if trace.mode == "deterministic":
        calls = sum(f.calls for f in funcs)
        # The calls from the root: the measured cumulative times of the
        # root's children, what the aggregation gives the edges from the root
        # (no ancestor there for recursion to be counted twice), read from
        # two node columns rather than aggregating a million edges.
        where = trace._metric_index_of
        names = [m for m in ("wall_cum", "cpu_cum") if m in where]
        totals = dict.fromkeys(("wall_cum", "cpu_cum"), 0)
        if names:
            parent, _, _, cols = trace._tree_columns([where[m] for m in names])
            tops = [i for i, p in enumerate(parent) if p == 0]
            totals.update((m, sum(col[i] for i in tops)) for m, col in zip(names, cols))
        wall, cpu = totals["wall_cum"] * 1e-9, totals["cpu_cum"] * 1e-9
        line = ("hyprof deterministic profile: %d calls of %d functions, %.3f s wall, "
                "%.3f s CPU in profiled calls, %d thread%s"
                % (calls, len(funcs), wall, cpu, threads, "" if threads == 1 else "s"))
        extra = [x for x in ("engine", "clock") if h.get(x)]
        if extra:
            line += " (%s)" % ", ".join("%s %s" % (x, h[x]) for x in extra)
    else:
        total = trace.sample_total or sum(f.own_samples for f in funcs)
        line = ("hyprof sampling profile: %d samples, %d functions, %d thread%s"
                % (total, len(funcs), threads, "" if threads == 1 else "s"))
        if h.get("event"):
            line += " (event %s)" % h["event"]
    gil = gil_counts(trace)
    if gil:
        n = sum(gil.values())
        line += "\nGIL: %s of %d samples" % (", ".join(
            "%.1f%% %s" % (100.0 * gil[s] / n, s) for s in GIL_STATES if s in gil), n)
    gc = trace.gc()
    if gc is not None and sum(gc.collections):
        n = sum(gc.collections)
        line += "\ngarbage collection: %d collection%s, %s (%s); %d objects freed" % (
            n, "" if n == 1 else "s", format_value(sum(gc.seconds) * 1e9, "ns"),
            ", ".join("gen%d %d in %s" % (g, n, format_value(s * 1e9, "ns"))
                      for g, (n, s) in enumerate(zip(gc.collections, gc.seconds)) if n),
            gc.collected)
        if gc.uncollectable:
            line += ", %d uncollectable" % gc.uncollectable
    if trace.truncated_nodes:
        line += "\nnote: %d calls past the node limit were folded into [truncated]" % (
            trace.truncated_nodes)
    if trace.truncated:
        line += "\nnote: the trace is truncated: %s" % trace.message
    # Samples that found a thread without a Python frame are no loss; traces
    # written before they were counted apart list them among the losses.
    dropped = {k: v for k, v in trace.dropped.items() if k != "no-python-frames"}
    frameless = trace.dropped.get("no-python-frames", 0)
    if isinstance(h.get("no_python_frames"), int) and not isinstance(h["no_python_frames"], bool):
        frameless += h["no_python_frames"]
    if dropped:
        lost = sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0]))
        line += "\nnote: %d samples lost (%s)" % (
            sum(dropped.values()), ", ".join("%s %d" % kv for kv in lost))
        if "handler-replaced" in trace.dropped:
            line += ("\nnote: the program replaced hyprof's handler of signal %s while it "
                     "sampled; give the profiler another signal (--signal, signal=) to leave "
                     "that one to the program" % h.get("signal", "?"))
    if frameless > 0:
        line += ("\nnote: %d samples found a thread without a Python frame (starting, ending "
                 "or in C code): not lost, there was nothing to sample" % frameless)
    return line


GIL_STATES = ("held", "released", "waiting")


def gil_counts(trace):
    """{state: samples} of the header's GIL counts (a sampling trace's), or
    {} when it has none."""
    h = trace.header
    out = {}
    for s in GIL_STATES:
        v = h.get("gil_" + s)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            out[s] = v
    return out


def _held_shares(trace, funcs):
    """The share of each function's own samples that held the GIL, by
    function, or None when the samples carry no GIL state."""
    if "held" not in trace.labels().get("gil", ()):
        return None
    held = {(f.name, f.filename, f.lineno): f.own_samples
            for f in trace.where(gil="held").functions()}
    return [held.get((f.name, f.filename, f.lineno), 0) / f.own_samples if f.own_samples
            else None for f in funcs]


def _amount(v, unit):
    if unit == "bytes":
        for div, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if v >= div:
                return "%.1f %s" % (v / div, name)
        return "%d B" % v
    if unit == "ns":
        return format_value(v, unit)
    return "%d" % v


def _metric_table(trace, funcs, metric, sort, limit, out):
    """A sampling trace's table by one metric column (``alloc_bytes``,
    ``live_bytes``, an event's weight), in that column's unit."""
    unit = next(m.unit for m in trace.metrics if m.name == metric)
    which = "own" if sort == "own" else "cum"
    if sort in ("own", "cum", "samples"):
        funcs.sort(key=lambda f: f.cum[metric] if which == "cum" else f.own[metric],
                   reverse=True)
    funcs = [f for f in funcs if f.cum[metric]]
    shown = funcs[:limit] if limit else funcs
    total = sum(f.own[metric] for f in funcs) or 1
    out.append("%12s %7s %12s %7s  %s (%s, %s)" % ("own", "own%", "cum", "cum%", "function",
                                                    metric, unit))
    for f in shown:
        out.append("%12s %6.2f%% %12s %6.2f%%  %s  %s" % (
            _amount(f.own[metric], unit), 100.0 * f.own[metric] / total,
            _amount(f.cum[metric], unit), 100.0 * f.cum[metric] / total, f.name,
            short_location(f)))
    return funcs


def render(trace, sort="cum", limit=30, thread=None, builtins=True, header=True, metric=None,
           **options):
    """The table as a string: ``limit`` rows (0 or None for all) sorted by
    ``sort`` (see SORTS), for one thread or all. For a sampling trace,
    ``metric`` picks the column shown (``alloc_bytes``, ``live_bytes``, ...)
    instead of the first sample count."""
    if options:
        raise ReportError("the text format takes no option %s"
                          % ", ".join(repr(k) for k in sorted(options)))
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ReportError("limit=%r must be a non-negative integer" % (limit,))
    names = [m.name for m in trace.metrics]
    if metric is not None and trace.mode != "sampling":
        raise ReportError("metric=%r: the table of a %s trace shows all its columns (calls, "
                          "wall and cpu time, own and cumulative); order it with sort= "
                          "(--sort: %s). metric= picks the column of a sampling trace"
                          % (metric, trace.mode, ", ".join(SORTS)))
    if metric is not None and metric not in names:
        raise ReportError("metric=%r: this %s trace has no such column; it has %s"
                          % (metric, trace.mode, ", ".join(
                              m.name for m in trace.metrics if m.kind == "own")))
    funcs = sorted_functions(trace, sort, thread, builtins)
    shown = funcs[:limit] if limit else funcs
    out = []
    if header:
        out.append(summary(trace))
        out.append("")
    if metric is not None:
        funcs = _metric_table(trace, funcs, metric, sort, limit, out)
    elif trace.mode == "deterministic":
        out.append("%12s %11s %11s %11s %11s %11s  %s" % (
            "calls", "own wall", "cum wall", "own cpu", "cum cpu", "cum/call", "function"))
        overlaps = False
        for f in shown:
            percall = f.wall_cum / f.calls if f.calls else 0.0
            mark = ""
            if longer_than_run(trace, f.wall_cum):
                mark, overlaps = "  " + OVERLAP_MARK, True
            out.append("%12s %11s %11s %11s %11s %11s  %s  %s%s" % (
                _calls(f), _seconds(f.wall_own), _seconds(f.wall_cum), _seconds(f.cpu_own),
                _seconds(f.cpu_cum), _seconds(percall), f.name, short_location(f), mark))
    else:
        total = sum(f.own_samples for f in funcs) or 1
        held = _held_shares(trace, shown)
        gil_head = " %8s" % "gil held" if held is not None else ""
        out.append("%10s %7s %10s %7s%s  %s" % ("own", "own%", "cum", "cum%", gil_head,
                                                "function"))
        for i, f in enumerate(shown):
            gil_col = ""
            if held is not None:
                gil_col = " %8s" % ("%.0f%%" % (100 * held[i]) if held[i] is not None else "-")
            out.append("%10d %6.2f%% %10d %6.2f%%%s  %s  %s" % (
                f.own_samples, 100.0 * f.own_samples / total, f.cum_samples,
                100.0 * f.cum_samples / total, gil_col, f.name, short_location(f)))
    if limit and len(funcs) > limit:
        out.append("... %d more function%s (--limit 0 shows all)" % (
            len(funcs) - limit, "" if len(funcs) - limit == 1 else "s"))
    if metric is None and trace.mode == "deterministic" and overlaps:
        out.append(OVERLAP_NOTE)
    return "\n".join(out) + "\n"


def lines_report(trace, limit=30, thread=None):
    """The hottest source lines of a sampling trace, with their text: what
    ``python -m hyprof report --lines`` prints."""
    sources = {}
    rows = trace.lines(thread) if thread is not None else trace.lines()
    total = sum(r.samples for r in rows) or 1
    unit = trace.sample_kinds[0].unit if trace.sample_kinds else ""
    out = ["%8s %6s %12s  %s" % ("samples", "%", "weight", "line")]
    for r in rows[:limit or None]:
        src = ""
        if r.line:
            text = sources.get(r.filename)
            if text is None:
                text = sources[r.filename] = read_source(r.filename)
            src = text[r.line - 1].strip() if r.line <= len(text) else ""
        where = "%s:%d" % (r.filename, r.line)
        w = ("%.3fs" % (r.weight / 1e9)) if unit == "ns" else str(r.weight)
        out.append("%8d %5.1f%% %12s  %s" % (r.samples, 100.0 * r.samples / total, w, where))
        if src:
            out.append("%29s  %s" % ("", src[:120]))
    if len(rows) > (limit or len(rows)):
        out.append("(%d more lines; -n 0 shows all)" % (len(rows) - limit))
    return "\n".join(out) + "\n"
