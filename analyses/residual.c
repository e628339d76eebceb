/* residual.c -- T2: error through residual stacks x <- x + f(N(x)) with
 * pre-LN, post-LN, RMSNorm and no normalisation, per precision policy */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "common.h"
#include "mpref.h"

enum { PRE_LN, POST_LN, RMS, NONORM, NVAR };
static const char *const var_name[NVAR] = {"preln", "postln", "rmsnorm", "nonorm"};
static const char *const var_label[NVAR] = {"pre-LN", "post-LN", "pre-RMSNorm", "no norm"};

static const struct {
    const char *name, *spec;
} policies[] = {
    {"bf16", "w=bf16,a=bf16,acc=fp32,norm=fp32,out=bf16"},
    {"fp16", "w=fp16,a=fp16,acc=fp32,norm=fp32,out=fp16"},
    {"e4m3", "w=e4m3,a=e4m3,acc=fp32,norm=fp32,out=bf16"},
    {"int8w", "w=int8,a=bf16,acc=fp32,norm=fp32,out=bf16"},
};
#define NPOL 4

/* One residual block on T tokens of width d; f is a two-layer GELU MLP
 * d -> 4d -> d.  W2 carries GPT-2's residual gain 1/sqrt(2 L). */
typedef struct {
    int variant;
    size_t d, T;
    double *W1, *W2;   /* reference weights, 4d x d and d x 4d */
    double *W1q, *W2q; /* as the policy stores them */
    double *tmp;       /* 4d + 3d scratch per call (one thread per stack) */
} block_t;

static void mlp(const block_t *B, const double *in, double *out, const fpl_policy_t *p,
                fpl_sr_t *sr)
{
    size_t d = B->d, h = 4 * d;
    double *a = B->tmp, *g = B->tmp + h, *xin = B->tmp + 2 * h;
    fpl_policy_t ph = *p;
    ph.out = p->a; /* hidden activations are GEMM outputs in the activation format */
    const double *W1 = p->exact ? B->W1 : B->W1q, *W2 = p->exact ? B->W2 : B->W2q;
    if (p->exact)
        memcpy(xin, in, d * sizeof *xin);
    else
        fpl_round_array(&p->a, in, xin, d, p->rnd, sr); /* GEMM input in the activation format */
    fpl_matvec(&ph, W1, xin, a, h, d, sr);
    fpl_gelu(p, a, g, h, sr);
    fpl_matvec(p, W2, g, out, d, h, sr);
}

static void norm(const block_t *B, const double *x, double *y, const fpl_policy_t *p, fpl_sr_t *sr)
{
    if (B->variant == RMS)
        fpl_rmsnorm(p, x, y, B->d, 1e-5, sr);
    else
        fpl_layernorm(p, x, y, B->d, 1e-5, sr);
}

static void add(const fpl_policy_t *p, const double *x, const double *y, double *z, size_t n,
                fpl_sr_t *sr)
{
    if (p->exact)
        for (size_t i = 0; i < n; i++)
            z[i] = x[i] + y[i];
    else
        fpl_vec_op(&p->out, FPL_OP_ADD, x, y, z, n, p->rnd, sr);
}

static int block_forward(const fpl_layer_t *L, const double *x, double *y, const fpl_policy_t *p,
                         fpl_sr_t *sr)
{
    const block_t *B = L->state;
    size_t d = B->d;
    double *u = B->tmp + 8 * d + d, *f = u + d;
    for (size_t t = 0; t < B->T; t++) {
        const double *xt = x + t * d;
        double *yt = y + t * d;
        switch (B->variant) {
        case PRE_LN:
        case RMS:
            norm(B, xt, u, p, sr);
            mlp(B, u, f, p, sr);
            add(p, xt, f, yt, d, sr);
            break;
        case POST_LN:
            mlp(B, xt, f, p, sr);
            add(p, xt, f, u, d, sr);
            norm(B, u, yt, p, sr);
            break;
        default:
            mlp(B, xt, f, p, sr);
            add(p, xt, f, yt, d, sr);
            break;
        }
    }
    return 0;
}

/* One block on one token in MPFR (256 bits): the check of the binary64
 * reference path.  Returns ||y - y_mpfr|| / ||y_mpfr||. */
