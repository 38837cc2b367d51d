/* The streaming trace reader (include/hyprof/trace.h, docs/FORMAT.md).
 *
 * Hostile input must not crash it nor make it allocate without bound, so no
 * general msgpack unpacker sees the stream: every object is first measured by
 * a bounded structural scanner (each declared length must fit in the record
 * size limit, nesting is capped), and only a complete object is decoded, by a
 * cursor that checks every type and every bound. Tables grow only with
 * entries actually present in the bytes, and up to max_table_entries. */
#include "trace_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define HYP__MAX_DEPTH 16
#define HYP__READ_CHUNK (64u * 1024)
#define HYP__DEFAULT_MAX_RECORD ((size_t)64 << 20)
#define HYP__DEFAULT_MAX_TABLE ((size_t)1 << 26)
/* Header and end-record metadata: entries, and strings in one list value. */
#define HYP__META_MAX_ENTRIES 4096u
#define HYP__META_MAX_STRINGS 65536u

enum { HYP__R_MAGIC, HYP__R_HEADER, HYP__R_RECORDS, HYP__R_ENDED, HYP__R_DONE, HYP__R_FAILED };

struct hyp_reader_s {
    hyp_read_options_t opts;
    int fd, own_fd, eof;
    const unsigned char *mem; /* memory reader: the caller's buffer */
    unsigned char *buf;       /* fd reader: bytes [pos, len) not yet consumed */
    size_t pos, len, cap;
    uint64_t base;            /* stream offset of buf[0] (or mem[0]) */
    int state;
    hyp_profile_t *profile;
    int taken;
    hyp_sample_t *samples;
    size_t nsamples, csamples;
    /* the file's string, function and node ids to the profile's: a writer
     * interns its tables, but one that repeats an entry must not make one
     * function two (recursion and flat totals go by function id), and the
     * profile read must write back into the same trace */
    hyp_id_t *smap, *fmap, *nmap, *lmap;
    size_t nsmap, csmap, nfmap, cfmap, nnmap, cnmap, nlmap, clmap;
    unsigned version_minor;   /* the trace's format version, once the header is read */
    int have_header;
    hyp_read_status_t st;
};

/* ---------------------------------------------------------------- errors */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int hyp__fail(hyp_reader_t *r, int code, const char *fmt, ...) {
    char detail[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    snprintf(r->st.message, sizeof(r->st.message), "record %llu at byte %llu: %s",
             (unsigned long long)r->st.record, (unsigned long long)r->st.offset, detail);
    r->st.error = code;
    if (code == HYP_ETRUNCATED) {
        r->st.truncated = 1;
        r->state = HYP__R_DONE;
    } else {
        r->state = HYP__R_FAILED;
    }
    return code;
}

/* ---------------------------------------------------------------- scanner */

static inline uint64_t hyp__be(const unsigned char *p, size_t n) {
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Measures the msgpack object at p[0..n). Returns 1 and sets *objlen when it
 * is complete, 0 when more bytes are needed, HYP_ELIMIT when its declared
 * sizes cannot fit in max bytes, HYP_EFORMAT on an invalid byte or too deep
 * nesting (*why says which). Never reads past n. */
static int hyp__scan(const unsigned char *p, size_t n, size_t max, size_t *objlen,
                     const char **why) {
    uint64_t left[HYP__MAX_DEPTH + 1];
    size_t depth = 1, pos = 0;

    left[0] = 1;
    for (;;) {
        size_t hdr = 1, lenbytes = 0;
        uint64_t payload = 0, children = 0, x;
        unsigned b;

        if (pos >= n)
            return 0;
        b = p[pos];
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixints, nil, booleans */
        } else if (b <= 0x8f) {
            children = 2u * (b & 0x0f);
        } else if (b <= 0x9f) {
            children = b & 0x0f;
        } else if (b <= 0xbf) {
            payload = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4: case 0xd9: lenbytes = 1; break;      /* bin8, str8 */
            case 0xc5: case 0xda: lenbytes = 2; break;      /* bin16, str16 */
            case 0xc6: case 0xdb: lenbytes = 4; break;      /* bin32, str32 */
            case 0xc7: lenbytes = 1; payload = 1; break;    /* ext8: length, type */
            case 0xc8: lenbytes = 2; payload = 1; break;
            case 0xc9: lenbytes = 4; payload = 1; break;
            case 0xca: payload = 4; break;                  /* float32 */
            case 0xcb: payload = 8; break;                  /* float64 */
            case 0xcc: case 0xd0: payload = 1; break;
            case 0xcd: case 0xd1: payload = 2; break;
            case 0xce: case 0xd2: payload = 4; break;
            case 0xcf: case 0xd3: payload = 8; break;
            case 0xd4: payload = 2; break;                  /* fixext: type + data */
            case 0xd5: payload = 3; break;
            case 0xd6: payload = 5; break;
            case 0xd7: payload = 9; break;
            case 0xd8: payload = 17; break;
            case 0xdc: case 0xdd: case 0xde: case 0xdf:
                lenbytes = (b == 0xdc || b == 0xde) ? 2 : 4;
                break;
            default:
                *why = "byte 0xc1, which msgpack never uses";
                return HYP_EFORMAT;
            }
        }
        if (lenbytes > 0) {
            if (n - pos < 1 + lenbytes)
                return pos + 1 + lenbytes > max ? HYP_ELIMIT : 0;
            x = hyp__be(p + pos + 1, lenbytes);
            hdr += lenbytes;
            if (b == 0xdc || b == 0xdd)
                children = x;
            else if (b == 0xde || b == 0xdf)
                children = 2 * x;
            else
                payload += x;
        }
        if (payload > max || pos + hdr + payload > max)
            return HYP_ELIMIT;
        if (pos + hdr + payload > n)
            return 0;
        pos += hdr + (size_t)payload;
        left[depth - 1]--;
        if (children > 0) {
            /* every element takes at least one byte */
            if (children > max - pos)
                return HYP_ELIMIT;
            if (depth > HYP__MAX_DEPTH) {
                *why = "containers nested too deeply";
                return HYP_EFORMAT;
            }
            left[depth++] = children;
        }
        while (depth > 0 && left[depth - 1] == 0)
            depth--;
        if (depth == 0) {
            *objlen = pos;
            return 1;
        }
    }
}

/* ---------------------------------------------------------------- cursor */

typedef struct {
    const unsigned char *p, *end;
} hyp__cur_t;

/* Each reader returns 0, or -1 when the next object is not of the type asked
 * (the caller names the field). The record was scanned, so lengths fit. */
static int hyp__cur_uint(hyp__cur_t *c, uint64_t *v) {
    unsigned b;
    size_t n;

    if (c->p >= c->end)
        return -1;
    b = *c->p;
    if (b <= 0x7f) {
        *v = b;
        c->p++;
        return 0;
    }
    switch (b) {
    case 0xcc: n = 1; break;
    case 0xcd: n = 2; break;
    case 0xce: n = 4; break;
    case 0xcf: n = 8; break;
    case 0xd0: n = 1; break;
    case 0xd1: n = 2; break;
    case 0xd2: n = 4; break;
    case 0xd3: n = 8; break;
    default:
        return -1;
    }
    if ((size_t)(c->end - c->p) < n + 1)
        return -1;
    *v = hyp__be(c->p + 1, n);
    if (b >= 0xd0 && (c->p[1] & 0x80))
        return -1; /* a negative signed integer */
    c->p += n + 1;
    return 0;
}

