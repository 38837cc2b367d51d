"""Loaded traces: ``hyprof.load(path)`` returns a :class:`Trace`.

A trace is read by the C reader (``_hyprof.read_trace``); flat statistics,
caller/callee edges and per-thread node values are computed in C on demand.
Time metrics measured in nanoseconds are given in seconds on
:class:`FunctionStats` and :class:`Edge`; ``own`` and ``cum`` keep the raw
integers of every metric column, by name.
"""

import array
import errno
import math
import os
import warnings
from collections import namedtuple
from collections.abc import Sequence

from . import _hyprof
from ._kinds import func_kind_code, func_kind_name
from .errors import TraceError, TraceWarning
from .render import _model
from .render.methods import ReportMethods

__all__ = [
    "Edge",
    "FunctionInfo",
    "FunctionStats",
    "GcStats",
    "Line",
    "Metric",
    "Node",
    "Sample",
    "SampleKind",
    "Thread",
    "Trace",
    "TraceError",
    "TraceWarning",
    "load",
]


Metric = namedtuple("Metric", "name unit kind")
Metric.__doc__ = "A metric column: kind is 'own', 'cum' or 'calls'."
SampleKind = namedtuple("SampleKind", "name unit count_metric weight_metric")
FunctionInfo = namedtuple("FunctionInfo", "id name filename lineno kind")


class Thread(namedtuple("Thread", "id os_tid ident name")):
    """A thread of the trace: id (index), os_tid, ident and the name
    threading gave it ("" for one it did not know)."""

    __slots__ = ()

    @property
    def label(self):
        """What reports call it: its name, or ``thread <os_tid>``."""
        return self.name or "thread %s" % (self.os_tid or self.id)


Node = namedtuple("Node", "id parent function line values")
Node.__doc__ = ("A call-tree node. parent and function are None for the root; values maps "
                "each metric name to the node's own value (raw units).")
Sample = namedtuple("Sample", "thread node kind time weight labels", defaults=(0,))
Line = namedtuple("Line", "filename line samples weight")
GcStats = namedtuple("GcStats", "collections seconds collected uncollectable")
GcStats.__doc__ = ("The garbage collections of a run or window: collections and seconds are "
                   "tuples by generation (0, 1, 2); collected and uncollectable count objects.")
_GC_GENS = 3

_NS = 1e-9

# The header entries reports read, and what each must be. A trace that
# gives one of them another type loads with a TraceError naming it, rather
# than failing later inside a renderer.
_STR = (str, "a string")
_STRS = (list, "a list of strings")
_COUNT = (int, "a non-negative integer")
_SECONDS = (float, "a finite number of seconds")
_HEADER_TYPES = {
    "argv": _STRS, "sources": _STRS, "thread_sources": _STRS,
    "pid": _COUNT, "signal": _COUNT, "period": _COUNT, "duration_ns": _COUNT,
    "truncated": _COUNT, "max_nodes": _COUNT,
    "gc_collected": _COUNT, "gc_uncollectable": _COUNT,
    "gil_held": _COUNT, "gil_released": _COUNT, "gil_waiting": _COUNT,
    **{f"gc_{what}_gen{g}": _COUNT for what in ("collections", "ns") for g in range(_GC_GENS)},
    "start_time": _SECONDS, "start": _SECONDS, "duration": _SECONDS, "ns_per_tick": _SECONDS,
    "event": _STR, "trigger": _STR, "clock": _STR, "clock_wall": _STR, "clock_cpu": _STR,
    "engine": _STR, "python": _STR, "hostname": _STR, "host": _STR, "executable": _STR,
}
# Seconds beyond this (about the year 5000) are no time a report can show.
_MAX_SECONDS = 1e11


def _check_header(header, path):
    """Raises TraceError for a known header entry of the wrong type or out
    of range. A known entry that is nil says nothing: it is removed, so that
    a report reads it as absent."""
    for key, (typ, what) in _HEADER_TYPES.items():
        v = header.get(key)
        if v is None:
            header.pop(key, None)
            continue
        if typ is list:
            ok = isinstance(v, list) and all(isinstance(x, str) for x in v)
        elif typ is int:
            ok = isinstance(v, int) and not isinstance(v, bool) and v >= 0
        elif typ is float:
            ok = (isinstance(v, (int, float)) and not isinstance(v, bool)
                  and math.isfinite(v) and 0 <= v < _MAX_SECONDS)
        else:
            ok = isinstance(v, typ)
        if not ok:
            shown = repr(v) if len(repr(v)) <= 60 else repr(v)[:57] + "..."
            raise TraceError(f"{path or '<trace>'}: the header's {key!r} is {shown}: {what}"
                             " expected")


