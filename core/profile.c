/* The in-memory profile: interned tables, the calling-context tree, metric
 * rows and pending samples (include/hyprof/profile.h). */
#include "profile_int.h"

#include <string.h>

#define HYP__MAX_ID ((size_t)UINT32_MAX - 1) /* ids stay below HYP_NO_ID */

static const char *const hyp__reserved_keys[] = {"format", "version", "mode", "metrics",
                                                 "sample_kinds"};

int hyp_meta_key_reserved(const char *key) {
    size_t i;

    for (i = 0; i < HYP__ARRAY_SIZE(hyp__reserved_keys); i++)
        if (strcmp(key, hyp__reserved_keys[i]) == 0)
            return 1;
    return 0;
}

int hyp_meta_key_summed(const char *key) {
    return strcmp(key, "no_python_frames") == 0 || strncmp(key, "gc_", 3) == 0 ||
           strncmp(key, "gil_", 4) == 0;
}

const char *hyp_metric_kind_name(hyp_metric_kind_t kind) {
    switch (kind) {
    case HYP_METRIC_OWN:
        return "own";
    case HYP_METRIC_CUM:
        return "cum";
    case HYP_METRIC_CALLS:
        return "calls";
    case HYP_METRIC_REC:
        return "rec";
    case HYP_METRIC_EDGE_REC:
        return "edge_rec";
    }
    return "?";
}

int hyp_metric_kind_parse(const char *s, size_t len, hyp_metric_kind_t *kind) {
    static const hyp_metric_kind_t all[] = {HYP_METRIC_OWN, HYP_METRIC_CUM, HYP_METRIC_CALLS,
                                            HYP_METRIC_REC, HYP_METRIC_EDGE_REC};
    size_t i;

    for (i = 0; i < HYP__ARRAY_SIZE(all); i++) {
        const char *name = hyp_metric_kind_name(all[i]);
        if (strlen(name) == len && memcmp(name, s, len) == 0) {
            *kind = all[i];
            return 0;
        }
    }
    return HYP_EINVAL;
}

size_t hyp__metric_base(const hyp_metric_t *metrics, size_t nmetrics, size_t i) {
    const char *suffix, *name = metrics[i].name;
    size_t len = strlen(name), slen, j;

    if (metrics[i].kind == HYP_METRIC_REC)
        suffix = ".rec";
    else if (metrics[i].kind == HYP_METRIC_EDGE_REC)
        suffix = ".edge_rec";
    else
        return SIZE_MAX;
    slen = strlen(suffix);
    if (len <= slen || strcmp(name + len - slen, suffix) != 0)
        return SIZE_MAX;
    for (j = 0; j < nmetrics; j++)
        if (strlen(metrics[j].name) == len - slen && memcmp(metrics[j].name, name, len - slen) == 0)
            return metrics[j].kind == HYP_METRIC_CALLS || metrics[j].kind == HYP_METRIC_CUM
                       ? j
                       : SIZE_MAX;
    return SIZE_MAX;
}

/* ---------------------------------------------------------------- hashing */

static uint64_t hyp__str_hash_of(const void *ctx, uint32_t id) {
    return ((const hyp_profile_t *)ctx)->str_hash[id];
}

static uint64_t hyp__func_hash(const hyp_func_t *f) {
    return hyp__mix64(((uint64_t)f->name << 32 | f->file) ^
                      hyp__mix64((uint64_t)f->lineno << 32 | f->kind));
}

static uint64_t hyp__func_hash_of(const void *ctx, uint32_t id) {
    return hyp__func_hash(&((const hyp_profile_t *)ctx)->funcs[id]);
}

static inline uint64_t hyp__node_hash(hyp_id_t parent, hyp_id_t func, uint32_t line) {
    return hyp__mix64(((uint64_t)parent << 32 | func) ^ ((uint64_t)line * 0x9e3779b97f4a7c15ULL));
}

static uint64_t hyp__node_hash_of(const void *ctx, uint32_t id) {
    const hyp_node_t *n = &((const hyp_profile_t *)ctx)->nodes[id];
    return hyp__node_hash(n->parent, n->func, n->line);
}

static inline uint64_t hyp__row_hash(hyp_id_t thread, hyp_id_t node, hyp_id_t labels) {
    return hyp__mix64(((uint64_t)thread << 32 | node) ^ ((uint64_t)labels * 0x9e3779b97f4a7c15ULL));
}

static uint64_t hyp__row_hash_of(const void *ctx, uint32_t id) {
    const hyp__rowkey_t *k = &((const hyp_profile_t *)ctx)->rowkeys[id];
    return hyp__row_hash(k->thread, k->node, k->labels);
}

static uint64_t hyp__labels_hash(const hyp_label_t *l, size_t n) {
    uint64_t h = n;
    size_t i;

    for (i = 0; i < n; i++)
        h = hyp__mix64(h ^ ((uint64_t)l[i].key << 32 | l[i].value));
    return h;
}

static uint64_t hyp__labels_hash_of(const void *ctx, uint32_t id) {
    const hyp_profile_t *p = ctx;

    return hyp__labels_hash(p->labs + p->lab_off[id], p->lab_off[id + 1] - p->lab_off[id]);
}

/* ---------------------------------------------------------------- lifecycle */

