/* core/internal.h: internal to the hyprof core; not installed, not API. */
#ifndef HYPROF_CORE_INTERNAL_H
#define HYPROF_CORE_INTERNAL_H

#include "hyprof/common.h"

#include <stddef.h>

/* The allocator wrapper (core/alloc.c). Internal non-static helpers carry the
 * hyp__ prefix. Each returns NULL on failure and never aborts. */
void *hyp__malloc(size_t size);
void *hyp__calloc(size_t count, size_t size);
void *hyp__realloc(void *ptr, size_t size);
void hyp__free(void *ptr);
char *hyp__strdup(const char *s);
char *hyp__strndup(const char *s, size_t n);

/* Grows *ptr (an array of elem-sized items with capacity *cap) so that it
 * holds at least need items; doubles to amortise. Returns 0 or HYP_ENOMEM,
 * leaving the array unchanged on failure. */
int hyp__grow(void **ptr, size_t *cap, size_t need, size_t elem);

#define HYP__UNUSED(x) ((void)(x))
#define HYP__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif /* HYPROF_CORE_INTERNAL_H */
