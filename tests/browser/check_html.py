#!/usr/bin/env python3
"""Loads a hyprof HTML report in headless Chromium and checks that it ran.

Two independent signals, from one browser run each:
  * the DOM after the page's scripts ran (``--dump-dom``): the report's own
    script marks <body data-ready="1">, counts the frames it drew in
    data-frames, writes the labels it drew into the canvas's fallback text,
    and an error trap installed before anything else copies every uncaught
    error, unhandled rejection and console.error into #hyprof-errors;
  * Chromium's own console log (``--enable-logging=stderr``), where any
    "Uncaught" error or console message at error level shows up even if
    the page's trap itself failed.
With --screenshot FILE it also saves a PNG of the page.

Usage: check_html.py REPORT.html [--expect NAME ...] [--screenshot FILE]
Exit status: 0 when the page loaded cleanly and every expected name was
drawn, 1 otherwise, 77 when no Chromium is installed.
"""

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def tool_env():
    """The environment without a sanitized build's preloaded runtimes
    (run-pytest.sh sets them for the interpreter): Chromium does not start
    with AddressSanitizer preloaded."""
    return {k: v for k, v in os.environ.items()
            if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}


def find_browser():
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(browser, args, timeout):
    profile = tempfile.mkdtemp(prefix="hyprof-chromium-")
    try:
        # --no-sandbox: CI runs as root; --disable-dev-shm-usage: containers
        # often have a tiny /dev/shm.
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-dev-shm-usage",
               "--disable-extensions", "--disable-background-networking",
               "--user-data-dir=" + profile, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=tool_env(),
                              check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


# Chromium logs a page's console messages as
# [...:INFO:CONSOLE:116] "msg", source: file:///x.html (116)  (older: CONSOLE(116)).
_CONSOLE = re.compile(r":(INFO|WARNING|ERROR):CONSOLE[:(](\d+)\)?\] \"(.*)\", source: (.*)$")


