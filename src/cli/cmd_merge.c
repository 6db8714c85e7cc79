/* cmd_merge.c - amalgam merge, and what `info MODEL` shows of a merge (src/api/merge_store.h).
 *
 *   merge --method M [--base B] MODEL[:WEIGHT]... [--set key=value]... [--rule R]... [--name N] [--materialize] [--json]
 *   merge --method fisher|regmean|lm_cocktail|codiemb_fusion|self_positioning ... --data TASK[:ROWS]... (through
 *         lua/amalgam/merge.lua's cli_merge_data; stored with its tensors)
 *   diff [--base B] MODEL... [--tensors] [--json]; diff MODEL --data TASK[:ROWS]... (gradient conflicts)
 *
 * Without --name (or --materialize) the merge is stored as its recipe only (no tensors) and
 * computed whenever it is used (encode, eval, export); --name stores the tensors and names it.
 * --set values: a number, true/false, or a comma-separated list of numbers (a gradient over
 * the layers, mergekit's); e.g. --set density=0.5 --set lambda=0.2,1. --rule PARAM[@K][:SEL]=V
 * sets a parameter for model K only (1-based) and/or a module class (embeddings, attention, ffn,
 * layernorm, pooler, head) or tensor-name pattern only; later rules win.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "am_base.h"
#include "embed.h"
#include "merge_store.h"
#include "am_lua.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int merge_data_cli(CliArgs *a, const char *method, cJSON *params, int nrules);
static int lua_args(CliArgs *a, const char *what, lua_State **out);
static void lua_list_opt(lua_State *L, CliArgs *a, const char *opt, const char *key);
static int run_merge_lua(lua_State *L, const char *fn);

/* "MODEL:WEIGHT" -> model, weight (a suffix that is not a number belongs to the name) */
static void split_weight(const char *arg, char **model, double *w, int *has_w) {
    const char *c = strrchr(arg, ':');
    *has_w = 0;
    *w = 1;
    if (c && c[1]) {
        char *end;
        double v = strtod(c + 1, &end);
        if (*end == 0) {
            *model = strndup(arg, (size_t)(c - arg));
            *w = v;
            *has_w = 1;
            return;
        }
    }
    *model = xstrdup(arg);
}

