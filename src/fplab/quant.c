/* quant.c -- GGUF block quantizers, bit-exact with ggml's reference code */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "format.h"
#include "internal.h"
#include "quant.h"
#include "round.h"

static const struct {
    const char *name;
    fpl_quant_kind_t kind;
    size_t block, bytes;
} schemes[] = {
    {"q8_0", FPL_QUANT_Q8_0, 32, 2 + 32},
    {"q4_0", FPL_QUANT_Q4_0, 32, 2 + 16},
    {"q4_1", FPL_QUANT_Q4_1, 32, 2 + 2 + 16},
};

int fpl_quant_parse(const char *name, fpl_quant_t *q)
{
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (!strcmp(name, schemes[i].name)) {
            memset(q, 0, sizeof *q);
            strcpy(q->name, schemes[i].name);
            q->kind = schemes[i].kind;
            q->block = schemes[i].block;
            q->block_bytes = schemes[i].bytes;
            return FPL_OK;
        }
    return fpl__fail(FPL_EINVAL, "unknown quantization scheme '%s' (expected q8_0, q4_0 or q4_1)",
                     name);
}

double fpl_quant_bits_per_weight(const fpl_quant_t *q)
{
    return 8.0 * (double)q->block_bytes / (double)q->block;
}

size_t fpl_quant_packed_size(const fpl_quant_t *q, size_t n)
{
    return n / q->block * q->block_bytes;
}

/* binary32 -> binary16 bits, round to nearest even (GGML_FP32_TO_FP16) */
static uint16_t to_half(float v)
{
    fpl_format_t h;
    fpl_format_parse("fp16", &h);
    uint64_t code = 0;
    fpl_format_encode(&h, fpl_round(&h, (double)v, FPL_RNE, NULL), &code);
    return (uint16_t)code;
}

static float from_half(const uint8_t *p)
{
    fpl_format_t h;
    fpl_format_parse("fp16", &h);
    return (float)fpl_format_decode(&h, (uint64_t)p[0] | ((uint64_t)p[1] << 8));
}

static void put_half(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static int check_input(const fpl_quant_t *q, const double *x, size_t n)
{
    if (n % q->block)
        return fpl__fail(FPL_EINVAL, "%s: %zu values are not a whole number of blocks of %zu",
                         q->name, n, q->block);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]) || !isfinite((float)x[i]))
            return fpl__fail(FPL_EINVAL, "%s: value %zu (%g) is not a finite binary32 number",
                             q->name, i, x[i]);
    return FPL_OK;
}

int fpl_quant_pack(const fpl_quant_t *q, const double *x, size_t n, uint8_t *out)
{
    int st = check_input(q, x, n);
    if (st)
        return st;
    float v[32];
    for (size_t b = 0; b < n / q->block; b++) {
        uint8_t *o = out + b * q->block_bytes;
        for (int j = 0; j < 32; j++)
            v[j] = (float)x[b * 32 + (size_t)j]; /* ggml quantizes binary32 data */
        switch (q->kind) {
        case FPL_QUANT_Q8_0: {
            float amax = 0.0f;
            for (int j = 0; j < 32; j++)
                amax = fmaxf(amax, fabsf(v[j]));
            const float d = amax / ((1 << 7) - 1);
            const float id = d != 0.0f ? 1.0f / d : 0.0f;
            put_half(o, to_half(d));
            for (int j = 0; j < 32; j++)
                o[2 + j] = (uint8_t)(int8_t)roundf(v[j] * id);
            break;
        }
        case FPL_QUANT_Q4_0: {
            float amax = 0.0f, max = 0.0f;
            for (int j = 0; j < 32; j++)
                if (amax < fabsf(v[j])) {
                    amax = fabsf(v[j]);
                    max = v[j];
                }
            const float d = max / -8;
            const float id = d != 0.0f ? 1.0f / d : 0.0f;
            put_half(o, to_half(d));
            for (int j = 0; j < 16; j++) {
                int8_t a = (int8_t)(v[j] * id + 8.5f), c = (int8_t)(v[j + 16] * id + 8.5f);
                uint8_t lo = (uint8_t)(a < 15 ? a : 15), hi = (uint8_t)(c < 15 ? c : 15);
                o[2 + j] = (uint8_t)(lo | (hi << 4));
            }
            break;
        }
        case FPL_QUANT_Q4_1: {
            float min = 3.40282347e+38f, max = -3.40282347e+38f;
            for (int j = 0; j < 32; j++) {
                if (v[j] < min)
                    min = v[j];
                if (v[j] > max)
                    max = v[j];
            }
            const float d = (max - min) / ((1 << 4) - 1);
            const float id = d != 0.0f ? 1.0f / d : 0.0f;
            put_half(o, to_half(d));
            put_half(o + 2, to_half(min));
            for (int j = 0; j < 16; j++) {
                int8_t a = (int8_t)((v[j] - min) * id + 0.5f);
                int8_t c = (int8_t)((v[j + 16] - min) * id + 0.5f);
                uint8_t lo = (uint8_t)(a < 15 ? a : 15), hi = (uint8_t)(c < 15 ? c : 15);
                o[4 + j] = (uint8_t)(lo | (hi << 4));
            }
            break;
        }
        }
    }
    return FPL_OK;
}

int fpl_quant_unpack(const fpl_quant_t *q, const uint8_t *in, size_t n, double *y)
{
    if (n % q->block)
        return fpl__fail(FPL_EINVAL, "%s: %zu values are not a whole number of blocks of %zu",
                         q->name, n, q->block);
    for (size_t b = 0; b < n / q->block; b++) {
        const uint8_t *p = in + b * q->block_bytes;
        double *o = y + b * 32;
        const float d = from_half(p);
        switch (q->kind) {
        case FPL_QUANT_Q8_0:
            for (int j = 0; j < 32; j++)
                o[j] = (double)((float)(int8_t)p[2 + j] * d);
            break;
        case FPL_QUANT_Q4_0:
            for (int j = 0; j < 16; j++) {
                o[j] = (double)((float)((int)(p[2 + j] & 0x0f) - 8) * d);
                o[j + 16] = (double)((float)((int)(p[2 + j] >> 4) - 8) * d);
            }
            break;
        case FPL_QUANT_Q4_1: {
            const float m = from_half(p + 2);
            for (int j = 0; j < 16; j++) { /* q*d + m: two binary32 roundings */
                float a = (float)(p[4 + j] & 0x0f) * d, c = (float)(p[4 + j] >> 4) * d;
                o[j] = (double)(a + m);
                o[j + 16] = (double)(c + m);
            }
            break;
        }
        }
    }
    return FPL_OK;
}

int fpl_quant_apply(const fpl_quant_t *q, const double *x, size_t n, double *y)
{
    uint8_t *buf = malloc(fpl_quant_packed_size(q, n) + 1);
    if (!buf)
        return fpl__fail(FPL_ENOMEM, "out of memory");
    int st = fpl_quant_pack(q, x, n, buf);
    if (!st)
        st = fpl_quant_unpack(q, buf, n, y);
    free(buf);
    return st;
}
