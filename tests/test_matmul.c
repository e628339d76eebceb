/* test_matmul.c -- the fast reductions and the vectorised matmul against a
 * reference written from arith.h's definition, with MPFR doing the sums */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

static fpl_policy_t pol(const char *spec)
{
    fpl_policy_t p;
    if (fpl_policy_parse(spec, &p) != 0)
        fail_msg("policy '%s': %s", spec, fpl_last_error());
    return p;
}

/* ---- the reference ----------------------------------------------------------
 * One accumulation step: the exact sum s + p rounded once to f.  For the
 * deterministic modes that is fpl_arith (MPFR computes the sum exactly, then
 * one correct rounding).  Stochastic rounding is defined on the sum known to
 * 53 bits plus a sticky bit: MPFR gives the exact sum, it is rounded to odd
 * at 53 bits here (toward zero, last bit set when inexact), and fpl_round
 * takes one draw for it. */
static double ref_add(const fpl_format_t *f, fpl_rmode_t mode, double s, double p, fpl_sr_t *sr)
{
    if (mode != FPL_SR) {
        double a[3] = {s, p, 0};
        return fpl_arith(f, FPL_OP_ADD, a, mode, NULL);
    }
    double ro;
    if (!isfinite(s) || !isfinite(p)) {
        ro = s + p;
    } else {
        mpfr_t e, t;
        mpfr_init2(e, 2200); /* any two doubles sum exactly in 2200 bits */
        mpfr_init2(t, 53);
        mpfr_set_d(e, s, MPFR_RNDN);
        mpfr_add_d(e, e, p, MPFR_RNDN);
        int inex = mpfr_set(t, e, MPFR_RNDZ);
        ro = mpfr_get_d(t, MPFR_RNDZ);
        if (inex && isfinite(ro)) {
            uint64_t b;
            memcpy(&b, &ro, sizeof b);
            b |= 1;
            memcpy(&ro, &b, sizeof b);
        }
        mpfr_clears(e, t, (mpfr_ptr)0);
    }
    return fpl_round(f, ro, FPL_SR, sr);
}

static double ref_seq(const fpl_policy_t *p, const fpl_format_t *acc, const double *t, size_t n,
                      fpl_sr_t *sr)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s = ref_add(acc, p->rnd, s, t[i], sr);
    return s;
}

static double ref_pairwise(const fpl_policy_t *p, const double *t, size_t n, fpl_sr_t *sr)
{
    if (n == 1)
        return ref_add(&p->acc, p->rnd, 0.0, t[0], sr);
    if (n == 2)
        return ref_add(&p->acc, p->rnd, t[0], t[1], sr);
    size_t h = n / 2;
    double a = ref_pairwise(p, t, h, sr);
    double b = ref_pairwise(p, t + h, n - h, sr);
    return ref_add(&p->acc, p->rnd, a, b, sr);
}

/* The dot product of arith.h with exact products (the inputs here are values
 * of formats of at most 24 bits, so x*y is exact in binary64); y NULL sums. */
static double ref_dot(const fpl_policy_t *p, const double *x, const double *y, size_t n,
                      fpl_sr_t *sr)
{
    if (n == 0)
        return 0.0;
    double *t = malloc(n * sizeof *t);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++)
        t[i] = y ? x[i] * y[i] : x[i];
    double s = 0;
    switch (p->order) {
    case FPL_ORDER_SEQ: s = ref_seq(p, &p->acc, t, n, sr); break;
    case FPL_ORDER_PAIRWISE: s = ref_pairwise(p, t, n, sr); break;
    case FPL_ORDER_BLOCKED:
        for (size_t i = 0; i < n; i += p->block) {
            size_t len = n - i < p->block ? n - i : p->block;
            s = ref_add(&p->promote, p->rnd, s, ref_seq(p, &p->acc, t + i, len, sr), sr);
        }
        break;
    }
    free(t);
    return s;
}

/* ---- inputs -------------------------------------------------------------- */

enum { DATA_UNIFORM, DATA_WIDE, DATA_TIES, DATA_SPECIAL, NDATA };

/* A value of format f: uniform in [-1, 1); over the format's whole range
 * (overflow and underflow); small integers and powers of two (exact sums and
 * exact ties); or uniform with an occasional inf, NaN, zero, extreme. */
static double gen(fpt_rng_t *r, const fpl_format_t *f, int kind)
{
    double v;
    switch (kind) {
    case DATA_WIDE: v = fpt_random_double(r, f); break;
    case DATA_TIES: {
        uint64_t u = fpt_rng_u64(r);
        v = (u & 1) ? (double)((int)(u >> 8 & 15) - 7) : ldexp(1.0, (int)(u >> 16 & 15) - 10);
        break;
    }
    default: {
        uint64_t u = fpt_rng_u64(r);
        v = (double)(u >> 11) * 0x1p-52 - 1;
        if (kind == DATA_SPECIAL && (u & 63) == 0) {
            const double sp[] = {
                INFINITY,       -INFINITY,       NAN,           0.0, -0.0, f->max_finite,
                -f->max_finite, f->min_positive, -f->min_normal};
            v = sp[(u >> 6) % (sizeof sp / sizeof sp[0])];
        }
        break;
    }
    }
    return fpl_round(f, v, FPL_RNE, NULL);
}

static const char *const inputs[] = {"fp32", "bf16", "fp16", "e4m3", "e5m2"};
#define NIN (sizeof inputs / sizeof inputs[0])

/* ---- dot products and sums ------------------------------------------------ */

/* Every accumulator, order and mode the analyses use, and formats that take
 * the other branches of the fast path (FNUZ, saturation, no subnormals). */
static void test_matmul_dot_matches_reference(void **state)
{
    (void)state;
    const char *accs[] = {"same",
                          "fp32",
                          "fp:e=8,m=13",
                          "float8_e4m3fnuz",
                          "fp:e=8,m=23,ovf=sat",
                          "fp:e=5,m=10,nosub"};
    const char *orders[] = {"seq", "pairwise", "blocked:128,promote=fp32",
                            "blocked:5,promote=fp16"};
    const char *modes[] = {"rne", "rtz", "sr"};
    const size_t lens[] = {1, 2, 3, 7, 64, 300};
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(2024));
    size_t reps = fpt_scaled(3, 1);
    double x[300], y[300];
    for (size_t i = 0; i < NIN; i++)
        for (size_t a = 0; a < sizeof accs / sizeof accs[0]; a++)
            for (size_t o = 0; o < sizeof orders / sizeof orders[0]; o++)
                for (size_t md = 0; md < sizeof modes / sizeof modes[0]; md++) {
                    char spec[200];
                    snprintf(spec, sizeof spec, "a=%s,acc=%s,order=%s,rnd=%s", inputs[i],
                             strcmp(accs[a], "same") ? accs[a] : inputs[i], orders[o], modes[md]);
                    fpl_policy_t p = pol(spec);
                    for (int d = 0; d < NDATA; d++)
                        for (size_t rep = 0; rep < reps; rep++) {
                            size_t n = lens[(rep + (size_t)d + o) % (sizeof lens / sizeof lens[0])];
                            for (size_t j = 0; j < n; j++) {
                                x[j] = gen(&rng, &p.a, d);
                                y[j] = gen(&rng, &p.a, d);
                            }
                            fpl_sr_t s1, s2;
                            fpl_sr_seed(&s1, rep + 11);
                            fpl_sr_seed(&s2, rep + 11);
                            for (int sum = 0; sum < 2; sum++) {
                                const double *yy = sum ? NULL : y;
                                double got = fpl_dot(&p, x, yy, n, &s1);
                                double want = ref_dot(&p, x, yy, n, &s2);
                                if (!fpt_same(got, want))
                                    fail_msg("%s, data %d, n %zu, %s: got %a want %a", spec, d, n,
                                             sum ? "sum" : "dot", got, want);
                                /* the same number of draws */
                                assert_true(s1.counter == s2.counter);
                            }
                        }
                }
}

/* Double rounding, by hand: 1 + (2^-24 + 2^-60) is just above the binary32
 * midpoint 1 + 2^-24, so it rounds up to 1 + 2^-23; its binary64 sum is the
 * midpoint itself, which would round to even (1).  The same one bit lower
 * in bf16 (midpoint 1 + 2^-8). */
