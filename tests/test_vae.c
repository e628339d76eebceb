/* test_vae.c -- the Gaussian head, reparameterisation and KL kernels against
 * MPFR computing each step at high precision; the vae_head analysis */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "helpers.h"

static const char *const fmts[] = {"fp32", "fp16", "bf16", "e4m3", "e5m2"};
#define NFMT 5

static fpl_format_t fmt(const char *name)
{
    fpl_format_t f;
    if (fpl_format_parse(name, &f) != 0)
        fail_msg("cannot parse %s: %s", name, fpl_last_error());
    return f;
}

static fpl_policy_t policy(const char *a, fpl_rmode_t mode)
{
    char spec[128];
    snprintf(spec, sizeof spec, "a=%s,acc=%s,out=%s,rnd=%s", a, a, a, fpl_rmode_name(mode));
    fpl_policy_t p;
    if (fpl_policy_parse(spec, &p) != 0)
        fail_msg("cannot parse %s: %s", spec, fpl_last_error());
    return p;
}

/* ---- the oracle: each step in MPFR, rounded once by fpl_round_mpfr -------- */

#define BIG 400 /* holds the sum or product of two values of these formats (or 1, 0.5) exactly */

static double op2(const fpl_format_t *f, char op, double x, double y, fpl_rmode_t m)
{
    mpfr_t a, b, r;
    mpfr_inits2(BIG, a, b, r, (mpfr_ptr)0);
    mpfr_set_d(a, x, MPFR_RNDN);
    mpfr_set_d(b, y, MPFR_RNDN);
    if (op == '+')
        mpfr_add(r, a, b, m == FPL_RDOWN ? MPFR_RNDD : MPFR_RNDN);
    else if (op == '-')
        mpfr_sub(r, a, b, m == FPL_RDOWN ? MPFR_RNDD : MPFR_RNDN);
    else
        mpfr_mul(r, a, b, MPFR_RNDN);
    double v = fpl_round_mpfr(f, r, m, NULL);
    mpfr_clears(a, b, r, (mpfr_ptr)0);
    return v;
}

/* exp(scale * x) or expm1(x) at 400 bits toward zero: no value or midpoint
 * of a format lies between it and the exact value */
static double fn1(const fpl_format_t *f, int which, double x, fpl_rmode_t m)
{
    mpfr_t a, r;
    mpfr_init2(a, 53);
    mpfr_init2(r, 400);
    mpfr_set_d(a, x, MPFR_RNDN);
    if (which == 0)
        mpfr_exp(r, a, MPFR_RNDZ);
    else if (which == 1) {
        mpfr_div_2ui(a, a, 1, MPFR_RNDN); /* exact for the formats' values */
        mpfr_exp(r, a, MPFR_RNDZ);
    } else
        mpfr_expm1(r, a, MPFR_RNDZ);
    double v = fpl_round_mpfr(f, r, m, NULL);
    mpfr_clears(a, r, (mpfr_ptr)0);
    return v;
}

/* g(l) = e^l - 1 - l: expm1 at 700 bits toward zero minus l exactly (about
 * 700 - log2(2/|l|) correct bits, on the side of the exact value even when
 * e^l is below them: g(-2082) = 2081 + e^-2082 is not fp16's midpoint 2081),
 * into r (initialised by the caller) */
static void g_mp(mpfr_t r, double l)
{
    mpfr_t a, e;
    mpfr_init2(a, 53);
    mpfr_init2(e, 700);
    mpfr_set_d(a, l, MPFR_RNDN);
    mpfr_expm1(e, a, MPFR_RNDZ);
    mpfr_set_prec(r, 2200);
    mpfr_sub(r, e, a, MPFR_RNDN);
    mpfr_clears(a, e, (mpfr_ptr)0);
}