static double mp_block_error(const block_t *B, const double *x, const double *y)
{
    size_t d = B->d, h = 4 * d;
    mpfr_t *X = fpa_mp_alloc(d), *U = fpa_mp_alloc(d), *H = fpa_mp_alloc(h),
           *F = fpa_mp_alloc(d), *Y = fpa_mp_alloc(d);
    mpfr_t t;
    mpfr_init2(t, FPA_MP_PREC);
    for (size_t i = 0; i < d; i++)
        mpfr_set_d(X[i], x[i], MPFR_RNDN);
    mpfr_t *in = X;
    if (B->variant == PRE_LN || B->variant == RMS) {
        fpa_mp_norm(U, X, d, 1e-5, B->variant == PRE_LN);
        in = U;
    }
    for (size_t r = 0; r < h; r++) { /* H = GELU(W1 in) */
        mpfr_set_zero(H[r], 1);
        for (size_t c = 0; c < d; c++) {
            mpfr_mul_d(t, in[c], B->W1[r * d + c], MPFR_RNDN);
            mpfr_add(H[r], H[r], t, MPFR_RNDN);
        }
        mpfr_div_d(t, H[r], -sqrt(2.0), MPFR_RNDN);
        mpfr_erfc(t, t, MPFR_RNDN);
        mpfr_mul(H[r], H[r], t, MPFR_RNDN);
        mpfr_div_ui(H[r], H[r], 2, MPFR_RNDN);
    }
    for (size_t r = 0; r < d; r++) { /* F = W2 H, Y = X + F */
        mpfr_set_zero(F[r], 1);
        for (size_t c = 0; c < h; c++) {
            mpfr_mul_d(t, H[c], B->W2[r * h + c], MPFR_RNDN);
            mpfr_add(F[r], F[r], t, MPFR_RNDN);
        }
        mpfr_add(Y[r], X[r], F[r], MPFR_RNDN);
    }
    if (B->variant == POST_LN) {
        fpa_mp_norm(U, Y, d, 1e-5, 1);
        for (size_t r = 0; r < d; r++)
            mpfr_set(Y[r], U[r], MPFR_RNDN);
    }
    double e = fpa_mp_relerr(y, Y, d);
    mpfr_clear(t);
    fpa_mp_free(X, d);
    fpa_mp_free(U, d);
    fpa_mp_free(H, h);
    fpa_mp_free(F, d);
    fpa_mp_free(Y, d);
    return e;
}

typedef struct {
    fpl_summary_t total, intro, inher, amp, sqnr, cosine, ulps;
} layer_sum_t;

