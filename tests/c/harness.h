/* tests/c/harness.h: the CUnit harness shared by the core's test suites.
 * Suites are declared here and listed in test_main.c: one per part of the
 * core (merge.c's tests are in the profile suite, timer.c's in perf's,
 * alloc.c's in error's), and one for the extension's plain-C call tree
 * (pyext/det_tree.c). */
#ifndef HYPROF_TESTS_HARNESS_H
#define HYPROF_TESTS_HARNESS_H

#include <CUnit/CUnit.h>

typedef struct {
    const char *name;
    CU_TestFunc fn;
} hyp_test_case_t;

typedef struct {
    const char *name;
    const hyp_test_case_t *cases; /* ends with {NULL, NULL} */
    CU_InitializeFunc init;       /* may be NULL */
    CU_CleanupFunc cleanup;       /* may be NULL */
} hyp_test_suite_t;

/* The exit status automake's test driver reads as "skipped". */
#define HYP_TEST_SKIP 77

extern const hyp_test_suite_t hyp_suite_error;
extern const hyp_test_suite_t hyp_suite_profile;
extern const hyp_test_suite_t hyp_suite_aggregate;
extern const hyp_test_suite_t hyp_suite_callgrind;
extern const hyp_test_suite_t hyp_suite_trace;
extern const hyp_test_suite_t hyp_suite_heap;
extern const hyp_test_suite_t hyp_suite_clock;
extern const hyp_test_suite_t hyp_suite_ring;
extern const hyp_test_suite_t hyp_suite_perf;
extern const hyp_test_suite_t hyp_suite_det_tree;

#endif
