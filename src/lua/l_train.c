/* l_train.c - "amalgam.Trainer": the C training core (src/train/trainer.h) from Lua.
 *
 *   core.raw_trainer(model, opts)          -> Trainer | nil, msg, code
 *       opts: lr, warmup, schedule ("linear"|"cosine"|"constant"), steps (total updates, for the
 *       decay), weight_decay, clip, accumulation, seed, dropout (bool), max_len, mlm (bool: add
 *       an MLM head, initialised from the seed), train_base (bool), keep_theta0 (bool, default
 *       true), lora = {rank, alpha, dropout, targets = {"query", "value", ...}}
 *   tr:step(batch, loss)                   -> stats | nil, msg, code
 *       batch: {queries=, positives=, negatives=} | {sentence1=, sentence2=, scores=} | {texts=}
 *              (positives / negatives: a string per query or a list per query, `false` = padding)
 *       loss:  {kind="infonce"|"cosent"|"codiemb_sts"|"matryoshka"|"starbucks"|"random_2d"|"mlm", ...}
 *       stats: {loss, terms = {name = value}, lr, grad_norm, tokens, step, updated, sequences,
 *               mlm_accuracy}
 *   tr:save(name [, store [, extra_meta_json]]) -> checkpoint id, task vector id | nil, msg, code
 *   tr:state() -> blob; tr:load_state(blob) -> true | nil, msg, code; tr:steps(); tr:set_steps(n); tr:close()
 *   core.raw_batch_order(n, seed, epoch)   -> { 1-based row ids } (dataset_batch_order)
 *   (the interrupt primitives raw_pcall_interruptible / raw_interrupt / raw_defer_interrupts /
 *   raw_interrupted the training loop uses live in the host module, l_host.c)
 *
 * The trainer owns a copy of the model's parameters (with an MLM head if asked), so the
 * Model handle it was made from is not modified. The handle is kept alive (user value 1).
 */
#define _GNU_SOURCE
#include "am_lua.h"
#include "am_base.h"
#include "dataset.h"
#include "trainer.h"
#include "merge_stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void am_lua_open_train(lua_State *L);

#define AM_TRAINER_MT "amalgam.Trainer"

typedef struct {
    Trainer *t;        /* NULL = closed */
    Model *m;          /* owned copy trained in place */
    EmbedModel *em;    /* borrowed from the model handle (user value 1) */
    size_t enc_total;  /* floats of the encoder without the MLM head */
    int max_len;
    char base_id[AM_ID_HEX + 1];
    TokenBatch tb[3];
    float *scores;
    int cap_scores;
    float *acc;        /* tr:accumulate: Σ grad or Σ grad² (model-sized), n_acc batches */
    int n_acc;
    double *gsum[4 * AM_MAX_LAYERS]; /* tr:grams: Σ XᵀX per linear (merge_stats.h order), g_rows rows */
    int g_lin[4 * AM_MAX_LAYERS], n_g;
    size_t g_rows;
} TrainerBox;

static int tr_close(lua_State *L) {
    TrainerBox *b = luaL_checkudata(L, 1, AM_TRAINER_MT);
    trainer_delete(b->t);
    b->t = NULL;
    model_delete(b->m);
    b->m = NULL;
    for (int i = 0; i < 3; i++) token_batch_free(&b->tb[i]);
    free(b->scores);
    b->scores = NULL;
    b->cap_scores = 0;
    free(b->acc);
    b->acc = NULL;
    for (int i = 0; i < b->n_g; i++) free(b->gsum[i]);
    b->n_g = 0;
    return 0;
}

static TrainerBox *checktr(lua_State *L, int i) {
    TrainerBox *b = luaL_checkudata(L, i, AM_TRAINER_MT);
    if (!b->t) luaL_error(L, "attempt to use a closed trainer");
    return b;
}

static int tr_tostring(lua_State *L) {
    TrainerBox *b = luaL_checkudata(L, 1, AM_TRAINER_MT);
    if (!b->t) lua_pushliteral(L, "Trainer (closed)");
    else lua_pushfstring(L, "Trainer (base %s, step %d)", b->base_id, (int)trainer_steps(b->t));
    return 1;
}

/* ---------------------------------------------------------------- creation */

static const char *const tr_known[] = {"lr", "warmup", "schedule", "steps", "weight_decay", "clip", "accumulation",
                                       "seed", "dropout", "max_len", "mlm", "train_base", "keep_theta0", "lora",
                                       "pooling", "skip_padding", "freeze", "mlm_prior", NULL};
static const char *const sched_names[] = {"constant", "linear", "cosine", NULL};
static const char *const lora_known[] = {"rank", "alpha", "dropout", "targets", NULL};

/* opts.freeze = {"word_embeddings", ...}: a tensor whose HF name contains one of the strings is not
 * updated. A string that matches no tensor is an error (a typo would silently train everything). */
static uint8_t *freeze_mask(lua_State *L, int fi, const ParamTable *tab) {
    luaL_argcheck(L, lua_istable(L, fi), 2, "option 'freeze' must be a list of tensor-name substrings");
    uint8_t *tr = xmalloc((size_t)tab->n);
    memset(tr, 1, (size_t)tab->n);
    lua_Integer n = luaL_len(L, fi);
    for (lua_Integer k = 1; k <= n; k++) {
        lua_geti(L, fi, k);
        const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        int hits = 0;
        for (int i = 0; s && *s && i < tab->n; i++)
            if (strstr(tab->t[i].name, s)) tr[i] = 0, hits++;
        lua_pop(L, 1);
        if (!hits) {
            free(tr);
            if (!s || !*s) luaL_argerror(L, 2, "option 'freeze' must be a list of non-empty strings");
            luaL_argerror(L, 2, lua_pushfstring(L, "option 'freeze': '%s' matches no tensor of the model", s));
        }
    }
    return tr;
}

/* opts.mlm_prior = {text, ...}: a fresh MLM head starts with its output bias at the log unigram
 * prior of these texts' tokens (add-0.5 smoothing), so the first steps are not spent learning token
 * frequencies from a zero bias (Adam moves a bias ~lr per step; log-probabilities span ~15) and
 * tokens that never occur get almost no softmax gradient into their (tied) embeddings. */
static void mlm_prior_bias(lua_State *L, int pi, TrainerBox *b) {
    luaL_argcheck(L, lua_istable(L, pi), 2, "option 'mlm_prior' must be a list of strings");
    const ParamInfo *pb = param_table_find(&b->m->tab, "cls.predictions.bias");
    AM_ASSERT(pb);
    const int V = (int)pb->numel;
    double *cnt = xcalloc((size_t)V, sizeof *cnt);
    enum { CAP = 512 };
    int32_t ids[CAP];
    double total = 0;
    lua_Integer n = luaL_len(L, pi);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, pi, i);
        size_t len;
        const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        int k = 0;
        if (!s || tokenizer_encode(b->em->tok, s, len, ids, CAP, &k) != AM_OK) {
            free(cnt);
            luaL_argerror(L, 2, lua_pushfstring(L, "option 'mlm_prior': entry %d is not a valid UTF-8 string", (int)i));
        }
        if (k > CAP) k = CAP;
        for (int j = 0; j < k; j++)
            if (ids[j] >= 0 && ids[j] < V) cnt[ids[j]] += 1, total += 1;
        lua_pop(L, 1);
    }
    float *bias = b->m->params + pb->offset;
    double mean = 0;
    for (int v = 0; v < V; v++) mean += (cnt[v] = log((cnt[v] + 0.5) / (total + 0.5 * V))) / V;
    for (int v = 0; v < V; v++) bias[v] = (float)(cnt[v] - mean); /* centred: the softmax is unchanged */
    free(cnt);
}

