"""Continuous profiling: one sampler for the life of a process, cut into
windows (docs/continuous.md).

A service starts it once::

    import hyprof.continuous
    prof = hyprof.continuous.start(frequency=100, directory="/var/lib/app/profiles")

and then hands what it saw to whoever asks: ``take()`` gives the samples
since the previous ``take()``, ``collect(30)`` those of the next 30 seconds
(what ``/debug/pprof/profile?seconds=30`` serves, hyprof.serve), ``recent(60)``
those of the last minute; with ``directory=`` every ``window`` seconds is
also written there as a complete trace, the oldest files removed beyond
``keep`` files or ``max_bytes``.

How it stays bounded: the sampler's profile is cut every ``tick`` seconds
(1 s by default; the C engine swaps in a fresh profile, so its string,
function and call-path tables hold only what one tick saw), and the ticks of
the last ``retain`` seconds are kept, as C profiles; a window is those ticks
added up in C when someone asks for it. Memory follows what ``retain``
seconds of the program ran, however long the process lives and however much
code it churns. Cutting, adding up and writing run in the profiler's own
daemon thread or the caller's; the program's threads only take samples.
"""

import collections
import os
import re
import socket
import sys
import threading
import time

from . import _hyprof, _options, _scope, memory as _memory, sampling
from .errors import ProfilerError

DEFAULT_FREQUENCY = 100
# A window written to disk, and the longest collect(): at most retain.
DEFAULT_WINDOW = 60.0
DEFAULT_RETAIN = 300.0
_FILE_RE = re.compile(r"^hyprof-\d{8}T\d{6}\.\d{6}Z-.+-\d+\.hyprof$")

_current = None
_current_lock = threading.Lock()


def _seconds(name, value, low, high):
    return float(_options.number(name, value, (int, float), low, high, optional=False))


