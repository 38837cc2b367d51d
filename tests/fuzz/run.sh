#!/bin/sh
# Builds the trace reader's fuzz harness with clang (libFuzzer, ASan, UBSan)
# against the core sources and runs it for SECONDS on the seed corpus.
# Exits non-zero when it finds a crash, a leak, undefined behaviour or a
# broken round trip; the input that did it is left in the work directory.
#   tests/fuzz/run.sh SECONDS        fuzz for that long
#   tests/fuzz/run.sh --seeds DIR    rewrite the seed corpus into DIR
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
CLANG=${CLANG:-clang}
work=${HYP_FUZZ_WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/hyprof-fuzz.XXXXXX")}
mkdir -p "$work/corpus"

if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "run.sh: $CLANG not found: install clang and libclang-rt-14-dev (scripts/install-deps.sh)" >&2
    exit 2
fi
MSGPACK_CFLAGS=$(pkg-config --cflags msgpack-c 2>/dev/null || pkg-config --cflags msgpack)
MSGPACK_LIBS=$(pkg-config --libs msgpack-c 2>/dev/null || pkg-config --libs msgpack)
CORE="alloc.c error.c profile.c aggregate.c trace_read.c trace_write.c"
srcs=
for f in $CORE; do srcs="$srcs $top/core/$f"; done
flags="-g -O1 -std=gnu11 -I$top/include -I$top/core $MSGPACK_CFLAGS -fno-omit-frame-pointer"

if [ "${1:-}" = "--seeds" ]; then
    dir=${2:?usage: run.sh --seeds DIR}
    # shellcheck disable=SC2086
    "$CLANG" $flags -o "$work/make_seeds" "$here/make_seeds.c" $srcs $MSGPACK_LIBS
    mkdir -p "$dir"
    "$work/make_seeds" "$dir"
    ls -l "$dir"
    exit 0
fi

secs=${1:?usage: run.sh SECONDS}
case $secs in *[!0-9]*|'') echo "run.sh: SECONDS must be a whole number, not '$secs'" >&2; exit 2;; esac

echo "run.sh: building $work/fuzz_reader"
# shellcheck disable=SC2086
"$CLANG" $flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -o "$work/fuzz_reader" "$here/fuzz_reader.c" $srcs $MSGPACK_LIBS

echo "run.sh: fuzzing for $secs s (new inputs in $work/corpus)"
cd "$work"
status=0
"$work/fuzz_reader" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -dict="$here/hyprof.dict" -artifact_prefix="$work/" -print_final_stats=1 \
    "$work/corpus" "$here/corpus" || status=$?
if [ "$status" -ne 0 ]; then
    echo "run.sh: the fuzzer failed (status $status); the input is in $work:" >&2
    ls "$work" | grep -E '^(crash|leak|timeout|oom)-' >&2 || true
    exit 1
fi
echo "run.sh: no crash in $secs s"
