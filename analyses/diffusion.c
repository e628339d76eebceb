/* diffusion.c -- D1-D3: how the arithmetic error of a diffusion sampler
 * grows with the number of steps, where it is born, and whether it shows in
 * the sample distribution; exact-score Gaussian-mixture model problem */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "common.h"

#define T_STEPS 1000
#define NPROJ   64
#define MAXL    16 /* most items of a list option */

/* the named policies; any other item is a policy spelling with '/' for ',' */
static const struct {
    const char *name, *spec;
} named[] = {
    {"fp32", "a=fp32,acc=fp32"},
    {"fp16", "a=fp16,acc=fp32"},
    {"bf16", "a=bf16,acc=fp32"},
    {"e4m3", "a=e4m3,acc=fp32,out=fp32"},
    {"bf16-fp32state", "a=bf16,acc=fp32,out=fp32"},
    {"e5m2", "a=e5m2,acc=fp32,out=fp32"},
    {"fp64", "a=fp64,acc=fp64"},
    {"exact", "exact"},
};
#define NNAMED (sizeof named / sizeof named[0])

static const size_t dims[2] = {2, 64};
#define ND 2

/* per cell: the exact run's distance to fresh samples, then per policy */
enum { C_EXACT_SWD = 0, C_HEAD = 1 };
enum { Q_MED = 0, Q_P90, Q_AMP, Q_SWD, Q_RSS, Q_NONFIN, NQF };

typedef struct {
    uint64_t seed;
    size_t ns, np, nn, nseeds, nmax, M[ND];
    fpl_sampler_t samp[MAXL];
    fpl_policy_t pol[MAXL];
    size_t steps[MAXL];
    fpl_schedule_t S;
    fpl_mixture_t mix[ND];
    size_t width, qwidth;
    int failed;
} sweep_t;

static double rms_diff(const double *a, const double *b, size_t d)
{
    double s = 0;
    for (size_t j = 0; j < d; j++)
        s += (a[j] - b[j]) * (a[j] - b[j]);
    s = sqrt(s / (double)d);
    return isnan(s) ? INFINITY : s;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* quantile q (type 7) of v[0..n), sorting v */
static double quantile(double *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, cmpd);
    double h = q * (double)(n - 1);
    size_t lo = (size_t)h;
    if (lo + 1 >= n)
        return v[n - 1];
    if (isinf(v[lo]) || isinf(v[lo + 1]))
        return v[lo + 1];
    return v[lo] + (h - (double)lo) * (v[lo + 1] - v[lo]);
}

static void cell_index(const sweep_t *X, size_t cell, size_t *s, size_t *di, size_t *ni,
                       size_t *seed)
{
    *seed = cell % X->nseeds;
    cell /= X->nseeds;
    *ni = cell % X->nn;
    cell /= X->nn;
    *di = cell % ND;
    *s = cell / ND;
}

/* per-step medians over the trajectories, and the introduced errors'
 * sum of squares per trajectory */
typedef struct {
    const sweep_t *X;
    double *out, *rss, *tmp;
} step_ctx_t;

static int step_cb(void *ctx, size_t step, size_t t, size_t t_prev, size_t q,
                   const double *introduced, const double *inherited, size_t n)
{
    (void)t;
    (void)t_prev;
    step_ctx_t *c = ctx;
    double *o = c->out + C_HEAD + q * c->X->qwidth, *rss = c->rss + q * n;
    for (size_t i = 0; i < n; i++) {
        rss[i] = (step ? rss[i] : 0) + introduced[i] * introduced[i];
        c->tmp[i] = introduced[i];
    }
    o[NQF + step] = quantile(c->tmp, n, 0.5);
    memcpy(c->tmp, inherited, n * sizeof *c->tmp);
    o[NQF + c->X->nmax + 1 + step] = quantile(c->tmp, n, 0.5);
    return 0;
}

static void cell_fn(void *ctx, size_t cell, double *out)
{
    sweep_t *X = ctx;
    size_t si, di, ni, seed;
    cell_index(X, cell, &si, &di, &ni, &seed);
    for (size_t i = 0; i < X->width; i++)
        out[i] = NAN;
    const size_t d = dims[di], n = X->M[di], N = X->steps[ni], len = n * d, P = X->np;
    const fpl_sampler_t k = X->samp[si];
    const fpl_mixture_t *m = &X->mix[di];
    fpl_denoiser_t D;
    fpl_mixture_denoiser(m, &D);
    /* the random streams: x_T and noise (shared by every run of the cell),
     * fresh mixture samples, projections; seed-level, so the exact runs of
     * the floor differ only by seed */
    uint64_t cfg = ((uint64_t)si * ND + di) * 64 + ni;
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937), *gf = gsl_rng_alloc(gsl_rng_mt19937),
            *gp = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(g, fpa_stream_seed(X->seed, cfg, seed));
    gsl_rng_set(gf, fpa_stream_seed(X->seed, 1000 + di, seed));
    uint64_t proj_seed = fpa_stream_seed(X->seed, 2000 + di, seed);
    double *xe = malloc(len * sizeof *xe), *xp = malloc(P * len * sizeof *xp);
    double *fresh = malloc(len * sizeof *fresh), *rss = malloc(P * n * sizeof *rss);
    double *tmp = malloc(n * sizeof *tmp), *tmp2 = malloc(n * sizeof *tmp2);
    fpl_sr_t *sr = malloc(P * sizeof *sr);
    if (!xe || !xp || !fresh || !rss || !tmp || !tmp2 || !sr) {
#pragma omp atomic write
        X->failed = 1;
        goto done;
    }
    for (size_t i = 0; i < len; i++)
        xe[i] = gsl_ran_gaussian_ziggurat(g, 1.0);
    for (size_t q = 0; q < P; q++)
        fpl_sr_seed(&sr[q], fpa_stream_seed(X->seed, 3000 + cell, q));
    step_ctx_t sc = {X, out, rss, tmp};
    if (fpl_diffusion_twin(k, &X->S, &D, NULL, X->pol, sr, P, N, xe, xp, n, g, step_cb, &sc)) {
#pragma omp atomic write
        X->failed = 1;
        goto done;
    }
    fpl_mixture_sample(m, gf, fresh, n);
    gsl_rng_set(gp, proj_seed);
    double w = fpl_sliced_w1(xe, fresh, n, d, NPROJ, gp);
    out[C_EXACT_SWD] = w;
    for (size_t q = 0; q < P; q++) {
        double *o = out + C_HEAD + q * X->qwidth, *x = xp + q * len, nonfin = 0;
        for (size_t r = 0; r < n; r++) {
            tmp[r] = rms_diff(x + r * d, xe + r * d, d);
            nonfin += isinf(tmp[r]);
            double rr = sqrt(rss[q * n + r]);
            tmp2[r] = tmp[r] == 0 ? 0 : isinf(tmp[r]) ? INFINITY : tmp[r] / rr;
            rss[q * n + r] = rr;
        }
        o[Q_MED] = quantile(tmp, n, 0.5);
        o[Q_P90] = quantile(tmp, n, 0.9);
        o[Q_AMP] = quantile(tmp2, n, 0.5);
        o[Q_RSS] = quantile(rss + q * n, n, 0.5);
        o[Q_NONFIN] = nonfin;
        gsl_rng_set(gp, proj_seed);
        double ws = nonfin ? INFINITY : fpl_sliced_w1(x, fresh, n, d, NPROJ, gp);
        o[Q_SWD] = isnan(ws) ? INFINITY : ws;
    }
