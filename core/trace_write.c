/* The trace writer (include/hyprof/trace.h, docs/FORMAT.md): msgpack objects
 * packed by msgpack-c into a buffer that is written out between records. */
#include "trace_int.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HYP__DRAIN_BYTES (1u << 20)

enum { HYP__W_NEW = 0, HYP__W_BEGUN = 1, HYP__W_FINISHED = 2 };

struct hyp_writer_s {
    int fd;       /* -1 for a memory writer */
    int own_fd;   /* opened by hyp_writer_open(), closed by close */
    char *buf;
    size_t len, cap;
    int err;      /* the first error; sticky */
    int state;
    msgpack_packer pk;
    /* what was written already: table sizes, sample kinds, metadata */
    size_t nstrs, nfuncs, nthreads, nnodes, nkinds, nlabsets;
    uint64_t meta_seq;
};

static int hyp__pk_write(void *data, const char *buf, size_t len) {
    hyp_writer_t *w = data;

    if (w->err)
        return -1;
    if (w->len + len > w->cap) {
        size_t cap = w->cap;

        if (hyp__grow((void **)&w->buf, &cap, w->len + len, 1) < 0) {
            w->err = HYP_ENOMEM;
            return -1;
        }
        w->cap = cap;
    }
    memcpy(w->buf + w->len, buf, len);
    w->len += len;
    return 0;
}

static int hyp__drain(hyp_writer_t *w) {
    size_t off = 0;

    if (w->fd < 0 || w->err)
        return w->err;
    while (off < w->len) {
        ssize_t n = write(w->fd, w->buf + off, w->len - off);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            w->err = HYP_EIO;
            break;
        }
        off += (size_t)n;
    }
    w->len = 0;
    return w->err;
}

static int hyp__maybe_drain(hyp_writer_t *w) {
    return w->len >= HYP__DRAIN_BYTES ? hyp__drain(w) : w->err;
}

static int hyp__writer_new(hyp_writer_t **out, int fd, int own_fd) {
    hyp_writer_t *w = hyp__calloc(1, sizeof(*w));

    if (w == NULL)
        return HYP_ENOMEM;
    w->fd = fd;
    w->own_fd = own_fd;
    msgpack_packer_init(&w->pk, w, hyp__pk_write);
    *out = w;
    return 0;
}

/* Creates a new file beside path, exclusively and without following a
 * symlink, mode 0600 (less by the umask): the file a trace is written to
 * before it replaces path. tmp receives its name. Returns the descriptor,
 * or -1 with errno set. */
