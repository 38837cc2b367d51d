"""hyprof.load and the Trace API on traces with known numbers, written by the
C writer from Python tables; errors on bad files; and the same file read by
the msgpack package agreeing with the C reader."""

import json
import os
import pathlib
import random
import subprocess
import sys
import textwrap
import warnings

import hyprof
import msgpack
import pytest
from hyprof import _hyprof
from test_render_support import PEAK_KIB, peak_env

MS = 1_000_000

DET_METRICS = [("calls", "count", "calls"), ("wall_own", "ns", "own"), ("cpu_own", "ns", "own"),
               ("wall_cum", "ns", "cum"), ("cpu_cum", "ns", "cum")]


def det_data():
    """main -> fib -> fib -> fib (recursion), main -> len (builtin), on two
    threads. Times in ns."""
    return {
        "mode": "deterministic",
        "header": {"python": "3.12.1", "pid": 77, "argv": ["prog.py", "-x"], "clock": "tsc",
                   "start_time": 1700000000.5, "builtins": True, "note": None},
        "metrics": DET_METRICS,
        "functions": [("main", "prog.py", 1, 0), ("fib", "prog.py", 10, 0), ("len", "", 0, 1)],
        "threads": [(1001, 11, "MainThread"), (1002, 12, "worker")],
        "nodes": [(0, 0, 0), (1, 1, 0), (2, 1, 0), (3, 1, 0), (1, 2, 0)],
        "rows": [
            (0, 1, (1, 2 * MS, 1 * MS, 20 * MS, 10 * MS)),
            (0, 2, (1, 3 * MS, 3 * MS, 15 * MS, 7 * MS)),
            (0, 3, (2, 4 * MS, 2 * MS, 12 * MS, 4 * MS)),
            (0, 4, (4, 8 * MS, 2 * MS, 8 * MS, 2 * MS)),
            (0, 5, (10, 1 * MS, 1 * MS, 1 * MS, 1 * MS)),
            (1, 1, (1, 5 * MS, 5 * MS, 6 * MS, 6 * MS)),
            (1, 5, (3, 1 * MS, 1 * MS, 1 * MS, 1 * MS)),
        ],
    }


SMP_METRICS = [("samples", "count", "own"), ("cpu-clock", "ns", "own"),
               ("alloc_samples", "count", "own"), ("alloc_bytes", "bytes", "own")]


def smp_data():
    funcs = [("main", "app.py", 1, 0), ("work", "app.py", 10, 0), ("helper", "lib.py", 5, 0)]
    nodes = [(0, 0, 3), (1, 1, 12), (1, 1, 14), (2, 2, 6)]  # ids 1..4
    samples = []
    t = 1000
    for i in range(300):
        node = (1, 2, 3, 4, 4)[i % 5]
        t += 10 * MS + (i % 7)
        samples.append((0, node, 0, t, 10 * MS + i))
        if i % 3 == 0:
            samples.append((1, 2, 0, t + 5, 10 * MS))
        if i % 50 == 0:
            samples.append((0, 4, 1, t + 7, 4096 * (i + 1)))
    return {
        "mode": "sampling",
        "header": {"trigger": "perf_event", "event": "cpu-clock", "period": 10 * MS},
        "metrics": SMP_METRICS,
        "sample_kinds": [("cpu-clock", "ns", 0, 1), ("alloc", "bytes", 2, 3)],
        "functions": funcs,
        "threads": [(2001, 21, "MainThread"), (2002, 22, "io")],
        "nodes": nodes,
        "sample_list": samples,
        "dropped": {"ring full": 3, "unresolved": 1},
    }


# ---------------------------------------------------------------- the API

def by_name(functions):
    return {f.name: f for f in functions}


