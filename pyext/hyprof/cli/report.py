"""``hyprof report``: renders a trace as a table, a call tree or another
format (docs/reports.md), on standard output or into a file.

    python -m hyprof report OUT [--format tree|text|pstats|...] [--sort KEY] [--limit N]

On a console the default is the call tree with the top functions
(render/tree.py); ``--format text`` is the table.
"""

import os
import shutil
import sys

from .. import _progress
from .. import render as _render
from ..errors import CLIError, ReportError, UsageError
from ..render import text as _text
from ..render import tree as _tree
from ..render.pstats import PstatsExport
from . import files
from .options import nonneg_int

HELP = "print a trace as a table, a call tree or another format"


def configure(p):
    p.add_argument("trace", nargs="+", help="a .hyprof trace file")
    p.add_argument("-f", "--format", default=None, choices=sorted(_render.FORMATS),
                   help="tree (the call tree and the top functions, the default), text (the "
                        "table), pstats, html, speedscope, collapsed, callgrind, dot, pprof "
                        "(default: implied by -o's name, else tree); see docs/reports.md")
    p.add_argument("-s", "--sort", default="cum", choices=_text.SORTS,
                   help="table order: calls, own, cum, cpu, cpucum, name, ... (default: cum)")
    p.add_argument("-n", "--limit", type=nonneg_int, default=None,
                   help="text: table rows (0: all; default 30); tree: the functions listed "
                        "after the tree (0: none; default 10)")
    p.add_argument("--thread", default=None, metavar="ID|NAME",
                   help="one thread's statistics: its id in the trace's threads table or "
                        "its name (--list-threads shows them)")
    p.add_argument("--list-threads", action="store_true",
                   help="list the trace's threads (id, name, thread id) and stop")
    p.add_argument("--clock", choices=("wall", "cpu"), default=None,
                   help="a deterministic trace's time, in every format: the same as "
                        "--metric wall or --metric cpu (default: wall)")
    p.add_argument("--no-builtins", dest="builtins", action="store_false",
                   help="leave C functions out of the table")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the report to FILE instead of standard output")
    p.add_argument("--metric", default=None,
                   help="text, tree, html, speedscope, collapsed, dot, pprof: the metric to show, "
                        "e.g. wall, cpu, calls, or a sample kind's samples/weight "
                        "(alloc_bytes, live_bytes, lock_wait_ns, lock_hold_ns)")
    p.add_argument("--threshold", type=float, default=None, metavar="PCT",
                   help="dot, tree: leave out functions or frames under PCT percent "
                        "(default 0.5)")
    add_tree_view_options(p)
    p.add_argument("--threads", action="store_true",
                   help="collapsed: put each thread's stacks under a frame of its own")
    p.add_argument("--label", action="append", metavar="KEY=VALUE", default=None,
                   help="keep only what ran under this label (hyprof.label(), the Django "
                        "middleware's view and method); repeatable: every key must match, "
                        "and KEY=A,B matches either value")
    p.add_argument("--by-label", metavar="KEY", default=None,
                   help="text, tree: one report per value of the label KEY, largest first")
    p.add_argument("--lines", action="store_true",
                   help="text: the hottest source lines with their text (sampling traces); "
                        "collapsed: keep each frame's executing line")


def _one_measure(trace, args):
    """--clock and --metric say one thing: a deterministic trace's clock is
    its metric wall or cpu, honoured by every format (the tree and pstats by
    the clock, the others by the metric); a sampling trace has columns, not
    clocks. Sets args.clock and args.metric to agree; a UsageError when they
    disagree or do not apply."""
    if trace.mode != "deterministic":
        if args.clock is not None:
            cols = ", ".join(m.name for m in trace.metrics)
            raise UsageError(f"--clock picks a deterministic trace's time; this {trace.mode} "
                             f"trace has columns instead: give --metric (one of {cols})")
        args.clock = "wall"
        return
    if args.metric in _tree.DET_METRICS:  # wall, wall_cum, cpu_own...: a clock
        args.metric = _tree.DET_METRICS[args.metric]
        if args.clock is not None and args.clock != args.metric:
            raise UsageError(f"--clock {args.clock} and --metric {args.metric} disagree: give "
                             "one of them")
        args.clock = args.metric
    elif args.metric is None and args.clock is not None:
        args.metric = args.clock
    args.clock = args.clock or "wall"


def _export_options(args, fmt):
    """Options of the exporters of docs/reports.md, for those given."""
    opts = {}
    if args.metric is not None and fmt in ("html", "speedscope", "collapsed", "dot", "pprof",
                                           "svg"):
        opts["metric"] = args.metric
    if args.threshold is not None and fmt == "dot":
        opts["threshold"] = args.threshold
    if fmt == "collapsed":
        opts["threads"] = args.threads
        opts["lines"] = args.lines
    if fmt == "html" and args.threads:
        opts["threads"] = True
    return opts


