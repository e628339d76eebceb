/*md
# 5. LayerNorm against the VAE head: the argument side by side

Notebooks 3 and 4 looked at the two halves separately. Here they are in one
table, in the same formats and in the same unit: the format's own unit
roundoff u. An error of 1 u is as good as one rounding can be. The question
is which computations multiply that unit, and by how much.

- **Stack**: a pre-LN residual stack (d = 128, MLP width 512, GPT-2 gain,
  depth 24), with weights, activations and the residual stream in the
  format. The e4m3 stack keeps its stream in bf16, as FP8 recipes do, and
  every stack accumulates in fp32. We report its relative error after 24
  blocks, and the median amplification of one block.
- **exp**: σ² = e^l at log-variances a VAE emits (l uniform in [−10, 2]),
  with l rounded to the format first.
- **KL near the prior**: the per-element KL at μ, l ∼ N(0, 0.1²), computed
  naively and fused.

All errors are relative, divided by u, and taken as medians.
*/
// nb: hide
#include <math.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "nb.h"

#define NF 4
static const char *const fmts[NF] = {"fp32", "fp16", "bf16", "e4m3"};

static void table(void);

int main(int argc, char **argv)
{
    nb_init(argc, argv);
    table();
    return 0;
}
// nb: show

/* the stack: relative error after the last block, median block amplification */
static void stack(const char *f, double *err, double *amp)
{
    size_t depth = nb_quick ? 8 : 24;
    char spec[128];
    snprintf(spec, sizeof spec, "w=%s,a=%s,acc=fp32,norm=fp32,out=%s", f, f, f);
    fpl_res_policy_t pol = {nb_policy(spec), nb_format(strcmp(f, "e4m3") ? f : "bf16")};
    fpl_resstack_t c = {FPL_RES_PRELN, 128, 512, 2, depth, 1 / sqrt(2.0 * (double)depth)};
    fpl_resstack_report_t *rep = malloc(depth * sizeof *rep);
    double *a = malloc(depth * sizeof *a);
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(g, 7);
    if (fpl_resstack_run(&c, g, &pol, 1, 1, rep)) {
        fprintf(stderr, "notebook: %s\n", fpl_last_error());
        exit(1);
    }
    for (size_t l = 1; l < depth; l++)
        a[l - 1] = rep[l].amplification;
    *err = rep[depth - 1].arith_rel;
    *amp = nb_median(a, depth - 1);
    gsl_rng_free(g);
    free(rep);
    free(a);
}

/* median (and, in *worst, largest) relative error of sigma^2 = e^l,
 * l ~ U[-10, 2] rounded to f */
static double exp_err(const char *f, gsl_rng *g, size_t n, double *worst)
{
    char spec[64];
    snprintf(spec, sizeof spec, "a=%s", f);
    fpl_policy_t p = nb_policy(spec);
    double *e = malloc(n * sizeof *e);
    for (size_t i = 0; i < n; i++) {
        double l = 12 * gsl_rng_uniform(g) - 10, lr = fpl_round(&p.a, l, FPL_RNE, NULL), v;
        fpl_gauss_head(&p, &lr, NULL, &v, 1, NULL, NULL);
        e[i] = fabs(v - exp(l)) / exp(l);
    }
    double m = nb_median(e, n);
    *worst = e[n - 1]; /* nb_median() sorted e */
    free(e);
    return m;
}

/* median relative error of the per-element KL near the prior */
static double kl_err(const char *f, fpl_kl_form_t form, gsl_rng *g, size_t n)
{
    char spec[64];
    snprintf(spec, sizeof spec, "a=%s", f);
    fpl_policy_t p = nb_policy(spec), ex;
    fpl_policy_exact(&ex);
    double *mu = malloc(n * sizeof *mu), *l = malloc(n * sizeof *l), *k = malloc(n * sizeof *k),
           *r = malloc(n * sizeof *r);
    for (size_t i = 0; i < n; i++) {
        mu[i] = gsl_ran_gaussian(g, 0.1);
        l[i] = gsl_ran_gaussian(g, 0.1);
    }
    fpl_kl(&ex, FPL_KL_FUSED, mu, l, r, n, NULL); /* at the exact inputs */
    fpl_round_array(&p.a, mu, mu, n, FPL_RNE, NULL);
    fpl_round_array(&p.a, l, l, n, FPL_RNE, NULL);
    fpl_kl(&p, form, mu, l, k, n, NULL);
    for (size_t i = 0; i < n; i++)
        k[i] = fabs(k[i] - r[i]) / r[i];
    double m = nb_median(k, n);
    free(mu);
    free(l);
    free(k);
    free(r);
    return m;
}

