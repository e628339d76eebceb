/* nb.h -- what the notebooks share: options, output chunks, figures.
 * A notebook is run as `NOTEBOOK [--quick] [--out DIR]`; it prints its
 * output in chunks separated by nb_chunk() (scripts/nbrender puts chunk k
 * where the prose says @output for the k-th time) and draws its figures into
 * DIR (default .) with nb_figure. */
#ifndef FPL_NB_H
#define FPL_NB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fplab.h"

static int nb_quick;            /* --quick: small sizes, for make check */
static const char *nb_dir = "."; /* --out DIR: where the figures go */

static inline void nb_init(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            nb_quick = 1;
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            nb_dir = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--quick] [--out DIR]\n", argv[0]);
            exit(2);
        }
    }
    mkdir(nb_dir, 0777); /* an existing directory is fine; a failure shows at nb_figure */
}

/* end of one output chunk */
static inline void nb_chunk(void)
{
    printf("@@\n");
}

/* render p as DIR/NAME.png (and .pdf); a failure ends the notebook */
static inline void nb_figure(fpl_plot_t *p, const char *name, double w, double h)
{
    char base[4096];
    snprintf(base, sizeof base, "%s/%s", nb_dir, name);
    if (fpl_plot_render(p, base, w, h)) {
        fprintf(stderr, "notebook: %s\n", fpl_last_error());
        exit(1);
    }
    fpl_plot_free(p);
}

/* the format called NAME, or the end of the notebook */
static inline fpl_format_t nb_format(const char *name)
{
    fpl_format_t f;
    if (fpl_format_parse(name, &f)) {
        fprintf(stderr, "notebook: %s\n", fpl_last_error());
        exit(1);
    }
    return f;
}

static inline fpl_policy_t nb_policy(const char *spec)
{
    fpl_policy_t p;
    if (!*spec)
        fpl_policy_exact(&p);
    else if (fpl_policy_parse(spec, &p)) {
        fprintf(stderr, "notebook: %s\n", fpl_last_error());
        exit(1);
    }
    return p;
}

static inline int nb_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* the median of v[0..n) (n >= 1); sorts v */
static inline double nb_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, nb_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif
