/* encoder.c - post-LN BERT encoder: embeddings -> L x {attention, FFN} -> hidden states,
 * forward and backward over the kernels in src/tensor, plus pooling helpers.
 *
 * Dims legend: B batch, T tokens, N = B*T rows, C hidden, NH heads, HS = C/NH, FF FFN size,
 * L layers, V vocab, P max positions, TV token types.
 *
 * Per layer, forward (5 parallel regions, each GEMM fused with its epilogue):
 *   qkv  (N,3C) = h·Wqkvᵀ + bqkv
 *   ctx  (N,C)  = attention(qkv, mask)           att (B,NH,T,T) probs saved
 *   res1 (N,C)  = h + dropout(ctx·Woᵀ + bo);      ln1 (N,C) = LayerNorm(res1)
 *   fcpre(N,FF) = ln1·W1ᵀ + b1;                   fcact (N,FF) = gelu(fcpre)
 *   res2 (N,C)  = ln1 + dropout(fcact·W2ᵀ + b2);  h' = hidden[l+1] = LayerNorm(res2)
 * Backward walks the same regions in reverse (7 regions per layer); see encoder_backward.
 */
#include "encoder.h"
#include "am_base.h"
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_ALIGN (2u << 20)

typedef struct {
    float *qkv;    /* (N, 3C) */
    float *att;    /* (B, NH, T, T) softmax probabilities (grad mode only) */
    float *ctx;    /* (N, C) */
    float *res1;   /* (N, C)  LayerNorm-1 input */
    float *ln1;    /* (N, C) */
    float *mean1, *rstd1; /* (N) */
    float *fcpre;  /* (N, FF) pre-GELU (== fcact in no-grad mode) */
    float *fcact;  /* (N, FF) */
    float *res2;   /* (N, C)  LayerNorm-2 input */
    float *mean2, *rstd2; /* (N) */
} LayerActs;

typedef struct { /* per-linear trainability, computed from the per-tensor flags */
    uint8_t w, b;
} LinTrain;

struct Encoder {
    const Model *m;
    int B, T;               /* shape of the last forward */
    int grad_ready;         /* the last forward kept activations for backward */
    int training;
    uint64_t seed;
    int n_layers_done;      /* hidden states computed: 0..this */

    float *arena;           /* activations, HUGE_ALIGN aligned */
    size_t arena_cap;       /* floats */
    int32_t *ids, *tt;      /* (N) copies of the inputs (tt NULL = all zero) */
    float *mask;            /* (N) copy, NULL = no padding */
    size_t tok_cap;
    int has_tt, has_mask;
    /* packed inference (encoder_embed with right padding): only the Nr real tokens are
     * computed, sequence b at rows seq_off[b] .. +seq_len[b]; ids/tt/mask hold those rows */
    int varlen, Nr;
    int32_t *pos;           /* (Nr) position ids */
    int *seq_off, *seq_len; /* (B) */
    size_t *att_off;        /* (B) packed attention probabilities (training) */
    size_t seq_cap, natt;
    int states_public;      /* encoder_hidden is valid (after encoder_forward only) */
    int skip_padding;       /* encoder_set_skip_padding: packed rows in training too */
    float *hidden_pub[AM_MAX_LAYERS + 1]; /* (B, T, C) unpacked copies (packed training) */
    uint8_t pub_ready[AM_MAX_LAYERS + 1];

    /* forward activations */
    float *emb;             /* (N, C) embeddings before LayerNorm (grad mode) */
    float *emb_mean, *emb_rstd; /* (N) */
    float *hidden[AM_MAX_LAYERS + 1]; /* (N, C) each */
    LayerActs act[AM_MAX_LAYERS];
    float *att_scratch;     /* attention_scratch_floats(T) per pool thread */
    /* backward scratch (grad mode) */
    float *g, *d1, *d2, *dctx; /* (N, C) */
    float *dff;             /* (N, FF) */
    float *dqkv;            /* (N, 3C) */
    float *ln_partials;     /* layernorm_partials_floats(N, C) */
    int nth_sized;          /* pool size the per-thread scratch was laid out for */

    /* training extensions */
    EncoderAdapter adapter;
    int has_adapter;
    uint8_t *trainable;     /* per ParamTable tensor, NULL = all */
    LinTrain lin[AM_MAX_LAYERS][AM_LIN_COUNT];
    uint8_t ln_tr[AM_MAX_LAYERS][2][2]; /* [layer][ln1/ln2][w/b] */
    uint8_t emb_tr[5];      /* wte, wpe, wtt, lnew, lneb */
};

