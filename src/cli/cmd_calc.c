/* cmd_calc.c -- fplab calc FORMAT OP: correctly rounded operations */
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

static const char usage_calc[] =
    "usage: fplab calc FORMAT OP [--rounding MODE] [--seed N] [--overflow POLICY]\n"
    "                  [--round-inputs]\n"
    "\n"
    "Read operands from standard input, one operation per line (1, 2 or 3\n"
    "numbers separated by blanks), and print the correctly rounded result of OP\n"
    "in FORMAT as a C99 hex float, one rounding per operation.\n"
    "\n"
    "  OP                add sub mul div (2 operands), sqrt exp log tanh expm1 (1),\n"
    "                    fma (3: a*b+c with a single rounding)\n"
    "  --rounding MODE   rne (default), rna, rtz, rup, rdown, sr\n"
    "  --seed N          seed of stochastic rounding (default 1)\n"
    "  --overflow P      inf, nan or saturate\n"
    "  --round-inputs    round the operands to FORMAT first (in the same mode);\n"
    "                    without it an operand that is not a value of FORMAT is\n"
    "                    an error\n";

typedef struct {
    const fpl_format_t *f;
    const opts_t *o;
    fpl_op_t op;
    fpl_sr_t sr;
    FILE *fp;
    mpfr_t x;
} calc_ctx_t;

static int calc_line(void *ctx, char *line, long lineno)
{
    calc_ctx_t *c = ctx;
    int want = fpl_op_arity(c->op), n = 0;
    double args[3];
    for (char *tok = strtok(line, " \t\r"); tok; tok = strtok(NULL, " \t\r")) {
        if (n == want)
            return die(EXIT_USAGE, "calc: line %ld: %s takes %d operand%s, got more", lineno,
                       fpl_op_name(c->op), want, want > 1 ? "s" : "");
        if (read_exact(tok, c->x))
            return die(EXIT_USAGE, "calc: line %ld: not a number: '%s'", lineno, tok);
        double v = fpl_round_mpfr(c->f, c->x, c->o->round_inputs ? c->o->mode : FPL_RNE, &c->sr);
        int is_value = mpfr_nan_p(c->x) ? c->f->has_nan
                       : mpfr_inf_p(c->x) ? c->f->has_inf
                                          : mpfr_cmp_d(c->x, v) == 0 && fpl_format_contains(c->f, v);
        if (!c->o->round_inputs && !is_value)
            return die(EXIT_USAGE,
                       "calc: line %ld: operand '%s' is not a value of %s (use --round-inputs, "
                       "or 'fplab round %s' to see the nearest)",
                       lineno, tok, c->f->name, c->f->name);
        args[n++] = v;
    }
    if (n != want)
        return die(EXIT_USAGE, "calc: line %ld: %s takes %d operand%s, got %d", lineno,
                   fpl_op_name(c->op), want, want > 1 ? "s" : "", n);
    put_value(c->fp, fpl_arith(c->f, c->op, args, c->o->mode, &c->sr));
    fputc('\n', c->fp);
    return 0;
}

int cmd_calc(int argc, char **argv)
{
    opts_t o;
    fpl_format_t f;
    fpl_op_t op;
    int rc = parse_opts("calc", argc, argv,
                        OPT_ROUNDING | OPT_SEED | OPT_OVERFLOW | OPT_ROUND_INPUTS, &o);
    if (!rc && o.help) {
        free(o.pos);
        return help(usage_calc);
    }
    if (!rc)
        rc = get_format("calc", &o, &f);
    if (!rc && o.npos < 2)
        rc = die(EXIT_USAGE, "calc: missing OP (try 'fplab calc --help')");
    if (!rc && fpl_op_parse(o.pos[1], &op))
        rc = die(EXIT_USAGE, "calc: %s", fpl_last_error());
    if (!rc && o.npos > 2)
        rc = die(EXIT_USAGE, "calc: unexpected argument '%s' (operands come from standard input)",
                 o.pos[2]);
    free(o.pos);
    if (rc)
        return rc;
    out_t out;
    if (out_open(&out))
        return 1;
    calc_ctx_t c = {.f = &f, .o = &o, .op = op, .fp = out.fp};
    fpl_sr_seed(&c.sr, o.seed);
    mpfr_init2(c.x, 256);
    rc = for_each_line(calc_line, &c);
    mpfr_clear(c.x);
    return out_commit(&out, rc);
}
