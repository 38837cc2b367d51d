"""Merge traces of several processes (gunicorn workers, a fleet of hosts)
into one trace that every report reads.

The call trees are merged by call path, so the same path in two workers
becomes one node whose values are the sum. Threads are not merged: each
source's threads are kept, named with the source's pid, so a report can
still tell the workers apart. The merged header lists the sources
(``sources``: one line per input, with its pid and command) and says which
source each thread came from (``thread_sources``: the source's index per
thread). Individual samples are not carried over: their values are already
in the merged call tree, which is what every report reads. Labels are:
each source's rows keep their label sets (hyprof.label()), so ``report
--label`` reads the merge as it reads each source. A library: it raises
MergeError; ``hyprof merge`` is hyprof.cli.merge.
"""

import os

from . import _hyprof, _progress
from ._kinds import func_kind_code, metric_kind_name
from .errors import MergeError
from .trace import load


_U64_MAX = 2 ** 64 - 1


def _describe(path, header):
    parts = [str(path)]
    if header.get("pid") is not None:
        parts.append(f"pid {header['pid']}")
    host = header.get("hostname") or header.get("host")
    if host:
        parts.append(f"host {host}")
    argv = header.get("argv")
    if argv:
        parts.append("cmd: " + " ".join(str(a) for a in argv))
    return ", ".join(parts)


def merge_traces(traces, names=None):
    """Merges Trace objects into the data dict ``_hyprof.write_trace`` takes.
    ``names`` labels the sources (file names by default)."""
    traces = list(traces)
    if len(traces) < 1:
        raise MergeError("nothing to merge: give at least one trace")
    names = list(names) if names is not None else [f"trace {i}" for i in range(len(traces))]
    modes = {t.mode for t in traces}
    if len(modes) > 1:
        which = ", ".join(f"{n} is {t.mode}" for n, t in zip(names, traces))
        raise MergeError(f"cannot merge traces of different modes ({which}); merge deterministic"
                         " traces and sampling traces separately")
    mode = traces[0].mode

    # Metric columns: the union, by name; a name must mean the same thing.
    metrics, mindex = [], {}
    for n, t in zip(names, traces):
        for m in t.metrics:
            kind = metric_kind_name(m.kind)
            j = mindex.get(m.name)
            if j is None:
                mindex[m.name] = len(metrics)
                metrics.append((m.name, m.unit, kind))
            elif metrics[j][1:] != (m.unit, kind):
                raise MergeError(f"metric {m.name!r} is ({metrics[j][1]}, {metrics[j][2]}) in"
                                 f" one trace but ({m.unit}, {kind}) in {n}")
    kinds, kindex = [], {}
    for t in traces:
        tm = [m.name for m in t.metrics]
        for k in getattr(t, "sample_kinds", None) or []:
            if k.name not in kindex:
                kindex[k.name] = len(kinds)
                kinds.append((k.name, k.unit, mindex[tm[k.count_metric]],
                              mindex[tm[k.weight_metric]]))

    functions, findex = [], {}
    nodes, nindex = [], {}
    label_sets, lindex = [()], {(): 0}
    threads, rows = [], []
    sources, thread_sources = [], []
    dropped = {}
    truncated = 0

    def func_id(fs):
        key = (fs.name, fs.filename or "", int(fs.lineno or 0), func_kind_code(fs.kind))
        j = findex.get(key)
        if j is None:
            j = findex[key] = len(functions)
            functions.append(key)
        return j

    def label_id(labels):
        key = tuple(sorted(labels.items()))
        j = lindex.get(key)
        if j is None:
            j = lindex[key] = len(label_sets)
            label_sets.append(key)
        return j

    for si, (n, t) in enumerate(zip(names, traces)):
        _progress.stage(f"merging {os.path.basename(str(n))}", len(traces), "traces", si)
        header = getattr(t, "header", {}) or {}
        sources.append(_describe(n, header))
        pid = header.get("pid")
        cols = [mindex[m.name] for m in t.metrics]
        names_in = [m.name for m in t.metrics]
        # A labelled trace is merged part by part, each keeping its labels.
        parts = [({}, t)]
        if len(getattr(t, "label_sets", lambda: [{}])()) > 1:
            parts = t.by_label_set()
        tids = []
        for th in t.threads():
            tname = th.label
            where = f"pid {pid}" if pid is not None else os.path.basename(str(n))
            tids.append((th.id, len(threads)))
            threads.append((int(th.os_tid or 0), int(th.ident or 0), f"{tname} [{where}]"))
            thread_sources.append(str(si))
        for (labels, part), (th_id, tid) in ((p, th) for p in parts for th in tids):
            lid = label_id(labels)
            local = {}
            for nd in part.nodes(thread=th_id):
                if nd.parent is None or nd.function is None:
                    local[nd.id] = 0
                    merged = 0
                else:
                    p = local.get(nd.parent)
                    if p is None:
                        raise MergeError(f"{n}: node {nd.id} comes before its parent {nd.parent}")
                    key = (p, func_id(nd.function), int(nd.line or 0))
                    merged = nindex.get(key)
                    if merged is None:
                        nodes.append(key)
                        merged = nindex[key] = len(nodes)
                    local[nd.id] = merged
                vals = nd.values
                if isinstance(vals, dict):
                    vals = [vals.get(name, 0) for name in names_in]
                if any(vals):
                    row = [0] * len(metrics)
                    for c, v in zip(cols, vals):
                        row[c] = int(v or 0)
                    rows.append((tid, merged, row, lid) if lid else (tid, merged, row))
        # Counts saturate, as the trace's unsigned 64-bit fields do.
        for reason, count in (getattr(t, "dropped", None) or {}).items():
            dropped[reason] = min(dropped.get(reason, 0) + int(count), _U64_MAX)
        truncated = min(truncated + int(getattr(t, "truncated_nodes", 0) or 0), _U64_MAX)

    header = _merged_header([getattr(t, "header", {}) or {} for t in traces])
    header["sources"] = sources
    header["thread_sources"] = thread_sources
    return {
        "mode": mode,
        "header": header,
        "metrics": metrics,
        "sample_kinds": kinds,
        "functions": functions,
        "threads": threads,
        "nodes": nodes,
        "rows": rows,
        "label_sets": [list(s) for s in label_sets],
        "sample_list": [],
        "dropped": dropped,
        "truncated_nodes": truncated,
    }


