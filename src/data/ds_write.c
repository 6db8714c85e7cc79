/* ds_write.c - writers for the standard dataset formats. Each file is streamed to
 * path.tmp.PID, fsync'd and renamed over path, so a reader never sees half a file; everything
 * a format cannot hold is refused before the first byte is written. */
#define _GNU_SOURCE
#include "am_base.h"
#include "dataset.h"
#include "ds_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- atomic output */

typedef struct {
    FILE *f;
    char *path, *tmp;
    char *buf;
} Out;

static int out_open(Out *o, const char *path) {
    memset(o, 0, sizeof *o);
    o->path = xstrdup(path);
    o->tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
    o->f = fopen(o->tmp, "wb");
    if (!o->f) {
        int rc = am_error(AM_EIO, "%s: cannot create: %s", o->tmp, strerror(errno));
        free(o->path);
        free(o->tmp);
        return rc;
    }
    o->buf = xmalloc(1 << 16);
    setvbuf(o->f, o->buf, _IOFBF, 1 << 16);
    return AM_OK;
}

static void out_puts(Out *o, const char *s) { fputs(s, o->f); }

static void out_json(Out *o, const char *s) {
    static const char hex[] = "0123456789abcdef";
    FILE *f = o->f;
    putc('"', f);
    const char *run = s;
    for (const char *p = s;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        fwrite(run, 1, (size_t)(p - run), f);
        if (!c) break;
        run = p + 1;
        putc('\\', f);
        switch (c) {
        case '"':  putc('"', f); break;
        case '\\': putc('\\', f); break;
        case '\n': putc('n', f); break;
        case '\r': putc('r', f); break;
        case '\t': putc('t', f); break;
        case '\b': putc('b', f); break;
        case '\f': putc('f', f); break;
        default:
            fputs("u00", f);
            putc(hex[c >> 4], f);
            putc(hex[c & 15], f);
        }
    }
    putc('"', f);
}

static void out_abort(Out *o) {
    if (o->f) fclose(o->f);
    unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    free(o->buf);
    memset(o, 0, sizeof *o);
}

static int out_commit(Out *o) {
    int bad = ferror(o->f) || fflush(o->f) != 0 || fsync(fileno(o->f)) != 0;
    int err = errno;
    if (fclose(o->f) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    o->f = NULL;
    if (!bad && rename(o->tmp, o->path) != 0) {
        bad = 1;
        err = errno;
    }
    int rc = bad ? am_error(AM_EIO, "%s: write failed: %s", o->path, strerror(err)) : AM_OK;
    if (bad) unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    free(o->buf);
    memset(o, 0, sizeof *o);
    return rc;
}

/* ---------------------------------------------------------------- checks */

static int has_break(const char *s, int tabs) {
    return strchr(s, '\n') || strchr(s, '\r') || (tabs && strchr(s, '\t'));
}

static int refuse_tsv(const Dataset *ds, const char *path, int64_t row, const char *what) {
    return am_error(AM_EINVAL, "%s: row %lld of %s: %s holds a tab or line break, which TSV cannot hold\n"
                    "HINT: write JSONL (a .jsonl file name) instead", path, (long long)row, ds->origin, what);
}

static int blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\f' && *s != '\v') return 0;
    return 1;
}

/* ---------------------------------------------------------------- per kind */

static void write_pairs(const Dataset *ds, Out *o) {
    int one_pos = 1, one_neg = 1, no_neg = 1;
    for (int64_t i = 0; i < ds->n; i++) {
        int64_t p = ds->pos_start[i + 1] - ds->pos_start[i], m = ds->neg_start[i + 1] - ds->neg_start[i];
        one_pos &= p == 1;
        one_neg &= m == 1;
        no_neg &= m == 0;
    }
    for (int64_t i = 0; i < ds->n; i++) {
        out_puts(o, "{\"query\": ");
        out_json(o, ds->text[i]);
        out_puts(o, ", \"positive\": ");
        if (one_pos) {
            out_json(o, ds->pos[ds->pos_start[i]]);
        } else {
            out_puts(o, "[");
            for (int64_t j = ds->pos_start[i]; j < ds->pos_start[i + 1]; j++) {
                if (j > ds->pos_start[i]) out_puts(o, ", ");
                out_json(o, ds->pos[j]);
            }
            out_puts(o, "]");
        }
        if (one_neg) {
            out_puts(o, ", \"negative\": ");
            out_json(o, ds->neg[ds->neg_start[i]]);
        } else if (!no_neg) {
            out_puts(o, ", \"negatives\": [");
            for (int64_t j = ds->neg_start[i]; j < ds->neg_start[i + 1]; j++) {
                if (j > ds->neg_start[i]) out_puts(o, ", ");
                out_json(o, ds->neg[j]);
            }
            out_puts(o, "]");
        }
        out_puts(o, "}\n");
    }
}

