"""Garbage collections in both modes (docs/gc.md): the deterministic mode
records each one as a call of "[gc] generation N" with exact counts and
times, the sampler puts that frame between the stack that triggered the
collection and the finalizers it runs, and every trace's header totals the
collections per generation. The programs here collect at known moments
(automatic collection off, gc.collect() of known garbage) and time the
collections with their own clocks."""

import gc
import sys
import threading
import time

import pytest

import hyprof
from test_render_support import every_format, go_pprof_top

ENGINES = ["setprofile"] + (["monitoring"] if sys.version_info >= (3, 12) else [])
GEN = "[gc] generation %d"


class Cycle:
    """Cyclic garbage: only a collection frees it."""

    def __init__(self):
        self.me = self
        self.payload = [[] for _ in range(4)]


def make_cycles(n):
    for _ in range(n):
        Cycle()


def collect(gen):
    gc.collect(gen)


class Finalized:
    calls = 0

    def __init__(self):
        self.me = self

    def __del__(self):
        Finalized.calls += 1
        spin(0.002)


def spin(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@pytest.fixture
def no_auto_gc():
    """Collections happen only where the program asks for them."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    yield
    if was:
        gc.enable()


def funcs_by_name(trace):
    out = {}
    for f in trace.functions():
        out.setdefault(f.name, []).append(f)
    return out


def planned_collections(times):
    """Runs a known plan of collections; returns {gen: count} and the
    program's own wall time around each generation's gc.collect()."""
    plan = {0: 3, 1: 2, 2: 4}
    for gen, n in plan.items():
        for _ in range(n):
            make_cycles(20000)
            t0 = time.perf_counter()
            collect(gen)
            times[gen] = times.get(gen, 0.0) + time.perf_counter() - t0
    return plan


@pytest.mark.parametrize("engine", ENGINES)
def test_deterministic_counts_each_collection_exactly(engine, no_auto_gc):
    others = list(gc.callbacks)
    times = {}
    p = hyprof.Profiler(engine=engine)
    with p:
        plan = planned_collections(times)
    assert gc.callbacks == others, "the profiler's callback stays in gc.callbacks"
    t = p.trace()
    stats = t.gc()
    assert stats.collections == (plan[0], plan[1], plan[2])
    assert stats.collected >= 9 * 20000  # each Cycle is freed by the collection after it
    by = funcs_by_name(t)
    for gen, n in plan.items():
        [f] = by[GEN % gen]
        assert f.info.kind == "special"
        assert f.calls == n
        # Within the program's own clock read around gc.collect(), and most
        # of it: gc.collect() does little but collect.
        assert f.wall_cum <= times[gen] + 1e-4
        assert f.wall_cum >= 0.8 * times[gen] - 2e-4, (gen, f.wall_cum, times[gen])
        assert abs(stats.seconds[gen] - f.wall_cum) <= 0.05 * f.wall_cum + 2e-4
    # Each collection is a callee of the gc.collect() that asked for it.
    callers = {e.caller.name for e in t.edges() if e.callee.name.startswith("[gc]")}
    assert callers == {"<built-in method gc.collect>"}


@pytest.mark.parametrize("engine", ENGINES)
def test_deterministic_finalizers_are_callees_of_the_collection(engine, no_auto_gc):
    Finalized.calls = 0
    p = hyprof.Profiler(engine=engine)
    with p:
        for _ in range(10):
            Finalized()
        collect(2)
    assert Finalized.calls == 10
    t = p.trace()
    edges = {(e.caller.name if e.caller else None, e.callee.name): e for e in t.edges()}
    dels = edges[(GEN % 2, "Finalized.__del__")]
    assert dels.calls == 10
    [g2] = funcs_by_name(t)[GEN % 2]
    assert g2.wall_cum >= dels.wall_cum >= 10 * 0.002 * 0.9
    assert not any(e.callee.name == "Finalized.__del__" and e.caller.name != GEN % 2
                   for e in t.edges() if e.caller)


@pytest.mark.parametrize("engine", ENGINES)
def test_deterministic_automatic_collections_sit_under_the_allocating_code(engine):
    gc.collect()
    seen = []

    def watch(phase, info):
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.insert(0, watch)
    try:
        p = hyprof.Profiler(engine=engine)
        with p:
            make_cycles(50000)
    finally:
        gc.callbacks.remove(watch)
    t = p.trace()
    stats = t.gc()
    assert 1 <= sum(stats.collections) <= len(seen)
    by = funcs_by_name(t)
    calls = sum(f.calls for name, fs in by.items() if name.startswith("[gc]") for f in fs)
    assert calls == sum(stats.collections)
    callers = {e.caller.name for e in t.edges() if e.callee.name.startswith("[gc]")}
    assert callers <= {"make_cycles", "Cycle.__init__", "Cycle.__init__.<locals>.<listcomp>"}


@pytest.mark.parametrize("engine", ENGINES)
def test_context_bound_profilers_get_their_own_collections(engine, no_auto_gc):
    import contextvars
    var = contextvars.ContextVar("hyprof_test_gc")
    a = hyprof.Profiler(engine=engine, context=(var, "a"))
    b = hyprof.Profiler(engine=engine, context=(var, "b"))

    def run(value, gens):
        var.set(value)
        for g in gens:
            collect(g)

    with a, b:
        contextvars.copy_context().run(run, "a", [0, 0, 2])
        contextvars.copy_context().run(run, "b", [1])
        collect(0)  # in no profiler's context
    assert [f.calls for f in funcs_by_name(a.trace())[GEN % 0]] == [2]
    assert [f.calls for f in funcs_by_name(a.trace())[GEN % 2]] == [1]
    assert GEN % 1 not in funcs_by_name(a.trace())
    assert [f.calls for f in funcs_by_name(b.trace())[GEN % 1]] == [1]
    assert GEN % 0 not in funcs_by_name(b.trace())


def test_a_callback_list_the_program_changed_is_left_alone(no_auto_gc):
    p = hyprof.Profiler()
    with p:
        mine = list(gc.callbacks)
        gc.callbacks.clear()   # the program drops every callback, ours too
        collect(0)
    assert gc.callbacks == []
    gc.callbacks.extend(c for c in mine if "hyprof" not in repr(c))
    assert p.trace().gc().collections == (0, 0, 0)


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_sampling_marks_collections_and_totals_them(clock, no_auto_gc):
    p = hyprof.Profiler(mode="sampling", frequency=1000, clock=clock)
    # The shares are timed by the clock the samples weigh: on a loaded
    # machine the thread's CPU time and its wall time part ways.
    now = time.thread_time if clock == "cpu" else time.perf_counter
    gc_cpu = total_cpu = 0.0
    with p:
        c_start = now()
        for _ in range(6):
            make_cycles(30000)
            c0 = now()
            collect(2)
            gc_cpu += now() - c0
        total_cpu = now() - c_start
    t = p.trace()
    assert t.gc().collections == (0, 0, 6)
    # This thread's samples: the wall clock also samples any other thread
    # alive in the process.
    [me] = [th for th in t.threads() if th.ident == threading.get_ident()]
    weights = {}
    for stack, w in t.stacks(thread=me):
        names = [f.name for f in stack]
        if GEN % 2 in names:
            # Always on top of the stack that asked for it.
            assert names[names.index(GEN % 2) - 1] == "collect", names
            weights["gc"] = weights.get("gc", 0) + w
        weights["all"] = weights.get("all", 0) + w
    share, expected = weights.get("gc", 0) / weights["all"], gc_cpu / total_cpu
    assert abs(share - expected) <= 0.08, (share, expected)


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_sampling_puts_finalizers_above_the_collection(clock, no_auto_gc):
    p = hyprof.Profiler(mode="sampling", frequency=1000, clock=clock)
    with p:
        for _ in range(40):
            Finalized()
        collect(2)
    t = p.trace()
    under = 0
    for stack, w in t.stacks():
        names = [f.name for f in stack]
        if "Finalized.__del__" in names:
            i = names.index("Finalized.__del__")
            assert names[i - 2:i] == ["collect", GEN % 2], names
            under += w
    assert under > 0


def test_windows_and_merges_add_the_collections_up(tmp_path, no_auto_gc):
    from hyprof import continuous
    cp = continuous.ContinuousProfiler(frequency=200, tick=0.1)
    cp.start()
    try:
        collect(0)
        first = cp.take()
        collect(1)
        collect(2)
        second = cp.take()
        collect(0)
        last = cp.recent()
    finally:
        cp.stop()
    assert first.gc().collections == (1, 0, 0)
    assert second.gc().collections == (0, 1, 1)
    assert last.gc().collections[0] >= 2  # every tick kept: both gen0 ones
    first.write(tmp_path / "a.hyprof")
    second.write(tmp_path / "b.hyprof")
    from hyprof.merge import merge
    merge([tmp_path / "a.hyprof", tmp_path / "b.hyprof"], tmp_path / "m.hyprof")
    assert hyprof.load(tmp_path / "m.hyprof").gc().collections == (1, 1, 1)


@pytest.fixture(scope="module")
def gc_trace(tmp_path_factory):
    gc.collect()
    gc.disable()
    try:
        p = hyprof.Profiler()
        with p:
            make_cycles(20000)
            collect(2)
    finally:
        gc.enable()
    path = tmp_path_factory.mktemp("gc") / "gc.hyprof"
    p.trace().write(path)
    return hyprof.load(path)


def test_every_format_shows_the_collection(gc_trace, tmp_path):
    for fmt, out in every_format(gc_trace).items():
        assert "[gc] generation 2" in out, fmt
        if fmt == "text":
            assert "garbage collection: 1 collection," in out
    assert "[gc] generation 2" in go_pprof_top(gc_trace, tmp_path, "wall")


def test_a_hostile_gc_header_is_refused(tmp_path, gc_trace):
    from test_render_support import write
    data = gc_trace.to_data()
    data["header"]["gc_ns_gen2"] = "a lot"
    with pytest.raises(hyprof.TraceError, match="gc_ns_gen2"):
        write(tmp_path / "bad.hyprof", data)
