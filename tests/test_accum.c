/* test_accum.c -- the aligned-truncating accumulator (acc=align:F:G): hand-
 * computed slices, and the fast path against the exact scalar reference */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acc_align.h"
#include "helpers.h"

static fpl_policy_t pol(const char *spec)
{
    fpl_policy_t p;
    if (fpl_policy_parse(spec, &p) != 0)
        fail_msg("cannot parse %s: %s", spec, fpl_last_error());
    return p;
}

/* fpl_sum under `spec`, checked against the reference on the way */
static double sum(const char *spec, const double *x, size_t n)
{
    fpl_policy_t p = pol(spec);
    double a = fpl_sum(&p, x, n, NULL), r = fpl__dot_align_ref(&p, x, NULL, n, NULL);
    if (!fpt_same(a, r))
        fail_msg("%s: fast %a, reference %a", spec, a, r);
    return a;
}

static void expect(double got, double want, const char *what)
{
    if (!fpt_same(got, want))
        fail_msg("%s: got %a, expected %a", what, got, want);
}

static void test_accum_parse(void **state)
{
    (void)state;
    fpl_policy_t p = pol("a=e4m3,acc=align:13");
    assert_int_equal(p.align_frac, 13);
    assert_int_equal(p.align_group, 32);
    assert_int_equal(p.acc.ebits, 8);
    assert_int_equal(p.acc.mbits, 13);
    assert_non_null(strstr(p.text, "acc=align:13:32"));
    fpl_policy_t q = pol(p.text); /* the canonical spelling parses back */
    assert_string_equal(q.text, p.text);
    p = pol("acc=align:5:16,order=blocked:128,promote=fp32,rnd=rtz");
    assert_int_equal(p.align_frac, 5);
    assert_int_equal(p.align_group, 16);
    assert_int_equal(p.order, FPL_ORDER_BLOCKED);
    p = pol("acc=align:13,acc=fp32"); /* a later acc= replaces the model */
    assert_int_equal(p.align_frac, 0);
    const char *bad[] = {"acc=align:0",      "acc=align:31",     "acc=align:13:0",
                         "acc=align:13:1025", "acc=align:x",     "acc=align:13:",
                         "acc=align:13:32:1", "acc=align:",      "acc=align:13,order=pairwise"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fpl_policy_t b;
        if (fpl_policy_parse(bad[i], &b) == 0)
            fail_msg("'%s' was accepted", bad[i]);
        assert_true(strlen(fpl_last_error()) > 0);
    }
}

/* A slice whose small addends vanish: 1 + 63 * (3 * 2^-15) with 13 fraction
 * bits.  Aligned to 2^0, each small addend is 0.75 quanta and truncates to
 * 0, so the sum stays 1 (the exact sum is 1.0057...).  An accumulator that
 * rounds each addition to nearest gains one ulp (2^-13) per addition. */
static void test_accum_small_addends_vanish(void **state)
{
    (void)state;
    double x[64];
    x[0] = 1;
    for (int i = 1; i < 64; i++)
        x[i] = 3 * 0x1p-15;
    expect(sum("acc=align:13", x, 64), 1.0, "align:13, two slices");
    expect(sum("acc=align:13:64", x, 64), 1.0, "align:13, one slice");
    fpl_policy_t p = pol("acc=fp:e=8,m=13,rnd=rne");
    expect(fpl_sum(&p, x, 64, NULL), 1 + 63 * 0x1p-13, "fp:e=8,m=13 RNE");
    /* without the 1, the small addends are the largest: nothing is lost */
    expect(sum("acc=align:13", x + 1, 63), 63 * 3 * 0x1p-15, "small addends alone");
}

