#!/usr/bin/env python3
"""The continuous profiler in a service, side by side in one run.

    bench_continuous.py [--part service,churn,windows] [--seconds 10] [--rounds 3]
                        [--churn-minutes 2]

service: a Django view served over loopback (wsgiref, one process) and
  loaded from a second process by a request loop, without a profiler, with
  hyprof's continuous profiler at 100 Hz and 1 kHz (labels on, pprof served),
  and recorded by py-spy at 100 Hz (when installed). Prints requests per
  second and p50/p99 latency, each the median of the rounds, and their
  ratios to the run without a profiler. Target: no change beyond the
  run-to-run spread at 100 Hz, at most 2% at 1 kHz.
churn: a program that makes new functions all the time (new code objects
  and file names), under the continuous profiler at 1 kHz for a few
  minutes, windows written to disk and rotated: resident memory and the
  tables the profiler holds, every 10 s. They must stay flat.
windows: four threads at 100 Hz, windows of 10 s written to disk: bytes per
  window and the time to take a window and to serve one as pprof.

Run it with the build's ./pyrun, or with hyprof installed.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

APP = '''
import os
import django
from django.conf import settings

settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
                   SECRET_KEY="bench", MIDDLEWARE=MIDDLEWARE, INSTALLED_APPS=[],
                   TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}])
django.setup()

from django.http import HttpResponse
from django.template import engines
from django.urls import path

PAGE = engines["django"].from_string(
    "<ul>{% for r in rows %}<li>{{ r.name|title }}: {{ r.value|floatformat:2 }}</li>"
    "{% endfor %}</ul>")


def catalog(request):
    rows = [{"name": "item %d" % i, "value": i * 1.5} for i in range(150)]
    return HttpResponse(PAGE.render({"rows": rows}))


urlpatterns = [path("", catalog)]
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port, hz):
    """The server process: the Django app on wsgiref, one request at a time,
    with the continuous profiler at hz (0: none)."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    middleware = []
    if hz:
        middleware = ["hyprof.contrib.django_labels.LabelMiddleware"]
    ns = {"MIDDLEWARE": middleware, "__name__": "benchapp"}
    sys.modules["benchapp"] = type(sys)("benchapp")
    sys.modules["benchapp"].__dict__.update(ns)
    exec(compile(APP, "benchapp.py", "exec"), sys.modules["benchapp"].__dict__)
    from django.core.wsgi import get_wsgi_application
    app = get_wsgi_application()
    if hz:
        import hyprof.serve
        hyprof.serve.start("127.0.0.1:0", frequency=hz)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    httpd = make_server("127.0.0.1", port, app, handler_class=Quiet)
    print("ready", flush=True)
    httpd.serve_forever()


