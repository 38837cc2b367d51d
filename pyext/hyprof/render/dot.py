"""A call graph in Graphviz's dot language (render with ``dot -Tsvg``).

Functions are nodes, sized and coloured by their inclusive share of the
metric (blue cold to red hot, as gprof2dot does); edges carry the call count
and the callee's inclusive share on that edge. Functions under
``threshold`` percent of the total and edges under ``edge_threshold`` percent
are pruned, so the graph shows where the time went rather than everything
that ran.
"""

from . import _model


def _quote(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _color(frac):
    """gprof2dot's temperature scale: hue from blue (cold) to red (hot)."""
    frac = min(max(frac, 0.0), 1.0)
    hue = (2.0 / 3.0) * (1.0 - frac ** 0.5)
    sat, val = 0.9, 0.75 + 0.2 * frac
    return "%.3f %.3f %.3f" % (hue, sat, val)


def render_tree(tree, metric=None, threshold=0.5, edge_threshold=0.1, title=None):
    for name, v in (("threshold", threshold), ("edge_threshold", edge_threshold)):
        if not isinstance(v, (int, float)) or not 0 <= v <= 100:
            raise _model.ReportError("%s must be a percentage between 0 and 100, not %r"
                                     % (name, v))
    col = tree.column(metric) if metric else tree.default_column()
    column = tree.columns[col]
    calls_col = next((i for i, c in enumerate(tree.columns) if c.name == "calls"), None)
    own, cum = tree.function_totals(col)
    ncalls = tree.function_totals(calls_col)[0] if calls_col is not None else None
    edges = tree.edge_totals(col, calls_col)
    total = tree.inclusive(col)[0]
    denom = float(total) or 1.0
    keep = {f for f, v in cum.items() if 100.0 * v / denom >= threshold}
    funcs = tree.funcs

    if title is None:
        title = ("hyprof call graph: %s, total %s (functions under %g%% and edges under %g%%"
                 " pruned)" % (column.label, _model.format_value(total, column.unit),
                               threshold, edge_threshold))
    out = ["digraph hyprof {",
           '  graph [fontname="Helvetica", nodesep=0.25, ranksep=0.35, label=%s, labelloc=t];'
           % _quote(title),
           '  node [shape=box, style="filled,rounded", fontname="Helvetica", fontcolor=white];',
           '  edge [fontname="Helvetica"];']
    for f in sorted(keep, key=lambda f: -cum[f]):
        fr = cum[f] / denom
        fn = funcs[f]
        lines = [fn.name]
        if fn.filename:
            lines.append("%s:%d" % (fn.filename.rsplit("/", 1)[-1], fn.lineno))
        lines.append("%.2f%% (%s)" % (100 * fr, _model.format_value(cum[f], column.unit)))
        lines.append("self %.2f%%" % (100.0 * own.get(f, 0) / denom))
        if ncalls is not None:
            lines.append("%d calls" % ncalls.get(f, 0))
        tooltip = "%s %s:%d" % (fn.name, fn.filename, fn.lineno) if fn.filename else fn.name
        out.append("  f%d [label=%s, tooltip=%s, fillcolor=%s, fontsize=%.1f, penwidth=%.2f];"
                   % (f, _quote("\n".join(lines)), _quote(tooltip), _quote(_color(fr)),
                      10 + 14 * fr ** 0.5, 0.5 + 3 * fr))
    for (a, b), (n, v) in sorted(edges.items(), key=lambda e: -e[1][1]):
        if a not in keep or b not in keep:
            continue
        fr = v / denom
        if 100.0 * fr < edge_threshold:
            continue
        label = "%.2f%%" % (100 * fr)
        if calls_col is not None:
            label += "\n%d\u00d7" % n
        out.append("  f%d -> f%d [label=%s, color=%s, fontcolor=%s, penwidth=%.2f,"
                   " arrowsize=%.2f];"
                   % (a, b, _quote(label), _quote(_color(fr)), _quote(_color(fr)),
                      0.5 + 4 * fr, 0.5 + 0.5 * fr))
    out.append("}")
    return "\n".join(out) + "\n"


def render(trace, metric=None, threshold=0.5, edge_threshold=0.1, **options):
    """Dot text. ``threshold``/``edge_threshold``: percentages below which
    functions and edges are left out."""
    _model.reject_options("dot", options)
    return render_tree(_model.from_trace(trace), metric, threshold, edge_threshold)