static int hyp__cur_u32(hyp__cur_t *c, uint32_t *v) {
    uint64_t x;

    if (hyp__cur_uint(c, &x) < 0 || x > UINT32_MAX)
        return -1;
    *v = (uint32_t)x;
    return 0;
}

static int hyp__cur_int(hyp__cur_t *c, int64_t *v, int *is_uint, uint64_t *u) {
    unsigned b;
    size_t n;
    uint64_t x;

    if (c->p >= c->end)
        return -1;
    b = *c->p;
    if (b <= 0x7f || (b >= 0xcc && b <= 0xcf)) {
        if (hyp__cur_uint(c, &x) < 0)
            return -1;
        *u = x;
        *is_uint = x > INT64_MAX;
        *v = (int64_t)(x > INT64_MAX ? 0 : x);
        return 0;
    }
    if (b >= 0xe0) {
        *v = (int8_t)b;
        *is_uint = 0;
        c->p++;
        return 0;
    }
    if (b < 0xd0 || b > 0xd3)
        return -1;
    n = (size_t)1 << (b - 0xd0);
    if ((size_t)(c->end - c->p) < n + 1)
        return -1;
    x = hyp__be(c->p + 1, n);
    if (n < 8 && (x >> (8 * n - 1)) & 1)
        x |= ~(uint64_t)0 << (8 * n); /* sign-extend */
    *v = (int64_t)x;
    *is_uint = 0;
    c->p += n + 1;
    return 0;
}

static int hyp__cur_container(hyp__cur_t *c, uint64_t *n, unsigned fix, unsigned b16,
                              unsigned b32) {
    unsigned b;

    if (c->p >= c->end)
        return -1;
    b = *c->p;
    if ((b & 0xf0) == fix) {
        *n = b & 0x0f;
        c->p++;
        return 0;
    }
    if (b == b16 && c->end - c->p >= 3) {
        *n = hyp__be(c->p + 1, 2);
        c->p += 3;
        return 0;
    }
    if (b == b32 && c->end - c->p >= 5) {
        *n = hyp__be(c->p + 1, 4);
        c->p += 5;
        return 0;
    }
    return -1;
}

static int hyp__cur_array(hyp__cur_t *c, uint64_t *n) {
    return hyp__cur_container(c, n, 0x90, 0xdc, 0xdd);
}

static int hyp__cur_map(hyp__cur_t *c, uint64_t *n) {
    return hyp__cur_container(c, n, 0x80, 0xde, 0xdf);
}

static int hyp__cur_str(hyp__cur_t *c, const char **s, size_t *len) {
    unsigned b;
    size_t h;
    uint64_t n;

    if (c->p >= c->end)
        return -1;
    b = *c->p;
    if ((b & 0xe0) == 0xa0) {
        n = b & 0x1f;
        h = 1;
    } else if (b >= 0xd9 && b <= 0xdb) {
        h = 1 + ((size_t)1 << (b - 0xd9));
        if ((size_t)(c->end - c->p) < h)
            return -1;
        n = hyp__be(c->p + 1, h - 1);
    } else {
        return -1;
    }
    if ((uint64_t)(c->end - c->p) - h < n)
        return -1;
    *s = (const char *)c->p + h;
    *len = (size_t)n;
    c->p += h + n;
    return 0;
}

static int hyp__cur_is_str(const hyp__cur_t *c) {
    return c->p < c->end && (((*c->p & 0xe0) == 0xa0) || (*c->p >= 0xd9 && *c->p <= 0xdb));
}

static int hyp__cur_skip(hyp__cur_t *c) {
    const char *why;
    size_t n, len;

    n = (size_t)(c->end - c->p);
    if (hyp__scan(c->p, n, n, &len, &why) != 1)
        return -1;
    c->p += len;
    return 0;
}

