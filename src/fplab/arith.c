/* arith.c -- correctly rounded scalar operations through MPFR */
#include <math.h>
#include <string.h>

#include "arith.h"
#include "error.h"
#include "internal.h"

static const struct {
    const char *name;
    int arity;
} ops[FPL_NOPS] = {{"add", 2}, {"sub", 2}, {"mul", 2}, {"div", 2},  {"sqrt", 1},
                   {"fma", 3}, {"exp", 1}, {"log", 1}, {"tanh", 1}, {"expm1", 1}};

int fpl_op_parse(const char *s, fpl_op_t *op)
{
    for (int i = 0; i < FPL_NOPS; i++)
        if (!strcmp(s, ops[i].name)) {
            *op = (fpl_op_t)i;
            return FPL_OK;
        }
    return fpl__fail(FPL_EINVAL,
                     "unknown operation '%s' (expected add, sub, mul, div, sqrt, fma, exp, log, tanh, "
                     "expm1)",
                     s);
}

const char *fpl_op_name(fpl_op_t op) { return (unsigned)op < FPL_NOPS ? ops[op].name : "?"; }
int fpl_op_arity(fpl_op_t op) { return (unsigned)op < FPL_NOPS ? ops[op].arity : 0; }

/* Precision that holds a + b exactly for doubles a, b (or products of two). */
static mpfr_prec_t exact_sum_prec(const mpfr_t a, const mpfr_t b)
{
    if (mpfr_zero_p(a) || mpfr_zero_p(b) || !mpfr_number_p(a) || !mpfr_number_p(b))
        return mpfr_get_prec(a) + mpfr_get_prec(b) + 2;
    mpfr_exp_t lo_a = mpfr_get_exp(a) - mpfr_get_prec(a), lo_b = mpfr_get_exp(b) - mpfr_get_prec(b);
    mpfr_exp_t hi = mpfr_get_exp(a) > mpfr_get_exp(b) ? mpfr_get_exp(a) : mpfr_get_exp(b);
    mpfr_exp_t lo = lo_a < lo_b ? lo_a : lo_b;
    return (mpfr_prec_t)(hi - lo + 2);
}

/* exp or expm1 through binary64 when that decides the rounding (arith.h):
 * returns 1 with the result in *res, 0 when MPFR must decide.  The preimage
 * of a value of f on one side of zero is an interval (rounding is monotone,
 * and the NaN of an FN format's overflow takes a whole tail), so when both
 * ends of [y - 4 ulps, y + 4 ulps], which holds the exact value, round to
 * the same value, the exact value does too. */
static int exp_fast(const fpl_format_t *f, fpl_op_t op, double x, fpl_rmode_t mode, double *res)
{
    if (mode == FPL_SR || f->kind != FPL_KIND_FLOAT || f->mbits > 40 || !isfinite(x) || x == 0)
        return 0;
    double y = op == FPL_OP_EXP ? exp(x) : expm1(x);
    /* away from binary64's overflow and subnormals, where libm's accuracy
     * is not promised, and from zero */
    if (!(fabs(y) >= 0x1p-1000 && fabs(y) <= 0x1p1000))
        return 0;
    double lo = y, hi = y;
    for (int k = 0; k < 4; k++) {
        lo = nextafter(lo, -INFINITY);
        hi = nextafter(hi, INFINITY);
    }
    double a = fpl_round(f, lo, mode, NULL), b = fpl_round(f, hi, mode, NULL);
    if (!(isnan(a) && isnan(b)) && fpl__bits(a) != fpl__bits(b))
        return 0;
    *res = a;
    return 1;
}

