#!/bin/sh
# The whole test suite, as the README gives it and CI runs it:
#   1. install what is missing (Debian and Python packages);
#   2. for every supported CPython present, a VPATH build of its own with
#      warnings as errors, and `make check` (CUnit and pytest suites);
#   3. the C tests under AddressSanitizer and UndefinedBehaviorSanitizer, and
#      the Python tests once with the extension built with both;
#   4. `make distcheck`;
#   5. the trace reader's fuzzer for HYP_FUZZ_SECONDS (default 60), then the
#      fuzzer of what runs after it (every report, merge, diff and write of
#      what the reader accepts) for HYP_FUZZ_RENDER_SECONDS (default 30);
#   6. `pip install` of the tree into a fresh virtual environment.
# Ends with a line per step, then one line "test-all: N passed, N failed,
# N skipped" counting the individual CUnit and pytest tests of every build, and
# exits non-zero if any step failed.
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
logdir=$top/build/logs
passed=0
failed=0
skipped=0
failures=

step() {
    # step NAME COMMAND...: runs a step, prints its outcome, keeps its log.
    name=$1
    shift
    log=$logdir/$name.log
    echo "==> $name"
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        tail -n 15 "$log"
        echo "<== $name: ok"
    else
        rc=$?
        if [ "$rc" = 77 ]; then
            skipped=$((skipped + 1))
            tail -n 5 "$log"
            echo "<== $name: skipped"
        else
            failed=$((failed + 1))
            failures="$failures $name"
            tail -n 80 "$log"
            for f in $(find "$top/build" -name 'test-suite.log' -newer "$log.start" 2>/dev/null); do
                echo "---- $f"; tail -n 120 "$f"
            done
            echo "<== $name: FAILED (exit $rc, full log in $log)"
        fi
    fi
}

build_and_check() (
    # build_and_check DIR PYTHON [CONFIGURE ARGS...], in a subshell so that
    # the steps after it still run from the top of the tree.
    dir=$1
    py=$2
    shift 2
    rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" &&
        "$top/configure" PYTHON="$py" "$@" &&
        make -j2 && make -j2 check
)

mkdir -p "$logdir"
: >"$logdir/deps.log.start"
sh scripts/install-deps.sh || { echo "test-all: installing dependencies failed"; exit 1; }
./autogen.sh >"$logdir/autogen.log" 2>&1 || { cat "$logdir/autogen.log"; exit 1; }

first=
for py in $(sh scripts/pythons.sh); do
    v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [ -n "$first" ] || first=$v
    : >"$logdir/py$v.log.start"
    step "py$v" build_and_check "$top/build/py$v" "$py" --enable-werror
done

: >"$logdir/asan.log.start"
step asan build_and_check "$top/build/asan" "$(sh scripts/pythons.sh | head -n 1)" \
    --enable-sanitizers
: >"$logdir/distcheck.log.start"
step distcheck sh -c "cd '$top/build/py$first' && make distcheck"
: >"$logdir/fuzz.log.start"
step fuzz sh tests/fuzz/run.sh "${HYP_FUZZ_SECONDS:-60}"
: >"$logdir/fuzz-render.log.start"
step fuzz-render "$top/build/py$first/pyrun" tests/fuzz/fuzz_render.py \
    "${HYP_FUZZ_RENDER_SECONDS:-30}" "$top/build/fuzz-render"
: >"$logdir/pip-install.log.start"
step pip-install sh tests/packaging/check-pip-install.sh

echo "steps: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ] || echo "failed steps:$failures"
# Count the tests themselves: CUnit's run summaries and pytest's closing lines.
find "$top/build" -path '*/tests/*' -name '*.log' ! -name test-suite.log 2>/dev/null | xargs cat 2>/dev/null |
    awk '
    /^ *tests +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+/ { p += $4; f += $5 }
    /^SKIP: / { s += 1 }
    /[0-9]+ (passed|failed|skipped)/ && /in [0-9.]+s/ {
        for (i = 1; i < NF; i++) {
            n = $i + 0; w = $(i + 1); sub(/,$/, "", w)
            if (w == "passed") p += n; else if (w == "failed" || w == "error" || w == "errors") f += n
            else if (w == "skipped") s += n
        }
    }
    END { printf "test-all: %d passed, %d failed, %d skipped\n", p, f, s }'
[ "$failed" = 0 ] || exit 1
