/* acc_align.c -- the aligned-truncating accumulator of FP8 tensor cores:
 * a fast path and a scalar reference in exact integer arithmetic
 *
 * Model (policy.h, acc=align:F:G): products are taken G at a time (one MMA
 * k-slice); the partial sum carried in from the previous slice joins them.
 * Every addend of the slice is aligned to the largest exponent E among them
 * and truncated toward zero to a multiple of 2^(E-F); the truncated addends
 * are summed exactly (fixed point); the sum is renormalised and truncated
 * toward zero to F+1 significant bits, in binary32's exponent range.
 *
 * Sources (facts only): the DeepSeek-V3 report (arXiv 2412.19437, §3.3 and
 * §3.5.2) says Hopper's FP8 tensor cores align 32 products to the maximum
 * exponent, keep the highest 14 bits of each and truncate the rest, and keep
 * the partial sums at 14-bit precision; SageAttention2 (arXiv 2411.10958)
 * found the mma.f32.f8.f8.f32 accumulator to be 1 + 8 + 13 bits, with the
 * 10 low mantissa bits of an fp32 input zeroed (truncated).  Fasi, Higham,
 * Mikaitis & Pranesh (PeerJ CS 2021) measured the same align-and-truncate
 * scheme in the V100/T4/A100 tensor cores. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include <gmp.h>
#include <mpfr.h>

#include "acc_align.h"
#include "internal.h"

#define ALIGN_EMIN (-126) /* binary32's smallest normal exponent */

/* ---- fast path ----------------------------------------------------------- */

typedef struct {
    int F;       /* fraction bits kept after alignment */
    size_t G;    /* products per group */
    double maxf; /* largest finite value of fp:e=8,m=F */
} align_t;

/* NaN if a NaN or both infinities are present, else the infinity. */
static double nonfinite_sum(const double *a, size_t m)
{
    int pos = 0, neg = 0;
    for (size_t i = 0; i < m; i++) {
        if (isnan(a[i]))
            return NAN;
        if (isinf(a[i])) {
            if (a[i] > 0)
                pos = 1;
            else
                neg = 1;
        }
    }
    return pos && neg ? NAN : pos ? INFINITY : -INFINITY;
}

/* One k-slice: a[0..m) aligned, truncated, summed, renormalised. */
static double group_sum(const align_t *A, const double *a, size_t m)
{
    double amax = 0;
    int nonfinite = 0, allneg = 1;
    for (size_t i = 0; i < m; i++) {
        double av = fabs(a[i]);
        nonfinite |= !(av <= DBL_MAX);
        amax = av > amax ? av : amax;
        allneg &= signbit(a[i]) != 0;
    }
    if (nonfinite)
        return nonfinite_sum(a, m);
    if (amax == 0) /* IEEE 754: a zero sum is -0 only if every addend is -0 */
        return allneg ? -0.0 : 0.0;
    int E = ilogb(amax);
    if (E < ALIGN_EMIN) /* the register's subnormal quantum is the floor */
        E = ALIGN_EMIN;
    int qe = E - A->F;
    /* a_i * 2^-qe is exact (a power-of-two scaling; an underflowing one is
     * below 1 and truncates to 0 anyway) and below 2^(F+1) <= 2^31 in
     * magnitude; the conversion truncates toward zero; the sum of at most
     * G + 1 <= 1025 such integers fits in 42 bits */
    double s = fpl__pow2(-qe);
    int64_t S = 0;
    for (size_t i = 0; i < m; i++)
        S += (int64_t)(a[i] * s);
    if (S == 0)
        return allneg ? -0.0 : 0.0;
    uint64_t mag = S < 0 ? (uint64_t)(-S) : (uint64_t)S;
    int L = 64 - __builtin_clzll(mag);
    if (L > A->F + 1) { /* renormalise: truncate to F+1 significant bits */
        int drop = L - (A->F + 1);
        mag = (mag >> drop) << drop;
    }
    double v = (double)mag * fpl__pow2(qe); /* exact, or inf far beyond maxf */
    if (v > A->maxf)
        v = INFINITY;
    return S < 0 ? -v : v;
}

/* x*y rounded once to the product format (round to odd, then the format's
 * rounding: Boldo & Melquiond, IEEE TC 2008). */
