/* sweep.c -- an analysis' sweep as independent cells: run them all, one
 * shard of them (written to a file), or merge the shard files (common.h) */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* Cells c with c % n == i (n = 0: all), run in parallel. */
static void run_cells(fpa_t *a, const char *what, size_t ncells, size_t width, fpa_cell_fn fn,
                      void *ctx, double *results, unsigned i, unsigned n)
{
    size_t step = n ? n : 1, first = n ? i : 0;
    size_t mine = first < ncells ? (ncells - first + step - 1) / step : 0, done = 0;
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t k = 0; k < mine; k++) {
        size_t c = first + k * step;
        fn(ctx, c, results + c * width);
#pragma omp critical
        fpa_progress(a, what, ++done, mine);
    }
    fpa_progress_end(a);
}

static void shard_file(const fpa_t *a, unsigned i, unsigned n, char *buf, size_t len)
{
    char file[256];
    snprintf(file, sizeof file, "%s.shard-%u-of-%u", a->name, i, n);
    fpa_data_path(a, file, buf, len);
}

static int write_shard(fpa_t *a, size_t ncells, size_t width, const double *results)
{
    char file[256], command[1100];
    snprintf(file, sizeof file, "%s.shard-%u-of-%u", a->name, a->shard_i, a->shard_n);
    snprintf(command, sizeof command, "%s --shard %u/%u", a->command, a->shard_i, a->shard_n);
    char path[4200];
    fpa_data_path(a, file, path, sizeof path);
    fpl_csv_t *c = fpl_csv_open(path, command, a->seed, "cell,bits (binary64 of each value)");
    if (!c) {
        fprintf(stderr, "%s: %s\n", a->name, fpl_last_error());
        return -1;
    }
    fpl_csv_row(c, "# cells %zu width %zu", ncells, width);
    char *line = malloc(width * 17 + 32);
    if (!line) {
        fpl_csv_abort(c);
        fprintf(stderr, "%s: out of memory\n", a->name);
        return -1;
    }
    for (size_t cell = a->shard_i; cell < ncells; cell += a->shard_n) {
        size_t len = (size_t)sprintf(line, "%zu", cell);
        for (size_t k = 0; k < width; k++) {
            uint64_t b;
            memcpy(&b, &results[cell * width + k], sizeof b);
            len += (size_t)sprintf(line + len, ",%016" PRIx64, b);
        }
        fpl_csv_row(c, "%s", line);
    }
    free(line);
    if (fpl_csv_close(c) != 0) {
        fprintf(stderr, "%s: %s\n", a->name, fpl_last_error());
        return -1;
    }
    fprintf(stderr, "%s: wrote shard %u of %u (%s); finish with --merge when all %u are done\n",
            a->name, a->shard_i, a->shard_n, path, a->shard_n);
    return 1;
}

/* Read one shard file into results, marking the cells seen. */
static int read_shard(const fpa_t *a, const char *path, unsigned i, unsigned n, size_t ncells,
                      size_t width, double *results, unsigned char *seen)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "%s: --merge: cannot open %s: %s\n", a->name, path, strerror(errno));
        return -1;
    }
    char want[1200];
    snprintf(want, sizeof want, "# command: %s --shard %u/%u", a->command, i, n);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0, have_command = 0, have_size = 0;
    long lineno = 0;
    while (rc == 0 && (len = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (!strncmp(line, "# command: ", 11)) {
            have_command = 1;
            if (strcmp(line, want)) {
                fprintf(stderr,
                        "%s: --merge: %s was made by '%s', not by this command's shard ('%s'):"
                        " use the same --quick and --seed\n",
                        a->name, path, line + 11, want + 11);
                rc = -1;
            }
            continue;
        }
        if (!strncmp(line, "# cells ", 8)) {
            size_t nc, w;
            if (sscanf(line, "# cells %zu width %zu", &nc, &w) != 2 || nc != ncells || w != width) {
                fprintf(stderr, "%s: --merge: %s holds a sweep of another size (%s; this one has"
                                " %zu cells of %zu values)\n",
                        a->name, path, line + 2, ncells, width);
                rc = -1;
            }
            have_size = 1;
            continue;
        }
        if (line[0] == '#' || !strncmp(line, "cell,", 5))
            continue;
        if (!have_command || !have_size) {
            fprintf(stderr, "%s: --merge: %s: no provenance header\n", a->name, path);
            rc = -1;
            break;
        }
        char *p = line, *end;
        errno = 0;
        unsigned long long cell = strtoull(p, &end, 10);
        if (errno || end == p || cell >= ncells || cell % n != i || seen[cell]) {
            fprintf(stderr, "%s: --merge: %s line %ld: bad or repeated cell\n", a->name, path,
                    lineno);
            rc = -1;
            break;
        }
        p = end;
        for (size_t k = 0; k < width && rc == 0; k++) {
            if (*p != ',') {
                rc = -1;
                break;
            }
            uint64_t b = strtoull(p + 1, &end, 16);
            if (end != p + 17)
                rc = -1;
            memcpy(&results[cell * width + k], &b, sizeof b);
            p = end;
        }
        if (rc || *p) {
            fprintf(stderr, "%s: --merge: %s line %ld: expected %zu values\n", a->name, path,
                    lineno, width);
            rc = -1;
            break;
        }
        seen[cell] = 1;
    }
    if (rc == 0 && ferror(fp)) {
        fprintf(stderr, "%s: --merge: error reading %s\n", a->name, path);
        rc = -1;
    }
    free(line);
    fclose(fp);
    return rc;
}

