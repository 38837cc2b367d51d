"""The HTML report: one offline file, checked in a real headless Chromium."""

import importlib.util
import json
import os
import re

import pytest
from hyprof import render as R
from test_render_support import (
    DET_TOTAL_WALL,
    MS,
    det_data,
    write,
)

HERE = os.path.dirname(os.path.abspath(__file__))


CHECK = os.path.join(HERE, "..", "browser", "check_html.py")


def _checker():
    spec = importlib.util.spec_from_file_location("check_html", CHECK)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if mod.find_browser() is None:
        pytest.skip("no Chromium to load the report in (apt-get install chromium)")
    return mod


def _report(tmp_path, trace, name):
    """(the Chromium checker, the path) of trace's HTML report written in
    tmp_path."""
    check = _checker()
    path = tmp_path / name
    path.write_text(R.render(trace, "html"))
    return check, str(path)


def _data(page):
    m = re.search(r'<script type="application/json" id="hyprof-data">(.*?)</script>', page,
                  re.DOTALL)
    assert m, "the report has no data block"
    return json.loads(m.group(1))


def test_html_is_self_contained(det_trace):
    page = R.render(det_trace, "html")
    assert page.startswith("<!DOCTYPE html>")
    # Nothing is fetched: no external scripts, styles, images or fonts.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert not re.search(r"<script[^>]+src=", page)
    data = _data(page)
    assert data["mode"] == "deterministic"
    assert [m["title"] for m in data["metrics"]] == ["Calls", "Wall time", "CPU time"]
    assert data["metrics"][data["default"]]["name"] == "wall_own"
    names = [f[0] for f in data["funcs"]]
    wall = data["table"]["cum"][data["default"]]
    assert wall[names.index("main")] == DET_TOTAL_WALL
    assert wall[names.index("work")] == 9_500_000  # recursion counted once
    assert data["table"]["own"][0][names.index("helper")] == 30  # calls


def test_html_loads_cleanly_in_chromium(tmp_path, det_trace, sampling_trace):
    check = _checker()
    for name, trace, expect in (("det", det_trace, ["main", "work", "helper", "time.sleep"]),
                                ("smp", sampling_trace, ["main", "work", "helper"])):
        path = tmp_path / (name + ".html")
        path.write_text(R.render(trace, "html"))
        res = check.check(str(path), expect=expect, screenshot=str(tmp_path / (name + ".png")))
        assert res["ok"], res["errors"]
        assert res["frames"] >= len(expect)
        assert (tmp_path / (name + ".png")).stat().st_size > 5000
    assert "[thread] worker" in res["labels"] and "[thread] MainThread" in res["labels"]
    # The table is sorted by inclusive value: main first.
    assert res["table"][0] == "main"


def test_html_check_catches_a_broken_page(tmp_path, det_trace):
    check = _checker()
    page = R.render(det_trace, "html").replace("var D = JSON.parse(",
                                               "var D = notDefinedAnywhere || JSON.parse(")
    path = tmp_path / "broken.html"
    path.write_text(page)
    res = check.check(str(path), expect=["main"])
    assert not res["ok"]
    assert any("notDefinedAnywhere" in e for e in res["errors"])


def test_html_escapes_hostile_names(tmp_path):
    check = _checker()
    data = det_data()
    data["functions"][1] = ("</script><script>window.pwned=1</script>", "a&b.py", 10, 0)
    trace = write(tmp_path / "t.hyprof", data)
    page = R.render(trace, "html")
    assert "</script><script>window.pwned" not in page
    path = tmp_path / "x.html"
    path.write_text(page)
    res = check.check(str(path), expect=["main"])
    assert res["ok"], res["errors"]
    assert "</script><script>window.pwned=1</script>" in res["table"]


def test_html_metric_titles_for_sampling(sampling_trace):
    data = _data(R.render(sampling_trace, "html"))
    assert [m["title"] for m in data["metrics"]] == ["cpu-clock samples", "cpu-clock (ns)"]
    assert data["metrics"][data["default"]]["title"] == "cpu-clock samples"
    names = [f[0] for f in data["funcs"]]
    assert "[thread] MainThread" in names and "[thread] worker" in names
    assert sum(data["values"][0]) == 27
    assert sum(data["values"][1]) == 270 * MS


