/* test_diffusion.c -- the diffusion module (schedule, exact score, emulated
 * denoiser, samplers, sliced Wasserstein) and the diffusion analysis */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "fplab.h"
#include "helpers.h"

/* a GSL generator from fpt_seed (FPL_TEST_SEED overrides, printed) */
static gsl_rng *rng_new(unsigned long seed)
{
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(g, (unsigned long)fpt_seed(seed));
    return g;
}

/* The DDPM linear schedule: alpha_bar_T = prod (1 - beta_t) is 4.04e-5
 * for beta 1e-4..0.02 over 1000 steps (the value quoted for Ho et al.'s
 * schedule); steps evenly spaced. */
static void test_diffusion_schedule(void **state)
{
    (void)state;
    fpl_schedule_t S;
    assert_int_equal(fpl_schedule_linear(&S, 1000, 1e-4, 0.02), 0);
    assert_true(fabs(S.alpha_bar[1000] - 4.0358e-5) < 1e-8);
    assert_true(fabs(S.beta[1] - 1e-4) < 1e-18 && fabs(S.beta[1000] - 0.02) < 1e-17);
    assert_true(S.alpha_bar[0] == 1.0);
    size_t tau[1001];
    assert_int_equal(fpl_schedule_steps(&S, 10, tau), 0);
    for (size_t i = 0; i <= 10; i++)
        assert_int_equal(tau[i], 100 * i);
    assert_int_equal(fpl_schedule_steps(&S, 7, tau), 0);
    assert_int_equal(tau[7], 1000);
    for (size_t i = 1; i <= 7; i++)
        assert_true(tau[i] > tau[i - 1]);
    assert_int_not_equal(fpl_schedule_steps(&S, 0, tau), 0);
    assert_int_not_equal(fpl_schedule_steps(&S, 1001, tau), 0);
    fpl_sampler_t k;
    assert_int_not_equal(fpl_sampler_parse("euler", &k), 0);
    assert_int_equal(fpl_sampler_parse("heun", &k), 0);
    assert_int_equal(k, FPL_SAMPLER_HEUN);
    fpl_schedule_free(&S);
}

/* log p_t of the mixture, written here from the density (long double) */
static long double logp(const fpl_mixture_t *m, double ab, const double *x)
{
    long double v = (long double)ab * m->s * m->s + 1 - ab, p = 0;
    for (size_t k = 0; k < m->K; k++) {
        long double D = 0;
        for (size_t j = 0; j < m->d; j++) {
            long double e = x[j] - sqrtl(ab) * m->mu[k * m->d + j];
            D += e * e;
        }
        p += expl(-D / (2 * v)) / m->K;
    }
    return logl(p) - 0.5L * m->d * logl(2 * M_PI * v);
}

/* eps* = -sqrt(1 - ab) grad log p_t, against central differences */
static void test_diffusion_score_finite_differences(void **state)
{
    (void)state;
    gsl_rng *g = rng_new(11);
    fpl_schedule_t S;
    fpl_schedule_linear(&S, 1000, 1e-4, 0.02);
    fpl_mixture_t mix[2];
    assert_int_equal(fpl_mixture_circle(&mix[0], 8, 2.0, 0.1), 0);
    assert_int_equal(fpl_mixture_gaussian(&mix[1], 8, 8, 2.0, 0.3, g), 0);
    fpl_policy_t ex;
    fpl_policy_exact(&ex);
    const size_t ts[] = {1, 20, 100, 300, 600, 1000};
    for (int mi = 0; mi < 2; mi++) {
        const fpl_mixture_t *m = &mix[mi];
        for (size_t ti = 0; ti < 6; ti++) {
            double ab = S.alpha_bar[ts[ti]], v = ab * m->s * m->s + 1 - ab;
            for (int r = 0; r < 5; r++) {
                double x[8], e[8];
                /* near a component: a state the sampler actually visits */
                size_t k = gsl_rng_uniform_int(g, m->K);
                for (size_t j = 0; j < m->d; j++)
                    x[j] = sqrt(ab) * m->mu[k * m->d + j] + sqrt(v) * gsl_ran_gaussian(g, 1.0);
                assert_int_equal(fpl_mixture_eps(m, &ex, ab, x, 1, e, NULL), 0);
                double h = 1e-4 * sqrt(v);
                for (size_t j = 0; j < m->d; j++) {
                    double xp[8], xm[8];
                    memcpy(xp, x, sizeof xp);
                    memcpy(xm, x, sizeof xm);
                    xp[j] += h;
                    xm[j] -= h;
                    double fd =
                        -sqrt(1 - ab) * (double)(logp(m, ab, xp) - logp(m, ab, xm)) / (2 * h);
                    /* central differences: error O(h^2 |f'''|) ~ 1e-8 relative to 1/sqrt(v) */
                    if (fabs(e[j] - fd) > 1e-6 * (1 + fabs(fd)))
                        fail_msg("d=%zu t=%zu coord %zu: eps %.17g, finite differences %.17g", m->d,
                                 ts[ti], j, e[j], fd);
                }
            }
        }
    }
    fpl_mixture_free(&mix[0]);
    fpl_mixture_free(&mix[1]);
    fpl_schedule_free(&S);
    gsl_rng_free(g);
}

/* the emulated denoiser, one trajectory at a time, from fpl_arith (MPFR)
 * and fpl_dot: the oracle of the batched implementation */