/* dropout sites: 0 = embeddings, then 3 per layer */
enum { SITE_ATT = 1, SITE_ATT_OUT = 2, SITE_FFN_OUT = 3 };
static uint32_t site_key(const Encoder *e, int layer, int site) {
    return dropout_key(e->seed, layer < 0 ? 0u : (uint32_t)(1 + 3 * layer + (site - 1)));
}

/* ------------------------------------------------------------------ lifecycle */

static void recompute_trainable(Encoder *e);

int encoder_new(const Model *m, Encoder **out) {
    AM_ASSERT(m != NULL && out != NULL);
    Encoder *e = xcalloc(1, sizeof *e);
    e->m = m;
    recompute_trainable(e);
    *out = e;
    return AM_OK;
}

void encoder_delete(Encoder *e) {
    if (!e) return;
    am_pool_give(e->arena, e->arena_cap * sizeof(float), HUGE_ALIGN);
    free(e->ids);
    free(e->tt);
    free(e->mask);
    free(e->pos);
    free(e->seq_off);
    free(e->seq_len);
    free(e->att_off);
    free(e->trainable);
    free(e);
}

const Model *encoder_model(const Encoder *e) { return e->m; }

void encoder_shape(const Encoder *e, int *B, int *T) {
    if (B) *B = e->B;
    if (T) *T = e->T;
}

const float *encoder_hidden(const Encoder *e, int layer) {
    if (!e->states_public || layer < 0 || layer > e->n_layers_done || e->B == 0) return NULL;
    if (!e->varlen) return e->hidden[layer];
    Encoder *w = (Encoder *)e; /* packed rows: unpack this layer once (a cache, not state) */
    if (!w->pub_ready[layer]) {
        seq_unpack(w->hidden_pub[layer], w->hidden[layer], w->seq_off, w->seq_len, w->B, w->T, w->m->cfg.hidden_size);
        w->pub_ready[layer] = 1;
    }
    return w->hidden_pub[layer];
}

void encoder_set_skip_padding(Encoder *e, int on) { e->skip_padding = on != 0; }

void encoder_set_adapter(Encoder *e, const EncoderAdapter *a) {
    e->has_adapter = a != NULL;
    if (a) e->adapter = *a;
    else memset(&e->adapter, 0, sizeof e->adapter);
}

static int adapter_active(const Encoder *e, int layer, int which) {
    return e->has_adapter && e->adapter.active && e->adapter.active(e->adapter.ud, layer, which);
}

static uint8_t tr_name(const Encoder *e, const char *name) {
    if (!e->trainable) return 1;
    const ParamInfo *p = param_table_find(&e->m->tab, name);
    return p ? e->trainable[p - e->m->tab.t] : 0;
}

static void recompute_trainable(Encoder *e) {
    static const char *lin_names[AM_LIN_COUNT][3] = {
        { "attention.self.query", "attention.self.key", "attention.self.value" },
        { "attention.output.dense", NULL, NULL },
        { "intermediate.dense", NULL, NULL },
        { "output.dense", NULL, NULL },
    };
    static const char *ln_names[2] = { "attention.output.LayerNorm", "output.LayerNorm" };
    char nm[AM_NAME_MAX * 2];
    for (int l = 0; l < e->m->cfg.num_layers; l++) {
        for (int w = 0; w < AM_LIN_COUNT; w++) {
            e->lin[l][w].w = e->lin[l][w].b = 0;
            for (int k = 0; k < 3 && lin_names[w][k]; k++) {
                snprintf(nm, sizeof nm, "encoder.layer.%d.%s.weight", l, lin_names[w][k]);
                e->lin[l][w].w |= tr_name(e, nm);
                snprintf(nm, sizeof nm, "encoder.layer.%d.%s.bias", l, lin_names[w][k]);
                e->lin[l][w].b |= tr_name(e, nm);
            }
        }
        for (int k = 0; k < 2; k++) {
            snprintf(nm, sizeof nm, "encoder.layer.%d.%s.weight", l, ln_names[k]);
            e->ln_tr[l][k][0] = tr_name(e, nm);
            snprintf(nm, sizeof nm, "encoder.layer.%d.%s.bias", l, ln_names[k]);
            e->ln_tr[l][k][1] = tr_name(e, nm);
        }
    }
    e->emb_tr[0] = tr_name(e, "embeddings.word_embeddings.weight");
    e->emb_tr[1] = tr_name(e, "embeddings.position_embeddings.weight");
    e->emb_tr[2] = tr_name(e, "embeddings.token_type_embeddings.weight");
    e->emb_tr[3] = tr_name(e, "embeddings.LayerNorm.weight");
    e->emb_tr[4] = tr_name(e, "embeddings.LayerNorm.bias");
}

void encoder_set_trainable(Encoder *e, const uint8_t *trainable) {
    free(e->trainable);
    e->trainable = NULL;
    if (trainable) {
        e->trainable = xmalloc((size_t)e->m->tab.n);
        memcpy(e->trainable, trainable, (size_t)e->m->tab.n);
    }
    recompute_trainable(e);
}

