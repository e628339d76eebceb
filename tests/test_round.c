/* test_round.c -- rounding: exhaustive and random checks of the fast path
 * against the MPFR path and the independent oracle; stochastic rounding */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"
#include "round_impl.h" /* fpl__round_array_with: each kernel on demand */

static const char *const small_presets[] = {"fp16",  "bf16",     "e4m3",        "e5m2", "e4m3fnuz",
                                            "e5m2fnuz", "e4m3b11fnuz", "e3m2", "e2m3", "e2m1",
                                            "e8m0",  "int8",     "uint8",       "int4", "uint4",
                                            "int2",  "uint2"};
#define NSMALL (sizeof small_presets / sizeof small_presets[0])

static const fpl_rmode_t det_modes[] = {FPL_RNE, FPL_RNA, FPL_RTZ, FPL_RUP, FPL_RDOWN};

static uint64_t fpl__bits_of(double x)
{
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}

static fpl_format_t fmt(const char *name)
{
    fpl_format_t f;
    if (fpl_format_parse(name, &f) != 0)
        fail_msg("cannot parse %s: %s", name, fpl_last_error());
    return f;
}

/* Every generic float format of at most 10 bits, every special-value policy,
 * with and without subnormals; plus the small presets.  Returns the count. */
static size_t all_small_formats(fpl_format_t *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < NSMALL && k < cap; i++)
        out[k++] = fmt(small_presets[i]);
    for (int e = 1; e <= 7; e++)
        for (int m = 0; 1 + e + m <= 10; m++)
            for (int sp = 0; sp < 4; sp++)
                for (int sub = 0; sub < 2; sub++) {
                    fpl_format_t f;
                    fpl_overflow_t ov = sp == FPL_SPECIALS_IEEE   ? FPL_OVERFLOW_INF
                                        : sp == FPL_SPECIALS_NONE ? FPL_OVERFLOW_SATURATE
                                                                  : FPL_OVERFLOW_NAN;
                    if (fpl_format_float(&f, e, m, -1, sub, (fpl_specials_t)sp, ov) == 0 &&
                        k < cap)
                        out[k++] = f;
                    /* every policy also with saturation */
                    if (fpl_format_float(&f, e, m, -1, sub, (fpl_specials_t)sp,
                                         FPL_OVERFLOW_SATURATE) == 0 && k < cap && e == 4)
                        out[k++] = f;
                }
    return k;
}

#define CHECK_SAME(got, want, ...)                                                             \
    do {                                                                                       \
        if (!fpt_same((got), (want))) {                                                        \
            print_error(__VA_ARGS__);                                                          \
            fail_msg("got %a, want %a", (got), (want));                                        \
        }                                                                                      \
    } while (0)

/* Round x every way and compare the fast path, the MPFR path and the oracle. */
static void check_point(const fpl_format_t *f, const double *grid, size_t n, double x,
                        uint64_t seed)
{
    for (size_t k = 0; k < sizeof det_modes / sizeof det_modes[0]; k++) {
        fpl_rmode_t m = det_modes[k];
        double want = fpt_oracle_round(f, grid, n, x, m);
        double fast = fpl_round(f, x, m, NULL);
        double ref = fpl_round_mpfr_d(f, x, m, NULL);
        CHECK_SAME(fast, want, "fast %s %s x=%a\n", f->name, fpl_rmode_name(m), x);
        CHECK_SAME(ref, want, "mpfr %s %s x=%a\n", f->name, fpl_rmode_name(m), x);
    }
    fpl_sr_t a, b;
    fpl_sr_seed(&a, seed);
    fpl_sr_seed(&b, seed);
    double lo, hi;
    fpt_oracle_neighbours(f, grid, n, x, &lo, &hi);
    for (int rep = 0; rep < 4; rep++) {
        double fast = fpl_round(f, x, FPL_SR, &a);
        double ref = fpl_round_mpfr_d(f, x, FPL_SR, &b);
        CHECK_SAME(fast, ref, "sr %s x=%a\n", f->name, x);
        if (!fpt_same(fast, lo) && !fpt_same(fast, hi))
            fail_msg("sr %s x=%a gave %a outside {%a, %a}", f->name, x, fast, lo, hi);
    }
}

