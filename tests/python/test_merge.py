"""hyprof.merge: traces of several processes combined into one."""

import hyprof
import pytest
from hyprof import merge as M
from hyprof import render as R
from test_render_support import MS, det_data, sampling_data, write


def _by_name(trace):
    return {f.name: f for f in trace.functions()}


def test_merge_deterministic_workers(tmp_path):
    a = tmp_path / "worker-1.hyprof"
    b = tmp_path / "worker-2.hyprof"
    write(a, det_data(pid=101))
    write(b, det_data(pid=102, helper_ms=9))
    out = tmp_path / "fleet.hyprof"
    M.merge([a, b], out)
    t = hyprof.load(out)
    assert t.mode == "deterministic"
    # Each worker's thread is kept, named with its pid.
    assert [th.name for th in t.threads()] == ["MainThread [pid 101]", "MainThread [pid 102]"]
    assert t.header["merged"] is True
    assert t.header["sources"] == [
        f"{a}, pid 101, cmd: app.py --fast", f"{b}, pid 102, cmd: app.py --fast"]
    assert t.header["thread_sources"] == ["0", "1"]
    assert t.header["argv"] == ["app.py", "--fast"]
    assert "pid" not in t.header
    # The same call paths merge: calls and times add up.
    f = _by_name(t)
    assert f["helper"].calls == 60
    assert f["helper"].wall_own == pytest.approx(0.012)
    assert f["work"].calls == 10
    assert f["main"].wall_cum == pytest.approx(0.0605 + 0.0665)
    assert len(t.nodes()) == 6
    # Per source, through the threads.
    one = {x.name: x for x in t.functions(thread=0)}
    two = {x.name: x for x in t.functions(thread=1)}
    assert one["helper"].wall_own == pytest.approx(0.003)
    assert two["helper"].wall_own == pytest.approx(0.009)


def test_merge_sampling_and_reports(tmp_path):
    paths = []
    for i, extra in enumerate((0, 3, 6)):
        p = tmp_path / f"w{i}.hyprof"
        write(p, sampling_data(pid=200 + 10 * i, extra_helper=extra))
        paths.append(p)
    out = tmp_path / "all.hyprof"
    M.merge(paths, out)
    t = hyprof.load(out)
    assert len(t.threads()) == 6
    assert t.threads()[5].name == "worker [pid 220]"
    assert [k.name for k in t.sample_kinds] == ["cpu-clock"]
    f = _by_name(t)
    assert f["helper"].own_samples == 10 * 3 + 3 + 6
    assert f["main"].cum_samples == 27 * 3 + 9
    assert f["work"].cum_weight == (26 * 3 + 9) * 10 * MS
    # Every report reads the merged trace; threads show their source.
    folded = R.render(t, "collapsed", threads=True)
    assert "[thread] worker [pid 210];main (app.py:1);work (app.py:10) 7\n" in folded
    for fmt in R.FORMATS:
        if fmt == "pstats":
            # cProfile's format has no place for samples: a clear refusal.
            with pytest.raises(R.ReportError):
                R.render(t, fmt)
            continue
        assert R.render(t, fmt)


def test_merge_rejects_mixed_modes(tmp_path):
    a, b = tmp_path / "det.hyprof", tmp_path / "smp.hyprof"
    write(a, det_data())
    write(b, sampling_data())
    with pytest.raises(M.MergeError, match=r"different modes \(.*det.hyprof is deterministic, "
                                           r".*smp.hyprof is sampling\)"):
        M.merge([a, b], tmp_path / "out.hyprof")
    assert not (tmp_path / "out.hyprof").exists()


def test_merge_errors(tmp_path):
    a = tmp_path / "a.hyprof"
    write(a, det_data())
    with pytest.raises(M.MergeError, match="nothing to merge"):
        M.merge([], tmp_path / "out.hyprof")
    with pytest.raises(M.MergeError, match="is also an input"):
        M.merge([a], a)
    bad = tmp_path / "bad.hyprof"
    bad.write_bytes(b"not a trace at all")
    with pytest.raises(hyprof.TraceError):
        M.merge([a, bad], tmp_path / "out.hyprof")
    data = det_data()
    data["metrics"] = [("calls", "count", "calls"), ("wall_own", "bytes", "own"),
                       ("cpu_own", "ns", "own"), ("wall_cum", "ns", "cum"),
                       ("cpu_cum", "ns", "cum")]
    c = tmp_path / "c.hyprof"
    write(c, data)
    with pytest.raises(M.MergeError, match="metric 'wall_own' is"):
        M.merge([a, c], tmp_path / "out.hyprof")