int main(int argc, char **argv)
{
    fpa_t A;
    int st = fpa_init(&A, "residual",
                      "T2: per-layer error of residual stacks x <- x + f(N(x)) (f a GELU MLP)\n"
                      "with pre-LN, post-LN, RMSNorm and no normalisation, under bf16, fp16,\n"
                      "e4m3 (fp32 accumulation) and int8-weight policies: total, introduced and\n"
                      "inherited error and each layer's amplification.  Writes data/residual.csv,\n"
                      "plots/residual.png|pdf, plots/residual_amplification.png|pdf, verdicts.",
                      argc, argv);
    if (st)
        return st - 1;
    const size_t d = A.quick ? 64 : 256, T = A.quick ? 2 : 4;
    const size_t depth = A.quick ? 16 : 96;
    const int reps = A.quick ? 3 : 5;
    const size_t runs = (size_t)NVAR * NPOL * (size_t)reps;
    fpl_policy_t pol[NPOL];
    for (int k = 0; k < NPOL; k++)
        if (fpl_policy_parse(policies[k].spec, &pol[k]))
            return fpa_fail(&A, "bad policy");
    /* rep[run][layer] */
    fpl_track_report_t *R = calloc(runs * depth, sizeof *R);
    if (!R)
        return fpa_fail(&A, "out of memory");
    size_t done = 0;
    int failed = 0;
    double refe[NVAR] = {0};
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t run = 0; run < runs; run++) {
        int v = (int)(run / ((size_t)NPOL * reps)), k = (int)(run / (size_t)reps % NPOL);
        int r = (int)(run % (size_t)reps);
        /* weights and inputs depend on (variant, rep) only: every policy sees
         * the same model and data */
        gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
        gsl_rng_set(g, fpa_stream_seed(A.seed, (uint64_t)v, (uint64_t)r));
        block_t *blocks = calloc(depth, sizeof *blocks);
        fpl_layer_t *L = calloc(depth, sizeof *L);
        double gain = 1 / sqrt(2.0 * (double)depth);
        for (size_t l = 0; l < depth; l++) {
            block_t *B = &blocks[l];
            B->variant = v;
            B->d = d;
            B->T = T;
            B->W1 = malloc(4 * d * d * sizeof *B->W1);
            B->W2 = malloc(4 * d * d * sizeof *B->W2);
            B->W1q = malloc(4 * d * d * sizeof *B->W1q);
            B->W2q = malloc(4 * d * d * sizeof *B->W2q);
            B->tmp = malloc(12 * d * sizeof *B->tmp);
            for (size_t i = 0; i < 4 * d * d; i++) {
                B->W1[i] = gsl_ran_gaussian(g, 1 / sqrt((double)d));
                B->W2[i] = gsl_ran_gaussian(g, gain / sqrt(4.0 * (double)d));
            }
            fpl_weights(&pol[k], B->W1, B->W1q, 4 * d, d);
            fpl_weights(&pol[k], B->W2, B->W2q, d, 4 * d);
            L[l] = (fpl_layer_t){.name = "block", .in_dim = d * T, .out_dim = d * T,
                                 .forward = block_forward, .state = B};
        }
        double *x0 = malloc(d * T * sizeof *x0);
        for (size_t i = 0; i < d * T; i++)
            x0[i] = gsl_ran_gaussian(g, 1.0);
        fpl_sr_t sr;
        fpl_sr_seed(&sr, fpa_stream_seed(A.seed, 1000 + run, 0));
        if (k == 0 && r == 0) { /* check the reference path of the first block */
            double *y = malloc(d * T * sizeof *y);
            fpl_policy_t ex;
            fpl_policy_exact(&ex);
            block_forward(&L[0], x0, y, &ex, NULL);
            refe[v] = mp_block_error(&blocks[0], x0, y);
            free(y);
        }
        fpl_err_t in_err;
        if (fpl_track(L, depth, x0, &pol[k], &sr, &in_err, R + run * depth))
#pragma omp atomic write
            failed = 1;
        for (size_t l = 0; l < depth; l++) {
            free(blocks[l].W1);
            free(blocks[l].W2);
            free(blocks[l].W1q);
            free(blocks[l].W2q);
            free(blocks[l].tmp);
        }
        free(blocks);
        free(L);
        free(x0);
        gsl_rng_free(g);
#pragma omp critical
        fpa_progress(&A, "stacks", ++done, runs);
    }
    fpa_progress_end(&A);
    if (failed)
        return fpa_fail(&A, "tracking failed");

    /* ---- summaries over repetitions -------------------------------------- */
    layer_sum_t *S = calloc((size_t)NVAR * NPOL * depth, sizeof *S);
    double *tmp = malloc((size_t)reps * sizeof *tmp);
    fpl_csv_t *csv = fpa_csv(&A, "residual",
                                  "variant,policy,layer,d_model,tokens,reps,median_total_rel,"
                                  "q10_total_rel,q90_total_rel,median_introduced_rel,"
                                  "median_inherited_rel,median_amplification,median_sqnr_db,"
                                  "median_cosine,max_ulps");
    if (!csv)
        return fpa_fail(&A, "cannot write results");