static double g_oracle(const fpl_format_t *f, double l, fpl_rmode_t m)
{
    if (isnan(l))
        return NAN;
    if (isinf(l))
        return fpl_round(f, INFINITY, m, NULL);
    if (l == 0)
        return fpl_round(f, 0.0, m, NULL);
    mpfr_t r;
    mpfr_init2(r, 64);
    if (l > 1000)
        mpfr_set_ui_2exp(r, 1, 2000, MPFR_RNDN);
    else
        g_mp(r, l);
    double v = fpl_round_mpfr(f, r, m, NULL);
    mpfr_clear(r);
    return v;
}

static double kl_oracle(const fpl_format_t *f, int form, double mu, double l, fpl_rmode_t m)
{
    double a = op2(f, '*', mu, mu, m), d;
    if (form == FPL_KL_NAIVE) {
        double c = op2(f, '+', a, fn1(f, 0, l, m), m);
        c = op2(f, '-', c, l, m);
        d = op2(f, '-', c, 1.0, m);
    } else if (form == FPL_KL_STABLE) {
        double c = op2(f, '-', fn1(f, 2, l, m), l, m);
        d = op2(f, '+', a, c, m);
    } else {
        d = op2(f, '+', a, g_oracle(f, l, m), m);
    }
    return op2(f, '*', d, 0.5, m);
}

/* a value of f: random magnitudes for mu, logvars from -35 to 25 and near 0 */
static double rnd_in(fpt_rng_t *r, const fpl_format_t *f, int kind)
{
    double u = (double)(fpt_rng_u64(r) >> 11) * 0x1p-53, v;
    int k = (int)(fpt_rng_u64(r) % 8);
    if (kind == 0) /* mu */
        v = k < 4 ? 8 * u - 4 : ldexp(u, -(int)(fpt_rng_u64(r) % 20));
    else /* logvar */
        v = k < 4 ? 60 * u - 35 : ldexp(u, -(int)(fpt_rng_u64(r) % 30));
    if (fpt_rng_u64(r) & 1)
        v = -v;
    return fpl_round(f, v, FPL_RNE, NULL);
}

static const double edges_l[] = {-30, 30, 20, -20, 0, -0.0, 1, -1, 11.0859375, 0x1p-10, -0x1p-10};
static const double edges_mu[] = {0, -0.0, 1, -3, 0x1p-7};
#define NEL (sizeof edges_l / sizeof edges_l[0])
#define NEM (sizeof edges_mu / sizeof edges_mu[0])

/* Every kernel in five formats and three modes, bit for bit against the
 * step-by-step MPFR oracle, on random and edge inputs (logvar +-30, mu = 0,
 * logvar = 0 exactly). */
