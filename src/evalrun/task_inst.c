/* task_inst.c - the instance one evaluation embeds and scores: unique texts and role indices
 * per task type, and the seeded quick-mode subsample. */
#define _GNU_SOURCE
#include "evalrun_internal.h"
#include "am_base.h"
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- sampling */

int evalrun_pick(int n, int k, uint64_t seed, int *out) {
    if (k <= 0 || k >= n) {
        for (int i = 0; i < n; i++) out[i] = i;
        return n;
    }
    int *p = xmalloc((size_t)n * sizeof *p);
    for (int i = 0; i < n; i++) p[i] = i;
    AmRng r;
    am_rng_seed(&r, seed);
    for (int i = 0; i < k; i++) {
        int j = i + (int)am_rng_below(&r, (uint32_t)(n - i));
        int tmp = p[i];
        p[i] = p[j];
        p[j] = tmp;
    }
    memcpy(out, p, (size_t)k * sizeof *out);
    free(p);
    /* ascending */
    for (int i = 1; i < k; i++) {
        int v = out[i], j = i - 1;
        while (j >= 0 && out[j] > v) { out[j + 1] = out[j]; j--; }
        out[j + 1] = v;
    }
    return k;
}

/* k of n labelled rows, labels spread evenly: a seeded permutation, then round robin over the
 * labels in that order (each label gives its next row until k are taken or the label runs out),
 * so a quick probe sees every label (MTEB's samples_per_label needs 8 of each) and a quick
 * clustering sample has every cluster. Ascending indices in out; returns the count. */
