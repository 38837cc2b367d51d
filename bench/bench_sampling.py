"""Overhead of hyprof's sampling mode, side by side with pyinstrument and
py-spy, and the size of its traces.

A CPU-bound pure-Python workload whose stacks are 20 to 40 frames deep (a
recursive-descent evaluator of generated expressions) runs unprofiled, under
hyprof sampling at 100 Hz and at 1 kHz (CPU clock, the default, and wall
clock: hyprof-wall-*, whose sampler thread also ticks), under pyinstrument with a 1 ms
interval, and under py-spy record at 1 kHz (py-spy samples from its own
process and pauses the program at each sample), wherever each is installed.
A last configuration, signal-1000, measures the floor under any in-process
sampler: the same 1 kHz CPU-clock perf event as hyprof's default trigger,
signalling a C handler that does nothing (bench/timer_floor.c, compiled here
when a C compiler is present). The difference between hyprof-1000 and it is
hyprof's own cost.
Every configuration runs in its own child process; the configurations are
interleaved round by round (the order rotates), and each one's slowdown is
the median of its per-round ratios to the unprofiled run of the same round.

    ./pyrun bench/bench_sampling.py [--rounds 5] [--seconds 1.0]

Slowdowns are given in the workload's CPU time (the program's own process,
so that other processes on a busy machine do not count; the overhead of
hyprof's handler and resolver is in it) and in wall time (which also shows
py-spy's pauses). Targets: at most 1.01 at 100 Hz, 1.03 at 1 kHz; at most 16
trace bytes per sample on this steady workload. The us/sample column is the
CPU time added per sample (per signal for signal-1000).
"""

import argparse
import ctypes
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# ---------------------------------------------------------------- the workload

OPS = "+-*"


def gen_expr(rng, depth):
    if depth == 0:
        return str(rng.randint(1, 9))
    return "(%s%s%s)" % (gen_expr(rng, depth - 1), rng.choice(OPS), str(rng.randint(1, 9)))


class Parser:
    """A recursive-descent parser and evaluator: each parenthesis is three
    Python frames (expr -> term -> atom), so a 10-deep expression runs 30+
    frames deep."""

    def __init__(self, text):
        self.text = text
        self.pos = 0

    def expr(self):
        value = self.term()
        while self.pos < len(self.text) and self.text[self.pos] in "+-":
            op = self.text[self.pos]
            self.pos += 1
            rhs = self.term()
            value = value + rhs if op == "+" else value - rhs
        return value % 1000003

    def term(self):
        value = self.atom()
        while self.pos < len(self.text) and self.text[self.pos] == "*":
            self.pos += 1
            value = value * self.atom()
        return value

    def atom(self):
        c = self.text[self.pos]
        if c == "(":
            self.pos += 1
            value = self.expr()
            self.pos += 1  # ")"
            return value
        self.pos += 1
        return ord(c) - 48


def workload(iterations, seed=1):
    rng = random.Random(seed)
    exprs = [gen_expr(rng, 10) for _ in range(64)]
    total = 0
    for i in range(iterations):
        total += Parser(exprs[i % 64]).expr()
    return total


def calibrate(seconds):
    """Iterations that take about `seconds` of CPU here."""
    n = 200
    while True:
        t0 = time.process_time()
        workload(n)
        dt = time.process_time() - t0
        if dt > 0.2:
            return max(1, int(n * seconds / dt))
        n *= 2


# ---------------------------------------------------------------- one run (child)

def child(config, iterations, trace_path, floor_lib=None):
    out = {"config": config}
    prof = None
    floor = None
    if config == "signal-1000":
        import signal
        floor = ctypes.CDLL(floor_lib)
        floor.floor_start.argtypes = [ctypes.c_longlong, ctypes.c_int]
        floor.floor_stop.restype = ctypes.c_long
    if config.startswith("hyprof"):
        import hyprof
        clock = "wall" if "-wall-" in config else "cpu"
        hz = int(config.rsplit("-", 1)[1])
        prof = hyprof.Profiler(mode="sampling", frequency=hz, clock=clock, output=trace_path)
    elif config == "pyinstrument":
        from pyinstrument import Profiler
        prof = Profiler(interval=0.001)
    workload(50)  # warm up: imports, caches
    if prof is not None:
        prof.start()
    if floor is not None:
        err = floor.floor_start(1000000, int(signal.SIGPROF))
        if err < 0:
            raise OSError(-err, "cpu-clock perf event: %s" % os.strerror(-err))
    c0, w0 = time.process_time(), time.perf_counter()
    workload(iterations)
    c1, w1 = time.process_time(), time.perf_counter()
    if prof is not None:
        prof.stop()
    if floor is not None:
        out["samples"] = floor.floor_stop()
    out["cpu"] = c1 - c0
    out["wall"] = w1 - w0
    if config.startswith("hyprof"):
        st = prof._engine.stats
        out["samples"] = st["samples"]
        out["bytes"] = os.path.getsize(trace_path)
        out["lost"] = {k: v for k, v in st["lost"].items() if v}
        out["trigger"] = prof.trace().header["event"]
    print(json.dumps(out))


# ---------------------------------------------------------------- the driver