static void test_round_decode_matches_oracle(void **state)
{
    (void)state;
    static fpl_format_t fs[1024];
    size_t nf = all_small_formats(fs, 1024);
    assert_true(nf > 300);
    for (size_t i = 0; i < NSMALL; i++) { /* and the 16-bit ones */
        const fpl_format_t *f = &fs[i];
        for (uint64_t c = 0; c < (1ULL << f->nbits); c++) {
            double got = fpl_format_decode(f, c), want = fpt_oracle_decode(f, c);
            CHECK_SAME(got, want, "decode %s code 0x%llx\n", f->name, (unsigned long long)c);
        }
    }
    for (size_t i = NSMALL; i < nf; i++) {
        const fpl_format_t *f = &fs[i];
        for (uint64_t c = 0; c < (1ULL << f->nbits); c++) {
            double got = fpl_format_decode(f, c), want = fpt_oracle_decode(f, c);
            /* without subnormals, exponent-0 codes read as zero */
            if (!f->subnormals && ((c >> f->mbits) & ((1ULL << f->ebits) - 1)) == 0 && !isnan(want))
                want = f->has_negzero ? copysign(0.0, want) : 0.0;
            CHECK_SAME(got, want, "decode %s code 0x%llx\n", f->name, (unsigned long long)c);
        }
    }
}

/* Every value of every small format survives every rounding mode. */
static void test_round_values_are_fixed_points(void **state)
{
    (void)state;
    static fpl_format_t fs[1024];
    size_t nf = all_small_formats(fs, 1024);
    fpl_sr_t sr;
    fpl_sr_seed(&sr, 7);
    for (size_t i = 0; i < nf; i++) {
        const fpl_format_t *f = &fs[i];
        size_t n;
        double *g = fpt_grid(f, &n);
        for (size_t j = 1; j + 1 < n; j++) {
            double v = g[j];
            for (int m = 0; m < FPL_NMODES; m++) {
                double r = fpl_round(f, v, (fpl_rmode_t)m, &sr);
                if (r != v)
                    fail_msg("%s %s moved value %a to %a", f->name, fpl_rmode_name(m), v, r);
                r = fpl_round_mpfr_d(f, v, (fpl_rmode_t)m, &sr);
                if (r != v)
                    fail_msg("mpfr %s %s moved value %a to %a", f->name, fpl_rmode_name(m), v, r);
            }
        }
        free(g);
    }
}

/* Every midpoint between neighbours (phantoms beyond the range included),
 * and the doubles just below and above it, in every mode. */
static void test_round_midpoints_exhaustive(void **state)
{
    (void)state;
    static fpl_format_t fs[1024];
    size_t nf = all_small_formats(fs, 1024);
    size_t points = 0;
    for (size_t i = 0; i < nf; i++) {
        const fpl_format_t *f = &fs[i];
        size_t n;
        double *g = fpt_grid(f, &n);
        double *pts = malloc(4 * n * sizeof *pts), *res = malloc(4 * n * sizeof *res);
        size_t np = 0;
        for (size_t j = 0; j + 1 < n; j++) {
            double mid = g[j] + (g[j + 1] - g[j]) / 2; /* exact: at most 13 bits */
            pts[np++] = mid;
            pts[np++] = nextafter(mid, -INFINITY);
            pts[np++] = nextafter(mid, INFINITY);
            pts[np++] = g[j];
        }
        for (size_t k = 0; k < np; k++, points++)
            check_point(f, g, n, pts[k], points);
        /* the array path (SIMD where the machine has it) on the same points */
        for (int m = 0; m < FPL_NMODES; m++) {
            fpl_sr_t s1, s2;
            fpl_sr_seed(&s1, 99);
            fpl_sr_seed(&s2, 99);
            fpl_round_array(f, pts, res, np, (fpl_rmode_t)m, &s1);
            for (size_t k = 0; k < np; k++)
                CHECK_SAME(res[k], fpl_round(f, pts[k], (fpl_rmode_t)m, &s2),
                           "array %s %s x=%a\n", f->name, fpl_rmode_name(m), pts[k]);
        }
        free(pts);
        free(res);
        /* far beyond the range, the specials, and signed zeros */
        double extra[] = {2 * g[n - 1], 2 * g[0], 1e300, -1e300, INFINITY, -INFINITY, NAN,
                          0.0,          -0.0,     0x1p-1074, -0x1p-1074};
        for (size_t k = 0; k < sizeof extra / sizeof extra[0]; k++)
            check_point(f, g, n, extra[k], k);
        free(g);
    }
    print_message("# %zu formats, %zu points, 5 modes + sr each\n", nf, points);
}

/* 10^6 random doubles per format, each rounded in every mode: the array
 * (SIMD) path against MPFR, the scalar path against the array path, and
 * the oracle on a sample where the format is small enough to enumerate. */
