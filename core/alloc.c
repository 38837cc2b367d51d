/* The one place the core allocates; see hyp_replace_allocator(). */
#include "hyprof/internal/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct {
    hyp_malloc_func malloc_func;
    hyp_realloc_func realloc_func;
    hyp_calloc_func calloc_func;
    hyp_free_func free_func;
} hyp__allocator = {malloc, realloc, calloc, free};

int hyp_replace_allocator(hyp_malloc_func malloc_func, hyp_realloc_func realloc_func,
                          hyp_calloc_func calloc_func, hyp_free_func free_func) {
    if (malloc_func == NULL || realloc_func == NULL || calloc_func == NULL || free_func == NULL)
        return HYP_EINVAL;
    hyp__allocator.malloc_func = malloc_func;
    hyp__allocator.realloc_func = realloc_func;
    hyp__allocator.calloc_func = calloc_func;
    hyp__allocator.free_func = free_func;
    return 0;
}

void *hyp__malloc(size_t size) {
    return hyp__allocator.malloc_func(size ? size : 1);
}

void *hyp__calloc(size_t count, size_t size) {
    if (count == 0 || size == 0)
        count = size = 1;
    return hyp__allocator.calloc_func(count, size);
}

void *hyp__realloc(void *ptr, size_t size) {
    return hyp__allocator.realloc_func(ptr, size ? size : 1);
}

void hyp__free(void *ptr) {
    /* Like free(3), and unlike some allocators, NULL is accepted. */
    if (ptr != NULL)
        hyp__allocator.free_func(ptr);
}

char *hyp__strndup(const char *s, size_t n) {
    char *copy = hyp__malloc(n + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, s, n);
    copy[n] = '\0';
    return copy;
}

char *hyp__strdup(const char *s) {
    return hyp__strndup(s, strlen(s));
}

int hyp__grow(void **ptr, size_t *cap, size_t need, size_t elem) {
    size_t ncap;
    void *p;

    if (need <= *cap)
        return 0;
    ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return HYP_ENOMEM;
        ncap *= 2;
    }
    if (ncap > SIZE_MAX / elem)
        return HYP_ENOMEM;
    p = hyp__realloc(*ptr, ncap * elem);
    if (p == NULL)
        return HYP_ENOMEM;
    *ptr = p;
    *cap = ncap;
    return 0;
}