static void oracle_eps(const fpl_mixture_t *m, const fpl_policy_t *p, double ab, const double *x,
                       double *eps)
{
    const size_t K = m->K, d = m->d;
    const fpl_format_t *fa = &p->a, *facc = &p->acc;
    double v = ab * m->s * m->s + 1 - ab;
    double c[8 * 64], xa[64], diff[64], L[8], E[8], col[8];
    for (size_t i = 0; i < K * d; i++)
        c[i] = fpl_round(&p->w, sqrt(ab) * m->mu[i], p->rnd, NULL);
    for (size_t j = 0; j < d; j++)
        xa[j] = fpl_round(fa, x[j], p->rnd, NULL);
    double inv2v = fpl_round(facc, -1 / (2 * v), p->rnd, NULL), mx = -INFINITY;
    for (size_t k = 0; k < K; k++) {
        for (size_t j = 0; j < d; j++) {
            double args[2] = {xa[j], c[k * d + j]};
            diff[j] = fpl_arith(fa, FPL_OP_SUB, args, p->rnd, NULL);
        }
        double args[2] = {fpl_dot(p, diff, diff, d, NULL), inv2v};
        L[k] = fpl_arith(facc, FPL_OP_MUL, args, p->rnd, NULL);
        mx = fmax(mx, L[k]);
    }
    for (size_t k = 0; k < K; k++) {
        double args[2] = {L[k], mx};
        E[k] = fpl_round(fa, exp(fpl_arith(facc, FPL_OP_SUB, args, p->rnd, NULL)), p->rnd, NULL);
    }
    double Z = fpl_sum(p, E, K, NULL);
    double coef = fpl_round(fa, sqrt(1 - ab) / v, p->rnd, NULL);
    for (size_t j = 0; j < d; j++) {
        for (size_t k = 0; k < K; k++)
            col[k] = c[k * d + j];
        double a1[2] = {fpl_dot(p, E, col, K, NULL), Z};
        double mj = fpl_arith(fa, FPL_OP_DIV, a1, p->rnd, NULL);
        double a2[2] = {xa[j], mj};
        double r = fpl_arith(fa, FPL_OP_SUB, a2, p->rnd, NULL);
        double a3[2] = {coef, r};
        eps[j] = fpl_arith(&p->out, FPL_OP_MUL, a3, p->rnd, NULL);
    }
}

/* The batched emulated denoiser gives the oracle's bits on every
 * trajectory: sequential order (vectorised path) and pairwise (fpl_dot
 * path), several formats and rounding modes. */
static void test_diffusion_emulated_denoiser_bits(void **state)
{
    (void)state;
    gsl_rng *g = rng_new(12);
    fpl_schedule_t S;
    fpl_schedule_linear(&S, 1000, 1e-4, 0.02);
    fpl_mixture_t mix[2];
    fpl_mixture_circle(&mix[0], 8, 2.0, 0.1);
    fpl_mixture_gaussian(&mix[1], 8, 64, 2.0, 0.3, g);
    const char *specs[] = {"a=fp32,acc=fp32",
                           "a=fp16,acc=fp32",
                           "a=bf16,acc=fp32,out=fp32",
                           "a=e4m3,acc=fp32,out=fp32",
                           "a=bf16,acc=bf16,rnd=rtz",
                           "w=e4m3,a=bf16,prod=bf16,acc=fp32,out=fp16,rnd=rdown",
                           "a=fp16,acc=fp16,order=pairwise"};
    const size_t n = 37;
    double *x = malloc(n * 64 * sizeof *x), *e = malloc(n * 64 * sizeof *e), want[64];
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        fpl_policy_t p;
        assert_int_equal(fpl_policy_parse(specs[s], &p), 0);
        for (int mi = 0; mi < 2; mi++) {
            const fpl_mixture_t *m = &mix[mi];
            const size_t ts[] = {3, 150, 700};
            for (int ti = 0; ti < 3; ti++) {
                double ab = S.alpha_bar[ts[ti]];
                for (size_t i = 0; i < n * m->d; i++)
                    x[i] = 2.5 * gsl_ran_gaussian(g, 1.0);
                assert_int_equal(fpl_mixture_eps(m, &p, ab, x, n, e, NULL), 0);
                for (size_t i = 0; i < n; i++) {
                    oracle_eps(m, &p, ab, x + i * m->d, want);
                    for (size_t j = 0; j < m->d; j++)
                        if (memcmp(&want[j], &e[i * m->d + j], sizeof want[j]))
                            fail_msg("%s d=%zu t=%zu traj %zu coord %zu: %a, oracle %a", specs[s],
                                     m->d, ts[ti], i, j, e[i * m->d + j], want[j]);
                }
            }
        }
    }
    free(x);
    free(e);
    fpl_mixture_free(&mix[0]);
    fpl_mixture_free(&mix[1]);
    fpl_schedule_free(&S);
    gsl_rng_free(g);
}

/* The exact samplers reproduce the mixture: their sliced W1 to fresh
 * samples lies within the spread of the distance between two fresh
 * samples; the start (Gaussian noise) does not, so the check can fail. */
static void test_diffusion_exact_sampler_reproduces_mixture(void **state)
{
    (void)state;
    const size_t n = 512, d = 2, nproj = 64;
    gsl_rng *g = rng_new(13), *gp = rng_new(14);
    fpl_schedule_t S;
    fpl_schedule_linear(&S, 1000, 1e-4, 0.02);
    fpl_mixture_t m;
    fpl_mixture_circle(&m, 8, 2.0, 0.1);
    fpl_denoiser_t D;
    fpl_mixture_denoiser(&m, &D);
    fpl_policy_t ex;
    fpl_policy_exact(&ex);
    double *a = malloc(n * d * sizeof *a), *b = malloc(n * d * sizeof *b);
    /* the floor: fresh against fresh */
    double fl[8], mean = 0, sd = 0;
    for (int r = 0; r < 8; r++) {
        fpl_mixture_sample(&m, g, a, n);
        fpl_mixture_sample(&m, g, b, n);
        fl[r] = fpl_sliced_w1(a, b, n, d, nproj, gp);
        mean += fl[r] / 8;
    }
    for (int r = 0; r < 8; r++)
        sd += (fl[r] - mean) * (fl[r] - mean) / 7;
    sd = sqrt(sd);
    double limit = mean + 3 * sd;
    for (int k = 0; k < FPL_NSAMPLERS; k++) {
        double w = 0;
        for (int r = 0; r < 2; r++) {
            for (size_t i = 0; i < n * d; i++)
                a[i] = gsl_ran_gaussian(g, 1.0);
            if (k == 0 && r == 0) { /* the start is far from the mixture */
                fpl_mixture_sample(&m, g, b, n);
                double w0 = fpl_sliced_w1(a, b, n, d, nproj, gp);
                if (!(w0 > limit))
                    fail_msg("noise vs mixture %g, floor limit %g", w0, limit);
            }
            assert_int_equal(
                fpl_sample((fpl_sampler_t)k, &S, &D, &ex, 1000, a, n, g, NULL, NULL, NULL), 0);
            fpl_mixture_sample(&m, g, b, n);
            w += fpl_sliced_w1(a, b, n, d, nproj, gp) / 2;
        }
        if (!(w <= limit))
            fail_msg("%s: sliced W1 %g beyond the floor %g + 3 x %g",
                     fpl_sampler_name((fpl_sampler_t)k), w, mean, sd);
    }
    free(a);
    free(b);
    fpl_mixture_free(&m);
    fpl_schedule_free(&S);
    gsl_rng_free(g);
    gsl_rng_free(gp);
}

/* One twin pass: the total error of each step is at most introduced +
 * inherited (the split of the tracker); under the exact policy the
 * "emulated" run is the exact one, bit for bit. */
static void test_diffusion_twin_split(void **state)
{
    (void)state;
    const size_t n = 64, d = 2, N = 50;
    gsl_rng *g = rng_new(15);
    fpl_schedule_t S;
    fpl_schedule_linear(&S, 1000, 1e-4, 0.02);
    fpl_mixture_t m;
    fpl_mixture_circle(&m, 8, 2.0, 0.1);
    fpl_denoiser_t D;
    fpl_mixture_denoiser(&m, &D);
    fpl_policy_t ex, pols[2];
    fpl_policy_exact(&ex);
    fpl_policy_exact(&pols[0]);
    fpl_policy_parse("a=fp16,acc=fp32", &pols[1]);
    size_t tau[N + 1];
    fpl_schedule_steps(&S, N, tau);
    double *xe = malloc(n * d * 8), *ye = malloc(n * d * 8), *xp = malloc(n * d * 8),
           *yp = malloc(n * d * 8), *yx = malloc(n * d * 8), *z = malloc(n * d * 8);
    for (int k = 0; k < FPL_NSAMPLERS; k++)
        for (int q = 0; q < 2; q++) {
            const fpl_policy_t *p = &pols[q];
            for (size_t i = 0; i < n * d; i++)
                xe[i] = gsl_ran_gaussian(g, 1.0);
            memcpy(xp, xe, n * d * 8);
            if (!p->exact)
                fpl_round_array(&p->out, xp, xp, n * d, p->rnd, NULL);
            double intro_max = 0;
            for (size_t i = N; i >= 1; i--) {
                for (size_t j = 0; j < n * d; j++)
                    z[j] = gsl_ran_gaussian(g, 1.0);
                assert_int_equal(
                    fpl_sampler_step(k, &S, &D, &ex, tau[i], tau[i - 1], xe, ye, n, z, NULL), 0);
                assert_int_equal(
                    fpl_sampler_step(k, &S, &D, p, tau[i], tau[i - 1], xp, yp, n, z, NULL), 0);
                assert_int_equal(
                    fpl_sampler_step(k, &S, &D, &ex, tau[i], tau[i - 1], xp, yx, n, z, NULL), 0);
                for (size_t r = 0; r < n; r++) {
                    double tot = 0, in = 0, ih = 0;
                    for (size_t j = 0; j < d; j++) {
                        size_t u = r * d + j;
                        tot += (yp[u] - ye[u]) * (yp[u] - ye[u]);
                        in += (yp[u] - yx[u]) * (yp[u] - yx[u]);
                        ih += (yx[u] - ye[u]) * (yx[u] - ye[u]);
                    }
                    tot = sqrt(tot), in = sqrt(in), ih = sqrt(ih);
                    if (!(tot <= (in + ih) * (1 + 1e-12)))
                        fail_msg("%s step %zu: total %g > introduced %g + inherited %g",
                                 fpl_sampler_name(k), i, tot, in, ih);
                    if (p->exact && (tot != 0 || in != 0 || ih != 0))
                        fail_msg("exact policy: non-zero error %g at step %zu", tot, i);
                    intro_max = fmax(intro_max, in);
                }
                memcpy(xe, ye, n * d * 8);
                memcpy(xp, yp, n * d * 8);
            }
            if (!p->exact && !(intro_max > 1e-5))
                fail_msg("%s fp16: no introduced error (%g)", fpl_sampler_name(k), intro_max);
        }
    free(xe);
    free(ye);
    free(xp);
    free(yp);
    free(yx);
    free(z);
    fpl_mixture_free(&m);
    fpl_schedule_free(&S);
    gsl_rng_free(g);
}

/* fpl_diffusion_twin: the exact policy with the reference denoiser is the
 * reference, bit for bit; another denoiser (a stand-in for a quantized
 * model: the means moved by 1e-3) introduces error under the exact policy;
 * step 0 is the rounding of x_T, within half an ulp. */
typedef struct {
    size_t calls, n;
    double max_in[3], max_ih[3], step0_rel[3];
    const double *xT;
} twin_ctx_t;

