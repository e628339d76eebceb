/* test_engine.c -- policies, reductions, bounds, statistics, records, plots */
#include <config.h>

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"

static fpl_policy_t pol(const char *spec)
{
    fpl_policy_t p;
    if (fpl_policy_parse(spec, &p) != 0)
        fail_msg("policy '%s': %s", spec, fpl_last_error());
    return p;
}

static void test_engine_policy_parse(void **state)
{
    (void)state;
    fpl_policy_t p = pol("w=e4m3,a=bf16,acc=fp32,norm=fp32,rnd=rne");
    assert_string_equal(p.w.name, "e4m3");
    assert_string_equal(p.a.name, "bf16");
    assert_string_equal(p.out.name, "bf16"); /* out defaults to a */
    assert_true(p.prod_exact);
    assert_int_equal(p.order, FPL_ORDER_SEQ);
    p = pol("a=fp16");
    assert_string_equal(p.w.name, "fp16"); /* w defaults to a */
    assert_string_equal(p.acc.name, "fp32");
    /* generic formats contain commas */
    p = pol("a=bf16,acc=fp:e=8,m=13,order=blocked:128,promote=fp32,rnd=sr");
    assert_int_equal(p.acc.mbits, 13);
    assert_int_equal(p.order, FPL_ORDER_BLOCKED);
    assert_int_equal(p.block, 128);
    assert_int_equal(p.rnd, FPL_SR);
    assert_non_null(strstr(p.text, "acc=fp:e=8,m=13"));
    /* the canonical text parses back to the same policy */
    fpl_policy_t q = pol(p.text);
    assert_string_equal(q.text, p.text);
    p = pol("a=bf16,prod=bf16");
    assert_false(p.prod_exact);
    p = pol("exact");
    assert_true(p.exact);
    const char *bad[] = {"a=bf17", "acc=int8", "rnd=up", "order=blocked:0", "order=zigzag",
                         "x=fp32", "a", "acc=fp64,rnd=sr", "a=int8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fpl_policy_t r;
        if (fpl_policy_parse(bad[i], &r) != FPL_EINVAL)
            fail_msg("policy '%s' was accepted", bad[i]);
        assert_non_null(strstr(fpl_last_error(), "policy"));
    }
}

/* Each addition rounded once: compare with the MPFR-based scalar ops. */
static void test_engine_dot_matches_scalar_ops(void **state)
{
    (void)state;
    const char *specs[] = {"a=bf16,acc=bf16", "a=e4m3,acc=fp16,rnd=rtz", "a=fp16,acc=fp16,rnd=rup",
                           "a=bf16,acc=fp:e=8,m=13,rnd=rdown", "a=e5m2,acc=e5m2,rnd=rna",
                           "a=bf16,acc=fp32", "a=bf16,acc=fp32,prod=bf16"};
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(4242));
    enum { N = 300 };
    double x[N], y[N];
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        fpl_policy_t p = pol(specs[s]);
        for (int rep = 0; rep < 20; rep++) {
            for (int i = 0; i < N; i++) {
                x[i] = fpl_round(&p.a, (double)(fpt_rng_u64(&rng) >> 11) * 0x1p-52 - 0.7, FPL_RNE, NULL);
                y[i] = fpl_round(&p.a, (double)(fpt_rng_u64(&rng) >> 11) * 0x1p-50 - 1, FPL_RNE, NULL);
            }
            double s_ref = 0;
            for (int i = 0; i < N; i++) {
                double pr[3] = {x[i], y[i], 0};
                double prod = p.prod_exact ? x[i] * y[i] : fpl_arith(&p.prod, FPL_OP_MUL, pr, p.rnd, NULL);
                double a[3] = {s_ref, prod, 0};
                s_ref = fpl_arith(&p.acc, FPL_OP_ADD, a, p.rnd, NULL);
            }
            double got = fpl_dot(&p, x, y, N, NULL);
            if (!fpt_same(got, s_ref))
                fail_msg("%s: dot %a, step-by-step %a", specs[s], got, s_ref);
        }
    }
}