class _Values:
    """Packed own/cum values (uint64, metric_count per row) of flat entries
    or edges, as the C aggregation returns them."""

    __slots__ = ("cum", "own", "width")

    def __init__(self, own, cum, width):
        self.own = array.array("Q")
        self.own.frombytes(own)
        self.cum = array.array("Q")
        self.cum.frombytes(cum)
        self.width = width


class _Stats:
    __slots__ = ("_row", "_trace", "_vals")

    def _raw(self, which, col):
        """Raw value of metric column index col ('own' or 'cum'), 0 if none."""
        if col is None:
            return 0
        return getattr(self._vals, which)[self._row * self._vals.width + col]

    def _dict(self, which):
        w = self._vals.width
        row = getattr(self._vals, which)[self._row * w:(self._row + 1) * w]
        return dict(zip(self._trace._metric_names, row))

    @property
    def own(self):
        """{metric name: raw value}: each column's own aggregate."""
        return self._dict("own")

    @property
    def cum(self):
        """{metric name: raw value}: each column's cumulative aggregate
        (recursion once; primitive calls for a calls column)."""
        return self._dict("cum")

    def _seconds(self, which, name):
        t = self._trace
        col = t._metric_index_of.get(name)
        if col is None:
            return 0.0
        return self._raw(which, col) * _model.unit_scale(t.metrics[col])

    def _time_cum(self, clock):
        # the producer's measured cumulative column if there is one, else the
        # inclusive sum of the own column
        if clock + "_cum" in self._trace._metric_index_of:
            return self._seconds("cum", clock + "_cum")
        return self._seconds("cum", clock + "_own")

    @property
    def calls(self):
        return self._raw("own", self._trace._calls_col)

    @property
    def primitive_calls(self):
        return self._raw("cum", self._trace._calls_col)

    @property
    def wall_own(self):
        return self._seconds("own", "wall_own")

    @property
    def wall_cum(self):
        return self._time_cum("wall")

    @property
    def cpu_own(self):
        return self._seconds("own", "cpu_own")

    @property
    def cpu_cum(self):
        return self._time_cum("cpu")

    @property
    def own_samples(self):
        return self._raw("own", self._trace._count_col)

    @property
    def cum_samples(self):
        return self._raw("cum", self._trace._count_col)

    @property
    def own_weight(self):
        return self._raw("own", self._trace._weight_col)

    @property
    def cum_weight(self):
        return self._raw("cum", self._trace._weight_col)


class FunctionStats(_Stats):
    """Per-function totals. ``own``/``cum`` map metric names to raw values
    (``cum`` counts recursion once; for a calls column it holds the primitive
    calls). Deterministic traces: calls, primitive_calls, wall_own, wall_cum,
    cpu_own and cpu_cum (seconds). Sampling traces: own_samples, cum_samples,
    own_weight and cum_weight of the first sample kind."""

    __slots__ = ("filename", "id", "kind", "lineno", "name")

    def __init__(self, info, vals, row, trace):
        self.id, self.name, self.filename, self.lineno, self.kind = info
        self._vals, self._row, self._trace = vals, row, trace

    @property
    def info(self):
        return FunctionInfo(self.id, self.name, self.filename, self.lineno, self.kind)

    def __repr__(self):
        return (f"<FunctionStats {self.name} ({self.filename}:{self.lineno}) own={self.own!r}"
                f" cum={self.cum!r}>")


class Edge(_Stats):
    """Calls from ``caller`` to ``callee`` (FunctionStats; caller is None for
    calls from the root). ``own``/``cum`` and the named values are the
    callee's on those call paths, recursion through the same edge counted
    once in ``cum`` (so primitive_calls is pstats' "cc" of the caller)."""

    __slots__ = ("callee", "caller")

    def __init__(self, caller, callee, vals, row, trace):
        self.caller, self.callee = caller, callee
        self._vals, self._row, self._trace = vals, row, trace

    @property
    def samples(self):
        return self.cum_samples

    def __repr__(self):
        return "<Edge {} -> {} own={!r} cum={!r}>".format(
            self.caller.name if self.caller else "<root>", self.callee.name, self.own, self.cum)