static void hyp__meta_clear(hyp_meta_t *m) {
    size_t i;

    if (m->type == HYP_META_STR) {
        hyp__free((void *)m->v.s);
    } else if (m->type == HYP_META_STRV) {
        for (i = 0; i < m->v.sv.n; i++)
            hyp__free((void *)m->v.sv.v[i]);
        hyp__free((void *)m->v.sv.v);
    }
    hyp__free((void *)m->key);
}

void hyp_profile_free(hyp_profile_t *p) {
    size_t i;

    if (p == NULL)
        return;
    for (i = 0; i < p->nmetrics; i++) {
        hyp__free((void *)p->metrics[i].name);
        hyp__free((void *)p->metrics[i].unit);
    }
    hyp__free(p->metrics);
    for (i = 0; i < p->nmeta; i++)
        hyp__meta_clear(&p->meta[i].m);
    hyp__free(p->meta);
    for (i = 0; i < p->nstrs; i++)
        hyp__free(p->strs[i].s);
    hyp__free(p->strs);
    hyp__free(p->str_hash);
    hyp__htab_destroy(&p->str_ht);
    hyp__free(p->funcs);
    hyp__htab_destroy(&p->func_ht);
    hyp__free(p->nodes);
    hyp__htab_destroy(&p->node_ht);
    hyp__free(p->threads);
    hyp__free(p->labs);
    hyp__free(p->lab_off);
    hyp__htab_destroy(&p->lab_ht);
    hyp__free(p->rowkeys);
    hyp__free(p->vals);
    hyp__free(p->svals);
    hyp__htab_destroy(&p->row_ht);
    for (i = 0; i < p->nkinds; i++) {
        hyp__free((void *)p->kinds[i].name);
        hyp__free((void *)p->kinds[i].unit);
    }
    hyp__free(p->kinds);
    hyp__free(p->pending);
    for (i = 0; i < p->ndropped; i++)
        hyp__free(p->dropped[i].reason);
    hyp__free(p->dropped);
    hyp__free(p);
}

hyp_profile_t *hyp_profile_new(hyp_mode_t mode, const hyp_metric_t *metrics, size_t nmetrics) {
    hyp_profile_t *p;
    size_t i, j;

    if (mode != HYP_MODE_DETERMINISTIC && mode != HYP_MODE_SAMPLING)
        return NULL;
    if (nmetrics > 0 && metrics == NULL)
        return NULL;
    for (i = 0; i < nmetrics; i++) {
        if (metrics[i].name == NULL || metrics[i].name[0] == '\0' || metrics[i].unit == NULL)
            return NULL;
        if ((unsigned)metrics[i].kind > HYP_METRIC_EDGE_REC)
            return NULL;
        if ((metrics[i].kind == HYP_METRIC_REC || metrics[i].kind == HYP_METRIC_EDGE_REC) &&
            hyp__metric_base(metrics, nmetrics, i) == SIZE_MAX)
            return NULL;
        for (j = 0; j < i; j++)
            if (strcmp(metrics[i].name, metrics[j].name) == 0)
                return NULL;
    }
    p = hyp__calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->mode = mode;
    p->trunc_func = HYP_NO_ID;
    if (nmetrics > 0) {
        p->metrics = hyp__calloc(nmetrics, sizeof(*p->metrics));
        if (p->metrics == NULL)
            goto fail;
        for (i = 0; i < nmetrics; i++) {
            p->metrics[i].kind = metrics[i].kind;
            p->metrics[i].name = hyp__strdup(metrics[i].name);
            p->metrics[i].unit = hyp__strdup(metrics[i].unit);
            p->nmetrics = i + 1;
            if (p->metrics[i].name == NULL || p->metrics[i].unit == NULL)
                goto fail;
        }
    }
    /* The root: no parent, no function. It is not in the node hash. */
    if (hyp__grow((void **)&p->nodes, &p->cnodes, 1, sizeof(*p->nodes)) < 0)
        goto fail;
    p->nodes[0].parent = HYP_NO_ID;
    p->nodes[0].func = HYP_NO_ID;
    p->nodes[0].line = 0;
    p->nnodes = 1;
    /* The empty label set, HYP_NO_LABELS: two offsets, both 0. */
    if (hyp__grow((void **)&p->lab_off, &p->clabsets, 2, sizeof(*p->lab_off)) < 0)
        goto fail;
    p->lab_off[0] = p->lab_off[1] = 0;
    p->nlabsets = 1;
    return p;
fail:
    hyp_profile_free(p);
    return NULL;
}

hyp_profile_t *hyp_profile_new_like(const hyp_profile_t *src) {
    hyp_profile_t *p;
    uint32_t k;
    size_t i;

    if (src == NULL)
        return NULL;
    p = hyp_profile_new(src->mode, src->metrics, src->nmetrics);
    if (p == NULL)
        return NULL;
    for (i = 0; i < src->nkinds; i++)
        if (hyp_profile_sample_kind(p, &src->kinds[i], &k) < 0)
            goto fail;
    for (i = 0; i < src->nmeta; i++)
        if (!hyp_meta_key_summed(src->meta[i].m.key) && hyp_profile_set_meta(p, &src->meta[i].m) < 0)
            goto fail;
    p->node_limit = src->node_limit;
    return p;
fail:
    hyp_profile_free(p);
    return NULL;
}

hyp_mode_t hyp_profile_mode(const hyp_profile_t *p) {
    return p->mode;
}