def run_config(config, iterations, tmp):
    trace = os.path.join(tmp, "%s.hyprof" % config)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", config,
           "--iterations", str(iterations), "--trace", trace,
           "--floor-lib", os.path.join(tmp, "timer_floor.so")]
    if config == "py-spy":
        raw = os.path.join(tmp, "pyspy.txt")
        cmd = [pyspy_path(), "record", "--rate", "1000", "--format", "raw",
               "-o", raw, "--"] + [sys.executable, os.path.abspath(__file__), "--child", "none",
                                   "--iterations", str(iterations), "--trace", trace]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError("%s failed (%d): %s" % (config, proc.returncode,
                                                    proc.stderr.strip()[-500:]))
    return json.loads(lines[-1])


def pyspy_path():
    """py-spy beside this interpreter (pip puts it there), else on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return here if os.access(here, os.X_OK) else shutil.which("py-spy")


def build_floor(tmp):
    """Compiles bench/timer_floor.c into tmp; returns None or why not."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return "no C compiler"
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "timer_floor.c")
    proc = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", os.path.join(tmp, "timer_floor.so"),
                           src], capture_output=True, text=True)
    if proc.returncode != 0:
        return "%s failed: %s" % (cc, proc.stderr.strip()[-300:])
    return None


def have_module(name):
    return subprocess.run([sys.executable, "-c", "import %s" % name],
                          capture_output=True).returncode == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0,
                    help="CPU seconds of each unprofiled run (default 1.0)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--iterations", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--trace", help=argparse.SUPPRESS)
    ap.add_argument("--floor-lib", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.iterations, args.trace, args.floor_lib)
        return 0

    sys.setrecursionlimit(5000)
    depth = []
    p = Parser(gen_expr(random.Random(1), 10))
    orig_atom = Parser.atom

    def probe(self):
        f, n = sys._getframe(), 0
        while f is not None:
            n, f = n + 1, f.f_back
        depth.append(n)
        return orig_atom(self)
    Parser.atom = probe
    p.expr()
    Parser.atom = orig_atom

    configs = ["none", "hyprof-100", "hyprof-1000", "hyprof-wall-100", "hyprof-wall-1000"]
    missing = []
    if have_module("pyinstrument"):
        configs.append("pyinstrument")
    else:
        missing.append("pyinstrument (pip install pyinstrument)")
    if pyspy_path():
        configs.append("py-spy")
    else:
        missing.append("py-spy (pip install py-spy)")
    iterations = calibrate(args.seconds)
    print("workload: %d expression evaluations, stacks %d to %d frames deep; Python %s"
          % (iterations, min(depth), max(depth), sys.version.split()[0]))

    results = {}
    with tempfile.TemporaryDirectory(prefix="hyprof-bench-") as tmp:
        why = build_floor(tmp)
        if why is None:
            try:
                run_config("signal-1000", 1, tmp)
                configs.append("signal-1000")
            except RuntimeError as e:
                why = str(e).splitlines()[-1]
        if why is not None:
            missing.append("signal-1000 (%s)" % why)
        if missing:
            print("left out: %s" % "; ".join(missing))
        results = {c: [] for c in configs}
        for r in range(args.rounds):
            order = configs[r % len(configs):] + configs[:r % len(configs)]
            for c in order:
                results[c].append(run_config(c, iterations, tmp))
            sys.stderr.write("round %d/%d done\n" % (r + 1, args.rounds))

    base = results["none"]
    print()
    print("%-17s %10s %10s %10s %10s %9s %9s %8s" % ("profiler", "cpu s", "cpu ratio", "wall s",
                                                     "wall ratio", "samples", "us/sample",
                                                     "B/sample"))
    for c in configs:
        rs = results[c]
        cpu_ratio = statistics.median(x["cpu"] / b["cpu"] for x, b in zip(rs, base))
        wall_ratio = statistics.median(x["wall"] / b["wall"] for x, b in zip(rs, base))
        samples = statistics.median(x.get("samples", 0) for x in rs)
        bps = statistics.median(x["bytes"] / x["samples"] for x in rs if x.get("samples")) \
            if "bytes" in rs[0] else None
        us = statistics.median((x["cpu"] - b["cpu"]) / x["samples"] * 1e6
                               for x, b in zip(rs, base)) if samples else None
        print("%-17s %10.3f %10.3f %10.3f %10.3f %9s %9s %8s" % (
            c, statistics.median(x["cpu"] for x in rs), cpu_ratio,
            statistics.median(x["wall"] for x in rs), wall_ratio,
            "%d" % samples if samples else "-", "%.1f" % us if us is not None else "-",
            "%.1f" % bps if bps else "-"))
    lost = {}
    for c in configs:
        for x in results[c]:
            for k, v in x.get("lost", {}).items():
                lost[k] = lost.get(k, 0) + v
    trig = results["hyprof-1000"][0]["trigger"]
    print()
    print("hyprof trigger: %s; samples lost: %s. Targets: 100 Hz <= 1.01, 1 kHz <= 1.03 "
          "(cpu ratio), <= 16 B/sample." % (
              trig, ", ".join("%s %d" % kv for kv in sorted(lost.items())) or "none"))
    if "signal-1000" in results:
        # Per round, so that both sides of the difference saw the same load.
        own = statistics.median(x["cpu"] / b["cpu"] - f["cpu"] / b["cpu"] for x, f, b in
                                zip(results["hyprof-1000"], results["signal-1000"], base))
        print("at 1 kHz, the kernel's signal alone (signal-1000) costs what its ratio says; "
              "hyprof's own part is %+.3f of the unprofiled CPU time." % own)
    return 0


if __name__ == "__main__":
    sys.exit(main())
