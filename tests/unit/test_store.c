/* test_store.c - the LMDB store: model/name/generic round trips, map growth, crash safety
 * (a writer SIGKILLed mid-transaction), corrupt values, a full disk, format versions.
 * Every test works in its own mkdtemp directory under /tmp. */
#define _GNU_SOURCE
#include "am_base.h"
#include "harness.h"
#include "model.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

static char *tmpdir(void) {
    char t[] = "/tmp/am_store_test_XXXXXX";
    AM_ASSERT(mkdtemp(t) != NULL);
    return xstrdup(t);
}

static void rmrf(char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char *p = xasprintf("%s/%s", dir, e->d_name);
            unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

static Model *make_model(int hidden, int layers, int vocab, uint64_t seed) {
    EncoderConfig cfg;
    encoder_config_default(&cfg);
    cfg.hidden_size = hidden;
    cfg.num_layers = layers;
    cfg.num_heads = 2;
    cfg.intermediate_size = 4 * hidden;
    cfg.max_position = 64;
    cfg.vocab_size = vocab;
    Model *m;
    AM_ASSERT(model_new(&cfg, &m) == AM_OK);
    model_init_bert(m, seed);
    return m;
}

static char *make_vocab(int n, size_t *len) {
    size_t cap = (size_t)n * 16 + 64, o = 0;
    char *v = xmalloc(cap);
    const char *special[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (int i = 0; i < n; i++) {
        if (i < 5) o += (size_t)snprintf(v + o, cap - o, "%s\n", special[i]);
        else o += (size_t)snprintf(v + o, cap - o, "tok%d\n", i);
    }
    *len = o;
    return v;
}

static int same_model(const Model *a, const Model *b) {
    return memcmp(&a->cfg, &b->cfg, sizeof a->cfg) == 0 && a->tab.n == b->tab.n && a->tab.total == b->tab.total &&
           memcmp(a->params, b->params, a->tab.total * sizeof(float)) == 0;
}

static size_t db_entries(Store *s, AmDb db) {
    StoreStat st;
    if (store_stat(s, &st) != AM_OK) return (size_t)-1;
    return st.entries[db];
}

static StoreOptions tiny_map(void) {
    StoreOptions o = {0};
    o.mapsize = 256 << 10;
    return o;
}

/* ---------------------------------------------------------------- models */

static int count_cb(void *ud, const char *id, const char *meta) {
    (void)id;
    (void)meta;
    ++*(int *)ud;
    return 0;
}

TEST(model_roundtrip) {
    char *dir = tmpdir();
    Store *s;
    CHECK_OK(store_open(dir, 0, &s));
    Model *m = make_model(32, 2, 50, 1);
    size_t vlen;
    char *vocab = make_vocab(50, &vlen);
    char id[33];
    CHECK_OK(store_model_put(s, m, "{\"name\":\"tiny-a\",\"kind\":\"pretrained\",\"pooling\":\"mean\","
                                   "\"parents\":[],\"do_lower_case\":true}", vocab, vlen, id));
    CHECK(strlen(id) == 32);
    char expect[33];
    store_model_id(m, vocab, vlen, expect);
    CHECK(strcmp(id, expect) == 0);

    Model *g = NULL;
    char *meta = NULL, *gv = NULL;
    size_t gvlen = 0;
    CHECK_OK(store_model_get(s, id, &g, &meta, &gv, &gvlen));
    CHECK(g && same_model(g, m));
    CHECK(gvlen == vlen && gv && memcmp(gv, vocab, vlen) == 0 && gv[vlen] == 0);
    cJSON *j = cJSON_Parse(meta);
    CHECK(cJSON_IsObject(j));
    CHECK(cJSON_GetObjectItem(j, "format")->valueint == 1);
    CHECK(!strcmp(cJSON_GetObjectItem(j, "id")->valuestring, id));
    CHECK(!strcmp(cJSON_GetObjectItem(j, "name")->valuestring, "tiny-a"));
    CHECK(!strcmp(cJSON_GetObjectItem(j, "kind")->valuestring, "pretrained"));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "do_lower_case")));
    CHECK(cJSON_IsString(cJSON_GetObjectItem(j, "created")));
    CHECK(cJSON_IsString(cJSON_GetObjectItem(j, "vocab")));
    const cJSON *cfg = cJSON_GetObjectItem(j, "config");
    CHECK(cJSON_GetObjectItem(cfg, "hidden_size")->valueint == 32);
    CHECK(cJSON_GetObjectItem(cfg, "num_hidden_layers")->valueint == 2);
    CHECK(cJSON_GetObjectItem(cfg, "vocab_size")->valueint == 50);
    CHECK(cJSON_GetObjectItem(cfg, "layer_norm_eps")->valuedouble == 1e-12);
    CHECK(cJSON_GetObjectItem(cfg, "hidden_dropout_prob")->valuedouble == 0.1);
    CHECK(strstr(meta, "\"layer_norm_eps\":1e-12") != NULL);
    cJSON_Delete(j);
    free(meta);
    free(gv);
    model_delete(g);

    char *meta2 = NULL;
    CHECK_OK(store_model_meta(s, id, &meta2));
    CHECK(meta2 && strstr(meta2, "\"pooling\":\"mean\""));
    free(meta2);
    int n = 0;
    CHECK_OK(store_model_list(s, count_cb, &n));
    CHECK_EQ_INT(n, 1);
    char rid[33];
    CHECK_OK(store_resolve(s, "tiny-a", rid));
    CHECK(!strcmp(rid, id));
    CHECK_EQ_INT(db_entries(s, AM_DB_TENSORS), m->tab.n);

    /* meta update: add, remove, reserved keys refused */
    CHECK_OK(store_model_meta_update(s, id, "{\"description\":\"hello\",\"pooling\":null}"));
    CHECK_OK(store_model_meta(s, id, &meta2));
    CHECK(strstr(meta2, "\"description\":\"hello\"") && !strstr(meta2, "pooling"));
    free(meta2);
    CHECK_EQ_INT(store_model_meta_update(s, id, "{\"config\":{}}"), AM_EINVAL);
    store_close(s);

    /* reopen read-only: same model; writes refused */
    CHECK_OK(store_open(dir, AM_STORE_RDONLY, &s));
    CHECK_OK(store_model_get(s, id, &g, NULL, NULL, NULL));
    CHECK(g && same_model(g, m));
    model_delete(g);
    CHECK_EQ_INT(store_put(s, "runs", "k", 1, "v", 1), AM_EINVAL);
    CHECK_EQ_INT(store_model_put(s, m, NULL, NULL, 0, rid), AM_EINVAL);
    store_close(s);

    /* bad arguments */
    CHECK_OK(store_open(dir, 0, &s));
    CHECK_EQ_INT(store_model_put(s, m, "[1,2]", NULL, 0, rid), AM_EINVAL);
    CHECK_EQ_INT(store_model_put(s, m, "{\"name\":\"\"}", NULL, 0, rid), AM_EINVAL);
    CHECK_EQ_INT(store_model_get(s, "not-an-id", &g, NULL, NULL, NULL), AM_EINVAL);
    CHECK_EQ_INT(store_model_get(s, "0123456789abcdef0123456789abcdef", &g, NULL, NULL, NULL), AM_ENOTFOUND);
    CHECK(g == NULL);
    store_close(s);
    model_delete(m);
    free(vocab);
    rmrf(dir);
}

