/* cli.h -- what the fplab command's files share: one-line error messages,
 * output that reaches stdout only when a command succeeds, option parsing,
 * exact reading of numbers, and the commands themselves */
#ifndef FPL_CLI_H
#define FPL_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "fplab.h"

#define EXIT_USAGE 2

/* One message on stderr, "fplab: ..."; returns status for the caller to return. */
int die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- output buffer: nothing reaches stdout unless the command succeeds -- */
typedef struct {
    char *buf;
    size_t len;
    FILE *fp;
} out_t;
int out_open(out_t *o);
/* Write the buffer to stdout if status is 0; returns the final status. */
int out_commit(out_t *o, int status);

/* A double as the contract prints it: %a, or nan / inf / -inf. */
void put_value(FILE *fp, double v);

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

/* A decimal integer 0 .. 2^64-1; returns 1 on success. */
int parse_u64(const char *s, uint64_t *out);
/* Parse the options allowed by mask; everything else is positional ("--"
 * ends the options).  o->pos must be freed by the caller. */
int parse_opts(const char *cmd, int argc, char **argv, unsigned mask, opts_t *o);
/* The format named by the first positional argument, with --overflow applied. */
int get_format(const char *cmd, const opts_t *o, fpl_format_t *f);
/* Options, --help, one FORMAT, no stray arguments: returns the status to
 * stop with, or -1 to go on with *f filled. */
int one_format_command(const char *cmd, int argc, char **argv, unsigned mask, const char *usage,
                       fpl_format_t *f);
/* A positive integer option value. */
int parse_size(const char *cmd, const char *opt, const char *val, size_t *out);
/* Print a help text on stdout; returns 0. */
int help(const char *text);

/* ---- input -------------------------------------------------------------- */
/* Read the number in s exactly enough for a correct rounding to any format
 * of up to 53 bits (see common.c); 0, or -1 if s is not a number. */
int read_exact(const char *s, mpfr_t x);
typedef int (*line_fn)(void *ctx, char *line, long lineno);
/* Call fn on each non-blank line of standard input (leading blanks removed). */
int for_each_line(line_fn fn, void *ctx);

/* ---- the commands (one file each) --------------------------------------- */
int cmd_formats(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_table(int argc, char **argv);
int cmd_round(int argc, char **argv);
int cmd_calc(int argc, char **argv);
int cmd_quant(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_merge(int argc, char **argv);

#endif /* FPL_CLI_H */
