/* logreg.c - L2 logistic regression (binary / multinomial) by L-BFGS, and MTEB's classification
 * protocol on top of it (see metrics.h).
 *
 * Parameters w = [W (R, D) | b (R)], R = 1 for two classes, K otherwise; X (N, D) in double.
 *   f(w) = Σ_i loss_i(z_i) + ||W||² / (2C),  z_i = W x_i + b
 *   binary:      loss = log(1 + e^z) − y z,           ∂loss/∂z = σ(z) − y
 *   multinomial: loss = logsumexp(z) − z_y,           ∂loss/∂z = softmax(z) − onehot(y)
 *   ∂f/∂W = Gᵀ X + W / C,  ∂f/∂b = Σ_i G_i           (G (N, R) = ∂loss/∂z; two dgemms)
 * sklearn >= 1.4 (the default) minimises f / n instead: the mean loss + ||W||² / (2·C·n), with
 * ftol 64·eps and up to 50 line-search steps; same optimum, another stopping point.
 * L-BFGS: memory 10, two-loop recursion, strong-Wolfe line search (c1 1e-4, c2 0.9; bracketing
 * with safeguarded cubic interpolation), first step 1/||d|| then 1 (as L-BFGS-B). Stops as
 * scipy's L-BFGS-B does with sklearn's options: max|g| <= tol, relative decrease of f
 * <= factr·eps = 1e7·2.2e-16, or max_iter iterations.
 */
#include "metrics.h"
#include "am_base.h"
#include "tensor.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LBFGS_M 10
#define LBFGS_FTOL_12 (1e7 * DBL_EPSILON)   /* sklearn 1.2: scipy's L-BFGS-B default ftol      */
#define LBFGS_FTOL_14 (64 * DBL_EPSILON)    /* sklearn >= 1.4: options ftol = 64 * eps          */
#define LS_MAX_12 40
#define LS_MAX_14 50                        /* sklearn >= 1.4: maxls 50 (scipy's default is 20) */

typedef struct {
    const double *X; const int *y;
    int n, dim, R;
    double lam;         /* 1 / C (sklearn 1.2) or 1 / (C n) (>= 1.4) */
    double scale;       /* of the loss terms: 1 (1.2: the sum) or 1 / n (>= 1.4: the mean) */
    int ls_max;
    double *Z;          /* (n, R) scratch: logits, then G */
} LrProb;