/* does layer l hold anything that needs a gradient (params or an active adapter)? */
static int layer_needs_grad(const Encoder *e, int l) {
    for (int w = 0; w < AM_LIN_COUNT; w++)
        if (e->lin[l][w].w || e->lin[l][w].b || adapter_active(e, l, w)) return 1;
    for (int k = 0; k < 2; k++)
        if (e->ln_tr[l][k][0] || e->ln_tr[l][k][1]) return 1;
    return 0;
}
static int emb_needs_grad(const Encoder *e) {
    for (int k = 0; k < 5; k++)
        if (e->emb_tr[k]) return 1;
    return 0;
}

/* ------------------------------------------------------------------ arena */

/* Lay out the activations for (B, T). grad = keep per-layer activations and backward scratch;
 * otherwise one set of layer activations is shared by all layers. With base == NULL only the
 * size is computed. Returns floats needed. */
static size_t layout(Encoder *e, int B, int T, int rows, int grad, float *base) {
    const EncoderConfig *cfg = &e->m->cfg;
    const size_t N = (size_t)rows, C = (size_t)cfg->hidden_size, FF = (size_t)cfg->intermediate_size;
    const size_t NH = (size_t)cfg->num_heads;
    const int L = cfg->num_layers, nth = am_parallel_get_threads();
    size_t off = 0;
#define TAKE(ptr, n) do { size_t n_ = (n); if (base) (ptr) = base + off; off += (n_ + 15) & ~(size_t)15; } while (0)
    for (int l = 0; l <= L; l++) TAKE(e->hidden[l], N * C);
    TAKE(e->att_scratch, attention_scratch_floats(T) * (size_t)nth);
    const size_t natt = e->varlen ? e->natt : (size_t)B * NH * T * T;
    if (grad && e->varlen)
        for (int l = 0; l <= L; l++) TAKE(e->hidden_pub[l], (size_t)B * T * C);
    if (grad) {
        TAKE(e->emb, N * C);
        TAKE(e->emb_mean, N);
        TAKE(e->emb_rstd, N);
        for (int l = 0; l < L; l++) {
            LayerActs *a = &e->act[l];
            TAKE(a->qkv, N * 3 * C);
            TAKE(a->att, natt);
            TAKE(a->ctx, N * C);
            TAKE(a->res1, N * C);
            TAKE(a->ln1, N * C);
            TAKE(a->mean1, N);
            TAKE(a->rstd1, N);
            TAKE(a->fcpre, N * FF);
            TAKE(a->fcact, N * FF);
            TAKE(a->res2, N * C);
            TAKE(a->mean2, N);
            TAKE(a->rstd2, N);
        }
        TAKE(e->g, N * C);
        TAKE(e->d1, N * C);
        TAKE(e->d2, N * C);
        TAKE(e->dctx, N * C);
        TAKE(e->dff, N * FF);
        TAKE(e->dqkv, N * 3 * C);
        TAKE(e->ln_partials, layernorm_partials_floats((int)N, (int)C));
    } else {
        LayerActs *a = &e->act[0];
        TAKE(a->qkv, N * 3 * C);
        TAKE(a->ctx, N * C);
        TAKE(a->res1, N * C);
        TAKE(a->ln1, N * C);
        TAKE(a->fcpre, N * FF);
        TAKE(a->res2, N * C);
        if (base) {
            a->att = NULL;
            a->fcact = a->fcpre;
            a->mean1 = a->rstd1 = a->mean2 = a->rstd2 = NULL;
            for (int l = 1; l < L; l++) e->act[l] = *a;
            e->emb = e->emb_mean = e->emb_rstd = NULL;
            e->g = e->d1 = e->d2 = e->dctx = e->dff = e->dqkv = e->ln_partials = NULL;
        }
    }
#undef TAKE
    if (base) e->nth_sized = nth;
    return off;
}

static int arena_prepare(Encoder *e, int B, int T, int rows, int grad) {
    size_t need = layout(e, B, T, rows, grad, NULL);
    if (need > e->arena_cap) {
        am_pool_give(e->arena, e->arena_cap * sizeof(float), HUGE_ALIGN);
        e->arena = NULL;
        e->arena_cap = 0;
        size_t cap = need + need / 8; /* a little headroom for slightly larger batches */
        size_t bytes = (cap * sizeof(float) + HUGE_ALIGN - 1) & ~(size_t)(HUGE_ALIGN - 1), got = 0;
        /* pooled: a new merge's encoder reuses the last one's warm pages */
        void *p = am_pool_take(bytes, HUGE_ALIGN, &got);
        if (!p)
            return am_error(AM_ENOMEM, "encoder: cannot allocate %.1f MB of activations for batch %d x %d tokens",
                            (double)bytes / 1e6, B, T);
#ifdef MADV_HUGEPAGE
        madvise(p, got, MADV_HUGEPAGE); /* fewer page faults and TLB misses; best effort */
#endif
        memset(p, 0, got); /* fault the pages in now, not inside the first timed step */
        e->arena = p;
        e->arena_cap = got / sizeof(float);
    }
    layout(e, B, T, rows, grad, e->arena);
    return AM_OK;
}

