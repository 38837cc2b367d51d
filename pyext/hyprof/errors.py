"""The exceptions and warnings of the hyprof package, each defined once.

Every other module imports its errors from here, so a library module never
reaches into the command line (or another library module) for one. (The
pytest plugin's BudgetError stays in hyprof.pytest_plugin: pytest loads the
plugin in every run, and it imports nothing of hyprof until a test uses it.)
This module imports nothing: the extension (pyext/module.c) imports it when
it loads and keeps ProfilerError, EventError and TraceError in its module
state, which is where the C code of every engine raises them from.

- ProfilerError: a profiler cannot start, or was given a bad option
  (a RuntimeError and a ValueError). EventError, a ProfilerError: a
  sampling event or trigger that does not work on this machine.
- TraceError: a file that is not a readable trace; TraceWarning: a trace cut
  short, loaded as far as it is complete.
- ReportError: a report that cannot be made with these options;
  ReportWarning: a report that left part of the trace out.
- DiffError, MergeError: traces that cannot be compared or merged.
- PrivateDirError: the per-user directory for hyprof's files is not safe.
- CLIError, UsageError: what the ``hyprof`` command reports in one line
  (exit status 1, or 2 for options that do not go together); raised by
  hyprof.cli only.
"""

__all__ = ["CLIError", "DiffError", "EventError", "MergeError",
           "PrivateDirError", "ProfilerError", "ReportError", "ReportWarning", "TraceError",
           "TraceWarning", "UsageError"]


class ProfilerError(RuntimeError, ValueError):
    """A profiler cannot start (another one, or a foreign profile function, is
    active) or was given a bad option: a RuntimeError and a ValueError, so
    either handler catches it."""


ProfilerError.__module__ = "hyprof"


class EventError(ProfilerError):
    """A sampling event or trigger that cannot be used on this machine. The
    message says why (unknown name, no PMU, perf_event_paranoid, seccomp) and
    what would work instead."""


EventError.__module__ = "hyprof"


class TraceError(ValueError):
    """A trace file that cannot be read: not a trace, an unsupported format
    version, or corrupt (the message names the file, record and byte)."""


class TraceWarning(UserWarning):
    """A trace that was cut short: what is complete was loaded."""


class ReportError(ValueError):
    """A report cannot be made from this trace with these options."""


class ReportWarning(UserWarning):
    """A report left part of the trace out, and says what and why."""


class DiffError(ValueError):
    """The two traces cannot be compared (different modes, no shared metric)."""


class MergeError(ValueError):
    """The traces cannot be merged (different modes, conflicting metrics)."""


class PrivateDirError(PermissionError):
    """The per-user directory exists but is not safe to write traces in."""


class CLIError(Exception):
    """A problem the command reports in one line and exits 1 for."""


class UsageError(CLIError):
    """Options that do not go together: reported like argparse's own
    errors, with exit status 2."""