static double dotv(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* f(w) and its gradient g (same layout as w). */
static double lr_fg(const LrProb *p, const double *w, double *g) {
    int n = p->n, D = p->dim, R = p->R;
    const double *W = w, *b = w + (size_t)R * D;
    double *Z = p->Z;
    blas_dgemm_nt(Z, R, p->X, D, W, D, n, R, D, 1.0, 0.0);
    double f = 0;
    for (int i = 0; i < n; i++) {
        double *z = Z + (size_t)i * R;
        for (int r = 0; r < R; r++) z[r] += b[r];
        if (R == 1) {
            double t = z[0], y = p->y[i];
            /* log(1 + e^t) stably, and σ(t) */
            double lse = t > 0 ? t + log1p(exp(-t)) : log1p(exp(t));
            double sig = t >= 0 ? 1.0 / (1.0 + exp(-t)) : exp(t) / (1.0 + exp(t));
            f += lse - y * t;
            z[0] = sig - y;
        } else {
            double mx = z[0];
            for (int r = 1; r < R; r++) if (z[r] > mx) mx = z[r];
            double s = 0;
            for (int r = 0; r < R; r++) s += exp(z[r] - mx);
            double lse = mx + log(s);
            f += lse - z[p->y[i]];
            for (int r = 0; r < R; r++) z[r] = exp(z[r] - lse);
            z[p->y[i]] -= 1.0;
        }
    }
    f *= p->scale;
    if (p->scale != 1.0)
        for (size_t i = 0; i < (size_t)n * R; i++) Z[i] *= p->scale;
    /* gW = Gᵀ X + lam W ; gb = Σ G */
    double *gW = g, *gb = g + (size_t)R * D;
    memcpy(gW, W, (size_t)R * D * sizeof *gW);
    blas_dgemm_tn(gW, D, Z, R, p->X, D, R, D, n, 1.0, p->lam);
    for (int r = 0; r < R; r++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += Z[(size_t)i * R + r];
        gb[r] = s;
    }
    f += 0.5 * p->lam * dotv(W, W, (size_t)R * D);
    return f;
}

/* Cubic minimiser of the interpolant through (a, fa, da), (b, fb, db), safeguarded into the
 * middle 80 % of [a, b]; bisection when the cubic is not usable. */
static double cubic_step(double a, double fa, double da, double b, double fb, double db) {
    double lo = a < b ? a : b, hi = a < b ? b : a, w = hi - lo;
    double d1 = da + db - 3 * (fa - fb) / (a - b);
    double disc = d1 * d1 - da * db;
    double t = 0.5 * (a + b);
    if (disc >= 0) {
        double d2 = (b > a ? 1 : -1) * sqrt(disc);
        double den = db - da + 2 * d2;
        if (den != 0) t = b - (b - a) * ((db + d2 - d1) / den);
    }
    if (!(t >= lo + 0.1 * w && t <= hi - 0.1 * w)) t = 0.5 * (a + b);
    return t;
}

/* Strong-Wolfe line search along d from (x, f0, g0). On success x1, g1, *f1, *stp hold the
 * accepted point and 0 is returned; -1 if no acceptable decrease was found. */
static int line_search(const LrProb *p, const double *x, double f0, const double *g0,
                       const double *d, size_t P, double stp, double *x1, double *g1,
                       double *f1, double *stp_out) {
    const double c1 = 1e-4, c2 = 0.9;
    double dg0 = dotv(g0, d, P);
    double a_lo = 0, f_lo = f0, dg_lo = dg0, a_hi = 0, f_hi = 0, dg_hi = 0;
    int bracketed = 0;
    double a = stp;
    for (int it = 0; it < p->ls_max; it++) {
        for (size_t i = 0; i < P; i++) x1[i] = x[i] + a * d[i];
        double f = lr_fg(p, x1, g1), dg = dotv(g1, d, P);
        if (!isfinite(f)) { a_hi = a; f_hi = INFINITY; dg_hi = 0; bracketed = 1; a = 0.5 * (a_lo + a); continue; }
        if (f > f0 + c1 * a * dg0 || f >= f_lo) {
            a_hi = a; f_hi = f; dg_hi = dg; bracketed = 1;
        } else {
            if (fabs(dg) <= -c2 * dg0) { *f1 = f; *stp_out = a; return 0; }
            if (bracketed && dg * (a_hi - a_lo) >= 0) { a_hi = a_lo; f_hi = f_lo; dg_hi = dg_lo; }
            if (!bracketed && dg >= 0) { a_hi = a_lo; f_hi = f_lo; dg_hi = dg_lo; bracketed = 1; }
            a_lo = a; f_lo = f; dg_lo = dg;
        }
        if (bracketed) {
            if (!isfinite(f_hi)) a = 0.5 * (a_lo + a_hi);
            else a = cubic_step(a_lo, f_lo, dg_lo, a_hi, f_hi, dg_hi);
            if (fabs(a_hi - a_lo) <= 1e-16 * (a_hi > a_lo ? a_hi : a_lo)) break;
        } else {
            a = a * 4.0;
        }
    }
    if (a_lo > 0 && f_lo < f0) {   /* accept the best sufficient-decrease point found */
        for (size_t i = 0; i < P; i++) x1[i] = x[i] + a_lo * d[i];
        *f1 = lr_fg(p, x1, g1);
        *stp_out = a_lo;
        return 0;
    }
    return -1;
}

static double inf_norm(const double *g, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) if (fabs(g[i]) > m) m = fabs(g[i]);
    return m;
}

