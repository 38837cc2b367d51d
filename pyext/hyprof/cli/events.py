"""``hyprof events``: the sampling events of this machine and whether each
opens here (the listing is hyprof.events)."""

import sys

from .. import _hyprof
from ..errors import CLIError
from ..events import format_events, list_events

HELP = "list the sampling events of this machine and whether each opens"


def configure(p):
    p.add_argument("--pmu", default=None, help="only the events of this PMU (perf, perf_raw, "
                                               "or the CPU's own)")
    p.add_argument("--opens", action="store_true", help="only the events that open here")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="the whole reason an event does not open")


def run(args):
    evs = list_events(pmu=args.pmu)
    if args.pmu is not None and not evs:
        known = sorted({e[0] for e in _hyprof.perf_events()})
        raise CLIError("no PMU %r here; libpfm4 detects: %s" % (args.pmu, ", ".join(known)))
    if args.opens:
        evs = [e for e in evs if e.opens]
    sys.stdout.write(format_events(evs, verbose=args.verbose) + "\n")
    return 0
