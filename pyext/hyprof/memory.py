"""The allocation collector of the sampling mode (the C side is pyext/alloc.c).

``Profiler(mode="sampling", memory=True)`` samples the allocations made
through CPython's allocator (the PYMEM_DOMAIN_MEM and PYMEM_DOMAIN_OBJ
domains) by bytes: one sample per ``memory_interval`` bytes on average, with
exponentially distributed gaps, each sample weighted by the bytes it stands
for, so the totals are unbiased estimates. ``memory_only=True`` collects
allocations alone, without CPU samples. See docs/memory.md.
"""

import atexit
from collections import namedtuple

from . import _hyprof, _options, _scope
from .errors import ProfilerError

__all__ = ["DEFAULT_INTERVAL", "MAX_INTERVAL", "Frame", "MemoryEngine", "check_options",
           "create"]

DEFAULT_INTERVAL = 512 * 1024
MAX_INTERVAL = 1 << 40
DEFAULT_MAX_FRAMES = 128
MAX_FRAMES = 512

Frame = namedtuple("Frame", "name filename line")
Frame.__doc__ = "One frame of a live-heap stack: function name, file name, executing line."


def check_options(memory=False, memory_interval=DEFAULT_INTERVAL, memory_only=False,
                  memory_max_frames=DEFAULT_MAX_FRAMES):
    """Validates the memory options; returns (enabled, only, interval,
    max_frames). Raises ProfilerError naming the bad option and what is
    accepted."""
    if not isinstance(memory, bool):
        raise ProfilerError("memory=%r must be True or False" % (memory,))
    if not isinstance(memory_only, bool):
        raise ProfilerError("memory_only=%r must be True or False" % (memory_only,))
    if (isinstance(memory_interval, bool)
            or not isinstance(memory_interval, (int, float))):
        raise ProfilerError("memory_interval=%r must be a number of bytes (the mean sampling "
                            "interval; default %d, 512 KiB)" % (memory_interval,
                                                               DEFAULT_INTERVAL))
    if not 1 <= memory_interval <= MAX_INTERVAL:
        raise ProfilerError("memory_interval=%r is out of range: the mean sampling interval "
                            "must be between 1 byte and 1 TiB (%d); the default is %d "
                            "(512 KiB)" % (memory_interval, MAX_INTERVAL, DEFAULT_INTERVAL))
    _options.number("memory_max_frames", memory_max_frames, int, 1, MAX_FRAMES, optional=False)
    enabled = memory or memory_only
    if not enabled and memory_interval != DEFAULT_INTERVAL:
        raise ProfilerError("memory_interval=%r is given but memory sampling is off: pass "
                            "memory=True" % (memory_interval,))
    return enabled, memory_only, float(memory_interval), memory_max_frames


class MemoryEngine:
    """Runs the allocation collector; the engine behind
    ``Profiler(mode="sampling", memory_only=True)``, and the part the CPU
    sampler runs beside itself with ``memory=True``."""

    engine = "alloc"

    def __init__(self, interval=DEFAULT_INTERVAL, max_frames=DEFAULT_MAX_FRAMES,
                 scoped=False, fold=False):
        self.interval = float(interval)
        self.max_frames = max_frames
        # Rows instead of one record per sample (the continuous profiler's,
        # which runs for days); snapshot() then works while it runs.
        self.fold = fold
        self._ran = False
        self._on = False  # this engine started the process's collector
        # Alone (memory_only), the engine sets the walks' scope itself, as
        # the CPU sampler does for both (hyprof.sampling): root is the frame
        # that calls the profiled program, if known.
        self._scoped = scoped
        self.root = None

    def _set_scope(self, root):
        if self._scoped:
            _scope.set_scope(root)

    @property
    def running(self):
        # The collector is one per process; after a fork, the child's is off.
        return self._on and _hyprof.alloc_running()

    def start(self):
        if self.running:
            raise ProfilerError("this profiler is already running")
        self._set_scope(self.root)
        try:
            _hyprof.alloc_start(interval=self.interval, max_frames=self.max_frames,
                                fold=self.fold)
        except BaseException:
            self.root = None
            self._set_scope(None)
            raise
        self._ran = self._on = True

    def stop(self):
        if not self.running:
            raise ProfilerError("this profiler is not running")
        self._on = False
        try:
            _hyprof.alloc_stop()
        finally:
            self.root = None
            self._set_scope(None)

    def _check_ran(self):
        if not self._ran:
            raise ProfilerError("the profiler has not run: start() and stop() it first")
        if not self._on and _hyprof.alloc_running():
            raise ProfilerError("another allocation profiler runs now and holds the "
                                "collector; its data replaced this one's")

    def trace(self):
        """The allocations as a hyprof.Trace: sample kinds "alloc"
        (alloc_samples, alloc_bytes) and "live" (live_samples, live_bytes,
        the sampled blocks still allocated at stop)."""
        self._check_ran()
        return _hyprof.alloc_trace()

    def snapshot(self, since=None, mark=False):
        """While a folding engine runs: (Trace, mark), the Trace of its
        allocations since start (or since the mark of an earlier snapshot)
        and of the live heap now, and with ``mark`` this snapshot's mark
        (else None)."""
        if not self.running:
            raise ProfilerError("this profiler is not running")
        return _hyprof.alloc_snapshot(since, mark)

    def write(self, path):
        self._check_ran()
        _hyprof.alloc_write(path)

    def heap(self):
        """[(stack, bytes)], largest first: the estimated bytes still held,
        per stack (a tuple of Frame, root first). While running it is the
        heap now; after stop, the heap at stop."""
        self._check_ran()
        rows = _hyprof.alloc_heap()
        rows.sort(key=lambda r: (-r[1], r[0]))
        return [(tuple(Frame(*f) for f in frames), nbytes) for frames, nbytes, _ in rows]

    def stats(self):
        """Counters: samples taken, estimated allocated and live bytes, live
        sampled blocks, samples dropped, whether the hook stays chained."""
        return _hyprof.alloc_stats()


def create(memory=False, memory_interval=DEFAULT_INTERVAL, memory_only=False,
           memory_max_frames=DEFAULT_MAX_FRAMES):
    """The factory for ``memory_only=True``: validates and returns a
    MemoryEngine."""
    _, only, interval, frames = check_options(memory, memory_interval, memory_only,
                                              memory_max_frames)
    if not only:
        raise ProfilerError("memory=True beside CPU samples needs the sampling mode's CPU "
                            "sampler; use memory_only=True for allocations alone")
    return MemoryEngine(interval, frames, scoped=True)


def _at_exit():
    # A collector left running would keep sampling through the interpreter's
    # finalisation; stop it while Python still runs.
    if _hyprof.alloc_running():
        try:
            _hyprof.alloc_stop()
        except Exception:  # noqa: BLE001, S110  (at exit there is no one to tell)
            pass


atexit.register(_at_exit)
# The collector's start and stop are its own paths, in a sample's stack
# beside the CPU sampler's or alone.
_scope.hide_code(MemoryEngine.start.__code__, MemoryEngine.stop.__code__)
