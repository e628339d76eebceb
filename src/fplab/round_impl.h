/* round_impl.h -- the scalar rounding core, inlined by round.c and the
 * reductions in arith_vec.c (private to libfplab) */
#ifndef FPL_ROUND_IMPL_H
#define FPL_ROUND_IMPL_H

#include <math.h>
#include <stdint.h>

#include "internal.h"
#include "round.h"

#define FPL_INLINE static inline __attribute__((always_inline))
#define SIGN_BIT ((uint64_t)1 << 63)
#define MANT52 (((uint64_t)1 << 52) - 1)

#define SM_GAMMA 0x9e3779b97f4a7c15ULL

FPL_INLINE uint64_t splitmix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

FPL_INLINE uint64_t sr_at(const fpl_sr_t *sr, uint64_t index)
{
    return splitmix64(sr->key + (index + 1) * SM_GAMMA);
}

/* ---- policy shared by both paths: specials, overflow, sign -------------- */

/* Does `mode` move the magnitude of a value with sign `neg` upward?  Those
 * modes overflow to the policy value; the others stop at the largest finite
 * number, as IEEE 754 prescribes. */
FPL_INLINE int rounds_magnitude_up(fpl_rmode_t mode, int neg)
{
    switch (mode) {
    case FPL_RTZ: return 0;
    case FPL_RUP: return !neg;
    case FPL_RDOWN: return neg;
    default: return 1; /* RNE, RNA, SR */
    }
}

static inline double overflow_value(const fpl_format_t *f)
{
    switch (f->overflow) {
    case FPL_OVERFLOW_INF: return INFINITY;
    case FPL_OVERFLOW_NAN: return NAN;
    default: return f->max_finite;
    }
}

/* The result for an infinite input of sign neg. */
static inline double round_inf(const fpl_format_t *f, int neg)
{
    double r;
    if (f->kind == FPL_KIND_INT)
        return neg ? f->min_finite : f->max_finite;
    if (!f->has_sign && neg)
        return NAN; /* e8m0 */
    if (f->has_inf && f->overflow != FPL_OVERFLOW_SATURATE)
        r = INFINITY;
    else
        r = overflow_value(f);
    return neg ? -r : r;
}

/* Apply the format's overflow rule, its lower limit (e8m0 has no zero) and
 * the sign to a rounded magnitude r. */
FPL_INLINE double finish_float(const fpl_format_t *f, double r, int neg, fpl_rmode_t mode)
{
    if (r > f->max_finite)
        r = rounds_magnitude_up(mode, neg) ? overflow_value(f) : f->max_finite;
    if (!f->has_zero && r < f->min_positive)
        r = f->min_positive;
    if (r == 0 && f->specials == FPL_SPECIALS_FNUZ)
        return 0.0;
    return neg ? -r : r;
}

static inline double finish_int(const fpl_format_t *f, double r, int neg)
{
    r = neg ? -r : r;
    if (r > f->max_finite)
        r = f->max_finite;
    if (r < f->min_finite)
        r = f->min_finite;
    return r + 0.0; /* integers have no -0 */
}

/* ---- the fast path ------------------------------------------------------ */

/* Given the kept integer t, the discarded bits rem (s of them; s may exceed
 * 63, in which case rem holds all of sig and sig is the full significand),
 * decide whether to add one unit.  u is the stochastic draw. */
FPL_INLINE uint64_t increment(fpl_rmode_t mode, int neg, uint64_t t, uint64_t rem, int s,
                                 uint64_t sig, uint64_t u)
{
    int sc = s > 63 ? 63 : s;
    uint64_t half = ((uint64_t)1 << sc) >> 1;
    switch (mode) {
    case FPL_RNE: return (uint64_t)((sc != 0) & (rem + (t & 1) > half));
    case FPL_RNA: return (uint64_t)((rem != 0) & (rem >= half));
    case FPL_RTZ: return 0;
    case FPL_RUP: return (uint64_t)((rem != 0) & !neg);
    case FPL_RDOWN: return (uint64_t)((rem != 0) & neg);
    case FPL_SR: {
        /* round up iff u < frac * 2^64, i.e. u < ceil(rem * 2^(64-s)) */
        uint64_t thr;
        if (s == 0)
            thr = 0;
        else if (s <= 64)
            thr = rem << (64 - s);
        else if (s - 64 >= 64)
            thr = sig != 0;
        else
            thr = (sig >> (s - 64)) + ((sig & (((uint64_t)1 << (s - 64)) - 1)) != 0);
        return (uint64_t)(u < thr);
    }
    }
    return 0;
}

/* Parameters of a float format, precomputed once per call. */
typedef struct {
    const fpl_format_t *f;
    int m;         /* mantissa bits */
    int emin_b;    /* biased binary64 exponent of the smallest normal */
    int qsub;      /* exponent of the quantum below the smallest normal */
    int shsub;     /* where t goes in the composed bits below min normal */
    uint64_t bsub; /* bits of 2^emin */
    double dsub;   /* 2^emin */
    int slow;      /* 2^emin is not a normal double: compose with ldexp */
    int plain;     /* signed, with zero, composable: the vector kernel applies */
    double max, ovf, inf_pos, inf_neg;
} fparams_t;

