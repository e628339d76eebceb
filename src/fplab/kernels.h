/* kernels.h -- model building blocks runnable under a precision policy or
 * as the exact reference */
#ifndef FPL_KERNELS_H
#define FPL_KERNELS_H

#include <stddef.h>

#include "policy.h"
#include "round.h"

/* Every kernel takes a policy p: fpl_policy_exact gives the reference
 * (binary64 with compensated reductions, nothing else rounded); any other
 * policy emulates the recipe, rounding as stated below.  sr is the stream
 * of stochastic rounding (may be NULL otherwise). */

/* LayerNorm without affine parameters: y = (x - mean) / sqrt(var + eps).
 * Emulated: the statistics are computed in p->norm (sums accumulated in
 * p->norm, each deviation, square and quotient rounded to p->norm), the
 * output rounded to p->out.  d >= 1; y may alias x. */
void fpl_layernorm(const fpl_policy_t *p, const double *x, double *y, size_t d, double eps,
                   fpl_sr_t *sr);

/* RMSNorm: y = x / sqrt(mean(x^2) + eps), statistics as in fpl_layernorm. */
void fpl_rmsnorm(const fpl_policy_t *p, const double *x, double *y, size_t d, double eps,
                 fpl_sr_t *sr);

/* GELU, y = x Phi(x) (exact erf form), evaluated in binary64 and rounded
 * once to p->a, as a fused kernel does. */
void fpl_gelu(const fpl_policy_t *p, const double *x, double *y, size_t n, fpl_sr_t *sr);

/* Weights as the policy stores them: rounded to p->w, or, for an integer
 * p->w, quantized per row (absmax scale, round to nearest) and dequantized
 * into p->a.  W is rows x cols; the exact policy copies.  Wq may alias W. */
void fpl_weights(const fpl_policy_t *p, const double *W, double *Wq, size_t rows, size_t cols);

#endif /* FPL_KERNELS_H */
