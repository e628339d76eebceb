/* common.h -- what every analysis program shares: options, output
 * directories, progress on stderr, verdict lines */
#ifndef FPL_ANALYSIS_COMMON_H
#define FPL_ANALYSIS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "fplab.h"

typedef struct {
    const char *name;   /* analysis name, e.g. "dot" */
    int quick;          /* --quick: the small size used by tests and CI */
    const char *out;    /* --out DIR: results in DIR/data and DIR/plots */
    uint64_t seed;      /* --seed N */
    int threads;        /* --threads N (0: OpenMP's default) */
    char command[1024];  /* canonical command for provenance (no --out, no --threads:
                           neither changes the data) */
    char data_dir[4096], plot_dir[4096];
    int plot_failed;    /* gnuplot missing or failing: data still written */
    unsigned shard_i, shard_n; /* --shard I/N: compute cells c with c % N == I (N = 0: all) */
    int merge;          /* --merge: read the cells from the shard files instead */
} fpa_t;

/* Parse the common options; prints help or one error line and returns
 * non-zero (exit status + 1) if the program should stop. */
int fpa_init(fpa_t *a, const char *name, const char *summary, int argc, char **argv);

/* An option of one analysis, --NAME VALUE or --NAME=VALUE: fpa_init_opts
 * sets value (NULL when absent) and records it in the provenance command;
 * the analysis validates it (one error line, exit status 2, nothing written). */
typedef struct {
    const char *name;    /* without the dashes */
    const char *metavar; /* for --help, e.g. "LIST" */
    const char *help;    /* one line */
    const char *value;   /* out */
} fpa_opt_t;

int fpa_init_opts(fpa_t *a, const char *name, const char *summary, int argc, char **argv,
                  fpa_opt_t *extra, size_t nextra);

/* DIR/data/NAME.csv into buf */
void fpa_data_path(const fpa_t *a, const char *file, char *buf, size_t n);
void fpa_plot_base(const fpa_t *a, const char *file, char *buf, size_t n);

/* Open DIR/data/FILE.csv with the provenance header and `columns`;
 * NULL on failure (fpl_last_error says why). */
fpl_csv_t *fpa_csv(const fpa_t *a, const char *file, const char *columns);

/* Render a figure; on failure (no gnuplot) print one line and remember it. */
void fpa_render(fpa_t *a, fpl_plot_t *p, const char *file, double w, double h);

/* Progress: a single updating line on a terminal, nothing otherwise. */
void fpa_progress(const fpa_t *a, const char *what, size_t done, size_t total);
void fpa_progress_end(const fpa_t *a);

/* Verdicts and key numbers, for the terminal, the data and the paper.
 * fpa_verdict prints "verdict ID VERDICT REASON" and writes the row
 * claim,verdict,figure,condition,reason to DIR/data/NAME_verdicts.csv:
 *   verdict    holds, conditional or refuted;
 *   figure     the figure that shows the evidence: a file of plots/ without
 *              its extension, e.g. "dot_accumulator";
 *   condition  one short line for the paper's verdict table (1 to 110
 *              printable ASCII characters, measured numbers welcome): the condition under
 *              which the claim holds, or the measurement that settles it;
 *   reason     (fmt, ...) the whole finding.
 * fpa_key records a key number the paper quotes: DIR/data/NAME_keys.csv gets
 * the row key,value and `make paper` defines the LaTeX macro \fplKEY as the
 * value.  KEY is letters only and starts with the analysis' prefix (e.g.
 * "DotAlignMax"); value is formatted with fmt (plain text; 1.5e-05 style
 * exponents are typeset as 1.5x10^-5).
 * A malformed argument (unknown verdict, bad figure or key name, a repeated
 * key, an over-long condition) is a bug in the analysis: one line on stderr,
 * and fpa_verdicts_close fails. */
typedef struct fpa_verdicts fpa_verdicts_t;
fpa_verdicts_t *fpa_verdicts_open(fpa_t *a);
void fpa_verdict(fpa_verdicts_t *v, const char *claim, const char *verdict, const char *figure,
                 const char *condition, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void fpa_key(fpa_verdicts_t *v, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int fpa_verdicts_close(fpa_verdicts_t *v);

/* A seed for repetition `rep` of configuration `cfg`: independent of the
 * thread that runs it. */
uint64_t fpa_stream_seed(uint64_t seed, uint64_t cfg, uint64_t rep);

/* The exit status of a finished analysis: 0, or 1 when a figure could not
 * be drawn (the message was printed; the data were written). */
int fpa_finish(const fpa_t *a);

/* ---- the sweep: independent cells, sharded across processes or machines --
 * An analysis computes its sweep as ncells independent cells; cell c fills
 * width doubles at results + c * width, from its own random stream, so the
 * values do not depend on which thread, process or machine computed it.
 * fpa_sweep runs the cells (OpenMP, progress on stderr) and returns 0 with
 * every result in place; the analysis then writes its data, figures and
 * verdicts from them.  Under --shard I/N it computes only the cells
 * c % N == I, writes them to DIR/data/NAME.shard-I-of-N.csv (bit patterns in
 * hex, with the analysis' command as provenance) and returns 1: the program
 * then stops with status 0.  Under --merge it computes nothing: it reads
 * every shard file of the same command, checks that together they hold each
 * cell exactly once, and returns 0, so the finish is byte-identical to an
 * unsharded run.  An analysis has one sweep.  Returns -1 on failure (the
 * message was printed). */
typedef void (*fpa_cell_fn)(void *ctx, size_t cell, double *out);
int fpa_sweep(fpa_t *a, const char *what, size_t ncells, size_t width, fpa_cell_fn fn, void *ctx,
              double *results);

/* Exit status for a library failure: print fpl_last_error and return 1. */
int fpa_fail(const fpa_t *a, const char *what);

#endif
