"""Compare two traces: which functions got slower or faster.

``diff(base, new)`` matches functions by name and file (not by line, so an
edit that moves a function does not hide it; a file found under another
directory in the new trace only, such as another checkout or release
directory, is the same file) and reports, per function, the
inclusive value in each trace, the absolute change and the relative one. The
same matching over call paths gives a differential flame graph: the new
trace's flame graph coloured by how much each frame's own value changed (red
slower, blue faster). A library: it raises DiffError (and ReportError for a
bad metric); ``hyprof diff`` is hyprof.cli.diff.
"""

from collections import namedtuple

from .errors import DiffError, ReportError
from .render import _model
from .render import html as _html

__all__ = ["Diff", "DiffError", "DiffRow", "diff", "render"]

DiffRow = namedtuple("DiffRow", "name filename base new delta relative base_own new_own")


def _key(f, files=None):
    return (f.name, files.get(f.filename, f.filename) if files else f.filename, f.kind)


def _moved_files(bt, nt):
    """Base file -> new file, for files that only changed directory (another
    checkout, virtualenv or release directory): a file found in one trace
    only whose name matches exactly one file found in the other only."""
    bfiles = {f.filename for f in bt.funcs if f.filename}
    nfiles = {f.filename for f in nt.funcs if f.filename}

    def by_name(files):
        out = {}
        for path in files:
            out.setdefault(path.rsplit("/", 1)[-1], []).append(path)
        return out

    only_new = by_name(nfiles - bfiles)
    moved = {}
    for name, paths in by_name(bfiles - nfiles).items():
        cands = only_new.get(name, [])
        if len(paths) == 1 and len(cands) == 1:
            moved[paths[0]] = cands[0]
    return moved


def _trees(base, new, metric):
    for name, t in (("base", base), ("new", new)):
        if not hasattr(t, "nodes"):
            raise DiffError(f"the {name} trace is a {type(t).__name__}, not a hyprof Trace")
    if base.mode != new.mode:
        raise DiffError(f"cannot compare a {base.mode} trace with a {new.mode} trace;"
                        " profile both runs in the same mode")
    bt = _model.call_tree(base).by_function()
    nt = _model.call_tree(new).by_function()
    shared = [c for c in nt.columns if any(c.name == b.name for b in bt.columns)]
    if not shared:
        have_base = ", ".join(c.name for c in bt.columns)
        have_new = ", ".join(c.name for c in nt.columns)
        raise DiffError(f"the two traces have no metric in common (base: {have_base};"
                        f" new: {have_new})")
    if metric is not None:
        for t, name in ((bt, "base"), (nt, "new")):
            try:
                t.column(metric)
            except ReportError as e:
                raise DiffError(f"{name} trace: {e}") from None
    return bt, nt, shared


def _union(bt, nt, shared, scale=1.0):
    """One tree holding every call path of either trace, with two value sets:
    the new trace's and the base trace's, column by column; and, for each
    trace, a function -> union index callable (the trace's functions are
    matched as the call paths are)."""
    funcs, fid = [], {}
    parent, func = [-1], [-1]
    index = {}
    ncols = len(shared)
    newv = [[0] for _ in shared]
    basev = [[0] for _ in shared]
    moved = _moved_files(bt, nt)
    keys = []
    for tree, vals, factor, files in ((bt, basev, scale, moved), (nt, newv, 1.0, None)):
        keys.append(files)
        cols = [tree.column(c.name) for c in shared]
        where = [0] * len(tree)
        for c in range(ncols):
            vals[c][0] += tree.values[cols[c]][0] * factor
        for i in range(1, len(tree)):
            f = tree.funcs[tree.func[i]]
            k = _key(f, files)
            j = fid.get(k)
            if j is None:
                j = fid[k] = len(funcs)
                funcs.append(f if not files or f.filename not in files
                             else f._replace(filename=files[f.filename]))
            p = where[tree.parent[i]]
            n = index.get((p, j))
            if n is None:
                n = index[(p, j)] = len(parent)
                parent.append(p)
                func.append(j)
                for v in newv:
                    v.append(0)
                for v in basev:
                    v.append(0)
            where[i] = n
            for c in range(ncols):
                vals[c][n] += tree.values[cols[c]][i] * factor
    line = [0] * len(parent)
    new = _model.CallTree(funcs, parent, func, line, shared, newv, nt.mode, nt.header)
    base = _model.CallTree(funcs, parent, func, line, shared, basev, bt.mode, bt.header)

    def index_of(files):
        return lambda f: fid.get(_key(f, files))
    return base, new, index_of(keys[0]), index_of(keys[1])


def _scale(bt, nt, metric, normalize):
    if not normalize:
        return 1.0
    name = metric or nt.columns[nt.default_column()].name
    b = bt.inclusive(bt.column(name))[0]
    n = nt.inclusive(nt.column(name))[0]
    return n / b if b else 1.0