def _use_color(args, stream):
    if args.color != "auto":
        return args.color == "always"
    return (stream is not None and stream.isatty() and not os.environ.get("NO_COLOR")
            and os.environ.get("TERM") != "dumb")


def add_tree_view_options(p):
    """The tree's view options, which hyprof report and hyprof run share."""
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="tree: colours (auto: on a terminal, never in a pipe or a file, "
                        "off with NO_COLOR)")
    p.add_argument("--hide", action="append", metavar="PATTERN", default=None,
                   help="tree: also hide frames of files matching PATTERN (fnmatch, e.g. "
                        "'*/vendor/*') called from hidden or library frames; repeatable")
    p.add_argument("--show-all", action="store_true",
                   help="tree: hide no frame (by default library internals called from "
                        "library frames are hidden: the standard library, site-packages, "
                        "C functions)")


def tree_view(args, stream):
    """The tree's view options of args, for output on stream (None: a file):
    colour, the width and the guides' characters of a terminal."""
    if args.show_all and args.hide:
        raise UsageError("--hide and --show-all do not go together: --show-all hides nothing")
    opts = {"color": _use_color(args, stream)}
    if args.show_all:
        opts["collapse"] = False
    elif args.hide:
        opts["collapse"] = list(_tree.LIBRARY_PATTERNS) + args.hide
    if stream is not None and stream.isatty():
        try:
            opts["width"] = max(40, os.get_terminal_size(stream.fileno()).columns)
        except (OSError, ValueError):
            opts["width"] = max(40, shutil.get_terminal_size().columns)
    encoding = (getattr(stream, "encoding", None) or "") if stream is not None else "utf-8"
    opts["unicode"] = encoding.lower().replace("-", "") in ("utf8", "utf16", "utf32")
    return opts


def _tree_options(args):
    opts = {"thread": args.thread, "clock": args.clock}
    opts.update(tree_view(args, sys.stdout if args.output is None else None))
    if args.threshold is not None:
        opts["min_percent"] = args.threshold
    if args.metric is not None:
        opts["metric"] = args.metric  # a sampling trace's column, e.g. lock_wait_ns
    if args.limit is not None:
        opts["top"] = args.limit
    return opts


def _report_options(args, fmt):
    if fmt == "text":
        opts = {"sort": args.sort, "limit": 30 if args.limit is None else args.limit,
                "thread": args.thread, "builtins": args.builtins}
        if args.metric in ("wall", "cpu"):
            # A deterministic table shows both clocks: the clock orders it.
            if args.metric == "cpu":
                opts["sort"] = {"cum": "cpucum", "own": "cpu"}.get(args.sort, args.sort)
        elif args.metric is not None:
            opts["metric"] = args.metric  # a sampling trace's column, e.g. live_bytes
        return opts
    if fmt == "tree":
        return _tree_options(args)
    if fmt == "pstats":
        return {"thread": args.thread, "clock": args.clock}
    return _export_options(args, fmt)


_PSTATS_SORT = {"calls": "ncalls", "pcalls": "pcalls", "own": "tottime", "tottime": "tottime",
                "cum": "cumulative", "cumtime": "cumulative", "cpu": "tottime",
                "cpucum": "cumulative", "percall": "cumulative", "name": "name",
                "file": "filename", "samples": "tottime"}


def _pstats_text(trace, args):
    import io
    import pstats

    buf = io.StringIO()
    st = pstats.Stats(PstatsExport(trace, args.clock, args.thread), stream=buf)
    st.sort_stats(_PSTATS_SORT.get(args.sort, "cumulative"))
    limit = 30 if args.limit is None else args.limit
    st.print_stats(*([limit] if limit else []))
    return buf.getvalue()


def _label_filter(trace, specs):
    """The trace kept to --label KEY=VALUE[,VALUE] options."""
    want = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not key or not values:
            raise UsageError(f"--label {spec}: expected KEY=VALUE (or KEY=VALUE,VALUE)")
        want.setdefault(key, set()).update(values.split(","))
    known = trace.labels()
    for key in want:
        if key not in known:
            raise CLIError(f"--label {key}=...: the trace has no label {key!r}"
                           + (f" (it has {', '.join(known)})" if known else
                              " (it has no labels)"))
    return trace.where(**want)


