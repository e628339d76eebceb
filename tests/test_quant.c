/* test_quant.c -- quantizers: hand-computed blocks, packed layout, sizes,
 * round trips, and the optimised paths against the plain scalar reference */
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
    assert_int_equal(fpl_quant_pack(&q, x, 1, 32, buf), 0);
    assert_int_equal(buf[0], 0x00); /* binary16 1.0 = 0x3c00, little-endian */
    assert_int_equal(buf[1], 0x3c);
    assert_int_equal((int8_t)buf[2], 127);
    assert_int_equal((int8_t)buf[4], -3);
    double y[32];
    assert_int_equal(fpl_quant_unpack(&q, buf, 1, 32, y), 0);
    assert_memory_equal(y, want, sizeof y);
    /* a scale that binary16 cannot hold: amax = 1, d = 1/127 in binary32,
     * stored as binary16 0x2008 (2^-7 * (1 + 8/1024) = 0.0078735..., the
     * nearest binary16 to 0.0078740157) */
    double z[32] = {1.0, 0.5};
    assert_int_equal(fpl_quant_pack(&q, z, 1, 32, buf), 0);
    assert_int_equal(buf[0] | (buf[1] << 8), 0x2008);
    assert_int_equal((int8_t)buf[2], 127);
    assert_int_equal((int8_t)buf[3], 64); /* roundf(63.5) */
    assert_int_equal(fpl_quant_unpack(&q, buf, 1, 32, y), 0);
    assert_true(y[0] == (double)(127.0f * 0x1.02p-7f));
    /* a scale beyond binary16 (amax / 127 > 65504) is stored as inf, as
     * ggml's conversion does; the block then decodes to inf and NaN (0 inf) */
    double big[32] = {-1e7, 1.0};
    assert_int_equal(fpl_quant_pack(&q, big, 1, 32, buf), 0);
    assert_int_equal(buf[0] | (buf[1] << 8), 0x7c00);
    assert_int_equal(fpl_quant_unpack(&q, buf, 1, 32, y), 0);
    assert_true(isinf(y[0]) && y[0] < 0 && isnan(y[2]));
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
    assert_int_equal(fpl_quant_pack(&q, x, 1, 32, buf), 0);
    assert_int_equal(buf[0] | (buf[1] << 8), 0x3c00); /* d = -8 / -8 = 1 */
    /* byte 0 holds element 0 (low nibble, 0) and element 16 (high, 9) */
    assert_int_equal(buf[2], 0x90);
    double y[32];
    assert_int_equal(fpl_quant_unpack(&q, buf, 1, 32, y), 0);
    for (int j = 0; j < 32; j++)
        if (y[j] != want[j])
            fail_msg("q4_0 element %d: %g, want %g", j, y[j], want[j]);
    /* a positive extreme gives a negative scale: d = 8 / -8 = -1 */
    double p[32] = {8, 3};
    assert_int_equal(fpl_quant_pack(&q, p, 1, 32, buf), 0);
    assert_int_equal(buf[0] | (buf[1] << 8), 0xbc00);
    assert_int_equal(fpl_quant_unpack(&q, buf, 1, 32, y), 0);
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
    assert_int_equal(fpl_quant_pack(&q, x, 1, 32, buf), 0);
    assert_int_equal(buf[0] | (buf[1] << 8), 0x3c00); /* d = 1 */
    assert_int_equal(buf[2] | (buf[3] << 8), 0xbc00); /* m = -1 */
    double y[32];
    assert_int_equal(fpl_quant_unpack(&q, buf, 1, 32, y), 0);
    double want[5] = {-1, 14, 3, 4, 2};
    for (int j = 0; j < 5; j++)
        assert_true(y[j] == want[j]);
    for (int j = 5; j < 32; j++)
        assert_true(y[j] == 0);
    /* a constant block: d = 0, everything is the stored minimum */
    for (int j = 0; j < 32; j++)
        x[j] = 0.3;
    assert_int_equal(fpl_quant_apply(&q, x, 1, 32, y), 0);
    for (int j = 0; j < 32; j++)
        assert_true(y[j] == 0x1.334p-2); /* binary16(0.3): 1 + 205/1024 */
}

/* q4_K, from its definition: per sub-block of 32 a weighted fit x ~ s q - m
 * (q in 0..15) over grids of nmax + rmin + rdelta*k steps (rmin = -1, rdelta
 * = 0.1, k = 0..20) and the plain 15-step grid, least squares on each; then
 * 6-bit codes of s_j and m_j against d = fp16(max s / 63), dmin = fp16(max m
 * / 63), and the codes recomputed as nearest((x + dmin m_j) / (d s_j)).
 * Layout: d, dmin, 12 bytes of scales/mins, 128 bytes of nibbles (byte 32c+l
 * holds sub-block 2c in the low nibble, 2c+1 in the high one). */
