/* quant_impl.h -- what the quantizer families share inside libfplab:
 * geometry, bit streams, prepared element coders, binary16 scales (private) */
#ifndef FPL_QUANT_IMPL_H
#define FPL_QUANT_IMPL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "internal.h"
#include "quant.h"
#include "round_impl.h"

enum { QK_K = 256 }; /* GGUF q4_K super-block */

/* Take the SIMD paths?  Yes where the CPU has AVX2, unless FPL_QUANT_SCALAR
 * is set: the tests run the portable paths that way too. */
static inline int fpl__quant_simd(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    return __builtin_cpu_supports("avx2") && !getenv("FPL_QUANT_SCALAR");
#else
    return 0;
#endif
}

static inline int fpl__quant_is_gguf(const fpl_quant_t *q)
{
    return q->kind <= FPL_QUANT_Q4_K;
}

/* length of a group / block (contiguous in row-major order) */
static inline size_t fpl__quant_group_len(const fpl_quant_t *q, size_t rows, size_t cols)
{
    if (q->kind == FPL_QUANT_INT && q->block == 0)
        return rows * cols;
    if (q->kind == FPL_QUANT_INT && q->block == FPL_QUANT_CHANNEL)
        return cols;
    return q->block;
}

/* bytes of one GGUF block (q4_K: a super-block of 256) */
static inline uint64_t fpl__gguf_block_bytes(fpl_quant_kind_t kind)
{
    return kind == FPL_QUANT_Q8_0   ? 34
           : kind == FPL_QUANT_Q4_0 ? 18
           : kind == FPL_QUANT_Q4_1 ? 20
                                    : 144;
}

/* round to nearest even for |v| < 2^51: one exact binary64 addition (the
 * default rounding mode) and its exact undoing */
static inline double rne_int(double v)
{
    return (v + 0x1.8p52) - 0x1.8p52;
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

static inline void flush_bits(bitw_t *w)
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
 * most 8 bits, and encoding too when its positive values, keyed by their
 * binary64 exponent and top m mantissa bits, span at most 256 keys. */
typedef struct {
    const fpl_format_t *f;
    fparams_t P;
    double sub_scale; /* 2^(m - emin): subnormal value -> mantissa field */
    double table[256];
    int has_enc;       /* enc applies */
    uint64_t enc_base; /* key of the smallest positive value */
    uint8_t enc[256];  /* key - enc_base -> code of the magnitude */
} coder_t;

static inline uint64_t coder_key(const fpl_format_t *f, double v)
{
    return (fpl__bits(v) & ~((uint64_t)1 << 63)) >> (52 - f->mbits);
}

static inline void coder_init(coder_t *c, const fpl_format_t *f)
{
    c->f = f;
    fparams_init(&c->P, f);
    c->sub_scale = ldexp(1.0, f->mbits - f->emin);
    c->has_enc = 0;
    if (f->nbits > 8)
        return;
    for (uint64_t k = 0; k < ((uint64_t)1 << f->nbits); k++)
        c->table[k] = fpl_format_decode(f, k);
    if (f->kind != FPL_KIND_FLOAT || !f->has_sign || !f->has_zero || f->min_positive <= 0)
        return;
    c->enc_base = coder_key(f, f->min_positive);
    if (coder_key(f, f->max_finite) - c->enc_base >= 256)
        return;
    memset(c->enc, 0, sizeof c->enc);
    for (uint64_t k = 1; k < ((uint64_t)1 << (f->nbits - 1)); k++) {
        double v = c->table[k];
        if (isfinite(v) && v > 0)
            c->enc[coder_key(f, v) - c->enc_base] = (uint8_t)k;
    }
    c->has_enc = 1;
}

/* the code of v, a finite value of a small signed float format with a zero
 * (|v| * 2^(m - emin) fits comfortably in 64 bits); branch-free, since
 * subnormal and normal values alternate unpredictably in FP4 data */
static inline __attribute__((always_inline)) uint64_t coder_encode(const coder_t *c, double v)
{
    const fpl_format_t *f = c->f;
    uint64_t b = fpl__bits(v), a = b & ~((uint64_t)1 << 63);
    if (c->has_enc) { /* zero: any key, masked */
        uint64_t mag =
            c->enc[((a >> (52 - f->mbits)) - c->enc_base) & 255] & (0 - (uint64_t)(a != 0));
        return mag | ((b >> 63) << (f->nbits - 1));
    }
    int E = (int)(a >> 52) - 1023;
    uint64_t normal = ((uint64_t)(E + f->bias) << f->mbits) |
                      ((a >> (52 - f->mbits)) & (((uint64_t)1 << f->mbits) - 1));
    /* the subnormal candidate, meaningful only below the smallest normal;
     * clamped so that large values and inf (a binary16 scale that overflowed
     * is stored as inf, whose normal-path code is right) convert without UB */
    double sv = fpl__double(a) * c->sub_scale;
    uint64_t sub = (uint64_t)(sv < 0x1p62 ? sv : 0.0); /* 0 for v = 0 */
    uint64_t m = (uint64_t)0 - (uint64_t)(E >= f->emin);      /* all ones for normal values */
    uint64_t code = (normal & m) | (sub & ~m);
    return code | ((b >> 63) << (f->nbits - 1));
}

/* round to the format (RNE) and return the code; *value gets the value */
static inline __attribute__((always_inline)) uint64_t coder_round(const coder_t *c, double x,
                                                                  double *value)
{
    *value = round_float_one(&c->P, x, FPL_RNE, 0);
    return coder_encode(c, *value);
}

/* ---- binary16 scales of the GGUF blocks (quant_gguf.c) --------------------- */

/* binary32 -> binary16 code (RNE) as F16C converts; h prepared for fp16 */
uint16_t fpl__to_half(const coder_t *h, float v);

static inline float fpl__from_half(const fpl_format_t *h, const uint8_t *p)
{
    return (float)fpl_format_decode(h, (uint64_t)p[0] | ((uint64_t)p[1] << 8));
}

static inline void fpl__put_half(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

/* ---- the families: n values (a whole number of groups of g), checked input - */

/* GGUF q8_0, q4_0, q4_1 (quant_gguf.c) and q4_K (quant_q4k.c) */
void fpl__quant_gguf_pack(const fpl_quant_t *q, const double *x, size_t n, uint8_t *out);
void fpl__quant_gguf_unpack(const fpl_quant_t *q, const uint8_t *in, size_t n, double *y);
void fpl__quant_q4k_pack(const coder_t *half, const double *x, size_t nblocks, uint8_t *out);
void fpl__quant_q4k_unpack(const fpl_format_t *half, const uint8_t *in, size_t nblocks, double *y);

/* integer schemes, groups of g (quant_int.c); FPL_ENOMEM possible */
int fpl__quant_int_pack(const fpl_quant_t *q, const double *x, size_t n, size_t g, uint8_t *out);
void fpl__quant_int_unpack(const fpl_quant_t *q, const uint8_t *in, size_t n, size_t g,
                           size_t in_bytes, double *y);

/* OCP MX and NVFP4 (quant_mx.c); FPL_ENOMEM possible */
int fpl__quant_mx_pack(const fpl_quant_t *q, const double *x, size_t n, uint8_t *out);
void fpl__quant_mx_unpack(const fpl_quant_t *q, const uint8_t *in, size_t n, double *y);
int fpl__quant_nvfp4_pack(const fpl_quant_t *q, const double *x, size_t n, uint8_t *out);
void fpl__quant_nvfp4_unpack(const fpl_quant_t *q, const uint8_t *in, size_t n, double *y);

#endif /* FPL_QUANT_IMPL_H */
