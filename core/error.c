/* Error codes to sentences (hyp_strerror) and names (hyp_err_name). */
#include "internal.h"

#define HYP__ERRORS(X)                                                                         \
    X(HYP_OK, "success")                                                                       \
    X(HYP_ENOMEM, "out of memory")                                                             \
    X(HYP_EINVAL, "invalid argument")                                                          \
    X(HYP_EIO, "input/output error")                                                           \
    X(HYP_ETRUNCATED, "the trace is truncated: it ends in the middle of a record")             \
    X(HYP_EFORMAT, "malformed trace: not valid msgpack, or a record of the wrong shape")       \
    X(HYP_EMAGIC, "not a hyprof trace: the file does not start with the hyprof magic")         \
    X(HYP_EVERSION, "unsupported trace format version")                                        \
    X(HYP_ERANGE, "a reference in the trace points outside its table")                         \
    X(HYP_ELIMIT, "a record or table exceeds the configured size limit")                       \
    X(HYP_ENOENT, "no such event, file or object")                                             \
    X(HYP_ENOTSUP, "not supported on this machine")                                            \
    X(HYP_EPERM, "permission denied")                                                          \
    X(HYP_EBUSY, "resource busy: a profiler is already active")                                \
    X(HYP_ESTATE, "operation not valid in the current state")

const char *hyp_strerror(int err) {
#define HYP__STRERROR_CASE(code, text) \
    case code:                         \
        return text;
    switch (err) {
        HYP__ERRORS(HYP__STRERROR_CASE)
    }
#undef HYP__STRERROR_CASE
    return "unknown error";
}

const char *hyp_err_name(int err) {
#define HYP__NAME_CASE(code, text) \
    case code:                     \
        return #code;
    switch (err) {
        HYP__ERRORS(HYP__NAME_CASE)
    }
#undef HYP__NAME_CASE
    return "HYP_E_UNKNOWN";
}
