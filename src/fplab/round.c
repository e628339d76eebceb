/* round.c -- fast bit-level rounding and the MPFR reference rounding */
#include <math.h>
#include <string.h>

#include "error.h"
#include "internal.h"
#include "round.h"

#define SIGN_BIT ((uint64_t)1 << 63)
#define MANT52 (((uint64_t)1 << 52) - 1)

/* ---- modes and the stochastic stream ---------------------------------- */

static const char *const mode_names[FPL_NMODES] = {"rne", "rna", "rtz", "rup", "rdown", "sr"};

int fpl_rmode_parse(const char *s, fpl_rmode_t *mode)
{
    for (int i = 0; i < FPL_NMODES; i++)
        if (!strcmp(s, mode_names[i])) {
            *mode = (fpl_rmode_t)i;
            return FPL_OK;
        }
    return fpl__fail(FPL_EINVAL,
                     "unknown rounding mode '%s' (expected rne, rna, rtz, rup, rdown or sr)", s);
}

const char *fpl_rmode_name(fpl_rmode_t mode)
{
    return (unsigned)mode < FPL_NMODES ? mode_names[mode] : "?";
}

#define SM_GAMMA 0x9e3779b97f4a7c15ULL

static inline uint64_t splitmix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void fpl_sr_seed(fpl_sr_t *sr, uint64_t seed)
{
    sr->key = splitmix64(seed + SM_GAMMA); /* decorrelate nearby seeds */
    sr->counter = 0;
}

void fpl_sr_seed_gsl(fpl_sr_t *sr, gsl_rng *rng)
{
    /* gsl_rng_get may give fewer than 32 bits: take 16 at a time */
    uint64_t k = 0;
    for (int i = 0; i < 4; i++)
        k = (k << 16) | (uint64_t)gsl_rng_uniform_int(rng, 65536);
    fpl_sr_seed(sr, k);
}

uint64_t fpl_sr_at(const fpl_sr_t *sr, uint64_t index)
{
    return splitmix64(sr->key + (index + 1) * SM_GAMMA);
}

uint64_t fpl_sr_next(fpl_sr_t *sr)
{
    return fpl_sr_at(sr, sr->counter++);
}

/* ---- policy shared by both paths: specials, overflow, sign -------------- */

/* Does `mode` move the magnitude of a value with sign `neg` upward?  Those
 * modes overflow to the policy value; the others stop at the largest finite
 * number, as IEEE 754 prescribes. */
static inline int rounds_magnitude_up(fpl_rmode_t mode, int neg)
{
    switch (mode) {
    case FPL_RTZ: return 0;
    case FPL_RUP: return !neg;
    case FPL_RDOWN: return neg;
    default: return 1; /* RNE, RNA, SR */
    }
}

static double overflow_value(const fpl_format_t *f)
{
    switch (f->overflow) {
    case FPL_OVERFLOW_INF: return INFINITY;
    case FPL_OVERFLOW_NAN: return NAN;
    default: return f->max_finite;
    }
}

/* The result for an infinite input of sign neg. */
static double round_inf(const fpl_format_t *f, int neg)
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
static inline double finish_float(const fpl_format_t *f, double r, int neg, fpl_rmode_t mode)
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
static inline uint64_t increment(fpl_rmode_t mode, int neg, uint64_t t, uint64_t rem, int s,
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
} fparams_t;

static void fparams_init(fparams_t *P, const fpl_format_t *f)
{
    P->f = f;
    P->m = f->mbits;
    P->emin_b = f->emin + 1023;
    P->qsub = f->subnormals ? f->emin - f->mbits : f->emin;
    P->shsub = f->subnormals ? 52 - f->mbits : 52;
    P->slow = f->emin < -1021;
    P->dsub = fpl__pow2(f->emin < -1074 ? -1074 : f->emin);
    P->bsub = fpl__bits(P->dsub);
}

static inline double round_float_one(const fparams_t *P, double x, fpl_rmode_t mode, uint64_t u)
{
    uint64_t b = fpl__bits(x), a = b & ~SIGN_BIT;
    int neg = (int)(b >> 63);
    int e = (int)(a >> 52);
    if (e == 2047)
        return isnan(x) ? NAN : round_inf(P->f, neg);
    if (neg && !P->f->has_sign)
        return a == 0 ? finish_float(P->f, 0.0, 0, mode) : NAN;
    /* |x| = sig * 2^(ee - 1075), sig < 2^53 */
    int ee = e + (e == 0);
    uint64_t sig = (a & MANT52) | ((uint64_t)(e != 0) << 52);
    int normal = ee >= P->emin_b;
    /* the quantum of the format at |x| is 2^qe */
    int qe = normal ? ee - 1023 - P->m : P->qsub;
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
    return finish_float(P->f, r, neg, mode);
}

