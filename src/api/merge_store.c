/* merge_store.c - merges of stored models: recipe, id, lineage, materialisation (merge_store.h). */
#define _GNU_SOURCE
#include "merge_store.h"
#include "am_base.h"
#include "store_recipe.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* merge_spec_set_option's names (merge.h), for the closest-name suggestion over both lists */
static const char *const option_names[] = {"normalize", "normalize_weights", "rescale", "paper", "seed", "eps",
                                           "max_iter", "tol", "nuslerp_flatten", "nuslerp_row_wise",
                                           "filter_wise", "threads", "int8_mask"};
#define N_OPTIONS (int)(sizeof option_names / sizeof option_names[0])

const char *const *merge_store_options(int *n) {
    *n = N_OPTIONS;
    return option_names;
}

static const char *jstr(const cJSON *j, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

/* ---------------------------------------------------------------- the canonical spec */

static int unknown_param(const char *method, const char *key) {
    const char *cands[MERGE_PARAM_COUNT + N_OPTIONS];
    int n = 0;
    for (int p = 0; p < MERGE_PARAM_COUNT; p++) cands[n++] = merge_param_name((MergeParam)p);
    for (int i = 0; i < N_OPTIONS; i++) cands[n++] = option_names[i];
    const char *best = merge_closest_name(key, cands, n);
    if (best) return am_error(AM_EINVAL, "merge %s: unknown parameter '%s' (did you mean '%s'?)", method, key, best);
    return am_error(AM_EINVAL, "merge %s: unknown parameter '%s' (parameters: weight, density, lambda, t, epsilon, "
                    "gamma; options: normalize, rescale, paper, seed, eps, max_iter, tol, nuslerp_flatten, "
                    "nuslerp_row_wise, filter_wise, threads)", method, key);
}

/* merge_spec_set_option's defaults (merge.h), so an option given at its default gives the same id */
typedef struct { const char *name; double def; int boolean; } OptionDefault;

static int option_default(const MergeMethodInfo *mi, const char *key, OptionDefault *r) {
    static const OptionDefault t[] = {{"normalize", 0, 1}, {"rescale", 0, 1}, {"paper", 0, 1}, {"seed", 0, 0},
                                {"eps", 1e-8, 0}, {"max_iter", 10, 0}, {"tol", 1e-5, 0}, {"nuslerp_flatten", 1, 1},
                                {"nuslerp_row_wise", 0, 1}, {"filter_wise", 0, 1}};
    if (strcmp(key, "normalize_weights") == 0) key = "normalize";
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(key, t[i].name) == 0) {
            *r = t[i];
            if (i == 0) r->def = mi->normalize;
            if (i == 1) r->def = mi->rescale;
            return 1;
        }
    return 0;
}

