/* vae.h -- a VAE's Gaussian head, reparameterisation and KL term under a
 * precision policy or as the exact reference */
#ifndef FPL_VAE_H
#define FPL_VAE_H

#include <stddef.h>

#include "format.h"
#include "policy.h"
#include "round.h"

/* As in kernels.h, every kernel takes a policy p: fpl_policy_exact gives the
 * reference (binary64, nothing else rounded); any other policy emulates the
 * recipe with every operation correctly rounded to p->a in mode p->rnd, one
 * rounding per operation, in the order stated.  Inputs are used as given
 * (round them to p->a first to model a head that emits that format).  Under
 * stochastic rounding the draws of sr are consumed operation by operation,
 * each over the whole array in element order (fpl_gauss_head: sigma then
 * var for each element).  The functions return 0,
 * FPL_EINVAL (a format that is not a float format, a bad clamp, an unknown
 * form) or FPL_ENOMEM, with a message for fpl_last_error. */

/* The Gaussian head: sigma = exp(logvar / 2) and var = exp(logvar), each
 * one correctly rounded exponential of the (clamped) logvar, as a fused
 * kernel computes them.  clamp is NULL or {lo, hi} with lo <= hi: logvar is
 * first clamped to [RN(lo), RN(hi)] (the bounds rounded to p->a in RNE), as
 * latent diffusion clamps to [-30, 20].  NaN stays NaN.  sigma or var may be
 * NULL; either may alias logvar.  Exact policy: libm's binary64 exp (glibc:
 * within 1 ulp), the clamp unrounded.  logvar / 2 is exact for every logvar
 * that is not a binary64 subnormal. */
int fpl_gauss_head(const fpl_policy_t *p, const double *logvar, double *sigma, double *var,
                   size_t n, const double *clamp, fpl_sr_t *sr);

/* Reparameterisation z = mu + sigma * eps: t = RN(sigma * eps), then
 * z = RN(mu + t).  Exact policy: fma(sigma, eps, mu), one binary64
 * rounding.  z may alias any input. */
int fpl_reparam(const fpl_policy_t *p, const double *mu, const double *sigma, const double *eps,
                double *z, size_t n, fpl_sr_t *sr);

/* The evaluation of the per-element KL to N(0, 1),
 * KL = (mu^2 + e^l - 1 - l) / 2 with l = logvar. */
typedef enum {
    FPL_KL_NAIVE = 0,  /* ((((mu*mu + exp(l)) - l) - 1) * 0.5, each op rounded */
    FPL_KL_STABLE = 1, /* (mu*mu + (expm1(l) - l)) * 0.5, expm1 correctly rounded */
    FPL_KL_FUSED = 2   /* (mu*mu + g(l)) * 0.5, g(l) = e^l - 1 - l correctly
                          rounded as one function (fpl_kl_g) */
} fpl_kl_form_t;
#define FPL_KL_NFORMS 3

/* "naive", "stable", "fused"; "?" for anything else. */
const char *fpl_kl_form_name(fpl_kl_form_t form);

/* The per-element KL of the chosen form; kl may alias mu or logvar.
 * The stable and fused forms never give a negative value for finite inputs:
 * RN(expm1(l)) >= RN(l) = l and RN(g(l)) >= 0 because rounding is monotone.
 * expm1(l) - l still cancels as l -> 0 (both are about l, the difference
 * about l^2/2), which the fused form avoids.  Exact policy, whatever the
 * form: (mu*mu + g(l)) / 2 in binary64 with g from a Taylor series for
 * |l| <= 1 and expm1(l) - l beyond (no cancellation of more than a factor
 * 2.4 there): relative error below 2^-44 for 2^-400 <= |l| <= 700 (checked
 * against MPFR in the tests).  l = +inf gives NaN in the naive and stable
 * forms (inf - inf, as the operations do) and +inf in the fused form and
 * under the exact policy. */
int fpl_kl(const fpl_policy_t *p, fpl_kl_form_t form, const double *mu, const double *logvar,
           double *kl, size_t n, fpl_sr_t *sr);

/* The KL of a latent of n elements: the elements as fpl_kl computes them,
 * summed with fpl_sum under p (its accumulator format, order and block). */
int fpl_kl_sum(const fpl_policy_t *p, fpl_kl_form_t form, const double *mu, const double *logvar,
               size_t n, double *sum, fpl_sr_t *sr);

/* g(l) = e^l - 1 - l correctly rounded to the float format f in `mode`
 * (stochastic rounding draws one value from sr): MPFR with Ziv's strategy
 * (mpfr_can_round, the working precision doubled until the rounding to
 * p + 160 bits is decided, then a sticky bit as in fpl_arith), after a
 * binary64 attempt for formats of at most 30 fraction bits in
 * deterministic modes: the evaluation of the exact policy (relative error
 * below 2^-44) decides when y(1 - 2^-40) and y(1 + 2^-40) round alike, and
 * for l < -2, where g = (-1 - l) + e^l may sit a hair above a rounding
 * boundary, -1 - l decides when e^l is below the distance to the next one.
 * g(0) = +0, g(+-inf) = +inf, g(NaN) = NaN. */
double fpl_kl_g(const fpl_format_t *f, double l, fpl_rmode_t mode, fpl_sr_t *sr);

#endif /* FPL_VAE_H */
