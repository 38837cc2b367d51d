"""Progress of long work on a terminal: ``hyprof report``, ``merge``, ``diff``
and every export show a line on stderr that says what they are doing, with
a bar and counts where the work is counted.

Shown only where someone watches: stderr is a terminal, TERM is not "dumb",
no CI variable is set and HYPROF_PROGRESS is not 0; and only once the work
has taken longer than a moment (HYPROF_PROGRESS_DELAY seconds, 0.4 unless
set), so a quick report prints exactly what it printed before. The line is
rewritten in place (at most ten times a second) and erased when the work
ends, so nothing of it stays in the terminal's scrollback.

The code doing the work reports through the module: ``stage(label,
total, unit)`` starts a step, ``advance(n)`` counts it. Both cost a
function call and a comparison when nothing is shown.
"""

import os
import sys
import time

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


class _Task:
    """One command's progress line."""

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
        enc = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        self.full, self.empty = ("\u2588", "\u2591") if enc == "utf8" else ("#", "-")

    def stage(self, label, total=None, unit="", done=0):
        self.label, self.total, self.unit, self.count = label, total, unit, done
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
        room = width - len(tail) - 2
        if len(head) > room:
            head = head[:max(room - 3, 0)] + "..."
        return f"{head}  {tail}"[:width]

    def draw(self, force=False):
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

    def close(self):
        if self.drawn:
            self.drawn = False
            try:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            except (OSError, ValueError):
                pass


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
        _current.close()


def stage(label, total=None, unit="", done=0):
    """Starts a step of the current task: what it does, how many units it
    will count (None: not counted) and how many are done already."""
    if _current is not None:
        _current.stage(label, total, unit, done)


def advance(n=1):
    """Counts n units of the current step."""
    if _current is not None:
        _current.advance(n)
