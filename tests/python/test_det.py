"""The deterministic mode: exact call counts against cProfile, time shares,
edges, threads, generators, coroutines, exceptions, stop mid-stack, the
refusal to start over another profiler, builtins=False, pstats and the
node limit. Every test runs with each engine the interpreter has."""

import asyncio
import cProfile
import gc
import marshal
import os
import pstats
import sys
import threading
import time

import pytest

import hyprof
from hyprof.render.pstats import PstatsExport, cprofile_entries, cprofile_key, func_key
from workloads import busy_for

ENGINES = ["setprofile"] + (["monitoring"] if sys.version_info >= (3, 12) else [])


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.param


def profile(fn, engine, **options):
    p = hyprof.Profiler(engine=engine, **options)
    p.start()
    try:
        fn()
    finally:
        p.stop()
    return p.trace()


def by_name(trace, thread=None):
    """Functions by short name (a Python function's last qualified part)."""
    return {f.name.rsplit(".", 1)[-1] if f.kind == "python" else f.name: f
            for f in trace.functions(thread)}




# ------------------------------------------------------------ programs


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def is_even(n):
    return True if n == 0 else is_odd(n - 1)


def is_odd(n):
    return False if n == 0 else is_even(n - 1)


class Boom(Exception):
    pass


def maybe_raise(i):
    if i % 3 == 0:
        raise Boom(i)
    return i


def middle(i):
    return maybe_raise(i) * 2


def catcher():
    total = 0
    for i in range(30):
        try:
            total += middle(i)
        except Boom:
            total -= 1
    return total


def countdown(n):
    while n:
        yield n
        n -= 1


def consume_generators():
    return sum(countdown(10)) + len(list(countdown(5))) + max(countdown(3))


class Point:
    def __init__(self, x):
        self.x = x

    def norm(self):
        return abs(self.x)


def builtins_and_methods():
    out = []
    for i in range(20):
        out.append(Point(i).norm())
        out.append(len(str(i)))
    d = {}
    d.setdefault("k", []).append(1)
    " ".join(["a", "b"]).split()
    return sorted(out, key=abs)


def resumer(gen):
    if gen is not None:
        next(gen, None)  # resumes the generator, whose body calls resumer again


def resumed_body():
    yield
    resumer(None)  # resumer is on the stack here, though not in the tree


def generator_resumed_by_its_callee():
    g = resumed_body()
    next(g)
    resumer(g)


def pulled(gen):
    return next(gen, None)


def walker(n):
    yield n
    if n:
        yield from walker(n - 1)
    pulled(iter(()))


def generators_resumed_from_several_places():
    g = walker(3)
    pulled(g)
    for _ in range(2):
        pulled(g)
    list(g)


# Two functions with one (name, file, line): two compilations of one source,
# the first calling the second. They are two functions, neither recursive.
_TWIN_SOURCE = "def twin(other):\n    return other(None) if other else 0\n"
_TWINS = []
for _ in range(2):
    _ns = {}
    exec(compile(_TWIN_SOURCE, "<twins>", "exec"), _ns)
    _TWINS.append(_ns["twin"])


def twins():
    _TWINS[0](_TWINS[1])
    _TWINS[1](_TWINS[0])


def protocols():
    import typing

    for _ in range(3):
        class Proto(typing.Protocol):
            def meth(self):
                pass

        class Impl(Proto):
            pass


PROGRAMS = {
    "recursion": lambda: fib(15),
    "mutual recursion": lambda: is_even(41),
    "exceptions": catcher,
    "builtins": builtins_and_methods,
    "generators": consume_generators,
    "generator resumed by its callee": generator_resumed_by_its_callee,
    "generators resumed from several places": generators_resumed_from_several_places,
    "same name, file and line": twins,
    "protocols": protocols,
}
# cProfile counts each resumption of a generator; hyprof each instance.
# The library's generator expressions are not counted here.
GENERATOR_FUNCS = {"countdown": (3, 3), "resumed_body": (1, 1), "walker": (4, 1),
                   "<genexpr>": None}


