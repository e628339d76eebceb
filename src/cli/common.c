/* common.c -- what the fplab commands share: messages, buffered output,
 * option parsing, exact number reading, line input */
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

static const char *prog = "fplab";

/* One message on stderr; the caller returns a non-zero status. */
int die(int status, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return status;
}

/* ---- output buffer: nothing reaches stdout unless the command succeeds -- */

int out_open(out_t *o)
{
    o->buf = NULL;
    o->len = 0;
    o->fp = open_memstream(&o->buf, &o->len);
    return o->fp ? 0 : die(1, "out of memory");
}

int out_commit(out_t *o, int status)
{
    int rc = status;
    if (fclose(o->fp) != 0 && rc == 0)
        rc = die(1, "out of memory");
    if (rc == 0 && o->len && (fwrite(o->buf, 1, o->len, stdout) != o->len || fflush(stdout)))
        rc = die(1, "cannot write to standard output: %s", strerror(errno));
    free(o->buf);
    return rc;
}

/* A double as the contract prints it: %a, or nan / inf / -inf. */
void put_value(FILE *fp, double v)
{
    if (isnan(v))
        fputs("nan", fp);
    else if (isinf(v))
        fputs(v < 0 ? "-inf" : "inf", fp);
    else
        fprintf(fp, "%a", v);
}

/* ---- options ------------------------------------------------------------ */

int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!*s || *s == '-' || isspace((unsigned char)*s))
        return 0;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return 0;
    *out = (uint64_t)v;
    return 1;
}

/* Does s look like a number rather than an option?  "-1.5", "-inf", "-0x1p3". */
static int looks_numeric(const char *s)
{
    if (*s == '-')
        s++;
    return isdigit((unsigned char)*s) || *s == '.' || !strncasecmp(s, "inf", 3) ||
           !strncasecmp(s, "nan", 3);
}

/* Parse options allowed by mask; everything else is positional.  "--"
 * ends the options. */
int parse_opts(const char *cmd, int argc, char **argv, unsigned mask, opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->mode = FPL_RNE;
    o->seed = 1;
    o->pos = calloc((size_t)argc + 1, sizeof *o->pos);
    if (!o->pos)
        return die(1, "out of memory");
    int only_pos = 0;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0' || looks_numeric(a)) {
            o->pos[o->npos++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            o->help = 1;
            continue;
        }
        if (!strcmp(a, "--round-inputs") && (mask & OPT_ROUND_INPUTS)) {
            o->round_inputs = 1;
            continue;
        }
        const char *names[] = {"--rounding", "--seed", "--overflow", "--path"};
        unsigned bits[] = {OPT_ROUNDING, OPT_SEED, OPT_OVERFLOW, OPT_PATH};
        int which = -1;
        const char *val = NULL;
        for (int k = 0; k < 4; k++) {
            size_t n = strlen(names[k]);
            if (!strncmp(a, names[k], n) && (a[n] == '\0' || a[n] == '=') && (mask & bits[k])) {
                which = k;
                if (a[n] == '=')
                    val = a + n + 1;
                else if (i + 1 < argc)
                    val = argv[++i];
                else
                    return die(EXIT_USAGE, "%s: option %s needs a value", cmd, names[k]);
                break;
            }
        }
        if (which < 0)
            return die(EXIT_USAGE, "%s: unknown option '%s' (try 'fplab %s --help')", cmd, a, cmd);
        switch (which) {
        case 0:
            if (fpl_rmode_parse(val, &o->mode))
                return die(EXIT_USAGE, "%s: %s", cmd, fpl_last_error());
            break;
        case 1:
            if (!parse_u64(val, &o->seed))
                return die(EXIT_USAGE, "%s: bad seed '%s' (expected an integer 0 to 2^64-1)", cmd,
                           val);
            break;
        case 2:
            if (fpl_overflow_parse(val, &o->overflow))
                return die(EXIT_USAGE, "%s: %s", cmd, fpl_last_error());
            o->have_overflow = 1;
            break;
        default:
            if (!strcmp(val, "fast"))
                o->fast_path = 1;
            else if (strcmp(val, "mpfr"))
                return die(EXIT_USAGE, "%s: bad --path '%s' (expected fast or mpfr)", cmd, val);
            break;
        }
    }
    return 0;
}

/* The format named by the first positional argument, with --overflow applied. */
int get_format(const char *cmd, const opts_t *o, fpl_format_t *f)
{
    if (o->npos < 1)
        return die(EXIT_USAGE, "%s: missing FORMAT (try 'fplab %s --help')", cmd, cmd);
    if (fpl_format_parse(o->pos[0], f))
        return die(EXIT_USAGE, "%s: %s", cmd, fpl_last_error());
    if (o->have_overflow && fpl_format_set_overflow(f, o->overflow))
        return die(EXIT_USAGE, "%s: %s", cmd, fpl_last_error());
    return 0;
}

