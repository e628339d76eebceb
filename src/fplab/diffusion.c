/* diffusion.c -- schedules, the Gaussian-mixture target and its exact score,
 * samplers, sliced Wasserstein distance (diffusion.h) */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "arith.h"
#include "diffusion.h"
#include "error.h"
#include "internal.h"

/* ---- schedule ------------------------------------------------------------ */

int fpl_schedule_linear(fpl_schedule_t *s, size_t T, double beta_1, double beta_T)
{
    memset(s, 0, sizeof *s);
    if (T < 1 || !(beta_1 > 0) || !(beta_1 <= beta_T) || !(beta_T < 1))
        return fpl__fail(FPL_EINVAL, "schedule: need T >= 1 and 0 < beta_1 <= beta_T < 1");
    s->beta = malloc((T + 1) * sizeof *s->beta);
    s->alpha_bar = malloc((T + 1) * sizeof *s->alpha_bar);
    if (!s->beta || !s->alpha_bar) {
        fpl_schedule_free(s);
        return fpl__fail(FPL_ENOMEM, "schedule: out of memory");
    }
    s->T = T;
    s->beta[0] = 0;
    s->alpha_bar[0] = 1;
    for (size_t t = 1; t <= T; t++) {
        s->beta[t] =
            T == 1 ? beta_1 : beta_1 + (beta_T - beta_1) * (double)(t - 1) / (double)(T - 1);
        s->alpha_bar[t] = s->alpha_bar[t - 1] * (1 - s->beta[t]);
    }
    return FPL_OK;
}

void fpl_schedule_free(fpl_schedule_t *s)
{
    free(s->beta);
    free(s->alpha_bar);
    memset(s, 0, sizeof *s);
}

int fpl_schedule_steps(const fpl_schedule_t *s, size_t N, size_t *tau)
{
    if (N < 1 || N > s->T)
        return fpl__fail(FPL_EINVAL, "steps: %zu is outside 1..%zu", N, s->T);
    for (size_t i = 0; i <= N; i++)
        tau[i] = i * s->T / N;
    return FPL_OK;
}

/* ---- mixture ------------------------------------------------------------- */

static int mixture_alloc(fpl_mixture_t *m, size_t K, size_t d, double s)
{
    memset(m, 0, sizeof *m);
    if (K < 1 || d < 1 || !(s > 0))
        return fpl__fail(FPL_EINVAL, "mixture: need K >= 1, d >= 1, s > 0");
    m->mu = malloc(K * d * sizeof *m->mu);
    if (!m->mu)
        return fpl__fail(FPL_ENOMEM, "mixture: out of memory");
    m->K = K;
    m->d = d;
    m->s = s;
    return FPL_OK;
}

int fpl_mixture_circle(fpl_mixture_t *m, size_t K, double radius, double s)
{
    int st = mixture_alloc(m, K, 2, s);
    if (st)
        return st;
    for (size_t k = 0; k < K; k++) {
        double a = 2 * M_PI * (double)k / (double)K;
        m->mu[2 * k] = radius * cos(a);
        m->mu[2 * k + 1] = radius * sin(a);
    }
    return FPL_OK;
}

int fpl_mixture_gaussian(fpl_mixture_t *m, size_t K, size_t d, double sd_means, double s,
                         gsl_rng *rng)
{
    int st = mixture_alloc(m, K, d, s);
    if (st)
        return st;
    for (size_t i = 0; i < K * d; i++)
        m->mu[i] = sd_means * gsl_ran_gaussian_ziggurat(rng, 1.0);
    return FPL_OK;
}

void fpl_mixture_free(fpl_mixture_t *m)
{
    free(m->mu);
    memset(m, 0, sizeof *m);
}

void fpl_mixture_sample(const fpl_mixture_t *m, gsl_rng *rng, double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t k = gsl_rng_uniform_int(rng, m->K);
        for (size_t j = 0; j < m->d; j++)
            x[i * m->d + j] = m->mu[k * m->d + j] + m->s * gsl_ran_gaussian_ziggurat(rng, 1.0);
    }
}

