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
import sys

from .. import _progress
from ..errors import CLIError, TraceError
from ..render._model import format_value
from ..trace import load

__all__ = ["check_trace_output", "load_trace", "same_file", "write_report", "write_stdout",
           "write_trace"]


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
    """Writes a report to path: str, bytes, or an iterator of them
    (render.stream()), written piece by piece as they are made. An
    undecodable file name in the trace is written back as the bytes it was
    (surrogateescape), as the trace itself keeps it. A report that fails on
    the way (a ReportError while it is made, a full disk) leaves no file."""
    pieces = (report,) if isinstance(report, (str, bytes)) else report
    _progress.stage(f"writing {os.path.basename(path)}", None, "bytes")
    try:
        with open(path, "wb") as f:
            for piece in pieces:
                data = _encoded(piece)
                f.write(data)
                _progress.advance(len(data))
    except OSError as e:
        _remove_partial(path)
        raise CLIError("cannot write %r: %s" % (path, e.strerror or e)) from None
    except BaseException:
        _remove_partial(path)
        raise


def write_stdout(report, binary_hint=None):
    """Writes a report (as write_report() takes it) to stdout, in its
    encoding; binary_hint names the format of a binary report, refused on a
    terminal."""
    pieces = (report,) if isinstance(report, (str, bytes)) else report
    out = sys.stdout
    out.flush()
    enc = out.encoding or "utf-8"
    for piece in pieces:
        if isinstance(piece, bytes):
            if out.isatty():
                raise CLIError("the %s format is binary: give -o FILE" % (binary_hint or "report"))
            data = piece
        else:
            try:
                data = piece.encode(enc, "surrogateescape")
            except UnicodeEncodeError:  # a console that cannot show every name
                data = piece.encode(enc, "backslashreplace")
        out.buffer.write(data)
    out.buffer.flush()


def _encoded(piece):
    return piece.encode("utf-8", "surrogateescape") if isinstance(piece, str) else piece


def _remove_partial(path):
    """Removes a report cut short (a full disk); devices and pipes are left
    alone."""
    try:
        if stat.S_ISREG(os.stat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass
