/* vae.c -- Gaussian head, reparameterisation and KL under a policy */
#include <math.h>
#include <stdlib.h>

#include <mpfr.h>

#include "arith.h"
#include "error.h"
#include "internal.h"
#include "vae.h"

static const char *const form_names[FPL_KL_NFORMS] = {"naive", "stable", "fused"};

const char *fpl_kl_form_name(fpl_kl_form_t form)
{
    return (unsigned)form < FPL_KL_NFORMS ? form_names[form] : "?";
}

static int need_float(const fpl_policy_t *p, const char *who)
{
    if (p->exact || p->a.kind == FPL_KIND_FLOAT)
        return FPL_OK;
    return fpl__fail(FPL_EINVAL, "%s: the activation format %s is not a float format", who,
                     p->a.name);
}

/* ---- g(l) = e^l - 1 - l ----------------------------------------------------- */

/* binary64, relative error below 2^-46 for 2^-400 <= |l| <= 700 (vae.h):
 * for |l| <= 1 the Taylor series l^2 (1/2! + l/3! + ... + l^17/19!) by
 * Horner (the next term is below 2^-55 of the sum; for l < 0 the alternating
 * sum has condition number at most (e - 2)/e^-1 < 2, so about 110 roundings'
 * worth at most); beyond, expm1(l) - l, where |expm1(l)| / g(l) <= 2.4. */
static double g64(double l)
{
    if (isnan(l))
        return l;
    if (isinf(l))
        return INFINITY;
    if (fabs(l) <= 1) {
        /* 1/(k+2)!, each one correctly rounded quotient (k! is exact in
         * binary64 up to 22!) */
        static const double c[18] = {
            1 / 2., 1 / 6., 1 / 24., 1 / 120., 1 / 720., 1 / 5040., 1 / 40320., 1 / 362880.,
            1 / 3628800., 1 / 39916800., 1 / 479001600., 1 / 6227020800., 1 / 87178291200.,
            1 / 1307674368000., 1 / 20922789888000., 1 / 355687428096000.,
            1 / 6402373705728000., 1 / 121645100408832000.};
        double s = c[17];
        for (int k = 16; k >= 0; k--)
            s = s * l + c[k];
        return l * l * s;
    }
    return expm1(l) - l;
}

/* Ziv's strategy: expm1 at W bits (error at most half an ulp), minus l
 * exactly; when that decides the rounding toward zero to P bits, the
 * truncation plus a sticky half-ulp (g(l) is transcendental for l != 0, so
 * never on the P-bit grid) rounds like the exact value in every mode. */
static double g_mpfr(const fpl_format_t *f, double l, fpl_rmode_t mode, fpl_sr_t *sr)
{
    if (isnan(l) || isinf(l) || l == 0)
        return fpl_round(f, l == 0 ? 0.0 : isnan(l) ? l : INFINITY, mode, sr);
    mpfr_t r;
    mpfr_init2(r, 64);
    if (l > 1000) { /* g(l) > e^999: beyond every format (and binary64) */
        mpfr_set_ui_2exp(r, 1, 2000, MPFR_RNDN);
        double res = fpl_round_mpfr(f, r, mode, sr);
        mpfr_clear(r);
        return res;
    }
    mpfr_prec_t P = f->mbits + 1 + 160;
    if (l < -200) {
        /* g = A + e^l with A = -1 - l exact and 0 < e^l < 2^-288: below
         * A's rounding cell in every format (A >= 199, a format's grid at A
         * is coarser than 2^-45), so A plus a sticky bit far below the
         * format's grid rounds like g in every mode; Ziv's loop would need
         * about 1.44 |l| bits to see e^l */
        mpfr_set_prec(r, 2200 + P);
        mpfr_set_d(r, -l, MPFR_RNDN);
        mpfr_sub_ui(r, r, 1, MPFR_RNDN); /* exact: |l| < 2^1024, lsb >= 2^-1074 */
        mpfr_nextabove(r);
        double res = fpl_round_mpfr(f, r, mode, sr);
        mpfr_clear(r);
        return res;
    }
    int el;
    frexp(l, &el);
    mpfr_prec_t W = P + 64 + (el < 0 ? -el : 0);
    mpfr_t x, em;
    mpfr_init2(x, 53);
    mpfr_set_d(x, l, MPFR_RNDN);
    mpfr_init2(em, W);
    for (;;) {
        mpfr_set_prec(em, W);
        mpfr_expm1(em, x, MPFR_RNDN);
        /* em - l exactly: the bits from em's top to the lower of the two
         * last bits */
        mpfr_exp_t hi = mpfr_get_exp(em) > mpfr_get_exp(x) ? mpfr_get_exp(em) : mpfr_get_exp(x);
        mpfr_exp_t lo_em = mpfr_get_exp(em) - W, lo_x = mpfr_get_exp(x) - 53;
        mpfr_exp_t lo = lo_em < lo_x ? lo_em : lo_x;
        mpfr_set_prec(r, (mpfr_prec_t)(hi - lo + 2));
        mpfr_sub(r, em, x, MPFR_RNDN); /* exact */
        if (mpfr_regular_p(r)) {
            /* |error| <= 2^(EXP(em) - W - 1) = 2^(EXP(r) - err) */
            mpfr_exp_t err = mpfr_get_exp(r) - (mpfr_get_exp(em) - W - 1);
            if (err > P && mpfr_can_round(r, err, MPFR_RNDN, MPFR_RNDZ, P))
                break;
        }
        W *= 2;
    }
    mpfr_prec_round(r, P, MPFR_RNDZ);
    mpfr_prec_round(r, P + 1, MPFR_RNDN); /* exact */
    mpfr_t half;
    mpfr_init2(half, 2);
    mpfr_set_ui_2exp(half, 1, mpfr_get_exp(r) - P - 1, MPFR_RNDN);
    mpfr_add(r, r, half, MPFR_RNDN); /* exact at P + 1 bits; g > 0 */
    double res = fpl_round_mpfr(f, r, mode, sr);
    mpfr_clears(half, x, em, r, (mpfr_ptr)0);
    return res;
}

double fpl_kl_g(const fpl_format_t *f, double l, fpl_rmode_t mode, fpl_sr_t *sr)
{
    if (mode != FPL_SR && f->kind == FPL_KIND_FLOAT && f->mbits <= 30 && fabs(l) >= 0x1p-400 &&
        fabs(l) <= 700) {
        if (l < -2) {
            /* g = A + e^l with A = -1 - l exact in binary64.  A may be a
             * rounding boundary (g(-24) = 23 + e^-24 in e4m3, whose values
             * there are 22 and 24), which the interval below cannot
             * decide.  Every boundary at or above A (values and midpoints;
             * A > 1 is normal) is a multiple of G = 2^(e-2-m) for A in
             * [2^(e-1), 2^e), so none lies in (A, A + d) with d the
             * distance from A up to the next multiple; when e^l (libm,
             * within an ulp; margin 2) is below d, g and A's binary64
             * successor (below A + d when d > ulp(A)) round alike. */
            double A = -1 - l, G, lo = nextafter(A, INFINITY);
            int e;
            frexp(A, &e);
            G = ldexp(1.0, e - 2 - f->mbits);
            double d = G - fmod(A, G);
            if (2 * exp(l) < d && lo < A + d)
                return fpl_round(f, lo, mode, NULL);
        }
        double y = g64(l);
        double a = fpl_round(f, y * (1 - 0x1p-40), mode, NULL);
        double b = fpl_round(f, y * (1 + 0x1p-40), mode, NULL);
        if (fpl__bits(a) == fpl__bits(b) || (isnan(a) && isnan(b)))
            return a;
    }
    return g_mpfr(f, l, mode, sr);
}

/* ---- kernels ------------------------------------------------------------------ */

