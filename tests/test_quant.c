/* test_quant.c -- GGUF block formats: hand-computed blocks, packed layout,
 * sizes, round trips */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

static fpl_quant_t scheme(const char *name)
{
    fpl_quant_t q;
    if (fpl_quant_parse(name, &q))
        fail_msg("%s: %s", name, fpl_last_error());
    return q;
}

/* q8_0 with amax = 127: d = 1 exactly, q = roundf(x) (half away from zero). */
static void test_quant_q8_0_block(void **state)
{
    (void)state;
    fpl_quant_t q = scheme("q8_0");
    double x[32] = {127, 2.5, -2.5, 0.49, -0.51, 3.5, 100.4, -127};
    double want[32] = {127, 3, -3, 0, -1, 4, 100, -127};
    uint8_t buf[34];
    assert_int_equal(fpl_quant_pack(&q, x, 32, buf), 0);
    assert_int_equal(buf[0], 0x00); /* binary16 1.0 = 0x3c00, little-endian */
    assert_int_equal(buf[1], 0x3c);
    assert_int_equal((int8_t)buf[2], 127);
    assert_int_equal((int8_t)buf[4], -3);
    double y[32];
    assert_int_equal(fpl_quant_unpack(&q, buf, 32, y), 0);
    assert_memory_equal(y, want, sizeof y);
    /* a scale that binary16 cannot hold: amax = 1, d = 1/127 in binary32,
     * stored as binary16 0x2008 (2^-7 * (1 + 8/1024) = 0.0078735..., the
     * nearest binary16 to 0.0078740157) */
    double z[32] = {1.0, 0.5};
    assert_int_equal(fpl_quant_pack(&q, z, 32, buf), 0);
    assert_int_equal(buf[0] | (buf[1] << 8), 0x2008);
    assert_int_equal((int8_t)buf[2], 127);
    assert_int_equal((int8_t)buf[3], 64); /* roundf(63.5) */
    assert_int_equal(fpl_quant_unpack(&q, buf, 32, y), 0);
    assert_true(y[0] == (double)(127.0f * 0x1.02p-7f));
}

/* q4_0: the value of largest magnitude is -8, so d = 1; q = min(15,
 * trunc(x + 8.5)): the positive side clips at 7. */
static void test_quant_q4_0_block(void **state)
{
    (void)state;
    fpl_quant_t q = scheme("q4_0");
    double x[32] = {-8, 3, 2.4, 2.6, 7.9, -0.5, 0.49};
    x[16] = 1;
    x[17] = -7.6;
    double want[32] = {-8, 3, 2, 3, 7, 0, 0};
    for (int j = 7; j < 32; j++)
        want[j] = 0; /* zeros: trunc(8.5) = 8 -> 0 */
    want[16] = 1;  /* trunc(1 + 8.5) = 9 -> 9 - 8 */
    want[17] = -8; /* trunc(-7.6 + 8.5) = trunc(0.9) = 0 -> -8 */
    uint8_t buf[18];
    assert_int_equal(fpl_quant_pack(&q, x, 32, buf), 0);
    assert_int_equal(buf[0] | (buf[1] << 8), 0x3c00); /* d = -8 / -8 = 1 */
    /* byte 0 holds element 0 (low nibble, 0) and element 16 (high, 9) */
    assert_int_equal(buf[2], 0x90);
    double y[32];
    assert_int_equal(fpl_quant_unpack(&q, buf, 32, y), 0);
    for (int j = 0; j < 32; j++)
        if (y[j] != want[j])
            fail_msg("q4_0 element %d: %g, want %g", j, y[j], want[j]);
    /* a positive extreme gives a negative scale: d = 8 / -8 = -1 */
    double p[32] = {8, 3};
    assert_int_equal(fpl_quant_pack(&q, p, 32, buf), 0);
    assert_int_equal(buf[0] | (buf[1] << 8), 0xbc00);
    assert_int_equal(fpl_quant_unpack(&q, buf, 32, y), 0);
    assert_true(y[0] == 8 && y[1] == 3);
}

/* q4_1: min = -1, max = 14, so d = 1 and m = -1; q = min(15, trunc((x - m)
 * + 0.5)): halves round up. */
