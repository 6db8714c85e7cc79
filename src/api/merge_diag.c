/* merge_diag.c - task-vector diagnostics of stored models: pairwise cosines, sign conflicts and
 * norms per tensor and per layer (merge_store_diagnose, merge_store.h). */
#include "merge_store.h"
#include "am_base.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the model a checkpoint / task vector / merge starts from: its base, else its first parent */
static int start_of(Store *st, const char *id, char out[AM_ID_HEX + 1]) {
    char *mj = NULL;
    int rc = store_model_meta(st, id, &mj);
    if (rc) return rc;
    cJSON *j = cJSON_Parse(mj);
    free(mj);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "base");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "parents"), 0), "id");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(j, "kind");
    const char *s = cJSON_IsString(b) ? b->valuestring : NULL;
    if (!s && cJSON_IsString(p) && cJSON_IsString(kind) && strcmp(kind->valuestring, "merged") != 0) s = p->valuestring;
    out[0] = 0;
    if (s) snprintf(out, AM_ID_HEX + 1, "%s", s);
    cJSON_Delete(j);
    return AM_OK;
}

typedef struct {
    double *dot;          /* k x k */
    size_t *pconf, *pboth; /* k x k, x < y: entries both change, with opposite signs / at all */
    size_t conflicts, overlap;
} Acc;

static Acc acc_new(int k) {
    size_t kk = (size_t)k * (size_t)k;
    return (Acc){ xcalloc(kk, sizeof(double)), xcalloc(kk, sizeof(size_t)), xcalloc(kk, sizeof(size_t)), 0, 0 };
}

static void acc_free(Acc *a) {
    free(a->dot);
    free(a->pconf);
    free(a->pboth);
}

static void acc_clear(Acc *a, int k) {
    size_t kk = (size_t)k * (size_t)k;
    memset(a->dot, 0, kk * sizeof(double));
    memset(a->pconf, 0, kk * sizeof(size_t));
    memset(a->pboth, 0, kk * sizeof(size_t));
    a->conflicts = a->overlap = 0;
}

static void acc_merge(Acc *to, const Acc *a, int k) {
    for (size_t e = 0; e < (size_t)k * (size_t)k; e++) {
        to->dot[e] += a->dot[e];
        to->pconf[e] += a->pconf[e];
        to->pboth[e] += a->pboth[e];
    }
    to->conflicts += a->conflicts;
    to->overlap += a->overlap;
}

static void acc_add(Acc *a, int k, const float *const *v, size_t off, size_t n) {
    for (int x = 0; x < k; x++)
        for (int y = x; y < k; y++) {
            double d = 0;
            size_t both = 0, conf = 0;
            const float *p = v[x] + off, *q = v[y] + off;
            for (size_t i = 0; i < n; i++) {
                d += (double)p[i] * (double)q[i];
                if (x != y && p[i] != 0 && q[i] != 0) {
                    both++;
                    conf += (p[i] > 0) != (q[i] > 0);
                }
            }
            a->dot[x * k + y] += d;
            a->pboth[x * k + y] += both;
            a->pconf[x * k + y] += conf;
        }
    for (size_t i = 0; i < n; i++) {
        int pos = 0, neg = 0;
        for (int x = 0; x < k; x++) {
            float e = v[x][off + i];
            pos += e > 0;
            neg += e < 0;
        }
        if (pos + neg >= 2) a->overlap++;
        if (pos && neg) a->conflicts++;
    }
}

/* {"name", "norm": [...], "cosine": [[...]], "sign_conflict", "conflicts", "overlap",
 *  "sign_conflict_pairs": [[...]]} */