static inline double round_int_one(const fpl_format_t *f, double x, fpl_rmode_t mode, uint64_t u)
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

double fpl_round(const fpl_format_t *f, double x, fpl_rmode_t mode, fpl_sr_t *sr)
{
    uint64_t u = 0;
    if (mode == FPL_SR)
        u = sr ? fpl_sr_next(sr) : 0;
    if (f->kind == FPL_KIND_INT)
        return round_int_one(f, x, mode, u);
    fparams_t P;
    fparams_init(&P, f);
    return round_float_one(&P, x, mode, u);
}

/* One loop per mode so that the mode is a constant inside each. */
#define FLOAT_LOOP(MODE)                                                                 \
    for (size_t i = 0; i < n; i++)                                                       \
        out[i] = round_float_one(&P, in[i], MODE, 0);

void fpl_round_array(const fpl_format_t *f, const double *in, double *out, size_t n,
                     fpl_rmode_t mode, fpl_sr_t *sr)
{
    static const fpl_sr_t zero_stream = FPL_SR_INIT;
    const fpl_sr_t *S = sr ? sr : &zero_stream;
    uint64_t c0 = S->counter;
    if (f->kind == FPL_KIND_INT) {
        for (size_t i = 0; i < n; i++)
            out[i] = round_int_one(f, in[i], mode, mode == FPL_SR ? fpl_sr_at(S, c0 + i) : 0);
    } else {
        fparams_t P;
        fparams_init(&P, f);
        switch (mode) {
        case FPL_RNE: FLOAT_LOOP(FPL_RNE) break;
        case FPL_RNA: FLOAT_LOOP(FPL_RNA) break;
        case FPL_RTZ: FLOAT_LOOP(FPL_RTZ) break;
        case FPL_RUP: FLOAT_LOOP(FPL_RUP) break;
        case FPL_RDOWN: FLOAT_LOOP(FPL_RDOWN) break;
        case FPL_SR:
            for (size_t i = 0; i < n; i++)
                out[i] = round_float_one(&P, in[i], FPL_SR, fpl_sr_at(S, c0 + i));
            break;
        }
    }
    if (mode == FPL_SR && sr)
        sr->counter += n;
}

/* ---- the MPFR reference path ------------------------------------------ */

/* Round the magnitude a (> 0) to the format's grid with MPFR rounding rnd:
 * p-bit rounding in the caller's (wide) exponent range, then the format's
 * range with mpfr_check_range and mpfr_subnormalize on the ternary value.
 * Returns the value as a double (inf if beyond the double range). */
static double mpfr_grid(const fpl_format_t *f, mpfr_srcptr a, mpfr_rnd_t rnd)
{
    mpfr_exp_t old_emin = mpfr_get_emin(), old_emax = mpfr_get_emax();
    mpfr_t y;
    mpfr_init2(y, f->mbits + 1);
    int inex = mpfr_set(y, a, rnd);
    /* MPFR writes x = 0.1b...b * 2^E, so 2^emin is 0.1 * 2^(emin+1) and the
     * smallest subnormal 2^(emin-m) has MPFR exponent emin - m + 1.  Two
     * binades of headroom above emax let the caller see the rounded value
     * beyond the largest finite number and apply the overflow policy. */
    mpfr_set_emin(f->subnormals ? f->emin - f->mbits + 1 : f->emin + 1);
    mpfr_set_emax(f->emax + 3);
    inex = mpfr_check_range(y, inex, rnd);
    if (f->subnormals)
        mpfr_subnormalize(y, inex, rnd);
    mpfr_set_emin(old_emin);
    mpfr_set_emax(old_emax);
    double r = mpfr_get_d(y, MPFR_RNDN); /* exact: y is a format value or inf */
    mpfr_clear(y);
    return r;
}

/* Decide between lo and hi = lo + one unit for RNA and SR, given the exact
 * fraction frac = (a - lo) / (hi - lo) in (0, 1). */
static int mpfr_take_hi(fpl_rmode_t mode, mpfr_srcptr frac, uint64_t u)
{
    if (mode == FPL_RNA)
        return mpfr_cmp_d(frac, 0.5) >= 0;
    /* SR: up iff u < frac * 2^64, compared exactly */
    mpfr_t F;
    mpfr_init2(F, mpfr_get_prec(frac));
    mpfr_mul_2ui(F, frac, 64, MPFR_RNDN);
    int up = mpfr_cmp_ui(F, (unsigned long)u) > 0;
    mpfr_clear(F);
    return up;
}