static void test_round_random_fast_vs_mpfr(void **state)
{
    (void)state;
    const char *names[] = {"fp64", "fp32", "tf32", "fp16", "bf16", "e4m3", "e5m2", "e4m3fnuz",
                           "e5m2fnuz", "e4m3b11fnuz", "e3m2", "e2m3", "e2m1", "e8m0", "int8",
                           "uint8", "int4", "fp:e=5,m=10,nosub", "fp:e=4,m=3,fn,nosub,ovf=sat"};
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(20261123));
    size_t N = fpt_scaled(1000000, 20000);
    double *xs = malloc(N * sizeof *xs), *ys = malloc(N * sizeof *ys);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        fpl_format_t f = fmt(names[i]);
        size_t gn = 0;
        double *g = f.nbits <= 16 ? fpt_grid(&f, &gn) : NULL;
        for (size_t k = 0; k < N; k++)
            xs[k] = fpt_random_double(&rng, &f);
        for (int m = 0; m < FPL_NMODES; m++) {
            fpl_sr_t a, b, c;
            fpl_sr_seed(&a, 17 + i);
            fpl_sr_seed(&b, 17 + i);
            fpl_sr_seed(&c, 17 + i);
            fpl_round_array(&f, xs, ys, N, (fpl_rmode_t)m, &a);
            for (size_t k = 0; k < N; k++) {
                double ref = fpl_round_mpfr_d(&f, xs[k], (fpl_rmode_t)m, &b);
                double one = fpl_round(&f, xs[k], (fpl_rmode_t)m, &c);
                CHECK_SAME(ys[k], ref, "array vs mpfr %s %s x=%a\n", f.name, fpl_rmode_name(m),
                           xs[k]);
                CHECK_SAME(one, ref, "scalar vs mpfr %s %s x=%a\n", f.name, fpl_rmode_name(m),
                           xs[k]);
                if (g && m != FPL_SR && k % 8 == 0)
                    CHECK_SAME(ref, fpt_oracle_round(&f, g, gn, xs[k], (fpl_rmode_t)m),
                               "oracle %s %s x=%a\n", f.name, fpl_rmode_name(m), xs[k]);
            }
        }
        free(g);
    }
    free(xs);
    free(ys);
}

/* Formats whose range reaches binary64's own subnormals (11 exponent bits,
 * bias >= 1023): a subnormal double is below the smallest normal of the
 * format, or a normal of it when the bias is larger.  The fast path once
 * returned 2^-1023 unchanged in fp:e=11,m=9,nosub (found by fuzz_format). */
static void test_round_binary64_subnormal_inputs(void **state)
{
    (void)state;
    const char *names[] = {"fp:e=11,m=9,nosub",        "fp:e=11,m=9",
                           "fp:e=11,m=0,nosub",        "fp:e=11,m=23,bias=1025",
                           "fp:e=11,m=23,bias=1025,nosub", "fp:e=11,m=2,bias=1040",
                           "fp:e=11,m=2,bias=1040,nosub",  "fp:e=11,m=40,bias=1030,fn",
                           "fp:e=11,m=20,bias=1024,nospecials,nosub", "fp:e=10,m=3,bias=1000,nosub", "fp:e=2,m=30,bias=1040,nosub",
                           "fp:e=3,m=40,bias=1030,nosub"};
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(20261125));
    size_t N = fpt_scaled(20000, 2000);
    double *xs = malloc(N * sizeof *xs), *ys = malloc(N * sizeof *ys);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        fpl_format_t f = fmt(names[i]);
        for (size_t k = 0; k < N; k++) {
            uint64_t r = fpt_rng_u64(&rng), b;
            switch (k % 4) {
            case 0: /* a binary64 subnormal, any width */
                b = (r & ((UINT64_C(1) << 52) - 1)) >> (r >> 58);
                break;
            case 1: /* a binary64 subnormal with few bits: ties and exact cases */
                b = (r & 0xff) << (r >> 58 & 63 ? (r >> 58) % 45 : 0);
                break;
            case 2: /* near the format's smallest normal */
                b = fpl__bits_of(ldexp(1.0 + (double)(r & 0xffff) / 65536.0 - 0.5,
                                       f.emin + (int)(r >> 62) - 1));
                break;
            default: /* the bottom of binary64's normal range */
                b = ((uint64_t)(1 + (r >> 60)) << 52) | (r & ((UINT64_C(1) << 52) - 1));
                break;
            }
            memcpy(&xs[k], &b, sizeof b);
            if (r & 1)
                xs[k] = -xs[k];
        }
        for (int m = 0; m < FPL_NMODES; m++) {
            fpl_sr_t a, c, d;
            fpl_sr_seed(&a, 5 + i);
            fpl_sr_seed(&c, 5 + i);
            fpl_sr_seed(&d, 5 + i);
            fpl_round_array(&f, xs, ys, N, (fpl_rmode_t)m, &a);
            for (size_t k = 0; k < N; k++) {
                double ref = fpl_round_mpfr_d(&f, xs[k], (fpl_rmode_t)m, &c);
                double one = fpl_round(&f, xs[k], (fpl_rmode_t)m, &d);
                CHECK_SAME(one, ref, "scalar vs mpfr %s %s x=%a\n", f.name, fpl_rmode_name(m),
                           xs[k]);
                CHECK_SAME(ys[k], ref, "array vs mpfr %s %s x=%a\n", f.name, fpl_rmode_name(m),
                           xs[k]);
            }
        }
    }
    free(xs);
    free(ys);
}