class CallPath(Sequence):
    """The frames of one call path, root first (FunctionInfo), as a sequence
    that compares and hashes like the tuple of them. It holds the node, not
    the frames: a deep tree's paths cost one object each, not their depth."""

    __slots__ = ("_tables", "_node")

    def __init__(self, tables, node):
        self._tables = tables
        self._node = node

    def __len__(self):
        return self._tables[2][self._node]

    def _frames(self):
        tree, ft, _ = self._tables
        parent, func = tree.parent, tree.func
        out = []
        i = self._node
        while i > 0:
            out.append(ft[func[i]])
            i = parent[i]
        out.reverse()
        return out

    def __iter__(self):
        return iter(self._frames())

    def __getitem__(self, index):
        frames = self._frames()
        return tuple(frames[index]) if isinstance(index, slice) else frames[index]

    def __eq__(self, other):
        if isinstance(other, CallPath) and other._tables is self._tables:
            return other._node == self._node
        return isinstance(other, (tuple, list, Sequence)) and tuple(self) == tuple(other)

    def __hash__(self):
        return hash(tuple(self))

    def __repr__(self):
        return "CallPath(%s)" % " -> ".join(f.name for f in self)


def load(path, keep_samples=False):
    """Reads a trace file. Raises FileNotFoundError for a missing file and
    TraceError for one that is not a readable trace; a truncated trace loads
    with a TraceWarning and ``trace.truncated`` set."""
    if os.path.isdir(os.fspath(path)):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a trace file",
                                os.fspath(path))
    data = _hyprof.read_trace(os.fspath(path), keep_samples=keep_samples)
    trace = Trace(data, os.fspath(path))
    if trace.truncated:
        warnings.warn(f"{trace.path}: {trace.message}; loaded what is complete",
                      TraceWarning, stacklevel=2)
    return trace