/* the shortest decimal that reads back as f ("0.15", not 0.15000000596) */
static double shortest(float f) {
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if ((float)strtod(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

/* o with its keys in byte order (the canonical form) */
static cJSON *sorted(cJSON *o) {
    cJSON *s = cJSON_CreateObject();
    while (o->child) {
        cJSON *min = o->child;
        for (cJSON *it = min->next; it; it = it->next)
            if (strcmp(it->string, min->string) < 0) min = it;
        char *k = xstrdup(min->string);
        cJSON_AddItemToObject(s, k, cJSON_DetachItemViaPointer(o, min));
        free(k);
    }
    cJSON_Delete(o);
    return s;
}

/* The params object of the request: checked against the method (names and values), as the
 * canonical object: sorted keys, every parameter the method reads (defaults filled in; a
 * one-value list is its value), options only where they differ from the default (as 0/1 for the
 * boolean ones; normalize_weights is normalize; threads and int8_mask left out).
 * spec (may be NULL) gets the rules and options. */
static int params_canonical(MergeMethod mm, const char *params_json, cJSON **out, MergeSpec *spec) {
    const char *mname = merge_method_name(mm);
    const MergeMethodInfo *mi = merge_method_info(mm);
    *out = NULL;
    cJSON *in = params_json && *params_json ? cJSON_Parse(params_json) : cJSON_CreateObject();
    if (!cJSON_IsObject(in)) {
        cJSON_Delete(in);
        return am_error(AM_EINVAL, "merge %s: parameters must be a JSON object", mname);
    }
    cJSON *o = cJSON_CreateObject();
    int rc = AM_OK;
    MergeSpec local, *ms = spec;
    if (!ms) {
        merge_spec_init(&local, mm);
        ms = &local;
    }
    for (const cJSON *v = in->child; v && !rc; v = v->next) {
        const char *key = v->string;
        MergeParam p;
        int is_param = merge_param_from_name(key, &p) == AM_OK;
        am_clearerror();
        int is_option = 0;
        for (int q = 0; q < N_OPTIONS; q++) is_option |= strcmp(key, option_names[q]) == 0;
        if (!is_param && !is_option) { rc = unknown_param(mname, key); break; }
        if (is_param && p == MERGE_P_WEIGHT) {
            rc = am_error(AM_EINVAL, "merge %s: give the weights per model (MODEL:WEIGHT, or weights = {...})", mname);
            break;
        }
        if (is_param && !(mi->params & (1u << p))) {
            char reads[128] = "";
            for (int q = 0; q < MERGE_PARAM_COUNT; q++)
                if (mi->params & (1u << q)) {
                    size_t l = strlen(reads);
                    snprintf(reads + l, sizeof reads - l, "%s%s", l ? ", " : "", merge_param_name((MergeParam)q));
                }
            rc = am_error(AM_EINVAL, "merge %s: the method has no parameter '%s' (it reads: %s)", mname, key,
                          reads[0] ? reads : "none");
            break;
        }
        float vals[64];
        int nv = 0;
        if (cJSON_IsBool(v)) vals[nv++] = cJSON_IsTrue(v) ? 1.0f : 0.0f;
        else if (cJSON_IsNumber(v)) vals[nv++] = (float)v->valuedouble;
        else if (cJSON_IsArray(v) && is_param) {
            const cJSON *e;
            cJSON_ArrayForEach(e, v) {
                if (!cJSON_IsNumber(e) || nv == 64) { nv = -1; break; }
                vals[nv++] = (float)e->valuedouble;
            }
        } else nv = -1;
        if (nv <= 0) {
            rc = am_error(AM_EINVAL, "merge %s: parameter '%s' must be a number%s", mname, key,
                          is_param ? " or a list of 1..64 numbers (a gradient over the layers)" : " or a boolean");
            break;
        }
        for (int q = 0; q < nv && !rc; q++)
            if (!isfinite(vals[q])) rc = am_error(AM_EINVAL, "merge %s: parameter '%s' is not finite", mname, key);
        if (rc) break;
        double x = cJSON_IsBool(v) ? (cJSON_IsTrue(v) ? 1 : 0) : cJSON_IsNumber(v) ? v->valuedouble : 0;
        /* the values are checked here too, so a bad one fails before anything is computed */
        if (is_param) rc = merge_spec_set(ms, p, -1, 0, "", vals, nv);
        else rc = merge_spec_set_option(ms, key, x);
        if (rc) break;
        /* canonical: the full parameters, options only where they differ from the default */
        if (is_param) {
            if (nv == 1) cJSON_AddNumberToObject(o, key, cJSON_IsNumber(v) ? v->valuedouble : cJSON_GetArrayItem(v, 0)->valuedouble);
            else cJSON_AddItemToObject(o, key, cJSON_Duplicate(v, 1));
            continue;
        }
        OptionDefault od;
        if (!option_default(mi, key, &od)) continue; /* threads, int8_mask: the result is the same */
        if (od.boolean) x = x != 0;
        if (x == od.def) continue;
        if (cJSON_GetObjectItemCaseSensitive(o, od.name)) {
            rc = am_error(AM_EINVAL, "merge %s: option '%s' given twice (normalize_weights is normalize)", mname, od.name);
            break;
        }
        cJSON_AddNumberToObject(o, od.name, x);
    }
    for (int q = 0; q < MERGE_PARAM_COUNT && !rc; q++) { /* the defaults of the parameters it reads */
        const char *pn = merge_param_name((MergeParam)q);
        float d = merge_param_default(mm, (MergeParam)q);
        if (q == MERGE_P_WEIGHT || !(mi->params & (1u << q)) || isnan(d) || cJSON_GetObjectItemCaseSensitive(o, pn)) continue;
        cJSON_AddNumberToObject(o, pn, shortest(d));
    }
    cJSON_Delete(in);
    if (ms == &local) merge_spec_free(&local);
    if (rc) {
        cJSON_Delete(o);
        return rc;
    }
    *out = sorted(o);
    return AM_OK;
}

/* The rules of a request (a JSON array of {param, model, classes, pattern, value}) checked and
 * canonical: {classes: [names], model: k (1-based), param, pattern, value}, keys left out when
 * they say "all"; the order is kept (the last matching rule wins). ms (may be NULL) gets them. */
static int rules_canonical(MergeMethod mm, int n_models, const cJSON *in, cJSON **out, MergeSpec *ms) {
    static const char *const cls_names[] = {"embeddings", "attention", "ffn", "layernorm", "pooler", "head"};
    const char *mname = merge_method_name(mm);
    const MergeMethodInfo *mi = merge_method_info(mm);
    *out = NULL;
    if (!cJSON_IsArray(in)) return am_error(AM_EINVAL, "merge %s: rules must be a list", mname);
    cJSON *o = cJSON_CreateArray();
    int rc = AM_OK, i = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, in) {
        i++;
        const cJSON *jp = cJSON_GetObjectItemCaseSensitive(r, "param"), *jm = cJSON_GetObjectItemCaseSensitive(r, "model"),
                    *jc = cJSON_GetObjectItemCaseSensitive(r, "classes"), *jt = cJSON_GetObjectItemCaseSensitive(r, "pattern"),
                    *jv = cJSON_GetObjectItemCaseSensitive(r, "value");
        for (const cJSON *k = cJSON_IsObject(r) ? r->child : NULL; k && !rc; k = k->next)
            if (strcmp(k->string, "param") && strcmp(k->string, "model") && strcmp(k->string, "classes") &&
                strcmp(k->string, "pattern") && strcmp(k->string, "value"))
                rc = am_error(AM_EINVAL, "merge %s: rule %d: unknown key '%s' (param, model, classes, pattern, value)",
                              mname, i, k->string);
        if (rc) break;
        MergeParam p;
        if (!cJSON_IsObject(r) || !cJSON_IsString(jp)) {
            rc = am_error(AM_EINVAL, "merge %s: rule %d must be {param =, value =, [model =, classes =, pattern =]}", mname, i);
            break;
        }
        if ((rc = merge_param_from_name(jp->valuestring, &p))) { rc = am_error_wrap(rc, "merge %s: rule %d", mname, i); break; }
        if (!(mi->params & (1u << p))) {
            rc = am_error(AM_EINVAL, "merge %s: rule %d: the method has no parameter '%s'", mname, i, jp->valuestring);
            break;
        }
        int model = 0;
        if (jm && !(cJSON_IsNumber(jm) && jm->valuedouble == (int)jm->valuedouble && jm->valueint >= 1 && jm->valueint <= n_models)) {
            rc = am_error(AM_EINVAL, "merge %s: rule %d: model must be 1..%d (the position in the models list)", mname, i, n_models);
            break;
        }
        if (jm) model = jm->valueint;
        unsigned classes = 0;
        const cJSON *c;
        if (cJSON_IsString(jc)) rc = merge_class_from_name(jc->valuestring, &classes);
        else if (cJSON_IsArray(jc)) {
            cJSON_ArrayForEach(c, jc) {
                unsigned b;
                if (!cJSON_IsString(c)) { rc = am_error(AM_EINVAL, "class names expected"); break; }
                if ((rc = merge_class_from_name(c->valuestring, &b))) break;
                classes |= b;
            }
        } else if (jc) rc = am_error(AM_EINVAL, "classes must be a class name or a list of them");
        if (rc) { rc = am_error_wrap(rc, "merge %s: rule %d", mname, i); break; }
        if (jt && (!cJSON_IsString(jt) || strlen(jt->valuestring) >= AM_NAME_MAX)) {
            rc = am_error(AM_EINVAL, "merge %s: rule %d: pattern must be a tensor name pattern (shorter than %d)", mname, i, AM_NAME_MAX);
            break;
        }
        float vals[64];
        int nv = 0;
        if (cJSON_IsNumber(jv)) vals[nv++] = (float)jv->valuedouble;
        else if (cJSON_IsArray(jv)) {
            const cJSON *e;
            cJSON_ArrayForEach(e, jv) {
                if (!cJSON_IsNumber(e) || nv == 64) { nv = -1; break; }
                vals[nv++] = (float)e->valuedouble;
            }
        }
        for (int q = 0; q < nv; q++) if (!isfinite(vals[q])) nv = -1;
        if (nv <= 0) {
            rc = am_error(AM_EINVAL, "merge %s: rule %d: value must be a number or a list of 1..64 numbers", mname, i);
            break;
        }
        const char *pattern = cJSON_IsString(jt) ? jt->valuestring : "";
        if (ms && (rc = merge_spec_set(ms, p, model - 1, classes, pattern, vals, nv))) break;
        cJSON *x = cJSON_CreateObject();
        if (classes) {
            cJSON *cl = cJSON_AddArrayToObject(x, "classes");
            for (int b = 0; b < 6; b++) if (classes & (1u << b)) cJSON_AddItemToArray(cl, cJSON_CreateString(cls_names[b]));
        }
        if (model) cJSON_AddNumberToObject(x, "model", model);
        cJSON_AddStringToObject(x, "param", merge_param_name(p));
        if (pattern[0]) cJSON_AddStringToObject(x, "pattern", pattern);
        if (nv == 1) cJSON_AddNumberToObject(x, "value", cJSON_IsNumber(jv) ? jv->valuedouble : cJSON_GetArrayItem(jv, 0)->valuedouble);
        else cJSON_AddItemToObject(x, "value", cJSON_Duplicate(jv, 1));
        cJSON_AddItemToArray(o, x);
    }
    if (rc) {
        cJSON_Delete(o);
        return rc;
    }
    *out = o;
    return AM_OK;
}

/* id of a canonical spec string */
static void recipe_id(const char *spec, char id[AM_ID_HEX + 1]) {
    AmHasher *h = am_hasher_new();
    am_hasher_update(h, "amalgam-merge-v1", 17);
    am_hasher_update(h, spec, strlen(spec));
    am_hasher_hex(h, id);
    am_hasher_delete(h);
}

/* The checks that need no tensors, and the canonical spec object (ids resolved). */
static int request_spec(Store *st, const MergeRequest *r, cJSON **out) {
    *out = NULL;
    MergeMethod mm;
    int rc;
    if (!r->method || !*r->method)
        return am_error(AM_EINVAL, "merge: a method is required (e.g. linear, task_arithmetic, ties, slerp)");
    if ((rc = merge_method_from_name(r->method, &mm))) return rc;
    const MergeMethodInfo *mi = merge_method_info(mm);
    if (mi->base == MERGE_BASE_REQUIRED && !r->base)
        return am_error(AM_EINVAL, "merge %s: the method needs a base model (--base B, or base = in Lua): the "
                        "model the others were fine-tuned from", mi->name);
    if (mi->base == MERGE_BASE_NONE && r->base)
        return am_error(AM_EINVAL, "merge %s: the method takes no base model (drop --base / base =)", mi->name);
    if (r->n < mi->min_models || (mi->max_models && r->n > mi->max_models)) {
        if (mi->min_models == mi->max_models)
            return am_error(AM_EINVAL, "merge %s: needs exactly %d models besides the base, got %d", mi->name,
                            mi->min_models, r->n);
        return am_error(AM_EINVAL, "merge %s: needs at least %d models besides the base, got %d", mi->name,
                        mi->min_models, r->n);
    }
    if (r->weights) {
        int nonzero = 0;
        for (int i = 0; i < r->n; i++) {
            if (!isfinite(r->weights[i]))
                return am_error(AM_EINVAL, "merge %s: the weight of model %d (%s) is not finite", mi->name, i + 1,
                                r->models[i]);
            nonzero |= r->weights[i] != 0;
        }
        if (!nonzero && (mi->params & (1u << MERGE_P_WEIGHT)))
            return am_error(AM_EINVAL, "merge %s: all weights are zero (nothing to merge)", mi->name);
    }
    cJSON *params = NULL;
    if ((rc = params_canonical(mm, r->params_json, &params, NULL))) return rc;
    cJSON *o = cJSON_CreateObject();
    char id[AM_ID_HEX + 1];
    if (r->base) {
        if ((rc = store_resolve(st, r->base, id))) {
            cJSON_Delete(o);
            cJSON_Delete(params);
            return am_error_wrap(rc, "merge %s: base", mi->name);
        }
        cJSON_AddStringToObject(o, "base", id);
    } else cJSON_AddNullToObject(o, "base");
    cJSON_AddStringToObject(o, "method", mi->name);
    cJSON *models = cJSON_AddArrayToObject(o, "models");
    for (int i = 0; i < r->n; i++) {
        if ((rc = store_resolve(st, r->models[i], id))) {
            cJSON_Delete(o);
            cJSON_Delete(params);
            return am_error_wrap(rc, "merge %s: model %d", mi->name, i + 1);
        }
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", id);
        cJSON_AddNumberToObject(m, "weight", r->weights ? r->weights[i] : 1.0);
        cJSON_AddItemToArray(models, m);
    }
    cJSON_AddItemToObject(o, "params", params);
    if (r->rules_json && *r->rules_json) { /* only when there are rules: the ids of plain merges stay */
        cJSON *in = cJSON_Parse(r->rules_json), *rules = NULL;
        rc = in ? rules_canonical(mm, r->n, in, &rules, NULL) : am_error(AM_EINVAL, "merge %s: rules are not JSON", mi->name);
        cJSON_Delete(in);
        if (rc) {
            cJSON_Delete(o);
            return rc;
        }
        if (cJSON_GetArraySize(rules)) cJSON_AddItemToObject(o, "rules", rules);
        else cJSON_Delete(rules);
    }
    *out = o;
    return AM_OK;
}

int merge_store_recipe(Store *st, const MergeRequest *r, char **spec_json, char id_out[AM_ID_HEX + 1]) {
    cJSON *o = NULL;
    int rc = request_spec(st, r, &o);
    if (rc) return rc;
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    AM_ASSERT(s != NULL);
    recipe_id(s, id_out);
    if (spec_json) *spec_json = s;
    else free(s);
    return AM_OK;
}

/* ---------------------------------------------------------------- loading the inputs */

static int meta_of(Store *st, const char *id, cJSON **out) {
    char *m = NULL;
    *out = NULL;
    int rc = store_model_meta(st, id, &m);
    if (rc) return rc;
    *out = cJSON_Parse(m);
    free(m);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return am_error(AM_EFORMAT, "model %s: meta is not a JSON object", id);
    }
    return AM_OK;
}

static int model_exists(Store *st, const char *id) {
    char *m = NULL;
    int rc = store_model_meta(st, id, &m);
    free(m);
    return rc != AM_ENOTFOUND;
}

int merge_store_is_recipe(Store *st, const char *id) {
    cJSON *m = NULL;
    if (meta_of(st, id, &m)) {
        am_clearerror();
        return 0;
    }
    int r = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "recipe_only"));
    cJSON_Delete(m);
    return r;
}

