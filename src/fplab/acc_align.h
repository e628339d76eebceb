/* acc_align.h -- the aligned-truncating accumulator of FP8 tensor cores
 * (private to libfplab; the tests call both functions directly) */
#ifndef FPL_ACC_ALIGN_H
#define FPL_ACC_ALIGN_H

#include <stddef.h>

#include "policy.h"
#include "round.h"

/* fpl_dot under a policy with p->align_frac > 0 (spelling acc=align:F[:G]).
 * The semantics are documented in policy.h.  This is the fast path: binary64
 * and 64-bit integer arithmetic, exact because F <= 30 and G <= 1024. */
double fpl__dot_align(const fpl_policy_t *p, const double *x, const double *y, size_t n,
                      fpl_sr_t *sr);

/* The same function computed the obvious way, as the scalar reference: every
 * addend exact in MPFR, aligned and truncated as a GMP integer, the group sum
 * an exact integer, its truncation to F+1 bits by integer division, and the
 * promotion the exact MPFR sum rounded once by fpl_round_mpfr.  Slow; for
 * tests.  fpl__dot_align must agree with it bit for bit (NaN payloads aside). */
double fpl__dot_align_ref(const fpl_policy_t *p, const double *x, const double *y, size_t n,
                          fpl_sr_t *sr);

#endif /* FPL_ACC_ALIGN_H */
