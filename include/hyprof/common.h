/* hyprof/common.h: export macro, error codes, version and allocator. */
#ifndef HYPROF_COMMON_H
#define HYPROF_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every exported symbol carries HYP_EXTERN; the library is built with
 * -fvisibility=hidden, so anything without it stays internal. */
#if defined(HYP_BUILDING) && defined(__GNUC__) && __GNUC__ >= 4
#define HYP_EXTERN __attribute__((visibility("default")))
#else
#define HYP_EXTERN
#endif

#define HYP_VERSION_MAJOR 0
#define HYP_VERSION_MINOR 1
#define HYP_VERSION_PATCH 0
#define HYP_VERSION_STRING "0.1.0"

/* Error codes. Functions return 0 on success and one of these (always
 * negative) on failure; hyp_strerror() turns a code into its sentence and
 * hyp_err_name() into its name. One list gives the three (as libuv's
 * UV_ERRNO_MAP does), so they cannot disagree. New codes are only ever
 * appended. */
#define HYP_ERRNO_MAP(XX)                                                                       \
    XX(ENOMEM, -1, "out of memory")                                                            \
    XX(EINVAL, -2, "invalid argument")                                                         \
    XX(EIO, -3, "input/output error")                                                          \
    XX(ETRUNCATED, -4, "the trace is truncated: it ends in the middle of a record")            \
    XX(EFORMAT, -5, "malformed trace: not valid msgpack, or a record of the wrong shape")      \
    XX(EMAGIC, -6, "not a hyprof trace: the file does not start with the hyprof magic")        \
    XX(EVERSION, -7, "unsupported trace format version")                                       \
    XX(ERANGE, -8, "a reference in the trace points outside its table")                        \
    XX(ELIMIT, -9, "a record or table exceeds the configured size limit")                      \
    XX(ENOENT, -10, "no such event, file or object")                                           \
    XX(ENOTSUP, -11, "not supported on this machine")                                          \
    XX(EPERM, -12, "permission denied")                                                        \
    XX(EBUSY, -13, "resource busy: a profiler is already active")                              \
    XX(ESTATE, -14, "operation not valid in the current state")

typedef enum {
    HYP_OK = 0,
#define HYP__ERRNO_ENUM(name, value, text) HYP_##name = value,
    HYP_ERRNO_MAP(HYP__ERRNO_ENUM)
#undef HYP__ERRNO_ENUM
} hyp_error_t;

/* Returns a static, human-readable sentence for an error code; never NULL. */
HYP_EXTERN const char *hyp_strerror(int err);

/* Returns the symbolic name of an error code ("HYP_ENOMEM"); never NULL. */
HYP_EXTERN const char *hyp_err_name(int err);

/* All memory the core allocates goes through these four functions, so that
 * tests can count leaks and inject failures. hyp_replace_allocator() must be
 * called before any other hyprof function, or after every object has been
 * freed. Returns HYP_EINVAL if a pointer is NULL. */
typedef void *(*hyp_malloc_func)(size_t size);
typedef void *(*hyp_realloc_func)(void *ptr, size_t size);
typedef void *(*hyp_calloc_func)(size_t count, size_t size);
typedef void (*hyp_free_func)(void *ptr);

HYP_EXTERN int hyp_replace_allocator(hyp_malloc_func malloc_func, hyp_realloc_func realloc_func,
                                     hyp_calloc_func calloc_func, hyp_free_func free_func);

#ifdef __cplusplus
}
#endif
#endif /* HYPROF_COMMON_H */