done:
    free(xe);
    free(xp);
    free(fresh);
    free(rss);
    free(tmp);
    free(tmp2);
    free(sr);
    gsl_rng_free(g);
    gsl_rng_free(gf);
    gsl_rng_free(gp);
}

/* split a ':'-separated list into items (at most MAXL); 0 or -1 */
static int split(const char *s, char items[MAXL][512], size_t *n)
{
    *n = 0;
    const char *p = s;
    for (;;) {
        const char *e = strchr(p, ':');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 0 || l >= 512 || *n >= MAXL)
            return -1;
        memcpy(items[*n], p, l);
        items[*n][l] = '\0';
        (*n)++;
        if (!e)
            return 0;
        p = e + 1;
    }
}

static const char *short_name(const fpl_policy_t *p, const char *item)
{
    (void)p;
    return item;
}

/* the paper's key name of a named policy (letters only), or NULL */
static const char *policy_key(const char *item)
{
    static const char *const k[][2] = {{"fp32", "Single"},  {"fp16", "Half"},
                                       {"bf16", "Bf"},      {"e4m3", "EFour"},
                                       {"bf16-fp32state", "BfState"}, {"e5m2", "EFive"},
                                       {"fp64", "Double"}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (!strcmp(item, k[i][0]))
            return k[i][1];
    return NULL;
}

int main(int argc, char **argv)
{
    fpa_t A;
    fpa_opt_t opt[3] = {
        {"sampler", "LIST", "samplers, ':'-separated: ddim ddpm ode heun (default all)", NULL},
        {"policy", "LIST",
         "policies, ':'-separated: fp32 fp16 bf16 e4m3 bf16-fp32state e5m2 fp64 exact, or a\n"
         "               policy spelling with '/' for ',' (default "
         "fp32:fp16:bf16:e4m3:bf16-fp32state)",
         NULL},
        {"steps", "LIST",
         "step counts in 1..1000, ':'-separated, increasing (default 10:20:50:100:200:500:1000;\n"
         "               --quick 10:20:50:100)",
         NULL}};
    int st = fpa_init_opts(
        &A, "diffusion",
        "D1-D3: the arithmetic error of diffusion samplers (DDIM, DDPM ancestral,\n"
        "probability-flow ODE Euler and Heun) on a Gaussian mixture with an exact score\n"
        "(d = 2: 8 means on a circle of radius 2, s = 0.1; d = 64: means N(0, 4I), s = 0.3),\n"
        "linear-beta DDPM schedule, T = 1000: final error against the exact run from the same\n"
        "x_T and noise, per-step introduced and inherited error, amplification, growth with\n"
        "the step count; introduced error over sigma_t; sliced Wasserstein distance to the\n"
        "mixture beside the seed-to-seed floor.  Writes data/diffusion*.csv,\n"
        "plots/diffusion_{steps,late,floor,samples}.png|pdf and verdicts.",
        argc, argv, opt, 3);
    if (st)
        return st - 1;
    static sweep_t X;
    X.seed = A.seed;
    X.nseeds = 3;
    X.M[0] = A.quick ? 64 : 512;
    X.M[1] = A.quick ? 16 : 96;
    char items[MAXL][512], names[MAXL][512];
    /* samplers */
    const char *sv = opt[0].value ? opt[0].value : "ddim:ddpm:ode:heun";
    if (split(sv, items, &X.ns)) {
        fprintf(stderr, "diffusion: bad value '%s' for --sampler (a ':'-separated list)\n", sv);
        return 2;
    }
    for (size_t i = 0; i < X.ns; i++)
        if (fpl_sampler_parse(items[i], &X.samp[i])) {
            fprintf(stderr, "diffusion: --sampler: %s\n", fpl_last_error());
            return 2;
        }
    /* policies */
    const char *pv = opt[1].value ? opt[1].value : "fp32:fp16:bf16:e4m3:bf16-fp32state";
    if (split(pv, names, &X.np)) {
        fprintf(stderr, "diffusion: bad value '%s' for --policy (a ':'-separated list)\n", pv);
        return 2;
    }
    for (size_t i = 0; i < X.np; i++) {
        char spec[512];
        snprintf(spec, sizeof spec, "%s", names[i]);
        for (size_t j = 0; j < NNAMED; j++)
            if (!strcmp(names[i], named[j].name))
                snprintf(spec, sizeof spec, "%s", named[j].spec);
        for (char *c = spec; *c; c++)
            if (*c == '/')
                *c = ',';
        if (fpl_policy_parse(spec, &X.pol[i])) {
            fprintf(stderr, "diffusion: --policy: '%s': %s\n", names[i], fpl_last_error());
            return 2;
        }
    }
    /* steps */
    const char *nv = opt[2].value ? opt[2].value
                     : A.quick    ? "10:20:50:100"
                                  : "10:20:50:100:200:500:1000";
    if (split(nv, items, &X.nn)) {
        fprintf(stderr, "diffusion: bad value '%s' for --steps (a ':'-separated list)\n", nv);
        return 2;
    }
    for (size_t i = 0; i < X.nn; i++) {
        char *end;
        unsigned long v = strtoul(items[i], &end, 10);
        if (*end || items[i][0] == '-' || v < 1 || v > T_STEPS || (i && v <= X.steps[i - 1])) {
            fprintf(stderr,
                    "diffusion: bad value '%s' in --steps (step counts in 1..%d, increasing)\n",
                    items[i], T_STEPS);
            return 2;
        }
        X.steps[i] = v;
    }
    X.nmax = X.steps[X.nn - 1];
    if (fpl_schedule_linear(&X.S, T_STEPS, 1e-4, 0.02) ||
        fpl_mixture_circle(&X.mix[0], 8, 2.0, 0.1))
        return fpa_fail(&A, "model");
    gsl_rng *gm = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(gm, fpa_stream_seed(A.seed, 999, 0));
    if (fpl_mixture_gaussian(&X.mix[1], 8, 64, 2.0, 0.3, gm))
        return fpa_fail(&A, "model");
    gsl_rng_free(gm);
    X.qwidth = NQF + 2 * (X.nmax + 1);
    X.width = C_HEAD + X.np * X.qwidth;
    const size_t ncells = X.ns * ND * X.nn * X.nseeds;
    double *res = calloc(ncells * X.width, sizeof *res);
    if (!res)
        return fpa_fail(&A, "out of memory");
    st = fpa_sweep(&A, "runs", ncells, X.width, cell_fn, &X, res);
    if (st || X.failed) {
        if (X.failed)
            fprintf(stderr, "diffusion: a run failed: %s\n", fpl_last_error());
        free(res);
        fpl_schedule_free(&X.S);
        fpl_mixture_free(&X.mix[0]);
        fpl_mixture_free(&X.mix[1]);
        return st < 0 || X.failed ? 1 : 0;
    }
#define CELL(s, di, ni, sd)  (res + ((((s)*ND + (di)) * X.nn + (ni)) * X.nseeds + (sd)) * X.width)
#define QO(s, di, ni, sd, q) (CELL(s, di, ni, sd) + C_HEAD + (q)*X.qwidth)
    const size_t NS = X.nseeds;
    double tmpv[64];

    /* ---- data/diffusion_steps.csv: one row per run (seed) ---------------- */
    fpl_csv_t *c1 = fpa_csv(
        &A, "diffusion_steps",
        "# one row per sampler, policy (canonical spelling), dimension d, step count and seed\n"
        "# final_err_*: ||x0~ - x0|| / sqrt(d) against the exact run from the same x_T and noise,\n"
        "#   median and 90th percentile over the trajectories\n"
        "# amplification: median over trajectories of final error / root-sum-square of the\n"
        "#   introduced errors (x_T stored in the state format, then every step's own rounding)\n"
        "# rss_introduced: median of that root-sum-square\n"
        "# swd: sliced Wasserstein-1 (64 projections) of the final samples to fresh mixture\n"
        "#   samples; swd_floor_mean/sd: the same for the exact runs, over the seeds\n"
        "# trajectories: samples per run; nonfinite: trajectories that produced inf/NaN\n"
        "sampler,policy,d,steps,seed,final_err_median,final_err_p90,amplification,swd,"
        "swd_floor_mean,swd_floor_sd,rss_introduced,trajectories,nonfinite");
    fpl_csv_t *c0 = fpa_csv(
        &A, "diffusion",
        "# one row per sampler, policy, d and step count: means over the seeds with 95% CI\n"
        "# final_err: mean over seeds of the median final error; swd_*: as diffusion_steps\n"
        "# tolerated: 1 when the mean swd is within the floor's mean + 2 sd\n"
        "sampler,policy,d,steps,seeds,final_err,final_err_ci_lo,final_err_ci_hi,amplification,"
        "amplification_ci_lo,amplification_ci_hi,swd,swd_floor_mean,swd_floor_sd,tolerated");
    if (!c1 || !c0)
        return fpa_fail(&A, "cannot write results");
    /* summaries kept for figures and verdicts: [s][d][n][q] */
    size_t NQ = X.np;
    fpl_summary_t *SE = calloc(X.ns * ND * X.nn * NQ, sizeof *SE),
                  *SA = calloc(X.ns * ND * X.nn * NQ, sizeof *SA);
    double *SW = calloc(X.ns * ND * X.nn * NQ, sizeof *SW);
    fpl_summary_t *FL = calloc(X.ns * ND * X.nn, sizeof *FL);
    if (!SE || !SA || !SW || !FL)
        return fpa_fail(&A, "out of memory");
#define IX(s, di, ni) (((s)*ND + (di)) * X.nn + (ni))
    for (size_t s = 0; s < X.ns; s++)
        for (size_t di = 0; di < ND; di++)
            for (size_t ni = 0; ni < X.nn; ni++) {
                fpl_summary_t *fl = &FL[IX(s, di, ni)];
                for (size_t sd = 0; sd < NS; sd++)
                    tmpv[sd] = CELL(s, di, ni, sd)[C_EXACT_SWD];
                fpl_summarize(tmpv, NS, fl);
                for (size_t q = 0; q < NQ; q++) {
                    for (size_t sd = 0; sd < NS; sd++) {
                        const double *o = QO(s, di, ni, sd, q);
                        fpl_csv_row(c1,
                                    "%s,\"%s\",%zu,%zu,%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,"
                                    "%.17g,%zu,%.17g",
                                    fpl_sampler_name(X.samp[s]), X.pol[q].text, dims[di],
                                    X.steps[ni], sd, o[Q_MED], o[Q_P90], o[Q_AMP], o[Q_SWD],
                                    fl->mean, fl->sd, o[Q_RSS], X.M[di], o[Q_NONFIN]);
                    }
                    size_t ix = IX(s, di, ni) * NQ + q;
                    for (size_t sd = 0; sd < NS; sd++)
                        tmpv[sd] = QO(s, di, ni, sd, q)[Q_MED];
                    fpl_summarize(tmpv, NS, &SE[ix]);
                    for (size_t sd = 0; sd < NS; sd++) {
                        double v = QO(s, di, ni, sd, q)[Q_AMP];
                        tmpv[sd] = isnan(v) ? 0 : v;
                    }
                    fpl_summarize(tmpv, NS, &SA[ix]);
                    double w = 0;
                    for (size_t sd = 0; sd < NS; sd++)
                        w += QO(s, di, ni, sd, q)[Q_SWD];
                    SW[ix] = w / (double)NS;
                    fpl_csv_row(c0,
                                "%s,\"%s\",%zu,%zu,%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,"
                                "%.17g,%.17g,%.17g,%d",
                                fpl_sampler_name(X.samp[s]), X.pol[q].text, dims[di], X.steps[ni],
                                NS, SE[ix].mean, SE[ix].ci_lo, SE[ix].ci_hi, SA[ix].mean,
                                SA[ix].ci_lo, SA[ix].ci_hi, SW[ix], fl->mean, fl->sd,
                                SW[ix] <= fl->mean + 2 * fl->sd);
                }
            }
    /* ---- fits: log error against log N over all seeds and step counts ----- */
    fpl_csv_t *c2 = fpa_csv(
        &A, "diffusion_fit",
        "# one row per sampler, policy and d: least-squares slope of log2(final error median)\n"
        "# and of log2(amplification) against log2(steps) over every seed and step count, with\n"
        "# 95% CI (NaN when the errors are zero or there are fewer than 3 step counts)\n"
        "sampler,policy,d,points,err_slope,err_slope_lo,err_slope_hi,amp_slope,amp_slope_lo,"
        "amp_slope_hi");
    if (!c2)
        return fpa_fail(&A, "cannot write results");
    double *FS = calloc(X.ns * ND * NQ * 3, sizeof *FS);
    double *fx = malloc(X.nn * NS * sizeof *fx), *fy = malloc(X.nn * NS * sizeof *fy),
           *fa = malloc(X.nn * NS * sizeof *fa);
    if (!FS || !fx || !fy || !fa)
        return fpa_fail(&A, "out of memory");
    for (size_t s = 0; s < X.ns; s++)
        for (size_t di = 0; di < ND; di++)
            for (size_t q = 0; q < NQ; q++) {
                size_t k = 0, ok = 1;
                for (size_t ni = 0; ni < X.nn; ni++)
                    for (size_t sd = 0; sd < NS; sd++, k++) {
                        const double *o = QO(s, di, ni, sd, q);
                        fx[k] = (double)X.steps[ni];
                        fy[k] = o[Q_MED];
                        fa[k] = o[Q_AMP];
                        ok &= fy[k] > 0 && isfinite(fy[k]) && fa[k] > 0 && isfinite(fa[k]);
                    }
                double b = NAN, lo = NAN, hi = NAN, ab = NAN, alo = NAN, ahi = NAN, a0;
                if (ok && X.nn >= 3) {
                    fpl_fit_power(fx, fy, k, &b, &lo, &hi, &a0);
                    fpl_fit_power(fx, fa, k, &ab, &alo, &ahi, &a0);
                }
                double *f = FS + ((s * ND + di) * NQ + q) * 3;
                f[0] = b;
                f[1] = lo;
                f[2] = hi;
                fpl_csv_row(c2, "%s,\"%s\",%zu,%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g",
                            fpl_sampler_name(X.samp[s]), X.pol[q].text, dims[di], k, b, lo, hi, ab,
                            alo, ahi);
            }
    /* ---- data/diffusion_late.csv: per step, at the largest step count and 100 */
    fpl_csv_t *c3 = fpa_csv(
        &A, "diffusion_late",
        "# one row per sampler, policy, d, step count (100 and the largest) and step, in sampling\n"
        "# order; t: the step's starting timestep, sigma_t = sqrt(1 - alpha_bar_t): the noise\n"
        "# level of the state it starts from; introduced_err: the step's own rounding (median "
        "over\n"
        "# trajectories of ||emulated - exact step|| / sqrt(d), both on the emulated state, mean\n"
        "# over seeds); ratio = introduced_err / sigma_t; inherited_err: the exact step on the\n"
        "# emulated vs on the exact state\n"
        "sampler,policy,d,steps,t,sigma_t,introduced_err,ratio,inherited_err");
    if (!c3)
        return fpa_fail(&A, "cannot write results");
    size_t *tau = malloc((X.nmax + 1) * sizeof *tau);
    /* peak of the ratio at the largest N: [s][d][q] -> t */
    double *PK = calloc(X.ns * ND * NQ * 2, sizeof *PK);
    if (!tau || !PK)
        return fpa_fail(&A, "out of memory");
    for (size_t s = 0; s < X.ns; s++)
        for (size_t di = 0; di < ND; di++)
            for (size_t ni = 0; ni < X.nn; ni++) {
                size_t N = X.steps[ni];
                if (N != 100 && ni != X.nn - 1)
                    continue;
                fpl_schedule_steps(&X.S, N, tau);
                for (size_t q = 0; q < NQ; q++) {
                    double best = -1, best_t = NAN;
                    for (size_t step = 1; step <= N; step++) {
                        size_t t = tau[N - step + 1];
                        double sg = sqrt(1 - X.S.alpha_bar[t]), in = 0, ih = 0;
                        for (size_t sd = 0; sd < NS; sd++) {
                            in += QO(s, di, ni, sd, q)[NQF + step];
                            ih += QO(s, di, ni, sd, q)[NQF + X.nmax + 1 + step];
                        }
                        in /= (double)NS;
                        ih /= (double)NS;
                        fpl_csv_row(c3, "%s,\"%s\",%zu,%zu,%zu,%.17g,%.17g,%.17g,%.17g",
                                    fpl_sampler_name(X.samp[s]), X.pol[q].text, dims[di], N, t, sg,
                                    in, in / sg, ih);
                        if (ni == X.nn - 1 && in / sg > best) {
                            best = in / sg;
                            best_t = (double)t;
                        }
                    }
                    if (ni == X.nn - 1) {
                        PK[((s * ND + di) * NQ + q) * 2] = best_t;
                        PK[((s * ND + di) * NQ + q) * 2 + 1] = best;
                    }
                }
            }
    if (fpl_csv_close(c0) || fpl_csv_close(c1) || fpl_csv_close(c2) || fpl_csv_close(c3))
        return fpa_fail(&A, "cannot write results");

    /* ---- the exact side's own error: binary64 without compensation ------- */
    fpl_csv_t *c4 = fpa_csv(&A, "diffusion_reference",
                            "# the exact side's own error, bounded by a plain binary64 run (fp64 "
                            "policy) against it: DDIM, largest step count, 64 trajectories\n"
                            "check,value");
    if (!c4)
        return fpa_fail(&A, "cannot write results");
    double ref_err[ND], fresh_floor[ND];
    {
        fpl_policy_t ex, f64;
        fpl_policy_exact(&ex);
        fpl_policy_parse("a=fp64,acc=fp64", &f64);
        for (size_t di = 0; di < ND; di++) {
            size_t n = 64, d = dims[di];
            double *a = malloc(n * d * sizeof *a), *b = malloc(n * d * sizeof *b);
            gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
            gsl_rng_set(g, fpa_stream_seed(A.seed, 4000 + di, 0));
            for (size_t i = 0; i < n * d; i++)
                a[i] = b[i] = gsl_ran_gaussian_ziggurat(g, 1.0);
            fpl_denoiser_t D;
            fpl_mixture_denoiser(&X.mix[di], &D);
            if (fpl_sample(FPL_SAMPLER_DDIM, &X.S, &D, &ex, X.nmax, a, n, g, NULL, NULL, NULL) ||
                fpl_sample(FPL_SAMPLER_DDIM, &X.S, &D, &f64, X.nmax, b, n, g, NULL, NULL, NULL))
                return fpa_fail(&A, "reference run");
            double mx = 0;
            for (size_t i = 0; i < n; i++)
                mx = fmax(mx, rms_diff(a + i * d, b + i * d, d));
            ref_err[di] = mx;
            fpl_csv_row(c4, "max_final_err_fp64_vs_exact_d%zu,%.17g", d, mx);
            /* sampling floor of the distance itself: fresh samples against
             * fresh samples, the sweep's sample size, mean over 8 pairs */
            double *f1 = malloc(X.M[di] * d * sizeof *f1), *f2 = malloc(X.M[di] * d * sizeof *f2);
            if (!f1 || !f2)
                return fpa_fail(&A, "out of memory");
            fresh_floor[di] = 0;
            for (int r = 0; r < 8; r++) {
                fpl_mixture_sample(&X.mix[di], g, f1, X.M[di]);
                fpl_mixture_sample(&X.mix[di], g, f2, X.M[di]);
                fresh_floor[di] += fpl_sliced_w1(f1, f2, X.M[di], d, NPROJ, g) / 8;
            }
            fpl_csv_row(c4, "swd_fresh_vs_fresh_d%zu,%.17g", d, fresh_floor[di]);
            free(f1);
            free(f2);
            free(a);
            free(b);
            gsl_rng_free(g);
        }
    }
    if (fpl_csv_close(c4))
        return fpa_fail(&A, "cannot write results");

    /* ---- figures ---------------------------------------------------------- */
    static const char *const dts[] = {"1", "2", "4", "5"};
    /* headline: final error and amplification against N */
    fpl_plot_t *p = fpl_plot_new();
    fpl_plot_printf(p, "set multiplot layout 2,2 margins 0.07,0.8,0.08,0.95 spacing 0.08,0.1\n"
                       "set logscale xy\nset xlabel 'sampling steps N'\nset format y '1e%%T'\n"
                       "set termoption noenhanced\n");
    for (int panel = 0; panel < 4; panel++) {
        size_t di = (size_t)panel % 2, amp = (size_t)panel / 2;
        fpl_plot_printf(p, "$p%d << EOD\n", panel);
        double anchor = NAN;
        for (size_t s = 0; s < X.ns; s++)
            for (size_t q = 0; q < NQ; q++) {
                for (size_t ni = 0; ni < X.nn; ni++) {
                    fpl_summary_t *v =
                        amp ? &SA[IX(s, di, ni) * NQ + q] : &SE[IX(s, di, ni) * NQ + q];
                    double lo = fmax(v->ci_lo, v->mean * 1e-3);
                    fpl_plot_printf(p, "%zu %.17g %.17g %.17g\n", X.steps[ni], v->mean, lo,
                                    v->ci_hi);
                    if (ni == 0 && v->mean > 0 && !(anchor >= v->mean))
                        anchor = v->mean;
                }
                fpl_plot_printf(p, "\n\n");
            }
        fpl_plot_printf(p, "EOD\n");
        fpl_plot_printf(p, "set title '%s, d = %zu'\nset ylabel '%s'\n",
                        amp ? "amplification = final error / RSS(introduced)"
                            : "final error (median, mean of seeds)",
                        dims[di], amp ? "amplification" : "||x0~ - x0|| / sqrt(d)");
        if (panel == 1)
            fpl_plot_printf(p, "set key at screen 0.99,0.95 top right box font ',8'\n");
        else
            fpl_plot_printf(p, "unset key\n");
        fpl_plot_printf(p, "plot ");
        size_t blk = 0;
        for (size_t s = 0; s < X.ns; s++)
            for (size_t q = 0; q < NQ; q++, blk++)
                fpl_plot_printf(
                    p,
                    "$p%d index %zu u 1:3:4 w filledcurves ls %zu fs transparent solid 0.15 "
                    "notitle, "
                    "$p%d index %zu u 1:2 w lp ls %zu dt %s pt 7 ps 0.4 title '%s %s', ",
                    panel, blk, q + 1, panel, blk, q + 1, dts[s % 4], fpl_sampler_name(X.samp[s]),
                    short_name(&X.pol[q], names[q]));
        double a0 = isfinite(anchor) && anchor > 0 ? anchor : 1;
        fpl_plot_printf(p,
                        "%.17g*sqrt(x/%zu) w l lc rgb '#808080' dt 3 title 'slope 1/2 (sqrt N)', "
                        "%.17g*(x/%zu) w l lc rgb '#404040' dt 3 title 'slope 1 (N)'\n",
                        a0, X.steps[0], a0, X.steps[0]);
    }
    fpl_plot_printf(p, "unset multiplot\n");
    fpa_render(&A, p, "diffusion_steps", 14, 9);
    fpl_plot_free(p);

    /* D2: ratio against t at the largest N */
    p = fpl_plot_new();
    fpl_plot_printf(p, "set multiplot layout 1,2 margins 0.07,0.8,0.12,0.9 spacing 0.08\n"
                       "set logscale xy\nset xlabel 'timestep t (sampling runs right to left)'\n"
                       "set ylabel 'introduced error / sigma_t'\nset format y '1e%%T'\n"
                       "set termoption noenhanced\n");
    fpl_schedule_steps(&X.S, X.nmax, tau);
    for (size_t di = 0; di < ND; di++) {
        fpl_plot_printf(p, "$l%zu << EOD\n", di);
        for (size_t s = 0; s < X.ns; s++)
            for (size_t q = 0; q < NQ; q++) {
                for (size_t step = 1; step <= X.nmax; step++) {
                    size_t t = tau[X.nmax - step + 1];
                    double in = 0;
                    for (size_t sd = 0; sd < NS; sd++)
                        in += QO(s, di, X.nn - 1, sd, q)[NQF + step];
                    in /= (double)NS;
                    if (in > 0)
                        fpl_plot_printf(p, "%zu %.17g\n", t, in / sqrt(1 - X.S.alpha_bar[t]));
                }
                fpl_plot_printf(p, "\n\n");
            }
        fpl_plot_printf(p, "EOD\nset title 'd = %zu, N = %zu'\n%s", dims[di], X.nmax,
                        di ? "set key at screen 0.99,0.9 top right box font ',8'\n"
                           : "unset key\n");
        fpl_plot_printf(p, "plot ");
        size_t blk = 0;
        for (size_t s = 0; s < X.ns; s++)
            for (size_t q = 0; q < NQ; q++, blk++)
                fpl_plot_printf(p, "$l%zu index %zu u 1:2 w l ls %zu dt %s title '%s %s'%s", di,
                                blk, q + 1, dts[s % 4], fpl_sampler_name(X.samp[s]),
                                short_name(&X.pol[q], names[q]), blk + 1 < X.ns * NQ ? ", " : "\n");
    }
    fpl_plot_printf(p, "unset multiplot\n");
    fpa_render(&A, p, "diffusion_late", 14, 5.5);
    fpl_plot_free(p);

    /* D3: distance to the mixture beside the floor */
    p = fpl_plot_new();
    fpl_plot_printf(p,
                    "set multiplot layout %d,%zu margins 0.06,0.83,0.08,0.93 spacing 0.05,0.1\n"
                    "set logscale x\nset xlabel 'steps N'\nset ylabel 'sliced W1 to the mixture'\n"
                    "set termoption noenhanced\n",
                    ND, X.ns);
    for (size_t di = 0; di < ND; di++)
        for (size_t s = 0; s < X.ns; s++) {
            fpl_plot_printf(p, "$f%zu%zu << EOD\n", di, s);
            for (size_t ni = 0; ni < X.nn; ni++) {
                fpl_summary_t *fl = &FL[IX(s, di, ni)];
                fpl_plot_printf(p, "%zu %.17g %.17g", X.steps[ni], fl->mean - 2 * fl->sd,
                                fl->mean + 2 * fl->sd);
                for (size_t q = 0; q < NQ; q++)
                    fpl_plot_printf(p, " %.17g", SW[IX(s, di, ni) * NQ + q]);
                fpl_plot_printf(p, " %.17g\n", fl->mean);
            }
            fpl_plot_printf(
                p, "EOD\nset title '%s, d = %zu'\n%s", fpl_sampler_name(X.samp[s]), dims[di],
                di == 0 && s == X.ns - 1 ? "set key at screen 0.99,0.93 top right box font ',8'\n"
                                         : "unset key\n");
            fpl_plot_printf(p,
                            "plot $f%zu%zu u 1:2:3 w filledcurves lc rgb '#a0a0a0' fs transparent "
                            "solid 0.35 title 'exact: floor mean +- 2 sd', "
                            "$f%zu%zu u 1:%zu w l lc rgb '#404040' dt 2 title 'exact mean'",
                            di, s, di, s, 4 + NQ);
            for (size_t q = 0; q < NQ; q++)
                fpl_plot_printf(p, ", $f%zu%zu u 1:%zu w lp ls %zu pt 7 ps 0.5 title '%s'", di, s,
                                4 + q, q + 1, short_name(&X.pol[q], names[q]));
            fpl_plot_printf(p, "\n");
        }
    fpl_plot_printf(p, "unset multiplot\n");
    fpa_render(&A, p, "diffusion_floor", 15, 7);
    fpl_plot_free(p);

    /* samples: d = 2, the first sampler, N = 50 (or the nearest in the list):
     * final samples and a few trajectories, exact vs fp16 vs e4m3 */
    {
        size_t Nf = X.steps[0];
        for (size_t ni = 0; ni < X.nn; ni++)
            if (X.steps[ni] <= 50)
                Nf = X.steps[ni];
        const char *pn[3] = {"exact", "a=fp16,acc=fp32", "a=e4m3,acc=fp32,out=fp32"};
        const char *pt[3] = {"exact (binary64)", "fp16 (fp32 accumulation)",
                             "e4m3 denoiser, fp32 accumulation and state"};
        size_t n = 512, ntraj = 6, d = 2;
        fpl_denoiser_t D;
        fpl_mixture_denoiser(&X.mix[0], &D);
        p = fpl_plot_new();
        fpl_plot_printf(p, "set multiplot layout 1,3 margins 0.04,0.99,0.1,0.88 spacing 0.03\n"
                           "set size ratio -1\nset xrange [-3:3]\nset yrange [-3:3]\nunset key\n"
                           "set termoption noenhanced\n");
        for (int k = 0; k < 3; k++) {
            fpl_policy_t pp;
            fpl_policy_parse(pn[k], &pp);
            double *x = malloc(n * d * sizeof *x),
                   *traj = malloc((Nf + 1) * ntraj * d * sizeof *traj);
            gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
            gsl_rng_set(g, fpa_stream_seed(A.seed, 5000, 0));
            for (size_t i = 0; i < n * d; i++)
                x[i] = gsl_ran_gaussian_ziggurat(g, 1.0);
            memcpy(traj, x, ntraj * d * sizeof *x);
            fpl_sampler_t sk = X.samp[0];
            size_t *tt = malloc((Nf + 1) * sizeof *tt);
            double *y = malloc(n * d * sizeof *y), *z = malloc(n * d * sizeof *z);
            fpl_schedule_steps(&X.S, Nf, tt);
            if (!pp.exact)
                fpl_round_array(&pp.out, x, x, n * d, pp.rnd, NULL);
            for (size_t i = Nf; i >= 1; i--) {
                for (size_t j = 0; j < n * d; j++)
                    z[j] = gsl_ran_gaussian_ziggurat(g, 1.0);
                if (fpl_sampler_step(sk, &X.S, &D, &pp, tt[i], tt[i - 1], x, y, n, z, NULL))
                    return fpa_fail(&A, "sample run");
                memcpy(x, y, n * d * sizeof *x);
                memcpy(traj + (Nf - i + 1) * ntraj * d, x, ntraj * d * sizeof *x);
            }
            fpl_plot_printf(p, "$s%d << EOD\n", k);
            for (size_t i = 0; i < n; i++)
                fpl_plot_printf(p, "%.17g %.17g\n", x[i * d], x[i * d + 1]);
            fpl_plot_printf(p, "EOD\n$t%d << EOD\n", k);
            for (size_t r = 0; r < ntraj; r++) {
                for (size_t i = 0; i <= Nf; i++)
                    fpl_plot_printf(p, "%.17g %.17g\n", traj[(i * ntraj + r) * d],
                                    traj[(i * ntraj + r) * d + 1]);
                fpl_plot_printf(p, "\n\n");
            }
            fpl_plot_printf(p, "EOD\n$m%d << EOD\n", k);
            for (size_t c = 0; c < X.mix[0].K; c++)
                fpl_plot_printf(p, "%.17g %.17g\n", X.mix[0].mu[2 * c], X.mix[0].mu[2 * c + 1]);
            fpl_plot_printf(p, "EOD\nset title '%s: %s, N = %zu'\n", pt[k], fpl_sampler_name(sk),
                            Nf);
            fpl_plot_printf(p,
                            "plot $s%d u 1:2 w p ls %d pt 7 ps 0.25, "
                            "for [r=0:%zu] $t%d index r u 1:2 w l lc rgb '#404040' lw 0.8, "
                            "$m%d u 1:2 w p pt 2 ps 1.5 lc rgb '#000000'\n",
                            k, k + 1, ntraj - 1, k, k);
            free(x);
            free(traj);
            free(tt);
            free(y);
            free(z);
            gsl_rng_free(g);
        }
        fpl_plot_printf(p, "unset multiplot\n");
        fpa_render(&A, p, "diffusion_samples", 15, 5.3);
        fpl_plot_free(p);
    }

    /* ---- verdicts -------------------------------------------------------- */
    fpa_verdicts_t *V = fpa_verdicts_open(&A);
    if (!V)
        return fpa_fail(&A, "cannot write verdicts");
    {
        /* D1: growth of the final error with N (slope CI above 0), by where
         * the rounding happens: policies that keep the sampler state in the
         * denoiser's format (out = a) round the state every step; those with
         * a finer state (out finer than a) only carry the denoiser's error */
        size_t lines[2] = {0, 0}, grow[2] = {0, 0}, shrink[2] = {0, 0};
        double bmin[2] = {INFINITY, INFINITY}, bmax[2] = {-INFINITY, -INFINITY};
        double amin = INFINITY, amax = -INFINITY, aall[4 * MAXL * ND];
        size_t na = 0;
        char hi_name[1200] = "";
        for (size_t s = 0; s < X.ns; s++)
            for (size_t di = 0; di < ND; di++)
                for (size_t q = 0; q < NQ; q++) {
                    const double *f = FS + ((s * ND + di) * NQ + q) * 3;
                    if (X.pol[q].exact || !isfinite(f[0]))
                        continue;
                    int g = X.pol[q].out.mbits > X.pol[q].a.mbits; /* 1: finer state */
                    lines[g]++;
                    grow[g] += f[1] > 0;
                    shrink[g] += f[2] < 0;
                    bmin[g] = fmin(bmin[g], f[0]);
                    if (f[0] > bmax[g]) {
                        bmax[g] = f[0];
                        if (!g)
                            snprintf(hi_name, sizeof hi_name, "%s %.200s d=%zu",
                                     fpl_sampler_name(X.samp[s]), names[q], dims[di]);
                    }
                    double a = SA[IX(s, di, X.nn - 1) * NQ + q].mean;
                    amin = fmin(amin, a);
                    amax = fmax(amax, a);
                    if (na < sizeof aall / sizeof aall[0])
                        aall[na++] = a;
                }
        double amed = na ? quantile(aall, na, 0.5) : NAN;
        size_t L = lines[0] + lines[1], G = grow[0] + grow[1];
        const char *v1 = L && G == L ? "holds" : G ? "conditional" : "refuted";
        char ga[1600] = "with no policy rounding the state",
             gb[800] = "no policy with a finer state";
        if (lines[0])
            snprintf(
                ga, sizeof ga,
                "with the sampler state in the rounding format the final error grows with N "
                "in %zu of %zu sampler x policy x d lines, slope of log error vs log N %.2f to "
                "%.2f (1/2 = independent per-step roundings, a random walk; the largest, "
                "%.2f, for %s%s)",
                grow[0], lines[0], bmin[0], bmax[0], bmax[0], hi_name,
                bmax[0] > 0.75 ? ", whose per-step increments fall below half an ulp of the "
                                 "state: the rounding is biased toward standing still and "
                                 "adds up coherently"
                               : "");
        if (lines[1])
            snprintf(gb, sizeof gb,
                     "with a finer (fp32) state the denoiser's error shrinks with N in %zu of %zu "
                     "lines (slopes %.2f to %.2f): each update scales it by its step size, so N "
                     "independent errors sum to N^-1/2 and a fixed bias (e4m3-rounded means) to a "
                     "constant",
                     shrink[1], lines[1], bmin[1], bmax[1]);
        char cond1[160];
        if (G == L)
            snprintf(cond1, sizeof cond1, "final error grows with N in all %zu lines (slopes %.2f to %.2f)",
                     L, fmin(bmin[0], bmin[1]), fmax(bmax[0], bmax[1]));
        else if (lines[0] && grow[0] == lines[0] && grow[1] == 0)
            snprintf(cond1, sizeof cond1,
                     "only when the sampler state is rounded (slopes %.2f to %.2f); fp32 state: "
                     "%.2f to %.2f",
                     bmin[0], bmax[0], bmin[1], bmax[1]);
        else if (G)
            snprintf(cond1, sizeof cond1,
                     "grows with N in %zu of %zu lines (state rounded: %zu of %zu); slopes up to %.2f",
                     G, L, grow[0], lines[0], fmax(bmax[0], bmax[1]));
        else
            snprintf(cond1, sizeof cond1, "final error grows with N in none of %zu lines", L);
        fpa_verdict(
            V, "D1", v1, "diffusion_steps", cond1,
            "%s: %s; %s; amplification final/RSS(introduced) at N=%zu median %.2f (%.2f to "
            "%.2f; below 1 the sampler contracts toward the modes and forgets early errors)",
            G == 0   ? "errors do not accumulate"
            : G == L ? "errors accumulate"
            : lines[0] && grow[0] == lines[0] && grow[1] == 0
                ? "errors accumulate only when the state is rounded"
                : "errors accumulate in some lines only",
            ga, gb, X.nmax, amed, amin, amax);
        fpa_key(V, "DiffStepsMin", "%zu", X.steps[0]);
        fpa_key(V, "DiffStepsMax", "%zu", X.nmax);
        fpa_key(V, "DiffLinesState", "%zu", lines[0]);
        fpa_key(V, "DiffGrowState", "%zu", grow[0]);
        fpa_key(V, "DiffLinesFine", "%zu", lines[1]);
        fpa_key(V, "DiffShrinkFine", "%zu", shrink[1]);
        fpa_key(V, "DiffGrowFine", "%zu", grow[1]);
        fpa_key(V, "DiffSlopeStateMin", "%.2f", bmin[0]);
        fpa_key(V, "DiffSlopeStateMax", "%.2f", bmax[0]);
        fpa_key(V, "DiffSlopeFineMin", "%.2f", bmin[1]);
        fpa_key(V, "DiffSlopeFineMax", "%.2f", bmax[1]);
        fpa_key(V, "DiffAmpMedian", "%.2f", amed);
        fpa_key(V, "DiffAmpMin", "%.2f", amin);
        fpa_key(V, "DiffAmpMax", "%.2f", amax);
        /* the slope range of each named policy, over samplers and d */
        for (size_t q = 0; q < NQ; q++) {
            const char *kn = policy_key(names[q]);
            double lo = INFINITY, hi = -INFINITY;
            for (size_t s = 0; s < X.ns; s++)
                for (size_t di = 0; di < ND; di++) {
                    const double *f = FS + ((s * ND + di) * NQ + q) * 3;
                    if (isfinite(f[0])) {
                        lo = fmin(lo, f[0]);
                        hi = fmax(hi, f[0]);
                    }
                }
            if (!kn || !isfinite(lo))
                continue;
            char key[64];
            snprintf(key, sizeof key, "DiffSlope%sLo", kn);
            fpa_key(V, key, "%.2f", lo);
            snprintf(key, sizeof key, "DiffSlope%sHi", kn);
            fpa_key(V, key, "%.2f", hi);
        }
        /* D2: where the introduced error over sigma_t peaks; per-step error
         * against u |x| at the last step (state-rounding policies) */
        size_t late = 0, tot = 0;
        double tmin = INFINITY, tmax = -INFINITY, rmax = 0;
        for (size_t s = 0; s < X.ns; s++)
            for (size_t di = 0; di < ND; di++)
                for (size_t q = 0; q < NQ; q++) {
                    if (X.pol[q].exact)
                        continue;
                    double t = PK[((s * ND + di) * NQ + q) * 2];
                    if (!isfinite(t))
                        continue;
                    tot++;
                    late += t <= T_STEPS / 10;
                    tmin = fmin(tmin, t);
                    tmax = fmax(tmax, t);
                    rmax = fmax(rmax, PK[((s * ND + di) * NQ + q) * 2 + 1]);
                }
        char theory[600] = "";
        size_t tl = 0;
        for (size_t q = 0; q < NQ; q++) {
            if (X.pol[q].exact || X.pol[q].out.mbits > X.pol[q].a.mbits || tl + 80 > sizeof theory)
                continue;
            /* the data's rms coordinate, |x_0| / sqrt(d), for d = 2 */
            const fpl_mixture_t *m = &X.mix[0];
            double ms = 0;
            for (size_t i = 0; i < m->K * m->d; i++)
                ms += m->mu[i] * m->mu[i];
            double rms = sqrt(ms / (double)(m->K * m->d) + m->s * m->s), in = 0;
            for (size_t sd = 0; sd < NS; sd++)
                in += QO(0, 0, X.nn - 1, sd, q)[NQF + X.nmax] / (double)NS;
            double u = ldexp(1.0, -X.pol[q].out.mbits - 1);
            tl += (size_t)snprintf(theory + tl, sizeof theory - tl, "%s%.60s %.2f", tl ? ", " : "",
                                   names[q], in / (u * rms));
            const char *kn = policy_key(names[q]);
            if (kn) {
                char key[64];
                snprintf(key, sizeof key, "DiffLast%s", kn);
                fpa_key(V, key, "%.2f", in / (u * rms));
            }
        }
        char cond2[160];
        if (tot && late == tot)
            snprintf(cond2, sizeof cond2,
                     "ratio peaks at t = %.0f to %.0f (last tenth) in all %zu lines; sigma_t falls to "
                     "%.3g at t = 1",
                     tmin, tmax, tot, sqrt(1 - X.S.alpha_bar[1]));
        else if (late)
            snprintf(cond2, sizeof cond2, "ratio peaks in the last tenth (t <= %d) in %zu of %zu lines",
                     T_STEPS / 10, late, tot);
        else
            snprintf(cond2, sizeof cond2, "ratio peaks at t = %.0f to %.0f, never in the last tenth (%zu lines)",
                     tmin, tmax, tot);
        fpa_verdict(
            V, "D2",
            tot && late == tot ? "holds"
            : late             ? "conditional"
                               : "refuted", "diffusion_late", cond2,
            "introduced error / sigma_t peaks in the last tenth of the schedule (t <= %d) "
            "for %zu of %zu sampler x policy x d lines at N=%zu (peak t from %.0f to %.0f, "
            "peak ratio up to %.2g): sigma_t falls to %.3g at t=1 while a step's rounding "
            "stays near u|x|; last-step introduced error / (u rms|x0|), %s, d=2: %s (order 1 "
            "= one rounding of the state per step; well below 1 when the step's increment "
            "is itself below half an ulp)",
            T_STEPS / 10, late, tot, X.nmax, tmin, tmax, rmax, sqrt(1 - X.S.alpha_bar[1]),
            fpl_sampler_name(X.samp[0]), theory);
        fpa_key(V, "DiffLateT", "%d", T_STEPS / 10);
        fpa_key(V, "DiffLateLines", "%zu", late);
        fpa_key(V, "DiffLateTotal", "%zu", tot);
        fpa_key(V, "DiffPeakTMin", "%.0f", tmin);
        fpa_key(V, "DiffPeakTMax", "%.0f", tmax);
        fpa_key(V, "DiffPeakRatio", "%.2g", rmax);
        fpa_key(V, "DiffSigmaOne", "%.3g", sqrt(1 - X.S.alpha_bar[1]));
        /* D3: fp16 / bf16 within the floor */
        size_t cases = 0, within = 0, e4cases = 0, e4within = 0, fail_state = 0, fail_n = 0,
               fail_det = 0, fail_bf = 0;
        double e4lo = INFINITY, e4hi = 0;
        char fails[640] = "";
        size_t flen = 0;
        for (size_t q = 0; q < NQ; q++) {
            int half = !strcmp(X.pol[q].a.name, "fp16") || !strcmp(X.pol[q].a.name, "bf16");
            int fp8 =
                X.pol[q].a.kind == FPL_KIND_FLOAT && X.pol[q].a.ebits + X.pol[q].a.mbits + 1 == 8;
            if (!half && !fp8)
                continue;
            for (size_t s = 0; s < X.ns; s++)
                for (size_t di = 0; di < ND; di++)
                    for (size_t ni = 0; ni < X.nn; ni++) {
                        fpl_summary_t *fl = &FL[IX(s, di, ni)];
                        int ok = SW[IX(s, di, ni) * NQ + q] <= fl->mean + 2 * fl->sd;
                        if (fp8) {
                            e4cases++;
                            e4within += ok;
                            e4lo = fmin(e4lo, SE[IX(s, di, ni) * NQ + q].mean);
                            e4hi = fmax(e4hi, SE[IX(s, di, ni) * NQ + q].mean);
                            continue;
                        }
                        cases++;
                        within += ok;
                        if (ok)
                            continue;
                        fail_state += X.pol[q].out.mbits <= X.pol[q].a.mbits;
                        fail_det += X.samp[s] != FPL_SAMPLER_DDPM; /* no fresh noise */
                        fail_bf += !strcmp(X.pol[q].a.name, "bf16");
                        if (!fail_n || X.steps[ni] < fail_n)
                            fail_n = X.steps[ni];
                        if (flen + 64 < sizeof fails)
                            flen += (size_t)snprintf(fails + flen, sizeof fails - flen,
                                                     "%s%.40s %s d=%zu N=%zu", flen ? "; " : "",
                                                     names[q], fpl_sampler_name(X.samp[s]),
                                                     dims[di], X.steps[ni]);
                    }
        }
        size_t nfail = cases - within;
        char cond3[160];
        if (cases && within == cases)
            snprintf(cond3, sizeof cond3, "fp16/bf16 within the seed-to-seed floor in all %zu cases",
                     cases);
        else if (within && fail_state == nfail)
            snprintf(cond3, sizeof cond3,
                     "within the floor in %zu of %zu cases; all %zu misses round the state in 16 "
                     "bits, N >= %zu",
                     within, cases, nfail, fail_n);
        else
            snprintf(cond3, sizeof cond3, "fp16/bf16 within the seed-to-seed floor in %zu of %zu cases",
                     within, cases);
        fpa_verdict(
            V, "D3",
            cases && within == cases ? "holds"
            : within                 ? "conditional"
                                     : "refuted", "diffusion_floor", cond3,
            "fp16/bf16 runs within the seed-to-seed floor (sliced W1, mean + 2 sd of exact "
            "runs over seeds) in %zu of %zu sampler x d x N cases%s%s%s; 8-bit (e4m3) "
            "denoisers with an fp32 state within it in %zu of %zu; mixture samples against "
            "each other: %.3g (d=2), %.3g (d=64); the exact side's own error (plain binary64 "
            "vs compensated) is at most %.2g (d=2) and %.2g (d=64)",
            within, cases, nfail ? ", not in: " : "", fails,
            nfail && fail_state == nfail
                ? " -- every failure keeps the state in the 16-bit format: the denoiser "
                  "is tolerated, the state's rounding over many small steps is not"
                : "",
            e4within, e4cases, fresh_floor[0], fresh_floor[1], ref_err[0], ref_err[1]);
        /* the smallest final error of an emulated policy: the scale the
         * exact side's own error must stay far below */
        double emin = INFINITY;
        for (size_t i = 0; i < X.ns * ND * X.nn; i++)
            for (size_t q = 0; q < NQ; q++)
                if (!X.pol[q].exact && SE[i * NQ + q].mean > 0)
                    emin = fmin(emin, SE[i * NQ + q].mean);
        fpa_key(V, "DiffFloorWithin", "%zu", within);
        fpa_key(V, "DiffFloorCases", "%zu", cases);
        fpa_key(V, "DiffFloorMiss", "%zu", nfail);
        fpa_key(V, "DiffFloorMissState", "%zu", fail_state);
        fpa_key(V, "DiffFloorMissMinN", "%zu", fail_n);
        fpa_key(V, "DiffFloorMissDet", "%zu", fail_det);
        fpa_key(V, "DiffFloorMissBf", "%zu", fail_bf);
        fpa_key(V, "DiffFloorEFourWithin", "%zu", e4within);
        fpa_key(V, "DiffFloorEFourCases", "%zu", e4cases);
        fpa_key(V, "DiffDriftEFourLo", "%.2g", e4lo);
        fpa_key(V, "DiffDriftEFourHi", "%.2g", e4hi);
        fpa_key(V, "DiffFreshTwo", "%.3g", fresh_floor[0]);
        fpa_key(V, "DiffFreshSixtyFour", "%.3g", fresh_floor[1]);
        fpa_key(V, "DiffRefErr", "%.2g", fmax(ref_err[0], ref_err[1]));
        fpa_key(V, "DiffErrMin", "%.2g", emin);
    }
    if (fpa_verdicts_close(V))
        return fpa_fail(&A, "cannot write verdicts");
    free(res);
    free(SE);
    free(SA);
    free(SW);
    free(FL);
    free(FS);
    free(fx);
    free(fy);
    free(fa);
    free(tau);
    free(PK);
    fpl_schedule_free(&X.S);
    fpl_mixture_free(&X.mix[0]);
    fpl_mixture_free(&X.mix[1]);
    return fpa_finish(&A);
}
