/* mlm.c - BERT masking and the tied MLM head (see mlm.h).
 *
 * Dims: N token rows, M labelled rows (gathered), C hidden, V vocab. */
#include "mlm.h"
#include "am_base.h"
#include "tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int mlm_mask_tokens(int32_t *ids_out, int32_t *labels, const int32_t *ids, const float *mask, int N, int V,
                    int pad_token_id, const MlmOptions *o, uint64_t seed) {
    AmRng rng;
    am_rng_seed(&rng, am_hash64("mlm-mask", 8, seed));
    int count = 0;
    for (int i = 0; i < N; i++) {
        int32_t id = ids[i];
        labels[i] = AM_MLM_IGNORE;
        ids_out[i] = id;
        if (mask && mask[i] == 0) continue;
        if (id == pad_token_id) continue;
        int special = 0;
        for (int k = 0; k < o->n_special; k++) special |= o->special[k] == id;
        if (special) continue;
        if (!(am_rng_uniform(&rng) < o->prob)) continue;
        labels[i] = id;
        count++;
        float u = am_rng_uniform(&rng);
        if (u < o->mask_frac) ids_out[i] = o->mask_token_id;
        else if (u < o->mask_frac + o->random_frac) ids_out[i] = (int32_t)am_rng_below(&rng, (uint32_t)V);
    }
    return count;
}

struct MlmHead {
    const Model *m;
    int N, M;                /* rows of the last forward, labelled rows */
    size_t cap_m;            /* rows the buffers hold */
    int *idx;                /* (M) row of each labelled token */
    int32_t *lab;            /* (M) its label */
    float *x, *pre, *act, *t;/* (M, C) gathered input, dense output, gelu, LayerNorm output */
    float *mean, *rstd;      /* (M) */
    float *logits;           /* (M, V) logits, then probabilities */
    double *rowloss;         /* (M) */
    int *rowok;              /* (M) argmax == label */
    float *d1, *d2;          /* (M, C) backward scratch */
    int ready;
};

void mlm_head_new(MlmHead **out) { *out = xcalloc(1, sizeof **out); }

static void free_bufs(MlmHead *h) {
    free(h->idx);
    free(h->lab);
    am_free_aligned(h->x);
    am_free_aligned(h->logits);
    free(h->rowloss);
    free(h->rowok);
    h->idx = NULL;
    h->lab = NULL;
    h->x = h->logits = NULL;
    h->rowloss = NULL;
    h->rowok = NULL;
    h->cap_m = 0;
}

void mlm_head_delete(MlmHead *h) {
    if (!h) return;
    free_bufs(h);
    free(h);
}

static int reserve(MlmHead *h, size_t M, int C, int V) {
    if (M <= h->cap_m) return AM_OK;
    free_bufs(h);
    size_t cap = M + M / 4 + 16;
    h->idx = xmalloc(cap * sizeof *h->idx);
    h->lab = xmalloc(cap * sizeof *h->lab);
    h->rowloss = xmalloc(cap * sizeof *h->rowloss);
    h->rowok = xmalloc(cap * sizeof *h->rowok);
    size_t mc = (cap * (size_t)C + 15) & ~(size_t)15;
    h->x = am_alloc_floats(6 * mc + 2 * cap);
    h->logits = am_alloc_floats(cap * (size_t)V);
    if (!h->x || !h->logits) {
        free_bufs(h);
        return am_error(AM_ENOMEM, "mlm: cannot allocate the head's activations for %zu masked tokens x %d vocab", M, V);
    }
    h->pre = h->x + mc;
    h->act = h->pre + mc;
    h->t = h->act + mc;
    h->d1 = h->t + mc;
    h->d2 = h->d1 + mc;
    h->mean = h->d2 + mc;
    h->rstd = h->mean + cap;
    h->cap_m = cap;
    return AM_OK;
}

typedef struct {
    MlmHead *h;
    int V;
} SoftJob;

/* per row: probabilities in place, loss and argmax */
static void softmax_ce_task(void *ctx, int tid, int nth) {
    const SoftJob *j = ctx;
    MlmHead *h = j->h;
    const int V = j->V;
    size_t lo, hi;
    am_split((size_t)h->M, tid, nth, &lo, &hi);
    for (size_t r = lo; r < hi; r++) {
        float *z = h->logits + r * (size_t)V;
        float mx = z[0];
        int am = 0;
        for (int v = 1; v < V; v++)
            if (z[v] > mx) { mx = z[v]; am = v; }
        const float zl = z[h->lab[r]];
        double sum = 0;
        for (int v = 0; v < V; v++) {
            z[v] = expf(z[v] - mx);
            sum += (double)z[v];
        }
        const float inv = (float)(1.0 / sum);
        for (int v = 0; v < V; v++) z[v] *= inv;
        h->rowloss[r] = log(sum) + (double)mx - (double)zl;
        h->rowok[r] = am == h->lab[r];
    }
}

