"""The allocation collector: Profiler(mode="sampling", memory_only=True).

Workloads allocate known byte counts, so the estimates are checked against
the truth; the interval is small enough that the sampling error (about
1/sqrt(samples)) stays far inside the tolerances."""

import ctypes
import gc
import gzip
import json
import os
import re
import sys
import threading
import time
import tracemalloc

import hyprof
import pytest
from hyprof import _hyprof, memory
from workloads import busy_for

MiB = 1 << 20


# ---------------------------------------------------------------- workloads

def big_buffers(n_mib, keep):
    """n_mib buffers of 1 MiB (one bytearray object and its 1 MiB + 1 buffer)."""
    for _ in range(n_mib):
        keep.append(bytearray(MiB))


def small_objects(out, idx):
    """One 128-byte bytes object (33-byte header + 95 bytes) per slot of out;
    the list and the indexes are made by the caller, so nothing else here
    allocates."""
    for i in idx:
        out[i] = bytes(95)


def kept_buffers(keep):
    for _ in range(16):
        keep.append(bytearray(MiB))


def freed_buffers():
    tmp = [bytearray(MiB) for _ in range(16)]
    del tmp


def by_leaf(trace, metric):
    """{leaf function name: value} from the trace's stacks."""
    out = {}
    for frames, value in trace.stacks(metric):
        out[frames[-1].name] = out.get(frames[-1].name, 0) + value
    return out


def by_function(trace, metric):
    """{function name: value} summed over every stack the function is on."""
    out = {}
    for frames, value in trace.stacks(metric):
        for name in {f.name for f in frames}:
            out[name] = out.get(name, 0) + value
    return out


def heap_by_function(heap):
    out = {}
    for stack, nbytes in heap:
        for name in {f.name for f in stack}:
            out[name] = out.get(name, 0) + nbytes
    return out


class _Allocator(ctypes.Structure):
    _fields_ = [("ctx", ctypes.c_void_p), ("malloc", ctypes.c_void_p),
                ("calloc", ctypes.c_void_p), ("realloc", ctypes.c_void_p),
                ("free", ctypes.c_void_p)]


def allocators():
    """The installed (ctx, malloc, calloc, realloc, free) of the MEM and OBJ
    domains, read with PyMem_GetAllocator()."""
    get = ctypes.pythonapi.PyMem_GetAllocator
    get.argtypes = [ctypes.c_int, ctypes.POINTER(_Allocator)]
    get.restype = None
    out = []
    for domain in (1, 2):  # PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ
        a = _Allocator()
        get(domain, ctypes.byref(a))
        out.append((a.ctx, a.malloc, a.calloc, a.realloc, a.free))
    return out


@pytest.fixture(autouse=True)
def no_collector_left():
    yield
    if _hyprof.alloc_running():
        _hyprof.alloc_stop()
        pytest.fail("a test left the allocation collector running")


def profiler(interval=8192, **kw):
    return hyprof.Profiler(mode="sampling", memory_only=True, memory_interval=interval, **kw)


# ---------------------------------------------------------------- options

@pytest.mark.parametrize("bad", [0, 0.5, -4096, 2 ** 41, float("nan"), float("inf")])
def test_out_of_range_interval_is_refused(bad):
    with pytest.raises(hyprof.ProfilerError, match=r"memory_interval=.* out of range.*1 TiB"):
        profiler(interval=bad)


@pytest.mark.parametrize("bad", ["512k", True, None, [1]])
def test_interval_of_wrong_type_is_refused(bad):
    with pytest.raises(hyprof.ProfilerError, match="memory_interval=.*number of bytes"):
        profiler(interval=bad)


def test_other_bad_options():
    with pytest.raises(hyprof.ProfilerError, match="memory_only=.*True or False"):
        hyprof.Profiler(mode="sampling", memory_only="yes")
    with pytest.raises(hyprof.ProfilerError, match="memory_max_frames"):
        profiler(memory_max_frames=0)
    with pytest.raises(hyprof.ProfilerError, match="memory_interval"):
        _hyprof.alloc_start(interval=0)
    with pytest.raises(hyprof.ProfilerError, match="max_frames"):
        _hyprof.alloc_start(max_frames=100000)
    assert not _hyprof.alloc_running()