def cprofile_stats(fn):
    """cProfile's per-function (primitive calls, calls, callers' calls) with
    each code object (or C function) counted on its own and those that share
    a pstats key added, as hyprof groups them. pstats.Stats would keep only
    one of them."""
    entries = cprofile_entries(fn)
    out = {}
    for key, e in entries:
        if key[2] == "<lambda>":
            continue
        cc, nc, callers = out.get(key, (0, 0, {}))
        out[key] = (cc + e.callcount - e.reccallcount, nc + e.callcount, callers)
    for caller, e in entries:
        for sub in e.calls or ():
            callee = cprofile_key(sub.code)
            if callee in out and caller[2] != "<lambda>":
                callers = out[callee][2]
                callers[caller] = callers.get(caller, 0) + sub.callcount
    return out


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_call_counts_match_cprofile(program, engine):
    fn = PROGRAMS[program]
    fn()  # warm up: first calls may import or specialise
    expected = cprofile_stats(fn)
    got = {func_key(f): f for f in profile(fn, engine).functions()
           if f.name != "<lambda>" and f.kind != "special"}  # [gc]: no call of cProfile's
    assert expected, "cProfile saw nothing"
    for key, (cc, nc, _callers) in expected.items():
        assert key in got, "hyprof misses %r (cProfile: %d calls)" % (key, nc)
        f = got[key]
        if key[2] in GENERATOR_FUNCS:
            if GENERATOR_FUNCS[key[2]] is not None:
                assert (f.calls, f.primitive_calls) == GENERATOR_FUNCS[key[2]], key
            if key[2] == "countdown":
                assert nc == (10 + 1) + (5 + 1) + (3 + 1)
            continue
        assert (f.calls, f.primitive_calls) == (nc, cc), key
    assert set(got) == set(expected)
    # Callers too: calls per (caller, callee) pair, as pstats shows them.
    ours = pstats.Stats(PstatsExport(profile(fn, engine))).stats
    for key, (_cc, _nc, callers) in expected.items():
        if key[2] in GENERATOR_FUNCS or any(c[2] in GENERATOR_FUNCS for c in callers):
            continue
        have = {c: v[0] for c, v in ours[key][4].items() if c[2] != "<lambda>"}
        assert have == callers, key


def test_recursion_counts_primitive_calls_once(engine):
    f = by_name(profile(lambda: fib(12), engine))["fib"]
    assert f.calls == 465
    assert f.primitive_calls == 1
    assert f.wall_cum >= f.wall_own * 0.99
    # Recursion is not double counted: fib's cumulative time is that of its
    # outermost call, less than the whole run.
    assert f.wall_cum < 1.0


def test_edges_count_calls_per_caller(engine):
    t = profile(catcher, engine)
    edges = {(e.caller.name if e.caller else None, e.callee.name): e for e in t.edges()}
    assert edges[("catcher", "middle")].calls == 30
    assert edges[("middle", "maybe_raise")].calls == 30
    assert edges[("middle", "maybe_raise")].primitive_calls == 30


# ------------------------------------------------------------ times


def sleeper():
    time.sleep(0.2)


def spinner():
    busy_for(0.1)


def measured(fn):
    """(wall, cpu) seconds of one call, measured around it: the reference
    hyprof's numbers are checked against, whatever the machine's load."""
    w, c = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - w, time.thread_time() - c