def test_deterministic_functions(write_trace):
    t = hyprof.load(write_trace(det_data()))
    assert t.mode == "deterministic"
    assert not t.truncated
    f = by_name(t.functions())
    assert set(f) == {"main", "fib", "len"}
    fib = f["fib"]
    assert (fib.calls, fib.primitive_calls) == (1 + 2 + 4, 1)
    assert fib.wall_own == pytest.approx((3 + 4 + 8) / 1000)
    assert fib.wall_cum == pytest.approx(15 / 1000)   # the outermost call only
    assert fib.cpu_cum == pytest.approx(7 / 1000)
    assert (fib.filename, fib.lineno, fib.kind) == ("prog.py", 10, "python")
    main = f["main"]
    assert (main.calls, main.primitive_calls) == (2, 2)
    assert main.wall_cum == pytest.approx(26 / 1000)
    assert f["len"].kind == "builtin"
    assert f["len"].calls == 13
    # one thread
    w = by_name(t.functions(thread=1))
    assert set(w) == {"main", "len"}
    assert w["len"].calls == 3
    assert w["main"].wall_own == pytest.approx(5 / 1000)


def test_deterministic_edges_threads_nodes(write_trace):
    t = hyprof.load(write_trace(det_data()))
    edges = {(e.caller.name if e.caller else None, e.callee.name): e for e in t.edges()}
    assert set(edges) == {(None, "main"), ("main", "fib"), ("fib", "fib"), ("main", "len")}
    assert (edges["fib", "fib"].calls, edges["fib", "fib"].primitive_calls) == (6, 2)
    assert edges["main", "len"].calls == 13
    assert edges[None, "main"].wall_cum == pytest.approx(26 / 1000)
    assert [(th.id, th.os_tid, th.ident, th.name) for th in t.threads()] == [
        (0, 1001, 11, "MainThread"), (1, 1002, 12, "worker")]
    nodes = t.nodes()
    assert len(nodes) == 6
    assert nodes[0].parent is None and nodes[0].function is None
    assert nodes[4].function.name == "fib" and nodes[4].parent == 3
    assert nodes[1].values["calls"] == 2
    assert t.nodes(thread=1)[1].values["wall_own"] == 5 * MS
    with pytest.raises(ValueError, match="no thread 5"):
        t.functions(thread=5)


def test_header_and_metrics(write_trace):
    t = hyprof.load(write_trace(det_data()))
    h = t.header
    assert h["format"] == "hyprof" and h["version"] == [1, 2] and h["mode"] == "deterministic"
    assert (h["python"], h["pid"], h["argv"], h["clock"]) == ("3.12.1", 77, ["prog.py", "-x"],
                                                             "tsc")
    assert h["start_time"] == 1700000000.5 and h["builtins"] is True and h["note"] is None
    assert [tuple(m) for m in t.metrics] == DET_METRICS


def test_sampling_trace(write_trace):
    data = smp_data()
    t = hyprof.load(write_trace(data), keep_samples=True)
    assert t.mode == "sampling"
    assert t.sample_total == len(data["sample_list"])
    assert t.dropped == {"ring full": 3, "unresolved": 1}
    f = by_name(t.functions())
    # 300 main-thread samples over nodes 1,2,3,4,4 and 100 io samples on node 2
    assert f["helper"].own_samples == 120 and f["helper"].cum_samples == 120
    assert f["work"].own_samples == 60 + 60 + 100 and f["work"].cum_samples == 220 + 120
    assert f["main"].cum_samples == 400
    assert f["helper"].own["alloc_samples"] == 6
    assert f["helper"].own["alloc_bytes"] == sum(4096 * (i + 1) for i in range(0, 300, 50))
    assert by_name(t.functions(thread=1))["work"].own_samples == 100
    got = sorted(tuple(s)[:5] for s in t.samples())
    assert got == sorted(data["sample_list"])
    assert {s.labels for s in t.samples()} == {0}
    lines = t.lines()
    assert lines[0][:3] == ("app.py", 12, 60 + 100)
    assert lines[1] == ("lib.py", 6, 120, sum(10 * MS + i for i in range(300) if i % 5 >= 3))
    assert [x.samples for x in lines] == [160, 120, 60, 60]
    stacks = {tuple(fr.name for fr in frames): v for frames, v in t.stacks()}
    assert stacks[("main", "work", "helper")] == 120
    assert stacks[("main",)] == 60
    with pytest.raises(hyprof.TraceError, match="keep_samples=True"):
        hyprof.load(write_trace(data, "b.hyprof")).samples()


