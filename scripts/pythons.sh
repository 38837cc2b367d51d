#!/bin/sh
# Prints the supported CPython interpreters (3.11 to 3.13) on this machine,
# one path a line: $PYTHON if set, else pyenv's, else python3.
if [ -n "${PYTHON:-}" ]; then
    echo "$PYTHON"
    exit 0
fi
found=
for v in 3.11 3.12 3.13; do
    for d in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/$v.*; do
        [ -x "$d/bin/python" ] || continue
        echo "$d/bin/python"
        found=1
        break
    done
done
[ -n "$found" ] || command -v python3
