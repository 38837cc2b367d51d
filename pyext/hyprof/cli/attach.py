"""``hyprof attach PID``: profiles a running process that serves hyprof's
endpoints (hyprof.serve, ``hyprof run --serve``, HYPROF_SERVE), through its
``/debug/pprof/hyprof`` endpoint over loopback: no ptrace, no restart, and
nothing of the process's is read but what it chooses to serve. The process
is found by its discovery file (hyprof discover), or given by --url."""

import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from .. import serve
from ..errors import CLIError, PrivateDirError, TraceError, UsageError
from ..trace import loads
from . import files
from .options import ranged

HELP = "profile a running process that serves hyprof's endpoints, without restarting it"

# Seconds a window may take to arrive beyond its own length (the server
# cuts the window at its next tick, then encodes it).
SLACK = 30

_HOW_TO_ENABLE = (
    "attach reads the endpoint that a process serves when it runs with HYPROF_SERVE "
    "(HYPROF_SERVE=127.0.0.1:6060 before any Python command, with the package installed), "
    "python -m hyprof run --serve 127.0.0.1:6060, or hyprof.serve.start() in the program; "
    "a process started without one must be restarted with it once")


def configure(p):
    p.add_argument("pid", nargs="?", type=ranged(int, 1, 1 << 22, "a process id"),
                   help="the process to profile (one of this user's; hyprof discover lists "
                        "those that serve)")
    p.add_argument("--url", default=None,
                   help="the endpoint instead of a PID: http://HOST:PORT/debug/pprof/ (a "
                        "port forwarded from a container, a process of another user's)")
    p.add_argument("--seconds", type=ranged(float, 0.1, 86400, "a number of seconds"),
                   default=30.0, help="how long to profile (default 30)")
    p.add_argument("--recent", action="store_true",
                   help="take the last SECONDS the process keeps, at once, instead of "
                        "waiting for the next")
    p.add_argument("-o", "--output", default=None, metavar="OUT",
                   help="the trace to write (default: hyprof-attach-PID.hyprof)")


def _endpoint(pid):
    """The discovery entry of pid's endpoint, or a CLIError that says why
    there is none and how to get one."""
    try:
        found = [d for d in serve.discover() if d.get("pid") == pid]
    except (OSError, PrivateDirError) as e:
        raise CLIError(f"cannot read the endpoints directory: {e}") from None
    if found:
        return found[0]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise CLIError(f"no process {pid}") from None
    except PermissionError:
        raise CLIError(f"process {pid} is another user's: its endpoint, if it serves one, "
                       f"is listed in that user's directory; give --url") from None
    raise CLIError(f"process {pid} serves no hyprof endpoint: {_HOW_TO_ENABLE}")


def _check_url(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--url {url!r} is not an http:// URL of an endpoint, such as "
                         "http://127.0.0.1:6060/debug/pprof/")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    if not path.endswith(serve.PREFIX):
        path = path.rstrip("/") + serve.PREFIX
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _fetch(url, seconds, token):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    base = url.split("?")[0]
    try:
        with urllib.request.urlopen(request, timeout=seconds + SLACK) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        reason = e.read(2000).decode("utf-8", "replace").strip()
        if e.code == 401:
            reason = ("the endpoint needs its token: set HYPROF_SERVE_TOKEN to the one the "
                      "process was started with")
        elif e.code == 404:
            reason = ("it serves no hyprof window: it runs an older hyprof, or is not "
                      "hyprof's; go tool pprof reads its profile endpoint")
        raise CLIError(f"{base}: {e.code} {e.reason}: {reason}") from None
    except (urllib.error.URLError, OSError) as e:
        why = getattr(e, "reason", None) or e
        raise CLIError(f"cannot reach {base}: {why}") from None


def run(args):
    if (args.pid is None) == (args.url is None):
        raise UsageError("give the PID of the process to profile, or --url of its endpoint")
    token = os.environ.get("HYPROF_SERVE_TOKEN") or None
    if args.url is not None:
        url, who = _check_url(args.url), args.url
    else:
        info = _endpoint(args.pid)
        url, who = info["url"], f"process {args.pid}"
        if info.get("token") and not token:
            raise CLIError(f"{who} serves {url} with a token: set HYPROF_SERVE_TOKEN to it")
    out = args.output or f"hyprof-attach-{args.pid or 'url'}.hyprof"
    files.check_trace_output(out)
    query = urllib.parse.urlencode({"seconds": f"{args.seconds:g}",
                                    **({"recent": "1"} if args.recent else {})})
    sys.stderr.write(f"hyprof attach: {'taking the last' if args.recent else 'profiling'} "
                     f"{args.seconds:g} s of {who} ({url})\n")
    t0 = time.monotonic()
    data = _fetch(f"{url}hyprof?{query}", args.seconds, token)
    try:
        trace = loads(data, source=f"{url}hyprof")
    except TraceError as e:
        raise CLIError(f"the answer is not a whole trace: {e}") from None
    files.write_trace(out, trace.write)
    h = trace.header
    samples = sum(f.own_samples for f in trace.functions())
    sys.stderr.write(f"hyprof attach: {h.get('duration', 0):.1f} s of pid {h.get('pid')}, "
                     f"{samples:.0f} samples in {len(trace.threads())} threads, "
                     f"{len(data)} bytes in {time.monotonic() - t0:.1f} s -> {out}\n"
                     f"hyprof attach: read it with python -m hyprof report {out}\n")
    return 0