static void test_quant_q4_K_block(void **state)
{
    (void)state;
    fpl_quant_t q = scheme("q4_K");
    enum { N = 3 * 256 };
    static double x[N], y[N];
    static uint8_t buf[3 * 144];
    int k[N];
    /* super-block 0: sub-block j holds k - 9j with k covering 0..15, so the
     * plain grid fits exactly (s_j = 1, m_j = 9j, zero error, no search can
     * beat it); max m = 63 so dmin = 1 and the min codes are 9j */
    for (int j = 0; j < 8; j++)
        for (int l = 0; l < 32; l++) {
            k[32 * j + l] = (7 * l + j) % 16;
            x[32 * j + l] = k[32 * j + l] - 9 * j;
        }
    /* super-block 1: every sub-block holds 0..14.  The plain grid (range/15)
     * fits badly; the first searched grid, (15 - 1) steps over the range 14,
     * is the integers, whose least-squares fit is s = 1, m = 0 with zero
     * error.  So the codes are the values (14 stays 14, not 15). */
    for (int i = 256; i < 512; i++) {
        k[i] = (i - 256) % 15;
        x[i] = k[i];
    }
    /* super-block 2: zeros */
    for (int i = 512; i < N; i++)
        k[i] = 0, x[i] = 0;
    assert_int_equal(fpl_quant_pack(&q, x, 3, 256, buf), 0);
    /* d = fp16(1/63): 1/63 = 2^-6 * 1.01587, 1.01587 * 1024 = 1040.25 -> 1040,
     * code (9 << 10) | 16 = 0x2410 */
    const uint8_t head0[16] = {0x10, 0x24, 0x00, 0x3c, /* d, dmin = 1.0 */
                               /* bytes 0-3: s codes 63 of sub-blocks 0-3, top bits of
                                * the s codes of 4-7 (63 >> 4 = 3) in bits 6-7 */
                               0xff, 0xff, 0xff, 0xff,
                               /* bytes 4-7: m codes 0, 9, 18, 27 of sub-blocks 0-3, top
                                * bits of m codes 36, 45, 54, 63 (2, 2, 3, 3) */
                               0x80, 0x89, 0xd2, 0xdb,
                               /* bytes 8-11: low nibbles: s 15 | m (4, 13, 6, 15) << 4 */
                               0x4f, 0xdf, 0x6f, 0xff};
    const uint8_t head1[16] = {0x10, 0x24, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
                               0x00, 0x00, 0x00, 0x00, 0x0f, 0x0f, 0x0f, 0x0f};
    assert_memory_equal(buf, head0, 16);
    assert_memory_equal(buf + 144, head1, 16);
    for (int sb = 0; sb < 3; sb++)
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                int i = 256 * sb + 64 * c + l;
                uint8_t want = (uint8_t)(k[i] | (k[i + 32] << 4));
                if (buf[144 * sb + 16 + 32 * c + l] != want)
                    fail_msg("q4_K super-block %d byte %d: %#x, want %#x", sb, 16 + 32 * c + l,
                             buf[144 * sb + 16 + 32 * c + l], want);
            }
    for (int i = 0; i < 16; i++)
        assert_int_equal(buf[288 + i], 0); /* zeros: d = dmin = 0, all codes 0 */
    /* dequantized: (d * s code) q - dmin * m code, each product rounded to
     * binary32; d * 63 = 65520 / 65536 exactly, and every result here is exact */
    assert_int_equal(fpl_quant_unpack(&q, buf, 3, 256, y), 0);
    for (int i = 0; i < N; i++) {
        double want = i < 512 ? 65520.0 / 65536 * k[i] - (i < 256 ? 9 * (i / 32) : 0) : 0;
        if (y[i] != want)
            fail_msg("q4_K value %d: %a, want %a", i, y[i], want);
    }
    /* rows must be whole super-blocks */
    assert_int_equal(fpl_quant_pack(&q, x, 2, 128, buf), FPL_EINVAL);
    assert_non_null(strstr(fpl_last_error(), "blocks of 256"));
}