int logreg_fit(LogReg *m, const float *x, const int *y, int n, int dim, int n_classes, double C,
               int max_iter, double tol, AmSklearn v) {
    memset(m, 0, sizeof *m);
    if (n < 1 || dim < 1 || n_classes < 2 || !(C > 0) || max_iter < 0)
        return am_error(AM_EINVAL, "logreg_fit: n=%d dim=%d n_classes=%d C=%g max_iter=%d", n, dim, n_classes, C, max_iter);
    int *seen = xcalloc((size_t)n_classes, sizeof *seen);
    for (int i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= n_classes) { free(seen); return am_error(AM_EINVAL, "logreg_fit: label %d of sample %d outside [0, %d)", y[i], i, n_classes); }
        seen[y[i]] = 1;
    }
    for (int c = 0; c < n_classes; c++)
        if (!seen[c]) { free(seen); return am_error(AM_EINVAL, "logreg_fit: class %d has no training sample", c); }
    free(seen);

    int R = n_classes == 2 ? 1 : n_classes;
    size_t P = (size_t)R * (dim + 1);
    m->dim = dim; m->n_classes = n_classes; m->n_rows = R;
    double *X = malloc((size_t)n * dim * sizeof *X);
    double *Z = malloc((size_t)n * R * sizeof *Z);
    double *buf = malloc((size_t)(5 + 2 * LBFGS_M) * P * sizeof *buf);
    if (!X || !Z || !buf) {
        free(X); free(Z); free(buf);
        return am_error(AM_ENOMEM, "logreg_fit: %d x %d features", n, dim);
    }
    for (size_t i = 0; i < (size_t)n * dim; i++) X[i] = x[i];
    blas_init();
    int v14 = v != AM_SKLEARN_1_2;
    LrProb p = { X, y, n, dim, R, v14 ? 1.0 / (C * n) : 1.0 / C, v14 ? 1.0 / n : 1.0, v14 ? LS_MAX_14 : LS_MAX_12, Z };
    double ftol = v14 ? LBFGS_FTOL_14 : LBFGS_FTOL_12;
    double *w = buf, *g = w + P, *w1 = g + P, *g1 = w1 + P, *d = g1 + P;
    double *S = d + P, *Y = S + (size_t)LBFGS_M * P;
    double rho[LBFGS_M], alpha[LBFGS_M];
    memset(w, 0, P * sizeof *w);
    double f = lr_fg(&p, w, g);
    int full = tol <= 0;   /* run to the optimum: no ftol test, gtol 1e-10, stop when stuck */
    if (full) tol = 1e-10;
    int hist = 0, head = 0, iter = 0, converged = inf_norm(g, P) <= tol;
    while (!converged && iter < max_iter) {
        /* d = −H g by the two-loop recursion over the newest `hist` pairs */
        for (size_t i = 0; i < P; i++) d[i] = -g[i];
        for (int t = 0; t < hist; t++) {
            int s = (head - 1 - t + LBFGS_M) % LBFGS_M;
            alpha[s] = rho[s] * dotv(S + (size_t)s * P, d, P);
            const double *ys = Y + (size_t)s * P;
            for (size_t i = 0; i < P; i++) d[i] -= alpha[s] * ys[i];
        }
        if (hist > 0) {
            int s = (head - 1 + LBFGS_M) % LBFGS_M;
            const double *ys = Y + (size_t)s * P;
            double gamma = 1.0 / (rho[s] * dotv(ys, ys, P));
            for (size_t i = 0; i < P; i++) d[i] *= gamma;
        }
        for (int t = hist - 1; t >= 0; t--) {
            int s = (head - 1 - t + LBFGS_M) % LBFGS_M;
            double beta = rho[s] * dotv(Y + (size_t)s * P, d, P);
            const double *ss = S + (size_t)s * P;
            for (size_t i = 0; i < P; i++) d[i] += (alpha[s] - beta) * ss[i];
        }
        if (dotv(d, g, P) >= 0) {   /* not a descent direction: restart from steepest descent */
            hist = 0;
            for (size_t i = 0; i < P; i++) d[i] = -g[i];
        }
        double stp = hist == 0 ? 1.0 / sqrt(dotv(d, d, P)) : 1.0, f1;
        if (hist == 0 && stp > 1.0) stp = 1.0;
        if (line_search(&p, w, f, g, d, P, stp, w1, g1, &f1, &stp) != 0) {
            converged = full;   /* no decrease left at machine precision */
            break;
        }
        iter++;
        /* store s = w1 − w, y = g1 − g */
        double *ss = S + (size_t)head * P, *ys = Y + (size_t)head * P;
        for (size_t i = 0; i < P; i++) { ss[i] = w1[i] - w[i]; ys[i] = g1[i] - g[i]; }
        double sy = dotv(ss, ys, P);
        if (sy > DBL_EPSILON * dotv(ys, ys, P)) {
            rho[head] = 1.0 / sy;
            head = (head + 1) % LBFGS_M;
            if (hist < LBFGS_M) hist++;
        } else if (hist == LBFGS_M) {
            hist--;   /* the slot just overwritten held the oldest pair */
        }
        double fold = f;
        memcpy(w, w1, P * sizeof *w);
        memcpy(g, g1, P * sizeof *g);
        f = f1;
        double scale = fmax(fmax(fabs(fold), fabs(f)), 1.0);
        if (!full && (fold - f) / scale <= ftol) converged = 1;
        if (inf_norm(g, P) <= tol) converged = 1;
    }
    m->coef = malloc((size_t)R * dim * sizeof *m->coef);
    m->intercept = malloc((size_t)R * sizeof *m->intercept);
    if (!m->coef || !m->intercept) {
        free(X); free(Z); free(buf); logreg_free(m);
        return am_error(AM_ENOMEM, "logreg_fit: coefficients");
    }
    memcpy(m->coef, w, (size_t)R * dim * sizeof *w);
    memcpy(m->intercept, w + (size_t)R * dim, (size_t)R * sizeof *w);
    m->n_iter = iter;
    m->converged = converged;
    free(X); free(Z); free(buf);
    return AM_OK;
}

