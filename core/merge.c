/* Merging one profile into another of the same shape (include/hyprof/
 * profile.h, hyp_profile_merge()): the sampler's windows of one process,
 * added up into the window a consumer asked for.
 *
 * Every table of src is mapped into dst through dst's own interning, in id
 * order, so a node's parent is always mapped before it; a thread is the same
 * thread when its kernel id and Python ident are; label sets are interned
 * by their strings. Rows are added value by value. Linear in the size of src, plus the threads of both. */
#include "profile_int.h"

#include <string.h>

static int hyp__same_shape(const hyp_profile_t *dst, const hyp_profile_t *src) {
    size_t i;

    if (dst->mode != src->mode || dst->nmetrics != src->nmetrics || dst->nkinds != src->nkinds)
        return 0;
    for (i = 0; i < src->nmetrics; i++)
        if (dst->metrics[i].kind != src->metrics[i].kind ||
            strcmp(dst->metrics[i].name, src->metrics[i].name) != 0 ||
            strcmp(dst->metrics[i].unit, src->metrics[i].unit) != 0)
            return 0;
    for (i = 0; i < src->nkinds; i++)
        if (dst->kinds[i].count_metric != src->kinds[i].count_metric ||
            dst->kinds[i].weight_metric != src->kinds[i].weight_metric ||
            strcmp(dst->kinds[i].name, src->kinds[i].name) != 0)
            return 0;
    return 1;
}

static int hyp__map_thread(hyp_profile_t *dst, const hyp_thread_t *t, const hyp_id_t *smap,
                           hyp_id_t *out) {
    hyp_thread_t copy = *t;
    size_t j;

    for (j = 0; j < dst->nthreads; j++) {
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

int hyp_profile_merge(hyp_profile_t *dst, const hyp_profile_t *src) {
    return hyp_profile_merge_where(dst, src, NULL);
}

int hyp_profile_merge_where(hyp_profile_t *dst, const hyp_profile_t *src,
                            const unsigned char *keep) {
    hyp_id_t *smap = NULL, *fmap = NULL, *nmap = NULL, *tmap = NULL, *lmap = NULL;
    size_t i;
    int rc = HYP_ENOMEM;

    if (dst == NULL || src == NULL || dst == src)
        return HYP_EINVAL;
    if (!hyp__same_shape(dst, src))
        return HYP_EINVAL;
    smap = hyp__calloc(src->nstrs + 1, sizeof(*smap));
    fmap = hyp__calloc(src->nfuncs + 1, sizeof(*fmap));
    nmap = hyp__calloc(src->nnodes + 1, sizeof(*nmap));
    tmap = hyp__calloc(src->nthreads + 1, sizeof(*tmap));
    lmap = hyp__calloc(src->nlabsets, sizeof(*lmap));
    if (smap == NULL || fmap == NULL || nmap == NULL || tmap == NULL || lmap == NULL)
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
        if ((rc = hyp__map_thread(dst, &src->threads[i], smap, &tmap[i])) < 0)
            goto out;
    if ((rc = hyp__map_labels(dst, src, smap, lmap)) < 0)
        goto out;
    for (i = 0; i < src->nrows; i++) {
        const hyp__rowkey_t *k = &src->rowkeys[i];

        if (keep != NULL && !keep[k->labels])
            continue;
        if ((rc = hyp_profile_add_labeled(dst, tmap[k->thread], nmap[k->node], lmap[k->labels],
                                          src->vals + i * src->nmetrics)) < 0)
            goto out;
    }
    if (keep == NULL) { /* totals of the whole run only for the whole of it */
        for (i = 0; i < src->ndropped; i++)
            hyp_profile_add_dropped(dst, src->dropped[i].reason, src->dropped[i].n);
        dst->truncated += src->truncated;
        dst->sample_total += src->sample_total;
    }
    rc = 0;
out:
    hyp__free(smap);
    hyp__free(fmap);
    hyp__free(nmap);
    hyp__free(tmap);
    hyp__free(lmap);
    return rc;
}
