/* resstack.c -- residual stacks under a precision policy and their twin run */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "arith.h"
#include "error.h"
#include "internal.h"
#include "kernels.h"
#include "resstack.h"
#include "track.h"

#define RES_EPS 1e-5

void fpl_resstack_input(const fpl_resstack_t *c, gsl_rng *rng, double *x0)
{
    for (size_t i = 0; i < c->tokens * c->d; i++)
        x0[i] = gsl_ran_gaussian_ziggurat(rng, 1.0);
}

void fpl_resstack_weights(const fpl_resstack_t *c, gsl_rng *rng, double *W1, double *W2)
{
    size_t n = c->hidden * c->d;
    double s1 = 1 / sqrt((double)c->d), s2 = c->gain / sqrt((double)c->hidden);
    for (size_t i = 0; i < n; i++)
        W1[i] = gsl_ran_gaussian_ziggurat(rng, s1);
    for (size_t i = 0; i < n; i++)
        W2[i] = gsl_ran_gaussian_ziggurat(rng, s2);
}

void fpl_resstack_store(const fpl_policy_t *p, const double *W, double *Wq, size_t rows,
                        size_t cols)
{
    size_t n = rows * cols;
    if (p->exact || p->w.kind != FPL_KIND_FLOAT) {
        fpl_weights(p, W, Wq, rows, cols);
        return;
    }
    double amax = 0;
    for (size_t i = 0; i < n; i++)
        amax = fmax(amax, fabs(W[i]));
    int e = 0;
    if (amax > 0) { /* 2^(e-1) <= amax/max < 2^e; 2^e is the smallest power >= it
                       unless the ratio is itself a power of two */
        double m = frexp(amax / p->w.max_finite, &e);
        if (m == 0.5)
            e -= 1;
    }
    for (size_t i = 0; i < n; i++)
        Wq[i] = ldexp(W[i], -e);
    fpl_round_array(&p->w, Wq, Wq, n, FPL_RNE, NULL);
    for (size_t i = 0; i < n; i++)
        Wq[i] = ldexp(Wq[i], e);
}

size_t fpl_resstack_work_size(const fpl_resstack_t *c)
{
    return c->tokens * (3 * c->d + 2 * c->hidden);
}

/* f(u) = W2 GELU(W1 u) for every token */
static void mlp(const fpl_resstack_t *c, const double *W1, const double *W2, const double *in,
                double *out, const fpl_policy_t *p, fpl_sr_t *sr, double *work)
{
    size_t T = c->tokens, d = c->d, h = c->hidden;
    double *xin = work, *a = xin + T * d, *g = a + T * h;
    fpl_policy_t ph = *p;
    ph.out = p->a; /* hidden activations are GEMM outputs in the activation format */
    if (p->exact)
        memcpy(xin, in, T * d * sizeof *xin);
    else
        fpl_round_array(&p->a, in, xin, T * d, p->rnd, sr); /* GEMM input */
    fpl_matmul(&ph, xin, W1, a, T, d, h, sr);
    fpl_gelu(p, a, g, T * h, sr);
    fpl_matmul(p, g, W2, out, T, h, d, sr);
}

static void norm(const fpl_resstack_t *c, const double *x, double *y, const fpl_policy_t *p,
                 fpl_sr_t *sr)
{
    for (size_t t = 0; t < c->tokens; t++) {
        if (c->variant == FPL_RES_PRERMS)
            fpl_rmsnorm(p, x + t * c->d, y + t * c->d, c->d, RES_EPS, sr);
        else
            fpl_layernorm(p, x + t * c->d, y + t * c->d, c->d, RES_EPS, sr);
    }
}

/* z = x + y, rounded once to the stream format */
static void add(const fpl_res_policy_t *p, const double *x, const double *y, double *z, size_t n,
                fpl_sr_t *sr)
{
    if (p->block.exact)
        for (size_t i = 0; i < n; i++)
            z[i] = x[i] + y[i];
    else
        fpl_vec_op(&p->stream, FPL_OP_ADD, x, y, z, n, p->block.rnd, sr);
}

void fpl_resstack_block(const fpl_resstack_t *c, const double *W1, const double *W2,
                        const double *x, double *y, const fpl_res_policy_t *p, fpl_sr_t *sr,
                        double *work)
{
    size_t n = c->tokens * c->d;
    double *u = work, *f = work + n, *mw = work + 2 * n;
    const fpl_policy_t *b = &p->block;
    switch (c->variant) {
    case FPL_RES_PRELN:
    case FPL_RES_PRERMS:
        norm(c, x, u, b, sr);
        mlp(c, W1, W2, u, f, b, sr, mw);
        add(p, x, f, y, n, sr);
        break;
    case FPL_RES_POSTLN: {
        fpl_policy_t ps = *b;
        ps.out = p->stream; /* post-LN's output is the stream itself */
        mlp(c, W1, W2, x, f, b, sr, mw);
        add(p, x, f, u, n, sr);
        norm(c, u, y, &ps, sr);
        break;
    }
    default:
        mlp(c, W1, W2, x, f, b, sr, mw);
        add(p, x, f, y, n, sr);
        break;
    }
}