/* ---- reading numbers exactly -------------------------------------------- */

/* Read the number in s (decimal or hex, as strtod spells them) into x so
 * that rounding x to any format of up to 53 bits gives the correctly rounded
 * value of the exact number: 256 bits toward zero plus a sticky bit (see
 * fpl_arith for why that suffices).  Returns 0 or -1 if s is not a number. */
/* MPFR misreads decimal exponents beyond its own range (1e-4000000000000
 * came back as inf).  An exponent of more than 7 digits puts any number of
 * up to 10^6 digits far outside every format (binary64 ends near 1e-324 and
 * 1e308), so it is replaced by +-10^7, which rounds the same way in every
 * mode.  Returns s itself, or a copy in *buf (freed by the caller). */
static const char *clamp_exponent(const char *s, char **buf)
{
    *buf = NULL;
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    int hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
    const char *e = strpbrk(p + (hex ? 2 : 0), hex ? "pP" : "eE");
    if (!e || (size_t)(e - s) > 1000000)
        return s;
    const char *d = e + 1;
    int neg = *d == '-';
    if (*d == '+' || *d == '-')
        d++;
    while (*d == '0')
        d++;
    size_t nd = 0;
    while (isdigit((unsigned char)d[nd]))
        nd++;
    if (nd <= 7)
        return s;
    size_t head = (size_t)(e - s) + 1, len = strlen(d + nd);
    if (!(*buf = malloc(head + 10 + len + 1)))
        return s;
    memcpy(*buf, s, head);
    sprintf(*buf + head, "%s10000000%s", neg ? "-" : "", d + nd);
    return *buf;
}

static int read_finish(mpfr_t x, const char *s, char *end, int inex);

int read_exact(const char *s, mpfr_t x)
{
    char *end, *copy;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return -1;
    s = clamp_exponent(s, &copy);
    mpfr_set_prec(x, 256);
    int inex = mpfr_strtofr(x, s, &end, 0, MPFR_RNDZ);
    int rc = read_finish(x, s, end, inex);
    free(copy);
    return rc;
}

/* the rest of read_exact, once MPFR has read s up to end */
static int read_finish(mpfr_t x, const char *s, char *end, int inex)
{
    if (end == s)
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return -1;
    /* reject MPFR-only spellings strtod does not read, such as @nan@ */
    if (strchr(s, '@'))
        return -1;
    if (inex != 0 && mpfr_regular_p(x)) {
        mpfr_prec_round(x, 257, MPFR_RNDN);
        mpfr_t h;
        mpfr_init2(h, 2);
        mpfr_set_ui_2exp(h, 1, mpfr_get_exp(x) - 257, MPFR_RNDN);
        if (mpfr_signbit(x))
            mpfr_sub(x, x, h, MPFR_RNDN);
        else
            mpfr_add(x, x, h, MPFR_RNDN);
        mpfr_clear(h);
    }
    return 0;
}

/* Split standard input into lines; calls fn on each non-blank line. */

int for_each_line(line_fn fn, void *ctx)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            continue;
        if ((rc = fn(ctx, p, lineno)) != 0)
            break;
    }
    if (!rc && ferror(stdin))
        rc = die(1, "error reading standard input: %s", strerror(errno));
    free(line);
    return rc;
}

int help(const char *text)
{
    fputs(text, stdout);
    return 0;
}

/* The preamble of commands taking exactly one FORMAT: options, --help,
 * the format, no stray arguments.  Returns the exit status to stop with,
 * or -1 to go on with *f filled. */
int one_format_command(const char *cmd, int argc, char **argv, unsigned mask,
                              const char *usage, fpl_format_t *f)
{
    opts_t o;
    int rc = parse_opts(cmd, argc, argv, mask, &o);
    if (!rc && o.help)
        rc = help(usage) ? 1 : 0;
    else if (!rc && !(rc = get_format(cmd, &o, f)) && o.npos > 1)
        rc = die(EXIT_USAGE, "%s: unexpected argument '%s'", cmd, o.pos[1]);
    else if (!rc)
        rc = -1;
    free(o.pos);
    return rc;
}

int parse_size(const char *cmd, const char *opt, const char *val, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(val, &end, 10);
    if (errno || *end || *val == '-' || v == 0)
        return die(EXIT_USAGE, "%s: bad value '%s' for %s (expected a positive integer)", cmd, val,
                   opt);
    *out = (size_t)v;
    return 0;
}