double fpl_mixture_logp(const fpl_mixture_t *m, double ab, const double *x)
{
    double v = ab * m->s * m->s + 1 - ab, sa = sqrt(ab), best = -INFINITY;
    double *l = malloc(m->K * sizeof *l);
    if (!l)
        return NAN;
    for (size_t k = 0; k < m->K; k++) {
        double D = 0;
        for (size_t j = 0; j < m->d; j++) {
            double e = x[j] - sa * m->mu[k * m->d + j];
            D += e * e;
        }
        l[k] = -D / (2 * v);
        best = fmax(best, l[k]);
    }
    double z = 0;
    for (size_t k = 0; k < m->K; k++)
        z += exp(l[k] - best);
    free(l);
    return best + log(z / (double)m->K) - 0.5 * (double)m->d * log(2 * M_PI * v);
}

/* ---- rounding helpers on arrays -------------------------------------------
 * Each computes the exact result of one operation, moves it to binary64
 * with round-to-odd (so that the one rounding to a narrower format that
 * follows is the correct rounding of the exact result, Boldo & Melquiond,
 * IEEE TC 2008), and rounds it to f in `mode`.  f == NULL: binary64, no
 * further rounding (the exact policy). */

/* h + l exactly (|l| below half an ulp of h): h rounded to odd */
static inline double to_odd(double h, double l)
{
    if (l != 0 && h != 0 && isfinite(h)) {
        uint64_t hb = fpl__bits(h);
        if ((l < 0) != (h < 0))
            hb -= 1;
        h = fpl__double(hb | 1);
    }
    return h;
}

static inline double odd_sum(double a, double b)
{
    double h = a + b, bp = h - a;
    return to_odd(h, (a - (h - bp)) + (b - bp));
}

static inline double odd_prod(double a, double b)
{
    double h = a * b;
    return to_odd(h, fma(a, b, -h));
}

static void finish(const fpl_format_t *f, fpl_rmode_t mode, double *z, size_t n, fpl_sr_t *sr)
{
    if (f)
        fpl_round_array(f, z, z, n, mode, sr);
}

/* z = x + sign * y (y an array, or the scalar yc when y is NULL) */
static void v_add(const fpl_format_t *f, fpl_rmode_t mode, const double *x, const double *y,
                  double yc, double sign, double *z, size_t n, fpl_sr_t *sr)
{
    if (!f) {
        for (size_t i = 0; i < n; i++)
            z[i] = x[i] + sign * (y ? y[i] : yc);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double a = x[i], b = sign * (y ? y[i] : yc), h = odd_sum(a, b);
        if (h == 0) /* IEEE 754: an exact zero sum is +0, -0 rounding down, and x + x = x */
            h = a == 0 && b == 0 && signbit(a) == signbit(b) ? a : mode == FPL_RDOWN ? -0.0 : 0.0;
        z[i] = h;
    }
    finish(f, mode, z, n, sr);
}

/* z = c * y (c a scalar) */
static void v_scale(const fpl_format_t *f, fpl_rmode_t mode, double c, const double *y, double *z,
                    size_t n, fpl_sr_t *sr)
{
    if (!f) {
        for (size_t i = 0; i < n; i++)
            z[i] = c * y[i];
        return;
    }
    for (size_t i = 0; i < n; i++)
        z[i] = odd_prod(c, y[i]);
    finish(f, mode, z, n, sr);
}

/* z = x / y */
static void v_div(const fpl_format_t *f, fpl_rmode_t mode, const double *x, const double *y,
                  double *z, size_t n, fpl_sr_t *sr)
{
    if (!f) {
        for (size_t i = 0; i < n; i++)
            z[i] = x[i] / y[i];
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double q = x[i] / y[i];
        /* the exact quotient is q + r / y with r = x - q y exact */
        double r = isfinite(q) ? fma(-q, y[i], x[i]) : 0;
        z[i] = to_odd(q, r == 0 ? 0.0 : (r < 0) != (y[i] < 0) ? -1.0 : 1.0);
    }
    finish(f, mode, z, n, sr);
}

static double r1(const fpl_policy_t *p, const fpl_format_t *f, double v)
{
    return p->exact ? v : fpl_round(f, v, p->rnd, NULL);
}

