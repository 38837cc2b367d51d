"""pprof's profile.proto, gzipped: what ``go tool pprof``, Pyroscope, Parca
and Google Cloud Profiler read.

The protobuf encoding is written by hand (varints and length-delimited
fields; https://github.com/google/pprof/blob/main/proto/profile.proto), so
hyprof needs no protobuf runtime. One location per (function, line), one
sample per (thread, label set, call path) holding all of the trace's value
columns, the thread and the set's labels as labels. Locations in a sample go leaf first, as pprof wants.
"""

import gzip
import struct
import time

from . import _model

# What pprof calls our columns: (type, unit). Time columns are nanoseconds.
_TYPES = {
    "calls": ("calls", "count"),
    "wall_own": ("wall", "nanoseconds"),
    "cpu_own": ("cpu", "nanoseconds"),
}
_UNITS = {"ns": "nanoseconds", "bytes": "bytes", "count": "count"}


def _varint(n, out):
    if n < 0:
        n += 1 << 64
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


_SMALL = [bytes([i]) for i in range(128)]


def _uvarint(n):
    """The varint encoding of n >= 0, as bytes (small values cached)."""
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field_bytes(field, data):
    """A length-delimited field: key, length, data."""
    return _uvarint((field << 3) | 2) + _uvarint(len(data)) + data


def _key(field, wire, out):
    _varint((field << 3) | wire, out)


def _int(field, n, out):
    """A varint field; zero is the default and is left out."""
    if n:
        _key(field, 0, out)
        _varint(n, out)


def _bytes(field, data, out):
    _key(field, 2, out)
    _varint(len(data), out)
    out += data


def _packed(field, values, out):
    if values:
        buf = bytearray()
        for v in values:
            _varint(v, buf)
        _bytes(field, buf, out)


class _Strings:
    def __init__(self):
        self.ids = {"": 0}
        self.table = [""]

    def __call__(self, s):
        j = self.ids.get(s)
        if j is None:
            j = self.ids[s] = len(self.table)
            self.table.append(s)
        return j


_HEAP_EVENTS = ("live", "inuse", "heap")
# Kinds whose weight is a time but no clock's: named after the kind itself
# (docs/locks.md), as profilers that record lock contention in pprof name it.
_OWN_NAMED = ("lock-wait", "lock-hold")


def _sample_types(tree):
    """(type, unit) per column, in pprof's vocabulary: samples/count,
    cpu/nanoseconds, wall/nanoseconds, alloc_space/bytes, inuse_space/bytes
    (the live heap), calls/count."""
    events = {c.event for c in tree.columns if c.event}
    out = []
    for c in tree.columns:
        unit = _UNITS.get(c.unit, c.unit or "count")
        if c.name in _TYPES:
            typ, unit = _TYPES[c.name]
        elif c.role == "samples":
            typ = "samples" if len(events) == 1 else f"{c.event}_samples"
            unit = "count"
        elif c.role == "weight" and c.event in _OWN_NAMED:
            out.append([c.event, unit])
            continue
        elif c.role == "weight" and c.unit == "ns":
            typ = "wall" if "wall" in c.event or tree.header.get("clock") == "wall" else "cpu"
        elif c.role == "weight" and c.unit == "bytes":
            typ = "inuse_space" if c.event in _HEAP_EVENTS else (
                "alloc_space" if c.event == "alloc" else f"{c.event}_space")
        elif c.role == "weight":
            typ = c.event
        else:
            typ = c.name
        out.append([typ.replace("-", "_"), unit])
    # Names must be unique: two kinds with the same kind of weight keep
    # their own names.
    names = [t for t, _ in out]
    for i, c in enumerate(tree.columns):
        if names.count(out[i][0]) > 1:
            out[i][0] = (f"{c.event or c.name}_{out[i][0]}").replace("-", "_")
    return [tuple(t) for t in out]


def build(trace, metric=None):
    """The uncompressed profile.proto message, as bytes."""
    threads = list(trace.threads())
    tree = _model.call_tree(trace, split_threads=bool(threads))
    # A labelled trace: one pass per label set, each sample carrying its
    # set's labels beside the thread's (what Pyroscope and Parca filter by).
    parts = [({}, tree)]
    if len(getattr(trace, "label_sets", lambda: [{}])()) > 1:
        parts = [(labels, _model.call_tree(sub, split_threads=bool(threads)))
                 for labels, sub in trace.by_label_set()]
    st = _Strings()
    out = bytearray()
    locations = {}   # (func key, line) -> id
    functions = {}   # func key -> id
    func_msgs = bytearray()
    loc_msgs = bytearray()
    samples = bytearray()
    types = _sample_types(tree)
    default_col = tree.column(metric) if metric else tree.default_column()
    loc_bytes = {}
    budget = _model.PathBudget("pprof")
    for labels, part in parts:
        extra = b"".join(_label(st, k, v) for k, v in sorted(labels.items()))
        samples += _samples(part, threads, st, extra, locations, functions, func_msgs,
                            loc_msgs, loc_bytes, budget)
    budget.warn()
    for typ, unit in types:
        m = bytearray()
        _int(1, st(typ), m)
        _int(2, st(unit), m)
        _bytes(1, m, out)
    out += samples
    # One mapping for the interpreter, saying the locations are already
    # symbolized, so pprof does not look for a binary to symbolize them with.
    m = bytearray()
    _int(1, 1, m)
    _int(5, st("python"), m)
    for field in (7, 8, 9):
        _int(field, 1, m)
    _bytes(3, m, out)
    out += loc_msgs
    out += func_msgs
    # The string table must hold every index used, so strings go last but
    # all interning is done before the header fields below use them.
    header = getattr(trace, "header", {}) or {}
    # A window of a long run starts where the window does.
    start = header.get("window_start") or header.get("start_time") or header.get("start")
    tail = bytearray()
    if isinstance(start, (int, float)) and start > 0:
        # Seconds since the epoch, or already nanoseconds.
        _int(9, int(start * 1e9) if start < 1e12 else int(start), tail)
    dur = header.get("duration_ns") or header.get("duration")
    if isinstance(dur, (int, float)) and dur > 0:
        _int(10, int(dur if dur > 1e6 else dur * 1e9), tail)
    # The sampling period: the trigger's (e.g. 10 ms of CPU time per sample)
    # when the trace says it and a time column gives its unit; else one
    # sample of the default type.
    dtype = types[default_col][0]
    ptype, punit = types[default_col]
    period = 1
    hp = header.get("period")
    if trace.mode == "sampling" and isinstance(hp, int) and hp > 0:
        timed = [t for t in types if t[1] == "nanoseconds"]
        if timed:
            ptype, punit = timed[0]
            period = hp
    pt = bytearray()
    _int(1, st(ptype), pt)
    _int(2, st(punit), pt)
    made = time.strftime("%Y-%m-%d %H:%M:%S")
    prog = _model.program(header)
    comment = st(f"hyprof {trace.mode} trace{' of ' + prog if prog else ''}, made {made}")
    for s in st.table:
        _bytes(6, s.encode("utf-8", "surrogateescape"), out)
    out += tail
    _bytes(11, pt, out)
    _int(12, period, out)
    _packed(13, [comment], out)
    _int(14, st.ids[dtype], out)
    return bytes(out)