def test_time_shares_sleep_vs_spin(engine):
    ref = {}

    def work():
        ref["sleeper"] = measured(sleeper)
        ref["spinner"] = measured(spinner)

    fs = by_name(profile(work, engine))
    s, p = fs["sleeper"], fs["spinner"]
    assert ref["sleeper"][0] >= 0.2 and ref["spinner"][1] >= 0.1
    assert s.wall_cum == pytest.approx(ref["sleeper"][0], rel=0.10)
    assert s.cpu_cum == pytest.approx(ref["sleeper"][1], abs=0.005)
    assert s.cpu_cum < 0.02
    assert p.wall_cum == pytest.approx(ref["spinner"][0], rel=0.10)
    assert p.cpu_cum == pytest.approx(ref["spinner"][1], rel=0.10)
    assert p.cpu_cum == pytest.approx(0.1, rel=0.15)
    # Shares: the sleeper has about 2/3 of the wall time and almost no CPU.
    share = s.wall_cum / (s.wall_cum + p.wall_cum)
    ref_share = ref["sleeper"][0] / (ref["sleeper"][0] + ref["spinner"][0])
    assert share == pytest.approx(ref_share, rel=0.10)
    # With builtins, the sleep is time.sleep's own time, not sleeper's.
    assert fs["<built-in method time.sleep>"].wall_own == pytest.approx(ref["sleeper"][0],
                                                                        rel=0.10)
    assert s.wall_own < 0.01
    # The loop is busy_for's own time; the thread_time() calls are their own.
    assert p.cpu_own < 0.01
    assert fs["busy_for"].cpu_own + fs["<built-in method time.thread_time>"].cpu_own == \
        pytest.approx(ref["spinner"][1], rel=0.10)


def test_builtins_false_leaves_c_functions_out(engine):
    ref = {}

    def work():
        ref["sleeper"] = measured(sleeper)
        builtins_and_methods()

    t = profile(work, engine, builtins=False)
    assert all(f.kind == "python" for f in t.functions())
    fs = by_name(t)
    # The sleep is now sleeper's own time.
    assert fs["sleeper"].wall_own == pytest.approx(ref["sleeper"][0], rel=0.10)
    assert fs["norm"].calls == 20
    assert fs["__init__"].calls == 20


# ------------------------------------------------------------ generators


def slow_gen(ref):
    for i in range(3):
        t0 = time.perf_counter()
        time.sleep(0.02)  # runs inside the generator
        ref["inside"] += time.perf_counter() - t0
        yield i


def consume_slowly(ref):
    ref["inside"] = ref["outside"] = 0.0
    start = time.perf_counter()
    for _ in slow_gen(ref):
        t0 = time.perf_counter()
        time.sleep(0.05)  # the generator is suspended meanwhile
        ref["outside"] += time.perf_counter() - t0
    ref["span"] = time.perf_counter() - start


def test_generator_one_call_per_instance_times_only_while_running(engine):
    ref = {}
    fs = by_name(profile(lambda: consume_slowly(ref), engine, builtins=False))
    g = fs["slow_gen"]
    assert g.calls == 1
    assert ref["outside"] > 2 * ref["inside"] > 0.1
    # Own time: the sleeps inside it, not the consumer's.
    assert g.wall_own == pytest.approx(ref["inside"], rel=0.15)
    # Cumulative wall time is the time it ran: a generator pulled by a loop
    # does not own the loop's time between two items.
    assert g.wall_cum == pytest.approx(ref["inside"], rel=0.15)
    assert g.cpu_cum < 0.02
    c = fs["consume_slowly"]
    assert c.wall_own == pytest.approx(ref["outside"], rel=0.15)
    assert c.wall_cum == pytest.approx(ref["span"], rel=0.10)


async def nap(t, ref):
    t0 = time.perf_counter()
    await asyncio.sleep(t)
    ref.append(time.perf_counter() - t0)
    return t


async def gather_naps(ref):
    t0 = time.perf_counter()
    naps = []
    await asyncio.gather(nap(0.1, naps), nap(0.1, naps), nap(0.05, naps))
    ref["naps"] = sum(naps)
    ref["gather"] = time.perf_counter() - t0