int fpl_gauss_head(const fpl_policy_t *p, const double *logvar, double *sigma, double *var,
                   size_t n, const double *clamp, fpl_sr_t *sr)
{
    int st = need_float(p, "fpl_gauss_head");
    if (st)
        return st;
    double lo = -INFINITY, hi = INFINITY;
    if (clamp) {
        if (!(clamp[0] <= clamp[1]))
            return fpl__fail(FPL_EINVAL, "fpl_gauss_head: bad clamp [%g, %g]", clamp[0],
                             clamp[1]);
        lo = p->exact ? clamp[0] : fpl_round(&p->a, clamp[0], FPL_RNE, NULL);
        hi = p->exact ? clamp[1] : fpl_round(&p->a, clamp[1], FPL_RNE, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        double l = logvar[i];
        if (l < lo)
            l = lo;
        if (l > hi)
            l = hi;
        double s, v;
        if (p->exact) {
            s = exp(0.5 * l);
            v = exp(l);
        } else {
            double h = 0.5 * l;
            s = sigma ? fpl_arith(&p->a, FPL_OP_EXP, &h, p->rnd, sr) : 0;
            v = var ? fpl_arith(&p->a, FPL_OP_EXP, &l, p->rnd, sr) : 0;
        }
        if (sigma)
            sigma[i] = s;
        if (var)
            var[i] = v;
    }
    return FPL_OK;
}

int fpl_reparam(const fpl_policy_t *p, const double *mu, const double *sigma, const double *eps,
                double *z, size_t n, fpl_sr_t *sr)
{
    int st = need_float(p, "fpl_reparam");
    if (st)
        return st;
    if (p->exact) {
        for (size_t i = 0; i < n; i++)
            z[i] = fma(sigma[i], eps[i], mu[i]);
        return FPL_OK;
    }
    if (n == 0)
        return FPL_OK;
    double *t = malloc(n * sizeof *t);
    if (!t)
        return fpl__fail(FPL_ENOMEM, "fpl_reparam: out of memory");
    st = fpl_vec_op(&p->a, FPL_OP_MUL, sigma, eps, t, n, p->rnd, sr);
    if (!st)
        st = fpl_vec_op(&p->a, FPL_OP_ADD, mu, t, z, n, p->rnd, sr);
    free(t);
    return st;
}

int fpl_kl(const fpl_policy_t *p, fpl_kl_form_t form, const double *mu, const double *logvar,
           double *kl, size_t n, fpl_sr_t *sr)
{
    if ((unsigned)form >= FPL_KL_NFORMS)
        return fpl__fail(FPL_EINVAL, "fpl_kl: unknown form %d", (int)form);
    int st = need_float(p, "fpl_kl");
    if (st)
        return st;
    if (p->exact) {
        for (size_t i = 0; i < n; i++)
            kl[i] = 0.5 * (mu[i] * mu[i] + g64(logvar[i]));
        return FPL_OK;
    }
    if (n == 0)
        return FPL_OK;
    const fpl_format_t *f = &p->a;
    fpl_rmode_t m = p->rnd;
    double *a = malloc(3 * n * sizeof *a);
    if (!a)
        return fpl__fail(FPL_ENOMEM, "fpl_kl: out of memory");
    double *b = a + n, *c = a + 2 * n;
    st = fpl_vec_op(f, FPL_OP_MUL, mu, mu, a, n, m, sr); /* mu^2 */
    switch (form) {
    case FPL_KL_NAIVE:
        for (size_t i = 0; i < n && !st; i++)
            b[i] = fpl_arith(f, FPL_OP_EXP, &logvar[i], m, sr);
        for (size_t i = 0; i < n; i++)
            c[i] = 1.0;
        if (!st)
            st = fpl_vec_op(f, FPL_OP_ADD, a, b, a, n, m, sr); /* mu^2 + e^l */
        if (!st)
            st = fpl_vec_op(f, FPL_OP_SUB, a, logvar, a, n, m, sr); /* - l */
        if (!st)
            st = fpl_vec_op(f, FPL_OP_SUB, a, c, a, n, m, sr); /* - 1 */
        break;
    case FPL_KL_STABLE:
        for (size_t i = 0; i < n && !st; i++)
            b[i] = fpl_arith(f, FPL_OP_EXPM1, &logvar[i], m, sr);
        if (!st)
            st = fpl_vec_op(f, FPL_OP_SUB, b, logvar, b, n, m, sr); /* expm1(l) - l */
        if (!st)
            st = fpl_vec_op(f, FPL_OP_ADD, a, b, a, n, m, sr);
        break;
    default:
        for (size_t i = 0; i < n && !st; i++)
            b[i] = fpl_kl_g(f, logvar[i], m, sr);
        if (!st)
            st = fpl_vec_op(f, FPL_OP_ADD, a, b, a, n, m, sr);
        break;
    }
    for (size_t i = 0; i < n; i++)
        c[i] = 0.5;
    if (!st)
        st = fpl_vec_op(f, FPL_OP_MUL, a, c, kl, n, m, sr);
    free(a);
    return st;
}

int fpl_kl_sum(const fpl_policy_t *p, fpl_kl_form_t form, const double *mu, const double *logvar,
               size_t n, double *sum, fpl_sr_t *sr)
{
    double *kl = malloc((n ? n : 1) * sizeof *kl);
    if (!kl)
        return fpl__fail(FPL_ENOMEM, "fpl_kl_sum: out of memory");
    int st = fpl_kl(p, form, mu, logvar, kl, n, sr);
    if (!st)
        *sum = fpl_sum(p, kl, n, sr);
    free(kl);
    return st;
}