static void test_vae_kernels_match_mpfr(void **state)
{
    (void)state;
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(12));
    const fpl_rmode_t modes[] = {FPL_RNE, FPL_RTZ, FPL_RUP, FPL_RDOWN};
    size_t N = fpt_scaled(1500, 60);
    double *mu = malloc((N + NEL * NEM) * sizeof *mu), *l = malloc((N + NEL * NEM) * sizeof *l);
    double *e = malloc((N + NEL * NEM) * sizeof *e), *out = malloc((N + NEL * NEM) * sizeof *out);
    double *out2 = malloc((N + NEL * NEM) * sizeof *out2);
    for (int fi = 0; fi < NFMT; fi++) {
        fpl_format_t f = fmt(fmts[fi]);
        size_t n = 0;
        for (size_t i = 0; i < NEL; i++)
            for (size_t j = 0; j < NEM; j++) {
                mu[n] = fpl_round(&f, edges_mu[j], FPL_RNE, NULL);
                l[n] = fpl_round(&f, edges_l[i], FPL_RNE, NULL);
                e[n++] = fpl_round(&f, edges_mu[(i + j) % NEM] - 0.7, FPL_RNE, NULL);
            }
        for (size_t i = 0; i < N; i++, n++) {
            mu[n] = rnd_in(&rng, &f, 0);
            l[n] = rnd_in(&rng, &f, 1);
            e[n] = rnd_in(&rng, &f, 0);
        }
        for (size_t mi = 0; mi < 4; mi++) {
            fpl_rmode_t m = modes[mi];
            fpl_policy_t p = policy(fmts[fi], m);
            for (int form = 0; form < FPL_KL_NFORMS; form++) {
                assert_int_equal(fpl_kl(&p, (fpl_kl_form_t)form, mu, l, out, n, NULL), 0);
                for (size_t i = 0; i < n; i++) {
                    double want = kl_oracle(&f, form, mu[i], l[i], m);
                    if (!fpt_same(out[i], want))
                        fail_msg("%s %s %s KL(mu=%a, l=%a): got %a want %a", f.name,
                                 fpl_rmode_name(m), fpl_kl_form_name((fpl_kl_form_t)form), mu[i],
                                 l[i], out[i], want);
                }
            }
            assert_int_equal(fpl_gauss_head(&p, l, out, out2, n, NULL, NULL), 0);
            for (size_t i = 0; i < n; i++) {
                double ws = fn1(&f, 1, l[i], m), wv = fn1(&f, 0, l[i], m);
                if (!fpt_same(out[i], ws) || !fpt_same(out2[i], wv))
                    fail_msg("%s %s head(l=%a): got %a %a want %a %a", f.name, fpl_rmode_name(m),
                             l[i], out[i], out2[i], ws, wv);
            }
            /* the clamp of latent diffusion: [-30, 20] as the format holds it */
            const double clamp[2] = {-30, 20};
            assert_int_equal(fpl_gauss_head(&p, l, NULL, out2, n, clamp, NULL), 0);
            double lo = fpl_round(&f, -30, FPL_RNE, NULL), hi = fpl_round(&f, 20, FPL_RNE, NULL);
            for (size_t i = 0; i < n; i++) {
                double c = l[i] < lo ? lo : l[i] > hi ? hi : l[i];
                assert_true(fpt_same(out2[i], fn1(&f, 0, c, m)));
            }
            /* z = RN(mu + RN(sigma eps)) with sigma from the head */
            assert_int_equal(fpl_gauss_head(&p, l, out, NULL, n, NULL, NULL), 0);
            assert_int_equal(fpl_reparam(&p, mu, out, e, out2, n, NULL), 0);
            for (size_t i = 0; i < n; i++) {
                double want = op2(&f, '+', mu[i], op2(&f, '*', out[i], e[i], m), m);
                if (!fpt_same(out2[i], want))
                    fail_msg("%s %s z(mu=%a, sigma=%a, eps=%a): got %a want %a", f.name,
                             fpl_rmode_name(m), mu[i], out[i], e[i], out2[i], want);
            }
        }
    }
    free(mu);
    free(l);
    free(e);
    free(out);
    free(out2);
}

/* g(l) correctly rounded: every value of the 8- and 16-bit formats (the
 * 16-bit ones in RNE), random fp32, and stochastic rounding between
 * the two directed results. */