def test_coroutines_counted_per_instance(engine):
    ref = {}
    fs = by_name(profile(lambda: asyncio.run(gather_naps(ref)), engine))
    n = fs["nap"]
    assert n.calls == 3
    assert ref["naps"] >= 0.25
    # Each coroutine's span, first entry to final exit; almost no own time.
    assert n.wall_cum == pytest.approx(ref["naps"], rel=0.10)
    assert n.wall_own < 0.02
    assert n.cpu_cum < 0.02
    assert fs["gather_naps"].calls == 1
    assert fs["gather_naps"].wall_cum == pytest.approx(ref["gather"], rel=0.10)


def test_abandoned_generator_keeps_its_running_time(engine):
    def work():
        g = countdown(100)
        next(g)
        next(g)
        del g  # closed without finishing

    fs = by_name(profile(work, engine))
    assert fs["countdown"].calls == 1
    assert fs["countdown"].wall_cum >= fs["countdown"].wall_own


# ------------------------------------------------------------ exceptions, stop


def deep_raise(n):
    if n == 0:
        raise Boom("deep")
    return deep_raise(n - 1)


def test_exception_unwinding_closes_frames(engine):
    def work():
        for _ in range(5):
            try:
                deep_raise(10)
            except Boom:
                pass
        time.sleep(0.05)

    fs = by_name(profile(work, engine))
    d = fs["deep_raise"]
    assert (d.calls, d.primitive_calls) == (55, 5)
    # Had a frame stayed open, the 50 ms sleep after it would count in its time.
    assert d.wall_cum < 0.03


def test_stop_mid_stack_closes_open_frames(engine):
    p = hyprof.Profiler(engine=engine)
    ref = {}

    def inner():
        ref["inner"] = time.perf_counter()
        time.sleep(0.05)
        ref["stop"] = time.perf_counter()
        p.stop()
        time.sleep(0.1)  # after stop: not counted

    def outer():
        ref["outer"] = time.perf_counter()
        inner()

    p.start()
    outer()
    fs = by_name(p.trace())
    assert fs["outer"].calls == 1 and fs["inner"].calls == 1
    assert fs["inner"].wall_cum == pytest.approx(ref["stop"] - ref["inner"], rel=0.10)
    assert fs["outer"].wall_cum == pytest.approx(ref["stop"] - ref["outer"], rel=0.10)
    # The profiler's own stop path is not in the profile.
    assert not [f for f in fs if "stop" in f]


def test_stop_closes_other_threads_open_frames(engine):
    started = threading.Event()
    ref = {}

    def long_sleep():
        started.set()
        time.sleep(0.4)

    def background():
        long_sleep()

    p = hyprof.Profiler(engine=engine)
    p.start()
    t = threading.Thread(target=background, name="bg")
    t.start()
    started.wait()
    ref["start"] = time.perf_counter()
    time.sleep(0.1)
    ref["stop"] = time.perf_counter()
    p.stop()
    t.join()  # its returns come after stop and are ignored
    tr = p.trace()
    bg = next(th for th in tr.threads() if th.name == "bg")
    fs = by_name(tr, bg)
    # Closed at stop: about 0.1 s, not the 0.4 s the call took.
    assert fs["long_sleep"].calls == 1
    assert ref["stop"] - ref["start"] <= fs["long_sleep"].wall_cum < 0.3
    assert fs["long_sleep"].cpu_cum < 0.02
    assert fs["background"].wall_cum >= fs["long_sleep"].wall_cum


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork")
# Threads of earlier tests, joined, may not have left the kernel's count yet.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_gets_its_own_cpu_clock(engine, tmp_path):
    out = tmp_path / "child.hyprof"
    old = hyprof.Profiler(engine=engine)  # its clock pages are the parent's
    with old:
        fib(3)
    p = hyprof.Profiler(engine=engine)
    p.start()
    pid = os.fork()
    if pid == 0:  # the child: profile on, with its own thread state
        status = 1
        try:
            # Freeing a profiler of the parent must leave the child's clock
            # mapped (perf mappings are not copied into a child, so the
            # child's page may sit at the address of one of the parent's).
            del old
            gc.collect()
            sleeper()
            p.stop()
            p.write(out)
            status = 0
        finally:
            os._exit(status)
    p.stop()
    _, status = os.waitpid(pid, 0)
    assert status == 0
    fs = by_name(hyprof.load(out))
    assert fs["sleeper"].calls == 1
    assert 0.2 <= fs["sleeper"].wall_cum < 1.0
    # The parent's perf page would count the child's sleep as CPU time.
    assert fs["sleeper"].cpu_cum < 0.02