/* frac = (a - lo) / (hi - lo) exactly (hi - lo is a power of two). */
static void mpfr_fraction(mpfr_ptr frac, mpfr_srcptr a, double lo, double hi)
{
    mpfr_t d;
    /* a - lo < hi - lo spans at most PREC(a) + 53 bits */
    mpfr_init2(d, mpfr_get_prec(a) + 64);
    mpfr_sub_d(d, a, lo, MPFR_RNDN);
    mpfr_set_prec(frac, mpfr_get_prec(d));
    mpfr_div_d(frac, d, hi - lo, MPFR_RNDN);
    mpfr_clear(d);
}

static double mpfr_round_int(const fpl_format_t *f, mpfr_srcptr a, int neg, fpl_rmode_t mode,
                             uint64_t u)
{
    if (mpfr_cmp_d(a, 0x1p52) >= 0)
        return finish_int(f, 0x1p52, neg);
    mpfr_t lo, frac;
    mpfr_init2(lo, 64);
    mpfr_init2(frac, 64);
    mpfr_rint(lo, a, MPFR_RNDZ); /* exact: |a| < 2^52 */
    double l = mpfr_get_d(lo, MPFR_RNDN), r = l;
    if (mpfr_cmp(lo, a) != 0) {
        mpfr_fraction(frac, a, l, l + 1.0);
        int cmp = mpfr_cmp_d(frac, 0.5);
        int up;
        switch (mode) {
        case FPL_RNE: up = cmp > 0 || (cmp == 0 && fmod(l, 2.0) != 0); break;
        case FPL_RTZ: up = 0; break;
        case FPL_RUP: up = !neg; break;
        case FPL_RDOWN: up = neg; break;
        default: up = mpfr_take_hi(mode, frac, u); break;
        }
        r = up ? l + 1.0 : l;
    }
    mpfr_clear(lo);
    mpfr_clear(frac);
    return finish_int(f, r, neg);
}

double fpl_round_mpfr(const fpl_format_t *f, mpfr_srcptr x, fpl_rmode_t mode, fpl_sr_t *sr)
{
    uint64_t u = 0;
    if (mode == FPL_SR)
        u = sr ? fpl_sr_next(sr) : 0;
    if (mpfr_nan_p(x))
        return NAN;
    int neg = mpfr_signbit(x) != 0;
    if (mpfr_inf_p(x))
        return round_inf(f, neg);
    if (f->kind == FPL_KIND_FLOAT && neg && !f->has_sign)
        return mpfr_zero_p(x) ? finish_float(f, 0.0, 0, mode) : NAN;
    if (mpfr_zero_p(x))
        return f->kind == FPL_KIND_INT ? 0.0 : finish_float(f, 0.0, neg, mode);

    mpfr_t a;
    mpfr_init2(a, mpfr_get_prec(x));
    mpfr_abs(a, x, MPFR_RNDN); /* exact */
    double r;
    if (f->kind == FPL_KIND_INT) {
        r = mpfr_round_int(f, a, neg, mode, u);
        mpfr_clear(a);
        return r;
    }
    switch (mode) {
    case FPL_RNE: r = mpfr_grid(f, a, MPFR_RNDN); break;
    case FPL_RTZ: r = mpfr_grid(f, a, MPFR_RNDZ); break;
    case FPL_RUP: r = mpfr_grid(f, a, neg ? MPFR_RNDZ : MPFR_RNDA); break;
    case FPL_RDOWN: r = mpfr_grid(f, a, neg ? MPFR_RNDA : MPFR_RNDZ); break;
    default: {
        /* RNA and SR: the two neighbours on the grid, then the exact fraction */
        double lo = mpfr_grid(f, a, MPFR_RNDZ), hi = mpfr_grid(f, a, MPFR_RNDA);
        r = lo;
        if (lo != hi) {
            if (lo > f->max_finite) {
                r = hi; /* both neighbours overflow */
            } else {
                mpfr_t frac;
                mpfr_init2(frac, 64);
                mpfr_fraction(frac, a, lo, hi);
                r = mpfr_take_hi(mode, frac, u) ? hi : lo;
                mpfr_clear(frac);
            }
        }
        break;
    }
    }
    mpfr_clear(a);
    return finish_float(f, r, neg, mode);
}

double fpl_round_mpfr_d(const fpl_format_t *f, double x, fpl_rmode_t mode, fpl_sr_t *sr)
{
    mpfr_t m;
    mpfr_init2(m, 53);
    mpfr_set_d(m, x, MPFR_RNDN);
    double r = fpl_round_mpfr(f, m, mode, sr);
    mpfr_clear(m);
    return r;
}