static cJSON *acc_json(const char *name, const Acc *a, int k) {
    cJSON *o = cJSON_CreateObject();
    if (name) cJSON_AddStringToObject(o, "name", name);
    cJSON *norm = cJSON_AddArrayToObject(o, "norm"), *cos = cJSON_AddArrayToObject(o, "cosine");
    for (int x = 0; x < k; x++) cJSON_AddItemToArray(norm, cJSON_CreateNumber(sqrt(a->dot[x * k + x])));
    cJSON *pairs = cJSON_CreateArray();
    for (int x = 0; x < k; x++) {
        cJSON *row = cJSON_CreateArray(), *prow = cJSON_CreateArray();
        for (int y = 0; y < k; y++) {
            int i = x < y ? x : y, j = x < y ? y : x;
            double den = sqrt(a->dot[i * k + i] * a->dot[j * k + j]);
            cJSON_AddItemToArray(row, cJSON_CreateNumber(den > 0 ? a->dot[i * k + j] / den : 0));
            size_t both = a->pboth[i * k + j];
            cJSON_AddItemToArray(prow, cJSON_CreateNumber(i != j && both ? (double)a->pconf[i * k + j] / (double)both : 0));
        }
        cJSON_AddItemToArray(cos, row);
        cJSON_AddItemToArray(pairs, prow);
    }
    cJSON_AddNumberToObject(o, "sign_conflict", a->overlap ? (double)a->conflicts / (double)a->overlap : 0);
    cJSON_AddNumberToObject(o, "conflicts", (double)a->conflicts);
    cJSON_AddNumberToObject(o, "overlap", (double)a->overlap);
    cJSON_AddItemToObject(o, "sign_conflict_pairs", pairs);
    return o;
}

static void group_name(const char *tensor, char *buf, size_t cap) {
    int l = merge_tensor_layer(tensor);
    if (l >= 0) { snprintf(buf, cap, "layer.%d", l); return; }
    unsigned c = merge_tensor_class(tensor);
    snprintf(buf, cap, "%s", c == MERGE_CLS_POOLER ? "pooler" : c == MERGE_CLS_HEAD ? "head" : "embeddings");
}

/* the whole-model numbers into o, then "groups" (per layer, in order of first appearance: an MLM
 * head's tensors are not contiguous) and "tensors" */
static void diag_vectors(cJSON *o, const ParamTable *tab, const float *const *v, int n) {
    enum { MAXG = AM_MAX_LAYERS + 8 };
    char names[MAXG][32];
    Acc grp[MAXG];
    int ng = 0;
    Acc whole = acc_new(n), t1 = acc_new(n);
    cJSON *tensors = cJSON_CreateArray();
    for (int q = 0; q < tab->n; q++) {
        const ParamInfo *p = &tab->t[q];
        char gname[32];
        group_name(p->name, gname, sizeof gname);
        int j = 0;
        while (j < ng && strcmp(names[j], gname) != 0) j++;
        if (j == ng) {
            if (ng == MAXG) j = ng - 1; /* not reached: L + 4 groups at most */
            else {
                memcpy(names[ng], gname, sizeof gname);
                grp[ng++] = acc_new(n);
            }
        }
        acc_clear(&t1, n);
        acc_add(&t1, n, v, p->offset, p->numel);
        cJSON_AddItemToArray(tensors, acc_json(p->name, &t1, n));
        acc_merge(&grp[j], &t1, n);
        acc_merge(&whole, &t1, n);
    }
    cJSON *groups = cJSON_CreateArray();
    for (int j = 0; j < ng; j++) {
        cJSON_AddItemToArray(groups, acc_json(names[j], &grp[j], n));
        acc_free(&grp[j]);
    }
    cJSON *w = acc_json(NULL, &whole, n);
    for (cJSON *it = w->child; it;) {
        cJSON *next = it->next;
        cJSON_AddItemToObject(o, it->string, cJSON_DetachItemViaPointer(w, it));
        it = next;
    }
    cJSON_Delete(w);
    cJSON_AddItemToObject(o, "groups", groups);
    cJSON_AddItemToObject(o, "tensors", tensors);
    acc_free(&whole);
    acc_free(&t1);
}

int merge_diag_vectors(const ParamTable *tab, const float *const *v, int n, char **json) {
    *json = NULL;
    if (n < 1 || n > 64) return am_error(AM_EINVAL, "diagnose: 1..64 vectors, got %d", n);
    cJSON *o = cJSON_CreateObject();
    diag_vectors(o, tab, v, n);
    *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return AM_OK;
}

