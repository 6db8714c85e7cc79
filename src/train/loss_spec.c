/* loss_spec.c - LossSpec: names and defaults, validation, the layers a spec needs, and evaluation
 * of a spec tree (wrappers such as Matryoshka, Starbucks and random 2D call the losses of loss.c
 * on (layer, dim) views of the pooled embeddings).
 */
#include "loss_internal.h"
#include "am_base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ specs */

static const char *const kind_names[AM_LOSS_KIND_COUNT] = {
    "infonce", "cosent", "codiemb_sts", "matryoshka", "starbucks", "random_2d", "mlm", "entropy",
};

int loss_kind_from_name(const char *name) {
    if (!name) return -1;
    for (int k = 0; k < AM_LOSS_KIND_COUNT; k++)
        if (strcmp(name, kind_names[k]) == 0) return k;
    return -1;
}

const char *loss_kind_name(int kind) {
    return kind >= 0 && kind < AM_LOSS_KIND_COUNT ? kind_names[kind] : NULL;
}

void loss_spec_default(LossSpec *s, int kind) {
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->weight = 1.0f;
    s->infonce = (InfoNCEOptions){ .scale = 20.0f, .sim = AM_SIM_COS, .symmetric = 0,
                                   .multi_pos = AM_MULTIPOS_AVG, .threshold = -INFINITY };
    s->cosent = (CoSENTOptions){ .scale = 20.0f, .sim = AM_SIM_COS };
    s->codiemb = (CoDiEmbOptions){ .w_mid = 1.0f, .w_pro = 0.5f, .w_pearson = 2.0f, .w_rankkl = 5.0f,
                                   .pro_temperature = 0.05f, .pro_eps = 1e-8f, .rankkl_temperature = 0.05f,
                                   .sim = AM_SIM_COS, .mid_layer = -1, .mid_threshold_frac = 0.2f,
                                   .score_lo = NAN, .score_hi = NAN };
    s->codiemb.mid = (InfoNCEOptions){ .scale = 50.0f, .sim = AM_SIM_COS, .symmetric = 0,
                                       .multi_pos = AM_MULTIPOS_AVG, .threshold = NAN };
    for (int k = 0; k < AM_LOSS_MAX_DIMS; k++) {
        s->mrl.weights[k] = 1.0f;
        s->m2d.weights[k] = 1.0f;
    }
    s->m2d.w_full = s->m2d.w_sub = 1.0f;
    s->m2d.layer_weighting = AM_LAYERW_LINEAR;
    s->m2d.random_full_dim = 1;
    /* the authors' KL: Starbucks sts/starbucks_loss.py (raw rows, no temperature, × 0.3, first d
     * features); ST Matryoshka2dLoss (raw rows / 0.3 over all features, × 0.3); neither detaches */
    if (kind == AM_LOSS_RANDOM_2D)
        s->m2d.kl = (KLOptions){ .mode = AM_KL_EMBEDDINGS, .weight = 0.3f, .temperature = 0.3f, .full_dim = 1 };
    else
        s->m2d.kl = (KLOptions){ .mode = AM_KL_EMBEDDINGS, .weight = 0.3f, .temperature = 1.0f };
    s->entropy = (EntropyOptions){ .scale = 20.0f, .sim = AM_SIM_COS };
    s->mlm = (MlmOptions){ .prob = 0.15f, .mask_frac = 0.8f, .random_frac = 0.1f, .mask_token_id = -1 };
}

int loss_default_dims(int C, int *dims, int max) {
    int k = 0;
    for (int d = 32; d < C && k < max - 1; d *= 2) dims[k++] = d;
    if (k < max) dims[k++] = C;
    return k;
}

