"""Stress scenarios for the sampling mode beyond test_sampling_safety.py: C
threads calling into Python, asyncio and greenlets, a hundred threads at the
highest frequency, 50 000 frames, exec, multiprocessing, the user's own
timers and signals, exiting without stop(), other profile hooks and the
deterministic mode, code churn across threads, sub-interpreters, C code
without the GIL, and a long run's memory. Each scenario runs in its own
interpreter (a crash fails the test, not the suite), and checks what the
program did and where its samples went, never how fast a busy machine ran it."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from test_sampling_safety import PRELUDE, run_script

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the sampling mode runs on Linux")


def _has(module):
    return subprocess.run([sys.executable, "-c", "import " + module],
                          capture_output=True).returncode == 0


def test_c_threads_calling_python_and_raw_threads():
    """Threads made in C (pthread_create through ctypes) get a thread state
    from PyGILState_Ensure for the callback and lose it at its return; _thread
    threads never pass through threading. The wall sampler once read such a
    thread state after it was freed and crashed."""
    r = run_script("""
        import ctypes, ctypes.util, _thread
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        CB = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)
        libc.pthread_create.argtypes = [ctypes.POINTER(ctypes.c_ulong), ctypes.c_void_p, CB,
                                        ctypes.c_void_p]
        libc.pthread_join.argtypes = [ctypes.c_ulong, ctypes.c_void_p]
        def native_short(arg):
            spin(5000)
        def native_long(arg):
            cpu_for(0.15)
        short_cb, long_cb = CB(native_short), CB(native_long)
        def c_thread(cb):
            t = ctypes.c_ulong()
            assert libc.pthread_create(ctypes.byref(t), None, cb, None) == 0
            return t.value
        done = []
        def raw(i):
            spin(20000)
            done.append(i)
        out = {}
        for clock in ("cpu", "wall"):
            p = hyprof.Profiler(mode="sampling", frequency=5000, clock=clock,
                                flush_interval=0.01)
            p.start()
            longs = [c_thread(long_cb) for _ in range(2)]
            started = 0
            for wave in range(60):
                tids = [c_thread(short_cb) for _ in range(4)]
                for i in range(2):
                    _thread.start_new_thread(raw, (i,))
                started += 2
                spin(3000)
                for t in tids:
                    libc.pthread_join(t, None)
            for t in longs:
                libc.pthread_join(t, None)
            while len(done) < started:
                time.sleep(0.01)
            done.clear()
            p.stop()
            t = p.trace()
            f = names(t)
            out[clock] = {"long": f["native_long"].cum_samples if "native_long" in f else 0,
                          "bad": [x.name for x in t.functions()
                                  if x.filename == "<string>" and x.name.rsplit(".", 1)[-1]
                                  not in ("spin", "cpu_for", "native_short", "native_long",
                                          "raw", "c_thread", "<module>", "<listcomp>")],
                          "stats": p._engine.stats}
        print(json.dumps(out))
    """)
    for clock in ("cpu", "wall"):
        assert r[clock]["bad"] == [], (clock, r[clock])
        # 2 x 0.15 s of CPU in C threads found by the resolver's enumeration.
        assert r[clock]["long"] >= 100, (clock, r[clock])
        assert r[clock]["stats"]["lost"]["ring-full"] == 0


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_asyncio_with_thousands_of_tasks(clock):
    r = run_script("""
        import asyncio
        async def crunch(i):
            for k in range(3):
                spin(300)
                await asyncio.sleep(0)
            return i
        async def waiter(i):
            await asyncio.sleep(0.2 + (i %% 10) * 0.01)
            return i
        async def main():
            total = 0
            for wave in range(4):
                res = await asyncio.gather(*[crunch(i) for i in range(1500)],
                                           *[waiter(i) for i in range(1500)])
                total += len(res)
            return total
        p = hyprof.Profiler(mode="sampling", frequency=5000, clock=%r)
        with p:
            total = asyncio.run(main())
        f = names(p.trace())
        print(json.dumps({"total": total, "crunch": f["crunch"].cum_samples,
                          "spin_in_crunch": f["spin"].own_samples,
                          "stats": p._engine.stats}))
    """ % clock)
    assert r["total"] == 12000
    assert r["crunch"] >= 50 and r["spin_in_crunch"] >= 50
    assert r["stats"]["lost"]["ring-full"] == 0


@pytest.mark.skipif(not _has("greenlet"), reason="greenlet is not installed for this Python")
@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_greenlet_stack_switching(clock):
    r = run_script("""
        import greenlet
        def g_work(k):
            parent = greenlet.getcurrent().parent
            for i in range(100):
                spin(300 + k)
                parent.switch(i)
        def nested(depth, k):
            return g_work(k) if depth == 0 else nested(depth - 1, k)
        p = hyprof.Profiler(mode="sampling", frequency=5000, clock=%r)
        rounds = 0
        with p:
            end = time.thread_time() + 0.6
            while time.thread_time() < end or rounds < 2:
                gs = [greenlet.greenlet(nested) for _ in range(50)]
                args = [(k %% 20, k) for k in range(len(gs))]
                while any(not g.dead for g in gs):
                    for k, g in enumerate(gs):
                        if not g.dead:
                            g.switch(*args[k])
                            args[k] = ()
                rounds += 1
        f = names(p.trace())
        print(json.dumps({"rounds": rounds, "g_work": f["g_work"].cum_samples,
                          "spin": f["spin"].own_samples, "stats": p._engine.stats}))
    """ % clock)
    assert r["rounds"] >= 2
    assert r["g_work"] >= 200 and r["spin"] >= 200
    assert r["stats"]["lost"]["ring-full"] == 0


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_a_hundred_threads_at_the_highest_frequency(clock):
    r = run_script("""
        N = 100
        stop = threading.Event()
        go = threading.Event()  # starting threads one by one against 50
                                # busy ones would take CPython seconds
        def busy(i):
            go.wait()
            while not stop.is_set():
                spin(500)
        def sleepy(i):
            go.wait()
            while not stop.is_set():
                time.sleep(0.003)
        p = hyprof.Profiler(mode="sampling", frequency=20000, clock=%r)
        with p:
            ths = [threading.Thread(target=busy if i %% 2 else sleepy, args=(i,),
                                    name="%%s%%d" %% ("busy" if i %% 2 else "sleepy", i))
                   for i in range(N)]
            for t in ths: t.start()
            go.set()
            # Until every busy thread has had some CPU (a loaded machine
            # gives it out slowly).
            end = time.time() + 30
            while time.time() < end:
                time.sleep(0.2)
                if sum(1 for i in range(1, N, 2)
                       if (th := ths[i]).native_id and
                       time.clock_gettime(time.pthread_getcpuclockid(th.ident)) > 0.01) == N // 2:
                    break
            stop.set()
            for t in ths: t.join()
        t = p.trace()
        per = {}
        for th in t.threads():
            fs = {f.name.rsplit(".", 1)[-1]: f for f in t.functions(thread=th.id)}
            per[th.name] = [fs[k].cum_samples if k in fs else 0 for k in ("busy", "sleepy")]
        st = p._engine.stats
        print(json.dumps({"per": per, "stats": st, "samples": st["samples"],
                          "threads": len(t.threads())}))
    """ % clock, timeout=150)
    busy = {k: v[0] for k, v in r["per"].items() if k.startswith("busy")}
    # Every thread that ran Python for 10 ms at 20 kHz is in the trace, under
    # its own name, with samples in its own function.
    assert len(busy) == 50 and min(busy.values()) > 0, busy
    if clock == "wall":
        sleepy = {k: v[1] for k, v in r["per"].items() if k.startswith("sleepy")}
        assert len(sleepy) == 50 and min(sleepy.values()) > 0, sleepy
    # (unknown-thread counts signals still queued for a thread that has just
    # been retired, which is normal.)
    assert r["stats"]["lost"]["thread-unsampled"] == 0


def test_fifty_thousand_frames_at_every_depth():
    r = run_script("""
        sys.setrecursionlimit(100000)
        def deep(n):
            return spin(150000) if n == 0 else deep(n - 1)
        out = {}
        for depth in (None, 1, 512):
            kw = {} if depth is None else {"depth": depth}
            for clock in ("cpu", "wall"):
                p = hyprof.Profiler(mode="sampling", frequency=5000, clock=clock, **kw)
                with p:
                    # Twice, and on until the sampler has had the CPU for 60
                    # ticks: on a loaded machine the process can wait longer
                    # than a round takes, and a wall timer's ticks that fall
                    # due while it waits arrive as one signal.
                    rounds, end = 0, time.time() + 20
                    while rounds < 2 or (p._engine.stats["samples"] < 60 and time.time() < end):
                        deep(50000)
                        rounds += 1
                t = p.trace()
                f = names(t)
                longest = max((len(frames) for frames, v in t.stacks("samples") if v), default=0)
                out["%s-%s" % (depth, clock)] = {
                    "spin": f["spin"].own_samples if "spin" in f else 0,
                    "trunc": f["[truncated]"].cum_samples if "[truncated]" in f else 0,
                    "total": sum(x.own_samples for x in t.functions()),
                    "longest": longest, "header": t.header["depth"]}
        print(json.dumps(out))
    """)
    for key, v in r.items():
        depth = {"None": 128, "1": 1, "512": 512}[key.split("-")[0]]
        assert v["header"] == depth
        # The innermost frames are kept (the leaf is named), under a
        # [truncated] root that stands for the rest; no stack is longer.
        assert v["spin"] >= 5, (key, v)
        # Every sample in spin, 50 001 frames down, is truncated.
        assert v["trunc"] >= v["spin"], (key, v)
        if key.endswith("-cpu"):
            # In CPU time nearly all of the run is that deep. (In wall time a
            # loaded machine keeps the thread waiting for a CPU wherever it
            # is, shallow frames included.)
            assert v["trunc"] >= v["total"] * 0.9 - 2, (key, v)
        assert v["longest"] <= depth + 1, (key, v)


@pytest.mark.parametrize("how", ["default", "setitimer", "thread"])
def test_exec_while_sampling_runs_the_new_program(how):
    """The new program must run normally. The setitimer fallback's
    ITIMER_PROF survives execve and used to kill it with SIGPROF."""
    disable = "('perf', 'timer')" if how == "setitimer" else "None"
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent("""
        p = hyprof.Profiler(mode="sampling", frequency=1000, disable=%s)
        p.start()
        print("trigger", p._engine.info["trigger"], flush=True)
        cpu_for(0.05)
        def exec_it():
            prog = ("import time\\nend = time.process_time() + 0.3\\n"
                    "while time.process_time() < end: pass\\nprint('new program done')")
            os.execv(sys.executable, [sys.executable, "-c", prog])
        if %r == "thread":
            threading.Thread(target=exec_it).start()
            cpu_for(30)
        else:
            exec_it()
    """ % (disable, how))], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[-1] == "new program done"
    if how == "setitimer":
        assert "trigger setitimer" in proc.stdout


def test_multiprocessing_subprocess_and_fork_from_a_thread():
    r = run_script("""
        import multiprocessing as mp, subprocess, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
        def job(n):
            return spin(n)
        p = hyprof.Profiler(mode="sampling", frequency=2000)
        res = {}
        with p:
            with mp.get_context("fork").Pool(2) as pool:
                res["pool"] = sum(pool.map(job, [200000] * 8)) == 8 * spin(200000)
            q = hyprof.Profiler(mode="sampling", frequency=2000)
            res["sub"] = subprocess.run([sys.executable, "-c", "print(sum(range(10**6)))"],
                                        capture_output=True, text=True).stdout.strip()
            def fork_here():
                pid = os.fork()
                if pid == 0:
                    ok = not p.running
                    with q:  # the child profiles on its own
                        cpu_for(0.1)
                    ok = ok and names(q.trace())["spin"].own_samples > 50
                    os._exit(0 if ok else 3)
                res["thread_fork"] = os.waitpid(pid, 0)[1]
            th = threading.Thread(target=fork_here)
            th.start()
            cpu_for(0.2)
            th.join()
        res["spin"] = names(p.trace())["spin"].own_samples
        print(json.dumps(res))
    """)
    assert r["pool"] is True
    assert r["sub"] == str(sum(range(10 ** 6)))
    assert r["thread_fork"] == 0
    assert r["spin"] >= 150


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_user_timers_signals_and_keyboard_interrupt(clock):
    """The user's ITIMER_REAL and SIGALRM handler keep working; SIGPROF sent
    with pthread_kill to sampled threads is not a sample (counted
    unknown-thread); a KeyboardInterrupt ends the with block and the session
    normally."""
    r = run_script("""
        alarms = []
        signal.signal(signal.SIGALRM, lambda s, f: alarms.append(1))
        signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)
        stop = threading.Event()
        def worker():
            while not stop.is_set():
                spin(2000)
        p = hyprof.Profiler(mode="sampling", frequency=5000, clock=%r)
        ths = [threading.Thread(target=worker, daemon=True) for _ in range(3)]
        for t in ths: t.start()
        def interrupter():
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)
        ki = False
        try:
            with p:
                for _ in range(100):
                    for t in ths + [threading.main_thread()]:
                        signal.pthread_kill(t.ident, signal.SIGPROF)
                    cpu_for(0.002)
                threading.Thread(target=interrupter).start()
                while True:
                    spin(1000)
        except KeyboardInterrupt:
            ki = True
        stop.set()
        for t in ths: t.join()
        time.sleep(0.1)
        signal.setitimer(signal.ITIMER_REAL, 0)
        f = names(p.trace())
        print(json.dumps({"ki": ki, "running": p.running, "alarms": len(alarms),
                          "worker": f["worker"].cum_samples, "stats": p._engine.stats}))
    """ % clock)
    assert r["ki"] is True and r["running"] is False
    assert r["alarms"] >= 10
    assert r["worker"] >= 100
    # Each of the 400 is dropped as unknown-thread, unless it merged with a
    # SIGPROF already pending for that thread (a standard signal queues once).
    assert r["stats"]["lost"]["unknown-thread"] >= 100


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_exit_without_stop_with_daemon_threads_running(clock, tmp_path):
    out = str(tmp_path / "exit.hyprof")
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent("""
        p = hyprof.Profiler(mode="sampling", frequency=5000, clock=%r, output=%r)
        def daemon():
            while True:
                spin(3000)
                time.sleep(0.0005)
        for i in range(4):
            threading.Thread(target=daemon, daemon=True, name="d%%d" %% i).start()
        p.start()
        cpu_for(0.3)
        raise SystemExit(7)  # no stop(): the interpreter's exit ends the session
    """ % (clock, out))], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 7, proc.stderr[-2000:]
    r = run_script("""
        t = hyprof.load(%r)
        f = names(t)
        print(json.dumps({"truncated": t.truncated, "spin": f["spin"].own_samples,
                          "main": f["cpu_for"].cum_weight / 1e9,
                          "daemon": f["daemon"].cum_samples}))
    """ % out)
    assert r["truncated"] is False
    # The main thread's 0.3 s is all there, by weight: a loaded machine
    # delivers fewer wall ticks, each weighing the time since the last.
    assert r["main"] >= 0.25 and r["spin"] > 0 and r["daemon"] > 0, r


def test_trace_and_profile_hooks_and_the_deterministic_mode():
    r = run_script("""
        res = {}
        events = []
        def tracer(frame, event, arg):
            events.append(event)
            return None
        sys.settrace(tracer)
        threading.settrace(tracer)
        sys.setprofile(lambda f, e, a: None)
        p = hyprof.Profiler(mode="sampling", frequency=2000)
        with p:
            cpu_for(0.2)
            t = threading.Thread(target=cpu_for, args=(0.1,), name="traced")
            t.start(); t.join()
        res["hooks_kept"] = sys.gettrace() is tracer and sys.getprofile() is not None
        res["cpu_for"] = names(p.trace())["cpu_for"].cum_weight / 1e9
        res["traced"] = any(th.name == "traced" for th in p.trace().threads())
        sys.settrace(None); threading.settrace(None); sys.setprofile(None)
        # The deterministic mode while sampling: refused, naming the hook.
        s = hyprof.Profiler(mode="sampling", frequency=2000)
        s.start()
        try:
            hyprof.Profiler().start()
            res["det_in_sampling"] = "started"
        except hyprof.ProfilerError as e:
            res["det_in_sampling"] = str(e)
        s.stop()
        # Sampling while a deterministic profiler runs; the deterministic one
        # stops first. Afterwards both start again and follow new threads.
        d = hyprof.Profiler()
        d.start()
        s = hyprof.Profiler(mode="sampling", frequency=2000)
        s.start()
        th = threading.Thread(target=cpu_for, args=(0.05,), name="both"); th.start(); th.join()
        d.stop()
        s.stop()
        res["both_det"] = [x.name for x in d.trace().threads()]
        res["hook_left"] = repr(getattr(threading, "_profile_hook", None))
        d2 = hyprof.Profiler()
        d2.start()
        th = threading.Thread(target=spin, args=(10000,), name="after"); th.start(); th.join()
        d2.stop()
        res["det_again"] = [x.name for x in d2.trace().threads()]
        print(json.dumps(res))
    """)
    assert r["hooks_kept"] is True
    assert r["cpu_for"] >= 0.25 and r["traced"] is True, r  # 0.3 s of CPU, sampled
    assert "threading.setprofile() holds another profile function" in r["det_in_sampling"]
    assert "hyprof_sampling_thread_hook" in r["det_in_sampling"]
    assert "both" in r["both_det"]
    # The sampler did not bring back the stopped deterministic profiler's hook.
    assert r["hook_left"] == "None"
    assert "after" in r["det_again"]


def test_code_churn_across_threads_with_gc_and_reload(tmp_path):
    r = run_script("""
        import gc, importlib
        sys.path.insert(0, %r)
        path = os.path.join(%r, "churnmod.py")
        def write_module(gen):
            with open(path, "w") as f:
                f.write("\\n" * (gen %% 7) + "def hot():\\n    return sum(range(3000))\\n")
        write_module(0)
        import churnmod
        stop = threading.Event()
        loops = [0]
        def churn(tag):
            i = 0
            while not stop.is_set():
                i += 1
                k = i %% 30
                ns = {}
                exec(compile("\\n" * k + "def cx_%%d():\\n    return sum(range(2000))\\n" %% k,
                             "<churn-%%s>" %% tag, "exec"), ns)
                ns["cx_%%d" %% k]()
                (lambda n: sum(range(n)))(1000)
                loops[0] += 1
        def collector():
            while not stop.is_set():
                gc.collect()
                time.sleep(0.01)
        p = hyprof.Profiler(mode="sampling", frequency=5000, flush_interval=0.02)
        with p:
            ths = [threading.Thread(target=churn, args=(t,)) for t in range(3)]
            ths.append(threading.Thread(target=collector))
            for t in ths: t.start()
            end = time.time() + 1.5
            gen = 0
            while time.time() < end:
                gen += 1
                write_module(gen)
                importlib.invalidate_caches()
                churnmod = importlib.reload(churnmod)
                for _ in range(20):
                    churnmod.hot()
            stop.set()
            for t in ths: t.join()
        bad = []
        cx = 0
        for f in p.trace().functions():
            short = f.name.rsplit(".", 1)[-1]
            if f.filename.startswith("<churn-"):
                if short.startswith("cx_"):
                    cx += f.own_samples
                    if f.lineno != int(short[3:]) + 1:
                        bad.append((f.name, f.lineno))
                elif short != "<module>":
                    bad.append((f.name, f.filename))
            if f.filename == path and short == "hot" and not (1 <= f.lineno <= 7):
                bad.append((f.name, f.lineno))
        print(json.dumps({"bad": bad, "cx": cx, "loops": loops[0], "stats": p._engine.stats}))
    """ % (str(tmp_path), str(tmp_path)))
    assert r["bad"] == []
    assert r["loops"] > 200 and r["cx"] > 20
    assert r["stats"]["code_deaths"] > 100


def test_long_run_memory_stays_bounded():
    """A few seconds at 20 kHz over four threads: the trace grows on disk,
    the heap does not (the resolver turns samples into tree rows and
    streams them), and every sample is taken or counted lost."""
    r = run_script("""
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        def leafs(i):
            return spin(200 + i % 50)
        def worker():
            i = 0
            while not stop.is_set():
                i += 1
                leafs(i)
        stop = threading.Event()
        p = hyprof.Profiler(mode="sampling", frequency=20000)
        marks = []
        with p:
            ths = [threading.Thread(target=worker) for _ in range(3)]
            for t in ths: t.start()
            start = time.time()
            while time.time() - start < 6:
                cpu_for(0.05)
                time.sleep(0.05)
                marks.append((time.time() - start, rss(), os.path.getsize(p._engine.trace_path)))
            stop.set()
            for t in ths: t.join()
        st = p._engine.stats
        t = p.trace()
        print(json.dumps({"marks": marks, "stats": st,
                          "total": sum(f.own_samples for f in t.functions()),
                          "dropped": t.dropped}))
    """, timeout=150)
    marks = r["marks"]
    after1 = [m for m in marks if m[0] >= 1.0]
    # The rings (1 MiB per thread) and the tree are in place after a second;
    # what follows only writes the file.
    growth = marks[-1][1] - after1[0][1]
    assert growth < 16 << 20, marks
    assert marks[-1][2] > after1[0][2]  # the trace file grew instead
    assert r["stats"]["samples"] >= 5000
    assert r["total"] == r["stats"]["samples"]
    assert r["dropped"] == {k: v for k, v in r["stats"]["lost"].items() if v}


@pytest.mark.skipif(not (_has("_interpreters") or _has("_xxsubinterpreters")),
                    reason="no sub-interpreter module in this Python")
@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_sub_interpreters(clock):
    """Code run in a sub-interpreter is not sampled (its thread state is not
    the session's): in CPU mode such a sample is counted lost or given to
    the calling frame; the wall clock gives the time to the frame that
    called into the sub-interpreter. Nothing crashes."""
    r = run_script("""
        try:
            import _interpreters as I
        except ImportError:
            import _xxsubinterpreters as I
        code = "s = 0\\nfor i in range(2000000):\\n    s += i\\n"
        spent = []
        def in_sub():
            t0 = time.perf_counter()
            iid = I.create()
            for _ in range(2):
                (I.exec if hasattr(I, "exec") else I.run_string)(iid, code)
            I.destroy(iid)
            spent.append(time.perf_counter() - t0)
        p = hyprof.Profiler(mode="sampling", frequency=2000, clock=%r)
        with p:
            in_sub()
            th = threading.Thread(target=in_sub, name="subthread"); th.start(); th.join()
            cpu_for(0.1)
        t = p.trace()
        f = names(t)
        st = p._engine.stats
        print(json.dumps({"in_sub": f["in_sub"].cum_samples if "in_sub" in f else 0,
                          "in_sub_s": f["in_sub"].cum_weight / 1e9 if "in_sub" in f else 0,
                          "spent": sum(spent), "cpu_for": f["cpu_for"].cum_weight / 1e9,
                          "stats": st,
                          "lost": sum(st["lost"].values()),
                          "names": sorted(set(x.name.rsplit(".", 1)[-1] for x in t.functions()
                                              if x.filename == "<string>"))}))
    """ % clock)
    assert r["cpu_for"] >= 0.08, r  # 0.1 s, by weight
    # Every name of this program's source is one of its functions.
    assert set(r["names"]) <= {"spin", "cpu_for", "in_sub", "<module>"}, r["names"]
    if clock == "wall":
        # All of in_sub's wall time, by weight (fewer ticks on a loaded
        # machine, each weighing the time since the last).
        assert r["in_sub_s"] >= 0.8 * r["spent"] - 0.002, r
    else:
        assert r["in_sub"] + r["lost"] >= 100


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_c_code_without_the_gil(clock):
    """hashlib and zlib release the GIL over a big buffer, time.sleep waits
    without it: CPU time in C goes to the Python function that called it;
    the wall clock also sees the sleep, in the function that sleeps."""
    r = run_script("""
        import hashlib, zlib
        data = os.urandom(1 << 20) * 16
        def hasher():
            for _ in range(6):
                hashlib.sha256(data).hexdigest()
        def packer():
            for _ in range(2):
                zlib.compress(data[: 8 << 20], 1)
        def sleeper():
            time.sleep(0.4)
        p = hyprof.Profiler(mode="sampling", frequency=2000, clock=%r)
        with p:
            ths = [threading.Thread(target=f, name=f.__name__) for f in (hasher, packer, sleeper)]
            for t in ths: t.start()
            cpu_for(0.1)
            for t in ths: t.join()
        f = names(p.trace())
        print(json.dumps({k: [f[k].cum_samples, f[k].cum_weight] if k in f else [0, 0]
                          for k in ("hasher", "packer", "sleeper")}))
    """ % clock)
    assert r["hasher"][0] >= 50 and r["packer"][0] >= 20, r
    if clock == "wall":
        assert r["sleeper"][0] >= 100 and r["sleeper"][1] >= 0.3e9, r
    else:
        assert r["sleeper"][0] <= 10, r  # a sleeping thread uses no CPU


def test_a_program_that_closes_every_descriptor_keeps_the_files_it_opens_next():
    """A daemon closes every descriptor it did not open, then opens its own
    files, which take the numbers of hyprof's perf events. Sampling goes on
    (a clock event stays alive through its mapped page), and at stop hyprof
    neither reads, changes nor closes the program's files."""
    r = run_script("""
        p = hyprof.Profiler(mode="sampling", frequency=1000)
        p.start()
        done = threading.Event()
        def worker():
            cpu_for(0.2)
            done.wait()  # still registered when the descriptors are closed
        threads = [threading.Thread(target=worker) for _ in range(3)]
        for t in threads: t.start()
        def perf_fds():
            found = []
            for fd in os.listdir("/proc/self/fd"):
                try:
                    if os.readlink("/proc/self/fd/" + fd) == "anon_inode:[perf_event]":
                        found.append(int(fd))
                except FileNotFoundError:  # listdir's own descriptor
                    pass
            return found
        # Until every worker is registered (at its first call; a loaded
        # machine may take a while to run them).
        deadline = time.time() + 10
        perf = perf_fds()
        while len(perf) < 4 and time.time() < deadline:
            time.sleep(0.01)
            perf = perf_fds()
        for fd in perf:
            os.close(fd)
        # The program's own files, at the numbers hyprof had.
        pipes = []
        while not set(perf) <= {fd for pair in pipes for fd in pair}:
            pipes.append(os.pipe())
        cpu_for(0.2)
        done.set()
        for t in threads: t.join()
        p.stop()
        ok = []
        for rfd, wfd in pipes:
            os.write(wfd, b"x")
            ok.append(os.read(rfd, 1) == b"x")
        t = p.trace()
        print(json.dumps({"perf": len(perf), "ok": ok,
                          "spin": names(t)["spin"].own_samples}))
    """)
    assert r["perf"] >= 4  # the main thread's and the three workers'
    assert r["ok"] and all(r["ok"])
    assert r["spin"] > 100


def test_a_program_that_takes_the_signal_over_gets_it_and_the_loss_is_reported():
    """The program installs its own SIGPROF handler while hyprof samples
    with it. hyprof does not take the signal back; the samples that went to
    the program are counted (estimated from each thread's CPU time since its
    last sample), a RuntimeWarning says so at stop, and so does the report."""
    r = run_script("""
        import warnings
        from hyprof import render
        calls = [0]
        def mine(signo, frame):
            calls[0] += 1
        p = hyprof.Profiler(mode="sampling", frequency=1000)
        p.start()
        cpu_for(0.2)
        signal.signal(signal.SIGPROF, mine)
        cpu_for(0.3)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            p.stop()
        t = p.trace()
        print(json.dumps({"calls": calls[0], "dropped": t.dropped,
                          "warned": [str(x.message) for x in w],
                          "samples": names(t)["spin"].own_samples,
                          "report": render.render(t, "text")}))
    """)
    assert r["calls"] > 50  # the program's handler got the signals
    assert r["samples"] > 50  # those taken before
    # About one per period of the 0.3 s that followed.
    assert 0.5 * r["calls"] <= r["dropped"]["handler-replaced"] <= 2 * r["calls"] + 100
    assert len(r["warned"]) == 1 and "replaced the sampler's handler of SIGPROF" in r["warned"][0]
    assert "handler-replaced" in r["report"] and "--signal" in r["report"]


def test_wall_clock_gives_no_stack_the_time_after_the_program_takes_the_signal():
    """The wall clock's running threads take their samples in hyprof's handler
    of the signal the trace header names; once the program installs its own
    handler there, the wall time it keeps running is still owed to its
    thread, but no stack may get it (it ran elsewhere meanwhile): it is
    counted lost as handler-replaced, in samples of the period, with the same
    warning as the CPU clock gives. That time once went to the stack of the
    last sample (0.6 s of weight for 0.2 s)."""
    r = run_script("""
        import warnings
        calls = [0]
        def mine(signo, frame):
            calls[0] += 1
        def busy_for(seconds):
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                spin(1000)
        def before():
            busy_for(0.2)
        def after():
            busy_for(0.4)
        p = hyprof.Profiler(mode="sampling", clock="wall", frequency=1000)
        t0 = time.perf_counter()
        p.start()
        signo = p._engine.info["signal"]
        before()
        t1 = time.perf_counter()
        signal.signal(signo, mine)
        after()
        t2 = time.perf_counter()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            p.stop()
        t3 = time.perf_counter()
        t = p.trace()
        me = [th for th in t.threads() if th.ident == threading.get_ident()][0]
        f = {x.name.rsplit(".", 1)[-1]: x for x in t.functions(thread=me.id)}
        print(json.dumps({
            "signal": t.header["signal"], "signo": signo, "calls": calls[0],
            "weight": sum(x.own_weight for x in f.values()) / 1e9,
            "before": f["before"].cum_weight / 1e9 if "before" in f else 0,
            "after": f["after"].cum_weight / 1e9 if "after" in f else 0,
            "dropped": t.dropped, "warned": [str(x.message) for x in w],
            "pre": t1 - t0, "post": t2 - t1, "tail": t3 - t1}))
    """)
    assert r["signal"] == r["signo"] == signal.SIGPROF
    assert r["calls"] > 20  # the program's handler got the signals
    # The thread's weights are its time before the takeover: not less than
    # most of it (the time owed at the takeover, under a CPU period plus a
    # tick, is lost with the rest), and of the time after it only the moments
    # it waited for the GIL (the resolver's passes), which the sampler reads
    # without any signal: 0.4 s went to the last stack before.
    assert 0.6 * r["pre"] <= r["weight"] <= r["pre"] + 0.05, r
    assert 0.6 * r["pre"] <= r["before"] and r["after"] <= 0.05, r
    # One sample per millisecond from the takeover to the stop, whatever the
    # program's handler saw (the sampler's ticks, not its signals).
    assert 0.6 * r["post"] * 1000 <= r["dropped"]["handler-replaced"] <= r["tail"] * 1000 + 5, r
    assert len(r["warned"]) == 1 and "replaced the sampler's handler of SIGPROF" in r["warned"][0]


def test_threads_without_python_frames_are_not_losses_and_their_time_is_nobodys():
    """A thread can exist without a Python frame: starting or ending, or
    running C code from its first call (_thread.start_new_thread(time.sleep,
    ...), a C wait that calls Python later). At the wall clock the sampler
    found such threads at every tick, and counted each as a lost sample:
    heavy thread churn reported hundreds of thousands. They are no loss
    (there was nothing to sample) and are reported apart; the time without
    frames goes to no stack, not to the thread's next one; a real loss is
    still a loss."""
    r = run_script("""
        import _thread, queue
        from hyprof import render
        def short(i):
            spin(200 + 50 * (i % 7))
        def work():
            end = time.perf_counter() + 0.05
            while time.perf_counter() < end:
                spin(1000)
        p = hyprof.Profiler(mode="sampling", clock="wall", frequency=2000,
                            flush_interval=0.01)
        p.start()
        # A thread whose only call is C: it never has a frame.
        _thread.start_new_thread(time.sleep, (0.3,))
        # One that waits in C (SimpleQueue.get through a callable iterator)
        # and then runs Python; the wait is nobody's time.
        q = queue.SimpleQueue()
        done = threading.Event()
        def finish(_):
            done.set()
        _thread.start_new_thread(list, (map(lambda f: f(), iter(q.get, None)),))
        for wave in range(100):
            ts = [threading.Thread(target=short, args=(i,)) for i in range(8)]
            for t in ts: t.start()
            for t in ts: t.join()
        time.sleep(0.3)
        q.put(work)
        q.put(lambda: finish(None))
        q.put(None)
        done.wait()
        time.sleep(0.05)
        p.stop()
        t = p.trace()
        st = p._engine.stats
        # The sampler's ticks from 0.1 s to 0.3 s, when the sleeping thread
        # and the waiting one are both frameless: the main thread, which
        # always has frames, is sampled at each.
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            kept = hyprof.load(p.write(os.path.join(d, "t.hyprof")), keep_samples=True)
        main = next(th.id for th in kept.threads() if th.name == "MainThread")
        ticks = sum(1 for s in kept.samples() if s.thread == main and 1e8 <= s.time < 3e8)
        w = [th for th in t.threads()
             if "work" in {f.name.rsplit(".", 1)[-1] for f in t.functions(thread=th.id)}]
        weight = sum(f.own_weight for f in t.functions(thread=w[0].id)) / 1e9 if w else 0
        print(json.dumps({"dropped": t.dropped, "lost": st["lost"],
                          "apart": st.get("no_python_frames"), "ticks": ticks,
                          "header": t.header.get("no_python_frames"),
                          "worker": weight,
                          "report": render.render(t, "text")}))
    """)
    assert "no-python-frames" not in r["dropped"], r["dropped"]
    assert "no-python-frames" not in r["lost"], r["lost"]
    # Two threads are found frameless at every tick from 0.1 s to 0.3 s
    # (some 400 at 2 kHz, fewer when the machine is short of CPUs): counted
    # apart, in the stats and the trace header, at least once a tick even if
    # one of the two was missed.
    assert r["apart"] is not None and r["apart"] >= max(1, r["ticks"]), r
    assert r["header"] == r["apart"]
    assert "without a Python frame" in r["report"]
    assert "no-python-frames" not in r["report"]
    # The worker's weights are its 50 ms of work, not its 0.3 s wait before.
    assert 0.02 <= r["worker"] <= 0.2, r["worker"]


def test_a_real_loss_is_still_reported_beside_frameless_threads():
    """Rings too small for what the threads produce between two resolver
    passes refuse records: those are lost samples (ring-full), reported as
    such, while frameless threads stay out of the losses."""
    r = run_script("""
        import _thread
        # Frameless from before the start, so found by it (the resolver's
        # first pass, which would find it otherwise, is 2 s away).
        _thread.start_new_thread(time.sleep, (0.6,))
        time.sleep(0.05)
        p = hyprof.Profiler(mode="sampling", clock="wall", frequency=5000,
                            flush_interval=2.0, ring_size=1024)
        p.start()
        ev = threading.Event()
        def deep(n):
            return ev.wait() if n == 0 else deep(n - 1)
        waiters = [threading.Thread(target=deep, args=(100,)) for _ in range(4)]
        for th in waiters: th.start()
        cpu_for(0.4)
        ev.set()
        for th in waiters: th.join()
        p.stop()
        t = p.trace()
        print(json.dumps({"dropped": t.dropped, "apart": p._engine.stats["no_python_frames"]}))
    """)
    assert r["dropped"].get("ring-full", 0) > 0, r
    assert "no-python-frames" not in r["dropped"], r
    assert r["apart"] > 0, r
