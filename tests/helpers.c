/* helpers.c -- test helpers: seeds, random inputs, the independent oracle,
 * shell commands, the check of the paper's inputs */
#include <ctype.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/wait.h>

#include <cmocka.h>
#include <gmp.h>

#include "helpers.h"

uint64_t fpt_seed(uint64_t dflt)
{
    const char *s = getenv("FPL_TEST_SEED");
    uint64_t v = s && *s ? strtoull(s, NULL, 0) : dflt;
    printf("# seed %llu (set FPL_TEST_SEED to change)\n", (unsigned long long)v);
    return v;
}

size_t fpt_scaled(size_t n, size_t min)
{
    const char *s = getenv("FPL_TEST_SCALE");
    size_t k = s && *s ? (size_t)strtoul(s, NULL, 10) : 1;
    size_t r = n / (k ? k : 1);
    return r < min ? min : r;
}

void fpt_rng_init(fpt_rng_t *r, uint64_t seed) { r->s = seed * 2685821657736338717ULL + 1; }

uint64_t fpt_rng_u64(fpt_rng_t *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ULL;
}

double fpt_random_double(fpt_rng_t *r, const fpl_format_t *f)
{
    uint64_t u = fpt_rng_u64(r);
    double x;
    switch (u & 3) {
    case 0: /* any binary64 bit pattern */
        u = fpt_rng_u64(r);
        memcpy(&x, &u, sizeof x);
        if (!isfinite(x))
            x = 1.0;
        return x;
    default: { /* log-uniform over the format's range, two binades beyond */
        double lo = log2(f->min_positive) - 3, hi = log2(f->max_finite > 0 ? f->max_finite : 1) + 3;
        double mant = (double)(fpt_rng_u64(r) >> 11) * 0x1p-53;
        x = exp2(lo + (hi - lo) * mant);
        /* random low bits so values are rarely on the format's grid */
        return (u & 4) ? -x : x;
    }
    }
}

