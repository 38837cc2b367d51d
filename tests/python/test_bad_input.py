"""Bad input, as a careless or hostile user gives it: each case must end in
a short error naming the input (exit status 2 for usage errors, 1 for the
rest, no traceback from hyprof), never a crash, a hang, a silent success or
an output file that looks valid."""

import cProfile
import os
import signal
import subprocess
import sys
import threading

import hyprof
import pytest
from hyprof import EventError, Profiler, ProfilerError, TraceError, load
from hyprof.render import ReportError

PROGRAM = "def f(n):\n    return sum(i * i for i in range(n))\n\nfor _ in range(50):\n    f(1000)\n"

SCRIPTS = {
    "ok.py": PROGRAM,
    "syntax.py": "def f(:\n",
    "nul.py": "x = 1\0\n",
    "raises.py": PROGRAM + "raise RuntimeError('boom from the program')\n",
    "exit3.py": PROGRAM + "import sys\nsys.exit(3)\n",
    "stdin.py": PROGRAM + "import sys\nprint('read', len(sys.stdin.read()))\n",
    "osexit.py": PROGRAM + "import os\nos._exit(4)\n",
    # A forked child leaving through os._exit, as multiprocessing's do.
    "forkexit.py": PROGRAM + "import os\npid = os.fork()\nif pid == 0:\n    f(10)\n"
                             "    os._exit(0)\nos.waitpid(pid, 0)\n",
}


