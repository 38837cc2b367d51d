"""The call tree the exporters share: flat arrays built once from a trace.

Every exporter (html, speedscope, collapsed, dot, pprof), the tree report
and the diff work on this one structure, so each format is a linear walk
over the trace's distinct call paths: never over its individual samples,
and never quadratic in the depth of the tree. Callgrind is written by the C
core from the same trace (include/hyprof/callgrind.h).

A node ``i`` is ``parent[i]``, ``func[i]`` (an index into ``funcs``) and
``line[i]``; node 0 is the root, whose function is -1. Each metric column
holds the node's own (exclusive) value. Parents always come before their
children (``parent[i] < i``).

The tree gives call paths only. Per-function and caller -> callee totals
(recursion counted once, measured cumulative times) come from the trace's
C aggregation, ``trace.functions()`` and ``trace.edges()``, through
:func:`function_totals` and :func:`edge_totals`: no report decides what
recursion is on its own.
"""

import array
import contextlib
import gc
import os
import warnings
from collections import namedtuple

from .. import _hyprof, _progress
from .._kinds import func_kind_name, metric_kind_name
from ..errors import ReportError, ReportWarning

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


# Source files a report may read lines from: regular files up to this size.
MAX_SOURCE_BYTES = 8 << 20


def read_source(path):
    """The lines of a source file a trace names, or [] when it is not a
    regular file hyprof can read (a trace from elsewhere may name a device,
    a FIFO, a socket or a huge file: none is opened or read), or is larger
    than MAX_SOURCE_BYTES."""
    import stat
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_SOURCE_BYTES:
            return []
        # O_NONBLOCK: what was swapped for a FIFO since the stat cannot
        # block the open; fstat then checks it is still that regular file.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError, TypeError):
        return []
    try:
        st2 = os.fstat(fd)
        if not stat.S_ISREG(st2.st_mode) or (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino):
            return []
        data = os.read(fd, MAX_SOURCE_BYTES + 1)
    except OSError:
        return []
    finally:
        os.close(fd)
    if len(data) > MAX_SOURCE_BYTES:
        return []
    return data.decode("utf-8", "replace").splitlines()


# Formats that write each call path whole on a line or sample of its own
# (folded stacks, pprof samples, speedscope's sampled profiles) grow with the
# number of paths times their depth: a 50,000-deep recursion alone would be
# 1.25 billion frames. Past this many frames the paths that do not fit are
# left out, with a ReportWarning, rather than exhausting memory.
MAX_PATH_FRAMES = 1 << 22