def load(port, seconds):
    """The client process: requests one after the other for seconds."""
    lat = []
    end = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        if t0 >= end:
            break
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        c.close()
        if r.status != 200:
            raise SystemExit("status %d" % r.status)
        lat.append(time.perf_counter() - t0)
    lat.sort()
    print(json.dumps({"rps": len(lat) / seconds, "p50": lat[len(lat) // 2] * 1e3,
                      "p99": lat[int(len(lat) * 0.99)] * 1e3}))


def pyspy_path():
    here = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return here if os.access(here, os.X_OK) else shutil.which("py-spy")


def run_service_config(config, seconds):
    port = free_port()
    hz = {"hyprof-100": 100, "hyprof-1000": 1000}.get(config, 0)
    srv = subprocess.Popen([sys.executable, __file__, "--server", str(port), str(hz)],
                           stdout=subprocess.PIPE, text=True)
    spy = None
    try:
        if srv.stdout.readline().strip() != "ready":
            raise SystemExit(f"{config}: the server did not start")
        subprocess.run([sys.executable, __file__, "--client", str(port), "1"], check=True,
                       capture_output=True)  # warm up
        if config == "py-spy-100":
            spy = subprocess.Popen([pyspy_path(), "record", "--pid", str(srv.pid), "--rate",
                                    "100", "--format", "raw", "-o", os.devnull,
                                    "--duration", str(int(seconds) + 5)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # attached
        out = subprocess.run([sys.executable, __file__, "--client", str(port), str(seconds)],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    finally:
        if spy is not None:
            spy.kill()
            spy.wait()
        srv.kill()
        srv.wait()


def part_service(args):
    try:
        import django  # noqa: F401
    except ImportError:
        print("service: skipped (Django is not installed)")
        return
    configs = ["none", "hyprof-100", "hyprof-1000"]
    if pyspy_path():
        configs.append("py-spy-100")
    else:
        print("service: py-spy is not installed (pip install py-spy); left out")
    runs = {c: [] for c in configs}
    for r in range(args.rounds):
        for c in configs:  # interleaved, so drift hits every config alike
            runs[c].append(run_service_config(c, args.seconds))
    print(f"\nservice: Django view on wsgiref, {args.seconds:g} s x {args.rounds} rounds, "
          "medians (ratio to none)")
    print(f"{'config':<12} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'req/s ratio':>12} "
          f"{'p99 ratio':>10}  spread of req/s")
    base = {k: statistics.median(x[k] for x in runs["none"]) for k in ("rps", "p50", "p99")}
    for c in configs:
        med = {k: statistics.median(x[k] for x in runs[c]) for k in ("rps", "p50", "p99")}
        rps = [x["rps"] for x in runs[c]]
        spread = (max(rps) - min(rps)) / med["rps"] * 100
        print(f"{c:<12} {med['rps']:>9.1f} {med['p50']:>9.2f} {med['p99']:>9.2f} "
              f"{med['rps'] / base['rps']:>12.3f} {med['p99'] / base['p99']:>10.3f}  "
              f"{spread:.1f}%")


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def churn_child(minutes, profiled):
    """One churning program (a subprocess, so its resident size is its own):
    a JSON row every 10 s."""
    import hyprof.continuous as continuous
    from hyprof import _hyprof

    d = tempfile.mkdtemp(prefix="hyprof-bench-")
    p = continuous.start(frequency=1000, tick=1.0, retain=30, directory=d, window=10,
                         keep=3) if profiled else None
    made = 0
    t_start = time.monotonic()
    end = t_start + minutes * 60
    next_report = t_start
    try:
        while time.monotonic() < end:
            for _ in range(20):
                ns = {}
                made += 1
                exec(compile(f"def f_{made}(n):\n    return sum(i * i for i in range(n))\n",
                             f"gen_{made}.py", "exec"), ns)
                ns[f"f_{made}"](400)
            if time.monotonic() >= next_report:
                next_report += 10
                row = {"s": time.monotonic() - t_start, "made": made, "rss": rss_mib()}
                if p is not None:
                    with p._lock:
                        caps = [t[4] for t in p._ticks]
                    kept = _hyprof.merge_profiles(caps, {}) if caps else None
                    row.update(ticks=len(caps), funcs=len(kept.function_table) if kept else 0,
                               nodes=kept.node_count if kept else 0, files=len(os.listdir(d)))
                print(json.dumps(row), flush=True)
    finally:
        if p is not None:
            p.stop()
        shutil.rmtree(d, ignore_errors=True)


def part_churn(args):
    runs = {}
    for config in ("none", "hyprof"):
        out = subprocess.run([sys.executable, __file__, "--churn-child", config,
                              str(args.churn_minutes)], check=True, capture_output=True,
                             text=True).stdout
        runs[config] = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    print(f"\nchurn: new functions all the time (new code objects and file names), "
          f"{args.churn_minutes:g} min, without a profiler and under the continuous "
          "profiler at 1 kHz (tick 1 s, retain 30 s, windows of 10 s on disk, keep 3)")
    print(f"{'s':>5} {'RSS none':>9} {'RSS hyprof':>11} {'made':>9} {'ticks':>6} "
          f"{'functions kept':>15} {'nodes kept':>11} {'files':>6}")
    for a, b in zip(runs["none"], runs["hyprof"]):
        print(f"{b['s']:5.0f} {a['rss']:9.1f} {b['rss']:11.1f} {b['made']:9d} {b['ticks']:6d} "
              f"{b['funcs']:15d} {b['nodes']:11d} {b['files']:6d}")
    for config, rows in runs.items():
        if len(rows) >= 6:
            # After retain (30 s) has filled: growth from then on.
            settled = [r for r in rows if r["s"] >= 40]
            if len(settled) >= 2:
                print(f"RSS {config}: {settled[0]['rss']:.1f} MiB at {settled[0]['s']:.0f} s, "
                      f"{settled[-1]['rss']:.1f} MiB at {settled[-1]['s']:.0f} s "
                      f"({settled[-1]['rss'] - settled[0]['rss']:+.1f} MiB)")


def spin_a(stop):
    while not stop.is_set():
        sum(i * i for i in range(2000))


def spin_b(stop):
    while not stop.is_set():
        sorted(str(i) for i in range(500))


def part_windows(args):
    import hyprof.continuous as continuous
    from hyprof.render import pprof

    d = tempfile.mkdtemp(prefix="hyprof-bench-")
    stop = threading.Event()
    threads = [threading.Thread(target=f, args=(stop,), name=f"worker-{i}")
               for i, f in enumerate([spin_a, spin_b, spin_a, spin_b])]
    p = continuous.start(frequency=100, tick=1.0, retain=60, directory=d, window=10)
    for t in threads:
        t.start()
    takes, renders, sizes = [], [], []
    try:
        for _ in range(int(args.seconds * 3)):
            time.sleep(1)
            t0 = time.perf_counter()
            w = p.recent(10)
            takes.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            sizes.append(len(pprof.render(w)))
            renders.append(time.perf_counter() - t0)
    finally:
        stop.set()
        for t in threads:
            t.join()
        p.stop()
    import hyprof
    files, per_sample = [], []
    for n in sorted(os.listdir(d))[:-1]:  # the last one is cut short by stop()
        path = os.path.join(d, n)
        t = hyprof.load(path)
        samples = sum(f.own_samples for f in t.functions())
        files.append(os.path.getsize(path))
        per_sample.append(files[-1] / max(samples, 1))
    shutil.rmtree(d, ignore_errors=True)
    print(f"\nwindows: 4 threads (sharing the GIL) at 100 Hz of CPU time, windows of 10 s "
          f"on disk; {len(files)} whole ones")
    if files:
        print(f"  bytes per 10 s window on disk: median {statistics.median(files):.0f}, "
              f"max {max(files)}; {statistics.median(per_sample):.1f} B per sample")
    print(f"  recent(10) (add up 10 ticks): median {statistics.median(takes) * 1e3:.2f} ms, "
          f"max {max(takes) * 1e3:.2f} ms")
    print(f"  pprof of it: median {statistics.median(renders) * 1e3:.2f} ms, "
          f"{statistics.median(sizes):.0f} bytes gzipped")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--server":
        return serve(int(sys.argv[2]), int(sys.argv[3]))
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        return load(int(sys.argv[2]), float(sys.argv[3]))
    if len(sys.argv) > 1 and sys.argv[1] == "--churn-child":
        return churn_child(float(sys.argv[3]), sys.argv[2] == "hyprof")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", default="service,churn,windows")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--churn-minutes", type=float, default=2.0)
    args = ap.parse_args()
    print(f"Python {sys.version.split()[0]}, {sys.executable}")
    for part in args.part.split(","):
        {"service": part_service, "churn": part_churn, "windows": part_windows}[part](args)


if __name__ == "__main__":
    main()
