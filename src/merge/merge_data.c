/* merge_data.c - data-driven merges from statistics (see merge_data.h). */
#include "merge_data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "am_base.h"
#include "tensor.h"

static int check_models(const ParamTable *tab, int k, const float *const *models, const float *base) {
    for (int m = -1; m < k; m++) {
        const float *x = m < 0 ? base : models[m];
        if (m < 0 && !base) continue;
        if (!x) return am_error(AM_EINVAL, "merge: model %d is NULL", m + 1);
        for (int i = 0; i < tab->n; i++) {
            const ParamInfo *p = &tab->t[i];
            for (size_t j = 0; j < p->numel; j++)
                if (!isfinite(x[p->offset + j]))
                    return am_error(AM_EFORMAT, "merge: %s has a %s in %s (element %zu)",
                                    m < 0 ? "the base" : "a model", isnan(x[p->offset + j]) ? "NaN" : "Inf", p->name, j);
        }
    }
    return AM_OK;
}

static int check_weights(const double *w, int k) {
    if (!w) return AM_OK;
    double s = 0;
    for (int m = 0; m < k; m++) {
        if (!isfinite(w[m]) || w[m] < 0) return am_error(AM_EINVAL, "merge: weight %d is %g (finite, ≥ 0)", m + 1, w[m]);
        s += w[m];
    }
    if (s <= 0) return am_error(AM_EINVAL, "merge: the weights are all zero");
    return AM_OK;
}

static double wt(const double *w, int m) { return w ? w[m] : 1.0; }

/* ------------------------------------------------------------------ Fisher */

int merge_fisher_norm_from_name(const char *name, MergeFisherNorm *n) {
    static const char *const names[] = { "none", "param", "model" };
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, names[i]) == 0) { *n = (MergeFisherNorm)i; return AM_OK; }
    return am_error(AM_EINVAL, "fisher: unknown normalize '%s' (none, param or model)", name ? name : "(null)");
}

/* c[m] = (1 / (norm_m + eps)) / Σ_j 1 / (norm_j + eps) */
static void fisher_norm_coeff(const double *norm, int k, double eps, double *c) {
    double s = 0;
    for (int m = 0; m < k; m++) s += c[m] = 1.0 / (norm[m] + eps);
    for (int m = 0; m < k; m++) c[m] = s > 0 && isfinite(s) ? c[m] / s : 1.0 / k;
}

int merge_fisher_normalized(const ParamTable *tab, int k, const float *const *models, const float *const *fisher,
                            const double *weights, double eps, MergeFisherNorm norm, float *out) {
    if (k < 1) return am_error(AM_EINVAL, "fisher: needs at least 1 model, got %d", k);
    if (k > 64) return am_error(AM_EINVAL, "fisher: at most 64 models, got %d", k);
    if (!(eps >= 0) || !isfinite(eps)) return am_error(AM_EINVAL, "fisher: epsilon must be ≥ 0, got %g", eps);
    if (norm < MERGE_FISHER_NORM_NONE || norm > MERGE_FISHER_NORM_MODEL) return am_error(AM_EINVAL, "fisher: unknown normalize %d", (int)norm);
    int rc;
    if ((rc = check_weights(weights, k)) || (rc = check_models(tab, k, models, NULL))) return rc;
    for (int m = 0; m < k; m++) {
        if (!fisher[m]) return am_error(AM_EINVAL, "fisher: model %d has no Fisher diagonal", m + 1);
        for (size_t j = 0; j < tab->total; j++)
            if (!(fisher[m][j] >= 0) || !isfinite(fisher[m][j])) {
                const char *nm = "?";
                for (int i = 0; i < tab->n; i++)
                    if (j >= tab->t[i].offset && j < tab->t[i].offset + tab->t[i].numel) nm = tab->t[i].name;
                return am_error(AM_EINVAL, "fisher: model %d's Fisher is %g in %s (finite, ≥ 0)", m + 1,
                                (double)fisher[m][j], nm);
            }
    }
    double w[64], c[64], nrm[64];
    for (int m = 0; m < k; m++) w[m] = wt(weights, m);
    if (norm == MERGE_FISHER_NORM_MODEL) {
        for (int m = 0; m < k; m++) {
            double ss = 0;
            for (size_t j = 0; j < tab->total; j++) ss += (double)fisher[m][j] * (double)fisher[m][j];
            nrm[m] = sqrt(ss);
        }
        fisher_norm_coeff(nrm, k, eps, c);
        for (int m = 0; m < k; m++) w[m] *= c[m];
    }
    for (int i = 0; i < tab->n; i++) {
        const ParamInfo *p = &tab->t[i];
        double wi[64];
        memcpy(wi, w, (size_t)k * sizeof(double));
        if (norm == MERGE_FISHER_NORM_PARAM) {
            for (int m = 0; m < k; m++) {
                double ss = 0;
                for (size_t j = p->offset; j < p->offset + p->numel; j++) ss += (double)fisher[m][j] * (double)fisher[m][j];
                nrm[m] = sqrt(ss);
            }
            fisher_norm_coeff(nrm, k, eps, c);
            for (int m = 0; m < k; m++) wi[m] *= c[m];
        }
        for (size_t j = p->offset; j < p->offset + p->numel; j++) {
            double num = 0, den = 0;
            for (int m = 0; m < k; m++) {
                double f = wi[m] * ((double)fisher[m][j] + eps);
                num += f * (double)models[m][j];
                den += f;
            }
            if (den > 0) out[j] = (float)(num / den);
            else { /* eps = 0 and no Fisher mass: the weighted mean */
                double s = 0, ws = 0;
                for (int m = 0; m < k; m++) { s += wi[m] * (double)models[m][j]; ws += wi[m]; }
                out[j] = (float)(ws > 0 ? s / ws : (double)models[0][j]);
            }
        }
    }
    return AM_OK;
}