static void appendf(char *buf, size_t cap, size_t *o, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void appendf(char *buf, size_t cap, size_t *o, const char *fmt, ...) {
    if (*o >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *o, cap - *o, fmt, ap);
    va_end(ap);
    if (k > 0) *o += (size_t)k;
}

/* the methods that merge from data (lua/amalgam/merge_data.lua; run through Lua) */
static const char *const data_methods[] = { "fisher", "regmean", "lm_cocktail", "codiemb_fusion", "self_positioning" };
#define N_DATA_METHODS (int)(sizeof data_methods / sizeof data_methods[0])

static int is_data_method(const char *m) {
    for (int i = 0; m && i < N_DATA_METHODS; i++)
        if (strcmp(m, data_methods[i]) == 0) return 1;
    return 0;
}

/* A method name the command line takes: src/merge's or a data method. Unknown: the closest of
 * both lists is suggested (src/merge alone knows only its own, so `fishr` got no hint). */
static int check_method(const char *m) {
    MergeMethod mm;
    if (!m || is_data_method(m) || merge_method_from_name(m, &mm) == AM_OK) return AM_OK;
    am_clearerror();
    const char *names[MERGE_METHOD_COUNT + N_DATA_METHODS];
    int n = 0;
    for (int i = 0; i < MERGE_METHOD_COUNT; i++) names[n++] = merge_method_name((MergeMethod)i);
    for (int i = 0; i < N_DATA_METHODS; i++) names[n++] = data_methods[i];
    const char *c = merge_closest_name(m, names, n);
    if (c) return am_error(AM_EINVAL, "unknown merge method '%s' (did you mean '%s'?)", m, c);
    char list[768] = "";
    for (int i = 0; i < n; i++) {
        strncat(list, names[i], sizeof list - strlen(list) - 1);
        if (i + 1 < n) strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    return am_error(AM_EINVAL, "unknown merge method '%s' (known: %s)", m, list);
}

/* --set key=value into the params object; strings: a value that is not a number is a string
 * (1) or a comma-separated list of strings (2) (the data methods' normalize=model, g=square) */
static int parse_set_str(cJSON *params, const char *kv, int strings);
static int parse_set(cJSON *params, const char *kv) { return parse_set_str(params, kv, 0); }
static int parse_set_str(cJSON *params, const char *kv, int strings) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv || !eq[1])
        return am_error(AM_EINVAL, "merge: --set expects key=value (e.g. --set density=0.5), got '%s'", kv);
    char key[64];
    snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
    const char *v = eq + 1;
    if (cJSON_GetObjectItemCaseSensitive(params, key)) return am_error(AM_EINVAL, "merge: --set %s given twice", key);
    if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
        cJSON_AddBoolToObject(params, key, v[0] == 't');
        return AM_OK;
    }
    cJSON *arr = cJSON_CreateArray();
    const char *p = v;
    while (1) {
        char *end;
        double x = strtod(p, &end);
        if (end == p || (*end != ',' && *end != 0) || !isfinite(x)) {
            cJSON_Delete(arr);
            if (strings == 1) {
                cJSON_AddStringToObject(params, key, v);
                return AM_OK;
            }
            if (strings == 2) {
                arr = cJSON_CreateArray();
                for (const char *q = v; *q;) {
                    const char *c = strchr(q, ',');
                    size_t n = c ? (size_t)(c - q) : strlen(q);
                    char *item = strndup(q, n);
                    cJSON_AddItemToArray(arr, cJSON_CreateString(item));
                    free(item);
                    q += n + (c ? 1 : 0);
                }
                cJSON_AddItemToObject(params, key, arr);
                return AM_OK;
            }
            return am_error(AM_EINVAL, "merge: --set %s: '%s' is not a number, true/false or a list of numbers", key, v);
        }
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(x));
        if (*end == 0) break;
        p = end + 1;
    }
    if (cJSON_GetArraySize(arr) == 1) {
        cJSON_AddItemToObject(params, key, cJSON_DetachItemFromArray(arr, 0));
        cJSON_Delete(arr);
    } else cJSON_AddItemToObject(params, key, arr);
    return AM_OK;
}

