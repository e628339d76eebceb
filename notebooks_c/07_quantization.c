/*md
# 7. Quantization: granularity, outliers, and what INT4 needs

Quantizing weights to b-bit integers means storing each value as a small
integer code times a scale. One scale shared by many values saves bits, but
the shared scale has to fit the largest of them. This notebook measures the
cost of that trade. It uses SQNR, the signal-to-quantization-noise ratio in
decibels: 10·log₁₀(‖W‖² / ‖W − Q(W)‖²). It compares schemes against the bits
per value they really store, scales included. Every scheme is fplab's own
implementation, with packed bytes that are read back; the GGUF ones follow
ggml's reference code.

## Gaussian weights, and weights with outlier rows

The tensors have 256 rows of 2 048 values. The first tensor is Gaussian.
The second is the same tensor with 4 rows scaled by 10, like the few
channels with large weights that trained networks often have.
*/
// nb: hide
#include <math.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "nb.h"

static void schemes_table(void);
static void outlier_columns(void);

int main(int argc, char **argv)
{
    nb_init(argc, argv);
    schemes_table();
    nb_chunk();
    outlier_columns();
    return 0;
}

static double sqnr_db(const double *x, const double *y, size_t n)
{
    double s = 0, e = 0;
    for (size_t i = 0; i < n; i++) {
        s += x[i] * x[i];
        e += (x[i] - y[i]) * (x[i] - y[i]);
    }
    return e > 0 ? 10 * log10(s / e) : INFINITY;
}

static fpl_quant_t scheme(const char *name)
{
    fpl_quant_t q;
    if (fpl_quant_parse(name, &q)) {
        fprintf(stderr, "notebook: %s\n", fpl_last_error());
        exit(1);
    }
    return q;
}
// nb: show

#define ROWS 256
#define COLS 2048