/* m without its MLM head (the head is at the end of the buffer, model.h) */
static int strip_head(Model **m) {
    if (!(*m)->cfg.has_mlm_head) return AM_OK;
    EncoderConfig c = (*m)->cfg;
    c.has_mlm_head = 0;
    Model *e = NULL;
    int rc = model_new(&c, &e);
    if (rc) return rc;
    memcpy(e->params, (*m)->params, e->tab.total * sizeof(float));
    model_delete(*m);
    *m = e;
    return AM_OK;
}

typedef struct { const char *id; char name[128]; } FirstName;

static int first_name(void *ud, const void *key, size_t klen, const void *val, size_t vlen) {
    FirstName *f = ud;
    if (vlen != AM_ID_HEX || memcmp(val, f->id, AM_ID_HEX) != 0 || klen >= sizeof f->name) return 0;
    memcpy(f->name, key, klen);
    f->name[klen] = 0;
    return 1;
}

/* "name (id prefix)" or the id prefix, for messages */
static char *label_of(Store *st, const char *id) {
    FirstName f = {.id = id, .name = ""};
    if (store_iter(st, "names", NULL, 0, first_name, &f)) am_clearerror();
    char buf[160];
    if (f.name[0]) snprintf(buf, sizeof buf, "%s (%.12s)", f.name, id);
    else snprintf(buf, sizeof buf, "%.12s", id);
    return xstrdup(buf);
}