#define SUMMARISE(field, expr)                                                                  \
    for (int r = 0; r < reps; r++) {                                                            \
        const fpl_track_report_t *q = &R[(base + (size_t)r) * depth + l];                       \
        double val = (expr);                                                                    \
        tmp[r] = isnan(val) ? INFINITY : val;                                                   \
    }                                                                                           \
    fpl_summarize(tmp, (size_t)reps, &s->field);
    for (int v = 0; v < NVAR; v++)
        for (int k = 0; k < NPOL; k++)
            for (size_t l = 0; l < depth; l++) {
                size_t base = ((size_t)v * NPOL + (size_t)k) * (size_t)reps;
                layer_sum_t *s = &S[((size_t)v * NPOL + (size_t)k) * depth + l];
                SUMMARISE(total, q->total.rel)
                SUMMARISE(intro, q->introduced.rel)
                SUMMARISE(inher, q->inherited.rel)
                SUMMARISE(amp, l == 0 ? 0.0 : q->amplification)
                SUMMARISE(sqnr, -q->total.sqnr_db)
                SUMMARISE(cosine, -q->total.cosine)
                SUMMARISE(ulps, q->total.ulps)
                fpl_csv_row(csv, "%s,%s,%zu,%zu,%zu,%d,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,"
                                 "%.17g,%.17g",
                            var_name[v], policies[k].name, l + 1, d, T, reps, s->total.median,
                            s->total.q10, s->total.q90, s->intro.median, s->inher.median,
                            l == 0 ? NAN : s->amp.median, -s->sqnr.median, -s->cosine.median,
                            s->ulps.max);
            }
    /* the reference must be 1000x more accurate than the smallest error it
     * measures (the first block's introduced error, any variant or policy) */
    double ref_worst = 0, smallest = INFINITY;
    for (int v = 0; v < NVAR; v++) {
        ref_worst = fmax(ref_worst, refe[v]);
        for (int k = 0; k < NPOL; k++)
            smallest = fmin(smallest, S[((size_t)v * NPOL + (size_t)k) * depth].intro.median);
    }
    fpl_csv_t *rc = fpa_csv(&A, "residual_reference", "check,value");
    if (!rc)
        return fpa_fail(&A, "cannot write results");
    fpl_csv_row(rc, "max_reference_error_relative,%.17g", ref_worst);
    fpl_csv_row(rc, "smallest_measured_error,%.17g", smallest);
    if (fpl_csv_close(csv) || fpl_csv_close(rc))
        return fpa_fail(&A, "cannot write results");
    if (!(ref_worst * 1000 <= smallest)) {
        fprintf(stderr, "residual: the reference's own error %.3g is not 1000x below the smallest "
                        "measured error %.3g; refusing to report\n", ref_worst, smallest);
        return 1;
    }

    /* ---- figures ------------------------------------------------------------ */
    fpl_plot_t *p = fpl_plot_new();
    fpl_plot_printf(p, "set multiplot layout 2,2 margins 0.08,0.98,0.17,0.94 spacing 0.08,0.12\n"
                       "set logscale y\nset format y '10^{%%T}'\nset xrange [1:%zu]\n"
                       "set xlabel 'layer (residual block)'\n"
                       "set ylabel 'relative error ‖ŷ - y‖ / ‖y‖'\n",
                    depth);
    for (int k = 0; k < NPOL; k++) {
        for (int v = 0; v < NVAR; v++) {
            fpl_plot_printf(p, "$p%dv%d << EOD\n", k, v);
            for (size_t l = 0; l < depth; l++) {
                layer_sum_t *s = &S[((size_t)v * NPOL + (size_t)k) * depth + l];
                if (isfinite(s->total.q90) && s->total.median > 0)
                    fpl_plot_printf(p, "%zu %.17g %.17g %.17g %.17g\n", l + 1, s->total.median,
                                    s->total.q10, s->total.q90, s->intro.median);
            }
            fpl_plot_printf(p, "EOD\n");
        }
        fpl_plot_printf(p, "set title 'policy %s'\n", policies[k].spec);
        if (k == 0)
            fpl_plot_printf(p, "set key at screen 0.5,0.015 center bottom horizontal box\n"
                               "set label 1 'solid: total error of the stack so far; dotted: error "
                               "introduced by the block itself; bands: 10-90%% over repetitions' "
                               "at screen 0.5,0.075 center\n");
        else
            fpl_plot_printf(p, "unset key\nunset label 1\n");
        fpl_plot_printf(p, "plot ");
        for (int v = 0; v < NVAR; v++)
            fpl_plot_printf(p, "$p%dv%d u 1:3:4 w filledcurves ls %d notitle, "
                               "$p%dv%d u 1:2 w l ls %d title '%s', "
                               "$p%dv%d u 1:5 w l ls %d dt 3 notitle%s",
                            k, v, v + 1, k, v, v + 1, var_label[v], k, v, v + 1,
                            v + 1 < NVAR ? ", " : "\n");
    }
    fpl_plot_printf(p, "unset multiplot\n");
    fpa_render(&A, p, "residual", 12, 8);
    fpl_plot_free(p);

    p = fpl_plot_new();
    fpl_plot_printf(p, "set multiplot layout 2,2 margins 0.08,0.98,0.12,0.94 spacing 0.08,0.1\n"
                       "set xrange [2:%zu]\nset xlabel 'layer (residual block)'\n"
                       "set ylabel 'amplification (inherited out / total in)'\n"
                       "set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead ls 20\n",
                    depth);
    for (int k = 0; k < NPOL; k++) {
        for (int v = 0; v < NVAR; v++) {
            fpl_plot_printf(p, "$a%dv%d << EOD\n", k, v);
            for (size_t l = 1; l < depth; l++) {
                layer_sum_t *s = &S[((size_t)v * NPOL + (size_t)k) * depth + l];
                if (isfinite(s->amp.q90))
                    fpl_plot_printf(p, "%zu %.17g %.17g %.17g\n", l + 1, s->amp.median,
                                    s->amp.q10, s->amp.q90);
            }
            fpl_plot_printf(p, "EOD\n");
        }
        fpl_plot_printf(p, "set title 'policy %s'\n%s", policies[k].name,
                        k == 0 ? "set key at screen 0.5,0.01 center bottom horizontal box\n"
                               : "unset key\n");
        fpl_plot_printf(p, "plot ");
        for (int v = 0; v < NVAR; v++)
            fpl_plot_printf(p, "$a%dv%d u 1:3:4 w filledcurves ls %d notitle, "
                               "$a%dv%d u 1:2 w lp ls %d title '%s'%s",
                            k, v, v + 1, k, v, v + 1, var_label[v], v + 1 < NVAR ? ", " : "\n");
    }
    fpl_plot_printf(p, "unset multiplot\n");
    fpa_render(&A, p, "residual_amplification", 12, 8);
    fpl_plot_free(p);

    /* ---- verdict: bounded with normalisation, growing without? -------------
     * Growth = exponent b of the median total error against depth (fit over
     * layers 2..L); bounded means b < 0.2 (sqrt-like accumulation is 0.5). */
    fpa_verdicts_t *V = fpa_verdicts_open(&A);
    if (!V)
        return fpa_fail(&A, "cannot write verdicts");
    int ln_bounded = 0, ln_total = 0, nonorm_grows = 0, nonorm_total = 0;
    double b_ln_max = -INFINITY, b_no_min = INFINITY, amp_ln = 0;
    const char *worst = "";
    double *ks = malloc(depth * sizeof *ks), *es = malloc(depth * sizeof *es);
    for (int v = 0; v < NVAR; v++)
        for (int k = 0; k < NPOL; k++) {
            size_t m = 0;
            for (size_t l = 1; l < depth; l++) {
                layer_sum_t *s = &S[((size_t)v * NPOL + (size_t)k) * depth + l];
                if (s->total.median > 0 && isfinite(s->total.median)) {
                    ks[m] = (double)(l + 1);
                    es[m++] = s->total.median;
                }
            }
            double b = NAN, lo, hi;
            if (m >= 3)
                fpl_fit_power(ks, es, m, &b, &lo, &hi, NULL);
            if (!isfinite(b))
                b = INFINITY; /* overflowed: certainly not bounded */
            if (v == NONORM) {
                nonorm_total++;
                nonorm_grows += b >= 0.2;
                b_no_min = fmin(b_no_min, b);
            } else {
                ln_total++;
                ln_bounded += b < 0.2;
                if (b > b_ln_max) {
                    b_ln_max = b;
                    worst = var_label[v];
                }
                amp_ln = fmax(amp_ln, S[((size_t)v * NPOL + (size_t)k) * depth + depth - 1].amp.median);
            }
        }
    /* holds: (nearly) every normalised stack bounded while unnormalised ones
     * grow; refuted: at most a quarter of the normalised stacks bounded */
    const char *verdict = 4 * ln_bounded >= 3 * ln_total && nonorm_grows == nonorm_total ? "holds"
                          : 4 * ln_bounded <= ln_total ? "refuted"
                                                       : "conditional";
    fpa_verdict(V, "T2", verdict,
                "with normalisation the error stays bounded (depth exponent < 0.2) in %d/%d "
                "variant-policy pairs (largest exponent %.2f, %s); without it the error grows in "
                "%d/%d (smallest exponent %.2f); per-layer amplification stays near 1 (last layer "
                "at most %.2f), so each layer adds its own error to what it inherits "
                "(d_model %zu, depth %zu)",
                ln_bounded, ln_total, b_ln_max, worst, nonorm_grows, nonorm_total, b_no_min,
                amp_ln, d, depth);
    free(ks);
    free(es);
    if (fpa_verdicts_close(V))
        return fpa_fail(&A, "cannot write verdicts");
    free(S);
    free(R);
    free(tmp);
    return fpa_finish(&A);
}
