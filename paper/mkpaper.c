/* mkpaper -- the paper's data, generated: the verdict table, the key numbers
 * and the claim -> figure map, from what the analyses wrote.
 *
 *   mkpaper collect [--data DIR] ANALYSIS...
 *       DIR/ANALYSIS_verdicts.csv (claim,verdict,figure,condition,reason) of
 *       each analysis -> DIR/verdicts.csv (claim,verdict,figure,condition,
 *       analysis), in the order given.
 *   mkpaper tex [--data DIR] [--gen DIR] [--plots DIR] [--check FILE]... ANALYSIS...
 *       DIR/verdicts.csv and DIR/ANALYSIS_keys.csv -> GEN/verdicts.tex (the
 *       table's rows, as the macro \fplverdictrows) and GEN/data.tex (\fplKEY macros, each claim's verdict,
 *       condition and figure).  --plots: every figure must exist there as
 *       FIGURE.pdf.  --check FILE: every \fplKEY, \verdictof{C},
 *       \conditionof{C}, \claimfig{C} and \figof{C} the file uses must be
 *       defined by the data (a key that is nan or inf in this run gets a
 *       warning: at --quick sizes some measurements do not exist).
 *
 * Every output is written whole or not at all (temporary file, rename); any
 * problem is one line on stderr and exit status 1 (2 for bad usage). */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "fplab.h"

#define MAXF 8 /* fields per row we keep */

typedef struct {
    char *f[MAXF];
    int nf;
    int order; /* position in the input, for a stable sort */
} row_t;

typedef struct {
    row_t *r;
    size_t n, cap;
} table_t;

/* ---- output buffer ------------------------------------------------------- */
typedef struct {
    char *s;
    size_t n, cap;
} buf_t;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mkpaper: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p)
        die("out of memory");
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

static void put(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->n + (size_t)k + 1 > b->cap) {
        b->cap = 2 * (b->n + (size_t)k + 1);
        b->s = xrealloc(b->s, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

static void save(const char *path, buf_t *b)
{
    if (fpl_write_atomic(path, b->s ? b->s : "", b->n))
        die("%s", fpl_last_error());
    free(b->s);
    b->s = NULL;
    b->n = b->cap = 0;
}

/* ---- CSV: '#' comment lines, a header, fields plain or in double quotes -- */
static char *slurp(const char *path, const char *hint)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        die("%s: %s%s", path, strerror(errno), hint ? hint : "");
    buf_t b = {0};
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        if (b.n + k + 1 > b.cap) {
            b.cap = 2 * (b.n + k + 1);
            b.s = xrealloc(b.s, b.cap);
        }
        memcpy(b.s + b.n, chunk, k);
        b.n += k;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad)
        die("%s: read error", path);
    if (!b.s)
        b.s = xrealloc(NULL, 1);
    b.s[b.n] = '\0';
    if (memchr(b.s, '\0', b.n))
        die("%s: not a text file", path);
    return b.s;
}

/* Split one line into fields in place; returns the count, or -1 on a
 * malformed quoted field. */
static int split(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        char *out = p, *start = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p)
                    return -1;
                if (*p == '"' && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else
                    *out++ = *p++;
            }
            if (*p && *p != ',')
                return -1;
        } else {
            while (*p && *p != ',')
                *out++ = *p++;
        }
        char sep = *p;
        *out = '\0';
        if (n < max)
            f[n] = start;
        n++;
        if (!sep)
            return n;
        p++;
    }
}

/* Read path; the header must be `header`; rows must have its field count. */
static table_t read_csv(const char *path, const char *header, const char *hint)
{
    char *text = slurp(path, hint);
    table_t t = {0};
    int want = 1, seen_header = 0, lineno = 0;
    for (const char *h = header; *h; h++)
        want += *h == ',';
    for (char *line = text, *next; line && *line; line = next) {
        lineno++;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r')
            line[--len] = '\0';
        if (line[0] == '#' || !len)
            continue;
        if (!seen_header) {
            if (strcmp(line, header))
                die("%s:%d: the header is '%s', expected '%s'", path, lineno, line, header);
            seen_header = 1;
            continue;
        }
        row_t r = {0};
        char *f[MAXF];
        int nf = split(line, f, MAXF);
        if (nf != want)
            die("%s:%d: %d fields, expected %d (%s)", path, lineno, nf < 0 ? 0 : nf, want, header);
        for (int i = 0; i < nf; i++)
            r.f[i] = xstrdup(f[i]);
        r.nf = nf;
        r.order = (int)t.n;
        if (t.n == t.cap)
            t.r = xrealloc(t.r, (t.cap = 2 * t.cap + 16) * sizeof *t.r);
        t.r[t.n++] = r;
    }
    if (!seen_header)
        die("%s: no header line (expected '%s')", path, header);
    free(text);
    return t;
}

