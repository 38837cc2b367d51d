"""Call counts of hyprof's deterministic mode against cProfile, on real code.

Each workload (third-party libraries where installed, the standard library
otherwise) runs twice to warm its caches, once under cProfile and once under
hyprof with each engine the interpreter has. For every function cProfile saw,
the table compares (calls, primitive calls); functions that share a pstats
key (file, line, name) are added up on both sides, as hyprof's reports group
them. A difference is explained when it is the documented one (cProfile
counts each resumption of a generator or coroutine, hyprof each instance), or
when the workload itself does not repeat (two cProfile runs disagree on the
function); any other difference is listed.

    python bench/compare_cprofile.py [--workload NAME ...] [--show N]
    python bench/compare_cprofile.py --all-pythons \\
        --pythonpath '/path/to/build/py{major}.{minor}/python'

Workloads whose library is missing are skipped with a note. sympy is not
among them: its results vary from run to run of one process (its own random
streams and caches), so two cProfile runs already disagree on a quarter of
its functions.
"""

import argparse
import asyncio
import csv
import email
import email.policy
import io
import json
import sys

import _pythons

GEN_FLAGS = 0x20 | 0x80 | 0x200 | 0x100  # generator, coroutine, async gen, iterable coroutine


# ------------------------------------------------------------------ workloads


def _stdlib_sources(n):
    import inspect
    import textwrap
    import typing
    import argparse as ap
    import json.decoder
    mods = [ap, typing, textwrap, inspect, json.decoder][:n]
    return [(m.__file__, open(m.__file__, encoding="utf-8").read()) for m in mods]


def _rest_document():
    parts = []
    for i in range(40):
        parts.append(f"Section {i}\n{'=' * (8 + len(str(i)))}\n\n"
                     f"Some *emphasis*, **strong** text and ``code`` {i}.\n\n"
                     f"- item one\n- item two with a `link <https://example.org/{i}>`_\n\n"
                     f".. note:: a note {i}\n\n"
                     "::\n\n    literal block\n    more\n\n"
                     "+-----+-----+\n| a   | b   |\n+=====+=====+\n| 1   | 2   |\n+-----+-----+\n\n")
    return "".join(parts)


def w_docutils():
    from docutils.core import publish_string
    doc = _rest_document()
    return lambda: publish_string(doc, writer_name="html",
                                  settings_overrides={"report_level": 5, "halt_level": 5})


def w_markdown():
    import markdown
    text = "".join(f"# Title {i}\n\nSome *text* with `code` and a [link](http://x/{i}).\n\n"
                   f"- a\n- b\n\n    code block {i}\n\n> quote {i}\n\n" for i in range(60))
    return lambda: markdown.markdown(text, extensions=["tables", "fenced_code"])


def w_jinja2():
    import jinja2
    pages = {f"page{i}.html": '{% extends "base.html" %}{% block body %}'
             '{% for x in items %}<li>{{ x|upper }}{{ loop.index }}</li>{% endfor %}'
             '{% include "part.html" %}{% endblock %}' for i in range(8)}
    env = jinja2.Environment(loader=jinja2.DictLoader({
        "base.html": "<html>{% block head %}<title>t</title>{% endblock %}"
                     "<body>{% block body %}{% endblock %}</body></html>",
        "part.html": "{% macro m(v) %}<b>{{ v }}</b>{% endmacro %}{{ m(name) }}",
        **pages}))
    templates = [env.get_template(name) for name in pages]
    items = [f"item{i}" for i in range(30)]
    return lambda: [t.render(items=items, name="n") for t in templates]


def w_pyflakes():
    from pyflakes import api, reporter
    sources = _stdlib_sources(3)
    rep = reporter.Reporter(io.StringIO(), io.StringIO())
    return lambda: [api.check(src, name, rep) for name, src in sources]


def w_pycodestyle():
    import pycodestyle
    sources = _stdlib_sources(2)

    def run():
        for name, src in sources:
            style = pycodestyle.Checker(filename=name, lines=src.splitlines(True), quiet=True)
            style.check_all()
    return run


def w_pygments():
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer
    sources = _stdlib_sources(2)
    return lambda: [highlight(src, PythonLexer(), HtmlFormatter()) for _, src in sources]


def w_django_templates():
    import django
    from django.conf import settings
    if not settings.configured:
        settings.configure(TEMPLATES=[{"BACKEND": "django.template.backends.django."
                                       "DjangoTemplates"}])
        django.setup()
    from django.template import Context, Engine
    engine = Engine()
    t = engine.from_string("{% for x in items %}{{ x|upper }}{% if forloop.last %}!{% endif %}"
                           "{% endfor %}{{ name|default:'none' }}")
    items = [f"item{i}" for i in range(200)]
    return lambda: [t.render(Context({"items": items})) for _ in range(10)]


def w_stdlib():
    rows = [[str(i), f"name {i}", str(i * 1.5)] for i in range(300)]
    raw = ("From: a@example.org\nTo: b@example.org\nSubject: hi\n"
           "Content-Type: text/plain\n\n" + "body line\n" * 50)

    def run():
        data = json.loads(json.dumps({"rows": rows, "n": len(rows)}))
        buf = io.StringIO()
        csv.writer(buf).writerows(data["rows"])
        list(csv.reader(io.StringIO(buf.getvalue())))
        for _ in range(20):
            email.message_from_string(raw, policy=email.policy.default).get_content()
    return run


