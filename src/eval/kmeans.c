/* kmeans.c - scikit-learn's MiniBatchKMeans (1.4, or 1.2 as an option), step for step, and MTEB's clustering protocol
 * (see metrics.h).
 *
 * fit(X (N, D)), rs = RandomState(seed):
 *   B = min(batch_size, N); init_size = min(max(3B, 3k if 3B < k), N)
 *   validation draw: rs.randint(0, N, init_size)            (only used to pick among n_init=1)
 *   init subset:     rs.randint(0, N, init_size) if init_size < N, else all of X
 *   k-means++ on the subset: first center rs.choice(ns, p = unit weights / ns) (1.4; 1.2:
 *     rs.randint(ns)); then for every next center
 *     2 + ln k candidates at rs.uniform()·potential in the cumulative D² table (searchsorted),
 *     keep the candidate with the smallest new potential
 *   for step in 0 .. 100·N/B − 1:
 *     batch = rs.randint(0, N, B); reassign = (some count is 0) or (B·steps since last >= 10k)
 *     labels = argmin_c (||c||² − 2 x·c) (float32 gemm as sklearn); every center becomes the
 *     running mean of all points it was ever given (per-center counts);
 *     if reassign: centers with count < 0.01·max count move to distinct random batch points
 *       (rs.permutation(B)[:m]) and get the smallest remaining count
 *     EWA of batch inertia / B (alpha = 2B/(N+1)); stop after 10 steps without a new minimum
 *   labels_ = nearest center of every point.
 * Arithmetic follows sklearn where it decides anything: k-means++ distances as
 * _euclidean_distances_upcast (float64 gemm, stored as float32), assignment by a float32 gemm,
 * inertia terms as _euclidean_dense_dense (float32). Center updates are in double (sklearn:
 * float32) and BLAS summation orders differ, so a near-tie can still resolve the other way and
 * the runs then diverge; with the same random draws they match sklearn 1.2's labels exactly on
 * the fixture (tests/ref/eval).
 */
#include "metrics.h"
#include "am_base.h"
#include "tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { ASSIGN_CHUNK = 1024 };

/* ||a − b||² as sklearn's _euclidean_dense_dense: float32, four terms per step, no FMA. */
__attribute__((optimize("fp-contract=off")))
static float sqdist_f32(const float *a, const float *b, int n) {
    float r = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4)
        r += ((a[i] - b[i]) * (a[i] - b[i]) + (a[i + 1] - b[i + 1]) * (a[i + 1] - b[i + 1]) +
              (a[i + 2] - b[i + 2]) * (a[i + 2] - b[i + 2]) + (a[i + 3] - b[i + 3]) * (a[i + 3] - b[i + 3]));
    for (; i < n; i++) r += (a[i] - b[i]) * (a[i] - b[i]);
    return r;
}

/* Nearest center of each of the nb rows of xb (row stride dim); lab (nb) OUT; returns the
 * inertia Σ ||x − c||² (float32 terms as sklearn's _inertia_dense, summed in double).
 * D is scratch (ASSIGN_CHUNK, k). */
static double assign_rows(int *lab, const float *xb, int nb, const float *cf, const float *csq,
                          int k, int dim, float *D) {
    double inertia = 0;
    for (int r0 = 0; r0 < nb; r0 += ASSIGN_CHUNK) {
        int nr = nb - r0 < ASSIGN_CHUNK ? nb - r0 : ASSIGN_CHUNK;
        /* D = ||c||² − 2 x·cᵀ in float32, as sklearn's _update_chunk_dense */
        for (int i = 0; i < nr; i++) memcpy(D + (size_t)i * k, csq, (size_t)k * sizeof *D);
        blas_gemm_nt(D, k, xb + (size_t)r0 * dim, dim, cf, dim, nr, k, dim, -2.0f, 1.0f);
        for (int i = 0; i < nr; i++) {
            const float *row = D + (size_t)i * k;
            int best = 0;
            for (int c = 1; c < k; c++) if (row[c] < row[best]) best = c;
            lab[r0 + i] = best;
            inertia += (double)sqdist_f32(xb + (size_t)(r0 + i) * dim, cf + (size_t)best * dim, dim);
        }
    }
    return inertia;
}

static void sync_centers(float *cf, float *csq, const double *cd, int k, int dim) {
    for (int c = 0; c < k; c++) {
        float s = 0;
        for (int j = 0; j < dim; j++) {
            float v = (float)cd[(size_t)c * dim + j];
            cf[(size_t)c * dim + j] = v;
            s += v * v;
        }
        csq[c] = s;
    }
}

static uint32_t randint(AmMt *rs, int n) { return mt_interval(rs, (uint32_t)(n - 1)); }

/* Squared distances from m candidate rows cand (indices into sub) to all ns rows of the subset,
 * as sklearn's _euclidean_distances_upcast: in float64, d = −2 c·x + ||c||² + xx (xx the float32
 * squared norms), stored as float32, clipped at 0. out (m, ns). Cm (m, dim), Xc, G scratch. */
static void cand_dists(double *out, const int *cand, int m, const float *x, const int *sub, int ns,
                       int dim, const float *xx, double *Cm, double *Xc, double *G) {
    double cn[16];
    for (int t = 0; t < m; t++) {
        const float *r = x + (size_t)sub[cand[t]] * dim;
        double s = 0;
        for (int j = 0; j < dim; j++) { Cm[(size_t)t * dim + j] = r[j]; s += (double)r[j] * (double)r[j]; }
        cn[t] = s;
    }
    for (int r0 = 0; r0 < ns; r0 += ASSIGN_CHUNK) {
        int nr = ns - r0 < ASSIGN_CHUNK ? ns - r0 : ASSIGN_CHUNK;
        for (int i = 0; i < nr; i++) {
            const float *r = x + (size_t)sub[r0 + i] * dim;
            for (int j = 0; j < dim; j++) Xc[(size_t)i * dim + j] = r[j];
        }
        blas_dgemm_nt(G, nr, Cm, dim, Xc, dim, m, nr, dim, 1.0, 0.0);
        for (int t = 0; t < m; t++)
            for (int i = 0; i < nr; i++) {
                float d = (float)((-2.0 * G[(size_t)t * nr + i] + cn[t]) + (double)xx[r0 + i]);
                out[(size_t)t * ns + r0 + i] = d > 0 ? d : 0.0f;
            }
    }
}

/* sklearn _kmeans_plusplus on the rows sub (ns) of x; writes k center rows into cd. */
static void kmeans_plusplus(double *cd, const float *x, const int *sub, int ns, int dim, int k, AmMt *rs,
                            AmSklearn ver) {
    int trials = 2 + (int)log((double)k);
    if (trials > 16) trials = 16;   /* k > e^14: never in practice */
    double *closest = xmalloc((size_t)ns * sizeof *closest), *cum = xmalloc((size_t)ns * sizeof *cum);
    double *cand_d = xmalloc((size_t)trials * ns * sizeof *cand_d);
    double *Cm = xmalloc((size_t)trials * dim * sizeof *Cm), *Xc = xmalloc((size_t)ASSIGN_CHUNK * dim * sizeof *Xc);
    double *G = xmalloc((size_t)trials * ASSIGN_CHUNK * sizeof *G);
    float *xx = xmalloc((size_t)ns * sizeof *xx);
    int *cand = xmalloc((size_t)trials * sizeof *cand);
    for (int i = 0; i < ns; i++) {   /* row_norms(X, squared=True), float32 */
        const float *r = x + (size_t)sub[i] * dim;
        double s = 0;
        for (int j = 0; j < dim; j++) s += (double)r[j] * (double)r[j];
        xx[i] = (float)s;
    }
    int first;
    if (ver == AM_SKLEARN_1_2) {
        first = (int)randint(rs, ns);   /* sklearn 1.2: rs.randint(ns) */
    } else {
        /* sklearn >= 1.3: rs.choice(ns, p = w / w.sum()) with unit float32 weights: p_i =
         * float32(1 / ns); numpy's legacy choice takes cdf = cumsum(p) in double, cdf /= cdf[-1],
         * one random_sample u, and searchsorted(cdf, u, side='right') */
        double pi = (double)(1.0f / (float)ns), last = 0;
        for (int i = 0; i < ns; i++) last += pi;
        double u = mt_double(rs), acc = 0;
        first = ns - 1;
        for (int i = 0; i < ns; i++) {
            acc += pi;
            if (acc / last > u) { first = i; break; }
        }
    }
    for (int j = 0; j < dim; j++) cd[j] = x[(size_t)sub[first] * dim + j];
    cand_dists(closest, &first, 1, x, sub, ns, dim, xx, Cm, Xc, G);
    double pot = 0;
    for (int i = 0; i < ns; i++) pot += closest[i];
    pot = (float)pot;                 /* float32 .sum() */
    for (int c = 1; c < k; c++) {
        double acc = 0;               /* stable_cumsum: float64 */
        for (int i = 0; i < ns; i++) { acc += closest[i]; cum[i] = acc; }
        for (int t = 0; t < trials; t++) {
            double v = mt_double(rs) * pot;
            int lo = 0, hi = ns;   /* searchsorted left: first i with cum[i] >= v */
            while (lo < hi) { int mid = (lo + hi) / 2; if (cum[mid] < v) lo = mid + 1; else hi = mid; }
            cand[t] = lo < ns ? lo : ns - 1;
        }
        cand_dists(cand_d, cand, trials, x, sub, ns, dim, xx, Cm, Xc, G);
        int best = 0;
        double best_pot = INFINITY;
        for (int t = 0; t < trials; t++) {
            double *dt = cand_d + (size_t)t * ns, s = 0;
            for (int i = 0; i < ns; i++) {
                if (closest[i] < dt[i]) dt[i] = closest[i];
                s += dt[i];
            }
            s = (float)s;
            if (s < best_pot) { best_pot = s; best = t; }
        }
        pot = best_pot;
        memcpy(closest, cand_d + (size_t)best * ns, (size_t)ns * sizeof *closest);
        for (int j = 0; j < dim; j++) cd[(size_t)c * dim + j] = x[(size_t)sub[cand[best]] * dim + j];
    }
    free(closest); free(cum); free(cand_d); free(Cm); free(Xc); free(G); free(xx); free(cand);
}

