/* records.c -- atomic CSV files with a provenance header */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fplab.h"
#include "internal.h"
#include "records.h"

struct fpl_csv {
    FILE *fp;
    char *path, *tmp;
    int failed;
};

static char *tmp_name(const char *path)
{
    size_t n = strlen(path) + 16;
    char *t = malloc(n);
    if (t)
        snprintf(t, n, "%s.tmpXXXXXX", path);
    return t;
}

fpl_csv_t *fpl_csv_open(const char *path, const char *command, uint64_t seed, const char *columns)
{
    fpl_csv_t *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path)) || !(c->tmp = tmp_name(path))) {
        if (c)
            free(c->path);
        free(c);
        fpl__fail(FPL_ENOMEM, "out of memory");
        return NULL;
    }
    int fd = mkstemp(c->tmp);
    if (fd < 0 || !(c->fp = fdopen(fd, "w"))) {
        fpl__fail(FPL_EIO, "cannot create %s: %s", c->tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        free(c->path);
        free(c->tmp);
        free(c);
        return NULL;
    }
    fprintf(c->fp, "# fplab %s\n# command: %s\n# seed: %llu\n%s\n", fpl_version(), command,
            (unsigned long long)seed, columns);
    return c;
}

int fpl_csv_row(fpl_csv_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vfprintf(c->fp, fmt, ap) < 0 || fputc('\n', c->fp) == EOF)
        c->failed = 1;
    va_end(ap);
    return c->failed ? FPL_EIO : FPL_OK;
}

static void csv_free(fpl_csv_t *c)
{
    free(c->path);
    free(c->tmp);
    free(c);
}

int fpl_csv_close(fpl_csv_t *c)
{
    int bad = c->failed || fflush(c->fp) != 0 || ferror(c->fp);
    bad |= fclose(c->fp) != 0;
    /* mkstemp creates 0600; data files are meant to be shared */
    if (!bad && chmod(c->tmp, 0644) != 0)
        bad = 1;
    if (!bad && rename(c->tmp, c->path) != 0)
        bad = 1;
    if (bad) {
        int st = fpl__fail(FPL_EIO, "cannot write %s: %s", c->path, strerror(errno));
        unlink(c->tmp);
        csv_free(c);
        return st;
    }
    csv_free(c);
    return FPL_OK;
}

void fpl_csv_abort(fpl_csv_t *c)
{
    fclose(c->fp);
    unlink(c->tmp);
    csv_free(c);
}

int fpl_write_atomic(const char *path, const char *data, size_t len)
{
    char *tmp = tmp_name(path);
    if (!tmp)
        return fpl__fail(FPL_ENOMEM, "out of memory");
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int st = fpl__fail(FPL_EIO, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    int bad = off != len;
    bad |= close(fd) != 0;
    bad |= !bad && chmod(tmp, 0644) != 0;
    bad |= !bad && rename(tmp, path) != 0;
    int st = FPL_OK;
    if (bad) {
        st = fpl__fail(FPL_EIO, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return st;
}
