/* bench_dot.c -- emulated dot product and matmul throughput (make bench) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fplab.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void)
{
    const char *specs[] = {"a=e4m3,acc=fp32,rnd=rne", "a=bf16,acc=fp32,rnd=rne",
                           "a=bf16,acc=bf16,rnd=rne", "a=e4m3,acc=fp:e=8,m=13,order=blocked:128,promote=fp32",
                           "a=bf16,acc=fp32,rnd=sr"};
    enum { N = 1 << 16, REPS = 64 };
    double *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    printf("# fplab %s emulated dot products: length %d, %d dots per thread\n", fpl_version(), N,
           REPS);
    printf("# target: >= 100 M emulated MAC/s per core for rne\n");
    printf("%-58s %12s %12s %s\n", "policy", "1 thread", "2 threads", "status");
    int misses = 0;
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        fpl_policy_t p;
        if (fpl_policy_parse(specs[s], &p)) {
            fprintf(stderr, "bench_dot: %s\n", fpl_last_error());
            return 1;
        }
        for (int i = 0; i < N; i++) {
            x[i] = fpl_round(&p.a, (double)(((long long)i * 7919) % 1000) / 1000.0, FPL_RNE, NULL);
            y[i] = fpl_round(&p.a, (double)(((long long)i * 104729) % 997) / 997.0 - 0.5, FPL_RNE, NULL);
        }
        double rate[2];
        for (int t = 1; t <= 2; t++) {
            double best = 1e300;
            for (int trial = 0; trial < 3; trial++) {
                double t0 = now(), sink = 0;
#pragma omp parallel num_threads(t) reduction(+ : sink)
                {
                    fpl_sr_t sr;
                    fpl_sr_seed(&sr, 1);
                    for (int r = 0; r < REPS; r++)
                        sink += fpl_dot(&p, x, y, N, &sr);
                }
                double dt = now() - t0;
                if (dt < best)
                    best = dt;
                if (sink == 42.4242)
                    puts("");
            }
#ifdef _OPENMP
            int used = t;
#else
            int used = 1;
#endif
            rate[t - 1] = (double)N * REPS * used / best / 1e6;
        }
        int ok = p.rnd != FPL_RNE || rate[0] >= 100;
        misses += !ok;
        printf("%-58s %9.0f M/s %9.0f M/s %s\n", specs[s], rate[0], rate[1],
               p.rnd != FPL_RNE ? "(sr: no target)" : ok ? "ok" : "MISS");
    }
    /* a linear layer: Y = X W^T, 64 tokens, 1024 -> 1024 */
    fpl_policy_t p;
    fpl_policy_parse("w=e4m3,a=bf16,acc=fp32,out=bf16", &p);
    size_t m = 64, k = 1024, n = 1024;
    double *A = malloc(m * k * sizeof *A), *B = malloc(n * k * sizeof *B), *C = malloc(m * n * sizeof *C);
    for (size_t i = 0; i < m * k; i++)
        A[i] = fpl_round(&p.a, (double)(i % 101) / 101 - 0.5, FPL_RNE, NULL);
    for (size_t i = 0; i < n * k; i++)
        B[i] = fpl_round(&p.w, (double)(i % 103) / 103 - 0.5, FPL_RNE, NULL);
    double t0 = now();
    fpl_matmul(&p, A, B, C, m, k, n, NULL);
    double dt = now() - t0;
    printf("%-58s %9.0f M/s %12s %s\n", "matmul 64x1024x1024 w=e4m3,a=bf16,acc=fp32,out=bf16",
           (double)(m * k * n) / dt / 1e6, "-", (double)(m * k * n) / dt / 1e6 >= 100 ? "ok" : "MISS");
    printf("# %d policies miss the target\n", misses);
    free(A);
    free(B);
    free(C);
    free(x);
    free(y);
    return 0;
}
