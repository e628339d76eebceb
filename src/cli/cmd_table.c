/* cmd_table.c -- fplab table FORMAT: every encoding and its value */
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

static const char usage_table[] =
    "usage: fplab table FORMAT\n"
    "\n"
    "Print every encoding of FORMAT (at most 16 bits) as 'CODE VALUE CLASS',\n"
    "CODE in hex, VALUE as a C99 hex float (or nan/inf/-inf), CLASS one of\n"
    "zero, subnormal, normal, inf, nan, noncanonical, integer.\n";

static const char *classify(const fpl_format_t *f, uint64_t code, double v)
{
    if (isnan(v))
        return "nan";
    if (isinf(v))
        return "inf";
    if (f->kind == FPL_KIND_INT)
        return "integer";
    uint64_t ef = (code >> f->mbits) & ((1u << f->ebits) - 1);
    uint64_t mf = code & ((1u << f->mbits) - 1);
    if (f->has_zero && ef == 0) {
        if (mf == 0)
            return "zero";
        return f->subnormals ? "subnormal" : "noncanonical";
    }
    return "normal";
}

int cmd_table(int argc, char **argv)
{
    fpl_format_t f;
    int rc = one_format_command("table", argc, argv, 0, usage_table, &f);
    if (rc >= 0)
        return rc;
    if (f.nbits > 16)
        return die(EXIT_USAGE, "table: %s has %d bits; tables are for formats of 16 bits or less",
                   f.name, f.nbits);
    out_t out;
    if (out_open(&out))
        return 1;
    int width = (f.nbits + 3) / 4;
    for (uint64_t c = 0; c < ((uint64_t)1 << f.nbits); c++) {
        double v = fpl_format_decode(&f, c);
        fprintf(out.fp, "0x%0*" PRIx64 " ", width, c);
        put_value(out.fp, v);
        fprintf(out.fp, " %s\n", classify(&f, c, v));
    }
    return out_commit(&out, 0);
}
