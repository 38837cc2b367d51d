"""The call tree the exporters share: flat arrays built once from a trace.

Every exporter (html, speedscope, collapsed, callgrind, dot, pprof) and the
diff work on this one structure, so each format is a linear walk over the
trace's distinct call paths: never over its individual samples, and never
quadratic in the depth of the tree.

A node ``i`` is ``parent[i]``, ``func[i]`` (an index into ``funcs``) and
``line[i]``; node 0 is the root, whose function is -1. Each metric column
holds the node's own (exclusive) value; inclusive values are subtree sums.
Parents always come before their children (``parent[i] < i``).
"""

from collections import namedtuple

Func = namedtuple("Func", "name filename lineno kind")
# A value column: the metric's name, a short label for people, its unit, its
# role ("time", "calls", "samples", "weight" or "other") and, for a sample
# kind's columns, the kind's name ("cpu-clock", "alloc").
Column = namedtuple("Column", "name label unit role event")

# What the exporters call the deterministic mode's columns.
_LABELS = {
    "wall_own": "wall",
    "cpu_own": "cpu",
    "calls": "calls",
}


class ReportError(ValueError):
    """A report cannot be made from this trace with these options."""


def short_path(path):
    """The last two parts of an absolute path (``django/models.py``): enough
    to tell files apart in a frame name without the install prefix."""
    if path.startswith("/"):
        parts = path.rsplit("/", 2)
        return "/".join(parts[-2:]) if len(parts) > 2 else path
    return path


def frame_label(func, line=0):
    """The name of a frame in stack-based formats: ``name (file:line)``."""
    if func.filename and func.kind not in ("builtin", "special"):
        return f"{func.name} ({short_path(func.filename)}:{line or func.lineno})"
    return func.name


