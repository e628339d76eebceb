/* quant_int.c -- b-bit integer quantizers with a scale (and zero point) per
 * tensor, row or group, and their clipping-range calibration */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "quant_impl.h"
#include "round.h"

/* ---- integer schemes ------------------------------------------------------ */

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *sorted, size_t n, double p)
{
    double h = p / 100 * (double)(n - 1);
    size_t lo = (size_t)floor(h);
    return lo + 1 < n ? sorted[lo] + (h - (double)lo) * (sorted[lo + 1] - sorted[lo]) : sorted[lo];
}

/* scale and zero point of a group for the clipping range [lo, hi] (symmetric:
 * lo = -hi); the scale is stored in q->scale */
typedef struct {
    double s;
    int64_t z;
    uint64_t scode;
} intscale_t;

/* a scheme prepared once per call: the scale format's rounding parameters */
typedef struct {
    const fpl_quant_t *q;
    fparams_t P;
    int64_t levels, qmax;
} intctx_t;

static void intctx_init(intctx_t *c, const fpl_quant_t *q)
{
    c->q = q;
    fparams_init(&c->P, &q->scale);
    c->levels = (1LL << q->bits) - 1;
    c->qmax = (1LL << (q->bits - 1)) - 1;
}

/* the code of a positive value of a binary float format: fields read off
 * the binary64 bits (the format's normal numbers are normal doubles) */
static uint64_t scale_encode(const fpl_format_t *f, double v)
{
    uint64_t c;
    if (v < f->min_normal) {
        fpl_format_encode(f, v, &c);
        return c;
    }
    uint64_t a = fpl__bits(v);
    int E = (int)(a >> 52) - 1023;
    return ((uint64_t)(E + f->bias) << f->mbits) |
           ((a >> (52 - f->mbits)) & (((uint64_t)1 << f->mbits) - 1));
}

static intscale_t int_scale(const intctx_t *c, double lo, double hi)
{
    const fpl_quant_t *q = c->q;
    intscale_t r = {1.0, 0, 0};
    if (q->asym) {
        if (hi == lo) { /* a constant group is stored exactly: s = |c| */
            r.s = lo != 0 ? fabs(lo) : 1.0;
            r.z = lo < 0 ? 1 : 0;
        } else {
            r.s = (hi - lo) / (double)c->levels;
        }
    } else {
        r.s = hi > 0 ? hi / (double)c->qmax : 1.0;
    }
    double st = round_float_one(&c->P, r.s, FPL_RNE, 0); /* = fpl_round(&q->scale, ...) */
    if (!(st > 0))
        st = q->scale.min_positive; /* a scale that underflows the format */
    r.s = st;
    r.scode = scale_encode(&q->scale, st);
    if (q->asym && hi != lo) {
        double z = nearbyint(-lo / r.s);
        r.z = z < 0 ? 0 : z > (double)c->levels ? c->levels : (int64_t)z;
    }
    return r;
}

static int64_t int_code(const intctx_t *c, const intscale_t *sc, double x)
{
    double v = x / sc->s;
    v = v > 512 ? 512 : v < -512 ? -512 : v; /* beyond every code: clamped below */
    v = rne_int(v);
    if (c->q->asym) {
        v += (double)sc->z;
        return v < 0 ? 0 : v > (double)c->levels ? c->levels : (int64_t)v;
    }
    return v < -(double)c->qmax ? -c->qmax : v > (double)c->qmax ? c->qmax : (int64_t)v;
}

/* int_code of n values, with the branches hoisted so the loops vectorise
 * (each element: the same division, clamps and rounding) */
