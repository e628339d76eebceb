/* quant_mx.c -- OCP MX v1.0 blocks (FP8/FP6/FP4/INT8 elements under an E8M0
 * scale) and NVFP4 (E2M1 under an E4M3 block scale and an fp32 tensor scale) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "quant_impl.h"
#include "round.h"

static int elem_bits(const fpl_quant_t *q)
{
    return q->elem.nbits;
}

static int is_mxint(const fpl_quant_t *q)
{
    return q->elem.kind == FPL_KIND_INT;
}

/* the exponent of the largest normal of the element format (MXINT8: 0, its
 * elements being 8-bit two's complement with an implied 2^-6) */
static int elem_emax(const fpl_quant_t *q)
{
    return is_mxint(q) ? 0 : q->elem.emax;
}

static double elem_max(const fpl_quant_t *q)
{
    return is_mxint(q) ? 127.0 / 64 : q->elem.max_finite;
}

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

/* ---- max |x| and block division, with AVX2 where the CPU has it ----------- */

/* max |x| (x finite: max is exact and order-free) */
static double absmax(const double *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* t = x / den (den > 0), else 0 */
static void div_block(const double *x, double den, double *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        t[i] = den > 0 ? x[i] / den : 0.0;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MX_AVX2 1

__attribute__((target("avx2"))) static double absmax_avx2(const double *x, size_t n)
{
    const __m256d abs = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    __m256d m0 = _mm256_setzero_pd(), m1 = m0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        m0 = _mm256_max_pd(_mm256_and_pd(_mm256_loadu_pd(x + i), abs), m0);
        m1 = _mm256_max_pd(_mm256_and_pd(_mm256_loadu_pd(x + i + 4), abs), m1);
    }
    double l[4], m;
    _mm256_storeu_pd(l, _mm256_max_pd(m0, m1));
    m = l[0] > l[1] ? l[0] : l[1];
    m = l[2] > m ? l[2] : m;
    m = l[3] > m ? l[3] : m;
    double r = absmax(x + i, n - i);
    return r > m ? r : m;
}

__attribute__((target("avx2"))) static void div_block_avx2(const double *x, double den, double *t,
                                                           size_t n)
{
    if (!(den > 0)) {
        memset(t, 0, n * sizeof *t);
        return;
    }
    const __m256d d = _mm256_set1_pd(den);
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        _mm256_storeu_pd(t + i, _mm256_div_pd(_mm256_loadu_pd(x + i), d));
    div_block(x + i, den, t + i, n - i);
}
#endif

typedef struct {
    double (*absmax)(const double *, size_t);
    void (*div_block)(const double *, double, double *, size_t);
} mx_ops_t;

static mx_ops_t mx_ops(void)
{
#ifdef MX_AVX2
    if (fpl__quant_simd())
        return (mx_ops_t){absmax_avx2, div_block_avx2};
#endif
    return (mx_ops_t){absmax, div_block};
}

/* element code -> value, for every byte (codes beyond the format: 0) */
static void elem_table(const fpl_quant_t *q, double *etab)
{
    for (int k = 0; k < 256; k++)
        etab[k] = is_mxint(q)                ? ldexp((double)(int8_t)(uint8_t)k, -6)
                  : k < (1 << q->elem.nbits) ? fpl_format_decode(&q->elem, (uint64_t)k)
                                             : 0;
}

int fpl__quant_mx_pack(const fpl_quant_t *q, const double *x, size_t n, uint8_t *out)
{
    coder_t *ec = malloc(sizeof *ec);
    if (!ec)
        return fpl__fail(FPL_ENOMEM, "out of memory");
    if (!is_mxint(q))
        coder_init(ec, &q->elem);
    bitw_t w = {out, 0, 0};
    const mx_ops_t ops = mx_ops();
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
            ex[k] = mx_shared_exponent(q, ops.absmax(xb, 32));
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
    free(ec);
    return FPL_OK;
}

void fpl__quant_mx_unpack(const fpl_quant_t *q, const uint8_t *in, size_t n, double *y)
{
    double etab[256];
    elem_table(q, etab);
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
}

int fpl__quant_nvfp4_pack(const fpl_quant_t *q, const double *x, size_t n, uint8_t *out)
{
    coder_t *ec = malloc(sizeof *ec), *scoder = malloc(sizeof *scoder);
    if (!ec || !scoder) {
        free(ec);
        free(scoder);
        return fpl__fail(FPL_ENOMEM, "out of memory");
    }
    coder_init(ec, &q->elem);
    coder_init(scoder, &q->scale);
    bitw_t w = {out, 0, 0};
    const mx_ops_t ops = mx_ops();
    double amax = ops.absmax(x, n);
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
            double s;
            sc[k] = (uint8_t)coder_round(scoder, ops.absmax(xb, 16) / (6.0 * (double)gs), &s);
            /* x / (s gs) when s > 0: s gs > 0 too (binary64 holds it exactly) */
            ops.div_block(xb, s > 0 ? s * (double)gs : 0.0, t + k * 16, 16);
        }
        fpl_round_array(&q->elem, t, t, nb * 16, FPL_RNE, NULL);
        for (size_t k = 0; k < nb; k++) {
            *w.p++ = sc[k];
            for (int i = 0; i < 8; i++)
                *w.p++ = (uint8_t)(coder_encode(ec, t[k * 16 + 2 * i]) |
                                   (coder_encode(ec, t[k * 16 + 2 * i + 1]) << 4));
        }
    }
    free(ec);
    free(scoder);
    return FPL_OK;
}

void fpl__quant_nvfp4_unpack(const fpl_quant_t *q, const uint8_t *in, size_t n, double *y)
{
    double etab[256], stab[256];
    elem_table(q, etab);
    for (int k = 0; k < 256; k++)
        stab[k] = fpl_format_decode(&q->scale, (uint64_t)k);
    uint32_t gbits = (uint32_t)in[0] | ((uint32_t)in[1] << 8) | ((uint32_t)in[2] << 16) |
                     ((uint32_t)in[3] << 24);
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
