/* merge_spec.c - method and parameter names, MergeSpec rules and the one resolver. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "am_base.h"
#include "merge.h"

#define P(x) (1u << MERGE_P_##x)
#define GTA (P(WEIGHT) | P(DENSITY) | P(LAMBDA))

static const MergeMethodInfo methods[MERGE_METHOD_COUNT] = {
    [MERGE_LINEAR] = {"linear", "Linear (model soup)", "https://arxiv.org/abs/2203.05482",
                      MERGE_BASE_NONE, 2, 0, P(WEIGHT), 1, 0},
    [MERGE_TASK_ARITHMETIC] = {"task_arithmetic", "Task Arithmetic", "https://arxiv.org/abs/2212.04089",
                               MERGE_BASE_REQUIRED, 1, 0, P(WEIGHT) | P(LAMBDA), 0, 0},
    [MERGE_TIES] = {"ties", "TIES", "https://arxiv.org/abs/2306.01708",
                    MERGE_BASE_REQUIRED, 1, 0, GTA, 1, 0},
    [MERGE_DARE_LINEAR] = {"dare_linear", "Linear DARE", "https://arxiv.org/abs/2311.03099",
                           MERGE_BASE_REQUIRED, 1, 0, GTA, 0, 1},
    [MERGE_DARE_TIES] = {"dare_ties", "DARE TIES", "https://arxiv.org/abs/2311.03099",
                         MERGE_BASE_REQUIRED, 1, 0, GTA, 0, 1},
    [MERGE_DELLA] = {"della", "DELLA", "https://arxiv.org/abs/2406.11617",
                     MERGE_BASE_REQUIRED, 1, 0, GTA | P(EPSILON), 1, 1},
    [MERGE_DELLA_LINEAR] = {"della_linear", "Linear DELLA", "https://arxiv.org/abs/2406.11617",
                            MERGE_BASE_REQUIRED, 1, 0, GTA | P(EPSILON), 0, 1},
    [MERGE_BREADCRUMBS] = {"breadcrumbs", "Model Breadcrumbs", "https://arxiv.org/abs/2312.06795",
                           MERGE_BASE_REQUIRED, 1, 0, GTA | P(GAMMA), 0, 0},
    [MERGE_BREADCRUMBS_TIES] = {"breadcrumbs_ties", "Model Breadcrumbs with TIES",
                                "https://arxiv.org/abs/2312.06795",
                                MERGE_BASE_REQUIRED, 1, 0, GTA | P(GAMMA), 0, 0},
    [MERGE_SLERP] = {"slerp", "SLERP", "https://en.wikipedia.org/wiki/Slerp",
                     MERGE_BASE_NONE, 2, 2, P(T), 0, 0},
    [MERGE_NUSLERP] = {"nuslerp", "NuSLERP", "https://github.com/arcee-ai/mergekit",
                       MERGE_BASE_OPTIONAL, 2, 2, P(WEIGHT), 0, 0},
    [MERGE_MULTISLERP] = {"multislerp", "Multi-SLERP", "https://goddard.blog/posts/multislerp-wow-what-a-cool-idea",
                          MERGE_BASE_OPTIONAL, 2, 0, P(WEIGHT), 1, 0},
    [MERGE_KARCHER] = {"karcher", "Karcher Mean", "https://en.wikipedia.org/wiki/Karcher_mean",
                       MERGE_BASE_NONE, 2, 0, 0, 0, 0},
    [MERGE_MODEL_STOCK] = {"model_stock", "Model Stock", "https://arxiv.org/abs/2403.19522",
                           MERGE_BASE_REQUIRED, 2, 0, 0, 0, 0},
};

static const char *const param_names[MERGE_PARAM_COUNT] = {
    "weight", "density", "lambda", "t", "epsilon", "gamma"};

const MergeMethodInfo *merge_method_info(MergeMethod m) {
    AM_ASSERT((unsigned)m < MERGE_METHOD_COUNT);
    return &methods[m];
}
const char *merge_method_name(MergeMethod m) { return merge_method_info(m)->name; }
const char *merge_param_name(MergeParam p) {
    AM_ASSERT((unsigned)p < MERGE_PARAM_COUNT);
    return param_names[p];
}

static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 1 << 20;
    int row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int prev = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cur = row[j];
            int sub = prev + (a[i - 1] != b[j - 1]);
            int del = row[j] + 1, ins = row[j - 1] + 1;
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            prev = cur;
        }
    }
    return row[lb];
}

const char *merge_closest_name(const char *name, const char *const *cands, int n) {
    const char *best = NULL;
    int bd = 1 << 20;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(name, cands[i]);
        if (d < bd) { bd = d; best = cands[i]; }
    }
    size_t la = strlen(name), lb = best ? strlen(best) : 0;
    int lim = (int)((la > lb ? la : lb) / 3);
    if (lim < 2) lim = 2;
    return best && bd <= lim ? best : NULL;
}

static int unknown(const char *what, const char *name, const char *const *cands, int n) {
    const char *c = merge_closest_name(name, cands, n);
    if (c) return am_error(AM_EINVAL, "unknown %s '%s' (did you mean '%s'?)", what, name, c);
    char list[512] = "";
    for (int i = 0; i < n; i++) {
        strncat(list, cands[i], sizeof list - strlen(list) - 1);
        if (i + 1 < n) strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    return am_error(AM_EINVAL, "unknown %s '%s' (known: %s)", what, name, list);
}

int merge_method_from_name(const char *name, MergeMethod *out) {
    const char *names[MERGE_METHOD_COUNT];
    for (int i = 0; i < MERGE_METHOD_COUNT; i++) {
        names[i] = methods[i].name;
        if (strcmp(name, names[i]) == 0) { *out = (MergeMethod)i; return AM_OK; }
    }
    return unknown("merge method", name, names, MERGE_METHOD_COUNT);
}

int merge_param_from_name(const char *name, MergeParam *out) {
    for (int i = 0; i < MERGE_PARAM_COUNT; i++)
        if (strcmp(name, param_names[i]) == 0) { *out = (MergeParam)i; return AM_OK; }
    return unknown("merge parameter", name, param_names, MERGE_PARAM_COUNT);
}

float merge_param_default(MergeMethod m, MergeParam p) {
    (void)m;
    switch (p) {
    case MERGE_P_WEIGHT: return 1.0f;
    case MERGE_P_DENSITY: return 1.0f;
    case MERGE_P_LAMBDA: return 1.0f;
    case MERGE_P_EPSILON: return 0.15f;
    case MERGE_P_GAMMA: return 0.01f;
    case MERGE_P_T: default: return NAN;
    }
}

/* ---- module classes ---- */