/* Summing ones in fp16 stops at 2048 (Connolly, Higham & Mary 2021);
 * pairwise and blocked-with-promotion orders do not stagnate. */
static void test_engine_stagnation_and_orders(void **state)
{
    (void)state;
    enum { N = 4096 };
    static double ones[N];
    for (int i = 0; i < N; i++)
        ones[i] = 1.0;
    fpl_policy_t seq = pol("a=fp16,acc=fp16"), pw = pol("a=fp16,acc=fp16,order=pairwise");
    fpl_policy_t blk = pol("a=fp16,acc=fp16,order=blocked:128,promote=fp32");
    fpl_policy_t f32 = pol("a=fp16,acc=fp32");
    assert_true(fpl_sum(&seq, ones, N, NULL) == 2048);
    assert_true(fpl_sum(&pw, ones, N, NULL) == 4096);
    assert_true(fpl_sum(&blk, ones, N, NULL) == 4096);
    assert_true(fpl_sum(&f32, ones, N, NULL) == 4096);
    /* stochastic rounding keeps going, on average */
    fpl_policy_t sr = pol("a=fp16,acc=fp16,rnd=sr");
    fpl_sr_t s;
    fpl_sr_seed(&s, 3);
    double v = fpl_sum(&sr, ones, N, &s);
    assert_true(v > 3000 && v < 5000);
    /* the native binary32 path and the generic one agree (saturating fp32
     * disables the native path) */
    fpl_policy_t nat = pol("a=bf16,acc=fp32"), gen = pol("a=bf16,acc=fp:e=8,m=23,ovf=sat");
    fpt_rng_t rng;
    fpt_rng_init(&rng, 8);
    static double x[5000], y[5000];
    for (int i = 0; i < 5000; i++) {
        x[i] = fpl_round(&nat.a, (double)(fpt_rng_u64(&rng) >> 11) * 0x1p-53, FPL_RNE, NULL);
        y[i] = fpl_round(&nat.a, (double)(fpt_rng_u64(&rng) >> 11) * 0x1p-52 - 1, FPL_RNE, NULL);
    }
    assert_true(fpt_same(fpl_dot(&nat, x, y, 5000, NULL), fpl_dot(&gen, x, y, 5000, NULL)));
}

/* The exact policy's compensated dot product against MPFR's exact sum. */
static void test_engine_reference_dot(void **state)
{
    (void)state;
    fpl_policy_t ex;
    fpl_policy_exact(&ex);
    fpt_rng_t rng;
    fpt_rng_init(&rng, 77);
    enum { N = 2000 };
    static double x[N], y[N];
    for (int rep = 0; rep < 10; rep++) {
        for (int i = 0; i < N; i++) {
            x[i] = (double)(int64_t)fpt_rng_u64(&rng) * 0x1p-60;
            y[i] = (double)(int64_t)fpt_rng_u64(&rng) * 0x1p-61;
        }
        mpfr_t s, p;
        mpfr_init2(s, 2400);
        mpfr_init2(p, 106);
        mpfr_set_zero(s, 1);
        for (int i = 0; i < N; i++) {
            mpfr_set_d(p, x[i], MPFR_RNDN);
            mpfr_mul_d(p, p, y[i], MPFR_RNDN);
            mpfr_add(s, s, p, MPFR_RNDN);
        }
        double exact = mpfr_get_d(s, MPFR_RNDN);
        double got = fpl_dot(&ex, x, y, N, NULL);
        /* Dot2: |got - s| <= u|s| + gamma_n^2 sum|x y|; here within 2 ulps */
        assert_true(fabs(got - exact) <= 2 * 0x1p-52 * fabs(exact));
        mpfr_clears(s, p, (mpfr_ptr)0);
    }
}