static void decision_row(const LogReg *m, const float *xr, double *z) {
    for (int r = 0; r < m->n_rows; r++) {
        const double *wr = m->coef + (size_t)r * m->dim;
        double s = m->intercept[r];
        for (int j = 0; j < m->dim; j++) s += wr[j] * (double)xr[j];
        z[r] = s;
    }
}

void logreg_predict_proba(const LogReg *m, const float *x, int n, double *proba) {
    double *z = xmalloc((size_t)m->n_rows * sizeof *z);
    for (int i = 0; i < n; i++) {
        decision_row(m, x + (size_t)i * m->dim, z);
        double *pr = proba + (size_t)i * m->n_classes;
        if (m->n_rows == 1) {
            double t = z[0], s = t >= 0 ? 1.0 / (1.0 + exp(-t)) : exp(t) / (1.0 + exp(t));
            pr[0] = 1.0 - s; pr[1] = s;
        } else {
            double mx = z[0], sum = 0;
            for (int r = 1; r < m->n_rows; r++) if (z[r] > mx) mx = z[r];
            for (int r = 0; r < m->n_rows; r++) { pr[r] = exp(z[r] - mx); sum += pr[r]; }
            for (int r = 0; r < m->n_rows; r++) pr[r] /= sum;
        }
    }
    free(z);
}

void logreg_predict(const LogReg *m, const float *x, int n, int *pred) {
    double *z = xmalloc((size_t)m->n_rows * sizeof *z);
    for (int i = 0; i < n; i++) {
        decision_row(m, x + (size_t)i * m->dim, z);
        if (m->n_rows == 1) { pred[i] = z[0] > 0; continue; }
        int best = 0;
        for (int r = 1; r < m->n_rows; r++) if (z[r] > z[best]) best = r;
        pred[i] = best;
    }
    free(z);
}

void logreg_free(LogReg *m) {
    free(m->coef);
    free(m->intercept);
    m->coef = m->intercept = NULL;
}