unsigned merge_tensor_class(const char *n) {
    if (strstr(n, "LayerNorm")) return MERGE_CLS_LAYERNORM;
    if (strncmp(n, "embeddings.", 11) == 0) return MERGE_CLS_EMBEDDINGS;
    if (strncmp(n, "pooler.", 7) == 0) return MERGE_CLS_POOLER;
    if (strncmp(n, "cls.", 4) == 0) return MERGE_CLS_HEAD;
    if (strstr(n, ".attention.")) return MERGE_CLS_ATTENTION;
    if (strstr(n, ".intermediate.") || strstr(n, ".output.")) return MERGE_CLS_FFN;
    return MERGE_CLS_HEAD; /* anything else outside the encoder proper */
}

int merge_tensor_layer(const char *n) {
    static const char pre[] = "encoder.layer.";
    if (strncmp(n, pre, sizeof pre - 1) != 0) return -1;
    const char *p = n + sizeof pre - 1;
    if (*p < '0' || *p > '9') return -1;
    return atoi(p);
}

int merge_class_from_name(const char *name, unsigned *out) {
    static const char *const names[] = {"embeddings", "attention", "ffn", "mlp", "layernorm",
                                        "norm", "pooler", "head"};
    static const unsigned cls[] = {MERGE_CLS_EMBEDDINGS, MERGE_CLS_ATTENTION, MERGE_CLS_FFN,
                                   MERGE_CLS_FFN, MERGE_CLS_LAYERNORM, MERGE_CLS_LAYERNORM,
                                   MERGE_CLS_POOLER, MERGE_CLS_HEAD};
    for (int i = 0; i < 8; i++)
        if (strcmp(name, names[i]) == 0) { *out = cls[i]; return AM_OK; }
    return unknown("module class", name, names, 8);
}

/* ---- spec ---- */

void merge_spec_init(MergeSpec *s, MergeMethod m) {
    AM_ASSERT((unsigned)m < MERGE_METHOD_COUNT);
    memset(s, 0, sizeof *s);
    s->method = m;
    s->normalize = -1;
    s->rescale = -1;
    s->eps = 1e-8;
    s->max_iter = 10;
    s->tol = 1e-5;
    s->nuslerp_flatten = 1;
}

void merge_spec_free(MergeSpec *s) {
    for (int i = 0; i < s->n_rules; i++) free(s->rules[i].values);
    free(s->rules);
    s->rules = NULL;
    s->n_rules = s->cap_rules = 0;
}

