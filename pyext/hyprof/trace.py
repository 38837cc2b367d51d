"""Loaded traces: ``hyprof.load(path)`` returns a :class:`Trace`.

A trace is read by the C reader (``_hyprof.read_trace``); flat statistics,
caller/callee edges and per-thread node values are computed in C on demand.
Time metrics measured in nanoseconds are given in seconds on
:class:`FunctionStats` and :class:`Edge`; ``own`` and ``cum`` keep the raw
integers of every metric column, by name.
"""

import array
import os
import sys
import warnings
from collections import namedtuple

from . import _hyprof
from .render.methods import ReportMethods

__all__ = [
    "Trace", "TraceError", "TraceWarning", "load", "Metric", "SampleKind", "FunctionInfo",
    "FunctionStats", "Edge", "Thread", "Node", "Sample", "Line",
]


class TraceError(ValueError):
    """A trace file that cannot be read: not a trace, an unsupported format
    version, or corrupt (the message names the file, record and byte)."""


class TraceWarning(UserWarning):
    """A trace that was cut short: what is complete was loaded."""


_hyprof._set_trace_error(TraceError)

Metric = namedtuple("Metric", "name unit kind")
Metric.__doc__ = "A metric column: kind is 'own', 'cum' or 'calls'."
SampleKind = namedtuple("SampleKind", "name unit count_metric weight_metric")
FunctionInfo = namedtuple("FunctionInfo", "id name filename lineno kind")
Thread = namedtuple("Thread", "id os_tid ident name")
Node = namedtuple("Node", "id parent function line values")
Node.__doc__ = ("A call-tree node. parent and function are None for the root; values maps "
                "each metric name to the node's own value (raw units).")
Sample = namedtuple("Sample", "thread node kind time weight")
Line = namedtuple("Line", "filename line samples weight")

_KINDS = ("python", "builtin", "special")
_NS = 1e-9


def _scale(metric):
    return _NS if metric.unit == "ns" else 1


class FunctionStats:
    """Per-function totals. ``own``/``cum`` map metric names to raw values
    (``cum`` counts recursion once; for a calls column it holds the primitive
    calls). Deterministic traces also have calls, primitive_calls, wall_own,
    wall_cum, cpu_own and cpu_cum (seconds); sampling traces own_samples,
    cum_samples, own_weight and cum_weight of the first sample kind."""

    __slots__ = ("id", "name", "filename", "lineno", "kind", "own", "cum", "_trace")

    def __init__(self, info, own, cum, trace):
        self.id, self.name, self.filename, self.lineno, self.kind = info
        self.own = own
        self.cum = cum
        self._trace = trace

    @property
    def info(self):
        return FunctionInfo(self.id, self.name, self.filename, self.lineno, self.kind)

    def _value(self, column, which):
        m = self._trace._metric_by_name.get(column)
        if m is None:
            raise AttributeError(column)
        return getattr(self, which)[column] * _scale(m)

    @property
    def calls(self):
        return self.own.get(self._trace._calls_column, 0)

    @property
    def primitive_calls(self):
        return self.cum.get(self._trace._calls_column, 0)

    @property
    def wall_own(self):
        return self._own_time("wall")

    @property
    def wall_cum(self):
        return self._cum_time("wall")

    @property
    def cpu_own(self):
        return self._own_time("cpu")

    @property
    def cpu_cum(self):
        return self._cum_time("cpu")

    def _own_time(self, clock):
        col = clock + "_own"
        if col in self._trace._metric_by_name:
            return self._value(col, "own")
        return 0.0

    def _cum_time(self, clock):
        # The producer's measured cumulative column if there is one, else the
        # inclusive sum of the own column.
        if clock + "_cum" in self._trace._metric_by_name:
            return self._value(clock + "_cum", "cum")
        if clock + "_own" in self._trace._metric_by_name:
            return self._value(clock + "_own", "cum")
        return 0.0

    def _kind_cols(self):
        k = self._trace.sample_kinds
        if not k:
            return None, None
        m = self._trace.metrics
        return m[k[0].count_metric].name, m[k[0].weight_metric].name

    @property
    def own_samples(self):
        c, _ = self._kind_cols()
        return self.own.get(c, 0) if c else 0

    @property
    def cum_samples(self):
        c, _ = self._kind_cols()
        return self.cum.get(c, 0) if c else 0

    @property
    def own_weight(self):
        _, w = self._kind_cols()
        return self.own.get(w, 0) if w else 0

    @property
    def cum_weight(self):
        _, w = self._kind_cols()
        return self.cum.get(w, 0) if w else 0

    def __repr__(self):
        return "<FunctionStats %s (%s:%d) own=%r cum=%r>" % (
            self.name, self.filename, self.lineno, self.own, self.cum)