int merge_fisher(const ParamTable *tab, int k, const float *const *models, const float *const *fisher,
                 const double *weights, double eps, float *out) {
    return merge_fisher_normalized(tab, k, models, fisher, weights, eps, MERGE_FISHER_NORM_NONE, out);
}

/* ------------------------------------------------------------------ RegMean */

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int merge_linear_tensors(const ParamTable *tab, int *idx, int cap) {
    static const char *const lin[] = { ".attention.self.query.weight", ".attention.self.key.weight",
                                       ".attention.self.value.weight", ".attention.output.dense.weight",
                                       ".intermediate.dense.weight", ".output.dense.weight" };
    int n = 0;
    for (int i = 0; i < tab->n && n < cap; i++) {
        const ParamInfo *p = &tab->t[i];
        if (p->ndim != 2) continue;
        int hit = strcmp(p->name, "pooler.dense.weight") == 0;
        if (strncmp(p->name, "encoder.layer.", 14) == 0)
            for (size_t j = 0; j < sizeof lin / sizeof *lin && !hit; j++) hit = ends_with(p->name, lin[j]);
        if (hit) idx[n++] = i;
    }
    return n;
}

int merge_regmean(const ParamTable *tab, int k, const float *const *models, int n_lin, const int *lin,
                  const double *const *grams, double alpha, const double *weights, float *out) {
    if (k < 1) return am_error(AM_EINVAL, "regmean: needs at least 1 model, got %d", k);
    if (!(alpha >= 0 && alpha <= 1)) return am_error(AM_EINVAL, "regmean: alpha must be in [0, 1], got %g", alpha);
    int rc;
    if ((rc = check_weights(weights, k)) || (rc = check_models(tab, k, models, NULL))) return rc;
    uint8_t *is_lin = xcalloc((size_t)tab->n, 1);
    for (int j = 0; j < n_lin; j++) {
        if (lin[j] < 0 || lin[j] >= tab->n || tab->t[lin[j]].ndim != 2) {
            free(is_lin);
            return am_error(AM_EINVAL, "regmean: linear %d is not a 2-D tensor of the table", j);
        }
        is_lin[lin[j]] = 1;
        for (int m = 0; m < k; m++) {
            const double *G = grams[(size_t)m * n_lin + j];
            const size_t in = (size_t)tab->t[lin[j]].shape[1];
            if (!G) { free(is_lin); return am_error(AM_ESHAPE, "regmean: model %d has no Gram for %s", m + 1, tab->t[lin[j]].name); }
            for (size_t e = 0; e < in * in; e++)
                if (!isfinite(G[e])) {
                    free(is_lin);
                    return am_error(AM_EINVAL, "regmean: model %d's Gram of %s is not finite", m + 1, tab->t[lin[j]].name);
                }
        }
    }
    double ws = 0;
    for (int m = 0; m < k; m++) ws += wt(weights, m);
    for (int i = 0; i < tab->n; i++) { /* every other tensor: the weighted mean */
        if (is_lin[i]) continue;
        const ParamInfo *p = &tab->t[i];
        for (size_t e = 0; e < p->numel; e++) {
            double s = 0;
            for (int m = 0; m < k; m++) s += wt(weights, m) * (double)models[m][p->offset + e];
            out[p->offset + e] = (float)(s / ws);
        }
    }
    free(is_lin);
    for (int j = 0; j < n_lin; j++) {
        const ParamInfo *p = &tab->t[lin[j]];
        const int O = (int)p->shape[0], I = (int)p->shape[1];
        double *A = xcalloc((size_t)I * I, sizeof(double)), *Bm = xcalloc((size_t)I * O, sizeof(double));
        double *Gt = xmalloc((size_t)I * I * sizeof(double));
        for (int m = 0; m < k; m++) {
            const double *G = grams[(size_t)m * n_lin + j];
            const double w = wt(weights, m);
            for (int r = 0; r < I; r++)
                for (int c = 0; c < I; c++) Gt[(size_t)r * I + c] = w * G[(size_t)r * I + c] * (r == c ? 1.0 : alpha);
            for (size_t e = 0; e < (size_t)I * I; e++) A[e] += Gt[e];
            /* Bm (I x O, column-major for LAPACK: Bm[o * I + r]) += G̃ W_mᵀ */
            const float *W = models[m] + p->offset; /* (O, I) row-major */
            for (int o = 0; o < O; o++)
                for (int r = 0; r < I; r++) {
                    double s = 0;
                    const double *g = Gt + (size_t)r * I;
                    const float *wr = W + (size_t)o * I;
                    for (int c = 0; c < I; c++) s += g[c] * (double)wr[c];
                    Bm[(size_t)o * I + r] += s;
                }
        }
        int info = blas_dsolve_sym(A, Bm, I, O);
        const double *X = Bm;
        if (info != 0) {
            /* singular: the weighted mean of this tensor */
            for (size_t e = 0; e < p->numel; e++) {
                double s = 0;
                for (int m = 0; m < k; m++) s += wt(weights, m) * (double)models[m][p->offset + e];
                out[p->offset + e] = (float)(s / ws);
            }
        } else {
            for (int o = 0; o < O; o++)
                for (int r = 0; r < I; r++) out[p->offset + (size_t)o * I + r] = (float)X[(size_t)o * I + r];
        }
        free(A); free(Bm); free(Gt);
    }
    return AM_OK;
}

