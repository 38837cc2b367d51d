"""Context-bound deterministic profilers running at the same time: each
``Profiler(context=(var, value))`` holds exactly the calls made while ``var``
holds its value, whatever runs beside it (asyncio tasks, threads, generators
resumed in another context), and profilers start and stop in any order. Every
test runs with each engine the interpreter has."""

import asyncio
import contextvars
import gc
import os
import subprocess
import sys
import textwrap
import threading

import pytest

import hyprof

ENGINES = ["setprofile"] + (["monitoring"] if sys.version_info >= (3, 12) else [])

VAR = contextvars.ContextVar("hyprof_test_request", default=None)


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.param


def calls(trace):
    """Calls per function, by short name (a Python function's last part)."""
    out = {}
    for f in trace.functions():
        name = f.name.rsplit(".", 1)[-1] if f.kind == "python" else f.name
        out[name] = out.get(name, 0) + f.calls
    return out


LEN = "<built-in method builtins.divmod>"


def leaf_a(x):
    return divmod(x, 3)


def leaf_b(x):
    return divmod(x, 3) + divmod(x, 5)


def shared(n):
    return n + 1


def work_a(n):
    for i in range(n):
        leaf_a(i)
        shared(i)


def work_b(n):
    for i in range(n):
        leaf_b(i)
        shared(i)
        shared(i)


def check_a(c, rounds, per_round):
    n = rounds * per_round
    assert c.get("work_a") == rounds
    assert c.get("leaf_a") == n
    assert c.get("shared") == n
    assert c.get(LEN) == n
    assert "work_b" not in c and "leaf_b" not in c


def check_b(c, rounds, per_round):
    n = rounds * per_round
    assert c.get("work_b") == rounds
    assert c.get("leaf_b") == n
    assert c.get("shared") == 2 * n
    assert c.get(LEN) == 2 * n
    assert "work_a" not in c and "leaf_a" not in c


# ------------------------------------------------------------------ tasks


def test_two_tasks_interleaved_exact_counts(engine):
    order = []

    async def request(name, work, rounds, per_round):
        VAR.set(name)
        p = hyprof.Profiler(engine=engine, context=(VAR, name))
        p.start()
        for _ in range(rounds):
            work(per_round)
            order.append(name)
            await asyncio.sleep(0)
        p.stop()
        return p.trace()

    async def main():
        return await asyncio.gather(request("a", work_a, 20, 7),
                                    request("b", work_b, 30, 5))

    ta, tb = asyncio.run(main())
    # The tasks took turns while both profiled.
    assert order[:4] == ["a", "b", "a", "b"]
    check_a(calls(ta), 20, 7)
    check_b(calls(tb), 30, 5)


def test_task_unprofiled_beside_profiled_ones_is_left_out(engine):
    async def profiled(name, work):
        VAR.set(name)
        p = hyprof.Profiler(engine=engine, context=(VAR, name))
        p.start()
        for _ in range(10):
            work(3)
            await asyncio.sleep(0)
        p.stop()
        return p.trace()

    async def unprofiled():
        for _ in range(10):
            work_b(4)
            await asyncio.sleep(0)

    async def main():
        ta, _ = await asyncio.gather(profiled("a", work_a), unprofiled())
        return ta

    check_a(calls(asyncio.run(main())), 10, 3)


# ---------------------------------------------------------------- threads


