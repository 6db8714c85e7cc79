/* hf.h - Hugging Face BERT model directories and the sentence-transformers layout.
 *
 * Import reads (each error names the file and the problem):
 *   config.json              BERT config; model_type "bert", hidden_act "gelu" (exact erf GELU),
 *                            position_embedding_type "absolute"; anything else is rejected.
 *   model.safetensors        F32, F16, BF16 (or F64) tensors with BertModel names, or with the
 *                            "bert." prefix of BertForMaskedLM / BertForPreTraining checkpoints;
 *                            old "LayerNorm.gamma"/"LayerNorm.beta" names are accepted. Tensors
 *                            the encoder does not use (cls.*, position_ids, ...) are ignored and
 *                            counted in HfInfo.n_ignored. A missing pooler is allowed: the model
 *                            then has cfg.has_pooler = 0 (no pooler tensors at all, never a
 *                            zero-filled stand-in), and export writes no pooler either
 *                            (transformers then initialises one and warns; sentence-transformers
 *                            never uses it). pytorch_model.bin alone is an error with a HINT.
 *   vocab.txt                required (WordPiece); size must not exceed config vocab_size.
 *   tokenizer_config.json    optional: do_lower_case, strip_accents, model_max_length.
 *   modules.json             optional sentence-transformers layout: a Transformer module (its
 *                            path may be "" or a subdirectory such as "0_BERT"), a Pooling module
 *                            (mean or CLS only) and optionally Normalize. Any other module type
 *                            (Dense, ...) is rejected rather than silently dropped.
 *   sentence_bert_config.json  max_seq_length, do_lower_case (in the Transformer module dir).
 *
 * Export writes a directory that transformers (AutoModel/AutoTokenizer.from_pretrained) and
 * sentence-transformers (SentenceTransformer(dir), v2.2+ and v3) load with the pooling intact:
 *   config.json, model.safetensors (F32, metadata {"format": "pt"}), vocab.txt (byte-identical),
 *   tokenizer_config.json, special_tokens_map.json, modules.json,
 *   config_sentence_transformers.json, sentence_bert_config.json, 1_Pooling/config.json,
 *   2_Normalize/ (empty, only when normalize is on).
 * Everything is written into DIR.tmp.XXXXXX next to DIR, then renamed to DIR, so a failed
 * export leaves nothing behind. DIR must not exist or be an empty directory (AM_EEXIST).
 */
#ifndef AM_HF_H
#define AM_HF_H

#include "encoder.h" /* AM_POOL_* */
#include "model.h"
#include "wordpiece.h"


typedef struct {
    int pooling;         /* AM_POOL_MEAN / AM_POOL_CLS (plain HF dirs: mean) */
    int normalize;       /* 1: L2-normalise the pooled embedding (Normalize module) */
    int max_seq_length;  /* sentence_bert_config max_seq_length, else tokenizer model_max_length,
                            else max_position_embeddings; never above max_position_embeddings */
    int do_lower_case;   /* tokenizer lower-casing (or sentence-transformers' do_lower_case) */
    int strip_accents;   /* -1: follow do_lower_case (HF default); 0 / 1 explicit */
    int is_sentence_transformers; /* modules.json was present */
    int n_ignored;       /* tensors in the file the encoder does not use (import only) */
    char dtype[8];       /* dtype of the imported weights ("F32", "F16", "BF16", "mixed") */
    char source[1024];   /* the directory imported from */
} HfInfo;

/* Defaults for a plain BERT directory: mean pooling, no normalisation, uncased,
 * strip_accents -1, max_seq_length 0 (= take it from the model), empty source. */
void hf_info_default(HfInfo *info);

/* Import a Hugging Face / sentence-transformers directory. On success *model and *vocab are
 * new objects owned by the caller; info (may be NULL) is filled. On failure both are NULL and
 * the message (am_lasterror) names the file and the problem. Codes: AM_ENOTFOUND (directory,
 * config.json, model.safetensors or vocab.txt missing), AM_EFORMAT (malformed file, missing
 * tensor, unsupported architecture/activation/pooling), AM_ESHAPE (tensor shape differs from
 * what config.json implies), AM_EDTYPE, AM_EVOCAB, AM_ENOMEM, AM_EIO. */
int hf_import(const char *dir, Model **model /* OUT: */, Vocab **vocab /* OUT: */, HfInfo *info /* OUT: */);

/* Export m and v as a transformers + sentence-transformers directory (see above). info may be
 * NULL (hf_info_default; max_seq_length then = max_position). Atomic. */
int hf_export(const char *dir, const Model *m, const Vocab *v, const HfInfo *info);

/* Same, from raw vocab.txt bytes (no Vocab object needed). */
int hf_export_vocab_text(const char *dir, const Model *m, const char *vocab, size_t vocab_len,
                         const HfInfo *info);

#endif
