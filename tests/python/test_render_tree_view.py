"""The console tree's view options: colour on a terminal and never in a pipe,
frames under a threshold hidden, library internals collapsed on request."""

import os
import pty
import subprocess
import sys

import pytest
from hyprof import render as R
from test_render_support import MS, det_data, run_hyprof, write

ESC = "\x1b["

# main (app.py) -> dumps (stdlib json) -> encode -> iterencode -> default (app.py)
#               -> helper (vendor/lib.py)
LIB = "/usr/lib/python3.11/json/"


def _lib_data():
    data = det_data()
    data["functions"] = [("main", "/srv/app/app.py", 1, 0),
                         ("dumps", LIB + "__init__.py", 183, 0),
                         ("JSONEncoder.encode", LIB + "encoder.py", 183, 0),
                         ("JSONEncoder.iterencode", LIB + "encoder.py", 205, 0),
                         ("default", "/srv/app/app.py", 20, 0),
                         ("helper", "/srv/app/vendor/lib.py", 5, 0)]
    data["nodes"] = [(0, 0, 0), (1, 1, 0), (2, 2, 0), (3, 3, 0), (4, 4, 0), (1, 5, 0)]
    own = {1: 1, 2: 1, 3: 2, 4: 3, 5: 40, 6: 10}
    cum = {5: 40, 4: 43, 3: 45, 2: 46, 6: 10, 1: 57}
    data["rows"] = [(0, n, (1, own[n] * MS, own[n] * MS, cum[n] * MS, cum[n] * MS))
                    for n in own]
    return data


@pytest.fixture
def lib_trace(tmp_path):
    return write(tmp_path / "lib.hyprof", _lib_data())


def _names(text):
    """(depth, name) per tree line, without the numbers."""
    out = []
    for line in text.splitlines():
        if " calls " not in line:
            continue
        rest = line.split(" calls ", 1)[1]
        name = rest.strip().split("  ")[0]
        out.append(((len(rest) - len(rest.lstrip(" "))) // 2, name))
    return out


def test_collapse_library_internals(lib_trace):
    plain = R.render(lib_trace, "tree", header=False, min_percent=0)
    assert _names(plain) == [(0, "main"), (1, "dumps"), (2, "JSONEncoder.encode"),
                             (3, "JSONEncoder.iterencode"), (4, "default"), (1, "helper")]
    text = R.render(lib_trace, "tree", header=False, min_percent=0, collapse=True)
    # The call into json shows as one line, the callback right under it.
    assert _names(text) == [(0, "main"), (1, "dumps"), (2, "default"), (1, "helper")]
    assert "[+2 library frames]" in text.splitlines()[1]
    # Values are unchanged: dumps still holds its callees' time, 46 ms in all.
    assert text.splitlines()[1].split()[1] == "0.046000"
    vendor = R.render(lib_trace, "tree", header=False, min_percent=0,
                      collapse=["*/json/*", "*/vendor/*"])
    assert _names(vendor) == [(0, "main"), (1, "dumps"), (2, "default"), (1, "helper")]
    with pytest.raises(ValueError, match="collapse takes True or file patterns"):
        R.render(lib_trace, "tree", collapse=[3])


def test_threshold_hides_small_frames(lib_trace):
    # helper is 10 ms of 57 ms (17.5%); at 20% it folds into a "(1 more" line.
    text = R.render(lib_trace, "tree", header=False, min_percent=20)
    assert "helper" not in text and "(1 more, each under 20.0%)" in text
    with pytest.raises(ValueError, match="min_percent must be a percentage"):
        R.render(lib_trace, "tree", min_percent=-1)


def test_color_only_when_asked(lib_trace):
    assert ESC not in R.render(lib_trace, "tree")
    text = R.render(lib_trace, "tree", header=False, color=True, min_percent=0)
    lines = text.splitlines()
    assert lines[0].startswith("\x1b[31m100.00%")  # hot: red
    assert "\x1b[1mmain\x1b[0m" in lines[0]        # names in bold
    assert any(line.startswith("\x1b[33m 17.54%") for line in lines)  # helper: yellow


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.pop("NO_COLOR", None)
    return env


def _on_terminal(args, env):
    """Runs python -m hyprof ARGS with its output on a pseudo-terminal."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "hyprof", *map(str, args)],
                                stdout=slave, stderr=subprocess.PIPE, env=env)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO once the child has closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=60)
        assert proc.returncode == 0, proc.stderr.read()
        return b"".join(chunks).decode()
    finally:
        os.close(master)


def test_cli_colour_on_a_terminal_not_in_a_pipe(tmp_path):
    trace = tmp_path / "lib.hyprof"
    write(trace, _lib_data())
    piped = run_hyprof("report", trace, "--format", "tree").stdout
    assert ESC not in piped and "main" in piped
    assert ESC in _on_terminal(["report", trace, "--format", "tree"], _env())
    assert ESC not in _on_terminal(["report", trace, "--format", "tree"],
                                   dict(_env(), NO_COLOR="1"))
    assert ESC not in _on_terminal(["report", trace, "--format", "tree", "--color", "never"],
                                   _env())
    forced = run_hyprof("report", trace, "--format", "tree", "--color", "always").stdout
    assert ESC in forced
    run_hyprof("report", trace, "--format", "tree", "-o", tmp_path / "t.txt")
    assert ESC not in (tmp_path / "t.txt").read_text()


def test_cli_threshold_and_collapse(tmp_path):
    trace = tmp_path / "lib.hyprof"
    write(trace, _lib_data())
    out = run_hyprof("report", trace, "--format", "tree", "--threshold", "0",
                     "--collapse-libs").stdout
    assert "JSONEncoder" not in out and "[+2 library frames]" in out and "default" in out
    out = run_hyprof("report", trace, "--format", "tree", "--threshold", "20").stdout
    assert "helper" not in out
    out = run_hyprof("report", trace, "--format", "tree", "--threshold", "0",
                     "--collapse", "*/vendor/*", "--collapse", "*/json/*").stdout
    assert "JSONEncoder" not in out and "helper" in out
