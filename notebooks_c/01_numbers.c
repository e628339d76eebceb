/*md
# 1. What a number is

A low-precision format is a finite set of numbers, and every operation
rounds its exact result to one of them. This notebook examines that set
for the formats ML uses. You will see how far apart its members are, where
it ends, and what each rounding mode does with the values in between. Every
number below was printed by the program on this page, and fplab checks its
arithmetic against MPFR.

We start with the properties fplab derives from each format's definition.
*/
// nb: hide
#include <math.h>

#include "nb.h"

static void properties(void);
static void e4m3_edge(void);
static void bf16_vs_fp16(void);
static void modes(void);
static void stochastic(void);
static void spacing_figure(void);

int main(int argc, char **argv)
{
    nb_init(argc, argv);
    properties();
    nb_chunk();
    e4m3_edge();
    nb_chunk();
    bf16_vs_fp16();
    nb_chunk();
    modes();
    nb_chunk();
    stochastic();
    spacing_figure();
    return 0;
}
// nb: show

static void properties(void)
{
    const char *names[] = {"fp32", "fp16", "bf16", "e4m3", "e5m2"};
    printf("%-6s %5s %12s %12s %12s %12s\n", "format", "bits", "largest", "min normal",
           "min subnorm", "u = 2^-p");
    for (int i = 0; i < 5; i++) {
        fpl_format_t f = nb_format(names[i]);
        printf("%-6s %5d %12.6g %12.6g %12.6g %12.6g\n", names[i], f.nbits, f.max_finite,
               f.min_normal, f.min_positive, f.unit_roundoff);
    }
}
/*md
@output

The unit roundoff u bounds the relative error of one rounding to nearest, as
long as the result is neither too large for the format nor in its subnormal
range. fp16 and bf16 have the same width but split their 16 bits
differently. fp16 keeps 11 significant bits (u = 2⁻¹¹) and tops out at
65 504. bf16 keeps fp32's 8 exponent bits, so it reaches 3·10³⁸ with only 8
significant bits (u = 2⁻⁸). The two FP8 formats make the same trade within
8 bits: e4m3 keeps more precision (u = 2⁻⁴, max 448), e5m2 more range
(u = 2⁻³, max 57 344). Neither beats a 16-bit format on its own ground:
e5m2 ends below fp16's 65 504, and e4m3 is far coarser than bf16.

## Where e4m3 ends

OCP's e4m3 has no infinity. Its largest value is 448 = 1.75·2⁸. The code
that would hold the next value of the same binade [256, 512), 480 = 1.875·2⁸,
is reserved for NaN. So what happens to 464, the midpoint between 448 and
the 480 that does not exist?
*/
static void e4m3_edge(void)
{
    fpl_format_t f = nb_format("e4m3"), sat = f;
    fpl_format_set_overflow(&sat, FPL_OVERFLOW_SATURATE);
    const double xs[] = {440, 448, 463.9, 464, 464.1, 1000};
    printf("%8s %12s %12s\n", "x", "e4m3", "saturating");
    for (int i = 0; i < 6; i++)
        printf("%8g %12g %12g\n", xs[i], fpl_round(&f, xs[i], FPL_RNE, NULL),
               fpl_round(&sat, xs[i], FPL_RNE, NULL));
}
/*md
@output

Rounding to nearest acts as if 480 were representable. 464 ties with 480
and goes to the even neighbour, 448. Anything above 464 rounds to a value
e4m3 cannot hold, and becomes NaN, as ml_dtypes and the OCP specification
say. Hardware conversions usually saturate instead
("satfinite"), which is the second column. An FP8 recipe therefore scales
each tensor into range before it rounds (notebook 7 shows scales at work).

## bf16 against fp16: range or precision

The same 16 bits buy either range or precision. Here are a few values
rounded to each.
*/
static void bf16_vs_fp16(void)
{
    fpl_format_t h = nb_format("fp16"), b = nb_format("bf16");
    const double xs[] = {1.0 / 3, 1 + 0x1p-9, 1e-6, 1e-9, 70000, 1e20};
    printf("%14s %24s %24s\n", "x", "fp16 (rel. error)", "bf16 (rel. error)");
    for (int i = 0; i < 6; i++) {
        double x = xs[i], rh = fpl_round(&h, x, FPL_RNE, NULL), rb = fpl_round(&b, x, FPL_RNE, NULL);
        printf("%14.9g %14.7g (%7.1e) %14.7g (%7.1e)\n", x, rh, fabs(rh - x) / x, rb,
               fabs(rb - x) / x);
    }
}
/*md
@output

fp16's relative error is about eight times smaller wherever both formats
are in range: 2⁻¹¹ against 2⁻⁸. It loses relative accuracy below 6·10⁻⁵,
where its subnormals start, and becomes 0 below 3·10⁻⁸. It overflows to
infinity from 65 520 on, the midpoint between 65 504 and 2¹⁶ (values below
it round down to 65 504). bf16 represents all of these values with the
same coarse relative error. That is why bf16 trains without loss scaling
and fp16 needs it.

## Rounding modes

Between two neighbours a and b, each rounding mode picks one by its own
rule. x = 1 + 3·2⁻¹⁰ lies between the bf16 neighbours 1 and 1 + 2⁻⁷.
The negative value of the same magnitude shows the direction of each mode.
*/
static void modes(void)
{
    fpl_format_t b = nb_format("bf16");
    const char *names[] = {"rne", "rna", "rtz", "rup", "rdown"};
    const fpl_rmode_t m[] = {FPL_RNE, FPL_RNA, FPL_RTZ, FPL_RUP, FPL_RDOWN};
    double x = 1 + 3 * 0x1p-10, tie = 1 + 0x1p-8;
    printf("%-6s %18s %18s %18s\n", "mode", "1+3*2^-10", "-(1+3*2^-10)", "1+2^-8 (a tie)");
    for (int i = 0; i < 5; i++)
        printf("%-6s %18a %18a %18a\n", names[i], fpl_round(&b, x, m[i], NULL),
               fpl_round(&b, -x, m[i], NULL), fpl_round(&b, tie, m[i], NULL));
}
/*md
@output

The last column shows a tie. 1 + 2⁻⁸ lies exactly halfway between 1 and
1 + 2⁻⁷. Ties-to-even picks 1, whose last bit is 0, and ties-away picks
1 + 2⁻⁷. The directed modes ignore ties.

## Stochastic rounding

Stochastic rounding (SR) rounds up with probability equal to the distance
to the lower neighbour, measured in units of the gap. Its expected value is
the exact value. This matters for long sums of small increments. A bf16
running sum of 0.001, repeated 4 096 times, stops growing under round to
nearest: once the sum is large, each increment is less than half a gap, and
rounding sends it back.
*/
static void stochastic(void)
{
    fpl_format_t b = nb_format("bf16");
    fpl_sr_t sr = FPL_SR_INIT;
    fpl_sr_seed(&sr, 42);
    int n = nb_quick ? 1024 : 4096;
    double rn = 0, s = 0;
    for (int i = 0; i < n; i++) {
        rn = fpl_round(&b, rn + 0.001, FPL_RNE, NULL);
        s = fpl_round(&b, s + 0.001, FPL_SR, &sr);
    }
    printf("sum of %d x 0.001 = %g exactly\n", n, n * 0.001);
    printf("bf16, round to nearest: %g\n", rn);
    printf("bf16, stochastic:       %g\n", s);
    double mean = 0;
    int reps = 10000;
    for (int i = 0; i < reps; i++)
        mean += fpl_round(&b, 1 + 0x1p-10, FPL_SR, &sr);
    printf("mean of %d SR roundings of 1+2^-10: 1 + %.4f * 2^-10 (RNE gives 1)\n", reps,
           (mean / reps - 1) * 1024);
}
/*md
@output

Round to nearest stalls at 0.5, where the gap between bf16 values (2⁻⁸)
first exceeds twice the increment. Stochastic rounding keeps the sum's expected value
on track, at the cost of some variance.

## The spacing of the numbers

Each format's numbers are evenly spaced within a binade, and the spacing
doubles from one binade to the next. The figure shows the gap between each
value and the next one, for every positive value of the FP8 formats and
every 16th value of the 16-bit formats. It is read straight off the
encodings. On a log–log plot each format draws a staircase. Its slope is 1,
because the gap is proportional to the value in the normal range. The flat
stretch on the left is the subnormal range, where the gap stays constant.
bf16's staircase runs on far beyond both edges of the plot, from 2⁻¹³³ to
2¹²⁷.
*/
static void spacing_figure(void)
{
    const char *names[] = {"fp16", "bf16", "e4m3", "e5m2"};
    fpl_plot_t *p = fpl_plot_new();
    fpl_plot_printf(p, "set logscale xy 2\nset xtics 2**4\nset ytics 2**4\nset format x '2^{%%L}'\nset format y '2^{%%L}'\n"
                       "set xlabel 'value x'\nset ylabel 'gap to the next value'\n"
                       "set key top left\nset xrange [2**-26:2**17]\nset yrange [2**-28:2**12]\n");
    for (int i = 0; i < 4; i++) {
        fpl_format_t f = nb_format(names[i]);
        uint64_t step = f.nbits > 8 ? 16 : 1, top = (uint64_t)1 << (f.nbits - 1);
        fpl_plot_printf(p, "$d%d << EOD\n", i);
        for (uint64_t c = 1; c + step < top; c += step) {
            double v = fpl_format_decode(&f, c), w = fpl_format_decode(&f, c + 1);
            if (isfinite(v) && isfinite(w) && w > v)
                fpl_plot_printf(p, "%.17g %.17g\n", v, w - v);
        }
        fpl_plot_printf(p, "EOD\n");
    }
    fpl_plot_printf(p, "plot $d0 w l ls 1 lw 2 title 'fp16', $d1 w l ls 2 lw 2 title 'bf16', "
                       "$d2 w lp ls 3 pt 7 ps 0.4 title 'e4m3', $d3 w lp ls 4 pt 7 ps 0.4 "
                       "title 'e5m2'\n");
    nb_figure(p, "spacing", 8, 5);
}
/*md
@figure spacing.png The gap between neighbouring values of four formats

## Exercises

1. Change `nb_format("e4m3")` in `e4m3_edge` to `nb_format("e5m2")`,
   which has infinities, and change `xs` to probe its edge. Explain why
   61 440 rounds to infinity there.
2. In `stochastic`, find the value at which the round-to-nearest sum stalls
   for an increment of 0.01, and predict it from the gap before you run it.
3. Add `fp:e=5,m=7` (fp16's range with bf16's precision) to `properties` and
   to `bf16_vs_fp16`. Which column of the second table does it follow?
*/
