/* test_config_json.c - the one EncoderConfig <-> config.json codec (src/model/config_json.c):
 * round trips, the MLM head as "architectures" and as the store's older "has_mlm_head", the
 * checks, and that the store's meta and an exported config.json carry the same object. */
#define _GNU_SOURCE
#define TEST_TMP_PREFIX "/tmp/am_test_cfg_"
#include "harness.h"
#include "tmpdir.h"
#include "am_base.h"
#include "config_json.h"
#include "hf.h"
#include "store.h"

#include <cjson/cJSON.h>

static int same_config(const EncoderConfig *a, const EncoderConfig *b) {
    return a->vocab_size == b->vocab_size && a->hidden_size == b->hidden_size && a->num_layers == b->num_layers &&
           a->num_heads == b->num_heads && a->intermediate_size == b->intermediate_size &&
           a->max_position == b->max_position && a->type_vocab_size == b->type_vocab_size &&
           a->layer_norm_eps == b->layer_norm_eps && a->hidden_dropout == b->hidden_dropout &&
           a->attention_dropout == b->attention_dropout && a->pad_token_id == b->pad_token_id &&
           a->initializer_range == b->initializer_range && a->has_mlm_head == b->has_mlm_head;
}

static EncoderConfig small_config(void) {
    EncoderConfig c;
    encoder_config_default(&c);
    c.vocab_size = 100;
    c.hidden_size = 16;
    c.num_layers = 1;
    c.num_heads = 2;
    c.intermediate_size = 32;
    c.max_position = 16;
    c.layer_norm_eps = 1e-12f;
    c.hidden_dropout = 0.1f;
    c.initializer_range = 0.02f;
    return c;
}

TEST(round_trip) {
    for (int mlm = 0; mlm <= 1; mlm++) {
        EncoderConfig c = small_config(), d;
        c.has_mlm_head = mlm;
        cJSON *j = config_json_encode(&c);
        const cJSON *arch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "architectures"), 0);
        CHECK(cJSON_IsString(arch) && strcmp(arch->valuestring, mlm ? "BertForMaskedLM" : "BertModel") == 0);
        CHECK(cJSON_GetObjectItemCaseSensitive(j, "has_mlm_head") == NULL);
        char *s = cJSON_PrintUnformatted(j);
        CHECKF(strstr(s, "\"layer_norm_eps\":1e-12") != NULL, "shortest float: %s", s);
        free(s);
        CHECK_OK(config_json_decode(j, "t", &d));
        CHECK(same_config(&c, &d));
        cJSON_Delete(j);
    }
}

TEST(legacy_and_checks) {
    EncoderConfig c = small_config(), d;
    cJSON *j = config_json_encode(&c);
    cJSON_DeleteItemFromObjectCaseSensitive(j, "architectures");
    cJSON_AddBoolToObject(j, "has_mlm_head", 1);   /* a store meta written before the codec */
    CHECK_OK(config_json_decode(j, "t", &d));
    CHECK(d.has_mlm_head == 1);
    cJSON_ReplaceItemInObjectCaseSensitive(j, "has_mlm_head", cJSON_CreateNumber(1));
    CHECK_EQ_INT(config_json_decode(j, "where", &d), AM_EFORMAT);
    CHECK(strstr(am_lasterror(), "where: \"has_mlm_head\" must be true or false") != NULL);
    cJSON_DeleteItemFromObjectCaseSensitive(j, "has_mlm_head");
    cJSON_ReplaceItemInObjectCaseSensitive(j, "hidden_act", cJSON_CreateString("relu"));
    CHECK_EQ_INT(config_json_decode(j, "where", &d), AM_EFORMAT);
    CHECK(strstr(am_lasterror(), "hidden_act 'relu' is not supported") != NULL);
    cJSON_ReplaceItemInObjectCaseSensitive(j, "hidden_act", cJSON_CreateString("gelu"));
    cJSON_DeleteItemFromObjectCaseSensitive(j, "hidden_size");
    CHECK_EQ_INT(config_json_decode(j, "where", &d), AM_EFORMAT);
    CHECK(strstr(am_lasterror(), "required key \"hidden_size\" is missing") != NULL);
    cJSON_AddNumberToObject(j, "hidden_size", 15);   /* not a multiple of the heads */
    CHECK_EQ_INT(config_json_decode(j, "where", &d), AM_EINVAL);
    cJSON_Delete(j);
    CHECK_EQ_INT(config_json_decode(NULL, "where", &d), AM_EFORMAT);
}

/* the store's meta "config" and an exported config.json are the same codec's output */
TEST(store_and_hf_agree) {
    char *dir = tmpdir();
    Model *m = NULL;
    Vocab *v = NULL;
    HfInfo info;
    char *src = xasprintf("%s/ref/hf/bert_mlm_f16", AM_TEST_DIR);
    CHECK_OK(hf_import(src, &m, &v, &info));
    free(src);
    if (!m) return;
    CHECK(m->cfg.has_mlm_head);
    Store *st = NULL;
    char *sd = xasprintf("%s/store", dir), *out = xasprintf("%s/out", dir), id[AM_ID_HEX + 1];
    size_t vlen;
    const char *vt = vocab_text(v, &vlen);
    CHECK_OK(store_open(sd, 0, &st));
    CHECK_OK(store_model_put(st, m, "{\"name\":\"t\"}", vt, vlen, id));
    char *meta = NULL;
    CHECK_OK(store_model_meta(st, id, &meta));
    CHECK_OK(hf_export(out, m, v, &info));
    char *cp = xasprintf("%s/config.json", out), *text = NULL;
    size_t tl;
    CHECK_OK(am_read_file(cp, &text, &tl));
    cJSON *mj = cJSON_Parse(meta), *hj = cJSON_Parse(text);
    cJSON *mc = cJSON_GetObjectItemCaseSensitive(mj, "config");
    int n = 0;
    for (cJSON *it = mc ? mc->child : NULL; it; it = it->next, n++)
        CHECKF(cJSON_Compare(it, cJSON_GetObjectItemCaseSensitive(hj, it->string), 1), "key %s differs", it->string);
    CHECK(n >= 16);
    Model *back = NULL;
    CHECK_OK(store_model_get(st, id, &back, NULL, NULL, NULL));
    CHECK(back && same_config(&back->cfg, &m->cfg));
    cJSON_Delete(mj);
    cJSON_Delete(hj);
    free(text);
    free(cp);
    free(meta);
    model_delete(back);
    store_close(st);
    model_delete(m);
    vocab_delete(v);
    free(sd);
    free(out);
}

int main(void) {
    RUN(round_trip);
    RUN(legacy_and_checks);
    RUN(store_and_hf_agree);
    cleanup_tmp();
    return test_report();
}
