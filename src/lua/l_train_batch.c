/* l_train_batch.c - batch tables of tr:step and the statistics methods ({queries=, positives=,
 * negatives=} | {sentence1=, sentence2=, scores=} | {texts=}) tokenized into a TrainBatch. */
#define _GNU_SOURCE
#include "am_lua.h"
#include "am_base.h"
#include "trainer.h"
#include "l_train.h"

#include <stdlib.h>
#include <string.h>

/* collect a list of strings from field `key` of table t into an autofree array; returns count, -1 if absent */
typedef struct { const char **v; uint8_t *real; int n, cap, pad; } StrList; /* pad = entries that are padding */
static void strlist_free(void *p) {
    StrList *s = p;
    if (s) free(s->v), free(s->real);
    free(s);
}
static StrList *newlist(lua_State *L) {
    AmAutoFree *a = am_lua_newautofree(L, strlist_free);
    StrList *s = a->p = xcalloc(1, sizeof *s);
    return s;
}
static void strlist_push(StrList *s, const char *x) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 32;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
        s->real = xrealloc(s->real, s->cap);
    }
    s->real[s->n] = x != NULL;
    s->pad += x == NULL;
    s->v[s->n++] = x ? x : ""; /* padding encodes as an empty text; the loss masks it */
}

/* field key of table t: list of strings, or list of lists of strings (per = entries per row, must
 * be equal; `false` in a row's list is padding: a row with fewer positives / negatives than the
 * others). Pushes nothing net besides the autofree box (kept on the stack). per=-1 if absent. */
static StrList *get_texts(lua_State *L, int t, const char *key, int *per) {
    StrList *s = newlist(L);                       /* [.., box] */
    lua_getfield(L, t, key);                       /* [.., box, list] */
    *per = -1;
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return s;
    }
    if (!lua_istable(L, -1)) luaL_error(L, "batch field '%s' must be a list of strings", key);
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, -1, i);                        /* [.., box, list, x] */
        if (lua_type(L, -1) == LUA_TSTRING) {
            if (*per != -1 && *per != 1) luaL_error(L, "batch field '%s': row %d has 1 entry, others %d", key, (int)i, *per);
            *per = 1;
            strlist_push(s, lua_tostring(L, -1));  /* kept alive by the list */
        } else if (lua_istable(L, -1)) {
            int m = (int)luaL_len(L, -1);
            if (*per != -1 && *per != m) luaL_error(L, "batch field '%s': row %d has %d entries, others %d", key, (int)i, m, *per);
            *per = m;
            for (int j = 1; j <= m; j++) {
                lua_geti(L, -1, j);
                int padding = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
                if (!padding && lua_type(L, -1) != LUA_TSTRING)
                    luaL_error(L, "batch field '%s': row %d entry %d is not a string (or false: padding)", key, (int)i, j);
                strlist_push(s, padding ? NULL : lua_tostring(L, -1));
                lua_pop(L, 1);
            }
        } else luaL_error(L, "batch field '%s': row %d is not a string", key, (int)i);
        lua_pop(L, 1);
    }
    if (n == 0) *per = 0;
    lua_pop(L, 1);                                 /* the list stays referenced by the batch table */
    return s;
}

static int tokenize(TrainerBox *b, int which, StrList *s, TrainTokens *out) {
    memset(out, 0, sizeof *out);
    if (s->n == 0) return AM_OK;
    for (int i = 0; i < s->n; i++) { /* as m:encode: bad bytes are an error, not silent [UNK]s */
        size_t bad;
        if (am_utf8_validate(s->v[i], strlen(s->v[i]), &bad))
            return am_error(AM_EUTF8, "batch text %d: invalid UTF-8 at byte %zu", i + 1, bad);
    }
    int rc = tokenizer_batch(b->em->tok, s->v, NULL, s->n, b->max_len, &b->tb[which]);
    if (rc) return rc;
    TokenBatch *tb = &b->tb[which];
    out->ids = tb->ids;
    out->type_ids = tb->type_ids;
    out->mask = tb->mask;
    out->B = tb->B;
    out->T = tb->T;
    return AM_OK;
}

