/* arith_vec.c -- reductions under an accumulation policy, matmul, and
 * elementwise operations in a format */
#include <math.h>
#include <stdlib.h>

#include "acc_align.h"
#include "arith.h"
#include "arith_simd.h"
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

/* ---- the fast accumulator ----------------------------------------------
 * For |h| strictly inside (2^emin, max_finite) of a plain format with
 * m <= 50 mantissa bits, rounding a binary64 h to the format discards a fixed
 * number S = 52 - m of low bits of its encoding, and the encoding is monotone
 * and continuous across binades, so rounding is integer arithmetic on the
 * bits of |h|:
 *   RNE: (a + 2^(S-1) - 1 + bit S of a) with the low S bits cleared;
 *   RTZ: a with the low S bits cleared;
 *   SR:  (a + ((~u) >> (64 - S))) with the low S bits cleared, which carries
 *        exactly when u < rem * 2^(64-S), increment()'s rule.
 * add_once rounds the round-to-odd value of s + p, whose encoding is a - 1,
 * a or a + 1 (a = RN(s + p), TwoSum error l != 0) and a itself when l = 0.
 * The three give the same result unless the low S bits of a sit next to the
 * rounding boundary; in that case, and outside the range, add_once decides.
 * The check is off the dependency chain s -> s', which is what bounds a
 * sequential dot product. */
typedef struct {
    int ok;        /* the fast path applies (format, mode) */
    int S;         /* discarded bits in the normal range */
    uint64_t mask; /* 2^S - 1 */
    uint64_t lo;   /* bits of 2^emin: fast for lo < |h| < hi */
    uint64_t span; /* hi - lo - 1, hi = bits of max_finite */
    int zero_ok;   /* an exact zero keeps its sign (not FNUZ) */
} fastacc_t;

static void fastacc_init(fastacc_t *F, const rounder_t *r)
{
    const fpl_format_t *f = r->P.f;
    F->ok = 0;
    if (r->wide || f->kind != FPL_KIND_FLOAT || !r->P.plain || f->mbits > 50 || f->mbits < 1)
        return;
    if (r->mode != FPL_RNE && r->mode != FPL_RTZ && r->mode != FPL_SR)
        return;
    uint64_t lo = fpl__bits(fpl__pow2(f->emin)), hi = fpl__bits(f->max_finite);
    if (!(f->max_finite > fpl__pow2(f->emin)) || !isfinite(f->max_finite))
        return;
    F->S = 52 - f->mbits;
    F->mask = ((uint64_t)1 << F->S) - 1;
    F->lo = lo;
    F->span = hi - lo - 1;
    F->zero_ok = f->specials != FPL_SPECIALS_FNUZ;
    F->ok = 1;
}

/* add_once with the draw u given, for the rare cases the fast path leaves
 * (RNE, RTZ or SR, not wide: no exact-zero or wide special case applies) */
static __attribute__((noinline, cold)) double add_slow(const rounder_t *r, double s, double p,
                                                       uint64_t u)
{
    if (r->mode != FPL_SR)
        return add_once(r, s, p, NULL);
    double h = s + p;
    double bp = h - s;
    double l = (s - (h - bp)) + (p - bp);
    if (l != 0 && isfinite(h)) { /* round to odd, as add_once */
        uint64_t hb = fpl__bits(h);
        if ((l < 0) != (h < 0))
            hb -= 1;
        h = fpl__double(hb | 1);
    }
    return round_float_one(&r->P, h, FPL_SR, u);
}

