"""The Profiler class and the ``profile`` decorator (their ProfilerError is
hyprof.errors').

``Profiler(mode="deterministic")`` records every call on every thread with
wall and CPU time (the C engine in pyext/det.c); other modes plug in through
``_MODES``: a mode is a factory taking the profiler's keyword options and
returning an engine with ``start()``, ``stop()``, ``trace()`` and
``write(path)``.
"""

import atexit
import functools
import inspect
import os
import sys

from . import _hyprof, _scope, sampling
from .errors import ProfilerError

__all__ = ["Profiler", "ProfilerError", "profile"]


def _deterministic(builtins=True, engine="auto", max_nodes=1000000, cpu_clock="auto",
                   context=None, locks=False, exceptions=False):
    if not isinstance(builtins, bool):
        raise ProfilerError("builtins=%r must be True or False" % (builtins,))
    if not isinstance(engine, str):
        raise ProfilerError("engine=%r must be a string: 'auto', 'setprofile' or 'monitoring'"
                            % (engine,))
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int):
        raise ProfilerError("max_nodes=%r must be an integer (0 for no limit)" % (max_nodes,))
    if not isinstance(cpu_clock, str):
        raise ProfilerError("cpu_clock=%r must be 'auto' or 'syscall'" % (cpu_clock,))
    for name, value in (("locks", locks), ("exceptions", exceptions)):
        if not isinstance(value, bool):
            raise ProfilerError("%s=%r must be True or False" % (name, value))
    return _hyprof.DetProfiler(builtins=builtins, engine=engine, max_nodes=max_nodes,
                               cpu_clock=cpu_clock, context=context, locks=locks,
                               exceptions=exceptions)


# Mode name -> factory(**options) -> engine.
_MODES = {
    "deterministic": _deterministic,
    "sampling": sampling.create,
}


def _options_of(mode):
    """The keyword options a built-in mode takes, or None if unknown."""
    if mode not in ("deterministic", "sampling"):
        return None
    return list(inspect.signature(_MODES[mode]).parameters)


class Profiler:
    """Profiles the whole process (every thread) between start() and stop().

    >>> p = Profiler()               # deterministic: every call, wall and CPU time
    >>> with p:
    ...     work()
    >>> p.trace().functions()        # or p.write("out.hyprof")

    Options of the deterministic mode: ``builtins`` (also record C functions,
    named as cProfile names them), ``engine`` ("auto", "setprofile" or, on
    Python 3.12+, "monitoring"), ``max_nodes`` (call paths kept before the
    rest folds into "[truncated]"; 0 for no limit), ``cpu_clock`` ("auto"
    or "syscall") and ``context`` (a ``(contextvars.ContextVar, value)``
    pair: record only the calls made while the variable holds that value,
    e.g. one web request's work across its asyncio tasks and threads;
    several such profilers, one per value of one variable, run at the same
    time, each recording only its own context's calls). Raises
    ProfilerError for a bad option, and from start() when another profiler
    (hyprof's, cProfile, yappi, a debugger's profile function) is in the
    way.
    """

    def __init__(self, mode="deterministic", **options):
        factory = _MODES.get(mode) if isinstance(mode, str) else None
        if factory is None:
            raise ProfilerError("mode=%r is not known: use %s" % (
                mode, " or ".join(repr(m) for m in _MODES)))
        accepted = _options_of(mode)
        for name, value in options.items():
            if accepted is not None and name not in accepted:
                others = [m for m in _MODES if m != mode and name in (_options_of(m) or ())]
                raise ProfilerError("%s=%r is not an option of mode=%r%s; it takes %s" % (
                    name, value, mode,
                    " (it is one of mode=%r)" % others[0] if others else "",
                    ", ".join(accepted)))
        try:
            self._engine = factory(**options)
        except TypeError as e:
            raise ProfilerError("bad option for mode=%r: %s" % (mode, e)) from None
        self._started = False
        self.mode = mode
        hide = getattr(self._engine, "hide", None)
        if hide is not None:
            hide(_STOP_PATH)

    @property
    def running(self):
        return bool(self._engine.running)

    @property
    def engine(self):
        """The engine's name ("setprofile" or "monitoring" in deterministic mode)."""
        return getattr(self._engine, "engine", self.mode)

    def start(self):
        self._engine.start()
        self._started = True
        return self

    def _start_below(self, frame):
        """start() for a program that frame calls: in sampling mode, a
        sample stops at frame, so that frame and its callers (hyprof run,
        a wrapper) are not the program's. The deterministic mode records
        only calls made after start() anyway."""
        if hasattr(self._engine, "root"):
            self._engine.root = frame
        self._engine.start()
        self._started = True
        return self

    def stop(self):
        self._engine.stop()
        return self

    def __enter__(self):
        self._engine.start()
        self._started = True
        return self

    def __exit__(self, *exc):
        self._engine.stop()
        return False

    def trace(self):
        """The profile as a hyprof.Trace, without touching the disk."""
        self._check_ran()
        return self._engine.trace()

    def write(self, path):
        """Writes the trace to path (a .hyprof file)."""
        path_ = os.fspath(path)
        self._check_ran()
        self._engine.write(path_)
        return path

    def _check_ran(self):
        # An empty trace written before any start() would look like a
        # profile of a program that did nothing.
        if not self._started:
            raise ProfilerError("the profiler has not run yet: start() and stop() it first")

    def heap(self):
        """The live heap of the allocation collector (mode="sampling" with
        memory=True): [(stack, bytes)], largest first, where stack is a tuple
        of hyprof.memory.Frame(name, filename, line), root first, and bytes
        the estimated bytes those sampled blocks stand for. While running it
        is the heap now; after stop, the heap at stop."""
        heap = getattr(self._engine, "heap", None)
        if heap is None:
            raise ProfilerError("heap() needs mode='sampling' with memory=True")
        return heap()

    def __repr__(self):
        return "<hyprof.Profiler mode=%s engine=%s %s>" % (
            self.mode, self.engine, "running" if self.running else "stopped")


