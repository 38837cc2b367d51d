"""The continuous profiler: windows cut from one sampler that keeps running,
bounded tables, windows written to a directory and rotated."""

import os
import sys
import threading
import time

import pytest

import hyprof
import hyprof.continuous as continuous
from hyprof.errors import ProfilerError


def work(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(i * i for i in range(200))


def samples(trace):
    return sum(f.own_samples for f in trace.functions())


def test_take_gives_the_samples_since_the_previous_take():
    with continuous.ContinuousProfiler(frequency=500, tick=0.1, retain=10) as p:
        work(0.2)
        a = p.take()
        work(0.2)
        b = p.take()
    assert samples(a) > 0 and samples(b) > 0
    assert a.header["window_end"] <= b.header["window_start"] + 1e-6
    assert 0.15 < a.header["duration"] < 5
    assert any(f.name == "work" for f in b.functions())
    # The sampler ran all along: one session, cut, never restarted.
    assert p.stats["ticks"] >= 4 and p.stats["tick_errors"] == 0


def test_collect_gives_the_next_seconds_to_each_caller():
    got = {}
    with continuous.ContinuousProfiler(frequency=500, tick=0.1, retain=10) as p:
        threads = [threading.Thread(target=lambda k=k: got.__setitem__(k, p.collect(0.4)))
                   for k in range(2)]
        for t in threads:
            t.start()
        work(0.6)
        for t in threads:
            t.join()
    for k in range(2):
        assert 0.35 < got[k].header["duration"] < 2, got[k].header
        assert samples(got[k]) > 0


def test_tables_stay_bounded_under_code_churn():
    # New functions every tick: a window holds only the code its ticks saw.
    sizes = []
    with continuous.ContinuousProfiler(frequency=1000, tick=0.1, retain=0.5) as p:
        for round_ in range(12):
            for k in range(30):
                ns = {}
                exec(f"def churn_{round_}_{k}(n):\n    return sum(i * i for i in range(n))",
                     ns)
                f = ns[f"churn_{round_}_{k}"]
                end = time.thread_time() + 0.004
                while time.thread_time() < end:
                    f(300)
            sizes.append(len(p.take().function_table))
        ages = [time.monotonic() - t[3] for t in p._ticks]
    assert max(sizes[3:]) < 3 * max(sizes[:3]) + 50, sizes
    # Only the ticks of the last retain seconds are held (each cut prunes).
    assert ages and max(ages) < 0.5 + 0.3, ages


def test_windows_are_written_and_rotated(tmp_path):
    d = tmp_path / "windows"
    with continuous.ContinuousProfiler(frequency=500, tick=0.1, window=1, retain=5,
                                       directory=d, keep=2) as p:
        work(3.3)
    names = sorted(os.listdir(d))
    assert len(names) == 2, names
    assert p.stats["windows_written"] >= 3 and p.stats["files_removed"] >= 1
    assert os.stat(d).st_mode & 0o077 == 0
    for n in names:
        t = hyprof.load(d / n)
        assert t.mode == "sampling" and "window_start" in t.header
    # Names sort by time.
    starts = [hyprof.load(d / n).header["window_start"] for n in names]
    assert starts == sorted(starts)


@pytest.mark.parametrize("opts, msg", [
    ({"tick": 0}, "tick=0"),
    ({"keep": 0, "directory": "x"}, "keep=0"),
    ({"keep": 3}, "give a directory"),
    ({"window": 100, "retain": 10, "directory": "x"}, "retain=10"),
])
def test_bad_options_are_refused_by_name(opts, msg):
    with pytest.raises(ProfilerError, match=msg):
        continuous.ContinuousProfiler(**opts)


def test_lock_samples_are_cut_into_the_windows():
    p = continuous.ContinuousProfiler(tick=0.1, locks=True, lock_interval=0.001)
    p.start()
    try:
        lock = threading.Lock()
        holds = []

        def worker():
            for _ in range(10):
                with lock:
                    t0 = time.perf_counter()
                    time.sleep(0.01)
                    holds.append(time.perf_counter() - t0)
                time.sleep(0.0005)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(0.15)  # a tick past the last release
        first = p.take()
        second = p.take()
    finally:
        p.stop()
    kinds = {k.name for k in first.sample_kinds}
    assert {"lock-wait", "lock-hold"} <= kinds
    held = sum(w for stack, w in first.stacks("lock_hold_ns")
               if stack[-1].name.startswith("<lock created at ")) * 1e-9
    # 10 ms holds against a 1 ms interval: all sampled, weighing their time.
    assert held == pytest.approx(sum(holds), rel=0.1)
    assert sum(w for _, w in first.stacks("lock_wait_ns")) > 0
    # Taken once: the next window has none of them.
    assert sum(w for _, w in second.stacks("lock_hold_ns")) == 0


@pytest.mark.skipif(sys.version_info < (3, 12), reason="exceptions need sys.monitoring (3.12+)")
def test_exception_samples_are_cut_into_the_windows():
    p = continuous.ContinuousProfiler(tick=0.1, exceptions=True)
    p.start()
    try:
        for i in range(300):
            try:
                raise KeyError(i)
            except KeyError:
                pass
        time.sleep(0.15)
        first = p.take()
        second = p.take()
    finally:
        p.stop()
    raised = sum(w for stack, w in first.stacks("exceptions")
                 if stack[-1].name == "<raise KeyError>")
    assert raised == 300  # exception_interval=1: every one, once
    assert sum(w for _, w in second.stacks("exceptions")) == 0


def test_one_per_process_and_the_sampler_is_taken():
    p = continuous.start(frequency=200, tick=0.2)
    try:
        assert continuous.current() is p
        with pytest.raises(ProfilerError, match="already"):
            continuous.start()
        with pytest.raises(ProfilerError, match="another sampling profiler"):
            hyprof.Profiler(mode="sampling").start()
    finally:
        continuous.stop()
    assert continuous.current() is None


def test_memory_windows_subtract_only_marks_of_their_own_run():
    keep = []
    with continuous.ContinuousProfiler(frequency=100, memory=True, memory_interval=4096) as p:
        _, none = p._memory.snapshot()
        assert none is None  # no mark unless asked: a heap scrape copies the profile once
        _, mark = p._memory.snapshot(mark=True)
        keep.extend(bytearray(1000) for _ in range(2000))
        trace, _ = p._memory.snapshot(mark)
        assert sum(f.own["alloc_bytes"] for f in trace.functions()) > 1e6
    with continuous.ContinuousProfiler(frequency=100, memory=True) as q:
        with pytest.raises(ValueError, match="not a mark of this run"):
            q._memory.snapshot(mark)
