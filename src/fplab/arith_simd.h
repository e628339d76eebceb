/* arith_simd.h -- the vectorised matmul kernels of arith_vec.c (private) */
#ifndef FPL_ARITH_SIMD_H
#define FPL_ARITH_SIMD_H

#include <stddef.h>
#include <stdint.h>

/* The exact definition of one accumulation step s + p (add_once), called by
 * the kernels for the rare lanes they cannot decide. */
typedef double (*fpl__addfn_t)(const void *ctx, double s, double p);

/* S[i*n + j] = the binary32 round-to-nearest-even sequential sum over l of
 * B[j*k + l] * A[i*k + l] (products in binary64), each step the exact sum
 * rounded once to binary32: what fpl_dot gives for an IEEE binary32
 * accumulator in RNE, order seq, exact products.  Four outputs (rows of B)
 * per AVX2 vector, each output in its own sequential order.  A NaN sum may
 * carry other NaN bits.  Returns 0 on success, -1 when the CPU has no AVX2
 * and FMA or scratch memory is short (nothing is written then). */
int fpl__matmul_f32_rne(const double *A, const double *B, double *S, size_t m, size_t k, size_t n,
                        fpl__addfn_t fix, const void *ctx);

/* S[i*n + j] = Dot2 of B's row j and A's row i (the exact policy's fpl_dot,
 * operation for operation, so the same bits), four outputs per vector.
 * Returns 0, or -1 (nothing written) without AVX2 and FMA or memory. */
int fpl__matmul_dot2(const double *A, const double *B, double *S, size_t m, size_t k, size_t n);

/* A float accumulator whose rounding, for lo < (bits of |h|) < hi, is
 * integer arithmetic on the encoding of |h| with S = 52 - m low bits
 * discarded (add_fast in arith_vec.c, which says why). */
typedef struct {
    int S;
    uint64_t lo, hi;
    int zero_ok; /* an exact zero keeps its sign (not FNUZ) */
    int rtz;     /* 1: toward zero; 0: to nearest, ties to even */
} fpl__narrow_t;

/* As fpl__matmul_f32_rne for such an accumulator (fpl_dot's bits, each
 * step s + p rounded once; lanes the integer rounding cannot decide are
 * redone by fix). */
int fpl__matmul_narrow(const double *A, const double *B, double *S, size_t m, size_t k, size_t n,
                       const fpl__narrow_t *np, fpl__addfn_t fix, const void *ctx);

#endif /* FPL_ARITH_SIMD_H */
