/* hf.c - import and export Hugging Face BERT / sentence-transformers directories. */
#define _GNU_SOURCE
#include "hf.h"
#include "config_json.h"
#include "am_base.h"
#include "encoder.h"
#include "io_util.h"
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* HfInfo.pooling is passed straight to encoder_embed */

void hf_info_default(HfInfo *info) {
    memset(info, 0, sizeof *info);
    info->pooling = AM_POOL_MEAN;
    info->do_lower_case = 1;
    info->strip_accents = -1;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ================================================================ import */

typedef struct {
    const char *dir;
    char *mdir;          /* directory holding config.json / weights / vocab (Transformer module) */
    int pool_dim;        /* word_embedding_dimension from 1_Pooling/config.json, 0 if none */
    char *pool_file;
} ImportCtx;

static int read_pooling(ImportCtx *cx, const char *path, HfInfo *info) {
    cJSON *j = NULL;
    int rc = io_json_load(path, &j);
    if (rc) return rc;
    static const char *keys[] = {"pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
                                 "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                                 "pooling_mode_lasttoken"};
    int on[6] = {0}, n_on = 0;
    if (!cJSON_IsObject(j)) rc = am_error(AM_EFORMAT, "%s: not a JSON object", path);
    for (int i = 0; i < 6 && rc == AM_OK; i++) {
        rc = io_json_bool(j, keys[i], path, &on[i]);
        n_on += on[i];
    }
    if (rc == AM_OK) rc = io_json_int(j, "word_embedding_dimension", 1, 1, 1 << 20, path, &cx->pool_dim);
    if (rc == AM_OK) {
        if (n_on == 1 && on[0]) info->pooling = AM_POOL_CLS;
        else if (n_on == 1 && on[1]) info->pooling = AM_POOL_MEAN;
        else {
            StrBuf b = {0};
            for (int i = 0; i < 6; i++)
                if (on[i]) sb_printf(&b, "%s%s", b.len ? " + " : "", keys[i]);
            rc = am_error(AM_EFORMAT, "%s: pooling %s is not supported (amalgam pools with exactly one of "
                          "pooling_mode_mean_tokens or pooling_mode_cls_token)", path, b.len ? b.p : "(no mode set)");
            sb_free(&b);
        }
    }
    cJSON_Delete(j);
    if (rc == AM_OK) cx->pool_file = xstrdup(path);
    return rc;
}

static int read_modules(ImportCtx *cx, const char *path, HfInfo *info) {
    cJSON *j = NULL;
    int rc = io_json_load(path, &j);
    if (rc) return rc;
    int have_tf = 0, have_pool = 0;
    if (!cJSON_IsArray(j)) rc = am_error(AM_EFORMAT, "%s: expected a JSON array of modules", path);
    const cJSON *m;
    int idx = 0;
    cJSON_ArrayForEach(m, j) {
        if (rc) break;
        const char *type = NULL, *mpath = NULL;
        if (!cJSON_IsObject(m)) {
            rc = am_error(AM_EFORMAT, "%s: module %d is not an object", path, idx);
            break;
        }
        rc = io_json_string(m, "type", path, &type);
        if (rc == AM_OK) rc = io_json_string(m, "path", path, &mpath);
        if (rc) break;
        if (!type) {
            rc = am_error(AM_EFORMAT, "%s: module %d has no \"type\"", path, idx);
            break;
        }
        if (!mpath) mpath = "";
        char *mdir = mpath[0] ? xasprintf("%s/%s", cx->dir, mpath) : xstrdup(cx->dir);
        if (ends_with(type, ".Transformer") || ends_with(type, ".BERT")) {
            if (have_tf++) rc = am_error(AM_EFORMAT, "%s: more than one Transformer module", path);
            else {
                free(cx->mdir);
                cx->mdir = xstrdup(mdir);
            }
        } else if (ends_with(type, ".Pooling")) {
            if (have_pool++) rc = am_error(AM_EFORMAT, "%s: more than one Pooling module", path);
            else {
                char *pc = xasprintf("%s/config.json", mdir);
                rc = read_pooling(cx, pc, info);
                free(pc);
            }
        } else if (ends_with(type, ".Normalize")) {
            info->normalize = 1;
        } else {
            rc = am_error(AM_EFORMAT, "%s: module %d type '%s' is not supported\n"
                          "HINT: amalgam imports sentence-transformers models made of Transformer, Pooling "
                          "(mean or cls) and Normalize modules only", path, idx, type);
        }
        free(mdir);
        idx++;
    }
    if (rc == AM_OK && !have_tf)
        rc = am_error(AM_EFORMAT, "%s: no sentence_transformers.models.Transformer module", path);
    if (rc == AM_OK && !have_pool)
        rc = am_error(AM_EFORMAT, "%s: no sentence_transformers.models.Pooling module (token embeddings "
                      "without pooling are not supported)", path);
    cJSON_Delete(j);
    return rc;
}

static int read_config(const char *path, EncoderConfig *cfg) {
    cJSON *j = NULL;
    int rc = io_json_load(path, &j);
    if (rc == AM_ENOTFOUND)
        return am_error(AM_ENOTFOUND, "%s: file not found\nHINT: a Hugging Face model directory needs "
                        "config.json, model.safetensors and vocab.txt", path);
    if (rc) return rc;
    rc = config_json_decode(j, path, cfg);
    cJSON_Delete(j);
    return rc;
}

static int read_tokenizer_config(const char *path, const EncoderConfig *cfg, HfInfo *info, int *model_max) {
    if (!io_exists(path)) return AM_OK;
    cJSON *j = NULL;
    int rc = io_json_load(path, &j);
    if (rc) return rc;
    if (!cJSON_IsObject(j)) rc = am_error(AM_EFORMAT, "%s: not a JSON object", path);
    if (rc == AM_OK) rc = io_json_bool(j, "do_lower_case", path, &info->do_lower_case);
    if (rc == AM_OK) rc = io_json_bool(j, "strip_accents", path, &info->strip_accents);
    const cJSON *mm = cJSON_GetObjectItemCaseSensitive(j, "model_max_length");
    if (rc == AM_OK && mm && !cJSON_IsNull(mm)) {
        if (!cJSON_IsNumber(mm) || mm->valuedouble < 1)
            rc = am_error(AM_EFORMAT, "%s: \"model_max_length\" must be a positive number", path);
        /* transformers writes 1e30 ("no limit") for models without one */
        else *model_max = mm->valuedouble > cfg->max_position ? cfg->max_position : (int)mm->valuedouble;
    }
    cJSON_Delete(j);
    return rc;
}

static int read_sbert_config(const char *path, HfInfo *info, int *max_seq) {
    if (!io_exists(path)) return AM_OK;
    cJSON *j = NULL;
    int rc = io_json_load(path, &j);
    if (rc) return rc;
    int lower = 0;
    if (!cJSON_IsObject(j)) rc = am_error(AM_EFORMAT, "%s: not a JSON object", path);
    if (rc == AM_OK) rc = io_json_int(j, "max_seq_length", 0, 1, 1 << 30, path, max_seq);
    if (rc == AM_OK) rc = io_json_bool(j, "do_lower_case", path, &lower);
    /* sentence-transformers lower-cases the text before the tokenizer runs; accents are then
     * stripped only if the tokenizer itself lower-cases (or says strip_accents) */
    if (rc == AM_OK && lower && !info->do_lower_case) {
        info->do_lower_case = 1;
        if (info->strip_accents < 0) info->strip_accents = 0;
    }
    cJSON_Delete(j);
    return rc;
}

static const SafeTensorEntry *find_tensor(const SafeTensors *st, const char *prefix, const char *name) {
    char nm[AM_NAME_MAX + 16];
    snprintf(nm, sizeof nm, "%s%s", prefix, name);
    const SafeTensorEntry *e = safetensors_find(st, nm);
    if (e) return e;
    /* TF-era checkpoints name LayerNorm parameters gamma / beta */
    size_t n = strlen(nm);
    if (ends_with(nm, "LayerNorm.weight")) {
        snprintf(nm + n - strlen("weight"), sizeof nm - (n - strlen("weight")), "gamma");
        return safetensors_find(st, nm);
    }
    if (ends_with(nm, "LayerNorm.bias")) {
        snprintf(nm + n - strlen("bias"), sizeof nm - (n - strlen("bias")), "beta");
        return safetensors_find(st, nm);
    }
    return NULL;
}

static void shape_str(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

static int load_weights(const char *wpath, const char *cfg_path, EncoderConfig *cfg, HfInfo *info, Model **out) {
    SafeTensors *st = NULL;
    int rc = safetensors_open(wpath, &st);
    if (rc) return rc;
    const char *prefix = NULL;
    if (safetensors_find(st, "embeddings.word_embeddings.weight")) prefix = "";
    else if (safetensors_find(st, "bert.embeddings.word_embeddings.weight")) prefix = "bert.";
    if (!prefix) {
        rc = am_error(AM_EFORMAT, "%s: required tensor 'embeddings.word_embeddings.weight' not found (also looked "
                      "for 'bert.embeddings.word_embeddings.weight'); is this a BERT checkpoint?", wpath);
        safetensors_close(st);
        return rc;
    }
    cfg->has_pooler = find_tensor(st, prefix, "pooler.dense.weight") != NULL;
    /* BertForMaskedLM / BertForPreTraining: the MLM head (the decoder weight is tied to wte) */
    cfg->has_mlm_head = find_tensor(st, "", "cls.predictions.transform.dense.weight") != NULL;
    Model *m = NULL;
    rc = model_new(cfg, &m);
    if (rc) {
        safetensors_close(st);
        return am_error_wrap(rc, "%s", cfg_path);
    }
    int nt = safetensors_count(st);
    char *used = xcalloc((size_t)(nt ? nt : 1), 1);
    const SafeTensorEntry *first = safetensors_entry(st, 0);
    unsigned dtypes_seen = 0;
    for (int i = 0; i < m->tab.n && rc == AM_OK; i++) {
        const ParamInfo *p = &m->tab.t[i];
        const char *pre = strncmp(p->name, "cls.", 4) == 0 ? "" : prefix; /* the head is outside "bert." */
        const SafeTensorEntry *e = find_tensor(st, pre, p->name);
        if (!e) {
            rc = am_error(AM_EFORMAT, "%s: required tensor '%s%s' not found", wpath, pre, p->name);
            break;
        }
        int same = e->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = e->shape[d] == p->shape[d];
        if (!same) {
            char a[160], b[160];
            shape_str(a, sizeof a, e->shape, e->ndim);
            shape_str(b, sizeof b, p->shape, p->ndim);
            rc = am_error(AM_ESHAPE, "%s: tensor '%s' has shape %s but %s implies %s", wpath, e->name, a, cfg_path, b);
            break;
        }
        rc = safetensors_read_f32(st, e, m->params + p->offset, p->numel);
        used[e - first] = 1;
        dtypes_seen |= 1u << e->dtype;
    }
    if (rc == AM_OK) {
        info->n_ignored = 0;
        for (int i = 0; i < nt; i++) {
            if (used[i]) continue;
            info->n_ignored++;
            am_log(AM_LOG_DEBUG, "%s: ignoring tensor '%s' (not used by the encoder)", wpath,
                   safetensors_entry(st, i)->name);
        }
        const char *dt = "mixed";
        for (int d = 0; d <= AM_DT_U64; d++)
            if (dtypes_seen == 1u << d) dt = safetensors_dtype_name((AmDtype)d);
        snprintf(info->dtype, sizeof info->dtype, "%s", dt);
    }
    free(used);
    safetensors_close(st);
    if (rc) {
        model_delete(m);
        return rc;
    }
    *out = m;
    return AM_OK;
}

static int missing_weights(const char *mdir, const char *wpath) {
    char *bin = xasprintf("%s/pytorch_model.bin", mdir), *idx = xasprintf("%s/model.safetensors.index.json", mdir);
    int rc;
    if (io_exists(idx))
        rc = am_error(AM_EFORMAT, "%s: not found, but %s exists: sharded checkpoints are not supported\n"
                      "HINT: merge the shards into one model.safetensors (BERT models fit in one file)", wpath, idx);
    else if (io_exists(bin))
        rc = am_error(AM_ENOTFOUND, "%s: not found; only %s exists, and PyTorch pickles are not read (unsafe and "
                      "need Python)\nHINT: convert it once with Python: from safetensors.torch import save_file; "
                      "import torch; sd = torch.load('pytorch_model.bin', map_location='cpu'); "
                      "save_file({k: v.contiguous() for k, v in sd.items()}, 'model.safetensors', "
                      "metadata={'format': 'pt'})", wpath, bin);
    else
        rc = am_error(AM_ENOTFOUND, "%s: file not found\nHINT: a Hugging Face model directory needs config.json, "
                      "model.safetensors and vocab.txt", wpath);
    free(bin);
    free(idx);
    return rc;
}

int hf_import(const char *dir, Model **model, Vocab **vocab, HfInfo *info_out) {
    *model = NULL;
    *vocab = NULL;
    HfInfo info;
    hf_info_default(&info);
    snprintf(info.source, sizeof info.source, "%s", dir);
    if (!io_exists(dir)) return am_error(AM_ENOTFOUND, "%s: no such directory", dir);
    if (!io_is_dir(dir)) return am_error(AM_EINVAL, "%s: not a directory (give the model directory)", dir);

    ImportCtx cx = {.dir = dir, .mdir = xstrdup(dir)};
    EncoderConfig cfg;
    Model *m = NULL;
    Vocab *v = NULL;
    char *p_modules = xasprintf("%s/modules.json", dir);
    char *p_config = NULL, *p_weights = NULL, *p_vocab = NULL, *p_tok = NULL, *p_sbert = NULL;
    int rc = AM_OK, model_max = 0, max_seq = 0;

    if (io_exists(p_modules)) {
        info.is_sentence_transformers = 1;
        rc = read_modules(&cx, p_modules, &info);
    }
    if (rc == AM_OK) {
        p_config = xasprintf("%s/config.json", cx.mdir);
        p_weights = xasprintf("%s/model.safetensors", cx.mdir);
        p_vocab = xasprintf("%s/vocab.txt", cx.mdir);
        p_tok = xasprintf("%s/tokenizer_config.json", cx.mdir);
        p_sbert = xasprintf("%s/sentence_bert_config.json", cx.mdir);
        rc = read_config(p_config, &cfg);
    }
    if (rc == AM_OK && cx.pool_dim && cx.pool_dim != cfg.hidden_size)
        rc = am_error(AM_ESHAPE, "%s: word_embedding_dimension %d differs from hidden_size %d in %s", cx.pool_file,
                      cx.pool_dim, cfg.hidden_size, p_config);
    /* the vocab before the weights: a missing vocab.txt is cheap to report */
    if (rc == AM_OK && !io_exists(p_vocab))
        rc = am_error(AM_ENOTFOUND, "%s: file not found (the WordPiece vocabulary)\nHINT: only BERT WordPiece "
                      "tokenizers with a vocab.txt are supported", p_vocab);
    if (rc == AM_OK && (rc = vocab_load(p_vocab, &v)) != AM_OK && !strstr(am_lasterror(), p_vocab))
        am_error_wrap(rc, "%s", p_vocab);
    if (rc == AM_OK && vocab_size(v) > cfg.vocab_size)
        rc = am_error(AM_EVOCAB, "%s: %d tokens but %s has vocab_size %d (ids past the embedding table)", p_vocab,
                      vocab_size(v), p_config, cfg.vocab_size);
    if (rc == AM_OK) rc = read_tokenizer_config(p_tok, &cfg, &info, &model_max);
    if (rc == AM_OK) rc = read_sbert_config(p_sbert, &info, &max_seq);
    if (rc == AM_OK) {
        if (!io_exists(p_weights)) rc = missing_weights(cx.mdir, p_weights);
        else rc = load_weights(p_weights, p_config, &cfg, &info, &m);
    }
    if (rc == AM_OK) {
        info.max_seq_length = max_seq ? max_seq : model_max ? model_max : cfg.max_position;
        if (info.max_seq_length > cfg.max_position) {
            am_log(AM_LOG_WARN, "%s: max_seq_length %d exceeds max_position_embeddings %d; using %d", p_sbert,
                   info.max_seq_length, cfg.max_position, cfg.max_position);
            info.max_seq_length = cfg.max_position;
        }
    }
    free(p_modules);
    free(p_config);
    free(p_weights);
    free(p_vocab);
    free(p_tok);
    free(p_sbert);
    free(cx.mdir);
    free(cx.pool_file);
    if (rc) {
        model_delete(m);
        vocab_delete(v);
        return rc;
    }
    *model = m;
    *vocab = v;
    if (info_out) *info_out = info;
    return AM_OK;
}

/* ================================================================ export */

static int dir_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *de;
    int empty = 1;
    while (empty && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) empty = 0;
    closedir(d);
    return empty;
}

/* 1 if vocab text has `tok` as a whole line. */
static int vocab_has(const char *text, size_t len, const char *tok) {
    size_t k = strlen(tok);
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n == k && memcmp(p, tok, k) == 0) return 1;
        if (!nl) break;
        p = nl + 1;
    }
    return 0;
}

