"""Overhead of hyprof's deterministic mode against cProfile and yappi.

Each workload runs unprofiled, under hyprof (recording wall AND CPU time),
under cProfile, and under yappi with its wall and its CPU clock, interleaved
in one process over several rounds; the table gives each profiler's median
slowdown (profiled time / unprofiled time) and hyprof's extra time as a
fraction of cProfile's ((hyprof - 1) / (cProfile - 1): below 1.0 hyprof is
cheaper). On 3.12+ hyprof's two engines (sys.monitoring and the profile hook)
are both measured.

    python bench/bench_deterministic.py [--rounds 7] [--scale 1.0]
    python bench/bench_deterministic.py --all-pythons \\
        --pythonpath '/path/to/build-{major}{minor}/python'

--all-pythons runs this script under every CPython scripts/pythons.sh finds
(pyenv's 3.11, 3.12, 3.13), each with its own build of hyprof on PYTHONPATH.
"""

import argparse
import dataclasses
import gc
import json
import os
import re
import statistics
import sys
import time

import _pythons

# ------------------------------------------------------------------ workloads


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def tree_depth(node):
    if not node:
        return 0
    return 1 + max(tree_depth(node[0]), tree_depth(node[1]))


def build_tree(d):
    return None if d == 0 else (build_tree(d - 1), build_tree(d - 1))


def w_recursive(scale):
    for _ in range(max(1, int(16 * scale))):
        fib(20)
        tree_depth(build_tree(12))


class Vector:
    __slots__ = ("x", "y")

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def add(self, other):
        return Vector(self.x + other.x, self.y + other.y)

    def scale(self, k):
        return Vector(self.x * k, self.y * k)

    @property
    def norm2(self):
        return self.x * self.x + self.y * self.y


class Particle:
    def __init__(self, i):
        self.pos = Vector(i, -i)
        self.vel = Vector(1, 2)

    def step(self, dt):
        self.pos = self.pos.add(self.vel.scale(dt))
        return self.pos.norm2


def w_methods(scale):
    ps = [Particle(i) for i in range(100)]
    total = 0
    for _ in range(max(1, int(2000 * scale))):
        for p in ps:
            total += p.step(0.01)
    return total


def w_strings(scale):
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"] * 50
    out = []
    for i in range(max(1, int(2000 * scale))):
        s = " ".join(words[i % 7:])
        parts = s.split()
        counts = {}
        for w in parts:
            counts[w] = counts.get(w, 0) + 1
        out.append(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0])
        out.append(s.upper().replace("A", "a").find("zeta"))
    return len(out)


@dataclasses.dataclass
class Order:
    id: int
    customer: str
    items: list
    total: float = 0.0


EMAIL = re.compile(r"^[\w.+-]+@([\w-]+\.)+\w+$")


def w_stdlib(scale):
    n = 0
    for i in range(max(1, int(600 * scale))):
        orders = [Order(j, "c%d@example.com" % j, [{"sku": k, "q": k % 3} for k in range(5)])
                  for j in range(10)]
        blob = json.dumps([dataclasses.asdict(o) for o in orders])
        back = json.loads(blob)
        n += sum(1 for o in back if EMAIL.match(o["customer"]))
    return n


WORKLOADS = {
    "recursive": w_recursive,
    "methods": w_methods,
    "strings": w_strings,
    "stdlib": w_stdlib,
}

# ------------------------------------------------------------------ profilers


def run_plain(fn, scale):
    t = time.perf_counter()
    fn(scale)
    return time.perf_counter() - t


def run_hyprof(engine, module=None, context=False):
    import contextvars

    import hyprof
    module = module or hyprof
    var = contextvars.ContextVar("bench_request")

    def run(fn, scale):
        if context:
            # A web request's profile: only its context's calls count.
            ctx = contextvars.copy_context()
            ctx.run(var.set, "request")
            p = module.Profiler(engine=engine, context=(var, "request"))
            t = time.perf_counter()
            ctx.run(p.start)
            ctx.run(fn, scale)
            ctx.run(p.stop)
            return time.perf_counter() - t
        p = module.Profiler(engine=engine)
        t = time.perf_counter()
        p.start()
        fn(scale)
        p.stop()
        return time.perf_counter() - t
    return run


def load_baseline(directory):
    """The hyprof package of another build (directory holds its hyprof/),
    imported beside this one as hyprof_baseline, so both are measured in the
    same run."""
    import importlib.util
    pkg = os.path.join(directory, "hyprof")
    spec = importlib.util.spec_from_file_location(
        "hyprof_baseline", os.path.join(pkg, "__init__.py"), submodule_search_locations=[pkg])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["hyprof_baseline"] = mod
    spec.loader.exec_module(mod)
    return mod


