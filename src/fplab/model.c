/* model.c -- small networks: layers, recipes, losses, forward, backward and
 * optimisers under a precision recipe */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "arith.h"
#include "error.h"
#include "internal.h"
#include "kernels.h"
#include "model.h"

/* ---- architecture ------------------------------------------------------- */

enum { MAX_LAYERS = 4096 };
#define MAX_WIDTH ((size_t)1 << 24)

fpl_model_t *fpl_model_alloc(size_t in)
{
    if (in == 0 || in > MAX_WIDTH) {
        fpl__fail(FPL_EINVAL, "model: input width %zu is not in 1..%zu", in, MAX_WIDTH);
        return NULL;
    }
    fpl_model_t *m = calloc(1, sizeof *m);
    if (!m) {
        fpl__fail(FPL_ENOMEM, "model: out of memory");
        return NULL;
    }
    m->in = m->out = in;
    return m;
}

void fpl_model_free(fpl_model_t *m)
{
    if (!m)
        return;
    free(m->layers);
    free(m->params);
    free(m);
}

/* Append a layer with `np` new parameters (zero; `ones` of them, from
 * `ones_at`, set to one). */
static int push(fpl_model_t *m, fpl_mlayer_t L, size_t np, size_t ones_at, size_t ones)
{
    if (m->nlayers >= MAX_LAYERS)
        return fpl__fail(FPL_EINVAL, "model: more than %d layers", MAX_LAYERS);
    if (L.out == 0 || L.out > MAX_WIDTH)
        return fpl__fail(FPL_EINVAL, "model: layer width %zu is not in 1..%zu", L.out, MAX_WIDTH);
    if (np > ((size_t)1 << 31) - m->nparams)
        return fpl__fail(FPL_EINVAL, "model: more than 2^31 parameters");
    if (m->nlayers == m->cap_layers) {
        size_t c = m->cap_layers ? 2 * m->cap_layers : 8;
        fpl_mlayer_t *l = realloc(m->layers, c * sizeof *l);
        if (!l)
            return fpl__fail(FPL_ENOMEM, "model: out of memory");
        m->layers = l;
        m->cap_layers = c;
    }
    if (m->nparams + np > m->cap_params) {
        size_t c = m->cap_params ? m->cap_params : 64;
        while (c < m->nparams + np)
            c *= 2;
        double *p = realloc(m->params, c * sizeof *p);
        if (!p)
            return fpl__fail(FPL_ENOMEM, "model: out of memory");
        m->params = p;
        m->cap_params = c;
    }
    L.in = m->out;
    L.off = m->nparams;
    L.nparams = np;
    for (size_t i = 0; i < np; i++)
        m->params[m->nparams + i] = (i >= ones_at && i < ones_at + ones) ? 1.0 : 0.0;
    m->nparams += np;
    m->layers[m->nlayers++] = L;
    m->out = L.out;
    return FPL_OK;
}

int fpl_model_add_linear(fpl_model_t *m, size_t out)
{
    fpl_mlayer_t L = {FPL_LAYER_LINEAR, 0, out, 0, 0, 0, 0};
    if (out == 0 || out > MAX_WIDTH)
        return fpl__fail(FPL_EINVAL, "model: linear width %zu is not in 1..%zu", out, MAX_WIDTH);
    if (m->out > (((size_t)1 << 31) - 1) / out)
        return fpl__fail(FPL_EINVAL, "model: linear %zu -> %zu is too large", m->out, out);
    return push(m, L, out * m->out + out, 0, 0);
}

int fpl_model_add_activation(fpl_model_t *m, fpl_layer_kind_t kind)
{
    if (kind != FPL_LAYER_RELU && kind != FPL_LAYER_GELU && kind != FPL_LAYER_SILU &&
        kind != FPL_LAYER_TANH)
        return fpl__fail(FPL_EINVAL, "model: layer kind %d is not an activation", (int)kind);
    fpl_mlayer_t L = {kind, 0, m->out, 0, 0, 0, 0};
    return push(m, L, 0, 0, 0);
}

int fpl_model_add_norm(fpl_model_t *m, fpl_layer_kind_t kind, double eps)
{
    if (kind != FPL_LAYER_LAYERNORM && kind != FPL_LAYER_RMSNORM)
        return fpl__fail(FPL_EINVAL, "model: layer kind %d is not a normalisation", (int)kind);
    if (!(eps > 0) || !isfinite(eps))
        return fpl__fail(FPL_EINVAL, "model: norm epsilon %g must be positive and finite", eps);
    fpl_mlayer_t L = {kind, 0, m->out, 0, 0, 0, eps};
    size_t d = m->out;
    return push(m, L, kind == FPL_LAYER_LAYERNORM ? 2 * d : d, 0, d);
}

int fpl_model_add_residual_begin(fpl_model_t *m)
{
    fpl_mlayer_t L = {FPL_LAYER_RES_BEGIN, 0, m->out, 0, 0, (size_t)-1, 0};
    int st = push(m, L, 0, 0, 0);
    if (st == 0)
        m->open++;
    return st;
}