static int twin_cb(void *ctx, size_t step, size_t t, size_t t_prev, size_t q,
                   const double *introduced, const double *inherited, size_t n)
{
    twin_ctx_t *c = ctx;
    c->calls++;
    assert_true(t_prev <= t);
    for (size_t i = 0; i < n; i++) {
        if (step == 0) {
            assert_true(inherited[i] == 0);
            c->step0_rel[q] =
                fmax(c->step0_rel[q], introduced[i] / hypot(c->xT[2 * i], c->xT[2 * i + 1]));
        } else {
            c->max_in[q] = fmax(c->max_in[q], introduced[i]);
            c->max_ih[q] = fmax(c->max_ih[q], inherited[i]);
        }
    }
    return 0;
}

static void test_diffusion_twin_run(void **state)
{
    (void)state;
    const size_t n = 32, d = 2, N = 20;
    gsl_rng *g = rng_new(16);
    fpl_schedule_t S;
    fpl_schedule_linear(&S, 1000, 1e-4, 0.02);
    fpl_mixture_t m, m2;
    fpl_mixture_circle(&m, 8, 2.0, 0.1);
    fpl_mixture_circle(&m2, 8, 2.0 + 1e-3, 0.1);
    fpl_denoiser_t D, D2;
    fpl_mixture_denoiser(&m, &D);
    fpl_mixture_denoiser(&m2, &D2);
    fpl_policy_t pol[3];
    fpl_policy_exact(&pol[0]);
    fpl_policy_exact(&pol[1]);
    fpl_policy_parse("a=fp16,acc=fp32", &pol[2]);
    const fpl_denoiser_t *emu[3] = {NULL, &D2, NULL};
    double xT[64], xr[64], xe[3 * 64];
    for (int k = 0; k < FPL_NSAMPLERS; k++) {
        for (size_t i = 0; i < n * d; i++)
            xT[i] = xr[i] = gsl_ran_gaussian(g, 1.0);
        twin_ctx_t c = {.n = n, .xT = xT};
        assert_int_equal(
            fpl_diffusion_twin(k, &S, &D, emu, pol, NULL, 3, N, xr, xe, n, g, twin_cb, &c), 0);
        assert_int_equal(c.calls, 3 * (N + 1));
        assert_memory_equal(xe, xr, n * d * sizeof *xr); /* run 0 is the reference */
        assert_true(c.max_in[0] == 0 && c.max_ih[0] == 0 && c.step0_rel[0] == 0);
        assert_true(c.max_in[1] > 1e-5 && c.step0_rel[1] == 0);
        /* fp16: storing x_T costs at most half an ulp, 2^-11 relative */
        assert_true(c.step0_rel[2] > 0 && c.step0_rel[2] <= 0x1p-11);
        assert_true(c.max_in[2] > 0 && c.max_ih[2] > 0);
    }
    fpl_mixture_free(&m);
    fpl_mixture_free(&m2);
    fpl_schedule_free(&S);
    gsl_rng_free(g);
}

/* ---- the analysis program -------------------------------------------------- */

