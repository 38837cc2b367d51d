"""``hyprof run``: profiles a program and writes its trace.

    python -m hyprof run [-o OUT] script.py [args...]
    python -m hyprof run [-o OUT] -m module [args...]
    python -m hyprof run --serve [HOST:]PORT script.py [args...]

The program gets the ``sys.argv``, ``__main__`` and ``sys.path[0]`` it
would have without hyprof, and the command exits with the program's own
status: SystemExit's code, or 1 after printing an uncaught exception's
traceback. The trace is written however the program ends (returning,
sys.exit, an exception, os._exit, SIGTERM), then a table of its most
expensive functions is printed unless -q.

With --serve (or HYPROF_SERVE=[HOST:]PORT in the environment) the program
runs under the continuous profiler (hyprof.continuous) and its pprof
endpoints (hyprof.serve) while it runs; the URL is printed to stderr unless
-q, and a trace is written at the end only with -o (docs/continuous.md).
"""

import argparse
import os
import shlex
import sys
import traceback
import types

from .. import continuous, serve
from .. import render as _render
from ..errors import CLIError, ProfilerError, UsageError
from ..profiler import _STOP_PATH, Profiler
from ..render import text as _text
from ..sampling import hide_code
from . import files, report
from .options import address, nonneg_int, ranged

# Options of one mode only, with their defaults: giving one in the other
# mode is a usage error, not an option silently ignored.
_SAMPLING_ONLY = {"event": None, "frequency": None, "period": None, "clock": None,
                  "depth": None, "signal": None, "memory": False, "memory_only": False,
                  "memory_interval": None, "lock_interval": None,
                  "exception_interval": None}
_DETERMINISTIC_ONLY = {"builtins": True, "engine": "auto"}


HELP = "profile a Python program and write its trace"


def configure(p):
    p.add_argument("-o", "--output", metavar="OUT",
                   help="trace file to write (default, in the current directory: "
                        "<program>.hyprof, <program>-sampling.hyprof with --mode sampling, "
                        "<program>-memory.hyprof with --memory-only)")
    p.add_argument("-m", dest="module", action="store_true",
                   help="run a library module as a script, like python -m")
    p.add_argument("--mode", default=None, choices=("deterministic", "sampling"),
                   help="deterministic (every call, the default) or sampling (the default "
                        "with --serve, which needs it)")
    p.add_argument("--no-builtins", dest="builtins", action="store_false",
                   help="leave C functions (builtins, methods of C types) out")
    p.add_argument("--engine", default="auto", choices=("auto", "setprofile", "monitoring"),
                   help="how calls are received (deterministic mode; default: the fastest "
                        "this Python has)")
    p.add_argument("--locks", action="store_true",
                   help="also profile lock contention: threading.Lock, RLock and what uses "
                        "them (docs/locks.md); deterministic: every contended wait, sampling: "
                        "sampled waits and holds")
    p.add_argument("--exceptions", action="store_true",
                   help="also count exceptions raised, by type and by the stack that raised "
                        "them (Python 3.12+; docs/exceptions.md)")
    g = p.add_argument_group("sampling mode (--mode sampling; see docs/sampling.md)")
    g.add_argument("--event", default=None,
                   help="the event that triggers samples: cycles, instructions, cpu-clock, "
                        "task-clock, a PMU's own name (python -m hyprof events lists them); "
                        "default: the best that works here")
    g.add_argument("--frequency", type=ranged(float, 1, 20000, "a number"), default=None,
                   metavar="HZ",
                   help="samples per second of each thread (default 100)")
    g.add_argument("--period", type=ranged(int, 1, 1 << 62, "an integer"), default=None,
                   help="events between samples (nanoseconds for clocks), instead of "
                        "--frequency")
    g.add_argument("--clock", choices=("cpu", "wall"), default=None,
                   help="cpu: sample running threads; wall: also waiting ones (I/O, locks, "
                        "sleep)")
    g.add_argument("--depth", type=ranged(int, 1, 512, "an integer"), default=None,
                   help="frames kept per sample (default 128)")
    g.add_argument("--signal", type=int, default=None, metavar="SIGNO",
                   help="the signal number that carries samples (default SIGPROF)")
    g.add_argument("--memory", action="store_true",
                   help="also sample allocations and record the live heap (docs/memory.md)")
    g.add_argument("--memory-only", action="store_true",
                   help="sample allocations alone, without CPU samples")
    g.add_argument("--memory-interval", type=ranged(int, 1, 1 << 40, "a number of bytes"),
                   default=None, metavar="BYTES",
                   help="mean bytes allocated between allocation samples (default 524288)")
    g.add_argument("--lock-interval", type=ranged(float, 1e-6, 60, "a number of seconds"),
                   default=None, metavar="SECONDS",
                   help="with --locks: mean seconds of lock waits (and of holds) between lock "
                        "samples (default 0.001)")
    g.add_argument("--exception-interval", type=ranged(int, 1, 1 << 30, "an integer"),
                   default=None, metavar="N",
                   help="with --exceptions: sample one exception in N on average (default 1: "
                        "every one)")
    g = p.add_argument_group("serving pprof while the program runs (docs/continuous.md)")
    g.add_argument("--serve", type=address, default=None, metavar="[HOST:]PORT",
                   help="sample the program with the continuous profiler and serve its pprof "
                        "endpoints (/debug/pprof/profile?seconds=N) there; HOST defaults to "
                        "127.0.0.1, PORT 0 picks a free port; also HYPROF_SERVE. A trace is "
                        "written only with -o. The token is read from HYPROF_SERVE_TOKEN")
    g.add_argument("--serve-allow-remote", action="store_true",
                   help="allow a --serve address that is not loopback (e.g. 0.0.0.0:6060); "
                        "also HYPROF_SERVE_ALLOW_REMOTE=1")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="do not print the report after the run (nor, with --serve, the URL)")
    p.add_argument("--format", choices=("tree", "text"), default="tree",
                   help="the report printed after the run: tree (the call tree and the top "
                        "functions, the default) or text (the table)")
    p.add_argument("--sort", default="cum", choices=_text.SORTS,
                   help="text: the table's order (default: cum)")
    p.add_argument("--limit", type=nonneg_int, default=None,
                   help="text: table rows (default 15); tree: functions listed after the "
                        "tree (default 10)")
    report.add_tree_view_options(p)
    p.add_argument("program", nargs="?", help="the script (or, with -m, the module) to run")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the program's arguments")


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _env_flag(name):
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UsageError("%s=%r must be 1 or 0 (or true/false, yes/no, on/off)"
                     % (name, os.environ[name]))


