"""One set of totals in every view: a corpus of real traces (recursion,
mutual recursion, generators resumed from several places, coroutines that
suspend, threads, a truncated tree, sampling and memory traces) is rendered
to every format, and each format's per-function totals, as that format's
reader (or a parse of its output) sees them, equal ``trace.functions()`` to
the nanosecond or sample.

The formats that carry a function's total (text, pstats, callgrind, html,
dot, diff) are checked for own and cumulative values; the stack formats
(speedscope, collapsed, pprof) carry each call path's own value, so their
readers' self totals are checked, and for sampling traces, where a
function's total is the samples its stacks hold, their totals too."""

import asyncio
import gzip
import json
import pstats
import re
import subprocess
import threading

import hyprof
import pytest
from hyprof import diff as D
from hyprof import render as R
from hyprof.render import _model
from hyprof.render import callgrind as CG
from hyprof.render.collapsed import _clean
from hyprof.render import pprof as P
from hyprof.render import text as T
from hyprof.render.pstats import PstatsExport, func_key
from test_det import ENGINES, fib, is_even, profile
from workloads import busy_for
from test_render_formats import _annotate, _messages, folded
from test_render_html import _data
from test_render_support import need, tool_env


# ---------------------------------------------------------------- programs

def r(gen):
    """Resumes the generator, whose body calls r again (issue 11, case 1)."""
    busy_for(0.0005)
    if gen is not None:
        next(gen, None)


def body():
    yield
    r(None)


def pulled(n):
    for i in range(n):
        busy_for(0.0001)
        yield i


def pull_one(g):
    return next(g)


def pull_two(g):
    return next(g), next(g)


def generators():
    g = body()
    next(g)
    r(g)
    for _ in range(3):
        p = pulled(6)
        pull_one(p)
        pull_two(p)
        list(p)  # the rest, from a third place


async def nap(i):
    await asyncio.sleep(0.001 * (i % 3))
    busy_for(0.0002)
    return i


async def gather_naps():
    await asyncio.gather(*(nap(i) for i in range(6)))
    await nap(1)


def worker():
    fib(9)
    is_even(30)


def det_program():
    fib(11)
    is_even(60)
    generators()
    asyncio.run(gather_naps())
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def deep(n, seconds):
    """Recursion that ends in a spin: samples with the same function on
    the stack many times."""
    return deep(n - 1, seconds) if n else busy_for(seconds)


def cpu_program():
    def burn():
        for _ in range(3):
            fib(15)
            deep(20, 0.02)
    t = threading.Thread(target=burn)
    t.start()
    for _ in range(3):
        deep(10, 0.02)
        list(pulled(100))
    t.join()


def alloc_program():
    keep = []
    for i in range(400):
        keep.append(bytearray(4096 + i))
    return len(keep)


def _sampled(program, **options):
    p = hyprof.Profiler(mode="sampling", **options)
    p.start()
    try:
        program()
    finally:
        p.stop()
    return p


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """{name: Trace}, each written and loaded back as a user's would be."""
    d = tmp_path_factory.mktemp("corpus")
    out = {}

    def keep(name, trace):
        path = d / f"{name}.hyprof"
        trace.write(path)
        out[name] = hyprof.load(path)

    for engine in ENGINES:
        keep(f"det-{engine}", profile(det_program, engine))
        keep(f"truncated-{engine}", profile(det_program, engine, max_nodes=200))
    keep("sampling", _sampled(cpu_program, frequency=1000, memory=True,
                              memory_interval=4096).trace())
    keep("memory", _sampled(alloc_program, memory_only=True, memory_interval=4096).trace())
    return out


NAMES = [f"{kind}-{e}" for e in ENGINES for kind in ("det", "truncated")] + ["sampling",
                                                                             "memory"]


@pytest.fixture(params=NAMES)
def trace(request, corpus):
    return corpus[request.param]


def test_the_corpus_has_what_it_is_for(corpus):
    for e in ENGINES:
        det = {f.name.rsplit(".", 1)[-1]: f for f in corpus[f"det-{e}"].functions()}
        assert det["fib"].calls > det["fib"].primitive_calls
        assert det["is_odd"].calls > det["is_odd"].primitive_calls
        assert det["nap"].calls == 7 and len(corpus[f"det-{e}"].threads()) == 3
        assert "[truncated]" in {f.name for f in corpus[f"truncated-{e}"].functions()}
    # The kernel may coalesce timer overflows on a loaded machine (a
    # sample then weighs the whole CPU time since the last one), so the
    # CPU time is what is certain: cpu_program spins 0.12 s of it.
    sampled = corpus["sampling"].functions()
    assert sum(f.own_weight for f in sampled) >= 0.1e9
    assert sum(f.own_samples for f in sampled) >= 10
    assert {k.name for k in corpus["sampling"].sample_kinds} >= {"alloc"}
    assert sum(f.own_samples for f in corpus["memory"].functions()) > 50


