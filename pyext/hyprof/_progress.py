"""Progress of long work on a terminal: ``hyprof report``, ``merge``, ``diff``
and every export show a line on stderr that says what they are doing, with
a bar and counts where the work is counted.

Shown only where someone watches: stderr is a terminal, TERM is not "dumb",
no CI variable is set and HYPROF_PROGRESS is not 0; and only once the work
has taken longer than a moment (HYPROF_PROGRESS_DELAY seconds, 0.4 unless
set), so a quick report prints exactly what it printed before. The line is
rewritten in place (ten times a second, by a thread of its own while a step
runs uncounted) and erased when the work ends, so nothing of it stays in
the terminal's scrollback.

The code doing the work reports through the module: ``stage(label,
total, unit)`` starts a step, ``advance(n)`` counts it. Both cost a
function call and a comparison when nothing is shown.
"""

import os
import sys
import threading
import time
import unicodedata

__all__ = ["advance", "clear", "stage", "task"]

_DEFAULT_DELAY = 0.4
_INTERVAL = 0.1


def _wanted(stream):
    if os.environ.get("HYPROF_PROGRESS", "") == "0" or os.environ.get("CI"):
        return False
    if os.environ.get("TERM", "") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def _delay():
    try:
        value = float(os.environ.get("HYPROF_PROGRESS_DELAY", _DEFAULT_DELAY))
    except ValueError:
        return _DEFAULT_DELAY
    return value if value >= 0 else _DEFAULT_DELAY


def _printable(text):
    """text with every control character (a newline, an escape sequence in
    a file name) shown as '?': the line must stay one line."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _cells(ch):
    return 2 if unicodedata.east_asian_width(ch) in "WF" else 1


def _cut(text, width):
    """The start of text that fills at most width terminal cells."""
    used = 0
    for i, ch in enumerate(text):
        used += _cells(ch)
        if used > width:
            return text[:i]
    return text


def _width_of(text):
    return sum(map(_cells, text))


class _Task:
    """One command's progress line. A ticker thread redraws it while a step
    runs without counting (the elapsed time moves on), and shows a long
    first step at all; every write holds the lock."""

    def __init__(self, name, stream):
        self.name = name
        self.stream = stream
        self.start = time.monotonic()
        self.shown_at = self.start + _delay()
        self.next_draw = self.shown_at
        self.label = ""
        self.total = None
        self.unit = ""
        self.count = 0
        self.drawn = False
        self.paused = False
        enc = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        self.full, self.empty = ("\u2588", "\u2591") if enc == "utf8" else ("#", "-")
        self.lock = threading.RLock()
        self.stop = threading.Event()
        self.ticker = threading.Thread(target=self._tick, name="hyprof-progress", daemon=True)
        self.ticker.start()

    def _tick(self):
        while not self.stop.wait(_INTERVAL):
            with self.lock:
                if not self.paused and not self.stop.is_set():
                    self.draw()

    def stage(self, label, total=None, unit="", done=0):
        with self.lock:
            self.label, self.total, self.unit, self.count = _printable(label), total, unit, done
            self.paused = False
            self.draw(force=self.drawn)

    def advance(self, n):
        self.count += n
        if time.monotonic() >= self.next_draw:
            self.draw()

    def _width(self):
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        # A terminal that says no size (0) is taken to be 80 wide.
        return max(40, min(columns or 80, 160)) - 1

    def line(self):
        width = self._width()
        elapsed = time.monotonic() - self.start
        head = f"{self.name}: {self.label}"
        tail = f"{elapsed:.1f} s"
        if self.total:
            done = min(self.count, self.total)
            counts = f"{done:,}/{self.total:,} {self.unit}".rstrip()
            tail = f"{100 * done // self.total:3d}%  {counts}  {tail}"
            # The bar and the counts keep their room; the label gives way.
            bar = max(10, min(30, width - len(tail) - len(head) - 4))
            fill = bar * done // self.total
            tail = f"{self.full * fill}{self.empty * (bar - fill)}  {tail}"
        elif self.count:
            tail = f"{self.count:,} {self.unit}  {tail}".strip()
        room = width - _width_of(tail) - 2
        if _width_of(head) > room:
            head = _cut(head, max(room - 3, 0)) + "..."
        return _cut(f"{head}  {tail}", width)

    def draw(self, force=False):
        with self.lock:
            now = time.monotonic()
            if not force and now < self.shown_at:
                return
            self.next_draw = now + _INTERVAL
            try:
                self.stream.write("\r\x1b[K" + self.line())
                self.stream.flush()
                self.drawn = True
            except (OSError, ValueError):
                pass

    def erase(self):
        """Takes the line away until the next step: what is written next
        (a report, a warning) starts on a clean line and stays."""
        with self.lock:
            self.paused = True
            if self.drawn:
                self.drawn = False
                try:
                    self.stream.write("\r\x1b[K")
                    self.stream.flush()
                except (OSError, ValueError):
                    pass

    def close(self):
        self.stop.set()
        self.erase()
        self.ticker.join(1.0)


_current = None


class task:
    """``with task("report"):`` shows the progress of the work inside it
    (nothing when no one watches: see the module's text)."""

    def __init__(self, name, stream=None):
        self.name = name
        self.stream = stream

    def __enter__(self):
        global _current
        stream = self.stream or sys.stderr
        self.previous = _current
        if _current is None and _wanted(stream):
            _current = _Task(self.name, stream)
        return self

    def __exit__(self, *exc):
        global _current
        if _current is not None and _current is not self.previous:
            _current.close()
        _current = self.previous
        return False


def clear():
    """Erases the progress line, before a message is written to stderr (the
    next step draws it again)."""
    if _current is not None:
        _current.erase()


def stage(label, total=None, unit="", done=0):
    """Starts a step of the current task: what it does, how many units it
    will count (None: not counted) and how many are done already."""
    if _current is not None:
        _current.stage(label, total, unit, done)


def advance(n=1):
    """Counts n units of the current step."""
    if _current is not None:
        _current.advance(n)