/* core.raw_trainer(model, opts) */
static int l_raw_trainer(lua_State *L) {
    AmModelBox *mb = am_lua_checkmodelbox(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    am_lua_opt_check(L, 2, 2, tr_known);
    TrainConfig cfg;
    train_config_default(&cfg);
    cfg.adamw.lr = (float)am_lua_opt_num(L, 2, 2, "lr", 5e-5);
    cfg.sched.warmup_steps = am_lua_opt_int(L, 2, 2, "warmup", 0);
    cfg.sched.kind = am_lua_opt_enum(L, 2, 2, "schedule", sched_names, AM_SCHED_LINEAR);
    cfg.sched.total_steps = am_lua_opt_int(L, 2, 2, "steps", 0);
    cfg.adamw.weight_decay = (float)am_lua_opt_num(L, 2, 2, "weight_decay", cfg.adamw.weight_decay);
    cfg.max_grad_norm = (float)am_lua_opt_num(L, 2, 2, "clip", cfg.max_grad_norm);
    cfg.grad_accum = (int)am_lua_opt_int(L, 2, 2, "accumulation", 1);
    cfg.seed = (uint64_t)am_lua_opt_int(L, 2, 2, "seed", 42);
    int dropout = am_lua_opt_bool(L, 2, 2, "dropout", -1);
    if (dropout >= 0) cfg.dropout = dropout;
    int max_len = (int)am_lua_opt_int(L, 2, 2, "max_len", 0);
    int mlm = am_lua_opt_bool(L, 2, 2, "mlm", 0);
    int train_base = am_lua_opt_bool(L, 2, 2, "train_base", -1);
    cfg.keep_theta0 = am_lua_opt_bool(L, 2, 2, "keep_theta0", 1);
    int skip = am_lua_opt_bool(L, 2, 2, "skip_padding", -1);
    if (skip >= 0) cfg.skip_padding = skip;
    int pooling = am_lua_opt_enum(L, 2, 2, "pooling", pool_names, -1);
    luaL_argcheck(L, cfg.grad_accum >= 1, 2, "option 'accumulation' must be >= 1");
    luaL_argcheck(L, cfg.adamw.lr > 0, 2, "option 'lr' must be > 0");
    luaL_argcheck(L, max_len == 0 || max_len >= 3, 2, "option 'max_len' must be >= 3");
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "lora");                 /* [.., lora] */
        if (!lua_isnil(L, -1)) {
            luaL_argcheck(L, lua_istable(L, -1), 2, "option 'lora' must be a table");
            int li = lua_gettop(L);
            am_lua_opt_check(L, li, 2, lora_known);
            lora_config_default(&cfg.lora);
            cfg.lora.rank = (int)am_lua_opt_int(L, li, 2, "rank", 8);
            cfg.lora.alpha = (float)am_lua_opt_num(L, li, 2, "alpha", cfg.lora.alpha);
            cfg.lora.dropout = (float)am_lua_opt_num(L, li, 2, "dropout", 0);
            luaL_argcheck(L, cfg.lora.rank >= 1, 2, "option 'lora.rank' must be >= 1");
            lua_getfield(L, li, "targets");
            if (lua_istable(L, -1)) {
                unsigned bits = 0;
                lua_Integer n = luaL_len(L, -1);
                for (lua_Integer i = 1; i <= n; i++) {
                    lua_geti(L, -1, i);
                    const char *s = lua_tostring(L, -1);
                    unsigned bit = s ? lora_target_from_name(s) : 0;
                    if (!bit) luaL_argerror(L, 2, lua_pushfstring(L, "option 'lora.targets': unknown target '%s'", s ? s : "?"));
                    bits |= bit;
                    lua_pop(L, 1);
                }
                cfg.lora.targets = bits;
            } else if (!lua_isnil(L, -1)) luaL_argerror(L, 2, "option 'lora.targets' must be a list of names");
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    cfg.train_base = train_base >= 0 ? train_base : (cfg.lora.rank > 0 ? 0 : 1);

    EmbedModel *em;
    int rc = am_lua_model_load(mb, &em);
    if (rc) return am_lua_fail(L, rc);
    if (pooling >= 0) cfg.pooling = pooling;
    else cfg.pooling = em->info.pooling;

    TrainerBox *b = lua_newuserdatauv(L, sizeof *b, 1); /* [model, opts, tr] */
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, AM_TRAINER_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    b->em = em;
    snprintf(b->base_id, sizeof b->base_id, "%s", am_lua_model_id(mb));
    int ml = em->info.max_seq_length > 0 ? em->info.max_seq_length : em->model->cfg.max_position;
    b->max_len = max_len ? (max_len < ml ? max_len : ml) : ml;
    const ParamInfo *head = param_table_find(&em->model->tab, "cls.predictions.transform.dense.weight");
    b->enc_total = head ? head->offset : em->model->tab.total; /* the head is last in the table */
    EncoderConfig ec = em->model->cfg; /* a stored head is kept (and reused by mlm) */
    if (mlm) ec.has_mlm_head = 1;
    if ((rc = model_new(&ec, &b->m))) return am_lua_fail(L, rc);
    if (ec.has_mlm_head && !em->model->cfg.has_mlm_head) {
        model_init_bert(b->m, cfg.seed);
        if (lua_istable(L, 2)) {
            lua_getfield(L, 2, "mlm_prior");
            if (!lua_isnil(L, -1)) mlm_prior_bias(L, lua_gettop(L), b);
            lua_pop(L, 1);
        }
    }
    AM_ASSERT(b->m->tab.total >= b->enc_total);
    memcpy(b->m->params, em->model->params,
           (em->model->cfg.has_mlm_head == ec.has_mlm_head ? b->m->tab.total : b->enc_total) * sizeof(float));
    uint8_t *trainable = NULL;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "freeze");
        if (!lua_isnil(L, -1)) trainable = freeze_mask(L, lua_gettop(L), &b->m->tab);
        lua_pop(L, 1);
    }
    cfg.trainable = trainable;
    rc = trainer_new(b->m, &cfg, &b->t);
    free(trainable);
    if (rc) return am_lua_fail(L, rc);
    return 1;
}

/* ---------------------------------------------------------------- loss specs */

#define MAX_SPECS 8
typedef struct { LossSpec s[MAX_SPECS]; int n; } SpecPool;

static const char *const sim_names[] = {"cos", "dot", NULL};

static void read_dims(lua_State *L, int t, const char *key, int *dims, int *n, int max) {
    lua_getfield(L, t, key);
    if (lua_istable(L, -1)) {
        lua_Integer len = luaL_len(L, -1);
        if (len < 1 || len > max) luaL_error(L, "loss option '%s': 1..%d entries expected", key, max);
        for (lua_Integer i = 1; i <= len; i++) {
            lua_geti(L, -1, i);
            dims[i - 1] = (int)luaL_checkinteger(L, -1);
            lua_pop(L, 1);
        }
        *n = (int)len;
    } else if (!lua_isnil(L, -1)) luaL_error(L, "loss option '%s' must be a list of integers", key);
    lua_pop(L, 1);
}