static void test_matmul_double_rounding_by_hand(void **state)
{
    (void)state;
    double x[2] = {1.0, 1 + 0x1p-36}, y32[2] = {1.0, 0x1p-24}, y16[2] = {1.0, 0x1p-8};
    fpl_policy_t f32 = pol("a=fp32,acc=fp32"), b16 = pol("a=bf16,acc=bf16");
    assert_true(fpl_dot(&f32, x, y32, 2, NULL) == 1 + 0x1p-23);
    assert_true(fpl_dot(&b16, x, y16, 2, NULL) == 1 + 0x1p-7);
    /* and an exact midpoint ties to even */
    double xe[2] = {1.0, 1.0};
    assert_true(fpl_dot(&f32, xe, y32, 2, NULL) == 1.0);
    assert_true(fpl_dot(&b16, xe, y16, 2, NULL) == 1.0);
    /* the vectorised matmul: 20 outputs, the 13th (a lane of the second
     * vector of the second panel) gets the inexact midpoint */
    enum { K = 2, NO = 20 };
    double A[K] = {1.0, 0x1p-24}, B[NO * K], C[NO];
    fpl_policy_t mm = pol("a=fp32,acc=fp32,out=fp32");
    for (int j = 0; j < NO; j++) {
        B[j * K] = 1.0;
        B[j * K + 1] = j == 13 ? 1 + 0x1p-36 : 1.0;
    }
    fpl_matmul(&mm, A, B, C, 1, K, NO, NULL);
    for (int j = 0; j < NO; j++)
        assert_true(C[j] == (j == 13 ? 1 + 0x1p-23 : 1.0));
    fpl_matvec(&mm, B, A, C, NO, K, NULL);
    assert_true(C[13] == 1 + 0x1p-23 && C[12] == 1.0);
    /* the same in a bf16 accumulator (vectorised by integer rounding) */
    fpl_policy_t mb = pol("a=bf16,acc=bf16,out=fp32");
    double A16[K] = {1.0, 0x1p-8};
    fpl_matmul(&mb, A16, B, C, 1, K, NO, NULL);
    for (int j = 0; j < NO; j++)
        assert_true(C[j] == (j == 13 ? 1 + 0x1p-7 : 1.0));
    /* below binary32's smallest normal: 2^-148 + (2^-150 + 2^-202) is just
     * above the midpoint 5 * 2^-150 of 2^-148 and 3 * 2^-149 (binary64 sum:
     * the midpoint, ties to even 2^-148) */
    double xs[2] = {1.0, 1 + 0x1p-52}, ys[2] = {0x1p-148, 0x1p-150};
    assert_true(fpl_dot(&f32, xs, ys, 2, NULL) == 0x3p-149);
    double As[K] = {0x1p-148, 0x1p-150};
    for (int j = 0; j < NO; j++)
        B[j * K + 1] = j == 6 ? 1 + 0x1p-52 : 1.0;
    fpl_matmul(&mm, As, B, C, 1, K, NO, NULL);
    for (int j = 0; j < NO; j++)
        assert_true(C[j] == (j == 6 ? 0x3p-149 : 0x1p-148));
}

/* The sticky bit decides, by hand (bf16 accumulator, 45 bits below its
 * quantum at 1 in binary64).  RTZ: 1 + (-2^-60) lies below 1, so it truncates
 * to 1 - 2^-8, though its binary64 sum is 1.  SR: with the draw u of the
 * second addition, choose p so that the binary64 sum 1 + T 2^-52 has
 * T = 2^45 - 1 - W, W = (~u) >> 19; the exact sum is above it (+2^-60), so
 * the fraction is (T + sticky) / 2^45 and the rule "up iff u < fraction *
 * 2^64" goes up by a hair, to 1 + 2^-7, when W is odd. */
static void test_matmul_sticky_by_hand(void **state)
{
    (void)state;
    fpl_policy_t rtz = pol("a=bf16,acc=bf16,rnd=rtz");
    double x[2] = {1.0, -0x1p-60}, one[2] = {1.0, 1.0};
    assert_true(fpl_dot(&rtz, x, one, 2, NULL) == 1 - 0x1p-8);
    assert_true(fpl_sum(&rtz, x, 2, NULL) == 1 - 0x1p-8);
    /* the vectorised matmul: the 6th of 18 outputs has the negative term */
    enum { NO = 18 };
    double B[NO * 2], C[NO];
    for (int j = 0; j < NO; j++) {
        B[2 * j] = 1.0;
        B[2 * j + 1] = j == 5 ? -0x1p-60 : 0x1p-60;
    }
    fpl_policy_t rtzo = pol("a=bf16,acc=bf16,rnd=rtz,out=fp32");
    fpl_matmul(&rtzo, one, B, C, 1, 2, NO, NULL);
    for (int j = 0; j < NO; j++)
        assert_true(C[j] == (j == 5 ? 1 - 0x1p-8 : 1.0));
    fpl_policy_t sr = pol("a=bf16,acc=bf16,rnd=sr");
    int done = 0;
    for (uint64_t seed = 1; seed < 100 && done < 3; seed++) {
        fpl_sr_t st;
        fpl_sr_seed(&st, seed);
        uint64_t W = (~fpl_sr_at(&st, 1)) >> 19;
        if (!(W & 1))
            continue;
        uint64_t T = ((uint64_t)1 << 45) - 1 - W;
        double xs[2] = {1.0, ldexp((double)T, -52) + 0x1p-60};
        assert_true(xs[1] - 0x1p-60 == ldexp((double)T, -52)); /* exact */
        double got = fpl_dot(&sr, xs, one, 2, &st);
        assert_true(st.counter == 2);
        assert_true(got == 1 + 0x1p-7);
        done++;
    }
    assert_int_equal(done, 3);
}