class ContinuousProfiler:
    """An always-on sampler from which windows are taken while it runs.

    frequency, clock, event, depth, signal, disable: as for
    Profiler(mode="sampling").
    tick: seconds between cuts of the sampler's profile (0.1 to 60).
    retain: seconds of ticks kept for collect() and recent() (at least
      window and tick).
    directory, window, keep, max_bytes: with a directory, every window
      seconds is written there as a trace; then at most keep files (a count)
      and max_bytes bytes of them stay, the oldest removed first.
    memory, memory_interval, memory_max_frames: also sample allocations
      (docs/memory.md), for memory(): the allocations since start and the
      live heap now (what /debug/pprof/allocs and /heap serve). Windows hold
      the CPU or wall samples, not the allocations.
    locks, lock_interval, exceptions, exception_interval: also sample lock
      contention (docs/locks.md) and raised exceptions (docs/exceptions.md),
      as Profiler(mode="sampling") does: their samples are cut into the same
      ticks, so every window, collect() and /debug/pprof/profile holds the
      lock-wait, lock-hold and exceptions sample types beside the CPU's.
    """

    def __init__(self, frequency=DEFAULT_FREQUENCY, clock="cpu", event=None, depth=128,
                 signal=None, disable=None, tick=1.0, retain=DEFAULT_RETAIN, directory=None,
                 window=DEFAULT_WINDOW, keep=None, max_bytes=None, memory=False,
                 memory_interval=_memory.DEFAULT_INTERVAL,
                 memory_max_frames=_memory.DEFAULT_MAX_FRAMES, locks=False,
                 lock_interval=sampling.DEFAULT_LOCK_INTERVAL, exceptions=False,
                 exception_interval=1):
        # What a forked child's profiler is made with (_after_fork_in_child).
        self._options = dict(frequency=frequency, clock=clock, event=event, depth=depth,
                             signal=signal, disable=disable, tick=tick, retain=retain,
                             directory=directory, window=window, keep=keep,
                             max_bytes=max_bytes, memory=memory,
                             memory_interval=memory_interval,
                             memory_max_frames=memory_max_frames, locks=locks,
                             lock_interval=lock_interval, exceptions=exceptions,
                             exception_interval=exception_interval)
        mem, _, mem_interval, mem_frames = _memory.check_options(
            memory, memory_interval, False, memory_max_frames)
        # Folded: a collector that runs for days keeps rows, not samples.
        self._memory = _memory.MemoryEngine(mem_interval, mem_frames, fold=True) \
            if mem else None
        self.tick = _seconds("tick", tick, 0.1, 60)
        self.window = _seconds("window", window, 1, 86400)
        self.retain = _seconds("retain", retain, 0.1, 86400)
        if self.retain < max(self.tick, self.window if directory is not None else 0):
            raise ProfilerError(f"retain={retain!r} must be at least tick and window: the "
                                "ticks of a window are kept until it is written")
        _options.number("keep", keep, int, 1)            # files
        _options.number("max_bytes", max_bytes, int, 1)  # bytes
        if (keep is not None or max_bytes is not None) and directory is None:
            raise ProfilerError("keep= and max_bytes= rotate the windows written to directory=; "
                                "give a directory")
        if directory is not None:
            directory = _options.path("directory", directory)
        self.directory = directory
        self.keep = keep
        self.max_bytes = max_bytes
        self._engine = sampling.create(event=event, frequency=frequency, clock=clock,
                                       depth=depth, signal=signal, disable=disable,
                                       windows=True, locks=locks, lock_interval=lock_interval,
                                       exceptions=exceptions,
                                       exception_interval=exception_interval)
        self._lock = threading.Lock()         # ticks, sequence numbers, cursors
        self._cut_lock = threading.Lock()     # one cut at a time
        # (seq, start and end in Unix seconds, end in monotonic seconds, the
        # C profile of the tick)
        self._ticks = collections.deque()
        self._tick_start = 0.0
        self._seq = 0
        self._take_cursor = 0
        self._disk_cursor = 0
        self._disk_due = 0.0
        self._thread = None
        self._stop = threading.Event()
        self._pid = None
        self.stats = {"ticks": 0, "tick_errors": 0, "windows_written": 0, "write_errors": 0,
                      "files_removed": 0, "bytes_written": 0, "last_error": None}

    # ------------------------------------------------------------ lifecycle

    @property
    def running(self):
        return self._engine.running and self._pid == os.getpid()

    def _engine_was_running(self):
        """In a forked child: whether the parent's profiler was running when
        it forked (its stop() had not run)."""
        return not self._stop.is_set()

    @property
    def info(self):
        """The sampler's trigger, event, period and frequency."""
        return self._engine.info

    def start(self):
        if self.directory is not None:
            try:
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
            except OSError as e:
                raise ProfilerError(f"directory {self.directory!r}: {e.strerror or e}") from None
            if not os.path.isdir(self.directory):
                raise ProfilerError(f"directory {self.directory!r} is not a directory")
        # Made before the engine starts: with locks=True a lock made after is
        # profiled, and the windows thread waits on this one every tick.
        self._stop = threading.Event()
        self._engine.start()
        if self._memory is not None:
            try:
                self._memory.start()
            except BaseException:
                self._engine.stop()
                raise
        self._tick_start = self._start_time = time.time()
        self._pid = os.getpid()
        now = time.monotonic()
        self._disk_due = now + self.window
        self._thread = threading.Thread(target=self._loop, name="hyprof-windows", daemon=True)
        self._thread.start()
        return self

    def _start_below(self, frame):
        """start() for a program that frame calls (hyprof run --serve): the
        samples of that thread stop at frame, so that it and its callers are
        not the program's. stop() ends that scope."""
        self._engine.root = frame
        return self.start()

    def stop(self):
        """Stops sampling; a directory gets its last, shorter window."""
        if not self.running:
            raise ProfilerError("the continuous profiler is not running")
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self._memory is not None and self._memory.running:
            self._memory.stop()
        self._engine.stop()
        with self._cut_lock:
            self._add_tick(self._engine.take_window())
        if self.directory is not None:
            self._write_window()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.running:
            self.stop()
        return False

    # ------------------------------------------------------------ windows

    def take(self):
        """A Trace of the samples since the previous take() (or the start),
        as far back as ``retain`` seconds; its header has window_start,
        window_end and duration, and lost_seconds when ticks older than
        retain were gone."""
        self._cut()
        with self._lock:
            since, self._take_cursor = self._take_cursor, self._seq
        return self._window(since, self._take_cursor)

    def collect(self, seconds):
        """A Trace of the samples of the next ``seconds`` (blocks for them).
        Calls may overlap: each gets its own seconds."""
        seconds = _seconds("seconds", seconds, 0.001, self.retain)
        if not self.running:
            raise ProfilerError("the continuous profiler is not running")
        start = self._cut()
        # Stops early with what it has when the profiler stops.
        self._stop.wait(seconds)
        end = self._cut() if self.running else self._seq
        return self._window(start, end)

    def recent(self, seconds=None):
        """A Trace of the samples of about the last ``seconds`` (default:
        every tick kept), whole ticks."""
        self._cut()
        with self._lock:
            if seconds is None:
                first = self._ticks[0][0] - 1 if self._ticks else self._seq
            else:
                limit = time.monotonic() - _seconds("seconds", seconds, 0.001, 1e9)
                first = next((t[0] - 1 for t in self._ticks if t[3] > limit), self._seq)
            last = self._seq
        return self._window(first, last)

    @property
    def memory_enabled(self):
        """Whether allocations are sampled (memory=True)."""
        return self._memory is not None

    def memory(self, seconds=None):
        """A Trace of the allocation collector (memory=True): sample kind
        "alloc" (alloc_samples, alloc_bytes), the sampled allocations since
        start, or with ``seconds`` those of the next seconds (blocks for
        them), and "live" (live_samples, live_bytes), the sampled blocks
        still held at the end. The header's window_start and duration say
        what the allocations cover. The collector runs on unchanged."""
        if self._memory is None:
            raise ProfilerError("this continuous profiler samples no allocations: start it "
                                "with memory=True")
        if seconds is not None:
            seconds = _seconds("seconds", seconds, 0.001, 86400)
        if not self.running:
            raise ProfilerError("the continuous profiler is not running")
        if seconds is None:
            trace, _ = self._memory.snapshot()
            trace.header["window_start"] = self._start_time
            return trace
        t0, m0 = time.time(), time.monotonic()
        _, mark = self._memory.snapshot(mark=True)
        self._stop.wait(seconds)  # ends early, with what it has, at stop()
        if not self.running:
            raise ProfilerError("the continuous profiler stopped during the window")
        trace, _ = self._memory.snapshot(mark)
        trace.header.update(window_start=t0, duration=time.monotonic() - m0)
        return trace

    # ------------------------------------------------------------ internals

    def _cut(self):
        """Cuts the sampler's profile now; returns the sequence number of the
        last tick, which ends here."""
        with self._cut_lock:
            if self.running:
                try:
                    self._add_tick(self._engine.take_window())
                except (ProfilerError, MemoryError) as e:
                    self.stats["tick_errors"] += 1
                    self.stats["last_error"] = str(e)
            return self._seq

    def _add_tick(self, cap):
        now, wall = time.monotonic(), time.time()
        with self._lock:
            self._seq += 1
            self._ticks.append((self._seq, self._tick_start, wall, now, cap))
            self._tick_start = wall
            self.stats["ticks"] += 1
            while self._ticks and self._ticks[0][3] < now - self.retain:
                self._ticks.popleft()

    def _window(self, after, upto):
        """The ticks numbered after+1 .. upto, added up into one Trace."""
        with self._lock:
            ticks = [t for t in self._ticks if after < t[0] <= upto]
            first = self._ticks[0][0] if self._ticks else upto + 1
        if not ticks:
            raise ProfilerError("no samples in that window yet: the profiler has not cut one")
        start, end = ticks[0][1], ticks[-1][2]
        header = {"window_start": start, "window_end": end, "duration": end - start,
                  "ticks": len(ticks)}
        if after + 1 < first and upto > after:
            header["lost_ticks"] = min(first, upto + 1) - (after + 1)
        if self.stats["tick_errors"]:
            header["tick_errors"] = self.stats["tick_errors"]
        return _hyprof.merge_profiles([t[4] for t in ticks], header)

    def _loop(self):
        # Cutting and writing windows allocates: not the program's memory.
        _hyprof.alloc_exclude_thread()
        while not self._stop.wait(self.tick):
            if not self.running:
                return
            self._cut()
            if self.directory is not None and time.monotonic() >= self._disk_due:
                self._disk_due += self.window
                self._write_window()

    def _write_window(self):
        with self._lock:
            since, self._disk_cursor = self._disk_cursor, self._seq
        try:
            trace = self._window(since, self._disk_cursor)
        except ProfilerError:
            return  # nothing new
        start = trace.header.get("window_start") or time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(start))
        micro = int((start % 1) * 1e6)
        host = re.sub(r"[^A-Za-z0-9_.-]+", "_", socket.gethostname()) or "host"
        path = os.path.join(self.directory,
                            f"hyprof-{stamp}.{micro:06d}Z-{host}-{os.getpid()}.hyprof")
        try:
            trace.write(path)
        except OSError as e:
            self.stats["write_errors"] += 1
            self.stats["last_error"] = f"{path}: {e.strerror or e}"
            return
        self.stats["windows_written"] += 1
        try:
            self.stats["bytes_written"] += os.path.getsize(path)
        except OSError:
            pass
        self._rotate()

    def _rotate(self):
        if self.keep is None and self.max_bytes is None:
            return
        try:
            names = sorted(n for n in os.listdir(self.directory) if _FILE_RE.match(n))
        except OSError:
            return
        sizes = []
        for n in names:
            try:
                sizes.append(os.lstat(os.path.join(self.directory, n)).st_size)
            except OSError:
                sizes.append(0)
        total = sum(sizes)
        # Oldest first (the names sort by time), never the newest.
        for i, n in enumerate(names[:-1]):
            count_ok = self.keep is None or len(names) - i <= self.keep
            bytes_ok = self.max_bytes is None or total <= self.max_bytes
            if count_ok and bytes_ok:
                break
            try:
                os.unlink(os.path.join(self.directory, n))
                self.stats["files_removed"] += 1
            except OSError:
                pass
            total -= sizes[i]


