/* cli.h - shared pieces of the `amalgam` command: argument parsing and dispatch. */
#ifndef AM_CLI_H
#define AM_CLI_H

#include <stddef.h>

#define CLI_MAX_OPTS 32
#define CLI_MAX_POS 64

typedef struct {
    const char *name;   /* without the leading dashes */
    const char *value;  /* NULL for flags */
    int used;
} CliOpt;

typedef struct {
    const char *cmd;
    int npos;
    const char *pos[CLI_MAX_POS];
    int nopt;
    CliOpt opt[CLI_MAX_OPTS];
    const char *store_dir;  /* --store, $AMALGAM_STORE or ./store */
} CliArgs;

/* Parse argv after the command word. `flags` lists option names that take no value, `opts`
 * those that take one (--name=v or --name v); both NULL-terminated or NULL. Any other option
 * is AM_EINVAL naming it. --store DIR is accepted by every command. */
int cli_parse(int argc, char **argv, const char *cmd, const char *const *flags, const char *const *opts,
              CliArgs *a);
const char *cli_get(CliArgs *a, const char *name);            /* NULL if absent */
int cli_get_int(CliArgs *a, const char *name, int def, int *out); /* AM_EINVAL if not an integer */
int cli_flag(CliArgs *a, const char *name);
/* AM_EINVAL naming the first option the command did not read. */
int cli_check_unused(CliArgs *a);
/* The exit code for a command's return value rc, which main returns (nothing below main exits):
 * 0 for AM_OK; a negative AM_E* code prints "amalgam: error: <am_errmsg(rc)>" and gives 2 for
 * AM_EINVAL (usage), else 1; a positive rc is an exit code the command already reported (the Lua
 * host's am_lua_finish: 1, 2, 130 after SIGINT, 143 after SIGTERM) and is returned as is. */
int cli_fail(int rc);

extern char **cli_argv; /* main's argv, for re-exec */

/* Run command `name` with argv (after the command word) on store dir, as the command line
 * would; returns its status code (the caller prints errors). Used by `demo`. */
int cli_command(const char *store, const char *name, int argc, char **argv);

/* A command: AM_OK, a negative AM_E* code (message recorded), or a positive exit code (cli_fail). */
typedef int (*CliFn)(CliArgs *a);
int cmd_init_model(CliArgs *a);
int cmd_import(CliArgs *a);
int cmd_export(CliArgs *a);
int cmd_encode(CliArgs *a);
int cmd_ls(CliArgs *a);
int cmd_info(CliArgs *a);
int cmd_bench(CliArgs *a);
int cmd_bench_merge(const char *config, int threads, int peer); /* cmd_bench_merge.c */
int cmd_demo(CliArgs *a);
int cmd_run(CliArgs *a);   /* cmd_lua.c */
int cmd_lua(CliArgs *a);   /* cmd_lua.c */
int cmd_eval(CliArgs *a);                  /* cmd_eval.c */
int cmd_compare(CliArgs *a);               /* cmd_eval.c */
int cmd_bench_quick(CliArgs *a);           /* cmd_eval.c */
int cmd_ls_results(CliArgs *a, int json);  /* cmd_eval.c: amalgam ls results */
int cmd_prepare(CliArgs *a);                 /* cmd_prepare.c */
int cmd_ls_datasets(CliArgs *a, int json); /* cmd_prepare.c: amalgam ls datasets */
int cmd_rm(CliArgs *a);                      /* cmd_gc.c */
int cmd_gc(CliArgs *a);                      /* cmd_gc.c */
int cmd_du(CliArgs *a);                      /* cmd_gc.c: also `amalgam info` without an argument */
int cmd_ls_models(CliArgs *a, int json);     /* cmd_gc.c: amalgam ls models */
struct cJSON;
const char *cli_bytes(double bytes, char buf[24]);  /* "17.6 MB" */
/* cmd_gc.c: member k of object j as a string (def if absent or not one) or a number (0) */
const char *cli_jstr(const struct cJSON *j, const char *k, const char *def);
double cli_jnum(const struct cJSON *j, const char *k);
const char *cli_model_kind(const struct cJSON *meta); /* meta kind; "init" for random inits */
/* a model's label for listings: its names, else "RUN@STEP" for a checkpoint, else "-" */
const char *cli_model_label(const char *names, const struct cJSON *meta, char *buf, size_t cap);
/* cmd_runs.c (Store is store.h's; the CLI files include it through embed.h) */
struct Store;
int cmd_ls_runs(CliArgs *a, struct Store *st, int json);          /* amalgam ls runs */
/* amalgam info RUN: the summary or (json) the record of run q (an exact id, or with prefix a
 * unique prefix); 1 = not a run (nothing printed), else AM_OK or an error code */
int cli_info_run(struct Store *st, const char *q, int json, int prefix);
void cli_print_model_run(struct Store *st, const char *meta_json); /* info MODEL: its run */
int cmd_resume(CliArgs *a);
int cmd_tui(CliArgs *a);                     /* cmd_tui.c */
int cmd_merge(CliArgs *a);                                      /* cmd_merge.c */
int cmd_diff(CliArgs *a);                                       /* cmd_merge.c */
int cmd_sweep(CliArgs *a);                                      /* cmd_merge.c */
void cli_print_merge(struct Store *st, const char *meta_json);  /* info MODEL of a merge */

#endif
