/* embed.c - stored model -> embeddings (see embed.h). */
#include "embed.h"
#include "am_base.h"
#include "encoder.h"
#include "merge_store.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void embed_options_default(EmbedOptions *o) {
    *o = (EmbedOptions){.pooling = -1, .normalize = -1, .layer = -1, .dim = 0, .batch = 64, .max_len = 0};
}

static int make_tokenizer(EmbedModel *em) {
    TokenizerOptions to;
    tokenizer_options_default(&to);
    to.do_lower_case = em->info.do_lower_case;
    to.strip_accents = em->info.strip_accents;
    return tokenizer_new(em->vocab, &to, &em->tok);
}

int embed_model_wrap(Model *m, Vocab *v, const HfInfo *info, EmbedModel **out) {
    *out = NULL;
    if (!m || !v) {
        model_delete(m);
        vocab_delete(v);
        return am_error(AM_EINVAL, "embed_model_wrap: model and vocab are required");
    }
    if (vocab_size(v) > m->cfg.vocab_size)
        am_log(AM_LOG_WARN, "vocab has %d tokens but the model only %d embeddings", vocab_size(v), m->cfg.vocab_size);
    EmbedModel *em = xcalloc(1, sizeof *em);
    em->model = m;
    em->vocab = v;
    if (info) em->info = *info;
    else hf_info_default(&em->info);
    if (em->info.max_seq_length <= 0 || em->info.max_seq_length > m->cfg.max_position)
        em->info.max_seq_length = m->cfg.max_position;
    int rc = make_tokenizer(em);
    if (rc) {
        embed_model_delete(em);
        return rc;
    }
    *out = em;
    return AM_OK;
}

int embed_model_load(Store *st, const char *name_or_id, EmbedModel **out) {
    *out = NULL;
    char id[AM_ID_HEX + 1];
    int rc = store_resolve(st, name_or_id, id);
    if (rc) return rc;
    Model *m = NULL;
    char *meta = NULL, *vtext = NULL;
    size_t vlen = 0;
    const int recipe = merge_store_is_recipe(st, id);
    if (recipe) { /* a merge kept as its recipe: computed here */
        if ((rc = merge_store_load(st, id, &m, &vtext, &vlen)) || (rc = store_model_meta(st, id, &meta))) {
            model_delete(m);
            free(vtext);
            return rc;
        }
    } else if ((rc = store_model_get(st, id, &m, &meta, &vtext, &vlen))) return rc;
    if (!vtext) {
        model_delete(m);
        free(meta);
        return am_error(AM_EVOCAB, "model '%s' (%s) has no vocabulary, so it cannot embed text", name_or_id, id);
    }
    Vocab *v = NULL;
    char origin[64];
    snprintf(origin, sizeof origin, "vocab of model %.12s", id);
    rc = vocab_from_text(vtext, vlen, origin, &v);
    free(vtext);
    if (rc) {
        model_delete(m);
        free(meta);
        return rc;
    }
    HfInfo info;
    hf_info_default(&info);
    if ((rc = embed_info_from_meta(meta, &info))) {
        model_delete(m);
        vocab_delete(v);
        free(meta);
        return rc;
    }
    EmbedModel *em = NULL;
    if ((rc = embed_model_wrap(m, v, &info, &em))) {
        free(meta);
        return rc;
    }
    memcpy(em->id, id, sizeof id);
    em->meta_json = meta;
    em->recipe_only = recipe;
    *out = em;
    return AM_OK;
}

void embed_model_delete(EmbedModel *em) {
    if (!em) return;
    encoder_delete(em->enc);
    token_batch_free(&em->batch);
    tokenizer_delete(em->tok);
    vocab_delete(em->vocab);
    model_delete(em->model);
    free(em->meta_json);
    free(em);
}

int embed_model_dim(const EmbedModel *em, const EmbedOptions *o) {
    int C = em->model->cfg.hidden_size;
    return o && o->dim > 0 && o->dim < C ? o->dim : C;
}

/* sort texts by length (longest first) so batches pad little, as sentence-transformers does */
typedef struct { size_t len; int idx; } LenIdx;
static int by_len_desc(const void *a, const void *b) {
    const LenIdx *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1;
    return x->idx - y->idx;
}