void hyp_profile_set_node_limit(hyp_profile_t *p, size_t max_nodes) {
    p->node_limit = max_nodes;
}

uint64_t hyp_profile_truncated(const hyp_profile_t *p) {
    return p->truncated;
}

void hyp_profile_set_truncated(hyp_profile_t *p, uint64_t n) {
    p->truncated = n;
}

/* ---------------------------------------------------------------- metadata */

static int hyp__meta_copy(hyp_meta_t *dst, const hyp_meta_t *src) {
    size_t i;

    memset(dst, 0, sizeof(*dst));
    dst->type = src->type;
    switch (src->type) {
    case HYP_META_NIL:
        break;
    case HYP_META_BOOL:
        dst->v.b = src->v.b ? 1 : 0;
        break;
    case HYP_META_INT:
        dst->v.i = src->v.i;
        break;
    case HYP_META_UINT:
        dst->v.u = src->v.u;
        break;
    case HYP_META_FLOAT:
        dst->v.f = src->v.f;
        break;
    case HYP_META_STR:
        if (src->v.s == NULL)
            return HYP_EINVAL;
        dst->v.s = hyp__strdup(src->v.s);
        if (dst->v.s == NULL)
            return HYP_ENOMEM;
        break;
    case HYP_META_STRV: {
        const char **v;

        if (src->v.sv.n > 0 && src->v.sv.v == NULL)
            return HYP_EINVAL;
        for (i = 0; i < src->v.sv.n; i++)
            if (src->v.sv.v[i] == NULL)
                return HYP_EINVAL;
        v = hyp__calloc(src->v.sv.n, sizeof(*v));
        if (v == NULL)
            return HYP_ENOMEM;
        dst->v.sv.v = v;
        for (i = 0; i < src->v.sv.n; i++) {
            v[i] = hyp__strdup(src->v.sv.v[i]);
            if (v[i] == NULL)
                return HYP_ENOMEM; /* the caller clears the partial copy */
            dst->v.sv.n = i + 1;
        }
        break;
    }
    default:
        return HYP_EINVAL;
    }
    return 0;
}

int hyp_profile_set_meta(hyp_profile_t *p, const hyp_meta_t *entry) {
    hyp_meta_t copy;
    size_t i;
    int rc;

    if (entry == NULL || entry->key == NULL || entry->key[0] == '\0' ||
        hyp_meta_key_reserved(entry->key))
        return HYP_EINVAL;
    rc = hyp__meta_copy(&copy, entry);
    if (rc == 0) {
        copy.key = hyp__strdup(entry->key);
        if (copy.key == NULL)
            rc = HYP_ENOMEM;
    }
    if (rc < 0) {
        hyp__meta_clear(&copy);
        return rc;
    }
    for (i = 0; i < p->nmeta; i++) {
        if (strcmp(p->meta[i].m.key, entry->key) == 0) {
            hyp__meta_clear(&p->meta[i].m);
            p->meta[i].m = copy;
            p->meta[i].seq = ++p->meta_seq;
            return 0;
        }
    }
    if (hyp__grow((void **)&p->meta, &p->cmeta, p->nmeta + 1, sizeof(*p->meta)) < 0) {
        hyp__meta_clear(&copy);
        return HYP_ENOMEM;
    }
    p->meta[p->nmeta].m = copy;
    p->meta[p->nmeta].seq = ++p->meta_seq;
    p->nmeta++;
    return 0;
}

int hyp_profile_set_meta_str(hyp_profile_t *p, const char *key, const char *value) {
    hyp_meta_t m = {.key = key, .type = HYP_META_STR, .v.s = value};
    return hyp_profile_set_meta(p, &m);
}

int hyp_profile_set_meta_int(hyp_profile_t *p, const char *key, int64_t value) {
    hyp_meta_t m = {.key = key, .type = HYP_META_INT, .v.i = value};
    return hyp_profile_set_meta(p, &m);
}

int hyp_profile_set_meta_float(hyp_profile_t *p, const char *key, double value) {
    hyp_meta_t m = {.key = key, .type = HYP_META_FLOAT, .v.f = value};
    return hyp_profile_set_meta(p, &m);
}

int hyp_profile_set_meta_bool(hyp_profile_t *p, const char *key, int value) {
    hyp_meta_t m = {.key = key, .type = HYP_META_BOOL, .v.b = value};
    return hyp_profile_set_meta(p, &m);
}

int hyp_profile_set_meta_strv(hyp_profile_t *p, const char *key, const char *const *values,
                              size_t n) {
    hyp_meta_t m = {.key = key, .type = HYP_META_STRV};
    m.v.sv.v = values;
    m.v.sv.n = n;
    return hyp_profile_set_meta(p, &m);
}

size_t hyp_profile_meta_count(const hyp_profile_t *p) {
    return p->nmeta;
}

const hyp_meta_t *hyp_profile_meta_at(const hyp_profile_t *p, size_t i) {
    return i < p->nmeta ? &p->meta[i].m : NULL;
}

const hyp_meta_t *hyp_profile_meta_get(const hyp_profile_t *p, const char *key) {
    size_t i;

    if (key == NULL)
        return NULL;
    for (i = 0; i < p->nmeta; i++)
        if (strcmp(p->meta[i].m.key, key) == 0)
            return &p->meta[i].m;
    return NULL;
}

/* ---------------------------------------------------------------- strings */