static size_t vocab_lines(const char *text, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += text[i] == '\n';
    if (len && text[len - 1] != '\n') n++;
    return n;
}

static int save_json(const char *dir, const char *name, cJSON *j) {
    char *p = xasprintf("%s/%s", dir, name);
    int rc = io_json_save(p, j);
    free(p);
    cJSON_Delete(j);
    return rc;
}

static int write_config(const char *dir, const EncoderConfig *c) {
    cJSON *j = config_json_encode(c);
    /* keys transformers writes that amalgam's encoder has no use for */
    cJSON_AddNullToObject(j, "classifier_dropout");
    cJSON_AddStringToObject(j, "torch_dtype", "float32");
    cJSON_AddBoolToObject(j, "use_cache", 1);
    return save_json(dir, "config.json", j);
}

static void add_specials(cJSON *j, int has_mask) {
    cJSON_AddStringToObject(j, "cls_token", "[CLS]");
    if (has_mask) cJSON_AddStringToObject(j, "mask_token", "[MASK]");
    cJSON_AddStringToObject(j, "pad_token", "[PAD]");
    cJSON_AddStringToObject(j, "sep_token", "[SEP]");
    cJSON_AddStringToObject(j, "unk_token", "[UNK]");
}

static int write_tokenizer(const char *dir, const Model *m, const HfInfo *info, int has_mask) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "clean_up_tokenization_spaces", 1);
    cJSON_AddBoolToObject(j, "do_basic_tokenize", 1);
    cJSON_AddBoolToObject(j, "do_lower_case", info->do_lower_case != 0);
    cJSON_AddNumberToObject(j, "model_max_length", m->cfg.max_position);
    cJSON_AddNullToObject(j, "never_split");
    if (info->strip_accents < 0) cJSON_AddNullToObject(j, "strip_accents");
    else cJSON_AddBoolToObject(j, "strip_accents", info->strip_accents != 0);
    cJSON_AddBoolToObject(j, "tokenize_chinese_chars", 1);
    cJSON_AddStringToObject(j, "tokenizer_class", "BertTokenizer");
    add_specials(j, has_mask);
    int rc = save_json(dir, "tokenizer_config.json", j);
    if (rc) return rc;
    j = cJSON_CreateObject();
    add_specials(j, has_mask);
    return save_json(dir, "special_tokens_map.json", j);
}

