/* dot.c -- T1: how the error of a length-n dot product grows with n, per
 * input format, accumulator, summation order and rounding mode; and which
 * model of the FP8 tensor-core accumulator reproduces DeepSeek-V3's figure */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "common.h"

enum { DATA_UNIFORM, DATA_NORMAL, NDATA };
static const char *const data_name[NDATA] = {"uniform", "normal"};
static const char *const data_label[NDATA] = {"x, y ∼ U[0,1] (positive)", "x, y ∼ N(0,1) (zero mean)"};

static const char *const inputs[] = {"fp32", "bf16", "fp16", "e4m3", "e5m2"};
#define NIN 5

/* Accumulators: the input's own format, binary32, and a 14-bit-significand
 * accumulator promoted to binary32 every 128 terms (DeepSeek-V3's report of
 * FP8 tensor cores). */
enum { ACC_SAME, ACC_FP32, ACC_FP14B, NACC };
static const char *const acc_name[NACC] = {"same", "fp32", "fp14b128"};

/* ---- the FP8 tensor-core accumulator (issue 17) --------------------------
 * DeepSeek-V3 (arXiv 2412.19437, §3.3) reports that FP8 GEMM on H800 keeps
 * "around 14 bits" of accumulation precision and that for K = 4096 this
 * gives a maximum relative error of nearly 2%, which they cure by promoting
 * the partial sums to fp32 every 128 terms (4 WGMMAs).  Their §3.5.2 says how:
 * the tensor core aligns the 32 products of a k-slice to the largest
 * exponent, keeps the highest 14 bits of each and truncates the rest, and
 * also keeps the partial sums to 14 bits.  SageAttention2 (arXiv 2411.10958)
 * measured the fp32 accumulator of mma.f32.f8.f8.f32 on Ada and Hopper as
 * 1 sign + 8 exponent + 13 mantissa bits, the low 10 mantissa bits of an fp32
 * input zeroed.  Three models of that accumulator, e4m3 inputs, with
 * promotion to fp32 every 32/64/128/256 terms or never:
 *   rne14    each addition rounded to nearest in fp:e=8,m=13 (fplab's model
 *            before this study);
 *   rtz14    each addition truncated (round toward zero) in fp:e=8,m=13;
 *   align13  acc=align:13:32: slices of 32 products aligned with the partial
 *            sum to the largest exponent, truncated to 13 fraction bits,
 *            summed exactly and truncated to 14 bits (policy.h);
 *   align14, align15: the same with 1 or 2 more fraction bits, to see how
 *            far the aligned window must be widened to give the reported 2%.
 * The metric for U[0,1) data is the relative error |s^ - s| / |s|; for
 * N(0,1) data, where |s| can be arbitrarily small, it is the error relative
 * to the RMS of the exact results (what a normwise GEMM error measures). */
enum { AM_RNE14, AM_RTZ14, AM_ALIGN13, AM_ALIGN14, AM_ALIGN15, NAM };
static const char *const am_name[NAM] = {"rne14", "rtz14", "align13", "align14", "align15"};
static const char *const am_spec[NAM] = {"acc=fp:e=8,m=13,rnd=rne", "acc=fp:e=8,m=13,rnd=rtz",
                                         "acc=align:13:32", "acc=align:14:32", "acc=align:15:32"};
static const char *const am_label[NAM] = {"14-bit RN per addition", "14-bit RTZ per addition",
                                          "aligned, 13 fraction bits (Hopper)",
                                          "aligned, 14 fraction bits", "aligned, 15 fraction bits"};
static const int am_prom[] = {32, 64, 128, 256, 0}; /* 0: no promotion */
#define NPROM 5
static const size_t am_K[] = {256, 512, 1024, 2048, 4096, 8192, 16384};
#define NAK 7
#define AM_IN 3 /* inputs[3] = e4m3 */
#define DEEPSEEK_K 4096
#define DEEPSEEK_ERR 0.02

static void am_policies(fpl_policy_t pol[NAM][NPROM])
{
    for (int m = 0; m < NAM; m++)
        for (int k = 0; k < NPROM; k++) {
            char spec[256];
            if (am_prom[k])
                snprintf(spec, sizeof spec, "a=e4m3,%s,order=blocked:%d,promote=fp32", am_spec[m],
                         am_prom[k]);
            else
                snprintf(spec, sizeof spec, "a=e4m3,%s", am_spec[m]);
            if (fpl_policy_parse(spec, &pol[m][k]) != 0) {
                fprintf(stderr, "dot: internal error: %s: %s\n", spec, fpl_last_error());
                exit(1);
            }
        }
}

typedef struct {
    int data, in, acc;
    fpl_order_t order;
    fpl_rmode_t rnd;
    fpl_policy_t pol;
    double u;     /* unit roundoff of the accumulator */
    char label[96];
} cfg_t;

static size_t build_configs(cfg_t *c)
{
    size_t k = 0;
    for (int d = 0; d < NDATA; d++)
        for (int i = 0; i < NIN; i++)
            for (int a = 0; a < NACC; a++) {
                if (a == ACC_SAME && !strcmp(inputs[i], "fp32"))
                    continue; /* same as ACC_FP32 */
                for (int o = 0; o < 2; o++) {
                    if (a == ACC_FP14B && o == 1)
                        continue; /* blocked has its own order */
                    for (int r = 0; r < 2; r++) {
                        cfg_t *x = &c[k];
                        x->data = d;
                        x->in = i;
                        x->acc = a;
                        x->rnd = r ? FPL_SR : FPL_RNE;
                        x->order = a == ACC_FP14B ? FPL_ORDER_BLOCKED
                                                  : (o ? FPL_ORDER_PAIRWISE : FPL_ORDER_SEQ);
                        char spec[256];
                        snprintf(spec, sizeof spec, "a=%s,acc=%s,rnd=%s,order=%s", inputs[i],
                                 a == ACC_SAME   ? inputs[i]
                                 : a == ACC_FP32 ? "fp32"
                                                 : "fp:e=8,m=13",
                                 r ? "sr" : "rne",
                                 a == ACC_FP14B ? "blocked:128,promote=fp32"
                                                : (o ? "pairwise" : "seq"));
                        if (fpl_policy_parse(spec, &x->pol) != 0) {
                            fprintf(stderr, "dot: internal error: %s: %s\n", spec,
                                    fpl_last_error());
                            exit(1);
                        }
                        x->u = x->pol.acc.unit_roundoff;
                        snprintf(x->label, sizeof x->label, "%s in, %s acc, %s, %s", inputs[i],
                                 acc_name[a] , a == ACC_FP14B ? "blocked" : (o ? "pairwise" : "seq"),
                                 r ? "SR" : "RN");
                        k++;
                    }
                }
            }
    return k;
}

/* The reference: Dot2 (Ogita, Rump & Oishi 2005) kept as an unevaluated
 * sum hi + lo, accurate to about n u^2 sum|x_i y_i| (u = 2^-53). */
static void ref_dot(const double *x, const double *y, size_t n, double *hi, double *lo)
{
    double s = 0, c = 0;
    for (size_t i = 0; i < n; i++) {
        double p = x[i] * y[i];
        double pe = fma(x[i], y[i], -p);
        double t = s + p, bp = t - s;
        c += (s - (t - bp)) + (p - bp) + pe;
        s = t;
    }
    double t = s + c, bp = t - s; /* renormalise: hi + lo == s + c exactly */
    *hi = t;
    *lo = (s - (t - bp)) + (c - bp);
}

