/* quant_q4k.c -- GGUF q4_K super-blocks: ggml's reference k-quant in its
 * binary32 arithmetic, with an AVX2 search that gives the same bytes */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "quant_impl.h"

/* A super-block of QK_K = 256 values is 8 sub-blocks of 32.  Each sub-block
 * gets a scale s_j and a min m_j (x ~ s_j q - m_j, q in 0..15) from a small
 * weighted least-squares search; the 8 scales and 8 mins are then coded in 6
 * bits against two binary16 super-scales d = max s_j / 63 and dmin =
 * max m_j / 63, and the codes are recomputed against the coded scales.
 * Layout (144 bytes): d, dmin (binary16, little-endian), 12 bytes of 6-bit
 * scales and mins, 128 bytes of 4-bit codes.  Every operation below is one
 * binary32 operation in the reference's order (the library is compiled
 * without contraction), so the bytes agree with ggml's quantize_row_q4_K_ref
 * built the same way. */

/* ggml's nearest_int: add 1.5 * 2^23 in binary32 and read the low mantissa
 * bits.  Round-half-even for |v| <= 2^22; beyond that (and for inf/NaN) it
 * returns what the bit pattern says, and so do we. */
static inline int k_nearest(float v)
{
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int clamp_int(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* weighted fit of one sub-block to s * L + min (min <= 0): the plain grid
 * over [min(x, 0), max x] first, then 21 grids with nmax + rmin + rdelta * is
 * steps over the range, each followed by the least-squares s and min of its
 * codes; the fit with the least weighted squared error wins.  Returns s, sets
 * *neg_min = -min and L. */
static float q4k_fit(const float *x, const float *w, uint8_t *L, float *neg_min)
{
    enum { N = 32, NMAX = 15, NSTEP = 20 };
    const float rmin = -1.0f, rdelta = 0.1f;
    float lo = x[0], hi = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < N; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0)
        lo = 0;
    if (hi == lo) {
        memset(L, 0, N);
        *neg_min = -lo;
        return 0.0f;
    }
    float iscale = NMAX / (hi - lo), scale = 1 / iscale, best = 0;
    for (int i = 0; i < N; i++) {
        L[i] = (uint8_t)clamp_int(k_nearest(iscale * (x[i] - lo)), 0, NMAX);
        float e = scale * L[i] + lo - x[i];
        best += w[i] * (e * e);
    }
    uint8_t trial[N];
    for (int is = 0; is <= NSTEP; is++) {
        iscale = (rmin + rdelta * (float)is + NMAX) / (hi - lo);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < N; i++) {
            int l = clamp_int(k_nearest(iscale * (x[i] - lo)), 0, NMAX);
            trial[i] = (uint8_t)l;
            sl += w[i] * (float)l;
            sl2 += w[i] * (float)l * (float)l;
            sxl += w[i] * (float)l * x[i];
        }
        float D = sum_w * sl2 - sl * sl;
        if (!(D > 0))
            continue;
        float s = (sum_w * sxl - sum_x * sl) / D, m = (sl2 * sum_x - sl * sxl) / D;
        if (m > 0) {
            m = 0;
            s = sxl / sl2;
        }
        float err = 0;
        for (int i = 0; i < N; i++) {
            float e = s * trial[i] + m - x[i];
            err += w[i] * (e * e);
        }
        if (err < best) {
            memcpy(L, trial, N);
            best = err;
            scale = s;
            lo = m;
        }
    }
    *neg_min = -lo;
    return scale;
}

/* the 6-bit scale and min of sub-block j from the 12 packed bytes: sub-blocks
 * 0-3 in the low 6 bits of bytes j and j+4; sub-blocks 4-7 in the nibbles of
 * byte j+4 with their top 2 bits in the spare bits of bytes j-4 and j */
static void q4k_scale_min(const uint8_t *sm, int j, int *sc, int *mn)
{
    if (j < 4) {
        *sc = sm[j] & 63;
        *mn = sm[j + 4] & 63;
    } else {
        *sc = (sm[j + 4] & 0x0f) | ((sm[j - 4] >> 6) << 4);
        *mn = (sm[j + 4] >> 4) | ((sm[j] >> 6) << 4);
    }
}

/* the weighted fits of the 8 sub-blocks of one super-block (binary32 data x):
 * scales, negated mins, codes */
static void q4k_search(const float *x, float *scales, float *mins, uint8_t *L)
{
    float w[32];
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += xs[l] * xs[l];
        float av = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            w[l] = av + fabsf(xs[l]);
        scales[j] = q4k_fit(xs, w, L + 32 * j, &mins[j]);
    }
}

/* codes of 32 values against a coded scale dj != 0 and min mj */
static void q4k_codes(const float *x, float dj, float mj, uint8_t *L)
{
    for (int l = 0; l < 32; l++)
        L[l] = (uint8_t)clamp_int(k_nearest((x[l] + mj) / dj), 0, 15);
}

/* code the scales and mins of a searched super-block, recompute its codes
 * against them (codes(): the scalar or the AVX2 q4k_codes) and store it */
static inline __attribute__((always_inline)) void
q4k_finish(const coder_t *h, const float *x, const float *scales, const float *mins, uint8_t *L,
           uint8_t *o, void (*codes)(const float *, float, float, uint8_t *))
{
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        max_scale = scales[j] > max_scale ? scales[j] : max_scale;
        max_min = mins[j] > max_min ? mins[j] : max_min;
    }
    float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    uint8_t *sm = o + 4;
    memset(sm, 0, 12);
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)k_nearest(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)k_nearest(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            sm[j] = ls;
            sm[j + 4] = lm;
        } else {
            sm[j + 4] = (uint8_t)((ls & 0x0f) | ((lm & 0x0f) << 4));
            sm[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sm[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    fpl__put_half(o, fpl__to_half(h, max_scale / 63.0f));
    fpl__put_half(o + 2, fpl__to_half(h, max_min / 63.0f));
    const float d = fpl__from_half(h->f, o), dmin = fpl__from_half(h->f, o + 2);
    for (int j = 0; j < 8; j++) { /* codes against the scales as stored */
        int sc, mn;
        q4k_scale_min(sm, j, &sc, &mn);
        const float dj = d * (float)sc;
        if (dj == 0)
            continue; /* the reference keeps the fit's codes here */
        codes(x + 32 * j, dj, dmin * (float)mn, L + 32 * j);
    }
    uint8_t *qs = o + 16; /* 64 values per 32 bytes: low nibbles then high */
    for (int c = 0; c < QK_K / 64; c++)
        for (int l = 0; l < 32; l++)
            qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
}

static void q4k_pack_scalar(const coder_t *h, const double *xd, size_t nblocks, uint8_t *out)
{
    float x[QK_K], scales[8], mins[8];
    uint8_t L[QK_K];
    for (size_t b = 0; b < nblocks; b++) {
        for (int i = 0; i < QK_K; i++)
            x[i] = (float)xd[b * QK_K + i]; /* ggml quantizes binary32 data */
        q4k_search(x, scales, mins, L);
        q4k_finish(h, x, scales, mins, L, out + b * 144, q4k_codes);
    }
}

/* ---- the AVX2 search: 8 sub-blocks in 8 lanes ------------------------------
 *
 * The search is a chain of sequential binary32 sums over each sub-block's 32
 * values, so it is vectorised across sub-blocks, never within one: lane j
 * does exactly the scalar q4k_fit's operations on sub-block j, in the same
 * order (AVX2 add/mul/div/sqrt round like their scalar forms; no FMA, no
 * reassociation).  Two super-blocks go side by side to hide the latency of
 * those chains. */
#if defined(__x86_64__) && defined(__GNUC__)
#define Q4K_AVX2 1
#include <immintrin.h>

#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2")))

enum { Q4K_V = 2 }; /* super-blocks searched together */

/* k_nearest, then clamped to 0..15, as a binary32 code */
AVX2_INLINE __m256 q4k_code8(__m256 iscale, __m256 x, __m256 lo)
{
    __m256 t =
        _mm256_add_ps(_mm256_mul_ps(iscale, _mm256_sub_ps(x, lo)), _mm256_set1_ps(12582912.0f));
    __m256i k =
        _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(t), _mm256_set1_epi32(0x007fffff)),
                         _mm256_set1_epi32(0x00400000));
    k = _mm256_min_epi32(_mm256_max_epi32(k, _mm256_setzero_si256()), _mm256_set1_epi32(15));
    return _mm256_cvtepi32_ps(k);
}

