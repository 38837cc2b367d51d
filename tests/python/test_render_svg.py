"""The SVG flame graph: a valid XML document (parsed by the standard
library's parser), boxes as wide as their values, readable without scripts;
searched and zoomed in a real headless Chromium."""

import os
import re
import xml.etree.ElementTree as ET

import pytest
from hyprof import render as R
from test_render_support import det_data, run_hyprof, write

NS = "{http://www.w3.org/2000/svg}"


def frames(svg):
    """[(name, value, x, y, width, tooltip, label)] of the drawn boxes."""
    root = ET.fromstring(svg)
    out = []
    for g in root.iter(NS + "g"):
        if g.get("data-name") is None:
            continue
        rect = g.find(NS + "rect")
        text = g.find(NS + "text")
        out.append((g.get("data-name"), int(g.get("data-value")), float(rect.get("x")),
                    float(rect.get("y")), float(rect.get("width")), g.find(NS + "title").text,
                    text.text if text is not None else ""))
    return root, out


def test_boxes_are_as_wide_as_their_share(det_trace):
    svg = R.render(det_trace, "svg", width=1000)
    root, boxes = frames(svg)
    assert root.tag == NS + "svg" and root.get("width") == "1000"
    by_name = {}
    for b in boxes:
        by_name.setdefault(b[0], []).append(b)
    # main is the whole width (less the margins); work's share of 60.5 ms.
    [main] = by_name["main"]
    assert main[4] == pytest.approx(980, abs=0.01) and main[1] == 60_500_000
    top_work = max(by_name["work"], key=lambda b: b[4])
    assert top_work[4] == pytest.approx(980 * 9.5 / 60.5, abs=0.01)
    assert top_work[5] == "work (app.py:10): 9.5 ms, 15.70%"
    # Flame graph: callers below their callees; a child inside its parent.
    sleep = by_name["time.sleep"][0]
    assert sleep[3] < main[3]
    assert main[2] <= sleep[2] and sleep[2] + sleep[4] <= main[2] + main[4] + 0.01
    # Names that do not fit are cut with "..", and dropped below 3 characters.
    assert all(label == "" or label.endswith("..") or label.startswith(name)
               for name, _, _, _, _, _, label in boxes)
    inverted = frames(R.render(det_trace, "svg", width=1000, inverted=True))[1]
    assert [b for b in inverted if b[0] == "main"][0][3] < \
        [b for b in inverted if b[0] == "time.sleep"][0][3]


def test_sampling_and_metric_and_min_width(sampling_trace):
    _, boxes = frames(R.render(sampling_trace, "svg"))
    assert {b[0] for b in boxes} == {"main", "work", "helper"}
    assert [b[1] for b in boxes if b[0] == "main"] == [27]  # samples, per function
    ns = frames(R.render(sampling_trace, "svg", metric="cpu-clock_ns"))[1]
    assert [b[1] for b in ns if b[0] == "main"] == [270_000_000]
    # Boxes under min_width pixels are left out: helper is 10/27 of 180 px.
    wide = frames(R.render(sampling_trace, "svg", width=200, min_width=70))[1]
    assert {b[0] for b in wide} == {"main", "work"}


def test_bad_options_and_names_are_escaped(det_trace):
    for opts, says in (({"width": 10}, "width"), ({"min_width": -1}, "min_width"),
                       ({"colour": 1}, "colour")):
        with pytest.raises(ValueError, match=says):
            R.render(det_trace, "svg", **opts)
    svg = R.render(det_trace, "svg", title="<a & b>")
    assert "<title>&lt;a &amp; b&gt;</title>" in svg
    ET.fromstring(svg)  # still well formed


def test_names_xml_cannot_hold_are_replaced(tmp_path):
    data = det_data()
    name, file, line, kind = data["functions"][0]
    data["functions"][0] = ("m\x01a\udcffin<", file, line, kind)
    svg = R.render(write(tmp_path / "odd.hyprof", data), "svg")
    _, boxes = frames(svg)  # parses: no control character or surrogate in it
    assert "m\ufffda\ufffdin<" in {b[0] for b in boxes}


def test_cli_writes_svg_from_the_suffix(tmp_path, det_trace):
    trace = tmp_path / "t.hyprof"
    trace.write_bytes(det_trace.to_bytes())
    run_hyprof("report", trace, "-o", tmp_path / "flame.svg")
    root, boxes = frames((tmp_path / "flame.svg").read_text())
    assert {"main", "work", "helper", "time.sleep"} <= {b[0] for b in boxes}
    out = run_hyprof("report", trace, "--format", "svg").stdout
    assert out.startswith("<?xml")


def _browser():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "check_html", os.path.join(os.path.dirname(__file__), "..", "browser", "check_html.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    browser = mod.find_browser()
    if browser is None:
        pytest.skip("no Chromium to open the SVG in (apt-get install chromium)")
    return mod, browser


def test_search_and_zoom_in_chromium(tmp_path, det_trace):
    mod, browser = _browser()
    path = tmp_path / "flame.svg"
    path.write_text(R.render(det_trace, "svg"))
    # A link that searches: work's frames hold 9.5 of 60.5 ms (the recursive
    # one inside the outer is counted once).
    r = mod._run(browser, ["--enable-logging=stderr", "--v=0", "--dump-dom",
                           f"file://{path}#s=^work$&zoom=work"], 120)
    dom = r.stdout
    assert 'data-ready="1"' in dom, (dom[:300], r.stderr[-2000:])
    assert "Matched: 15.7%" in dom
    assert len(re.findall(r'class="hy-hit"', dom)) == 2
    # Zoomed into work: main, below it, spans the width, dimmed.
    assert re.search(r'<g[^>]*data-name="main"[^>]*class="hy-dim"', dom), dom
    assert not re.search(r"Uncaught|SyntaxError", r.stderr)
    shot = tmp_path / "flame.png"
    mod._run(browser, ["--window-size=1220,400", f"--screenshot={shot}", f"file://{path}"], 120)
    assert shot.stat().st_size > 5000