/* ---- batched reductions ----------------------------------------------------
 * out[i] = sum_k X[k n + i] * Y(k, i) for i < n, k < len, where Y(k, i) is
 * Ym[k n + i], or yc[k], or 1 when both are NULL (a sum).  Under the exact
 * policy: Dot2 (Ogita, Rump & Oishi 2005) on each i.  Otherwise fpl_dot's
 * rules with sequential order, vectorised over i; other orders and aligned
 * accumulators call fpl_dot on each i. */
static int reduce(const fpl_policy_t *p, size_t n, size_t len, const double *X, const double *Ym,
                  const double *yc, double *out, double *t1, double *t2, fpl_sr_t *sr)
{
    int prod = Ym || yc;
    if (p->exact) {
        double *c = t1;
        for (size_t i = 0; i < n; i++)
            out[i] = c[i] = 0;
        for (size_t k = 0; k < len; k++) {
            const double *x = X + k * n;
            for (size_t i = 0; i < n; i++) {
                double y = Ym ? Ym[k * n + i] : yc ? yc[k] : 1.0;
                double h = x[i] * y, pe = prod ? fma(x[i], y, -h) : 0;
                double s = out[i], t = s + h, bp = t - s;
                c[i] += ((s - (t - bp)) + (h - bp)) + pe;
                out[i] = t;
            }
        }
        for (size_t i = 0; i < n; i++)
            out[i] += c[i];
        return FPL_OK;
    }
    if (p->align_frac || p->order != FPL_ORDER_SEQ) {
        double *xr = malloc(2 * len * sizeof *xr);
        if (!xr)
            return fpl__fail(FPL_ENOMEM, "diffusion: out of memory");
        double *yr = xr + len;
        for (size_t i = 0; i < n; i++) {
            for (size_t k = 0; k < len; k++) {
                xr[k] = X[k * n + i];
                yr[k] = Ym ? Ym[k * n + i] : yc ? yc[k] : 1.0;
            }
            out[i] = fpl_dot(p, xr, prod ? yr : NULL, len, sr);
        }
        free(xr);
        return FPL_OK;
    }
    /* sequential: s = round_acc(s + round_prod(x y)), as fpl_dot's add_once */
    double *pr = t1, *h = t2;
    for (size_t i = 0; i < n; i++)
        out[i] = 0;
    for (size_t k = 0; k < len; k++) {
        const double *x = X + k * n;
        if (!prod) {
            memcpy(pr, x, n * sizeof *pr);
        } else if (p->prod_exact) {
            for (size_t i = 0; i < n; i++)
                pr[i] = x[i] * (Ym ? Ym[k * n + i] : yc[k]);
        } else {
            for (size_t i = 0; i < n; i++)
                pr[i] = odd_prod(x[i], Ym ? Ym[k * n + i] : yc[k]);
            fpl_round_array(&p->prod, pr, pr, n, p->rnd, sr);
        }
        for (size_t i = 0; i < n; i++) {
            double v = odd_sum(out[i], pr[i]);
            if (v == 0 && p->rnd == FPL_RDOWN) /* IEEE 754: an exact zero sum is -0 */
                v = (signbit(out[i]) || signbit(pr[i])) ? -0.0 : 0.0;
            h[i] = v;
        }
        fpl_round_array(&p->acc, h, out, n, p->rnd, sr);
    }
    return FPL_OK;
}

/* ---- the exact-score denoiser -------------------------------------------- */

