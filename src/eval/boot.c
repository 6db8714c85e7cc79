/* boot.c - per-example scores, bootstrap standard errors and paired tests (metrics.h,
 * "uncertainty"). The random draws are numpy RandomState's so tests/ref/eval/gen_boot.py
 * reproduces every number. */
#include "metrics.h"
#include "am_base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int px_ncols(int kind) {
    switch (kind) {
    case AM_PX_MEAN: return 1;
    case AM_PX_SPEARMAN: return 2;
    case AM_PX_MAX_AP: return 5;
    case AM_PX_F1: return 2;
    default: return 0;
    }
}

int px_model_cols(int kind) { return kind == AM_PX_MAX_AP ? 4 : px_ncols(kind) ? 1 : 0; }

int px_init(PerExample *p, int kind, int n) {
    memset(p, 0, sizeof *p);
    int nc = px_ncols(kind);
    if (!nc || n < 1) return am_error(AM_EINVAL, "per-example scores: kind %d, n %d", kind, n);
    p->kind = kind;
    p->n = n;
    p->ncols = nc;
    p->col = xcalloc((size_t)nc * n, sizeof *p->col);
    return AM_OK;
}

void px_free(PerExample *p) {
    if (!p) return;
    free(p->col);
    memset(p, 0, sizeof *p);
}

/* column c at rows idx (m) into out (double) */
static void take(double *out, const PerExample *p, int c, const int *idx, int m) {
    const float *x = p->col + (size_t)c * p->n;
    for (int i = 0; i < m; i++) out[i] = x[idx ? idx[i] : i];
}

static double stat_buf(const PerExample *p, const int *idx, int m, double *a, double *b, int *l, int *l2) {
    switch (p->kind) {
    case AM_PX_MEAN: {
        const float *x = p->col;
        double s = 0;
        int k = 0;
        for (int i = 0; i < m; i++) {
            double v = (double)x[idx ? idx[i] : i];
            if (!isnan(v)) { s += v; k++; }
        }
        return k ? s / k : (double)NAN;
    }
    case AM_PX_SPEARMAN:
        take(a, p, 0, idx, m);
        take(b, p, 1, idx, m);
        return stats_spearman(a, b, m);
    case AM_PX_MAX_AP: {
        take(b, p, 4, idx, m);
        for (int i = 0; i < m; i++) l[i] = b[i] > 0.5;
        double best = -INFINITY;
        for (int c = 0; c < 4; c++) {
            take(a, p, c, idx, m);
            if (c >= 2)
                for (int i = 0; i < m; i++) a[i] = -a[i];   /* distances: low = similar */
            double ap = metric_average_precision(a, l, m);
            if (ap > best) best = ap;
        }
        return best;
    }
    case AM_PX_F1: {
        const float *pr = p->col, *gd = p->col + p->n;
        int nl = 1;
        for (int i = 0; i < m; i++) {
            int r = idx ? idx[i] : i;
            l[i] = (int)pr[r];
            l2[i] = (int)gd[r];
            if (l[i] + 1 > nl) nl = l[i] + 1;
            if (l2[i] + 1 > nl) nl = l2[i] + 1;
        }
        LabelMetrics lm;
        if (metric_labels(&lm, l2, l, m, nl)) return NAN;
        return lm.f1_weighted;
    }
    default:
        return NAN;
    }
}

typedef struct { double *a, *b; int *l, *l2; } Scratch;
static void scratch_new(Scratch *s, int n) {
    s->a = xmalloc((size_t)n * sizeof *s->a);
    s->b = xmalloc((size_t)n * sizeof *s->b);
    s->l = xmalloc((size_t)n * sizeof *s->l);
    s->l2 = xmalloc((size_t)n * sizeof *s->l2);
}
static void scratch_free(Scratch *s) { free(s->a); free(s->b); free(s->l); free(s->l2); }

double px_statistic(const PerExample *p, const int *idx, int m) {
    if (!idx) m = p->n;
    if (m < 1) return NAN;
    Scratch s;
    scratch_new(&s, m);
    double v = stat_buf(p, idx, m, s.a, s.b, s.l, s.l2);
    scratch_free(&s);
    return v;
}

static double sd1(const double *v, int n) {
    double m = 0, s2 = 0;
    int k = 0;
    for (int i = 0; i < n; i++) if (!isnan(v[i])) { m += v[i]; k++; }
    if (k < 2) return NAN;
    m /= k;
    for (int i = 0; i < n; i++) if (!isnan(v[i])) s2 += (v[i] - m) * (v[i] - m);
    return sqrt(s2 / (k - 1));
}

