/*md
# 2. Dot products: √n·u, stagnation, and the accumulator that matters

Every layer of a network is made of dot products. A dot product of length n
rounds n times, so its error grows with n. This notebook measures how fast
it grows, and finds which of the formats involved sets the rate. The
reference is fplab's exact policy, a compensated dot product in binary64
that is as accurate as twice the working precision.

## The classical bound and the typical error

If every addition rounds with relative error at most u, the computed sum of
n terms is off by at most γₙ = nu/(1 − nu) times Σ|xᵢyᵢ| (Higham, *Accuracy
and Stability of Numerical Algorithms*, §3.1). That is a worst case. When
the rounding errors have random signs they partly cancel, and the typical
error grows like √n·u instead (Higham and Mary, 2019). We measure the median
relative error of x·y over 15 random pairs of vectors with positive entries
(U[0, 1)), with the inputs in bf16 and three choices of accumulator.
*/
// nb: hide
#include <math.h>

#include <gsl/gsl_rng.h>

#include "nb.h"

#define MAXN 16384
#define REPS 15
static double X[MAXN], Y[MAXN];

static void growth(void);
static void stagnation(void);
static void accumulators(void);

int main(int argc, char **argv)
{
    nb_init(argc, argv);
    growth();
    nb_chunk();
    stagnation();
    nb_chunk();
    accumulators();
    return 0;
}
// nb: show

/* median over REPS pairs of vectors of |dot - exact| / exact */
static double median_error(const fpl_policy_t *p, size_t n, int zero_mean, gsl_rng *g)
{
    fpl_policy_t ex;
    fpl_policy_exact(&ex);
    double err[REPS];
    for (int r = 0; r < REPS; r++) {
        for (size_t i = 0; i < n; i++) {
            X[i] = gsl_rng_uniform(g) - (zero_mean ? 0.5 : 0);
            Y[i] = gsl_rng_uniform(g);
        }
        fpl_round_array(&p->a, X, X, n, FPL_RNE, NULL); /* inputs in the format */
        fpl_round_array(&p->a, Y, Y, n, FPL_RNE, NULL);
        double exact = fpl_dot(&ex, X, Y, n, NULL);
        err[r] = fabs(fpl_dot(p, X, Y, n, NULL) - exact) / fabs(exact);
    }
    return nb_median(err, REPS);
}

