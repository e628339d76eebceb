/* arith_simd.c -- matmul kernels, four outputs per AVX2 vector: binary32
 * accumulation in RNE, other float accumulators in RNE or RTZ, and the exact
 * policy's Dot2
 *
 * The lanes of a vector are four outputs (rows of B) that share a row of A,
 * so every output keeps its own sequential order.  One step of an output is
 * h = s + p in binary64, then s' = (double)(float)h.  The definition rounds
 * the exact sum s + p once to binary32 (add_once).  RN32(h) differs from
 * RN32(s + p) only when h = RN53(s + p) lies exactly halfway between two
 * binary32 numbers (a tie created by the first rounding); below binary32's
 * smallest normal the halfway points sit elsewhere, and a NaN's bits depend
 * on the path.  Lanes where h is an inexact tie of the normal range or
 * 0 < |h| < 2^-126 are flagged, and the step is redone by the definition
 * itself for every lane of the block.  Overflow needs nothing: the
 * conversion rounds to nearest with IEEE overflow to infinity, as binary32
 * does.  A NaN sum may carry other NaN bits than add_once's; the caller
 * rounds every sum to the output format, which turns each NaN into NAN. */
#include <stdint.h>
#include <stdlib.h>

#include "arith_simd.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define KERNEL_INLINE static inline __attribute__((always_inline, target("avx2,fma")))
#define MAXRI         4
#define MAXNV         4

enum { KIND_F32, KIND_DOT2, KIND_NRNE, KIND_NRTZ };

/* Redo step l of a register block by the definition: so = sums before the
 * step (RI rows of 4*MAXNV), sn = the vector results (overwritten); the
 * products are formed again, B's entry (q, l) at bq + q*qs + l*ls times A's
 * entry (r, l) at a0[r*lda + l]. */
static __attribute__((noinline, cold)) void redo_step(const double *so, double *sn, int RI,
                                                      int lanes, const double *bq, size_t qs,
                                                      size_t ls, const double *a0, size_t lda,
                                                      size_t l, fpl__addfn_t fix, const void *ctx)
{
    for (int r = 0; r < RI; r++)
        for (int q = 0; q < lanes; q++) {
            int i = r * 4 * MAXNV + q;
            sn[i] = fix(ctx, so[i], bq[(size_t)q * qs + l * ls] * a0[(size_t)r * lda + l]);
        }
}

/* Constants of the step, loaded once per block. */
typedef struct {
    __m256d abs, min, zero;
    __m256i m29, h28;
    /* narrow accumulators: see fpl__narrow_t */
    __m256i sign, one, mask, halfm1, lo, hi, zok, all;
    __m128i cnt;
} kconst_t;

KERNEL_INLINE kconst_t kconst(const fpl__narrow_t *np, const int KIND)
{
    kconst_t K;
    K.abs = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    K.min = _mm256_set1_pd(0x1p-126);
    K.zero = _mm256_setzero_pd();
    K.m29 = _mm256_set1_epi64x((1LL << 29) - 1);
    K.h28 = _mm256_set1_epi64x(1LL << 28);
    if (KIND == KIND_NRNE || KIND == KIND_NRTZ) {
        uint64_t mask = ((uint64_t)1 << np->S) - 1;
        K.sign = _mm256_set1_epi64x((long long)((uint64_t)1 << 63));
        K.one = _mm256_set1_epi64x(1);
        K.mask = _mm256_set1_epi64x((long long)mask);
        K.halfm1 = _mm256_set1_epi64x((long long)(mask >> 1));
        K.lo = _mm256_set1_epi64x((long long)np->lo);
        K.hi = _mm256_set1_epi64x((long long)np->hi);
        K.zok = _mm256_set1_epi64x(np->zero_ok ? -1LL : 0);
        K.all = _mm256_set1_epi64x(-1LL);
        K.cnt = _mm_cvtsi32_si128(np->S);
    }
    return K;
}

/* One step of four outputs with p = b*a (x[i] * y[i], x = B's row); returns
 * the new sum.  KIND_F32: RN32(s + p); flags |= lanes to redo: h = s + p inexact
 * (TwoSum error l != 0) and a binary32 tie, or 0 < |h| < 2^-126.
 * KIND_DOT2: the loop body of dot2 in arith_vec.c, operation for operation
 * (TwoProd by FMA, TwoSum, the errors summed in *c); it needs no flags.
 * KIND_NRNE, KIND_NRTZ: add_fast of arith_vec.c on four lanes (integer
 * rounding of the encoding of |h|); flags: h next to a rounding boundary
 * with l != 0, or |h| outside the fast range. */