/* --rule PARAM[@K][:CLASS|PATTERN]=V[,V...] into the rules array (a class name wins over a pattern) */
static int parse_rule(cJSON *rules, const char *spec) {
    const char *eq = strrchr(spec, '=');
    if (!eq || eq == spec || !eq[1])
        return am_error(AM_EINVAL, "merge: --rule expects PARAM[@MODEL][:CLASS|PATTERN]=VALUE (e.g. --rule "
                        "density:attention=0.3, --rule weight@2:encoder.layer.1.*=0.8), got '%s'", spec);
    char lhs[256];
    snprintf(lhs, sizeof lhs, "%.*s", (int)(eq - spec), spec);
    cJSON *tmp = cJSON_CreateObject();
    char kv[300];
    snprintf(kv, sizeof kv, "value=%s", eq + 1);
    int rc = parse_set(tmp, kv);
    if (rc) {
        cJSON_Delete(tmp);
        return rc;
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddItemToObject(r, "value", cJSON_DetachItemFromObject(tmp, "value"));
    cJSON_Delete(tmp);
    char *sel = strchr(lhs, ':');
    if (sel) *sel++ = 0;
    char *at = strchr(lhs, '@');
    if (at) {
        *at++ = 0;
        char *end;
        long k = strtol(at, &end, 10);
        if (!*at || *end || k < 1 || k > 1000) {
            cJSON_Delete(r);
            return am_error(AM_EINVAL, "merge: --rule %s: @%s is not a model position (1, 2, ...)", spec, at);
        }
        cJSON_AddNumberToObject(r, "model", (double)k);
    }
    cJSON_AddStringToObject(r, "param", lhs);
    if (sel && *sel) {
        unsigned c;
        if (merge_class_from_name(sel, &c) == AM_OK) cJSON_AddStringToObject(r, "classes", sel);
        else cJSON_AddStringToObject(r, "pattern", sel);
        am_clearerror();
    }
    cJSON_AddItemToArray(rules, r);
    return AM_OK;
}

int cmd_merge(CliArgs *a) {
    const char *method = cli_get(a, "method"), *base = cli_get(a, "base"), *name = cli_get(a, "name");
    int json = cli_flag(a, "json"), materialize = cli_flag(a, "materialize");
    cJSON *params = cJSON_CreateObject(), *rules = cJSON_CreateArray();
    int rc = check_method(method), data = is_data_method(method);
    for (int i = 0; i < a->nopt && !rc; i++)
        if (strcmp(a->opt[i].name, "set") == 0) {
            a->opt[i].used = 1;
            rc = parse_set_str(params, a->opt[i].value, data);
        } else if (strcmp(a->opt[i].name, "rule") == 0) {
            a->opt[i].used = 1;
            rc = parse_rule(rules, a->opt[i].value);
        } else if (strcmp(a->opt[i].name, "data") == 0 && !data) {
            rc = am_error(AM_EINVAL, "merge: --data is for the data methods (fisher, regmean, lm_cocktail, self_positioning); "
                          "%s merges without data", method ? method : "this method");
        }
    if (!rc && data && a->npos > 0) {
        rc = merge_data_cli(a, method, params, cJSON_GetArraySize(rules));
        cJSON_Delete(params);
        cJSON_Delete(rules);
        return rc;
    }
    if (!rc) rc = cli_check_unused(a);
    if (!rc && !method)
        rc = am_error(AM_EINVAL, "merge: --method M is required (linear, task_arithmetic, ties, dare_ties, slerp, ...; "
                      "see lua/API.md)");
    if (!rc && a->npos == 0)
        rc = am_error(AM_EINVAL, "merge: usage: amalgam merge --method M [--base B] MODEL[:WEIGHT]... [--set k=v]... "
                      "[--name N]");
    if (rc) {
        cJSON_Delete(params);
        cJSON_Delete(rules);
        return rc;
    }
    int n = a->npos, any_w = 0;
    char **models = xcalloc((size_t)n, sizeof *models);
    double *weights = xcalloc((size_t)n, sizeof *weights);
    for (int i = 0; i < n; i++) {
        int hw;
        split_weight(a->pos[i], &models[i], &weights[i], &hw);
        any_w |= hw;
    }
    char *pj = cJSON_PrintUnformatted(params), *rj = cJSON_PrintUnformatted(rules);
    cJSON_Delete(params);
    cJSON_Delete(rules);
    /* the command line, for the meta's "source" */
    char source[1024];
    size_t o = 0;
    appendf(source, sizeof source, &o, "amalgam merge --method %s", method);
    if (base) appendf(source, sizeof source, &o, " --base %s", base);
    for (int i = 0; i < n; i++) appendf(source, sizeof source, &o, " %s", a->pos[i]);
    MergeRequest r = {.method = method, .base = base, .n = n, .models = (const char *const *)models,
                      .weights = any_w ? weights : NULL, .params_json = pj, .rules_json = rj, .name = name,
                      .materialize = materialize,
                      .source = source};
    Store *st = NULL;
    MergeResult res;
    memset(&res, 0, sizeof res);
    if (!(rc = store_open(a->store_dir, AM_STORE_EXISTING, &st))) rc = merge_store_merge(st, &r, &res);
    if (!rc && json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "id", res.id);
        cJSON_AddBoolToObject(j, "found", res.found);
        cJSON_AddBoolToObject(j, "stored_tensors", res.stored_tensors);
        if (name) cJSON_AddStringToObject(j, "name", name);
        cJSON_AddNumberToObject(j, "seconds", res.stats.seconds);
        char *s = cJSON_PrintUnformatted(j);
        puts(s);
        free(s);
        cJSON_Delete(j);
    } else if (!rc) {
        printf("%s %s  id %s  (%s of %d models%s)\n", res.found ? "found" : "merged", name ? name : "-", res.id, method, n,
               base ? ", with a base" : "");
        if (res.found) printf("the same merge was stored already: nothing computed\n");
        else {
            printf("merged in %.3f s", res.stats.seconds);
            if (res.stats.delta_total)
                printf(", kept %.1f%% of the task-vector entries", 100.0 * (double)res.stats.delta_kept / (double)res.stats.delta_total);
            if (res.stats.sign_conflicts) printf(", %zu against the elected sign", res.stats.sign_conflicts);
            printf("\n");
        }
        if (res.stored_tensors) printf("stored with its tensors\n");
        else printf("stored as its recipe only (computed when used; --name N or am.name stores the tensors)\n");
    }
    model_delete(res.model);
    store_close(st);
    for (int i = 0; i < n; i++) free(models[i]);
    free(models);
    free(weights);
    free(pj);
    free(rj);
    return rc;
}