static int hyp__string_add(hyp_profile_t *p, const char *s, size_t len, uint64_t hash) {
    size_t i, cap = p->cstrs;
    char *copy;

    if (p->nstrs >= HYP__MAX_ID)
        return HYP_ENOMEM;
    if (hyp__grow((void **)&p->strs, &cap, p->nstrs + 1, sizeof(*p->strs)) < 0)
        return HYP_ENOMEM;
    if (cap != p->cstrs) {
        uint64_t *h = hyp__realloc(p->str_hash, cap * sizeof(*p->str_hash));

        if (h == NULL)
            return HYP_ENOMEM; /* strs grew, harmlessly; cstrs still says the old size */
        p->str_hash = h;
        p->cstrs = cap;
    }
    if (hyp__htab_reserve(&p->str_ht, hyp__str_hash_of, p) < 0)
        return HYP_ENOMEM;
    copy = hyp__malloc(len + 1);
    if (copy == NULL)
        return HYP_ENOMEM;
    if (len > 0)
        memcpy(copy, s, len);
    copy[len] = '\0';
    p->strs[p->nstrs].s = copy;
    p->strs[p->nstrs].len = len;
    p->str_hash[p->nstrs] = hash;
    /* the reservation may have rehashed: find the empty slot again */
    HYP__HTAB_PROBE(&p->str_ht, hash, i,
                    p->str_hash[hid] == hash && p->strs[hid].len == len &&
                        memcmp(p->strs[hid].s, s, len) == 0);
    if (p->str_ht.slots[i] == 0) {
        p->str_ht.slots[i] = (uint32_t)p->nstrs + 1;
        p->str_ht.count++;
    }
    p->nstrs++;
    return 0;
}

int hyp_profile_string(hyp_profile_t *p, const char *s, size_t len, hyp_id_t *id) {
    uint64_t hash;
    size_t i;
    int rc;

    if (s == NULL && len > 0)
        return HYP_EINVAL;
    if (s == NULL)
        s = "";
    hash = hyp__hash_bytes(s, len);
    if (p->str_ht.cap > 0) {
        HYP__HTAB_PROBE(&p->str_ht, hash, i,
                        p->str_hash[hid] == hash && p->strs[hid].len == len &&
                            memcmp(p->strs[hid].s, s, len) == 0);
        if (p->str_ht.slots[i] != 0) {
            *id = p->str_ht.slots[i] - 1;
            return 0;
        }
    }
    rc = hyp__string_add(p, s, len, hash);
    if (rc < 0)
        return rc;
    *id = (hyp_id_t)(p->nstrs - 1);
    return 0;
}

size_t hyp_profile_string_count(const hyp_profile_t *p) {
    return p->nstrs;
}

const char *hyp_profile_string_at(const hyp_profile_t *p, hyp_id_t id, size_t *len) {
    if (id >= p->nstrs)
        return NULL;
    if (len != NULL)
        *len = p->strs[id].len;
    return p->strs[id].s;
}

/* ---------------------------------------------------------------- functions */

static int hyp__func_valid(const hyp_profile_t *p, const hyp_func_t *f) {
    return f->name < p->nstrs && f->file < p->nstrs && f->kind <= HYP_FUNC_SPECIAL;
}

static int hyp__func_add(hyp_profile_t *p, const hyp_func_t *f, uint64_t hash) {
    size_t i;

    if (p->nfuncs >= HYP__MAX_ID)
        return HYP_ENOMEM;
    if (hyp__grow((void **)&p->funcs, &p->cfuncs, p->nfuncs + 1, sizeof(*p->funcs)) < 0)
        return HYP_ENOMEM;
    if (hyp__htab_reserve(&p->func_ht, hyp__func_hash_of, p) < 0)
        return HYP_ENOMEM;
    p->funcs[p->nfuncs] = *f;
    HYP__HTAB_PROBE(&p->func_ht, hash, i,
                    p->funcs[hid].name == f->name && p->funcs[hid].file == f->file &&
                        p->funcs[hid].lineno == f->lineno && p->funcs[hid].kind == f->kind);
    if (p->func_ht.slots[i] == 0) {
        p->func_ht.slots[i] = (uint32_t)p->nfuncs + 1;
        p->func_ht.count++;
    }
    p->nfuncs++;
    return 0;
}

int hyp_profile_func(hyp_profile_t *p, const hyp_func_t *f, hyp_id_t *id) {
    uint64_t hash;
    size_t i;
    int rc;

    if (f == NULL)
        return HYP_EINVAL;
    if (!hyp__func_valid(p, f))
        return HYP_ERANGE;
    hash = hyp__func_hash(f);
    if (p->func_ht.cap > 0) {
        HYP__HTAB_PROBE(&p->func_ht, hash, i,
                        p->funcs[hid].name == f->name && p->funcs[hid].file == f->file &&
                            p->funcs[hid].lineno == f->lineno && p->funcs[hid].kind == f->kind);
        if (p->func_ht.slots[i] != 0) {
            *id = p->func_ht.slots[i] - 1;
            return 0;
        }
    }
    rc = hyp__func_add(p, f, hash);
    if (rc < 0)
        return rc;
    *id = (hyp_id_t)(p->nfuncs - 1);
    return 0;
}

size_t hyp_profile_func_count(const hyp_profile_t *p) {
    return p->nfuncs;
}

