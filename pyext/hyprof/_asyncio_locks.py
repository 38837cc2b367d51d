"""asyncio.Lock as lock contention profiling sees it (docs/locks.md).

While a profiler records locks, ``asyncio.Lock`` (and ``asyncio.locks.Lock``,
which ``asyncio.Condition`` makes when it is given none) is this subclass;
pyext/locks.c puts it there and gives the original back after the last
profiler's stop. It behaves as the original, whose methods do the work:
what it adds is the lock's creation site, found once when it is made, and
the timing of an acquisition that has to wait (the lock is taken, or other
tasks queue for it) and of each hold, handed to the same recorders as
threading's locks: a wait is a call of the site's special function in the
deterministic mode, recorded when the waiting task runs again, and a
sampled ``lock-wait``; a hold is a sampled ``lock-hold``.

A task's wait is not a thread's: while it waits, the thread runs the other
tasks of its loop, so a wait costs the loop nothing but the task its time.
"""

import asyncio.locks

from . import _hyprof, _scope

__all__ = ["Lock"]

_Original = asyncio.locks.Lock


class Lock(_Original):
    __doc__ = _Original.__doc__

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._hyprof_site = _hyprof._lock_site()
        self._hyprof_since = 0

    async def acquire(self):
        # asyncio's own test for taking the lock at once (3.11 to 3.13):
        # free, and no waiter that is not cancelled.
        free = not self._locked
        if free and self._waiters:
            for w in self._waiters:
                if not w.cancelled():
                    free = False
                    break
        if free:
            taken = await super().acquire()
        else:
            t0 = _hyprof._lock_clock()
            try:
                taken = await super().acquire()
            finally:
                if t0:
                    _hyprof._lock_waited(self._hyprof_site, t0)
        self._hyprof_since = _hyprof._lock_clock()
        return taken

    def release(self):
        since, self._hyprof_since = self._hyprof_since, 0
        super().release()
        if since:
            _hyprof._lock_held(self._hyprof_site, since)


# Its repr() and its name read as the original's: code that prints or logs a
# lock sees what it would see without the profiler.
Lock.__module__, Lock.__qualname__ = _Original.__module__, _Original.__qualname__

# Frames of this file are hyprof's own: samples and call trees leave them out
# (acquire's comes second). The original's acquire is the call that waits, under
# which a deterministic profiler records the wait.
OWN_CODES = (Lock.__init__.__code__, Lock.acquire.__code__, Lock.release.__code__)
WAITING_CODE = _Original.acquire.__code__
_scope.hide_code(*OWN_CODES, callees=False)
