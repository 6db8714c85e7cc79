/* cmd_bench.c - `amalgam bench encode|train`: the C encoder and the PyTorch peer side by side.
 *
 * The peer is tools/bench/torch_peer.py (same shapes: encode 64 x 64 tokens, train 2 x 32 x 64; same threads),
 * run as a child process in the same invocation; its JSON line is parsed and the ratio printed.
 * AMALGAM_TORCH_PEER=PATH runs another script with the same command line and JSON contract.
 * BLAS kernels: OpenBLAS picks its kernel at load time from OPENBLAS_CORETYPE. The peer runs with
 * SkylakeX (AVX-512) kernels where the CPU has avx512f; so does this benchmark: it re-executes
 * itself with OPENBLAS_CORETYPE=SkylakeX on such CPUs (tests and CI never change it). The kernel
 * that ran is printed. */
#define _GNU_SOURCE
#include "cli.h"
#include "am_base.h"
#include "bench.h"
#include "tensor.h"
#include "bench_train.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cpu_has(const char *flag) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return 0;
    int found = 0;
    while (getline(&buf, &n, f) > 0) {
        if (strncmp(buf, "flags", 5) != 0) continue;
        char pat[64];
        snprintf(pat, sizeof pat, " %s", flag);
        char *p = strstr(buf, pat);
        found = p && (p[strlen(pat)] == ' ' || p[strlen(pat)] == '\n');
        break;
    }
    free(buf);
    fclose(f);
    return found;
}

static const char *torch_peer_path(void) {
    const char *p = getenv("AMALGAM_TORCH_PEER");
    return p && *p ? p : AM_SOURCE_DIR "/tools/bench/torch_peer.py";
}

/* Run the peer; returns the parsed JSON (caller deletes) or NULL with a message. */
static cJSON *run_peer(const char *mode, const char *config, int threads) {
    const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    if (access(torch_peer_path(), R_OK) != 0) {
        am_error(AM_ENOTFOUND, "PyTorch peer %s not found\nHINT: it is tools/bench/torch_peer.py in the source "
                 "tree; set AMALGAM_TORCH_PEER=PATH, or run with --no-peer for the C side alone", torch_peer_path());
        return NULL;
    }
    char *cmd = xasprintf("\"%s\" \"%s\" --mode %s --config %s --threads %d", py, torch_peer_path(), mode, config, threads);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p) { am_error(AM_EIO, "cannot start the PyTorch peer"); return NULL; }
    char *line = NULL, *last = NULL;
    size_t n = 0;
    while (getline(&line, &n, p) > 0)
        if (line[0] == '{') { free(last); last = xstrdup(line); }
    free(line);
    int st = pclose(p);
    if (!last) {
        am_error(AM_EIO, "the PyTorch peer printed no result (exit status %d)%s", st,
                 "\nHINT: it needs Debian's python3-torch: apt-get install python3-torch");
        return NULL;
    }
    cJSON *j = cJSON_Parse(last);
    free(last);
    if (!j) am_error(AM_EFORMAT, "cannot parse the PyTorch peer's JSON line");
    return j;
}

static double jnum(const cJSON *j, const char *a, const char *b, const char *c) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, a);
    if (b) x = cJSON_GetObjectItemCaseSensitive(x, b);
    if (c) x = cJSON_GetObjectItemCaseSensitive(x, c);
    return cJSON_IsNumber(x) ? x->valuedouble : 0.0;
}