/* MPFR's exact dot product of doubles, to check the reference hi + lo. */
static double exact_dot_error(const double *x, const double *y, size_t n, double hi, double lo)
{
    mpfr_t s, p;
    mpfr_init2(s, 2400); /* products of doubles span < 2200 bits; sums add log2(n) */
    mpfr_init2(p, 106);
    mpfr_set_zero(s, 1);
    for (size_t i = 0; i < n; i++) {
        mpfr_set_d(p, x[i], MPFR_RNDN);
        mpfr_mul_d(p, p, y[i], MPFR_RNDN); /* exact at 106 bits */
        mpfr_add(s, s, p, MPFR_RNDN);      /* exact at 2400 bits */
    }
    mpfr_sub_d(s, s, hi, MPFR_RNDN);
    mpfr_sub_d(s, s, lo, MPFR_RNDN);
    double e = fabs(mpfr_get_d(s, MPFR_RNDN));
    mpfr_clears(s, p, (mpfr_ptr)0);
    return e;
}

typedef struct {
    double b, lo, hi;
} fit_t;

/* Growth regimes of a median-error curve (issue 17).  Short sums of 8-bit
 * products are exact in fp32, so the median error is exactly 0 up to some n;
 * a power law is fitted only to the run of non-zero medians that follows
 * (n >= 64, as the overall fit).  That run is split in two (at least four
 * points each) where a two-segment fit of log2(error) against log2(n) leaves less than a quarter
 * of the one-segment residual and the slopes differ by more than 0.4.  A
 * segment is "correlated" when the 95% CI of its exponent b lies at or
 * above 1 (errors of one sign add up: the worst-case rate or faster),
 * else "random-walk" when b >= 0.25 (independent rounding errors: sqrt(n)
 * under Higham & Mary's model, faster while the share of inexact additions
 * still grows), else "flat" (zero-mean data, stagnation). */
typedef struct {
    double n_nonzero; /* first n of the final run of non-zero medians (NaN: none) */
    int nseg;         /* fitted segments: 0, 1 or 2 */
    size_t j0[2], j1[2];
    double n_start[2], b[2], lo[2], hi[2], a[2];
} regimes_t;

static const char *regime_name(double b, double lo)
{
    return lo >= 1 ? "correlated" : b >= 0.25 ? "random-walk" : "flat";
}

/* least-squares slope of ly on lx and the residual sum of squares */
static double lsq(const double *lx, const double *ly, size_t k, double *slope)
{
    double mx = 0, my = 0, sxx = 0, sxy = 0, ssr = 0;
    for (size_t i = 0; i < k; i++) {
        mx += lx[i];
        my += ly[i];
    }
    mx /= (double)k;
    my /= (double)k;
    for (size_t i = 0; i < k; i++) {
        sxx += (lx[i] - mx) * (lx[i] - mx);
        sxy += (lx[i] - mx) * (ly[i] - my);
    }
    *slope = sxy / sxx;
    for (size_t i = 0; i < k; i++) {
        double r = ly[i] - my - *slope * (lx[i] - mx);
        ssr += r * r;
    }
    return ssr;
}

static regimes_t regimes_of(const double *ns, const double *med, size_t K)
{
    regimes_t R;
    memset(&R, 0, sizeof R);
    R.n_nonzero = NAN;
    size_t j0 = K;
    while (j0 > 0 && med[j0 - 1] > 0 && isfinite(med[j0 - 1]))
        j0--;
    if (j0 == K)
        return R;
    R.n_nonzero = ns[j0];
    size_t js = j0;
    while (js < K && ns[js] < 64)
        js++;
    size_t m = K - js;
    if (m < 3)
        return R;
    double lx[64], ly[64], b1, x1, x2, bb1 = 0, bb2 = 0, bssr = INFINITY;
    for (size_t i = 0; i < m; i++) {
        lx[i] = log2(ns[js + i]);
        ly[i] = log2(med[js + i]);
    }
    double ssr1 = lsq(lx, ly, m, &b1);
    size_t best = 0;
    for (size_t k = 4; k + 4 <= m; k++) { /* at least 4 points a segment */
        double r = lsq(lx, ly, k, &x1) + lsq(lx + k, ly + k, m - k, &x2);
        if (r < bssr) {
            bssr = r;
            best = k;
            bb1 = x1;
            bb2 = x2;
        }
    }
    if (best && bssr < 0.25 * ssr1 && fabs(bb2 - bb1) > 0.4) {
        R.nseg = 2;
        R.j0[0] = js, R.j1[0] = js + best;
        R.j0[1] = js + best, R.j1[1] = K;
    } else {
        R.nseg = 1;
        R.j0[0] = js, R.j1[0] = K;
    }
    for (int g = 0; g < R.nseg; g++) {
        fpl_fit_power(ns + R.j0[g], med + R.j0[g], R.j1[g] - R.j0[g], &R.b[g], &R.lo[g], &R.hi[g],
                      &R.a[g]);
        R.n_start[g] = g == 0 ? R.n_nonzero : ns[R.j0[g]];
    }
    return R;
}

/* one power law over the final run of non-zero medians (n >= 64) */
static fit_t fit_of(const double *ns, const double *med, size_t k)
{
    size_t j0 = k;
    while (j0 > 0 && med[j0 - 1] > 0 && isfinite(med[j0 - 1]))
        j0--;
    while (j0 < k && ns[j0] < 64)
        j0++;
    fit_t f = {NAN, NAN, NAN};
    if (k - j0 >= 3)
        fpl_fit_power(ns + j0, med + j0, k - j0, &f.b, &f.lo, &f.hi, NULL);
    return f;
}

static void print_series(fpl_plot_t *p, const char *name, const double *ns, const fpl_summary_t *s,
                         size_t k)
{
    fpl_plot_printf(p, "$%s << EOD\n", name);
    for (size_t j = 0; j < k; j++)
        if (s[j].median > 0 && isfinite(s[j].q90))
            /* a band reaching exact results (error 0) is drawn to the axis floor */
            fpl_plot_printf(p, "%.17g %.17g %.17g %.17g\n", ns[j], s[j].median,
                            s[j].q10 > 1e-10 ? s[j].q10 : 1e-10, s[j].q90);
    fpl_plot_printf(p, "EOD\n");
}

/* ---- the accumulator study: summaries, CSV, figure ---------------------- */

typedef struct {
    double max_rel, mean_rel;   /* |s^ - s| / |s| */
    double max_rms, mean_rms;   /* |s^ - s| / RMS(s) over the repetitions */
    double max_signed;          /* max of (s^ - s) / |s| */
    double max_err;             /* max of |s^ - s| / sum|x_i y_i| */
} am_stat_t;

static void am_summarise(const double *e, const double *s, const double *ab, int reps,
                         am_stat_t *o)
{
    double ss = 0, sr = 0, sm = 0;
    for (int r = 0; r < reps; r++)
        ss += s[r] * s[r];
    double rms = sqrt(ss / reps);
    o->max_rel = o->max_rms = o->max_err = 0;
    o->max_signed = -INFINITY;
    for (int r = 0; r < reps; r++) {
        double a = fabs(e[r]), rel = a / fabs(s[r]);
        o->max_rel = fmax(o->max_rel, rel);
        o->max_rms = fmax(o->max_rms, a / rms);
        o->max_err = fmax(o->max_err, a / ab[r]);
        o->max_signed = fmax(o->max_signed, isfinite(e[r]) ? e[r] / fabs(s[r]) : INFINITY);
        sr += rel;
        sm += a / rms;
    }
    o->mean_rel = sr / reps;
    o->mean_rms = sm / reps;
}

/* The metric drawn and quoted: relative error for positive data, error
 * relative to RMS(s) for zero-mean data. */
