"""Labels (hyprof.label(), docs/continuous.md): what the program was doing,
carried by the samples its threads take, through the trace file, the
windows of the continuous profiler, the reports and pprof, as go tool
pprof reads it."""

import re
import subprocess
import threading
import time

import hyprof
import pytest
from hyprof import labels
from hyprof.render import pprof as P
from test_render_support import need, run_hyprof, tool_env
from workloads import cpu_for


def sampled(**opts):
    opts.setdefault("frequency", 500)
    return hyprof.Profiler(mode="sampling", **opts)


def samples_of(trace):
    return sum(f.own_samples for f in trace.functions())


def split(trace):
    """{frozenset of the program's labels: samples}, the sampler's own gil
    label left out (every sample has one)."""
    out = {}
    for ls, sub in trace.by_label_set():
        key = frozenset((k, v) for k, v in ls.items() if k != "gil")
        if samples_of(sub):
            out[key] = out.get(key, 0) + samples_of(sub)
    return out


def program_labels(trace):
    """Trace.labels() but the gil label, which every CPU sample carries."""
    got = trace.labels()
    assert set(got.get("gil", ["held"])) <= {"held", "released", "waiting"}
    return {k: v for k, v in got.items() if k != "gil"}


def test_blocks_label_their_samples_in_the_shares_they_ran(tmp_path):
    out = tmp_path / "l.hyprof"
    p = sampled(output=str(out))
    with p:
        with hyprof.label(view="shop.list"):
            cpu_for(0.3)
            with hyprof.label(method="GET"):  # nested: adds to the outer labels
                cpu_for(0.1)
        cpu_for(0.1)
    for t in (p.trace(), hyprof.load(out)):  # in memory, and through the file
        got = split(t)
        total = sum(got.values())
        assert set(got) == {frozenset({("view", "shop.list")}),
                            frozenset({("view", "shop.list"), ("method", "GET")}),
                            frozenset()}
        assert got[frozenset({("view", "shop.list")})] / total == pytest.approx(0.6, abs=0.1)
        assert got[frozenset()] / total == pytest.approx(0.2, abs=0.1)
        assert program_labels(t) == {"method": ["GET"], "view": ["shop.list"]}
        # where() keeps a key's value whatever the other labels are
        assert samples_of(t.where(view="shop.list")) / total == pytest.approx(0.8, abs=0.1)
        assert samples_of(t.where(method=["GET", "POST"])) / total == \
            pytest.approx(0.2, abs=0.1)
        assert samples_of(t.where(view=None)) == got[frozenset()]
        assert t.where(view="nothing").functions() == []
    assert labels.current() == {}


def test_labels_are_per_thread_and_restored_after_an_exception():
    p = sampled()
    seen = {}

    def worker(name):
        with hyprof.label(worker=name):
            cpu_for(0.15)
            seen[name] = labels.current()

    with p:
        threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        with pytest.raises(KeyError):
            with hyprof.label(worker="main"):
                raise KeyError("x")
        assert labels.current() == {}
        cpu_for(0.1)
        for t in threads:
            t.join()
    t = p.trace()
    by_thread = {}
    for ls, sub in t.by_label_set():
        for th in sub.threads():
            n = sum(f.own_weight for f in sub.functions(thread=th.id))
            if n:
                by_thread.setdefault(th.name, {})[ls.get("worker")] = n
    assert seen == {"a": {"worker": "a"}, "b": {"worker": "b"}}
    # Each worker's samples carry its own label. The main thread's carry
    # none once the block that raised has left: a sample may land inside
    # that block (it carries "main", as it should), but the 0.1 s after it
    # is unlabelled.
    for name, got in by_thread.items():
        if name == "MainThread":
            assert set(got) <= {None, "main"}
            assert got.get(None, 0) > 5 * got.get("main", 0), got
        else:
            assert set(got) <= {"a", "b", None}
            assert max(got, key=got.get) in ("a", "b")


def test_wall_clock_samples_of_a_waiting_thread_carry_its_labels():
    p = sampled(clock="wall", frequency=200)
    ready = threading.Event()

    def waiter():
        with hyprof.label(job="sleeper"):
            cpu_for(0.02)  # runs Python once, so the sampler knows its labels
            ready.set()
            time.sleep(0.4)

    with p:
        t = threading.Thread(target=waiter)
        t.start()
        ready.wait()
        t.join()
    sub = p.trace().where(job="sleeper")
    names = {f.name.rsplit(".", 1)[-1]: f.own_weight for f in sub.functions()}
    # 0.4 s of sleep at 200 Hz, in waiter's frame: some 80 samples, fewer
    # and heavier when a loaded machine delays the sampler, weighing 0.4 s.
    assert names.get("waiter", 0) >= 0.3e9, names


def test_windows_of_the_continuous_profiler_keep_labels():
    from hyprof.continuous import ContinuousProfiler
    prof = ContinuousProfiler(frequency=500, tick=0.1)
    prof.start()
    try:
        with hyprof.label(tenant="acme"):
            cpu_for(0.2)
        cpu_for(0.1)
        w = prof.take()
    finally:
        prof.stop()
    assert program_labels(w) == {"tenant": ["acme"]}
    assert samples_of(w.where(tenant="acme")) > samples_of(w.where(tenant=None)) > 0


