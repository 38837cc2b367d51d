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


def _calls(n, primitive):
    return f"{n}/{primitive} calls" if n != primitive else f"{n} calls"


def render(trace, metric=None, threshold=0.5, edge_threshold=0.1, title=None, **options):
    """Dot text. ``threshold``/``edge_threshold``: percentages below which
    functions and edges are left out. The numbers are the trace's own
    per-function and per-edge totals (``trace.functions()``,
    ``trace.edges()``); each box's tooltip gives them exactly."""
    _model.reject_options("dot", options)
    tree = _model.call_tree(trace)
    for name, v in (("threshold", threshold), ("edge_threshold", edge_threshold)):
        if not isinstance(v, (int, float)) or not 0 <= v <= 100:
            raise _model.ReportError(f"{name} must be a percentage between 0 and 100, not {v!r}")
    col = tree.column(metric) if metric else tree.default_column()
    column = tree.columns[col]
    calls_col = next((i for i, c in enumerate(tree.columns) if c.name == "calls"), None)
    # The edges' aggregation first: it gives the functions' totals too.
    packed = trace._edge_columns(None)
    owns, cums = _model.function_totals(trace, tree)
    own, cum = owns[col], cums[col]
    total = tree.inclusive(col)[0]
    denom = float(total) or 1.0
    funcs = tree.funcs
    keep = {f for f in range(len(funcs)) if (cum[f] or own[f])
            and 100.0 * cum[f] / denom >= threshold}
    # Only edges between functions shown are added up.
    edges = _model.edge_totals(trace, tree, col, keep=keep, packed=packed)
    del packed

    if title is None:
        prog = _model.program(getattr(trace, "header", {}) or {})
        title = (f"hyprof call graph{' of ' + prog if prog else ''}: {column.label}, total"
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
        lines.append(f"self {100.0 * own[f] / denom:.2f}%")
        tip = [f"{fn.name} {fn.filename}:{fn.lineno}" if fn.filename else fn.name,
               f"total {cum[f]} {column.unit}", f"self {own[f]} {column.unit}"]
        if calls_col is not None:
            lines.append(_calls(owns[calls_col][f], cums[calls_col][f]))
            tip.append(lines[-1])
        tooltip = "\n".join(tip)
        label = _quote("\n".join(lines))
        out.append(f"  f{f} [label={label}, tooltip={_quote(tooltip)},"
                   f" fillcolor={_quote(_color(fr))}, fontsize={10 + 14 * fr ** 0.5:.1f},"
                   f" penwidth={0.5 + 3 * fr:.2f}];")
    for (a, b), (n, v) in sorted(edges.items(), key=lambda e: -e[1][1]):
        fr = v / denom
        # An edge that holds none of the metric (a call whose CPU time
        # rounded to nothing) says nothing: left out even at threshold 0.
        if not v or 100.0 * fr < edge_threshold:
            continue
        label = "%.2f%%" % (100 * fr)
        if calls_col is not None:
            label += f"\n{n}\u00d7"
        color = _quote(_color(fr))
        tip = _quote(f"{funcs[a].name} -> {funcs[b].name}\ntotal {v} {column.unit}")
        out.append(f"  f{a} -> f{b} [label={_quote(label)}, tooltip={tip}, color={color},"
                   f" fontcolor={color}, penwidth={0.5 + 4 * fr:.2f},"
                   f" arrowsize={0.5 + 0.5 * fr:.2f}];")
    out.append("}")
    return "\n".join(out) + "\n"