static void test_engine_vec_op_and_matmul(void **state)
{
    (void)state;
    fpl_format_t bf;
    fpl_format_parse("bf16", &bf);
    fpt_rng_t rng;
    fpt_rng_init(&rng, 5);
    enum { N = 1000 };
    double x[N], y[N], z[N];
    for (int i = 0; i < N; i++) {
        x[i] = fpl_round(&bf, fpt_random_double(&rng, &bf), FPL_RNE, NULL);
        y[i] = fpl_round(&bf, fpt_random_double(&rng, &bf), FPL_RNE, NULL);
    }
    fpl_op_t ops[] = {FPL_OP_ADD, FPL_OP_SUB, FPL_OP_MUL};
    for (int o = 0; o < 3; o++)
        for (int m = 0; m < FPL_NMODES - 1; m++) {
            assert_int_equal(fpl_vec_op(&bf, ops[o], x, y, z, N, (fpl_rmode_t)m, NULL), 0);
            for (int i = 0; i < N; i++) {
                double a[3] = {x[i], y[i], 0};
                double want = fpl_arith(&bf, ops[o], a, (fpl_rmode_t)m, NULL);
                if (!fpt_same(z[i], want))
                    fail_msg("vec %s %s (%a, %a): %a, want %a", fpl_op_name(ops[o]),
                             fpl_rmode_name(m), x[i], y[i], z[i], want);
            }
        }
    assert_int_equal(fpl_vec_op(&bf, FPL_OP_DIV, x, y, z, N, FPL_RNE, NULL), FPL_EINVAL);
    /* matmul: C = A B^T, entries are dots rounded to out */
    fpl_policy_t p = pol("a=bf16,acc=fp32,out=bf16");
    double A[2 * 3] = {1, 2, 3, 4, 5, 6}, B[2 * 3] = {1, 0, 1, 0.5, 0.5, 0.5}, C[4];
    fpl_matmul(&p, A, B, C, 2, 3, 2, NULL);
    assert_true(C[0] == 4 && C[1] == 3 && C[2] == 10 && C[3] == 7.5);
}

static void test_engine_bounds(void **state)
{
    (void)state;
    double u = 0x1p-24;
    /* gamma_n = nu/(1-nu), spelled out */
    assert_true(fabs(fpl_gamma(1000, u) - 1000 * u / (1 - 1000 * u)) < 1e-20);
    assert_true(isinf(fpl_gamma(1 << 24, u)));
    /* first order: lambda sqrt(n) u */
    double b = fpl_hm_bound(1 << 20, u, 3.0);
    assert_true(fabs(b / (3.0 * 1024 * u) - 1) < 1e-3);
    /* lambda from Q(lambda, n) = 1 - 2n exp(-lambda^2 (1-u)^2 / 2) = 1 - q */
    double lam = fpl_hm_lambda(1000, u, 0.01);
    double q = 2 * 1000 * exp(-lam * lam * (1 - u) * (1 - u) / 2);
    assert_true(fabs(q - 0.01) < 1e-9);
}

static void test_engine_stats(void **state)
{
    (void)state;
    double x[] = {5, 1, 4, 2, 3};
    fpl_summary_t s;
    assert_int_equal(fpl_summarize(x, 5, &s), 0);
    assert_true(s.mean == 3 && s.median == 3 && s.min == 1 && s.max == 5);
    assert_true(fabs(s.sd - sqrt(2.5)) < 1e-15);
    assert_true(fabs(s.q10 - 1.4) < 1e-15); /* type 7: 1 + 0.4 (2 - 1) */
    /* t(0.975, 4) = 2.776445...: CI half-width t * sd / sqrt(n) */
    assert_true(fabs((s.ci_hi - s.mean) - 2.7764451051977987 * sqrt(2.5) / sqrt(5)) < 1e-9);
    double y[] = {1, INFINITY, 2};
    assert_int_equal(fpl_summarize(y, 3, &s), 0);
    assert_true(s.median == 2 && isinf(s.max) && isinf(s.q90));
    double z[] = {1, NAN};
    assert_int_equal(fpl_summarize(z, 2, &s), FPL_EINVAL);
    assert_int_equal(fpl_summarize(z, 0, &s), FPL_EINVAL);
    /* a power law is fitted exactly */
    double ns[6], e[6];
    for (int i = 0; i < 6; i++) {
        ns[i] = pow(2, 4 + i);
        e[i] = 3e-5 * pow(ns[i], 0.5);
    }
    double bb, lo, hi, a;
    assert_int_equal(fpl_fit_power(ns, e, 6, &bb, &lo, &hi, &a), 0);
    assert_true(fabs(bb - 0.5) < 1e-12 && lo <= bb && hi >= bb);
    assert_int_equal(fpl_fit_power(ns, e, 2, &bb, &lo, &hi, &a), FPL_EINVAL);
    e[2] = 0;
    assert_int_equal(fpl_fit_power(ns, e, 6, &bb, &lo, &hi, &a), FPL_EINVAL);
}