class CallTree:
    """Node arrays, one own-value column per metric, and the functions.

    Every producer numbers nodes so that a parent comes before its children
    (``parent[i] < i``); walks in index order rely on it."""

    def __init__(self, funcs, parent, func, line, columns, values, mode="sampling",
                 header=None, threads=None):
        self.funcs = funcs if isinstance(funcs, list) else list(funcs)
        self.parent = parent
        self.func = func
        self.line = line
        self.columns = list(columns)
        self.values = [v if isinstance(v, list) else list(v) for v in values]
        self.mode = mode
        self.header = dict(header or {})
        # The trace's threads, for trees that give each its own pseudo-root.
        self.threads = threads
        n = len(self.parent)
        if not (len(self.func) == len(self.line) == n) or any(len(v) != n for v in self.values):
            raise ReportError("call tree arrays of different lengths")
        if len(self.values) != len(self.columns):
            raise ReportError(f"call tree has {len(self.columns)} columns but"
                              f" {len(self.values)} value arrays")
        if n == 0 or self.parent[0] != -1:
            raise ReportError("call tree has no root node")
        bad = next((i for i in range(1, n) if not 0 <= parent[i] < i), None)
        if bad is not None:
            raise ReportError(f"node {bad} has parent {parent[bad]}, which does not come"
                              " before it")
        self._children = None
        self._outer = None
        # The column reports open on; None: wall time, or the sample count.
        self.default = None

    def __len__(self):
        return len(self.parent)

    # ------------------------------------------------------------ structure

    @property
    def children(self):
        """Each node's children, in id order."""
        if self._children is None:
            kids = [[] for _ in self.parent]
            parent = self.parent
            for i in range(1, len(parent)):
                kids[parent[i]].append(i)
            self._children = kids
        return self._children

    def column(self, name):
        """Index of a metric column, by name or label; a clear error otherwise."""
        for i, c in enumerate(self.columns):
            if name in (c.name, c.label):
                return i
        known = ", ".join(c.label for c in self.columns) or "none"
        raise ReportError(f"unknown metric {name!r}; this trace has: {known}")

    def default_column(self):
        """The metric a report shows unless told: wall time, or sample counts."""
        if self.default is not None:
            return self.default
        for want in ("wall_own",):
            for i, c in enumerate(self.columns):
                if c.name == want:
                    return i
        for i, c in enumerate(self.columns):
            if c.role == "samples":
                return i
        if not self.columns:
            raise ReportError("the trace has no metric columns")
        return 0

    def inclusive(self, col):
        """Subtree sums of one column, as a list indexed by node."""
        inc = list(self.values[col])
        parent = self.parent
        for i in range(len(inc) - 1, 0, -1):
            inc[parent[i]] += inc[i]
        return inc

    def depth(self):
        d = [0] * len(self.parent)
        parent = self.parent
        for i in range(1, len(d)):
            d[i] = d[parent[i]] + 1
        return d

    # ------------------------------------------------------------ reshaping

    def by_function(self):
        """A tree whose children are unique per function: the sampling mode's
        per-line nodes of one function under one parent become one node, as
        flame graphs and folded stacks want. Frames lose their executing line.
        A tree without lines is returned as it is: a node is unique per
        (parent, function, line), so there is nothing to merge."""
        if not any(self.line):
            return self
        key_to_new = {}
        new_of = [0] * len(self.parent)
        parent, func = [-1], [-1]
        vals = [[v[0]] for v in self.values]
        old_vals = self.values
        opar, ofunc = self.parent, self.func
        for i in range(1, len(opar)):
            np_ = new_of[opar[i]]
            key = (np_, ofunc[i])
            j = key_to_new.get(key)
            if j is None:
                j = key_to_new[key] = len(parent)
                parent.append(np_)
                func.append(ofunc[i])
                for c, v in enumerate(vals):
                    v.append(old_vals[c][i])
            else:
                for c, v in enumerate(vals):
                    v[j] += old_vals[c][i]
            new_of[i] = j
        merged = CallTree(self.funcs, parent, func, [0] * len(parent), self.columns, vals,
                          self.mode, self.header, self.threads)
        merged.default = self.default
        return merged

    @property
    def outer(self):
        """For each node, whether no ancestor has its function: the nodes
        whose inclusive values a function's total counts, so recursion is
        counted once. One depth-first walk, cached."""
        if self._outer is None:
            func, kids = self.func, self.children
            outer = [True] * len(func)
            active = {}
            # A node id to enter it, ~id to leave it.
            stack = list(reversed(kids[0]))
            while stack:
                i = stack.pop()
                if i < 0:
                    f = func[~i]
                    c = active[f] - 1
                    if c:
                        active[f] = c
                    else:
                        del active[f]
                    continue
                f = func[i]
                c = active.get(f, 0)
                if c:
                    outer[i] = False
                active[f] = c + 1
                stack.append(~i)
                k = kids[i]
                if k:
                    stack.extend(reversed(k))
            self._outer = outer
        return self._outer

    def function_totals(self, col):
        """Per-function own and inclusive sums of a column, recursion counted
        once (a node adds to its function's inclusive value only when no
        ancestor has the same function). Returns two dicts func -> value."""
        inc = self.inclusive(col)
        vals, func, outer = self.values[col], self.func, self.outer
        own = {}
        cum = {}
        for i in range(1, len(func)):
            f = func[i]
            own[f] = own.get(f, 0) + vals[i]
            if outer[i]:
                cum[f] = cum.get(f, 0) + inc[i]
        return own, cum

    def edge_totals(self, col, calls_col=None):
        """Caller -> callee edges: {(caller, callee): (calls, inclusive)} with
        the callee's inclusive value counted once per outermost callee node
        under that caller. The root caller is -1."""
        inc = self.inclusive(col)
        calls = self.values[calls_col] if calls_col is not None else None
        func, parent, outer = self.func, self.parent, self.outer
        edges = {}
        for i in range(1, len(func)):
            key = (func[parent[i]], func[i])
            n, v = edges.get(key, (0, 0))
            if calls is not None:
                n += calls[i]
            if outer[i]:
                v += inc[i]
            edges[key] = (n, v)
        return edges


# ---------------------------------------------------------------- from traces

def _kind_name(kind):
    if isinstance(kind, str):
        return kind
    return {0: "python", 1: "builtin", 2: "special"}.get(kind, "python")


def _columns(metrics, sample_kinds):
    """The columns a stack report can add up (own values and call counts),
    as (metric index, Column). A sample kind's two columns are labelled
    after the kind: "cpu-clock samples" and "cpu-clock"."""
    role = {}
    for k in sample_kinds or []:
        role[k.count_metric] = ("samples", k.name)
        role[k.weight_metric] = ("weight", k.name)
    out = []
    for i, m in enumerate(metrics):
        kind = _metric_kind(m.kind)
        if kind not in ("own", "calls"):
            continue
        if i in role:
            r, event = role[i]
            label = f"{event} samples" if r == "samples" else event
        elif kind == "calls":
            r, event, label = "calls", "", "calls"
        elif m.unit == "ns":
            r, event = "time", ""
            label = _LABELS.get(m.name) or (m.name.removesuffix("_own"))
        else:
            r, event, label = "other", "", m.name
        out.append((i, Column(m.name, label, m.unit, r, event)))
    return out


def _metric_kind(kind):
    if isinstance(kind, str):
        return kind
    return {0: "own", 1: "cum", 2: "calls"}.get(kind, "own")