/* the codes of one grid and their sums, in the fast case (no lane beyond
 * +-2^22); the clamps to 0 and 15 only where some lane needs them */
#define Q4K_SUMS(CLAMP_LO, CLAMP_HI)                                                               \
    do {                                                                                           \
        const __m256 big = _mm256_set1_ps(12582912.0f), top = _mm256_set1_ps(15.0f);               \
        for (int i = 0; i < 32; i++)                                                               \
            _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)                                    \
            {                                                                                      \
                __m256 l =                                                                         \
                    _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(iscale[v], XL[v][i]), big), big);    \
                if (CLAMP_LO)                                                                      \
                    l = _mm256_max_ps(l, zero);                                                    \
                if (CLAMP_HI)                                                                      \
                    l = _mm256_min_ps(l, top);                                                     \
                __m256 wl = _mm256_mul_ps(W[v][i], l);                                             \
                T[v][i] = l;                                                                       \
                sl[v] = _mm256_add_ps(sl[v], wl);                                                  \
                sl2[v] = _mm256_add_ps(sl2[v], _mm256_mul_ps(wl, l));                              \
                sxl[v] = _mm256_add_ps(sxl[v], _mm256_mul_ps(wl, X[v][i]));                        \
            }                                                                                      \
    } while (0)

/* the search of Q4K_V super-blocks (x: Q4K_V * 256 binary32 values) */
__attribute__((target("avx2"))) static void q4k_search_avx2(const float *x, float *scales,
                                                            float *mins, uint8_t *L)
{
    enum { V = Q4K_V, NMAX = 15, NSTEP = 20 };
    const float rmin = -1.0f, rdelta = 0.1f;
    /* transposed: X[v][i] lane j = value i of sub-block j of super-block v */
    __m256 X[V][32], W[V][32], T[V][32], B[V][32];
#pragma GCC unroll 4
    for (int v = 0; v < V; v++) {
        _Alignas(32) float tmp[32][8];
        for (int j = 0; j < 8; j++)
            for (int i = 0; i < 32; i++)
                tmp[i][j] = x[256 * v + 32 * j + i];
        for (int i = 0; i < 32; i++)
            X[v][i] = _mm256_load_ps(tmp[i]);
    }
    const __m256 zero = _mm256_setzero_ps(), sign = _mm256_set1_ps(-0.0f);
    __m256 lo[V], hi[V], lo0[V], flat[V], sum_w[V], sum_x[V], scale[V], best[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; v++) {
        __m256 sum_x2 = zero; /* weights w = sqrt(sum x^2 / 32) + |x| */
        for (int i = 0; i < 32; i++)
            sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(X[v][i], X[v][i]));
        __m256 av = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps(32.0f)));
        for (int i = 0; i < 32; i++)
            W[v][i] = _mm256_add_ps(av, _mm256_andnot_ps(sign, X[v][i]));
        lo[v] = hi[v] = X[v][0];
        sum_w[v] = W[v][0];
        sum_x[v] = _mm256_mul_ps(sum_w[v], X[v][0]);
        for (int i = 1; i < 32; i++) {
            lo[v] = _mm256_min_ps(X[v][i], lo[v]); /* x < lo ? x : lo */
            hi[v] = _mm256_max_ps(X[v][i], hi[v]); /* x > hi ? x : hi */
            sum_w[v] = _mm256_add_ps(sum_w[v], W[v][i]);
            sum_x[v] = _mm256_add_ps(sum_x[v], _mm256_mul_ps(W[v][i], X[v][i]));
        }
        lo[v] = _mm256_blendv_ps(lo[v], zero, _mm256_cmp_ps(lo[v], zero, _CMP_GT_OQ));
        lo0[v] = lo[v];
        flat[v] = _mm256_cmp_ps(hi[v], lo[v], _CMP_EQ_OQ);
        __m256 iscale = _mm256_div_ps(_mm256_set1_ps((float)NMAX), _mm256_sub_ps(hi[v], lo[v]));
        scale[v] = _mm256_div_ps(_mm256_set1_ps(1.0f), iscale);
        best[v] = zero;
        for (int i = 0; i < 32; i++) {
            B[v][i] = q4k_code8(iscale, X[v][i], lo[v]);
            __m256 e =
                _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale[v], B[v][i]), lo[v]), X[v][i]);
            best[v] = _mm256_add_ps(best[v], _mm256_mul_ps(W[v][i], _mm256_mul_ps(e, e)));
        }
    }
    __m256 XL[V][32], xmin[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; v++) {
        xmin[v] = X[v][0];
        for (int i = 1; i < 32; i++)
            xmin[v] = _mm256_min_ps(X[v][i], xmin[v]);
        for (int i = 0; i < 32; i++)
            XL[v][i] = _mm256_sub_ps(X[v][i], lo[v]);
    }
    for (int is = 0; is <= NSTEP; is++) {
        const __m256 num = _mm256_set1_ps(rmin + rdelta * (float)is + NMAX);
        __m256 sl[V], sl2[V], sxl[V], s[V], m[V], err[V], dpos[V];
        __m256 iscale[V];
        int fast = 1, need_lo = 0, need_hi = 0;
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            iscale[v] = _mm256_div_ps(num, _mm256_sub_ps(hi[v], lo[v]));
            /* iscale * (x - lo) is monotone in x: within +-2^22 at both ends
             * (min x and max x), k_nearest is exactly t - 1.5 * 2^23, and
             * the clamps are needed only where the ends pass 0 or 15.5 */
            __m256 vmin = _mm256_mul_ps(iscale[v], _mm256_sub_ps(xmin[v], lo[v]));
            __m256 vmax = _mm256_mul_ps(iscale[v], _mm256_sub_ps(hi[v], lo[v]));
            __m256 lim = _mm256_set1_ps(0x1p22f);
            __m256 ok = _mm256_and_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, vmin), lim, _CMP_LT_OQ),
                                      _mm256_cmp_ps(_mm256_andnot_ps(sign, vmax), lim, _CMP_LT_OQ));
            fast &= _mm256_movemask_ps(_mm256_or_ps(ok, flat[v])) == 0xff;
            __m256 ge0 = _mm256_cmp_ps(vmin, zero, _CMP_GE_OQ);
            __m256 le15 = _mm256_cmp_ps(vmax, _mm256_set1_ps(15.5f), _CMP_LT_OQ);
            need_lo |= _mm256_movemask_ps(_mm256_or_ps(ge0, flat[v])) != 0xff;
            need_hi |= _mm256_movemask_ps(_mm256_or_ps(le15, flat[v])) != 0xff;
            sl[v] = sl2[v] = sxl[v] = zero;
        }
        if (fast) {
            switch (need_lo * 2 + need_hi) {
            case 0: Q4K_SUMS(0, 0); break;
            case 1: Q4K_SUMS(0, 1); break;
            case 2: Q4K_SUMS(1, 0); break;
            default: Q4K_SUMS(1, 1); break;
            }
        } else {
            for (int i = 0; i < 32; i++)
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) {
                    __m256 l = q4k_code8(iscale[v], X[v][i], lo[v]);
                    __m256 wl = _mm256_mul_ps(W[v][i], l);
                    T[v][i] = l;
                    sl[v] = _mm256_add_ps(sl[v], wl);
                    sl2[v] = _mm256_add_ps(sl2[v], _mm256_mul_ps(wl, l));
                    sxl[v] = _mm256_add_ps(sxl[v], _mm256_mul_ps(wl, X[v][i]));
                }
        }
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w[v], sl2[v]), _mm256_mul_ps(sl[v], sl[v]));
            dpos[v] = _mm256_cmp_ps(D, zero, _CMP_GT_OQ);
            s[v] = _mm256_div_ps(
                _mm256_sub_ps(_mm256_mul_ps(sum_w[v], sxl[v]), _mm256_mul_ps(sum_x[v], sl[v])), D);
            m[v] = _mm256_div_ps(
                _mm256_sub_ps(_mm256_mul_ps(sl2[v], sum_x[v]), _mm256_mul_ps(sl[v], sxl[v])), D);
            __m256 mpos = _mm256_cmp_ps(m[v], zero, _CMP_GT_OQ);
            m[v] = _mm256_blendv_ps(m[v], zero, mpos);
            s[v] = _mm256_blendv_ps(s[v], _mm256_div_ps(sxl[v], sl2[v]), mpos);
            err[v] = zero;
        }
        for (int i = 0; i < 32; i++)
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) {
                __m256 e =
                    _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(s[v], T[v][i]), m[v]), X[v][i]);
                err[v] = _mm256_add_ps(err[v], _mm256_mul_ps(W[v][i], _mm256_mul_ps(e, e)));
            }
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) {
            __m256 upd = _mm256_and_ps(dpos[v], _mm256_cmp_ps(err[v], best[v], _CMP_LT_OQ));
            if (_mm256_movemask_ps(upd)) {
                for (int i = 0; i < 32; i++)
                    B[v][i] = _mm256_blendv_ps(B[v][i], T[v][i], upd);
                best[v] = _mm256_blendv_ps(best[v], err[v], upd);
                scale[v] = _mm256_blendv_ps(scale[v], s[v], upd);
                lo[v] = _mm256_blendv_ps(lo[v], m[v], upd);
                for (int i = 0; i < 32; i++)
                    XL[v][i] = _mm256_sub_ps(X[v][i], lo[v]);
            }
        }
    }
