"""The pytest plugin, run as a user would: pytest in a subprocess on a small
test directory, the plugin loaded with -p hyprof.pytest_plugin."""

import os
import re
import subprocess
import sys
import textwrap

import hyprof
import pytest

SUBJECT = '''
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def leaf(i):
    return i * 2


class Shop:
    def price(self, n):
        return [leaf(i) for i in range(n)]


import functools  # noqa: E402 -- below, so that fib and leaf keep their lines


class Product:
    @property
    def price(self):
        return leaf(3)

    @functools.cached_property
    def label(self):
        return "p%d" % leaf(1)

    @classmethod
    def make(cls):
        return cls()

    @staticmethod
    def tax(x):
        return leaf(x)
'''

TESTS = '''
import subject


def test_fib():
    assert subject.fib(15) == 610


def test_leaf():
    assert sum(subject.leaf(i) for i in range(30)) == 870


def test_budget_ok(hyprof_budget):
    with hyprof_budget(max_calls={"subject.leaf": 25, "subject.Shop.price": 1}) as b:
        subject.Shop().price(25)
    assert b.calls == {"subject.leaf": 25, "subject.Shop.price": 1}


def test_budget_exceeded(hyprof_budget):
    with hyprof_budget(max_calls={"subject.leaf": 10}):
        subject.Shop().price(12)


def test_budget_typo(hyprof_budget):
    with hyprof_budget(max_calls={"subject.leef": 10}):
        pass


def test_budget_builtins(hyprof_budget):
    items = []
    with hyprof_budget(max_calls={"builtins.len": 3, "builtins.list.append": 5}) as b:
        for i in range(4):
            items.append(len(items))
    assert b.calls == {"builtins.len": 4, "builtins.list.append": 4}


def test_budget_descriptors(hyprof_budget):
    names = ["subject.Product.price", "subject.Product.label", "subject.Product.make",
             "subject.Product.tax"]
    with hyprof_budget(max_calls=dict.fromkeys(names, 2)) as b:
        for _ in range(2):
            p = subject.Product.make()
            p.price, p.label, p.label
            subject.Product.tax(1)
    assert b.calls == dict.fromkeys(names, 2)
    with hyprof_budget(max_calls={subject.Product.price: 1, subject.Product.tax: 1}) as b:
        subject.Product().price
    assert list(b.calls.values()) == [1, 0]


def test_budget_callable(hyprof_budget):
    with hyprof_budget(max_calls={subject.fib: 176}) as b:
        subject.fib(10)
    assert b.calls == {"subject.fib": 177}
'''


def run_pytest(tmp_path, *args):
    (tmp_path / "subject.py").write_text(SUBJECT)
    (tmp_path / "test_subject.py").write_text(TESTS)
    env = dict(os.environ)
    # The package under test must come from the same place as for this
    # process (a build tree's python/ or an installed hyprof).
    pkg_parent = os.path.dirname(os.path.dirname(hyprof.__file__))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), pkg_parent] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "hyprof.pytest_plugin", "-p", "no:cacheprovider",
         "-q", "-rA", *args],
        check=False, cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300)
    return proc


def outcome(proc, test):
    m = re.search(rf"^(PASSED|FAILED) test_subject.py::{test}\b", proc.stdout, re.MULTILINE)
    return m.group(1) if m else None


def summary_rows(out):
    """{function: (calls, own, cum)} from the --hyprof summary."""
    rows = {}
    part = out.split("hyprof: slowest functions of the run", 1)[1]
    for line in part.splitlines():
        m = re.match(r"\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+(.+)$", line)
        if m:
            rows[m.group(4)] = (int(m.group(1)), float(m.group(2)), float(m.group(3)))
    return rows