static void table(void)
{
    size_t n = nb_quick ? 2000 : 50000;
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(g, 9);
    fpl_plot_t *fig = fpl_plot_new();
    fpl_plot_printf(fig, "$d << EOD\n");
    printf("%-6s %9s | %12s %10s | %10s %10s | %12s %12s\n", "format", "u", "stack err/u",
           "block amp", "exp err/u", "worst", "KL naive/u", "KL fused/u");
    for (int i = 0; i < NF; i++) {
        double u = nb_format(fmts[i]).unit_roundoff, se, amp;
        stack(fmts[i], &se, &amp);
        double worst, ee = exp_err(fmts[i], g, n, &worst), kn = kl_err(fmts[i], FPL_KL_NAIVE, g, n),
               kf = kl_err(fmts[i], FPL_KL_FUSED, g, n);
        printf("%-6s %9.3g | %12.3g %10.3f | %10.3g %10.3g | %12.3g %12.3g\n", fmts[i], u,
               se / u, amp, ee / u, worst / u, kn / u, kf / u);
        fpl_plot_printf(fig, "%s %.17g %.17g %.17g %.17g\n", fmts[i], se / u, ee / u, kn / u,
                        kf / u);
    }
    fpl_plot_printf(fig, "EOD\nset logscale y\nset format y '10^{%%L}'\n"
                         "set ylabel 'median relative error, in units of the format''s u'\n"
                         "set xrange [-0.5:3.5]\nset key top left\nset yrange [0.1:1000]\n"
                         "plot $d u 0:2:xtic(1) w lp ls 1 pt 7 ps 1.3 title 'residual + LN "
                         "stack, 24 blocks', $d u 0:3 w lp ls 2 pt 5 ps 1.3 title 'σ² = e^l, "
                         "l in [-10, 2] (median)', $d u 0:4 w lp ls 3 pt 9 ps 1.5 title 'KL near the "
                         "prior, naive', $d u 0:5 w lp ls 4 pt 11 ps 1.5 title 'KL near the "
                         "prior, fused', 1 w l ls 8 dt 2 title 'one rounding'\n");
    nb_figure(fig, "side_by_side", 8, 5);
    gsl_rng_free(g);
}
/*md
@output

@figure side_by_side.png The same formats, the same unit: what each computation does to u

Read the table across a row. The residual stack's error after 24 blocks is
2–4 u, and the median block amplifies the error it inherits by 0.997–1.000. Each
block adds about one rounding, and none multiplies what came before, so the
error grows like the square root of the depth. That is why a transformer
body runs in bf16, or even FP8 with scales (the e4m3 stack is below 1 u of
e4m3 because its stream is bf16).

The exponential is different: its condition number is |l|, so it
multiplies the relative error of its input by |l|, whatever algorithm
computes it. The median σ² error is about 1 u. The worst, about 9 u, can
occur anywhere in [−10, −8): there l's spacing is 16 u, so rounding l moves
it by up to 8 u, which becomes a relative error of 8 u in σ², plus one
rounding of σ² itself. e4m3's worst, 16 u = 1/u, is a 100% error: σ²
rounds to 0 when it is below 2⁻¹⁰, half e4m3's smallest subnormal. That
happens for l < ln 2⁻¹⁰ ≈ −6.93 (in fact from −6.75 down, since e4m3
rounds such l to −7 or below), about a quarter of the range.

The KL near the prior is well conditioned: its condition number is at
most about 2 in both l and μ, so a good algorithm can get it to within a
few u. The naive algorithm does not. It rounds e^l ≈ 1, an error of about
u, and then subtracts l + 1, leaving a result of about (μ² + l²/2)/2 that
carries that whole error. Its relative error is therefore about u divided
by the KL, a fixed multiple of u: about 57 u in fp32, fp16 and bf16 alike.
This is instability, a property of the algorithm, not of the problem. The
fused form, which computes g(l) = e^l − 1 − l as one function, gets 0.66 u
in the same three formats. In e4m3, u = 1/16 is larger than
almost every KL value near the prior: the naive form returns 0 for most
points, and its median error is 100% = 16 u.

So the argument is not that VAEs are fragile and transformers robust. Two
different things go wrong in the VAE head. The exponential is ill
conditioned at large |l|: its input must be kept in a wider format, since
no algorithm can recover what rounding l lost. The KL is well conditioned
but was computed by an unstable algorithm: the fix is a better algorithm,
in the same narrow format. A residual + LN block is both well conditioned
(its amplification is about 1) and computed stably. Keep the exponential's
input wide, fuse the KL, and the rest of the model can be as narrow as the
transformer's.

## Exercises

1. Change the logvar range in `exp_err` to [−30, 20], latent diffusion's
   clamp. Which format's column changes most, and is it a precision or a
   range effect?
2. Set the stack's gain to 1 in `stack`. Does its column stay flat across
   formats?
3. Add `fp:e=8,m=10` as a fifth format (bf16's range, fp16's precision).
   Which format does it match in each column?
*/
