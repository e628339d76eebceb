/* quant.h -- tensor quantizers with real packed storage */
#ifndef FPL_QUANT_H
#define FPL_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* Quantization schemes.  So far the GGUF block formats, bit-exact with
 * ggml's reference quantizers (quantize_row_*_ref): the input is first
 * rounded to binary32, all arithmetic is binary32 as in ggml, scales are
 * stored as IEEE binary16 (round to nearest even), blocks are laid out as
 * ggml lays them out (little-endian binary16, then the quants; a q4 byte
 * holds element j in its low nibble and element j + 16 in its high one). */
typedef enum {
    FPL_QUANT_Q8_0 = 0, /* 32 x int8, d = amax/127, q = roundf(x/d): 8.5 bits */
    FPL_QUANT_Q4_0 = 1, /* 32 x 4 bits, d = m/-8 (m: the value of largest
                           magnitude), q = min(15, (int8)(x/d + 8.5)): 4.5 bits */
    FPL_QUANT_Q4_1 = 2  /* 32 x 4 bits, d = (max-min)/15, stored min:
                           q = min(15, (uint8)((x-min)/d + 0.5)): 5.0 bits */
} fpl_quant_kind_t;

typedef struct {
    char name[32];
    fpl_quant_kind_t kind;
    size_t block;       /* values per block */
    size_t block_bytes; /* bytes per packed block */
} fpl_quant_t;

/* Parse a scheme name ("q8_0", "q4_0", "q4_1").  Returns 0 or FPL_EINVAL. */
int fpl_quant_parse(const char *name, fpl_quant_t *q);

/* Storage cost in bits per value, scales included (8.5, 4.5, 5.0). */
double fpl_quant_bits_per_weight(const fpl_quant_t *q);

/* Bytes of the packed form of n values (n a multiple of q->block). */
size_t fpl_quant_packed_size(const fpl_quant_t *q, size_t n);

/* Quantize n values into out (fpl_quant_packed_size bytes).  n must be a
 * multiple of the block size and every value finite; otherwise FPL_EINVAL
 * and nothing is written. */
int fpl_quant_pack(const fpl_quant_t *q, const double *x, size_t n, uint8_t *out);

/* Dequantize n values from packed storage (as ggml's dequantize_row_*). */
int fpl_quant_unpack(const fpl_quant_t *q, const uint8_t *in, size_t n, double *y);

/* Quantize and dequantize: y = unpack(pack(x)).  y may alias x. */
int fpl_quant_apply(const fpl_quant_t *q, const double *x, size_t n, double *y);

#endif /* FPL_QUANT_H */