def test_two_threads_interleaved_exact_counts(engine):
    barrier = threading.Barrier(2)
    traces = {}
    errors = []

    def request(name, work, rounds, per_round):
        try:
            VAR.set(name)
            p = hyprof.Profiler(engine=engine, context=(VAR, name))
            barrier.wait()          # the first start may not run alone
            p.start()
            barrier.wait()          # both running
            for _ in range(rounds):
                work(per_round)
                barrier.wait()      # lockstep: each round overlaps the other's
            p.stop()
            traces[name] = p.trace()
        except BaseException as e:  # reported by the main thread
            errors.append(e)
            barrier.abort()

    ts = [threading.Thread(target=request, args=("a", work_a, 25, 40)),
          threading.Thread(target=request, args=("b", work_b, 25, 30))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    check_a(calls(traces["a"]), 25, 40)
    check_b(calls(traces["b"]), 25, 30)


def test_threads_started_while_running(engine):
    """A thread that runs in a copy of the request's context belongs to the
    request; one started plainly (an empty context) does not."""
    VAR.set("a")
    p = hyprof.Profiler(engine=engine, context=(VAR, "a"))
    q = hyprof.Profiler(engine=engine, context=(VAR, "b"))
    p.start()
    try:
        ctx_b = contextvars.copy_context()
        ctx_b.run(VAR.set, "b")
        ctx_b.run(q.start)
        t1 = threading.Thread(target=contextvars.copy_context().run, args=(work_a, 6))
        t2 = threading.Thread(target=ctx_b.run, args=(work_b, 4))
        t3 = threading.Thread(target=work_b, args=(9,))
        for t in (t1, t2, t3):
            t.start()
        for t in (t1, t2, t3):
            t.join()
        work_a(5)
        ctx_b.run(q.stop)
    finally:
        p.stop()
        VAR.set(None)
    ca, cb = calls(p.trace()), calls(q.trace())
    assert ca["work_a"] == 2 and ca["leaf_a"] == 11 and ca["shared"] == 11
    assert "work_b" not in ca
    assert cb["work_b"] == 1 and cb["leaf_b"] == 4 and cb["shared"] == 8
    assert "work_a" not in cb
    assert p.trace().threads() and len(p.trace().threads()) == 2


# ------------------------------------------------------ generators, order


def gen_steps(n):
    for i in range(n):
        shared(i)
        yield i


def started_in_two_contexts(engine):
    """Two contexts where VAR is "a" and "b", and a profiler bound to each,
    started in it: (ctx_a, ctx_b, pa, pb)."""
    ctx_a, ctx_b = contextvars.copy_context(), contextvars.copy_context()
    ctx_a.run(VAR.set, "a")
    ctx_b.run(VAR.set, "b")
    pa = hyprof.Profiler(engine=engine, context=(VAR, "a"))
    pb = hyprof.Profiler(engine=engine, context=(VAR, "b"))
    ctx_a.run(pa.start)
    ctx_b.run(pb.start)
    return ctx_a, ctx_b, pa, pb


def test_generator_resumed_in_another_context(engine):
    """Each profile holds the resumptions made in its context: the instance is
    one call in each, its body's calls where they ran."""
    ctx_a, ctx_b, pa, pb = started_in_two_contexts(engine)
    g = ctx_a.run(gen_steps, 10)
    ctx_a.run(next, g)
    ctx_a.run(next, g)
    for _ in range(3):
        ctx_b.run(next, g)
    ctx_a.run(next, g)
    ctx_b.run(pb.stop)
    ctx_a.run(pa.stop)
    ca, cb = calls(pa.trace()), calls(pb.trace())
    assert ca["gen_steps"] == 1 and ca["shared"] == 3
    assert cb["gen_steps"] == 1 and cb["shared"] == 3


def test_coroutine_awaited_from_another_task(engine):
    async def inner():
        for i in range(4):
            shared(i)
            await asyncio.sleep(0)

    async def owner(co_box):
        VAR.set("a")
        co_box.append(inner())
        await asyncio.sleep(0)

    async def other(co_box, p):
        VAR.set("b")
        p.start()
        await co_box[0]
        p.stop()

    async def main():
        box = []
        pb = hyprof.Profiler(engine=engine, context=(VAR, "b"))
        await owner(box)
        await asyncio.create_task(other(box, pb))
        return pb.trace()

    cb = calls(asyncio.run(main()))
    assert cb["inner"] == 1 and cb["shared"] == 4


@pytest.mark.parametrize("order", ["ab-ab", "ab-ba", "abc"])
def test_start_stop_in_any_order(engine, order):
    ctxs = {}
    profs = {}
    for name in "abc":
        ctxs[name] = contextvars.copy_context()
        ctxs[name].run(VAR.set, name)
        profs[name] = hyprof.Profiler(engine=engine, context=(VAR, name))
    done = {name: 0 for name in "abc"}

    def run(name, n):
        ctxs[name].run(work_a, n)
        done[name] += n

    if order == "ab-ab":
        steps = ["+a", "+b", "a", "b", "-a", "b", "-b"]
    elif order == "ab-ba":
        steps = ["+a", "+b", "a", "b", "-b", "a", "-a"]
    else:
        steps = ["+a", "a", "+b", "b", "-a", "+c", "c", "b", "-b", "c", "-c"]
    running = set()
    for s in steps:
        if s[0] == "+":
            ctxs[s[1]].run(profs[s[1]].start)
            running.add(s[1])
        elif s[0] == "-":
            ctxs[s[1]].run(profs[s[1]].stop)
            running.discard(s[1])
        else:
            for name in "abc":      # every context works; only the running one counts
                if name != s and name not in running:
                    ctxs[name].run(work_a, 1)
            run(s, 3)
    for name in "abc":
        if not done[name]:
            continue
        c = calls(profs[name].trace())
        assert c["work_a"] == done[name] // 3, (name, c)
        assert c["leaf_a"] == done[name] and c["shared"] == done[name], (name, c)
    # The hooks are gone with the last one: an unbound profiler may start.
    p = hyprof.Profiler(engine=engine)
    p.start()
    p.stop()


def test_stopped_profiler_keeps_its_counts_while_the_other_runs(engine):
    ctx_a, ctx_b, pa, pb = started_in_two_contexts(engine)
    ctx_a.run(work_a, 4)
    ctx_b.run(work_b, 3)
    ctx_a.run(pa.stop)
    ctx_a.run(work_a, 50)
    ctx_b.run(work_b, 2)
    ctx_b.run(pb.stop)
    check_a(calls(pa.trace()), 1, 4)
    cb = calls(pb.trace())
    assert cb["work_b"] == 2 and cb["leaf_b"] == 5 and cb["shared"] == 10
    # Restarted, it accumulates.
    ctx_a.run(pa.start)
    ctx_a.run(work_a, 2)
    ctx_a.run(pa.stop)
    ca = calls(pa.trace())
    assert ca["work_a"] == 2 and ca["leaf_a"] == 6


# ---------------------------------------------------------------- refusals


def test_refusals(engine):
    ctx_a = contextvars.copy_context()
    ctx_a.run(VAR.set, "a")
    pa = hyprof.Profiler(engine=engine, context=(VAR, "a"))
    ctx_a.run(pa.start)
    try:
        # The hook is visible, as any profile function is.
        assert (sys.getprofile() is not None) == (engine == "setprofile")
        with pytest.raises(hyprof.ProfilerError, match="without a context"):
            hyprof.Profiler(engine=engine).start()
        other = contextvars.ContextVar("other")
        with pytest.raises(hyprof.ProfilerError, match="share one ContextVar"):
            hyprof.Profiler(engine=engine, context=(other, "a")).start()
        with pytest.raises(hyprof.ProfilerError, match="same context value"):
            hyprof.Profiler(engine=engine, context=(VAR, "a")).start()
        with pytest.raises(hyprof.ProfilerError, match="already running"):
            pa.start()
        if len(ENGINES) == 2:
            e2 = ENGINES[1 - ENGINES.index(engine)]
            with pytest.raises(hyprof.ProfilerError, match="one engine"):
                hyprof.Profiler(engine=e2, context=(VAR, "b")).start()
    finally:
        ctx_a.run(pa.stop)
    assert sys.getprofile() is None
    p = hyprof.Profiler(engine=engine)
    p.start()
    try:
        with pytest.raises(hyprof.ProfilerError, match="already running"):
            hyprof.Profiler(engine=engine, context=(VAR, "a")).start()
    finally:
        p.stop()


# ------------------------------------------------ lifetimes: gone, fork, exit


def test_context_and_threads_gone_before_stop(engine):
    class Token:
        pass

    tok = Token()
    pa = hyprof.Profiler(engine=engine, context=(VAR, tok))
    pb = hyprof.Profiler(engine=engine, context=(VAR, "b"))
    ctx_b = contextvars.copy_context()
    ctx_b.run(VAR.set, "b")
    ctx_b.run(pb.start)

    def in_thread():
        VAR.set(tok)
        pa.start()
        work_a(5)
        # The thread ends with the profiler running and its context gone.

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    del t, tok
    gc.collect()
    ctx_b.run(work_b, 2)
    pa.stop()
    ctx_b.run(pb.stop)
    check_a(calls(pa.trace()), 1, 5)
    check_b(calls(pb.trace()), 1, 2)


SCRIPT = """
import contextvars, os, sys, threading
import hyprof
VAR = contextvars.ContextVar("v")
def work(n):
    return sum(len("x") for _ in range(n))
ps = []
for name in "ab":
    ctx = contextvars.copy_context()
    ctx.run(VAR.set, name)
    p = hyprof.Profiler(engine=ENGINE, context=(VAR, name))
    ctx.run(p.start)
    ctx.run(work, 100)
    ps.append((ctx, p))
def bg(ctx):
    ctx.run(work, 10**5)
t = threading.Thread(target=bg, args=(ps[0][0],))
t.start()
if MODE == "fork":
    pid = os.fork()
    if pid == 0:
        ps[1][0].run(work, 50)
        ps[1][0].run(ps[1][1].stop)
        c = {f.name: f.calls for f in ps[1][1].trace().functions()}
        os._exit(0 if c.get("test_context_script.work", c.get("work")) == 2 else 3)
    _, status = os.waitpid(pid, 0)
    t.join()
    sys.exit(os.waitstatus_to_exitcode(status))
# exit: the profilers still run, a thread ends under them
t.join()
"""


@pytest.mark.parametrize("mode", ["exit"] + (["fork"] if hasattr(os, "fork") else []))
def test_fork_and_exit_while_running(engine, mode, tmp_path):
    script = tmp_path / "test_context_script.py"
    script.write_text(f"ENGINE = {engine!r}\nMODE = {mode!r}\n" + textwrap.dedent(SCRIPT))
    r = subprocess.run([sys.executable, "-W", "ignore", str(script)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
