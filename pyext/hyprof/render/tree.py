"""The console report a person reads first: the call tree of the hottest
paths, then the functions that took the most time themselves
(docs/reports.md).

Each row is a call path with its share of the total and its value:
deterministic traces weigh a node by its cumulative wall time (or CPU time
with ``clock="cpu"``) and show its calls; sampling traces by the first
sample kind's weight (CPU or wall time, bytes for memory traces) and show
its samples; ``metric`` names another column (``lock_wait_ns``,
``alloc_bytes``). Children are sorted heaviest first and drawn with guides;
a node whose own part is worth showing beside its children gets a
``[self]`` row; children under ``min_percent`` of the total are summed into
one line, and depth stops at ``max_depth``.

``collapse`` (on by default) hides library internals: frames of library
files (the standard library, site-packages, frozen modules, C functions; or
files matching the given patterns) called from library frames, so that a
call into a library is one row that says what it hid
(``[5 frames hidden: json, <built-in>]``) and the user code it calls back
comes right under it. ``collapse=False`` shows every frame.

Files are named by the shortest trailing part of their path that no other
file of the trace ends with (``json/__init__.py`` beside
``markupsafe/__init__.py``, ``app.py`` alone), so a row never needs the
install prefix and is never ambiguous. ``width`` cuts rows to a terminal's
width; ``color`` adds ANSI colours (the CLI turns it on for a terminal,
never for a pipe or a file); ``top`` is the number of functions listed
after the tree (0: none).
"""

import collections
import fnmatch
import re

from ..errors import ReportError
from . import _model
from .text import OVERLAP_MARK, OVERLAP_NOTE, longer_than_run, summary

# Where library code lives, wherever the trace was made.
LIBRARY_PATTERNS = ("*/lib/python3*/*", "*/site-packages/*", "*/dist-packages/*", "<frozen *")

# ANSI styles: share of the total >= 20% red, >= 5% yellow, else green.
_RESET, _BOLD, _DIM = "\x1b[0m", "\x1b[1m", "\x1b[2m"

_GUIDES = {True: ("├─ ", "└─ ", "│  ", "   "), False: ("|- ", "`- ", "|  ", "   ")}


def _heat(share):
    return "\x1b[31m" if share >= 20 else "\x1b[33m" if share >= 5 else "\x1b[32m"


def _library_test(collapse):
    """A predicate on FunctionInfo for the collapse option: True for the
    library defaults, or a pattern / list of patterns (fnmatch on the file)."""
    if collapse is True:
        patterns = LIBRARY_PATTERNS
    elif isinstance(collapse, str):
        patterns = (collapse,)
    else:
        patterns = tuple(collapse)
    if not all(isinstance(p, str) and p for p in patterns):
        raise ReportError("collapse takes True, False or file patterns such as "
                          "'*/site-packages/*', not %r" % (collapse,))

    def is_library(f):
        if f.kind != "python":
            return True  # C functions belong to whatever called them
        return any(fnmatch.fnmatchcase(f.filename, p) for p in patterns)
    return is_library


_INSTALLED = re.compile(r"/(?:site|dist)-packages/([^/]+)")
_STDLIB = re.compile(r"/lib/python3[^/]*/([^/]+)")


def library_name(f):
    """What a hidden frame belongs to, as a person names it: the package of
    an installed or standard module (``json``, ``django``), ``<built-in>``
    for C functions, else the file's directory."""
    if f.kind != "python":
        return "<built-in>"
    path = f.filename or ""
    if path.startswith("<frozen "):
        return path[len("<frozen "):].rstrip(">").split(".")[0]
    m = _INSTALLED.search(path) or _STDLIB.search(path)
    if m:
        return m.group(1).removesuffix(".py")
    head = path.rsplit("/", 2)
    return head[-2] if len(head) > 1 and head[-2] else path


def unique_paths(paths):
    """{path: the shortest trailing part of it (whole components) that no
    other path of paths ends with; a package's ``__init__.py`` or
    ``__main__.py`` keeps its directory, which is what names it}."""
    comps = {p: p.split("/") for p in set(paths) if p}
    seen = collections.Counter()
    for parts in comps.values():
        for k in range(1, len(parts) + 1):
            seen["/".join(parts[-k:])] += 1
    out = {}
    for p, parts in comps.items():
        out[p] = p
        least = 2 if parts[-1] in ("__init__.py", "__main__.py") else 1
        for k in range(min(least, len(parts)), len(parts) + 1):
            s = "/".join(parts[-k:])
            if seen[s] == 1:
                out[p] = s
                break
    return out