static int compute(Store *st, const cJSON *spec, int depth, Model **out, char **vocab, size_t *vlen, MergeStats *stats,
                   cJSON **first_meta);

/* ---------------------------------------------------------------- the last computed merge
 * A recipe is computed where it is used; a sweep merges a point and then evaluates it, a Lua
 * handle opened on a new merge loads it: the last result is kept (one copy, per process) so the
 * second use copies instead of merging again. Keyed by id alone: a recipe id names its content. */
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { char id[AM_ID_HEX + 1]; Model *m; char *vocab; size_t vlen; } cache;
static MergeStoreCounts counts; /* under cache_mu */

void merge_store_counts(MergeStoreCounts *c) {
    pthread_mutex_lock(&cache_mu);
    *c = counts;
    pthread_mutex_unlock(&cache_mu);
}

static void count(size_t *field) {
    pthread_mutex_lock(&cache_mu);
    (*field)++;
    pthread_mutex_unlock(&cache_mu);
}

static Model *model_copy(const Model *m) {
    Model *c = NULL;
    if (model_new(&m->cfg, &c)) return NULL;
    memcpy(c->params, m->params, m->tab.total * sizeof(float));
    return c;
}

static void cache_put(const char *id, const Model *m, const char *vocab, size_t vlen) {
    Model *c = model_copy(m);
    if (!c) {
        am_clearerror();
        return;
    }
    pthread_mutex_lock(&cache_mu);
    model_delete(cache.m);
    free(cache.vocab);
    snprintf(cache.id, sizeof cache.id, "%s", id);
    cache.m = c;
    cache.vocab = vlen ? xmalloc(vlen + 1) : NULL;
    if (vlen) {
        memcpy(cache.vocab, vocab, vlen);
        cache.vocab[vlen] = 0;
    }
    cache.vlen = vlen;
    pthread_mutex_unlock(&cache_mu);
}

