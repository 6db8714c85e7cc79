/* loss_internal.h - what loss_spec.c needs from loss.c: the x_eval form of each loss.
 *
 * Each returns the loss and, when the gradient pointer is non-NULL, adds w·∂L/∂emb into it
 * (loss.c's header comment). Not part of the train layer's API.
 */
#ifndef AM_LOSS_INTERNAL_H
#define AM_LOSS_INTERNAL_H

#include "loss.h"

/* A loss of c_i = sim(q_i, p_i) and gold y: returns L, fills dc (n) = ∂L/∂c if dc != NULL. */
typedef double (*PairFn)(const double *c, const float *y, int n, const void *opt, double *dc);

double loss_infonce_eval(const LossInput *in, const InfoNCEOptions *o, float *demb, double w);
double loss_entropy_eval(const LossInput *in, const EntropyOptions *o, float *demb, double w);
double loss_pair_eval(const LossInput *in, int sim, PairFn fn, const void *opt, float *demb, double w);
double loss_cosent_fn(const double *c, const float *y, int n, const void *opt, double *dc);
/* Both gradients (dlast, dmid) are scaled by gw; terms get the parts scaled by tw, named prefix+part. */
double loss_codiemb_eval(const LossInput *last, const LossInput *mid, const CoDiEmbOptions *o,
                         float *dlast, float *dmid, double gw, double tw, LossResult *terms, const char *prefix);
/* dte gets gradient unless o->detach (either pointer may be NULL) */
double loss_kl_eval(const LossInput *te, const LossInput *st, int sim, const KLOptions *o, float *dte,
                    float *dst, double w);
/* Append the term prefix+name = v to r (no-op when r is NULL or full). */
void loss_add_term(LossResult *r, const char *prefix, const char *name, double v);

#endif
