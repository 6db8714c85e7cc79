/* trainer.c - the training step, optimiser state and resumable state blobs (see trainer.h).
 *
 * Dims: R rows (sequences) of the micro-batch, T tokens (longest group), N = R*T, C hidden,
 * L layers, V vocab. */
#include "trainer.h"
#include "am_base.h"
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct Trainer {
    Model *m;
    TrainConfig cfg;          /* cfg.trainable = NULL (the copy is user_tr) */
    int ntab;
    uint8_t *user_tr;         /* (ntab) the configured mask */
    uint8_t *opt_tr;          /* (ntab) updated by the optimiser (in some window) */
    uint8_t *enc_tr;          /* (ntab) what the encoder computes gradients for */
    Encoder *e;
    Lora *lora;
    float *grads, *mom, *vel, *theta0;
    float *lm, *lv;           /* LoRA moments */
    OptimSegment *seg_emb, *seg_mlm, *seg_zero, *lseg;
    int nseg_emb, nseg_mlm, nseg_zero, nlseg;
    int64_t step;             /* updates done */
    int micro;                /* micro-batches accumulated in the current window */
    int win_mlm;              /* the window contains an MLM micro-batch */
    int grad_only;            /* trainer_gradient: no accumulation window, no update */
    MlmHead *head;
    /* per-step scratch (grow only) */
    int32_t *ids, *tt, *lab;
    float *mask;
    size_t tok_cap;
    float *pooled, *dpooled;  /* (L+1) x (R, C) */
    size_t pool_cap;          /* floats per layer */
    float *dh[AM_MAX_LAYERS + 1];
    size_t dh_cap[AM_MAX_LAYERS + 1];
};

void train_config_default(TrainConfig *c) {
    memset(c, 0, sizeof *c);
    c->seed = 42;
    c->pooling = AM_POOL_MEAN;
    c->dropout = 1;
    adamw_config_default(&c->adamw);
    c->no_decay_bias_ln = 1;
    lr_schedule_default(&c->sched);
    c->max_grad_norm = 1.0f;
    c->grad_accum = 1;
    c->train_base = 1;
    c->trainable = NULL;
    lora_config_default(&c->lora);
    c->lora.rank = 0;
    c->keep_theta0 = 1;
    c->skip_padding = 1;
}

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int check_config(const TrainConfig *c, const Model *m) {
    if (c->pooling != AM_POOL_MEAN && c->pooling != AM_POOL_CLS)
        return am_error(AM_EINVAL, "train: unknown pooling %d (mean or cls)", c->pooling);
    const AdamWConfig *a = &c->adamw;
    if (!(a->lr >= 0) || !isfinite(a->lr)) return am_error(AM_EINVAL, "train: lr must be >= 0 (got %g)", (double)a->lr);
    if (!(a->beta1 >= 0 && a->beta1 < 1) || !(a->beta2 >= 0 && a->beta2 < 1))
        return am_error(AM_EINVAL, "train: AdamW betas must be in [0, 1)");
    if (!(a->eps > 0)) return am_error(AM_EINVAL, "train: AdamW eps must be > 0");
    if (!(a->weight_decay >= 0)) return am_error(AM_EINVAL, "train: weight_decay must be >= 0");
    if (c->sched.kind < AM_SCHED_CONSTANT || c->sched.kind > AM_SCHED_COSINE)
        return am_error(AM_EINVAL, "train: unknown lr schedule %d (constant, linear or cosine)", c->sched.kind);
    if (c->sched.warmup_steps < 0 || c->sched.total_steps < 0)
        return am_error(AM_EINVAL, "train: warmup_steps and total_steps must be >= 0");
    if (c->grad_accum < 1) return am_error(AM_EINVAL, "train: grad_accum must be >= 1");
    if (!isfinite(c->max_grad_norm)) return am_error(AM_EINVAL, "train: max_grad_norm is not finite");
    if (!c->train_base && c->lora.rank <= 0)
        return am_error(AM_EINVAL, "train: nothing to train (train_base = 0 and no LoRA)");
    (void)m;
    return AM_OK;
}

/* ------------------------------------------------------------------ masks and segments */