static void test_vae_g_exhaustive(void **state)
{
    (void)state;
    const char *names[] = {"e4m3", "e5m2", "fp16", "bf16"};
    const fpl_rmode_t modes[] = {FPL_RNE, FPL_RTZ, FPL_RUP, FPL_RDOWN};
    size_t stride = 8 - fpt_scaled(7, 1);
    for (size_t k = 0; k < 4; k++) {
        fpl_format_t f = fmt(names[k]);
        int nm = f.nbits <= 8 ? 4 : 1;
        for (uint64_t c = 0; c < ((uint64_t)1 << f.nbits); c += f.nbits <= 8 ? 1 : stride) {
            double l = fpl_format_decode(&f, c);
            for (int mi = 0; mi < nm; mi++) {
                double got = fpl_kl_g(&f, l, modes[mi], NULL), want = g_oracle(&f, l, modes[mi]);
                if (!fpt_same(got, want))
                    fail_msg("%s %s g(%a): got %a want %a", f.name, fpl_rmode_name(modes[mi]), l,
                             got, want);
            }
        }
    }
    fpl_format_t f = fmt("fp32");
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(31));
    fpl_sr_t sr;
    fpl_sr_seed(&sr, 9);
    size_t N = fpt_scaled(20000, 500);
    for (size_t i = 0; i < N; i++) {
        double l = rnd_in(&rng, &f, 1);
        if (i % 5 == 0)
            l = fpl_round(&f, ldexp(1.0 + (double)(i % 97) / 97, -(int)(i % 120)), FPL_RNE, NULL);
        fpl_rmode_t m = modes[i % 4];
        double got = fpl_kl_g(&f, l, m, NULL), want = g_oracle(&f, l, m);
        if (!fpt_same(got, want))
            fail_msg("fp32 %s g(%a): got %a want %a", fpl_rmode_name(m), l, got, want);
        double s = fpl_kl_g(&f, l, FPL_SR, &sr);
        assert_true(fpt_same(s, g_oracle(&f, l, FPL_RDOWN)) || fpt_same(s, g_oracle(&f, l, FPL_RUP)));
    }
}

/* The exact policy: the reparameterisation is binary64's correctly rounded
 * fma (zero error against MPFR); the head within 2 ulps (libm's exp); the KL
 * within its documented 2^-44 of MPFR at 3000 bits. */
static void test_vae_exact_policy(void **state)
{
    (void)state;
    fpl_policy_t ex;
    fpl_policy_exact(&ex);
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(5));
    size_t N = fpt_scaled(20000, 500);
    mpfr_t a, b, c, r, t;
    mpfr_inits2(3000, a, b, c, r, t, (mpfr_ptr)0);
    double worst_kl = 0, worst_head = 0;
    for (size_t i = 0; i < N; i++) {
        double u1 = (double)(fpt_rng_u64(&rng) >> 11) * 0x1p-53;
        double u2 = (double)(fpt_rng_u64(&rng) >> 11) * 0x1p-53;
        double mu = (i % 3 == 0) ? 0.0 : (20 * u1 - 10) * ldexp(1, -(int)(i % 40));
        /* |l| log-uniform in [2^-400, 700] */
        double l = exp2(-400 + u2 * 409.45) * ((fpt_rng_u64(&rng) & 1) ? -1 : 1);
        double kl, s, v, z, eps = 20 * u1 - 10;
        assert_int_equal(fpl_kl(&ex, FPL_KL_NAIVE, &mu, &l, &kl, 1, NULL), 0);
        g_mp(r, l);
        mpfr_set_d(a, mu, MPFR_RNDN);
        mpfr_set_prec(t, 3000);
        mpfr_sqr(t, a, MPFR_RNDN);
        mpfr_add(r, r, t, MPFR_RNDN);
        mpfr_div_2ui(r, r, 1, MPFR_RNDN);
        double want = mpfr_get_d(r, MPFR_RNDN);
        double e = fabs(kl - want) / want;
        worst_kl = fmax(worst_kl, e);
        if (!(e <= 0x1p-44))
            fail_msg("exact KL(mu=%a, l=%a) = %a, MPFR %a (rel %g)", mu, l, kl, want, e);
        if (fabs(l) < 700) {
            assert_int_equal(fpl_gauss_head(&ex, &l, &s, &v, 1, NULL, NULL), 0);
            mpfr_set_d(a, l, MPFR_RNDN);
            mpfr_exp(r, a, MPFR_RNDN);
            double ev = fabs(v - mpfr_get_d(r, MPFR_RNDN)) / v;
            mpfr_div_2ui(a, a, 1, MPFR_RNDN);
            mpfr_exp(r, a, MPFR_RNDN);
            double es = fabs(s - mpfr_get_d(r, MPFR_RNDN)) / s;
            worst_head = fmax(worst_head, fmax(ev, es));
            assert_true(ev <= 0x1p-51 && es <= 0x1p-51);
        }
        /* z: one binary64 rounding of the exact mu + sigma eps */
        double sig = u2 * 3;
        assert_int_equal(fpl_reparam(&ex, &mu, &sig, &eps, &z, 1, NULL), 0);
        mpfr_set_d(a, sig, MPFR_RNDN);
        mpfr_set_d(b, eps, MPFR_RNDN);
        mpfr_set_d(c, mu, MPFR_RNDN);
        mpfr_fma(r, a, b, c, MPFR_RNDN);
        assert_true(fpt_same(z, mpfr_get_d(r, MPFR_RNDN)));
    }
    printf("# exact policy: worst KL error %.3g, worst head error %.3g\n", worst_kl, worst_head);
    mpfr_clears(a, b, c, r, t, (mpfr_ptr)0);
    /* mu = 0, l = 0: KL = 0 exactly, in every form and format and exactly */
    double z0 = 0, kl;
    assert_int_equal(fpl_kl(&ex, FPL_KL_STABLE, &z0, &z0, &kl, 1, NULL), 0);
    assert_true(kl == 0);
    for (int fi = 0; fi < NFMT; fi++)
        for (int form = 0; form < FPL_KL_NFORMS; form++) {
            fpl_policy_t p = policy(fmts[fi], FPL_RNE);
            assert_int_equal(fpl_kl(&p, (fpl_kl_form_t)form, &z0, &z0, &kl, 1, NULL), 0);
            assert_true(kl == 0 && !signbit(kl));
        }
}

