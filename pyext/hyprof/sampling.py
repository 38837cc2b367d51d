"""The sampling mode: ``hyprof.Profiler(mode="sampling", ...)``.

A trigger interrupts each thread (a perf event's overflow, a POSIX CPU-time
timer, setitimer, or the wall-clock sampler), a signal handler records the
thread's stack (code objects and instruction offsets) into that thread's
ring, and a resolver thread turns the records into the profile with the GIL
every ``flush_interval`` seconds and streams them to the trace file, so memory
stays bounded however long the program runs. docs/sampling.md has the
details: triggers and their fallback chain, signal safety, wall-clock
semantics, code-object lifetime, fork.
"""

import atexit
import functools
import os
import signal as _signal
import sys
import threading

from . import _files, _hyprof, _options, _scope, memory as _memory
from ._scope import hide_code
from .errors import EventError, ProfilerError

__all__ = ["EventError", "SamplingEngine", "create", "hide_code"]

# The one running session of this process (signals and rings are per process).
_active = None
_active_lock = threading.Lock()


_MIN_CLOCK_PERIOD = 50000  # ns: 1 s / 20000, the highest frequency
DEFAULT_LOCK_INTERVAL = 0.001  # s of lock waits (and of holds) per sample, on average

# The collectors of samples taken when the program does something (a lock
# wait, a raise) rather than at a signal: the engine option that turns one on
# (its value is the collector's interval), and its functions. Each is started
# before the sampler and stopped before it, whose stop merges its samples.
_COLLECTORS = (
    ("locks", _hyprof.locks_start, _hyprof.locks_stop, _hyprof.locks_stats),
    ("exceptions", _hyprof.exceptions_start, _hyprof.exceptions_stop,
     _hyprof.exceptions_stats),
)


