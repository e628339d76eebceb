/* bench_vae.c -- correctly rounded exp, expm1 and g(l) = e^l - 1 - l in a
 * format: the binary64 path against MPFR, and the KL kernel (make bench) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fplab.h"

/* CPU time of this thread: other jobs on a shared machine do not count */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static volatile double sink;

/* ns per call of fn over the inputs, best of 3; mode FPL_SR takes MPFR's
 * path (the binary64 path is for deterministic modes only) at the same
 * working precision as the fallback of RNE */
static double per_call(int which, const fpl_format_t *f, const double *x, size_t n,
                       fpl_rmode_t mode)
{
    fpl_sr_t sr;
    fpl_sr_seed(&sr, 1);
    double best = 1e300;
    for (int t = 0; t < 3; t++) {
        double t0 = now(), s = 0;
        for (size_t i = 0; i < n; i++)
            s += which == 2 ? fpl_kl_g(f, x[i], mode, &sr)
                            : fpl_arith(f, which ? FPL_OP_EXPM1 : FPL_OP_EXP, &x[i], mode, &sr);
        double dt = now() - t0;
        sink = s;
        best = dt < best ? dt : best;
    }
    return best / (double)n * 1e9;
}

int main(void)
{
    const char *fmts[] = {"fp32", "fp16", "bf16", "e4m3"};
    const char *what[] = {"exp", "expm1", "g"};
    const size_t n = 20000;
    double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    printf("# fplab %s correctly rounded functions on %zu logvars in [-30, 20] rounded to the\n"
           "# format, single thread, thread CPU time, best of 3\n",
           fpl_version(), n);
    printf("# target: the binary64 path >= 10x faster than MPFR's\n");
    printf("%-6s %-6s %12s %12s %8s %s\n", "format", "fn", "binary64 ns", "MPFR ns", "speedup",
           "status");
    int misses = 0;
    for (size_t k = 0; k < sizeof fmts / sizeof fmts[0]; k++) {
        fpl_format_t f;
        fpl_format_parse(fmts[k], &f);
        for (size_t i = 0; i < n; i++)
            x[i] = fpl_round(&f, -30 + 50 * (double)i / (double)(n - 1), FPL_RNE, NULL);
        for (int w = 0; w < 3; w++) {
            double fast = per_call(w, &f, x, n, FPL_RNE), slow = per_call(w, &f, x, n, FPL_SR);
            int ok = slow >= 10 * fast;
            misses += !ok;
            printf("%-6s %-6s %12.0f %12.0f %8.1f %s\n", fmts[k], what[w], fast, slow, slow / fast,
                   ok ? "ok" : "MISS");
        }
    }
    /* the KL kernel: a 601 x 601 plane row by row, as vae_head computes it */
    fpl_policy_t p;
    fpl_policy_parse("a=bf16,acc=bf16,out=bf16", &p);
    const size_t np = 601;
    double *mu = malloc(np * sizeof *mu), *l = malloc(np * sizeof *l), *kl = malloc(np * sizeof *kl);
    printf("# KL kernel, bf16, 601 x 601 points: ns per element\n");
    for (int form = 0; form < FPL_KL_NFORMS; form++) {
        double t0 = now();
        for (size_t j = 0; j < np; j++) {
            for (size_t i = 0; i < np; i++) {
                mu[i] = fpl_round(&p.a, -3 + 6.0 * (double)i / 600, FPL_RNE, NULL);
                l[i] = fpl_round(&p.a, -6 + 12.0 * (double)j / 600, FPL_RNE, NULL);
            }
            fpl_kl(&p, (fpl_kl_form_t)form, mu, l, kl, np, NULL);
        }
        printf("kl %-8s %8.0f ns\n", fpl_kl_form_name((fpl_kl_form_t)form),
               (now() - t0) / (double)(np * np) * 1e9);
    }
    printf("# %d functions miss their target\n", misses);
    free(x);
    free(y);
    free(mu);
    free(l);
    free(kl);
    return 0;
}