# ------------------------------------------------------------ threads


def test_threads_started_before_and_after_start(engine):
    go = threading.Event()

    def worker():
        busy_for(0.03)

    def early():
        go.wait()
        worker()

    before = threading.Thread(target=early, name="before-start")
    before.start()
    p = hyprof.Profiler(engine=engine)
    p.start()
    go.set()
    after = threading.Thread(target=worker, name="after-start")
    after.start()
    after.join()
    before.join()
    worker()
    main_name = threading.current_thread().name
    threading.current_thread().name = "renamed-main"  # names are taken at stop
    try:
        p.stop()
    finally:
        threading.current_thread().name = main_name
    t = p.trace()
    threads = {th.name: th for th in t.threads()}
    threads["MainThread"] = threads.pop("renamed-main")
    assert {"MainThread", "before-start", "after-start"} <= set(threads)
    assert threads["after-start"].ident == after.ident
    assert threads["after-start"].os_tid == after.native_id
    for name in ("MainThread", "before-start", "after-start"):
        fs = by_name(t, threads[name])
        assert fs["worker"].calls == 1, name
        assert fs["worker"].cpu_cum == pytest.approx(0.03, rel=0.2), name
    assert by_name(t)["worker"].calls == 3


def test_ended_threads_release_their_clocks(engine):
    def short():
        fib(5)

    p = hyprof.Profiler(engine=engine)
    with p:
        for _ in range(40):
            t = threading.Thread(target=short)
            t.start()
            t.join()
    c = p._engine.counters
    assert c["threads"] == 41
    # Only the main thread still holds a stack and a perf page.
    assert c["threads_holding_clocks"] == 1
    fs = by_name(p.trace())
    assert fs["fib"].calls == 40 * 15
    assert len(p.trace().threads()) == 41


# ------------------------------------------------------------ refusals


def test_refuses_to_start_over_cprofile(engine):
    pr = cProfile.Profile()
    pr.enable()
    try:
        with pytest.raises(hyprof.ProfilerError, match="cProfile"):
            hyprof.Profiler(engine=engine).start()
        # cProfile was not replaced: it still records.
        fib(5)
    finally:
        pr.disable()
    assert any(k[2] == "fib" and v[1] == 15 for k, v in pstats.Stats(pr).stats.items())


def test_refuses_to_start_over_a_profile_function(engine):
    def foreign(frame, event, arg):
        pass

    sys.setprofile(foreign)
    try:
        with pytest.raises(hyprof.ProfilerError, match="foreign"):
            hyprof.Profiler(engine=engine).start()
        assert sys.getprofile() is foreign
    finally:
        sys.setprofile(None)


def test_one_hyprof_profiler_at_a_time(engine):
    a = hyprof.Profiler(engine=engine)
    b = hyprof.Profiler(engine=engine)
    with a:
        with pytest.raises(hyprof.ProfilerError, match="another hyprof profiler"):
            b.start()
        with pytest.raises(hyprof.ProfilerError, match="already running"):
            a.start()
        with pytest.raises(hyprof.ProfilerError, match="stop"):
            a.trace()
    with b:
        fib(3)
    assert by_name(b.trace())["fib"].calls == 5