def create(event=None, period=None, frequency=None, clock="cpu", depth=128, signal=None,
           output=None, flush_interval=0.1, ring_size=1 << 17, disable=None, memory=False,
           memory_interval=_memory.DEFAULT_INTERVAL, memory_only=False,
           memory_max_frames=_memory.DEFAULT_MAX_FRAMES, windows=False, locks=False,
           lock_interval=DEFAULT_LOCK_INTERVAL, exceptions=False, exception_interval=1):
    """Makes the sampling engine behind Profiler(mode="sampling").

    event: a name libpfm4 encodes ("cycles", "instructions", "cache-misses",
      "INST_RETIRED.ANY", "cpu-clock", "task-clock"); None picks the best
      trigger that works here (hardware cycles, cpu-clock, a POSIX CPU timer,
      setitimer) and records the chain tried in the trace header.
    period: events between samples (nanoseconds for clocks and timers);
    frequency: samples per second (default 100); give one of them.
    clock: "cpu" (samples running threads) or "wall" (also waiting ones).
    depth: frames kept per sample; deeper stacks keep their innermost frames
      under a "[truncated]" frame.
    signal: the signal number that carries samples (default SIGPROF).
    output: path the trace is streamed to (default: a temporary file).
    disable: trigger kinds to skip when choosing ("hardware", "perf",
      "timer", "itimer"), to force a fallback.
    memory: also sample allocations, one per memory_interval bytes on
      average (default 512 KiB), into the same trace (docs/memory.md);
      memory_only=True samples allocations alone (hyprof.memory).
    windows: nothing is streamed; the samples are taken out in windows while
      the session runs (hyprof.continuous, docs/continuous.md).
    locks: also sample lock contention (threading.Lock, RLock and what uses
      them), one wait or hold per lock_interval seconds of them on average
      (default 1 ms), as sample kinds lock-wait and lock-hold (docs/locks.md).
    exceptions: also count exceptions raised (Python 3.12+), one in
      exception_interval on average (default 1: every one), as sample kind
      exceptions (docs/exceptions.md).
    """
    mem, only, mem_interval, mem_frames = _memory.check_options(
        memory, memory_interval, memory_only, memory_max_frames)
    if only:
        given = [n for n, v in (("event", event), ("period", period), ("frequency", frequency),
                                ("signal", signal), ("output", output), ("disable", disable))
                 if v is not None] + (["clock"] if clock != "cpu" else []) + (
                     ["locks"] if locks else []) + (["exceptions"] if exceptions else [])
        if given:
            raise ProfilerError("memory_only=True samples allocations alone, without the CPU "
                                "sampler: %s do not apply (use memory=True for both)"
                                % ", ".join("%s=" % n for n in given))
        return _memory.create(memory, memory_interval, memory_only, memory_max_frames)
    if clock not in ("cpu", "wall"):
        raise ProfilerError("clock=%r must be 'cpu' or 'wall'" % (clock,))
    if event is not None and not isinstance(event, str):
        raise ProfilerError("event=%r must be an event name (str), such as 'cpu-clock'"
                            % (event,))
    if period is not None and frequency is not None:
        raise ProfilerError("give period= or frequency=, not both")
    _options.number("period", period, int, 1, 1 << 62)
    if period is not None and period < _MIN_CLOCK_PERIOD and (
            event is None or event.lower().rsplit(":", 1)[-1] in ("cpu-clock", "task-clock")):
        # A clock or timer period is in nanoseconds; below the 20000 Hz
        # that frequency= allows, the signals leave the program almost no
        # time to run (period=1 did not finish a 20 ms script in a minute).
        raise ProfilerError("period=%d is too short for a clock: it counts nanoseconds, and "
                            "must be at least %d (20000 samples per second)"
                            % (period, _MIN_CLOCK_PERIOD))
    _options.number("frequency", frequency, (int, float), 1, 20000)
    _options.number("depth", depth, int, 1, 512)
    _options.number("flush_interval", flush_interval, (int, float), 0.001, 60)
    _options.number("ring_size", ring_size, int, 1024, 1 << 26)
    if signal is None:
        signal = _signal.SIGPROF
    if isinstance(signal, bool) or not isinstance(signal, int):
        raise ProfilerError("signal=%r must be a signal number such as signal.SIGPROF" % (signal,))
    for name, value in (("locks", locks), ("exceptions", exceptions)):
        if not isinstance(value, bool):
            raise ProfilerError("%s=%r must be True or False" % (name, value))
    _options.number("lock_interval", lock_interval, (int, float), 1e-6, 60, optional=False)
    _options.number("exception_interval", exception_interval, int, 1, 1 << 30, optional=False)
    if exceptions and sys.version_info < (3, 12):
        raise ProfilerError("exceptions=True needs Python 3.12 or later: hyprof counts raises "
                            "through sys.monitoring's RAISE event, which this Python does not "
                            "have")
    if windows and (output is not None or mem):
        raise ProfilerError("a continuous profiler keeps its samples in memory and hands them "
                            "out in windows: output= does not apply, and memory= is its own "
                            "(hyprof.continuous.ContinuousProfiler(memory=True))")
    if output is not None:
        output = _options.path("output", output, "a file path")
    if disable is not None:
        # One kind alone may be given as a string, not split into letters.
        disable = (disable,) if isinstance(disable, str) else tuple(disable)
        for d in disable:
            if d not in ("hardware", "perf", "timer", "itimer"):
                raise ProfilerError("disable=%r: each item must be 'hardware', 'perf', 'timer' "
                                    "or 'itimer'" % (disable,))
    return SamplingEngine(event=event, period=period, frequency=frequency, clock=clock,
                          depth=depth, signal=int(signal), output=output,
                          flush_interval=float(flush_interval), ring_size=ring_size,
                          disable=disable,
                          memory=(mem_interval, mem_frames) if mem else None,
                          windows=bool(windows),
                          locks=int(lock_interval * 1e9) if locks else None,
                          exceptions=exception_interval if exceptions else None)