def _by_label(trace, args, fmt):
    """One report per value of the label --by-label names, the value with
    most samples (or time) first, then what carried no such label."""
    key = args.by_label
    values = trace.labels().get(key)
    if not values:
        known = trace.labels()
        raise CLIError(f"--by-label {key}: the trace has no label {key!r}"
                       + (f" (it has {', '.join(known)})" if known else " (it has no labels)"))
    parts = []
    for value in values:
        sub = trace.where(**{key: value})
        parts.append((_total(sub), f"{key}={value}", sub))
    rest = trace.where(**{key: None})
    if _total(rest):
        parts.append((_total(rest), f"no {key} label", rest))
    parts.sort(key=lambda p: -p[0])
    out = []
    for _, title, sub in parts:
        out.append(f"=== {title} ===\n")
        out.append(_render.render(sub, fmt, **_report_options(args, fmt)))
        out.append("\n")
    return "".join(out)


def _total(trace):
    """A trace's size for ordering: its default column's total."""
    return sum(f.own_samples if trace.mode == "sampling" else f.wall_own
               for f in trace.functions())


def _threads_text(trace):
    rows = [f"{t.id:>4}  {t.name or '':<24} {t.os_tid or ''}" for t in trace.threads()]
    return "  id  name                     thread id\n" + "\n".join(rows) + "\n"


def _thread_arg(trace, value):
    """--thread's id or name, as the thread's id; a CLIError listing the
    threads when it names none."""
    threads = trace.threads()
    by_name = [t for t in threads if t.name == value]
    if value.isdigit() and int(value) < len(threads):
        return int(value)
    if len(by_name) == 1:
        return by_name[0].id
    listed = ", ".join(f"{t.id} {t.name}" if t.name else str(t.id) for t in threads)
    if len(by_name) > 1:
        raise CLIError(f"--thread {value}: {len(by_name)} threads have that name; give one "
                       f"of their ids ({', '.join(str(t.id) for t in by_name)})")
    raise CLIError(f"--thread {value}: the trace has no such thread"
                   + (f"; its threads are {listed}" if listed else " (it has no threads)"))


def _format(args):
    """--format, or the one -o's name implies; a UsageError for a name whose
    suffix says no format hyprof writes."""
    if args.format is not None:
        return args.format
    if args.output is None:
        return "tree"
    fmt = _render.format_for_path(args.output)
    if fmt is not None:
        return fmt
    base = os.path.basename(args.output)
    if "." in base.strip("."):
        known = ", ".join(sorted(_render.SUFFIXES))
        raise UsageError(f"-o {args.output}: hyprof does not know the format of "
                         f"'.{base.rsplit('.', 1)[1]}' files; give --format (one of "
                         f"{', '.join(sorted(_render.FORMATS))}) or a name ending in {known}")
    return "text"


def run(args):
    if len(args.trace) > 1:
        raise UsageError(f"report reads one trace, not {len(args.trace)}: merge them first "
                         f"(hyprof merge -o all.hyprof {' '.join(args.trace[:3])}"
                         f"{' ...' if len(args.trace) > 3 else ''}), then report all.hyprof")
    args.trace = args.trace[0]
    # The HTML report's timeline shows the samples themselves. (A format
    # that cannot be told is refused below, after the checks of the trace.)
    try:
        wants_samples = _format(args) == "html"
    except UsageError:
        wants_samples = False
    trace = files.load_trace(args.trace, keep_samples=wants_samples)
    if args.list_threads:
        _progress.clear()
        sys.stdout.write(_threads_text(trace))
        return 0
    if args.label:
        trace = _label_filter(trace, args.label)
    if args.thread is not None:
        args.thread = _thread_arg(trace, args.thread)
    _one_measure(trace, args)
    if args.output is not None and files.same_file(args.output, args.trace):
        raise UsageError("-o %s is the trace itself: write the report elsewhere" % args.output)
    fmt = _format(args)
    if args.lines and fmt in ("text", "tree"):
        if trace.mode != "sampling":
            raise CLIError(f"--lines needs a sampling trace: only the sampling mode records "
                           f"which line runs (hyprof run --mode sampling); {args.trace} is "
                           f"{trace.mode}")
        _progress.clear()
        sys.stdout.write(_text.lines_report(trace, limit=30 if args.limit is None else args.limit,
                                            thread=args.thread))
        return 0
    if args.by_label is not None and fmt not in ("text", "tree"):
        raise UsageError(f"--by-label makes text or tree reports, not {fmt}; use --label "
                         f"{args.by_label}=VALUE for one value in another format")
    try:
        if args.by_label is not None:
            out = _by_label(trace, args, fmt)
        elif fmt == "pstats" and args.output is None:
            # pstats' own table on a console; the binary file with -o.
            out = _pstats_text(trace, args)
        else:
            out = _render.stream(trace, fmt, **_report_options(args, fmt))
        if args.output is not None:
            files.write_report(args.output, out)
            return 0
        # The report goes where the progress line is: the line goes first.
        _progress.clear()
        files.write_stdout(out, fmt)
    except ReportError as e:
        raise CLIError(str(e)) from None
    return 0
