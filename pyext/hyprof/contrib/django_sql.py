"""Django's SQL queries, captured without Django's request handling: what
the middleware (hyprof.contrib.django) shows in a request's profile and the
pytest plugin's ``hyprof_budget(max_queries=N)`` counts.

A wrapper on every database connection (``connection.execute_wrappers``)
sees each query and hands it, named by its normalised statement, to the
query logs active in the context that ran it (a ``ContextVar``, which
asyncio tasks and ``sync_to_async`` threads inherit); and runs it inside a
function named ``SQL: <statement>``, so that a profiler sees the query as a
call of its own, where the ORM ran it. With no log active the wrapper costs
one context-variable read per query. Only Django's database layer is
imported here.
"""

import contextvars
import re
import threading
import time
import types

from django.db import connections
from django.db.backends.signals import connection_created

__all__ = ["SQL_NAME_LIMIT", "QueryLog", "capture_queries", "install_sql_capture",
           "normalize_sql"]

# The query logs that want to see the queries run in this context. A context
# variable, not a thread-local: asyncio tasks and sync_to_async threads
# inherit it.
_SINKS = contextvars.ContextVar("hyprof_django_query_sinks", default=())

_SQL_STRING = re.compile(r"'(?:[^']|'')*'")
_SQL_NUMBER = re.compile(r"(?<![\w\"`.])-?\d+(?:\.\d+)?\b")
_SQL_PLACEHOLDER = re.compile(r"%s|%\([^)]*\)s|\?|:\w+")
_SQL_IN_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_SQL_VALUES_LIST = re.compile(r"(\(\s*\?(?:\s*,\s*\?)*\s*\))(?:\s*,\s*\(\s*\?(?:\s*,\s*\?)*\s*\))+")
_SQL_SPACE = re.compile(r"\s+")
_SQL_SELECT_LIST = re.compile(r"^(SELECT\s+(?:DISTINCT\s+)?)([^,]+?),\s.*?(\sFROM\s)",
                              re.IGNORECASE)
SQL_NAME_LIMIT = 200


def normalize_sql(sql):
    """The statement with literals and placeholders as ``?``, lists of them
    folded (``IN (...)``), a SELECT's column list cut to its first column
    (``SELECT "t"."id", ... FROM``), whitespace collapsed and the result cut
    to SQL_NAME_LIMIT characters: one short name per query shape, whatever
    its parameters."""
    if isinstance(sql, bytes):
        sql = sql.decode("utf-8", "replace")
    s = _SQL_SPACE.sub(" ", str(sql)).strip()
    s = _SQL_STRING.sub("?", s)
    s = _SQL_PLACEHOLDER.sub("?", s)
    s = _SQL_NUMBER.sub("?", s)
    s = _SQL_VALUES_LIST.sub(r"\1, ...", s)
    s = _SQL_IN_LIST.sub("(...)", s)
    s = _SQL_SELECT_LIST.sub(r"\1\2, ...\3", s, count=1)
    if len(s) > SQL_NAME_LIMIT:
        s = s[:SQL_NAME_LIMIT - 3] + "..."
    return s


class QueryLog:
    """The queries seen while this log is active: count, total time, and per
    normalised statement the number of runs and their time (seconds)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.count = 0
        self.seconds = 0.0
        self.by_statement = {}

    def add(self, statement, seconds):
        with self._lock:
            self.count += 1
            self.seconds += seconds
            n, t = self.by_statement.get(statement, (0, 0.0))
            self.by_statement[statement] = (n + 1, t + seconds)

    def activate(self):
        """Starts seeing the queries of this context; returns a token for
        deactivate()."""
        install_sql_capture()
        return _SINKS.set(_SINKS.get() + (self,))

    @staticmethod
    def deactivate(token):
        """Stops seeing what activate() began to see (its token)."""
        _SINKS.reset(token)

    def as_records(self):
        """[{"sql", "calls", "seconds"}], slowest first."""
        with self._lock:
            items = list(self.by_statement.items())
        items.sort(key=lambda kv: kv[1][1], reverse=True)
        return [{"sql": s, "calls": n, "seconds": t} for s, (n, t) in items]


class capture_queries:
    """Context manager: ``with capture_queries() as q: ...`` then ``q.count``,
    ``q.seconds``, ``q.by_statement``. Sees the queries of this context and
    of the tasks and sync_to_async threads started from it."""

    def __enter__(self):
        self.log = QueryLog()
        self._token = self.log.activate()
        return self.log

    def __exit__(self, *exc):
        self.log.deactivate(self._token)
        return False


def _sql_trampoline(execute, sql, params, many, context):
    return execute(sql, params, many, context)


_SQL_FRAMES = {}
_SQL_FRAMES_LIMIT = 2000
_SQL_FRAMES_LOCK = threading.Lock()


def _sql_frame(statement):
    """A function named "SQL: <statement>" that calls through: running a
    query inside it makes the profiler see the query as a call of its own,
    nested where the ORM ran it, timed exactly like any function."""
    fn = _SQL_FRAMES.get(statement)
    if fn is not None:
        return fn
    with _SQL_FRAMES_LOCK:
        fn = _SQL_FRAMES.get(statement)
        if fn is None:
            # Bound the number of code objects made: past the limit, new
            # shapes share one name instead of growing memory forever.
            name = f"SQL: {statement}" if len(_SQL_FRAMES) < _SQL_FRAMES_LIMIT \
                else "SQL: (other statements)"
            code = _sql_trampoline.__code__.replace(co_name=name, co_qualname=name,
                                                    co_filename="<sql>", co_firstlineno=1)
            fn = types.FunctionType(code, {}, name)
            fn.__module__ = "sql"
            _SQL_FRAMES[statement] = fn
    return fn


def _execute_wrapper(execute, sql, params, many, context):
    # The program's profile shows the query's "SQL:" frame where the ORM ran
    # it: this wrapper is left out of it, and its own work, in the two
    # helpers, with what they call (_OMIT).
    begun = _sql_begin(sql)
    if begun is None:
        return execute(sql, params, many, context)
    try:
        return begun[0](execute, sql, params, many, context)
    finally:
        _sql_end(begun)


def _sql_begin(sql):
    """(the query's SQL frame, sinks, statement, start time), or None when
    no log listens."""
    sinks = _SINKS.get()
    if not sinks:
        return None
    statement = normalize_sql(sql)
    return _sql_frame(statement), sinks, statement, time.perf_counter()


def _sql_end(begun):
    _, sinks, statement, t0 = begun
    dt = time.perf_counter() - t0
    for sink in sinks:
        sink.add(statement, dt)


def _add_wrapper(connection):
    if _execute_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(_execute_wrapper)


def _on_connection_created(sender, connection, **kwargs):
    _add_wrapper(connection)


def install_sql_capture():
    """Puts the query wrapper on every database connection: those of this
    thread now, and each new one when it connects. Idempotent. The wrapper
    costs one context-variable read per query when nothing listens."""
    connection_created.connect(_on_connection_created, weak=False,
                               dispatch_uid="hyprof.contrib.django.sql")
    for conn in connections.all():
        _add_wrapper(conn)


# The capture's own code, which a request's profile leaves out (the
# middleware's _OMIT_CUT and _OMIT_SKIP): what runs around a query and as
# a log starts or stops listening, with what it calls; and the wrapper that
# calls the query through.
OMIT_CUT = (_sql_begin, _sql_end, QueryLog.activate, QueryLog.deactivate,
            _on_connection_created)
OMIT_SKIP = (_execute_wrapper,)