def test_bad_options_name_the_problem():
    with pytest.raises(hyprof.ProfilerError, match="engine='fast'"):
        hyprof.Profiler(engine="fast")
    with pytest.raises(ValueError, match="mode='exact'"):
        hyprof.Profiler(mode="exact")
    with pytest.raises(hyprof.ProfilerError, match="builtins"):
        hyprof.Profiler(builtins="yes")
    with pytest.raises(hyprof.ProfilerError, match="max_nodes"):
        hyprof.Profiler(max_nodes=-1)
    with pytest.raises(hyprof.ProfilerError, match="colour"):
        hyprof.Profiler(colour="red")
    with pytest.raises(hyprof.ProfilerError, match="not running"):
        hyprof.Profiler().stop()


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="sys.monitoring exists")
def test_monitoring_engine_needs_312():
    with pytest.raises(hyprof.ProfilerError, match="3.12"):
        hyprof.Profiler(engine="monitoring")


# ------------------------------------------------------------ outputs


def test_write_and_load_round_trip(engine, tmp_path):
    p = hyprof.Profiler(engine=engine)
    with p:
        fib(10)
    path = p.write(tmp_path / "fib.hyprof")
    t = hyprof.load(path)
    assert t.mode == "deterministic"
    assert t.header["engine"] == engine
    assert t.header["clock_wall"] in ("tsc", "monotonic")
    assert t.header["clock_cpu"] in ("perf_mmap", "thread_cputime", "mixed")
    assert [m.name for m in t.metrics] == ["calls", "wall_own", "cpu_own", "wall_cum", "cpu_cum",
                                           "calls.rec", "wall_cum.rec", "cpu_cum.rec",
                                           "calls.edge_rec", "wall_cum.edge_rec",
                                           "cpu_cum.edge_rec"]
    assert by_name(t)["fib"].calls == 177
    assert by_name(t)["fib"].calls == by_name(p.trace())["fib"].calls
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        p.write(tmp_path / "no-such-dir" / "x.hyprof")


def test_pstats_loads_the_trace_with_cprofile_order(engine, tmp_path):
    t = profile(lambda: (fib(10), catcher()), engine)
    st = pstats.Stats(PstatsExport(t))
    key = (fib.__code__.co_filename, fib.__code__.co_firstlineno, "fib")
    cc, nc, tt, ct, callers = st.stats[key]
    assert (cc, nc) == (1, 177)  # primitive calls first, as cProfile
    assert ct >= tt > 0
    # fib calls itself 176 times and is called once from the lambda.
    assert callers[key][0] == 176
    mr = (middle.__code__.co_filename, maybe_raise.__code__.co_firstlineno, "maybe_raise")
    mid = (middle.__code__.co_filename, middle.__code__.co_firstlineno, "middle")
    assert st.stats[mr][4][mid][:2] == (30, 30)
    assert st.total_calls == sum(v[1] for v in st.stats.values())
    assert ("~", 0, "<built-in method builtins.len>") not in st.stats  # not called here
    path = tmp_path / "out.prof"
    path.write_bytes(hyprof.render.render(t, "pstats"))
    st2 = pstats.Stats(str(path))
    assert st2.stats[key][:2] == (1, 177)
    assert marshal.loads(path.read_bytes())[key][1] == 177


def test_node_limit_folds_into_truncated(engine):
    funcs = []
    for i in range(50):
        ns = {}
        exec("def f%d():\n    return %d\n" % (i, i), ns)
        funcs.append(ns["f%d" % i])

    def work():
        for f in funcs:
            f()
            f()

    t = profile(work, engine, max_nodes=10)
    fs = by_name(t)
    assert "[truncated]" in fs
    kept = sum(fs[n].calls for n in fs if n.startswith("f"))
    assert kept + fs["[truncated]"].calls >= 100
    assert fs["[truncated]"].calls >= 2 * (50 - 10)
    # One count of the folded calls, wherever the trace says it.
    assert t.header["truncated"] == t.truncated_nodes == fs["[truncated]"].calls
    assert t.node_count <= 10 + 3