/* Facts of the formats' own conversion rules, spelled out from the specs
 * and from ml_dtypes' documented behaviour. */
static void test_round_ecosystem_semantics(void **state)
{
    (void)state;
    fpl_format_t e4m3 = fmt("e4m3"), e5m2 = fmt("e5m2"), fp16 = fmt("fp16"), bf16 = fmt("bf16");
    fpl_format_t e2m1 = fmt("e2m1"), fnuz = fmt("e4m3fnuz"), e8m0 = fmt("e8m0");
    /* e4m3fn: 464 is the midpoint of 448 and (nonexistent) 480: ties to 448 */
    assert_true(fpl_round(&e4m3, 464, FPL_RNE, NULL) == 448);
    assert_true(isnan(fpl_round(&e4m3, 464.5, FPL_RNE, NULL)));
    assert_true(isnan(fpl_round(&e4m3, INFINITY, FPL_RNE, NULL)));
    assert_true(fpl_round(&e4m3, 1e9, FPL_RTZ, NULL) == 448); /* IEEE: RTZ never overflows */
    fpl_format_t sat = e4m3;
    assert_int_equal(fpl_format_set_overflow(&sat, FPL_OVERFLOW_SATURATE), 0);
    assert_true(fpl_round(&sat, 1e9, FPL_RNE, NULL) == 448);
    assert_true(fpl_round(&sat, -INFINITY, FPL_RNE, NULL) == -448);
    assert_true(isnan(fpl_round(&sat, NAN, FPL_RNE, NULL)));
    /* e5m2 and fp16: IEEE overflow to inf at the midpoint above max */
    assert_true(fpl_round(&e5m2, 61440, FPL_RNE, NULL) == INFINITY);
    assert_true(fpl_round(&e5m2, 61439, FPL_RNE, NULL) == 57344);
    assert_true(fpl_round(&fp16, 65520, FPL_RNE, NULL) == INFINITY);
    assert_true(fpl_round(&fp16, 65519.99, FPL_RNE, NULL) == 65504);
    assert_true(fpl_round(&fp16, -65520, FPL_RDOWN, NULL) == -INFINITY);
    assert_true(fpl_round(&fp16, -65520, FPL_RUP, NULL) == -65504);
    /* bf16 keeps subnormals; the smallest is 2^-133 */
    assert_true(fpl_round(&bf16, 0x1p-133, FPL_RNE, NULL) == 0x1p-133);
    assert_true(fpl_round(&bf16, 0x1.8p-134, FPL_RNE, NULL) == 0x1p-133);
    /* no double rounding: 1 + 2^-8 + 2^-30 is above the bf16 midpoint, but
     * rounds to the midpoint in binary32 first, which would then tie to 1 */
    assert_true(fpl_round(&bf16, 1 + 0x1p-8 + 0x1p-30, FPL_RNE, NULL) == 1 + 0x1p-7);
    assert_true(fpl_round(&bf16, 1 + 0x1p-8, FPL_RNE, NULL) == 1);
    /* e4m3: just above a midpoint in the subnormal range */
    assert_true(fpl_round(&e4m3, 0x1.8p-9 + 0x1p-40, FPL_RNE, NULL) == 0x1p-8);
    /* FP4 saturates and has no NaN or inf */
    assert_true(fpl_round(&e2m1, 7, FPL_RNE, NULL) == 6);
    assert_true(fpl_round(&e2m1, INFINITY, FPL_RNE, NULL) == 6);
    assert_true(fpl_round(&e2m1, -1e9, FPL_RNE, NULL) == -6);
    assert_true(fpl_round(&e2m1, 2.5, FPL_RNE, NULL) == 2);
    assert_true(fpl_round(&e2m1, 2.5, FPL_RNA, NULL) == 3);
    assert_true(fpl_round(&e2m1, 0.25, FPL_RNE, NULL) == 0);
    assert_true(signbit(fpl_round(&e2m1, -0.25, FPL_RNE, NULL)));
    /* FNUZ: no negative zero */
    assert_false(signbit(fpl_round(&fnuz, -0.0, FPL_RNE, NULL)));
    assert_false(signbit(fpl_round(&fnuz, -0x1p-30, FPL_RNE, NULL)));
    assert_true(isnan(fpl_round(&fnuz, 241, FPL_RNE, NULL)) == 0); /* 241 -> 240 */
    assert_true(fpl_round(&fnuz, 241, FPL_RNE, NULL) == 240);
    assert_true(isnan(fpl_round(&fnuz, 1000, FPL_RNE, NULL)));
    /* e8m0: powers of two only, ties up (PyTorch), no zero, no sign */
    assert_true(fpl_round(&e8m0, 1.5, FPL_RNE, NULL) == 2);
    assert_true(fpl_round(&e8m0, 3, FPL_RNE, NULL) == 4);
    assert_true(fpl_round(&e8m0, 0.75, FPL_RNE, NULL) == 1);
    assert_true(fpl_round(&e8m0, 1.4, FPL_RNE, NULL) == 1);
    assert_true(fpl_round(&e8m0, 0.0, FPL_RNE, NULL) == 0x1p-127);
    assert_true(fpl_round(&e8m0, 0x1p-300, FPL_RTZ, NULL) == 0x1p-127);
    assert_true(isnan(fpl_round(&e8m0, -1.0, FPL_RNE, NULL)));
    assert_true(isnan(fpl_round(&e8m0, 0x1p128, FPL_RNE, NULL)));
    /* integers: round to nearest even, saturate */
    fpl_format_t i8 = fmt("int8"), u4 = fmt("uint4"), i4 = fmt("int4");
    assert_true(fpl_round(&i8, 2.5, FPL_RNE, NULL) == 2);
    assert_true(fpl_round(&i8, -2.5, FPL_RNA, NULL) == -3);
    assert_true(fpl_round(&i8, 127.5, FPL_RNE, NULL) == 127);
    assert_true(fpl_round(&i8, -1000, FPL_RNE, NULL) == -128);
    assert_true(fpl_round(&i8, INFINITY, FPL_RNE, NULL) == 127);
    assert_true(isnan(fpl_round(&i8, NAN, FPL_RNE, NULL)));
    assert_true(fpl_round(&u4, -3, FPL_RNE, NULL) == 0);
    assert_true(fpl_round(&u4, 99, FPL_RNE, NULL) == 15);
    assert_true(fpl_round(&i4, 7.6, FPL_RNE, NULL) == 7);
    assert_false(signbit(fpl_round(&i4, -0.2, FPL_RNE, NULL)));
}

