"""hyprof: a profiler for CPython, deterministic or sampling, one trace format."""

from ._hyprof import __version__
from .errors import EventError, ProfilerError, TraceError, TraceWarning
from .labels import label
from .profiler import Profiler, profile
from .trace import (Edge, FunctionInfo, FunctionStats, GcStats, Line, Metric, Node, Sample,
                    SampleKind, Thread, Trace, load, loads)

__all__ = [
    "__version__",
    "Profiler", "ProfilerError", "profile", "EventError", "label",
    "Edge", "FunctionInfo", "FunctionStats", "GcStats", "Line", "Metric", "Node", "Sample", "SampleKind",
    "Thread", "Trace", "TraceError", "TraceWarning", "load", "loads",
]
