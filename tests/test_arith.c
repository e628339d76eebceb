/* test_arith.c -- correctly rounded scalar operations, judged by MPFR
 * computing each operation directly at the format's precision and range */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

static fpl_format_t fmt(const char *name)
{
    fpl_format_t f;
    if (fpl_format_parse(name, &f) != 0)
        fail_msg("cannot parse %s: %s", name, fpl_last_error());
    return f;
}

/* The judge, written from the MPFR manual's emulation recipe: compute the
 * operation directly into precision p inside the format's exponent range,
 * then mpfr_check_range and mpfr_subnormalize; overflow and the specials
 * as IEEE 754 and the format's policy say. */
static double judge(const fpl_format_t *f, fpl_op_t op, const double *x, fpl_rmode_t mode)
{
    mpfr_rnd_t rnd = mode == FPL_RNE ? MPFR_RNDN
                     : mode == FPL_RTZ ? MPFR_RNDZ
                     : mode == FPL_RUP ? MPFR_RNDU
                                       : MPFR_RNDD;
    mpfr_exp_t emin = mpfr_get_emin(), emax = mpfr_get_emax();
    mpfr_t a, b, c, y;
    mpfr_inits2(53, a, b, c, (mpfr_ptr)0);
    mpfr_init2(y, f->mbits + 1);
    mpfr_set_d(a, x[0], MPFR_RNDN);
    mpfr_set_d(b, x[1], MPFR_RNDN);
    mpfr_set_d(c, x[2], MPFR_RNDN);
    mpfr_set_emin(f->emin - f->mbits + 1);
    mpfr_set_emax(f->emax + 1);
    int t = 0;
    switch (op) {
    case FPL_OP_ADD: t = mpfr_add(y, a, b, rnd); break;
    case FPL_OP_SUB: t = mpfr_sub(y, a, b, rnd); break;
    case FPL_OP_MUL: t = mpfr_mul(y, a, b, rnd); break;
    case FPL_OP_DIV: t = mpfr_div(y, a, b, rnd); break;
    case FPL_OP_SQRT: t = mpfr_sqrt(y, a, rnd); break;
    case FPL_OP_FMA: t = mpfr_fma(y, a, b, c, rnd); break;
    case FPL_OP_EXP: t = mpfr_exp(y, a, rnd); break;
    case FPL_OP_LOG: t = mpfr_log(y, a, rnd); break;
    case FPL_OP_TANH: t = mpfr_tanh(y, a, rnd); break;
    case FPL_OP_EXPM1: t = mpfr_expm1(y, a, rnd); break;
    }
    t = mpfr_check_range(y, t, rnd);
    mpfr_subnormalize(y, t, rnd);
    double r = mpfr_get_d(y, MPFR_RNDN);
    mpfr_set_emin(emin);
    mpfr_set_emax(emax);
    mpfr_clears(a, b, c, y, (mpfr_ptr)0);
    /* IEEE formats only here: MPFR's overflow to inf or to the largest value
     * is already the IEEE rule */
    return r;
}

static const fpl_op_t all_ops[] = {FPL_OP_ADD, FPL_OP_SUB, FPL_OP_MUL, FPL_OP_DIV, FPL_OP_SQRT,
                                   FPL_OP_FMA, FPL_OP_EXP, FPL_OP_LOG, FPL_OP_TANH,
                                   FPL_OP_EXPM1};

static double random_value(fpt_rng_t *r, const fpl_format_t *f)
{
    double x = fpt_random_double(r, f);
    return fpl_round(f, x, FPL_RNE, NULL);
}

/* Random and special operands, every op, the four MPFR modes, in IEEE
 * formats where the judge above is exactly the IEEE rule. */
