/* test_format.c -- format descriptors: facts from the standards, parsing,
 * encode/decode round trips over every encoding */
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

/* Constants from the OCP FP8/MX specifications and IEEE 754, written here
 * from the documents, not from the code. */
static void test_format_standard_facts(void **state)
{
    (void)state;
    fpl_format_t f;
    f = fmt("e4m3");
    assert_true(f.max_finite == 448.0);
    assert_true(f.min_positive == ldexp(1, -9));
    assert_true(f.min_normal == ldexp(1, -6));
    assert_int_equal(f.nbits, 8);
    assert_false(f.has_inf);
    assert_true(f.has_nan);
    f = fmt("e5m2");
    assert_true(f.max_finite == 57344.0);
    assert_true(f.min_positive == ldexp(1, -16));
    assert_true(f.has_inf);
    f = fmt("fp16");
    assert_true(f.max_finite == 65504.0);
    assert_true(f.min_positive == ldexp(1, -24));
    assert_true(f.min_normal == ldexp(1, -14));
    assert_true(f.unit_roundoff == ldexp(1, -11));
    f = fmt("bf16");
    assert_true(f.max_finite == 0x1.fep127);
    assert_true(f.min_normal == ldexp(1, -126));
    assert_true(f.unit_roundoff == ldexp(1, -8));
    f = fmt("fp32");
    assert_true(f.max_finite == 0x1.fffffep127);
    assert_true(f.min_positive == ldexp(1, -149));
    f = fmt("tf32");
    assert_int_equal(f.nbits, 19);
    assert_true(f.unit_roundoff == ldexp(1, -11));
    f = fmt("fp64");
    assert_true(f.max_finite == 0x1.fffffffffffffp1023);
    assert_true(f.min_positive == 0x1p-1074);
    f = fmt("e4m3fnuz");
    assert_true(f.max_finite == 240.0);
    assert_true(f.min_positive == ldexp(1, -10));
    assert_false(f.has_negzero);
    f = fmt("e5m2fnuz");
    assert_true(f.max_finite == 57344.0);
    assert_true(f.min_positive == ldexp(1, -17));
    f = fmt("e4m3b11fnuz");
    assert_true(f.max_finite == 30.0);
    f = fmt("e3m2");
    assert_true(f.max_finite == 28.0);
    assert_true(f.min_positive == 0.0625);
    f = fmt("e2m3");
    assert_true(f.max_finite == 7.5);
    assert_true(f.min_positive == 0.125);
    f = fmt("e8m0");
    assert_true(f.max_finite == ldexp(1, 127));
    assert_true(f.min_positive == ldexp(1, -127));
    assert_int_equal(f.nbits, 8);
    f = fmt("int8");
    assert_true(f.max_finite == 127 && f.min_finite == -128);
    f = fmt("uint4");
    assert_true(f.max_finite == 15 && f.min_finite == 0);
}

