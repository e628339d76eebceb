/* diffusion_model.c -- a learned denoiser: an MLP eps_theta(x, t) trained
 * with the DDPM loss on a Gaussian mixture, run as a binary64 denoiser, and
 * its weights quantized */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "diffusion.h"
#include "error.h"
#include "internal.h"

fpl_model_t *fpl_diffusion_mlp(size_t d, size_t emb, size_t hidden, size_t layers, uint64_t seed)
{
    if (d == 0 || hidden == 0 || layers == 0 || emb == 0 || emb % 2) {
        fpl__fail(FPL_EINVAL, "diffusion MLP: d, hidden and layers >= 1, emb even and >= 2");
        return NULL;
    }
    fpl_model_t *m = fpl_model_alloc(d + 1);
    if (!m)
        return NULL;
    int st = fpl_model_add_time_embedding(m, emb, 10000.0);
    for (size_t l = 0; l < layers && !st; l++) {
        st = fpl_model_add_linear(m, hidden);
        if (!st)
            st = fpl_model_add_activation(m, FPL_LAYER_SILU);
    }
    if (!st)
        st = fpl_model_add_linear(m, d);
    if (!st)
        st = fpl_model_init(m, seed);
    if (st) {
        fpl_model_free(m);
        return NULL;
    }
    return m;
}

int fpl_diffusion_train(fpl_model_t *m, const fpl_mixture_t *mix, const fpl_schedule_t *s,
                        const fpl_recipe_t *r, const fpl_diffusion_train_t *opt, double *loss)
{
    const size_t d = mix->d, B = opt->batch;
    if (m->in != d + 1 || m->out != d)
        return fpl__fail(FPL_EINVAL, "diffusion training: the model maps %zu values to %zu, "
                                     "not [x, t] (%zu) to eps (%zu)",
                         m->in, m->out, d + 1, d);
    if (opt->steps == 0 || B == 0 || !(opt->lr > 0) || opt->threads < 1)
        return fpl__fail(FPL_EINVAL, "diffusion training: steps and batch >= 1, lr > 0, "
                                     "threads >= 1");
    fpl_optim_t o = FPL_OPTIM_ADAM_INIT;
    o.lr = opt->lr;
    fpl_trainer_t *tr = fpl_trainer_alloc(m, r, &o, B, opt->threads);
    double *x = malloc(B * (d + 1) * sizeof *x), *x0 = malloc(B * d * sizeof *x0),
           *e = malloc(B * d * sizeof *e);
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    int st = 0;
    if (!tr || !x || !x0 || !e || !g) {
        st = tr ? fpl__fail(FPL_ENOMEM, "diffusion training: out of memory") : FPL_ENOMEM;
        goto out;
    }
    gsl_rng_set(g, (unsigned long)(opt->seed ^ (opt->seed >> 32)));
    double tail = 0;
    size_t ntail = 0, from = opt->steps - opt->steps / 10 - (opt->steps < 10);
    for (size_t k = 0; k < opt->steps; k++) {
        fpl_trainer_set_lr(tr, opt->lr * 0.5 * (1 + cos(M_PI * (double)k / (double)opt->steps)));
        fpl_mixture_sample(mix, g, x0, B);
        for (size_t b = 0; b < B; b++) {
            size_t t = 1 + gsl_rng_uniform_int(g, s->T);
            double ab = s->alpha_bar[t], ca = sqrt(ab), cs = sqrt(1 - ab);
            for (size_t j = 0; j < d; j++) {
                e[b * d + j] = gsl_ran_gaussian_ziggurat(g, 1.0);
                x[b * (d + 1) + j] = ca * x0[b * d + j] + cs * e[b * d + j];
            }
            x[b * (d + 1) + d] = (double)t;
        }
        double l = fpl_trainer_train(tr, x, e, NULL, B);
        if (!isfinite(l)) {
            st = fpl__fail(FPL_EINVAL, "diffusion training: non-finite loss at step %zu", k);
            goto out;
        }
        if (k >= from) {
            tail += l;
            ntail++;
        }
    }
    if (loss)
        *loss = tail / (double)ntail;
out:
    fpl_trainer_free(tr);
    free(x);
    free(x0);
    free(e);
    if (g)
        gsl_rng_free(g);
    return st;
}