/* An MLM head (cls.predictions.*) survives put/get: config key has_mlm_head, absent = no head
 * (what stores written before the key hold). */
TEST(model_mlm_head_roundtrip) {
    char *dir = tmpdir();
    Store *s;
    CHECK_OK(store_open(dir, 0, &s));
    Model *plain = make_model(32, 1, 50, 3);
    EncoderConfig cfg = plain->cfg;
    cfg.has_mlm_head = 1;
    Model *m = NULL;
    CHECK_OK(model_new(&cfg, &m));
    model_init_bert(m, 4);
    size_t vlen;
    char *vocab = make_vocab(50, &vlen);
    char id[33], pid[33];
    CHECK_OK(store_model_put(s, m, "{\"name\":\"mlm\"}", vocab, vlen, id));
    CHECK_OK(store_model_put(s, plain, "{\"name\":\"plain\"}", vocab, vlen, pid));
    CHECK(strcmp(id, pid) != 0);
    Model *g = NULL;
    char *meta = NULL;
    CHECK_OK(store_model_get(s, id, &g, &meta, NULL, NULL));
    CHECK(g && g->cfg.has_mlm_head == 1 && same_model(g, m));
    CHECK(g && param_table_find(&g->tab, "cls.predictions.bias") != NULL);
    cJSON *j = cJSON_Parse(meta);
    const cJSON *arch = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "config"), "architectures"), 0);
    CHECK(cJSON_IsString(arch) && strcmp(arch->valuestring, "BertForMaskedLM") == 0);
    CHECK(cJSON_GetObjectItem(j, "n_tensors")->valueint == m->tab.n);
    cJSON_Delete(j);
    free(meta);
    model_delete(g);
    g = NULL;
    meta = NULL;
    CHECK_OK(store_model_get(s, pid, &g, &meta, NULL, NULL));
    CHECK(g && g->cfg.has_mlm_head == 0 && same_model(g, plain));
    j = cJSON_Parse(meta);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "config"), "has_mlm_head") == NULL);
    cJSON_Delete(j);
    free(meta);
    model_delete(g);
    /* the key is reserved (part of the config), not patchable */
    CHECK_EQ_INT(store_model_meta_update(s, pid, "{\"config\":{\"has_mlm_head\":true}}"), AM_EINVAL);
    am_clearerror();
    model_delete(m);
    model_delete(plain);
    free(vocab);
    store_close(s);
    rmrf(dir);
}

TEST(model_dedup_and_delete) {
    char *dir = tmpdir();
    Store *s;
    CHECK_OK(store_open(dir, 0, &s));
    Model *m = make_model(32, 2, 50, 7);
    size_t vlen;
    char *vocab = make_vocab(50, &vlen);
    char id1[33], id2[33], id3[33], id4[33];
    CHECK_OK(store_model_put(s, m, "{\"name\":\"a\",\"kind\":\"pretrained\"}", vocab, vlen, id1));
    /* identical model: same id, stored once, first meta kept, the new name still set */
    CHECK_OK(store_model_put(s, m, "{\"name\":\"b\",\"kind\":\"merged\"}", vocab, vlen, id2));
    CHECK(!strcmp(id1, id2));
    CHECK_EQ_INT(db_entries(s, AM_DB_MODELS), 1);
    CHECK_EQ_INT(db_entries(s, AM_DB_TENSORS), m->tab.n);
    char *meta;
    CHECK_OK(store_model_meta(s, id1, &meta));
    CHECK(strstr(meta, "\"kind\":\"pretrained\"") != NULL);
    free(meta);
    char r[33];
    CHECK_OK(store_resolve(s, "b", r));
    CHECK(!strcmp(r, id1));
    /* one float changed: a different id; the vocab is shared */
    m->params[m->tab.total - 1] += 1.0f;
    CHECK_OK(store_model_put(s, m, "{\"name\":\"c\"}", vocab, vlen, id3));
    CHECK(strcmp(id3, id1) != 0);
    CHECK_EQ_INT(db_entries(s, AM_DB_MODELS), 2);
    CHECK_EQ_INT(db_entries(s, AM_DB_VOCAB), 1);
    /* same tensors, different vocab: different id; no vocab at all: different again */
    vocab[vlen - 2] = 'X';
    CHECK_OK(store_model_put(s, m, NULL, vocab, vlen, id4));
    CHECK(strcmp(id4, id3) != 0);
    CHECK_EQ_INT(db_entries(s, AM_DB_VOCAB), 2);
    char id5[33];
    CHECK_OK(store_model_put(s, m, NULL, NULL, 0, id5));
    CHECK(strcmp(id5, id4) != 0 && strcmp(id5, id3) != 0);
    Model *g;
    char *gv = (char *)1;
    size_t gl = 99;
    CHECK_OK(store_model_get(s, id5, &g, NULL, &gv, &gl));
    CHECK(gv == NULL && gl == 0 && same_model(g, m));
    model_delete(g);

    /* a model without the pooler round-trips as such */
    EncoderConfig nc = m->cfg;
    nc.has_pooler = 0;
    Model *np;
    CHECK_OK(model_new(&nc, &np));
    model_init_bert(np, 8);
    char id6[33];
    CHECK_OK(store_model_put(s, np, NULL, NULL, 0, id6));
    CHECK_OK(store_model_get(s, id6, &g, NULL, NULL, NULL));
    CHECK(g->cfg.has_pooler == 0 && same_model(g, np));
    model_delete(g);
    CHECK_OK(store_model_delete(s, id6));
    model_delete(np);

    /* delete: tensors and names go, the vocab goes only when no other model uses it */
    CHECK_OK(store_model_delete(s, id4));
    CHECK_EQ_INT(db_entries(s, AM_DB_VOCAB), 1);
    CHECK_OK(store_model_delete(s, id1));   /* names a and b pointed here */
    CHECK_EQ_INT(store_resolve(s, "a", r), AM_ENOTFOUND);
    CHECK_EQ_INT(store_resolve(s, "b", r), AM_ENOTFOUND);
    CHECK_OK(store_resolve(s, "c", r));
    CHECK_EQ_INT(db_entries(s, AM_DB_VOCAB), 1);   /* still used by id3 */
    CHECK_EQ_INT(db_entries(s, AM_DB_MODELS), 2);
    CHECK_EQ_INT(db_entries(s, AM_DB_TENSORS), 2 * m->tab.n);
    CHECK_OK(store_model_delete(s, id3));
    CHECK_OK(store_model_delete(s, id5));
    CHECK_EQ_INT(db_entries(s, AM_DB_VOCAB), 0);
    CHECK_EQ_INT(db_entries(s, AM_DB_TENSORS), 0);
    CHECK_EQ_INT(db_entries(s, AM_DB_NAMES), 0);
    CHECK_EQ_INT(store_model_delete(s, id3), AM_ENOTFOUND);
    store_close(s);
    model_delete(m);
    free(vocab);
    rmrf(dir);
}