static void test_arith_matches_mpfr(void **state)
{
    (void)state;
    const char *names[] = {"fp16", "bf16", "e5m2", "fp32", "fp:e=3,m=2"};
    fpl_rmode_t modes[] = {FPL_RNE, FPL_RTZ, FPL_RUP, FPL_RDOWN};
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(77));
    size_t N = fpt_scaled(20000, 500);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        fpl_format_t f = fmt(names[k]);
        double specials[] = {0.0, -0.0, f.min_positive, -f.min_positive, f.min_normal,
                             f.max_finite, -f.max_finite, 1.0, -1.0, INFINITY, -INFINITY, NAN};
        size_t ns = sizeof specials / sizeof specials[0];
        for (size_t i = 0; i < N + ns * ns; i++) {
            double x[3];
            if (i < ns * ns) {
                x[0] = specials[i / ns];
                x[1] = specials[i % ns];
                x[2] = specials[(i * 7) % ns];
            } else {
                for (int j = 0; j < 3; j++)
                    x[j] = random_value(&rng, &f);
                if (i % 3 == 0) /* near-cancellation */
                    x[1] = -fpl_round(&f, x[0] * (1 + 0x1p-5), FPL_RNE, NULL);
                if (i % 5 == 0) /* fma: c near -a*b */
                    x[2] = -fpl_round(&f, x[0] * x[1], FPL_RNE, NULL);
            }
            for (size_t o = 0; o < sizeof all_ops / sizeof all_ops[0]; o++)
                for (size_t m = 0; m < 4; m++) {
                    double got = fpl_arith(&f, all_ops[o], x, modes[m], NULL);
                    double want = judge(&f, all_ops[o], x, modes[m]);
                    if (!fpt_same(got, want))
                        fail_msg("%s %s %s (%a, %a, %a): got %a want %a", f.name,
                                 fpl_op_name(all_ops[o]), fpl_rmode_name(modes[m]), x[0], x[1],
                                 x[2], got, want);
                }
        }
    }
}

/* RNA and SR have no MPFR rounding mode: check them against the two
 * directed results, and RNA against exact midpoints. */
static void test_arith_rna_and_sr(void **state)
{
    (void)state;
    fpl_format_t f = fmt("bf16");
    fpt_rng_t rng;
    fpt_rng_init(&rng, 91);
    fpl_sr_t sr;
    fpl_sr_seed(&sr, 5);
    size_t N = fpt_scaled(20000, 500);
    for (size_t i = 0; i < N; i++) {
        double x[3] = {random_value(&rng, &f), random_value(&rng, &f), random_value(&rng, &f)};
        for (size_t o = 0; o < sizeof all_ops / sizeof all_ops[0]; o++) {
            double dn = fpl_arith(&f, all_ops[o], x, FPL_RDOWN, NULL);
            double up = fpl_arith(&f, all_ops[o], x, FPL_RUP, NULL);
            double ne = fpl_arith(&f, all_ops[o], x, FPL_RNE, NULL);
            double na = fpl_arith(&f, all_ops[o], x, FPL_RNA, NULL);
            double s = fpl_arith(&f, all_ops[o], x, FPL_SR, &sr);
            if (isnan(ne)) {
                assert_true(isnan(na) && isnan(s));
                continue;
            }
            assert_true(fpt_same(na, dn) || fpt_same(na, up));
            assert_true(fpt_same(s, dn) || fpt_same(s, up) || (dn == 0 && s == 0));
            /* RNA differs from RNE only on ties, choosing the larger magnitude */
            if (!fpt_same(na, ne))
                assert_true(fabs(na) > fabs(ne));
        }
    }
    /* a tie: 1 + 2^-8 is the midpoint of 1 and 1 + 2^-7 in bf16 */
    double t[3] = {1.0, 0x1p-8, 0};
    assert_true(fpl_arith(&f, FPL_OP_ADD, t, FPL_RNE, NULL) == 1.0);
    assert_true(fpl_arith(&f, FPL_OP_ADD, t, FPL_RNA, NULL) == 1 + 0x1p-7);
    double tn[3] = {-1.0, -0x1p-8, 0};
    assert_true(fpl_arith(&f, FPL_OP_ADD, tn, FPL_RNA, NULL) == -(1 + 0x1p-7));
}

