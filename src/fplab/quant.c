/* quant.c -- tensor quantizers: GGUF blocks (bit-exact with ggml), integer
 * schemes with any granularity, OCP MX and NVFP4, all through packed bytes */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "format.h"
#include "internal.h"
#include "quant.h"
#include "round.h"
#include "round_impl.h"

enum { QK_K = 256 }; /* GGUF q4_K super-block */

/* ---- names ------------------------------------------------------------- */

static const struct {
    const char *name, *elem;
} mx_names[] = {{"mxfp8_e4m3", "e4m3"}, {"mxfp8_e5m2", "e5m2"}, {"mxfp6_e3m2", "e3m2"},
                {"mxfp6_e2m3", "e2m3"}, {"mxfp4", "e2m1"},      {"mxint8", "int8"}};

static void saturating(const char *name, fpl_format_t *f)
{
    fpl_format_parse(name, f);
    fpl_format_set_overflow(f, FPL_OVERFLOW_SATURATE);
}

int fpl_quant_parse(const char *spec, fpl_quant_t *q)
{
    char buf[64];
    if (strlen(spec) >= sizeof buf)
        return fpl__fail(FPL_EINVAL, "quantization scheme name too long");
    strcpy(buf, spec);
    memset(q, 0, sizeof *q);
    snprintf(q->name, sizeof q->name, "%s", spec);
    saturating("fp32", &q->scale);
    char *save = NULL, *base = strtok_r(buf, ":", &save);
    if (!base)
        return fpl__fail(FPL_EINVAL, "empty quantization scheme");
    if (!strcmp(base, "q8_0") || !strcmp(base, "q4_0") || !strcmp(base, "q4_1")) {
        q->kind = base[1] == '8' ? FPL_QUANT_Q8_0 : base[3] == '0' ? FPL_QUANT_Q4_0 : FPL_QUANT_Q4_1;
        q->block = 32;
    } else if (!strcmp(base, "q4_K")) {
        q->kind = FPL_QUANT_Q4_K;
        q->block = QK_K;
    } else if (!strcmp(base, "nvfp4")) {
        q->kind = FPL_QUANT_NVFP4;
        q->block = 16;
        saturating("e2m1", &q->elem);
        saturating("e4m3", &q->scale);
    } else if (!strncmp(base, "int", 3)) {
        char *end;
        long b = strtol(base + 3, &end, 10);
        if (*end || b < 2 || b > 8)
            return fpl__fail(FPL_EINVAL, "in '%s': integer width must be 2 to 8", spec);
        q->kind = FPL_QUANT_INT;
        q->bits = (int)b;
        q->block = 0;
    } else {
        size_t i;
        for (i = 0; i < sizeof mx_names / sizeof mx_names[0]; i++)
            if (!strcmp(base, mx_names[i].name))
                break;
        if (i == sizeof mx_names / sizeof mx_names[0])
            return fpl__fail(FPL_EINVAL,
                             "unknown quantization scheme '%s' (expected int8, int4, int2 with "
                             ":gN :channel :asym :scale=FMT; q8_0, q4_0, q4_1, q4_K; mxfp8_e4m3, "
                             "mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4, mxint8 [:up]; nvfp4)",
                             spec);
        q->kind = FPL_QUANT_MX;
        q->block = 32;
        saturating(mx_names[i].elem, &q->elem);
        saturating("e8m0", &q->scale);
    }
    for (char *opt = strtok_r(NULL, ":", &save); opt; opt = strtok_r(NULL, ":", &save)) {
        if (q->kind == FPL_QUANT_MX && !strcmp(opt, "up")) {
            q->scale_up = 1;
        } else if (q->kind == FPL_QUANT_INT && opt[0] == 'g' && opt[1]) {
            char *end;
            long g = strtol(opt + 1, &end, 10);
            if (*end || g < 1)
                return fpl__fail(FPL_EINVAL, "in '%s': bad group size '%s'", spec, opt);
            q->block = (size_t)g;
        } else if (q->kind == FPL_QUANT_INT && !strcmp(opt, "channel")) {
            q->block = FPL_QUANT_CHANNEL;
        } else if (q->kind == FPL_QUANT_INT && !strcmp(opt, "tensor")) {
            q->block = 0;
        } else if (q->kind == FPL_QUANT_INT && !strcmp(opt, "asym")) {
            q->asym = 1;
        } else if (q->kind == FPL_QUANT_INT && !strncmp(opt, "scale=", 6)) {
            if (fpl_format_parse(opt + 6, &q->scale))
                return fpl__fail(FPL_EINVAL, "in '%s': %s", spec, fpl_last_error());
            if (q->scale.kind != FPL_KIND_FLOAT)
                return fpl__fail(FPL_EINVAL, "in '%s': scales need a floating-point format", spec);
            fpl_format_set_overflow(&q->scale, FPL_OVERFLOW_SATURATE);
        } else {
            return fpl__fail(FPL_EINVAL, "in '%s': option '%s' does not apply to %s", spec, opt,
                             base);
        }
    }
    return FPL_OK;
}

