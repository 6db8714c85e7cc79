/* lora.c - LoRA adapters through the encoder's EncoderAdapter hooks (see lora.h).
 *
 * Dims: N = B*T rows, IC/OC in/out features of the adapted slice, r rank, C hidden, FF FFN size.
 * Forward (pool threads, disjoint row chunks): per block of rows, u = dropout(x)·Aᵀ (saved for
 * backward), out[:, col0:col0+OC] += s·u·Bᵀ. Backward (calling thread, parallel GEMMs):
 *   du = s·dout·B;  dB += s·doutᵀ·u;  dA += duᵀ·dropout(x);  dinp += dropout'(du·A).
 */
#include "lora.h"
#include "am_base.h"
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LORA_MAX_RANK 256
#define LORA_SITE 0x4C000000u /* dropout sites of the adapters (the encoder uses small numbers) */

typedef struct {
    int layer, which, sub; /* AM_LIN_*; sub = 0/1/2 (q/k/v) inside the fused QKV, else 0 */
    int IC, OC, OCfull;    /* adapter in / out features; the linear's full output width */
    int col0;              /* first output column of the slice */
    size_t offA, offB;     /* into params / grads */
    float *u;              /* (cap_n, r) saved dropout(x)·Aᵀ of the last forward */
} Target;

struct Lora {
    const Model *m;
    LoraConfig cfg;
    float scale;
    ParamTable tab;
    float *params, *grads;
    int nt;
    Target *t;
    int first[AM_MAX_LAYERS][AM_LIN_COUNT]; /* first target index on (layer, which), -1 none */
    int count[AM_MAX_LAYERS][AM_LIN_COUNT];
    float *ubuf;
    size_t cap_n;
    float *scratch;        /* backward: du (N, r) + xd (N, IC) + dx (N, IC) */
    size_t scratch_cap;
};

void lora_config_default(LoraConfig *c) {
    *c = (LoraConfig){ .rank = 8, .alpha = 8.0f, .dropout = 0.0f, .targets = AM_LORA_QUERY | AM_LORA_VALUE,
                       .layers = 0 };
}

unsigned lora_target_from_name(const char *name) {
    static const struct { const char *n; unsigned bit; } names[] = {
        { "query", AM_LORA_QUERY }, { "key", AM_LORA_KEY }, { "value", AM_LORA_VALUE },
        { "attention.output", AM_LORA_ATTN_OUT }, { "attention.output.dense", AM_LORA_ATTN_OUT },
        { "intermediate", AM_LORA_FFN_IN }, { "intermediate.dense", AM_LORA_FFN_IN },
        { "output", AM_LORA_FFN_OUT }, { "output.dense", AM_LORA_FFN_OUT }, { "all", AM_LORA_ALL },
    };
    if (!name) return 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].n) == 0) return names[i].bit;
    return 0;
}

static const char *module_name(int which, int sub) {
    static const char *qkv[3] = { "attention.self.query", "attention.self.key", "attention.self.value" };
    switch (which) {
    case AM_LIN_QKV: return qkv[sub];
    case AM_LIN_ATTN_OUT: return "attention.output.dense";
    case AM_LIN_FFN_IN: return "intermediate.dense";
    default: return "output.dense";
    }
}