def run_cprofile(fn, scale):
    import cProfile
    p = cProfile.Profile()
    t = time.perf_counter()
    p.enable()
    fn(scale)
    p.disable()
    return time.perf_counter() - t


def run_yappi(clock):
    import yappi

    def run(fn, scale):
        yappi.set_clock_type(clock)
        yappi.clear_stats()
        t = time.perf_counter()
        yappi.start(builtins=True)
        fn(scale)
        yappi.stop()
        dt = time.perf_counter() - t
        yappi.clear_stats()
        return dt
    return run


def profilers(baseline=None, context=False):
    out = {"none": run_plain}
    try:
        from hyprof import _hyprof
        out["hyprof"] = run_hyprof("auto")
        if _hyprof.DEFAULT_ENGINE != "setprofile":
            out["hyprof-setprofile"] = run_hyprof("setprofile")
        if context:
            out["hyprof-context"] = run_hyprof("auto", context=True)
    except ImportError as e:
        sys.exit("bench: cannot import hyprof (%s): build it and set PYTHONPATH" % e)
    if baseline is not None:
        base = load_baseline(baseline)
        out["base:hyprof"] = run_hyprof("auto", base)
        if _hyprof.DEFAULT_ENGINE != "setprofile":
            out["base:setprofile"] = run_hyprof("setprofile", base)
        if context:
            out["base:context"] = run_hyprof("auto", base, context=True)
    out["cProfile"] = run_cprofile
    try:
        import yappi  # noqa: F401
        out["yappi-wall"] = run_yappi("wall")
        out["yappi-cpu"] = run_yappi("cpu")
    except ImportError:
        print("note: yappi is not installed for this Python; skipping it")
    return out


def measure(rounds, scale, only=None, baseline=None, context=False):
    profs = profilers(baseline, context)
    names = list(profs)
    results = {w: {p: [] for p in names} for w in WORKLOADS if not only or w in only}
    for w in results:  # warm up: imports, specialisation, regex caches
        for p in names:
            profs[p](WORKLOADS[w], scale * 0.2)
    for r in range(rounds):
        for w in results:
            # Rotate the order each round so no profiler always runs first.
            order = names[r % len(names):] + names[:r % len(names)]
            for p in order:
                gc.collect()
                results[w][p].append(profs[p](WORKLOADS[w], scale))
    return names, results


def report(names, results):
    medians = {w: {p: statistics.median(v) for p, v in r.items()} for w, r in results.items()}
    print("Python %s, %s" % (sys.version.split()[0], sys.executable))
    head = "%-10s %9s" % ("workload", "base s") + "".join("%19s" % n for n in names[1:])
    head += "   hyprof/cProfile extra"
    print(head)
    for w, m in medians.items():
        base = m["none"]
        row = "%-10s %9.3f" % (w, base)
        for p in names[1:]:
            row += "%18.2fx" % (m[p] / base)
        ratio = (m["hyprof"] / base - 1) / max(m["cProfile"] / base - 1, 1e-9)
        row += "   %.2f" % ratio
        if "hyprof-setprofile" in m:
            row += " (setprofile %.2f)" % (
                (m["hyprof-setprofile"] / base - 1) / max(m["cProfile"] / base - 1, 1e-9))
        for this, before in (("hyprof", "base:hyprof"), ("hyprof-setprofile", "base:setprofile"),
                             ("hyprof-context", "base:context")):
            if this in m and before in m:
                # This build's extra time over the baseline build's.
                row += "  %s/%s %.2f" % (this, before, (m[this] / base - 1) /
                                         max(m[before] / base - 1, 1e-9))
        print(row)
    print("slowdown = profiled / unprofiled time (median of the rounds); extra ratio = "
          "(hyprof - 1) / (cProfile - 1), below 1.0 is cheaper than cProfile")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    ap.add_argument("--scale", type=float, default=1.0, help="workload size factor")
    ap.add_argument("--workload", action="append", choices=sorted(WORKLOADS),
                    help="run only this workload (repeatable)")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also measure the hyprof package of another build (DIR/hyprof, e.g. "
                         "BUILD/python), side by side with this one")
    ap.add_argument("--context", action="store_true",
                    help="also measure a profiler bound to a context (context=(var, value))")
    _pythons.add_options(ap)
    args = ap.parse_args()
    if args.rounds < 1 or args.scale <= 0:
        ap.error("--rounds must be 1 or more and --scale positive")
    if args.all_pythons:
        extra = ["--rounds", str(args.rounds), "--scale", str(args.scale)]
        for w in args.workload or ():
            extra += ["--workload", w]
        return _pythons.run_all(__file__, args.pythonpath, extra)
    names, results = measure(args.rounds, args.scale, args.workload, args.baseline, args.context)
    report(names, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