/* Renormalisation truncates the carry: 4 bits (F = 3), one slice of four. */
static void test_accum_renormalise(void **state)
{
    (void)state;
    /* 1.875 = 15/8: quantum 2^-3, 15 + 15 + 15 + 14 = 59 quanta = 7.375,
     * six significant bits; truncated to four: 7.0 (nearest would be 7.5) */
    expect(sum("acc=align:3:4", (double[]){1.875, 1.875, 1.875, 1.75}, 4), 7.0, "59/8");
    /* 60 quanta = 7.5 = 111.1b fits four bits */
    expect(sum("acc=align:3:4", (double[]){1.875, 1.875, 1.875, 1.875}, 4), 7.5, "60/8");
}

/* The partial sum joins the next slice and sets its alignment (G = 2, F = 3).
 * Slice 1: {4, 1.75}, quantum 2^-1: 8 + 3 = 11 quanta = 5.5.
 * Slice 2: {5.5, 0.9375, 0.9375}, quantum 2^-1: 11 + 1 + 1 = 13 = 6.5.
 * The exact sum is 7.625. */
static void test_accum_carry_in(void **state)
{
    (void)state;
    expect(sum("acc=align:3:2", (double[]){4, 1.75, 0.9375, 0.9375}, 4), 6.5, "carry in");
    /* the order of the slices changes the result, not the exactness */
    expect(sum("acc=align:3:2", (double[]){0.9375, 0.9375, 4, 1.75}, 4), 7.0,
           "small slice first: {0.9375, 0.9375} = 1.875; {1.875, 4, 1.75} in 2^-1: 3 + 8 + 3");
}

/* Truncation is by magnitude (sign-magnitude), not two's-complement floor:
 * -0.1875 in quanta of 2^-2 is -0.75, truncated to 0, so -1 - 0.1875 gives
 * -1 (a floor would give -1.25). */
static void test_accum_sign_magnitude(void **state)
{
    (void)state;
    expect(sum("acc=align:2:2", (double[]){-1.0, -0.1875}, 2), -1.0, "negative");
    expect(sum("acc=align:2:2", (double[]){1.0, 0.1875}, 2), 1.0, "positive mirror");
    expect(sum("acc=align:2:2", (double[]){1.0, -0.1875}, 2), 1.0, "mixed: -0.75 q -> 0");
}

/* Cancellation: 1 - (1 - 2^-13) + 2^-20 with 13 fraction bits.  The two big
 * addends are exact multiples of 2^-13; 2^-20 vanishes before they cancel,
 * so the result is 2^-13 exactly while the true sum is 2^-13 + 2^-20. */
static void test_accum_cancellation(void **state)
{
    (void)state;
    expect(sum("acc=align:13", (double[]){1.0, -(1 - 0x1p-13), 0x1p-20}, 3), 0x1p-13,
           "cancellation");
    /* in its own slice (G = 1) nothing aligns it away, and it survives */
    expect(sum("acc=align:13:1", (double[]){0x1p-20, 1.0, -1.0}, 3), 0.0,
           "G=1: {2^-20}, then {2^-20, 1}: truncated to 1, then {1, -1} = +0");
    expect(sum("acc=align:13:2", (double[]){1.0, -1.0, 0x1p-20}, 3), 0x1p-20,
           "G=2: {1, -1} = +0, then {+0, 2^-20}");
}

static void test_accum_signed_zero(void **state)
{
    (void)state;
    expect(sum("acc=align:13", (double[]){-0.0, -0.0}, 2), -0.0, "-0 + -0");
    expect(sum("acc=align:13", (double[]){-0.0, 0.0}, 2), 0.0, "-0 + +0");
    expect(sum("acc=align:13", (double[]){1.0, -1.0}, 2), 0.0, "1 - 1");
    expect(sum("acc=align:13", (double[]){-1.0, 1.0}, 2), 0.0, "-1 + 1");
    expect(sum("acc=align:13:1", (double[]){-0.0, -0.0, -0.0}, 3), -0.0, "-0 carried");
    fpl_policy_t p = pol("acc=align:13");
    expect(fpl_dot(&p, (double[]){-1, -1}, (double[]){0, 0}, 2, NULL), -0.0, "(-1)(0) twice");
    expect(fpl_dot(&p, (double[]){-1, 1}, (double[]){0, 0}, 2, NULL), 0.0, "(-1)(0) + (1)(0)");
    /* promotion: +0 + (-0) is +0, except rounding down */
    expect(sum("acc=align:13,order=blocked:1,promote=fp32", (double[]){-0.0, -0.0}, 2), 0.0,
           "promoted, RNE");
    expect(sum("acc=align:13,order=blocked:1,promote=fp32,rnd=rdown", (double[]){-0.0, -0.0}, 2),
           -0.0, "promoted, RDOWN");
}