static void free_segments(Trainer *t) {
    free(t->seg_emb);
    free(t->seg_mlm);
    free(t->seg_zero);
    free(t->lseg);
    t->seg_emb = t->seg_mlm = t->seg_zero = t->lseg = NULL;
}

/* masks and segments from cfg + user_tr */
static void build_masks(Trainer *t) {
    const ParamTable *tab = &t->m->tab;
    const int n = t->ntab;
    uint8_t *emb = xmalloc((size_t)n), *zero = xmalloc((size_t)n);
    for (int i = 0; i < n; i++) {
        const char *nm = tab->t[i].name;
        int pooler = starts(nm, "pooler."), head = starts(nm, "cls.");
        t->opt_tr[i] = t->cfg.train_base && t->user_tr[i] && !pooler;
        emb[i] = t->opt_tr[i] && !head;
        t->enc_tr[i] = emb[i];
    }
    for (int i = 0; i < n; i++) zero[i] = (t->enc_tr[i] || starts(tab->t[i].name, "cls.")) && !t->opt_tr[i];
    free_segments(t);
    t->nseg_emb = optim_segments_from_table(tab, emb, t->cfg.no_decay_bias_ln, &t->seg_emb);
    t->nseg_mlm = optim_segments_from_table(tab, t->opt_tr, t->cfg.no_decay_bias_ln, &t->seg_mlm);
    t->nseg_zero = optim_segments_from_table(tab, zero, 0, &t->seg_zero);
    t->nlseg = 0;
    if (t->lora) t->nlseg = optim_segments_from_table(lora_table(t->lora), NULL, 0, &t->lseg);
    encoder_set_trainable(t->e, t->enc_tr);
    free(emb);
    free(zero);
}

/* ------------------------------------------------------------------ lifecycle */

int trainer_new(Model *m, const TrainConfig *cfg, Trainer **out) {
    *out = NULL;
    int rc = check_config(cfg, m);
    if (rc) return rc;
    Trainer *t = xcalloc(1, sizeof *t);
    t->m = m;
    t->cfg = *cfg;
    t->cfg.trainable = NULL;
    t->ntab = m->tab.n;
    t->user_tr = xmalloc((size_t)t->ntab);
    t->opt_tr = xmalloc((size_t)t->ntab);
    t->enc_tr = xmalloc((size_t)t->ntab);
    for (int i = 0; i < t->ntab; i++) t->user_tr[i] = cfg->trainable ? cfg->trainable[i] != 0 : 1;
    const size_t P = m->tab.total;
    t->grads = am_alloc_floats(P);
    t->mom = am_alloc_floats(P);
    t->vel = am_alloc_floats(P);
    t->theta0 = cfg->keep_theta0 ? am_alloc_floats(P) : NULL;
    if (!t->grads || !t->mom || !t->vel || (cfg->keep_theta0 && !t->theta0)) {
        trainer_delete(t);
        return am_error(AM_ENOMEM, "train: cannot allocate gradients and AdamW state (%.1f MB)", 4.0 * 3 * P / 1e6);
    }
    memset(t->grads, 0, P * sizeof(float));
    memset(t->mom, 0, P * sizeof(float));
    memset(t->vel, 0, P * sizeof(float));
    if (t->theta0) memcpy(t->theta0, m->params, P * sizeof(float));
    encoder_new(m, &t->e);
    encoder_set_skip_padding(t->e, cfg->skip_padding);
    if (cfg->lora.rank > 0) {
        if ((rc = lora_new(m, &cfg->lora, &t->lora))) {
            trainer_delete(t);
            return rc;
        }
        lora_init(t->lora, cfg->seed);
        const size_t LP = lora_table(t->lora)->total;
        t->lm = am_alloc_floats(LP);
        t->lv = am_alloc_floats(LP);
        if (!t->lm || !t->lv) {
            trainer_delete(t);
            return am_error(AM_ENOMEM, "train: cannot allocate the LoRA optimiser state");
        }
        memset(t->lm, 0, LP * sizeof(float));
        memset(t->lv, 0, LP * sizeof(float));
        lora_attach(t->lora, t->e);
    }
    mlm_head_new(&t->head);
    build_masks(t);
    *out = t;
    return AM_OK;
}