class Edge:
    """Calls from ``caller`` to ``callee`` (FunctionStats; caller is None for
    calls from the root). ``own``/``cum`` are the callee's raw values on those
    call paths, recursion through the same edge counted once in ``cum``."""

    __slots__ = ("caller", "callee", "own", "cum", "_trace")

    def __init__(self, caller, callee, own, cum, trace):
        self.caller, self.callee, self.own, self.cum, self._trace = caller, callee, own, cum, trace

    @property
    def calls(self):
        return self.own.get(self._trace._calls_column, 0)

    @property
    def primitive_calls(self):
        return self.cum.get(self._trace._calls_column, 0)

    def _seconds(self, col, which):
        m = self._trace._metric_by_name.get(col)
        return getattr(self, which)[col] * _scale(m) if m else 0.0

    @property
    def wall_own(self):
        return self._seconds("wall_own", "own")

    @property
    def wall_cum(self):
        if "wall_cum" in self._trace._metric_by_name:
            return self._seconds("wall_cum", "cum")
        return self._seconds("wall_own", "cum")

    @property
    def samples(self):
        k = self._trace.sample_kinds
        return self.cum.get(self._trace.metrics[k[0].count_metric].name, 0) if k else 0

    def __repr__(self):
        return "<Edge %s -> %s own=%r cum=%r>" % (
            self.caller.name if self.caller else "<root>", self.callee.name, self.own, self.cum)


def load(path, keep_samples=False):
    """Reads a trace file. Raises FileNotFoundError for a missing file and
    TraceError for one that is not a readable trace; a truncated trace loads
    with a TraceWarning and ``trace.truncated`` set."""
    data = _hyprof.read_trace(os.fspath(path), keep_samples=keep_samples)
    trace = Trace(data, os.fspath(path))
    if trace.truncated:
        warnings.warn("%s: %s; loaded what is complete" % (trace.path, trace.message),
                      TraceWarning, stacklevel=2)
    return trace


def _from_data(data, path):
    return Trace(data, path)