static cJSON *module(int idx, const char *path, const char *type) {
    cJSON *o = cJSON_CreateObject();
    char name[16];
    snprintf(name, sizeof name, "%d", idx);
    cJSON_AddNumberToObject(o, "idx", idx);
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

static int write_sentence_transformers(const char *dir, const Model *m, const HfInfo *info) {
    cJSON *j = cJSON_CreateArray();
    cJSON_AddItemToArray(j, module(0, "", "sentence_transformers.models.Transformer"));
    cJSON_AddItemToArray(j, module(1, "1_Pooling", "sentence_transformers.models.Pooling"));
    if (info->normalize) cJSON_AddItemToArray(j, module(2, "2_Normalize", "sentence_transformers.models.Normalize"));
    int rc = save_json(dir, "modules.json", j);
    if (rc) return rc;

    /* Versions older than the reader only matter for a warning; 2.2.2 is the oldest release
     * whose Pooling accepts every key written below. prompts / similarity_fn_name are v3 keys
     * that v2 ignores. */
    j = cJSON_CreateObject();
    cJSON *ver = cJSON_AddObjectToObject(j, "__version__");
    cJSON_AddStringToObject(ver, "sentence_transformers", "2.2.2");
    cJSON_AddStringToObject(ver, "transformers", "4.30.0");
    cJSON_AddStringToObject(ver, "pytorch", "1.13.0");
    cJSON_AddObjectToObject(j, "prompts");
    cJSON_AddNullToObject(j, "default_prompt_name");
    cJSON_AddStringToObject(j, "similarity_fn_name", "cosine");
    if ((rc = save_json(dir, "config_sentence_transformers.json", j)) != AM_OK) return rc;

    /* lower-casing is the tokenizer's job (tokenizer_config.json); sentence-transformers'
     * own do_lower_case stays false, as in its published models */
    j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "max_seq_length", info->max_seq_length > 0 && info->max_seq_length < m->cfg.max_position
                                                     ? info->max_seq_length : m->cfg.max_position);
    cJSON_AddBoolToObject(j, "do_lower_case", 0);
    if ((rc = save_json(dir, "sentence_bert_config.json", j)) != AM_OK) return rc;

    char *pdir = xasprintf("%s/1_Pooling", dir);
    if (mkdir(pdir, 0755) != 0) rc = am_error(AM_EIO, "%s: cannot create directory: %s", pdir, strerror(errno));
    if (rc == AM_OK) {
        /* no include_prompt: sentence-transformers < 2.4 would reject the unknown key, and its
         * default (true) is what we mean */
        j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "word_embedding_dimension", m->cfg.hidden_size);
        cJSON_AddBoolToObject(j, "pooling_mode_cls_token", info->pooling == AM_POOL_CLS);
        cJSON_AddBoolToObject(j, "pooling_mode_mean_tokens", info->pooling == AM_POOL_MEAN);
        cJSON_AddBoolToObject(j, "pooling_mode_max_tokens", 0);
        cJSON_AddBoolToObject(j, "pooling_mode_mean_sqrt_len_tokens", 0);
        cJSON_AddBoolToObject(j, "pooling_mode_weightedmean_tokens", 0);
        cJSON_AddBoolToObject(j, "pooling_mode_lasttoken", 0);
        rc = save_json(pdir, "config.json", j);
    }
    free(pdir);
    if (rc == AM_OK && info->normalize) {
        char *ndir = xasprintf("%s/2_Normalize", dir);
        if (mkdir(ndir, 0755) != 0) rc = am_error(AM_EIO, "%s: cannot create directory: %s", ndir, strerror(errno));
        free(ndir);
    }
    return rc;
}

