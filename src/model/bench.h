/* bench.h - throughput benchmarks for `amalgam bench` (src/cli/cmd_bench.c), shaped like the
 * PyTorch peer tools/bench/torch_peer.py. bench_encode is here (bench_encode.c); the training
 * step, bench_train, needs the trainer and lives in src/train/bench_train.{c,h}.
 *
 * Both build a randomly initialised model of a preset config (tiny / mini / small / base,
 * vocab 30522, 512 positions), draw token ids uniformly from [1000, 30522) with no padding (as
 * torch_peer.py does), set the pool to `threads`, run `warmup` untimed iterations and time
 * `steps` more. Times are wall-clock milliseconds per iteration.
 *
 *   bench_encode: one encoder_embed call (eval, mean pooling, L2-normalised) on a batch of
 *                 `batch` sequences of `seq` tokens. torch_peer: --mode encode (64 x 64).
 *   bench_train:  one trainer_step on `batch` pairs (see bench_train.h).
 *                 torch_peer: --mode train (32 pairs x 64 tokens).
 */
#ifndef AM_BENCH_H
#define AM_BENCH_H

typedef struct {
    double ms_median, ms_min, ms_max;  /* per iteration */
    double ms_forward, ms_backward, ms_optim; /* medians of the parts (train only) */
    double per_s;                      /* sentences (encode) or sequences (train) per second, median */
    double loss;                       /* last loss (train only) */
    int steps, threads;
} BenchResult;

int bench_encode(const char *config, int batch, int seq, int threads, int warmup, int steps, BenchResult *out);

/* Shared by the benchmarks: the median of v (sorts v in place), and steps / threads /
 * ms_median / ms_min / ms_max of out from the per-iteration times ms (sorted in place). */
double bench_median(double *v, int n);
void bench_summarize(BenchResult *out, double *ms, int steps);

#endif