static void test_accum_specials(void **state)
{
    (void)state;
    expect(sum("acc=align:13", (double[]){1, NAN}, 2), NAN, "NaN");
    expect(sum("acc=align:13", (double[]){INFINITY, -INFINITY}, 2), NAN, "inf - inf");
    expect(sum("acc=align:13", (double[]){INFINITY, 1}, 2), INFINITY, "inf + 1");
    expect(sum("acc=align:13:1", (double[]){-INFINITY, 1, 2}, 3), -INFINITY, "-inf carried");
    expect(sum("acc=align:13:1", (double[]){NAN, 1}, 2), NAN, "NaN carried");
    /* beyond (2 - 2^-13) 2^127 the register overflows to inf */
    expect(sum("acc=align:13", (double[]){0x1.8p127, 0x1.8p127}, 2), INFINITY, "overflow");
    expect(sum("acc=align:13", (double[]){-0x1.8p127, -0x1.8p127}, 2), -INFINITY, "-overflow");
    expect(sum("acc=align:13", (double[]){0x1.fffp127, 0x1p100}, 2), 0x1.fffp127,
           "the largest value, the small addend truncated");
    /* the quantum never goes below binary32's: 2^(-126-F) */
    expect(sum("acc=align:3", (double[]){0x1p-140, 0x1p-141}, 2), 0.0, "below 2^-129");
    expect(sum("acc=align:3", (double[]){0x1p-128, 0x1p-129, 0x1p-131}, 3), 0x1.8p-128,
           "subnormal quanta of 2^-129");
}

/* Promotion: blocks of two, F = 3, into binary32.  Block 1: 1.875 + 1.875 =
 * 30 quanta of 2^-3 = 3.75.  Block 2: 1.875 + 1.75 = 29 quanta = 3.625, five
 * bits, truncated to 3.5.  Total 7.25.  Without promotion, slice 2 is
 * {3.75, 1.875, 1.75} in quanta of 2^-2: 15 + 7 + 7 = 29 = 7.25, truncated
 * to four bits: 7.0. */
static void test_accum_promotion(void **state)
{
    (void)state;
    const double x[4] = {1.875, 1.875, 1.875, 1.75};
    expect(sum("acc=align:3:2,order=blocked:2,promote=fp32", x, 4), 7.25, "promoted");
    expect(sum("acc=align:3:2", x, 4), 7.0, "not promoted");
    /* a block that G does not divide: blocks of 3 with G = 2 are slices 2 + 1 */
    expect(sum("acc=align:3:2,order=blocked:3,promote=fp32", (double[]){1.875, 1.875, 1.75}, 3),
           5.5, "{1.875, 1.875} = 3.75; {3.75, 1.75} in 2^-2: 15 + 7 = 22 = 5.5");
    /* the promotion rounds in rnd: 1 + 2^-30 in fp32 */
    double y[2] = {1.0, 0x1.8p-24};
    expect(sum("acc=align:13:1,order=blocked:1,promote=fp32", y, 2), 1 + 0x1p-23, "RNE");
    expect(sum("acc=align:13:1,order=blocked:1,promote=fp32,rnd=rtz", y, 2), 1.0, "RTZ");
}

/* With enough fraction bits and data of a narrow range, nothing is lost:
 * the model equals the exact sum (an oracle independent of both paths). */
