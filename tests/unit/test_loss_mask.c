/* test_loss_mask.c - padded candidates (LossInput.cand): a batch whose queries have different numbers
 * of positives / hard negatives is padded to P and K with masked rows (am.train's n_pos / n_neg).
 * InfoNCE (avg, lse, symmetric) against a brute-force reference over the real rows only; padded
 * rows change nothing and get no gradient; the KL of 2D Matryoshka ignores them too. */
#include "harness.h"
#include "am_base.h"
#include "loss.h"
#include "tensor.h"

#include <stdint.h>

enum { N = 3, P = 2, K = 3, D = 8, R = N * (1 + P + K) };

/* query 0: negatives 1, 2 padded; query 1: positive 1 padded; query 2: every negative padded */
static const uint8_t CAND[N * P + N * K] = {
    1, 1, 1, 0, 1, 1,          /* positives p_{i,j} at i*P + j */
    1, 0, 0, 1, 1, 1, 0, 0, 0, /* negatives neg_{i,k} at N*P + i*K + k */
};

static void fill(float *e, uint64_t seed) {
    for (int i = 0; i < R * D; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        e[i] = (float)((double)(seed >> 11) / 9007199254740992.0 - 0.5);
    }
}

static double cosv(const float *a, const float *b) {
    double ab = 0, aa = 0, bb = 0;
    for (int c = 0; c < D; c++) ab += (double)a[c] * (double)b[c], aa += (double)a[c] * (double)a[c], bb += (double)b[c] * (double)b[c];
    return ab / (sqrt(aa) * sqrt(bb));
}

static const float *row(const float *e, int r) { return e + (size_t)r * D; }
static int pos_row(int i, int j) { return N + i * P + j; }
static int neg_row(int i, int k) { return N + N * P + i * K + k; }
static int pos_real(int i, int j) { return CAND[i * P + j]; }
static int neg_real(int i, int k) { return CAND[N * P + i * K + k]; }

/* brute force over the real rows: mode 0 avg, 1 lse, 2 avg + symmetric */
static double reference(const float *e, double s, int mode) {
    double loss = 0, lb = 0;
    int cnt = 0;
    for (int i = 0; i < N; i++) {
        if (mode == 1) {
            double all = 0, own = 0;
            for (int a = 0; a < N; a++)
                for (int j = 0; j < P; j++)
                    if (pos_real(a, j)) {
                        double x = exp(s * cosv(row(e, i), row(e, pos_row(a, j))));
                        all += x;
                        if (a == i) own += x;
                    }
            for (int a = 0; a < N; a++)
                for (int k = 0; k < K; k++)
                    if (neg_real(a, k)) all += exp(s * cosv(row(e, i), row(e, neg_row(a, k))));
            loss += log(all) - log(own);
            cnt++;
            continue;
        }
        for (int j = 0; j < P; j++) {
            if (!pos_real(i, j)) continue;
            double z = 0;
            for (int a = 0; a < N; a++)
                if (pos_real(a, j)) z += exp(s * cosv(row(e, i), row(e, pos_row(a, j))));
            for (int a = 0; a < N; a++)
                for (int k = 0; k < K; k++)
                    if (neg_real(a, k)) z += exp(s * cosv(row(e, i), row(e, neg_row(a, k))));
            loss += log(z) - s * cosv(row(e, i), row(e, pos_row(i, j)));
            double zb = 0;
            for (int a = 0; a < N; a++) zb += exp(s * cosv(row(e, a), row(e, pos_row(i, j))));
            lb += log(zb) - s * cosv(row(e, i), row(e, pos_row(i, j)));
            cnt++;
        }
    }
    return mode == 2 ? 0.5 * (loss + lb) / cnt : loss / cnt;
}

static InfoNCEOptions opts(int mode) {
    LossSpec s;
    loss_spec_default(&s, AM_LOSS_INFONCE);
    s.infonce.multi_pos = mode == 1 ? AM_MULTIPOS_LSE : AM_MULTIPOS_AVG;
    s.infonce.symmetric = mode == 2;
    return s.infonce;
}

