"""The callgrind profile format, for KCachegrind, QCachegrind and
callgrind_annotate (https://valgrind.org/docs/manual/cl-format.html).

Positions are source lines. Each function's own cost is written per line
(the executing line in the sampling mode, the function's first line in the
deterministic mode), each call as ``cfn=`` + ``calls=`` with the callee's
inclusive cost on that call site. Inclusive costs are the trace's own
totals (trace.functions() and trace.edges()), so a recursive function's
inclusive cost is not doubled. Module bodies are named after their module
(``<module myprog>``) and no two functions share a name, so tools that
match functions by name (gprof2dot) keep them apart.
"""

import re

from .. import _progress
from . import _model

_UNIT_SUFFIX = {"ns": "ns", "us": "us", "bytes": "bytes"}


def _event_name(col):
    base = {"wall": "Wall", "cpu": "CPU"}.get(col.label, col.label)
    base = re.sub(r"[^A-Za-z0-9_]", "_", base)
    suffix = _UNIT_SUFFIX.get(col.unit)
    return f"{base}_{suffix}" if suffix else base


def _module_name(filename):
    """A module's name from its file: ``myprog`` for myprog.py, the package
    for its __init__.py, the frozen module's name."""
    if filename.startswith("<frozen ") and filename.endswith(">"):
        return filename[8:-1]
    base = filename.rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if base.endswith((".py", ".pyw", ".pyc")) else base
    if stem == "__init__" and "/" in filename:
        stem = filename.rsplit("/", 2)[-2]
    return stem or filename


def _fn_name(f):
    name = f.name.replace("\n", " ")
    if f.kind == "python" and name == "<module>" and f.filename:
        # Tools that match functions by name (gprof2dot) would make one node
        # of every module body.
        return f"<module {_module_name(f.filename)}>"
    if f.kind == "python" and f.lineno:
        return f"{name}:{f.lineno}"
    return name


def _fn_names(funcs):
    """A name per function, never the same for two: a name shared by
    functions of different files gets the file, a name still shared its
    index."""
    names = [_fn_name(f) for f in funcs]
    for step in (lambda i: f"{names[i]} ({_model.short_path(funcs[i].filename)})",
                 lambda i: f"{names[i]} #{i}"):
        seen = {}
        for i, n in enumerate(names):
            seen.setdefault(n, []).append(i)
        for group in seen.values():
            if len(group) > 1:
                for i in group:
                    names[i] = step(i)
    return names


def _components(graph):
    """{function: its strongly connected component's id} of the call graph
    (Tarjan's algorithm, without recursion): an edge a -> b closes a cycle
    back into b exactly when a and b share a component."""
    index, low, comp = {}, {}, {}
    stack, on_stack = [], set()
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph.get(start, ())))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(graph.get(w, ()))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    u = work[-1][0]
                    low[u] = min(low[u], low[v])
                if low[v] == index[v]:
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp[w] = v
                        if w == v:
                            break
    return comp


def _call_costs(edges, target):
    """{(caller, callee): cost} of one column: each edge's cumulative value
    from the trace's aggregation (trace.edges()). callgrind_annotate gives
    a function the sum of its incoming call costs as its inclusive cost, so
    where recursion makes those add up to more than the function's total
    (``target``, from trace.functions()), the excess comes off the calls
    that close a cycle back into the function; what is left is the
    function's exact total. ``edges``: {(caller, callee): cost}, changed in
    place and returned."""
    incoming, graph = {}, {}
    for (a, b), v in edges.items():
        incoming.setdefault(b, []).append(a)
        graph.setdefault(a, []).append(b)
    comp = None
    for b, callers in incoming.items():
        excess = sum(edges[(a, b)] for a in callers) - target[b]
        if excess == 0:
            continue
        if excess < 0:
            a = max(callers, key=lambda a: edges[(a, b)])
            edges[(a, b)] -= excess
            continue
        if comp is None:
            comp = _components(graph)
        order = sorted(callers, key=lambda a: (comp.get(a) != comp.get(b), -edges[(a, b)]))
        for a in order:
            cut = min(excess, edges[(a, b)])
            edges[(a, b)] -= cut
            excess -= cut
            if not excess:
                break
    return edges