static double am_max(const am_stat_t *o, int d) { return d == DATA_UNIFORM ? o->max_rel : o->max_rms; }
static double am_mean(const am_stat_t *o, int d) { return d == DATA_UNIFORM ? o->mean_rel : o->mean_rms; }

#define AM_AT(d, m, k, j) ((((size_t)(d) * NAM + (size_t)(m)) * NPROM + (size_t)(k)) * NAK + (size_t)(j))

static int am_report(fpa_t *A, fpl_policy_t apol[NAM][NPROM], const double *am_err,
                     const double *am_s, const double *am_abs, int reps, am_stat_t *st)
{
    fpl_csv_t *csv = fpa_csv(A, "dot_accumulator",
                             "data,model,acc,promote_every,K,reps,u_acc,max_rel,mean_rel,"
                             "max_rmsrel,mean_rmsrel,max_signed_rel,max_err,gamma_K");
    if (!csv)
        return 1;
    for (int d = 0; d < NDATA; d++)
        for (int m = 0; m < NAM; m++)
            for (int k = 0; k < NPROM; k++)
                for (size_t j = 0; j < NAK; j++) {
                    size_t at = AM_AT(d, m, k, j);
                    am_stat_t *o = &st[at];
                    am_summarise(am_err + at * (size_t)reps,
                                 am_s + ((size_t)d * NAK + j) * (size_t)reps,
                                 am_abs + ((size_t)d * NAK + j) * (size_t)reps, reps, o);
                    const fpl_policy_t *p = &apol[m][k];
                    char acc[64];
                    if (p->align_frac)
                        snprintf(acc, sizeof acc, "align:%d:%zu", p->align_frac, p->align_group);
                    else
                        snprintf(acc, sizeof acc, "e%dm%d-%s", p->acc.ebits, p->acc.mbits,
                                 fpl_rmode_name(p->rnd)); /* no commas in a CSV field */
                    double u = p->acc.unit_roundoff;
                    fpl_csv_row(csv, "%s,%s,%s,%d,%zu,%d,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g",
                                data_name[d], am_name[m], acc, am_prom[k], am_K[j], reps, u,
                                o->max_rel, o->mean_rel, o->max_rms, o->mean_rms, o->max_signed,
                                o->max_err, fpl_gamma(am_K[j], u));
                }
    if (fpl_csv_close(csv))
        return 1;

    /* figure: 2 x 2 panels, rows = data, columns = no promotion / every 128 */
    fpl_plot_t *p = fpl_plot_new();
    fpl_plot_printf(p, "set multiplot layout 2,2 margins 0.08,0.98,0.17,0.95 spacing 0.07,0.09\n"
                       "set logscale xy\nset format y '10^{%%T}'\n"
                       "set xrange [200:20000]\nset yrange [1e-6:2]\n"
                       "set xtics (256, 1024, 4096, 16384)\nset grid xtics ytics lc rgb '#dddddd'\n");
    const int cols[2] = {4, 2}; /* am_prom index: none, 128 */
    for (int d = 0; d < NDATA; d++)
        for (int c = 0; c < 2; c++) {
            int k = cols[c];
            for (int m = 0; m < NAM; m++) {
                fpl_plot_printf(p, "$a%d%d%d << EOD\n", d, c, m);
                for (size_t j = 0; j < NAK; j++) {
                    const am_stat_t *o = &st[AM_AT(d, m, k, j)];
                    if (am_mean(o, d) > 0 && isfinite(am_max(o, d)))
                        fpl_plot_printf(p, "%zu %.17g %.17g\n", am_K[j], am_max(o, d), am_mean(o, d));
                }
                fpl_plot_printf(p, "EOD\n");
            }
            fpl_plot_printf(p, "set title \"%s, e4m3 inputs: %s\"\n",
                            d == DATA_UNIFORM ? "U[0,1)" : "N(0,1)",
                            k == 4 ? "whole K in the tensor-core accumulator"
                                   : "promoted to fp32 every 128 terms (DeepSeek-V3)");
            fpl_plot_printf(p, "set xlabel %s\nset ylabel '%s'\n",
                            d == 1 ? "'K (dot-product length)'" : "''",
                            d == DATA_UNIFORM ? "relative error |ŝ - s| / |s|"
                                              : "error |ŝ - s| / RMS(s)");
            if (d == 0 && c == 0)
                fpl_plot_printf(p, "set key at screen 0.5,0.005 center bottom horizontal maxrows 3 "
                                   "box width 1 font ',9'\n");
            else
                fpl_plot_printf(p, "unset key\n");
            if (d == DATA_UNIFORM && k == 4)
                fpl_plot_printf(p, "set label 1 'RTZ per addition and aligned-13 coincide on "
                                   "positive data' at graph 0.03, graph 0.95 font ',9'\n");
            else
                fpl_plot_printf(p, "unset label 1\n");
            fpl_plot_printf(p, "plot ");
            for (int m = 0; m < NAM; m++)
                fpl_plot_printf(p, "$a%d%d%d u 1:2 w lp ls %d title '%s: max', "
                                   "$a%d%d%d u 1:3 w l ls %d dt 2 title 'mean', ",
                                d, c, m, m + 1, am_label[m], d, c, m, m + 1);
            fpl_plot_printf(p, "1e-3 w l lc rgb '#777777' dt 3 lw 1.5 title '0.1%%'");
            if (k == 4)
                fpl_plot_printf(p, ", '+' u (%d):(%g) every ::0::0 w p pt 3 ps 3.5 lw 2 lc rgb "
                                   "'#000000' title 'DeepSeek-V3: ≈2%% max at K = 4096'",
                                DEEPSEEK_K, DEEPSEEK_ERR);
            fpl_plot_printf(p, "\n");
        }
    fpl_plot_printf(p, "unset multiplot\n");
    fpa_render(A, p, "dot_accumulator", 12, 9);
    fpl_plot_free(p);
    return 0;
}

/* ---- the sweep: one cell per (data, input format, repetition) ------------
 * A cell draws its vectors from its own stream and measures every
 * configuration of that data and input format at every n (slot q of the
 * group's configurations), the reference's own error (repetition 0), and for
 * e4m3 inputs the tensor-core accumulator models. */
typedef struct {
    uint64_t seed;
    int reps;
    size_t nmax, K, C;
    const double *ns;
    const cfg_t *cfg;
    fpl_policy_t (*apol)[NPROM];
    fpl_format_t fin[NIN];
    size_t o_err, o_rel, o_ams, o_ama, o_ame, width; /* offsets in a cell */
} sweep_t;

