"""Integrations of hyprof with other software.

- ``hyprof.contrib.django``: ``ProfilerMiddleware`` (one request on demand,
  or a share of requests in production) and SQL query capture.

The pytest plugin lives in ``hyprof.pytest_plugin``. None of these modules is
imported by ``import hyprof``: each needs its framework installed.
"""