const hyp_func_t *hyp_profile_func_at(const hyp_profile_t *p, hyp_id_t id) {
    return id < p->nfuncs ? &p->funcs[id] : NULL;
}

/* ---------------------------------------------------------------- nodes */

static int hyp__node_add(hyp_profile_t *p, hyp_id_t parent, hyp_id_t func, uint32_t line,
                         uint64_t hash) {
    size_t i;

    if (p->nnodes >= HYP__MAX_ID)
        return HYP_ENOMEM;
    if (hyp__grow((void **)&p->nodes, &p->cnodes, p->nnodes + 1, sizeof(*p->nodes)) < 0)
        return HYP_ENOMEM;
    if (hyp__htab_reserve(&p->node_ht, hyp__node_hash_of, p) < 0)
        return HYP_ENOMEM;
    p->nodes[p->nnodes].parent = parent;
    p->nodes[p->nnodes].func = func;
    p->nodes[p->nnodes].line = line;
    HYP__HTAB_PROBE(&p->node_ht, hash, i,
                    p->nodes[hid].parent == parent && p->nodes[hid].func == func &&
                        p->nodes[hid].line == line);
    if (p->node_ht.slots[i] == 0) {
        p->node_ht.slots[i] = (uint32_t)p->nnodes + 1;
        p->node_ht.count++;
    }
    p->nnodes++;
    return 0;
}

static inline hyp_id_t hyp__node_find(const hyp_profile_t *p, hyp_id_t parent, hyp_id_t func,
                                      uint32_t line, uint64_t hash) {
    size_t i;

    if (p->node_ht.cap == 0)
        return HYP_NO_ID;
    HYP__HTAB_PROBE(&p->node_ht, hash, i,
                    p->nodes[hid].parent == parent && p->nodes[hid].func == func &&
                        p->nodes[hid].line == line);
    return p->node_ht.slots[i] ? p->node_ht.slots[i] - 1 : HYP_NO_ID;
}

/* Called when the node cap is reached: the calls below parent fold into one
 * "[truncated]" node under it. A truncated node's own callees fold into the
 * truncated node itself, so at most one such node exists per ordinary node
 * and the tree stays bounded by twice the cap. */
static int hyp__node_fold(hyp_profile_t *p, hyp_id_t parent, hyp_id_t *id) {
    static const char name[] = "[truncated]";
    hyp_id_t found;
    uint64_t hash;
    int rc;

    if (p->trunc_func == HYP_NO_ID) {
        hyp_func_t f = {0, 0, 0, HYP_FUNC_SPECIAL};
        hyp_id_t fid;

        rc = hyp_profile_string(p, name, sizeof(name) - 1, &f.name);
        if (rc == 0)
            rc = hyp_profile_string(p, "", 0, &f.file);
        if (rc == 0)
            rc = hyp_profile_func(p, &f, &fid);
        if (rc < 0)
            return rc;
        p->trunc_func = fid;
    }
    p->truncated++;
    if (p->nodes[parent].func == p->trunc_func) {
        *id = parent;
        return 0;
    }
    hash = hyp__node_hash(parent, p->trunc_func, 0);
    found = hyp__node_find(p, parent, p->trunc_func, 0, hash);
    if (found != HYP_NO_ID) {
        *id = found;
        return 0;
    }
    rc = hyp__node_add(p, parent, p->trunc_func, 0, hash);
    if (rc < 0) {
        p->truncated--;
        return rc;
    }
    *id = (hyp_id_t)(p->nnodes - 1);
    return 0;
}

int hyp_profile_node(hyp_profile_t *p, hyp_id_t parent, hyp_id_t func, uint32_t line,
                     hyp_id_t *id) {
    hyp_id_t found;
    uint64_t hash;
    int rc;

    if (parent >= p->nnodes || func >= p->nfuncs)
        return HYP_ERANGE;
    hash = hyp__node_hash(parent, func, line);
    found = hyp__node_find(p, parent, func, line, hash);
    if (found != HYP_NO_ID) {
        *id = found;
        return 0;
    }
    if (p->node_limit != 0 && p->nnodes >= p->node_limit)
        return hyp__node_fold(p, parent, id);
    rc = hyp__node_add(p, parent, func, line, hash);
    if (rc < 0)
        return rc;
    *id = (hyp_id_t)(p->nnodes - 1);
    return 0;
}

size_t hyp_profile_node_count(const hyp_profile_t *p) {
    return p->nnodes;
}

const hyp_node_t *hyp_profile_node_at(const hyp_profile_t *p, hyp_id_t id) {
    return id < p->nnodes ? &p->nodes[id] : NULL;
}

const hyp_node_t *hyp_profile_nodes(const hyp_profile_t *p) {
    return p->nodes;
}

/* ---------------------------------------------------------------- threads */

int hyp_profile_thread(hyp_profile_t *p, const hyp_thread_t *t, hyp_id_t *id) {
    if (t == NULL)
        return HYP_EINVAL;
    if (t->name >= p->nstrs)
        return HYP_ERANGE;
    if (p->nthreads >= HYP__MAX_ID)
        return HYP_ENOMEM;
    if (hyp__grow((void **)&p->threads, &p->cthreads, p->nthreads + 1, sizeof(*p->threads)) < 0)
        return HYP_ENOMEM;
    p->threads[p->nthreads] = *t;
    if (id != NULL)
        *id = (hyp_id_t)p->nthreads;
    p->nthreads++;
    return 0;
}

