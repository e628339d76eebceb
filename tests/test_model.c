/* test_model.c -- the model module: gradients against finite differences,
 * recipes against independent float arithmetic, learning, FP8 scaling, loss
 * scaling, weight files and determinism */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"

/* ---- helpers ---------------------------------------------------------------- */

static fpl_recipe_t recipe(const char *spec)
{
    fpl_recipe_t r;
    if (fpl_recipe_parse(spec, &r) != 0)
        fail_msg("recipe '%s': %s", spec, fpl_last_error());
    return r;
}

/* A normal deviate from the test generator (Box-Muller). */
static double gauss(fpt_rng_t *g)
{
    double u = ((double)(fpt_rng_u64(g) >> 11) + 0.5) * 0x1p-53;
    double v = ((double)(fpt_rng_u64(g) >> 11) + 0.5) * 0x1p-53;
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static void must(int st)
{
    if (st != 0)
        fail_msg("%s", fpl_last_error());
}

/* ---- gradients against central finite differences (binary64) ------------ */

typedef enum { ARCH_LINEAR, ARCH_RELU, ARCH_GELU, ARCH_SILU, ARCH_TANH, ARCH_LN, ARCH_RMS,
               ARCH_RES, ARCH_TIME, NARCH } arch_t;
static const char *const arch_names[] = {"linear", "relu", "gelu", "silu", "tanh",
                                         "layernorm", "rmsnorm", "residual", "timeemb"};

/* in -> [layer under test, between linears] -> 3 outputs */
static fpl_model_t *arch(arch_t a, size_t in)
{
    fpl_model_t *m = fpl_model_alloc(in);
    assert_non_null(m);
    if (a == ARCH_TIME) {
        must(fpl_model_add_time_embedding(m, 8, 100.0));
        must(fpl_model_add_linear(m, 3));
        return m;
    }
    must(fpl_model_add_linear(m, 6));
    switch (a) {
    case ARCH_RELU: must(fpl_model_add_activation(m, FPL_LAYER_RELU)); break;
    case ARCH_GELU: must(fpl_model_add_activation(m, FPL_LAYER_GELU)); break;
    case ARCH_SILU: must(fpl_model_add_activation(m, FPL_LAYER_SILU)); break;
    case ARCH_TANH: must(fpl_model_add_activation(m, FPL_LAYER_TANH)); break;
    case ARCH_LN: must(fpl_model_add_norm(m, FPL_LAYER_LAYERNORM, 1e-5)); break;
    case ARCH_RMS: must(fpl_model_add_norm(m, FPL_LAYER_RMSNORM, 1e-5)); break;
    case ARCH_RES:
        must(fpl_model_add_residual_begin(m));
        must(fpl_model_add_norm(m, FPL_LAYER_LAYERNORM, 1e-5));
        must(fpl_model_add_linear(m, 5));
        must(fpl_model_add_activation(m, FPL_LAYER_GELU));
        must(fpl_model_add_linear(m, 6));
        must(fpl_model_add_residual_end(m));
        break;
    default: break;
    }
    must(fpl_model_add_linear(m, 3));
    return m;
}

/* The loss of the model on (x, target) through an inference forward. */
static double loss_at(fpl_trainer_t *t, const fpl_model_t *m, const double *x, const double *y,
                      const int *lab, size_t B)
{
    const double *out = fpl_trainer_forward(t, x, B, 0);
    assert_non_null(out);
    return lab ? fpl_loss_xent(out, lab, B, m->out, NULL) : fpl_loss_mse(out, y, B, m->out, NULL);
}

static void check_gradients(arch_t a, int xent)
{
    enum { B = 4 };
    size_t in = 4;
    fpt_rng_t g;
    fpt_rng_init(&g, fpt_seed(11) + (uint64_t)a);
    fpl_model_t *m = arch(a, in);
    must(fpl_model_init(m, 5));
    for (size_t i = 0; i < m->nparams; i++) /* gains and biases away from 1 and 0 */
        m->params[i] += 0.3 * gauss(&g);
    double x[B * 4], y[B * 3], dout[B * 3];
    int lab[B];
    for (size_t i = 0; i < B * in; i++)
        x[i] = gauss(&g);
    for (size_t i = 0; i < B * 3; i++)
        y[i] = gauss(&g);
    for (size_t b = 0; b < B; b++)
        lab[b] = (int)(fpt_rng_u64(&g) % 3);
    fpl_recipe_t r = recipe("exact");
    fpl_optim_t o = FPL_OPTIM_SGD_INIT;
    fpl_trainer_t *t = fpl_trainer_alloc(m, &r, &o, B, 1);
    assert_non_null(t);
    const double *out = fpl_trainer_forward(t, x, B, 1);
    assert_non_null(out);
    if (xent)
        fpl_loss_xent(out, lab, B, 3, dout);
    else
        fpl_loss_mse(out, y, B, 3, dout);
    const double *dx0 = fpl_trainer_backward(t, dout);
    assert_non_null(dx0);
    double dx[B * 4];
    memcpy(dx, dx0, sizeof dx);
    double *gp = malloc(m->nparams * sizeof *gp);
    memcpy(gp, fpl_trainer_grads(t), m->nparams * sizeof *gp);
    const int *L = xent ? lab : NULL;
    const double *Y = xent ? NULL : y;
    double worst = 0;
    /* h = 1e-5: truncation error ~h^2, cancellation ~1e-16/h, both < 1e-9 */
    for (size_t i = 0; i < m->nparams; i++) {
        double w = m->params[i], h = 1e-5;
        m->params[i] = w + h;
        double lp = loss_at(t, m, x, Y, L, B);
        m->params[i] = w - h;
        double lm = loss_at(t, m, x, Y, L, B);
        m->params[i] = w;
        double fd = (lp - lm) / (2 * h), err = fabs(fd - gp[i]) / fmax(1.0, fabs(fd));
        if (err > 1e-7)
            fail_msg("%s%s: parameter %zu: backward %.17g, finite difference %.17g",
                     arch_names[a], xent ? " (xent)" : "", i, gp[i], fd);
        worst = fmax(worst, err);
    }
    for (size_t i = 0; i < B * in; i++) {
        double v = x[i], h = 1e-5;
        x[i] = v + h;
        double lp = loss_at(t, m, x, Y, L, B);
        x[i] = v - h;
        double lm = loss_at(t, m, x, Y, L, B);
        x[i] = v;
        double fd = (lp - lm) / (2 * h), err = fabs(fd - dx[i]) / fmax(1.0, fabs(fd));
        if (err > 1e-7)
            fail_msg("%s: input %zu: backward %.17g, finite difference %.17g", arch_names[a], i,
                     dx[i], fd);
        worst = fmax(worst, err);
    }
    print_message("# %-10s %s: %zu parameters, worst relative gradient error %.2e\n",
                  arch_names[a], xent ? "xent" : "mse ", m->nparams, worst);
    free(gp);
    fpl_trainer_free(t);
    fpl_model_free(m);
}

static void test_model_gradients(void **state)
{
    (void)state;
    for (int a = 0; a < NARCH; a++)
        check_gradients((arch_t)a, 0);
    check_gradients(ARCH_LINEAR, 1);
    check_gradients(ARCH_RES, 1);
}

/* The losses against values worked by hand: for logits (0, ln 3) and label
 * 1, softmax = (1/4, 3/4), loss = -ln(3/4). */
static void test_model_losses(void **state)
{
    (void)state;
    double z[4] = {0, log(3.0), 1000.0, 0.0}, d[4];
    int lab[2] = {1, 0};
    double l = fpl_loss_xent(z, lab, 1, 2, d);
    assert_true(fabs(l - (-log(0.75))) < 1e-15);
    assert_true(fabs(d[0] - 0.25) < 1e-15 && fabs(d[1] + 0.25) < 1e-15);
    /* a logit of 1000 does not overflow: loss = 1000 - 0 - tiny */
    l = fpl_loss_xent(z + 2, lab + 1, 1, 2, d);
    assert_true(isfinite(l) && fabs(l) < 1e-300 + 1e-15);
    l = fpl_loss_xent(z + 2, lab, 1, 2, NULL); /* label 1: loss 1000 */
    assert_true(fabs(l - 1000.0) < 1e-12);
    int badlab[1] = {2};
    assert_true(isnan(fpl_loss_xent(z, badlab, 1, 2, NULL)));
    double y[2] = {1, 3}, tgt[2] = {0, 1};
    l = fpl_loss_mse(y, tgt, 1, 2, d);
    assert_true(l == 2.5 && d[0] == 1.0 && d[1] == 2.0);
}

/* ---- recipes against independent arithmetic ------------------------------
 * An fp32 linear layer on hardware with FMA: each product exact, each
 * accumulation rounded once to binary32 (fmaf), bias added in binary32.
 * bf16: inputs and weights rounded to bf16 first, the result converted to
 * bf16 (both roundings written here from the bf16 bit layout). */
static float bf16_rne(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

static void check_linear_recipe(const char *rname, int bf)
{
    enum { B = 5, IN = 37, OUT = 7 };
    fpt_rng_t g;
    fpt_rng_init(&g, fpt_seed(21));
    fpl_model_t *m = fpl_model_alloc(IN);
    must(fpl_model_add_linear(m, OUT));
    must(fpl_model_init(m, 3));
    for (size_t j = 0; j < OUT; j++)
        m->params[IN * OUT + j] = gauss(&g);
    double x[B * IN];
    for (size_t i = 0; i < B * IN; i++)
        x[i] = gauss(&g) * 3;
    fpl_recipe_t r = recipe(rname);
    fpl_optim_t o = FPL_OPTIM_SGD_INIT;
    fpl_trainer_t *t = fpl_trainer_alloc(m, &r, &o, B, 1);
    const double *y = fpl_trainer_forward(t, x, B, 0);
    for (size_t b = 0; b < B; b++)
        for (size_t j = 0; j < OUT; j++) {
            float acc = 0;
            for (size_t k = 0; k < IN; k++) {
                float xv = (float)x[b * IN + k], wv = (float)m->params[j * IN + k];
                if (bf) {
                    xv = bf16_rne(xv);
                    wv = bf16_rne(wv);
                }
                acc = fmaf(xv, wv, acc);
            }
            float bias = (float)m->params[IN * OUT + j];
            float v = acc + (bf ? bf16_rne(bias) : bias);
            if (bf)
                v = bf16_rne(v);
            if ((double)v != y[b * OUT + j])
                fail_msg("%s: y[%zu][%zu] = %a, binary32 FMA hardware gives %a", rname,
                         (size_t)b, (size_t)j, y[b * OUT + j], (double)v);
        }
    fpl_trainer_free(t);
    fpl_model_free(m);
}

static void test_model_recipe_fp32_bf16(void **state)
{
    (void)state;
    check_linear_recipe("fp32", 0);
    check_linear_recipe("bf16", 1);
}

/* The GEMMs of the recipes go through fpl_matmul's vectorised path; it must
 * give every output the bits of fpl_dot (the emulated definition). */
static void test_model_fast_gemm_bitexact(void **state)
{
    (void)state;
    const char *fmts[][2] = {{"e4m3", "e4m3"}, {"e5m2", "e4m3"}, {"bf16", "bf16"},
                             {"fp16", "fp16"}, {"fp32", "fp32"}, {"fp64", "fp64"}};
    fpt_rng_t g;
    fpt_rng_init(&g, fpt_seed(31));
    fpl_policy_t p;
    must(fpl_policy_parse("a=fp32,prod=exact,acc=fp32,out=fp32,order=seq,rnd=rne", &p));
    fpl_policy_t ex;
    fpl_policy_exact(&ex);
    for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
        fpl_format_t fa, fb;
        must(fpl_format_parse(fmts[f][0], &fa));
        must(fpl_format_parse(fmts[f][1], &fb));
        size_t M = 9, K = 131, N = 13;
        double *A = malloc(M * K * sizeof *A), *Bm = malloc(N * K * sizeof *Bm);
        double *C = malloc(M * N * sizeof *C);
        for (size_t i = 0; i < M * K; i++)
            A[i] = fpl_round(&fa, gauss(&g) * fa.max_finite / 64, FPL_RNE, NULL);
        for (size_t i = 0; i < N * K; i++)
            Bm[i] = fpl_round(&fb, gauss(&g) * 4, FPL_RNE, NULL);
        for (int pe = 0; pe < 2; pe++) {
            const fpl_policy_t *q = pe ? &ex : &p;
            if (pe && f != 5)
                continue;
            fpl_matmul(q, A, Bm, C, M, K, N, NULL);
            for (size_t i = 0; i < M; i++)
                for (size_t j = 0; j < N; j++) {
                    double d = fpl_dot(q, Bm + j * K, A + i * K, K, NULL);
                    if (!pe)
                        d = fpl_round(&q->out, d, FPL_RNE, NULL);
                    if (memcmp(&d, &C[i * N + j], sizeof d) != 0)
                        fail_msg("%s x %s (%s): C[%zu][%zu] = %a, fpl_dot gives %a",
                                 fmts[f][0], fmts[f][1], pe ? "exact" : "acc=fp32", i, j,
                                 C[i * N + j], d);
                }
        }
        free(A);
        free(Bm);
        free(C);
    }
}

/* ---- learning ----------------------------------------------------------------
 * XOR of Gaussian clusters: centres (+-2, +-2), sigma 0.5, label 1 when the
 * centre's signs differ.  No linear model separates it; the Bayes error is
 * below 1e-4 (each coordinate would have to cross 4 sigma). */
static void xor_data(fpt_rng_t *g, double *x, int *lab, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int sx = fpt_rng_u64(g) & 1, sy = fpt_rng_u64(g) & 1;
        x[2 * i] = (sx ? 2 : -2) + 0.5 * gauss(g);
        x[2 * i + 1] = (sy ? 2 : -2) + 0.5 * gauss(g);
        lab[i] = sx != sy;
    }
}