int fpl_model_add_residual_end(fpl_model_t *m)
{
    if (m->open == 0)
        return fpl__fail(FPL_EINVAL, "model: residual end without a residual begin");
    size_t b = m->nlayers, depth = 0;
    while (b-- > 0) { /* the innermost open begin */
        if (m->layers[b].kind == FPL_LAYER_RES_END)
            depth++;
        else if (m->layers[b].kind == FPL_LAYER_RES_BEGIN && depth-- == 0)
            break;
    }
    if (m->layers[b].out != m->out)
        return fpl__fail(FPL_EINVAL,
                         "model: the residual branch changes the width from %zu to %zu",
                         m->layers[b].out, m->out);
    fpl_mlayer_t L = {FPL_LAYER_RES_END, 0, m->out, 0, 0, b, 0};
    int st = push(m, L, 0, 0, 0);
    if (st == 0) {
        m->layers[b].link = m->nlayers - 1;
        m->open--;
    }
    return st;
}

int fpl_model_add_time_embedding(fpl_model_t *m, size_t dim, double period)
{
    if (dim < 2 || dim % 2 || dim > MAX_WIDTH)
        return fpl__fail(FPL_EINVAL, "model: time embedding width %zu must be even and >= 2",
                         dim);
    if (!(period > 1) || !isfinite(period))
        return fpl__fail(FPL_EINVAL, "model: time embedding period %g must be > 1", period);
    fpl_mlayer_t L = {FPL_LAYER_TIMEEMB, 0, m->out - 1 + dim, 0, 0, 0, period};
    return push(m, L, 0, 0, 0);
}

int fpl_model_init(fpl_model_t *m, uint64_t seed)
{
    if (m->open)
        return fpl__fail(FPL_EINVAL, "model: %zu residual block(s) not closed", m->open);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!rng)
        return fpl__fail(FPL_ENOMEM, "model: out of memory");
    gsl_rng_set(rng, (unsigned long)(seed ^ (seed >> 32)));
    for (size_t i = 0; i < m->nlayers; i++) {
        const fpl_mlayer_t *L = &m->layers[i];
        double *p = m->params + L->off;
        if (L->kind == FPL_LAYER_LINEAR) {
            double a = 1.0 / sqrt((double)L->in);
            for (size_t j = 0; j < L->in * L->out; j++)
                p[j] = a * (2.0 * gsl_rng_uniform(rng) - 1.0);
            memset(p + L->in * L->out, 0, L->out * sizeof *p);
        } else if (L->kind == FPL_LAYER_LAYERNORM || L->kind == FPL_LAYER_RMSNORM) {
            for (size_t j = 0; j < L->nparams; j++)
                p[j] = j < L->out ? 1.0 : 0.0;
        }
    }
    gsl_rng_free(rng);
    return FPL_OK;
}

fpl_model_t *fpl_model_clone(const fpl_model_t *m)
{
    fpl_model_t *c = calloc(1, sizeof *c);
    if (!c)
        goto oom;
    *c = *m;
    c->layers = malloc((m->nlayers ? m->nlayers : 1) * sizeof *c->layers);
    c->params = malloc((m->nparams ? m->nparams : 1) * sizeof *c->params);
    c->cap_layers = m->nlayers;
    c->cap_params = m->nparams;
    if (!c->layers || !c->params) {
        fpl_model_free(c);
        goto oom;
    }
    if (m->nlayers)
        memcpy(c->layers, m->layers, m->nlayers * sizeof *c->layers);
    if (m->nparams)
        memcpy(c->params, m->params, m->nparams * sizeof *c->params);
    return c;
oom:
    fpl__fail(FPL_ENOMEM, "model: out of memory");
    return NULL;
}

/* ---- recipes -------------------------------------------------------------- */

static int fmt(const char *name, fpl_format_t *f)
{
    return fpl_format_parse(name, f);
}