/* ---------------------------------------------------------------- info MODEL of a merge */

typedef struct { const char *id; char buf[256]; } NameFind;

static int find_names(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    NameFind *f = ud;
    if (vlen != AM_ID_HEX || memcmp(val, f->id, AM_ID_HEX) != 0) return 0;
    size_t l = strlen(f->buf);
    snprintf(f->buf + l, sizeof f->buf - l, "%s%.*s", l ? "," : "", (int)klen, (const char *)key);
    return 0;
}

void cli_print_merge(Store *st, const char *meta_json) {
    cJSON *j = cJSON_Parse(meta_json);
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(j, "merge");
    if (!cJSON_IsObject(spec)) {
        cJSON_Delete(j);
        return;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(spec, "method"), *b = cJSON_GetObjectItemCaseSensitive(spec, "base");
    printf("merge    %s", cJSON_IsString(m) ? m->valuestring : "?");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(spec, "params"), *p;
    cJSON_ArrayForEach(p, params) {
        char *v = cJSON_PrintUnformatted(p);
        printf(" %s=%s", p->string, v);
        free(v);
    }
    printf("\n");
    if (cJSON_IsString(b)) {
        NameFind f = {.id = b->valuestring};
        f.buf[0] = 0;
        store_iter(st, "names", NULL, 0, find_names, &f);
        am_clearerror();
        printf("base     %.12s %s\n", b->valuestring, f.buf);
    }
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "merge_stats");
    double tot = cli_jnum(ms, "delta_total"), kept = cli_jnum(ms, "delta_kept"), conf = cli_jnum(ms, "sign_conflicts");
    if (tot > 0 || conf > 0) {
        printf("effect  ");
        if (tot > 0) printf(" kept %.1f%% of %.0f task-vector entries", 100 * kept / tot, tot);
        if (conf > 0) printf("%s %.0f entries against the elected sign (%.1f%%)", tot > 0 ? ";" : "", conf,
                             100 * conf / (kept > 0 ? kept : tot > 0 ? tot : 1));
        printf("\n");
    }
    printf("stored   %s\n", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "recipe_only"))
                                ? "recipe only (computed when used; name it to store the tensors)"
                                : "with its tensors");
    cJSON_Delete(j);
}

/* ---------------------------------------------------------------- amalgam diff */

static double num_at(const cJSON *arr, int i) {
    const cJSON *x = cJSON_GetArrayItem(arr, i);
    return cJSON_IsNumber(x) ? x->valuedouble : 0;
}

