/* plot.h -- figures through a gnuplot pipe, in one house style */
#ifndef FPL_PLOT_H
#define FPL_PLOT_H

#include <stddef.h>

typedef struct fpl_plot fpl_plot_t;

/* A figure under construction: a gnuplot script body kept in memory. */
fpl_plot_t *fpl_plot_new(void);
void fpl_plot_free(fpl_plot_t *p);

/* Append gnuplot text (printf-style).  Data go in as named blocks:
 *   fpl_plot_printf(p, "$d << EOD\n"); ...rows...; fpl_plot_printf(p, "EOD\n");
 * Returns 0 or FPL_ENOMEM. */
int fpl_plot_printf(fpl_plot_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Render BASE.png (pngcairo) and BASE.pdf (pdfcairo), width x height in
 * inches, after the house style (colour-blind-safe palette as line styles
 * 1-8, light grid, boxed key, translucent fills for spread bands).  Each
 * file is written to a temporary name and renamed when gnuplot succeeds.
 * Returns 0; FPL_ENOTFOUND when gnuplot is not installed (the message says
 * how to install it); FPL_EIO when gnuplot fails (its error is on stderr). */
int fpl_plot_render(fpl_plot_t *p, const char *base, double width, double height);

/* The gnuplot program used: $FPL_GNUPLOT if set, else the one configure
 * found (or "gnuplot"). */
const char *fpl_plot_program(void);

#endif /* FPL_PLOT_H */
