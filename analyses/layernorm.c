/* layernorm.c -- T3: LayerNorm removes a common scale (and shift) of its
 * input; the error it introduces when its statistics are low precision */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "common.h"
#include "mpref.h"

enum { P_SCALE, P_SHIFT, P_RANDOM, NPERT };
static const char *const pert_name[NPERT] = {"scale", "shift", "random"};
static const char *const pert_label[NPERT] = {"common scale  x(1+ε)", "common shift  x + ε‖x‖/√d",
                                              "random direction, same size"};

static const char *const norm_fmt[] = {"fp32", "bf16", "fp16", "e4m3"};
#define NNORM 4
static const double means[] = {0.0, 8.0};
#define NMEAN 2

/* The sweep: one cell per (d, repetition), its results at these offsets
 * (perturbation p; input mean m and statistics format k; the reference's
 * own error per mean, measured in repetition 0 only) */
enum {
    OUT_AMP = 0,
    OUT_ERR = NPERT,
    OUT_REF = NPERT + NMEAN * NNORM,
    CELL_WIDTH = OUT_REF + NMEAN
};

typedef struct {
    uint64_t seed;
    int reps;
    size_t dims[8];
    double eps_pert;
    fpl_policy_t exact, pol[NNORM];
    fpl_format_t bf16;
} sweep_t;

static void cell_fn(void *ctx, size_t cell, double *out)
{
    const sweep_t *sw = ctx;
    int i = (int)(cell / (size_t)sw->reps), r = (int)(cell % (size_t)sw->reps);
    for (size_t k = 0; k < CELL_WIDTH; k++)
        out[k] = 0;
    size_t d = sw->dims[i];
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(g, fpa_stream_seed(sw->seed, (uint64_t)i, (uint64_t)r));
    double *x = malloc(d * sizeof *x);
    double *y = malloc(d * sizeof *y), *yp = malloc(d * sizeof *yp), *dl = malloc(d * sizeof *dl);
    /* part A, in MPFR at 256 bits: the perturbed inputs are formed
     * exactly, so a pure scale or shift stays one (in binary64 the
     * rounding of x + delta alone leaves a 2^-53/eps floor) */
    mpfr_t *X = fpa_mp_alloc(d), *XP = fpa_mp_alloc(d), *Y = fpa_mp_alloc(d), *YP = fpa_mp_alloc(d);
    mpfr_t nx, ny, nd_, dy, t;
    mpfr_inits2(FPA_MP_PREC, nx, ny, nd_, dy, t, (mpfr_ptr)0);
    mpfr_set_zero(nx, 1);
    mpfr_set_zero(nd_, 1);
    for (size_t k = 0; k < d; k++) {
        mpfr_set_d(X[k], 0.5 + gsl_ran_gaussian(g, 1.0), MPFR_RNDN);
        mpfr_fma(nx, X[k], X[k], nx, MPFR_RNDN);
        dl[k] = gsl_ran_gaussian(g, 1.0);
        mpfr_set_d(t, dl[k], MPFR_RNDN);
        mpfr_fma(nd_, t, t, nd_, MPFR_RNDN);
    }
    mpfr_sqrt(nx, nx, MPFR_RNDN);
    mpfr_sqrt(nd_, nd_, MPFR_RNDN);
    fpa_mp_norm(Y, X, d, 1e-5, 1);
    mpfr_set_zero(ny, 1);
    for (size_t k = 0; k < d; k++)
        mpfr_fma(ny, Y[k], Y[k], ny, MPFR_RNDN);
    mpfr_sqrt(ny, ny, MPFR_RNDN);
    for (int p = 0; p < NPERT; p++) {
        for (size_t k = 0; k < d; k++) {
            if (p == P_SCALE) {
                mpfr_mul_d(t, X[k], sw->eps_pert, MPFR_RNDN);
            } else if (p == P_SHIFT) {
                mpfr_mul_d(t, nx, sw->eps_pert, MPFR_RNDN);
                mpfr_div_d(t, t, sqrt((double)d), MPFR_RNDN);
            } else {
                mpfr_mul_d(t, nx, sw->eps_pert * dl[k], MPFR_RNDN);
                mpfr_div(t, t, nd_, MPFR_RNDN);
            }
            mpfr_add(XP[k], X[k], t, MPFR_RNDN);
        }
        fpa_mp_norm(YP, XP, d, 1e-5, 1);
        mpfr_set_zero(dy, 1);
        for (size_t k = 0; k < d; k++) {
            mpfr_sub(t, YP[k], Y[k], MPFR_RNDN);
            mpfr_fma(dy, t, t, dy, MPFR_RNDN);
        }
        mpfr_sqrt(dy, dy, MPFR_RNDN);
        mpfr_div(dy, dy, ny, MPFR_RNDN);
        out[OUT_AMP + p] = mpfr_get_d(dy, MPFR_RNDN) / sw->eps_pert;
    }
    mpfr_clears(nx, ny, nd_, dy, t, (mpfr_ptr)0);
    fpa_mp_free(X, d);
    fpa_mp_free(XP, d);
    fpa_mp_free(YP, d);
    /* part B: the error of LayerNorm itself, statistics in low precision,
     * on bf16 activations */
    for (int m = 0; m < NMEAN; m++) {
        for (size_t q = 0; q < d; q++)
            x[q] = fpl_round(&sw->bf16, means[m] + gsl_ran_gaussian(g, 1.0), FPL_RNE, NULL);
        fpl_layernorm(&sw->exact, x, y, d, 1e-5, NULL);
        if (r == 0) { /* the binary64 reference against MPFR */
            for (size_t k = 0; k < d; k++)
                mpfr_set_d(Y[k], x[k], MPFR_RNDN);
            mpfr_t *Z = fpa_mp_alloc(d);
            fpa_mp_norm(Z, Y, d, 1e-5, 1);
            out[OUT_REF + m] = fpa_mp_relerr(y, Z, d);
            fpa_mp_free(Z, d);
        }
        for (int k = 0; k < NNORM; k++) {
            fpl_layernorm(&sw->pol[k], x, yp, d, 1e-5, NULL);
            fpl_err_t e;
            fpl_error_metrics(yp, y, d, &sw->pol[k].out, &e);
            out[OUT_ERR + m * NNORM + k] = isnan(e.rel) ? INFINITY : e.rel;
        }
    }
    fpa_mp_free(Y, d);
    free(x);
    free(y);
    free(yp);
    free(dl);
    gsl_rng_free(g);
}