/* mean cosine over the pairs of a k x k matrix */
static double mean_pair_cos(const cJSON *cos, int k) {
    double s = 0;
    int n = 0;
    for (int x = 0; x < k; x++)
        for (int y = x + 1; y < k; y++, n++) s += num_at(cJSON_GetArrayItem(cos, x), y);
    return n ? s / n : 1;
}

static void diff_row(const cJSON *g, int k, int w) {
    printf("%-*s", w, cJSON_GetObjectItemCaseSensitive(g, "name")->valuestring);
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(g, "norm");
    for (int x = 0; x < k; x++) printf(" %9.4g", num_at(norm, x));
    if (k > 1)
        printf(" %9.4f %8.1f%%", mean_pair_cos(cJSON_GetObjectItemCaseSensitive(g, "cosine"), k),
               100 * cJSON_GetObjectItemCaseSensitive(g, "sign_conflict")->valuedouble);
    printf("\n");
}

/* amalgam diff MODEL --data TASK --data TASK ...: gradient conflicts between the tasks at MODEL
 * (lua/amalgam/merge.lua's cli_diff_data) */
static int diff_data_cli(CliArgs *a) {
    lua_State *L = NULL;
    int rc;
    const char *base = cli_get(a, "base");
    if (a->npos + (base != NULL) != 1)
        return am_error(AM_EINVAL, "diff: with --data, give the one model to measure the tasks' gradients at "
                        "(amalgam diff MODEL --data T1 --data T2 ...)");
    if ((rc = lua_args(a, "diff", &L))) return rc;
    lua_pushstring(L, a->npos ? a->pos[0] : base);
    lua_setfield(L, -2, "model");
    lua_list_opt(L, a, "data", "data");
    cJSON *params = cJSON_CreateObject();
    for (int i = 0; i < a->nopt && !rc; i++)
        if (strcmp(a->opt[i].name, "set") == 0) a->opt[i].used = 1, rc = parse_set(params, a->opt[i].value);
    char *pj = cJSON_PrintUnformatted(params);
    cJSON_Delete(params);
    lua_pushstring(L, pj);
    lua_setfield(L, -2, "params");
    free(pj);
    lua_pushboolean(L, cli_flag(a, "json"));
    lua_setfield(L, -2, "json");
    lua_pushboolean(L, cli_flag(a, "tensors"));
    lua_setfield(L, -2, "tensors");
    if (!rc) rc = cli_check_unused(a);
    if (!rc) rc = run_merge_lua(L, "cli_diff_data");
    lua_close(L);
    return rc;
}