static int hyp__streq(const char *s, size_t len, const char *lit) {
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

/* ---------------------------------------------------------------- input */

/* Makes the next complete object available at *obj (*len bytes). Returns 1,
 * 0 at a clean end of the stream, or a negative error. */
static int hyp__next_object(hyp_reader_t *r, const unsigned char **obj, size_t *len) {
    size_t max = r->opts.max_record_bytes;

    for (;;) {
        const unsigned char *p = r->mem ? r->mem + r->pos : r->buf + r->pos;
        size_t avail = r->len - r->pos;
        const char *why = "";
        int rc;

        if (avail > 0) {
            rc = hyp__scan(p, avail, max, len, &why);
            if (rc == 1) {
                *obj = p;
                return 1;
            }
            if (rc == HYP_ELIMIT)
                return hyp__fail(r, HYP_ELIMIT,
                                 "the record is larger than the limit of %zu bytes", max);
            if (rc < 0)
                return hyp__fail(r, HYP_EFORMAT, "not valid msgpack: %s", why);
        }
        if (r->eof) {
            if (avail == 0)
                return 0;
            return hyp__fail(r, HYP_ETRUNCATED,
                             "the trace is cut inside this record (%zu bytes of it present)",
                             avail);
        }
        /* read more: at least as much again as is buffered, so rescanning
         * a large record costs linear time overall */
        {
            size_t want = avail > HYP__READ_CHUNK ? avail : HYP__READ_CHUNK;
            ssize_t got;

            if (r->pos > 0) {
                memmove(r->buf, r->buf + r->pos, avail);
                r->base += r->pos;
                r->len = avail;
                r->pos = 0;
            }
            if (r->len + want > r->cap) {
                size_t cap = r->cap;

                if (hyp__grow((void **)&r->buf, &cap, r->len + want, 1) < 0)
                    return hyp__fail(r, HYP_ENOMEM, "out of memory reading %zu bytes",
                                     r->len + want);
                r->cap = cap;
            }
            do
                got = read(r->fd, r->buf + r->len, r->cap - r->len);
            while (got < 0 && errno == EINTR);
            if (got < 0)
                return hyp__fail(r, HYP_EIO, "read error: %s", strerror(errno));
            if (got == 0)
                r->eof = 1;
            r->len += (size_t)got;
        }
    }
}

/* ---------------------------------------------------------------- header */

static int hyp__read_magic(hyp_reader_t *r, const unsigned char *obj, size_t len) {
    hyp__cur_t c = {obj, obj + len};
    const char *s;
    size_t n;

    if (hyp__cur_str(&c, &s, &n) < 0 || !hyp__streq(s, n, HYP__MAGIC))
        return hyp__fail(r, HYP_EMAGIC, "not a hyprof trace: the file does not start with the "
                                        "string \"" HYP__MAGIC "\"");
    return 0;
}

/* An array of strings becomes a HYP_META_STRV entry; any other array, and
 * one of more than HYP__META_MAX_STRINGS strings, is skipped: a few bytes of
 * input per string must not cost a hundred each in memory. */
static int hyp__read_meta_array(hyp_reader_t *r, const char *key, hyp__cur_t *c) {
    hyp_meta_t m = {.key = key, .type = HYP_META_STRV};
    hyp__cur_t start = *c, probe;
    uint64_t n, k;
    char **copies;
    size_t done = 0;
    int rc = 0;

    if (hyp__cur_array(c, &n) < 0)
        return -1;
    if (n > HYP__META_MAX_STRINGS) {
        *c = start;
        return hyp__cur_skip(c) < 0 ? -1 : 0;
    }
    probe = *c;
    for (k = 0; k < n; k++) {
        const char *s;
        size_t l;

        if (hyp__cur_str(&probe, &s, &l) < 0) {
            *c = start;
            return hyp__cur_skip(c) < 0 ? -1 : 0;
        }
    }
    copies = hyp__calloc((size_t)n, sizeof(*copies));
    if (copies == NULL)
        return HYP_ENOMEM;
    for (k = 0; k < n && rc == 0; k++) {
        const char *s;
        size_t l;

        hyp__cur_str(c, &s, &l);
        copies[k] = hyp__strndup(s, l);
        if (copies[k] == NULL)
            rc = HYP_ENOMEM;
        else
            done++;
    }
    if (rc == 0) {
        m.v.sv.v = (const char *const *)copies;
        m.v.sv.n = (size_t)n;
        rc = hyp_profile_set_meta(r->profile, &m);
    }
    for (k = 0; k < done; k++)
        hyp__free(copies[k]);
    hyp__free(copies);
    return rc;
}

/* Reads one metadata value into the profile. Returns 0 (also for a value
 * the C model cannot hold, which is skipped), -1 when malformed, or
 * HYP_ENOMEM. The header was scanned whole, so fixed-size payloads are
 * within bounds. */
static int hyp__read_meta_value(hyp_reader_t *r, const char *key, hyp__cur_t *c) {
    hyp_meta_t m = {.key = key};
    uint64_t u, bits;
    int64_t i;
    int is_uint;

    if (c->p >= c->end)
        return -1;
    switch (*c->p) {
    case 0xc0:
        m.type = HYP_META_NIL;
        c->p++;
        break;
    case 0xc2:
    case 0xc3:
        m.type = HYP_META_BOOL;
        m.v.b = *c->p == 0xc3;
        c->p++;
        break;
    case 0xca: {
        uint32_t b32 = (uint32_t)hyp__be(c->p + 1, 4);
        float f;

        memcpy(&f, &b32, sizeof(f));
        m.type = HYP_META_FLOAT;
        m.v.f = f;
        c->p += 5;
        break;
    }
    case 0xcb:
        bits = hyp__be(c->p + 1, 8);
        m.type = HYP_META_FLOAT;
        memcpy(&m.v.f, &bits, sizeof(m.v.f));
        c->p += 9;
        break;
    default:
        if (hyp__cur_is_str(c)) {
            const char *str;
            size_t n;
            char *copy;
            int rc;

            hyp__cur_str(c, &str, &n);
            if (memchr(str, '\0', n) != NULL)
                return 0; /* not a C string; bindings see it raw */
            copy = hyp__strndup(str, n);
            if (copy == NULL)
                return HYP_ENOMEM;
            m.type = HYP_META_STR;
            m.v.s = copy;
            rc = hyp_profile_set_meta(r->profile, &m);
            hyp__free(copy);
            return rc;
        }
        if ((*c->p & 0xf0) == 0x90 || *c->p == 0xdc || *c->p == 0xdd)
            return hyp__read_meta_array(r, key, c);
        if (hyp__cur_int(c, &i, &is_uint, &u) < 0)
            return hyp__cur_skip(c) < 0 ? -1 : 0; /* a map, bin or ext: skipped */
        m.type = is_uint ? HYP_META_UINT : HYP_META_INT;
        if (is_uint)
            m.v.u = u;
        else
            m.v.i = i;
        break;
    }
    return hyp_profile_set_meta(r->profile, &m);
}

/* Reads a map of metadata entries into the profile (the header's own keys
 * excluded). Returns 0, -1 on a malformed entry, or a negative HYP_E* code. */
static int hyp__read_meta_map(hyp_reader_t *r, hyp__cur_t *c, uint64_t n, int skip_reserved) {
    char key[256];
    uint64_t k;
    int rc;

    /* Each entry is looked up by key when set: bound their number, so that
     * a map of a million one-byte keys is refused rather than quadratic. */
    if (n > HYP__META_MAX_ENTRIES)
        return HYP_ERANGE;
    for (k = 0; k < n; k++) {
        const char *s;
        size_t len;

        if (hyp__cur_str(c, &s, &len) < 0)
            return -1;
        if (len == 0 || len >= sizeof(key) || memchr(s, '\0', len) != NULL) {
            if (hyp__cur_skip(c) < 0)
                return -1;
            continue; /* not a key the C model can name; bindings see it raw */
        }
        memcpy(key, s, len);
        key[len] = '\0';
        if (hyp_meta_key_reserved(key)) {
            if (!skip_reserved)
                return -1;
            if (hyp__cur_skip(c) < 0)
                return -1;
            continue;
        }
        rc = hyp__read_meta_value(r, key, c);
        if (rc == HYP_ENOMEM)
            return rc;
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Fails the header, freeing what it allocated. */
#define HYP__HFAIL(...)                   \
    do {                                  \
        rc = hyp__fail(r, __VA_ARGS__);   \
        goto out;                         \
    } while (0)

static int hyp__read_header(hyp_reader_t *r, const unsigned char *obj, size_t len) {
    hyp__cur_t c = {obj, obj + len}, body;
    hyp_metric_t *metrics = NULL;
    uint64_t n, k, mi, nmetrics = 0;
    const char *s;
    size_t sl;
    int mode = -1, have_version = 0, rc = 0;
    const unsigned char *kinds = NULL;

    if (hyp__cur_map(&c, &n) < 0)
        return hyp__fail(r, HYP_EFORMAT, "the header is not a map");
    body = c;
    /* first the format and version: a later major may change everything else */
    for (k = 0; k < n; k++) {
        if (hyp__cur_str(&c, &s, &sl) < 0)
            return hyp__fail(r, HYP_EFORMAT, "a header key is not a string");
        if (hyp__streq(s, sl, "format")) {
            const char *v;
            size_t vl;

            if (hyp__cur_str(&c, &v, &vl) < 0 || !hyp__streq(v, vl, HYP__FORMAT_NAME))
                return hyp__fail(r, HYP_EMAGIC, "the header's format is not \"" HYP__FORMAT_NAME
                                                "\"");
        } else if (hyp__streq(s, sl, "version")) {
            uint64_t vn, major, minor;

            if (hyp__cur_array(&c, &vn) < 0 || vn < 2 || hyp__cur_uint(&c, &major) < 0 ||
                hyp__cur_uint(&c, &minor) < 0)
                return hyp__fail(r, HYP_EFORMAT, "the header's version is not [major, minor]");
            for (; vn > 2; vn--)
                if (hyp__cur_skip(&c) < 0)
                    return hyp__fail(r, HYP_EFORMAT, "the header's version is malformed");
            if (major != HYP_FORMAT_MAJOR)
                return hyp__fail(r, HYP_EVERSION,
                                 "format version %llu.%llu is not supported (this reader "
                                 "reads %d.x)",
                                 (unsigned long long)major, (unsigned long long)minor,
                                 HYP_FORMAT_MAJOR);
            r->version_minor = minor > UINT_MAX ? UINT_MAX : (unsigned)minor;
            have_version = 1;
        } else if (hyp__cur_skip(&c) < 0) {
            return hyp__fail(r, HYP_EFORMAT, "a header value is malformed");
        }
    }
    if (!have_version)
        return hyp__fail(r, HYP_EFORMAT, "the header has no \"version\"");
    c = body;
    for (k = 0; k < n; k++) {
        hyp__cur_str(&c, &s, &sl);
        if (hyp__streq(s, sl, "mode")) {
            const char *v;
            size_t vl;

            if (hyp__cur_str(&c, &v, &vl) < 0)
                HYP__HFAIL(HYP_EFORMAT, "the header's mode is not a string");
            if (hyp__streq(v, vl, "deterministic"))
                mode = HYP_MODE_DETERMINISTIC;
            else if (hyp__streq(v, vl, "sampling"))
                mode = HYP_MODE_SAMPLING;
            else
                HYP__HFAIL(HYP_EFORMAT,
                                 "the header's mode is neither \"deterministic\" nor "
                                 "\"sampling\"");
        } else if (hyp__streq(s, sl, "metrics")) {
            uint64_t count;

            if (metrics != NULL)
                HYP__HFAIL(HYP_EFORMAT, "the header has two \"metrics\" entries");
            if (hyp__cur_array(&c, &count) < 0)
                HYP__HFAIL(HYP_EFORMAT, "the header's metrics is not an array");
            nmetrics = count;
            if (nmetrics > 4096)
                HYP__HFAIL(HYP_ELIMIT, "the header declares %llu metric columns",
                                 (unsigned long long)nmetrics);
            metrics = hyp__calloc((size_t)nmetrics, sizeof(*metrics));
            if (metrics == NULL)
                HYP__HFAIL(HYP_ENOMEM, "out of memory");
            for (mi = 0; mi < nmetrics; mi++) {
                const char *ms[3];
                size_t ml[3];
                uint64_t an;
                int j;

                if (hyp__cur_array(&c, &an) < 0 || an < 3)
                    goto bad_metric;
                for (j = 0; j < 3; j++)
                    if (hyp__cur_str(&c, &ms[j], &ml[j]) < 0)
                        goto bad_metric;
                for (; an > 3; an--)
                    if (hyp__cur_skip(&c) < 0)
                        goto bad_metric;
                if (hyp_metric_kind_parse(ms[2], ml[2], &metrics[mi].kind) != 0)
                    goto bad_metric;
                metrics[mi].name = hyp__strndup(ms[0], ml[0]);
                metrics[mi].unit = hyp__strndup(ms[1], ml[1]);
                if (metrics[mi].name == NULL || metrics[mi].unit == NULL) {
                    rc = hyp__fail(r, HYP_ENOMEM, "out of memory");
                    goto out;
                }
            }
        } else if (hyp__streq(s, sl, "sample_kinds")) {
            kinds = c.p;
            if (hyp__cur_skip(&c) < 0)
                HYP__HFAIL(HYP_EFORMAT, "the header's sample_kinds is malformed");
        } else if (hyp__cur_skip(&c) < 0) {
            HYP__HFAIL(HYP_EFORMAT, "a header value is malformed");
        }
    }
    if (mode < 0) {
        rc = hyp__fail(r, HYP_EFORMAT, "the header has no \"mode\"");
        goto out;
    }
    r->profile = hyp_profile_new((hyp_mode_t)mode, metrics, (size_t)nmetrics);
    if (r->profile == NULL) {
        rc = hyp__fail(r, HYP_EFORMAT,
                       "the header's metric columns are invalid (an empty or repeated name, or"
                       " a rec column without its calls or cum column)");
        goto out;
    }
    if (kinds != NULL) {
        hyp__cur_t kc = {kinds, c.end};
        uint64_t nk, i, an;

        if (hyp__cur_array(&kc, &nk) < 0) {
            rc = hyp__fail(r, HYP_EFORMAT, "the header's sample_kinds is not an array");
            goto out;
        }
        for (i = 0; i < nk; i++) {
            hyp_sample_kind_t sk;
            const char *ks[2];
            size_t kl[2];
            char *name, *unit;
            int krc;

            if (hyp__cur_array(&kc, &an) < 0 || an < 4 || hyp__cur_str(&kc, &ks[0], &kl[0]) < 0 ||
                hyp__cur_str(&kc, &ks[1], &kl[1]) < 0 || hyp__cur_u32(&kc, &sk.count_metric) < 0 ||
                hyp__cur_u32(&kc, &sk.weight_metric) < 0) {
                rc = hyp__fail(r, HYP_EFORMAT,
                               "sample kind %llu is not [name, unit, count_metric, weight_metric]",
                               (unsigned long long)i);
                goto out;
            }
            for (; an > 4; an--)
                hyp__cur_skip(&kc);
            if (sk.count_metric >= nmetrics || sk.weight_metric >= nmetrics) {
                rc = hyp__fail(r, HYP_ERANGE,
                               "sample kind %llu refers to metric column %u beyond the %llu "
                               "columns",
                               (unsigned long long)i,
                               sk.count_metric >= nmetrics ? sk.count_metric : sk.weight_metric,
                               (unsigned long long)nmetrics);
                goto out;
            }
            name = hyp__strndup(ks[0], kl[0]);
            unit = hyp__strndup(ks[1], kl[1]);
            sk.name = name;
            sk.unit = unit;
            krc = (name == NULL || unit == NULL) ? HYP_ENOMEM
                                                 : hyp_profile_sample_kind(r->profile, &sk, NULL);
            hyp__free(name);
            hyp__free(unit);
            if (krc < 0) {
                rc = hyp__fail(r, krc == HYP_ENOMEM ? HYP_ENOMEM : HYP_EFORMAT,
                               "sample kind %llu is invalid (its columns must be two distinct "
                               "own columns)",
                               (unsigned long long)i);
                goto out;
            }
        }
    }
    c = body;
    rc = hyp__read_meta_map(r, &c, n, 1);
    if (rc == -1)
        rc = hyp__fail(r, HYP_EFORMAT, "a header entry is malformed");
    else if (rc == HYP_ERANGE)
        rc = hyp__fail(r, HYP_EFORMAT, "the header has %llu entries (at most %u)",
                       (unsigned long long)n, HYP__META_MAX_ENTRIES);
    else if (rc < 0)
        rc = hyp__fail(r, rc, "out of memory");
    if (rc == 0)
        r->have_header = 1;
    goto out;
bad_metric:
    rc = hyp__fail(r, HYP_EFORMAT,
                   "a metric column is not [name, unit, kind] with kind \"own\", \"cum\","
                   " \"calls\", \"rec\" or \"edge_rec\"");
out:
    if (metrics != NULL) {
        for (k = 0; k < nmetrics; k++) {
            hyp__free((void *)metrics[k].name);
            hyp__free((void *)metrics[k].unit);
        }
        hyp__free(metrics);
    }
    return rc;
}

/* ---------------------------------------------------------------- records */

#define HYP__BAD(field) hyp__fail(r, HYP_EFORMAT, "%s record: %s", what, field)

/* Reads "first_id, [entries]" of a table record and checks the batch
 * continues the table and fits the limit. */
static int hyp__table_start(hyp_reader_t *r, hyp__cur_t *c, const char *what, size_t have,
                            unsigned width, uint64_t *count) {
    uint64_t first, n;

    if (hyp__cur_uint(c, &first) < 0)
        return HYP__BAD("the first id is not an unsigned integer");
    if (hyp__cur_array(c, &n) < 0)
        return HYP__BAD("the entries are not an array");
    if (n % width != 0)
        return hyp__fail(r, HYP_EFORMAT, "%s record: %llu values is not a multiple of %u", what,
                         (unsigned long long)n, width);
    if (first != have)
        return hyp__fail(r, HYP_EFORMAT, "%s record starts at id %llu but %zu were read before",
                         what, (unsigned long long)first, have);
    n /= width;
    if (have + n > r->opts.max_table_entries)
        return hyp__fail(r, HYP_ELIMIT, "%s table exceeds the limit of %zu entries", what,
                         r->opts.max_table_entries);
    *count = n;
    return 0;
}

static int hyp__read_strings(hyp_reader_t *r, hyp__cur_t *c) {
    const char *what = "strings";
    uint64_t n, i;
    int rc;

    rc = hyp__table_start(r, c, what, r->nsmap, 1, &n);
    if (rc < 0)
        return rc;
    if (hyp__grow((void **)&r->smap, &r->csmap, r->nsmap + n, sizeof(*r->smap)) < 0)
        return hyp__fail(r, HYP_ENOMEM, "out of memory");
    for (i = 0; i < n; i++) {
        const char *s;
        size_t len;

        if (hyp__cur_str(c, &s, &len) < 0)
            return hyp__fail(r, HYP_EFORMAT, "strings record: entry %llu is not a string",
                             (unsigned long long)i);
        if (hyp_profile_string(r->profile, s, len, &r->smap[r->nsmap]) < 0)
            return hyp__fail(r, HYP_ENOMEM, "out of memory");
        r->nsmap++;
    }
    return 0;
}

static int hyp__read_funcs(hyp_reader_t *r, hyp__cur_t *c) {
    const char *what = "functions";
    hyp_profile_t *p = r->profile;
    uint64_t n, i;
    int rc;

    rc = hyp__table_start(r, c, what, r->nfmap, 4, &n);
    if (rc < 0)
        return rc;
    if (hyp__grow((void **)&r->fmap, &r->cfmap, r->nfmap + n, sizeof(*r->fmap)) < 0)
        return hyp__fail(r, HYP_ENOMEM, "out of memory");
    for (i = 0; i < n; i++) {
        hyp_func_t f;

        if (hyp__cur_u32(c, &f.name) < 0 || hyp__cur_u32(c, &f.file) < 0 ||
            hyp__cur_u32(c, &f.lineno) < 0 || hyp__cur_u32(c, &f.kind) < 0)
            return hyp__fail(r, HYP_EFORMAT,
                             "function %zu is not four unsigned 32-bit integers", r->nfmap);
        if (f.name >= r->nsmap || f.file >= r->nsmap)
            return hyp__fail(r, HYP_ERANGE,
                             "function %zu refers to string %u beyond the string table (%zu "
                             "strings)",
                             r->nfmap, f.name >= r->nsmap ? f.name : f.file, r->nsmap);
        if (f.kind > HYP_FUNC_SPECIAL)
            return hyp__fail(r, HYP_EFORMAT, "function %zu has kind %u (0, 1 or 2 expected)",
                             r->nfmap, f.kind);
        f.name = r->smap[f.name];
        f.file = r->smap[f.file];
        if (hyp_profile_func(p, &f, &r->fmap[r->nfmap]) < 0)
            return hyp__fail(r, HYP_ENOMEM, "out of memory");
        r->nfmap++;
    }
    return 0;
}

static int hyp__read_threads(hyp_reader_t *r, hyp__cur_t *c) {
    const char *what = "threads";
    hyp_profile_t *p = r->profile;
    uint64_t n, i;
    int rc;

    rc = hyp__table_start(r, c, what, p->nthreads, 3, &n);
    if (rc < 0)
        return rc;
    for (i = 0; i < n; i++) {
        hyp_thread_t t;

        if (hyp__cur_uint(c, &t.os_tid) < 0 || hyp__cur_uint(c, &t.ident) < 0 ||
            hyp__cur_u32(c, &t.name) < 0)
            return hyp__fail(r, HYP_EFORMAT, "thread %zu is not [os_tid, ident, name]",
                             p->nthreads);
        if (t.name >= r->nsmap)
            return hyp__fail(r, HYP_ERANGE,
                             "thread %zu refers to string %u beyond the string table (%zu "
                             "strings)",
                             p->nthreads, t.name, r->nsmap);
        t.name = r->smap[t.name];
        if (hyp_profile_thread(p, &t, NULL) < 0)
            return hyp__fail(r, HYP_ENOMEM, "out of memory");
    }
    return 0;
}

static int hyp__read_nodes(hyp_reader_t *r, hyp__cur_t *c) {
    const char *what = "nodes";
    hyp_profile_t *p = r->profile;
    uint64_t n, i;
    int rc;

    if (r->nnmap == 0) { /* the implicit root */
        if (hyp__grow((void **)&r->nmap, &r->cnmap, 1, sizeof(*r->nmap)) < 0)
            return hyp__fail(r, HYP_ENOMEM, "out of memory");
        r->nmap[r->nnmap++] = HYP_ROOT_NODE;
    }
    rc = hyp__table_start(r, c, what, r->nnmap, 3, &n);
    if (rc < 0)
        return rc;
    if (hyp__grow((void **)&r->nmap, &r->cnmap, r->nnmap + n, sizeof(*r->nmap)) < 0)
        return hyp__fail(r, HYP_ENOMEM, "out of memory");
    for (i = 0; i < n; i++) {
        uint32_t parent, func, line;

        if (hyp__cur_u32(c, &parent) < 0 || hyp__cur_u32(c, &func) < 0 ||
            hyp__cur_u32(c, &line) < 0)
            return hyp__fail(r, HYP_EFORMAT, "node %zu is not [parent, func, line]", r->nnmap);
        if (parent >= r->nnmap)
            return hyp__fail(r, HYP_ERANGE,
                             "node %zu refers to parent %u beyond the node table", r->nnmap,
                             parent);
        if (func >= r->nfmap)
            return hyp__fail(r, HYP_ERANGE,
                             "node %zu refers to function %u beyond the function table (%zu "
                             "functions)",
                             r->nnmap, func, r->nfmap);
        if (hyp_profile_node(p, r->nmap[parent], r->fmap[func], line, &r->nmap[r->nnmap]) < 0)
            return hyp__fail(r, HYP_ENOMEM, "out of memory");
        r->nnmap++;
    }
    return 0;
}

/* LABELS (1.2): each set is its label count, then key and value string ids
 * per label; set 0, the empty set, is implicit. */
static int hyp__read_labels(hyp_reader_t *r, hyp__cur_t *c) {
    uint64_t first, n, i, values;

    if (r->nlmap == 0) {
        if (hyp__grow((void **)&r->lmap, &r->clmap, 1, sizeof(*r->lmap)) < 0)
            return hyp__fail(r, HYP_ENOMEM, "out of memory");
        r->lmap[r->nlmap++] = HYP_NO_LABELS;
    }
    if (hyp__cur_uint(c, &first) < 0 || hyp__cur_array(c, &values) < 0)
        return hyp__fail(r, HYP_EFORMAT, "labels record: not [9, first_id, [sets]]");
    if (first != r->nlmap)
        return hyp__fail(r, HYP_EFORMAT, "labels record starts at id %llu but %zu were read before",
                         (unsigned long long)first, r->nlmap);
    for (i = 0; i < values; i += 1 + 2 * n) {
        hyp_label_t set[HYP_MAX_LABELS];
        uint64_t j;
        int rc;

        if (hyp__cur_uint(c, &n) < 0 || n == 0 || n > HYP_MAX_LABELS || 1 + 2 * n > values - i)
            return hyp__fail(r, HYP_EFORMAT,
                             "labels record: label set %zu does not start with a count from 1 to "
                             "%d that fits the record",
                             r->nlmap, HYP_MAX_LABELS);
        for (j = 0; j < n; j++) {
            if (hyp__cur_u32(c, &set[j].key) < 0 || hyp__cur_u32(c, &set[j].value) < 0)
                return hyp__fail(r, HYP_EFORMAT, "labels record: label set %zu is malformed",
                                 r->nlmap);
            if (set[j].key >= r->nsmap || set[j].value >= r->nsmap)
                return hyp__fail(r, HYP_ERANGE,
                                 "label set %zu refers to a string beyond the string table (%zu "
                                 "strings)",
                                 r->nlmap, r->nsmap);
            set[j].key = r->smap[set[j].key];
            set[j].value = r->smap[set[j].value];
        }
        if (r->nlmap >= r->opts.max_table_entries)
            return hyp__fail(r, HYP_ELIMIT, "labels table exceeds the limit of %zu entries",
                             r->opts.max_table_entries);
        if (hyp__grow((void **)&r->lmap, &r->clmap, r->nlmap + 1, sizeof(*r->lmap)) < 0)
            return hyp__fail(r, HYP_ENOMEM, "out of memory");
        rc = hyp_profile_labels(r->profile, set, (size_t)n, &r->lmap[r->nlmap]);
        if (rc == HYP_EINVAL)
            return hyp__fail(r, HYP_EFORMAT, "label set %zu names a key twice", r->nlmap);
        if (rc < 0)
            return hyp__fail(r, HYP_ENOMEM, "out of memory");
        r->nlmap++;
    }
    return 0;
}

/* The label set a METRICS or SAMPLES record names after its skip first
 * elements (1.2), mapped to the profile's; HYP_NO_LABELS when the record has
 * no such element (c is not moved). */
static int hyp__record_labels(hyp_reader_t *r, const hyp__cur_t *c, uint64_t nelems,
                              unsigned skip, const char *what, hyp_id_t *labels) {
    hyp__cur_t peek = *c;
    uint64_t id;
    unsigned i;

    *labels = HYP_NO_LABELS;
    if (nelems <= skip + 1)
        return 0;
    for (i = 0; i < skip; i++)
        if (hyp__cur_skip(&peek) < 0)
            return hyp__fail(r, HYP_EFORMAT, "%s record is malformed", what);
    if (hyp__cur_uint(&peek, &id) < 0)
        return hyp__fail(r, HYP_EFORMAT, "%s record: the label set is not an unsigned integer",
                         what);
    if (id >= (r->nlmap ? r->nlmap : 1))
        return hyp__fail(r, HYP_ERANGE,
                         "%s record refers to label set %llu beyond the labels table (%zu sets)",
                         what, (unsigned long long)id, r->nlmap ? r->nlmap : 1);
    *labels = id ? r->lmap[id] : HYP_NO_LABELS;
    return 0;
}

/* The file's node count, the root included. */
static size_t hyp__file_nodes(const hyp_reader_t *r) {
    return r->nnmap ? r->nnmap : 1;
}

static int hyp__read_metrics(hyp_reader_t *r, hyp__cur_t *c, hyp_id_t labels) {
    hyp_profile_t *p = r->profile;
    size_t m = p->nmetrics;
    uint64_t thread, n, i, j;

    if (hyp__cur_uint(c, &thread) < 0)
        return hyp__fail(r, HYP_EFORMAT, "metrics record: the thread is not an unsigned integer");
    if (thread >= p->nthreads)
        return hyp__fail(r, HYP_ERANGE, "metrics record refers to thread %llu beyond the thread "
                                        "table (%zu threads)",
                         (unsigned long long)thread, p->nthreads);
    if (hyp__cur_array(c, &n) < 0)
        return hyp__fail(r, HYP_EFORMAT, "metrics record: the rows are not an array");
    if (n % (m + 1) != 0)
        return hyp__fail(r, HYP_EFORMAT,
                         "metrics record: %llu values is not a multiple of %zu (node and %zu "
                         "columns)",
                         (unsigned long long)n, m + 1, m);
    n /= m + 1;
    for (i = 0; i < n; i++) {
        uint32_t node;
        int64_t row;
        uint64_t *v;

        if (hyp__cur_u32(c, &node) < 0)
            return hyp__fail(r, HYP_EFORMAT, "metrics record: row %llu's node is not an id",
                             (unsigned long long)i);
        if (node >= hyp__file_nodes(r))
            return hyp__fail(r, HYP_ERANGE,
                             "metrics record: row %llu refers to node %u beyond the node table "
                             "(%zu nodes)",
                             (unsigned long long)i, node, hyp__file_nodes(r));
        row = hyp__profile_row_index(p, (hyp_id_t)thread, node ? r->nmap[node] : 0, labels);
        if (row < 0)
            return hyp__fail(r, HYP_ENOMEM, "out of memory");
        v = p->vals + (size_t)row * m;
        for (j = 0; j < m; j++) {
            uint64_t x;

            if (hyp__cur_uint(c, &x) < 0)
                return hyp__fail(r, HYP_EFORMAT,
                                 "metrics record: row %llu, column %llu is not an unsigned "
                                 "integer",
                                 (unsigned long long)i, (unsigned long long)j);
            v[j] += x;
        }
    }
    return 0;
}

static int hyp__read_samples(hyp_reader_t *r, hyp__cur_t *c, hyp_id_t labels) {
    hyp_profile_t *p = r->profile;
    uint64_t thread, kind, t, n, i;
    const hyp_sample_kind_t *k;
    hyp_id_t last_node = HYP_NO_ID;
    int64_t row = -1;

    if (hyp__cur_uint(c, &thread) < 0 || hyp__cur_uint(c, &kind) < 0 ||
        hyp__cur_uint(c, &t) < 0)
        return hyp__fail(r, HYP_EFORMAT,
                         "samples record: thread, kind and base time are not unsigned integers");
    if (thread >= p->nthreads)
        return hyp__fail(r, HYP_ERANGE, "samples record refers to thread %llu beyond the thread "
                                        "table (%zu threads)",
                         (unsigned long long)thread, p->nthreads);
    if (kind >= p->nkinds)
        return hyp__fail(r, HYP_ERANGE, "samples record refers to sample kind %llu beyond the "
                                        "%zu kinds of the header",
                         (unsigned long long)kind, p->nkinds);
    if (hyp__cur_array(c, &n) < 0 || n % 3 != 0)
        return hyp__fail(r, HYP_EFORMAT,
                         "samples record: the samples are not an array of [node, dt, weight]");
    n /= 3;
    k = &p->kinds[kind];
    if (r->opts.keep_samples &&
        hyp__grow((void **)&r->samples, &r->csamples, r->nsamples + n, sizeof(*r->samples)) < 0)
        return hyp__fail(r, HYP_ENOMEM, "out of memory");
    for (i = 0; i < n; i++) {
        uint32_t node;
        uint64_t dt, weight;
        uint64_t *v;

        if (hyp__cur_u32(c, &node) < 0 || hyp__cur_uint(c, &dt) < 0 ||
            hyp__cur_uint(c, &weight) < 0)
            return hyp__fail(r, HYP_EFORMAT, "samples record: sample %llu is malformed",
                             (unsigned long long)i);
        if (node >= hyp__file_nodes(r))
            return hyp__fail(r, HYP_ERANGE,
                             "samples record: sample %llu refers to node %u beyond the node "
                             "table (%zu nodes)",
                             (unsigned long long)i, node, hyp__file_nodes(r));
        node = node ? r->nmap[node] : 0;
        if (dt > UINT64_MAX - t)
            return hyp__fail(r, HYP_EFORMAT, "samples record: sample %llu's time overflows",
                             (unsigned long long)i);
        t += dt;
        if (node != last_node) {
            row = hyp__profile_row_index(p, (hyp_id_t)thread, node, labels);
            if (row < 0)
                return hyp__fail(r, HYP_ENOMEM, "out of memory");
            last_node = node;
        }
        v = p->vals + (size_t)row * p->nmetrics;
        v[k->count_metric] += 1;
        v[k->weight_metric] += weight;
        if (r->opts.keep_samples) {
            hyp_sample_t *s = &r->samples[r->nsamples++];

            s->thread = (hyp_id_t)thread;
            s->node = node;
            s->kind = (uint32_t)kind;
            s->time_ns = t;
            s->weight = weight;
            s->labels = labels;
        }
    }
    p->sample_total += n;
    return 0;
}

static int hyp__read_dropped_map(hyp_reader_t *r, hyp__cur_t *c, int totals) {
    uint64_t n, i;

    if (hyp__cur_map(c, &n) < 0)
        return -1;
    for (i = 0; i < n; i++) {
        const char *s;
        size_t len;
        uint64_t count;
        int rc;

        if (hyp__cur_str(c, &s, &len) < 0 || hyp__cur_uint(c, &count) < 0)
            return -1;
        if (totals) {
            rc = hyp__profile_set_dropped(r->profile, s, len, count);
        } else {
            char *reason = hyp__strndup(s, len);

            rc = reason == NULL ? HYP_ENOMEM : 0;
            if (rc == 0) {
                hyp_profile_add_dropped(r->profile, reason, count);
                hyp__free(reason);
            }
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int hyp__read_end(hyp_reader_t *r, hyp__cur_t *c) {
    hyp_profile_t *p = r->profile;
    uint64_t n, i, v;
    int rc;

    if (hyp__cur_map(c, &n) < 0)
        return hyp__fail(r, HYP_EFORMAT, "end record: not a map");
    for (i = 0; i < n; i++) {
        const char *s;
        size_t len;

        if (hyp__cur_str(c, &s, &len) < 0)
            return hyp__fail(r, HYP_EFORMAT, "end record: a key is not a string");
        if (hyp__streq(s, len, "samples") || hyp__streq(s, len, "nodes") ||
            hyp__streq(s, len, "truncated_nodes")) {
            if (hyp__cur_uint(c, &v) < 0)
                return hyp__fail(r, HYP_EFORMAT, "end record: \"%.*s\" is not an unsigned "
                                                 "integer",
                                 (int)len, s);
            if (s[0] == 's')
                p->sample_total = v;
            else if (s[0] == 't')
                p->truncated = v;
            else if (v != hyp__file_nodes(r))
                return hyp__fail(r, HYP_EFORMAT,
                                 "end record: it counts %llu nodes but the trace holds %zu",
                                 (unsigned long long)v, hyp__file_nodes(r));
        } else if (hyp__streq(s, len, "dropped")) {
            rc = hyp__read_dropped_map(r, c, 1);
            if (rc == -1)
                return hyp__fail(r, HYP_EFORMAT, "end record: \"dropped\" is not a map of "
                                                 "counts");
            if (rc < 0)
                return hyp__fail(r, rc, "out of memory");
        } else if (hyp__streq(s, len, "meta")) {
            uint64_t mn;

            if (hyp__cur_map(c, &mn) < 0)
                return hyp__fail(r, HYP_EFORMAT, "end record: \"meta\" is not a map");
            rc = hyp__read_meta_map(r, c, mn, 0);
            if (rc == -1)
                return hyp__fail(r, HYP_EFORMAT, "end record: a \"meta\" entry is malformed");
            if (rc == HYP_ERANGE)
                return hyp__fail(r, HYP_EFORMAT, "end record: \"meta\" has %llu entries (at "
                                 "most %u)", (unsigned long long)mn, HYP__META_MAX_ENTRIES);
            if (rc < 0)
                return hyp__fail(r, rc, "out of memory");
        } else if (hyp__cur_skip(c) < 0) {
            return hyp__fail(r, HYP_EFORMAT, "end record: a value is malformed");
        }
    }
    return 0;
}

static int hyp__read_record(hyp_reader_t *r, const unsigned char *obj, size_t len) {
    hyp__cur_t c = {obj, obj + len};
    uint64_t n, type;
    hyp_id_t labels;
    int rc;

    if (hyp__cur_array(&c, &n) < 0 || n < 1)
        return hyp__fail(r, HYP_EFORMAT, "a record is not an array [type, ...]");
    if (hyp__cur_uint(&c, &type) < 0)
        return hyp__fail(r, HYP_EFORMAT, "the record type is not an unsigned integer");
    switch (type) {
    case HYP__REC_STRINGS:
    case HYP__REC_FUNCS:
    case HYP__REC_THREADS:
    case HYP__REC_NODES:
        if (n < 3)
            return hyp__fail(r, HYP_EFORMAT, "a table record has %llu elements (3 expected)",
                             (unsigned long long)n);
        rc = type == HYP__REC_STRINGS ? hyp__read_strings(r, &c)
             : type == HYP__REC_FUNCS ? hyp__read_funcs(r, &c)
             : type == HYP__REC_THREADS ? hyp__read_threads(r, &c)
                                        : hyp__read_nodes(r, &c);
        break;
    case HYP__REC_METRICS:
        if (n < 3)
            return hyp__fail(r, HYP_EFORMAT, "a metrics record has %llu elements (3 expected)",
                             (unsigned long long)n);
        if ((rc = hyp__record_labels(r, &c, n, 2, "metrics", &labels)) < 0)
            return rc;
        rc = hyp__read_metrics(r, &c, labels);
        break;
    case HYP__REC_SAMPLES:
        if (n < 5)
            return hyp__fail(r, HYP_EFORMAT, "a samples record has %llu elements (5 expected)",
                             (unsigned long long)n);
        if ((rc = hyp__record_labels(r, &c, n, 4, "samples", &labels)) < 0)
            return rc;
        rc = hyp__read_samples(r, &c, labels);
        break;
    case HYP__REC_LABELS:
        if (n < 3)
            return hyp__fail(r, HYP_EFORMAT, "a labels record has %llu elements (3 expected)",
                             (unsigned long long)n);
        rc = hyp__read_labels(r, &c);
        break;
    case HYP__REC_DROPPED:
        if (n < 2)
            return hyp__fail(r, HYP_EFORMAT, "a dropped record has no counts");
        rc = hyp__read_dropped_map(r, &c, 0);
        if (rc == -1)
            return hyp__fail(r, HYP_EFORMAT, "dropped record: not a map of counts");
        if (rc < 0)
            return hyp__fail(r, rc, "out of memory");
        break;
    case HYP__REC_END:
        if (n < 2)
            return hyp__fail(r, HYP_EFORMAT, "the end record has no totals");
        rc = hyp__read_end(r, &c);
        if (rc == 0)
            r->state = HYP__R_ENDED;
        break;
    default:
        /* a record type of a later minor version: skip it whole */
        r->st.skipped++;
        rc = 0;
        break;
    }
    return rc;
}

/* ---------------------------------------------------------------- API */

static int hyp__reader_new(hyp_reader_t **out, const hyp_read_options_t *opts) {
    hyp_reader_t *r = hyp__calloc(1, sizeof(*r));

    if (r == NULL)
        return HYP_ENOMEM;
    r->opts.size = sizeof(r->opts);
    if (opts != NULL) {
        size_t n = opts->size < sizeof(r->opts) ? opts->size : sizeof(r->opts);

        memcpy(&r->opts, opts, n);
        r->opts.size = sizeof(r->opts);
    }
    if (r->opts.max_record_bytes == 0)
        r->opts.max_record_bytes = HYP__DEFAULT_MAX_RECORD;
    if (r->opts.max_table_entries == 0)
        r->opts.max_table_entries = HYP__DEFAULT_MAX_TABLE;
    r->fd = -1;
    r->state = HYP__R_MAGIC;
    *out = r;
    return 0;
}

int hyp_reader_open(hyp_reader_t **r, const char *path, const hyp_read_options_t *opts) {
    int fd, rc;

    if (r == NULL || path == NULL)
        return HYP_EINVAL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? HYP_ENOENT : errno == EACCES ? HYP_EPERM : HYP_EIO;
    rc = hyp__reader_new(r, opts);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    (*r)->fd = fd;
    (*r)->own_fd = 1;
    return 0;
}

int hyp_reader_open_fd(hyp_reader_t **r, int fd, const hyp_read_options_t *opts) {
    int rc;

    if (r == NULL || fd < 0)
        return HYP_EINVAL;
    rc = hyp__reader_new(r, opts);
    if (rc == 0)
        (*r)->fd = fd;
    return rc;
}

int hyp_reader_open_mem(hyp_reader_t **r, const void *buf, size_t len,
                        const hyp_read_options_t *opts) {
    int rc;

    if (r == NULL || (buf == NULL && len > 0))
        return HYP_EINVAL;
    rc = hyp__reader_new(r, opts);
    if (rc == 0) {
        (*r)->mem = buf != NULL ? buf : (const void *)"";
        (*r)->len = len;
        (*r)->eof = 1;
    }
    return rc;
}

int hyp_reader_next(hyp_reader_t *r) {
    const unsigned char *obj = NULL;
    size_t len = 0;
    int rc, state;

    if (r == NULL)
        return HYP_EINVAL;
    if (r->state == HYP__R_FAILED || (r->state == HYP__R_DONE && r->st.error != 0))
        return r->st.error;
    if (r->state == HYP__R_DONE)
        return 0;
    if (r->taken)
        return HYP_ESTATE;
    r->st.offset = r->base + r->pos;
    r->st.record = r->st.records;
    state = r->state;
    rc = hyp__next_object(r, &obj, &len);
    if (rc == 0) {
        if (r->state == HYP__R_ENDED) {
            r->state = HYP__R_DONE;
            return 0;
        }
        if (r->st.records == 0)
            return hyp__fail(r, HYP_ETRUNCATED, "the trace is empty");
        return hyp__fail(r, HYP_ETRUNCATED,
                         "the trace ends after %llu records, without an end record",
                         (unsigned long long)r->st.records);
    }
    if (rc < 0) {
        /* before the magic is accepted, anything unreadable is "not a trace" */
        if (state == HYP__R_MAGIC && rc != HYP_ETRUNCATED && rc != HYP_EIO &&
            rc != HYP_ENOMEM) {
            r->st.error = HYP_EMAGIC;
            snprintf(r->st.message, sizeof(r->st.message),
                     "record 0 at byte 0: not a hyprof trace: the file does not start with the "
                     "string \"" HYP__MAGIC "\"");
            return HYP_EMAGIC;
        }
        if (state == HYP__R_MAGIC && rc == HYP_ETRUNCATED && r->st.records == 0 &&
            r->len > r->pos) {
            size_t avail = r->len - r->pos, n = avail < HYP__MAGIC_LEN + 1 ? avail : 7;
            const unsigned char *p = r->mem ? r->mem : r->buf;
            static const unsigned char magic[] = "\xa6" HYP__MAGIC;

            if (memcmp(p + r->pos, magic, n) != 0) {
                r->st.truncated = 0;
                r->st.error = HYP_EMAGIC;
                r->state = HYP__R_FAILED;
                snprintf(r->st.message, sizeof(r->st.message),
                         "record 0 at byte 0: not a hyprof trace: the file does not start "
                         "with the string \"" HYP__MAGIC "\"");
                return HYP_EMAGIC;
            }
        }
        return rc;
    }
    switch (r->state) {
    case HYP__R_MAGIC:
        rc = hyp__read_magic(r, obj, len);
        if (rc == 0)
            r->state = HYP__R_HEADER;
        break;
    case HYP__R_HEADER:
        rc = hyp__read_header(r, obj, len);
        if (rc == 0)
            r->state = HYP__R_RECORDS;
        break;
    case HYP__R_RECORDS:
        rc = hyp__read_record(r, obj, len);
        break;
    case HYP__R_ENDED:
        return hyp__fail(r, HYP_EFORMAT, "data follows the end record");
    default:
        return HYP_ESTATE;
    }
    if (rc < 0)
        return rc;
    r->pos += len;
    r->st.records++;
    return 1;
}

hyp_profile_t *hyp_reader_profile(hyp_reader_t *r) {
    return r->taken ? NULL : r->profile;
}

hyp_profile_t *hyp_reader_take_profile(hyp_reader_t *r) {
    hyp_profile_t *p = r->taken ? NULL : r->profile;

    if (p != NULL)
        r->taken = 1;
    return p;
}

const hyp_sample_t *hyp_reader_samples(const hyp_reader_t *r, size_t *n) {
    if (n != NULL)
        *n = r->nsamples;
    return r->samples;
}

const hyp_read_status_t *hyp_reader_status(const hyp_reader_t *r) {
    return &r->st;
}

int hyp_reader_version(const hyp_reader_t *r, unsigned *major, unsigned *minor) {
    if (!r->have_header)
        return -1;
    *major = HYP_FORMAT_MAJOR;
    *minor = r->version_minor;
    return 0;
}

void hyp_reader_close(hyp_reader_t *r) {
    if (r == NULL)
        return;
    if (r->own_fd)
        close(r->fd);
    if (!r->taken)
        hyp_profile_free(r->profile);
    hyp__free(r->buf);
    hyp__free(r->samples);
    hyp__free(r->smap);
    hyp__free(r->fmap);
    hyp__free(r->nmap);
    hyp__free(r->lmap);
    hyp__free(r);
}

int hyp_trace_load(const char *path, const hyp_read_options_t *opts, hyp_profile_t **out,
                   hyp_read_status_t *status) {
    hyp_reader_t *r;
    int rc;

    if (out == NULL || path == NULL)
        return HYP_EINVAL;
    *out = NULL;
    rc = hyp_reader_open(&r, path, opts);
    if (rc < 0) {
        if (status != NULL) {
            memset(status, 0, sizeof(*status));
            status->error = rc;
            snprintf(status->message, sizeof(status->message), "cannot open: %s",
                     hyp_strerror(rc));
        }
        return rc;
    }
    while ((rc = hyp_reader_next(r)) > 0)
        ;
    if (status != NULL)
        *status = r->st;
    if (rc == 0 || rc == HYP_ETRUNCATED) {
        *out = hyp_reader_take_profile(r);
        if (*out == NULL) {
            /* cut before the header ended: an empty profile says so */
            *out = hyp_profile_new(HYP_MODE_DETERMINISTIC, NULL, 0);
            if (*out == NULL)
                rc = HYP_ENOMEM;
        }
    }
    hyp_reader_close(r);
    return rc;
}
