/* model.h - BERT encoder config, parameter table and the Model object.
 *
 * Dimension legend used across src/model and src/tensor:
 *   B = batch, T = sequence length (tokens), C = hidden size, NH = attention heads,
 *   HS = C / NH head size, FF = intermediate (FFN) size, L = layers, V = vocab,
 *   P = max positions, TV = token types.
 *
 * Parameters live in ONE flat float buffer; the ParamTable names every tensor with its
 * Hugging Face BertModel name (e.g. "encoder.layer.0.attention.self.query.weight"), shape
 * and offset. Gradients and AdamW moments are flat buffers of the same size with the same
 * table, so merging or optimising is a loop over one array. Linear weights are stored as
 * PyTorch does, (out, in) row-major: y = x·Wᵀ + b.
 *
 * Layout inside the buffer (the table is the truth; code reaches tensors through
 * ParameterTensors pointers): per layer, query/key/value weights are contiguous, so
 * they form one (3C, C) matrix for a fused QKV GEMM, and their biases one (3C) vector.
 */
#ifndef AM_MODEL_H
#define AM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define AM_MAX_LAYERS 48
#define AM_NAME_MAX 96

typedef struct {
    int vocab_size;          /* V */
    int hidden_size;         /* C */
    int num_layers;          /* L */
    int num_heads;           /* NH */
    int intermediate_size;   /* FF */
    int max_position;        /* P */
    int type_vocab_size;     /* TV */
    float layer_norm_eps;    /* 1e-12 as BERT */
    float hidden_dropout;    /* hidden_dropout_prob, 0.1 */
    float attention_dropout; /* attention_probs_dropout_prob, 0.1 */
    int pad_token_id;        /* 0 */
    float initializer_range; /* 0.02 */
    int has_pooler;          /* pooler.dense.{weight,bias} present (BertModel default: 1) */
    int has_mlm_head;        /* BertForMaskedLM's head cls.predictions.* present (default 0); its
                                decoder is tied to the word embeddings (no tensor of its own) */
} EncoderConfig;

/* Presets matching tools/bench/torch_peer.py: tiny (BERT-tiny), mini (BERT-mini), small (MiniLM-L6). */
int encoder_config_preset(EncoderConfig *cfg, const char *name); /* AM_EINVAL if unknown */
void encoder_config_default(EncoderConfig *cfg);                 /* bert-base-like defaults, vocab 30522 */
int encoder_config_validate(const EncoderConfig *cfg);           /* AM_EINVAL with a message */

typedef struct {
    char name[AM_NAME_MAX];
    int ndim;
    int64_t shape[4];
    size_t offset;   /* in floats, into the flat buffer */
    size_t numel;
} ParamInfo;

typedef struct {
    int n;           /* number of tensors */
    ParamInfo *t;    /* n entries, in buffer order */
    size_t total;    /* total floats */
} ParamTable;

/* Pointers into a flat buffer (params, grads or moments), llm.c style. */
typedef struct {
    float *wte;   /* (V, C)  embeddings.word_embeddings.weight */
    float *wpe;   /* (P, C)  embeddings.position_embeddings.weight */
    float *wtt;   /* (TV, C) embeddings.token_type_embeddings.weight */
    float *lnew;  /* (C)     embeddings.LayerNorm.weight */
    float *lneb;  /* (C)     embeddings.LayerNorm.bias */
    struct {
        float *qkvw;  /* (3C, C) attention.self.{query,key,value}.weight, contiguous */
        float *qkvb;  /* (3C)    attention.self.{query,key,value}.bias */
        float *attow; /* (C, C)  attention.output.dense.weight */
        float *attob; /* (C) */
        float *ln1w;  /* (C)     attention.output.LayerNorm.weight */
        float *ln1b;  /* (C) */
        float *fcw;   /* (FF, C) intermediate.dense.weight */
        float *fcb;   /* (FF) */
        float *fcprojw; /* (C, FF) output.dense.weight */
        float *fcprojb; /* (C) */
        float *ln2w;  /* (C)     output.LayerNorm.weight */
        float *ln2b;  /* (C) */
    } layer[AM_MAX_LAYERS];
    float *poolw; /* (C, C) pooler.dense.weight, NULL if !has_pooler */
    float *poolb; /* (C) */
    /* MLM head (BertForMaskedLM), all NULL if !has_mlm_head; after everything else in the
     * buffer, so the encoder's offsets do not depend on it. Decoder weight = wte (tied). */
    float *mlmw;   /* (C, C) cls.predictions.transform.dense.weight */
    float *mlmb;   /* (C)    cls.predictions.transform.dense.bias */
    float *mlmlnw; /* (C)    cls.predictions.transform.LayerNorm.weight */
    float *mlmlnb; /* (C)    cls.predictions.transform.LayerNorm.bias */
    float *mlmbias; /* (V)   cls.predictions.bias (the decoder's bias) */
} ParameterTensors;

void param_table_build(ParamTable *tab, const EncoderConfig *cfg); /* init/free pair */
void param_table_free(ParamTable *tab);
const ParamInfo *param_table_find(const ParamTable *tab, const char *name); /* NULL if absent */
void param_tensors_point(ParameterTensors *pt, const ParamTable *tab, const EncoderConfig *cfg, float *base);

/* A model: config + table + flat parameters. Owns its buffer. */
typedef struct {
    EncoderConfig cfg;
    ParamTable tab;
    float *params;          /* tab.total floats, 64-byte aligned */
    ParameterTensors p;     /* pointers into params */
    size_t params_bytes;    /* the buffer's size from am_pool_take (model_delete gives it back) */
} Model;

/* Allocate a zeroed model for cfg. AM_ENOMEM / AM_EINVAL. */
int model_new(const EncoderConfig *cfg, Model **out);
void model_delete(Model *m);
/* BERT's init: normal(0, initializer_range) for weights and embeddings, zero biases,
 * LayerNorm weight 1 bias 0, padding row of word embeddings zero (HF _init_weights). */
void model_init_bert(Model *m, uint64_t seed);

#endif
