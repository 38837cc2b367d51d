"""The text table, the call tree and the pstats export on traces with known
numbers (tests/python/test_render_support.py), for both modes."""

import asyncio
import pstats

import hyprof
import pytest
from hyprof import render as R
from hyprof.render import pstats as P
from hyprof.render import text as T
from test_render_support import MS, tree_rows




def rows(out):
    lines = out.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith(("calls", "own")))
    return [ln.split() for ln in lines[head + 1:] if ln.strip() and not ln.startswith("...")]


def test_text_table_numbers_and_recursion(det_trace):
    out = R.render(det_trace, "text", sort="cum", limit=0)
    table = {r[6]: r for r in rows(out)}
    # work: 3 outer calls + 2 recursive ones; 9.5 ms inclusive, counted once.
    assert table["work"][0] == "5/3"
    assert float(table["work"][2]) == pytest.approx(0.0095)
    assert float(table["work"][1]) == pytest.approx(0.0065)  # 6 + 0.5 ms own
    assert table["helper"][0] == "30"
    assert float(table["time.sleep"][1]) == pytest.approx(0.050)
    assert float(table["time.sleep"][3]) == pytest.approx(0.00001)  # 10 us CPU
    # Sorted by cumulative wall time.
    assert [r[6] for r in rows(out)] == ["main", "time.sleep", "work", "helper"]
    assert "37 calls of 4 functions" in out  # 1 + 5 + 30 + 1


@pytest.mark.parametrize("sort,first", [("calls", "helper"), ("own", "time.sleep"),
                                        ("cpu", "work"), ("name", "helper")])
def test_text_sorts(det_trace, sort, first):
    assert rows(R.render(det_trace, "text", sort=sort, limit=1))[0][6] == first


def test_text_limit_and_bad_options(det_trace):
    out = R.render(det_trace, "text", limit=2)
    assert len(rows(out)) == 2 and "... 2 more functions" in out
    with pytest.raises(R.ReportError, match="'bogus'"):
        R.render(det_trace, "text", sort="bogus")
    with pytest.raises(R.ReportError, match="limit"):
        R.render(det_trace, "text", limit=-1)
    with pytest.raises(R.ReportError, match="'colour'"):
        R.render(det_trace, "text", colour=True)


def test_text_builtins_false_and_sampling(det_trace, sampling_trace):
    assert "time.sleep" not in R.render(det_trace, "text", builtins=False)
    out = R.render(sampling_trace, "text", sort="own", limit=0)
    table = {r[4]: r for r in rows(out)}
    assert table["work"][0] == "16"  # 5 + 4 + 7 own samples
    assert table["helper"][0] == "10"
    assert table["main"][2] == "27"  # every sample is under main
    assert "27 samples" in out
    with pytest.raises(R.ReportError, match="calls"):
        R.render(sampling_trace, "text", sort="calls")


def test_tree_shares_and_nesting(det_trace):
    out = R.render(det_trace, "tree", min_percent=0.0)
    rows = tree_rows(out)
    main = rows[0]
    assert (main["name"], main["where"], main["share"], main["depth"]) == \
        ("main", "app.py:1", 100.0, 0)
    assert main["value"] == "60.5 ms" and main["count"] == 1
    sleep = next(r for r in rows if r["name"] == "time.sleep")
    assert sleep["share"] == round(100.0 * 50 / 60.5, 1) and sleep["depth"] == 1
    # Children under their parent, heaviest first; the recursion is a path.
    work = next(r for r in rows if r["name"] == "work" and r["depth"] == 1)
    assert rows.index(sleep) < rows.index(work) and work["count"] == 3
    deeper = rows[rows.index(work) + 1:]
    # work's own 6 ms beside helper's 3.5: a [self] row, sorted among them.
    assert [(r["name"], r["depth"], r["value"]) for r in deeper] == [
        ("[self]", 2, "6 ms"), ("helper", 2, "3.5 ms"), ("[self]", 3, "3 ms"),
        ("work", 3, "500 us")]
    # The functions by own time follow the tree, heaviest first.
    tail = out.split("functions by own wall time", 1)[1].splitlines()[1:]
    assert tail[0].split()[-1] == "time.sleep" and tail[0].split()[1:3] == ["50", "ms"]
    # Small subtrees are summed into one line when they add up to the
    # threshold, and left out when they do not.
    folded = tree_rows(R.render(det_trace, "tree", min_percent=16.0))
    assert [r["name"] for r in folded] == ["main", "time.sleep"]
    # work's children all under it: no [self] row alone beside nothing.
    kept = tree_rows(R.render(det_trace, "tree", min_percent=9.0))
    assert [r["name"] for r in kept] == ["main", "time.sleep", "work"]
    kept = tree_rows(R.render(det_trace, "tree", min_percent=5.0))
    assert [r["name"] for r in kept] == ["main", "time.sleep", "work", "[self]", "helper"]
    cpu = R.render(det_trace, "tree", clock="cpu", min_percent=0.0)
    assert "time.sleep" in cpu
    with pytest.raises(R.ReportError, match="clock"):
        R.render(det_trace, "tree", clock="gpu")