static char *read_all(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static void test_engine_records_atomic(void **state)
{
    (void)state;
    char dir[] = "/tmp/fplab-rec-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/a.csv", dir);
    fpl_csv_t *c = fpl_csv_open(path, "dot --quick --seed 7", 7, "n,err");
    assert_non_null(c);
    fpl_csv_row(c, "%d,%.17g", 1, 0.1);
    assert_int_equal(access(path, F_OK), -1); /* nothing at the path until close */
    assert_int_equal(fpl_csv_close(c), 0);
    const char *txt = read_all(path);
    assert_string_equal(txt, "# fplab " PACKAGE_VERSION "\n# command: dot --quick --seed 7\n"
                             "# seed: 7\nn,err\n1,0.10000000000000001\n");
    /* an abandoned file leaves the old one untouched */
    c = fpl_csv_open(path, "x", 1, "a");
    fpl_csv_row(c, "garbage");
    fpl_csv_abort(c);
    assert_string_equal(read_all(path), txt);
    /* an unwritable place is an error with a message */
    assert_null(fpl_csv_open("/nonexistent-dir/x.csv", "x", 1, "a"));
    assert_non_null(strstr(fpl_last_error(), "/nonexistent-dir"));
    unlink(path);
    rmdir(dir);
}

static void test_engine_plot(void **state)
{
    (void)state;
    char dir[] = "/tmp/fplab-plot-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char base[256], png[300], pdf[300];
    snprintf(base, sizeof base, "%s/fig", dir);
    snprintf(png, sizeof png, "%s.png", base);
    snprintf(pdf, sizeof pdf, "%s.pdf", base);
    fpl_plot_t *p = fpl_plot_new();
    fpl_plot_printf(p, "$d << EOD\n1 1\n2 4\n3 9\nEOD\nset xlabel 'n'\nplot $d w lp ls 1 t 'sq'\n");
    assert_int_equal(fpl_plot_render(p, base, 4, 3), 0);
    struct stat sb;
    assert_int_equal(stat(png, &sb), 0);
    assert_true(sb.st_size > 1000);
    assert_int_equal(stat(pdf, &sb), 0);
    assert_true(sb.st_size > 1000);
    unlink(png);
    unlink(pdf);
    /* a gnuplot error: no file is left behind */
    fpl_plot_t *bad = fpl_plot_new();
    fpl_plot_printf(bad, "plot $nosuchblock\n");
    assert_int_equal(fpl_plot_render(bad, base, 4, 3), FPL_EIO);
    assert_int_equal(stat(png, &sb), -1);
    fpl_plot_free(bad);
    /* gnuplot missing: a clear message naming the package */
    setenv("FPL_GNUPLOT", "/nonexistent/gnuplot", 1);
    assert_int_equal(fpl_plot_render(p, base, 4, 3), FPL_ENOTFOUND);
    assert_non_null(strstr(fpl_last_error(), "apt-get install gnuplot-nox"));
    unsetenv("FPL_GNUPLOT");
    fpl_plot_free(p);
    rmdir(dir);
}


