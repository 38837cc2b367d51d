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
    escaped = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _color(frac):
    """gprof2dot's temperature scale: hue from blue (cold) to red (hot)."""
    frac = min(max(frac, 0.0), 1.0)
    hue = (2.0 / 3.0) * (1.0 - frac ** 0.5)
    sat, val = 0.9, 0.75 + 0.2 * frac
    return f"{hue:.3f} {sat:.3f} {val:.3f}"


def render_tree(tree, metric=None, threshold=0.5, edge_threshold=0.1, title=None):
    for name, v in (("threshold", threshold), ("edge_threshold", edge_threshold)):
        if not isinstance(v, (int, float)) or not 0 <= v <= 100:
            raise _model.ReportError(f"{name} must be a percentage between 0 and 100, not {v!r}")
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
        title = (f"hyprof call graph: {column.label}, total"
                 f" {_model.format_value(total, column.unit)} (functions under {threshold:g}%"
                 f" and edges under {edge_threshold:g}% pruned)")
    out = ["digraph hyprof {",
           ('  graph [fontname="Helvetica", nodesep=0.25, ranksep=0.35,'
            f" label={_quote(title)}, labelloc=t];"),
           '  node [shape=box, style="filled,rounded", fontname="Helvetica", fontcolor=white];',
           '  edge [fontname="Helvetica"];']
    for f in sorted(keep, key=lambda f: -cum[f]):
        fr = cum[f] / denom
        fn = funcs[f]
        lines = [fn.name]
        if fn.filename:
            lines.append(f"{fn.filename.rsplit('/', 1)[-1]}:{fn.lineno}")
        lines.append(f"{100 * fr:.2f}% ({_model.format_value(cum[f], column.unit)})")
        lines.append(f"self {100.0 * own.get(f, 0) / denom:.2f}%")
        if ncalls is not None:
            lines.append(f"{ncalls.get(f, 0)} calls")
        tooltip = f"{fn.name} {fn.filename}:{fn.lineno}" if fn.filename else fn.name
        label = _quote("\n".join(lines))
        out.append(f"  f{f} [label={label}, tooltip={_quote(tooltip)},"
                   f" fillcolor={_quote(_color(fr))}, fontsize={10 + 14 * fr ** 0.5:.1f},"
                   f" penwidth={0.5 + 3 * fr:.2f}];")
    for (a, b), (n, v) in sorted(edges.items(), key=lambda e: -e[1][1]):
        if a not in keep or b not in keep:
            continue
        fr = v / denom
        if 100.0 * fr < edge_threshold:
            continue
        label = "%.2f%%" % (100 * fr)
        if calls_col is not None:
            label += f"\n{n}\u00d7"
        color = _quote(_color(fr))
        out.append(f"  f{a} -> f{b} [label={_quote(label)}, color={color}, fontcolor={color},"
                   f" penwidth={0.5 + 4 * fr:.2f}, arrowsize={0.5 + 0.5 * fr:.2f}];")
    out.append("}")
    return "\n".join(out) + "\n"


def render(trace, metric=None, threshold=0.5, edge_threshold=0.1, **options):
    """Dot text. ``threshold``/``edge_threshold``: percentages below which
    functions and edges are left out."""
    _model.reject_options("dot", options)
    return render_tree(_model.from_trace(trace), metric, threshold, edge_threshold)