/* one config: C timing, then the peer with the same shapes and threads */
static int bench_one(const char *what, const char *config, int threads, int peer) {
    int train = strcmp(what, "train") == 0;
    int steps = strcmp(config, "tiny") == 0 ? 60 : strcmp(config, "mini") == 0 ? 30 : 20;
    if (train) steps /= 2;
    BenchResult r;
    int rc = train ? bench_train(config, 32, 64, threads, 3, steps, &r) : bench_encode(config, 64, 64, threads, 3, steps, &r);
    if (rc) return rc;
    double c_rate = train ? 1e3 / r.ms_median : r.per_s;
    if (!peer) {
        printf("%-6s %12.2f %12s %12s %8s\n", config, r.ms_median, "-", "-", "-");
        return AM_OK;
    }
    cJSON *j = run_peer(what, config, threads);
    if (!j) return AM_EIO;
    double t_ms = jnum(j, what, train ? "ms_per_step" : "ms_per_batch", "median");
    double t_rate = train ? (t_ms > 0 ? 1e3 / t_ms : 0) : jnum(j, "encode", "sentences_per_s_median", NULL);
    const cJSON *core = cJSON_GetObjectItemCaseSensitive(j, "openblas_coretype");
    printf("%-6s %12.2f %12.2f %12.1f %12.1f %7.2fx   (peer: torch %s, OPENBLAS_CORETYPE=%s)\n", config, r.ms_median,
           t_ms, c_rate, t_rate, t_rate > 0 ? c_rate / t_rate : 0,
           cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "torch_version")),
           cJSON_IsString(core) ? core->valuestring : "?");
    if (train)
        printf("       C parts: forward %.2f ms, backward %.2f ms, AdamW %.2f ms; peer: forward %.2f, backward %.2f, "
               "AdamW %.2f\n", r.ms_forward, r.ms_backward, r.ms_optim, jnum(j, "train", "ms_forward_median", NULL),
               jnum(j, "train", "ms_backward_median", NULL), jnum(j, "train", "ms_adamw_median", NULL));
    fflush(stdout);
    cJSON_Delete(j);
    return AM_OK;
}

int cmd_bench(CliArgs *a) {
    const char *what = a->npos > 0 ? a->pos[0] : "encode";
    if (strcmp(what, "quick") == 0 || strcmp(what, "quick-latency") == 0)
        return cmd_bench_quick(a);   /* cmd_eval.c: quick vs full suite; merge + quick eval latency */
    const char *config = cli_get(a, "config");
    int threads, rc;
    if ((rc = cli_get_int(a, "threads", 2, &threads))) return rc;
    int peer = !cli_flag(a, "no-peer");
    if ((rc = cli_check_unused(a))) return rc;
    if (strcmp(what, "merge") == 0) return cmd_bench_merge(config ? config : "small", threads, peer);
    if (strcmp(what, "encode") != 0 && strcmp(what, "train") != 0)
        return am_error(AM_EINVAL, "bench: unknown benchmark '%s' (available: encode, train, merge, quick, quick-latency)", what);
    if (!config) config = "all";
    if (strcmp(config, "all") != 0 && strcmp(config, "tiny") != 0 && strcmp(config, "mini") != 0 &&
        strcmp(config, "small") != 0)
        return am_error(AM_EINVAL, "bench: unknown --config '%s' (tiny, mini, small or all)", config);

    /* choose the same BLAS kernels as the peer: AVX-512 where the CPU has it */
    if (cpu_has("avx512f") && !getenv("AM_BENCH_REEXEC")) {
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
        setenv("AM_BENCH_REEXEC", "1", 1);
        execv("/proc/self/exe", cli_argv);
        /* fall through on failure: run with whatever kernels are loaded */
    }
    int train = strcmp(what, "train") == 0;
    printf("amalgam bench %s: %s, %d threads, C BLAS kernels: %s\n", what,
           train ? "InfoNCE step on 32 pairs x 64 tokens (2 x 32 sequences), AdamW" : "batch 64 x 64 tokens", threads,
           blas_backend());
    printf("%-6s %12s %12s %12s %12s %8s\n", "config", train ? "C ms/step" : "C ms/batch",
           train ? "torch ms/step" : "torch ms/bat", train ? "C steps/s" : "C sent/s",
           train ? "torch steps/s" : "torch sent/s", "speedup");
    const char *all[] = {"tiny", "mini", "small"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(config, "all") != 0 && strcmp(config, all[i]) != 0) continue;
        if ((rc = bench_one(what, all[i], threads, peer))) return rc;
    }
    return AM_OK;
}
