/* test_paper.c -- the paper's generated data: paper/mkpaper collects the
 * analyses' verdicts into data/verdicts.csv, the verdict table follows that
 * file row for row (and changes when a verdict changes), key numbers become
 * macros, the text may use only what the data define, and every kind of bad
 * input is refused with one message and no output touched.  Last, the real
 * paper text is checked against a quick run of every analysis. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../analyses/common.h"
#include "helpers.h"

static char mkpaper[4096];
static char out[65536];

static char *tmpdir(void)
{
    char *d = strdup("/tmp/fplab-paper-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void rmdir_all(char *d)
{
    fpt_sh_all(NULL, 0, "rm -rf '%s'", d);
    free(d);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static char *read_file(const char *dir, const char *name)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    static char buf[4][65536];
    static int k;
    char *b = buf[k++ % 4];
    size_t n = fread(b, 1, sizeof buf[0] - 1, fp);
    b[n] = '\0';
    fclose(fp);
    return b;
}

/* Two small analyses' outputs, as the analyses write them. */
static const char *alpha_verdicts =
    "# fplab 0.1.0\n# command: alpha --seed 1\n# seed: 1\n"
    "claim,verdict,figure,condition,reason\n"
    "X1,holds,alpha_fig,\"all 12 cases, d <= 4096\",\"the whole finding, with 1.5e-05\"\n"
    "X1-sub,conditional,alpha_fig,\"only when the state is rounded: sqrt(N)\",\"more\"\n";
static const char *beta_verdicts = "# fplab 0.1.0\n"
                                   "claim,verdict,figure,condition,reason\n"
                                   "Y2,refuted,beta_x,\"0 of 54 cases bounded\",\"why\"\n";
static const char *alpha_keys = "# fplab 0.1.0\nkey,value\nAlphaExp,\"0.48\"\n"
                                "AlphaTiny,\"1.5e-05\"\nAlphaNeg,\"-3\"\nAlphaWord,\"e4m3\"\n"
                                "AlphaPow,\"~2^14\"\nAlphaGreek,\"gamma_n and sigma_t\"\n"
                                "AlphaRange,\"1.4-2.6x, d = 16..4096, 3 x 4\"\n"
                                "AlphaGap,\"nan\"\n";
static const char *beta_keys = "key,value\nBetaCount,\"54\"\n";

static char *fixture(void)
{
    char *d = tmpdir();
    assert_int_equal(fpt_run("mkdir -p '%s/data' '%s/gen' '%s/plots' && touch '%s/plots/alpha_fig.pdf' "
                             "'%s/plots/beta_x.pdf'",
                             d, d, d, d, d),
                     0);
    char data[4096];
    snprintf(data, sizeof data, "%s/data", d);
    write_file(data, "alpha_verdicts.csv", alpha_verdicts);
    write_file(data, "beta_verdicts.csv", beta_verdicts);
    write_file(data, "alpha_keys.csv", alpha_keys);
    write_file(data, "beta_keys.csv", beta_keys);
    return d;
}

static int collect(const char *d) { return fpt_sh_all(out, sizeof out, "'%s' collect --data '%s/data' alpha beta", mkpaper, d); }

static int tex(const char *d, const char *extra)
{
    return fpt_sh_all(out, sizeof out,
                      "'%s' tex --data '%s/data' --gen '%s/gen' --plots '%s/plots' %s alpha beta",
                      mkpaper, d, d, d, extra);
}

/* The rows of the table (lines starting with \fplverdictrow). */
static int table_rows(const char *t, char rows[][512], int max)
{
    int n = 0;
    for (const char *p = strstr(t, "\\fplverdictrow{"); p; p = strstr(p + 1, "\\fplverdictrow{")) {
        const char *e = strchr(p, '\n');
        assert_true(n < max);
        snprintf(rows[n++], 512, "%.*s", (int)(e ? e - p : (long)strlen(p)), p);
    }
    return n;
}

