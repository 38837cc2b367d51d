"""The callgrind profile format, for KCachegrind, QCachegrind and
callgrind_annotate (https://valgrind.org/docs/manual/cl-format.html).

The file is written by the C core (include/hyprof/callgrind.h), which reads
the trace's call tree and its aggregation: positions are source lines;
each function's own cost is written per line (the executing line in the
sampling mode, the function's first line in the deterministic mode), each
call as ``cfn=`` + ``calls=`` with the callee's inclusive cost on that call
site. Inclusive costs are the trace's own totals (trace.functions() and
trace.edges()), so a recursive function's inclusive cost is not doubled.
This module names things: module bodies after their module (``<module
myprog>``), and no two functions alike, so tools that match functions by
name (gprof2dot) keep them apart.
"""

import re

from .. import _hyprof, _progress
from . import _model

_UNIT_SUFFIX = {"ns": "ns", "us": "us", "bytes": "bytes"}


def _event_name(col):
    base = {"wall": "Wall", "cpu": "CPU"}.get(col.label, col.label)
    base = re.sub(r"[^A-Za-z0-9_]", "_", base)
    suffix = _UNIT_SUFFIX.get(col.unit)
    base = base or "cost"
    return f"{base}_{suffix}" if suffix else base


def _module_name(filename):
    """A module's name from its file: ``myprog`` for myprog.py, the package
    for its __init__.py, the frozen module's name."""
    if filename.startswith("<frozen ") and filename.endswith(">"):
        return filename[8:-1]
    base = filename.rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if base.endswith((".py", ".pyw", ".pyc")) else base
    if stem == "__init__" and "/" in filename:
        stem = filename.rsplit("/", 2)[-2]
    return stem or filename


def _fn_name(f):
    name = f.name.replace("\n", " ")
    if f.kind == "python" and name == "<module>" and f.filename:
        # Tools that match functions by name (gprof2dot) would make one node
        # of every module body.
        return f"<module {_module_name(f.filename)}>"
    if f.kind == "python" and f.lineno:
        return f"{name}:{f.lineno}"
    return name


def _fn_names(funcs):
    """A name per function, never the same for two: a name shared by
    functions of different files gets the file, a name still shared its
    index."""
    names = [_fn_name(f) for f in funcs]
    for step in (lambda i: f"{names[i]} ({_model.short_path(funcs[i].filename)})",
                 lambda i: f"{names[i]} #{i}"):
        seen = {}
        for i, n in enumerate(names):
            seen.setdefault(n, []).append(i)
        for group in seen.values():
            if len(group) > 1:
                for i in group:
                    names[i] = step(i)
    return names


def render(trace, **options):
    """Callgrind text with every cost column of the trace (call counts go to
    ``calls=`` lines; a sampling trace has none, so ``calls=`` counts the
    distinct call paths). The function blocks come from the C core
    (hyprof/callgrind.h), from the trace's call tree and its aggregation:
    self costs per line, and on the call lines inclusive costs from the
    trace's own totals, so that callgrind_annotate shows every function's
    total as the text table does. The calls from the root come from a
    function named after the program (``<program app.py>``), so tools see
    the top of the graph as one entry."""
    _model.reject_options("callgrind", options)
    picked = [(m, c) for m, c in _model.stack_columns(trace) if c.name != "calls"]
    if not picked:
        raise _model.ReportError("the trace has no cost columns for callgrind")
    funcs = [_model.Func(*_model._func_key(f)) for f in trace.function_table]
    index_of = {f: i for i, f in enumerate(funcs)}  # a function met twice: its last
    header = trace.header
    names = _fn_names(funcs)
    prog = _model.program_name(header)
    names.append(f"<program {prog}>" if prog else "<program>")
    prog_argv = _model.program_argv(header)
    root_file = prog_argv[0] if prog_argv and prog_argv[0] != "-m" else ""
    # The format has no quoting: a newline in a name would end its line.
    files = [(f.filename or "").replace("\n", " ") for f in funcs] + [root_file.replace("\n", " ")]
    names = [n.replace("\n", " ") for n in names]
    where = trace._metric_index_of
    cum = [where[_model._cum_metric(trace, c.name)] for _, c in picked]
    head = [f"pid: {header['pid']}"] if header.get("pid") is not None else []
    if prog_argv:
        head.append("cmd: " + " ".join(prog_argv))
    _progress.stage("callgrind: writing")
    return _hyprof.callgrind(trace._profile, [index_of[f] for f in funcs], names, files,
                             [f.lineno for f in funcs] + [0], [_event_name(c) for _, c in picked],
                             [m for m, _ in picked], cum, trace._calls_col,
                             "".join(line.replace("\n", " ") + "\n" for line in head))