def test_html_view_search_zoom_metric_sort(tmp_path, det_trace):
    """The controls, driven through the report's URL fragment."""
    check, path = _report(tmp_path, det_trace, "v.html")
    # Search: helper holds 3.5 ms of 60.5 ms (5.79%); the table keeps matches.
    res = check.check(str(path), fragment="search=help")
    assert res["ok"], res["errors"]
    assert "search matches 5.79%" in res["status"]
    assert res["table"] == ["helper"]
    # Metric: CPU time, where the sleep is 10 us of 10.51 ms.
    res = check.check(str(path), fragment="metric=cpu&sort=own")
    assert res["ok"], res["errors"]
    assert "total cpu: 10.5 ms" in res["status"]
    assert res["table"][0] == "work"  # 6.5 ms self
    assert res["table"][-1] == "time.sleep"
    # Zoom: the path to the heaviest work frame, and only its subtree drawn.
    res = check.check(str(path), fragment="zoom=work")
    assert res["ok"], res["errors"]
    assert res["crumbs"] == ["all", "main", "work"]
    assert "time.sleep" not in res["labels"] and "helper" in res["labels"]
    # The tooltip of work's heaviest frame (main > work).
    res = check.check(str(path), fragment="hover=work")
    assert res["tooltip"].split("\n") == [
        "work", "app.py:10",
        "wall: 9.5 ms (15.70%) total, 6 ms (9.92%) self", "calls: 3"]
    # Sort by name, ascending.
    res = check.check(str(path), fragment="sort=name")
    assert res["table"] == ["helper", "main", "time.sleep", "work"]


def test_html_deep_recursion(tmp_path):
    """2,000 nested calls: drawn up to the canvas's limit, with a note."""
    check = _checker()
    n = 2000
    data = det_data()
    data.update(functions=[("rec", "r.py", 1, 0)], nodes=[(i, 0, 0) for i in range(n)],
                rows=[(0, i, (1, 1000, 1000, (n + 1 - i) * 1000, (n + 1 - i) * 1000))
                      for i in range(1, n + 1)])
    trace = write(tmp_path / "deep.hyprof", data)
    page = R.render(trace, "html")
    assert _data(page)["table"]["cum"][1][0] == n * 1000  # recursion counted once
    path = tmp_path / "deep.html"
    path.write_text(page)
    res = check.check(str(path), expect=["rec"])
    assert res["ok"], res["errors"]
    assert res["frames"] == 1500
    assert "frames deeper than 1500 levels: zoom in" in res["status"]
    assert R.render(trace, "collapsed").count("rec (r.py:1)") == n * (n + 1) // 2


def test_bottom_up_view_puts_where_time_is_spent_at_the_root(tmp_path, det_trace):
    check, path = _report(tmp_path, det_trace, "det.html")
    top = check.check(str(path), expect=["main"])
    res = check.check(str(path), fragment="view=bottom-up&hover=time.sleep",
                      screenshot=str(tmp_path / "bottom-up.png"))
    assert res["ok"], res["errors"]
    # Level 1 (under "all"): every function with own time (helper's box is
    # narrow: its name is cut); above each, its callers.
    assert res["labels"][0] == "all (60.5 ms)"
    level1 = sorted(res["labels"][1:5])
    assert level1[1:] == ["main", "time.sleep", "work"] and level1[0].startswith("help"), \
        res["labels"]
    assert "time spent in this function, every caller together" in res["tooltip"]
    assert "wall: 50 ms (82.64%)\n" in res["tooltip"] and "self" not in res["tooltip"]
    # The same whole as the top-down view: own times are moved, not changed.
    assert res["status"] == top["status"]
    assert (tmp_path / "bottom-up.png").stat().st_size > 5000
    # A caller chain: work's own time as called by helper (the recursion).
    deep = check.check(str(path), fragment="view=bottom-up&zoom=helper&hover=helper")
    assert deep["ok"], deep["errors"]


# ---------------------------------------------------------------- the views

