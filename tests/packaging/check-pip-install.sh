#!/bin/sh
# Checks that `pip install` of the source tree works as a user would run it:
# a fresh venv, pip installs the tree (through an sdist, as PyPI would serve
# it), then the console script runs, a tiny script is profiled, its trace
# loads, and the pytest plugin is registered.
#
# Usage: tests/packaging/check-pip-install.sh [PYTHON]
#   (default: $PYTHON, else the first interpreter scripts/pythons.sh finds)
# Needs the Debian -dev packages of scripts/install-deps.sh and access to the
# package index for setuptools (pip's isolated build).
set -eu

SRC=$(cd "$(dirname "$0")/../.." && pwd)
PY=${1:-$(sh "$SRC/scripts/pythons.sh" | head -n 1)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hyprof-pip.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM

fail() { echo "check-pip-install: FAIL: $*" >&2; exit 1; }

echo "check-pip-install: $PY, source $SRC, work dir $WORK"
"$PY" -m venv "$WORK/venv" || fail "cannot create a venv with $PY"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q --disable-pip-version-check --upgrade pip setuptools build \
    >"$WORK/venv.log" 2>&1 \
    || { cat "$WORK/venv.log"; fail "cannot install pip, setuptools and build into the venv"; }

# Build the sdist from a copy, so nothing is written into the source tree,
# then install from the sdist: this proves the sdist is complete.
mkdir "$WORK/src"
(cd "$SRC" && tar --exclude=./.git --exclude='./build*' --exclude=./autom4te.cache \
    --exclude='*.egg-info' --exclude=__pycache__ -cf - .) | (cd "$WORK/src" && tar -xf -)
"$VPY" -m build --sdist --outdir "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log"; fail "python -m build --sdist failed"; }
SDIST=$(ls "$WORK"/dist/hyprof-*.tar.gz)
echo "check-pip-install: built $(basename "$SDIST")"
"$VPY" -m pip install --disable-pip-version-check "$SDIST" >"$WORK/pip.log" 2>&1 \
    || { cat "$WORK/pip.log"; fail "pip install of the sdist failed"; }
echo "check-pip-install: installed"

# Run from an empty directory so the source tree cannot shadow the install.
cd "$WORK"
"$WORK/venv/bin/hyprof" --help >"$WORK/help.txt" || fail "hyprof --help exited non-zero"
grep -qi "usage" "$WORK/help.txt" || fail "hyprof --help printed no usage line"

cat >"$WORK/tiny.py" <<'PYEOF'
def leaf(n):
    return n * 2


def main():
    return sum(leaf(i) for i in range(50))


if __name__ == "__main__":
    main()
PYEOF

# Profile it with the console script, as a user would, then load the trace
# with the installed package.
"$WORK/venv/bin/hyprof" run -q -o "$WORK/tiny.hyprof" "$WORK/tiny.py" \
    || fail "hyprof run tiny.py failed"
"$VPY" - "$WORK/tiny.hyprof" <<'PYEOF'
import os
import sys

import hyprof

where = os.path.dirname(hyprof.__file__)
assert "site-packages" in where, f"hyprof imported from {where}, not from the venv"
trace = hyprof.load(sys.argv[1])
calls = {f.name: f.calls for f in trace.functions()}
assert calls.get("leaf") == 50, f"expected leaf() called 50 times, the trace has {calls}"
assert calls.get("main") == 1, f"expected main() called once, the trace has {calls}"
print("check-pip-install: hyprof run tiny.py: leaf() called 50 times, main() once")
PYEOF

"$VPY" -m pip install -q --disable-pip-version-check pytest >"$WORK/pytest-pip.log" 2>&1 \
    || { cat "$WORK/pytest-pip.log"; fail "cannot install pytest into the venv"; }
"$VPY" -c "
from importlib.metadata import entry_points
eps = [e for e in entry_points(group='pytest11') if e.name == 'hyprof']
assert eps and eps[0].value == 'hyprof.pytest_plugin', eps
eps[0].load()
print('check-pip-install: pytest11 entry point hyprof ->', eps[0].value)
" || fail "the pytest11 entry point is missing or does not load"

"$VPY" -c "import importlib.util as u; assert u.find_spec('hyprof.contrib.django')" \
    || fail "hyprof.contrib.django is not installed"

# The index page of the package is its README.
"$VPY" -c "
from importlib.metadata import metadata
m = metadata('hyprof')
assert m['Description-Content-Type'] == 'text/markdown', m['Description-Content-Type']
assert '# hyprof' in (m.get_payload() or m['Description'] or ''), 'no long description'
print('check-pip-install: the long description is the README')
" || fail "the wheel's metadata has no long description"

# The plugin, found through its entry point (no -p): pytest --hyprof.
mkdir "$WORK/t"
cat >"$WORK/t/test_tiny.py" <<'PYEOF'
import sys

sys.path.insert(0, "..")
import tiny  # noqa: E402


def test_main():
    assert tiny.main() == 2450
PYEOF
(cd "$WORK/t" && "$VPY" -m pytest -q -p no:cacheprovider --hyprof) >"$WORK/pytest.log" 2>&1 \
    || { cat "$WORK/pytest.log"; fail "pytest --hyprof failed"; }
grep -Eq "^ +50 .* leaf \(tiny.py:1\)" "$WORK/pytest.log" \
    || { cat "$WORK/pytest.log"; fail "pytest --hyprof did not list leaf() with 50 calls"; }
echo "check-pip-install: pytest --hyprof lists leaf() with 50 calls"

# The .pth hook: HYPROF_SERVE in the environment serves a plain program,
# with no change to it; without the variable nothing starts.
HYPROF_SERVE=127.0.0.1:0 "$VPY" -c "
import os, urllib.request, hyprof.serve as s
mine = [d for d in s.discover() if d['pid'] == os.getpid()]
assert mine, 'no endpoint of this process'
assert b'pprof' in urllib.request.urlopen(mine[0]['url']).read()
print('check-pip-install: HYPROF_SERVE serves', mine[0]['url'])
" 2>"$WORK/serve.err" || { cat "$WORK/serve.err"; fail "hyprof-autostart.pth did not start the endpoint"; }
[ ! -s "$WORK/serve.err" ] || { cat "$WORK/serve.err"; fail "HYPROF_SERVE printed errors"; }
"$VPY" -c "
import sys
assert 'hyprof' not in sys.modules, 'hyprof imported at start without HYPROF_SERVE'
" || fail "hyprof-autostart.pth imports hyprof without HYPROF_SERVE"

echo "check-pip-install: OK"
