"""A self-contained HTML report: an interactive flame graph and a sortable
function table, in one file that needs no network (the script, the style
sheet and the profile's data are all inlined).

The flame graph draws on a canvas, so a report of a hundred thousand call
paths stays responsive: hover for a frame's numbers, click to zoom, type a
name or a regular expression to highlight, pick the metric (wall or CPU time
and calls for deterministic traces; samples and weights for sampling traces).
The page's script reports its own errors into ``#hyprof-errors``, so a
headless browser's ``--dump-dom`` shows whether it ran cleanly.
"""

import html as _html
import json
import os
import time

from .. import _progress
from . import _model

_HERE = os.path.dirname(os.path.abspath(__file__))


def _asset(name):
    try:
        with open(os.path.join(_HERE, name), encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise _model.ReportError(f"the HTML report's {name} is missing from the hyprof"
                                 f" package ({e}); reinstall hyprof") from None


_TITLES = {"wall_own": "Wall time", "cpu_own": "CPU time", "calls": "Calls"}


def _title(col):
    if col.name in _TITLES:
        return _TITLES[col.name]
    unit = {"ns": "ns", "bytes": "bytes"}.get(col.unit)
    return f"{col.label} ({unit})" if unit else col.label


def _data(tree, table, default, base=None, title="", subtitle=""):
    """The page's data. ``table``: {"own": [...], "cum": [...]} (and
    "base_own", "base_cum" for a diff), per column and function, as
    _model.function_totals gives them."""
    columns = tree.columns
    metrics = [{"name": c.name, "label": c.label, "unit": c.unit, "title": _title(c)}
               for c in columns]
    calls = next((i for i, c in enumerate(columns) if c.name == "calls"), None)
    return {
        "title": title,
        "subtitle": subtitle,
        "mode": tree.mode,
        "metrics": metrics,
        "default": default,
        "calls": calls,
        "funcs": [[f.name, f.filename, f.lineno, f.kind] for f in tree.funcs],
        # The node arrays as they are: _dumps writes them without a Python
        # object per value.
        "parent": _Ints(tree.parent),
        "func": _Ints(tree.func),
        "values": [_Ints(v) for v in tree.values],
        "base": [_Ints(v) for v in base.values] if base is not None else None,
        "table": table,
    }


class _Ints:
    """A sequence of ints to write as a JSON array (see _dumps)."""

    __slots__ = ("seq",)

    def __init__(self, seq):
        self.seq = seq


def _safe_json(value):
    # Nothing in the data may close the script element.
    return (json.dumps(value, separators=(",", ":"), allow_nan=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _dumps(data):
    """The page's data as JSON text, in pieces: the small values through json, the node
    arrays (_Ints, a million values each in a large trace) joined straight
    from their arrays, which a list of Python ints would take several
    times the memory of."""
    out = []

    def ints(seq):
        # In slices, so that only a slice's strings exist at once.
        step = 1 << 16
        out.append("[")
        for i in range(0, len(seq), step):
            out.append(("," if i else "") + ",".join(map(str, seq[i:i + step])))
        out.append("]")

    for j, (k, v) in enumerate(data.items()):
        out.append(("{" if j == 0 else ",") + _safe_json(k) + ":")
        if isinstance(v, _Ints):
            ints(v.seq)
        elif isinstance(v, list) and v and all(isinstance(x, _Ints) for x in v):
            for i, x in enumerate(v):
                out.append("[" if i == 0 else ",")
                ints(x.seq)
            out.append("]")
        else:
            out.append(_safe_json(v))
    out.append("}" if data else "{}")
    return out


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="hyprof">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<script>
(function () {{
  /* Installed first, so any later failure shows on the page. */
  function report(msg) {{
    var box = document.getElementById("hyprof-errors");
    if (box) box.textContent += msg + "\\n";
    document.documentElement.setAttribute("data-errors", "1");
  }}
  window.addEventListener("error", function (e) {{
    report("error: " + e.message + " (" + (e.filename || "") + ":" + (e.lineno || 0) + ")");
  }});
  window.addEventListener("unhandledrejection", function (e) {{
    report("unhandled rejection: " + e.reason);
  }});
  var orig = console.error;
  console.error = function () {{
    report("console.error: " + Array.prototype.join.call(arguments, " "));
    return orig.apply(console, arguments);
  }};
}})();
</script>
<pre id="hyprof-errors"></pre>
<header>
<h1>{title}</h1>
<div class="meta">{subtitle}</div>
</header>
<div class="controls">
<label for="hyprof-view">View</label> <select id="hyprof-view"><option value="top-down">Top-down (callers first)</option><option value="bottom-up">Bottom-up (where time is spent)</option><option value="sandwich">Sandwich (one function's callers and callees)</option><option value="source">Source (the hottest lines)</option></select>
<label for="hyprof-metric">Metric</label> <select id="hyprof-metric"></select>
<input type="search" id="hyprof-search" placeholder="Search functions (regex)" spellcheck="false">
<button id="hyprof-reset" type="button">Reset zoom</button>
<span class="status" id="hyprof-status"></span>
</div>
{legend}
<div id="hyprof-timeline-box" class="timeline" hidden>
<div class="sw-title">Samples over time, by thread <span>(drag to pick a time range; every view
then shows only its samples)</span> <button id="hyprof-timeline-clear" type="button" hidden>Whole
profile</button></div>
<div class="flame-box"><canvas id="hyprof-timeline" height="40"></canvas></div>
</div>
<div id="hyprof-crumbs"></div>
<div id="hyprof-main"><div id="hyprof-flame-box" class="flame-box"><canvas id="hyprof-flame"
height="40"></canvas></div></div>
<div id="hyprof-sandwich" hidden>
<div class="sw-title" id="hyprof-callers-title"></div>
<div class="flame-box"><canvas id="hyprof-callers" height="40"></canvas></div>
<div class="sw-title" id="hyprof-callees-title"></div>
<div class="flame-box"><canvas id="hyprof-callees" height="40"></canvas></div>
</div>
<section id="hyprof-source" hidden></section>
<div id="hyprof-tip"></div>
<section class="table">
<h2>{table_title}</h2>
<table class="funcs" id="hyprof-table"></table>
<div class="note" id="hyprof-table-note"></div>
</section>
<script type="application/json" id="hyprof-data">{data}</script>
<script>
{js}
</script>
</body>
</html>
"""

_DIFF_LEGEND = ('<div class="legend">Width: the new profile. Colour: change in self value'
                '<span class="swatch" style="background:#ff2d2d"></span>slower'
                '<span class="swatch" style="background:#2d2dff"></span>faster'
                '<span class="swatch" style="background:#ebebeb"></span>unchanged</div>')


def page(tree, table, base=None, title="hyprof profile", subtitle="", default=None,
         timeline=None, source=None):
    """The HTML text for a CallTree and its function table (see _data); with
    ``base`` (a tree of the same shape holding the older values) a
    differential flame graph. ``default``: the column the page opens on;
    ``timeline``: the samples over time (see _timeline); ``source``: the
    hottest lines (see _source)."""
    tree = tree.by_function() if base is None else tree
    if default is None:
        default = tree.default_column()
    _progress.stage(f"html: writing the page ({len(tree):,} nodes)")
    data = _data(tree, table, default, base, title, subtitle)
    data["timeline"] = timeline
    data["source"] = source
    # The page around the data, then one join: the data's pieces are not
    # joined into a string of their own first (tens of MB at a million nodes).
    fields = dict(
        title=_html.escape(title), subtitle=_html.escape(subtitle),
        css=_asset("flamegraph.css"), js=_asset("flamegraph.js"),
        legend=_DIFF_LEGEND if base is not None else "",
        table_title="Functions: change from base to new" if base is not None
        else "Functions")
    head, tail = (part.format(**fields) for part in _PAGE.split("{data}"))
    return "".join([head, *_dumps(data), tail])


def describe(header, mode):
    """One line about where a trace came from, for the report's subtitle."""
    parts = [f"{mode} mode"]
    for key, fmt in (("trigger", "trigger %s"), ("event", "event %s"), ("python", "Python %s"),
                     ("pid", "pid %s")):
        v = header.get(key)
        if v not in (None, ""):
            parts.append(fmt % v)
    sources = header.get("sources")
    if sources:
        parts.append(f"merged from {len(sources)} traces")
    start = header.get("start_time")
    if isinstance(start, (int, float)) and start > 0:
        secs = start / 1e9 if start > 1e12 else start
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs))
        parts.append(f"started {started} UTC")
    return ", ".join(parts)


_GIL_STATES = ("held", "released", "waiting")


def _gil_columns(trace, tree, threads):
    """The samples of each GIL state (docs/sampling.md, "The GIL") as extra
    columns, so that the page's metric menu shows one state at a time: per
    node of tree, and per function (own, cum). Nothing for a trace whose
    samples carry no GIL state."""
    present = trace.labels().get("gil", ()) if trace.mode == "sampling" else ()
    states = [s for s in _GIL_STATES if s in present]
    if not states or not trace.sample_kinds:
        return [], [], [], []
    kind = trace.sample_kinds[0]
    count = trace.metrics[kind.count_metric].name
    # A node of a part is the node of tree with the same parent, function
    # and line: the part carries the trace's tables, so their ids agree.
    index = tree.key_index()
    cols, vals, own, cum = [], [], [], []
    for state in states:
        part = trace.where(gil=state)
        sub = _model.call_tree(part, split_threads=threads)
        src = sub.values[sub.column(count)]
        v = [0] * len(tree)
        where = [0] * len(sub)
        for j in range(1, len(sub)):
            p = where[sub.parent[j]]
            i = index.get((p, sub.func[j], sub.line[j])) if p >= 0 else None
            where[j] = -1 if i is None else i
            if i is not None:
                v[i] += src[j]
        o, c = [0] * len(tree.funcs), [0] * len(tree.funcs)
        for f in part.functions():
            k = tree.index(f)
            if k is not None:
                o[k] += f.own_samples
                c[k] += f.cum_samples
        cols.append(_model.Column(f"gil_{state}", f"samples, GIL {state}", "count", "samples",
                                  kind.name))
        vals.append(v)
        own.append(o)
        cum.append(c)
    return cols, vals, own, cum


# Past this many samples a report carries no timeline: its data would pass
# some 20 MB, and the flame graphs and the table still hold every sample.
TIMELINE_MAX_SAMPLES = 500_000


def _timeline(trace, tree):
    """The samples of a sampling trace loaded with its samples, for the
    page's timeline: per sample its time (ns from the start), thread row,
    node of the page's tree (tree.by_function()), kind, weight, GIL
    state (an index of _GIL_STATES, or -1) and line; and per column of the tree what
    it adds up ([kind, by weight, GIL state or -1]). None when there are no
    samples to show, too many, or the samples do not add up to the tree's
    values (a truncated trace, a column that is not a sample count or
    weight): the timeline filters every view, so it must agree with them."""
    kept = getattr(trace, "_samples", None) if trace.mode == "sampling" else None
    # Counted before the columns are made: a trace with too many samples
    # costs no copy of them.
    if not kept or not 0 < len(kept["time"]) // 8 <= TIMELINE_MAX_SAMPLES:
        return None
    cols = trace.sample_columns()
    kinds = {k.name: i for i, k in enumerate(trace.sample_kinds)}
    specs = []
    for c in tree.columns:
        kind = kinds.get(c.event)
        if kind is None or c.role not in ("samples", "weight"):
            return None
        gil = _GIL_STATES.index(c.name[4:]) if c.name.startswith("gil_") else -1
        specs.append([kind, c.role == "weight", gil])
    gil_of = [_GIL_STATES.index(s["gil"]) if s.get("gil") in _GIL_STATES else -1
              for s in trace.label_sets()]
    flat = tree.by_function()
    to_flat = tree.node_map()
    # A trace node's node in tree: the same when the tree is the trace's own,
    # else found under its thread's pseudo-root by (parent, function, line).
    roots = dict((t.id, n) for t, n in _model.thread_roots(tree)) if tree.threads else None
    index = tree.key_index() if roots is not None else None
    tn = trace._nodes
    memo = {}

    def node_of(thread, n):
        if roots is None:
            return n
        chain = []
        while n and (thread, n) not in memo:
            chain.append(n)
            n = tn[3 * n]
        at = memo.get((thread, n), roots.get(thread)) if n else roots.get(thread)
        for m in reversed(chain):
            at = None if at is None else index.get((at, tn[3 * m + 1], tn[3 * m + 2]))
            memo[(thread, m)] = at
        return at

    names = {t.id: t.label for t in trace.threads()}
    rows = {}
    out = {"t": [], "th": [], "n": [], "k": [], "w": [], "g": []}
    check = [[0] * len(flat) for _ in specs]
    out["ln"] = []
    _progress.stage("html: the timeline", len(cols["time"]), "samples")
    for th, nd, k, t, w, lab in zip(cols["thread"], cols["node"], cols["kind"], cols["time"],
                                    cols["weight"], cols["labels"]):
        at = node_of(th, nd)
        if at is None:
            return None
        at = to_flat[at]
        if not len(out["t"]) & 8191:
            _progress.advance(8192 if out["t"] else 0)
        g = gil_of[lab] if lab < len(gil_of) else -1
        row = rows.setdefault(th, len(rows))
        for c, (ck, by_weight, cg) in enumerate(specs):
            if ck == k and (cg < 0 or cg == g):
                check[c][at] += w if by_weight else 1
        for key, v in (("t", t), ("th", row), ("n", at), ("k", k), ("w", w), ("g", g),
                       ("ln", tn[3 * nd + 2])):
            out[key].append(v)
    if any(list(flat.values[c]) != check[c] for c in range(len(specs))):
        return None
    out["threads"] = [names.get(th, f"thread {th}") for th in sorted(rows, key=rows.get)]
    out["cols"] = specs
    out["end"] = max(out["t"]) + 1
    return out


# The source view: the files with the most samples, each the lines around
# its hottest ones. Only Python source files are read: a report is a file
# people share, and a trace from elsewhere may name any file at all.
SOURCE_FILES = 8
SOURCE_HOT_LINES = 40
SOURCE_CONTEXT = 2
SOURCE_SUFFIXES = (".py", ".pyw")


def _source(tree, default):
    """The source view's data for a tree whose nodes carry lines (sampling
    traces): [{"file", "lines": [[line, text or None, [own value per
    column]]], "readable"}], the files by the default column's samples,
    each the hot lines of that column with SOURCE_CONTEXT lines either side;
    None without line data."""
    if tree.mode != "sampling" or not any(tree.line):
        return None
    ncol = len(tree.columns)
    heat = {}
    funcs, func, line = tree.funcs, tree.func, tree.line
    for i in range(1, len(tree)):
        f = funcs[func[i]]
        if not line[i] or not f.filename or f.kind == "special":
            continue
        vals = [tree.values[c][i] for c in range(ncol)]
        if not any(vals):
            continue
        row = heat.setdefault(f.filename, {}).setdefault(line[i], [0] * ncol)
        for c in range(ncol):
            row[c] += vals[c]
    per_file = sorted(heat.items(), key=lambda kv: (-sum(v[default] for v in kv[1].values()),
                                                    kv[0]))
    out = []
    for filename, lines in per_file[:SOURCE_FILES]:
        if not sum(v[default] for v in lines.values()):
            break
        hot = sorted((ln for ln in lines if lines[ln][default]),
                     key=lambda ln: (-lines[ln][default], ln))[:SOURCE_HOT_LINES]
        text = (_model.read_source(filename) if filename.endswith(SOURCE_SUFFIXES) else [])
        shown = set()
        for ln in hot:
            shown.update(range(max(1, ln - SOURCE_CONTEXT), ln + SOURCE_CONTEXT + 1))
        if text:
            shown = {ln for ln in shown if ln <= len(text)} | set(hot)
        else:
            shown = set(hot)
        out.append({"file": filename, "readable": bool(text),
                    "lines": [[ln, text[ln - 1] if ln <= len(text) else None,
                               lines.get(ln, [0] * ncol)] for ln in sorted(shown)]})
    return out or None


def render(trace, metric=None, threads=None, title=None, **options):
    """The HTML report of a trace. ``metric``: the one it opens on (all stay
    selectable); ``threads``: give each thread its own frame under the root
    (default: when the trace has more than one)."""
    _model.reject_options("html", options)
    if threads is None:
        threads = len(list(trace.threads())) > 1
    tree = _model.call_tree(trace, split_threads=threads)
    default = tree.column(metric) if metric is not None else None
    own, cum = _model.function_totals(trace, tree)
    cols, vals, gil_own, gil_cum = _gil_columns(trace, tree, threads)
    if cols:
        # A tree of its own: the shared one stays as every report reads it.
        tree = _model.CallTree(tree.funcs, tree.parent, tree.func, tree.line,
                               tree.columns + cols, list(tree.values) + vals, tree.mode,
                               tree.header, tree.threads, tree.measured, checked=True)
        own, cum = own + gil_own, cum + gil_cum
    header = getattr(trace, "header", {}) or {}
    if title is None:
        prog = _model.program(header)
        title = f"hyprof: {prog}" if prog else "hyprof profile"
    return page(tree, {"own": own, "cum": cum}, title=title,
                subtitle=describe(header, trace.mode), default=default,
                timeline=_timeline(trace, tree),
                source=_source(tree, tree.default_column() if default is None else default))
