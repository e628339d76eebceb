/* quant_gguf.c -- GGUF q8_0, q4_0 and q4_1 blocks, bit-exact with ggml's
 * reference quantizers (binary32 arithmetic), and their binary16 scales */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "quant_impl.h"

/* ---- GGUF: binary32 arithmetic exactly as ggml's reference ------------------ */

/* binary32 -> binary16 (RNE) as x86's F16C converter does it, which is what
 * ggml uses there: a scale beyond 65504 becomes +-inf (so the block decodes
 * to inf/NaN, as in ggml), and a NaN stays a quiet NaN with the top of its
 * payload */
uint16_t fpl__to_half(const coder_t *h, float v)
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

/* float -> integer as ggml's conversions compile on x86 (cvttss2si): in
 * range, truncation; out of range or NaN, INT32_MIN.  C leaves those cases
 * undefined; they occur when a block's scale underflows, so 1/d is inf
 * (d then stores as binary16 zero, and every value decodes to 0). */
static inline int32_t x86_cvtt(double f)
{
    return f > -2147483649.0 && f < 2147483648.0 ? (int32_t)f : INT32_MIN;
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
        fpl__put_half(o, fpl__to_half(h, d));
        for (int j = 0; j < 32; j++) { /* roundf: |t| + 0.5 is exact in binary64 */
            float t = v[j] * id;
            uint32_t k = (uint32_t)x86_cvtt((double)fabsf(t) + 0.5);
            o[2 + j] = (uint8_t)(t < 0 ? 0u - k : k);
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
        fpl__put_half(o, fpl__to_half(h, d));
        for (int j = 0; j < 16; j++) {
            int8_t a = (int8_t)x86_cvtt(v[j] * id + 8.5f), c = (int8_t)x86_cvtt(v[j + 16] * id + 8.5f);
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
        fpl__put_half(o, fpl__to_half(h, d));
        fpl__put_half(o + 2, fpl__to_half(h, min));
        for (int j = 0; j < 16; j++) {
            int8_t a = (int8_t)x86_cvtt((v[j] - min) * id + 0.5f);
            int8_t c = (int8_t)x86_cvtt((v[j + 16] - min) * id + 0.5f);
            uint8_t lo = (uint8_t)(a < 15 ? a : 15), hi = (uint8_t)(c < 15 ? c : 15);
            o[4 + j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

static void gguf_unpack_block(const fpl_format_t *h, fpl_quant_kind_t kind, const uint8_t *p,
                              double *o)
{
    const float d = fpl__from_half(h, p);
    if (kind == FPL_QUANT_Q8_0) {
        for (int j = 0; j < 32; j++)
            o[j] = (double)((float)(int8_t)p[2 + j] * d);
    } else if (kind == FPL_QUANT_Q4_0) {
        for (int j = 0; j < 16; j++) {
            o[j] = (double)((float)((int)(p[2 + j] & 0x0f) - 8) * d);
            o[j + 16] = (double)((float)((int)(p[2 + j] >> 4) - 8) * d);
        }
    } else {
        const float m = fpl__from_half(h, p + 2);
        for (int j = 0; j < 16; j++) { /* q*d + m: two binary32 roundings */
            float a = (float)(p[4 + j] & 0x0f) * d, c = (float)(p[4 + j] >> 4) * d;
            o[j] = (double)(a + m);
            o[j + 16] = (double)(c + m);
        }
    }
}

void fpl__quant_gguf_pack(const fpl_quant_t *q, const double *x, size_t n, uint8_t *out)
{
    fpl_format_t half;
    fpl_format_parse("fp16", &half);
    coder_t h;
    coder_init(&h, &half);
    size_t bytes = fpl__gguf_block_bytes(q->kind);
    if (q->kind == FPL_QUANT_Q4_K) {
        fpl__quant_q4k_pack(&h, x, n / QK_K, out);
        return;
    }
    for (size_t b = 0; b < n / 32; b++)
        gguf_pack_block(&h, q->kind, x + b * 32, out + b * bytes);
}

void fpl__quant_gguf_unpack(const fpl_quant_t *q, const uint8_t *in, size_t n, double *y)
{
    fpl_format_t half;
    fpl_format_parse("fp16", &half);
    size_t bytes = fpl__gguf_block_bytes(q->kind);
    if (q->kind == FPL_QUANT_Q4_K) {
        fpl__quant_q4k_unpack(&half, in, n / QK_K, y);
        return;
    }
    for (size_t b = 0; b < n / 32; b++)
        gguf_unpack_block(&half, q->kind, in + b * bytes, y + b * 32);
}
