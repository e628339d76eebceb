/* common.c -- shared driver of the analysis programs */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common.h"

static int mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

int fpa_init(fpa_t *a, const char *name, const char *summary, int argc, char **argv)
{
    return fpa_init_opts(a, name, summary, argc, argv, NULL, 0);
}

int fpa_init_opts(fpa_t *a, const char *name, const char *summary, int argc, char **argv,
                  fpa_opt_t *extra, size_t nextra)
{
    memset(a, 0, sizeof *a);
    for (size_t j = 0; j < nextra; j++)
        extra[j].value = NULL;
    a->name = name;
    a->out = ".";
    a->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *val = NULL;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            printf("usage: %s [--quick] [--out DIR] [--seed N] [--threads N] [--shard I/N | --merge]"
                   "\n\n%s\n\n"
                   "  --quick      small sizes (tests, CI)\n"
                   "  --out DIR    write DIR/data/%s*.csv and DIR/plots/%s*.png|pdf (default .)\n"
                   "  --seed N     master seed (default 1); results depend only on it\n"
                   "  --threads N  OpenMP threads (default: all cores); results do not depend on it\n"
                   "  --shard I/N  compute only slice I of N (0 <= I < N) of the sweep and write\n"
                   "               DIR/data/%s.shard-I-of-N.csv; nothing else\n"
                   "  --merge      read all N shard files from DIR/data (same --quick and --seed)\n"
                   "               and finish: the output is byte-identical to an unsharded run\n",
                   name, summary, name, name, name);
            for (size_t j = 0; j < nextra; j++)
                printf("  --%s %s\n%*s%s\n", extra[j].name, extra[j].metavar, 15, "", extra[j].help);
            return 1;
        }
        if (!strcmp(s, "--quick")) {
            a->quick = 1;
            continue;
        }
        if (!strcmp(s, "--merge")) {
            a->merge = 1;
            continue;
        }
        if (!strncmp(s, "--shard", 7) && (s[7] == '\0' || s[7] == '=')) {
            const char *v = s[7] == '=' ? s + 8 : (i + 1 < argc ? argv[++i] : NULL);
            unsigned si, sn;
            char tail;
            if (!v || sscanf(v, "%u/%u%c", &si, &sn, &tail) != 2 || sn < 1 || sn > 100000 ||
                si >= sn || *v == '-' || strchr(v, '-')) {
                fprintf(stderr, "%s: bad value '%s' for --shard (expected I/N with 0 <= I < N)\n",
                        name, v ? v : "");
                return 3;
            }
            a->shard_i = si;
            a->shard_n = sn;
            continue;
        }
        const char *opts[] = {"--out", "--seed", "--threads"};
        int k = -1;
        for (int j = 0; j < 3; j++) {
            size_t n = strlen(opts[j]);
            if (!strncmp(s, opts[j], n) && (s[n] == '\0' || s[n] == '=')) {
                k = j;
                val = s[n] == '=' ? s + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
            }
        }
        if (k < 0 && !strncmp(s, "--", 2)) {
            int found = 0;
            for (size_t j = 0; j < nextra && !found; j++) {
                size_t n = strlen(extra[j].name);
                if (strncmp(s + 2, extra[j].name, n) || (s[2 + n] != '\0' && s[2 + n] != '='))
                    continue;
                found = 1;
                val = s[2 + n] == '=' ? s + 3 + n : (i + 1 < argc ? argv[++i] : NULL);
                if (!val || !*val) {
                    fprintf(stderr, "%s: option --%s needs a value\n", name, extra[j].name);
                    return 3;
                }
                extra[j].value = val;
            }
            if (found)
                continue;
        }
        if (k < 0) {
            fprintf(stderr, "%s: unknown option '%s' (try --help)\n", name, s);
            return 3;
        }
        if (!val || !*val) {
            fprintf(stderr, "%s: option %s needs a value\n", name, opts[k]);
            return 3;
        }
        char *end;
        errno = 0;
        unsigned long long v = k ? strtoull(val, &end, 10) : 0;
        if (k && (errno || *end || *val == '-' || (k == 2 && (v < 1 || v > 1024)))) {
            fprintf(stderr, "%s: bad value '%s' for %s\n", name, val, opts[k]);
            return 3;
        }
        if (k == 0)
            a->out = val;
        else if (k == 1)
            a->seed = v;
        else
            a->threads = (int)v;
    }
    if (a->merge && a->shard_n) {
        fprintf(stderr, "%s: --shard and --merge do not go together\n", name);
        return 3;
    }
#ifdef _OPENMP
    if (a->threads)
        omp_set_num_threads(a->threads);
#endif
    int len = snprintf(a->command, sizeof a->command, "%s%s --seed %llu", name,
                       a->quick ? " --quick" : "", (unsigned long long)a->seed);
    for (size_t j = 0; j < nextra; j++) {
        if (!extra[j].value)
            continue;
        if (strpbrk(extra[j].value, "\",\n\r") || len < 0 || (size_t)len >= sizeof a->command) {
            fprintf(stderr, "%s: bad value '%s' for --%s\n", name, extra[j].value, extra[j].name);
            return 3;
        }
        len += snprintf(a->command + len, sizeof a->command - (size_t)len, " --%s %s",
                        extra[j].name, extra[j].value);
        if ((size_t)len >= sizeof a->command) {
            fprintf(stderr, "%s: option values too long\n", name);
            return 3;
        }
    }
    snprintf(a->data_dir, sizeof a->data_dir, "%s/data", a->out);
    snprintf(a->plot_dir, sizeof a->plot_dir, "%s/plots", a->out);
    if (mkdirs(a->data_dir) || mkdirs(a->plot_dir)) {
        fprintf(stderr, "%s: cannot create %s and %s: %s\n", name, a->data_dir, a->plot_dir,
                strerror(errno));
        return 2;
    }
    return 0;
}

