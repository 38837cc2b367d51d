"""pprof over HTTP, as Go's net/http/pprof serves it: the endpoints that
``go tool pprof``, Parca's ``scrape_configs`` and Grafana Alloy's
``pyroscope.scrape`` pull (docs/continuous.md).

    import hyprof.serve
    server = hyprof.serve.start("127.0.0.1:6060")    # or port 0: a free port
    print(server.url)           # http://127.0.0.1:6060/debug/pprof/
    ...
    server.stop()

The server runs on the standard library's ThreadingHTTPServer, in threads
of its own, over a continuous profiler (hyprof.continuous): the one given,
the process's running one, or one it starts (and stops with itself).

- ``/debug/pprof/`` an index of what is served;
- ``/debug/pprof/profile?seconds=N`` the CPU samples (wall time with
  clock="wall") of the next N seconds (default 30), ``collect(N)``;
- ``/debug/pprof/recent?seconds=N`` those of about the last N seconds,
  from the ticks kept, at once (``recent(N)``);
- ``/debug/pprof/hyprof?seconds=N`` the same window as ``profile`` as a
  hyprof trace (``recent=1``: as ``recent``), what ``hyprof attach`` reads:
  labels, threads and lines as the trace format keeps them;
- ``/debug/pprof/allocs`` the sampled allocations since start (with
  ``seconds=N``: of the next N seconds) and ``/debug/pprof/heap`` the live
  heap (``gc=1`` collects garbage first), for a profiler started with
  memory=True (``ContinuousProfiler.memory()``); else 501 saying how.

Each profile is a gzipped pprof protobuf (hyprof.render.pprof) with the
window's start (time_nanos), its length (duration_nanos) and the sampling
period. It binds loopback only unless allow_remote=True, and with ``token``
answers only requests carrying ``Authorization: Bearer <token>``.

The endpoints' logic (``Endpoints``) knows nothing of the server: the
Django views of hyprof.contrib.django_pprof answer through it too.
"""

import _thread
import atexit
import collections
import gc
import hmac
import html
import http.server
import ipaddress
import json
import logging
import math
import os
import re
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

from . import _files, _hyprof, _scope, continuous
from .errors import ProfilerError
from .render import pprof as _pprof

__all__ = ["DEFAULT_ADDRESS", "DEFAULT_SECONDS", "Endpoints", "Response", "Server",
           "authorized", "check_address", "check_token", "parse_address", "start",
           "unauthorized"]

log = logging.getLogger("hyprof.serve")

DEFAULT_ADDRESS = "127.0.0.1:6060"
DEFAULT_HOST = "127.0.0.1"
# What Go serves when seconds is not given.
DEFAULT_SECONDS = 30
PREFIX = "/debug/pprof/"
# Scrapes that may wait for their seconds at once; the next gets 429.
MAX_COLLECTS = 8
# Connections served at once; more are closed unanswered.
MAX_CONNECTIONS = 32

_TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")
_NUMBER_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")

Response = collections.namedtuple("Response", "status body content_type headers")
Response.__doc__ = """One answer of the endpoints: the HTTP status, the body (bytes), its
Content-Type and the other headers as (name, value) pairs."""

