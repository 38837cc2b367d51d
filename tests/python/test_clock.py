"""The deterministic mode's CPU clock against CLOCK_THREAD_CPUTIME_ID
(time.thread_time), through sleeps, spins and context switches: within 2%.

The profiler's interval for a call begins before the first line of the
function and ends after its last, so the program's own clocks bracket it: read
inside the function they give a lower bound, read around the call an upper
one. A switch to another thread at either end (the GIL changes hands at a
call) lands between the two and is not an error of the profiler's."""

import os
import sys
import threading
import time

import pytest

import hyprof

ENGINES = ["setprofile"] + (["monitoring"] if sys.version_info >= (3, 12) else [])


def busy(n):
    x = 0
    for i in range(n):
        x += i * i
    return x


def task(ref):
    c0, w0 = time.thread_time(), time.perf_counter()
    for i in range(30):
        busy(20000)           # Python calls, each one reading the clock
        time.sleep(0.002)     # off the CPU: the CPU clock must stop
        os.sched_yield()      # a voluntary context switch
    ref["cpu"] = time.thread_time() - c0
    ref["wall"] = time.perf_counter() - w0


@pytest.mark.parametrize("cpu_clock", ["auto", "syscall"])
@pytest.mark.parametrize("engine", ENGINES)
def test_cpu_time_matches_thread_cputime(engine, cpu_clock):
    stop = threading.Event()

    def hog():
        # Competes for the GIL and the cores: the profiled thread is
        # switched out while it waits.
        while not stop.is_set():
            busy(1000)

    hogs = [threading.Thread(target=hog) for _ in range(2)]
    ref = {}
    p = hyprof.Profiler(engine=engine, cpu_clock=cpu_clock)
    for h in hogs:
        h.start()
    try:
        with p:
            c0, w0 = time.thread_time(), time.perf_counter()
            task(ref)
            outer_cpu, outer_wall = time.thread_time() - c0, time.perf_counter() - w0
    finally:
        stop.set()
        for h in hogs:
            h.join()
    t = p.trace()
    main = next(th for th in t.threads() if th.ident == threading.get_ident())
    fs = {f.name: f for f in t.functions(main)}
    got = fs["task"]
    assert ref["cpu"] > 0.02
    assert ref["cpu"] * 0.98 <= got.cpu_cum <= outer_cpu * 1.02
    assert ref["wall"] * 0.98 <= got.wall_cum <= outer_wall * 1.02
    assert got.cpu_cum < got.wall_cum  # the sleeps are not CPU time
    # Own plus children's CPU adds up to the cumulative CPU.
    total_own = sum(f.cpu_own for f in fs.values() if f.name != "task") + got.cpu_own
    assert total_own == pytest.approx(got.cpu_cum, rel=0.02)
    counters = p._engine.counters
    if cpu_clock == "syscall":
        assert t.header["clock_cpu"] == "thread_cputime"
        assert counters["cpu_fast_reads"] == 0
    elif t.header["clock_cpu"] == "perf_mmap":
        # The cheap read is the common one; switches were noticed.
        assert counters["cpu_fast_reads"] > 10 * counters["cpu_resyncs"]
        assert counters["cpu_resyncs"] >= 30


def test_header_names_the_clocks():
    p = hyprof.Profiler()
    with p:
        busy(10)
    h = p.trace().header
    assert h["clock_wall"] in ("tsc", "monotonic")
    assert h["clock_cpu"] in ("perf_mmap", "thread_cputime", "mixed")
    assert h["clock"] == "wall=%s cpu=%s" % (h["clock_wall"], h["clock_cpu"])
    assert h["ns_per_tick"] > 0