static void test_quant_q4_1_block(void **state)
{
    (void)state;
    fpl_quant_t q = scheme("q4_1");
    double x[32];
    for (int j = 0; j < 32; j++)
        x[j] = 0;
    x[0] = -1;
    x[1] = 14;
    x[2] = 3.4;
    x[3] = 3.5;
    x[4] = 2.49;
    uint8_t buf[20];
    assert_int_equal(fpl_quant_pack(&q, x, 32, buf), 0);
    assert_int_equal(buf[0] | (buf[1] << 8), 0x3c00); /* d = 1 */
    assert_int_equal(buf[2] | (buf[3] << 8), 0xbc00); /* m = -1 */
    double y[32];
    assert_int_equal(fpl_quant_unpack(&q, buf, 32, y), 0);
    double want[5] = {-1, 14, 3, 4, 2};
    for (int j = 0; j < 5; j++)
        assert_true(y[j] == want[j]);
    for (int j = 5; j < 32; j++)
        assert_true(y[j] == 0);
    /* a constant block: d = 0, everything is the stored minimum */
    for (int j = 0; j < 32; j++)
        x[j] = 0.3;
    assert_int_equal(fpl_quant_apply(&q, x, 32, y), 0);
    for (int j = 0; j < 32; j++)
        assert_true(y[j] == 0x1.334p-2); /* binary16(0.3): 1 + 205/1024 */
}

static void test_quant_sizes_and_errors(void **state)
{
    (void)state;
    const char *names[] = {"q8_0", "q4_0", "q4_1"};
    const double bpw[] = {8.5, 4.5, 5.0};
    for (int i = 0; i < 3; i++) {
        fpl_quant_t q = scheme(names[i]);
        assert_true(fpl_quant_bits_per_weight(&q) == bpw[i]);
        /* the packed size is what the bits per weight say */
        assert_int_equal(fpl_quant_packed_size(&q, 4096), (size_t)(4096 * bpw[i] / 8));
        double x[33] = {0};
        uint8_t buf[64];
        assert_int_equal(fpl_quant_pack(&q, x, 33, buf), FPL_EINVAL);
        assert_non_null(strstr(fpl_last_error(), "blocks of 32"));
        x[5] = NAN;
        assert_int_equal(fpl_quant_pack(&q, x, 32, buf), FPL_EINVAL);
        x[5] = 1e39; /* beyond binary32 */
        assert_int_equal(fpl_quant_pack(&q, x, 32, buf), FPL_EINVAL);
    }
    fpl_quant_t q;
    assert_int_equal(fpl_quant_parse("q5_0", &q), FPL_EINVAL);
}

/* Random data: the round trip through bytes equals quantize-dequantize,
 * errors stay within half a step (q8_0, q4_1) or one step (q4_0), and
 * exactly representable blocks survive unchanged. */
static void test_quant_random_properties(void **state)
{
    (void)state;
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(31));
    enum { N = 32 * 256 };
    static double x[N], y[N];
    for (int i = 0; i < N; i++)
        x[i] = (double)(float)((double)(int64_t)fpt_rng_u64(&rng) * 0x1p-63 * 3);
    const char *names[] = {"q8_0", "q4_0", "q4_1"};
    for (int s = 0; s < 3; s++) {
        fpl_quant_t q = scheme(names[s]);
        assert_int_equal(fpl_quant_apply(&q, x, N, y), 0);
        for (int b = 0; b < N / 32; b++) {
            double amax = 0, mn = INFINITY, mx = -INFINITY;
            for (int j = 0; j < 32; j++) {
                amax = fmax(amax, fabs(x[b * 32 + j]));
                mn = fmin(mn, x[b * 32 + j]);
                mx = fmax(mx, x[b * 32 + j]);
            }
            /* half a step (one on q4_0's clipped positive side), plus the
             * binary16 rounding of the stored scale (2^-11 relative) times
             * the largest |q|, plus that of q4_1's stored minimum */
            double step = s == 0 ? amax / 127 : s == 1 ? amax / 8 : (mx - mn) / 15;
            double qmax = s == 0 ? 127 : s == 1 ? 8 : 15;
            double tol = (s == 1 ? 1.0 : 0.5) * step + qmax * step * 0x1p-11 * 1.01 +
                         (s == 2 ? fabs(mn) * 0x1p-11 : 0) + 1e-6 * step;
            for (int j = 0; j < 32; j++)
                if (fabs(y[b * 32 + j] - x[b * 32 + j]) > tol)
                    fail_msg("%s block %d: |%g - %g| > %g", names[s], b, y[b * 32 + j],
                             x[b * 32 + j], tol);
        }
    }
    /* integers up to 127 in a block with amax 127 are q8_0 values */
    fpl_quant_t q8 = scheme("q8_0");
    for (int j = 0; j < 32; j++)
        x[j] = (double)(j * 4 - 1) * (j % 2 ? 1 : -1);
    x[0] = 127;
    assert_int_equal(fpl_quant_apply(&q8, x, 32, y), 0);
    assert_memory_equal(x, y, 32 * sizeof *x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quant_q8_0_block),
        cmocka_unit_test(test_quant_q4_0_block),
        cmocka_unit_test(test_quant_q4_1_block),
        cmocka_unit_test(test_quant_sizes_and_errors),
        cmocka_unit_test(test_quant_random_properties),
    };
    return cmocka_run_group_tests_name("quant", tests, NULL, NULL);
}
