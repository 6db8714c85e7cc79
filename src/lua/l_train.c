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
 * Loss specs are parsed in l_loss.c, batches in l_train_batch.c, the statistics methods for
 * data merges (tr:loss / accumulate / grams / reset_stats, core.raw_merge_data) are in
 * l_train_stats.c; l_train.h holds what they share.
 *
 * The trainer owns a copy of the model's parameters (with an MLM head if asked), so the
 * Model handle it was made from is not modified. The handle is kept alive (user value 1).
 */
#define _GNU_SOURCE
#include "am_lua.h"
#include "am_base.h"
#include "dataset.h"
#include "trainer.h"
#include "l_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void am_lua_open_train(lua_State *L);

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

TrainerBox *am_lua_checktrainer(lua_State *L, int i) {
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
static int l_step(lua_State *L) {
    TrainerBox *b = am_lua_checktrainer(L, 1);
    TrainBatch tb;
    LossSpec *spec;
    int rc = am_lua_train_batch(L, b, &tb, &spec, 0);
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
    TrainerBox *b = am_lua_checktrainer(L, 1);
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
    TrainerBox *b = am_lua_checktrainer(L, 1);
    AmAutoFree *a = am_lua_newautofree(L, free);
    size_t len;
    int rc = trainer_state_save(b->t, &a->p, &len);
    if (rc) return am_lua_fail(L, rc);
    lua_pushlstring(L, a->p, len);
    return 1;
}

/* tr:load_state(blob) -> true | nil, msg, code */
static int l_load_state(lua_State *L) {
    TrainerBox *b = am_lua_checktrainer(L, 1);
    size_t len;
    const char *blob = luaL_checklstring(L, 2, &len);
    int rc = trainer_state_load(b->t, blob, len);
    if (rc) return am_lua_fail(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* tr:set_steps(total) -> true | nil, msg, code: the lr schedule now ends at `total` updates */
static int l_set_steps(lua_State *L) {
    TrainerBox *b = am_lua_checktrainer(L, 1);
    int rc = trainer_set_total_steps(b->t, (int64_t)luaL_checkinteger(L, 2));
    if (rc) return am_lua_fail(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_steps(lua_State *L) {
    lua_pushinteger(L, trainer_steps(am_lua_checktrainer(L, 1)->t));
    return 1;
}

static int l_base(lua_State *L) {
    lua_pushstring(L, am_lua_checktrainer(L, 1)->base_id);
    return 1;
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
    {"loss", am_lua_tr_loss},   {"accumulate", am_lua_tr_accumulate}, {"grams", am_lua_tr_grams},
    {"reset_stats", am_lua_tr_reset_stats}, {NULL, NULL},
};
static const luaL_Reg tr_meta[] = {
    {"__index", NULL}, {"__gc", tr_close}, {"__close", tr_close}, {"__tostring", tr_tostring}, {NULL, NULL},
};
static const luaL_Reg tr_funcs[] = {
    {"raw_trainer", l_raw_trainer},
    {"raw_batch_order", l_raw_batch_order},
    {"raw_merge_data", am_lua_raw_merge_data},
    {"raw_grad_conflict", am_lua_raw_grad_conflict},
    {NULL, NULL},
};

/* [core] -> [core] */
void am_lua_open_train(lua_State *L) {
    am_lua_newclass(L, AM_TRAINER_MT, tr_methods, tr_meta);
    luaL_setfuncs(L, tr_funcs, 0);
}