int merge_spec_set(MergeSpec *s, MergeParam p, int model, unsigned classes, const char *pattern,
                   const float *values, int n) {
    if ((unsigned)p >= MERGE_PARAM_COUNT) return am_error(AM_EINVAL, "merge parameter %d out of range", (int)p);
    if (n < 1 || !values)
        return am_error(AM_EINVAL, "merge parameter %s: needs at least one value", param_names[p]);
    if (model < -1) return am_error(AM_EINVAL, "merge parameter %s: model index %d", param_names[p], model);
    if (classes & ~(unsigned)MERGE_CLS_ALL)
        return am_error(AM_EINVAL, "merge parameter %s: bad module class mask 0x%x", param_names[p], classes);
    if (pattern && strlen(pattern) >= AM_NAME_MAX)
        return am_error(AM_EINVAL, "merge parameter %s: pattern '%s' too long", param_names[p], pattern);
    for (int i = 0; i < n; i++)
        if (!isfinite(values[i]))
            return am_error(AM_EINVAL, "merge parameter %s: value %d is not a finite number", param_names[p], i + 1);
    if (s->n_rules == s->cap_rules) {
        s->cap_rules = s->cap_rules ? 2 * s->cap_rules : 8;
        s->rules = xrealloc(s->rules, (size_t)s->cap_rules * sizeof *s->rules);
    }
    MergeRule *r = &s->rules[s->n_rules++];
    memset(r, 0, sizeof *r);
    r->param = p;
    r->model = model;
    r->classes = classes;
    if (pattern) strcpy(r->pattern, pattern);
    r->n = n;
    r->values = xmalloc((size_t)n * sizeof(float));
    memcpy(r->values, values, (size_t)n * sizeof(float));
    return AM_OK;
}

int merge_spec_set_option(MergeSpec *s, const char *name, double v) {
    static const char *const names[] = {"normalize", "normalize_weights", "rescale", "paper", "seed",
                                        "eps", "max_iter", "tol", "nuslerp_flatten",
                                        "nuslerp_row_wise", "filter_wise", "threads", "int8_mask"};
    int n = (int)(sizeof names / sizeof *names), i;
    for (i = 0; i < n; i++) if (strcmp(name, names[i]) == 0) break;
    if (i == n) return unknown("merge option", name, names, n);
    if (!isfinite(v)) return am_error(AM_EINVAL, "merge option %s: not a finite number", name);
    int b = v != 0;
    switch (i) {
    case 0: case 1: s->normalize = b; break;
    case 2: s->rescale = b; break;
    case 3: s->paper = b; break;
    case 4:
        if (v < 0) return am_error(AM_EINVAL, "merge option seed: %g is negative", v);
        s->seed = (uint64_t)v; break;
    case 5:
        if (v <= 0) return am_error(AM_EINVAL, "merge option eps: %g must be > 0", v);
        s->eps = v; break;
    case 6:
        if (v < 1 || v > 1e6) return am_error(AM_EINVAL, "merge option max_iter: %g must be in [1, 1e6]", v);
        s->max_iter = (int)v; break;
    case 7:
        if (v <= 0) return am_error(AM_EINVAL, "merge option tol: %g must be > 0", v);
        s->tol = v; break;
    case 8: s->nuslerp_flatten = b; break;
    case 9: s->nuslerp_row_wise = b; break;
    case 10: s->filter_wise = b; break;
    case 11:
        if (v < 0 || v > 1024) return am_error(AM_EINVAL, "merge option threads: %g out of range", v);
        s->threads = (int)v; break;
    default: break; /* int8_mask: we merge in fp32 */
    }
    return AM_OK;
}

/* '*' matches any run of characters; without '*' the pattern is a substring (mergekit filters). */
static int glob_match(const char *p, const char *s) {
    if (*p == 0) return *s == 0;
    if (*p == '*') {
        for (;; s++) {
            if (glob_match(p + 1, s)) return 1;
            if (*s == 0) return 0;
        }
    }
    return *s && *p == *s && glob_match(p + 1, s + 1);
}

static int pattern_match(const char *pat, const char *name) {
    if (!pat[0]) return 1;
    if (strchr(pat, '*')) return glob_match(pat, name);
    return strstr(name, pat) != NULL;
}

float merge_param_at(const MergeSpec *s, MergeParam p, int model_k, const char *tensor_name,
                     int layer, int n_layers) {
    unsigned cls = tensor_name ? merge_tensor_class(tensor_name) : 0;
    for (int i = s->n_rules - 1; i >= 0; i--) {
        const MergeRule *r = &s->rules[i];
        if (r->param != p) continue;
        if (r->model != -1 && r->model != model_k) continue;
        if (r->classes && !(r->classes & cls)) continue;
        if (r->pattern[0] && !(tensor_name && pattern_match(r->pattern, tensor_name))) continue;
        if (r->n == 1) return r->values[0];
        /* mergekit's gradient: t = layer/(L−1) (t = 0 outside the layers; 1 for a 1-layer model) */
        double t = layer < 0 ? 0.0 : n_layers > 1 ? (double)layer / (n_layers - 1) : 1.0;
        if (t > 1) t = 1;
        double x = t * (r->n - 1);
        int i0 = (int)x, i1 = i0 + 1 < r->n ? i0 + 1 : r->n - 1;
        double f = x - i0;
        return (float)((1 - f) * (double)r->values[i0] + f * (double)r->values[i1]);
    }
    return merge_param_default(s->method, p);
}

uint64_t merge_stream_seed(uint64_t seed, int k, int tensor_index) {
    return seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(k + 1)) ^
           (0xC2B2AE3D27D4EB4Full * (uint64_t)(tensor_index + 1));
}