# Colours the report draws: flamegraph.pl's "hot" palette for Python frames
# and the timeline's bars (flamegraph.js).
def _hot(rgb):
    r, g, b = rgb
    return r >= 200 and b <= 60 and g <= 235


def _hot_rows(png):
    """The rows of a screenshot with a run of Python frames drawn across
    them (at least 40 pixels of the hot palette)."""
    _, _, rows = _checker().png_pixels(png)
    return [y for y, row in enumerate(rows) if sum(map(_hot, row)) >= 40]


def _shot_dir(tmp_path):
    """Where the screenshots go: HYPROF_SCREENSHOTS (to refresh the ones the
    docs show) or the test's own directory."""
    out = os.environ.get("HYPROF_SCREENSHOTS")
    if out:
        os.makedirs(out, exist_ok=True)
        return out
    return str(tmp_path)


def test_sandwich_merges_every_path_through_a_function(tmp_path, det_trace):
    """work is called by main, and again by helper inside itself: its
    callers are main alone (the recursion is inside the outermost call), its
    callees helper and, under it, work again; its total counts the
    recursion once."""
    check, path = _report(tmp_path, det_trace, "det.html")
    shot = os.path.join(_shot_dir(tmp_path), "html-sandwich.png")
    res = check.check(str(path), fragment="view=sandwich&func=work", width=1024, height=560,
                      screenshot=shot)
    assert res["ok"], res["errors"]
    assert not res["wide"], "the sandwich does not fit a 1024-pixel window"
    # Drawn: the callers' rows above the function, the callees' below.
    assert len(_hot_rows(shot)) >= 4 * 15
    res = check.check(str(path), fragment="view=sandwich&func=work&hover=work")
    assert res["ok"], res["errors"]
    assert res["canvases"]["hyprof-callers"][0] == "work (9.5 ms)"
    assert res["canvases"]["hyprof-callers"][1:] == ["main"]
    assert res["canvases"]["hyprof-callees"][0] == "work (9.5 ms)"
    assert sorted(res["canvases"]["hyprof-callees"][1:]) == ["helper", "work"]
    assert res["canvases"]["hyprof-flame"] == []  # the top-down graph is hidden
    assert res["status"] == ("work: 9.5 ms of 60.5 ms wall (15.70%), called on 1 call path")
    assert res["tooltip"].split("\n") == [
        # Its own frames: the recursive call is a frame of its own below.
        "work", "app.py:10", "wall: 9.5 ms (15.70%) total, 6 ms (9.92%) self", "calls: 3",
        "every call of this function together, recursion counted once"]
    # helper: called by work (under main) only, and calls work.
    res = check.check(str(path), fragment="view=sandwich&func=helper")
    assert res["ok"], res["errors"]
    assert res["canvases"]["hyprof-callers"][1:] == ["work", "main"]
    assert res["canvases"]["hyprof-callees"][1:] == ["work"]
    assert "helper: 3.5 ms of 60.5 ms" in res["status"]


def test_sandwich_of_a_sampling_trace(tmp_path, sampling_trace):
    check, path = _report(tmp_path, sampling_trace, "s.html")
    # With no function named: the one with the most self samples (work, 16).
    res = check.check(str(path), fragment="view=sandwich")
    assert res["ok"], res["errors"]
    assert res["canvases"]["hyprof-callees"][:2] == ["work (26)", "helper"]
    # Callers: main, then each thread.
    assert res["canvases"]["hyprof-callers"][1] == "main"
    assert sorted(res["canvases"]["hyprof-callers"][2:]) == ["[thread] MainThread",
                                                              "[thread] worker"]


def _timeline_trace(tmp_path, **kw):
    from test_render_support import sampling_data
    import hyprof
    from hyprof import _hyprof
    p = tmp_path / "tl.hyprof"
    _hyprof.write_trace(str(p), sampling_data(**kw))
    return hyprof.load(p, keep_samples=True)


