/* Merging one profile into another, and copying one (include/hyprof/
 * profile.h, hyp_profile_merge_ex() and hyp_profile_copy()): the sampler's
 * windows of one process added up into the window a consumer asked for; the
 * allocation collector's profile added into the CPU sampler's, whose columns
 * include its own; a profile a Trace takes over while its producer keeps
 * the original.
 *
 * Every table of src is mapped into dst through dst's own interning, in id
 * order, so a node's parent is always mapped before it; a thread is the same
 * thread when its kernel id and Python ident are; label sets are interned
 * by their strings. Metric columns and sample kinds are mapped by name. Rows
 * are added value by value. Linear in the size of src, plus the threads of
 * both. */
#include "profile_int.h"

#include <string.h>

/* Internal flag of hyp__merge(): a copy into an empty profile keeps every
 * thread (two threads of src with the same ids stay two), so that the
 * copy's ids are src's. */
#define HYP__MERGE_COPY 0x80000000u

/* Finds src's metric columns and sample kinds in dst: cmap[i] is the dst
 * column of src column i, kmap[i] the dst kind of src kind i. 0, or
 * HYP_EINVAL when one is missing or disagrees. */
static int hyp__map_shape(const hyp_profile_t *dst, const hyp_profile_t *src, size_t *cmap,
                          uint32_t *kmap) {
    size_t i, j;

    if (dst->mode != src->mode)
        return HYP_EINVAL;
    for (i = 0; i < src->nmetrics; i++) {
        const hyp_metric_t *m = &src->metrics[i];

        for (j = 0; j < dst->nmetrics && strcmp(dst->metrics[j].name, m->name) != 0; j++)
            ;
        if (j == dst->nmetrics || dst->metrics[j].kind != m->kind ||
            strcmp(dst->metrics[j].unit, m->unit) != 0)
            return HYP_EINVAL;
        cmap[i] = j;
    }
    for (i = 0; i < src->nkinds; i++) {
        const hyp_sample_kind_t *k = &src->kinds[i];

        for (j = 0; j < dst->nkinds && strcmp(dst->kinds[j].name, k->name) != 0; j++)
            ;
        if (j == dst->nkinds || strcmp(dst->kinds[j].unit, k->unit) != 0 ||
            dst->kinds[j].count_metric != cmap[k->count_metric] ||
            dst->kinds[j].weight_metric != cmap[k->weight_metric])
            return HYP_EINVAL;
        kmap[i] = (uint32_t)j;
    }
    return 0;
}

static int hyp__map_thread(hyp_profile_t *dst, const hyp_thread_t *t, const hyp_id_t *smap,
                           unsigned flags, hyp_id_t *out) {
    hyp_thread_t copy = *t;
    size_t j;

    for (j = 0; j < dst->nthreads && !(flags & HYP__MERGE_COPY); j++) {
        if (dst->threads[j].os_tid == t->os_tid && dst->threads[j].ident == t->ident) {
            *out = (hyp_id_t)j;
            return 0;
        }
    }
    copy.name = smap[t->name];
    return hyp_profile_thread(dst, &copy, out);
}

/* Interns src's label sets in dst through the string map. */
static int hyp__map_labels(hyp_profile_t *dst, const hyp_profile_t *src, const hyp_id_t *smap,
                           hyp_id_t *lmap) {
    hyp_label_t set[HYP_MAX_LABELS];
    size_t i, j, n;
    int rc;

    lmap[0] = HYP_NO_LABELS;
    for (i = 1; i < src->nlabsets; i++) {
        const hyp_label_t *l = hyp_profile_labels_at(src, (hyp_id_t)i, &n);

        for (j = 0; j < n; j++) {
            set[j].key = smap[l[j].key];
            set[j].value = smap[l[j].value];
        }
        if ((rc = hyp_profile_labels(dst, set, n, &lmap[i])) < 0)
            return rc;
    }
    return 0;
}

/* The part of src's rows its pending samples account for, nrows * nmetrics
 * values (row-major), or NULL when out of memory. */