def _label(st, key, value):
    """A Sample.label: key and str value, as string table indices."""
    m = bytearray()
    _int(1, st(key), m)
    _int(2, st(value), m)
    return _field_bytes(3, bytes(m))


def _samples(tree, threads, st, extra, locations, functions, func_msgs, loc_msgs, loc_bytes,
             budget):
    """The Sample messages of one call tree, each with its thread's label and
    the labels in extra; new functions and locations are added to the
    shared tables."""
    samples = bytearray()
    funcs, func, line, parent = tree.funcs, tree.func, tree.line, tree.parent
    vals = tree.values
    # Each thread's pseudo-root (when the tree has them) is the top of its
    # stacks and gives its samples their thread label.
    tail_of = [extra] * len(tree)
    tops = set()
    for t, top in _model.thread_roots(tree) if threads else ():
        tail_of[top] = _label(st, "thread", t.label) + extra
        tops.add(top)
    for i in range(1, len(func)):
        if i not in tops:
            tail_of[i] = tail_of[parent[i]]

    # A location's bytes by (function index, line) of the tree: one int key,
    # not a hash of the Func tuple at each of a million nodes.
    by_key = {}

    def location(i):
        if i in tops:
            return b""  # a thread's pseudo-root: no location of its own
        key = (func[i] << 32) | line[i]
        b = by_key.get(key)
        if b is not None:
            return b
        f = funcs[func[i]]
        ln = line[i] or f.lineno
        lk = (f, ln)
        lid = locations.get(lk)
        if lid is None:
            fid = functions.get(f)
            if fid is None:
                fid = functions[f] = len(functions) + 1
                m = bytearray()
                _int(1, fid, m)
                _int(2, st(f.name), m)
                # No system_name: pprof demangles a name equal to it, which
                # empties Python names such as "<module>".
                _int(4, st(f.filename), m)
                _int(5, f.lineno, m)
                _bytes(5, m, func_msgs)
            lid = locations[lk] = len(locations) + 1
            m = bytearray()
            _int(1, lid, m)
            _int(2, 1, m)
            ln_msg = bytearray()
            _int(1, fid, ln_msg)
            _int(2, ln, ln_msg)
            _bytes(4, ln_msg, m)
            _bytes(4, m, loc_msgs)
            loc_bytes[lid] = _uvarint(lid)
        b = by_key[key] = loc_bytes[lid]
        return b

    # Depth first, keeping the location ids of the current path only: a
    # sample's stack (leaf first) is made when it is written, so memory
    # follows the output, and the output stops at the path budget.
    for i, path in _model.walk_paths(tree, 0, location):
        if i in tops:
            continue
        row = [v[i] for v in vals]
        if any(row) and budget.take(len(path)):
            body = (_field_bytes(1, b"".join(reversed(path)))
                    + _field_bytes(2, b"".join(_uvarint(v) for v in row))
                    + tail_of[i])
            samples += _field_bytes(2, body)
    return samples


def render(trace, metric=None, **options):
    """Gzipped profile.proto bytes; ``metric`` picks pprof's default sample type."""
    _model.reject_options("pprof", options)
    return gzip.compress(build(trace, metric), compresslevel=6, mtime=0)


# For tests and tools that want to look inside without a protobuf library.
def _read_varint(buf, pos):
    n = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, pos
        shift += 7


def decode(data):
    """Splits one message into {field: [values]}: ints for varints, bytes for
    length-delimited fields (nested messages are decoded by calling again)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    fields = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, pos = _read_varint(data, pos)
        elif wire == 2:
            n, pos = _read_varint(data, pos)
            v = bytes(data[pos:pos + n])
            pos += n
        elif wire == 1:
            v = struct.unpack_from("<q", data, pos)[0]
            pos += 8
        elif wire == 5:
            v = struct.unpack_from("<i", data, pos)[0]
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.setdefault(field, []).append(v)
    return fields
