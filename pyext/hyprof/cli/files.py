"""The files the subcommands read and write, with their failures turned into
one-line CLIErrors: ``cannot read PATH: why`` for a trace that is missing, a
directory or not a trace; ``cannot write PATH: why`` for an output that
cannot be written, and then no partial report is left behind, which would
look complete to whoever opens it. Traces are written by the C writer,
which replaces its target only once the new trace is whole.
"""

import glob
import os
import stat

from .. import _progress
from ..errors import CLIError, TraceError
from ..render._model import format_value
from ..trace import load

__all__ = ["check_trace_output", "load_trace", "same_file", "write_report", "write_trace"]


def load_trace(path, keep_samples=False, progress=True):
    """The trace in the file at path (with its samples, for reports that
    show them over time); ``progress``: say so on the progress line."""
    if not os.path.exists(path):
        if glob.has_magic(path):
            # The shell passes a pattern that matches nothing as it is.
            raise CLIError("no trace to read: no file matches %r (were any traces saved "
                           "there?)" % path)
        raise CLIError("cannot read %r: no such file" % path)
    if os.path.isdir(path):
        raise CLIError("cannot read %r: it is a directory, not a trace file" % path)
    if progress:
        try:
            size = format_value(os.path.getsize(path), "bytes")
        except OSError:
            size = "?"
        _progress.stage(f"reading {os.path.basename(path)} ({size})")
    try:
        return load(path, keep_samples=keep_samples)
    except TraceError as e:
        raise CLIError("cannot read %r: %s" % (path, e)) from None
    except OSError as e:  # an unreadable file
        raise CLIError("cannot read %r: %s" % (path, e.strerror or e)) from None


def same_file(a, b):
    """Whether the paths name one existing file (an output over an input)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_trace_output(out):
    """Raises CLIError if a trace could not be written to out, before the
    work that makes it."""
    if os.path.isdir(out):
        raise CLIError("cannot write the trace to %r: it is a directory; give -o FILE" % out)
    parent = os.path.dirname(out) or "."
    if not os.path.isdir(parent):
        raise CLIError("cannot write the trace to %r: no directory %r" % (out, parent))
    target = out if os.path.exists(out) else parent
    if not os.access(target, os.W_OK):
        raise CLIError("cannot write the trace to %r: permission denied" % out)


def write_trace(path, write, *args):
    """Calls write(path, *args), a C writer of traces."""
    try:
        return write(path, *args)
    except OSError as e:
        raise CLIError("cannot write %r: %s" % (path, e.strerror or e)) from None


def write_report(path, report):
    """Writes a report (str or bytes) to path. An undecodable file name in
    the trace is written back as the bytes it was (surrogateescape), as the
    trace itself keeps it."""
    if isinstance(report, str):
        report = report.encode("utf-8", "surrogateescape")
    _progress.stage(f"writing {os.path.basename(path)} ({format_value(len(report), 'bytes')})")
    try:
        with open(path, "wb") as f:
            f.write(report)
    except OSError as e:
        _remove_partial(path)
        raise CLIError("cannot write %r: %s" % (path, e.strerror or e)) from None


def _remove_partial(path):
    """Removes a report cut short (a full disk); devices and pipes are left
    alone."""
    try:
        if stat.S_ISREG(os.stat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass
