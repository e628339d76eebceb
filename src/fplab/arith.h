/* arith.h -- correctly rounded scalar arithmetic in a format */
#ifndef FPL_ARITH_H
#define FPL_ARITH_H

#include "format.h"
#include "round.h"

/* Operations, with the number of operands each takes. */
typedef enum {
    FPL_OP_ADD = 0, /* a + b */
    FPL_OP_SUB,     /* a - b */
    FPL_OP_MUL,     /* a * b */
    FPL_OP_DIV,     /* a / b */
    FPL_OP_SQRT,    /* sqrt(a) */
    FPL_OP_FMA,     /* a * b + c, one rounding */
    FPL_OP_EXP,     /* exp(a) */
    FPL_OP_LOG,     /* log(a), natural */
    FPL_OP_TANH     /* tanh(a) */
} fpl_op_t;
#define FPL_NOPS 9

/* Parse an operation name ("add", "sub", "mul", "div", "sqrt", "fma", "exp",
 * "log", "tanh"). Returns 0 or FPL_EINVAL. */
int fpl_op_parse(const char *s, fpl_op_t *op);
const char *fpl_op_name(fpl_op_t op);
/* Number of operands of op (1, 2 or 3). */
int fpl_op_arity(fpl_op_t op);

/* The exact result of op on the operands, rounded once to format f in
 * `mode` (stochastic rounding draws one value from sr).  The operands are
 * doubles; for an operation "in the format" they should be values of f
 * (fpl_format_contains), which this function does not require.  IEEE 754
 * special cases apply (0/0, sqrt(-1), inf-inf give NaN; x/0 gives +-inf, then
 * the format's overflow policy), and the sign of an exact zero sum is +0
 * except in RDOWN, where it is -0.  add, sub, mul and fma are computed
 * exactly with MPFR before the single rounding; div, sqrt, exp, log and tanh
 * are computed to p + 160 bits with a sticky bit, which determines the
 * correctly rounded result in every mode, stochastic included. */
double fpl_arith(const fpl_format_t *f, fpl_op_t op, const double *args, fpl_rmode_t mode,
                 fpl_sr_t *sr);

#endif /* FPL_ARITH_H */