# The wrappers through which a program stops the profiler: their calls are
# the profiler's own and are left out of the profile.
_STOP_PATH = (Profiler.stop.__code__, Profiler.__exit__.__code__)
# Every path of the wrappers into and out of an engine: a sample with one of
# them on its stack is the profiler's own.
_scope.hide_code(*_STOP_PATH, Profiler.start.__code__, Profiler.__enter__.__code__,
                 Profiler._start_below.__code__)


def _report(trace, limit=20):
    from .render import render
    return render(trace, "text", limit=limit)


def profile(func=None, *, output=None, report=None, limit=20, **options):
    """Profiles every call of the decorated function, accumulating over calls.

    ``@profile`` or ``@profile(output="f.hyprof", builtins=False, ...)``.
    With ``output``, the trace is written there after each outermost call;
    otherwise (or with ``report=True``) a table of the ``limit`` most
    expensive functions is printed to stderr when the program exits. The
    wrapper has ``.profiler`` (a Profiler) and ``.trace()``. A call made while
    the function's own profiling is running (recursion) runs straight
    through; another active profiler makes the call raise ProfilerError.
    """
    if func is None:
        return functools.partial(profile, output=output, report=report, limit=limit, **options)
    if not callable(func):
        raise ProfilerError("profile() decorates a function, not %r" % (func,))
    profiler = Profiler(**options)
    engine = profiler._engine
    state = {"calls": 0}

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        # The engine's attribute, not the property: reading it is no call
        # that would show in the profile.
        if engine.running:
            return func(*args, **kwargs)
        # A sample stops at this wrapper: the profile is func's.
        profiler._start_below(sys._getframe())
        try:
            return func(*args, **kwargs)
        finally:
            profiler.stop()
            state["calls"] += 1
            if output is not None:
                profiler.write(output)

    def _print_report():
        if state["calls"]:
            sys.stderr.write("hyprof: %s (%d call%s)\n%s\n" % (
                getattr(func, "__qualname__", func), state["calls"],
                "" if state["calls"] == 1 else "s", _report(profiler.trace(), limit)))

    wrapper.profiler = profiler
    wrapper.trace = profiler.trace
    # A recursive call passes the wrapper again: its frame is not func's.
    if hasattr(engine, "omit"):
        engine.omit((), (wrapper.__code__,))
    elif profiler.mode == "sampling":
        _scope.hide_code(wrapper.__code__, callees=False)
    if report or (report is None and output is None):
        atexit.register(_print_report)
    return wrapper