static int write_weights(const char *dir, const Model *m) {
    int n = m->tab.n;
    const char **names = xcalloc((size_t)n, sizeof *names);
    const int64_t **shapes = xcalloc((size_t)n, sizeof *shapes);
    const float **data = xcalloc((size_t)n, sizeof *data);
    int *ndims = xcalloc((size_t)n, sizeof *ndims);
    char **owned = xcalloc((size_t)n, sizeof *owned);
    for (int i = 0; i < n; i++) {
        const ParamInfo *p = &m->tab.t[i];
        names[i] = p->name;
        /* with an MLM head, the BertForMaskedLM layout: encoder under "bert.", head cls.predictions.* */
        if (m->cfg.has_mlm_head && strncmp(p->name, "cls.", 4) != 0) names[i] = owned[i] = xasprintf("bert.%s", p->name);
        shapes[i] = p->shape;
        ndims[i] = p->ndim;
        data[i] = m->params + p->offset;
    }
    char *path = xasprintf("%s/model.safetensors", dir);
    int rc = safetensors_write(path, n, names, shapes, ndims, data, "{\"format\":\"pt\"}");
    free(path);
    for (int i = 0; i < n; i++) free(owned[i]);
    free(owned);
    free(names);
    free(shapes);
    free(data);
    free(ndims);
    return rc;
}