/* ---- matmul and matvec ------------------------------------------------------ */

/* fpl_matmul entry (i, j) is fpl_dot(B_j, A_i) rounded to out (not rounded
 * under the exact policy), for shapes around the vector widths, every data
 * kind, both vectorised (binary32 RNE, exact) and output-by-output policies;
 * SR draws in the same order. */
static void test_matmul_equals_rowwise_dot(void **state)
{
    (void)state;
    const char *specs[] = {"w=e4m3,a=bf16,acc=fp32,out=bf16",
                           "a=fp32,acc=fp32,out=fp32",
                           "w=bf16,a=bf16,acc=fp32,out=fp32",
                           "w=e5m2,a=fp16,acc=fp32,out=fp16",
                           "a=bf16,acc=fp32,rnd=sr",
                           "a=bf16,acc=bf16,out=bf16",
                           "a=fp32,acc=fp32,rnd=rtz",
                           "a=e4m3,acc=fp:e=8,m=13,order=blocked:4,promote=fp32",
                           "exact",
                           "a=fp16,acc=fp16,rnd=rtz,out=fp32",
                           "a=e4m3,acc=e4m3",
                           "a=e5m2,acc=float8_e4m3fnuz,rnd=rtz",
                           "a=fp16,acc=fp:e=5,m=10,nosub",
                           "a=bf16,acc=fp:e=8,m=23,ovf=sat"};
    const size_t ms[] = {1, 2, 3, 4, 7}, ks[] = {1, 2, 3, 4, 5, 9, 33},
                 ns[] = {1, 3, 4, 8, 9, 16, 17, 35};
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(31337));
    size_t nn = sizeof ns / sizeof ns[0];
    double A[7 * 33], B[35 * 33], C[7 * 35], W[7 * 35];
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        fpl_policy_t p = pol(specs[s]);
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                for (size_t ni = 0; ni < nn; ni++) {
                    size_t m = ms[mi], k = ks[ki], n = ns[ni];
                    int d = (int)((mi + ki + ni) % NDATA);
                    for (size_t i = 0; i < m * k; i++)
                        A[i] = gen(&rng, &p.a, d);
                    for (size_t i = 0; i < n * k; i++)
                        B[i] = gen(&rng, &p.w, d);
                    fpl_sr_t s1, s2;
                    fpl_sr_seed(&s1, m * 100 + k);
                    fpl_sr_seed(&s2, m * 100 + k);
                    fpl_matmul(&p, A, B, C, m, k, n, &s1);
                    for (size_t i = 0; i < m; i++)
                        for (size_t j = 0; j < n; j++) {
                            double v = fpl_dot(&p, B + j * k, A + i * k, k, &s2);
                            W[i * n + j] = p.exact ? v : fpl_round(&p.out, v, p.rnd, &s2);
                        }
                    assert_true(s1.counter == s2.counter);
                    for (size_t i = 0; i < m * n; i++)
                        if (!fpt_same(C[i], W[i]))
                            fail_msg("%s %zux%zux%zu data %d entry %zu: matmul %a, dot %a",
                                     specs[s], m, k, n, d, i, C[i], W[i]);
                    /* matvec is matmul with one row of A */
                    fpl_sr_seed(&s1, 5);
                    fpl_matvec(&p, B, A, C, n, k, &s1);
                    fpl_sr_seed(&s2, 5);
                    fpl_matmul(&p, A, B, W, 1, k, n, &s2);
                    for (size_t j = 0; j < n; j++)
                        if (!fpt_same(C[j], W[j]))
                            fail_msg("%s matvec %zux%zu data %d row %zu: %a vs %a", specs[s], n, k,
                                     d, j, C[j], W[j]);
                }
    }
}

