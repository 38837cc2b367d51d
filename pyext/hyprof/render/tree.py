"""The console call tree: each call path with its share of the total.

Deterministic traces weigh a node by its cumulative wall time (or CPU time
with ``clock="cpu"``) and show its calls; sampling traces by its inclusive
samples. Children are sorted heaviest first; nodes under ``min_percent`` of
the total are summed into one "(n more)" line, and depth stops at
``max_depth``. ``color`` adds ANSI colours (the CLI turns it on for a
terminal, never for a pipe or a file); ``collapse`` hides library internals:
frames of library files called from library frames (the standard library,
site-packages, frozen modules, C functions; or files matching the given
patterns), so a call into a library shows as one line and the user code it
calls back comes right under it.
"""

import fnmatch

from ..errors import ReportError
from . import _model
from .text import OVERLAP_MARK, OVERLAP_NOTE, longer_than_run, short_location, summary


def _weights(trace, tree, clock, metric=None):
    if trace.mode == "deterministic":
        if metric is not None:
            raise ReportError("metric= weighs a sampling trace's tree; a deterministic one is "
                              "weighed by clock='wall' or 'cpu'")
        if clock not in ("wall", "cpu"):
            raise ReportError("clock=%r must be 'wall' or 'cpu'" % (clock,))
        col = "%s_cum" % clock
        return tree.measured.get(col) or [0] * len(tree), "s"
    if metric is not None:
        units = {m.name: m.unit for m in trace.metrics}
        if metric not in units:
            raise ReportError("metric=%r is not a column of this trace: choose one of %s"
                              % (metric, ", ".join(units)))
        return tree.inclusive(tree.column(metric)), units[metric]
    kinds = trace.sample_kinds
    if not kinds:
        raise ReportError("this trace has no samples to weigh the tree by")
    return tree.inclusive(tree.column(trace.metrics[kinds[0].count_metric].name)), "samples"


def _tree_of(trace, thread):
    """The shared call tree and the node whose children are the top of the
    report: the root, or one thread's pseudo-root."""
    if thread is None:
        return _model.call_tree(trace), 0
    tid = trace._thread_arg(thread)  # a clear error for a thread not there
    tree = _model.call_tree(trace, split_threads=True)
    return tree, dict((t.id, top) for t, top in _model.thread_roots(tree))[tid]


# Where library code lives, wherever the trace was made.
LIBRARY_PATTERNS = ("*/lib/python3*/*", "*/site-packages/*", "*/dist-packages/*", "<frozen *")

# ANSI styles: share of the total >= 20% red, >= 5% yellow, else green.
_RESET, _BOLD, _DIM = "\x1b[0m", "\x1b[1m", "\x1b[2m"


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
        raise ReportError("collapse takes True or file patterns such as '*/site-packages/*',"
                          " not %r" % (collapse,))

    def is_library(f):
        if f.kind != "python":
            return True  # C functions belong to whatever called them
        return any(fnmatch.fnmatchcase(f.filename, p) for p in patterns)
    return is_library


def render(trace, thread=None, clock="wall", min_percent=0.5, max_depth=40, header=True,
           color=False, collapse=None, metric=None, **options):
    """The tree as a string. A sampling trace's is weighed by its first
    sample kind's samples, or by the column metric names (lock_wait_ns,
    alloc_bytes, ...)."""
    if options:
        raise ReportError("the tree format takes no option %s"
                          % ", ".join(repr(k) for k in sorted(options)))
    if not isinstance(min_percent, (int, float)) or not 0 <= min_percent <= 100:
        raise ReportError("min_percent must be a percentage from 0 to 100, not %r"
                          % (min_percent,))
    tree, top = _tree_of(trace, thread)
    weights, unit = _weights(trace, tree, clock, metric)
    funcs, func = tree.funcs, tree.func
    parent = tree.parent
    children = [list(k) for k in tree.children]
    folded = [0] * len(tree)  # library frames folded into each shown frame
    if collapse:
        is_library = _library_test(collapse)
        lib = [False] + [is_library(funcs[func[i]]) for i in range(1, len(tree))]
        lib[top] = False
        # A library frame called from a library frame is hidden: its
        # children take its place, recursively.
        for i in range(1, len(tree)):
            if not lib[i] or lib[parent[i]] or not children[i]:
                continue  # only a library's entry frames gather hidden ones
            shown, todo = [], list(children[i])
            while todo:
                c = todo.pop()
                if lib[c]:
                    folded[i] += 1
                    todo.extend(children[c])
                else:
                    shown.append(c)
            children[i] = shown
    if trace.mode == "deterministic":
        total = sum(weights[c] for c in children[top])
    else:
        total = weights[top]
    total = total or 1
    out = []
    if header:
        out.append(summary(trace))
        out.append("")
    if trace.mode == "deterministic":
        calls = tree.values[tree.column("calls")]

        def what(i):
            return "%6.2f%% %10.6f s %8d calls" % (
                100.0 * weights[i] / total, weights[i] * 1e-9, calls[i])
    else:
        def what(i):
            if unit in ("ns", "bytes"):
                return "%6.2f%% %12s" % (100.0 * weights[i] / total,
                                         _model.format_value(weights[i], unit))
            return "%6.2f%% %10d %s" % (100.0 * weights[i] / total, weights[i], unit)
    pad = " " * len(what(0))

    overlaps = []

    def line(i, depth):
        f = funcs[func[i]]
        more = "  [+%d library frames]" % folded[i] if folded[i] else ""
        if clock == "wall" and longer_than_run(trace, weights[i] * 1e-9):
            more += "  " + OVERLAP_MARK
            overlaps.append(i)
        if not color:
            return "%s %s%s  %s%s" % (what(i), "  " * depth, f.name, short_location(f), more)
        return "%s%s%s %s%s%s%s  %s%s%s%s" % (
            _heat(100.0 * weights[i] / total), what(i), _RESET, "  " * depth, _BOLD, f.name,
            _RESET, _DIM, short_location(f), more, _RESET)
    # (node id, depth), or (-count, depth) for a line folding small siblings.
    stack = [(c, 0) for c in sorted(children[top], key=lambda c: weights[c])]
    while stack:
        i, depth = stack.pop()
        if i < 0:
            out.append("%s %s(%d more, each under %.1f%%)" % (pad, "  " * depth, -i,
                                                               min_percent))
            continue
        out.append(line(i, depth))
        if not children[i]:
            continue
        if depth + 1 >= max_depth:
            out.append("%s %s(%d children beyond depth %d)" % (
                pad, "  " * (depth + 1), len(children[i]), max_depth))
            continue
        kids = sorted(children[i], key=lambda c: weights[c])
        small = [c for c in kids if 100.0 * weights[c] / total < min_percent]
        if small:
            stack.append((-len(small), depth + 1))
        stack.extend((c, depth + 1) for c in kids if 100.0 * weights[c] / total >= min_percent)
    if overlaps:
        out.append(OVERLAP_NOTE)
    return "\n".join(out) + "\n"