/* The stable and fused forms are never negative for finite inputs: every
 * (mu, l) pair of e4m3 and of e5m2 (a 16-bit grid) in three modes, every
 * fp16 l with mu = 0, random inputs under stochastic rounding; the naive
 * form does go negative on those grids (the test can fail). */
static void test_vae_stable_never_negative(void **state)
{
    (void)state;
    const char *names[] = {"e4m3", "e5m2"};
    const fpl_rmode_t modes[] = {FPL_RNE, FPL_RDOWN, FPL_RTZ};
    double mu[256], l[256], kl[256];
    for (int k = 0; k < 2; k++) {
        fpl_format_t f = fmt(names[k]);
        size_t nv = 0;
        double vals[256];
        for (uint64_t c = 0; c < 256; c++) {
            double v = fpl_format_decode(&f, c);
            if (isfinite(v))
                vals[nv++] = v;
        }
        for (int mi = 0; mi < 3; mi++) {
            fpl_policy_t p = policy(names[k], modes[mi]);
            size_t naive_neg = 0;
            for (size_t i = 0; i < nv; i++) {
                for (size_t j = 0; j < nv; j++) {
                    mu[j] = vals[i];
                    l[j] = vals[j];
                }
                for (int form = 0; form < FPL_KL_NFORMS; form++) {
                    assert_int_equal(fpl_kl(&p, (fpl_kl_form_t)form, mu, l, kl, nv, NULL), 0);
                    for (size_t j = 0; j < nv; j++) {
                        if (form == FPL_KL_NAIVE) {
                            naive_neg += kl[j] < 0;
                            continue;
                        }
                        if (kl[j] < 0)
                            fail_msg("%s %s %s KL(%a, %a) = %a < 0", names[k],
                                     fpl_rmode_name(modes[mi]),
                                     fpl_kl_form_name((fpl_kl_form_t)form), mu[j], l[j], kl[j]);
                    }
                }
            }
            if (naive_neg == 0)
                fail_msg("%s %s: the naive form never went negative", names[k],
                         fpl_rmode_name(modes[mi]));
        }
    }
    /* fp16: every finite l, mu = 0 */
    fpl_format_t h = fmt("fp16");
    fpl_policy_t p = policy("fp16", FPL_RNE);
    double *L = malloc(65536 * sizeof *L), *M = calloc(65536, sizeof *M), *K = malloc(65536 * sizeof *K);
    size_t n = 0;
    for (uint64_t c = 0; c < 65536; c++) {
        double v = fpl_format_decode(&h, c);
        if (isfinite(v))
            L[n++] = v;
    }
    for (int form = FPL_KL_STABLE; form <= FPL_KL_FUSED; form++) {
        assert_int_equal(fpl_kl(&p, (fpl_kl_form_t)form, M, L, K, n, NULL), 0);
        for (size_t i = 0; i < n; i++)
            if (K[i] < 0)
                fail_msg("fp16 %s KL(0, %a) = %a < 0", fpl_kl_form_name((fpl_kl_form_t)form), L[i],
                         K[i]);
    }
    free(L);
    free(M);
    free(K);
    /* stochastic rounding, random inputs */
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(8));
    fpl_sr_t sr;
    fpl_sr_seed(&sr, 3);
    for (int fi = 0; fi < NFMT; fi++) {
        fpl_format_t f = fmt(fmts[fi]);
        fpl_policy_t q = policy(fmts[fi], FPL_SR);
        for (size_t i = 0; i < 256; i++) {
            mu[i] = rnd_in(&rng, &f, 0);
            l[i] = rnd_in(&rng, &f, 1);
        }
        for (int form = FPL_KL_STABLE; form <= FPL_KL_FUSED; form++) {
            assert_int_equal(fpl_kl(&q, (fpl_kl_form_t)form, mu, l, kl, 256, &sr), 0);
            for (size_t i = 0; i < 256; i++)
                assert_false(kl[i] < 0);
        }
    }
}

