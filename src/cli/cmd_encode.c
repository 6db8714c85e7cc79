/* cmd_encode.c - `amalgam encode MODEL < texts.txt > emb.npy`. */
#define _GNU_SOURCE
#include "cli.h"
#include "am_base.h"
#include "embed.h"
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Read one text per line ("\n" or "\r\n"); invalid UTF-8 is an error naming the line. */
static int read_lines(FILE *f, const char *what, char ***out, int *n_out) {
    char **lines = NULL, *buf = NULL;
    size_t cap = 0;
    int n = 0, ncap = 0, rc = AM_OK;
    ssize_t len;
    while ((len = getline(&buf, &cap, f)) >= 0) {
        if (len > 0 && buf[len - 1] == '\n') buf[--len] = 0;
        if (len > 0 && buf[len - 1] == '\r') buf[--len] = 0;
        size_t bad;
        if (am_utf8_validate(buf, (size_t)len, &bad) != AM_OK) {
            rc = am_error(AM_EUTF8, "%s:%d: invalid UTF-8 at byte %zu\nHINT: convert the input to UTF-8 "
                          "(e.g. iconv -f latin1 -t utf-8)", what, n + 1, bad + 1);
            break;
        }
        if (memchr(buf, 0, (size_t)len)) {
            rc = am_error(AM_EFORMAT, "%s:%d: NUL byte in text", what, n + 1);
            break;
        }
        if (n == ncap) {
            ncap = ncap ? 2 * ncap : 1024;
            lines = xrealloc(lines, (size_t)ncap * sizeof *lines);
        }
        lines[n++] = xstrdup(buf);
    }
    free(buf);
    if (!rc && ferror(f)) rc = am_error(AM_EIO, "%s: read error", what);
    if (rc) {
        for (int i = 0; i < n; i++) free(lines[i]);
        free(lines);
        return rc;
    }
    *out = lines;
    *n_out = n;
    return AM_OK;
}

int cmd_encode(CliArgs *a) {
    const char *pooling = cli_get(a, "pooling"), *output = cli_get(a, "output"), *input = cli_get(a, "input");
    int rc;
    EmbedOptions o;
    embed_options_default(&o);
    if ((rc = cli_get_int(a, "layer", -1, &o.layer)) || (rc = cli_get_int(a, "dim", 0, &o.dim)) ||
        (rc = cli_get_int(a, "batch", 64, &o.batch)) || (rc = cli_get_int(a, "max-length", 0, &o.max_len)))
        return rc;
    if (cli_flag(a, "no-normalize")) o.normalize = 0;
    if (cli_flag(a, "normalize")) o.normalize = 1;
    if ((rc = cli_check_unused(a))) return rc;
    if (a->npos != 1) return am_error(AM_EINVAL, "encode: usage: amalgam encode MODEL [options] < texts.txt > emb.npy");
    if (pooling) {
        if ((o.pooling = pool_from_name(pooling)) < 0)
            return am_error(AM_EINVAL, "encode: --pooling must be mean or cls, not '%s'", pooling);
    }
    if (o.batch < 1) return am_error(AM_EINVAL, "encode: --batch must be at least 1");
    if (o.dim < 0) return am_error(AM_EINVAL, "encode: --dim must be positive");
    if (!output && isatty(STDOUT_FILENO))
        return am_error(AM_EINVAL, "encode: refusing to write binary .npy data to a terminal; use --output FILE or "
                        "redirect stdout");

    Store *st = NULL;
    EmbedModel *em = NULL;
    char **lines = NULL;
    int n = 0;
    float *emb = NULL;
    FILE *in = stdin;
    if (input && !(in = fopen(input, "r"))) return am_error(AM_EIO, "encode: cannot open %s", input);
    rc = read_lines(in, input ? input : "<stdin>", &lines, &n);
    if (input) fclose(in);
    if (rc) return rc;
    if ((rc = store_open(a->store_dir, AM_STORE_RDONLY, &st))) goto done;
    if ((rc = embed_model_load(st, a->pos[0], &em))) goto done;
    if (o.layer > em->model->cfg.num_layers) {
        rc = am_error(AM_EINVAL, "encode: --layer %d out of range (model has %d layers)", o.layer,
                      em->model->cfg.num_layers);
        goto done;
    }
    int dim = embed_model_dim(em, &o);
    emb = malloc((size_t)(n ? n : 1) * dim * sizeof(float));
    if (!emb) { rc = am_error(AM_ENOMEM, "encode: cannot allocate %d x %d floats", n, dim); goto done; }
    double t0 = am_now();
    if ((rc = embed_model_encode(em, (const char *const *)lines, n, &o, emb, NULL, NULL))) goto done;
    double dt = am_now() - t0;
    rc = output ? npy_save_f32(output, emb, n, dim) : npy_write_f32(stdout, "<stdout>", emb, n, dim);
    if (!rc)
        fprintf(stderr, "encoded %d texts with %s into (%d, %d) in %.2f s (%.0f texts/s)\n", n, a->pos[0], n, dim, dt,
                dt > 0 ? n / dt : 0.0);
done:
    for (int i = 0; i < n; i++) free(lines[i]);
    free(lines);
    free(emb);
    embed_model_delete(em);
    store_close(st);
    return rc;
}