/* The vectorised binary32 kernel against the MPFR reference directly, on
 * larger shapes and the hard data: overflow to inf and inf - inf, NaN,
 * sums in binary32's subnormal range, inexact midpoints. */
static void test_matmul_f32_kernel_reference(void **state)
{
    (void)state;
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(99));
    const char *specs[] = {"w=e4m3,a=bf16,acc=fp32,out=fp32", "a=fp32,acc=fp32,out=fp32"};
    enum { M = 5, K = 70, NO = 37 };
    static double A[M * K], B[NO * K], C[M * NO];
    size_t reps = fpt_scaled(6, 2);
    for (size_t s = 0; s < 2; s++) {
        fpl_policy_t p = pol(specs[s]);
        for (size_t rep = 0; rep < reps; rep++) {
            int kind = (int)(rep % 6);
            /* kind 4: products near binary32's smallest normal, 2^-126 */
            int wide_w = p.w.emin < -100;
            double sa = wide_w ? 0x1p-63 : 0x1p-126, sb = wide_w ? 0x1p-63 : 1.0;
            for (size_t i = 0; i < M * K; i++) {
                double v = gen(&rng, &p.a, kind < 4 ? kind : DATA_UNIFORM);
                A[i] = kind == 4 ? fpl_round(&p.a, v * sa, FPL_RNE, NULL) : v;
            }
            for (size_t i = 0; i < NO * K; i++) {
                double v = gen(&rng, &p.w, kind < 4 ? kind : DATA_UNIFORM);
                B[i] = kind == 4 ? fpl_round(&p.w, v * sb, FPL_RNE, NULL) : v;
            }
            if (kind == 5) { /* midpoints just missed, as in the hand test */
                for (size_t i = 0; i < M; i++) {
                    A[i * K] = 1.0;
                    A[i * K + 1] = 0x1p-24;
                }
                for (size_t j = 0; j < NO; j++) {
                    B[j * K] = 1.0;
                    B[j * K + 1] = j % 3 ? 1 + 0x1p-36 : 1.0;
                }
            }
            fpl_matmul(&p, A, B, C, M, K, NO, NULL);
            for (size_t i = 0; i < M; i++)
                for (size_t j = 0; j < NO; j++) {
                    double want = fpl_round(&p.out, ref_dot(&p, B + j * K, A + i * K, K, NULL),
                                            FPL_RNE, NULL);
                    if (!fpt_same(C[i * NO + j], want))
                        fail_msg("%s kind %d (%zu, %zu): got %a want %a", specs[s], kind, i, j,
                                 C[i * NO + j], want);
                }
        }
    }
}

/* Exhaustive on 8-bit accumulators: every value s of the accumulator
 * format (and inf, NaN) plus every e5m2 value p, also nudged by 2^-40
 * relative (inexact binary64 sums, the sticky bit), as fpl_sum's second
 * step and as a matmul of [1 1] against the rows [s p]. */