def test_stacks_lines_and_reports_share_one_tree_per_thread(write_trace):
    from hyprof.render import _model
    t = hyprof.load(write_trace(smp_data()))
    # Thread 1 (io) sampled only node 2: its stacks and lines are its own.
    assert [(tuple(f.name for f in fr), v) for fr, v in t.stacks(thread=1)] == [
        (("main", "work"), 100)]
    assert [tuple(x) for x in t.lines(thread=1)] == [("app.py", 12, 100, 100 * 10 * MS)]
    # A cum column's stacks are each node's exclusive part.
    det = hyprof.load(write_trace(det_data(), "d.hyprof"))
    cum = dict((tuple(f.name for f in fr), v) for fr, v in det.stacks(metric="wall_cum"))
    own = dict((tuple(f.name for f in fr), v) for fr, v in det.stacks(metric="wall_own"))
    assert cum.keys() <= own.keys() and cum[("main", "len")] == own[("main", "len")]
    # One tree per (split, thread), built once and shared.
    assert _model.call_tree(t, thread=1) is _model.call_tree(t, thread=1)
    assert _model.call_tree(t) is not _model.call_tree(t, thread=1)
    split = _model.call_tree(t, split_threads=True)
    assert len(split) == 1 + 2 * t.node_count
    assert [split.funcs[split.func[r]].name for _, r in _model.thread_roots(split)] == [
        "[thread] MainThread", "[thread] io"]
    # The C entry point names what is wrong with its arguments.
    with pytest.raises(ValueError, match="no metric 99"):
        _hyprof.call_tree(t._profile, bytes([99, 0, 0, 0]))
    with pytest.raises(ValueError, match="one pseudo function per thread"):
        _hyprof.call_tree(t._profile, b"", -1, bytes(4))
    with pytest.raises(ValueError, match="no thread 7"):
        _hyprof.call_tree(t._profile, b"", 7)


def test_rewrite_keeps_every_number(write_trace, tmp_path):
    t = hyprof.load(write_trace(smp_data()))
    t.write(tmp_path / "again.hyprof")
    u = hyprof.load(tmp_path / "again.hyprof")
    key = lambda f: (f.name, f.filename, f.lineno)
    assert sorted((key(f), f.own, f.cum) for f in t.functions()) == \
        sorted((key(f), f.own, f.cum) for f in u.functions())
    assert u.dropped == t.dropped
    assert [n.values for n in t.nodes(thread=1)] == [n.values for n in u.nodes(thread=1)]


# ---------------------------------------------------------------- errors

def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no-such.hyprof"):
        hyprof.load("/nonexistent/no-such.hyprof")