class Diff:
    """The comparison of two traces for one metric."""

    def __init__(self, base, new, metric=None, normalize=False):
        bt, nt, shared = _trees(base, new, metric)
        factor = _scale(bt, nt, metric, normalize)
        self.normalized = bool(normalize)
        self.base_tree, self.new_tree, base_index, new_index = _union(bt, nt, shared, factor)
        t = self.new_tree
        self.column = t.column(metric) if metric else t.default_column()
        self.metric = t.columns[self.column]
        self.mode = new.mode
        # Per-function totals are the traces' own (trace.functions()), added
        # up over the functions the union matches together.
        b_own, b_cum = _model.function_totals(base, t, funcs=base_index)
        n_own, n_cum = _model.function_totals(new, t, funcs=new_index)
        if factor != 1.0:
            b_own = [[v * factor for v in col] for col in b_own]
            b_cum = [[v * factor for v in col] for col in b_cum]
        self._table = {"own": n_own, "cum": n_cum, "base_own": b_own, "base_cum": b_cum}
        c = self.column
        rows = []
        for f, fn in enumerate(t.funcs):
            b, n = b_cum[c][f], n_cum[c][f]
            if not b and not n:
                continue
            rel = (n - b) / b if b else None
            rows.append(DiffRow(fn.name, fn.filename, b, n, n - b, rel, b_own[c][f], n_own[c][f]))
        self.rows = rows
        self.base_total = self.base_tree.inclusive(self.column)[0]
        self.new_total = t.inclusive(self.column)[0]

    def slower(self):
        """Functions whose inclusive value grew, the largest growth first."""
        return sorted((r for r in self.rows if r.delta > 0), key=lambda r: (-r.delta, r.name))

    def faster(self):
        """Functions whose inclusive value shrank, the largest drop first."""
        return sorted((r for r in self.rows if r.delta < 0), key=lambda r: (r.delta, r.name))

    def to_text(self, limit=20):
        unit = self.metric.unit

        def fmt(v):
            return _model.format_value(v, unit)

        def rel(r):
            if r.relative is None:
                return "new"
            return f"{100 * r.relative:+.1f}%"

        total_rel = ((self.new_total - self.base_total) / self.base_total
                     if self.base_total else None)
        out = [f"hyprof diff: {self.metric.label} ({self.mode} mode"
               + (", base scaled to the new total" if self.normalized else "") + ")",
               f"total: {fmt(self.base_total)} -> {fmt(self.new_total)}"
               f" ({fmt(self.new_total - self.base_total)}"
               + (f", {100 * total_rel:+.1f}%" if total_rel is not None else "") + ")", ""]
        for title, rows in (("Slower", self.slower()), ("Faster", self.faster())):
            top = f", top {limit}" if len(rows) > limit else ""
            out.append(f"{title} ({len(rows)} functions{top}):")
            if not rows:
                out.append("  (none)")
                out.append("")
                continue
            table = [("base", "new", "delta", "relative", "function")]
            for r in rows[:limit]:
                where = f" ({_model.short_path(r.filename)})" if r.filename else ""
                table.append((fmt(r.base), fmt(r.new),
                              ("+" if r.delta > 0 else "") + fmt(r.delta), rel(r),
                              r.name + where))
            widths = [max(len(row[i]) for row in table) for i in range(4)]
            for row in table:
                cells = [row[i].rjust(widths[i]) for i in range(4)]
                out.append("  " + "  ".join(cells) + "  " + row[4])
            out.append("")
        return "\n".join(out)

    def to_html(self, title=None):
        if title is None:
            title = f"hyprof diff: {self.metric.label}"
        sub = (f"{self.mode} mode; base {_model.format_value(self.base_total, self.metric.unit)}"
               f", new {_model.format_value(self.new_total, self.metric.unit)}")
        if self.normalized:
            sub += "; base scaled to the new total"
        # The page opens on this diff's metric.
        return _html.page(self.new_tree, self._table, base=self.base_tree, title=title,
                          subtitle=sub, default=self.column)


def diff(base, new, metric=None, normalize=False):
    """Compares two traces (Trace objects). ``metric`` picks the column
    (default: wall time, or the sample count); ``normalize`` scales the base
    so both totals match, to compare shares of runs of different lengths."""
    return Diff(base, new, metric, normalize)


def render(base, new, fmt="text", metric=None, normalize=False, limit=20):
    """The diff as ``text`` (a table) or ``html`` (a differential flame graph)."""
    d = diff(base, new, metric, normalize)
    if fmt == "text":
        return d.to_text(limit=limit)
    if fmt == "html":
        return d.to_html()
    raise DiffError(f"diff makes text or html reports, not {fmt!r}")