def _serve_request(args):
    """What --serve or HYPROF_SERVE asks for, checked before the program
    runs: {"address", "allow_remote", "token"}, or None."""
    addr, source = args.serve, "--serve"
    if addr is None:
        env = os.environ.get("HYPROF_SERVE", "").strip()
        if env:
            try:
                addr = serve.parse_address(env)
            except ProfilerError as e:
                raise UsageError("HYPROF_SERVE=%r: %s" % (env, e)) from None
            source = "HYPROF_SERVE"
    if addr is None:
        if args.serve_allow_remote:
            raise UsageError("--serve-allow-remote goes with --serve (or HYPROF_SERVE)")
        return None
    allow = args.serve_allow_remote or _env_flag("HYPROF_SERVE_ALLOW_REMOTE")
    if args.mode == "deterministic":
        raise UsageError("%s serves the continuous profiler, which samples: it goes with "
                         "--mode sampling (the default with it), not --mode deterministic"
                         % source)
    try:
        token = serve.check_token(os.environ.get("HYPROF_SERVE_TOKEN") or None)
        serve.check_address(addr, allow)
    except ProfilerError as e:
        raise UsageError("%s: %s" % (source, e)) from None
    return {"address": addr, "allow_remote": allow, "token": token}


def _continuous_options(opts):
    """The ContinuousProfiler options of the sampling options given."""
    if opts.get("period") is not None:
        raise UsageError("--period does not go with --serve: the continuous profiler takes "
                         "--frequency")
    if opts.get("memory_only"):
        raise UsageError("--memory-only does not go with --serve: the continuous profiler "
                         "samples CPU or wall time, and with --memory allocations beside")
    out = {k: opts[k] for k in ("event", "frequency", "clock", "depth", "signal", "locks",
                                "lock_interval", "exceptions", "exception_interval")
           if opts.get(k) is not None}
    if opts.get("memory"):
        out["memory"] = True
        if opts.get("memory_interval") is not None:
            out["memory_interval"] = opts["memory_interval"]
    return out