@contextlib.contextmanager
def gc_paused():
    """Pauses the cyclic garbage collector (if it runs) while a report
    builds containers by the million that hold no cycles: each collection
    it would start on the way walks all of them again (pstats of a million
    edges spent more than half its time there). Restored on the way out."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class PathBudget:
    """Counts the frames a format writes; take(depth) says whether a path of
    that depth still fits."""

    def __init__(self, fmt, limit=None):
        self.fmt = fmt
        self.left = MAX_PATH_FRAMES if limit is None else limit
        self.written = self.skipped = 0
        self.deepest = 0

    def take(self, depth):
        if depth > self.left:
            self.skipped += 1
            self.deepest = max(self.deepest, depth)
            return False
        self.left -= depth
        self.written += 1
        return True

    def warn(self):
        if self.skipped:
            warnings.warn(ReportWarning(
                f"{self.fmt}: {self.skipped} of {self.written + self.skipped} call paths left"
                f" out: each is written with its whole stack (up to {self.deepest} frames"
                f" deep here), and the report stops at {MAX_PATH_FRAMES} frames; the html,"
                " text, tree and callgrind reports show every path"), stacklevel=3)


def walk_paths(tree, top, label):
    """Depth first under node ``top``, children in order: yields (i, path)
    on entering each node i, path being the labels of the nodes from top's
    child down to i (one list, changed as the walk goes on: copy it to keep
    it). label(i) is called once per node, in this order. Memory follows the
    depth, not the number of paths."""
    order, depth = tree.preorder(top)
    base = depth[0]
    path = []
    for i, d in zip(order[1:], depth[1:]):
        del path[d - base - 1:]
        path.append(label(i))
        yield i, path


class Children:
    """Node -> its children, from the C walk's packed arrays: node i's are
    ``kids[first[i]:first[i + 1]]``."""

    __slots__ = ("first", "kids")

    def __init__(self, first, kids):
        self.first = array.array("I")
        self.first.frombytes(first)
        self.kids = array.array("I")
        self.kids.frombytes(kids)

    def __len__(self):
        return len(self.first) - 1

    def __getitem__(self, i):
        f = self.first
        return self.kids[f[i]:f[i + 1]]


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
                 header=None, threads=None, measured=None, checked=False):
        self.funcs = funcs if isinstance(funcs, list) else list(funcs)
        self.parent = parent
        self.func = func
        self.line = line
        self.columns = list(columns)
        # Any sequences: views of the bytes the trace's C profile made, or lists.
        self.values = list(values)
        self.mode = mode
        self.header = dict(header or {})
        # The trace's threads, for trees that give each its own pseudo-root.
        self.threads = threads
        # The producer's measured cumulative columns, by metric name: each
        # node's own value of it (wall_cum: the node's calls' wall time).
        self.measured = dict(measured or {})
        n = len(self.parent)
        if not (len(self.func) == len(self.line) == n) or any(len(v) != n for v in self.values):
            raise ReportError("call tree arrays of different lengths")
        if len(self.values) != len(self.columns):
            raise ReportError(f"call tree has {len(self.columns)} columns but"
                              f" {len(self.values)} value arrays")
        if n == 0 or self.parent[0] != -1:
            raise ReportError("call tree has no root node")
        # A tree from a profile is ordered by construction (checked: the
        # profile made a node only under one it had already made).
        bad = None if checked else next((i for i in range(1, n) if not 0 <= parent[i] < i), None)
        if bad is not None:
            raise ReportError(f"node {bad} has parent {parent[bad]}, which does not come"
                              " before it")
        self._children = None
        self._preorder = None
        self._by_function = None
        self._index = None

    def __len__(self):
        return len(self.parent)

    # ------------------------------------------------------------ structure

    def _parent_array(self):
        """The parents as int32 for the C walks: the trace's own column as
        it is, a list (a tree made in Python) packed."""
        p = self.parent
        if (isinstance(p, memoryview) and p.format == "i") or \
                (isinstance(p, array.array) and p.typecode == "i"):
            return p
        return array.array("i", p)

    @property
    def children(self):
        """Each node's children, in id order: ``children[i]`` is a sequence
        of node ids (packed: no list per node)."""
        if self._children is None:
            self._children = Children(*_hyprof.tree_children(self._parent_array()))
        return self._children

    def preorder(self, top=0):
        """(order, depth): node ``top`` and its subtree depth first, each
        node's children in id order (``order[0]`` is top); depth counts from
        the root. Arrays of the C walk, made once per tree."""
        if self._preorder is None:
            cols = []
            for b in _hyprof.tree_preorder(self._parent_array()):
                a = array.array("I")
                a.frombytes(b)
                cols.append(a)
            self._preorder = cols
        order, depth, size, pos = self._preorder
        if top == 0:
            return order, depth
        k = pos[top]
        return order[k:k + size[top]], depth[k:k + size[top]]

    def key_index(self):
        """{(parent, function, line): node} of every node but the root: how
        a node of another tree over the same trace's tables (a part of it,
        its thread's copy) is found in this one. Made anew at each call,
        for the caller to drop (a million entries at a million nodes)."""
        parent, func, line = self.parent, self.func, self.line
        return {(parent[i], func[i], line[i]): i for i in range(1, len(parent))}

    def column(self, name):
        """Index of a metric column, by name or label; a clear error otherwise."""
        for i, c in enumerate(self.columns):
            if name in (c.name, c.label):
                return i
        known = ", ".join(c.label for c in self.columns) or "none"
        raise ReportError(f"unknown metric {name!r}; this trace has: {known}")

    def default_column(self):
        """The metric a report shows unless told: wall time, or sample counts."""
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
        """Subtree sums of one column, as a list indexed by node: Python ints,
        since the sums of a hostile trace's uint64 values can pass 2**64."""
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

    def index(self, func):
        """The index in ``funcs`` of a function (a Func, FunctionInfo or
        FunctionStats), or None."""
        if self._index is None:
            self._index = {f: i for i, f in enumerate(self.funcs)}
        return self._index.get(_func_key(func))

    def by_function(self):
        """A tree whose children are unique per function: the sampling mode's
        per-line nodes of one function under one parent become one node, as
        flame graphs and folded stacks want. Frames lose their executing line.
        A tree without lines is returned as it is: a node is unique per
        (parent, function, line), so there is nothing to merge. Made once
        per tree; reports read it and never change it."""
        if self._by_function is None:
            self._by_function = self._merge_lines()
        return self._by_function

    def _merge_lines(self):
        if not any(self.line):
            return self
        key_to_new = {}
        new_of = [0] * len(self.parent)
        parent, func = [-1], [-1]
        names = list(self.measured)
        vals = [[v[0]] for v in self.values] + [[self.measured[k][0]] for k in names]
        old_vals = self.values + [self.measured[k] for k in names]
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
        nv = len(self.values)
        merged = CallTree(self.funcs, parent, func, [0] * len(parent), self.columns, vals[:nv],
                          self.mode, self.header, self.threads, dict(zip(names, vals[nv:])),
                          checked=True)
        merged.merged_from = new_of
        return merged

    def node_map(self):
        """Per node of this tree, its node in by_function()'s."""
        merged = self.by_function()
        return range(len(self.parent)) if merged is self else merged.merged_from