int evalrun_pick_stratified(const int *label, int n, int n_labels, int k, uint64_t seed, int *out) {
    if (k <= 0 || k >= n || n_labels < 2) return evalrun_pick(n, k, seed, out);
    int *perm = xmalloc((size_t)n * sizeof *perm);
    for (int i = 0; i < n; i++) perm[i] = i;
    AmRng r;
    am_rng_seed(&r, seed);
    for (int i = 0; i < n - 1; i++) {
        int j = i + (int)am_rng_below(&r, (uint32_t)(n - i));
        int tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    /* rows of each label in permutation order (CSR) */
    int *cnt = xcalloc((size_t)n_labels + 1, sizeof *cnt), *pos = xcalloc((size_t)n_labels, sizeof *pos);
    int *rows = xmalloc((size_t)n * sizeof *rows);
    for (int i = 0; i < n; i++) cnt[label[i] + 1]++;
    for (int l = 0; l < n_labels; l++) cnt[l + 1] += cnt[l];
    for (int i = 0; i < n; i++) {
        int l = label[perm[i]];
        rows[cnt[l] + pos[l]++] = perm[i];
    }
    int m = 0;
    for (int round = 0; m < k; round++) {
        int any = 0;
        for (int l = 0; l < n_labels && m < k; l++)
            if (round < cnt[l + 1] - cnt[l]) {
                out[m++] = rows[cnt[l] + round];
                any = 1;
            }
        if (!any) break;
    }
    free(perm);
    free(cnt);
    free(pos);
    free(rows);
    for (int i = 1; i < m; i++) {
        int v = out[i], j = i - 1;
        while (j >= 0 && out[j] > v) { out[j + 1] = out[j]; j--; }
        out[j + 1] = v;
    }
    return m;
}

/* a sub-seed per role, so queries and docs are drawn independently */
static uint64_t subseed(uint64_t seed, const char *role) { return am_hash64(role, strlen(role), seed ^ 0x5bd1e995ull); }

/* ---------------------------------------------------------------- instances */

/* unique texts: string -> index */
typedef struct {
    EvalInst *in;
    int *slot;          /* (cap) text index or -1 */
    size_t cap;
} TextSet;

static void ts_init(TextSet *ts, EvalInst *in, size_t expect) {
    ts->in = in;
    ts->cap = 1024;
    while (ts->cap < 2 * expect + 16) ts->cap *= 2;
    ts->slot = xmalloc(ts->cap * sizeof *ts->slot);
    for (size_t i = 0; i < ts->cap; i++) ts->slot[i] = -1;
    in->texts = xmalloc(((size_t)expect + 1) * sizeof *in->texts);
}

static int ts_add(TextSet *ts, const char *s, size_t *tcap) {
    EvalInst *in = ts->in;
    size_t m = ts->cap - 1;
    size_t i = am_hash64(s, strlen(s), 7) & m;
    for (;; i = (i + 1) & m) {
        int v = ts->slot[i];
        if (v < 0) break;
        if (strcmp(in->texts[v], s) == 0) return v;
    }
    if ((size_t)in->ntexts + 1 > *tcap) {
        *tcap = *tcap * 2 + 16;
        in->texts = xrealloc(in->texts, *tcap * sizeof *in->texts);
    }
    in->texts[in->ntexts] = s;
    ts->slot[i] = in->ntexts;
    int idx = in->ntexts++;
    if ((size_t)in->ntexts * 2 > ts->cap) { /* grow and rehash */
        free(ts->slot);
        ts->cap *= 2;
        ts->slot = xmalloc(ts->cap * sizeof *ts->slot);
        for (size_t k = 0; k < ts->cap; k++) ts->slot[k] = -1;
        for (int t = 0; t < in->ntexts; t++) {
            size_t j = am_hash64(in->texts[t], strlen(in->texts[t]), 7) & (ts->cap - 1);
            while (ts->slot[j] >= 0) j = (j + 1) & (ts->cap - 1);
            ts->slot[j] = t;
        }
    }
    return idx;
}

static void ts_free(TextSet *ts) { free(ts->slot); }

static const char *own_str(EvalInst *in, char *s) {
    if (in->nown == in->cap_own) {
        in->cap_own = in->cap_own ? 2 * in->cap_own : 256;
        in->own = xrealloc(in->own, (size_t)in->cap_own * sizeof *in->own);
    }
    in->own[in->nown++] = s;
    return s;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* strip(title + " " + text), as MTEB/BEIR build a document; borrowed when nothing changes */
static const char *doc_text(EvalInst *in, const char *title, const char *text) {
    if (!title || !*title) {
        size_t n = strlen(text);
        if (n == 0 || (!is_space(text[0]) && !is_space(text[n - 1]))) return text;
        title = "";
    }
    char *s = xasprintf("%s %s", title, text);
    char *b = s;
    while (*b && is_space(*b)) b++;
    size_t n = strlen(b);
    while (n > 0 && is_space(b[n - 1])) n--;
    memmove(s, b, n);
    s[n] = 0;
    return own_str(in, s);
}

void evalinst_free(EvalInst *in) {
    for (int i = 0; i < in->nown; i++) free(in->own[i]);
    free(in->own);
    free(in->texts);
    free(in->a);
    free(in->b);
    free(in->qoff);
    free(in->qdoc);
    free(in->qgrade);
    free(in->doc_ids);
    free(in->self_doc);
    free(in->gold);
    free(in->la);
    free(in->lb);
    free(in->gold_idx);
    memset(in, 0, sizeof *in);
}

/* docs for a quick sample: the `keep` docs (flags) + random others up to `total` (<= 0: every
 * doc); positions in ascending doc order. Returns the count; pos (nd) gets each doc's position
 * or -1. */
static int pick_docs(int nd, const unsigned char *keep, int total, uint64_t seed, int *docs, int *pos) {
    unsigned char *mark = xcalloc((size_t)nd + 1, 1);
    int nk = 0;
    for (int i = 0; i < nd; i++)
        if (keep[i] || total <= 0) mark[i] = 1, nk++;
    if (total > nk) {
        int nother = nd - nk;
        int *others = xmalloc((size_t)(nother ? nother : 1) * sizeof *others);
        int *pick = xmalloc((size_t)(nother ? nother : 1) * sizeof *pick);
        for (int i = 0, j = 0; i < nd; i++)
            if (!mark[i]) others[j++] = i;
        int np = evalrun_pick(nother, total - nk, seed, pick);
        for (int i = 0; i < np; i++) mark[others[pick[i]]] = 1;
        free(others);
        free(pick);
    }
    int n = 0;
    for (int i = 0; i < nd; i++) {
        pos[i] = mark[i] ? n : -1;
        if (mark[i]) docs[n++] = i;
    }
    free(mark);
    return n;
}

static int build_retrieval(const EvalTask *t, const TaskData *d, EvalMode mode, EvalInst *in) {
    const Dataset *ds = d->test;
    int nq = (int)ds->n, nd = (int)ds->n_docs;
    int64_t qs = ds->qrel_start[d->split], qe = ds->qrel_start[d->split + 1];
    int *cnt = xcalloc((size_t)nq + 1, sizeof *cnt), *rel = xcalloc((size_t)nq + 1, sizeof *rel);
    for (int64_t i = qs; i < qe; i++) {
        cnt[ds->qrel_query[i]]++;
        if (ds->qrel_grade[i] > 0) rel[ds->qrel_query[i]]++;
    }
    int *elig = xmalloc((size_t)(nq ? nq : 1) * sizeof *elig), ne = 0;
    for (int q = 0; q < nq; q++)
        if (mode == AM_EVAL_QUICK ? rel[q] > 0 : cnt[q] > 0) elig[ne++] = q;
    if (ne == 0) {
        free(cnt); free(rel); free(elig);
        return am_error(AM_EFORMAT, "task '%s': no query has judgments in split '%s' of %s", t->name,
                        ds->split_names[d->split], ds->origin);
    }
    int *sel = xmalloc((size_t)ne * sizeof *sel);
    int ns = evalrun_pick(ne, mode == AM_EVAL_QUICK ? t->quick_n : 0, subseed(t->seed, "queries"), sel);
    for (int i = 0; i < ns; i++) sel[i] = elig[sel[i]];
    /* judged docs of the selected queries */
    unsigned char *issel = xcalloc((size_t)nq + 1, 1), *keep = xcalloc((size_t)nd + 1, 1);
    for (int i = 0; i < ns; i++) issel[sel[i]] = 1;
    for (int64_t i = qs; i < qe; i++)
        if (issel[ds->qrel_query[i]]) keep[ds->qrel_doc[i]] = 1;
    int *docs = xmalloc((size_t)(nd ? nd : 1) * sizeof *docs), *pos = xmalloc((size_t)(nd ? nd : 1) * sizeof *pos);
    int ndocs = pick_docs(nd, keep, mode == AM_EVAL_QUICK ? t->quick_docs : 0, subseed(t->seed, "docs"), docs, pos);
    /* texts */
    TextSet ts;
    size_t tcap = (size_t)ns + (size_t)ndocs + 1;
    ts_init(&ts, in, tcap);
    in->na = ns;
    in->nb = ndocs;
    in->a = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->a);
    in->b = xmalloc((size_t)(ndocs ? ndocs : 1) * sizeof *in->b);
    in->doc_ids = xmalloc((size_t)(ndocs ? ndocs : 1) * sizeof *in->doc_ids);
    for (int i = 0; i < ns; i++) in->a[i] = ts_add(&ts, ds->text[sel[i]], &tcap);
    for (int j = 0; j < ndocs; j++) {
        int dj = docs[j];
        in->b[j] = ts_add(&ts, doc_text(in, ds->doc_title[dj], ds->doc_text[dj]), &tcap);
        in->doc_ids[j] = ds->doc_id[dj];
    }
    ts_free(&ts);
    /* qrels CSR over the selected queries (split order kept within a query) */
    int *qpos = xmalloc((size_t)(nq ? nq : 1) * sizeof *qpos);
    for (int q = 0; q < nq; q++) qpos[q] = -1;
    for (int i = 0; i < ns; i++) qpos[sel[i]] = i;
    in->qoff = xcalloc((size_t)ns + 1, sizeof *in->qoff);
    for (int64_t i = qs; i < qe; i++) {
        int qp = qpos[ds->qrel_query[i]];
        if (qp >= 0 && pos[ds->qrel_doc[i]] >= 0) in->qoff[qp + 1]++;
    }
    for (int i = 0; i < ns; i++) in->qoff[i + 1] += in->qoff[i];
    int nj = in->qoff[ns];
    in->qdoc = xmalloc((size_t)(nj ? nj : 1) * sizeof *in->qdoc);
    in->qgrade = xmalloc((size_t)(nj ? nj : 1) * sizeof *in->qgrade);
    int *fill = xmalloc((size_t)(ns ? ns : 1) * sizeof *fill);
    for (int i = 0; i < ns; i++) fill[i] = in->qoff[i];
    for (int64_t i = qs; i < qe; i++) {
        int qp = qpos[ds->qrel_query[i]], dp = pos[ds->qrel_doc[i]];
        if (qp < 0 || dp < 0) continue;
        in->qdoc[fill[qp]] = dp;
        in->qgrade[fill[qp]++] = ds->qrel_grade[i];
    }
    /* queries whose id is also a doc id: MTEB's ignore_identical_ids drops that doc */
    {
        size_t cap = 16;
        while (cap < 2 * (size_t)ndocs + 16) cap *= 2;
        int *slot = xmalloc(cap * sizeof *slot);
        for (size_t i = 0; i < cap; i++) slot[i] = -1;
        for (int j = 0; j < ndocs; j++) {
            const char *id = in->doc_ids[j];
            size_t h = am_hash64(id, strlen(id), 11) & (cap - 1);
            while (slot[h] >= 0) h = (h + 1) & (cap - 1);
            slot[h] = j;
        }
        if (t->ignore_identical_ids) in->self_doc = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->self_doc);
        for (int i = 0; i < ns; i++) {
            const char *qid = ds->query_id[sel[i]];
            int found = -1;
            for (size_t h = am_hash64(qid, strlen(qid), 11) & (cap - 1); slot[h] >= 0; h = (h + 1) & (cap - 1))
                if (strcmp(in->doc_ids[slot[h]], qid) == 0) { found = slot[h]; break; }
            in->n_identical += found >= 0;
            if (in->self_doc) in->self_doc[i] = found;
        }
        free(slot);
    }
    in->size_a = "queries";
    in->size_b = "docs";
    free(fill); free(qpos); free(docs); free(pos); free(issel); free(keep); free(sel); free(elig); free(cnt); free(rel);
    return AM_OK;
}

