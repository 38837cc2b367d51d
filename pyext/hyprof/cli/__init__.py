"""The ``hyprof`` command (the console script, and ``python -m hyprof``).

    hyprof run [-o OUT] script.py [args...]     profile a program
    hyprof report OUT [--format F] [-o FILE]    render its trace
    hyprof merge -o OUT A B ...                 merge traces of several processes
    hyprof diff BASE NEW                        compare two traces
    hyprof events                               list this machine's sampling events
    hyprof discover                             list the pprof endpoints being served
    hyprof attach PID [--seconds N] [-o OUT]    profile a process that serves them

Each subcommand is a module of this package (run, report, merge, diff,
events, discover, attach) with HELP, configure(subparser) and run(args) -> exit status;
files reads traces and writes results for them all. A subcommand reports a
problem by raising CLIError (one line, exit status 1) or UsageError (exit
status 2, like argparse's own errors); the library modules it calls raise
their own errors, which it translates.
"""

import argparse
import sys
import warnings

from .. import _progress
from ..errors import CLIError, ReportWarning, TraceWarning, UsageError
from . import attach, diff, discover, events, merge, report, run

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = {"run": run, "report": report, "merge": merge, "diff": diff, "events": events,
            "discover": discover, "attach": attach}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="hyprof", description="Profile Python programs: every call (deterministic) or "
                                   "sampled, with wall and CPU time.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, command in COMMANDS.items():
        command.configure(sub.add_parser(name, help=command.HELP, description=command.HELP))
    return parser


# The commands that show their progress on a terminal (hyprof/_progress.py):
# those that read and write traces and reports, not those that run a
# program, whose output is the program's.
_PROGRESS = ("report", "merge", "diff")


def main(argv=None):
    """The ``hyprof`` console entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    show = warnings.showwarning

    def show_trace_warning(message, category, *rest, **kw):
        # A cut-short trace is the user's input, not hyprof's code: one
        # line without a source location.
        _progress.clear()
        if issubclass(category, (TraceWarning, ReportWarning)):
            sys.stderr.write("hyprof %s: warning: %s\n" % (args.command, message))
        else:
            show(message, category, *rest, **kw)

    warnings.showwarning = show_trace_warning
    try:
        if args.command in _PROGRESS:
            with _progress.task(args.command):
                return COMMANDS[args.command].run(args)
        return COMMANDS[args.command].run(args)
    except CLIError as e:
        sys.stderr.write("hyprof %s: error: %s\n" % (args.command, e))
        return 2 if isinstance(e, UsageError) else 1
    except BrokenPipeError:
        return 0
    finally:
        warnings.showwarning = show