def _tree_of(trace, thread):
    """The shared call tree (one node per function under each parent) and
    the node whose children are the top of the report: the root, or one
    thread's pseudo-root."""
    if thread is None:
        return _model.call_tree(trace).by_function(), 0
    tid = trace._thread_arg(thread)  # a clear error for a thread not there
    # Merging a sampling tree's lines renumbers it: the roots are the merged
    # tree's.
    tree = _model.call_tree(trace, split_threads=True).by_function()
    top = dict((t.id, top) for t, top in _model.thread_roots(tree))[tid]
    return tree, top


# What metric= may say of a deterministic trace's tree, and the clock it means.
DET_METRICS = {"wall": "wall", "wall_cum": "wall", "wall_own": "wall",
                "cpu": "cpu", "cpu_cum": "cpu", "cpu_own": "cpu"}


def _columns(trace, tree, clock, metric):
    """(inclusive weights, own weights, their unit, counts per node and
    their name) for the report's measure."""
    if trace.mode == "deterministic":
        if metric is not None:
            # One option for one thing: metric= names the clock here.
            clock = DET_METRICS.get(metric)
            if clock is None:
                raise ReportError(
                    "metric=%r is not a measure of this deterministic trace's tree: give wall "
                    "or cpu (its columns are %s)"
                    % (metric, ", ".join(c.name for c in tree.columns)))
        if clock not in ("wall", "cpu"):
            raise ReportError("clock=%r must be 'wall' or 'cpu'" % (clock,))
        cum = tree.measured.get("%s_cum" % clock) or [0] * len(tree)
        own = tree.values[tree.column("%s_own" % clock)]
        return cum, own, "ns", tree.values[tree.column("calls")], "calls"
    if metric is not None:
        units = {c.name: c.unit for c in tree.columns}
        if metric not in units:
            raise ReportError("metric=%r: no such column in this %s trace; its columns are %s"
                              % (metric, trace.mode, ", ".join(units)))
        col = tree.column(metric)
        return tree.inclusive(col), tree.values[col], units[metric], None, None
    kinds = trace.sample_kinds
    if not kinds:
        raise ReportError("this trace has no samples to weigh the tree by")
    count = tree.column(trace.metrics[kinds[0].count_metric].name)
    weight = tree.column(trace.metrics[kinds[0].weight_metric].name)
    unit = tree.columns[weight].unit
    if unit not in ("ns", "bytes"):
        weight = count  # events: the samples are the measure
        unit = "samples"
    return (tree.inclusive(weight), tree.values[weight], unit, tree.inclusive(count),
            "samples")


class _Row:
    """One printed row: its cells, so that it can be cut to a width and
    coloured."""
    __slots__ = ("share", "value", "count", "guide", "name", "where", "note")

    def __init__(self, share, value, count, guide, name, where="", note=""):
        self.share, self.value, self.count = share, value, count
        self.guide, self.name, self.where, self.note = guide, name, where, note


def _fmt(value, unit):
    if unit == "samples":
        return "%d" % value
    return _model.format_value(value, unit)


