"""Report formats. Each is a function ``(trace, **options) -> str | bytes``
registered in FORMATS under the name ``--format`` takes."""

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


def render(trace, fmt, **options):
    """Renders a trace in a registered format; ReportError (a ValueError)
    for an unknown format or an option the format does not take."""
    try:
        fn = FORMATS[fmt]
    except KeyError:
        choices = ", ".join(sorted(FORMATS))
        raise ReportError(f"unknown report format {fmt!r}; choose one of: {choices}") from None
    _progress.stage(f"rendering {fmt}")
    return fn(trace, **options)


__all__ = ["FORMATS", "SUFFIXES", "ReportError", "ReportWarning", "format_for_path", "render"]