static void write_graded(const Dataset *ds, Out *o, int tsv) {
    char num[32];
    if (tsv) out_puts(o, "sentence1\tsentence2\tscore\n");
    for (int64_t i = 0; i < ds->n; i++) {
        ds_format_double(ds->score[i], num);
        if (tsv) {
            out_puts(o, ds->text[i]);
            out_puts(o, "\t");
            out_puts(o, ds->text2[i]);
            out_puts(o, "\t");
            out_puts(o, num);
            out_puts(o, "\n");
        } else {
            out_puts(o, "{\"sentence1\": ");
            out_json(o, ds->text[i]);
            out_puts(o, ", \"sentence2\": ");
            out_json(o, ds->text2[i]);
            out_puts(o, ", \"score\": ");
            out_puts(o, num);
            out_puts(o, "}\n");
        }
    }
}

static void write_labelled(const Dataset *ds, Out *o, int tsv) {
    if (tsv) out_puts(o, "text\tlabel\n");
    for (int64_t i = 0; i < ds->n; i++) {
        const char *l = ds->label_names[ds->label[i]];
        if (tsv) {
            out_puts(o, ds->text[i]);
            out_puts(o, "\t");
            out_puts(o, l);
            out_puts(o, "\n");
        } else {
            out_puts(o, "{\"text\": ");
            out_json(o, ds->text[i]);
            out_puts(o, ", \"label\": ");
            out_json(o, l);
            out_puts(o, "}\n");
        }
    }
}

static void write_text(const Dataset *ds, Out *o, DatasetFormat fmt) {
    for (int64_t i = 0; i < ds->n; i++) {
        if (fmt == AM_FMT_JSONL) {
            out_puts(o, "{\"text\": ");
            out_json(o, ds->text[i]);
            out_puts(o, "}\n");
        } else {
            if (fmt == AM_FMT_PARAGRAPHS && i > 0) out_puts(o, "\n");
            out_puts(o, ds->text[i]);
            out_puts(o, "\n");
        }
    }
}

/* ---------------------------------------------------------------- BEIR */

static int write_beir(const Dataset *ds, const char *dir) {
    if (ds->n_splits == 0)
        return am_error(AM_EINVAL, "%s: no qrels to write (a BEIR directory needs qrels/<split>.tsv)", dir);
    for (int64_t i = 0; i < ds->n; i++)
        if (has_break(ds->query_id[i], 1))
            return am_error(AM_EINVAL, "%s: query id of row %lld holds a tab or line break (qrels are TSV)", dir,
                            (long long)i);
    for (int64_t d = 0; d < ds->n_docs; d++)
        if (has_break(ds->doc_id[d], 1))
            return am_error(AM_EINVAL, "%s: corpus id of doc %lld holds a tab or line break (qrels are TSV)", dir,
                            (long long)d);
    for (int s = 0; s < ds->n_splits; s++) {
        const char *sp = ds->split_names[s];
        if (!sp[0] || sp[0] == '.' || strchr(sp, '/') || has_break(sp, 1))
            return am_error(AM_EINVAL, "%s: split name \"%s\" cannot be a file name", dir, sp);
    }
    char *qdir = xasprintf("%s/qrels", dir);
    int rc = am_mkdir_p(qdir);
    Out o;
    for (int part = 0; part < 2 && !rc; part++) {
        char *path = xasprintf("%s/%s", dir, part == 0 ? "corpus.jsonl" : "queries.jsonl");
        rc = out_open(&o, path);
        free(path);
        if (rc) break;
        if (part == 0) {
            for (int64_t d = 0; d < ds->n_docs; d++) {
                out_puts(&o, "{\"_id\": ");
                out_json(&o, ds->doc_id[d]);
                out_puts(&o, ", \"title\": ");
                out_json(&o, ds->doc_title[d]);
                out_puts(&o, ", \"text\": ");
                out_json(&o, ds->doc_text[d]);
                out_puts(&o, "}\n");
            }
        } else {
            for (int64_t q = 0; q < ds->n; q++) {
                out_puts(&o, "{\"_id\": ");
                out_json(&o, ds->query_id[q]);
                out_puts(&o, ", \"text\": ");
                out_json(&o, ds->text[q]);
                out_puts(&o, "}\n");
            }
        }
        rc = out_commit(&o);
    }
    for (int s = 0; s < ds->n_splits && !rc; s++) {
        char *path = xasprintf("%s/%s.tsv", qdir, ds->split_names[s]);
        rc = out_open(&o, path);
        free(path);
        if (rc) break;
        out_puts(&o, "query-id\tcorpus-id\tscore\n");
        char num[24];
        for (int64_t j = ds->qrel_start[s]; j < ds->qrel_start[s + 1]; j++) {
            out_puts(&o, ds->query_id[ds->qrel_query[j]]);
            out_puts(&o, "\t");
            out_puts(&o, ds->doc_id[ds->qrel_doc[j]]);
            snprintf(num, sizeof num, "\t%d\n", ds->qrel_grade[j]);
            out_puts(&o, num);
        }
        rc = out_commit(&o);
    }
    /* other splits left from an earlier write would be read back as part of this dataset */
    DIR *d = rc ? NULL : opendir(qdir);
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l <= 4 || strcmp(e->d_name + l - 4, ".tsv") != 0 || e->d_name[0] == '.') continue;
        int ours = 0;
        for (int s = 0; s < ds->n_splits && !ours; s++)
            ours = strlen(ds->split_names[s]) == l - 4 && strncmp(ds->split_names[s], e->d_name, l - 4) == 0;
        if (ours) continue;
        char *p = xasprintf("%s/%s", qdir, e->d_name);
        if (unlink(p) != 0 && !rc) rc = am_error(AM_EIO, "%s: cannot remove stale split: %s", p, strerror(errno));
        free(p);
    }
    if (d) closedir(d);
    free(qdir);
    return rc;
}

