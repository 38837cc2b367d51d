"""pytest plugin: profile a test run, and budgets of calls and SQL queries.

Registered as the ``hyprof`` plugin (entry point in the ``pytest11`` group)
when hyprof is installed; from a build tree, load it with
``-p hyprof.pytest_plugin``.

- ``pytest --hyprof`` profiles each test function (deterministic by
  default, ``--hyprof-mode sampling``) and prints the slowest functions of
  the whole run at the end; ``--hyprof-dir DIR`` saves one trace per test.
- The ``hyprof_budget`` fixture fails a test that calls a function, or runs
  SQL queries, more often than its budget, numbers that do not depend on the
  machine's speed::

      def test_listing(client, hyprof_budget):
          with hyprof_budget(max_calls={"shop.pricing.convert": 50}, max_queries=3):
              client.get("/products/")
"""

import functools
import importlib
import inspect
import os
import re
import sys
import types

import pytest

MODES = ("deterministic", "sampling")

# The sampling rate of --hyprof-mode sampling: tests are short, and at the
# sampling mode's 100 Hz a test of a few milliseconds would get no sample.
SAMPLING_FREQUENCY = 1000

# The --hyprof profiler of the running test, which a budget pauses: hyprof
# runs one profiler at a time.
_run_profiler = None


def pytest_addoption(parser):
    group = parser.getgroup("hyprof", "profiling with hyprof")
    group.addoption("--hyprof", action="store_true", default=False,
                    help="profile each test and print the slowest functions of the run")
    group.addoption("--hyprof-mode", default="deterministic", choices=MODES,
                    help="profiler mode for --hyprof (default: deterministic)")
    group.addoption("--hyprof-dir", default=None, metavar="DIR",
                    help="save one trace per test in DIR (implies --hyprof)")
    group.addoption("--hyprof-top", type=int, default=15, metavar="N",
                    help="how many functions the summary lists (default: 15)")
    group.addoption("--hyprof-frequency", type=float, default=None, metavar="HZ",
                    help="--hyprof-mode sampling: samples per second of CPU time (default: "
                         f"{SAMPLING_FREQUENCY}, so that a test of a few milliseconds is "
                         "sampled)")


def pytest_configure(config):
    opt = config.option
    if not (opt.hyprof or opt.hyprof_dir):
        return
    if opt.hyprof_top < 1:
        raise pytest.UsageError(f"--hyprof-top must be at least 1, got {opt.hyprof_top}")
    if opt.hyprof_frequency is not None:
        if opt.hyprof_mode != "sampling":
            raise pytest.UsageError("--hyprof-frequency sets the sampling rate of "
                                    "--hyprof-mode sampling; the deterministic mode records "
                                    "every call")
        if not 1 <= opt.hyprof_frequency <= 100000:  # NaN fails too
            raise pytest.UsageError(f"--hyprof-frequency must be from 1 to 100000 samples "
                                    f"per second, got {opt.hyprof_frequency}")
    if opt.hyprof_dir:
        if os.path.exists(opt.hyprof_dir) and not os.path.isdir(opt.hyprof_dir):
            raise pytest.UsageError(f"--hyprof-dir {opt.hyprof_dir!r} exists and is not "
                                    "a directory")
        # Traces hold command lines and paths: a directory hyprof makes is
        # the user's alone (one that exists keeps its mode).
        os.makedirs(opt.hyprof_dir, mode=0o700, exist_ok=True)
    config.pluginmanager.register(
        RunProfiler(opt.hyprof_mode, opt.hyprof_dir, opt.hyprof_top,
                    opt.hyprof_frequency or SAMPLING_FREQUENCY), "hyprof-run-profiler")


def _trace_file_name(nodeid):
    """A file name for a test id: readable, no path separators, unique
    enough (the id's characters are kept where safe)."""
    name = re.sub(r"[^A-Za-z0-9_.\[\]-]+", "_", nodeid.replace("::", "__")).strip("._")
    if len(name) > 180:
        import hashlib

        name = name[:160] + "-" + hashlib.sha1(nodeid.encode()).hexdigest()[:12]
    return name + ".hyprof"


