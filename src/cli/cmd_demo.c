/* cmd_demo.c - `amalgam demo`: the main job on the default store, through the same commands and
 * recipes a user would run.
 *
 * The plan: prepare the benchmark; create and evaluate the random init (the first numbers in
 * Results); pretrain a tiny base with MLM (recipes/pretrain_base.lua) and evaluate it; train one
 * model per ID task (recipes/train_tasks.lua) and evaluate each; train the joint multi-task
 * baseline (recipes/train_joint.lua) and evaluate it; merge the task models three ways (linear
 * soup, task arithmetic, TIES) and evaluate the merges, all on the full default suite. Every step
 * is a child process (`amalgam --store DIR COMMAND ...`, this binary) and reuses what the store
 * has, so a second demo is quick. On a terminal the TUI opens at once and drives the plan
 * (src/tui/demo.c: a status meter, runs live in Runs, Results reloaded after every step); off a
 * terminal, or with --headless, the steps run here one after another with their output, then the
 * ID/OOD table, a few sentences embedded and a sentence-transformers export/import round trip.
 *
 * For tests and quick looks: AMALGAM_DEMO_SCALE=x (0 < x <= 1) scales the training steps,
 * AMALGAM_DEMO_VOCAB=FILE is init-tiny's vocab.txt (small models), AMALGAM_RECIPES replaces the
 * recipes directory, AMALGAM_DEMO_TASKS=SPEC,... evaluates on those ad-hoc tasks instead of the
 * default suite (no prepared benchmark needed). */
#define _GNU_SOURCE
#include "cli.h"
#include "am_base.h"
#include "embed.h"
#include "tui.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <utf8proc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AM_SOURCE_DIR
#define AM_SOURCE_DIR "."
#endif

extern char **environ;

/* ---------------------------------------------------------------- the plan */

#define DEMO_MAX_STEPS 24
#define DEMO_MAX_ARGS 40

typedef struct {
    TuiStep step[DEMO_MAX_STEPS];
    char *args[DEMO_MAX_STEPS][DEMO_MAX_ARGS];
    char *titles[DEMO_MAX_STEPS];
    int n;
} Plan;

static const char *const task_models[] = {"base-tiny+wn-def", "base-tiny+deb-desc", "base-tiny+wn-sts"};
#define NTASK_MODELS 3

/* add a step: title, expected seconds, then the argv words (NULL-terminated) */
static void add_step(Plan *p, double est, const char *title, ...) {
    AM_ASSERT(p->n < DEMO_MAX_STEPS);
    int i = p->n++, k = 0;
    p->titles[i] = xstrdup(title);
    va_list ap;
    va_start(ap, title);
    for (const char *w; (w = va_arg(ap, const char *));) {
        AM_ASSERT(k < DEMO_MAX_ARGS - 1);
        p->args[i][k++] = xstrdup(w);
    }
    va_end(ap);
    p->args[i][k] = NULL;
    p->step[i] = (TuiStep){.title = p->titles[i], .argv = p->args[i], .est = est};
}

/* append words to the last step's argv */
static void add_words(Plan *p, ...) {
    char **a = p->args[p->n - 1];
    int k = 0;
    while (a[k]) k++;
    va_list ap;
    va_start(ap, p);
    for (const char *w; (w = va_arg(ap, const char *));) {
        AM_ASSERT(k < DEMO_MAX_ARGS - 1);
        a[k++] = xstrdup(w);
    }
    va_end(ap);
    a[k] = NULL;
}

static void add_eval(Plan *p, const char *model, double est) {
    char *title = xasprintf("full evaluation of %s", model);
    add_step(p, est, title, "eval", model, "--progress", NULL);
    free(title);
    const char *tasks = getenv("AMALGAM_DEMO_TASKS");
    if (!tasks || !*tasks) {
        add_words(p, "--suite", "default", NULL);
        return;
    }
    char *copy = xstrdup(tasks), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) add_words(p, "--task", t, NULL);
    free(copy);
}

/* steps=N for a recipe, scaled (nothing at scale 1: the recipe's own default) */
static char *scaled(const char *key, int n, double scale) {
    if (scale >= 1) return NULL;
    int v = (int)lround(n * scale);
    return xasprintf("%s=%d", key, v < 1 ? 1 : v);
}

