"""An SVG flame graph, as flamegraph.pl draws one (docs/reports.md).

One file that any browser shows without scripts: each call path a box as
wide as its share of the metric, its callers below it (``inverted=True``:
an icicle, callers above), its name in the box where it fits and in a
tooltip (``<title>``) with its value and share. With scripts, as in a
browser opening the file: hover shows the frame under the pointer at the
bottom, a click zooms into a frame (its callers stay, dimmed), and Search
(or Ctrl+F) highlights the frames whose name matches a regular expression
and says what share of the total they hold; a link can carry both
(``flame.svg#s=REGEX&zoom=NAME``). Boxes narrower than
``min_width`` pixels are left out, as flamegraph.pl leaves them out, so a
million-node trace stays a file a browser opens.
"""

import hashlib
import re
from xml.sax import saxutils

from ..errors import ReportError
from . import _model
from .html import describe

FRAME_H = 16   # pixels per frame
FONT = 12      # pixels
CHAR_W = 0.59 * FONT  # a Verdana character, about
PAD_TOP = 56
PAD_BOTTOM = 40
SIDE = 10


# What XML 1.0 cannot hold, even escaped: control characters and the
# surrogates a trace's undecodable bytes become.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def escape(text):
    return saxutils.escape(_NOT_XML.sub("\ufffd", text))


def quoteattr(text):
    return saxutils.quoteattr(_NOT_XML.sub("\ufffd", text))


def _color(name, kind):
    """A warm colour per function name, stable across runs (flamegraph.pl's
    "hot" palette); C functions yellower, hyprof's special frames grey."""
    if kind == "special":
        return "rgb(190,190,200)"
    h = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=3).digest()
    r = 205 + h[0] % 50
    g = (h[1] % 230) if kind != "builtin" else 150 + h[1] % 80
    b = h[2] % 55
    return f"rgb({r},{g},{b})"