void trainer_delete(Trainer *t) {
    if (!t) return;
    encoder_delete(t->e);
    lora_delete(t->lora);
    mlm_head_delete(t->head);
    am_free_aligned(t->grads);
    am_free_aligned(t->mom);
    am_free_aligned(t->vel);
    am_free_aligned(t->theta0);
    am_free_aligned(t->lm);
    am_free_aligned(t->lv);
    free_segments(t);
    free(t->user_tr);
    free(t->opt_tr);
    free(t->enc_tr);
    free(t->ids);
    free(t->tt);
    free(t->lab);
    free(t->mask);
    am_free_aligned(t->pooled);
    for (int l = 0; l <= AM_MAX_LAYERS; l++) am_free_aligned(t->dh[l]);
    free(t);
}

Encoder *trainer_encoder(Trainer *t) { return t->e; }
Lora *trainer_lora(Trainer *t) { return t->lora; }
const TrainConfig *trainer_config(const Trainer *t) { return &t->cfg; }
int64_t trainer_steps(const Trainer *t) { return t->step; }

int trainer_set_total_steps(Trainer *t, int64_t total) {
    if (total < 1 || total < t->step)
        return am_error(AM_EINVAL, "train: the step target %lld is below the %lld updates already done",
                        (long long)total, (long long)t->step);
    t->cfg.sched.total_steps = total;
    return AM_OK;
}

/* ------------------------------------------------------------------ the step */

static uint64_t micro_seed(const Trainer *t) {
    uint64_t k[3] = { t->cfg.seed, (uint64_t)t->step, (uint64_t)t->micro };
    return am_hash64(k, sizeof k, 0x616d616c67616dULL);
}

static int assemble(Trainer *t, const TrainBatch *b, int *Rout, int *Tout, int64_t *tokens) {
    const TrainTokens *g[3] = { &b->a, &b->pos, &b->neg };
    int R = 0, T = 0;
    for (int k = 0; k < 3; k++) {
        if (g[k]->B < 0) return am_error(AM_EINVAL, "train: negative group size");
        if (g[k]->B == 0) continue;
        if (!g[k]->ids || g[k]->T < 1) return am_error(AM_EINVAL, "train: a token group has no ids or T < 1");
        R += g[k]->B;
        T = g[k]->T > T ? g[k]->T : T;
    }
    const size_t N = (size_t)R * T;
    if (N > t->tok_cap) {
        t->ids = xrealloc(t->ids, N * sizeof *t->ids);
        t->tt = xrealloc(t->tt, N * sizeof *t->tt);
        t->lab = xrealloc(t->lab, N * sizeof *t->lab);
        t->mask = xrealloc(t->mask, N * sizeof *t->mask);
        t->tok_cap = N;
    }
    const int32_t pad = t->m->cfg.pad_token_id;
    int row = 0;
    int64_t tok = 0;
    for (int k = 0; k < 3; k++) {
        const TrainTokens *x = g[k];
        for (int r = 0; r < x->B; r++, row++)
            for (int j = 0; j < T; j++) {
                size_t o = (size_t)row * T + j, si = (size_t)r * x->T + j;
                if (j < x->T) {
                    t->ids[o] = x->ids[si];
                    t->tt[o] = x->type_ids ? x->type_ids[si] : 0;
                    t->mask[o] = x->mask ? x->mask[si] : 1.0f;
                } else {
                    t->ids[o] = pad;
                    t->tt[o] = 0;
                    t->mask[o] = 0.0f;
                }
                tok += t->mask[o] != 0;
            }
    }
    *Rout = R;
    *Tout = T;
    *tokens = tok;
    return AM_OK;
}

static float *grow(float **p, size_t *cap, size_t n) {
    if (n > *cap) {
        am_free_aligned(*p);
        *p = am_alloc_floats(n);
        *cap = *p ? n : 0;
    }
    return *p;
}