int mlm_head_forward(MlmHead *h, const Model *m, const float *hidden, const int32_t *labels, int N, MlmStats *out) {
    memset(out, 0, sizeof *out);
    h->ready = 0;
    if (!m->cfg.has_mlm_head)
        return am_error(AM_EINVAL, "mlm: the model has no MLM head\nHINT: create it with has_mlm_head = 1");
    const int C = m->cfg.hidden_size, V = m->cfg.vocab_size;
    int M = 0;
    for (int i = 0; i < N; i++) {
        if (labels[i] == AM_MLM_IGNORE || labels[i] < 0) continue;
        if (labels[i] >= V) return am_error(AM_EINVAL, "mlm: label %d at row %d outside the vocabulary (%d)", labels[i], i, V);
        M++;
    }
    int rc = reserve(h, (size_t)(M > 0 ? M : 1), C, V);
    if (rc) return rc;
    h->m = m;
    h->N = N;
    h->M = M;
    M = 0;
    for (int i = 0; i < N; i++)
        if (labels[i] >= 0) {
            h->idx[M] = i;
            h->lab[M] = labels[i];
            memcpy(h->x + (size_t)M * C, hidden + (size_t)i * C, (size_t)C * sizeof(float));
            M++;
        }
    h->ready = 1;
    out->n_masked = M;
    if (M == 0) return AM_OK;
    const ParameterTensors *p = &m->p;
    linear_forward(h->pre, h->x, p->mlmw, p->mlmb, M, C, C);
    gelu_forward(h->act, h->pre, (size_t)M * C);
    layernorm_forward(h->t, h->mean, h->rstd, h->act, p->mlmlnw, p->mlmlnb, M, C, m->cfg.layer_norm_eps);
    linear_forward(h->logits, h->t, p->wte, p->mlmbias, M, C, V);
    SoftJob j = { h, V };
    am_parallel_run_min(softmax_ce_task, &j, (size_t)M * V, 1u << 16);
    double loss = 0;
    int ok = 0;
    for (int r = 0; r < M; r++) {
        loss += h->rowloss[r];
        ok += h->rowok[r];
    }
    out->loss = loss / M;
    out->n_correct = ok;
    return AM_OK;
}

typedef struct {
    MlmHead *h;
    int V;
    float scale;
} GradJob;

static void dlogits_task(void *ctx, int tid, int nth) {
    const GradJob *j = ctx;
    MlmHead *h = j->h;
    size_t lo, hi;
    am_split((size_t)h->M, tid, nth, &lo, &hi);
    for (size_t r = lo; r < hi; r++) {
        float *z = h->logits + r * (size_t)j->V;
        z[h->lab[r]] -= 1.0f;
        for (int v = 0; v < j->V; v++) z[v] *= j->scale;
    }
}

int mlm_head_backward(MlmHead *h, float *dhidden, float *grads, float scale, int grad_wte) {
    if (!h->ready) return am_error(AM_EINVAL, "mlm_head_backward: no forward to differentiate");
    h->ready = 0;
    const int M = h->M;
    if (M == 0) return AM_OK;
    const Model *m = h->m;
    const int C = m->cfg.hidden_size, V = m->cfg.vocab_size;
    ParameterTensors g;
    param_tensors_point(&g, &m->tab, &m->cfg, grads);
    const ParameterTensors *p = &m->p;
    GradJob gj = { h, V, scale / (float)M };
    am_parallel_run_min(dlogits_task, &gj, (size_t)M * V, 1u << 16);
    /* decoder: dt = dlogits · wte, dwte += dlogitsᵀ · t, dbias += Σ dlogits */
    memset(h->d1, 0, (size_t)M * C * sizeof(float));
    linear_backward(h->d1, grad_wte ? g.wte : NULL, g.mlmbias, h->logits, h->t, p->wte, M, C, V);
    /* LayerNorm, GELU, dense */
    memset(h->d2, 0, (size_t)M * C * sizeof(float));
    layernorm_backward(h->d2, g.mlmlnw, g.mlmlnb, h->d1, h->act, p->mlmlnw, h->mean, h->rstd, M, C);
    gelu_backward(h->d2, h->pre, h->d2, (size_t)M * C);
    memset(h->d1, 0, (size_t)M * C * sizeof(float));
    linear_backward(h->d1, g.mlmw, g.mlmb, h->d2, h->x, p->mlmw, M, C, C);
    if (dhidden)
        for (int r = 0; r < M; r++) {
            float *dst = dhidden + (size_t)h->idx[r] * C;
            const float *src = h->d1 + (size_t)r * C;
            for (int c = 0; c < C; c++) dst[c] += src[c];
        }
    return AM_OK;
}
