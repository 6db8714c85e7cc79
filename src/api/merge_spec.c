/* merge_spec.c - the canonical merge spec of a request (merge_store.h): the checks that need no
 * tensors (method, base, model count, weights, parameter and option names and values, rules), the
 * canonical JSON object (sorted keys, defaults filled in, ids resolved) and the recipe id hashed from
 * it. merge_store.c materialises and stores what this file describes. */
#include "merge_store.h"
#include "merge_store_internal.h"
#include "am_base.h"

#include <cjson/cJSON.h>
#include <math.h>
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

const char *merge_store_jstr(const cJSON *j, const char *k) {
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
int merge_store_params_canonical(MergeMethod mm, const char *params_json, cJSON **out, MergeSpec *spec) {
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
int merge_store_rules_canonical(MergeMethod mm, int n_models, const cJSON *in, cJSON **out, MergeSpec *ms) {
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
void merge_store_recipe_id(const char *spec, char id[AM_ID_HEX + 1]) {
    AmHasher *h = am_hasher_new();
    am_hasher_update(h, "amalgam-merge-v1", 17);
    am_hasher_update(h, spec, strlen(spec));
    am_hasher_hex(h, id);
    am_hasher_delete(h);
}

/* The checks that need no tensors, and the canonical spec object (ids resolved). */
int merge_store_request_spec(Store *st, const MergeRequest *r, cJSON **out) {
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
    if ((rc = merge_store_params_canonical(mm, r->params_json, &params, NULL))) return rc;
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
        rc = in ? merge_store_rules_canonical(mm, r->n, in, &rules, NULL) : am_error(AM_EINVAL, "merge %s: rules are not JSON", mi->name);
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
    int rc = merge_store_request_spec(st, r, &o);
    if (rc) return rc;
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    AM_ASSERT(s != NULL);
    merge_store_recipe_id(s, id_out);
    if (spec_json) *spec_json = s;
    else free(s);
    return AM_OK;
}
