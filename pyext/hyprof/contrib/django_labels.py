"""Labels of every request for the sampling profilers (docs/django.md,
docs/continuous.md): the samples a request's thread takes carry ``method``
(the HTTP method) from the start of the request and ``view`` (the resolved
view's dotted path, ``catalog.views.product_list``) once Django has resolved
it, so that a continuous profile (``hyprof.serve``, ``HYPROF_CONTINUOUS``)
and its pprof can be split by endpoint.

    MIDDLEWARE = [
        "hyprof.contrib.django_labels.LabelMiddleware",
        ...
    ]

It costs two label changes per request (a dict lookup and a word written
each) and does nothing else. Labels belong to the thread that sets them: a
view Django runs on another thread than the request's (a sync view under
ASGI, an async view under WSGI) carries none. Async views under ASGI share
the event loop's thread: a sample taken while another request's task runs
carries the labels of whichever request changed the thread's labels last
(hyprof.labels says why); sync views under WSGI are exact.
"""

from hyprof import labels
from hyprof.contrib._middleware import Middleware

__all__ = ["LabelMiddleware", "view_path"]

_VIEW_TOKEN = "_hyprof_view_label"


def view_path(view_func):
    """The dotted path of a view: its class's for a class-based view."""
    func = getattr(view_func, "view_class", view_func)
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}"


class LabelMiddleware(Middleware):
    """Labels each request's samples with its method and view."""

    def __init__(self, get_response):
        super().__init__(get_response)
        if self.is_async:
            # Django would run a sync process_view in a worker thread, in a
            # copy of the request's context: label the request's own.
            self.process_view = self._aprocess_view

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        token = labels.push(method=request.method or "?")
        try:
            return self.get_response(request)
        finally:
            self._leave(request, token)

    async def __acall__(self, request):
        token = labels.push(method=request.method or "?")
        try:
            return await self.get_response(request)
        finally:
            self._leave(request, token)

    def process_view(self, request, view_func, view_args, view_kwargs):
        setattr(request, _VIEW_TOKEN, labels.push(view=view_path(view_func)))
        return None

    async def _aprocess_view(self, request, view_func, view_args, view_kwargs):
        return LabelMiddleware.process_view(self, request, view_func, view_args, view_kwargs)

    @staticmethod
    def _leave(request, token):
        view = request.__dict__.pop(_VIEW_TOKEN, None)
        if view is not None:
            try:
                labels.pop(view)
            except ValueError:  # set in another context (a sync view's thread)
                pass
        labels.pop(token)