static void test_quant_sizes_and_errors(void **state)
{
    (void)state;
    /* bits per value with scales, from the definitions: GGUF 8.5/4.5/5.0; MX
     * 8 bits per 32 elements; NVFP4 8 bits per 16 plus a 32-bit tensor scale;
     * integers b + (scale bits [+ b for a zero point]) / group */
    struct {
        const char *name;
        size_t rows, cols;
        double bpw;
    } cases[] = {{"q8_0", 4, 1024, 8.5},          {"q4_0", 4, 1024, 4.5},
                 {"q4_1", 4, 1024, 5.0},          {"q4_K", 4, 1024, 4.5},
                 {"mxfp8_e4m3", 4, 1024, 8.25},
                 {"mxfp8_e5m2", 4, 1024, 8.25},   {"mxfp6_e3m2", 4, 1024, 6.25},
                 {"mxfp6_e2m3", 4, 1024, 6.25},   {"mxfp4", 4, 1024, 4.25},
                 {"mxint8", 4, 1024, 8.25},       {"nvfp4", 4, 1024, 4.5 + 32.0 / 4096},
                 {"int4:g128", 4, 1024, 4.25},    {"int4:g32:asym", 4, 1024, 4 + 36.0 / 32},
                 {"int8:channel", 4, 1024, 8 + 32.0 / 1024},
                 {"int8", 4, 1024, 8 + 32.0 / 4096},
                 {"int4:g64:scale=fp16", 4, 1024, 4.25},
                 {"int4:g32:scale=e8m0", 4, 1024, 4.25}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fpl_quant_t q = scheme(cases[i].name);
        double bpw = fpl_quant_bits_per_weight(&q, cases[i].rows, cases[i].cols);
        if (fabs(bpw - cases[i].bpw) > 1e-12)
            fail_msg("%s: %g bits per value, want %g", cases[i].name, bpw, cases[i].bpw);
        /* the packed bytes are what the bits per value say */
        size_t bytes = fpl_quant_packed_size(&q, cases[i].rows, cases[i].cols);
        assert_int_equal(bytes, (size_t)ceil(cases[i].bpw * cases[i].rows * cases[i].cols / 8));
    }
    fpl_quant_t q = scheme("q4_0");
    double x[64] = {0};
    uint8_t buf[128];
    assert_int_equal(fpl_quant_pack(&q, x, 1, 33, buf), FPL_EINVAL);
    assert_non_null(strstr(fpl_last_error(), "blocks of 32"));
    x[5] = NAN;
    assert_int_equal(fpl_quant_pack(&q, x, 1, 32, buf), FPL_EINVAL);
    x[5] = 1e39; /* beyond binary32 */
    assert_int_equal(fpl_quant_pack(&q, x, 1, 32, buf), FPL_EINVAL);
    q = scheme("mxfp4");
    x[5] = INFINITY; /* NaN and inf in a block are refused, not encoded */
    assert_int_equal(fpl_quant_pack(&q, x, 1, 32, buf), FPL_EINVAL);
    q = scheme("int4:g48");
    assert_int_equal(fpl_quant_check(&q, 2, 64), FPL_EINVAL);
    assert_non_null(strstr(fpl_last_error(), "groups of 48"));
    const char *bad[] = {"q5_0", "int9", "int4:g0", "mxfp4:asym", "q8_0:up", "int4:scale=int8",
                         "int4:zzz", "fp8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (fpl_quant_parse(bad[i], &q) != FPL_EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
}

/* OCP MX: X = 2^(floor(log2 amax) - emax_elem); elements saturate. */
static void test_quant_mx_edges(void **state)
{
    (void)state;
    fpl_quant_t q = scheme("mxfp4"), up = scheme("mxfp4:up");
    double x[32] = {0}, y[32];
    /* amax a power of two (4 = 2^2 = 2^emax of E2M1): X = 1, exact */
    x[0] = 4;
    x[1] = -1.5;
    x[2] = 0.25; /* halfway between 0 and 0.5: ties to even 0 */
    assert_int_equal(fpl_quant_apply(&q, x, 1, 32, y), 0);
    assert_true(y[0] == 4 && y[1] == -1.5 && y[2] == 0);
    /* amax exactly the element maximum times a power of two: kept */
    x[0] = 6 * 1024;
    x[1] = 3 * 1024;
    assert_int_equal(fpl_quant_apply(&q, x, 1, 32, y), 0);
    assert_true(y[0] == 6 * 1024 && y[1] == 3 * 1024);
    /* 7.9 * 2^k: floor(log2) gives X = 2^k and clips the maximum to 6 * 2^k;
     * the round-up scale X = 2^(k+1) keeps it (7.9 / 2 = 3.95 -> 4) */
    x[0] = 7.9 * 8;
    x[1] = 0;
    assert_int_equal(fpl_quant_apply(&q, x, 1, 32, y), 0);
    assert_true(y[0] == 6 * 8);
    assert_int_equal(fpl_quant_apply(&up, x, 1, 32, y), 0);
    assert_true(y[0] == 8 * 8);
    /* the stored scale byte is E8M0: 127 + exponent */
    uint8_t buf[17];
    assert_int_equal(fpl_quant_pack(&q, x, 1, 32, buf), 0);
    assert_int_equal(buf[0], 127 + 3);
    /* an all-zero block gives zeros, scale 2^0 */
    double z[32] = {0};
    assert_int_equal(fpl_quant_pack(&q, z, 1, 32, buf), 0);
    assert_int_equal(buf[0], 127);
    assert_int_equal(fpl_quant_unpack(&q, buf, 1, 32, y), 0);
    for (int i = 0; i < 32; i++)
        assert_true(y[i] == 0);
    /* E3M2 and E5M2 share 2 mantissa bits but not their range: in [28, 0.03]
     * E3M2 (emax 4, X = 1) has 0.03 below half its smallest subnormal 1/16,
     * E5M2 (emax 15, X = 2^-11) keeps it as 64 * 2^-11; E2M3 (emax 2, X = 1)
     * rounds 0.1 to its subnormal 1/8 */
    fpl_quant_t e3 = scheme("mxfp6_e3m2"), e5 = scheme("mxfp8_e5m2"), e2 = scheme("mxfp6_e2m3");
    double s6[32] = {28, 0.03}, s2[32] = {7.5, 0.1};
    assert_int_equal(fpl_quant_apply(&e3, s6, 1, 32, y), 0);
    assert_true(y[0] == 28 && y[1] == 0);
    assert_int_equal(fpl_quant_apply(&e5, s6, 1, 32, y), 0);
    assert_true(y[0] == 28 && y[1] == 0x1p-5);
    assert_int_equal(fpl_quant_apply(&e2, s2, 1, 32, y), 0);
    assert_true(y[0] == 7.5 && y[1] == 0.125);
    /* MXFP8 E4M3: emax 8, max 448; MXINT8: elements k/64 */
    fpl_quant_t f8 = scheme("mxfp8_e4m3"), i8 = scheme("mxint8");
    double a[32] = {448, 1, 300};
    assert_int_equal(fpl_quant_apply(&f8, a, 1, 32, y), 0);
    assert_true(y[0] == 448 && y[1] == 1 && y[2] == 288); /* 300 -> 288 in E4M3 */
    double b[32] = {1.5, 0.7, -1.99};
    assert_int_equal(fpl_quant_apply(&i8, b, 1, 32, y), 0);
    /* X = 2^(0 - 0) = 1: 1.5 = 96/64, 0.7 -> 45/64, -1.99 -> -127/64 */
    assert_true(y[0] == 1.5 && y[1] == 45.0 / 64 && y[2] == -127.0 / 64);
}

/* NVFP4: global scale amax / (6 * 448), E4M3 block scales, E2M1 elements. */
static void test_quant_nvfp4_block(void **state)
{
    (void)state;
    fpl_quant_t q = scheme("nvfp4");
    double x[32] = {0}, y[32];
    x[0] = 2688; /* amax = 6 * 448: global scale exactly 1 */
    x[1] = 100;  /* block scale 448: 100 / 448 = 0.223 -> 0 */
    x[16] = 12;  /* second block: scale 12 / 6 = 2 */
    x[17] = 5;   /* 2.5: tie between 2 and 3 -> 2 (even) -> 4 */
    x[18] = 7;   /* 3.5: tie between 3 and 4 -> 4 (even) -> 8 */
    x[19] = -1.1; /* -0.55 -> -0.5 -> -1 */
    assert_int_equal(fpl_quant_apply(&q, x, 1, 32, y), 0);
    assert_true(y[0] == 2688 && y[1] == 0);
    assert_true(y[16] == 12 && y[17] == 4 && y[18] == 8 && y[19] == -1);
    uint8_t buf[40];
    assert_int_equal(fpl_quant_pack(&q, x, 1, 32, buf), 0);
    assert_true(buf[0] == 0 && buf[1] == 0 && buf[2] == 0x80 && buf[3] == 0x3f); /* 1.0f */
    assert_int_equal(buf[4], 0x7e); /* E4M3 448 */
}

/* Integer schemes: group = row length is per-channel; an asymmetric
 * constant group is exact; SQNR on uniform data follows the theory. */
static void test_quant_int_schemes(void **state)
{
    (void)state;
    enum { R = 8, C = 128 };
    static double x[R * C], y1[R * C], y2[R * C];
    fpt_rng_t rng;
    fpt_rng_init(&rng, 17);
    for (int i = 0; i < R * C; i++)
        x[i] = (double)(int64_t)fpt_rng_u64(&rng) * 0x1p-63 * (1 + i / C);
    fpl_quant_t g = scheme("int4:g128"), ch = scheme("int4:channel");
    assert_int_equal(fpl_quant_apply(&g, x, R, C, y1), 0);
    assert_int_equal(fpl_quant_apply(&ch, x, R, C, y2), 0);
    assert_memory_equal(y1, y2, sizeof y1);
    /* per channel beats per tensor when rows differ in scale */
    fpl_quant_t t = scheme("int4");
    assert_int_equal(fpl_quant_apply(&t, x, R, C, y2), 0);
    double e1 = 0, e2 = 0;
    for (int i = 0; i < R * C; i++) {
        e1 += (y1[i] - x[i]) * (y1[i] - x[i]);
        e2 += (y2[i] - x[i]) * (y2[i] - x[i]);
    }
    assert_true(e1 < e2);
    /* asymmetric, constant group: stored exactly */
    fpl_quant_t a = scheme("int4:g32:asym");
    double c[64];
    for (int i = 0; i < 32; i++) {
        c[i] = -0.375;
        c[32 + i] = 2.5;
    }
    assert_int_equal(fpl_quant_apply(&a, c, 1, 64, y1), 0);
    assert_memory_equal(y1, c, sizeof c);
    /* uniform data on [-1, 1]: a mid-tread quantizer with step 1/qmax has
     * SQNR 20 log10(2 qmax): 6.02 b dB within 0.5 dB for b = 8 and 6 */
    enum { N = 1 << 16 };
    static double u[N], v[N];
    for (int i = 0; i < N; i++)
        u[i] = (double)(int64_t)fpt_rng_u64(&rng) * 0x1p-63;
    u[0] = 1; /* the range reaches +-1 */
    int bits[] = {8, 6, 4};
    for (int k = 0; k < 3; k++) {
        char name[16];
        snprintf(name, sizeof name, "int%d", bits[k]);
        fpl_quant_t q = scheme(name);
        assert_int_equal(fpl_quant_apply(&q, u, 1, N, v), 0);
        double s = 0, e = 0;
        for (int i = 0; i < N; i++) {
            s += u[i] * u[i];
            e += (v[i] - u[i]) * (v[i] - u[i]);
        }
        double sqnr = 10 * log10(s / e), qmax = (1 << (bits[k] - 1)) - 1;
        assert_true(fabs(sqnr - 20 * log10(2 * qmax)) < 0.2);
        if (bits[k] >= 6)
            assert_true(fabs(sqnr - 6.02 * bits[k]) < 0.5);
    }
    /* calibration: MSE and percentile clip the outlier; never worse for MSE */
    for (int i = 0; i < C; i++)
        c[i % 64] = 0;
    static double w[C], yw[C];
    for (int i = 0; i < C; i++)
        w[i] = (double)(int64_t)fpt_rng_u64(&rng) * 0x1p-63;
    w[7] = 40; /* an outlier */
    fpl_quant_t m = scheme("int4:channel"), p = scheme("int4:channel");
    assert_int_equal(fpl_quant_set_calib(&m, FPL_CALIB_MSE, 0), 0);
    assert_int_equal(fpl_quant_set_calib(&p, FPL_CALIB_PERCENTILE, 99), 0);
    double ea = 0, em = 0;
    assert_int_equal(fpl_quant_apply(&ch, w, 1, C, yw), 0);
    for (int i = 0; i < C; i++)
        ea += (yw[i] - w[i]) * (yw[i] - w[i]);
    assert_int_equal(fpl_quant_apply(&m, w, 1, C, yw), 0);
    for (int i = 0; i < C; i++)
        em += (yw[i] - w[i]) * (yw[i] - w[i]);
    assert_true(em <= ea);
    assert_int_equal(fpl_quant_apply(&p, w, 1, C, yw), 0);
    assert_true(yw[7] < 40); /* clipped */
    assert_int_equal(fpl_quant_set_calib(&p, FPL_CALIB_PERCENTILE, 20), FPL_EINVAL);
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
        assert_int_equal(fpl_quant_apply(&q, x, N / 32, 32, y), 0);
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
    assert_int_equal(fpl_quant_apply(&q8, x, 1, 32, y), 0);
    assert_memory_equal(x, y, 32 * sizeof *x);
}

/* Packed storage for every scheme: packing writes exactly the bytes its size
 * says (a guard after them stays intact) and the same bytes every time;
 * unpacking them is quantize-dequantize; and where a scheme's scale is a
 * function of values it reproduces (max |x| or the E8M0 exponent), the
 * dequantized tensor is a fixed point: quantizing it again gives the same
 * bytes.  Not so where the stored maximum can move: a rounded-up E8M0 or
 * E4M3 scale, q4_1/q4_K's fitted minimum, the :up exponent, and MXINT8,
 * whose -128 code makes a negative maximum -2X and moves the exponent. */
static void test_quant_storage_round_trip(void **state)
{
    (void)state;
    const struct {
        const char *name;
        int fixed;
    } schemes[] = {{"int8", 1},       {"int4", 1},         {"int2", 1},       {"int8:channel", 1},
                   {"int4:g128", 1},  {"int4:g32:asym", 0}, {"int4:g64:scale=e8m0", 0},
                   {"q8_0", 1},       {"q4_0", 1},         {"q4_1", 0},       {"q4_K", 0},
                   {"mxfp8_e4m3", 1}, {"mxfp8_e5m2", 1},   {"mxfp6_e3m2", 1}, {"mxfp6_e2m3", 1},
                   {"mxfp4", 1},      {"mxfp4:up", 0},     {"mxint8", 0},     {"nvfp4", 0}};
    enum { R = 4, C = 512, N = R * C };
    static double x[N], y[N], z[N];
    static uint8_t a[N * 2], b[N * 2];
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(37));
    for (int i = 0; i < N; i++) /* a spread of magnitudes, binary32 values */
        x[i] = (double)(float)ldexp((double)(int64_t)fpt_rng_u64(&rng) * 0x1p-63,
                                    (int)(fpt_rng_u64(&rng) % 9) - 4);
    for (size_t s = 0; s < sizeof schemes / sizeof schemes[0]; s++) {
        fpl_quant_t q = scheme(schemes[s].name);
        size_t bytes = fpl_quant_packed_size(&q, R, C);
        assert_true(bytes + 16 <= sizeof a);
        memset(a, 0xa5, sizeof a);
        memset(b, 0x5a, sizeof b);
        assert_int_equal(fpl_quant_pack(&q, x, R, C, a), 0);
        assert_int_equal(fpl_quant_pack(&q, x, R, C, b), 0);
        if (memcmp(a, b, bytes))
            fail_msg("%s: two packings differ", schemes[s].name);
        for (size_t i = bytes; i < bytes + 16; i++)
            if (a[i] != 0xa5)
                fail_msg("%s: byte %zu written beyond the %zu packed bytes", schemes[s].name, i,
                         bytes);
        assert_int_equal(fpl_quant_unpack(&q, a, R, C, y), 0);
        assert_int_equal(fpl_quant_apply(&q, x, R, C, z), 0);
        if (memcmp(y, z, sizeof y))
            fail_msg("%s: unpack(pack(x)) differs from apply(x)", schemes[s].name);
        if (schemes[s].fixed) {
            assert_int_equal(fpl_quant_pack(&q, y, R, C, b), 0);
            if (memcmp(a, b, bytes))
                fail_msg("%s: dequantized values do not quantize to the same bytes",
                         schemes[s].name);
        }
    }
}

