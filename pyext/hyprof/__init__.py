"""hyprof: a profiler for CPython, deterministic or sampling, one trace format."""

from ._hyprof import __version__
from .profiler import Profiler, ProfilerError, profile
from .sampling import EventError
from .trace import (Edge, FunctionInfo, FunctionStats, Line, Metric, Node, Sample, SampleKind,
                    Thread, Trace, TraceError, TraceWarning, load)

__all__ = [
    "__version__",
    "Profiler", "ProfilerError", "profile", "EventError",
    "Edge", "FunctionInfo", "FunctionStats", "Line", "Metric", "Node", "Sample", "SampleKind",
    "Thread", "Trace", "TraceError", "TraceWarning", "load",
]