static fpl_model_t *mlp(size_t in, size_t hidden, size_t out, fpl_layer_kind_t act, int norm)
{
    fpl_model_t *m = fpl_model_alloc(in);
    must(fpl_model_add_linear(m, hidden));
    must(fpl_model_add_activation(m, act));
    if (norm) {
        must(fpl_model_add_residual_begin(m));
        must(fpl_model_add_norm(m, FPL_LAYER_RMSNORM, 1e-5));
        must(fpl_model_add_linear(m, hidden));
        must(fpl_model_add_activation(m, act));
        must(fpl_model_add_residual_end(m));
    } else {
        must(fpl_model_add_linear(m, hidden));
        must(fpl_model_add_activation(m, act));
    }
    must(fpl_model_add_linear(m, out));
    return m;
}

static void test_model_learns_xor(void **state)
{
    (void)state;
    enum { NTEST = 1000, BATCH = 32, STEPS = 400 };
    const char *recipes[] = {"exact", "fp32", "bf16", "fp16", "fp8", "fp8-current"};
    fpt_rng_t g;
    double *xt = malloc(NTEST * 2 * sizeof *xt), xb[BATCH * 2];
    int *lt = malloc(NTEST * sizeof *lt), lb[BATCH];
    uint64_t seed = fpt_seed(41);
    fpt_rng_init(&g, seed ^ 0x55);
    xor_data(&g, xt, lt, NTEST);
    for (size_t ri = 0; ri < sizeof recipes / sizeof recipes[0]; ri++) {
        fpl_model_t *m = mlp(2, 16, 2, ri % 2 ? FPL_LAYER_GELU : FPL_LAYER_TANH, ri >= 3);
        must(fpl_model_init(m, 7));
        fpl_recipe_t r = recipe(recipes[ri]);
        fpl_optim_t o = FPL_OPTIM_ADAM_INIT;
        o.lr = 1e-2;
        fpl_trainer_t *t = fpl_trainer_alloc(m, &r, &o, NTEST, 1);
        fpt_rng_init(&g, seed);
        for (int s = 0; s < STEPS; s++) {
            xor_data(&g, xb, lb, BATCH);
            double l = fpl_trainer_train(t, xb, NULL, lb, BATCH);
            assert_true(isfinite(l));
        }
        const double *out = fpl_trainer_forward(t, xt, NTEST, 0);
        double loss = fpl_loss_xent(out, lt, NTEST, 2, NULL);
        size_t ok = 0;
        for (size_t i = 0; i < NTEST; i++)
            ok += (out[2 * i + 1] > out[2 * i]) == (lt[i] == 1);
        print_message("# xor %-12s test loss %.4f accuracy %.3f\n", recipes[ri], loss,
                      (double)ok / NTEST);
        /* stated target: held-out cross-entropy below 0.05, accuracy >= 99% */
        if (!(loss < 0.05) || ok < 990)
            fail_msg("%s: test loss %g, accuracy %zu/1000", recipes[ri], loss, ok);
        fpl_trainer_free(t);
        fpl_model_free(m);
    }
    free(xt);
    free(lt);
}