int loss_default_pairs(int L, int C, int *layers, int *dims, int max) {
    int D[AM_LOSS_MAX_DIMS];
    const int k = loss_default_dims(C, D, AM_LOSS_MAX_DIMS);
    int cnt = 0;
    if (k <= L) {
        for (int i = 0; i < k && cnt < max; i++) {
            int l = (int)floor((double)(i + 1) * L / k + 0.5);
            layers[cnt] = l < 1 ? 1 : l;
            dims[cnt++] = D[i];
        }
    } else { /* more dims than layers: a staircase (raise the dim, then the layer) */
        int prev = 0;
        for (int i = 0; i < k && cnt < max; i++) {
            int l = (int)ceil((double)(i + 1) * L / k - 1e-9);
            if (l < 1) l = 1;
            if (prev > 0 && l > prev && cnt < max) {
                layers[cnt] = prev;
                dims[cnt++] = D[i];
            }
            if (cnt < max) {
                layers[cnt] = l;
                dims[cnt++] = D[i];
            }
            prev = l;
        }
    }
    return cnt;
}

/* the effective Starbucks list of a spec */
static int spec_pairs(const LossSpec *s, int L, int C, int *layers, int *dims, float *w) {
    if (s->m2d.n_pairs > 0) {
        for (int k = 0; k < s->m2d.n_pairs; k++) {
            layers[k] = s->m2d.layers[k];
            dims[k] = s->m2d.dims[k];
            w[k] = s->m2d.weights[k];
        }
        return s->m2d.n_pairs;
    }
    int n = loss_default_pairs(L, C, layers, dims, AM_LOSS_MAX_DIMS);
    for (int k = 0; k < n; k++) w[k] = 1.0f;
    return n;
}

static int spec_mrl_dims(const LossSpec *s, int dview, int *dims, float *w) {
    if (s->mrl.n_dims > 0) {
        for (int k = 0; k < s->mrl.n_dims; k++) {
            dims[k] = s->mrl.dims[k] ? s->mrl.dims[k] : dview;
            w[k] = s->mrl.weights[k];
        }
        return s->mrl.n_dims;
    }
    int n = loss_default_dims(dview, dims, AM_LOSS_MAX_DIMS);
    for (int k = 0; k < n; k++) w[k] = 1.0f;
    return n;
}

/* RANDOM_2D draws for this seed: the prior layer (0 = none, when L < 2), its dim, the last layer's dim */
static void draw_2d(const LossSpec *s, int L, int C, uint64_t seed, int *layer, int *dim, int *full_dim) {
    AmRng rng;
    am_rng_seed(&rng, am_hash64("2dmse", 5, seed));
    int D[AM_LOSS_MAX_DIMS], nd;
    if (s->m2d.n_dims > 0) {
        nd = s->m2d.n_dims;
        memcpy(D, s->m2d.sample_dims, (size_t)nd * sizeof(int));
    } else {
        nd = loss_default_dims(C, D, AM_LOSS_MAX_DIMS);
    }
    *layer = L > 1 ? 1 + (int)am_rng_below(&rng, (uint32_t)(L - 1)) : 0;
    *dim = D[am_rng_below(&rng, (uint32_t)nd)];
    *full_dim = s->m2d.random_full_dim ? D[am_rng_below(&rng, (uint32_t)nd)] : C;
}

/* the similarity a (possibly nested) spec scores with: the KL terms use the same */
static int spec_sim(const LossSpec *s) {
    switch (s->kind) {
    case AM_LOSS_INFONCE: return s->infonce.sim;
    case AM_LOSS_COSENT: return s->cosent.sim;
    case AM_LOSS_CODIEMB_STS: return s->codiemb.sim;
    case AM_LOSS_ENTROPY: return s->entropy.sim;
    default: return s->inner ? spec_sim(s->inner) : AM_SIM_COS;
    }
}

static int mid_of(const LossSpec *s, int layer) {
    return s->codiemb.mid_layer >= 0 ? s->codiemb.mid_layer : (layer + 1) / 2;
}

