/* merge_stats.c - statistics for the data-driven merges (see merge_stats.h). */
#include "merge_stats.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "am_base.h"
#include "tensor.h"

int merge_stats_loss_grad(Trainer *t, const MergeProbe *p, int n, double *loss, float *grad) {
    if (n < 1) return am_error(AM_EINVAL, "merge: no probe batches");
    const Model *m = encoder_model(trainer_encoder(t));
    const size_t N = m->tab.total;
    float *g = NULL;
    if (grad) {
        if (!(g = malloc(N * sizeof(float)))) return am_error(AM_ENOMEM, "merge: no memory for a gradient");
        memset(grad, 0, N * sizeof(float));
    }
    double s = 0;
    for (int i = 0; i < n; i++) {
        StepStats st;
        int rc = grad ? trainer_gradient(t, p[i].batch, p[i].loss, g, &st)
                      : trainer_gradient(t, p[i].batch, p[i].loss, NULL, &st);
        if (rc) { free(g); return rc; }
        s += st.loss;
        if (grad)
            for (size_t e = 0; e < N; e++) grad[e] += g[e] / (float)n;
    }
    free(g);
    *loss = s / n;
    return AM_OK;
}

int merge_stats_fisher(Trainer *t, const MergeProbe *p, int n, float *fisher, double *loss) {
    if (n < 1) return am_error(AM_EINVAL, "fisher: no data batches");
    const Model *m = encoder_model(trainer_encoder(t));
    const size_t N = m->tab.total;
    float *g = malloc(N * sizeof(float));
    if (!g) return am_error(AM_ENOMEM, "fisher: no memory for a gradient");
    memset(fisher, 0, N * sizeof(float));
    double s = 0;
    for (int i = 0; i < n; i++) {
        StepStats st;
        int rc = trainer_gradient(t, p[i].batch, p[i].loss, g, &st);
        if (rc) { free(g); return rc; }
        s += st.loss;
        for (size_t e = 0; e < N; e++) fisher[e] += g[e] * g[e] / (float)n;
    }
    free(g);
    if (loss) *loss = s / n;
    return AM_OK;
}

/* ------------------------------------------------------------------ Grams through an adapter hook */

typedef struct {
    pthread_mutex_t mu;
    int L;
    double *G[AM_MAX_LAYERS][AM_LIN_COUNT];
    int IC[AM_MAX_LAYERS][AM_LIN_COUNT];
    size_t rows;
    int failed;
} GramHook;

static int gh_active(void *ud, int layer, int which) { (void)ud; (void)layer; (void)which; return 1; }

static void gh_forward(void *ud, const EncoderLinearInfo *li, float *out, const float *inp, int rows, size_t row0) {
    (void)out; (void)row0;
    GramHook *h = ud;
    const int IC = li->IC;
    float *c = malloc((size_t)IC * IC * sizeof(float));
    if (!c) { h->failed = 1; return; }
    blas_gemm_tn(c, IC, inp, IC, inp, IC, IC, IC, rows, 1.0f, 0.0f); /* chunkᵀ chunk */
    pthread_mutex_lock(&h->mu);
    double *G = h->G[li->layer][li->which];
    if (!G) G = h->G[li->layer][li->which] = calloc((size_t)IC * IC, sizeof(double));
    if (!G) h->failed = 1;
    else {
        h->IC[li->layer][li->which] = IC;
        for (size_t e = 0; e < (size_t)IC * IC; e++) G[e] += (double)c[e];
        if (li->which == AM_LIN_QKV && li->layer == 0) h->rows += (size_t)rows;
    }
    pthread_mutex_unlock(&h->mu);
    free(c);
}

void merge_grams_free(MergeGrams *g) {
    for (int j = 0; j < g->n_lin; j++) free(g->G[j]);
    memset(g, 0, sizeof *g);
}

static int lin_of(const char *name, int *layer, int *which) {
    static const struct { const char *suf; int w; } map[] = {
        { ".attention.self.query.weight", AM_LIN_QKV }, { ".attention.self.key.weight", AM_LIN_QKV },
        { ".attention.self.value.weight", AM_LIN_QKV }, { ".attention.output.dense.weight", AM_LIN_ATTN_OUT },
        { ".intermediate.dense.weight", AM_LIN_FFN_IN }, { ".output.dense.weight", AM_LIN_FFN_OUT },
    };
    if (strncmp(name, "encoder.layer.", 14) != 0) return 0;
    *layer = atoi(name + 14);
    size_t a = strlen(name);
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        size_t b = strlen(map[i].suf);
        if (a >= b && strcmp(name + a - b, map[i].suf) == 0) {
            /* ".output.dense.weight" also ends ".attention.output.dense.weight": checked first above */
            *which = map[i].w;
            return 1;
        }
    }
    return 0;
}