_PROFILE_HEADERS = (("Content-Disposition", 'attachment; filename="profile"'),
                    ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store"))
_TRACE_HEADERS = (("Content-Disposition", 'attachment; filename="profile.hyprof"'),
                  ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store"))
# The media type of a hyprof trace (docs/FORMAT.md).
TRACE_TYPE = "application/vnd.hyprof"

# Go's index, for what hyprof serves: (name, link, description).
_INDEX = (
    ("profile", "profile?seconds=30",
     "CPU profile (wall time for a profiler with clock='wall') of the next N seconds, "
     "given by the seconds argument (default 30). Download it, then run "
     "go tool pprof on the file."),
    ("recent", "recent?seconds=60",
     "the samples of about the last N seconds, from what the continuous profiler keeps "
     "(retain), at once."),
    ("hyprof", "hyprof?seconds=30",
     "the next N seconds as a hyprof trace (recent=1: the last N seconds, at once), "
     "which python -m hyprof attach PID reads."),
    ("allocs", "allocs",
     "the sampled allocations since the profiler started (seconds=N: those of the next N "
     "seconds), by call path, and the live heap; needs memory=True."),
    ("heap", "heap", "the live heap: sampled blocks still allocated, by the call path that "
     "allocated them (gc=1: after a garbage collection); needs memory=True."),
)

_MEMORY_TEXT = (
    "this continuous profiler samples no allocations, so there is no {name} profile: start "
    "it with memory=True (hyprof.serve.start(memory=True), python -m hyprof run --serve ADDR "
    "--memory, or HYPROF_SERVE_MEMORY=1 beside HYPROF_SERVE). Scrapers of a process without "
    "it should leave this endpoint out (Parca: memory: enabled: false; Grafana Alloy: "
    "profile.memory {{ enabled = false }}).\n")


def _text(status, message, headers=()):
    """A plain-text answer; X-Go-Pprof makes go tool pprof print it as the
    error, as Go's own endpoints do."""
    return Response(status, message.encode("utf-8"), "text/plain; charset=utf-8",
                    (("X-Go-Pprof", "1"), ("X-Content-Type-Options", "nosniff"))
                    + tuple(headers))


# ---------------------------------------------------------------- the endpoints

class Endpoints:
    """What each path under /debug/pprof/ answers, without the HTTP server.

    profiler: the ContinuousProfiler to serve; None serves the process's
      running one (hyprof.continuous.current()), looked up at each request,
      and ``start_options`` (a dict of ContinuousProfiler options), when
      given, starts one at the first request that finds none (a pre-fork
      server's worker then samples itself).
    max_seconds: the longest window asked for (default and at most: the
      profiler's retain, which is what it keeps).
    """

    def __init__(self, profiler=None, max_seconds=None, start_options=None,
                 max_collects=MAX_COLLECTS):
        if profiler is not None and not isinstance(profiler, continuous.ContinuousProfiler):
            raise ProfilerError(f"profiler={profiler!r} must be a "
                                "hyprof.continuous.ContinuousProfiler")
        if max_seconds is not None:
            max_seconds = _positive("max_seconds", max_seconds)
            if profiler is not None and max_seconds > profiler.retain:
                raise ProfilerError(
                    f"max_seconds={max_seconds:g} is more than the profiler keeps: its "
                    f"retain is {profiler.retain:g} s; start it with a larger retain=")
        self.profiler = profiler
        self.max_seconds = max_seconds
        self.start_options = dict(start_options) if start_options is not None else None
        self._collects = threading.BoundedSemaphore(max_collects)
        self._max_collects = max_collects
        self._start_lock = threading.Lock()

    def names(self):
        return [name for name, _, _ in _INDEX]

    def respond(self, name, query, method="GET"):
        """The Response for ``method`` /debug/pprof/<name> with the query
        arguments (a mapping of name to its first value). Never raises: a
        failure is a 500 whose text names no internals, and one line in the
        log. (A HEAD gets the headers of a GET, without waiting for a
        profile; the caller sends no body.)"""
        if method not in ("GET", "HEAD"):
            return _text(405, "only GET is served here\n", (("Allow", "GET, HEAD"),))
        if method == "HEAD" and name in ("profile", "recent"):
            return Response(200, b"", "application/octet-stream", _PROFILE_HEADERS)
        if method == "HEAD" and name == "hyprof":
            return Response(200, b"", TRACE_TYPE, _TRACE_HEADERS)
        try:
            if name == "":
                return self._index()
            if name == "profile":
                return self._profile(query)
            if name == "recent":
                return self._recent(query)
            if name == "hyprof":
                return self._hyprof(query)
            if name in ("allocs", "heap"):
                return self._memory(name, query)
            return _text(404, f"unknown profile {name[:60]!r}: this server has "
                              f"{', '.join(self.names())} ({PREFIX} lists them)\n")
        except Exception as e:  # noqa: BLE001 -- the client gets a status, the log a line
            log.error("hyprof.serve: %s%s failed: %s: %s", PREFIX, name, type(e).__name__,
                      str(e).replace("\n", " ")[:300])
            return _text(500, "hyprof could not make this profile; the server's log "
                              "(logger hyprof.serve) says why\n")

    # ------------------------------------------------------------ profiles

    def _profiler(self):
        """The profiler to serve, or a 503 Response saying how to get one."""
        p = self.profiler
        if p is None:
            p = continuous.current()
            if p is None and self.start_options is not None:
                with self._start_lock:
                    p = continuous.current()
                    if p is None:
                        p = continuous.start(**self.start_options)
        if p is None or not p.running:
            return _text(503, "no continuous profiler runs in this process: start one with "
                              "hyprof.continuous.start() (or run the program with python -m "
                              "hyprof run --serve, or set HYPROF_SERVE)\n")
        return p

    def _limit(self, p):
        return min(self.max_seconds or p.retain, p.retain)

    def _seconds(self, query, p, default):
        """(seconds, None) from the query, or (None, a 400 Response)."""
        limit = self._limit(p)
        why = (f"at most {limit:g} s: the continuous profiler keeps {p.retain:g} s (retain)"
               if limit >= p.retain else f"at most {limit:g} s, this server's max_seconds")
        raw = query.get("seconds")
        if raw is None or raw == "":
            return (min(default, limit) if default is not None else None), None
        if not _NUMBER_RE.match(raw.strip()):
            return None, _text(400, f"seconds={raw[:40]!r} is not a number of seconds: give "
                                    f"a positive number in digits (such as 30 or 2.5), "
                                    f"{why}\n")
        seconds = float(raw)
        if not 0 < seconds <= limit or not math.isfinite(seconds):
            return None, _text(400, f"seconds={raw[:40]} is out of range: give more than "
                                    f"0, {why}\n")
        return seconds, None

    def _profile(self, query):
        return self._window(query, DEFAULT_SECONDS, self._collect)

    def _recent(self, query):
        return self._window(query, None, lambda p, seconds: p.recent(seconds))

    def _hyprof(self, query):
        recent = query.get("recent", "0")
        if recent not in ("0", "1"):
            return _text(400, f"recent={recent[:40]!r}: give recent=1 for the last seconds "
                              "at once, or leave it out for the next seconds\n")
        if recent == "1":
            return self._window(query, None, lambda p, seconds: p.recent(seconds),
                                self._trace)
        return self._window(query, DEFAULT_SECONDS, self._collect, self._trace)

    def _memory(self, name, query):
        """allocs and heap: one snapshot of the allocation collector, whose
        pprof's default sample type is the allocated bytes or the live ones."""
        p = self._profiler()
        if isinstance(p, Response):
            return p
        if not p.memory_enabled:
            return _text(501, _MEMORY_TEXT.format(name=name))
        gc_ = query.get("gc", "0")
        if gc_ not in ("0", "1"):
            return _text(400, f"gc={gc_[:40]!r}: give gc=1 to collect garbage first, or leave "
                              "it out\n")
        if gc_ == "1":
            gc.collect()
        metric = "alloc_bytes" if name == "allocs" else "live_bytes"
        if query.get("seconds") in (None, ""):
            trace = p.memory()
        else:
            seconds, bad = self._seconds(query, p, None)
            if bad is not None:
                return bad
            trace = self._collect(p, seconds, take=p.memory)
            if isinstance(trace, Response):
                return trace
        return Response(200, _pprof.render(trace, metric=metric), "application/octet-stream",
                        _PROFILE_HEADERS)

    def _window(self, query, default, take, encode=None):
        """The pprof (or encode(trace)) of take(profiler, seconds), or the
        Response that says why there is none."""
        p = self._profiler()
        if isinstance(p, Response):
            return p
        seconds, bad = self._seconds(query, p, default)
        if bad is not None:
            return bad
        try:
            trace = take(p, seconds)
        except ProfilerError as e:
            # The profiler stopped before the window began.
            return _text(503, f"no profile: {e}\n")
        if isinstance(trace, Response):
            return trace
        return (encode or self._pprof)(trace)

    def _collect(self, p, seconds, take=None):
        """(take or p.collect)(seconds), or a 429 beyond the scrapes that may
        wait at once."""
        if not self._collects.acquire(blocking=False):
            return _text(429, f"{self._max_collects} profiles are being collected at once, "
                              "the most this server runs; try again when one ends\n",
                         (("Retry-After", str(max(1, int(seconds)))),))
        try:
            return (take or p.collect)(seconds)
        finally:
            self._collects.release()

    @staticmethod
    def _pprof(trace):
        return Response(200, _pprof.render(trace), "application/octet-stream",
                        _PROFILE_HEADERS)

    @staticmethod
    def _trace(trace):
        return Response(200, trace.to_bytes(), TRACE_TYPE, _TRACE_HEADERS)

    def _index(self):
        p = self.profiler if self.profiler is not None else continuous.current()
        rows = "".join(
            f'<tr><td><a href="{html.escape(link)}">{html.escape(name)}</a></td>'
            f"<td>{html.escape(text)}</td></tr>\n" for name, link, text in _INDEX)
        if p is not None and p.running:
            info = p.info or {}
            state = (f"continuous profiler: {html.escape(str(info.get('trigger')))} "
                     f"{html.escape(str(info.get('event')))} at "
                     f"{html.escape(str(info.get('frequency')))} Hz, keeps "
                     f"{p.retain:g} s; at most {self._limit(p):g} s per profile")
        else:
            state = "no continuous profiler runs in this process yet"
        body = ("<!doctype html>\n<html><head><meta charset='utf-8'><title>/debug/pprof/"
                "</title></head><body>\n<h1>/debug/pprof/</h1>\n"
                f"<p>hyprof: {state}.</p>\n<table>\n{rows}</table>\n"
                "<p>go tool pprof http://HOST:PORT/debug/pprof/profile?seconds=30</p>\n"
                "</body></html>\n")
        return Response(200, body.encode("utf-8"), "text/html; charset=utf-8",
                        (("X-Content-Type-Options", "nosniff"),))


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0 < value < math.inf:
        raise ProfilerError(f"{name}={value!r} must be a positive number of seconds")
    return float(value)


# ---------------------------------------------------------------- who may ask

def check_token(token):
    """The token to require, checked: None, or a non-empty string of
    printable ASCII without spaces (what an Authorization header carries)."""
    if token is None:
        return None
    if not isinstance(token, str) or not _TOKEN_RE.match(token):
        raise ProfilerError("token must be a non-empty string of printable ASCII without "
                            "spaces (it is sent as 'Authorization: Bearer <token>')")
    return token


def authorized(header, token):
    """True when the Authorization header value carries the bearer token
    (compared in constant time); always True without a token."""
    if token is None:
        return True
    if not header:
        return False
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"),
                               token.encode("ascii"))


def unauthorized():
    return _text(401, "this endpoint needs 'Authorization: Bearer <token>'\n",
                 (("WWW-Authenticate", 'Bearer realm="hyprof"'),))


# ---------------------------------------------------------------- addresses

def parse_address(address):
    """(host, port) from "HOST:PORT", "[V6]:PORT", ":PORT", "PORT" or a
    (host, port) pair. A missing host is 127.0.0.1 (not every interface, as
    in Go). Raises ProfilerError naming what would be accepted."""
    what = ("give HOST:PORT, [IPv6]:PORT or PORT (a port from 0 to 65535, 0 for a free "
            "one), e.g. 127.0.0.1:6060")
    if isinstance(address, tuple) and len(address) == 2:
        host, port = address
        if not isinstance(host, str):
            raise ProfilerError(f"address {address!r}: the host must be a string; {what}")
    elif isinstance(address, int) and not isinstance(address, bool):
        host, port = "", address
    elif isinstance(address, str):
        s = address.strip()
        m = re.fullmatch(r"\[([0-9A-Za-z:.%]+)\]:(\d+)", s) or \
            re.fullmatch(r"([^:\s\[\]]*):(\d+)", s) or re.fullmatch(r"()(\d+)", s)
        if m is None:
            raise ProfilerError(f"address {address!r} is not an address: {what}")
        host, port = m.group(1), m.group(2)
    else:
        raise ProfilerError(f"address {address!r} is not an address: {what}")
    try:
        if isinstance(port, bool) or not isinstance(port, (int, str)):
            raise TypeError
        port = int(port)
    except (TypeError, ValueError):
        raise ProfilerError(f"address {address!r}: the port is not a number; {what}") from None
    if not 0 <= port <= 65535:
        raise ProfilerError(f"address {address!r}: port {port} is out of range; {what}")
    return host or DEFAULT_HOST, port


def _resolve(host, port):
    """getaddrinfo()'s IPv4 and IPv6 answers for host, or ProfilerError."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ProfilerError(f"cannot serve on {host!r}: {e.strerror}") from None
    infos = [i for i in infos if i[0] in (socket.AF_INET, socket.AF_INET6)]
    if not infos:
        raise ProfilerError(f"cannot serve on {host!r}: it has no IPv4 or IPv6 address")
    return infos


def _is_loopback(addr):
    try:
        return ipaddress.ip_address(addr.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def check_address(address, allow_remote=False):
    """(host, port, loopback) for address; refuses an address that is not
    loopback unless allow_remote. Raises ProfilerError."""
    return _check_address(address, allow_remote)[:3]


def _check_address(address, allow_remote):
    """check_address(), with the (family, sockaddr) to bind."""
    host, port = parse_address(address)
    infos = _resolve(host, port)
    loopback = all(_is_loopback(i[4][0]) for i in infos)
    if not loopback and not allow_remote:
        raise ProfilerError(
            f"refusing to serve profiles on {host}:{port}, which is not a loopback address: "
            "a profile shows the program's code, paths and timings to whoever can reach it. "
            "Serve on 127.0.0.1 (the default), or pass allow_remote=True (hyprof run "
            "--serve-allow-remote, HYPROF_SERVE_ALLOW_REMOTE=1), ideally with a token")
    return host, port, loopback, infos[0][0], infos[0][4]


# ---------------------------------------------------------------- the server

# Host headers a loopback server answers (the guard against DNS rebinding: a
# web page whose name points at 127.0.0.1 cannot read the profiles).
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def _host_ok(value):
    if value is None:
        return True
    host = value.strip().lower()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        return False


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "hyprof"
    protocol_version = "HTTP/1.1"
    # A client that stops sending or reading frees its thread.
    timeout = 60
    # The headers and the body go out in two writes: on a kept-alive
    # connection Nagle's algorithm would hold the body until the client's
    # delayed ACK (44 ms a request here, against 0.4 ms without it).
    disable_nagle_algorithm = True

    def do_GET(self):
        self._answer()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _answer(self):
        srv = self.server.owner
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query,
                                                          keep_blank_values=True).items()}
        if srv.loopback and not _host_ok(self.headers.get("Host")):
            resp = _text(403, "this loopback endpoint answers requests for localhost or an IP "
                              "address only (Host header refused)\n")
        elif not authorized(self.headers.get("Authorization"), srv.token):
            resp = unauthorized()
        elif url.path in (PREFIX, PREFIX.rstrip("/")):
            resp = srv.endpoints.respond("", query, self.command)
        elif url.path.startswith(PREFIX) and "/" not in url.path[len(PREFIX):]:
            resp = srv.endpoints.respond(url.path[len(PREFIX):], query, self.command)
        else:
            resp = _text(404, f"not found; the profiles are under {PREFIX}\n")
        if self.command not in ("GET", "HEAD"):
            self.close_connection = True  # its body, if any, is left unread
        self._send(resp, self.command != "HEAD")

    def _send(self, resp, send_body):
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for name, value in resp.headers:
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(resp.body)
        if resp.status >= 400:
            log.info("hyprof.serve: %s %s -> %d", self.command, self.path[:200], resp.status)

    def log_message(self, format, *args):
        # Not to stderr, which is the program's.
        log.debug("hyprof.serve: %s %s", self.address_string(), format % args)

    def log_error(self, format, *args):
        log.info("hyprof.serve: %s %s", self.address_string(), format % args)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner, family, sockaddr):
        self.owner = owner
        self.address_family = family
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(sockaddr, _Handler)

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        # Skips HTTPServer's getfqdn() of the address, a DNS lookup.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address):
        # Each connection in a thread of its own, started without the
        # threading module: its only Python frame is _serve_one, which the
        # sampler leaves out with what it calls (_scope.hide_code below), so
        # serving a profile adds no samples of hyprof's to the next one.
        # (A threading.Thread would leave them to threading's frames.)
        if not self._slots.acquire(blocking=False):
            log.info("hyprof.serve: %d connections at once: closing one from %s",
                     MAX_CONNECTIONS, client_address[0])
            self.shutdown_request(request)
            return
        try:
            _thread.start_new_thread(self._serve_one, (request, client_address))
        except RuntimeError:
            self._slots.release()
            self.shutdown_request(request)

    def _serve_one(self, request, client_address):
        # What rendering a profile allocates is hyprof's, not the program's.
        _hyprof.alloc_exclude_thread()
        try:
            self.finish_request(request, client_address)
        except Exception as e:  # noqa: BLE001 -- a client's failure ends its connection only
            self.handle_error(request, client_address, e)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request, client_address, error=None):
        # One line, never a traceback on the program's stderr.
        log.info("hyprof.serve: connection from %s ended: %s", client_address[0],
                 f"{type(error).__name__}: {error}" if error is not None else "error")


class Server:
    """A running pprof endpoint; ``start()`` makes one.

    url: the index, e.g. http://127.0.0.1:6060/debug/pprof/; host, port: where
    it listens (port is the one chosen when 0 was asked); profiler: the
    ContinuousProfiler served (None: the process's current one, at each
    request); endpoints: the Endpoints it answers with."""

    def __init__(self, endpoints, host, port, family, sockaddr, loopback, token, owned):
        self.endpoints = endpoints
        self.token = token
        self.loopback = loopback
        self._owned = owned
        try:
            self._httpd = _HTTPServer(self, family, sockaddr)
        except OSError as e:
            raise ProfilerError(f"cannot serve on {host}:{port}: "
                                f"{e.strerror or e}") from None
        self.host = host
        self.port = self._httpd.server_address[1]
        shown = f"[{sockaddr[0]}]" if family == socket.AF_INET6 else sockaddr[0]
        self.url = f"http://{shown}:{self.port}{PREFIX}"
        self._done = threading.Event()
        self._stopped = False
        self._max_seconds = endpoints.max_seconds
        self._pid = os.getpid()
        self._registry = _register(self)
        _servers.append(self)
        _thread.start_new_thread(self._loop, ())

    @property
    def profiler(self):
        return self.endpoints.profiler

    @property
    def running(self):
        return not self._stopped

    def _loop(self):
        try:
            self._httpd.serve_forever(poll_interval=0.5)
        except Exception as e:  # noqa: BLE001 -- said once; the program goes on
            log.error("hyprof.serve: the server on %s stopped: %s: %s", self.url,
                      type(e).__name__, e)
        finally:
            self._done.set()

    def stop(self):
        """Stops serving (the profiles being collected end with the
        profiler) and stops the profiler if start() started it."""
        if self._stopped:
            return self
        self._stopped = True
        _unregister(self)
        self._httpd.shutdown()
        self._done.wait(5)
        self._httpd.server_close()
        if self._owned and self.profiler is not None and self.profiler.running:
            self.profiler.stop()
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __repr__(self):
        return f"<hyprof.serve.Server {self.url} {'running' if self.running else 'stopped'}>"


# ------------------------------------------------------------ discovery, fork

# The servers this process runs, for discovery files and forked children.
_servers = []

# How far past the parent's port a forked worker looks for a free one.
FORK_PORT_RANGE = 100


def endpoints_dir():
    """Where running servers describe themselves (one JSON file each) for
    ``hyprof discover``: the per-user private directory's ``endpoints``."""
    return _files.private_subdir("endpoints")


def _register(server):
    """Writes server's discovery file, created exclusively (0600, no link
    followed); returns its path, or None when it cannot be written (the
    server runs anyway, undiscoverable)."""
    try:
        path = os.path.join(endpoints_dir(), f"{os.getpid()}-{server.port}.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except (OSError, ProfilerError) as e:
        log.warning("hyprof.serve: %s is not discoverable: %s", server.url, e)
        return None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"pid": os.getpid(), "url": server.url, "token": server.token is not None,
                   "started": time.time(), "argv": [str(a) for a in sys.argv]}, f)
    return path


