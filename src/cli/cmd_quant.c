/* cmd_quant.c -- fplab quant SCHEME: quantize, pack and unpack tensors */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

static const char usage_quant[] =
    "usage: fplab quant SCHEME [--rows R] [--group G] [--calib METHOD] [--stats]\n"
    "                   [--pack FILE]\n"
    "       fplab quant SCHEME --unpack FILE --rows R --cols C\n"
    "\n"
    "Quantize the numbers on standard input (row-major, R rows; a row is an output\n"
    "channel) and print the dequantized values as C99 hex floats, or with --stats\n"
    "the SQNR (dB), the largest absolute error and the bits per value (scales\n"
    "included).  --pack writes the packed bytes to FILE (atomically); --unpack\n"
    "reads them back and prints the values.\n"
    "\n"
    "schemes:\n"
    "  int8 int4 int2 [:gN | :channel] [:asym] [:scale=FMT]   e.g. int4:g128, int8:channel\n"
    "  q8_0 q4_0 q4_1                  GGUF blocks of 32, bit-exact with ggml\n"
    "  q4_K                            GGUF super-blocks of 256 (8 x 32, 6-bit scales and mins)\n"
    "  mxfp8_e4m3 mxfp8_e5m2 mxfp6_e3m2 mxfp6_e2m3 mxfp4 mxint8 [:up]\n"
    "                                  OCP MX blocks of 32 with an E8M0 scale; :up rounds\n"
    "                                  the shared exponent up so the block maximum never clips\n"
    "  nvfp4                           16 E2M1 values, E4M3 block scale, fp32 tensor scale\n"
    "\n"
    "  --rows R       rows of the tensor (default 1); the row length must be a\n"
    "                 multiple of the block or group size\n"
    "  --group G      group size of an integer scheme (same as :gG)\n"
    "  --calib M      integer schemes: absmax (default), mse, or pNN (percentile, e.g. p99.9)\n";

typedef struct {
    double *v;
    size_t n, cap;
} vec_t;

static int read_values(void *ctx, char *line, long lineno)
{
    vec_t *V = ctx;
    for (char *tok = strtok(line, " \t\r,"); tok; tok = strtok(NULL, " \t\r,")) {
        char *end;
        double d = strtod(tok, &end);
        if (end == tok || *end)
            return die(EXIT_USAGE, "quant: line %ld: not a number: '%s'", lineno, tok);
        if (!isfinite(d))
            return die(EXIT_USAGE, "quant: line %ld: %s cannot be quantized (NaN and inf are "
                                   "refused)", lineno, tok);
        if (V->n == V->cap) {
            V->cap = V->cap ? 2 * V->cap : 1024;
            double *nv = realloc(V->v, V->cap * sizeof *nv);
            if (!nv)
                return die(1, "out of memory");
            V->v = nv;
        }
        V->v[V->n++] = d;
    }
    return 0;
}

