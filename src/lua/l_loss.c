/* l_loss.c - loss specs from Lua: {kind = "infonce" | "cosent" | "codiemb_sts" | "matryoshka" |
 * "starbucks" | "random_2d" | "mlm" | "entropy", ...} (wrappers nest through `inner`) into LossSpec trees
 * for tr:step and the statistics methods (see l_train.c for the table shapes). */
#define _GNU_SOURCE
#include "am_lua.h"
#include "am_base.h"
#include "trainer.h"
#include "l_train.h"

#include <stdlib.h>
#include <string.h>

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
LossSpec *am_lua_loss_spec(lua_State *L, int t, int arg, SpecPool *pool, const EmbedModel *em, int depth) {
    t = lua_absindex(L, t);
    luaL_argcheck(L, lua_istable(L, t), arg, "loss spec must be a table");
    if (pool->n >= MAX_SPECS || depth > 3) luaL_argerror(L, arg, "loss spec nested too deeply");
    const char *kname = am_lua_opt_str(L, t, arg, "kind", NULL);
    if (!kname) luaL_argerror(L, arg, "loss spec needs a 'kind'");
    int kind = loss_kind_from_name(kname);
    if (kind < 0)
        luaL_argerror(L, arg, lua_pushfstring(L, "unknown loss kind '%s' (infonce, cosent, codiemb_sts, matryoshka, "
                                                 "starbucks, random_2d, mlm, entropy)", kname));
    LossSpec *s = &pool->s[pool->n++];
    loss_spec_default(s, kind);
    s->weight = (float)am_lua_opt_num(L, t, arg, "weight", s->weight);
    switch (kind) {
    case AM_LOSS_INFONCE: read_infonce(L, t, arg, &s->infonce); break;
    case AM_LOSS_ENTROPY: {
        lua_getfield(L, t, "temperature");
        if (!lua_isnil(L, -1)) {
            double T = luaL_checknumber(L, -1);
            if (!(T > 0)) luaL_error(L, "loss option 'temperature' must be > 0");
            s->entropy.scale = (float)(1.0 / T);
        }
        lua_pop(L, 1);
        s->entropy.scale = (float)am_lua_opt_num(L, t, arg, "scale", s->entropy.scale);
        s->entropy.sim = am_lua_opt_enum(L, t, arg, "sim", sim_names, s->entropy.sim);
        break;
    }
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
        if (lua_istable(L, -1)) s->inner = am_lua_loss_spec(L, -1, arg, pool, em, depth + 1);
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
