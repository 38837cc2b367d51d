"""Report formats. Each is a function ``(trace, **options) -> str | bytes``
registered in FORMATS under the name ``--format`` takes.

A format whose output can be far larger than the model it is made from
(the path formats: a line or an array entry per call path) also has a
function in STREAMS, ``(trace, **options) -> iterator of str``: it checks
the options and builds what it needs when called, then yields the report a
piece at a time, so that writing it to a file never holds it whole.
``stream()`` gives every format as pieces, those without one in a piece."""

from .. import _progress
from . import callgrind, collapsed, dot, html, pprof, pstats, speedscope, svg, text, tree
from ..errors import ReportError, ReportWarning

FORMATS = {
    "text": text.render,
    "tree": tree.render,
    "pstats": pstats.render,
    "html": html.render,
    "speedscope": speedscope.render,
    "collapsed": collapsed.render,
    "callgrind": callgrind.render,
    "dot": dot.render,
    "pprof": pprof.render,
    "svg": svg.render,
}

STREAMS = {
    "collapsed": collapsed.stream,
    "speedscope": speedscope.stream,
}

# The format an output file's name implies, when --format is not given.
SUFFIXES = {
    ".html": "html",
    ".htm": "html",
    ".speedscope.json": "speedscope",
    ".folded": "collapsed",
    ".collapsed": "collapsed",
    ".dot": "dot",
    ".gv": "dot",
    ".pb.gz": "pprof",
    ".pprof": "pprof",
    ".prof": "pstats",
    ".pstats": "pstats",
    ".txt": "text",
    ".svg": "svg",
}


def format_for_path(path, default=None):
    """The format a file name implies (``callgrind.out.*`` too), or default."""
    name = str(path).lower()
    base = name.rsplit("/", 1)[-1]
    if base.startswith("callgrind.out"):
        return "callgrind"
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    return default


def _check_format(fmt):
    if fmt not in FORMATS:
        choices = ", ".join(sorted(FORMATS))
        raise ReportError(f"unknown report format {fmt!r}; choose one of: {choices}")


def render(trace, fmt, **options):
    """Renders a trace in a registered format; ReportError (a ValueError)
    for an unknown format or an option the format does not take."""
    _check_format(fmt)
    _progress.stage(f"rendering {fmt}")
    return FORMATS[fmt](trace, **options)


def stream(trace, fmt, **options):
    """The report as an iterator of pieces (str, or bytes for a binary
    format), to be written one after the other. The format and its options
    are checked, and ReportError raised, before this returns; the pieces of
    a path format are made as they are taken."""
    _check_format(fmt)
    _progress.stage(f"rendering {fmt}")
    fn = STREAMS.get(fmt)
    if fn is not None:
        return fn(trace, **options)
    return iter((FORMATS[fmt](trace, **options),))


__all__ = ["FORMATS", "STREAMS", "SUFFIXES", "ReportError", "ReportWarning", "format_for_path",
           "render", "stream"]
