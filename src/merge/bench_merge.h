/* bench_merge.h - measurements behind `amalgam bench merge` (table and NumPy peer in
 * src/cli/cmd_bench_merge.c).
 *
 * bench_triad: a STREAM-like triad a[i] = b[i] + s·c[i] over three arrays of n floats, split over
 *   the tensor pool in the merge kernels' way; returns the best of `reps` in GB/s counting 3 arrays
 *   (two read, one written; write-allocate traffic not counted, as STREAM).
 * bench_merge_models: K+1 randomly initialised models of a preset config (model 0 is the base).
 * bench_merge_time: the best and median wall time of `reps` merges of models[1..k] (+ models[0]
 *   as the base when the method takes one) and the effective bandwidth of the best run,
 *   (bytes read + bytes written) / time (MergeStats' one-pass byte counts). */
#ifndef AM_BENCH_MERGE_H
#define AM_BENCH_MERGE_H

#include <stddef.h>

#include "merge.h"

double bench_triad(size_t n, int reps);

int bench_merge_models(const char *config, int k, Model ***out); /* k+1 models; free with bench_merge_free */
void bench_merge_free(Model **models, int k);

typedef struct { double ms_best, ms_median, gbps; size_t bytes; } MergeBench;
int bench_merge_time(const MergeSpec *spec, Model **models, int k, Model *out, int reps, MergeBench *r);

#endif