def test_not_a_trace(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello\n")
    with pytest.raises(hyprof.TraceError) as e:
        hyprof.load(p)
    assert str(e.value) == f"{p}: record 0 at byte 0: not a hyprof trace: the file does not " \
        "start with the string \"HYPROF\""
    assert isinstance(e.value, ValueError)


def raw(*objs):
    return b"".join(msgpack.packb(o) for o in objs)


HEAD = {"format": "hyprof", "version": [1, 0], "mode": "deterministic",
        "metrics": [["calls", "count", "calls"]], "sample_kinds": []}
TABLES = [[1, 0, ["f", "x.py", "main"]], [2, 0, [0, 1, 3, 0]], [3, 0, [5, 5, 2]],
          [4, 1, [0, 0, 0, 1, 0, 0]]]


def test_unknown_major_version(tmp_path):
    p = tmp_path / "v2.hyprof"
    p.write_bytes(raw("HYPROF", dict(HEAD, version=[2, 0]), *TABLES))
    with pytest.raises(hyprof.TraceError, match=r"v2.hyprof: record 1 at byte 7: format version"
                       r" 2.0 is not supported"):
        hyprof.load(p)


def test_reference_out_of_range_names_record_and_byte(tmp_path):
    p = tmp_path / "corrupt.hyprof"
    head = raw("HYPROF", HEAD, *TABLES)
    p.write_bytes(head + raw([4, 3, [120, 0, 0]]))
    with pytest.raises(hyprof.TraceError) as e:
        hyprof.load(p)
    assert str(e.value) == (f"{p}: record 6 at byte {len(head)}: node 3 refers to parent 120"
                            " beyond the node table")


def test_handmade_trace_with_unknown_record(tmp_path):
    # written by msgpack-python from docs/FORMAT.md alone
    p = tmp_path / "hand.hyprof"
    p.write_bytes(raw("HYPROF", dict(HEAD, host="box"), [42, {"future": [1, 2]}], *TABLES,
                      [5, 0, [1, 3, 2, 4]], [8, {"samples": 0, "nodes": 3,
                                                  "truncated_nodes": 0, "dropped": {}}]))
    t = hyprof.load(p)
    assert t.skipped_records == 1
    assert t.header["host"] == "box"
    f = by_name(t.functions())
    assert (f["f"].calls, f["f"].primitive_calls) == (7, 3)


def test_truncated_trace_loads_with_a_warning(write_trace, tmp_path):
    full = write_trace(smp_data()).read_bytes()
    cut = tmp_path / "cut.hyprof"
    cut.write_bytes(full[:len(full) - 3])
    with pytest.warns(hyprof.TraceWarning, match="cut.hyprof: record .* cut inside"):
        t = hyprof.load(cut)
    assert t.truncated
    assert t.node_count == 5
    # every complete record: the samples before the cut ones
    assert 0 < sum(f.own_samples for f in t.functions()) <= 400
    cut.write_bytes(full[:5])
    with pytest.raises(hyprof.TraceError, match="header is incomplete"):
        hyprof.load(cut)


def test_every_cut_loads_or_raises_trace_error(write_trace, tmp_path):
    full = write_trace(det_data()).read_bytes()
    cut = tmp_path / "cut.hyprof"
    loaded = 0
    for n in range(len(full)):
        cut.write_bytes(full[:n])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hyprof.TraceWarning)
            try:
                t = hyprof.load(cut)
            except hyprof.TraceError as e:
                assert "header is incomplete" in str(e)
                continue
        assert t.truncated
        t.functions()
        loaded += 1
    assert loaded > len(full) // 2


CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus")


def test_node_cap_is_visible():
    # written by the C producer with a cap of 5 nodes (tests/fuzz/make_seeds.c):
    # main > fib > fib > fib fit; main > len folds into "[truncated]"
    t = hyprof.load(os.path.join(CORPUS, "deterministic.seed"))
    assert t.truncated_nodes == 1
    f = by_name(t.functions())
    assert f["[truncated]"].kind == "special"
    assert f["[truncated]"].calls == 1
    assert (f["fib"].calls, f["fib"].primitive_calls) == (3, 1)
    assert "len" not in f
    assert t.header["argv"] == ["app.py", "-v"]


def test_streamed_trace_from_c(tmp_path):
    # two flushes of a sampling profile, with metadata set after the header
    t = hyprof.load(os.path.join(CORPUS, "sampling.seed"), keep_samples=True)
    assert t.sample_total == 80
    assert len(t.samples()) == 80
    assert t.dropped == {"ring full": 4}
    assert t.header["duration"] == 0.5 and t.header["event"] == "cpu-clock"
    assert [th.name for th in t.threads()] == ["MainThread", "worker"]
    assert sum(f.own_samples for f in t.functions()) == 80 - 10  # 10 are alloc samples
    assert sum(f.own["alloc_samples"] for f in t.functions()) == 10