/* ---- the straightforward scalar quantizers, kept as the reference ----------
 *
 * The library's quantizers are optimised (SIMD q4_K search, fused integer and
 * NVFP4 loops); these are the plain per-element versions they replaced, built
 * on the public rounding and coding calls only.  The optimised paths must
 * give the same bytes and the same dequantized values on every input. */

typedef struct {
    uint8_t *p;
    uint64_t bit;
} ref_bits_t;

static void ref_put(ref_bits_t *w, uint64_t v, int nbits)
{
    for (int k = 0; k < nbits; k++, w->bit++)
        if ((v >> k) & 1)
            w->p[w->bit / 8] |= (uint8_t)(1u << (w->bit % 8));
}

static uint64_t ref_get(const uint8_t *p, uint64_t *bit, int nbits)
{
    uint64_t v = 0;
    for (int k = 0; k < nbits; k++, (*bit)++)
        v |= (uint64_t)((p[*bit / 8] >> (*bit % 8)) & 1) << k;
    return v;
}

static fpl_format_t ref_fp16(void)
{
    fpl_format_t h;
    fpl_format_parse("fp16", &h);
    return h;
}

/* binary32 -> binary16 code, RNE, beyond 65504 -> +-inf (F16C) */
static uint16_t ref_half(float v)
{
    fpl_format_t h = ref_fp16();
    double r = fpl_round(&h, (double)v, FPL_RNE, NULL);
    uint64_t c;
    if (isinf(r))
        return (uint16_t)((signbit(r) ? 0x8000 : 0) | 0x7c00);
    fpl_format_encode(&h, r, &c);
    return (uint16_t)c;
}