def start(**options):
    """Starts the process's continuous profiler (one per process) with
    ContinuousProfiler's options and returns it."""
    return _start_current(ContinuousProfiler(**options))


def _start_current(profiler, frame=None):
    """Starts profiler as the process's one (below frame, when given, as
    ContinuousProfiler._start_below) and returns it."""
    global _current
    with _current_lock:
        if _current is not None and _current.running:
            raise ProfilerError("a continuous profiler already runs in this process: "
                                "hyprof.continuous.current() returns it")
        _current = profiler._start_below(frame) if frame is not None else profiler.start()
        return _current


def _after_fork_in_child():
    """A pre-fork server's worker (gunicorn, uwsgi) samples itself: when the
    process's continuous profiler ran in the parent, the child, where the
    parent's sampler and thread do not exist, starts one of its own with the
    same options, and its windows hold only the child's samples. A child
    that cannot start one goes on without (a line on stderr says why)."""
    global _current
    parent = _current
    if parent is None or parent._pid is None or parent._pid == os.getpid() or \
            not parent._engine_was_running():
        return
    _current = None
    if parent._memory is not None:
        # The parent's allocation collector, hooked here too, holds the
        # parent's allocations: the child's starts afresh.
        _hyprof._alloc_after_fork()
    try:
        _current = ContinuousProfiler(**parent._options).start()
    except Exception as e:  # noqa: BLE001 -- the worker must run
        sys.stderr.write(f"hyprof: the continuous profiler did not start in worker "
                         f"{os.getpid()}: {e}\n")


os.register_at_fork(after_in_child=_after_fork_in_child)


def current():
    """The process's running continuous profiler, or None."""
    p = _current
    return p if p is not None and p.running else None


def stop():
    """Stops the process's continuous profiler, if one runs."""
    p = current()
    if p is not None:
        p.stop()


# The paths into and out of the sampler that a program's own thread runs
# (hyprof run --serve starts and stops it below the program's root frame).
_scope.hide_code(ContinuousProfiler._start_below.__code__, ContinuousProfiler.start.__code__,
                 ContinuousProfiler.stop.__code__, _start_current.__code__)