static int groups_of(Trainer *t, OptimGroup *g, int mlm_window) {
    int ng = 0;
    g[ng++] = (OptimGroup){ t->m->params, t->grads, t->mom, t->vel, mlm_window ? t->seg_mlm : t->seg_emb,
                            mlm_window ? t->nseg_mlm : t->nseg_emb };
    if (t->lora) g[ng++] = (OptimGroup){ lora_params(t->lora), lora_grads(t->lora), t->lm, t->lv, t->lseg, t->nlseg };
    return ng;
}

/* zero every gradient the trainer may have accumulated */
static void discard_window(Trainer *t) {
    OptimGroup g[3];
    int ng = groups_of(t, g, 1);
    g[ng++] = (OptimGroup){ t->m->params, t->grads, t->mom, t->vel, t->seg_zero, t->nseg_zero };
    optim_zero_grads(g, ng);
    t->micro = 0;
    t->win_mlm = 0;
}

static int nonfinite(Trainer *t, const char *what, double v, const LossResult *terms) {
    char buf[512];
    size_t o = 0;
    buf[0] = 0;
    for (int k = 0; terms && k < terms->n_terms && o + 64 < sizeof buf; k++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, " %s=%g", terms->term[k].name, terms->term[k].value);
    long long step = (long long)t->step;
    discard_window(t);
    return am_error(AM_EFORMAT, "train step %lld: non-finite %s (%g)%s%s; parameters were not updated\n"
                    "HINT: lower the learning rate, enable clipping, or check the batch", step, what, v,
                    o ? ", terms:" : "", buf);
}

static double sched_factor(const Trainer *t, int64_t step) {
    LRSchedule s = t->cfg.sched;
    if (s.total_steps <= 0 && s.kind != AM_SCHED_CONSTANT) s.kind = AM_SCHED_CONSTANT; /* no horizon: no decay */
    return lr_schedule_factor(&s, step);
}