static void build_plan(Plan *p, double scale) {
    memset(p, 0, sizeof *p);
    const char *dir = getenv("AMALGAM_RECIPES");
    char *rdir = xstrdup(dir && *dir ? dir : AM_SOURCE_DIR "/recipes");
    char *pre = xasprintf("%s/pretrain_base.lua", rdir), *tasks = xasprintf("%s/train_tasks.lua", rdir),
         *joint = xasprintf("%s/train_joint.lua", rdir);
    char *s1 = scaled("steps", 1500, scale), *s2 = scaled("steps", 200, scale), *s3 = scaled("sts_steps", 600, scale);
    /* Expected seconds, measured on 2 cores (README): they only feed the ETA. */
    add_step(p, 60, "prepare the ID/OOD benchmark", "prepare", NULL);
    /* the random init first (pretrain_base.lua would make the same one): its full results are
     * the first numbers in Results while the base pretrains */
    add_step(p, 1, "create init-tiny (random init)", "init-model", "--config", "tiny", "--name", "init-tiny", "--seed",
             "1", NULL);
    const char *vocab = getenv("AMALGAM_DEMO_VOCAB");
    if (vocab && *vocab) add_words(p, "--vocab", vocab, NULL);
    add_eval(p, "init-tiny", 30);
    add_step(p, 210 * scale, "pretrain base-tiny (MLM)", "run", pre, s1,
             NULL);
    add_eval(p, "base-tiny", 30);
    add_step(p, 65 * scale, "train the per-task models", "run", tasks, s2,
             s3, NULL);
    for (int i = 0; i < NTASK_MODELS; i++) add_eval(p, task_models[i], 30);
    add_step(p, 60 * scale, "train the joint baseline", "run",
             joint, s2, NULL);
    add_eval(p, "base-tiny+joint", 30);
    add_step(p, 1, "merge: linear soup -> demo-soup", "merge", "--method", "linear", task_models[0],
             task_models[1], task_models[2], "--name", "demo-soup", NULL);
    add_step(p, 1, "merge: task arithmetic -> demo-ta", "merge", "--method",
             "task_arithmetic", "--base", "base-tiny", task_models[0], task_models[1], task_models[2], "--set",
             "lambda=0.5", "--name", "demo-ta", NULL);
    add_step(p, 1, "merge: TIES -> demo-ties", "merge", "--method", "ties", "--base",
             "base-tiny", task_models[0], task_models[1], task_models[2], "--set", "density=0.3", "--name",
             "demo-ties", NULL);
    add_eval(p, "demo-soup", 30);
    add_eval(p, "demo-ta", 30);
    add_eval(p, "demo-ties", 30);
    free(rdir), free(pre), free(tasks), free(joint), free(s1), free(s2), free(s3);
}

static void free_plan(Plan *p) {
    for (int i = 0; i < p->n; i++) {
        free(p->titles[i]);
        for (int k = 0; p->args[i][k]; k++) free(p->args[i][k]);
    }
}

static double demo_scale(void) {
    const char *s = getenv("AMALGAM_DEMO_SCALE");
    if (!s || !*s) return 1;
    double v = strtod(s, NULL);
    return v > 0 && v <= 1 ? v : 1;
}

/* ---------------------------------------------------------------- headless */

static void fmt_secs(char *b, size_t n, double s) {
    int t = (int)(s + 0.5);
    if (t >= 60) snprintf(b, n, "%dm%02ds", t / 60, t % 60);
    else snprintf(b, n, "%ds", t);
}

/* run `amalgam --store DIR ARGV...` as a child with this process's stdout and stderr. Ctrl-C
 * reaches the child (same process group): it stops cleanly (a run checkpoints) and the demo
 * stops after it with the child's exit code, instead of leaving it behind. */
static int run_child(const char *store, char *const *argv) {
    char *full[DEMO_MAX_ARGS + 4];
    int k = 0;
    full[k++] = (char *)"amalgam";
    full[k++] = (char *)"--store";
    full[k++] = (char *)store;
    for (int i = 0; argv[i]; i++) full[k++] = argv[i];
    full[k] = NULL;
    fflush(stdout);
    fflush(stderr);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGINT), sigaddset(&def, SIGTERM);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF);
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_term;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGTERM, &ign, &old_term);
    pid_t pid;
    int rc = posix_spawn(&pid, am_self_exe(), NULL, &at, full, environ);
    posix_spawnattr_destroy(&at);
    int status = 0;
    if (!rc) tui_demo_pid_write(store, (int)pid, 0);
    if (!rc)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (!rc) tui_demo_pid_write(store, 0, 0);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (rc) return am_error(AM_EIO, "demo: cannot start amalgam %s: %s", argv[0], strerror(rc));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return AM_OK;
    if (WIFSIGNALED(status)) return am_error(AM_EIO, "demo: amalgam %s killed by signal %d", argv[0], WTERMSIG(status));
    int code = WEXITSTATUS(status);
    if (code == 130 || code == 143) {   /* interrupted: the child said so */
        fprintf(stderr, "amalgam demo: interrupted during amalgam %s; `amalgam demo` again goes on from the store\n",
                argv[0]);
        return code;
    }
    return am_error(AM_EIO, "demo: amalgam %s failed (exit %d)", argv[0], code);
}