static float ref_unhalf(const uint8_t *p)
{
    fpl_format_t h = ref_fp16();
    return (float)fpl_format_decode(&h, (uint64_t)p[0] | ((uint64_t)p[1] << 8));
}

static void ref_put_half(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static void ref_gguf_block(fpl_quant_kind_t kind, const double *x, uint8_t *o)
{
    float v[32];
    for (int j = 0; j < 32; j++)
        v[j] = (float)x[j];
    if (kind == FPL_QUANT_Q8_0) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(v[j]));
        const float d = amax / 127, id = d != 0.0f ? 1.0f / d : 0.0f;
        ref_put_half(o, ref_half(d));
        for (int j = 0; j < 32; j++)
            o[2 + j] = (uint8_t)(int8_t)roundf(v[j] * id);
    } else if (kind == FPL_QUANT_Q4_0) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++)
            if (amax < fabsf(v[j])) {
                amax = fabsf(v[j]);
                max = v[j];
            }
        const float d = max / -8, id = d != 0.0f ? 1.0f / d : 0.0f;
        ref_put_half(o, ref_half(d));
        for (int j = 0; j < 16; j++) {
            int8_t a = (int8_t)(v[j] * id + 8.5f), c = (int8_t)(v[j + 16] * id + 8.5f);
            o[2 + j] = (uint8_t)((a < 15 ? a : 15) | ((c < 15 ? c : 15) << 4));
        }
    } else {
        float min = 3.40282347e+38f, max = -3.40282347e+38f;
        for (int j = 0; j < 32; j++) {
            min = v[j] < min ? v[j] : min;
            max = v[j] > max ? v[j] : max;
        }
        const float d = (max - min) / 15, id = d != 0.0f ? 1.0f / d : 0.0f;
        ref_put_half(o, ref_half(d));
        ref_put_half(o + 2, ref_half(min));
        for (int j = 0; j < 16; j++) {
            int8_t a = (int8_t)((v[j] - min) * id + 0.5f),
                   c = (int8_t)((v[j + 16] - min) * id + 0.5f);
            o[4 + j] = (uint8_t)((a < 15 ? a : 15) | ((c < 15 ? c : 15) << 4));
        }
    }
}

static void ref_gguf_unblock(fpl_quant_kind_t kind, const uint8_t *p, double *o)
{
    const float d = ref_unhalf(p);
    for (int j = 0; j < 32; j++) {
        if (kind == FPL_QUANT_Q8_0) {
            o[j] = (double)((float)(int8_t)p[2 + j] * d);
        } else {
            int c = (p[(kind == FPL_QUANT_Q4_0 ? 2 : 4) + j % 16] >> (j < 16 ? 0 : 4)) & 15;
            if (kind == FPL_QUANT_Q4_0)
                o[j] = (double)((float)(c - 8) * d);
            else
                o[j] = (double)((float)c * d + ref_unhalf(p + 2));
        }
    }
}

/* ggml's nearest_int */
static int ref_nearest(float v)
{
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static int ref_clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* ggml's make_qkx2_quants(32, 15, x, w, L, &min, Laux, -1, 0.1, 20, false) */
static float ref_q4k_fit(const float *x, const float *w, uint8_t *L, float *neg_min)
{
    float lo = x[0], hi = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < 32; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0)
        lo = 0;
    if (hi == lo) {
        memset(L, 0, 32);
        *neg_min = -lo;
        return 0.0f;
    }
    float iscale = 15 / (hi - lo), scale = 1 / iscale, best = 0;
    for (int i = 0; i < 32; i++) {
        L[i] = (uint8_t)ref_clamp(ref_nearest(iscale * (x[i] - lo)), 0, 15);
        float e = scale * L[i] + lo - x[i];
        best += w[i] * (e * e);
    }
    uint8_t trial[32];
    for (int is = 0; is <= 20; is++) {
        iscale = (-1.0f + 0.1f * (float)is + 15) / (hi - lo);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < 32; i++) {
            int l = ref_clamp(ref_nearest(iscale * (x[i] - lo)), 0, 15);
            trial[i] = (uint8_t)l;
            sl += w[i] * (float)l;
            sl2 += w[i] * (float)l * (float)l;
            sxl += w[i] * (float)l * x[i];
        }
        float D = sum_w * sl2 - sl * sl;
        if (!(D > 0))
            continue;
        float s = (sum_w * sxl - sum_x * sl) / D, m = (sl2 * sum_x - sl * sxl) / D;
        if (m > 0) {
            m = 0;
            s = sxl / sl2;
        }
        float err = 0;
        for (int i = 0; i < 32; i++) {
            float e = s * trial[i] + m - x[i];
            err += w[i] * (e * e);
        }
        if (err < best) {
            memcpy(L, trial, 32);
            best = err;
            scale = s;
            lo = m;
        }
    }
    *neg_min = -lo;
    return scale;
}

