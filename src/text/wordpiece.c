/* wordpiece.c - Hugging Face BertTokenizer-compatible tokenization (see wordpiece.h).
 *
 * What transformers' slow BertTokenizer does to plain text, and where it happens here:
 *   1. PreTrainedTokenizer.tokenize lower-cases each character on its own (so U+03A3 is
 *      always σ, never the final ς; U+0130 becomes "i" U+0307)          -> lower_word()
 *   2. _clean_text: drop U+0000, U+FFFD and categories C* except \t \n \r;
 *      \t \n \r, ' ' and Zs become ' '                                   -> scan loop
 *   3. _tokenize_chinese_chars: CJK ideographs become words of their own -> scan loop
 *   4. NFC, then whitespace_tokenize (str.split(): after cleaning, ' ', U+2028, U+2029)
 *   5. per word: lower(); if strip_accents: NFD and drop Mn            -> word_slow()
 *      (NFD(NFC(x)) = NFD(x), so NFC is only run when accents are kept)
 *   6. _run_split_on_punc: ASCII 33-47, 58-64, 91-96, 123-126 and P*   -> word_*()
 *   7. WordpieceTokenizer: [UNK] for a piece over max_input_chars_per_word code points,
 *      else greedy longest match with "##" continuations, [UNK] when stuck -> wordpiece()
 * Words made only of ASCII take a fast path with no Unicode tables.
 */
#include "wordpiece.h"
#include "text_internal.h"
#include "am_base.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

enum { C_WORD = 0, C_PUNCT = 1, C_SPACE = 2, C_DROP = 3 };
static uint8_t ascii_class[128];
static uint8_t ascii_lower[128];
static pthread_once_t ascii_once = PTHREAD_ONCE_INIT;

