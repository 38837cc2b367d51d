"""Cost per call against the number of distinct callees of one call path.

One call site calls N distinct functions round robin (a dispatcher, an
event loop's callbacks, a template engine's nodes). Each call must cost the
same whatever N is: the table gives the profiler's extra time per call (its
time less the unprofiled time, over the number of calls) for hyprof, cProfile
and yappi, and hyprof's figure as a ratio of cProfile's.

    python bench/bench_callees.py [--sizes 10,1000,10000,50000] [--calls 200000]
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_deterministic import run_cprofile, run_hyprof, run_plain, run_yappi  # noqa: E402


def make_callees(n):
    ns = {}
    src = "".join(f"def f{i}():\n    return {i}\n" for i in range(n))
    exec(compile(src, "<callees>", "exec"), ns)
    return [ns[f"f{i}"] for i in range(n)]


def workload(funcs, calls):
    rounds = max(1, calls // len(funcs))

    def run(scale):
        for _ in range(rounds):
            for f in funcs:
                f()
    return run, rounds * len(funcs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10,100,1000,10000,50000",
                    help="numbers of distinct callees, comma-separated")
    ap.add_argument("--calls", type=int, default=200000, help="calls per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="measurements per profiler")
    args = ap.parse_args()
    try:
        sizes = [int(x) for x in args.sizes.split(",")]
    except ValueError:
        ap.error("--sizes must be integers separated by commas")
    if any(n < 1 for n in sizes) or args.calls < 1 or args.rounds < 1:
        ap.error("--sizes, --calls and --rounds must be positive")
    profs = {"hyprof": run_hyprof("auto"), "cProfile": run_cprofile}
    try:
        import yappi  # noqa: F401
        profs["yappi-cpu"] = run_yappi("cpu")
    except ImportError:
        print("note: yappi is not installed for this Python; skipping it")
    print(f"Python {sys.version.split()[0]}: extra microseconds per call")
    print(f"{'callees':>8s} " + " ".join(f"{p:>10s}" for p in profs) + "   hyprof/cProfile")
    for n in sizes:
        fn, ncalls = workload(make_callees(n), args.calls)
        extra = {}
        for name, run in profs.items():
            samples = []
            for _ in range(args.rounds):
                base = run_plain(fn, 1.0)
                samples.append(max(run(fn, 1.0) - base, 0.0) / ncalls * 1e6)
            extra[name] = statistics.median(samples)
        print(f"{n:8d} " + " ".join(f"{extra[p]:10.3f}" for p in profs) +
              f"   {extra['hyprof'] / max(extra['cProfile'], 1e-9):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
