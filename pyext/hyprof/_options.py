"""Checks of the options the profilers take, in one wording for all: a bad
value raises ProfilerError naming the option, the value given and what is
accepted."""

import os

from .errors import ProfilerError


def number(name, value, kind, low, high=None, optional=True):
    """value if it is a kind (int, or (int, float)) from low to high (no upper
    bound with high None); None stays None if the option is optional."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ProfilerError("%s=%r must be %s" % (
            name, value, "an integer" if kind is int else "a number"))
    if not (low <= value and (high is None or value <= high)):  # NaN too
        raise ProfilerError("%s=%r must be %s" % (
            name, value, f"at least {low}" if high is None else f"between {low} and {high}"))
    return value


def path(name, value, what="a path"):
    """value as a str path (value may be os.PathLike)."""
    try:
        return os.fspath(value)
    except TypeError:
        raise ProfilerError(f"{name}={value!r} must be {what} (str or os.PathLike)") from None
