"""Which frames a sampled stack keeps: the scope of the stack walks
(pyext/walk.c) that the CPU sampler (hyprof.sampling) and the allocation
collector (hyprof.memory) share.

A walk stops at the frame that called the profiled program (the root), and
leaves out hyprof's own code: the paths into and out of a session (start,
stop, the thread hook, the integrations' wrappers) with what they call,
which leaves such a sample to the program's frame that called into hyprof,
or drops it ("profiler-frames") when there is none; and wrappers that call
the program through, alone. Each module that owns such code registers it
here (hide_code) when it is imported.
"""

from . import _hyprof

__all__ = ["hide_code", "set_scope"]

_own_code = {"cut": [], "skip": []}


def hide_code(*codes, callees=True):
    """Leaves hyprof's own code objects out of every sample (for the
    integrations: the CLI, the pytest plugin, the Django middleware): a start
    or stop path with what it calls (callees=True), a wrapper that calls the
    program alone (callees=False). Takes effect at the next start()."""
    kind = _own_code["cut" if callees else "skip"]
    for c in codes:
        if c not in kind:
            kind.append(c)


def set_scope(root):
    """Sets the walks' root frame (None: no root) and the code they leave
    out; before any signal is armed, and again once the root returns."""
    _hyprof._walk_set_scope(root, tuple(_own_code["cut"]), tuple(_own_code["skip"]))