def check(path, expect=(), screenshot=None, timeout=120, width=1280, height=800, fragment=""):
    """Returns a dict: ok, errors (list), frames, labels (drawn on the
    flame graph shown: the main one, or the sandwich's callers then callees),
    canvases (the labels of each canvas by id), wide (the page is wider
    than the window), source ({file: [(line, value)]} of the source view),
    ready_ms (when the page's script finished, from the
    start of navigation), table (function names in
    table order), status, crumbs, console (list). ``fragment`` is
    the report's view (``metric=cpu&search=x&zoom=f&sort=own``)."""
    browser = find_browser()
    if browser is None:
        return None
    url = "file://" + os.path.abspath(path) + ("#" + fragment if fragment else "")
    res = _run(browser, ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
                         f"--window-size={width},{height}", "--dump-dom", url], timeout)
    dom = res.stdout
    errors = []
    console = []
    for line in res.stderr.splitlines():
        m = _CONSOLE.search(line)
        if m:
            console.append(m.group(3))
            if m.group(1) == "ERROR" or "Uncaught" in m.group(3):
                errors.append(f"console: {m.group(3)} ({m.group(4)})")
    if res.returncode != 0:
        errors.append(f"chromium exited with status {res.returncode}")
    body = re.search(r"<body([^>]*)>", dom)
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1))) if body else {}
    if attrs.get("data-ready") != "1":
        errors.append("the report's script did not finish (no data-ready on <body>)")
    if re.search(r"<html[^>]*data-errors=", dom):
        errors.append("the page's error trap fired")
    trapped = re.search(r'<pre id="hyprof-errors">(.*?)</pre>', dom, re.DOTALL)
    if trapped is None:
        errors.append("no #hyprof-errors element: not a hyprof report?")
    elif trapped.group(1).strip():
        errors.append("page errors: " + html.unescape(trapped.group(1).strip()))
    # What each canvas drew (the flame graph, the sandwich's two halves, the
    # timeline's thread rows), from its fallback text.
    canvases = {cid: html.unescape(text).split("\n") if text else []
                for cid, text in re.findall(r'<canvas id="([\w-]+)"[^>]*>(.*?)</canvas>', dom,
                                            re.DOTALL)}
    sandwich = re.search(r'<div id="hyprof-sandwich"( hidden="")?', dom)
    shown = ["hyprof-callers", "hyprof-callees"] if sandwich and not sandwich.group(1) \
        else ["hyprof-flame"]
    labels = [lab for cid in shown for lab in canvases.get(cid, [])]
    table = re.search(r'<table class="funcs" id="hyprof-table">(.*?)</table>', dom, re.DOTALL)
    rows = re.findall(r'<td class="name"[^>]*? title="([^"]*)"', table.group(1) if table else "")
    rows = [html.unescape(r) for r in rows]
    frames = int(attrs.get("data-frames", "0") or 0)
    if frames == 0:
        errors.append("the flame graph drew no frames")
    for name in expect:
        if not any(name in lab for lab in labels):
            drawn = ", ".join(labels[:30])
            errors.append(f"{name!r} is not drawn on the flame graph (drawn: {drawn})")
        if not any(name in r for r in rows):
            errors.append(f"{name!r} is not in the function table")
    if screenshot:
        shot = _run(browser, ["--hide-scrollbars", "--virtual-time-budget=10000",
                              f"--window-size={width},{height}",
                              "--screenshot=" + os.path.abspath(screenshot), url], timeout)
        if shot.returncode != 0 or not os.path.exists(screenshot):
            errors.append(f"chromium could not take a screenshot: {shot.stderr[-500:]}")
    status = re.search(r'<span class="status" id="hyprof-status">(.*?)</span>', dom, re.DOTALL)
    crumbs = re.findall(r'<a data-node="\d+">(.*?)</a>', dom)
    tip = re.search(r'<div id="hyprof-tip"[^>]*>(.*?)</div>', dom, re.DOTALL)
    # The source view: per file, its lines shown and each one's value.
    section = re.search(r'<section id="hyprof-source"[^>]*>(.*?)</section>', dom, re.DOTALL)
    source = {html.unescape(f): [(int(ln), float(v)) for ln, v in
                                 re.findall(r'<tr data-line="(\d+)" data-value="([\d.e+-]+)"',
                                            body_)]
              for f, body_ in re.findall(r'<table class="source" data-file="([^"]*)">(.*?)</table>',
                                         section.group(1) if section else "", re.DOTALL)}
    return {"ok": not errors, "source": source, "errors": errors, "frames": frames, "labels": labels,
            "table": rows, "console": console, "canvases": canvases,
            "wide": attrs.get("data-wide") == "1",
            "ready_ms": int(attrs.get("data-ms", "0") or 0),
            "status": html.unescape(status.group(1)) if status else "",
            "crumbs": [html.unescape(c) for c in crumbs],
            "tooltip": html.unescape(tip.group(1)) if tip else ""}


def png_pixels(path):
    """(width, height, rows) of an 8-bit RGB or RGBA PNG such as Chromium's
    screenshots, each row a list of (r, g, b): enough to check what a
    screenshot shows without an imaging library."""
    import struct
    import zlib
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, width = 8, [], None
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if ctype == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in (2, 6) or interlace:
                raise ValueError(f"{path}: PNG of depth {depth}, colour type {colour}")
            bpp = 3 if colour == 2 else 4
        elif ctype == b"IDAT":
            idat.append(body)
        pos += 12 + length
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p_ = a + b - c
                pa, pb, pc = abs(p_ - a), abs(p_ - b), abs(p_ - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[i:i + 3]) for i in range(0, stride, bpp)])
        prev = line
    return width, height, rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report")
    ap.add_argument("--expect", nargs="*", default=[], help="function names that must show")
    ap.add_argument("--screenshot", help="also save a PNG of the page here")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=800)
    ap.add_argument("--view", default="",
                    help="the report's view, as its URL fragment: metric=cpu&search=x&zoom=f")
    args = ap.parse_args(argv)
    if not os.path.exists(args.report):
        print(f"check_html: {args.report}: no such file", file=sys.stderr)
        return 2
    result = check(args.report, args.expect, args.screenshot, width=args.width,
                   height=args.height, fragment=args.view)
    if result is None:
        print("SKIP: no Chromium found (apt-get install chromium)")
        return 77
    print(json.dumps({k: result[k] for k in ("ok", "errors", "frames")}, indent=1))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
