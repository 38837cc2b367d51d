"""The GIL's state on every CPU and wall sample (docs/sampling.md, "The
GIL"): held (running Python), released (in C code that let it go: I/O,
sleep, hashing a large buffer) or waiting for it, as the label gil=... and
the header's gil_held, gil_released and gil_waiting counts. The programs
spend known shares of their time in each state, measured by their own
clocks."""

import hashlib
import threading
import time

import pytest

import hyprof
from hyprof import render as R

DATA = b"x" * (8 << 20)  # hashlib lets the GIL go for buffers over 2 KiB


def py_spin(seconds):
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1
    return x


def c_hash(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        hashlib.sha256(DATA).digest()


def shares(trace, thread=None, metric=None):
    """{state: share of the weight} of one thread's samples."""
    metric = metric or trace.metrics[trace.sample_kinds[0].weight_metric].name
    out = {}
    for labels, part in trace.by_label_set():
        th = _same_thread(part, thread)
        if thread is not None and th is None:
            continue
        w = sum(v for _, v in part.stacks(metric, thread=th))
        if w:
            out[labels.get("gil", "?")] = out.get(labels.get("gil", "?"), 0) + w
    total = sum(out.values()) or 1
    return {k: v / total for k, v in out.items()}


def _same_thread(part, thread):
    if thread is None:
        return None
    found = [t for t in part.threads() if t.ident == thread]
    return found[0] if found else None


def alternate(py, c, rounds):
    """py seconds of Python, then c seconds of C code without the GIL, a
    round; returns the program's own totals of each."""
    tp = tc = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        py_spin(py)
        t1 = time.perf_counter()
        c_hash(c)
        t2 = time.perf_counter()
        tp += t1 - t0
        tc += t2 - t1
    return tp, tc


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_held_and_released_shares_match_the_programs_time(clock):
    p = hyprof.Profiler(mode="sampling", frequency=1000, clock=clock)
    with p:
        tp, tc = alternate(0.02, 0.02, 15)
    t = p.trace()
    got = shares(t, threading.get_ident())
    expected = tc / (tp + tc)
    assert abs(got.get("released", 0) - expected) <= 0.08, (got, expected)
    assert got.get("waiting", 0) <= 0.03, got
    h = t.header
    assert h["gil_held"] > 0 and h["gil_released"] > 0
    assert h["gil_held"] + h["gil_released"] + h["gil_waiting"] == t.sample_total


def test_a_thread_that_waits_for_the_gil_is_waiting_in_wall_time():
    """Two threads run Python at once: each holds the GIL about half the
    time and waits for it the other half."""
    stop = threading.Event()

    def other():
        while not stop.is_set():
            py_spin(0.001)

    p = hyprof.Profiler(mode="sampling", frequency=1000, clock="wall")
    th = threading.Thread(target=other)
    with p:
        th.start()
        try:
            py_spin(0.6)
        finally:
            stop.set()
            th.join()
    got = shares(p.trace(), threading.get_ident())
    assert got.get("waiting", 0) >= 0.25, got
    assert got.get("held", 0) >= 0.25, got
    # A hand-off (the GIL dropped, the waiter woken but not yet running)
    # reads as released; on a loaded 2-core machine those windows grow.
    assert got.get("released", 0) <= 0.25, got


def test_every_report_filters_and_splits_by_the_gil(tmp_path):
    p = hyprof.Profiler(mode="sampling", frequency=1000, clock="wall")
    with p:
        alternate(0.01, 0.01, 10)
        time.sleep(0.05)
    path = tmp_path / "gil.hyprof"
    p.trace().write(path)
    t = hyprof.load(path)
    text = R.render(t, "text")
    assert "GIL:" in text and "held" in text and "released" in text
    assert any("gil held" in line for line in text.splitlines())  # the table's column
    released = t.where(gil="released")
    names = {f.name: f.own_samples for f in released.functions() if f.own_samples}
    # The released samples are c_hash's. A loaded CI runner once gave
    # py_spin some; the cause is not pinned down (the instant py_spin hands
    # over to c_hash is the likely place), so the test bounds their share
    # rather than forbidding them.
    assert "c_hash" in names, names
    assert names.get("py_spin", 0) * 20 <= sum(names.values()), names
    # The HTML page's metric menu has one entry per state, whose columns add
    # up to the samples.
    import json
    import re
    page = R.render(t, "html")
    found = re.search(r'<script type="application/json" id="hyprof-data">(.*?)</script>', page,
                      re.S)
    data = json.loads(found.group(1))
    names = [m["name"] for m in data["metrics"]]
    assert "gil_held" in names and "gil_released" in names
    total = sum(data["values"][names.index(t.metrics[0].name)])
    assert total > 0 and total == sum(sum(data["values"][names.index(n)]) for n in names
                                      if n.startswith("gil_"))
    raw = R.render(t, "pprof")
    import gzip
    assert b"released" in gzip.decompress(raw)