/* s + p rounded once to r's format in mode MODE (a constant), u the draw */
FPL_INLINE double add_fast(const rounder_t *r, const fastacc_t *F, double s, double p, uint64_t u,
                           const fpl_rmode_t MODE)
{
    double h = s + p;
    uint64_t b = fpl__bits(h), a = b & ~SIGN_BIT, y, edge;
    switch (MODE) {
    case FPL_RNE:
        y = a + ((F->mask >> 1) + ((a >> F->S) & 1));
        edge = ((a - (F->mask >> 1)) & F->mask) < 3; /* within one of the tie */
        break;
    case FPL_RTZ:
        y = a;
        edge = ((a + 1) & F->mask) < 2; /* low bits 0 or all ones */
        break;
    default: /* SR */
        y = a + ((~u) >> (64 - F->S));
        edge = ((y + 1) & F->mask) < 2;
        break;
    }
    double res = fpl__double((y & ~F->mask) | (b & SIGN_BIT));
    double bp = h - s;
    double l = (s - (h - bp)) + (p - bp); /* TwoSum: h + l = s + p */
    int inside = a - F->lo - 1 < F->span || (a == 0 && F->zero_ok);
    if (__builtin_expect(!inside || (edge && l != 0), 0))
        return add_slow(r, s, p, u);
    return res;
}

typedef struct {
    rounder_t acc, prod, promote;
    int prod_exact;
    fastacc_t fast; /* of acc */
} reduce_t;

/* The sequential loop with exact products, one specialisation per mode. */
#define SEQ_FAST_LOOP(MODE, DRAW)                                                                  \
    do {                                                                                           \
        if (y)                                                                                     \
            for (size_t i = 0; i < n; i++)                                                         \
                s = add_fast(&R->acc, &R->fast, s, x[i] * y[i], DRAW, MODE);                       \
        else                                                                                       \
            for (size_t i = 0; i < n; i++)                                                         \
                s = add_fast(&R->acc, &R->fast, s, x[i], DRAW, MODE);                              \
    } while (0)

/* IEEE binary32 with RNE: the running sum is a binary32 value, and while
 * it is not a NaN and the product is a binary32 value too, binary32
 * addition is the definition (add_once's native path) with a three-cycle
 * dependency chain. */
#define SEQ_F32_STEP(P)                                                                            \
    do {                                                                                           \
        double p_ = (P);                                                                           \
        float pf_ = (float)p_;                                                                     \
        if (__builtin_expect((double)pf_ == p_ && sf == sf, 1))                                    \
            sf = sf + pf_;                                                                         \
        else                                                                                       \
            sf = (float)add_fast(&R->acc, &R->fast, (double)sf, p_, 0, FPL_RNE);                   \
    } while (0)

static double seq_fast(const reduce_t *R, const double *x, const double *y, size_t n, fpl_sr_t *sr)
{
    double s = 0;
    switch (R->acc.mode) {
    case FPL_RNE:
        if (R->acc.native32) {
            float sf = 0;
            if (y)
                for (size_t i = 0; i < n; i++)
                    SEQ_F32_STEP(x[i] * y[i]);
            else
                for (size_t i = 0; i < n; i++)
                    SEQ_F32_STEP(x[i]);
            return (double)sf;
        }
        SEQ_FAST_LOOP(FPL_RNE, 0);
        break;
    case FPL_RTZ: SEQ_FAST_LOOP(FPL_RTZ, 0); break;
    default:
        if (sr) {
            uint64_t c = sr->counter;
            SEQ_FAST_LOOP(FPL_SR, sr_at(sr, c + i));
            sr->counter = c + n;
        } else {
            SEQ_FAST_LOOP(FPL_SR, 0);
        }
        break;
    }
    return s;
}

FPL_INLINE double product(const reduce_t *R, double x, double y, fpl_sr_t *sr)
{
    return R->prod_exact ? x * y : mul_once(&R->prod, x, y, sr);
}

static double seq_dot(const reduce_t *R, const double *x, const double *y, size_t n, fpl_sr_t *sr)
{
    if (R->fast.ok && R->prod_exact)
        return seq_fast(R, x, y, n, sr);
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s = add_once(&R->acc, s, y ? product(R, x[i], y[i], sr) : x[i], sr);
    return s;
}

