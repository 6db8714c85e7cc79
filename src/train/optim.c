/* optim.c - AdamW, schedules, clipping over flat buffers (see optim.h). */
#include "optim.h"
#include "am_base.h"
#include "tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

void adamw_config_default(AdamWConfig *c) {
    *c = (AdamWConfig){ .lr = 5e-5f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f };
}

void lr_schedule_default(LRSchedule *s) {
    *s = (LRSchedule){ .kind = AM_SCHED_LINEAR, .warmup_steps = 0, .total_steps = 0, .num_cycles = 0.5f };
}

int lr_schedule_from_name(const char *name) {
    if (!name) return -1;
    if (strcmp(name, "constant") == 0) return AM_SCHED_CONSTANT;
    if (strcmp(name, "linear") == 0) return AM_SCHED_LINEAR;
    if (strcmp(name, "cosine") == 0) return AM_SCHED_COSINE;
    return -1;
}

double lr_schedule_factor(const LRSchedule *s, int64_t step) {
    const int64_t W = s->warmup_steps, Tt = s->total_steps;
    if (step < W) return (double)step / (double)(W > 1 ? W : 1);
    switch (s->kind) {
    case AM_SCHED_LINEAR: {
        int64_t den = Tt - W > 1 ? Tt - W : 1;
        double f = (double)(Tt - step) / (double)den;
        return f > 0 ? f : 0.0;
    }
    case AM_SCHED_COSINE: {
        int64_t den = Tt - W > 1 ? Tt - W : 1;
        double progress = (double)(step - W) / (double)den;
        double f = 0.5 * (1.0 + cos(M_PI * (double)s->num_cycles * 2.0 * progress));
        return f > 0 ? f : 0.0;
    }
    default:
        return 1.0;
    }
}

int optim_is_no_decay(const char *name) {
    return strstr(name, "bias") != NULL || strstr(name, "LayerNorm") != NULL;
}

int optim_segments_from_table(const ParamTable *tab, const uint8_t *trainable, int exclude_no_decay,
                              OptimSegment **out) {
    OptimSegment *s = xmalloc((size_t)(tab->n > 0 ? tab->n : 1) * sizeof *s);
    int n = 0;
    for (int i = 0; i < tab->n; i++) {
        if (trainable && !trainable[i]) continue;
        const ParamInfo *p = &tab->t[i];
        uint8_t decay = !(exclude_no_decay && optim_is_no_decay(p->name));
        if (n > 0 && s[n - 1].decay == decay && s[n - 1].offset + s[n - 1].numel == p->offset) {
            s[n - 1].numel += p->numel;
            continue;
        }
        s[n++] = (OptimSegment){ p->offset, p->numel, decay };
    }
    *out = s;
    return n;
}

/* ------------------------------------------------------------------ walking the concatenation */

typedef struct {
    const OptimGroup *g;
    int ng;
    size_t total;           /* floats over all segments */
} Span;

static Span span_of(const OptimGroup *g, int ng) {
    Span s = { g, ng, 0 };
    for (int k = 0; k < ng; k++)
        for (int i = 0; i < g[k].nseg; i++) s.total += g[k].seg[i].numel;
    return s;
}

/* Call fn on every (group, segment, [a, b)) piece of the virtual range [lo, hi). */
typedef void (*PieceFn)(void *ctx, const OptimGroup *g, const OptimSegment *s, size_t a, size_t b);
static void for_pieces(const Span *sp, size_t lo, size_t hi, PieceFn fn, void *ctx) {
    size_t base = 0;
    for (int k = 0; k < sp->ng && base < hi; k++)
        for (int i = 0; i < sp->g[k].nseg && base < hi; i++) {
            const OptimSegment *s = &sp->g[k].seg[i];
            size_t a = lo > base ? lo - base : 0, b = hi - base < s->numel ? hi - base : s->numel;
            if (base + s->numel > lo && a < b) fn(ctx, &sp->g[k], s, s->offset + a, s->offset + b);
            base += s->numel;
        }
}

/* ------------------------------------------------------------------ norm */

typedef struct {
    Span sp;
    double part[256];
    int nth;
} NormJob;

static void norm_piece(void *ctx, const OptimGroup *g, const OptimSegment *s, size_t a, size_t b) {
    (void)s;
    double *acc = ctx;
    const float *x = g->g;
    size_t i = a;
    double sum = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (; i + 8 <= b; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256d lo4 = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi4 = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        s0 = _mm256_fmadd_pd(lo4, lo4, s0);
        s1 = _mm256_fmadd_pd(hi4, hi4, s1);
    }
    double t[4];
    _mm256_storeu_pd(t, _mm256_add_pd(s0, s1));
    sum = (t[0] + t[1]) + (t[2] + t[3]);
#endif
    for (; i < b; i++) sum += (double)x[i] * (double)x[i];
    *acc += sum;
}

static void norm_task(void *ctx, int tid, int nth) {
    NormJob *j = ctx;
    size_t lo, hi;
    am_split_aligned(j->sp.total, 64, tid, nth, &lo, &hi);
    double acc = 0;
    for_pieces(&j->sp, lo, hi, norm_piece, &acc);
    j->part[tid] = acc;
    if (tid == 0) j->nth = nth;
}