/* ------------------------------------------------------------------ input checks */

static int check_inputs(Encoder *e, const int32_t *ids, const int32_t *type_ids, const float *mask,
                        int B, int T) {
    const EncoderConfig *cfg = &e->m->cfg;
    if (!ids) return am_error(AM_EINVAL, "encoder: token ids are NULL");
    if (B < 1 || T < 1)
        return am_error(AM_ESHAPE, "encoder: batch %d x %d tokens (both must be >= 1)", B, T);
    if (T > cfg->max_position)
        return am_error(AM_ESHAPE, "encoder: sequence length %d exceeds max_position_embeddings %d\n"
                        "HINT: truncate inputs to %d tokens", T, cfg->max_position, cfg->max_position);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            if (ids[i] < 0 || ids[i] >= cfg->vocab_size)
                return am_error(AM_EINVAL, "encoder: token id %d at sequence %d position %d is outside the vocabulary "
                                "(size %d)", (int)ids[i], b, t, cfg->vocab_size);
            if (type_ids && (type_ids[i] < 0 || type_ids[i] >= cfg->type_vocab_size))
                return am_error(AM_EINVAL, "encoder: token type id %d at sequence %d position %d is outside [0, %d)",
                                (int)type_ids[i], b, t, cfg->type_vocab_size);
        }
    if (mask)
        for (int b = 0; b < B; b++) {
            int any = 0;
            for (int t = 0; t < T; t++) any |= mask[(size_t)b * T + t] != 0;
            if (!any)
                return am_error(AM_EINVAL, "encoder: sequence %d of the batch is all padding (its attention mask is "
                                "all zero)\nHINT: every sequence needs at least [CLS]", b);
        }
    return AM_OK;
}

/* Real tokens per sequence when every mask is a prefix (right padding) and some padding
 * exists: fills e->seq_len and returns their total; 0 otherwise (then pad rows are computed). */
static int plan_varlen(Encoder *e, const float *mask, int B, int T) {
    if (!mask) return 0;
    if ((size_t)B > e->seq_cap) {
        e->seq_off = xrealloc(e->seq_off, (size_t)B * sizeof *e->seq_off);
        e->seq_len = xrealloc(e->seq_len, (size_t)B * sizeof *e->seq_len);
        e->att_off = xrealloc(e->att_off, (size_t)B * sizeof *e->att_off);
        e->seq_cap = (size_t)B;
    }
    int total = 0;
    for (int b = 0; b < B; b++) {
        const float *m = mask + (size_t)b * T;
        int n = 0;
        while (n < T && m[n] != 0) n++;
        for (int t = n; t < T; t++)
            if (m[t] != 0) return 0; /* a hole: not right padding */
        e->seq_off[b] = total;
        e->seq_len[b] = n;
        total += n;
    }
    if (total == B * T) return 0;
    e->natt = attention_varlen_att_offsets(e->att_off, e->seq_len, B, e->m->cfg.num_heads);
    return total;
}

static void keep_inputs(Encoder *e, const int32_t *ids, const int32_t *type_ids, const float *mask, int B, int T) {
    size_t N = (size_t)B * T;
    if (N > e->tok_cap) {
        e->ids = xrealloc(e->ids, N * sizeof *e->ids);
        e->tt = xrealloc(e->tt, N * sizeof *e->tt);
        e->mask = xrealloc(e->mask, N * sizeof *e->mask);
        e->pos = xrealloc(e->pos, N * sizeof *e->pos);
        e->tok_cap = N;
    }
    e->has_tt = type_ids != NULL;
    e->has_mask = mask != NULL;
    if (!e->varlen) {
        memcpy(e->ids, ids, N * sizeof *ids);
        if (type_ids) memcpy(e->tt, type_ids, N * sizeof *type_ids);
        if (mask) memcpy(e->mask, mask, N * sizeof *mask);
        return;
    }
    for (int b = 0; b < B; b++) { /* pack the real tokens */
        const size_t src = (size_t)b * T, dst = (size_t)e->seq_off[b], n = (size_t)e->seq_len[b];
        memcpy(e->ids + dst, ids + src, n * sizeof *ids);
        if (type_ids) memcpy(e->tt + dst, type_ids + src, n * sizeof *type_ids);
        memcpy(e->mask + dst, mask + src, n * sizeof *mask);
        for (size_t t = 0; t < n; t++) e->pos[dst + t] = (int32_t)t;
    }
}