int kmeans_fit(KMeans *m, int *labels, const float *x, int n, int dim, int k, const KMeansOptions *opt) {
    memset(m, 0, sizeof *m);
    KMeansOptions def = { 512, 100, 42, AM_SKLEARN_1_4 };
    if (!opt) opt = &def;
    if (n < 1 || dim < 1 || k < 1 || k > n || opt->batch_size < 1 || opt->max_iter < 1)
        return am_error(AM_EINVAL, "kmeans_fit: n=%d dim=%d k=%d batch=%d max_iter=%d", n, dim, k, opt->batch_size, opt->max_iter);
    int B = opt->batch_size < n ? opt->batch_size : n;
    int init_size = 3 * B;
    if (init_size < k) init_size = 3 * k;
    if (init_size > n) init_size = n;

    m->k = k; m->dim = dim;
    m->centers = am_alloc_floats((size_t)k * dim);
    double *cd = malloc((size_t)k * dim * sizeof *cd), *cnew = malloc((size_t)k * dim * sizeof *cnew);
    float *xb = am_alloc_floats((size_t)B * dim), *D = am_alloc_floats((size_t)ASSIGN_CHUNK * k);
    float *csq = xmalloc((size_t)k * sizeof *csq);
    double *counts = xcalloc((size_t)k, sizeof *counts), *bsum = xmalloc((size_t)k * dim * sizeof *bsum);
    double *bcnt = xmalloc((size_t)k * sizeof *bcnt);
    int *sub = xmalloc((size_t)init_size * sizeof *sub), *bidx = xmalloc((size_t)B * sizeof *bidx);
    int *blab = xmalloc((size_t)B * sizeof *blab), *perm = xmalloc((size_t)B * sizeof *perm);
    int *lab_all = labels ? labels : malloc((size_t)n * sizeof *lab_all);
    int rc = AM_OK;
    if (!m->centers || !cd || !cnew || !xb || !D || !lab_all) {
        rc = am_error(AM_ENOMEM, "kmeans_fit: k=%d dim=%d", k, dim);
        goto done;
    }
    blas_init();
    AmMt rs;
    mt_seed(&rs, opt->seed);
    for (int t = 0; t < init_size; t++) (void)randint(&rs, n);       /* validation indices */
    if (init_size < n) for (int t = 0; t < init_size; t++) sub[t] = (int)randint(&rs, n);
    else for (int t = 0; t < n; t++) sub[t] = t;
    kmeans_plusplus(cd, x, sub, init_size, dim, k, &rs, opt->sklearn);
    sync_centers(m->centers, csq, cd, k, dim);

    double ewa = 0, ewa_min = 0;
    int have_ewa = 0, have_min = 0, no_improvement = 0;
    long since_reassign = 0;
    long n_steps = ((long)opt->max_iter * n) / B;
    long step;
    for (step = 0; step < n_steps; step++) {
        for (int t = 0; t < B; t++) {
            bidx[t] = (int)randint(&rs, n);
            memcpy(xb + (size_t)t * dim, x + (size_t)bidx[t] * dim, (size_t)dim * sizeof *xb);
        }
        /* _random_reassign() is evaluated before the step */
        int reassign = 0;
        since_reassign += B;
        for (int c = 0; c < k; c++) if (counts[c] == 0) reassign = 1;
        if (reassign || since_reassign >= 10L * k) { since_reassign = 0; reassign = 1; }

        double inertia = assign_rows(blab, xb, B, m->centers, csq, k, dim, D);
        /* running-mean update (_minibatch_update_dense) */
        memset(bsum, 0, (size_t)k * dim * sizeof *bsum);
        memset(bcnt, 0, (size_t)k * sizeof *bcnt);
        for (int t = 0; t < B; t++) {
            double *s = bsum + (size_t)blab[t] * dim;
            const float *r = xb + (size_t)t * dim;
            for (int j = 0; j < dim; j++) s[j] += (double)r[j];
            bcnt[blab[t]] += 1;
        }
        for (int c = 0; c < k; c++) {
            double *o = cnew + (size_t)c * dim;
            const double *old = cd + (size_t)c * dim;
            if (bcnt[c] > 0) {
                double ws = counts[c] + bcnt[c];
                for (int j = 0; j < dim; j++) o[j] = (old[j] * counts[c] + bsum[(size_t)c * dim + j]) / ws;
                counts[c] = ws;
            } else {
                memcpy(o, old, (size_t)dim * sizeof *o);
            }
        }
        if (reassign) {
            double mx = 0;
            for (int c = 0; c < k; c++) if (counts[c] > mx) mx = counts[c];
            int nre = 0;
            for (int c = 0; c < k; c++) bcnt[c] = counts[c] < 0.01 * mx;   /* bcnt reused as mask */
            for (int c = 0; c < k; c++) nre += bcnt[c] != 0;
            if (nre > (int)(0.5 * B)) {
                /* keep only the (0.5 B) smallest counts: argsort(counts)[int(0.5 B):] stay */
                int *ord = xmalloc((size_t)k * sizeof *ord);
                for (int c = 0; c < k; c++) ord[c] = c;
                for (int a = 1; a < k; a++) {   /* stable insertion sort by count */
                    int v = ord[a], b = a - 1;
                    while (b >= 0 && counts[ord[b]] > counts[v]) { ord[b + 1] = ord[b]; b--; }
                    ord[b + 1] = v;
                }
                for (int t = (int)(0.5 * B); t < k; t++) bcnt[ord[t]] = 0;
                free(ord);
                nre = 0;
                for (int c = 0; c < k; c++) nre += bcnt[c] != 0;
            }
            if (nre > 0) {
                for (int t = 0; t < B; t++) perm[t] = t;
                mt_shuffle(&rs, perm, B);   /* rs.choice(B, replace=False, size=nre) */
                double mn = INFINITY;
                for (int c = 0; c < k; c++) if (!bcnt[c] && counts[c] < mn) mn = counts[c];
                int t = 0;
                for (int c = 0; c < k; c++) {
                    if (!bcnt[c]) continue;
                    const float *r = xb + (size_t)perm[t++] * dim;
                    for (int j = 0; j < dim; j++) cnew[(size_t)c * dim + j] = r[j];
                    counts[c] = mn;
                }
            }
        }
        double *tmp = cd; cd = cnew; cnew = tmp;
        sync_centers(m->centers, csq, cd, k, dim);
        /* _mini_batch_convergence */
        double bi = inertia / B;
        if (step == 0) continue;
        if (!have_ewa) { ewa = bi; have_ewa = 1; }
        else {
            double alpha = B * 2.0 / (n + 1.0);
            if (alpha > 1) alpha = 1;
            ewa = ewa * (1 - alpha) + bi * alpha;
        }
        if (!have_min || ewa < ewa_min) { no_improvement = 0; ewa_min = ewa; have_min = 1; }
        else no_improvement++;
        if (no_improvement >= 10) { step++; break; }
    }
    m->n_steps = (int)step;
    m->inertia = assign_rows(lab_all, x, n, m->centers, csq, k, dim, D);
done:
    free(cd); free(cnew); am_free_aligned(xb); am_free_aligned(D); free(csq); free(counts);
    free(bsum); free(bcnt); free(sub); free(bidx); free(blab); free(perm);
    if (lab_all != labels) free(lab_all);
    if (rc) kmeans_free(m);
    return rc;
}