# ---------------------------------------------------------------- from traces

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
        kind = metric_kind_name(m.kind)
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


def stack_columns(trace):
    """[(metric index, Column)] of the columns a stack report of ``trace``
    can add up."""
    return _columns(list(trace.metrics), trace.sample_kinds)


def _func_key(fs):
    return (fs.name, fs.filename or "", int(fs.lineno or 0), func_kind_name(getattr(fs, "kind", 0)))


def from_trace(trace, thread=None, split_threads=False):
    """Builds a CallTree from a hyprof Trace, in C from the trace's profile:
    the node ids and function ids are the trace's own, and no Python object
    is made per node.

    With ``split_threads`` each thread gets its own pseudo-root under node 0,
    named after the thread, so one picture shows all threads apart."""
    columns_of = getattr(trace, "_tree_columns", None)
    if columns_of is None:
        raise ReportError(f"expected a hyprof Trace, got {type(trace).__name__}")
    metrics = list(trace.metrics)
    picked = stack_columns(trace)
    keep = [i for i, _ in picked]
    # The producer's measured cumulative columns (wall_cum), per node.
    keep_cum = [i for i, m in enumerate(metrics) if metric_kind_name(m.kind) == "cum"]
    # Functions are interned in the profile: one Func per function id.
    funcs = [Func(*_func_key(f)) for f in trace.function_table]
    threads = pseudo = None
    if split_threads:
        threads = list(trace.threads())
        pseudo = []
        for t in threads:
            tname = t.label
            pseudo.append(len(funcs))
            funcs.append(Func(f"[thread] {tname}", "", 0, "special"))
    parent, func, line, values = columns_of(keep + keep_cum, thread, pseudo)
    measured = {metrics[m].name: values[len(keep) + c] for c, m in enumerate(keep_cum)}
    return CallTree(funcs, parent, func, line, [c for _, c in picked], values[:len(keep)],
                    trace.mode, trace.header, threads, measured, checked=True)


def call_tree(trace, split_threads=False, thread=None):
    """The trace's CallTree (with each thread under a pseudo-root of its own
    when ``split_threads``, or of one thread), built once per trace and
    shared by every report made from it. Reports read it and never change
    it."""
    cache = getattr(trace, "_call_trees", None)
    if cache is None:
        cache = {}
        try:
            trace._call_trees = cache
        except AttributeError:  # an object that takes no attributes: no cache
            pass
    key = (bool(split_threads), None if split_threads else thread)
    tree = cache.get(key)
    if tree is None:
        tree = cache[key] = from_trace(trace, thread, split_threads=key[0])
    return tree


def thread_roots(tree):
    """[(thread, pseudo-root node)] of a tree made with split_threads."""
    kids = tree.children[0]
    return list(zip(tree.threads or [], kids))


def _cum_metric(trace, name):
    """The metric holding an own column's cumulative value: the producer's
    measured ``X_cum`` beside ``X_own`` when there is one, else the column
    itself (whose cumulative value the aggregation sums over subtrees)."""
    if name.endswith("_own"):
        cum = name[:-4] + "_cum"
        if any(m.name == cum for m in trace.metrics):
            return cum
    return name