double optim_grad_norm(const OptimGroup *groups, int ng) {
    NormJob j;
    memset(&j, 0, sizeof j);
    j.sp = span_of(groups, ng);
    AM_ASSERT(am_parallel_get_threads() <= 256);
    am_parallel_run_min(norm_task, &j, j.sp.total, 1u << 15);
    double s = 0;
    for (int t = 0; t < j.nth; t++) s += j.part[t];
    return sqrt(s);
}

float optim_clip_coef(double norm, float max_norm) {
    if (!(max_norm > 0)) return 1.0f;
    double c = (double)max_norm / (norm + 1e-6);
    return c < 1.0 ? (float)c : 1.0f;
}

/* ------------------------------------------------------------------ AdamW */

typedef struct {
    Span sp;
    float lr, b1, b2, eps, wd, step, rbc2, gs;
    int zero;
} AdamJob;

static void adam_piece(void *ctx, const OptimGroup *g, const OptimSegment *s, size_t a, size_t b) {
    const AdamJob *j = ctx;
    float *P = g->p, *G = g->g, *Mm = g->m, *Vv = g->v;
    const float decay = s->decay ? (float)(1.0 - (double)j->lr * (double)j->wd) : 1.0f;
    const float b1 = j->b1, b2 = j->b2, c1 = 1.0f - b1, c2 = 1.0f - b2, step = j->step, rbc2 = j->rbc2;
    const float eps = j->eps, gs = j->gs;
    size_t i = a;
#if defined(__AVX2__) && defined(__FMA__)
    const __m256 vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2), vc1 = _mm256_set1_ps(c1),
                 vc2 = _mm256_set1_ps(c2), vdec = _mm256_set1_ps(decay), vstep = _mm256_set1_ps(step),
                 vr = _mm256_set1_ps(rbc2), veps = _mm256_set1_ps(eps), vgs = _mm256_set1_ps(gs),
                 zero = _mm256_setzero_ps();
    for (; i + 8 <= b; i += 8) {
        __m256 gv = _mm256_mul_ps(_mm256_loadu_ps(G + i), vgs);
        __m256 m = _mm256_fmadd_ps(vb1, _mm256_loadu_ps(Mm + i), _mm256_mul_ps(vc1, gv));
        __m256 v = _mm256_fmadd_ps(vb2, _mm256_loadu_ps(Vv + i), _mm256_mul_ps(vc2, _mm256_mul_ps(gv, gv)));
        __m256 den = _mm256_fmadd_ps(_mm256_sqrt_ps(v), vr, veps);
        __m256 p = _mm256_mul_ps(_mm256_loadu_ps(P + i), vdec);
        p = _mm256_fnmadd_ps(vstep, _mm256_div_ps(m, den), p);
        _mm256_storeu_ps(P + i, p);
        _mm256_storeu_ps(Mm + i, m);
        _mm256_storeu_ps(Vv + i, v);
        if (j->zero) _mm256_storeu_ps(G + i, zero);
    }
#endif
    for (; i < b; i++) {
        float gv = G[i] * gs;
        float m = fmaf(b1, Mm[i], c1 * gv), v = fmaf(b2, Vv[i], c2 * (gv * gv));
        float den = fmaf(sqrtf(v), rbc2, eps);
        P[i] = fmaf(-step, m / den, P[i] * decay);
        Mm[i] = m;
        Vv[i] = v;
        if (j->zero) G[i] = 0;
    }
}

static void adam_task(void *ctx, int tid, int nth) {
    AdamJob *j = ctx;
    size_t lo, hi;
    am_split_aligned(j->sp.total, 64, tid, nth, &lo, &hi);
    for_pieces(&j->sp, lo, hi, adam_piece, j);
}

void adamw_update(const OptimGroup *groups, int ng, const AdamWConfig *c, float lr, int64_t t,
                  float grad_scale, int zero_grads) {
    AM_ASSERT(t >= 1);
    const double bc1 = 1.0 - pow((double)c->beta1, (double)t), bc2 = 1.0 - pow((double)c->beta2, (double)t);
    AdamJob j = { .sp = span_of(groups, ng), .lr = lr, .b1 = c->beta1, .b2 = c->beta2, .eps = c->eps,
                  .wd = c->weight_decay, .step = (float)((double)lr / bc1), .rbc2 = (float)(1.0 / sqrt(bc2)),
                  .gs = grad_scale, .zero = zero_grads };
    am_parallel_run_min(adam_task, &j, j.sp.total, 1u << 14);
}

static void zero_piece(void *ctx, const OptimGroup *g, const OptimSegment *s, size_t a, size_t b) {
    (void)ctx;
    (void)s;
    memset(g->g + a, 0, (b - a) * sizeof(float));
}

typedef struct { Span sp; } ZeroJob;
static void zero_task(void *ctx, int tid, int nth) {
    ZeroJob *j = ctx;
    size_t lo, hi;
    am_split_aligned(j->sp.total, 64, tid, nth, &lo, &hi);
    for_pieces(&j->sp, lo, hi, zero_piece, NULL);
}

void optim_zero_grads(const OptimGroup *groups, int ng) {
    ZeroJob j = { span_of(groups, ng) };
    am_parallel_run_min(zero_task, &j, j.sp.total, 1u << 16);
}