/* --quick with 1 and 2 threads: byte-identical data */
static void test_diffusion_thread_independent(void **state)
{
    (void)state;
    char d1[] = "/tmp/fplab-dif1-XXXXXX", d2[] = "/tmp/fplab-dif2-XXXXXX";
    assert_non_null(mkdtemp(d1));
    assert_non_null(mkdtemp(d2));
    static char out1[65536], out2[65536];
    assert_int_equal(fpt_sh_all(out1, sizeof out1,
                        "'%s/analyses/diffusion' --quick --out '%s' --threads 1 | grep ^verdict",
                        fpt_builddir(), d1),
                     0);
    assert_int_equal(fpt_sh_all(out2, sizeof out2,
                        "'%s/analyses/diffusion' --quick --out '%s' --threads 2 | grep ^verdict",
                        fpt_builddir(), d2),
                     0);
    assert_string_equal(out1, out2);
    assert_non_null(strstr(out1, "verdict D1 "));
    assert_non_null(strstr(out1, "verdict D2 "));
    assert_non_null(strstr(out1, "verdict D3 "));
    const char *files[] = {"diffusion.csv",           "diffusion_steps.csv",
                           "diffusion_late.csv",      "diffusion_fit.csv",
                           "diffusion_reference.csv", "diffusion_verdicts.csv"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p1[256], p2[256];
        snprintf(p1, sizeof p1, "%s/data/%s", d1, files[i]);
        snprintf(p2, sizeof p2, "%s/data/%s", d2, files[i]);
        char *a = fpt_slurp(p1, NULL), *b = fpt_slurp(p2, NULL);
        if (strcmp(a, b))
            fail_msg("%s differs between 1 and 2 threads", files[i]);
        free(a);
        free(b);
    }
    /* the columns the issue names, policies in canonical spelling */
    char p[256];
    snprintf(p, sizeof p, "%s/data/diffusion_steps.csv", d1);
    char *s = fpt_slurp(p, NULL);
    assert_non_null(strstr(s, "\nsampler,policy,d,steps,seed,final_err_median,final_err_p90,"
                              "amplification,swd,swd_floor_mean,swd_floor_sd"));
    assert_non_null(
        strstr(s, "\"w=fp16,a=fp16,prod=exact,acc=fp32,norm=fp32,out=fp16,rnd=rne,order=seq\""));
    free(s);
    snprintf(p, sizeof p, "%s/data/diffusion_late.csv", d1);
    s = fpt_slurp(p, NULL);
    assert_non_null(strstr(s, "\nsampler,policy,d,steps,t,sigma_t,introduced_err,ratio"));
    free(s);
    /* the paper's interface: three verdicts with drawn figures and short
     * conditions, the key numbers the section quotes, consistent counts */
    static const char *const claims[] = {"D1", "D2", "D3"};
    static const char *const keys[] = {
        "DiffAmpMax",         "DiffAmpMedian",     "DiffAmpMin",          "DiffDriftEFourHi",
        "DiffDriftEFourLo",   "DiffErrMin",        "DiffFloorCases",      "DiffFloorEFourCases",
        "DiffFloorEFourWithin", "DiffFloorMiss",   "DiffFloorMissBf",     "DiffFloorMissDet",
        "DiffFloorMissMinN",  "DiffFloorMissState", "DiffFloorWithin",    "DiffGrowState",
        "DiffLastBf",         "DiffLastHalf",      "DiffLastSingle",      "DiffLateLines",
        "DiffLateT",          "DiffLateTotal",     "DiffLinesFine",       "DiffLinesState",
        "DiffPeakRatio",      "DiffPeakTMax",      "DiffPeakTMin",        "DiffRefErr",
        "DiffShrinkFine",     "DiffSigmaOne",      "DiffSlopeBfHi",       "DiffSlopeBfStateHi",
        "DiffSlopeBfStateLo", "DiffSlopeEFourHi",  "DiffSlopeEFourLo",    "DiffSlopeFineMax",
        "DiffSlopeFineMin",   "DiffSlopeSingleHi", "DiffSlopeSingleLo",   "DiffSlopeStateMax",
        "DiffSlopeStateMin",  "DiffStepsMax",      "DiffStepsMin"};
    fpt_paper_outputs(d1, "diffusion", out1, claims, 3, keys, sizeof keys / sizeof keys[0]);
    fpt_paper_finite(d1, "diffusion", keys, sizeof keys / sizeof keys[0]);
#define K(k) fpt_paper_key(d1, "diffusion", k)
    assert_true(K("DiffFloorWithin") + K("DiffFloorMiss") == K("DiffFloorCases"));
    assert_true(K("DiffFloorMissState") <= K("DiffFloorMiss") &&
                K("DiffFloorMissBf") <= K("DiffFloorMiss") &&
                K("DiffFloorMissDet") <= K("DiffFloorMiss"));
    assert_true(K("DiffFloorEFourWithin") <= K("DiffFloorEFourCases"));
    assert_true(K("DiffLateLines") <= K("DiffLateTotal") && K("DiffLateTotal") > 0);
    assert_true(K("DiffGrowState") <= K("DiffLinesState"));
    assert_true(K("DiffShrinkFine") <= K("DiffLinesFine"));
    assert_true(K("DiffSlopeStateMin") <= K("DiffSlopeStateMax"));
    assert_true(K("DiffSlopeFineMin") <= K("DiffSlopeFineMax"));
    assert_true(K("DiffAmpMin") <= K("DiffAmpMedian") && K("DiffAmpMedian") <= K("DiffAmpMax"));
    assert_true(K("DiffPeakTMin") <= K("DiffPeakTMax") && K("DiffPeakTMax") <= 1000);
    assert_true(K("DiffStepsMin") == 10 && K("DiffStepsMax") == 100); /* --quick's list */
    /* the exact side's own error is far below every measured one */
    assert_true(K("DiffRefErr") < 1e-3 * K("DiffErrMin"));
    /* sigma at t = 1 is sqrt(beta_1) = sqrt(1e-4) */
    assert_true(fabs(K("DiffSigmaOne") - 0.01) < 1e-4);
    /* a step of fp32 rounds the state once: of order u rms|x0| */
    assert_true(K("DiffLastSingle") > 0.1 && K("DiffLastSingle") < 10);
#undef K
    fpt_sh_all(NULL, 0, "rm -rf '%s' '%s'", d1, d2);
}

/* the exact policy beside fp32: zero error for the one, non-zero for the other */
static void test_diffusion_exact_policy_zero_error(void **state)
{
    (void)state;
    char d[] = "/tmp/fplab-dif3-XXXXXX";
    assert_non_null(mkdtemp(d));
    assert_int_equal(fpt_sh_all(NULL, 0,
                        "'%s/analyses/diffusion' --quick --out '%s' --policy exact:fp32 "
                        "--steps 5:10:20 --sampler ddim:ddpm >/dev/null",
                        fpt_builddir(), d),
                     0);
    char p[256];
    snprintf(p, sizeof p, "%s/data/diffusion_steps.csv", d);
    char *txt = fpt_slurp(p, NULL), *save = NULL;
    int exact_rows = 0, fp32_rows = 0;
    for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || !strncmp(line, "sampler,", 8))
            continue;
        char samp[16], pol[200];
        size_t dd, steps, seed;
        double med, p90, amp, swd;
        if (sscanf(line, "%15[^,],\"%199[^\"]\",%zu,%zu,%zu,%lf,%lf,%lf,%lf", samp, pol, &dd,
                   &steps, &seed, &med, &p90, &amp, &swd) != 9)
            fail_msg("bad row %s", line);
        if (!strcmp(pol, "exact")) {
            exact_rows++;
            assert_true(med == 0 && p90 == 0);
        } else {
            fp32_rows++;
            assert_true(med > 0 && med < 1e-5);
        }
    }
    assert_int_equal(exact_rows, 2 * 2 * 3 * 3);
    assert_int_equal(fp32_rows, 2 * 2 * 3 * 3);
    free(txt);
    fpt_sh_all(NULL, 0, "rm -rf '%s'", d);
}