/* ---------------------------------------------------------------- names */

TEST(names_resolve) {
    char *dir = tmpdir();
    Store *s;
    CHECK_OK(store_open(dir, 0, &s));
    Model *m = make_model(32, 1, 50, 3);
    char id[33], r[33];
    CHECK_OK(store_model_put(s, m, NULL, NULL, 0, id));
    CHECK_OK(store_name_set(s, "bert-tiny", id));
    CHECK_OK(store_resolve(s, "bert-tiny", r));
    CHECK(!strcmp(r, id));
    CHECK_OK(store_resolve(s, id, r));               /* full id */
    CHECK(!strcmp(r, id));
    char pre[8];
    memcpy(pre, id, 6);
    pre[6] = 0;
    CHECK_OK(store_resolve(s, pre, r));              /* unique prefix */
    CHECK(!strcmp(r, id));
    for (int i = 0; i < 6; i++) pre[i] = (char)toupper((unsigned char)pre[i]);
    CHECK_OK(store_resolve(s, pre, r));              /* case-insensitive */
    CHECK(!strcmp(r, id));
    memcpy(pre, id, 3);
    pre[3] = 0;
    CHECK_EQ_INT(store_resolve(s, pre, r), AM_ENOTFOUND); /* too short for a prefix */
    CHECK_EQ_INT(store_resolve(s, "nope", r), AM_ENOTFOUND);
    CHECK(!strcmp(am_lasterror(), "unknown model 'nope' (see amalgam ls models)"));

    /* ambiguity: two fake model records sharing a prefix */
    CHECK_OK(store_put(s, "models", "abcd0000000000000000000000000000", 32, "{}", 2));
    CHECK_OK(store_put(s, "models", "abcd1111111111111111111111111111", 32, "{}", 2));
    CHECK_EQ_INT(store_resolve(s, "abcd", r), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "ambiguous") && strstr(am_lasterror(), "abcd0000000000000000000000000000") &&
          strstr(am_lasterror(), "abcd1111111111111111111111111111"));
    CHECK_OK(store_resolve(s, "abcd1", r));
    CHECK(!strcmp(r, "abcd1111111111111111111111111111"));

    /* exact name beats a prefix; names move; deletion */
    CHECK_OK(store_name_set(s, "abcd", id));
    CHECK_OK(store_resolve(s, "abcd", r));
    CHECK(!strcmp(r, id));
    CHECK_OK(store_name_set(s, "bert-tiny", "abcd0000000000000000000000000000"));
    CHECK_OK(store_resolve(s, "bert-tiny", r));
    CHECK(!strcmp(r, "abcd0000000000000000000000000000"));
    CHECK_OK(store_name_del(s, "bert-tiny"));
    CHECK_EQ_INT(store_name_del(s, "bert-tiny"), AM_ENOTFOUND);
    CHECK_EQ_INT(store_resolve(s, "bert-tiny", r), AM_ENOTFOUND);
    CHECK_EQ_INT(store_name_set(s, "x", "ffff0000000000000000000000000000"), AM_ENOTFOUND);
    CHECK_EQ_INT(store_name_set(s, "x", "short"), AM_EINVAL);
    CHECK_EQ_INT(store_name_set(s, "", id), AM_EINVAL);
    CHECK_EQ_INT(store_name_set(s, "a\nb", id), AM_EINVAL);
    store_close(s);
    model_delete(m);
    rmrf(dir);
}

/* ---------------------------------------------------------------- generic */

typedef struct { int n; uint32_t last; int ordered; int stop_at; } StepIter;

static int step_cb(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    StepIter *it = ud;
    uint32_t step = am_be32_get((const uint8_t *)key + klen - 4);
    char buf[32];
    snprintf(buf, sizeof buf, "loss=%u", step);
    if (vlen != strlen(buf) || memcmp(val, buf, vlen) != 0) it->ordered = 0;
    if (it->n > 0 && it->last >= step && it->stop_at >= 0) it->ordered = 0;
    if (it->n > 0 && it->last <= step && it->stop_at < 0) it->ordered = 0;
    it->last = step;
    it->n++;
    if (it->stop_at > 0 && it->n == it->stop_at) return 1;
    return 0;
}

static int fail_cb(void *ud, const void *k, size_t kl, const void *v, size_t vl) {
    (void)ud; (void)k; (void)kl; (void)v; (void)vl;
    return AM_EINTR;
}

