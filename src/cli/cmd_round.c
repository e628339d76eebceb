/* cmd_round.c -- fplab round FORMAT: round values to a format */
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

static const char usage_round[] =
    "usage: fplab round FORMAT [--rounding MODE] [--seed N] [--overflow POLICY]\n"
    "                   [--path mpfr|fast] [VALUE...]\n"
    "\n"
    "Round each VALUE (or each line of standard input) to FORMAT and print the\n"
    "result as a C99 hex float (%a), or nan / inf / -inf.\n"
    "\n"
    "  --rounding MODE   rne (default), rna, rtz, rup, rdown, sr (stochastic)\n"
    "  --seed N          seed of stochastic rounding (default 1); value i of the\n"
    "                    input uses draw i of the stream, so output is reproducible\n"
    "  --overflow P      inf, nan or saturate (default: the format's own)\n"
    "  --path mpfr       (default) read each VALUE exactly and round it with MPFR:\n"
    "                    a decimal is rounded once, never through binary64\n"
    "  --path fast       read each VALUE as the nearest double (strtod), then use\n"
    "                    the fast bit-level path\n"
    "\n"
    "VALUE is decimal or hex, as strtod reads it (1.5, -0x1.8p+3, inf, nan).\n"
    "Formats without NaN print nan for a NaN input: the value has no encoding.\n";

typedef struct {
    const fpl_format_t *f;
    const opts_t *o;
    fpl_sr_t sr;
    FILE *fp;
    mpfr_t x;
} round_ctx_t;

static int round_one_value(round_ctx_t *c, const char *s, const char *where)
{
    double r;
    if (c->o->fast_path) {
        char *end;
        errno = 0;
        double d = strtod(s, &end);
        while (isspace((unsigned char)*end))
            end++;
        if (end == s || *end)
            return die(EXIT_USAGE, "round: %snot a number: '%s'", where, s);
        r = fpl_round(c->f, d, c->o->mode, &c->sr);
    } else {
        if (read_exact(s, c->x))
            return die(EXIT_USAGE, "round: %snot a number: '%s'", where, s);
        r = fpl_round_mpfr(c->f, c->x, c->o->mode, &c->sr);
    }
    put_value(c->fp, r);
    fputc('\n', c->fp);
    return 0;
}

static int round_line(void *ctx, char *line, long lineno)
{
    char where[48];
    snprintf(where, sizeof where, "line %ld: ", lineno);
    return round_one_value(ctx, line, where);
}

int cmd_round(int argc, char **argv)
{
    opts_t o;
    fpl_format_t f;
    int rc = parse_opts("round", argc, argv, OPT_ROUNDING | OPT_SEED | OPT_OVERFLOW | OPT_PATH, &o);
    if (!rc && o.help) {
        free(o.pos);
        return help(usage_round);
    }
    if (!rc)
        rc = get_format("round", &o, &f);
    if (rc) {
        free(o.pos);
        return rc;
    }
    out_t out;
    if (out_open(&out)) {
        free(o.pos);
        return 1;
    }
    round_ctx_t c = {.f = &f, .o = &o, .fp = out.fp};
    fpl_sr_seed(&c.sr, o.seed);
    mpfr_init2(c.x, 256);
    if (o.npos > 1) {
        for (int i = 1; i < o.npos && !rc; i++)
            rc = round_one_value(&c, o.pos[i], "");
    } else {
        rc = for_each_line(round_line, &c);
    }
    mpfr_clear(c.x);
    free(o.pos);
    return out_commit(&out, rc);
}
