/* arith.h -- correctly rounded scalar arithmetic in a format */
#ifndef FPL_ARITH_H
#define FPL_ARITH_H

#include <stddef.h>

#include "format.h"
#include "policy.h"
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
    FPL_OP_TANH,    /* tanh(a) */
    FPL_OP_EXPM1    /* exp(a) - 1, without the cancellation near a = 0 */
} fpl_op_t;
#define FPL_NOPS 10

/* Parse an operation name ("add", "sub", "mul", "div", "sqrt", "fma", "exp",
 * "log", "tanh", "expm1"). Returns 0 or FPL_EINVAL. */
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
 * exactly with MPFR before the single rounding; div, sqrt, exp, log, tanh and
 * expm1 are computed to p + 160 bits with a sticky bit, which determines the
 * correctly rounded result in every mode, stochastic included.  exp and
 * expm1 first try binary64: for a float format of at most 40 fraction bits,
 * a deterministic mode and a finite nonzero a, libm's result y (within 4
 * binary64 ulps of the exact value: glibc documents 1 ulp) decides the
 * rounding when y - 4 ulps and y + 4 ulps round to the same value of f
 * (the exact value lies strictly between them and is never a rounding
 * boundary, being transcendental); otherwise MPFR does.  The tests check
 * every input of the 8- and 16-bit formats against MPFR. */
double fpl_arith(const fpl_format_t *f, fpl_op_t op, const double *args, fpl_rmode_t mode,
                 fpl_sr_t *sr);

/* ---- vector level ------------------------------------------------------
 * Reductions follow a policy's accumulation rules: each product x_i*y_i is
 * formed exactly (prod=exact; exact in binary64 when the two input formats
 * have at most 53 significant bits together) or rounded to p->prod; each
 * addition is the exact sum rounded once to p->acc (binary64 round-to-odd,
 * then the format's rounding: one correct rounding, Boldo & Melquiond 2008);
 * the order is sequential, pairwise, or blocked (K terms in p->acc, then the
 * partial sum is added into p->promote).  Stochastic rounding draws one value
 * from sr per rounding; its probabilities are exact to 2^(p-53) because the
 * exact sum is known to 53 bits plus a sticky bit.  With the exact policy
 * (fpl_policy_exact) the result is the compensated dot product Dot2 of
 * Ogita, Rump & Oishi (SISC 2005): as accurate as if computed in twice the
 * working precision, then rounded to binary64. */
double fpl_dot(const fpl_policy_t *p, const double *x, const double *y, size_t n,
               fpl_sr_t *sr);

/* sum of x_i under the policy (a dot product with y = 1, products exact) */
double fpl_sum(const fpl_policy_t *p, const double *x, size_t n, fpl_sr_t *sr);

/* y = W x for W rows x cols (row-major, a row is an output): each y_i is
 * fpl_dot(W_i, x) rounded to p->out (not rounded under the exact policy). */
void fpl_matvec(const fpl_policy_t *p, const double *W, const double *x, double *y, size_t rows,
                size_t cols, fpl_sr_t *sr);

/* C = A B^T for A m x k and B n x k (rows of B are output channels, as in a
 * linear layer Y = X W^T); C is m x n, each entry as in fpl_matvec.
 * With exact products, sequential order and RNE or RTZ (and under the exact
 * policy), fpl_matmul and fpl_matvec compute four outputs per AVX2 vector
 * when the CPU has AVX2 and FMA: each output keeps its own order and gets
 * the bits of fpl_dot; other policies go output by output. */
void fpl_matmul(const fpl_policy_t *p, const double *A, const double *B, double *C, size_t m,
                size_t k, size_t n, fpl_sr_t *sr);

/* z_i = op(x_i, y_i) correctly rounded to f (op: add, sub or mul), one
 * rounding each; z may alias x or y. Returns 0 or FPL_EINVAL for another op. */
int fpl_vec_op(const fpl_format_t *f, fpl_op_t op, const double *x, const double *y, double *z,
               size_t n, fpl_rmode_t mode, fpl_sr_t *sr);

#endif /* FPL_ARITH_H */
