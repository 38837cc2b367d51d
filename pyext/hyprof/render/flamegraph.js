/* hyprof HTML report: the flame graphs, the sandwich, the timeline and the
 * function table.
 *
 * Inlined into every report with the profile's data (a <script
 * type="application/json" id="hyprof-data">), so a report is one file that
 * works offline. The data is a call tree in flat arrays: parent[i], func[i]
 * and per metric column the node's own value, with parents before children.
 * A sampling trace's report may also carry its samples (D.timeline): then a
 * time range picked on the timeline gives every view the values of the
 * samples inside it. Everything shown is derived here in linear passes over
 * those arrays.
 */
(function () {
  "use strict";

  var D = JSON.parse(document.getElementById("hyprof-data").textContent);
  var DIFF = !!D.base;
  var ROW = 18;
  // Browsers refuse canvases much taller than 32k pixels: deeper frames wait
  // for a zoom.
  var MAX_LEVELS = 1500;
  var TABLE_LIMIT = 300;
  var funcs = D.funcs;
  var metric = D.default;

  // The values every view is made from: the whole profile's, or those of the
  // samples in the timeline's range (see "timeline" below).
  var source = D.values;
  var sourceTable = D.table;

  // ------------------------------------------------------------ one flame graph

  // A flame graph over a tree in flat arrays. kind: "top-down" (frames are
  // calls, their children the calls they made), "bottom-up" (the root's
  // children are where time was spent, above each its callers), "callers"
  // (drawn upward from one function, every path into it merged) or "callees"
  // (downward from one function, every call it made merged). rootFunc: the
  // function at node 0, or -1 where node 0 is the whole profile ("all").
  function Flame(canvas, kind) {
    this.canvas = canvas;
    this.kind = kind;
    this.rootFunc = -1;
    this.zoom = 0;
    this.levels = [];
    this.clipped = false;
    this.drawn = 0;
    this.labels = [];
  }

  Flame.prototype.name = function (n) {
    if (n === 0) return this.rootFunc < 0 ? "all" : funcs[this.rootFunc][0];
    return funcs[this.func[n]][0];
  };

  Flame.prototype.funcOf = function (n) {
    return n === 0 ? this.rootFunc : this.func[n];
  };

  Flame.prototype.setTree = function (P, F, V, base) {
    var N = P.length, i;
    this.parent = P; this.func = F; this.values = V; this.base = base || null; this.N = N;
    this.inc = new Float64Array(N);
    this.baseInc = base ? new Float64Array(N) : null;
    var depth = this.depth = new Int32Array(N);
    var nkids = new Int32Array(N + 1);
    for (i = 1; i < N; i++) {
      depth[i] = depth[P[i]] + 1;
      nkids[P[i] + 1]++;
    }
    for (i = 1; i <= N; i++) nkids[i] += nkids[i - 1];
    this.kidStart = nkids; // kids of n: kids[kidStart[n] .. kidStart[n + 1])
    var kids = this.kids = new Int32Array(Math.max(N - 1, 1));
    var fill = new Int32Array(N);
    for (i = 1; i < N; i++) {
      var p = P[i];
      kids[nkids[p] + fill[p]++] = i;
    }
    // Siblings in name order, as flamegraph.pl does: the picture keeps its
    // shape when the metric changes.
    var self = this;
    function byName(x, y) {
      var fx = self.name(x), fy = self.name(y);
      return fx < fy ? -1 : fx > fy ? 1 : x - y;
    }
    for (var n = 0; n < N; n++) {
      var a = nkids[n], b = nkids[n + 1];
      if (b - a > 1) {
        var part = Array.prototype.slice.call(kids, a, b).sort(byName);
        for (var k = 0; k < part.length; k++) kids[a + k] = part[k];
      }
    }
    this.zoom = 0;
  };

  Flame.prototype.computeInc = function () {
    var N = this.N, P = this.parent, inc = this.inc, own = this.values[metric], i;
    for (i = 0; i < N; i++) inc[i] = own[i];
    for (i = N - 1; i > 0; i--) inc[P[i]] += inc[i];
    if (this.base) {
      var binc = this.baseInc, bown = this.base[metric];
      for (i = 0; i < N; i++) binc[i] = bown[i];
      for (i = N - 1; i > 0; i--) binc[P[i]] += binc[i];
      var m = 0;
      for (i = 1; i < N; i++) m = Math.max(m, Math.abs(own[i] - bown[i]));
      this.maxSelfDelta = m || 1;
    }
  };

  Flame.prototype.matched = function (n) {
    var f = this.funcOf(n);
    return f >= 0 && matchFunc[f] === 1;
  };

  Flame.prototype.layout = function (width) {
    var levels = this.levels = [], P = this.parent, inc = this.inc;
    var kids = this.kids, kidStart = this.kidStart, self = this;
    this.clipped = false;
    function put(level, node, x, w) {
      (levels[level] || (levels[level] = [])).push(node, x, w);
    }
    // The zoomed frame's ancestors span the whole width above it.
    var chain = [];
    for (var a = this.zoom; a !== 0; a = P[a]) chain.push(a);
    chain.push(0);
    chain.reverse();
    for (var l = 0; l < chain.length - 1; l++) put(l, chain[l], 0, width);
    var total = inc[this.zoom];
    if (!total) { put(chain.length - 1, this.zoom, 0, width); return; }
    var scale = width / total;
    var stack = [this.zoom, 0, chain.length - 1];
    while (stack.length) {
      var lev = stack.pop(), x = stack.pop(), n = stack.pop();
      put(lev, n, x, inc[n] * scale);
      var cx = x;
      for (var k = kidStart[n]; k < kidStart[n + 1]; k++) {
        var c = kids[k], cw = inc[c] * scale;
        if (cw >= 0.4) {
          if (lev + 1 < MAX_LEVELS) stack.push(c, cx, lev + 1);
          else self.clipped = true;
        }
        cx += cw;
      }
    }
  };

  // The row a level is drawn in: callers grow upward from their function.
  Flame.prototype.rowOf = function (level) {
    return this.kind === "callers" ? this.levels.length - 1 - level : level;
  };

  Flame.prototype.colour = function (n) {
    if (this.base) {
      // Red: slower (more in the new profile), blue: faster; by self delta.
      if (n === 0) return "#d0d0d0";
      var d = this.values[metric][n] - this.base[metric][n];
      var t = Math.min(1, Math.abs(d) / this.maxSelfDelta);
      var lo = Math.round(235 - 190 * Math.sqrt(t));
      return d > 0 ? "rgb(255," + lo + "," + lo + ")"
        : d < 0 ? "rgb(" + lo + "," + lo + ",255)" : "rgb(235,235,235)";
    }
    var f = this.funcOf(n);
    return f < 0 ? "#c9ced8" : funcColour(f);
  };

  // The width a canvas has in its box.
  function boxWidth(canvas) {
    return Math.max(200, canvas.parentNode.clientWidth - 36);
  }

  // Sizes a canvas for the screen's pixel ratio, clears it and sets its
  // font; returns its context.
  function prepare(canvas, width, height, fontPx) {
    var ratio = window.devicePixelRatio || 1, ctx = canvas.getContext("2d");
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.height = height + "px";
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = fontPx + "px 'DejaVu Sans', Helvetica, Arial, sans-serif";
    ctx.textBaseline = "middle";
    return ctx;
  }

  Flame.prototype.draw = function () {
    var width = boxWidth(this.canvas);
    this.layout(width);
    var canvas = this.canvas, inc = this.inc;
    var ctx = prepare(canvas, width, Math.max(this.levels.length, 1) * ROW + 2, 12);
    var charW = ctx.measureText("m").width * 0.85 || 7;
    var labels = [];  // what the canvas shows, for tests and screen readers
    this.drawn = 0;
    for (var l = 0; l < this.levels.length; l++) {
      var row = this.levels[l];
      if (!row) continue;
      var y = this.rowOf(l) * ROW;
      for (var j = 0; j < row.length; j += 3) {
        var n = row[j], x = row[j + 1], w = row[j + 2];
        var hit = matchFunc && this.matched(n);
        ctx.globalAlpha = matchFunc && !hit && (n !== 0 || this.rootFunc >= 0) ? 0.35 : 1;
        var fillc = hit ? "#e040fb" : this.colour(n);
        ctx.fillStyle = fillc;
        ctx.fillRect(x, y, Math.max(w - 0.5, 0.5), ROW - 1);
        this.drawn++;
        if (w > 24) {
          var label = n === 0 ? this.name(0) + " (" + fmt(inc[0], unit()) + ")" : this.name(n);
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
    this.labels = labels;
    canvas.textContent = labels.join("\n");
  };

  Flame.prototype.hit = function (ev) {
    var rect = this.canvas.getBoundingClientRect();
    var r = Math.floor((ev.clientY - rect.top) / ROW);
    var l = this.kind === "callers" ? this.levels.length - 1 - r : r;
    var row = this.levels[l], x = ev.clientX - rect.left;
    if (!row) return -1;
    for (var j = 0; j < row.length; j += 3) {
      if (x >= row[j + 1] && x < row[j + 1] + row[j + 2]) return row[j];
    }
    return -1;
  };

  // The frame at the root of a chain of callers: the function whose time it is.
  Flame.prototype.bottom = function (n) {
    while (n !== 0 && this.parent[n] !== 0) n = this.parent[n];
    return n;
  };

  Flame.prototype.describe = function (n) {
    var u = unit(), inc = this.inc, total = this.kind === "top-down" || this.kind
      === "bottom-up" ? inc[0] : allTotal(), lines = [];
    var own = this.values[metric][n], label = D.metrics[metric].label, f = this.funcOf(n);
    lines.push(this.name(n));
    if (f >= 0 && where(f)) lines.push(where(f));
    if (this.base) {
      var bown = this.base[metric][n], binc = this.baseInc;
      lines.push("new:  " + fmt(inc[n], u) + " total, " + fmt(own, u) + " self");
      lines.push("base: " + fmt(binc[n], u) + " total, " + fmt(bown, u) + " self");
      lines.push("delta: " + (inc[n] >= binc[n] ? "+" : "") + fmt(inc[n] - binc[n], u)
        + " total" + (binc[n] ? " (" + (inc[n] >= binc[n] ? "+" : "")
        + (100 * (inc[n] - binc[n]) / binc[n]).toFixed(1) + "%)" : "")
        + ", " + (own >= bown ? "+" : "") + fmt(own - bown, u) + " self");
    } else if (this.kind === "bottom-up" || this.kind === "callers") {
      // Such a frame's value is the time of the function at its root, spent
      // when called through this chain: there is no self of its own.
      lines.push(label + ": " + fmt(inc[n], u) + " (" + pct(inc[n], total) + ")");
      if (this.kind === "callers" && n === 0)
        lines.push("every call of this function together, recursion counted once");
      else if (this.kind === "bottom-up" && this.depth[n] === 1)
        lines.push("time spent in this function, every caller together");
      else if (n !== 0)
        lines.push("time spent in " + this.name(this.kind === "callers" ? 0 : this.bottom(n))
          + " when called through here");
    } else {
      lines.push(label + ": " + fmt(inc[n], u) + " (" + pct(inc[n], total) + ") total, "
        + fmt(own, u) + " (" + pct(own, total) + ") self");
      if (D.calls !== null && D.calls !== undefined && metric !== D.calls
          && (n !== 0 || this.rootFunc >= 0))
        lines.push("calls: " + fmtNum(this.values[D.calls][n]));
      if (this.kind === "callees" && n === 0)
        lines.push("every call of this function together, recursion counted once");
    }
    return lines.join("\n");
  };

  // The share of the total under a matching frame, nested matches once.
  Flame.prototype.matchedTotal = function () {
    var total = 0, stack = [0];
    while (stack.length) {
      var n = stack.pop();
      if (this.matched(n)) { total += this.inc[n]; continue; }
      for (var k = this.kidStart[n]; k < this.kidStart[n + 1]; k++) stack.push(this.kids[k]);
    }
    return total;
  };

  // The heaviest frame of a function by name, or -1.
  Flame.prototype.heaviest = function (name) {
    var best = -1;
    for (var n = 1; n < this.N; n++) {
      if (this.name(n) === name && (best < 0 || this.inc[n] > this.inc[best])) best = n;
    }
    return best;
  };

  // ------------------------------------------------------------ derived trees

  // A tree made node by node, as the derived views need one: a child per
  // (parent, function), M columns of own values, the root at node 0.
  function Builder(M) {
    this.P = [-1];
    this.F = [-1];
    this.V = [];
    this.index = new Map();
    this.width = funcs.length + 1;
    for (var m = 0; m < M; m++) this.V.push([0]);
  }
  Builder.prototype.child = function (at, f) {
    var key = at * this.width + f, c = this.index.get(key);  // exact below 2^53
    if (c === undefined) {
      c = this.P.length;
      this.P.push(at);
      this.F.push(f);
      for (var m = 0; m < this.V.length; m++) this.V[m].push(0);
      this.index.set(key, c);
    }
    return c;
  };
  // The node of the chain of callers from a (a node of P, F) up to the
  // root, each caller a level further from this tree's root.
  Builder.prototype.chain = function (a, P, F) {
    var at = 0;
    for (; a > 0; a = P[a]) at = this.child(at, F[a]);
    return at;
  };
  // Adds column by column the values W[m][n] to node at.
  Builder.prototype.add = function (at, W, n) {
    for (var m = 0; m < this.V.length; m++) this.V[m][at] += W[m][n];
  };
  Builder.prototype.tree = function () {
    return [this.P, this.F, this.V];
  };

  // The bottom-up tree: a node per (function, its caller, the caller's
  // caller...) as far up as the path goes; each path's own values go to the
  // node of its whole chain, so that a node's total is the time spent in its
  // function when called through that chain of callers.
  function invert(P, F, V) {
    var b = new Builder(V.length), M = V.length;
    for (var n = 1; n < P.length; n++) {
      for (var m = 0; m < M; m++) {
        if (V[m][n]) {
          b.add(b.chain(n, P, F), V, n);
          break;
        }
      }
    }
    return b.tree();
  }

  // The two halves of a sandwich around function f, merged over every path
  // through it: its callees (each outermost call of f at the root, what it
  // called below, recursion into f kept as frames) and its callers (the
  // outermost calls' totals carried up each chain of callers, drawn upward).
  function sandwich(f, P, F, V) {
    var n0 = P.length, M = V.length, n, m;
    var inside = new Uint8Array(n0), map = new Int32Array(n0);
    var below = new Builder(M), above = new Builder(M), outer = [];
    for (n = 1; n < n0; n++) {
      if (inside[P[n]]) {
        map[n] = below.child(map[P[n]], F[n]);
      } else if (F[n] === f) {
        map[n] = 0;
        outer.push(n);
      } else {
        continue;
      }
      inside[n] = 1;
      below.add(map[n], V, n);
    }
    // Each outermost call's subtree total, from the callees' own values as
    // they were added: summed bottom-up over the original nodes inside.
    var sub = [];
    for (m = 0; m < M; m++) sub.push(new Float64Array(n0));
    for (n = n0 - 1; n > 0; n--) {
      if (!inside[n]) continue;
      for (m = 0; m < M; m++) {
        sub[m][n] += V[m][n];
        if (F[n] !== f || inside[P[n]]) sub[m][P[n]] += sub[m][n];
      }
    }
    for (var i = 0; i < outer.length; i++)
      above.add(above.chain(P[outer[i]], P, F), sub, outer[i]);
    return { callees: below.tree(), callers: above.tree(), outer: outer, sub: sub };
  }

  // The function table's totals from a tree: own summed per function, total
  // over each function's outermost frames (recursion counted once).
  function tableOf(P, F, V) {
    var n0 = P.length, M = V.length, nf = funcs.length, out = { own: [], cum: [] }, n, i;
    // Which nodes are their function's outermost frame (no ancestor of the
    // same function): a depth-first walk over the children, with the
    // functions on the path counted. (Node ids only put parents first, so
    // the walk follows the children lists, not the ids.)
    var start = new Int32Array(n0 + 1), kids = new Int32Array(Math.max(n0 - 1, 1));
    for (n = 1; n < n0; n++) start[P[n] + 1]++;
    for (n = 1; n <= n0; n++) start[n] += start[n - 1];
    var fill = start.slice(0, n0);
    for (n = 1; n < n0; n++) kids[fill[P[n]]++] = n;
    var outer = new Uint8Array(n0), onPath = new Int32Array(nf);
    var stack = [0], next = start.slice(0, n0);
    while (stack.length) {
      var x = stack[stack.length - 1];
      if (next[x] < start[x + 1]) {
        var c = kids[next[x]++];
        outer[c] = onPath[F[c]]++ === 0 ? 1 : 0;
        stack.push(c);
      } else {
        stack.pop();
        if (x !== 0) onPath[F[x]]--;
      }
    }
    for (var m = 0; m < M; m++) {
      var own = new Float64Array(nf), cum = new Float64Array(nf), inc = new Float64Array(n0);
      var v = V[m];
      for (n = 0; n < n0; n++) inc[n] = v[n];
      for (n = n0 - 1; n > 0; n--) inc[P[n]] += inc[n];
      for (i = 1; i < n0; i++) {
        own[F[i]] += v[i];
        if (outer[i]) cum[F[i]] += inc[i];
      }
      out.own.push(own);
      out.cum.push(cum);
    }
    return out;
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
  function fmtTime(ns) {
    return ns ? fmt(ns, "ns") : "0 s";
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
  function funcColour(f) {
    var c = colourCache[f];
    if (c) return c;
    var fn = funcs[f], h = hash(fn[0]), h2 = hash(fn[1] + fn[0]);
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

  // ------------------------------------------------------------ search

  var matchFunc = null; // Uint8Array per function, or null without a search

  function setSearch(text) {
    if (!text) { matchFunc = null; return; }
    var re;
    try { re = new RegExp(text, "i"); } catch (e) {
      var lower = text.toLowerCase();
      re = { test: function (s) { return s.toLowerCase().indexOf(lower) >= 0; } };
    }
    matchFunc = new Uint8Array(funcs.length);
    for (var f = 0; f < funcs.length; f++) {
      if (re.test(funcs[f][0]) || re.test(funcs[f][1])) matchFunc[f] = 1;
    }
  }

  // ------------------------------------------------------------ views

  var main = new Flame(document.getElementById("hyprof-flame"), "top-down");
  var callers = new Flame(document.getElementById("hyprof-callers"), "callers");
  var callees = new Flame(document.getElementById("hyprof-callees"), "callees");
  var view = "top-down", inverted = null, centre = -1, centreData = null;
  var built = null, generation = 0;
  var tip = document.getElementById("hyprof-tip");

  function allTotal() {
    var own = source[metric], t = 0;
    for (var i = 0; i < own.length; i++) t += own[i];
    return t;
  }

  function setView(v) {
    if (DIFF || (v !== "bottom-up" && v !== "sandwich" && (v !== "source" || !D.source)))
      v = "top-down";
    view = v;
    document.getElementById("hyprof-view").value = v;
    document.getElementById("hyprof-main").hidden = v === "sandwich" || v === "source";
    document.getElementById("hyprof-sandwich").hidden = v !== "sandwich";
    document.getElementById("hyprof-source").hidden = v !== "source";
    if (v === "source") return;
    if (v === "sandwich") {
      if (centre < 0) centre = hottest();
      setCentre(centre);
      return;
    }
    // The main tree is made again only when the view or the samples change.
    var key = v + "/" + generation;
    if (key === built) return;
    built = key;
    if (v === "bottom-up") {
      inverted = inverted || invert(D.parent, D.func, source);
      main.setTree(inverted[0], inverted[1], inverted[2]);
    } else {
      main.setTree(D.parent, D.func, source, D.base);
    }
    main.kind = v;
  }

  // The function with the most self value: where a sandwich opens.
  function hottest() {
    var own = sourceTable.own[metric], best = -1;
    for (var f = 0; f < funcs.length; f++) {
      if (funcs[f][3] === "special" && funcs[f][0].indexOf("[thread]") === 0) continue;
      if (best < 0 || own[f] > own[best]) best = f;
    }
    return best;
  }

  function setCentre(f) {
    centre = f;
    if (f < 0) return;
    var s = sandwich(f, D.parent, D.func, source);
    callers.rootFunc = callees.rootFunc = f;
    callers.setTree(s.callers[0], s.callers[1], s.callers[2]);
    callees.setTree(s.callees[0], s.callees[1], s.callees[2]);
    centreData = s;
    var name = esc(funcs[f][0]), at = where(f) ? " <span>" + esc(where(f)) + "</span>" : "";
    document.getElementById("hyprof-callers-title").innerHTML = "Callers of <b>" + name
      + "</b>" + at;
    document.getElementById("hyprof-callees-title").innerHTML = "Callees of <b>" + name
      + "</b> <span>(click a frame to centre on its function)</span>";
  }

  // A function by name: the one with the largest total when names repeat.
  function funcNamed(name) {
    var best = -1, cum = sourceTable.cum[metric];
    for (var f = 0; f < funcs.length; f++) {
      if (funcs[f][0] === name && (best < 0 || cum[f] > cum[best])) best = f;
    }
    return best;
  }

  function draw() {
    var frames = 0;
    if (view === "source") {
      main.canvas.textContent = "";
      frames = renderSource();
    } else if (view === "sandwich") {
      if (centre >= 0) {
        callers.computeInc();
        callees.computeInc();
        callers.draw();
        callees.draw();
        frames = callers.drawn + callees.drawn;
      }
      main.canvas.textContent = "";
    } else {
      main.computeInc();
      main.draw();
      frames = main.drawn;
    }
    document.body.setAttribute("data-frames", String(frames));
    // Whether the page is wider than the window (the tests check it fits).
    document.body.setAttribute("data-wide", document.documentElement.scrollWidth
      > document.documentElement.clientWidth ? "1" : "0");
    crumbs();
    status();
    timelineDraw();
  }

  function showTip(fl, n, ev) {
    tip.textContent = fl.describe(n);
    tip.style.display = "block";
    var tx = ev.clientX + 14, ty = ev.clientY + 14;
    if (tx + tip.offsetWidth > window.innerWidth) tx = ev.clientX - tip.offsetWidth - 8;
    if (ty + tip.offsetHeight > window.innerHeight) ty = ev.clientY - tip.offsetHeight - 8;
    tip.style.left = tx + "px";
    tip.style.top = ty + "px";
  }

  [main, callers, callees].forEach(function (fl) {
    fl.canvas.addEventListener("mousemove", function (ev) {
      var n = fl.hit(ev);
      if (n < 0) tip.style.display = "none";
      else showTip(fl, n, ev);
    });
    fl.canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; });
    fl.canvas.addEventListener("click", function (ev) {
      var n = fl.hit(ev);
      if (n < 0) return;
      if (fl === main) {
        fl.zoom = n === fl.zoom ? Math.max(fl.parent[n], 0) : n;
      } else if (fl.funcOf(n) >= 0) {
        setCentre(fl.funcOf(n));
      }
      draw();
    });
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { main.zoom = 0; draw(); }
  });

  function crumbs() {
    var el = document.getElementById("hyprof-crumbs");
    if (view === "sandwich" || view === "source") { el.innerHTML = ""; return; }
    var chain = [];
    for (var a = main.zoom; a !== 0; a = main.parent[a]) chain.push(a);
    chain.push(0);
    chain.reverse();
    el.innerHTML = chain.map(function (c) {
      return '<a data-node="' + c + '">' + esc(main.name(c)) + "</a>";
    }).join(" \u203a ") + (main.zoom ? "" : " <span>(click a frame to zoom, Esc to reset)</span>");
  }
  document.getElementById("hyprof-crumbs").addEventListener("click", function (ev) {
    var node = ev.target.getAttribute && ev.target.getAttribute("data-node");
    if (node !== null && node !== undefined) { main.zoom = +node; draw(); }
  });

  function status() {
    var el = document.getElementById("hyprof-status"), u = unit();
    var label = D.metrics[metric].label, txt;
    if (view === "source") {
      txt = "total " + label + ": " + fmt(allTotal(), u);
    } else if (view === "sandwich") {
      var t = centre >= 0 ? callees.inc[0] : 0, paths = 0;
      // The call paths into the function that hold some of the metric.
      if (centreData) {
        for (var i = 0; i < centreData.outer.length; i++)
          if (centreData.sub[metric][centreData.outer[i]]) paths++;
      }
      txt = centre < 0 ? "no function to centre on"
        : funcs[centre][0] + ": " + fmt(t, u) + " of " + fmt(allTotal(), u) + " " + label
          + " (" + pct(t, allTotal()) + "), called on " + fmtNum(paths) + " call path"
          + (paths === 1 ? "" : "s");
    } else {
      txt = "total " + label + ": " + fmt(main.inc[0], u);
      if (DIFF) txt = "base " + fmt(main.baseInc[0], u) + " \u2192 new " + fmt(main.inc[0], u);
      if (matchFunc) txt += " \u2014 search matches " + pct(main.matchedTotal(), main.inc[0]);
      if (main.clipped) txt += " \u2014 frames deeper than " + MAX_LEVELS + " levels: zoom in";
    }
    if (range) txt += " \u2014 " + rangeText();
    el.textContent = txt;
  }

  // ------------------------------------------------------------ source

  // The hottest lines of the files with the most samples, each with a heat
  // column: the metric's own value on the line (in a time range, of the
  // samples inside it), and its share of the whole.
  function lineHeat() {
    var heat = {}, s, f, key;
    if (range && TL) {
      for (s = 0; s < TL.t.length; s++) {
        if (TL.t[s] < range[0] || TL.t[s] >= range[1]) continue;
        var add = sampleValue(s);
        if (!add) continue;
        key = funcs[D.func[TL.n[s]]][1] + ":" + TL.ln[s];
        heat[key] = (heat[key] || 0) + add;
      }
      return heat;
    }
    for (f = 0; f < D.source.length; f++) {
      var lines = D.source[f].lines;
      for (s = 0; s < lines.length; s++) heat[D.source[f].file + ":" + lines[s][0]] =
        lines[s][2][metric];
    }
    return heat;
  }

  function renderSource() {
    var heat = lineHeat(), total = allTotal(), u = unit(), html = [], peak = 0, f, i;
    // The hottest line shown sets the scale of the colours.
    for (f = 0; f < D.source.length; f++) {
      for (i = 0; i < D.source[f].lines.length; i++)
        peak = Math.max(peak, heat[D.source[f].file + ":" + D.source[f].lines[i][0]] || 0);
    }
    var drawn = 0;
    for (f = 0; f < D.source.length; f++) {
      var src = D.source[f], lines = src.lines, sum = 0;
      for (i = 0; i < lines.length; i++) sum += heat[src.file + ":" + lines[i][0]] || 0;
      html.push('<h3 class="src-file" title="' + esc(src.file) + '">' + esc(src.file)
        + " <span>" + fmt(sum, u) + " (" + pct(sum, total) + ") on the lines shown"
        + (src.readable ? "" : "; the source is not readable here") + "</span></h3>");
      html.push('<table class="source" data-file="' + esc(src.file) + '">');
      for (i = 0; i < lines.length; i++) {
        var ln = lines[i][0], v = heat[src.file + ":" + ln] || 0;
        if (i && ln !== lines[i - 1][0] + 1)
          html.push('<tr class="gap"><td></td><td></td><td></td><td>⋯</td></tr>');
        var a = peak ? v / peak : 0;
        html.push('<tr data-line="' + ln + '" data-value="' + v + '"'
          + (v ? ' class="hot" style="background:rgba(227,103,43,' + (0.08 + 0.5 * a).toFixed(3)
          + ')"' : "") + '><td class="heat">' + (v ? fmt(v, u) : "") + '</td><td class="heat">'
          + (v ? pct(v, total) : "") + '</td><td class="ln">' + ln + '</td><td class="code">'
          + (lines[i][1] === null ? '<span class="missing">(line not available)</span>'
            : esc(lines[i][1])) + "</td></tr>");
        if (v) drawn++;
      }
      html.push("</table>");
    }
    document.getElementById("hyprof-source").innerHTML = '<div class="sw-title">The hottest'
      + " lines by " + esc(D.metrics[metric].label) + " <span>(the lines each frame was running"
      + " when sampled; the files with the most, " + (range ? "in the time range" : "whole")
      + ")</span></div>" + html.join("");
    return drawn;
  }

  // ------------------------------------------------------------ timeline

  // A sampling trace's samples over time, a row per thread: each column of
  // pixels is as tall as the share of the row's busiest column. Dragging
  // picks a time range; every view then shows the samples inside it.
  var TL = D.timeline, range = null;
  var tlCanvas = document.getElementById("hyprof-timeline");
  var TL_ROW = 22, TL_LEFT = 130;
  var drag = null;

  function tlEnd() {
    return Math.max(TL.end, 1);
  }
  // What sample s adds to the metric shown: its weight or 1 if it is of
  // the metric's kind (and GIL state), else 0.
  function sampleValue(s) {
    var c = TL.cols[metric];  // [kind, by weight, GIL state or -1]
    if (c[0] !== TL.k[s] || (c[2] >= 0 && c[2] !== TL.g[s])) return 0;
    return c[1] ? TL.w[s] : 1;
  }

  function rangeText() {
    var n = 0, all = 0;
    for (var s = 0; s < TL.t.length; s++) {
      if (!sampleValue(s)) continue;
      all++;
      if (TL.t[s] >= range[0] && TL.t[s] < range[1]) n++;
    }
    return "time " + fmtTime(range[0]) + " to " + fmtTime(range[1]) + ": " + fmtNum(n)
      + " of " + fmtNum(all) + " samples";
  }

  function timelineDraw() {
    if (!TL) return;
    var width = boxWidth(tlCanvas), plot = width - TL_LEFT, rows = TL.threads.length;
    var ctx = prepare(tlCanvas, width, rows * TL_ROW + 18, 11);
    var bins = Math.max(1, Math.floor(plot)), end = tlEnd(), r, b, s;
    var counts = [];
    for (r = 0; r < rows; r++) counts.push(new Float64Array(bins));
    // The metric's kind: samples of other kinds (allocations beside CPU)
    // are not drawn on its timeline.
    for (s = 0; s < TL.t.length; s++) {
      var add = sampleValue(s);
      if (!add) continue;
      b = Math.min(bins - 1, Math.floor(TL.t[s] / end * bins));
      counts[TL.th[s]][b] += add;
    }
    var labels = [];
    for (r = 0; r < rows; r++) {
      var y = r * TL_ROW, peak = 0;
      for (b = 0; b < bins; b++) peak = Math.max(peak, counts[r][b]);
      ctx.fillStyle = r % 2 ? "#f5f7fa" : "#ffffff";
      ctx.fillRect(0, y, width, TL_ROW);
      ctx.fillStyle = "#1d2330";
      var name = TL.threads[r];
      if (name.length > 19) name = name.slice(0, 18) + "\u2026";
      ctx.fillText(name, 4, y + TL_ROW / 2);
      labels.push(TL.threads[r]);
      ctx.fillStyle = "#e3672b";
      for (b = 0; b < bins; b++) {
        if (!counts[r][b]) continue;
        var h = Math.max(1, Math.round((TL_ROW - 4) * counts[r][b] / peak));
        ctx.fillRect(TL_LEFT + b, y + TL_ROW - 2 - h, 1, h);
      }
    }
    // The time axis.
    ctx.fillStyle = "#5d6778";
    var ticks = 5;
    for (var i = 0; i <= ticks; i++) {
      var x = TL_LEFT + plot * i / ticks;
      ctx.fillRect(x, rows * TL_ROW, 1, 4);
      var txt = fmtTime(end * i / ticks);
      ctx.fillText(txt, Math.min(x, width - ctx.measureText(txt).width - 2),
        rows * TL_ROW + 11);
    }
    var sel = drag ? [Math.min(drag[0], drag[1]), Math.max(drag[0], drag[1])] : range;
    if (sel) {
      var x0 = TL_LEFT + sel[0] / end * plot, x1 = TL_LEFT + sel[1] / end * plot;
      ctx.fillStyle = "rgba(47,111,222,0.18)";
      ctx.fillRect(x0, 0, Math.max(x1 - x0, 1), rows * TL_ROW);
      ctx.fillStyle = "#2f6fde";
      ctx.fillRect(x0, 0, 1, rows * TL_ROW);
      ctx.fillRect(x1, 0, 1, rows * TL_ROW);
    }
    tlCanvas.textContent = labels.join("\n");
    document.getElementById("hyprof-timeline-clear").hidden = !range;
  }

  function tlTime(ev) {
    var rect = tlCanvas.getBoundingClientRect(), plot = boxWidth(tlCanvas) - TL_LEFT;
    var x = Math.min(Math.max(ev.clientX - rect.left - TL_LEFT, 0), plot);
    return x / plot * tlEnd();
  }

  // The values of the samples in [t0, t1): per column, its kind's samples
  // (and GIL state, for the GIL columns) counted or weighed into their node.
  function setRange(r) {
    range = r;
    if (!r) {
      source = D.values;
      sourceTable = D.table;
    } else {
      var M = D.metrics.length, N = D.parent.length, m, s;
      var V = [];
      for (m = 0; m < M; m++) V.push(new Float64Array(N));
      for (s = 0; s < TL.t.length; s++) {
        if (TL.t[s] < r[0] || TL.t[s] >= r[1]) continue;
        for (m = 0; m < M; m++) {
          var c = TL.cols[m];
          if (c[0] !== TL.k[s] || (c[2] >= 0 && c[2] !== TL.g[s])) continue;
          V[m][TL.n[s]] += c[1] ? TL.w[s] : 1;
        }
      }
      source = V;
      sourceTable = tableOf(D.parent, D.func, V);
    }
    inverted = null;
    generation++;
    setView(view);
  }

  if (TL) {
    document.getElementById("hyprof-timeline-box").hidden = false;
    tlCanvas.addEventListener("mousedown", function (ev) {
      var t = tlTime(ev);
      drag = [t, t];
      ev.preventDefault();
    });
    window.addEventListener("mousemove", function (ev) {
      if (!drag) return;
      drag[1] = tlTime(ev);
      timelineDraw();
    });
    window.addEventListener("mouseup", function () {
      if (!drag) return;
      var a = Math.min(drag[0], drag[1]), b = Math.max(drag[0], drag[1]);
      drag = null;
      setRange(b - a > tlEnd() / 2000 ? [a, b] : null);
      refresh();
    });
    document.getElementById("hyprof-timeline-clear").addEventListener("click", function () {
      setRange(null);
      refresh();
    });
  }

  // ------------------------------------------------------------ table

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
    var m = metric, T = sourceTable;
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
    var cols = tableColumns(), u = unit(), total = allTotal(), T = sourceTable;
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
          case "name": return '<td class="name" data-func="' + f + '" title="' + esc(v) + '">'
            + esc(v) + "</td>";
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
      var cls = (matchFunc && matchFunc[f] ? "match" : "")
        + (view === "sandwich" && f === centre ? " centre" : "");
      body.push('<tr class="' + cls + '">' + tds.join("") + "</tr>");
    }
    document.getElementById("hyprof-table").innerHTML = "<thead>" + head + "</thead><tbody>"
      + body.join("") + "</tbody>";
    document.getElementById("hyprof-table-note").textContent = (rows.length > shown
      ? "Showing the first " + shown + " of " + rows.length + " functions; search to narrow."
      : rows.length + " functions.") + (DIFF ? "" : " Click a function for its callers and"
      + " callees.");
  }

  document.getElementById("hyprof-table").addEventListener("click", function (ev) {
    var t = ev.target, key = t.getAttribute && t.getAttribute("data-key");
    var f = t.getAttribute && t.getAttribute("data-func");
    if (f !== null && f !== undefined && !DIFF) {
      centre = +f;
      setView("sandwich");
      refresh();
      window.scrollTo(0, 0);
      return;
    }
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
  if (!D.source) viewSelect.removeChild(viewSelect.querySelector('option[value="source"]'));
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
    main.zoom = 0;
    search.value = "";
    setSearch("");
    draw();
    renderTable();
  });
  window.addEventListener("resize", function () { draw(); });

  function refresh() {
    draw();
    renderTable();
  }

  // A view can be linked to: #metric=cpu&search=json&zoom=Scorer.score&sort=own
  // (metric by name or label, search as typed, zoom to the heaviest frame of
  // a function, sort by a table column's key; hover=f shows f's tooltip;
  // view=bottom-up, view=source or view=sandwich&func=f; time=0.5-1.25 picks the samples
  // between those seconds).
  function applyHash() {
    var zoomTo = null, hoverOn = null, want = view, r = null;
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
        want = v;
      } else if (k === "zoom") {
        zoomTo = v;
      } else if (k === "hover") {
        hoverOn = v;
      } else if (k === "func") {
        centre = funcNamed(v);
      } else if (k === "time" && TL) {
        var m = /^([\d.]+)-([\d.]+)$/.exec(v);
        if (m && +m[2] > +m[1]) r = [+m[1] * 1e9, +m[2] * 1e9];
      }
    });
    if (TL && (r ? !range || r[0] !== range[0] || r[1] !== range[1] : range)) setRange(r);
    setView(want);
    if (view === "top-down" || view === "bottom-up") {
      main.zoom = 0;
      main.computeInc();
      if (zoomTo !== null && main.heaviest(zoomTo) > 0) main.zoom = main.heaviest(zoomTo);
    }
    draw();
    renderTable();
    // The tooltip of a function's heaviest frame, as hovering shows it.
    if (view === "source") return;
    var fl = view === "sandwich" ? callees : main;
    var at = hoverOn === null ? -1 : view === "sandwich" && centre >= 0
      && funcs[centre][0] === hoverOn ? 0 : fl.heaviest(hoverOn);
    if (at < 0 && hoverOn !== null && view === "sandwich") {
      fl = callers;
      at = fl.heaviest(hoverOn);
    }
    if (at >= 0 && hoverOn !== null) {
      tip.textContent = fl.describe(at);
      tip.style.display = "block";
      tip.style.left = "40px";
      tip.style.top = "40px";
    }
  }
  window.addEventListener("hashchange", applyHash);

  applyHash();
  // When the page was ready, in ms from the start of its navigation.
  document.body.setAttribute("data-ms", String(Math.round(performance.now())));
  document.body.setAttribute("data-ready", "1");
})();