static double product(const fpl_policy_t *p, double x, double y, fpl_sr_t *sr)
{
    double h = x * y;
    if (p->prod_exact)
        return h;
    double l = fma(x, y, -h);
    if (l != 0 && isfinite(h)) {
        uint64_t hb = fpl__bits(h);
        if ((l < 0) != (h < 0))
            hb -= 1;
        h = fpl__double(hb | 1);
    }
    return fpl_round(&p->prod, h, p->rnd, sr);
}

/* t + b rounded once to the promotion format, as fpl_dot's blocked order. */
static double promote_add(const fpl_policy_t *p, double t, double b, fpl_sr_t *sr)
{
    double h = t + b;
    if (h == 0 && p->rnd == FPL_RDOWN) /* IEEE 754: exact zero sum rounding down */
        h = (signbit(t) || signbit(b)) ? -0.0 : 0.0;
    if (p->promote.mbits >= 51)
        return h;
    double bp = h - t; /* TwoSum (Knuth): h + l == t + b */
    double l = (t - (h - bp)) + (b - bp);
    if (l != 0 && isfinite(h)) {
        uint64_t hb = fpl__bits(h);
        if ((l < 0) != (h < 0))
            hb -= 1;
        h = fpl__double(hb | 1);
    }
    return fpl_round(&p->promote, h, p->rnd, sr);
}

double fpl__dot_align(const fpl_policy_t *p, const double *x, const double *y, size_t n,
                      fpl_sr_t *sr)
{
    align_t A = {p->align_frac, p->align_group, p->acc.max_finite};
    int blocked = p->order == FPL_ORDER_BLOCKED;
    size_t B = blocked ? p->block : n;
    double buf[1025];
    double t = 0, c = 0;
    for (size_t b0 = 0; b0 < n; b0 += B) {
        size_t bl = n - b0 < B ? n - b0 : B;
        int have_c = 0;
        for (size_t g0 = 0; g0 < bl; g0 += A.G) {
            size_t gl = bl - g0 < A.G ? bl - g0 : A.G, m = 0;
            if (have_c)
                buf[m++] = c;
            const double *xs = x + b0 + g0, *ys = y ? y + b0 + g0 : NULL;
            if (!ys)
                for (size_t i = 0; i < gl; i++)
                    buf[m++] = xs[i];
            else if (p->prod_exact)
                for (size_t i = 0; i < gl; i++)
                    buf[m++] = xs[i] * ys[i];
            else
                for (size_t i = 0; i < gl; i++)
                    buf[m++] = product(p, xs[i], ys[i], sr);
            c = group_sum(&A, buf, m);
            have_c = 1;
        }
        if (!blocked)
            return c;
        t = promote_add(p, t, c, sr);
    }
    return blocked ? t : 0.0;
}

/* ---- scalar reference ---------------------------------------------------- */