static int check_infonce(const InfoNCEOptions *o, const char *what) {
    if (!(o->scale > 0) || !isfinite(o->scale))
        return am_error(AM_EINVAL, "loss %s: scale must be > 0 (got %g)", what, (double)o->scale);
    if (o->sim != AM_SIM_COS && o->sim != AM_SIM_DOT)
        return am_error(AM_EINVAL, "loss %s: unknown similarity %d (cos or dot)", what, o->sim);
    if (o->multi_pos != AM_MULTIPOS_AVG && o->multi_pos != AM_MULTIPOS_LSE)
        return am_error(AM_EINVAL, "loss %s: unknown multi_pos mode %d (avg or lse)", what, o->multi_pos);
    return AM_OK;
}

static int check_node(const LossSpec *s, int depth, int layer, int dim, int L, int C, int n, int P, int K,
                      int gold) {
    if (depth > 4) return am_error(AM_EINVAL, "loss: nesting deeper than 4 (a cycle?)");
    if (s->kind < 0 || s->kind >= AM_LOSS_KIND_COUNT) return am_error(AM_EINVAL, "loss: unknown kind %d", s->kind);
    const char *nm = kind_names[s->kind];
    if (!isfinite(s->weight)) return am_error(AM_EINVAL, "loss %s: weight is not finite", nm);
    if (layer < 0 || layer > L) return am_error(AM_EINVAL, "loss %s: layer %d outside [0, %d]", nm, layer, L);
    if (dim < 1 || dim > C) return am_error(AM_EINVAL, "loss %s: dim %d outside [1, %d]", nm, dim, C);
    int rc;
    switch (s->kind) {
    case AM_LOSS_INFONCE:
        if (n < 1 || P < 1 || K < 0) return am_error(AM_EINVAL, "loss infonce: needs >= 1 query with >= 1 positive");
        /* graded pairs are not query/positive pairs: without a threshold a score-0 pair would be a positive */
        if (gold && !isfinite(s->infonce.threshold))
            return am_error(AM_EINVAL, "loss infonce: the batch holds graded pairs (sentence1, sentence2, score); "
                            "without a threshold every pair, whatever its score, would count as a positive\n"
                            "HINT: use am.loss.cosent or am.loss.codiemb_sts for graded data, or "
                            "am.loss.infonce{threshold = T} to take the pairs scored >= T as positives");
        return check_infonce(&s->infonce, nm);
    case AM_LOSS_ENTROPY:
        if (n < 1 || P < 1 || K < 0) return am_error(AM_EINVAL, "loss entropy: needs >= 1 query with >= 1 candidate");
        if (!(s->entropy.scale > 0) || !isfinite(s->entropy.scale))
            return am_error(AM_EINVAL, "loss entropy: scale must be > 0 (got %g)", (double)s->entropy.scale);
        if (s->entropy.sim != AM_SIM_COS && s->entropy.sim != AM_SIM_DOT)
            return am_error(AM_EINVAL, "loss entropy: unknown similarity %d", s->entropy.sim);
        return AM_OK;
    case AM_LOSS_COSENT:
    case AM_LOSS_CODIEMB_STS:
        if (!gold || P != 1 || K != 0)
            return am_error(AM_EINVAL, "loss %s: needs graded pairs (sentence1, sentence2, score) without hard "
                            "negatives%s", nm, gold ? "" : "\nHINT: the batch has no gold scores");
        if (s->kind == AM_LOSS_COSENT) {
            if (!(s->cosent.scale > 0)) return am_error(AM_EINVAL, "loss cosent: scale must be > 0");
            if (s->cosent.sim != AM_SIM_COS && s->cosent.sim != AM_SIM_DOT)
                return am_error(AM_EINVAL, "loss cosent: unknown similarity %d", s->cosent.sim);
            return AM_OK;
        }
        if (!(s->codiemb.pro_temperature > 0) || !(s->codiemb.rankkl_temperature > 0))
            return am_error(AM_EINVAL, "loss codiemb_sts: temperatures must be > 0");
        if (s->codiemb.sim != AM_SIM_COS && s->codiemb.sim != AM_SIM_DOT)
            return am_error(AM_EINVAL, "loss codiemb_sts: unknown similarity %d", s->codiemb.sim);
        if (s->codiemb.w_mid != 0) {
            int ml = mid_of(s, layer);
            if (ml < 0 || ml > L) return am_error(AM_EINVAL, "loss codiemb_sts: mid_layer %d outside [0, %d]", ml, L);
            return check_infonce(&s->codiemb.mid, "codiemb_sts mid");
        }
        return AM_OK;
    case AM_LOSS_MATRYOSHKA:
    case AM_LOSS_STARBUCKS:
    case AM_LOSS_RANDOM_2D:
        if (!s->inner) return am_error(AM_EINVAL, "loss %s: needs an inner loss", nm);
        if (s->inner->kind == AM_LOSS_MLM) return am_error(AM_EINVAL, "loss %s: mlm cannot be an inner loss", nm);
        break;
    case AM_LOSS_MLM:
        if (depth > 0) return am_error(AM_EINVAL, "loss mlm: only at the root of a spec");
        if (s->mlm.mask_token_id < 0)
            return am_error(AM_EINVAL, "loss mlm: mask_token_id is not set\nHINT: the id of [MASK] in the vocab");
        if (!(s->mlm.prob > 0 && s->mlm.prob <= 1) || s->mlm.mask_frac < 0 || s->mlm.random_frac < 0 ||
            s->mlm.mask_frac + s->mlm.random_frac > 1.0f + 1e-6f)
            return am_error(AM_EINVAL, "loss mlm: need 0 < prob <= 1 and mask_frac + random_frac <= 1");
        if (s->mlm.n_special < 0 || s->mlm.n_special > 16)
            return am_error(AM_EINVAL, "loss mlm: at most 16 special ids");
        return AM_OK;
    }
    if (s->kind == AM_LOSS_MATRYOSHKA) {
        int dims[AM_LOSS_MAX_DIMS];
        float w[AM_LOSS_MAX_DIMS];
        if (s->mrl.n_dims < 0 || s->mrl.n_dims > AM_LOSS_MAX_DIMS)
            return am_error(AM_EINVAL, "loss matryoshka: 1..%d dims", AM_LOSS_MAX_DIMS);
        if (s->mrl.n_dims_per_step < 0)
            return am_error(AM_EINVAL, "loss matryoshka: n_dims_per_step must be >= 0 (0 = all)");
        int nd = spec_mrl_dims(s, dim, dims, w);
        for (int k = 0; k < nd; k++) {
            if (dims[k] < 1 || dims[k] > dim)
                return am_error(AM_EINVAL, "loss matryoshka: dim %d outside [1, %d]", dims[k], dim);
            if (!isfinite(w[k])) return am_error(AM_EINVAL, "loss matryoshka: weight %d is not finite", k);
            if ((rc = check_node(s->inner, depth + 1, layer, dims[k], L, C, n, P, K, gold))) return rc;
        }
        return AM_OK;
    }
    if (!(s->m2d.kl.temperature > 0) || !isfinite(s->m2d.kl.temperature) || !isfinite(s->m2d.kl.weight))
        return am_error(AM_EINVAL, "loss %s: kl_softmax_temperature must be > 0 and kl_weight finite", nm);
    if (s->m2d.kl.mode != AM_KL_SCORES && s->m2d.kl.mode != AM_KL_EMBEDDINGS)
        return am_error(AM_EINVAL, "loss %s: unknown kl_mode %d (scores or embeddings)", nm, s->m2d.kl.mode);
    if (s->m2d.layer_weighting != AM_LAYERW_LINEAR && s->m2d.layer_weighting != AM_LAYERW_UNIFORM)
        return am_error(AM_EINVAL, "loss %s: unknown layer_weighting %d (linear or uniform)", nm, s->m2d.layer_weighting);
    if (s->kind == AM_LOSS_STARBUCKS) {
        int ls[AM_LOSS_MAX_DIMS], ds[AM_LOSS_MAX_DIMS];
        float w[AM_LOSS_MAX_DIMS];
        if (s->m2d.n_pairs < 0 || s->m2d.n_pairs > AM_LOSS_MAX_DIMS)
            return am_error(AM_EINVAL, "loss starbucks: 1..%d (layer, dim) pairs", AM_LOSS_MAX_DIMS);
        int np = spec_pairs(s, L, C, ls, ds, w);
        for (int k = 0; k < np; k++) {
            if (ls[k] < 0 || ls[k] > L || ds[k] < 1 || ds[k] > C)
                return am_error(AM_EINVAL, "loss starbucks: pair %d = (layer %d, dim %d) outside (0..%d, 1..%d)", k,
                                ls[k], ds[k], L, C);
            if (!isfinite(w[k])) return am_error(AM_EINVAL, "loss starbucks: weight %d is not finite", k);
            if ((rc = check_node(s->inner, depth + 1, ls[k], ds[k], L, C, n, P, K, gold))) return rc;
        }
        return check_node(s->inner, depth + 1, layer, dim, L, C, n, P, K, gold);
    }
    /* RANDOM_2D */
    if (s->m2d.n_dims < 0 || s->m2d.n_dims > AM_LOSS_MAX_DIMS)
        return am_error(AM_EINVAL, "loss random_2d: 1..%d dims", AM_LOSS_MAX_DIMS);
    for (int k = 0; k < s->m2d.n_dims; k++)
        if (s->m2d.sample_dims[k] < 1 || s->m2d.sample_dims[k] > C)
            return am_error(AM_EINVAL, "loss random_2d: dim %d outside [1, %d]", s->m2d.sample_dims[k], C);
    if ((rc = check_node(s->inner, depth + 1, layer, dim, L, C, n, P, K, gold))) return rc;
    int D[AM_LOSS_MAX_DIMS], nd = s->m2d.n_dims;
    if (nd > 0) memcpy(D, s->m2d.sample_dims, (size_t)nd * sizeof(int));
    else nd = loss_default_dims(C, D, AM_LOSS_MAX_DIMS);
    for (int l = 1; l < L; l++) /* any draw must fit */
        for (int k = 0; k < nd; k++)
            if ((rc = check_node(s->inner, depth + 1, l, D[k], L, C, n, P, K, gold))) return rc;
    return AM_OK;
}

