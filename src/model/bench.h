/* bench.h - throughput benchmarks of the C encoder, shaped like ../shared/bench/torch_ref.py.
 *
 * Both build a randomly initialised model of a preset config (tiny / mini / small / base,
 * vocab 30522, 512 positions), draw token ids uniformly from [1000, 30522) with no padding (as
 * torch_ref.py does), set the pool to `threads`, run `warmup` untimed iterations and time
 * `steps` more. Times are wall-clock milliseconds per iteration.
 *
 *   bench_encode: one encoder_embed call (eval, mean pooling, L2-normalised) on a batch of
 *                 `batch` sequences of `seq` tokens. torch_ref: --mode encode (64 x 64).
 *   bench_train:  one training step on `batch` pairs: forward of 2*batch sequences in training
 *                 mode (dropout 0.1), mean pooling, multiple-negatives ranking / InfoNCE
 *                 (cosine * 20, cross-entropy on the diagonal), backward into the flat
 *                 gradient buffer, AdamW (lr 5e-5, wd 0.01, betas 0.9/0.999, eps 1e-8) over
 *                 every parameter, gradient zeroing fused into the update.
 *                 torch_ref: --mode train (32 pairs x 64 tokens).
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
int bench_train(const char *config, int batch_pairs, int seq, int threads, int warmup, int steps, BenchResult *out);

#endif