int cmd_diff(CliArgs *a) {
    const char *base = cli_get(a, "base");
    int json = cli_flag(a, "json"), tensors = cli_flag(a, "tensors"), rc;
    for (int i = 0; i < a->nopt; i++)
        if (strcmp(a->opt[i].name, "data") == 0) return diff_data_cli(a);
    if ((rc = cli_check_unused(a))) return rc;
    if (a->npos < 1) return am_error(AM_EINVAL, "diff: usage: amalgam diff [--base B] MODEL... [--tensors] [--json]");
    Store *st = NULL;
    char *out = NULL;
    if ((rc = store_open(a->store_dir, AM_STORE_RDONLY, &st))) return rc;
    if ((rc = merge_store_diagnose(st, base, a->pos, a->npos, &out))) rc = am_error_wrap(rc, "diff");
    if (!rc && json) puts(out);
    else if (!rc) {
        cJSON *j = cJSON_Parse(out);
        int k = a->npos;
        NameFind f = {.id = cJSON_GetObjectItemCaseSensitive(j, "base")->valuestring};
        f.buf[0] = 0;
        store_iter(st, "names", NULL, 0, find_names, &f);
        am_clearerror();
        printf("base     %.12s %s\n", f.id, f.buf);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j, "models");
        for (int x = 0; x < k; x++)
            printf("model %-2d %.12s %-16s |tau| %.5g\n", x + 1, cJSON_GetArrayItem(ids, x)->valuestring, a->pos[x],
                   num_at(cJSON_GetObjectItemCaseSensitive(j, "norm"), x));
        if (k > 1) {
            printf("\ncosine  ");
            for (int y = 0; y < k; y++) printf(" %8d", y + 1);
            printf("\n");
            const cJSON *cos = cJSON_GetObjectItemCaseSensitive(j, "cosine");
            for (int x = 0; x < k; x++) {
                printf("%-8d", x + 1);
                for (int y = 0; y < k; y++) printf(" %8.4f", num_at(cJSON_GetArrayItem(cos, x), y));
                printf("\n");
            }
            printf("sign conflicts %.1f%% of the %.0f entries two or more models change\n",
                   100 * cJSON_GetObjectItemCaseSensitive(j, "sign_conflict")->valuedouble,
                   cJSON_GetObjectItemCaseSensitive(j, "overlap")->valuedouble);
        }
        int w = tensors ? 52 : 12;
        printf("\n%-*s", w, tensors ? "TENSOR" : "LAYER");
        for (int x = 0; x < k; x++) {
            char h[16];
            snprintf(h, sizeof h, "|tau%d|", x + 1);
            printf(" %9s", h);
        }
        if (k > 1) printf(" %9s %9s", "MEAN COS", "CONFLICT");
        printf("\n");
        const cJSON *g;
        cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(j, tensors ? "tensors" : "groups")) diff_row(g, k, w);
        cJSON_Delete(j);
    }
    free(out);
    store_close(st);
    return rc;
}

/* ---------------------------------------------------------------- amalgam sweep */

/* require("amalgam.merge")[fn](args), args on top of the stack, through the host (as
 * cmd_eval.c's run_lua): AM_OK, a negative code with the message, or an exit code reported */
static int run_merge_lua(lua_State *L, const char *fn) {
    lua_getglobal(L, "require");                             /* [args, require] */
    lua_pushliteral(L, "amalgam.merge");
    int st = am_docall(L, 1, 1);                             /* [args, M] */
    if (st != LUA_OK) {
        am_lua_report(L, st);
        return am_error(AM_EINVAL, "cannot load amalgam.merge");
    }
    lua_getfield(L, -1, fn);                                 /* [args, M, f] */
    lua_pushvalue(L, -3);
    st = am_lua_hostcall(L, 1, 3);                           /* [args, M, ok, msg, code] */
    fflush(stdout);
    if (st != LUA_OK || am_lua_interrupted(L)) return am_lua_finish(L, st);
    if (lua_toboolean(L, -3)) return AM_OK;
    const char *msg = lua_tostring(L, -2), *code = lua_tostring(L, -1);
    int rc = AM_EIO; /* the code named by its AM_ERRORS name (the codes run down from -32000) */
    for (int c = -32000; c >= -32100; c--)
        if (code && am_errname(c) && strcmp(am_errname(c), code) == 0) rc = c;
    return am_error(rc, "%s", msg ? msg : "failed");
}

/* a new Lua state for the store (AM_OK) with the args table on its stack */
static int lua_args(CliArgs *a, const char *what, lua_State **out) {
    *out = NULL;
    Store *probe = NULL;
    int rc;
    if ((rc = store_open(a->store_dir, AM_STORE_RDONLY, &probe)) == AM_OK) store_close(probe);
    if (rc) return rc;
    lua_State *L = am_lua_newstate(a->store_dir);
    if (!L) return am_error(AM_EINVAL, "%s: cannot start Lua", what);
    am_log_set_echo(AM_LOG_WARN);
    lua_createtable(L, 0, 16);
    *out = L;
    return AM_OK;
}