def test_pprof_samples_carry_the_labels(tmp_path):
    p = sampled()
    with p:
        with hyprof.label(view="shop.list", method="GET"):
            cpu_for(0.2)
        cpu_for(0.05)
    data = P.build(p.trace())
    msg = P.decode(data)
    strings = [s.decode() for s in msg[6]]
    tagged = {}
    for raw in msg[2]:
        sample = P.decode(raw)
        tags = {}
        for lab in sample.get(3, []):
            lm = P.decode(lab)
            tags[strings[lm[1][0]]] = strings[lm[2][0]]
        key = (tags.get("view"), tags.get("method"))
        tagged[key] = tagged.get(key, 0) + 1
        assert "thread" in tags
    assert ("shop.list", "GET") in tagged and (None, None) in tagged
    # go tool pprof, the client Pyroscope's and Parca's protocol is, reads them
    go = need("go", "golang-go")
    f = tmp_path / "l.pb.gz"
    f.write_bytes(P.render(p.trace()))
    tags = subprocess.run([go, "tool", "pprof", "-tags", str(f)], capture_output=True,
                          text=True, env=tool_env(HOME=str(tmp_path)), check=True).stdout
    assert re.search(r"view: Total \d+", tags) and "shop.list" in tags
    assert re.search(r"method: Total \d+", tags) and "GET" in tags
    focused = subprocess.run([go, "tool", "pprof", "-top", "-tagfocus=view=shop.list", str(f)],
                             capture_output=True, text=True, env=tool_env(HOME=str(tmp_path)),
                             check=True).stdout
    assert "spin" in focused


def test_report_keeps_and_splits_by_label(tmp_path):
    out = tmp_path / "r.hyprof"
    p = sampled(output=str(out))
    with p:
        with hyprof.label(view="a"):
            cpu_for(0.2)
        with hyprof.label(view="b"):
            cpu_for(0.1)
    kept = run_hyprof("report", out, "--label", "view=b").stdout
    both = run_hyprof("report", out, "--label", "view=a,b").stdout
    n = lambda text: int(re.search(r"(\d+) samples", text).group(1))  # noqa: E731
    assert 0 < n(kept) < n(both)
    by = run_hyprof("report", out, "--by-label", "view", "-n", "3").stdout
    assert by.index("=== view=a ===") < by.index("=== view=b ===")
    bad = run_hyprof("report", out, "--label", "tenant=x", check=False)
    assert bad.returncode == 1 and "no label 'tenant'" in bad.stderr and "view" in bad.stderr
    assert "Traceback" not in bad.stderr
    bad = run_hyprof("report", out, "--label", "view", check=False)
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr
    bad = run_hyprof("report", out, "--by-label", "view", "-f", "pprof", "-o",
                     tmp_path / "x.pb.gz", check=False)
    assert bad.returncode == 2 and "--label view=VALUE" in bad.stderr


def test_bad_labels_are_refused_clearly():
    with pytest.raises(hyprof.ProfilerError, match="must be a str"):
        with hyprof.label(n=3):
            pass
    with pytest.raises(hyprof.ProfilerError, match="128 bytes"):
        with hyprof.label(**{"k" * 200: "v"}):
            pass
    with pytest.raises(hyprof.ProfilerError, match="1024 bytes"):
        with hyprof.label(k="v" * 2000):
            pass
    with pytest.raises(hyprof.ProfilerError, match="at most 64"):
        with hyprof.label(**{f"k{i}": "v" for i in range(65)}):
            pass
    assert labels.current() == {}
    assert labels.stats()["max"] == 65536


def test_merge_keeps_the_labels_of_each_source(tmp_path):
    paths = []
    for name, seconds in (("a", 0.15), ("b", 0.05)):
        out = tmp_path / f"{name}.hyprof"
        with sampled(output=str(out)):
            with hyprof.label(worker=name):
                cpu_for(seconds)
            cpu_for(0.05)
        paths.append(out)
    merged = tmp_path / "m.hyprof"
    run_hyprof("merge", *paths, "-o", merged)
    t = hyprof.load(merged)
    assert program_labels(t) == {"worker": ["a", "b"]}
    src = [hyprof.load(p) for p in paths]
    for name, s in zip("ab", src):
        assert samples_of(t.where(worker=name)) == samples_of(s.where(worker=name))
    assert samples_of(t.where(worker=None)) == sum(samples_of(s.where(worker=None)) for s in src)


def test_a_part_by_label_names_its_threads_as_the_trace_does(write_trace):
    """Two thread records can be alike (the kernel and CPython reuse a dead
    thread's ids). A part of the trace by label set once folded them into
    one, so the part's thread ids were no longer the trace's, and a merge
    that read each part by the trace's thread ids failed."""
    import io

    import msgpack
    from hyprof.merge import merge_traces
    from hyprof.trace import loads

    p = sampled()
    with p:
        with hyprof.label(worker="a"):
            cpu_for(0.05)
        cpu_for(0.02)
    objs = list(msgpack.Unpacker(io.BytesIO(p.trace().to_bytes()), raw=True,
                                 strict_map_key=False))
    recs = [o for o in objs if isinstance(o, list) and o]
    threads = next(r for r in recs if r[0] == 3)
    new_id = len(threads[2]) // 3
    threads[2].extend(threads[2][:3])  # a second thread with the first's ids
    rows = next(r for r in recs if r[0] == 5 and len(r) == 4)  # a labelled row
    recs.append([5, new_id, rows[2], rows[3]])
    end = next(i for i, o in enumerate(objs) if isinstance(o, list) and o and o[0] == 8)
    objs.insert(end, recs[-1])
    t = loads(b"".join(msgpack.packb(o, use_bin_type=False) for o in objs))
    assert len(t.threads()) == new_id + 1
    for labels, part in t.by_label_set():
        assert part.threads() == t.threads(), labels
    assert samples_of(t.where(worker="a")) > 0
    m = hyprof.load(write_trace(merge_traces([t, t])))
    assert samples_of(m) == 2 * samples_of(t)
    assert len(m.threads()) == 2 * len(t.threads())  # each source's own