/* ------------------------------------------------------------------ MTEB classification */

void classif_options_default(ClassifOptions *o) {
    memset(o, 0, sizeof *o);
    o->n_experiments = 10;
    o->samples_per_label = 8;
    o->seed = 42;
    o->C = 1.0;
    o->max_iter = 100;
    o->tol = 1e-4;
    o->sklearn = AM_SKLEARN_1_4;
}

int classif_undersample(int *sel, int *idxs, const int *y, int n, int n_labels, int samples_per_label,
                        uint32_t seed) {
    AmMt r;
    mt_seed(&r, seed);
    mt_shuffle(&r, idxs, n);
    int *cnt = xcalloc((size_t)n_labels, sizeof *cnt), m = 0;
    for (int t = 0; t < n; t++) {
        int i = idxs[t];
        if (cnt[y[i]] < samples_per_label) { sel[m++] = i; cnt[y[i]]++; }
    }
    free(cnt);
    return m;
}

/* One experiment: fit on rows sel (m) of the train set, predict the test set, score. */
static int classif_run(ClassifScores *s, const float *train_x, const int *train_y, const int *sel,
                       int m, const float *test_x, const int *test_y, int n_test, int dim,
                       int n_labels, const ClassifOptions *o, unsigned char *correct) {
    /* sklearn's classes_ = sorted unique training labels -> compact ids */
    int *map = xmalloc((size_t)n_labels * sizeof *map), *inv = xmalloc((size_t)n_labels * sizeof *inv);
    for (int l = 0; l < n_labels; l++) map[l] = -1;
    for (int t = 0; t < m; t++) map[train_y[sel[t]]] = 1;
    int K = 0;
    for (int l = 0; l < n_labels; l++) if (map[l] >= 0) { map[l] = K; inv[K] = l; K++; }
    int rc = AM_OK;
    if (K < 2) {
        rc = am_error(AM_EINVAL, "classification: the training sample has %d class(es); need 2 or more", K);
        free(map); free(inv);
        return rc;
    }
    float *xs = malloc((size_t)m * dim * sizeof *xs);
    int *ys = xmalloc((size_t)m * sizeof *ys), *pred = xmalloc((size_t)(n_test > 0 ? n_test : 1) * sizeof *pred);
    if (!xs) { free(map); free(inv); free(ys); free(pred); return am_error(AM_ENOMEM, "classification: %d x %d train copy", m, dim); }
    for (int t = 0; t < m; t++) {
        memcpy(xs + (size_t)t * dim, train_x + (size_t)sel[t] * dim, (size_t)dim * sizeof *xs);
        ys[t] = map[train_y[sel[t]]];
    }
    LogReg lr;
    rc = logreg_fit(&lr, xs, ys, m, dim, K, o->C, o->max_iter, o->tol, o->sklearn);
    if (rc == AM_OK) {
        logreg_predict(&lr, test_x, n_test, pred);
        for (int i = 0; i < n_test; i++) pred[i] = inv[pred[i]];
        if (correct)
            for (int i = 0; i < n_test; i++) correct[i] = pred[i] == test_y[i];
        LabelMetrics lm;
        rc = metric_labels(&lm, test_y, pred, n_test, n_labels);
        if (rc == AM_OK) {
            s->accuracy = lm.accuracy;
            s->f1 = lm.f1; s->f1_weighted = lm.f1_weighted;
            s->precision = lm.precision; s->precision_weighted = lm.precision_weighted;
            s->recall = lm.recall; s->recall_weighted = lm.recall_weighted;
            /* MTEB: AP of the hard predictions when the test set has exactly two labels
             * (the larger one positive, = sklearn's pos_label 1 for 0/1 labels) */
            int lo = -1, hi = -1, nuniq = 0;
            for (int i = 0; i < n_test; i++) {
                int v = test_y[i];
                if (nuniq == 0) { lo = hi = v; nuniq = 1; }
                else if (v != lo && v != hi) {
                    if (nuniq == 1) { if (v < lo) lo = v; else hi = v; nuniq = 2; }
                    else { nuniq = 3; break; }
                }
            }
            s->ap = s->ap_weighted = NAN;
            if (nuniq == 2) {
                double *sc = xmalloc((size_t)n_test * sizeof *sc);
                int *bl = xmalloc((size_t)n_test * sizeof *bl);
                for (int i = 0; i < n_test; i++) { sc[i] = pred[i]; bl[i] = test_y[i] == hi; }
                s->ap = s->ap_weighted = metric_average_precision(sc, bl, n_test);
                free(sc); free(bl);
            }
        }
    }
    logreg_free(&lr);
    free(map); free(inv); free(xs); free(ys); free(pred);
    return rc;
}