static void free_table(table_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        for (int j = 0; j < t->r[i].nf; j++)
            free(t->r[i].f[j]);
    free(t->r);
    t->r = NULL;
    t->n = t->cap = 0;
}

/* ---- checks shared by both steps ----------------------------------------- */
static int is_verdict(const char *v)
{
    return !strcmp(v, "holds") || !strcmp(v, "conditional") || !strcmp(v, "refuted");
}

static int all_of(const char *s, const char *set) { return *s && strspn(s, set) == strlen(s); }

#define LOWER "abcdefghijklmnopqrstuvwxyz"
#define UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define DIGIT "0123456789"

static int printable(const char *s)
{
    for (; *s; s++)
        if (*s < ' ' || *s > '~')
            return 0;
    return 1;
}

static void check_row(const char *path, const row_t *r, int analysis_col)
{
    const char *claim = r->f[0];
    if (!all_of(claim, UPPER LOWER DIGIT "-") || !isupper((unsigned char)claim[0]))
        die("%s: bad claim id '%s' (letters, digits and '-', e.g. T1-acc)", path, claim);
    if (!is_verdict(r->f[1]))
        die("%s: claim %s: unknown verdict '%s' (holds, conditional or refuted)", path, claim,
            r->f[1]);
    if (!all_of(r->f[2], LOWER DIGIT "_"))
        die("%s: claim %s: bad figure name '%s'", path, claim, r->f[2]);
    if (!*r->f[3] || !printable(r->f[3]))
        die("%s: claim %s: the condition is empty or not printable ASCII", path, claim);
    if (analysis_col && !all_of(r->f[4], LOWER DIGIT "_"))
        die("%s: claim %s: bad analysis name '%s'", path, claim, r->f[4]);
}

static void check_analysis_name(const char *a)
{
    if (!all_of(a, LOWER DIGIT "_"))
        die("bad analysis name '%s'", a);
}

/* ---- collect -------------------------------------------------------------- */
static void collect(const char *data, int na, char **names)
{
    buf_t out = {0};
    char path[4096], hint[256];
    put(&out, "# fplab %s\n# collected from:", fpl_version());
    for (int a = 0; a < na; a++)
        put(&out, " %s_verdicts.csv", names[a]);
    put(&out, "\nclaim,verdict,figure,condition,analysis\n");
    table_t all = {0};
    for (int a = 0; a < na; a++) {
        check_analysis_name(names[a]);
        snprintf(path, sizeof path, "%s/%s_verdicts.csv", data, names[a]);
        snprintf(hint, sizeof hint, " (run `make analysis-%s`)", names[a]);
        table_t t = read_csv(path, "claim,verdict,figure,condition,reason", hint);
        if (!t.n)
            die("%s: no verdicts", path);
        for (size_t i = 0; i < t.n; i++) {
            check_row(path, &t.r[i], 0);
            for (size_t j = 0; j < all.n; j++)
                if (!strcmp(all.r[j].f[0], t.r[i].f[0]))
                    die("%s: claim %s already has a verdict from %s", path, t.r[i].f[0],
                        all.r[j].f[1]);
            put(&out, "%s,%s,%s,\"%s\",%s\n", t.r[i].f[0], t.r[i].f[1], t.r[i].f[2], t.r[i].f[3],
                names[a]);
            row_t r = {{xstrdup(t.r[i].f[0]), xstrdup(names[a])}, 2, 0};
            if (all.n == all.cap)
                all.r = xrealloc(all.r, (all.cap = 2 * all.cap + 16) * sizeof *all.r);
            all.r[all.n++] = r;
        }
        free_table(&t);
    }
    free_table(&all);
    snprintf(path, sizeof path, "%s/verdicts.csv", data);
    save(path, &out);
}

/* ---- LaTeX ---------------------------------------------------------------- */

/* A number written by printf ("1.5e-05", "-3", "0.48") is typeset in math
 * mode, its exponent as a power of ten; returns the length consumed, 0 if
 * s does not start with a number. */
