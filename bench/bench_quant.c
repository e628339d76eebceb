/* bench_quant.c -- quantize + dequantize throughput per scheme (make bench) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "fplab.h"

/* CPU time of this thread: other jobs on a shared machine do not count */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void)
{
    const char *schemes[] = {"q8_0",         "q4_0",      "q4_1",          "q4_K",
                             "int8:channel", "int4:g128", "int4:g32:asym", "mxfp8_e4m3",
                             "mxfp6_e3m2",   "mxfp4",     "mxint8",        "nvfp4"};
    const size_t rows = 1024, cols = 4096, n = rows * cols;
    double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    for (size_t i = 0; i < n; i++)
        x[i] = gsl_ran_gaussian(g, 0.02);
    printf("# fplab %s quantize + dequantize of a %zu x %zu tensor, single thread, "
           "thread CPU time, best of 3\n",
           fpl_version(), rows, cols);
    printf("# target: >= 100 M values/s for q4_K, >= 250 M values/s for every other scheme\n");
    printf("%-16s %10s %12s %8s %s\n", "scheme", "bits/value", "M values/s", "target", "status");
    int misses = 0;
    for (size_t s = 0; s < sizeof schemes / sizeof schemes[0]; s++) {
        fpl_quant_t q;
        fpl_quant_parse(schemes[s], &q);
        double best = 1e300;
        for (int t = 0; t < 3; t++) {
            double t0 = now();
            if (fpl_quant_apply(&q, x, rows, cols, y)) {
                fprintf(stderr, "bench_quant: %s\n", fpl_last_error());
                return 1;
            }
            double dt = now() - t0;
            best = dt < best ? dt : best;
        }
        double rate = (double)n / best / 1e6;
        double target = q.kind == FPL_QUANT_Q4_K ? 100 : 250;
        int ok = rate >= target;
        misses += !ok;
        printf("%-16s %10.4g %12.0f %8.0f %s\n", schemes[s],
               fpl_quant_bits_per_weight(&q, rows, cols), rate, target, ok ? "ok" : "MISS");
    }
    printf("# %d schemes miss their target\n", misses);
    free(x);
    free(y);
    gsl_rng_free(g);
    return 0;
}