int merge_stats_grams(const Model *m, const TrainTokens *texts, int n, MergeGrams *out) {
    memset(out, 0, sizeof *out);
    const int L = m->cfg.num_layers, C = m->cfg.hidden_size;
    GramHook *h = calloc(1, sizeof *h);
    if (!h) return am_error(AM_ENOMEM, "regmean: no memory");
    pthread_mutex_init(&h->mu, NULL);
    h->L = L;
    Encoder *e;
    encoder_new(m, &e);
    EncoderAdapter ad = { h, gh_active, gh_forward, NULL };
    encoder_set_adapter(e, &ad);
    int rc = AM_OK;
    float *scratch = NULL;
    for (int i = 0; i < n && !rc; i++) {
        if (texts[i].B < 1) continue;
        float *s2 = realloc(scratch, (size_t)texts[i].B * C * sizeof(float));
        if (!s2) { rc = am_error(AM_ENOMEM, "regmean: no memory"); break; }
        scratch = s2;
        rc = encoder_embed(e, texts[i].ids, texts[i].type_ids, texts[i].mask, texts[i].B, texts[i].T, AM_POOL_MEAN, 0,
                           L, 0, scratch);
    }
    free(scratch);
    encoder_delete(e);
    if (!rc && h->failed) rc = am_error(AM_ENOMEM, "regmean: no memory for the Grams");
    if (!rc && h->rows == 0) rc = am_error(AM_EINVAL, "regmean: no tokens to measure the layers' inputs on");
    if (!rc) {
        int idx[4 * AM_MAX_LAYERS + 8];
        int nl = merge_linear_tensors(&m->tab, idx, 4 * AM_MAX_LAYERS + 8);
        for (int j = 0; j < nl && !rc; j++) {
            int layer, which;
            if (!lin_of(m->tab.t[idx[j]].name, &layer, &which) || layer >= L || !h->G[layer][which]) continue;
            const int IC = h->IC[layer][which];
            if (IC != (int)m->tab.t[idx[j]].shape[1]) { rc = am_error(AM_ESHAPE, "regmean: %s: input width %d", m->tab.t[idx[j]].name, IC); break; }
            double *G = malloc((size_t)IC * IC * sizeof(double));
            if (!G) { rc = am_error(AM_ENOMEM, "regmean: no memory"); break; }
            for (size_t q = 0; q < (size_t)IC * IC; q++) G[q] = h->G[layer][which][q] / (double)h->rows;
            out->lin[out->n_lin] = idx[j];
            out->G[out->n_lin++] = G;
        }
        out->rows = h->rows;
    }
    for (int l = 0; l < L; l++)
        for (int w = 0; w < AM_LIN_COUNT; w++) free(h->G[l][w]);
    pthread_mutex_destroy(&h->mu);
    free(h);
    if (rc) merge_grams_free(out);
    return rc;
}

/* ------------------------------------------------------------------ Self Positioning */

typedef struct {
    Trainer *t;
    const MergeProbe *p;
    int n;
} SpCtx;

static int sp_fn(void *ud, const float *theta, double *loss, float *grad) {
    SpCtx *c = ud;
    Model *m = (Model *)encoder_model(trainer_encoder(c->t));
    memcpy(m->params, theta, m->tab.total * sizeof(float));
    return merge_stats_loss_grad(c->t, c->p, c->n, loss, grad);
}

int merge_stats_self_position(const MergeSpConfig *c, Trainer *t, const float *base, const float *const *taus,
                              int k, const MergeProbe *p, int n, double *lambda, float *out, MergeSpTrace *trace) {
    if (n < 1) return am_error(AM_EINVAL, "self_positioning: no probe batches");
    Model *m = (Model *)encoder_model(trainer_encoder(t));
    SpCtx ctx = { t, p, n };
    int rc = merge_self_position(c, &m->tab, m->cfg.num_layers, k, base, taus, sp_fn, &ctx, lambda, out, trace);
    if (!rc) memcpy(m->params, out, m->tab.total * sizeof(float));
    return rc;
}