static void ref_q4k_sm(const uint8_t *sm, int j, int *sc, int *mn)
{
    if (j < 4) {
        *sc = sm[j] & 63;
        *mn = sm[j + 4] & 63;
    } else {
        *sc = (sm[j + 4] & 0x0f) | ((sm[j - 4] >> 6) << 4);
        *mn = (sm[j + 4] >> 4) | ((sm[j] >> 6) << 4);
    }
}

static void ref_q4k_block(const double *xd, uint8_t *o)
{
    float x[256], w[32], scales[8], mins[8], max_scale = 0, max_min = 0;
    uint8_t L[256];
    for (int i = 0; i < 256; i++)
        x[i] = (float)xd[i];
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            w[l] = av + fabsf(x[32 * j + l]);
        scales[j] = ref_q4k_fit(x + 32 * j, w, L + 32 * j, &mins[j]);
        max_scale = scales[j] > max_scale ? scales[j] : max_scale;
        max_min = mins[j] > max_min ? mins[j] : max_min;
    }
    float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    uint8_t *sm = o + 4;
    memset(sm, 0, 12);
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)ref_nearest(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)ref_nearest(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            sm[j] = ls;
            sm[j + 4] = lm;
        } else {
            sm[j + 4] = (uint8_t)((ls & 0x0f) | ((lm & 0x0f) << 4));
            sm[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sm[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    ref_put_half(o, ref_half(max_scale / 63.0f));
    ref_put_half(o + 2, ref_half(max_min / 63.0f));
    const float d = ref_unhalf(o), dmin = ref_unhalf(o + 2);
    for (int j = 0; j < 8; j++) {
        int sc, mn;
        ref_q4k_sm(sm, j, &sc, &mn);
        const float dj = d * (float)sc;
        if (dj == 0)
            continue;
        const float mj = dmin * (float)mn;
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)ref_clamp(ref_nearest((x[32 * j + l] + mj) / dj), 0, 15);
    }
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            o[16 + 32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
}

static void ref_q4k_unblock(const uint8_t *p, double *y)
{
    const float d = ref_unhalf(p), dmin = ref_unhalf(p + 2);
    for (int j = 0; j < 8; j++) {
        int sc, mn;
        ref_q4k_sm(p + 4, j, &sc, &mn);
        const float dj = d * (float)sc, mj = dmin * (float)mn;
        for (int l = 0; l < 32; l++) {
            float t = dj * (float)((p[16 + 32 * (j / 2) + l] >> ((j & 1) * 4)) & 0x0f);
            y[32 * j + l] = (double)(t - mj);
        }
    }
}

static int ref_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double ref_pct(const double *s, size_t n, double p)
{
    double h = p / 100 * (double)(n - 1);
    size_t lo = (size_t)floor(h);
    return lo + 1 < n ? s[lo] + (h - (double)lo) * (s[lo + 1] - s[lo]) : s[lo];
}

typedef struct {
    double s;
    int64_t z;
    uint64_t scode;
} ref_isc_t;

static ref_isc_t ref_int_scale(const fpl_quant_t *q, double lo, double hi)
{
    ref_isc_t r = {1.0, 0, 0};
    int64_t levels = (1LL << q->bits) - 1, qmax = (1LL << (q->bits - 1)) - 1;
    if (q->asym) {
        if (hi == lo) {
            r.s = lo != 0 ? fabs(lo) : 1.0;
            r.z = lo < 0 ? 1 : 0;
        } else {
            r.s = (hi - lo) / (double)levels;
        }
    } else {
        r.s = hi > 0 ? hi / (double)qmax : 1.0;
    }
    double st = fpl_round(&q->scale, r.s, FPL_RNE, NULL);
    r.s = st > 0 ? st : q->scale.min_positive;
    fpl_format_encode(&q->scale, r.s, &r.scode);
    if (q->asym && hi != lo) {
        double z = nearbyint(-lo / r.s);
        r.z = z < 0 ? 0 : z > (double)levels ? levels : (int64_t)z;
    }
    return r;
}

static int64_t ref_int_code(const fpl_quant_t *q, const ref_isc_t *sc, double x)
{
    int64_t levels = (1LL << q->bits) - 1, qmax = (1LL << (q->bits - 1)) - 1;
    double v = nearbyint(fmax(-512, fmin(512, x / sc->s)));
    if (q->asym)
        return (int64_t)fmax(0, fmin((double)levels, v + (double)sc->z));
    return (int64_t)fmax((double)-qmax, fmin((double)qmax, v));
}

static void ref_int_range(const fpl_quant_t *q, const double *x, size_t n, double *lo, double *hi)
{
    double mn = INFINITY, mx = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        mn = fmin(mn, x[i]);
        mx = fmax(mx, x[i]);
    }
    double amax = fmax(-mn, mx);
    *lo = q->asym ? mn : -amax;
    *hi = q->asym ? mx : amax;
    if (q->calib == FPL_CALIB_PERCENTILE && n > 1) {
        double *t = malloc(n * sizeof *t);
        for (size_t i = 0; i < n; i++)
            t[i] = q->asym ? x[i] : fabs(x[i]);
        qsort(t, n, sizeof *t, ref_cmp);
        *hi = ref_pct(t, n, q->percentile);
        *lo = q->asym ? ref_pct(t, n, 100 - q->percentile) : -*hi;
        free(t);
    } else if (q->calib == FPL_CALIB_MSE) {
        double best = INFINITY, blo = *lo, bhi = *hi, mid = q->asym ? (mn + mx) / 2 : 0;
        double half = q->asym ? (mx - mn) / 2 : amax;
        for (int k = 100; k >= 50; k--) {
            double a = k / 100.0, l = mid - a * half, h = mid + a * half;
            ref_isc_t sc = ref_int_scale(q, l, h);
            double e = 0;
            for (size_t i = 0; i < n && e < best; i++) {
                double d = x[i] - (double)(ref_int_code(q, &sc, x[i]) - sc.z) * sc.s;
                e += d * d;
            }
            if (e < best) {
                best = e;
                blo = l;
                bhi = h;
            }
        }
        *lo = blo;
        *hi = bhi;
    }
}

/* the reference packing and dequantization of any scheme; out is zeroed */
static void ref_pack(const fpl_quant_t *q, const double *x, size_t rows, size_t cols, uint8_t *out)
{
    size_t n = rows * cols;
    ref_bits_t w = {out, 0};
    if (q->kind <= FPL_QUANT_Q4_1) {
        size_t bytes = q->kind == FPL_QUANT_Q8_0 ? 34 : q->kind == FPL_QUANT_Q4_0 ? 18 : 20;
        for (size_t b = 0; b < n / 32; b++)
            ref_gguf_block(q->kind, x + 32 * b, out + bytes * b);
    } else if (q->kind == FPL_QUANT_Q4_K) {
        for (size_t b = 0; b < n / 256; b++)
            ref_q4k_block(x + 256 * b, out + 144 * b);
    } else if (q->kind == FPL_QUANT_INT) {
        size_t g = q->block == 0 ? n : q->block == FPL_QUANT_CHANNEL ? cols : q->block;
        for (size_t b = 0; b < n / g; b++) {
            double lo, hi;
            ref_int_range(q, x + b * g, g, &lo, &hi);
            ref_isc_t sc = ref_int_scale(q, lo, hi);
            ref_put(&w, sc.scode, q->scale.nbits);
            if (q->asym)
                ref_put(&w, (uint64_t)sc.z, q->bits);
            for (size_t i = 0; i < g; i++)
                ref_put(&w, (uint64_t)ref_int_code(q, &sc, x[b * g + i]), q->bits);
        }
    } else if (q->kind == FPL_QUANT_MX) {
        int mxint = q->elem.kind == FPL_KIND_INT;
        double emax = mxint ? 127.0 / 64 : q->elem.max_finite;
        for (size_t b = 0; b < n / 32; b++) {
            const double *xb = x + 32 * b;
            double amax = 0;
            for (int i = 0; i < 32; i++)
                amax = fmax(amax, fabs(xb[i]));
            int e = 0;
            if (amax > 0 && q->scale_up) {
                e = ilogb(amax) - ilogb(emax) - 1;
                while (ldexp(emax, e) < amax)
                    e++;
            } else if (amax > 0) {
                e = ilogb(amax) - (mxint ? 0 : q->elem.emax);
            }
            e = e < -127 ? -127 : e > 127 ? 127 : e;
            ref_put(&w, (uint64_t)(e + 127), 8);
            for (int i = 0; i < 32; i++) {
                double t = ldexp(xb[i], -e);
                uint64_t c;
                if (mxint) {
                    c = (uint64_t)(int64_t)fmax(-128, fmin(127, nearbyint(t * 64))) & 0xff;
                } else {
                    fpl_format_encode(&q->elem, fpl_round(&q->elem, t, FPL_RNE, NULL), &c);
                }
                ref_put(&w, c, q->elem.nbits);
            }
        }
    } else { /* NVFP4 */
        double amax = 0;
        for (size_t i = 0; i < n; i++)
            amax = fmax(amax, fabs(x[i]));
        float gs = amax > 0 ? (float)(amax / (6.0 * 448.0)) : 1.0f;
        if (!(gs > 0))
            gs = 1.0f;
        uint32_t gbits;
        memcpy(&gbits, &gs, sizeof gbits);
        ref_put(&w, gbits, 32);
        for (size_t b = 0; b < n / 16; b++) {
            const double *xb = x + 16 * b;
            double bmax = 0;
            for (int i = 0; i < 16; i++)
                bmax = fmax(bmax, fabs(xb[i]));
            double s = fpl_round(&q->scale, bmax / (6.0 * (double)gs), FPL_RNE, NULL);
            uint64_t c;
            fpl_format_encode(&q->scale, s, &c);
            ref_put(&w, c, 8);
            for (int i = 0; i < 16; i++) {
                double t = s > 0 ? xb[i] / (s * (double)gs) : 0.0;
                fpl_format_encode(&q->elem, fpl_round(&q->elem, t, FPL_RNE, NULL), &c);
                ref_put(&w, c, 4);
            }
        }
    }
}

static void ref_unpack(const fpl_quant_t *q, const uint8_t *in, size_t rows, size_t cols, double *y)
{
    size_t n = rows * cols;
    uint64_t bit = 0;
    if (q->kind <= FPL_QUANT_Q4_1) {
        size_t bytes = q->kind == FPL_QUANT_Q8_0 ? 34 : q->kind == FPL_QUANT_Q4_0 ? 18 : 20;
        for (size_t b = 0; b < n / 32; b++)
            ref_gguf_unblock(q->kind, in + bytes * b, y + 32 * b);
    } else if (q->kind == FPL_QUANT_Q4_K) {
        for (size_t b = 0; b < n / 256; b++)
            ref_q4k_unblock(in + 144 * b, y + 256 * b);
    } else if (q->kind == FPL_QUANT_INT) {
        size_t g = q->block == 0 ? n : q->block == FPL_QUANT_CHANNEL ? cols : q->block;
        for (size_t b = 0; b < n / g; b++) {
            double s = fpl_format_decode(&q->scale, ref_get(in, &bit, q->scale.nbits));
            int64_t z = q->asym ? (int64_t)ref_get(in, &bit, q->bits) : 0;
            for (size_t i = 0; i < g; i++) {
                int64_t c = (int64_t)ref_get(in, &bit, q->bits);
                if (!q->asym && c >= (1LL << (q->bits - 1)))
                    c -= 1LL << q->bits;
                y[b * g + i] = (double)(c - z) * s;
            }
        }
    } else if (q->kind == FPL_QUANT_MX) {
        for (size_t b = 0; b < n / 32; b++) {
            int e = (int)ref_get(in, &bit, 8) - 127;
            for (int i = 0; i < 32; i++) {
                uint64_t c = ref_get(in, &bit, q->elem.nbits);
                double v = q->elem.kind == FPL_KIND_INT ? ldexp((double)(int8_t)(uint8_t)c, -6)
                                                        : fpl_format_decode(&q->elem, c);
                y[32 * b + i] = v * ldexp(1.0, e);
            }
        }
    } else {
        uint32_t gbits = (uint32_t)ref_get(in, &bit, 32);
        float gs;
        memcpy(&gs, &gbits, sizeof gs);
        for (size_t b = 0; b < n / 16; b++) {
            double s = fpl_format_decode(&q->scale, ref_get(in, &bit, 8));
            for (int i = 0; i < 16; i++)
                y[16 * b + i] = fpl_format_decode(&q->elem, ref_get(in, &bit, 4)) * s * (double)gs;
        }
    }
}

/* a standard normal deviate (Box-Muller) and a uniform in (0, 1) */
static double ref_unif(fpt_rng_t *r)
{
    return ((double)(fpt_rng_u64(r) >> 11) + 0.5) * 0x1p-53;
}

static double ref_normal(fpt_rng_t *r)
{
    return sqrt(-2 * log(ref_unif(r))) * cos(6.283185307179586 * ref_unif(r));
}

/* one block of 256 values of a kind of data the quantizers find hard */
static void ref_data(fpt_rng_t *r, int kind, double *x)
{
    double scale = ldexp(1.0, (int)(fpt_rng_u64(r) % 61) - 30) * (1 + ref_unif(r));
    int sub = (int)(fpt_rng_u64(r) % 8);
    for (int i = 0; i < 256; i++) {
        double u = ref_unif(r), v;
        switch (kind) {
        case 0: v = ref_normal(r) * scale; break;                            /* Gaussian */
        case 1: v = (u < 0.5 ? log(2 * u) : -log(2 - 2 * u)) * scale; break; /* Laplace */
        case 2:
            v = ref_normal(r) / fmax(1e-3, fabs(ref_normal(r))) * scale;
            break; /* Cauchy-like */
        case 3: v = (double)((int)(fpt_rng_u64(r) % 63) - 31) * 0.5 * ldexp(1.0, sub - 4); break;
        case 4: v = i / 32 == sub || i / 32 == (sub + 3) % 8 ? 0 : ref_normal(r) * scale; break;
        case 5: v = scale * (sub & 1 ? -1 : 1); break;                    /* constant */
        case 6: v = ref_normal(r) * scale * (u < 0.01 ? 1000 : 1); break; /* outliers */
        case 7:
            v = ref_normal(r) * ldexp(1.0, -14 - sub * 2);
            break;                                               /* binary16 subnormal scales */
        case 8: v = ref_normal(r) * ldexp(1.0, 20 + sub); break; /* scales overflow binary16 */
        case 9: v = fabs(ref_normal(r)) * scale * (sub & 1 ? -1 : 1) + (sub & 2 ? scale : 0); break;
        case 10: v = (double)((int)(fpt_rng_u64(r) % 31) - 15) * ldexp(1.0, sub - 3); break;
        case 11: v = u < 0.3 ? 0 : u < 0.6 ? ref_normal(r) * 1e-40 : ref_normal(r) * scale; break;
        case 12: v = ref_normal(r) * ldexp(1.0, 100 + sub * 4); break; /* overflows binary32 sums */
        default: /* a value or two far below a tight cluster */
            v = -scale * (1 + ldexp(ref_normal(r), -20 - sub)) - (u < 0.05 ? scale * 1e3 : 0);
            break;
        }
        if (fabs(v) > 3.4e38) /* GGUF reads finite binary32 */
            v = copysign(3.4e38, v);
        x[i] = v;
    }
}

/* One comparison run: `rounds` tensors of 4 x 1024 values. */
static void matches_reference(size_t rounds, uint64_t seed)
{
    const char *names[] = {"q4_K",
                           "q8_0",
                           "q4_0",
                           "q4_1",
                           "int8",
                           "int4",
                           "int2",
                           "int8:channel",
                           "int4:g128",
                           "int4:g32:asym",
                           "int3:g64:asym",
                           "int4:g64:scale=e8m0",
                           "int4:g32:scale=fp16",
                           "int8:g16:asym:scale=bf16",
                           "mxfp8_e4m3",
                           "mxfp8_e5m2",
                           "mxfp6_e3m2",
                           "mxfp6_e2m3",
                           "mxfp4",
                           "mxfp4:up",
                           "mxint8",
                           "nvfp4"};
    enum { R = 4, C = 1024, N = R * C, KINDS = 14 };
    static double x[N], y[N], yr[N];
    static uint8_t a[2 * N + 64], b[2 * N + 64];
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(seed));
    for (size_t t = 0; t < rounds; t++) {
        for (int k = 0; k < N / 256; k++) /* mixed kinds within a tensor */
            ref_data(&rng, (int)((t + (size_t)k * (t % 5 ? 1 : 0)) % KINDS), x + 256 * k);
        for (size_t s = 0; s < sizeof names / sizeof names[0]; s++) {
            if (t % 8 && s > 0) /* q4_K every time, the rest on every 8th tensor */
                continue;
            fpl_quant_t q = scheme(names[s]);
            if (t % 3 == 1 && q.kind == FPL_QUANT_INT)
                fpl_quant_set_calib(&q, t % 2 ? FPL_CALIB_MSE : FPL_CALIB_PERCENTILE, 99.5);
            size_t bytes = fpl_quant_packed_size(&q, R, C);
            memset(a, 0, bytes);
            memset(b, 0, bytes);
            assert_int_equal(fpl_quant_pack(&q, x, R, C, a), 0);
            ref_pack(&q, x, R, C, b);
            for (size_t i = 0; i < bytes; i++)
                if (a[i] != b[i])
                    fail_msg("%s, tensor %zu: byte %zu is %#x, the reference has %#x", names[s], t,
                             i, a[i], b[i]);
            assert_int_equal(fpl_quant_unpack(&q, a, R, C, y), 0);
            ref_unpack(&q, b, R, C, yr);
            for (size_t i = 0; i < N; i++)
                if (!fpt_same(y[i], yr[i]))
                    fail_msg("%s, tensor %zu: value %zu is %a, the reference has %a", names[s], t,
                             i, y[i], yr[i]);
        }
    }
}

