/* arith_simd.c -- binary32-accumulated matmul, four outputs per AVX2 vector
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

#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2")))
#define MAXRI 4
#define MAXNV 4

/* Redo step l of a register block by the definition: so = sums before the
 * step, pr = products, sn = the vector results (overwritten). */
static __attribute__((noinline, cold)) void redo_step(const double *so, const double *pr,
                                                       double *sn, int count, int lanes,
                                                       fpl__addfn_t fix, const void *ctx)
{
    for (int c = 0; c < count; c++)
        for (int q = 0; q < lanes; q++) {
            int i = c * 4 * MAXNV + q;
            sn[i] = fix(ctx, so[i], pr[i]);
        }
}

/* Constants of the step, loaded once per block. */
typedef struct {
    __m256d abs, min, zero;
    __m256i m29, h28;
} kconst_t;

AVX2_INLINE kconst_t kconst(void)
{
    kconst_t K;
    K.abs = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    K.min = _mm256_set1_pd(0x1p-126);
    K.zero = _mm256_setzero_pd();
    K.m29 = _mm256_set1_epi64x((1LL << 29) - 1);
    K.h28 = _mm256_set1_epi64x(1LL << 28);
    return K;
}

/* One step of four outputs: s <- RN32(s + b*a), flags |= lanes to redo.
 * A lane is redone when h = s + p is inexact (TwoSum error l != 0) and a
 * binary32 tie, or when 0 < |h| < 2^-126. */
AVX2_INLINE __m256d step(const kconst_t *K, __m256d s, __m256d b, __m256d a, __m256d *pr,
                         __m256i *flag)
{
    __m256d p = _mm256_mul_pd(b, a); /* x[i] * y[i] with x = B's row */
    __m256d h = _mm256_add_pd(s, p);
    __m256d bp = _mm256_sub_pd(h, s); /* TwoSum (Knuth) */
    __m256d l = _mm256_add_pd(_mm256_sub_pd(s, _mm256_sub_pd(h, bp)), _mm256_sub_pd(p, bp));
    __m256i tie = _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_castpd_si256(h), K->m29), K->h28);
    tie = _mm256_and_si256(tie, _mm256_castpd_si256(_mm256_cmp_pd(l, K->zero, _CMP_NEQ_UQ)));
    __m256d small = _mm256_and_pd(_mm256_cmp_pd(_mm256_and_pd(h, K->abs), K->min, _CMP_LT_OQ),
                                  _mm256_cmp_pd(h, K->zero, _CMP_NEQ_OQ));
    *flag = _mm256_or_si256(*flag, _mm256_or_si256(tie, _mm256_castpd_si256(small)));
    *pr = p;
    return _mm256_cvtps_pd(_mm256_cvtpd_ps(h));
}

/* The rare path of a step: redo every real lane by the definition. */
#define REDO(RI, NV, NVALID)                                                                 \
    do {                                                                                     \
        double tso[MAXRI * MAXNV * 4], tpr[MAXRI * MAXNV * 4], tsn[MAXRI * MAXNV * 4];       \
        for (int r = 0; r < RI; r++)                                                         \
            for (int v = 0; v < NV; v++) {                                                   \
                _mm256_storeu_pd(tso + r * 4 * MAXNV + 4 * v, so[r][v]);                     \
                _mm256_storeu_pd(tpr + r * 4 * MAXNV + 4 * v, pr[r][v]);                     \
                _mm256_storeu_pd(tsn + r * 4 * MAXNV + 4 * v, s[r][v]);                      \
            }                                                                                \
        redo_step(tso, tpr, tsn, RI, NVALID, fix, ctx);                                      \
        for (int r = 0; r < RI; r++)                                                         \
            for (int v = 0; v < NV; v++)                                                     \
                s[r][v] = _mm256_loadu_pd(tsn + r * 4 * MAXNV + 4 * v);                      \
    } while (0)

/* RI rows of A (row r at a0 + r*lda) against a packed panel of 4*NV rows of
 * B (bp[l * 4NV + q] = B[j0 + q][l]); nvalid of the 4*NV lanes are real.
 * Writes the sums to S[r * ldS + q]. */
AVX2_INLINE void block(const double *bp, const double *a0, size_t lda, size_t k, double *S,
                       size_t ldS, int nvalid, const int RI, const int NV, fpl__addfn_t fix,
                       const void *ctx)
{
    const kconst_t K = kconst();
    __m256d s[MAXRI][MAXNV];
    for (int r = 0; r < RI; r++)
        for (int v = 0; v < NV; v++)
            s[r][v] = K.zero;
    for (size_t l = 0; l < k; l++) {
        __m256d b[MAXNV], so[MAXRI][MAXNV], pr[MAXRI][MAXNV];
        for (int v = 0; v < NV; v++)
            b[v] = _mm256_loadu_pd(bp + l * 4 * NV + 4 * v);
        __m256i flag = _mm256_setzero_si256();
        for (int r = 0; r < RI; r++) {
            __m256d a = _mm256_broadcast_sd(a0 + r * lda + l);
            for (int v = 0; v < NV; v++) {
                so[r][v] = s[r][v];
                s[r][v] = step(&K, s[r][v], b[v], a, &pr[r][v], &flag);
            }
        }
        if (__builtin_expect(!_mm256_testz_si256(flag, flag), 0))
            REDO(RI, NV, nvalid);
    }
    for (int r = 0; r < RI; r++) {
        double out[4 * MAXNV];
        for (int v = 0; v < NV; v++)
            _mm256_storeu_pd(out + 4 * v, s[r][v]);
        for (int q = 0; q < nvalid; q++)
            S[r * ldS + (size_t)q] = out[q];
    }
}

