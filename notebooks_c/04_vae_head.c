/*md
# 4. The VAE head: exp(logvar), the KL cancellation, range against precision

A variational autoencoder's encoder emits, per latent dimension, a mean μ
and a log-variance l = log σ². The model then computes three things:
σ = e^(l/2), a sample z = μ + σε, and the KL term ½(μ² + e^l − l − 1),
which pulls the latent towards N(0, 1). Each of the three is a classic
numerical trap. This notebook shows them one at a time with fplab's `vae`
kernels, which round every operation as a policy says.

## exp turns an absolute error into a relative one

The head emits l in the format, so l is already rounded. Its relative error
is up to u, so its absolute error is up to |l|·u. Since d(e^l) = e^l·dl,
σ² = e^l then carries a *relative* error of |l|·u, and σ half of it. A
large |l| magnifies the format's roundoff.
*/
// nb: hide
#include <math.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "nb.h"

static void exp_error(void);
static void kl_cancel(void);
static void kl_plane(void);

int main(int argc, char **argv)
{
    nb_init(argc, argv);
    exp_error();
    nb_chunk();
    kl_cancel();
    nb_chunk();
    kl_plane();
    return 0;
}
// nb: show

/* sigma^2 = e^l for l rounded to the format, against e^l at the exact l */
static double var_in(const fpl_policy_t *p, double l)
{
    double lr = fpl_round(&p->a, l, FPL_RNE, NULL), v;
    fpl_gauss_head(p, &lr, NULL, &v, 1, NULL, NULL);
    return v;
}