def test_mutated_traces_load_or_raise_trace_error(tmp_path):
    # bytes flipped, dropped and repeated in real traces: each either loads
    # (and then every view works and it writes back) or raises TraceError;
    # never another exception, never a crash
    rng = random.Random(1234)
    seeds = [pathlib.Path(CORPUS, n).read_bytes() for n in sorted(os.listdir(CORPUS))]
    path = tmp_path / "m.hyprof"
    outcomes = {"loaded": 0, "error": 0}
    for i in range(1500):
        b = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            k = rng.randrange(len(b))
            op = rng.randrange(3)
            if op == 0:
                b[k] = rng.randrange(256)
            elif op == 1:
                del b[k:k + rng.randrange(1, 9)]
            else:
                b[k:k] = b[k:k + rng.randrange(1, 9)]
        path.write_bytes(bytes(b))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hyprof.TraceWarning)
            try:
                t = hyprof.load(path, keep_samples=True)
            except hyprof.TraceError:
                outcomes["error"] += 1
                continue
        t.functions(), t.edges(), t.nodes(), t.lines(), t.samples(), t.threads()
        try:
            t.stacks()
        except ValueError as e:
            assert "no metric" in str(e)
        if i % 10 == 0:
            try:
                t.write(tmp_path / "w.hyprof")
            except (ValueError, TypeError) as e:
                assert "write_trace" in str(e)
        outcomes["loaded"] += 1
    assert outcomes["loaded"] > 100 and outcomes["error"] > 100


def test_write_trace_rejects_bad_tables(tmp_path):
    out = str(tmp_path / "x.hyprof")
    data = det_data()
    with pytest.raises(ValueError, match="\"mode\" must be"):
        _hyprof.write_trace(out, dict(data, mode="fast"))
    with pytest.raises(ValueError, match="node 2 refers to parent 7"):
        _hyprof.write_trace(out, dict(data, nodes=[(0, 0, 0), (7, 1, 0)]))
    with pytest.raises(ValueError, match="row 0 has 2 values for 5 metric columns"):
        _hyprof.write_trace(out, dict(data, rows=[(0, 1, (1, 2))]))
    with pytest.raises(ValueError, match="kind 'wall'"):
        _hyprof.write_trace(out, dict(data, metrics=[("calls", "count", "wall")]))
    with pytest.raises(TypeError, match="header entry 'x' is a dict"):
        _hyprof.write_trace(out, dict(data, header={"x": {}}))
    with pytest.raises(ValueError, match="function 0 must be a sequence of 4 items"):
        _hyprof.write_trace(out, dict(data, functions=[("main", "x.py")]))
    with pytest.raises(OSError):
        _hyprof.write_trace("/nonexistent-dir/x.hyprof", data)


# ---------------------------------------------------------------- round trip with msgpack

def decode_with_msgpack(path):
    """An independent reader of the format, from docs/FORMAT.md."""
    with open(path, "rb") as f:
        objs = list(msgpack.Unpacker(f, raw=False, strict_map_key=False))
    assert objs[0] == "HYPROF"
    header = objs[1]
    m = len(header["metrics"])
    out = {"header": header, "strings": [], "funcs": [], "threads": [], "nodes": [(None, None, 0)],
           "rows": {}, "samples": [], "dropped": {}, "end": None}
    for rec in objs[2:]:
        typ = rec[0]
        if typ == 1:
            assert rec[1] == len(out["strings"])
            out["strings"] += rec[2]
        elif typ == 2:
            assert rec[1] == len(out["funcs"])
            out["funcs"] += [tuple(rec[2][i:i + 4]) for i in range(0, len(rec[2]), 4)]
        elif typ == 3:
            out["threads"] += [tuple(rec[2][i:i + 3]) for i in range(0, len(rec[2]), 3)]
        elif typ == 4:
            assert rec[1] == len(out["nodes"])
            out["nodes"] += [tuple(rec[2][i:i + 3]) for i in range(0, len(rec[2]), 3)]
        elif typ == 5:
            for i in range(0, len(rec[2]), m + 1):
                key = (rec[1], rec[2][i])
                row = out["rows"].setdefault(key, [0] * m)
                for j in range(m):
                    row[j] += rec[2][i + 1 + j]
        elif typ == 6:
            thread, kind, t = rec[1], rec[2], rec[3]
            for i in range(0, len(rec[4]), 3):
                node, dt, weight = rec[4][i:i + 3]
                t += dt
                out["samples"].append((thread, node, kind, t, weight))
                cm, wm = header["sample_kinds"][kind][2:4]
                row = out["rows"].setdefault((thread, node), [0] * m)
                row[cm] += 1
                row[wm] += weight
        elif typ == 7:
            for k, v in rec[1].items():
                out["dropped"][k] = out["dropped"].get(k, 0) + v
        elif typ == 8:
            out["end"] = rec[1]
    return out


