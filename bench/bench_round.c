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
#include "round_impl.h" /* fpl__round_array_with: the AVX2 kernel on AVX-512 machines */

/* Wall and CPU time of this thread, in seconds.  The machine is shared, so
 * ratios are taken on CPU time; wall time is printed beside it. */
typedef struct {
    double wall, cpu;
} stamp_t;

static stamp_t now(void)
{
    struct timespec w, c;
    clock_gettime(CLOCK_MONOTONIC, &w);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c);
    return (stamp_t){(double)w.tv_sec + 1e-9 * (double)w.tv_nsec,
                     (double)c.tv_sec + 1e-9 * (double)c.tv_nsec};
}

/* Keep the fastest of several runs (by CPU time), in ns per value. */
typedef struct {
    double wall, cpu;
} best_t;
#define BEST_INIT                                                                                  \
    {                                                                                              \
        1e300, 1e300                                                                               \
    }

static void best_add(best_t *b, stamp_t t0, size_t n)
{
    stamp_t t1 = now();
    double c = 1e9 * (t1.cpu - t0.cpu) / (double)n, w = 1e9 * (t1.wall - t0.wall) / (double)n;
    if (c < b->cpu) {
        b->cpu = c;
        b->wall = w;
    }
}

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
    if (n < 4096) {
        fprintf(stderr, "bench_round: N must be at least 4096\n");
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
    /* the cache-resident case: a slice small enough for L1/L2, rounded over
     * and over (about N values in all) */
    const size_t nc = 4096, reps_c = n / nc;
    printf("# fplab %s rounding benchmark: N = %zu doubles, single thread; fast path and memcpy\n"
           "# best of 5 interleaved runs; ns/value by thread CPU time (wall time beside it);\n"
           "# mpfr once over the same N values, checking every result; fast_c: the fast path\n"
           "# on a cache-resident slice of %zu values; avx2: fast/memcpy with the AVX2 kernel\n"
           "# (what a machine without AVX-512 runs; for information, no target)\n",
           fpl_version(), n, nc);
    printf("# targets: fast/memcpy <= 1.2 (rne), <= 2.5 (sr); mpfr/fast and mpfr/fast_c >= 50\n");
    printf("%-5s %-4s %-7s %8s %8s %8s %8s %8s %8s %7s %9s %11s %5s %s\n", "fmt", "mode", "data",
           "fast_ns", "(wall)", "memcpy", "(wall)", "fast_c", "mpfr_ns", "ratio", "mpfr/fast",
           "mpfr/fast_c", "avx2", "status");
    for (int d = 0; d < 2; d++)
        for (size_t k = 0; k < sizeof formats / sizeof formats[0]; k++) {
            fpl_format_t f;
            fpl_format_parse(formats[k], &f);
            gsl_rng_set(rng, 1234 + k);
            fill(in, n, d, &f, rng);
            for (size_t j = 0; j < 2; j++) {
                fpl_rmode_t mode = modes[j];
                fpl_sr_t sr;
                best_t mem = BEST_INIT, fast = BEST_INIT, fastc = BEST_INIT, mp = BEST_INIT;
                best_t avx2 = BEST_INIT;
                for (int r = 0; r < 5; r++) {
                    stamp_t t0 = now();
                    memcpy(out, in, n * sizeof *in);
                    best_add(&mem, t0, n);
                    fpl_sr_seed(&sr, 9);
                    t0 = now();
                    fpl_round_array(&f, in, out, n, mode, &sr);
                    best_add(&fast, t0, n);
                    fpl_sr_seed(&sr, 9);
                    t0 = now();
                    fpl__round_array_with(&f, in, out, n, mode, &sr, FPL__ISA_AVX2, -1);
                    best_add(&avx2, t0, n);
                }
                for (int r = 0; r < 3; r++) {
                    fpl_sr_seed(&sr, 9);
                    stamp_t t0 = now();
                    for (size_t q = 0; q < reps_c; q++)
                        fpl_round_array(&f, in, out + n - nc, nc, mode, &sr);
                    best_add(&fastc, t0, reps_c * nc);
                }
                fpl_sr_seed(&sr, 9);
                fpl_round_array(&f, in, out, n, mode, &sr);
                /* the reference path on the same data, checking every result */
                size_t wrong = 0;
                fpl_sr_t sr2;
                fpl_sr_seed(&sr2, 9);
                stamp_t t0 = now();
                for (size_t i = 0; i < n; i++) {
                    mpfr_set_d(m, in[i], MPFR_RNDN);
                    double r = fpl_round_mpfr(&f, m, mode, &sr2);
                    wrong += !(r == out[i] || (isnan(r) && isnan(out[i])));
                }
                best_add(&mp, t0, n);
                double ratio = fast.cpu / mem.cpu;
                double speedup = mp.cpu / fast.cpu, speedup_c = mp.cpu / fastc.cpu;
                double limit = mode == FPL_RNE ? 1.2 : 2.5;
                int ok = ratio <= limit && speedup >= 50 && speedup_c >= 50 && wrong == 0;
                misses += !ok;
                printf("%-5s %-4s %-7s %8.3f %8.3f %8.3f %8.3f %8.3f %8.1f %7.2f %9.0f %11.0f "
                       "%5.2f %s%s\n",
                       f.name, fpl_rmode_name(mode), dsname[d], fast.cpu, fast.wall, mem.cpu,
                       mem.wall, fastc.cpu, mp.cpu, ratio, speedup, speedup_c, avx2.cpu / mem.cpu,
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