static int cache_get(const char *id, Model **m, char **vocab, size_t *vlen) {
    int hit = 0;
    pthread_mutex_lock(&cache_mu);
    if (cache.m && strcmp(cache.id, id) == 0 && (*m = model_copy(cache.m))) {
        hit = 1;
        counts.reused++;
        *vlen = cache.vlen;
        *vocab = NULL;
        if (cache.vlen) {
            *vocab = xmalloc(cache.vlen + 1);
            memcpy(*vocab, cache.vocab, cache.vlen + 1);
        }
    }
    pthread_mutex_unlock(&cache_mu);
    if (!hit) am_clearerror();
    return hit;
}

/* The full weights of stored model id: its tensors; a task vector plus its parent; a recipe computed. */
static int load_full(Store *st, const char *id, int depth, Model **out, char **vocab, size_t *vlen) {
    *out = NULL;
    *vocab = NULL;
    *vlen = 0;
    if (depth > 32) return am_error(AM_EINVAL, "merge: lineage deeper than 32 models at %.12s (a cycle?)", id);
    cJSON *meta = NULL;
    int rc = meta_of(st, id, &meta);
    if (rc) return rc;
    const char *kind = jstr(meta, "kind");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meta, "recipe_only")) && cache_get(id, out, vocab, vlen)) {
        rc = AM_OK;
    } else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meta, "recipe_only"))) {
        rc = compute(st, cJSON_GetObjectItemCaseSensitive(meta, "merge"), depth + 1, out, vocab, vlen, NULL, NULL);
        const char *want = jstr(meta, "content");
        if (!rc && want) {
            char got[AM_ID_HEX + 1];
            store_model_id(*out, *vocab, *vlen, got);
            if (strcmp(got, want) != 0)
                rc = am_error(AM_EFORMAT, "merged model %.12s: recomputed content %.12s differs from the recorded "
                              "%.12s (an input changed?)", id, got, want);
        }
        if (!rc) cache_put(id, *out, *vocab, *vlen);
    } else if ((rc = store_model_get(st, id, out, NULL, vocab, vlen)) == AM_OK && kind &&
               (strcmp(kind, "task_vector") == 0 || strcmp(kind, "lora") == 0)) {
        /* θ = θ0 + τ, θ0 the model the run started from */
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(meta, "parents");
        const char *pid = jstr(cJSON_GetArrayItem(ps, 0), "id");
        Model *b = NULL;
        char *bv = NULL;
        size_t bl = 0;
        if (!pid) rc = am_error(AM_EFORMAT, "task vector %.12s names no parent model (θ0)", id);
        else if ((rc = load_full(st, pid, depth + 1, &b, &bv, &bl)))
            rc = am_error_wrap(rc, "task vector %.12s: its base model %.12s", id, pid);
        else if ((*out)->cfg.has_mlm_head || (rc = strip_head(&b))) {
            if (!rc) rc = am_error(AM_EFORMAT, "task vector %.12s has an MLM head", id);
        } else if (b->tab.total != (*out)->tab.total) {
            rc = am_error(AM_ESHAPE, "task vector %.12s and its base %.12s have different shapes", id, pid);
        } else {
            for (size_t i = 0; i < b->tab.total; i++) (*out)->params[i] += b->params[i];
        }
        model_delete(b);
        free(bv);
    }
    cJSON_Delete(meta);
    if (rc) {
        model_delete(*out);
        free(*vocab);
        *out = NULL;
        *vocab = NULL;
        *vlen = 0;
    }
    return rc;
}

