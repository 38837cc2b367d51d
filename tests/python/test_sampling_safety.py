"""The sampling mode never crashes the program it samples: threads coming and
going, deep recursion, generators, exceptions, code objects dying constantly,
fork, foreign signal handlers, restarts, stop from another thread, and no
EINTR in blocking calls. Each scenario runs in its own interpreter, so a crash
fails the test instead of killing the suite."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import hyprof
import workloads

PRELUDE = workloads.PRELUDE + textwrap.dedent("""\
    import json, os, signal, sys, threading, time
    import hyprof

    def names(trace):
        return {f.name.rsplit(".", 1)[-1]: f for f in trace.functions()}
    """)


# A real crash ends the process with SIGSEGV; in a sanitized build the
# sanitizer's handler reports it first and then aborts.
CRASH_SIGNAL = signal.SIGABRT if os.environ.get("HYP_UNDER_SANITIZERS") else signal.SIGSEGV


def run_script(body, timeout=120):
    """Runs PRELUDE + body in a fresh interpreter; returns the JSON object it
    prints last. Fails on a crash (signal), a non-zero exit or a timeout."""
    src = PRELUDE + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))
    assert proc.returncode == 0, "exit %d\n--- stdout\n%s\n--- stderr\n%s" % (
        proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_threads_starting_and_ending_while_sampling():
    r = run_script("""
        p = hyprof.Profiler(mode="sampling", frequency=2000)
        p.start()
        done = []
        def short(i):
            cpu_for(0.01 + (i % 5) * 0.005)
            done.append(i)
        for wave in range(10):
            ts = [threading.Thread(target=short, args=(i,), name="w%d-%d" % (wave, i))
                  for i in range(8)]
            for t in ts: t.start()
            for t in ts: t.join()
        p.stop()
        t = p.trace()
        workers = [th for th in t.threads() if th.name.startswith("w")]
        sampled_workers = sum(1 for th in workers
                              if sum(f.own_samples for f in t.functions(thread=th.id)) > 0)
        print(json.dumps({"done": len(done), "workers": len(workers),
                          "sampled": sampled_workers, "stats": p._engine.stats}))
    """)
    assert r["done"] == 80
    # A thread is in the trace from its first sample, under its own name;
    # nearly all of these 10-30 ms threads are caught running at 2 kHz.
    assert r["workers"] == r["sampled"]
    assert r["sampled"] >= 72
    assert r["stats"]["lost"]["ring-full"] == 0


def test_deep_recursion_generators_and_exceptions():
    r = run_script("""
        sys.setrecursionlimit(20000)
        def deep(n):
            return spin(3000) if n == 0 else deep(n - 1)
        def gen(n):
            for i in range(n):
                yield spin(200)
        def raiser(n):
            try:
                spin(300)
                raise ValueError(n)
            except ValueError:
                return spin(100)
        p = hyprof.Profiler(mode="sampling", frequency=3000, depth=64)
        with p:
            end = time.thread_time() + 1.0
            while time.thread_time() < end:
                deep(3000)
                sum(gen(30))
                for i in range(20):
                    raiser(i)
        f = names(p.trace())
        print(json.dumps({k: f[k].cum_samples for k in ("deep", "gen", "raiser", "[truncated]")}))
    """)
    assert r["deep"] > 100 and r["gen"] > 10 and r["raiser"] > 10
    assert r["[truncated]"] >= r["deep"] * 0.9  # 3000 frames deep, kept 64


def test_code_objects_dying_constantly_never_get_a_wrong_name(tmp_path):
    r = run_script("""
        import importlib, gc
        sys.path.insert(0, %r)
        path = os.path.join(%r, "hotmod.py")
        def write_module(gen):
            with open(path, "w") as f:
                f.write("def hot_%%d():\\n    s = 0\\n    for i in range(3000):\\n"
                        "        s += i\\n    return s\\n" %% gen)
        write_module(0)
        import hotmod
        p = hyprof.Profiler(mode="sampling", frequency=5000, flush_interval=0.02)
        p.start()
        end = time.time() + 2.0
        i = 0
        while time.time() < end:
            i += 1
            # exec: a new code object named after its own first line.
            ns = {}
            exec(compile("\\n" * (i %% 50) + "def ex_%%d():\\n    return sum(range(2000))\\n"
                         %% (i %% 50), "<gen>", "exec"), ns)
            ns["ex_%%d" %% (i %% 50)]()
            (lambda k: sum(range(k)))(1500)
            if i %% 40 == 0:
                write_module(i)
                importlib.invalidate_caches()
                sys.modules.pop("hotmod", None)
                hotmod = importlib.import_module("hotmod")
                gc.collect()
            getattr(hotmod, [n for n in dir(hotmod) if n.startswith("hot_")][0])()
        p.stop()
        t = p.trace()
        bad = []
        for f in t.functions():
            short = f.name.rsplit(".", 1)[-1]
            # ex_K is defined on line K + 1 of its <gen> source.
            if short.startswith("ex_") and f.filename == "<gen>" and f.lineno != int(short[3:]) + 1:
                bad.append((f.name, f.lineno))
            if f.filename == "<gen>" and not short.startswith("ex_") and short != "<module>":
                bad.append((f.name, f.filename))
        ex = sum(f.own_samples for f in t.functions() if f.name.startswith("ex_"))
        print(json.dumps({"bad": bad, "ex_samples": ex, "loops": i, "stats": p._engine.stats}))
    """ % (str(tmp_path), str(tmp_path)))
    assert r["bad"] == []
    assert r["loops"] > 200
    assert r["ex_samples"] > 50
    # Code objects really died while sampled (3.12+ hears of every death,
    # 3.11 of those resolved at least once).
    assert r["stats"]["code_deaths"] > 100


def test_fork_child_runs_without_the_sampler_parent_keeps_sampling():
    r = run_script("""
        p = hyprof.Profiler(mode="sampling", frequency=1000)
        p.start()
        cpu_for(0.2)
        time.sleep(0.25)  # the resolver's pass counts what the rings hold
        before = p._engine.stats["samples"]
        pid = os.fork()
        if pid == 0:
            # The child: no session, no signals; it works and exits normally.
            ok = not p._engine._sampler.stats()["running"] and not p.running
            cpu_for(0.3)
            p.stop()  # harmless here
            try:
                p.trace()
                ok = False
            except hyprof.ProfilerError:
                pass
            q = hyprof.Profiler(mode="sampling", frequency=1000)  # the child may profile anew
            with q:
                cpu_for(0.2)
            ok = ok and names(q.trace())["spin"].own_samples > 100
            os._exit(0 if ok else 3)
        cpu_for(0.3)
        _, status = os.waitpid(pid, 0)
        cpu_for(0.2)
        p.stop()
        total = sum(f.own_samples for f in p.trace().functions())
        print(json.dumps({"status": status, "before": before, "total": total}))
    """)
    assert r["status"] == 0
    assert r["before"] >= 100
    assert r["total"] >= 550  # 0.7 s of the parent's CPU at 1 kHz


def test_foreign_handler_on_the_signal_is_not_clobbered():
    r = run_script("""
        hits = []
        signal.signal(signal.SIGPROF, lambda s, f: hits.append(s))
        try:
            hyprof.Profiler(mode="sampling").start()
            refused = ""
        except hyprof.ProfilerError as e:
            refused = str(e)
        # Another signal works, and the user's handler still gets SIGPROF.
        p = hyprof.Profiler(mode="sampling", frequency=1000, signal=signal.SIGRTMIN + 2)
        with p:
            cpu_for(0.2)
            os.kill(os.getpid(), signal.SIGPROF)
            cpu_for(0.01)
        print(json.dumps({"refused": refused, "hits": len(hits),
                          "samples": names(p.trace())["spin"].own_samples,
                          "signal": p.trace().header["signal"]}))
    """)
    assert "already has a handler" in r["refused"] and "signal=" in r["refused"]
    assert r["hits"] == 1
    assert r["samples"] > 100
    assert r["signal"] == signal.SIGRTMIN + 2


def test_start_stop_many_times_and_stop_from_another_thread():
    r = run_script("""
        counts = []
        for i in range(30):
            p = hyprof.Profiler(mode="sampling", frequency=2000)
            p.start()
            cpu_for(0.02)
            p.stop()
            counts.append(sum(f.own_samples for f in p.trace().functions()))
        p = hyprof.Profiler(mode="sampling", frequency=1000)
        p.start()
        used = [0.0]
        def stop_later():
            # After 0.3 s of the main thread's CPU (a busy machine gives it
            # less than the wall time).
            while used[0] < 0.3:
                time.sleep(0.005)
            p.stop()
        stopper = threading.Thread(target=stop_later)
        stopper.start()
        t0 = time.thread_time()
        while used[0] < 0.6:
            spin(1000)
            used[0] = time.thread_time() - t0
        stopper.join()
        t = p.trace()
        print(json.dumps({"counts": counts, "running": p.running,
                          "after": sum(f.own_samples for f in t.functions())}))
    """)
    assert len(r["counts"]) == 30 and min(r["counts"]) >= 10
    assert r["running"] is False
    assert 200 <= r["after"] <= 450  # about 0.3 s of CPU sampled, then stopped


def test_blocking_calls_are_not_interrupted():
    """Blocking calls that do not restart after a signal (poll, nanosleep)
    return normally: CPU events do not fire in the kernel, and the wall
    clock reads waiting threads from its own thread instead of signalling
    them."""
    r = run_script("""
        import ctypes, ctypes.util
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        def waiter(out):
            # ctypes releases the GIL; poll(NULL, 0, 400) must time out (0),
            # never fail with EINTR (-1).
            out.append((libc.poll(None, 0, 400), ctypes.get_errno()))
        results = {}
        for clock in ("cpu", "wall"):
            out = []
            p = hyprof.Profiler(mode="sampling", frequency=1000, clock=clock)
            with p:
                th = threading.Thread(target=waiter, args=(out,), name="waiter")
                th.start()
                waiter(out)
                cpu_for(0.1)
                th.join()
            f = names(p.trace())
            results[clock] = {"out": out,
                              "waiter": f["waiter"].cum_samples if "waiter" in f else 0,
                              "waited": f["waiter"].cum_weight if "waiter" in f else 0}
        print(json.dumps(results))
    """)
    for clock in ("cpu", "wall"):
        assert r[clock]["out"] == [[0, 0], [0, 0]], (clock, r[clock])
    # The wall clock sees both threads waiting in poll: 2 x 0.4 s of waiting
    # (in weight: a busy machine may delay the sampler's ticks, and merge
    # those that fall due together, but not lose time).
    assert r["wall"]["waiter"] >= 2
    assert 0.6e9 <= r["wall"]["waited"] <= 1.0e9
    assert r["cpu"]["waiter"] <= 20  # the CPU clock does not sample waiting


def test_sampling_in_process_while_other_threads_block_on_locks():
    lock = threading.Lock()
    lock.acquire()
    p = hyprof.Profiler(mode="sampling", clock="wall", frequency=500)

    def blocked():
        with lock:
            pass

    with p:
        th = threading.Thread(target=blocked, name="blocked")
        th.start()
        time.sleep(0.4)
        lock.release()
        th.join()
    t = p.trace()
    b = [x for x in t.threads() if x.name == "blocked"][0]
    fs = {f.name.rsplit(".", 1)[-1]: f for f in t.functions(thread=b.id)}
    # Waiting on the lock is seen, in the function that waits, for its 0.4 s
    # (by weight: a loaded machine delivers fewer, heavier ticks).
    assert fs["blocked"].cum_samples >= 1
    assert fs["blocked"].cum_weight >= 0.25e9


def test_a_frame_chain_into_freed_memory_is_survived():
    """The interpreter frees a frame (and may unmap its stack chunk) a few
    instructions before it unlinks it; a sample landing there reads unmapped
    memory. The walk's fault guard catches it, and any other fault still
    reaches the handler installed before (here faulthandler's)."""
    r = run_script("""
        import faulthandler
        faulthandler.enable()
        from hyprof import _hyprof
        results = [_hyprof._walk_guard_check() for _ in range(3)]
        cpu_for(0.01)
        print(json.dumps({"results": results}))
    """)
    assert r["results"] == [-1, -1, -1]
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent("""
        import ctypes, faulthandler
        faulthandler.enable()
        from hyprof import _hyprof
        _hyprof._walk_guard_check()
        ctypes.string_at(0)  # a real crash: faulthandler must report it
    """)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -CRASH_SIGNAL
    assert "Fatal Python error: Segmentation fault" in proc.stderr


def test_a_crash_after_sampling_still_reaches_faulthandler():
    """faulthandler enabled after the guard (its previous handler is then
    hyprof's): a real crash is reported once and ends the process."""
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent("""
        import ctypes, faulthandler
        p = hyprof.Profiler(mode="sampling", frequency=1000)
        with p:
            cpu_for(0.05)
        faulthandler.enable()
        with hyprof.Profiler(mode="sampling", frequency=1000):
            cpu_for(0.05)
        ctypes.string_at(0)
    """)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -CRASH_SIGNAL
    assert proc.stderr.count("Fatal Python error: Segmentation fault") == 1