/* NaN and infinite inputs follow the operations' IEEE rules. */
static void test_vae_specials(void **state)
{
    (void)state;
    fpl_policy_t ex, p = policy("fp16", FPL_RNE);
    fpl_policy_exact(&ex);
    const fpl_policy_t *pols[2] = {&ex, &p};
    for (int k = 0; k < 2; k++)
        for (int form = 0; form < FPL_KL_NFORMS; form++) {
            double mu[5] = {NAN, 0, INFINITY, -INFINITY, 1}, l[5] = {0, NAN, 0, 1, -INFINITY};
            double kl[5];
            assert_int_equal(fpl_kl(pols[k], (fpl_kl_form_t)form, mu, l, kl, 5, NULL), 0);
            assert_true(isnan(kl[0]) && isnan(kl[1]));
            assert_true(kl[2] == INFINITY && kl[3] == INFINITY && kl[4] == INFINITY);
            double mi = 0, li = INFINITY, r;
            assert_int_equal(fpl_kl(pols[k], (fpl_kl_form_t)form, &mi, &li, &r, 1, NULL), 0);
            /* +inf - inf in the naive and stable forms; g(+inf) = +inf */
            if (k == 1 && form != FPL_KL_FUSED)
                assert_true(isnan(r));
            else
                assert_true(r == INFINITY);
        }
    double l[4] = {NAN, INFINITY, -INFINITY, 40}, s[4], v[4];
    assert_int_equal(fpl_gauss_head(&p, l, s, v, 4, NULL, NULL), 0);
    assert_true(isnan(s[0]) && isnan(v[0]));
    assert_true(s[1] == INFINITY && v[1] == INFINITY && s[2] == 0 && v[2] == 0);
    assert_true(s[3] == INFINITY && v[3] == INFINITY); /* e^20 > 65504 */
    const double clamp[2] = {-30, 20};
    assert_int_equal(fpl_gauss_head(&p, l, s, v, 4, clamp, NULL), 0);
    assert_true(isnan(s[0]) && isnan(v[0]));
    /* clamped to 20: sigma = e^10 = 22026.47 -> 22032 in fp16; var overflows */
    assert_true(s[1] == 22032 && v[1] == INFINITY && s[3] == 22032);
    assert_true(s[2] > 0 && s[2] < 6.2e-5); /* e^-15 = 3.06e-7, subnormal */
    fpl_policy_t e4 = policy("e4m3", FPL_RNE);
    assert_int_equal(fpl_gauss_head(&e4, l, s, v, 4, NULL, NULL), 0);
    assert_true(isnan(v[1]) && isnan(v[3])); /* e4m3 has no inf: overflow is NaN */
}