static void read_floats(lua_State *L, int t, const char *key, float *w, int max) {
    lua_getfield(L, t, key);
    if (lua_istable(L, -1)) {
        lua_Integer len = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= len && i <= max; i++) {
            lua_geti(L, -1, i);
            w[i - 1] = (float)luaL_checknumber(L, -1);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

static void read_infonce(lua_State *L, int t, int arg, InfoNCEOptions *o) {
    lua_getfield(L, t, "temperature");
    if (!lua_isnil(L, -1)) {
        double T = luaL_checknumber(L, -1);
        if (!(T > 0)) luaL_error(L, "loss option 'temperature' must be > 0");
        o->scale = (float)(1.0 / T);
    }
    lua_pop(L, 1);
    o->scale = (float)am_lua_opt_num(L, t, arg, "scale", o->scale);
    o->sim = am_lua_opt_enum(L, t, arg, "sim", sim_names, o->sim);
    o->symmetric = am_lua_opt_bool(L, t, arg, "symmetric", o->symmetric);
    static const char *const mp[] = {"avg", "lse", NULL};
    o->multi_pos = am_lua_opt_enum(L, t, arg, "multi_pos", mp, o->multi_pos);
    o->threshold = (float)am_lua_opt_num(L, t, arg, "threshold", o->threshold);
}

/* parse the loss table at index t into pool; returns the spec */
static LossSpec *parse_spec(lua_State *L, int t, int arg, SpecPool *pool, const EmbedModel *em, int depth) {
    t = lua_absindex(L, t);
    luaL_argcheck(L, lua_istable(L, t), arg, "loss spec must be a table");
    if (pool->n >= MAX_SPECS || depth > 3) luaL_argerror(L, arg, "loss spec nested too deeply");
    const char *kname = am_lua_opt_str(L, t, arg, "kind", NULL);
    if (!kname) luaL_argerror(L, arg, "loss spec needs a 'kind'");
    int kind = loss_kind_from_name(kname);
    if (kind < 0)
        luaL_argerror(L, arg, lua_pushfstring(L, "unknown loss kind '%s' (infonce, cosent, codiemb_sts, matryoshka, "
                                                 "starbucks, random_2d, mlm)", kname));
    LossSpec *s = &pool->s[pool->n++];
    loss_spec_default(s, kind);
    s->weight = (float)am_lua_opt_num(L, t, arg, "weight", s->weight);
    switch (kind) {
    case AM_LOSS_INFONCE: read_infonce(L, t, arg, &s->infonce); break;
    case AM_LOSS_COSENT:
        s->cosent.scale = (float)am_lua_opt_num(L, t, arg, "scale", s->cosent.scale);
        s->cosent.sim = am_lua_opt_enum(L, t, arg, "sim", sim_names, s->cosent.sim);
        break;
    case AM_LOSS_CODIEMB_STS: {
        CoDiEmbOptions *o = &s->codiemb;
        o->w_mid = (float)am_lua_opt_num(L, t, arg, "w_mid", o->w_mid);
        o->w_pro = (float)am_lua_opt_num(L, t, arg, "w_pro", o->w_pro);
        o->w_pearson = (float)am_lua_opt_num(L, t, arg, "w_pearson", o->w_pearson);
        o->w_rankkl = (float)am_lua_opt_num(L, t, arg, "w_rankkl", o->w_rankkl);
        o->pro_temperature = (float)am_lua_opt_num(L, t, arg, "pro_temperature", o->pro_temperature);
        o->rankkl_temperature = (float)am_lua_opt_num(L, t, arg, "rankkl_temperature", o->rankkl_temperature);
        o->mid.threshold = (float)am_lua_opt_num(L, t, arg, "mid_threshold", o->mid.threshold);
        o->mid_threshold_frac = (float)am_lua_opt_num(L, t, arg, "mid_threshold_frac", o->mid_threshold_frac);
        lua_getfield(L, t, "score_range");
        if (lua_istable(L, -1)) {
            lua_geti(L, -1, 1);
            lua_geti(L, -2, 2);
            o->score_lo = (float)luaL_checknumber(L, -2);
            o->score_hi = (float)luaL_checknumber(L, -1);
            if (!(o->score_lo <= o->score_hi)) luaL_error(L, "loss option 'score_range': {lo, hi} with lo <= hi expected");
            lua_pop(L, 2);
        } else if (!lua_isnil(L, -1)) luaL_error(L, "loss option 'score_range' must be {lo, hi}");
        lua_pop(L, 1);
        o->mid.scale = (float)am_lua_opt_num(L, t, arg, "mid_scale", o->mid.scale);
        o->mid_layer = (int)am_lua_opt_int(L, t, arg, "mid_layer", o->mid_layer);
        break;
    }
    case AM_LOSS_MATRYOSHKA:
        read_dims(L, t, "dims", s->mrl.dims, &s->mrl.n_dims, AM_LOSS_MAX_DIMS);
        read_floats(L, t, "weights", s->mrl.weights, AM_LOSS_MAX_DIMS);
        s->mrl.n_dims_per_step = (int)am_lua_opt_int(L, t, arg, "n_dims_per_step", s->mrl.n_dims_per_step);
        break;
    case AM_LOSS_STARBUCKS:
    case AM_LOSS_RANDOM_2D: {
        Matryoshka2DOptions *o = &s->m2d;
        lua_getfield(L, t, "pairs");
        if (lua_istable(L, -1)) {
            lua_Integer n = luaL_len(L, -1);
            if (n < 1 || n > AM_LOSS_MAX_DIMS) luaL_error(L, "loss option 'pairs': 1..%d pairs expected", AM_LOSS_MAX_DIMS);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_geti(L, -1, i);
                if (!lua_istable(L, -1)) luaL_error(L, "loss option 'pairs': entry %d must be {layer, dim}", (int)i);
                lua_geti(L, -1, 1);
                lua_geti(L, -2, 2);
                o->layers[i - 1] = (int)luaL_checkinteger(L, -2);
                o->dims[i - 1] = (int)luaL_checkinteger(L, -1);
                lua_pop(L, 3);
            }
            o->n_pairs = (int)n;
        }
        lua_pop(L, 1);
        read_floats(L, t, "weights", o->weights, AM_LOSS_MAX_DIMS);
        read_dims(L, t, "dims", o->sample_dims, &o->n_dims, AM_LOSS_MAX_DIMS);
        o->w_full = (float)am_lua_opt_num(L, t, arg, "w_full", o->w_full);
        o->w_sub = (float)am_lua_opt_num(L, t, arg, "w_sub", o->w_sub);
        static const char *const klm[] = {"scores", "embeddings", NULL};
        o->kl.mode = am_lua_opt_enum(L, t, arg, "kl_mode", klm, o->kl.mode);
        if (o->kl.mode == AM_KL_SCORES) /* Starbucks' retrieval code: weight 1, teacher detached */
            o->kl = (KLOptions){ .mode = AM_KL_SCORES, .weight = 1.0f, .temperature = -1.0f, .detach = 1 };
        o->kl.weight = (float)am_lua_opt_num(L, t, arg, "kl_weight", o->kl.weight);
        o->kl.temperature = (float)am_lua_opt_num(L, t, arg, "kl_softmax_temperature", o->kl.temperature);
        o->kl.normalize = am_lua_opt_bool(L, t, arg, "kl_normalize", o->kl.normalize);
        o->kl.detach = am_lua_opt_bool(L, t, arg, "kl_detach", o->kl.detach);
        o->kl.full_dim = am_lua_opt_bool(L, t, arg, "kl_full_dim", o->kl.full_dim);
        static const char *const lw[] = {"linear", "uniform", NULL};
        o->layer_weighting = am_lua_opt_enum(L, t, arg, "layer_weighting", lw, o->layer_weighting);
        o->random_full_dim = am_lua_opt_bool(L, t, arg, "random_full_dim", o->random_full_dim);
        break;
    }
    case AM_LOSS_MLM: {
        MlmOptions *o = &s->mlm;
        o->prob = (float)am_lua_opt_num(L, t, arg, "prob", o->prob);
        o->mask_frac = (float)am_lua_opt_num(L, t, arg, "mask_frac", o->mask_frac);
        o->random_frac = (float)am_lua_opt_num(L, t, arg, "random_frac", o->random_frac);
        VocabSpecials sp = vocab_specials(em->vocab);
        o->mask_token_id = sp.mask;
        o->n_special = 0;
        int ids[4] = {sp.cls, sp.sep, sp.unk, sp.mask};
        for (int i = 0; i < 4; i++)
            if (ids[i] >= 0) o->special[o->n_special++] = ids[i];
        if (o->mask_token_id < 0) luaL_error(L, "mlm: the vocabulary has no [MASK] token");
        break;
    }
    }
    if (kind == AM_LOSS_MATRYOSHKA || kind == AM_LOSS_STARBUCKS || kind == AM_LOSS_RANDOM_2D) {
        lua_getfield(L, t, "inner");
        if (lua_istable(L, -1)) s->inner = parse_spec(L, -1, arg, pool, em, depth + 1);
        else {
            if (!lua_isnil(L, -1)) luaL_argerror(L, arg, "loss option 'inner' must be a loss spec table");
            LossSpec *in = &pool->s[pool->n++];
            loss_spec_default(in, AM_LOSS_INFONCE);
            s->inner = in;
        }
        lua_pop(L, 1);
        /* scores KL without a temperature: the inner loss's (Starbucks' retrieval code uses one T) */
        if (kind != AM_LOSS_MATRYOSHKA && !(s->m2d.kl.temperature > 0)) {
            const LossSpec *in = s->inner;
            float scale = in->kind == AM_LOSS_INFONCE ? in->infonce.scale : in->kind == AM_LOSS_COSENT ? in->cosent.scale : 20.0f;
            s->m2d.kl.temperature = 1.0f / scale;
        }
    }
    return s;
}

/* ---------------------------------------------------------------- batches */

/* collect a list of strings from field `key` of table t into an autofree array; returns count, -1 if absent */
typedef struct { const char **v; uint8_t *real; int n, cap, pad; } StrList; /* pad = entries that are padding */
static void strlist_free(void *p) {
    StrList *s = p;
    if (s) free(s->v), free(s->real);
    free(s);
}
static StrList *newlist(lua_State *L) {
    AmAutoFree *a = am_lua_newautofree(L, strlist_free);
    StrList *s = a->p = xcalloc(1, sizeof *s);
    return s;
}
static void strlist_push(StrList *s, const char *x) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 32;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
        s->real = xrealloc(s->real, s->cap);
    }
    s->real[s->n] = x != NULL;
    s->pad += x == NULL;
    s->v[s->n++] = x ? x : ""; /* padding encodes as an empty text; the loss masks it */
}

