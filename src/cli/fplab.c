/* fplab.c -- the fplab command: formats, info, table, round, calc */
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

#include "fplab.h"

#define EXIT_USAGE 2

static const char *prog = "fplab";

/* One message on stderr; the caller returns a non-zero status. */
static int die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int die(int status, const char *fmt, ...)
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

typedef struct {
    char *buf;
    size_t len;
    FILE *fp;
} out_t;

static int out_open(out_t *o)
{
    o->buf = NULL;
    o->len = 0;
    o->fp = open_memstream(&o->buf, &o->len);
    return o->fp ? 0 : die(1, "out of memory");
}

static int out_commit(out_t *o, int status)
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
static void put_value(FILE *fp, double v)
{
    if (isnan(v))
        fputs("nan", fp);
    else if (isinf(v))
        fputs(v < 0 ? "-inf" : "inf", fp);
    else
        fprintf(fp, "%a", v);
}

/* ---- options ------------------------------------------------------------ */

enum { OPT_ROUNDING = 1, OPT_SEED = 2, OPT_OVERFLOW = 4, OPT_PATH = 8, OPT_ROUND_INPUTS = 16 };

typedef struct {
    fpl_rmode_t mode;
    uint64_t seed;
    int have_overflow;
    fpl_overflow_t overflow;
    int fast_path;
    int round_inputs;
    int help;
    char **pos;
    int npos;
} opts_t;

