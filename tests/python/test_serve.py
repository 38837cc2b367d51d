"""hyprof.serve: the pprof endpoints over HTTP, driven by real clients
(urllib and http.client on loopback, go tool pprof where Go is installed)
and by ``hyprof run --serve`` in a subprocess.

Neither Parca nor Grafana Pyroscope runs here; go tool pprof fetches
/debug/pprof/profile?seconds=N the way their scrapers do."""

import gzip
import http.client
import logging
import os
import re
import select
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request

import pytest

import hyprof
import hyprof.continuous as continuous
import hyprof.serve as serve
from hyprof.errors import ProfilerError
from hyprof.render import pprof as P
from test_render_support import need, tool_env
from workloads import PRELUDE, SPIN_HOT_LINE, spin

FREQUENCY = 200


def spin_until(stop):
    """CPU work until stop is set: what the profiles should show."""
    while not stop.is_set():
        spin(2000)


@pytest.fixture
def busy():
    """A thread spinning for the test's length."""
    stop = threading.Event()
    t = threading.Thread(target=spin_until, args=(stop,), name="cruncher")
    t.start()
    yield
    stop.set()
    t.join()


@pytest.fixture
def server():
    """A server on a free loopback port over a continuous profiler it
    starts (and stops at the end)."""
    s = serve.start("127.0.0.1:0", frequency=FREQUENCY, tick=0.1, retain=10)
    yield s
    s.stop()
    assert continuous.current() is None