@pytest.mark.parametrize("make", [det_data, smp_data])
def test_msgpack_package_reads_what_c_reads(write_trace, make):
    path = write_trace(make())
    d = decode_with_msgpack(path)
    t = hyprof.load(path, keep_samples=True)
    assert d["header"] == {k: v for k, v in t.header.items()}
    assert d["strings"] == t.strings
    assert [(t.strings[n], t.strings[f], ln, k) for n, f, ln, k in d["funcs"]] == \
        [(f.name, f.filename, f.lineno, ("python", "builtin", "special").index(f.kind))
         for f in t.function_table]
    assert [(tid, ident, t.strings[n]) for tid, ident, n in d["threads"]] == \
        [(th.os_tid, th.ident, th.name) for th in t.threads()]
    nodes = t.nodes()
    assert d["nodes"][1:] == [(n.parent, n.function.id, n.line) for n in nodes[1:]]
    names = [m.name for m in t.metrics]
    for th in t.threads():
        for n in t.nodes(thread=th.id):
            want = d["rows"].get((th.id, n.id), [0] * len(names))
            assert [n.values[k] for k in names] == want
    if t.mode == "sampling":
        assert sorted(d["samples"]) == sorted(tuple(s)[:5] for s in t.samples())
        # a whole-profile save puts the totals in the end record; a streaming
        # writer also writes DROPPED records as it goes
        assert t.dropped == d["end"]["dropped"] == {"ring full": 3, "unresolved": 1}
        assert d["dropped"] in ({}, t.dropped)
    assert d["end"]["nodes"] == t.node_count
    assert d["end"]["samples"] == t.sample_total


# ---------------------------------------------------------------- against cProfile

def recursive_workload():
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    def ping(n):
        return pong(n - 1) if n > 0 else 0

    def pong(n):
        return ping(n - 1) + 1 if n > 0 else 0

    def main():
        for i in range(3):
            fib(8 + i)
            ping(9)
        sorted(range(5), key=lambda x: -x)

    main()


def cct_of(func):
    """Runs func under sys.setprofile, building the calling-context tree with
    call counts: the shape hyprof's deterministic mode records."""
    funcs, findex, nodes, nindex, calls = [], {}, [], {}, {}
    stack = [0]

    def fid(key):
        j = findex.get(key)
        if j is None:
            j = findex[key] = len(funcs)
            funcs.append(key)
        return j

    def prof(frame, event, arg):
        if event in ("call", "c_call"):
            if event == "call":
                co = frame.f_code
                key = (co.co_qualname, co.co_filename, co.co_firstlineno, 0)
            else:
                key = (getattr(arg, "__qualname__", arg.__name__), "", 0, 1)
            k = (stack[-1], fid(key), 0)
            n = nindex.get(k)
            if n is None:
                nodes.append(k)
                n = nindex[k] = len(nodes)
            calls[n] = calls.get(n, 0) + 1
            stack.append(n)
        elif event in ("return", "c_return", "c_exception") and len(stack) > 1:
            stack.pop()

    sys.setprofile(prof)
    try:
        func()
    finally:
        sys.setprofile(None)
    return funcs, nodes, calls