static int parse_u64(const char *s, uint64_t *out)
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
static int parse_opts(const char *cmd, int argc, char **argv, unsigned mask, opts_t *o)
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
static int get_format(const char *cmd, const opts_t *o, fpl_format_t *f)
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
static int read_exact(const char *s, mpfr_t x)
{
    char *end;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return -1;
    mpfr_set_prec(x, 256);
    int inex = mpfr_strtofr(x, s, &end, 0, MPFR_RNDZ);
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
typedef int (*line_fn)(void *ctx, char *line, long lineno);

static int for_each_line(line_fn fn, void *ctx)
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

/* ---- help texts --------------------------------------------------------- */

static const char usage_main[] =
    "usage: fplab COMMAND [ARGS]\n"
    "\n"
    "Exact emulation of low-precision number formats.\n"
    "\n"
    "commands:\n"
    "  formats                 list every named format with its properties\n"
    "  info FORMAT             bits, bias, range, unit roundoff, special values\n"
    "  table FORMAT            every encoding and its value (formats of 16 bits or less)\n"
    "  round FORMAT [VALUE...] round values (or lines of standard input) to FORMAT\n"
    "  calc FORMAT OP          correctly rounded OP on operands read from standard input\n"
    "  quant SCHEME            quantize standard input (int4:g128, q8_0, mxfp4, nvfp4, ...)\n"
    "  run ANALYSIS            run an experiment (data, figures, verdicts)\n"
    "\n"
    "  fplab COMMAND --help    help on one command\n"
    "  fplab --version         print the version\n"
    "\n"
    "FORMAT is a name (fp32 tf32 fp16 bf16 e4m3 e5m2 e4m3fnuz e5m2fnuz e4m3b11fnuz\n"
    "e3m2 e2m3 e2m1 e8m0 int8 uint8 int4 uint4 ...), an ml_dtypes/PyTorch alias\n"
    "(float8_e4m3fn, bfloat16, ...), or a generic spelling such as fp:e=4,m=3,fn.\n";

static const char usage_formats[] =
    "usage: fplab formats\n"
    "\n"
    "List every named format: bits, exponent and mantissa widths, bias, special\n"
    "values, default overflow, largest finite value, smallest normal and\n"
    "subnormal, unit roundoff, and the accepted aliases.\n";

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

static const char usage_table[] =
    "usage: fplab table FORMAT\n"
    "\n"
    "Print every encoding of FORMAT (at most 16 bits) as 'CODE VALUE CLASS',\n"
    "CODE in hex, VALUE as a C99 hex float (or nan/inf/-inf), CLASS one of\n"
    "zero, subnormal, normal, inf, nan, noncanonical, integer.\n";

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

static const char usage_calc[] =
    "usage: fplab calc FORMAT OP [--rounding MODE] [--seed N] [--overflow POLICY]\n"
    "                  [--round-inputs]\n"
    "\n"
    "Read operands from standard input, one operation per line (1, 2 or 3\n"
    "numbers separated by blanks), and print the correctly rounded result of OP\n"
    "in FORMAT as a C99 hex float, one rounding per operation.\n"
    "\n"
    "  OP                add sub mul div (2 operands), sqrt exp log tanh (1),\n"
    "                    fma (3: a*b+c with a single rounding)\n"
    "  --rounding MODE   rne (default), rna, rtz, rup, rdown, sr\n"
    "  --seed N          seed of stochastic rounding (default 1)\n"
    "  --overflow P      inf, nan or saturate\n"
    "  --round-inputs    round the operands to FORMAT first (in the same mode);\n"
    "                    without it an operand that is not a value of FORMAT is\n"
    "                    an error\n";

static const char usage_run[] =
    "usage: fplab run ANALYSIS [--quick] [--out DIR] [--seed N] [--threads N]\n"
    "\n"
    "Run one experiment: it writes DIR/data/ANALYSIS*.csv and DIR/plots/ANALYSIS*.png|pdf\n"
    "(DIR defaults to .) and prints verdict lines 'verdict CLAIM holds|conditional|refuted\n"
    "REASON'.  The same seed gives byte-identical CSV for any number of threads.\n"
    "\n"
    "analyses:\n"
    "  dot        T1: error of length-n dot products against n (formats, accumulators,\n"
    "             orders, rounding modes; positive and zero-mean data)\n"
    "  residual   T2: per-layer error of residual stacks with pre-LN, post-LN, RMSNorm\n"
    "             and no normalisation (total, introduced, inherited, amplification)\n"
    "  layernorm  T3: LayerNorm against scale-like and random perturbations; the error\n"
    "             of LayerNorm statistics in low precision\n"
    "  granularity T5: SQNR against bits per value of integer (per tensor, channel,\n"
    "             group), GGUF, MX and NVFP4 quantizers; matmul error\n"
    "\n"
    "  --quick      small sizes (seconds; what the tests run)\n"
    "  --out DIR    where data/ and plots/ go\n"
    "  --seed N     master seed (default 1)\n"
    "  --threads N  OpenMP threads (default: all cores)\n";

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

static const char *const analyses[] = {"dot", "residual", "layernorm", "granularity"};

static int help(const char *text)
{
    fputs(text, stdout);
    return 0;
}

/* ---- commands ----------------------------------------------------------- */

static int cmd_formats(int argc, char **argv)
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

static void put_kv(FILE *fp, const char *key, double v)
{
    fprintf(fp, "%s: ", key);
    put_value(fp, v);
    fprintf(fp, " (%.17g)\n", v);
}

/* The preamble of commands taking exactly one FORMAT: options, --help,
 * the format, no stray arguments.  Returns the exit status to stop with,
 * or -1 to go on with *f filled. */
static int one_format_command(const char *cmd, int argc, char **argv, unsigned mask,
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

static int cmd_info(int argc, char **argv)
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

static int cmd_table(int argc, char **argv)
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

static int cmd_round(int argc, char **argv)
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

static int cmd_calc(int argc, char **argv)
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

static int parse_size(const char *cmd, const char *opt, const char *val, size_t *out)
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

static int cmd_quant(int argc, char **argv)
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

/* Where the analysis programs are: $FPLAB_ANALYSES_DIR, else the build
 * tree when this fplab is the one built there, else the installed libexec. */
static void analyses_dir(char *buf, size_t n)
{
    const char *env = getenv("FPLAB_ANALYSES_DIR");
    if (env && *env) {
        snprintf(buf, n, "%s", env);
        return;
    }
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    self[len > 0 ? len : 0] = '\0';
    size_t bl = strlen(FPL_BUILDDIR);
    if (len > 0 && !strncmp(self, FPL_BUILDDIR "/", bl + 1))
        snprintf(buf, n, "%s/analyses", FPL_BUILDDIR);
    else
        snprintf(buf, n, "%s", FPL_LIBEXECDIR);
}

static int cmd_run(int argc, char **argv)
{
    if (argc < 1)
        return die(EXIT_USAGE, "run: missing ANALYSIS (try 'fplab run --help')");
    if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))
        return help(usage_run);
    const char *name = argv[0];
    int known = 0;
    for (size_t i = 0; i < sizeof analyses / sizeof analyses[0]; i++)
        known |= !strcmp(name, analyses[i]);
    if (!known)
        return die(EXIT_USAGE, "run: unknown analysis '%s' (try 'fplab run --help')", name);
    /* check the options here so a mistake gets fplab's one-line message */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick") || !strcmp(a, "--help") || !strcmp(a, "-h"))
            continue;
        int takes = !strcmp(a, "--out") || !strcmp(a, "--seed") || !strcmp(a, "--threads");
        int inline_val = !strncmp(a, "--out=", 6) || !strncmp(a, "--seed=", 7) ||
                         !strncmp(a, "--threads=", 10);
        if (takes && i + 1 >= argc)
            return die(EXIT_USAGE, "run: option %s needs a value", a);
        if (!takes && !inline_val)
            return die(EXIT_USAGE, "run: unknown option '%s' (try 'fplab run --help')", a);
        i += takes;
    }
    char dir[4096], path[4200];
    analyses_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (access(path, X_OK) != 0)
        return die(1, "run: analysis program %s not found (build it with 'make', or set "
                      "FPLAB_ANALYSES_DIR)", path);
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args)
        return die(1, "out of memory");
    args[0] = path;
    for (int i = 1; i < argc; i++)
        args[i] = argv[i];
    fflush(stdout);
    execv(path, args);
    free(args);
    return die(1, "run: cannot execute %s: %s", path, strerror(errno));
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {{"formats", cmd_formats}, {"info", cmd_info}, {"table", cmd_table},
                {"round", cmd_round},     {"calc", cmd_calc},   {"quant", cmd_quant},
                {"run", cmd_run}};

int main(int argc, char **argv)
{
    if (argc < 2)
        return fputs(usage_main, stderr), EXIT_USAGE;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        if (argc > 2) {
            char *sub[] = {"--help", NULL};
            for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
                if (!strcmp(argv[2], commands[i].name))
                    return commands[i].run(1, sub);
            return die(EXIT_USAGE, "help: unknown command '%s'", argv[2]);
        }
        return help(usage_main);
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("fplab %s\n", fpl_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name))
            return commands[i].run(argc - 2, argv + 2);
    return die(EXIT_USAGE, "unknown command '%s' (try 'fplab --help')", cmd);
}