TEST(generic_kv) {
    char *dir = tmpdir();
    Store *s;
    CHECK_OK(store_open(dir, 0, &s));
    const char *run = "{\"format\":1,\"status\":\"running\"}";
    CHECK_OK(store_put(s, "runs", "r1", 2, run, strlen(run)));
    void *v;
    size_t vl;
    CHECK_OK(store_get(s, "runs", "r1", 2, &v, &vl));
    CHECK(vl == strlen(run) && !strcmp(v, run));
    free(v);
    CHECK_EQ_INT(store_get(s, "runs", "r9", 2, &v, &vl), AM_ENOTFOUND);
    CHECK(v == NULL && strstr(am_lasterror(), "runs[r9]"));
    CHECK_EQ_INT(store_put(s, "bogus", "k", 1, "v", 1), AM_EINVAL);
    CHECK_EQ_INT(store_put(s, "runs", "", 0, "v", 1), AM_EINVAL);
    CHECK_EQ_INT(store_del(s, "runs", "r9", 2), AM_ENOTFOUND);
    CHECK_OK(store_del(s, "runs", "r1", 2));
    CHECK_EQ_INT(store_get(s, "runs", "r1", 2, &v, &vl), AM_ENOTFOUND);

    /* metrics keys: run 0x00 be32(step), iterated in step order (300 > 255 checks byte order) */
    uint8_t key[64];
    for (uint32_t step = 1; step <= 300; step++) {
        char val[32];
        int n = snprintf(val, sizeof val, "loss=%u", step);
        size_t kl = store_key_step(key, sizeof key, "r1", step);
        CHECK_OK(store_put(s, "metrics", key, kl, val, (size_t)n));
        if (step <= 5) {
            kl = store_key_step(key, sizeof key, "r0", step);
            CHECK_OK(store_put(s, "metrics", key, kl, val, (size_t)n));
            kl = store_key_step(key, sizeof key, "r2", step);
            CHECK_OK(store_put(s, "metrics", key, kl, val, (size_t)n));
        }
    }
    StepIter it = {0, 0, 1, 0};
    CHECK_OK(store_iter(s, "metrics", "r1", 3, step_cb, &it));
    CHECK_EQ_INT(it.n, 300);
    CHECK(it.ordered && it.last == 300);
    StepIter rev = {0, 0, 1, -1};
    CHECK_OK(store_iter_ex(s, "metrics", "r1", 3, AM_ITER_REVERSE, step_cb, &rev));
    CHECK_EQ_INT(rev.n, 300);
    CHECK(rev.ordered && rev.last == 1);
    StepIter stop = {0, 0, 1, 10};
    CHECK_OK(store_iter(s, "metrics", "r1", 3, step_cb, &stop));
    CHECK_EQ_INT(stop.n, 10);
    StepIter all = {0, 0, 1, 0};
    all.ordered = 1;
    CHECK_OK(store_iter(s, "metrics", NULL, 0, step_cb, &all));
    CHECK_EQ_INT(all.n, 310);
    StepIter last = {0, 0, 1, -1};
    CHECK_OK(store_iter_ex(s, "metrics", "r2", 3, AM_ITER_REVERSE, step_cb, &last));
    CHECK_EQ_INT(last.n, 5);
    CHECK_EQ_INT(store_iter(s, "metrics", "r1", 3, fail_cb, NULL), AM_EINTR);
    store_close(s);
    rmrf(dir);
}

TEST(batched_txn) {
    char *dir = tmpdir();
    Store *s;
    CHECK_OK(store_open(dir, 0, &s));
    StoreTxn *t;
    CHECK_OK(store_txn_begin(s, &t));
    uint8_t key[64];
    for (uint32_t step = 0; step < 1000; step++) {
        float vals[3] = {(float)step, 0.5f, 1e-4f};
        size_t kl = store_key_step(key, sizeof key, "run-a", step);
        CHECK_OK(store_txn_put(t, "metrics", key, kl, vals, sizeof vals));
    }
    const void *bv;
    size_t bl;
    size_t kl = store_key_step(key, sizeof key, "run-a", 500);
    CHECK_OK(store_txn_get(t, "metrics", key, kl, &bv, &bl));   /* sees its own writes */
    float f;
    memcpy(&f, bv, sizeof f);
    CHECK(bl == 12 && f == 500.0f);
    CHECK_OK(store_txn_del(t, "metrics", key, kl));
    CHECK_EQ_INT(store_txn_del(t, "metrics", key, kl), AM_ENOTFOUND);
    CHECK_EQ_INT(store_txn_get(t, "metrics", key, kl, &bv, &bl), AM_ENOTFOUND);
    /* nested writes from this thread are refused, the txn stays usable */
    CHECK_EQ_INT(store_put(s, "runs", "x", 1, "y", 1), AM_EINVAL);
    CHECK_OK(store_txn_put(t, "runs", "run-a", 5, "{}", 2));
    CHECK_OK(store_txn_commit(t));
    CHECK_EQ_INT(db_entries(s, AM_DB_METRICS), 999);
    void *v;
    CHECK_OK(store_get(s, "runs", "run-a", 5, &v, NULL));
    free(v);
    /* abort leaves nothing */
    CHECK_OK(store_txn_begin(s, &t));
    CHECK_OK(store_txn_put(t, "runs", "run-b", 5, "{}", 2));
    store_txn_abort(t);
    CHECK_EQ_INT(store_get(s, "runs", "run-b", 5, &v, NULL), AM_ENOTFOUND);
    store_close(s);
    rmrf(dir);
}

/* ---------------------------------------------------------------- map growth */

TEST(map_full_grows_for_model) {
    char *dir = tmpdir();
    StoreOptions o = tiny_map();
    Store *s;
    CHECK_OK(store_open_ex(dir, &o, &s));
    StoreStat st;
    CHECK_OK(store_stat(s, &st));
    size_t map0 = st.mapsize;
    CHECK(map0 <= (256 << 10) + st.page_size * 4);
    Model *m = make_model(128, 2, 3000, 11);   /* ~3.2 MB of floats, > 12x the map */
    CHECK(m->tab.total * 4 > 10 * map0);
    size_t vlen;
    char *vocab = make_vocab(3000, &vlen);
    char id[33];
    CHECK_OK(store_model_put(s, m, "{\"name\":\"big\"}", vocab, vlen, id));
    CHECK_OK(store_stat(s, &st));
    CHECK(st.mapsize > m->tab.total * 4);
    store_close(s);
    CHECK_OK(store_open_ex(dir, &o, &s));       /* reopen, tiny map requested again */
    Model *g;
    char *gv;
    size_t gl;
    char r[33];
    CHECK_OK(store_resolve(s, "big", r));
    CHECK_OK(store_model_get(s, r, &g, NULL, &gv, &gl));
    CHECK(same_model(g, m) && gl == vlen && !memcmp(gv, vocab, vlen));
    model_delete(g);
    free(gv);
    store_close(s);
    model_delete(m);
    free(vocab);
    rmrf(dir);
}

typedef struct { int calls; uint32_t n; } FillCtx;

static int fill_fn(StoreTxn *t, void *ud) {
    FillCtx *c = ud;
    c->calls++;
    static uint8_t val[1024];
    uint8_t key[64];
    for (uint32_t i = 0; i < c->n; i++) {
        size_t kl = store_key_step(key, sizeof key, "write", i);
        int rc = store_txn_put(t, "metrics", key, kl, val, sizeof val);
        if (rc) return rc;
    }
    return AM_OK;
}