int embed_model_encode(EmbedModel *em, const char *const *texts, int n, const EmbedOptions *opt, float *out,
                       EmbedProgress progress, void *ud) {
    EmbedOptions o;
    if (opt) o = *opt;
    else embed_options_default(&o);
    const EncoderConfig *cfg = &em->model->cfg;
    int pooling = o.pooling >= 0 ? o.pooling : em->info.pooling;
    int normalize = o.normalize >= 0 ? o.normalize : em->info.normalize;
    int layer = o.layer >= 0 ? o.layer : cfg->num_layers;
    int dim = embed_model_dim(em, &o);
    int max_len = o.max_len > 0 ? o.max_len : em->info.max_seq_length;
    int bs = o.batch > 0 ? o.batch : 64;
    if (layer > cfg->num_layers)
        return am_error(AM_EINVAL, "layer %d out of range (the model has %d layers; 0 = embeddings)", layer,
                        cfg->num_layers);
    if (max_len > cfg->max_position) max_len = cfg->max_position;
    if (max_len < 2) return am_error(AM_EINVAL, "max_len %d too small (needs [CLS] and [SEP])", max_len);
    for (int i = 0; i < n; i++) {
        size_t bad;
        if (am_utf8_validate(texts[i], strlen(texts[i]), &bad) != AM_OK)
            return am_error(AM_EUTF8, "text %d is not valid UTF-8 (byte %zu)", i + 1, bad + 1);
    }
    int rc = AM_OK;
    if (!em->enc && (rc = encoder_new(em->model, &em->enc))) return rc;

    LenIdx *order = xmalloc((size_t)(n ? n : 1) * sizeof *order);
    for (int i = 0; i < n; i++) order[i] = (LenIdx){strlen(texts[i]), i};
    qsort(order, (size_t)n, sizeof *order, by_len_desc);
    const char **bt = xmalloc((size_t)bs * sizeof *bt);
    float *tmp = xmalloc((size_t)bs * dim * sizeof(float));
    for (int s = 0; s < n && rc == AM_OK; s += bs) {
        int B = n - s < bs ? n - s : bs;
        for (int i = 0; i < B; i++) bt[i] = texts[order[s + i].idx];
        double t0 = am_now();
        if ((rc = tokenizer_batch(em->tok, bt, NULL, B, max_len, &em->batch))) break;
        TokenBatch *b = &em->batch;
        double t1 = am_now();
        rc = encoder_embed(em->enc, b->ids, b->type_ids, b->mask, b->B, b->T,
                           pooling, normalize, layer, dim, tmp);
        am_phase_add(AM_PHASE_TOKENIZE, t1 - t0);
        am_phase_add(AM_PHASE_ENCODE, am_now() - t1);
        if (rc) break;
        for (int i = 0; i < B; i++)
            memcpy(out + (size_t)order[s + i].idx * dim, tmp + (size_t)i * dim, (size_t)dim * sizeof(float));
        if (progress && progress(ud, s + B, n)) rc = am_error(AM_EINTR, "encoding interrupted");
    }
    free(tmp);
    free(bt);
    free(order);
    return rc;
}

/* ---------------------------------------------------------------- meta */

char *embed_meta_json(const HfInfo *info, const char *name, const char *kind, const char *parents_json) {
    cJSON *j = cJSON_CreateObject();
    if (name) cJSON_AddStringToObject(j, "name", name);
    cJSON_AddStringToObject(j, "kind", kind ? kind : "pretrained");
    cJSON_AddStringToObject(j, "pooling", pool_name(info->pooling == AM_POOL_CLS ? AM_POOL_CLS : AM_POOL_MEAN));
    cJSON_AddBoolToObject(j, "normalize", info->normalize);
    cJSON_AddNumberToObject(j, "max_seq_length", info->max_seq_length);
    cJSON_AddBoolToObject(j, "do_lower_case", info->do_lower_case);
    if (info->strip_accents < 0) cJSON_AddNullToObject(j, "strip_accents");
    else cJSON_AddBoolToObject(j, "strip_accents", info->strip_accents);
    if (info->source[0]) cJSON_AddStringToObject(j, "source", info->source);
    cJSON *parents = parents_json ? cJSON_Parse(parents_json) : NULL;
    cJSON_AddItemToObject(j, "parents", parents ? parents : cJSON_CreateArray());
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    AM_ASSERT(s != NULL);
    return s;
}

int embed_info_from_meta(const char *meta_json, HfInfo *info) {
    cJSON *j = cJSON_Parse(meta_json ? meta_json : "{}");
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return am_error(AM_EFORMAT, "model meta is not a JSON object");
    }
    const cJSON *x;
    if (cJSON_IsString(x = cJSON_GetObjectItemCaseSensitive(j, "pooling"))) {
        int p = pool_from_name(x->valuestring);
        if (p >= 0) info->pooling = p;
        else {
            cJSON_Delete(j);
            return am_error(AM_EFORMAT, "model meta: unknown pooling '%s'", x->valuestring);
        }
    }
    if (cJSON_IsBool(x = cJSON_GetObjectItemCaseSensitive(j, "normalize"))) info->normalize = cJSON_IsTrue(x);
    if (cJSON_IsNumber(x = cJSON_GetObjectItemCaseSensitive(j, "max_seq_length"))) info->max_seq_length = x->valueint;
    if (cJSON_IsBool(x = cJSON_GetObjectItemCaseSensitive(j, "do_lower_case"))) info->do_lower_case = cJSON_IsTrue(x);
    x = cJSON_GetObjectItemCaseSensitive(j, "strip_accents");
    if (cJSON_IsBool(x)) info->strip_accents = cJSON_IsTrue(x);
    if (cJSON_IsString(x = cJSON_GetObjectItemCaseSensitive(j, "source")))
        snprintf(info->source, sizeof info->source, "%s", x->valuestring);
    cJSON_Delete(j);
    return AM_OK;
}

int embed_store_model(Store *st, const Model *m, const char *vocab, size_t vocab_len, const HfInfo *info,
                      const char *name, const char *kind, const char *parents_json, char id_out[AM_ID_HEX + 1]) {
    char *meta = embed_meta_json(info, name, kind, parents_json);
    int rc = store_model_put(st, m, meta, vocab, vocab_len, id_out);
    free(meta);
    return rc;
}