def render(trace, thread=None, clock="wall", min_percent=0.5, max_depth=40, header=True,
           color=False, collapse=True, metric=None, width=None, top=10, unicode=True,
           **options):
    """The report as a string."""
    if options:
        raise ReportError("the tree format takes no option %s"
                          % ", ".join(repr(k) for k in sorted(options)))
    if not isinstance(min_percent, (int, float)) or not 0 <= min_percent <= 100:
        raise ReportError("min_percent must be a percentage from 0 to 100, not %r"
                          % (min_percent,))
    if width is not None and (isinstance(width, bool) or not isinstance(width, int)
                              or width < 40):
        raise ReportError("width must be a number of columns, at least 40, not %r" % (width,))
    if isinstance(top, bool) or not isinstance(top, int) or top < 0:
        raise ReportError("top must be a number of functions (0: none), not %r" % (top,))
    tree, root = _tree_of(trace, thread)
    weights, owns, unit, counts, count_name = _columns(trace, tree, clock, metric)
    if trace.mode == "deterministic" and metric is not None:
        clock, metric = DET_METRICS[metric], None
    funcs, func, parent = tree.funcs, tree.func, tree.parent
    hidden = {}  # shown node -> Counter of the library frames hidden under it
    if collapse is not False and collapse is not None:
        is_library = _library_test(collapse)
        # hyprof's own frames ("[gc] generation 0", "<lock created at ...>",
        # "<raise KeyError>") are what a report is read for: never hidden.
        lib_func = [f.kind != "special" and is_library(f) for f in funcs]
        python = [f.kind in ("python", "special") for f in funcs]
        raw = tree.children
        cache = {}

        def shown_kids(i):
            """What takes the place of node i's children: under a library
            frame, library frames are hidden (and counted) and their
            children take their place; under the program's own code, so
            are the C functions that only pass a call through (sum() of a
            generator, max() with a key: under a twentieth of their time
            their own): the program's code they call comes right under the
            code that called them."""
            kids = cache.get(i)
            if kids is not None:
                return kids
            in_lib = i != root and lib_func[func[i]]
            kids, names, todo = [], collections.Counter(), list(reversed(raw[i]))
            while todo:
                c = todo.pop()
                fc = func[c]
                if in_lib and lib_func[fc]:
                    names[library_name(funcs[fc])] += 1
                elif not in_lib and not python[fc] and raw[c] and owns[c] * 20 < weights[c]:
                    pass  # a C function passing the call through, with next to no time of its own
                else:
                    kids.append(c)
                    continue
                todo.extend(reversed(raw[c]))
            if names:
                hidden[i] = names
            cache[i] = kids
            return kids
    else:
        def shown_kids(i):
            return tree.children[i]
    if trace.mode == "deterministic":
        total = sum(weights[c] for c in shown_kids(root))
    else:
        total = weights[root]
    if not total:
        return (summary(trace) + "\n\n" if header else "") + (
            "nothing to show: no call was recorded\n" if trace.mode == "deterministic" else
            "nothing to show: no sample was taken (the run was shorter than the sampling "
            "period, or its threads did not run; a higher frequency, or wall-clock "
            "sampling, takes more)\n")
    short = unique_paths(f.filename for f in funcs if f.kind == "python")

    def where(f):
        if f.kind != "python" or not f.filename:
            return ""
        return "%s:%d" % (short.get(f.filename, f.filename), f.lineno)

    def note(i):
        out = []
        if i in hidden:
            n = sum(hidden[i].values())
            names = [k for k, _ in hidden[i].most_common()]
            out.append("[%d frame%s hidden: %s]" % (
                n, "" if n == 1 else "s",
                ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")))
        if clock == "wall" and unit == "ns" and longer_than_run(trace, weights[i] * 1e-9):
            out.append(OVERLAP_MARK)
            overlaps.append(i)
        return "  ".join(out)

    first, last, down, blank = _GUIDES[bool(unicode)]
    overlaps = []
    rows = []
    cut = min_percent

    def share(v):
        return 100.0 * v / total

    # Depth-first, heaviest child first: (node or a marker, prefix, is last).
    def kids_of(i):
        """The entries under node i: shown children, [self], the rest summed."""
        kids = sorted(shown_kids(i), key=lambda c: -weights[c])
        # Paths that weigh nothing (another thread's, another kind's) are
        # not shown at any threshold.
        big = [("node", c) for c in kids if weights[c] and share(weights[c]) >= cut]
        small = [c for c in kids if weights[c] and share(weights[c]) < cut]
        entries = list(big)
        if big or small:
            # The node's own part beside its children, when it is a part
            # worth reading: over the threshold, and a twentieth of the node.
            self_part = weights[i] - sum(weights[c] for c in kids)
            if big and self_part > 0 and share(self_part) >= cut and \
                    self_part * 20 >= weights[i]:
                entries.append(("self", self_part))
                entries.sort(key=lambda e: -(weights[e[1]] if e[0] == "node" else e[1]))
        # The small ones are a line when they add up to something worth
        # reading; else they are noise (their time is in the row above).
        rest = sum(weights[c] for c in small)
        if small and share(rest) >= cut:
            entries.append(("more", (len(small), rest)))
        return entries

    stack = [(("node", c), "", True, 0) for c in reversed(
        [c for c in sorted(shown_kids(root), key=lambda c: -weights[c])
         if weights[c] and share(weights[c]) >= cut])]
    tops_small = [c for c in shown_kids(root) if weights[c] and share(weights[c]) < cut]
    while stack:
        (kind, x), prefix, is_last, depth = stack.pop()
        guide = "" if depth == 0 else prefix + (last if is_last else first)
        if kind == "self":
            rows.append(_Row(share(x), _fmt(x, unit), "", guide, "[self]"))
            continue
        if kind == "more":
            n, v = x
            rows.append(_Row(None, "", "", guide, "... %d more, each under %g%% (%.1f%% in all)"
                             % (n, min_percent, share(v))))
            continue
        i = x
        f = funcs[func[i]]
        deeper = _recursion_below(i, func, parent, tree.children, root)
        entries = kids_of(i) if not deeper else []  # before note(): it finds what is hidden
        extra = note(i)
        if deeper:
            extra = (extra + "  " if extra else "") + "[recursion: %d deeper level%s folded " \
                "in]" % (deeper, "" if deeper == 1 else "s")
        rows.append(_Row(share(weights[i]), _fmt(weights[i], unit),
                         "%d" % counts[i] if counts is not None else "", guide, f.name,
                         where(f), extra))
        if not entries:
            continue
        below = "" if depth == 0 else prefix + (blank if is_last else down)
        if depth + 1 >= max_depth:
            n = len(shown_kids(i))
            rows.append(_Row(None, "", "", below + last, "... %d call path%s below, beyond "
                             "depth %d" % (n, "" if n == 1 else "s", max_depth)))
            continue
        for k, e in reversed(list(enumerate(entries))):
            stack.append((e, below, k == len(entries) - 1, depth + 1))
    if tops_small:
        rows.append(_Row(None, "", "", "", "... %d more, each under %g%%" % (len(tops_small),
                                                                         min_percent)))
    out = []
    if header:
        out.append(summary(trace))
        out.append("")
    measure = {"ns": "time", "bytes": "bytes", "samples": "samples"}.get(unit, unit)
    what = ("%s %s" % (clock, "time") if trace.mode == "deterministic" else
            (metric or trace.sample_kinds[0].name))
    vw = max([len(r.value) for r in rows] + [len(measure)])
    cw = max([len(r.count) for r in rows] + [len(count_name or "")])
    out.append(_line(_Row(None, measure.rjust(vw), (count_name or "").rjust(cw), "",
                          "call tree, by %s (%s in all)" % (what, _fmt(
                              total if trace.mode == "deterministic" else weights[root],
                              unit))), vw, cw, width, color, heading=True, unicode=unicode))
    for r in rows:
        out.append(_line(r, vw, cw, width, color, unicode=unicode))
    if overlaps:
        out.append(OVERLAP_NOTE)
    if top:
        out.append("")
        out.extend(_top_functions(tree, funcs, func, owns, counts is not None and
                                  trace.mode == "deterministic", unit, total, where, top,
                                  width, color, what, root, unicode))
    return "\n".join(out) + "\n"


def _recursion_below(i, func, parent, children, root, shown=2):
    """For a node whose function is already open ``shown`` times above it
    (the third level of a recursion), the number of deeper levels of it in
    its subtree, whose rows it stands for; else 0. The rest of a deep
    recursion would repeat the same rows, ever narrower: its time is in
    this row, and the functions it ran are in the list after the tree."""
    f, above, p = func[i], 0, parent[i]
    while p != root and p > 0:
        above += func[p] == f
        p = parent[p]
    if above < shown:
        return 0
    deepest, todo = 0, [(c, 0) for c in children[i]]
    while todo:
        c, d = todo.pop()
        d += func[c] == f
        deepest = max(deepest, d)
        todo.extend((k, d) for k in children[c])
    return deepest


def _line(r, vw, cw, width, color, heading=False, unicode=True):
    pct = "%6.1f%%" % r.share if r.share is not None else "       "
    if heading:
        pct = "      %"
    head = "%s  %s  %s  " % (pct, r.value.rjust(vw), r.count.rjust(cw))
    tail = [(r.guide, ""), (r.name, _BOLD if not heading else _BOLD),
            ("  " + r.where if r.where else "", _DIM),
            ("  " + r.note if r.note else "", _DIM)]
    if width is not None:
        room = width - len(head)
        cut = []
        for text, style in tail:
            if room <= 0:
                break
            if len(text) > room:
                more = "…" if unicode else "..."
                text = text[:max(room - len(more), 0)] + more
            cut.append((text, style))
            room -= len(text)
        tail = cut
    if not color:
        return (head + "".join(t for t, _ in tail)).rstrip()
    start = _BOLD if heading else (_heat(r.share) if r.share is not None else _DIM)
    return (start + head + _RESET + "".join(
        (style + t + _RESET) if style and t else t for t, style in tail))


def _top_functions(tree, funcs, func, owns, det, unit, total, where, n, width, color, what,
                   root, unicode):
    """The n functions with the most own weight, over the report's part of
    the tree."""
    own = collections.Counter()
    calls = collections.Counter()
    callcol = tree.values[tree.column("calls")] if det else None
    inside = [False] * len(tree)
    inside[root] = True
    for i in range(1, len(tree)):
        if inside[tree.parent[i]]:
            inside[i] = True
            own[func[i]] += owns[i]
            if callcol is not None:
                calls[func[i]] += callcol[i]
    best = [(v, k) for k, v in own.items() if v > 0]
    best.sort(key=lambda x: -x[0])
    best = best[:n]
    if not best:
        return []
    vals = [_fmt(v, unit) for v, _ in best]
    vw = max(len(v) for v in vals + ["own"])
    cw = max([len("%d" % calls[k]) for _, k in best] + [5]) if det else 0
    heading = _Row(None, "own".rjust(vw), "calls".rjust(cw) if det else "", "",
                   "functions by own %s" % (what,))
    out = [_line(heading, vw, cw, width, color, heading=True, unicode=unicode)]
    for (v, k), s in zip(best, vals):
        f = funcs[k]
        out.append(_line(_Row(100.0 * v / total, s, ("%d" % calls[k]) if det else "", "",
                              f.name, where(f)), vw, cw, width, color, unicode=unicode))
    return out