static int run_headless(const char *store, const Plan *p) {
    int earlier = tui_demo_pid_running(store);
    if (earlier) {
        printf("waiting for the step an earlier demo left running (pid %d; its output: %s/logs/demo.log)\n", earlier,
               store);
        fflush(stdout);
        while (tui_demo_pid_running(store)) usleep(200000);
    }
    double t_all = am_now(), left = 0;
    for (int i = 0; i < p->n; i++) left += p->step[i].est;
    for (int i = 0; i < p->n; i++) {
        char el[16], eta[16];
        fmt_secs(el, sizeof el, am_now() - t_all);
        fmt_secs(eta, sizeof eta, left);
        printf("\n[%d/%d] %s  (elapsed %s, ETA ~%s)\n     amalgam", i + 1, p->n, p->step[i].title, el, eta);
        for (int k = 0; p->step[i].argv[k]; k++) printf(" %s", p->step[i].argv[k]);
        printf("\n");
        double t0 = am_now();
        int rc = run_child(store, p->step[i].argv);
        if (rc) return rc;
        fmt_secs(el, sizeof el, am_now() - t0);
        printf("     step %d/%d done in %s\n", i + 1, p->n, el);
        left -= p->step[i].est;
        if (left < 0) left = 0;
    }
    return AM_OK;
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
    int headless = cli_flag(a, "headless") || !isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO);
    if ((rc = cli_check_unused(a))) return rc;
    if (a->npos) return am_error(AM_EINVAL, "demo: unexpected argument '%s'", a->pos[0]);
    Plan plan;
    build_plan(&plan, demo_scale());

    Store *st = NULL;
    EmbedModel *em = NULL, *em2 = NULL;
    char id[AM_ID_HEX + 1], id2[AM_ID_HEX + 1];
    char *dir = NULL;
    const char *show = "base-tiny+deb-desc"; /* the model whose similarities are printed */

    /* the store must exist before the TUI opens it (a fresh clone has none yet) */
    if ((rc = store_open(a->store_dir, 0, &st))) goto done;
    store_close(st);
    st = NULL;
    if (!headless) {
        /* the TUI drives the plan: each step a child in its own session, so quitting the TUI
         * leaves the running step going; the next `amalgam demo` waits for it and goes on */
        char *logs = xasprintf("%s/logs", a->store_dir);
        am_mkdir_p(logs);
        char *log = xasprintf("%s/demo.log", logs);
        free(logs);
        TuiOptions o = {.store_dir = a->store_dir, .panel = "results", .steps = plan.step, .nsteps = plan.n,
                        .log_path = log};
        rc = tui_main(&o);
        free(log);
        free_plan(&plan);
        return rc;
    }

    printf("amalgam demo (store: %s): %d steps, each a command you could run yourself\n", a->store_dir, plan.n);
    for (int i = 0; i < plan.n; i++) printf("  %2d. %s\n", i + 1, plan.step[i].title);
    double t_all = am_now(), t0;
    if ((rc = run_headless(a->store_dir, &plan))) goto done;

    /* the ID/OOD table of every demo model against the base (all stored by now: no evaluation) */
    printf("\nID/OOD on the full suite (scores x100; Δ rows against base-tiny)\n");
    fflush(stdout);
    {
        char *cmp[64];
        int k = 0;
        const char *models[] = {"init-tiny", "base-tiny", task_models[0], task_models[1], task_models[2],
                                "base-tiny+joint", "demo-soup", "demo-ta", "demo-ties"};
        for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) cmp[k++] = (char *)models[i];
        cmp[k++] = (char *)"--ref";
        cmp[k++] = (char *)"base-tiny";
        cmp[k++] = (char *)"--no-eval";
        /* the eval step's suite or tasks */
        char *const *ev = plan.step[2].argv;   /* eval init-tiny --progress ... */
        for (int i = 3; ev[i] && k < 62; i++) cmp[k++] = ev[i];
        cmp[k] = NULL;
        if ((rc = cli_command(a->store_dir, "compare", k, cmp))) goto done;
    }
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
    printf("\n%s embedded %d sentences (mean pooling, %d dims) in %.3f s; cosine similarities\n", show, n, C,
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
    printf("\nOn a terminal `amalgam demo` shows all this in the TUI; `amalgam` alone opens it on the store.\n");
    printf("\nNext: amalgam ls models · amalgam ls runs · amalgam info base-tiny --tensors · "
           "amalgam compare init-tiny base-tiny %s --suite default · echo hello | amalgam encode %s --output emb.npy · "
           "amalgam bench train\n", show, show);
done:
    free_plan(&plan);
    free(dir);
    embed_model_delete(em);
    embed_model_delete(em2);
    store_close(st);
    return rc;
}