/* ------------------------------------------------------------------ adapter plumbing */

typedef struct {
    Encoder *e;
    EncoderLinearInfo li;
    LinearHook hook;
} HookCtx;

static void hook_tramp(void *ud, float *out, const float *inp, int rows, size_t row0) {
    HookCtx *h = ud;
    h->e->adapter.forward(h->e->adapter.ud, &h->li, out, inp, rows, row0);
}

static const LinearHook *make_hook(Encoder *e, HookCtx *h, int layer, int which, int N, int IC, int OC) {
    if (!adapter_active(e, layer, which) || !e->adapter.forward) return NULL;
    h->e = e;
    h->li = (EncoderLinearInfo){ layer, which, e->training, e->seed, N, IC, OC };
    h->hook = (LinearHook){ hook_tramp, h };
    return &h->hook;
}

static void adapter_backward(Encoder *e, int layer, int which, float *dinp, const float *dout,
                             const float *inp, int N, int IC, int OC) {
    if (!adapter_active(e, layer, which) || !e->adapter.backward) return;
    EncoderLinearInfo li = { layer, which, e->training, e->seed, N, IC, OC };
    e->adapter.backward(e->adapter.ud, &li, dinp, dout, inp);
}

/* ------------------------------------------------------------------ forward */

/* Run embeddings and layers 0..nl-1. grad: activations were laid out per layer. */
static void forward_layers(Encoder *e, int nl, int grad) {
    const EncoderConfig *cfg = &e->m->cfg;
    const ParameterTensors *p = &e->m->p;
    const int B = e->B, T = e->T, N = e->varlen ? e->Nr : B * T, C = cfg->hidden_size, FF = cfg->intermediate_size;
    const int NH = cfg->num_heads;
    const float eps = cfg->layer_norm_eps;
    const float ph = e->training ? cfg->hidden_dropout : 0.0f, pa = e->training ? cfg->attention_dropout : 0.0f;
    const int32_t *tt = e->has_tt ? e->tt : NULL;
    const float *mask = e->has_mask ? e->mask : NULL;

    if (e->varlen) /* packed rows: one list of Nr tokens with explicit positions */
        embeddings_layernorm_forward(e->hidden[0], e->emb, e->emb_mean, e->emb_rstd, e->ids, tt, e->pos, p->wte,
                                     p->wpe, p->wtt, p->lnew, p->lneb, 1, N, C, eps, ph, site_key(e, -1, 0));
    else
        embeddings_layernorm_forward(e->hidden[0], e->emb, e->emb_mean, e->emb_rstd, e->ids, tt, NULL,
                                     p->wte, p->wpe, p->wtt, p->lnew, p->lneb, B, T, C, eps, ph, site_key(e, -1, 0));
    for (int l = 0; l < nl; l++) {
        LayerActs *a = &e->act[l];
        const float *h = e->hidden[l];
        HookCtx hc[AM_LIN_COUNT];
        linear_forward_ex(a->qkv, h, p->layer[l].qkvw, p->layer[l].qkvb, N, C, 3 * C,
                          make_hook(e, &hc[0], l, AM_LIN_QKV, N, C, 3 * C));
        if (e->varlen)
            attention_forward_varlen(a->ctx, grad ? a->att : NULL, e->att_scratch, a->qkv, e->seq_off, e->seq_len,
                                     e->att_off, B, T, C, NH, pa, site_key(e, l, SITE_ATT));
        else
            attention_forward(a->ctx, grad ? a->att : NULL, e->att_scratch, a->qkv, mask, B, T, C, NH, pa,
                              site_key(e, l, SITE_ATT));
        linear_residual_layernorm_forward(a->ln1, a->res1, a->mean1, a->rstd1, a->ctx, p->layer[l].attow,
                                          p->layer[l].attob, h, p->layer[l].ln1w, p->layer[l].ln1b, N, C, C, eps,
                                          ph, site_key(e, l, SITE_ATT_OUT),
                                          make_hook(e, &hc[1], l, AM_LIN_ATTN_OUT, N, C, C));
        linear_gelu_forward(a->fcpre, a->fcact, a->ln1, p->layer[l].fcw, p->layer[l].fcb, N, C, FF,
                            make_hook(e, &hc[2], l, AM_LIN_FFN_IN, N, C, FF));
        linear_residual_layernorm_forward(e->hidden[l + 1], a->res2, a->mean2, a->rstd2, a->fcact,
                                          p->layer[l].fcprojw, p->layer[l].fcprojb, a->ln1, p->layer[l].ln2w,
                                          p->layer[l].ln2b, N, FF, C, eps, ph, site_key(e, l, SITE_FFN_OUT),
                                          make_hook(e, &hc[3], l, AM_LIN_FFN_OUT, N, FF, C));
    }
    e->n_layers_done = nl;
}