static int hyp__create_beside(const char *path, char *tmp, size_t cap) {
    static unsigned counter;
    int i, fd = -1;

    for (i = 0; i < 100 && fd < 0; i++) {
        int n = snprintf(tmp, cap, "%s.%ld.%u.tmp", path, (long)getpid(), counter++);
        if (n < 0 || (size_t)n >= cap) {
            errno = ENAMETOOLONG;
            return -1;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            return -1;
    }
    return fd;
}

/* Opens the file a trace goes to. A trace replaces a regular file (or a
 * symlink: the link, never what it points to) by a rename, from a file
 * created beside it exclusively: a name planted in a shared directory
 * cannot redirect the write. tmp receives that file's name. A device or a
 * FIFO the caller names (/dev/null, /dev/stdout: a link of root's) is opened
 * and written to, tmp then ""; through a symlink only if the link is the
 * caller's or root's, as the kernel's protected_symlinks rule has it for
 * sticky directories, so another user's link never points the write at a
 * device. Returns the descriptor, or -1 with errno set. */
static int hyp__open_trace_file(const char *path, char *tmp, size_t cap) {
    struct stat st;
    int trusted = 1;

    tmp[0] = '\0';
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
        trusted = st.st_uid == 0 || st.st_uid == geteuid();
    if (trusted && stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return open(path, O_WRONLY | O_CLOEXEC);
    return hyp__create_beside(path, tmp, cap);
}

static int hyp__file_errno(void) {
    return errno == ENOENT ? HYP_ENOENT : errno == EACCES || errno == EPERM ? HYP_EPERM : HYP_EIO;
}

/* A stream must be at its path from its first byte (a program killed
 * outright leaves the samples flushed so far), so the file created
 * exclusively beside path takes its place at once. */
int hyp_writer_open(hyp_writer_t **w, const char *path) {
    char tmp[4096];
    int fd, rc, saved;

    if (w == NULL || path == NULL)
        return HYP_EINVAL;
    fd = hyp__open_trace_file(path, tmp, sizeof tmp);
    if (fd < 0)
        return hyp__file_errno();
    if (tmp[0] != '\0' && rename(tmp, path) != 0) {
        rc = hyp__file_errno();
        close(fd);
        unlink(tmp);
        return rc;
    }
    rc = hyp__writer_new(w, fd, 1);
    if (rc < 0) {
        saved = errno;
        close(fd);
        errno = saved;
    }
    return rc;
}

int hyp_writer_open_fd(hyp_writer_t **w, int fd) {
    if (w == NULL || fd < 0)
        return HYP_EINVAL;
    return hyp__writer_new(w, fd, 0);
}

int hyp_writer_open_mem(hyp_writer_t **w) {
    if (w == NULL)
        return HYP_EINVAL;
    return hyp__writer_new(w, -1, 0);
}

const void *hyp_writer_data(const hyp_writer_t *w, size_t *len) {
    if (len != NULL)
        *len = w->fd < 0 ? w->len : 0;
    return w->fd < 0 ? w->buf : NULL;
}

int hyp_writer_close(hyp_writer_t *w) {
    int err;

    if (w == NULL)
        return HYP_EINVAL;
    hyp__drain(w);
    err = w->err;
    if (w->own_fd && close(w->fd) < 0 && err == 0)
        err = HYP_EIO;
    hyp__free(w->buf);
    hyp__free(w);
    return err;
}

/* ---------------------------------------------------------------- packing */

static void hyp__pack_str(hyp_writer_t *w, const char *s, size_t len) {
    msgpack_pack_str(&w->pk, len);
    msgpack_pack_str_body(&w->pk, s, len);
}

static void hyp__pack_cstr(hyp_writer_t *w, const char *s) {
    hyp__pack_str(w, s, strlen(s));
}

static void hyp__pack_meta_value(hyp_writer_t *w, const hyp_meta_t *m) {
    size_t i;

    switch (m->type) {
    case HYP_META_NIL:
        msgpack_pack_nil(&w->pk);
        break;
    case HYP_META_BOOL:
        if (m->v.b)
            msgpack_pack_true(&w->pk);
        else
            msgpack_pack_false(&w->pk);
        break;
    case HYP_META_INT:
        msgpack_pack_int64(&w->pk, m->v.i);
        break;
    case HYP_META_UINT:
        msgpack_pack_uint64(&w->pk, m->v.u);
        break;
    case HYP_META_FLOAT:
        msgpack_pack_double(&w->pk, m->v.f);
        break;
    case HYP_META_STR:
        hyp__pack_cstr(w, m->v.s);
        break;
    case HYP_META_STRV:
        msgpack_pack_array(&w->pk, m->v.sv.n);
        for (i = 0; i < m->v.sv.n; i++)
            hyp__pack_cstr(w, m->v.sv.v[i]);
        break;
    }
}

/* ---------------------------------------------------------------- header */

int hyp_writer_begin(hyp_writer_t *w, const hyp_profile_t *p) {
    size_t i;

    if (w == NULL || p == NULL)
        return HYP_EINVAL;
    if (w->err)
        return w->err;
    if (w->state != HYP__W_NEW)
        return w->err = HYP_ESTATE;
    hyp__pack_str(w, HYP__MAGIC, HYP__MAGIC_LEN);
    msgpack_pack_map(&w->pk, 5 + p->nmeta);
    hyp__pack_cstr(w, "format");
    hyp__pack_cstr(w, HYP__FORMAT_NAME);
    hyp__pack_cstr(w, "version");
    msgpack_pack_array(&w->pk, 2);
    msgpack_pack_uint32(&w->pk, HYP_FORMAT_MAJOR);
    msgpack_pack_uint32(&w->pk, HYP_FORMAT_MINOR);
    hyp__pack_cstr(w, "mode");
    hyp__pack_cstr(w, p->mode == HYP_MODE_SAMPLING ? "sampling" : "deterministic");
    hyp__pack_cstr(w, "metrics");
    msgpack_pack_array(&w->pk, p->nmetrics);
    for (i = 0; i < p->nmetrics; i++) {
        msgpack_pack_array(&w->pk, 3);
        hyp__pack_cstr(w, p->metrics[i].name);
        hyp__pack_cstr(w, p->metrics[i].unit);
        hyp__pack_cstr(w, hyp_metric_kind_name(p->metrics[i].kind));
    }
    hyp__pack_cstr(w, "sample_kinds");
    msgpack_pack_array(&w->pk, p->nkinds);
    for (i = 0; i < p->nkinds; i++) {
        msgpack_pack_array(&w->pk, 4);
        hyp__pack_cstr(w, p->kinds[i].name);
        hyp__pack_cstr(w, p->kinds[i].unit);
        msgpack_pack_uint32(&w->pk, p->kinds[i].count_metric);
        msgpack_pack_uint32(&w->pk, p->kinds[i].weight_metric);
    }
    for (i = 0; i < p->nmeta; i++) {
        hyp__pack_cstr(w, p->meta[i].m.key);
        hyp__pack_meta_value(w, &p->meta[i].m);
    }
    w->nkinds = p->nkinds;
    w->meta_seq = p->meta_seq;
    w->state = HYP__W_BEGUN;
    return hyp__maybe_drain(w);
}

/* ---------------------------------------------------------------- tables */

static void hyp__write_strings(hyp_writer_t *w, const hyp_profile_t *p) {
    while (w->nstrs < p->nstrs && !w->err) {
        size_t first = w->nstrs, end = first, bytes = 0, i;

        while (end < p->nstrs && end - first < HYP__BATCH_ENTRIES &&
               (bytes < HYP__BATCH_BYTES || end == first))
            bytes += p->strs[end++].len + 5;
        msgpack_pack_array(&w->pk, 3);
        msgpack_pack_uint32(&w->pk, HYP__REC_STRINGS);
        msgpack_pack_uint64(&w->pk, first);
        msgpack_pack_array(&w->pk, end - first);
        for (i = first; i < end; i++)
            hyp__pack_str(w, p->strs[i].s, p->strs[i].len);
        w->nstrs = end;
        hyp__maybe_drain(w);
    }
}

/* Packs entry i of a table as the record's fields of it. */
typedef void (*hyp__pack_entry_fn)(hyp_writer_t *w, const hyp_profile_t *p, size_t i);

static void hyp__pack_func(hyp_writer_t *w, const hyp_profile_t *p, size_t i) {
    const hyp_func_t *f = &p->funcs[i];

    msgpack_pack_uint32(&w->pk, f->name);
    msgpack_pack_uint32(&w->pk, f->file);
    msgpack_pack_uint32(&w->pk, f->lineno);
    msgpack_pack_uint32(&w->pk, f->kind);
}

static void hyp__pack_thread(hyp_writer_t *w, const hyp_profile_t *p, size_t i) {
    msgpack_pack_uint64(&w->pk, p->threads[i].os_tid);
    msgpack_pack_uint64(&w->pk, p->threads[i].ident);
    msgpack_pack_uint32(&w->pk, p->threads[i].name);
}

static void hyp__pack_node(hyp_writer_t *w, const hyp_profile_t *p, size_t i) {
    msgpack_pack_uint32(&w->pk, p->nodes[i].parent);
    msgpack_pack_uint32(&w->pk, p->nodes[i].func);
    msgpack_pack_uint32(&w->pk, p->nodes[i].line);
}

/* Writes the entries of a table from *done up to total as records
 * [rec, first, [width fields an entry...]] of at most HYP__BATCH_ENTRIES
 * entries, advancing *done: what a stream writes at the next flush is what
 * the table gained since. */
static void hyp__write_table(hyp_writer_t *w, const hyp_profile_t *p, uint32_t rec, size_t *done,
                             size_t total, unsigned width, hyp__pack_entry_fn pack) {
    while (*done < total && !w->err) {
        size_t first = *done, end = first + HYP__BATCH_ENTRIES, i;

        if (end > total)
            end = total;
        msgpack_pack_array(&w->pk, 3);
        msgpack_pack_uint32(&w->pk, rec);
        msgpack_pack_uint64(&w->pk, first);
        msgpack_pack_array(&w->pk, (end - first) * width);
        for (i = first; i < end; i++)
            pack(w, p, i);
        *done = end;
        hyp__maybe_drain(w);
    }
}

/* LABELS records: [9, first_id, [n, key, value, ..., n, key, value, ...]],
 * each set its label count then its pairs; set 0, the empty one, is implicit
 * as the root node is. */
static void hyp__write_labels(hyp_writer_t *w, const hyp_profile_t *p) {
    if (w->nlabsets == 0)
        w->nlabsets = 1;
    while (w->nlabsets < p->nlabsets && !w->err) {
        size_t first = w->nlabsets, end = first, values = 0, i, j;

        while (end < p->nlabsets && end - first < HYP__BATCH_ENTRIES) {
            values += 1 + 2 * (p->lab_off[end + 1] - p->lab_off[end]);
            end++;
        }
        msgpack_pack_array(&w->pk, 3);
        msgpack_pack_uint32(&w->pk, HYP__REC_LABELS);
        msgpack_pack_uint64(&w->pk, first);
        msgpack_pack_array(&w->pk, values);
        for (i = first; i < end; i++) {
            msgpack_pack_uint64(&w->pk, p->lab_off[i + 1] - p->lab_off[i]);
            for (j = p->lab_off[i]; j < p->lab_off[i + 1]; j++) {
                msgpack_pack_uint32(&w->pk, p->labs[j].key);
                msgpack_pack_uint32(&w->pk, p->labs[j].value);
            }
        }
        w->nlabsets = end;
        hyp__maybe_drain(w);
    }
}

static void hyp__write_nodes(hyp_writer_t *w, const hyp_profile_t *p) {
    if (w->nnodes == 0)
        w->nnodes = 1; /* the root is implicit */
    hyp__write_table(w, p, HYP__REC_NODES, &w->nnodes, p->nnodes, 3, hyp__pack_node);
}

static void hyp__write_tables(hyp_writer_t *w, const hyp_profile_t *p) {
    hyp__write_strings(w, p);
    hyp__write_table(w, p, HYP__REC_FUNCS, &w->nfuncs, p->nfuncs, 4, hyp__pack_func);
    hyp__write_table(w, p, HYP__REC_THREADS, &w->nthreads, p->nthreads, 3, hyp__pack_thread);
    hyp__write_labels(w, p);
    hyp__write_nodes(w, p);
}

/* ---------------------------------------------------------------- samples */

/* Writes samples grouped by (thread, kind), each group in its original
 * order; a record ends where time goes backwards, the label set changes or
 * the batch is full. A record of labelled samples names their set last. */
static void hyp__write_samples(hyp_writer_t *w, const hyp_profile_t *p, const hyp_sample_t *s,
                               size_t n) {
    size_t nkeys, i, *start = NULL;
    uint32_t *order = NULL;

    if (n == 0 || w->err)
        return;
    if (p->nthreads > SIZE_MAX / (p->nkinds + 1) - 1) {
        w->err = HYP_ENOMEM;
        return;
    }
    /* a stable counting sort on thread * nkinds + kind */
    nkeys = p->nthreads * p->nkinds;
    start = hyp__calloc(nkeys + 1, sizeof(*start));
    order = hyp__malloc(n * sizeof(*order));
    if (start == NULL || order == NULL || n > UINT32_MAX) {
        w->err = HYP_ENOMEM;
        goto out;
    }
    for (i = 0; i < n; i++)
        start[(size_t)s[i].thread * p->nkinds + s[i].kind + 1]++;
    for (i = 0; i < nkeys; i++)
        start[i + 1] += start[i];
    for (i = 0; i < n; i++)
        order[start[(size_t)s[i].thread * p->nkinds + s[i].kind]++] = (uint32_t)i;
    for (i = 0; i < n && !w->err;) {
        const hyp_sample_t *first = &s[order[i]];
        size_t end = i + 1, j;
        uint64_t prev;

        prev = first->time_ns;
        while (end < n && end - i < HYP__BATCH_SAMPLES) {
            const hyp_sample_t *x = &s[order[end]];

            if (x->thread != first->thread || x->kind != first->kind || x->time_ns < prev ||
                x->labels != first->labels)
                break;
            prev = x->time_ns;
            end++;
        }
        msgpack_pack_array(&w->pk, first->labels != HYP_NO_LABELS ? 6 : 5);
        msgpack_pack_uint32(&w->pk, HYP__REC_SAMPLES);
        msgpack_pack_uint32(&w->pk, first->thread);
        msgpack_pack_uint32(&w->pk, first->kind);
        msgpack_pack_uint64(&w->pk, first->time_ns);
        msgpack_pack_array(&w->pk, (end - i) * 3);
        prev = first->time_ns;
        for (j = i; j < end; j++) {
            const hyp_sample_t *x = &s[order[j]];

            msgpack_pack_uint32(&w->pk, x->node);
            msgpack_pack_uint64(&w->pk, x->time_ns - prev);
            msgpack_pack_uint64(&w->pk, x->weight);
            prev = x->time_ns;
        }
        if (first->labels != HYP_NO_LABELS)
            msgpack_pack_uint32(&w->pk, first->labels);
        hyp__maybe_drain(w);
        i = end;
    }
out:
    hyp__free(start);
    hyp__free(order);
}

static void hyp__write_dropped_delta(hyp_writer_t *w, hyp_profile_t *p) {
    size_t i, n = 0;

    for (i = 0; i < p->ndropped; i++)
        n += p->dropped[i].n != p->dropped[i].flushed;
    if (n == 0 || w->err)
        return;
    msgpack_pack_array(&w->pk, 2);
    msgpack_pack_uint32(&w->pk, HYP__REC_DROPPED);
    msgpack_pack_map(&w->pk, n);
    for (i = 0; i < p->ndropped; i++) {
        hyp__dropped_t *d = &p->dropped[i];

        if (d->n == d->flushed)
            continue;
        hyp__pack_cstr(w, d->reason);
        msgpack_pack_uint64(&w->pk, d->n - d->flushed);
        d->flushed = d->n;
    }
}

static int hyp__check_begun(hyp_writer_t *w, const hyp_profile_t *p) {
    if (w == NULL || p == NULL)
        return HYP_EINVAL;
    if (w->err)
        return w->err;
    if (w->state != HYP__W_BEGUN || p->nkinds != w->nkinds)
        return w->err = HYP_ESTATE;
    return 0;
}

int hyp_writer_flush(hyp_writer_t *w, hyp_profile_t *p) {
    int rc = hyp__check_begun(w, p);

    if (rc < 0)
        return rc;
    hyp__write_tables(w, p);
    hyp__write_samples(w, p, p->pending, p->npending);
    hyp__write_dropped_delta(w, p);
    if (!w->err && hyp__profile_samples_flushed(p) < 0)
        w->err = HYP_ENOMEM;
    return hyp__drain(w);
}

/* ---------------------------------------------------------------- rows, end */

static int hyp__cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Orders each thread's rows (order[start[t-1] .. start[t]-1]) by label set,
 * then by row index, so that each set is one run of records. Returns 0 or
 * HYP_ENOMEM. */
static int hyp__order_by_labels(const hyp_profile_t *p, uint32_t *order, const size_t *start) {
    uint64_t *keys = hyp__malloc((p->nrows ? p->nrows : 1) * sizeof(*keys));
    size_t t, r, j;

    if (keys == NULL)
        return HYP_ENOMEM;
    for (t = 0, r = 0; t < p->nthreads; r = start[t++]) {
        for (j = r; j < start[t]; j++)
            keys[j - r] = (uint64_t)p->rowkeys[order[j]].labels << 32 | order[j];
        qsort(keys, start[t] - r, sizeof(*keys), hyp__cmp_u64);
        for (j = r; j < start[t]; j++)
            order[j] = (uint32_t)keys[j - r];
    }
    hyp__free(keys);
    return 0;
}

/* Writes the rows not carried by samples: the rows' values minus sub (the
 * part of flushed samples, may be NULL) minus the contributions of the
 * samples in extra (written in this file as samples). */
static void hyp__write_rows(hyp_writer_t *w, const hyp_profile_t *p, const uint64_t *sub,
                            const hyp_sample_t *extra, size_t nextra) {
    size_t m = p->nmetrics, r, i, t, *start = NULL;
    uint64_t *vals = NULL;
    uint32_t *order = NULL;

    if (p->nrows == 0 || m == 0 || w->err)
        return;
    vals = hyp__malloc(p->nrows * m * sizeof(*vals));
    start = hyp__calloc(p->nthreads + 1, sizeof(*start));
    order = hyp__malloc(p->nrows * sizeof(*order));
    if (vals == NULL || start == NULL || order == NULL) {
        w->err = HYP_ENOMEM;
        goto out;
    }
    memcpy(vals, p->vals, p->nrows * m * sizeof(*vals));
    if (sub != NULL)
        for (i = 0; i < p->nrows * m; i++)
            vals[i] -= sub[i];
    for (i = 0; i < nextra; i++) {
        const hyp_sample_kind_t *k = &p->kinds[extra[i].kind];
        int64_t row =
            hyp__profile_find_row(p, extra[i].thread, extra[i].node, extra[i].labels);

        if (row >= 0) {
            vals[(size_t)row * m + k->count_metric] -= 1;
            vals[(size_t)row * m + k->weight_metric] -= extra[i].weight;
        }
    }
    /* group the non-zero rows by thread */
    for (r = 0; r < p->nrows; r++) {
        const uint64_t *v = vals + r * m;

        for (i = 0; i < m && v[i] == 0; i++)
            ;
        if (i < m)
            start[p->rowkeys[r].thread + 1]++;
    }
    for (t = 0; t < p->nthreads; t++)
        start[t + 1] += start[t];
    for (r = 0; r < p->nrows; r++) {
        const uint64_t *v = vals + r * m;

        for (i = 0; i < m && v[i] == 0; i++)
            ;
        if (i < m)
            order[start[p->rowkeys[r].thread]++] = (uint32_t)r;
    }
    /* start[t] is now the end of thread t's rows */
    if (p->nlabsets > 1 && hyp__order_by_labels(p, order, start) < 0) {
        w->err = HYP_ENOMEM;
        goto out;
    }
    for (t = 0, r = 0; t < p->nthreads && !w->err; t++) {
        while (r < start[t] && !w->err) {
            hyp_id_t labels = p->rowkeys[order[r]].labels;
            size_t end = r + 1, j;

            while (end < start[t] && end - r < HYP__BATCH_ENTRIES &&
                   p->rowkeys[order[end]].labels == labels)
                end++;
            msgpack_pack_array(&w->pk, labels != HYP_NO_LABELS ? 4 : 3);
            msgpack_pack_uint32(&w->pk, HYP__REC_METRICS);
            msgpack_pack_uint64(&w->pk, t);
            msgpack_pack_array(&w->pk, (end - r) * (m + 1));
            for (j = r; j < end; j++) {
                const uint64_t *v = vals + (size_t)order[j] * m;

                msgpack_pack_uint32(&w->pk, p->rowkeys[order[j]].node);
                for (i = 0; i < m; i++)
                    msgpack_pack_uint64(&w->pk, v[i]);
            }
            if (labels != HYP_NO_LABELS)
                msgpack_pack_uint32(&w->pk, labels);
            hyp__maybe_drain(w);
            r = end;
        }
    }
out:
    hyp__free(vals);
    hyp__free(start);
    hyp__free(order);
}

static void hyp__write_end(hyp_writer_t *w, const hyp_profile_t *p, uint64_t meta_seq) {
    size_t i, late = 0;

    if (w->err)
        return;
    for (i = 0; i < p->nmeta; i++)
        late += p->meta[i].seq > meta_seq;
    msgpack_pack_array(&w->pk, 2);
    msgpack_pack_uint32(&w->pk, HYP__REC_END);
    msgpack_pack_map(&w->pk, late ? 5 : 4);
    hyp__pack_cstr(w, "samples");
    msgpack_pack_uint64(&w->pk, p->sample_total);
    hyp__pack_cstr(w, "nodes");
    msgpack_pack_uint64(&w->pk, p->nnodes);
    hyp__pack_cstr(w, "truncated_nodes");
    msgpack_pack_uint64(&w->pk, p->truncated);
    hyp__pack_cstr(w, "dropped");
    msgpack_pack_map(&w->pk, p->ndropped);
    for (i = 0; i < p->ndropped; i++) {
        hyp__pack_cstr(w, p->dropped[i].reason);
        msgpack_pack_uint64(&w->pk, p->dropped[i].n);
    }
    if (late) {
        hyp__pack_cstr(w, "meta");
        msgpack_pack_map(&w->pk, late);
        for (i = 0; i < p->nmeta; i++) {
            if (p->meta[i].seq <= meta_seq)
                continue;
            hyp__pack_cstr(w, p->meta[i].m.key);
            hyp__pack_meta_value(w, &p->meta[i].m);
        }
    }
}

int hyp_writer_finish(hyp_writer_t *w, hyp_profile_t *p) {
    int rc = hyp_writer_flush(w, p);

    if (rc < 0)
        return rc;
    hyp__write_tables(w, p); /* the flush wrote them; nothing new */
    hyp__write_rows(w, p, p->svals, NULL, 0);
    hyp__write_end(w, p, w->meta_seq);
    w->state = HYP__W_FINISHED;
    return hyp__drain(w);
}

/* Writes all of p through a fresh writer w, leaving p unchanged: its pending
 * samples as samples and the rest of every row (including samples an earlier
 * writer flushed) as metric rows. Returns 0 or the writer's error. */
static int hyp__write_whole(hyp_writer_t *w, const hyp_profile_t *p) {
    int rc = hyp_writer_begin(w, p);

    if (rc < 0)
        return rc;
    hyp__write_tables(w, p);
    hyp__write_samples(w, p, p->pending, p->npending);
    hyp__write_rows(w, p, NULL, p->pending, p->npending);
    hyp__write_end(w, p, p->meta_seq);
    w->state = HYP__W_FINISHED;
    return w->err;
}

int hyp_trace_save(const hyp_profile_t *p, const char *path) {
    hyp_writer_t *w;
    char tmp[4096];
    int rc, rc2, fd;

    if (p == NULL || path == NULL)
        return HYP_EINVAL;
    /* Written whole before it takes path's place: a reader never sees half
     * a trace. */
    fd = hyp__open_trace_file(path, tmp, sizeof tmp);
    if (fd < 0)
        return hyp__file_errno();
    rc = hyp__writer_new(&w, fd, 1);
    if (rc < 0) {
        close(fd);
        if (tmp[0] != '\0')
            unlink(tmp);
        return rc;
    }
    rc = hyp__write_whole(w, p);
    rc2 = hyp_writer_close(w);
    if (tmp[0] == '\0')
        return rc < 0 ? rc : rc2;
    /* A file cut short by a full disk or a size limit would load as a
     * truncated trace of a smaller program: it never takes path's place. */
    if (rc == 0 && rc2 == 0 && rename(tmp, path) != 0)
        rc = hyp__file_errno();
    if (rc < 0 || rc2 < 0)
        unlink(tmp);
    return rc < 0 ? rc : rc2;
}

int hyp_trace_copy(const char *src, const char *dst) {
    char tmp[4096], buf[1 << 16];
    int in, out, rc = 0;
    ssize_t n;

    if (src == NULL || dst == NULL)
        return HYP_EINVAL;
    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return hyp__file_errno();
    out = hyp__open_trace_file(dst, tmp, sizeof tmp);
    if (out < 0) {
        rc = hyp__file_errno();
        close(in);
        return rc;
    }
    while (rc == 0 && (n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno != EINTR)
                rc = HYP_EIO;
            continue;
        }
        for (ssize_t off = 0, k; rc == 0 && off < n; off += k > 0 ? k : 0) {
            k = write(out, buf + off, (size_t)(n - off));
            if (k < 0 && errno != EINTR)
                rc = hyp__file_errno();
        }
    }
    close(in);
    if (close(out) != 0 && rc == 0)
        rc = HYP_EIO;
    if (tmp[0] == '\0')
        return rc;
    if (rc == 0 && rename(tmp, dst) != 0)
        rc = hyp__file_errno();
    if (rc < 0)
        unlink(tmp);
    return rc;
}

int hyp_trace_save_mem(const hyp_profile_t *p, hyp_writer_t **out) {
    hyp_writer_t *w;
    int rc;

    rc = hyp_writer_open_mem(&w);
    if (rc < 0)
        return rc;
    rc = hyp__write_whole(w, p);
    if (rc < 0) {
        hyp_writer_close(w);
        return rc;
    }
    *out = w;
    return 0;
}