/* A regression with MSE and SGD with momentum: y = sin(x0) + x1^2/4 on
 * [-2, 2]^2, target MSE below 0.01 (the variance of y is about 0.5). */
static void test_model_learns_regression_sgd(void **state)
{
    (void)state;
    enum { BATCH = 64, STEPS = 1500 };
    fpl_model_t *m = mlp(2, 32, 1, FPL_LAYER_SILU, 0);
    must(fpl_model_init(m, 9));
    fpl_recipe_t r = recipe("bf16");
    fpl_optim_t o = FPL_OPTIM_SGD_INIT;
    o.lr = 0.05;
    fpl_trainer_t *t = fpl_trainer_alloc(m, &r, &o, 512, 1);
    fpt_rng_t g;
    fpt_rng_init(&g, fpt_seed(51));
    double x[512 * 2], y[512];
    for (int s = 0; s <= STEPS; s++) {
        size_t n = s == STEPS ? 512 : BATCH;
        for (size_t i = 0; i < n; i++) {
            x[2 * i] = 4.0 * ((double)(fpt_rng_u64(&g) >> 11) * 0x1p-53) - 2;
            x[2 * i + 1] = 4.0 * ((double)(fpt_rng_u64(&g) >> 11) * 0x1p-53) - 2;
            y[i] = sin(x[2 * i]) + x[2 * i + 1] * x[2 * i + 1] / 4;
        }
        if (s < STEPS)
            assert_true(isfinite(fpl_trainer_train(t, x, y, NULL, n)));
    }
    double l = fpl_loss_mse(fpl_trainer_forward(t, x, 512, 0), y, 512, 1, NULL);
    print_message("# regression bf16 sgd: held-out mse %.5f\n", l);
    assert_true(l < 0.01);
    fpl_trainer_free(t);
    fpl_model_free(m);
}