/* ---- kernels and the tracker, on layers with known answers --------------- */

static void test_engine_kernels(void **state)
{
    (void)state;
    fpl_policy_t ex;
    fpl_policy_exact(&ex);
    double x[4] = {1, 2, 3, 4}, y[4];
    fpl_layernorm(&ex, x, y, 4, 0.0, NULL);
    for (int i = 0; i < 4; i++) /* mean 2.5, variance 1.25 */
        assert_true(fabs(y[i] - (x[i] - 2.5) / sqrt(1.25)) < 1e-15);
    fpl_rmsnorm(&ex, x, y, 4, 0.0, NULL);
    for (int i = 0; i < 4; i++) /* mean square 7.5 */
        assert_true(fabs(y[i] - x[i] / sqrt(7.5)) < 1e-15);
    double g[3] = {0, 10, -10}, gy[3];
    fpl_gelu(&ex, g, gy, 3, NULL);
    assert_true(gy[0] == 0 && fabs(gy[1] - 10) < 1e-15 && fabs(gy[2]) < 1e-20);
    /* fp32 statistics stay close to the exact ones; outputs rounded to out */
    fpl_policy_t p = pol("a=fp32,out=bf16,norm=fp32");
    fpl_layernorm(&p, x, y, 4, 0.0, NULL);
    fpl_format_t bf;
    fpl_format_parse("bf16", &bf);
    for (int i = 0; i < 4; i++) {
        assert_true(fpl_format_contains(&bf, y[i]));
        assert_true(fabs(y[i] - (x[i] - 2.5) / sqrt(1.25)) <= 0x1p-8 * fabs(y[i]) * 1.01);
    }
    /* int8 weights: per-row absmax scale, at most 255 levels, max kept */
    fpl_policy_t q = pol("w=int8,a=fp32");
    double W[2 * 5] = {0.1, -0.5, 0.25, 0.3, 0.0, 10, 1, 2, 3, -7}, Wq[10];
    fpl_weights(&q, W, Wq, 2, 5);
    assert_true(Wq[1] == -0.5 && Wq[5] == 10);
    for (int i = 0; i < 10; i++) {
        double s = i < 5 ? 0.5 / 127 : 10.0 / 127;
        double k = Wq[i] / s;
        assert_true(fabs(k - nearbyint(k)) < 1e-4 && fabs(Wq[i] - W[i]) <= s / 2 * 1.0001);
    }
}

typedef struct {
    int kind; /* 0 identity, 1 times two, 2 round to e4m3, 3 square the error */
    const double *center;
} toy_t;

static int toy_forward(const fpl_layer_t *L, const double *x, double *y, const fpl_policy_t *p,
                       fpl_sr_t *sr)
{
    const toy_t *t = L->state;
    for (size_t i = 0; i < L->in_dim; i++) {
        switch (t->kind) {
        case 0: y[i] = x[i]; break;
        case 1: y[i] = 2 * x[i]; break;
        case 2: y[i] = p->exact ? x[i] : fpl_round(&p->out, x[i], p->rnd, sr); break;
        default: y[i] = (x[i] - t->center[i]) * (x[i] - t->center[i]); break; /* exact */
        }
    }
    return 0;
}