def test_primitive_calls_match_cprofile(write_trace):
    import cProfile
    import pstats

    funcs, nodes, calls = cct_of(recursive_workload)
    data = {"mode": "deterministic", "metrics": [("calls", "count", "calls")],
            "functions": funcs, "threads": [(1, 1, "MainThread")], "nodes": nodes,
            "rows": [(0, n, (c,)) for n, c in calls.items()]}
    t = hyprof.load(write_trace(data))
    ours = {(f.name.rsplit(".", 1)[-1], f.lineno): (f.calls, f.primitive_calls)
            for f in t.functions() if f.kind == "python"}
    prof = cProfile.Profile()
    prof.runcall(recursive_workload)
    st = pstats.Stats(prof).stats
    theirs = {(name, line): (nc, cc) for (fn, line, name), (cc, nc, tt, ct, callers) in st.items()
              if fn.endswith("test_trace.py") and name in ("fib", "ping", "pong", "main")}
    assert len(theirs) == 4
    for key, value in theirs.items():
        assert ours[key] == value, key
    assert theirs[("fib", min(k[1] for k in theirs if k[0] == "fib"))][1] == 3
    # callers of fib: fib -> fib calls and primitive calls as pstats counts them
    fib_key = next(k for k in st if k[2] == "fib")
    edges = {(e.caller.name.rsplit(".", 1)[-1] if e.caller else None,
              e.callee.name.rsplit(".", 1)[-1]): e for e in t.edges()}
    nc, cc = st[fib_key][4][fib_key][:2]  # callers hold (nc, cc, tt, ct)
    assert (edges["fib", "fib"].calls, edges["fib", "fib"].primitive_calls) == (nc, cc)


# ---------------------------------------------------------------- the C example

def test_synthetic_example_output_loads(builddir, tmp_path):
    exe = os.path.join(builddir or "", "examples", "c", "synthetic")
    if not builddir or not os.path.exists(exe):
        pytest.skip("the C example is built by make (HYP_BUILDDIR not set or not built)")
    out = tmp_path / "synthetic.hyprof"
    subprocess.run([exe, str(out)], check=True, capture_output=True)
    t = hyprof.load(out)
    f = by_name(t.functions())
    assert (f["parse"].calls, f["parse"].primitive_calls) == (10, 10)
    assert (f["walk"].calls, f["walk"].primitive_calls) == (30, 10)
    assert f["main"].wall_cum == pytest.approx(0.100)
    assert f["walk"].wall_own == pytest.approx(0.030)
    assert t.header["producer"] == "examples/c/synthetic"



def test_hostile_header_values_stay_small_and_typed(tmp_path):
    """The header is decoded once, by the C reader, into typed and bounded
    entries: a list of millions of one-byte strings is skipped rather than
    costing a hundred bytes of memory per input byte, a map of a million keys
    is refused by name, and values the model has no type for (extension
    types, maps, binary) are left out instead of reaching the reports."""
    script = textwrap.dedent("""
        import json, sys, msgpack, hyprof, hyprof.render
        path = sys.argv[1]
        head = dict(HEAD, argv=["x"] * 3_000_000, pid=msgpack.ExtType(5, b"zz"),
                    event={"a": 1}, host=b"bin", keep="yes")
        with open(path, "wb") as f:
            f.write(b"".join(msgpack.packb(o) for o in ["HYPROF", head] + TABLES))
        before = peak_kib()
        t = hyprof.load(path)
        grown = peak_kib() - before
        print(json.dumps([grown, sorted(k for k in ("argv", "pid", "event", "host")
                                        if k in t.header),
                          t.header["keep"], len(t.function_table)]))
    """)
    setup = PEAK_KIB + f"HEAD = {HEAD!r}\nTABLES = {TABLES!r}\n"
    r = subprocess.run([sys.executable, "-c", setup + script, str(tmp_path / "big.hyprof")],
                       capture_output=True, text=True, timeout=120, env=peak_env())
    assert r.returncode == 0, r.stderr
    grown, present, keep, rows = json.loads(r.stdout)
    assert grown < 64 * 1024, r.stdout  # KiB: the file alone is 6 MB
    assert present == [] and keep == "yes" and rows > 0
    p = tmp_path / "keys.hyprof"
    p.write_bytes(raw("HYPROF", dict(HEAD, **{f"k{i}": 0 for i in range(100_000)}), *TABLES))
    with pytest.raises(hyprof.TraceError, match="the header has 100005 entries"):
        hyprof.load(p)