int fpl_quant_set_calib(fpl_quant_t *q, fpl_calib_t c, double p)
{
    if (q->kind != FPL_QUANT_INT && c != FPL_CALIB_ABSMAX)
        return fpl__fail(FPL_EINVAL, "%s: calibration applies to integer schemes only", q->name);
    if (c == FPL_CALIB_PERCENTILE && !(p > 50 && p <= 100))
        return fpl__fail(FPL_EINVAL, "percentile %g must lie in (50, 100]", p);
    q->calib = c;
    q->percentile = p;
    return FPL_OK;
}

/* ---- geometry and sizes -------------------------------------------------- */

/* length of a group / block (contiguous in row-major order) */
static size_t group_len(const fpl_quant_t *q, size_t rows, size_t cols)
{
    if (q->kind == FPL_QUANT_INT && q->block == 0)
        return rows * cols;
    if (q->kind == FPL_QUANT_INT && q->block == FPL_QUANT_CHANNEL)
        return cols;
    return q->block;
}

int fpl_quant_check(const fpl_quant_t *q, size_t rows, size_t cols)
{
    if (rows == 0 || cols == 0)
        return fpl__fail(FPL_EINVAL, "%s: empty tensor", q->name);
    size_t g = group_len(q, rows, cols);
    if (q->block != 0 && q->block != FPL_QUANT_CHANNEL && cols % g)
        return fpl__fail(FPL_EINVAL, "%s: a row of %zu values is not a whole number of %s of %zu",
                         q->name, cols, q->kind == FPL_QUANT_INT ? "groups" : "blocks", g);
    return FPL_OK;
}

static int elem_bits(const fpl_quant_t *q) { return q->elem.nbits; }

static int is_gguf(const fpl_quant_t *q) { return q->kind <= FPL_QUANT_Q4_K; }

/* bytes of one GGUF block (q4_K: a super-block of 256) */
static uint64_t gguf_block_bytes(fpl_quant_kind_t kind)
{
    return kind == FPL_QUANT_Q8_0 ? 34 : kind == FPL_QUANT_Q4_0 ? 18 : kind == FPL_QUANT_Q4_1 ? 20
                                                                                              : 144;
}

uint64_t fpl_quant_packed_bits(const fpl_quant_t *q, size_t rows, size_t cols)
{
    uint64_t n = (uint64_t)rows * cols, groups = n / group_len(q, rows, cols);
    switch (q->kind) {
    case FPL_QUANT_Q8_0:
    case FPL_QUANT_Q4_0:
    case FPL_QUANT_Q4_1:
    case FPL_QUANT_Q4_K: return groups * gguf_block_bytes(q->kind) * 8;
    case FPL_QUANT_INT:
        return n * (uint64_t)q->bits + groups * (uint64_t)(q->scale.nbits + (q->asym ? q->bits : 0));
    case FPL_QUANT_MX: return groups * (8 + 32 * (uint64_t)elem_bits(q));
    case FPL_QUANT_NVFP4: return 32 + groups * (8 + 16 * 4);
    }
    return 0;
}

double fpl_quant_bits_per_weight(const fpl_quant_t *q, size_t rows, size_t cols)
{
    return (double)fpl_quant_packed_bits(q, rows, cols) / ((double)rows * (double)cols);
}

size_t fpl_quant_packed_size(const fpl_quant_t *q, size_t rows, size_t cols)
{
    return (size_t)((fpl_quant_packed_bits(q, rows, cols) + 7) / 8);
}

/* ---- bit streams (little-endian bit order) -------------------------------- */

typedef struct {
    uint8_t *p;
    uint64_t acc;
    int n;
} bitw_t;

