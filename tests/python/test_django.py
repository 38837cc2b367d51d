"""hyprof.contrib.django.ProfilerMiddleware against real Django, with the
example shop's app (examples/django/catalog) on a SQLite file; and the pprof
views of hyprof.contrib.django_pprof."""

import asyncio
import json
import os
import shutil
import sys
import tempfile
import threading
import time

import pytest

django = pytest.importorskip("django", reason="Django is not installed "
                             "(scripts/install-deps.sh installs it)")

SRCDIR = os.environ.get("HYP_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE = os.path.join(SRCDIR, "examples", "django")
if EXAMPLE not in sys.path:
    sys.path.insert(0, EXAMPLE)

from django.conf import settings

_TMP = tempfile.mkdtemp(prefix="hyprof-django-test-")
PROFILE_DIR = os.path.join(_TMP, "profiles")

if not settings.configured:
    settings.configure(
        DEBUG=True,
        SECRET_KEY="test-only",
        ALLOWED_HOSTS=["testserver"],
        INTERNAL_IPS=["127.0.0.1"],
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "catalog",
        ],
        MIDDLEWARE=[
            "hyprof.contrib.django.ProfilerMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        ROOT_URLCONF=__name__,
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                               "NAME": os.path.join(_TMP, "db.sqlite3")}},
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates",
                    "APP_DIRS": True}],
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        USE_TZ=True,
        HYPROF_PROFILE_DIR=PROFILE_DIR,
    )
    django.setup()

import hyprof
from asgiref.sync import sync_to_async
from catalog import views as shop
from catalog.models import Product, seed
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.http import JsonResponse, StreamingHttpResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import include, path
from hyprof.contrib import django as hdj
from workloads import spin

N_PRODUCTS = 120


# ---------------------------------------------------------------- views of the tests

def work_a(n):
    return sum(i * i for i in range(n))


def work_b(n):
    return sum(i + 1 for i in range(n))


RUNS = {"a": (work_a, 7), "b": (work_b, 11)}
_sync_barrier = threading.Barrier(2)
_async_barrier = None


def view_work(request, tag):
    fn, times = RUNS[tag]
    if "together" in request.GET:
        # Both requests are inside their views at the same time.
        _sync_barrier.wait(timeout=20)
    for _ in range(times):
        fn(200)
        if "slow" in request.GET:
            time.sleep(0.01)
    if "together" in request.GET:
        _sync_barrier.wait(timeout=20)
    return JsonResponse({"tag": tag})


async def aview_work(request, tag):
    fn, times = RUNS[tag]
    if "together" in request.GET:
        await _async_barrier.wait()
    for _ in range(times):
        fn(200)
        await asyncio.sleep(0.001)    # lets the other request's task run in between
    return JsonResponse({"tag": tag})


class Boom(Exception):
    pass


def explode(depth):
    if depth == 0:
        raise Boom("the view failed")
    explode(depth - 1)


def view_boom(request):
    explode(3)


def rows(n):
    for i in range(n):
        yield f"row {i}\n"


def view_stream(request):
    return StreamingHttpResponse(rows(40), content_type="text/plain")


