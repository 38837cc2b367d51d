"""Progress on a terminal (hyprof/_progress.py): a line on stderr with a bar
and counts while report, merge and diff work; nothing in pipes, in CI, or
for quick work."""

import io
import os
import pty
import re
import subprocess
import sys

import pytest
from hyprof import _progress
from test_render_support import det_trace_in, sampling_data, write


class _Tty(io.StringIO):
    encoding = "utf-8"

    def isatty(self):
        return True


@pytest.fixture
def watched(monkeypatch):
    """A terminal someone watches: no CI, a real TERM, no delay."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("HYPROF_PROGRESS", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("HYPROF_PROGRESS_DELAY", "0")
    return _Tty()


def _work(stream):
    with _progress.task("report", stream):
        _progress.stage("rendering", 50_000, "nodes")
        for _ in range(5):
            _progress.advance(10_000)
            if _progress._current is not None:
                _progress._current.next_draw = 0  # every step drawn
    return stream.getvalue()


def test_bar_counts_and_erased_at_the_end(watched):
    out = _work(watched)
    lines = [x for x in out.replace("\x1b[K", "").split("\r") if x]
    assert lines[0].startswith("report: rendering")
    assert "0%  0/50,000 nodes" in lines[0]
    assert "100%  50,000/50,000 nodes" in lines[-1]
    assert "\u2588" * 10 in lines[-1]
    assert "40%  20,000/50,000 nodes" in "".join(lines)
    # The last thing written erases the line: nothing stays behind.
    assert out.endswith("\r\x1b[K")
    assert all(len(x) < 80 for x in lines)


@pytest.mark.parametrize("env", [{"CI": "true"}, {"HYPROF_PROGRESS": "0"}, {"TERM": "dumb"},
                                 {"HYPROF_PROGRESS_DELAY": "30"}])
def test_silent_where_no_one_watches(watched, monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert _work(watched) == ""


def test_silent_in_a_pipe(watched):
    stream = io.StringIO()  # not a terminal
    assert _work(stream) == ""
    assert _progress._current is None


def test_ascii_bar_where_the_terminal_is_not_utf8(watched):
    stream = _Tty()
    stream.encoding = "ascii"
    assert "##########" in _work(stream)


def _on_a_pty(*args, cwd, both=False):
    """Runs hyprof with stderr on a pseudo-terminal (stdout a pipe, or the
    same terminal with ``both``); returns (exit status, what the terminal
    got)."""
    env = dict(os.environ)
    env.pop("CI", None)
    env.update(TERM="xterm", HYPROF_PROGRESS_DELAY="0",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "hyprof", *map(str, args)], cwd=cwd,
                                env=env, stdout=slave if both else subprocess.PIPE,
                                stderr=slave)
        os.close(slave)
        got = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            got += chunk
        proc.wait(timeout=120)
    finally:
        os.close(master)
    return proc.returncode, got.decode("utf-8", "replace")


def _steps(text):
    return [re.sub(r"\s+[\d.]+ s$", "", x) for x in text.replace("\x1b[K", "").split("\r")
            if x.strip()]


def test_report_merge_and_diff_show_their_steps(tmp_path):
    det = det_trace_in(tmp_path)
    status, tty = _on_a_pty("report", det.path, "-o", tmp_path / "r.html", cwd=tmp_path)
    assert status == 0, tty
    steps = _steps(tty)
    assert steps[0].startswith("report: reading ") and "det.hyprof (" in steps[0]
    assert "report: rendering html" in steps
    assert any(s.startswith("report: html: writing the page (") for s in steps)
    assert any(s.startswith("report: writing ") and "r.html" in s for s in steps)
    assert tty.endswith("\r\x1b[K")
    # merge: the traces counted as they are read.
    a = write(tmp_path / "a.hyprof", sampling_data(pid=1))
    b = write(tmp_path / "b.hyprof", sampling_data(pid=2))
    status, tty = _on_a_pty("merge", "-o", tmp_path / "m.hyprof", a.path, b.path,
                            cwd=tmp_path)
    assert status == 0, tty
    steps = _steps(tty)
    assert any("merge: reading" in s and "1/2 traces" in s for s in steps), steps
    assert any("merge: merging" in s for s in steps), steps
    # The summary line stays; the progress line is erased before it.
    assert "hyprof merge: 2 traces" in tty.split("\r\x1b[K")[-1]
    status, tty = _on_a_pty("diff", a.path, b.path, cwd=tmp_path)
    assert status == 0, tty
    assert "diff: comparing the two traces" in _steps(tty)


def test_an_error_erases_the_line_first(tmp_path):
    (tmp_path / "bad.hyprof").write_bytes(b"not a trace")
    status, tty = _on_a_pty("report", tmp_path / "bad.hyprof", "-o", tmp_path / "x.html",
                            cwd=tmp_path)
    assert status == 1
    assert "\r\x1b[Khyprof report: error: cannot read" in tty


def test_a_report_on_the_terminal_is_not_erased(tmp_path):
    """stdout and stderr on one terminal: the progress line is gone before
    the report is written, and nothing erases the report's last line."""
    det = det_trace_in(tmp_path)
    status, tty = _on_a_pty("report", det.path, "--format", "text", cwd=tmp_path, both=True)
    assert status == 0, tty
    assert "report: reading det.hyprof" in tty
    report = tty.rsplit("\x1b[K", 1)[1]
    assert "main" in report and "helper" in report
    assert report.rstrip().splitlines()[-1].strip(), report


def test_a_long_uncounted_step_is_shown_and_its_time_moves(watched, monkeypatch):
    monkeypatch.setenv("HYPROF_PROGRESS_DELAY", "0.1")
    import time
    with _progress.task("report", watched):
        _progress.stage("reading big.hyprof (1 GiB)")
        time.sleep(0.6)  # one step, never advanced: the ticker draws it
    lines = [x for x in watched.getvalue().replace("\x1b[K", "").split("\r") if x]
    assert len(lines) >= 2 and all(x.startswith("report: reading big.hyprof") for x in lines)
    assert lines[-1] != lines[0]  # the elapsed seconds move on


def test_a_label_stays_one_line_of_the_terminal_width(watched):
    from hyprof._progress import _width_of
    with _progress.task("report", watched):
        _progress.stage("reading evil\nname\x1b[31m.hyprof")
        _progress.stage("\u6f22" * 60, 10, "nodes", 5)
    out = watched.getvalue()
    assert "\n" not in out and "\x1b[31m" not in out
    assert "reading evil?name?[31m.hyprof" in out
    for line in out.replace("\x1b[K", "").split("\r"):
        assert _width_of(line) < 80, line
    assert "50%  5/10 nodes" in out
