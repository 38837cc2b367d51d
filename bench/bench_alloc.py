"""Allocation profiling cost, side by side: an allocation-heavy workload run
unprofiled, under hyprof's allocation sampling (default 512 KiB interval, and
64 KiB), under tracemalloc (1 and 25 frames), and under memray where it is
installed. Each configuration runs in its own child process, so each peak
RSS is its own; the configurations are interleaved round by round (the order
rotates), and the medians are compared.

    ./pyrun bench/bench_alloc.py [--rounds 7] [--scale 2.0]

Prints, per configuration: median CPU seconds of the workload (CPU time, so
that other processes on a busy machine do not count; the workload is
single-threaded), the median of the per-round slowdowns against the
unprofiled run of the same round, the median wall seconds, and peak RSS (and
its excess over the unprofiled run). hyprof's target is a slowdown of at most
1.05 at the default interval.
"""

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

# ---------------------------------------------------------------- the workload

class Record:
    __slots__ = ("key", "payload", "tags")

    def __init__(self, key, tags, payload):
        self.key = key
        self.tags = tags
        self.payload = payload


def make_records(n):
    # Small objects: instances, strings, tuples, lists, dicts.
    out = []
    for i in range(n):
        key = "user-%d" % i
        out.append(Record(key, (key, i % 7, "x" * (i % 13)), {"id": i, "name": key}))
    return out


def churn_buffers(n):
    # Medium and large buffers, most freed at once.
    keep = []
    for i in range(n):
        b = bytearray(256 + (i % 64) * 128)
        if i % 50 == 0:
            keep.append(bytes(64 * 1024))
        del b
    return keep


def json_round_trip(records):
    text = json.dumps([{"k": r.key, "t": list(r.tags)} for r in records[:2000]])
    return json.loads(text)


def workload(scale):
    live = []
    for _ in range(int(4 * scale)):
        recs = make_records(40000)
        live.append(recs[::100])
        live.append(churn_buffers(20000))
        json_round_trip(recs)
        del recs
    return live


# ---------------------------------------------------------------- one configuration

def run_child(config, scale):
    """Runs the workload once under config; prints a JSON line."""
    tmpdir = tempfile.mkdtemp(prefix="bench-alloc-")
    stop = lambda: None
    extra = {}
    if config == "none":
        # The same modules loaded as under hyprof, so peak RSS compares alike.
        import hyprof
    elif config.startswith("hyprof"):
        import hyprof
        interval = 512 * 1024 if config == "hyprof" else int(config.split("-")[1]) * 1024
        p = hyprof.Profiler(mode="sampling", memory_only=True, memory_interval=interval)
        p.start()

        def stop():
            p.stop()
            extra["samples"] = hyprof.memory.MemoryEngine().stats()["samples"]
    elif config.startswith("tracemalloc"):
        import tracemalloc
        tracemalloc.start(int(config.split("-")[1]))

        def stop():
            extra["peak_traced"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    elif config == "memray":
        import memray
        tracker = memray.Tracker(os.path.join(tmpdir, "memray.bin"))
        tracker.__enter__()

        def stop():
            tracker.__exit__(None, None, None)
    else:
        raise SystemExit("unknown configuration %r" % config)
    t0 = time.perf_counter()
    c0 = time.process_time()
    live = workload(scale)
    cpu = time.process_time() - c0
    elapsed = time.perf_counter() - t0
    stop()
    del live
    extra.update(config=config, seconds=cpu, wall=elapsed,
                 maxrss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    print(json.dumps(extra))


def measure(config, scale):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", config,
                          "--scale", str(scale)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (config, out.stderr.strip()))
    return json.loads(out.stdout.strip().splitlines()[-1])


def available_configs():
    configs = ["none", "hyprof", "hyprof-64", "tracemalloc-1", "tracemalloc-25"]
    if importlib.util.find_spec("memray") is not None:
        configs.append("memray")
    return configs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--scale", type=float, default=2.0)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_child(args.child, args.scale)
        return
    if args.rounds < 1 or args.scale <= 0:
        ap.error("--rounds must be at least 1 and --scale positive")

    configs = available_configs()
    results = {c: [] for c in configs}
    print("bench_alloc: Python %s, %d rounds, configurations: %s"
          % (sys.version.split()[0], args.rounds, ", ".join(configs)))
    if "memray" not in configs:
        print("  (memray is not installed for this interpreter: skipped)")
    for r in range(args.rounds):
        order = configs[r % len(configs):] + configs[:r % len(configs)]
        for c in order:
            results[c].append(measure(c, args.scale))

    base_t = statistics.median(x["seconds"] for x in results["none"])
    base_rss = statistics.median(x["maxrss_kib"] for x in results["none"])
    labels = {
        "none": "unprofiled",
        "hyprof": "hyprof memory, 512 KiB (default)",
        "hyprof-64": "hyprof memory, 64 KiB",
        "tracemalloc-1": "tracemalloc, 1 frame",
        "tracemalloc-25": "tracemalloc, 25 frames",
        "memray": "memray (Python frames)",
    }
    print()
    print("%-34s %9s %9s %9s %11s %11s" % ("configuration", "CPU s", "slowdown", "wall s",
                                            "peak RSS", "RSS extra"))
    for c in configs:
        t = statistics.median(x["seconds"] for x in results[c])
        rss = statistics.median(x["maxrss_kib"] for x in results[c])
        # Ratios of paired rounds, then their median: robust to a slow round.
        ratios = [x["seconds"] / b["seconds"] for x, b in zip(results[c], results["none"])]
        wall = statistics.median(x["wall"] for x in results[c])
        print("%-34s %9.3f %9.3f %9.3f %7.1f MiB %7.1f MiB" % (
            labels.get(c, c), t, statistics.median(ratios), wall, rss / 1024.0,
            (rss - base_rss) / 1024.0))
    hy = statistics.median(x["seconds"] / b["seconds"]
                           for x, b in zip(results["hyprof"], results["none"]))
    samples = statistics.median(x.get("samples", 0) for x in results["hyprof"])
    print()
    print("hyprof at the default interval: slowdown %.3f (target <= 1.05), %d samples per run; "
          "unprofiled median %.3f CPU s" % (hy, samples, base_t))


if __name__ == "__main__":
    main()