/* nbits <= 32: whole 32-bit words leave the accumulator, predictably */
static inline void put_bits(bitw_t *w, uint64_t v, int nbits)
{
    w->acc |= (v & ((1ULL << nbits) - 1)) << w->n;
    w->n += nbits;
    if (w->n >= 32) {
        for (int k = 0; k < 4; k++)
            w->p[k] = (uint8_t)(w->acc >> (8 * k));
        w->p += 4;
        w->acc >>= 32;
        w->n -= 32;
    }
}

static void flush_bits(bitw_t *w)
{
    while (w->n > 0) {
        *w->p++ = (uint8_t)w->acc;
        w->acc >>= 8;
        w->n -= 8;
    }
    w->acc = 0;
    w->n = 0;
}

typedef struct {
    const uint8_t *p, *end;
    uint64_t acc;
    int n;
} bitr_t;

/* nbits <= 32; never reads past end */
static inline uint64_t get_bits(bitr_t *r, int nbits)
{
    if (r->n < nbits) {
        if (r->end - r->p >= 4) {
            uint64_t word = (uint64_t)r->p[0] | ((uint64_t)r->p[1] << 8) |
                            ((uint64_t)r->p[2] << 16) | ((uint64_t)r->p[3] << 24);
            r->acc |= word << r->n;
            r->p += 4;
            r->n += 32;
        } else {
            while (r->n < nbits && r->p < r->end) {
                r->acc |= (uint64_t)*r->p++ << r->n;
                r->n += 8;
            }
        }
    }
    uint64_t v = r->acc & ((1ULL << nbits) - 1);
    r->acc >>= nbits;
    r->n -= nbits;
    return v;
}

/* ---- fast element coding: formats prepared once per call -------------------- */

/* A small float format ready for rounding (RNE, its own overflow rule) and
 * for coding by bit extraction; decoding through a table when it has at
 * most 8 bits. */
typedef struct {
    const fpl_format_t *f;
    fparams_t P;
    double sub_scale; /* 2^(m - emin): subnormal value -> mantissa field */
    double table[256];
} coder_t;

static void coder_init(coder_t *c, const fpl_format_t *f)
{
    c->f = f;
    fparams_init(&c->P, f);
    c->sub_scale = ldexp(1.0, f->mbits - f->emin);
    if (f->nbits <= 8)
        for (uint64_t k = 0; k < ((uint64_t)1 << f->nbits); k++)
            c->table[k] = fpl_format_decode(f, k);
}

/* the code of v, a finite value of a small signed float format with a zero
 * (|v| * 2^(m - emin) fits comfortably in 64 bits); branch-free, since
 * subnormal and normal values alternate unpredictably in FP4 data */
static inline uint64_t coder_encode(const coder_t *c, double v)
{
    const fpl_format_t *f = c->f;
    uint64_t b = fpl__bits(v), a = b & ~((uint64_t)1 << 63);
    int E = (int)(a >> 52) - 1023;
    uint64_t normal = ((uint64_t)(E + f->bias) << f->mbits) |
                      ((a >> (52 - f->mbits)) & (((uint64_t)1 << f->mbits) - 1));
    uint64_t sub = (uint64_t)(fpl__double(a) * c->sub_scale); /* 0 for v = 0 */
    uint64_t m = (uint64_t)0 - (uint64_t)(E >= f->emin); /* all ones for normal values */
    uint64_t code = (normal & m) | (sub & ~m);
    return code | ((b >> 63) << (f->nbits - 1));
}

/* round to the format (RNE) and return the code; *value gets the value */
static inline uint64_t coder_round(const coder_t *c, double x, double *value)
{
    *value = round_float_one(&c->P, x, FPL_RNE, 0);
    return coder_encode(c, *value);
}

/* ---- GGUF: binary32 arithmetic exactly as ggml's reference ------------------ */

/* binary32 -> binary16 (RNE) as x86's F16C converter does it, which is what
 * ggml uses there: a scale beyond 65504 becomes +-inf (so the block decodes
 * to inf/NaN, as in ggml), and a NaN stays a quiet NaN with the top of its
 * payload */
static uint16_t to_half(const coder_t *h, float v)
{
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    uint16_t sign = (uint16_t)((b >> 16) & 0x8000);
    if (isnan(v))
        return (uint16_t)(sign | 0x7e00 | ((b >> 13) & 0x3ff));
    double r;
    uint16_t code = (uint16_t)coder_round(h, (double)v, &r);
    return isinf(r) ? (uint16_t)(sign | 0x7c00) : code;
}

