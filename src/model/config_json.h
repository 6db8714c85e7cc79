/* config_json.h - one codec between EncoderConfig and BERT's config.json keys, used both for
 * the store's model meta ("config") and for Hugging Face directories (src/io/hf.c).
 *
 *   architectures            ["BertForMaskedLM"] with the MLM head, else ["BertModel"]
 *   model_type "bert", hidden_act "gelu", position_embedding_type "absolute"
 *   vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
 *   max_position_embeddings, type_vocab_size, pad_token_id          integers
 *   layer_norm_eps, hidden_dropout_prob, attention_probs_dropout_prob, initializer_range
 *                                                                    shortest round-trip floats
 *
 * has_pooler is not a config.json key (the store keeps it next to "config"; import looks at
 * the tensors), and neither are the HF-only keys export adds (torch_dtype, use_cache, ...).
 */
#ifndef AM_CONFIG_JSON_H
#define AM_CONFIG_JSON_H

#include <cjson/cJSON.h>

#include "model.h"

/* A new cJSON object (cJSON_Delete) with the keys above. */
cJSON *config_json_encode(const EncoderConfig *c);

/* Read a config object into *c (defaults first: encoder_config_default, has_pooler kept at
 * 1). The sizes up to intermediate_size are required, the rest optional. model_type,
 * hidden_act, position_embedding_type and is_decoder are checked when present.
 * has_mlm_head: "architectures" naming BertForMaskedLM / BertForPreTraining, or a boolean
 * "has_mlm_head" (the store's meta before this codec). `where` starts every message
 * ("DIR/config.json", "model ID: meta config"). AM_EFORMAT for a missing or mistyped key or
 * an unsupported architecture; AM_EINVAL (encoder_config_validate) for impossible sizes. */
int config_json_decode(const cJSON *o, const char *where, EncoderConfig *c);

/* The float as the shortest decimal that reads back as the same float (1e-12, not 9.9999999e-13). */
double config_json_float(float f);

#endif