/* ------------------------------------------------------------------ LM-Cocktail */

int merge_lm_cocktail_weights(const double *loss, int k, double T, double *w) {
    if (k < 1) return am_error(AM_EINVAL, "lm_cocktail: needs at least 1 model, got %d", k);
    if (!(T > 0) || !isfinite(T)) return am_error(AM_EINVAL, "lm_cocktail: temperature must be > 0, got %g", T);
    double mx = -INFINITY;
    for (int m = 0; m < k; m++) {
        if (!isfinite(loss[m])) return am_error(AM_EINVAL, "lm_cocktail: model %d's loss is %g", m + 1, loss[m]);
        if (-loss[m] / T > mx) mx = -loss[m] / T;
    }
    double s = 0;
    for (int m = 0; m < k; m++) s += (w[m] = exp(-loss[m] / T - mx));
    for (int m = 0; m < k; m++) w[m] /= s;
    return AM_OK;
}

/* ------------------------------------------------------------------ CoDiEmb fusion */

int merge_fusion_g_from_name(const char *name, MergeFusionG *g) {
    static const char *const n[] = { "abs", "square", "softmax" };
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, n[i]) == 0) { *g = (MergeFusionG)i; return AM_OK; }
    return am_error(AM_EINVAL, "codiemb_fusion: unknown g '%s' (known: abs, square, softmax)", name ? name : "");
}

int merge_fusion_axis_from_name(const char *name, MergeFusionAxis *a) {
    static const char *const n[] = { "element", "row", "tensor" };
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, n[i]) == 0) { *a = (MergeFusionAxis)i; return AM_OK; }
    return am_error(AM_EINVAL, "codiemb_fusion: unknown axis '%s' (known: element, row, tensor)", name ? name : "");
}

/* ω_c from the scores s_c = mean |δ_c| over the unit */
static void fusion_weights(const double *s, int k, MergeFusionG g, double T, double *w) {
    double sum = 0;
    if (g == MERGE_G_SOFTMAX) {
        double mx = -INFINITY;
        for (int c = 0; c < k; c++) if (s[c] / T > mx) mx = s[c] / T;
        for (int c = 0; c < k; c++) sum += (w[c] = exp(s[c] / T - mx));
    } else {
        for (int c = 0; c < k; c++) sum += (w[c] = g == MERGE_G_SQUARE ? s[c] * s[c] : s[c]);
    }
    for (int c = 0; c < k; c++) w[c] = sum > 0 ? w[c] / sum : 1.0 / k;
}

