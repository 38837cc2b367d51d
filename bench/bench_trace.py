#!/usr/bin/env python3
"""The trace reader and the aggregations, side by side with the obvious
alternatives, on a large trace: 100,000 call-path nodes and 1,000,000
samples (sampling), and the same 100,000 nodes with timings (deterministic).

For each trace, in one run, it prints:
  * the file size and bytes per sample;
  * hyprof.load (the C reader: decodes, checks every reference, builds the
    rows) against msgpack.Unpacker merely decoding the same file, as a ratio;
  * Trace.functions() (flat statistics with recursion counted once, in C)
    against the same computation in pure Python, as a ratio;
  * load + functions() + edges() together, which the render benchmark needs
    under 2 s end to end.

Usage: bench_trace.py [--nodes N] [--samples N]   (run with the build's ./pyrun)
"""

import argparse
import os
import random
import sys
import tempfile
import time

import hyprof
import msgpack
from hyprof import _hyprof


def tree(nnodes, rng):
    nfuncs = max(50, nnodes // 20)
    functions = [(f"f{i}", f"mod{i % 40}.py", 1 + i, 0) for i in range(nfuncs)]
    nodes = []
    depth = [0]
    for i in range(1, nnodes):
        parent = max(0, i - 1 - int(rng.expovariate(0.3))) if rng.random() < 0.8 \
            else rng.randrange(i)
        if depth[parent] > 80:
            parent = rng.randrange(max(1, i // 10))
        depth.append(depth[parent] + 1)
        nodes.append((parent, rng.randrange(nfuncs), rng.randrange(1, 300)))
    return functions, nodes


def sampling_data(functions, nodes, nsamples, rng):
    n = len(nodes)
    t = 0
    samples = []
    for i in range(nsamples):
        t += 1_000_000 + rng.randrange(2000)
        samples.append((i % 4 == 0, 1 + int(rng.paretovariate(1.2) * 7) % n, 0, t,
                        1_000_000 + rng.randrange(2000)))
    return {"mode": "sampling",
            "metrics": [("samples", "count", "own"), ("cpu-clock", "ns", "own")],
            "sample_kinds": [("cpu-clock", "ns", 0, 1)],
            "functions": functions, "threads": [(1, 1, "MainThread"), (2, 2, "worker")],
            "nodes": nodes, "sample_list": samples}


def det_data(functions, nodes, rng):
    rows = []
    for i in range(1, len(nodes) + 1):
        own = rng.randrange(1, 50_000)
        rows.append((0, i, (rng.randrange(1, 20), own, own // 2, own * 3, own)))
    return {"mode": "deterministic",
            "metrics": [("calls", "count", "calls"), ("wall_own", "ns", "own"),
                        ("cpu_own", "ns", "own"), ("wall_cum", "ns", "cum"),
                        ("cpu_cum", "ns", "cum")],
            "functions": functions, "threads": [(1, 1, "MainThread")],
            "nodes": nodes, "rows": rows}


def python_flat(t, metric):
    """The flat own/cum of one own column in pure Python, from Trace.nodes():
    what a reader without the C aggregation would do."""
    nodes = t.nodes()
    n = len(nodes)
    sub = [nd.values[metric] for nd in nodes]
    for i in range(n - 1, 0, -1):
        sub[nodes[i].parent] += sub[i]
    children = [[] for _ in range(n)]
    for nd in nodes[1:]:
        children[nd.parent].append(nd.id)
    own, cum, active = {}, {}, {}
    stack = [(0, iter(children[0]))]
    while stack:
        x, it = stack[-1]
        c = next(it, None)
        if c is None:
            stack.pop()
            if x:
                active[nodes[x].function.id] -= 1
            continue
        f = nodes[c].function.id
        own[f] = own.get(f, 0) + nodes[c].values[metric]
        if not active.get(f):
            cum[f] = cum.get(f, 0) + sub[c]
        active[f] = active.get(f, 0) + 1
        stack.append((c, iter(children[c])))
    return own, cum


def timed(fn, repeat=3):
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best, result


def run(name, path, nsamples, metric):
    size = os.path.getsize(path)
    print(f"{name}: {size / 1e6:.1f} MB"
          + (", %.2f bytes/sample (whole file)" % (size / nsamples) if nsamples else ""))
    t_load, t = timed(lambda: hyprof.load(path))

    def unpack():
        with open(path, "rb") as f:
            return sum(1 for _ in msgpack.Unpacker(f, raw=False, max_buffer_size=1 << 30))

    t_unpack, _ = timed(unpack)
    print(f"  hyprof.load {t_load:.3f} s   msgpack.Unpacker decode only {t_unpack:.3f} s   ratio {t_load / t_unpack:.2f}")

    def flat():
        t._flat_cache.clear()
        return t.functions()

    t_flat, funcs = timed(flat)
    t_py, (own, cum) = timed(lambda: python_flat(t, metric), repeat=1)
    check = {f.id: (f.own[metric], f.cum[metric]) for f in funcs}
    assert all(check[f] == (own[f], cum[f]) for f in own if own[f] or cum[f]), "mismatch"
    print(f"  Trace.functions() {t_flat:.3f} s   pure Python {t_py:.3f} s   ratio {t_py / t_flat:.1f}x faster")

    def end_to_end():
        u = hyprof.load(path)
        return len(u.functions()), len(u.edges())

    t_all, (nf, ne) = timed(end_to_end)
    print(f"  load + functions() + edges(): {t_all:.3f} s ({nf} functions, {ne} edges;"
          " target < 2 s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=1_000_000)
    args = ap.parse_args()
    rng = random.Random(3)
    functions, nodes = tree(args.nodes, rng)
    with tempfile.TemporaryDirectory() as tmp:
        sp = os.path.join(tmp, "sampling.hyprof")
        t0 = time.perf_counter()
        _hyprof.write_trace(sp, sampling_data(functions, nodes, args.samples, rng))
        print(f"(wrote the sampling trace in {time.perf_counter() - t0:.2f} s from Python tables)")
        run(f"sampling, {args.nodes} nodes, {args.samples} samples", sp, args.samples, "samples")
        dp = os.path.join(tmp, "deterministic.hyprof")
        _hyprof.write_trace(dp, det_data(functions, nodes, rng))
        run(f"deterministic, {args.nodes} nodes", dp, 0, "wall_own")
    return 0


if __name__ == "__main__":
    sys.exit(main())