/* MTEB's bitext mining: row i's source against the targets of all rows, gold = row i. The
 * rows are the pairs file's rows (target = the first positive; negatives are not used) or the
 * BEIR queries with a relevant doc (target = the best-graded one). Identical targets stay
 * separate rows, as in MTEB. Quick mode takes quick.n rows, sources and targets alike. */
static int build_bitext_rows(const EvalTask *t, const TaskData *d, EvalMode mode, EvalInst *in) {
    const Dataset *ds = d->test;
    int nq = (int)ds->n;
    const char **src = xmalloc((size_t)(nq ? nq : 1) * sizeof *src), **tgt = xmalloc((size_t)(nq ? nq : 1) * sizeof *tgt);
    int nrows = 0;
    if (ds->kind == AM_DS_RETRIEVAL) {
        int64_t qs = ds->qrel_start[d->split], qe = ds->qrel_start[d->split + 1];
        int *gold = xmalloc((size_t)(nq ? nq : 1) * sizeof *gold), *gg = xcalloc((size_t)nq + 1, sizeof *gg);
        for (int q = 0; q < nq; q++) gold[q] = -1;
        for (int64_t i = qs; i < qe; i++) {
            int q = (int)ds->qrel_query[i];
            if (ds->qrel_grade[i] > gg[q]) { gg[q] = ds->qrel_grade[i]; gold[q] = (int)ds->qrel_doc[i]; }
        }
        for (int q = 0; q < nq; q++) {
            if (gold[q] < 0) continue;
            src[nrows] = ds->text[q];
            tgt[nrows++] = doc_text(in, ds->doc_title[gold[q]], ds->doc_text[gold[q]]);
        }
        free(gold);
        free(gg);
        if (nrows == 0) {
            free(src); free(tgt);
            return am_error(AM_EFORMAT, "task '%s': no query has a relevant doc in split '%s' of %s", t->name,
                            ds->split_names[d->split], ds->origin);
        }
    } else {
        for (int r = 0; r < nq; r++) {
            if (ds->pos_start[r + 1] == ds->pos_start[r]) continue;   /* no target */
            src[nrows] = ds->text[r];
            tgt[nrows++] = ds->pos[ds->pos_start[r]];
        }
        if (nrows == 0) {
            free(src); free(tgt);
            return am_error(AM_EFORMAT, "task '%s': %s has no row with a positive (the target)", t->name, ds->origin);
        }
    }
    int *sel = xmalloc((size_t)nrows * sizeof *sel);
    int ns = evalrun_pick(nrows, mode == AM_EVAL_QUICK ? t->quick_n : 0, subseed(t->seed, "sources"), sel);
    TextSet ts;
    size_t tcap = 2 * (size_t)ns + 1;
    ts_init(&ts, in, tcap);
    in->na = in->nb = ns;
    in->a = xmalloc((size_t)ns * sizeof *in->a);
    in->b = xmalloc((size_t)ns * sizeof *in->b);
    in->gold_idx = xmalloc((size_t)ns * sizeof *in->gold_idx);
    for (int i = 0; i < ns; i++) in->a[i] = ts_add(&ts, src[sel[i]], &tcap);
    for (int i = 0; i < ns; i++) {
        in->b[i] = ts_add(&ts, tgt[sel[i]], &tcap);
        in->gold_idx[i] = i;
    }
    ts_free(&ts);
    free(src); free(tgt); free(sel);
    return AM_OK;
}