def function_totals(trace, tree, thread=None, funcs=None):
    """Per-function totals of every column of ``tree``, from the trace's C
    aggregation (``trace.functions()``): two lists, own and cum, each one
    list per column indexed like ``tree.funcs`` (or like ``funcs``, a
    function -> index callable). cum is what the text table shows: the
    measured cumulative time (``wall_cum``) for a time column, recursion
    counted once; primitive calls for the calls column. Functions that share
    an index (the same name, file and line) add up."""
    if funcs is None:
        funcs = tree.index
    names = [(c.name, _cum_metric(trace, c.name)) for c in tree.columns]
    own = [[0] * len(tree.funcs) for _ in names]
    cum = [[0] * len(tree.funcs) for _ in names]
    for f in trace.functions(thread):
        i = funcs(f)
        if i is None:
            continue
        fo, fc = f.own, f.cum
        for c, (o, k) in enumerate(names):
            own[c][i] += fo.get(o, 0)
            cum[c][i] += fc.get(k, 0)
    return own, cum


def edge_totals(trace, tree, col, thread=None, keep=None, packed=None):
    """Caller -> callee totals from the trace's C aggregation
    (``trace.edges()``): {(caller index or -1 for the root, callee index):
    (calls, cum)}, cum being the callee's cumulative value of column col on
    that edge. With ``keep`` (a set of tree indices), only the edges between
    two of them. ``packed``: what ``trace._edge_columns(thread)`` returned,
    for a caller that had it made first (that aggregation fills the
    functions' cache too). The edges come packed from C; their columns are
    read as strided slices, each function's index is found once, and the
    loop left only adds up edges whose functions share an index."""
    where = _cum_metric(trace, tree.columns[col].name)
    table = trace.function_table
    nf = len(table)
    # Function id -> the tree's index (None: a function the tree leaves
    # out, or one not kept); the root, past the table, is -1.
    tindex = [tree.index(f) for f in table]
    if keep is not None:
        tindex = [i if i in keep else None for i in tindex]
    tindex.append(-1 if keep is None or -1 in keep else None)
    edges = packed if packed is not None else trace._edge_columns(thread)
    callers, callees, n = edges.callers, edges.callees, len(edges)
    calls = edges.own(trace._calls_col) or [0] * n
    vals = edges.cum(where) or [0] * n
    out = {}
    _progress.stage("adding up the calls", n, "edges")
    step = 1 << 16
    for s in range(0, n, step):
        e = min(n, s + step)
        for a, b, c, v in zip([tindex[min(x, nf)] for x in callers[s:e]],
                              [tindex[x] for x in callees[s:e]], calls[s:e], vals[s:e]):
            if a is None or b is None:
                continue
            got = out.get((a, b))
            out[(a, b)] = (c, v) if got is None else (got[0] + c, got[1] + v)
        _progress.advance(e - s)
    return out


def program_argv(header):
    """The profiled program's command line as the program saw it
    (``["app.py", "--fast"]``), or [] when the trace does not say: every
    producer records the program's ``sys.argv`` as it started."""
    return [str(a) for a in header.get("argv") or []]


def program(header):
    """The profiled program's command line as one string ("" if unknown)."""
    return " ".join(program_argv(header))


def program_name(header):
    """What a profile is named after: the program's script (its file name)
    or module, without arguments; "" when the trace does not say."""
    argv = program_argv(header)
    if not argv:
        return ""
    if argv[0] == "-m" and len(argv) > 1:
        return argv[1]
    base = os.path.basename(argv[0])
    if base == "__main__.py" and os.path.dirname(argv[0]):
        return os.path.basename(os.path.dirname(argv[0]))  # python -m package
    return base or argv[0]


def reject_options(fmt, options):
    """Unknown options are a user's typo: say so rather than ignore them."""
    if options:
        names = ", ".join(sorted(repr(k) for k in options))
        raise ReportError(f"the {fmt} format has no option {names}")


def unit_scale(metric):
    """What a raw value of ``metric`` is multiplied by for the API's values:
    seconds per ns for a time, 1 for counts and bytes."""
    return 1e-9 if metric.unit == "ns" else 1


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
