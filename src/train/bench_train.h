/* bench_train.h - the training-step benchmark of `amalgam bench train`, on the real trainer.
 *
 * Same shapes and contract as bench_encode in src/model/bench.h (a randomly initialised preset
 * model, ids uniform in [1000, V), no padding, `threads` pool threads, `warmup` untimed steps),
 * but each step is trainer_step: one forward of the 2*batch sequences (queries and positives
 * together), mean pooling, MultipleNegativesRankingLoss (scale 20), backward, AdamW with torch's
 * defaults as the peer uses them (lr 5e-5, wd 0.01 on every tensor, no clipping, constant lr).
 * ms_forward includes the loss; ms_optim is norm + AdamW + bookkeeping. */
#ifndef AM_BENCH_TRAIN_H
#define AM_BENCH_TRAIN_H

#include "bench.h"

int bench_train(const char *config, int batch_pairs, int seq, int threads, int warmup, int steps, BenchResult *out);

#endif
