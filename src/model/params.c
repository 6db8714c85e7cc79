/* params.c - encoder configs, the Hugging Face parameter table, Model allocation and init. */
#include "model.h"
#include "am_base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void encoder_config_default(EncoderConfig *cfg) {
    *cfg = (EncoderConfig){
        .vocab_size = 30522, .hidden_size = 768, .num_layers = 12, .num_heads = 12,
        .intermediate_size = 3072, .max_position = 512, .type_vocab_size = 2,
        .layer_norm_eps = 1e-12f, .hidden_dropout = 0.1f, .attention_dropout = 0.1f,
        .pad_token_id = 0, .initializer_range = 0.02f, .has_pooler = 1,
    };
}

int encoder_config_preset(EncoderConfig *cfg, const char *name) {
    static const struct { const char *name; int c, l, nh, ff; } presets[] = {
        {"tiny", 128, 2, 2, 512},
        {"mini", 256, 4, 4, 1024},
        {"small", 384, 6, 6, 1536},
        {"base", 768, 12, 12, 3072},
    };
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(name, presets[i].name) != 0) continue;
        encoder_config_default(cfg);
        cfg->hidden_size = presets[i].c;
        cfg->num_layers = presets[i].l;
        cfg->num_heads = presets[i].nh;
        cfg->intermediate_size = presets[i].ff;
        return AM_OK;
    }
    return am_error(AM_EINVAL, "unknown model config '%s' (choose tiny, mini, small or base)", name);
}

int encoder_config_validate(const EncoderConfig *c) {
    if (c->vocab_size <= 0 || c->hidden_size <= 0 || c->num_layers <= 0 || c->num_heads <= 0 ||
        c->intermediate_size <= 0 || c->max_position <= 0 || c->type_vocab_size <= 0)
        return am_error(AM_EINVAL, "config: sizes must be positive (vocab %d, hidden %d, layers %d, heads %d, "
                        "intermediate %d, positions %d, types %d)", c->vocab_size, c->hidden_size,
                        c->num_layers, c->num_heads, c->intermediate_size, c->max_position, c->type_vocab_size);
    if (c->hidden_size % c->num_heads != 0)
        return am_error(AM_EINVAL, "config: hidden_size %d is not a multiple of num_attention_heads %d",
                        c->hidden_size, c->num_heads);
    if (c->num_layers > AM_MAX_LAYERS)
        return am_error(AM_EINVAL, "config: %d layers (at most %d supported)", c->num_layers, AM_MAX_LAYERS);
    if (c->pad_token_id < 0 || c->pad_token_id >= c->vocab_size)
        return am_error(AM_EINVAL, "config: pad_token_id %d outside vocab of %d", c->pad_token_id, c->vocab_size);
    if (!(c->layer_norm_eps > 0))
        return am_error(AM_EINVAL, "config: layer_norm_eps must be > 0");
    if (c->hidden_dropout < 0 || c->hidden_dropout >= 1 || c->attention_dropout < 0 || c->attention_dropout >= 1)
        return am_error(AM_EINVAL, "config: dropout probabilities must be in [0, 1)");
    return AM_OK;
}

/* ---------------------------------------------------------------- table */

