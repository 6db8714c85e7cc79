/* merge_fixture.h - the tensor table of a merge fixture (tests/ref/merge/gen_*fixture.py): arrays
 * named "tensor:<name>" hold each tensor's shape (int32), in buffer order, and the flat model
 * buffers are laid out over that table. Shared by test_merge.c and test_merge_data.c.
 */
#ifndef AM_TEST_MERGE_FIXTURE_H
#define AM_TEST_MERGE_FIXTURE_H

#include "fixture.h"
#include "model.h"

#include <stdio.h>
#include <string.h>

/* Fill tab over t[cap] from fx's "tensor:" arrays; returns the total parameter count, or 0 if the
 * fixture has more than cap tensors. */
static size_t fx_param_table(const Fixture *fx, ParamTable *tab, ParamInfo *t, int cap) {
    size_t off = 0;
    tab->n = 0;
    for (int i = 0; i < fx->n; i++) {
        const FxArray *a = &fx->a[i];
        if (strncmp(a->name, "tensor:", 7) != 0) continue;
        if (tab->n >= cap) return 0;
        ParamInfo *pi = &t[tab->n++];
        snprintf(pi->name, sizeof pi->name, "%s", a->name + 7);
        const int32_t *d = a->data;
        pi->ndim = (int)a->n;
        pi->numel = 1;
        for (int k = 0; k < pi->ndim; k++) { pi->shape[k] = d[k]; pi->numel *= (size_t)d[k]; }
        pi->offset = off;
        off += pi->numel;
    }
    tab->t = t;
    tab->total = off;
    return off;
}

#endif