static size_t tex_number(buf_t *b, const char *s)
{
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    const char *m0 = p;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p == '.' && isdigit((unsigned char)p[1]))
        for (p++; isdigit((unsigned char)*p);)
            p++;
    if (p == m0)
        return 0;
    const char *mend = p;
    long ex = 0;
    int has_ex = 0;
    if ((*p == 'e' || *p == 'E') &&
        (isdigit((unsigned char)p[1]) || ((p[1] == '-' || p[1] == '+') && isdigit((unsigned char)p[2])))) {
        char *end;
        ex = strtol(p + 1, &end, 10);
        has_ex = 1;
        p = end;
    }
    /* "3.9x" is a factor; a word that merely starts with digits (e4m3) is text */
    int times = *p == 'x' && !isalnum((unsigned char)p[1]) && p[1] != '_';
    if (!times && (isalpha((unsigned char)*p) || *p == '_'))
        return 0;
    put(b, "\\ensuremath{");
    if (*s == '-')
        put(b, "-");
    if (!has_ex)
        put(b, "%.*s}", (int)(mend - m0), m0);
    else if (mend - m0 == 1 && *m0 == '1')
        put(b, "10^{%ld}}", ex);
    else
        put(b, "%.*s\\times 10^{%ld}}", (int)(mend - m0), m0, ex);
    if (times) {
        put(b, "\\ensuremath{\\times}");
        p++;
    }
    return (size_t)(p - s);
}

/* One character of plain text, escaped for LaTeX. */
static void tex_char(buf_t *b, char c)
{
    switch (c) {
    case '\\': put(b, "\\textbackslash{}"); break;
    case '{': case '}': case '$': case '&': case '#': case '_': case '%':
        put(b, "\\%c", c);
        break;
    case '^': put(b, "\\textasciicircum{}"); break;
    case '~': put(b, "\\textasciitilde{}"); break;
    case '<': case '>': case '|': put(b, "\\ensuremath{%c}", c); break;
    default: put(b, "%c", c);
    }
}

/* A word of letters, digits and '.', for subscripts and exponents. */
static size_t tex_word(const char *s)
{
    size_t k = (*s == '-' || *s == '+') ? 1 : 0;
    while (isalnum((unsigned char)s[k]) || (s[k] == '.' && isalnum((unsigned char)s[k + 1])))
        k++;
    return k > ((*s == '-' || *s == '+') ? 1u : 0u) ? k : 0;
}

/* Plain ASCII text into LaTeX: specials escaped, and the few math spellings
 * an analysis writes typeset as math:
 *   1.5e-05, -3        numbers (tex_number); 3.9x and "2 x 3" as factors
 *   1.4-2.6, 16..4096  ranges (an en dash, "to")
 *   <= >=  ~3          relations, "about"
 *   sqrt(n)            a root of a parenthesis-free argument
 *   gamma_n sigma_t    Greek letters, with a subscript word
 *   2^14 l^-0.5        an exponent word */
