/* bench_diffusion.c -- emulated exact-score denoiser and sampler throughput
 * (make bench) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <gsl/gsl_randist.h>

#include "fplab.h"

/* thread CPU time: other processes sharing the machine do not lower the rates */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { M = 512, TRIALS = 3 };

int main(void)
{
    const struct {
        const char *spec;
        int fp32acc; /* the target applies */
    } pols[] = {{"exact", 0},
                {"a=fp32,acc=fp32", 1},
                {"a=fp16,acc=fp32", 1},
                {"a=bf16,acc=fp32", 1},
                {"a=e4m3,acc=fp32,out=fp32", 1},
                {"a=bf16,acc=fp32,out=fp32", 1},
                {"a=bf16,acc=bf16,rnd=sr", 0}};
    const double target = 1.0; /* M denoiser evaluations per second per core */
    fpl_schedule_t S;
    fpl_mixture_t mix[2];
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    if (fpl_schedule_linear(&S, 1000, 1e-4, 0.02) || fpl_mixture_circle(&mix[0], 8, 2.0, 0.1) ||
        fpl_mixture_gaussian(&mix[1], 8, 64, 2.0, 0.3, g)) {
        fprintf(stderr, "bench_diffusion: %s\n", fpl_last_error());
        return 1;
    }
    printf("# fplab %s exact-score Gaussian-mixture denoiser (K = 8), %d trajectories batched\n",
           fpl_version(), M);
    printf("# rates per core from thread CPU time (best of %d); steps: DDIM sampler steps\n",
           TRIALS);
    printf("%-44s %4s %14s %14s %8s %s\n", "policy", "d", "M eval/s/core", "M steps/s/core",
           "target", "status");
    double *x = malloc(M * 64 * sizeof *x), *y = malloc(M * 64 * sizeof *y);
    if (!x || !y)
        return 1;
    int misses = 0;
    for (int di = 0; di < 2; di++) {
        const fpl_mixture_t *m = &mix[di];
        fpl_denoiser_t D;
        fpl_mixture_denoiser(m, &D);
        size_t d = m->d, reps = di ? 20 : 400;
        for (size_t k = 0; k < sizeof pols / sizeof pols[0]; k++) {
            fpl_policy_t p;
            if (fpl_policy_parse(pols[k].spec, &p)) {
                fprintf(stderr, "bench_diffusion: %s\n", fpl_last_error());
                return 1;
            }
            fpl_sr_t sr;
            fpl_sr_seed(&sr, 1);
            for (size_t i = 0; i < M * d; i++)
                x[i] = gsl_ran_gaussian(g, 1.0);
            double best_e = 0, best_s = 0;
            for (int trial = 0; trial < TRIALS; trial++) {
                double t0 = cpu_now();
                for (size_t r = 0; r < reps; r++)
                    fpl_mixture_eps(m, &p, S.alpha_bar[1 + r % 1000], x, M, y, &sr);
                double re = (double)(reps * M) / (cpu_now() - t0) / 1e6;
                t0 = cpu_now();
                for (size_t r = 0; r < reps; r++)
                    fpl_sampler_step(FPL_SAMPLER_DDIM, &S, &D, &p, 1000 - r % 900, 999 - r % 900, x,
                                     y, M, NULL, &sr);
                double rs = (double)(reps * M) / (cpu_now() - t0) / 1e6;
                best_e = re > best_e ? re : best_e;
                best_s = rs > best_s ? rs : best_s;
            }
            int judged = pols[k].fp32acc && d == 2;
            misses += judged && best_e < target;
            printf("%-44s %4zu %14.2f %14.2f %8s %s\n", p.text[0] == 'e' ? "exact" : pols[k].spec,
                   d, best_e, best_s, judged ? "1.00" : "-",
                   judged ? (best_e >= target ? "ok" : "MISS") : "");
        }
    }
    free(x);
    free(y);
    fpl_mixture_free(&mix[0]);
    fpl_mixture_free(&mix[1]);
    fpl_schedule_free(&S);
    gsl_rng_free(g);
    printf("# %d figures miss their target\n", misses);
    return 0;
}