def end_scope(engine):
    """The frame that called the profiled program returns while engine's
    session goes on (the Django middleware's streamed responses): samples
    stop there no longer."""
    with _active_lock:
        if engine.root is not None and _active is engine and engine.running:
            engine.root = None
            _scope.set_scope(None)


class SamplingEngine:
    """One sampling session at a time per process; start() and stop() may be
    called many times (each start begins a new trace) and from any thread.

    ``root``, when set before start() (Profiler._start_below), is the frame
    that calls the profiled program: the session's samples stop there, so
    that it and its callers are not in the profile; stop() resets it."""

    engine = "sampling"

    def __init__(self, **options):
        self.root = None
        self._opts = options
        self._path = None
        self._own_path = False
        self._info = None
        self._sampler = None  # the _hyprof.Sampler of the last start
        self._stats = None
        self._resolver = None
        self._stop_event = None
        self._prev_hook = None
        self._hook = None
        self._pid = None
        self._session = 0
        self._memory = None
        self.running = False

    # ------------------------------------------------------------ lifecycle

    def start(self):
        global _active
        o = self._opts
        with _active_lock:
            if self.running:
                raise ProfilerError("this profiler is already running")
            if _active is not None and _active.running:
                raise ProfilerError("another sampling profiler is running in this process; "
                                    "stop it first")
            self._cleanup_path()
            if o.get("windows"):
                self._path, self._own_path = None, False
            elif o["output"] is not None:
                self._path, self._own_path = os.fspath(o["output"]), False
            else:
                fd, self._path = _files.private_temp("hyprof-", ".hyprof")
                _OWN_TEMPS.add(self._path)
                os.close(fd)
                self._own_path = True
            # python, pid, argv and start_time: the engine sets them, as the
            # other producers do.
            meta = {"executable": sys.executable}
            # The resolver exists before the thread hook, so it is never sampled.
            self._stop_event = threading.Event()
            ready = threading.Event()
            self._resolver = threading.Thread(target=self._resolve_loop, args=(ready,),
                                              name="hyprof-resolver", daemon=True)
            # The allocation collector starts first, so that a failure of
            # either leaves nothing running.
            if o.get("locks") is not None:
                # asyncio.Lock's subclass, imported before the scope is set
                # that leaves its frames out.
                from . import _asyncio_locks  # noqa: F401
            # The scope of the walks is set before any signal is armed.
            _scope.set_scope(self.root)
            if o.get("memory") is not None:
                self._memory = _memory.MemoryEngine(*o["memory"])
                self._memory.start()
            collectors = [c for c in _COLLECTORS if o.get(c[0]) is not None]
            for i, (name, start, _, _) in enumerate(collectors):
                try:
                    start(o[name], o["depth"])
                except BaseException:
                    for _, _, stop, _ in collectors[:i]:
                        stop()
                    if o.get("memory") is not None:
                        self._memory.stop()
                    raise
            try:
                self._sampler = _hyprof.Sampler(
                    self._path, event=o["event"], clock=o["clock"],
                    period=o["period"] or 0, frequency=float(o["frequency"] or 0),
                    depth=o["depth"], signo=o["signal"], ring_words=o["ring_size"], meta=meta,
                    disable=o["disable"], threads_active=threading._active,
                    memory=o.get("memory") is not None, locks=o.get("locks") is not None,
                    exceptions=o.get("exceptions") is not None)
                self._info = self._sampler.start()
            except BaseException:
                if o.get("memory") is not None:
                    self._memory.stop()
                for _, _, stop, _ in collectors:
                    stop()
                self._cleanup_path()
                self._end_scope()
                raise
            self._pid = os.getpid()
            self._session += 1
            self.running = True
            _active = self
            self._resolver.start()
            ready.wait()
            self._prev_hook = getattr(threading, "_profile_hook", None)
            self._hook = _thread_hook(self._sampler.register_thread, self._prev_hook)
            threading.setprofile(self._hook)
            if self._info.get("trigger") == "setitimer":
                _guard_exec()
        return self

    def _restore_thread_hook(self):
        # Only while the hook is still ours: a profiler started before this
        # one and stopped since (a deterministic one) has put its own choice
        # there, and bringing back its hook would leave new threads calling
        # the hook of a profiler that is gone (and refuse its next start).
        if getattr(threading, "_profile_hook", None) is self._hook:
            threading.setprofile(self._prev_hook)
        self._hook = None

    def stop(self):
        global _active
        with _active_lock:
            if not self.running:
                if self._pid is not None and self._pid != os.getpid():
                    return self  # started in the parent: nothing runs here
                raise ProfilerError("the sampling profiler is not running")
            self.running = False
            if _active is self:
                _active = None
            self._restore_thread_hook()
            self._stop_event.set()
            if threading.current_thread() is not self._resolver:
                self._resolver.join()
            if self._opts.get("memory") is not None and self._memory.running:
                self._memory.stop()  # before the sampler, which merges its samples
            for name, _, stop, stats in _COLLECTORS:
                if self._opts.get(name) is not None and stats()["running"]:
                    stop()  # the same
            try:
                self._stats = self._sampler.stop()
            finally:
                self._end_scope()
        replaced = self._stats["lost"].get("handler-replaced", 0)
        if replaced:
            import warnings
            signo = (self._info or {}).get("signal") or _signal.SIGPROF
            try:
                name = _signal.Signals(signo).name
            except ValueError:
                name = "signal %d" % signo
            warnings.warn("hyprof: the program replaced the sampler's handler of %s while it "
                          "ran; about %d samples went to the program's handler instead (give "
                          "Profiler(signal=...) another signal to leave %s to the program)"
                          % (name, replaced, name), RuntimeWarning, stacklevel=3)
        return self

    def _end_scope(self):
        # The root frame is about to return: no later walk may compare
        # against its address.
        self.root = None
        _scope.set_scope(None)

    def _resolve_loop(self, ready):
        self._sampler.exclude_thread()
        _hyprof.alloc_exclude_thread()
        ready.set()
        interval = self._opts["flush_interval"]
        while not self._stop_event.wait(interval):
            try:
                if not self._sampler.sync():
                    return
            except Exception as e:  # an I/O error on the trace: stop() reports it
                sys.stderr.write("hyprof: sampling resolver: %s\n" % e)
                return

    def _after_fork_child(self):
        self.running = False
        self._stop_event = None
        self._resolver = None
        self._path = None
        self._own_path = False
        self._restore_thread_hook()

    # ------------------------------------------------------------ results

    @property
    def info(self):
        """What the session really used: trigger, event, event_name (libpfm4's
        fully qualified name), period, frequency, signal, fallback (the chain
        tried)."""
        return dict(self._info) if self._info else None

    def heap(self):
        """The live heap of the allocation collector (memory=True); see
        hyprof.Profiler.heap()."""
        if self._opts.get("memory") is None:
            raise ProfilerError("heap() needs memory=True")
        if self._memory is None:
            raise ProfilerError("the profiler has not run yet")
        return self._memory.heap()

    @property
    def stats(self):
        """Samples taken and lost (by reason) in the last session."""
        if self.running:
            return self._sampler.stats()
        return self._stats

    def take_window(self):
        """The profile of the samples since the previous window (a capsule
        for _hyprof.merge_profiles), from an engine made with windows=True;
        after stop(), the last one, once."""
        if not self._opts.get("windows"):
            raise ProfilerError("windows are taken from an engine made with windows=True")
        if self._sampler is None:
            raise ProfilerError("no sampling session to take a window of")
        return self._sampler.window()

    def trace(self):
        if self.running:
            raise ProfilerError("stop the profiler before reading its trace")
        if self._opts.get("windows"):
            raise ProfilerError("a continuous profiler's samples are taken in windows "
                                "(hyprof.continuous)")
        if self._path is None:
            if self._pid is not None and self._pid != os.getpid():
                raise ProfilerError("this profiler ran in the parent process (pid %d); a "
                                    "forked child has no trace of it" % self._pid)
            raise ProfilerError("the profiler has not run yet")
        from .trace import load
        return load(self._path)

    def write(self, path):
        if self.running:
            raise ProfilerError("stop the profiler before writing its trace")
        if self._path is None:
            raise ProfilerError("the profiler has not run yet")
        if os.path.abspath(path) != os.path.abspath(self._path):
            # A copy cut short by a full disk never takes path's place.
            _hyprof.copy_trace(self._path, path)
        return path

    @property
    def trace_path(self):
        """The file the trace was streamed to."""
        return self._path

    def _cleanup_path(self):
        if self._own_path and self._path is not None:
            _OWN_TEMPS.discard(self._path)
            try:
                os.unlink(self._path)
            except OSError:
                pass
        self._path = None
        self._own_path = False

    def __del__(self):
        if not getattr(self, "running", False):
            try:
                self._cleanup_path()
            except Exception:
                pass