static void test_paper_collect(void **state)
{
    (void)state;
    char *d = fixture(), data[4096];
    snprintf(data, sizeof data, "%s/data", d);
    assert_int_equal(collect(d), 0);
    const char *v = read_file(data, "verdicts.csv");
    /* the header, then every verdict of every analysis, in the order named,
     * with the analysis it came from and without the long reason */
    const char *want = "claim,verdict,figure,condition,analysis\n"
                       "X1,holds,alpha_fig,\"all 12 cases, d <= 4096\",alpha\n"
                       "X1-sub,conditional,alpha_fig,\"only when the state is rounded: sqrt(N)\",alpha\n"
                       "Y2,refuted,beta_x,\"0 of 54 cases bounded\",beta\n";
    const char *body = strstr(v, "claim,verdict");
    assert_non_null(body);
    assert_string_equal(body, want);
    assert_null(strstr(v, "whole finding"));
    /* the order of the analyses on the command line is the order of the rows */
    assert_int_equal(fpt_sh_all(out, sizeof out, "'%s' collect --data '%s' beta alpha", mkpaper, data), 0);
    v = read_file(data, "verdicts.csv");
    assert_true(strstr(v, "Y2,") < strstr(v, "X1,"));
    rmdir_all(d);
}

static void test_paper_table_follows_verdicts(void **state)
{
    (void)state;
    char *d = fixture(), data[4096], gen[4096];
    snprintf(data, sizeof data, "%s/data", d);
    snprintf(gen, sizeof gen, "%s/gen", d);
    assert_int_equal(collect(d), 0);
    assert_int_equal(tex(d, ""), 0);
    static char rows[3][16][512];
    int n = table_rows(read_file(gen, "verdicts.tex"), rows[0], 16);
    /* one row per line of verdicts.csv, with its claim, verdict, figure and
     * analysis; the condition typeset (<= as a relation) */
    assert_int_equal(n, 3);
    assert_non_null(strstr(rows[0][0], "\\fplverdictrow{X1}{holds}{"));
    assert_non_null(strstr(rows[0][0], "}{alpha_fig}{alpha}"));
    assert_non_null(strstr(rows[0][0], "\\ensuremath{\\le}"));
    assert_non_null(strstr(rows[0][1], "\\fplverdictrow{X1-sub}{conditional}{"));
    assert_non_null(strstr(rows[0][1], "rounded: \\ensuremath{\\sqrt{N}}}"));
    assert_non_null(strstr(rows[0][2], "\\fplverdictrow{Y2}{refuted}{"));
    assert_non_null(strstr(rows[0][2], "}{beta_x}{beta}"));

    /* a verdict changed in data/verdicts.csv changes that row, and only it */
    assert_int_equal(fpt_run("sed -i 's/^X1-sub,conditional,/X1-sub,holds,/' '%s/verdicts.csv'", data), 0);
    assert_int_equal(tex(d, ""), 0);
    assert_int_equal(table_rows(read_file(gen, "verdicts.tex"), rows[1], 16), 3);
    assert_string_equal(rows[1][0], rows[0][0]);
    assert_string_not_equal(rows[1][1], rows[0][1]);
    assert_non_null(strstr(rows[1][1], "\\fplverdictrow{X1-sub}{holds}{"));
    assert_string_equal(rows[1][2], rows[0][2]);
    assert_non_null(strstr(read_file(gen, "data.tex"), "\\fplclaimdata{X1-sub}{holds}{alpha_fig}{alpha}{"));

    /* and a verdict changed by the analysis reaches the table through collect */
    assert_int_equal(fpt_run("sed -i 's/^Y2,refuted,/Y2,conditional,/' '%s/beta_verdicts.csv'", data), 0);
    assert_int_equal(collect(d), 0);
    assert_int_equal(tex(d, ""), 0);
    assert_int_equal(table_rows(read_file(gen, "verdicts.tex"), rows[2], 16), 3);
    assert_non_null(strstr(rows[2][2], "\\fplverdictrow{Y2}{conditional}{"));
    /* the counts follow the collected data: 3 claims; X1 holds, X1-sub is
     * conditional again (collect reads the analyses' files), Y2 conditional */
    const char *dt = read_file(gen, "data.tex");
    assert_non_null(strstr(dt, "\\fplkeydata{NClaims}{\\ensuremath{3}}"));
    assert_non_null(strstr(dt, "\\fplkeydata{NHolds}{\\ensuremath{1}}"));
    assert_non_null(strstr(dt, "\\fplkeydata{NConditional}{\\ensuremath{2}}"));
    assert_non_null(strstr(dt, "\\fplkeydata{NRefuted}{\\ensuremath{0}}"));
    /* X1 and Y2 are claims, X1-sub a variant of X1 */
    assert_non_null(strstr(dt, "\\fplkeydata{NBase}{\\ensuremath{2}}"));
    rmdir_all(d);
}

