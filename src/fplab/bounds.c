/* bounds.c -- deterministic and probabilistic rounding-error bounds */
#include <math.h>

#include "bounds.h"

double fpl_gamma(size_t n, double u)
{
    double nu = (double)n * u;
    return nu >= 1 ? INFINITY : nu / (1 - nu);
}

double fpl_hm_bound(size_t n, double u, double lambda)
{
    return expm1(lambda * sqrt((double)n) * u + (double)n * u * u / (1 - u));
}

double fpl_hm_lambda(size_t n, double u, double q)
{
    return sqrt(2 * log(2 * (double)(n ? n : 1) / q)) / (1 - u);
}