@pytest.mark.parametrize("key,value", [
    ("argv", 7), ("sources", 12), ("pid", "42"), ("pid", -1),
    ("start_time", float("inf")), ("start_time", 1e30), ("duration", float("nan")),
    ("event", 5), ("signal", True),
])
def test_header_entries_of_the_wrong_type_are_named_at_load(tmp_path, key, value):
    p = tmp_path / "bad.hyprof"
    p.write_bytes(raw("HYPROF", dict(HEAD, **{key: value}), *TABLES, [5, 0, [1, 3, 2, 4]]))
    with pytest.raises(hyprof.TraceError, match=rf"bad.hyprof: the header's '{key}' is"):
        hyprof.load(p)


def test_a_known_header_entry_that_is_nil_reads_as_absent(tmp_path):
    """A nil count in the header once reached the text report's arithmetic
    (found by tests/fuzz/fuzz_render.py)."""
    from hyprof import render as R
    p = tmp_path / "nil.hyprof"
    head = dict(HEAD, gc_collections_gen0=3, gc_ns_gen0=None, pid=None)
    p.write_bytes(raw("HYPROF", head, *TABLES, [5, 0, [1, 3, 2, 4]],
                      [8, {"samples": 0, "nodes": 3, "truncated_nodes": 0, "dropped": {}}]))
    t = hyprof.load(p)
    assert "gc_ns_gen0" not in t.header and "pid" not in t.header
    assert t.gc().collections[0] == 3 and t.gc().seconds[0] == 0
    assert "collections" in R.render(t, "text")


def test_odd_but_valid_traces_render_in_every_format(tmp_path):
    """Names that are not UTF-8 (a metric, a function, a file, a thread), a
    key holding a NUL and an unknown entry: the trace loads and every format
    renders it."""
    from hyprof import render as R
    # bytes packed as msgpack str (use_bin_type=False): names that are not UTF-8
    head = dict(HEAD, metrics=[["calls", "count", "calls"], ["wall_own", "ns", "own"],
                               [b"odd\xe9", "ns", "own"]])
    head["k\0ey"] = "v"
    head["unknown"] = {"a": [1, 2]}
    tables = [[1, 0, [b"f\xe9", b"x\xe9.py", b"main\xe9"]],
              [2, 0, [0, 1, 3, 0]], [3, 0, [5, 5, 2]], [4, 1, [0, 0, 0, 1, 0, 0]]]
    p = tmp_path / "odd.hyprof"
    p.write_bytes(b"".join(msgpack.packb(o, use_bin_type=False) for o in
                           ["HYPROF", head, *tables, [5, 0, [1, 3, 500, 7, 2, 2, 100, 9]],
                            [8, {"samples": 0, "nodes": 3, "truncated_nodes": 0,
                                 "dropped": {}}]]))
    t = hyprof.load(p)
    assert "unknown" not in t.header
    for fmt in sorted(R.FORMATS):
        out = R.render(t, fmt)
        assert out, fmt
        # written to a file, the names go back as the bytes they were
        assert t.report(fmt, path=tmp_path / f"out.{fmt}") == out
    assert b"f\xe9" in (tmp_path / "out.collapsed").read_bytes()
    t.write(tmp_path / "again.hyprof")
    again = hyprof.load(tmp_path / "again.hyprof")
    assert {(f.name, f.filename) for f in again.functions()} == \
        {(f.name, f.filename) for f in t.functions()} == {("f\udce9", "x\udce9.py")}
    assert [m.name for m in again.metrics] == ["calls", "wall_own", "odd\udce9"]
