"""The console tree, the report a person reads first: library internals
hidden by default and named, [self] rows, unambiguous short paths, rows cut
to a terminal's width, colour on a terminal and never in a pipe, frames
under a threshold summed, the functions by own time after the tree."""

import os
import pty
import subprocess
import sys

import pytest
from hyprof import render as R
from test_render_support import MS, det_data, run_hyprof, tree_rows, write

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
    """(depth, name) per tree row, without the numbers."""
    return [(r["depth"], r["name"]) for r in tree_rows(text)]


def test_library_internals_are_hidden_by_default(lib_trace):
    text = R.render(lib_trace, "tree", header=False, min_percent=0)
    # The call into json is one row that says what it hid; the callback is
    # right under it, and json's own time is that row's [self].
    assert _names(text) == [(0, "main"), (1, "dumps"), (2, "default"), (2, "[self]"),
                            (1, "helper")]
    dumps = tree_rows(text)[1]
    assert dumps["note"] == "[2 frames hidden: json]"
    assert dumps["where"] == "json/__init__.py:183"  # a package's __init__ keeps its name
    # Values are unchanged: dumps still holds its callees' time, 46 ms in all.
    assert dumps["value"] == "46 ms" and tree_rows(text)[3]["value"] == "6 ms"
    plain = R.render(lib_trace, "tree", header=False, min_percent=0, collapse=False)
    assert _names(plain) == [(0, "main"), (1, "dumps"), (2, "JSONEncoder.encode"),
                             (3, "JSONEncoder.iterencode"), (4, "default"), (4, "[self]"),
                             (1, "helper")]
    vendor = R.render(lib_trace, "tree", header=False, min_percent=0,
                      collapse=["*/json/*", "*/vendor/*"])
    assert _names(vendor) == _names(text)
    with pytest.raises(ValueError, match="collapse takes True, False or file patterns"):
        R.render(lib_trace, "tree", collapse=[3])


def test_paths_are_the_shortest_unambiguous_suffix():
    from hyprof.render.tree import unique_paths

    got = unique_paths(["/usr/lib/python3.11/json/__init__.py",
                        "/venv/site-packages/markupsafe/__init__.py",
                        "/srv/app/app.py", "/srv/app/views.py", "/srv/other/views.py",
                        "/usr/lib/python3.11/json/encoder.py"])
    assert got == {"/usr/lib/python3.11/json/__init__.py": "json/__init__.py",
                   "/venv/site-packages/markupsafe/__init__.py": "markupsafe/__init__.py",
                   "/srv/app/app.py": "app.py", "/srv/app/views.py": "app/views.py",
                   "/srv/other/views.py": "other/views.py",
                   "/usr/lib/python3.11/json/encoder.py": "encoder.py"}


def test_functions_by_own_time_follow_the_tree(lib_trace):
    text = R.render(lib_trace, "tree", header=False, top=3)
    tail = text.split("functions by own wall time", 1)[1].splitlines()[1:]
    assert [ln.split()[-2] for ln in tail] == ["default", "helper", "JSONEncoder.iterencode"]
    assert "functions by own" not in R.render(lib_trace, "tree", top=0)
    with pytest.raises(ValueError, match="top must be"):
        R.render(lib_trace, "tree", top=-1)


def test_rows_fit_the_width(lib_trace):
    text = R.render(lib_trace, "tree", header=False, width=40, collapse=False)
    assert max(len(ln) for ln in text.splitlines()) <= 40
    assert "…" in text  # cut, and saying so
    ascii_ = R.render(lib_trace, "tree", header=False, unicode=False)
    assert "|- " in ascii_ and "`- " in ascii_ and "├" not in ascii_
    with pytest.raises(ValueError, match="width must be"):
        R.render(lib_trace, "tree", width=5)


def test_threshold_hides_small_frames(lib_trace):
    # helper is 10 ms of 57 ms (17.5%); at 20% it goes, and with nothing
    # else under 20% beside it no line stands for it; at 10% it stays.
    text = R.render(lib_trace, "tree", header=False, min_percent=20, top=0)
    assert "helper" not in text and "more" not in text
    assert "helper" in R.render(lib_trace, "tree", header=False, min_percent=10, top=0)
    # Small siblings that add up to more than the threshold are one line.
    many = R.render(lib_trace, "tree", header=False, min_percent=15, top=0,
                    collapse=False)
    assert "[self]" not in many  # 3 ms of 43: under 15%
    with pytest.raises(ValueError, match="min_percent must be a percentage"):
        R.render(lib_trace, "tree", min_percent=-1)


