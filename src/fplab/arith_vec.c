/* arith_vec.c -- reductions under an accumulation policy, matmul, and
 * elementwise operations in a format */
#include <math.h>
#include <stdlib.h>

#include "acc_align.h"
#include "arith.h"
#include "error.h"
#include "internal.h"
#include "round_impl.h"

/* The rounding of one role: a format's parameters plus the mode. */
typedef struct {
    fparams_t P;
    fpl_rmode_t mode;
    int wide;      /* >= 51 mantissa bits: binary64 itself (RNE only) */
    int native32;  /* IEEE binary32 with RNE and inf overflow: use float */
} rounder_t;

static int is_binary32(const fpl_format_t *f)
{
    return f->kind == FPL_KIND_FLOAT && f->ebits == 8 && f->mbits == 23 && f->bias == 127 &&
           f->subnormals && f->has_sign && f->has_zero && f->specials == FPL_SPECIALS_IEEE &&
           f->overflow == FPL_OVERFLOW_INF;
}

static void rounder_init(rounder_t *r, const fpl_format_t *f, fpl_rmode_t mode)
{
    fparams_init(&r->P, f);
    r->mode = mode;
    r->wide = f->mbits >= 51;
    r->native32 = is_binary32(f) && mode == FPL_RNE;
}

FPL_INLINE uint64_t draw(fpl_rmode_t mode, fpl_sr_t *sr)
{
    return mode == FPL_SR && sr ? sr_at(sr, sr->counter++) : 0;
}

FPL_INLINE double round_to(const rounder_t *r, double x, fpl_sr_t *sr)
{
    if (r->wide)
        return x;
    return round_float_one(&r->P, x, r->mode, draw(r->mode, sr));
}

/* s + p, exact, then rounded once to r's format. */
FPL_INLINE double add_once(const rounder_t *r, double s, double p, fpl_sr_t *sr)
{
    double h = s + p;
    if (h == 0 && r->mode == FPL_RDOWN) /* IEEE 754: an exact zero sum is -0 rounding down */
        h = (signbit(s) || signbit(p)) ? -0.0 : 0.0;
    if (r->wide)
        return h;
    if (r->native32) {
        float sf = (float)s, pf = (float)p;
        if ((double)sf == s && (double)pf == p)
            return (double)(sf + pf); /* IEEE binary32 addition, RNE */
    }
    /* TwoSum (Knuth): h + l == s + p exactly */
    double bp = h - s;
    double l = (s - (h - bp)) + (p - bp);
    if (l != 0 && isfinite(h)) { /* round to odd: toward zero, last bit set */
        uint64_t hb = fpl__bits(h);
        if ((l < 0) != (h < 0))
            hb -= 1;
        h = fpl__double(hb | 1);
    }
    return round_float_one(&r->P, h, r->mode, draw(r->mode, sr));
}

/* x * y, exact, then rounded once. */
FPL_INLINE double mul_once(const rounder_t *r, double x, double y, fpl_sr_t *sr)
{
    double h = x * y;
    if (r->wide)
        return h;
    double l = fma(x, y, -h); /* TwoProd: h + l == x * y exactly */
    if (l != 0 && isfinite(h)) {
        uint64_t hb = fpl__bits(h);
        if ((l < 0) != (h < 0))
            hb -= 1;
        h = fpl__double(hb | 1);
    }
    return round_float_one(&r->P, h, r->mode, draw(r->mode, sr));
}

/* ---- compensated reference (Ogita, Rump & Oishi, Dot2) ------------------ */

static double dot2(const double *x, const double *y, size_t n)
{
    double s = 0, c = 0;
    for (size_t i = 0; i < n; i++) {
        double p = x[i] * y[i];
        double pe = fma(x[i], y[i], -p);
        double t = s + p;
        double bp = t - s;
        double se = (s - (t - bp)) + (p - bp);
        s = t;
        c += pe + se;
    }
    return s + c;
}

/* ---- emulated reductions ------------------------------------------------ */

typedef struct {
    rounder_t acc, prod, promote;
    int prod_exact;
} reduce_t;

FPL_INLINE double product(const reduce_t *R, double x, double y, fpl_sr_t *sr)
{
    return R->prod_exact ? x * y : mul_once(&R->prod, x, y, sr);
}

static double seq_dot(const reduce_t *R, const double *x, const double *y, size_t n,
                      fpl_sr_t *sr)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s = add_once(&R->acc, s, y ? product(R, x[i], y[i], sr) : x[i], sr);
    return s;
}