int trainer_step(Trainer *t, const TrainBatch *b, const LossSpec *s, StepStats *out) {
    StepStats st;
    memset(&st, 0, sizeof st);
    if (out) memset(out, 0, sizeof *out);
    if (!b || !s) return am_error(AM_EINVAL, "train: NULL batch or loss");
    const EncoderConfig *mc = &t->m->cfg;
    const int L = mc->num_layers, C = mc->hidden_size;
    const int is_mlm = s->kind == AM_LOSS_MLM;
    const int n = b->a.B;
    if (n < 1) return am_error(AM_EINVAL, "train: empty batch");
    int P = 0, K = 0, rc;
    if (is_mlm) {
        if (b->pos.B || b->neg.B) return am_error(AM_EINVAL, "train: an MLM batch has only text (group a)");
        if (!mc->has_mlm_head)
            return am_error(AM_EINVAL, "train: mlm needs a model with an MLM head\nHINT: has_mlm_head = 1 in the config");
        if ((rc = loss_spec_check(s, L, C, n, 1, 0, 0))) return rc;
    } else {
        if (b->pos.B < n || b->pos.B % n || b->neg.B % n)
            return am_error(AM_EINVAL, "train: %d queries need a multiple of %d positives (got %d) and of hard "
                            "negatives (got %d)", n, n, b->pos.B, b->neg.B);
        P = b->pos.B / n;
        K = b->neg.B / n;
        if ((rc = loss_spec_check(s, L, C, n, P, K, b->scores != NULL))) return rc;
    }
    int R = 0, T = 0;
    double t0 = am_now();
    if ((rc = assemble(t, b, &R, &T, &st.tokens))) return rc;
    const size_t N = (size_t)R * T;
    st.sequences = R;
    const uint64_t ms = micro_seed(t);
    if (is_mlm) {
        st.mlm_masked = mlm_mask_tokens(t->ids, t->lab, t->ids, t->mask, (int)N, mc->vocab_size, mc->pad_token_id,
                                        &s->mlm, ms);
    }
    if (t->lora && (rc = lora_prepare(t->lora, (int)N))) return rc;
    if ((rc = encoder_forward(t->e, t->ids, t->tt, t->mask, R, T, t->cfg.dropout, ms))) return rc;
    double t1 = am_now();

    uint8_t need[AM_MAX_LAYERS + 1];
    loss_spec_layers(s, L, C, ms, need);
    const float gscale = t->grad_only ? 1.0f : 1.0f / (float)t->cfg.grad_accum;
    const float *dhid[AM_MAX_LAYERS + 1] = { 0 };
    for (int l = 0; l <= L; l++)
        if (need[l] && !grow(&t->dh[l], &t->dh_cap[l], N * C))
            return am_error(AM_ENOMEM, "train: cannot allocate hidden-state gradients (%zu x %d)", N, C);
    if (is_mlm) {
        MlmStats mst;
        if ((rc = mlm_head_forward(t->head, t->m, encoder_hidden(t->e, L), t->lab, (int)N, &mst))) return rc;
        st.loss = mst.loss;
        st.mlm_correct = mst.n_correct;
        st.terms.total = mst.loss;
        st.terms.n_terms = 1;
        snprintf(st.terms.term[0].name, sizeof st.terms.term[0].name, "mlm");
        st.terms.term[0].value = mst.loss;
        if (!isfinite(st.loss)) return nonfinite(t, "loss", st.loss, &st.terms);
        memset(t->dh[L], 0, N * C * sizeof(float));
        if ((rc = mlm_head_backward(t->head, t->dh[L], t->grads, gscale, t->opt_tr[0] /* wte */))) return rc;
        dhid[L] = t->dh[L];
    } else {
        if (!grow(&t->pooled, &t->pool_cap, (size_t)2 * (L + 1) * R * C))
            return am_error(AM_ENOMEM, "train: cannot allocate pooled embeddings");
        t->dpooled = t->pooled + (size_t)(L + 1) * R * C;
        LossViews v;
        memset(&v, 0, sizeof v);
        v.L = L;
        v.C = C;
        v.n = n;
        v.n_pos = P;
        v.n_neg = K;
        v.gold = b->scores;
        v.cand = b->cand;
        v.seed = ms;
        for (int l = 0; l <= L; l++) {
            if (!need[l]) continue;
            float *pl = t->pooled + (size_t)l * R * C, *dl = t->dpooled + (size_t)l * R * C;
            if ((rc = pool_forward(pl, encoder_hidden(t->e, l), t->mask, R, T, C, C, t->cfg.pooling))) return rc;
            memset(dl, 0, (size_t)R * C * sizeof(float));
            v.emb[l] = pl;
            v.demb[l] = dl;
        }
        if ((rc = loss_eval(s, &v, (double)gscale, &st.terms))) return rc;
        st.loss = st.terms.total;
        if (!isfinite(st.loss)) return nonfinite(t, "loss", st.loss, &st.terms);
        for (int l = 0; l <= L; l++) {
            if (!need[l]) continue;
            const float *dl = t->dpooled + (size_t)l * R * C;
            int any = 0;
            for (size_t i = 0; i < (size_t)R * C && !any; i++) any = dl[i] != 0;
            if (!any) continue; /* e.g. a KL teacher: detached */
            memset(t->dh[l], 0, N * C * sizeof(float));
            pool_backward(t->dh[l], dl, t->mask, R, T, C, C, t->cfg.pooling);
            dhid[l] = t->dh[l];
        }
    }
    double t2 = am_now();
    if ((rc = encoder_backward(t->e, dhid, t->grads))) return rc;
    double t3 = am_now();
    if (!t->grad_only) {
        t->micro++;
        t->win_mlm |= is_mlm;
    }
    st.lr = (double)t->cfg.adamw.lr * sched_factor(t, t->step);
    if (!t->grad_only && t->micro >= t->cfg.grad_accum) {
        OptimGroup g[2];
        int ng = groups_of(t, g, t->win_mlm);
        double norm = optim_grad_norm(g, ng);
        if (!isfinite(norm)) return nonfinite(t, "gradient norm", norm, &st.terms);
        float coef = optim_clip_coef(norm, t->cfg.max_grad_norm);
        adamw_update(g, ng, &t->cfg.adamw, (float)st.lr, t->step + 1, coef, 1);
        if (t->nseg_zero) {
            OptimGroup z = { t->m->params, t->grads, t->mom, t->vel, t->seg_zero, t->nseg_zero };
            optim_zero_grads(&z, 1);
        }
        t->step++;
        t->micro = 0;
        t->win_mlm = 0;
        st.updated = 1;
        st.grad_norm = norm;
        st.clip_coef = coef;
    }
    st.step = t->step;
    double t4 = am_now();
    st.ms_forward = (t1 - t0) * 1e3;
    st.ms_loss = (t2 - t1) * 1e3;
    st.ms_backward = (t3 - t2) * 1e3;
    st.ms_optim = (t4 - t3) * 1e3;
    if (out) *out = st;
    return AM_OK;
}

