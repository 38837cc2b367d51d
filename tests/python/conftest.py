"""Fixtures shared by the pytest suites: where the build is, and a way to
write a trace from Python tables through the C writer."""

import os

import pytest


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