def _unregister(server):
    if server in _servers:
        _servers.remove(server)
    path, server._registry = server._registry, None
    if path is not None and server._pid == os.getpid():
        try:
            os.unlink(path)
        except OSError:
            pass


def discover():
    """[{pid, url, token, started, argv}] of the running processes of this
    user that serve pprof endpoints; files of processes that ended are
    removed."""
    out = []
    d = endpoints_dir()
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        try:
            with open(path, encoding="utf-8") as f:
                info = json.load(f)
            pid = int(info["pid"])
            os.kill(pid, 0)
        except ProcessLookupError:
            try:
                os.unlink(path)
            except OSError:
                pass
            continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        out.append(info)
    return out


def _stop_all_at_exit():
    for server in list(_servers):
        _unregister(server)


atexit.register(_stop_all_at_exit)


def _after_fork_in_child():
    """A forked worker serves its own profiler: the parent's listening
    sockets are closed here (their thread does not exist in a child, and the
    parent goes on serving them), and, when the child has a continuous
    profiler (hyprof.continuous starts one in each child of a process that
    ran one), a server of the same address, token and limits listens on the
    first free port after the parent's, and says so in its discovery file
    and on stderr."""
    parents = [s for s in _servers if s._pid != os.getpid() and not s._stopped]
    _servers.clear()
    for s in parents:
        s._stopped = True
        s._registry = None
        try:
            s._httpd.socket.close()
        except OSError:
            pass
    profiler = continuous.current()
    if profiler is None:
        return
    for s in parents:
        try:
            start_near((s.host, s.port + 1), token=s.token, allow_remote=not s.loopback,
                       profiler=profiler, max_seconds=s._max_seconds,
                       why=f"worker {os.getpid()}", quiet=False)
        except ProfilerError as e:
            sys.stderr.write(f"hyprof: worker {os.getpid()}: {e}: not served\n")