static inline void fparams_init(fparams_t *P, const fpl_format_t *f)
{
    P->f = f;
    P->m = f->mbits;
    P->emin_b = f->emin + 1023;
    P->qsub = f->subnormals ? f->emin - f->mbits : f->emin;
    P->shsub = f->subnormals ? 52 - f->mbits : 52;
    P->slow = f->emin < -1021;
    P->dsub = fpl__pow2(f->emin < -1074 ? -1074 : f->emin);
    P->bsub = fpl__bits(P->dsub);
    P->plain = f->has_sign && f->has_zero && !P->slow;
    P->max = f->max_finite;
    P->ovf = overflow_value(f);
    P->inf_pos = round_inf(f, 0);
    P->inf_neg = round_inf(f, 1);
}

FPL_INLINE double round_float_one(const fparams_t *P, double x, fpl_rmode_t mode, uint64_t u)
{
    uint64_t b = fpl__bits(x), a = b & ~SIGN_BIT;
    int neg = (int)(b >> 63);
    int e = (int)(a >> 52);
    if (e == 2047)
        return isnan(x) ? NAN : (neg ? P->inf_neg : P->inf_pos);
    if (neg && !P->f->has_sign)
        return a == 0 ? finish_float(P->f, 0.0, 0, mode) : NAN;
    /* |x| = sig * 2^(ee - 1075), sig < 2^53 */
    int ee = e + (e == 0);
    uint64_t sig = (a & MANT52) | ((uint64_t)(e != 0) << 52);
    int normal = ee >= P->emin_b;
    /* the quantum of the format at |x| is 2^qe */
    int qe = normal ? ee - 1023 - P->m : P->qsub;
    if (e == 0 && normal) {
        /* a subnormal double in a format whose smallest normal is at most
         * 2^-1022 (only P->slow formats): its own exponent decides */
        int ex = sig ? 63 - __builtin_clzll(sig) - 1074 : -1075;
        normal = ex >= P->f->emin;
        qe = normal ? ex - P->m : P->qsub;
        if (qe < -1074) /* the format is finer than binary64 here: x is exact */
            qe = -1074;
    }
    int s = qe - (ee - 1075);
    int sc = s > 63 ? 63 : s;
    uint64_t t = sig >> sc;
    uint64_t rem = sig & (((uint64_t)1 << sc) - 1);
    t += increment(mode, neg, t, rem, s, sig, u);
    double r;
    if (P->slow) {
        r = ldexp((double)t, qe);
    } else if (normal) {
        /* t in [2^m, 2^(m+1)]: the carry into the exponent is exact */
        r = fpl__double(((uint64_t)(ee - 1) << 52) + (t << (52 - P->m)));
    } else {
        /* 2^emin + t*2^qsub is a normal double; removing 2^emin is exact */
        r = fpl__double(P->bsub + (t << P->shsub)) - P->dsub;
    }
    if (P->plain) { /* finish_float with the policy in registers */
        if (r > P->max)
            r = rounds_magnitude_up(mode, neg) ? P->ovf : P->max;
        if (r == 0 && P->f->specials == FPL_SPECIALS_FNUZ)
            return 0.0;
        return neg ? -r : r;
    }
    return finish_float(P->f, r, neg, mode);
}

FPL_INLINE double round_int_one(const fpl_format_t *f, double x, fpl_rmode_t mode, uint64_t u)
{
    uint64_t b = fpl__bits(x), a = b & ~SIGN_BIT;
    int neg = (int)(b >> 63);
    int e = (int)(a >> 52);
    if (e == 2047)
        return isnan(x) ? NAN : round_inf(f, neg);
    int ee = e + (e == 0);
    if (ee >= 1075) /* |x| >= 2^52: far beyond every integer format */
        return finish_int(f, fabs(x), neg);
    uint64_t sig = (a & MANT52) | ((uint64_t)(e != 0) << 52);
    int s = 1075 - ee; /* quantum 1 = 2^0 */
    int sc = s > 63 ? 63 : s;
    uint64_t t = sig >> sc;
    uint64_t rem = sig & (((uint64_t)1 << sc) - 1);
    t += increment(mode, neg, t, rem, s, sig, u);
    return finish_int(f, (double)t, neg);
}

/* ---- the array kernels -------------------------------------------------- */

/* Instruction sets of fpl_round_array's kernels (SCALAR: none). */
enum { FPL__ISA_SCALAR = 0, FPL__ISA_AVX2 = 1, FPL__ISA_AVX512 = 2 };

/* fpl_round_array with its choices made by the caller (for the tests, which
 * compare every kernel with the scalar loop): isa caps the instruction set
 * (the CPU caps it further); stream is 1 to use streaming stores whenever
 * the output is aligned, 0 never, -1 to decide by size as fpl_round_array
 * does.  Results are the same bits in every case. */
void fpl__round_array_with(const fpl_format_t *f, const double *in, double *out, size_t n,
                           fpl_rmode_t mode, fpl_sr_t *sr, int isa, int stream);

#endif /* FPL_ROUND_IMPL_H */
