/* logspace.h -- log-sum-exp and the forward recursion of a hidden Markov
 * model, under a precision policy or as the exact reference */
#ifndef FPL_LOGSPACE_H
#define FPL_LOGSPACE_H

#include <stddef.h>

#include "policy.h"
#include "round.h"

/* log(sum_i exp(x_i)), the max-subtracted way every library computes it:
 * m = max x_i; d_i = x_i - m and e_i = exp(d_i), each rounded to p->a; the
 * sum of the e_i under the policy's accumulation rules (fpl_sum); l = log of
 * that sum rounded to p->a; the result m + l rounded to p->a.  exp and log
 * are evaluated in binary64 and rounded once to the format, as a fused
 * kernel does (for formats of at most 24 bits the double rounding this
 * implies changes a result only when binary64's value lies within 2^-29 ulp
 * of a rounding boundary).  The exact policy computes in binary64 with a
 * compensated sum; its relative error is a few binary64 ulps.
 * Special values: n = 0 or every x_i = -inf gives -inf; a NaN, or +inf,
 * gives NaN or +inf.  -inf terms contribute nothing.  Out of memory (more
 * than 64 terms need a scratch array): NaN, with FPL_ENOMEM for
 * fpl_last_error. */
double fpl_logsumexp(const fpl_policy_t *p, const double *x, size_t n, fpl_sr_t *sr);

/* A hidden Markov model with S states and O symbols, row-major tables of
 * probabilities: A[i*S + j] = P(state j | state i), B[j*O + o] =
 * P(symbol o | state j), pi[j] = P(first state j). */
typedef struct {
    size_t S, O;
    const double *A, *B, *pi;
} fpl_hmm_t;

/* How the forward recursion keeps alpha_t(j) = P(o_1..o_t, state_t = j). */
typedef enum {
    FPL_HMM_LOG = 0,    /* log alpha: log-sum-exp over the previous states
                           (fpl_logsumexp), adds rounded to p->a */
    FPL_HMM_SCALED = 1, /* Rabiner: alpha normalised to sum 1 at every step;
                           log P = sum of the logs of the normalisers, that
                           sum under the policy's accumulator */
    FPL_HMM_NAIVE = 2   /* plain probabilities: underflows for long chains */
} fpl_hmm_variant_t;

/* The log-likelihood log P(o_1..o_t) of the prefixes of obs (length L,
 * symbols < O) ending at the checkpoints t = ck[0] < ck[1] < ... <= L,
 * written to ll[k].  Emulated: the tables (or their logarithms, for
 * FPL_HMM_LOG) are rounded to p->a once; every product, sum, quotient,
 * logarithm and exponential of the recursion is rounded as fpl_logsumexp
 * and fpl_dot do (products of probabilities in p->a, sums over states in
 * p->acc).  With FPL_HMM_NAIVE the checkpoint value is the logarithm of
 * the sum of alpha_t in the format: -inf once alpha has underflowed.
 * The exact policy computes in binary64; the scaled variant then sums the
 * logs of the normalisers with a compensated (Neumaier) sum, which makes
 * it the reference: its error stays within a few binary64 ulps per step.
 * Returns 0, or FPL_EINVAL for bad sizes, checkpoints or symbols, or
 * FPL_ENOMEM. */
int fpl_hmm_forward(const fpl_policy_t *p, const fpl_hmm_t *h, fpl_hmm_variant_t v,
                    const unsigned *obs, size_t L, const size_t *ck, size_t nck, double *ll,
                    fpl_sr_t *sr);

#endif /* FPL_LOGSPACE_H */