int eval_classification(ClassifScores *out, const float *train_x, const int *train_y, int n_train,
                        const float *test_x, const int *test_y, int n_test, int dim, int n_labels,
                        const ClassifOptions *opt) {
    ClassifOptions def;
    classif_options_default(&def);
    const ClassifOptions *o = opt ? opt : &def;
    memset(out, 0, sizeof *out);
    if (n_train < 2 || n_test < 1 || dim < 1 || n_labels < 2 || o->n_experiments < 1)
        return am_error(AM_EINVAL, "eval_classification: n_train=%d n_test=%d dim=%d n_labels=%d n_experiments=%d",
                        n_train, n_test, dim, n_labels, o->n_experiments);
    for (int i = 0; i < n_train; i++)
        if (train_y[i] < 0 || train_y[i] >= n_labels)
            return am_error(AM_EINVAL, "eval_classification: train label %d at %d outside [0, %d)", train_y[i], i, n_labels);
    for (int i = 0; i < n_test; i++)
        if (test_y[i] < 0 || test_y[i] >= n_labels)
            return am_error(AM_EINVAL, "eval_classification: test label %d at %d outside [0, %d)", test_y[i], i, n_labels);
    int *idxs = xmalloc((size_t)n_train * sizeof *idxs), *sel = xmalloc((size_t)n_train * sizeof *sel);
    for (int i = 0; i < n_train; i++) idxs[i] = i;
    unsigned char *correct = o->per_example ? xcalloc((size_t)n_test, 1) : NULL;
    if (o->per_example) memset(o->per_example, 0, (size_t)n_test * sizeof *o->per_example);
    int rc = AM_OK, nap = 0;
    ClassifScores s = { 0 };
    for (int e = 0; e < o->n_experiments; e++) {
        if (o->samples_per_label > 0 || e == 0) {
            int m = n_train;
            if (o->samples_per_label > 0) m = classif_undersample(sel, idxs, train_y, n_train, n_labels, o->samples_per_label, o->seed);
            else memcpy(sel, idxs, (size_t)n_train * sizeof *sel);
            if ((rc = classif_run(&s, train_x, train_y, sel, m, test_x, test_y, n_test, dim, n_labels, o, correct))) break;
        }
        if (correct)
            for (int i = 0; i < n_test; i++) o->per_example[i] += correct[i] / (double)o->n_experiments;
        out->accuracy += s.accuracy;
        out->f1 += s.f1; out->f1_weighted += s.f1_weighted;
        out->precision += s.precision; out->precision_weighted += s.precision_weighted;
        out->recall += s.recall; out->recall_weighted += s.recall_weighted;
        if (!isnan(s.ap)) { out->ap += s.ap; out->ap_weighted += s.ap_weighted; nap++; }
    }
    free(idxs); free(sel); free(correct);
    if (rc) { memset(out, 0, sizeof *out); return rc; }
    double ne = o->n_experiments;
    out->accuracy /= ne; out->f1 /= ne; out->f1_weighted /= ne;
    out->precision /= ne; out->precision_weighted /= ne; out->recall /= ne; out->recall_weighted /= ne;
    if (nap) { out->ap /= nap; out->ap_weighted /= nap; } else out->ap = out->ap_weighted = NAN;
    out->n_experiments = o->n_experiments;
    out->main_score = out->accuracy;
    return AM_OK;
}
