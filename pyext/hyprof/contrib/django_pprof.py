"""The pprof endpoints of hyprof.serve as Django views, for services that
cannot open another port (docs/continuous.md, docs/django.md).

    # urls.py
    from django.urls import include, path
    urlpatterns = [
        path("debug/pprof/", include("hyprof.contrib.django_pprof")),
        ...
    ]

The views answer through hyprof.serve.Endpoints, the same code as the
standalone server: ``profile?seconds=N``, ``recent?seconds=N``, the index,
and the 501 of ``allocs`` and ``heap``. They serve the process's continuous
profiler (hyprof.continuous.current()); with ``HYPROF_CONTINUOUS`` (a dict
of its options) the first request of a process that has none starts one,
so each worker of a pre-fork server samples itself.

Who may ask: a client sending ``Authorization: Bearer <HYPROF_PPROF_TOKEN>``
(a scraper), an active staff user (or superuser) logged in, or whoever
``HYPROF_PPROF_CALLBACK`` (a callable taking the request, or its dotted path)
accepts, in place of the staff rule. Anyone else gets 401 when a token is
set (so that a scraper knows what to send), else 403.

The view is asynchronous, so that a scrape waiting 30 seconds for its
profile holds no worker thread under ASGI; under WSGI Django runs it in an
event loop of its own, and the wait holds the worker as any slow view does.
"""

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.urls import path

from hyprof import serve
from hyprof.contrib.django import _callback_setting, _user_of
from hyprof.errors import ProfilerError

__all__ = ["is_staff", "pprof", "pprof_urls", "urlpatterns"]

_endpoints = {}


def _setting(name, default=None):
    return getattr(settings, name, default)


def _token():
    token = _setting("HYPROF_PPROF_TOKEN")
    try:
        return serve.check_token(token)
    except ProfilerError as e:
        raise ImproperlyConfigured(f"HYPROF_PPROF_TOKEN: {e}") from None


def _options():
    opts = _setting("HYPROF_CONTINUOUS")
    if opts is not None and not isinstance(opts, dict):
        raise ImproperlyConfigured("HYPROF_CONTINUOUS must be a dict of "
                                   "hyprof.continuous.start() options (or None), got "
                                   f"{opts!r}")
    return opts


def _get_endpoints():
    """One Endpoints per set of settings (they are read at each request, so
    override_settings works, and the concurrency limit is shared)."""
    opts = _options()
    limit = _setting("HYPROF_PPROF_MAX_SECONDS")
    key = (repr(sorted(opts.items())) if opts is not None else None, limit)
    ep = _endpoints.get(key)
    if ep is None:
        try:
            ep = _endpoints.setdefault(key, serve.Endpoints(None, max_seconds=limit,
                                                            start_options=opts))
        except ProfilerError as e:
            raise ImproperlyConfigured(f"HYPROF_PPROF_MAX_SECONDS: {e}") from None
    return ep


def is_staff(request):
    """The default rule: an active staff user or superuser is logged in."""
    user = getattr(request, "user", None)
    if user is None:
        user = _user_of(request)
    return bool(user is not None and getattr(user, "is_active", False)
                and (getattr(user, "is_staff", False) or getattr(user, "is_superuser", False)))


def _allowed(request, token):
    """True, or the serve.Response that refuses the request."""
    if token is not None and serve.authorized(request.headers.get("Authorization"), token):
        return True
    cb = _callback_setting("HYPROF_PPROF_CALLBACK")
    if (cb(request) if cb is not None else is_staff(request)):
        return True
    if token is not None:
        return serve.unauthorized()
    return serve._text(403, "forbidden: staff users only, or a bearer token "
                            "(HYPROF_PPROF_TOKEN)\n")


def _http(resp):
    out = HttpResponse(resp.body, status=resp.status, content_type=resp.content_type)
    for name, value in resp.headers:
        out[name] = value
    return out


async def pprof(request, name=""):
    """/debug/pprof/ and /debug/pprof/<name>, answered by hyprof.serve."""
    token = _token()
    # Who the user is may need the database: in Django's sync world.
    ok = await sync_to_async(_allowed)(request, token)
    if ok is not True:
        return _http(ok)
    query = {k: request.GET.getlist(k)[0] for k in request.GET}
    endpoints = _get_endpoints()
    # collect() blocks for its seconds: in a thread of its own, not the
    # event loop's nor the one Django runs sync code in.
    resp = await sync_to_async(endpoints.respond, thread_sensitive=False)(name, query,
                                                                          request.method)
    return _http(resp)


def pprof_urls():
    """The URL patterns to include under a prefix such as "debug/pprof/":
    the index at the prefix itself, each profile below it."""
    return [path("", pprof, name="hyprof-pprof-index"),
            path("<str:name>", pprof, name="hyprof-pprof")]


urlpatterns = pprof_urls()
