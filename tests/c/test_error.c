/* Suite for core/error.c and core/alloc.c. */
#include "harness.h"

#include "hyprof.h"

#include <stdlib.h>
#include <string.h>

static void test_every_code_has_a_sentence(void) {
    int code;

    for (code = HYP_ESTATE; code <= HYP_OK; code++) {
        CU_ASSERT_PTR_NOT_NULL(hyp_strerror(code));
        CU_ASSERT_STRING_NOT_EQUAL(hyp_strerror(code), "unknown error");
        CU_ASSERT_NSTRING_EQUAL(hyp_err_name(code), "HYP_", 4);
    }
    CU_ASSERT_STRING_EQUAL(hyp_strerror(-1000), "unknown error");
    CU_ASSERT_STRING_EQUAL(hyp_strerror(HYP_EMAGIC),
                           "not a hyprof trace: the file does not start with the hyprof magic");
}

static void test_replace_allocator_rejects_null(void) {
    CU_ASSERT_EQUAL(hyp_replace_allocator(NULL, realloc, calloc, free), HYP_EINVAL);
    CU_ASSERT_EQUAL(hyp_replace_allocator(malloc, realloc, calloc, free), 0);
}

static const hyp_test_case_t cases[] = {
    {"every code has a sentence", test_every_code_has_a_sentence},
    {"replace_allocator rejects NULL", test_replace_allocator_rejects_null},
    {NULL, NULL},
};

const hyp_test_suite_t hyp_suite_error = {"error", cases, NULL, NULL};