/* bad options: one line, exit status 2, no data file */
static void test_diffusion_bad_options(void **state)
{
    (void)state;
    const char *bad[] = {"--sampler euler", "--sampler ddim:", "--steps 0",
                         "--steps 1001",    "--steps 20:10",   "--steps ten",
                         "--policy fp12",   "--policy a=fp99", "--steps"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char d[] = "/tmp/fplab-dif4-XXXXXX";
        assert_non_null(mkdtemp(d));
        static char buf[4096];
        int st = fpt_sh_all(buf, sizeof buf, "'%s/analyses/diffusion' --quick --out '%s' %s", fpt_builddir(), d,
                    bad[i]);
        if (st != 2)
            fail_msg("'%s': exit status %d (%s)", bad[i], st, buf);
        char *nl = strchr(buf, '\n');
        if (!nl || nl[1] != '\0')
            fail_msg("'%s': not one line: %s", bad[i], buf);
        assert_int_equal(fpt_sh_all(buf, sizeof buf, "ls -A '%s/data' 2>/dev/null | wc -l", d), 0);
        assert_int_equal(atoi(buf), 0);
        fpt_sh_all(NULL, 0, "rm -rf '%s'", d);
    }
}

/* ---- D4: the learned denoiser ----------------------------------------------- */

/* a small trained eps_theta for the d = 2 circle mixture */
static fpl_model_t *small_model(const fpl_mixture_t *m, const fpl_schedule_t *S, uint64_t seed,
                                int threads)
{
    fpl_model_t *M = fpl_diffusion_mlp(2, 254, 256, 1, seed);
    assert_non_null(M);
    fpl_recipe_t r;
    assert_int_equal(fpl_recipe_parse("exact", &r), 0);
    fpl_diffusion_train_t o = {20, 16, 2e-3, seed + 1, threads};
    double loss = NAN;
    assert_int_equal(fpl_diffusion_train(M, m, S, &r, &o, &loss), 0);
    assert_true(isfinite(loss) && loss > 0);
    return M;
}

/* Training is deterministic: the same seed gives the same weights for 1
 * and 2 threads; another seed gives other weights; training changed them. */
static void test_diffusion_train_deterministic(void **state)
{
    (void)state;
    fpl_schedule_t S;
    fpl_mixture_t m;
    assert_int_equal(fpl_schedule_linear(&S, 1000, 1e-4, 0.02), 0);
    assert_int_equal(fpl_mixture_circle(&m, 8, 2.0, 0.1), 0);
    uint64_t seed = fpt_seed(5);
    fpl_model_t *a = small_model(&m, &S, seed, 1), *b = small_model(&m, &S, seed, 2),
                *c = small_model(&m, &S, seed + 100, 1),
                *init = fpl_diffusion_mlp(2, 254, 256, 1, seed);
    assert_int_equal(a->nparams, b->nparams);
    assert_memory_equal(a->params, b->params, a->nparams * sizeof *a->params);
    assert_memory_not_equal(a->params, c->params, a->nparams * sizeof *a->params);
    assert_memory_not_equal(a->params, init->params, a->nparams * sizeof *a->params);
    fpl_model_free(a);
    fpl_model_free(b);
    fpl_model_free(c);
    fpl_model_free(init);
    fpl_mixture_free(&m);
    fpl_schedule_free(&S);
}

/* The twin run of the learned denoiser: against its own unquantized copy
 * the drift and every introduced error are exactly zero; with q4_0 or int8
 * weights both are non-zero (and q4_0 drifts more than int8 per channel),
 * and quantizing leaves the biases alone. */
typedef struct {
    double max_in;
} in_ctx_t;

static int max_in_cb(void *ctx, size_t step, size_t t, size_t t_prev, size_t q,
                     const double *introduced, const double *inherited, size_t n)
{
    (void)step, (void)t, (void)t_prev, (void)inherited;
    in_ctx_t *c = ctx;
    for (size_t i = 0; i < n; i++)
        c[q].max_in = fmax(c[q].max_in, introduced[i]);
    return 0;
}