static int forward_common(Encoder *e, const int32_t *ids, const int32_t *type_ids, const float *mask,
                          int B, int T, int training, uint64_t seed, int grad, int nl) {
    e->grad_ready = 0;
    e->states_public = 0;
    e->B = 0;
    int rc = check_inputs(e, ids, type_ids, mask, B, T);
    if (rc) return rc;
    /* right padding: compute the real tokens only, always for inference (exact), and in
     * training when skip_padding is on (exact for losses that ignore padded positions) */
    e->Nr = (!grad && !training) || e->skip_padding ? plan_varlen(e, mask, B, T) : 0;
    e->varlen = e->Nr > 0;
    memset(e->pub_ready, 0, sizeof e->pub_ready);
    rc = arena_prepare(e, B, T, e->varlen ? e->Nr : B * T, grad);
    if (rc) return rc;
    keep_inputs(e, ids, type_ids, mask, B, T);
    e->B = B;
    e->T = T;
    e->training = training;
    e->seed = seed;
    forward_layers(e, nl, grad);
    e->grad_ready = grad;
    return AM_OK;
}

int encoder_forward(Encoder *e, const int32_t *ids, const int32_t *type_ids, const float *mask,
                    int B, int T, int training, uint64_t seed) {
    int rc = forward_common(e, ids, type_ids, mask, B, T, training != 0, seed, 1, e->m->cfg.num_layers);
    e->states_public = rc == AM_OK;
    return rc;
}

/* ------------------------------------------------------------------ backward */