int fpl_recipe_parse(const char *spec, fpl_recipe_t *r)
{
    char buf[256];
    if (!spec || strlen(spec) >= sizeof buf)
        return fpl__fail(FPL_EINVAL, "recipe: missing or too long");
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL, *name = strtok_r(buf, ",", &save);
    memset(r, 0, sizeof *r);
    if (!name)
        return fpl__fail(FPL_EINVAL, "recipe: empty");
    const char *a, *g, *gf, *gb;
    if (strcmp(name, "exact") == 0) {
        a = g = gf = gb = "fp64";
        r->exact = 1;
    } else if (strcmp(name, "fp32") == 0) {
        a = g = gf = gb = "fp32";
    } else if (strcmp(name, "bf16") == 0) {
        a = g = gf = gb = "bf16";
    } else if (strcmp(name, "fp16") == 0) {
        a = g = gf = gb = "fp16";
        r->loss_scaling = 1;
    } else if (strcmp(name, "fp8") == 0 || strcmp(name, "fp8-current") == 0) {
        a = g = "bf16";
        gf = "e4m3";
        gb = "e5m2";
        r->scaling = strcmp(name, "fp8") == 0 ? FPL_SCALE_DELAYED : FPL_SCALE_CURRENT;
    } else {
        return fpl__fail(FPL_EINVAL,
                         "recipe: unknown name '%s' (exact, fp32, bf16, fp16, fp8, fp8-current)",
                         name);
    }
    snprintf(r->name, sizeof r->name, "%s", name);
    if (fmt(r->exact ? "fp64" : "fp32", &r->master) || fmt(a, &r->act) || fmt(g, &r->grad) ||
        fmt(gf, &r->gemm_fwd) || fmt(gb, &r->gemm_bwd) || fmt(r->exact ? "fp64" : "fp32", &r->acc))
        return FPL_EINVAL;
    if (r->scaling != FPL_SCALE_NONE) { /* hardware casts with satfinite */
        fpl_format_set_overflow(&r->gemm_fwd, FPL_OVERFLOW_SATURATE);
        fpl_format_set_overflow(&r->gemm_bwd, FPL_OVERFLOW_SATURATE);
    }
    r->history = 16;
    r->margin = 0;
    r->loss_scale = r->loss_scaling ? 65536.0 : 1.0;
    r->growth_interval = 2000;
    for (char *kv = strtok_r(NULL, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return fpl__fail(FPL_EINVAL, "recipe: '%s' is not key=value", kv);
        *eq = '\0';
        const char *val = eq + 1;
        char *end;
        double v = strtod(val, &end);
        if (end == val || *end)
            return fpl__fail(FPL_EINVAL, "recipe: %s=%s is not a number", kv, val);
        if (strcmp(kv, "history") == 0 && v >= 1 && v <= 1024 && v == floor(v)) {
            r->history = (size_t)v;
        } else if (strcmp(kv, "margin") == 0 && v >= 0 && v <= 16 && v == floor(v)) {
            r->margin = (int)v;
        } else if (strcmp(kv, "scale") == 0 && v >= 1 && v <= 0x1p64 &&
                   frexp(v, &(int){0}) == 0.5) {
            r->loss_scale = v;
        } else if (strcmp(kv, "growth") == 0 && v >= 1 && v <= 1e9 && v == floor(v)) {
            r->growth_interval = (unsigned)v;
        } else {
            return fpl__fail(FPL_EINVAL,
                             "recipe: bad setting %s=%s (history=1..1024, margin=0..16, "
                             "scale=power of two >= 1, growth>=1)",
                             kv, val);
        }
    }
    return FPL_OK;
}

/* ---- losses ---------------------------------------------------------------- */

double fpl_loss_xent(const double *logits, const int *labels, size_t B, size_t C, double *d)
{
    double total = 0;
    for (size_t b = 0; b < B; b++) {
        const double *z = logits + b * C;
        int y = labels[b];
        if (y < 0 || (size_t)y >= C)
            return NAN;
        double mx = z[0];
        for (size_t c = 1; c < C; c++)
            mx = fmax(mx, z[c]);
        double s = 0;
        for (size_t c = 0; c < C; c++)
            s += exp(z[c] - mx);
        total += mx + log(s) - z[y];
        if (d)
            for (size_t c = 0; c < C; c++)
                d[b * C + c] = (exp(z[c] - mx) / s - (c == (size_t)y)) / (double)B;
    }
    return total / (double)B;
}

double fpl_loss_mse(const double *y, const double *t, size_t B, size_t C, double *d)
{
    double total = 0, n = (double)(B * C);
    for (size_t i = 0; i < B * C; i++) {
        double e = y[i] - t[i];
        total += e * e;
        if (d)
            d[i] = 2.0 * e / n;
    }
    return total / n;
}

/* ---- the trainer ------------------------------------------------------------- */

/* The per-tensor scale of one GEMM input and its amax history. */
typedef struct {
    double *hist;
    size_t pos, n;
    double scale;
} tscale_t;

/* What a linear layer keeps from its forward pass for the backward. */
typedef struct {
    double *xq; /* maxB x in: X as the GEMM saw it (scaled, rounded) */
    double *wq; /* out x in: W likewise */
    tscale_t s[3];  /* X, W, dY */
} linstate_t;

struct fpl_trainer {
    fpl_model_t *m;
    fpl_recipe_t r;
    fpl_optim_t o;
    size_t maxB, B;
    int threads, have_fwd;
    fpl_policy_t gemm;  /* the GEMM: exact products, sequential sums in acc */
    fpl_policy_t lay;   /* elementwise and norm kernels: a = out = act */
    double *grads, *om, *ov, *gtmp;
    double **acts;      /* acts[i]: input of layer i; acts[nlayers]: output */
    double **skip;      /* RES_END i: the output gradient, for its RES_BEGIN */
    linstate_t *lin;
    double *ga, *gb;    /* gradient ping-pong, maxB x widest */
    double *dout;       /* maxB x out: loss gradient (fpl_trainer_train) */
    double *t1, *t2, *t3, *col; /* GEMM scratch */
    double loss_scale;
    unsigned good;
    size_t steps, skipped;
};

static double rd(const fpl_trainer_t *t, const fpl_format_t *f, double v)
{
    return t->r.exact ? v : fpl_round(f, v, FPL_RNE, NULL);
}

static void rd_array(const fpl_trainer_t *t, const fpl_format_t *f, const double *in, double *out,
                     size_t n)
{
    if (t->r.exact) {
        if (in != out)
            memcpy(out, in, n * sizeof *in);
    } else {
        fpl_round_array(f, in, out, n, FPL_RNE, NULL);
    }
}

/* Multiply by the inverse scale (a power of two, exact in binary64) in the
 * accumulator's format: the GEMM epilogue. */
static void descale(const fpl_trainer_t *t, double *C, size_t n, double inv)
{
    if (inv == 1.0)
        return; /* C already holds values of acc */
    for (size_t i = 0; i < n; i++)
        C[i] *= inv;
    rd_array(t, &t->r.acc, C, C, n);
}

void fpl_trainer_free(fpl_trainer_t *t)
{
    if (!t)
        return;
    if (t->acts)
        for (size_t i = 0; i <= t->m->nlayers; i++)
            free(t->acts[i]);
    if (t->skip)
        for (size_t i = 0; i < t->m->nlayers; i++)
            free(t->skip[i]);
    if (t->lin)
        for (size_t i = 0; i < t->m->nlayers; i++) {
            free(t->lin[i].xq);
            free(t->lin[i].wq);
            for (int k = 0; k < 3; k++)
                free(t->lin[i].s[k].hist);
        }
    free(t->acts);
    free(t->skip);
    free(t->lin);
    free(t->grads);
    free(t->om);
    free(t->ov);
    free(t->gtmp);
    free(t->ga);
    free(t->gb);
    free(t->dout);
    free(t->t1);
    free(t->t2);
    free(t->t3);
    free(t->col);
    free(t);
}

fpl_trainer_t *fpl_trainer_alloc(fpl_model_t *m, const fpl_recipe_t *r, const fpl_optim_t *o,
                                 size_t max_batch, int threads)
{
    if (m->open || m->nlayers == 0 || max_batch == 0 || max_batch > MAX_WIDTH || threads < 1) {
        fpl__fail(FPL_EINVAL, "trainer: needs a complete model with layers, max_batch >= 1 "
                              "and threads >= 1");
        return NULL;
    }
    fpl_trainer_t *t = calloc(1, sizeof *t);
    if (!t)
        goto oom;
    t->m = m;
    t->r = *r;
    t->o = *o;
    t->maxB = max_batch;
    t->threads = threads;
    t->loss_scale = r->loss_scaling ? r->loss_scale : 1.0;
    if (r->exact) {
        fpl_policy_exact(&t->gemm);
        fpl_policy_exact(&t->lay);
    } else {
        if (fpl_policy_parse("a=fp32,prod=exact,acc=fp32,out=fp32,norm=fp32,rnd=rne,order=seq",
                             &t->gemm) != 0) {
            free(t);
            return NULL;
        }
        t->gemm.acc = t->gemm.out = r->acc;
        t->lay = t->gemm;
        t->lay.a = t->lay.w = r->act;
        fpl_format_parse("fp64", &t->lay.out); /* the affine step rounds to act */
    }
    size_t n = m->nlayers, P = m->nparams ? m->nparams : 1, wmax = m->in, big = 1;
    for (size_t i = 0; i < n; i++) {
        const fpl_mlayer_t *L = &m->layers[i];
        wmax = L->out > wmax ? L->out : wmax;
        if (L->kind == FPL_LAYER_LINEAR) {
            size_t s = L->in * L->out;
            big = s > big ? s : big;
        }
    }
    big = big > wmax * max_batch ? big : wmax * max_batch;
    big = big > 2 * wmax ? big : 2 * wmax;
    t->grads = calloc(P, sizeof *t->grads);
    t->om = calloc(P, sizeof *t->om);
    t->ov = calloc(P, sizeof *t->ov);
    t->gtmp = calloc(P, sizeof *t->gtmp);
    t->acts = calloc(n + 1, sizeof *t->acts);
    t->skip = calloc(n, sizeof *t->skip);
    t->lin = calloc(n, sizeof *t->lin);
    t->ga = malloc(wmax * max_batch * sizeof *t->ga);
    t->gb = malloc(wmax * max_batch * sizeof *t->gb);
    t->dout = malloc(m->out * max_batch * sizeof *t->dout);
    t->t1 = malloc(big * sizeof *t->t1);
    t->t2 = malloc(big * sizeof *t->t2);
    t->t3 = malloc(big * sizeof *t->t3);
    t->col = malloc((max_batch > wmax ? max_batch : wmax) * sizeof *t->col);
    if (!t->grads || !t->om || !t->ov || !t->gtmp || !t->acts || !t->skip || !t->lin || !t->ga || !t->gb ||
        !t->dout || !t->t1 || !t->t2 || !t->t3 || !t->col)
        goto oom;
    for (size_t i = 0; i <= n; i++) {
        size_t w = i < n ? m->layers[i].in : m->out;
        if (!(t->acts[i] = malloc(w * max_batch * sizeof(double))))
            goto oom;
    }
    for (size_t i = 0; i < n; i++) {
        const fpl_mlayer_t *L = &m->layers[i];
        if (L->kind == FPL_LAYER_RES_END &&
            !(t->skip[i] = malloc(L->out * max_batch * sizeof(double))))
            goto oom;
        if (L->kind == FPL_LAYER_LINEAR) {
            linstate_t *s = &t->lin[i];
            s->xq = malloc(L->in * max_batch * sizeof *s->xq);
            s->wq = malloc(L->in * L->out * sizeof *s->wq);
            if (!s->xq || !s->wq)
                goto oom;
            for (int k = 0; k < 3; k++) {
                s->s[k].scale = 1;
                if (!(s->s[k].hist = calloc(r->history ? r->history : 1, sizeof(double))))
                    goto oom;
            }
        }
    }
    rd_array(t, &r->master, m->params, m->params, m->nparams);
    return t;
oom:
    fpl_trainer_free(t);
    fpl__fail(FPL_ENOMEM, "trainer: out of memory");
    return NULL;
}

/* C (m x n) = A (m x k) B^T (B: n x k), shared by output rows between the
 * threads; each output is one fpl_dot in its own order, so the bits do not
 * depend on the split. */
static void gemm(const fpl_trainer_t *t, const double *A, const double *Bm, double *C, size_t m,
                 size_t k, size_t n)
{
    int nt = t->threads;
    if (nt > 1 && m >= 2 && m * k * n >= 4096) {
        size_t chunk = (m + (size_t)nt - 1) / (size_t)nt;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int c = 0; c < nt; c++) {
            size_t i0 = (size_t)c * chunk, i1 = i0 + chunk < m ? i0 + chunk : m;
            if (i0 < i1)
                fpl_matmul(&t->gemm, A + i0 * k, Bm, C + i0 * n, i1 - i0, k, n, NULL);
        }
    } else {
        fpl_matmul(&t->gemm, A, Bm, C, m, k, n, NULL);
    }
}

