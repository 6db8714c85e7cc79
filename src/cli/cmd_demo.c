/* cmd_demo.c - `amalgam demo`: what exists of the main job, on the default store.
 *
 * The full demo (DESIGN.md §2: prepare the benchmark, pretrain a tiny base with MLM, train per-task
 * models, merge, evaluate ID vs OOD live in the TUI) lands with the training, merging and TUI
 * milestones. Until then it prints that plan and runs what exists end to end: a BERT-tiny base in
 * the store, the default ID/OOD benchmark (prepare), text embedding, a quick ID/OOD evaluation and
 * a sentence-transformers export/import round trip. */
#define _GNU_SOURCE
#include "cli.h"
#include "am_base.h"
#include "embed.h"

#include <math.h>
#include <utf8proc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *plan[] = {
    "1. prepare the default ID/OOD benchmark from Debian and npm packages      [runs now]",
    "2. pretrain a tiny BERT base with MLM on packaged text                    [next: training issue]",
    "3. train per-task models from the base, store task vectors                [next: training issue]",
    "4. merge them (soup, TIES, DARE, SLERP, ...) and compare ID vs OOD live   [later: merging + TUI]",
    "5. evaluate every model ID vs OOD (quick and full modes)                  [runs now, on the base]",
};

static const char *texts[] = {
    "The cat sat on the mat.",
    "A kitten is sitting on a rug.",
    "Stock markets fell sharply on Monday.",
    "Les marchés financiers ont chuté lundi.",
    "东京是日本的首都。",
};

/* print s left-aligned in `width` terminal columns (CJK counts double) */
static void print_cols(const char *s, int width) {
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    int used = 0;
    while (*p) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p, -1, &cp);
        if (n <= 0) break;
        int w = utf8proc_charwidth(cp);
        if (used + w > width) break;
        fwrite(p, 1, (size_t)n, stdout);
        used += w;
        p += n;
    }
    printf("%*s", width - used, "");
}

