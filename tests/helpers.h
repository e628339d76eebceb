/* helpers.h -- shared helpers of the fplab tests: seeds, random doubles, an
 * independent rounding oracle, shell commands, the check of the paper's inputs */
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

/* The whole file at path, NUL-terminated (caller frees); its length in
 * *len when len is not NULL.  Fails the test when it cannot be read. */
char *fpt_slurp(const char *path, size_t *len);

/* The fplab command under test ($FPLAB, else src/cli/fplab), and the build
 * directory it sits in (the part of $FPLAB before /src/cli/, else "."): the
 * analysis programs are in BUILDDIR/analyses. */
const char *fpt_fplab(void);
const char *fpt_builddir(void);

/* ---- the paper's inputs (issue 14) --------------------------------------
 * What an analysis NAME run with --out DIR leaves for the paper.  These fail
 * the calling cmocka test at the first fault, naming the file and the row.
 *
 * fpt_paper_outputs checks
 *  DIR/data/NAME_verdicts.csv: the header claim,verdict,figure,condition,
 *   reason, then exactly one row per claim of `claims`, in that order; each
 *   row is claim,verdict,figure,"condition","reason" with no quote inside a
 *   quoted field; the verdict is holds, conditional or refuted, and when
 *   `printed` (the run's standard output) is not NULL it holds the line
 *   "verdict CLAIM VERDICT ..."; the figure is [a-z0-9_]+, not "todo",
 *   begins with NAME up to its first '_' ("vae" for vae_head), and gnuplot
 *   drew it: DIR/plots/FIGURE.png and .pdf are a PNG and a PDF of more than
 *   1000 bytes; at most three distinct figures; the condition is 1 to 110
 *   printable ASCII characters and not "todo"; the reason has more than 20.
 *  DIR/data/NAME_keys.csv: the header key,value, then at most 64 rows
 *   Key,"value"; a key is letters only, starts with a capital, appears once,
 *   and all keys share one prefix (the capital and the lower-case letters
 *   after it: Dot, Res, Vh, ...); the value is a number that strtod parses
 *   whole (nan and inf included: at --quick some keys are nan); every key
 *   of `keys` is there. */
void fpt_paper_outputs(const char *dir, const char *name, const char *printed,
                       const char *const *claims, size_t nclaims, const char *const *keys,
                       size_t nkeys);

/* The value of KEY in DIR/data/NAME_keys.csv (present once, parsed whole by
 * strtod); it may be nan or inf: assert finiteness where a test needs it. */
double fpt_paper_key(const char *dir, const char *name, const char *key);

/* Every key of `keys` is in DIR/data/NAME_keys.csv with a finite value. */
void fpt_paper_finite(const char *dir, const char *name, const char *const *keys, size_t nkeys);

/* The condition of CLAIM in DIR/data/NAME_verdicts.csv, in a buffer that the
 * next call overwrites. */
const char *fpt_paper_condition(const char *dir, const char *name, const char *claim);

#endif
