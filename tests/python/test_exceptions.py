"""Exceptions raised (docs/exceptions.md): each counted once, in the frame
that raised it, as "<raise TYPE>": exact calls in the deterministic mode,
samples of kind "exceptions" weighted to the count in the sampling mode. The
programs raise known numbers of known types, caught at known depths."""

import sys

import pytest

import hyprof
from test_render_support import every_format, go_pprof_top, run_hyprof, shows

ENGINES = ["setprofile"] + (["monitoring"] if sys.version_info >= (3, 12) else [])
needs_312 = pytest.mark.skipif(sys.version_info < (3, 12),
                               reason="counting raises needs sys.monitoring (Python 3.12+)")


class NotFound(LookupError):
    pass


def deep_raise(n):
    if n == 0:
        raise NotFound("x")
    deep_raise(n - 1)


def lookups(n):
    d = {}
    for i in range(n):
        try:
            d[i]                 # raised by a C function, reported in this frame
        except KeyError:
            pass


def raising(n, depth):
    for _ in range(n):
        try:
            deep_raise(depth)    # raised 6 frames down, propagated through 5
        except NotFound:
            pass


def generators(n):
    for _ in range(n):
        for _ in iter([1, 2]):   # StopIteration is no raise
            pass


def program():
    raising(300, 5)
    lookups(700)
    generators(100)
    try:
        try:
            raise ValueError("first")
        except ValueError as e:
            raise RuntimeError("second") from e
    except RuntimeError:
        pass
    kept = None
    try:
        raise IndexError("once")
    except IndexError as e:
        kept = e
    try:
        raise kept           # raised again: a second raise of the same one
    except IndexError:
        pass


def raises_of(trace):
    out = {}
    for f in trace.functions():
        if f.name.startswith("<raise "):
            out[f.name] = out.get(f.name, 0) + f.calls
    return out


EXPECTED = {"<raise test_exceptions.NotFound>": 300, "<raise KeyError>": 700,
            "<raise ValueError>": 1, "<raise RuntimeError>": 1, "<raise IndexError>": 2}


@needs_312
@pytest.mark.parametrize("engine", ENGINES)
def test_deterministic_counts_each_raise_once_where_it_was_raised(engine):
    p = hyprof.Profiler(engine=engine, exceptions=True)
    with p:
        program()
    t = p.trace()
    assert raises_of(t) == EXPECTED
    callers = {}
    for e in t.edges():
        if e.callee.name.startswith("<raise ") and e.caller is not None:
            callers.setdefault(e.callee.name, set()).add(e.caller.name)
    assert callers["<raise test_exceptions.NotFound>"] == {"deep_raise"}
    assert callers["<raise KeyError>"] == {"lookups"}
    [nf] = [f for f in t.functions() if f.name == "<raise test_exceptions.NotFound>"]
    assert nf.kind == "special"
    # Under the sixth deep_raise, not the frames it passed through.
    paths = [tuple(x.name for x in stack) for stack, _ in t.stacks("calls")
             if stack[-1].name == "<raise test_exceptions.NotFound>"]
    assert paths and all(p.count("deep_raise") == 6 for p in paths), paths


@needs_312
def test_sampling_counts_every_raise_by_default():
    p = hyprof.Profiler(mode="sampling", exceptions=True)
    with p:
        program()
    t = p.trace()
    assert "exceptions" in {k.name for k in t.sample_kinds}
    got = {}
    for stack, w in t.stacks("exceptions"):
        got[stack[-1].name] = got.get(stack[-1].name, 0) + w
    assert got == EXPECTED
    for stack, _ in t.stacks("exceptions"):
        if stack[-1].name == "<raise KeyError>":
            assert stack[-2].name == "lookups"


@needs_312
def test_sampled_exceptions_weigh_up_to_the_count():
    p = hyprof.Profiler(mode="sampling", exceptions=True, exception_interval=10)
    with p:
        lookups(20000)
    t = p.trace()
    total = sum(w for _, w in t.stacks("exceptions"))
    n = sum(c for _, c in t.stacks("exception_samples"))
    assert 1000 < n < 3000            # about one in ten
    assert total == n * 10
    assert abs(total - 20000) <= 0.15 * 20000  # within 5 standard deviations


@needs_312
def test_tool_id_is_given_back_and_exceptions_still_propagate():
    p = hyprof.Profiler(exceptions=True)
    with p:
        assert sys.monitoring.get_tool(4) == "hyprof-exceptions" or \
            sys.monitoring.get_tool(3) == "hyprof-exceptions"
        with pytest.raises(NotFound):
            deep_raise(3)
    assert "hyprof-exceptions" not in {sys.monitoring.get_tool(i) for i in range(6)}
    q = hyprof.Profiler(exceptions=True)  # and taken again
    with q:
        lookups(5)
    assert raises_of(q.trace()) == {"<raise KeyError>": 5}


@needs_312
def test_every_format_shows_the_raises(tmp_path):
    for mode in ("deterministic", "sampling"):
        p = hyprof.Profiler(mode=mode, exceptions=True)
        with p:
            lookups(50)
        path = tmp_path / f"{mode}.hyprof"
        p.trace().write(path)
        t = hyprof.load(path)
        for fmt, out in every_format(t, "exceptions" if mode == "sampling" else None).items():
            assert shows(out, "<raise KeyError>"), (mode, fmt)
    assert "<raise KeyError>" in go_pprof_top(hyprof.load(tmp_path / "sampling.hyprof"),
                                              tmp_path, "exceptions")


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.11 only")
def test_before_312_asking_says_what_is_needed():
    for mode in ("deterministic", "sampling"):
        with pytest.raises(hyprof.ProfilerError, match="3.12"):
            p = hyprof.Profiler(mode=mode, exceptions=True)
            p.start()


def test_bad_options_are_refused():
    with pytest.raises(hyprof.ProfilerError, match="exceptions="):
        hyprof.Profiler(exceptions=1)
    with pytest.raises(hyprof.ProfilerError, match="exception_interval"):
        hyprof.Profiler(mode="sampling", exceptions=True, exception_interval=0)


def test_the_command_line_counts_exceptions(tmp_path):
    prog = tmp_path / "app.py"
    prog.write_text("d = {}\nfor i in range(30):\n    try:\n        d[i]\n    except KeyError:\n"
                    "        pass\n")
    out = tmp_path / "x.hyprof"
    r = run_hyprof("run", "--exceptions", "-q", "-o", out, prog, cwd=tmp_path, check=False)
    if sys.version_info < (3, 12):
        assert r.returncode != 0 and "3.12" in r.stderr and "Traceback" not in r.stderr
        return
    assert r.returncode == 0, r.stderr
    assert raises_of(hyprof.load(out)) == {"<raise KeyError>": 30}