int cmd_demo(CliArgs *a) {
    int rc;
    if ((rc = cli_check_unused(a))) return rc;
    printf("amalgam demo (store: %s)\n\nThe full demo will:\n", a->store_dir);
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) printf("  %s\n", plan[i]);
    printf("\nRunning what exists now:\n");

    Store *st = NULL;
    EmbedModel *em = NULL, *em2 = NULL;
    char id[AM_ID_HEX + 1], id2[AM_ID_HEX + 1];
    char *dir = NULL;
    if ((rc = store_open(a->store_dir, 0, &st))) return rc;

    /* 1. a BERT-tiny base with the bert-base-uncased vocab */
    double t0 = am_now();
    if (store_resolve(st, "base-tiny", id) != AM_OK) {
        am_clearerror();
        EncoderConfig cfg;
        Vocab *v = NULL;
        Model *m = NULL;
        encoder_config_preset(&cfg, "tiny");
        if ((rc = vocab_load(vocab_default_path(), &v))) goto done;
        cfg.vocab_size = vocab_size(v);
        if ((rc = model_new(&cfg, &m))) { vocab_delete(v); goto done; }
        model_init_bert(m, 42);
        HfInfo info;
        hf_info_default(&info);
        info.max_seq_length = 128;
        snprintf(info.source, sizeof info.source, "init-model --config tiny --seed 42");
        size_t vlen;
        const char *vt = vocab_text(v, &vlen);
        rc = embed_store_model(st, m, vt, vlen, &info, "base-tiny", "pretrained", NULL, id);
        model_delete(m);
        vocab_delete(v);
        if (rc) goto done;
        printf("  [1] created base-tiny (BERT-tiny, random BERT init)      id %.12s  %.2f s\n", id, am_now() - t0);
    } else {
        printf("  [1] base-tiny already in the store                        id %.12s\n", id);
    }

    /* 2. the default ID/OOD benchmark (cached after the first run) */
    t0 = am_now();
    printf("  [2] amalgam prepare (first run downloads ~85 MB of Debian and npm packages)\n");
    fflush(stdout);
    store_close(st); /* prepare opens the store itself */
    st = NULL;
    if ((rc = cli_command(a->store_dir, "prepare", 0, NULL))) goto done;
    printf("      prepared in %.1f s\n", am_now() - t0);
    if ((rc = store_open(a->store_dir, 0, &st))) goto done;

    /* 3. embed a few sentences and show cosine similarities */
    t0 = am_now();
    if ((rc = embed_model_load(st, "base-tiny", &em))) goto done;
    int n = (int)(sizeof texts / sizeof texts[0]), C = em->model->cfg.hidden_size;
    float *e = xmalloc((size_t)n * C * sizeof(float));
    EmbedOptions o;
    embed_options_default(&o);
    o.normalize = 1;
    if ((rc = embed_model_encode(em, texts, n, &o, e, NULL, NULL))) { free(e); goto done; }
    printf("  [3] embedded %d sentences (mean pooling, %d dims) in %.3f s; cosine similarities\n", n, C, am_now() - t0);
    printf("      (an untrained model: similarities only reflect shared tokens until training lands)\n");
    for (int i = 0; i < n; i++) {
        printf("      ");
        print_cols(texts[i], 42);
        for (int k = 0; k < n; k++) {
            double s = 0;
            for (int c = 0; c < C; c++) s += (double)e[i * C + c] * (double)e[k * C + c];
            printf(" %6.3f", s);
        }
        printf("\n");
    }
    free(e);

    /* 4. quick ID/OOD evaluation of the base (results stored; later runs reuse them) */
    t0 = am_now();
    printf("  [4] quick ID/OOD evaluation of base-tiny\n");
    fflush(stdout);
    store_close(st);
    st = NULL;
    char *cmp_argv[] = {(char *)"base-tiny", (char *)"--suite", (char *)"quick", NULL};
    if ((rc = cli_command(a->store_dir, "compare", 3, cmp_argv))) goto done;
    printf("      evaluated in %.2f s (untrained: expect near-chance scores until training lands)\n", am_now() - t0);
    if ((rc = store_open(a->store_dir, 0, &st))) goto done;

    /* 5. export as sentence-transformers, import again: same content id */
    t0 = am_now();
    dir = xasprintf("%s/export/base-tiny", a->store_dir);
    char *cmd = xasprintf("rm -rf '%s'", dir);
    if (system(cmd) != 0) am_log(AM_LOG_WARN, "could not clear %s", dir);
    free(cmd);
    char *parent = xasprintf("%s/export", a->store_dir);
    am_mkdir_p(parent);
    free(parent);
    size_t vlen;
    const char *vt = vocab_text(em->vocab, &vlen);
    if ((rc = hf_export_vocab_text(dir, em->model, vt, vlen, &em->info))) goto done;
    Model *m2 = NULL;
    Vocab *v2 = NULL;
    HfInfo info2;
    if ((rc = hf_import(dir, &m2, &v2, &info2))) goto done;
    info2.source[0] = 0;
    store_model_id(m2, vocab_text(v2, &vlen), vlen, id2);
    if ((rc = embed_model_wrap(m2, v2, &info2, &em2))) goto done;
    printf("  [5] exported to %s and re-imported in %.2f s: id %.12s %s\n", dir, am_now() - t0, id2,
           strcmp(id, id2) == 0 ? "(identical)" : "(DIFFERENT!)");
    if (strcmp(id, id2) != 0) rc = am_error(AM_EFORMAT, "demo: export/import round trip changed the model");
    printf("\nNext: amalgam ls models · amalgam info base-tiny --tensors · amalgam ls datasets · "
           "amalgam eval base-tiny --suite default · echo hello | amalgam encode base-tiny --output emb.npy · "
           "amalgam bench encode\n");
done:
    free(dir);
    embed_model_delete(em);
    embed_model_delete(em2);
    store_close(st);
    return rc;
}
