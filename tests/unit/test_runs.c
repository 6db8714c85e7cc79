/* test_runs.c - the run API (src/store/store_runs.h): records, prefixes, metrics ranges,
 * trainer state parts, delete, batched writes; and a store written before the run keys
 * (tests/ref/store/old_store) read as it is read-only and migrated when opened for writing. */
#define _GNU_SOURCE
#define TEST_TMP_PREFIX "/tmp/am_test_runs_"
#include "harness.h"
#include "tmpdir.h"
#include "am_base.h"
#include "store_runs.h"

#include <cjson/cJSON.h>
#include <stdint.h>

typedef struct { int n; uint32_t steps[64]; char last[256]; } Rows;

static int collect_row(void *ud, uint32_t step, const char *json, size_t len) {
    Rows *r = ud;
    if (r->n < 64) r->steps[r->n] = step;
    r->n++;
    snprintf(r->last, sizeof r->last, "%.*s", (int)len, json);
    return 0;
}

typedef struct { int n; char ids[8][64]; } Ids;

static int collect_id(void *ud, const char *id, const char *json) {
    Ids *r = ud;
    cJSON *j = cJSON_Parse(json);
    if (r->n < 8 && j) snprintf(r->ids[r->n], 64, "%s", id);
    cJSON_Delete(j);
    r->n++;
    return 0;
}

static Rows metrics(Store *s, const char *id, uint32_t a, uint32_t b) {
    Rows r = {0};
    CHECK_OK(store_run_metrics(s, id, a, b, collect_row, &r));
    return r;
}

TEST(records_and_prefixes) {
    Store *s = NULL;
    CHECK_OK(store_open(tmpdir(), 0, &s));
    CHECK_OK(store_run_put(s, "alpha-1", "{\"status\":\"running\",\"format\":7,\"id\":\"other\"}"));
    CHECK_OK(store_run_put(s, "alpha-2", "{}"));
    CHECK_OK(store_run_put(s, "beta", "{\"status\":\"done\"}"));
    char *js = NULL;
    CHECK_OK(store_run_get(s, "alpha-1", &js));
    cJSON *j = cJSON_Parse(js);
    CHECK(cJSON_GetObjectItem(j, "format")->valueint == AM_RUN_FORMAT);
    CHECK(strcmp(cJSON_GetObjectItem(j, "id")->valuestring, "alpha-1") == 0);
    CHECK(strcmp(cJSON_GetObjectItem(j, "status")->valuestring, "running") == 0);
    cJSON_Delete(j);
    free(js);
    CHECK_EQ_INT(store_run_get(s, "gamma", &js), AM_ENOTFOUND);
    CHECK(strstr(am_lasterror(), "unknown run 'gamma'") != NULL);
    CHECK_EQ_INT(store_run_put(s, "a/b", "{}"), AM_EINVAL);
    CHECK_EQ_INT(store_run_put(s, "", "{}"), AM_EINVAL);
    CHECK_EQ_INT(store_run_put(s, "x", "[1]"), AM_EINVAL);
    /* a generic key with '/' and the state parts are not runs */
    CHECK_OK(store_put(s, "runs", "note/1", 6, "x", 1));
    CHECK_OK(store_run_state_put(s, "beta", "state", "blob", 4));
    Ids ids = {0};
    CHECK_OK(store_run_list(s, collect_id, &ids));
    CHECK_EQ_INT(ids.n, 3);
    CHECK(strcmp(ids.ids[0], "alpha-1") == 0 && strcmp(ids.ids[2], "beta") == 0);
    char *id = NULL;
    CHECK_OK(store_run_resolve(s, "be", &id));
    CHECK(id && strcmp(id, "beta") == 0);
    free(id);
    CHECK_OK(store_run_resolve(s, "alpha-2", &id));
    CHECK(id && strcmp(id, "alpha-2") == 0);
    free(id);
    CHECK_EQ_INT(store_run_resolve(s, "alpha", &id), AM_EINVAL);
    CHECK(strstr(am_lasterror(), "ambiguous") && strstr(am_lasterror(), "alpha-1, alpha-2"));
    CHECK_EQ_INT(store_run_resolve(s, "zeta", &id), AM_ENOTFOUND);
    store_close(s);
}

