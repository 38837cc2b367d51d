"""The command line end to end: profile a real program with ``hyprof run``,
then ``hyprof report --format F -o FILE``, ``hyprof merge`` and ``hyprof
diff``, checking what the files say about the program."""

import gzip
import json
import re
import subprocess
import sys
import textwrap

import hyprof
import pytest
from test_det import ENGINES
from test_render_support import (
    det_data,
    need,
    run_hyprof,
    sampling_data,
    tool_env,
    write,
)

PROGRAM = textwrap.dedent("""\
    import sys
    import time

    def leaf(n):
        s = 0
        for i in range(n):
            s += i * i
        return s

    def middle(k):
        return [leaf(300) for _ in range(k)]

    def waiter(seconds):
        time.sleep(seconds)

    def main():
        for _ in range(20):
            middle(10)
        waiter(float(sys.argv[1]))

    main()
    """)


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    """Two deterministic runs of PROGRAM, the second sleeping longer."""
    d = tmp_path_factory.mktemp("cli")
    (d / "prog.py").write_text(PROGRAM)
    for name, secs in (("base", "0.02"), ("new", "0.12")):
        run_hyprof("run", "-q", "-o", d / (name + ".hyprof"), d / "prog.py", secs, cwd=d)
    return d


def test_report_every_format_to_a_file(traces):
    d = traces
    trace = d / "base.hyprof"
    calls = {f.name: f.calls for f in hyprof.load(trace).functions()}
    assert calls["leaf"] == 200 and calls["middle"] == 20
    for fmt, name in (("html", "r.html"), ("speedscope", "r.speedscope.json"),
                      ("collapsed", "r.folded"), ("callgrind", "callgrind.out.r"),
                      ("dot", "r.dot"), ("pprof", "r.pb.gz")):
        # Once with --format, once with the format implied by the file name.
        run_hyprof("report", trace, "--format", fmt, "-o", d / ("x-" + name))
        run_hyprof("report", trace, "-o", d / name)
        a, b = (d / ("x-" + name)).read_bytes(), (d / name).read_bytes()
        if fmt == "pprof":
            a, b = gzip.decompress(a), gzip.decompress(b)
            # The comment carries the time it was made; the rest is equal.
            assert a.count(b"\n") == b.count(b"\n")
            assert b"leaf" in a
            continue
        if fmt != "pprof":
            a = re.sub(rb"made \S+ \S+", b"", a)
            b = re.sub(rb"made \S+ \S+", b"", b)
        assert a == b, fmt
    folded = (d / "r.folded").read_text()
    # Frames name the file by its last two path parts.
    leafs = [ln for ln in folded.splitlines()
             if re.search(rf";leaf \({d.name}/prog\.py:4\) \d+$", ln)]
    assert len(leafs) == 1 and f";middle ({d.name}/prog.py:10);" in leafs[0]
    doc = json.loads((d / "r.speedscope.json").read_text())
    assert {"leaf", "middle", "waiter"} <= {f["name"] for f in doc["shared"]["frames"]}
    assert "fn=" in (d / "callgrind.out.r").read_text()
    assert "digraph" in (d / "r.dot").read_text()
    assert "leaf" in (d / "r.html").read_text()


def test_report_to_stdout_and_options(traces):
    d = traces
    out = run_hyprof("report", d / "base.hyprof", "--format", "collapsed", "--metric",
                     "calls").stdout
    leaf = [ln for ln in out.splitlines() if re.search(r";leaf \(\S+\) \d+$", ln)]
    assert len(leaf) == 1 and int(leaf[0].rsplit(" ", 1)[1]) == 200
    # A threshold just above middle's share of the run drops it and leaf,
    # and keeps main (the whole run).
    funcs = {f.name: f for f in hyprof.load(d / "base.hyprof").functions()}
    total = sum(f.wall_own for f in funcs.values())
    share = 100 * funcs["middle"].wall_cum / total
    dot = run_hyprof("report", d / "base.hyprof", "--format", "dot", "--threshold",
                     "%.4f" % (share + 0.01)).stdout
    assert '"middle' not in dot and '"leaf' not in dot and '"main' in dot
    bad = run_hyprof("report", d / "base.hyprof", "--format", "collapsed", "--metric", "nope",
                     check=False)
    assert bad.returncode == 1
    assert "unknown metric 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    binary = subprocess.run([sys.executable, "-m", "hyprof", "report", str(d / "base.hyprof"),
                             "--format", "pprof"], capture_output=True, check=False,
                            env=_env())
    assert binary.returncode == 0 and binary.stdout[:2] == b"\x1f\x8b"