def loads(data, source="<bytes>"):
    """A trace from the bytes of a trace file (``Trace.to_bytes()``, an
    endpoint's answer); source names where they came from in errors. Raises
    TraceError unless the bytes are a whole trace: bytes cut short in
    transit are refused, not loaded as a truncated file would be."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"loads() takes bytes, not {type(data).__name__}")
    trace = Trace(_hyprof.read_trace(str(source), data=data), None)
    if trace.truncated:
        raise TraceError(f"{source}: {trace.message}: the trace is not whole")
    return trace


def _from_data(data, path):
    return Trace(data, path)



class EdgeColumns:
    """A trace's caller -> callee edges as packed columns: ``callers`` and
    ``callees`` are function ids (a caller past the function table is the
    root), and own(metric) / cum(metric) one value column each, by metric
    name or index (None for a metric the trace lacks)."""

    __slots__ = ("callers", "callees", "_own", "_cum", "_width", "_index")

    def __init__(self, packed, trace):
        # Views of C's bytes, not copies: at a million edges the rows are
        # some 90 MB.
        self.callers, self.callees, self._own, self._cum = (
            memoryview(b).cast(code) for b, code in zip(packed, "IIQQ"))
        self._width = len(trace.metrics)
        self._index = trace._metric_index_of

    def __len__(self):
        return len(self.callees)

    def _column(self, packed, metric):
        m = metric if isinstance(metric, int) or metric is None else self._index.get(metric)
        return None if m is None else packed[m::self._width]

    def own(self, metric):
        return self._column(self._own, metric)

    def cum(self, metric):
        return self._column(self._cum, metric)


class Trace(ReportMethods):
    """A loaded trace. See docs/ARCHITECTURE.md for the API."""

    def __init__(self, data, path=None):
        self.path = path
        self._profile = data["profile"]
        self.header = data["header"]
        _check_header(self.header, path)
        self.mode = data["mode"]
        self.metrics = [Metric(*m) for m in data["metrics"]]
        self.sample_kinds = [SampleKind(*k) for k in data["sample_kinds"]]
        self.strings = data["strings"]
        s = self.strings
        self.function_table = [FunctionInfo(i, s[n], s[f], line, func_kind_name(k))
                               for i, (n, f, line, k) in enumerate(data["functions"])]
        self._threads = [Thread(i, tid, ident, s[name])
                         for i, (tid, ident, name) in enumerate(data["threads"])]
        self._node_count = data["node_count"]
        self.truncated = data["truncated"]
        self.message = data["message"]
        self.dropped = data["dropped"]
        self.truncated_nodes = data["truncated_nodes"]
        self.sample_total = data["sample_total"]
        self.skipped_records = data["skipped"]
        self._samples = data["samples"]
        self._metric_names = [m.name for m in self.metrics]
        self._metric_index_of = {m.name: i for i, m in enumerate(self.metrics)}
        self._calls_col = next((i for i, m in enumerate(self.metrics) if m.kind == "calls"),
                               None)
        k = self.sample_kinds
        self._count_col = k[0].count_metric if k else None
        self._weight_col = k[0].weight_metric if k else None
        self._flat_cache = {}
        self._edge_cache = {}

    def __repr__(self):
        return (f"<hyprof.Trace {self.path or ''} {self.mode}: {len(self.function_table)}"
                f" functions, {self.node_count} nodes, {len(self._threads)} threads>")

    @property
    def node_count(self):
        return self._node_count

    @property
    def _nodes(self):
        """The node table as (parent, func, line) triples, copied out of the
        C profile when asked for: a loaded trace keeps it once, there."""
        nodes = array.array("I")
        nodes.frombytes(_hyprof.node_table(self._profile))
        return nodes

    # ------------------------------------------------------------ aggregates

    def _thread_arg(self, thread):
        if thread is None:
            return -1
        if isinstance(thread, Thread):
            thread = thread.id
        if isinstance(thread, bool) or not isinstance(thread, int) or \
                not 0 <= thread < len(self._threads):
            n = len(self._threads)
            raise ValueError(f"no thread {thread!r} in this trace ("
                             + (f"threads 0 to {n - 1})" if n else "it has no threads)"))
        return thread

    def _flat(self, thread):
        """{func id: FunctionStats} of one thread (-1: all), cached."""
        t = self._thread_arg(thread)
        funcs = self._flat_cache.get(t)
        if funcs is None:
            funcs = self._flat_cache[t] = self._functions_of(
                _hyprof.flat(self._profile, t, False)[:3])
        return funcs

    def _functions_of(self, packed):
        ids, own, cum = packed
        fids = array.array("I")
        fids.frombytes(ids)
        vals = _Values(own, cum, len(self.metrics))
        ft = self.function_table
        return {fid: FunctionStats(ft[fid], vals, i, self) for i, fid in enumerate(fids)}

    def _flat_edges(self, t):
        """The packed edges of thread t (-1: all) from one C aggregation,
        whose functions fill the _flat() cache when it has none yet."""
        packed = _hyprof.flat(self._profile, t, True)
        if t not in self._flat_cache:
            self._flat_cache[t] = self._functions_of(packed[:3])
        return packed[3:]

    def _edges(self, thread):
        t = self._thread_arg(thread)
        edges = self._edge_cache.get(t)
        if edges is None:
            callers_b, callees_b, own, cum = self._flat_edges(t)
            funcs = self._flat_cache[t]
            callers = array.array("I")
            callers.frombytes(callers_b)
            callees = array.array("I")
            callees.frombytes(callees_b)
            vals = _Values(own, cum, len(self.metrics))
            get = funcs.get
            edges = [Edge(get(a), funcs[b], vals, i, self)
                     for i, (a, b) in enumerate(zip(callers, callees))]
            self._edge_cache[t] = edges
        return edges

    def _edge_columns(self, thread):
        """The edges of one thread (None: all) as the C aggregation packs
        them, without an object per edge (EdgeColumns)."""
        return EdgeColumns(self._flat_edges(self._thread_arg(thread)), self)

    def functions(self, thread=None):
        """[FunctionStats] of every function with a non-zero value, for one
        thread (a Thread or its id) or all."""
        return list(self._flat(thread).values())

    def edges(self, thread=None):
        """[Edge] caller -> callee."""
        return list(self._edges(thread))

    def threads(self):
        """[Thread]: id (index), os_tid, ident, name."""
        return list(self._threads)

    def _node_values(self, thread):
        v = array.array("Q")
        v.frombytes(_hyprof.node_values(self._profile, self._thread_arg(thread)))
        return v

    def _tree_columns(self, metrics, thread=None, split=None):
        """(parent, func, line, [values]) of the call tree as arrays, made in
        C: the columns of the metrics asked for (indices), of one thread or
        all, or with split (a pseudo function id per thread) one copy per
        thread under a pseudo-root of its own (see render/_model.py)."""
        cols = array.array("I", metrics).tobytes()
        sp = None if split is None else array.array("I", split).tobytes()
        par, fn, ln, vals = _hyprof.call_tree(self._profile, cols, self._thread_arg(thread), sp)
        # Views of the bytes C made, not copies (a copy held both at once).
        return (memoryview(par).cast("i"), memoryview(fn).cast("i"), memoryview(ln).cast("I"),
                [memoryview(b).cast("Q") for b in vals])

    def nodes(self, thread=None):
        """The call tree as [Node], parents before children; values are each
        node's own row (summed over threads, or for one thread)."""
        nm = len(self.metrics)
        names = [m.name for m in self.metrics]
        vals = self._node_values(thread)
        nd = self._nodes
        ft = self.function_table
        out = [Node(0, None, None, 0, dict(zip(names, vals[0:nm])))]
        for i in range(1, len(nd) // 3):
            out.append(Node(i, nd[3 * i], ft[nd[3 * i + 1]], nd[3 * i + 2],
                            dict(zip(names, vals[i * nm:(i + 1) * nm]))))
        return out

    def _metric_index(self, metric):
        if metric is None:
            if self.sample_kinds:
                return self.sample_kinds[0].count_metric
            for i, m in enumerate(self.metrics):
                if m.kind == "own":
                    return i
            raise ValueError("this trace has no metric a stack can be weighted by")
        if isinstance(metric, Metric):
            metric = metric.name
        for i, m in enumerate(self.metrics):
            if m.name == metric:
                return i
        raise ValueError("no metric {!r} in this trace (it has {})".format(metric, ", ".join(m.name for m in self.metrics)))

    def stacks(self, metric=None, thread=None):
        """[(frames root->leaf, value)] of every node with a non-zero own
        value of ``metric`` (default: the first sample count, else the first
        own column); frames are a CallPath of FunctionInfo (a sequence equal
        to their tuple). For a cum column the value is the node's exclusive
        part (its value less its children's)."""
        mi = self._metric_index(metric)
        tree = _model.call_tree(self, thread=thread)
        name = self.metrics[mi].name
        parent = tree.parent
        n = len(parent)
        if self.metrics[mi].kind == "cum":
            col = tree.measured[name]
            own = list(col)
            for i in range(1, n):
                own[parent[i]] -= col[i]
            col = [max(v, 0) for v in own]
        else:
            col = tree.values[tree.column(name)]
        tables = (tree, self.function_table, tree.depth())
        return [(CallPath(tables, i), col[i]) for i in range(1, n) if col[i]]

    def lines(self, thread=None):
        """[Line(filename, line, samples, weight)] own samples per source line
        of the first sample kind, most first (sampling traces)."""
        if not self.sample_kinds:
            return []
        k = self.sample_kinds[0]
        tree = _model.call_tree(self, thread=thread)
        counts = tree.values[tree.column(self.metrics[k.count_metric].name)]
        weights = tree.values[tree.column(self.metrics[k.weight_metric].name)]
        funcs, func, line = tree.funcs, tree.func, tree.line
        acc = {}
        for i in range(1, len(counts)):
            c = counts[i]
            if c:
                a = acc.setdefault((funcs[func[i]].filename, line[i]), [0, 0])
                a[0] += c
                a[1] += weights[i]
        return sorted((Line(f, ln, c, w) for (f, ln), (c, w) in acc.items()),
                      key=lambda x: (-x.samples, x.filename, x.line))

    def samples(self):
        """[Sample(thread, node, kind, time, weight, labels)] in file order
        (labels: the id of a label_sets() entry); time in
        ns since the start. Needs ``load(path, keep_samples=True)``."""
        cols = self.sample_columns()
        if cols is None:
            raise TraceError("%s: samples were not kept; load with keep_samples=True"
                             % (self.path or "trace"))
        return [Sample(*x) for x in zip(cols["thread"], cols["node"], cols["kind"],
                                        cols["time"], cols["weight"], cols["labels"])]

    def sample_columns(self):
        """{column: array} of the kept samples, a column each of thread,
        node, kind, time, weight and labels (as samples() gives them, without
        an object per sample); None when samples were not kept."""
        if self._samples is None:
            return None
        cols = {}
        for name, code in (("thread", "I"), ("node", "I"), ("kind", "I"), ("time", "Q"),
                           ("weight", "Q"), ("labels", "I")):
            a = array.array(code)
            a.frombytes(self._samples[name])
            cols[name] = a
        return cols

    def gc(self):
        """GcStats of the collections the run (or window) saw, from the
        header; None for a trace that does not count them."""
        h = self.header
        if "gc_collections_gen0" not in h:
            return None
        return GcStats(tuple(h.get(f"gc_collections_gen{g}", 0) for g in range(_GC_GENS)),
                       tuple(h.get(f"gc_ns_gen{g}", 0) * _NS for g in range(_GC_GENS)),
                       h.get("gc_collected", 0), h.get("gc_uncollectable", 0))

    # ------------------------------------------------------------ labels

    def label_sets(self):
        """[{key: value}] of every label set by id (a Sample's ``labels``);
        set 0, ``{}``, is what unlabelled samples carry."""
        sets = getattr(self, "_label_sets", None)
        if sets is None:
            sets = self._label_sets = [dict(s) for s in _hyprof.label_sets(self._profile)]
        return [dict(s) for s in sets]

    def labels(self):
        """{key: [values]}: the labels the trace's samples carry."""
        out = {}
        for s in self.label_sets():
            for k, v in s.items():
                out.setdefault(k, set()).add(v)
        return {k: sorted(v) for k, v in sorted(out.items())}

    def by_label_set(self):
        """[(labels, Trace)]: the trace cut by exact label set, in set order
        (the unlabelled part first), leaving out sets that hold no row. Each
        part is a copy of the tables: for a few sets, as labels are meant."""
        sets = self.label_sets()
        rows = _hyprof.label_set_rows(self._profile)
        out = []
        keep = bytearray(len(sets))
        for i, labels in enumerate(sets):
            if not rows[i]:
                continue
            keep[i] = 1
            sub = _hyprof.where_labels(self._profile, bytes(keep))
            keep[i] = 0
            sub.path = self.path
            out.append((labels, sub))
        return out

    def where(self, **labels):
        """A Trace of what ran under these labels: the rows whose label set
        has every key given with that value (or one of them, for a list,
        tuple or set of values; None: rows that carry no such key). Its
        tables are this trace's, its samples are not kept, and its header
        says what it was kept to."""
        want = {}
        for k, v in labels.items():
            vals = {None} if v is None else {v} if isinstance(v, str) else set(v)
            if not vals or not all(x is None or isinstance(x, str) for x in vals):
                raise ValueError(f"label {k}={v!r}: a str, a collection of str, or None")
            want[k] = vals
        keep = bytes(all(s.get(k) in vals for k, vals in want.items())
                     for s in self.label_sets())
        sub = _hyprof.where_labels(self._profile, keep)
        sub.path = self.path
        sub.header["labels_kept"] = ", ".join(
            f"{k}={'|'.join(sorted(x or '(none)' for x in v))}" for k, v in sorted(want.items()))
        return sub

    # ------------------------------------------------------------ writing

    def to_data(self):
        """The tables as plain Python values, in the shape
        ``_hyprof.write_trace`` takes (used to merge or rewrite traces)."""
        nm = len(self.metrics)
        nd = self._nodes
        rows = []
        for t in range(len(self._threads)):
            vals = self._node_values(t)
            for i in range(len(nd) // 3):
                v = vals[i * nm:(i + 1) * nm]
                if any(v):
                    rows.append((t, i, tuple(v)))
        data = {
            "mode": self.mode,
            "metrics": [tuple(m) for m in self.metrics],
            "sample_kinds": [tuple(k) for k in self.sample_kinds],
            "header": dict(self.header),
            "functions": [(f.name, f.filename, f.lineno, func_kind_code(f.kind))
                          for f in self.function_table],
            "threads": [(t.os_tid, t.ident, t.name) for t in self._threads],
            "nodes": [(nd[3 * i], nd[3 * i + 1], nd[3 * i + 2])
                      for i in range(1, len(nd) // 3)],
            "rows": rows,
            "dropped": dict(self.dropped),
            "truncated_nodes": self.truncated_nodes,
        }
        return data

    def write(self, path):
        """Writes the trace's tables and metric rows to path (samples are
        folded into the rows), from the C profile it was made from."""
        _hyprof.save_profile(self._profile, os.fspath(path))

    def to_bytes(self):
        """The trace as the bytes of a trace file (what write() writes);
        hyprof.trace.loads() reads them back."""
        return _hyprof.profile_bytes(self._profile)