int main(int argc, char **argv)
{
    fpa_t A;
    int st = fpa_init(&A, "layernorm",
                      "T3: amplification through LayerNorm of a perturbation that is a common\n"
                      "scale (or shift) of the whole vector against a random one of the same\n"
                      "size; and the error LayerNorm introduces when its mean and variance are\n"
                      "computed in bf16, fp16 or e4m3 instead of fp32.  Writes\n"
                      "data/layernorm.csv, data/layernorm_stats.csv, plots/layernorm.png|pdf.",
                      argc, argv);
    if (st)
        return st - 1;
    const int reps = A.quick ? 40 : 200;
    const int nd = A.quick ? 5 : 6; /* d = 16, 64, ..., 4096 or 16384 */
    size_t dims[8];
    for (int i = 0; i < nd; i++)
        dims[i] = (size_t)16 << (2 * i);
    const double eps_pert = 0x1p-8; /* a bf16-sized perturbation */
    fpl_policy_t exact;
    fpl_policy_exact(&exact);
    fpl_policy_t pol[NNORM];
    for (int k = 0; k < NNORM; k++) {
        char spec[128];
        snprintf(spec, sizeof spec, "a=fp32,out=fp32,acc=fp32,norm=%s", norm_fmt[k]);
        if (fpl_policy_parse(spec, &pol[k]))
            return fpa_fail(&A, "bad policy");
    }
    fpl_format_t bf16;
    fpl_format_parse("bf16", &bf16);
    /* amp[i][p][r], err[i][m][k][r] */
    double *amp = malloc((size_t)nd * NPERT * (size_t)reps * sizeof *amp);
    double *err = malloc((size_t)nd * NMEAN * NNORM * (size_t)reps * sizeof *err);
    double refe[8 * NMEAN] = {0}; /* the reference's own error, per (d, mean) */
    size_t cells = (size_t)nd * (size_t)reps;
    double *res = malloc(cells * CELL_WIDTH * sizeof *res);
    if (!amp || !err || !res) {
        free(amp);
        free(err);
        free(res);
        return fpa_fail(&A, "out of memory");
    }
    sweep_t X = {.seed = A.seed, .reps = reps, .eps_pert = eps_pert, .exact = exact, .bf16 = bf16};
    memcpy(X.dims, dims, sizeof dims);
    memcpy(X.pol, pol, sizeof pol);
    st = fpa_sweep(&A, "vectors", cells, CELL_WIDTH, cell_fn, &X, res);
    if (st) { /* a shard was written (1), or the merge failed (-1) */
        free(res);
        free(amp);
        free(err);
        return st < 0 ? 1 : 0;
    }
    for (int i = 0; i < nd; i++)
        for (int r = 0; r < reps; r++) {
            const double *o = res + ((size_t)i * (size_t)reps + (size_t)r) * CELL_WIDTH;
            for (int p = 0; p < NPERT; p++)
                amp[((size_t)i * NPERT + (size_t)p) * (size_t)reps + (size_t)r] = o[OUT_AMP + p];
            for (int m = 0; m < NMEAN; m++) {
                for (int k = 0; k < NNORM; k++)
                    err[(((size_t)i * NMEAN + (size_t)m) * NNORM + (size_t)k) * (size_t)reps +
                        (size_t)r] = o[OUT_ERR + m * NNORM + k];
                if (r == 0)
                    refe[i * NMEAN + m] = o[OUT_REF + m];
            }
        }
    free(res);

    /* ---- CSV ---------------------------------------------------------------- */
    fpl_csv_t *c1 = fpa_csv(&A, "layernorm",
                                 "perturbation,d,reps,relative_size,median_amplification,"
                                 "q10_amplification,q90_amplification");
    fpl_csv_t *c2 = fpa_csv(&A, "layernorm_stats",
                                 "norm_format,input_mean,d,reps,median_rel_error,q10_rel_error,"
                                 "q90_rel_error");
    if (!c1 || !c2)
        return fpa_fail(&A, "cannot write results");
    fpl_summary_t SA[8][NPERT], SB[8][NMEAN][NNORM];
    for (int i = 0; i < nd; i++) {
        for (int p = 0; p < NPERT; p++) {
            fpl_summarize(amp + ((size_t)i * NPERT + (size_t)p) * (size_t)reps, (size_t)reps,
                          &SA[i][p]);
            fpl_csv_row(c1, "%s,%zu,%d,%.17g,%.17g,%.17g,%.17g", pert_name[p], dims[i], reps,
                        eps_pert, SA[i][p].median, SA[i][p].q10, SA[i][p].q90);
        }
        for (int m = 0; m < NMEAN; m++)
            for (int k = 0; k < NNORM; k++) {
                fpl_summarize(err + (((size_t)i * NMEAN + (size_t)m) * NNORM + (size_t)k) *
                                        (size_t)reps,
                              (size_t)reps, &SB[i][m][k]);
                fpl_csv_row(c2, "%s,%g,%zu,%d,%.17g,%.17g,%.17g", norm_fmt[k], means[m], dims[i],
                            reps, SB[i][m][k].median, SB[i][m][k].q10, SB[i][m][k].q90);
            }
    }
    /* the binary64 reference must be far more accurate than the smallest
     * error it measures (fp32 statistics): by 1000x at least */
    double ref_worst = 0, smallest = INFINITY;
    for (int i = 0; i < nd; i++)
        for (int m = 0; m < NMEAN; m++) {
            ref_worst = fmax(ref_worst, refe[i * NMEAN + m]);
            smallest = fmin(smallest, SB[i][m][0].median);
        }
    fpl_csv_t *c3 = fpa_csv(&A, "layernorm_reference", "check,value");
    if (!c3)
        return fpa_fail(&A, "cannot write results");
    fpl_csv_row(c3, "max_reference_error_relative,%.17g", ref_worst);
    fpl_csv_row(c3, "smallest_measured_error,%.17g", smallest);
    if (fpl_csv_close(c1) || fpl_csv_close(c2) || fpl_csv_close(c3))
        return fpa_fail(&A, "cannot write results");
    if (!(ref_worst * 1000 <= smallest)) {
        fprintf(stderr, "layernorm: the reference's own error %.3g is not 1000x below the smallest "
                        "measured error %.3g; refusing to report\n", ref_worst, smallest);
        return 1;
    }

    /* ---- figure ---------------------------------------------------------------- */
    fpl_plot_t *pl = fpl_plot_new();
    fpl_plot_printf(pl, "set multiplot layout 1,2 margins 0.07,0.98,0.3,0.9 spacing 0.09\n"
                        "set logscale xy 2\nset format x '2^{%%L}'\nset logscale y 10\n"
                        "set format y '10^{%%T}'\nset xlabel 'vector length d'\n");
    /* The axis stops at fp32's unit roundoff: an amplification below it
     * changes nothing in any format LayerNorm runs in.  A common shift is
     * removed exactly (its amplification is at the 256-bit working
     * precision, ~1e-72); such points sit on the floor with their own marker. */
    const double floor_amp = 0x1p-24;
    for (int p = 0; p < NPERT; p++) {
        fpl_plot_printf(pl, "$a%d << EOD\n", p);
        for (int i = 0; i < nd; i++) {
            double m = SA[i][p].median, lo = SA[i][p].q10 > 0 ? SA[i][p].q10 : m;
            fpl_plot_printf(pl, "%zu %.17g %.17g %.17g %d\n", dims[i], fmax(m, floor_amp),
                            fmax(lo, floor_amp), fmax(SA[i][p].q90, floor_amp), m < floor_amp);
        }
        fpl_plot_printf(pl, "EOD\n");
    }
    fpl_plot_printf(pl, "set title 'amplification through LayerNorm (ε = 2^{-8})'\n"
                        "set ylabel '(‖ΔLN‖/‖LN(x)‖) / (‖δ‖/‖x‖)'\nset yrange [%g:10]\n"
                        "set label 1 'floor: 2^{-24}, fp32 unit roundoff' at graph 0.98, first %g "
                        "right offset 0,0.8 font ',9' tc rgb '#444444'\n"
                        "set arrow 1 from graph 0, first %g to graph 1, first %g nohead ls 21\n"
                        "set key at graph 0.5,-0.22 center top box\nplot ",
                    floor_amp / 3, floor_amp, floor_amp, floor_amp);
    for (int p = 0; p < NPERT; p++)
        fpl_plot_printf(pl, "$a%d u 1:3:4 w filledcurves ls %d notitle, $a%d u 1:($5 > 0 ? NaN : $2) w lp "
                            "ls %d title '%s', $a%d u 1:($5 > 0 ? $2 : NaN) w lp ls %d pt 10 ps 1.4 "
                            "dt 3 %s%s",
                        p, p + 1, p, p + 1, pert_label[p], p, p + 1,
                        p == P_SHIFT ? "title 'exact: below the floor (open, at it)'" : "notitle",
                        p + 1 < NPERT ? ", " : "\n");
    fpl_plot_printf(pl, "unset label 1\nunset arrow 1\nset yrange [*:*]\n");
    for (int m = 0; m < NMEAN; m++)
        for (int k = 0; k < NNORM; k++) {
            fpl_plot_printf(pl, "$b%d%d << EOD\n", m, k);
            for (int i = 0; i < nd; i++)
                if (SB[i][m][k].median > 0 && isfinite(SB[i][m][k].q90))
                    fpl_plot_printf(pl, "%zu %.17g %.17g %.17g\n", dims[i], SB[i][m][k].median,
                                    SB[i][m][k].q10 > 0 ? SB[i][m][k].q10 : SB[i][m][k].median,
                                    SB[i][m][k].q90);
            fpl_plot_printf(pl, "EOD\n");
        }
    fpl_plot_printf(pl, "set title 'error LayerNorm introduces (bf16 input, fp32 output)'\n"
                        "set ylabel 'relative error of LN(x)'\n"
                        "set key at graph 0.5,-0.22 center top box maxrows 4 horizontal\nplot ");
    for (int m = 0; m < NMEAN; m++)
        for (int k = 0; k < NNORM; k++)
            fpl_plot_printf(pl, "$b%d%d u 1:2 w lp ls %d dt %d title 'stats in %s, mean %g'%s", m,
                            k, k + 1, m ? 2 : 1, norm_fmt[k], means[m],
                            m + 1 < NMEAN || k + 1 < NNORM ? ", " : "\n");
    fpl_plot_printf(pl, "unset multiplot\n");
    fpa_render(&A, pl, "layernorm", 12, 5.5);
    fpl_plot_free(pl);

    /* ---- verdicts ------------------------------------------------------------- */
    fpa_verdicts_t *V = fpa_verdicts_open(&A);
    if (!V)
        return fpa_fail(&A, "cannot write verdicts");
    double sc = 0, sh = 0, rnd = INFINITY;
    for (int i = 0; i < nd; i++) {
        sc = fmax(sc, SA[i][P_SCALE].median);
        sh = fmax(sh, SA[i][P_SHIFT].median);
        rnd = fmin(rnd, SA[i][P_RANDOM].median);
    }
    /* washes out = scale-like perturbations amplified at least 100x less than
     * random ones of the same size, at every d */
    int washes = sc * 100 < rnd;
    char cond[512];
    snprintf(cond, sizeof cond,
             "common scale amplified by <= %.2g, random perturbation by >= %.2f, d = %zu..%zu", sc,
             rnd, dims[0], dims[nd - 1]);
    fpa_verdict(
        V, "T3", washes ? "holds" : (sc < rnd ? "conditional" : "refuted"), "layernorm", cond,
        "a common-scale perturbation comes out of LayerNorm amplified by at most %.2g "
        "(a common shift by %.1g: zero at the 256-bit working precision), a random one of the "
        "same size by at least %.2f "
        "(d = %zu..%zu): the scale component is removed, the rest passes%s",
        sc, sh, rnd, dims[0], dims[nd - 1],
        rnd > 0.5 && rnd < 2 ? ", so rounding noise, which points in a random direction, "
                               "goes through LayerNorm about unchanged (T2 measures what "
                               "that means over depth)"
                             : "");
    fpa_key(V, "LnScaleMax", "%.2g", sc);
    fpa_key(V, "LnShiftMax", "%.1g", sh);
    fpa_key(V, "LnRandomMin", "%.2f", rnd);
    fpa_key(V, "LnDmin", "%zu", dims[0]);
    fpa_key(V, "LnDmax", "%zu", dims[nd - 1]);
    fpa_key(V, "LnReps", "%d", reps);
    /* low-precision statistics: ratio of their error to fp32 statistics' */
    double worst_ratio = INFINITY, bf_err = 0, f32_err = 0;
    for (int i = 0; i < nd; i++)
        for (int m = 0; m < NMEAN; m++) {
            double ratio = SB[i][m][1].median / SB[i][m][0].median;
            if (ratio < worst_ratio)
                worst_ratio = ratio;
            if (m == NMEAN - 1 && i == nd - 1) {
                bf_err = SB[i][m][1].median;
                f32_err = SB[i][m][0].median;
            }
        }
    snprintf(
        cond, sizeof cond,
        "bf16 statistics err >= %.0fx more than fp32 ones at every d = %zu..%zu and input mean "
        "0..%g",
        worst_ratio, dims[0], dims[nd - 1], means[NMEAN - 1]);
    fpa_verdict(
        V, "T3-stats",
        worst_ratio >= 10 ? "holds"
        : worst_ratio > 1 ? "conditional"
                          : "refuted",
        "layernorm", cond,
        "LayerNorm statistics in bf16 introduce at least %.0fx the error of fp32 statistics "
        "at every d and input mean (d = %zu, mean %g: %.2g vs %.2g), supporting the "
        "practice of keeping LN statistics in fp32",
        worst_ratio, dims[nd - 1], means[NMEAN - 1], bf_err, f32_err);
    fpa_key(V, "LnStatsRatio", "%.0f", worst_ratio);
    fpa_key(V, "LnMeanMax", "%g", means[NMEAN - 1]);
    fpa_key(V, "LnBfErr", "%.2g", bf_err);
    fpa_key(V, "LnFpErr", "%.2g", f32_err);
    /* at the shortest vector and zero mean, the mildest case */
    fpa_key(V, "LnBfErrSmall", "%.2g", SB[0][0][1].median);
    fpa_key(V, "LnFpErrSmall", "%.2g", SB[0][0][0].median);
    fpa_key(V, "LnFpSixteenErr", "%.2g", SB[nd - 1][0][2].median);
    fpa_key(V, "LnEfourErr", "%.2g", SB[nd - 1][0][3].median);
    fpa_key(V, "LnBfErrZero", "%.2g", SB[nd - 1][0][1].median);
    if (fpa_verdicts_close(V))
        return fpa_fail(&A, "cannot write verdicts");
    free(amp);
    free(err);
    return fpa_finish(&A);
}