async def arows(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield f"row {i}\n".encode()


async def view_astream(request):
    return StreamingHttpResponse(arows(30), content_type="text/plain")


urlpatterns = [
    path("products/", shop.product_list),
    path("api/products/", shop.product_api),
    path("summary/", shop.summary_async),
    path("export.csv", shop.export_csv),
    path("fib/<int:n>/", shop.fibonacci),
    path("work/<str:tag>/", view_work),
    path("awork/<str:tag>/", aview_work),
    path("boom/", view_boom),
    path("stream/", view_stream),
    path("astream/", view_astream),
    path("debug/pprof/", include("hyprof.contrib.django_pprof")),
]


# ---------------------------------------------------------------- helpers

@pytest.fixture(scope="module", autouse=True)
def database():
    call_command("migrate", verbosity=0)
    assert seed(N_PRODUCTS) == N_PRODUCTS
    from django.contrib.auth.models import User

    if not User.objects.filter(username="root").exists():
        User.objects.create_superuser("root", "root@example.com", "pw")
        User.objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    yield
    from django.db import connections

    connections.close_all()
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture
def profile_dir(tmp_path):
    d = tmp_path / "profiles"
    with override_settings(HYPROF_PROFILE_DIR=str(d)):
        yield d


def calls(trace, qualname):
    """Calls of the functions whose name ends in qualname."""
    return sum(f.calls for f in trace.functions() if _named(f, qualname))


def _named(f, qualname):
    name = f.name or ""
    return name == qualname or name.endswith(("." + qualname, ":" + qualname))


def sql(trace):
    """{statement: calls} of the SQL entries of a trace."""
    out = {}
    for f in trace.functions():
        if f.name and "SQL: " in f.name:
            stmt = f.name[f.name.index("SQL: ") + 5:]
            out[stmt] = out.get(stmt, 0) + f.calls
    return out


def fib_calls(n):
    return 1 if n < 2 else 1 + fib_calls(n - 1) + fib_calls(n - 2)


def api_trace(response, profile_dir):
    path = response["X-Hyprof-Trace"]
    assert os.path.dirname(path) == str(profile_dir)
    assert os.path.exists(path), f"trace {path} was not saved"
    return hyprof.load(path)


def no_profiler_running():
    return sys.getprofile() is None


# ---------------------------------------------------------------- sync views

def test_browser_gets_the_html_report_of_one_request(profile_dir):
    r = Client().get("/fib/12/?profile")
    assert r.status_code == 200
    assert r["Content-Type"].startswith("text/html")
    assert r["X-Hyprof-Status"] == "200"
    body = r.content.decode()
    assert body.lstrip().lower().startswith("<!doctype html")
    assert "fibonacci" in body and "GET /fib/12/" in body
    assert "Server-Timing" in r and "hyprof;dur=" in r["Server-Timing"]
    assert no_profiler_running()


def test_the_html_report_shows_one_duration(profile_dir):
    import re

    from hyprof.render import _model

    r = Client().get("/fib/14/?profile")
    body = r.content.decode()
    # The title's, the flame graph's whole (the root's wall time in the
    # page's data) and Server-Timing's are one number.
    title = re.search(r"<title>hyprof: GET /fib/14/ -&gt; 200, ([^,]+),", body).group(1)
    data = json.loads(re.search(r'id="hyprof-data">(.*?)</script>', body, re.S).group(1))
    wall = data["metrics"].index(next(m for m in data["metrics"] if m["name"] == "wall_own"))
    whole = sum(data["values"][wall])  # the flame graph's root: every path's own time
    # dur is in ms to the nanosecond: read back as whole nanoseconds, since
    # 0.5085 * 1e6 is 508499.99... in floating point, which rounds the other way.
    dur = float(re.search(r"hyprof;dur=([\d.]+)", r["Server-Timing"]).group(1))
    assert round(dur * 1e6) == whole
    assert title == _model.format_value(whole, "ns")


def test_api_client_gets_the_response_and_a_trace_with_exact_counts(profile_dir):
    r = Client().get("/fib/15/", HTTP_X_HYPROF="1")
    assert r.status_code == 200
    assert json.loads(r.content) == {"n": 15, "fib": 610}
    timing = r["Server-Timing"]
    assert 'hyprof;dur=' in timing and 'desc="0 queries"' in timing
    trace = api_trace(r, profile_dir)
    assert trace.mode == "deterministic"
    assert calls(trace, "fib") == fib_calls(15) == 1973
    assert calls(trace, "fibonacci") == 1
    # The file is named by the view, the time and the process.
    name = os.path.basename(r["X-Hyprof-Trace"])
    assert name.startswith("catalog.views.fibonacci-")
    assert name.endswith(f"-{os.getpid()}-" + name.rsplit("-", 1)[1])
    assert no_profiler_running()


def test_accept_json_with_the_url_argument_is_an_api_client(profile_dir):
    r = Client().get("/api/products/?profile&category=books", HTTP_ACCEPT="application/json")
    assert r["Content-Type"] == "application/json"
    assert json.loads(r.content)["count"] == N_PRODUCTS // 5
    trace = api_trace(r, profile_dir)
    assert calls(trace, "product_api") == 1


def test_sql_queries_appear_in_the_profile_with_their_counts(profile_dir):
    client = Client()
    slow = client.get("/products/", HTTP_X_HYPROF="1")
    assert 'desc="51 queries"' in slow["Server-Timing"]
    statements = sql(api_trace(slow, profile_dir))
    # The N+1 pattern: one query for the products, one per row for its category.
    by_table = {stmt: n for stmt, n in statements.items() if "FROM" in stmt}
    assert sorted(by_table.values()) == [1, 50], statements
    one = next(s for s, n in by_table.items() if n == 50)
    assert one.startswith("SELECT") and '"catalog_category"' in one and "= ?" in one
    assert "LIMIT ?" in one

    fast = client.get("/products/?fast", HTTP_X_HYPROF="1")
    assert 'desc="1 queries"' in fast["Server-Timing"]
    statements = sql(api_trace(fast, profile_dir))
    assert list(statements.values()) == [1]
    assert "INNER JOIN" in next(iter(statements))


def test_sql_time_is_part_of_the_caller_time(profile_dir):
    r = Client().get("/products/", HTTP_X_HYPROF="1")
    trace = api_trace(r, profile_dir)
    sql_fs = [f for f in trace.functions() if f.name and "SQL: " in f.name]
    view = [f for f in trace.functions() if _named(f, "product_list")]
    assert len(view) == 1
    total_sql = sum(f.wall_cum for f in sql_fs)
    assert 0 < total_sql < view[0].wall_cum


def test_normalize_sql_folds_literals_and_lists():
    n = hdj.normalize_sql
    assert n('SELECT "a"."id" FROM "a" WHERE "a"."id" IN (%s, %s, %s) AND x = 3') == \
        'SELECT "a"."id" FROM "a" WHERE "a"."id" IN (...) AND x = ?'
    assert n("select * from t  where name = 'O''Brien'\n and t1.n = 2.5") == \
        "select * from t where name = ? and t1.n = ?"
    assert n('INSERT INTO "t" ("a", "b") VALUES (%s, %s), (%s, %s), (%s, %s)') == \
        'INSERT INTO "t" ("a", "b") VALUES (...), ...'
    assert n('SELECT "t"."id", "t"."name", "t"."price" FROM "t" WHERE "t"."id" = %s') == \
        'SELECT "t"."id", ... FROM "t" WHERE "t"."id" = ?'
    long = n("UPDATE t SET " + ", ".join(f"col{i} = {i}" for i in range(100)))
    assert len(long) == hdj.SQL_NAME_LIMIT and long.endswith("...")


# ---------------------------------------------------------------- async, concurrency

@pytest.mark.parametrize("trigger", ["header", "param"])
def test_async_view_under_asgi_has_its_own_functions(profile_dir, trigger):
    async def go():
        client = AsyncClient()
        if trigger == "header":
            return await client.get("/summary/", headers={"X-Hyprof": "1"})
        return await client.get("/summary/?profile", headers={"Accept": "application/json"})

    r = asyncio.run(go())
    assert r.status_code == 200
    data = json.loads(r.content)
    assert data["status"] == "ok" and len(data["categories"]) == 5
    trace = api_trace(r, profile_dir)
    assert calls(trace, "summary_async") == 1
    assert calls(trace, "score") == 1              # the async view's own function
    assert calls(trace, "_category_totals") == 1   # run in a sync_to_async thread
    assert list(sql(trace).values()) == [1]
    assert no_profiler_running()


def test_concurrent_requests_in_threads_get_separate_profiles(profile_dir):
    # Both requests are profiled at once: each view waits at a barrier for
    # the other to be inside its view, before and after its work, so neither
    # profile can end before the other has started.
    results = {}

    def one(tag):
        results[tag] = Client().get(f"/work/{tag}/?together&slow", HTTP_X_HYPROF="1")

    threads = [threading.Thread(target=one, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for r in results.values():
        assert r.status_code == 200 and "X-Hyprof-Skipped" not in r
    a = api_trace(results["a"], profile_dir)
    b = api_trace(results["b"], profile_dir)
    assert results["a"]["X-Hyprof-Trace"] != results["b"]["X-Hyprof-Trace"]
    assert (calls(a, "work_a"), calls(a, "work_b")) == (7, 0)
    assert (calls(b, "work_a"), calls(b, "work_b")) == (0, 11)
    # Each generator expression and sum() once per call of its work.
    assert (calls(a, "<genexpr>"), calls(b, "<genexpr>")) == (7, 11)
    assert (calls(a, "<built-in method builtins.sum>"),
            calls(b, "<built-in method builtins.sum>")) == (7, 11)
    assert calls(a, "view_work") == 1 and calls(b, "view_work") == 1
    assert no_profiler_running()


def awork_together(headers_b):
    """The responses of /awork/a/ (profiled) and /awork/b/ (with headers_b),
    the two views' steps interleaved on one event loop thread. A first
    unprofiled pair warms what Django sets up at its first requests (URL
    resolving, the async handler), which would otherwise land in the
    profile when this test runs first."""
    async def go(headers_a, headers_b):
        global _async_barrier
        _async_barrier = asyncio.Barrier(2)
        client = AsyncClient()
        return await asyncio.gather(
            client.get("/awork/a/?together", headers=headers_a),
            client.get("/awork/b/?together", headers=headers_b))

    asyncio.run(go({}, {}))
    return asyncio.run(go({"X-Hyprof": "1"}, headers_b))


def test_concurrent_requests_in_tasks_get_separate_profiles(profile_dir):
    # Both views are inside their profiles at once.
    ra, rb = awork_together({"X-Hyprof": "1"})
    for r in (ra, rb):
        assert r.status_code == 200 and "X-Hyprof-Skipped" not in r
    a = api_trace(ra, profile_dir)
    b = api_trace(rb, profile_dir)
    assert ra["X-Hyprof-Trace"] != rb["X-Hyprof-Trace"]
    assert (calls(a, "work_a"), calls(a, "work_b")) == (7, 0)
    assert (calls(b, "work_a"), calls(b, "work_b")) == (0, 11)
    assert (calls(a, "<genexpr>"), calls(b, "<genexpr>")) == (7, 11)
    assert calls(a, "aview_work") == 1 and calls(b, "aview_work") == 1
    assert no_profiler_running()


def test_unprofiled_task_on_the_same_loop_stays_out_of_the_profile(profile_dir):
    ra, rb = awork_together({})
    assert "X-Hyprof-Trace" not in rb
    a = api_trace(ra, profile_dir)
    assert (calls(a, "work_a"), calls(a, "work_b")) == (7, 0)
    assert calls(a, "aview_work") == 1


def test_unprofiled_concurrent_request_stays_out_of_the_profile(profile_dir):
    results = {}

    def one(tag, headers):
        results[tag] = Client().get(f"/work/{tag}/?together", **headers)

    threads = [threading.Thread(target=one, args=("a", {"HTTP_X_HYPROF": "1"})),
               threading.Thread(target=one, args=("b", {}))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert "X-Hyprof-Trace" not in results["b"]
    a = api_trace(results["a"], profile_dir)
    assert (calls(a, "work_a"), calls(a, "work_b")) == (7, 0)


# ---------------------------------------------------------------- streaming, errors

def test_streaming_response_is_profiled_until_its_body_is_consumed(profile_dir):
    r = Client().get("/stream/", HTTP_X_HYPROF="1")
    assert r.streaming
    path = r["X-Hyprof-Trace"]
    assert not os.path.exists(path), "saved before the body was sent"
    chunks = list(r.streaming_content)
    assert len(chunks) == 40 and chunks[-1] == b"row 39\n"
    r.close()
    trace = hyprof.load(path)
    assert calls(trace, "view_stream") == 1
    assert calls(trace, "rows") >= 1            # the generator ran inside the profile
    assert no_profiler_running()


def test_streaming_csv_export_with_orm_iteration(profile_dir):
    r = Client().get("/export.csv", HTTP_X_HYPROF="1")
    body = b"".join(r.streaming_content).decode()
    r.close()
    assert len(body.splitlines()) == N_PRODUCTS + 1
    trace = hyprof.load(r["X-Hyprof-Trace"])
    statements = sql(trace)
    # iterator(chunk_size=50) over 120 rows: one query on SQLite (no server cursor).
    assert sum(statements.values()) >= 1
    assert any('"catalog_product"' in s for s in statements)


def test_profiles_hold_only_the_requests_code(profile_dir, profiler_frames):
    # Neither the middleware nor its SQL capture: the request's calls from
    # the first one below the middleware, the queries' "SQL:" frames where
    # the ORM ran them, a streamed body's chunks at the top of the tree.
    from django.db import connections

    connections.close_all()  # the first request connects: the capture hooks in
    client = Client()
    for url in ("/products/", "/export.csv", "/stream/"):
        r = client.get(url, HTTP_X_HYPROF="1")
        if r.streaming:
            b"".join(r.streaming_content)
            r.close()
        trace = api_trace(r, profile_dir)
        assert profiler_frames(trace) == [], url
        roots = {n.function.name for n in trace.nodes()[1:] if n.parent == 0}
        assert "convert_exception_to_response.<locals>.inner" in roots, (url, roots)
        assert not [f for f in trace.functions() if f.filename == hdj.__file__], url
    assert sum(sql(api_trace(client.get("/products/", HTTP_X_HYPROF="1"),
                             profile_dir)).values()) == 51


def test_async_streaming_response_under_asgi(profile_dir):
    async def go():
        r = await AsyncClient().get("/astream/", headers={"X-Hyprof": "1"})
        chunks = [c async for c in r]
        return r, chunks

    r, chunks = asyncio.run(go())
    assert len(chunks) == 30
    trace = hyprof.load(r["X-Hyprof-Trace"])
    assert calls(trace, "view_astream") == 1


def test_html_report_of_a_streaming_response_consumes_it_inside_the_profile(profile_dir):
    r = Client().get("/export.csv?profile")
    assert r["Content-Type"].startswith("text/html")
    assert not r.streaming
    assert "SQL: SELECT" in r.content.decode()


def test_view_that_raises_still_stops_the_profiler(profile_dir):
    r = Client(raise_request_exception=False).get("/boom/", HTTP_X_HYPROF="1")
    assert r.status_code == 500
    trace = api_trace(r, profile_dir)
    assert calls(trace, "explode") == 4
    assert no_profiler_running()
    # The next request profiles normally.
    r = Client().get("/fib/5/", HTTP_X_HYPROF="1")
    assert calls(api_trace(r, profile_dir), "fib") == fib_calls(5)


def test_bad_mode_is_refused_with_a_clear_message(profile_dir):
    r = Client().get("/fib/5/?profile=../../etc/passwd")
    assert r.status_code == 400
    text = r.content.decode()
    assert "unknown profile mode" in text and "deterministic" in text and "sampling" in text
    assert not profile_dir.exists() or not any(profile_dir.iterdir())


def test_request_while_another_profiler_runs_is_served_unprofiled(profile_dir):
    with hyprof.Profiler():
        r = Client().get("/fib/6/", HTTP_X_HYPROF="1")
    assert json.loads(r.content)["fib"] == 8
    assert "X-Hyprof-Trace" not in r
    assert "already running" in r["X-Hyprof-Skipped"]
    assert no_profiler_running()
    # Once it is gone, profiling works again.
    r = Client().get("/fib/6/", HTTP_X_HYPROF="1")
    assert calls(api_trace(r, profile_dir), "fib") == fib_calls(6)


def test_a_sampling_profile_runs_alone_and_others_give_up_after_hyprof_wait(profile_dir):
    # As if a request were being profiled in the sampling mode.
    assert hdj._SLOT.acquire(True, 0)
    try:
        with override_settings(HYPROF_WAIT=0.2):
            t0 = time.monotonic()
            r = Client().get("/fib/6/", HTTP_X_HYPROF="1")
            waited = time.monotonic() - t0
        with override_settings(HYPROF_SAMPLE_RATE=1.0, HYPROF_WAIT=5):
            t0 = time.monotonic()
            Client(REMOTE_ADDR="10.1.2.3").get("/fib/6/")
            sampled_wait = time.monotonic() - t0
    finally:
        hdj._SLOT.release(True)
    assert json.loads(r.content)["fib"] == 8
    assert r["X-Hyprof-Skipped"] == ("another request of this process is being profiled "
                                     "in the sampling mode")
    assert waited >= 0.2
    assert sampled_wait < 2           # a sampled request never waits
    assert not profile_dir.exists()


def test_deterministic_profiles_run_beside_each_other_not_beside_a_sampling_one(profile_dir):
    # As if another request were being profiled in the deterministic mode.
    assert hdj._SLOT.acquire(False, 0)
    try:
        with override_settings(HYPROF_WAIT=5):
            t0 = time.monotonic()
            r = Client().get("/fib/6/", HTTP_X_HYPROF="1")
            waited = time.monotonic() - t0
        with override_settings(HYPROF_SAMPLE_RATE=1.0):
            Client(REMOTE_ADDR="10.1.2.3").get("/fib/6/")
    finally:
        hdj._SLOT.release(False)
    assert "X-Hyprof-Skipped" not in r and waited < 2
    assert calls(api_trace(r, profile_dir), "fib") == fib_calls(6)
    # The sampled request was not sampled: only the triggered trace exists.
    assert len(os.listdir(profile_dir)) == 1


# ---------------------------------------------------------------- who may profile

def test_client_outside_internal_ips_gets_the_normal_response(profile_dir):
    r = Client(REMOTE_ADDR="10.1.2.3").get("/fib/10/?profile", HTTP_X_HYPROF="1")
    assert r.status_code == 200 and json.loads(r.content)["fib"] == 55
    assert not any(h.lower().startswith("x-hyprof") for h in r.headers)
    assert "Server-Timing" not in r
    assert not profile_dir.exists()


def test_superuser_may_profile_from_anywhere(profile_dir):
    client = Client(REMOTE_ADDR="10.1.2.3")
    assert client.login(username="root", password="pw")
    r = client.get("/fib/10/", HTTP_X_HYPROF="1")
    assert calls(api_trace(r, profile_dir), "fib") == fib_calls(10)


def test_staff_user_who_is_not_superuser_may_not(profile_dir):
    client = Client(REMOTE_ADDR="10.1.2.3")
    assert client.login(username="staff", password="pw")
    r = client.get("/fib/10/?profile")
    assert r["Content-Type"] == "application/json"
    assert "X-Hyprof-Trace" not in r


def test_superuser_under_asgi(profile_dir):
    async def go():
        client = AsyncClient(REMOTE_ADDR="10.1.2.3")
        assert await client.alogin(username="root", password="pw")
        return await client.get("/summary/", headers={"X-Hyprof": "1"})

    r = asyncio.run(go())
    assert calls(api_trace(r, profile_dir), "score") == 1


def test_debug_off_means_no_profile_and_no_middleware(profile_dir):
    with override_settings(DEBUG=False):
        client = Client()
        assert client.login(username="root", password="pw")
        r = client.get("/fib/10/?profile", HTTP_X_HYPROF="1")
        assert r["Content-Type"] == "application/json"
        assert "X-Hyprof-Trace" not in r and "Server-Timing" not in r
        with pytest.raises(django.core.exceptions.MiddlewareNotUsed):
            hdj.ProfilerMiddleware(lambda request: None)
    assert not profile_dir.exists()


def test_is_superuser_callback_lets_superusers_profile_production(profile_dir):
    with override_settings(DEBUG=False,
                           HYPROF_SHOW_CALLBACK="hyprof.contrib.django.is_superuser"):
        anonymous = Client().get("/fib/7/", HTTP_X_HYPROF="1")
        root = Client(REMOTE_ADDR="10.1.2.3")
        assert root.login(username="root", password="pw")
        r = root.get("/fib/7/", HTTP_X_HYPROF="1")
    assert "X-Hyprof-Trace" not in anonymous and "Server-Timing" not in anonymous
    assert calls(api_trace(r, profile_dir), "fib") == fib_calls(7)


def allow_header_only(request):
    return request.headers.get("X-Team") == "perf"


def test_show_callback_replaces_the_rule(profile_dir):
    with override_settings(HYPROF_SHOW_CALLBACK=f"{__name__}.allow_header_only"):
        # Internal IP and DEBUG no longer suffice...
        r = Client().get("/fib/8/", HTTP_X_HYPROF="1")
        assert "X-Hyprof-Trace" not in r
        # ...the callback decides, also with DEBUG off.
        with override_settings(DEBUG=False):
            r = Client(REMOTE_ADDR="10.9.9.9").get("/fib/8/", HTTP_X_HYPROF="1",
                                                    HTTP_X_TEAM="perf")
            assert calls(api_trace(r, profile_dir), "fib") == fib_calls(8)
    with override_settings(HYPROF_SHOW_CALLBACK=lambda request: False):
        assert "X-Hyprof-Trace" not in Client().get("/fib/8/", HTTP_X_HYPROF="1")


@pytest.mark.parametrize("overrides, named", [
    ({"HYPROF_SAMPLE_RATE": 1.5}, "HYPROF_SAMPLE_RATE"),
    ({"HYPROF_SAMPLE_RATE": -0.1}, "HYPROF_SAMPLE_RATE"),
    ({"HYPROF_SAMPLE_RATE": "0.5"}, "HYPROF_SAMPLE_RATE"),
    ({"HYPROF_SAMPLE_RATE": True}, "HYPROF_SAMPLE_RATE"),
    ({"HYPROF_SAMPLE_RATE": None}, "HYPROF_SAMPLE_RATE"),
    ({"HYPROF_SHOW_CALLBACK": "no.such.module.func"}, "HYPROF_SHOW_CALLBACK"),
    ({"HYPROF_SHOW_CALLBACK": 42}, "HYPROF_SHOW_CALLBACK"),
    ({"HYPROF_MODE": "fast"}, "HYPROF_MODE"),
    ({"HYPROF_SAMPLE_MODE": "exact"}, "HYPROF_SAMPLE_MODE"),
    ({"HYPROF_OPTIONS": {"sampling": 3}}, "HYPROF_OPTIONS"),
    ({"HYPROF_OPTIONS": {"deterministic": {"max_nodes": "many"}}},
     r"HYPROF_OPTIONS\['deterministic'\]"),
    ({"HYPROF_OPTIONS": {"deterministic": {"context": None}}}, "cannot set 'context'"),
    ({"HYPROF_WAIT": -1}, "HYPROF_WAIT"),
    ({"HYPROF_PROFILE_DIR": 7}, "HYPROF_PROFILE_DIR"),
])
def test_bad_settings_name_themselves(overrides, named):
    with override_settings(**overrides), pytest.raises(ImproperlyConfigured, match=named):
        hdj.ProfilerMiddleware(lambda request: None)


# ---------------------------------------------------------------- production sampling

def test_sample_rate_one_profiles_every_request_in_sampling_mode(profile_dir):
    with override_settings(DEBUG=False, HYPROF_SAMPLE_RATE=1.0):
        client = Client(REMOTE_ADDR="10.1.2.3")
        for _ in range(3):
            r = client.get("/fib/27/")
            assert json.loads(r.content)["fib"] == 196418
            # Sampled requests carry nothing the client could see.
            assert "X-Hyprof-Trace" not in r and "Server-Timing" not in r
    files = sorted(os.listdir(profile_dir))
    assert len(files) == 3
    total = in_fib = 0
    for name in files:
        assert name.startswith("catalog.views.fibonacci-")
        assert f"-{os.getpid()}-" in name
        trace = hyprof.load(os.path.join(profile_dir, name))
        assert trace.mode == "sampling"
        total += sum(f.own_samples for f in trace.functions())
        in_fib += sum(f.cum_samples for f in trace.functions() if f.name == "fibonacci")
    # fib(27) burns some 20 ms of CPU or more; at 1000 samples a second
    # most samples land in the view.
    assert total >= 10 and in_fib >= 0.5 * total, (total, in_fib)
    assert no_profiler_running()


def test_sampled_requests_hold_only_the_requests_code(profile_dir, profiler_frames):
    # A sample stops at the middleware: not its frames, nor the server's
    # (here the test client's and pytest's) around it.
    with override_settings(DEBUG=False, HYPROF_SAMPLE_RATE=1.0):
        client = Client(REMOTE_ADDR="10.1.2.3")
        for _ in range(2):
            assert json.loads(client.get("/fib/25/").content)["fib"] == 75025
    for name in os.listdir(profile_dir):
        trace = hyprof.load(os.path.join(profile_dir, name))
        assert profiler_frames(trace) == []
        roots = {n.function.name for n in trace.nodes()[1:] if n.parent == 0}
        assert roots == {"convert_exception_to_response.<locals>.inner"}, roots


def test_sample_rate_takes_that_share_of_requests(profile_dir, monkeypatch):
    import random

    monkeypatch.setattr(hdj, "_random", random.Random(1234))
    same = random.Random(1234)
    expected = sum(same.random() < 0.25 for _ in range(40))
    with override_settings(DEBUG=False, HYPROF_SAMPLE_RATE=0.25,
                           HYPROF_SAMPLE_MODE="deterministic"):
        client = Client()
        for _ in range(40):
            client.get("/fib/3/")
    files = os.listdir(profile_dir)
    assert len(files) == expected and 4 <= expected <= 16


def test_sample_rate_zero_saves_nothing(profile_dir):
    with override_settings(HYPROF_SAMPLE_RATE=0):
        for _ in range(5):
            Client(REMOTE_ADDR="10.1.2.3").get("/fib/3/")
    assert not profile_dir.exists()


def test_query_capture_outside_a_request():
    with hdj.capture_queries() as q:
        assert Product.objects.filter(stock__gt=5).count() > 0
        list(Product.objects.all()[:3])
    assert q.count == 2
    assert sorted(n for n, _ in q.by_statement.values()) == [1, 1]

    async def from_task():
        with hdj.capture_queries() as q:
            await sync_to_async(lambda: Product.objects.count())()
        return q.count

    assert asyncio.run(from_task()) == 1


# ---------------------------------------------------------------- the profiler's context filter

ENGINES = ["setprofile"] + (["monitoring"] if sys.version_info >= (3, 12) else [])


@pytest.mark.parametrize("engine", ENGINES)
def test_context_filter_follows_tasks_and_threads_of_one_context(engine):
    """What the middleware relies on: only calls made while the variable
    holds the value count, in tasks and executor threads that inherit it."""
    import concurrent.futures
    import contextvars

    var = contextvars.ContextVar("test_request")
    mine = object()

    async def request(tag, marked):
        if marked:
            var.set(mine)
        fn, times = RUNS[tag]
        loop = asyncio.get_running_loop()
        for _ in range(times):
            fn(50)
            await asyncio.sleep(0)
        # An executor thread running a copy of this context.
        ctx = contextvars.copy_context()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            await loop.run_in_executor(pool, ctx.run, fn, 50)

    async def both():
        await asyncio.gather(request("a", True), request("b", False))

    p = hyprof.Profiler(context=(var, mine), engine=engine)
    with p:
        asyncio.run(both())
        work_b(50)          # outside the context: not counted
    trace = p.trace()
    assert (calls(trace, "work_a"), calls(trace, "work_b")) == (7 + 1, 0)
    assert len(trace.threads()) == 2        # the loop's thread and the executor's


def test_context_filter_refuses_what_is_not_a_context_variable():
    with pytest.raises(hyprof.ProfilerError, match=r"\(contextvars.ContextVar, value\) pair"):
        hyprof.Profiler(context="request")
    with pytest.raises(hyprof.ProfilerError, match="pair"):
        hyprof.Profiler(context=(object(), 1))


# ---------------------------------------------------------------- the pytest plugin's query budget

def test_query_budget_counts_the_queries_of_requests():
    from hyprof.pytest_plugin import Budget

    with Budget(max_queries=2) as b:
        Client().get("/products/?fast")
    assert b.queries == 1
    with pytest.raises(pytest.fail.Exception,
                       match=r"51 SQL queries ran, budget 3:\n    50 x SELECT .*catalog_category"), \
            Budget(max_queries=3):
        Client().get("/products/")


def test_the_budget_example_of_the_docs_counts_a_property_and_a_view():
    # docs/pytest.md's example, on the example shop it names.
    from hyprof.pytest_plugin import Budget

    with Budget(max_calls={"catalog.models.Product.price": 50,
                           "catalog.views.product_list": 1}, max_queries=3) as budget:
        Client().get("/products/?fast=1")
    assert budget.calls == {"catalog.models.Product.price": 50,
                            "catalog.views.product_list": 1}
    assert budget.queries == 1


def test_middleware_is_a_coroutine_function_for_an_async_chain():
    async def get_response(request):
        return None

    assert asyncio.iscoroutinefunction(hdj.ProfilerMiddleware(get_response))
    assert not asyncio.iscoroutinefunction(hdj.ProfilerMiddleware(lambda request: None))



# ---------------------------------------------------------------- pprof views

@pytest.fixture
def continuous_profiler():
    import hyprof.continuous

    p = hyprof.continuous.start(frequency=200, tick=0.1, retain=10)
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            spin(2000)

    t = threading.Thread(target=busy, name="django-cruncher")
    t.start()
    yield p
    stop.set()
    t.join()
    hyprof.continuous.stop()


def _pprof_functions(body):
    from hyprof.render import pprof as P

    msg = P.decode(body)
    st = [s.decode() for s in msg[6]]
    return {st[P.decode(f)[2][0]] for f in msg.get(5, [])}


def test_pprof_views_are_for_staff_only(continuous_profiler):
    assert Client().get("/debug/pprof/").status_code == 403
    plain = Client()
    from django.contrib.auth.models import User

    if not User.objects.filter(username="plain").exists():
        User.objects.create_user("plain", "plain@example.com", "pw")
    assert plain.login(username="plain", password="pw")
    assert plain.get("/debug/pprof/profile?seconds=1").status_code == 403
    staff = Client()
    assert staff.login(username="staff", password="pw")
    r = staff.get("/debug/pprof/")
    assert r.status_code == 200 and b'href="profile?seconds=30"' in r.content
    t0 = time.monotonic()
    r = staff.get("/debug/pprof/profile?seconds=0.5")
    assert r.status_code == 200 and 0.45 < time.monotonic() - t0 < 3
    assert r["Content-Type"] == "application/octet-stream"
    assert r["Content-Disposition"] == 'attachment; filename="profile"'
    assert "spin" in _pprof_functions(r.content)
    # The same answers as the standalone server's: one code for both.
    r = staff.get("/debug/pprof/profile?seconds=abc")
    assert r.status_code == 400 and b"is not a number of seconds" in r.content
    assert staff.get("/debug/pprof/heap").status_code == 501
    assert staff.get("/debug/pprof/goroutine").status_code == 404


def test_pprof_views_take_a_bearer_token(continuous_profiler):
    with override_settings(HYPROF_PPROF_TOKEN="scrape-me"):
        r = Client().get("/debug/pprof/recent?seconds=1")
        assert r.status_code == 401 and r["WWW-Authenticate"] == 'Bearer realm="hyprof"'
        r = Client().get("/debug/pprof/recent?seconds=1",
                         HTTP_AUTHORIZATION="Bearer nope")
        assert r.status_code == 401
        r = Client().get("/debug/pprof/recent?seconds=1",
                         HTTP_AUTHORIZATION="Bearer scrape-me")
        assert r.status_code == 200 and "spin" in _pprof_functions(r.content)


def test_pprof_view_under_asgi_with_a_callback(continuous_profiler):
    async def go():
        return await AsyncClient().get("/debug/pprof/profile?seconds=0.5",
                                       headers={"X-Team": "perf"})

    with override_settings(HYPROF_PPROF_CALLBACK=allow_header_only):
        r = asyncio.run(go())
    assert r.status_code == 200 and "spin" in _pprof_functions(r.content)


def test_pprof_view_without_a_profiler_says_how_or_starts_one():
    import hyprof.continuous

    assert hyprof.continuous.current() is None
    staff = Client()
    assert staff.login(username="staff", password="pw")
    r = staff.get("/debug/pprof/profile?seconds=0.3")
    assert r.status_code == 503 and b"hyprof.continuous.start()" in r.content
    with override_settings(HYPROF_CONTINUOUS={"frequency": 200, "tick": 0.1, "retain": 5}):
        try:
            r = staff.get("/debug/pprof/profile?seconds=0.3")
            assert r.status_code == 200
            p = hyprof.continuous.current()
            assert p is not None and p.retain == 5
        finally:
            hyprof.continuous.stop()


# ---------------------------------------------------------------- request labels

def _spin_view(request, n):
    spin(n)
    return JsonResponse({"n": n})


def _spin_other_view(request, n):
    spin(n)
    return JsonResponse({"n": n})


async def _aspin_view(request, n):
    spin(n)
    return JsonResponse({"n": n})


async def _aspin_other_view(request, n):
    spin(n)
    return JsonResponse({"n": n})


urlpatterns += [
    path("spin/<int:n>/", _spin_view),
    path("spin2/<int:n>/", _spin_other_view),
    path("aspin/<int:n>/", _aspin_view),
    path("aspin2/<int:n>/", _aspin_other_view),
]

LABEL_MIDDLEWARE = ["hyprof.contrib.django_labels.LabelMiddleware"] + [
    m for m in settings.MIDDLEWARE if "ProfilerMiddleware" not in m]


@pytest.mark.parametrize("asgi", [False, True], ids=["wsgi", "asgi"])
def test_label_middleware_labels_samples_with_view_and_method(asgi):
    """Sync views under WSGI, async views under ASGI: each view runs on the
    request's thread, whose samples carry its view and method."""
    from hyprof import labels
    p = hyprof.Profiler(mode="sampling", frequency=500)
    one, two = ("_aspin_view", "_aspin_other_view") if asgi else \
        ("_spin_view", "_spin_other_view")
    prefix = "aspin" if asgi else "spin"
    with override_settings(MIDDLEWARE=LABEL_MIDDLEWARE):
        with p:
            if asgi:
                async def go():
                    c = AsyncClient()
                    for _ in range(20):
                        assert (await c.get(f"/{prefix}/100000/")).status_code == 200
                        assert (await c.post(f"/{prefix}2/100000/")).status_code == 200
                asyncio.run(go())
            else:
                c = Client()
                for _ in range(20):
                    assert c.get(f"/{prefix}/100000/").status_code == 200
                    assert c.post(f"/{prefix}2/100000/").status_code == 200
    assert labels.current() == {}
    t = p.trace()
    views = t.labels().get("view", [])
    assert views == sorted([f"{__name__}.{one}", f"{__name__}.{two}"])
    assert set(t.labels()["method"]) == {"GET", "POST"}
    total = sum(f.own_samples for f in t.functions())
    get = t.where(view=f"{__name__}.{one}", method="GET")
    post = t.where(view=f"{__name__}.{two}", method="POST")
    n = {name: {f.name.rsplit(".", 1)[-1]: f.cum_samples for f in sub.functions()}
         for name, sub in (("get", get), ("post", post))}
    # each view's samples are its own: the spin under it, no other view
    assert n["get"].get(one, 0) > 0 and two not in n["get"]
    assert n["post"].get(two, 0) > 0 and one not in n["post"]
    # and most of the run's samples are labelled with their view
    labelled = sum(f.own_samples for f in t.where(view=views).functions())
    assert labelled >= 0.6 * total, (labelled, total)