def get(url, headers=None, timeout=30):
    """(status, headers, body) of a GET, errors included."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def messages(data, field):
    return [P.decode(m) for m in P.decode(data).get(field, [])]


def strings(data):
    return [s.decode() for s in P.decode(data)[6]]


def sample_types(data):
    st = strings(data)
    return [(st[m[1][0]], st[m[2][0]]) for m in messages(data, 1)]


def functions(data):
    st = strings(data)
    return {st[m[2][0]] for m in messages(data, 5)}


def total_samples(data):
    total = 0
    for s in messages(data, 2):
        values = s[2][0]
        total += P._read_varint(values, 0)[0]  # the first value: samples/count
    return total


# ---------------------------------------------------------------- the endpoints

def test_index_lists_what_is_served(server):
    status, headers, body = get(server.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    text = body.decode()
    for link in ('href="profile?seconds=30"', 'href="recent?seconds=60"', 'href="allocs"',
                 'href="heap"'):
        assert link in text
    assert f"{FREQUENCY}" in text and "keeps 10 s" in text
    # Go's mux also answers the prefix without its slash.
    assert get(server.url.rstrip("/"))[0] == 200


def timed_get(url):
    """get(url) and what the test's own clocks saw: the wall time before
    it, the seconds it took, and the CPU time the process used meanwhile."""
    before, t0, c0 = time.time(), time.monotonic(), time.process_time()
    got = get(url)
    return got, before, time.monotonic() - t0, time.process_time() - c0


def check_window(body, before, elapsed, cpu, seconds=1):
    """The pprof of a seconds-long window asked for at wall time `before`,
    answered `elapsed` seconds later, while the process used `cpu` seconds:
    the window lasts its seconds (more when the machine is slow to wake the
    handler) and lies within the request; its samples' CPU weights match
    their count (one period each, a timer's overruns aside) and the CPU the
    process had."""
    msg = P.decode(body)
    start, dur = msg[9][0] / 1e9, msg[10][0] / 1e9
    assert seconds * 0.95 <= elapsed < seconds + 5, elapsed
    assert seconds * 0.95 <= dur <= elapsed + 0.05, (dur, elapsed)
    assert before - 0.05 <= start <= before + (elapsed - dur) + 0.05, (start, before, elapsed)
    period = 1 / FREQUENCY
    samples = total_samples(body)
    weight = sum(P._read_varint(m[2][0], P._read_varint(m[2][0], 0)[1])[0]
                 for m in messages(body, 2)) / 1e9
    assert 1 <= samples <= weight / (0.875 * period) + 2, (samples, weight)
    assert weight <= cpu + 2 * period, (weight, cpu)


def test_profile_is_a_gzipped_pprof_of_the_next_seconds(server, busy):
    (status, headers, body), before, elapsed, cpu = timed_get(server.url + "profile?seconds=1")
    assert status == 200, body
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"] == 'attachment; filename="profile"'
    assert body[:2] == b"\x1f\x8b" and gzip.decompress(body)
    assert sample_types(body) == [("samples", "count"), ("cpu", "nanoseconds")]
    msg = P.decode(body)
    st = strings(body)
    # What Parca and Pyroscope read: the window's start and length (it
    # waited for its second, and not much more), and the period of one
    # sample in the period type's unit.
    check_window(body, before, elapsed, cpu)
    period_type = P.decode(msg[11][0])
    assert (st[period_type[1][0]], st[period_type[2][0]]) == ("cpu", "nanoseconds")
    assert msg[12] == [1_000_000_000 // FREQUENCY]
    assert {"spin", "spin_until"} <= functions(body)
    assert "cruncher" in st  # the thread label


def test_recent_answers_at_once_from_what_is_kept(server, busy):
    time.sleep(0.6)
    t0 = time.monotonic()
    status, _, body = get(server.url + "recent?seconds=0.5")
    assert status == 200 and time.monotonic() - t0 < 1
    assert "spin" in functions(body)
    assert 0.3e9 <= P.decode(body)[10][0] <= 1.0e9


def test_two_scrapes_at_once_each_get_their_own_window(server, busy):
    got = {}

    def scrape(k):
        got[k] = timed_get(server.url + "profile?seconds=1")

    threads = [threading.Thread(target=scrape, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(2):
        (status, _, body), before, elapsed, cpu = got[k]
        assert status == 200
        check_window(body, before, elapsed, cpu)
        assert "spin" in functions(body)


@pytest.mark.parametrize("value,says", [
    ("abc", "'abc' is not a number of seconds"),
    ("100000", "out of range"),
    ("0", "out of range"),
    ("-1", "is not a number"),
    ("nan", "is not a number"),
    ("1e3", "is not a number"),
])
def test_bad_seconds_get_400_with_the_reason(server, value, says):
    t0 = time.monotonic()
    status, headers, body = get(server.url + "profile?seconds=" + value)
    assert status == 400 and time.monotonic() - t0 < 1
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    # go tool pprof prints the body of an answer carrying X-Go-Pprof.
    assert headers["X-Go-Pprof"] == "1"
    text = body.decode()
    assert says in text and "at most 10 s" in text and "retain" in text
    assert "Traceback" not in text


def test_max_seconds_below_retain_is_named(busy):
    with serve.start("127.0.0.1:0", frequency=FREQUENCY, tick=0.1, retain=10,
                     max_seconds=2) as s:
        status, _, body = get(s.url + "profile?seconds=3")
        assert status == 400 and b"at most 2 s, this server's max_seconds" in body
    with pytest.raises(ProfilerError, match="max_seconds=20 is more than the profiler keeps"):
        serve.start("127.0.0.1:0", frequency=FREQUENCY, tick=0.1, retain=10, max_seconds=20)
    assert continuous.current() is None


def test_memory_profiles_need_memory_and_say_how(server):
    for name in ("allocs", "heap"):
        status, headers, body = get(server.url + name)
        assert status == 501 and headers["Content-Type"].startswith("text/plain")
        text = body.decode()
        assert f"there is no {name} profile" in text and "memory=True" in text
        assert "HYPROF_SERVE_MEMORY=1" in text


def hold(n, size):
    """Allocates n blocks of size bytes and keeps them (a loop, not a list
    comprehension, which is a function of its own on 3.11)."""
    out = []
    for _ in range(n):
        out.append(bytearray(size))
    return out


def churn(n, size):
    """Allocates n blocks of size bytes and drops them."""
    for _ in range(n):
        bytearray(size)


@pytest.fixture
def memory_server():
    s = serve.start("127.0.0.1:0", frequency=FREQUENCY, tick=0.1, retain=10, memory=True,
                    memory_interval=16384)
    yield s
    s.stop()


def own_values(data, name):
    """{function: [values]} of a pprof's samples whose leaf is name, summed."""
    st = strings(data)
    funcs = {m[1][0]: st[m[2][0]] for m in messages(data, 5)}
    locs = {}
    for m in messages(data, 4):
        line = P.decode(m[4][0])
        locs[m[1][0]] = funcs[line[1][0]]
    total = None
    for smp in messages(data, 2):
        loc_ids = smp[1][0]
        leaf = P._read_varint(loc_ids, 0)[0]
        if locs.get(leaf) != name:
            continue
        vals, pos = [], 0
        raw = smp[2][0]
        while pos < len(raw):
            v, pos = P._read_varint(raw, pos)
            vals.append(v)
        total = vals if total is None else [a + b for a, b in zip(total, vals)]
    return total


def test_heap_and_allocs_serve_the_live_heap_and_the_allocations(memory_server):
    kept = hold(300, 10000)  # 3 MB held
    churn(300, 10000)        # 3 MB allocated and freed
    url = memory_server.url
    status, _, heap = get(url + "heap?gc=1")
    assert status == 200
    types = sample_types(heap)
    assert types == [("alloc_samples", "count"), ("alloc_space", "bytes"),
                     ("live_samples", "count"), ("inuse_space", "bytes")]
    st = strings(heap)
    assert st[P.decode(heap)[14][0]] == "inuse_space"  # heap's default type
    held = own_values(heap, "hold")
    dropped = own_values(heap, "churn")
    # Estimates: 3 MB each allocated, 3 MB held by hold() and none by churn().
    assert 2.0e6 < held[1] < 4.5e6 and 2.0e6 < held[3] < 4.5e6, held
    assert 2.0e6 < dropped[1] < 4.5e6 and dropped[3] < 0.2e6, dropped
    status, _, allocs = get(url + "allocs")
    assert status == 200 and strings(allocs)[P.decode(allocs)[14][0]] == "alloc_space"
    # allocs?seconds=N: the allocations of the next N seconds only.
    status, _, delta = get(url + "allocs?seconds=0.5")
    assert status == 200
    later = own_values(delta, "hold")
    # None allocated by hold() since, all still held.
    assert later[1] == 0 and 2.0e6 < later[3] < 4.5e6, later
    assert get(url + "heap?gc=2")[0] == 400
    assert get(url + "allocs?seconds=abc")[0] == 400
    del kept


def test_go_tool_pprof_reads_the_heap(memory_server, tmp_path):
    go = need("go", "golang-go")
    kept = hold(200, 20000)
    top = go_pprof(go, tmp_path, "-top", "-sample_index=inuse_space",
                   memory_server.url + "heap")
    assert top.returncode == 0, top.stderr
    assert "Type: inuse_space" in top.stdout and "hold" in top.stdout, top.stdout
    raw = go_pprof(go, tmp_path, "-raw", memory_server.url + "heap")
    assert raw.returncode == 0, raw.stderr
    assert "test_serve.py" in raw.stdout and "thread:" in raw.stdout
    del kept


def test_unknown_paths_are_404(server):
    for path in ("goroutine", "profile/extra"):
        status, _, body = get(server.url + path)
        assert status == 404
    assert b"unknown profile 'goroutine'" in get(server.url + "goroutine")[2]
    base = server.url[:-len("/debug/pprof/")]
    assert get(base + "/")[0] == 404
    assert get(base + "/metrics")[0] == 404


def test_only_get_is_served(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/debug/pprof/profile?seconds=30", body=b"x" * 10)
    r = conn.getresponse()
    assert r.status == 405 and r.getheader("Allow") == "GET, HEAD"
    r.read()
    conn.close()
    # A HEAD gets the headers at once, without waiting for a profile.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    t0 = time.monotonic()
    conn.request("HEAD", "/debug/pprof/profile?seconds=30")
    r = conn.getresponse()
    assert r.status == 200 and time.monotonic() - t0 < 1
    conn.close()


def test_a_token_is_required_when_given(busy):
    token = "s3cret-token"
    with serve.start("127.0.0.1:0", token=token, frequency=FREQUENCY, tick=0.1,
                     retain=10) as s:
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": "Basic " + token}, {"Authorization": token}):
            status, h, body = get(s.url + "profile?seconds=1", headers)
            assert status == 401, headers
            assert h["WWW-Authenticate"] == 'Bearer realm="hyprof"'
            assert b"Authorization: Bearer" in body
        # Refused before anything else: an unknown path says nothing more.
        assert get(s.url + "nope")[0] == 401
        status, _, _ = get(s.url, {"Authorization": "Bearer " + token})
        assert status == 200
        status, _, body = get(s.url + "profile?seconds=0.5",
                              {"Authorization": "bearer " + token})
        assert status == 200 and "spin" in functions(body)


@pytest.mark.parametrize("token", ["", "with space", "caf\xe9", 42])
def test_a_bad_token_is_refused(token):
    with pytest.raises(ProfilerError, match="token must be"):
        serve.start("127.0.0.1:0", token=token)
    assert continuous.current() is None


def test_other_host_names_are_refused_on_loopback(server):
    # A web page whose own name resolves to 127.0.0.1 (DNS rebinding) sends
    # its name as Host.
    assert get(server.url, {"Host": "evil.example"})[0] == 403
    assert get(server.url, {"Host": f"localhost:{server.port}"})[0] == 200
    assert get(server.url, {"Host": f"[::1]:{server.port}"})[0] == 200


@pytest.mark.parametrize("address", ["0.0.0.0:0", ("0.0.0.0", 0), "[::]:0"])
def test_an_address_that_is_not_loopback_is_refused(address):
    with pytest.raises(ProfilerError, match="not a loopback address.*allow_remote=True"):
        serve.start(address)
    assert continuous.current() is None
    # Allowed when asked for (checked without binding every interface here).
    host, port, loopback = serve.check_address(address, allow_remote=True)
    assert not loopback and port == 0


@pytest.mark.parametrize("address,parsed", [
    ("127.0.0.1:6060", ("127.0.0.1", 6060)), (":6060", ("127.0.0.1", 6060)),
    ("6060", ("127.0.0.1", 6060)), ("[::1]:0", ("::1", 0)), (6060, ("127.0.0.1", 6060)),
    (("localhost", 7), ("localhost", 7)),
])
def test_addresses(address, parsed):
    assert serve.parse_address(address) == parsed


@pytest.mark.parametrize("address", ["", "host:", "1:2:3", "127.0.0.1:65536", "x:y", None])
def test_bad_addresses_say_what_is_accepted(address):
    with pytest.raises(ProfilerError, match="HOST:PORT"):
        serve.parse_address(address)


def test_a_taken_port_is_a_clear_error():
    with serve.start("127.0.0.1:0", frequency=FREQUENCY, tick=0.1, retain=10) as s:
        p = s.profiler
        with pytest.raises(ProfilerError, match=f"cannot serve on 127.0.0.1:{s.port}: "
                                                "Address already in use"):
            serve.start(f"127.0.0.1:{s.port}", profiler=p)
        assert p.running  # not its to stop


def test_a_given_profiler_is_served_and_left_running(busy):
    with continuous.ContinuousProfiler(frequency=FREQUENCY, tick=0.1, retain=5) as p:
        with serve.start("127.0.0.1:0", profiler=p) as s:
            assert s.profiler is p
            status, _, body = get(s.url + "profile?seconds=0.5")
            assert status == 200 and "spin" in functions(body)
        assert p.running


def test_the_current_profiler_is_served(busy):
    p = continuous.start(frequency=FREQUENCY, tick=0.1, retain=5)
    try:
        with serve.start("127.0.0.1:0") as s:
            assert s.profiler is p
            assert get(s.url + "recent?seconds=1")[0] == 200
        with pytest.raises(ProfilerError, match="already runs.*frequency"):
            serve.start("127.0.0.1:0", frequency=50)
        assert p.running
    finally:
        continuous.stop()


def test_scrapes_beyond_the_limit_get_429(busy):
    with continuous.ContinuousProfiler(frequency=FREQUENCY, tick=0.1, retain=5) as p:
        endpoints = serve.Endpoints(p, max_collects=1)
        first = {}
        t = threading.Thread(target=lambda: first.setdefault(
            "r", endpoints.respond("profile", {"seconds": "0.5"})))
        t.start()
        time.sleep(0.2)
        r = endpoints.respond("profile", {"seconds": "2"})
        t.join()
        assert r.status == 429 and ("Retry-After", "2") in r.headers
        assert first["r"].status == 200
        # The slot is free again.
        assert endpoints.respond("profile", {"seconds": "0.2"}).status == 200


def test_no_profiler_is_a_503_that_says_how(busy):
    endpoints = serve.Endpoints()
    r = endpoints.respond("profile", {"seconds": "1"})
    assert r.status == 503 and b"hyprof.continuous.start()" in r.body


def test_a_failure_is_a_500_and_one_log_line(server, monkeypatch, caplog):
    def broken(trace):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(serve.Endpoints, "_pprof", staticmethod(broken))
    with caplog.at_level(logging.INFO, logger="hyprof.serve"):
        status, _, body = get(server.url + "recent?seconds=1")
    assert status == 500
    assert b"Traceback" not in body and b"disk on fire" not in body
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None
    line = errors[0].getMessage()
    assert "\n" not in line and "RuntimeError: disk on fire second line" in line


def test_serving_adds_no_samples_of_its_own(server):
    # The server's threads render profiles as fast as a client asks, while
    # a profile of the same seconds is taken: none of their frames is in it.
    done = threading.Event()
    result = {}

    def scrape():
        result["body"] = get(server.url + "profile?seconds=1")[2]
        done.set()

    t = threading.Thread(target=scrape)
    t.start()
    n = 0
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    while not done.is_set():
        conn.request("GET", "/debug/pprof/recent?seconds=1")
        conn.getresponse().read()
        n += 1
    conn.close()
    t.join()
    assert n > 20
    st = strings(result["body"])
    server_files = [s for s in st if s.endswith(("hyprof/serve.py", "http/server.py",
                                                  "socketserver.py", "render/pprof.py"))]
    assert not server_files, server_files


# ---------------------------------------------------------------- go tool pprof

def go_pprof(go, tmp_path, *args):
    env = tool_env(HOME=str(tmp_path), PPROF_TMPDIR=str(tmp_path))
    r = subprocess.run([go, "tool", "pprof", *args], capture_output=True, text=True,
                       env=env, timeout=120)
    return r


def test_go_tool_pprof_reads_the_endpoint(server, busy, tmp_path):
    go = need("go", "golang-go")
    url = server.url + "profile?seconds=1"
    top = go_pprof(go, tmp_path, "-top", url)
    assert top.returncode == 0, top.stderr
    assert "Type: samples" in top.stdout and "Duration: 1" in top.stdout
    rows = {line.split()[-1] for line in top.stdout.splitlines()
            if re.match(r"\s*\d+\s+[\d.]+%", line)}
    assert "spin" in rows, top.stdout
    raw = go_pprof(go, tmp_path, "-raw", url)
    assert raw.returncode == 0, raw.stderr
    assert "PeriodType: cpu nanoseconds" in raw.stdout
    assert f"Period: {1_000_000_000 // FREQUENCY}" in raw.stdout
    assert "samples/count[dflt] cpu/nanoseconds" in raw.stdout
    assert re.search(r"spin \S*workloads\.py:%d " % SPIN_HOT_LINE, raw.stdout), raw.stdout
    assert "thread:[cruncher]" in raw.stdout
    # A refused request: pprof shows the server's reason.
    bad = go_pprof(go, tmp_path, "-top", server.url + "profile?seconds=abc")
    assert bad.returncode != 0
    assert "400 Bad Request" in bad.stderr and "is not a number of seconds" in bad.stderr


# ---------------------------------------------------------------- hyprof attach

def contend_until(stop, lock):
    """Two threads take turns on lock, holding it 5 ms a round."""
    def worker():
        while not stop.is_set():
            with lock:
                time.sleep(0.005)
            time.sleep(0.0002)

    threads = [threading.Thread(target=worker, name=f"contender-{i}") for i in range(2)]
    for t in threads:
        t.start()
    return threads


def test_go_tool_pprof_reads_lock_contention_from_the_endpoint(tmp_path):
    """locks=True: the served window carries lock-wait and lock-hold beside
    the CPU samples, cut per tick like them."""
    go = need("go", "golang-go")
    s = serve.start("127.0.0.1:0", frequency=FREQUENCY, tick=0.1, retain=10, locks=True)
    stop = threading.Event()
    try:
        line = sys._getframe().f_lineno + 1
        lock = threading.Lock()  # made while it runs: profiled
        threads = contend_until(stop, lock)
        url = s.url + "profile?seconds=1"
        top = go_pprof(go, tmp_path, "-top", "-sample_index=lock-wait", url)
        raw = go_pprof(go, tmp_path, "-raw", url)
    finally:
        stop.set()
        for t in threads:
            t.join()
        s.stop()
    assert top.returncode == 0, top.stderr
    assert "Type: lock-wait" in top.stdout, top.stdout
    site = f"test_serve.py:{line}>"
    rows = [r for r in top.stdout.splitlines() if re.match(r"\s*[\d.]+m?s\s+[\d.]+%", r)]
    assert any(site in r for r in rows), top.stdout
    # About half of each thread's time is a wait for the other's hold.
    total = re.search(r"of ([\d.]+)(ms|s) total", top.stdout)
    assert total, top.stdout
    waited = float(total.group(1)) * (1e-3 if total.group(2) == "ms" else 1)
    assert 0.3 < waited < 1.6, top.stdout
    assert raw.returncode == 0, raw.stderr
    assert re.search(r"samples/count\[dflt\] cpu/nanoseconds lock_wait_samples/count "
                     r"lock-wait/nanoseconds lock_hold_samples/count lock-hold/nanoseconds",
                     raw.stdout), raw.stdout[:400]
    assert "thread:[contender-0]" in raw.stdout or "thread:[contender-1]" in raw.stdout


def test_the_hyprof_window_is_a_whole_trace(server, busy):
    (status, headers, body), _, elapsed, _ = timed_get(server.url + "hyprof?seconds=1")
    assert status == 200 and headers["Content-Type"] == serve.TRACE_TYPE
    t = hyprof.loads(body, "window")
    assert t.mode == "sampling" and 0.95 <= t.header["duration"] <= elapsed + 0.05, (
        t.header["duration"], elapsed)
    assert any(th.name == "cruncher" for th in t.threads())
    assert any(f.name == "spin" and f.own_samples for f in t.functions())
    # recent=1 answers at once from what is kept; anything else is a 400.
    t0 = time.monotonic()
    status, _, body = get(server.url + "hyprof?seconds=1&recent=1")
    assert status == 200 and time.monotonic() - t0 < 1
    assert hyprof.loads(body).mode == "sampling"
    status, _, body = get(server.url + "hyprof?recent=yes")
    assert status == 400 and b"recent='yes'" in body
    assert get(server.url + "hyprof?seconds=-1")[0] == 400
    # The bytes are checked whole: a window cut in transit is refused.
    with pytest.raises(hyprof.TraceError, match="cut"):
        hyprof.loads(get(server.url + "hyprof?seconds=0.5")[2][:-7], "cut window")


ATTACHED = PRELUDE + textwrap.dedent("""\
    import os, sys, time
    import hyprof, hyprof.serve
    srv = hyprof.serve.start("127.0.0.1:0", token=os.environ.get("TOKEN") or None,
                             frequency=200, tick=0.2)
    print(srv.url, flush=True)
    with hyprof.label(phase="steady"):
        while not os.path.exists(sys.argv[1]):
            cpu_for(0.05)
    srv.stop()
    """)


def _attach(*args, **env):
    return subprocess.run([sys.executable, "-m", "hyprof", "attach", *map(str, args)],
                          capture_output=True, text=True, timeout=90,
                          env=_hyprof_env(**env))


def test_attach_profiles_a_running_process_through_its_endpoint(tmp_path):
    prog = tmp_path / "svc.py"
    prog.write_text(ATTACHED)
    done = tmp_path / "done"
    proc = subprocess.Popen([sys.executable, str(prog), str(done)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=_hyprof_env(TOKEN="tok-9"))
    try:
        url = proc.stdout.readline().strip()
        deadline = time.time() + 30
        while proc.pid not in {d["pid"] for d in serve.discover()} and time.time() < deadline:
            time.sleep(0.1)
        # The endpoint wants its token: attach says so, without and with a wrong one.
        r = _attach(proc.pid, "--seconds", 1, "-o", tmp_path / "x.hyprof")
        assert r.returncode == 1 and "HYPROF_SERVE_TOKEN" in r.stderr, r.stderr
        r = _attach(proc.pid, "--seconds", 1, "-o", tmp_path / "x.hyprof",
                    HYPROF_SERVE_TOKEN="wrong")
        assert r.returncode == 1 and "401" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "x.hyprof").exists()
        out = tmp_path / "attached.hyprof"
        t0 = time.monotonic()
        r = _attach(proc.pid, "--seconds", 1, "-o", out, HYPROF_SERVE_TOKEN="tok-9")
        assert r.returncode == 0, r.stderr
        elapsed = time.monotonic() - t0
        assert 0.9 < elapsed < 20
        t = hyprof.load(out)
        assert t.header["pid"] == proc.pid and 0.9 < t.header["duration"] <= elapsed
        assert any(f.name == "cpu_for" and f.cum_samples for f in t.functions())
        assert {"phase": "steady"} in [{k: v for k, v in s.items() if k != "gil"}
                                       for s in t.label_sets()]
        assert f"-> {out}" in r.stderr
        # --url reaches the same endpoint; --recent answers at once.
        r = _attach("--url", url, "--recent", "--seconds", 1, "-o", tmp_path / "r.hyprof",
                    HYPROF_SERVE_TOKEN="tok-9")
        assert r.returncode == 0, r.stderr
        assert hyprof.load(tmp_path / "r.hyprof").mode == "sampling"
    finally:
        done.write_text("")
        proc.communicate(timeout=60)
    # Once it has ended, attach says there is no such process.
    r = _attach(proc.pid, "-o", tmp_path / "y.hyprof")
    assert r.returncode == 1 and f"no process {proc.pid}" in r.stderr


# ---------------------------------------------------------------- hyprof run --serve

SERVED = PRELUDE + textwrap.dedent("""\
    import os, time

    def main(flag):
        print("token=%r" % os.environ.get("HYPROF_SERVE_TOKEN"), flush=True)
        deadline = time.monotonic() + 60
        while not os.path.exists(flag) and time.monotonic() < deadline:
            spin(2000)

    main(sys.argv[1])
    """)


def _hyprof_env(**extra):
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(hyprof.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [pkg] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    for k in ("HYPROF_SERVE", "HYPROF_SERVE_TOKEN", "HYPROF_SERVE_ALLOW_REMOTE"):
        env.pop(k, None)
    env.update(extra)
    return env


def _served_url(proc, timeout=20):
    """The URL the run prints to stderr."""
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
            m = re.search(rb"serving pprof on (http://127\.0\.0\.1:\d+/debug/pprof/)", seen)
            if m:
                return m.group(1).decode(), seen
    proc.kill()
    raise AssertionError(f"no URL printed: {seen!r}")


@pytest.mark.parametrize("how", ["option", "environment"])
def test_hyprof_run_serve_end_to_end(tmp_path, how):
    prog = tmp_path / "app.py"
    prog.write_text(SERVED)
    flag = tmp_path / "stop"
    out = tmp_path / "app-run.hyprof"
    if how == "option":
        cmd = ["run", "--serve", "127.0.0.1:0", "--frequency", str(FREQUENCY), "--locks",
               "-o", str(out)]
        env = _hyprof_env(HYPROF_SERVE_TOKEN="tok-1")
    else:
        cmd = ["run", "--frequency", str(FREQUENCY)]
        env = _hyprof_env(HYPROF_SERVE="0", HYPROF_SERVE_TOKEN="tok-1")
    proc = subprocess.Popen([sys.executable, "-m", "hyprof", *cmd, str(prog), str(flag)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        url, _ = _served_url(proc)
        assert get(url + "profile?seconds=1")[0] == 401
        t0 = time.monotonic()
        status, _, body = get(url + "profile?seconds=1", {"Authorization": "Bearer tok-1"})
        elapsed = time.monotonic() - t0
        # The upper bound catches a scrape that hangs: on a loaded 2-core CI
        # machine the response to a 1 s scrape has come after 3.2 s.
        assert status == 200 and 0.95 <= elapsed < 6, elapsed
        names = functions(body)
        assert {"spin", "main", "<module>"} <= names, names
        # --locks is served too, as sample types of the same profile.
        types = [t for t, _ in sample_types(body)]
        assert ("lock-wait" in types) == (how == "option"), types
        # Samples stop at the program: hyprof run's own frames are not in it.
        assert not [s for s in strings(body) if "hyprof/cli" in s]
    finally:
        flag.touch()
        stdout, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    # The endpoint's secret is not handed on to the program.
    assert stdout.strip() == b"token=None"
    if how == "option":
        trace = hyprof.load(out)
        assert trace.header["duration"] > 1
        assert any(f.name == "spin" and f.own_samples for f in trace.functions())
        assert b"trace written to" in err
    else:
        # Without -o, the profile is served, not written.
        assert not list(tmp_path.glob("*.hyprof")), list(tmp_path.iterdir())


def test_hyprof_run_serve_refuses_a_remote_address_before_running(tmp_path):
    prog = tmp_path / "app.py"
    prog.write_text("print('ran')\n")
    r = subprocess.run([sys.executable, "-m", "hyprof", "run", "--serve", "0.0.0.0:0",
                        str(prog)], cwd=tmp_path, env=_hyprof_env(), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "ran" not in r.stdout
    assert "not a loopback address" in r.stderr and "--serve-allow-remote" in r.stderr
    r = subprocess.run([sys.executable, "-m", "hyprof", "run", str(prog)], cwd=tmp_path,
                       env=_hyprof_env(HYPROF_SERVE="nowhere"), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "HYPROF_SERVE='nowhere'" in r.stderr


# ---------------------------------------------------------------- pre-fork servers

def _labels_by_worker(data):
    """{worker label: samples} of a pprof, from its samples' labels."""
    msg = P.decode(data)
    strs = [s.decode() for s in msg.get(6, [])]
    out = {}
    for raw in msg.get(2, []):
        sample = P.decode(raw)
        tags = {}
        for lab in sample.get(3, []):
            lm = P.decode(lab)
            tags[strs[lm[1][0]]] = strs[lm[2][0]]
        if "worker" in tags:
            out[tags["worker"]] = out.get(tags["worker"], 0) + 1
    return out


# fork() in a process with threads, as a pre-fork server's master has: the
# sanitizers' runtimes can deadlock in a child (their allocator's locks), so
# these two run in the plain builds only.
_NO_FORK_UNDER_SANITIZERS = pytest.mark.skipif(
    bool(os.environ.get("HYP_UNDER_SANITIZERS")),
    reason="fork() of a threaded process can deadlock in a sanitized runtime")


@_NO_FORK_UNDER_SANITIZERS
def test_forked_workers_each_serve_their_own_profile_and_are_discovered(tmp_path):
    """A process that serves and then forks (a pre-fork server's master):
    each child samples itself and serves its own samples on the next free
    port, the parent keeps its own, and hyprof discover lists all three."""
    prog = tmp_path / "prefork.py"
    prog.write_text(PRELUDE + textwrap.dedent("""\
        import json, os, sys, time
        import hyprof, hyprof.serve
        srv = hyprof.serve.start("127.0.0.1:0", frequency=200, tick=0.2)
        kids = []
        for i in range(2):
            pid = os.fork()
            if pid == 0:
                with hyprof.label(worker=str(os.getpid())):
                    while not os.path.exists(sys.argv[1]):
                        cpu_for(0.05)
                os._exit(0)
            kids.append(pid)
        print(json.dumps({"parent": srv.url, "kids": kids}), flush=True)
        with hyprof.label(worker="parent"):
            while not os.path.exists(sys.argv[1]):
                cpu_for(0.05)
        for k in kids:
            os.waitpid(k, 0)
        srv.stop()
        """))
    done = tmp_path / "done"
    proc = subprocess.Popen([sys.executable, str(prog), str(done)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        info = __import__("json").loads(proc.stdout.readline())
        deadline = time.time() + 30  # the children start serving (slowly, sanitized)
        while True:
            found = {d["pid"]: d["url"] for d in serve.discover()}
            if set(info["kids"]) <= set(found) or time.time() > deadline:
                break
            time.sleep(0.1)
        assert set(info["kids"]) <= set(found) and proc.pid in found
        for pid in info["kids"]:
            got = _labels_by_worker(get(found[pid] + "profile?seconds=1")[2])
            assert set(got) == {str(pid)}, (pid, got)  # its own samples only
        got = _labels_by_worker(get(found[proc.pid] + "profile?seconds=1")[2])
        assert set(got) == {"parent"}
        listed = subprocess.run([sys.executable, "-m", "hyprof", "discover"],
                                capture_output=True, text=True, check=True).stdout
        assert all(str(pid) in listed for pid in [proc.pid, *info["kids"]])
        assert found[proc.pid] in listed
    finally:
        done.write_text("")
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert err.count("serves its profile on http://127.0.0.1:") == 2
    # a process that ended leaves no endpoint behind
    assert not {proc.pid, *info["kids"]} & {d["pid"] for d in serve.discover()}


@_NO_FORK_UNDER_SANITIZERS
def test_gunicorn_workers_each_serve_only_their_requests(tmp_path):
    """gunicorn with two workers, the endpoint started in its master: each
    worker's endpoint holds the requests that worker served, no other's."""
    pytest.importorskip("gunicorn", reason="gunicorn is not installed (pip install gunicorn)")
    import socket as _socket
    with _socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        app_port = s.getsockname()[1]
    (tmp_path / "app.py").write_text(PRELUDE + textwrap.dedent("""\
        import os
        import hyprof

        def app(environ, start_response):
            with hyprof.label(worker=str(os.getpid())):
                spin(300000)
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [str(os.getpid()).encode()]
        """))
    (tmp_path / "conf.py").write_text(textwrap.dedent("""\
        def on_starting(server):
            import hyprof.serve
            srv = hyprof.serve.start("127.0.0.1:0", frequency=200, tick=0.2)
            print("MASTER", srv.url, flush=True)
        """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(tmp_path / "conf.py"),
                             "-w", "2", "-b", f"127.0.0.1:{app_port}", "--chdir",
                             str(tmp_path), "app:app"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        master = proc.stdout.readline().split()[1]
        served = {}
        deadline = time.time() + 20
        while len(served) < 2 and time.time() < deadline:
            try:
                status, _, body = get(f"http://127.0.0.1:{app_port}/", timeout=5)
                pid = body.decode()
                served[pid] = served.get(pid, 0) + 1
            except OSError:
                time.sleep(0.2)
        assert len(served) == 2, served
        workers = {str(d["pid"]): d["url"] for d in serve.discover() if d["url"] != master}
        assert set(served) <= set(workers), (served, workers)

        def load(url):
            for _ in range(8):
                get(f"http://127.0.0.1:{app_port}/", timeout=5)
            return _labels_by_worker(get(url + "recent?seconds=10")[2])

        for pid in served:
            got = load(workers[pid])
            assert got and set(got) == {pid}, (pid, got)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


# ---------------------------------------------------------------- no code change: the .pth

PTH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "pyext", "hyprof-autostart.pth")


def _run_with_pth(tmp_path, env, body):
    """Runs body in a fresh interpreter that reads hyprof-autostart.pth as
    Python reads it from site-packages at start (site.addsitedir)."""
    site_dir = tmp_path / "site"
    site_dir.mkdir(exist_ok=True)
    (site_dir / "hyprof-autostart.pth").write_text(open(PTH).read())
    code = f"import site; site.addsitedir({str(site_dir)!r})\n" + PRELUDE + \
        textwrap.dedent(body)
    full = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), **env)
    for k in ("HYPROF_SERVE", "HYPROF_CONTINUOUS_DIR"):
        if k not in env:
            full.pop(k, None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full, timeout=60)


def test_hyprof_serve_in_the_environment_serves_any_program(tmp_path):
    r = _run_with_pth(tmp_path, {"HYPROF_SERVE": "127.0.0.1:0"}, """\
        import json, os, urllib.request
        import hyprof.serve as s
        def program():
            cpu_for(1.2)
        t = __import__("threading").Thread(target=program)
        t.start()
        url = [d["url"] for d in s.discover() if d["pid"] == os.getpid()][0]
        data = urllib.request.urlopen(url + "profile?seconds=1").read()
        t.join()
        print(json.dumps({"url": url, "size": len(data)}))
        """)
    assert r.returncode == 0, r.stderr
    out = __import__("json").loads(r.stdout.strip().splitlines()[-1])
    assert out["url"].startswith("http://127.0.0.1:") and out["size"] > 100


def test_the_pth_costs_nothing_without_the_variables(tmp_path):
    r = _run_with_pth(tmp_path, {}, """\
        import sys
        print("hyprof" in sys.modules and "hyprof.continuous" in sys.modules)
        """)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr


def test_a_bad_hyprof_serve_is_one_line_and_the_program_runs(tmp_path):
    r = _run_with_pth(tmp_path, {"HYPROF_SERVE": "0.0.0.0:0"}, """\
        print("ran")
        """)
    assert r.returncode == 0 and r.stdout.strip() == "ran"
    assert "HYPROF_SERVE" in r.stderr and "loopback" in r.stderr and "Traceback" not in r.stderr
    taken = serve.start("127.0.0.1:0", frequency=50)
    try:
        r = _run_with_pth(tmp_path, {"HYPROF_SERVE": f"127.0.0.1:{taken.port}"}, """\
            import os, hyprof.serve as s
            print([d["url"] for d in s.discover() if d["pid"] == os.getpid()][0])
            """)
    finally:
        taken.stop()
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() != taken.url and "serves its profile on" in r.stderr