static void test_paper_table_order(void **state)
{
    /* claims are listed in the order of CLAIMS.md: T, V, D, P, by number */
    (void)state;
    char *d = fixture(), data[4096], gen[4096];
    snprintf(data, sizeof data, "%s/data", d);
    snprintf(gen, sizeof gen, "%s/gen", d);
    write_file(data, "alpha_verdicts.csv",
               "claim,verdict,figure,condition,reason\n"
               "P1,holds,alpha_fig,\"c\",\"r\"\nD2,holds,alpha_fig,\"c\",\"r\"\n"
               "T10,holds,alpha_fig,\"c\",\"r\"\nT2-b,holds,alpha_fig,\"c\",\"r\"\n"
               "V1,holds,alpha_fig,\"c\",\"r\"\nT2,holds,alpha_fig,\"c\",\"r\"\n");
    assert_int_equal(collect(d), 0);
    assert_int_equal(tex(d, ""), 0);
    static char rows[16][512];
    int n = table_rows(read_file(gen, "verdicts.tex"), rows, 16);
    /* T2-b and T2 share a number: they keep the order of the data */
    assert_int_equal(n, 7);
    const char *want[] = {"T2-b", "T2", "T10", "V1", "D2", "P1", "Y2"};
    for (int i = 0; i < n; i++) {
        char pre[64];
        snprintf(pre, sizeof pre, "\\fplverdictrow{%s}", want[i]);
        assert_non_null(strstr(rows[i], pre));
    }
    rmdir_all(d);
}

static void test_paper_keys(void **state)
{
    (void)state;
    char *d = fixture(), gen[4096];
    snprintf(gen, sizeof gen, "%s/gen", d);
    assert_int_equal(collect(d), 0);
    assert_int_equal(tex(d, ""), 0);
    const char *dt = read_file(gen, "data.tex");
    /* numbers in math mode, exponents as powers of ten, words as text */
    assert_non_null(strstr(dt, "\\fplkeydata{AlphaExp}{\\ensuremath{0.48}}"));
    assert_non_null(strstr(dt, "\\fplkeydata{AlphaTiny}{\\ensuremath{1.5\\times 10^{-5}}}"));
    assert_non_null(strstr(dt, "\\fplkeydata{AlphaNeg}{\\ensuremath{-3}}"));
    assert_non_null(strstr(dt, "\\fplkeydata{AlphaWord}{e4m3}"));
    /* the few math spellings: about, powers, Greek letters with subscripts */
    assert_non_null(strstr(dt, "\\fplkeydata{AlphaPow}{\\ensuremath{\\sim}\\ensuremath{2}\\ensuremath{^{14}}}"));
    /* ranges take an en dash or "to", factors a times sign */
    assert_non_null(strstr(dt, "\\fplkeydata{AlphaRange}{\\ensuremath{1.4}--\\ensuremath{2.6}\\ensuremath{\\times}, "
                               "d = \\ensuremath{16} to \\ensuremath{4096}, \\ensuremath{3} \\ensuremath{\\times} \\ensuremath{4}}"));
    assert_non_null(strstr(dt, "\\fplkeydata{AlphaGreek}{\\ensuremath{\\gamma_{n}} and \\ensuremath{\\sigma_{t}}}"));
    assert_non_null(strstr(dt, "\\fplkeydata{BetaCount}{\\ensuremath{54}}"));
    /* the figure map: each figure with the claims it shows */
    assert_non_null(strstr(dt, "\\fplfiguredata{alpha_fig}{X1, X1-sub}"));
    assert_non_null(strstr(dt, "\\fplfiguredata{beta_x}{Y2}"));
    rmdir_all(d);
}

