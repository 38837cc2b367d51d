"""Running a benchmark under every CPython the project supports: the
--all-pythons and --pythonpath options the benchmarks share."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pythons():
    """The interpreters scripts/pythons.sh lists, or this one."""
    try:
        out = subprocess.run(["sh", os.path.join(REPO, "scripts", "pythons.sh")],
                             capture_output=True, text=True, check=True).stdout
        found = out.split()
    except (OSError, subprocess.CalledProcessError):
        found = []
    return found or [sys.executable]


def add_options(ap):
    ap.add_argument("--all-pythons", action="store_true",
                    help="run under every CPython scripts/pythons.sh lists")
    ap.add_argument("--pythonpath", default=os.environ.get("PYTHONPATH", ""),
                    help="PYTHONPATH for --all-pythons; {major} and {minor} are replaced "
                         "by each interpreter's version")


def run_all(script, pythonpath, args):
    """Runs script with args under each interpreter, each with its own build
    of hyprof on PYTHONPATH; the exit statuses or'ed."""
    status = 0
    for py in pythons():
        ver = subprocess.run([py, "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.split()
        if len(ver) != 2:
            continue
        env = dict(os.environ, PYTHONPATH=pythonpath.format(major=ver[0], minor=ver[1]))
        print(flush=True)
        status |= subprocess.run([py, os.path.abspath(script)] + list(args), env=env).returncode
    return status