def _env():
    import os
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def test_diff_command(traces):
    d = traces
    out = run_hyprof("diff", d / "base.hyprof", d / "new.hyprof").stdout
    slower = out.split("Slower", 1)[1].split("Faster", 1)[0]
    # The sleep went from 20 ms to 120 ms; the table gives the traces' own
    # numbers for it (sleeps overrun on a busy machine, so read them).
    base = {f.name: f for f in hyprof.load(d / "base.hyprof").functions()}["waiter"].wall_cum
    new = {f.name: f for f in hyprof.load(d / "new.hyprof").functions()}["waiter"].wall_cum
    assert base >= 0.02 and new >= 0.12
    m = re.search(r"\+(\d+(?:\.\d+)?) ms\s+\+(\d+\.\d)%\s+waiter", slower)
    assert m, out
    assert float(m.group(1)) == pytest.approx((new - base) * 1e3, rel=0.01)
    assert float(m.group(2)) == pytest.approx(100 * (new - base) / base, abs=0.06)
    run_hyprof("diff", d / "base.hyprof", d / "new.hyprof", "-o", d / "diff.html")
    page = (d / "diff.html").read_text()
    assert "hyprof diff: base.hyprof -&gt; new.hyprof" in page and "waiter" in page
    bad = run_hyprof("diff", d / "base.hyprof", d / "missing.hyprof", check=False)
    assert bad.returncode == 1 and "no such file" in bad.stderr


def test_merge_command(traces, tmp_path):
    d = traces
    out = tmp_path / "both.hyprof"
    res = run_hyprof("merge", "-o", out, d / "base.hyprof", d / "new.hyprof")
    assert "2 traces, 2 threads" in res.stderr
    t = hyprof.load(out)
    assert len(t.header["sources"]) == 2
    assert {f.name: f.calls for f in t.functions()}["leaf"] == 400
    smp = tmp_path / "s.hyprof"
    write(smp, sampling_data())
    bad = run_hyprof("merge", "-o", tmp_path / "x.hyprof", d / "base.hyprof", smp, check=False)
    assert bad.returncode == 1
    assert "different modes" in bad.stderr and "Traceback" not in bad.stderr
    write(tmp_path / "d.hyprof", det_data())
    missing = run_hyprof("merge", "-o", tmp_path / "y.hyprof", tmp_path / "nope.hyprof",
                         check=False)
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_pprof_of_a_real_run(traces, tmp_path):
    go = need("go", "golang-go")
    p = tmp_path / "real.pb.gz"
    run_hyprof("report", traces / "base.hyprof", "-o", p)
    out = subprocess.run([go, "tool", "pprof", "-top", "-nodecount=50", str(p)],
                         capture_output=True, text=True, check=True,
                         env=tool_env(HOME=str(tmp_path))).stdout
    assert re.search(r"\bleaf\b", out) and re.search(r"\bmiddle\b", out)


CPU_PROGRAM = textwrap.dedent("""\
    import threading

    def leaf(n):
        s = 0
        for i in range(n):
            s += i * i
        return s

    def spin():
        for _ in range(40):
            leaf(100000)

    t = threading.Thread(target=spin, name="spinner")
    t.start()
    spin()
    t.join()
    """)


def test_sampling_run_in_every_format(tmp_path):
    (tmp_path / "cpu.py").write_text(CPU_PROGRAM)
    res = run_hyprof("run", "-q", "--mode", "sampling", "-o", tmp_path / "s.hyprof",
                     tmp_path / "cpu.py", cwd=tmp_path, check=False)
    if res.returncode != 0 and "not available" in res.stderr:
        pytest.skip("the sampling mode is not available here: " + res.stderr.strip())
    assert res.returncode == 0, res.stderr
    trace = hyprof.load(tmp_path / "s.hyprof")
    total = sum(f.own_samples for f in trace.functions())
    assert total >= 10
    leaf = {f.name: f for f in trace.functions()}["leaf"]
    assert leaf.own_samples >= 0.8 * total  # nearly all the time is in leaf
    folded = run_hyprof("report", tmp_path / "s.hyprof", "--format", "collapsed",
                        "--threads").stdout
    per_thread = {}
    for line in folded.splitlines():
        stack, n = line.rsplit(" ", 1)
        per_thread[stack.split(";", 1)[0]] = per_thread.get(stack.split(";", 1)[0], 0) + int(n)
    assert set(per_thread) == {"[thread] MainThread", "[thread] spinner"}
    assert sum(per_thread.values()) == total
    for fmt, name in (("html", "s.html"), ("speedscope", "s.json"), ("callgrind", "cg.out"),
                      ("dot", "s.dot"), ("pprof", "s.pb.gz")):
        run_hyprof("report", tmp_path / "s.hyprof", "--format", fmt, "-o", tmp_path / name)
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["profiles"][0]["type"] == "sampled"
    assert sum(sum(p["weights"]) for p in doc["profiles"]) == sum(
        f.own_weight for f in trace.functions())
    assert "leaf" in (tmp_path / "s.html").read_text()


# ------------------------------------------------------------ the shape in the tools

