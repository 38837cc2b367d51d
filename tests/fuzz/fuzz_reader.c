/* libFuzzer harness for the trace reader (tests/fuzz/run.sh builds and runs
 * it). Any input must be read without a crash, a leak or unbounded memory;
 * whatever the reader accepts must aggregate, and must write back into a
 * trace that reads again with the same tables. */
#include "hyprof.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hyp_read_options_t opts = {sizeof(opts), 1 << 20, 1 << 16, 1};
    hyp_reader_t *r, *r2;
    hyp_profile_t *p, *q;
    hyp_writer_t *w;
    hyp_flat_t *f;
    const void *out;
    size_t len, n, i;
    int rc;

    if (hyp_reader_open_mem(&r, data, size, &opts) < 0)
        return 0;
    while ((rc = hyp_reader_next(r)) > 0)
        ;
    check(rc == 0 || hyp_reader_status(r)->error == rc);
    check(hyp_reader_status(r)->message[0] != '\0' || rc == 0);
    hyp_reader_samples(r, &n);
    p = hyp_reader_profile(r);
    if (p == NULL || (rc != 0 && rc != HYP_ETRUNCATED)) {
        hyp_reader_close(r);
        return 0;
    }
    /* the aggregations work on anything the reader accepted */
    if (hyp_flat_compute(p, HYP_NO_ID, &f) == 0)
        hyp_flat_free(f);
    if (hyp_profile_thread_count(p) > 0 && hyp_flat_compute(p, 0, &f) == 0)
        hyp_flat_free(f);
    /* and it writes back into a trace that reads again, table for table */
    check(hyp_writer_open_mem(&w) == 0);
    hyp_writer_begin(w, p);
    hyp_writer_finish(w, p);
    out = hyp_writer_data(w, &len);
    opts.max_record_bytes = 0;
    opts.max_table_entries = 0;
    opts.keep_samples = 0;
    check(hyp_reader_open_mem(&r2, out, len, &opts) == 0);
    while ((rc = hyp_reader_next(r2)) > 0)
        ;
    check(rc == 0);
    q = hyp_reader_profile(r2);
    check(q != NULL);
    check(hyp_profile_string_count(q) == hyp_profile_string_count(p));
    check(hyp_profile_func_count(q) == hyp_profile_func_count(p));
    check(hyp_profile_node_count(q) == hyp_profile_node_count(p));
    check(hyp_profile_thread_count(q) == hyp_profile_thread_count(p));
    check(hyp_profile_metric_count(q) == hyp_profile_metric_count(p));
    for (i = 0; i < hyp_profile_node_count(p); i++)
        check(memcmp(hyp_profile_node_at(p, (hyp_id_t)i), hyp_profile_node_at(q, (hyp_id_t)i),
                     sizeof(hyp_node_t)) == 0);
    hyp_reader_close(r2);
    check(hyp_writer_close(w) == 0);
    hyp_reader_close(r);
    return 0;
}