def hyprof_cmd(*args, cwd, stdin=""):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(hyprof.__file__)))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return subprocess.run([sys.executable, "-m", "hyprof"] + [str(a) for a in args], cwd=cwd,
                          check=False,
                          input=stdin, capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A directory with the scripts and one file of each bad kind."""
    d = tmp_path_factory.mktemp("bad")
    for name, text in SCRIPTS.items():
        (d / name).write_text(text)
    for args in (("-o", "det.hyprof"), ("--mode", "sampling", "-o", "samp.hyprof")):
        r = hyprof_cmd("run", "-q", *args, "ok.py", cwd=d)
        assert r.returncode == 0, r.stderr
    det = (d / "det.hyprof").read_bytes()
    (d / "empty.hyprof").write_bytes(b"")
    (d / "trunc.hyprof").write_bytes(det[:40])
    (d / "garbage.hyprof").write_bytes(bytes(range(256)) * 4)
    (d / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    (d / "data.json").write_text('{"functions": []}\n')
    cProfile.runctx("sum(range(10))", {}, {}, str(d / "stats.prof"))
    (d / "adir").mkdir()
    return d


BAD_TRACES = [
    # (file, key words of the message)
    ("missing.hyprof", ["missing.hyprof", "no such file"]),
    ("adir", ["adir", "directory"]),
    ("empty.hyprof", ["empty.hyprof", "empty"]),
    ("trunc.hyprof", ["trunc.hyprof", "cut"]),
    ("garbage.hyprof", ["garbage.hyprof", "not a hyprof trace"]),
    ("image.png", ["image.png", "not a hyprof trace"]),
    ("data.json", ["data.json", "not a hyprof trace"]),
    ("stats.prof", ["stats.prof", "not a hyprof trace"]),
]

CLI_CASES = [
    # (arguments, exit status, key words of stderr's last line)
    (["bogus"], 2, ["invalid choice", "bogus"]),
    (["report", "--bogus", "det.hyprof"], 2, ["unrecognized arguments", "--bogus"]),
    (["report", "det.hyprof", "--format", "bogus"], 2, ["--format", "bogus", "text"]),
    (["report", "det.hyprof", "--limit", "-1"], 2, ["--limit", "-1", "0 or more"]),
    (["report", "det.hyprof", "--limit", "abc"], 2, ["--limit", "abc", "integer"]),
    (["report", "det.hyprof", "--sort", "bogus"], 2, ["--sort", "bogus", "cum"]),
    (["report", "det.hyprof", "--thread", "99"], 1, ["--thread 99", "no such thread",
                                                      "its threads are 0"]),
    (["report", "det.hyprof", "--thread", "nosuch"], 1, ["--thread nosuch", "no such thread"]),
    (["report", "det.hyprof", "--lines"], 1, ["--lines", "sampling trace", "deterministic"]),
    (["report", "det.hyprof", "-f", "text", "--metric", "calls"], 1,
     ["deterministic", "all its columns", "--sort"]),
    (["report", "samp.hyprof", "--clock", "cpu"], 2, ["--clock", "sampling", "--metric"]),
    (["report", "det.hyprof", "--clock", "cpu", "--metric", "wall"], 2, ["disagree"]),
    (["report", "det.hyprof", "--metric", "calls"], 1, ["calls", "deterministic", "wall or cpu",
                                                       "wall_own"]),
    (["report", "samp.hyprof", "--metric", "bogus"], 1, ["bogus", "no such column"]),
    (["report", "det.hyprof", "-o", "out.png"], 2, ["out.png", "'.png'", "--format", ".svg"]),
    (["report", "det.hyprof", "-o", "out.json"], 2, ["'.json'", ".speedscope.json"]),
    (["report", "det.hyprof", "samp.hyprof"], 2, ["one trace, not 2", "hyprof merge -o"]),
    (["report", "det.hyprof", "--metric", "bogus"], 1, ["bogus", "wall"]),
    (["report", "det.hyprof", "-f", "dot", "--threshold", "-5"], 1, ["threshold", "0 and 100"]),
    (["report", "det.hyprof", "-o", "adir"], 1, ["adir", "directory"]),
    (["report", "det.hyprof", "-o", "nodir/r.txt"], 1, ["nodir/r.txt", "no such file"]),
    (["merge", "det.hyprof", "samp.hyprof", "-o", "m.hyprof"], 1,
     ["different modes", "deterministic", "sampling"]),
    (["merge", "det.hyprof", "det.hyprof", "-o", "adir"], 1, ["adir", "directory"]),
    (["merge", "det.hyprof"], 2, ["-o"]),
    # An unexpanded pattern: the shell found no trace.
    (["merge", "-o", "m.hyprof", "profiles/*.hyprof"], 1,
     ["no trace to read", "no file matches 'profiles/*.hyprof'"]),
    (["diff", "det.hyprof", "samp.hyprof"], 1, ["deterministic", "sampling", "same mode"]),
    (["diff", "det.hyprof", "det.hyprof", "--limit", "0"], 2, ["--limit", "1 or more"]),
    (["diff", "det.hyprof", "det.hyprof", "-o", "adir"], 1, ["adir", "directory"]),
    (["diff", "det.hyprof", "det.hyprof", "--metric", "bogus"], 1, ["bogus", "wall"]),
    (["report", os.devnull], 1, [os.devnull, "empty"]),
    # An output over an input would destroy it.
    (["report", "det.hyprof", "-o", "./det.hyprof"], 2, ["./det.hyprof", "the trace itself"]),
    (["diff", "det.hyprof", "samp.hyprof", "-o", "samp.hyprof"], 2,
     ["samp.hyprof", "one of the traces"]),
    (["run", "-q", "-o", "r.hyprof", "missing.py"], 1, ["missing.py", "no such file"]),
    (["run", "-q", "-o", "r.hyprof", "adir"], 1, ["adir", "directory"]),
    (["run", "-q", "-o", "r.hyprof", "syntax.py"], 1, ["syntax.py", "not valid Python"]),
    (["run", "-q", "-o", "r.hyprof", "image.png"], 1, ["image.png", "not valid Python"]),
    (["run", "-q", "-o", "r.hyprof", "nul.py"], 1, ["nul.py", "not valid Python"]),
    (["run", "-q", "-o", "r.hyprof", "-m", "no_such_module_x"], 1,
     ["no_such_module_x", "no module"]),
    # A package without __main__ cannot run: no trace of nothing is written.
    (["run", "-q", "-o", "r.hyprof", "-m", "json"], 1, ["'json'", "package without a __main__"]),
    (["run", "-q"], 2, ["give the program to run", "script.py", "-m module"]),
    (["run", "-q", "-o", "./ok.py", "ok.py"], 2, ["./ok.py", "overwrite the program"]),
    (["run", "-q", "-o", "nodir/r.hyprof", "ok.py"], 1, ["nodir/r.hyprof", "no directory"]),
    (["run", "-q", "-o", "adir", "ok.py"], 1, ["adir", "directory", "-o FILE"]),
    (["run", "-q", "-o", "r.hyprof", "--mode", "bogus", "ok.py"], 2,
     ["--mode", "bogus", "deterministic", "sampling"]),
    (["run", "-q", "-o", "r.hyprof", "--mode", "sampling", "--event", "bogus", "ok.py"], 1,
     ["bogus", "unknown event", "cpu-clock"]),
    (["run", "-q", "-o", "r.hyprof", "--mode", "sampling", "--clock", "bogus", "ok.py"], 2,
     ["--clock", "bogus", "wall"]),
    (["run", "-q", "-o", "r.hyprof", "--limit", "-1", "ok.py"], 2, ["--limit", "-1"]),
    (["run", "-q", "-o", "r.hyprof", "--sort", "bogus", "ok.py"], 2, ["--sort", "bogus"]),
]
for value in ("0", "-5", "1e9", "nan", "inf"):
    CLI_CASES.append((["run", "-q", "-o", "r.hyprof", "--mode", "sampling", "--frequency",
                       value, "ok.py"], 2, ["--frequency", value, "between 1 and 20000"]))
CLI_CASES += [
    (["run", "-q", "-o", "r.hyprof", "--mode", "sampling", "--frequency", "abc", "ok.py"], 2,
     ["--frequency", "abc", "not a number"]),
    (["run", "-q", "-o", "r.hyprof", "--mode", "sampling", "--period", "0", "ok.py"], 2,
     ["--period", "'0'", "between 1"]),
    # A nanosecond period would leave the program no time to run.
    (["run", "-q", "-o", "r.hyprof", "--mode", "sampling", "--period", "1", "ok.py"], 2,
     ["period=1", "at least 50000"]),
    (["run", "-q", "-o", "r.hyprof", "--mode", "sampling", "--period", "100000",
      "--frequency", "100", "ok.py"], 2, ["--period", "--frequency", "not both"]),
    (["run", "-q", "-o", "r.hyprof", "--mode", "sampling", "--depth", "0", "ok.py"], 2,
     ["--depth", "between 1 and 512"]),
    (["run", "-q", "-o", "r.hyprof", "--mode", "sampling", "--depth", "100000", "ok.py"], 2,
     ["--depth", "between 1 and 512"]),
    (["run", "-q", "-o", "r.hyprof", "--mode", "sampling", "--signal", "abc", "ok.py"], 2,
     ["--signal", "abc"]),
    (["run", "-q", "-o", "r.hyprof", "--mode", "sampling", "--signal", "9", "ok.py"], 1,
     ["signal 9", "SIGPROF", "SIGRTMIN"]),
    (["run", "-q", "-o", "r.hyprof", "--mode", "sampling", "--signal", "999", "ok.py"], 1,
     ["signal 999", "SIGPROF"]),
    # SIGINT carries Python's KeyboardInterrupt handler: taken.
    (["run", "-q", "-o", "r.hyprof", "--mode", "sampling", "--signal", "2", "ok.py"], 1,
     ["signal 2", "already has a handler", "another signal"]),
    # An option of the other mode is not silently ignored.
    (["run", "-q", "-o", "r.hyprof", "--event", "cpu-clock", "ok.py"], 2,
     ["--event", "--mode sampling"]),
    (["run", "-q", "-o", "r.hyprof", "--depth", "5", "ok.py"], 2, ["--depth", "--mode sampling"]),
    (["run", "-q", "-o", "r.hyprof", "--clock", "wall", "ok.py"], 2,
     ["--clock", "--mode sampling"]),
    (["run", "-q", "-o", "r.hyprof", "--mode", "sampling", "--no-builtins", "ok.py"], 2,
     ["--no-builtins", "--mode deterministic"]),
    (["run", "-q", "-o", "r.hyprof", "--mode", "sampling", "--engine", "setprofile", "ok.py"],
     2, ["--engine", "--mode deterministic"]),
]
for name, words in BAD_TRACES:
    CLI_CASES += [(["report", name], 1, ["cannot read"] + words),
                  (["diff", "det.hyprof", name], 1, words),
                  (["diff", name, "det.hyprof"], 1, words),
                  (["merge", name, "det.hyprof", "-o", "m.hyprof"], 1, words)]


def check_error(r, status, words):
    assert r.returncode == status, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("hyprof"), r.stderr
    for w in words:
        assert w.lower() in last.lower(), (w, last)


@pytest.mark.parametrize("args,status,words", CLI_CASES,
                         ids=[" ".join(c[0]) for c in CLI_CASES])
def test_cli_bad_input(files, args, status, words):
    outputs = ("r.hyprof", "m.hyprof", os.path.join("adir", "r.hyprof"))
    for o in outputs:
        if os.path.exists(files / o):
            os.unlink(files / o)
    r = hyprof_cmd(*args, cwd=files)
    check_error(r, status, words)
    assert (files / "ok.py").read_text() == PROGRAM
    assert load(files / "det.hyprof").mode == "deterministic"
    assert load(files / "samp.hyprof").mode == "sampling"
    # A failed command leaves no file that looks like a result.
    for o in outputs:
        assert not os.path.exists(files / o), o
    assert sorted(os.listdir(files / "adir")) == []


@pytest.mark.parametrize("command", [["report"], ["diff", "det.hyprof"]])
def test_cli_cut_short_trace_is_one_warning_line(files, tmp_path, command):
    data = (files / "det.hyprof").read_bytes()
    cut = tmp_path / "cut.hyprof"
    for n in range(len(data) - 1, 0, -1):  # the longest prefix that loads
        cut.write_bytes(data[:n])
        try:
            with pytest.warns(hyprof.TraceWarning):
                load(cut)
            break
        except TraceError:
            continue
    r = hyprof_cmd(*command, cut, cwd=files)
    assert r.returncode == 0, r.stderr
    warning = [ln for ln in r.stderr.splitlines() if "warning" in ln]
    assert len(warning) == 1 and warning[0].startswith("hyprof "), r.stderr
    assert "cut.hyprof" in warning[0] and "loaded what is complete" in warning[0]
    assert "load(" not in r.stderr and ".py:" not in r.stderr


def test_cli_event_without_pmu_suggests_cpu_clock(files):
    r = hyprof_cmd("run", "-q", "-o", "cyc.hyprof", "--mode", "sampling", "--event", "cycles",
                   "ok.py", cwd=files)
    if r.returncode == 0:  # a machine with a hardware PMU
        assert load(files / "cyc.hyprof").mode == "sampling"
        return
    check_error(r, 1, ["cycles", "cpu-clock"])
    assert not os.path.exists(files / "cyc.hyprof")


@pytest.mark.parametrize("script,status,words", [
    ("raises.py", 1, ["RuntimeError", "boom from the program"]),
    ("exit3.py", 3, []),
])
def test_cli_program_failure_keeps_trace(files, tmp_path, script, status, words):
    out = tmp_path / "t.hyprof"
    r = hyprof_cmd("run", "-q", "-o", out, script, cwd=files)
    assert r.returncode == status, r.stderr
    for w in words:
        assert w in r.stderr
    assert "cli.py" not in r.stderr  # the program's traceback, not hyprof's
    calls = {f.name: f.calls for f in load(out).functions()}
    assert calls["f"] == 50


@pytest.mark.parametrize("script,status", [("osexit.py", 4), ("forkexit.py", 0)])
def test_cli_os_exit_keeps_trace(files, tmp_path, script, status):
    # os._exit skips finally blocks and atexit: the trace is written first,
    # once, by the process that hyprof started.
    out = tmp_path / "t.hyprof"
    r = hyprof_cmd("run", "-o", out, script, cwd=files)
    assert r.returncode == status, r.stderr
    assert r.stderr.count("trace written to") == 1, r.stderr
    calls = {f.name: f.calls for f in load(out).functions()}
    assert calls["f"] == 50
    assert not any("_exit" in name for name in calls if "posix" not in name), calls


def test_cli_module_failure_shows_the_modules_traceback(files, tmp_path):
    (tmp_path / "failmod.py").write_text("raise ValueError('from the module')\n")
    r = hyprof_cmd("run", "-q", "-o", tmp_path / "t.hyprof", "-m", "failmod", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "ValueError: from the module" in r.stderr
    assert "<hyprof -m>" not in r.stderr and "cli.py" not in r.stderr, r.stderr


def test_cli_sigterm_keeps_trace(tmp_path):
    # SIGTERM (timeout, docker stop) by default kills before the trace is
    # written; the program now ends as by sys.exit and hyprof then dies of
    # the signal, as the program would have.
    (tmp_path / "spin.py").write_text(
        "import sys, time\n"
        "def spin():\n"
        "    print('ready', flush=True)\n"
        "    while True:\n"
        "        time.sleep(0.01)\n"
        "spin()\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(hyprof.__file__)))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    out = tmp_path / "t.hyprof"
    proc = subprocess.Popen([sys.executable, "-m", "hyprof", "run", "-q", "-o", str(out),
                             "spin.py"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGTERM, err
    calls = {f.name: f.calls for f in load(out).functions()}
    assert calls["spin"] == 1  # the signal may land before its first sleep


def test_cli_program_reads_stdin(files, tmp_path):
    out = tmp_path / "t.hyprof"
    r = hyprof_cmd("run", "-q", "-o", out, "stdin.py", cwd=files, stdin="hello")
    assert r.returncode == 0, r.stderr
    assert "read 5" in r.stdout
    assert {f.name: f.calls for f in load(out).functions()}["f"] == 50


# ------------------------------------------------------------------ API

API_OPTION_CASES = [
    # (Profiler keyword arguments, exception type, key words)
    ({"mode": "bogus"}, ProfilerError, ["mode='bogus'", "deterministic", "sampling"]),
    ({"mode": []}, ProfilerError, ["mode=[]", "deterministic"]),
    ({"builtins": "yes"}, ProfilerError, ["builtins='yes'", "True or False"]),
    ({"engine": "bogus"}, ProfilerError, ["engine='bogus'", "setprofile"]),
    ({"engine": 3}, ProfilerError, ["engine=3", "setprofile"]),
    ({"max_nodes": -1}, ProfilerError, ["max_nodes=-1", "0"]),
    ({"context": 5}, ProfilerError, ["context=5", "ContextVar"]),
    ({"event": "cpu-clock"}, ProfilerError, ["event=", "mode='deterministic'",
                                             "mode='sampling'"]),
    ({"foo": 1}, ProfilerError, ["foo=1", "not an option", "builtins"]),
    ({"mode": "sampling", "builtins": False}, ProfilerError,
     ["builtins=", "mode='sampling'", "mode='deterministic'"]),
    ({"mode": "sampling", "event": 1}, ProfilerError, ["event=1", "cpu-clock"]),
    ({"mode": "sampling", "period": 0}, ProfilerError, ["period=0", "between"]),
    ({"mode": "sampling", "period": 10}, ProfilerError, ["period=10", "at least 50000"]),
    ({"mode": "sampling", "period": 1.5}, ProfilerError, ["period=1.5", "integer"]),
    ({"mode": "sampling", "period": "5"}, ProfilerError, ["period='5'", "integer"]),
    ({"mode": "sampling", "frequency": 0}, ProfilerError, ["frequency=0", "between 1 and"]),
    ({"mode": "sampling", "frequency": -5}, ProfilerError, ["frequency=-5", "between 1 and"]),
    ({"mode": "sampling", "frequency": 1e9}, ProfilerError, ["frequency=", "between 1 and"]),
    ({"mode": "sampling", "frequency": float("nan")}, ProfilerError, ["frequency=nan"]),
    ({"mode": "sampling", "frequency": "x"}, ProfilerError, ["frequency='x'", "number"]),
    ({"mode": "sampling", "frequency": 100, "period": 100000}, ProfilerError, ["not both"]),
    ({"mode": "sampling", "depth": 0}, ProfilerError, ["depth=0", "between 1 and 512"]),
    ({"mode": "sampling", "depth": 2.0}, ProfilerError, ["depth=2.0", "integer"]),
    ({"mode": "sampling", "clock": "bogus"}, ProfilerError, ["clock='bogus'", "wall"]),
    ({"mode": "sampling", "signal": "x"}, ProfilerError, ["signal='x'", "SIGPROF"]),
    ({"mode": "sampling", "disable": ["x"]}, ProfilerError, ["disable=", "itimer"]),
    ({"mode": "sampling", "disable": "bogus"}, ProfilerError, ["disable=('bogus',)", "itimer"]),
    ({"mode": "sampling", "output": 123}, ProfilerError, ["output=123", "path"]),
    ({"mode": "sampling", "flush_interval": 0}, ProfilerError, ["flush_interval=0", "between"]),
    ({"mode": "sampling", "ring_size": 5}, ProfilerError, ["ring_size=5", "between"]),
    ({"mode": "sampling", "memory": True, "memory_max_frames": 0}, ProfilerError,
     ["memory_max_frames=0", "between 1 and 512"]),
    ({"cpu_clock": "bogus"}, ProfilerError, ["cpu_clock='bogus'", "syscall"]),
    ({"max_nodes": 2 ** 40}, ProfilerError, ["max_nodes=", "2147483647"]),
    ({"mode": "sampling", "memory": "yes"}, ProfilerError, ["memory='yes'", "True or False"]),
    ({"mode": "sampling", "memory": True, "memory_interval": 0}, ProfilerError,
     ["memory_interval=0", "between"]),
    ({"mode": "sampling", "memory": True, "memory_interval": -1}, ProfilerError,
     ["memory_interval=-1", "between"]),
    ({"mode": "sampling", "memory": True, "memory_interval": "x"}, ProfilerError,
     ["memory_interval='x'", "bytes"]),
    ({"mode": "sampling", "memory_interval": 4096}, ProfilerError,
     ["memory_interval=4096", "memory=True"]),
]


@pytest.mark.parametrize("options,exc,words", API_OPTION_CASES,
                         ids=[repr(c[0]) for c in API_OPTION_CASES])
def test_profiler_bad_options(options, exc, words):
    with pytest.raises(exc) as info:
        Profiler(**options)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


@pytest.mark.parametrize("options,exc,words", [
    ({"event": "bogus"}, EventError, ["bogus", "unknown event", "cpu-clock"]),
    ({"signal": 0}, ProfilerError, ["signal 0", "SIGPROF"]),
    ({"signal": 9}, ProfilerError, ["signal 9", "SIGPROF"]),
])
def test_sampling_start_refuses(options, exc, words):
    p = Profiler(mode="sampling", **options)
    with pytest.raises(exc) as info:
        p.start()
    assert not p.running
    for w in words:
        assert w in str(info.value), (w, str(info.value))


@pytest.mark.parametrize("name", ["adir", os.path.join("nodir", "t.hyprof")])
def test_sampling_output_path_refused_at_start(files, name):
    p = Profiler(mode="sampling", output=str(files / name))
    with pytest.raises(OSError) as info:
        p.start()
    assert name in str(info.value)
    assert not p.running


@pytest.mark.parametrize("mode", ["deterministic", "sampling"])
def test_profiler_lifecycle_errors(mode, tmp_path):
    p = Profiler(mode=mode)
    out = tmp_path / "t.hyprof"
    with pytest.raises(ProfilerError, match="not running"):
        p.stop()
    # Before any run there is no profile: no empty trace that looks valid.
    with pytest.raises(ProfilerError, match="has not run yet"):
        p.trace()
    with pytest.raises(ProfilerError, match="has not run yet"):
        p.write(out)
    assert not out.exists()
    p.start()
    try:
        with pytest.raises(ProfilerError, match="already running"):
            p.start()
        with pytest.raises(ProfilerError, match="stop"):
            p.write(out)
        with pytest.raises(ProfilerError, match="stop"):
            p.trace()
    finally:
        p.stop()
    assert not out.exists()
    with pytest.raises(ProfilerError, match="not running"):
        p.stop()
    for bad, exc in ((tmp_path, IsADirectoryError), (tmp_path / "no" / "t.hyprof",
                                                      FileNotFoundError)):
        with pytest.raises(exc):
            p.write(bad)
    for bad in (None, 5):
        with pytest.raises(TypeError):
            p.write(bad)
    p.write(out)
    assert load(out).mode == mode


WRITE_UNDER_LIMIT = """
import os, resource, sys
import hyprof
p = hyprof.Profiler(mode=sys.argv[1], **({"frequency": 5000} if sys.argv[1] == "sampling" else {}))
p.start()
ns = {}
for i in range(2000):
    exec("def f%d(): return sum(range(%d))" % (i, i), ns)
    ns["f%d" % i]()
p.stop()
size = os.path.getsize(p._engine.trace_path) if sys.argv[1] == "sampling" else 1 << 20
limit = min(size // 2, 16384)
# Writes past the limit fail with EFBIG (Python ignores SIGXFSZ).
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
try:
    p.write(sys.argv[2])
except OSError as e:
    print("OSError", e.errno)
"""


@pytest.mark.parametrize("mode", ["deterministic", "sampling"])
def test_write_cut_short_leaves_no_file(tmp_path, mode):
    out = tmp_path / "t.hyprof"
    r = subprocess.run([sys.executable, "-c", WRITE_UNDER_LIMIT, mode, str(out)], check=False,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["OSError", "27"], (r.stdout, r.stderr)
    assert not out.exists()


@pytest.mark.parametrize("command", [["report", "det.hyprof", "-f", "html", "-o", "r.html"],
                                     ["diff", "det.hyprof", "det.hyprof", "-o", "r.html"]])
def test_cli_report_cut_short_leaves_no_file(files, command):
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(hyprof.__file__)))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    r = subprocess.run([sys.executable, "-m", "hyprof"] + command, cwd=files, env=env,
                       check=False,
                       capture_output=True, text=True, timeout=120, preexec_fn=limit)
    check_error(r, 1, ["cannot write", "r.html", "too large"])
    assert not (files / "r.html").exists()


@pytest.mark.parametrize("name,words", BAD_TRACES)
def test_load_bad_files(files, name, words):
    exc = TraceError
    if name == "missing.hyprof":
        exc = FileNotFoundError
    elif name == "adir":
        exc = OSError
    with pytest.raises(exc) as info:
        load(files / name)
    for w in words[:1] + (words[1:] if exc is TraceError else []):
        assert w.lower() in str(info.value).lower(), (w, str(info.value))


def test_load_bad_argument_types():
    for bad in (None, 5):
        with pytest.raises(TypeError):
            load(bad)


TRACE_CALLS = [
    # (what, call(trace), exception, key words)
    ("functions thread 99", lambda t: t.functions(thread=99), ValueError, ["thread 99"]),
    ("functions thread -1", lambda t: t.functions(thread=-1), ValueError, ["thread -1"]),
    ("functions thread 'a'", lambda t: t.functions(thread="a"), ValueError, ["thread 'a'"]),
    ("functions thread True", lambda t: t.functions(thread=True), ValueError, ["thread True"]),
    ("edges thread 99", lambda t: t.edges(thread=99), ValueError, ["thread 99"]),
    ("nodes thread 99", lambda t: t.nodes(thread=99), ValueError, ["thread 99"]),
    ("stacks metric", lambda t: t.stacks(metric="bogus"), ValueError, ["bogus", "wall_own"]),
    ("report format", lambda t: t.report("bogus"), ReportError, ["bogus", "text"]),
    ("report metric", lambda t: t.report("text", metric="bogus"), ReportError, ["bogus"]),
    ("report sort", lambda t: t.report("text", sort="bogus"), ReportError, ["bogus", "cum"]),
    ("report limit", lambda t: t.report("text", limit=-1), ReportError, ["limit=-1"]),
    ("report option", lambda t: t.report("text", bogus=1), ReportError, ["bogus"]),
    ("tree clock", lambda t: t.report("tree", clock="bogus"), ReportError, ["bogus", "wall"]),
    ("html metric", lambda t: t.to_html(metric="bogus"), ReportError, ["bogus", "wall"]),
    ("dot threshold", lambda t: t.to_dot(threshold=500), ReportError, ["threshold", "100"]),
]


@pytest.mark.parametrize("what,call,exc,words", TRACE_CALLS, ids=[c[0] for c in TRACE_CALLS])
def test_trace_bad_arguments(files, what, call, exc, words):
    t = load(files / "det.hyprof")
    with pytest.raises(exc) as info:
        call(t)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_thread_of_traceless_trace_is_named(files):
    p = Profiler(mode="sampling", memory=True, memory_only=True)
    p.start()
    p.stop()
    t = p.trace()
    if t.threads():
        pytest.skip("this trace has threads")
    with pytest.raises(ValueError, match="no threads"):
        t.functions(thread=0)


@pytest.mark.parametrize("other", ["cprofile", "setprofile"])
def test_deterministic_refuses_another_profiler(other):
    if other == "cprofile":
        prof = cProfile.Profile()
        prof.enable()
    else:
        sys.setprofile(lambda *a: None)
    try:
        with pytest.raises(ProfilerError) as info:
            Profiler().start()
    finally:
        if other == "cprofile":
            prof.disable()
        else:
            sys.setprofile(None)
    msg = str(info.value)
    # 3.12+ names cProfile through its sys.monitoring tool id.
    assert ("cProfile" if other == "cprofile" else "has a profile function") in msg, msg
    assert "does not replace another profiler" in msg and "stop it first" in msg


@pytest.mark.parametrize("mode", ["deterministic", "sampling"])
def test_profiler_started_in_a_thread_that_ends(mode):
    p = Profiler(mode=mode)

    def work():
        p.start()
        sum(i * i for i in range(20000))

    t = threading.Thread(target=work)
    t.start()
    t.join(30)
    assert p.running
    p.stop()
    assert not p.running
    trace = p.trace()
    assert trace.mode == mode
    if mode == "deterministic":
        # work() began before start(): its callees are recorded.
        assert any(f.name.endswith("<genexpr>") and f.calls == 1 for f in trace.functions())