/* One row of A (x) against 16 full rows of B read in place: 4x4 blocks of B
 * are transposed in registers, so nothing is packed (a matvec reads W once). */
AVX2_INLINE void block_rows16(const double *B0, size_t k, const double *x, double *S,
                              fpl__addfn_t fix, const void *ctx)
{
    enum { RI = 1, NV = 4 };
    const kconst_t K = kconst();
    __m256d s[MAXRI][MAXNV], so[MAXRI][MAXNV], pr[MAXRI][MAXNV];
    for (int v = 0; v < NV; v++)
        s[0][v] = K.zero;
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
            for (int v = 0; v < NV; v++) {
                so[0][v] = s[0][v];
                s[0][v] = step(&K, s[0][v], col[t][v], a, &pr[0][v], &flag);
            }
            if (__builtin_expect(!_mm256_testz_si256(flag, flag), 0))
                REDO(RI, NV, 16);
        }
    }
    for (; l < k; l++) {
        __m256d a = _mm256_broadcast_sd(x + l);
        __m256i flag = _mm256_setzero_si256();
        for (int v = 0; v < NV; v++) {
            const double *r0 = B0 + (size_t)(4 * v) * k + l;
            __m256d b = _mm256_set_pd(r0[3 * k], r0[2 * k], r0[k], r0[0]);
            so[0][v] = s[0][v];
            s[0][v] = step(&K, s[0][v], b, a, &pr[0][v], &flag);
        }
        if (__builtin_expect(!_mm256_testz_si256(flag, flag), 0))
            REDO(RI, NV, 16);
    }
    for (int v = 0; v < NV; v++)
        _mm256_storeu_pd(S + 4 * v, s[0][v]);
}

/* One panel of 4*NV rows of B against every row of A, RI rows at a time. */
AVX2_INLINE void panel(const double *bp, const double *A, double *S, size_t m, size_t k,
                       size_t n, int nvalid, const int RI, const int NV, fpl__addfn_t fix,
                       const void *ctx)
{
    size_t i = 0;
    for (; i + RI <= m; i += RI)
        block(bp, A + i * k, k, k, S + i * n, n, nvalid, RI, NV, fix, ctx);
    for (; i < m; i++)
        block(bp, A + i * k, k, k, S + i * n, n, nvalid, 1, NV, fix, ctx);
}

__attribute__((target("avx2"))) static void matmul_avx2(double *bp, const double *A,
                                                        const double *B, double *S, size_t m,
                                                        size_t k, size_t n, fpl__addfn_t fix,
                                                        const void *ctx)
{
    size_t j0 = 0;
    if (m < 3) /* one or two rows of A: B in place, 16 rows at a time */
        for (; j0 + 16 <= n; j0 += 16)
            for (size_t i = 0; i < m; i++)
                block_rows16(B + j0 * k, k, A + i * k, S + i * n + j0, fix, ctx);
    /* the rest: panels of 8 rows of B, packed, against 3 rows of A at a time */
    const size_t W = 8;
    for (; j0 < n; j0 += W) {
        int nvalid = (int)(n - j0 < W ? n - j0 : W);
        for (size_t l = 0; l < k; l++)
            for (size_t q = 0; q < W; q++)
                bp[l * W + q] = q < (size_t)nvalid ? B[(j0 + q) * k + l] : 0.0;
        panel(bp, A, S + j0, m, k, n, nvalid, 3, 2, fix, ctx);
    }
}

int fpl__matmul_f32_rne(const double *A, const double *B, double *S, size_t m, size_t k,
                        size_t n, fpl__addfn_t fix, const void *ctx)
{
    if (!__builtin_cpu_supports("avx2") || k == 0)
        return -1;
    if (k > SIZE_MAX / (8 * sizeof(double)))
        return -1;
    double *bp = malloc(k * 8 * sizeof *bp);
    if (!bp)
        return -1;
    matmul_avx2(bp, A, B, S, m, k, n, fix, ctx);
    free(bp);
    return 0;
}

#else

int fpl__matmul_f32_rne(const double *A, const double *B, double *S, size_t m, size_t k,
                        size_t n, fpl__addfn_t fix, const void *ctx)
{
    (void)A, (void)B, (void)S, (void)m, (void)k, (void)n, (void)fix, (void)ctx;
    return -1;
}

#endif