SHAPED = textwrap.dedent("""\
    import gc
    import sys

    # One "[gc] generation 0" function called from wherever collections
    # happened would have gprof2dot split its time among those callers by
    # their counts: the shares below are of the program's own calls.
    gc.disable()

    import shapelib

    def first():
        return shapelib.work(40000)

    def second():
        return shapelib.work(20000)

    def main():
        first()
        second()
        return int(sys.argv[1])

    main()
    """)

SHAPELIB = textwrap.dedent("""\
    def work(n):
        s = 0
        for i in range(n):
            s += i * i
        return s
    """)

@pytest.fixture(scope="module")
def shaped(tmp_path_factory):
    """{engine: trace path} of SHAPED, a program that imports a module of
    its own, run as ``hyprof run -o T myprog.py 3`` from its directory."""
    d = tmp_path_factory.mktemp("shaped")
    (d / "myprog.py").write_text(SHAPED)
    (d / "shapelib.py").write_text(SHAPELIB)
    out = {}
    for engine in ENGINES:
        out[engine] = d / f"{engine}.hyprof"
        run_hyprof("run", "-q", "--engine", engine, "-o", out[engine], "myprog.py", "3", cwd=d)
    return out


@pytest.mark.parametrize("engine", ENGINES)
def test_gprof2dot_keeps_the_top_of_the_program(shaped, engine, tmp_path):
    """Module bodies are named after their module in callgrind output, so
    gprof2dot (which matches functions by name) keeps the program -> its
    module body -> main, with main's share of the run."""
    tool = need("gprof2dot", "gprof2dot")
    cg = tmp_path / "callgrind.out.myprog"
    run_hyprof("report", shaped[engine], "-o", cg)
    text = cg.read_text()
    assert "<module myprog>" in text and "<module shapelib>" in text
    dot = subprocess.run([tool, "-f", "callgrind", str(cg)], capture_output=True, text=True,
                         check=True, env=tool_env()).stdout
    edges = re.findall(r'^\s*"([^"]*)" -> "([^"]*)" \[.*label="([\d.]+)%', dot, re.MULTILINE)
    share = {(a, b): float(p) for a, b, p in edges}
    top = next(a for a, b in share if b == "<module myprog>")
    assert top == "<program myprog.py>"  # the trace's root: the program alone
    main = next(b for a, b in share if a == "<module myprog>" and b.startswith("main:"))
    trace = hyprof.load(shaped[engine])
    funcs = {f.name: f for f in trace.functions()}
    total = sum(f.wall_own for f in funcs.values())
    # gprof2dot adds up self costs along the edges itself: near main's total
    # (within 5%: it splits the costs of the calls it sees by their counts,
    # and a sanitized build's slower calls make that split coarser).
    assert share[("<module myprog>", main)] == pytest.approx(
        100 * funcs["main"].wall_cum / total, rel=0.05)
    assert share[(top, "<module myprog>")] > share[("<module myprog>", main)]


@pytest.mark.parametrize("engine", ENGINES)
def test_speedscope_time_order_is_execution_order(shaped, engine, tmp_path):
    """main calls first, then second: speedscope's time order view shows
    them in that order."""
    out = tmp_path / "s.speedscope.json"
    run_hyprof("report", shaped[engine], "-o", out)
    doc = json.loads(out.read_text())
    names = [f["name"] for f in doc["shared"]["frames"]]
    wall = next(p for p in doc["profiles"] if p["name"] == "MainThread (wall)")
    opened = [names[ev["frame"]] for ev in wall["events"] if ev["type"] == "O"]
    under_main = opened[opened.index("main"):]
    assert under_main.index("first") < under_main.index("second"), under_main


@pytest.mark.parametrize("mode", ["deterministic", "sampling"])
def test_profiles_are_named_after_the_program(shaped, mode, tmp_path):
    """Not after hyprof's command line: the program and its arguments."""
    if mode == "deterministic":
        trace = shaped["setprofile"]
    else:
        trace = tmp_path / "s.hyprof"
        d = shaped["setprofile"].parent
        res = run_hyprof("run", "-q", "--mode", "sampling", "-o", trace, "myprog.py", "3",
                         cwd=d, check=False)
        if res.returncode != 0 and "not available" in res.stderr:
            pytest.skip("the sampling mode is not available here: " + res.stderr.strip())
        assert res.returncode == 0, res.stderr
    t = hyprof.load(trace)
    assert json.loads(t.to_speedscope())["name"] == "myprog.py 3"
    assert "<title>hyprof: myprog.py 3</title>" in t.to_html()
    callgrind = t.to_callgrind()
    assert "\ncmd: myprog.py 3\n" in callgrind and "fn=(" in callgrind
    assert "<program myprog.py>" in callgrind
    assert "hyprof call graph of myprog.py 3:" in t.to_dot()
