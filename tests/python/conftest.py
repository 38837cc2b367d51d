"""Fixtures shared by the pytest suites: where the build is, and a way to
write a trace from Python tables through the C writer."""

import os
import signal

import pytest

# A job started in the background of a non-interactive shell (nohup, a CI
# runner's `cmd &`) inherits SIGINT ignored, and so would every interpreter
# the tests start: Python then installs no KeyboardInterrupt handler, and
# tests of hyprof's behaviour beside one would see none. A handler here
# becomes SIGINT's default action in each child, where Python installs its
# own as usual.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def builddir():
    """The build tree (make check sets HYP_BUILDDIR); None outside one."""
    return os.environ.get("HYP_BUILDDIR")


@pytest.fixture
def write_trace(tmp_path):
    """write_trace(data, name="t.hyprof") -> path: writes the dict
    ``_hyprof.write_trace`` takes into the test's temporary directory."""
    from hyprof import _hyprof

    def write(data, name="t.hyprof"):
        path = tmp_path / name
        _hyprof.write_trace(str(path), data)
        return path

    return write


def _profiler_frames(trace):
    """The frames of a trace's call tree that are not the profiled program's:
    hyprof's own code and C methods, runpy's, and an exec at the root (the
    one that would run a program); sorted (name, file) pairs."""
    import hyprof

    pkg = os.path.dirname(os.path.abspath(hyprof.__file__))
    bad = set()
    for node in trace.nodes()[1:]:
        f = node.function
        path = os.path.abspath(f.filename) if f.filename and not f.filename.startswith("<") \
            else f.filename
        if (path.startswith(pkg + os.sep) or "runpy" in f.filename or "hyprof" in f.name
                or "<hyprof" in f.filename
                or (node.parent == 0 and f.name == "<built-in method builtins.exec>")):
            bad.add((f.name, f.filename))
    return sorted(bad)


@pytest.fixture
def profiler_frames():
    """profiler_frames(trace) -> the frames of the trace that are hyprof's,
    runpy's or the CLI's (none is the expected answer)."""
    return _profiler_frames


@pytest.fixture
def det_trace(tmp_path):
    """The render tests' deterministic trace (test_render_support), loaded."""
    from test_render_support import det_trace_in

    return det_trace_in(tmp_path)


@pytest.fixture
def sampling_trace(tmp_path):
    """The render tests' sampling trace (test_render_support), loaded."""
    from test_render_support import sampling_trace_in

    return sampling_trace_in(tmp_path)
