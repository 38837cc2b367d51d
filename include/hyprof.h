/* hyprof: the public C API, in one header.
 *
 * The core is plain C11 with no Python in it: clocks, the calling-context
 * tree, the trace format's writer and reader, the aggregations that turn a
 * trace into flat statistics, and perf_event set-up. */
#ifndef HYPROF_H
#define HYPROF_H

#include "hyprof/common.h"
#include "hyprof/profile.h"
#include "hyprof/trace.h"
#include "hyprof/aggregate.h"
#include "hyprof/callgrind.h"
#include "hyprof/clock.h"
#include "hyprof/perf.h"

#endif /* HYPROF_H */
