"""The cost of profiling lock contention, side by side in one run.

Two workloads, each in its own child process per configuration, the
configurations interleaved round by round (the order rotates) and each one's
slowdown the median of its per-round ratios to the unprofiled run of the
same round:

- queue: a producer and two consumers passing items through a bounded
  queue.Queue (its mutex and conditions: a lock-heavy program whose locks are
  contended, the case the issue names);
- contended: four threads taking one threading.Lock around a little work,
  which contend whenever the GIL moves to another thread while the lock is
  held (every 5 ms, the switch interval);
- uncontended: one thread taking and releasing a threading.Lock in a loop,
  which measures what the wrapper costs when no lock is ever contended;
- asyncio: four tasks of one event loop taking one asyncio.Lock, each
  awaiting once while it holds it, so that the others queue for it (every
  acquisition but a few waits).

Configurations: none; cprofile (what a developer reaches for first, which
does not see locks, and profiles only the thread that enables it: the
workloads' other threads run unprofiled under it); hyprof deterministic without and with locks=True;
hyprof sampling at 100 Hz without and with locks=True (lock_interval 1 ms).
Slowdowns are given in the workload's wall time (contention is waiting, not
CPU) and in its process CPU time (all its threads, the profiler's work
included), which other load on the machine disturbs less.

    ./pyrun bench/bench_locks.py [--rounds 5] [--items 100000]
"""

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, queue, sys, threading, time
cfg, work, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

def run_queue():
    q = queue.Queue(maxsize=64)
    def produce():
        for i in range(n):
            q.put(i)
        for _ in range(2):
            q.put(None)
    def consume():
        while q.get() is not None:
            pass
    ts = [threading.Thread(target=produce)] + [threading.Thread(target=consume) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()

def run_contended():
    lock = threading.Lock()
    def work():
        for _ in range(n // 2):
            with lock:
                sum(range(30))
    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()

def run_uncontended():
    lock = threading.Lock()
    for _ in range(n * 10):
        with lock:
            pass

def run_asyncio():
    import asyncio

    async def main():
        lock = asyncio.Lock()

        async def task():
            for _ in range(n // 40):
                async with lock:
                    await asyncio.sleep(0)

        await asyncio.gather(*(task() for _ in range(4)))

    asyncio.run(main())

body = {"queue": run_queue, "contended": run_contended, "uncontended": run_uncontended,
        "asyncio": run_asyncio}[work]

def timed():
    global cpu
    t0, c0 = time.perf_counter(), time.process_time()
    body()
    cpu = time.process_time() - c0
    return time.perf_counter() - t0

stats = {}
if cfg == "none":
    el = timed()
elif cfg == "cprofile":
    import cProfile
    pr = cProfile.Profile()
    pr.enable()
    el = timed()
    pr.disable()
else:
    import hyprof
    mode, locks = cfg.split("-")
    opts = {"locks": locks == "locks"}
    if mode == "sampling":
        opts.update(frequency=100)
    p = hyprof.Profiler(mode=mode, **opts)
    with p:
        el = timed()
    if locks == "locks":
        stats = hyprof._hyprof.locks_stats() if mode == "sampling" else {}
print(json.dumps({"elapsed": el, "cpu": cpu, "stats": stats}))
"""

CONFIGS = ["none", "cprofile", "deterministic-plain", "deterministic-locks",
           "sampling-plain", "sampling-locks"]


def run(cfg, work, n):
    out = subprocess.run([sys.executable, "-c", CHILD, cfg, work, str(n)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--items", type=int, default=200000)
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {args.rounds} rounds, {args.items} queue items, "
          f"{args.items * 2} contended and {args.items * 10} uncontended acquisitions, "
          f"{args.items // 10} asyncio ones")
    for work in ("queue", "contended", "uncontended", "asyncio"):
        ratios = {c: [] for c in CONFIGS}
        cpu_ratios = {c: [] for c in CONFIGS}
        base = []
        last = {}
        for r in range(args.rounds):
            order = CONFIGS[r % len(CONFIGS):] + CONFIGS[:r % len(CONFIGS)]
            got = {c: run(c, work, args.items) for c in order}
            base.append(got["none"]["elapsed"])
            for c in CONFIGS:
                ratios[c].append(got[c]["elapsed"] / got["none"]["elapsed"])
                cpu_ratios[c].append(got[c]["cpu"] / got["none"]["cpu"])
            last = got
        print(f"\n{work}: unprofiled {statistics.median(base):.3f} s (median)")
        print(f"  {'configuration':22s} {'wall':>7s} {'spread':>13s} {'cpu':>7s} {'spread':>13s}")
        for c in CONFIGS:
            rs, cs = ratios[c], cpu_ratios[c]
            print(f"  {c:22s} {statistics.median(rs):7.3f} {min(rs):6.3f}-{max(rs):.3f} "
                  f"{statistics.median(cs):7.3f} {min(cs):6.3f}-{max(cs):.3f}")
        st = last["sampling-locks"]["stats"]
        if st:
            print(f"  sampling-locks, last round: {st['waits']} waits and {st['holds']} holds "
                  f"seen, {st['sampled_waits']} and {st['sampled_holds']} sampled")


if __name__ == "__main__":
    main()