/* args.key = { the values of --opt, in order } (when given) */
static void lua_list_opt(lua_State *L, CliArgs *a, const char *opt, const char *key) {
    int n = 0;
    for (int i = 0; i < a->nopt; i++)
        if (strcmp(a->opt[i].name, opt) == 0) {
            a->opt[i].used = 1;
            if (!n++) lua_newtable(L);
            lua_pushstring(L, a->opt[i].value);
            lua_rawseti(L, -2, n);
        }
    if (n) lua_setfield(L, -2, key);
}

/* args.models (and args.weights when some MODEL:WEIGHT gives one) from the positional arguments */
static void lua_models(lua_State *L, CliArgs *a) {
    lua_createtable(L, a->npos, 0);
    int any_w = 0;
    for (int i = 0; i < a->npos; i++) {
        char *m;
        double w;
        int hw;
        split_weight(a->pos[i], &m, &w, &hw);
        any_w |= hw;
        lua_pushstring(L, m);
        lua_rawseti(L, -2, i + 1);
        free(m);
    }
    lua_setfield(L, -2, "models");
    if (!any_w) return;
    lua_createtable(L, a->npos, 0);
    for (int i = 0; i < a->npos; i++) {
        char *m;
        double w;
        int hw;
        split_weight(a->pos[i], &m, &w, &hw);
        lua_pushnumber(L, w);
        lua_rawseti(L, -2, i + 1);
        free(m);
    }
    lua_setfield(L, -2, "weights");
}

/* amalgam merge --method fisher|regmean|lm_cocktail|codiemb_fusion|self_positioning: through
 * lua/amalgam/merge.lua's cli_merge_data (the statistics need the trainer and the datasets) */
static int merge_data_cli(CliArgs *a, const char *method, cJSON *params, int nrules) {
    const char *base = cli_get(a, "base"), *name = cli_get(a, "name");
    int json = cli_flag(a, "json"), rc;
    lua_State *L = NULL;
    if (nrules) return am_error(AM_EINVAL, "merge: --rule is for the data-free methods (%s merges from data)", method);
    if (cli_flag(a, "materialize"))
        return am_error(AM_EINVAL, "merge: %s is always stored with its tensors (no --materialize)", method);
    if ((rc = lua_args(a, "merge", &L))) return rc;
    lua_pushstring(L, method);
    lua_setfield(L, -2, "method");
    if (base) lua_pushstring(L, base), lua_setfield(L, -2, "base");
    if (name) lua_pushstring(L, name), lua_setfield(L, -2, "name");
    lua_models(L, a);
    lua_list_opt(L, a, "data", "data");
    char *pj = cJSON_PrintUnformatted(params);
    lua_pushstring(L, pj);
    lua_setfield(L, -2, "params");
    free(pj);
    lua_pushboolean(L, json);
    lua_setfield(L, -2, "json");
    rc = run_merge_lua(L, "cli_merge_data");
    lua_close(L);
    return rc;
}