class Trace(ReportMethods):
    """A loaded trace. See docs/ARCHITECTURE.md for the API."""

    def __init__(self, data, path=None):
        self.path = path
        self._profile = data["profile"]
        self.header = data["header"]
        self.mode = data["mode"]
        self.metrics = [Metric(*m) for m in data["metrics"]]
        self.sample_kinds = [SampleKind(*k) for k in data["sample_kinds"]]
        self.strings = data["strings"]
        s = self.strings
        self.function_table = [FunctionInfo(i, s[n], s[f], line, _KINDS[k] if k < 3 else k)
                               for i, (n, f, line, k) in enumerate(data["functions"])]
        self._threads = [Thread(i, tid, ident, s[name])
                         for i, (tid, ident, name) in enumerate(data["threads"])]
        self._nodes = array.array("I")
        self._nodes.frombytes(data["nodes"])
        self.truncated = data["truncated"]
        self.message = data["message"]
        self.dropped = data["dropped"]
        self.truncated_nodes = data["truncated_nodes"]
        self.sample_total = data["sample_total"]
        self.skipped_records = data["skipped"]
        self._samples = data["samples"]
        self._metric_by_name = {m.name: m for m in self.metrics}
        self._calls_column = next((m.name for m in self.metrics if m.kind == "calls"), None)
        self._flat_cache = {}

    def __repr__(self):
        return "<hyprof.Trace %s %s: %d functions, %d nodes, %d threads>" % (
            self.path or "", self.mode, len(self.function_table), self.node_count,
            len(self._threads))

    @property
    def node_count(self):
        return len(self._nodes) // 3

    # ------------------------------------------------------------ aggregates

    def _thread_arg(self, thread):
        if thread is None:
            return -1
        if isinstance(thread, Thread):
            thread = thread.id
        if not isinstance(thread, int) or not 0 <= thread < len(self._threads):
            raise ValueError("no thread %r in this trace (threads 0 to %d)"
                             % (thread, len(self._threads) - 1))
        return thread

    def _flat(self, thread):
        t = self._thread_arg(thread)
        cached = self._flat_cache.get(t)
        if cached is None:
            entries, edges = _hyprof.flat(self._profile, t)
            names = [m.name for m in self.metrics]
            funcs = {}
            for fid, own, cum in entries:
                funcs[fid] = FunctionStats(self.function_table[fid], dict(zip(names, own)),
                                           dict(zip(names, cum)), self)
            out_edges = []
            for caller, callee, own, cum in edges:
                out_edges.append(Edge(funcs.get(caller) if caller >= 0 else None,
                                      funcs[callee], dict(zip(names, own)),
                                      dict(zip(names, cum)), self))
            cached = self._flat_cache[t] = (funcs, out_edges)
        return cached

    def functions(self, thread=None):
        """[FunctionStats] of every function with a non-zero value, for one
        thread (a Thread or its id) or all."""
        return list(self._flat(thread)[0].values())

    def edges(self, thread=None):
        """[Edge] caller -> callee."""
        return list(self._flat(thread)[1])

    def threads(self):
        """[Thread]: id (index), os_tid, ident, name."""
        return list(self._threads)

    def _node_values(self, thread):
        v = array.array("Q")
        v.frombytes(_hyprof.node_values(self._profile, self._thread_arg(thread)))
        return v

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
        raise ValueError("no metric %r in this trace (it has %s)"
                         % (metric, ", ".join(m.name for m in self.metrics)))

    def stacks(self, metric=None, thread=None):
        """[(frames root->leaf, value)] of every node with a non-zero own
        value of ``metric`` (default: the first sample count, else the first
        own column); frames are FunctionInfo. For a cum column the value is
        the node's exclusive part (its value less its children's)."""
        mi = self._metric_index(metric)
        nm = len(self.metrics)
        vals = self._node_values(thread)
        nd = self._nodes
        n = len(nd) // 3
        col = [vals[i * nm + mi] for i in range(n)]
        if self.metrics[mi].kind == "cum":
            own = list(col)
            for i in range(1, n):
                own[nd[3 * i]] -= col[i]
            col = [max(v, 0) for v in own]
        ft = self.function_table
        paths = [()] * n
        out = []
        for i in range(1, n):
            paths[i] = paths[nd[3 * i]] + (ft[nd[3 * i + 1]],)
            if col[i]:
                out.append((paths[i], col[i]))
        return out

    def lines(self, thread=None):
        """[Line(filename, line, samples, weight)] own samples per source line
        of the first sample kind, most first (sampling traces)."""
        if not self.sample_kinds:
            return []
        k = self.sample_kinds[0]
        nm = len(self.metrics)
        vals = self._node_values(thread)
        nd = self._nodes
        ft = self.function_table
        acc = {}
        for i in range(1, len(nd) // 3):
            c = vals[i * nm + k.count_metric]
            if c:
                key = (ft[nd[3 * i + 1]].filename, nd[3 * i + 2])
                a = acc.setdefault(key, [0, 0])
                a[0] += c
                a[1] += vals[i * nm + k.weight_metric]
        return sorted((Line(f, ln, c, w) for (f, ln), (c, w) in acc.items()),
                      key=lambda x: (-x.samples, x.filename, x.line))

    def samples(self):
        """[Sample(thread, node, kind, time, weight)] in file order; time in
        ns since the start. Needs ``load(path, keep_samples=True)``."""
        if self._samples is None:
            raise TraceError("%s: samples were not kept; load with keep_samples=True"
                             % (self.path or "trace"))
        cols = {}
        for name, code in (("thread", "I"), ("node", "I"), ("kind", "I"), ("time", "Q"),
                           ("weight", "Q")):
            a = array.array(code)
            a.frombytes(self._samples[name])
            cols[name] = a
        return [Sample(*x) for x in zip(cols["thread"], cols["node"], cols["kind"],
                                        cols["time"], cols["weight"])]

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
            "functions": [(f.name, f.filename, f.lineno, _KINDS.index(f.kind))
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
        folded into the rows)."""
        _hyprof.write_trace(os.fspath(path), self.to_data())


if sys.version_info < (3, 11):  # pragma: no cover
    raise ImportError("hyprof needs CPython 3.11 or later")