static int all_finite(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

static double rms(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i] * x[i];
    return sqrt(s / (double)n);
}

int fpl_resstack_run(const fpl_resstack_t *c, gsl_rng *rng, const fpl_res_policy_t *pol,
                     size_t npol, uint64_t sr_seed, fpl_resstack_report_t *rep)
{
    if (!c->d || !c->hidden || !c->tokens || !c->depth || !npol)
        return fpl__fail(FPL_EINVAL, "resstack: empty stack or no policy");
    size_t n = c->tokens * c->d, nw = c->hidden * c->d, nk = fpl_resstack_work_size(c);
    /* common: x0, xr, yr, ye, yx, yq, W1, W2, work; per policy: xe, xq, W1q, W2q */
    size_t total = 6 * n + 2 * nw + nk + npol * (2 * n + 2 * nw);
    double *buf = malloc(total * sizeof *buf);
    fpl_sr_t *sr = malloc(npol * sizeof *sr);
    int *alive = malloc(npol * sizeof *alive);
    double *in_rel = malloc(npol * sizeof *in_rel);
    if (!buf || !sr || !alive || !in_rel) {
        free(buf);
        free(sr);
        free(alive);
        free(in_rel);
        return fpl__fail(FPL_ENOMEM, "resstack: out of memory");
    }
    double *x0 = buf, *xr = x0 + n, *yr = xr + n, *ye = yr + n, *yx = ye + n, *yq = yx + n;
    double *W1 = yq + n, *W2 = W1 + nw, *work = W2 + nw, *per = work + nk;
#define XE(k)  (per + (k) * (2 * n + 2 * nw))
#define XQ(k)  (XE(k) + n)
#define W1Q(k) (XQ(k) + n)
#define W2Q(k) (W1Q(k) + nw)
    fpl_policy_t exact;
    fpl_policy_exact(&exact);
    fpl_res_policy_t ex = {.block = exact};
    fpl_resstack_input(c, rng, x0);
    memcpy(xr, x0, n * sizeof *xr);
    for (size_t k = 0; k < npol; k++) {
        fpl_sr_seed(&sr[k], sr_seed + k);
        memcpy(XQ(k), x0, n * sizeof *x0);
        if (pol[k].block.exact)
            memcpy(XE(k), x0, n * sizeof *x0);
        else
            fpl_round_array(&pol[k].stream, x0, XE(k), n, pol[k].block.rnd, &sr[k]);
        alive[k] = all_finite(XE(k), n);
        fpl_err_t e;
        fpl_error_metrics(XE(k), XQ(k), n, &pol[k].stream, &e);
        in_rel[k] = e.rel;
    }
    for (size_t l = 0; l < c->depth; l++) {
        fpl_resstack_weights(c, rng, W1, W2);
        fpl_resstack_block(c, W1, W2, xr, yr, &ex, NULL, work);
        double srms = rms(yr, n);
        for (size_t k = 0; k < npol; k++) {
            fpl_resstack_report_t *R = &rep[k * c->depth + l];
            const fpl_res_policy_t *p = &pol[k];
            fpl_resstack_store(&p->block, W1, W1Q(k), c->hidden, c->d);
            fpl_resstack_store(&p->block, W2, W2Q(k), c->d, c->hidden);
            fpl_resstack_block(c, W1Q(k), W2Q(k), XQ(k), yq, &ex, NULL, work);
            fpl_err_t e;
            fpl_error_metrics(yq, yr, n, &p->stream, &e);
            R->weights_rel = e.rel;
            R->signal_rms = srms;
            if (alive[k]) {
                fpl_resstack_block(c, W1Q(k), W2Q(k), XE(k), ye, p, &sr[k], work);
                alive[k] = all_finite(ye, n);
            }
            R->finite = alive[k];
            if (alive[k]) {
                fpl_resstack_block(c, W1Q(k), W2Q(k), XE(k), yx, &ex, NULL, work);
                fpl_error_metrics(ye, yr, n, &p->stream, &e);
                R->rel = e.rel;
                R->abs = e.rel * srms;
                fpl_error_metrics(ye, yq, n, &p->stream, &e);
                R->arith_rel = e.rel;
                fpl_error_metrics(ye, yx, n, &p->stream, &e);
                R->introduced = e.rel;
                fpl_error_metrics(yx, yq, n, &p->stream, &e);
                R->inherited = e.rel;
                R->amplification = in_rel[k] > 0 ? R->inherited / in_rel[k] : NAN;
                R->out_rms = rms(ye, n);
                in_rel[k] = R->arith_rel;
                memcpy(XE(k), ye, n * sizeof *ye);
            } else {
                R->rel = R->abs = R->arith_rel = R->introduced = R->inherited = INFINITY;
                R->amplification = NAN;
                R->out_rms = INFINITY;
            }
            memcpy(XQ(k), yq, n * sizeof *yq);
        }
        memcpy(xr, yr, n * sizeof *yr);
    }
#undef XE
#undef XQ
#undef W1Q
#undef W2Q
    free(buf);
    free(sr);
    free(alive);
    free(in_rel);
    return FPL_OK;
}