/* ---- FP8 scaling ------------------------------------------------------------ */

/* A spike of 1e4 times the usual input: the current-amax recipe rescales at
 * once (the spike is within E4M3's range, rounded with relative error at most
 * 2^-4); the delayed recipe saturates for that one step (finite, no NaN),
 * takes the spike into its history, and recovers its old scale after
 * `history` ordinary steps. */
static void test_model_fp8_spike(void **state)
{
    (void)state;
    enum { B = 8, IN = 16, H = 4 };
    fpt_rng_t g;
    fpt_rng_init(&g, fpt_seed(61));
    double x[B * IN], xs[B * IN], y[B * 2];
    for (size_t i = 0; i < B * IN; i++)
        x[i] = gauss(&g);
    for (size_t i = 0; i < B * 2; i++)
        y[i] = gauss(&g);
    memcpy(xs, x, sizeof x);
    xs[3] *= 1e4;
    double amax = 0, spike_amax = 0;
    /* the inputs as the recipe stores them (bf16) */
    fpl_format_t bf;
    must(fpl_format_parse("bf16", &bf));
    amax = 0;
    for (size_t i = 0; i < B * IN; i++) {
        amax = fmax(amax, fabs(fpl_round(&bf, x[i], FPL_RNE, NULL)));
        spike_amax = fmax(spike_amax, fabs(fpl_round(&bf, xs[i], FPL_RNE, NULL)));
    }
    const double fmax8 = 448; /* OCP FP8 E4M3: largest finite value */
    for (int delayed = 0; delayed < 2; delayed++) {
        fpl_model_t *m = fpl_model_alloc(IN);
        must(fpl_model_add_linear(m, 32));
        must(fpl_model_add_activation(m, FPL_LAYER_GELU));
        must(fpl_model_add_linear(m, 2));
        must(fpl_model_init(m, 1));
        fpl_model_t *ref = fpl_model_clone(m);
        char spec[64];
        snprintf(spec, sizeof spec, "%s,history=%d", delayed ? "fp8" : "fp8-current", H);
        fpl_recipe_t r = recipe(spec), re = recipe("exact");
        fpl_optim_t o = FPL_OPTIM_SGD_INIT;
        o.lr = 0; /* weights fixed: only the scales move */
        fpl_trainer_t *t = fpl_trainer_alloc(m, &r, &o, B, 1);
        fpl_trainer_t *te = fpl_trainer_alloc(ref, &re, &o, B, 1);
        for (int s = 0; s < 3; s++)
            assert_true(isfinite(fpl_trainer_train(t, x, y, NULL, B)));
        double s0 = fpl_trainer_scale(t, 0, 0);
        /* the scale is the power of two with amax * s <= 448 < 2 amax s */
        assert_true(amax * s0 <= fmax8 && 2 * amax * s0 > fmax8);
        double l = fpl_trainer_train(t, xs, y, NULL, B);
        assert_true(isfinite(l));
        const double *gr = fpl_trainer_grads(t);
        for (size_t i = 0; i < m->nparams; i++)
            assert_true(isfinite(gr[i]));
        const double *out = fpl_trainer_forward(t, xs, B, 0);
        for (size_t i = 0; i < B * 2; i++)
            assert_true(isfinite(out[i]));
        double s1 = fpl_trainer_scale(t, 0, 0);
        /* after the spike step the scale fits the spike (delayed: from the
         * history, which now holds it) */
        assert_true(spike_amax * s1 <= fmax8 && 2 * spike_amax * s1 > fmax8);
        if (!delayed) {
            /* the spike row is computed accurately: compare with exact */
            const double *oe = fpl_trainer_forward(te, xs, B, 0);
            double num = 0, den = 0;
            for (size_t j = 0; j < 2; j++) {
                num += (out[j] - oe[j]) * (out[j] - oe[j]);
                den += oe[j] * oe[j];
            }
            print_message("# fp8-current spike row: relative error %.3g\n", sqrt(num / den));
            assert_true(sqrt(num / den) < 0.25);
        } else {
            for (int s = 0; s < H; s++)
                fpl_trainer_train(t, x, y, NULL, B);
            fpl_trainer_forward(t, x, B, 0);
            assert_true(fpl_trainer_scale(t, 0, 0) == s0); /* the spike left the window */
        }
        fpl_trainer_free(t);
        fpl_trainer_free(te);
        fpl_model_free(m);
        fpl_model_free(ref);
    }
}

