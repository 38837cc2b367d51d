#!/bin/sh
# Runs the pytest suites against the build tree (make check sets PYTHON,
# PYTHONPATH, HYP_SRCDIR and HYP_BUILDDIR).
: "${PYTHON:=python3}"
: "${HYP_SRCDIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
if ! "$PYTHON" -c "import pytest" 2>/dev/null; then
    echo "SKIP: pytest is not installed for $PYTHON (scripts/install-deps.sh installs it)"
    exit 77
fi
exec "$PYTHON" -m pytest -q -p no:cacheprovider -W error::pytest.PytestUnraisableExceptionWarning \
    "$HYP_SRCDIR/tests/python" ${HYP_PYTEST_ARGS:-}