/* The mean of many stochastic roundings of x is x, within 5 standard
 * errors; the results are the two neighbours and nothing else. */
static void test_round_sr_unbiased(void **state)
{
    (void)state;
    struct {
        const char *f;
        double x;
    } cases[] = {{"bf16", 1 + 0.3 * 0x1p-7}, {"bf16", -3.0e-39}, {"e4m3", 0.7 * 0x1p-9},
                 {"e4m3", 300.0},           {"fp16", 1e-7},     {"e2m1", 4.9},
                 {"int8", -17.123},         {"e5m2", 1 + 0.01}};
    size_t N = fpt_scaled(200000, 20000);
    double *in = malloc(N * sizeof *in), *out = malloc(N * sizeof *out);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fpl_format_t f = fmt(cases[c].f);
        double x = cases[c].x;
        double lo = fpl_round(&f, x, FPL_RDOWN, NULL), hi = fpl_round(&f, x, FPL_RUP, NULL);
        for (size_t i = 0; i < N; i++)
            in[i] = x;
        fpl_sr_t sr;
        fpl_sr_seed(&sr, 1000 + c);
        fpl_round_array(&f, in, out, N, FPL_SR, &sr);
        double sum = 0;
        size_t nhi = 0;
        for (size_t i = 0; i < N; i++) {
            if (out[i] != lo && out[i] != hi)
                fail_msg("%s: sr(%a) gave %a outside [%a, %a]", f.name, x, out[i], lo, hi);
            nhi += out[i] == hi;
            sum += out[i];
        }
        double p = (x - lo) / (hi - lo);
        double se = (hi - lo) * sqrt(p * (1 - p) / (double)N);
        double mean = sum / (double)N;
        if (fabs(mean - x) > 5 * se)
            fail_msg("%s: mean of sr(%a) is %a, %.2f standard errors away", f.name, x, mean,
                     fabs(mean - x) / se);
        assert_true(nhi > 0 && nhi < N);
    }
    free(in);
    free(out);
}