def render(trace, metric=None, width=1200, min_width=0.1, inverted=False, title=None,
           **options):
    """The SVG document as a string."""
    _model.reject_options("svg", options)
    if isinstance(width, bool) or not isinstance(width, int) or not 200 <= width <= 100000:
        raise ReportError("width must be a number of pixels from 200 to 100000, not %r"
                                 % (width,))
    if not isinstance(min_width, (int, float)) or not 0 <= min_width <= 100:
        raise ReportError("min_width must be pixels from 0 to 100, not %r"
                                 % (min_width,))
    tree = _model.call_tree(trace).by_function()
    col = tree.column(metric) if metric else tree.default_column()
    c = tree.columns[col]
    inc = tree.inclusive(col)
    total = inc[0]
    header = getattr(trace, "header", {}) or {}
    if title is None:
        prog = _model.program(header)
        title = f"hyprof: {prog}" if prog else "hyprof flame graph"
    subtitle = "%s, by %s (%s in all)" % (describe(header, trace.mode), c.label,
                                          _model.format_value(total, c.unit))
    funcs, func, kids = tree.funcs, tree.func, tree.children
    inner = width - 2 * SIDE
    scale = inner / total if total else 0.0
    # (node, x, width, depth) of every box wide enough, depth first: the
    # root's children side by side from the left, the children of a box
    # from its left edge.
    boxes, deepest, x_of, offset = [], 0, {}, 0.0
    for k in kids[0]:
        x_of[k] = offset
        offset += inc[k] * scale
    stack = [(k, 0) for k in reversed(kids[0])] if total else []
    while stack:
        i, depth = stack.pop()
        w = inc[i] * scale
        if w < min_width:
            continue
        boxes.append((i, x_of[i], w, depth))
        deepest = max(deepest, depth)
        left = x_of[i]
        for k in kids[i]:
            x_of[k] = left
            left += inc[k] * scale
        stack.extend((k, depth + 1) for k in reversed(kids[i]))
    height = PAD_TOP + (deepest + 1) * FRAME_H + PAD_BOTTOM
    out = [
        '<?xml version="1.0" standalone="no"?>',
        '<svg version="1.1" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'data-total={quoteattr(str(total))} data-unit={quoteattr(c.unit or "")} '
        f'data-inverted="{1 if inverted else 0}">',
        f"<title>{escape(title)}</title>",
        "<style>text{font-family:Verdana,sans-serif;font-size:%dpx;fill:#000}"
        "#frames text{pointer-events:none}#frames g{cursor:pointer}"
        ".hy-dim rect{opacity:.35}.hy-hit rect{fill:rgb(230,0,230)}"
        "#hy-search,#hy-reset{cursor:pointer}#hy-reset{visibility:hidden}</style>" % FONT,
        f'<rect width="100%" height="100%" fill="#f8f8f8"/>',
        f'<text x="{width / 2:.1f}" y="22" text-anchor="middle" style="font-size:17px">'
        f"{escape(title)}</text>",
        f'<text x="{width / 2:.1f}" y="40" text-anchor="middle" fill="#555">'
        f"{escape(subtitle)}</text>",
        f'<text id="hy-reset" x="{SIDE}" y="22">Reset zoom</text>',
        f'<text id="hy-search" x="{width - SIDE}" y="22" text-anchor="end">Search</text>',
        f'<text id="hy-matched" x="{width - SIDE}" y="{height - 12}" text-anchor="end"></text>',
        f'<text id="hy-details" x="{SIDE}" y="{height - 12}"> </text>',
        '<g id="frames">',
    ]
    for i, x, w, depth in boxes:
        f = funcs[func[i]]
        label = _model.frame_label(f)
        v = inc[i]
        tip = "%s: %s, %.2f%%" % (label, _model.format_value(v, c.unit), 100.0 * v / total)
        y = PAD_TOP + (depth * FRAME_H if inverted else (deepest - depth) * FRAME_H)
        chars = int((w - 6) / CHAR_W)
        text = ""
        if chars >= 3:
            text = label if len(label) <= chars else label[:chars - 2] + ".."
        out.append(
            f'<g data-name={quoteattr(f.name)} data-value="{v}">'
            f"<title>{escape(tip)}</title>"
            f'<rect x="{SIDE + x:.2f}" y="{y}" width="{w:.2f}" height="{FRAME_H - 1}" '
            f'fill="{_color(f.name, f.kind)}" rx="2"/>'
            + (f'<text x="{SIDE + x + 3:.2f}" y="{y + FRAME_H - 4}">{escape(text)}</text>'
               if text else "") + "</g>")
    out.append("</g>")
    out.append("<script><![CDATA[" + _SCRIPT.replace("]]>", "]]]]><![CDATA[>") + "]]></script>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


# Zoom, search and details, for a browser that runs scripts; the drawing
# above needs none of it.
_SCRIPT = r"""
(function () {
  var svg = document.documentElement, NS = "http://www.w3.org/2000/svg";
  var frames = document.getElementById("frames"), side = %(side)d;
  var width = +svg.getAttribute("width") - 2 * side, total = +svg.getAttribute("data-total");
  var details = document.getElementById("hy-details").firstChild;
  var matched = document.getElementById("hy-matched");
  var reset = document.getElementById("hy-reset");
  var gs = Array.prototype.slice.call(frames.getElementsByTagName("g"));
  gs.forEach(function (g) {
    var r = g.getElementsByTagName("rect")[0], t = g.getElementsByTagName("text")[0];
    g._x = +r.getAttribute("x"); g._w = +r.getAttribute("width"); g._y = +r.getAttribute("y");
    g._label = g.getElementsByTagName("title")[0].textContent;
    g._text = t ? t.textContent : "";
    g._name = g.getAttribute("data-name");
    g._full = g._label.replace(/: [^:]*$/, "");
  });
  function fit(g, x, w) {
    var r = g.getElementsByTagName("rect")[0], t = g.getElementsByTagName("text")[0];
    r.setAttribute("x", x); r.setAttribute("width", Math.max(w, 0));
    if (!t && w > 24) { t = document.createElementNS(NS, "text"); g.appendChild(t); }
    if (!t) return;
    t.setAttribute("x", x + 3); t.setAttribute("y", g._y + 12);
    var n = Math.floor((w - 6) / %(char_w).3f);
    t.textContent = n < 3 ? "" : (g._full.length <= n ? g._full : g._full.slice(0, n - 2) + "..");
  }
  function zoom(target) {
    var x0 = target._x, w0 = target._w, inv = svg.getAttribute("data-inverted") === "1";
    gs.forEach(function (g) {
      var below = inv ? g._y < target._y : g._y > target._y;
      var inside = g._x >= x0 - 0.01 && g._x + g._w <= x0 + w0 + 0.01;
      g.style.display = (inside || (below && g._x <= x0 + 0.01 && g._x + g._w >= x0 + w0 - 0.01))
        ? "" : "none";
      if (g.style.display === "none") return;
      g.classList.toggle("hy-dim", below);
      if (below) fit(g, side, width);
      else fit(g, side + (g._x - x0) / w0 * width, g._w / w0 * width);
    });
    reset.style.visibility = "visible";
  }
  function unzoom() {
    gs.forEach(function (g) {
      g.style.display = ""; g.classList.remove("hy-dim"); fit(g, g._x, g._w);
    });
    reset.style.visibility = "hidden";
  }
  function search(re) {
    var sum = 0, seen = [];
    gs.forEach(function (g) {
      var hit = re !== null && re.test(g._name);
      g.classList.toggle("hy-hit", hit);
      if (!hit) return;
      // A frame inside a matched one is counted once, with its ancestor.
      for (var k = 0; k < seen.length; k++)
        if (g._x >= seen[k][0] - 0.01 && g._x + g._w <= seen[k][1] + 0.01 &&
            seen[k][2] !== g._y) return;
      seen.push([g._x, g._x + g._w, g._y]);
      sum += +g.getAttribute("data-value");
    });
    matched.textContent = re === null ? "" :
      "Matched: " + (total ? (100 * sum / total).toFixed(1) : "0") + "%%";
  }
  frames.addEventListener("click", function (e) {
    var g = e.target.closest ? e.target.closest("g") : null;
    if (g && g.parentNode === frames) zoom(g);
  });
  frames.addEventListener("mouseover", function (e) {
    var g = e.target.closest ? e.target.closest("g") : null;
    if (g && g._label) details.nodeValue = g._label;
  });
  reset.addEventListener("click", unzoom);
  document.getElementById("hy-search").addEventListener("click", function () {
    var term = window.prompt("Search for (a regular expression):", "");
    if (term === null || term === "") { search(null); return; }
    try { search(new RegExp(term)); } catch (err) { matched.textContent = "Bad pattern"; }
  });
  window.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && e.key === "f") {
      e.preventDefault(); document.getElementById("hy-search").dispatchEvent(new Event("click"));
    }
  });
  // A link may carry a search and a zoom, as flamegraph.pl's do:
  // file.svg#s=REGEX&zoom=NAME (the first frame of that name).
  var args = {};
  (window.location.hash || "").replace(/^#/, "").split("&").forEach(function (kv) {
    var at = kv.indexOf("=");
    if (at <= 0) return;
    try { args[kv.slice(0, at)] = decodeURIComponent(kv.slice(at + 1)); }
    catch (err) { args[kv.slice(0, at)] = kv.slice(at + 1); }  // a stray per cent sign: as written
  });
  if (args.zoom) {
    var z = gs.filter(function (g) { return g._name === args.zoom; })[0];
    if (z) zoom(z);
  }
  if (args.s) {
    try { search(new RegExp(args.s)); } catch (err) { matched.textContent = "Bad pattern"; }
  }
  svg.setAttribute("data-ready", "1");
})();
""" % {"side": SIDE, "char_w": CHAR_W}