/* One k-slice in exact arithmetic: a[0..m) are exact MPFR values. */
static double ref_group(const fpl_policy_t *p, mpfr_t *a, size_t m)
{
    int F = p->align_frac;
    int nan = 0, pinf = 0, ninf = 0, allneg = 1, any = 0;
    mpfr_exp_t E = 0;
    for (size_t i = 0; i < m; i++) {
        allneg &= mpfr_signbit(a[i]) != 0;
        if (mpfr_nan_p(a[i]))
            nan = 1;
        else if (mpfr_inf_p(a[i]) && mpfr_sgn(a[i]) > 0)
            pinf = 1;
        else if (mpfr_inf_p(a[i]))
            ninf = 1;
        else if (!mpfr_zero_p(a[i])) {
            /* MPFR: a = f * 2^exp with 1/2 <= |f| < 1, so floor(log2|a|) = exp - 1 */
            mpfr_exp_t e = mpfr_get_exp(a[i]) - 1;
            if (!any || e > E)
                E = e;
            any = 1;
        }
    }
    if (nan || (pinf && ninf))
        return NAN;
    if (pinf || ninf)
        return pinf ? INFINITY : -INFINITY;
    if (!any)
        return allneg ? -0.0 : 0.0;
    if (E < ALIGN_EMIN)
        E = ALIGN_EMIN;
    long q = (long)E - F; /* the quantum is 2^q */
    mpz_t S, z;
    mpz_inits(S, z, (mpz_ptr)0);
    mpfr_t t;
    mpfr_init2(t, mpfr_get_prec(a[0]));
    for (size_t i = 0; i < m; i++) {
        mpfr_mul_2si(t, a[i], -q, MPFR_RNDN); /* exact: a power of two */
        mpfr_get_z(z, t, MPFR_RNDZ);          /* truncate toward zero */
        mpz_add(S, S, z);
    }
    double r;
    if (mpz_sgn(S) == 0) {
        r = allneg ? -0.0 : 0.0;
    } else {
        size_t L = mpz_sizeinbase(S, 2); /* exact for a power-of-two base */
        if (L > (size_t)F + 1) {
            size_t drop = L - ((size_t)F + 1);
            mpz_tdiv_q_2exp(S, S, drop); /* toward zero */
            q += (long)drop;
        }
        mpfr_t v, maxf;
        mpfr_init2(v, 64);
        mpfr_init2(maxf, 64);
        mpfr_set_z_2exp(v, S, q, MPFR_RNDN); /* exact: at most 31 bits */
        /* the largest value of fp:e=8,m=F: (2 - 2^-F) * 2^127, written out */
        mpfr_set_ui_2exp(maxf, 1, F + 1, MPFR_RNDN);
        mpfr_sub_ui(maxf, maxf, 1, MPFR_RNDN);
        mpfr_mul_2si(maxf, maxf, 127 - F, MPFR_RNDN);
        if (mpfr_cmpabs(v, maxf) > 0)
            r = mpz_sgn(S) > 0 ? INFINITY : -INFINITY;
        else
            r = mpfr_get_d(v, MPFR_RNDN); /* exact: in binary32's range */
        mpfr_clears(v, maxf, (mpfr_ptr)0);
    }
    mpfr_clear(t);
    mpz_clears(S, z, (mpz_ptr)0);
    return r;
}

double fpl__dot_align_ref(const fpl_policy_t *p, const double *x, const double *y, size_t n,
                          fpl_sr_t *sr)
{
    size_t G = p->align_group;
    int blocked = p->order == FPL_ORDER_BLOCKED;
    size_t B = blocked ? p->block : n;
    mpfr_t *a = malloc((G + 1) * sizeof *a);
    if (!a)
        return NAN;
    for (size_t i = 0; i <= G; i++)
        mpfr_init2(a[i], 2 * 53); /* a product of two doubles is exact */
    mpfr_t t, s;
    mpfr_init2(t, 2200); /* exact sums of two doubles */
    mpfr_init2(s, 2200);
    mpfr_set_zero(t, 1);
    double c = 0, r = 0;
    for (size_t b0 = 0; b0 < n; b0 += B) {
        size_t bl = n - b0 < B ? n - b0 : B;
        int have_c = 0;
        for (size_t g0 = 0; g0 < bl; g0 += G) {
            size_t gl = bl - g0 < G ? bl - g0 : G, m = 0;
            if (have_c)
                mpfr_set_d(a[m++], c, MPFR_RNDN);
            for (size_t i = b0 + g0; i < b0 + g0 + gl; i++, m++) {
                mpfr_set_d(a[m], x[i], MPFR_RNDN);
                if (y) {
                    mpfr_mul_d(a[m], a[m], y[i], MPFR_RNDN); /* exact */
                    if (!p->prod_exact)
                        mpfr_set_d(a[m], fpl_round_mpfr(&p->prod, a[m], p->rnd, sr), MPFR_RNDN);
                }
            }
            c = ref_group(p, a, m);
            have_c = 1;
        }
        if (!blocked) {
            r = c;
            break;
        }
        /* exact sum; MPFR gives an exact zero sum IEEE 754's sign for the
         * rounding direction passed */
        mpfr_set_d(s, c, MPFR_RNDN);
        mpfr_add(s, t, s, p->rnd == FPL_RDOWN ? MPFR_RNDD : MPFR_RNDN);
        r = fpl_round_mpfr(&p->promote, s, p->rnd, sr);
        mpfr_set_d(t, r, MPFR_RNDN);
    }
    for (size_t i = 0; i <= G; i++)
        mpfr_clear(a[i]);
    mpfr_clears(t, s, (mpfr_ptr)0);
    free(a);
    return r;
}