static void test_paper_check_text(void **state)
{
    (void)state;
    char *d = fixture(), ex[8192];
    assert_int_equal(collect(d), 0);
    write_file(d, "good.tex",
               "The exponent is \\fplAlphaExp{} and \\claim{X1} \\verdictof{X1}.\n"
               "% \\fplNotAKey in a comment is not a use\n"
               "\\claimfig{Y2}{Caption.} \\figof{X1-sub} \\conditionof{Y2} 50\\% \\fplNClaims\n");
    snprintf(ex, sizeof ex, "--check '%s/good.tex'", d);
    assert_int_equal(tex(d, ex), 0);

    /* a key that is not a number in this run is usable, with a warning */
    write_file(d, "nan_key.tex", "gap \\fplAlphaGap\n");
    snprintf(ex, sizeof ex, "--check '%s/nan_key.tex'", d);
    assert_int_equal(tex(d, ex), 0);
    assert_non_null(strstr(out, "warning: "));
    assert_non_null(strstr(out, "nan_key.tex:1: \\fplAlphaGap is not a finite number"));

    write_file(d, "bad_key.tex", "ok \\fplAlphaExp\nthen \\fplMissingKey{} here\n");
    snprintf(ex, sizeof ex, "--check '%s/bad_key.tex'", d);
    assert_int_not_equal(tex(d, ex), 0);
    assert_non_null(strstr(out, "bad_key.tex:2: \\fplMissingKey is not a key number"));

    write_file(d, "bad_claim.tex", "\\verdictof{X1}\n\n\\claimfig{Z9}{No such claim.}\n");
    snprintf(ex, sizeof ex, "--check '%s/bad_claim.tex'", d);
    assert_int_not_equal(tex(d, ex), 0);
    assert_non_null(strstr(out, "bad_claim.tex:3: \\claimfig{Z9}: no verdict for claim Z9"));
    rmdir_all(d);
}

/* Every refusal: non-zero status, one line naming the problem, and the
 * outputs of the last good run untouched. */
static void refused(const char *d, int collect_step, const char *msg)
{
    char data[4096], gen[4096];
    snprintf(data, sizeof data, "%s/data", d);
    snprintf(gen, sizeof gen, "%s/gen", d);
    static char before[3][65536];
    snprintf(before[0], sizeof before[0], "%s", read_file(data, "verdicts.csv"));
    snprintf(before[1], sizeof before[1], "%s", read_file(gen, "verdicts.tex"));
    snprintf(before[2], sizeof before[2], "%s", read_file(gen, "data.tex"));
    int st = collect_step ? collect(d) : tex(d, "");
    assert_int_not_equal(st, 0);
    if (!strstr(out, msg))
        fail_msg("expected '%s' in: %s", msg, out);
    assert_int_equal((int)(strchr(out, '\n') - out + 1), (int)strlen(out)); /* one line */
    assert_string_equal(read_file(data, "verdicts.csv"), before[0]);
    assert_string_equal(read_file(gen, "verdicts.tex"), before[1]);
    assert_string_equal(read_file(gen, "data.tex"), before[2]);
}

