/* hyprof/trace.h: the trace file format's writer and streaming reader.
 *
 * A trace is a stream of standard msgpack objects (docs/FORMAT.md): the magic,
 * a header, then records (strings, functions, threads, nodes, metrics,
 * samples), then an end record. The writer can flush a profile in chunks, so
 * a long sampling run keeps bounded memory and a crash loses at most the last
 * chunk; the reader returns everything complete in a truncated file. */
#ifndef HYPROF_TRACE_H
#define HYPROF_TRACE_H

#include "common.h"
#include "profile.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HYP_FORMAT_MAJOR 1
#define HYP_FORMAT_MINOR 2
/* The header's "format" entry. */
#define HYP_FORMAT_NAME "hyprof"

/* ---------------------------------------------------------------- writer */

typedef struct hyp_writer_s hyp_writer_t;

/* Opens a writer on a new file (created or truncated), on a file descriptor
 * the caller keeps owning, or on a growing memory buffer. On success *w is
 * set and 0 returned; on failure *w is untouched and HYP_EIO (errno set) or
 * HYP_ENOMEM returned. */
HYP_EXTERN int hyp_writer_open(hyp_writer_t **w, const char *path);
HYP_EXTERN int hyp_writer_open_fd(hyp_writer_t **w, int fd);
HYP_EXTERN int hyp_writer_open_mem(hyp_writer_t **w);

/* Writes the magic and the header of p (mode, metric columns, sample kinds,
 * metadata). Must be the first call. The sample kinds are fixed from then on
 * (a flush after declaring another fails with HYP_ESTATE); metadata set later
 * is written in the end record. */
HYP_EXTERN int hyp_writer_begin(hyp_writer_t *w, const hyp_profile_t *p);
/* Writes the table entries added to p since the last flush, then p's pending
 * samples, and empties the pending list. Data reaches the file descriptor
 * before it returns. */
HYP_EXTERN int hyp_writer_flush(hyp_writer_t *w, hyp_profile_t *p);
/* Flushes, writes the metric rows that did not come from samples (for
 * instance the deterministic mode's timings), then the end record. */
HYP_EXTERN int hyp_writer_finish(hyp_writer_t *w, hyp_profile_t *p);
/* The bytes written to a memory writer; valid until hyp_writer_close(). */
HYP_EXTERN const void *hyp_writer_data(const hyp_writer_t *w, size_t *len);
/* Closes the writer (and the file it opened). Returns the first error any
 * earlier call met, so one check at the end is enough. */
HYP_EXTERN int hyp_writer_close(hyp_writer_t *w);

/* Writes a whole profile to path: begin, finish, close. A regular file (or
 * a symlink: the link itself) at path is replaced by renaming a file created
 * exclusively beside it, 0600, once the trace is whole; on error path is left
 * as it was. A device or FIFO named by the caller (or by a symlink of the
 * caller's or root's) is written to. */
HYP_EXTERN int hyp_trace_save(const hyp_profile_t *p, const char *path);

/* Copies the trace file src to dst byte for byte, by hyp_trace_save()'s
 * rules: a regular file (or a symlink) at dst is replaced by renaming a file
 * created exclusively beside it, never written through; a copy cut short
 * leaves dst as it was. */
HYP_EXTERN int hyp_trace_copy(const char *src, const char *dst);

/* Writes a whole profile to a new memory writer without changing it, as
 * hyp_trace_save() does to a file (pending samples as samples, the rest as
 * metric rows). Returns 0 and sets *out (closed by the caller), or a
 * negative error. */
HYP_EXTERN int hyp_trace_save_mem(const hyp_profile_t *p, hyp_writer_t **out);

/* ---------------------------------------------------------------- reader */

typedef struct {
    size_t size;              /* sizeof(hyp_read_options_t), set by the caller */
    size_t max_record_bytes;  /* largest record accepted (0: 64 MiB) */
    size_t max_table_entries; /* largest table accepted (0: 2^26 entries) */
    int keep_samples;         /* also keep every sample, not only the aggregates */
} hyp_read_options_t;

/* What the reader found beyond the profile. */
typedef struct {
    int truncated;            /* the stream ended inside a record, or before the end record */
    int error;                /* 0, or the first error (reading stopped there) */
    uint64_t offset;          /* byte offset of the record that failed or was cut */
    uint64_t record;          /* index of that record (0 = magic, 1 = header) */
    uint64_t records;         /* complete records read */
    uint64_t skipped;         /* records of unknown type skipped */
    char message[256];        /* a sentence naming the problem and where it happened */
} hyp_read_status_t;

typedef struct hyp_reader_s hyp_reader_t;

/* Streaming reader over a file, a file descriptor or a memory buffer (not
 * copied; it must outlive the reader). opts may be NULL. */
HYP_EXTERN int hyp_reader_open(hyp_reader_t **r, const char *path, const hyp_read_options_t *opts);
HYP_EXTERN int hyp_reader_open_fd(hyp_reader_t **r, int fd, const hyp_read_options_t *opts);
HYP_EXTERN int hyp_reader_open_mem(hyp_reader_t **r, const void *buf, size_t len,
                                   const hyp_read_options_t *opts);
/* Reads the next record into the reader's profile. Returns 1 when a record
 * was read, 0 at the end of the trace, or a negative error (the status says
 * where). A truncated tail returns HYP_ETRUNCATED after every complete record. */
HYP_EXTERN int hyp_reader_next(hyp_reader_t *r);
/* The profile built so far; it stays owned by the reader unless taken. */
HYP_EXTERN hyp_profile_t *hyp_reader_profile(hyp_reader_t *r);
HYP_EXTERN hyp_profile_t *hyp_reader_take_profile(hyp_reader_t *r);
/* Samples kept so far when keep_samples is set. */
HYP_EXTERN const hyp_sample_t *hyp_reader_samples(const hyp_reader_t *r, size_t *n);
HYP_EXTERN const hyp_read_status_t *hyp_reader_status(const hyp_reader_t *r);
/* The format version of the trace being read (the major is always
 * HYP_FORMAT_MAJOR): 0, or -1 before its header was read. The header's other
 * entries are in the profile's metadata. */
HYP_EXTERN int hyp_reader_version(const hyp_reader_t *r, unsigned *major, unsigned *minor);
HYP_EXTERN void hyp_reader_close(hyp_reader_t *r);

/* Reads a whole trace. On success or truncation *out holds every complete
 * record (truncation is reported in status with the return HYP_ETRUNCATED);
 * on any other error *out is NULL. status may be NULL. */
HYP_EXTERN int hyp_trace_load(const char *path, const hyp_read_options_t *opts,
                              hyp_profile_t **out, hyp_read_status_t *status);

#ifdef __cplusplus
}
#endif
#endif /* HYPROF_TRACE_H */