TEST(metrics_state_delete) {
    Store *s = NULL;
    CHECK_OK(store_open(tmpdir(), 0, &s));
    char buf[64];
    for (uint32_t i = 1; i <= 10; i++) {
        int n = snprintf(buf, sizeof buf, "{\"step\":%u}", i);
        CHECK_OK(store_run_metric_put(s, "r", i, buf, (size_t)n));
        CHECK_OK(store_run_metric_put(s, "rx", i, buf, (size_t)n));   /* an id extending "r" */
    }
    CHECK_OK(store_run_metric_put(s, "r", 300, "{\"step\":300}", 12));   /* 300 sorts after 10 */
    Rows all = metrics(s, "r", 0, UINT32_MAX);
    CHECK_EQ_INT(all.n, 11);
    CHECK(all.steps[0] == 1 && all.steps[9] == 10 && all.steps[10] == 300);
    Rows mid = metrics(s, "r", 4, 6);
    CHECK(mid.n == 3 && mid.steps[0] == 4 && mid.steps[2] == 6);
    Rows after = metrics(s, "r", 10 + 1, UINT32_MAX);   /* "metrics after step 10": a TUI's poll */
    CHECK(after.n == 1 && after.steps[0] == 300 && strcmp(after.last, "{\"step\":300}") == 0);
    CHECK_EQ_INT(metrics(s, "r", 301, UINT32_MAX).n, 0);
    CHECK_EQ_INT(metrics(s, "nope", 0, UINT32_MAX).n, 0);

    CHECK_OK(store_run_put(s, "r", "{}"));
    CHECK_OK(store_run_state_put(s, "r", "state", "\0\1\2", 3));
    CHECK_OK(store_run_state_put(s, "r", "cursors", "{}", 2));
    void *v = NULL;
    size_t vl = 0;
    CHECK_OK(store_run_state_get(s, "r", "state", &v, &vl));
    CHECK(vl == 3 && memcmp(v, "\0\1\2", 3) == 0);
    free(v);
    CHECK_EQ_INT(store_run_state_put(s, "r", "State", "x", 1), AM_EINVAL);
    CHECK_OK(store_run_state_del(s, "r", "cursors"));
    CHECK_EQ_INT(store_run_state_get(s, "r", "cursors", &v, &vl), AM_ENOTFOUND);
    CHECK_EQ_INT(store_run_state_del(s, "r", "cursors"), AM_ENOTFOUND);
    CHECK_OK(store_run_state_put(s, "r", "cursors", "{}", 2));
    CHECK_OK(store_run_state_del(s, "r", NULL));
    CHECK_EQ_INT(store_run_state_get(s, "r", "state", &v, &vl), AM_ENOTFOUND);
    CHECK_OK(store_run_get(s, "r", (char **)&v));   /* the record stays */
    free(v);

    /* delete: record, state and metrics of "r", nothing of "rx" */
    CHECK_OK(store_run_state_put(s, "r", "state", "x", 1));
    CHECK_OK(store_run_delete(s, "r"));
    CHECK_EQ_INT(metrics(s, "r", 0, UINT32_MAX).n, 0);
    CHECK_EQ_INT(metrics(s, "rx", 0, UINT32_MAX).n, 10);
    CHECK_EQ_INT(store_run_state_get(s, "r", "state", &v, &vl), AM_ENOTFOUND);
    CHECK_EQ_INT(store_run_get(s, "r", (char **)&v), AM_ENOTFOUND);
    CHECK_EQ_INT(store_run_delete(s, "r"), AM_ENOTFOUND);
    store_close(s);
}

TEST(batched_txn) {
    Store *s = NULL;
    CHECK_OK(store_open(tmpdir(), 0, &s));
    StoreTxn *t = NULL;
    CHECK_OK(store_txn_begin(s, &t));
    CHECK_OK(store_txn_run_metric_put(t, "b", 1, "{}", 2));
    CHECK_OK(store_txn_run_metric_put(t, "b", 2, "{}", 2));
    CHECK_OK(store_txn_run_state_put(t, "b", "state", "s", 1));
    CHECK_OK(store_txn_run_put(t, "b", "{\"step\":2}"));
    CHECK_EQ_INT(store_txn_run_put(t, "b/c", "{}"), AM_EINVAL);
    CHECK_OK(store_txn_commit(t));
    CHECK_EQ_INT(metrics(s, "b", 0, UINT32_MAX).n, 2);
    StoreRunSize z;
    CHECK_OK(store_run_size(s, "b", &z));
    CHECK(z.metric_rows == 2 && z.metric_bytes == 2 * (1 + 5 + 2) && z.state_bytes == 1 + 6 + 1 && z.record_bytes > 20);
    CHECK_OK(store_txn_begin(s, &t));
    CHECK_OK(store_txn_run_state_del(t, "b", NULL));
    CHECK_OK(store_txn_run_state_del(t, "b", NULL));   /* nothing left: no error inside a txn */
    CHECK_OK(store_txn_commit(t));
    CHECK_OK(store_run_size(s, "b", &z));
    CHECK(z.state_bytes == 0 && z.metric_rows == 2);
    char *js = NULL;
    CHECK_OK(store_run_get(s, "b", &js));
    CHECK(js && strstr(js, "\"format\":1"));
    free(js);
    store_close(s);
}

