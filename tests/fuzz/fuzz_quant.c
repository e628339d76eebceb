/* fuzz_quant.c -- packed quantized tensors, as `fplab quant --unpack` reads
 * them from a file.  The first bytes choose the scheme and the shape; the
 * rest is the packed tensor.  Properties: unpacking any bytes is safe and
 * deterministic; for finite inputs, unpack(pack(x)) equals apply(x) and
 * packing writes exactly fpl_quant_packed_size bytes. */
#include <math.h>

#include "fplab.h"
#include "fuzz.h"

static const char *const schemes[] = {"q8_0",       "q4_0",       "q4_1",       "q4_K",
                                      "int8",       "int4:g32",   "int4:g32:asym", "int8:channel",
                                      "int2:g32:scale=bf16",      "int4:g32:scale=e8m0",
                                      "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3",
                                      "mxfp4",      "mxint8",     "mxfp4:up",   "nvfp4"};
#define NSCHEMES (sizeof schemes / sizeof schemes[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    fpl_quant_t q;
    if (fpl_quant_parse(schemes[data[0] % NSCHEMES], &q) != 0)
        abort();
    size_t unit = q.kind == FPL_QUANT_INT ? 32 : q.block;
    size_t rows = 1 + data[1] % 3, cols = unit * (1 + data[2] % 2);
    data += 3;
    size -= 3;
    FUZZ_ASSERT(fpl_quant_check(&q, rows, cols) == 0, "%s %zux%zu: %s", q.name, rows, cols,
                fpl_last_error());
    size_t bytes = fpl_quant_packed_size(&q, rows, cols), n = rows * cols;
    uint8_t *buf = calloc(bytes + 16, 1);
    double *y = malloc(n * sizeof *y), *y2 = malloc(n * sizeof *y2), *x = malloc(n * sizeof *x);
    if (!buf || !y || !y2 || !x)
        abort();
    /* unpack arbitrary bytes (short input is padded with zeros) */
    memcpy(buf, data, size < bytes ? size : bytes);
    FUZZ_ASSERT(fpl_quant_unpack(&q, buf, rows, cols, y) == 0, "%s: unpack failed", q.name);
    FUZZ_ASSERT(fpl_quant_unpack(&q, buf, rows, cols, y2) == 0, "%s: unpack failed", q.name);
    FUZZ_ASSERT(!memcmp(y, y2, n * sizeof *y), "%s: unpack is not deterministic", q.name);
    /* pack values read from the input as doubles */
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        uint64_t b = 0;
        for (size_t k = 0; k < 8; k++)
            b = b << 8 | (size ? data[(8 * i + k) % size] : 0);
        memcpy(&x[i], &b, sizeof b);
        finite &= isfinite(x[i]) && fabs(x[i]) < 3e38;
    }
    if (finite) {
        memset(buf, 0xA5, bytes + 16);
        int rc = fpl_quant_pack(&q, x, rows, cols, buf);
        FUZZ_ASSERT(rc == 0, "%s: pack of finite values failed: %s", q.name, fpl_last_error());
        for (size_t i = bytes; i < bytes + 16; i++)
            FUZZ_ASSERT(buf[i] == 0xA5, "%s: pack wrote past %zu bytes", q.name, bytes);
        fpl_quant_unpack(&q, buf, rows, cols, y);
        FUZZ_ASSERT(fpl_quant_apply(&q, x, rows, cols, y2) == 0, "%s: apply failed", q.name);
        for (size_t i = 0; i < n; i++)
            FUZZ_ASSERT((isnan(y[i]) && isnan(y2[i])) || !memcmp(&y[i], &y2[i], sizeof y[i]),
                        "%s: unpack(pack(x))[%zu] = %a but apply gives %a", q.name, i, y[i],
                        y2[i]);
    }
    free(buf);
    free(y);
    free(y2);
    free(x);
    return 0;
}