static void test_engine_track_closed_form(void **state)
{
    (void)state;
    enum { D = 64 };
    double x0[D];
    fpt_rng_t rng;
    fpt_rng_init(&rng, 13);
    for (int i = 0; i < D; i++)
        x0[i] = 1 + (double)(fpt_rng_u64(&rng) >> 11) * 0x1p-53; /* in [1, 2): not bf16 values */
    double c[D]; /* the reference input of the squaring layer: 2 x0 */
    for (int i = 0; i < D; i++)
        c[i] = 2 * x0[i];
    toy_t id = {0, NULL}, two = {1, NULL}, rnd = {2, NULL}, sq = {3, c};
    fpl_layer_t L[4] = {{"identity", D, D, toy_forward, &id}, {"times two", D, D, toy_forward, &two},
                        {"round", D, D, toy_forward, &rnd}, {"square", D, D, toy_forward, &sq}};
    fpl_policy_t p = pol("a=bf16,out=e4m3");
    fpl_track_report_t R[4];
    fpl_err_t in;
    assert_int_equal(fpl_track(L, 4, x0, &p, NULL, &in, R), 0);
    assert_true(in.rel > 0 && in.rel <= 0x1p-8); /* the input rounded to bf16 */
    /* identity: introduces nothing, passes the input error unchanged */
    assert_true(R[0].introduced.rel == 0);
    assert_true(R[0].total.rel == in.rel && R[0].amplification == 1);
    /* exact doubling: no new error, relative error unchanged, absolute doubled */
    assert_true(R[1].introduced.rel == 0 && R[1].amplification == 1);
    assert_true(R[1].total.maxabs == 2 * R[0].total.maxabs);
    /* rounding to e4m3: introduces at most u = 2^-4, inherits the rest */
    assert_true(R[2].introduced.rel > 0 && R[2].introduced.rel <= 0x1p-4);
    assert_true(R[2].introduced.ulps <= 0.5);
    assert_true(R[2].inherited.rel == R[1].total.rel && R[2].amplification == 1);
    /* the layer (x - c)^2 centred on its reference input: its inherited
     * absolute error is the square of the incoming one */
    double in_max = R[2].total.maxabs;
    assert_true(in_max > 0);
    assert_true(R[3].inherited.maxabs == in_max * in_max);
    /* exact policy: nothing at all */
    fpl_policy_t ex;
    fpl_policy_exact(&ex);
    assert_int_equal(fpl_track(L, 3, x0, &ex, NULL, &in, R), 0);
    assert_true(in.rel == 0 && R[2].total.rel == 0 && isinf(R[2].total.sqnr_db));
    assert_true(R[2].total.cosine == 1);
    /* layers that do not chain */
    fpl_layer_t bad[2] = {{"a", D, D, toy_forward, &id}, {"b", D + 1, D, toy_forward, &id}};
    assert_int_equal(fpl_track(bad, 2, x0, &p, NULL, &in, R), FPL_EINVAL);
    assert_non_null(strstr(fpl_last_error(), "layer 1"));
}

static void test_engine_error_metrics(void **state)
{
    (void)state;
    fpl_format_t f;
    fpl_format_parse("bf16", &f);
    double b[3] = {1, -2, 4}, a[3];
    for (int i = 0; i < 3; i++)
        a[i] = b[i] * (1 + 0x1p-10);
    fpl_err_t e;
    fpl_error_metrics(a, b, 3, &f, &e);
    assert_true(fabs(e.rel - 0x1p-10) < 1e-15);
    assert_true(e.maxabs == 4 * 0x1p-10);
    assert_true(fabs(e.sqnr_db - 20 * log10(1024.0)) < 1e-9);
    assert_true(fabs(e.cosine - 1) < 1e-15);
    assert_true(fabs(e.ulps - 0x1p-10 / 0x1p-7) < 1e-12); /* ulp(1) in bf16 is 2^-7 */
    a[1] = INFINITY;
    fpl_error_metrics(a, b, 3, &f, &e);
    assert_true(isinf(e.rel) && isinf(e.maxabs));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_policy_parse),
        cmocka_unit_test(test_engine_dot_matches_scalar_ops),
        cmocka_unit_test(test_engine_stagnation_and_orders),
        cmocka_unit_test(test_engine_reference_dot),
        cmocka_unit_test(test_engine_vec_op_and_matmul),
        cmocka_unit_test(test_engine_bounds),
        cmocka_unit_test(test_engine_stats),
        cmocka_unit_test(test_engine_records_atomic),
        cmocka_unit_test(test_engine_plot),
        cmocka_unit_test(test_engine_kernels),
        cmocka_unit_test(test_engine_track_closed_form),
        cmocka_unit_test(test_engine_error_metrics),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
