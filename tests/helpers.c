/* helpers.c -- test helpers: seeds, random inputs, the independent oracle */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/wait.h>

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