static void test_accum_wide_is_exact(void **state)
{
    (void)state;
    fpt_rng_t r;
    fpt_rng_init(&r, fpt_seed(17));
    fpl_format_t e4m3;
    fpl_format_parse("e4m3", &e4m3);
    fpl_policy_t p = pol("acc=align:30:32");
    for (int t = 0; t < 1000; t++) {
        double x[64], y[64], s = 0;
        for (int i = 0; i < 64; i++) {
            /* e4m3 values in [1, 2): products in [1, 4), 8 bits, quantum 2^-6 */
            x[i] = fpl_round(&e4m3, 1 + (double)(fpt_rng_u64(&r) >> 11) * 0x1p-53, FPL_RTZ, NULL);
            y[i] = fpl_round(&e4m3, 1 + (double)(fpt_rng_u64(&r) >> 11) * 0x1p-53, FPL_RTZ, NULL);
            s += x[i] * y[i]; /* exact: below 2^8, multiples of 2^-6 */
        }
        expect(fpl_dot(&p, x, y, 64, NULL), s, "align:30 on narrow data");
    }
}

/* Every triple of a small format with specials, summed under several
 * models, and every length-2 dot of e2m1 values: fast == reference. */
static void test_accum_exhaustive_small(void **state)
{
    (void)state;
    fpl_format_t f;
    fpl_format_parse("fp:e=3,m=1", &f);
    size_t ng;
    double *grid = fpt_grid(&f, &ng);
    double v[64];
    size_t nv = 0;
    for (size_t i = 1; i + 1 < ng; i++) /* drop the two phantom values */
        v[nv++] = grid[i];
    free(grid);
    v[nv++] = -0.0;
    v[nv++] = INFINITY;
    v[nv++] = -INFINITY;
    v[nv++] = NAN;
    const char *specs[] = {"acc=align:1:1", "acc=align:1:2", "acc=align:2:3", "acc=align:3:2",
                           "acc=align:2:1,order=blocked:2,promote=fp:e=4,m=3",
                           "acc=align:1:2,order=blocked:2,promote=fp:e=4,m=3,rnd=rtz",
                           "acc=align:2:2,order=blocked:1,promote=fp:e=3,m=2,rnd=rdown",
                           "acc=align:4:2,order=blocked:2,promote=fp:e=4,m=2,rnd=rup"};
    size_t checked = 0;
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        fpl_policy_t p = pol(specs[s]);
        for (size_t i = 0; i < nv; i++)
            for (size_t j = 0; j < nv; j++)
                for (size_t k = 0; k < nv; k++) {
                    double x[3] = {v[i], v[j], v[k]};
                    double a = fpl_sum(&p, x, 3, NULL), b = fpl__dot_align_ref(&p, x, NULL, 3, NULL);
                    if (!fpt_same(a, b))
                        fail_msg("%s: sum(%a, %a, %a): fast %a, reference %a", specs[s], x[0], x[1],
                                 x[2], a, b);
                    checked++;
                }
    }
    fpl_format_t e2m1;
    fpl_format_parse("e2m1", &e2m1);
    grid = fpt_grid(&e2m1, &ng);
    double w[32];
    size_t nw = 0;
    for (size_t i = 1; i + 1 < ng; i++)
        w[nw++] = grid[i];
    free(grid);
    w[nw++] = -0.0;
    const char *dspecs[] = {"acc=align:1:2", "acc=align:2:1", "acc=align:3:2,prod=e2m1"};
    for (size_t s = 0; s < sizeof dspecs / sizeof dspecs[0]; s++) {
        fpl_policy_t p = pol(dspecs[s]);
        for (size_t a = 0; a < nw; a++)
            for (size_t b = 0; b < nw; b++)
                for (size_t c = 0; c < nw; c++)
                    for (size_t d = 0; d < nw; d++) {
                        double x[2] = {w[a], w[b]}, y[2] = {w[c], w[d]};
                        double r1 = fpl_dot(&p, x, y, 2, NULL);
                        double r2 = fpl__dot_align_ref(&p, x, y, 2, NULL);
                        if (!fpt_same(r1, r2))
                            fail_msg("%s: (%a, %a).(%a, %a): fast %a, reference %a", dspecs[s],
                                     x[0], x[1], y[0], y[1], r1, r2);
                        checked++;
                    }
    }
    print_message("# %zu sums and dots compared\n", checked);
    assert_true(checked > 100000);
}