static int build_bitext(const EvalTask *t, const TaskData *d, EvalMode mode, EvalInst *in) {
    const Dataset *ds = d->test;
    int quick = mode == AM_EVAL_QUICK;
    in->size_a = "sources";
    in->size_b = "targets";
    if (!t->candidate_pool) return build_bitext_rows(t, d, mode, in);
    /* the candidate pool (not MTEB): every doc / every distinct positive and negative */
    if (ds->kind == AM_DS_RETRIEVAL) {
        int nq = (int)ds->n, nd = (int)ds->n_docs;
        int64_t qs = ds->qrel_start[d->split], qe = ds->qrel_start[d->split + 1];
        int *gold = xmalloc((size_t)(nq ? nq : 1) * sizeof *gold), *gg = xmalloc((size_t)(nq ? nq : 1) * sizeof *gg);
        for (int q = 0; q < nq; q++) gold[q] = -1, gg[q] = 0;
        for (int64_t i = qs; i < qe; i++) {
            int q = (int)ds->qrel_query[i];
            if (ds->qrel_grade[i] > gg[q]) { gg[q] = ds->qrel_grade[i]; gold[q] = (int)ds->qrel_doc[i]; }
        }
        int *elig = xmalloc((size_t)(nq ? nq : 1) * sizeof *elig), ne = 0;
        for (int q = 0; q < nq; q++)
            if (gold[q] >= 0) elig[ne++] = q;
        if (ne == 0) {
            free(gold); free(gg); free(elig);
            return am_error(AM_EFORMAT, "task '%s': no query has a relevant doc in split '%s' of %s", t->name,
                            ds->split_names[d->split], ds->origin);
        }
        int *sel = xmalloc((size_t)ne * sizeof *sel);
        int ns = evalrun_pick(ne, quick ? t->quick_n : 0, subseed(t->seed, "sources"), sel);
        unsigned char *keep = xcalloc((size_t)nd + 1, 1);
        for (int i = 0; i < ns; i++) keep[gold[elig[sel[i]]]] = 1;
        int *docs = xmalloc((size_t)(nd ? nd : 1) * sizeof *docs), *pos = xmalloc((size_t)(nd ? nd : 1) * sizeof *pos);
        int ndocs = pick_docs(nd, keep, quick ? t->quick_docs : 0, subseed(t->seed, "targets"), docs, pos);
        TextSet ts;
        size_t tcap = (size_t)ns + (size_t)ndocs + 1;
        ts_init(&ts, in, tcap);
        in->na = ns;
        in->nb = ndocs;
        in->a = xmalloc((size_t)ns * sizeof *in->a);
        in->b = xmalloc((size_t)(ndocs ? ndocs : 1) * sizeof *in->b);
        in->gold_idx = xmalloc((size_t)ns * sizeof *in->gold_idx);
        for (int i = 0; i < ns; i++) {
            int q = elig[sel[i]];
            in->a[i] = ts_add(&ts, ds->text[q], &tcap);
            in->gold_idx[i] = pos[gold[q]];
        }
        for (int j = 0; j < ndocs; j++)
            in->b[j] = ts_add(&ts, doc_text(in, ds->doc_title[docs[j]], ds->doc_text[docs[j]]), &tcap);
        ts_free(&ts);
        free(gold); free(gg); free(elig); free(sel); free(keep); free(docs); free(pos);
        return AM_OK;
    }
    /* pairs: targets = unique positives and negatives, in order of appearance */
    int n = (int)ds->n;
    TextSet ts;
    size_t tcap = (size_t)n + (size_t)ds->pos_start[n] + (size_t)ds->neg_start[n] + 1;
    ts_init(&ts, in, tcap);
    /* map each target text to a target number via the text set: add targets first */
    int nt_all = 0;
    int *tnum = NULL; /* text index -> target number */
    size_t tn_cap = 0;
    int *goldt = xmalloc((size_t)(n ? n : 1) * sizeof *goldt);
    int *tgt_text = xmalloc((size_t)(ds->pos_start[n] + ds->neg_start[n] + 1) * sizeof *tgt_text);
    for (int r = 0; r < n; r++) {
        for (int pass = 0; pass < 2; pass++) {
            int64_t s0 = pass ? ds->neg_start[r] : ds->pos_start[r], s1 = pass ? ds->neg_start[r + 1] : ds->pos_start[r + 1];
            for (int64_t k = s0; k < s1; k++) {
                int ti = ts_add(&ts, pass ? ds->neg[k] : ds->pos[k], &tcap);
                if ((size_t)ti >= tn_cap) {
                    size_t old = tn_cap;
                    tn_cap = (size_t)ti * 2 + 64;
                    tnum = xrealloc(tnum, tn_cap * sizeof *tnum);
                    for (size_t z = old; z < tn_cap; z++) tnum[z] = -1;
                }
                if (tnum[ti] < 0) {
                    tnum[ti] = nt_all;
                    tgt_text[nt_all++] = ti;
                }
                if (pass == 0 && k == s0) goldt[r] = tnum[ti];
            }
        }
    }
    int *sel = xmalloc((size_t)(n ? n : 1) * sizeof *sel);
    int ns = evalrun_pick(n, quick ? t->quick_n : 0, subseed(t->seed, "sources"), sel);
    unsigned char *keep = xcalloc((size_t)nt_all + 1, 1);
    for (int i = 0; i < ns; i++) keep[goldt[sel[i]]] = 1;
    int *tg = xmalloc((size_t)(nt_all ? nt_all : 1) * sizeof *tg), *pos = xmalloc((size_t)(nt_all ? nt_all : 1) * sizeof *pos);
    int ntg = pick_docs(nt_all, keep, quick ? t->quick_docs : 0, subseed(t->seed, "targets"), tg, pos);
    in->nb = ntg;
    in->b = xmalloc((size_t)(ntg ? ntg : 1) * sizeof *in->b);
    for (int j = 0; j < ntg; j++) in->b[j] = tgt_text[tg[j]];
    in->na = ns;
    in->a = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->a);
    in->gold_idx = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->gold_idx);
    for (int i = 0; i < ns; i++) {
        in->a[i] = ts_add(&ts, ds->text[sel[i]], &tcap);
        in->gold_idx[i] = pos[goldt[sel[i]]];
    }
    /* texts that are only in dropped targets stay in the list; drop them by compaction */
    unsigned char *used = xcalloc((size_t)in->ntexts + 1, 1);
    for (int i = 0; i < in->na; i++) used[in->a[i]] = 1;
    for (int j = 0; j < in->nb; j++) used[in->b[j]] = 1;
    int *remap = xmalloc(((size_t)in->ntexts + 1) * sizeof *remap), m = 0;
    for (int i = 0; i < in->ntexts; i++) {
        remap[i] = used[i] ? m : -1;
        if (used[i]) in->texts[m++] = in->texts[i];
    }
    in->ntexts = m;
    for (int i = 0; i < in->na; i++) in->a[i] = remap[in->a[i]];
    for (int j = 0; j < in->nb; j++) in->b[j] = remap[in->b[j]];
    ts_free(&ts);
    free(used); free(remap); free(tnum); free(goldt); free(tgt_text); free(sel); free(keep); free(tg); free(pos);
    return AM_OK;
}