def test_color_only_when_asked(lib_trace):
    assert ESC not in R.render(lib_trace, "tree")
    text = R.render(lib_trace, "tree", header=False, color=True, min_percent=0, top=0)
    lines = text.splitlines()
    assert lines[1].startswith("\x1b[31m 100.0%")  # hot: red
    assert "\x1b[1mmain\x1b[0m" in lines[1]        # names in bold
    assert any(line.startswith("\x1b[33m  17.5%") for line in lines)  # helper: yellow
    assert tree_rows(text)[0]["name"] == "main"  # the same rows under the colours


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


def test_cli_tree_is_the_default_with_its_options(tmp_path):
    trace = tmp_path / "lib.hyprof"
    write(trace, _lib_data())
    out = run_hyprof("report", trace, "--threshold", "0").stdout
    assert "call tree, by wall time" in out and "functions by own wall time" in out
    assert "JSONEncoder" not in tree_rows(out)[1]["name"] and "[2 frames hidden: json]" in out
    out = run_hyprof("report", trace, "--threshold", "20").stdout
    assert not [r for r in tree_rows(out) if r["name"] == "helper"]
    out = run_hyprof("report", trace, "--threshold", "0", "--show-all").stdout
    assert "JSONEncoder.iterencode" in [r["name"] for r in tree_rows(out)]
    out = run_hyprof("report", trace, "--threshold", "0", "--hide", "*/vendor/*").stdout
    assert "hidden" in out and "helper" in out
    bad = run_hyprof("report", trace, "--hide", "x", "--show-all", check=False)
    assert bad.returncode == 2 and "--show-all hides nothing" in bad.stderr
    # The table is one flag away.
    table = run_hyprof("report", trace, "--format", "text").stdout
    assert "call tree" not in table and "cum wall" in table


def test_hyprofs_own_frames_are_never_hidden(tmp_path):
    # A collection inside json's encoder: its [gc] frame stays in sight under
    # the library's entry row, though the encoder's frames are hidden.
    data = _lib_data()
    data["functions"].append(("[gc] generation 0", "", 0, 2))  # special
    data["nodes"].append((4, 6, 0))                            # under iterencode
    data["rows"].append((0, 7, (1, 2 * MS, 2 * MS, 2 * MS, 2 * MS)))
    text = R.render(write(tmp_path / "gc.hyprof", data), "tree", header=False, min_percent=0)
    names = _names(text)
    assert (2, "[gc] generation 0") in names and (2, "default") in names, text
    assert "JSONEncoder" not in text.split("functions by own")[0]


def test_one_thread_of_a_sampling_trace(sampling_trace):
    # The worker thread's samples alone: main > work, 7 samples.
    ids = {t.name: t.id for t in sampling_trace.threads()}
    rows = tree_rows(R.render(sampling_trace, "tree", thread=ids["worker"], min_percent=0))
    assert [(r["name"], r["count"]) for r in rows] == [("main", 7), ("work", 7)], rows
    rows = tree_rows(R.render(sampling_trace, "tree", thread=ids["MainThread"], min_percent=0))
    assert rows[0]["name"] == "main" and rows[0]["count"] == 20


def test_hidden_frames_are_named_by_their_package():
    from hyprof.render.tree import library_name
    from hyprof.trace import FunctionInfo

    def f(path):
        return FunctionInfo(0, "x", path, 1, "python")

    assert library_name(f("/usr/lib/python3.12/site-packages/django/db/x.py")) == "django"
    assert library_name(f("/usr/lib/python3/dist-packages/yaml/x.py")) == "yaml"
    assert library_name(f("/usr/lib/python3.11/json/encoder.py")) == "json"
    assert library_name(f("/usr/lib/python3.11/random.py")) == "random"
    assert library_name(f("<frozen importlib._bootstrap>")) == "importlib"
    assert library_name(FunctionInfo(0, "len", "", 0, "builtin")) == "<built-in>"
