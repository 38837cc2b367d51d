"""Lock contention (docs/locks.md): while a profiler asks for it,
threading.Lock and threading.RLock are hyprof's wrappers, which behave as
the originals; the deterministic mode records each contended wait as a call
of "<lock created at FILE:LINE>" under the acquirer, and the sampling mode
samples waits and holds by their time, weighted so that they add up. The
programs here contend with known times: a holder keeps the lock for a set
time, the other thread's waits are measured by its own clock."""

import concurrent.futures
import os
import queue
import sys
import threading
import time

import pytest

import hyprof
from test_render_support import every_format, go_pprof_top, run_hyprof, shows

ENGINES = ["setprofile"] + (["monitoring"] if sys.version_info >= (3, 12) else [])
HOLD = 0.01   # s each holder keeps the lock
ROUNDS = 12


def site_names(trace):
    return {f.name for f in trace.functions() if f.name.startswith("<lock created at ")}


def site_of(trace, line):
    """The creation site of contend()'s lock (its Barrier's is another)."""
    [site] = [s for s in site_names(trace) if s.endswith(f"test_locks.py:{line}>")]
    return site


def contend(make_lock=None):
    """Two threads take turns on one lock, each holding it HOLD seconds a
    round; returns the lock's line, and the waits and holds each measured
    with its own clock."""
    line = sys._getframe().f_lineno + 1
    lock = threading.Lock() if make_lock is None else make_lock()
    waits, holds = [], []
    start = threading.Barrier(2)

    def worker():
        start.wait()
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            with lock:
                t1 = time.perf_counter()
                time.sleep(HOLD)
                t2 = time.perf_counter()
            waits.append(t1 - t0)
            holds.append(t2 - t1)
            time.sleep(0.0005)  # a gap, so that the other one gets it

    threads = [threading.Thread(target=worker, name=f"worker-{i}") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return line, sum(waits), sum(holds), sum(1 for w in waits if w > HOLD / 4)


def test_the_wrappers_come_and_go():
    before_lock, before_rlock = threading.Lock, threading.RLock
    old = threading.Lock()
    p = hyprof.Profiler(locks=True)
    with p:
        assert threading.Lock is hyprof._hyprof.Lock
        assert threading.RLock is hyprof._hyprof.RLock
        lock, rlock = threading.Lock(), threading.RLock()
        with old:    # made before: the original type, still working
            pass
    assert threading.Lock is before_lock and threading.RLock is before_rlock
    # Made while it ran: still locks, after it stopped.
    assert lock.acquire() and lock.locked() and not lock.acquire(False)
    lock.release()
    with rlock, rlock:
        assert rlock._is_owned()
    assert not rlock._is_owned()
    assert "lock created at" in repr(lock)
    with pytest.raises(RuntimeError):
        lock.release()


@pytest.mark.parametrize("engine", ENGINES)
def test_deterministic_counts_contended_waits_exactly(engine):
    p = hyprof.Profiler(engine=engine, locks=True)
    with p:
        line, wait, hold, contended = contend()
    t = p.trace()
    name = f"<lock created at {os.path.relpath(__file__)}:{line}>" \
        if os.path.abspath(__file__).startswith(os.getcwd() + os.sep) \
        else f"<lock created at {__file__}:{line}>"
    assert name in site_names(t)
    [f] = [f for f in t.functions() if f.name == name]
    assert f.kind == "special"
    # Every wait the program saw, and no uncontended acquisition beyond a few
    # that found the lock taken for an instant.
    assert contended <= f.calls <= 2 * ROUNDS
    # Its time is the time the program waited in acquire(): between the
    # program's clock read after the acquisition and its wait total.
    assert 0.9 * wait - 0.002 <= f.wall_cum <= wait + 0.001, (f.wall_cum, wait)
    callers = {e.caller.name for e in t.edges() if e.callee.name == name}
    assert callers <= {"contend.<locals>.worker", "<method '__enter__' of 'hyprof._hyprof.Lock' "
                       "objects>"}


@pytest.mark.parametrize("engine", ENGINES)
def test_deterministic_times_every_hold_exactly(engine):
    p = hyprof.Profiler(engine=engine, locks=True)
    with p:
        line, wait, hold, contended = contend()
    t = p.trace()
    site = site_of(t, line)
    held = site.replace("<lock created at ", "<lock held, created at ", 1)
    [f] = [f for f in t.functions() if f.name == held]
    assert f.kind == "special"
    # Every hold is a call, the uncontended ones too: each worker's rounds.
    assert f.calls == 2 * ROUNDS
    # From the acquisition to the release, around what the program timed
    # inside the with block; no own time (the holder's calls have it).
    assert hold <= f.wall_cum <= hold + 0.002 * 2 * ROUNDS, (f.wall_cum, hold)
    assert f.wall_own == 0
    # Recorded under the code that released the lock.
    callers = {e.caller.name for e in t.edges() if e.callee.name == held}
    assert callers <= {"contend.<locals>.worker",
                       "<method '__exit__' of 'hyprof._hyprof.Lock' objects>"}, callers
    # The waits are still their own function.
    [w] = [f for f in t.functions() if f.name == site]
    assert contended <= w.calls <= 2 * ROUNDS


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_sampling_weighs_waits_and_holds_to_their_totals(clock):
    p = hyprof.Profiler(mode="sampling", clock=clock, locks=True, lock_interval=0.002)
    with p:
        line, wait, hold, _ = contend()
    t = p.trace()
    kinds = {k.name for k in t.sample_kinds}
    assert {"lock-wait", "lock-hold"} <= kinds
    site = site_of(t, line)
    totals = {}
    for metric in ("lock_wait_ns", "lock_hold_ns"):
        for stack, w in t.stacks(metric):
            assert stack[-1].name in site_names(t), stack  # a creation site on top
            if stack[-1].name != site:
                continue  # the Barrier's

            assert any(f.name == "contend.<locals>.worker" for f in stack)
            totals[metric] = totals.get(metric, 0) + w * 1e-9
    # Waits of ~10 ms against a 2 ms interval: nearly all sampled, weights
    # add up to the time within the draws' spread.
    assert totals["lock_wait_ns"] == pytest.approx(wait, rel=0.2, abs=0.005)
    assert totals["lock_hold_ns"] == pytest.approx(hold, rel=0.2, abs=0.005)


def test_short_holds_are_sampled_without_bias():
    """Holds of a few microseconds, far below the interval: few are sampled,
    each weighted up, and the weights still add up to the total."""
    lock = None
    p = hyprof.Profiler(mode="sampling", locks=True, lock_interval=0.0002)
    with p:
        lock = threading.Lock()
        held = 0.0
        for _ in range(20000):
            with lock:
                t0 = time.perf_counter()
                for _ in range(20):
                    pass
                held += time.perf_counter() - t0
    t = p.trace()
    total = sum(w for _, w in t.stacks("lock_hold_ns")) * 1e-9
    n = sum(c for _, c in t.stacks("lock_hold_samples"))
    assert 20 <= n < 20000 / 2  # a share, not all
    # The program's own timing is inside each hold: the hold is longer.
    assert held * 0.8 <= total <= held * 3 + 0.01, (total, held)


def test_rlock_condition_queue_semaphore_and_futures_work_and_are_seen():
    p = hyprof.Profiler(mode="sampling", locks=True, lock_interval=0.0001)
    with p:
        q = queue.Queue(maxsize=1)
        done = []

        def consumer():
            while (x := q.get()) is not None:
                time.sleep(0.001)
                done.append(x)

        c = threading.Thread(target=consumer)
        c.start()
        for i in range(50):
            q.put(i)
        q.put(None)
        c.join()
        sem = threading.Semaphore(1)
        r = threading.RLock()
        cond = threading.Condition(r)
        with r, r:
            with cond:
                cond.notify_all()
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            assert list(ex.map(lambda x: x * 2, range(20))) == list(range(0, 40, 2))
        with sem:
            pass
    assert done == list(range(50))
    t = p.trace()
    sites = site_names(t)
    # queue.Queue's lock is named by the line that made the queue, not
    # inside queue.py.
    assert any(os.path.basename(__file__) in s for s in sites), sites
    assert not any("queue.py" in s or "threading.py" in s for s in sites), sites


def test_timeouts_and_non_blocking_calls_keep_their_meaning():
    p = hyprof.Profiler(locks=True)
    with p:
        lock = threading.Lock()
        lock.acquire()
        t0 = time.perf_counter()
        assert lock.acquire(timeout=0.05) is False
        assert time.perf_counter() - t0 >= 0.045
        assert lock.acquire(False) is False
        assert lock.acquire(blocking=False) is False
        with pytest.raises(ValueError):
            lock.acquire(False, 1)
        lock.release()
        # Arguments the original refuses are refused whether the lock is free
        # or not.
        with pytest.raises(ValueError):
            lock.acquire(timeout=-5)
        with pytest.raises(TypeError):
            lock.acquire(foo=1)
        with pytest.raises(TypeError):
            lock.acquire(True, -1, 5)
        assert not lock.locked()
    t = p.trace()
    [f] = [f for f in t.functions() if f.name.startswith("<lock created at ")]
    assert f.calls == 1 and f.wall_cum >= 0.045  # the timed wait only


@pytest.mark.parametrize("mode", ["deterministic", "sampling"])
def test_every_format_shows_lock_samples(tmp_path, mode):
    opts = {"lock_interval": 0.001} if mode == "sampling" else {}
    p = hyprof.Profiler(mode=mode, locks=True, **opts)
    with p:
        line = contend()[0]
    t = p.trace()
    path = tmp_path / "locks.hyprof"
    t.write(path)
    t = hyprof.load(path)
    site = site_of(t, line)
    metric = "lock_wait_ns" if mode == "sampling" else None
    for fmt, out in every_format(t, metric).items():
        assert shows(out, site), fmt
    if mode == "sampling":
        assert site in go_pprof_top(t, tmp_path, "lock-wait")


def test_bad_options_are_refused():
    with pytest.raises(hyprof.ProfilerError, match="locks="):
        hyprof.Profiler(locks="yes")
    with pytest.raises(hyprof.ProfilerError, match="lock_interval"):
        hyprof.Profiler(mode="sampling", locks=True, lock_interval=0)
    with pytest.raises(hyprof.ProfilerError, match="locks="):
        hyprof.Profiler(mode="sampling", locks=1)


LOCK_PROGRAM = """
import threading, time
def work(lock):
    for _ in range(20):
        with lock:
            time.sleep(0.002)
lock = threading.Lock()
ts = [threading.Thread(target=work, args=(lock,)) for _ in range(2)]
for t in ts: t.start()
for t in ts: t.join()
"""


def test_the_command_line_profiles_locks_in_both_modes(tmp_path):
    prog = tmp_path / "app.py"
    prog.write_text(LOCK_PROGRAM)
    for mode, extra in (("deterministic", []), ("sampling", ["--lock-interval", "0.001"])):
        out = tmp_path / f"{mode}.hyprof"
        run_hyprof("run", "--mode", mode, "--locks", *extra, "-q", "-o", out, prog, cwd=tmp_path)
        t = hyprof.load(out)
        assert "<lock created at app.py:7>" in site_names(t), site_names(t)
        if mode == "sampling":
            text = run_hyprof("report", out, "--metric", "lock_wait_ns", "--format", "tree").stdout
            assert "<lock created at app.py:7>" in text
    bad = run_hyprof("run", "--mode", "sampling", "--lock-interval", "0.1", prog, check=False)
    assert bad.returncode == 2 and "--lock-interval needs --locks" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_only_a_profiler_that_asked_records_lock_waits():
    import contextvars
    var = contextvars.ContextVar("hyprof_test_locks")
    a = hyprof.Profiler(context=(var, "a"), locks=True)
    b = hyprof.Profiler(context=(var, "b"))

    def contend_in(value):
        # Each thread enters its request's context itself: a new thread
        # does not inherit its starter's.
        lock = threading.Lock()

        def worker():
            var.set(value)
            for _ in range(5):
                with lock:
                    time.sleep(0.002)

        ts = [threading.Thread(target=worker) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    with a, b:
        contend_in("a")
        contend_in("b")
    assert site_names(a.trace()) and not site_names(b.trace())


# ---------------------------------------------------------------- asyncio.Lock

def contend_async():
    """Two tasks take turns on one asyncio.Lock, each holding it HOLD seconds
    a round (awaiting, so the other task runs and queues); returns the lock's
    line, and the waits and holds each task measured with its own clock."""
    import asyncio

    line = sys._getframe().f_lineno + 4
    waits, holds = [], []

    async def main():
        lock = asyncio.Lock()
        cond = asyncio.Condition()  # its own lock: asyncio.Lock() inside asyncio

        async def worker():
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                async with lock:
                    t1 = time.perf_counter()
                    await asyncio.sleep(HOLD)
                    t2 = time.perf_counter()
                waits.append(t1 - t0)
                holds.append(t2 - t1)

        async with cond:
            cond.notify_all()
        await asyncio.gather(worker(), worker())
        return type(lock), type(cond._lock)

    types = asyncio.run(main())
    return line, sum(waits), sum(holds), sum(1 for w in waits if w > HOLD / 4), types


@pytest.mark.parametrize("engine", ENGINES)
def test_deterministic_records_asyncio_lock_waits_under_the_awaiting_call(engine):
    import asyncio

    original = asyncio.Lock
    p = hyprof.Profiler(engine=engine, locks=True)
    with p:
        line, wait, hold, contended, types = contend_async()
    assert asyncio.Lock is original and asyncio.locks.Lock is original
    assert types[0] is types[1] and types[0] is not original and issubclass(types[0], original)
    t = p.trace()
    site = site_of(t, line)
    [f] = [f for f in t.functions() if f.name == site]
    # Each task waits for the other's hold nearly every round.
    assert contended <= f.calls <= 2 * ROUNDS
    assert 0.9 * wait - 0.002 <= f.wall_cum <= wait + 0.002, (f.wall_cum, wait)
    assert f.cpu_cum == 0 and f.wall_own == 0  # the thread ran other tasks meanwhile
    # Under asyncio's acquire, whose cumulative time (a coroutine's) spans the
    # wait; no frame of hyprof's subclass, nor its recorders, is left.
    callers = {e.caller.name for e in t.edges() if e.callee.name == site}
    assert callers == {"Lock.acquire"}
    [acq] = [e for e in t.edges() if e.callee.name == "Lock.acquire"
             and e.caller.name == "_ContextManagerMixin.__aenter__"]
    assert f.wall_cum <= acq.wall_cum * 1.01
    # Every hold a call, timed from the task's taking the lock to its release.
    held = site.replace("<lock created at ", "<lock held, created at ", 1)
    [h] = [f for f in t.functions() if f.name == held]
    assert h.calls == 2 * ROUNDS and h.wall_own == 0
    assert hold <= h.wall_cum <= hold + 0.002 * 2 * ROUNDS, (h.wall_cum, hold)
    assert not [x for x in t.functions()
                if "_asyncio_locks" in x.filename or x.name.startswith("<built-in method _lock_")]


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_sampling_weighs_asyncio_lock_waits_and_holds(clock):
    p = hyprof.Profiler(mode="sampling", clock=clock, locks=True, lock_interval=0.002)
    with p:
        line, wait, hold, _, _ = contend_async()
    t = p.trace()
    site = site_of(t, line)
    totals = {}
    for metric in ("lock_wait_ns", "lock_hold_ns"):
        for stack, w in t.stacks(metric):
            if stack[-1].name != site:
                continue
            assert not [f for f in stack if "_asyncio_locks" in f.filename], stack
            assert any(f.name == "contend_async.<locals>.main.<locals>.worker" for f in stack)
            totals[metric] = totals.get(metric, 0) + w * 1e-9
    assert totals["lock_wait_ns"] == pytest.approx(wait, rel=0.2, abs=0.005)
    assert totals["lock_hold_ns"] == pytest.approx(hold, rel=0.2, abs=0.005)


def test_asyncio_locks_made_while_profiling_keep_working_after_stop():
    import asyncio

    async def use(lock):
        async with lock:
            assert lock.locked()
        assert not lock.locked()
        # Cancelled waiters and a timeout keep asyncio's meaning.
        await lock.acquire()
        waiter = asyncio.ensure_future(lock.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        lock.release()
        with pytest.raises(RuntimeError):
            lock.release()
        return True

    async def scenario():
        before = asyncio.Lock()
        with hyprof.Profiler(locks=True):
            made = asyncio.Lock()
            assert await use(made) and await use(before)
        assert await use(made)  # the subclass, unprofiled
        return made

    made = asyncio.run(scenario())
    assert type(made) is not asyncio.Lock and "unlocked" in repr(made)


def test_threading_locks_are_profiled_where_asyncio_cannot_be_imported(tmp_path):
    import subprocess

    # An interpreter whose asyncio does not import (a build without select
    # or _socket) still profiles threading's locks.
    code = ("import sys; sys.modules['asyncio'] = None\n"
            "import threading, hyprof\n"
            "with hyprof.Profiler(locks=True):\n"
            "    assert threading.Lock is hyprof._hyprof.Lock\n"
            "    with threading.Lock():\n"
            "        pass\n"
            "print('ok')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