static int build_pairs(const EvalTask *t, const TaskData *d, EvalMode mode, EvalInst *in) {
    const Dataset *ds = d->test;
    int quick = mode == AM_EVAL_QUICK;
    /* the candidate pairs: (s1, s2, gold) */
    int n = 0;
    const char **s1, **s2;
    double *g;
    if (ds->kind == AM_DS_GRADED) {
        n = (int)ds->n;
        s1 = xmalloc((size_t)(n ? n : 1) * sizeof *s1);
        s2 = xmalloc((size_t)(n ? n : 1) * sizeof *s2);
        g = xmalloc((size_t)(n ? n : 1) * sizeof *g);
        for (int i = 0; i < n; i++) {
            s1[i] = ds->text[i];
            s2[i] = ds->text2[i];
            g[i] = ds->score[i];
            if (t->type == AM_TASK_PAIRCLASS && g[i] != 0.0 && g[i] != 1.0) {
                free(s1); free(s2); free(g);
                return am_error(AM_EFORMAT, "task '%s': %s row %d: pair classification needs 0/1 scores, got %g",
                                t->name, ds->origin, i + 1, ds->score[i]);
            }
        }
    } else if (ds->kind == AM_DS_PAIRS && t->type == AM_TASK_PAIRCLASS) {
        int64_t tot = ds->pos_start[ds->n] + ds->neg_start[ds->n];
        s1 = xmalloc((size_t)(tot ? tot : 1) * sizeof *s1);
        s2 = xmalloc((size_t)(tot ? tot : 1) * sizeof *s2);
        g = xmalloc((size_t)(tot ? tot : 1) * sizeof *g);
        for (int64_t r = 0; r < ds->n; r++) {
            for (int64_t k = ds->pos_start[r]; k < ds->pos_start[r + 1]; k++) { s1[n] = ds->text[r]; s2[n] = ds->pos[k]; g[n++] = 1; }
            for (int64_t k = ds->neg_start[r]; k < ds->neg_start[r + 1]; k++) { s1[n] = ds->text[r]; s2[n] = ds->neg[k]; g[n++] = 0; }
        }
    } else {
        return am_error(AM_EINVAL, "task '%s': a %s task reads a graded file, not %s", t->name,
                        evalrun_type_name(t->type), dataset_kind_name(ds->kind));
    }
    int *sel = xmalloc((size_t)(n ? n : 1) * sizeof *sel);
    int ns = evalrun_pick(n, quick ? t->quick_n : 0, subseed(t->seed, "pairs"), sel);
    TextSet ts;
    size_t tcap = 2 * (size_t)ns + 1;
    ts_init(&ts, in, tcap);
    in->na = in->nb = ns;
    in->a = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->a);
    in->b = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->b);
    in->gold = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->gold);
    in->la = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->la);
    for (int i = 0; i < ns; i++) {
        in->a[i] = ts_add(&ts, s1[sel[i]], &tcap);
        in->b[i] = ts_add(&ts, s2[sel[i]], &tcap);
        in->gold[i] = g[sel[i]];
        in->la[i] = g[sel[i]] != 0.0;
    }
    ts_free(&ts);
    in->size_a = "pairs";
    in->size_b = NULL;
    free(s1); free(s2); free(g); free(sel);
    return AM_OK;
}

