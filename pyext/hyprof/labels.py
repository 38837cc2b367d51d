"""Labels: what the program was doing, carried by the samples its threads
take (docs/continuous.md, "Labels").

::

    with hyprof.label(tenant="acme", job="nightly"):
        run_job()

Every sample the thread takes inside the block carries those labels, and so
do the traces, windows and pprof profiles made of them (pprof
``Sample.label``, which Pyroscope and Parca filter and group by); ``hyprof
report --label tenant=acme`` keeps those samples and ``--by-label tenant``
gives a table per value. Blocks nest: an inner block adds its labels to the
outer ones, replacing a key the outer block set. The Django middleware
labels each request with its ``view`` and ``method``.

How it reaches the signal handler, which cannot run Python: each distinct
set of labels is interned once in a process-wide table of the extension
(ids, at most 65,536 sets: labels are for a few values, views and tenants,
not one per request; a set beyond that is not made and the block carries
none, counted in ``stats()``), and the thread's current set is a word the
handler reads. A thread carries its labels from entering the block to
leaving it. Coroutines of one event loop share their thread: a sample taken
while another task runs, inside a task's block, carries that block's labels
(blocks that do not await are exact). The deterministic mode does not
record labels.
"""

import contextlib
import contextvars

from . import _hyprof
from .errors import ProfilerError

__all__ = ["current", "label", "pop", "push", "stats"]

# The labels of the running context, as the sorted pairs the C table keys on.
_pairs = contextvars.ContextVar("hyprof_labels", default=())


def _check(labels):
    for key, value in labels.items():
        if not isinstance(value, str):
            raise ProfilerError(f"label {key}={value!r}: a label's value must be a str")
    return labels


def push(**labels):
    """Adds labels to the running context's and makes the calling thread
    carry them; returns a token for pop(). For code that cannot use a with
    block (a middleware's hooks); label() is this pair."""
    merged = dict(_pairs.get())
    merged.update(_check(labels))
    pairs = tuple(sorted(merged.items()))
    labels_id = _hyprof._labels_intern(pairs)  # raises on a bad label: nothing set
    outer = _hyprof._labels_intern(_pairs.get())
    token = _pairs.set(pairs)
    _hyprof._labels_swap(labels_id)
    return token, outer


def pop(token):
    """Undoes a push(): the context's labels are those before it, and the
    thread carries them (the context's, not whatever the thread carried at
    the push, which in coroutines sharing a thread may be another task's)."""
    var_token, outer = token
    _pairs.reset(var_token)
    _hyprof._labels_swap(outer)


@contextlib.contextmanager
def label(**labels):
    """Labels the calling thread's samples inside the block (also usable as
    a decorator)."""
    token = push(**labels)
    try:
        yield
    finally:
        pop(token)


def current():
    """{key: value}: the labels of the running context."""
    return dict(_pairs.get())


def stats():
    """{"sets": label sets made, "refused": sets not made once the table was
    full, "max": the table's size}."""
    return _hyprof._labels_stats()