def test_state_errors():
    p = profiler()
    with pytest.raises(hyprof.ProfilerError, match="not run"):
        p.heap()
    with pytest.raises(hyprof.ProfilerError, match="not running"):
        p.stop()
    with p:
        other = profiler()
        with pytest.raises(hyprof.ProfilerError, match="already running"):
            other.start()
        assert not other.running
        with pytest.raises(hyprof.ProfilerError, match="not running"):
            other.stop()
        assert p.running
        with pytest.raises(hyprof.ProfilerError, match="stop"):
            p.trace()
    assert not p.running
    q = profiler()
    with q:
        assert not p.running
        with pytest.raises(hyprof.ProfilerError, match="another allocation profiler"):
            p.trace()


def test_default_interval_is_512_kib():
    p = hyprof.Profiler(mode="sampling", memory_only=True)
    with p:
        pass
    header = p.trace().header
    assert header["memory_interval"] == 512 * 1024
    assert header["argv"] == sys.argv and header["pid"] == os.getpid()
    assert memory.DEFAULT_INTERVAL == 524288


# ---------------------------------------------------------------- estimates

def test_estimated_shares_of_two_functions():
    n_small = 16 * MiB // 128
    out = [None] * n_small
    idx = list(range(n_small))
    keep = []
    gc.collect()
    p = profiler(interval=8192)
    with p:
        big_buffers(48, keep)
        small_objects(out, idx)
    t = p.trace()
    alloc = by_leaf(t, "alloc_bytes")
    big = alloc.get("big_buffers", 0)
    small = alloc.get("small_objects", 0)
    # Each function's bytes within 10% of the truth, and so the shares.
    assert big == pytest.approx(48 * MiB, rel=0.10)
    assert small == pytest.approx(16 * MiB, rel=0.10)
    assert big / (big + small) == pytest.approx(0.75, rel=0.10)
    # Small objects: about one sample per interval, each weighing about one interval.
    count = by_leaf(t, "alloc_samples")["small_objects"]
    assert count == pytest.approx(16 * MiB / 8192, rel=0.15)
    # Everything was kept: the live heap holds the same.
    live = by_leaf(t, "live_bytes")
    assert live["big_buffers"] == pytest.approx(48 * MiB, rel=0.10)
    assert live["small_objects"] == pytest.approx(16 * MiB, rel=0.10)
    del out, keep


def test_small_objects_at_the_default_interval_are_unbiased():
    # At 512 KiB a run of 64 MiB in 128-byte objects gives ~128 samples (an
    # error of about 9% per run); the mean of 8 runs (about 3%) must still
    # land on the truth.
    n = 64 * MiB // 128
    idx = list(range(n))
    estimates = []
    for _ in range(8):
        out = [None] * n
        p = profiler(interval=memory.DEFAULT_INTERVAL)
        with p:
            small_objects(out, idx)
        estimates.append(by_leaf(p.trace(), "alloc_bytes").get("small_objects", 0))
        del out
    assert sum(estimates) / len(estimates) == pytest.approx(64 * MiB, rel=0.12), estimates


def test_a_run_does_not_inherit_the_previous_runs_gaps(tmp_path):
    # A run with a large interval leaves each thread mid-gap; the next run,
    # at 64 KiB, must sample every 1 MiB buffer from its first one. Each
    # buffer is larger than any gap, so each gives exactly one sample standing
    # for its whole MiB; the small objects around them (the bytearray headers,
    # the list's growth) may add a sample of their own now and then, which is
    # why the buffers' samples are told apart by weight.
    p = profiler(interval=64 * MiB)
    with p:
        junk = [bytes(1000) for _ in range(1000)]
    for run in range(3):
        keep = []
        q = profiler(interval=65536)
        with q:
            kept_buffers(keep)
        q.write(tmp_path / f"run{run}.hyprof")
        t = hyprof.load(tmp_path / f"run{run}.hyprof", keep_samples=True)
        alloc = [k for k, kind in enumerate(t.sample_kinds) if kind.name == "alloc"]
        whole = [s for s in t.samples() if s.kind in alloc and s.weight >= MiB]
        assert len(whole) == 16
        assert by_function(t, "alloc_bytes")["kept_buffers"] >= 16 * MiB
        del keep
    del junk