static uint64_t *hyp__pending_part(const hyp_profile_t *src) {
    uint64_t *sub = hyp__calloc(src->nrows * src->nmetrics + 1, sizeof(*sub));
    size_t i;

    for (i = 0; sub != NULL && i < src->npending; i++) {
        const hyp_sample_t *s = &src->pending[i];
        const hyp_sample_kind_t *k = &src->kinds[s->kind];
        int64_t row = hyp__profile_find_row(src, s->thread, s->node, s->labels);

        if (row < 0)
            continue; /* cannot happen: adding the sample made the row */
        sub[(size_t)row * src->nmetrics + k->count_metric] += 1;
        sub[(size_t)row * src->nmetrics + k->weight_metric] += s->weight;
    }
    return sub;
}

/* keep: NULL, or the label sets whose rows are added (then flags is 0). */
/* Adds src's run counts in the header (hyp_meta_key_summed()) to dst's. */
static int hyp__merge_counts(hyp_profile_t *dst, const hyp_profile_t *src) {
    size_t i;
    int rc;

    for (i = 0; i < src->nmeta; i++) {
        const hyp_meta_t *m = &src->meta[i].m, *had;
        uint64_t v, sum = 0;

        if (!hyp_meta_key_summed(m->key))
            continue;
        if (m->type == HYP_META_UINT)
            v = m->v.u;
        else if (m->type == HYP_META_INT && m->v.i >= 0)
            v = (uint64_t)m->v.i;
        else
            continue; /* no count: not carried */
        had = hyp_profile_meta_get(dst, m->key);
        if (had != NULL && had->type == HYP_META_UINT)
            sum = had->v.u;
        else if (had != NULL && had->type == HYP_META_INT && had->v.i >= 0)
            sum = (uint64_t)had->v.i;
        sum = sum + v < sum || sum + v > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : sum + v;
        if ((rc = hyp_profile_set_meta_int(dst, m->key, (int64_t)sum)) < 0)
            return rc;
    }
    return 0;
}

