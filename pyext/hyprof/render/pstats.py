"""pstats export, so ``pstats.Stats``, snakeviz and gprof2dot read a
deterministic trace.

The stats follow cProfile's conventions (Lib/cProfile.py, snapshot_stats):
keys are ``(filename, firstlineno, co_name)`` for Python functions and
``("~", 0, name)`` for C functions, named as cProfile names them; a
function's value is ``(cc, nc, tt, ct, callers)`` with cc the primitive
calls and nc all calls; each caller's value is ``(nc, cc, tt, ct)`` for the
calls on that edge. Times are wall seconds, or CPU seconds with
``clock="cpu"``.
"""

import marshal
import re

from .. import _progress
from ..errors import ReportError
from . import _model


def cprofile_key(code):
    """The pstats key cProfile gives a code object or C function, as hyprof
    names the same function: cProfile.label() with the address a C method's
    name may hold taken out ("<built-in method __new__ of type object>").
    What comparisons with cProfile (tests/python/test_det.py,
    bench/compare_cprofile.py) key on."""
    import cProfile
    key = cProfile.label(code)
    return key[:2] + (re.sub(r" at 0x[0-9a-f]+", "", key[2]),)


def cprofile_entries(fn):
    """[(cprofile_key, entry)] of cProfile's raw entries for one call of fn
    (profiler_entry objects, with their calls), the profiler's own left out:
    what comparisons with cProfile count from."""
    import cProfile
    pr = cProfile.Profile()
    pr.enable()
    fn()
    pr.disable()
    out = []
    for e in pr.getstats():
        key = cprofile_key(e.code)
        if "_lsprof.Profiler" not in key[2]:
            out.append((key, e))
    return out


def func_key(f):
    """The pstats key of a FunctionStats or FunctionInfo."""
    if f.kind == "python":
        # pstats names a function by its code object's co_name, the last
        # part of the qualified name.
        return (f.filename, f.lineno, f.name.rsplit(".", 1)[-1])
    return ("~", 0, f.name)


def _add(a, b):
    return tuple(x + y for x, y in zip(a, b))


def stats(trace, clock="wall", thread=None):
    """The pstats dictionary of a deterministic trace."""
    with _model.gc_paused():  # a tuple and a dict entry per caller/callee pair
        return _stats(trace, clock, thread)


def _stats(trace, clock, thread):
    if trace.mode != "deterministic":
        raise ReportError("pstats holds call counts and times: only a deterministic trace "
                          "can be exported to it (this one is %s)" % trace.mode)
    if clock not in ("wall", "cpu"):
        raise ReportError("clock=%r must be 'wall' or 'cpu'" % (clock,))
    own, cum = clock + "_own", clock + "_cum"
    out = {}
    # The edges first: their aggregation gives the functions' totals too.
    edges = trace._edge_columns(thread)
    funcs = trace._flat(thread)  # {function id: FunctionStats}
    keys = {}
    for fid, f in funcs.items():
        key = keys[fid] = func_key(f)
        val = (f.primitive_calls, f.calls, getattr(f, own), getattr(f, cum))
        prev = out.get(key)
        out[key] = (_add(prev[:4], val) + (prev[4],)) if prev else val + ({},)
    # The edges straight from the packed columns, as Edge would read them
    # (calls, primitive calls, own time, cumulative time), without an
    # object per edge: a million edges in seconds.
    where = trace._metric_index_of
    cc = trace._calls_col
    oc = where.get(own)
    kc = where.get(cum if cum in where else own)
    o_scale = _model.unit_scale(trace.metrics[oc]) if oc is not None else 0.0
    k_scale = _model.unit_scale(trace.metrics[kc]) if kc is not None else 0.0
    # Per function id (the root's, past the table, too): its key, and the
    # callers' dict of its entry; None where it has nothing recorded.
    nf = len(trace.function_table)
    ckey = [None] * (nf + 1)
    into = [None] * (nf + 1)
    for fid, key in keys.items():
        ckey[fid] = key
        into[fid] = out[key][4]
    # Each value column of the edges as a strided slice of the packed rows.
    callers, callees, n = edges.callers, edges.callees, len(edges)
    zeros = [0] * n
    ncalls = edges.own(cc) or zeros
    pcalls = edges.cum(cc) or zeros
    otime = edges.own(oc) or zeros
    ktime = edges.cum(kc) or zeros
    _progress.stage("pstats: the callers", n, "edges")
    step = 1 << 16
    for s in range(0, n, step):
        e = min(n, s + step)
        for key, callers_of, nc, pc, ot, kt in zip(
                [ckey[min(x, nf)] for x in callers[s:e]], [into[x] for x in callees[s:e]],
                ncalls[s:e], pcalls[s:e], otime[s:e], ktime[s:e]):
            if key is None or callers_of is None:  # from the root, or into nothing
                continue
            val = (nc, pc, ot * o_scale, kt * k_scale)
            got = callers_of.get(key)
            callers_of[key] = val if got is None else _add(got, val)
        _progress.advance(e - s)
    return out


class PstatsExport:
    """An object ``pstats.Stats(obj)`` accepts: it has ``create_stats()``."""

    def __init__(self, trace, clock="wall", thread=None):
        self._trace, self._clock, self._thread = trace, clock, thread
        self.stats = {}

    def create_stats(self):
        self.stats = stats(self._trace, self._clock, self._thread)


def render(trace, clock="wall", thread=None, **options):
    """The marshal bytes of a ``.prof`` file (what cProfile's dump_stats
    writes)."""
    if options:
        raise ReportError("the pstats format takes no option %s"
                          % ", ".join(repr(k) for k in sorted(options)))
    return marshal.dumps(stats(trace, clock, thread))


def dump(trace, path, clock="wall", thread=None):
    """Writes a ``.prof`` file that ``pstats.Stats(path)`` loads."""
    with open(path, "wb") as f:
        f.write(render(trace, clock, thread))
    return path
