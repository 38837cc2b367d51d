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
# most of the file, and a dict per event would cost more than the walk. They
# are yielded a batch of entries at a time: a str per event for a million
# nodes would hold several times the output. A profile's endValue and the
# shared frames are known once its arrays are written, so they come after
# them (a JSON object's keys have no order). A batch: entries, and the
# characters of a sample's stacks.
_BATCH = 65536
_BATCH_CHARS = 1 << 20


def _evented(tree, col, top, frame, end):
    """The events of an evented profile of the subtree under node ``top``,
    as JSON text in pieces, comma-separated; end[0] is set to its end.
    ``frame``: tree function -> frame id.

    The deterministic engine writes a node's children in the order they
    were first called; they are laid out in that order."""
    inc = tree.inclusive(col)
    func = tree.func
    order, depth = tree.preorder(top)
    parts = []
    sep = ""
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
        if len(parts) >= _BATCH:
            yield sep + ",".join(parts)
            parts, sep = [], ","
    while opened:
        _, t, fr = opened.pop()
        parts.append(f'{{"type":"C","frame":{fr},"at":{t}}}')
    if parts:
        yield sep + ",".join(parts)
    end[0] = t


def _sampled(tree, col, top, frame, weights, end):
    """The samples of a sampled profile of the subtree under node ``top``,
    as JSON text in pieces, comma-separated; their weights are appended to
    weights as text (a batch a piece) and end[0] is set to their total."""
    vals = tree.values[col]
    func = tree.func
    samples, wbatch = [], []
    sep = ""
    total = size = 0
    budget = _model.PathBudget("speedscope")
    for i, path in _model.walk_paths(tree, top, lambda i: str(frame(func[i]))):
        v = vals[i]
        if v and budget.take(len(path)):
            text = "[" + ",".join(path) + "]"
            samples.append(text)
            size += len(text)
            wbatch.append(str(v))
            total += v
            if len(samples) >= _BATCH or size >= _BATCH_CHARS:
                yield sep + ",".join(samples)
                weights.append(sep + ",".join(wbatch))
                samples, wbatch, sep, size = [], [], ",", 0
    if samples:
        yield sep + ",".join(samples)
        weights.append(sep + ",".join(wbatch))
    budget.warn()
    end[0] = total


def _dumps(value):
    return json.dumps(value, separators=(",", ":"))


def render(trace, metric=None, **options):
    """Speedscope JSON text; ``metric`` limits it to one column. The file is
    named after the profiled program."""
    return "".join(stream(trace, metric=metric, **options))


def stream(trace, metric=None, **options):
    """render()'s text as an iterator of pieces."""
    _model.reject_options("speedscope", options)
    threads = list(trace.threads())
    if threads:
        tree = _model.call_tree(trace, split_threads=True).by_function()
        tops = [(t.label, top)
                for t, top in _model.thread_roots(tree)]
    else:
        tree = _model.call_tree(trace).by_function()
        tops = [("all threads", 0)]
    cols = [tree.column(metric)] if metric else _default_columns(tree)
    if tree.mode == "deterministic" and any(tree.columns[c].role == "calls" for c in cols):
        raise _model.ReportError("speedscope shows time, not call counts; pick wall or cpu")
    header = getattr(trace, "header", {}) or {}
    return _pieces(tree, tops, cols, _model.program(header) or "hyprof profile")


def _pieces(tree, tops, cols, name):
    # Frames are shared by the threads' profiles: one per function used.
    funcs, fid = [], {}

    def frame(f):
        j = fid.get(f)
        if j is None:
            j = fid[f] = len(funcs)
            funcs.append(tree.funcs[f])
        return j

    yield f'{{"$schema":{_dumps(SCHEMA_URL)},"profiles":['
    sep = ""
    for tname, top in tops:
        for col in cols:
            c = tree.columns[col]
            meta = {"name": f"{tname} ({c.label})", "unit": _UNITS.get(c.unit, "none"),
                    "startValue": 0}
            end = [0]
            if tree.mode == "deterministic":
                meta["type"] = "evented"
                yield sep + _dumps(meta)[:-1] + ',"events":['
                yield from _evented(tree, col, top, frame, end)
            else:
                meta["type"] = "sampled"
                weights = []
                yield sep + _dumps(meta)[:-1] + ',"samples":['
                yield from _sampled(tree, col, top, frame, weights, end)
                yield '],"weights":['
                yield from weights
            yield f'],"endValue":{end[0]}}}'
            sep = ","
    rest = {"shared": {"frames": _frames(funcs)}, "name": name,
            "activeProfileIndex": 0, "exporter": "hyprof"}
    yield "]," + _dumps(rest)[1:]


def build(trace, metric=None):
    """The speedscope document as a dict."""
    return json.loads(render(trace, metric))