struct fpl_model_denoiser {
    fpl_model_t *m;
    fpl_trainer_t *tr;
    size_t d, maxB;
    double *in;
};

static int model_denoise(const fpl_denoiser_t *D, const fpl_policy_t *p, size_t t, double ab,
                         const double *x, size_t n, double *eps, fpl_sr_t *sr)
{
    (void)ab;
    (void)sr;
    fpl_model_denoiser_t *md = (fpl_model_denoiser_t *)D->state;
    if (!p->exact)
        return fpl__fail(FPL_EINVAL, "learned denoiser: binary64 only (the exact policy), not "
                                     "'%s'",
                         p->text);
    const size_t d = md->d;
    for (size_t i0 = 0; i0 < n; i0 += md->maxB) {
        size_t B = n - i0 < md->maxB ? n - i0 : md->maxB;
        for (size_t b = 0; b < B; b++) {
            memcpy(md->in + b * (d + 1), x + (i0 + b) * d, d * sizeof *x);
            md->in[b * (d + 1) + d] = (double)t;
        }
        const double *y = fpl_trainer_forward(md->tr, md->in, B, 0);
        if (!y)
            return FPL_EINVAL;
        memcpy(eps + i0 * d, y, B * d * sizeof *y);
    }
    return 0;
}

fpl_model_denoiser_t *fpl_model_denoiser_alloc(const fpl_model_t *m, size_t d, size_t max_batch,
                                               fpl_denoiser_t *D)
{
    if (m->in != d + 1 || m->out != d || max_batch == 0) {
        fpl__fail(FPL_EINVAL, "learned denoiser: the model must map [x, t] (%zu values) to "
                              "eps (%zu), batch >= 1",
                  d + 1, d);
        return NULL;
    }
    fpl_model_denoiser_t *md = calloc(1, sizeof *md);
    fpl_recipe_t r;
    fpl_optim_t o = FPL_OPTIM_ADAM_INIT;
    if (!md || !(md->m = fpl_model_clone(m)) || fpl_recipe_parse("exact", &r) ||
        !(md->tr = fpl_trainer_alloc(md->m, &r, &o, max_batch, 1)) ||
        !(md->in = malloc(max_batch * (d + 1) * sizeof *md->in))) {
        if (!md)
            fpl__fail(FPL_ENOMEM, "learned denoiser: out of memory");
        fpl_model_denoiser_free(md);
        return NULL;
    }
    md->d = d;
    md->maxB = max_batch;
    D->d = d;
    D->eps = model_denoise;
    D->state = md;
    return md;
}

void fpl_model_denoiser_free(fpl_model_denoiser_t *md)
{
    if (!md)
        return;
    fpl_trainer_free(md->tr);
    fpl_model_free(md->m);
    free(md->in);
    free(md);
}

int fpl_model_quantize(fpl_model_t *m, const fpl_quant_t *q)
{
    for (size_t i = 0; i < m->nlayers; i++) {
        const fpl_mlayer_t *L = &m->layers[i];
        if (L->kind == FPL_LAYER_LINEAR && fpl_quant_check(q, L->out, L->in))
            return fpl__fail(FPL_EINVAL, "quantize: layer %zu (%zu x %zu) does not fit %s: %s", i,
                             L->out, L->in, q->name, fpl_last_error());
    }
    for (size_t i = 0; i < m->nlayers; i++) {
        const fpl_mlayer_t *L = &m->layers[i];
        if (L->kind != FPL_LAYER_LINEAR)
            continue;
        double *W = m->params + L->off;
        int st = fpl_quant_apply(q, W, L->out, L->in, W);
        if (st)
            return st;
    }
    return 0;
}