TEST(infonce_masks_padded_candidates) {
    static float e[R * D], e2[R * D], g[R * D], g2[R * D];
    fill(e, 7);
    for (int mode = 0; mode < 3; mode++) {
        InfoNCEOptions o = opts(mode);
        LossInput in = { e, D, D, N, P, K, NULL, CAND };
        double got = infonce_forward(&in, &o);
        CHECKF(fabs(got - reference(e, o.scale, mode)) < 1e-6, "mode %d: %.9g vs reference %.9g", mode, got,
               reference(e, o.scale, mode));
        LossInput unmasked = in;
        unmasked.cand = NULL;
        CHECKF(fabs(infonce_forward(&unmasked, &o) - got) > 1e-3, "mode %d: the mask changes the loss", mode);
        /* padding rows: any content, same loss, same gradients elsewhere, none on them */
        memcpy(e2, e, sizeof e);
        for (int c = 0; c < N * P + N * K; c++)
            if (!CAND[c])
                for (int f = 0; f < D; f++) e2[(size_t)(N + c) * D + f] = 100.0f * (float)(f + c) - 3.0f;
        LossInput in2 = in;
        in2.emb = e2;
        CHECK_NEAR(infonce_forward(&in2, &o), got, 1e-9);
        memset(g, 0, sizeof g);
        memset(g2, 0, sizeof g2);
        infonce_backward(g, &in, &o, 1.0);
        infonce_backward(g2, &in2, &o, 1.0);
        double md = 0, mpad = 0;
        for (int r = 0; r < R; r++)
            for (int f = 0; f < D; f++) {
                double a = g[r * D + f], b = g2[r * D + f];
                if (r >= N && !CAND[r - N]) mpad = fmax(mpad, fmax(fabs(a), fabs(b)));
                else md = fmax(md, fabs(a - b));
            }
        CHECKF(md < 1e-6 && mpad == 0, "mode %d: gradients differ by %g, on padding %g", mode, md, mpad);
        /* finite differences on a real row */
        const int rr = neg_row(1, 2), f = 3;
        const double h = 1e-3;
        float keep = e[rr * D + f];
        e[rr * D + f] = keep + (float)h;
        double lp = infonce_forward(&in, &o);
        e[rr * D + f] = keep - (float)h;
        double lm = infonce_forward(&in, &o);
        e[rr * D + f] = keep;
        CHECK_NEAR(g[rr * D + f], (lp - lm) / (2 * h), 2e-3);
    }
}

TEST(kl_ignores_padding) {
    static float e[R * D], e2[R * D], t[R * D], t2[R * D], g[R * D], gt[R * D];
    fill(e, 11);
    fill(t, 13);
    memcpy(e2, e, sizeof e);
    memcpy(t2, t, sizeof t);
    for (int c = 0; c < N * P + N * K; c++)
        if (!CAND[c])
            for (int f = 0; f < D; f++) {
                e2[(size_t)(N + c) * D + f] = (float)(f * c) - 1.5f;
                t2[(size_t)(N + c) * D + f] = 2.0f - (float)(f + c);
            }
    for (int mode = AM_KL_SCORES; mode <= AM_KL_EMBEDDINGS; mode++) {
        LossInput te = { t, D, D, N, P, K, NULL, CAND }, st = te, te2 = te, st2 = te;
        st.dim = st2.dim = D / 2;
        st.emb = e;
        te2.emb = t2;
        st2.emb = e2;
        KLOptions o = { .mode = mode, .weight = 1, .temperature = 0.05f, .normalize = 1 }; /* teacher attached */
        double a = kl_forward(&te, &st, AM_SIM_COS, &o), b = kl_forward(&te2, &st2, AM_SIM_COS, &o);
        CHECKF(fabs(a - b) < 1e-9 && a > 0, "mode %d: %.9g vs %.9g with other padding", mode, a, b);
        memset(g, 0, sizeof g);
        memset(gt, 0, sizeof gt);
        kl_backward(gt, g, &te2, &st2, AM_SIM_COS, &o, 1.0);
        double mpad = 0;
        for (int c = 0; c < N * P + N * K; c++)
            if (!CAND[c])
                for (int f = 0; f < D; f++)
                    mpad = fmax(mpad, fmax(fabs(g[(size_t)(N + c) * D + f]), fabs(gt[(size_t)(N + c) * D + f])));
        CHECKF(mpad == 0, "mode %d: gradient %g on padding", mode, mpad);
    }
}

int main(void) {
    am_parallel_set_threads(1);
    blas_init();
    RUN(infonce_masks_padded_candidates);
    RUN(kl_ignores_padding);
    return test_report();
}