int loss_spec_check(const LossSpec *s, int L, int C, int n, int n_pos, int n_neg, int gold_present) {
    if (!s) return am_error(AM_EINVAL, "loss: no spec");
    return check_node(s, 0, L, C, L, C, n, n_pos, n_neg, gold_present);
}

static void node_layers(const LossSpec *s, int layer, int dim, int L, int C, uint64_t seed, uint8_t *need) {
    switch (s->kind) {
    case AM_LOSS_INFONCE:
    case AM_LOSS_COSENT:
    case AM_LOSS_ENTROPY:
        need[layer] = 1;
        return;
    case AM_LOSS_CODIEMB_STS:
        need[layer] = 1;
        if (s->codiemb.w_mid != 0) need[mid_of(s, layer)] = 1;
        return;
    case AM_LOSS_MATRYOSHKA: {
        int dims[AM_LOSS_MAX_DIMS];
        float w[AM_LOSS_MAX_DIMS];
        int nd = spec_mrl_dims(s, dim, dims, w);
        for (int k = 0; k < nd; k++) node_layers(s->inner, layer, dims[k], L, C, seed, need);
        return;
    }
    case AM_LOSS_STARBUCKS: {
        int ls[AM_LOSS_MAX_DIMS], ds[AM_LOSS_MAX_DIMS];
        float w[AM_LOSS_MAX_DIMS];
        int np = spec_pairs(s, L, C, ls, ds, w);
        for (int k = 0; k < np; k++) node_layers(s->inner, ls[k], ds[k], L, C, seed, need);
        need[layer] = 1; /* the KL teacher */
        return;
    }
    case AM_LOSS_RANDOM_2D: {
        int l, d, df;
        draw_2d(s, L, C, seed, &l, &d, &df);
        node_layers(s->inner, layer, df, L, C, seed, need);
        if (l > 0) node_layers(s->inner, l, d, L, C, seed, need);
        return;
    }
    default:
        return;
    }
}