size_t hyp_profile_thread_count(const hyp_profile_t *p) {
    return p->nthreads;
}

const hyp_thread_t *hyp_profile_thread_at(const hyp_profile_t *p, hyp_id_t id) {
    return id < p->nthreads ? &p->threads[id] : NULL;
}

/* ---------------------------------------------------------------- labels */

static int hyp__labels_eq(const hyp_profile_t *p, hyp_id_t id, const hyp_label_t *l, size_t n) {
    size_t off = p->lab_off[id];

    return p->lab_off[id + 1] - off == n && memcmp(p->labs + off, l, n * sizeof(*l)) == 0;
}

int hyp_profile_labels(hyp_profile_t *p, const hyp_label_t *labels, size_t n, hyp_id_t *id) {
    hyp_label_t set[HYP_MAX_LABELS];
    uint64_t hash;
    size_t i, j;

    if (id == NULL || (n > 0 && labels == NULL) || n > HYP_MAX_LABELS)
        return HYP_EINVAL;
    if (n == 0) {
        *id = HYP_NO_LABELS;
        return 0;
    }
    /* sorted by key (insertion sort: a set is a handful of labels) */
    for (i = 0; i < n; i++) {
        hyp_label_t l = labels[i];

        if (l.key >= p->nstrs || l.value >= p->nstrs)
            return HYP_ERANGE;
        for (j = i; j > 0 && set[j - 1].key > l.key; j--)
            set[j] = set[j - 1];
        if (j > 0 && set[j - 1].key == l.key)
            return HYP_EINVAL;
        set[j] = l;
    }
    hash = hyp__labels_hash(set, n);
    if (p->lab_ht.cap > 0) {
        HYP__HTAB_PROBE(&p->lab_ht, hash, i, hyp__labels_eq(p, hid, set, n));
        if (p->lab_ht.slots[i] != 0) {
            *id = p->lab_ht.slots[i] - 1;
            return 0;
        }
    }
    if (p->nlabsets >= HYP__MAX_ID ||
        hyp__grow((void **)&p->labs, &p->clabs, p->nlabs + n, sizeof(*p->labs)) < 0 ||
        hyp__grow((void **)&p->lab_off, &p->clabsets, p->nlabsets + 2, sizeof(*p->lab_off)) < 0 ||
        hyp__htab_reserve(&p->lab_ht, hyp__labels_hash_of, p) < 0)
        return HYP_ENOMEM;
    memcpy(p->labs + p->nlabs, set, n * sizeof(*set));
    p->nlabs += n;
    p->lab_off[p->nlabsets + 1] = p->nlabs;
    HYP__HTAB_PROBE(&p->lab_ht, hash, i, hyp__labels_eq(p, hid, set, n));
    p->lab_ht.slots[i] = (uint32_t)p->nlabsets + 1;
    p->lab_ht.count++;
    *id = (hyp_id_t)p->nlabsets++;
    return 0;
}

size_t hyp_profile_labels_count(const hyp_profile_t *p) {
    return p->nlabsets;
}

const hyp_label_t *hyp_profile_labels_at(const hyp_profile_t *p, hyp_id_t id, size_t *n) {
    if (id >= p->nlabsets)
        return NULL;
    if (n != NULL)
        *n = p->lab_off[id + 1] - p->lab_off[id];
    return p->labs + p->lab_off[id];
}

/* ---------------------------------------------------------------- metric rows */

size_t hyp_profile_metric_count(const hyp_profile_t *p) {
    return p->nmetrics;
}

const hyp_metric_t *hyp_profile_metric_at(const hyp_profile_t *p, size_t i) {
    return i < p->nmetrics ? &p->metrics[i] : NULL;
}

#define HYP__ROW_EQ(p, hid, t, n, l)                                                           \
    ((p)->rowkeys[hid].thread == (t) && (p)->rowkeys[hid].node == (n) &&                       \
     (p)->rowkeys[hid].labels == (l))

int64_t hyp__profile_find_row(const hyp_profile_t *p, hyp_id_t thread, hyp_id_t node,
                              hyp_id_t labels) {
    size_t i;

    if (p->row_ht.cap == 0)
        return -1;
    HYP__HTAB_PROBE(&p->row_ht, hyp__row_hash(thread, node, labels), i,
                    HYP__ROW_EQ(p, hid, thread, node, labels));
    return p->row_ht.slots[i] ? (int64_t)p->row_ht.slots[i] - 1 : -1;
}

