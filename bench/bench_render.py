#!/usr/bin/env python3
"""How long reports take, and how much memory, on large traces.

Writes synthetic traces with the real trace writer (_hyprof.write_trace):
  * sampling, 1,000,000 samples over 20,000 distinct call paths;
  * sampling, 100,000 samples over the same 20,000 call paths (memory must
    not grow with the samples: compare the two peak RSS figures);
  * deterministic, 100,000 call-path nodes.
Then, for each trace and format, a fresh process loads the trace and
renders it to a file as `hyprof report -o` does, printing the seconds for
the load and for the format, the output size and the process's peak RSS
(the load's included). The target: text, collapsed and speedscope each in
under two seconds.

With --browser each HTML report is also opened in headless Chromium, and
the time until its script is done is printed (target: under 2 s).

Usage: bench_render.py [--formats html,collapsed,...] [--nodes N] [--samples N] [--browser]
(run it with the build's ./pyrun, or with hyprof installed).
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

FILES = ["app/main.py", "app/views.py", "app/models.py", "lib/db.py", "lib/json.py",
         "lib/http.py", "lib/template.py", "lib/cache.py"]


def _tree(nnodes, rng, lines=True):
    """A call tree shaped like a web app's: a few deep spines, wide fans."""
    nfuncs = max(50, nnodes // 20)
    functions = [(f"func_{i}", FILES[i % len(FILES)], 10 + 7 * i, 0) for i in range(nfuncs)]
    nodes = []
    depth = [0]
    for i in range(1, nnodes):
        # Prefer recent nodes as parents (deep paths), sometimes restart high.
        if rng.random() < 0.7:
            parent = max(0, i - 1 - int(rng.expovariate(0.5)))
        else:
            parent = rng.randrange(0, i)
        if depth[parent] > 60:
            parent = rng.randrange(0, max(1, i // 10))
        depth.append(depth[parent] + 1)
        nodes.append((parent, rng.randrange(nfuncs), rng.randrange(1, 400) if lines else 0))
    return functions, nodes


def write_traces(tmp, nnodes, nsamples):
    from hyprof import _hyprof

    rng = random.Random(7)
    paths = {}
    functions, nodes = _tree(nnodes // 5, rng)
    for name, n in ((f"sampling-{nsamples}", nsamples),
                    (f"sampling-{nsamples // 10}", nsamples // 10)):
        leaves = list(range(1, len(nodes) + 1))
        samples = []
        t = 0
        for _ in range(n):
            t += 1000000
            samples.append((0, leaves[int(rng.random() ** 2 * len(leaves))], 0, t, 1000000))
        data = {
            "mode": "sampling",
            "header": {"argv": ["bench.py"], "trigger": "synthetic"},
            "metrics": [("cpu-clock_samples", "count", "own"), ("cpu-clock_ns", "ns", "own")],
            "sample_kinds": [("cpu-clock", "ns", 0, 1)],
            "functions": functions,
            "threads": [(1000, 1, "MainThread")],
            "nodes": nodes,
            "rows": [],
            "sample_list": samples,
        }
        path = os.path.join(tmp, name + ".hyprof")
        _hyprof.write_trace(path, data)
        paths[name] = path
        del samples, data
    # The deterministic mode records no lines: a node per (parent, function).
    functions, nodes = _tree(nnodes, rng, lines=False)
    rows = []
    for i in range(1, len(nodes) + 1):
        own = int(rng.expovariate(1 / 20000.0))
        rows.append((0, i, (rng.randrange(1, 50), own, own // 2, 0, 0)))
    data = {
        "mode": "deterministic",
        "header": {"argv": ["bench.py"]},
        "metrics": [("calls", "count", "calls"), ("wall_own", "ns", "own"),
                    ("cpu_own", "ns", "own"), ("wall_cum", "ns", "cum"),
                    ("cpu_cum", "ns", "cum")],
        "sample_kinds": [],
        "functions": functions,
        "threads": [(1000, 1, "MainThread")],
        "nodes": nodes,
        "rows": rows,
        "sample_list": [],
    }
    path = os.path.join(tmp, f"deterministic-{nnodes}.hyprof")
    _hyprof.write_trace(path, data)
    paths[f"deterministic-{nnodes}"] = path
    return paths


def peak_rss_mib():
    """This process's peak resident set (VmHWM). Not getrusage's ru_maxrss,
    which a child started by fork and exec inherits from its parent."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def browser_ms(page_text):
    """Milliseconds until an HTML report's script is done in headless
    Chromium (the page's own performance.now() at ready, so Chromium's
    start-up is not counted), or None without Chromium."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                    "tests", "browser"))
    import check_html

    if check_html.find_browser() is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".html", delete=False) as f:
        f.write(page_text)
    try:
        res = check_html.check(f.name, timeout=600)
    finally:
        os.unlink(f.name)
    if not res["ok"]:
        raise RuntimeError("the report did not load cleanly: %s" % res["errors"][:3])
    return res["ready_ms"]


def measure(path, formats, browser=False):
    """Runs in a fresh process: load, then each format; prints JSON."""
    import hyprof
    from hyprof import render as R

    out = {"size": os.path.getsize(path)}
    t0 = time.perf_counter()
    # Samples kept, as `hyprof report -o x.html` keeps them for the timeline.
    trace = hyprof.load(path, keep_samples="html" in formats)
    out["load"] = time.perf_counter() - t0
    out["nodes"] = trace.node_count
    out["rss_after_load_mib"] = peak_rss_mib()
    from hyprof.cli import files

    for fmt in formats:
        # Written to a file as `hyprof report -o` writes it: the path formats
        # a piece at a time (render.stream()).
        target = os.path.join(os.path.dirname(path), f"out.{fmt}")
        t0 = time.perf_counter()
        try:
            files.write_report(target, R.stream(trace, fmt))
        except ValueError as e:
            out[fmt] = {"error": str(e)}
            continue
        # The peak of the load and the render, before Chromium's harness
        # reads the page in this process too.
        out[fmt] = {"seconds": time.perf_counter() - t0, "bytes": os.path.getsize(target),
                    "peak_rss_mib": peak_rss_mib()}
        if fmt == "html" and browser:
            with open(target, encoding="utf-8", errors="surrogateescape") as f:
                out[fmt]["browser_ms"] = browser_ms(f.read())
        os.unlink(target)
    out["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--formats", default=None,
                    help="comma-separated formats (default: all registered)")
    ap.add_argument("--nodes", type=int, default=100000)
    ap.add_argument("--samples", type=int, default=1000000)
    ap.add_argument("--browser", action="store_true",
                    help="also load each HTML report in headless Chromium and print how"
                    " long its script took")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    args = ap.parse_args()
    from hyprof import render as R

    formats = args.formats.split(",") if args.formats else sorted(R.FORMATS)
    if args.measure:
        measure(args.measure, formats, args.browser)
        return 0
    with tempfile.TemporaryDirectory(prefix="hyprof-bench-") as tmp:
        t0 = time.perf_counter()
        paths = write_traces(tmp, args.nodes, args.samples)
        print(f"wrote the traces in {time.perf_counter() - t0:.1f} s"
              f" (Python {sys.version.split()[0]})")
        worst = {}
        for name, path in paths.items():
            # A fresh process per format: each format's peak RSS is its own
            # (the load's included), as `hyprof report -o` would see it.
            results = {}
            for fmt in formats:
                res = subprocess.run([sys.executable, os.path.abspath(__file__), "--measure",
                                      path, "--formats", fmt]
                                     + (["--browser"] if args.browser else []),
                                     capture_output=True, text=True, check=False)
                if res.returncode != 0:
                    print(f"{name}: the measuring process failed:\n{res.stderr[-2000:]}")
                    return 1
                results[fmt] = json.loads(res.stdout.strip().splitlines()[-1])
            r = results[formats[0]]
            print(f"\n{name}: {r['size'] / 1048576.0:.1f} MiB trace, {r['nodes']} call-path"
                  f" nodes, load {r['load']:.3f} s, peak RSS {r['rss_after_load_mib']:.0f} MiB"
                  " after the load")
            for fmt in formats:
                f = results[fmt][fmt]
                if "error" in f:
                    print(f"  {fmt:<11}  n/a: {f['error']}")
                    continue
                shown = ("" if f.get("browser_ms") is None
                         else f"  ready in Chromium after {f['browser_ms'] / 1000.0:.2f} s")
                print(f"  {fmt:<11} {f['seconds']:7.3f} s  {f['bytes'] / 1024.0:9.1f} KiB"
                      f"  peak RSS {f['peak_rss_mib']:4.0f} MiB{shown}")
                worst[fmt] = max(worst.get(fmt, 0.0), results[fmt]["load"] + f["seconds"])
        print("\nslowest load + render per format (target: under 2 s for text, collapsed,"
              " speedscope):")
        for fmt in formats:
            if fmt in worst:
                print(f"  {fmt:<11} {worst[fmt]:7.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
