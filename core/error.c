/* Error codes to sentences (hyp_strerror) and names (hyp_err_name), from
 * the one list in include/hyprof/common.h. */
#include "hyprof/internal/util.h"

const char *hyp_strerror(int err) {
#define HYP__STRERROR_CASE(name, value, text) \
    case HYP_##name:                          \
        return text;
    switch (err) {
    case HYP_OK:
        return "success";
        HYP_ERRNO_MAP(HYP__STRERROR_CASE)
    }
#undef HYP__STRERROR_CASE
    return "unknown error";
}

const char *hyp_err_name(int err) {
#define HYP__NAME_CASE(name, value, text) \
    case HYP_##name:                      \
        return "HYP_" #name;
    switch (err) {
    case HYP_OK:
        return "HYP_OK";
        HYP_ERRNO_MAP(HYP__NAME_CASE)
    }
#undef HYP__NAME_CASE
    return "HYP_E_UNKNOWN";
}
