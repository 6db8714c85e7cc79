/* cmd_demo.c - `amalgam demo`: the main job, as far as it exists, on the default store.
 *
 * The demo's job: prepare the benchmark, pretrain a tiny base with MLM, train per-task models, merge,
 * evaluate ID vs OOD live in the TUI. Merging and the TUI land later; this runs the rest end to end
 * through the same commands and recipes a user would run (prepare, recipes/pretrain_base.lua,
 * recipes/train_tasks.lua, compare), then embeds a few sentences and checks a sentence-transformers
 * export/import round trip. Every step reuses what the store already has, so a second run is quick. */
#define _GNU_SOURCE
#include "cli.h"
#include "am_base.h"
#include "embed.h"

#include <math.h>
#include <utf8proc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef AM_SOURCE_DIR
#define AM_SOURCE_DIR "."
#endif

static const char *plan[] = {
    "1. prepare the default ID/OOD benchmark from Debian and npm packages",
    "2. pretrain a tiny BERT base with MLM on packaged text (recipes/pretrain_base.lua, ~4 min)",
    "3. train one model per ID task from the base (recipes/train_tasks.lua, ~1 min)",
    "4. compare every model ID vs OOD against the random init (full suite, ~3 min the first time)",
    "5. embed a few sentences; export as sentence-transformers and re-import",
    "   later: merge the task models (soup, TIES, DARE, SLERP, ...) live in the TUI",
};

/* run a recipe from the source tree's recipes/ (AMALGAM_RECIPES overrides the directory) */
static int run_recipe(const char *store, const char *file) {
    const char *dir = getenv("AMALGAM_RECIPES");
    char *path = xasprintf("%s/%s", dir && *dir ? dir : AM_SOURCE_DIR "/recipes", file);
    char *argv[] = {path, NULL};
    int rc = cli_command(store, "run", 1, argv);
    free(path);
    return rc;
}

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
    printf("amalgam demo (store: %s)\n\n", a->store_dir);
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) printf("  %s\n", plan[i]);
    printf("\n");

    Store *st = NULL;
    EmbedModel *em = NULL, *em2 = NULL;
    char id[AM_ID_HEX + 1], id2[AM_ID_HEX + 1];
    char *dir = NULL;
    const char *show = "base-tiny+deb-desc"; /* the model whose similarities are printed */

    /* 1. the default ID/OOD benchmark (cached after the first run) */
    double t0 = am_now(), t_all = t0;
    printf("[1] amalgam prepare (the first run downloads ~85 MB of Debian and npm packages)\n");
    fflush(stdout);
    if ((rc = cli_command(a->store_dir, "prepare", 0, NULL))) goto done;
    printf("    prepared in %.1f s\n\n", am_now() - t0);

    /* 2-3. the base and the task models (each recipe keeps what the store already has) */
    t0 = am_now();
    printf("[2] MLM pretraining of base-tiny from init-tiny (random BERT init)\n");
    fflush(stdout);
    if ((rc = run_recipe(a->store_dir, "pretrain_base.lua"))) goto done;
    printf("    %.1f s\n\n[3] one model per ID task from base-tiny\n", am_now() - t0);
    fflush(stdout);
    t0 = am_now();
    if ((rc = run_recipe(a->store_dir, "train_tasks.lua"))) goto done;
    printf("    %.1f s\n\n", am_now() - t0);

    /* 4. ID/OOD table against the random init (results stored; later runs reuse them) */
    t0 = am_now();
    printf("[4] ID/OOD comparison on the full suite (scores x100; Δ rows against init-tiny; ~40 s per new model)\n");
    fflush(stdout);
    char *cmp_argv[] = {(char *)"init-tiny", (char *)"base-tiny", (char *)"base-tiny+wn-def", (char *)"base-tiny+deb-desc",
                        (char *)"base-tiny+wn-sts", (char *)"--suite", (char *)"default", NULL};
    if ((rc = cli_command(a->store_dir, "compare", 7, cmp_argv))) goto done;
    printf("    evaluated in %.2f s\n\n", am_now() - t0);
    if ((rc = store_open(a->store_dir, 0, &st))) goto done;
    if ((rc = store_resolve(st, show, id))) goto done;

    /* 5. embed a few sentences with the STS model and show cosine similarities */
    t0 = am_now();
    if ((rc = embed_model_load(st, show, &em))) goto done;
    int n = (int)(sizeof texts / sizeof texts[0]), C = em->model->cfg.hidden_size;
    float *e = xmalloc((size_t)n * C * sizeof(float));
    EmbedOptions o;
    embed_options_default(&o);
    o.normalize = 1;
    if ((rc = embed_model_encode(em, texts, n, &o, e, NULL, NULL))) { free(e); goto done; }
    printf("[5] %s embedded %d sentences (mean pooling, %d dims) in %.3f s; cosine similarities\n", show, n, C,
           am_now() - t0);
    printf("    (4.4M parameters after minutes on 2 cores: shared words count for more than meaning)\n");
    for (int i = 0; i < n; i++) {
        printf("    ");
        print_cols(texts[i], 42);
        for (int k = 0; k < n; k++) {
            double s = 0;
            for (int c = 0; c < C; c++) s += (double)e[i * C + c] * (double)e[k * C + c];
            printf(" %6.3f", s);
        }
        printf("\n");
    }
    free(e);

    /* export as sentence-transformers, import again: same content id */
    t0 = am_now();
    dir = xasprintf("%s/export/%s", a->store_dir, show);
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
    printf("    exported to %s and re-imported in %.2f s: id %.12s %s\n", dir, am_now() - t0, id2,
           strcmp(id, id2) == 0 ? "(identical)" : "(DIFFERENT!)");
    if (strcmp(id, id2) != 0) rc = am_error(AM_EFORMAT, "demo: export/import round trip changed the model");
    printf("\ndemo done in %.1f s\n", am_now() - t_all);
    printf("\nNext: amalgam ls models · amalgam ls runs · amalgam info base-tiny --tensors · "
           "amalgam compare init-tiny base-tiny %s --suite default · echo hello | amalgam encode %s --output emb.npy · "
           "amalgam bench train\n", show, show);
done:
    free(dir);
    embed_model_delete(em);
    embed_model_delete(em2);
    store_close(st);
    return rc;
}
