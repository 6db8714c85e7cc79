/* train_bench.h - the training-step benchmark on the real trainer (replaces bench_train).
 *
 * Same shapes and contract as bench_train in src/model/bench.h (a randomly initialised preset
 * model, ids uniform in [1000, V), no padding, `threads` pool threads, `warmup` untimed steps),
 * but each step is trainer_step: one forward of the 2*batch sequences (queries and positives
 * together), mean pooling, MultipleNegativesRankingLoss (scale 20), backward, AdamW with torch's
 * defaults as the peer uses them (lr 5e-5, wd 0.01 on every tensor, no clipping, constant lr).
 * ms_forward includes the loss; ms_optim is norm + AdamW + bookkeeping. */
#ifndef AM_TRAIN_BENCH_H
#define AM_TRAIN_BENCH_H

#include "bench.h"

int train_bench(const char *config, int batch_pairs, int seq, int threads, int warmup, int steps, BenchResult *out);

#endif