/* Same seed, same bits; different seed, different bits; chunked or whole,
 * array or scalar, the same draws. */
static void test_round_sr_reproducible(void **state)
{
    (void)state;
    fpl_format_t f = fmt("bf16");
    enum { N = 4096 };
    double in[N], a[N], b[N], c[N], d[N];
    fpt_rng_t rng;
    fpt_rng_init(&rng, 5);
    for (int i = 0; i < N; i++)
        in[i] = fpt_random_double(&rng, &f);
    fpl_sr_t s1, s2, s3, s4;
    fpl_sr_seed(&s1, 42);
    fpl_sr_seed(&s2, 42);
    fpl_sr_seed(&s3, 43);
    fpl_round_array(&f, in, a, N, FPL_SR, &s1);
    fpl_round_array(&f, in, b, 1000, FPL_SR, &s2);
    fpl_round_array(&f, in + 1000, b + 1000, N - 1000, FPL_SR, &s2);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(s1.counter, N);
    assert_int_equal(s2.counter, N);
    fpl_round_array(&f, in, c, N, FPL_SR, &s3);
    int differ = 0;
    for (int i = 0; i < N; i++)
        differ += !fpt_same(a[i], c[i]);
    assert_true(differ > N / 10);
    fpl_sr_seed(&s4, 42);
    for (int i = 0; i < N; i++)
        d[i] = fpl_round(&f, in[i], FPL_SR, &s4);
    assert_memory_equal(a, d, sizeof a);
    /* seeding from a GSL generator is reproducible too */
    gsl_rng *g1 = gsl_rng_alloc(gsl_rng_mt19937), *g2 = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(g1, 9);
    gsl_rng_set(g2, 9);
    fpl_sr_seed_gsl(&s1, g1);
    fpl_sr_seed_gsl(&s2, g2);
    assert_true(s1.key == s2.key);
    assert_true(fpl_sr_next(&s1) == fpl_sr_next(&s2));
    gsl_rng_free(g1);
    gsl_rng_free(g2);
}

/* The array path agrees with the scalar path, in place too. */
static void test_round_array_matches_scalar(void **state)
{
    (void)state;
    const char *names[] = {"fp32", "bf16", "e4m3", "e2m1", "int4", "fp64", "e8m0"};
    enum { N = 2000 };
    double in[N], out[N];
    fpt_rng_t rng;
    fpt_rng_init(&rng, 11);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        fpl_format_t f = fmt(names[k]);
        for (int i = 0; i < N; i++)
            in[i] = fpt_random_double(&rng, &f);
        for (int m = 0; m < FPL_NMODES; m++) {
            fpl_sr_t s1, s2;
            fpl_sr_seed(&s1, 3);
            fpl_sr_seed(&s2, 3);
            fpl_round_array(&f, in, out, N, (fpl_rmode_t)m, &s1);
            for (int i = 0; i < N; i++)
                CHECK_SAME(out[i], fpl_round(&f, in[i], (fpl_rmode_t)m, &s2), "%s %s\n", f.name,
                           fpl_rmode_name(m));
            double copy[N];
            memcpy(copy, in, sizeof copy);
            fpl_sr_seed(&s1, 3);
            fpl_round_array(&f, copy, copy, N, (fpl_rmode_t)m, &s1);
            assert_memory_equal(copy, out, sizeof copy);
        }
    }
}

/* An input mix for the kernels: values over the whole range and beyond,
 * exact zeros, infinities and NaN, binary64 subnormals, and values 2^11 to
 * 2^80 below the format's smallest quantum (the SR kernels' rare branch,
 * taken for about one such value in 2^11, so there are many). */
static double kernel_input(fpt_rng_t *rng, const fpl_format_t *f)
{
    uint64_t u = fpt_rng_u64(rng);
    double tiny = f->min_positive * 0x1p-11;
    switch (u % 16) {
    case 0: return (u & 16) ? -0.0 : 0.0;
    case 1: return (u & 16) ? INFINITY : ((u & 32) ? -INFINITY : NAN);
    case 2: return ldexp((double)(u >> 12), -1074 - 52 + (int)((u >> 4) & 7)); /* subnormal */
    case 3:
    case 4:
    case 5:
    case 6:
    case 7:
        return ldexp((double)((fpt_rng_u64(rng) >> 11) | 1), -53) *
               ldexp(tiny, -(int)((u >> 5) % 70)) * ((u & 16) ? -1 : 1);
    default: return fpt_random_double(rng, f);
    }
}

