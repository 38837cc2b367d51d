"""The callgrind profile format, for KCachegrind, QCachegrind and
callgrind_annotate (https://valgrind.org/docs/manual/cl-format.html).

Positions are source lines. Each function's own cost is written per line
(the executing line in the sampling mode, the function's first line in the
deterministic mode), each call as ``cfn=`` + ``calls=`` with the callee's
inclusive cost on that call site. A callee's inclusive cost is counted once
per outermost call, so a recursive function's inclusive cost is not doubled
(as KCachegrind's cycle detection would otherwise have to undo).
"""

import re

from . import _model

_UNIT_SUFFIX = {"ns": "ns", "us": "us", "bytes": "bytes"}


def _event_name(col):
    base = {"wall": "Wall", "cpu": "CPU"}.get(col.label, col.label)
    base = re.sub(r"[^A-Za-z0-9_]", "_", base)
    suffix = _UNIT_SUFFIX.get(col.unit)
    return f"{base}_{suffix}" if suffix else base


def _fn_name(f):
    name = f.name.replace("\n", " ")
    if f.kind == "python" and f.lineno:
        return f"{name}:{f.lineno}"
    return name


def render(trace, **options):
    """Callgrind text with every cost column of the trace (call counts go to
    ``calls=`` lines; a sampling trace has none, so ``calls=`` counts the
    distinct call paths)."""
    _model.reject_options("callgrind", options)
    tree = _model.from_trace(trace)
    cols = [i for i, c in enumerate(tree.columns) if c.name != "calls"]
    if not cols:
        raise _model.ReportError("the trace has no cost columns for callgrind")
    calls_col = next((i for i, c in enumerate(tree.columns) if c.name == "calls"), None)
    ncol = len(cols)
    vals = [tree.values[c] for c in cols]
    incs = [tree.inclusive(c) for c in cols]
    calls_of = tree.values[calls_col] if calls_col is not None else None
    func, line, parent, outer = tree.func, tree.line, tree.parent, tree.outer
    funcs = tree.funcs
    first = [f.lineno for f in funcs]
    pos = [line[i] or (first[func[i]] if i else 0) for i in range(len(func))]
    cidx = range(ncol)

    # selfcost[f][line] -> costs; calls[f][(line, callee, callee line)] -> [n, costs]
    selfcost = {}
    calls = {}
    for i in range(1, len(func)):
        f = func[i]
        ln = pos[i]
        per_line = selfcost.get(f)
        if per_line is None:
            per_line = selfcost[f] = {}
        lc = per_line.get(ln)
        if lc is None:
            lc = per_line[ln] = [0] * ncol
        for c in cidx:
            lc[c] += vals[c][i]
        p = parent[i]
        if p > 0:
            pf = func[p]
            key = (pos[p], f, first[f] or ln)
            per_caller = calls.get(pf)
            if per_caller is None:
                per_caller = calls[pf] = {}
            ec = per_caller.get(key)
            if ec is None:
                ec = per_caller[key] = [0, [0] * ncol]
            ec[0] += calls_of[i] if calls_of is not None else 1
            if outer[i]:
                cost = ec[1]
                for c in cidx:
                    cost[c] += incs[c][i]

    header = tree.header
    events = " ".join(_event_name(tree.columns[c]) for c in cols)
    totals = " ".join(str(incs[c][0]) for c in range(ncol))
    out = ["# callgrind format", "version: 1", "creator: hyprof"]
    if header.get("pid") is not None:
        out.append(f"pid: {header['pid']}")
    argv = header.get("argv")
    if argv:
        out.append("cmd: " + " ".join(str(a) for a in argv).replace("\n", " "))
    out += ["part: 1", "positions: line", f"events: {events}", f"summary: {totals}", ""]

    # Name compression: each file and function name is written once in full.
    file_ids, fn_ids = {}, {}

    def fl(name):
        j = file_ids.get(name)
        if j is None:
            j = file_ids[name] = len(file_ids) + 1
            return f"({j}) {name or '<built-in>'}"
        return f"({j})"

    def fn(f):
        j = fn_ids.get(f)
        if j is None:
            j = fn_ids[f] = len(fn_ids) + 1
            return f"({j}) {_fn_name(funcs[f])}"
        return f"({j})"

    for f in sorted(selfcost, key=lambda f: (funcs[f].filename, funcs[f].lineno, f)):
        out.append("fl=" + fl(funcs[f].filename))
        out.append("fn=" + fn(f))
        for ln, cost in sorted(selfcost[f].items()):
            out.append(f"{ln} {' '.join(map(str, cost))}")
        for (ln, g, gline), (n, cost) in sorted(calls.get(f, {}).items()):
            out.append("cfi=" + fl(funcs[g].filename))
            out.append("cfn=" + fn(g))
            out.append(f"calls={n} {gline}")
            out.append(f"{ln} {' '.join(map(str, cost))}")
        out.append("")
    out.append(f"totals: {totals}")
    return "\n".join(out) + "\n"
