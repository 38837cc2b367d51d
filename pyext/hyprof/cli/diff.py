"""``hyprof diff BASE NEW``: which functions got slower or faster between two
traces, as a table or a differential flame graph (the library is
hyprof.diff)."""

import os
import sys

from .. import _progress
from ..diff import diff
from ..errors import CLIError, DiffError, ReportError, UsageError
from . import files

HELP = "compare two traces: which functions got slower or faster"


def configure(p):
    """``hyprof diff BASE NEW [--format text|html] [-o FILE]``"""
    p.add_argument("base", help="the trace before the change")
    p.add_argument("new", help="the trace after it")
    p.add_argument("-f", "--format", choices=("text", "html"), default=None,
                   help="text (a table, the default) or html (a differential flame graph; "
                        "implied by -o NAME.html)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the report to FILE instead of standard output")
    p.add_argument("--metric", default=None,
                   help="what to compare: wall (default), cpu, calls, or a sample kind's "
                        "samples or weight")
    p.add_argument("-n", "--limit", type=int, default=20,
                   help="rows per table (default 20)")
    p.add_argument("--normalize", action="store_true",
                   help="scale the base to the new total: compare shares, for runs of "
                        "different lengths")


def run(args):
    if args.limit < 1:
        raise UsageError(f"--limit must be 1 or more, not {args.limit}")
    base, new = files.load_trace(args.base), files.load_trace(args.new)
    if args.output and (files.same_file(args.output, args.base)
                        or files.same_file(args.output, args.new)):
        raise UsageError(f"-o {args.output} is one of the traces: write the diff elsewhere")
    fmt = args.format
    if fmt is None:
        fmt = "html" if (args.output or "").lower().endswith((".html", ".htm")) else "text"
    try:
        _progress.stage("comparing the two traces")
        d = diff(base, new, metric=args.metric, normalize=args.normalize)
        out = d.to_text(limit=args.limit) if fmt == "text" else d.to_html(
            title=f"hyprof diff: {os.path.basename(args.base)} -> {os.path.basename(args.new)}")
    except (DiffError, ReportError) as e:
        raise CLIError(str(e)) from None
    if args.output:
        files.write_report(args.output, out)
    else:
        _progress.clear()
        sys.stdout.write(out)
    return 0