double fpl_arith(const fpl_format_t *f, fpl_op_t op, const double *args, fpl_rmode_t mode,
                 fpl_sr_t *sr)
{
    double fast;
    if ((op == FPL_OP_EXP || op == FPL_OP_EXPM1) && exp_fast(f, op, args[0], mode, &fast))
        return fast;
    /* MPFR's zero-sign rules are IEEE's with MPFR_RNDD for RDOWN */
    mpfr_rnd_t zr = mode == FPL_RDOWN ? MPFR_RNDD : MPFR_RNDN;
    mpfr_t a, b, c, r;
    mpfr_inits2(53, a, b, c, (mpfr_ptr)0);
    mpfr_init2(r, 53);
    int n = fpl_op_arity(op);
    mpfr_set_d(a, args[0], MPFR_RNDN);
    if (n > 1)
        mpfr_set_d(b, args[1], MPFR_RNDN);
    if (n > 2)
        mpfr_set_d(c, args[2], MPFR_RNDN);
    int inex = 0;
    switch (op) {
    case FPL_OP_ADD:
        mpfr_set_prec(r, exact_sum_prec(a, b));
        mpfr_add(r, a, b, zr);
        break;
    case FPL_OP_SUB:
        mpfr_set_prec(r, exact_sum_prec(a, b));
        mpfr_sub(r, a, b, zr);
        break;
    case FPL_OP_MUL:
        mpfr_set_prec(r, 106);
        mpfr_mul(r, a, b, zr);
        break;
    case FPL_OP_FMA: {
        mpfr_t p;
        mpfr_init2(p, 106);
        mpfr_mul(p, a, b, MPFR_RNDN); /* exact */
        mpfr_set_prec(r, exact_sum_prec(p, c));
        mpfr_add(r, p, c, zr);
        mpfr_clear(p);
        break;
    }
    default: {
        /* Not exact in general: p + 160 bits toward zero plus a sticky bit.
         * The open interval (r, r + ulp) holds no rounding boundary of the
         * format (its grids are >= 2^159 times coarser) nor any multiple of
         * 2^-64 of a format unit that stochastic rounding compares with, so
         * rounding r + ulp/2 is rounding the exact value. */
        mpfr_prec_t P = f->kind == FPL_KIND_INT ? 64 + 160 : f->mbits + 1 + 160;
        mpfr_set_prec(r, P);
        switch (op) {
        case FPL_OP_DIV: inex = mpfr_div(r, a, b, MPFR_RNDZ); break;
        case FPL_OP_SQRT: inex = mpfr_sqrt(r, a, MPFR_RNDZ); break;
        case FPL_OP_EXP: inex = mpfr_exp(r, a, MPFR_RNDZ); break;
        case FPL_OP_LOG: inex = mpfr_log(r, a, MPFR_RNDZ); break;
        case FPL_OP_EXPM1: inex = mpfr_expm1(r, a, MPFR_RNDZ); break;
        default: inex = mpfr_tanh(r, a, MPFR_RNDZ); break;
        }
        if (inex != 0 && mpfr_zero_p(r)) {
            /* underflow below even MPFR's exponent range (exp(-1e38)): any
             * tiny value of the right sign rounds the same in every mode */
            mpfr_set_si_2exp(r, mpfr_signbit(r) ? -1 : 1, -4000, MPFR_RNDN);
        } else if (inex != 0 && mpfr_regular_p(r)) {
            mpfr_prec_round(r, P + 1, MPFR_RNDN); /* exact */
            mpfr_t half_ulp;
            mpfr_init2(half_ulp, 2);
            mpfr_set_ui_2exp(half_ulp, 1, mpfr_get_exp(r) - P - 1, MPFR_RNDN);
            if (mpfr_signbit(r))
                mpfr_sub(r, r, half_ulp, MPFR_RNDN); /* exact at P + 1 bits */
            else
                mpfr_add(r, r, half_ulp, MPFR_RNDN);
            mpfr_clear(half_ulp);
        }
        break;
    }
    }
    double res = fpl_round_mpfr(f, r, mode, sr);
    mpfr_clears(a, b, c, r, (mpfr_ptr)0);
    return res;
}