# ---------------------------------------------------------------- expected values

def expected(trace, key, metric, which):
    """{key(f): value} summed over trace.functions() (functions a format
    names alike add up, as the format adds them)."""
    out = {}
    for f in trace.functions():
        k = key(f)
        out[k] = out.get(k, 0) + getattr(f, which)[metric]
    return out


def own_columns(trace):
    """(own metric, the metric holding its total) of every value column."""
    names = {m.name for m in trace.metrics}
    out = []
    for m in trace.metrics:
        if m.kind == "own":
            cum = m.name[:-4] + "_cum" if m.name.endswith("_own") else m.name
            out.append((m.name, cum if cum in names else m.name))
    return out


def nonzero(d):
    return {k: v for k, v in d.items() if v}


def stack_totals(stacks):
    """{frame: (own, total)} of [(frames root first, value)]: own where the
    frame is the leaf, total once per stack it is on."""
    own, tot = {}, {}
    for frames, v in stacks:
        own[frames[-1]] = own.get(frames[-1], 0) + v
        for fr in set(frames):
            tot[fr] = tot.get(fr, 0) + v
    return nonzero(own), nonzero(tot)


# ---------------------------------------------------------------- the formats

def test_text(trace):
    out = R.render(trace, "text", limit=0, header=False)
    rows = [ln for ln in out.splitlines()[1:] if not ln.startswith("note:")]
    funcs = T.sorted_functions(trace)
    assert len(rows) == len(funcs)
    for f, row in zip(funcs, rows):
        if trace.mode == "deterministic":
            assert row.split()[:5] == [T._calls(f), "%.6f" % f.wall_own, "%.6f" % f.wall_cum,
                                       "%.6f" % f.cpu_own, "%.6f" % f.cpu_cum]
        else:
            assert [int(x) for x in row.split()[0:4:2]] == [f.own_samples, f.cum_samples]


def test_pstats(trace, tmp_path):
    if trace.mode != "deterministic":
        pytest.skip("pstats holds deterministic traces only")
    path = tmp_path / "t.prof"
    trace.report("pstats", path=path)
    for st in (pstats.Stats(str(path)), pstats.Stats(PstatsExport(trace))):
        got = {k: (cc, nc, round(tt * 1e9), round(ct * 1e9))
               for k, (cc, nc, tt, ct, _) in st.stats.items()}
        want = {}
        for f in trace.functions():
            w = want.setdefault(func_key(f), [0, 0, 0, 0])
            for i, v in enumerate((f.primitive_calls, f.calls, f.own["wall_own"],
                                   f.cum["wall_cum"])):
                w[i] += v
        assert got == {k: tuple(v) for k, v in want.items()}
        # Callers: each edge's calls, primitive calls and times.
        got = {(c, k): (nc, cc, round(tt * 1e9), round(ct * 1e9))
               for k, v in st.stats.items() for c, (nc, cc, tt, ct) in v[4].items()}
        want = {}
        for e in trace.edges():
            if e.caller is not None:
                w = want.setdefault((func_key(e.caller), func_key(e.callee)), [0, 0, 0, 0])
                for i, v in enumerate((e.calls, e.primitive_calls, e.own["wall_own"],
                                       e.cum["wall_cum"])):
                    w[i] += v
        assert got == {k: tuple(v) for k, v in want.items()}


def test_callgrind(trace, tmp_path):
    text = R.render(trace, "callgrind")
    tree = _model.call_tree(trace)
    names = CG._fn_names(tree.funcs)
    cols = [c for c in own_columns(trace) if c[0] != "calls"]

    def row_name(f):
        fn = tree.funcs[tree.index(f)]
        return f"{fn.filename or '<built-in>'}:{names[tree.index(f)]}"

    for inclusive in ("no", "yes"):
        out = _annotate(tmp_path, text, f"--inclusive={inclusive}", "--threshold=100")
        table = out.split("file:function\n", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
        got = {}
        for line in table:
            m = re.fullmatch(r"((?:\s*[\d,]+(?: \(\s*[\d.]+%\))?){" + str(len(cols))
                             + r"})\s+(\S.*)", line)
            assert m, line
            if ":<program" not in m.group(2):  # the root of the graph
                got[m.group(2)] = tuple(int(x.replace(",", "")) for x in
                                        re.findall(r"([\d,]+)(?: \(|\s|$)", m.group(1)))
        which = "own" if inclusive == "no" else "cum"
        want = {}
        for own, cum in cols:
            for k, v in expected(trace, row_name, own if which == "own" else cum,
                                 which).items():
                want.setdefault(k, []).append(v)
        want = {k: tuple(v) for k, v in want.items() if any(v)}
        got = {k: v for k, v in got.items() if any(v)}
        assert got == want, inclusive


def test_html(trace):
    data = _data(R.render(trace, "html"))
    funcs = [tuple(f) for f in data["funcs"]]
    index = {f: i for i, f in enumerate(funcs)}
    names = [m["name"] for m in data["metrics"]]
    cum_of = dict(own_columns(trace))
    if trace._calls_col is not None:
        cum_of["calls"] = "calls"
    gil = [c for c, name in enumerate(names) if name.startswith("gil_")]
    if gil:
        # The samples by GIL state (one column each) add up to the samples.
        samples = names.index(trace.metrics[trace.sample_kinds[0].count_metric].name)
        for which in ("own", "cum"):
            assert [sum(data["table"][which][c][f] for c in gil) for f in range(len(funcs))] == \
                data["table"][which][samples]
    for c, name in enumerate(names):
        if c in gil:
            continue
        for which, metric in (("own", name), ("cum", cum_of[name])):
            want = expected(trace, lambda f: index[tuple(f.info[1:])], metric, which)
            got = {i: v for i, v in enumerate(data["table"][which][c]) if v}
            assert got == nonzero(want), (name, which)


def test_dot(trace):
    tree = _model.call_tree(trace)
    cum_of = dict(own_columns(trace))
    if trace._calls_col is not None:
        cum_of["calls"] = "calls"
    for col in tree.columns:
        text = R.render(trace, "dot", metric=col.name, threshold=0, edge_threshold=0)
        got_own, got_cum = {}, {}
        for m in re.finditer(r'  f(\d+) \[label="(.*?)", tooltip="(.*?)",', text):
            tip = m.group(3).split("\\n")
            got_cum[int(m.group(1))] = int(tip[1].split()[1])
            got_own[int(m.group(1))] = int(tip[2].split()[1])
            # The label a person reads rounds the same number.
            value = _model.format_value(got_cum[int(m.group(1))], col.unit)
            assert f"% ({value})" in m.group(2)
        for which, metric, got in (("own", col.name, got_own),
                                   ("cum", cum_of[col.name], got_cum)):
            want = expected(trace, tree.index, metric, which)
            assert nonzero(got) == nonzero({k: v for k, v in want.items()
                                            if k in got_cum}), (col.name, which)
        # Every function with a total is drawn.
        assert set(got_cum) >= set(nonzero(expected(trace, tree.index, cum_of[col.name],
                                                     "cum")))
        # Edges: the callee's total on each caller -> callee edge.
        got = {(int(a), int(b)): int(v) for a, b, v in
               re.findall(r'  f(\d+) -> f(\d+) \[.*?tooltip=".*?\\ntotal (\d+) ', text)}
        want = {}
        for e in trace.edges():
            if e.caller is not None:
                k = (tree.index(e.caller), tree.index(e.callee))
                want[k] = want.get(k, 0) + e.cum[cum_of[col.name]]
        assert got == nonzero(want), col.name


def test_diff(trace):
    key = lambda f: (f.name, f.filename)  # noqa: E731 -- diff matches by name and file
    for own, cum in own_columns(trace):
        d = D.diff(trace, trace, metric=own)
        for attr, metric, which in (("new", cum, "cum"), ("base", cum, "cum"),
                                    ("new_own", own, "own"), ("base_own", own, "own")):
            got = nonzero({(r.name, r.filename): getattr(r, attr) for r in d.rows})
            assert got == nonzero(expected(trace, key, metric, which)), (own, attr)


def _frame_key(fr):
    return (fr["name"], fr.get("file", ""), fr.get("line", 0))


def _info_key(f):
    return (f.name, f.filename, f.lineno)


def test_speedscope(trace):
    doc = json.loads(R.render(trace, "speedscope"))
    frames = [_frame_key(fr) for fr in doc["shared"]["frames"]]
    by_col = {}
    for p in doc["profiles"]:
        col = p["name"].rsplit(" (", 1)[1][:-1]
        acc = by_col.setdefault(col, [])
        if p["type"] == "evented":
            stack, last = [], 0
            for ev in p["events"]:
                if stack:
                    acc.append(((frames[stack[-1]],), ev["at"] - last))
                last = ev["at"]
                if ev["type"] == "O":
                    stack.append(ev["frame"])
                else:
                    assert stack.pop() == ev["frame"]
            assert not stack
        else:
            for s, w in zip(p["samples"], p["weights"]):
                acc.append((tuple(frames[i] for i in s), w))
    tree = _model.call_tree(trace)
    labels = {c.label: c.name for c in tree.columns}
    cum_of = dict(own_columns(trace))
    assert by_col
    for label, stacks in by_col.items():
        metric = labels[label]
        own, tot = stack_totals(stacks)
        assert own == nonzero(expected(trace, _info_key, metric, "own")), label
        if trace.mode == "sampling":
            assert tot == nonzero(expected(trace, _info_key, cum_of[metric], "cum")), label


def test_collapsed(trace):
    tree = _model.call_tree(trace)
    cum_of = dict(own_columns(trace))

    def label(f):
        return _clean(_model.frame_label(tree.funcs[tree.index(f)]))

    for own_metric, cum_metric in own_columns(trace):
        stacks = [(tuple(k.split(";")), v) for k, v in
                  folded(R.render(trace, "collapsed", metric=own_metric)).items()]
        own, tot = stack_totals(stacks)
        assert own == nonzero(expected(trace, label, own_metric, "own")), own_metric
        if trace.mode == "sampling":
            assert tot == nonzero(expected(trace, label, cum_of[own_metric], "cum"))


def test_pprof(trace, tmp_path):
    raw = R.render(trace, "pprof")
    msg = gzip.decompress(raw)
    strings = [s.decode() for s in P.decode(msg)[6]]
    types = [strings[t[1][0]] for t in _messages(msg, 1)]
    funcs = {f[1][0]: (strings[f[2][0]], strings[f.get(4, [0])[0]], f.get(5, [0])[0])
             for f in _messages(msg, 5)}
    locs = {m[1][0]: funcs[P.decode(m[4][0])[1][0]] for m in _messages(msg, 4)}
    per_type = [[] for _ in types]
    for s in _messages(msg, 2):
        ids, pos, packed = [], 0, s[1][0]
        while pos < len(packed):
            v, pos = P._read_varint(packed, pos)
            ids.append(v)
        vals, pos, packed = [], 0, s[2][0]
        while pos < len(packed):
            v, pos = P._read_varint(packed, pos)
            vals.append(v)
        stack = tuple(locs[i] for i in reversed(ids))  # root first
        for c, v in enumerate(vals):
            if v:
                per_type[c].append((stack, v))
    tree = _model.call_tree(trace)
    cum_of = dict(own_columns(trace))
    for c, col in enumerate(tree.columns):
        own, tot = stack_totals(per_type[c])
        assert own == nonzero(expected(trace, _info_key, col.name, "own")), types[c]
        if trace.mode == "sampling":
            assert tot == nonzero(expected(trace, _info_key, cum_of[col.name], "cum"))
    # go tool pprof reads the same samples.
    go = need("go", "golang-go")
    path = tmp_path / "t.pb.gz"
    path.write_bytes(raw)
    env = tool_env(HOME=str(tmp_path), PPROF_TMPDIR=str(tmp_path))
    out = subprocess.run([go, "tool", "pprof", "-raw", str(path)], capture_output=True,
                         text=True, check=True, env=env).stdout
    body = out.split("Samples:\n", 1)[1].split("Locations", 1)[0]
    # (It merges samples of the same stack, so it is the sums that agree.)
    rows = [[int(v) for v in m.split()] for m in
            re.findall(r"^\s+(\d+(?:\s+\d+)*): ", body, re.MULTILINE)]
    assert [sum(col) for col in zip(*rows)] == [sum(v for _, v in t) for t in per_type]


def test_lines(trace):
    if trace.mode != "sampling":
        pytest.skip("--lines reports sampling traces")
    per_file = {}
    for ln in trace.lines():
        per_file[ln.filename] = per_file.get(ln.filename, 0) + ln.samples
    want = {}
    for f in trace.functions():
        want[f.filename] = want.get(f.filename, 0) + f.own_samples
    assert nonzero(per_file) == nonzero(want)