int cmd_quant(int argc, char **argv)
{
    const char *scheme = NULL, *pack = NULL, *unpack = NULL, *calib = NULL;
    size_t rows = 1, cols = 0, group = 0;
    int stats = 0, have_rows = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return help(usage_quant);
        if (!strcmp(a, "--stats")) {
            stats = 1;
            continue;
        }
        const char *names[] = {"--rows", "--cols", "--group", "--calib", "--pack", "--unpack"};
        int k = -1;
        const char *val = NULL;
        for (int j = 0; j < 6; j++) {
            size_t n = strlen(names[j]);
            if (!strncmp(a, names[j], n) && (a[n] == '\0' || a[n] == '=')) {
                k = j;
                val = a[n] == '=' ? a + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
            }
        }
        if (k < 0 && a[0] == '-')
            return die(EXIT_USAGE, "quant: unknown option '%s' (try 'fplab quant --help')", a);
        if (k < 0) {
            if (scheme)
                return die(EXIT_USAGE, "quant: unexpected argument '%s' (values come from "
                                       "standard input)", a);
            scheme = a;
            continue;
        }
        if (!val)
            return die(EXIT_USAGE, "quant: option %s needs a value", names[k]);
        int rc = 0;
        switch (k) {
        case 0: rc = parse_size("quant", names[k], val, &rows); have_rows = 1; break;
        case 1: rc = parse_size("quant", names[k], val, &cols); break;
        case 2: rc = parse_size("quant", names[k], val, &group); break;
        case 3: calib = val; break;
        case 4: pack = val; break;
        default: unpack = val; break;
        }
        if (rc)
            return rc;
    }
    if (!scheme)
        return die(EXIT_USAGE, "quant: missing SCHEME (try 'fplab quant --help')");
    fpl_quant_t q;
    if (fpl_quant_parse(scheme, &q))
        return die(EXIT_USAGE, "quant: %s", fpl_last_error());
    if (group) {
        if (q.kind != FPL_QUANT_INT)
            return die(EXIT_USAGE, "quant: --group applies to integer schemes, not %s", scheme);
        q.block = group;
    }
    if (calib) {
        fpl_calib_t c = FPL_CALIB_ABSMAX;
        double p = 0;
        if (!strcmp(calib, "mse"))
            c = FPL_CALIB_MSE;
        else if (calib[0] == 'p') {
            char *end;
            p = strtod(calib + 1, &end);
            if (end == calib + 1 || *end)
                return die(EXIT_USAGE, "quant: bad calibration '%s' (absmax, mse or pNN)", calib);
            c = FPL_CALIB_PERCENTILE;
        } else if (strcmp(calib, "absmax"))
            return die(EXIT_USAGE, "quant: bad calibration '%s' (absmax, mse or pNN)", calib);
        if (fpl_quant_set_calib(&q, c, p))
            return die(EXIT_USAGE, "quant: %s", fpl_last_error());
    }
    out_t out;
    if (unpack) {
        if (!have_rows || !cols)
            return die(EXIT_USAGE, "quant: --unpack needs --rows and --cols");
        if (pack || stats)
            return die(EXIT_USAGE, "quant: --unpack goes with neither --pack nor --stats");
        if (fpl_quant_check(&q, rows, cols))
            return die(EXIT_USAGE, "quant: %s", fpl_last_error());
        size_t bytes = fpl_quant_packed_size(&q, rows, cols);
        FILE *fp = fopen(unpack, "rb");
        if (!fp)
            return die(1, "quant: cannot open %s: %s", unpack, strerror(errno));
        uint8_t *buf = malloc(bytes + 1);
        double *y = malloc(rows * cols * sizeof *y);
        size_t got = buf && y ? fread(buf, 1, bytes + 1, fp) : 0;
        fclose(fp);
        if (!buf || !y) {
            free(buf);
            free(y);
            return die(1, "out of memory");
        }
        if (got != bytes) {
            free(buf);
            free(y);
            return die(EXIT_USAGE, "quant: %s holds %zu%s bytes, but %s for %zu x %zu takes %zu",
                       unpack, got, got > bytes ? " or more" : "", scheme, rows, cols, bytes);
        }
        fpl_quant_unpack(&q, buf, rows, cols, y);
        if (out_open(&out)) {
            free(buf);
            free(y);
            return 1;
        }
        for (size_t i = 0; i < rows * cols; i++) {
            put_value(out.fp, y[i]);
            fputc('\n', out.fp);
        }
        free(buf);
        free(y);
        return out_commit(&out, 0);
    }
    if (cols)
        return die(EXIT_USAGE, "quant: --cols goes with --unpack (the row length is the number "
                               "of values / --rows)");
    vec_t V = {0};
    int rc = for_each_line(read_values, &V);
    if (!rc && V.n == 0)
        rc = die(EXIT_USAGE, "quant: no values on standard input");
    if (!rc && V.n % rows)
        rc = die(EXIT_USAGE, "quant: %zu values do not make %zu equal rows", V.n, rows);
    if (!rc && fpl_quant_check(&q, rows, V.n / rows))
        rc = die(EXIT_USAGE, "quant: %s", fpl_last_error());
    double *y = rc ? NULL : malloc(V.n * sizeof *y);
    size_t bytes = rc ? 0 : fpl_quant_packed_size(&q, rows, V.n / rows);
    uint8_t *buf = rc ? NULL : malloc(bytes + 8);
    if (!rc && (!y || !buf))
        rc = die(1, "out of memory");
    if (!rc && fpl_quant_pack(&q, V.v, rows, V.n / rows, buf))
        rc = die(EXIT_USAGE, "quant: %s", fpl_last_error());
    if (!rc)
        fpl_quant_unpack(&q, buf, rows, V.n / rows, y);
    if (!rc && pack && fpl_write_atomic(pack, (const char *)buf, bytes))
        rc = die(1, "quant: %s", fpl_last_error());
    if (!rc && !out_open(&out)) {
        if (stats) {
            double s = 0, e = 0, mx = 0;
            for (size_t i = 0; i < V.n; i++) {
                double d = y[i] - V.v[i];
                s += V.v[i] * V.v[i];
                e += d * d;
                mx = fmax(mx, fabs(d));
            }
            fprintf(out.fp, "sqnr_db: %.6g\nmax_abs_error: %a (%.17g)\nbits_per_weight: %.17g\n",
                    e > 0 ? 10 * log10(s / e) : INFINITY, mx, mx,
                    fpl_quant_bits_per_weight(&q, rows, V.n / rows));
            fprintf(out.fp, "packed_bytes: %zu\n", bytes);
        } else {
            for (size_t i = 0; i < V.n; i++) {
                put_value(out.fp, y[i]);
                fputc('\n', out.fp);
            }
        }
        rc = out_commit(&out, 0);
    } else if (!rc) {
        rc = 1;
    }
    free(V.v);
    free(y);
    free(buf);
    return rc;
}