def _profiler_options(args):
    other = _SAMPLING_ONLY if args.mode == "deterministic" else _DETERMINISTIC_ONLY
    for dest, default in other.items():
        if getattr(args, dest) != default:
            flag = "--no-builtins" if dest == "builtins" else "--" + dest.replace("_", "-")
            raise UsageError("%s is an option of --mode %s, not of --mode %s" % (
                flag, "deterministic" if args.mode == "sampling" else "sampling", args.mode))
    if args.mode == "deterministic":
        return {"builtins": args.builtins, "engine": args.engine, "locks": args.locks,
                "exceptions": args.exceptions}
    if args.period is not None and args.frequency is not None:
        raise UsageError("give --period or --frequency, not both")
    opts = {"event": args.event, "frequency": args.frequency, "period": args.period,
            "clock": args.clock or "cpu", "depth": args.depth or 128, "signal": args.signal}
    if args.memory or args.memory_only:
        opts.update(memory=True, memory_only=args.memory_only)
        if args.memory_interval is not None:
            opts["memory_interval"] = args.memory_interval
    elif args.memory_interval is not None:
        raise UsageError("--memory-interval needs --memory or --memory-only")
    # The collectors beside the sampler, each with its interval option.
    for flag, interval in (("locks", "lock_interval"), ("exceptions", "exception_interval")):
        given = getattr(args, interval)
        if getattr(args, flag):
            if args.memory_only:
                raise UsageError("--%s does not go with --memory-only, which samples "
                                 "allocations alone; use --memory" % flag)
            opts[flag] = True
            if given is not None:
                opts[interval] = given
        elif given is not None:
            raise UsageError("--%s needs --%s" % (interval.replace("_", "-"), flag))
    return opts


def _default_output(args):
    """PROGRAM.hyprof for the deterministic mode, PROGRAM-sampling.hyprof
    and PROGRAM-memory.hyprof for the others: a sampling run next to a
    deterministic one keeps both traces."""
    stem = args.program.rsplit(".", 1)[-1] if args.module else \
        os.path.splitext(os.path.basename(args.program))[0]
    kind = "" if args.mode == "deterministic" else \
        "-memory" if getattr(args, "memory_only", False) else "-sampling"
    return "%s%s.hyprof" % (stem or "hyprof", kind)


def _prepare_script(path, argv):
    """Compiles the script and makes the __main__ module it runs in."""
    try:
        with open(path, "rb") as f:
            source = f.read()
    except FileNotFoundError:
        raise CLIError("cannot run %r: no such file" % path) from None
    except OSError as e:
        raise CLIError("cannot run %r: %s" % (path, e.strerror or e)) from None
    try:
        code = compile(source, path, "exec")
    except (SyntaxError, ValueError) as e:
        # Python's own account of the error, without hyprof's frames; 3.11
        # raises ValueError for null bytes, 3.12 SyntaxError.
        sys.stderr.write("".join(traceback.format_exception_only(type(e), e)))
        raise CLIError("cannot run %r: it is not valid Python" % path) from None
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = __builtins__
    main.__cached__ = None
    main.__loader__ = None
    main.__spec__ = None
    sys.argv[:] = [path] + argv
    sys.path[0] = os.path.dirname(os.path.abspath(path))
    return code, main


class _ModuleError(ImportError):
    """runpy's reason why a module cannot run."""


def _prepare_module(name, argv):
    """Finds the module's code and makes the __main__ module it runs in, as
    python -m does (runpy._run_module_as_main), before the profiler starts:
    the program is its code alone, without runpy's frames around it. The
    import of its parent packages happens here, unprofiled, as does the
    script's compilation."""
    import importlib.util
    import runpy
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as e:
        raise CLIError("cannot run module %r: %s" % (name, e)) from None
    if spec is None:
        raise CLIError("cannot run module %r: no module of that name" % name)
    if spec.submodule_search_locations is not None:
        try:
            main_spec = importlib.util.find_spec(name + ".__main__")
        except (ImportError, ValueError):
            main_spec = None
        if main_spec is None:
            raise CLIError("cannot run module %r: it is a package without a __main__ module"
                           % name)
    sys.argv[:] = [name] + argv
    sys.path[0] = os.getcwd()
    try:
        _, spec, code = runpy._get_module_details(name, _ModuleError)
    except _ModuleError as e:
        raise CLIError("cannot run module %r: %s" % (name, e)) from None
    except Exception as e:  # noqa: BLE001 -- a parent package failed to import
        sys.stderr.write("".join(traceback.format_exception(type(e), e, e.__traceback__)))
        raise CLIError("cannot run module %r: importing it failed" % name) from None
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=spec.origin, __cached__=spec.cached if spec.has_location
                         else None, __loader__=spec.loader, __package__=spec.parent,
                         __spec__=spec, __builtins__=__builtins__)
    sys.argv[0] = spec.origin
    return code, main


