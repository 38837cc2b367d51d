"""Traces with known numbers for the report, merge and diff tests.

They are written by the real trace writer (``_hyprof.write_trace``) and read
back with ``hyprof.load``, so the reports are tested on what a user's trace
file gives them. Imported by test_render_*.py, test_merge*.py and
test_diff*.py; holds no tests itself.
"""

import os
import shutil
import subprocess
import sys

import hyprof
import pytest
from hyprof import _hyprof

MS = 1_000_000  # nanoseconds

# Functions: (name, file, first line, kind 0 Python / 1 builtin / 2 special).
MAIN = ("main", "app.py", 1, 0)
WORK = ("work", "app.py", 10, 0)
HELPER = ("helper", "lib.py", 5, 0)
SLEEP = ("time.sleep", "", 0, 1)

DET_METRICS = [("calls", "count", "calls"), ("wall_own", "ns", "own"), ("cpu_own", "ns", "own"),
               ("wall_cum", "ns", "cum"), ("cpu_cum", "ns", "cum")]

# The deterministic trace's call tree, node by node:
#   main                      1 call    1 ms own
#   main > work               3 calls   6 ms own
#   main > work > helper     30 calls   3 ms own
#   main > time.sleep         1 call   50 ms own wall, 10 us CPU
#   main > work > helper > work  2 calls  0.5 ms own (recursion)
# Wall total 60.5 ms; work's inclusive wall time is 9.5 ms (recursion once).
DET_TOTAL_WALL = 60_500_000
DET_TOTAL_CPU = 10_510_000