static void transpose(const double *A, double *T, size_t rows, size_t cols)
{
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++)
            T[j * rows + i] = A[i * cols + j];
}

static double amax_of(const double *x, size_t n)
{
    double a = 0;
    for (size_t i = 0; i < n; i++) {
        double v = fabs(x[i]);
        if (v > a || isnan(v))
            a = v;
    }
    return a;
}

/* 2^(floor(log2(fmax / amax)) - margin), so that amax * s <= fmax; 1 for a
 * zero or non-finite amax; kept inside binary32's normal range. */
static double pow2_scale(double fmax, double amax, int margin)
{
    if (!(amax > 0) || !isfinite(amax))
        return 1.0;
    int e;
    frexp(fmax / amax, &e);
    int k = e - 1 - margin;
    if (k > 120)
        k = 120;
    if (k < -120)
        k = -120;
    double s = ldexp(1.0, k);
    while (amax * s > fmax && k > -120)
        s = ldexp(1.0, --k);
    return s;
}

/* Round n values of x, scaled, to f into q; returns the scale used and
 * records the amax when training with delayed scaling. */
static double quantize(fpl_trainer_t *t, tscale_t *ts, const fpl_format_t *f, const double *x,
                       double *q, size_t n, int train)
{
    if (t->r.exact) {
        memcpy(q, x, n * sizeof *x);
        return ts->scale = 1.0;
    }
    double s = 1.0;
    if (t->r.scaling != FPL_SCALE_NONE) {
        double a = amax_of(x, n);
        double use = a;
        if (t->r.scaling == FPL_SCALE_DELAYED && ts->n > 0) {
            use = 0;
            for (size_t i = 0; i < ts->n; i++)
                use = fmax(use, ts->hist[i]);
        }
        s = pow2_scale(f->max_finite, use, t->r.margin);
        if (train && t->r.scaling == FPL_SCALE_DELAYED) {
            ts->hist[ts->pos] = a;
            ts->pos = (ts->pos + 1) % t->r.history;
            if (ts->n < t->r.history)
                ts->n++;
        }
        for (size_t i = 0; i < n; i++)
            q[i] = x[i] * s; /* exact: s is a power of two */
        fpl_round_array(f, q, q, n, FPL_RNE, NULL);
    } else {
        fpl_round_array(f, x, q, n, FPL_RNE, NULL);
    }
    return ts->scale = s;
}

