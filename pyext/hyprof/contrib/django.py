"""Django integration: profile one request on demand, or a share of requests
in production.

Add ``"hyprof.contrib.django.ProfilerMiddleware"`` first in ``MIDDLEWARE``.

- Development: append ``?profile`` to a URL (or send the header
  ``X-Hyprof: 1``). A browser gets the HTML report of that request instead of
  the page; an API client (``Accept: application/json``, or the header) gets
  the normal response, a ``Server-Timing`` entry and an ``X-Hyprof-Trace``
  header naming the saved trace. Only allowed clients can do this: with
  ``DEBUG`` on and the client in ``INTERNAL_IPS``, or a superuser, unless
  ``HYPROF_SHOW_CALLBACK`` says otherwise. Anyone else gets the normal
  response and no trace of the profiler.
- Production: ``HYPROF_SAMPLE_RATE = 0.01`` profiles one request in a hundred
  in the sampling mode and saves its trace in ``HYPROF_PROFILE_DIR``.

A request's profile follows the request, not a thread: the middleware marks
the request's context (a ``ContextVar``), which asyncio tasks and
``sync_to_async`` threads inherit, and the profiler records only the work done
in that context. So concurrent requests, in threads or in tasks, are profiled
at the same time, each in its own profile with only its own work, and an async
view's own functions, its tasks and its ORM calls in worker threads all land
in its profile. (A profile in the sampling mode runs alone in the process:
other sampled requests are then not sampled, and triggered ones wait.)

SQL queries run during a profiled request appear in the profile as functions
named ``SQL: SELECT ...`` (the statement, normalised), called where the ORM
ran them, with their number of calls and their time. The capture is
hyprof.contrib.django_sql (``capture_queries`` and ``normalize_sql`` are
also importable from here); this module holds the settings, the profile of
one request (_Run), the gate that lets sampling profiles run alone (_Slot)
and the middleware.

Settings (all optional, read at each request so ``override_settings`` works):

========================  ===============================================
``HYPROF_TRIGGER_PARAM``  URL argument that asks for a profile ("profile")
``HYPROF_TRIGGER_HEADER`` header that asks for one ("X-Hyprof")
``HYPROF_MODE``           mode of triggered profiles ("deterministic")
``HYPROF_SAMPLE_RATE``    share of requests profiled in production (0)
``HYPROF_SAMPLE_MODE``    mode of those profiles ("sampling")
``HYPROF_PROFILE_DIR``    where traces are saved (a private per-user directory)
``HYPROF_SHOW_CALLBACK``  callable(request) -> bool, or its dotted path
``HYPROF_OPTIONS``        extra Profiler() arguments per mode, e.g.
                          ``{"sampling": {"frequency": 250}}`` (sampled
                          requests default to 1000 samples per second)
``HYPROF_SQL``            capture SQL queries (True)
``HYPROF_WAIT``           seconds a triggered request waits for a profile
                          in the sampling mode (which runs alone in the
                          process) to end (10); deterministic profiles of
                          concurrent requests run at the same time
========================  ===============================================
"""

import asyncio
import contextvars
import datetime
import functools
import html
import itertools
import logging
import os
import random
import re
import sys
import threading
import time
import types

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.http import HttpResponse
from django.utils.module_loading import import_string

import hyprof
from hyprof import _files, sampling
from hyprof.contrib import django_sql
from hyprof.contrib._middleware import Middleware
from hyprof.contrib.django_sql import (SQL_NAME_LIMIT, QueryLog, capture_queries,
                                       install_sql_capture, normalize_sql)
from hyprof.profiler import _STOP_PATH

__all__ = ["SQL_NAME_LIMIT", "ProfilerMiddleware", "QueryLog", "capture_queries", "is_superuser",
           "normalize_sql"]

log = logging.getLogger("hyprof.django")

MODES = ("deterministic", "sampling")
SAMPLE_FREQUENCY = 1000   # samples per second of CPU, for sampled requests
DEFAULTS = {
    "HYPROF_TRIGGER_PARAM": "profile",
    "HYPROF_TRIGGER_HEADER": "X-Hyprof",
    "HYPROF_MODE": "deterministic",
    "HYPROF_SAMPLE_RATE": 0,
    "HYPROF_SAMPLE_MODE": "sampling",
    "HYPROF_PROFILE_DIR": None,
    "HYPROF_SHOW_CALLBACK": None,
    "HYPROF_OPTIONS": None,
    "HYPROF_SQL": True,
    "HYPROF_WAIT": 10,
}

