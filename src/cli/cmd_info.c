/* cmd_info.c -- fplab info FORMAT: the properties of one format */
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

static const char usage_info[] =
    "usage: fplab info FORMAT [--overflow inf|nan|saturate]\n"
    "\n"
    "Print the properties of FORMAT as 'key: value' lines (values as C99 hex\n"
    "floats with the decimal in parentheses).\n"
    "\n"
    "generic spelling:\n"
    "  fp:e=E,m=M[,bias=B][,ieee|fn|fnuz|nospecials][,nosub][,ovf=inf|nan|sat]\n"
    "    E exponent bits (1-11), M mantissa bits (0-52), B bias (default IEEE);\n"
    "    ieee: all-ones exponent is inf/NaN; fn: no inf, NaN = all ones;\n"
    "    fnuz: NaN at the negative-zero code, no -0; nospecials: all finite;\n"
    "    nosub: no subnormals (results below the smallest normal flush to 0 or\n"
    "    round to the smallest normal, as MPFR rounds without subnormals).\n"
    "  int:b=N[,unsigned]  N-bit integers (2-32), always saturating.\n";

static void put_kv(FILE *fp, const char *key, double v)
{
    fprintf(fp, "%s: ", key);
    put_value(fp, v);
    fprintf(fp, " (%.17g)\n", v);
}


int cmd_info(int argc, char **argv)
{
    fpl_format_t f;
    int rc = one_format_command("info", argc, argv, OPT_OVERFLOW, usage_info, &f);
    if (rc >= 0)
        return rc;
    out_t out;
    if (out_open(&out))
        return 1;
    FILE *fp = out.fp;
    const char *aliases = "", *name;
    for (size_t i = 0; (name = fpl_format_preset(i, &aliases)) != NULL; i++)
        if (!strcmp(name, f.name))
            break;
    fprintf(fp, "name: %s\n", f.name);
    fprintf(fp, "aliases: %s\n", name ? aliases : "");
    fprintf(fp, "kind: %s\n", f.kind == FPL_KIND_INT ? "integer" : "float");
    fprintf(fp, "bits: %d\n", f.nbits);
    fprintf(fp, "signed: %s\n", f.has_sign ? "yes" : "no");
    if (f.kind == FPL_KIND_FLOAT) {
        fprintf(fp, "exponent_bits: %d\n", f.ebits);
        fprintf(fp, "mantissa_bits: %d\n", f.mbits);
        fprintf(fp, "precision: %d\n", f.mbits + 1);
        fprintf(fp, "bias: %d\n", f.bias);
        fprintf(fp, "emin: %d\n", f.emin);
        fprintf(fp, "emax: %d\n", f.emax);
        put_kv(fp, "max_finite", f.max_finite);
        put_kv(fp, "min_normal", f.min_normal);
        if (f.subnormals && f.mbits > 0)
            put_kv(fp, "min_subnormal", f.min_positive);
        else
            fprintf(fp, "min_subnormal: none\n");
        put_kv(fp, "unit_roundoff", f.unit_roundoff);
        fprintf(fp, "subnormals: %s\n", f.subnormals && f.mbits > 0 ? "yes" : "no");
        fprintf(fp, "zero: %s\n", f.has_zero ? (f.has_negzero ? "+0 and -0" : "+0 only") : "none");
        fprintf(fp, "specials: %s\n", fpl_specials_name(f.specials));
        fprintf(fp, "inf: %s\n", f.has_inf ? "yes" : "no");
        fprintf(fp, "nan: %s\n", f.has_nan ? "yes" : "no (a NaN input rounds to nan, which has no encoding)");
    } else {
        put_kv(fp, "max_finite", f.max_finite);
        put_kv(fp, "min_finite", f.min_finite);
        fprintf(fp, "inf: no\nnan: no (a NaN input rounds to nan, which has no encoding)\n");
    }
    fprintf(fp, "overflow: %s\n", fpl_overflow_name(f.overflow));
    return out_commit(&out, 0);
}
