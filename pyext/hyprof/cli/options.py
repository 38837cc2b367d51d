"""argparse value types the subcommands share: a value out of range is a
usage error (exit status 2) naming the option, as argparse's own are."""

import argparse

from ..errors import ProfilerError
from ..serve import parse_address

__all__ = ["address", "nonneg_int", "ranged"]


def nonneg_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % s) from None
    if v < 0:
        raise argparse.ArgumentTypeError("%r must be 0 or more" % s)
    return v


def ranged(kind, low, high, what):
    """An argparse type: a number of ``kind`` between low and high."""
    def parse(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError("%r is not %s" % (s, what)) from None
        if not low <= v <= high:  # also refuses nan
            raise argparse.ArgumentTypeError("%r must be between %s and %s" % (s, low, high))
        return v
    return parse


def address(s):
    """An argparse type: [HOST:]PORT (or [IPv6]:PORT), as (host, port);
    a missing host is 127.0.0.1 (hyprof.serve.parse_address)."""
    try:
        return parse_address(s)
    except ProfilerError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
