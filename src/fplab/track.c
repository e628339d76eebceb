/* track.c -- twin runs of a chain of layers and the error metrics */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "internal.h"
#include "track.h"

/* spacing of f's values at |v| */
static double ulp_of(const fpl_format_t *f, double v)
{
    if (f->kind == FPL_KIND_INT)
        return 1.0;
    double a = fabs(v);
    int e = a >= f->min_normal ? ilogb(a) : f->emin;
    if (e > f->emax)
        e = f->emax;
    return ldexp(1.0, e - f->mbits);
}

void fpl_error_metrics(const double *a, const double *b, size_t n, const fpl_format_t *f,
                       fpl_err_t *e)
{
    double d2 = 0, b2 = 0, a2 = 0, ab = 0, mx = 0, ul = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) {
            bad = 1;
            continue;
        }
        double d = a[i] - b[i];
        d2 += d * d;
        b2 += b[i] * b[i];
        a2 += a[i] * a[i];
        ab += a[i] * b[i];
        mx = fmax(mx, fabs(d));
        ul = fmax(ul, fabs(d) / ulp_of(f, b[i]));
    }
    if (bad) {
        e->rel = e->maxabs = e->ulps = INFINITY;
        e->sqnr_db = -INFINITY;
        e->cosine = NAN;
        return;
    }
    e->rel = b2 > 0 ? sqrt(d2 / b2) : (d2 > 0 ? INFINITY : 0.0);
    e->maxabs = mx;
    e->ulps = ul;
    e->sqnr_db = d2 > 0 ? 10 * log10(b2 / d2) : INFINITY;
    e->cosine = a2 > 0 && b2 > 0 ? ab / sqrt(a2 * b2) : (a2 == b2 ? 1.0 : 0.0);
}

int fpl_track(const fpl_layer_t *L, size_t n, const double *x0, const fpl_policy_t *pol,
              fpl_sr_t *sr, fpl_err_t *input_err, fpl_track_report_t *rep)
{
    size_t maxd = L[0].in_dim;
    for (size_t k = 0; k < n; k++) {
        if (k > 0 && L[k].in_dim != L[k - 1].out_dim)
            return fpl__fail(FPL_EINVAL, "track: layer %zu (%s) takes %zu inputs but layer %zu gives %zu",
                             k, L[k].name, L[k].in_dim, k - 1, L[k - 1].out_dim);
        if (L[k].out_dim > maxd)
            maxd = L[k].out_dim;
    }
    double *buf = malloc(5 * maxd * sizeof *buf);
    if (!buf)
        return fpl__fail(FPL_ENOMEM, "track: out of memory");
    double *xe = buf, *xr = buf + maxd, *ye = buf + 2 * maxd, *yx = buf + 3 * maxd,
           *yr = buf + 4 * maxd;
    fpl_policy_t exact;
    fpl_policy_exact(&exact);
    memcpy(xr, x0, L[0].in_dim * sizeof *xr);
    if (pol->exact)
        memcpy(xe, x0, L[0].in_dim * sizeof *xe);
    else
        for (size_t i = 0; i < L[0].in_dim; i++)
            xe[i] = fpl_round(&pol->a, x0[i], pol->rnd, sr);
    fpl_error_metrics(xe, xr, L[0].in_dim, &pol->a, input_err);
    double in_rel = input_err->rel;
    int st = FPL_OK;
    for (size_t k = 0; k < n && !st; k++) {
        size_t m = L[k].out_dim;
        if ((st = L[k].forward(&L[k], xe, ye, pol, sr)) ||
            (st = L[k].forward(&L[k], xe, yx, &exact, NULL)) ||
            (st = L[k].forward(&L[k], xr, yr, &exact, NULL)))
            break;
        fpl_error_metrics(ye, yr, m, &pol->out, &rep[k].total);
        fpl_error_metrics(ye, yx, m, &pol->out, &rep[k].introduced);
        fpl_error_metrics(yx, yr, m, &pol->out, &rep[k].inherited);
        rep[k].amplification = in_rel > 0 && isfinite(in_rel) ? rep[k].inherited.rel / in_rel : NAN;
        in_rel = rep[k].total.rel;
        memcpy(xe, ye, m * sizeof *xe);
        memcpy(xr, yr, m * sizeof *xr);
    }
    free(buf);
    return st;
}