# ---------------------------------------------------------------- live heap

def test_freed_buffers_leave_the_live_heap_and_kept_ones_stay():
    keep = []
    gc.collect()
    p = profiler(interval=65536)
    p.start()
    try:
        kept_buffers(keep)
        freed_buffers()
        now = heap_by_function(p.heap())
    finally:
        p.stop()
    assert now["kept_buffers"] == pytest.approx(16 * MiB, rel=0.05)
    assert "freed_buffers" not in now
    t = p.trace()
    alloc = by_function(t, "alloc_bytes")
    live = by_function(t, "live_bytes")
    assert alloc["freed_buffers"] == pytest.approx(16 * MiB, rel=0.05)
    assert alloc["kept_buffers"] == pytest.approx(16 * MiB, rel=0.05)
    assert live["kept_buffers"] == pytest.approx(16 * MiB, rel=0.05)
    assert "freed_buffers" not in live
    # heap() after stop is the heap at stop.
    assert heap_by_function(p.heap())["kept_buffers"] == live["kept_buffers"]
    # Stacks in heap() carry file and line.
    stack = next(s for s, _ in p.heap() if s[-1].name == "kept_buffers")
    assert stack[-1].filename == __file__
    assert stack[-1].line == kept_buffers.__code__.co_firstlineno + 2
    del keep


def grow(chunks):
    b = bytearray()
    for c in chunks:
        b += c
    return b


def test_realloc_moves_the_block_in_the_live_heap():
    chunks = [b"x" * 4096] * 2048  # grows to 8 MiB by realloc
    p = profiler(interval=65536)
    with p:
        kept = grow(chunks)
        dropped = grow(chunks)
        del dropped
    live = by_function(p.trace(), "live_bytes")
    # Only the final block of the kept buffer remains; each earlier size it
    # went through was a block freed by the realloc.
    assert live["grow"] == pytest.approx(len(kept), rel=0.05)
    del kept


# ---------------------------------------------------------------- chaining

def test_allocators_are_restored_exactly():
    before = allocators()
    p = profiler()
    p.start()
    during = allocators()
    p.stop()
    assert during != before
    assert allocators() == before


def test_tracemalloc_below_keeps_working():
    tracemalloc.start()
    try:
        before = allocators()
        keep = []
        p = profiler(interval=65536)
        with p:
            snap0 = tracemalloc.take_snapshot()
            kept_buffers(keep)
            snap1 = tracemalloc.take_snapshot()
        assert allocators() == before
        traced = sum(s.size_diff for s in snap1.compare_to(snap0, "filename")
                     if s.traceback[0].filename == __file__)
        assert traced >= 16 * MiB
        assert by_function(p.trace(), "alloc_bytes")["kept_buffers"] == pytest.approx(
            16 * MiB, rel=0.05)
        # tracemalloc still traces after hyprof left.
        size0 = tracemalloc.get_traced_memory()[0]
        more = bytearray(4 * MiB)
        assert tracemalloc.get_traced_memory()[0] - size0 >= 4 * MiB
        del more, keep
    finally:
        tracemalloc.stop()


