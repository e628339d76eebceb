/* mpref.h -- MPFR versions of the model kernels, to check (and, where the
 * quantity is tiny, to compute) the analyses' reference side */
#ifndef FPL_ANALYSIS_MPREF_H
#define FPL_ANALYSIS_MPREF_H

#include <stddef.h>

#include <mpfr.h>

#define FPA_MP_PREC 256

/* y = LN(x) (center = 1) or RMSNorm(x) (center = 0) with epsilon eps, all
 * at FPA_MP_PREC bits; x and y are arrays of d initialised mpfr_t. */
void fpa_mp_norm(mpfr_t *y, mpfr_t *const x, size_t d, double eps, int center);

/* ||a - b|| / ||b|| for double a against MPFR b. */
double fpa_mp_relerr(const double *a, mpfr_t *const b, size_t n);

mpfr_t *fpa_mp_alloc(size_t n);
void fpa_mp_free(mpfr_t *v, size_t n);

#endif
