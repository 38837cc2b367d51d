"""Starts the continuous profiler and its pprof endpoint in any Python
process whose environment asks for them, with no change to its code or
command line (docs/continuous.md, "Without a code change").

The package installs ``hyprof-autostart.pth`` beside itself in
site-packages; Python runs its one line at every start, which costs an
environment lookup and imports this module only when one of these is set:

- ``HYPROF_SERVE=[HOST:]PORT``: serve pprof there (loopback unless
  ``HYPROF_SERVE_ALLOW_REMOTE=1``; ``HYPROF_SERVE_TOKEN`` asks clients for a
  bearer token). A taken port makes the process look for the next free one,
  as a pre-fork server's workers do, and say so.
- ``HYPROF_CONTINUOUS_DIR=DIR``: write a window every minute there (with
  or without serving).
- ``HYPROF_SERVE_MEMORY=1``: sample allocations too, for the
  ``/debug/pprof/allocs`` and ``/heap`` endpoints.

The ``hyprof`` command itself is left alone: ``hyprof run`` reads the same
variables for the program it runs. A problem (a bad address, a port range
all taken, an unsafe directory) is one line on stderr and the program runs
unprofiled: a profiler must never keep a service from starting.
"""

import os
import sys


def _is_hyprof_command():
    argv = list(getattr(sys, "orig_argv", None) or sys.argv or [])
    if len(argv) >= 3 and argv[1] == "-m" and argv[2].split(".")[0] == "hyprof":
        return True
    return bool(argv) and os.path.basename(argv[0]) == "hyprof"


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


_started = None


def start():
    """Starts what the environment asks for, once a process (site reads a
    .pth once per site directory, and a venv may list one twice); returns
    the Server or the ContinuousProfiler started, or None. Never raises."""
    global _started
    if _started is not None:
        return _started[0]
    _started = (None,)
    try:
        _started = (_start(),)
        return _started[0]
    except Exception as e:  # noqa: BLE001 -- the program must start
        sys.stderr.write(f"hyprof: the profiler did not start: {type(e).__name__}: {e}\n")
        return None


def _start():
    address = os.environ.get("HYPROF_SERVE", "").strip()
    directory = os.environ.get("HYPROF_CONTINUOUS_DIR", "").strip()
    if not (address or directory) or _is_hyprof_command():
        return None
    from . import continuous, serve
    from .errors import ProfilerError
    try:
        options = {"directory": directory} if directory else {}
        if _flag("HYPROF_SERVE_MEMORY"):
            options["memory"] = True
        if not address:
            return continuous.start(**options)
        host, port = serve.parse_address(address)
        token = os.environ.get("HYPROF_SERVE_TOKEN") or None
        allow = _flag("HYPROF_SERVE_ALLOW_REMOTE")
        profiler = continuous.start(**options)
        try:
            return serve.start_near((host, port), token=token, allow_remote=allow,
                                    profiler=profiler, why="HYPROF_SERVE")
        except BaseException:
            profiler.stop()
            raise
    except ProfilerError as e:
        sys.stderr.write(f"hyprof: {'HYPROF_SERVE' if address else 'HYPROF_CONTINUOUS_DIR'}: "
                         f"{e}; the program runs without the profiler\n")
    return None