# The request being profiled in this context (a _Run). A context variable,
# not a thread-local: asyncio tasks and sync_to_async threads inherit it (as
# they do the query logs of hyprof.contrib.django_sql).
_ACTIVE = contextvars.ContextVar("hyprof_django_request", default=None)


def _setting(name):
    return getattr(settings, name, DEFAULTS[name])


# ---------------------------------------------------------------- settings

def _sample_rate():
    rate = _setting("HYPROF_SAMPLE_RATE")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ImproperlyConfigured(
            f"HYPROF_SAMPLE_RATE must be a number from 0 to 1 (a share of requests), "
            f"got {rate!r}")
    return float(rate)


def _mode_setting(name):
    mode = _setting(name)
    if mode not in MODES:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(map(repr, MODES))}, "
                                   f"got {mode!r}")
    return mode


def _profile_dir():
    d = _setting("HYPROF_PROFILE_DIR")
    if d is None:
        # Per user and private: traces hold paths, argv and SQL shapes.
        return _files.private_subdir("django")
    if not isinstance(d, (str, os.PathLike)) or not str(d):
        raise ImproperlyConfigured(f"HYPROF_PROFILE_DIR must be a directory path, got {d!r}")
    return os.fspath(d)


def _show_callback():
    return _callback_setting("HYPROF_SHOW_CALLBACK")


def _callback_setting(name):
    """The callable that setting name holds (taking the request), imported
    when it is a dotted path; None when unset."""
    cb = getattr(settings, name, None)
    if cb is None:
        return None
    if isinstance(cb, str):
        try:
            cb = import_string(cb)
        except ImportError as e:
            raise ImproperlyConfigured(f"{name} {cb!r} cannot be imported: {e}") from e
    if not callable(cb):
        raise ImproperlyConfigured(f"{name} must be a callable taking the request, or its "
                                   f"dotted path, got {cb!r}")
    return cb


def _profiler_options(mode):
    opts = _setting("HYPROF_OPTIONS") or {}
    if not isinstance(opts, dict) or not all(k in MODES and isinstance(v, dict)
                                             for k, v in opts.items()):
        raise ImproperlyConfigured(
            "HYPROF_OPTIONS must map a mode ('deterministic' or 'sampling') to a dict of "
            f"hyprof.Profiler() arguments, got {opts!r}")
    return dict(opts.get(mode, {}))


def _check_profiler_options():
    """Makes (without starting) a profiler with each mode's options, so a
    bad one stops the server at start rather than skip every profile."""
    for mode in MODES:
        opts = _profiler_options(mode)
        if not opts:
            continue
        if "context" in opts:
            raise ImproperlyConfigured(f"HYPROF_OPTIONS[{mode!r}] cannot set 'context': the "
                                       "middleware sets it to follow each request")
        try:
            hyprof.Profiler(mode=mode, **opts)
        except hyprof.ProfilerError as e:
            raise ImproperlyConfigured(f"HYPROF_OPTIONS[{mode!r}]: {e}") from e


# ---------------------------------------------------------------- profiling one request

_seq = itertools.count(1)
_random = random.Random()


def _safe_name(s):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("._")[:100] or "view"