int64_t hyp__profile_row_index(hyp_profile_t *p, hyp_id_t thread, hyp_id_t node,
                               hyp_id_t labels) {
    size_t width = p->nmetrics ? p->nmetrics : 1;
    uint64_t hash = hyp__row_hash(thread, node, labels);
    size_t i, cap;

    if (p->row_ht.cap > 0) {
        HYP__HTAB_PROBE(&p->row_ht, hash, i, HYP__ROW_EQ(p, hid, thread, node, labels));
        if (p->row_ht.slots[i] != 0)
            return (int64_t)p->row_ht.slots[i] - 1;
    }
    if (p->nrows >= HYP__MAX_ID)
        return HYP_ENOMEM;
    if (p->nrows + 1 > p->crows) {
        /* keys, values and sample values grow together */
        cap = p->crows;
        if (hyp__grow((void **)&p->rowkeys, &cap, p->nrows + 1, sizeof(*p->rowkeys)) < 0)
            return HYP_ENOMEM;
        {
            size_t vcap = p->crows;
            uint64_t *v;

            if (cap > SIZE_MAX / sizeof(uint64_t) / width)
                return HYP_ENOMEM;
            v = hyp__realloc(p->vals, cap * width * sizeof(uint64_t));
            if (v == NULL)
                return HYP_ENOMEM;
            p->vals = v;
            if (p->svals != NULL) {
                v = hyp__realloc(p->svals, cap * width * sizeof(uint64_t));
                if (v == NULL)
                    return HYP_ENOMEM;
                memset(v + vcap * width, 0, (cap - vcap) * width * sizeof(uint64_t));
                p->svals = v;
            }
        }
        p->crows = cap;
    }
    if (hyp__htab_reserve(&p->row_ht, hyp__row_hash_of, p) < 0)
        return HYP_ENOMEM;
    p->rowkeys[p->nrows].thread = thread;
    p->rowkeys[p->nrows].node = node;
    p->rowkeys[p->nrows].labels = labels;
    memset(p->vals + p->nrows * width, 0, width * sizeof(uint64_t));
    HYP__HTAB_PROBE(&p->row_ht, hash, i, HYP__ROW_EQ(p, hid, thread, node, labels));
    p->row_ht.slots[i] = (uint32_t)p->nrows + 1;
    p->row_ht.count++;
    return (int64_t)p->nrows++;
}

int hyp_profile_add(hyp_profile_t *p, hyp_id_t thread, hyp_id_t node, const uint64_t *values) {
    return hyp_profile_add_labeled(p, thread, node, HYP_NO_LABELS, values);
}

int hyp_profile_add_labeled(hyp_profile_t *p, hyp_id_t thread, hyp_id_t node, hyp_id_t labels,
                            const uint64_t *values) {
    int64_t row;
    uint64_t *v;
    size_t m;

    if (thread >= p->nthreads || node >= p->nnodes || labels >= p->nlabsets)
        return HYP_ERANGE;
    if (values == NULL && p->nmetrics > 0)
        return HYP_EINVAL;
    row = hyp__profile_row_index(p, thread, node, labels);
    if (row < 0)
        return (int)row;
    v = p->vals + (size_t)row * p->nmetrics;
    for (m = 0; m < p->nmetrics; m++)
        v[m] += values[m];
    return 0;
}

const uint64_t *hyp_profile_row(const hyp_profile_t *p, hyp_id_t thread, hyp_id_t node) {
    int64_t row = hyp__profile_find_row(p, thread, node, HYP_NO_LABELS);

    return row < 0 ? NULL : p->vals + (size_t)row * p->nmetrics;
}

size_t hyp_profile_row_count(const hyp_profile_t *p) {
    return p->nrows;
}

const uint64_t *hyp_profile_row_at(const hyp_profile_t *p, size_t i, hyp_id_t *thread,
                                   hyp_id_t *node, hyp_id_t *labels) {
    if (i >= p->nrows)
        return NULL;
    if (thread != NULL)
        *thread = p->rowkeys[i].thread;
    if (node != NULL)
        *node = p->rowkeys[i].node;
    if (labels != NULL)
        *labels = p->rowkeys[i].labels;
    return p->vals + i * p->nmetrics;
}

int hyp_profile_node_values(const hyp_profile_t *p, hyp_id_t thread, uint64_t *out) {
    return hyp_profile_node_values_where(p, thread, NULL, out);
}

int hyp_profile_node_values_where(const hyp_profile_t *p, hyp_id_t thread,
                                  const unsigned char *keep, uint64_t *out) {
    if (thread != HYP_NO_ID && thread >= p->nthreads)
        return HYP_ERANGE;
    hyp__node_values_range(p, thread, keep, 0, p->nmetrics, out);
    return 0;
}

void hyp__node_values_range(const hyp_profile_t *p, hyp_id_t thread, const unsigned char *keep,
                            size_t first, size_t count, uint64_t *out) {
    size_t r, m, w = p->nmetrics;

    if (count == 0)
        return;
    memset(out, 0, p->nnodes * count * sizeof(uint64_t));
    for (r = 0; r < p->nrows; r++) {
        const hyp__rowkey_t *k = &p->rowkeys[r];
        const uint64_t *v = p->vals + r * w + first;
        uint64_t *o;

        if ((thread != HYP_NO_ID && k->thread != thread) || (keep != NULL && !keep[k->labels]))
            continue;
        o = out + (size_t)k->node * count;
        for (m = 0; m < count; m++)
            o[m] += v[m];
    }
}

/* ---------------------------------------------------------------- samples */

int hyp_profile_sample_kind(hyp_profile_t *p, const hyp_sample_kind_t *k, uint32_t *kind) {
    hyp_sample_kind_t *dst;

    if (k == NULL || k->name == NULL || k->name[0] == '\0' || k->unit == NULL)
        return HYP_EINVAL;
    if (k->count_metric >= p->nmetrics || k->weight_metric >= p->nmetrics ||
        k->count_metric == k->weight_metric ||
        p->metrics[k->count_metric].kind != HYP_METRIC_OWN ||
        p->metrics[k->weight_metric].kind != HYP_METRIC_OWN)
        return HYP_EINVAL;
    if (hyp__grow((void **)&p->kinds, &p->ckinds, p->nkinds + 1, sizeof(*p->kinds)) < 0)
        return HYP_ENOMEM;
    dst = &p->kinds[p->nkinds];
    dst->name = hyp__strdup(k->name);
    dst->unit = hyp__strdup(k->unit);
    if (dst->name == NULL || dst->unit == NULL) {
        hyp__free((void *)dst->name);
        hyp__free((void *)dst->unit);
        return HYP_ENOMEM;
    }
    dst->count_metric = k->count_metric;
    dst->weight_metric = k->weight_metric;
    if (kind != NULL)
        *kind = (uint32_t)p->nkinds;
    p->nkinds++;
    return 0;
}