# Header entries that describe one process and make no sense merged.
_PER_PROCESS = {"pid", "argv", "start_time", "start", "duration", "duration_ns", "hostname",
                "host", "format", "version", "mode", "sources", "thread_sources",
                "metrics", "sample_kinds", "merged"}


def _merged_header(headers):
    """Entries every source agrees on, the counts over the run added up, and
    the merge's own."""
    out = {}
    first = headers[0]
    for key in {k for h in headers for k in h if _hyprof.meta_key_summed(k)}:
        counts = [h.get(key) for h in headers]
        counts = [v for v in counts if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
        if counts:
            out[key] = min(sum(counts), _U64_MAX >> 1)
    for key, value in first.items():
        if key in _PER_PROCESS or key in out:
            continue
        if all(h.get(key) == value for h in headers[1:]) and _header_value_ok(value):
            out[key] = value
    argvs = {tuple(h.get("argv") or ()) for h in headers}
    if len(argvs) == 1 and first.get("argv"):
        out["argv"] = [str(a) for a in first["argv"]]
    starts = [h.get("start_time") for h in headers if isinstance(h.get("start_time"), (int, float))]
    if starts:
        out["start_time"] = min(starts)
    out["merged"] = True
    return out


def _header_value_ok(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    return isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)


def check_output(paths, out):
    """Raises MergeError when there is nothing to merge, or when ``out``
    names one of the input files, which the merge would replace."""
    if not paths:
        raise MergeError("nothing to merge: give at least one trace file")
    if os.path.abspath(os.fspath(out)) in {os.path.abspath(os.fspath(p)) for p in paths}:
        raise MergeError(f"the output {out} is also an input; write the merge elsewhere")


def merge(paths, out):
    """Reads trace files, merges them and writes ``out``. Returns the data
    written. Raises MergeError, or hyprof.TraceError for an unreadable input."""
    paths = [os.fspath(p) for p in paths]
    check_output(paths, out)
    traces = [load(p) for p in paths]
    data = merge_traces(traces, names=paths)
    _hyprof.write_trace(os.fspath(out), data)
    return data


__all__ = ["MergeError", "check_output", "merge", "merge_traces"]