static int merge_shards(fpa_t *a, size_t ncells, size_t width, double *results)
{
    DIR *d = opendir(a->data_dir);
    if (!d) {
        fprintf(stderr, "%s: --merge: cannot open %s: %s\n", a->name, a->data_dir,
                strerror(errno));
        return -1;
    }
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s.shard-", a->name);
    size_t pl = strlen(prefix);
    unsigned n = 0, found = 0;
    unsigned char *have = NULL;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        unsigned i, m;
        int used = 0;
        if (strncmp(e->d_name, prefix, pl) ||
            sscanf(e->d_name + pl, "%u-of-%u.csv%n", &i, &m, &used) != 2 ||
            e->d_name[pl + (size_t)used] != '\0')
            continue;
        if (n == 0) {
            n = m;
            if (n == 0 || !(have = calloc(n, 1)))
                rc = -1;
        } else if (m != n) {
            fprintf(stderr, "%s: --merge: %s has shards of two splits (of %u and of %u); remove "
                            "the old ones\n", a->name, a->data_dir, n, m);
            rc = -1;
        }
        if (rc == 0 && i < n && !have[i]) {
            have[i] = 1;
            found++;
        }
    }
    closedir(d);
    if (rc == 0 && n == 0) {
        fprintf(stderr, "%s: --merge: no shard files %s*-of-N.csv in %s (run with --shard I/N "
                        "first)\n", a->name, prefix, a->data_dir);
        rc = -1;
    }
    if (rc == 0 && found != n) {
        for (unsigned i = 0; i < n; i++)
            if (!have[i]) {
                fprintf(stderr, "%s: --merge: shard %u of %u is missing (%u of %u present)\n",
                        a->name, i, n, found, n);
                break;
            }
        rc = -1;
    }
    unsigned char *seen = rc == 0 ? calloc(ncells ? ncells : 1, 1) : NULL;
    if (rc == 0 && !seen) {
        fprintf(stderr, "%s: out of memory\n", a->name);
        rc = -1;
    }
    for (unsigned i = 0; rc == 0 && i < n; i++) {
        char path[4200];
        shard_file(a, i, n, path, sizeof path);
        rc = read_shard(a, path, i, n, ncells, width, results, seen);
    }
    for (size_t c = 0; rc == 0 && c < ncells; c++)
        if (!seen[c]) {
            fprintf(stderr, "%s: --merge: cell %zu is in no shard file\n", a->name, c);
            rc = -1;
        }
    free(seen);
    free(have);
    return rc;
}

int fpa_sweep(fpa_t *a, const char *what, size_t ncells, size_t width, fpa_cell_fn fn, void *ctx,
              double *results)
{
    if (a->merge)
        return merge_shards(a, ncells, width, results);
    run_cells(a, what, ncells, width, fn, ctx, results, a->shard_i, a->shard_n);
    if (a->shard_n)
        return write_shard(a, ncells, width, results);
    return 0;
}