/* Every SIMD kernel (AVX2, AVX-512 where the CPU has them), with and
 * without streaming stores, gives the scalar loop's bits element for
 * element: every mode, lengths 0..70 and odd larger ones (tails that are
 * not a multiple of the vector width), every 8-byte offset of input and
 * output (the scalar head before 64-byte alignment), a draw counter that
 * does not start at 0, and in place. */
static void test_round_kernels_match_scalar(void **state)
{
    (void)state;
    fpl_format_t fs[9];
    size_t nf = 0;
    const char *names[] = {"bf16", "fp16", "e4m3", "e5m2", "e4m3fnuz", "e2m1", "fp32"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        fs[nf++] = fmt(names[k]);
    assert_int_equal(fpl_format_float(&fs[nf++], 4, 3, -1, 0, FPL_SPECIALS_IEEE, FPL_OVERFLOW_INF),
                     0);
    assert_int_equal(
        fpl_format_float(&fs[nf++], 5, 2, -1, 1, FPL_SPECIALS_IEEE, FPL_OVERFLOW_SATURATE), 0);
    static const size_t big[] = {127, 128, 129, 1001, 4099};
    enum { CAP = 4099 + 16 };
    double *in = malloc(CAP * sizeof *in), *want = malloc(CAP * sizeof *want);
    double *got = malloc(CAP * sizeof *got);
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(15));
    for (size_t k = 0; k < nf; k++) {
        const fpl_format_t *f = &fs[k];
        for (size_t i = 0; i < CAP; i++)
            in[i] = kernel_input(&rng, f);
        for (int m = 0; m < FPL_NMODES; m++)
            for (size_t z = 0; z < 71 + sizeof big / sizeof big[0]; z++) {
                size_t n = z < 71 ? z : big[z - 71];
                for (size_t off = 0; off < 8; off++) {
                    size_t ioff = (off * 5 + z) % 8;
                    fpl_sr_t s0 = {0x243f6a8885a308d3ULL + k, 1000 + off};
                    fpl_sr_t sw = s0;
                    fpl__round_array_with(f, in + ioff, want + off, n, (fpl_rmode_t)m, &sw,
                                          FPL__ISA_SCALAR, 0);
                    for (int isa = FPL__ISA_AVX2; isa <= FPL__ISA_AVX512; isa++)
                        for (int st = 0; st <= 1; st++) {
                            fpl_sr_t sg = s0;
                            fpl__round_array_with(f, in + ioff, got + off, n, (fpl_rmode_t)m, &sg,
                                                  isa, st);
                            assert_true(sg.counter == sw.counter);
                            for (size_t i = 0; i < n; i++)
                                CHECK_SAME(got[off + i], want[off + i],
                                           "%s %s isa %d stream %d n %zu off %zu i %zu x=%a\n",
                                           f->name, fpl_rmode_name(m), isa, st, n, off, i,
                                           in[ioff + i]);
                        }
                    /* in place, through the public entry */
                    fpl_sr_t sp = s0;
                    memcpy(got + off, in + ioff, n * sizeof *got);
                    fpl_round_array(f, got + off, got + off, n, (fpl_rmode_t)m, &sp);
                    for (size_t i = 0; i < n; i++)
                        CHECK_SAME(got[off + i], want[off + i], "in place %s %s n %zu i %zu\n",
                                   f->name, fpl_rmode_name(m), n, i);
                }
            }
    }
    free(in);
    free(want);
    free(got);
}

/* splitmix64 (Steele, Lea & Flood 2014), written here from the paper so the
 * test can see which draws it is making the kernels use. */