double px_bootstrap_se(const PerExample *p, int B, uint32_t seed) {
    int n = p->n;
    if (n < 2 || B < 2) return NAN;
    AmMt r;
    mt_seed(&r, seed);
    int *idx = xmalloc((size_t)n * sizeof *idx);
    double *v = xmalloc((size_t)B * sizeof *v);
    Scratch s;
    scratch_new(&s, n);
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < n; i++) idx[i] = (int)mt_interval(&r, (uint32_t)(n - 1));
        v[b] = stat_buf(p, idx, n, s.a, s.b, s.l, s.l2);
    }
    double se = sd1(v, B);
    scratch_free(&s);
    free(idx);
    free(v);
    return se;
}

int px_paired_test(PairedTest *out, const PerExample *a, const PerExample *b, int B, uint32_t seed) {
    memset(out, 0, sizeof *out);
    out->delta = out->se = out->p_value = NAN;
    if (a->kind != b->kind || a->n != b->n || a->ncols != b->ncols)
        return am_error(AM_EINVAL, "paired test: the results do not have the same examples (%d vs %d)", a->n, b->n);
    int n = a->n, mc = px_model_cols(a->kind);
    out->n = n;
    out->B = B;
    out->delta = px_statistic(a, NULL, n) - px_statistic(b, NULL, n);
    if (n < 2 || B < 2) return AM_OK;
    int *idx = xmalloc((size_t)n * sizeof *idx);
    double *v = xmalloc((size_t)B * sizeof *v);
    Scratch s;
    scratch_new(&s, n);
    /* paired bootstrap: the same rows for both */
    AmMt r;
    mt_seed(&r, seed);
    for (int k = 0; k < B; k++) {
        for (int i = 0; i < n; i++) idx[i] = (int)mt_interval(&r, (uint32_t)(n - 1));
        v[k] = stat_buf(a, idx, n, s.a, s.b, s.l, s.l2) - stat_buf(b, idx, n, s.a, s.b, s.l, s.l2);
    }
    out->se = sd1(v, B);
    /* permutation: swap the model columns of a random half of the rows */
    PerExample sa, sb;
    px_init(&sa, a->kind, n);
    px_init(&sb, a->kind, n);
    memcpy(sa.col, a->col, (size_t)a->ncols * n * sizeof *sa.col);
    memcpy(sb.col, b->col, (size_t)b->ncols * n * sizeof *sb.col);
    mt_seed(&r, seed + 1);
    double ad = fabs(out->delta);
    int ge = 0;
    for (int k = 0; k < B; k++) {
        for (int i = 0; i < n; i++) {
            int sw = (int)mt_interval(&r, 1);
            for (int c = 0; c < mc; c++) {
                size_t o = (size_t)c * n + i;
                sa.col[o] = sw ? b->col[o] : a->col[o];
                sb.col[o] = sw ? a->col[o] : b->col[o];
            }
        }
        double d = stat_buf(&sa, NULL, n, s.a, s.b, s.l, s.l2) - stat_buf(&sb, NULL, n, s.a, s.b, s.l, s.l2);
        /* relative tolerance: a swap that changes nothing must count as "as extreme" */
        if (fabs(d) >= ad - 1e-12 * (1 + ad)) ge++;
    }
    out->p_value = (1.0 + ge) / (B + 1.0);
    px_free(&sa);
    px_free(&sb);
    scratch_free(&s);
    free(idx);
    free(v);
    return AM_OK;
}

/* ---------------------------------------------------------------- serialisation */

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void *px_encode(const PerExample *p, size_t *len) {
    size_t nv = (size_t)p->ncols * p->n;
    *len = 16 + 4 * nv;
    uint8_t *b = xmalloc(*len);
    memcpy(b, "AMPX", 4);
    b[4] = 1;
    b[5] = (uint8_t)p->kind;
    b[6] = b[7] = 0;
    put_u32(b + 8, (uint32_t)p->n);
    put_u32(b + 12, (uint32_t)p->ncols);
    for (size_t i = 0; i < nv; i++) {
        uint32_t u;
        memcpy(&u, &p->col[i], 4);
        put_u32(b + 16 + 4 * i, u);
    }
    return b;
}

int px_decode(PerExample *p, const void *buf, size_t len) {
    memset(p, 0, sizeof *p);
    const uint8_t *b = buf;
    if (len < 16 || memcmp(b, "AMPX", 4) != 0 || b[4] != 1)
        return am_error(AM_EFORMAT, "per-example scores: bad header");
    int kind = b[5];
    uint32_t n = get_u32(b + 8), nc = get_u32(b + 12);
    if (!px_ncols(kind) || (int)nc != px_ncols(kind) || n < 1 || n > (1u << 28) || len != 16 + 4 * (size_t)nc * n)
        return am_error(AM_EFORMAT, "per-example scores: bad size (kind %d, n %u, cols %u, %zu bytes)", kind, n, nc, len);
    px_init(p, kind, (int)n);
    for (size_t i = 0; i < (size_t)nc * n; i++) {
        uint32_t u = get_u32(b + 16 + 4 * i);
        memcpy(&p->col[i], &u, 4);
    }
    return AM_OK;
}