/* One rounding for fma; exact zeros' signs; IEEE invalid operations. */
static void test_arith_special_rules(void **state)
{
    (void)state;
    fpl_format_t bf = fmt("bf16"), e4 = fmt("e4m3"), h = fmt("fp16");
    /* (1+2^-7)^2 - 1 = 2^-6 + 2^-14: the product rounded first loses 2^-14 */
    double a = 1 + 0x1p-7;
    double x[3] = {a, a, -1.0};
    double fused = fpl_arith(&bf, FPL_OP_FMA, x, FPL_RUP, NULL);
    double twice = fpl_arith(&bf, FPL_OP_ADD,
                             (double[]){fpl_arith(&bf, FPL_OP_MUL, x, FPL_RUP, NULL), -1.0, 0},
                             FPL_RUP, NULL);
    assert_true(fused == 0x1p-6 + 0x1p-13); /* rounded up from 2^-6 + 2^-14 */
    assert_true(twice == 0x1.8p-6);   /* 1 + 2^-6 + 2^-7 after the rounded-up product */
    double z[3] = {1.0, -1.0, 0};
    assert_false(signbit(fpl_arith(&bf, FPL_OP_ADD, z, FPL_RNE, NULL)));
    assert_true(signbit(fpl_arith(&bf, FPL_OP_ADD, z, FPL_RDOWN, NULL)));
    double d0[3] = {1.0, 0.0, 0};
    assert_true(fpl_arith(&h, FPL_OP_DIV, d0, FPL_RNE, NULL) == INFINITY);
    assert_true(isnan(fpl_arith(&e4, FPL_OP_DIV, d0, FPL_RNE, NULL))); /* no inf: NaN */
    double m1[3] = {-1.0, 0, 0};
    assert_true(isnan(fpl_arith(&h, FPL_OP_SQRT, m1, FPL_RNE, NULL)));
    assert_true(isnan(fpl_arith(&h, FPL_OP_LOG, m1, FPL_RNE, NULL)));
    double big[3] = {300.0, 300.0, 0};
    assert_true(isnan(fpl_arith(&e4, FPL_OP_ADD, big, FPL_RNE, NULL)));
    assert_true(fpl_arith(&e4, FPL_OP_ADD, big, FPL_RTZ, NULL) == 448);
    double e[3] = {12.0, 0, 0}; /* exp(12) > 65504 */
    assert_true(fpl_arith(&h, FPL_OP_EXP, e, FPL_RNE, NULL) == INFINITY);
    double one[3] = {1.0, 0, 0};
    assert_true(fpl_arith(&h, FPL_OP_LOG, one, FPL_RNE, NULL) == 0);
    assert_true(fpl_arith(&bf, FPL_OP_EXP, (double[]){0.0, 0, 0}, FPL_RUP, NULL) == 1.0);
    /* exp(1) in bf16 is 0x1.5cp+1 (e = 2.71828... between 2.703125 and 2.71875) */
    assert_true(fpl_arith(&bf, FPL_OP_EXP, one, FPL_RNE, NULL) == 0x1.5cp+1);
}

/* exp and expm1 decide most roundings in binary64 (arith.h): every input of
 * the 8- and 16-bit IEEE formats, in the four MPFR modes, against the judge;
 * e4m3 (FN: overflow gives NaN) against MPFR at 300 bits rounded by
 * fpl_round_mpfr.  Plus random fp32 inputs near 0 and across the range. */