int encoder_backward(Encoder *e, const float *const *dhidden, float *grads) {
    if (!e->grad_ready)
        return am_error(AM_EINVAL, "encoder_backward: no forward pass to differentiate "
                        "(call encoder_forward first; encoder_embed keeps no activations)");
    AM_ASSERT(dhidden != NULL && grads != NULL);
    if (e->nth_sized != am_parallel_get_threads())
        return am_error(AM_EINVAL, "encoder_backward: the thread count changed since encoder_forward");
    const EncoderConfig *cfg = &e->m->cfg;
    const ParameterTensors *p = &e->m->p;
    const int B = e->B, T = e->T, N = e->varlen ? e->Nr : B * T, C = cfg->hidden_size, FF = cfg->intermediate_size;
    const int NH = cfg->num_heads, L = cfg->num_layers;
    const float ph = e->training ? cfg->hidden_dropout : 0.0f, pa = e->training ? cfg->attention_dropout : 0.0f;
    const float *mask = e->has_mask ? e->mask : NULL;
    const size_t NC = (size_t)N * C;
    ParameterTensors gp;
    param_tensors_point(&gp, &e->m->tab, cfg, grads);

    int top = -1;
    for (int l = L; l >= 0; l--)
        if (dhidden[l]) { top = l; break; }
    if (top < 0) return AM_OK;
    /* need[l]: layers 0..l-1 or the embeddings need a gradient, i.e. d hidden[l] is useful */
    int need[AM_MAX_LAYERS + 1];
    need[0] = emb_needs_grad(e);
    for (int l = 1; l <= L; l++) need[l] = need[l - 1] || layer_needs_grad(e, l - 1);
    if (!need[top]) return AM_OK;

    float *G = e->g, *D1 = e->d1, *D2 = e->d2;
    if (e->varlen) seq_pack(G, dhidden[top], e->seq_off, e->seq_len, B, T, C, 0); /* padded rows dropped */
    else memcpy(G, dhidden[top], NC * sizeof(float));
#define W_(ll, ww) (e->lin[ll][ww].w ? 1 : 0)
#define B_(ll, ww) (e->lin[ll][ww].b ? 1 : 0)
    for (int l = top - 1; l >= 0; l--) {
        if (!need[l + 1]) break;
        const LayerActs *a = &e->act[l];
        const uint32_t k_ffn = site_key(e, l, SITE_FFN_OUT), k_ao = site_key(e, l, SITE_ATT_OUT);
        /* 1. LayerNorm-2 (+ FFN-out dropout): D1 = d res2 (flows to ln1), DP = d FFN-out */
        float *DP = ph > 0 ? D2 : D1;
        residual_layernorm_backward(D1, DP, e->ln_tr[l][1][0] ? gp.layer[l].ln2w : NULL,
                                    e->ln_tr[l][1][1] ? gp.layer[l].ln2b : NULL, G, a->res2, p->layer[l].ln2w,
                                    a->mean2, a->rstd2, e->ln_partials, N, C, ph, k_ffn);
        /* 2. FFN out linear (+ GELU'): dff = (DP · W2) ∘ gelu'(fcpre) */
        float *dw2 = W_(l, 3) ? gp.layer[l].fcprojw : NULL, *db2 = B_(l, 3) ? gp.layer[l].fcprojb : NULL;
        if (adapter_active(e, l, AM_LIN_FFN_OUT)) {
            linear_backward_set(e->dff, dw2, db2, DP, a->fcact, p->layer[l].fcprojw, N, FF, C);
            adapter_backward(e, l, AM_LIN_FFN_OUT, e->dff, DP, a->fcact, N, FF, C);
            gelu_backward(e->dff, a->fcpre, e->dff, (size_t)N * FF);
        } else {
            gelu_linear_backward(e->dff, dw2, db2, DP, a->fcact, a->fcpre, p->layer[l].fcprojw, N, FF, C);
        }
        /* 3. FFN in linear: D1 += dff · W1 */
        linear_backward(D1, W_(l, 2) ? gp.layer[l].fcw : NULL, B_(l, 2) ? gp.layer[l].fcb : NULL, e->dff, a->ln1,
                        p->layer[l].fcw, N, C, FF);
        adapter_backward(e, l, AM_LIN_FFN_IN, D1, e->dff, a->ln1, N, C, FF);
        /* 4. LayerNorm-1 (+ attention-out dropout): G = d res1 (flows to h), DP = d attn-out */
        DP = ph > 0 ? D2 : G;
        residual_layernorm_backward(G, DP, e->ln_tr[l][0][0] ? gp.layer[l].ln1w : NULL,
                                    e->ln_tr[l][0][1] ? gp.layer[l].ln1b : NULL, D1, a->res1, p->layer[l].ln1w,
                                    a->mean1, a->rstd1, e->ln_partials, N, C, ph, k_ao);
        /* 5. attention output linear: dctx = DP · Wo */
        linear_backward_set(e->dctx, W_(l, 1) ? gp.layer[l].attow : NULL, B_(l, 1) ? gp.layer[l].attob : NULL, DP,
                            a->ctx, p->layer[l].attow, N, C, C);
        adapter_backward(e, l, AM_LIN_ATTN_OUT, e->dctx, DP, a->ctx, N, C, C);
        /* 6. attention core */
        if (e->varlen)
            attention_backward_varlen(e->dqkv, e->att_scratch, e->dctx, a->qkv, a->att, e->seq_off, e->seq_len,
                                      e->att_off, B, T, C, NH, pa, site_key(e, l, SITE_ATT));
        else
            attention_backward(e->dqkv, e->att_scratch, e->dctx, a->qkv, a->att, mask, B, T, C, NH, pa,
                               site_key(e, l, SITE_ATT));
        /* 7. QKV linear: G += dqkv · Wqkv (only if something below needs it) */
        const float *h = e->hidden[l];
        linear_backward(need[l] ? G : NULL, W_(l, 0) ? gp.layer[l].qkvw : NULL, B_(l, 0) ? gp.layer[l].qkvb : NULL,
                        e->dqkv, h, p->layer[l].qkvw, N, C, 3 * C);
        /* the adapter's own gradients are needed even when nothing below is (dinp = NULL) */
        adapter_backward(e, l, AM_LIN_QKV, need[l] ? G : NULL, e->dqkv, h, N, C, 3 * C);
        if (!need[l]) return AM_OK;
        if (dhidden[l]) {
            if (e->varlen) seq_pack(G, dhidden[l], e->seq_off, e->seq_len, B, T, C, 1);
            else vec_add(G, dhidden[l], NC);
        }
    }
#undef W_
#undef B_
    /* embeddings: G = d hidden[0] -> dropout -> LayerNorm -> scatter into the tables */
    if (!need[0]) return AM_OK;
    if (ph > 0) dropout_backward(G, G, NC, ph, site_key(e, -1, 0), 0);
    residual_layernorm_backward(D1, D1, e->emb_tr[3] ? gp.lnew : NULL, e->emb_tr[4] ? gp.lneb : NULL, G, e->emb,
                                p->lnew, e->emb_mean, e->emb_rstd, e->ln_partials, N, C, 0.0f, 0);
    if (e->varlen)
        embeddings_backward_rows(e->emb_tr[0] ? gp.wte : NULL, e->emb_tr[1] ? gp.wpe : NULL,
                                 e->emb_tr[2] ? gp.wtt : NULL, D1, e->ids, e->has_tt ? e->tt : NULL, e->pos, N, C,
                                 cfg->pad_token_id);
    else
        embeddings_backward(e->emb_tr[0] ? gp.wte : NULL, e->emb_tr[1] ? gp.wpe : NULL, e->emb_tr[2] ? gp.wtt : NULL,
                            D1, e->ids, e->has_tt ? e->tt : NULL, B, T, C, cfg->pad_token_id);
    return AM_OK;
}