int fpl_mixture_eps(const fpl_mixture_t *m, const fpl_policy_t *p, double ab, const double *x,
                    size_t n, double *eps, fpl_sr_t *sr)
{
    const size_t K = m->K, d = m->d;
    const fpl_format_t *fa = p->exact ? NULL : &p->a, *facc = p->exact ? NULL : &p->acc;
    const fpl_format_t *fout = p->exact ? NULL : &p->out;
    const fpl_rmode_t rm = p->rnd;
    if (n == 0)
        return FPL_OK;
    /* SoA buffers: xa (d x n), diff (d x n), D/logits/e (K x n), num (d x n),
     * Z, tmp1, tmp2 (n each); c (K x d) and its transpose ct (d x K) */
    size_t need = 2 * d * n + 3 * K * n + d * n + 3 * n + 2 * K * d;
    double *buf = malloc(need * sizeof *buf);
    if (!buf)
        return fpl__fail(FPL_ENOMEM, "diffusion: out of memory");
    double *xa = buf, *diff = xa + d * n, *D = diff + d * n, *L = D + K * n, *E = L + K * n;
    double *num = E + K * n, *Z = num + d * n, *t1 = Z + n, *t2 = t1 + n, *c = t2 + n,
           *ct = c + K * d;
    const double v = ab * m->s * m->s + 1 - ab, sa = sqrt(ab);
    for (size_t k = 0; k < K; k++)
        for (size_t j = 0; j < d; j++)
            ct[j * K + k] = c[k * d + j] = r1(p, &p->w, sa * m->mu[k * d + j]);
    /* the input, transposed and rounded to a */
    for (size_t j = 0; j < d; j++) {
        for (size_t i = 0; i < n; i++)
            xa[j * n + i] = x[i * d + j];
        finish(fa, rm, xa + j * n, n, sr);
    }
    int st = FPL_OK;
    /* squared distances D_k = sum_j (x_j - c_kj)^2 */
    for (size_t k = 0; k < K && !st; k++) {
        for (size_t j = 0; j < d; j++)
            v_add(fa, rm, xa + j * n, NULL, c[k * d + j], -1.0, diff + j * n, n, sr);
        st = reduce(p, n, d, diff, diff, NULL, D + k * n, t1, t2, sr);
    }
    if (st)
        goto out;
    /* logits l_k = -D_k / (2v) in acc, minus their maximum, in acc */
    double inv2v = r1(p, facc, -1 / (2 * v));
    v_scale(facc, rm, inv2v, D, L, K * n, sr);
    for (size_t i = 0; i < n; i++) {
        double mx = -INFINITY;
        for (size_t k = 0; k < K; k++)
            mx = fmax(mx, L[k * n + i]);
        t1[i] = mx;
    }
    for (size_t k = 0; k < K; k++)
        v_add(facc, rm, L + k * n, t1, 0, -1.0, L + k * n, n, sr);
    /* e_k = exp(l_k - max): binary64 exp, rounded once to a */
    for (size_t i = 0; i < K * n; i++)
        E[i] = exp(L[i]);
    finish(fa, rm, E, K * n, sr);
    /* Z = sum_k e_k; num_j = sum_k e_k c_kj; m_j = num_j / Z in a */
    st = reduce(p, n, K, E, NULL, NULL, Z, t1, t2, sr);
    for (size_t j = 0; j < d && !st; j++)
        st = reduce(p, n, K, E, NULL, ct + j * K, num + j * n, t1, t2, sr);
    if (st)
        goto out;
    for (size_t j = 0; j < d; j++)
        v_div(fa, rm, num + j * n, Z, num + j * n, n, sr);
    /* eps_j = coef (x_j - m_j): residual in a, output in out */
    double coef = r1(p, fa, sqrt(1 - ab) / v);
    for (size_t j = 0; j < d; j++) {
        v_add(fa, rm, xa + j * n, num + j * n, 0, -1.0, diff + j * n, n, sr);
        v_scale(fout, rm, coef, diff + j * n, diff + j * n, n, sr);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            eps[i * d + j] = diff[j * n + i];
out:
    free(buf);
    return st;
}

static int mixture_denoise(const fpl_denoiser_t *D, const fpl_policy_t *p, size_t t, double ab,
                           const double *x, size_t n, double *eps, fpl_sr_t *sr)
{
    (void)t;
    return fpl_mixture_eps(D->state, p, ab, x, n, eps, sr);
}

void fpl_mixture_denoiser(const fpl_mixture_t *m, fpl_denoiser_t *D)
{
    D->d = m->d;
    D->eps = mixture_denoise;
    D->state = m;
}

/* ---- samplers -------------------------------------------------------------- */

static const char *const sampler_names[FPL_NSAMPLERS] = {"ddim", "ddpm", "ode", "heun"};

int fpl_sampler_parse(const char *name, fpl_sampler_t *k)
{
    for (int i = 0; i < FPL_NSAMPLERS; i++)
        if (!strcmp(name, sampler_names[i])) {
            *k = (fpl_sampler_t)i;
            return FPL_OK;
        }
    return fpl__fail(FPL_EINVAL, "unknown sampler '%s' (expected ddim, ddpm, ode or heun)", name);
}

const char *fpl_sampler_name(fpl_sampler_t k)
{
    return (unsigned)k < FPL_NSAMPLERS ? sampler_names[k] : "?";
}

/* y = c1 x + c2 e, each product and the sum rounded to out (z: scratch) */
static void lin2(const fpl_format_t *f, fpl_rmode_t rm, double c1, const double *x, double c2,
                 const double *e, double *y, double *z, size_t n, fpl_sr_t *sr)
{
    v_scale(f, rm, c1, x, y, n, sr);
    v_scale(f, rm, c2, e, z, n, sr);
    v_add(f, rm, y, z, 0, 1.0, y, n, sr);
}

int fpl_sampler_step(fpl_sampler_t k, const fpl_schedule_t *s, const fpl_denoiser_t *D,
                     const fpl_policy_t *p, size_t t, size_t t_prev, const double *x, double *y,
                     size_t n, const double *z, fpl_sr_t *sr)
{
    if (t > s->T || t_prev >= t || (unsigned)k >= FPL_NSAMPLERS || (k == FPL_SAMPLER_DDPM && !z))
        return fpl__fail(FPL_EINVAL, "sampler step: bad arguments");
    const size_t len = n * D->d;
    const fpl_format_t *f = p->exact ? NULL : &p->out;
    const fpl_rmode_t rm = p->rnd;
    const double a = s->alpha_bar[t], a1 = s->alpha_bar[t_prev];
    double *buf = malloc(3 * len * sizeof *buf);
    if (!buf)
        return fpl__fail(FPL_ENOMEM, "diffusion: out of memory");
    double *e = buf, *w = e + len, *w2 = w + len;
    int st = D->eps(D, p, t, a, x, n, e, sr);
    if (st)
        goto out;
    switch (k) {
    case FPL_SAMPLER_DDIM: /* x0 = (x - sqrt(1-a) e) / sqrt(a); y = sqrt(a1) x0 + sqrt(1-a1) e */
        v_scale(f, rm, r1(p, f, sqrt(1 - a)), e, w, len, sr);
        v_add(f, rm, x, w, 0, -1.0, w, len, sr);
        v_scale(f, rm, r1(p, f, 1 / sqrt(a)), w, w, len, sr);
        lin2(f, rm, r1(p, f, sqrt(a1)), w, r1(p, f, sqrt(1 - a1)), e, y, w2, len, sr);
        break;
    case FPL_SAMPLER_DDPM: { /* y = (x - b/sqrt(1-a) e) / sqrt(1-b) + sigma z */
        double b = 1 - a / a1, sigma = sqrt(b * (1 - a1) / (1 - a));
        v_scale(f, rm, r1(p, f, b / sqrt(1 - a)), e, w, len, sr);
        v_add(f, rm, x, w, 0, -1.0, w, len, sr);
        if (t_prev == 0) {
            v_scale(f, rm, r1(p, f, 1 / sqrt(1 - b)), w, y, len, sr);
        } else {
            lin2(f, rm, r1(p, f, 1 / sqrt(1 - b)), w, r1(p, f, sigma), z, y, w2, len, sr);
        }
        break;
    }
    case FPL_SAMPLER_ODE: { /* y = x + beta_t (t - t') / 2 (x - e / sqrt(1-a)) */
        v_scale(f, rm, r1(p, f, 1 / sqrt(1 - a)), e, w, len, sr);
        v_add(f, rm, x, w, 0, -1.0, w, len, sr);
        v_scale(f, rm, r1(p, f, 0.5 * s->beta[t] * (double)(t - t_prev)), w, w, len, sr);
        v_add(f, rm, x, w, 0, 1.0, y, len, sr);
        break;
    }
    case FPL_SAMPLER_HEUN: { /* u = x / sqrt(a); u' = u + (s' - s) e; y = sqrt(a1) u' */
        double sg = sqrt((1 - a) / a), sg1 = sqrt((1 - a1) / a1);
        double *u = w2;
        v_scale(f, rm, r1(p, f, 1 / sqrt(a)), x, u, len, sr);
        v_scale(f, rm, r1(p, f, sg1 - sg), e, w, len, sr);
        v_add(f, rm, u, w, 0, 1.0, w, len, sr);
        v_scale(f, rm, r1(p, f, sqrt(a1)), w, y, len, sr); /* the Euler predictor */
        if (t_prev == 0)
            break;
        /* corrector: u' = u + (s' - s) (e + e') / 2 with e' = eps(predictor, t') */
        double *e1 = malloc(len * sizeof *e1);
        if (!e1) {
            st = fpl__fail(FPL_ENOMEM, "diffusion: out of memory");
            break;
        }
        st = D->eps(D, p, t_prev, a1, y, n, e1, sr);
        if (!st) {
            v_add(f, rm, e, e1, 0, 1.0, e1, len, sr);
            v_scale(f, rm, r1(p, f, 0.5 * (sg1 - sg)), e1, w, len, sr);
            v_add(f, rm, u, w, 0, 1.0, w, len, sr);
            v_scale(f, rm, r1(p, f, sqrt(a1)), w, y, len, sr);
        }
        free(e1);
        break;
    }
    }
out:
    free(buf);
    return st;
}

int fpl_sample(fpl_sampler_t k, const fpl_schedule_t *s, const fpl_denoiser_t *D,
               const fpl_policy_t *p, size_t N, double *x, size_t n, gsl_rng *rng,
               fpl_sampler_cb cb, void *ctx, fpl_sr_t *sr)
{
    size_t len = n * D->d;
    size_t *tau = malloc((N + 1) * sizeof *tau);
    double *y = malloc(len * sizeof *y), *z = malloc(len * sizeof *z);
    int st = !tau || !y || !z ? fpl__fail(FPL_ENOMEM, "diffusion: out of memory") : FPL_OK;
    if (!st)
        st = fpl_schedule_steps(s, N, tau);
    if (!st && !p->exact)
        fpl_round_array(&p->out, x, x, len, p->rnd, sr);
    for (size_t i = N; i >= 1 && !st; i--) {
        if (k == FPL_SAMPLER_DDPM)
            for (size_t j = 0; j < len; j++)
                z[j] = gsl_ran_gaussian_ziggurat(rng, 1.0);
        st = fpl_sampler_step(k, s, D, p, tau[i], tau[i - 1], x, y, n, z, sr);
        if (!st)
            memcpy(x, y, len * sizeof *x);
        if (!st && cb)
            st = cb(ctx, i, tau[i], tau[i - 1], x, n);
    }
    free(tau);
    free(y);
    free(z);
    return st;
}

/* ---- the twin run -------------------------------------------------------------- */

static double rms_diff(const double *a, const double *b, size_t d)
{
    double s = 0;
    for (size_t j = 0; j < d; j++)
        s += (a[j] - b[j]) * (a[j] - b[j]);
    s = sqrt(s / (double)d);
    return isnan(s) ? INFINITY : s;
}

int fpl_diffusion_twin(fpl_sampler_t k, const fpl_schedule_t *s, const fpl_denoiser_t *ref,
                       const fpl_denoiser_t *const *emu, const fpl_policy_t *pol, fpl_sr_t *sr,
                       size_t P, size_t N, double *x_ref, double *x_emu, size_t n, gsl_rng *rng,
                       fpl_twin_cb cb, void *ctx)
{
    const size_t d = ref->d, len = n * d;
    for (size_t q = 0; q < P; q++)
        if (emu && emu[q] && emu[q]->d != d)
            return fpl__fail(FPL_EINVAL, "twin run: denoisers of different dimensions");
    fpl_policy_t exact;
    fpl_policy_exact(&exact);
    size_t *tau = malloc((N + 1) * sizeof *tau);
    double *ye = malloc(len * sizeof *ye), *yp = malloc(len * sizeof *yp);
    double *yx = malloc(len * sizeof *yx), *z = malloc(len * sizeof *z);
    double *in = malloc(2 * n * sizeof *in);
    int st = !tau || !ye || !yp || !yx || !z || !in
                 ? fpl__fail(FPL_ENOMEM, "diffusion: out of memory")
                 : fpl_schedule_steps(s, N, tau);
    double *ih = in + n;
    for (size_t q = 0; q < P && !st; q++) {
        double *x = x_emu + q * len;
        memcpy(x, x_ref, len * sizeof *x);
        if (!pol[q].exact)
            fpl_round_array(&pol[q].out, x, x, len, pol[q].rnd, sr ? &sr[q] : NULL);
        for (size_t i = 0; i < n; i++) {
            in[i] = rms_diff(x + i * d, x_ref + i * d, d);
            ih[i] = 0;
        }
        if (cb)
            st = cb(ctx, 0, s->T, s->T, q, in, ih, n);
    }
    for (size_t i = N; i >= 1 && !st; i--) {
        if (k == FPL_SAMPLER_DDPM)
            for (size_t j = 0; j < len; j++)
                z[j] = gsl_ran_gaussian_ziggurat(rng, 1.0);
        st = fpl_sampler_step(k, s, ref, &exact, tau[i], tau[i - 1], x_ref, ye, n, z, NULL);
        for (size_t q = 0; q < P && !st; q++) {
            const fpl_denoiser_t *D = emu && emu[q] ? emu[q] : ref;
            double *x = x_emu + q * len;
            st = fpl_sampler_step(k, s, D, &pol[q], tau[i], tau[i - 1], x, yp, n, z,
                                  sr ? &sr[q] : NULL);
            if (!st)
                st = fpl_sampler_step(k, s, ref, &exact, tau[i], tau[i - 1], x, yx, n, z, NULL);
            if (st)
                break;
            for (size_t r = 0; r < n; r++) {
                in[r] = rms_diff(yp + r * d, yx + r * d, d);
                ih[r] = rms_diff(yx + r * d, ye + r * d, d);
            }
            memcpy(x, yp, len * sizeof *x);
            if (cb)
                st = cb(ctx, N - i + 1, tau[i], tau[i - 1], q, in, ih, n);
        }
        if (!st)
            memcpy(x_ref, ye, len * sizeof *x_ref);
    }
    free(tau);
    free(ye);
    free(yp);
    free(yx);
    free(z);
    free(in);
    return st;
}

/* ---- sliced Wasserstein ------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double fpl_sliced_w1(const double *a, const double *b, size_t n, size_t d, size_t nproj,
                     gsl_rng *rng)
{
    if (n == 0 || nproj == 0)
        return NAN;
    double *pa = malloc(n * sizeof *pa), *pb = malloc(n * sizeof *pb),
           *dir = malloc(d * sizeof *dir);
    if (!pa || !pb || !dir) {
        free(pa);
        free(pb);
        free(dir);
        return NAN;
    }
    double total = 0;
    for (size_t q = 0; q < nproj; q++) {
        double norm = 0;
        for (size_t j = 0; j < d; j++) {
            dir[j] = gsl_ran_gaussian_ziggurat(rng, 1.0);
            norm += dir[j] * dir[j];
        }
        norm = sqrt(norm);
        for (size_t i = 0; i < n; i++) {
            double u = 0, w = 0;
            for (size_t j = 0; j < d; j++) {
                u += a[i * d + j] * dir[j];
                w += b[i * d + j] * dir[j];
            }
            pa[i] = u / norm;
            pb[i] = w / norm;
            if (!isfinite(pa[i]) || !isfinite(pb[i])) {
                total = NAN;
                goto out;
            }
        }
        qsort(pa, n, sizeof *pa, cmp_double);
        qsort(pb, n, sizeof *pb, cmp_double);
        double w1 = 0;
        for (size_t i = 0; i < n; i++)
            w1 += fabs(pa[i] - pb[i]);
        total += w1 / (double)n;
    }
    total /= (double)nproj;
out:
    free(pa);
    free(pb);
    free(dir);
    return total;
}