def det_data(scale=1.0, sleep_ms=50.0, helper_ms=3.0, pid=1234):
    helper = int(helper_ms * MS * scale)
    sleep = int(sleep_ms * MS)
    own = {1: (1, MS, MS), 2: (3, 6 * MS, 6 * MS), 3: (30, helper, helper),
           4: (1, sleep, 10_000), 5: (2, MS // 2, MS // 2)}
    parent = {1: 0, 2: 1, 3: 2, 4: 1, 5: 3}
    cum = {}
    for n in (5, 4, 3, 2, 1):
        w = own[n][1] + sum(cum[k][0] for k in cum if parent[k] == n)
        c = own[n][2] + sum(cum[k][1] for k in cum if parent[k] == n)
        cum[n] = (w, c)
    return {
        "mode": "deterministic",
        "header": {"argv": ["app.py", "--fast"], "pid": pid, "python": "3.12.1"},
        "metrics": DET_METRICS,
        "sample_kinds": [],
        "functions": [MAIN, WORK, HELPER, SLEEP],
        "threads": [(pid, 1, "MainThread")],
        "nodes": [(0, 0, 0), (1, 1, 0), (2, 2, 0), (1, 3, 0), (3, 1, 0)],
        "rows": [(0, n, (own[n][0], own[n][1], own[n][2], cum[n][0], cum[n][1]))
                 for n in (1, 2, 3, 4, 5)],
        "sample_list": [],
    }


SAMPLING_METRICS = [("cpu-clock_samples", "count", "own"), ("cpu-clock_ns", "ns", "own")]

# The sampling trace: two threads, 10 ms per sample, nodes carry lines.
#   MainThread: main@3 x1, main>work@12 x5, main>work@14 x4, main>work@12>helper@6 x10
#   worker:     main@3 > work@12 x7
# Totals: 27 samples (270 ms); main thread 20, worker 7; work own 16, helper 10.


def sampling_data(pid=4321, extra_helper=0, alloc=False):
    samples = []
    t = 0

    def add(thread, node, n):
        nonlocal t
        for _ in range(n):
            t += 10 * MS
            samples.append((thread, node, 0, t, 10 * MS))

    add(0, 1, 1)
    add(0, 2, 5)
    add(0, 3, 4)
    add(0, 4, 10 + extra_helper)
    add(1, 2, 7)
    metrics = list(SAMPLING_METRICS)
    kinds = [("cpu-clock", "ns", 0, 1)]
    if alloc:
        metrics += [("alloc_samples", "count", "own"), ("alloc_bytes", "bytes", "own")]
        kinds.append(("alloc", "bytes", 2, 3))
        samples.append((0, 4, 1, t + 1, 4096))
        samples.append((0, 4, 1, t + 2, 1024))
        samples.append((1, 2, 1, t + 3, 512))
    return {
        "mode": "sampling",
        "header": {"argv": ["app.py"], "pid": pid, "trigger": "timer", "event": "cpu-clock",
                   "period": 10 * MS},
        "metrics": metrics,
        "sample_kinds": kinds,
        "functions": [MAIN, WORK, HELPER],
        "threads": [(pid, 1, "MainThread"), (pid + 1, 2, "worker")],
        "nodes": [(0, 0, 3), (1, 1, 12), (1, 1, 14), (2, 2, 6)],
        "rows": [],
        "sample_list": samples,
    }


def write(path, data):
    """Writes data with the real writer and loads it back."""
    _hyprof.write_trace(os.fspath(path), data)
    return hyprof.load(path)


def det_trace_in(directory):
    """The deterministic trace, written in directory and loaded."""
    return write(directory / "det.hyprof", det_data())


def sampling_trace_in(directory):
    """The sampling trace, written in directory and loaded."""
    return write(directory / "sampling.hyprof", sampling_data())


def run_hyprof(*args, cwd=None, check=True):
    """Runs ``python -m hyprof ARGS`` with this interpreter and path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    res = subprocess.run([sys.executable, "-m", "hyprof", *map(str, args)], cwd=cwd, env=env,
                         capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        command = " ".join(map(str, args))
        raise AssertionError(f"hyprof {command} failed ({res.returncode}):\n{res.stdout}"
                             f"{res.stderr}")
    return res


def tool_env(**extra):
    """The environment for external tools (dot, go, callgrind_annotate):
    without a sanitized build's preloaded runtimes, which are for the
    interpreter only."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
    env.update(extra)
    return env


# The peak resident size of a test's own process, in KiB. VmHWM, not
# ru_maxrss: a child started by fork and exec inherits its parent's
# ru_maxrss, which under pytest is larger than these reports grow by.
PEAK_KIB = r"""
def peak_kib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
"""


def peak_env():
    """The environment for a child whose peak memory is measured. Under
    AddressSanitizer, freed memory waits in a quarantine (256 MiB by default)
    before it is reused, so a process that frees as it goes would grow as if
    it kept everything: the child runs with the quarantine off."""
    env = dict(os.environ)
    if env.get("HYP_UNDER_SANITIZERS"):
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0"
    return env


def need(tool, package):
    """The path of an external tool, or a skip naming the package to install."""
    # pip installs a tool's script beside the interpreter, which need not be
    # on PATH (pyenv's versions are not).
    path = shutil.which(tool) or shutil.which(tool, path=os.path.dirname(sys.executable))
    if path is None:
        for d in ("/usr/lib/go/bin", "/usr/lib/go-1.19/bin"):
            cand = os.path.join(d, tool)
            if os.access(cand, os.X_OK):
                return cand
        pytest.skip(f"{tool} is not installed (apt-get install {package})")
    return path


# Formats that weigh a sampling trace by a metric column.
_METRIC_FORMATS = ("text", "tree", "html", "speedscope", "collapsed", "dot", "pprof", "svg")


def every_format(trace, metric=None):
    """{format: output as text} of trace in every format that takes it
    (pstats takes deterministic traces only), weighed by metric (a sampling
    trace's column) where the format takes one; pprof decompressed."""
    import gzip
    from hyprof import render as R
    out = {}
    for fmt in sorted(R.FORMATS):
        if fmt == "pstats" and trace.mode == "sampling":
            continue
        opts = {"metric": metric} if metric and fmt in _METRIC_FORMATS else {}
        data = R.render(trace, fmt, **opts)
        if fmt == "pprof":
            data = gzip.decompress(data)
        out[fmt] = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return out


def shows(text, name):
    """Whether a report shows a function's name (HTML embeds names as JSON,
    with < and > escaped; SVG as XML text)."""
    from xml.sax.saxutils import escape

    return (name in text or name.replace("<", "\\u003c").replace(">", "\\u003e") in text
            or escape(name) in text)


def go_pprof_top(trace, tmp_path, sample_index):
    """What `go tool pprof -top` prints of trace's pprof for one sample type
    (a skip when Go is not installed)."""
    from hyprof import render as R
    go = need("go", "golang-go")
    f = tmp_path / "top.pb.gz"
    f.write_bytes(R.render(trace, "pprof"))
    return subprocess.run([go, "tool", "pprof", f"-sample_index={sample_index}", "-top", str(f)],
                          capture_output=True, text=True, check=True,
                          env=tool_env(HOME=str(tmp_path))).stdout


def tree_rows(text):
    """The rows of a console tree report (render/tree.py), as dicts: share
    (a percentage, or None for a summary line), value, count, depth (0 for
    a top frame), name, where and note; the functions listed after the
    tree are left out."""
    import re

    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln) for ln in text.splitlines()]
    head = next(i for i, ln in enumerate(lines) if "call tree, by " in ln)
    start = lines[head].index("call tree, by ")
    rows = []
    for ln in lines[head + 1:]:
        if not ln.strip() or ln.startswith("note: "):
            break
        nums, rest = ln[:start].split(), ln[start:]
        guide = len(rest) - len(rest.lstrip("│├└─|`- "))
        cells = rest[guide:].split("  ")
        share = float(nums[0].rstrip("%")) if nums and nums[0].endswith("%") else None
        rows.append({"share": share, "value": " ".join(nums[1:-1] if len(nums) > 2 and
                                                        nums[-1].isdigit() else nums[1:]),
                     "count": int(nums[-1]) if len(nums) > 2 and nums[-1].isdigit() else None,
                     "depth": guide // 3, "name": cells[0],
                     "where": cells[1] if len(cells) > 1 else "",
                     "note": "  ".join(cells[2:])})
    return rows
