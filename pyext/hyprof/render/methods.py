"""Report methods of hyprof.Trace: ``trace.to_html()``, ``trace.to_pprof()``
and the others, each the same as ``hyprof.render.render(trace, format)``."""

import os


class ReportMethods:
    """Mixed into hyprof.Trace."""

    def report(self, fmt, path=None, **options):
        """Renders this trace in a registered format (see
        ``hyprof.render.FORMATS``); with ``path``, also writes it there."""
        from . import render

        out = render(self, fmt, **options)
        if path is not None:
            if isinstance(out, bytes):
                with open(os.fspath(path), "wb") as f:
                    f.write(out)
            else:
                # An undecodable name in the trace goes back as its bytes.
                with open(os.fspath(path), "w", encoding="utf-8", errors="surrogateescape") as f:
                    f.write(out)
        return out

    def to_html(self, **options):
        """A self-contained HTML flame graph and function table (str)."""
        return self.report("html", **options)

    def to_speedscope(self, **options):
        """speedscope's JSON file format (str)."""
        return self.report("speedscope", **options)

    def to_svg(self, **options):
        """An SVG flame graph, as flamegraph.pl draws one (str)."""
        return self.report("svg", **options)

    def to_collapsed(self, **options):
        """Folded stacks for flamegraph.pl and inferno (str)."""
        return self.report("collapsed", **options)

    def to_callgrind(self, **options):
        """The callgrind format for KCachegrind and callgrind_annotate (str)."""
        return self.report("callgrind", **options)

    def to_dot(self, **options):
        """A Graphviz call graph (str)."""
        return self.report("dot", **options)

    def to_pprof(self, **options):
        """Gzipped profile.proto for go tool pprof, Pyroscope, Parca (bytes)."""
        return self.report("pprof", **options)
