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
    char command[256];  /* canonical command for provenance (no --out, no --threads:
                           neither changes the data) */
    char data_dir[4096], plot_dir[4096];
    int plot_failed;    /* gnuplot missing or failing: data still written */
} fpa_t;

/* Parse the common options; prints help or one error line and returns
 * non-zero (exit status + 1) if the program should stop. */
int fpa_init(fpa_t *a, const char *name, const char *summary, int argc, char **argv);

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

/* Print and record a verdict line: "verdict ID VERDICT REASON". */
typedef struct fpa_verdicts fpa_verdicts_t;
fpa_verdicts_t *fpa_verdicts_open(fpa_t *a);
void fpa_verdict(fpa_verdicts_t *v, const char *claim, const char *verdict, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int fpa_verdicts_close(fpa_verdicts_t *v);

/* A seed for repetition `rep` of configuration `cfg`: independent of the
 * thread that runs it. */
uint64_t fpa_stream_seed(uint64_t seed, uint64_t cfg, uint64_t rep);

/* The exit status of a finished analysis: 0, or 1 when a figure could not
 * be drawn (the message was printed; the data were written). */
int fpa_finish(const fpa_t *a);

/* Exit status for a library failure: print fpl_last_error and return 1. */
int fpa_fail(const fpa_t *a, const char *what);

#endif