TEST(map_full_retries_writes) {
    char *dir = tmpdir();
    StoreOptions o = tiny_map();
    Store *s;
    CHECK_OK(store_open_ex(dir, &o, &s));
    /* a batched txn of 2 MB in 1 KiB values: MDB_MAP_FULL mid-txn, grow, replay */
    static uint8_t val[1024];
    StoreTxn *t;
    CHECK_OK(store_txn_begin(s, &t));
    uint8_t key[64];
    for (uint32_t i = 0; i < 2000; i++) {
        memset(val, (int)(i & 0xff), sizeof val);
        size_t kl = store_key_step(key, sizeof key, "fill", i);
        CHECK_OK(store_txn_put(t, "metrics", key, kl, val, sizeof val));
    }
    CHECK_OK(store_txn_commit(t));
    CHECK_EQ_INT(db_entries(s, AM_DB_METRICS), 2000);
    StoreStat st;
    CHECK_OK(store_stat(s, &st));
    CHECK(st.grows >= 2);
    /* store_write without a size hint: fn hits MDB_MAP_FULL and is run again from scratch */
    FillCtx fc = {0, 4000};
    CHECK_OK(store_write(s, 0, fill_fn, &fc));
    CHECK(fc.calls >= 2);
    CHECK_EQ_INT(db_entries(s, AM_DB_METRICS), 6000);
    /* single puts, each too small to trigger the up-front growth */
    for (uint32_t i = 0; i < 3000; i++) {
        memset(val, (int)(i * 7 & 0xff), sizeof val);
        size_t kl = store_key_step(key, sizeof key, "single", i);
        CHECK_OK(store_put(s, "metrics", key, kl, val, sizeof val));
    }
    store_close(s);
    CHECK_OK(store_open(dir, AM_STORE_RDONLY, &s));
    CHECK_EQ_INT(db_entries(s, AM_DB_METRICS), 9000);
    int bad = 0;
    for (uint32_t i = 0; i < 2000; i += 97) {
        void *v;
        size_t vl, kl = store_key_step(key, sizeof key, "fill", i);
        CHECK_OK(store_get(s, "metrics", key, kl, &v, &vl));
        memset(val, (int)(i & 0xff), sizeof val);
        bad += vl != sizeof val || memcmp(v, val, vl) != 0;
        free(v);
    }
    CHECK_EQ_INT(bad, 0);
    store_close(s);
    rmrf(dir);
}

TEST(map_limit_gives_emapfull) {
    char *dir = tmpdir();
    StoreOptions o = tiny_map();
    o.max_mapsize = 1 << 20;
    Store *s;
    CHECK_OK(store_open_ex(dir, &o, &s));
    Model *small = make_model(32, 1, 50, 5);
    char id0[33], id[33];
    CHECK_OK(store_model_put(s, small, "{\"name\":\"small\"}", NULL, 0, id0));
    Model *m = make_model(128, 2, 3000, 12);
    CHECK_EQ_INT(store_model_put(s, m, "{\"name\":\"big\"}", NULL, 0, id), AM_EMAPFULL);
    CHECK(strstr(am_lasterror(), "map full") != NULL);
    /* consistent and still usable */
    char r[33];
    CHECK_EQ_INT(store_resolve(s, "big", r), AM_ENOTFOUND);
    CHECK_EQ_INT(db_entries(s, AM_DB_MODELS), 1);
    CHECK_EQ_INT(db_entries(s, AM_DB_TENSORS), small->tab.n);
    Model *g;
    CHECK_OK(store_model_get(s, id0, &g, NULL, NULL, NULL));
    CHECK(same_model(g, small));
    model_delete(g);
    CHECK_OK(store_put(s, "runs", "after", 5, "{}", 2));
    store_close(s);
    model_delete(m);
    model_delete(small);
    rmrf(dir);
}

/* another process grows the map: this process adopts it (MDB_MAP_RESIZED) */
TEST(map_resized_by_other_process) {
    char *dir = tmpdir();
    StoreOptions o = tiny_map();
    Store *s;
    CHECK_OK(store_open_ex(dir, &o, &s));
    Model *m = make_model(128, 2, 3000, 13);
    int go[2];
    CHECK(pipe(go) == 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char c, id[33];
        close(go[1]);
        if (read(go[0], &c, 1) != 1) _exit(2);
        Store *cs;
        StoreOptions co = tiny_map();
        if (store_open_ex(dir, &co, &cs) != AM_OK) _exit(3);
        int rc = store_model_put(cs, m, "{\"name\":\"grown\"}", NULL, 0, id);
        store_close(cs);
        _exit(rc == AM_OK ? 0 : 4);
    }
    close(go[0]);
    /* the parent's env is open with the tiny map before the child writes */
    StoreStat st;
    CHECK_OK(store_stat(s, &st));
    CHECK(st.mapsize < m->tab.total * 4);
    CHECK(write(go[1], "g", 1) == 1);
    close(go[1]);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char r[33];
    CHECK_OK(store_resolve(s, "grown", r));
    Model *g = NULL;
    CHECK_OK(store_model_get(s, r, &g, NULL, NULL, NULL));
    CHECK(g && same_model(g, m));
    model_delete(g);
    CHECK_OK(store_put(s, "runs", "after", 5, "{}", 2));   /* and write after adopting */
    store_close(s);
    model_delete(m);
    rmrf(dir);
}

/* readers in other threads while the writer grows the map */
typedef struct { Store *s; volatile int stop; int errors, reads; } ReaderCtx;

static void *reader_main(void *arg) {
    ReaderCtx *c = arg;
    while (!c->stop) {
        void *v;
        size_t vl;
        int rc = store_get(c->s, "runs", "anchor", 6, &v, &vl);
        if (rc != AM_OK || vl != 6 || memcmp(v, "stable", 6) != 0) c->errors++;
        free(v);
        c->reads++;
    }
    return NULL;
}

TEST(map_growth_with_concurrent_readers) {
    char *dir = tmpdir();
    StoreOptions o = tiny_map();
    Store *s;
    CHECK_OK(store_open_ex(dir, &o, &s));
    CHECK_OK(store_put(s, "runs", "anchor", 6, "stable", 6));
    ReaderCtx c = {s, 0, 0, 0};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, reader_main, &c);
    static uint8_t val[16384];
    uint8_t key[64];
    int fails = 0;
    for (uint32_t i = 0; i < 600; i++) {   /* ~10 MB: several growths */
        size_t kl = store_key_step(key, sizeof key, "blob", i);
        fails += store_put(s, "metrics", key, kl, val, sizeof val) != AM_OK;
    }
    c.stop = 1;
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CHECK_EQ_INT(fails, 0);
    CHECK_EQ_INT(c.errors, 0);
    CHECK(c.reads > 0);
    StoreStat st;
    CHECK_OK(store_stat(s, &st));
    CHECK(st.mapsize >= (size_t)600 * sizeof val);
    store_close(s);
    rmrf(dir);
}

/* ---------------------------------------------------------------- crash safety */