/* fp16 with dynamic loss scaling from 2^40: gradients overflow fp16, the
 * steps are skipped and the scale halves until they fit; then, with growth
 * interval 10, the scale doubles after 10 good steps. */
static void test_model_fp16_loss_scaling(void **state)
{
    (void)state;
    enum { B = 16 };
    fpl_model_t *m = mlp(2, 16, 2, FPL_LAYER_TANH, 0);
    must(fpl_model_init(m, 2));
    fpl_recipe_t r = recipe("fp16,scale=1099511627776,growth=10");
    assert_true(r.loss_scale == 0x1p40);
    fpl_optim_t o = FPL_OPTIM_ADAM_INIT;
    fpl_trainer_t *t = fpl_trainer_alloc(m, &r, &o, B, 1);
    fpt_rng_t g;
    fpt_rng_init(&g, fpt_seed(71));
    double x[B * 2];
    int lab[B];
    size_t skipped = 0, steps = 0, run = 0;
    assert_true(fpl_trainer_loss_scale(t) == 0x1p40);
    for (int s = 0; s < 60; s++) {
        double S = fpl_trainer_loss_scale(t);
        size_t sk0 = skipped;
        xor_data(&g, x, lab, B);
        fpl_trainer_train(t, x, NULL, lab, B);
        steps = fpl_trainer_steps(t, &skipped);
        double want;
        if (skipped > sk0) { /* a skipped step halves the scale */
            run = 0;
            want = S / 2;
        } else { /* the 10th good step in a row doubles it */
            run++;
            want = run % 10 == 0 ? 2 * S : S;
        }
        if (fpl_trainer_loss_scale(t) != want)
            fail_msg("step %d: loss scale %g, expected %g", s, fpl_trainer_loss_scale(t), want);
    }
    print_message("# fp16: %zu steps, %zu skipped, loss scale 2^%g\n", steps, skipped,
                  log2(fpl_trainer_loss_scale(t)));
    assert_true(skipped >= 10); /* a gradient ~1e-2 times 2^40 is far beyond 65504 */
    assert_true(steps + skipped == 60);
    assert_true(steps >= 30);
    for (size_t i = 0; i < m->nparams; i++)
        assert_true(isfinite(m->params[i]));
    fpl_trainer_free(t);
    fpl_model_free(m);
}