int merge_codiemb_fusion(const ParamTable *tab, int k, const float *const *models, const float *base,
                         MergeFusionG g, double T, MergeFusionAxis axis, float *out) {
    if (k < 1) return am_error(AM_EINVAL, "codiemb_fusion: needs at least 1 checkpoint, got %d", k);
    if (!base) return am_error(AM_EINVAL, "codiemb_fusion: needs a base (θ0: the deltas are measured from it)");
    if (g == MERGE_G_SOFTMAX && (!(T > 0) || !isfinite(T)))
        return am_error(AM_EINVAL, "codiemb_fusion: temperature must be > 0, got %g", T);
    int rc;
    if ((rc = check_models(tab, k, models, base))) return rc;
    double *s = xmalloc((size_t)k * sizeof(double)), *w = xmalloc((size_t)k * sizeof(double));
    for (int i = 0; i < tab->n; i++) {
        const ParamInfo *p = &tab->t[i];
        size_t unit = axis == MERGE_AXIS_ELEMENT ? 1
                    : axis == MERGE_AXIS_TENSOR || p->ndim < 2 ? p->numel
                    : (size_t)p->shape[p->ndim - 1];
        if (unit == 0) continue;
        for (size_t u0 = 0; u0 < p->numel; u0 += unit) {
            const size_t o = p->offset + u0;
            for (int c = 0; c < k; c++) {
                double a = 0;
                for (size_t e = 0; e < unit; e++) a += fabs((double)models[c][o + e] - (double)base[o + e]);
                s[c] = a / (double)unit;
            }
            fusion_weights(s, k, g, T, w);
            for (size_t e = 0; e < unit; e++) {
                double d = 0;
                for (int c = 0; c < k; c++) d += w[c] * ((double)models[c][o + e] - (double)base[o + e]);
                out[o + e] = (float)((double)base[o + e] + d);
            }
        }
    }
    free(s);
    free(w);
    return AM_OK;
}

/* ------------------------------------------------------------------ Self Positioning */

void merge_sp_config_default(MergeSpConfig *c) {
    memset(c, 0, sizeof *c);
    c->steps = 100;
    c->lr = 5e-3;
    c->adam = 1;
    c->reg = MERGE_SP_REG_UNIFORM;
    c->init = NAN;
}

int merge_sp_groups(const MergeSpConfig *c, int n_layers) { return c->per_layer ? n_layers + 2 : 1; }

int merge_sp_group_of(const char *name, int n_layers) {
    if (strncmp(name, "embeddings.", 11) == 0) return 0;
    if (strncmp(name, "encoder.layer.", 14) == 0) {
        int l = atoi(name + 14);
        if (l >= 0 && l < n_layers) return 1 + l;
    }
    return n_layers + 1;
}

void merge_sp_apply(const ParamTable *tab, int n_layers, int G, int k, const float *base,
                    const float *const *taus, const double *lambda, float *out) {
    for (int i = 0; i < tab->n; i++) {
        const ParamInfo *p = &tab->t[i];
        const int g = G > 1 ? merge_sp_group_of(p->name, n_layers) : 0;
        for (size_t e = p->offset; e < p->offset + p->numel; e++) {
            double v = base[e];
            for (int m = 0; m < k; m++) v += lambda[(size_t)m * G + g] * (double)taus[m][e];
            out[e] = (float)v;
        }
    }
}

void merge_sp_grad(const ParamTable *tab, int n_layers, int G, int k, const float *const *taus,
                   const float *grad, double *dlambda) {
    memset(dlambda, 0, (size_t)k * G * sizeof(double));
    for (int i = 0; i < tab->n; i++) {
        const ParamInfo *p = &tab->t[i];
        const int g = G > 1 ? merge_sp_group_of(p->name, n_layers) : 0;
        for (int m = 0; m < k; m++) {
            double s = 0;
            for (size_t e = p->offset; e < p->offset + p->numel; e++) s += (double)grad[e] * (double)taus[m][e];
            dlambda[(size_t)m * G + g] += s;
        }
    }
}

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

void merge_simplex_project(double *v, int n) {
    /* Duchi et al. 2008: sort, find the threshold θ, clip */
    double *u = xmalloc((size_t)n * sizeof(double));
    memcpy(u, v, (size_t)n * sizeof(double));
    qsort(u, (size_t)n, sizeof(double), cmp_desc);
    double cs = 0, theta = 0;
    for (int j = 0; j < n; j++) {
        cs += u[j];
        double t = (cs - 1.0) / (j + 1);
        if (u[j] - t > 0) theta = t;
    }
    for (int j = 0; j < n; j++) v[j] = v[j] - theta > 0 ? v[j] - theta : 0;
    free(u);
}