def _thread_hook(register, prev):
    """The profile function new threads start with while a session runs:
    register is the session's Sampler.register_thread, prev the function
    they would have had."""
    def hook(frame, event, arg):
        # Runs once, in a new thread, at its first call: registers the
        # thread, then gives it the profile function it would have had.
        sys.setprofile(prev)
        register()
        if prev is not None:
            return prev(frame, event, arg)
        return None
    # What another profiler's refusal to start names, and the hook it
    # hands new threads on to (the deterministic mode's stop() reads it).
    hook.__qualname__ = hook.__name__ = "hyprof_sampling_thread_hook"
    hook.__wrapped__ = prev
    return hook


# The stream files this process created: removed at exit, whoever still
# holds their profiler (a module global outlives every __del__).
_OWN_TEMPS = set()
_OWN_PID = os.getpid()


def _at_exit():
    s = _active
    if s is not None and s.running and s._pid == os.getpid():
        try:
            s.stop()
        except Exception:
            pass
    if os.getpid() == _OWN_PID:
        for path in list(_OWN_TEMPS):
            try:
                os.unlink(path)
            except OSError:
                pass
        _OWN_TEMPS.clear()


def _guard_exec():
    """The setitimer trigger's ITIMER_PROF survives execve(2), and the new
    program, where SIGPROF has its default action, would be killed by the
    first expiry. os.execv and os.execve (every os.exec* function calls one of
    them) disarm it first while a session uses it, and arm it again if the
    exec fails. Installed once, at the first such session."""
    if getattr(os.execv, "_hyprof_guard", False):
        return

    def guard(real):
        @functools.wraps(real)
        def exec_(*args, **kwargs):
            s = _active
            old = None
            if s is not None and s.running and s._pid == os.getpid() and \
                    (s._info or {}).get("trigger") == "setitimer":
                old = _signal.setitimer(_signal.ITIMER_PROF, 0)
            try:
                return real(*args, **kwargs)
            finally:
                # Reached only when the exec failed.
                if old is not None and _active is s and s.running:
                    _signal.setitimer(_signal.ITIMER_PROF, *old)
        exec_._hyprof_guard = True
        return exec_

    os.execv = guard(os.execv)
    os.execve = guard(os.execve)


def _after_fork_in_child():
    global _active, _OWN_PID
    _OWN_TEMPS.clear()  # the parent's, which it removes itself
    _OWN_PID = os.getpid()
    _hyprof.Sampler.after_fork_child()
    _hyprof._locks_after_fork()
    _hyprof._exceptions_after_fork()
    s = _active
    _active = None
    if s is not None:
        s._after_fork_child()


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)


def _hide_own_paths():
    hook = _thread_hook(None, None)
    hide_code(SamplingEngine.start.__code__, SamplingEngine.stop.__code__, hook.__code__,
              _at_exit.__code__, _after_fork_in_child.__code__)


_hide_own_paths()