class RunProfiler:
    """Profiles each test call and adds up the functions over the run."""

    def __init__(self, mode, directory, top, frequency=None):
        self.mode = mode
        self.options = {"frequency": frequency or SAMPLING_FREQUENCY} \
            if mode == "sampling" else {}
        self.directory = directory
        self.top = top
        self.totals = {}      # (name, filename, lineno) -> [calls, own, cum]
        self.tests = 0
        self.saved = 0
        self.errors = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem):
        """Profiles the test function itself, not pytest's hooks around it:
        the function is swapped for one that runs it inside the profiler."""
        import hyprof

        item = pyfuncitem
        try:
            profiler = hyprof.Profiler(mode=self.mode, **self.options)
        except hyprof.ProfilerError as e:
            self.errors.append(f"{item.nodeid}: not profiled: {e}")
            yield
            return
        _hide_own_code(profiler)
        original = item.obj
        if inspect.iscoroutinefunction(original) or not callable(original):
            # Run by another plugin (pytest-asyncio...): profile its hook.
            yield from self._around(item, profiler)
            return

        @functools.wraps(original)
        def profiled(*args, **kwargs):
            # A sample stops at this frame: the profile is the test's.
            if not self._start(item, profiler, sys._getframe()):
                return original(*args, **kwargs)
            try:
                return original(*args, **kwargs)
            finally:
                # stop() first: it hides itself, so the plugin's own code
                # after the test stays out of the profile.
                try:
                    profiler.stop()
                except hyprof.ProfilerError:
                    pass  # a budget's block failed to resume it
                self._stop(profiler)
                self._collect(item, profiler)

        item.obj = profiled
        try:
            yield
        finally:
            item.obj = original

    def _around(self, item, profiler):
        if not self._start(item, profiler):
            yield
            return
        try:
            yield
        finally:
            self._stop(profiler)
            self._collect(item, profiler)

    def _start(self, item, profiler, frame=None):
        global _run_profiler
        import hyprof

        try:
            if frame is not None:
                profiler._start_below(frame)
            else:
                profiler.start()
        except hyprof.ProfilerError as e:
            # Another profiler is running (the test's own, or a debugger's):
            # leave the test alone rather than fail it.
            self.errors.append(f"{item.nodeid}: not profiled: {e}")
            return False
        _run_profiler = profiler
        return True

    @staticmethod
    def _stop(profiler):
        global _run_profiler
        import hyprof

        _run_profiler = None
        try:
            profiler.stop()
        except hyprof.ProfilerError:
            pass  # stopped already, or a budget's block failed to resume it

    def _collect(self, item, profiler):
        """Adds a test's profile to the run's totals and saves its trace; a
        failure here is reported in the summary, never fails the test."""
        try:
            self._add(item, profiler)
        except Exception as e:  # noqa: BLE001 -- whatever it is, the test's outcome stands
            self.errors.append(f"{item.nodeid}: profile lost: {type(e).__name__}: {e}")

    def _add(self, item, profiler):
        self.tests += 1
        trace = profiler.trace()
        sampling = trace.mode == "sampling"
        for f in trace.functions():
            key = (f.name, f.filename, f.lineno)
            row = self.totals.setdefault(key, [0, 0.0, 0.0])
            if sampling:
                row[1] += f.own_samples
                row[2] += f.cum_samples
            else:
                row[0] += f.calls
                row[1] += f.wall_own
                row[2] += f.wall_cum
        if self.directory:
            path = os.path.join(self.directory, _trace_file_name(item.nodeid))
            try:
                profiler.write(path)
                self.saved += 1
            except (OSError, ValueError) as e:
                self.errors.append(f"{item.nodeid}: cannot save {path}: {e}")

    def pytest_terminal_summary(self, terminalreporter):
        tr = terminalreporter
        tr.write_sep("=", f"hyprof: slowest functions of the run ({self.mode})")
        for err in self.errors:
            tr.write_line(err)
        if not self.totals:
            why = ""
            if self.mode == "sampling" and self.tests:
                why = (f": no sample was taken, at {self.options['frequency']:g} samples per "
                       "second of CPU time; tests that run shorter than a sampling period, or "
                       "wait without using the CPU, have none (a higher --hyprof-frequency, "
                       "or the deterministic mode, records them)")
            tr.write_line(f"no function was recorded in {self.tests} profiled "
                          f"test{'' if self.tests == 1 else 's'}{why}")
            return
        rows = sorted(self.totals.items(), key=lambda kv: kv[1][1], reverse=True)[:self.top]
        if self.mode == "sampling":
            tr.write_line(f"{'own samples':>12} {'cum samples':>12}  function")
            for (name, filename, lineno), (_, own, cum) in rows:
                tr.write_line(f"{own:>12.0f} {cum:>12.0f}  {_where(name, filename, lineno)}")
        else:
            tr.write_line(f"{'calls':>9} {'own s':>10} {'cum s':>10}  function")
            for (name, filename, lineno), (calls, own, cum) in rows:
                tr.write_line(f"{calls:>9} {own:>10.6f} {cum:>10.6f}  "
                              f"{_where(name, filename, lineno)}")
        summary = f"{self.tests} tests profiled"
        if self.directory:
            summary += f", {self.saved} traces saved in {self.directory}"
        tr.write_line(summary)


