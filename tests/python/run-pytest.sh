#!/bin/sh
# Runs the pytest suites against the build tree (make check sets PYTHON,
# PYTHONPATH, HYP_SRCDIR and HYP_BUILDDIR).
: "${PYTHON:=python3}"
: "${HYP_SRCDIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
if ! "$PYTHON" -c "import pytest" 2>/dev/null; then
    echo "SKIP: pytest is not installed for $PYTHON (scripts/install-deps.sh installs it)"
    exit 77
fi
if [ -n "${HYP_SAN_PRELOAD:-}" ]; then
    # A sanitized build: the interpreter itself is not instrumented, so the
    # sanitizer runtimes go first; CPython keeps memory alive at exit on
    # purpose, so leak detection would only report the interpreter.
    LD_PRELOAD="$(echo $HYP_SAN_PRELOAD | tr ' ' ':')"
    ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:${ASAN_OPTIONS:-}"
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
    HYP_UNDER_SANITIZERS=1
    export LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS HYP_UNDER_SANITIZERS
fi
exec "$PYTHON" -m pytest -q -p no:cacheprovider -W error::pytest.PytestUnraisableExceptionWarning \
    "$HYP_SRCDIR/tests/python" ${HYP_PYTEST_ARGS:-}