/* Run a canonical spec: load the inputs, check vocabularies, merge. first_meta (may be NULL)
 * gets the first model's meta (pooling and tokenizer keys). */
static int compute(Store *st, const cJSON *spec, int depth, Model **out, char **vocab, size_t *vlen, MergeStats *stats,
                   cJSON **first_meta) {
    *out = NULL;
    *vocab = NULL;
    *vlen = 0;
    if (first_meta) *first_meta = NULL;
    const char *method = jstr(spec, "method");
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(spec, "models");
    if (!method || !cJSON_IsArray(models)) return am_error(AM_EFORMAT, "merge recipe: no method or models");
    MergeMethod mm;
    int rc = merge_method_from_name(method, &mm);
    if (rc) return rc;
    MergeSpec ms;
    merge_spec_init(&ms, mm);
    cJSON *params = NULL;
    char *pj = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(spec, "params"));
    rc = params_canonical(mm, pj, &params, &ms);
    free(pj);
    cJSON_Delete(params);
    int k = cJSON_GetArraySize(models);
    Model **in = xcalloc((size_t)k + 1, sizeof *in);
    char **names = xcalloc((size_t)k + 1, sizeof *names);
    Model *base = NULL, *res = NULL;
    char *bvocab = NULL, *v0 = NULL;
    size_t bl = 0, l0 = 0;
    int heads = 1;
    const char *base_id = jstr(spec, "base");
    for (int i = 0; i < k && !rc; i++) {
        const cJSON *e = cJSON_GetArrayItem(models, i);
        const char *id = jstr(e, "id");
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(e, "weight");
        if (!id || !cJSON_IsNumber(w)) { rc = am_error(AM_EFORMAT, "merge recipe: model %d has no id or weight", i + 1); break; }
        names[i] = label_of(st, id);
        float wf = (float)w->valuedouble;
        if ((rc = merge_spec_set(&ms, MERGE_P_WEIGHT, i, 0, "", &wf, 1))) break;
        char *vt = NULL;
        size_t vl = 0;
        if ((rc = load_full(st, id, depth, &in[i], &vt, &vl))) {
            if (rc == AM_ENOTFOUND && !model_exists(st, id))
                rc = am_error(AM_ENOTFOUND, "merge: input %d (%.12s) is no longer in the store (amalgam rm --force?), "
                              "so this merge cannot be computed", i + 1, id);
            break;
        }
        if (i == 0) {
            v0 = vt;
            l0 = vl;
            if (first_meta && (rc = meta_of(st, id, first_meta))) break;
        } else {
            int same = vl == l0 && (vl == 0 || memcmp(vt, v0, vl) == 0);
            free(vt);
            if (!same) {
                rc = am_error(AM_EVOCAB, "merge: model %d (%.12s) has a different vocabulary than model 1 (%.12s)", i + 1,
                              id, jstr(cJSON_GetArrayItem(models, 0), "id"));
                break;
            }
        }
        heads &= in[i]->cfg.has_mlm_head;
    }
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(spec, "rules");
    if (!rc && rules) { /* after the weights: the more specific rules win */
        cJSON *tmp = NULL;
        rc = rules_canonical(mm, k, rules, &tmp, &ms);
        cJSON_Delete(tmp);
    }
    if (!rc && base_id) {
        if ((rc = load_full(st, base_id, depth, &base, &bvocab, &bl))) {
            if (rc == AM_ENOTFOUND && !model_exists(st, base_id))
                rc = am_error(AM_ENOTFOUND, "merge: the base (%.12s) is no longer in the store (amalgam rm --force?), "
                              "so this merge cannot be computed", base_id);
            else rc = am_error_wrap(rc, "merge: base");
        }
        else if (bl != l0 || (bl && memcmp(bvocab, v0, bl) != 0))
            rc = am_error(AM_EVOCAB, "merge: the base (%.12s) has a different vocabulary than model 1", base_id);
        if (base) heads &= base->cfg.has_mlm_head;
    }
    /* a NaN/Inf in any input is an error, also where a method would trim it away */
    for (int i = 0; i <= k && !rc; i++) {
        const Model *x = i < k ? in[i] : base;
        if (!x) continue;
        for (int t = 0; t < x->tab.n && !rc; t++) {
            const ParamInfo *p = &x->tab.t[t];
            const float *v = x->params + p->offset;
            for (size_t e = 0; e < p->numel; e++)
                if (!isfinite(v[e])) {
                    char *blab = i < k ? NULL : label_of(st, base_id);
                    rc = am_error(AM_EFORMAT, "merge: %s%s has a%s in tensor %s (element %zu)", i < k ? "" : "the base ",
                                  i < k ? names[i] : blab, isnan(v[e]) ? " NaN" : "n Inf", p->name, e);
                    free(blab);
                    break;
                }
        }
    }
    /* a rule's pattern that matches no tensor is a typo, not a no-op */
    const cJSON *rule;
    cJSON_ArrayForEach(rule, rules) {
        const char *pat = jstr(rule, "pattern");
        if (rc || !pat || !in[0]) continue;
        int hit = 0;
        for (int t = 0; t < in[0]->tab.n && !hit; t++) {
            const char *tn = in[0]->tab.t[t].name;
            hit = strchr(pat, '*') ? fnmatch(pat, tn, 0) == 0 : strstr(tn, pat) != NULL;
        }
        if (!hit) {
            static const char *const cls[] = {"embeddings", "attention", "ffn", "mlp", "layernorm", "norm", "pooler", "head"};
            const char *c = merge_closest_name(pat, cls, 8);
            char hint[80] = "";
            if (c) snprintf(hint, sizeof hint, " (did you mean the class '%s'?)", c);
            rc = am_error(AM_EINVAL, "merge %s: the rule pattern '%s' matches no tensor%s", method, pat, hint);
        }
    }
    /* an input without an MLM head (a task vector, an imported encoder): merge the encoders */
    for (int i = 0; i < k && !rc && !heads; i++) rc = strip_head(&in[i]);
    if (!rc && base && !heads) rc = strip_head(&base);
    if (!rc) rc = model_new(&in[0]->cfg, &res);
    if (!rc) {
        MergeStats s0;
        rc = merge_models(&ms, in, (const char *const *)names, k, base, res, stats ? stats : &s0);
        count(&counts.computed);
    }
    for (int i = 0; i < k; i++) {
        model_delete(in[i]);
        free(names[i]);
    }
    free(in);
    free(names);
    model_delete(base);
    free(bvocab);
    merge_spec_free(&ms);
    if (rc) {
        model_delete(res);
        free(v0);
        if (first_meta) {
            cJSON_Delete(*first_meta);
            *first_meta = NULL;
        }
        return rc;
    }
    *out = res;
    *vocab = v0;
    *vlen = l0;
    return AM_OK;
}