void kmeans_free(KMeans *m) {
    am_free_aligned(m->centers);
    m->centers = NULL;
}

/* ------------------------------------------------------------------ MTEB clustering */

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

void cluster_options_default(ClusterOptions *o) {
    memset(o, 0, sizeof *o);
    o->n_experiments = 10;
    o->sample_size = 16384;
    o->batch_size = 512;
    o->seed = 42;
    o->sklearn = AM_SKLEARN_1_4;
}

int eval_clustering(ClusterScores *out, const float *x, const int *labels, int n, int dim,
                    const ClusterOptions *opt) {
    ClusterOptions def;
    cluster_options_default(&def);
    const ClusterOptions *o = opt ? opt : &def;
    memset(out, 0, sizeof *out);
    if (n < 1 || dim < 1 || o->n_experiments < 1 || o->batch_size < 1)
        return am_error(AM_EINVAL, "eval_clustering: n=%d dim=%d n_experiments=%d batch=%d", n, dim, o->n_experiments, o->batch_size);
    /* k = number of distinct labels */
    int *sorted = xmalloc((size_t)n * sizeof *sorted);
    memcpy(sorted, labels, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_int);
    int k = n > 0;
    for (int i = 1; i < n; i++) k += sorted[i] != sorted[i - 1];
    free(sorted);

    int ns = o->sample_size > 0 ? o->sample_size : n;
    if (k > ns) return am_error(AM_EINVAL, "eval_clustering: %d labels but only %d points per experiment", k, ns);
    float *xs = NULL;
    int *idx = xmalloc((size_t)ns * sizeof *idx), *ls = xmalloc((size_t)ns * sizeof *ls),
        *pred = xmalloc((size_t)ns * sizeof *pred);
    if (o->sample_size > 0) {
        xs = am_alloc_floats((size_t)ns * dim);
        if (!xs) { free(idx); free(ls); free(pred); return am_error(AM_ENOMEM, "eval_clustering: %d x %d sample", ns, dim); }
    }
    AmMt py;
    mt_seed_python(&py, o->seed);
    double *v = xmalloc((size_t)o->n_experiments * sizeof *v);
    int rc = AM_OK;
    for (int e = 0; e < o->n_experiments && rc == AM_OK; e++) {
        const float *xe = x;
        const int *le = labels;
        KMeansOptions ko = { o->batch_size, 100, o->seed, o->sklearn };
        if (o->sample_size > 0) {
            mt_choices_python(&py, idx, ns, n);
            for (int t = 0; t < ns; t++) {
                memcpy(xs + (size_t)t * dim, x + (size_t)idx[t] * dim, (size_t)dim * sizeof *xs);
                ls[t] = labels[idx[t]];
            }
            xe = xs; le = ls;
        } else {
            ko.seed = o->seed + (uint32_t)e;
        }
        KMeans km;
        rc = kmeans_fit(&km, pred, xe, ns, dim, k, &ko);
        kmeans_free(&km);
        if (rc == AM_OK) v[e] = metric_v_measure(le, pred, ns, NULL, NULL);
    }
    if (rc == AM_OK) {
        double s = 0, s2 = 0;
        for (int e = 0; e < o->n_experiments; e++) s += v[e];
        double mean = s / o->n_experiments;
        for (int e = 0; e < o->n_experiments; e++) s2 += (v[e] - mean) * (v[e] - mean);
        if (o->per_experiment) memcpy(o->per_experiment, v, (size_t)o->n_experiments * sizeof *v);
        out->v_measure = mean;
        out->v_measure_std = sqrt(s2 / o->n_experiments);
        out->n_experiments = o->n_experiments;
        out->main_score = mean;
    }
    am_free_aligned(xs); free(idx); free(ls); free(pred); free(v);
    return rc;
}