def test_timeline_data_adds_up_to_the_tree(tmp_path):
    trace = _timeline_trace(tmp_path, alloc=True)
    data = _data(R.render(trace, "html"))
    tl = data["timeline"]
    assert tl["threads"] == ["MainThread", "worker"]
    assert len(tl["t"]) == 30  # 27 CPU samples and 3 allocations
    assert tl["end"] == max(tl["t"]) + 1
    # Each column adds up its kind's samples (count or weight) into nodes.
    for col, (kind, by_weight, gil) in enumerate(tl["cols"]):
        sums = [0] * len(data["parent"])
        for s in range(len(tl["t"])):
            if tl["k"][s] == kind and gil in (-1, tl["g"][s]):
                sums[tl["n"][s]] += tl["w"][s] if by_weight else 1
        assert sums == data["values"][col], data["metrics"][col]
    # A trace loaded without its samples, or one with too many, has none.
    from test_render_support import sampling_trace_in
    assert _data(R.render(sampling_trace_in(tmp_path), "html"))["timeline"] is None


def test_timeline_leaves_out_what_it_cannot_show(tmp_path, monkeypatch):
    from hyprof.render import html as H
    trace = _timeline_trace(tmp_path)
    monkeypatch.setattr(H, "TIMELINE_MAX_SAMPLES", 26)
    assert _data(R.render(trace, "html"))["timeline"] is None
    monkeypatch.setattr(H, "TIMELINE_MAX_SAMPLES", 27)
    assert _data(R.render(trace, "html"))["timeline"] is not None


def test_timeline_range_filters_every_view(tmp_path):
    """Samples every 10 ms: main@3 at 10 ms, work@12 from 20 to 60 ms, work@14
    from 70 to 100, helper from 110 to 200 (MainThread); worker from 210 to
    270. The first 65 ms hold 6 samples: no helper, no worker."""
    check, path = _report(tmp_path, _timeline_trace(tmp_path), "tl.html")
    shots = _shot_dir(tmp_path)
    whole = check.check(str(path), width=1024, height=520,
                        screenshot=os.path.join(shots, "html-timeline.png"))
    assert whole["ok"], whole["errors"]
    assert whole["canvases"]["hyprof-timeline"] == ["MainThread", "worker"]
    assert not whole["wide"], "the report does not fit a 1024-pixel window"
    res = check.check(str(path), fragment="time=0-0.065&sort=own")
    assert res["ok"], res["errors"]
    assert res["status"] == ("total cpu-clock samples: 6 \u2014 time 0 s to 65 ms: 6 of 27"
                             " samples")
    assert "helper" not in res["labels"] and "[thread] worker" not in res["labels"]
    assert res["table"] == ["work", "main"]  # own: 5 and 1
    # The worker's part and the helper: 17 samples; bottom-up and sandwich
    # views take the same range.
    res = check.check(str(path), fragment="time=0.105-0.3&view=bottom-up")
    assert res["ok"], res["errors"]
    assert "total cpu-clock samples: 17" in res["status"]
    assert "helper" in res["labels"] and "work" in res["labels"]
    res = check.check(str(path), fragment="time=0.105-0.3&view=sandwich&func=work")
    assert res["ok"], res["errors"]
    assert res["status"].startswith("work: 17 of 17 cpu-clock samples (100.00%)")
    assert res["canvases"]["hyprof-callees"][:2] == ["work (17)", "helper"]
    # Drawn in the screenshot: the timeline's bars and the flame graph.
    assert len(_hot_rows(os.path.join(shots, "html-timeline.png"))) >= 3 * 15


def test_each_view_screenshot_shows_its_frames(tmp_path, det_trace):
    """The top-down and bottom-up views of one profile, as the docs show
    them: drawn frames, a table that fits 1024 pixels."""
    check, path = _report(tmp_path, det_trace, "det.html")
    shots = _shot_dir(tmp_path)
    for view in ("top-down", "bottom-up"):
        shot = os.path.join(shots, f"html-{view}.png")
        res = check.check(str(path), fragment=f"view={view}", width=1024, height=520,
                          screenshot=shot)
        assert res["ok"], res["errors"]
        assert not res["wide"]
        # main > work > helper > work: four levels of Python frames either way.
        assert len(_hot_rows(shot)) >= 3 * 15, view


