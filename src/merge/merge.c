/* merge.c - merge_run: checks, then the per-tensor methods (first landing: a stub). */
#include "am_base.h"
#include "merge.h"

int merge_run(const MergeSpec *spec, const MergeInputs *in, float *out, MergeStats *stats) {
    (void)in; (void)out; (void)stats;
    return am_error(AM_EINVAL, "merge method %s: not implemented yet", merge_method_name(spec->method));
}

int merge_models(const MergeSpec *spec, Model *const *models, const char *const *names, int k,
                 const Model *base, Model *out, MergeStats *stats) {
    (void)models; (void)names; (void)k; (void)base; (void)out; (void)stats;
    return am_error(AM_EINVAL, "merge method %s: not implemented yet", merge_method_name(spec->method));
}