#pragma GCC unroll 4
    for (int v = 0; v < V; v++) { /* flat sub-blocks: codes 0, scale 0, min -lo */
        _mm256_storeu_ps(scales + 8 * v, _mm256_andnot_ps(flat[v], scale[v]));
        _mm256_storeu_ps(mins + 8 * v,
                         _mm256_xor_ps(sign, _mm256_blendv_ps(lo[v], lo0[v], flat[v])));
        _Alignas(32) int32_t tmp[32][8];
        for (int i = 0; i < 32; i++)
            _mm256_store_si256((__m256i *)tmp[i],
                               _mm256_cvtps_epi32(_mm256_andnot_ps(flat[v], B[v][i])));
        for (int j = 0; j < 8; j++)
            for (int i = 0; i < 32; i++)
                L[256 * v + 32 * j + i] = (uint8_t)tmp[i][j];
    }
}

/* q4k_codes, 8 values at a time (elementwise: any grouping is exact) */
__attribute__((target("avx2"))) static void q4k_codes_avx2(const float *x, float dj, float mj,
                                                           uint8_t *L)
{
    const __m256 vd = _mm256_set1_ps(dj), vm = _mm256_set1_ps(mj);
    for (int l = 0; l < 32; l += 8) {
        __m256 t = _mm256_add_ps(_mm256_div_ps(_mm256_add_ps(_mm256_loadu_ps(x + l), vm), vd),
                                 _mm256_set1_ps(12582912.0f));
        __m256i k = _mm256_sub_epi32(
            _mm256_and_si256(_mm256_castps_si256(t), _mm256_set1_epi32(0x007fffff)),
            _mm256_set1_epi32(0x00400000));
        k = _mm256_min_epi32(_mm256_max_epi32(k, _mm256_setzero_si256()), _mm256_set1_epi32(15));
        _Alignas(32) int32_t tmp[8];
        _mm256_store_si256((__m256i *)tmp, k);
        for (int i = 0; i < 8; i++)
            L[l + i] = (uint8_t)tmp[i];
    }
}