def _func_key(fs):
    return (fs.name, fs.filename or "", int(fs.lineno or 0), _kind_name(getattr(fs, "kind", 0)))


def _raw_tables(trace, thread):
    """The trace's node triples and node-major values, without making a
    Python object per node, when the trace offers them (hyprof.Trace does);
    else None."""
    nodes = getattr(trace, "_nodes", None)
    node_values = getattr(trace, "_node_values", None)
    table = getattr(trace, "function_table", None)
    if nodes is None or node_values is None or table is None:
        return None
    return nodes, node_values(thread), table


def from_trace(trace, thread=None, split_threads=False):
    """Builds a CallTree from a hyprof Trace (or anything with the same
    ``mode``, ``header``, ``metrics``, ``threads()`` and ``nodes()``).

    With ``split_threads`` each thread gets its own pseudo-root under node 0,
    named after the thread, so one picture shows all threads apart."""
    if not hasattr(trace, "nodes") or not hasattr(trace, "metrics"):
        raise ReportError(f"expected a hyprof Trace, got {type(trace).__name__}")
    metrics = list(trace.metrics)
    picked = _columns(metrics, getattr(trace, "sample_kinds", None))
    keep = [i for i, _ in picked]
    columns = [c for _, c in picked]
    names = [metrics[i].name for i in keep]
    nm = len(metrics)
    funcs = []
    func_ids = {}
    parent, func, line = [-1], [-1], [0]
    values = [[0] for _ in keep]

    def intern(fs):
        k = _func_key(fs)
        j = func_ids.get(k)
        if j is None:
            j = func_ids[k] = len(funcs)
            funcs.append(Func(*k))
        return j

    def add_nodes(tid, root):
        raw = _raw_tables(trace, tid)
        if raw is not None:
            nd, vals, table = raw
            n = len(nd) // 3
            if len(vals) != n * nm:
                raise ReportError(f"the trace's node values do not match its {n} nodes")
            fmap = [intern(f) for f in table]
            base = len(parent) - 1  # node i (i >= 1) becomes base + i
            for i in range(1, n):
                p = nd[3 * i]
                if p >= i:
                    raise ReportError(f"node {i} comes before its parent {p}")
                parent.append(root if p == 0 else base + p)
                func.append(fmap[nd[3 * i + 1]])
                line.append(nd[3 * i + 2])
            for c, m in enumerate(keep):
                col = vals[m::nm]
                v = values[c]
                v[root] += col[0]
                v.extend(col[1:])
            return
        ids = {}
        for nd in trace.nodes(thread=tid):
            vals = nd.values
            if isinstance(vals, dict):
                vals = [vals.get(name, 0) or 0 for name in names]
            else:
                vals = [vals[i] or 0 for i in keep]
            if nd.parent is None or nd.function is None:
                ids[nd.id] = root
                for c, v in enumerate(values):
                    v[root] += vals[c]
                continue
            p = ids.get(nd.parent)
            if p is None:
                raise ReportError(f"node {nd.id} comes before its parent {nd.parent}")
            ids[nd.id] = len(parent)
            parent.append(p)
            func.append(intern(nd.function))
            line.append(int(nd.line or 0))
            for c, v in enumerate(values):
                v.append(vals[c])

    threads = None
    if split_threads:
        threads = list(trace.threads())
        for t in threads:
            tname = getattr(t, "name", None) or "thread %s" % (getattr(t, "os_tid", "") or t.id)
            j = len(parent)
            parent.append(0)
            func.append(intern(Func(f"[thread] {tname}", "", 0, "special")))
            line.append(0)
            for v in values:
                v.append(0)
            add_nodes(t.id, j)
    else:
        add_nodes(thread, 0)
    return CallTree(funcs, parent, func, line, columns, values, trace.mode,
                    getattr(trace, "header", {}), threads)


def reject_options(fmt, options):
    """Unknown options are a user's typo: say so rather than ignore them."""
    if options:
        names = ", ".join(sorted(repr(k) for k in options))
        raise ReportError(f"the {fmt} format has no option {names}")


def format_value(value, unit):
    """A value in its unit for people: ``1.23 ms``, ``4.5 MiB``, ``1,234``."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    if unit == "ns":
        for div, u in ((1e9, "s"), (1e6, "ms"), (1e3, "us")):
            if value >= div:
                return f"{sign}{value / div:.3g} {u}" if value / div < 1000 else \
                    f"{sign}{value / div:,.0f} {u}"
        return f"{sign}{value:,.0f} ns"
    if unit == "bytes":
        for div, u in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if value >= div:
                return f"{sign}{value / div:.3g} {u}"
        return f"{sign}{value:,.0f} B"
    return f"{sign}{value:,.0f}"
