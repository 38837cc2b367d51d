"""The programs the suites profile, written once.

A test imports them (``from workloads import spin, cpu_for``); a test that
runs a fresh interpreter starts its script with PRELUDE, which imports the
same functions from this file. Their names and lines are what the tests
look for in traces, so change them here only.
"""

import os
import time

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def spin(n):
    """n rounds of arithmetic in one Python function."""
    s = 0
    for i in range(n):
        s += i * i  # the hot line
    return s


SPIN_HOT_LINE = spin.__code__.co_firstlineno + 4


def cpu_for(seconds, chunk=2000):
    """seconds of this thread's CPU time, in spin(chunk) calls."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        spin(chunk)


def busy_for(seconds):
    """seconds of this thread's CPU time in this one function, with no
    Python call below it."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


# The first lines of a script run with ``python -c``: the functions above,
# by import, so that a child's traces name the same file and lines.
PRELUDE = f"import sys\nsys.path.insert(0, {TESTS_DIR!r})\nfrom workloads import busy_for, cpu_for, spin\n"
