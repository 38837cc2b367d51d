"""The hyprof package's shape: every module imports, the modules' imports of
each other form no circle (counting the imports made inside functions,
which hide a circle from Python but not from a reader), and only the
command line imports the command line."""

import ast
import importlib
import os
import pkgutil
import subprocess
import sys

import hyprof
import pytest

PKG_DIR = os.path.dirname(os.path.abspath(hyprof.__file__))


def _modules():
    """{module name: source path} of every Python module of the package."""
    out = {"hyprof": os.path.join(PKG_DIR, "__init__.py")}
    for info in pkgutil.walk_packages([PKG_DIR], prefix="hyprof."):
        spec = info.module_finder.find_spec(info.name.rsplit(".", 1)[-1])
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            out[info.name] = spec.origin
    return out


MODULES = _modules()


def _is_package(name):
    return MODULES.get(name, "").endswith("__init__.py")


def _resolve(importer, level, module):
    """The absolute name a (possibly relative) import of importer names."""
    if not level:
        return module
    base = importer if _is_package(importer) else importer.rsplit(".", 1)[0]
    for _ in range(level - 1):
        base = base.rsplit(".", 1)[0]
    return base + "." + module if module else base


def _imports(name, path):
    """The package's modules that name's source imports, anywhere in it:
    each imported module and the packages above it that the import runs
    (but not name's own packages, already running when name is)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node.level, node.module)
            for a in node.names:
                sub = base + "." + a.name
                targets.add(sub if sub in MODULES else base)
    own = {name.rsplit(".", i)[0] for i in range(name.count(".") + 1)}
    out = set()
    for t in targets:
        parts = t.split(".")
        for i in range(1, len(parts) + 1):
            mod = ".".join(parts[:i])
            if mod in MODULES and mod not in own:
                out.add(mod)
    out.discard(name)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycle(graph):
    """One import circle as a list of module names, or None."""
    state = {}
    stack = []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == "open":
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = "done"
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_the_graph_sees_the_package():
    # The walk found the package's parts, so an empty graph passes nothing.
    for name in ("hyprof.cli", "hyprof.cli.run", "hyprof.errors", "hyprof.diff",
                 "hyprof.render._model", "hyprof.contrib.django_sql"):
        assert name in MODULES, sorted(MODULES)
    assert "hyprof.errors" in GRAPH["hyprof.diff"]
    assert "hyprof.cli.files" in GRAPH["hyprof.cli.report"]


def test_no_import_circle():
    circle = _cycle(GRAPH)
    assert circle is None, "import circle: " + " -> ".join(circle)


def test_only_the_command_line_imports_it():
    users = {name for name, deps in GRAPH.items()
             if not (name == "hyprof.cli" or name.startswith("hyprof.cli."))
             and any(d == "hyprof.cli" or d.startswith("hyprof.cli.") for d in deps)
             and name != "hyprof.__main__"}
    assert not users, f"library modules importing hyprof.cli: {sorted(users)}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.endswith("__main__")))
def test_every_module_imports(name):
    if name.startswith("hyprof.contrib.django"):
        pytest.importorskip("django")
    importlib.import_module(name)


def test_the_sql_capture_needs_no_http_stack():
    # The pytest plugin counts queries through it: Django's database layer,
    # not its request handling.
    pytest.importorskip("django")
    assert "hyprof.contrib.django" not in GRAPH["hyprof.contrib.django_sql"]
    code = ("import sys, hyprof.contrib.django_sql; "
            "print(sorted(m for m in sys.modules if m.startswith(('django.http', "
            "'django.core.handlers', 'django.urls', 'django.middleware'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]", out


def test_errors_are_defined_once_in_python_and_raised_by_the_engines():
    """hyprof.errors imports nothing of the package (the extension imports it
    while it loads), and the C engines raise its classes, not copies."""
    assert GRAPH["hyprof.errors"] == set()
    from hyprof import _hyprof, errors
    with pytest.raises(errors.ProfilerError):
        _hyprof.DetProfiler(max_nodes=-1)
    with pytest.raises(errors.EventError):
        hyprof.Profiler(mode="sampling", event="no-such-event").start()
    with pytest.raises(errors.TraceError):
        hyprof.load(__file__)
    assert not hasattr(_hyprof, "ProfilerError") and not hasattr(_hyprof, "_set_trace_error")