static void tex_text(buf_t *b, const char *s)
{
    static const char *greek[] = {"gamma", "sigma", "epsilon", "lambda", "mu"};
    int word_start = 1;
    while (*s) {
        char c = *s;
        size_t k;
        if (word_start && (k = tex_number(b, s))) {
            s += k;
            word_start = 0;
            /* ranges: 1.4-2.6 and 16..16384; a factor written " x " */
            if (s[0] == '-' && isdigit((unsigned char)s[1])) {
                put(b, "--");
                s++;
                word_start = 1;
            } else if (s[0] == '.' && s[1] == '.' && isdigit((unsigned char)s[2])) {
                put(b, " to ");
                s += 2;
                word_start = 1;
            } else if (s[0] == ' ' && s[1] == 'x' && s[2] == ' ') {
                put(b, " \\ensuremath{\\times} ");
                s += 3;
                word_start = 1;
            }
            continue;
        }
        if (word_start && !strncmp(s, "sqrt(", 5) && (k = strcspn(s + 5, "()")) && s[5 + k] == ')') {
            put(b, "\\ensuremath{\\sqrt{");
            for (size_t i = 0; i < k; i++)
                tex_char(b, s[5 + i] == '_' ? ' ' : s[5 + i]);
            put(b, "}}");
            s += 6 + k;
            word_start = 0;
            continue;
        }
        if (word_start) {
            size_t g;
            for (g = 0; g < sizeof greek / sizeof *greek; g++) {
                size_t l = strlen(greek[g]);
                if (!strncmp(s, greek[g], l) && !isalnum((unsigned char)s[l]) && s[l] != '(')
                    break;
            }
            if (g < sizeof greek / sizeof *greek) {
                size_t l = strlen(greek[g]);
                put(b, "\\ensuremath{\\%s", greek[g]);
                s += l;
                if (*s == '_' && (k = tex_word(s + 1))) {
                    put(b, "_{%.*s}", (int)k, s + 1);
                    s += 1 + k;
                }
                put(b, "}");
                word_start = 0;
                continue;
            }
        }
        if (c == '^' && !word_start && (k = tex_word(s + 1))) {
            put(b, "\\ensuremath{^{%.*s}}", (int)k, s + 1);
            s += 1 + k;
            continue;
        }
        if (c == '~' && word_start && (isdigit((unsigned char)s[1]) || s[1] == '.')) {
            put(b, "\\ensuremath{\\sim}");
            s++;
            continue; /* the number follows, still at a word start */
        }
        if ((c == '<' || c == '>') && s[1] == '=') {
            put(b, c == '<' ? "\\ensuremath{\\le}" : "\\ensuremath{\\ge}");
            s += 2;
        } else {
            tex_char(b, c);
            s++;
        }
        word_start = !isalnum((unsigned char)c) && c != '.' && c != '_';
    }
}

/* Claims in the order of CLAIMS.md: families T, V, D, P, then by number,
 * then as the data list them. */
static int family(const char *c)
{
    const char *p = strchr("TVDP", c[0]);
    return p ? (int)(p - "TVDP") : 4;
}

static int cmp_claim(const void *x, const void *y)
{
    const row_t *a = x, *b = y;
    int fa = family(a->f[0]), fb = family(b->f[0]);
    if (fa != fb)
        return fa - fb;
    long na = strtol(a->f[0] + 1, NULL, 10), nb = strtol(b->f[0] + 1, NULL, 10);
    if (na != nb)
        return na < nb ? -1 : 1;
    return a->order - b->order;
}

typedef struct {
    char **name;
    size_t n, cap;
} names_t;

static int has(const names_t *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->name[i], x))
            return 1;
    return 0;
}

static void add(names_t *s, const char *x)
{
    if (s->n == s->cap)
        s->name = xrealloc(s->name, (s->cap = 2 * s->cap + 16) * sizeof *s->name);
    s->name[s->n++] = xstrdup(x);
}

/* The uses of \fplKEY and of \verdictof{C} etc. in a .tex file must all be
 * defined; comments are skipped. */
static void check_tex(const char *path, const names_t *keys, const names_t *nonfinite,
                      const names_t *claims)
{
    static const char *claim_macros[] = {"verdictof", "conditionof", "claimfig", "figof",
                                         "analysisof"};
    char *text = slurp(path, NULL);
    int lineno = 1, bad = 0;
    for (char *p = text; *p; p++) {
        if (*p == '\n') {
            lineno++;
            continue;
        }
        if (*p == '%' && (p == text || p[-1] != '\\')) {
            while (p[1] && p[1] != '\n')
                p++;
            continue;
        }
        if (*p != '\\')
            continue;
        if (!strncmp(p + 1, "fpl", 3) && isupper((unsigned char)p[4])) {
            char key[128];
            size_t k = strspn(p + 4, UPPER LOWER);
            snprintf(key, sizeof key, "%.*s", (int)(k < 127 ? k : 127), p + 4);
            if (has(nonfinite, key))
                fprintf(stderr,
                        "mkpaper: warning: %s:%d: \\fpl%s is not a finite number in this run\n",
                        path, lineno, key);
            if (!has(keys, key)) {
                fprintf(stderr, "mkpaper: %s:%d: \\fpl%s is not a key number any analysis wrote\n",
                        path, lineno, key);
                bad = 1;
            }
            continue;
        }
        for (size_t m = 0; m < sizeof claim_macros / sizeof *claim_macros; m++) {
            size_t l = strlen(claim_macros[m]);
            if (strncmp(p + 1, claim_macros[m], l) || p[1 + l] != '{')
                continue;
            char *end = strchr(p + 2 + l, '}');
            if (!end)
                break;
            char claim[64];
            snprintf(claim, sizeof claim, "%.*s", (int)(end - (p + 2 + l)), p + 2 + l);
            if (!has(claims, claim)) {
                fprintf(stderr, "mkpaper: %s:%d: \\%s{%s}: no verdict for claim %s in the data\n",
                        path, lineno, claim_macros[m], claim, claim);
                bad = 1;
            }
        }
    }
    free(text);
    if (bad)
        exit(1);
}