def _where(name, filename, lineno):
    if filename and lineno:
        return f"{name} ({os.path.basename(filename)}:{lineno})"
    return name


# ---------------------------------------------------------------- budgets

class BudgetError(Exception):
    """A budget that names something that cannot be found or counted."""


class _Target:
    """A function named in max_calls, resolved before the block runs so that
    a typo fails loudly instead of counting zero calls."""

    def __init__(self, spec):
        __tracebackhide__ = True  # a typo's message, not the plugin's frames
        self.spec = spec
        obj = spec if callable(spec) or _unwrap_descriptor(spec) is not spec \
            else _import_dotted(spec)
        obj = _unwrap_descriptor(obj)                 # properties, cached properties
        obj = getattr(obj, "__func__", obj)           # bound, class and static methods
        obj = getattr(obj, "__wrapped__", obj) if not hasattr(obj, "__code__") else obj
        code = getattr(obj, "__code__", None)
        self.label = spec if isinstance(spec, str) else _callable_name(obj)
        if code is not None:
            self.filename = code.co_filename
            self.lineno = code.co_firstlineno
            self.qualname = getattr(code, "co_qualname", code.co_name)
            self.builtin_names = ()
        else:
            # A C function: no code object; the profiler names it as
            # cProfile does, which depends on what it is bound to.
            self.filename = None
            self.lineno = None
            name = getattr(obj, "__name__", str(spec))
            self.qualname = getattr(obj, "__qualname__", name)
            owner = getattr(obj, "__objclass__", None)       # list.append, str.join
            bound = getattr(obj, "__self__", None)
            names = set()
            if owner is not None:
                names.add(f"<method '{name}' of '{owner.__name__}' objects>")
            elif isinstance(bound, types.ModuleType):      # len, math.sqrt
                names.add(f"<built-in method {bound.__name__}.{name}>")
            elif isinstance(bound, type):                    # dict.fromkeys
                names.add(f"<built-in method {name}>")
            elif bound is not None:                          # "".join
                names.add(f"<method '{name}' of '{type(bound).__name__}' objects>")
            if not names:
                raise BudgetError(f"hyprof_budget: {spec!r} is neither a Python function nor "
                                  "a C function the profiler can name")
            self.builtin_names = tuple(names)

    def matches(self, f):
        if self.filename is not None:
            return f.filename == self.filename and (f.lineno == self.lineno or
                                                    f.name == self.qualname)
        return f.name in self.builtin_names