@pytest.mark.parametrize("extra", [[], ["--hyprof"]], ids=["plain", "under-hyprof"])
def test_budgets_pass_and_fail_with_the_counts(tmp_path, extra):
    # Under --hyprof the test's profiler pauses for the block: the counts
    # are the same.
    proc = run_pytest(tmp_path, *extra)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert outcome(proc, "test_fib") == "PASSED"
    assert outcome(proc, "test_budget_ok") == "PASSED"
    assert outcome(proc, "test_budget_descriptors") == "PASSED"
    assert outcome(proc, "test_budget_callable") == "FAILED"
    assert outcome(proc, "test_budget_exceeded") == "FAILED"
    assert outcome(proc, "test_budget_typo") == "FAILED"
    assert outcome(proc, "test_budget_builtins") == "FAILED"
    assert "hyprof_budget exceeded: subject.leaf was called 12 times, budget 10" in out
    assert "hyprof_budget exceeded: subject.fib was called 177 times, budget 176" in out
    assert "cannot find 'subject.leef': subject has no attribute 'leef'" in out
    assert "hyprof_budget exceeded: builtins.len was called 4 times, budget 3" in out
    assert "builtins.list.append was called" not in out      # 4 calls, within 5
    assert "4 failed, 4 passed" in out
    # A typo's failure is its message under the test's line, without the
    # plugin's frames.
    typo = proc.stdout.split("_ test_budget_typo _", 1)[1].split("\n____", 1)[0]
    assert "pytest_plugin.py" not in typo and len(typo.splitlines()) < 15, typo


def test_hyprof_prints_the_slowest_functions_with_exact_calls(tmp_path):
    proc = run_pytest(tmp_path, "--hyprof", "--hyprof-top", "40", "-k",
                      "fib or leaf and not budget")
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "hyprof: slowest functions of the run (deterministic)" in out
    rows = summary_rows(out)
    assert rows["fib (subject.py:2)"][0] == 1973, rows     # fib(15): 1973 calls
    assert rows["leaf (subject.py:6)"][0] == 30, rows
    assert rows["test_fib (test_subject.py:5)"][0] == 1
    # Only the tests' own code: not pytest's machinery around them.
    assert not [k for k in rows if ".py:" in k and "subject.py" not in k], rows
    assert "2 tests profiled" in out
    own = [v[1] for v in rows.values()]
    assert own == sorted(own, reverse=True)


def test_hyprof_summary_has_only_the_tests_code(tmp_path, profiler_frames):
    # Budgets included: neither the plugin, nor the budget's own profiler
    # and trace, nor the resolution of its names are the test's calls.
    proc = run_pytest(tmp_path, "--hyprof", "--hyprof-top", "200",
                      "--hyprof-dir", str(tmp_path / "t"))
    out = proc.stdout
    assert "8 tests profiled" in out, out + proc.stderr
    rows = summary_rows(out)
    # (The blocks of the budgets are counted by their own profilers.)
    assert rows["leaf (subject.py:6)"][0] == 30, rows
    assert [k for k in rows if "hyprof" in k or (".py:" in k and "subject.py" not in k)] == []
    for name in os.listdir(tmp_path / "t"):
        assert profiler_frames(hyprof.load(str(tmp_path / "t" / name))) == [], name