KERNEL_INLINE __m256d step(const kconst_t *K, __m256d s, __m256d *c, __m256d b, __m256d a,
                           __m256i *flag, const int KIND)
{
    __m256d p = _mm256_mul_pd(b, a);
    __m256d h = _mm256_add_pd(s, p);
    __m256d bp = _mm256_sub_pd(h, s); /* TwoSum (Knuth) */
    __m256d l = _mm256_add_pd(_mm256_sub_pd(s, _mm256_sub_pd(h, bp)), _mm256_sub_pd(p, bp));
    if (KIND == KIND_DOT2) {
        __m256d pe = _mm256_fmsub_pd(b, a, p); /* fma(x, y, -p) */
        *c = _mm256_add_pd(*c, _mm256_add_pd(pe, l));
        return h;
    }
    if (KIND == KIND_NRNE || KIND == KIND_NRTZ) {
        __m256i hb = _mm256_castpd_si256(h);
        __m256i sg = _mm256_and_si256(hb, K->sign);
        __m256i ai = _mm256_andnot_si256(K->sign, hb);
        __m256i y, edge;
        if (KIND == KIND_NRNE) {
            __m256i lsb = _mm256_and_si256(_mm256_srl_epi64(ai, K->cnt), K->one);
            y = _mm256_add_epi64(_mm256_add_epi64(ai, K->halfm1), lsb);
            __m256i d = _mm256_and_si256(_mm256_sub_epi64(ai, K->halfm1), K->mask);
            edge = _mm256_cmpgt_epi64(_mm256_set1_epi64x(3), d); /* within one of the tie */
        } else {
            y = ai;
            __m256i d = _mm256_and_si256(_mm256_add_epi64(ai, K->one), K->mask);
            edge = _mm256_cmpgt_epi64(_mm256_set1_epi64x(2), d); /* low bits 0 or all ones */
        }
        edge = _mm256_and_si256(edge, _mm256_castpd_si256(_mm256_cmp_pd(l, K->zero, _CMP_NEQ_UQ)));
        __m256i inside = _mm256_or_si256(
            _mm256_and_si256(_mm256_cmpgt_epi64(ai, K->lo), _mm256_cmpgt_epi64(K->hi, ai)),
            _mm256_and_si256(K->zok, _mm256_cmpeq_epi64(ai, _mm256_setzero_si256())));
        *flag = _mm256_or_si256(*flag, _mm256_or_si256(edge, _mm256_xor_si256(inside, K->all)));
        return _mm256_castsi256_pd(_mm256_or_si256(_mm256_andnot_si256(K->mask, y), sg));
    }
    __m256i tie = _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_castpd_si256(h), K->m29), K->h28);
    tie = _mm256_and_si256(tie, _mm256_castpd_si256(_mm256_cmp_pd(l, K->zero, _CMP_NEQ_UQ)));
    __m256d small = _mm256_and_pd(_mm256_cmp_pd(_mm256_and_pd(h, K->abs), K->min, _CMP_LT_OQ),
                                  _mm256_cmp_pd(h, K->zero, _CMP_NEQ_OQ));
    *flag = _mm256_or_si256(*flag, _mm256_or_si256(tie, _mm256_castpd_si256(small)));
    return _mm256_cvtps_pd(_mm256_cvtpd_ps(h));
}

/* The result of an output: the sum, or Dot2's s + c. */
KERNEL_INLINE __m256d result(__m256d s, __m256d c, const int KIND)
{
    return KIND == KIND_DOT2 ? _mm256_add_pd(s, c) : s;
}

/* Commit a step: s = sn, or on a flag redo every real lane by the definition
 * (Dot2 never flags). */
#define COMMIT(RI, NV, NVALID, BQ, QS, LS, A0, LDA, L)                                             \
    do {                                                                                           \
        if (KIND != KIND_DOT2 && __builtin_expect(!_mm256_testz_si256(flag, flag), 0)) {           \
            double tso[MAXRI * MAXNV * 4], tsn[MAXRI * MAXNV * 4];                                 \
            for (int r = 0; r < RI; r++)                                                           \
                for (int v = 0; v < NV; v++) {                                                     \
                    _mm256_storeu_pd(tso + r * 4 * MAXNV + 4 * v, st[r][v]);                       \
                    _mm256_storeu_pd(tsn + r * 4 * MAXNV + 4 * v, sn[r][v]);                       \
                }                                                                                  \
            redo_step(tso, tsn, RI, NVALID, BQ, QS, LS, A0, LDA, L, fix, ctx);                     \
            for (int r = 0; r < RI; r++)                                                           \
                for (int v = 0; v < NV; v++)                                                       \
                    sn[r][v] = _mm256_loadu_pd(tsn + r * 4 * MAXNV + 4 * v);                       \
        }                                                                                          \
        for (int r = 0; r < RI; r++)                                                               \
            for (int v = 0; v < NV; v++)                                                           \
                st[r][v] = sn[r][v];                                                               \
    } while (0)