int fpt_same(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

/* ---- oracle --------------------------------------------------------------- */

double fpt_oracle_decode(const fpl_format_t *f, uint64_t c)
{
    if (f->kind == FPL_KIND_INT) {
        int64_t v = (int64_t)(c & ((1ULL << f->ibits) - 1));
        if (f->has_sign && v >= (1LL << (f->ibits - 1)))
            v -= 1LL << f->ibits;
        return (double)v;
    }
    int E = f->ebits, M = f->mbits;
    uint64_t ef = (c >> M) & ((1ULL << E) - 1), mf = c & ((1ULL << M) - 1);
    int s = f->has_sign ? (int)((c >> (E + M)) & 1) : 0;
    int allones_e = ef == (1ULL << E) - 1, allones_m = mf == (1ULL << M) - 1;
    if (f->specials == FPL_SPECIALS_IEEE && allones_e)
        return mf == 0 ? (s ? -INFINITY : INFINITY) : NAN;
    if (f->specials == FPL_SPECIALS_FN && allones_e && allones_m)
        return NAN;
    if (f->specials == FPL_SPECIALS_FNUZ && s && ef == 0 && mf == 0)
        return NAN;
    double v;
    if (ef == 0 && f->has_zero) /* zero or subnormal: 0.m * 2^(1-bias) */
        v = f->subnormals ? (double)mf * pow(2.0, 1 - f->bias - M) : 0.0;
    else /* normal: 1.m * 2^(e-bias) */
        v = (1.0 + (double)mf / pow(2.0, M)) * pow(2.0, (double)ef - f->bias);
    return s ? -v : v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double *fpt_grid(const fpl_format_t *f, size_t *n)
{
    size_t count = (size_t)1 << f->nbits;
    double *g = malloc((count + 2) * sizeof *g);
    size_t k = 0;
    for (uint64_t c = 0; c < count; c++) {
        double v = fpt_oracle_decode(f, c);
        if (isfinite(v))
            g[k++] = v == 0 ? 0.0 : v;
    }
    qsort(g, k, sizeof *g, cmp_double);
    size_t m = 0;
    for (size_t i = 0; i < k; i++)
        if (m == 0 || g[i] != g[m - 1])
            g[m++] = g[i];
    /* phantoms: one quantum beyond the extreme values */
    double top = g[m - 1];
    double q = f->kind == FPL_KIND_INT ? 1.0 : pow(2.0, ilogb(top) - f->mbits);
    if (f->kind == FPL_KIND_FLOAT && top < f->min_normal)
        q = f->subnormals ? pow(2.0, 1 - f->bias - f->mbits) : top;
    memmove(g + 1, g, m * sizeof *g);
    g[0] = g[1] - q; /* below the most negative value (or below 0 / min) */
    if (f->kind == FPL_KIND_INT)
        g[0] = g[1] - 1.0;
    g[m + 1] = top + q;
    *n = m + 2;
    return g;
}

/* quantum common to neighbours lo < hi: their distance */
static int even_choice_is_hi(double lo, double hi)
{
    double q = hi - lo; /* exact: neighbours on a binary grid */
    double k = lo / q;  /* integral significand at the common quantum */
    return fmod(fabs(k), 2.0) != 0.0;
}

/* sign of (x - lo) - (hi - x), exactly */
static int cmp_mid(double x, double lo, double hi)
{
    mpq_t a, b, c;
    mpq_inits(a, b, c, NULL);
    mpq_set_d(a, x);
    mpq_set_d(b, lo);
    mpq_set_d(c, hi);
    mpq_sub(b, a, b); /* x - lo */
    mpq_sub(c, c, a); /* hi - x */
    int r = mpq_cmp(b, c);
    mpq_clears(a, b, c, NULL);
    return r;
}

static double apply_policy(const fpl_format_t *f, double r, double x, fpl_rmode_t mode)
{
    int neg = signbit(x) != 0;
    if (f->kind == FPL_KIND_INT) {
        if (r > f->max_finite)
            r = f->max_finite;
        if (r < f->min_finite)
            r = f->min_finite;
        return r == 0 ? 0.0 : r;
    }
    if (fabs(r) > f->max_finite) {
        int up = mode == FPL_RNE || mode == FPL_RNA || mode == FPL_SR ||
                 (mode == FPL_RUP && !neg) || (mode == FPL_RDOWN && neg);
        double o = f->max_finite;
        if (up)
            o = f->overflow == FPL_OVERFLOW_INF ? INFINITY
                : f->overflow == FPL_OVERFLOW_NAN ? NAN
                                                  : f->max_finite;
        r = neg ? -o : o;
    }
    if (!f->has_zero && fabs(r) < f->min_positive)
        r = f->min_positive;
    if (r == 0)
        r = (neg && f->specials != FPL_SPECIALS_FNUZ) ? -0.0 : 0.0;
    return r;
}

/* index i with g[i] <= x < g[i+1], for g[0] <= x < g[n-1] */
static size_t bracket(const double *g, size_t n, double x)
{
    size_t lo = 0, hi = n - 1;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (g[mid] <= x)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

double fpt_oracle_round(const fpl_format_t *f, const double *g, size_t n, double x,
                        fpl_rmode_t mode)
{
    if (isnan(x))
        return NAN;
    int neg = signbit(x) != 0;
    if (f->kind == FPL_KIND_FLOAT && !f->has_sign && neg && x != 0)
        return NAN; /* e8m0 has no sign */
    if (isinf(x)) {
        if (f->kind == FPL_KIND_INT)
            return neg ? f->min_finite : f->max_finite;
        if (!f->has_sign && neg)
            return NAN;
        double o = (f->has_inf && f->overflow != FPL_OVERFLOW_SATURATE) ? INFINITY
                   : f->overflow == FPL_OVERFLOW_NAN                   ? NAN
                                                                       : f->max_finite;
        return neg ? -o : o;
    }
    double ax = x;
    if (!f->has_zero && ax < g[1]) { /* e8m0: below the smallest value there is nothing */
        if (ax < g[1])
            ax = g[1];
    }
    if (ax <= g[0] || ax >= g[n - 1]) /* beyond the phantoms: overflow */
        return apply_policy(f, ax, x, mode == FPL_RTZ ? FPL_RTZ : mode);
    size_t i = bracket(g, n, ax);
    double lo = g[i], hi = g[i + 1], r;
    if (ax == lo) {
        r = lo;
    } else {
        int c = cmp_mid(ax, lo, hi);
        switch (mode) {
        case FPL_RNE: r = c < 0 ? lo : c > 0 ? hi : (even_choice_is_hi(lo, hi) ? hi : lo); break;
        case FPL_RNA: r = c < 0 ? lo : c > 0 ? hi : (neg ? lo : hi); break;
        case FPL_RTZ: r = neg ? hi : lo; break;
        case FPL_RUP: r = hi; break;
        case FPL_RDOWN: r = lo; break;
        default: r = lo; break;
        }
    }
    if (r == 0)
        r = neg ? -0.0 : 0.0;
    return apply_policy(f, r, x, mode);
}

void fpt_oracle_neighbours(const fpl_format_t *f, const double *grid, size_t n, double x,
                           double *lo, double *hi)
{
    *lo = fpt_oracle_round(f, grid, n, x, FPL_RTZ);
    *hi = fpt_oracle_round(f, grid, n, x, signbit(x) ? FPL_RDOWN : FPL_RUP);
}

static int run_sh(char *buf, size_t n, int with_stderr, const char *fmt, va_list ap)
{
    char cmd[8192], full[8300];
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    snprintf(full, sizeof full, with_stderr ? "( %s ) 2>&1" : "%s", cmd);
    if (buf && n)
        buf[0] = '\0';
    FILE *fp = popen(full, "r");
    if (!fp) {
        fprintf(stderr, "# cannot run: %s\n", full);
        return -1;
    }
    size_t len = buf && n ? fread(buf, 1, n - 1, fp) : 0;
    if (buf && n)
        buf[len] = '\0';
    while (fgetc(fp) != EOF) /* the rest, so the command is not cut off by SIGPIPE */
        ;
    int st = pclose(fp);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int fpt_sh(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int st = run_sh(buf, n, 0, fmt, ap);
    va_end(ap);
    return st;
}

int fpt_sh_all(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int st = run_sh(buf, n, 1, fmt, ap);
    va_end(ap);
    return st;
}

int fpt_run(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return st == -1 ? 128 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

const char *fpt_fplab(void)
{
    const char *f = getenv("FPLAB");
    return f ? f : "src/cli/fplab";
}

const char *fpt_builddir(void)
{
    static char d[4096];
    snprintf(d, sizeof d, "%s", fpt_fplab());
    char *s = strstr(d, "/src/cli/");
    if (s)
        *s = '\0';
    else
        snprintf(d, sizeof d, ".");
    return d;
}

/* ---- the paper's inputs ---------------------------------------------------- */

char *fpt_slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("cannot read %s", path);
    char *b = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (cap - n < 4096) {
            cap = 2 * cap + 8192;
            b = realloc(b, cap);
            assert_non_null(b);
        }
        got = fread(b + n, 1, cap - n - 1, fp);
        n += got;
    } while (got > 0);
    fclose(fp);
    b[n] = '\0';
    if (len)
        *len = n;
    return b;
}

/* the next line that is not a comment, as strtok_r (txt on the first call) */
static char *paper_line(char *txt, char **save)
{
    char *line;
    while ((line = strtok_r(txt, "\n", save)) && line[0] == '#')
        txt = NULL;
    return line;
}

typedef struct {
    char claim[32], verdict[16], figure[64], cond[256];
    size_t reason_len;
} paper_row_t;

/* the rows of DIR/data/NAME_verdicts.csv (header and field syntax checked) */
static size_t paper_verdicts(const char *dir, const char *name, paper_row_t *v, size_t cap,
                             char *path, size_t np)
{
    snprintf(path, np, "%s/data/%s_verdicts.csv", dir, name);
    char *txt = fpt_slurp(path, NULL), *save = NULL, *line = paper_line(txt, &save);
    if (!line || strcmp(line, "claim,verdict,figure,condition,reason"))
        fail_msg("%s: header '%s'", path, line ? line : "");
    size_t n = 0;
    while ((line = paper_line(NULL, &save))) {
        if (n == cap)
            fail_msg("%s: more than %zu rows", path, cap);
        /* claim,verdict,figure,"condition","reason": no quote inside a field */
        paper_row_t *r = &v[n++];
        int used = 0;
        if (sscanf(line, "%31[^,],%15[^,],%63[^,],\"%255[^\"]\",\"%n", r->claim, r->verdict,
                   r->figure, r->cond, &used) != 4 ||
            !used)
            fail_msg("%s: not claim,verdict,figure,\"condition\",\"reason\": %s", path, line);
        char *q = strchr(line + used, '"');
        if (!q || q[1])
            fail_msg("%s: the reason is not one quoted field: %s", path, line);
        r->reason_len = (size_t)(q - (line + used));
    }
    free(txt);
    return n;
}

typedef struct {
    char key[48], value[64];
} paper_kv_t;

/* the rows of DIR/data/NAME_keys.csv (header, syntax, unique keys of one
 * prefix, values that are numbers all checked) */
static size_t paper_keys(const char *dir, const char *name, paper_kv_t *kv, char *path, size_t np)
{
    snprintf(path, np, "%s/data/%s_keys.csv", dir, name);
    char *txt = fpt_slurp(path, NULL), *save = NULL, *line = paper_line(txt, &save);
    if (!line || strcmp(line, "key,value"))
        fail_msg("%s: header '%s'", path, line ? line : "");
    size_t n = 0, lp = 0;
    while ((line = paper_line(NULL, &save))) {
        if (n == 64)
            fail_msg("%s: more than 64 keys", path);
        paper_kv_t *r = &kv[n];
        int used = 0;
        char *end;
        if (sscanf(line, "%47[A-Za-z],\"%63[^\"]\"%n", r->key, r->value, &used) != 2 || !used ||
            line[used] || !isupper((unsigned char)r->key[0]))
            fail_msg("%s: not Key,\"value\": %s", path, line);
        /* the prefix: the capital and the lower-case letters after it */
        size_t l = 1 + strspn(r->key + 1, "abcdefghijklmnopqrstuvwxyz");
        if (n == 0)
            lp = l;
        if (l != lp || strncmp(r->key, kv[0].key, lp))
            fail_msg("%s: key %s, but %s has the prefix %.*s", path, r->key, kv[0].key, (int)lp,
                     kv[0].key);
        (void)strtod(r->value, &end);
        if (end == r->value || *end)
            fail_msg("%s: key %s: '%s' is not a number", path, r->key, r->value);
        for (size_t i = 0; i < n; i++)
            if (!strcmp(kv[i].key, r->key))
                fail_msg("%s: key %s twice", path, r->key);
        n++;
    }
    free(txt);
    return n;
}

/* DIR/plots/FIGURE.EXT: a file of more than 1000 bytes that starts with magic */
static void paper_drawn(const char *dir, const char *claim, const char *fig, const char *ext,
                        const char *magic)
{
    char path[4200], head[4] = {0};
    snprintf(path, sizeof path, "%s/plots/%s.%s", dir, fig, ext);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("%s names figure %s, but %s was not drawn", claim, fig, path);
    size_t got = fread(head, 1, 4, fp);
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fclose(fp);
    if (got != 4 || memcmp(head, magic, 4) || size <= 1000)
        fail_msg("%s (figure of %s): not a %s of more than 1000 bytes", path, claim, ext);
}

void fpt_paper_outputs(const char *dir, const char *name, const char *printed,
                       const char *const *claims, size_t nclaims, const char *const *keys,
                       size_t nkeys)
{
    char path[4200], figs[3][64];
    paper_row_t v[16];
    size_t n = paper_verdicts(dir, name, v, 16, path, sizeof path), nfig = 0;
    size_t lp = strcspn(name, "_"); /* figures begin with NAME up to its first '_' */
    for (size_t i = 0; i < n; i++) {
        const paper_row_t *r = &v[i];
        if (i >= nclaims || strcmp(r->claim, claims[i]))
            fail_msg("%s: row %zu is claim %s, expected %s", path, i + 1, r->claim,
                     i < nclaims ? claims[i] : "no more rows");
        if (strcmp(r->verdict, "holds") && strcmp(r->verdict, "conditional") &&
            strcmp(r->verdict, "refuted"))
            fail_msg("%s: %s: verdict '%s'", path, r->claim, r->verdict);
        if (printed) {
            char want[64];
            snprintf(want, sizeof want, "verdict %.31s %.15s ", r->claim, r->verdict);
            if (!strstr(printed, want))
                fail_msg("%s: %s is %s, but the run printed no '%s...' line", path, r->claim,
                         r->verdict, want);
        }
        const char *fig = r->figure;
        if (strspn(fig, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(fig) ||
            !strcmp(fig, "todo") || strncmp(fig, name, lp) || (fig[lp] && fig[lp] != '_'))
            fail_msg("%s: %s: figure '%s' is not a plot of %s", path, r->claim, fig, name);
        paper_drawn(dir, r->claim, fig, "png", "\x89PNG");
        paper_drawn(dir, r->claim, fig, "pdf", "%PDF");
        size_t k = 0;
        while (k < nfig && strcmp(figs[k], fig))
            k++;
        if (k == nfig) {
            if (nfig == 3)
                fail_msg("%s: more than three figures", path);
            snprintf(figs[nfig++], sizeof figs[0], "%s", fig);
        }
        size_t cl = strlen(r->cond);
        if (cl < 1 || cl > 110 || !strcmp(r->cond, "todo"))
            fail_msg("%s: %s: condition of %zu characters: '%s'", path, r->claim, cl, r->cond);
        for (size_t c = 0; c < cl; c++)
            if (r->cond[c] < ' ' || r->cond[c] > '~')
                fail_msg("%s: %s: condition with a byte %d", path, r->claim, r->cond[c]);
        if (r->reason_len <= 20)
            fail_msg("%s: %s: a reason of %zu characters", path, r->claim, r->reason_len);
    }
    if (n != nclaims)
        fail_msg("%s: %zu rows for %zu claims", path, n, nclaims);
    paper_kv_t kv[64];
    size_t nkv = paper_keys(dir, name, kv, path, sizeof path);
    for (size_t j = 0; j < nkeys; j++) {
        size_t i = 0;
        while (i < nkv && strcmp(kv[i].key, keys[j]))
            i++;
        if (i == nkv)
            fail_msg("%s: key %s (used by the paper) is missing", path, keys[j]);
    }
}

double fpt_paper_key(const char *dir, const char *name, const char *key)
{
    char path[4200];
    paper_kv_t kv[64];
    size_t n = paper_keys(dir, name, kv, path, sizeof path);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(kv[i].key, key))
            return strtod(kv[i].value, NULL);
    fail_msg("%s: no key %s", path, key);
    return NAN;
}

void fpt_paper_finite(const char *dir, const char *name, const char *const *keys, size_t nkeys)
{
    for (size_t i = 0; i < nkeys; i++) {
        double x = fpt_paper_key(dir, name, keys[i]);
        if (!isfinite(x))
            fail_msg("%s/data/%s_keys.csv: key %s is %g, not finite", dir, name, keys[i], x);
    }
}

const char *fpt_paper_condition(const char *dir, const char *name, const char *claim)
{
    static char cond[256];
    char path[4200];
    paper_row_t v[16];
    size_t n = paper_verdicts(dir, name, v, 16, path, sizeof path);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].claim, claim))
            return strcpy(cond, v[i].cond);
    fail_msg("%s: no claim %s", path, claim);
    return NULL;
}