__attribute__((target("avx2"))) static void q4k_pack_avx2(const coder_t *h, const double *xd,
                                                          size_t nblocks, uint8_t *out)
{
    float x[Q4K_V * QK_K], scales[Q4K_V * 8], mins[Q4K_V * 8];
    uint8_t L[Q4K_V * QK_K];
    for (size_t b = 0; b < nblocks; b += Q4K_V) {
        size_t nb = nblocks - b < Q4K_V ? nblocks - b : Q4K_V;
        for (size_t i = 0; i < nb * QK_K; i++)
            x[i] = (float)xd[b * QK_K + i];
        for (size_t i = nb * QK_K; i < Q4K_V * QK_K; i++)
            x[i] = 0.0f; /* a short tail searches zeros */
        q4k_search_avx2(x, scales, mins, L);
        for (size_t v = 0; v < nb; v++)
            q4k_finish(h, x + v * QK_K, scales + 8 * v, mins + 8 * v, L + v * QK_K,
                       out + (b + v) * 144, q4k_codes_avx2);
    }
}
#endif

static void q4k_unpack_block(const fpl_format_t *h, const uint8_t *p, double *y)
{
    const float d = fpl__from_half(h, p), dmin = fpl__from_half(h, p + 2);
    const uint8_t *qs = p + 16;
    for (int j = 0; j < 8; j++) {
        int sc, mn;
        q4k_scale_min(p + 4, j, &sc, &mn);
        const float dj = d * (float)sc, mj = dmin * (float)mn; /* d_j q - m_j: */
        const int shift = (j & 1) * 4;                         /* two roundings */
        for (int l = 0; l < 32; l++) {
            float t = dj * (float)((qs[32 * (j / 2) + l] >> shift) & 0x0f);
            y[32 * j + l] = (double)(t - mj);
        }
    }
}