def _finish(profiler, args, out, status):
    """Writes, reports; returns the exit status."""
    if out is None:
        return status  # --serve without -o: the profile was served
    try:
        files.write_trace(out, profiler.write)
    except CLIError as e:
        # The program's own status stands: a failed write only adds 1 to 0.
        sys.stderr.write("hyprof: %s\n" % e)
        return status or 1
    if not args.quiet:
        trace = profiler.trace()
        if args.format == "text":
            text = _render.render(trace, "text", sort=args.sort,
                                  limit=15 if args.limit is None else args.limit)
        else:
            opts = report.tree_view(args, sys.stderr)
            if args.limit is not None:
                opts["top"] = args.limit
            text = _render.render(trace, "tree", **opts)
        sys.stderr.write("\n%s" % text)
        sys.stderr.write("hyprof: trace written to %s (%s report %s)\n"
                         % (out, launcher(), shlex.quote(out)))
    return status


class _Served:
    """hyprof run --serve: the continuous profiler and its endpoint, in the
    place of the Profiler of a plain run (the same start, stop, write and
    trace)."""

    def __init__(self, args, request, options):
        self.args = args
        self.request = request
        try:
            self.profiler = continuous.ContinuousProfiler(**options)
        except ProfilerError as e:
            raise UsageError(str(e)) from None
        self.server = None
        self._trace = None
        self._engine = self  # what _exit_writing_trace looks at

    @property
    def running(self):
        return self.profiler.running

    def _start_below(self, frame):
        # The port first: a taken one stops the run before the program starts.
        r = self.request
        self.server = serve.start(r["address"], token=r["token"],
                                  allow_remote=r["allow_remote"], profiler=self.profiler)
        try:
            continuous._start_current(self.profiler, frame)
        except BaseException:
            self.server.stop()
            raise
        if not self.args.quiet:
            sys.stderr.write("hyprof: serving pprof on %s (pid %d; go tool pprof "
                             "%sprofile?seconds=30)\n" % (self.server.url, os.getpid(),
                                                          self.server.url))
            sys.stderr.flush()
        return self

    def stop(self):
        # Profiles being collected end with the profiler, with what they have.
        try:
            if self.profiler.running:
                self.profiler.stop()
        finally:
            if self.server is not None:
                self.server.stop()
        if self.args.output is not None:
            self._trace = self.profiler.take()
        return self

    def write(self, path):
        self._trace.write(path)

    def trace(self):
        return self._trace


class _Terminated(SystemExit):
    """SIGTERM while the program runs (timeout, docker stop, kill)."""