static void add(ParamTable *tab, int *cap, const char *name, int ndim, int64_t d0, int64_t d1) {
    if (tab->n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        tab->t = xrealloc(tab->t, (size_t)*cap * sizeof *tab->t);
    }
    ParamInfo *p = &tab->t[tab->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim > 1 ? d1 : 1;
    p->numel = (size_t)d0 * (size_t)(ndim > 1 ? d1 : 1);
    p->offset = tab->total;
    tab->total += p->numel; /* no padding: q, k, v must stay back to back (fused QKV) */
}

void param_table_build(ParamTable *tab, const EncoderConfig *cfg) {
    memset(tab, 0, sizeof *tab);
    int cap = 0;
    const int64_t C = cfg->hidden_size, FF = cfg->intermediate_size;
    char nm[AM_NAME_MAX];
    add(tab, &cap, "embeddings.word_embeddings.weight", 2, cfg->vocab_size, C);
    add(tab, &cap, "embeddings.position_embeddings.weight", 2, cfg->max_position, C);
    add(tab, &cap, "embeddings.token_type_embeddings.weight", 2, cfg->type_vocab_size, C);
    add(tab, &cap, "embeddings.LayerNorm.weight", 1, C, 0);
    add(tab, &cap, "embeddings.LayerNorm.bias", 1, C, 0);
    for (int l = 0; l < cfg->num_layers; l++) {
#define LAYER(suffix, nd, a, b) \
        snprintf(nm, sizeof nm, "encoder.layer.%d.%s", l, suffix); add(tab, &cap, nm, nd, a, b)
        /* q, k, v back to back: the fused-QKV pointers rely on it (asserted below) */
        LAYER("attention.self.query.weight", 2, C, C);
        LAYER("attention.self.key.weight", 2, C, C);
        LAYER("attention.self.value.weight", 2, C, C);
        LAYER("attention.self.query.bias", 1, C, 0);
        LAYER("attention.self.key.bias", 1, C, 0);
        LAYER("attention.self.value.bias", 1, C, 0);
        LAYER("attention.output.dense.weight", 2, C, C);
        LAYER("attention.output.dense.bias", 1, C, 0);
        LAYER("attention.output.LayerNorm.weight", 1, C, 0);
        LAYER("attention.output.LayerNorm.bias", 1, C, 0);
        LAYER("intermediate.dense.weight", 2, FF, C);
        LAYER("intermediate.dense.bias", 1, FF, 0);
        LAYER("output.dense.weight", 2, C, FF);
        LAYER("output.dense.bias", 1, C, 0);
        LAYER("output.LayerNorm.weight", 1, C, 0);
        LAYER("output.LayerNorm.bias", 1, C, 0);
#undef LAYER
    }
    if (cfg->has_pooler) {
        add(tab, &cap, "pooler.dense.weight", 2, C, C);
        add(tab, &cap, "pooler.dense.bias", 1, C, 0);
    }
    if (cfg->has_mlm_head) { /* last, so nothing above moves */
        add(tab, &cap, "cls.predictions.transform.dense.weight", 2, C, C);
        add(tab, &cap, "cls.predictions.transform.dense.bias", 1, C, 0);
        add(tab, &cap, "cls.predictions.transform.LayerNorm.weight", 1, C, 0);
        add(tab, &cap, "cls.predictions.transform.LayerNorm.bias", 1, C, 0);
        add(tab, &cap, "cls.predictions.bias", 1, cfg->vocab_size, 0);
    }
}

void param_table_free(ParamTable *tab) {
    free(tab->t);
    memset(tab, 0, sizeof *tab);
}

const ParamInfo *param_table_find(const ParamTable *tab, const char *name) {
    for (int i = 0; i < tab->n; i++)
        if (strcmp(tab->t[i].name, name) == 0) return &tab->t[i];
    return NULL;
}

static float *at(const ParamTable *tab, float *base, const char *name) {
    const ParamInfo *p = param_table_find(tab, name);
    AM_ASSERT(p != NULL);
    return base + p->offset;
}

void param_tensors_point(ParameterTensors *pt, const ParamTable *tab, const EncoderConfig *cfg, float *base) {
    memset(pt, 0, sizeof *pt);
    const size_t C = (size_t)cfg->hidden_size;
    pt->wte = at(tab, base, "embeddings.word_embeddings.weight");
    pt->wpe = at(tab, base, "embeddings.position_embeddings.weight");
    pt->wtt = at(tab, base, "embeddings.token_type_embeddings.weight");
    pt->lnew = at(tab, base, "embeddings.LayerNorm.weight");
    pt->lneb = at(tab, base, "embeddings.LayerNorm.bias");
    char nm[AM_NAME_MAX];
    for (int l = 0; l < cfg->num_layers; l++) {
#define P(field, suffix) snprintf(nm, sizeof nm, "encoder.layer.%d.%s", l, suffix); pt->layer[l].field = at(tab, base, nm)
        P(qkvw, "attention.self.query.weight");
        P(qkvb, "attention.self.query.bias");
        P(attow, "attention.output.dense.weight");
        P(attob, "attention.output.dense.bias");
        P(ln1w, "attention.output.LayerNorm.weight");
        P(ln1b, "attention.output.LayerNorm.bias");
        P(fcw, "intermediate.dense.weight");
        P(fcb, "intermediate.dense.bias");
        P(fcprojw, "output.dense.weight");
        P(fcprojb, "output.dense.bias");
        P(ln2w, "output.LayerNorm.weight");
        P(ln2b, "output.LayerNorm.bias");
        /* the fused QKV matrix needs k and v right after q */
        snprintf(nm, sizeof nm, "encoder.layer.%d.attention.self.value.weight", l);
        AM_ASSERT(at(tab, base, nm) == pt->layer[l].qkvw + 2 * C * C);
        snprintf(nm, sizeof nm, "encoder.layer.%d.attention.self.value.bias", l);
        AM_ASSERT(at(tab, base, nm) == pt->layer[l].qkvb + 2 * C);
#undef P
    }
    if (cfg->has_pooler) {
        pt->poolw = at(tab, base, "pooler.dense.weight");
        pt->poolb = at(tab, base, "pooler.dense.bias");
    }
    if (cfg->has_mlm_head) {
        pt->mlmw = at(tab, base, "cls.predictions.transform.dense.weight");
        pt->mlmb = at(tab, base, "cls.predictions.transform.dense.bias");
        pt->mlmlnw = at(tab, base, "cls.predictions.transform.LayerNorm.weight");
        pt->mlmlnb = at(tab, base, "cls.predictions.transform.LayerNorm.bias");
        pt->mlmbias = at(tab, base, "cls.predictions.bias");
    }
}

/* ---------------------------------------------------------------- Model */

int model_new(const EncoderConfig *cfg, Model **out) {
    *out = NULL;
    int rc = encoder_config_validate(cfg);
    if (rc) return rc;
    Model *m = xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    param_table_build(&m->tab, cfg);
    /* pooled: merges make and drop a model per step (am_base.h, am_pool_take) */
    m->params = am_pool_take(m->tab.total * sizeof(float), 64, &m->params_bytes);
    if (!m->params) {
        rc = am_error(AM_ENOMEM, "cannot allocate %zu parameters (%.1f MB)", m->tab.total, m->tab.total * 4e-6);
        param_table_free(&m->tab);
        free(m);
        return rc;
    }
    memset(m->params, 0, m->tab.total * sizeof(float));
    param_tensors_point(&m->p, &m->tab, cfg, m->params);
    *out = m;
    return AM_OK;
}

void model_delete(Model *m) {
    if (!m) return;
    am_pool_give(m->params, m->params_bytes, 64);
    param_table_free(&m->tab);
    free(m);
}

void model_init_bert(Model *m, uint64_t seed) {
    AmRng rng;
    am_rng_seed(&rng, seed);
    const float std = m->cfg.initializer_range;
    memset(m->params, 0, m->tab.total * sizeof(float));
    for (int i = 0; i < m->tab.n; i++) {
        const ParamInfo *p = &m->tab.t[i];
        float *w = m->params + p->offset;
        const char *tail = strrchr(p->name, '.');
        int is_ln = strstr(p->name, "LayerNorm") != NULL;
        if (is_ln && strcmp(tail, ".weight") == 0) {
            for (size_t j = 0; j < p->numel; j++) w[j] = 1.0f;
        } else if (!is_ln && strcmp(tail, ".weight") == 0) {
            for (size_t j = 0; j < p->numel; j++) w[j] = std * am_rng_normal(&rng);
        } /* biases stay zero */
    }
    /* HF zeroes the padding_idx row of word embeddings */
    memset(m->p.wte + (size_t)m->cfg.pad_token_id * m->cfg.hidden_size, 0, m->cfg.hidden_size * sizeof(float));
}