static uint64_t test_splitmix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* SR of values 2^11 to 2^13 below the format's quantum (64 or 65 discarded
 * bits): they round up only for draws below 2^53, one in 2^11, which the
 * SIMD kernels handle on a separate branch.  Enough of them that the branch
 * is taken many times (counted with the stream's documented definition),
 * and every kernel must give the scalar bits. */
static void test_round_sr_kernels_far_below_quantum(void **state)
{
    (void)state;
    const char *names[] = {"bf16", "fp16", "e4m3", "e5m2", "e4m3fnuz", "e2m1", "fp32"};
    size_t n = fpt_scaled(1 << 17, 1 << 14);
    double *in = malloc(n * sizeof *in), *want = malloc(n * sizeof *want);
    double *got = malloc(n * sizeof *got);
    fpt_rng_t rng;
    fpt_rng_init(&rng, fpt_seed(1511));
    size_t ups = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        fpl_format_t f = fmt(names[k]);
        for (size_t i = 0; i < n; i++) {
            uint64_t u = fpt_rng_u64(&rng);
            /* [2^(qsub-13), 2^(qsub-11)), qsub the exponent of min_positive */
            in[i] = ldexp(1.0 + (double)(u >> 12) * 0x1p-52, -13 + (int)((u >> 1) & 1)) *
                    f.min_positive * ((u & 1) ? -1 : 1);
        }
        fpl_sr_t s0;
        fpl_sr_seed(&s0, 77 + k);
        s0.counter = 5;
        for (size_t i = 0; i < n; i++)
            ups += test_splitmix64(s0.key + (s0.counter + i + 1) * 0x9e3779b97f4a7c15ULL) <
                   (1ULL << 53);
        fpl_sr_t sw = s0;
        fpl__round_array_with(&f, in, want, n, FPL_SR, &sw, FPL__ISA_SCALAR, 0);
        for (int isa = FPL__ISA_AVX2; isa <= FPL__ISA_AVX512; isa++)
            for (int st = 0; st <= 1; st++) {
                fpl_sr_t sg = s0;
                fpl__round_array_with(&f, in, got, n, FPL_SR, &sg, isa, st);
                for (size_t i = 0; i < n; i++)
                    CHECK_SAME(got[i], want[i], "%s isa %d stream %d i %zu x=%a\n", f.name, isa, st,
                               i, in[i]);
            }
    }
    /* the rare branch was exercised: about 7 n / 2^11 draws below 2^53 */
    assert_true(ups >= 7 * n / 4096);
    free(in);
    free(want);
    free(got);
}

/* The MPFR path restores the caller's exponent range and handles values
 * beyond binary64. */
static void test_round_mpfr_range_and_extremes(void **state)
{
    (void)state;
    fpl_format_t f = fmt("bf16");
    mpfr_exp_t emin = mpfr_get_emin(), emax = mpfr_get_emax();
    mpfr_set_emin(-5000);
    mpfr_set_emax(5000);
    mpfr_t x;
    mpfr_init2(x, 200);
    mpfr_set_ui_2exp(x, 1, 3000, MPFR_RNDN);
    assert_true(fpl_round_mpfr(&f, x, FPL_RNE, NULL) == INFINITY);
    assert_true(fpl_round_mpfr(&f, x, FPL_RTZ, NULL) == f.max_finite);
    mpfr_set_si_2exp(x, -1, -3000, MPFR_RNDN);
    assert_true(fpl_round_mpfr(&f, x, FPL_RDOWN, NULL) == -0x1p-133);
    double z = fpl_round_mpfr(&f, x, FPL_RNE, NULL);
    assert_true(z == 0 && signbit(z));
    assert_int_equal(mpfr_get_emin(), -5000);
    assert_int_equal(mpfr_get_emax(), 5000);
    mpfr_clear(x);
    mpfr_set_emin(emin);
    mpfr_set_emax(emax);
}

static void test_round_mode_names(void **state)
{
    (void)state;
    const char *names[] = {"rne", "rna", "rtz", "rup", "rdown", "sr"};
    for (int i = 0; i < 6; i++) {
        fpl_rmode_t m;
        assert_int_equal(fpl_rmode_parse(names[i], &m), 0);
        assert_int_equal(m, i);
        assert_string_equal(fpl_rmode_name(m), names[i]);
    }
    fpl_rmode_t m;
    assert_int_equal(fpl_rmode_parse("nearest", &m), FPL_EINVAL);
    assert_non_null(strstr(fpl_last_error(), "nearest"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_decode_matches_oracle),
        cmocka_unit_test(test_round_values_are_fixed_points),
        cmocka_unit_test(test_round_midpoints_exhaustive),
        cmocka_unit_test(test_round_random_fast_vs_mpfr),
        cmocka_unit_test(test_round_ecosystem_semantics),
        cmocka_unit_test(test_round_sr_unbiased),
        cmocka_unit_test(test_round_sr_reproducible),
        cmocka_unit_test(test_round_array_matches_scalar),
        cmocka_unit_test(test_round_kernels_match_scalar),
        cmocka_unit_test(test_round_sr_kernels_far_below_quantum),
        cmocka_unit_test(test_round_mpfr_range_and_extremes),
        cmocka_unit_test(test_round_binary64_subnormal_inputs),
        cmocka_unit_test(test_round_mode_names),
    };
    return cmocka_run_group_tests_name("round", tests, NULL, NULL);
}