int trainer_gradient(Trainer *t, const TrainBatch *b, const LossSpec *s, float *grad, StepStats *out) {
    if (t->micro) return am_error(AM_EINVAL, "train: a gradient in the middle of an accumulation window");
    if (t->lora) return am_error(AM_EINVAL, "train: a gradient of the base weights with LoRA attached");
    const size_t n = t->m->tab.total * sizeof(float);
    memset(t->grads, 0, n);
    t->grad_only = 1;
    int rc = trainer_step(t, b, s, out);
    t->grad_only = 0;
    if (rc == AM_OK && grad) memcpy(grad, t->grads, n);
    memset(t->grads, 0, n);
    return rc;
}

/* ------------------------------------------------------------------ merged model, task vector */

void trainer_merged_params(Trainer *t, float *out) {
    memcpy(out, t->m->params, t->m->tab.total * sizeof(float));
    if (t->lora) lora_merge(t->lora, out);
}

int trainer_task_vector(Trainer *t, float *out) {
    if (!t->theta0) return am_error(AM_EINVAL, "train: θ0 was not kept (keep_theta0 = 0): no task vector");
    trainer_merged_params(t, out);
    for (size_t i = 0; i < t->m->tab.total; i++) out[i] -= t->theta0[i];
    return AM_OK;
}

/* ------------------------------------------------------------------ state blobs */

#define STATE_MAGIC "AMTS"
#define STATE_VERSION 1u

typedef struct { uint8_t *p; size_t n, cap; } Buf;
static void put(Buf *b, const void *x, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, x, n);
    b->n += n;
}
static void put_u32(Buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(Buf *b, uint64_t v) { put(b, &v, 8); }
static void put_f32(Buf *b, float v) { put(b, &v, 4); }

typedef struct { const uint8_t *p; size_t n, off; int bad; } Rd;
static void get(Rd *r, void *x, size_t n) {
    if (r->bad || r->off + n > r->n) { r->bad = 1; memset(x, 0, n); return; }
    memcpy(x, r->p + r->off, n);
    r->off += n;
}
static uint32_t get_u32(Rd *r) { uint32_t v; get(r, &v, 4); return v; }
static uint64_t get_u64(Rd *r) { uint64_t v; get(r, &v, 8); return v; }
static float get_f32(Rd *r) { float v; get(r, &v, 4); return v; }

static uint64_t table_hash(const ParamTable *tab) {
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < tab->n; i++) {
        h = am_hash64(tab->t[i].name, strlen(tab->t[i].name), h);
        h = am_hash64(tab->t[i].shape, sizeof tab->t[i].shape, h);
    }
    return h;
}

enum { ST_HAS_LORA = 1, ST_HAS_THETA0 = 2, ST_HAS_GRADS = 4 };

