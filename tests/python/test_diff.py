"""hyprof.diff: which functions got slower or faster, as a table and as a
differential flame graph."""

import json
import re

import pytest
from hyprof import diff as D
from test_render_support import MS, det_data, sampling_data, write


@pytest.fixture
def pair(tmp_path):
    # New run: helper takes 9 ms instead of 3, the sleep 20 ms instead of 50.
    base = write(tmp_path / "base.hyprof", det_data())
    new = write(tmp_path / "new.hyprof", det_data(helper_ms=9, sleep_ms=20))
    return base, new


def test_diff_rows(pair):
    d = D.diff(*pair)
    rows = {r.name: r for r in d.rows}
    assert rows["helper"].base == 3_500_000 and rows["helper"].new == 9_500_000
    assert rows["helper"].delta == 6 * MS
    assert rows["helper"].relative == pytest.approx(6 / 3.5)
    assert rows["helper"].new_own - rows["helper"].base_own == 6 * MS
    assert rows["time.sleep"].delta == -30 * MS
    assert rows["time.sleep"].relative == pytest.approx(-0.6)
    assert rows["main"].delta == -24 * MS
    assert [r.name for r in d.slower()] == ["helper", "work"]
    assert [r.name for r in d.faster()] == ["time.sleep", "main"]
    assert (d.base_total, d.new_total) == (60_500_000, 36_500_000)
    cpu = D.diff(*pair, metric="cpu")
    assert {r.name: r.delta for r in cpu.rows}["time.sleep"] == 0


def test_diff_text_table(pair):
    text = D.render(*pair)
    assert "total: 60.5 ms -> 36.5 ms (-24 ms, -39.7%)" in text
    slower = text.split("Slower", 1)[1].split("Faster", 1)[0]
    faster = text.split("Faster", 1)[1]
    assert re.search(r"3\.5 ms\s+9\.5 ms\s+\+6 ms\s+\+171\.4%\s+helper \(lib\.py\)", slower)
    assert re.search(r"50 ms\s+20 ms\s+-30 ms\s+-60\.0%\s+time\.sleep", faster)
    assert "helper" not in faster


def test_diff_new_and_removed_functions(tmp_path):
    base_data = det_data()
    new_data = det_data()
    new_data["functions"][2] = ("helper2", "lib.py", 50, 0)
    d = D.diff(write(tmp_path / "a.hyprof", base_data), write(tmp_path / "b.hyprof", new_data))
    rows = {r.name: r for r in d.rows}
    assert rows["helper2"].base == 0 and rows["helper2"].relative is None
    assert rows["helper"].new == 0 and rows["helper"].relative == -1.0
    text = d.to_text()
    assert re.search(r"\+3\.5 ms\s+new\s+helper2", text)


def test_diff_html_is_a_differential_flame_graph(pair, tmp_path):
    page = D.render(*pair, fmt="html")
    data = json.loads(re.search(r'id="hyprof-data">(.*?)</script>', page, re.DOTALL).group(1))
    names = [f[0] for f in data["funcs"]]
    col = data["default"]
    assert data["metrics"][col]["name"] == "wall_own"
    # One tree, two value sets: helper's node has 3 ms own in base, 9 ms in new.
    helper = [i for i, f in enumerate(data["func"]) if f >= 0 and names[f] == "helper"]
    assert [data["base"][col][i] for i in helper] == [3 * MS]
    assert [data["values"][col][i] for i in helper] == [9 * MS]
    assert "slower" in page and "faster" in page
    from test_render_html import _checker
    check = _checker()
    path = tmp_path / "diff.html"
    path.write_text(page)
    res = check.check(str(path), expect=["helper", "time.sleep"], fragment="hover=helper")
    assert res["ok"], res["errors"]
    assert res["tooltip"].split("\n") == [
        "helper", "lib.py:5", "new:  9.5 ms total, 9 ms self",
        "base: 3.5 ms total, 3 ms self", "delta: +6 ms total (+171.4%), +6 ms self"]
    assert res["table"][0] in ("helper", "work")  # sorted by delta, slowest first


def test_diff_normalized_sampling(tmp_path):
    base = write(tmp_path / "a.hyprof", sampling_data())
    new = write(tmp_path / "b.hyprof", sampling_data(extra_helper=27))
    raw = {r.name: r for r in D.diff(base, new).rows}
    assert raw["helper"].delta == 27
    norm = D.diff(base, new, normalize=True)
    rows = {r.name: r for r in norm.rows}
    # Scaled to the same 54-sample total, helper's share went from 10/27 to 37/54.
    assert rows["helper"].base == pytest.approx(20)
    assert rows["helper"].new == 37
    assert rows["main"].delta == pytest.approx(0)
    assert "base scaled to the new total" in norm.to_text()


def test_diff_errors(tmp_path, pair):
    det = pair[0]
    smp = write(tmp_path / "s.hyprof", sampling_data())
    with pytest.raises(D.DiffError, match="cannot compare a deterministic trace with a "
                                          "sampling trace"):
        D.diff(det, smp)
    with pytest.raises(D.DiffError, match="unknown metric 'cycles'"):
        D.diff(*pair, metric="cycles")
    with pytest.raises(D.DiffError, match="text or html"):
        D.render(*pair, fmt="pprof")
    with pytest.raises(D.DiffError, match="not a hyprof Trace"):
        D.diff("base.hyprof", det)


def test_diff_follows_a_moved_checkout(tmp_path):
    """The same code run from another directory still matches, file by file."""
    base_data = det_data()
    new_data = det_data(helper_ms=9)
    for data, root in ((base_data, "/srv/releases/41/"), (new_data, "/srv/releases/42/")):
        data["functions"] = [(n, root + f if f else f, ln, k) for n, f, ln, k in
                             data["functions"]]
    d = D.diff(write(tmp_path / "a.hyprof", base_data), write(tmp_path / "b.hyprof", new_data))
    rows = {r.name: r for r in d.rows}
    assert len(rows) == 4
    assert rows["helper"].filename == "/srv/releases/42/lib.py"
    assert (rows["helper"].base, rows["helper"].new) == (3_500_000, 9_500_000)
    assert "helper (42/lib.py)" in d.to_text()
