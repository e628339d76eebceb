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

static intscale_t int_scale(const fpl_quant_t *q, double lo, double hi)
{
    intscale_t r = {1.0, 0, 0};
    int64_t levels = (1LL << q->bits) - 1, qmax = (1LL << (q->bits - 1)) - 1;
    if (q->asym) {
        if (hi == lo) { /* a constant group is stored exactly: s = |c| */
            r.s = lo != 0 ? fabs(lo) : 1.0;
            r.z = lo < 0 ? 1 : 0;
        } else {
            r.s = (hi - lo) / (double)levels;
        }
    } else {
        r.s = hi > 0 ? hi / (double)qmax : 1.0;
    }
    double st = fpl_round(&q->scale, r.s, FPL_RNE, NULL);
    if (!(st > 0))
        st = q->scale.min_positive; /* a scale that underflows the format */
    r.s = st;
    fpl_format_encode(&q->scale, st, &r.scode);
    if (q->asym && hi != lo) {
        double z = nearbyint(-lo / r.s);
        r.z = z < 0 ? 0 : z > (double)levels ? levels : (int64_t)z;
    }
    return r;
}

static int64_t int_code(const fpl_quant_t *q, const intscale_t *sc, double x)
{
    int64_t levels = (1LL << q->bits) - 1, qmax = (1LL << (q->bits - 1)) - 1;
    double v = x / sc->s;
    v = v > 512 ? 512 : v < -512 ? -512 : v; /* beyond every code: clamped below */
    v = rne_int(v);
    if (q->asym) {
        v += (double)sc->z;
        return v < 0 ? 0 : v > (double)levels ? levels : (int64_t)v;
    }
    return v < -(double)qmax ? -qmax : v > (double)qmax ? qmax : (int64_t)v;
}

static double int_value(const intscale_t *sc, int64_t c)
{
    return (double)(c - sc->z) * sc->s;
}

/* the clipping range of a group under the calibration */
static void int_range(const fpl_quant_t *q, const double *x, size_t n, double *work, double *lo,
                      double *hi)
{
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
            intscale_t sc = int_scale(q, l, h);
            double e = 0;
            for (size_t i = 0; i < n && e < best; i++) {
                double d = x[i] - int_value(&sc, int_code(q, &sc, x[i]));
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
    bitw_t w = {out, 0, 0};
    double *work = q->calib == FPL_CALIB_PERCENTILE ? malloc(g * sizeof *work) : NULL;
    if (q->calib == FPL_CALIB_PERCENTILE && !work)
        return fpl__fail(FPL_ENOMEM, "out of memory");
    for (size_t b = 0; b < n / g; b++) {
        const double *xg = x + b * g;
        double lo, hi;
        int_range(q, xg, g, work, &lo, &hi);
        intscale_t sc = int_scale(q, lo, hi);
        put_bits(&w, sc.scode, q->scale.nbits);
        if (q->asym)
            put_bits(&w, (uint64_t)sc.z, q->bits);
        for (size_t i = 0; i < g; i++)
            put_bits(&w, (uint64_t)int_code(q, &sc, xg[i]), q->bits);
    }
    flush_bits(&w);
    free(work);
    return FPL_OK;
}

void fpl__quant_int_unpack(const fpl_quant_t *q, const uint8_t *in, size_t n, size_t g,
                           size_t in_bytes, double *y)
{
    bitr_t r = {in, in + in_bytes, 0, 0};
    for (size_t b = 0; b < n / g; b++) {
        intscale_t sc = {fpl_format_decode(&q->scale, get_bits(&r, q->scale.nbits)), 0, 0};
        if (q->asym)
            sc.z = (int64_t)get_bits(&r, q->bits);
        for (size_t i = 0; i < g; i++) {
            uint64_t c = get_bits(&r, q->bits);
            int64_t k = q->asym ? (int64_t)c
                                : (int64_t)(c ^ (1ULL << (q->bits - 1))) - (1LL << (q->bits - 1));
            y[b * g + i] = int_value(&sc, k);
        }
    }
}
