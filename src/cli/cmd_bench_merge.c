/* cmd_bench_merge.c - `amalgam bench merge`: linear, task arithmetic, TIES and Multi-SLERP of 2, 4
 * and 8 models of a preset config (small by default), each timed in C (src/merge) next to the
 * same merge in NumPy (tools/bench/merge_peer.py, run with /usr/bin/python3 in the same
 * invocation) and next to the machine's memory bandwidth measured by a STREAM-like triad in the
 * same run. Effective bandwidth = one pass of bytes read + written / best time.
 * Targets (issue 12): linear and task arithmetic at >= 50 % of the triad and >= 2x NumPy;
 * TIES and Multi-SLERP within 3x of linear. AMALGAM_MERGE_PEER=PATH runs another peer script. */
#define _GNU_SOURCE
#include "cli.h"
#include "am_base.h"
#include "bench_merge.h"
#include "tensor.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NMETH 4
static const char *const meth_names[NMETH] = {"linear", "task_arithmetic", "ties", "multislerp"};
static const int ks[3] = {2, 4, 8};

typedef struct { double ms[NMETH + 1][3]; int ok; char version[32]; } PeerTimes; /* +1: linear_inplace */

static int peer_index(const char *m) {
    if (!strcmp(m, "linear_inplace")) return NMETH;
    for (int i = 0; i < NMETH; i++) if (!strcmp(m, meth_names[i])) return i;
    return -1;
}

static int run_merge_peer(const ParamTable *tab, int threads, PeerTimes *pt) {
    memset(pt, 0, sizeof *pt);
    const char *path = getenv("AMALGAM_MERGE_PEER");
    if (!path || !*path) path = AM_SOURCE_DIR "/tools/bench/merge_peer.py";
    if (access(path, R_OK) != 0)
        return am_error(AM_ENOTFOUND, "NumPy peer %s not found\nHINT: run with --no-peer for the C side alone", path);
    const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    size_t cap = (size_t)tab->n * 12 + 256, len = 0;
    char *sizes = xmalloc(cap);
    sizes[0] = 0;
    for (int i = 0; i < tab->n; i++) len += (size_t)snprintf(sizes + len, cap - len, "%s%zu", i ? "," : "", tab->t[i].numel);
    char *cmd = xasprintf("OPENBLAS_NUM_THREADS=%d \"%s\" \"%s\" --sizes %s --ks 2,4,8 --reps 2", threads, py, path, sizes);
    free(sizes);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p) return am_error(AM_EIO, "cannot start the NumPy peer");
    char *line = NULL;
    size_t n = 0;
    while (getline(&line, &n, p) > 0) {
        cJSON *j = cJSON_Parse(line);
        if (!j) continue;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "numpy");
        if (cJSON_IsString(v)) snprintf(pt->version, sizeof pt->version, "%s", v->valuestring);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "method"), *k = cJSON_GetObjectItemCaseSensitive(j, "k"),
                    *ms = cJSON_GetObjectItemCaseSensitive(j, "ms");
        if (cJSON_IsString(m) && cJSON_IsNumber(k) && cJSON_IsNumber(ms)) {
            int mi = peer_index(m->valuestring);
            for (int ki = 0; ki < 3; ki++)
                if (mi >= 0 && ks[ki] == k->valueint) { pt->ms[mi][ki] = ms->valuedouble; pt->ok = 1; }
        }
        cJSON_Delete(j);
    }
    free(line);
    int st = pclose(p);
    if (!pt->ok)
        return am_error(AM_EIO, "the NumPy peer printed no result (exit status %d)\nHINT: it needs Debian's "
                        "python3-numpy: apt-get install python3-numpy; or run with --no-peer", st);
    return AM_OK;
}

int cmd_bench_merge(const char *config, int threads, int peer) {
    if (!strcmp(config, "all")) config = "small";
    am_parallel_set_threads(threads);
    Model **models = NULL, *out = NULL;
    int rc = bench_merge_models(config, 8, &models);
    if (rc) return rc;
    if ((rc = model_new(&models[0]->cfg, &out))) { bench_merge_free(models, 8); return rc; }
    size_t total = models[0]->tab.total;
    double triad = bench_triad(32u << 20, 5);
    printf("amalgam bench merge: config %s (%.1f M parameters, %.0f MB per model), %d threads\n", config,
           (double)total / 1e6, (double)total * 4 / 1e6, threads);
    printf("memory bandwidth (triad a = b + s*c, 3 x 128 MB, best of 5): %.2f GB/s\n", triad);
    PeerTimes pt = {0};
    if (peer && (rc = run_merge_peer(&models[0]->tab, threads, &pt))) goto done;
    printf("%-16s %2s %9s %9s %8s %10s %8s   %s\n", "method", "K", "C ms", "C GB/s", "of triad",
           peer ? "numpy ms" : "", peer ? "speedup" : "", peer ? "(numpy in-place form, speedup)" : "");
    double lin_ms[3] = {0};
    int pass = 1;
    for (int ki = 0; ki < 3; ki++) {
        for (int mi = 0; mi < NMETH; mi++) {
            MergeSpec s;
            MergeMethod m;
            merge_method_from_name(meth_names[mi], &m);
            merge_spec_init(&s, m);
            for (int k = 0; k < ks[ki]; k++) {
                float w = 1.0f + 0.1f * (float)k;
                merge_spec_set(&s, MERGE_P_WEIGHT, k, 0, "", &w, 1);
            }
            if (m == MERGE_TIES) { float d = 0.5f; merge_spec_set(&s, MERGE_P_DENSITY, -1, 0, "", &d, 1); }
            MergeBench r;
            rc = bench_merge_time(&s, models, ks[ki], out, 3, &r);
            merge_spec_free(&s);
            if (rc) goto done;
            if (mi == 0) lin_ms[ki] = r.ms_best;
            printf("%-16s %2d %9.1f %9.2f %7.0f%%", meth_names[mi], ks[ki], r.ms_best, r.gbps, 100 * r.gbps / triad);
            double np = pt.ms[mi][ki];
            if (peer && np > 0) printf(" %10.1f %7.2fx", np, np / r.ms_best);
            if (peer && mi == 0 && pt.ms[NMETH][ki] > 0)
                printf("   (%.1f ms, %.2fx)", pt.ms[NMETH][ki], pt.ms[NMETH][ki] / r.ms_best);
            if (mi >= 2) printf("   %.2fx linear", r.ms_best / lin_ms[ki]);
            printf("\n");
            fflush(stdout);
            if (mi <= 1 && r.gbps < 0.5 * triad) pass = 0;
            if (mi >= 2 && r.ms_best > 3 * lin_ms[ki]) pass = 0;
            if (peer && mi <= 1 && np > 0 && np < 2 * r.ms_best) pass = 0;
        }
    }
    printf("targets (linear, task_arithmetic >= 50%% of triad%s; ties, multislerp <= 3x linear): %s\n",
           peer ? " and >= 2x numpy" : "", pass ? "met" : "NOT met");
    if (peer && pt.version[0]) printf("peer: numpy %s (tools/bench/merge_peer.py)\n", pt.version);
done:
    model_delete(out);
    bench_merge_free(models, 8);
    return rc;
}