static double gelu_d(double x)
{
    return 0.5 * erfc(-x / sqrt(2.0)) + x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
}

static double sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

static void norm_stats(const double *x, size_t d, double eps, int center, double *mean,
                       double *rstd)
{
    double mu = 0, v = 0;
    if (center) {
        for (size_t i = 0; i < d; i++)
            mu += x[i];
        mu /= (double)d;
    }
    for (size_t i = 0; i < d; i++)
        v += (x[i] - mu) * (x[i] - mu);
    *mean = mu;
    *rstd = 1.0 / sqrt(v / (double)d + eps);
}

static void forward_layer(fpl_trainer_t *t, size_t li, int train)
{
    const fpl_mlayer_t *L = &t->m->layers[li];
    const double *x = t->acts[li], *P = t->m->params + L->off;
    double *y = t->acts[li + 1];
    size_t B = t->B, in = L->in, out = L->out;
    const fpl_recipe_t *r = &t->r;
    switch (L->kind) {
    case FPL_LAYER_LINEAR: {
        linstate_t *s = &t->lin[li];
        double sx = quantize(t, &s->s[0], &r->gemm_fwd, x, s->xq, B * in, train);
        double sw = quantize(t, &s->s[1], &r->gemm_fwd, P, s->wq, out * in, train);
        double *C = t->t1, *bias = t->col;
        gemm(t, s->xq, s->wq, C, B, in, out);
        /* the epilogue: descale and add the bias (in act) in acc, round to act */
        descale(t, C, B * out, 1.0 / (sx * sw));
        rd_array(t, &r->act, P + out * in, bias, out);
        for (size_t b = 0; b < B; b++)
            for (size_t j = 0; j < out; j++)
                C[b * out + j] += bias[j];
        rd_array(t, &r->acc, C, C, B * out);
        rd_array(t, &r->act, C, y, B * out);
        break;
    }
    case FPL_LAYER_RELU:
        for (size_t i = 0; i < B * in; i++)
            y[i] = x[i] > 0 ? x[i] : 0.0;
        break;
    case FPL_LAYER_GELU: { /* fpl_gelu's binary64 value, rounded to act */
        fpl_policy_t ex;
        fpl_policy_exact(&ex);
        fpl_gelu(&ex, x, y, B * in, NULL);
        rd_array(t, &r->act, y, y, B * in);
        break;
    }
    case FPL_LAYER_SILU:
        for (size_t i = 0; i < B * in; i++)
            y[i] = x[i] * sigmoid(x[i]);
        rd_array(t, &r->act, y, y, B * in);
        break;
    case FPL_LAYER_TANH:
        for (size_t i = 0; i < B * in; i++)
            y[i] = tanh(x[i]);
        rd_array(t, &r->act, y, y, B * in);
        break;
    case FPL_LAYER_LAYERNORM:
    case FPL_LAYER_RMSNORM: {
        int ln = L->kind == FPL_LAYER_LAYERNORM;
        double *gb = t->t1; /* gamma (and beta) as used: in act */
        rd_array(t, &r->act, P, gb, ln ? 2 * in : in);
        for (size_t b = 0; b < B; b++) {
            if (ln)
                fpl_layernorm(&t->lay, x + b * in, y + b * in, in, L->eps, NULL);
            else
                fpl_rmsnorm(&t->lay, x + b * in, y + b * in, in, L->eps, NULL);
            for (size_t j = 0; j < in; j++)
                y[b * in + j] = gb[j] * y[b * in + j] + (ln ? gb[in + j] : 0.0);
        }
        rd_array(t, &r->act, y, y, B * in);
        break;
    }
    case FPL_LAYER_RES_BEGIN:
        memcpy(y, x, B * in * sizeof *x);
        break;
    case FPL_LAYER_RES_END: {
        const double *skip = t->acts[L->link];
        for (size_t i = 0; i < B * in; i++)
            y[i] = x[i] + skip[i];
        rd_array(t, &r->act, y, y, B * in);
        break;
    }
    case FPL_LAYER_TIMEEMB: {
        size_t h = (out - (in - 1)) / 2;
        for (size_t b = 0; b < B; b++) {
            const double *xr = x + b * in;
            double *yr = y + b * out, tt = xr[in - 1];
            memcpy(yr, xr, (in - 1) * sizeof *xr);
            for (size_t k = 0; k < h; k++) {
                double w = pow(L->eps, -(double)k / (double)h);
                yr[in - 1 + k] = rd(t, &r->act, sin(tt * w));
                yr[in - 1 + h + k] = rd(t, &r->act, cos(tt * w));
            }
        }
        break;
    }
    }
}

