"""Brendan Gregg's folded stacks: one line per call path, ``a;b;c 123``.

The format flamegraph.pl, inferno, speedscope and most flame graph tools
read. Each line is the frames from the root to a leaf, separated by
semicolons, then a space and the path's own value in the metric's unit
(nanoseconds for times, a count for samples and calls).
"""

from . import _model


def _clean(label):
    # A semicolon would split the frame and a newline the record.
    return label.replace(";", ":").replace("\n", " ").replace("\r", " ")


# Lines are joined about this many characters at a time: a str per line for
# a million paths would hold several times the output.
_BATCH = 1 << 20


def _lines(tree, col, lines):
    """Folded stacks of a CallTree, one line per path with a non-zero value,
    a batch of lines at a time."""
    vals = tree.values[col]
    flabel = [_clean(_model.frame_label(f)) for f in tree.funcs]
    func, line = tree.func, tree.line

    def label(i):
        if lines and line[i]:
            return _clean(_model.frame_label(tree.funcs[func[i]], line[i]))
        return flabel[func[i]]

    budget = _model.PathBudget("collapsed")
    out, size = [], 0
    for i, path in _model.walk_paths(tree, 0, label):
        v = vals[i]
        if v and budget.take(len(path)):
            text = f"{';'.join(path)} {v}\n"
            out.append(text)
            size += len(text)
            if size >= _BATCH:
                yield "".join(out)
                out, size = [], 0
    if out:
        yield "".join(out)
    budget.warn()


def render(trace, metric=None, lines=False, threads=False, **options):
    """Folded stacks of a trace. ``metric`` picks the column (default: wall
    time, or the sample count); ``lines`` keeps executing lines in frame
    names; ``threads`` puts each thread's stacks under a frame of its own."""
    return "".join(stream(trace, metric=metric, lines=lines, threads=threads, **options))


def stream(trace, metric=None, lines=False, threads=False, **options):
    """render()'s text as an iterator of pieces."""
    _model.reject_options("collapsed", options)
    tree = _model.call_tree(trace, split_threads=threads)
    if not lines:
        tree = tree.by_function()
    col = tree.column(metric) if metric else tree.default_column()
    return _lines(tree, col, lines)