static void test_diffusion_model_twin_drift(void **state)
{
    (void)state;
    fpl_schedule_t S;
    fpl_mixture_t m;
    assert_int_equal(fpl_schedule_linear(&S, 1000, 1e-4, 0.02), 0);
    assert_int_equal(fpl_mixture_circle(&m, 8, 2.0, 0.1), 0);
    fpl_model_t *M = small_model(&m, &S, fpt_seed(9), 1);
    const char *schemes[2] = {"q4_0", "int8:channel"};
    fpl_model_t *Mq[3] = {fpl_model_clone(M), fpl_model_clone(M), fpl_model_clone(M)};
    for (int k = 0; k < 2; k++) {
        fpl_quant_t q;
        assert_int_equal(fpl_quant_parse(schemes[k], &q), 0);
        assert_int_equal(fpl_model_quantize(Mq[k + 1], &q), 0);
        for (size_t i = 0; i < M->nlayers; i++) {
            const fpl_mlayer_t *L = &M->layers[i];
            if (L->kind != FPL_LAYER_LINEAR)
                continue;
            /* the bias (after the out x in weights) is unchanged, the weights not */
            assert_memory_equal(M->params + L->off + L->out * L->in,
                                Mq[k + 1]->params + L->off + L->out * L->in,
                                L->out * sizeof(double));
            assert_memory_not_equal(M->params + L->off, Mq[k + 1]->params + L->off,
                                    L->out * L->in * sizeof(double));
        }
    }
    const size_t n = 24, d = 2, N = 10;
    fpl_denoiser_t Dr, Dq[3];
    fpl_model_denoiser_t *mr = fpl_model_denoiser_alloc(M, d, 16, &Dr), *mq[3];
    assert_non_null(mr);
    const fpl_denoiser_t *emu[3];
    fpl_policy_t pol[3];
    for (int k = 0; k < 3; k++) {
        mq[k] = fpl_model_denoiser_alloc(Mq[k], d, 7, &Dq[k]); /* other batching */
        assert_non_null(mq[k]);
        emu[k] = &Dq[k];
        fpl_policy_exact(&pol[k]);
    }
    for (int k = 0; k < 2; k++) {
        fpl_sampler_t samp = k ? FPL_SAMPLER_DDPM : FPL_SAMPLER_DDIM;
        gsl_rng *g = rng_new(31);
        double xr[24 * 2], xe[3 * 24 * 2];
        for (size_t i = 0; i < n * d; i++)
            xr[i] = gsl_ran_gaussian(g, 1.0);
        in_ctx_t c[3] = {{0}, {0}, {0}};
        assert_int_equal(
            fpl_diffusion_twin(samp, &S, &Dr, emu, pol, NULL, 3, N, xr, xe, n, g, max_in_cb, c), 0);
        double drift[3] = {0, 0, 0};
        for (int q = 0; q < 3; q++)
            for (size_t i = 0; i < n * d; i++) {
                assert_true(isfinite(xe[q * n * d + i]));
                drift[q] += fabs(xe[q * n * d + i] - xr[i]);
            }
        assert_true(drift[0] == 0 && c[0].max_in == 0);
        assert_true(drift[1] > 0 && c[1].max_in > 0);
        assert_true(drift[2] > 0 && c[2].max_in > 0);
        assert_true(drift[1] > drift[2]);
        gsl_rng_free(g);
    }
    /* binary64 only: an emulated policy is refused */
    fpl_policy_t p32;
    assert_int_equal(fpl_policy_parse("a=fp32,acc=fp32", &p32), 0);
    double x[4] = {0.1, 0.2, 0.3, 0.4}, e[4];
    assert_int_equal(Dr.eps(&Dr, &p32, 10, S.alpha_bar[10], x, 2, e, NULL), FPL_EINVAL);
    assert_int_equal(Dr.eps(&Dr, &pol[0], 10, S.alpha_bar[10], x, 2, e, NULL), 0);
    fpl_model_denoiser_free(mr);
    for (int k = 0; k < 3; k++) {
        fpl_model_denoiser_free(mq[k]);
        fpl_model_free(Mq[k]);
    }
    fpl_model_free(M);
    fpl_mixture_free(&m);
    fpl_schedule_free(&S);
}

/* bad arguments of the D4 library calls: refused, nothing changed */
static void test_diffusion_model_bad_arguments(void **state)
{
    (void)state;
    fpl_schedule_t S;
    fpl_mixture_t m;
    assert_int_equal(fpl_schedule_linear(&S, 1000, 1e-4, 0.02), 0);
    assert_int_equal(fpl_mixture_circle(&m, 8, 2.0, 0.1), 0);
    assert_null(fpl_diffusion_mlp(2, 31, 256, 1, 1));
    assert_null(fpl_diffusion_mlp(2, 30, 0, 1, 1));
    assert_null(fpl_diffusion_mlp(0, 30, 256, 1, 1));
    fpl_model_t *M3 = fpl_diffusion_mlp(3, 30, 64, 1, 1), *M = fpl_diffusion_mlp(2, 30, 64, 1, 1);
    assert_non_null(M3);
    assert_non_null(M);
    fpl_recipe_t r;
    fpl_recipe_parse("exact", &r);
    fpl_diffusion_train_t o = {5, 4, 1e-3, 1, 1};
    assert_int_equal(fpl_diffusion_train(M3, &m, &S, &r, &o, NULL), FPL_EINVAL);
    fpl_diffusion_train_t bad[3] = {{0, 4, 1e-3, 1, 1}, {5, 4, -1, 1, 1}, {5, 4, 1e-3, 1, 0}};
    for (int k = 0; k < 3; k++)
        assert_int_equal(fpl_diffusion_train(M, &m, &S, &r, &bad[k], NULL), FPL_EINVAL);
    fpl_denoiser_t D;
    assert_null(fpl_model_denoiser_alloc(M3, 2, 8, &D));
    assert_null(fpl_model_denoiser_alloc(M, 2, 0, &D));
    /* rows of 32 inputs do not fit q4_K's 256: refused, weights unchanged */
    fpl_quant_t q;
    assert_int_equal(fpl_quant_parse("q4_K", &q), 0);
    fpl_model_t *c = fpl_model_clone(M);
    assert_int_equal(fpl_model_quantize(M, &q), FPL_EINVAL);
    assert_memory_equal(M->params, c->params, M->nparams * sizeof *M->params);
    fpl_model_free(c);
    fpl_model_free(M);
    fpl_model_free(M3);
    fpl_mixture_free(&m);
    fpl_schedule_free(&S);
}

/* the D4 analysis: byte-identical data for 1 and 2 threads, the columns the
 * issue names, bad options refused with one line and no file */