/* label names of two labelled datasets, merged and sorted; map (n_labels of ds) -> union id */
static int label_union(const Dataset *a, const Dataset *b, int **map_a, int **map_b) {
    int na = a->n_labels, nb = b ? b->n_labels : 0;
    const char **all = xmalloc((size_t)(na + nb + 1) * sizeof *all);
    int n = 0, i = 0, j = 0;
    while (i < na || j < nb) { /* both tables are sorted by strcmp */
        int c = i >= na ? 1 : j >= nb ? -1 : strcmp(a->label_names[i], b->label_names[j]);
        if (c <= 0) all[n++] = a->label_names[i++];
        else all[n++] = b->label_names[j++];
        if (c == 0) j++;
    }
    *map_a = xmalloc((size_t)(na + 1) * sizeof **map_a);
    if (map_b) *map_b = xmalloc((size_t)(nb + 1) * sizeof **map_b);
    for (int k = 0, u = 0; k < na; k++) {
        while (strcmp(all[u], a->label_names[k]) != 0) u++;
        (*map_a)[k] = u;
    }
    for (int k = 0, u = 0; k < nb; k++) {
        while (strcmp(all[u], b->label_names[k]) != 0) u++;
        (*map_b)[k] = u;
    }
    free(all);
    return n;
}

