"""The speedscope JSON file format (https://www.speedscope.app/file-format-schema.json).

Sampling traces become ``sampled`` profiles: one stack per distinct call path
with its summed weight, so the file grows with the tree, not with the number
of samples. Deterministic traces become ``evented`` profiles synthesised from
the call tree: each call path opens, its children run one after another, and
it closes after its inclusive time, so speedscope's time order view is a
flame chart of the aggregated profile and its left-heavy view the flame graph.
One profile per thread and metric.
"""

import json

from . import _model

SCHEMA_URL = "https://www.speedscope.app/file-format-schema.json"

_UNITS = {"ns": "nanoseconds", "us": "microseconds", "ms": "milliseconds",
          "s": "seconds", "bytes": "bytes"}


def _default_columns(tree):
    cols = tree.columns
    if tree.mode == "deterministic":
        want = [i for i, c in enumerate(cols) if c.name in ("wall_own", "cpu_own")]
    else:
        want = [i for i, c in enumerate(cols) if c.unit != "count"]
        if not want:
            want = [i for i, c in enumerate(cols) if c.name != "calls"]
    return want or [tree.default_column()]


def _frames(funcs):
    frames = []
    for f in funcs:
        fr = {"name": f.name}
        if f.filename:
            fr["file"] = f.filename
        if f.lineno:
            fr["line"] = f.lineno
        frames.append(fr)
    return frames


def _evented(tree, col, name, unit):
    inc = tree.inclusive(col)
    func, kids = tree.func, tree.children
    events = []
    # (node, start, leaving): children are laid out one after the other from
    # the parent's start; a node closes at start + inclusive.
    stack = [(k, None, False) for k in reversed(kids[0])]
    t = 0
    while stack:
        i, start, leaving = stack.pop()
        if leaving:
            t = start + inc[i]
            events.append({"type": "C", "frame": func[i], "at": t})
            continue
        if not inc[i]:
            continue
        start = t
        events.append({"type": "O", "frame": func[i], "at": start})
        stack.append((i, start, True))
        stack.extend((k, None, False) for k in reversed(kids[i]))
    return {"type": "evented", "name": name, "unit": unit, "startValue": 0,
            "endValue": t, "events": events}


def _sampled(tree, col, name, unit):
    vals = tree.values[col]
    func, kids = tree.func, tree.children
    samples, weights = [], []
    path = []
    stack = [(k, 0) for k in reversed(kids[0])]
    while stack:
        i, d = stack.pop()
        del path[d:]
        path.append(func[i])
        if vals[i]:
            samples.append(list(path))
            weights.append(vals[i])
        if kids[i]:
            stack.extend((c, d + 1) for c in reversed(kids[i]))
    total = sum(weights)
    return {"type": "sampled", "name": name, "unit": unit, "startValue": 0,
            "endValue": total, "samples": samples, "weights": weights}


def build(trace, metric=None):
    """The speedscope document as a dict."""
    threads = list(trace.threads()) or [None]
    trees = []
    for t in threads:
        tid = None if t is None else t.id
        tree = _model.from_trace(trace, thread=tid).by_function()
        tname = "all threads" if t is None else (t.name or "thread %s" % (t.os_tid or t.id))
        trees.append((tname, tree))
    # Frames are shared: intern the functions of all the threads' trees.
    funcs, fid = [], {}
    profiles = []
    for tname, tree in trees:
        remap = []
        for f in tree.funcs:
            j = fid.get(f)
            if j is None:
                j = fid[f] = len(funcs)
                funcs.append(f)
            remap.append(j)
        tree.func = [remap[f] if f >= 0 else -1 for f in tree.func]
        cols = [tree.column(metric)] if metric else _default_columns(tree)
        for col in cols:
            c = tree.columns[col]
            unit = _UNITS.get(c.unit, "none")
            name = "%s (%s)" % (tname, c.label)
            if tree.mode == "deterministic":
                if c.name == "calls":
                    raise _model.ReportError(
                        "speedscope shows time, not call counts; pick wall or cpu")
                profiles.append(_evented(tree, col, name, unit))
            else:
                profiles.append(_sampled(tree, col, name, unit))
    header = getattr(trace, "header", {}) or {}
    argv = header.get("argv") or []
    title = " ".join(argv) if argv else "hyprof profile"
    return {
        "$schema": SCHEMA_URL,
        "shared": {"frames": _frames(funcs)},
        "profiles": profiles,
        "name": title,
        "activeProfileIndex": 0,
        "exporter": "hyprof",
    }


def render(trace, metric=None, **options):
    """Speedscope JSON text; ``metric`` limits it to one column."""
    _model.reject_options("speedscope", options)
    return json.dumps(build(trace, metric), separators=(",", ":"))