static void growth(void)
{
    const char *specs[] = {"a=bf16,acc=bf16", "a=bf16,acc=bf16,order=pairwise",
                           "a=bf16,acc=fp32"};
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(g, 1);
    size_t top = nb_quick ? 1024 : MAXN;
    double u = nb_format("bf16").unit_roundoff;
    double err[3][8];
    int m = 0;
    for (size_t n = 16; n <= top; n *= 4, m++)
        for (int k = 0; k < 3; k++) {
            fpl_policy_t p = nb_policy(specs[k]);
            err[k][m] = median_error(&p, n, 0, g);
        }
    printf("%7s %14s %14s %14s %10s %10s\n", "n", "bf16 acc", "bf16 pairwise", "fp32 acc",
           "sqrt(n) u", "gamma_n");
    fpl_plot_t *fig = fpl_plot_new();
    for (int k = 0; k < 3; k++) {
        fpl_plot_printf(fig, "$d%d << EOD\n", k);
        for (int j = 0; j < m; j++)
            fpl_plot_printf(fig, "%zu %.17g\n", (size_t)16 << (2 * j), err[k][j]);
        fpl_plot_printf(fig, "EOD\n");
    }
    for (int j = 0; j < m; j++) {
        size_t n = (size_t)16 << (2 * j);
        printf("%7zu %14.3g %14.3g %14.3g %10.3g %10.3g\n", n, err[0][j], err[1][j], err[2][j],
               sqrt((double)n) * u, fpl_gamma(n, u));
    }
    fpl_plot_printf(fig, "set logscale xy\nset format y '10^{%%L}'\nset xlabel 'n'\n"
                         "set ylabel 'median relative error'\nset key bottom right\n"
                         "plot [16:%zu] [1e-9:10] $d0 w lp ls 1 pt 7 title 'bf16 accumulator', "
                         "$d1 w lp ls 2 pt 7 title 'bf16, pairwise order', $d2 w lp ls 3 pt 7 "
                         "title 'fp32 accumulator', sqrt(x)*%.17g w l ls 8 dt 2 title '√n·u "
                         "(bf16)', (x*%.17g < 1 ? x*%.17g/(1-x*%.17g) : 1/0) w l ls 8 dt 3 "
                         "title 'γ_n (bf16), finite below n = 1/u'\n",
                    top, u, u, u, u);
    nb_figure(fig, "growth", 8, 5);
    gsl_rng_free(g);
}
/*md
@output

@figure growth.png Median relative error of bf16 dot products of positive data

With a bf16 accumulator the error grows much faster than √n·u. From n = 64
to n = 1 024 it grows 45-fold while n grows 16-fold, so it outpaces even
linear growth, and at n = 16 384 it is of order one. (γₙ is infinite from
n = 1/u = 256 on: the worst-case bound then says nothing.) This is not a
random walk. All the terms are positive, so the partial sum only grows,
while each new term stays below 1. Once the sum is large enough, half its
spacing exceeds most terms, and they are rounded away. Every error then has
the same sign. The next section shows this *stagnation* directly.

Pairwise order adds numbers of similar size. Its worst-case bound grows
only like log₂(n)·u, and the measured error shows no trend at all: it stays
between 0.001 and 0.0033, below u = 0.0039, at every length. At these
lengths the last rounding dominates: the final addition rounds the whole
sum to bf16, which alone can cost up to u, and its typical error, a
fraction of u, is the size of what the column shows.

An fp32 accumulator moves the whole problem 16 bits further out. With bf16
inputs the products are exact in fp32's 24 bits, and the error grows from
0 at n = 16 to 9.6·10⁻⁷ (about 16 fp32 u) at n = 16 384.

## Stagnation

The extreme case: add 1 to itself, in the format.
*/
static void stagnation(void)
{
    const char *names[] = {"bf16", "fp16", "e4m3", "fp32"};
    for (int k = 0; k < 4; k++) {
        fpl_format_t f = nb_format(names[k]);
        double s = 0;
        long i;
        for (i = 0; i < 100000000; i++) {
            double t = fpl_round(&f, s + 1, FPL_RNE, NULL);
            if (t == s)
                break;
            s = t;
        }
        printf("%-5s: 1 + 1 + ... stops growing at %g (= 2^%d, the format has %d significant bits)\n",
               names[k], s, (int)log2(s), f.mbits + 1);
    }
}
/*md
@output

A sum stops growing when 1 is half the spacing at the sum, that is at
2ᵖ for p significant bits. Then s + 1 is a tie, and ties go to the even
neighbour s. A bf16 counter cannot count past 256. This is why matrix
hardware generally does not accumulate in bf16: tensor cores, for example,
take bf16 or FP8 inputs and accumulate in fp32 (or, for FP8 on Hopper, in a fixed-point register with about 13
fraction bits, which the `dot` analysis models).

## The accumulator is what matters

Which format matters more, the inputs' or the accumulator's? Here are dot
products of length 4 096 with zero-mean data, where errors can cancel, for
every combination.
*/
static void accumulators(void)
{
    const char *in[] = {"fp32", "bf16", "e4m3"}, *acc[] = {"fp32", "bf16"};
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(g, 2);
    size_t n = nb_quick ? 1024 : 4096;
    printf("n = %zu, median relative error (inputs rounded to the format, error against the\n"
           "exact dot product of the rounded inputs)\n", n);
    printf("%-8s %12s %12s\n", "inputs", "fp32 acc", "bf16 acc");
    for (int i = 0; i < 3; i++) {
        printf("%-8s", in[i]);
        for (int j = 0; j < 2; j++) {
            char spec[64];
            snprintf(spec, sizeof spec, "a=%s,acc=%s", in[i], acc[j]);
            fpl_policy_t p = nb_policy(spec);
            printf(" %12.3g", median_error(&p, n, 1, g));
        }
        printf("\n");
    }
    gsl_rng_free(g);
}
/*md
@output

The columns differ by orders of magnitude, and the rows barely differ. This
measures the arithmetic alone: the inputs are already in the format, and
the reference is the exact dot product of those rounded inputs. Rounding
the inputs changes the problem being solved, by about u per element of the
input format, but it does not set how the arithmetic's own error grows with
n. The accumulator sets that. e4m3 inputs with an fp32 accumulator even come
out exact. Their products lie on a grid of 2⁻¹⁸ and carry at most 8
significant bits, and zero-mean partial sums of this length are small, so
almost every partial sum fits in fp32's 24 bits.

## Exercises

1. In `growth`, give the data zero mean (`median_error(&p, n, 1, g)`).
   The relative error bound becomes γₙ·Σ|xᵢyᵢ| / |Σxᵢyᵢ|, far larger than
   γₙ. Is the measured bf16-accumulator error larger or smaller than with
   positive data, and how does it grow with n? Explain with the sign of the
   errors.
2. Add the policy `a=bf16,acc=bf16,order=blocked:32,promote=fp32` (32 terms
   in bf16, then promoted to fp32). Where does its curve land, and why?
3. In `stagnation`, predict where `fp:e=8,m=10` stops before you run it.
*/
