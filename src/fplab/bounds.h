/* bounds.h -- rounding-error bounds to overlay on measurements */
#ifndef FPL_BOUNDS_H
#define FPL_BOUNDS_H

#include <stddef.h>

/* gamma_n = n u / (1 - n u) (Higham, Accuracy and Stability, 2nd ed.,
 * Lemma 3.1): the worst-case relative error bound of n rounded operations.
 * +inf when n u >= 1. */
double fpl_gamma(size_t n, double u);

/* The probabilistic bound of Higham & Mary (SISC 41(5), 2019, Thm 3.1):
 * gamma~_n(lambda) = exp(lambda sqrt(n) u + n u^2 / (1 - u)) - 1, which is
 * lambda sqrt(n) u to first order. */
double fpl_hm_bound(size_t n, double u, double lambda);

/* The lambda for which Higham & Mary's inner-product bound (their Thm 4.2:
 * |s^ - s| <= gamma~_n(lambda) sum |x_i y_i|) fails with probability at most
 * q, from Q(lambda, n) = 1 - n (1 - P(lambda)), P(lambda) = 1 - 2 exp(-lambda^2
 * (1-u)^2 / 2): lambda = sqrt(2 ln(2n/q)) / (1 - u).  0 < q < 1. */
double fpl_hm_lambda(size_t n, double u, double q);

#endif /* FPL_BOUNDS_H */