def test_tracemalloc_on_top_stopped_later():
    keep = []
    original = allocators()
    p = profiler(interval=65536)
    p.start()
    tracemalloc.start()
    try:
        kept_buffers(keep)
        p.stop()  # tracemalloc is on top: hyprof's hook stays as a pass-through
        assert _hyprof.alloc_stats()["chained"] is True
        with pytest.raises(hyprof.ProfilerError, match="tracemalloc"):
            profiler().start()
        size0 = tracemalloc.get_traced_memory()[0]
        more = bytearray(2 * MiB)
        assert tracemalloc.get_traced_memory()[0] - size0 >= 2 * MiB
        del more
    finally:
        tracemalloc.stop()
    assert by_function(p.trace(), "alloc_bytes")["kept_buffers"] == pytest.approx(
        16 * MiB, rel=0.05)
    # With tracemalloc gone, the next run takes the hook out and starts cleanly.
    q = profiler()
    with q:
        pass
    assert _hyprof.alloc_stats()["chained"] is False
    assert allocators() == original
    del keep


@pytest.mark.parametrize("pymalloc", ["debug", "malloc", "pymalloc_debug"])
def test_other_allocators_below(pymalloc):
    # PYTHONMALLOC installs CPython's debug hooks or the C library's malloc
    # below hyprof's hook; both keep working, and the estimate holds.
    import subprocess
    code = ("import hyprof\n"
            "def kept(keep):\n"
            "    for _ in range(16):\n"
            "        keep.append(bytearray(1 << 20))\n"
            "keep = []\n"
            "p = hyprof.Profiler(mode='sampling', memory_only=True, memory_interval=65536)\n"
            "with p:\n"
            "    kept(keep)\n"
            "    junk = [bytes(100) for _ in range(10000)]\n"
            "    del junk\n"
            "live = {s[-1].name: b for s, b in p.heap()}\n"
            "print(live.get('kept', 0))\n")
    env = dict(os.environ, PYTHONMALLOC=pymalloc)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout) == pytest.approx(16 * MiB, rel=0.05)


