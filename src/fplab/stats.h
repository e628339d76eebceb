/* stats.h -- summaries, confidence intervals and growth-rate fits */
#ifndef FPL_STATS_H
#define FPL_STATS_H

#include <stddef.h>

/* Summary of a sample. */
typedef struct {
    size_t n;
    double mean, sd;
    double ci_lo, ci_hi;       /* 95% confidence interval of the mean (Student t) */
    double median, q10, q90;   /* quantiles (type 7, as R's default) */
    double min, max;
} fpl_summary_t;

/* Summarise x[0..n) (n >= 1; x is not modified).  +-inf is allowed (an
 * overflowed repetition: quantiles reaching it are inf); NaN is not.
 * Returns 0, FPL_EINVAL (n == 0 or a NaN) or FPL_ENOMEM. */
int fpl_summarize(const double *x, size_t n, fpl_summary_t *s);

/* Least-squares fit of log2(y) = a + b log2(x) over k points (x, y > 0):
 * the growth exponent b with its 95% confidence interval [b_lo, b_hi]
 * (Student t on k - 2 degrees of freedom).  k >= 3.  Returns 0 or
 * FPL_EINVAL. */
int fpl_fit_power(const double *x, const double *y, size_t k, double *b, double *b_lo,
                  double *b_hi, double *a);

#endif /* FPL_STATS_H */