int merge_store_load_weights(Store *st, const char *id, Model **m, char **vocab, size_t *vocab_len) {
    char *v = NULL;
    size_t vl = 0;
    int rc = load_full(st, id, 0, m, &v, &vl);
    if (vocab) *vocab = v;
    else free(v);
    if (vocab_len) *vocab_len = vl;
    return rc;
}

int merge_store_load(Store *st, const char *id, Model **m, char **vocab, size_t *vocab_len) {
    char *v = NULL;
    size_t vl = 0;
    *m = NULL;
    int rc;
    if (merge_store_is_recipe(st, id)) rc = load_full(st, id, 0, m, &v, &vl);
    else rc = store_model_get(st, id, m, NULL, &v, &vl);
    if (vocab) *vocab = v;
    else free(v);
    if (vocab_len) *vocab_len = vl;
    return rc;
}

/* ---------------------------------------------------------------- storing */

/* The stored meta of a merge: the first model's embedding keys + kind, parents, base, spec. */
static char *merged_meta(const cJSON *spec, const cJSON *first, const char *name, const char *source,
                         const MergeStats *st) {
    cJSON *j = cJSON_CreateObject();
    if (name) cJSON_AddStringToObject(j, "name", name);
    cJSON_AddStringToObject(j, "kind", "merged");
    static const char *const keep[] = {"pooling", "normalize", "max_seq_length", "do_lower_case", "strip_accents"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(first, keep[i]);
        if (x) cJSON_AddItemToObject(j, keep[i], cJSON_Duplicate(x, 1));
    }
    if (source) cJSON_AddStringToObject(j, "source", source);
    cJSON *parents = cJSON_AddArrayToObject(j, "parents");
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(spec, "models")) cJSON_AddItemToArray(parents, cJSON_Duplicate(e, 1));
    const char *base = jstr(spec, "base");
    if (base) cJSON_AddStringToObject(j, "base", base);
    cJSON_AddItemToObject(j, "merge", cJSON_Duplicate(spec, 1));
    /* what the method did: how much of the task vectors it kept, how many entries voted down */
    cJSON *x = cJSON_AddObjectToObject(j, "merge_stats");
    cJSON_AddNumberToObject(x, "seconds", st->seconds);
    if (st->delta_total) {
        cJSON_AddNumberToObject(x, "delta_total", (double)st->delta_total);
        cJSON_AddNumberToObject(x, "delta_kept", (double)st->delta_kept);
    }
    if (st->sign_conflicts) cJSON_AddNumberToObject(x, "sign_conflicts", (double)st->sign_conflicts);
    if (st->lerp_fallbacks) cJSON_AddNumberToObject(x, "lerp_fallbacks", (double)st->lerp_fallbacks);
    if (st->karcher_iters) cJSON_AddNumberToObject(x, "karcher_iters", st->karcher_iters);
    if (st->model_stock_t != 0) cJSON_AddNumberToObject(x, "model_stock_t", st->model_stock_t);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    AM_ASSERT(s != NULL);
    return s;
}

