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


# The event and sample arrays are written as JSON text directly: they are
# most of the file, and a dict per event would cost more than the walk.

def _evented(tree, col, top, frame):
    """The events array of an evented profile of the subtree under node
    ``top``, as JSON text, and its end. ``frame``: tree function -> frame id.

    The deterministic engine writes a node's children in the order they
    were first called; they are laid out in that order."""
    inc = tree.inclusive(col)
    func = tree.func
    order, depth = tree.preorder(top)
    # Events are joined a batch at a time: a str per event for a million
    # nodes would hold several times the output.
    parts, chunks = [], []
    # Children are laid out one after the other from their parent's start;
    # a node closes at its start + inclusive, once the walk has left its
    # subtree. The open nodes, innermost last: (depth, end, frame id).
    opened = []
    t = 0
    for i, d in zip(order[1:], depth[1:]):
        while opened and opened[-1][0] >= d:
            _, t, fr = opened.pop()
            parts.append(f'{{"type":"C","frame":{fr},"at":{t}}}')
        w = inc[i]
        if not w:
            continue  # nor anything under it: values are never negative
        fr = frame(func[i])
        parts.append(f'{{"type":"O","frame":{fr},"at":{t}}}')
        opened.append((d, t + w, fr))
        if len(parts) >= 65536:
            chunks.append(",".join(parts))
            parts = []
    while opened:
        _, t, fr = opened.pop()
        parts.append(f'{{"type":"C","frame":{fr},"at":{t}}}')
    if parts:
        chunks.append(",".join(parts))
    return _array(chunks), t


def _sampled(tree, col, top, frame):
    """The samples and weights arrays of a sampled profile of the subtree
    under node ``top``, as JSON text, and the total weight."""
    vals = tree.values[col]
    func = tree.func
    samples, weights = [], []
    total = 0
    budget = _model.PathBudget("speedscope")
    for i, path in _model.walk_paths(tree, top, lambda i: str(frame(func[i]))):
        v = vals[i]
        if v and budget.take(len(path)):
            samples.append("[" + ",".join(path) + "]")
            weights.append(str(v))
            total += v
    budget.warn()
    return _array([",".join(samples)]), _array([",".join(weights)]), total


def _array(chunks):
    """A JSON array as pieces of text: chunks are its elements' text, a
    batch each, joined with the rest of the file once, at the end."""
    pieces = ["["]
    for k, c in enumerate(chunks):
        if k:
            pieces.append(",")
        pieces.append(c)
    pieces.append("]")
    return pieces


def _profile(meta, arrays):
    """A profile object as pieces of text: meta's fields, then the JSON
    arrays (each pieces of text)."""
    pieces = [json.dumps(meta, separators=(",", ":"))[:-1]]
    for key, value in arrays:
        pieces.append(f',"{key}":')
        pieces.extend(value)
    pieces.append("}")
    return pieces


def render(trace, metric=None, **options):
    """Speedscope JSON text; ``metric`` limits it to one column. The file is
    named after the profiled program."""
    _model.reject_options("speedscope", options)
    threads = list(trace.threads())
    if threads:
        tree = _model.call_tree(trace, split_threads=True).by_function()
        tops = [(t.label, top)
                for t, top in _model.thread_roots(tree)]
    else:
        tree = _model.call_tree(trace).by_function()
        tops = [("all threads", 0)]
    # Frames are shared by the threads' profiles: one per function used.
    funcs, fid = [], {}

    def frame(f):
        j = fid.get(f)
        if j is None:
            j = fid[f] = len(funcs)
            funcs.append(tree.funcs[f])
        return j

    cols = [tree.column(metric)] if metric else _default_columns(tree)
    profiles = []
    for tname, top in tops:
        for col in cols:
            c = tree.columns[col]
            meta = {"name": f"{tname} ({c.label})", "unit": _UNITS.get(c.unit, "none"),
                    "startValue": 0}
            if tree.mode == "deterministic":
                if c.role == "calls":
                    raise _model.ReportError(
                        "speedscope shows time, not call counts; pick wall or cpu")
                events, end = _evented(tree, col, top, frame)
                meta.update(type="evented", endValue=end)
                profiles.append(_profile(meta, [("events", events)]))
            else:
                samples, weights, total = _sampled(tree, col, top, frame)
                meta.update(type="sampled", endValue=total)
                profiles.append(_profile(meta, [("samples", samples), ("weights", weights)]))
    header = getattr(trace, "header", {}) or {}
    rest = {"name": _model.program(header) or "hyprof profile",
            "activeProfileIndex": 0, "exporter": "hyprof"}
    shared = json.dumps({"frames": _frames(funcs)}, separators=(",", ":"))
    tail = json.dumps(rest, separators=(",", ":"))[1:]
    pieces = [f'{{"$schema":{json.dumps(SCHEMA_URL)},"shared":{shared},"profiles":[']
    for k, prof in enumerate(profiles):
        if k:
            pieces.append(",")
        pieces.extend(prof)
    pieces.append(f"],{tail}")
    return "".join(pieces)


def build(trace, metric=None):
    """The speedscope document as a dict."""
    return json.loads(render(trace, metric))