int hf_export_vocab_text(const char *dir_in, const Model *m, const char *vocab, size_t vocab_len,
                         const HfInfo *info_in) {
    HfInfo info;
    if (info_in) info = *info_in;
    else hf_info_default(&info);
    if (info.pooling != AM_POOL_MEAN && info.pooling != AM_POOL_CLS)
        return am_error(AM_EINVAL, "%s: unknown pooling %d", dir_in, info.pooling);
    static const char *need[] = {"[CLS]", "[SEP]", "[UNK]", "[PAD]"};
    for (int i = 0; i < 4; i++)
        if (!vocab_has(vocab, vocab_len, need[i]))
            return am_error(AM_EVOCAB, "%s: cannot export: the vocabulary has no %s token", dir_in, need[i]);
    size_t nv = vocab_lines(vocab, vocab_len);
    if (nv > (size_t)m->cfg.vocab_size)
        return am_error(AM_EVOCAB, "%s: cannot export: vocabulary has %zu tokens but the model's vocab_size is %d",
                        dir_in, nv, m->cfg.vocab_size);

    char *dir = xstrdup(dir_in);
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--) dir[n - 1] = 0;
    int rc = AM_OK;
    if (io_exists(dir) && !(io_is_dir(dir) && dir_is_empty(dir))) {
        rc = am_error(AM_EEXIST, "%s: already exists and is not an empty directory\nHINT: export into a new "
                      "directory, or remove this one first", dir);
        free(dir);
        return rc;
    }
    /* make sure the parent exists, then build everything next to the target */
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        rc = am_mkdir_p(dir);
        *slash = '/';
        if (rc) {
            free(dir);
            return rc;
        }
    }
    char *tmp = xasprintf("%s.tmp.XXXXXX", dir);
    if (!mkdtemp(tmp)) {
        rc = am_error(AM_EIO, "%s: cannot create a temporary directory: %s", tmp, strerror(errno));
        free(tmp);
        free(dir);
        return rc;
    }
    rc = write_config(tmp, &m->cfg);
    if (rc == AM_OK) rc = write_weights(tmp, m);
    if (rc == AM_OK) {
        char *p = xasprintf("%s/vocab.txt", tmp);
        rc = am_write_file(p, vocab, vocab_len);
        free(p);
    }
    if (rc == AM_OK) rc = write_tokenizer(tmp, m, &info, vocab_has(vocab, vocab_len, "[MASK]"));
    if (rc == AM_OK) rc = write_sentence_transformers(tmp, m, &info);
    if (rc == AM_OK && chmod(tmp, 0755) != 0)
        rc = am_error(AM_EIO, "%s: chmod failed: %s", tmp, strerror(errno));
    if (rc == AM_OK) {
        int fd = open(tmp, O_RDONLY | O_DIRECTORY);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
        /* rename(2) replaces an empty directory atomically and fails on a non-empty one,
         * so a concurrent writer cannot have its files mixed with ours */
        if (rename(tmp, dir) != 0)
            rc = am_error(errno == ENOTEMPTY || errno == EEXIST ? AM_EEXIST : AM_EIO, "%s: cannot move the export "
                          "into place: %s", dir, strerror(errno));
    }
    if (rc) {
        am_rm_tree(tmp);
        am_error_wrap(rc, "exporting %s (nothing was written)", dir);
    }
    free(tmp);
    free(dir);
    return rc;
}

int hf_export(const char *dir, const Model *m, const Vocab *v, const HfInfo *info) {
    size_t len = 0;
    const char *text = vocab_text(v, &len);
    if (!text) return am_error(AM_EVOCAB, "%s: cannot export: the vocabulary has no text", dir);
    return hf_export_vocab_text(dir, m, text, len, info);
}
