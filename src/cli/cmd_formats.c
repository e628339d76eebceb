/* cmd_formats.c -- fplab formats: every named format and its properties */
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

static const char usage_formats[] =
    "usage: fplab formats\n"
    "\n"
    "List every named format: bits, exponent and mantissa widths, bias, special\n"
    "values, default overflow, largest finite value, smallest normal and\n"
    "subnormal, unit roundoff, and the accepted aliases.\n";

int cmd_formats(int argc, char **argv)
{
    opts_t o;
    int rc = parse_opts("formats", argc, argv, 0, &o);
    if (!rc && !o.help && o.npos)
        rc = die(EXIT_USAGE, "formats: unexpected argument '%s'", o.pos[0]);
    int want_help = o.help;
    free(o.pos);
    if (rc)
        return rc;
    if (want_help)
        return help(usage_formats);
    out_t out;
    if (out_open(&out))
        return 1;
    fprintf(out.fp, "%-12s %4s %3s %3s %5s %-5s %-8s %-13s %-13s %-13s %-10s %s\n", "name", "bits",
            "e", "m", "bias", "spec", "overflow", "max", "min_normal", "min_subnorm", "u",
            "aliases");
    const char *aliases;
    const char *name;
    for (size_t i = 0; (name = fpl_format_preset(i, &aliases)) != NULL; i++) {
        fpl_format_t f;
        if (fpl_format_parse(name, &f))
            return out_commit(&out, die(1, "internal error: preset %s: %s", name,
                                        fpl_last_error()));
        if (f.kind == FPL_KIND_INT) {
            fprintf(out.fp, "%-12s %4d %3s %3s %5s %-5s %-8s %-13.6g %-13s %-13s %-10s %s\n",
                    f.name, f.nbits, "-", "-", "-", "int", fpl_overflow_name(f.overflow),
                    f.max_finite, "-", "-", "-", aliases);
        } else {
            char sub[32];
            if (f.subnormals && f.mbits > 0)
                snprintf(sub, sizeof sub, "%.6g", f.min_positive);
            else
                snprintf(sub, sizeof sub, "none");
            fprintf(out.fp, "%-12s %4d %3d %3d %5d %-5s %-8s %-13.6g %-13.6g %-13s %-10.4g %s\n",
                    f.name, f.nbits, f.ebits, f.mbits, f.bias, fpl_specials_name(f.specials),
                    fpl_overflow_name(f.overflow), f.max_finite, f.min_normal, sub,
                    f.unit_roundoff, aliases);
        }
    }
    return out_commit(&out, 0);
}