static double pairwise(const reduce_t *R, const double *p, size_t n, fpl_sr_t *sr)
{
    if (n == 1)
        return add_once(&R->acc, 0.0, p[0], sr);
    if (n == 2)
        return add_once(&R->acc, p[0], p[1], sr);
    size_t h = n / 2;
    double a = pairwise(R, p, h, sr);
    double b = pairwise(R, p + h, n - h, sr);
    return add_once(&R->acc, a, b, sr);
}

double fpl_dot(const fpl_policy_t *p, const double *x, const double *y, size_t n, fpl_sr_t *sr)
{
    if (n == 0)
        return 0.0;
    if (p->exact) {
        if (y)
            return dot2(x, y, n);
        double s = 0, c = 0;
        for (size_t i = 0; i < n; i++) { /* compensated sum */
            double t = s + x[i], bp = t - s;
            c += (s - (t - bp)) + (x[i] - bp);
            s = t;
        }
        return s + c;
    }
    if (p->align_frac) /* acc=align:F:G, the tensor-core model (acc_align.c) */
        return fpl__dot_align(p, x, y, n, sr);
    reduce_t R;
    rounder_init(&R.acc, &p->acc, p->rnd);
    rounder_init(&R.prod, &p->prod, p->rnd);
    rounder_init(&R.promote, &p->promote, p->rnd);
    R.prod_exact = p->prod_exact || !y;
    switch (p->order) {
    case FPL_ORDER_SEQ:
        return seq_dot(&R, x, y, n, sr);
    case FPL_ORDER_BLOCKED: {
        double t = 0;
        for (size_t i = 0; i < n; i += p->block) {
            size_t len = n - i < p->block ? n - i : p->block;
            double b = seq_dot(&R, x + i, y ? y + i : NULL, len, sr);
            t = add_once(&R.promote, t, b, sr);
        }
        return t;
    }
    default: {
        double *prods = malloc(n * sizeof *prods);
        if (!prods) /* out of memory: sequential needs no buffer */
            return seq_dot(&R, x, y, n, sr);
        for (size_t i = 0; i < n; i++)
            prods[i] = y ? product(&R, x[i], y[i], sr) : x[i];
        double s = pairwise(&R, prods, n, sr);
        free(prods);
        return s;
    }
    }
}

double fpl_sum(const fpl_policy_t *p, const double *x, size_t n, fpl_sr_t *sr)
{
    return fpl_dot(p, x, NULL, n, sr);
}

void fpl_matvec(const fpl_policy_t *p, const double *W, const double *x, double *y, size_t rows,
                size_t cols, fpl_sr_t *sr)
{
    for (size_t i = 0; i < rows; i++) {
        double v = fpl_dot(p, W + i * cols, x, cols, sr);
        y[i] = p->exact ? v : fpl_round(&p->out, v, p->rnd, sr);
    }
}

void fpl_matmul(const fpl_policy_t *p, const double *A, const double *B, double *C, size_t m,
                size_t k, size_t n, fpl_sr_t *sr)
{
    for (size_t i = 0; i < m; i++)
        fpl_matvec(p, B, A + i * k, C + i * n, n, k, sr);
}

int fpl_vec_op(const fpl_format_t *f, fpl_op_t op, const double *x, const double *y, double *z,
               size_t n, fpl_rmode_t mode, fpl_sr_t *sr)
{
    if (op != FPL_OP_ADD && op != FPL_OP_SUB && op != FPL_OP_MUL)
        return fpl__fail(FPL_EINVAL, "fpl_vec_op: %s is not elementwise add, sub or mul",
                         fpl_op_name(op));
    if (f->kind != FPL_KIND_FLOAT || (f->mbits > 50 && mode != FPL_RNE))
        return fpl__fail(FPL_EINVAL, "fpl_vec_op: format %s with %s is not supported", f->name,
                         fpl_rmode_name(mode));
    rounder_t r;
    rounder_init(&r, f, mode);
    r.native32 = 0;
    for (size_t i = 0; i < n; i++) {
        switch (op) {
        case FPL_OP_ADD: z[i] = add_once(&r, x[i], y[i], sr); break;
        case FPL_OP_SUB: z[i] = add_once(&r, x[i], -y[i], sr); break;
        default: z[i] = mul_once(&r, x[i], y[i], sr); break;
        }
    }
    return FPL_OK;
}