void merge_sp_trace_free(MergeSpTrace *t) {
    if (!t) return;
    free(t->lambda);
    free(t->loss);
    memset(t, 0, sizeof *t);
}

int merge_self_position(const MergeSpConfig *c, const ParamTable *tab, int n_layers, int k, const float *base,
                        const float *const *taus, MergeLossGrad fn, void *ud, double *lambda, float *out,
                        MergeSpTrace *trace) {
    if (trace) memset(trace, 0, sizeof *trace);
    if (k < 1) return am_error(AM_EINVAL, "self_positioning: needs at least 1 task vector, got %d", k);
    if (!base) return am_error(AM_EINVAL, "self_positioning: needs a base (θ0)");
    if (c->steps < 0) return am_error(AM_EINVAL, "self_positioning: steps must be ≥ 0, got %d", c->steps);
    if (!(c->lr > 0) || !isfinite(c->lr)) return am_error(AM_EINVAL, "self_positioning: lr must be > 0, got %g", c->lr);
    if (!(c->mu >= 0) || !isfinite(c->mu)) return am_error(AM_EINVAL, "self_positioning: mu must be ≥ 0, got %g", c->mu);
    int rc;
    if ((rc = check_models(tab, k, taus, base))) return rc;
    const int G = merge_sp_groups(c, n_layers), n = k * G;
    const double init = isnan(c->init) ? 1.0 / k : c->init;
    if (!isfinite(init)) return am_error(AM_EINVAL, "self_positioning: init must be finite");
    for (int j = 0; j < n; j++) lambda[j] = init;
    double *d = xcalloc((size_t)n, sizeof(double)), *m1 = xcalloc((size_t)n, sizeof(double));
    double *m2 = xcalloc((size_t)n, sizeof(double)), *col = xmalloc((size_t)k * sizeof(double));
    float *grad = malloc(tab->total * sizeof(float));
    if (!grad) { free(d); free(m1); free(m2); free(col); return am_error(AM_ENOMEM, "self_positioning: no memory for the gradient"); }
    if (trace) {
        trace->steps = c->steps; trace->K = k; trace->G = G;
        trace->lambda = xmalloc((size_t)(c->steps + 1) * n * sizeof(double));
        trace->loss = xmalloc((size_t)(c->steps + 1) * sizeof(double));
    }
    const double t0 = am_now();
    for (int it = 0; it <= c->steps; it++) {
        merge_sp_apply(tab, n_layers, G, k, base, taus, lambda, out);
        double loss = 0;
        if ((rc = fn(ud, out, &loss, grad))) break;
        if (!isfinite(loss)) { rc = am_error(AM_EFORMAT, "self_positioning: the probe loss is %g at step %d", loss, it); break; }
        if (trace) {
            memcpy(trace->lambda + (size_t)it * n, lambda, (size_t)n * sizeof(double));
            trace->loss[it] = loss;
        }
        if (it == c->steps) break;
        merge_sp_grad(tab, n_layers, G, k, taus, grad, d);
        for (int j = 0; j < n; j++) {
            if (c->reg == MERGE_SP_REG_UNIFORM) d[j] += 2 * c->mu * (lambda[j] - 1.0 / k);
            else if (c->reg == MERGE_SP_REG_ZERO) d[j] += 2 * c->mu * lambda[j];
            if (c->adam) {
                m1[j] = 0.9 * m1[j] + 0.1 * d[j];
                m2[j] = 0.999 * m2[j] + 0.001 * d[j] * d[j];
                double mh = m1[j] / (1 - pow(0.9, it + 1)), vh = m2[j] / (1 - pow(0.999, it + 1));
                lambda[j] -= c->lr * mh / (sqrt(vh) + 1e-8);
            } else {
                lambda[j] -= c->lr * d[j];
            }
            if (c->clamp) lambda[j] = fmin(fmax(lambda[j], 0.0), 1.0);
        }
        if (c->simplex)
            for (int g = 0; g < G; g++) {
                for (int m = 0; m < k; m++) col[m] = lambda[(size_t)m * G + g];
                merge_simplex_project(col, k);
                for (int m = 0; m < k; m++) lambda[(size_t)m * G + g] = col[m];
            }
    }
    if (trace) trace->seconds = am_now() - t0;
    free(d); free(m1); free(m2); free(col); free(grad);
    if (rc && trace) merge_sp_trace_free(trace);
    return rc;
}