/* E2M1's sixteen codes are +-{0, 0.5, 1, 1.5, 2, 3, 4, 6}. */
static void test_format_e2m1_values(void **state)
{
    (void)state;
    fpl_format_t f = fmt("e2m1");
    const double want[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
    for (int c = 0; c < 8; c++) {
        assert_true(fpl_format_decode(&f, (uint64_t)c) == want[c]);
        assert_true(fpl_format_decode(&f, (uint64_t)c | 8) == -want[c]);
    }
    assert_true(signbit(fpl_format_decode(&f, 8)));
}

/* Named codes of the 8-bit formats (OCP spec tables). */
static void test_format_special_codes(void **state)
{
    (void)state;
    fpl_format_t e4m3 = fmt("e4m3"), e5m2 = fmt("e5m2"), fnuz = fmt("e4m3fnuz"), e8m0 = fmt("e8m0");
    assert_true(isnan(fpl_format_decode(&e4m3, 0x7f)));
    assert_true(isnan(fpl_format_decode(&e4m3, 0xff)));
    assert_true(fpl_format_decode(&e4m3, 0x7e) == 448);
    assert_true(fpl_format_decode(&e4m3, 0x78) == 256); /* all-ones exponent is normal */
    assert_true(fpl_format_decode(&e5m2, 0x7c) == INFINITY);
    assert_true(fpl_format_decode(&e5m2, 0xfc) == -INFINITY);
    assert_true(isnan(fpl_format_decode(&e5m2, 0x7d)));
    assert_true(fpl_format_decode(&e5m2, 0x7b) == 57344);
    assert_true(isnan(fpl_format_decode(&fnuz, 0x80)));
    assert_true(fpl_format_decode(&fnuz, 0x7f) == 240);
    assert_true(fpl_format_decode(&fnuz, 0xff) == -240);
    assert_true(fpl_format_decode(&e8m0, 0x7f) == 1.0);
    assert_true(fpl_format_decode(&e8m0, 0x00) == ldexp(1, -127));
    assert_true(isnan(fpl_format_decode(&e8m0, 0xff)));
    uint64_t c;
    assert_int_equal(fpl_format_encode(&e4m3, NAN, &c), 0);
    assert_int_equal(c, 0x7f);
    assert_int_equal(fpl_format_encode(&fnuz, -NAN, &c), 0);
    assert_int_equal(c, 0x80);
    assert_int_equal(fpl_format_encode(&e5m2, -INFINITY, &c), 0);
    assert_int_equal(c, 0xfc);
}

/* encode(decode(c)) == c for every canonical code of every small format,
 * and decode(encode(v)) == v. */
static void test_format_roundtrip_exhaustive(void **state)
{
    (void)state;
    const char *names[] = {"fp16", "bf16", "e4m3", "e5m2", "e4m3fnuz", "e5m2fnuz", "e4m3b11fnuz",
                           "e3m2", "e2m3", "e2m1", "e8m0", "int8", "uint8", "int4", "uint4",
                           "fp:e=3,m=4,nosub", "fp:e=5,m=2,fn", "fp:e=1,m=3,nospecials"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        fpl_format_t f = fmt(names[k]);
        size_t nan_codes = 0;
        for (uint64_t c = 0; c < (1ULL << f.nbits); c++) {
            double v = fpl_format_decode(&f, c);
            uint64_t back;
            if (isnan(v)) {
                nan_codes++;
                assert_int_equal(fpl_format_encode(&f, v, &back), 0);
                assert_true(isnan(fpl_format_decode(&f, back)));
                continue;
            }
            int noncanonical = f.kind == FPL_KIND_FLOAT && !f.subnormals && f.has_zero &&
                               ((c >> f.mbits) & ((1ULL << f.ebits) - 1)) == 0 &&
                               (c & ((1ULL << f.mbits) - 1)) != 0;
            if (fpl_format_encode(&f, v, &back) != 0)
                fail_msg("%s: cannot encode %a (code 0x%llx): %s", f.name, v,
                         (unsigned long long)c, fpl_last_error());
            if (!noncanonical && back != c)
                fail_msg("%s: code 0x%llx -> %a -> 0x%llx", f.name, (unsigned long long)c, v,
                         (unsigned long long)back);
            assert_true(fpt_same(fpl_format_decode(&f, back), v));
            if (!fpl_format_contains(&f, v))
                fail_msg("%s: decoded value %a of code 0x%llx is not contained", f.name, v,
                         (unsigned long long)c);
        }
        assert_int_equal(nan_codes > 0, f.has_nan);
    }
}

/* The same round trip over every generic float format of at most 10 bits,
 * under every special-value policy, with and without subnormals. */
static void test_format_roundtrip_generic(void **state)
{
    (void)state;
    size_t formats = 0;
    for (int e = 1; e <= 7; e++)
        for (int m = 0; 1 + e + m <= 10; m++)
            for (int sp = 0; sp < 4; sp++)
                for (int sub = 0; sub < 2; sub++) {
                    fpl_format_t f;
                    fpl_overflow_t ov = sp == FPL_SPECIALS_NONE ? FPL_OVERFLOW_SATURATE
                                                                 : FPL_OVERFLOW_NAN;
                    if (sp == FPL_SPECIALS_IEEE && m == 0)
                        ov = FPL_OVERFLOW_INF; /* IEEE with m = 0 has inf but no NaN */
                    if (fpl_format_float(&f, e, m, -1, sub, (fpl_specials_t)sp, ov) != 0)
                        continue; /* e.g. no normal numbers at all */
                    formats++;
                    for (uint64_t c = 0; c < (1ULL << f.nbits); c++) {
                        double v = fpl_format_decode(&f, c);
                        uint64_t back;
                        if (isnan(v))
                            continue;
                        if (fpl_format_encode(&f, v, &back) != 0)
                            fail_msg("%s: cannot encode %a: %s", f.name, v, fpl_last_error());
                        assert_true(fpt_same(fpl_format_decode(&f, back), v));
                        int canonical = f.subnormals || ((c >> m) & ((1ULL << e) - 1)) != 0 ||
                                        (c & ((1ULL << m) - 1)) == 0;
                        if (canonical && back != c)
                            fail_msg("%s: 0x%llx -> %a -> 0x%llx", f.name,
                                     (unsigned long long)c, v, (unsigned long long)back);
                    }
                }
    assert_true(formats > 250);
}

static void test_format_encode_rejects(void **state)
{
    (void)state;
    fpl_format_t e4m3 = fmt("e4m3"), e2m1 = fmt("e2m1"), e8m0 = fmt("e8m0"), i4 = fmt("int4");
    uint64_t c;
    assert_int_equal(fpl_format_encode(&e4m3, 0.1, &c), FPL_ERANGE);
    assert_int_equal(fpl_format_encode(&e4m3, 480, &c), FPL_ERANGE);
    assert_int_equal(fpl_format_encode(&e4m3, INFINITY, &c), FPL_ERANGE);
    assert_int_equal(fpl_format_encode(&e2m1, NAN, &c), FPL_ERANGE);
    assert_int_equal(fpl_format_encode(&e2m1, 5, &c), FPL_ERANGE);
    assert_int_equal(fpl_format_encode(&e8m0, 0, &c), FPL_ERANGE);
    assert_int_equal(fpl_format_encode(&e8m0, -2, &c), FPL_ERANGE);
    assert_int_equal(fpl_format_encode(&e8m0, 3, &c), FPL_ERANGE);
    assert_int_equal(fpl_format_encode(&i4, 8, &c), FPL_ERANGE);
    assert_int_equal(fpl_format_encode(&i4, 0.5, &c), FPL_ERANGE);
    assert_int_equal(fpl_format_encode(&i4, -8, &c), 0);
    assert_int_equal(c, 0x8);
}

static void test_format_parse_aliases(void **state)
{
    (void)state;
    const char *pairs[][2] = {{"float8_e4m3fn", "e4m3"},   {"float8_e5m2", "e5m2"},
                              {"float8_e4m3fnuz", "e4m3fnuz"}, {"float8_e5m2fnuz", "e5m2fnuz"},
                              {"bfloat16", "bf16"},       {"float16", "fp16"},
                              {"float6_e3m2fn", "e3m2"},  {"float6_e2m3fn", "e2m3"},
                              {"float4_e2m1fn", "e2m1"},  {"float8_e8m0fnu", "e8m0"},
                              {"float32", "fp32"},        {"BF16", "bf16"},
                              {"float8_e4m3b11fnuz", "e4m3b11fnuz"}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        fpl_format_t f = fmt(pairs[i][0]);
        assert_string_equal(f.name, pairs[i][1]);
    }
    /* every preset parses and is listed */
    const char *name, *aliases;
    size_t n = 0;
    for (; (name = fpl_format_preset(n, &aliases)) != NULL; n++)
        assert_string_equal(fmt(name).name, name);
    assert_true(n >= 20);
}

static void test_format_parse_generic(void **state)
{
    (void)state;
    fpl_format_t g = fmt("fp:e=4,m=3,fn"), p = fmt("e4m3");
    assert_true(g.max_finite == p.max_finite && g.min_positive == p.min_positive);
    assert_int_equal(g.specials, FPL_SPECIALS_FN);
    assert_int_equal(g.overflow, FPL_OVERFLOW_NAN);
    g = fmt("fp:e=5,m=10");
    p = fmt("fp16");
    assert_true(g.max_finite == p.max_finite && g.min_positive == p.min_positive);
    g = fmt("fp:e=4,m=3,bias=8,fnuz");
    assert_true(g.max_finite == 240);
    g = fmt("fp:e=8,m=13,nosub,ovf=sat");
    assert_false(g.subnormals);
    assert_int_equal(g.overflow, FPL_OVERFLOW_SATURATE);
    assert_true(g.min_positive == ldexp(1, -126));
    g = fmt("int:b=3,unsigned");
    assert_true(g.max_finite == 7);
    assert_string_equal(g.name, "int:b=3,unsigned"); /* parses back (fuzz_format) */
    assert_string_equal(fmt("int:b=8").name, "int8");
    g = fmt("fp:e=11,m=52");
    assert_true(g.max_finite == 0x1.fffffffffffffp1023);
}

static void test_format_parse_errors(void **state)
{
    (void)state;
    const char *bad[] = {"",          "fp8",        "e4m4",           "fp:e=0,m=3",
                         "fp:e=12,m=3", "fp:e=4,m=53", "fp:e=4",          "fp:e=4,m=3,xyz",
                         "fp:e=4,m=3,bias=-3", "fp:e=2,m=3,bias=2000", "fp:e=1,m=0",
                         "int:b=1",  "int:b=33",   "fp:e=4,m=3,ovf=wrap", "fp:e=4,m=3,fn,ovf=inf",
                         "fp:e=5,m=2,nospecials,ovf=nan",
                         /* values finer than binary64 (found by fuzz_format) */
                         "fp:e=1,m=8,bias=1070,fnuz,nosub", "fp:e=2,m=44,bias=1040,nosub"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fpl_format_t f;
        if (fpl_format_parse(bad[i], &f) != FPL_EINVAL)
            fail_msg("'%s' was accepted as %s", bad[i], f.name);
        assert_true(strlen(fpl_last_error()) > 10);
    }
    fpl_format_t f = fmt("e4m3");
    assert_int_equal(fpl_format_set_overflow(&f, FPL_OVERFLOW_INF), FPL_EINVAL);
    assert_int_equal(fpl_format_set_overflow(&f, FPL_OVERFLOW_SATURATE), 0);
    f = fmt("e2m1");
    assert_int_equal(fpl_format_set_overflow(&f, FPL_OVERFLOW_NAN), FPL_EINVAL);
    f = fmt("int8");
    assert_int_equal(fpl_format_set_overflow(&f, FPL_OVERFLOW_INF), FPL_EINVAL);
    assert_non_null(strstr(fpl_strerror(FPL_EINVAL), "invalid"));
}

/* A generic format's canonical name spells every non-default field, so it
 * parses back to the same format (found by fuzz_format: ovf=sat was lost). */
static void test_format_canonical_name_round_trip(void **state)
{
    (void)state;
    const char *spell[] = {"fp:e=8,m=13,ovf=sat", "fp:e=4,m=3,fn,ovf=saturate", "fp:e=5,m=2,ovf=nan",
                           "fp:e=4,m=3,bias=11,fnuz,nosub,ovf=sat", "fp:e=3,m=2,nospecials",
                           "fp:e=6,m=9,ieee,ovf=inf"};
    const char *want[] = {"fp:e=8,m=13,ovf=sat", "fp:e=4,m=3,fn,ovf=sat", "fp:e=5,m=2,ovf=nan",
                          "fp:e=4,m=3,bias=11,fnuz,nosub,ovf=sat", "fp:e=3,m=2,nospecials",
                          "fp:e=6,m=9"};
    for (size_t i = 0; i < sizeof spell / sizeof spell[0]; i++) {
        fpl_format_t f = fmt(spell[i]), g = fmt(f.name);
        assert_string_equal(f.name, want[i]);
        assert_int_equal(g.overflow, f.overflow);
        assert_int_equal(g.specials, f.specials);
        assert_int_equal(g.subnormals, f.subnormals);
        assert_int_equal(g.bias, f.bias);
    }
    /* changing the overflow of a generic format renames it; presets keep their name */
    fpl_format_t f = fmt("fp:e=5,m=2");
    assert_int_equal(fpl_format_set_overflow(&f, FPL_OVERFLOW_SATURATE), 0);
    assert_string_equal(f.name, "fp:e=5,m=2,ovf=sat");
    f = fmt("e5m2");
    assert_int_equal(fpl_format_set_overflow(&f, FPL_OVERFLOW_SATURATE), 0);
    assert_string_equal(f.name, "e5m2");
}

/* Default overflow policies follow ml_dtypes. */
static void test_format_default_overflow(void **state)
{
    (void)state;
    assert_int_equal(fmt("e4m3").overflow, FPL_OVERFLOW_NAN);
    assert_int_equal(fmt("e4m3fnuz").overflow, FPL_OVERFLOW_NAN);
    assert_int_equal(fmt("e5m2fnuz").overflow, FPL_OVERFLOW_NAN);
    assert_int_equal(fmt("e5m2").overflow, FPL_OVERFLOW_INF);
    assert_int_equal(fmt("fp16").overflow, FPL_OVERFLOW_INF);
    assert_int_equal(fmt("bf16").overflow, FPL_OVERFLOW_INF);
    assert_int_equal(fmt("e2m1").overflow, FPL_OVERFLOW_SATURATE);
    assert_int_equal(fmt("e3m2").overflow, FPL_OVERFLOW_SATURATE);
    assert_int_equal(fmt("int4").overflow, FPL_OVERFLOW_SATURATE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_standard_facts),
        cmocka_unit_test(test_format_e2m1_values),
        cmocka_unit_test(test_format_special_codes),
        cmocka_unit_test(test_format_roundtrip_exhaustive),
        cmocka_unit_test(test_format_roundtrip_generic),
        cmocka_unit_test(test_format_encode_rejects),
        cmocka_unit_test(test_format_parse_aliases),
        cmocka_unit_test(test_format_parse_generic),
        cmocka_unit_test(test_format_parse_errors),
        cmocka_unit_test(test_format_default_overflow),
        cmocka_unit_test(test_format_canonical_name_round_trip),
    };
    return cmocka_run_group_tests_name("format", tests, NULL, NULL);
}