static float from_half(const fpl_format_t *h, const uint8_t *p)
{
    return (float)fpl_format_decode(h, (uint64_t)p[0] | ((uint64_t)p[1] << 8));
}

static void put_half(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static void gguf_pack_block(const coder_t *h, fpl_quant_kind_t kind, const double *x, uint8_t *o)
{
    float v[32];
    for (int j = 0; j < 32; j++)
        v[j] = (float)x[j]; /* ggml quantizes binary32 data */
    if (kind == FPL_QUANT_Q8_0) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(v[j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_half(o, to_half(h, d));
        for (int j = 0; j < 32; j++) { /* roundf: |t| + 0.5 is exact in binary64 */
            float t = v[j] * id;
            int k = (int)((double)fabsf(t) + 0.5);
            o[2 + j] = (uint8_t)(int8_t)(t < 0 ? -k : k);
        }
    } else if (kind == FPL_QUANT_Q4_0) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++)
            if (amax < fabsf(v[j])) {
                amax = fabsf(v[j]);
                max = v[j];
            }
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_half(o, to_half(h, d));
        for (int j = 0; j < 16; j++) {
            int8_t a = (int8_t)(v[j] * id + 8.5f), c = (int8_t)(v[j + 16] * id + 8.5f);
            uint8_t lo = (uint8_t)(a < 15 ? a : 15), hi = (uint8_t)(c < 15 ? c : 15);
            o[2 + j] = (uint8_t)(lo | (hi << 4));
        }
    } else {
        float min = 3.40282347e+38f, max = -3.40282347e+38f;
        for (int j = 0; j < 32; j++) {
            if (v[j] < min)
                min = v[j];
            if (v[j] > max)
                max = v[j];
        }
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        put_half(o, to_half(h, d));
        put_half(o + 2, to_half(h, min));
        for (int j = 0; j < 16; j++) {
            int8_t a = (int8_t)((v[j] - min) * id + 0.5f);
            int8_t c = (int8_t)((v[j + 16] - min) * id + 0.5f);
            uint8_t lo = (uint8_t)(a < 15 ? a : 15), hi = (uint8_t)(c < 15 ? c : 15);
            o[4 + j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

static void gguf_unpack_block(const fpl_format_t *h, fpl_quant_kind_t kind, const uint8_t *p,
                              double *o)
{
    const float d = from_half(h, p);
    if (kind == FPL_QUANT_Q8_0) {
        for (int j = 0; j < 32; j++)
            o[j] = (double)((float)(int8_t)p[2 + j] * d);
    } else if (kind == FPL_QUANT_Q4_0) {
        for (int j = 0; j < 16; j++) {
            o[j] = (double)((float)((int)(p[2 + j] & 0x0f) - 8) * d);
            o[j + 16] = (double)((float)((int)(p[2 + j] >> 4) - 8) * d);
        }
    } else {
        const float m = from_half(h, p + 2);
        for (int j = 0; j < 16; j++) { /* q*d + m: two binary32 roundings */
            float a = (float)(p[4 + j] & 0x0f) * d, c = (float)(p[4 + j] >> 4) * d;
            o[j] = (double)(a + m);
            o[j + 16] = (double)(c + m);
        }
    }
}

/* ---- GGUF q4_K: ggml's reference quantizer, in its binary32 arithmetic --------
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

static inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

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
    put_half(o, to_half(h, max_scale / 63.0f));
    put_half(o + 2, to_half(h, max_min / 63.0f));
    const float d = from_half(h->f, o), dmin = from_half(h->f, o + 2);
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
    const float d = from_half(h, p), dmin = from_half(h, p + 2);
    const uint8_t *qs = p + 16;
    for (int j = 0; j < 8; j++) {
        int sc, mn;
        q4k_scale_min(p + 4, j, &sc, &mn);
        const float dj = d * (float)sc, mj = dmin * (float)mn; /* d_j q - m_j: */
        const int shift = (j & 1) * 4;                        /* two roundings */
        for (int l = 0; l < 32; l++) {
            float t = dj * (float)((qs[32 * (j / 2) + l] >> shift) & 0x0f);
            y[32 * j + l] = (double)(t - mj);
        }
    }
}

/* ---- integer schemes ------------------------------------------------------ */

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *sorted, size_t n, double p)
{
    double h = p / 100 * (double)(n - 1);
    size_t lo = (size_t)floor(h);
    return lo + 1 < n ? sorted[lo] + (h - (double)lo) * (sorted[lo + 1] - sorted[lo]) : sorted[lo];
}

/* scale and zero point of a group for the clipping range [lo, hi] (symmetric:
 * lo = -hi); the scale is stored in q->scale */
typedef struct {
    double s;
    int64_t z;
    uint64_t scode;
} intscale_t;

static intscale_t int_scale(const fpl_quant_t *q, double lo, double hi)
{
    intscale_t r = {1.0, 0, 0};
    int64_t levels = (1LL << q->bits) - 1, qmax = (1LL << (q->bits - 1)) - 1;
    if (q->asym) {
        if (hi == lo) { /* a constant group is stored exactly: s = |c| */
            r.s = lo != 0 ? fabs(lo) : 1.0;
            r.z = lo < 0 ? 1 : 0;
        } else {
            r.s = (hi - lo) / (double)levels;
        }
    } else {
        r.s = hi > 0 ? hi / (double)qmax : 1.0;
    }
    double st = fpl_round(&q->scale, r.s, FPL_RNE, NULL);
    if (!(st > 0))
        st = q->scale.min_positive; /* a scale that underflows the format */
    r.s = st;
    fpl_format_encode(&q->scale, st, &r.scode);
    if (q->asym && hi != lo) {
        double z = nearbyint(-lo / r.s);
        r.z = z < 0 ? 0 : z > (double)levels ? levels : (int64_t)z;
    }
    return r;
}

/* round to nearest even for |v| < 2^51: one exact binary64 addition (the
 * default rounding mode) and its exact undoing */
static inline double rne_int(double v)
{
    return (v + 0x1.8p52) - 0x1.8p52;
}

static int64_t int_code(const fpl_quant_t *q, const intscale_t *sc, double x)
{
    int64_t levels = (1LL << q->bits) - 1, qmax = (1LL << (q->bits - 1)) - 1;
    double v = x / sc->s;
    v = v > 512 ? 512 : v < -512 ? -512 : v; /* beyond every code: clamped below */
    v = rne_int(v);
    if (q->asym) {
        v += (double)sc->z;
        return v < 0 ? 0 : v > (double)levels ? levels : (int64_t)v;
    }
    return v < -(double)qmax ? -qmax : v > (double)qmax ? qmax : (int64_t)v;
}

static double int_value(const intscale_t *sc, int64_t c) { return (double)(c - sc->z) * sc->s; }

/* the clipping range of a group under the calibration */
static void int_range(const fpl_quant_t *q, const double *x, size_t n, double *work, double *lo,
                      double *hi)
{
    double mn = INFINITY, mx = -INFINITY; /* inputs are finite: no NaN rules needed */
    for (size_t i = 0; i < n; i++) {
        mn = x[i] < mn ? x[i] : mn;
        mx = x[i] > mx ? x[i] : mx;
    }
    double amax = -mn > mx ? -mn : mx;
    *lo = q->asym ? mn : -amax;
    *hi = q->asym ? mx : amax;
    if (q->calib == FPL_CALIB_PERCENTILE && n > 1) {
        for (size_t i = 0; i < n; i++)
            work[i] = q->asym ? x[i] : fabs(x[i]);
        qsort(work, n, sizeof *work, cmp_dbl);
        *hi = pct(work, n, q->percentile);
        *lo = q->asym ? pct(work, n, 100 - q->percentile) : -*hi;
    } else if (q->calib == FPL_CALIB_MSE) {
        double best = INFINITY, blo = *lo, bhi = *hi, mid = q->asym ? (mn + mx) / 2 : 0;
        double half = q->asym ? (mx - mn) / 2 : amax;
        for (int k = 100; k >= 50; k--) {
            double a = k / 100.0, l = mid - a * half, h = mid + a * half;
            intscale_t sc = int_scale(q, l, h);
            double e = 0;
            for (size_t i = 0; i < n && e < best; i++) {
                double d = x[i] - int_value(&sc, int_code(q, &sc, x[i]));
                e += d * d;
            }
            if (e < best) {
                best = e;
                blo = l;
                bhi = h;
            }
        }
        *lo = blo;
        *hi = bhi;
    }
}

/* ---- MX and NVFP4 ----------------------------------------------------------- */

static int is_mxint(const fpl_quant_t *q) { return q->elem.kind == FPL_KIND_INT; }

/* the exponent of the largest normal of the element format (MXINT8: 0, its
 * elements being 8-bit two's complement with an implied 2^-6) */
static int elem_emax(const fpl_quant_t *q) { return is_mxint(q) ? 0 : q->elem.emax; }

static double elem_max(const fpl_quant_t *q) { return is_mxint(q) ? 127.0 / 64 : q->elem.max_finite; }

/* OCP MX v1.0 section 6.3: X = 2^(floor(log2 amax) - emax_elem), clamped to
 * E8M0's range; ":up" takes the smallest power of two with X * max >= amax */
static int mx_shared_exponent(const fpl_quant_t *q, double amax)
{
    if (amax == 0)
        return 0; /* an all-zero block: X = 1 (any scale gives zeros) */
    int e;
    if (q->scale_up) {
        e = ilogb(amax) - ilogb(elem_max(q)) - 1;
        while (ldexp(elem_max(q), e) < amax)
            e++;
    } else {
        e = ilogb(amax) - elem_emax(q);
    }
    return e < -127 ? -127 : e > 127 ? 127 : e;
}

static inline uint64_t elem_code(const fpl_quant_t *q, const coder_t *ec, double v)
{
    double value;
    if (is_mxint(q)) {
        double k = v * 64;
        k = k < -128 ? -128 : k > 127 ? 127 : rne_int(k);
        return (uint64_t)(int64_t)k & 0xff;
    }
    return coder_round(ec, v, &value); /* saturating */
}

/* ---- pack / unpack ----------------------------------------------------------- */

static int check_input(const fpl_quant_t *q, const double *x, size_t rows, size_t cols)
{
    int st = fpl_quant_check(q, rows, cols);
    if (st)
        return st;
    int gguf = is_gguf(q);
    for (size_t i = 0; i < rows * cols; i++)
        if (!isfinite(x[i]) || (gguf && !isfinite((float)x[i])))
            return fpl__fail(FPL_EINVAL, "%s: value %zu (%g) is not finite%s", q->name, i, x[i],
                             gguf ? " in binary32" : "");
    return FPL_OK;
}

int fpl_quant_pack(const fpl_quant_t *q, const double *x, size_t rows, size_t cols, uint8_t *out)
{
    int st = check_input(q, x, rows, cols);
    if (st)
        return st;
    size_t n = rows * cols, g = group_len(q, rows, cols);
    coder_t *ec = malloc(sizeof *ec), *scoder = malloc(sizeof *scoder);
    if (!ec || !scoder) {
        free(ec);
        free(scoder);
        return fpl__fail(FPL_ENOMEM, "out of memory");
    }
    fpl_format_t half;
    fpl_format_parse("fp16", &half);
    if (is_gguf(q)) {
        coder_init(scoder, &half);
        size_t bytes = gguf_block_bytes(q->kind);
        for (size_t b = 0; b < n / q->block; b++)
            if (q->kind == FPL_QUANT_Q4_K)
                q4k_pack_block(scoder, x + b * QK_K, out + b * bytes);
            else
                gguf_pack_block(scoder, q->kind, x + b * 32, out + b * bytes);
        free(ec);
        free(scoder);
        return FPL_OK;
    }
    if (q->kind == FPL_QUANT_MX || q->kind == FPL_QUANT_NVFP4) {
        if (!is_mxint(q))
            coder_init(ec, &q->elem);
        if (q->kind == FPL_QUANT_NVFP4)
            coder_init(scoder, &q->scale);
    }
    bitw_t w = {out, 0, 0};
    if (q->kind == FPL_QUANT_INT) {
        double *work = q->calib == FPL_CALIB_PERCENTILE ? malloc(g * sizeof *work) : NULL;
        if (q->calib == FPL_CALIB_PERCENTILE && !work)
            return fpl__fail(FPL_ENOMEM, "out of memory");
        for (size_t b = 0; b < n / g; b++) {
            const double *xg = x + b * g;
            double lo, hi;
            int_range(q, xg, g, work, &lo, &hi);
            intscale_t sc = int_scale(q, lo, hi);
            put_bits(&w, sc.scode, q->scale.nbits);
            if (q->asym)
                put_bits(&w, (uint64_t)sc.z, q->bits);
            for (size_t i = 0; i < g; i++)
                put_bits(&w, (uint64_t)int_code(q, &sc, xg[i]), q->bits);
        }
        free(work);
    } else if (q->kind == FPL_QUANT_MX) {
        /* every MX block is a whole number of bytes (8 + 32 * {4, 6, 8} bits);
         * blocks go through the SIMD rounding a chunk at a time */
        enum { CHUNK = 64 };
        _Alignas(32) double t[CHUNK * 32];
        int eb = elem_bits(q);
        for (size_t b0 = 0; b0 < n / 32; b0 += CHUNK) {
            size_t nb = n / 32 - b0 < CHUNK ? n / 32 - b0 : CHUNK;
            int ex[CHUNK];
            for (size_t k = 0; k < nb; k++) {
                const double *xb = x + (b0 + k) * 32;
                double amax = 0;
                for (int i = 0; i < 32; i++)
                    amax = fabs(xb[i]) > amax ? fabs(xb[i]) : amax;
                ex[k] = mx_shared_exponent(q, amax);
                double inv = fpl__double((uint64_t)(1023 - ex[k]) << 52); /* 2^-e, exact */
                for (int i = 0; i < 32; i++)
                    t[k * 32 + i] = xb[i] * inv;
            }
            if (!is_mxint(q))
                fpl_round_array(&q->elem, t, t, nb * 32, FPL_RNE, NULL);
            for (size_t k = 0; k < nb; k++) {
                const double *tb = t + k * 32;
                *w.p++ = (uint8_t)(ex[k] + 127);
                if (is_mxint(q)) {
                    for (int i = 0; i < 32; i++)
                        *w.p++ = (uint8_t)elem_code(q, ec, tb[i]);
                } else if (eb == 8) {
                    for (int i = 0; i < 32; i++)
                        *w.p++ = (uint8_t)coder_encode(ec, tb[i]);
                } else if (eb == 4) { /* element 2i in the low nibble */
                    for (int i = 0; i < 16; i++)
                        *w.p++ = (uint8_t)(coder_encode(ec, tb[2 * i]) |
                                           (coder_encode(ec, tb[2 * i + 1]) << 4));
                } else {
                    for (int i = 0; i < 32; i++)
                        put_bits(&w, coder_encode(ec, tb[i]), eb);
                    flush_bits(&w); /* 192 bits: ends on a byte */
                }
            }
        }
    } else { /* NVFP4 */
        double amax = 0;
        for (size_t i = 0; i < n; i++)
            amax = fabs(x[i]) > amax ? fabs(x[i]) : amax;
        float gs = amax > 0 ? (float)(amax / (6.0 * 448.0)) : 1.0f;
        if (!(gs > 0))
            gs = 1.0f; /* amax so small that the tensor scale underflows */
        uint32_t gbits;
        memcpy(&gbits, &gs, sizeof gbits);
        put_bits(&w, gbits, 32); /* then 9 bytes per block: scale, 8 code pairs */
        enum { CHUNK = 128 };
        _Alignas(32) double t[CHUNK * 16];
        uint8_t sc[CHUNK];
        for (size_t b0 = 0; b0 < n / 16; b0 += CHUNK) {
            size_t nb = n / 16 - b0 < CHUNK ? n / 16 - b0 : CHUNK;
            for (size_t k = 0; k < nb; k++) {
                const double *xb = x + (b0 + k) * 16;
                double bmax = 0, s;
                for (int i = 0; i < 16; i++)
                    bmax = fabs(xb[i]) > bmax ? fabs(xb[i]) : bmax;
                sc[k] = (uint8_t)coder_round(scoder, bmax / (6.0 * (double)gs), &s);
                for (int i = 0; i < 16; i++)
                    t[k * 16 + i] = s > 0 ? xb[i] / (s * (double)gs) : 0.0;
            }
            fpl_round_array(&q->elem, t, t, nb * 16, FPL_RNE, NULL);
            for (size_t k = 0; k < nb; k++) {
                *w.p++ = sc[k];
                for (int i = 0; i < 8; i++)
                    *w.p++ = (uint8_t)(coder_encode(ec, t[k * 16 + 2 * i]) |
                                       (coder_encode(ec, t[k * 16 + 2 * i + 1]) << 4));
            }
        }
    }
    flush_bits(&w);
    free(ec);
    free(scoder);
    return FPL_OK;
}

int fpl_quant_unpack(const fpl_quant_t *q, const uint8_t *in, size_t rows, size_t cols, double *y)
{
    int st = fpl_quant_check(q, rows, cols);
    if (st)
        return st;
    size_t n = rows * cols, g = group_len(q, rows, cols);
    if (is_gguf(q)) {
        fpl_format_t half;
        fpl_format_parse("fp16", &half);
        size_t bytes = gguf_block_bytes(q->kind);
        for (size_t b = 0; b < n / q->block; b++)
            if (q->kind == FPL_QUANT_Q4_K)
                q4k_unpack_block(&half, in + b * bytes, y + b * QK_K);
            else
                gguf_unpack_block(&half, q->kind, in + b * bytes, y + b * 32);
        return FPL_OK;
    }
    double etab[256], stab[256];
    if (q->kind == FPL_QUANT_MX || q->kind == FPL_QUANT_NVFP4)
        for (int k = 0; k < 256; k++) {
            etab[k] = is_mxint(q) ? ldexp((double)(int8_t)(uint8_t)k, -6)
                      : k < (1 << q->elem.nbits) ? fpl_format_decode(&q->elem, (uint64_t)k) : 0;
            stab[k] = q->kind == FPL_QUANT_NVFP4 ? fpl_format_decode(&q->scale, (uint64_t)k) : 0;
        }
    bitr_t r = {in, in + fpl_quant_packed_size(q, rows, cols), 0, 0};
    if (q->kind == FPL_QUANT_INT) {
        for (size_t b = 0; b < n / g; b++) {
            intscale_t sc = {fpl_format_decode(&q->scale, get_bits(&r, q->scale.nbits)), 0, 0};
            if (q->asym)
                sc.z = (int64_t)get_bits(&r, q->bits);
            for (size_t i = 0; i < g; i++) {
                uint64_t c = get_bits(&r, q->bits);
                int64_t k = q->asym ? (int64_t)c
                                    : (int64_t)(c ^ (1ULL << (q->bits - 1))) - (1LL << (q->bits - 1));
                y[b * g + i] = int_value(&sc, k);
            }
        }
    } else if (q->kind == FPL_QUANT_MX) {
        int eb = elem_bits(q);
        const uint8_t *p = in;
        for (size_t b = 0; b < n / 32; b++) {
            double X = ldexp(1.0, (int)*p++ - 127), *yb = y + b * 32;
            if (eb == 8) {
                for (int i = 0; i < 32; i++)
                    yb[i] = etab[p[i]] * X;
                p += 32;
            } else if (eb == 4) {
                for (int i = 0; i < 16; i++) {
                    yb[2 * i] = etab[p[i] & 0x0f] * X;
                    yb[2 * i + 1] = etab[p[i] >> 4] * X;
                }
                p += 16;
            } else {
                bitr_t br = {p, p + 24, 0, 0};
                for (int i = 0; i < 32; i++)
                    yb[i] = etab[get_bits(&br, eb)] * X;
                p += 24;
            }
        }
    } else {
        uint32_t gbits = (uint32_t)get_bits(&r, 32);
        float gs;
        memcpy(&gs, &gbits, sizeof gs);
        const uint8_t *p = in + 4;
        for (size_t b = 0; b < n / 16; b++, p += 9) {
            double s = stab[p[0]], *yb = y + b * 16;
            for (int i = 0; i < 8; i++) {
                yb[2 * i] = etab[p[1 + i] & 0x0f] * s * (double)gs;
                yb[2 * i + 1] = etab[p[1 + i] >> 4] * s * (double)gs;
            }
        }
    }
    return FPL_OK;
}

int fpl_quant_apply(const fpl_quant_t *q, const double *x, size_t rows, size_t cols, double *y)
{
    int st = fpl_quant_check(q, rows, cols);
    if (st)
        return st;
    uint8_t *buf = malloc(fpl_quant_packed_size(q, rows, cols) + 8);
    if (!buf)
        return fpl__fail(FPL_ENOMEM, "out of memory");
    st = fpl_quant_pack(q, x, rows, cols, buf);
    if (!st)
        st = fpl_quant_unpack(q, buf, rows, cols, y);
    free(buf);
    return st;
}