void loss_spec_layers(const LossSpec *s, int L, int C, uint64_t seed, uint8_t *need) {
    memset(need, 0, (size_t)L + 1);
    if (s->kind == AM_LOSS_MLM) {
        need[L] = 1;
        return;
    }
    node_layers(s, L, C, L, C, seed, need);
}

typedef struct {
    const LossViews *v;
    double scale;       /* gradient scale */
    LossResult *res;
    int missing;        /* a needed layer had no embeddings */
} EvalCtx;

static LossInput view_input(EvalCtx *c, int layer, int dim) {
    const LossViews *v = c->v;
    if (!v->emb[layer]) c->missing = layer + 1;
    return (LossInput){ v->emb[layer], v->C, dim, v->n, v->n_pos, v->n_neg, v->gold, v->cand };
}

static float *view_grad(EvalCtx *c, int layer) { return c->v->demb[layer]; }

/* kl.weight · KL(teacher view te on layer tl ‖ (l, d)), over all C features if kl.full_dim */
static double kl_term(EvalCtx *c, const LossSpec *s, LossInput te, int tl, int l, int d, double w, const char *prefix) {
    const KLOptions *o = &s->m2d.kl;
    LossInput st = view_input(c, l, d);
    if (c->missing) return 0;
    if (o->full_dim && o->mode == AM_KL_EMBEDDINGS) te.dim = st.dim = c->v->C;
    const double kw = w * (double)o->weight;
    double val = loss_kl_eval(&te, &st, spec_sim(s->inner), o, view_grad(c, tl), view_grad(c, l), c->scale * kw);
    char pre[48];
    snprintf(pre, sizeof pre, "%skl/l%dd%d", prefix, l, d);
    loss_add_term(c->res, pre, "", kw * val);
    return kw * val;
}