static void test_vae_bad_input(void **state)
{
    (void)state;
    fpl_policy_t p = policy("bf16", FPL_RNE), pi;
    double x = 1, y;
    const double bad[2] = {1, 0}, nanc[2] = {NAN, 0};
    assert_int_equal(fpl_gauss_head(&p, &x, &y, NULL, 1, bad, NULL), FPL_EINVAL);
    assert_non_null(strstr(fpl_last_error(), "clamp"));
    assert_int_equal(fpl_gauss_head(&p, &x, &y, NULL, 1, nanc, NULL), FPL_EINVAL);
    assert_int_equal(fpl_kl(&p, (fpl_kl_form_t)7, &x, &x, &y, 1, NULL), FPL_EINVAL);
    pi = p; /* a policy whose activations are integers (the parser refuses it) */
    pi.a = fmt("int8");
    assert_int_equal(fpl_kl(&pi, FPL_KL_STABLE, &x, &x, &y, 1, NULL), FPL_EINVAL);
    assert_int_equal(fpl_reparam(&pi, &x, &x, &x, &y, 1, NULL), FPL_EINVAL);
    assert_int_equal(fpl_gauss_head(&pi, &x, &y, NULL, 1, NULL, NULL), FPL_EINVAL);
    assert_string_equal(fpl_kl_form_name(FPL_KL_NAIVE), "naive");
    assert_string_equal(fpl_kl_form_name(FPL_KL_STABLE), "stable");
    assert_string_equal(fpl_kl_form_name(FPL_KL_FUSED), "fused");
    assert_string_equal(fpl_kl_form_name((fpl_kl_form_t)9), "?");
    /* the latent sum is fpl_sum of the elements */
    double mu[3] = {0.5, -0.25, 1}, l[3] = {0.125, -1, 2}, kl[3], sum;
    assert_int_equal(fpl_kl(&p, FPL_KL_FUSED, mu, l, kl, 3, NULL), 0);
    assert_int_equal(fpl_kl_sum(&p, FPL_KL_FUSED, mu, l, 3, &sum, NULL), 0);
    assert_true(sum == fpl_sum(&p, kl, 3, NULL));
}

/* ---- the analysis ---------------------------------------------------------- */

/* Same seed, 1 or 2 threads: byte-identical CSV; bad options refused with
 * nothing written. */