void fpl__quant_q4k_pack(const coder_t *half, const double *x, size_t nblocks, uint8_t *out)
{
#ifdef Q4K_AVX2
    if (fpl__quant_simd()) {
        q4k_pack_avx2(half, x, nblocks, out);
        return;
    }
#endif
    q4k_pack_scalar(half, x, nblocks, out);
}

#ifdef Q4K_AVX2
/* q4k_unpack_block 8 values at a time: the same two binary32 roundings */
__attribute__((target("avx2"))) static void
q4k_unpack_avx2(const fpl_format_t *h, const uint8_t *in, size_t nblocks, double *y)
{
    for (size_t b = 0; b < nblocks; b++, in += 144, y += QK_K) {
        const float d = fpl__from_half(h, in), dmin = fpl__from_half(h, in + 2);
        for (int j = 0; j < 8; j++) {
            int sc, mn;
            q4k_scale_min(in + 4, j, &sc, &mn);
            const __m256 dj = _mm256_set1_ps(d * (float)sc), mj = _mm256_set1_ps(dmin * (float)mn);
            const uint8_t *qs = in + 16 + 32 * (j / 2);
            for (int l = 0; l < 32; l += 8) {
                uint64_t q8;
                memcpy(&q8, qs + l, 8);
                __m256i c = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)q8));
                c = _mm256_and_si256(_mm256_srli_epi32(c, (j & 1) * 4), _mm256_set1_epi32(15));
                __m256 t = _mm256_sub_ps(_mm256_mul_ps(dj, _mm256_cvtepi32_ps(c)), mj);
                _mm256_storeu_pd(y + 32 * j + l, _mm256_cvtps_pd(_mm256_castps256_ps128(t)));
                _mm256_storeu_pd(y + 32 * j + l + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(t, 1)));
            }
        }
    }
}
#endif

void fpl__quant_q4k_unpack(const fpl_format_t *half, const uint8_t *in, size_t nblocks, double *y)
{
#ifdef Q4K_AVX2
    if (fpl__quant_simd()) {
        q4k_unpack_avx2(half, in, nblocks, y);
        return;
    }
#endif
    for (size_t b = 0; b < nblocks; b++)
        q4k_unpack_block(half, in + b * 144, y + b * QK_K);
}