/* The child stores a ~38 MB model and is SIGKILLed by the parent: at a given tensor (the
 * hook tells the parent and waits), right as the commit starts, or after a random delay. */
enum { KILL_AT_TENSOR, KILL_AT_COMMIT, KILL_AFTER_DELAY, KILL_NEVER };

typedef struct { int fd; int mode; int at; int armed; } CrashHook;

static void crash_hook(void *ud, const char *ev, int arg) {
    CrashHook *h = ud;
    if (!h->armed) return;
    if (h->mode == KILL_AT_TENSOR && !strcmp(ev, "model_put:tensor") && arg == h->at) {
        if (write(h->fd, "t", 1) != 1) _exit(5);
        for (;;) pause();
    }
    if (h->mode == KILL_AT_COMMIT && !strcmp(ev, "txn:commit")) {
        if (write(h->fd, "c", 1) != 1) _exit(5);   /* and go on committing: the kill races it */
    }
}

static int run_crash_case(const char *dir, const Model *big, const char *vocab, size_t vlen, int mode, int at,
                          double delay, double *elapsed) {
    int p[2];
    AM_ASSERT(pipe(p) == 0);
    fflush(stdout);
    double t0 = am_now();
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        CrashHook h = {p[1], mode, at, 0};
        StoreOptions o = {0};
        o.hook = crash_hook;
        o.hook_ud = &h;
        Store *s;
        if (store_open_ex(dir, &o, &s) != AM_OK) _exit(3);
        h.armed = 1;
        char id[33];
        int rc = store_model_put(s, big, "{\"name\":\"big\",\"kind\":\"checkpoint\"}", vocab, vlen, id);
        store_close(s);
        _exit(rc == AM_OK ? 0 : 4);
    }
    close(p[1]);
    if (mode == KILL_AT_TENSOR || mode == KILL_AT_COMMIT) {
        char c;
        if (read(p[0], &c, 1) == 1) kill(pid, SIGKILL);
    } else if (mode == KILL_AFTER_DELAY) {
        usleep((useconds_t)(delay * 1e6));
        kill(pid, SIGKILL);
    }
    int status;
    waitpid(pid, &status, 0);
    close(p[0]);
    if (elapsed) *elapsed = am_now() - t0;
    return status;
}

/* 1 if the big model is whole, 0 if entirely absent, -1 if the store is inconsistent. */
static int check_all_or_nothing(const char *dir, const Model *base, const char *base_id, const Model *big,
                                const char *big_id) {
    Store *s;
    if (store_open(dir, 0, &s) != AM_OK) {
        printf("  reopen failed: %s\n", am_lasterror());
        return -1;
    }
    int ok = 1, present;
    Model *g = NULL;
    /* the model committed before the crash is untouched */
    if (store_model_get(s, base_id, &g, NULL, NULL, NULL) != AM_OK || !same_model(g, base)) ok = 0;
    model_delete(g);
    g = NULL;
    char r[33];
    int rc = store_resolve(s, "big", r);
    if (rc == AM_OK) {
        present = 1;
        char *vocab = NULL;
        size_t vl = 0;
        if (strcmp(r, big_id) != 0) ok = 0;
        else if (store_model_get(s, r, &g, NULL, &vocab, &vl) != AM_OK || !same_model(g, big)) ok = 0;
        if (!vocab || vl == 0) ok = 0;
        model_delete(g);
        free(vocab);
        if (db_entries(s, AM_DB_MODELS) != 2 || db_entries(s, AM_DB_TENSORS) != (size_t)(base->tab.n + big->tab.n) ||
            db_entries(s, AM_DB_VOCAB) != 2)
            ok = 0;
    } else {
        present = 0;
        char *meta;
        if (rc != AM_ENOTFOUND || store_model_meta(s, big_id, &meta) != AM_ENOTFOUND) ok = 0;
        if (db_entries(s, AM_DB_MODELS) != 1 || db_entries(s, AM_DB_TENSORS) != (size_t)base->tab.n ||
            db_entries(s, AM_DB_VOCAB) != 1 || db_entries(s, AM_DB_NAMES) != 1)
            ok = 0;
    }
    /* and the store takes writes again (the dead writer's lock is recovered) */
    if (store_put(s, "runs", "after-crash", 11, "{}", 2) != AM_OK) ok = 0;
    store_close(s);
    if (!ok) printf("  inconsistent store (%s): %s\n", present ? "present" : "absent", am_lasterror());
    return ok ? present : -1;
}

TEST(crash_safety_sigkill) {
    alarm(120);   /* a lock never recovered would hang: fail loudly instead */
    Model *base = make_model(32, 1, 50, 21);
    Model *big = make_model(256, 2, 30000, 22);   /* ~9.4 M floats = 38 MB */
    size_t bvlen, vlen;
    char *bvocab = make_vocab(50, &bvlen);
    char *vocab = make_vocab(30000, &vlen);
    char big_id[33];
    store_model_id(big, vocab, vlen, big_id);

    struct { int mode, at; double frac; } cases[] = {
        {KILL_NEVER, 0, 0},           /* measures the duration; must end present */
        {KILL_AT_TENSOR, 0, 0},       /* first tensor written */
        {KILL_AT_TENSOR, 20, 0},      /* mid-way */
        {KILL_AT_TENSOR, -1, 0},      /* last tensor written, before meta/name/commit */
        {KILL_AT_COMMIT, 0, 0},       /* the commit races the kill */
        {KILL_AFTER_DELAY, 0, 0.15}, {KILL_AFTER_DELAY, 0, 0.4}, {KILL_AFTER_DELAY, 0, 0.6},
        {KILL_AFTER_DELAY, 0, 0.8}, {KILL_AFTER_DELAY, 0, 0.95}, {KILL_AFTER_DELAY, 0, 1.1},
    };
    double full = 0;
    int present = 0, absent = 0, broken = 0;
    AmRng rng;
    am_rng_seed(&rng, 99);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = tmpdir();
        Store *s;
        char base_id[33];
        CHECK_OK(store_open(dir, 0, &s));
        CHECK_OK(store_model_put(s, base, "{\"name\":\"base\"}", bvocab, bvlen, base_id));
        store_close(s);
        int at = cases[i].at < 0 ? big->tab.n - 1 : cases[i].at;
        double jitter = 0.9 + 0.2 * (double)am_rng_uniform(&rng);
        double delay = cases[i].frac * full * jitter, el;
        int status = run_crash_case(dir, big, vocab, vlen, cases[i].mode, at, delay, &el);
        if (cases[i].mode == KILL_NEVER) {
            full = el;
            CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "uninterrupted child failed: status %d", status);
        } else if (cases[i].mode != KILL_AFTER_DELAY) {
            CHECKF(WIFSIGNALED(status), "case %zu: child was not killed (status %d)", i, status);
        }
        int r = check_all_or_nothing(dir, base, base_id, big, big_id);
        CHECKF(r >= 0, "case %zu (mode %d, delay %.3f s): store inconsistent after the kill", i, cases[i].mode, delay);
        if (cases[i].mode == KILL_NEVER) CHECK(r == 1);
        if (cases[i].mode == KILL_AT_TENSOR) CHECK(r == 0);
        present += r == 1;
        absent += r == 0;
        broken += r < 0;
        rmrf(dir);
    }
    printf("  crash cases: %d whole, %d absent, %d inconsistent (uninterrupted put %.0f ms)\n", present, absent,
           broken, full * 1e3);
    alarm(0);
    model_delete(base);
    model_delete(big);
    free(bvocab);
    free(vocab);
}

