/* plot.c -- gnuplot driven through a pipe */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "internal.h"
#include "plot.h"

struct fpl_plot {
    char *buf;
    size_t len;
    FILE *fp;
};

/* Okabe & Ito's palette: distinguishable with every common colour-vision
 * deficiency and in greyscale print. */
static const char house_style[] =
    "set encoding utf8\n"
    "set style line 1 lc rgb '#0072B2' lw 2 pt 7 ps 0.7\n"
    "set style line 2 lc rgb '#D55E00' lw 2 pt 5 ps 0.7\n"
    "set style line 3 lc rgb '#009E73' lw 2 pt 9 ps 0.8\n"
    "set style line 4 lc rgb '#CC79A7' lw 2 pt 11 ps 0.8\n"
    "set style line 5 lc rgb '#E69F00' lw 2 pt 13 ps 0.8\n"
    "set style line 6 lc rgb '#56B4E9' lw 2 pt 4 ps 0.7\n"
    "set style line 7 lc rgb '#000000' lw 2 pt 6 ps 0.7\n"
    "set style line 8 lc rgb '#999999' lw 2 pt 8 ps 0.7\n"
    "set style line 20 lc rgb '#444444' lw 1.5 dt 2\n" /* theory lines */
    "set style line 21 lc rgb '#444444' lw 1.5 dt 4\n"
    "set style fill transparent solid 0.18 noborder\n"
    "set grid xtics ytics lc rgb '#e0e0e0' lw 1 dt 1\n"
    "set border 3 lw 1.2\n"
    "set tics nomirror out scale 0.6\n"
    "set key opaque box lc rgb '#cccccc' samplen 2.5 spacing 1.1\n"
    "set format y '%g'\n";

fpl_plot_t *fpl_plot_new(void)
{
    fpl_plot_t *p = calloc(1, sizeof *p);
    if (!p || !(p->fp = open_memstream(&p->buf, &p->len))) {
        free(p);
        fpl__fail(FPL_ENOMEM, "out of memory");
        return NULL;
    }
    return p;
}

void fpl_plot_free(fpl_plot_t *p)
{
    if (!p)
        return;
    fclose(p->fp);
    free(p->buf);
    free(p);
}

int fpl_plot_printf(fpl_plot_t *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(p->fp, fmt, ap);
    va_end(ap);
    return r < 0 ? fpl__fail(FPL_ENOMEM, "out of memory") : FPL_OK;
}

const char *fpl_plot_program(void)
{
    const char *e = getenv("FPL_GNUPLOT");
    return e && *e ? e : FPL_GNUPLOT;
}

/* Is prog runnable (a path, or a name found on $PATH)? */
static int have_program(const char *prog)
{
    if (strchr(prog, '/'))
        return access(prog, X_OK) == 0;
    const char *path = getenv("PATH");
    if (!path)
        return 0;
    char dir[4096];
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n < sizeof dir - strlen(prog) - 2) {
            memcpy(dir, path, n);
            snprintf(dir + n, sizeof dir - n, "/%s", prog);
            if (access(dir, X_OK) == 0)
                return 1;
        }
        path += n + (path[n] == ':');
    }
    return 0;
}

int fpl_plot_render(fpl_plot_t *p, const char *base, double width, double height)
{
    const char *prog = fpl_plot_program();
    if (fflush(p->fp) != 0)
        return fpl__fail(FPL_ENOMEM, "out of memory");
    if (!have_program(prog))
        return fpl__fail(FPL_ENOTFOUND,
                         "gnuplot not found, so %s.png/.pdf were not drawn (the data were "
                         "written); install it with 'apt-get install gnuplot-nox'", base);
    static const char *const ext[] = {"png", "pdf"};
    for (int k = 0; k < 2; k++) {
        size_t n = strlen(base) + 32;
        char *final = malloc(n), *tmp = malloc(n);
        if (!final || !tmp) {
            free(final);
            free(tmp);
            return fpl__fail(FPL_ENOMEM, "out of memory");
        }
        snprintf(final, n, "%s.%s", base, ext[k]);
        snprintf(tmp, n, "%s.tmp.%s", base, ext[k]);
        char cmd[4200];
        /* gnuplot's own stdout goes nowhere: when it cannot open the
         * output file it would write the image to the caller's stdout */
        snprintf(cmd, sizeof cmd, "'%s' >/dev/null", prog);
        FILE *gp = popen(cmd, "w");
        if (!gp) {
            free(final);
            free(tmp);
            return fpl__fail(FPL_EIO, "cannot start %s: %s", prog, strerror(errno));
        }
        if (k == 0)
            fprintf(gp, "set terminal pngcairo size %d,%d font 'Sans,%d' linewidth 1\n",
                    (int)(width * 150), (int)(height * 150), 13);
        else
            fprintf(gp, "set terminal pdfcairo size %gin,%gin font 'Sans,9'\n", width, height);
        fprintf(gp, "set output '%s'\n%s", tmp, house_style);
        fwrite(p->buf, 1, p->len, gp);
        fprintf(gp, "\nunset output\n");
        int st = pclose(gp);
        int ok = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
        struct stat sb;
        if (ok && stat(tmp, &sb) == 0 && sb.st_size > 0 && rename(tmp, final) == 0) {
            free(final);
            free(tmp);
            continue;
        }
        unlink(tmp);
        int r = fpl__fail(FPL_EIO, "gnuplot failed to draw %s", final);
        free(final);
        free(tmp);
        return r;
    }
    return FPL_OK;
}
