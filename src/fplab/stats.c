/* stats.c -- sample summaries and power-law fits (GSL) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_fit.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>

#include "error.h"
#include "internal.h"
#include "stats.h"

/* type-7 quantile of sorted data; +-inf propagate instead of giving NaN */
static double quantile(const double *v, size_t n, double q)
{
    double h = q * (double)(n - 1);
    size_t lo = (size_t)floor(h);
    double d = h - (double)lo;
    if (lo + 1 >= n || d == 0)
        return v[lo];
    if (isinf(v[lo]) || isinf(v[lo + 1]))
        return isinf(v[lo + 1]) ? v[lo + 1] : v[lo];
    return v[lo] + d * (v[lo + 1] - v[lo]);
}

int fpl_summarize(const double *x, size_t n, fpl_summary_t *s)
{
    if (n == 0)
        return fpl__fail(FPL_EINVAL, "summary of an empty sample");
    double *v = malloc(n * sizeof *v);
    if (!v)
        return fpl__fail(FPL_ENOMEM, "out of memory summarising %zu values", n);
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i])) {
            free(v);
            return fpl__fail(FPL_EINVAL, "NaN in a sample to summarise");
        }
        v[i] = x[i];
    }
    gsl_sort(v, 1, n);
    memset(s, 0, sizeof *s);
    s->n = n;
    s->mean = gsl_stats_mean(v, 1, n);
    s->sd = n > 1 ? gsl_stats_sd_m(v, 1, n, s->mean) : 0.0;
    if (!isfinite(s->mean))
        s->sd = INFINITY;
    double half = n > 1 ? gsl_cdf_tdist_Pinv(0.975, (double)(n - 1)) * s->sd / sqrt((double)n) : 0;
    s->ci_lo = s->mean - half;
    s->ci_hi = s->mean + half;
    s->median = quantile(v, n, 0.5);
    s->q10 = quantile(v, n, 0.1);
    s->q90 = quantile(v, n, 0.9);
    s->min = v[0];
    s->max = v[n - 1];
    free(v);
    return FPL_OK;
}

int fpl_fit_power(const double *x, const double *y, size_t k, double *b, double *b_lo,
                  double *b_hi, double *a)
{
    if (k < 3)
        return fpl__fail(FPL_EINVAL, "a power-law fit needs at least 3 points, got %zu", k);
    double *lx = malloc(2 * k * sizeof *lx);
    if (!lx)
        return fpl__fail(FPL_ENOMEM, "out of memory");
    double *ly = lx + k;
    for (size_t i = 0; i < k; i++) {
        if (!(x[i] > 0) || !(y[i] > 0)) {
            free(lx);
            return fpl__fail(FPL_EINVAL, "a power-law fit needs positive data (point %zu)", i);
        }
        lx[i] = log2(x[i]);
        ly[i] = log2(y[i]);
    }
    double c0, c1, cov00, cov01, cov11, sumsq;
    gsl_fit_linear(lx, 1, ly, 1, k, &c0, &c1, &cov00, &cov01, &cov11, &sumsq);
    double t = gsl_cdf_tdist_Pinv(0.975, (double)(k - 2));
    double se = sqrt(cov11);
    *b = c1;
    *b_lo = c1 - t * se;
    *b_hi = c1 + t * se;
    if (a)
        *a = c0;
    free(lx);
    return FPL_OK;
}