int trainer_state_save(const Trainer *t, void **blob, size_t *len) {
    *blob = NULL;
    *len = 0;
    Buf b = { 0 };
    const TrainConfig *c = &t->cfg;
    const size_t P = t->m->tab.total, LP = t->lora ? lora_table(t->lora)->total : 0;
    uint32_t flags = (t->lora ? ST_HAS_LORA : 0) | (t->theta0 ? ST_HAS_THETA0 : 0) | (t->micro ? ST_HAS_GRADS : 0);
    put(&b, STATE_MAGIC, 4);
    put_u32(&b, STATE_VERSION);
    put_u32(&b, flags);
    put_u64(&b, (uint64_t)P);
    put_u64(&b, table_hash(&t->m->tab));
    put_u64(&b, (uint64_t)LP);
    put_u64(&b, t->lora ? table_hash(lora_table(t->lora)) : 0);
    /* config */
    put_u64(&b, c->seed);
    put_u32(&b, (uint32_t)c->pooling);
    put_u32(&b, (uint32_t)c->dropout);
    put_f32(&b, c->adamw.lr);
    put_f32(&b, c->adamw.beta1);
    put_f32(&b, c->adamw.beta2);
    put_f32(&b, c->adamw.eps);
    put_f32(&b, c->adamw.weight_decay);
    put_u32(&b, (uint32_t)c->no_decay_bias_ln);
    put_u32(&b, (uint32_t)c->sched.kind);
    put_u64(&b, (uint64_t)c->sched.warmup_steps);
    put_u64(&b, (uint64_t)c->sched.total_steps);
    put_f32(&b, c->sched.num_cycles);
    put_f32(&b, c->max_grad_norm);
    put_u32(&b, (uint32_t)c->grad_accum);
    put_u32(&b, (uint32_t)c->train_base);
    put_u32(&b, (uint32_t)c->skip_padding);
    put_u32(&b, (uint32_t)c->lora.rank);
    put_f32(&b, c->lora.alpha);
    put_f32(&b, c->lora.dropout);
    put_u32(&b, c->lora.targets);
    put_u64(&b, c->lora.layers);
    put_u32(&b, (uint32_t)t->ntab);
    put(&b, t->user_tr, (size_t)t->ntab);
    /* counters */
    put_u64(&b, (uint64_t)t->step);
    put_u32(&b, (uint32_t)t->micro);
    put_u32(&b, (uint32_t)t->win_mlm);
    /* buffers */
    put(&b, t->m->params, P * 4);
    put(&b, t->mom, P * 4);
    put(&b, t->vel, P * 4);
    if (flags & ST_HAS_GRADS) put(&b, t->grads, P * 4);
    if (t->lora) {
        Lora *l = t->lora;
        put(&b, lora_params(l), LP * 4);
        put(&b, t->lm, LP * 4);
        put(&b, t->lv, LP * 4);
        if (flags & ST_HAS_GRADS) put(&b, lora_grads(l), LP * 4);
    }
    if (t->theta0) put(&b, t->theta0, P * 4);
    put_u64(&b, am_hash64(b.p, b.n, 0));
    *blob = b.p;
    *len = b.n;
    return AM_OK;
}