static void schemes_table(void)
{
    const char *names[] = {"int8", "int8:channel", "int4", "int4:channel", "int4:g128",
                           "int4:g32", "q8_0", "q4_0", "q4_K", "mxfp4", "nvfp4"};
    const int ns = 11;
    size_t rows = nb_quick ? 64 : ROWS, n = rows * COLS;
    double *W = malloc(n * sizeof *W), *O = malloc(n * sizeof *O), *Q = malloc(n * sizeof *Q);
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(g, 5);
    for (size_t i = 0; i < n; i++)
        W[i] = gsl_ran_gaussian(g, 0.02);
    memcpy(O, W, n * sizeof *O);
    for (size_t r = 0; r < 4; r++) /* four loud rows */
        for (size_t c = 0; c < COLS; c++)
            O[(r * rows / 4) * COLS + c] *= 10;
    fpl_plot_t *fig = fpl_plot_new();
    fpl_plot_printf(fig, "$d << EOD\n");
    printf("%-14s %10s %14s %16s\n", "scheme", "bits/value", "Gaussian (dB)", "outlier rows (dB)");
    for (int s = 0; s < ns; s++) {
        fpl_quant_t q = scheme(names[s]);
        double bpv = fpl_quant_bits_per_weight(&q, rows, COLS);
        fpl_quant_apply(&q, W, rows, COLS, Q);
        double a = sqnr_db(W, Q, n);
        fpl_quant_apply(&q, O, rows, COLS, Q);
        double b = sqnr_db(O, Q, n);
        printf("%-14s %10.3f %14.1f %16.1f\n", names[s], bpv, a, b);
        fpl_plot_printf(fig, "%.17g %.17g %.17g \"%s\"\n", bpv, a, b, names[s]);
    }
    fpl_plot_printf(fig, "EOD\nset xlabel 'bits per value (scales included)'\n"
                         "set ylabel 'SQNR (dB)'\nset key bottom right\nset xrange [3.5:9]\n"
                         "set termoption noenhanced\n"
                         "plot 6.02*x - 10 w l ls 8 dt 2 title "
                         "'6.02 dB per bit', $d u 1:2 w p ls 1 pt 7 ps 1.2 title 'Gaussian', "
                         "$d u 1:3 w p ls 2 pt 4 ps 1.8 lw 1.5 title '4 rows x10', "
                         "$d u 1:2:4 w labels offset 0.8,0.6 left font ',8' notitle\n");
    nb_figure(fig, "sqnr", 9, 5.5);
    gsl_rng_free(g);
    free(W);
    free(O);
    free(Q);
}
/*md
@output

@figure sqnr.png SQNR against bits per value; the dashed line adds 6.02 dB per bit

Each extra bit buys about 6 dB, the dashed line, so the schemes can be
compared across bit widths. On Gaussian weights, INT8 with one scale per
tensor already reaches 39 dB. Finer scales move INT4 from 13.8 dB (per
tensor, 4 bits) to 20.3 dB (groups of 32). But each group of 32 stores a
32-bit scale, a whole extra bit per value (5.000 bits), and +6.5 dB is just
what the 6 dB-per-bit line predicts for one bit. q4_0, with a 16-bit scale
per 32 values, gets 21.3 dB at 4.5 bits, better for fewer bits. The 4-bit
GGUF, MX and NVFP4 block formats land in a band of 19–23 dB at 4.25–4.5 bits.

The outlier rows change the picture for the schemes with one scale per
tensor. The four loud rows set the scale for all 256 rows, so the quiet
rows keep only a few of the available levels. INT4 falls from 13.8 to
4.1 dB, and even INT8 falls from 39 to 25 dB. Any scale that follows the
rows recovers everything: per channel, groups within a row, and the block
formats. The loud rows get their own scale, and the quiet rows keep theirs.

## Outliers along the reduction dimension

Activations behave differently. Outliers there are *features*: the same
few input dimensions are large in every token. For a weight matrix, the
matching case is columns. Per-row scales cannot separate a loud column from
the quiet values in its row, but groups along the row can: only the group
that holds the column pays for it. Below, a 64 × 2 048 tensor has 8 columns
scaled by 20.
*/
static void outlier_columns(void)
{
    const char *names[] = {"int4", "int4:channel", "int4:g128", "int4:g32", "int8:channel"};
    size_t rows = 64, n = rows * COLS;
    double *A = malloc(n * sizeof *A), *Q = malloc(n * sizeof *Q);
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(g, 6);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < COLS; c++)
            A[r * COLS + c] = gsl_ran_gaussian(g, 1.0) * (c % 256 == 17 ? 20 : 1);
    printf("%-14s %10s %10s\n", "scheme", "bits/value", "SQNR (dB)");
    for (int s = 0; s < 5; s++) {
        fpl_quant_t q = scheme(names[s]);
        fpl_quant_apply(&q, A, rows, COLS, Q);
        printf("%-14s %10.3f %10.1f\n", names[s], fpl_quant_bits_per_weight(&q, rows, COLS),
               sqnr_db(A, Q, n));
    }
    gsl_rng_free(g);
    free(A);
    free(Q);
}
/*md
@output

Now per channel is barely better than per tensor (4.7 against 4.1 dB),
because every row holds loud values. Groups of 32 reach 16.7 dB, 12 dB more
than per channel, because 7 of every 8 groups hold no outlier. Groups of
128 are halfway there: half of them hold one. This is why INT4 schemes for
LLMs use small groups, or first move the outliers out by rotating them, or
by smoothing them into the weights.
The `granularity` analysis (claim T5) measures all of this over
many tensors, with confidence intervals, together with its effect on the
output of a matrix product.

## Exercises

1. Change the outlier factor in `schemes_table` from 10 to 100. The
   whole-tensor SQNR is now dominated by the loud rows: INT4 per tensor
   even rises, to 15.2 dB. Add a column with the SQNR of the 252 quiet rows
   alone. Which schemes zero the quiet rows, and which keep them intact?
2. Add `int4:g32:asym` (a zero point per group) to the first table. On which
   tensor does the asymmetric code help, and why so little on the
   Gaussian one?
3. In `outlier_columns`, put the loud columns next to each other (c < 8).
   What happens to the group schemes, and why?
*/