int cmd_sweep(CliArgs *a) {
    const char *method = cli_get(a, "method"), *base = cli_get(a, "base");
    cJSON *params = cJSON_CreateObject(), *grid = cJSON_CreateObject(), *rules = cJSON_CreateArray();
    const char *tasks[CLI_MAX_OPTS], *data[CLI_MAX_OPTS];
    int ntasks = 0, ndata = 0, rc = check_method(method), dm = is_data_method(method);
    for (int i = 0; i < a->nopt && !rc; i++) {
        CliOpt *o = &a->opt[i];
        if (strcmp(o->name, "set") == 0) o->used = 1, rc = parse_set_str(params, o->value, dm);
        else if (strcmp(o->name, "rule") == 0) o->used = 1, rc = parse_rule(rules, o->value);
        else if (strcmp(o->name, "data") == 0) {
            o->used = 1;
            if (!dm) rc = am_error(AM_EINVAL, "sweep: --data is for the data methods (fisher, regmean, lm_cocktail, self_positioning)");
            else if (ndata < CLI_MAX_OPTS) data[ndata++] = o->value;
        } else if (strcmp(o->name, "grid") == 0) {
            o->used = 1;
            if (!(rc = parse_set_str(grid, o->value, dm ? 2 : 0))) { /* a single value is a one-point list */
                cJSON *last = grid->child;
                while (last->next) last = last->next;
                if (!cJSON_IsArray(last)) {
                    cJSON *arr = cJSON_CreateArray();
                    cJSON_AddItemToArray(arr, cJSON_Duplicate(last, 1));
                    char *key = xstrdup(last->string);
                    cJSON_ReplaceItemInObjectCaseSensitive(grid, key, arr);
                    free(key);
                }
            }
        } else if (strcmp(o->name, "task") == 0) {
            o->used = 1;
            if (ntasks < CLI_MAX_OPTS) tasks[ntasks++] = o->value;
        }
    }
    const char *suite = cli_get(a, "suite"), *tag = cli_get(a, "tag");
    int no_eval = cli_flag(a, "no-eval"), json = cli_flag(a, "json");
    if (!rc) rc = cli_check_unused(a);
    if (!rc && (!method || a->npos == 0 || !grid->child))
        rc = am_error(AM_EINVAL, "sweep: usage: amalgam sweep --method M [--base B] MODEL[:WEIGHT]... --grid key=v1,v2,... "
                      "[--set k=v]... [--suite quick|default] [--task T]... [--no-eval] [--json]");
    Store *probe = NULL;
    if (!rc && (rc = store_open(a->store_dir, AM_STORE_RDONLY, &probe)) == AM_OK) store_close(probe);
    lua_State *L = NULL;
    if (!rc && !(L = am_lua_newstate(a->store_dir))) rc = am_error(AM_EINVAL, "sweep: cannot start Lua");
    if (!rc) {
        am_log_set_echo(AM_LOG_WARN);
        lua_createtable(L, 0, 12);
        lua_pushstring(L, method);
        lua_setfield(L, -2, "method");
        if (base) lua_pushstring(L, base), lua_setfield(L, -2, "base");
        lua_models(L, a);
        char *pj = cJSON_PrintUnformatted(params), *gj = cJSON_PrintUnformatted(grid);
        lua_pushstring(L, pj);
        lua_setfield(L, -2, "params");
        if (am_lua_pushjson(L, gj, strlen(gj)) == AM_OK) lua_setfield(L, -2, "grid");
        free(pj);
        free(gj);
        if (cJSON_GetArraySize(rules)) {
            char *rj = cJSON_PrintUnformatted(rules);
            if (am_lua_pushjson(L, rj, strlen(rj)) == AM_OK) lua_setfield(L, -2, "rules");
            free(rj);
        }
        if (ndata) {
            lua_createtable(L, ndata, 0);
            for (int i = 0; i < ndata; i++) lua_pushstring(L, data[i]), lua_rawseti(L, -2, i + 1);
            lua_setfield(L, -2, "data");
        }
        if (ntasks) {
            lua_createtable(L, ntasks, 0);
            for (int i = 0; i < ntasks; i++) lua_pushstring(L, tasks[i]), lua_rawseti(L, -2, i + 1);
            lua_setfield(L, -2, "tasks");
        }
        if (suite) lua_pushstring(L, suite), lua_setfield(L, -2, "suite");
        if (tag) lua_pushstring(L, tag), lua_setfield(L, -2, "tag");
        lua_pushboolean(L, no_eval);
        lua_setfield(L, -2, "no_eval");
        lua_pushboolean(L, json);
        lua_setfield(L, -2, "json");
        rc = run_merge_lua(L, "cli_sweep");
        lua_close(L);
    }
    cJSON_Delete(params);
    cJSON_Delete(grid);
    cJSON_Delete(rules);
    return rc;
}