static int build_labelled(const EvalTask *t, const TaskData *d, EvalMode mode, EvalInst *in) {
    const Dataset *ds = d->test, *tr = d->train;
    int quick = mode == AM_EVAL_QUICK;
    if (ds->kind != AM_DS_LABELLED || (tr && tr->kind != AM_DS_LABELLED))
        return am_error(AM_EINVAL, "task '%s': a %s task reads labelled text", t->name, evalrun_type_name(t->type));
    int *ma = NULL, *mb = NULL;
    int nl = label_union(ds, tr, &ma, tr ? &mb : NULL);
    int n = (int)ds->n;
    int *sel = xmalloc((size_t)(n ? n : 1) * sizeof *sel);
    int *lab = xmalloc((size_t)(n ? n : 1) * sizeof *lab);
    for (int i = 0; i < n; i++) lab[i] = ma[ds->label[i]];
    int ns = evalrun_pick_stratified(lab, n, nl, quick ? t->quick_n : 0, subseed(t->seed, "test"), sel);
    free(lab);
    TextSet ts;
    size_t tcap = (size_t)ns + 1 + (tr ? (size_t)tr->n : 0);
    ts_init(&ts, in, tcap);
    in->na = ns;
    in->a = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->a);
    in->la = xmalloc((size_t)(ns ? ns : 1) * sizeof *in->la);
    for (int i = 0; i < ns; i++) {
        in->a[i] = ts_add(&ts, ds->text[sel[i]], &tcap);
        in->la[i] = ma[ds->label[sel[i]]];
    }
    in->n_labels = nl;
    in->experiments = quick && t->quick_experiments > 0 ? t->quick_experiments : t->experiments;
    int rc = AM_OK;
    if (t->type == AM_TASK_CLASSIFICATION) {
        if (!tr) { rc = am_error(AM_EINVAL, "task '%s': no training data", t->name); goto done; }
        int ntr = (int)tr->n;
        int *tsel = xmalloc((size_t)(ntr ? ntr : 1) * sizeof *tsel);
        int *ltr = xmalloc((size_t)(ntr ? ntr : 1) * sizeof *ltr);
        for (int j = 0; j < ntr; j++) ltr[j] = mb[tr->label[j]];
        int nts = evalrun_pick_stratified(ltr, ntr, nl, quick ? t->quick_train : 0, subseed(t->seed, "train"), tsel);
        free(ltr);
        in->nb = nts;
        in->n_train_full = nts;
        in->b = xmalloc((size_t)(nts ? nts : 1) * sizeof *in->b);
        in->lb = xmalloc((size_t)(nts ? nts : 1) * sizeof *in->lb);
        for (int j = 0; j < nts; j++) in->lb[j] = mb[tr->label[tsel[j]]];
        /* only the rows some experiment trains on are embedded (eval_classification reads no other) */
        unsigned char *need = xcalloc((size_t)nts + 1, 1);
        if (t->samples_per_label > 0) {
            int *idxs = xmalloc((size_t)(nts ? nts : 1) * sizeof *idxs), *us = xmalloc((size_t)(nts ? nts : 1) * sizeof *us);
            for (int j = 0; j < nts; j++) idxs[j] = j;
            for (int e = 0; e < in->experiments; e++) {
                int m = classif_undersample(us, idxs, in->lb, nts, nl, t->samples_per_label, (uint32_t)t->seed);
                for (int k = 0; k < m; k++) need[us[k]] = 1;
            }
            free(idxs);
            free(us);
        } else {
            memset(need, 1, (size_t)nts);
        }
        for (int j = 0; j < nts; j++) in->b[j] = need[j] ? ts_add(&ts, tr->text[tsel[j]], &tcap) : -1;
        free(need);
        free(tsel);
        in->size_a = "test";
        in->size_b = "train";
    } else {
        in->cluster_sample = quick && t->quick_cluster_sample > 0 ? t->quick_cluster_sample : t->cluster_sample;
        in->size_a = "points";
        in->size_b = NULL;
    }
done:
    ts_free(&ts);
    free(ma);
    free(mb);
    free(sel);
    return rc;
}

int evalinst_build(const EvalTask *t, const TaskData *d, EvalMode mode, EvalInst *out) {
    memset(out, 0, sizeof *out);
    int rc;
    switch (t->type) {
    case AM_TASK_RETRIEVAL: rc = build_retrieval(t, d, mode, out); break;
    case AM_TASK_BITEXT: rc = build_bitext(t, d, mode, out); break;
    case AM_TASK_STS:
    case AM_TASK_PAIRCLASS: rc = build_pairs(t, d, mode, out); break;
    default: rc = build_labelled(t, d, mode, out); break;
    }
    if (rc) evalinst_free(out);
    return rc;
}