static int hyp__merge(hyp_profile_t *dst, const hyp_profile_t *src, const unsigned char *keep,
                      unsigned flags) {
    hyp_id_t *smap = NULL, *fmap = NULL, *nmap = NULL, *tmap = NULL, *lmap = NULL;
    uint64_t *vals = NULL, *sub = NULL;
    size_t *cmap = NULL, i, j;
    uint32_t *kmap = NULL;
    int rc = HYP_ENOMEM;

    if (dst == NULL || src == NULL || dst == src)
        return HYP_EINVAL;
    cmap = hyp__calloc(src->nmetrics + 1, sizeof(*cmap));
    kmap = hyp__calloc(src->nkinds + 1, sizeof(*kmap));
    if (cmap == NULL || kmap == NULL)
        goto out;
    if ((rc = hyp__map_shape(dst, src, cmap, kmap)) < 0)
        goto out;
    rc = HYP_ENOMEM;
    smap = hyp__calloc(src->nstrs + 1, sizeof(*smap));
    fmap = hyp__calloc(src->nfuncs + 1, sizeof(*fmap));
    nmap = hyp__calloc(src->nnodes + 1, sizeof(*nmap));
    tmap = hyp__calloc(src->nthreads + 1, sizeof(*tmap));
    lmap = hyp__calloc(src->nlabsets, sizeof(*lmap));
    vals = hyp__calloc(dst->nmetrics + 1, sizeof(*vals));
    if (smap == NULL || fmap == NULL || nmap == NULL || tmap == NULL || lmap == NULL ||
        vals == NULL)
        goto out;
    if ((flags & HYP_MERGE_SAMPLES) && src->npending > 0 && (sub = hyp__pending_part(src)) == NULL)
        goto out;
    for (i = 0; i < src->nstrs; i++)
        if ((rc = hyp_profile_string(dst, src->strs[i].s, src->strs[i].len, &smap[i])) < 0)
            goto out;
    for (i = 0; i < src->nfuncs; i++) {
        hyp_func_t f = src->funcs[i];

        f.name = smap[f.name];
        f.file = smap[f.file];
        if ((rc = hyp_profile_func(dst, &f, &fmap[i])) < 0)
            goto out;
    }
    nmap[0] = HYP_ROOT_NODE;
    for (i = 1; i < src->nnodes; i++) {
        const hyp_node_t *n = &src->nodes[i];

        if ((rc = hyp_profile_node(dst, nmap[n->parent], fmap[n->func], n->line, &nmap[i])) < 0)
            goto out;
    }
    for (i = 0; i < src->nthreads; i++)
        if ((rc = hyp__map_thread(dst, &src->threads[i], smap, flags, &tmap[i])) < 0)
            goto out;
    if ((rc = hyp__map_labels(dst, src, smap, lmap)) < 0)
        goto out;
    /* The rows less what the carried samples add back; a row left with
     * nothing is not made. */
    for (i = 0; i < src->nrows; i++) {
        const hyp__rowkey_t *k = &src->rowkeys[i];
        const uint64_t *v = src->vals + i * src->nmetrics;
        int any = 0;

        if (keep != NULL && !keep[k->labels])
            continue;
        for (j = 0; j < src->nmetrics; j++) {
            vals[cmap[j]] = v[j] - (sub != NULL ? sub[i * src->nmetrics + j] : 0);
            any |= vals[cmap[j]] != 0;
        }
        if (any && (rc = hyp_profile_add_labeled(dst, tmap[k->thread], nmap[k->node],
                                                 lmap[k->labels], vals)) < 0)
            goto out;
    }
    if (flags & HYP_MERGE_SAMPLES) {
        for (i = 0; i < src->npending; i++) {
            hyp_sample_t s = src->pending[i];

            s.thread = tmap[s.thread];
            s.node = nmap[s.node];
            s.kind = kmap[s.kind];
            s.labels = lmap[s.labels];
            if ((rc = hyp_profile_add_sample(dst, &s)) < 0)
                goto out;
        }
        dst->sample_total -= src->npending; /* counted in src's total, added below */
    }
    if (keep == NULL) { /* totals of the whole run only for the whole of it */
        for (i = 0; i < src->ndropped; i++)
            hyp_profile_add_dropped(dst, src->dropped[i].reason, src->dropped[i].n);
        dst->truncated += src->truncated;
        dst->sample_total += src->sample_total;
        if ((rc = hyp__merge_counts(dst, src)) < 0)
            goto out;
    }
    rc = 0;
out:
    hyp__free(cmap);
    hyp__free(kmap);
    hyp__free(smap);
    hyp__free(fmap);
    hyp__free(nmap);
    hyp__free(tmap);
    hyp__free(lmap);
    hyp__free(vals);
    hyp__free(sub);
    return rc;
}

int hyp_profile_merge_ex(hyp_profile_t *dst, const hyp_profile_t *src, unsigned flags) {
    if (flags & ~(unsigned)HYP_MERGE_SAMPLES)
        return HYP_EINVAL;
    return hyp__merge(dst, src, NULL, flags);
}

int hyp_profile_merge(hyp_profile_t *dst, const hyp_profile_t *src) {
    return hyp__merge(dst, src, NULL, 0);
}

hyp_profile_t *hyp_profile_copy_where(const hyp_profile_t *src, const unsigned char *keep) {
    hyp_profile_t *p = hyp_profile_new_like(src);

    if (p == NULL)
        return NULL;
    /* Interned in an empty profile in id order, every table keeps its ids:
     * no node folds (src's own folds are already nodes), and two threads
     * that look alike stay two, so a part names its threads as src does. */
    p->node_limit = 0;
    if (hyp__merge(p, src, keep, HYP__MERGE_COPY) < 0) {
        hyp_profile_free(p);
        return NULL;
    }
    p->node_limit = src->node_limit;
    return p;
}

hyp_profile_t *hyp_profile_copy(const hyp_profile_t *src) {
    return hyp_profile_copy_where(src, NULL);
}