def test_a_test_run_by_another_plugin_has_none_of_the_plugins_frames(tmp_path,
                                                                     profiler_frames):
    # A coroutine test, run by a plugin of its own (as pytest-asyncio does):
    # hyprof profiles around that plugin's hook, and its hook wrappers,
    # resumed after the test, are not in the trace.
    (tmp_path / "conftest.py").write_text(textwrap.dedent('''
        import asyncio, inspect
        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_pyfunc_call(pyfuncitem):
            if inspect.iscoroutinefunction(pyfuncitem.obj):
                asyncio.run(pyfuncitem.obj())
                return True
    '''))
    (tmp_path / "test_co.py").write_text(textwrap.dedent('''
        import subject

        async def test_co():
            assert subject.fib(12) == 144
    '''))
    proc = run_pytest(tmp_path, "--hyprof-dir", str(tmp_path / "t"), "test_co.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trace = hyprof.load(str(tmp_path / "t" / os.listdir(tmp_path / "t")[0]))
    assert [f.calls for f in trace.functions() if f.name == "fib"] == [465]
    assert profiler_frames(trace) == []


def test_hyprof_dir_saves_one_trace_per_test(tmp_path):
    out_dir = tmp_path / "traces"
    proc = run_pytest(tmp_path, "--hyprof-dir", str(out_dir), "-k", "fib or leaf and not budget")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = sorted(os.listdir(out_dir))
    assert files == ["test_subject.py__test_fib.hyprof", "test_subject.py__test_leaf.hyprof"]
    trace = hyprof.load(str(out_dir / files[0]))
    assert trace.mode == "deterministic"
    assert [f.calls for f in trace.functions() if f.name == "fib"] == [1973]
    assert [f.calls for f in trace.functions() if f.name == "test_fib"] == [1]
    assert "2 traces saved in" in proc.stdout


def test_sampling_mode(tmp_path):
    (tmp_path / "test_spin.py").write_text(textwrap.dedent('''
        import time

        def spin():
            end = time.process_time() + 0.3
            n = 0
            while time.process_time() < end:
                n += 1
            return n

        def test_spin():
            assert spin() > 0
    '''))
    proc = run_pytest(tmp_path, "--hyprof", "--hyprof-mode", "sampling", "test_spin.py",
                      "--hyprof-dir", str(tmp_path / "s"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "slowest functions of the run (sampling)" in proc.stdout
    trace = hyprof.load(str(tmp_path / "s" / "test_spin.py__test_spin.hyprof"))
    assert trace.mode == "sampling"
    spin = [f for f in trace.functions() if f.name == "spin"]
    total = sum(f.own_samples for f in trace.functions())
    assert spin and total > 0
    # The test function is the root of every sample: not pytest's frames
    # above it, nor the plugin's wrapper.
    assert {n.function.name for n in trace.nodes()[1:] if n.parent == 0} == {"test_spin"}
    # The test burns CPU in spin(): most samples are in it.
    assert spin[0].cum_samples >= 0.5 * total


def test_sampling_short_tests_are_sampled_and_silence_is_explained(tmp_path):
    (tmp_path / "test_short.py").write_text(textwrap.dedent('''
        import time

        def spin(seconds):
            end = time.process_time() + seconds
            while time.process_time() < end:
                pass

        def test_short():
            spin(0.03)   # 30 ms: no sample at 100 Hz some runs, ~30 at 1 kHz
    '''))
    proc = run_pytest(tmp_path, "--hyprof", "--hyprof-mode", "sampling", "test_short.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "spin (test_short.py:4)" in proc.stdout, proc.stdout
    (tmp_path / "test_idle.py").write_text("import time\n\ndef test_idle():\n"
                                            "    time.sleep(0.01)\n")
    proc = run_pytest(tmp_path, "--hyprof", "--hyprof-mode", "sampling",
                      "--hyprof-frequency", "1", "test_idle.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no function was recorded in 1 profiled test: no sample was taken, at 1 samples " \
        "per second" in proc.stdout and "--hyprof-frequency" in proc.stdout
    for bad, says in (("0", "from 1 to 100000"), ("nan", "from 1 to 100000")):
        proc = run_pytest(tmp_path, "--hyprof", "--hyprof-mode", "sampling",
                          "--hyprof-frequency", bad, "test_idle.py")
        assert proc.returncode == 4 and says in proc.stderr, proc.stderr
    proc = run_pytest(tmp_path, "--hyprof", "--hyprof-frequency", "500", "test_idle.py")
    assert proc.returncode == 4 and "deterministic mode records every call" in proc.stderr


def test_bad_options_are_usage_errors(tmp_path):
    proc = run_pytest(tmp_path, "--hyprof", "--hyprof-mode", "exact")
    assert proc.returncode == 4
    assert "invalid choice: 'exact'" in proc.stderr
    (tmp_path / "file").write_text("")
    proc = run_pytest(tmp_path, "--hyprof-dir", str(tmp_path / "file"))
    assert proc.returncode == 4
    assert "exists and is not a directory" in proc.stderr


@pytest.mark.parametrize("args, message", [
    ("max_calls={'subject.leaf': -1}", "the budget of 'subject.leaf' must be a whole number"),
    ("", "give max_calls="),
    ("max_queries=2", "max_queries counts Django's SQL queries"),
])
def test_bad_budgets_say_what_is_wrong(tmp_path, args, message):
    (tmp_path / "test_bad.py").write_text(textwrap.dedent(f'''
        import subject

        def test_bad(hyprof_budget):
            with hyprof_budget({args}):
                subject.leaf(1)
    '''))
    proc = run_pytest(tmp_path, "test_bad.py", "-p", "no:django")
    assert proc.returncode == 1
    assert message in proc.stdout