/* ---- weight files ---------------------------------------------------------- */

static fpl_model_t *every_layer(void)
{
    fpl_model_t *m = fpl_model_alloc(3);
    must(fpl_model_add_time_embedding(m, 6, 10000));
    must(fpl_model_add_linear(m, 8));
    must(fpl_model_add_activation(m, FPL_LAYER_SILU));
    must(fpl_model_add_residual_begin(m));
    must(fpl_model_add_norm(m, FPL_LAYER_LAYERNORM, 1e-5));
    must(fpl_model_add_linear(m, 8));
    must(fpl_model_add_activation(m, FPL_LAYER_RELU));
    must(fpl_model_add_residual_begin(m));
    must(fpl_model_add_norm(m, FPL_LAYER_RMSNORM, 1e-6));
    must(fpl_model_add_activation(m, FPL_LAYER_TANH));
    must(fpl_model_add_residual_end(m));
    must(fpl_model_add_residual_end(m));
    must(fpl_model_add_activation(m, FPL_LAYER_GELU));
    must(fpl_model_add_linear(m, 2));
    must(fpl_model_init(m, 99));
    return m;
}

static char *tmp_path(const char *tag)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "test_model_%s_%ld.bin", tag, (long)getpid());
    return buf;
}

static void test_model_save_load_roundtrip(void **state)
{
    (void)state;
    fpl_model_t *m = every_layer();
    m->params[0] = -0.0; /* signed zero, a subnormal and an extreme value survive */
    m->params[1] = 0x1p-1070;
    m->params[2] = -0x1.fffffffffffffp1023;
    const char *p = tmp_path("rt");
    must(fpl_model_save(m, p));
    fpl_model_t *l = NULL;
    must(fpl_model_load(p, &l));
    unlink(p);
    assert_int_equal(l->in, m->in);
    assert_int_equal(l->out, m->out);
    assert_int_equal(l->nlayers, m->nlayers);
    assert_int_equal(l->nparams, m->nparams);
    for (size_t i = 0; i < m->nlayers; i++) {
        const fpl_mlayer_t *a = &l->layers[i], *b = &m->layers[i];
        assert_int_equal(a->kind, b->kind);
        assert_int_equal(a->in, b->in);
        assert_int_equal(a->out, b->out);
        assert_int_equal(a->off, b->off);
        assert_int_equal(a->nparams, b->nparams);
        assert_int_equal(a->link, b->link);
        assert_memory_equal(&a->eps, &b->eps, sizeof a->eps);
    }
    assert_memory_equal(l->params, m->params, m->nparams * sizeof *m->params);
    fpl_model_free(l);
    fpl_model_free(m);
}

/* FNV-1a 64, written from its definition (offset basis and prime from
 * Fowler, Noll and Vo's reference), to forge files with a valid checksum */
static uint64_t fnv(const unsigned char *p, size_t n)
{
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211u;
    return h;
}

static void reseal(unsigned char *b, size_t n)
{
    uint64_t h = fnv(b, n - 8);
    for (int i = 0; i < 8; i++)
        b[n - 8 + i] = (unsigned char)(h >> (8 * i));
}

static void refused(const unsigned char *b, size_t n, const char *needle, const char *what)
{
    fpl_model_t *m = (fpl_model_t *)1;
    int st = fpl_model_deserialize(b, n, &m);
    if (st != FPL_EINVAL || m != NULL || !strstr(fpl_last_error(), needle))
        fail_msg("%s: status %d, message '%s' (wanted '%s')", what, st, fpl_last_error(),
                 needle);
}