int merge_store_merge(Store *st, const MergeRequest *r, MergeResult *out) {
    memset(out, 0, sizeof *out);
    cJSON *spec = NULL;
    int rc = request_spec(st, r, &spec);
    if (rc) return rc;
    char *s = cJSON_PrintUnformatted(spec);
    recipe_id(s, out->id);
    free(s);
    cJSON *have = NULL;
    if (meta_of(st, out->id, &have) == AM_OK) { /* the same merge is stored: nothing to compute */
        int recipe = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(have, "recipe_only"));
        cJSON_Delete(have);
        cJSON_Delete(spec);
        out->found = 1;
        out->stored_tensors = !recipe;
        if (r->name) rc = merge_store_name(st, r->name, out->id);
        else if (r->materialize && recipe) rc = merge_store_name(st, NULL, out->id);
        if (!rc && (r->name || r->materialize)) out->stored_tensors = 1;
        return rc;
    }
    am_clearerror();
    Model *m = NULL;
    char *vocab = NULL;
    size_t vlen = 0;
    cJSON *first = NULL;
    if ((rc = compute(st, spec, 0, &m, &vocab, &vlen, &out->stats, &first))) {
        cJSON_Delete(spec);
        return rc;
    }
    char *meta = merged_meta(spec, first, r->name, r->source, &out->stats);
    int tensors = r->name || r->materialize;
    rc = store_merged_put(st, out->id, m, meta, vocab, vlen, !tensors);
    if (!rc && !tensors) cache_put(out->id, m, vocab, vlen);
    free(meta);
    free(vocab);
    cJSON_Delete(first);
    cJSON_Delete(spec);
    if (rc) {
        model_delete(m);
        return rc;
    }
    out->stored_tensors = tensors;
    out->model = m;
    return AM_OK;
}

int merge_store_name(Store *st, const char *name, const char *id) {
    cJSON *meta = NULL;
    int rc = meta_of(st, id, &meta);
    if (rc) return rc;
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meta, "recipe_only"))) {
        cJSON_Delete(meta);
        return name ? store_name_set(st, name, id) : AM_OK;
    }
    /* saving a recipe by name stores its tensors: the same meta, with them */
    Model *m = NULL;
    char *vocab = NULL;
    size_t vlen = 0;
    if ((rc = load_full(st, id, 0, &m, &vocab, &vlen)) == AM_OK) {
        static const char *const derived[] = {"format", "id", "config", "has_pooler", "vocab", "n_params",
                                              "n_tensors", "recipe_only", "content", "name"};
        for (size_t i = 0; i < sizeof derived / sizeof derived[0]; i++)
            cJSON_DeleteItemFromObjectCaseSensitive(meta, derived[i]);
        if (name) cJSON_AddStringToObject(meta, "name", name);
        char *mj = cJSON_PrintUnformatted(meta);
        rc = store_merged_put(st, id, m, mj, vocab, vlen, 0);
        free(mj);
    }
    model_delete(m);
    free(vocab);
    cJSON_Delete(meta);
    return rc;
}
