"""What hyprof's Django middlewares share: sync and async capable, each
instance in the mode of the handler it wraps (Django's middleware
protocol)."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction


class Middleware:
    """Calls through self.get_response; is_async tells which way."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