int am_lua_train_batch(lua_State *L, TrainerBox *b, TrainBatch *out, LossSpec **out_spec, int no_loss) {
    luaL_checktype(L, 2, LUA_TTABLE);
    LossSpec *spec = NULL;
    if (!no_loss) {
        luaL_checktype(L, 3, LUA_TTABLE);
        SpecPool *pool = lua_newuserdatauv(L, sizeof *pool, 0); /* scratch, GC'd */
        pool->n = 0;
        spec = am_lua_loss_spec(L, 3, 3, pool, b->em, 0);
    }
    TrainBatch tb;
    memset(&tb, 0, sizeof tb);
    int per_a, per_p, per_n, rc;
    StrList *a = NULL, *p = NULL, *ng = NULL;
    const char *shape;
    lua_getfield(L, 2, "queries");
    int has_q = !lua_isnil(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "sentence1");
    int has_s = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (has_q) {
        shape = "pairs";
        a = get_texts(L, 2, "queries", &per_a);
        p = get_texts(L, 2, "positives", &per_p);
        ng = get_texts(L, 2, "negatives", &per_n);
        if (per_a != 1) return luaL_argerror(L, 2, "batch 'queries' must be a non-empty list of strings");
        if (per_p < 1 || p->n != a->n * per_p)
            return luaL_argerror(L, 2, "batch 'positives' must have one entry (or list) per query");
        if (per_n >= 0 && ng->n != a->n * per_n)
            return luaL_argerror(L, 2, "batch 'negatives' must have one entry (or list) per query");
        /* hard_negatives = false of the loss or of the loss a wrapper applies per view */
        int hn = 1;
        lua_pushvalue(L, 3);
        while (lua_istable(L, -1)) {
            lua_getfield(L, -1, "hard_negatives");
            if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) hn = 0;
            lua_pop(L, 1);
            lua_getfield(L, -1, "inner");
            lua_remove(L, -2);
        }
        lua_pop(L, 1);
        if (!hn) ng->n = ng->pad = 0;
        if (p->pad || ng->pad) { /* the padding mask over rows [n, R): positives, then negatives */
            AmAutoFree *cf = am_lua_newautofree(L, free);
            uint8_t *cand = cf->p = xmalloc((size_t)(p->n + ng->n) + 1);
            memcpy(cand, p->real, (size_t)p->n);
            if (ng->n) memcpy(cand + p->n, ng->real, (size_t)ng->n);
            tb.cand = cand;
            for (int i = 0; i < a->n; i++) {
                int any = 0;
                for (int j = 0; j < per_p; j++) any |= p->real[i * per_p + j];
                if (!any) return luaL_argerror(L, 2, "batch 'positives': every query needs a positive (false is padding)");
            }
        }
    } else if (has_s) {
        shape = "graded";
        a = get_texts(L, 2, "sentence1", &per_a);
        p = get_texts(L, 2, "sentence2", &per_p);
        ng = newlist(L);
        if (per_a != 1 || per_p != 1 || p->n != a->n)
            return luaL_argerror(L, 2, "batch 'sentence1' / 'sentence2' must be lists of strings of equal length");
        lua_getfield(L, 2, "scores");
        if (!lua_istable(L, -1) || luaL_len(L, -1) != a->n)
            return luaL_argerror(L, 2, "batch 'scores' must be a list of numbers, one per pair");
        if (b->cap_scores < a->n) {
            b->scores = xrealloc(b->scores, (size_t)a->n * sizeof(float));
            b->cap_scores = a->n;
        }
        for (int i = 0; i < a->n; i++) {
            lua_geti(L, -1, i + 1);
            if (!lua_isnumber(L, -1)) return luaL_argerror(L, 2, "batch 'scores' must be numbers");
            b->scores[i] = (float)lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        tb.scores = b->scores;
    } else {
        shape = "texts";
        a = get_texts(L, 2, "texts", &per_a);
        p = newlist(L);
        ng = newlist(L);
        if (per_a != 1) return luaL_argerror(L, 2, "batch needs 'queries', 'sentence1' or 'texts' (non-empty list of strings)");
    }
    (void)shape;
    if ((rc = tokenize(b, 0, a, &tb.a)) || (rc = tokenize(b, 1, p, &tb.pos)) || (rc = tokenize(b, 2, ng, &tb.neg)))
        return rc;
    *out = tb;
    *out_spec = spec;
    return AM_OK;
}