def test_start_stop_while_threads_allocate():
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            junk = [bytes(64) for _ in range(200)]
            del junk

    workers = [threading.Thread(target=churn) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        for _ in range(20):
            p = profiler(interval=4096)
            with p:
                keep = [bytearray(65536) for _ in range(8)]
                p.heap()
            t = p.trace()
            stats = p._engine.stats()
            assert sum(v for _, v in t.stacks("alloc_samples")) == stats["samples"]
            assert by_function(t, "live_bytes").get(
                "test_start_stop_while_threads_allocate", 0) >= 8 * 65536 * 0.5
            del keep
    finally:
        stop.set()
        for w in workers:
            w.join()


def test_a_name_property_that_runs_code_cannot_make_a_batch_resolve_twice():
    # Resolution names a thread from what threading stores (Thread._name),
    # never through the name property: Python code run there lets other
    # threads take the GIL and fill a batch whose pending call then fires
    # in the middle of the resolve, which resolved the batch twice (and read
    # records the other threads had moved).
    class Slow(threading.Thread):
        @property
        def name(self):
            time.sleep(0.05)
            sum(x for x in range(10000))
            return self._name

        @name.setter
        def name(self, value):
            self._name = value

    stop = threading.Event()

    def churn():
        while not stop.is_set():
            junk = [bytes(64) for _ in range(200)]
            del junk

    p = profiler(interval=64)
    with p:
        workers = [Slow(target=churn, name="slow-%d" % i) for i in range(2)]
        for w in workers:
            w.start()
        for _ in range(5):
            time.sleep(0.02)
            p.heap()
        stop.set()
        for w in workers:
            w.join()
    t = p.trace()
    assert sum(v for _, v in t.stacks("alloc_samples")) == p._engine.stats()["samples"]
    assert {"slow-0", "slow-1"} <= {th.name for th in t.threads()}


# ---------------------------------------------------------------- reentrancy

def test_own_allocations_are_not_sampled():
    # Every allocation is sampled at interval 1; heap() resolves and builds
    # Python objects in C, which must not show up as samples of its caller.
    p = profiler(interval=1)
    with p:
        junk = [bytes(50) for _ in range(1000)]
        for _ in range(20):
            p.heap()
    with open(memory.__file__) as f:
        heap_line = next(i for i, line in enumerate(f, 1) if "_hyprof.alloc_heap()" in line)
    for line in p.trace().lines():
        assert not (line.filename == memory.__file__ and line.line == heap_line)
    del junk


def test_long_runs_resolve_in_batches():
    # At interval 1 every allocation is a sample: the hook hands batches of
    # records to the interpreter to resolve, so few stay pending, and none
    # is lost on the way to the trace.
    p = profiler(interval=1)
    with p:
        junk = [str(i) for i in range(20000)]
        pending = p._engine.stats()["pending"]
        taken = p._engine.stats()["samples"]
    assert taken >= 20000
    assert pending < 4096 + 1000
    t = p.trace()
    assert sum(v for _, v in t.stacks("alloc_samples")) == p._engine.stats()["samples"]
    assert t.dropped == {}
    del junk


# ---------------------------------------------------------------- threads, fork

def thread_work(n_mib, keep):
    for _ in range(n_mib):
        keep.append(bytearray(MiB))


def test_threads_are_told_apart():
    keeps = {n: [] for n in (2, 4, 8)}
    threads = [threading.Thread(target=thread_work, args=(n, keeps[n]), name="alloc-%d" % n)
               for n in keeps]
    p = profiler(interval=65536)
    with p:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    t = p.trace()
    names = {th.name: th.id for th in t.threads()}
    for n in keeps:
        tid = names["alloc-%d" % n]
        got = 0
        for frames, value in t.stacks("alloc_bytes", thread=tid):
            if any(f.name == "thread_work" for f in frames):
                got += value
        assert got == pytest.approx(n * MiB, rel=0.05), n
    del keeps


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
# Threads of earlier tests, joined, may not have left the kernel's count yet.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_child_does_not_inherit_a_running_collector():
    before = allocators()
    p = profiler(interval=4096)
    p.start()
    keep = [bytes(100) for _ in range(1000)]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        # The child: no collector, the previous allocators, and it can
        # profile on its own.
        try:
            ok = (not _hyprof.alloc_running() and allocators() == before
                  and _hyprof.alloc_stats()["samples"] == 0)
            q = profiler(interval=65536)
            with q:
                kept = [bytearray(MiB) for _ in range(4)]
            got = by_function(q.trace(), "alloc_bytes").get(
                "test_fork_child_does_not_inherit_a_running_collector.<locals>.<listcomp>",
                by_function(q.trace(), "alloc_bytes").get(
                    "test_fork_child_does_not_inherit_a_running_collector", 0))
            os.write(w, json.dumps([ok, got]).encode())
            del kept
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    more = [bytes(100) for _ in range(1000)]
    p.stop()
    ok, got = json.loads(data)
    assert ok, "the child inherited the collector"
    assert got == pytest.approx(4 * MiB, rel=0.05)
    assert _hyprof.alloc_stats()["samples"] > 0
    del keep, more


# ---------------------------------------------------------------- trace and reports

def kept_run(tmp_path, keep):
    """A run of kept_buffers(keep) at 64 KiB, written to a file: the
    profiler and the file's path."""
    p = profiler(interval=65536)
    with p:
        kept_buffers(keep)
    path = tmp_path / "mem.hyprof"
    p.write(path)
    return p, path


def test_trace_file_carries_bytes(tmp_path):
    keep = []
    p, path = kept_run(tmp_path, keep)
    t = hyprof.load(path, keep_samples=True)
    units = {m.name: (m.unit, m.kind) for m in t.metrics}
    assert units == {"alloc_samples": ("count", "own"), "alloc_bytes": ("bytes", "own"),
                     "live_samples": ("count", "own"), "live_bytes": ("bytes", "own")}
    kinds = {k.name: (k.unit, t.metrics[k.count_metric].name, t.metrics[k.weight_metric].name)
             for k in t.sample_kinds}
    assert kinds == {"alloc": ("bytes", "alloc_samples", "alloc_bytes"),
                     "live": ("bytes", "live_samples", "live_bytes")}
    assert t.header["trigger"] == "alloc"
    samples = t.samples()
    alloc_kind = next(i for i, k in enumerate(t.sample_kinds) if k.name == "alloc")
    total = sum(s.weight for s in samples if s.kind == alloc_kind)
    assert by_function(t, "alloc_bytes")["kept_buffers"] <= total
    assert by_function(t, "alloc_bytes")["kept_buffers"] == pytest.approx(16 * MiB, rel=0.05)
    del keep


def _stacks(trace, metric):
    """A trace's stacks in an order of their own: call paths do not order
    among themselves, their frames' names and places do."""
    return sorted(((tuple((f.name, f.filename, f.lineno) for f in path), v)
                   for path, v in trace.stacks(metric)))


def test_trace_in_memory_is_the_file_read_back(tmp_path):
    # p.trace() copies the profile in memory; the file goes through the
    # writer and the reader. Both give the same trace, samples included.
    keep = []
    p, path = kept_run(tmp_path, keep)
    mem, disk = p.trace(), hyprof.load(path, keep_samples=True)
    assert mem.samples() == disk.samples() and mem.samples()
    assert mem.function_table == disk.function_table
    assert _stacks(mem, "alloc_bytes") == _stacks(disk, "alloc_bytes")
    assert _stacks(mem, "live_bytes") == _stacks(disk, "live_bytes")
    assert mem.dropped == disk.dropped and mem.header == disk.header
    # written again, the in-memory trace folds its samples into its rows, as a
    # trace read from a file does
    mem.write(tmp_path / "again.hyprof")
    again = hyprof.load(tmp_path / "again.hyprof", keep_samples=True)
    assert again.samples() == []
    assert _stacks(again, "alloc_bytes") == _stacks(disk, "alloc_bytes")
    del keep


def test_reports_show_bytes():
    keep = []
    p = profiler(interval=65536)
    with p:
        kept_buffers(keep)
    t = p.trace()
    expected = by_function(t, "alloc_bytes")["kept_buffers"]
    # Folded stacks of the bytes column sum to the estimate.
    folded = t.to_collapsed(metric="alloc_bytes")
    total = sum(int(line.rsplit(" ", 1)[1]) for line in folded.splitlines()
                if "kept_buffers" in line)
    assert total == expected
    # speedscope: the byte columns as profiles in bytes.
    doc = json.loads(t.to_speedscope())
    units = {prof["name"].split()[-1] if " " in prof["name"] else prof["name"]: prof["unit"]
             for prof in doc["profiles"]}
    assert "bytes" in units.values()
    assert all(prof["unit"] == "bytes" for prof in doc["profiles"]
               if "bytes" in prof["name"])
    # pprof: the byte columns in pprof's heap vocabulary, unit "bytes".
    raw = gzip.decompress(t.to_pprof())
    assert b"alloc_space" in raw and b"inuse_space" in raw and b"bytes" in raw
    assert b"alloc_samples" in raw and b"live_samples" in raw
    # The text table by a byte column, in bytes, and its hottest lines.
    table = t.report("text", metric="live_bytes")
    row = next(line for line in table.splitlines() if "kept_buffers" in line)
    assert row.split()[0:2] == ["%.1f" % (expected / MiB), "MiB"]
    assert "(live_bytes, bytes)" in table
    with pytest.raises(ValueError, match="metric='nope'"):
        t.report("text", metric="nope")
    line = max((ln for ln in t.lines() if ln.filename == __file__), key=lambda ln: ln.weight)
    assert line.line == kept_buffers.__code__.co_firstlineno + 2
    # The HTML report carries the columns too.
    html = t.to_html()
    assert "alloc_bytes" in html and "live_bytes" in html
    del keep


# ---------------------------------------------------------------- beside the CPU sampler



def test_beside_cpu_samples_in_one_trace(tmp_path):
    keep = []
    p = hyprof.Profiler(mode="sampling", memory=True, memory_interval=65536,
                        output=str(tmp_path / "both.hyprof"))
    with p:
        kept_buffers(keep)
        freed_buffers()
        busy_for(0.3)
        now = heap_by_function(p.heap())
    assert now["kept_buffers"] == pytest.approx(16 * MiB, rel=0.05)
    t = hyprof.load(tmp_path / "both.hyprof")
    kinds = [k.name for k in t.sample_kinds]
    assert kinds[-2:] == ["alloc", "live"] and len(kinds) >= 3
    alloc = by_function(t, "alloc_bytes")
    live = by_function(t, "live_bytes")
    assert alloc["kept_buffers"] == pytest.approx(16 * MiB, rel=0.05)
    assert alloc["freed_buffers"] == pytest.approx(16 * MiB, rel=0.05)
    assert live["kept_buffers"] == pytest.approx(16 * MiB, rel=0.05)
    assert "freed_buffers" not in live
    # The CPU samples land in the busy function, in the same call tree.
    cpu = by_function(t, t.metrics[t.sample_kinds[0].count_metric].name)
    assert cpu.get("busy_for", 0) > 0
    # The same function is one function in both kinds of samples.
    names = [f.name for f in t.function_table]
    assert len(names) == len({(f.name, f.filename, f.lineno) for f in t.function_table})
    # The sampler's resolver thread allocates, but is not profiled.
    for frames, _ in t.stacks("alloc_samples"):
        assert not any(f.name.endswith("_resolve_loop") for f in frames)
    assert p.heap() and not _hyprof.alloc_running()
    del keep


# ---------------------------------------------------------------- command line

def test_memory_only_refuses_cpu_sampler_options():
    with pytest.raises(hyprof.ProfilerError, match=r"memory_only=True .*event=, clock="):
        hyprof.Profiler(mode="sampling", memory_only=True, event="cpu-clock", clock="wall")


def test_command_line_memory_run(tmp_path, profiler_frames):
    import subprocess
    script = tmp_path / "prog.py"
    script.write_text("def kept(keep):\n"
                      "    for _ in range(16):\n"
                      "        keep.append(bytearray(1 << 20))\n"
                      "keep = []\n"
                      "kept(keep)\n")
    out = tmp_path / "mem.hyprof"
    run = subprocess.run([sys.executable, "-m", "hyprof", "run", "--mode", "sampling",
                          "--memory-only", "--memory-interval", "65536", "-q", "-o", str(out),
                          str(script)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    t = hyprof.load(out)
    assert by_function(t, "live_bytes")["kept"] == pytest.approx(16 * MiB, rel=0.05)
    # The stacks start at the program's <module>: no frame of the CLI's or runpy's.
    assert profiler_frames(t) == []
    report = subprocess.run([sys.executable, "-m", "hyprof", "report", str(out), "--metric",
                             "alloc_bytes"], capture_output=True, text=True, check=False)
    assert report.returncode == 0, report.stderr
    row = next(line for line in report.stdout.splitlines() if " kept " in line)
    # The report shows the estimate in MiB; small allocations made beside the
    # sixteen blocks are sampled too, so the figure is within 5%, as above.
    shown = [float(v) for v in re.findall(r"([0-9.]+) MiB", row)]
    assert shown and shown[0] == pytest.approx(16.0, rel=0.05), row
    bad = subprocess.run([sys.executable, "-m", "hyprof", "run", "--mode", "sampling",
                          "--memory-interval", "0", str(script)], capture_output=True, text=True, check=False)
    assert bad.returncode != 0 and "--memory-interval" in bad.stderr


def test_code_objects_are_not_kept_alive():
    """The resolution cache holds the code objects it met while it runs, at
    most 65,536 of them, and none after stop(): a program that keeps making
    functions is not kept from freeing them."""
    import weakref
    funcs = []
    for i in range(200):
        ns = {}
        exec(f"def made{i}():\n    return [str(j) for j in range(20)]\n", ns)
        funcs.append(ns[f"made{i}"])
    refs = [weakref.ref(f.__code__) for f in funcs]
    p = profiler(interval=1)
    with p:
        for f in funcs:
            f()
    assert any(f.name.startswith("made") for f in p.trace().functions())
    del funcs, f, ns
    gc.collect()
    assert sum(r() is not None for r in refs) == 0
