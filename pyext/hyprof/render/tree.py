"""The console call tree: each call path with its share of the total.

Deterministic traces weigh a node by its cumulative wall time (or CPU time
with ``clock="cpu"``) and show its calls; sampling traces by its inclusive
samples. Children are sorted heaviest first; nodes under ``min_percent`` of
the total are summed into one "(n more)" line, and depth stops at
``max_depth``.
"""

from ._model import ReportError
from .text import short_location, summary


def _weights(trace, nodes, clock):
    n = len(nodes)
    if trace.mode == "deterministic":
        col = "%s_cum" % clock
        if clock not in ("wall", "cpu"):
            raise ReportError("clock=%r must be 'wall' or 'cpu'" % (clock,))
        return [nd.values.get(col, 0) for nd in nodes], "s"
    kinds = trace.sample_kinds
    if not kinds:
        raise ReportError("this trace has no samples to weigh the tree by")
    name = trace.metrics[kinds[0].count_metric].name
    w = [nd.values.get(name, 0) for nd in nodes]
    for i in range(n - 1, 0, -1):  # parents come before children
        w[nodes[i].parent] += w[i]
    return w, "samples"


def render(trace, thread=None, clock="wall", min_percent=0.5, max_depth=40, header=True,
           **options):
    """The tree as a string."""
    if options:
        raise ReportError("the tree format takes no option %s"
                          % ", ".join(repr(k) for k in sorted(options)))
    nodes = trace.nodes(thread)
    weights, unit = _weights(trace, nodes, clock)
    children = [[] for _ in nodes]
    for nd in nodes[1:]:
        children[nd.parent].append(nd.id)
    if trace.mode == "deterministic":
        total = sum(weights[c] for c in children[0])
    else:
        total = weights[0]
    total = total or 1
    out = []
    if header:
        out.append(summary(trace))
        out.append("")
    if trace.mode == "deterministic":
        def what(i):
            return "%6.2f%% %10.6f s %8d calls" % (
                100.0 * weights[i] / total, weights[i] * 1e-9, nodes[i].values.get("calls", 0))
    else:
        def what(i):
            return "%6.2f%% %10d %s" % (100.0 * weights[i] / total, weights[i], unit)
    pad = " " * len(what(0))
    # (node id, depth), or (-count, depth) for a line folding small siblings.
    stack = [(c, 0) for c in sorted(children[0], key=lambda c: weights[c])]
    while stack:
        i, depth = stack.pop()
        if i < 0:
            out.append("%s %s(%d more, each under %.1f%%)" % (pad, "  " * depth, -i,
                                                               min_percent))
            continue
        f = nodes[i].function
        out.append("%s %s%s  %s" % (what(i), "  " * depth, f.name, short_location(f)))
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
    return "\n".join(out) + "\n"