/* field key of table t: list of strings, or list of lists of strings (per = entries per row, must
 * be equal; `false` in a row's list is padding: a row with fewer positives / negatives than the
 * others). Pushes nothing net besides the autofree box (kept on the stack). per=-1 if absent. */
static StrList *get_texts(lua_State *L, int t, const char *key, int *per) {
    StrList *s = newlist(L);                       /* [.., box] */
    lua_getfield(L, t, key);                       /* [.., box, list] */
    *per = -1;
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return s;
    }
    if (!lua_istable(L, -1)) luaL_error(L, "batch field '%s' must be a list of strings", key);
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, -1, i);                        /* [.., box, list, x] */
        if (lua_type(L, -1) == LUA_TSTRING) {
            if (*per != -1 && *per != 1) luaL_error(L, "batch field '%s': row %d has 1 entry, others %d", key, (int)i, *per);
            *per = 1;
            strlist_push(s, lua_tostring(L, -1));  /* kept alive by the list */
        } else if (lua_istable(L, -1)) {
            int m = (int)luaL_len(L, -1);
            if (*per != -1 && *per != m) luaL_error(L, "batch field '%s': row %d has %d entries, others %d", key, (int)i, m, *per);
            *per = m;
            for (int j = 1; j <= m; j++) {
                lua_geti(L, -1, j);
                int padding = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
                if (!padding && lua_type(L, -1) != LUA_TSTRING)
                    luaL_error(L, "batch field '%s': row %d entry %d is not a string (or false: padding)", key, (int)i, j);
                strlist_push(s, padding ? NULL : lua_tostring(L, -1));
                lua_pop(L, 1);
            }
        } else luaL_error(L, "batch field '%s': row %d is not a string", key, (int)i);
        lua_pop(L, 1);
    }
    if (n == 0) *per = 0;
    lua_pop(L, 1);                                 /* the list stays referenced by the batch table */
    return s;
}

static int tokenize(TrainerBox *b, int which, StrList *s, TrainTokens *out) {
    memset(out, 0, sizeof *out);
    if (s->n == 0) return AM_OK;
    for (int i = 0; i < s->n; i++) { /* as m:encode: bad bytes are an error, not silent [UNK]s */
        size_t bad;
        if (am_utf8_validate(s->v[i], strlen(s->v[i]), &bad))
            return am_error(AM_EUTF8, "batch text %d: invalid UTF-8 at byte %zu", i + 1, bad);
    }
    int rc = tokenizer_batch(b->em->tok, s->v, NULL, s->n, b->max_len, &b->tb[which]);
    if (rc) return rc;
    TokenBatch *tb = &b->tb[which];
    out->ids = tb->ids;
    out->type_ids = tb->type_ids;
    out->mask = tb->mask;
    out->B = tb->B;
    out->T = tb->T;
    return AM_OK;
}

static void push_stats(lua_State *L, const StepStats *st) {
    lua_createtable(L, 0, 12);
    am_lua_setnum(L, "loss", st->loss);
    lua_createtable(L, 0, st->terms.n_terms);
    for (int i = 0; i < st->terms.n_terms; i++) am_lua_setnum(L, st->terms.term[i].name, st->terms.term[i].value);
    lua_setfield(L, -2, "terms");
    am_lua_setnum(L, "lr", st->lr);
    am_lua_setnum(L, "grad_norm", st->grad_norm);
    am_lua_setint(L, "tokens", st->tokens);
    am_lua_setint(L, "step", st->step);
    am_lua_setbool(L, "updated", st->updated);
    am_lua_setint(L, "sequences", st->sequences);
    if (st->mlm_masked > 0) {
        am_lua_setnum(L, "mlm_accuracy", (double)st->mlm_correct / st->mlm_masked);
    }
}

/* tr:step(batch, loss) -> stats | nil, msg, code */
/* The batch (argument 2) and loss (argument 3, unless no_loss) of tr:step and the statistics
 * methods, tokenized into b's buffers. Raises on misuse; returns a status for tokenizer errors. */