void fpa_data_path(const fpa_t *a, const char *file, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s.csv", a->data_dir, file);
}

void fpa_plot_base(const fpa_t *a, const char *file, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", a->plot_dir, file);
}

fpl_csv_t *fpa_csv(const fpa_t *a, const char *file, const char *columns)
{
    char path[4200];
    fpa_data_path(a, file, path, sizeof path);
    return fpl_csv_open(path, a->command, a->seed, columns);
}

void fpa_render(fpa_t *a, fpl_plot_t *p, const char *file, double w, double h)
{
    char base[4200];
    fpa_plot_base(a, file, base, sizeof base);
    if (fpl_plot_render(p, base, w, h) != 0) {
        if (!a->plot_failed || !strstr(fpl_last_error(), "not found"))
            fprintf(stderr, "%s: %s\n", a->name, fpl_last_error());
        a->plot_failed = 1;
    }
}

void fpa_progress(const fpa_t *a, const char *what, size_t done, size_t total)
{
    if (!isatty(2))
        return;
    fprintf(stderr, "\r%s: %s %zu/%zu (%3.0f%%)   ", a->name, what, done, total,
            total ? 100.0 * (double)done / (double)total : 100.0);
    fflush(stderr);
}

void fpa_progress_end(const fpa_t *a)
{
    if (isatty(2))
        fprintf(stderr, "\r%*s\r", 70, "");
}

struct fpa_verdicts {
    fpl_csv_t *csv, *keys;
    const char *name;
    char seen[64][48]; /* keys recorded so far, to refuse a repeat */
    int nseen, bad;
};

fpa_verdicts_t *fpa_verdicts_open(fpa_t *a)
{
    char file[256];
    fpa_verdicts_t *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->name = a->name;
    snprintf(file, sizeof file, "%s_verdicts", a->name);
    v->csv = fpa_csv(a, file, "claim,verdict,figure,condition,reason");
    snprintf(file, sizeof file, "%s_keys", a->name);
    v->keys = v->csv ? fpa_csv(a, file, "key,value") : NULL;
    if (!v->keys) {
        if (v->csv)
            fpl_csv_abort(v->csv);
        free(v);
        return NULL;
    }
    return v;
}

static int verdict_bug(fpa_verdicts_t *v, const char *what, const char *arg)
{
    fprintf(stderr, "%s: verdicts: %s '%s'\n", v->name, what, arg);
    v->bad = 1;
    return 1;
}

/* a CSV field in double quotes: a quote inside becomes an apostrophe */
static void unquote(char *s)
{
    for (; *s; s++)
        if (*s == '"')
            *s = '\'';
}

void fpa_verdict(fpa_verdicts_t *v, const char *claim, const char *verdict, const char *figure,
                 const char *condition, const char *fmt, ...)
{
    char reason[4096], cond[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (strcmp(verdict, "holds") && strcmp(verdict, "conditional") && strcmp(verdict, "refuted"))
        verdict_bug(v, "unknown verdict", verdict);
    if (!*figure || strspn(figure, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(figure))
        verdict_bug(v, "bad figure name", figure);
    int ascii = 1;
    for (const char *p = condition; *p; p++)
        ascii &= *p >= ' ' && *p <= '~';
    if (!*condition || strlen(condition) > 110 || !ascii)
        verdict_bug(v, "a condition is one line of 1 to 110 printable ASCII characters", condition);
    printf("verdict %s %s %s\n", claim, verdict, reason);
    fflush(stdout);
    snprintf(cond, sizeof cond, "%s", condition);
    unquote(cond);
    unquote(reason);
    fpl_csv_row(v->csv, "%s,%s,%s,\"%s\",\"%s\"", claim, verdict, figure, cond, reason);
}

void fpa_key(fpa_verdicts_t *v, const char *key, const char *fmt, ...)
{
    char value[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    size_t n = strlen(key);
    if (n < 2 || n >= sizeof v->seen[0] || !isupper((unsigned char)key[0]) ||
        strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != n)
        verdict_bug(v, "a key is letters only, starting with a capital", key);
    for (int i = 0; i < v->nseen; i++)
        if (!strcmp(v->seen[i], key))
            verdict_bug(v, "key recorded twice", key);
    if (v->nseen < (int)(sizeof v->seen / sizeof v->seen[0]))
        snprintf(v->seen[v->nseen++], sizeof v->seen[0], "%s", key);
    else
        verdict_bug(v, "too many keys (64 at most)", key);
    int ascii = 1;
    for (const char *p = value; *p; p++)
        ascii &= *p >= ' ' && *p <= '~' && *p != '"';
    if (!*value || !ascii)
        verdict_bug(v, "a key's value is printable ASCII without quotes", value);
    fpl_csv_row(v->keys, "%s,\"%s\"", key, value);
}

int fpa_verdicts_close(fpa_verdicts_t *v)
{
    int st;
    if (v->bad) {
        fpl_csv_abort(v->csv);
        fpl_csv_abort(v->keys);
        st = -1;
    } else {
        st = fpl_csv_close(v->csv);
        st = fpl_csv_close(v->keys) || st;
    }
    free(v);
    return st;
}

uint64_t fpa_stream_seed(uint64_t seed, uint64_t cfg, uint64_t rep)
{
    /* splitmix64 finaliser over a combination of the three */
    uint64_t z = seed * 0x9e3779b97f4a7c15ULL + cfg * 0xbf58476d1ce4e5b9ULL + rep * 0x94d049bb133111ebULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int fpa_finish(const fpa_t *a) { return a->plot_failed ? 1 : 0; }

int fpa_fail(const fpa_t *a, const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", a->name, what, fpl_last_error());
    return 1;
}