/* one addition of a reduction: the fast path when it applies */
FPL_INLINE double add_acc(const reduce_t *R, double s, double p, fpl_sr_t *sr)
{
    if (!R->fast.ok)
        return add_once(&R->acc, s, p, sr);
    if (R->acc.native32) { /* add_once's native path first: it is faster */
        float sf = (float)s, pf = (float)p;
        if ((double)sf == s && (double)pf == p)
            return (double)(sf + pf);
    }
    switch (R->acc.mode) {
    case FPL_RNE: return add_fast(&R->acc, &R->fast, s, p, 0, FPL_RNE);
    case FPL_RTZ: return add_fast(&R->acc, &R->fast, s, p, 0, FPL_RTZ);
    default: return add_fast(&R->acc, &R->fast, s, p, draw(FPL_SR, sr), FPL_SR);
    }
}

static double pairwise(const reduce_t *R, const double *p, size_t n, fpl_sr_t *sr)
{
    if (n == 1)
        return add_acc(R, 0.0, p[0], sr);
    if (n == 2)
        return add_acc(R, p[0], p[1], sr);
    size_t h = n / 2;
    double a = pairwise(R, p, h, sr);
    double b = pairwise(R, p + h, n - h, sr);
    return add_acc(R, a, b, sr);
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
    fastacc_init(&R.fast, &R.acc);
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

/* ---- matrix products -----------------------------------------------------
 * Exact products, sequential order and an accumulator in RNE or RTZ (binary32
 * RNE by conversion, the others as add_fast does), and the exact policy, go
 * to the vectorised kernels (arith_simd.c),
 * which give every output the bits of fpl_dot; everything else is computed
 * output by output. */

static double add_fix(const void *ctx, double s, double p)
{
    return add_once((const rounder_t *)ctx, s, p, NULL);
}

static int matmul_fast(const fpl_policy_t *p, const double *A, const double *B, double *C, size_t m,
                       size_t k, size_t n, fpl_sr_t *sr)
{
    if (m == 0 || k == 0 || n == 0)
        return -1;
    if (p->exact) /* the compensated dot product, not rounded */
        return fpl__matmul_dot2(A, B, C, m, k, n);
    if (p->align_frac || p->order != FPL_ORDER_SEQ || !p->prod_exact || (p->rnd != FPL_RNE && p->rnd != FPL_RTZ))
        return -1;
    rounder_t r;
    rounder_init(&r, &p->acc, p->rnd);
    if (r.native32) {
        if (fpl__matmul_f32_rne(A, B, C, m, k, n, add_fix, &r) != 0)
            return -1;
    } else {
        fastacc_t F;
        fastacc_init(&F, &r);
        if (!F.ok)
            return -1;
        fpl__narrow_t np = {F.S, F.lo, F.lo + F.span + 1, F.zero_ok, p->rnd == FPL_RTZ};
        if (fpl__matmul_narrow(A, B, C, m, k, n, &np, add_fix, &r) != 0)
            return -1;
    }
    /* then each entry rounded to out (RNE, RTZ: no draws, order irrelevant) */
    fpl_round_array(&p->out, C, C, m * n, p->rnd, sr);
    return 0;
}

void fpl_matvec(const fpl_policy_t *p, const double *W, const double *x, double *y, size_t rows,
                size_t cols, fpl_sr_t *sr)
{
    if (matmul_fast(p, x, W, y, 1, cols, rows, sr) == 0)
        return;
    for (size_t i = 0; i < rows; i++) {
        double v = fpl_dot(p, W + i * cols, x, cols, sr);
        y[i] = p->exact ? v : fpl_round(&p->out, v, p->rnd, sr);
    }
}

void fpl_matmul(const fpl_policy_t *p, const double *A, const double *B, double *C, size_t m,
                size_t k, size_t n, fpl_sr_t *sr)
{
    if (matmul_fast(p, A, B, C, m, k, n, sr) == 0)
        return;
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
