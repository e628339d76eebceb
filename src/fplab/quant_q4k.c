/* quant_q4k.c -- GGUF q4_K super-blocks: ggml's reference k-quant in its
 * binary32 arithmetic */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "quant_impl.h"

/* ggml's reference quantizer, in its binary32 arithmetic --------
 *
 * A super-block of QK_K = 256 values is 8 sub-blocks of 32.  Each sub-block
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

static void q4k_pack_block(const coder_t *h, const double *xd, uint8_t *o)
{
    float x[QK_K], w[32], scales[8], mins[8], max_scale = 0, max_min = 0;
    uint8_t L[QK_K];
    for (int i = 0; i < QK_K; i++)
        x[i] = (float)xd[i];
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += xs[l] * xs[l];
        float av = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            w[l] = av + fabsf(xs[l]);
        scales[j] = q4k_fit(xs, w, L + 32 * j, &mins[j]);
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
        const float mj = dmin * (float)mn;
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)clamp_int(k_nearest((x[32 * j + l] + mj) / dj), 0, 15);
    }
    uint8_t *qs = o + 16; /* 64 values per 32 bytes: low nibbles then high */
    for (int c = 0; c < QK_K / 64; c++)
        for (int l = 0; l < 32; l++)
            qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
}

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
    for (size_t b = 0; b < nblocks; b++)
        q4k_pack_block(half, x + b * QK_K, out + b * 144);
}

void fpl__quant_q4k_unpack(const fpl_format_t *half, const uint8_t *in, size_t nblocks, double *y)
{
    for (size_t b = 0; b < nblocks; b++)
        q4k_unpack_block(half, in + b * 144, y + b * QK_K);
}
