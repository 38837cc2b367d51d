"""Integrations of hyprof with other software.

- ``hyprof.contrib.django``: ``ProfilerMiddleware`` (one request on demand,
  or a share of requests in production).
- ``hyprof.contrib.django_sql``: Django's SQL queries captured per context
  (``capture_queries``), which the middleware and the pytest plugin use; it
  needs Django's database layer only.
- ``hyprof.contrib.django_pprof``: the pprof endpoints of hyprof.serve as
  Django views.
- ``hyprof.contrib.django_labels``: ``LabelMiddleware``, each request's
  ``view`` and ``method`` as labels of its samples.

The pytest plugin lives in ``hyprof.pytest_plugin``. None of these modules is
imported by ``import hyprof``: each needs its framework installed.
"""