def test_report_cli_gives_a_real_trace_its_timeline(tmp_path):
    """`hyprof report -o x.html` keeps a real trace's samples: two threads,
    GIL columns, per-line nodes merged into the page's tree, and the samples
    still add up to every column."""
    from test_render_support import run_hyprof
    prog = tmp_path / "prog.py"
    prog.write_text(
        "import threading, time\n"
        "def spin(s):\n"
        "    t = time.perf_counter()\n"
        "    while time.perf_counter() - t < s:\n"
        "        sum(i * i for i in range(200))\n"
        "th = threading.Thread(target=spin, args=(0.3,), name='worker-1')\n"
        "th.start()\n"
        "spin(0.3)\n"
        "th.join()\n")
    trace = tmp_path / "p.hyprof"
    run_hyprof("run", "--mode", "sampling", "--frequency", "500", "-o", trace, prog,
               cwd=tmp_path)
    run_hyprof("report", trace, "-o", tmp_path / "p.html")
    data = _data((tmp_path / "p.html").read_text())
    tl = data["timeline"]
    assert tl is not None and len(tl["t"]) >= 20
    assert sorted(tl["threads"]) == ["MainThread", "worker-1"]
    for col, (kind, by_weight, gil) in enumerate(tl["cols"]):
        total = sum((tl["w"][s] if by_weight else 1) for s in range(len(tl["t"]))
                    if tl["k"][s] == kind and gil in (-1, tl["g"][s]))
        assert total == sum(data["values"][col]), data["metrics"][col]
    # The source view: the spinning loop's lines are the hottest of prog.py.
    src = [f for f in data["source"] if f["file"].endswith("prog.py")][0]
    assert src["readable"]
    top = max(src["lines"], key=lambda ln: ln[2][data["default"]])
    assert top[0] in (4, 5) and ("perf_counter" in top[1] or "sum(i * i" in top[1]), top


def _source_trace(tmp_path, helper_file):
    """The sampling trace with its functions in real files: app.py, and the
    helper in helper_file."""
    from test_render_support import sampling_data
    import hyprof
    from hyprof import _hyprof
    app = tmp_path / "app.py"
    app.write_text("".join(f"app_line_{i} = {i}\n" for i in range(1, 21)))
    data = sampling_data()
    data["functions"] = [("main", str(app), 1, 0), ("work", str(app), 10, 0),
                         ("helper", str(helper_file), 5, 0)]
    p = tmp_path / "src.hyprof"
    _hyprof.write_trace(str(p), data)
    return hyprof.load(p, keep_samples=True)


def test_source_view_heats_the_lines_sampled(tmp_path):
    """app.py holds main@3 (1 sample), work@12 (5 + 7) and work@14 (4);
    lib.py helper@6 (10). Lines around each hot one are shown with their
    text; a time range heats only its samples' lines."""
    check = _checker()
    lib = tmp_path / "lib.py"
    lib.write_text("".join(f"lib_line_{i} = {i}\n" for i in range(1, 9)))
    trace = _source_trace(tmp_path, lib)
    data = _data(R.render(trace, "html"))
    files = [f["file"] for f in data["source"]]
    assert files == [str(tmp_path / "app.py"), str(lib)]  # 17 samples, then 10
    app_lines = {ln: (text, vals) for ln, text, vals in data["source"][0]["lines"]}
    # 3, 12 and 14, each with two lines either side.
    assert sorted(app_lines) == list(range(1, 6)) + list(range(10, 17))
    assert app_lines[12] == ("app_line_12 = 12", [12, 120 * MS])
    assert app_lines[13][1] == [0, 0]
    path = tmp_path / "src.html"
    path.write_text(R.render(trace, "html"))
    shot = os.path.join(_shot_dir(tmp_path), "html-source.png")
    res = check.check(str(path), fragment="view=source", width=1024, height=640,
                      screenshot=shot)
    assert res["ok"], res["errors"]
    assert not res["wide"]
    hot = {f: [x for x in rows if x[1]] for f, rows in res["source"].items()}
    assert hot == {str(tmp_path / "app.py"): [(3, 1), (12, 12), (14, 4)], str(lib): [(6, 10)]}
    assert res["status"] == "total cpu-clock samples: 27"
    # The heat column, drawn in the timeline's colour: a hot line's row.
    _, _, rows = check.png_pixels(shot)
    assert sum(1 for row in rows if sum(1 for px in row if px[0] > 230 and 150 < px[1] < 200
                                        and px[2] < 150) > 300) >= 10
    # 110 to 200 ms: the helper's samples only.
    res = check.check(str(path), fragment="view=source&time=0.105-0.205")
    assert res["ok"], res["errors"]
    hot = {f: [x for x in rows if x[1]] for f, rows in res["source"].items()}
    assert hot == {str(tmp_path / "app.py"): [], str(lib): [(6, 10)]}