static void ascii_init_once(void) {
    for (int c = 0; c < 128; c++) {
        uint8_t k = C_WORD;
        if (c == 0 || c < 0x20 || c == 0x7f) k = C_DROP;
        if (c == '\t' || c == '\n' || c == '\r' || c == ' ') k = C_SPACE;
        if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
            k = C_PUNCT;
        ascii_class[c] = k;
        ascii_lower[c] = (uint8_t)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
}

static int is_chinese_char(int32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) ||
           (cp >= 0x2B820 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static int is_other_category(utf8proc_category_t c) { /* Python: category(ch).startswith("C") */
    return c == UTF8PROC_CATEGORY_CN || c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF ||
           c == UTF8PROC_CATEGORY_CS || c == UTF8PROC_CATEGORY_CO;
}

static int is_punct_cp(int32_t cp) {
    if (cp < 128) return ascii_class[cp] == C_PUNCT;
    utf8proc_category_t c = utf8proc_category(cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

/* Python str.isspace() (what str.split() splits on) */
static int is_py_space(int32_t cp) {
    if (cp < 128) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
    return cp == 0x85 || cp == 0x2028 || cp == 0x2029 || utf8proc_category(cp) == UTF8PROC_CATEGORY_ZS;
}

/* ---- growable scratch buffers owned by the Tokenizer ---- */

typedef struct {
    int32_t *ids;
    int cap;
    int n;
    int grow; /* 1: realloc when full (internal vectors); 0: caller's buffer, count only */
} Sink;

static void sink_push(Sink *s, int32_t id) {
    if (s->n >= s->cap && s->grow) {
        int nc = s->cap ? s->cap * 2 : 64;
        s->ids = xrealloc(s->ids, (size_t)nc * sizeof *s->ids);
        s->cap = nc;
    }
    if (s->n < s->cap) s->ids[s->n] = id;
    s->n++;
}

struct Tokenizer {
    const Vocab *v;
    TokenizerOptions o;
    int lower, strip;
    int32_t unk;
    char *word; /* current word (UTF-8, as in the input) */
    size_t word_len, word_cap;
    int word_ascii;
    char *tmp; /* lower-cased word / one piece, UTF-8 */
    size_t tmp_cap;
    int32_t *u32; /* normalised code points */
    size_t u32_cap;
    Sink a, b;        /* per-row scratch for tokenizer_batch */
    int32_t *rows;    /* batch: all rows' final ids, concatenated */
    size_t rows_cap;
    int *row_meta;    /* batch: (B, 2) row length and first-segment length */
    int row_meta_cap;
};

static void *grow(void *p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return p;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    *cap = nc;
    return xrealloc(p, nc * elem);
}

void tokenizer_options_default(TokenizerOptions *o) {
    o->do_lower_case = 1;
    o->strip_accents = -1;
    o->tokenize_chinese_chars = 1;
    o->max_input_chars_per_word = 100;
}

int tokenizer_new(const Vocab *v, const TokenizerOptions *o, Tokenizer **out) {
    if (!out) return am_error(AM_EINVAL, "tokenizer_new: out is NULL");
    *out = NULL;
    if (!v) return am_error(AM_EINVAL, "tokenizer_new: vocab is NULL");
    TokenizerOptions d;
    tokenizer_options_default(&d);
    if (!o) o = &d;
    if (o->max_input_chars_per_word <= 0)
        return am_error(AM_EINVAL, "tokenizer_new: max_input_chars_per_word must be > 0 (got %d)",
                        o->max_input_chars_per_word);
    if (o->strip_accents < -1 || o->strip_accents > 1)
        return am_error(AM_EINVAL, "tokenizer_new: strip_accents must be -1, 0 or 1 (got %d)", o->strip_accents);
    pthread_once(&ascii_once, ascii_init_once);
    Tokenizer *t = xcalloc(1, sizeof *t);
    t->v = v;
    t->o = *o;
    t->lower = o->do_lower_case != 0;
    t->strip = o->strip_accents == 1 || (o->strip_accents == -1 && t->lower);
    t->unk = vocab_specials(v).unk;
    t->a.grow = t->b.grow = 1;
    *out = t;
    return AM_OK;
}

void tokenizer_delete(Tokenizer *t) {
    if (!t) return;
    free(t->word);
    free(t->tmp);
    free(t->u32);
    free(t->a.ids);
    free(t->b.ids);
    free(t->rows);
    free(t->row_meta);
    free(t);
}

/* ---- WordPiece on one piece (UTF-8, ncp code points) ---- */

static void wordpiece(Tokenizer *t, const char *p, size_t n, size_t ncp, Sink *out) {
    if (ncp > (size_t)t->o.max_input_chars_per_word) {
        sink_push(out, t->unk);
        return;
    }
    const Vocab *v = t->v;
    int mark = out->n;
    size_t start = 0;
    while (start < n) {
        int cont = start > 0;
        size_t end = n;
        size_t maxl = vocab_max_len(v, cont);
        if (end - start > maxl) {
            end = start + maxl;
            while (end > start && ((unsigned char)p[end] & 0xC0) == 0x80) end--;
        }
        int id = -1;
        while (end > start) {
            id = vocab_find(v, p + start, end - start, cont);
            if (id >= 0) break;
            end--;
            while (end > start && ((unsigned char)p[end] & 0xC0) == 0x80) end--;
        }
        if (id < 0) {
            out->n = mark; /* the whole piece becomes [UNK] */
            sink_push(out, t->unk);
            return;
        }
        sink_push(out, id);
        start = end;
    }
}

/* ---- one whitespace-delimited word ---- */

static void word_ascii(Tokenizer *t, char *w, size_t n, Sink *out) {
    if (t->lower)
        for (size_t i = 0; i < n; i++) w[i] = (char)ascii_lower[(unsigned char)w[i]];
    size_t s = 0;
    for (size_t i = 0; i < n; i++) {
        if (ascii_class[(unsigned char)w[i]] != C_PUNCT) continue;
        if (i > s) wordpiece(t, w + s, i - s, i - s, out);
        wordpiece(t, w + i, 1, 1, out);
        s = i + 1;
    }
    if (n > s) wordpiece(t, w + s, n - s, n - s, out);
}

static void word_slow(Tokenizer *t, const char *w, size_t n, Sink *out) {
    /* 1. per-character lower-casing (Python str.lower(): utf8proc's simple mapping plus the
     *    one unconditional multi-character rule, U+0130 -> "i" U+0307) */
    const char *src = w;
    size_t srclen = n;
    if (t->lower) {
        t->tmp = grow(t->tmp, &t->tmp_cap, 2 * n + 8, 1);
        size_t m = 0;
        for (size_t i = 0; i < n;) {
            int32_t cp;
            int k = utf8_next((const unsigned char *)w, n, i, &cp);
            i += (size_t)k;
            if (cp == 0x130) {
                t->tmp[m++] = 'i';
                m += (size_t)utf8_put(0x307, t->tmp + m);
            } else {
                m += (size_t)utf8_put(cp < 128 ? ascii_lower[cp] : utf8proc_tolower(cp), t->tmp + m);
            }
        }
        src = t->tmp;
        srclen = m;
    }
    /* 2. NFD (strip accents) or NFC (keep them) */
    utf8proc_option_t opt = UTF8PROC_STABLE | (t->strip ? UTF8PROC_DECOMPOSE : UTF8PROC_COMPOSE);
    utf8proc_ssize_t nc;
    for (;;) {
        nc = utf8proc_decompose((const utf8proc_uint8_t *)src, (utf8proc_ssize_t)srclen, t->u32,
                                (utf8proc_ssize_t)t->u32_cap, opt);
        if (nc < 0) return; /* cannot happen: input is valid UTF-8 */
        if ((size_t)nc <= t->u32_cap) break;
        t->u32 = grow(t->u32, &t->u32_cap, (size_t)nc, sizeof *t->u32);
    }
    if (!t->strip) {
        nc = utf8proc_normalize_utf32(t->u32, nc, opt);
        if (nc < 0) return;
    }
    /* 3. drop Mn, split on punctuation (and whitespace), WordPiece each piece. The piece is
     *    re-encoded into tmp, which is free again (src is no longer needed). */
    t->tmp = grow(t->tmp, &t->tmp_cap, 4 * (size_t)nc + 4, 1);
    size_t plen = 0, pcp = 0;
    for (utf8proc_ssize_t i = 0; i < nc; i++) {
        int32_t cp = t->u32[i];
        if (t->strip && utf8proc_category(cp) == UTF8PROC_CATEGORY_MN) continue;
        int punct = is_punct_cp(cp);
        if (punct || is_py_space(cp)) {
            if (plen) wordpiece(t, t->tmp, plen, pcp, out);
            plen = pcp = 0;
            if (punct) {
                char one[4];
                int k = utf8_put(cp, one);
                wordpiece(t, one, (size_t)k, 1, out);
            }
            continue;
        }
        plen += (size_t)utf8_put(cp, t->tmp + plen);
        pcp++;
    }
    if (plen) wordpiece(t, t->tmp, plen, pcp, out);
}

static void flush_word(Tokenizer *t, Sink *out) {
    if (t->word_len == 0) return;
    if (t->word_ascii) word_ascii(t, t->word, t->word_len, out);
    else word_slow(t, t->word, t->word_len, out);
    t->word_len = 0;
    t->word_ascii = 1;
}

static void word_append(Tokenizer *t, const char *s, size_t k, int ascii) {
    if (t->word_len + k > t->word_cap) t->word = grow(t->word, &t->word_cap, t->word_len + k, 1);
    memcpy(t->word + t->word_len, s, k);
    t->word_len += k;
    if (!ascii) t->word_ascii = 0;
}

static void encode_text(Tokenizer *t, const char *text, size_t len, Sink *out) {
    const unsigned char *s = (const unsigned char *)text;
    t->word_len = 0;
    t->word_ascii = 1;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            /* ASCII run: copy word characters in bulk */
            size_t j = i;
            while (j < len && s[j] < 0x80 && ascii_class[s[j]] <= C_PUNCT) j++;
            if (j > i) {
                word_append(t, text + i, j - i, 1);
                i = j;
                continue;
            }
            if (ascii_class[c] == C_SPACE) flush_word(t, out);
            i++; /* C_DROP: removed without breaking the word */
            continue;
        }
        int32_t cp;
        int k = utf8_next(s, len, i, &cp);
        if (cp < 0 || cp == 0xFFFD) { /* invalid bytes decode to U+FFFD, which cleaning drops */
            i += (size_t)k;
            continue;
        }
        utf8proc_category_t cat = utf8proc_category(cp);
        if (is_other_category(cat)) {
            /* control / format / unassigned / private use: dropped */
        } else if (cat == UTF8PROC_CATEGORY_ZS || cp == 0x2028 || cp == 0x2029) {
            flush_word(t, out);
        } else if (t->o.tokenize_chinese_chars && is_chinese_char(cp)) {
            flush_word(t, out);
            word_append(t, text + i, (size_t)k, 0);
            flush_word(t, out);
        } else {
            word_append(t, text + i, (size_t)k, 0);
        }
        i += (size_t)k;
    }
    flush_word(t, out);
}

int tokenizer_encode(Tokenizer *t, const char *text, size_t len, int32_t *ids, int cap, int *n) {
    if (n) *n = 0;
    if (!t) return am_error(AM_EINVAL, "tokenizer_encode: tokenizer is NULL");
    if (!text && len > 0) return am_error(AM_EINVAL, "tokenizer_encode: text is NULL");
    if (cap < 0 || (!ids && cap > 0)) return am_error(AM_EINVAL, "tokenizer_encode: bad ids buffer (cap %d)", cap);
    Sink out = {ids, cap, 0, 0};
    encode_text(t, text, len, &out);
    if (n) *n = out.n;
    return AM_OK;
}

/* ---- batches ---- */

/* transformers' truncate_sequences(strategy='longest_first'): remove one token at a time
 * from the longer sequence (from the second on a tie), from the right. */
static void truncate_pair(int *na, int *nb, int remove) {
    int diff = *na > *nb ? *na - *nb : *nb - *na;
    int first = diff < remove ? diff : remove;
    int second = remove - first;
    int ra, rb;
    if (*na > *nb) {
        ra = first + second / 2;
        rb = second - second / 2;
    } else {
        ra = second / 2;
        rb = first + second - second / 2;
    }
    *na = ra < *na ? *na - ra : 0;
    *nb = rb < *nb ? *nb - rb : 0;
}

int tokenizer_batch(Tokenizer *t, const char *const *texts_a, const char *const *texts_b, int B, int max_len,
                    TokenBatch *out) {
    if (!t || !out) return am_error(AM_EINVAL, "tokenizer_batch: tokenizer or batch is NULL");
    if (B < 0 || (B > 0 && !texts_a)) return am_error(AM_EINVAL, "tokenizer_batch: bad batch (B = %d)", B);
    int pair = texts_b != NULL;
    int specials = pair ? 3 : 2;
    if (max_len < specials)
        return am_error(AM_EINVAL, "tokenizer_batch: max_len %d is too small (need >= %d for [CLS]%s[SEP])",
                        max_len, specials, pair ? " a [SEP] b " : " text ");
    for (int r = 0; r < B; r++)
        if (!texts_a[r] || (pair && !texts_b[r]))
            return am_error(AM_EINVAL, "tokenizer_batch: text %d of the batch is NULL", r);
    VocabSpecials sp = vocab_specials(t->v);
    if (B > t->row_meta_cap) {
        t->row_meta = xrealloc(t->row_meta, (size_t)B * 2 * sizeof *t->row_meta);
        t->row_meta_cap = B;
    }
    size_t used = 0;
    int T = 0;
    for (int r = 0; r < B; r++) {
        t->a.n = 0;
        encode_text(t, texts_a[r], strlen(texts_a[r]), &t->a);
        int na = t->a.n, nb = 0;
        if (pair) {
            t->b.n = 0;
            encode_text(t, texts_b[r], strlen(texts_b[r]), &t->b);
            nb = t->b.n;
        }
        int total = na + nb + specials;
        if (total > max_len) {
            if (pair) truncate_pair(&na, &nb, total - max_len);
            else na = max_len - specials;
        }
        int rl = na + nb + specials;
        t->rows = grow(t->rows, &t->rows_cap, used + (size_t)rl, sizeof *t->rows);
        int32_t *row = t->rows + used;
        int k = 0;
        row[k++] = sp.cls;
        memcpy(row + k, t->a.ids, (size_t)na * sizeof *row);
        k += na;
        row[k++] = sp.sep;
        if (pair) {
            memcpy(row + k, t->b.ids, (size_t)nb * sizeof *row);
            k += nb;
            row[k++] = sp.sep;
        }
        t->row_meta[2 * r] = rl;
        t->row_meta[2 * r + 1] = na + 2;
        used += (size_t)rl;
        if (rl > T) T = rl;
    }
    if (B > out->cap_B || T > out->cap_T) {
        int nB = B > out->cap_B ? B : out->cap_B;
        int nT = T > out->cap_T ? T : out->cap_T;
        size_t cells = (size_t)nB * (size_t)nT;
        out->ids = xrealloc(out->ids, cells * sizeof *out->ids);
        out->type_ids = xrealloc(out->type_ids, cells * sizeof *out->type_ids);
        out->mask = xrealloc(out->mask, cells * sizeof *out->mask);
        out->len = xrealloc(out->len, (size_t)nB * sizeof *out->len);
        out->cap_B = nB;
        out->cap_T = nT;
    }
    out->B = B;
    out->T = T;
    const int32_t *src = t->rows;
    for (int r = 0; r < B; r++) {
        int rl = t->row_meta[2 * r], first = t->row_meta[2 * r + 1];
        int32_t *ids = out->ids + (size_t)r * T;
        int32_t *ty = out->type_ids + (size_t)r * T;
        float *m = out->mask + (size_t)r * T;
        for (int j = 0; j < T; j++) {
            int real = j < rl;
            ids[j] = real ? src[j] : sp.pad;
            ty[j] = (real && j >= first) ? 1 : 0;
            m[j] = real ? 1.0f : 0.0f;
        }
        out->len[r] = rl;
        src += rl;
    }
    return AM_OK;
}

void token_batch_free(TokenBatch *b) {
    if (!b) return;
    free(b->ids);
    free(b->type_ids);
    free(b->mask);
    free(b->len);
    memset(b, 0, sizeof *b);
}

/* ---- UTF-8 validation ---- */

int am_utf8_validate(const char *s, size_t len, size_t *bad_off) {
    if (bad_off) *bad_off = 0;
    if (!s && len > 0) return am_error(AM_EINVAL, "am_utf8_validate: NULL string");
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int32_t cp;
        int k = utf8_next(u, len, i, &cp);
        if (cp < 0) {
            if (bad_off) *bad_off = i;
            return am_error(AM_EUTF8, "invalid UTF-8 at byte offset %zu", i);
        }
        i += (size_t)k;
    }
    return AM_OK;
}