static void test_diffusion_quant_analysis(void **state)
{
    (void)state;
    char d1[] = "/tmp/fplab-difq1-XXXXXX", d2[] = "/tmp/fplab-difq2-XXXXXX";
    assert_non_null(mkdtemp(d1));
    assert_non_null(mkdtemp(d2));
    static char out1[65536], out2[65536];
    assert_int_equal(fpt_sh_all(out1, sizeof out1,
                        "'%s/analyses/diffusion_quant' --quick --out '%s' --threads 1 --steps 5:10 "
                        "--train-steps 10 | grep ^verdict",
                        fpt_builddir(), d1),
                     0);
    assert_int_equal(fpt_sh_all(out2, sizeof out2,
                        "'%s/analyses/diffusion_quant' --quick --out '%s' --threads 2 --steps 5:10 "
                        "--train-steps 10 | grep ^verdict",
                        fpt_builddir(), d2),
                     0);
    assert_string_equal(out1, out2);
    assert_non_null(strstr(out1, "verdict D4 "));
    const char *files[] = {"diffusion_quant.csv", "diffusion_quant_train.csv",
                           "diffusion_quant_verdicts.csv"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p1[256], p2[256];
        snprintf(p1, sizeof p1, "%s/data/%s", d1, files[i]);
        snprintf(p2, sizeof p2, "%s/data/%s", d2, files[i]);
        char *a = fpt_slurp(p1, NULL), *b = fpt_slurp(p2, NULL);
        if (strcmp(a, b))
            fail_msg("%s differs between 1 and 2 threads", files[i]);
        free(a);
        free(b);
    }
    char p[256];
    snprintf(p, sizeof p, "%s/data/diffusion_quant.csv", d1);
    char *s = fpt_slurp(p, NULL);
    assert_non_null(strstr(s, "\nscheme,d,steps,swd,swd_floor_mean,swd_floor_sd,drift_median,"
                              "amplification,res_amplification"));
    /* every scheme and d, drift > 0 */
    const char *sch[] = {"\nq8_0,2,", "\nint8:channel,64,", "\nq4_0,2,", "\nq4_K,64,",
                         "\nint4:g128,2,", "\nnvfp4,64,"};
    for (size_t i = 0; i < 6; i++)
        assert_non_null(strstr(s, sch[i]));
    free(s);
    /* the paper's interface: D4 with a drawn figure and a short condition,
     * the key numbers the section quotes, counts that add up over the six
     * schemes x two dimensions x two step counts of this run */
    static const char *const claims[] = {"D4"};
    static const char *const keys[] = {
        "DqAmpMax",          "DqAmpMin",          "DqCases",            "DqCasesEight",
        "DqCasesFour",       "DqDriftEightHi",    "DqDriftEightLo",     "DqDriftFourHi",
        "DqDriftFourLo",     "DqExpAmp",          "DqExpDrift",         "DqExpRss",
        "DqFromN",           "DqMore",            "DqNearExactHi",      "DqNearExactLo",
        "DqNearRefHi",       "DqNearRefLo",       "DqParamsTwo",        "DqStackDriftEightHi",
        "DqStackDriftEightLo", "DqStackDriftFourHi", "DqStackDriftFourLo", "DqStackMax",
        "DqStackMin",        "DqWithinEight",     "DqWithinFour"};
    fpt_paper_outputs(d1, "diffusion_quant", out1, claims, 1, keys, sizeof keys / sizeof keys[0]);
    fpt_paper_finite(d1, "diffusion_quant", keys, sizeof keys / sizeof keys[0]);
#define K(k) fpt_paper_key(d1, "diffusion_quant", k)
    assert_true(K("DqCasesEight") == 2 * 2 * 2 && K("DqCasesFour") == 4 * 2 * 2);
    assert_true(K("DqWithinEight") <= K("DqCasesEight") && K("DqWithinFour") <= K("DqCasesFour"));
    assert_true(K("DqMore") <= K("DqCases") && K("DqCases") <= 24);
    assert_true(K("DqFromN") == 0 || K("DqFromN") == 5 || K("DqFromN") == 10);
    assert_true(K("DqAmpMin") <= K("DqAmpMax") && K("DqStackMin") <= K("DqStackMax"));
    assert_true(K("DqDriftEightLo") <= K("DqDriftEightHi"));
    assert_true(K("DqDriftFourLo") <= K("DqDriftFourHi"));
    assert_true(K("DqNearRefLo") <= K("DqNearRefHi") && K("DqNearRefHi") <= 100);
    /* the MLP at d = 2: 256 inputs -> 256 -> 256 -> 2, with biases */
    assert_true(K("DqParamsTwo") == (256 * 256 + 256) * 2 + 256 * 2 + 2);
#undef K
    fpt_sh_all(NULL, 0, "rm -rf '%s' '%s'", d1, d2);
    const char *bad[] = {"--scheme q3_0",      "--scheme q8_0,,q4_0", "--scheme int4:g100",
                         "--steps 0",          "--steps 20:10",       "--steps 1001",
                         "--train-steps 0",    "--train-steps x",     "--scheme"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char d[] = "/tmp/fplab-difq4-XXXXXX";
        assert_non_null(mkdtemp(d));
        static char buf[4096];
        int st = fpt_sh_all(buf, sizeof buf, "'%s/analyses/diffusion_quant' --quick --out '%s' %s",
                    fpt_builddir(), d, bad[i]);
        if (st != 2)
            fail_msg("'%s': exit status %d (%s)", bad[i], st, buf);
        char *nl = strchr(buf, '\n');
        if (!nl || nl[1] != '\0')
            fail_msg("'%s': not one line: %s", bad[i], buf);
        assert_int_equal(fpt_sh_all(buf, sizeof buf, "ls -A '%s/data' 2>/dev/null | wc -l", d), 0);
        assert_int_equal(atoi(buf), 0);
        fpt_sh_all(NULL, 0, "rm -rf '%s'", d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diffusion_schedule),
        cmocka_unit_test(test_diffusion_score_finite_differences),
        cmocka_unit_test(test_diffusion_emulated_denoiser_bits),
        cmocka_unit_test(test_diffusion_exact_sampler_reproduces_mixture),
        cmocka_unit_test(test_diffusion_twin_split),
        cmocka_unit_test(test_diffusion_twin_run),
        cmocka_unit_test(test_diffusion_thread_independent),
        cmocka_unit_test(test_diffusion_exact_policy_zero_error),
        cmocka_unit_test(test_diffusion_bad_options),
        cmocka_unit_test(test_diffusion_train_deterministic),
        cmocka_unit_test(test_diffusion_model_twin_drift),
        cmocka_unit_test(test_diffusion_model_bad_arguments),
        cmocka_unit_test(test_diffusion_quant_analysis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