static void tab_add(ParamTable *tab, int *cap, const char *name, int64_t d0, int64_t d1) {
    if (tab->n == *cap) {
        *cap = *cap ? *cap * 2 : 32;
        tab->t = xrealloc(tab->t, (size_t)*cap * sizeof *tab->t);
    }
    ParamInfo *p = &tab->t[tab->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = 2;
    p->shape[0] = d0;
    p->shape[1] = d1;
    p->numel = (size_t)(d0 * d1);
    p->offset = tab->total;
    tab->total += p->numel;
}

int lora_new(const Model *m, const LoraConfig *c, Lora **out) {
    *out = NULL;
    const int L = m->cfg.num_layers, C = m->cfg.hidden_size, FF = m->cfg.intermediate_size;
    if (c->rank < 1 || c->rank > LORA_MAX_RANK)
        return am_error(AM_EINVAL, "lora: rank %d outside [1, %d]", c->rank, LORA_MAX_RANK);
    if ((c->targets & AM_LORA_ALL) == 0 || (c->targets & ~(unsigned)AM_LORA_ALL))
        return am_error(AM_EINVAL, "lora: targets 0x%x select no known module (query, key, value, "
                        "attention.output, intermediate, output)", c->targets);
    if (!(c->dropout >= 0 && c->dropout < 1)) return am_error(AM_EINVAL, "lora: dropout %g outside [0, 1)", (double)c->dropout);
    if (!isfinite(c->alpha)) return am_error(AM_EINVAL, "lora: alpha is not finite");
    if (L < 64 && (c->layers >> L) != 0)
        return am_error(AM_EINVAL, "lora: layer mask 0x%llx names layers past the model's %d",
                        (unsigned long long)c->layers, L);
    Lora *l = xcalloc(1, sizeof *l);
    l->m = m;
    l->cfg = *c;
    l->scale = c->alpha / (float)c->rank;
    const int r = c->rank;
    int cap = 0, tcap = 0;
    char nm[AM_NAME_MAX * 2];
    for (int layer = 0; layer < L; layer++) {
        for (int w = 0; w < AM_LIN_COUNT; w++) {
            l->first[layer][w] = -1;
            l->count[layer][w] = 0;
        }
        if (c->layers && !((c->layers >> layer) & 1)) continue;
        for (int bit = 0; bit < 6; bit++) {
            if (!(c->targets & (1u << bit))) continue;
            int which = bit < 3 ? AM_LIN_QKV : bit - 2, sub = bit < 3 ? bit : 0;
            int IC = which == AM_LIN_FFN_OUT ? FF : C;
            int OC = which == AM_LIN_FFN_IN ? FF : C;
            int OCfull = which == AM_LIN_QKV ? 3 * C : OC;
            if (l->nt == tcap) {
                tcap = tcap ? tcap * 2 : 16;
                l->t = xrealloc(l->t, (size_t)tcap * sizeof *l->t);
            }
            Target *t = &l->t[l->nt];
            memset(t, 0, sizeof *t);
            *t = (Target){ .layer = layer, .which = which, .sub = sub, .IC = IC, .OC = OC, .OCfull = OCfull,
                           .col0 = sub * C };
            snprintf(nm, sizeof nm, "encoder.layer.%d.%s.lora_A.weight", layer, module_name(which, sub));
            t->offA = l->tab.total;
            tab_add(&l->tab, &cap, nm, r, IC);
            snprintf(nm, sizeof nm, "encoder.layer.%d.%s.lora_B.weight", layer, module_name(which, sub));
            t->offB = l->tab.total;
            tab_add(&l->tab, &cap, nm, OC, r);
            if (l->first[layer][which] < 0) l->first[layer][which] = l->nt;
            l->count[layer][which]++;
            l->nt++;
        }
    }
    l->params = am_alloc_floats(l->tab.total);
    l->grads = am_alloc_floats(l->tab.total);
    if (!l->params || !l->grads) {
        lora_delete(l);
        return am_error(AM_ENOMEM, "lora: cannot allocate %zu adapter parameters", (size_t)0);
    }
    memset(l->params, 0, l->tab.total * sizeof(float));
    memset(l->grads, 0, l->tab.total * sizeof(float));
    *out = l;
    return AM_OK;
}

void lora_delete(Lora *l) {
    if (!l) return;
    am_free_aligned(l->params);
    am_free_aligned(l->grads);
    am_free_aligned(l->ubuf);
    am_free_aligned(l->scratch);
    free(l->t);
    param_table_free(&l->tab);
    free(l);
}

const LoraConfig *lora_config(const Lora *l) { return &l->cfg; }
const ParamTable *lora_table(const Lora *l) { return &l->tab; }
float *lora_params(Lora *l) { return l->params; }
float *lora_grads(Lora *l) { return l->grads; }

void lora_init(Lora *l, uint64_t seed) {
    AmRng rng;
    am_rng_seed(&rng, am_hash64("lora-init", 9, seed));
    const int r = l->cfg.rank;
    for (int i = 0; i < l->nt; i++) {
        const Target *t = &l->t[i];
        const float bound = 1.0f / sqrtf((float)t->IC); /* kaiming_uniform(a=√5) on (r, IC) */
        float *A = l->params + t->offA, *B = l->params + t->offB;
        for (size_t k = 0; k < (size_t)r * t->IC; k++) A[k] = (2.0f * am_rng_uniform(&rng) - 1.0f) * bound;
        memset(B, 0, (size_t)t->OC * r * sizeof(float));
    }
}

int lora_active(const Lora *l, int layer, int which) {
    return layer >= 0 && layer < l->m->cfg.num_layers && l->count[layer][which] > 0;
}

int lora_prepare(Lora *l, int N) {
    if ((size_t)N <= l->cap_n) return AM_OK;
    am_free_aligned(l->ubuf);
    size_t cap = (size_t)N + (size_t)N / 8;
    const size_t per = (cap * (size_t)l->cfg.rank + 15) & ~(size_t)15;
    l->ubuf = am_alloc_floats(per * (size_t)(l->nt > 0 ? l->nt : 1));
    if (!l->ubuf) {
        l->cap_n = 0;
        return am_error(AM_ENOMEM, "lora: cannot allocate activations for %d rows", N);
    }
    for (int i = 0; i < l->nt; i++) l->t[i].u = l->ubuf + per * (size_t)i;
    l->cap_n = cap;
    return AM_OK;
}

static uint32_t target_key(uint64_t seed, const Target *t) {
    return dropout_key(seed, LORA_SITE + (uint32_t)t->layer * 8u + (uint32_t)(t->which * 3 + t->sub));
}

/* ------------------------------------------------------------------ adapter callbacks */

static int cb_active(void *ud, int layer, int which) { return lora_active(ud, layer, which); }

static void cb_forward(void *ud, const EncoderLinearInfo *li, float *out, const float *inp, int rows, size_t row0) {
    Lora *l = ud;
    const int r = l->cfg.rank, IC = li->IC, OCf = li->OC;
    const int save = (size_t)li->N <= l->cap_n;
    const float p = li->training ? l->cfg.dropout : 0.0f;
    enum { XBUF = 16384 };
    float xd[XBUF], ub[64 * LORA_MAX_RANK];
    int bs = XBUF / IC;
    bs = bs > 64 ? 64 : bs < 1 ? 1 : bs;
    AM_ASSERT(IC <= XBUF);
    const int t0 = l->first[li->layer][li->which], nt = l->count[li->layer][li->which];
    for (int k = t0; k < t0 + nt; k++) {
        const Target *t = &l->t[k];
        AM_ASSERT(t->IC == IC && t->OCfull == OCf);
        const float *A = l->params + t->offA, *B = l->params + t->offB;
        const uint32_t key = p > 0 ? target_key(li->seed, t) : 0;
        for (int b0 = 0; b0 < rows; b0 += bs) {
            const int nb = rows - b0 < bs ? rows - b0 : bs;
            const float *x = inp + (size_t)b0 * IC;
            if (p > 0) {
                dropout_forward(xd, x, (size_t)nb * IC, p, key, (row0 + (size_t)b0) * (size_t)IC);
                x = xd;
            }
            float *u = save ? t->u + (row0 + (size_t)b0) * (size_t)r : ub;
            blas_gemm_nt(u, r, x, IC, A, IC, nb, r, IC, 1.0f, 0.0f);
            blas_gemm_nt(out + (size_t)b0 * OCf + t->col0, OCf, u, r, B, r, nb, t->OC, r, l->scale, 1.0f);
        }
    }
}

static float *scratch(Lora *l, size_t n) {
    if (n > l->scratch_cap) {
        am_free_aligned(l->scratch);
        l->scratch = am_alloc_floats(n);
        AM_ASSERT(l->scratch != NULL); /* small next to the encoder's activations */
        l->scratch_cap = n;
    }
    return l->scratch;
}

typedef struct { float *dst; const float *src; size_t n; } AddJob;
static void add_task(void *ctx, int tid, int nth) {
    const AddJob *j = ctx;
    size_t lo, hi;
    am_split_aligned(j->n, 64, tid, nth, &lo, &hi);
    for (size_t i = lo; i < hi; i++) j->dst[i] += j->src[i];
}

static void cb_backward(void *ud, const EncoderLinearInfo *li, float *dinp, const float *dout, const float *inp) {
    Lora *l = ud;
    const int r = l->cfg.rank, IC = li->IC, OCf = li->OC, N = li->N;
    AM_ASSERT((size_t)N <= l->cap_n); /* lora_prepare was not called before the forward */
    const float p = li->training ? l->cfg.dropout : 0.0f;
    const size_t rn = ((size_t)N * r + 15) & ~(size_t)15, xn = ((size_t)N * IC + 15) & ~(size_t)15;
    float *du = scratch(l, rn + 2 * xn), *xd = du + rn, *dx = xd + xn;
    const int t0 = l->first[li->layer][li->which], nt = l->count[li->layer][li->which];
    for (int k = t0; k < t0 + nt; k++) {
        const Target *t = &l->t[k];
        const float *A = l->params + t->offA, *B = l->params + t->offB;
        float *dA = l->grads + t->offA, *dB = l->grads + t->offB;
        const float *dt = dout + t->col0;
        const float *x = inp;
        const uint32_t key = p > 0 ? target_key(li->seed, t) : 0;
        if (p > 0) {
            dropout_forward(xd, inp, (size_t)N * IC, p, key, 0);
            x = xd;
        }
        blas_gemm_nn_par(du, r, dt, OCf, B, r, N, r, t->OC, l->scale, 0.0f);      /* du = s·dout·B */
        blas_gemm_tn_par(dB, r, dt, OCf, t->u, r, t->OC, r, N, l->scale, 1.0f);   /* dB += s·doutᵀ·u */
        blas_gemm_tn_par(dA, IC, du, r, x, IC, r, IC, N, 1.0f, 1.0f);             /* dA += duᵀ·x */
        if (!dinp) continue;
        if (p > 0) {
            blas_gemm_nn_par(dx, IC, du, r, A, IC, N, IC, r, 1.0f, 0.0f);
            dropout_backward(dx, dx, (size_t)N * IC, p, key, 0);
            AddJob aj = { dinp, dx, (size_t)N * IC };
            am_parallel_run_min(add_task, &aj, aj.n, 1u << 15);
        } else {
            blas_gemm_nn_par(dinp, IC, du, r, A, IC, N, IC, r, 1.0f, 1.0f);       /* dinp += du·A */
        }
    }
}

void lora_attach(Lora *l, Encoder *e) {
    AM_ASSERT(encoder_model(e) == l->m);
    EncoderAdapter a = { .ud = l, .active = cb_active, .forward = cb_forward, .backward = cb_backward };
    encoder_set_adapter(e, &a);
}


/* ------------------------------------------------------------------ merge */

void lora_merge(const Lora *l, float *params) {
    ParameterTensors pt;
    param_tensors_point(&pt, &l->m->tab, &l->m->cfg, params);
    const int r = l->cfg.rank;
    for (int i = 0; i < l->nt; i++) {
        const Target *t = &l->t[i];
        float *W;
        switch (t->which) {
        case AM_LIN_QKV: W = pt.layer[t->layer].qkvw; break;
        case AM_LIN_ATTN_OUT: W = pt.layer[t->layer].attow; break;
        case AM_LIN_FFN_IN: W = pt.layer[t->layer].fcw; break;
        default: W = pt.layer[t->layer].fcprojw; break;
        }
        W += (size_t)t->col0 * t->IC; /* rows col0.. of (OCfull, IC) */
        blas_gemm_nn_par(W, t->IC, l->params + t->offB, r, l->params + t->offA, t->IC, t->OC, t->IC, r, l->scale, 1.0f);
    }
}

void lora_delta(const Lora *l, float *delta) { lora_merge(l, delta); }
