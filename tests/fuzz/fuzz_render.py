"""Fuzzes what runs after the reader: every trace hyprof.load() accepts must
render in every format, merge, diff and write (then load again), or fail
with hyprof's own error naming the problem (TraceError, ReportError,
MergeError), never with another exception.

    build/pyX.Y/pyrun tests/fuzz/fuzz_render.py SECONDS [WORKDIR]

Inputs are the seed corpus of tests/fuzz/corpus and traces made here by
both modes, mutated two ways: as MessagePack objects (numbers made huge,
negative or of another type, strings made long or undecodable, arrays cut or
grown, entries dropped or repeated) and as bytes (flips, cuts, splices).
The random stream is seeded, so a run is reproducible; an input that fails
is written to WORKDIR (default: a new temporary directory) and its
traceback printed, and the exit status is 1.
"""

import io
import os
import random
import sys
import tempfile
import time
import traceback
import warnings

import msgpack

import hyprof
from hyprof import TraceError, render
from hyprof import diff as _diff
from hyprof.diff import DiffError
from hyprof.merge import MergeError, merge_traces
from hyprof.render import ReportError

HERE = os.path.dirname(os.path.abspath(__file__))
EXPECTED = (TraceError, ReportError, MergeError, DiffError)


def made_traces(tmp):
    """Traces of both modes made by this hyprof: recursion, generators,
    threads, a truncated tree, samples."""
    import threading

    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    def gen(n):
        for i in range(n):
            yield fib(i)

    def work():
        sum(gen(12))
        t = threading.Thread(target=fib, args=(12,))
        t.start()
        t.join()

    out = []
    for options in ({}, {"max_nodes": 20}):
        p = hyprof.Profiler(**options)
        with p:
            work()
        path = os.path.join(tmp, f"det{len(out)}.hyprof")
        p.write(path)
        out.append(path)
    p = hyprof.Profiler(mode="sampling", frequency=2000, memory=True)
    with p:
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            work()
    path = os.path.join(tmp, "sampling.hyprof")
    p.write(path)
    out.append(path)
    return out


def objects(data):
    """The trace's MessagePack objects, or None if it does not decode."""
    try:
        up = msgpack.Unpacker(io.BytesIO(data), raw=True, strict_map_key=False)
        return list(up)
    except Exception:
        return None


def mutate_value(rng, v, depth=0):
    r = rng.random()
    if isinstance(v, bool) or v is None:
        return rng.choice([0, 1, -1, 2 ** 64 - 1, "x", [], None, True])
    if isinstance(v, int):
        return rng.choice([0, 1, -1, v + 1, v - 1, 2 ** 32, 2 ** 64 - 1, -2 ** 63, 1e300,
                           float("inf"), b"\xff", [v]])
    if isinstance(v, float):
        return rng.choice([0.0, -1.0, float("inf"), float("nan"), 1e308, -1e308, 7, "1.5"])
    if isinstance(v, bytes):
        return rng.choice([b"", v * 50, v + b"\xff\xfe", b"\x00" + v, b"\xe9" * 3, 17,
                           [v], v[: len(v) // 2]])
    if isinstance(v, list):
        if not v or r < 0.2:
            return rng.choice([[], v + v, v[: len(v) // 2], 5, b"s"])
        i = rng.randrange(len(v))
        w = list(v)
        if r < 0.5:
            w[i] = mutate_value(rng, w[i], depth + 1)
        elif r < 0.7:
            del w[i]
        elif r < 0.85:
            w.insert(i, w[rng.randrange(len(w))])
        else:
            w[i] = rng.choice([0, -1, 2 ** 31, b"", [], {}])
        return w
    if isinstance(v, dict):
        keys = list(v)
        w = dict(v)
        if not keys or r < 0.15:
            w[rng.choice([b"argv", b"pid", b"start_time", b"duration", b"event", b"x\x00y",
                          b"\xe9", b"metrics", b"sources"])] = mutate_value(rng, 1)
        else:
            k = rng.choice(keys)
            if r < 0.3:
                del w[k]
            else:
                w[k] = mutate_value(rng, w[k], depth + 1)
        return w
    return v


def mutate(rng, data):
    objs = objects(data)
    if objs is not None and len(objs) > 1 and rng.random() < 0.7:
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(1, len(objs))
            objs[i] = mutate_value(rng, objs[i])
        if rng.random() < 0.1 and len(objs) > 2:
            j = rng.randrange(2, len(objs))
            objs.insert(j, objs[rng.randrange(1, len(objs))])
        try:
            return b"".join(msgpack.packb(o, use_bin_type=False) for o in objs)
        except Exception:
            pass
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if not b:
            break
        i = rng.randrange(len(b))
        if op < 0.5:
            b[i] = rng.randrange(256)
        elif op < 0.7:
            del b[i:i + rng.randint(1, 16)]
        elif op < 0.85:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            b = b[:i]
    return bytes(b)


def exercise(path, tmp):
    """Everything after the reader, on one input."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = hyprof.load(path)
    for fmt in sorted(render.FORMATS):
        try:
            out = render.render(t, fmt)
        except ReportError:
            continue
        if isinstance(out, str):
            out.encode("utf-8", "surrogateescape")
    try:
        merged = merge_traces([t, t])
    except MergeError:
        merged = None
    if merged is not None:
        hyprof._hyprof.write_trace(os.path.join(tmp, "merged.hyprof"), merged)
    for fmt in ("text", "html"):
        try:
            _diff.render(t, t, fmt)
        except DiffError:
            pass
    again = os.path.join(tmp, "again.hyprof")
    t.write(again)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hyprof.load(again).functions()


def main():
    if len(sys.argv) < 2 or not sys.argv[1].isdigit():
        sys.exit("usage: fuzz_render.py SECONDS [WORKDIR]")
    seconds = int(sys.argv[1])
    work = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="hyprof-fuzz-render.")
    os.makedirs(work, exist_ok=True)
    seeds = []
    for name in sorted(os.listdir(os.path.join(HERE, "corpus"))):
        with open(os.path.join(HERE, "corpus", name), "rb") as f:
            seeds.append(f.read())
    for path in made_traces(work):
        with open(path, "rb") as f:
            seeds.append(f.read())
    rng = random.Random(int(os.environ.get("HYP_FUZZ_SEED", "1")))
    case = os.path.join(work, "case.hyprof")
    end = time.monotonic() + seconds
    runs = loaded = 0
    while time.monotonic() < end:
        data = mutate(rng, rng.choice(seeds))
        with open(case, "wb") as f:
            f.write(data)
        runs += 1
        try:
            exercise(case, work)
            loaded += 1
        except EXPECTED:
            pass
        except Exception:
            keep = os.path.join(work, f"failure-{runs}.hyprof")
            os.replace(case, keep)
            traceback.print_exc()
            print(f"fuzz_render: input {runs} failed; it is in {keep}", file=sys.stderr)
            return 1
    print(f"fuzz_render: {runs} inputs in {seconds} s, {loaded} loaded and went through every"
          f" report, merge, diff and write; no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
