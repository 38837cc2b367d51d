"""hyprof: a profiler for CPython, deterministic or sampling, one trace format."""

from ._hyprof import __version__
from .trace import (Edge, FunctionInfo, FunctionStats, Line, Metric, Node, Sample, SampleKind,
                    Thread, Trace, TraceError, TraceWarning, load)

__all__ = [
    "__version__",
    "Edge", "FunctionInfo", "FunctionStats", "Line", "Metric", "Node", "Sample", "SampleKind",
    "Thread", "Trace", "TraceError", "TraceWarning", "load",
]