static void test_arith_exp_expm1_exhaustive(void **state)
{
    (void)state;
    const char *names[] = {"fp16", "bf16", "e5m2", "fp:e=4,m=3", "fp:e=3,m=2"};
    fpl_rmode_t modes[] = {FPL_RNE, FPL_RTZ, FPL_RUP, FPL_RDOWN};
    const fpl_op_t eops[] = {FPL_OP_EXP, FPL_OP_EXPM1};
    size_t stride = 8 - fpt_scaled(7, 1); /* 1, or up to 7 in slow (sanitizer) builds */
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        fpl_format_t f = fmt(names[k]);
        size_t ncodes = (size_t)1 << f.nbits;
        for (size_t c = 0; c < ncodes; c += stride) {
            double x[3] = {fpl_format_decode(&f, c), 0, 0};
            if (isnan(x[0]))
                continue;
            for (int o = 0; o < 2; o++)
                for (int m = 0; m < 4; m++) {
                    double got = fpl_arith(&f, eops[o], x, modes[m], NULL);
                    double want = judge(&f, eops[o], x, modes[m]);
                    if (!fpt_same(got, want))
                        fail_msg("%s %s %s (%a): got %a want %a", f.name, fpl_op_name(eops[o]),
                                 fpl_rmode_name(modes[m]), x[0], got, want);
                }
        }
    }
    /* e4m3: the oracle is MPFR at 300 bits toward zero (no value or midpoint
     * of a 4-bit significand lies between it and the exact value), rounded
     * to the format by the MPFR path */
    fpl_format_t e4 = fmt("e4m3");
    mpfr_t y, a;
    mpfr_init2(y, 300);
    mpfr_init2(a, 53);
    for (uint64_t c = 0; c < 256; c++) {
        double x[3] = {fpl_format_decode(&e4, c), 0, 0};
        if (isnan(x[0]))
            continue;
        mpfr_set_d(a, x[0], MPFR_RNDN);
        for (int o = 0; o < 2; o++) {
            /* toward zero: expm1(-448) = -1 + 1e-195 must stay above -1 */
            if (eops[o] == FPL_OP_EXP)
                mpfr_exp(y, a, MPFR_RNDZ);
            else
                mpfr_expm1(y, a, MPFR_RNDZ);
            for (int m = 0; m < 4; m++) {
                double got = fpl_arith(&e4, eops[o], x, modes[m], NULL);
                double want = fpl_round_mpfr(&e4, y, modes[m], NULL);
                if (!fpt_same(got, want))
                    fail_msg("e4m3 %s %s (%a): got %a want %a", fpl_op_name(eops[o]),
                             fpl_rmode_name(modes[m]), x[0], got, want);
            }
        }
    }
    mpfr_clear(a);
    mpfr_clear(y);
    fpl_format_t f32 = fmt("fp32");
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(1234));
    size_t N = fpt_scaled(200000, 2000);
    for (size_t i = 0; i < N; i++) {
        /* |x| from 2^-30 to 128: results from near 1 (and near 0 for expm1)
         * to past fp32's overflow */
        double mag = ldexp(1.0 + (double)(fpt_rng_u64(&rng) >> 11) * 0x1p-53,
                           (int)(fpt_rng_u64(&rng) % 38) - 30);
        double x[3] = {fpl_round(&f32, (fpt_rng_u64(&rng) & 1) ? -mag : mag, FPL_RNE, NULL), 0, 0};
        for (int o = 0; o < 2; o++) {
            int m = (int)(i % 4);
            double got = fpl_arith(&f32, eops[o], x, modes[m], NULL);
            double want = judge(&f32, eops[o], x, modes[m]);
            if (!fpt_same(got, want))
                fail_msg("fp32 %s %s (%a): got %a want %a", fpl_op_name(eops[o]),
                         fpl_rmode_name(modes[m]), x[0], got, want);
        }
    }
}

static void test_arith_op_names(void **state)
{
    (void)state;
    const char *names[] = {"add", "sub", "mul", "div", "sqrt", "fma", "exp", "log", "tanh",
                           "expm1"};
    const int arity[] = {2, 2, 2, 2, 1, 3, 1, 1, 1, 1};
    for (int i = 0; i < FPL_NOPS; i++) {
        fpl_op_t op;
        assert_int_equal(fpl_op_parse(names[i], &op), 0);
        assert_string_equal(fpl_op_name(op), names[i]);
        assert_int_equal(fpl_op_arity(op), arity[i]);
    }
    fpl_op_t op;
    assert_int_equal(fpl_op_parse("pow", &op), FPL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arith_matches_mpfr),
        cmocka_unit_test(test_arith_rna_and_sr),
        cmocka_unit_test(test_arith_special_rules),
        cmocka_unit_test(test_arith_exp_expm1_exhaustive),
        cmocka_unit_test(test_arith_op_names),
    };
    return cmocka_run_group_tests_name("arith", tests, NULL, NULL);
}