/* RI rows of A (row r at a0 + r*lda) against a packed panel of 4*NV rows of
 * B (bp[l * 4NV + q] = B[j0 + q][l]); nvalid of the 4*NV lanes are real.
 * Writes the results to S[r * ldS + q]. */
KERNEL_INLINE void block(const double *bp, const double *a0, size_t lda, size_t k, double *S,
                         size_t ldS, int nvalid, const int RI, const int NV,
                         const fpl__narrow_t *np, fpl__addfn_t fix, const void *ctx, const int KIND)
{
    const kconst_t K = kconst(np, KIND);
    __m256d st[MAXRI][MAXNV], ct[MAXRI][MAXNV];
    for (int r = 0; r < RI; r++)
        for (int v = 0; v < NV; v++)
            st[r][v] = ct[r][v] = K.zero;
    for (size_t l = 0; l < k; l++) {
        __m256d b[MAXNV];
        __m256d sn[MAXRI][MAXNV];
        for (int v = 0; v < NV; v++)
            b[v] = _mm256_loadu_pd(bp + l * 4 * NV + 4 * v);
        __m256i flag = _mm256_setzero_si256();
        for (int r = 0; r < RI; r++) {
            __m256d a = _mm256_broadcast_sd(a0 + r * lda + l);
            for (int v = 0; v < NV; v++)
                sn[r][v] = step(&K, st[r][v], &ct[r][v], b[v], a, &flag, KIND);
        }
        COMMIT(RI, NV, nvalid, bp, 1, (size_t)(4 * NV), a0, lda, l);
    }
    for (int r = 0; r < RI; r++) {
        double out[4 * MAXNV];
        for (int v = 0; v < NV; v++)
            _mm256_storeu_pd(out + 4 * v, result(st[r][v], ct[r][v], KIND));
        for (int q = 0; q < nvalid; q++)
            S[r * ldS + (size_t)q] = out[q];
    }
}

/* One row of A (x) against 16 full rows of B read in place: 4x4 blocks of B
 * are transposed in registers, so nothing is packed (a matvec reads W once). */
KERNEL_INLINE void block_rows16(const double *B0, size_t k, const double *x, double *S,
                                const fpl__narrow_t *np, fpl__addfn_t fix, const void *ctx,
                                const int KIND)
{
    enum { NV = 4 };
    const kconst_t K = kconst(np, KIND);
    __m256d st[1][MAXNV], ct[1][MAXNV], sn[1][MAXNV];
    for (int v = 0; v < NV; v++)
        st[0][v] = ct[0][v] = K.zero;
    size_t l = 0;
    for (; l + 4 <= k; l += 4) {
        __m256d col[4][MAXNV]; /* col[t][v]: B[4v + 0..3][l + t] */
        for (int v = 0; v < NV; v++) {
            const double *r0 = B0 + (size_t)(4 * v) * k + l;
            __m256d q0 = _mm256_loadu_pd(r0), q1 = _mm256_loadu_pd(r0 + k);
            __m256d q2 = _mm256_loadu_pd(r0 + 2 * k), q3 = _mm256_loadu_pd(r0 + 3 * k);
            __m256d t0 = _mm256_unpacklo_pd(q0, q1), t1 = _mm256_unpackhi_pd(q0, q1);
            __m256d t2 = _mm256_unpacklo_pd(q2, q3), t3 = _mm256_unpackhi_pd(q2, q3);
            col[0][v] = _mm256_permute2f128_pd(t0, t2, 0x20);
            col[1][v] = _mm256_permute2f128_pd(t1, t3, 0x20);
            col[2][v] = _mm256_permute2f128_pd(t0, t2, 0x31);
            col[3][v] = _mm256_permute2f128_pd(t1, t3, 0x31);
        }
        for (int t = 0; t < 4; t++) {
            __m256d a = _mm256_broadcast_sd(x + l + t);
            __m256i flag = _mm256_setzero_si256();
            for (int v = 0; v < NV; v++)
                sn[0][v] = step(&K, st[0][v], &ct[0][v], col[t][v], a, &flag, KIND);
            COMMIT(1, NV, 16, B0, k, 1, x, 0, l + t);
        }
    }
    for (; l < k; l++) {
        __m256d a = _mm256_broadcast_sd(x + l);
        __m256i flag = _mm256_setzero_si256();
        for (int v = 0; v < NV; v++) {
            const double *r0 = B0 + (size_t)(4 * v) * k + l;
            __m256d b = _mm256_set_pd(r0[3 * k], r0[2 * k], r0[k], r0[0]);
            sn[0][v] = step(&K, st[0][v], &ct[0][v], b, a, &flag, KIND);
        }
        COMMIT(1, NV, 16, B0, k, 1, x, 0, l);
    }
    for (int v = 0; v < NV; v++)
        _mm256_storeu_pd(S + 4 * v, result(st[0][v], ct[0][v], KIND));
}