def _split(cost, weights):
    """cost split over call sites in proportion to their weights, exactly."""
    if len(weights) == 1:
        return [cost]
    total = sum(weights)
    if not total:
        return [cost] + [0] * (len(weights) - 1)
    parts = [cost * w // total for w in weights]
    parts[max(range(len(weights)), key=lambda i: weights[i])] += cost - sum(parts)
    return parts


def _per_line(tree, cols, calls_col, first, root):
    """(selfcost, sites, totals) from the nodes of a tree whose nodes carry
    executing lines: selfcost[f][line] -> costs; sites[(f, callee)][(line,
    callee line)] -> [calls, weights of the split]; the costs' totals."""
    ncol, cidx = len(cols), range(len(cols))
    vals = [tree.values[c] for c in cols]
    incs = [tree.inclusive(c) for c in cols]
    calls_of = tree.values[calls_col] if calls_col is not None else None
    func, line, parent = tree.func, tree.line, tree.parent
    pos = [line[i] or (first[func[i]] if i else 0) for i in range(len(func))]
    selfcost = {root: {0: [vals[c][0] for c in cidx]}}
    sites = {}
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
        pf = func[p] if p > 0 else root
        per_edge = sites.get((pf, f))
        if per_edge is None:
            per_edge = sites[(pf, f)] = {}
        key = (pos[p], first[f] or ln)
        site = per_edge.get(key)
        if site is None:
            site = per_edge[key] = [0, [0] * ncol]
        site[0] += calls_of[i] if calls_of is not None else 1
        w = site[1]
        for c in cidx:
            w[c] += incs[c][i]
    return selfcost, sites, [incs[c][0] for c in cidx]


def _per_function(tree, cols, own, by_edge, first, root):
    """The same from the trace's C aggregation, for a tree without lines (a
    deterministic trace: a function's cost is on its first line, a call's on
    its caller's), in time that does not grow with the nodes' Python loop:
    one cost line per function, one call site per edge."""
    selfcost = {root: {0: [tree.values[c][0] for c in cols]}}
    sites = {}
    for (a, b), (n, cum) in by_edge.items():
        a = root if a < 0 else a
        if b not in selfcost:
            selfcost[b] = {first[b]: [own[c][b] for c in cols]}
        sites[(a, b)] = {(first[a] if a != root else 0, first[b]): [n, cum]}
    return selfcost, sites, [sum(tree.values[c]) for c in cols]


def render(trace, **options):
    """Callgrind text with every cost column of the trace (call counts go to
    ``calls=`` lines; a sampling trace has none, so ``calls=`` counts the
    distinct call paths). Self costs come from the call tree; inclusive
    costs, on the call lines, from the trace's own totals, so that
    callgrind_annotate shows every function's total as the text table
    does. The calls from the root come from a function named after the
    program (``<program app.py>``), so tools see the top of the graph as
    one entry."""
    _model.reject_options("callgrind", options)
    tree = _model.call_tree(trace)
    cols = [i for i, c in enumerate(tree.columns) if c.name != "calls"]
    if not cols:
        raise _model.ReportError("the trace has no cost columns for callgrind")
    calls_col = next((i for i, c in enumerate(tree.columns) if c.name == "calls"), None)
    ncol = len(cols)
    line = tree.line
    funcs = tree.funcs
    root = len(funcs)  # the program's pseudo-function
    header = tree.header
    names = _fn_names(funcs)
    prog = _model.program_name(header)
    names.append(f"<program {prog}>" if prog else "<program>")
    prog_argv = _model.program_argv(header)
    root_file = prog_argv[0] if prog_argv and prog_argv[0] != "-m" else ""
    files = [f.filename for f in funcs] + [root_file]
    first = [f.lineno for f in funcs] + [0]
    by_edge = _model.edge_totals(trace, tree, cols)
    own, cum = _model.function_totals(trace, tree)
    if max(line, default=0):
        # Executing lines (a sampling trace): costs per line, call sites per
        # pair of lines, from the nodes.
        selfcost, sites, totals = _per_line(tree, cols, calls_col, first, root)
    else:
        selfcost, sites, totals = _per_function(tree, cols, own, by_edge, first, root)
    cidx = range(ncol)

    costs = []
    for j, c in enumerate(cols):
        _progress.stage(f"callgrind: the calls' {tree.columns[c].label} (column {j + 1} of"
                        f" {len(cols)})")
        edges = _call_costs({k: v[j] for k, (_, v) in by_edge.items()}, cum[c])
        costs.append({(root if a < 0 else a, b): v for (a, b), v in edges.items()})
    # calls[f] -> [(line, callee, callee line, calls, costs)]
    calls = {}
    for (a, b), per_edge in sites.items():
        out = calls.setdefault(a, [])
        if len(per_edge) == 1:  # one call site: the edge's whole cost
            [((ln, gline), site)] = per_edge.items()
            out.append((ln, b, gline, site[0], [cost.get((a, b), 0) for cost in costs]))
            continue
        keys = sorted(per_edge)
        split = [_split(costs[c].get((a, b), 0), [per_edge[k][1][c] for k in keys])
                 for c in cidx]
        for j, (ln, gline) in enumerate(keys):
            out.append((ln, b, gline, per_edge[(ln, gline)][0], [split[c][j] for c in cidx]))

    events = " ".join(_event_name(tree.columns[c]) for c in cols)
    totals = " ".join(map(str, totals))
    out = ["# callgrind format", "version: 1", "creator: hyprof"]
    if header.get("pid") is not None:
        out.append(f"pid: {header['pid']}")
    if prog_argv:
        out.append("cmd: " + " ".join(prog_argv).replace("\n", " "))
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
            return f"({j}) {names[f]}"
        return f"({j})"

    order = sorted((f for f in selfcost if f != root),
                   key=lambda f: (funcs[f].filename, funcs[f].lineno, f))
    _progress.stage("callgrind: writing", len(order) + 1, "functions")
    for k, f in enumerate(order + [root]):
        if not k & 1023:
            _progress.advance(1024 if k else 0)
        out.append("fl=" + fl(files[f]))
        out.append("fn=" + fn(f))
        for ln, cost in sorted(selfcost[f].items()):
            out.append(f"{ln} {' '.join(map(str, cost))}")
        for ln, g, gline, n, cost in sorted(calls.get(f, ()), key=lambda s: s[:3]):
            out.append("cfi=" + fl(files[g]))
            out.append("cfn=" + fn(g))
            out.append(f"calls={n} {gline}")
            out.append(f"{ln} {' '.join(map(str, cost))}")
        out.append("")
    out.append(f"totals: {totals}")
    return "\n".join(out) + "\n"