int merge_store_diagnose(Store *st, const char *base, const char *const *models, int n, char **json) {
    *json = NULL;
    if (n < 1) return am_error(AM_EINVAL, "give at least one model");
    if (n > 64) return am_error(AM_EINVAL, "at most 64 models");
    char (*ids)[AM_ID_HEX + 1] = xcalloc((size_t)n, sizeof *ids);
    char bid[AM_ID_HEX + 1] = "";
    int rc = AM_OK;
    for (int i = 0; i < n && !rc; i++)
        if ((rc = store_resolve(st, models[i], ids[i]))) rc = am_error_wrap(rc, "model %d", i + 1);
    if (!rc && base && (rc = store_resolve(st, base, bid))) rc = am_error_wrap(rc, "base");
    for (int i = 0; i < n && !rc && !base; i++) { /* the model they all start from */
        char s[AM_ID_HEX + 1];
        if ((rc = start_of(st, ids[i], s))) break;
        if (!s[0] || (i && strcmp(s, bid) != 0)) {
            rc = am_error(AM_EINVAL, "the models do not start from one model (%s): give the base (--base B, "
                          "base = in Lua)", s[0] ? "different parents" : "no parent recorded");
            break;
        }
        memcpy(bid, s, sizeof s);
    }
    Model **m = xcalloc((size_t)n + 1, sizeof *m);
    Model *b = NULL;
    char *v0 = NULL, *vt = NULL;
    size_t l0 = 0, lt = 0;
    if (!rc && (rc = merge_store_load_weights(st, bid, &b, &v0, &l0))) rc = am_error_wrap(rc, "base %.12s", bid);
    int heads = b ? b->cfg.has_mlm_head : 1;
    for (int i = 0; i < n && !rc; i++) {
        if ((rc = merge_store_load_weights(st, ids[i], &m[i], &vt, &lt))) break;
        if (lt != l0 || (lt && memcmp(vt, v0, lt) != 0))
            rc = am_error(AM_EVOCAB, "model %d (%.12s) has a different vocabulary than the base", i + 1, ids[i]);
        free(vt);
        vt = NULL;
        heads &= m[i]->cfg.has_mlm_head;
    }
    /* an input without an MLM head: compare the encoders (the head is at the end of the buffer) */
    size_t total = 0;
    const ParamTable *tab = NULL;
    if (!rc) {
        const Model *ref = heads ? b : NULL;
        for (int i = 0; i < n && !ref; i++) if (!m[i]->cfg.has_mlm_head) ref = m[i];
        if (!ref) ref = b;
        tab = &ref->tab;
        total = tab->total;
        const Model *all[65];
        for (int i = 0; i < n; i++) all[i] = m[i];
        all[n] = b;
        for (int i = 0; i <= n && !rc; i++) {
            const ParamTable *t = &all[i]->tab;
            int nt = ref->tab.n;
            if (t->total < total || t->n < nt) { rc = am_error(AM_ESHAPE, "model %d has fewer parameters than the others", i + 1); break; }
            for (int q = 0; q < nt; q++)
                if (strcmp(t->t[q].name, tab->t[q].name) != 0 || t->t[q].numel != tab->t[q].numel) {
                    rc = am_error(AM_ESHAPE, "%s %d differs at tensor '%s'", i == n ? "the base" : "model",
                                  i + 1, tab->t[q].name);
                    break;
                }
        }
    }
    cJSON *o = NULL;
    if (!rc) {
        float **tau = xcalloc((size_t)n, sizeof *tau);
        for (int i = 0; i < n; i++) {
            tau[i] = m[i]->params; /* in place: τ = θ − θ_base */
            for (size_t e = 0; e < total; e++) tau[i][e] -= b->params[e];
        }
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "base", bid);
        cJSON *jm = cJSON_AddArrayToObject(o, "models");
        for (int i = 0; i < n; i++) cJSON_AddItemToArray(jm, cJSON_CreateString(ids[i]));
        diag_vectors(o, tab, (const float *const *)tau, n);
        free(tau);
    }
    for (int i = 0; i < n; i++) model_delete(m[i]);
    free(m);
    model_delete(b);
    free(v0);
    free(ids);
    if (rc) return rc;
    *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return AM_OK;
}
