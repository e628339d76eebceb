/* mpref.c -- MPFR reference kernels for the analyses' checks */
#include <math.h>
#include <stdlib.h>

#include "mpref.h"

mpfr_t *fpa_mp_alloc(size_t n)
{
    mpfr_t *v = malloc(n * sizeof *v);
    if (!v)
        abort();
    for (size_t i = 0; i < n; i++)
        mpfr_init2(v[i], FPA_MP_PREC);
    return v;
}

void fpa_mp_free(mpfr_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mpfr_clear(v[i]);
    free(v);
}

void fpa_mp_norm(mpfr_t *y, mpfr_t *const x, size_t d, double eps, int center)
{
    mpfr_t mean, var, t;
    mpfr_inits2(FPA_MP_PREC, mean, var, t, (mpfr_ptr)0);
    mpfr_set_zero(mean, 1);
    if (center) {
        for (size_t i = 0; i < d; i++)
            mpfr_add(mean, mean, x[i], MPFR_RNDN);
        mpfr_div_ui(mean, mean, (unsigned long)d, MPFR_RNDN);
    }
    mpfr_set_zero(var, 1);
    for (size_t i = 0; i < d; i++) {
        mpfr_sub(t, x[i], mean, MPFR_RNDN);
        mpfr_fma(var, t, t, var, MPFR_RNDN);
    }
    mpfr_div_ui(var, var, (unsigned long)d, MPFR_RNDN);
    mpfr_add_d(var, var, eps, MPFR_RNDN);
    mpfr_rec_sqrt(var, var, MPFR_RNDN);
    for (size_t i = 0; i < d; i++) {
        mpfr_sub(t, x[i], mean, MPFR_RNDN);
        mpfr_mul(y[i], t, var, MPFR_RNDN);
    }
    mpfr_clears(mean, var, t, (mpfr_ptr)0);
}

double fpa_mp_relerr(const double *a, mpfr_t *const b, size_t n)
{
    mpfr_t d, num, den;
    mpfr_inits2(FPA_MP_PREC, d, num, den, (mpfr_ptr)0);
    mpfr_set_zero(num, 1);
    mpfr_set_zero(den, 1);
    for (size_t i = 0; i < n; i++) {
        mpfr_sub_d(d, b[i], a[i], MPFR_RNDN);
        mpfr_fma(num, d, d, num, MPFR_RNDN);
        mpfr_fma(den, b[i], b[i], den, MPFR_RNDN);
    }
    mpfr_div(num, num, den, MPFR_RNDN);
    mpfr_sqrt(num, num, MPFR_RNDN);
    double r = mpfr_get_d(num, MPFR_RNDN);
    mpfr_clears(d, num, den, (mpfr_ptr)0);
    return r;
}
