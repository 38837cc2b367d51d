/* Runs every core suite; "-s NAME" runs one. Exit 0 when all pass. */
#include "harness.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

static const hyp_test_suite_t *const suites[] = {
    &hyp_suite_error,
    &hyp_suite_profile,
    &hyp_suite_aggregate,
    &hyp_suite_callgrind,
    &hyp_suite_trace,
    &hyp_suite_heap,
    &hyp_suite_clock,
    &hyp_suite_ring,
    &hyp_suite_perf,
    &hyp_suite_det_tree,
};

int main(int argc, char **argv) {
    const char *only = (argc == 3 && strcmp(argv[1], "-s") == 0) ? argv[2] : NULL;
    unsigned failures;
    size_t i;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return CU_get_error();
    for (i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        const hyp_test_suite_t *s = suites[i];
        const hyp_test_case_t *c;
        CU_pSuite suite;

        if (only != NULL && strcmp(only, s->name) != 0)
            continue;
        suite = CU_add_suite(s->name, s->init, s->cleanup);
        if (suite == NULL)
            goto fail;
        for (c = s->cases; c->name != NULL; c++)
            if (CU_add_test(suite, c->name, c->fn) == NULL)
                goto fail;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failures = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failures == 0 ? 0 : 1;
fail:
    fprintf(stderr, "test_core: cannot register tests: %s\n", CU_get_error_msg());
    CU_cleanup_registry();
    return 2;
}