def test_trace_and_written_trace_say_the_same(engine, tmp_path):
    """p.trace() and hyprof.load(p.write()) are one trace: the same header,
    end record and values to the nanosecond, with or without truncation."""
    for max_nodes in (0, 8):
        p = hyprof.Profiler(engine=engine, max_nodes=max_nodes)
        with p:
            fib(12)
            consume_generators()
            generator_resumed_by_its_callee()
        t = p.trace()
        w = hyprof.load(p.write(tmp_path / f"t{max_nodes}.hyprof"))
        assert t.header == w.header
        assert (t.truncated_nodes, t.truncated) == (w.truncated_nodes, w.truncated)
        assert t.to_data()["rows"] == w.to_data()["rows"]
        assert {func_key(f): (f.own, f.cum) for f in t.functions()} == \
            {func_key(f): (f.own, f.cum) for f in w.functions()}
        if max_nodes:
            assert t.truncated_nodes == by_name(t)["[truncated]"].calls > 0
    # Both producers name the interpreter alike.
    assert t.header["python"] == sys.version.split()[0]


def spun_resumer(gen):
    busy_for(0.02)
    if gen is not None:
        next(gen, None)


def spun_body():
    yield
    spun_resumer(None)


def spun_work():
    g = spun_body()
    next(g)
    spun_resumer(g)


def test_generator_resumed_by_its_callee_counts_time_once(engine):
    """The call of spun_resumer made from the generator's body runs inside
    the outer spun_resumer (which resumed the generator): recursive on the
    stack, so its time is already in the outer call's."""
    fs = by_name(profile(spun_work, engine, builtins=False))
    r, w = fs["spun_resumer"], fs["spun_work"]
    assert (r.calls, r.primitive_calls) == (2, 1)
    assert r.cpu_cum == pytest.approx(w.cpu_cum, rel=0.05)
    assert r.wall_cum <= w.wall_cum
    assert r.cpu_cum == pytest.approx(0.04, rel=0.2)


def test_decorator_with_and_without_arguments(tmp_path):
    @hyprof.profile(report=False)
    def plain(n):
        return fib(n)

    out = tmp_path / "d.hyprof"

    @hyprof.profile(output=out, builtins=False)
    def with_args(n):
        return fib(n)

    assert plain(5) == 5 and plain(6) == 8
    assert by_name(plain.trace())["fib"].calls == 15 + 25
    assert with_args(7) == 13
    assert by_name(hyprof.load(out))["fib"].calls == 41
    assert isinstance(plain.profiler, hyprof.Profiler)

    @hyprof.profile(report=False)
    def recursive(n):
        return n if n < 1 else recursive(n - 1)

    recursive(3)
    fs = by_name(recursive.trace())
    # The profiled call and its three recursive calls, which pass through the
    # wrapper (running straight through while its profiler runs): the
    # wrapper is hyprof's, not in the profile, and the calls nest directly.
    assert (fs["recursive"].calls, fs["recursive"].primitive_calls) == (4, 1)
    assert "wrapper" not in fs
    assert [n.function.name.rsplit(".", 1)[-1] for n in recursive.trace().nodes()[1:]] == \
        ["recursive"] * 4

    @hyprof.profile(report=False)
    def both(n):
        if n > 0:
            both.__wrapped__(n - 1)
            both(n - 1)

    both(2)
    # The calls through the wrapper join the direct ones of the same path.
    nodes = both.trace().nodes()[1:]
    assert [(n.parent, n.values["calls"]) for n in nodes] == [(0, 1), (1, 2), (2, 4)]
    assert all(nodes[i + 1].values["wall_cum"] <= nodes[i].values["wall_cum"] for i in (0, 1))


def test_decorator_and_context_manager_record_only_the_program(engine, profiler_frames):
    # Not Profiler.stop or __exit__ (with the C stop under them) at the end
    # of the tree: the roots are the profiled code's own calls.
    @hyprof.profile(report=False, engine=engine)
    def work():
        return fib(8)

    work()
    t = work.trace()
    assert profiler_frames(t) == []
    assert [n.function.name.rsplit(".", 1)[-1] for n in t.nodes()[1:] if n.parent == 0] == ["work"]
    with hyprof.Profiler(engine=engine) as p:
        fib(6)
    assert profiler_frames(p.trace()) == []
    roots = [n.function.name for n in p.trace().nodes()[1:] if n.parent == 0]
    assert [r.rsplit(".", 1)[-1] for r in roots] == ["fib"]
    p = hyprof.Profiler(engine=engine)
    for _ in range(2):  # each stop drops its own path, not the others' calls
        p.start()
        fib(5)
        p.stop()
    assert profiler_frames(p.trace()) == []
    assert by_name(p.trace())["fib"].calls == 30