static void cell_fn(void *ctx, size_t cell, double *out)
{
    const sweep_t *sw = ctx;
    const size_t K = sw->K, nmax = sw->nmax;
    const double *ns = sw->ns;
    int d = (int)(cell / ((size_t)NIN * (size_t)sw->reps));
    int i = (int)(cell / (size_t)sw->reps % NIN), r = (int)(cell % (size_t)sw->reps);
    for (size_t k = 0; k < sw->width; k++)
        out[k] = 0;
    double ref_worst = 0;
    double *x = malloc(nmax * sizeof *x), *y = malloc(nmax * sizeof *y);
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(g, fpa_stream_seed(sw->seed, (uint64_t)(d * NIN + i), (uint64_t)r));
    for (size_t t = 0; t < nmax; t++) {
        x[t] = d == DATA_UNIFORM ? gsl_rng_uniform(g) : gsl_ran_gaussian(g, 1.0);
        y[t] = d == DATA_UNIFORM ? gsl_rng_uniform(g) : gsl_ran_gaussian(g, 1.0);
    }
    fpl_round_array(&sw->fin[i], x, x, nmax, FPL_RNE, NULL);
    fpl_round_array(&sw->fin[i], y, y, nmax, FPL_RNE, NULL);
    for (size_t j = 0; j < K; j++) {
        size_t n = (size_t)ns[j];
        double s, slo;
        ref_dot(x, y, n, &s, &slo);
        double absum = 0;
        for (size_t t = 0; t < n; t++)
            absum += fabs(x[t] * y[t]);
        /* the reference's own error, against MPFR, on a sample */
        if (r == 0 && (j == 0 || j == K - 1 || j == K / 2)) {
            double e = exact_dot_error(x, y, n, s, slo) / absum;
            if (e > ref_worst)
                ref_worst = e;
        }
        size_t q = 0; /* slot of configuration c in this group */
        for (size_t c = 0; c < sw->C; c++) {
            if (sw->cfg[c].data != d || sw->cfg[c].in != i)
                continue;
            fpl_sr_t sr;
            fpl_sr_seed(&sr, fpa_stream_seed(sw->seed ^ 0x5151, c * 64 + j, (uint64_t)r));
            double v = fpl_dot(&sw->cfg[c].pol, x, y, n, &sr);
            double ae = fabs((v - s) - slo); /* v - s exact (Sterbenz) when close */
            out[sw->o_err + q * K + j] = isfinite(v) ? ae / absum : INFINITY;
            out[sw->o_rel + q * K + j] = isfinite(v) ? (s != 0 ? ae / fabs(s) : ae) : INFINITY;
            q++;
        }
    }
    if (i == AM_IN) /* e4m3: the tensor-core accumulator models */
        for (size_t j = 0; j < NAK; j++) {
            size_t n = am_K[j];
            double s, slo, absum = 0;
            ref_dot(x, y, n, &s, &slo);
            for (size_t t = 0; t < n; t++)
                absum += fabs(x[t] * y[t]);
            out[sw->o_ams + j] = s;
            out[sw->o_ama + j] = absum;
            for (int m = 0; m < NAM; m++)
                for (int k = 0; k < NPROM; k++) {
                    double v = fpl_dot(&sw->apol[m][k], x, y, n, NULL);
                    out[sw->o_ame + ((size_t)m * NPROM + (size_t)k) * NAK + j] =
                        isfinite(v) ? (v - s) - slo : INFINITY;
                }
        }
    out[0] = ref_worst;
    gsl_rng_free(g);
    free(x);
    free(y);
}

