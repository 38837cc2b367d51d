/* hyprof HTML report: the flame graph and the function table.
 *
 * Inlined into every report with the profile's data (a <script
 * type="application/json" id="hyprof-data">), so a report is one file that
 * works offline. The data is a call tree in flat arrays: parent[i], func[i]
 * and per metric column the node's own value, with parents before children.
 * Everything shown is derived here in linear passes over those arrays.
 */
(function () {
  "use strict";

  var D = JSON.parse(document.getElementById("hyprof-data").textContent);
  var N = D.parent.length;
  var DIFF = !!D.base;
  var ROW = 18;
  // Browsers refuse canvases much taller than 32k pixels: deeper frames wait
  // for a zoom.
  var MAX_LEVELS = 1500;
  var clipped = false;
  var TABLE_LIMIT = 300;

  // ------------------------------------------------------------ tree arrays

  // The tree drawn: the trace's call tree (top-down), or its inversion
  // (bottom-up: each function where time was spent at the root, its callers
  // above it), made the first time it is asked for.
  var parent, func, values, N, depth, kidStart, kids, inc;
  var funcs = D.funcs;
  var view = "top-down", inverted = null;
  function fname(n) { return n === 0 ? "all" : funcs[func[n]][0]; }

  function setTree(P, F, V) {
    parent = P; func = F; values = V; N = P.length;
    inc = new Float64Array(N);
    depth = new Int32Array(N);
    var nkids = new Int32Array(N + 1), i;
    for (i = 1; i < N; i++) {
      depth[i] = depth[parent[i]] + 1;
      nkids[parent[i] + 1]++;
    }
    for (i = 1; i <= N; i++) nkids[i] += nkids[i - 1];
    kidStart = nkids; // kids of n: kids[kidStart[n] .. kidStart[n + 1])
    kids = new Int32Array(Math.max(N - 1, 1));
    var fill = new Int32Array(N);
    for (i = 1; i < N; i++) {
      var p = parent[i];
      kids[kidStart[p] + fill[p]++] = i;
    }
    // Siblings in name order, as flamegraph.pl does: the picture keeps its
    // shape when the metric changes.
    for (var n = 0; n < N; n++) {
      var a = kidStart[n], b = kidStart[n + 1];
      if (b - a > 1) {
        var part = Array.prototype.slice.call(kids, a, b);
        part.sort(function (x, y) {
          var fx = fname(x), fy = fname(y);
          return fx < fy ? -1 : fx > fy ? 1 : x - y;
        });
        for (var k = 0; k < part.length; k++) kids[a + k] = part[k];
      }
    }
  }
  setTree(D.parent, D.func, D.values);

  // The bottom-up tree: a node per (function, its caller, the caller's
  // caller...) as far up as the path goes; each path's own values go to the
  // node of its whole chain, so that a node's total is the time spent in its
  // function when called through that chain of callers.
  function invert() {
    var P = D.parent, F = D.func, M = D.values.length, n0 = P.length;
    var ip = [-1], ifn = [0], own = [], index = new Map(), width = funcs.length + 1;
    for (var m = 0; m < M; m++) own.push([0]);
    for (var n = 1; n < n0; n++) {
      var any = false;
      for (m = 0; m < M; m++) if (D.values[m][n]) { any = true; break; }
      if (!any) continue;
      var at = 0;
      for (var a = n; a > 0; a = P[a]) {
        var key = at * width + F[a];  // exact below 2^53
        var c = index.get(key);
        if (c === undefined) {
          c = ip.length;
          ip.push(at); ifn.push(F[a]);
          for (m = 0; m < M; m++) own[m].push(0);
          index.set(key, c);
        }
        at = c;
      }
      for (m = 0; m < M; m++) own[m][at] += D.values[m][n];
    }
    return [ip, ifn, own];
  }

  function setView(v) {
    if (v !== "bottom-up" || DIFF) v = "top-down";
    if (v === view) return;
    view = v;
    if (v === "bottom-up") {
      inverted = inverted || invert();
      setTree(inverted[0], inverted[1], inverted[2]);
    } else {
      setTree(D.parent, D.func, D.values);
    }
    zoom = 0;
    setSearch(search.value);
    document.getElementById("hyprof-view").value = v;
  }

  var metric = D.default;
  var baseInc = DIFF ? new Float64Array(N) : null;

  function computeInc() {
    var own = values[metric];
    for (var i = 0; i < N; i++) inc[i] = own[i];
    for (i = N - 1; i > 0; i--) inc[parent[i]] += inc[i];
    if (DIFF) {
      var bown = D.base[metric];
      for (i = 0; i < N; i++) baseInc[i] = bown[i];
      for (i = N - 1; i > 0; i--) baseInc[parent[i]] += baseInc[i];
    }
  }

  // ------------------------------------------------------------ formatting

  function fmtNum(v) {
    return Math.round(v).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }
  // As the console report and the title print a value (render/_model.py,
  // format_value): three significant digits, so one duration reads the same
  // everywhere.
  function sig(x, div, u, s) {
    var y = x / div;
    return s + (y < 1000 ? String(parseFloat(y.toPrecision(3))) : fmtNum(y)) + " " + u;
  }
  function fmt(v, unit) {
    var s = v < 0 ? "-" : "", x = Math.abs(v);
    if (unit === "ns") {
      if (x >= 1e9) return sig(x, 1e9, "s", s);
      if (x >= 1e6) return sig(x, 1e6, "ms", s);
      if (x >= 1e3) return sig(x, 1e3, "us", s);
      return s + fmtNum(x) + " ns";
    }
    if (unit === "bytes") {
      if (x >= 1073741824) return sig(x, 1073741824, "GiB", s);
      if (x >= 1048576) return sig(x, 1048576, "MiB", s);
      if (x >= 1024) return sig(x, 1024, "KiB", s);
      return s + fmtNum(x) + " B";
    }
    return s + fmtNum(x);
  }
  function pct(v, total) {
    return total ? (100 * v / total).toFixed(2) + "%" : "-";
  }
  function unit() { return D.metrics[metric].unit; }
  function where(f) {
    var fn = funcs[f];
    return fn[1] ? fn[1] + ":" + fn[2] : (fn[3] === "builtin" ? "built-in" : "");
  }
  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c];
    });
  }

  // ------------------------------------------------------------ colours

  function hash(s) {
    var h = 2166136261;
    for (var i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 16777619);
    }
    return (h >>> 0) / 4294967296;
  }
  var colourCache = {};
  function frameColour(n) {
    if (n === 0) return "#c9ced8";
    var f = func[n], fn = funcs[f];
    var c = colourCache[f];
    if (c) return c;
    var h = hash(fn[0]), h2 = hash(fn[1] + fn[0]);
    if (fn[3] === "special") c = "rgb(180,180,190)";
    else if (fn[3] === "builtin")  // C functions: the "aqua" palette
      c = "rgb(" + Math.round(50 + 60 * h) + "," + Math.round(165 + 60 * h2) + ","
        + Math.round(200 + 50 * h) + ")";
    else  // Python functions: flamegraph.pl's "hot" palette
      c = "rgb(" + Math.round(205 + 50 * h2) + "," + Math.round(230 * h) + ","
        + Math.round(55 * h2) + ")";
    colourCache[f] = c;
    return c;
  }
  function darkFill(c) {
    // Perceived brightness of an "rgb(r,g,b)" or "#rrggbb" colour.
    var m = /rgb\((\d+),(\d+),(\d+)\)/.exec(c), r, g, b;
    if (m) { r = +m[1]; g = +m[2]; b = +m[3]; }
    else { r = parseInt(c.substr(1, 2), 16); g = parseInt(c.substr(3, 2), 16);
      b = parseInt(c.substr(5, 2), 16); }
    return 0.299 * r + 0.587 * g + 0.114 * b < 110;
  }
  var maxSelfDelta = 1;
  function diffScale() {
    var own = D.values[metric], bown = D.base[metric], m = 0;
    for (var i = 1; i < N; i++) m = Math.max(m, Math.abs(own[i] - bown[i]));
    maxSelfDelta = m || 1;
  }
  function diffColour(n) {
    // Red: slower (more in the new profile), blue: faster; by self delta.
    if (n === 0) return "#d0d0d0";
    var d = D.values[metric][n] - D.base[metric][n];
    var t = Math.min(1, Math.abs(d) / maxSelfDelta);
    var lo = Math.round(235 - 190 * Math.sqrt(t));
    return d > 0 ? "rgb(255," + lo + "," + lo + ")"
      : d < 0 ? "rgb(" + lo + "," + lo + ",255)" : "rgb(235,235,235)";
  }

  // ------------------------------------------------------------ search

  var matchFunc = null; // Uint8Array per function, or null without a search
  var matchNode = null;

  function setSearch(text) {
    if (!text) { matchFunc = null; matchNode = null; return; }
    var re;
    try { re = new RegExp(text, "i"); } catch (e) {
      var lower = text.toLowerCase();
      re = { test: function (s) { return s.toLowerCase().indexOf(lower) >= 0; } };
    }
    matchFunc = new Uint8Array(funcs.length);
    for (var f = 0; f < funcs.length; f++) {
      if (re.test(funcs[f][0]) || re.test(funcs[f][1])) matchFunc[f] = 1;
    }
    matchNode = new Uint8Array(N);
    for (var i = 1; i < N; i++) matchNode[i] = matchFunc[func[i]];
  }

  function matchedTotal() {
    // The share of the total under a matching frame, nested matches once.
    var total = 0, stack = [0];
    while (stack.length) {
      var n = stack.pop();
      if (matchNode[n]) { total += inc[n]; continue; }
      for (var k = kidStart[n]; k < kidStart[n + 1]; k++) stack.push(kids[k]);
    }
    return total;
  }

  // ------------------------------------------------------------ flame graph

  var canvas = document.getElementById("hyprof-flame");
  var ctx = canvas.getContext("2d");
  var tip = document.getElementById("hyprof-tip");
  var zoom = 0;
  var levels = [];   // per level: [node, x, w, node, x, w, ...]
  var drawn = 0;

  function layout(width) {
    levels = [];
    clipped = false;
    function put(level, node, x, w) {
      (levels[level] || (levels[level] = [])).push(node, x, w);
    }
    // The zoomed frame's ancestors span the whole width above it.
    var chain = [];
    for (var a = zoom; a !== 0; a = parent[a]) chain.push(a);
    chain.push(0);
    chain.reverse();
    for (var l = 0; l < chain.length - 1; l++) put(l, chain[l], 0, width);
    var total = inc[zoom];
    if (!total) { put(chain.length - 1, zoom, 0, width); return; }
    var scale = width / total;
    var stack = [zoom, 0, chain.length - 1];
    while (stack.length) {
      var lev = stack.pop(), x = stack.pop(), n = stack.pop();
      var w = inc[n] * scale;
      put(lev, n, x, w);
      var cx = x;
      for (var k = kidStart[n]; k < kidStart[n + 1]; k++) {
        var c = kids[k], cw = inc[c] * scale;
        if (cw >= 0.4) {
          if (lev + 1 < MAX_LEVELS) stack.push(c, cx, lev + 1);
          else clipped = true;
        }
        cx += cw;
      }
    }
  }

  function draw() {
    var box = document.getElementById("hyprof-flame-box");
    var width = Math.max(200, box.clientWidth - 36);
    layout(width);
    var height = Math.max(levels.length, 1) * ROW + 2;
    var ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.height = height + "px";
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "12px 'DejaVu Sans', Helvetica, Arial, sans-serif";
    ctx.textBaseline = "middle";
    var charW = ctx.measureText("m").width * 0.85 || 7;
    var labels = [];  // what the canvas shows, for tests and screen readers
    drawn = 0;
    for (var l = 0; l < levels.length; l++) {
      var row = levels[l];
      if (!row) continue;
      var y = l * ROW;
      for (var j = 0; j < row.length; j += 3) {
        var n = row[j], x = row[j + 1], w = row[j + 2];
        var dim = matchNode && n !== 0 && !matchNode[n];
        ctx.globalAlpha = dim ? 0.35 : 1;
        var fillc = matchNode && matchNode[n] ? "#e040fb"
          : DIFF ? diffColour(n) : frameColour(n);
        ctx.fillStyle = fillc;
        ctx.fillRect(x, y, Math.max(w - 0.5, 0.5), ROW - 1);
        drawn++;
        if (w > 24) {
          var label = n === 0 ? "all (" + fmt(inc[0], unit()) + ")" : funcs[func[n]][0];
          var max = Math.floor((w - 6) / charW);
          if (label.length > max) label = max > 2 ? label.slice(0, max - 1) + "\u2026" : "";
          if (label) {
            ctx.fillStyle = darkFill(fillc) ? "#fff" : "#111";
            ctx.fillText(label, x + 3, y + ROW / 2);
            if (labels.length < 500) labels.push(label);
          }
        }
      }
    }
    ctx.globalAlpha = 1;
    document.body.setAttribute("data-frames", String(drawn));
    canvas.textContent = labels.join("\n");
    crumbs();
    status();
  }

  function hit(ev) {
    var rect = canvas.getBoundingClientRect();
    var x = ev.clientX - rect.left, l = Math.floor((ev.clientY - rect.top) / ROW);
    var row = levels[l];
    if (!row) return -1;
    for (var j = 0; j < row.length; j += 3) {
      if (x >= row[j + 1] && x < row[j + 1] + row[j + 2]) return row[j];
    }
    return -1;
  }

  function describe(n) {
    var u = unit(), total = inc[0], lines = [];
    var own = values[metric][n];
    lines.push(n === 0 ? "all" : funcs[func[n]][0]);
    if (n !== 0 && where(func[n])) lines.push(where(func[n]));
    if (DIFF) {
      var bown = D.base[metric][n];
      lines.push("new:  " + fmt(inc[n], u) + " total, " + fmt(own, u) + " self");
      lines.push("base: " + fmt(baseInc[n], u) + " total, " + fmt(bown, u) + " self");
      lines.push("delta: " + (inc[n] >= baseInc[n] ? "+" : "") + fmt(inc[n] - baseInc[n], u)
        + " total" + (baseInc[n] ? " (" + (inc[n] >= baseInc[n] ? "+" : "")
        + (100 * (inc[n] - baseInc[n]) / baseInc[n]).toFixed(1) + "%)" : "")
        + ", " + (own >= bown ? "+" : "") + fmt(own - bown, u) + " self");
    } else if (view === "bottom-up") {
      // A bottom-up frame's value is the time of the function at its root,
      // spent when called through this chain: there is no self of its own.
      lines.push(D.metrics[metric].label + ": " + fmt(inc[n], u) + " (" + pct(inc[n], total)
        + ")");
      if (n !== 0)
        lines.push(depth[n] === 1 ? "time spent in this function, every caller together"
          : "time spent in " + fname(bottom(n)) + " when called through here");
    } else {
      lines.push(D.metrics[metric].label + ": " + fmt(inc[n], u) + " (" + pct(inc[n], total)
        + ") total, " + fmt(own, u) + " (" + pct(own, total) + ") self");
      if (D.calls !== null && D.calls !== undefined && metric !== D.calls && n !== 0)
        lines.push("calls: " + fmtNum(values[D.calls][n]));
    }
    return lines.join("\n");
  }

  canvas.addEventListener("mousemove", function (ev) {
    var n = hit(ev);
    if (n < 0) { tip.style.display = "none"; return; }
    tip.textContent = describe(n);
    tip.style.display = "block";
    var tx = ev.clientX + 14, ty = ev.clientY + 14;
    if (tx + tip.offsetWidth > window.innerWidth) tx = ev.clientX - tip.offsetWidth - 8;
    if (ty + tip.offsetHeight > window.innerHeight) ty = ev.clientY - tip.offsetHeight - 8;
    tip.style.left = tx + "px";
    tip.style.top = ty + "px";
  });
  canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  canvas.addEventListener("click", function (ev) {
    var n = hit(ev);
    if (n >= 0) { zoom = n === zoom ? parent[n] < 0 ? 0 : parent[n] : n; draw(); }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { zoom = 0; draw(); }
  });

  // The frame at the root of a bottom-up node's chain: the function whose
  // time it is.
  function bottom(n) {
    while (n !== 0 && parent[n] !== 0) n = parent[n];
    return n;
  }

  function crumbs() {
    var el = document.getElementById("hyprof-crumbs");
    var chain = [];
    for (var a = zoom; a !== 0; a = parent[a]) chain.push(a);
    chain.push(0);
    chain.reverse();
    el.innerHTML = chain.map(function (c) {
      return '<a data-node="' + c + '">' + esc(fname(c)) + "</a>";
    }).join(" \u203a ") + (zoom ? "" : " <span>(click a frame to zoom, Esc to reset)</span>");
  }
  document.getElementById("hyprof-crumbs").addEventListener("click", function (ev) {
    var node = ev.target.getAttribute && ev.target.getAttribute("data-node");
    if (node !== null && node !== undefined) { zoom = +node; draw(); }
  });

  function status() {
    var el = document.getElementById("hyprof-status");
    var txt = "total " + D.metrics[metric].label + ": " + fmt(inc[0], unit());
    if (DIFF) txt = "base " + fmt(baseInc[0], unit()) + " \u2192 new " + fmt(inc[0], unit());
    if (matchNode) txt += " \u2014 search matches " + pct(matchedTotal(), inc[0]);
    if (clipped) txt += " \u2014 frames deeper than " + MAX_LEVELS + " levels: zoom in";
    el.textContent = txt;
  }

  // ------------------------------------------------------------ table

  var T = D.table;
  var sortKey = DIFF ? "delta" : "cum", sortDir = -1;

  function tableColumns() {
    if (DIFF) {
      return [["name", "Function"], ["file", "File"], ["base", "Base"], ["new", "New"],
        ["delta", "Delta"], ["rel", "Delta %"], ["selfdelta", "Self delta"]];
    }
    var cols = [["name", "Function"], ["file", "File"], ["own", "Self"], ["ownpct", "Self %"],
      ["cum", "Total"], ["cumpct", "Total %"]];
    if (D.calls !== null && D.calls !== undefined) cols.push(["calls", "Calls"]);
    return cols;
  }

  function cell(f, key) {
    var m = metric;
    switch (key) {
      case "name": return funcs[f][0];
      case "file": return where(f);
      case "own": case "ownpct": return T.own[m][f];
      case "cum": case "cumpct": return T.cum[m][f];
      case "calls": return T.own[D.calls][f];
      case "base": return T.base_cum[m][f];
      case "new": return T.cum[m][f];
      case "delta": return T.cum[m][f] - T.base_cum[m][f];
      case "rel": return T.base_cum[m][f] ? (T.cum[m][f] - T.base_cum[m][f]) / T.base_cum[m][f]
        : (T.cum[m][f] ? Infinity : 0);
      case "selfdelta": return T.own[m][f] - T.base_own[m][f];
    }
    return 0;
  }

  function renderTable() {
    var cols = tableColumns(), u = unit(), total = inc[0];
    var rows = [];
    for (var f = 0; f < funcs.length; f++) {
      if (funcs[f][3] === "special" && funcs[f][0].indexOf("[thread]") === 0) continue;
      if (matchFunc && !matchFunc[f]) continue;
      if (!DIFF && !T.cum[metric][f] && !T.own[metric][f]) continue;
      rows.push(f);
    }
    var key = sortKey, dir = sortDir;
    rows.sort(function (x, y) {
      var a = cell(x, key), b = cell(y, key);
      if (a < b) return -dir;
      if (a > b) return dir;
      return x - y;
    });
    var head = "<tr>" + cols.map(function (c) {
      var cls = c[0] === "name" || c[0] === "file" ? c[0] : "";
      if (c[0] === sortKey) cls += sortDir < 0 ? " sorted-desc" : " sorted-asc";
      return '<th class="' + cls + '" data-key="' + c[0] + '">' + c[1] + "</th>";
    }).join("") + "</tr>";
    var body = [];
    var shown = Math.min(rows.length, TABLE_LIMIT);
    for (var r = 0; r < shown; r++) {
      f = rows[r];
      var tds = cols.map(function (c) {
        var v = cell(f, c[0]);
        switch (c[0]) {
          case "name": return '<td class="name" title="' + esc(v) + '">' + esc(v) + "</td>";
          case "file": return '<td class="file" title="' + esc(v) + '">' + esc(v) + "</td>";
          case "ownpct": case "cumpct": return "<td>" + pct(v, total) + "</td>";
          case "calls": return "<td>" + fmtNum(v) + "</td>";
          case "delta": case "selfdelta":
            return '<td class="' + (v > 0 ? "slower" : v < 0 ? "faster" : "") + '">'
              + (v > 0 ? "+" : "") + fmt(v, u) + "</td>";
          case "rel":
            return '<td class="' + (v > 0 ? "slower" : v < 0 ? "faster" : "") + '">'
              + (v === Infinity ? "new" : (v > 0 ? "+" : "") + (100 * v).toFixed(1) + "%")
              + "</td>";
          default: return "<td>" + fmt(v, u) + "</td>";
        }
      });
      body.push('<tr class="' + (matchFunc && matchFunc[f] ? "match" : "") + '">'
        + tds.join("") + "</tr>");
    }
    document.getElementById("hyprof-table").innerHTML = "<thead>" + head + "</thead><tbody>"
      + body.join("") + "</tbody>";
    document.getElementById("hyprof-table-note").textContent = rows.length > shown
      ? "Showing the first " + shown + " of " + rows.length + " functions; search to narrow."
      : rows.length + " functions.";
  }

  document.getElementById("hyprof-table").addEventListener("click", function (ev) {
    var key = ev.target.getAttribute && ev.target.getAttribute("data-key");
    if (!key) return;
    if (key === sortKey) sortDir = -sortDir;
    else { sortKey = key; sortDir = key === "name" || key === "file" ? 1 : -1; }
    renderTable();
  });

  // ------------------------------------------------------------ controls

  var select = document.getElementById("hyprof-metric");
  D.metrics.forEach(function (m, i) {
    var o = document.createElement("option");
    o.value = String(i);
    o.textContent = m.title;
    if (i === metric) o.selected = true;
    select.appendChild(o);
  });
  select.addEventListener("change", function () {
    metric = +select.value;
    refresh();
  });
  var search = document.getElementById("hyprof-search");
  var viewSelect = document.getElementById("hyprof-view");
  if (DIFF) viewSelect.disabled = true;
  viewSelect.addEventListener("change", function () {
    setView(viewSelect.value);
    refresh();
  });
  var searchTimer = null;
  search.addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () {
      setSearch(search.value);
      draw();
      renderTable();
    }, 120);
  });
  document.getElementById("hyprof-reset").addEventListener("click", function () {
    zoom = 0;
    search.value = "";
    setSearch("");
    draw();
    renderTable();
  });
  window.addEventListener("resize", function () { draw(); });

  function refresh() {
    computeInc();
    if (DIFF) diffScale();
    draw();
    renderTable();
  }

  // A view can be linked to: #metric=cpu&search=json&zoom=Scorer.score&sort=own
  // (metric by name or label, search as typed, zoom to the heaviest frame of
  // a function, sort by a table column's key; hover=f shows f's tooltip).
  function heaviest(name) {
    var best = -1;
    for (var n = 1; n < N; n++) {
      if (fname(n) === name && (best < 0 || inc[n] > inc[best])) best = n;
    }
    return best;
  }

  function applyHash() {
    var zoomTo = null, hoverOn = null;
    (location.hash || "").replace(/^#/, "").split("&").forEach(function (kv) {
      var eq = kv.indexOf("=");
      if (eq < 0) return;
      var k = decodeURIComponent(kv.slice(0, eq));
      var v = decodeURIComponent(kv.slice(eq + 1).replace(/\+/g, " "));
      if (k === "metric") {
        for (var i = 0; i < D.metrics.length; i++) {
          if (D.metrics[i].name === v || D.metrics[i].label === v) {
            metric = i;
            select.value = String(i);
          }
        }
      } else if (k === "search") {
        search.value = v;
        setSearch(v);
      } else if (k === "sort") {
        if (tableColumns().some(function (c) { return c[0] === v; })) {
          sortKey = v;
          sortDir = v === "name" || v === "file" ? 1 : -1;
        }
      } else if (k === "view") {
        setView(v);
      } else if (k === "zoom") {
        zoomTo = v;
      } else if (k === "hover") {
        hoverOn = v;
      }
    });
    computeInc();
    if (DIFF) diffScale();
    zoom = 0;
    if (zoomTo !== null && heaviest(zoomTo) > 0) zoom = heaviest(zoomTo);
    draw();
    renderTable();
    // The tooltip of a function's heaviest frame, as hovering shows it.
    if (hoverOn !== null && heaviest(hoverOn) > 0) {
      tip.textContent = describe(heaviest(hoverOn));
      tip.style.display = "block";
      tip.style.left = "40px";
      tip.style.top = "40px";
    }
  }
  window.addEventListener("hashchange", applyHash);

  applyHash();
  document.body.setAttribute("data-ready", "1");
})();