/* ---------------------------------------------------------------- entry */

int dataset_write(const Dataset *ds, const char *path, DatasetFormat fmt) {
    AM_ASSERT(ds->impl->finished && "call dataset_finish first");
    if (ds->n == 0)
        return am_error(AM_EINVAL, "%s: refusing to write an empty dataset (it could not be read back)", path);
    int rc = ds_resolve_format(ds->kind, fmt, path, &fmt);
    if (rc) return rc;
    if (ds_ends_with(path, ".gz"))
        return am_error(AM_EINVAL, "%s: writing gzip is not supported\nHINT: write the plain file and gzip it",
                        path);
    if (ds->kind == AM_DS_RETRIEVAL) return write_beir(ds, path);
    /* refuse what the format cannot hold, before creating anything */
    for (int64_t i = 0; i < ds->n; i++) {
        if (fmt == AM_FMT_TSV) {
            if (has_break(ds->text[i], 1)) return refuse_tsv(ds, path, i, ds->kind == AM_DS_GRADED ? "sentence1" : "text");
            if (ds->kind == AM_DS_GRADED && has_break(ds->text2[i], 1)) return refuse_tsv(ds, path, i, "sentence2");
            if (ds->kind == AM_DS_LABELLED && has_break(ds->label_names[ds->label[i]], 1))
                return refuse_tsv(ds, path, i, "label");
        }
        if (fmt == AM_FMT_LINES || fmt == AM_FMT_PARAGRAPHS) {
            if (has_break(ds->text[i], 0))
                return am_error(AM_EINVAL, "%s: document %lld holds a line break, which the %s format cannot "
                                "hold\nHINT: write JSONL (a .jsonl file name) instead", path, (long long)i,
                                fmt == AM_FMT_LINES ? "lines" : "paragraphs");
            if (blank(ds->text[i]))
                return am_error(AM_EINVAL, "%s: document %lld is blank, which the %s format cannot hold", path,
                                (long long)i, fmt == AM_FMT_LINES ? "lines" : "paragraphs");
        }
    }
    Out o;
    if ((rc = out_open(&o, path))) return rc;
    switch (ds->kind) {
    case AM_DS_PAIRS:    write_pairs(ds, &o); break;
    case AM_DS_GRADED:   write_graded(ds, &o, fmt == AM_FMT_TSV); break;
    case AM_DS_LABELLED: write_labelled(ds, &o, fmt == AM_FMT_TSV); break;
    case AM_DS_TEXT:     write_text(ds, &o, fmt); break;
    default:             out_abort(&o); return AM_EINVAL;
    }
    return out_commit(&o);
}