static void test_matmul_exhaustive_small(void **state)
{
    (void)state;
    const char *accs[] = {"e4m3", "fp:e=4,m=3", "e5m2", "float8_e4m3fnuz", "fp:e=5,m=2,nosub"};
    const char *modes[] = {"rne", "rtz", "sr"};
    fpl_format_t e5m2;
    assert_int_equal(fpl_format_parse("e5m2", &e5m2), 0);
    size_t np;
    double *pg = fpt_grid(&e5m2, &np);
    for (size_t a = 0; a < sizeof accs / sizeof accs[0]; a++)
        for (size_t md = 0; md < 3; md++) {
            char spec[128];
            snprintf(spec, sizeof spec, "a=fp32,acc=%s,rnd=%s,out=fp32", accs[a], modes[md]);
            fpl_policy_t p = pol(spec);
            size_t ns;
            double *sg = fpt_grid(&p.acc, &ns);
            /* the grid's first and last entries are phantoms beyond the range */
            size_t nsv = ns - 2 + 3, npv = (np - 2) * 3;
            double *sv = malloc(nsv * sizeof *sv), *pv = malloc(npv * sizeof *pv);
            assert_non_null(sv);
            assert_non_null(pv);
            for (size_t i = 1; i + 1 < ns; i++)
                sv[i - 1] = sg[i];
            sv[ns - 2] = INFINITY;
            sv[ns - 1] = -INFINITY;
            sv[ns] = NAN;
            for (size_t i = 1; i + 1 < np; i++) {
                pv[3 * (i - 1)] = pg[i];
                pv[3 * (i - 1) + 1] = pg[i] * (1 + 0x1p-40);
                pv[3 * (i - 1) + 2] = pg[i] * (1 - 0x1p-40);
            }
            size_t n = nsv * npv;
            double *B = malloc(2 * n * sizeof *B), *C = malloc(n * sizeof *C);
            assert_non_null(B);
            assert_non_null(C);
            double one[2] = {1.0, 1.0};
            fpl_sr_t s1, s2;
            fpl_sr_seed(&s1, a * 3 + md);
            fpl_sr_seed(&s2, a * 3 + md);
            for (size_t i = 0; i < nsv; i++)
                for (size_t j = 0; j < npv; j++) {
                    double x[2] = {sv[i], pv[j]};
                    double got = fpl_sum(&p, x, 2, &s1);
                    double s0 = ref_add(&p.acc, p.rnd, 0.0, x[0], &s2);
                    double want = ref_add(&p.acc, p.rnd, s0, x[1], &s2);
                    if (!fpt_same(got, want))
                        fail_msg("%s: %a + %a: got %a want %a", spec, x[0], x[1], got, want);
                    B[2 * (i * npv + j)] = x[0];
                    B[2 * (i * npv + j) + 1] = x[1];
                }
            if (p.rnd != FPL_SR) { /* deterministic: the vectorised matmul too */
                fpl_matmul(&p, one, B, C, 1, 2, n, NULL);
                for (size_t t = 0; t < n; t++) {
                    double want = fpl_sum(&p, B + 2 * t, 2, NULL);
                    if (!fpt_same(C[t], want))
                        fail_msg("%s matmul: %a + %a: got %a want %a", spec, B[2 * t], B[2 * t + 1],
                                 C[t], want);
                }
            }
            free(B);
            free(C);
            free(sv);
            free(pv);
            free(sg);
        }
    free(pg);
}

/* The exact policy's kernel gives Dot2's bits: long rows whose terms span
 * many binades and cancel, so the error sum c carries the result. */
static void test_matmul_exact_kernel(void **state)
{
    (void)state;
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(7));
    enum { M = 3, K = 257, NO = 21 };
    static double A[M * K], B[NO * K], C[M * NO];
    fpl_policy_t ex;
    fpl_policy_exact(&ex);
    size_t reps = fpt_scaled(8, 2);
    for (size_t rep = 0; rep < reps; rep++) {
        for (size_t i = 0; i < M * K; i++)
            A[i] = ldexp((double)(int64_t)fpt_rng_u64(&rng), (int)(fpt_rng_u64(&rng) % 61) - 93);
        for (size_t j = 0; j < NO; j++)
            for (size_t l = 0; l < K; l++) {
                double v = ldexp((double)(int64_t)fpt_rng_u64(&rng), -63);
                /* the second half of the row undoes the first, nearly */
                B[j * K + l] = l < K / 2 || rep % 2 ? v : -B[j * K + l - K / 2] * (1 + 0x1p-40);
            }
        if (rep % 2 == 0)
            for (size_t i = 0; i < M; i++)
                for (size_t l = K / 2; l < K; l++)
                    A[i * K + l] = A[i * K + l - K / 2];
        fpl_matmul(&ex, A, B, C, M, K, NO, NULL);
        for (size_t i = 0; i < M; i++)
            for (size_t j = 0; j < NO; j++) {
                double want = fpl_dot(&ex, B + j * K, A + i * K, K, NULL);
                if (!fpt_same(C[i * NO + j], want))
                    fail_msg("rep %zu (%zu, %zu): matmul %a, dot %a", rep, i, j, C[i * NO + j],
                             want);
            }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_dot_matches_reference),
        cmocka_unit_test(test_matmul_double_rounding_by_hand),
        cmocka_unit_test(test_matmul_sticky_by_hand),
        cmocka_unit_test(test_matmul_equals_rowwise_dot),
        cmocka_unit_test(test_matmul_f32_kernel_reference),
        cmocka_unit_test(test_matmul_exact_kernel),
        cmocka_unit_test(test_matmul_exhaustive_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
