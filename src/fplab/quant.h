/* quant.h -- tensor quantizers with real packed storage */
#ifndef FPL_QUANT_H
#define FPL_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"

/* A tensor is rows x cols, row-major; a row is an output channel.  Blocks
 * and groups run along rows (cols must be a multiple of their size).
 * Every scheme stores real packed bytes; dequantization always reads them
 * back, so a simulated value is exactly what the stored bytes mean. */
typedef enum {
    FPL_QUANT_Q8_0 = 0, /* GGUF: 32 x int8, binary16 d = amax/127: 8.5 bits/value */
    FPL_QUANT_Q4_0,     /* GGUF: 32 x 4 bits, d = m/-8 (m: value of largest |x|): 4.5 */
    FPL_QUANT_Q4_1,     /* GGUF: 32 x 4 bits, d = (max-min)/15, binary16 min: 5.0 */
    FPL_QUANT_Q4_K,     /* GGUF k-quant: super-blocks of 256 = 8 sub-blocks of 32,
                           4-bit codes, 6-bit sub-block scales and mins under
                           binary16 super-scales: 4.5 */
    FPL_QUANT_INT,      /* b-bit integers with a scale per tensor, row or group */
    FPL_QUANT_MX,       /* OCP MX v1.0: 32 elements sharing an E8M0 scale */
    FPL_QUANT_NVFP4     /* 16 E2M1 elements, an E4M3 block scale, an fp32
                           tensor scale amax / (6 * 448) */
} fpl_quant_kind_t;

/* Clipping-range calibration of integer schemes. */
typedef enum {
    FPL_CALIB_ABSMAX = 0,    /* the group's max |x| (or min and max) */
    FPL_CALIB_PERCENTILE = 1,/* the p-th percentile of |x| (asym: of x, both tails) */
    FPL_CALIB_MSE = 2        /* the clipping ratio in {1, 0.99, ..., 0.50} with the
                                least squared error of the group */
} fpl_calib_t;

typedef struct {
    char name[48];
    fpl_quant_kind_t kind;
    size_t block;         /* GGUF/MX: 32 (q4_K: 256), NVFP4: 16; INT: group size, 0 = per
                             tensor, FPL_QUANT_CHANNEL = per row */
    int bits;             /* INT: 2..8 */
    int asym;             /* INT: zero point, codes 0..2^b-1 */
    fpl_format_t elem;    /* MX/NVFP4 element format */
    fpl_format_t scale;   /* INT: format the scales are stored in (fp32 default) */
    int scale_up;         /* MX: round the shared exponent up (never clip) */
    fpl_calib_t calib;
    double percentile;    /* for FPL_CALIB_PERCENTILE, e.g. 99.9 */
} fpl_quant_t;

#define FPL_QUANT_CHANNEL ((size_t)-1)

/* Parse a scheme: q8_0 q4_0 q4_1 q4_K; mxfp8_e4m3 mxfp8_e5m2 mxfp6_e3m2
 * mxfp6_e2m3 mxfp4 mxint8 (":up" for the round-up scale); nvfp4; and
 * integers "int8", "int4", "int2" (per tensor) with ":gN" (groups of N),
 * ":channel", ":asym", ":scale=FMT" (fp32, fp16, bf16, e4m3, e8m0, ...) in any
 * order, e.g. "int4:g128", "int4:g32:asym", "int8:channel".  Returns 0 or
 * FPL_EINVAL with a message. */
int fpl_quant_parse(const char *name, fpl_quant_t *q);

/* Set the calibration of an integer scheme (percentile p in (50, 100]). */
int fpl_quant_set_calib(fpl_quant_t *q, fpl_calib_t c, double p);

/* Check that a rows x cols tensor fits the scheme (blocks and groups divide
 * the row).  Returns 0 or FPL_EINVAL with a message. */
int fpl_quant_check(const fpl_quant_t *q, size_t rows, size_t cols);

/* Exact size of the packed tensor, in bits, and the bits per value it
 * amounts to (scales, zero points and the NVFP4 tensor scale included). */
uint64_t fpl_quant_packed_bits(const fpl_quant_t *q, size_t rows, size_t cols);
double fpl_quant_bits_per_weight(const fpl_quant_t *q, size_t rows, size_t cols);
/* ceil(packed bits / 8) */
size_t fpl_quant_packed_size(const fpl_quant_t *q, size_t rows, size_t cols);

/* Quantize into packed bytes (fpl_quant_packed_size).  Every value must be
 * finite (and, for GGUF, a finite binary32 once rounded); otherwise
 * FPL_EINVAL and nothing is written. */
int fpl_quant_pack(const fpl_quant_t *q, const double *x, size_t rows, size_t cols,
                   uint8_t *out);

/* Dequantize packed bytes. */
int fpl_quant_unpack(const fpl_quant_t *q, const uint8_t *in, size_t rows, size_t cols,
                     double *y);

/* y = unpack(pack(x)); y may alias x. */
int fpl_quant_apply(const fpl_quant_t *q, const double *x, size_t rows, size_t cols, double *y);

#endif /* FPL_QUANT_H */
