/* quant.c -- tensor quantizers: scheme names, sizes, input checks and the
 * dispatch to the families (quant_int.c, quant_gguf.c, quant_q4k.c, quant_mx.c) */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "quant_impl.h"

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
        q->kind = base[1] == '8'   ? FPL_QUANT_Q8_0
                  : base[3] == '0' ? FPL_QUANT_Q4_0
                                   : FPL_QUANT_Q4_1;
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

int fpl_quant_check(const fpl_quant_t *q, size_t rows, size_t cols)
{
    if (rows == 0 || cols == 0)
        return fpl__fail(FPL_EINVAL, "%s: empty tensor", q->name);
    size_t g = fpl__quant_group_len(q, rows, cols);
    if (q->block != 0 && q->block != FPL_QUANT_CHANNEL && cols % g)
        return fpl__fail(FPL_EINVAL, "%s: a row of %zu values is not a whole number of %s of %zu",
                         q->name, cols, q->kind == FPL_QUANT_INT ? "groups" : "blocks", g);
    return FPL_OK;
}

uint64_t fpl_quant_packed_bits(const fpl_quant_t *q, size_t rows, size_t cols)
{
    uint64_t n = (uint64_t)rows * cols, groups = n / fpl__quant_group_len(q, rows, cols);
    switch (q->kind) {
    case FPL_QUANT_Q8_0:
    case FPL_QUANT_Q4_0:
    case FPL_QUANT_Q4_1:
    case FPL_QUANT_Q4_K: return groups * fpl__gguf_block_bytes(q->kind) * 8;
    case FPL_QUANT_INT:
        return n * (uint64_t)q->bits +
               groups * (uint64_t)(q->scale.nbits + (q->asym ? q->bits : 0));
    case FPL_QUANT_MX: return groups * (8 + 32 * (uint64_t)q->elem.nbits);
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

/* ---- pack / unpack ----------------------------------------------------------- */

static int check_input(const fpl_quant_t *q, const double *x, size_t rows, size_t cols)
{
    int st = fpl_quant_check(q, rows, cols);
    if (st)
        return st;
    int gguf = fpl__quant_is_gguf(q), ok = 1;
    /* one branch-free (vectorisable) pass; the offender is looked up after */
    if (gguf)
        for (size_t i = 0; i < rows * cols; i++)
            ok &= fabsf((float)x[i]) <= FLT_MAX;
    else
        for (size_t i = 0; i < rows * cols; i++)
            ok &= fabs(x[i]) <= DBL_MAX;
    if (ok)
        return FPL_OK;
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
    size_t n = rows * cols;
    switch (q->kind) {
    case FPL_QUANT_INT:
        return fpl__quant_int_pack(q, x, n, fpl__quant_group_len(q, rows, cols), out);
    case FPL_QUANT_MX: return fpl__quant_mx_pack(q, x, n, out);
    case FPL_QUANT_NVFP4: return fpl__quant_nvfp4_pack(q, x, n, out);
    default: fpl__quant_gguf_pack(q, x, n, out); return FPL_OK;
    }
}

int fpl_quant_unpack(const fpl_quant_t *q, const uint8_t *in, size_t rows, size_t cols, double *y)
{
    int st = fpl_quant_check(q, rows, cols);
    if (st)
        return st;
    size_t n = rows * cols;
    switch (q->kind) {
    case FPL_QUANT_INT:
        fpl__quant_int_unpack(q, in, n, fpl__quant_group_len(q, rows, cols),
                              fpl_quant_packed_size(q, rows, cols), y);
        break;
    case FPL_QUANT_MX: fpl__quant_mx_unpack(q, in, n, y); break;
    case FPL_QUANT_NVFP4: fpl__quant_nvfp4_unpack(q, in, n, y); break;
    default: fpl__quant_gguf_unpack(q, in, n, y); break;
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