def test_source_view_reads_only_python_sources(tmp_path):
    """A trace may name any file: only .py files are read into a report, so
    a report made of a hostile trace carries no other file's text."""
    secret = tmp_path / "secret.txt"
    secret.write_text("".join(f"password{i}\n" for i in range(1, 9)))
    page = R.render(_source_trace(tmp_path, secret), "html")
    assert "password" not in page
    lib = [f for f in _data(page)["source"] if f["file"] == str(secret)][0]
    assert not lib["readable"] and [ln[:2] for ln in lib["lines"]] == [[6, None]]
    # A deterministic trace has no lines: no source view.
    from test_render_support import det_trace_in
    assert _data(R.render(det_trace_in(tmp_path), "html"))["source"] is None


def test_a_range_counts_recursion_once_whatever_the_node_order(tmp_path):
    """Node ids only put parents first: main > work (2), main > helper (3),
    then work > work (4). With a range over every sample the table is the
    whole profile's: work's total counts its recursion once."""
    from test_render_support import MAIN, WORK, HELPER
    import hyprof
    from hyprof import _hyprof
    data = {
        "mode": "sampling", "header": {"argv": ["app.py"]},
        "metrics": [("cpu-clock_samples", "count", "own"), ("cpu-clock_ns", "ns", "own")],
        "sample_kinds": [("cpu-clock", "ns", 0, 1)],
        "functions": [MAIN, WORK, HELPER], "threads": [(1, 1, "MainThread")],
        "nodes": [(0, 0, 1), (1, 1, 2), (1, 2, 3), (2, 1, 4)], "rows": [],
        "sample_list": [(0, n, 0, (i + 1) * MS, MS) for i, n in enumerate([2, 3, 4, 4, 4, 1])],
    }
    _hyprof.write_trace(str(tmp_path / "o.hyprof"), data)
    trace = hyprof.load(tmp_path / "o.hyprof", keep_samples=True)
    check, path = _report(tmp_path, trace, "o.html")
    whole = check.check(path, fragment="sort=cum")
    ranged = check.check(path, fragment="sort=cum&time=0-1")
    assert whole["ok"] and ranged["ok"], (whole["errors"], ranged["errors"])
    assert whole["table"] == ranged["table"] == ["main", "work", "helper"]
    res = check.check(path, fragment="time=0-1&view=sandwich&func=work")
    # Counted twice, work's 4 samples would be 7, more than main's 6.
    assert res["status"].startswith("work: 4 of 6 cpu-clock samples (66.67%), called on 1 call"
                                    " path"), res["status"]


def test_a_range_counts_the_samples_of_the_metric_shown(tmp_path):
    """Beside 27 CPU samples the trace holds 3 allocations: the status counts
    the CPU samples, of the metric shown."""
    check, path = _report(tmp_path, _timeline_trace(tmp_path, alloc=True), "a.html")
    res = check.check(path, fragment="time=0-0.065")
    assert res["ok"], res["errors"]
    assert res["status"].endswith("time 0 s to 65 ms: 6 of 27 samples"), res["status"]


def test_a_title_cannot_break_the_page(tmp_path, det_trace):
    page = R.render(det_trace, "html", title="{data} \x00hyprof-data\x00 </script>")
    assert _data(page)["mode"] == "deterministic"
    assert page.count('<script type="application/json" id="hyprof-data">') == 1
    assert "<title>{data} \x00hyprof-data\x00 &lt;/script&gt;</title>" in page