static void test_vae_analysis(void **state)
{
    (void)state;
    char d1[] = "/tmp/fplab-vae1-XXXXXX", d2[] = "/tmp/fplab-vae2-XXXXXX";
    assert_non_null(mkdtemp(d1));
    assert_non_null(mkdtemp(d2));
    static char out1[65536];
    assert_int_equal(fpt_sh(out1, sizeof out1,
                            "'%s' run vae_head --quick --out %s --threads 1 2>/dev/null",
                            fpt_fplab(), d1),
                     0);
    assert_int_equal(fpt_run("FPL_GNUPLOT=/nonexistent '%s' run vae_head --quick --out %s --threads 2 "
                        ">/dev/null 2>&1; test $? -le 1", fpt_fplab(), d2), 0);
    const char *files[] = {"vae_head", "vae_exp", "vae_reparam", "vae_kl_plane", "vae_kl_sum",
                           "vae_head_verdicts"};
    for (size_t i = 0; i < 6; i++)
        if (fpt_run("cmp -s %s/data/%s.csv %s/data/%s.csv", d1, files[i], d2, files[i]) != 0)
            fail_msg("%s.csv differs between 1 and 2 threads", files[i]);
    /* the verdicts name V1, V2, V3 and V3-sum, their figures and conditions;
     * the keys sec_vae.tex quotes are there */
    static const char *const claims[] = {"V1", "V2", "V3", "V3-sum"};
    static const char *const keys[] = {
        "VhAbsorbedBf",       "VhAbsorbedEFour",     "VhAbsorbedHalf",   "VhBfPrecFail",
        "VhEFourVarOverflow", "VhEFourVarUnderflow", "VhFusedWorstU",    "VhHalfVarOverflow",
        "VhHalfVarUnderflow", "VhLogvarPoints",      "VhNaiveBiasLarge", "VhNaiveBiasSmall",
        "VhNaiveMaxHalf",     "VhNaiveNegBf",        "VhNaiveNegEFour",  "VhNaiveNegHalf",
        "VhNaiveOffBf",       "VhNaiveOffEFour",     "VhNaiveOffHalf",   "VhPlaneSide",
        "VhRefErr",           "VhStableOffBf",       "VhSumPairBf",      "VhSumSeqBf",
        "VhSumSeqHalf",       "VhSumWideBf",         "VhWorstRatio",     "VhZMaxOverU",
        "VhZMedBf",           "VhZMedEFour",         "VhZMedHalf",       "VhZMinOverU",
        "VhZPNinetyNineBf"};
    fpt_paper_outputs(d1, "vae_head", out1, claims, 4, keys, sizeof keys / sizeof keys[0]);
    fpt_paper_finite(d1, "vae_head", keys, sizeof keys / sizeof keys[0]);
    /* fp16's sigma^2 = e^l overflows where e^l passes 65504 + ulp/2 = 65520:
     * the first logvar of the grid (step 0.05 at --quick) past ln 65520,
     * l itself rounded to fp16 (spacing 2^-7 there) */
    double lo = fpt_paper_key(d1, "vae_head", "VhHalfVarOverflow");
    if (!(lo > log(65520.0) - 0.01 && lo < log(65520.0) + 0.06))
        fail_msg("fp16 var overflows from logvar %g, ln 65520 = %g", lo, log(65520.0));
    /* the fused KL: g correctly rounded, mu^2, their sum: three roundings */
    assert_true(fpt_paper_key(d1, "vae_head", "VhFusedWorstU") <= 3);
    fpt_run("rm -rf %s %s", d1, d2);
    char d3[] = "/tmp/fplab-vae3-XXXXXX";
    assert_non_null(mkdtemp(d3));
    assert_int_not_equal(fpt_run("'%s' run vae_head --quick --out %s --bogus 1 >/dev/null 2>&1", fpt_fplab(), d3), 0);
    assert_int_not_equal(fpt_run("'%s' run vae_head --quick --out %s --threads 0 >/dev/null 2>&1", fpt_fplab(), d3), 0);
    assert_int_not_equal(fpt_run("'%s' run vae_head --quick --out %s --seed x >/dev/null 2>&1", fpt_fplab(), d3), 0);
    assert_int_equal(fpt_run("test ! -e %s/data || test -z \"$(ls -A %s/data)\"", d3, d3), 0);
    fpt_run("rm -rf %s", d3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vae_kernels_match_mpfr),
        cmocka_unit_test(test_vae_g_exhaustive),
        cmocka_unit_test(test_vae_exact_policy),
        cmocka_unit_test(test_vae_stable_never_negative),
        cmocka_unit_test(test_vae_specials),
        cmocka_unit_test(test_vae_bad_input),
        cmocka_unit_test(test_vae_analysis),
    };
    return cmocka_run_group_tests_name("vae", tests, NULL, NULL);
}
