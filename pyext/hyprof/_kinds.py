"""The format's codes for function kinds and metric kinds, in one place
(docs/FORMAT.md, sections 3 and 4.2). Every module that turns one into the
other uses these; this module imports nothing."""

# FUNCS record kind codes 0, 1, 2.
FUNC_KINDS = ("python", "builtin", "special")
# Metric column kinds, in the order of hyp_metric_kind_t.
METRIC_KINDS = ("own", "cum", "calls", "rec", "edge_rec")


def func_kind_name(kind):
    """A function kind as its name, given its name or its code."""
    if isinstance(kind, str):
        return kind
    return FUNC_KINDS[kind] if isinstance(kind, int) and 0 <= kind < len(FUNC_KINDS) \
        else FUNC_KINDS[0]


def func_kind_code(kind):
    """A function kind as its code, given its name or its code."""
    if isinstance(kind, int):
        return kind
    return FUNC_KINDS.index(kind) if kind in FUNC_KINDS else 0


def metric_kind_name(kind):
    """A metric kind as its name, given its name or its code."""
    if isinstance(kind, str):
        return kind
    return METRIC_KINDS[kind] if isinstance(kind, int) and 0 <= kind < len(METRIC_KINDS) \
        else METRIC_KINDS[0]
