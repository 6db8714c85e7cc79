/* embed.h - a stored model ready to embed text: weights + vocab + tokenizer + pooling.
 *
 * This is the layer the CLI, the Lua bindings and (later) evaluation share: load a model from
 * the store by name or id prefix, tokenize, run the encoder in batches sorted by length
 * (as sentence-transformers does), pool, normalise, truncate to (layer, dim).
 *
 * Model metadata lives in the store's JSON meta with these keys (besides the store's own):
 *   name, kind ("init" | "pretrained" | "checkpoint" | "task_vector" | "lora" | "merged"), pooling
 *   ("mean" | "cls"), normalize (bool), max_seq_length, do_lower_case, strip_accents
 *   (null | bool), source, parents ([{id, weight}]), created.
 */
#ifndef AM_EMBED_H
#define AM_EMBED_H

#include "hf.h"
#include "model.h"
#include "store.h"
#include "wordpiece.h"

typedef struct Encoder Encoder;

typedef struct {
    char id[AM_ID_HEX + 1];  /* store id ("" if not stored) */
    Model *model;
    Vocab *vocab;
    Tokenizer *tok;
    HfInfo info;              /* pooling, normalize, max_seq_length, do_lower_case, strip_accents */
    char *meta_json;          /* stored meta (NULL if not from a store) */
    int recipe_only;          /* a merge kept as its recipe (computed on load) */
    Encoder *enc;             /* workspace, created on first encode and reused */
    TokenBatch batch;
} EmbedModel;

typedef struct {
    int pooling;    /* AM_POOL_MEAN / AM_POOL_CLS; -1 = the model's */
    int normalize;  /* 0 / 1; -1 = the model's */
    int layer;      /* hidden states of this layer (0 = embeddings, L = last); -1 = last */
    int dim;        /* keep the first dim features (Matryoshka); 0 = all */
    int batch;      /* sentences per forward pass (64) */
    int max_len;    /* tokens incl. [CLS]/[SEP]; 0 = the model's max_seq_length */
} EmbedOptions;

void embed_options_default(EmbedOptions *o);

/* Load a stored model by name or id prefix. AM_ENOTFOUND names the model. */
int embed_model_load(Store *st, const char *name_or_id, EmbedModel **out);
/* Wrap a model and vocab (ownership moves to the EmbedModel, also on failure). */
int embed_model_wrap(Model *m, Vocab *v, const HfInfo *info, EmbedModel **out);
void embed_model_delete(EmbedModel *em);

/* Output width for these options (dim or hidden size). */
int embed_model_dim(const EmbedModel *em, const EmbedOptions *o);
/* Embed n texts into out (n x embed_model_dim floats, row-major). Texts must be valid UTF-8
 * (AM_EUTF8 names the text index and byte offset). progress may be NULL. */
typedef int (*EmbedProgress)(void *ud, int done, int total); /* non-zero return cancels (AM_EINTR) */
int embed_model_encode(EmbedModel *em, const char *const *texts, int n, const EmbedOptions *o, float *out,
                       EmbedProgress progress, void *ud);

/* Model meta as JSON (malloc'd) for storing: the HfInfo fields plus name, kind, source.
 * parents_json may be NULL or a JSON array. */
char *embed_meta_json(const HfInfo *info, const char *name, const char *kind, const char *parents_json);
/* Read the HfInfo fields back from stored meta (missing keys keep hf_info_default values). */
int embed_info_from_meta(const char *meta_json, HfInfo *info);

/* Store m + vocab bytes with meta; sets the name; id_out gets the content id. */
int embed_store_model(Store *st, const Model *m, const char *vocab, size_t vocab_len, const HfInfo *info,
                      const char *name, const char *kind, const char *parents_json, char id_out[AM_ID_HEX + 1]);

#endif
