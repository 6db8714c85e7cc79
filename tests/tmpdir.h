/* tmpdir.h - temporary directories for tests, removed by cleanup_tmp() at the end.
 * Define TEST_TMP_PREFIX (e.g. "/tmp/am_test_io_") before including. */
#ifndef AM_TEST_TMPDIR_H
#define AM_TEST_TMPDIR_H
#include "am_base.h"
#include <stdio.h>
#include <stdlib.h>

static char *tmp_roots[64];
static int n_tmp_roots;

static char *tmpdir(void) {
    char *d = xstrdup(TEST_TMP_PREFIX "XXXXXX");
    AM_ASSERT(mkdtemp(d) != NULL);
    AM_ASSERT(n_tmp_roots < 64);
    tmp_roots[n_tmp_roots++] = d;
    return d;
}

static void cleanup_tmp(void) {
    for (int i = 0; i < n_tmp_roots; i++) {
        char *cmd = xasprintf("rm -rf '%s'", tmp_roots[i]);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_roots[i]);
        free(cmd);
        free(tmp_roots[i]);
    }
    n_tmp_roots = 0;
}
#endif