def w_asyncio():
    async def leaf(i):
        await asyncio.sleep(0)
        return i

    async def branch(i):
        return sum(await asyncio.gather(*(leaf(j) for j in range(5)))) + i

    async def main():
        return await asyncio.gather(*(branch(i) for i in range(40)))
    return lambda: asyncio.run(main())


WORKLOADS = {
    "docutils": w_docutils,
    "markdown": w_markdown,
    "jinja2": w_jinja2,
    "pyflakes": w_pyflakes,
    "pycodestyle": w_pycodestyle,
    "pygments": w_pygments,
    "django-templates": w_django_templates,
    "stdlib": w_stdlib,
    "asyncio": w_asyncio,
}


# ------------------------------------------------------------------ comparison


def cprofile_counts(fn):
    """{pstats key: [calls, primitive calls, is a generator]} of one run."""
    from hyprof.render.pstats import cprofile_entries
    out = {}
    for key, e in cprofile_entries(fn):
        gen = not isinstance(e.code, str) and bool(e.code.co_flags & GEN_FLAGS)
        c = out.setdefault(key, [0, 0, gen])
        c[0] += e.callcount
        c[1] += e.callcount - e.reccallcount
    return out


def hyprof_counts(fn, engine):
    import hyprof
    from hyprof.render.pstats import func_key
    p = hyprof.Profiler(engine=engine)
    p.start()
    try:
        fn()
    finally:
        p.stop()
    out = {}
    for f in p.trace().functions():
        if f.kind == "special":  # "[gc] generation N": no call cProfile counts
            continue
        c = out.setdefault(func_key(f), [0, 0])
        c[0] += f.calls
        c[1] += f.primitive_calls
    return out


def compare(name, make, engines, show):
    try:
        fn = make()
    except ImportError as e:
        print(f"{name:18s} skipped: {e}")
        return None
    fn()
    fn()
    want = cprofile_counts(fn)
    again = cprofile_counts(fn)
    varies = {k for k in set(want) | set(again)
              if (want.get(k) or [None, None])[:2] != (again.get(k) or [None, None])[:2]}
    rows = []
    for engine in engines:
        got = hyprof_counts(fn, engine)
        exact = gens = unstable = 0
        other = []
        for key, (nc, cc, gen) in want.items():
            have = got.get(key)
            if have is not None and tuple(have) == (nc, cc):
                exact += 1
            elif gen and have is not None:
                gens += 1
            elif key in varies:
                unstable += 1
            else:
                other.append((key, (nc, cc), have))
        extra = [k for k in got if k not in want and k not in varies]
        rows.append((engine, len(want), exact, gens, unstable, other, extra))
        print(f"{name:18s} {engine:10s} {len(want):6d} {exact:6d} {gens:10d} {unstable:6d} "
              f"{len(other):6d} {len(extra):6d}")
        for key, theirs, ours in other[:show]:
            print(f"    differs: {key}: cProfile (calls, primitive) {theirs}, hyprof {ours}")
        for key in extra[:show]:
            print(f"    only in hyprof: {key} {got[key]}")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", action="append", choices=sorted(WORKLOADS),
                    help="run only this workload (repeatable)")
    ap.add_argument("--show", type=int, default=10,
                    help="differences listed per workload and engine (default 10)")
    _pythons.add_options(ap)
    args = ap.parse_args()
    if args.show < 0:
        ap.error("--show must be 0 or more")
    if args.all_pythons:
        extra = ["--show", str(args.show)]
        for w in args.workload or ():
            extra += ["--workload", w]
        return _pythons.run_all(__file__, args.pythonpath, extra)
    try:
        from hyprof import _hyprof
    except ImportError as e:
        sys.exit(f"compare_cprofile: cannot import hyprof ({e}): build it and set PYTHONPATH")
    engines = ["setprofile"] + (["monitoring"] if _hyprof.DEFAULT_ENGINE != "setprofile" else [])
    print(f"Python {sys.version.split()[0]}")
    print(f"{'workload':18s} {'engine':10s} {'funcs':>6s} {'exact':>6s} {'generators':>10s} "
          f"{'varies':>6s} {'other':>6s} {'extra':>6s}")
    total = {}
    for name in args.workload or WORKLOADS:
        for engine, n, exact, gens, unstable, other, extra in compare(
                name, WORKLOADS[name], engines, args.show) or ():
            t = total.setdefault(engine, [0] * 6)
            for i, v in enumerate((n, exact, gens, unstable, len(other), len(extra))):
                t[i] += v
    for engine, (n, exact, gens, unstable, other, extra) in total.items():
        print(f"{'all':18s} {engine:10s} {n:6d} {exact:6d} {gens:10d} {unstable:6d} {other:6d} "
              f"{extra:6d}")
    print("funcs: functions cProfile saw; exact: same (calls, primitive calls); generators:"
          " the documented difference (cProfile counts resumptions, hyprof instances);"
          " varies: two cProfile runs of the workload disagree; other: any other difference;"
          " extra: functions only hyprof saw")
    return 0


if __name__ == "__main__":
    sys.exit(main())