static void test_paper_refusals(void **state)
{
    (void)state;
    struct {
        const char *file, *text, *msg;
        int collect;
    } bad[] = {
        {"alpha_verdicts.csv", "claim,verdict,figure,condition,reason\nX1,probably,alpha_fig,\"c\",\"r\"\n",
         "unknown verdict 'probably'", 1},
        {"alpha_verdicts.csv", "claim,verdict,reason\nX1,holds,\"r\"\n", "the header is", 1},
        {"alpha_verdicts.csv", "claim,verdict,figure,condition,reason\nY2,holds,alpha_fig,\"c\",\"r\"\n",
         "claim Y2 already has a verdict from alpha", 1},
        {"alpha_verdicts.csv", "claim,verdict,figure,condition,reason\nX1,holds,Fig-1,\"c\",\"r\"\n",
         "bad figure name 'Fig-1'", 1},
        {"alpha_verdicts.csv", "claim,verdict,figure,condition,reason\nX1,holds,alpha_fig,\"c\n",
         "fields, expected 5", 1},
        {"alpha_verdicts.csv", "claim,verdict,figure,condition,reason\n", "no verdicts", 1},
        {"beta_keys.csv", "key,value\nAlphaExp,\"1\"\n", "key AlphaExp is defined twice", 0},
        {"beta_keys.csv", "key,value\nbeta_2,\"1\"\n", "bad key 'beta_2'", 0},
        {"beta_keys.csv", "key,value\nBetaEmpty,\"\"\n", "key BetaEmpty: the value is empty", 0},
        {"beta_verdicts.csv", "claim,verdict,figure,condition,reason\nY2,refuted,gamma_fig,\"c\",\"r\"\n",
         "names figure gamma_fig, but", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *d = fixture(), data[4096];
        snprintf(data, sizeof data, "%s/data", d);
        assert_int_equal(collect(d), 0);
        assert_int_equal(tex(d, ""), 0);
        write_file(data, bad[i].file, bad[i].text);
        if (!bad[i].collect && strstr(bad[i].file, "_verdicts"))
            assert_int_equal(collect(d), 0); /* the table step checks the figure */
        refused(d, bad[i].collect, bad[i].msg);
        rmdir_all(d);
    }
    /* a missing analysis says how to make it */
    char *d = fixture();
    assert_int_equal(collect(d), 0);
    assert_int_equal(tex(d, ""), 0);
    assert_int_not_equal(fpt_sh_all(out, sizeof out, "'%s' collect --data '%s/data' alpha gamma", mkpaper, d), 0);
    assert_non_null(strstr(out, "gamma_verdicts.csv: No such file or directory (run `make analysis-gamma`)"));
    rmdir_all(d);
}

static void test_paper_usage(void **state)
{
    (void)state;
    assert_int_equal(fpt_sh_all(out, sizeof out, "'%s' --help", mkpaper), 0);
    assert_non_null(strstr(out, "usage: mkpaper collect"));
    assert_int_equal(fpt_sh_all(out, sizeof out, "'%s'", mkpaper), 2);
    assert_int_equal(fpt_sh_all(out, sizeof out, "'%s' draw alpha", mkpaper), 2);
    assert_non_null(strstr(out, "unknown command 'draw'"));
    assert_int_equal(fpt_sh_all(out, sizeof out, "'%s' tex --frobnicate alpha", mkpaper), 2);
    assert_non_null(strstr(out, "unknown option '--frobnicate'"));
    assert_int_equal(fpt_sh_all(out, sizeof out, "'%s' collect --gen x alpha", mkpaper), 2);
    assert_int_equal(fpt_sh_all(out, sizeof out, "'%s' tex --data", mkpaper), 2);
    assert_int_equal(fpt_sh_all(out, sizeof out, "'%s' collect", mkpaper), 2);
}

/* The paper's own text against the real analyses (quick sizes): every key
 * number and claim it uses is defined, every figure a verdict names exists. */
static void test_paper_text_matches_analyses(void **state)
{
    (void)state;
    const char *src = getenv("FPL_SRCDIR"), *list = getenv("FPL_ANALYSES");
    assert_non_null(src);
    assert_non_null(list);
    char *d = tmpdir(), names[1024], checks[8192] = "";
    snprintf(names, sizeof names, "%s", list);
    for (char *a = strtok(names, " "); a; a = strtok(NULL, " "))
        assert_int_equal(fpt_sh_all(out, sizeof out, "'%s/analyses/%s' --quick --out '%s' >/dev/null",
                                    fpt_builddir(), a, d),
                         0);
    assert_int_equal(fpt_sh_all(out, sizeof out, "ls '%s'/paper/*.tex", src), 0);
    for (char *f = strtok(out, "\n"); f; f = strtok(NULL, "\n")) {
        size_t n = strlen(checks);
        snprintf(checks + n, sizeof checks - n, " --check '%s'", f);
    }
    assert_int_equal(fpt_sh_all(out, sizeof out, "mkdir -p '%s/gen' && '%s' collect --data '%s/data' %s",
                                d, mkpaper, d, list),
                     0);
    int st = fpt_sh_all(out, sizeof out, "'%s' tex --data '%s/data' --gen '%s/gen' --plots '%s/plots' %s %s",
                        mkpaper, d, d, d, checks, list);
    if (st)
        fail_msg("%s", out);
    rmdir_all(d);
}

/* The analyses' side: fpa_verdict and fpa_key write the five-column verdict
 * file and the key file; a malformed call makes fpa_verdicts_close fail and
 * leaves neither file behind. */
static int run_verdicts(const char *dir, int bad)
{
    fpa_t a;
    char *argv[] = {"alpha", "--out", (char *)dir, "--quick", NULL};
    assert_int_equal(fpa_init(&a, "alpha", "test", 4, argv), 0);
    fpa_verdicts_t *v = fpa_verdicts_open(&a);
    assert_non_null(v);
    fpa_verdict(v, "X1", "holds", "alpha_fig", "all 3 cases", "reason %d with \"quotes\"", 3);
    fpa_key(v, "AlphaExp", "%.2f", 0.4812);
    switch (bad) {
    case 1: fpa_verdict(v, "X2", "mostly", "alpha_fig", "c", "r"); break;
    case 2: fpa_verdict(v, "X2", "holds", "Alpha-Fig", "c", "r"); break;
    case 3: fpa_verdict(v, "X2", "holds", "alpha_fig", "", "r"); break;
    case 4:
        fpa_verdict(v, "X2", "holds", "alpha_fig",
                    "a condition far too long for one line of a table, which is what the paper needs: "
                    "one line, please, and this one is longer than the hundred and ten characters allowed",
                    "r");
        break;
    case 5: fpa_key(v, "AlphaExp", "%d", 1); break;
    case 6: fpa_key(v, "alpha2", "%d", 1); break;
    case 7: fpa_key(v, "AlphaQuote", "%s", "a \"b\""); break;
    }
    return fpa_verdicts_close(v);
}

static void test_paper_verdict_writer(void **state)
{
    (void)state;
    char *d = tmpdir(), data[4096];
    snprintf(data, sizeof data, "%s/data", d);
    assert_int_equal(run_verdicts(d, 0), 0);
    const char *v = read_file(data, "alpha_verdicts.csv");
    assert_non_null(strstr(v, "\nclaim,verdict,figure,condition,reason\n"
                              "X1,holds,alpha_fig,\"all 3 cases\",\"reason 3 with 'quotes'\"\n"));
    assert_non_null(strstr(read_file(data, "alpha_keys.csv"), "\nkey,value\nAlphaExp,\"0.48\"\n"));
    for (int bad = 1; bad <= 7; bad++) {
        assert_int_equal(fpt_run("rm -f '%s'/*.csv", data), 0);
        assert_int_not_equal(run_verdicts(d, bad), 0);
        assert_int_equal(fpt_sh(out, sizeof out, "ls '%s' | wc -l", data), 0);
        assert_int_equal(atoi(out), 0);
    }
    rmdir_all(d);
}

int main(void)
{
    snprintf(mkpaper, sizeof mkpaper, "%s/paper/mkpaper", fpt_builddir());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paper_verdict_writer),
        cmocka_unit_test(test_paper_collect),
        cmocka_unit_test(test_paper_table_follows_verdicts),
        cmocka_unit_test(test_paper_table_order),
        cmocka_unit_test(test_paper_keys),
        cmocka_unit_test(test_paper_check_text),
        cmocka_unit_test(test_paper_refusals),
        cmocka_unit_test(test_paper_usage),
        cmocka_unit_test(test_paper_text_matches_analyses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
