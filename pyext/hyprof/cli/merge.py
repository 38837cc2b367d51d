"""``hyprof merge -o OUT A B ...``: traces of several processes merged into one
(the library is hyprof.merge)."""

import os
import sys

from .. import _hyprof, _progress
from ..errors import CLIError, MergeError
from ..merge import check_output, merge_traces
from . import files

HELP = "merge traces of several processes into one"


def configure(p):
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="the merged trace to write")
    p.add_argument("traces", nargs="+", metavar="TRACE",
                   help="trace files of the same mode (all deterministic, or all sampling)")


def run(args):
    try:
        check_output(args.traces, args.output)
        traces = []
        for i, p in enumerate(args.traces):
            _progress.stage(f"reading {os.path.basename(p)}", len(args.traces), "traces", i)
            traces.append(files.load_trace(p, progress=False))
        data = merge_traces(traces, names=args.traces)
    except MergeError as e:
        raise CLIError(str(e)) from None
    _progress.stage(f"writing {os.path.basename(args.output)}")
    files.write_trace(args.output, _hyprof.write_trace, data)
    _progress.clear()
    sys.stderr.write(f"hyprof merge: {len(args.traces)} traces, {len(data['threads'])} threads,"
                     f" {len(data['nodes'])} call paths -> {args.output}\n")
    return 0