static void exp_error(void)
{
    const double ls[] = {-20, -16, -10, -3.3, 0.7, 5.3, 10.4, 11.05, 11.2, 20};
    printf("%8s %12s %10s %12s %10s %10s\n", "logvar", "fp16 var", "rel.err", "bf16 var",
           "rel.err", "|l|u + u");
    fpl_plot_t *fig = fpl_plot_new();
    for (int k = 0; k < 2; k++) {
        fpl_policy_t p = nb_policy(k ? "a=bf16" : "a=fp16");
        fpl_plot_printf(fig, "$d%d << EOD\n", k);
        for (double l = -30; l <= 20.0001; l += nb_quick ? 0.1 : 0.01) {
            double v = var_in(&p, l), r = fabs(v - exp(l)) / exp(l);
            fpl_plot_printf(fig, "%.17g %.17g\n", l, isfinite(r) && r > 0 ? fmin(r, 10) : 10);
        }
        fpl_plot_printf(fig, "EOD\n");
    }
    double u16 = nb_format("fp16").unit_roundoff, ub = nb_format("bf16").unit_roundoff;
    for (int i = 0; i < 10; i++) {
        double l = ls[i], e = exp(l);
        fpl_policy_t h = nb_policy("a=fp16"), b = nb_policy("a=bf16");
        double vh = var_in(&h, l), vb = var_in(&b, l);
        printf("%8.2f %12.5g %10.2e %12.5g %10.2e %10.2e\n", l, vh, fabs(vh - e) / e, vb,
               fabs(vb - e) / e, fabs(l) * ub + ub);
    }
    fpl_plot_printf(fig, "set logscale y\nset format y '10^{%%L}'\nset xlabel 'logvar l'\n"
                         "set ylabel 'relative error of σ² = e^l'\nset key top left\n"
                         "set yrange [1e-7:20]\n"
                         "set object 1 rect from 11.09,1e-7 to 20,20 fc rgb '#fde0dd' fs solid "
                         "0.5 noborder behind\n"
                         "set object 2 rect from -30,1e-7 to -17.33,20 fc rgb '#deebf7' fs solid "
                         "0.5 noborder behind\n"
                         "set object 3 rect from -17.33,1e-7 to -9.70,20 fc rgb '#f0f0f0' fs solid "
                         "0.5 noborder behind\n"
                         "set label 'fp16 overflows' at 12,3e-7\nset label '(inf, drawn at 10)' at 12,1.2e-7\n"
                         "set label 'fp16: σ² = 0' at -29,3e-7\nset label '(error 1)' at -29,1.2e-7\n"
                         "set label 'fp16 subnormal' at -17,3e-7\n"
                         "set xrange [-30:20]\nplot $d1 w p ls 2 pt 7 ps 0.12 title 'bf16', $d0 w p ls 1 pt 7 ps 0.12 title 'fp16', "
                         "(abs(x)+1)*%.17g w l ls 1 dt 2 lw 2 title '|l|u + u (fp16)', "
                         "(abs(x)+1)*%.17g w l ls 2 dt 2 lw 2 title '|l|u + u (bf16)'\n",
                    u16, ub);
    nb_figure(fig, "exp", 9, 5);
}
/*md
@output

@figure exp.png Relative error of σ² = e^l for l emitted in fp16 or bf16; shaded: where fp16's σ² overflows, is subnormal, or is 0

The two formats fail in different ways. bf16 never leaves its range here.
Its error stays under the first-order line |l|u + u, which reaches 8% at
|l| = 20, and it comes close to the line at many l. That is a *precision*
failure, and it grows with |l|. fp16's
error is eight times smaller inside its normal range, but the range ends.
e^l passes 65 504 at l = ln 65 504 ≈ 11.09 and becomes infinite. Below
l = ln 2⁻¹⁴ ≈ −9.70 (grey) σ² is an fp16 subnormal, with fewer significant
bits the smaller it gets: the −10 row is already subnormal, though its
error is still below u. Below l ≈ −15 the error can exceed 10% (the −16
row is off by 5.9%), and below l = ln 2⁻²⁵ ≈ −17.33 (blue) σ² rounds to 0.
Those are *range* failures: the precision of l does not cause them, and
more of it would not help. Latent diffusion clamps l to [−30, 20], which
protects σ = e^(l/2)
but not σ².

## The KL term cancels near the prior

A well-trained VAE keeps many latents close to the prior: μ ≈ 0 and l ≈ 0.
Then e^l − l − 1 ≈ l²/2 is computed as a difference of numbers near 1, and
rounding e^l to the format leaves an error of about u. When l²/2 is
smaller than u, the result is noise, and it can be negative. The stable
form evaluates expm1(l) − l instead. The fused form computes
g(l) = e^l − 1 − l as a single correctly rounded function.
*/
static void kl_cancel(void)
{
    const double mu[] = {0.01, 0.003, 0.0, 0.05}, lv[] = {0.02, -0.015, 0.004, -0.1};
    const fpl_kl_form_t forms[] = {FPL_KL_NAIVE, FPL_KL_STABLE, FPL_KL_FUSED};
    fpl_policy_t ex;
    fpl_policy_exact(&ex);
    printf("%7s %7s %12s | %-36s | %-36s\n", "mu", "l", "exact KL", "bf16: naive / stable / fused",
           "fp16: naive / stable / fused");
    for (int i = 0; i < 4; i++) {
        double ref;
        fpl_kl(&ex, FPL_KL_FUSED, &mu[i], &lv[i], &ref, 1, NULL);
        printf("%7.3f %7.3f %12.4e |", mu[i], lv[i], ref);
        for (int k = 0; k < 2; k++) {
            fpl_policy_t p = nb_policy(k ? "a=fp16" : "a=bf16");
            double m = fpl_round(&p.a, mu[i], FPL_RNE, NULL), l = fpl_round(&p.a, lv[i], FPL_RNE, NULL);
            for (int f = 0; f < 3; f++) {
                double kl;
                fpl_kl(&p, forms[f], &m, &l, &kl, 1, NULL);
                printf(" %11.3e", kl);
            }
            printf(" |");
        }
        printf("\n");
    }
}
/*md
@output

The naive column is badly wrong. In bf16 it returns exactly 0 for the
three points nearest the prior. μ² is absorbed by e^l ≈ 1, e^l is rounded to
a multiple of 2⁻⁷ ≈ 0.008 near 1, and e^l − l then rounds back to 1, so
subtracting 1 leaves nothing. In fp16 the first point comes out three
times too large. Over many points the naive form also goes negative, which
a KL divergence never is (next section). The stable form is never negative, because rounding is monotone and
RN(expm1(l)) ≥ RN(l) = l. It still cancels, though: expm1(l) and l are both
about l, and their difference is about l²/2. Only the fused form is
accurate everywhere near the prior. Note that the inputs were rounded to the
format first (μ = 0.003 is not a bf16 value). The reference uses the exact
inputs, so part of each error is the input's own rounding.

## How far from the prior the trouble reaches

Over a grid of (μ, l), the share of points where each form is more than
10% off in bf16, and where it goes negative:
*/
static void kl_plane(void)
{
    const fpl_kl_form_t forms[] = {FPL_KL_NAIVE, FPL_KL_STABLE, FPL_KL_FUSED};
    const char *names[] = {"naive", "stable", "fused"};
    fpl_policy_t ex, p = nb_policy("a=bf16");
    fpl_policy_exact(&ex);
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(g, 4);
    size_t n = nb_quick ? 2000 : 200000;
    double *mu = malloc(n * sizeof *mu), *l = malloc(n * sizeof *l), *ref = malloc(n * sizeof *ref),
           *kl = malloc(n * sizeof *kl);
    for (int near = 1; near >= 0; near--) {
        /* near the prior: mu, l ~ N(0, 0.1^2); or spread: mu ~ U[-3,3], l ~ U[-6,6] */
        for (size_t i = 0; i < n; i++) {
            mu[i] = fpl_round(&p.a, near ? gsl_ran_gaussian(g, 0.1) : 6 * gsl_rng_uniform(g) - 3,
                              FPL_RNE, NULL);
            l[i] = fpl_round(&p.a, near ? gsl_ran_gaussian(g, 0.1) : 12 * gsl_rng_uniform(g) - 6,
                             FPL_RNE, NULL);
        }
        fpl_kl(&ex, FPL_KL_FUSED, mu, l, ref, n, NULL); /* at the rounded inputs */
        printf("%s:\n", near ? "near the prior, mu, l ~ N(0, 0.1^2)"
                             : "spread out, mu ~ U[-3, 3], l ~ U[-6, 6]");
        for (int f = 0; f < 3; f++) {
            fpl_kl(&p, forms[f], mu, l, kl, n, NULL);
            size_t bad = 0, neg = 0;
            for (size_t i = 0; i < n; i++) {
                bad += ref[i] > 0 ? fabs(kl[i] - ref[i]) > 0.1 * ref[i] : kl[i] != 0;
                neg += kl[i] < 0;
            }
            printf("  %-7s more than 10%% off: %6.2f%%   negative: %6.2f%%\n", names[f],
                   100.0 * (double)bad / (double)n, 100.0 * (double)neg / (double)n);
        }
    }
    gsl_rng_free(g);
    free(mu);
    free(l);
    free(ref);
    free(kl);
}
/*md
@output

Near the prior, the naive form is unusable in bf16, and the stable form is
much better but not clean. Spread over the plane, all three forms are fine
almost everywhere. The failure is concentrated exactly where a trained
VAE's latents spend their time. The `vae_head` analysis (claims V1–V3)
measures this over a 601 × 601 grid, in five formats, with both
references, and adds the error of summing KL over a latent of 16 384
elements.

## Exercises

1. In `exp_error`, add `a=fp:e=5,m=7` (fp16's range, bf16's precision).
   Which failure does it inherit from which parent?
2. In `kl_cancel`, find the largest |l| at which the naive bf16 KL is still
   more than 10% off for μ = 0. Predict it from l²/2 ≈ u first.
3. Sum the 200 000 near-prior KL values of `kl_plane` with
   `fpl_kl_sum` under `a=bf16,acc=bf16` and under `a=bf16,acc=fp32`.
   Which accumulator would you ship?
*/