/* ------------------------------------------------------------------ pooling and embed */

const char *const pool_names[3] = { [AM_POOL_MEAN] = "mean", [AM_POOL_CLS] = "cls", NULL };

int pool_from_name(const char *name) {
    for (int i = 0; name && pool_names[i]; i++)
        if (strcmp(name, pool_names[i]) == 0) return i;
    return -1;
}

const char *pool_name(int pooling) {
    return pooling >= 0 && pooling < 2 ? pool_names[pooling] : NULL;
}

int pool_forward(float *out, const float *inp, const float *mask, int B, int T, int C, int D, int pooling) {
    if (D < 1 || D > C) return am_error(AM_EINVAL, "pooling: dim %d outside [1, %d]", D, C);
    switch (pooling) {
    case AM_POOL_MEAN: pool_mean_forward(out, inp, mask, B, T, C, D); return AM_OK;
    case AM_POOL_CLS: pool_cls_forward(out, inp, B, T, C, D); return AM_OK;
    default: return am_error(AM_EINVAL, "pooling: unknown mode %d (mean or cls)", pooling);
    }
}

int pool_backward(float *dinp, const float *dout, const float *mask, int B, int T, int C, int D, int pooling) {
    if (D < 1 || D > C) return am_error(AM_EINVAL, "pooling: dim %d outside [1, %d]", D, C);
    switch (pooling) {
    case AM_POOL_MEAN: pool_mean_backward(dinp, dout, mask, B, T, C, D); return AM_OK;
    case AM_POOL_CLS: pool_cls_backward(dinp, dout, B, T, C, D); return AM_OK;
    default: return am_error(AM_EINVAL, "pooling: unknown mode %d (mean or cls)", pooling);
    }
}

int encoder_pool_hidden(const Encoder *e, int layer, int pooling, int normalize, int dim, float *out) {
    const int C = e->m->cfg.hidden_size, B = e->B, T = e->T;
    if (B == 0) return am_error(AM_EINVAL, "encoder_pool_hidden: no forward pass to pool");
    if (layer < 0) layer = e->n_layers_done;
    if (layer > e->n_layers_done)
        return am_error(AM_EINVAL, "encoder_pool_hidden: layer %d was not computed (last pass went up to %d)",
                        layer, e->n_layers_done);
    if (dim == 0) dim = C;
    if (dim < 1 || dim > C) return am_error(AM_EINVAL, "encoder_pool_hidden: dim %d outside [1, %d]", dim, C);
    if (pooling != AM_POOL_MEAN && pooling != AM_POOL_CLS)
        return am_error(AM_EINVAL, "encoder_pool_hidden: unknown pooling %d (mean or cls)", pooling);
    const float *h = e->hidden[layer];
    if (e->varlen) {
        for (int b = 0; b < B; b++) {
            const float *rows = h + (size_t)e->seq_off[b] * C;
            if (pooling == AM_POOL_CLS) memcpy(out + (size_t)b * dim, rows, (size_t)dim * sizeof(float));
            else pool_mean_forward(out + (size_t)b * dim, rows, e->mask + e->seq_off[b], 1, e->seq_len[b], C, dim);
        }
    } else {
        int rc = pool_forward(out, h, e->has_mask ? e->mask : NULL, B, T, C, dim, pooling);
        if (rc) return rc;
    }
    if (normalize) l2norm_forward(out, out, B, dim);
    return AM_OK;
}

int encoder_embed(Encoder *e, const int32_t *ids, const int32_t *type_ids, const float *mask,
                  int B, int T, int pooling, int normalize, int layer, int dim, float *out) {
    const EncoderConfig *cfg = &e->m->cfg;
    const int L = cfg->num_layers, C = cfg->hidden_size;
    if (layer < 0) layer = L;
    if (layer > L) return am_error(AM_EINVAL, "encode: layer %d outside [0, %d]", layer, L);
    if (dim == 0) dim = C;
    if (dim < 1 || dim > C) return am_error(AM_EINVAL, "encode: dim %d outside [1, %d]", dim, C);
    if (pooling != AM_POOL_MEAN && pooling != AM_POOL_CLS)
        return am_error(AM_EINVAL, "encode: unknown pooling %d (mean or cls)", pooling);
    int rc = forward_common(e, ids, type_ids, mask, B, T, 0, 0, 0, layer);
    if (rc) return rc;
    return encoder_pool_hidden(e, layer, pooling, normalize, dim, out);
}