int main(int argc, char **argv)
{
    fpa_t A;
    int st = fpa_init(&A, "dot",
                      "T1: forward error of length-n dot products against n, for each input\n"
                      "format, accumulator (same format, binary32, 14-bit blocked), order and\n"
                      "rounding mode, on positive and on zero-mean data; and models of the FP8\n"
                      "tensor-core accumulator (RN, RTZ, aligned-truncating) against DeepSeek-V3's\n"
                      "reported 2%.  Writes data/dot.csv, data/dot_fit.csv, data/dot_reference.csv,\n"
                      "data/dot_accumulator.csv, plots/dot.png|pdf, plots/dot_exponents.png|pdf,\n"
                      "plots/dot_accumulator.png|pdf, and prints verdict lines.",
                      argc, argv);
    if (st)
        return st - 1;
    const int log_max = A.quick ? 14 : 20, reps = A.quick ? 30 : 100;
    const size_t nmax = (size_t)1 << log_max;
    size_t K = 0;
    double ns[32];
    for (int e = 2; e <= log_max; e++)
        ns[K++] = (double)((size_t)1 << e);

    static cfg_t cfg[256];
    size_t C = build_configs(cfg);
    /* err[c][j][r]: normalised error |s^ - s| / sum|x_i y_i|; rel: |s^ - s| / |s| */
    double *err = malloc(C * K * (size_t)reps * sizeof *err);
    double *rel = malloc(C * K * (size_t)reps * sizeof *rel);
    double ref_worst = 0;
    /* the accumulator study: signed error, exact sum and sum|x_i y_i| per
     * (data, model, promotion, K, repetition) */
    static fpl_policy_t apol[NAM][NPROM];
    am_policies(apol);
    size_t am_n = (size_t)NDATA * NAM * NPROM * NAK * (size_t)reps;
    double *am_err = malloc(am_n * sizeof *am_err);
    double *am_s = malloc((size_t)NDATA * NAK * (size_t)reps * sizeof *am_s);
    double *am_abs = malloc((size_t)NDATA * NAK * (size_t)reps * sizeof *am_abs);
    if (!err || !rel || !am_err || !am_s || !am_abs) {
        fprintf(stderr, "dot: out of memory\n");
        return 1;
    }
    /* the widest group of configurations sets the cell's width */
    size_t per_group = 0;
    for (int d = 0; d < NDATA; d++)
        for (int i = 0; i < NIN; i++) {
            size_t q = 0;
            for (size_t c = 0; c < C; c++)
                q += cfg[c].data == d && cfg[c].in == i;
            if (q > per_group)
                per_group = q;
        }
    sweep_t X = {.seed = A.seed,
                 .reps = reps,
                 .nmax = nmax,
                 .K = K,
                 .C = C,
                 .ns = ns,
                 .cfg = cfg,
                 .apol = apol};
    for (int i = 0; i < NIN; i++)
        fpl_format_parse(inputs[i], &X.fin[i]);
    X.o_err = 1; /* out[0]: the reference's own error */
    X.o_rel = X.o_err + per_group * K;
    X.o_ams = X.o_rel + per_group * K;
    X.o_ama = X.o_ams + NAK;
    X.o_ame = X.o_ama + NAK;
    X.width = X.o_ame + (size_t)NAM * NPROM * NAK;
    size_t cells = (size_t)NDATA * NIN * (size_t)reps;
    double *res = malloc(cells * X.width * sizeof *res);
    st = res ? fpa_sweep(&A, "vector pairs", cells, X.width, cell_fn, &X, res) : -1;
    if (!res)
        fprintf(stderr, "dot: out of memory\n");
    if (st) { /* a shard was written (1), or the merge or an allocation failed (-1) */
        free(res);
        free(err);
        free(rel);
        free(am_err);
        free(am_s);
        free(am_abs);
        return st < 0 ? 1 : 0;
    }
    for (size_t cell = 0; cell < cells; cell++) {
        const double *o = res + cell * X.width;
        int d = (int)(cell / ((size_t)NIN * (size_t)reps));
        int i = (int)(cell / (size_t)reps % NIN), r = (int)(cell % (size_t)reps);
        if (o[0] > ref_worst)
            ref_worst = o[0];
        size_t q = 0;
        for (size_t c = 0; c < C; c++) {
            if (cfg[c].data != d || cfg[c].in != i)
                continue;
            for (size_t j = 0; j < K; j++) {
                size_t at = (c * K + j) * (size_t)reps + (size_t)r;
                err[at] = o[X.o_err + q * K + j];
                rel[at] = o[X.o_rel + q * K + j];
            }
            q++;
        }
        if (i == AM_IN)
            for (size_t j = 0; j < NAK; j++) {
                am_s[((size_t)d * NAK + j) * (size_t)reps + (size_t)r] = o[X.o_ams + j];
                am_abs[((size_t)d * NAK + j) * (size_t)reps + (size_t)r] = o[X.o_ama + j];
                for (int m = 0; m < NAM; m++)
                    for (int k = 0; k < NPROM; k++)
                        am_err[AM_AT(d, m, k, j) * (size_t)reps + (size_t)r] =
                            o[X.o_ame + ((size_t)m * NPROM + (size_t)k) * NAK + j];
            }
    }
    free(res);
    /* The reference must be far more accurate than anything it measures:
     * binary32's unit roundoff is 2^-24; demand 2^-60. */
    if (ref_worst > 0x1p-60) {
        fprintf(stderr, "dot: the reference's own error %.3g exceeds 2^-60; refusing to report\n",
                ref_worst);
        return 1;
    }

    /* ---- summaries, fits, CSV ------------------------------------------ */
    fpl_csv_t *csv = fpa_csv(&A, "dot",
                                  "data,input,acc,order,rnd,n,u_acc,reps,overflows,median_err,"
                                  "q10_err,q90_err,max_err,mean_err,ci_lo_err,ci_hi_err,median_rel,gamma_n,"
                                  "hm_bound");
    fpl_csv_t *fcsv = fpa_csv(&A, "dot_fit",
                                   "data,input,acc,order,rnd,exponent,exponent_lo,exponent_hi,"
                                   "rel_exponent,rel_exponent_lo,rel_exponent_hi,n_nonzero,"
                                   "regime1,n1,b1,b1_lo,b1_hi,regime2,n2,b2,b2_lo,b2_hi");
    if (!csv || !fcsv)
        return fpa_fail(&A, "cannot write results");
    fpl_summary_t *S = malloc(C * K * sizeof *S);
    fpl_summary_t *R = malloc(C * K * sizeof *R);
    fit_t *F = malloc(C * sizeof *F), *FR = malloc(C * sizeof *FR);
    regimes_t *G = malloc(C * sizeof *G);
    size_t *ovf = calloc(C * K, sizeof *ovf);
    for (size_t c = 0; c < C; c++) {
        double med[32], rmed[32];
        for (size_t j = 0; j < K; j++) {
            double *e = err + (c * K + j) * (size_t)reps, *q = rel + (c * K + j) * (size_t)reps;
            for (int r = 0; r < reps; r++)
                ovf[c * K + j] += !isfinite(e[r]);
            fpl_summarize(e, (size_t)reps, &S[c * K + j]);
            fpl_summarize(q, (size_t)reps, &R[c * K + j]);
            med[j] = S[c * K + j].median;
            rmed[j] = R[c * K + j].median;
            size_t n = (size_t)ns[j];
            double lam = fpl_hm_lambda(n, cfg[c].u, 0.01);
            const char *ord = cfg[c].order == FPL_ORDER_SEQ ? "seq"
                              : cfg[c].order == FPL_ORDER_PAIRWISE ? "pairwise" : "blocked";
            fpl_csv_row(csv, "%s,%s,%s,%s,%s,%zu,%.17g,%d,%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,"
                        "%.17g,%.17g,%.17g",
                        data_name[cfg[c].data], inputs[cfg[c].in], acc_name[cfg[c].acc], ord,
                        fpl_rmode_name(cfg[c].rnd), n, cfg[c].u, reps, ovf[c * K + j],
                        S[c * K + j].median, S[c * K + j].q10, S[c * K + j].q90, S[c * K + j].max,
                        S[c * K + j].mean,
                        S[c * K + j].ci_lo, S[c * K + j].ci_hi, R[c * K + j].median,
                        fpl_gamma(n, cfg[c].u), fpl_hm_bound(n, cfg[c].u, lam));
        }
        F[c] = fit_of(ns, med, K);
        FR[c] = fit_of(ns, rmed, K);
        G[c] = regimes_of(ns, med, K);
        char reg[2][160];
        for (int g = 0; g < 2; g++)
            if (g < G[c].nseg)
                snprintf(reg[g], sizeof reg[g], "%s,%.17g,%.17g,%.17g,%.17g", regime_name(G[c].b[g], G[c].lo[g]),
                         G[c].n_start[g], G[c].b[g], G[c].lo[g], G[c].hi[g]);
            else
                snprintf(reg[g], sizeof reg[g], "none,nan,nan,nan,nan");
        const char *ord = cfg[c].order == FPL_ORDER_SEQ ? "seq"
                          : cfg[c].order == FPL_ORDER_PAIRWISE ? "pairwise" : "blocked";
        fpl_csv_row(fcsv, "%s,%s,%s,%s,%s,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%s,%s",
                    data_name[cfg[c].data], inputs[cfg[c].in], acc_name[cfg[c].acc], ord,
                    fpl_rmode_name(cfg[c].rnd), F[c].b, F[c].lo, F[c].hi, FR[c].b, FR[c].lo,
                    FR[c].hi, G[c].n_nonzero, reg[0], reg[1]);
    }
    fpl_csv_t *rcsv = fpa_csv(&A, "dot_reference", "check,value");
    if (!rcsv)
        return fpa_fail(&A, "cannot write results");
    fpl_csv_row(rcsv, "max_reference_error_normalised,%.17g", ref_worst);
    fpl_csv_row(rcsv, "limit,%.17g", 0x1p-60);
    if (fpl_csv_close(csv) || fpl_csv_close(fcsv) || fpl_csv_close(rcsv))
        return fpa_fail(&A, "cannot write results");
    am_stat_t *ast = malloc(am_n / (size_t)reps * sizeof *ast);
    if (!ast || am_report(&A, apol, am_err, am_s, am_abs, reps, ast))
        return fpa_fail(&A, "cannot write results");

    /* ---- figure 1: error against n, curated series ---------------------- */
    struct {
        const char *in, *acc;
        fpl_order_t order;
        fpl_rmode_t rnd;
        const char *title;
    } show[] = {
        {"bf16", "fp32", FPL_ORDER_SEQ, FPL_RNE, "bf16 inputs, fp32 accumulator"},
        {"bf16", "same", FPL_ORDER_SEQ, FPL_RNE, "bf16 accumulator, RN"},
        {"bf16", "same", FPL_ORDER_SEQ, FPL_SR, "bf16 accumulator, SR"},
        {"bf16", "same", FPL_ORDER_PAIRWISE, FPL_RNE, "bf16 accumulator, pairwise RN"},
        {"e4m3", "fp14b128", FPL_ORDER_BLOCKED, FPL_RNE, "e4m3, 14-bit acc, fp32 every 128"},
        {"fp16", "same", FPL_ORDER_SEQ, FPL_RNE, "fp16 accumulator, RN"},
    };
    size_t nshow = sizeof show / sizeof show[0];
    fpl_plot_t *p = fpl_plot_new();
    fpl_plot_printf(p, "set multiplot layout 1,2 margins 0.07,0.98,0.30,0.92 spacing 0.08\n"
                       "set logscale xy 2\nset format x '2^{%%L}'\nset format y '10^{%%T}'\n"
                       "set xlabel 'vector length n'\n"
                       "set ylabel 'error  |ŝ - s| / Σ|x_i y_i|'\n"
                       "set yrange [1e-10:10]\nset xrange [4:%zu]\nset ytics 1e-10,100,10\n",
                    nmax);
    for (int d = 0; d < NDATA; d++) {
        char nm[32];
        for (size_t k = 0; k < nshow; k++) {
            for (size_t c = 0; c < C; c++)
                if (cfg[c].data == d && !strcmp(inputs[cfg[c].in], show[k].in) &&
                    !strcmp(acc_name[cfg[c].acc], show[k].acc) && cfg[c].order == show[k].order &&
                    cfg[c].rnd == show[k].rnd) {
                    snprintf(nm, sizeof nm, "d%ds%zu", d, k);
                    print_series(p, nm, ns, S + c * K, K);
                }
        }
        fpl_plot_printf(p, "set title '%s'\n", data_label[d]);
        if (d == 0)
            fpl_plot_printf(p, "set key at screen 0.5,0.01 center bottom horizontal maxrows 4 "
                               "box width 1\n");
        else
            fpl_plot_printf(p, "unset key\n");
        fpl_plot_printf(p, "ub = 2.0**-8; uf = 2.0**-24\n"
                           "lam(n,u) = sqrt(2*log(2*n/0.01))/(1-u)\n"
                           "g(n,u) = n*u < 1 ? n*u/(1-n*u) : 1/0\n"
                           "plot ");
        for (size_t k = 0; k < nshow; k++)
            fpl_plot_printf(p, "$d%ds%zu u 1:3:4 w filledcurves ls %zu notitle, "
                               "$d%ds%zu u 1:2 w lp ls %zu title '%s', ",
                            d, k, k + 1, d, k, k + 1, show[k].title);
        fpl_plot_printf(p, "g(x,ub) ls 20 title 'γ_n, u = 2^{-8}', "
                           "lam(x,ub)*sqrt(x)*ub ls 21 title 'λ√n u, u = 2^{-8} (99%%)', "
                           "g(x,uf) ls 20 lc rgb '#888888' title 'γ_n, u = 2^{-24}', "
                           "lam(x,uf)*sqrt(x)*uf ls 21 lc rgb '#888888' title 'λ√n u, u = 2^{-24}'\n");
    }
    fpl_plot_printf(p, "unset multiplot\n");
    fpa_render(&A, p, "dot", 12, 6);
    fpl_plot_free(p);

    /* ---- figure 2: growth regimes and fitted exponents ------------------- */
    p = fpl_plot_new();
    size_t per = C / NDATA;
    /* top: where the exponents come from -- medians of sequential RN sums
     * of positive data into fp32, the fitted regimes, and gamma_n beside them */
    fpl_plot_printf(p, "set multiplot\n"
                       "set origin 0,0.56\nset size 1,0.44\n"
                       "set lmargin at screen 0.08\nset rmargin at screen 0.72\n"
                       "set tmargin at screen 0.965\nset bmargin at screen 0.62\n"
                       "set logscale xy 2\nset format x '2^{%%L}'\nset format y '10^{%%T}'\n"
                       "set xrange [4:%zu]\nset yrange [1e-10:1]\nset ytics 1e-10,100,1\n"
                       "set xlabel 'vector length n' offset 0,0.8\n"
                       "set ylabel 'median |ŝ - s| / Σ|x_i y_i|'\n"
                       "set title 'Sequential RN sums of U[0,1) products into fp32: exact, then "
                       "random-walk, then correlated; all far below γ_n' font ',11'\n"
                       "set key outside right top font ',9' spacing 1.1\n"
                       "uf = 2.0**-24\nlam(n,u) = sqrt(2*log(2*n/0.01))/(1-u)\n"
                       "g(n,u) = n*u < 1 ? n*u/(1-n*u) : 1/0\n",
                    nmax);
    const char *top_in[] = {"fp32", "bf16", "fp16", "e4m3", "e5m2"};
    size_t top_c[5];
    int has_z[5] = {0}, has_f[5] = {0};
    for (int t = 0; t < 5; t++) {
        top_c[t] = C;
        for (size_t c = 0; c < C; c++)
            if (cfg[c].data == DATA_UNIFORM && !strcmp(inputs[cfg[c].in], top_in[t]) &&
                cfg[c].acc == ACC_FP32 && cfg[c].order == FPL_ORDER_SEQ && cfg[c].rnd == FPL_RNE)
                top_c[t] = c;
        if (top_c[t] == C)
            continue;
        size_t c = top_c[t];
        fpl_plot_printf(p, "$m%d << EOD\n", t);
        for (size_t j = 0; j < K; j++)
            if (S[c * K + j].median > 0 && isfinite(S[c * K + j].median))
                fpl_plot_printf(p, "%.17g %.17g\n", ns[j], S[c * K + j].median);
        fpl_plot_printf(p, "EOD\n$z%d << EOD\n", t);
        for (size_t j = 0; j < K; j++)
            if (S[c * K + j].median == 0) { /* exact: drawn on the axis floor */
                fpl_plot_printf(p, "%.17g 1.3e-10\n", ns[j]);
                has_z[t] = 1;
            }
        fpl_plot_printf(p, "EOD\n$f%d << EOD\n", t);
        has_f[t] = G[c].nseg > 0;
        for (int g = 0; g < G[c].nseg; g++) {
            double n0 = ns[G[c].j0[g]], n1 = ns[G[c].j1[g] - 1];
            fpl_plot_printf(p, "%.17g %.17g\n%.17g %.17g\n\n", n0,
                            exp2(G[c].a[g]) * pow(n0, G[c].b[g]), n1,
                            exp2(G[c].a[g]) * pow(n1, G[c].b[g]));
        }
        fpl_plot_printf(p, "EOD\n");
    }
    fpl_plot_printf(p, "plot ");
    for (int t = 0; t < 5; t++) {
        if (top_c[t] == C)
            continue;
        fpl_plot_printf(p, "$m%d u 1:2 w p ls %d title '%s in', ", t, t + 1, top_in[t]);
        if (has_z[t])
            fpl_plot_printf(p, "$z%d u 1:2 w p ls %d pt 6 ps 1.2 notitle, ", t, t + 1);
        if (has_f[t])
            fpl_plot_printf(p, "$f%d u 1:2 w l ls %d lw 3 notitle, ", t, t + 1);
    }
    fpl_plot_printf(p, "1/0 w p pt 6 lc rgb '#444444' title 'exact (error 0)', "
                       "1/0 w l lw 3 lc rgb '#444444' title 'fitted regime n^b', "
                       "g(x,uf) ls 20 title 'γ_n, u = 2^{-24}', "
                       "lam(x,uf)*sqrt(x)*uf ls 21 title 'λ√n u (99%%)'\n");
    /* bottom: exponents of each regime, per configuration */
    fpl_plot_printf(p, "unset logscale\nunset format\nset format x '%%g'\nunset title\n"
                       "set xlabel 'growth exponent b per regime (median error ∝ n^b, 95%% CI)'\n"
                       "set ylabel ''\nset yrange [-1:%zu]\nset xrange [-0.8:2.6]\nset xtics -0.5,0.5,2.5\n"
                       "set ytics font ',7'\nset grid xtics noytics\nset tmargin at screen 0.54\n"
                       "set bmargin at screen 0.075\n"
                       "set arrow 1 from 0.5, graph 0 to 0.5, graph 1 nohead ls 20\n"
                       "set arrow 2 from 1, graph 0 to 1, graph 1 nohead ls 21\n"
                       "set arrow 3 from -0.5, graph 0 to -0.5, graph 1 nohead lc rgb '#D55E00' dt 3\n"
                       "set arrow 4 from 0, graph 0 to 0, graph 1 nohead lc rgb '#999999'\n",
                    per);
    for (int d = 0; d < NDATA; d++) {
        fpl_plot_printf(p, "set lmargin at screen %.2f\nset rmargin at screen %.2f\n",
                        d ? 0.665 : 0.175, d ? 0.985 : 0.495);
        fpl_plot_printf(p, "set title '%s: √n (0.5), n (1), claimed 1/√n (-0.5)' font ',10'\n",
                        data_label[d]);
        fpl_plot_printf(p, "$e%d << EOD\n", d);
        size_t row = 0;
        for (size_t c = 0; c < C; c++)
            if (cfg[c].data == d) {
                char lab[160];
                if (G[c].nseg && G[c].n_nonzero > ns[0])
                    snprintf(lab, sizeof lab, "%s [exact < %.0f]", cfg[c].label, G[c].n_nonzero);
                else if (G[c].nseg)
                    snprintf(lab, sizeof lab, "%s", cfg[c].label);
                else /* no fit: every median is 0 (exact) or inf (overflow) */
                    snprintf(lab, sizeof lab, "%s (%s)", cfg[c].label,
                             isinf(S[c * K + K - 1].median) ? "overflow" : "exact, no fit");
                double v[2][3];
                for (int g = 0; g < 2; g++) {
                    v[g][0] = g < G[c].nseg ? G[c].b[g] : NAN;
                    v[g][1] = g < G[c].nseg ? G[c].lo[g] : NAN;
                    v[g][2] = g < G[c].nseg ? G[c].hi[g] : NAN;
                }
                fpl_plot_printf(p, "%zu %.17g %.17g %.17g %.17g %.17g %.17g \"%s\"\n", row, v[0][0],
                                v[0][1], v[0][2], v[1][0], v[1][1], v[1][2], lab);
                row++;
            }
        fpl_plot_printf(p, "EOD\n");
        if (d == 0)
            fpl_plot_printf(p, "set key at screen 0.5,0.005 center bottom horizontal font ',9'\n");
        else
            fpl_plot_printf(p, "unset key\n");
        fpl_plot_printf(p, "plot $e%d u 2:1:3:4:ytic(8) w xerrorbars ls 1 pt 7 title 'first "
                           "non-exact regime', $e%d u 5:($1-0.3):6:7 w xerrorbars ls 2 pt 4 "
                           "title 'second regime (where the curve bends)'\n",
                        d, d);
    }
    fpl_plot_printf(p, "unset multiplot\n");
    fpa_render(&A, p, "dot_exponents", 12, 11);
    fpl_plot_free(p);

    /* ---- verdicts -------------------------------------------------------- */
    fpa_verdicts_t *V = fpa_verdicts_open(&A);
    if (!V)
        return fpa_fail(&A, "cannot write verdicts");
    /* T1 is a statement about recursive (sequential) summation: classify
     * each sequential configuration of positive data by the exponent of its
     * first non-exact regime (regimes_of); exact stretches and the bend into
     * a correlated regime are reported, not fitted through. */
    int sq = 0, fast = 0, stag = 0, tot = 0, zflat = 0, ztot = 0, nexact = 0, ncorr = 0;
    double ex_fp32 = NAN, fastest = -INFINITY, exact_lo = INFINITY, exact_hi = 0;
    double corr_b = NAN, corr_n = NAN;
    const char *fast_label = "", *corr_label = "";
    for (size_t c = 0; c < C; c++) {
        if (cfg[c].order != FPL_ORDER_SEQ || !G[c].nseg)
            continue;
        if (cfg[c].data == DATA_NORMAL) {
            ztot++;
            zflat += fabs(F[c].b) < 0.3;
            continue;
        }
        double b0 = G[c].b[0];
        tot++;
        if (b0 >= 0.3 && b0 <= 0.7)
            sq++;
        else if (b0 > 0.7)
            fast++;
        else
            stag++;
        if (b0 > 0.7 && b0 > fastest) {
            fastest = b0;
            fast_label = cfg[c].label;
        }
        if (G[c].n_nonzero > ns[0]) {
            nexact++;
            exact_lo = fmin(exact_lo, G[c].n_nonzero);
            exact_hi = fmax(exact_hi, G[c].n_nonzero);
        }
        if (G[c].nseg == 2 && G[c].lo[1] >= 1) {
            ncorr++;
            /* the example quoted: an 8-bit input into fp32 if there is one */
            if (!isfinite(corr_b) || (cfg[c].acc == ACC_FP32 && G[c].n_nonzero > ns[0])) {
                corr_b = G[c].b[1];
                corr_n = G[c].n_start[1];
                corr_label = cfg[c].label;
            }
        }
        if (cfg[c].acc == ACC_FP32 && cfg[c].rnd == FPL_RNE && !strcmp(inputs[cfg[c].in], "bf16"))
            ex_fp32 = b0;
    }
    /* how close any measured error comes to the deterministic bound gamma_n
     * (2u per rounding for SR); the blocked 14-bit rows use their own u */
    double gratio = 0;
    for (size_t c = 0; c < C; c++)
        for (size_t j = 0; j < K; j++) {
            double u = cfg[c].rnd == FPL_SR ? 2 * cfg[c].u : cfg[c].u;
            if (ns[j] * u < 1 && isfinite(S[c * K + j].max))
                gratio = fmax(gratio, S[c * K + j].max / fpl_gamma((size_t)ns[j], u));
        }
    /* the tensor-core accumulator: which model gives DeepSeek-V3's "nearly
     * 2%" at K = 4096 without promotion on positive data (within a factor
     * 1.5), and which promotion interval keeps every K below 0.1% */
    size_t jd = 0;
    while (am_K[jd] != DEEPSEEK_K)
        jd++;
    char amtxt[1024] = "", promtxt[1024] = "", repro[256] = "";
    int nrepro = 0, prom_best[NAM];
    for (int m = 0; m < NAM; m++) {
        const am_stat_t *o = &ast[AM_AT(DATA_UNIFORM, m, 4, jd)];
        const am_stat_t *on = &ast[AM_AT(DATA_NORMAL, m, 4, jd)];
        size_t l = strlen(amtxt);
        snprintf(amtxt + l, sizeof amtxt - l, "%s%s %.2g%%/%.2g%% (N(0,1): %.2g%%/%.2g%%)",
                 m ? ", " : "", am_name[m], 100 * o->max_rel, 100 * o->mean_rel,
                 100 * on->max_rms, 100 * on->mean_rms);
        if (o->max_rel >= DEEPSEEK_ERR / 1.5 && o->max_rel <= DEEPSEEK_ERR * 1.5) {
            l = strlen(repro);
            snprintf(repro + l, sizeof repro - l, "%s%s", nrepro ? ", " : "", am_name[m]);
            nrepro++;
        }
        int best = -1; /* largest interval with every K and both data below 0.1% */
        for (int k = 0; k < NPROM - 1; k++) {
            int ok = 1;
            for (int d = 0; d < NDATA; d++)
                for (size_t j = 0; j < NAK; j++)
                    ok &= am_max(&ast[AM_AT(d, m, k, j)], d) <= 1e-3;
            if (ok)
                best = k;
        }
        prom_best[m] = best >= 0 ? am_prom[best] : 0;
        l = strlen(promtxt);
        if (best >= 0)
            snprintf(promtxt + l, sizeof promtxt - l, "%s%s every %d", m ? ", " : "", am_name[m],
                     am_prom[best]);
        else
            snprintf(promtxt + l, sizeof promtxt - l, "%s%s none of 32-256", m ? ", " : "",
                     am_name[m]);
    }
    /* the verdict line holds 1023 characters: the per-model detail is in T1-acc */
    char amshort[256] = "";
    for (int m = 0; m < NAM; m++) {
        size_t l = strlen(amshort);
        snprintf(amshort + l, sizeof amshort - l, "%s%s %.2g%%", m ? ", " : "", am_name[m],
                 100 * ast[AM_AT(DATA_UNIFORM, m, 4, jd)].max_rel);
    }
    char cond[512];
    snprintf(cond, sizeof cond,
             "sqrt(n) in %d/%d sequential sums of positive data, %d faster; every error below "
             "gamma_n (ratio <= %.2f)",
             sq, tot, fast, gratio);
    fpa_verdict(V, "T1",
                sq == tot ? "holds"
                : sq == 0 ? "refuted"
                          : "conditional",
                "dot", cond,
                "sequential sums of positive data, first non-exact regime: %d/%d configurations "
                "grow like sqrt(n) (exponent 0.3-0.7; bf16 in fp32, RN: %.2f), %d faster "
                "(steepest %.2f: %s), %d flatter; %d are exact (median error 0) up to n = "
                "%.0f-%.0f and %d bend into a correlated regime (exponent CI >= 1; e.g. %s from "
                "n = %.0f: %.2f), where a stagnating sum, or one whose ulp outgrows and absorbs "
                "the smallest products, gives rounding errors one sign -- a transient, not a "
                "growth law: no error exceeds gamma_n (largest ratio %.2g); zero-mean data: "
                "%d/%d flat; FP8 tensor-core accumulator, K = 4096, no promotion, U[0,1) e4m3, "
                "max: %s; DeepSeek-V3's ~2%% is reproduced by %s",
                sq, tot, ex_fp32, fast, fastest, fast_label, stag, nexact, nexact ? exact_lo : 0.0,
                nexact ? exact_hi : 0.0, ncorr, corr_label, corr_n, corr_b, gratio, zflat, ztot,
                amshort, nrepro ? repro : "none of the models");
    fpa_key(V, "DotSqrtN", "%d", sq);
    fpa_key(V, "DotSeqPos", "%d", tot);
    fpa_key(V, "DotFaster", "%d", fast);
    fpa_key(V, "DotFlatter", "%d", stag);
    fpa_key(V, "DotBfFpExp", "%.2f", ex_fp32);
    fpa_key(V, "DotSteepest", "%.2f", fastest);
    fpa_key(V, "DotExact", "%d", nexact);
    fpa_key(V, "DotExactLo", "%.0f", nexact ? exact_lo : 0.0);
    fpa_key(V, "DotExactHi", "%.0f", nexact ? exact_hi : 0.0);
    fpa_key(V, "DotCorr", "%d", ncorr);
    fpa_key(V, "DotCorrExp", "%.2f", corr_b);
    fpa_key(V, "DotGammaRatio", "%.2g", gratio);
    fpa_key(V, "DotZeroFlat", "%d", zflat);
    fpa_key(V, "DotZeroTot", "%d", ztot);
    fpa_key(V, "DotReps", "%d", reps);
    fpa_key(V, "DotLogNmax", "%d", log_max);
    {
        const am_stat_t *h = &ast[AM_AT(DATA_UNIFORM, AM_ALIGN13, 4, jd)];
        const am_stat_t *h128 = &ast[AM_AT(DATA_UNIFORM, AM_ALIGN13, 2, jd)];
        if (nrepro && strstr(repro, "align13"))
            snprintf(cond, sizeof cond,
                     "the align13 model gives %.2g%% max at K = 4096 on U[0,1), the reported ~2%%",
                     100 * h->max_rel);
        else if (nrepro)
            snprintf(cond, sizeof cond,
                     "~2%% at K = 4096 on U[0,1) only with a wider window (%s); the align13 model "
                     "gives %.2g%%",
                     repro, 100 * h->max_rel);
        else
            snprintf(cond, sizeof cond,
                     "no model gives ~2%% at K = 4096 on U[0,1); the align13 model gives %.2g%%",
                     100 * h->max_rel);
        fpa_verdict(V, "T1-acc",
                    nrepro && strstr(repro, "align13") ? "holds"
                    : nrepro                           ? "conditional"
                                                       : "refuted",
                    "dot_accumulator", cond,
                    "DeepSeek-V3's 'maximum relative error of nearly 2%%' for K = 4096 in the "
                    "14-bit FP8 tensor-core accumulator: the documented model (align13: slices of "
                    "32 aligned and truncated to 13 fraction bits) gives %.2g%% max (%.2g%% mean) "
                    "on U[0,1) e4m3 data; within a factor 1.5 of 2%%: %s; at K = 4096 max/mean "
                    "(U; N(0,1) relative to RMS): %s; promotion to fp32 every 128 brings align13 "
                    "to %.2g%%; largest interval keeping every K <= 16384 below 0.1%%: %s",
                    100 * h->max_rel, 100 * h->mean_rel, nrepro ? repro : "no model", amtxt,
                    100 * h128->max_rel, promtxt);
        /* the tensor-core models at K = 4096, no promotion, in percent */
        static const char *const am_key[NAM] = {"DotRneMax", "DotRtzMax", "DotAlignMax",
                                                "DotAlignFourteenMax", "DotAlignFifteenMax"};
        static const char *const am_nkey[NAM] = {"DotRneNormalMax", "DotRtzNormalMax",
                                                 "DotAlignNormalMax", "DotAlignFourteenNormalMax",
                                                 "DotAlignFifteenNormalMax"};
        for (int m = 0; m < NAM; m++) {
            fpa_key(V, am_key[m], "%.2g", 100 * ast[AM_AT(DATA_UNIFORM, m, 4, jd)].max_rel);
            fpa_key(V, am_nkey[m], "%.2g", 100 * ast[AM_AT(DATA_NORMAL, m, 4, jd)].max_rms);
        }
        fpa_key(V, "DotAlignMean", "%.2g", 100 * h->mean_rel);
        fpa_key(V, "DotAlignPromoted", "%.2g", 100 * h128->max_rel);
        fpa_key(V, "DotPromAlign", "%d", prom_best[AM_ALIGN13]);
        fpa_key(V, "DotPromRtz", "%d", prom_best[AM_RTZ14]);
        fpa_key(V, "DotPromRne", "%d", prom_best[AM_RNE14]);
    }
    /* T1-decay: "relative error decays like 1/sqrt(d)".  Decay = the 95% CI
     * of the exponent of the median relative error lies below -0.25. */
    int dec_seq = 0, dec_other = 0, seq_tot = 0;
    double seq_min = INFINITY, other_min = INFINITY;
    const char *seq_min_label = "", *other_label = "";
    for (size_t c = 0; c < C; c++) {
        if (!isfinite(FR[c].b))
            continue;
        int dec = FR[c].hi < -0.25;
        if (cfg[c].order == FPL_ORDER_SEQ) {
            seq_tot++;
            dec_seq += dec;
            if (FR[c].b < seq_min) {
                seq_min = FR[c].b;
                seq_min_label = cfg[c].label;
            }
        } else {
            dec_other += dec;
            if (dec && FR[c].b < other_min) {
                other_min = FR[c].b;
                other_label = cfg[c].label;
            }
        }
    }
    snprintf(cond, sizeof cond,
             "decays in %d/%d sequential configurations (smallest exponent %.2f), in %d blocked "
             "or pairwise ones",
             dec_seq, seq_tot, seq_min, dec_other);
    fpa_verdict(V, "T1-decay",
                dec_seq == seq_tot ? "holds"
                : dec_seq == 0     ? "refuted"
                                   : "conditional",
                "dot_exponents", cond,
                "relative error decays (exponent CI below -0.25) in %d/%d sequential "
                "configurations (smallest exponent %.2f: %s); it decays in %d blocked or pairwise "
                "ones (down to %.2f: %s), where independent partial-sum errors average out "
                "against a growing sum",
                dec_seq, seq_tot, seq_min, seq_min_label, dec_other, other_min, other_label);
    fpa_key(V, "DotDecaySeq", "%d", dec_seq);
    fpa_key(V, "DotDecaySeqTot", "%d", seq_tot);
    fpa_key(V, "DotDecaySeqMin", "%.2f", seq_min);
    fpa_key(V, "DotDecayOther", "%d", dec_other);
    fpa_key(V, "DotDecayOtherMin", "%.2f", other_min);
    if (fpa_verdicts_close(V))
        return fpa_fail(&A, "cannot write verdicts");
    free(err);
    free(rel);
    free(am_err);
    free(am_s);
    free(am_abs);
    free(ast);
    free(S);
    free(R);
    free(F);
    free(FR);
    free(G);
    free(ovf);
    return fpa_finish(&A);
}