const double *fpl_trainer_forward(fpl_trainer_t *t, const double *x, size_t B, int train)
{
    if (B == 0 || B > t->maxB) {
        fpl__fail(FPL_EINVAL, "trainer: batch of %zu rows (1..%zu)", B, t->maxB);
        return NULL;
    }
    t->B = B;
    rd_array(t, &t->r.act, x, t->acts[0], B * t->m->in);
    for (size_t i = 0; i < t->m->nlayers; i++)
        forward_layer(t, i, train);
    t->have_fwd = train != 0;
    return t->acts[t->m->nlayers];
}

/* dy (B x out) -> dx (B x in), parameter gradients into t->grads. */
static void backward_layer(fpl_trainer_t *t, size_t li, const double *dy, double *dx)
{
    const fpl_mlayer_t *L = &t->m->layers[li];
    const double *x = t->acts[li], *P = t->m->params + L->off;
    double *G = t->grads + L->off;
    size_t B = t->B, in = L->in, out = L->out;
    const fpl_recipe_t *r = &t->r;
    switch (L->kind) {
    case FPL_LAYER_LINEAR: {
        linstate_t *s = &t->lin[li];
        double *dyq = t->t1, *T = t->t2, *C = t->t3;
        double sg = quantize(t, &s->s[2], &r->gemm_bwd, dy, dyq, B * out, 1);
        double sx = s->s[0].scale, sw = s->s[1].scale;
        /* dX = dY W: A = dYq (B x out), B^T = Wq^T (in x out) */
        transpose(s->wq, T, out, in);
        gemm(t, dyq, T, C, B, out, in);
        descale(t, C, B * in, 1.0 / (sg * sw));
        rd_array(t, &r->grad, C, dx, B * in);
        /* dW = dY^T X: A = dYq^T (out x B), B^T = Xq^T (in x B) */
        transpose(dyq, T, B, out);
        transpose(s->xq, dyq, B, in); /* dyq is free now */
        gemm(t, T, dyq, C, out, B, in);
        descale(t, C, out * in, 1.0 / (sg * sx));
        rd_array(t, &r->grad, C, G, out * in);
        /* db = column sums of dY, accumulated in acc */
        for (size_t j = 0; j < out; j++) {
            for (size_t b = 0; b < B; b++)
                t->col[b] = dy[b * out + j];
            G[out * in + j] = rd(t, &r->grad, fpl_sum(&t->gemm, t->col, B, NULL));
        }
        break;
    }
    case FPL_LAYER_RELU:
        for (size_t i = 0; i < B * in; i++)
            dx[i] = x[i] > 0 ? dy[i] : 0.0;
        break;
    case FPL_LAYER_GELU:
        for (size_t i = 0; i < B * in; i++)
            dx[i] = dy[i] * gelu_d(x[i]);
        rd_array(t, &r->grad, dx, dx, B * in);
        break;
    case FPL_LAYER_SILU:
        for (size_t i = 0; i < B * in; i++) {
            double sg = sigmoid(x[i]);
            dx[i] = dy[i] * sg * (1.0 + x[i] * (1.0 - sg));
        }
        rd_array(t, &r->grad, dx, dx, B * in);
        break;
    case FPL_LAYER_TANH:
        for (size_t i = 0; i < B * in; i++) {
            double th = tanh(x[i]);
            dx[i] = dy[i] * (1.0 - th * th);
        }
        rd_array(t, &r->grad, dx, dx, B * in);
        break;
    case FPL_LAYER_LAYERNORM:
    case FPL_LAYER_RMSNORM: {
        int ln = L->kind == FPL_LAYER_LAYERNORM;
        double *dg = t->t1, *dbeta = t->t1 + in; /* binary64 sums over the batch */
        double *gam = t->t2;                       /* gamma as the forward used it */
        memset(t->t1, 0, 2 * in * sizeof *t->t1);
        rd_array(t, &r->act, P, gam, in);
        for (size_t b = 0; b < B; b++) {
            const double *xr = x + b * in, *dyr = dy + b * in;
            double mean, rstd, mg = 0, mgx = 0;
            norm_stats(xr, in, L->eps, ln, &mean, &rstd);
            for (size_t j = 0; j < in; j++) {
                double xh = (xr[j] - mean) * rstd, g = dyr[j] * gam[j];
                mg += g;
                mgx += g * xh;
                dg[j] += dyr[j] * xh;
                dbeta[j] += dyr[j];
            }
            mg = ln ? mg / (double)in : 0.0;
            mgx /= (double)in;
            for (size_t j = 0; j < in; j++) {
                double xh = (xr[j] - mean) * rstd, g = dyr[j] * gam[j];
                dx[b * in + j] = rstd * (g - mg - xh * mgx);
            }
        }
        rd_array(t, &r->grad, dx, dx, B * in);
        rd_array(t, &r->grad, dg, G, ln ? 2 * in : in); /* dgamma, then dbeta */
        break;
    }
    case FPL_LAYER_RES_END:
        memcpy(t->skip[li], dy, B * in * sizeof *dy);
        memcpy(dx, dy, B * in * sizeof *dy);
        break;
    case FPL_LAYER_RES_BEGIN: {
        const double *sk = t->skip[L->link];
        for (size_t i = 0; i < B * in; i++)
            dx[i] = dy[i] + sk[i];
        rd_array(t, &r->grad, dx, dx, B * in);
        break;
    }
    case FPL_LAYER_TIMEEMB: {
        size_t h = (out - (in - 1)) / 2;
        for (size_t b = 0; b < B; b++) {
            const double *dyr = dy + b * out;
            double tt = x[b * in + in - 1], dt = 0;
            memcpy(dx + b * in, dyr, (in - 1) * sizeof *dyr);
            for (size_t k = 0; k < h; k++) {
                double w = pow(L->eps, -(double)k / (double)h);
                dt += dyr[in - 1 + k] * w * cos(tt * w) - dyr[in - 1 + h + k] * w * sin(tt * w);
            }
            dx[b * in + in - 1] = rd(t, &r->grad, dt);
        }
        break;
    }
    }
}