def _catch_sigterm():
    """Makes SIGTERM, whose default kills the process before the trace is
    written, end the program like sys.exit; returns the previous handler,
    or None if the program's own handler stays. A second SIGTERM kills at
    once, and forked children keep the default."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None

    def on_term(signo, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise _Terminated(128 + signo)

    def in_child():
        if signal.getsignal(signal.SIGTERM) is on_term:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, on_term)
    os.register_at_fork(after_in_child=in_child)
    return signal.SIG_DFL


def _exit_writing_trace(profiler, args, out, real_exit):
    """The program's os._exit: it skips finally blocks and atexit, so the
    trace is written first; only in this process, as a forked child that
    leaves through os._exit (multiprocessing's do) has no trace to write."""
    here = [True]
    os.register_at_fork(after_in_child=lambda: here.clear())

    def _exit(status):
        # No calls before stop(), which would show in the profile.
        if here and profiler._engine.running:
            try:
                profiler.stop()
                status = _finish(profiler, args, out, status)
            except Exception as e:  # noqa: BLE001 -- the program's exit must happen
                sys.stderr.write("hyprof run: error: cannot write the trace at os._exit: %s\n"
                                 % (e,))
                status = status or 1
        real_exit(status)

    hide = getattr(profiler._engine, "hide", None)
    if hide is not None:
        hide(_STOP_PATH + (_exit.__code__,))
    hide_code(_exit.__code__)
    return _exit


def _print_program_exception():
    """The program's own exception, shown as Python shows it: without
    hyprof's frames (the ones of this file at the bottom of the stack)."""
    etype, value, tb = sys.exc_info()
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    traceback.print_exception(etype, value, tb)


def launcher():
    """How the person ran hyprof, for the commands it suggests: the build
    tree's pyrun (which says so in HYPROF_LAUNCHER), the console script, or
    python -m hyprof."""
    env = os.environ.get("HYPROF_LAUNCHER")
    if env:
        return env
    if os.path.basename(sys.argv[0] or "") == "hyprof":
        return "hyprof"
    return "python -m hyprof"


def run(args):
    if args.program is None:
        raise UsageError("give the program to run: hyprof run [OPTIONS] script.py [ARGS...], "
                         "or hyprof run [OPTIONS] -m module [ARGS...]")
    # Options and the output path are checked before the program runs, so
    # a long run is not lost to a typo.
    served = _serve_request(args)
    if not args.quiet and args.format == "tree":
        report.tree_view(args, sys.stderr)  # --hide with --show-all, refused now
    if args.mode is None:
        args.mode = "sampling" if served is not None else "deterministic"
    opts = _profiler_options(args)
    if served is not None:
        out = args.output
        profiler = _Served(args, served, _continuous_options(opts))
        # The program and its children do not need the endpoint's secret.
        os.environ.pop("HYPROF_SERVE_TOKEN", None)
    else:
        out = args.output or _default_output(args)
        if args.mode == "sampling" and not args.memory_only and \
                (not os.path.exists(out) or os.path.isfile(out)):
            # Streamed to its place as it runs: a program killed outright
            # (SIGKILL, the OOM killer) still leaves the samples flushed so
            # far, which load as a truncated trace. (Allocation samples alone
            # are kept in memory and written at the end.)
            opts["output"] = out
        try:
            profiler = Profiler(mode=args.mode, **opts)
        except ProfilerError as e:
            # The constructor only checks option values: a usage error.
            raise UsageError(str(e)) from None
    if out is not None:
        files.check_trace_output(out)
        if not args.module and os.path.isfile(out) and os.path.isfile(args.program) and \
                os.path.samefile(out, args.program):
            raise UsageError("-o %s would overwrite the program with its trace" % out)
    saved_argv, saved_path0 = sys.argv[:], sys.path[0] if sys.path else None
    saved_main = sys.modules.get("__main__")
    if args.module:
        code, main = _prepare_module(args.program, args.args)
    else:
        code, main = _prepare_script(args.program, args.args)
    sys.modules["__main__"] = main
    # The program's code called as a function of its module's namespace (a
    # module's code runs in its globals, as with exec, but without exec's
    # frame): the first call the profile records is the program's own
    # <module>, and a sample stops at this frame.
    program = types.FunctionType(code, main.__dict__)
    status = 0
    terminated = False
    real_exit = os._exit
    os._exit = _exit_writing_trace(profiler, args, out, real_exit)
    term_handler = _catch_sigterm()
    try:
        profiler._start_below(sys._getframe())
        try:
            program()
        finally:
            profiler.stop()
    except SystemExit as e:
        terminated = isinstance(e, _Terminated)
        code_ = e.code
        if code_ is None:
            status = 0
        elif isinstance(code_, int):
            status = code_
        else:
            sys.stderr.write("%s\n" % (code_,))
            status = 1
    except KeyboardInterrupt:
        _print_program_exception()
        status = 130
    except ProfilerError as e:
        raise CLIError(str(e)) from None
    except BaseException:
        _print_program_exception()
        status = 1
    finally:
        os._exit = real_exit
        if term_handler is not None:
            import signal
            signal.signal(signal.SIGTERM, term_handler)
        sys.argv[:] = saved_argv
        if saved_path0 is not None:
            sys.path[0] = saved_path0
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
    status = _finish(profiler, args, out, status)
    if terminated:
        # Dies of the signal as it would have without hyprof, so that a
        # parent sees the same status.
        import signal
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGTERM)
    return status


# The served run's paths into and out of the profiler run below the root
# frame, in the program's thread: they are hyprof's.
hide_code(_Served._start_below.__code__, _Served.stop.__code__)