static void int_codes(const intctx_t *c, const intscale_t *sc, const double *x, size_t n,
                      int32_t *out)
{
    const double s = sc->s;
    if (c->q->asym) {
        const double z = (double)sc->z, top = (double)c->levels;
        for (size_t i = 0; i < n; i++) {
            double v = x[i] / s;
            v = v > 512 ? 512 : v < -512 ? -512 : v;
            v = rne_int(v) + z;
            v = v < 0 ? 0 : v > top ? top : v;
            out[i] = (int32_t)v;
        }
    } else {
        const double top = (double)c->qmax;
        for (size_t i = 0; i < n; i++) {
            double v = x[i] / s;
            v = v > 512 ? 512 : v < -512 ? -512 : v;
            v = rne_int(v);
            v = v < -top ? -top : v > top ? top : v;
            out[i] = (int32_t)v;
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define INT_AVX2 1

/* int_codes four at a time: the division is IEEE's, and for values that are
 * not NaN min/max are the scalar clamps */
__attribute__((target("avx2"))) static void int_codes_avx2(const intctx_t *c, const intscale_t *sc,
                                                           const double *x, size_t n, int32_t *out)
{
    const __m256d s = _mm256_set1_pd(sc->s), big = _mm256_set1_pd(0x1.8p52);
    const __m256d c512 = _mm256_set1_pd(512), m512 = _mm256_set1_pd(-512);
    const int asym = c->q->asym;
    const __m256d lo = _mm256_set1_pd(asym ? 0.0 : -(double)c->qmax);
    const __m256d hi = _mm256_set1_pd(asym ? (double)c->levels : (double)c->qmax);
    const __m256d z = _mm256_set1_pd((double)sc->z); /* 0 when symmetric: exact */
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d v = _mm256_div_pd(_mm256_loadu_pd(x + i), s);
        v = _mm256_min_pd(c512, _mm256_max_pd(m512, v));
        v = _mm256_add_pd(_mm256_sub_pd(_mm256_add_pd(v, big), big), z);
        v = _mm256_min_pd(hi, _mm256_max_pd(lo, v));
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvttpd_epi32(v));
    }
    if (i < n)
        int_codes(c, sc, x + i, n - i, out + i);
}
#endif

static double int_value(const intscale_t *sc, int64_t c)
{
    return (double)(c - sc->z) * sc->s;
}

/* the clipping range of a group under the calibration */
static void int_range(const intctx_t *c, const double *x, size_t n, double *work, double *lo,
                      double *hi)
{
    const fpl_quant_t *q = c->q;
    double mn = INFINITY, mx = -INFINITY; /* inputs are finite: no NaN rules needed */
    for (size_t i = 0; i < n; i++) {
        mn = x[i] < mn ? x[i] : mn;
        mx = x[i] > mx ? x[i] : mx;
    }
    double amax = -mn > mx ? -mn : mx;
    *lo = q->asym ? mn : -amax;
    *hi = q->asym ? mx : amax;
    if (q->calib == FPL_CALIB_PERCENTILE && n > 1) {
        for (size_t i = 0; i < n; i++)
            work[i] = q->asym ? x[i] : fabs(x[i]);
        qsort(work, n, sizeof *work, cmp_dbl);
        *hi = pct(work, n, q->percentile);
        *lo = q->asym ? pct(work, n, 100 - q->percentile) : -*hi;
    } else if (q->calib == FPL_CALIB_MSE) {
        double best = INFINITY, blo = *lo, bhi = *hi, mid = q->asym ? (mn + mx) / 2 : 0;
        double half = q->asym ? (mx - mn) / 2 : amax;
        for (int k = 100; k >= 50; k--) {
            double a = k / 100.0, l = mid - a * half, h = mid + a * half;
            intscale_t sc = int_scale(c, l, h);
            double e = 0;
            for (size_t i = 0; i < n && e < best; i++) {
                double d = x[i] - int_value(&sc, int_code(c, &sc, x[i]));
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

int fpl__quant_int_pack(const fpl_quant_t *q, const double *x, size_t n, size_t g, uint8_t *out)
{
    enum { CHUNK = 256 };
    bitw_t w = {out, 0, 0};
    double *work = q->calib == FPL_CALIB_PERCENTILE ? malloc(g * sizeof *work) : NULL;
    if (q->calib == FPL_CALIB_PERCENTILE && !work)
        return fpl__fail(FPL_ENOMEM, "out of memory");
    intctx_t c;
    intctx_init(&c, q);
    int32_t codes[CHUNK];
    const uint64_t mask = ((uint64_t)1 << q->bits) - 1;
    const int simd = fpl__quant_simd();
    for (size_t b = 0; b < n / g; b++) {
        const double *xg = x + b * g;
        double lo, hi;
        int_range(&c, xg, g, work, &lo, &hi);
        intscale_t sc = int_scale(&c, lo, hi);
        put_bits(&w, sc.scode, q->scale.nbits);
        if (q->asym)
            put_bits(&w, (uint64_t)sc.z, q->bits);
        for (size_t i0 = 0; i0 < g; i0 += CHUNK) {
            size_t m = g - i0 < CHUNK ? g - i0 : CHUNK;
#ifdef INT_AVX2
            if (simd)
                int_codes_avx2(&c, &sc, xg + i0, m, codes);
            else
#endif
                int_codes(&c, &sc, xg + i0, m, codes);
            for (size_t i = 0; i < m; i++)
                put_bits(&w, (uint64_t)(int64_t)codes[i] & mask, q->bits);
        }
    }
    flush_bits(&w);
    free(work);
    return FPL_OK;
}

/* the stored scale's value: binary32 straight from its bits, formats of at
 * most 8 bits from a table, the rest through fpl_format_decode */
typedef struct {
    const fpl_format_t *f;
    int how; /* 0: decode, 1: binary32, 2: table */
    double table[256];
} scale_dec_t;

static void scale_dec_init(scale_dec_t *d, const fpl_format_t *f)
{
    d->f = f;
    d->how = 0;
    if (f->nbits == 32 && f->ebits == 8 && f->mbits == 23 && f->bias == 127 && f->has_sign &&
        f->subnormals && f->specials == FPL_SPECIALS_IEEE) {
        d->how = 1;
    } else if (f->nbits <= 8) {
        d->how = 2;
        for (uint64_t k = 0; k < ((uint64_t)1 << f->nbits); k++)
            d->table[k] = fpl_format_decode(f, k);
    }
}

static inline double scale_dec(const scale_dec_t *d, uint64_t code)
{
    if (d->how == 1) {
        uint32_t b = (uint32_t)code;
        float v;
        memcpy(&v, &b, sizeof v);
        if (!isnan(v)) /* a NaN keeps fpl_format_decode's rule */
            return (double)v;
    } else if (d->how == 2) {
        return d->table[code];
    }
    return fpl_format_decode(d->f, code);
}

void fpl__quant_int_unpack(const fpl_quant_t *q, const uint8_t *in, size_t n, size_t g,
                           size_t in_bytes, double *y)
{
    bitr_t r = {in, in + in_bytes, 0, 0};
    scale_dec_t d;
    scale_dec_init(&d, &q->scale);
    const int bits = q->bits;
    const int64_t half = (int64_t)1 << (bits - 1);
    for (size_t b = 0; b < n / g; b++) {
        const double s = scale_dec(&d, get_bits(&r, q->scale.nbits));
        double *yg = y + b * g;
        if (q->asym) {
            const int64_t z = (int64_t)get_bits(&r, bits);
            for (size_t i = 0; i < g; i++)
                yg[i] = (double)((int64_t)get_bits(&r, bits) - z) * s;
        } else {
            for (size_t i = 0; i < g; i++)
                yg[i] = (double)((int64_t)(get_bits(&r, bits) ^ (uint64_t)half) - half) * s;
        }
    }
}
