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
    check = _checker()
    path = tmp_path / "v.html"
    path.write_text(R.render(det_trace, "html"))
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
    check = _checker()
    path = tmp_path / "det.html"
    path.write_text(R.render(det_trace, "html"))
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