static double node_eval(EvalCtx *c, const LossSpec *s, int layer, int dim, double w, const char *prefix) {
    const LossViews *v = c->v;
    w *= (double)s->weight;
    char pre[40];
    switch (s->kind) {
    case AM_LOSS_INFONCE:
    case AM_LOSS_COSENT: {
        LossInput in = view_input(c, layer, dim);
        if (c->missing) return 0;
        float *g = view_grad(c, layer);
        double val = s->kind == AM_LOSS_INFONCE ? loss_infonce_eval(&in, &s->infonce, g, c->scale * w)
                                                : loss_pair_eval(&in, s->cosent.sim, loss_cosent_fn, &s->cosent, g, c->scale * w);
        loss_add_term(c->res, prefix, kind_names[s->kind], w * val);
        return w * val;
    }
    case AM_LOSS_ENTROPY: {
        LossInput in = view_input(c, layer, dim);
        if (c->missing) return 0;
        double val = loss_entropy_eval(&in, &s->entropy, view_grad(c, layer), c->scale * w);
        loss_add_term(c->res, prefix, kind_names[s->kind], w * val);
        return w * val;
    }
    case AM_LOSS_CODIEMB_STS: {
        LossInput last = view_input(c, layer, dim), mid;
        int ml = mid_of(s, layer);
        int use_mid = s->codiemb.w_mid != 0;
        if (use_mid) mid = view_input(c, ml, dim);
        if (c->missing) return 0;
        double val = loss_codiemb_eval(&last, use_mid ? &mid : NULL, &s->codiemb, view_grad(c, layer),
                                  use_mid ? view_grad(c, ml) : NULL, c->scale * w, w, c->res, prefix);
        return w * val;
    }
    case AM_LOSS_MATRYOSHKA: {
        int dims[AM_LOSS_MAX_DIMS];
        float wd[AM_LOSS_MAX_DIMS];
        int nd = spec_mrl_dims(s, dim, dims, wd);
        if (s->mrl.n_dims_per_step > 0 && s->mrl.n_dims_per_step < nd) { /* partial Fisher-Yates */
            AmRng rng;
            am_rng_seed(&rng, am_hash64("mrl", 3, v->seed));
            for (int k = 0; k < s->mrl.n_dims_per_step; k++) {
                int j = k + (int)am_rng_below(&rng, (uint32_t)(nd - k));
                int td = dims[k];
                float tw = wd[k];
                dims[k] = dims[j];
                wd[k] = wd[j];
                dims[j] = td;
                wd[j] = tw;
            }
            nd = s->mrl.n_dims_per_step;
        }
        double tot = 0;
        for (int k = 0; k < nd; k++) {
            snprintf(pre, sizeof pre, "%sd%d/", prefix, dims[k]);
            tot += node_eval(c, s->inner, layer, dims[k], w * (double)wd[k], pre);
        }
        return tot;
    }
    case AM_LOSS_STARBUCKS: {
        int ls[AM_LOSS_MAX_DIMS], ds[AM_LOSS_MAX_DIMS];
        float wp[AM_LOSS_MAX_DIMS];
        int np = spec_pairs(s, v->L, v->C, ls, ds, wp);
        double tot = 0;
        LossInput te = view_input(c, layer, dim);
        for (int k = 0; k < np; k++) {
            snprintf(pre, sizeof pre, "%sl%dd%d/", prefix, ls[k], ds[k]);
            tot += node_eval(c, s->inner, ls[k], ds[k], w * (double)wp[k], pre);
            if ((ls[k] == layer && ds[k] == dim) || s->m2d.kl.weight == 0) continue;
            tot += kl_term(c, s, te, layer, ls[k], ds[k], w, prefix);
        }
        return tot;
    }
    case AM_LOSS_RANDOM_2D: {
        int l, d, df;
        draw_2d(s, v->L, v->C, v->seed, &l, &d, &df);
        if (df > dim) df = dim; /* nested in a smaller view */
        snprintf(pre, sizeof pre, "%sl%dd%d/", prefix, layer, df);
        double tot = node_eval(c, s->inner, layer, df, w * (double)s->m2d.w_full, pre);
        if (l == 0) return tot; /* one layer: no prior layer (ST) */
        /* ST AdaptiveLayerLoss: layer_loss / (1 + layer_idx) / n_layers_per_step, layer_idx = l − 1 */
        const double lw = s->m2d.layer_weighting == AM_LAYERW_LINEAR ? 1.0 / l : 1.0;
        snprintf(pre, sizeof pre, "%sl%dd%d/", prefix, l, d);
        tot += node_eval(c, s->inner, l, d, w * (double)s->m2d.w_sub * lw, pre);
        if (s->m2d.kl.weight != 0) {
            LossInput te = view_input(c, layer, dim);
            tot += kl_term(c, s, te, layer, l, d, w, prefix);
        }
        return tot;
    }
    default:
        return 0;
    }
}

int loss_eval(const LossSpec *s, const LossViews *v, double grad_scale, LossResult *out) {
    memset(out, 0, sizeof *out);
    if (s->kind == AM_LOSS_MLM) return am_error(AM_EINVAL, "loss_eval: mlm works on token states (mlm.h)");
    int rc = loss_spec_check(s, v->L, v->C, v->n, v->n_pos, v->n_neg, v->gold != NULL);
    if (rc) return rc;
    EvalCtx c = { v, grad_scale, out, 0 };
    out->total = node_eval(&c, s, v->L, v->C, 1.0, "");
    if (c.missing)
        return am_error(AM_EINVAL, "loss_eval: the embeddings of layer %d are needed but were not given", c.missing - 1);
    return AM_OK;
}