def _unwrap_descriptor(obj):
    """The function a descriptor runs when the attribute is read or called:
    a property's getter, a cached_property's function, the function of a
    classmethod or staticmethod met in a class's __dict__; obj otherwise."""
    if isinstance(obj, property):
        if obj.fget is None:
            raise BudgetError("hyprof_budget: a property without a getter has no calls to "
                              "count")
        return obj.fget
    if isinstance(obj, functools.cached_property):
        return obj.func
    if isinstance(obj, (classmethod, staticmethod)):
        return obj.__func__
    return obj


def _callable_name(obj):
    mod = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))
    return f"{mod}.{qual}" if mod else qual


def _import_dotted(path):
    __tracebackhide__ = True
    if not isinstance(path, str) or not path or path.startswith(".") or ".." in path:
        raise BudgetError(f"hyprof_budget: {path!r} is not a dotted path to a function "
                          "(e.g. 'package.module.function' or 'module.Class.method')")
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        modname = ".".join(parts[:i])
        try:
            obj = importlib.import_module(modname)
        except ImportError:
            continue
        for attr in parts[i:]:
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                raise BudgetError(f"hyprof_budget: cannot find {path!r}: {_callable_name(obj)} "
                                  f"has no attribute {attr!r}") from None
        return obj
    raise BudgetError(f"hyprof_budget: cannot find {path!r}: no module of that path can be "
                      "imported")


class _PausedInit(type):
    """Budget's metaclass: the --hyprof profiler of the test pauses while a
    budget is made (its names are resolved then, imports included), so that
    none of that is in the test's profile."""

    def __call__(cls, *args, **kwargs):
        __tracebackhide__ = True
        # A sampling profile would start over at a pause: there, samples in
        # this path go to the test's frame that called it (_hide_own_code).
        paused = _pause_run_profiler(deterministic_only=True)
        try:
            return super().__call__(*args, **kwargs)
        finally:
            if paused is not None:
                paused.start()


