/* bench_round.c -- throughput of the fast rounding path against memcpy and
 * the MPFR path (make bench) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "fplab.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* best of `reps` runs, in ns per value */
#define TIME_BEST(reps, n, stmt)                                                               \
    ({                                                                                         \
        double best_ = 1e300;                                                                  \
        for (int r_ = 0; r_ < (reps); r_++) {                                                  \
            double t0_ = now();                                                                \
            stmt;                                                                              \
            double t_ = now() - t0_;                                                           \
            if (t_ < best_)                                                                    \
                best_ = t_;                                                                    \
        }                                                                                      \
        1e9 * best_ / (double)(n);                                                             \
    })

static void fill(double *x, size_t n, int dataset, const fpl_format_t *f, gsl_rng *rng)
{
    double lo = log2(f->min_positive) - 4, hi = log2(f->max_finite) + 2;
    for (size_t i = 0; i < n; i++) {
        if (dataset == 0) {
            x[i] = gsl_ran_gaussian(rng, 1.0); /* inside every format's range */
        } else {
            double v = exp2(lo + (hi - lo) * gsl_rng_uniform(rng));
            x[i] = gsl_rng_uniform(rng) < 0.5 ? -v : v;
        }
    }
}

int main(int argc, char **argv)
{
    size_t n = 10000000;
    if (argc > 1)
        n = (size_t)strtoull(argv[1], NULL, 10);
    if (n < 1000) {
        fprintf(stderr, "bench_round: N must be at least 1000\n");
        return 2;
    }
    const char *formats[] = {"bf16", "fp16", "e4m3", "e5m2"};
    const fpl_rmode_t modes[] = {FPL_RNE, FPL_SR};
    const char *dsname[] = {"normal", "logwide"};
    double *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    if (!in || !out) {
        fprintf(stderr, "bench_round: out of memory for N = %zu\n", n);
        return 1;
    }
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    mpfr_t m;
    mpfr_init2(m, 53);
    int misses = 0;
    printf("# fplab %s rounding benchmark: N = %zu doubles, single thread, best of 3\n",
           fpl_version(), n);
    printf("# targets: fast rne <= 1.5x memcpy, fast sr <= 4x memcpy, mpfr/fast >= 50\n");
    printf("%-5s %-4s %-8s %9s %9s %9s %11s %9s %s\n", "fmt", "mode", "data", "fast_ns",
           "memcpy_ns", "mpfr_ns", "fast/memcpy", "mpfr/fast", "status");
    for (int d = 0; d < 2; d++)
        for (size_t k = 0; k < sizeof formats / sizeof formats[0]; k++) {
            fpl_format_t f;
            fpl_format_parse(formats[k], &f);
            gsl_rng_set(rng, 1234 + k);
            fill(in, n, d, &f, rng);
            for (size_t j = 0; j < 2; j++) {
                fpl_rmode_t mode = modes[j];
                fpl_sr_t sr;
                double t_mem = TIME_BEST(3, n, memcpy(out, in, n * sizeof *in));
                double t_fast = TIME_BEST(3, n, {
                    fpl_sr_seed(&sr, 9);
                    fpl_round_array(&f, in, out, n, mode, &sr);
                });
                /* the reference path on the same data, checking every result */
                size_t wrong = 0;
                fpl_sr_t sr2;
                double t_mpfr = TIME_BEST(1, n, {
                    fpl_sr_seed(&sr2, 9);
                    for (size_t i = 0; i < n; i++) {
                        mpfr_set_d(m, in[i], MPFR_RNDN);
                        double r = fpl_round_mpfr(&f, m, mode, &sr2);
                        wrong += !(r == out[i] || (isnan(r) && isnan(out[i])));
                    }
                });
                double ratio = t_fast / t_mem, speedup = t_mpfr / t_fast;
                double limit = mode == FPL_RNE ? 1.5 : 4.0;
                int ok = ratio <= limit && speedup >= 50 && wrong == 0;
                misses += !ok;
                printf("%-5s %-4s %-8s %9.3f %9.3f %9.2f %11.2f %9.1f %s%s\n", f.name,
                       fpl_rmode_name(mode), dsname[d], t_fast, t_mem, t_mpfr, ratio, speedup,
                       ok ? "ok" : "MISS", wrong ? " (fast and mpfr disagree!)" : "");
                fflush(stdout);
            }
        }
    printf("# %d of 16 rows miss a target\n", misses);
    mpfr_clear(m);
    gsl_rng_free(rng);
    free(in);
    free(out);
    return 0;
}