size_t hyp_profile_sample_kind_count(const hyp_profile_t *p) {
    return p->nkinds;
}

const hyp_sample_kind_t *hyp_profile_sample_kind_at(const hyp_profile_t *p, size_t i) {
    return i < p->nkinds ? &p->kinds[i] : NULL;
}

int hyp_profile_add_sample(hyp_profile_t *p, const hyp_sample_t *s) {
    const hyp_sample_kind_t *k;
    int64_t row;
    uint64_t *v;

    if (s == NULL)
        return HYP_EINVAL;
    if (s->thread >= p->nthreads || s->node >= p->nnodes || s->kind >= p->nkinds ||
        s->labels >= p->nlabsets)
        return HYP_ERANGE;
    if (hyp__grow((void **)&p->pending, &p->cpending, p->npending + 1, sizeof(*p->pending)) < 0)
        return HYP_ENOMEM;
    row = hyp__profile_row_index(p, s->thread, s->node, s->labels);
    if (row < 0)
        return (int)row;
    k = &p->kinds[s->kind];
    v = p->vals + (size_t)row * p->nmetrics;
    v[k->count_metric] += 1;
    v[k->weight_metric] += s->weight;
    p->pending[p->npending++] = *s;
    p->sample_total++;
    return 0;
}

const hyp_sample_t *hyp_profile_samples(const hyp_profile_t *p, size_t *n) {
    *n = p->npending;
    return p->pending;
}

uint64_t hyp_profile_sample_total(const hyp_profile_t *p) {
    return p->sample_total;
}

void hyp__profile_set_sample_total(hyp_profile_t *p, uint64_t n) {
    p->sample_total = n;
}

int hyp__profile_samples_flushed(hyp_profile_t *p) {
    size_t i, w = p->nmetrics;

    if (p->npending == 0)
        return 0;
    if (p->svals == NULL) {
        p->svals = hyp__calloc(p->crows * w, sizeof(uint64_t));
        if (p->svals == NULL)
            return HYP_ENOMEM;
    }
    for (i = 0; i < p->npending; i++) {
        const hyp_sample_t *s = &p->pending[i];
        const hyp_sample_kind_t *k = &p->kinds[s->kind];
        int64_t row = hyp__profile_find_row(p, s->thread, s->node, s->labels);
        uint64_t *v;

        if (row < 0)
            continue; /* cannot happen: adding the sample made the row */
        v = p->svals + (size_t)row * w;
        v[k->count_metric] += 1;
        v[k->weight_metric] += s->weight;
    }
    p->npending = 0;
    return 0;
}

/* ---------------------------------------------------------------- dropped */

static int hyp__dropped_slot(hyp_profile_t *p, const char *reason, size_t len,
                             hyp__dropped_t **out) {
    size_t i;
    char *copy;

    for (i = 0; i < p->ndropped; i++) {
        if (strlen(p->dropped[i].reason) == len && memcmp(p->dropped[i].reason, reason, len) == 0) {
            *out = &p->dropped[i];
            return 0;
        }
    }
    if (hyp__grow((void **)&p->dropped, &p->cdropped, p->ndropped + 1, sizeof(*p->dropped)) < 0)
        return HYP_ENOMEM;
    copy = hyp__strndup(reason, len);
    if (copy == NULL)
        return HYP_ENOMEM;
    p->dropped[p->ndropped].reason = copy;
    p->dropped[p->ndropped].n = 0;
    p->dropped[p->ndropped].flushed = 0;
    *out = &p->dropped[p->ndropped++];
    return 0;
}

void hyp_profile_add_dropped(hyp_profile_t *p, const char *reason, uint64_t n) {
    hyp__dropped_t *d;

    if (n == 0)
        return;
    if (reason == NULL || reason[0] == '\0')
        reason = "unknown";
    /* Out of memory for a new reason: count it under the first reason if any,
     * so the total stays right. */
    if (hyp__dropped_slot(p, reason, strlen(reason), &d) < 0) {
        if (p->ndropped == 0)
            return;
        d = &p->dropped[0];
    }
    d->n += n;
}

size_t hyp_profile_dropped_count(const hyp_profile_t *p) {
    return p->ndropped;
}

const char *hyp_profile_dropped_at(const hyp_profile_t *p, size_t i, uint64_t *n) {
    if (i >= p->ndropped)
        return NULL;
    if (n != NULL)
        *n = p->dropped[i].n;
    return p->dropped[i].reason;
}

int hyp__profile_set_dropped(hyp_profile_t *p, const char *reason, size_t len, uint64_t n) {
    hyp__dropped_t *d;
    int rc = hyp__dropped_slot(p, reason, len, &d);

    if (rc < 0)
        return rc;
    d->n = n;
    d->flushed = n;
    return 0;
}