class Budget(metaclass=_PausedInit):
    """``with hyprof_budget(max_calls={...}, max_queries=N) as b:``; after
    the block, ``b.calls`` maps each name to its count and ``b.queries`` is
    the number of SQL queries (None when not counted)."""

    def __init__(self, max_calls=None, max_queries=None):
        __tracebackhide__ = True
        if max_calls is None and max_queries is None:
            raise BudgetError("hyprof_budget: give max_calls={'module.function': N} and/or "
                              "max_queries=N")
        max_calls = dict(max_calls or {})
        for name, limit in max_calls.items():
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise BudgetError(f"hyprof_budget: the budget of {name!r} must be a whole "
                                  f"number >= 0, got {limit!r}")
        if max_queries is not None and (isinstance(max_queries, bool) or
                                        not isinstance(max_queries, int) or max_queries < 0):
            raise BudgetError(f"hyprof_budget: max_queries must be a whole number >= 0, "
                              f"got {max_queries!r}")
        self.targets = []
        for name, limit in max_calls.items():  # a loop: no comprehension frame in a traceback
            self.targets.append((_Target(name), limit))
        self.max_queries = max_queries
        self.calls = {}
        self.queries = None
        self.query_log = None
        self._profiler = None

    def __enter__(self):
        # Under --hyprof, the test's profiler pauses for the block, before
        # anything else: this method and what it calls stay out of the
        # test's profile (the stop drops them, _hide_own_code).
        self._paused = _pause_run_profiler(deterministic_only=not self.targets)
        try:
            if self.max_queries is not None:
                self._queries_cm = _query_counter()
                self.query_log = self._queries_cm.__enter__()
            if self.targets:
                import hyprof

                try:
                    self._profiler = hyprof.Profiler(mode="deterministic", builtins=True)
                    self._profiler.start()
                except BaseException:
                    if self.max_queries is not None:
                        self._queries_cm.__exit__(None, None, None)
                    raise
        except BaseException:
            self._resume()
            raise
        if not self.targets:
            # Nothing of the budget's runs in the block: the test's profiler
            # records it.
            self._resume()
        return self

    def _resume(self):
        paused, self._paused = getattr(self, "_paused", None), None
        if paused is not None:
            paused.start()

    def __exit__(self, exc_type, exc, tb):
        self._paused = self._paused or _pause_run_profiler(deterministic_only=True)
        failure = None
        try:
            failure = self._check(exc_type)
        finally:
            # The test's profiler resumes last, so the budget's own work is
            # not in the test's profile.
            self._resume()
        if failure is not None:
            raise failure
        return False

    def _check(self, exc_type):
        """The budget's verdict: None, or the pytest failure to raise."""
        if self._profiler is not None:
            self._profiler.stop()
        if self.max_queries is not None:
            self._queries_cm.__exit__(None, None, None)
            self.queries = self.query_log.count
        if self._profiler is not None:
            functions = self._profiler.trace().functions()
            for target, _ in self.targets:
                self.calls[target.label] = sum(f.calls for f in functions if target.matches(f))
        if exc_type is not None:
            return None
        problems = []
        for target, limit in self.targets:
            n = self.calls[target.label]
            if n > limit:
                problems.append(f"{target.label} was called {n} times, budget {limit}")
        if self.max_queries is not None and self.queries > self.max_queries:
            lines = [f"{self.queries} SQL queries ran, budget {self.max_queries}:"]
            for rec in self.query_log.as_records()[:10]:
                lines.append(f"    {rec['calls']} x {rec['sql']}")
            problems.append("\n".join(lines))
        if problems:
            return pytest.fail.Exception("hyprof_budget exceeded: " + "; ".join(problems),
                                         pytrace=False)
        return None


def _pause_run_profiler(deterministic_only=False):
    """Stops the --hyprof profiler of the running test, if it runs; returns
    it (to start again), or None."""
    paused = _run_profiler
    if paused is None or not paused._engine.running or \
            (deterministic_only and paused.mode != "deterministic"):
        return None
    paused.stop()
    return paused


def _hide_own_code(profiler):
    """The plugin's own frames that the --hyprof profiler may see, at the top
    of the stack when it stops or pauses: the stop drops them."""
    codes = (RunProfiler._start.__code__, RunProfiler._stop.__code__,
             Budget.__enter__.__code__, Budget.__exit__.__code__,
             _PausedInit.__call__.__code__, _pause_run_profiler.__code__)
    # A test run by another plugin (a coroutine) is profiled from the hook
    # wrappers, which the profiler sees resumed after the test: they leave
    # the tree at stop with what they call.
    wrappers = (RunProfiler.pytest_pyfunc_call.__code__, RunProfiler._around.__code__)
    hide = getattr(profiler._engine, "hide", None)
    if hide is not None:
        from .profiler import _STOP_PATH
        hide(_STOP_PATH + codes)
        profiler._engine.omit(wrappers, ())
    else:
        from .sampling import hide_code
        hide_code(*codes, *wrappers)


def _query_counter():
    try:
        from django.conf import settings
    except ImportError:
        raise BudgetError("hyprof_budget: max_queries counts Django's SQL queries, and "
                          "Django is not installed") from None
    if not settings.configured:
        raise BudgetError("hyprof_budget: max_queries counts Django's SQL queries, and "
                          "Django's settings are not configured")
    # The SQL capture alone: Django's database layer, not its request
    # handling (a project's tests may not even have a URLconf).
    from hyprof.contrib.django_sql import capture_queries

    return capture_queries()


@pytest.fixture
def hyprof_budget():
    """Returns Budget: ``with hyprof_budget(max_calls={"mod.func": 10},
    max_queries=3): ...`` fails the test naming each function or the query
    count over its budget."""
    return Budget