static void test_model_bad_files(void **state)
{
    (void)state;
    fpl_model_t *m = every_layer();
    unsigned char *b;
    size_t n;
    must(fpl_model_serialize(m, &b, &n));
    /* layout from model.h: 24-byte header, 32 per layer, count, params, sum */
    assert_int_equal(n, 24 + 32 * m->nlayers + 8 + 8 * m->nparams + 8);
    assert_memory_equal(b, "FPLMODEL", 8);
    fpl_model_t *ok = NULL;
    must(fpl_model_deserialize(b, n, &ok));
    fpl_model_free(ok);
    unsigned char *c = malloc(n + 1);
    /* every truncation */
    for (size_t k = 0; k < n; k++)
        refused(b, k, k < 8 ? "magic" : "truncated", "truncated file");
    /* trailing data */
    memcpy(c, b, n);
    c[n] = 0;
    refused(c, n + 1, "trailing", "longer file");
    /* every single-bit flip after the magic (and before the version check
     * wins) is caught: by the version, a size check or the checksum */
    for (size_t k = 8; k < n; k++) {
        memcpy(c, b, n);
        c[k] ^= (unsigned char)(1u << (k % 8));
        fpl_model_t *x = NULL;
        int st = fpl_model_deserialize(c, n, &x);
        if (st != FPL_EINVAL || x)
            fail_msg("a bit flip at byte %zu was accepted", k);
    }
    memcpy(c, b, n);
    c[24 + 32 * 2 + 9] ^= 1; /* a parameter byte */
    c[n - 30] ^= 0x40;
    refused(c, n, "checksum", "corrupt file");
    /* foreign files */
    refused((const unsigned char *)"\x89PNG\r\n\x1a\n-------------------------------", 40,
            "magic", "PNG");
    refused((const unsigned char *)"layer linear 3\n", 15, "magic", "text");
    /* another version, with a valid checksum */
    memcpy(c, b, n);
    c[8] = 2;
    reseal(c, n);
    refused(c, n, "version", "version 2");
    /* shapes that do not fit, checksum valid: the linear layer's width */
    memcpy(c, b, n);
    c[24 + 32 * 1 + 8] = 9; /* linear 8 -> 9: its parameter count no longer matches */
    reseal(c, n);
    refused(c, n, "inconsistent", "bad shape");
    /* an unknown layer kind */
    memcpy(c, b, n);
    c[24 + 32 * 2] = 77;
    reseal(c, n);
    refused(c, n, "unknown layer", "bad kind");
    /* an unclosed residual block: the last RES_END (layer 12) made a GELU */
    memcpy(c, b, n);
    c[24 + 32 * 11] = FPL_LAYER_GELU;
    reseal(c, n);
    refused(c, n, "not closed", "open block");
    /* a file that does not exist, and a truncated file on disk */
    fpl_model_t *x = (fpl_model_t *)1;
    assert_int_equal(fpl_model_load("/nonexistent/dir/w.bin", &x), FPL_EIO);
    assert_null(x);
    const char *p = tmp_path("trunc");
    FILE *f = fopen(p, "wb");
    fwrite(b, 1, n - 5, f);
    fclose(f);
    assert_int_equal(fpl_model_load(p, &x), FPL_EINVAL);
    assert_non_null(strstr(fpl_last_error(), p));
    assert_non_null(strstr(fpl_last_error(), "truncated"));
    unlink(p);
    free(c);
    free(b);
    fpl_model_free(m);
}

/* ---- determinism ------------------------------------------------------------- */

static void train_copy(const char *rname, int threads, uint64_t seed, double *out, size_t *np)
{
    enum { B = 32, IN = 32 };
    fpl_model_t *m = fpl_model_alloc(IN);
    must(fpl_model_add_linear(m, 64));
    must(fpl_model_add_activation(m, FPL_LAYER_GELU));
    must(fpl_model_add_residual_begin(m));
    must(fpl_model_add_norm(m, FPL_LAYER_LAYERNORM, 1e-5));
    must(fpl_model_add_linear(m, 64));
    must(fpl_model_add_activation(m, FPL_LAYER_RELU));
    must(fpl_model_add_residual_end(m));
    must(fpl_model_add_linear(m, 10));
    must(fpl_model_init(m, seed));
    fpl_recipe_t r = recipe(rname);
    fpl_optim_t o = FPL_OPTIM_ADAM_INIT;
    fpl_trainer_t *t = fpl_trainer_alloc(m, &r, &o, B, threads);
    fpt_rng_t g;
    fpt_rng_init(&g, seed);
    double x[B * IN];
    int lab[B];
    for (int s = 0; s < 10; s++) {
        for (size_t i = 0; i < B * IN; i++)
            x[i] = gauss(&g);
        for (size_t b = 0; b < B; b++)
            lab[b] = (int)(fpt_rng_u64(&g) % 10);
        fpl_trainer_train(t, x, NULL, lab, B);
    }
    memcpy(out, m->params, m->nparams * sizeof *out);
    *np = m->nparams;
    fpl_trainer_free(t);
    fpl_model_free(m);
}