def _view_name(request):
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unresolved"
    func = getattr(match.func, "view_class", match.func)
    return _safe_name(f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', '')}")


class _Run:
    """The profile of one request, from the middleware to the end of its
    response body."""

    def __init__(self, mode, output, options, request):
        self.mode = mode
        self.output = output          # "html", "api" or "sample"
        self.options = options
        self.request = request
        self.queries = QueryLog()
        self.profiler = None
        self.trace_path = None
        self.error = None
        self.seconds = None           # from start to stop, once stopped
        self._lock = threading.Lock()
        self._stopped = False
        # A deterministic profile follows this request's context and runs
        # beside the others; a sampling one runs alone (see _Slot).
        self.alone = mode != "deterministic"

    # The context marks: set while the request's own code runs. The
    # variable the deterministic profiler follows is set last and reset
    # first, by calls it does not see (a C call made through a partial), so
    # that no call of the middleware's starts inside the request's context
    # and ends outside it (it would stay open, and the request's later calls
    # would nest under it).
    def enter(self):
        """Marks the request's context; returns the tokens for _leave()."""
        sinks = self.queries.activate() if _setting("HYPROF_SQL") else None
        return _set_active(self), sinks

    def start(self, frame):
        """Starts the profiler, the slot already held, for the request that
        frame (the middleware's) runs. ProfilerError when another profiler
        (not the middleware's) is running: the slot is then released and the
        request goes on unprofiled."""
        self.t0 = time.perf_counter()
        self.started = datetime.datetime.now(datetime.UTC)
        try:
            if self.mode == "deterministic":
                # Only the calls made in this request's context count.
                self.profiler = hyprof.Profiler(mode=self.mode, context=(_ACTIVE, self),
                                                **self.options)
            else:
                options = dict(self.options)
                if "period" not in options:
                    # A request lasts milliseconds: sample every millisecond
                    # of CPU, not at the default 100 Hz, or most get nothing.
                    options.setdefault("frequency", SAMPLE_FREQUENCY)
                self.profiler = hyprof.Profiler(mode=self.mode, **options)
            _leave_out_own_code(self.profiler)
            # A sample stops at the middleware's frame: the server's frames
            # around it are not the request's.
            self.profiler._start_below(frame)
        except BaseException:
            self.profiler = None
            with self._lock:
                self._stopped = True
            _SLOT.release(self.alone)
            raise

    def leave_frame(self):
        """The middleware's frame returns while the profile goes on (a
        streaming body): samples no longer stop there."""
        if self.profiler is not None and getattr(self.profiler._engine, "root", None) \
                is not None:
            sampling.end_scope(self.profiler._engine)

    def stop(self):
        """Stops the profiler and frees the slot; True the first time,
        False after (safe to call twice, from any thread)."""
        with self._lock:
            if self._stopped:
                return False
            self._stopped = True
        self.seconds = time.perf_counter() - self.t0
        try:
            self.profiler.stop()
        except Exception as e:  # e.g. out of memory while profiling: say so, serve on
            self.error = e
            log.exception("hyprof: the profile of %s %s failed", self.request.method,
                          self.request.path)
        finally:
            _SLOT.release(self.alone)
        return True

    def trace_name(self):
        stamp = self.started.strftime("%Y%m%dT%H%M%S.%f")
        return f"{_view_name(self.request)}-{stamp}-{os.getpid()}-{next(_seq)}.hyprof"

    def reserve_path(self):
        """Chooses the file the trace will be saved to: from the view, the
        time and the process, never from request data."""
        if self.trace_path is None:
            self.trace_path = os.path.join(_profile_dir(), self.trace_name())
        return self.trace_path

    def save(self):
        path = self.reserve_path()
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            self.profiler.write(path)
        except Exception as e:  # the user's response matters more than the trace
            self.error = e
            log.exception("hyprof: cannot save the trace of %s %s to %s",
                          self.request.method, self.request.path, path)
            return None
        return path

    def server_timing(self, seconds=None):
        """The Server-Timing entry: the request's duration as the report
        shows it (seconds), else as measured at the profiler's stop, else so
        far (a streamed body still running)."""
        if seconds is None:
            seconds = self.seconds if self.seconds is not None else \
                time.perf_counter() - self.t0
        # Milliseconds to the nanosecond: the duration the report shows, not
        # one rounded to the microsecond beside it.
        parts = [f'hyprof;dur={seconds * 1e3:.6f};desc="profiled ({self.mode})"']
        if _setting("HYPROF_SQL"):
            parts.append(f'sql;dur={self.queries.seconds * 1e3:.3f};'
                         f'desc="{self.queries.count} queries"')
        return ", ".join(parts)

    def shown_seconds(self, trace):
        """The one duration a request's report shows, in its title, its
        flame graph and its Server-Timing: a deterministic profile's wall
        time of the request's calls (the flame graph's whole), else the time
        from the profiler's start to its stop."""
        if trace.mode == "deterministic":
            # The flame graph's whole is every call's own wall time added up
            # (whole nanoseconds); the calls' measured cumulative time can
            # differ from it by some ns, enough to round to another us.
            wall = sum(f.own.get("wall_own", 0) for f in trace.functions()) * 1e-9
            if wall > 0:
                return wall
        return self.seconds


class _Slot:
    """Deterministic profiles, each bound to its request's context, run side
    by side: any number of requests hold the slot together. A sampling
    profile does not follow a context and runs alone in the process, so it
    holds the slot alone: a triggered one waits up to HYPROF_WAIT seconds
    for the profiles before it, a sampled one is simply not sampled while
    anything is profiled, and a deterministic one waits for a sampling one.
    Unprofiled requests never wait. A plain lock, not an asyncio one: the
    holders may be threads or tasks of any event loop."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._shared = 0      # deterministic profiles running
        self._alone = False   # a sampling profile running

    def _take(self, alone):
        if self._alone or (alone and self._shared):
            return False
        if alone:
            self._alone = True
        else:
            self._shared += 1
        return True

    def acquire(self, alone, timeout):
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._take(alone):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    async def aacquire(self, alone, timeout):
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            with self._cond:
                if self._take(alone):
                    return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def release(self, alone):
        with self._cond:
            if alone:
                self._alone = False
            else:
                self._shared -= 1
            self._cond.notify_all()


_SLOT = _Slot()


def _add_header(response, name, value):
    old = response.get(name)
    response[name] = f"{old}, {value}" if old else value


# The wrappers below are left out of the request's profile (_OMIT) and call
# no C function of their own (len(), next()) that would show in it: they
# use the methods, which the profilers do not record.

def _drain(content):
    """Consumes a streaming body inside the profile, discarding it; returns
    the number of bytes."""
    n = 0
    for chunk in content:
        n += chunk.__len__()
    return n


async def _adrain(content):
    n = 0
    async for chunk in content:
        n += chunk.__len__()
    return n


def _wrap_stream(run, content, finish):
    """Yields the body as the server sends it, marking the context around
    each chunk's production, and finishes the profile when the body is
    consumed or closed."""
    it = iter(content)
    try:
        while True:
            tokens = run.enter()
            try:
                chunk = it.__next__()
            except StopIteration:
                return
            finally:
                _leave(tokens)
                _reset_active(tokens[0])
            yield chunk
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
        finish(run)


async def _awrap_stream(run, content, finish):
    it = content.__aiter__()
    try:
        while True:
            tokens = run.enter()
            try:
                chunk = await it.__anext__()
            except StopAsyncIteration:
                return
            finally:
                _leave(tokens)
                _reset_active(tokens[0])
            yield chunk
    finally:
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()
        finish(run)


_set_active = functools.partial(_ACTIVE.set)
_reset_active = functools.partial(_ACTIVE.reset)


def _leave(tokens):
    """Ends what _Run.enter() began, but the profiled variable (reset after
    this returns, with _reset_active)."""
    if tokens[1] is not None:
        QueryLog.deactivate(tokens[1])


class ProfilerMiddleware(Middleware):
    """Profiles the requests that ask for it (and may), and a share of the
    others when HYPROF_SAMPLE_RATE is set. See the module documentation."""

    def __init__(self, get_response):
        super().__init__(get_response)
        # Validate now, so a bad setting stops the server at start.
        rate = _sample_rate()
        _mode_setting("HYPROF_MODE")
        _mode_setting("HYPROF_SAMPLE_MODE")
        callback = _show_callback()
        _profile_dir()
        _wait()
        _check_profiler_options()
        if rate == 0 and not settings.DEBUG and callback is None:
            # No trigger is possible: leave the chain and cost nothing.
            # (Superusers of a production site need HYPROF_SHOW_CALLBACK =
            # "hyprof.contrib.django.is_superuser".)
            raise MiddlewareNotUsed("hyprof: HYPROF_SAMPLE_RATE is 0, DEBUG is off and "
                                    "there is no HYPROF_SHOW_CALLBACK")
        if _setting("HYPROF_SQL"):
            install_sql_capture()

    # -------------------------------------------------------- decisions
    def _trigger(self, request):
        """The mode asked for by the request, "" for the default mode, or None
        when it asks for nothing."""
        param = _setting("HYPROF_TRIGGER_PARAM")
        header = _setting("HYPROF_TRIGGER_HEADER")
        if header:
            value = request.headers.get(header)
            if value is not None:
                return value.strip().lower()
        if param and param in request.GET:
            return request.GET.get(param, "").strip().lower()
        return None

    def _allowed_fast(self, request):
        """True or False when known without the database, None when it
        depends on whether the user is a superuser."""
        callback = _show_callback()
        if callback is not None:
            return None
        if settings.DEBUG and request.META.get("REMOTE_ADDR") in settings.INTERNAL_IPS:
            return True
        return None if _auth_installed() else False

    def _allowed_slow(self, request):
        callback = _show_callback()
        if callback is not None:
            return bool(callback(request))
        return is_superuser(request)

    def _plan(self, trigger, request):
        """(mode, output) of the profile to take, a HttpResponse for a bad
        trigger, or None."""
        if trigger is not None:
            if trigger in ("", "1", "true", "yes", "on"):
                mode = _mode_setting("HYPROF_MODE")
            elif trigger in MODES:
                mode = trigger
            else:
                return HttpResponse(
                    f"hyprof: unknown profile mode {trigger!r}; use one of "
                    f"{', '.join(MODES)}, or no value for the default\n",
                    status=400, content_type="text/plain; charset=utf-8")
            api = (_setting("HYPROF_TRIGGER_HEADER") and
                   request.headers.get(_setting("HYPROF_TRIGGER_HEADER")) is not None) or \
                _wants_json(request)
            return mode, "api" if api else "html"
        rate = _sample_rate()
        if rate > 0 and _random.random() < rate:
            return _mode_setting("HYPROF_SAMPLE_MODE"), "sample"
        return None

    def _decide(self, request):
        trigger = self._trigger(request)
        if trigger is not None:
            ok = self._allowed_fast(request)
            if ok is None:
                ok = self._allowed_slow(request)
            if not ok:
                trigger = None
        return self._plan(trigger, request)

    async def _adecide(self, request):
        trigger = self._trigger(request)
        if trigger is not None:
            ok = self._allowed_fast(request)
            if ok is None:
                ok = await sync_to_async(self._allowed_slow)(request)
            if not ok:
                trigger = None
        return self._plan(trigger, request)

    # -------------------------------------------------------- the request
    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        plan = self._decide(request)
        if plan is None:
            return self.get_response(request)
        if isinstance(plan, HttpResponse):
            return plan
        run = _Run(plan[0], plan[1], _profiler_options(plan[0]), request)
        if not _SLOT.acquire(run.alone, 0 if run.output == "sample" else _wait()):
            return self._skipped(run, self.get_response(request), _BUSY)
        tokens = run.enter()
        try:
            try:
                run.start(sys._getframe())
            except hyprof.ProfilerError as e:
                return self._skipped(run, self.get_response(request), str(e))
            response = self.get_response(request)
            if run.output == "html" and response.streaming:
                if getattr(response, "is_async", False):
                    async_to_sync(_adrain)(response.streaming_content)
                else:
                    _drain(response.streaming_content)
        except BaseException:
            run.stop()
            raise
        finally:
            _leave(tokens)
            _reset_active(tokens[0])
        try:
            return self._finish(run, request, response)
        finally:
            run.leave_frame()

    async def __acall__(self, request):
        plan = await self._adecide(request)
        if plan is None:
            return await self.get_response(request)
        if isinstance(plan, HttpResponse):
            return plan
        run = _Run(plan[0], plan[1], _profiler_options(plan[0]), request)
        if not await _SLOT.aacquire(run.alone, 0 if run.output == "sample" else _wait()):
            return self._skipped(run, await self.get_response(request), _BUSY)
        tokens = run.enter()
        try:
            try:
                run.start(sys._getframe())
            except hyprof.ProfilerError as e:
                return self._skipped(run, await self.get_response(request), str(e))
            response = await self.get_response(request)
            if run.output == "html" and response.streaming:
                if getattr(response, "is_async", False):
                    await _adrain(response.streaming_content)
                else:
                    # A sync body may use the ORM: not on the event loop.
                    await sync_to_async(_drain)(response.streaming_content)
        except BaseException:
            run.stop()
            raise
        finally:
            _leave(tokens)
            _reset_active(tokens[0])
        # Writing the trace or rendering the report blocks: not on the loop.
        try:
            return await sync_to_async(self._finish, thread_sensitive=False)(run, request,
                                                                             response)
        finally:
            run.leave_frame()

    def _finish(self, run, request, response):
        if run.output == "html":
            run.stop()
            return self._report(run, request, response)
        if response.streaming:
            run.reserve_path()
            if getattr(response, "is_async", False):
                response.streaming_content = _awrap_stream(run, response.streaming_content,
                                                           self._save)
            else:
                response.streaming_content = _wrap_stream(run, response.streaming_content,
                                                          self._save)
        elif run.stop():
            run.save()
        if run.output == "api":
            response["X-Hyprof-Trace"] = run.reserve_path()
            _add_header(response, "Server-Timing", run.server_timing())
        return response

    @staticmethod
    def _save(run):
        if run.stop():
            run.save()

    @staticmethod
    def _skipped(run, response, why):
        """The normal response of a request that could not be profiled; a
        client that asked is told why."""
        if run.output != "sample":
            response["X-Hyprof-Skipped"] = why.replace("\n", " ")[:300]
        return response

    def _report(self, run, request, response):
        shown = None
        try:
            trace = run.profiler.trace()
            shown = run.shown_seconds(trace)
            body = _render_html(trace, run, request, response, shown)
        except Exception as e:
            log.exception("hyprof: cannot render the profile of %s %s",
                          request.method, request.path)
            body = ("<!doctype html><title>hyprof</title><h1>hyprof could not render this "
                    f"profile</h1><pre>{html.escape(repr(e))}</pre>")
        out = HttpResponse(body, content_type="text/html; charset=utf-8")
        out["X-Hyprof-Status"] = str(response.status_code)
        _add_header(out, "Server-Timing", run.server_timing(shown))
        response.close()
        return out


def _render_html(trace, run, request, response, seconds):
    from hyprof import render
    from hyprof.render import _model

    title = (f"hyprof: {request.method} {request.path} -> {response.status_code}, "
             f"{_model.format_value(round(seconds * 1e9), 'ns')}, {run.queries.count} SQL queries "
             f"({run.queries.seconds * 1e3:.1f} ms)")
    return render.render(trace, "html", title=title)


_BUSY = "another request of this process is being profiled in the sampling mode"


def _wait():
    wait = _setting("HYPROF_WAIT")
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait < 0:
        raise ImproperlyConfigured(f"HYPROF_WAIT must be a number of seconds >= 0, got {wait!r}")
    return float(wait)


def _wants_json(request):
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def _auth_installed():
    from django.apps import apps

    return apps.is_installed("django.contrib.auth")


def _user_of(request):
    """The request's user: request.user when authentication already ran,
    else the user of the session cookie, loaded as AuthenticationMiddleware
    would; None when there is none."""
    if not _auth_installed():
        return None
    user = getattr(request, "user", None)
    if user is not None:
        return user
    from django.apps import apps
    from django.contrib import auth

    session = getattr(request, "session", None)
    if session is None:
        if not apps.is_installed("django.contrib.sessions"):
            return None
        key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        if not key:
            return None
        from importlib import import_module

        session = import_module(settings.SESSION_ENGINE).SessionStore(key)
    return auth.get_user(types.SimpleNamespace(session=session, META=request.META))



def is_superuser(request):
    """A HYPROF_SHOW_CALLBACK for production: only active superusers may
    profile, whatever DEBUG and INTERNAL_IPS say."""
    user = _user_of(request)
    return bool(user is not None and getattr(user, "is_active", False)
                and getattr(user, "is_superuser", False))


# hyprof's own code that a request's profile leaves out (docs/django.md):
# what the middleware runs inside the request's profile, with what it calls
# ("cut"), and the wrappers that call the request's code through ("skip").
_OMIT_CUT = (_Run.start, _Run.stop, _Run.enter, _leave, _Run.leave_frame,
             ProfilerMiddleware._finish, ProfilerMiddleware._save) + django_sql.OMIT_CUT
_OMIT_SKIP = (_drain, _adrain, _wrap_stream, _awrap_stream) + django_sql.OMIT_SKIP


def _leave_out_own_code(profiler):
    cut = tuple(f.__code__ for f in _OMIT_CUT)
    skip = tuple(f.__code__ for f in _OMIT_SKIP)
    engine = profiler._engine
    if hasattr(engine, "omit"):
        engine.hide(_STOP_PATH + (_Run.stop.__code__,))
        engine.omit(cut, skip)
    else:
        sampling.hide_code(*cut)
        sampling.hide_code(*skip, callees=False)