static void tex(const char *data, const char *gen, const char *plots, int ncheck, char **check,
                int na, char **names)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/verdicts.csv", data);
    table_t v = read_csv(path, "claim,verdict,figure,condition,analysis", " (run `make paper`)");
    if (!v.n)
        die("%s: no verdicts", path);
    names_t claims = {0}, keys = {0}, figs = {0}, nonfinite = {0};
    int count[3] = {0};
    for (size_t i = 0; i < v.n; i++) {
        check_row(path, &v.r[i], 1);
        if (has(&claims, v.r[i].f[0]))
            die("%s: claim %s has two verdicts", path, v.r[i].f[0]);
        add(&claims, v.r[i].f[0]);
        count[!strcmp(v.r[i].f[1], "holds") ? 0 : !strcmp(v.r[i].f[1], "conditional") ? 1 : 2]++;
        if (plots) {
            char fig[4096];
            struct stat st;
            snprintf(fig, sizeof fig, "%s/%s.pdf", plots, v.r[i].f[2]);
            if (stat(fig, &st))
                die("%s: claim %s names figure %s, but %s is missing (is gnuplot installed? "
                    "then rerun `make analysis-%s`)",
                    path, v.r[i].f[0], v.r[i].f[2], fig, v.r[i].f[4]);
        }
    }
    qsort(v.r, v.n, sizeof *v.r, cmp_claim);

    /* the data: claims, figures, key numbers */
    buf_t d = {0};
    put(&d, "%% generated by mkpaper from %s/verdicts.csv and the analyses' key numbers:"
            " do not edit\n",
        data);
    for (size_t i = 0; i < v.n; i++) {
        const row_t *r = &v.r[i];
        put(&d, "\\fplclaimdata{%s}{%s}{%s}{", r->f[0], r->f[1], r->f[2]);
        for (const char *p = r->f[4]; *p; p++)
            tex_char(&d, *p);
        put(&d, "}{");
        tex_text(&d, r->f[3]);
        put(&d, "}\n");
        if (!has(&figs, r->f[2]))
            add(&figs, r->f[2]);
    }
    for (size_t i = 0; i < figs.n; i++) {
        put(&d, "\\fplfiguredata{%s}{", figs.name[i]);
        const char *sep = "";
        for (size_t j = 0; j < v.n; j++)
            if (!strcmp(v.r[j].f[2], figs.name[i])) {
                put(&d, "%s%s", sep, v.r[j].f[0]);
                sep = ", ";
            }
        put(&d, "}\n");
    }
    /* a claim and its variants (T2, T2-norm, ...) are one claim of CLAIMS.md */
    int nbase = 0;
    for (size_t i = 0; i < v.n; i++)
        nbase += !strchr(v.r[i].f[0], '-');
    static const char *counts[] = {"NClaims", "NHolds", "NConditional", "NRefuted", "NBase"};
    int cv[] = {(int)v.n, count[0], count[1], count[2], nbase};
    for (int i = 0; i < 5; i++) {
        put(&d, "\\fplkeydata{%s}{\\ensuremath{%d}}\n", counts[i], cv[i]);
        add(&keys, counts[i]);
    }
    for (int a = 0; a < na; a++) {
        char hint[256];
        check_analysis_name(names[a]);
        snprintf(path, sizeof path, "%s/%s_keys.csv", data, names[a]);
        snprintf(hint, sizeof hint, " (run `make analysis-%s`)", names[a]);
        table_t k = read_csv(path, "key,value", hint);
        for (size_t i = 0; i < k.n; i++) {
            const char *key = k.r[i].f[0], *val = k.r[i].f[1];
            if (!all_of(key, UPPER LOWER) || !isupper((unsigned char)key[0]))
                die("%s: bad key '%s' (letters only, starting with a capital)", path, key);
            if (has(&keys, key))
                die("%s: key %s is defined twice", path, key);
            if (!*val || !printable(val))
                die("%s: key %s: the value is empty or not printable ASCII", path, key);
            add(&keys, key);
            if (!strcasecmp(val, "nan") || !strcasecmp(val, "inf") || !strcasecmp(val, "-inf"))
                add(&nonfinite, key);
            put(&d, "\\fplkeydata{%s}{", key);
            tex_text(&d, val);
            put(&d, "}\n");
        }
        free_table(&k);
    }
    for (int i = 0; i < ncheck; i++)
        check_tex(check[i], &keys, &nonfinite, &claims);

    /* the table's rows */
    buf_t t = {0};
    put(&t, "%% generated by mkpaper from %s/verdicts.csv: do not edit\n"
            "\\def\\fplverdictrows{%%\n",
        data);
    for (size_t i = 0; i < v.n; i++) {
        const row_t *r = &v.r[i];
        put(&t, "\\fplverdictrow{%s}{%s}{", r->f[0], r->f[1]);
        tex_text(&t, r->f[3]);
        put(&t, "}{%s}{", r->f[2]);
        for (const char *p = r->f[4]; *p; p++)
            tex_char(&t, *p);
        put(&t, "}%%\n");
    }
    put(&t, "}\n");
    char p1[4096], p2[4096];
    if (mkdir(gen, 0777) && errno != EEXIST)
        die("cannot create %s: %s", gen, strerror(errno));
    snprintf(p1, sizeof p1, "%s/data.tex", gen);
    snprintf(p2, sizeof p2, "%s/verdicts.tex", gen);
    save(p1, &d);
    save(p2, &t);
    free_table(&v);
    for (names_t *s = &claims; s;
         s = s == &claims ? &keys : s == &keys ? &figs : s == &figs ? &nonfinite : NULL) {
        for (size_t i = 0; i < s->n; i++)
            free(s->name[i]);
        free(s->name);
    }
}