static int parse_batch(lua_State *L, TrainerBox *b, TrainBatch *out, LossSpec **out_spec, int no_loss) {
    luaL_checktype(L, 2, LUA_TTABLE);
    LossSpec *spec = NULL;
    if (!no_loss) {
        luaL_checktype(L, 3, LUA_TTABLE);
        SpecPool *pool = lua_newuserdatauv(L, sizeof *pool, 0); /* scratch, GC'd */
        pool->n = 0;
        spec = parse_spec(L, 3, 3, pool, b->em, 0);
    }
    TrainBatch tb;
    memset(&tb, 0, sizeof tb);
    int per_a, per_p, per_n, rc;
    StrList *a = NULL, *p = NULL, *ng = NULL;
    const char *shape;
    lua_getfield(L, 2, "queries");
    int has_q = !lua_isnil(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "sentence1");
    int has_s = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (has_q) {
        shape = "pairs";
        a = get_texts(L, 2, "queries", &per_a);
        p = get_texts(L, 2, "positives", &per_p);
        ng = get_texts(L, 2, "negatives", &per_n);
        if (per_a != 1) return luaL_argerror(L, 2, "batch 'queries' must be a non-empty list of strings");
        if (per_p < 1 || p->n != a->n * per_p)
            return luaL_argerror(L, 2, "batch 'positives' must have one entry (or list) per query");
        if (per_n >= 0 && ng->n != a->n * per_n)
            return luaL_argerror(L, 2, "batch 'negatives' must have one entry (or list) per query");
        /* hard_negatives = false of the loss or of the loss a wrapper applies per view */
        int hn = 1;
        lua_pushvalue(L, 3);
        while (lua_istable(L, -1)) {
            lua_getfield(L, -1, "hard_negatives");
            if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) hn = 0;
            lua_pop(L, 1);
            lua_getfield(L, -1, "inner");
            lua_remove(L, -2);
        }
        lua_pop(L, 1);
        if (!hn) ng->n = ng->pad = 0;
        if (p->pad || ng->pad) { /* the padding mask over rows [n, R): positives, then negatives */
            AmAutoFree *cf = am_lua_newautofree(L, free);
            uint8_t *cand = cf->p = xmalloc((size_t)(p->n + ng->n) + 1);
            memcpy(cand, p->real, (size_t)p->n);
            if (ng->n) memcpy(cand + p->n, ng->real, (size_t)ng->n);
            tb.cand = cand;
            for (int i = 0; i < a->n; i++) {
                int any = 0;
                for (int j = 0; j < per_p; j++) any |= p->real[i * per_p + j];
                if (!any) return luaL_argerror(L, 2, "batch 'positives': every query needs a positive (false is padding)");
            }
        }
    } else if (has_s) {
        shape = "graded";
        a = get_texts(L, 2, "sentence1", &per_a);
        p = get_texts(L, 2, "sentence2", &per_p);
        ng = newlist(L);
        if (per_a != 1 || per_p != 1 || p->n != a->n)
            return luaL_argerror(L, 2, "batch 'sentence1' / 'sentence2' must be lists of strings of equal length");
        lua_getfield(L, 2, "scores");
        if (!lua_istable(L, -1) || luaL_len(L, -1) != a->n)
            return luaL_argerror(L, 2, "batch 'scores' must be a list of numbers, one per pair");
        if (b->cap_scores < a->n) {
            b->scores = xrealloc(b->scores, (size_t)a->n * sizeof(float));
            b->cap_scores = a->n;
        }
        for (int i = 0; i < a->n; i++) {
            lua_geti(L, -1, i + 1);
            if (!lua_isnumber(L, -1)) return luaL_argerror(L, 2, "batch 'scores' must be numbers");
            b->scores[i] = (float)lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        tb.scores = b->scores;
    } else {
        shape = "texts";
        a = get_texts(L, 2, "texts", &per_a);
        p = newlist(L);
        ng = newlist(L);
        if (per_a != 1) return luaL_argerror(L, 2, "batch needs 'queries', 'sentence1' or 'texts' (non-empty list of strings)");
    }
    (void)shape;
    if ((rc = tokenize(b, 0, a, &tb.a)) || (rc = tokenize(b, 1, p, &tb.pos)) || (rc = tokenize(b, 2, ng, &tb.neg)))
        return rc;
    *out = tb;
    *out_spec = spec;
    return AM_OK;
}

static int l_step(lua_State *L) {
    TrainerBox *b = checktr(L, 1);
    TrainBatch tb;
    LossSpec *spec;
    int rc = parse_batch(L, b, &tb, &spec, 0);
    if (rc) return am_lua_fail(L, rc);
    StepStats st;
    memset(&st, 0, sizeof st);
    rc = trainer_step(b->t, &tb, spec, &st);
    if (rc) return am_lua_fail(L, rc);
    push_stats(L, &st);
    return 1;
}

/* ---------------------------------------------------------------- save / state */

/* tr:save(name [, store [, meta_patch_json]]) -> checkpoint id, task vector id | nil, msg, code */
static int l_save(lua_State *L) {
    TrainerBox *b = checktr(L, 1);
    const char *name = luaL_optstring(L, 2, NULL);
    Store *st;
    if (lua_isnoneornil(L, 3)) {
        st = am_lua_default_store(L);
        if (!st) return am_lua_fail(L, AM_ESTORE);
    } else st = am_lua_checkstore(L, 3);
    const char *patch = luaL_optstring(L, 4, NULL);
    /* the checkpoint keeps the MLM head (if any); the task vector is the encoder's only */
    AmAutoFree *af = am_lua_newautofree(L, (void (*)(void *))model_delete);
    Model *out = NULL;
    int rc = model_new(&b->m->cfg, &out);
    if (rc) return am_lua_fail(L, rc);
    af->p = out;
    AM_ASSERT(out->tab.total == b->m->tab.total);
    AmAutoFree *fb = am_lua_newautofree(L, free);
    float *buf = fb->p = xmalloc(b->m->tab.total * sizeof(float));
    trainer_merged_params(b->t, buf);
    for (int i = 0; i < b->m->tab.n; i++) { /* a checkpoint is never a poisoned model */
        const ParamInfo *p = &b->m->tab.t[i];
        for (size_t j = 0; j < p->numel; j++)
            if (!isfinite(buf[p->offset + j]))
                return am_lua_fail(L, am_error(AM_EFORMAT, "save: %s has a non-finite weight (%g at %zu); nothing saved",
                                               p->name, (double)buf[p->offset + j], j));
    }
    memcpy(out->params, buf, b->m->tab.total * sizeof(float));
    size_t vlen;
    const char *vtext = vocab_text(b->em->vocab, &vlen);
    char parents[128], ck[AM_ID_HEX + 1], tv[AM_ID_HEX + 1];
    snprintf(parents, sizeof parents, "[{\"id\":\"%s\"}]", b->base_id);
    rc = embed_store_model(st, out, vtext, vlen, &b->em->info, name, "checkpoint", parents, ck);
    if (rc) return am_lua_fail(L, rc);
    if (patch && (rc = store_model_meta_update(st, ck, patch))) return am_lua_fail(L, rc);
    if (trainer_task_vector(b->t, buf) == AM_OK) {
        if (out->cfg.has_mlm_head) { /* tau of the encoder only */
            EncoderConfig ec = out->cfg;
            ec.has_mlm_head = 0;
            Model *enc = NULL;
            if ((rc = model_new(&ec, &enc))) return am_lua_fail(L, rc);
            model_delete(out);
            af->p = out = enc;
        }
        AM_ASSERT(out->tab.total == b->enc_total);
        memcpy(out->params, buf, b->enc_total * sizeof(float));
        char tvname[256];
        if (name) snprintf(tvname, sizeof tvname, "%s.tau", name);
        rc = embed_store_model(st, out, vtext, vlen, &b->em->info, name ? tvname : NULL, "task_vector", parents, tv);
        if (rc) return am_lua_fail(L, rc);
        char p2[160];
        snprintf(p2, sizeof p2, "{\"checkpoint\":\"%s\"}", ck);
        if ((rc = store_model_meta_update(st, tv, p2))) return am_lua_fail(L, rc);
        am_lua_autofree_now(L, -1);
        am_lua_autofree_now(L, -2);
        lua_pushstring(L, ck);
        lua_pushstring(L, tv);
        return 2;
    }
    am_clearerror();
    lua_pushstring(L, ck);
    return 1;
}