/* The optimised quantizers against the reference: tens of thousands of
 * blocks of every kind of data, every scheme, byte for byte and value for
 * value (FPL_TEST_SCALE divides the count); then again on the portable
 * paths the library takes without AVX2 (FPL_QUANT_SCALAR set). */
static void test_quant_matches_reference(void **state)
{
    (void)state;
    matches_reference(fpt_scaled(2400, 24), 41); /* 2400 tensors: 38400 q4_K blocks */
    setenv("FPL_QUANT_SCALAR", "1", 1);
    matches_reference(fpt_scaled(300, 8), 43);
    unsetenv("FPL_QUANT_SCALAR");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quant_q8_0_block),
        cmocka_unit_test(test_quant_q4_0_block),
        cmocka_unit_test(test_quant_q4_1_block),
        cmocka_unit_test(test_quant_q4_K_block),
        cmocka_unit_test(test_quant_sizes_and_errors),
        cmocka_unit_test(test_quant_random_properties),
        cmocka_unit_test(test_quant_mx_edges),
        cmocka_unit_test(test_quant_nvfp4_block),
        cmocka_unit_test(test_quant_int_schemes),
        cmocka_unit_test(test_quant_storage_round_trip),
        cmocka_unit_test(test_quant_matches_reference),
    };
    return cmocka_run_group_tests_name("quant", tests, NULL, NULL);
}