static void test_model_deterministic_threads(void **state)
{
    (void)state;
    const char *recipes[] = {"exact", "fp32", "bf16", "fp16", "fp8", "fp8-current"};
    size_t cap = 32 * 64 + 64 + 128 + 64 * 64 + 64 + 64 * 10 + 10;
    double *a = malloc(cap * sizeof *a), *b = malloc(cap * sizeof *b);
    for (size_t i = 0; i < sizeof recipes / sizeof recipes[0]; i++) {
        size_t na, nb;
        train_copy(recipes[i], 1, 5, a, &na);
        assert_int_equal(na, cap);
        train_copy(recipes[i], 2, 5, b, &nb);
        if (memcmp(a, b, na * sizeof *a) != 0)
            fail_msg("%s: 1 and 2 threads give different weights", recipes[i]);
        train_copy(recipes[i], 1, 5, b, &nb);
        assert_memory_equal(a, b, na * sizeof *a);
        train_copy(recipes[i], 1, 6, b, &nb); /* another seed: other weights */
        assert_true(memcmp(a, b, na * sizeof *a) != 0);
    }
    free(a);
    free(b);
}

/* ---- API errors ------------------------------------------------------------- */

static void test_model_bad_arguments(void **state)
{
    (void)state;
    fpl_recipe_t r;
    assert_int_equal(fpl_recipe_parse("fp7", &r), FPL_EINVAL);
    assert_non_null(strstr(fpl_last_error(), "fp7"));
    assert_int_equal(fpl_recipe_parse("fp8,history=0", &r), FPL_EINVAL);
    assert_int_equal(fpl_recipe_parse("fp16,scale=3", &r), FPL_EINVAL);
    assert_int_equal(fpl_recipe_parse("fp8,margin", &r), FPL_EINVAL);
    must(fpl_recipe_parse("fp8,history=1024,margin=2", &r));
    assert_int_equal(r.history, 1024);
    assert_int_equal(r.margin, 2);
    assert_null(fpl_model_alloc(0));
    fpl_model_t *m = fpl_model_alloc(4);
    assert_int_equal(fpl_model_add_residual_end(m), FPL_EINVAL);
    must(fpl_model_add_residual_begin(m));
    must(fpl_model_add_linear(m, 5));
    assert_int_equal(fpl_model_add_residual_end(m), FPL_EINVAL); /* width changed */
    assert_non_null(strstr(fpl_last_error(), "width"));
    assert_int_equal(fpl_model_add_activation(m, FPL_LAYER_LINEAR), FPL_EINVAL);
    assert_int_equal(fpl_model_add_norm(m, FPL_LAYER_LAYERNORM, 0), FPL_EINVAL);
    assert_int_equal(fpl_model_add_time_embedding(m, 3, 100), FPL_EINVAL);
    assert_int_equal(fpl_model_init(m, 1), FPL_EINVAL); /* block open */
    fpl_optim_t o = FPL_OPTIM_SGD_INIT;
    must(fpl_recipe_parse("fp32", &r));
    assert_null(fpl_trainer_alloc(m, &r, &o, 4, 1));
    unsigned char *b;
    size_t n;
    assert_int_equal(fpl_model_serialize(m, &b, &n), FPL_EINVAL);
    must(fpl_model_add_linear(m, 4));
    must(fpl_model_add_residual_end(m));
    fpl_trainer_t *t = fpl_trainer_alloc(m, &r, &o, 4, 1);
    assert_non_null(t);
    double x[20] = {0}, d[20] = {0};
    assert_null(fpl_trainer_backward(t, d)); /* no forward yet */
    assert_null(fpl_trainer_forward(t, x, 5, 1)); /* batch beyond max */
    int lab[4] = {0, 1, 2, 9};
    assert_true(isnan(fpl_trainer_train(t, x, NULL, lab, 4)));
    assert_true(isnan(fpl_trainer_train(t, x, x, lab, 4)));
    fpl_trainer_free(t);
    fpl_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_gradients),
        cmocka_unit_test(test_model_losses),
        cmocka_unit_test(test_model_recipe_fp32_bf16),
        cmocka_unit_test(test_model_fast_gemm_bitexact),
        cmocka_unit_test(test_model_learns_xor),
        cmocka_unit_test(test_model_learns_regression_sgd),
        cmocka_unit_test(test_model_fp8_spike),
        cmocka_unit_test(test_model_fp16_loss_scaling),
        cmocka_unit_test(test_model_save_load_roundtrip),
        cmocka_unit_test(test_model_bad_files),
        cmocka_unit_test(test_model_deterministic_threads),
        cmocka_unit_test(test_model_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
