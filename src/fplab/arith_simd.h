/* arith_simd.h -- the vectorised matmul kernels of arith_vec.c (private) */
#ifndef FPL_ARITH_SIMD_H
#define FPL_ARITH_SIMD_H

#include <stddef.h>

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
int fpl__matmul_f32_rne(const double *A, const double *B, double *S, size_t m, size_t k,
                        size_t n, fpl__addfn_t fix, const void *ctx);

/* S[i*n + j] = Dot2 of B's row j and A's row i (the exact policy's fpl_dot,
 * operation for operation, so the same bits), four outputs per vector.
 * Returns 0, or -1 (nothing written) without AVX2 and FMA or memory. */
int fpl__matmul_dot2(const double *A, const double *B, double *S, size_t m, size_t k, size_t n);

#endif /* FPL_ARITH_SIMD_H */
