/* round.h -- rounding doubles and MPFR values to a format */
#ifndef FPL_ROUND_H
#define FPL_ROUND_H

#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_rng.h>
#include <mpfr.h>

#include "format.h"

/* Rounding modes. */
typedef enum {
    FPL_RNE = 0,   /* to nearest, ties to even */
    FPL_RNA = 1,   /* to nearest, ties away from zero */
    FPL_RTZ = 2,   /* toward zero */
    FPL_RUP = 3,   /* toward +inf */
    FPL_RDOWN = 4, /* toward -inf */
    FPL_SR = 5     /* stochastic: up with probability equal to the distance */
} fpl_rmode_t;
#define FPL_NMODES 6

/* Parse "rne", "rna", "rtz", "rup", "rdown" or "sr". Returns 0 or FPL_EINVAL. */
int fpl_rmode_parse(const char *s, fpl_rmode_t *mode);
const char *fpl_rmode_name(fpl_rmode_t mode);

/* The random stream of stochastic rounding.  Draw i of a stream is a pure
 * function of (key, i): the splitmix64 output for state key + (i+1)*phi
 * (Steele, Lea & Flood, OOPSLA 2014), so an array rounded in chunks or by
 * several threads gets the same bits as one sequential pass.  Every rounding
 * in mode FPL_SR consumes exactly one draw, whatever the value; other modes
 * consume none.  Stack-initialisable: fpl_sr_t s = FPL_SR_INIT; */
typedef struct {
    uint64_t key;
    uint64_t counter; /* index of the next draw */
} fpl_sr_t;
#define FPL_SR_INIT {0, 0}

/* Start a stream from a seed. */
void fpl_sr_seed(fpl_sr_t *sr, uint64_t seed);
/* Start a stream keyed by 64 bits drawn from a GSL generator. */
void fpl_sr_seed_gsl(fpl_sr_t *sr, gsl_rng *rng);
/* Draw number `index` of the stream (does not advance it). */
uint64_t fpl_sr_at(const fpl_sr_t *sr, uint64_t index);
/* The next draw (advances the stream by one). */
uint64_t fpl_sr_next(fpl_sr_t *sr);

/* Round x to format f in `mode`; the result is returned as a double holding
 * the format's value (NaN, +-inf or a finite value of f).  Overflow follows
 * f->overflow (see format.h); results in the subnormal range follow
 * f->subnormals.  NaN inputs give NaN, also for formats without a NaN
 * encoding (fpl_format_encode then reports FPL_ERANGE).  `sr` is used, and
 * advanced by one, only when mode is FPL_SR; it may be NULL otherwise.
 * This is the fast bit-level path; it never rounds through an intermediate
 * format. */
double fpl_round(const fpl_format_t *f, double x, fpl_rmode_t mode, fpl_sr_t *sr);

/* Round n doubles (in and out may be the same array).  For FPL_SR element i
 * uses draw sr->counter + i, and sr->counter advances by n. */
void fpl_round_array(const fpl_format_t *f, const double *in, double *out, size_t n,
                     fpl_rmode_t mode, fpl_sr_t *sr);

/* The reference path: round an MPFR value to f with MPFR (precision p, the
 * format's exponent range in MPFR's convention, mpfr_check_range and
 * mpfr_subnormalize on the ternary value; the caller's exponent range is
 * restored).  Agrees bit for bit with fpl_round on every double.  x may lie
 * outside the double range (it is then an overflow or underflow). */
double fpl_round_mpfr(const fpl_format_t *f, mpfr_srcptr x, fpl_rmode_t mode, fpl_sr_t *sr);

/* fpl_round_mpfr on a double. */
double fpl_round_mpfr_d(const fpl_format_t *f, double x, fpl_rmode_t mode, fpl_sr_t *sr);

#endif /* FPL_ROUND_H */