/* Every row of A against B: one or two rows of A read B in place, 16 rows
 * at a time; the rest of B goes in packed panels of 8 rows against 3 rows
 * of A at a time (6 vectors in flight). */
KERNEL_INLINE void matmul_kernel(double *bp, const double *A, const double *B, double *S, size_t m,
                                 size_t k, size_t n, const fpl__narrow_t *np, fpl__addfn_t fix,
                                 const void *ctx, const int KIND)
{
    size_t j0 = 0;
    if (m < 3)
        for (; j0 + 16 <= n; j0 += 16)
            for (size_t i = 0; i < m; i++)
                block_rows16(B + j0 * k, k, A + i * k, S + i * n + j0, np, fix, ctx, KIND);
    const size_t W = 8;
    for (; j0 < n; j0 += W) {
        int nvalid = (int)(n - j0 < W ? n - j0 : W);
        for (size_t l = 0; l < k; l++)
            for (size_t q = 0; q < W; q++)
                bp[l * W + q] = q < (size_t)nvalid ? B[(j0 + q) * k + l] : 0.0;
        size_t i = 0;
        for (; i + 3 <= m; i += 3)
            block(bp, A + i * k, k, k, S + i * n + j0, n, nvalid, 3, 2, np, fix, ctx, KIND);
        for (; i < m; i++)
            block(bp, A + i * k, k, k, S + i * n + j0, n, nvalid, 1, 2, np, fix, ctx, KIND);
    }
}

__attribute__((target("avx2,fma"))) static void matmul_f32(double *bp, const double *A,
                                                           const double *B, double *S, size_t m,
                                                           size_t k, size_t n, fpl__addfn_t fix,
                                                           const void *ctx)
{
    matmul_kernel(bp, A, B, S, m, k, n, NULL, fix, ctx, KIND_F32);
}

__attribute__((target("avx2,fma"))) static void
matmul_dot2(double *bp, const double *A, const double *B, double *S, size_t m, size_t k, size_t n)
{
    matmul_kernel(bp, A, B, S, m, k, n, NULL, NULL, NULL, KIND_DOT2);
}

__attribute__((target("avx2,fma"))) static void
matmul_narrow(double *bp, const double *A, const double *B, double *S, size_t m, size_t k, size_t n,
              const fpl__narrow_t *np, fpl__addfn_t fix, const void *ctx)
{
    if (np->rtz)
        matmul_kernel(bp, A, B, S, m, k, n, np, fix, ctx, KIND_NRTZ);
    else
        matmul_kernel(bp, A, B, S, m, k, n, np, fix, ctx, KIND_NRNE);
}

static double *scratch(size_t k)
{
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") || k == 0 ||
        k > SIZE_MAX / (8 * sizeof(double)))
        return NULL;
    return malloc(k * 8 * sizeof(double));
}

int fpl__matmul_f32_rne(const double *A, const double *B, double *S, size_t m, size_t k, size_t n,
                        fpl__addfn_t fix, const void *ctx)
{
    double *bp = scratch(k);
    if (!bp)
        return -1;
    matmul_f32(bp, A, B, S, m, k, n, fix, ctx);
    free(bp);
    return 0;
}

int fpl__matmul_dot2(const double *A, const double *B, double *S, size_t m, size_t k, size_t n)
{
    double *bp = scratch(k);
    if (!bp)
        return -1;
    matmul_dot2(bp, A, B, S, m, k, n);
    free(bp);
    return 0;
}

int fpl__matmul_narrow(const double *A, const double *B, double *S, size_t m, size_t k, size_t n,
                       const fpl__narrow_t *np, fpl__addfn_t fix, const void *ctx)
{
    double *bp = scratch(k);
    if (!bp)
        return -1;
    matmul_narrow(bp, A, B, S, m, k, n, np, fix, ctx);
    free(bp);
    return 0;
}

#else

int fpl__matmul_f32_rne(const double *A, const double *B, double *S, size_t m, size_t k, size_t n,
                        fpl__addfn_t fix, const void *ctx)
{
    (void)A, (void)B, (void)S, (void)m, (void)k, (void)n, (void)fix, (void)ctx;
    return -1;
}

int fpl__matmul_dot2(const double *A, const double *B, double *S, size_t m, size_t k, size_t n)
{
    (void)A, (void)B, (void)S, (void)m, (void)k, (void)n;
    return -1;
}

int fpl__matmul_narrow(const double *A, const double *B, double *S, size_t m, size_t k, size_t n,
                       const fpl__narrow_t *np, fpl__addfn_t fix, const void *ctx)
{
    (void)A, (void)B, (void)S, (void)m, (void)k, (void)n, (void)np, (void)fix, (void)ctx;
    return -1;
}

#endif
