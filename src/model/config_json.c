/* config_json.c - EncoderConfig <-> config.json (see config_json.h). */
#include "config_json.h"
#include "am_base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double config_json_float(float f) {
    if (!isfinite(f)) return (double)f;
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) return strtod(buf, NULL);
    }
    return (double)f;
}

cJSON *config_json_encode(const EncoderConfig *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(c->has_mlm_head ? "BertForMaskedLM" : "BertModel"));
    cJSON_AddNumberToObject(o, "attention_probs_dropout_prob", config_json_float(c->attention_dropout));
    cJSON_AddStringToObject(o, "hidden_act", "gelu");
    cJSON_AddNumberToObject(o, "hidden_dropout_prob", config_json_float(c->hidden_dropout));
    cJSON_AddNumberToObject(o, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(o, "initializer_range", config_json_float(c->initializer_range));
    cJSON_AddNumberToObject(o, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(o, "layer_norm_eps", config_json_float(c->layer_norm_eps));
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_position);
    cJSON_AddStringToObject(o, "model_type", "bert");
    cJSON_AddNumberToObject(o, "num_attention_heads", c->num_heads);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->num_layers);
    cJSON_AddNumberToObject(o, "pad_token_id", c->pad_token_id);
    cJSON_AddStringToObject(o, "position_embedding_type", "absolute");
    cJSON_AddNumberToObject(o, "type_vocab_size", c->type_vocab_size);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    return o;
}

static int get_int(const cJSON *o, const char *key, int required, int lo, const char *where, int *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it || cJSON_IsNull(it))
        return required ? am_error(AM_EFORMAT, "%s: required key \"%s\" is missing", where, key) : AM_OK;
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble))
        return am_error(AM_EFORMAT, "%s: \"%s\" must be an integer", where, key);
    double v = it->valuedouble, hi = 1 << 30;
    if (v < lo || v > hi)
        return am_error(AM_EFORMAT, "%s: \"%s\" = %.17g is out of range [%d, %.0f]", where, key, v, lo, hi);
    *out = (int)v;
    return AM_OK;
}

static int get_float(const cJSON *o, const char *key, const char *where, float *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it || cJSON_IsNull(it)) return AM_OK;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return am_error(AM_EFORMAT, "%s: \"%s\" must be a number", where, key);
    *out = (float)it->valuedouble;
    return AM_OK;
}

/* a string key that must have one value when present */
static int check_string(const cJSON *o, const char *key, const char *want, const char *where, const char *why) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it || cJSON_IsNull(it)) return AM_OK;
    if (!cJSON_IsString(it)) return am_error(AM_EFORMAT, "%s: \"%s\" must be a string", where, key);
    if (strcmp(it->valuestring, want) != 0)
        return am_error(AM_EFORMAT, "%s: %s '%s' is not supported%s", where, key, it->valuestring, why);
    return AM_OK;
}

static int get_bool(const cJSON *o, const char *key, const char *where, int *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it || cJSON_IsNull(it)) return AM_OK;
    if (!cJSON_IsBool(it)) return am_error(AM_EFORMAT, "%s: \"%s\" must be true or false", where, key);
    *out = cJSON_IsTrue(it);
    return AM_OK;
}

int config_json_decode(const cJSON *o, const char *where, EncoderConfig *c) {
    encoder_config_default(c);
    if (!cJSON_IsObject(o)) return am_error(AM_EFORMAT, "%s: not a JSON object", where);
    int rc, dec = 0;
    if ((rc = check_string(o, "model_type", "bert", where, " (only 'bert')")) ||
        (rc = check_string(o, "hidden_act", "gelu", where,
                           "; amalgam's encoder implements BERT's exact erf GELU (hidden_act \"gelu\") only")) ||
        (rc = check_string(o, "position_embedding_type", "absolute", where, " (only 'absolute')")) ||
        (rc = get_bool(o, "is_decoder", where, &dec)))
        return rc;
    if (dec) return am_error(AM_EFORMAT, "%s: is_decoder is true; only encoders are supported", where);
    if ((rc = get_int(o, "vocab_size", 1, 1, where, &c->vocab_size)) ||
        (rc = get_int(o, "hidden_size", 1, 1, where, &c->hidden_size)) ||
        (rc = get_int(o, "num_hidden_layers", 1, 1, where, &c->num_layers)) ||
        (rc = get_int(o, "num_attention_heads", 1, 1, where, &c->num_heads)) ||
        (rc = get_int(o, "intermediate_size", 1, 1, where, &c->intermediate_size)) ||
        (rc = get_int(o, "max_position_embeddings", 1, 1, where, &c->max_position)) ||
        (rc = get_int(o, "type_vocab_size", 0, 1, where, &c->type_vocab_size)) ||
        (rc = get_int(o, "pad_token_id", 0, 0, where, &c->pad_token_id)) ||
        (rc = get_float(o, "layer_norm_eps", where, &c->layer_norm_eps)) ||
        (rc = get_float(o, "hidden_dropout_prob", where, &c->hidden_dropout)) ||
        (rc = get_float(o, "attention_probs_dropout_prob", where, &c->attention_dropout)) ||
        (rc = get_float(o, "initializer_range", where, &c->initializer_range)) ||
        (rc = get_bool(o, "has_mlm_head", where, &c->has_mlm_head)))
        return rc;
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(o, "architectures"), *a;
    if (arch && !cJSON_IsNull(arch) && !cJSON_IsArray(arch))
        return am_error(AM_EFORMAT, "%s: \"architectures\" must be a list", where);
    cJSON_ArrayForEach(a, arch) {
        if (cJSON_IsString(a) && (strcmp(a->valuestring, "BertForMaskedLM") == 0 ||
                                  strcmp(a->valuestring, "BertForPreTraining") == 0))
            c->has_mlm_head = 1;
    }
    if ((rc = encoder_config_validate(c))) return am_error_wrap(rc, "%s", where);
    return AM_OK;
}