/* ---------------------------------------------------------------- corrupt values, full disk, format */

static void put_tensor_value(Store *s, const char *id, const char *name, const void *val, size_t len) {
    uint8_t key[256];
    size_t kl = store_key_pair(key, sizeof key, id, name);
    CHECK_OK(store_put(s, "tensors", key, kl, val, len));
}

TEST(corrupt_tensor_values) {
    char *dir = tmpdir();
    Store *s;
    CHECK_OK(store_open(dir, 0, &s));
    Model *m = make_model(32, 2, 50, 31);
    char id[33];
    CHECK_OK(store_model_put(s, m, NULL, NULL, 0, id));
    const char *tn = "encoder.layer.1.attention.self.query.weight";
    const ParamInfo *p = param_table_find(&m->tab, tn);
    size_t len = AM_TENSOR_HDR_SIZE + p->numel * 4;
    uint8_t *val = xmalloc(len);
    Model *g = (Model *)1;

    /* bad magic */
    am_tensor_header_encode(val, p->ndim, p->shape);
    memcpy(val + AM_TENSOR_HDR_SIZE, m->params + p->offset, p->numel * 4);
    memcpy(val, "XXXX", 4);
    put_tensor_value(s, id, tn, val, len);
    CHECK_EQ_INT(store_model_get(s, id, &g, NULL, NULL, NULL), AM_EFORMAT);
    CHECK(g == NULL);
    CHECKF(strstr(am_lasterror(), tn) && strstr(am_lasterror(), "magic"), "message: %s", am_lasterror());
    /* same numel, wrong shape */
    int64_t shape[2] = {p->shape[0] / 2, p->shape[1] * 2};
    am_tensor_header_encode(val, 2, shape);
    put_tensor_value(s, id, tn, val, len);
    CHECK_EQ_INT(store_model_get(s, id, &g, NULL, NULL, NULL), AM_EFORMAT);
    CHECKF(strstr(am_lasterror(), tn) && strstr(am_lasterror(), "shape [16, 64]"), "message: %s", am_lasterror());
    /* truncated data */
    am_tensor_header_encode(val, p->ndim, p->shape);
    put_tensor_value(s, id, tn, val, len - 4);
    CHECK_EQ_INT(store_model_get(s, id, &g, NULL, NULL, NULL), AM_EFORMAT);
    CHECKF(strstr(am_lasterror(), tn) && strstr(am_lasterror(), "data size"), "message: %s", am_lasterror());
    /* unknown dtype, newer version */
    val[6] = 9;
    put_tensor_value(s, id, tn, val, len);
    CHECK_EQ_INT(store_model_get(s, id, &g, NULL, NULL, NULL), AM_EFORMAT);
    CHECK(strstr(am_lasterror(), "dtype") != NULL);
    val[6] = AM_TDTYPE_F32;
    val[4] = 7;
    put_tensor_value(s, id, tn, val, len);
    CHECK_EQ_INT(store_model_get(s, id, &g, NULL, NULL, NULL), AM_EFORMAT);
    CHECK(strstr(am_lasterror(), "HINT") != NULL);
    val[4] = AM_TENSOR_VERSION;
    /* a valid header but one flipped float bit: the content hash catches it */
    val[AM_TENSOR_HDR_SIZE + 100] ^= 1;
    put_tensor_value(s, id, tn, val, len);
    CHECK_EQ_INT(store_model_get(s, id, &g, NULL, NULL, NULL), AM_EFORMAT);
    CHECK(strstr(am_lasterror(), "hash") != NULL);
    /* restored: fine again */
    val[AM_TENSOR_HDR_SIZE + 100] ^= 1;
    put_tensor_value(s, id, tn, val, len);
    CHECK_OK(store_model_get(s, id, &g, NULL, NULL, NULL));
    CHECK(g && same_model(g, m));
    model_delete(g);
    /* a missing tensor and a stray one */
    uint8_t key[256];
    size_t kl = store_key_pair(key, sizeof key, id, tn);
    CHECK_OK(store_del(s, "tensors", key, kl));
    CHECK_EQ_INT(store_model_get(s, id, &g, NULL, NULL, NULL), AM_EFORMAT);
    CHECK(strstr(am_lasterror(), tn) && strstr(am_lasterror(), "missing"));
    put_tensor_value(s, id, tn, val, len);
    put_tensor_value(s, id, "extra.weight", val, len);
    CHECK_EQ_INT(store_model_get(s, id, &g, NULL, NULL, NULL), AM_EFORMAT);
    /* bad meta */
    CHECK_OK(store_put(s, "models", id, 32, "{\"format\":1}", 12));
    CHECK_EQ_INT(store_model_get(s, id, &g, NULL, NULL, NULL), AM_EFORMAT);
    CHECK(strstr(am_lasterror(), "config") != NULL);
    store_close(s);
    free(val);
    model_delete(m);
    rmrf(dir);
}

/* A full disk, simulated with RLIMIT_FSIZE in a child: the put fails cleanly, nothing of it
 * is visible, and the earlier contents are intact. */