const double *fpl_trainer_backward(fpl_trainer_t *t, const double *dout)
{
    if (!t->have_fwd) {
        fpl__fail(FPL_EINVAL, "trainer: backward without a training forward pass");
        return NULL;
    }
    size_t B = t->B, n = t->m->nlayers;
    double *cur = t->ga, *nxt = t->gb;
    for (size_t i = 0; i < B * t->m->out; i++)
        cur[i] = dout[i] * t->loss_scale;
    rd_array(t, &t->r.grad, cur, cur, B * t->m->out);
    for (size_t li = n; li-- > 0;) {
        backward_layer(t, li, cur, nxt);
        double *tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    size_t nin = B * t->m->in;
    for (size_t i = 0; i < nin; i++)
        nxt[i] = cur[i] / t->loss_scale;
    return nxt;
}

const double *fpl_trainer_grads(const fpl_trainer_t *t)
{
    return t->grads;
}

int fpl_trainer_step(fpl_trainer_t *t)
{
    const fpl_format_t *mf = &t->r.master;
    size_t P = t->m->nparams;
    double *w = t->m->params, S = t->loss_scale;
    if (t->r.loss_scaling) {
        for (size_t i = 0; i < P; i++)
            if (!isfinite(t->grads[i])) {
                t->loss_scale = S / 2 >= 1 ? S / 2 : 1;
                t->good = 0;
                t->skipped++;
                return 1;
            }
    }
    t->steps++;
    const fpl_optim_t *o = &t->o;
    double bc1 = 1 - pow(o->beta1, (double)t->steps), bc2 = 1 - pow(o->beta2, (double)t->steps);
    double *g = t->gtmp, *om = t->om, *ov = t->ov;
    /* each statement is one rounding per element, done array by array */
    for (size_t i = 0; i < P; i++)
        g[i] = t->grads[i] / S; /* unscaled (S a power of two), in master */
    rd_array(t, mf, g, g, P);
    if (o->weight_decay != 0) {
        for (size_t i = 0; i < P; i++)
            g[i] += o->weight_decay * w[i];
        rd_array(t, mf, g, g, P);
    }
    if (o->kind == FPL_OPT_SGD) {
        for (size_t i = 0; i < P; i++)
            om[i] = o->momentum * om[i] + g[i];
        rd_array(t, mf, om, om, P);
        for (size_t i = 0; i < P; i++)
            w[i] -= o->lr * om[i];
    } else {
        for (size_t i = 0; i < P; i++)
            om[i] = o->beta1 * om[i] + (1 - o->beta1) * g[i];
        rd_array(t, mf, om, om, P);
        for (size_t i = 0; i < P; i++)
            ov[i] = o->beta2 * ov[i] + (1 - o->beta2) * g[i] * g[i];
        rd_array(t, mf, ov, ov, P);
        for (size_t i = 0; i < P; i++)
            w[i] -= o->lr * ((om[i] / bc1) / (sqrt(ov[i] / bc2) + o->eps));
    }
    rd_array(t, mf, w, w, P);
    if (t->r.loss_scaling && ++t->good >= t->r.growth_interval) {
        t->good = 0;
        if (t->loss_scale < 0x1p64)
            t->loss_scale *= 2;
    }
    return 0;
}

double fpl_trainer_train(fpl_trainer_t *t, const double *x, const double *y, const int *labels,
                         size_t B)
{
    if ((y == NULL) == (labels == NULL)) {
        fpl__fail(FPL_EINVAL, "trainer: give targets (MSE) or labels (cross-entropy), not both");
        return NAN;
    }
    const double *out = fpl_trainer_forward(t, x, B, 1);
    if (!out)
        return NAN;
    double loss = labels ? fpl_loss_xent(out, labels, B, t->m->out, t->dout)
                         : fpl_loss_mse(out, y, B, t->m->out, t->dout);
    if (isnan(loss) && labels) {
        fpl__fail(FPL_EINVAL, "trainer: a label is outside 0..%zu", t->m->out - 1);
        return NAN;
    }
    fpl_trainer_backward(t, t->dout);
    fpl_trainer_step(t);
    return loss;
}

void fpl_trainer_set_lr(fpl_trainer_t *t, double lr)
{
    t->o.lr = lr;
}

double fpl_trainer_loss_scale(const fpl_trainer_t *t)
{
    return t->loss_scale;
}

size_t fpl_trainer_steps(const fpl_trainer_t *t, size_t *skipped)
{
    if (skipped)
        *skipped = t->skipped;
    return t->steps;
}

double fpl_trainer_scale(const fpl_trainer_t *t, size_t layer, int which)
{
    if (layer >= t->m->nlayers || t->m->layers[layer].kind != FPL_LAYER_LINEAR || which < 0 ||
        which > 2)
        return 0;
    return t->lin[layer].s[which].scale;
}