static void usage(FILE *fp)
{
    fputs("usage: mkpaper collect [--data DIR] ANALYSIS...\n"
          "       mkpaper tex [--data DIR] [--gen DIR] [--plots DIR] [--check FILE]... ANALYSIS...\n"
          "collect: DIR/ANALYSIS_verdicts.csv of each analysis -> DIR/verdicts.csv\n"
          "tex:     DIR/verdicts.csv and DIR/ANALYSIS_keys.csv -> GEN/verdicts.tex, GEN/data.tex;\n"
          "         --plots: each figure must exist as PLOTS/FIGURE.pdf;\n"
          "         --check: every key and claim a .tex file uses must be defined\n"
          "defaults: --data data, --gen paper/gen\n",
          fp);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1], *data = "data", *gen = "paper/gen", *plots = NULL;
    int is_tex = !strcmp(cmd, "tex");
    if (!is_tex && strcmp(cmd, "collect")) {
        fprintf(stderr, "mkpaper: unknown command '%s' (collect or tex; try --help)\n", cmd);
        return 2;
    }
    char **check = xrealloc(NULL, (size_t)argc * sizeof *check);
    char **an = xrealloc(NULL, (size_t)argc * sizeof *an);
    int ncheck = 0, na = 0;
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        int takes = !strcmp(o, "--data") || !strcmp(o, "--gen") || !strcmp(o, "--plots") ||
                    !strcmp(o, "--check");
        if (takes) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mkpaper: %s needs a value\n", o);
                goto usage_error;
            }
            if (!is_tex && strcmp(o, "--data")) {
                fprintf(stderr, "mkpaper: %s is an option of `mkpaper tex`\n", o);
                goto usage_error;
            }
            const char *val = argv[++i];
            if (!strcmp(o, "--data"))
                data = val;
            else if (!strcmp(o, "--gen"))
                gen = val;
            else if (!strcmp(o, "--plots"))
                plots = val;
            else
                check[ncheck++] = argv[i];
        } else if (o[0] == '-') {
            fprintf(stderr, "mkpaper: unknown option '%s' (try --help)\n", o);
            goto usage_error;
        } else
            an[na++] = argv[i];
    }
    if (!na) {
        fprintf(stderr, "mkpaper: name at least one analysis (try --help)\n");
        goto usage_error;
    }
    if (is_tex)
        tex(data, gen, plots, ncheck, check, na, an);
    else
        collect(data, na, an);
    free(check);
    free(an);
    return 0;
usage_error:
    free(check);
    free(an);
    return 2;
}