/* Random e4m3/e5m2 dot products of lengths up to 300 (several slices and
 * blocks, lengths that G and K do not divide), Hopper's model and others. */
static void test_accum_random_vs_reference(void **state)
{
    (void)state;
    fpt_rng_t r;
    fpt_rng_init(&r, fpt_seed(2412));
    const char *specs[] = {"acc=align:13",
                           "acc=align:13,order=blocked:128,promote=fp32",
                           "acc=align:13:32,order=blocked:64,promote=fp32,rnd=rtz",
                           "acc=align:13:7,order=blocked:20,promote=bf16,rnd=rdown",
                           "acc=align:23:16,order=blocked:32,promote=fp16,rnd=rup",
                           "acc=align:4:5,prod=bf16",
                           "acc=align:30:1024"};
    const char *ins[] = {"e4m3", "e5m2"};
    size_t iters = fpt_scaled(400, 20);
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        fpl_policy_t p = pol(specs[s]);
        for (size_t t = 0; t < iters; t++) {
            fpl_format_t f;
            fpl_format_parse(ins[t % 2], &f);
            size_t n = 1 + fpt_rng_u64(&r) % 300;
            double x[300], y[300];
            for (size_t i = 0; i < n; i++) {
                /* values over several binades, either sign */
                double u = (double)(fpt_rng_u64(&r) >> 11) * 0x1p-53;
                double e = (double)(int)(fpt_rng_u64(&r) % 12) - 6;
                x[i] = fpl_round(&f, (fpt_rng_u64(&r) & 1 ? -1 : 1) * (1 + u) * exp2(e), FPL_RNE,
                                 NULL);
                u = (double)(fpt_rng_u64(&r) >> 11) * 0x1p-53;
                y[i] = fpl_round(&f, (t % 3 ? 1 : -1) * u, FPL_RNE, NULL);
            }
            double a = fpl_dot(&p, x, y, n, NULL), b = fpl__dot_align_ref(&p, x, y, n, NULL);
            if (!fpt_same(a, b))
                fail_msg("%s, %s, n = %zu: fast %a, reference %a", specs[s], ins[t % 2], n, a, b);
        }
    }
}

/* LayerNorm statistics accumulate in norm=, not in the matmul accumulator:
 * acc=align must not leak into them. */
static void test_accum_not_in_norm_statistics(void **state)
{
    (void)state;
    double x[300], y1[300], y2[300];
    for (int i = 0; i < 300; i++)
        x[i] = 1000 + (double)(i % 17) * 0.37; /* a large mean: truncation would show */
    fpl_policy_t a = pol("a=fp32,acc=align:5,norm=fp32"), b = pol("a=fp32,acc=fp32,norm=fp32");
    fpl_layernorm(&a, x, y1, 300, 1e-5, NULL);
    fpl_layernorm(&b, x, y2, 300, 1e-5, NULL);
    for (int i = 0; i < 300; i++)
        expect(y1[i], y2[i], "layernorm under acc=align");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accum_parse),
        cmocka_unit_test(test_accum_small_addends_vanish),
        cmocka_unit_test(test_accum_renormalise),
        cmocka_unit_test(test_accum_carry_in),
        cmocka_unit_test(test_accum_sign_magnitude),
        cmocka_unit_test(test_accum_cancellation),
        cmocka_unit_test(test_accum_signed_zero),
        cmocka_unit_test(test_accum_specials),
        cmocka_unit_test(test_accum_promotion),
        cmocka_unit_test(test_accum_wide_is_exact),
        cmocka_unit_test(test_accum_exhaustive_small),
        cmocka_unit_test(test_accum_random_vs_reference),
        cmocka_unit_test(test_accum_not_in_norm_statistics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
