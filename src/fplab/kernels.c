/* kernels.c -- LayerNorm, RMSNorm, GELU and weight storage under a policy */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arith.h"
#include "kernels.h"

/* The policy the statistics use: activations and accumulator in p->norm. */
static fpl_policy_t stats_policy(const fpl_policy_t *p)
{
    fpl_policy_t q = *p;
    q.a = q.acc = q.out = p->norm;
    q.align_frac = 0; /* statistics accumulate in p->norm, never in acc=align */
    q.prod_exact = 1;
    return q;
}

static double rn(const fpl_policy_t *p, const fpl_format_t *f, double v, fpl_sr_t *sr)
{
    return p->exact ? v : fpl_round(f, v, p->rnd, sr);
}

static void normalise(const fpl_policy_t *p, const double *x, double *y, size_t d, double eps,
                      int center, fpl_sr_t *sr)
{
    fpl_policy_t q = stats_policy(p);
    const fpl_format_t *nf = &p->norm;
    double *dev = malloc(d * sizeof *dev);
    if (!dev)
        abort(); /* a few KiB: nothing sensible to do without them */
    double mean = 0;
    if (center) {
        mean = rn(p, nf, fpl_sum(&q, x, d, sr) / (double)d, sr);
        for (size_t i = 0; i < d; i++)
            dev[i] = rn(p, nf, x[i] - mean, sr);
    } else {
        memcpy(dev, x, d * sizeof *dev);
    }
    /* var = mean of squares of the deviations */
    double var = rn(p, nf, fpl_dot(&q, dev, dev, d, sr) / (double)d, sr);
    double rstd = rn(p, nf, 1.0 / sqrt(rn(p, nf, var + eps, sr)), sr);
    for (size_t i = 0; i < d; i++)
        y[i] = rn(p, &p->out, dev[i] * rstd, sr);
    free(dev);
}

void fpl_layernorm(const fpl_policy_t *p, const double *x, double *y, size_t d, double eps,
                   fpl_sr_t *sr)
{
    normalise(p, x, y, d, eps, 1, sr);
}

void fpl_rmsnorm(const fpl_policy_t *p, const double *x, double *y, size_t d, double eps,
                 fpl_sr_t *sr)
{
    normalise(p, x, y, d, eps, 0, sr);
}

void fpl_gelu(const fpl_policy_t *p, const double *x, double *y, size_t n, fpl_sr_t *sr)
{
    for (size_t i = 0; i < n; i++)
        y[i] = rn(p, &p->a, 0.5 * x[i] * erfc(-x[i] / sqrt(2.0)), sr);
}

void fpl_weights(const fpl_policy_t *p, const double *W, double *Wq, size_t rows, size_t cols)
{
    if (p->exact) {
        if (Wq != W)
            memcpy(Wq, W, rows * cols * sizeof *W);
        return;
    }
    if (p->w.kind == FPL_KIND_FLOAT) {
        fpl_round_array(&p->w, W, Wq, rows * cols, FPL_RNE, NULL);
        return;
    }
    for (size_t r = 0; r < rows; r++) { /* per-row absmax integer quantization */
        const double *w = W + r * cols;
        double *q = Wq + r * cols, amax = 0;
        for (size_t c = 0; c < cols; c++)
            amax = fmax(amax, fabs(w[c]));
        double s = amax > 0 ? amax / p->w.max_finite : 1.0;
        for (size_t c = 0; c < cols; c++)
            q[c] = fpl_round(&p->a, fpl_round(&p->w, w[c] / s, FPL_RNE, NULL) * s, FPL_RNE, NULL);
    }
}