os.register_at_fork(after_in_child=_after_fork_in_child)


def start_near(address, why, quiet=True, **options):
    """start() on address, or when its port is taken on the first free one
    of the FORK_PORT_RANGE after it (port 0: any free port), saying on
    stderr where it serves when that is not the port asked for (always,
    unless quiet). why names who asks, for that line. Raises ProfilerError
    when no port of the range is free, or for what start() refuses."""
    host, first = parse_address(address)
    ports = [0] if first == 0 else range(first, min(first + FORK_PORT_RANGE, 65536))
    err = None
    for port in ports:
        try:
            server = start((host, port), **options)
        except ProfilerError as e:
            if "cannot serve on" not in str(e):
                raise  # not a taken port: an address or option refused
            err = e
            continue
        if not quiet or (first and server.port != first):
            sys.stderr.write(f"hyprof: {why} serves its profile on {server.url}\n")
        return server
    raise ProfilerError(f"no free port in {first}-{first + FORK_PORT_RANGE - 1} ({err})")


def start(address=DEFAULT_ADDRESS, token=None, allow_remote=False, profiler=None,
          max_seconds=None, **options):
    """Serves the pprof endpoints on address ("HOST:PORT", "[V6]:PORT",
    "PORT" or (host, port); port 0 picks a free one) and returns the Server.

    token: when given, every request needs ``Authorization: Bearer <token>``
      (else 401).
    allow_remote: allows an address that is not loopback (0.0.0.0, a
      public interface), which is otherwise refused.
    profiler: the ContinuousProfiler to serve; by default the process's
      running one, or else one started now with ``options`` (those of
      hyprof.continuous.start), stopped by the Server's stop().
    max_seconds: the longest window a client may ask for (default: the
      profiler's retain, 300 s by default).

    Raises ProfilerError for a bad option, an address refused or taken."""
    token = check_token(token)
    host, port, loopback, family, sockaddr = _check_address(address, allow_remote)
    owned = False
    if profiler is None:
        profiler = continuous.current()
        if profiler is not None and options:
            raise ProfilerError("a continuous profiler already runs in this process: "
                                f"{', '.join(sorted(options))} cannot apply to it (pass "
                                "profiler=, or no options)")
        if profiler is None:
            profiler = continuous.start(**options)
            owned = True
    elif options:
        raise ProfilerError(f"{', '.join(sorted(options))}: options of a profiler to start; "
                            "profiler= is given")
    try:
        endpoints = Endpoints(profiler, max_seconds=max_seconds)
        return Server(endpoints, host, port, family, sockaddr, loopback, token, owned)
    except BaseException:
        if owned:
            profiler.stop()
        raise


# The server's threads are hyprof's own: what they run stays out of samples.
_scope.hide_code(_HTTPServer._serve_one.__code__, Server._loop.__code__)