TEST(disk_full_is_clean) {
    char *dir = tmpdir();
    Store *s;
    CHECK_OK(store_open(dir, 0, &s));
    Model *small = make_model(32, 1, 50, 41);
    char id0[33];
    CHECK_OK(store_model_put(s, small, "{\"name\":\"small\"}", NULL, 0, id0));
    store_close(s);
    char *data = xasprintf("%s/data.mdb", dir);
    struct stat st;
    CHECK(stat(data, &st) == 0);
    free(data);
    Model *big = make_model(128, 2, 3000, 42);
    int p[2];
    CHECK(pipe(p) == 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        signal(SIGXFSZ, SIG_IGN);
        Store *cs;
        if (store_open(dir, 0, &cs) != AM_OK) _exit(3);
        struct rlimit rl = {(rlim_t)st.st_size + (256 << 10), (rlim_t)st.st_size + (256 << 10)};
        setrlimit(RLIMIT_FSIZE, &rl);
        char id[33];
        int rc = store_model_put(cs, big, "{\"name\":\"big\"}", NULL, 0, id);
        const char *msg = am_lasterror();
        if (write(p[1], &rc, sizeof rc) != sizeof rc || write(p[1], msg, strlen(msg) + 1) < 0) _exit(5);
        /* the same env keeps working after the failed commit */
        Model *g;
        rc = store_model_get(cs, id0, &g, NULL, NULL, NULL);
        model_delete(g);
        store_close(cs);
        _exit(rc == AM_OK ? 0 : 6);
    }
    close(p[1]);
    int rc = 0;
    char msg[2048] = {0};
    CHECK(read(p[0], &rc, sizeof rc) == sizeof rc);
    ssize_t n = read(p[0], msg, sizeof msg - 1);
    (void)n;
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    CHECKF(rc == AM_EMAPFULL || rc == AM_EIO, "put on a full disk returned %d: %s", rc, msg);
    CHECKF(strstr(msg, "nothing was written") && strstr(msg, "disk"), "message: %s", msg);
    printf("  full disk: %s\n", msg);
    CHECK_OK(store_open(dir, 0, &s));
    char r[33];
    CHECK_EQ_INT(store_resolve(s, "big", r), AM_ENOTFOUND);
    CHECK_EQ_INT(db_entries(s, AM_DB_MODELS), 1);
    CHECK_EQ_INT(db_entries(s, AM_DB_TENSORS), small->tab.n);
    Model *g;
    CHECK_OK(store_model_get(s, id0, &g, NULL, NULL, NULL));
    CHECK(same_model(g, small));
    model_delete(g);
    CHECK_OK(store_model_put(s, big, "{\"name\":\"big\"}", NULL, 0, r));   /* with space it works */
    store_close(s);
    model_delete(small);
    model_delete(big);
    rmrf(dir);
}

TEST(open_errors_and_format) {
    char *dir = tmpdir();
    Store *s = (Store *)1;
    CHECK_EQ_INT(store_open(dir, AM_STORE_RDONLY, &s), AM_ENOTFOUND);
    CHECK(s == NULL && strstr(am_lasterror(), "no store at"));
    store_close(s);
    CHECK_OK(store_open(dir, 0, &s));
    /* a second open in this process shares the handle */
    Store *s2 = NULL, *s3 = (Store *)1;
    CHECK_OK(store_open(dir, 0, &s2));
    CHECK(s2 == s);
    CHECK_EQ_INT(store_open(dir, AM_STORE_RDONLY, &s3), AM_EINVAL);
    CHECK(s3 == NULL);
    store_close(s2);
    void *v;
    CHECK_OK(store_get(s, "meta", "format", 6, &v, NULL));
    char want[32];
    snprintf(want, sizeof want, "{\"format\":%d}", AM_STORE_FORMAT);
    CHECK(!strcmp(v, want));
    free(v);
    CHECK_OK(store_put(s, "meta", "format", 6, "{\"format\":99}", 13));
    store_close(s);
    CHECK_EQ_INT(store_open(dir, 0, &s), AM_ESTORE);
    CHECK(s == NULL);
    CHECKF(strstr(am_lasterror(), "format 99") && strstr(am_lasterror(), "HINT"), "message: %s", am_lasterror());
    CHECK_EQ_INT(store_open(dir, AM_STORE_RDONLY, &s), AM_ESTORE);
    /* not an LMDB file */
    char *dir2 = tmpdir();
    char *data = xasprintf("%s/data.mdb", dir2);
    char junk[8192];
    memset(junk, 'j', sizeof junk);
    CHECK_OK(am_write_file(data, junk, sizeof junk));
    free(data);
    int rc = store_open(dir2, 0, &s);
    CHECKF(rc == AM_ESTORE && strstr(am_lasterror(), "open environment"), "rc %d: %s", rc, am_lasterror());
    /* the env var for the initial map size */
    char *dir3 = tmpdir();
    setenv("AMALGAM_STORE_MAPSIZE", "bogus", 1);
    CHECK_EQ_INT(store_open(dir3, 0, &s), AM_EINVAL);
    setenv("AMALGAM_STORE_MAPSIZE", "2M", 1);
    CHECK_OK(store_open(dir3, 0, &s));
    StoreStat st;
    CHECK_OK(store_stat(s, &st));
    CHECK_EQ_INT(st.mapsize, 2 << 20);
    store_close(s);
    unsetenv("AMALGAM_STORE_MAPSIZE");
    rmrf(dir);
    rmrf(dir2);
    rmrf(dir3);
}

TEST(keys_and_headers) {
    uint8_t k[64];
    CHECK_EQ_INT(store_key_step(k, sizeof k, "run", 0x01020304), 8);
    CHECK(!memcmp(k, "run\0\x01\x02\x03\x04", 8));
    CHECK_EQ_INT(store_key_step(k, 6, "run", 1), 0);
    CHECK_EQ_INT(store_key_pair(k, sizeof k, "ab", "cd"), 5);
    CHECK(!memcmp(k, "ab\0cd", 5));
    uint8_t h[AM_TENSOR_HDR_SIZE + 24];
    int64_t shape[2] = {2, 3};
    am_tensor_header_encode(h, 2, shape);
    AmTensorHeader th;
    CHECK(am_tensor_header_decode(h, sizeof h, &th) == NULL);
    CHECK(th.ndim == 2 && th.shape[0] == 2 && th.shape[1] == 3 && th.numel == 6 && th.hdr_size == 48);
    CHECK(am_tensor_header_decode(h, 10, &th) != NULL);
    h[7] = 0;
    CHECK(am_tensor_header_decode(h, sizeof h, &th) != NULL);
    CHECK(!strcmp(store_default_dir(), getenv("AMALGAM_STORE") ? getenv("AMALGAM_STORE") : "store"));
}

int main(void) {
    RUN(keys_and_headers);
    RUN(model_roundtrip);
    RUN(model_mlm_head_roundtrip);
    RUN(model_dedup_and_delete);
    RUN(names_resolve);
    RUN(generic_kv);
    RUN(batched_txn);
    RUN(map_full_grows_for_model);
    RUN(map_full_retries_writes);
    RUN(map_limit_gives_emapfull);
    RUN(map_resized_by_other_process);
    RUN(map_growth_with_concurrent_readers);
    RUN(corrupt_tensor_values);
    RUN(disk_full_is_clean);
    RUN(open_errors_and_format);
    RUN(crash_safety_sigkill);
    return test_report();
}
