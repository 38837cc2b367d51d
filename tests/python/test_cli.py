"""python -m hyprof run / report, as a user runs them (subprocesses)."""

import os
import pstats
import subprocess
import sys
import textwrap

import pytest

import hyprof
from hyprof import cli

PROGRAM = textwrap.dedent("""\
    import sys

    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    def main():
        fib(12)
        print("argv=%r name=%s" % (sys.argv, __name__))
        if len(sys.argv) > 1 and sys.argv[1] == "fail":
            raise KeyError("boom")
        if len(sys.argv) > 1:
            sys.exit(int(sys.argv[1]))

    if __name__ == "__main__":
        main()
    """)


def hyprof_cmd(*args, cwd):
    # The child imports the same hyprof as this test, wherever it runs.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(hyprof.__file__)))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return subprocess.run([sys.executable, "-m", "hyprof"] + [str(a) for a in args], cwd=cwd,
                          capture_output=True, text=True, errors="surrogateescape", env=env,
                          timeout=120)


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "prog.py"
    path.write_text(PROGRAM)
    return path


def test_run_gives_argv_main_and_exit_code(program, tmp_path):
    out = tmp_path / "o.hyprof"
    r = hyprof_cmd("run", "-o", out, program.name, "3", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert "argv=['prog.py', '3'] name=__main__" in r.stdout
    # The report printed after the run, and the trace it names.
    assert "fib" in r.stderr and "calls" in r.stderr
    assert str(out) in r.stderr
    fs = {f.name: f for f in hyprof.load(out).functions()}
    assert (fs["fib"].calls, fs["fib"].primitive_calls) == (465, 1)
    assert fs["main"].calls == 1 and fs["<module>"].calls == 1


def test_run_exception_prints_traceback_and_exits_1(program, tmp_path):
    r = hyprof_cmd("run", "-q", "-o", tmp_path / "e.hyprof", program.name, "fail", cwd=tmp_path)
    assert r.returncode == 1
    assert "KeyError: 'boom'" in r.stderr
    assert 'prog.py", line' in r.stderr
    assert "cli.py" not in r.stderr  # hyprof's frames are not in the traceback
    assert (tmp_path / "e.hyprof").exists()  # the profile up to the exception


def test_run_default_output_and_exit_zero(program, tmp_path):
    r = hyprof_cmd("run", "-q", program.name, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "prog.hyprof").exists()
    assert r.stderr == ""
    # Each mode has its own default name: a sampling run keeps the other.
    r = hyprof_cmd("run", "-q", "--mode", "sampling", program.name, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert hyprof.load(str(tmp_path / "prog.hyprof")).mode == "deterministic"
    assert hyprof.load(str(tmp_path / "prog-sampling.hyprof")).mode == "sampling"
    r = hyprof_cmd("run", "-q", "--mode", "sampling", "--memory-only", program.name,
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "prog-memory.hyprof").exists()


def test_run_module(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tool.py").write_text(PROGRAM)
    r = hyprof_cmd("run", "-q", "-o", "m.hyprof", "-m", "pkg.tool", "7", cwd=tmp_path)
    assert r.returncode == 7, r.stderr
    assert "name=__main__" in r.stdout
    assert str(pkg / "tool.py") in r.stdout  # argv[0] is the module's file, as python -m
    assert "'7']" in r.stdout
    fs = {f.name: f for f in hyprof.load(tmp_path / "m.hyprof").functions()}
    assert fs["fib"].calls == 465


SPIN_PROGRAM = textwrap.dedent("""\
    import time

    def spin():
        end = time.process_time() + 0.15
        while time.process_time() < end:
            pass

    spin()
    """)


@pytest.mark.parametrize("mode", ["deterministic", "sampling"])
@pytest.mark.parametrize("how", ["script", "module"])
def test_run_records_only_the_program(tmp_path, mode, how, profiler_frames):
    # Neither hyprof's CLI, nor runpy, nor the exec that runs the program,
    # nor the profiler's stop: the tree starts at the program's <module>.
    (tmp_path / "spinner.py").write_text(SPIN_PROGRAM)
    target = ["spinner.py"] if how == "script" else ["-m", "spinner"]
    opts = ["--mode", mode] + (["--frequency", "1000"] if mode == "sampling" else [])
    r = hyprof_cmd("run", "-q", "-o", "s.hyprof", *opts, *target, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    t = hyprof.load(tmp_path / "s.hyprof")
    assert profiler_frames(t) == []
    roots = {(n.function.name, os.path.basename(n.function.filename))
             for n in t.nodes()[1:] if n.parent == 0}
    assert roots == {("<module>", "spinner.py")}
    assert [f.name for f in t.functions() if f.name == "spin"] == ["spin"]


def test_run_interrupted_shows_only_the_programs_traceback(tmp_path):
    (tmp_path / "intr.py").write_text("def work():\n    raise KeyboardInterrupt\n\nwork()\n")
    r = hyprof_cmd("run", "-q", "-o", "i.hyprof", "intr.py", cwd=tmp_path)
    assert r.returncode == 130
    plain = subprocess.run([sys.executable, "intr.py"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60)
    # The traceback python itself prints (which names the script by its
    # absolute path): the same frames, no frame of hyprof.
    assert r.stderr == plain.stderr.replace(str(tmp_path / "intr.py"), "intr.py")
    assert "Traceback" in r.stderr and 'intr.py", line 2, in work' in r.stderr


NAMES_PROGRAM = textwrap.dedent("""\
    import collections
    import random

    class Dice(random.Random):
        def roll(self):
            return self.randint(1, 6)

    class Rolls(list):
        def append(self, roll):
            super().append(roll)   # a static builtin type's C method

    def main():
        d = Dice(3)          # Random.__init__ calls the C seed through super()
        d.seed(5)
        random.seed(7)
        rolls = Rolls()
        for _ in range(50):
            rolls.append(d.roll())
        counts = collections.Counter(rolls)
        return sorted(counts.items(), key=lambda kv: kv[0])

    main()
    """)


@pytest.mark.parametrize("engine", ["setprofile"] + (["monitoring"]
                                                       if sys.version_info >= (3, 12) else []))
def test_two_runs_name_every_function_alike(tmp_path, engine):
    # Two processes, two address spaces: names carry no address, so diff
    # and merge see one function where the two runs ran one.
    (tmp_path / "dice.py").write_text(NAMES_PROGRAM)
    for out in ("a.hyprof", "b.hyprof"):
        r = hyprof_cmd("run", "-q", "--engine", engine, "-o", out, "dice.py", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    a, b = (hyprof.load(tmp_path / n) for n in ("a.hyprof", "b.hyprof"))
    names_a = {(f.name, f.filename, f.lineno) for f in a.functions()}
    names_b = {(f.name, f.filename, f.lineno) for f in b.functions()}
    assert names_a == names_b
    assert not [n for n in names_a if " at 0x" in n[0]], names_a
    assert {"<method 'seed' of '_random.Random' objects>",
            "<method 'append' of 'list' objects>"} <= {n[0] for n in names_a}
    from hyprof import diff
    rows = diff.diff(a, b).rows
    assert len(rows) == len(names_a)
    assert [r.name for r in rows if r.base == 0 or r.new == 0] == []
    r = hyprof_cmd("diff", "a.hyprof", "b.hyprof", "-n", "1000", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows_text = [ln for ln in r.stdout.splitlines() if "relative" not in ln]
    assert [ln for ln in rows_text if " new " in ln or "-100.0%" in ln] == [], r.stdout
    r = hyprof_cmd("merge", "-o", "m.hyprof", "a.hyprof", "b.hyprof", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    merged = {f.name: f.calls for f in hyprof.load(tmp_path / "m.hyprof").functions()}
    assert len(merged) == len(names_a)
    calls_a = {f.name: f.calls for f in a.functions()}
    calls_b = {f.name: f.calls for f in b.functions()}
    assert merged == {k: calls_a[k] + calls_b[k] for k in calls_a}


def test_run_missing_script_or_module(tmp_path):
    r = hyprof_cmd("run", "nope.py", cwd=tmp_path)
    assert r.returncode == 1
    assert "nope.py" in r.stderr and "no such file" in r.stderr
    r = hyprof_cmd("run", "-m", "no_such_module_xyz", cwd=tmp_path)
    assert r.returncode == 1
    assert "no_such_module_xyz" in r.stderr


@pytest.fixture
def trace_file(program, tmp_path):
    out = tmp_path / "t.hyprof"
    r = hyprof_cmd("run", "-q", "-o", out, program.name, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.parametrize("mode", ["deterministic", "sampling"])
def test_run_and_report_print_the_call_tree_by_default(tmp_path, mode):
    from test_render_support import tree_rows

    program = tmp_path / "prog.py"
    program.write_text(textwrap.dedent("""\
        import time

        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)

        def main():
            end = time.process_time() + 0.3
            while time.process_time() < end:
                fib(12)

        main()
        """))
    out = tmp_path / f"{mode}.hyprof"
    r = hyprof_cmd("run", "--mode", mode, "-o", out, program.name, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # After the run, on stderr: the tree, then the functions by own time.
    assert "call tree, by " in r.stderr and "functions by own " in r.stderr
    names = [row["name"] for row in tree_rows(r.stderr)]
    assert names[:3] == ["<module>", "main", "fib"], r.stderr
    if mode == "deterministic":
        assert tree_rows(r.stderr)[2]["where"] == "prog.py:3"
    rep = hyprof_cmd("report", out, cwd=tmp_path)
    assert rep.returncode == 0 and "call tree, by " in rep.stdout
    text = hyprof_cmd("run", "--mode", mode, "--format", "text", "-o", out, program.name,
                      cwd=tmp_path)
    assert text.returncode == 0 and "call tree" not in text.stderr
    assert ("cum wall" if mode == "deterministic" else "cum%") in text.stderr


def test_report_table_sort_and_limit(trace_file, tmp_path):
    r = hyprof_cmd("report", trace_file, "-f", "text", "--sort", "calls", "--limit", "2",
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("calls"))
    rows = lines[head + 1:head + 3]
    assert "465/1" in rows[0] and "fib" in rows[0]  # most calls first
    assert lines[head + 3].startswith("... ")
    r = hyprof_cmd("report", trace_file, "-f", "text", "--sort", "name", "--limit", "0",
                   cwd=tmp_path)
    names = [ln.split()[6] for ln in r.stdout.splitlines()[3:] if ln.strip()]
    assert names == sorted(names)


def test_run_suggests_the_report_command_that_works_where_it_ran(program, tmp_path):
    def run(out, **env):
        full = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(
            os.path.abspath(hyprof.__file__))), **env)
        if not env:
            full.pop("HYPROF_LAUNCHER", None)  # set by the build tree's pyrun
        return subprocess.run([sys.executable, "-m", "hyprof", "run", "-o", out, program.name],
                              cwd=tmp_path, capture_output=True, text=True, env=full)

    r = run("a b.hyprof")
    assert r.returncode == 0, r.stderr
    assert "(python -m hyprof report 'a b.hyprof')" in r.stderr
    # The build tree's pyrun says how it runs hyprof, and that is suggested.
    r = run("b.hyprof", HYPROF_LAUNCHER="/build/pyrun -m hyprof")
    assert "(/build/pyrun -m hyprof report b.hyprof)" in r.stderr, r.stderr


def test_report_threads_by_name_and_listed(tmp_path):
    prog = tmp_path / "threads.py"
    prog.write_text(textwrap.dedent("""\
        import threading
        def work(n):
            return sum(range(n))
        t = threading.Thread(target=work, args=(1000,), name="worker-1")
        t.start()
        t.join()
        work(10)
        """))
    out = tmp_path / "t.hyprof"
    assert hyprof_cmd("run", "-q", "-o", out, prog.name, cwd=tmp_path).returncode == 0
    r = hyprof_cmd("report", out, "--list-threads", cwd=tmp_path)
    assert r.returncode == 0 and "MainThread" in r.stdout and "worker-1" in r.stdout
    tid = next(ln.split()[0] for ln in r.stdout.splitlines() if "worker-1" in ln)
    by_name = hyprof_cmd("report", out, "--thread", "worker-1", cwd=tmp_path)
    by_id = hyprof_cmd("report", out, "--thread", tid, cwd=tmp_path)
    assert by_name.returncode == 0 and by_name.stdout == by_id.stdout
    assert "work" in by_name.stdout and "<module>" not in by_name.stdout


def test_report_format_from_the_output_name(trace_file, tmp_path):
    for name, start in (("r.html", b"<!DOCTYPE html>"), ("r.pb.gz", b"\x1f\x8b"),
                        ("r.txt", b"hyprof deterministic profile"), ("r", b"hyprof "),
                        ("r.svg", b"<?xml")):
        r = hyprof_cmd("report", trace_file, "-o", tmp_path / name, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / name).read_bytes().startswith(start), name
    # An unknown suffix writes nothing.
    r = hyprof_cmd("report", trace_file, "-o", tmp_path / "r.webp", cwd=tmp_path)
    assert r.returncode == 2 and not (tmp_path / "r.webp").exists()


def test_report_tree_and_pstats(trace_file, tmp_path):
    r = hyprof_cmd("report", trace_file, "--format", "tree", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    tree = r.stdout.splitlines()
    main = next(ln for ln in tree if " main " in ln)
    fib = next(ln for ln in tree if " fib " in ln)
    assert len(fib) - len(fib.lstrip()) >= 0
    assert fib.index("fib") > main.index("main")  # fib is drawn under main
    r = hyprof_cmd("report", trace_file, "--format", "pstats", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "function calls (" in r.stdout and "465/1" in r.stdout
    prof = tmp_path / "t.prof"
    r = hyprof_cmd("report", trace_file, "--format", "pstats", "-o", prof, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    st = pstats.Stats(str(prof))
    assert any(k[2] == "fib" and v[:2] == (1, 465) for k, v in st.stats.items())


def test_gprof2dot_reads_the_pstats_export(trace_file, tmp_path):
    pytest.importorskip("gprof2dot", reason="gprof2dot is not installed "
                        "(scripts/install-deps.sh installs it)")
    prof = tmp_path / "g.prof"
    r = hyprof_cmd("report", trace_file, "--format", "pstats", "-o", prof, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "gprof2dot", "-f", "pstats", "-n", "0", "-e", "0",
                        str(prof)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "prog:6:main" in r.stdout and "prog:3:fib" in r.stdout
    assert "465" in r.stdout or "465\u00d7" in r.stdout  # fib's call count


def test_report_errors_name_the_problem(trace_file, tmp_path):
    r = hyprof_cmd("report", trace_file, "--sort", "bogus", cwd=tmp_path)
    assert r.returncode == 2
    assert "--sort" in r.stderr and "bogus" in r.stderr
    r = hyprof_cmd("report", trace_file, "--limit", "-3", cwd=tmp_path)
    assert r.returncode == 2 and "--limit" in r.stderr
    r = hyprof_cmd("report", tmp_path / "missing.hyprof", cwd=tmp_path)
    assert r.returncode == 1
    assert "missing.hyprof" in r.stderr and "no such file" in r.stderr
    bad = tmp_path / "bad.hyprof"
    bad.write_bytes(b"not a trace at all")
    r = hyprof_cmd("report", bad, cwd=tmp_path)
    assert r.returncode == 1 and "bad.hyprof" in r.stderr
    r = hyprof_cmd("frobnicate", cwd=tmp_path)
    assert r.returncode == 2 and "frobnicate" in r.stderr


def test_main_entry_point(trace_file, capsys):
    assert cli.main(["report", str(trace_file), "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "hyprof deterministic profile" in out


def test_undecodable_file_names_are_kept_exactly(tmp_path):
    """Linux file names are bytes: a script whose name is not UTF-8 (é in
    Latin-1) keeps its name byte for byte in the trace, its argv and every
    report written with -o, none of which fails over it."""
    raw = bytes(tmp_path) + b"/prog\xe9.py"
    with open(raw, "w") as f:
        f.write(PROGRAM)
    name = os.fsdecode(raw)
    out = tmp_path / "o.hyprof"
    r = hyprof_cmd("run", "-o", out, name, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    t = hyprof.load(out)
    files = {f.filename for f in t.functions() if f.name in ("fib", "main")}
    assert files == {name} and os.fsencode(name) == raw
    assert t.header["argv"][-1] == name
    for fmt in ("text", "tree", "html", "speedscope", "collapsed", "callgrind", "dot", "pprof",
                "pstats"):
        dest = tmp_path / f"report.{fmt}"
        r = hyprof_cmd("report", out, "--format", fmt, "-o", dest, cwd=tmp_path)
        assert r.returncode == 0, (fmt, r.stderr)
        if fmt in ("text", "tree", "collapsed", "callgrind", "dot"):
            assert b"prog\xe9.py" in dest.read_bytes(), fmt
    assert name in {k[0] for k in pstats.Stats(str(tmp_path / "report.pstats")).stats}
    r = hyprof_cmd("report", out, cwd=tmp_path)
    assert r.returncode == 0 and "fib" in r.stdout, r.stderr


def test_clock_and_metric_are_one_option_in_every_format(tmp_path):
    prog = tmp_path / "sleepy.py"
    prog.write_text("import time\n\ndef nap():\n    time.sleep(0.05)\n\n"
                    "def spin():\n    return sum(range(300000))\n\nnap()\nspin()\n")
    out = tmp_path / "s.hyprof"
    assert hyprof_cmd("run", "-q", "-o", out, prog.name, cwd=tmp_path).returncode == 0
    for fmt in ("tree", "text", "collapsed", "dot", "svg", "speedscope"):
        by_clock = hyprof_cmd("report", out, "-f", fmt, "--clock", "cpu", cwd=tmp_path)
        by_metric = hyprof_cmd("report", out, "-f", fmt, "--metric", "cpu", cwd=tmp_path)
        wall = hyprof_cmd("report", out, "-f", fmt, cwd=tmp_path)
        assert by_clock.returncode == 0, (fmt, by_clock.stderr)
        assert by_clock.stdout == by_metric.stdout, fmt
        assert by_clock.stdout != wall.stdout, fmt  # the 50 ms nap is wall time, not CPU
