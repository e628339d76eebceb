/* bench_dot.c -- emulated dot product and matmul throughput (make bench) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fplab.h"

/* Rates are per thread and use the thread's CPU time, so other processes
 * sharing the machine do not lower them. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { N = 1 << 16, REPS = 64, TRIALS = 3 };

/* Best-of-TRIALS rate of REPS dots of length N, in M MAC/s per thread, with
 * `threads` threads each doing the same work (the mean over threads). */
static double dot_rate(const fpl_policy_t *p, const double *x, const double *y, int threads)
{
    double best = 0;
    for (int trial = 0; trial < TRIALS; trial++) {
        double sum_rate = 0, sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sum_rate, sink)
        {
            fpl_sr_t sr;
            fpl_sr_seed(&sr, 1);
            double t0 = cpu_now();
            for (int r = 0; r < REPS; r++)
                sink += fpl_dot(p, x, y, N, &sr);
            sum_rate += (double)N * REPS / (cpu_now() - t0) / 1e6;
        }
#ifdef _OPENMP
        double rate = sum_rate / threads;
#else
        double rate = sum_rate;
#endif
        if (rate > best)
            best = rate;
        if (sink == 42.4242)
            puts("");
    }
    return best;
}

static const char *status(double rate, double target)
{
    return rate >= target ? "ok" : "MISS";
}

int main(void)
{
    const char *specs[] = {"a=e4m3,acc=fp32,rnd=rne",
                           "a=bf16,acc=fp32,rnd=rne",
                           "a=bf16,acc=bf16,rnd=rne",
                           "a=e4m3,acc=fp:e=8,m=13,order=blocked:128,promote=fp32",
                           "a=bf16,acc=fp32,rnd=sr",
                           "a=bf16,acc=bf16,rnd=sr",
                           "a=fp16,acc=fp16,rnd=rtz",
                           "a=e5m2,acc=fp32,order=pairwise",
                           "a=bf16,acc=bf16,order=pairwise,rnd=sr"};
    const double dot_target = 150, mm_target = 1000;
    double *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    if (!x || !y)
        return 1;
    printf("# fplab %s emulated dot products: length %d, %d dots per thread\n", fpl_version(), N,
           REPS);
    printf("# rates in M MAC/s per thread, from thread CPU time (best of %d)\n", TRIALS);
    printf("%-58s %10s %10s %8s %s\n", "policy", "1 thread", "2 threads", "target", "status");
    int misses = 0;
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        fpl_policy_t p;
        if (fpl_policy_parse(specs[s], &p)) {
            fprintf(stderr, "bench_dot: %s\n", fpl_last_error());
            return 1;
        }
        for (int i = 0; i < N; i++) {
            x[i] = fpl_round(&p.a, (double)(((long long)i * 7919) % 1000) / 1000.0, FPL_RNE, NULL);
            y[i] = fpl_round(&p.a, (double)(((long long)i * 104729) % 997) / 997.0 - 0.5, FPL_RNE,
                             NULL);
        }
        double r1 = dot_rate(&p, x, y, 1), r2 = dot_rate(&p, x, y, 2);
        misses += r1 < dot_target;
        printf("%-58s %10.0f %10.0f %8.0f %s\n", specs[s], r1, r2, dot_target,
               status(r1, dot_target));
    }

    /* a linear layer Y = X W^T (64 tokens, 1024 -> 1024) and one token's
     * matvec, fp32 accumulation */
    const char *mspecs[] = {"w=e4m3,a=bf16,acc=fp32,out=bf16", "w=bf16,a=bf16,acc=fp32,out=bf16",
                            "a=fp32,acc=fp32,out=fp32", "exact"};
    size_t m = 64, k = 1024, n = 1024;
    double *A = malloc(m * k * sizeof *A), *B = malloc(n * k * sizeof *B);
    double *C = malloc(m * n * sizeof *C);
    if (!A || !B || !C)
        return 1;
    for (size_t s = 0; s < sizeof mspecs / sizeof mspecs[0]; s++) {
        fpl_policy_t p;
        if (fpl_policy_parse(mspecs[s], &p)) {
            fprintf(stderr, "bench_dot: %s\n", fpl_last_error());
            return 1;
        }
        for (size_t i = 0; i < m * k; i++)
            A[i] = fpl_round(&p.a, (double)(i % 101) / 101 - 0.5, FPL_RNE, NULL);
        for (size_t i = 0; i < n * k; i++)
            B[i] = fpl_round(&p.w, (double)(i % 103) / 103 - 0.5, FPL_RNE, NULL);
        double best_mm = 0, best_mv = 0;
        for (int trial = 0; trial < TRIALS; trial++) {
            double t0 = cpu_now();
            fpl_matmul(&p, A, B, C, m, k, n, NULL);
            double r = (double)(m * k * n) / (cpu_now() - t0) / 1e6;
            best_mm = r > best_mm ? r : best_mm;
            t0 = cpu_now();
            for (size_t i = 0; i < 8; i++)
                fpl_matvec(&p, B, A + i * k, C + i * n, n, k, NULL);
            r = (double)(8 * k * n) / (cpu_now() - t0) / 1e6;
            best_mv = r > best_mv ? r : best_mv;
        }
        char label[128];
        snprintf(label, sizeof label, "matmul 64x1024x1024 %s", mspecs[s]);
        /* the target is for fp32 accumulation; the exact policy (the
         * reference side of twin runs) is shown without one */
        int has_target = !p.exact;
        misses += has_target && best_mm < mm_target;
        printf("%-58s %10.0f %10s %8.0f %s\n", label, best_mm, "-", has_target ? mm_target : 0.0,
               has_target ? status(best_mm, mm_target) : "(no target)");
        snprintf(label, sizeof label, "matvec 1024x1024 %s", mspecs[s]);
        misses += has_target && best_mv < mm_target;
        printf("%-58s %10.0f %10s %8.0f %s\n", label, best_mv, "-", has_target ? mm_target : 0.0,
               has_target ? status(best_mv, mm_target) : "(no target)");
    }
    printf("# %d figures miss their target\n", misses);
    free(A);
    free(B);
    free(C);
    free(x);
    free(y);
    return 0;
}