def test_tree_of_a_sampling_trace(sampling_trace):
    out = R.render(sampling_trace, "tree", min_percent=0.0)
    main = tree_rows(out)[0]
    assert (main["name"], main["share"], main["value"], main["count"]) == \
        ("main", 100.0, "270 ms", 27)
    assert "call tree, by cpu-clock (270 ms in all)" in out


def test_pstats_export_matches_cprofile_conventions(det_trace, sampling_trace):
    st = pstats.Stats(P.PstatsExport(det_trace))
    work = ("app.py", 10, "work")
    cc, nc, tt, ct, callers = st.stats[work]
    assert (cc, nc) == (3, 5)
    assert tt == pytest.approx(0.0065) and ct == pytest.approx(0.0095)
    assert set(callers) == {("app.py", 1, "main"), ("lib.py", 5, "helper")}
    assert callers[("app.py", 1, "main")][:2] == (3, 3)
    assert st.stats[("~", 0, "time.sleep")][:2] == (1, 1)
    assert st.total_calls == 37 and st.prim_calls == 35
    cpu = P.stats(det_trace, clock="cpu")
    assert cpu[("~", 0, "time.sleep")][2] == pytest.approx(10e-6)
    with pytest.raises(R.ReportError, match="deterministic"):
        P.stats(sampling_trace)


def test_sorted_functions_api(det_trace):
    funcs = T.sorted_functions(det_trace, "own")
    assert [f.name for f in funcs] == ["time.sleep", "work", "helper", "main"]
    assert funcs[0].wall_own == pytest.approx(50 * MS / 1e9)


async def nap(t):
    await asyncio.sleep(t)


async def naps():
    await asyncio.gather(nap(0.06), nap(0.06), nap(0.03))


def test_rows_longer_than_the_run_are_marked():
    """Overlapping coroutines each count their own life: a row with more
    cumulative wall time than the run says why, in the table and the tree."""
    with hyprof.Profiler(builtins=False) as p:
        asyncio.run(naps())
    t = p.trace()
    fs = {f.name.rsplit(".", 1)[-1]: f for f in t.functions()}
    assert fs["nap"].wall_cum > t.header["duration"]
    out = R.render(t, "text", limit=0)
    marked = [ln for ln in out.splitlines() if T.OVERLAP_MARK in ln]
    assert any(" nap " in ln for ln in marked)
    assert not any(" naps " in ln for ln in marked)
    assert T.OVERLAP_NOTE in out
    tree = R.render(t, "tree", min_percent=0, max_depth=100)
    assert any("nap" in ln and T.OVERLAP_MARK in ln for ln in tree.splitlines())
    assert T.OVERLAP_NOTE not in R.render(t, "text", limit=1, sort="name")


def test_pstats_leaves_the_garbage_collector_as_it_found_it(det_trace, sampling_trace):
    # The export pauses the cyclic collector while it builds its tuples;
    # the program's setting is back afterwards, on an error too.
    import gc

    from hyprof.errors import ReportError

    was = gc.isenabled()
    try:
        gc.enable()
        P.stats(det_trace)
        assert gc.isenabled()
        with pytest.raises(ReportError):
            P.stats(sampling_trace)
        assert gc.isenabled()
        gc.disable()
        P.stats(det_trace)
        assert not gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()