int trainer_state_load(Trainer *t, const void *blob, size_t len) {
    Rd r = { blob, len, 0, 0 };
    if (len < 16 || memcmp(blob, STATE_MAGIC, 4) != 0)
        return am_error(AM_EFORMAT, "train state: not a trainer state blob (bad magic)");
    uint64_t want;
    memcpy(&want, (const uint8_t *)blob + len - 8, 8);
    if (am_hash64(blob, len - 8, 0) != want)
        return am_error(AM_EFORMAT, "train state: checksum mismatch (truncated or corrupted blob of %zu bytes)", len);
    r.n = len - 8;
    r.off = 4;
    uint32_t ver = get_u32(&r);
    if (ver != STATE_VERSION)
        return am_error(AM_EFORMAT, "train state: version %u, this build reads %u", ver, STATE_VERSION);
    uint32_t flags = get_u32(&r);
    const size_t P = t->m->tab.total;
    uint64_t bp = get_u64(&r), bh = get_u64(&r), blp = get_u64(&r), blh = get_u64(&r);
    if (bp != P || bh != table_hash(&t->m->tab))
        return am_error(AM_ESHAPE, "train state: saved for another model shape (%llu parameters, this model has %zu)",
                        (unsigned long long)bp, P);
    const size_t LP = t->lora ? lora_table(t->lora)->total : 0;
    if (!!(flags & ST_HAS_LORA) != !!t->lora || blp != LP || (t->lora && blh != table_hash(lora_table(t->lora))))
        return am_error(AM_ESHAPE, "train state: LoRA shape differs (saved %llu adapter parameters, trainer has %zu)\n"
                        "HINT: create the trainer with the run's LoRA config", (unsigned long long)blp, LP);
    if ((flags & ST_HAS_THETA0) && !t->theta0)
        return am_error(AM_EINVAL, "train state: the blob has θ0 but the trainer does not keep it (keep_theta0 = 0)");
    TrainConfig c = t->cfg;
    c.seed = get_u64(&r);
    c.pooling = (int)get_u32(&r);
    c.dropout = (int)get_u32(&r);
    c.adamw.lr = get_f32(&r);
    c.adamw.beta1 = get_f32(&r);
    c.adamw.beta2 = get_f32(&r);
    c.adamw.eps = get_f32(&r);
    c.adamw.weight_decay = get_f32(&r);
    c.no_decay_bias_ln = (int)get_u32(&r);
    c.sched.kind = (int)get_u32(&r);
    c.sched.warmup_steps = (int64_t)get_u64(&r);
    c.sched.total_steps = (int64_t)get_u64(&r);
    c.sched.num_cycles = get_f32(&r);
    c.max_grad_norm = get_f32(&r);
    c.grad_accum = (int)get_u32(&r);
    c.train_base = (int)get_u32(&r);
    c.skip_padding = (int)get_u32(&r);
    c.lora.rank = (int)get_u32(&r);
    c.lora.alpha = get_f32(&r);
    c.lora.dropout = get_f32(&r);
    c.lora.targets = get_u32(&r);
    c.lora.layers = get_u64(&r);
    uint32_t ntab = get_u32(&r);
    if (r.bad || ntab != (uint32_t)t->ntab) return am_error(AM_EFORMAT, "train state: truncated header");
    uint8_t *utr = xmalloc((size_t)ntab);
    get(&r, utr, ntab);
    int64_t step = (int64_t)get_u64(&r);
    int micro = (int)get_u32(&r), win = (int)get_u32(&r);
    size_t need = r.off + P * 4 * (3 + !!(flags & ST_HAS_GRADS) + !!(flags & ST_HAS_THETA0)) +
                  LP * 4 * (3 + !!(flags & ST_HAS_GRADS));
    int rc = AM_OK;
    if (r.bad || need != r.n) rc = am_error(AM_EFORMAT, "train state: %zu bytes where %zu were expected", r.n, need);
    else if (check_config(&c, t->m)) rc = am_error_wrap(AM_EFORMAT, "train state: bad config");
    else if (micro < 0 || micro >= c.grad_accum || step < 0) rc = am_error(AM_EFORMAT, "train state: bad counters");
    else if (t->lora && (c.lora.rank != lora_config(t->lora)->rank || c.lora.alpha != lora_config(t->lora)->alpha ||
                         c.lora.dropout != lora_config(t->lora)->dropout))
        rc = am_error(AM_ESHAPE, "train state: LoRA rank/alpha/dropout differ from the trainer's\n"
                      "HINT: create the trainer with the run's LoRA config");
    if (rc) {
        free(utr);
        return rc;
    }
    /* from here on nothing fails */
    get(&r, t->m->params, P * 4);
    get(&r, t->mom, P * 4);
    get(&r, t->vel, P * 4);
    if (flags & ST_HAS_GRADS) get(&r, t->grads, P * 4);
    else memset(t->grads, 0, P * 4);
    if (t->lora) {
        Lora *l = t->lora;
        get(&r, lora_params(l), LP * 4);
        get(&r, t->lm, LP * 4);
        get(&r, t->lv, LP * 4);
        if (flags & ST_HAS_GRADS) get(&r, lora_grads(l), LP * 4);
        else memset(lora_grads(l), 0, LP * 4);
    }
    if (flags & ST_HAS_THETA0) get(&r, t->theta0, P * 4);
    else if (t->theta0) memcpy(t->theta0, t->m->params, P * 4);
    c.trainable = NULL;
    c.keep_theta0 = t->cfg.keep_theta0;
    t->cfg = c;
    memcpy(t->user_tr, utr, ntab);
    free(utr);
    t->step = step;
    t->micro = micro;
    t->win_mlm = win;
    encoder_set_skip_padding(t->e, c.skip_padding);
    build_masks(t);
    return AM_OK;
}
