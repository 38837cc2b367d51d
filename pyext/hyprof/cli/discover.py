"""``hyprof discover``: the pprof endpoints this user's processes serve
(hyprof.serve, ``hyprof run --serve``, each worker of a pre-fork server),
from the discovery files they keep while they serve."""

import json
import sys
import time

from .. import serve
from ..errors import CLIError, PrivateDirError

HELP = "list the pprof endpoints served by this user's running processes"


def configure(p):
    p.add_argument("--json", action="store_true",
                   help="one JSON object per line: pid, url, token, started, argv")


def run(args):
    try:
        found = serve.discover()
    except (OSError, PrivateDirError) as e:
        raise CLIError(f"cannot read the endpoints directory: {e}") from None
    if args.json:
        for info in found:
            sys.stdout.write(json.dumps(info) + "\n")
        return 0
    if not found:
        sys.stdout.write("no running process serves a hyprof endpoint (start one with "
                         "hyprof run --serve, HYPROF_SERVE, or hyprof.serve.start())\n")
        return 0
    sys.stdout.write(f"{'PID':>8}  {'UP':>8}  {'URL':<40}  COMMAND\n")
    now = time.time()
    for info in found:
        up = now - float(info.get("started") or now)
        url = info["url"] + (" (token)" if info.get("token") else "")
        cmd = " ".join(info.get("argv") or [])[:80]
        sys.stdout.write(f"{info['pid']:>8}  {up:>7.0f}s  {url:<40}  {cmd}\n")
    return 0
