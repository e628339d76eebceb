/* helpers.h -- shared helpers of the fplab tests: seeds, random doubles, and
 * an independent rounding oracle */
#ifndef FPL_TEST_HELPERS_H
#define FPL_TEST_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include "fplab.h"

/* The seed of random tests: FPL_TEST_SEED if set, else `dflt`.  Printed as a
 * TAP comment so a failing run can be repeated. */
uint64_t fpt_seed(uint64_t dflt);

/* A small independent generator (xorshift64*) for test inputs. */
typedef struct {
    uint64_t s;
} fpt_rng_t;
void fpt_rng_init(fpt_rng_t *r, uint64_t seed);
uint64_t fpt_rng_u64(fpt_rng_t *r);
/* A finite double spread over the format's whole range and beyond: both
 * signs, subnormals of the format, values near the overflow threshold,
 * random bit patterns of binary64. */
double fpt_random_double(fpt_rng_t *r, const fpl_format_t *f);

/* Count of a test's loop, overridable by FPL_TEST_SCALE (a divisor, for
 * slow builds such as sanitizers): n / scale, at least min. */
size_t fpt_scaled(size_t n, size_t min);

/* ---- the oracle ---------------------------------------------------------
 * Written from the format definitions alone: it decodes codes from the
 * sign/exponent/mantissa fields itself and rounds by comparing exact
 * rational distances (GMP mpq), never through libfplab's rounding or MPFR. */

/* The value of code c under the format's field definitions. */
double fpt_oracle_decode(const fpl_format_t *f, uint64_t c);

/* The sorted distinct finite values of a format of at most 16 bits, plus
 * the two "phantom" values one quantum beyond +-max (where the format would
 * continue if its exponent range were unbounded).  Caller frees. */
double *fpt_grid(const fpl_format_t *f, size_t *n);

/* Round x (finite or not) to the format in a deterministic mode, by the
 * oracle: neighbours on the grid, exact distances, ties to the neighbour
 * whose integral significand at the common quantum is even; then the
 * overflow policy, e8m0's missing zero, FNUZ's missing -0. */
double fpt_oracle_round(const fpl_format_t *f, const double *grid, size_t n, double x,
                        fpl_rmode_t mode);

/* The two grid neighbours lo <= x <= hi after the format's policy is
 * applied with RTZ and away-from-zero: what stochastic rounding may return. */
void fpt_oracle_neighbours(const fpl_format_t *f, const double *grid, size_t n, double x,
                           double *lo, double *hi);

/* Bitwise equality of doubles, with all NaNs equal. */
int fpt_same(double a, double b);

/* ---- shell commands (the tests of the command and the analyses) ---------
 * Run the command printf(fmt, ...) with /bin/sh; its standard output goes
 * into buf (at most n - 1 bytes, NUL-terminated; buf NULL: read and
 * discarded).  fpt_sh_all captures standard error there too.  Returns the
 * command's exit status, 128 when it was killed by a signal, -1 (buf empty,
 * a message on stderr) when it could not be started. */
int fpt_sh(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int fpt_sh_all(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Run the command printf(fmt, ...) with system(): its output is not
 * captured.  Returns its exit status, or 128 when it was killed. */
int fpt_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The fplab command under test ($FPLAB, else src/cli/fplab), and the build
 * directory it sits in (the part of $FPLAB before /src/cli/, else "."): the
 * analysis programs are in BUILDDIR/analyses. */
const char *fpt_fplab(void);
const char *fpt_builddir(void);

#endif