/* ---------------------------------------------------------------- the format-1 fixture */

#define OLD_DONE "fx-done-20261207000300-5f7de1"
#define OLD_STOPPED "fx-stopped-20261207000300-06b5a2"

static char *copy_old_store(void) {
    char *d = tmpdir();
    char *cmd = xasprintf("cp '%s/ref/store/old_store/data.mdb' '%s/'", AM_TEST_DIR, d);
    AM_ASSERT(system(cmd) == 0);
    free(cmd);
    return d;
}

static void check_old_contents(Store *s, const char *when) {
    Ids ids = {0};
    CHECK_OK(store_run_list(s, collect_id, &ids));
    CHECKF(ids.n == 2 && strcmp(ids.ids[0], OLD_DONE) == 0 && strcmp(ids.ids[1], OLD_STOPPED) == 0,
           "%s: %d runs", when, ids.n);
    Rows r = metrics(s, OLD_DONE, 0, UINT32_MAX);
    CHECKF(r.n == 6 && r.steps[0] == 1 && r.steps[5] == 6, "%s: %d metrics rows of the done run", when, r.n);
    CHECK(strstr(r.last, "\"step\":6") != NULL);
    Rows after = metrics(s, OLD_DONE, 5, UINT32_MAX);
    CHECKF(after.n == 2 && after.steps[0] == 5, "%s: metrics from step 5: %d", when, after.n);
    CHECK_EQ_INT(metrics(s, OLD_STOPPED, 0, UINT32_MAX).n, 3);
    void *v = NULL;
    size_t vl = 0;
    CHECK_OK(store_run_state_get(s, OLD_STOPPED, "state", &v, &vl));
    CHECK(vl > 1000);
    free(v);
    CHECK_OK(store_run_state_get(s, OLD_STOPPED, "cursors", &v, &vl));
    CHECK(v && strstr(v, "\"step\":3"));
    free(v);
    char *id = NULL;
    CHECK_OK(store_run_resolve(s, "fx-st", &id));
    CHECK(id && strcmp(id, OLD_STOPPED) == 0);
    free(id);
    StoreRunSize z;
    CHECK_OK(store_run_size(s, OLD_STOPPED, &z));
    CHECKF(z.metric_rows == 3 && z.state_bytes > 1000 && z.record_bytes > 100, "%s: size of the stopped run", when);
    StoreStat st;
    CHECK_OK(store_stat(s, &st));
    CHECK_EQ_INT(st.entries[AM_DB_RESULTS], 1);
    CHECK_EQ_INT(st.entries[AM_DB_METRICS], 9);
}

TEST(old_store_read_only_then_migrated) {
    char *d = copy_old_store();
    Store *s = NULL;
    CHECK_OK(store_open(d, AM_STORE_RDONLY, &s));
    if (s) check_old_contents(s, "read-only");
    void *v = NULL;
    CHECK_OK(store_get(s, "meta", "format", 6, &v, NULL));
    CHECK(v && strcmp(v, "{\"format\":1}") == 0);   /* read-only: not migrated */
    free(v);
    store_close(s);

    CHECK_OK(store_open(d, 0, &s));
    if (!s) return;
    CHECK_OK(store_get(s, "meta", "format", 6, &v, NULL));
    CHECK(v && strcmp(v, "{\"format\":2}") == 0);
    free(v);
    check_old_contents(s, "migrated");
    /* the old keys are gone, the new ones are there */
    char old_state[] = OLD_STOPPED "/state";
    CHECK_EQ_INT(store_get(s, "runs", old_state, strlen(old_state), &v, NULL), AM_ENOTFOUND);
    uint8_t key[128];
    size_t kl = store_key_step(key, sizeof key, OLD_DONE, 6);
    CHECK_OK(store_get(s, "metrics", key, kl, &v, NULL));
    free(v);
    char *js = NULL;
    CHECK_OK(store_run_get(s, OLD_DONE, &js));
    CHECK(js && strstr(js, "\"format\":1") && strstr(js, "\"status\":\"done\""));
    free(js);
    store_close(s);
    /* and again: nothing left to move */
    CHECK_OK(store_open(d, 0, &s));
    if (s) check_old_contents(s, "reopened");
    store_close(s);
}

int main(void) {
    RUN(records_and_prefixes);
    RUN(metrics_state_delete);
    RUN(batched_txn);
    RUN(old_store_read_only_then_migrated);
    cleanup_tmp();
    return test_report();
}