/* tr:state() -> blob string */
static int l_state(lua_State *L) {
    TrainerBox *b = checktr(L, 1);
    AmAutoFree *a = am_lua_newautofree(L, free);
    size_t len;
    int rc = trainer_state_save(b->t, &a->p, &len);
    if (rc) return am_lua_fail(L, rc);
    lua_pushlstring(L, a->p, len);
    return 1;
}

/* tr:load_state(blob) -> true | nil, msg, code */
static int l_load_state(lua_State *L) {
    TrainerBox *b = checktr(L, 1);
    size_t len;
    const char *blob = luaL_checklstring(L, 2, &len);
    int rc = trainer_state_load(b->t, blob, len);
    if (rc) return am_lua_fail(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* tr:set_steps(total) -> true | nil, msg, code: the lr schedule now ends at `total` updates */
static int l_set_steps(lua_State *L) {
    TrainerBox *b = checktr(L, 1);
    int rc = trainer_set_total_steps(b->t, (int64_t)luaL_checkinteger(L, 2));
    if (rc) return am_lua_fail(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_steps(lua_State *L) {
    lua_pushinteger(L, trainer_steps(checktr(L, 1)->t));
    return 1;
}

static int l_base(lua_State *L) {
    lua_pushstring(L, checktr(L, 1)->base_id);
    return 1;
}

/* ---------------------------------------------------------------- statistics for data merges */

/* tr:loss(batch, loss) -> loss | nil, msg, code: the batch's loss, no update (dropout as configured) */
static int l_loss(lua_State *L) {
    TrainerBox *b = checktr(L, 1);
    TrainBatch tb;
    LossSpec *spec;
    int rc = parse_batch(L, b, &tb, &spec, 0);
    StepStats st;
    if (rc || (rc = trainer_gradient(b->t, &tb, spec, NULL, &st))) return am_lua_fail(L, rc);
    lua_pushnumber(L, st.loss);
    return 1;
}

/* tr:accumulate(batch, loss, "fisher" | "grad") -> loss | nil, msg, code: adds grad² (or grad) of
 * the batch's loss at the current parameters to the trainer's statistics buffer (src/train/merge_stats.h) */
static int l_accumulate(lua_State *L) {
    TrainerBox *b = checktr(L, 1);
    static const char *const what_names[] = {"fisher", "grad", NULL};
    int what = luaL_checkoption(L, 4, "fisher", what_names);
    TrainBatch tb;
    LossSpec *spec;
    int rc = parse_batch(L, b, &tb, &spec, 0);
    if (rc) return am_lua_fail(L, rc);
    const size_t N = b->m->tab.total;
    if (!b->acc) b->acc = xcalloc(N, sizeof(float));
    AmAutoFree *af = am_lua_newautofree(L, free);
    float *g = af->p = xmalloc(N * sizeof(float));
    StepStats st;
    if ((rc = trainer_gradient(b->t, &tb, spec, g, &st))) return am_lua_fail(L, rc);
    for (size_t e = 0; e < N; e++) b->acc[e] += what == 0 ? g[e] * g[e] : g[e];
    b->n_acc++;
    lua_pushnumber(L, st.loss);
    return 1;
}

/* tr:grams(batch) -> rows | nil, msg, code: adds XᵀX of every linear layer's inputs over the
 * batch's texts (eval mode, real tokens) to the trainer's Gram sums (RegMean) */
static int l_grams(lua_State *L) {
    TrainerBox *b = checktr(L, 1);
    TrainBatch tb;
    LossSpec *spec;
    int rc = parse_batch(L, b, &tb, &spec, 1);
    if (rc) return am_lua_fail(L, rc);
    TrainTokens tx[3] = { tb.a, tb.pos, tb.neg };
    MergeGrams g;
    if ((rc = merge_stats_grams(b->m, tx, 3, &g))) return am_lua_fail(L, rc);
    if (b->n_g == 0) {
        b->n_g = g.n_lin;
        for (int j = 0; j < g.n_lin; j++) {
            const size_t IC = (size_t)b->m->tab.t[g.lin[j]].shape[1];
            b->g_lin[j] = g.lin[j];
            b->gsum[j] = xcalloc(IC * IC, sizeof(double));
        }
    }
    AM_ASSERT(b->n_g == g.n_lin);
    for (int j = 0; j < g.n_lin; j++) {
        const size_t IC = (size_t)b->m->tab.t[g.lin[j]].shape[1];
        for (size_t e = 0; e < IC * IC; e++) b->gsum[j][e] += g.G[j][e] * (double)g.rows;
    }
    b->g_rows += g.rows;
    merge_grams_free(&g);
    lua_pushinteger(L, (lua_Integer)b->g_rows);
    return 1;
}

/* tr:reset_stats(): forget accumulated gradients and Grams */
static int l_reset_stats(lua_State *L) {
    TrainerBox *b = checktr(L, 1);
    if (b->acc) memset(b->acc, 0, b->m->tab.total * sizeof(float));
    b->n_acc = 0;
    for (int i = 0; i < b->n_g; i++) free(b->gsum[i]);
    b->n_g = 0;
    b->g_rows = 0;
    return 0;
}

typedef struct {
    lua_State *L;
    int fn;           /* stack index of the probe function */
    TrainerBox *work;
} SpLua;

/* Self Positioning's probe: θ into the work trainer's model, the Lua function accumulates the
 * probe batches' gradients (tr:accumulate(..., "grad")) and returns the mean loss */
static int sp_lua_fn(void *ud, const float *theta, double *loss, float *grad) {
    SpLua *c = ud;
    TrainerBox *w = c->work;
    const size_t N = w->m->tab.total;
    memcpy(w->m->params, theta, N * sizeof(float));
    if (w->acc) memset(w->acc, 0, N * sizeof(float));
    w->n_acc = 0;
    lua_pushvalue(c->L, c->fn);
    if (lua_pcall(c->L, 0, 1, 0) != LUA_OK) { /* an error must not unwind through the C search */
        int rc = am_error(AM_EINVAL, "self_positioning: probe: %s", lua_tostring(c->L, -1));
        lua_pop(c->L, 1);
        return rc;
    }
    int isnum;
    *loss = lua_tonumberx(c->L, -1, &isnum);
    lua_pop(c->L, 1);
    if (!isnum) return am_error(AM_EINVAL, "self_positioning: the probe function must return the probe loss");
    if (w->n_acc < 1 || !w->acc) return am_error(AM_EINVAL, "self_positioning: the probe function accumulated no gradient");
    for (size_t e = 0; e < N; e++) grad[e] = w->acc[e] / (float)w->n_acc;
    return AM_OK;
}

static const char *optstr(lua_State *L, int t, const char *k, const char *def) {
    lua_getfield(L, t, k);
    const char *s = lua_isnil(L, -1) ? def : luaL_checkstring(L, -1);
    lua_pop(L, 1);
    return s;
}

/* core.raw_merge_data(store, {method=, trainers={tr...}, base=tr|nil, weights={...}|nil, name=,
 *   meta=JSON patch, epsilon=, alpha=, g=, axis=, temperature=, work=tr, probe=function, per_layer=,
 *   steps=, lr=, adam=, mu=, reg=, simplex=, init=}) -> id, info | nil, msg, code
 * Merges the trainers' models from their statistics (fisher: tr:accumulate "fisher"; regmean:
 * tr:grams) or by weights (lm_cocktail, codiemb_fusion), or learns Self Positioning's λ, and
 * stores the result (kind "merged", its tensors). The Lua side is lua/amalgam/merge.lua. */
static int l_raw_merge_data(lua_State *L) {
    Store *st = am_lua_checkstore(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *method = optstr(L, 2, "method", NULL);
    luaL_argcheck(L, method != NULL, 2, "method required");
    lua_getfield(L, 2, "trainers");
    luaL_argcheck(L, lua_istable(L, -1), 2, "trainers required");
    int k = (int)luaL_len(L, -1);
    luaL_argcheck(L, k >= 1 && k <= 64, 2, "1..64 trainers");
    TrainerBox *tb[64];
    const float *models[64], *stats[64];
    for (int i = 0; i < k; i++) {
        lua_geti(L, -1, i + 1);
        tb[i] = checktr(L, -1);
        lua_pop(L, 1);
        models[i] = tb[i]->m->params;
        if (tb[i]->m->tab.total != tb[0]->m->tab.total) return am_lua_fail(L, am_error(AM_ESHAPE, "merge: the models differ in shape"));
    }
    lua_pop(L, 1);
    lua_getfield(L, 2, "base");
    TrainerBox *base = lua_isnil(L, -1) ? NULL : checktr(L, -1);
    lua_pop(L, 1);
    if (base && base->m->tab.total != tb[0]->m->tab.total) return am_lua_fail(L, am_error(AM_ESHAPE, "merge: the base differs in shape"));
    double w[64];
    int has_w = 0;
    lua_getfield(L, 2, "weights");
    if (lua_istable(L, -1)) {
        has_w = 1;
        for (int i = 0; i < k; i++) {
            lua_geti(L, -1, i + 1);
            w[i] = luaL_checknumber(L, -1);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    const Model *m0 = tb[0]->m;
    const ParamTable *tab = &m0->tab;
    AmAutoFree *mf = am_lua_newautofree(L, (void (*)(void *))model_delete);
    Model *out = NULL;
    int rc = model_new(&m0->cfg, &out);
    if (rc) return am_lua_fail(L, rc);
    mf->p = out;
    lua_newtable(L); /* info */
    int info = lua_gettop(L);
    double t0 = am_now();
    const char *sp_json = NULL;
    if (strcmp(method, "fisher") == 0) {
        AmAutoFree *ff = am_lua_newautofree(L, free);
        float *F = ff->p = xmalloc((size_t)k * tab->total * sizeof(float));
        for (int i = 0; i < k; i++) {
            if (!tb[i]->acc || tb[i]->n_acc < 1)
                return am_lua_fail(L, am_error(AM_EINVAL, "fisher: model %d has no data batches", i + 1));
            for (size_t e = 0; e < tab->total; e++) F[(size_t)i * tab->total + e] = tb[i]->acc[e] / (float)tb[i]->n_acc;
            stats[i] = F + (size_t)i * tab->total;
        }
        lua_getfield(L, 2, "epsilon");
        double eps = luaL_optnumber(L, -1, 1e-10);
        lua_pop(L, 1);
        rc = merge_fisher(tab, k, models, stats, has_w ? w : NULL, eps, out->params);
    } else if (strcmp(method, "regmean") == 0) {
        int nl = tb[0]->n_g;
        for (int i = 0; i < k; i++)
            if (tb[i]->n_g != nl || nl == 0 || tb[i]->g_rows == 0)
                return am_lua_fail(L, am_error(AM_EINVAL, "regmean: model %d has no data batches", i + 1));
        AmAutoFree *gf = am_lua_newautofree(L, free);
        const double **G = gf->p = xmalloc((size_t)k * nl * sizeof(double *));
        AmAutoFree *sf = am_lua_newautofree(L, free);
        double *scaled = NULL;
        size_t tot = 0;
        for (int j = 0; j < nl; j++) tot += (size_t)tab->t[tb[0]->g_lin[j]].shape[1] * (size_t)tab->t[tb[0]->g_lin[j]].shape[1];
        scaled = sf->p = xmalloc((size_t)k * tot * sizeof(double));
        size_t off = 0;
        for (int i = 0; i < k; i++)
            for (int j = 0; j < nl; j++) {
                const size_t IC = (size_t)tab->t[tb[0]->g_lin[j]].shape[1];
                for (size_t e = 0; e < IC * IC; e++) scaled[off + e] = tb[i]->gsum[j][e] / (double)tb[i]->g_rows;
                G[(size_t)i * nl + j] = scaled + off;
                off += IC * IC;
            }
        lua_getfield(L, 2, "alpha");
        double alpha = luaL_optnumber(L, -1, 0.9);
        lua_pop(L, 1);
        rc = merge_regmean(tab, k, models, nl, tb[0]->g_lin, G, alpha, has_w ? w : NULL, out->params);
    } else if (strcmp(method, "lm_cocktail") == 0) {
        luaL_argcheck(L, has_w, 2, "lm_cocktail: weights (from the losses) required");
        double s = 0;
        for (int i = 0; i < k; i++) s += w[i];
        for (size_t e = 0; e < tab->total; e++) {
            double v = 0;
            for (int i = 0; i < k; i++) v += w[i] * (double)models[i][e];
            out->params[e] = (float)(v / s);
        }
    } else if (strcmp(method, "codiemb_fusion") == 0) {
        MergeFusionG g;
        MergeFusionAxis ax;
        if ((rc = merge_fusion_g_from_name(optstr(L, 2, "g", "abs"), &g)) ||
            (rc = merge_fusion_axis_from_name(optstr(L, 2, "axis", "element"), &ax)))
            return am_lua_fail(L, rc);
        lua_getfield(L, 2, "temperature");
        double T = luaL_optnumber(L, -1, 1.0);
        lua_pop(L, 1);
        rc = merge_codiemb_fusion(tab, k, models, base ? base->m->params : NULL, g, T, ax, out->params);
    } else if (strcmp(method, "self_positioning") == 0) {
        luaL_argcheck(L, base != NULL, 2, "self_positioning: base required");
        lua_getfield(L, 2, "work");
        TrainerBox *work = checktr(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, 2, "probe");
        luaL_argcheck(L, lua_isfunction(L, -1), 2, "self_positioning: probe function required");
        int fn = lua_gettop(L);
        MergeSpConfig c;
        merge_sp_config_default(&c);
        c.per_layer = am_lua_opt_bool(L, 2, 2, "per_layer", 0);
        c.steps = (int)am_lua_opt_int(L, 2, 2, "steps", c.steps);
        c.lr = am_lua_opt_num(L, 2, 2, "lr", c.lr);
        c.adam = am_lua_opt_bool(L, 2, 2, "adam", 1);
        c.mu = am_lua_opt_num(L, 2, 2, "mu", 0);
        static const char *const regs[] = {"none", "uniform", "zero", NULL};
        c.reg = (MergeSpReg)am_lua_opt_enum(L, 2, 2, "reg", regs, MERGE_SP_REG_UNIFORM);
        c.simplex = am_lua_opt_bool(L, 2, 2, "simplex", 0);
        c.init = am_lua_opt_num(L, 2, 2, "init", NAN);
        AmAutoFree *tf = am_lua_newautofree(L, free);
        float *taus = tf->p = xmalloc((size_t)k * tab->total * sizeof(float));
        const float *tp[64];
        for (int i = 0; i < k; i++) {
            for (size_t e = 0; e < tab->total; e++) taus[(size_t)i * tab->total + e] = models[i][e] - base->m->params[e];
            tp[i] = taus + (size_t)i * tab->total;
        }
        const int G = merge_sp_groups(&c, m0->cfg.num_layers);
        double lam[64 * (AM_MAX_LAYERS + 2)];
        SpLua ctx = { L, fn, work };
        MergeSpTrace tr;
        rc = merge_self_position(&c, tab, m0->cfg.num_layers, k, base->m->params, tp, sp_lua_fn, &ctx, lam, out->params, &tr);
        if (!rc) {
            lua_createtable(L, k * G, 0);
            for (int j = 0; j < k * G; j++) { lua_pushnumber(L, lam[j]); lua_rawseti(L, -2, j + 1); }
            lua_setfield(L, info, "lambda");
            lua_createtable(L, tr.steps + 1, 0);
            for (int s = 0; s <= tr.steps; s++) { lua_pushnumber(L, tr.loss[s]); lua_rawseti(L, -2, s + 1); }
            lua_setfield(L, info, "loss");
            lua_createtable(L, tr.steps + 1, 0);
            for (int s = 0; s <= tr.steps; s++) {
                lua_createtable(L, k * G, 0);
                for (int j = 0; j < k * G; j++) { lua_pushnumber(L, tr.lambda[(size_t)s * k * G + j]); lua_rawseti(L, -2, j + 1); }
                lua_rawseti(L, -2, s + 1);
            }
            lua_setfield(L, info, "trajectory");
            lua_pushinteger(L, G);
            lua_setfield(L, info, "groups");
            /* the λ trajectory and probe-loss curve go into the stored model's meta */
            AmAutoFree *jf = am_lua_newautofree(L, free);
            size_t cap = 256 + (size_t)(tr.steps + 1) * (size_t)(k * G + 1) * 26, o = 0;
            char *j = jf->p = xmalloc(cap);
            o += (size_t)snprintf(j + o, cap - o, "{\"self_positioning\":{\"groups\":%d,\"lambda\":[", G);
            for (int q = 0; q < k * G; q++) o += (size_t)snprintf(j + o, cap - o, "%s%.9g", q ? "," : "", lam[q]);
            o += (size_t)snprintf(j + o, cap - o, "],\"loss\":[");
            for (int q = 0; q <= tr.steps; q++) o += (size_t)snprintf(j + o, cap - o, "%s%.9g", q ? "," : "", tr.loss[q]);
            o += (size_t)snprintf(j + o, cap - o, "],\"trajectory\":[");
            for (int q = 0; q <= tr.steps; q++) {
                o += (size_t)snprintf(j + o, cap - o, "%s[", q ? "," : "");
                for (int r = 0; r < k * G; r++)
                    o += (size_t)snprintf(j + o, cap - o, "%s%.9g", r ? "," : "", tr.lambda[(size_t)q * k * G + r]);
                o += (size_t)snprintf(j + o, cap - o, "]");
            }
            snprintf(j + o, cap - o, "],\"seconds\":%.6g}}", tr.seconds);
            sp_json = j;
            merge_sp_trace_free(&tr);
        }
    } else {
        return luaL_argerror(L, 2, lua_pushfstring(L, "unknown data merge method '%s'", method));
    }
    if (rc) return am_lua_fail(L, rc);
    lua_pushnumber(L, am_now() - t0);
    lua_setfield(L, info, "seconds");
    /* store: kind merged, parents with weights, then the caller's meta patch */
    luaL_Buffer pb;
    luaL_buffinit(L, &pb);
    luaL_addstring(&pb, "[");
    for (int i = 0; i < k; i++) {
        char e[160];
        snprintf(e, sizeof e, "%s{\"id\":\"%s\",\"weight\":%.17g}", i ? "," : "", tb[i]->base_id, has_w ? w[i] : 1.0);
        luaL_addstring(&pb, e);
    }
    luaL_addstring(&pb, "]");
    luaL_pushresult(&pb);
    const char *parents = lua_tostring(L, -1);
    const char *name = optstr(L, 2, "name", NULL);
    const char *patch = optstr(L, 2, "meta", NULL);
    size_t vlen;
    const char *vtext = vocab_text(tb[0]->em->vocab, &vlen);
    char id[AM_ID_HEX + 1];
    /* identical tensors are an existing model (e.g. a model merged with itself): its record and
     * lineage stay as they are (only the name is pointed at it) */
    store_model_id(out, vtext, vlen, id);
    char *had = NULL;
    int found = store_model_meta(st, id, &had) == AM_OK;
    free(had);
    am_clearerror();
    if ((rc = embed_store_model(st, out, vtext, vlen, &tb[0]->em->info, name, "merged", parents, id))) return am_lua_fail(L, rc);
    if (!found && patch && (rc = store_model_meta_update(st, id, patch))) return am_lua_fail(L, rc);
    if (!found && sp_json && (rc = store_model_meta_update(st, id, sp_json))) return am_lua_fail(L, rc);
    lua_pushboolean(L, found);
    lua_setfield(L, info, "found");
    lua_pushstring(L, id);
    lua_pushvalue(L, info);
    return 2;
}

/* ---------------------------------------------------------------- helpers */

/* core.raw_batch_order(n, seed, epoch) -> { 1-based ids } */
static int l_raw_batch_order(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    lua_Integer seed = luaL_checkinteger(L, 2);
    lua_Integer epoch = luaL_checkinteger(L, 3);
    luaL_argcheck(L, n >= 1 && n <= (1 << 28), 1, "n must be in 1..2^28");
    AmAutoFree *a = am_lua_newautofree(L, free);
    int64_t *o = a->p = xmalloc((size_t)n * sizeof *o);
    dataset_batch_order(n, (uint64_t)seed, epoch, o);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 0; i < n; i++) {
        lua_pushinteger(L, o[i] + 1);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static const luaL_Reg tr_methods[] = {
    {"step", l_step},   {"save", l_save},   {"state", l_state}, {"load_state", l_load_state},
    {"steps", l_steps}, {"set_steps", l_set_steps}, {"base", l_base},   {"close", tr_close},
    {"loss", l_loss},   {"accumulate", l_accumulate}, {"grams", l_grams}, {"reset_stats", l_reset_stats}, {NULL, NULL},
};
static const luaL_Reg tr_meta[] = {
    {"__index", NULL}, {"__gc", tr_close}, {"__close", tr_close}, {"__tostring", tr_tostring}, {NULL, NULL},
};
static const luaL_Reg tr_funcs[] = {
    {"raw_trainer", l_raw_trainer},
    {"raw_batch_order", l_raw_batch_order},
    {"raw_merge_data", l_raw_merge_data},
    {NULL, NULL},
};

/* [core] -> [core] */
void am_lua_open_train(lua_State *L) {
    am_lua_newclass(L, AM_TRAINER_MT, tr_methods, tr_meta);
    luaL_setfuncs(L, tr_funcs, 0);
}