def test_templates_sharing_a_name_are_not_recursive(engine):
    """jinja2 compiles every template of a DictLoader to a "root" function in
    "<template>": a child template's root drives its parent's. Ten instances
    of ten distinct functions, none recursive."""
    jinja2 = pytest.importorskip("jinja2")
    pages = {f"page{i}.html": '{% extends "base.html" %}{% block body %}' + str(i) +
             "{% endblock %}" for i in range(5)}
    env = jinja2.Environment(loader=jinja2.DictLoader(
        {"base.html": "<p>{% block body %}{% endblock %}</p>", **pages}))
    templates = [env.get_template(name) for name in pages]

    def render():
        for t in templates:
            t.render()

    render()
    roots = [f for f in profile(render, engine).functions() if f.name == "root"]
    assert sum(f.calls for f in roots) == 10
    assert sum(f.primitive_calls for f in roots) == 10


def test_many_callees_of_one_call_path_are_counted_exactly(engine):
    """A call path with hundreds of distinct callees (looked up through the
    thread's table rather than its list of children) keeps every one apart,
    on every thread, and folds exactly at the node limit."""
    ns = {}
    exec(compile("".join(f"def g{i}(k=None):\n    return k() if k else {i}\n"
                         for i in range(300)), "<callees>", "exec"), ns)
    funcs = [ns[f"g{i}"] for i in range(300)]

    def dispatch():
        for rnd in range(3):
            for i, f in enumerate(funcs):
                f(funcs[(i + rnd) % 300] if i % 7 == 0 else None)

    def work():
        dispatch()
        t = threading.Thread(target=dispatch)
        t.start()
        t.join()

    t = profile(work, engine, builtins=False)
    calls = {f.name: f.calls for f in t.functions() if f.name.startswith("g")}
    want = {f"g{i}": 6 for i in range(300)}
    for rnd in range(3):
        for i in range(0, 300, 7):
            want[f"g{(i + rnd) % 300}"] += 2
    assert calls == want
    assert all(len([f for f in t.functions(th) if f.name.startswith("g")]) == 300
               for th in t.threads())
    t = profile(dispatch, engine, builtins=False, max_nodes=100)
    fs = by_name(t)
    assert fs["dispatch"].calls == 1
    assert sum(f.calls for f in t.functions() if f.name.startswith("g")) + \
        fs["[truncated]"].calls == sum(want.values()) // 2
    assert t.truncated_nodes == fs["[truncated]"].calls


def test_program_taking_threadings_hook_is_warned_about_and_kept(engine):
    """A program that calls threading.setprofile() while the profile-hook
    engine runs takes the threads started after it: stop() says so, naming
    the hook, and leaves the program's hook in place. With sys.monitoring
    those threads are still recorded."""
    def own_hook(*args):
        return None

    def work():
        threading.setprofile(own_hook)
        try:
            t = threading.Thread(target=fib, args=(10,), name="after-hook")
            t.start()
            t.join()
        finally:
            assert threading.getprofile() is own_hook
    p = hyprof.Profiler(engine=engine)
    p.start()
    try:
        if engine == "setprofile":
            with pytest.warns(RuntimeWarning, match=r"threading\.setprofile\(<function"):
                try:
                    work()
                finally:
                    p.stop()
            assert threading.getprofile() is own_hook
        else:
            try:
                work()
            finally:
                p.stop()
            assert "after-hook" in [t.name for t in p.trace().threads()]
    finally:
        threading.setprofile(None)
