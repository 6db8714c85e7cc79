/* l_train_stats.c - statistics for data merges: tr:loss, tr:accumulate (Fisher / gradient sums),
 * tr:grams (RegMean's XᵀX), tr:reset_stats, and core.raw_merge_data, which merges trainers'
 * models from those statistics (or learns Self Positioning's λ) and stores the result. */
#define _GNU_SOURCE
#include "am_lua.h"
#include "am_base.h"
#include "trainer.h"
#include "merge_stats.h"
#include "merge_store.h"
#include "l_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* tr:loss(batch, loss) -> loss | nil, msg, code: the batch's loss, no update (dropout as configured) */
int am_lua_tr_loss(lua_State *L) {
    TrainerBox *b = am_lua_checktrainer(L, 1);
    TrainBatch tb;
    LossSpec *spec;
    int rc = am_lua_train_batch(L, b, &tb, &spec, 0);
    StepStats st;
    if (rc || (rc = trainer_gradient(b->t, &tb, spec, NULL, &st))) return am_lua_fail(L, rc);
    lua_pushnumber(L, st.loss);
    return 1;
}

/* tr:accumulate(batch, loss, "fisher" | "grad") -> loss | nil, msg, code: adds grad² (or grad) of
 * the batch's loss at the current parameters to the trainer's statistics buffer (src/api/merge_stats.h) */
int am_lua_tr_accumulate(lua_State *L) {
    TrainerBox *b = am_lua_checktrainer(L, 1);
    static const char *const what_names[] = {"fisher", "grad", NULL};
    int what = luaL_checkoption(L, 4, "fisher", what_names);
    TrainBatch tb;
    LossSpec *spec;
    int rc = am_lua_train_batch(L, b, &tb, &spec, 0);
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
int am_lua_tr_grams(lua_State *L) {
    TrainerBox *b = am_lua_checktrainer(L, 1);
    TrainBatch tb;
    LossSpec *spec;
    int rc = am_lua_train_batch(L, b, &tb, &spec, 1);
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
int am_lua_tr_reset_stats(lua_State *L) {
    TrainerBox *b = am_lua_checktrainer(L, 1);
    if (b->acc) memset(b->acc, 0, b->m->tab.total * sizeof(float));
    b->n_acc = 0;
    for (int i = 0; i < b->n_g; i++) free(b->gsum[i]);
    b->n_g = 0;
    b->g_rows = 0;
    return 0;
}

/* core.raw_grad_conflict({tr, ...}) -> diagnostics | nil, msg, code: the trainers' accumulated
 * mean gradients (tr:accumulate(..., "grad"), one trainer per task on the same model) compared
 * pairwise: cosines and sign conflicts per tensor, per layer and overall (merge_diag_vectors) */
int am_lua_raw_grad_conflict(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    int k = (int)luaL_len(L, 1);
    luaL_argcheck(L, k >= 1 && k <= 64, 1, "1..64 trainers");
    TrainerBox *tb[64];
    for (int i = 0; i < k; i++) {
        lua_geti(L, 1, i + 1);
        tb[i] = am_lua_checktrainer(L, -1);
        lua_pop(L, 1);
        if (tb[i]->m->tab.total != tb[0]->m->tab.total)
            return am_lua_fail(L, am_error(AM_ESHAPE, "diagnose: the trainers' models differ in shape"));
        if (!tb[i]->acc || tb[i]->n_acc < 1)
            return am_lua_fail(L, am_error(AM_EINVAL, "diagnose: task %d has no gradient (no batches)", i + 1));
    }
    const size_t N = tb[0]->m->tab.total;
    AmAutoFree *gf = am_lua_newautofree(L, free);
    float *g = gf->p = xmalloc((size_t)k * N * sizeof(float));
    const float *v[64];
    for (int i = 0; i < k; i++) {
        for (size_t e = 0; e < N; e++) g[(size_t)i * N + e] = tb[i]->acc[e] / (float)tb[i]->n_acc;
        v[i] = g + (size_t)i * N;
    }
    char *json = NULL;
    int rc = merge_diag_vectors(&tb[0]->m->tab, v, k, &json);
    if (rc) return am_lua_fail(L, rc);
    rc = am_lua_pushjson(L, json, strlen(json));
    free(json);
    if (rc) return am_lua_fail(L, rc);
    return 1;
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
int am_lua_raw_merge_data(lua_State *L) {
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
        tb[i] = am_lua_checktrainer(L, -1);
        lua_pop(L, 1);
        models[i] = tb[i]->m->params;
        if (tb[i]->m->tab.total != tb[0]->m->tab.total) return am_lua_fail(L, am_error(AM_ESHAPE, "merge: the models differ in shape"));
    }
    lua_pop(L, 1);
    lua_getfield(L, 2, "base");
    TrainerBox *base = lua_isnil(L, -1) ? NULL : am_lua_checktrainer(L, -1);
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
        MergeFisherNorm fn;
        if ((rc = merge_fisher_norm_from_name(optstr(L, 2, "normalize", "none"), &fn))) return am_lua_fail(L, rc);
        rc = merge_fisher_normalized(tab, k, models, stats, has_w ? w : NULL, eps, fn, out->params);
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
        TrainerBox *work = am_lua_checktrainer(L, -1);
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
        c.clamp = am_lua_opt_bool(L, 2, 2, "clamp", 0);
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
