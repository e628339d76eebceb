/* test_decisions.c -- log-sum-exp and HMM forward kernels against MPFR and
 * brute force; a constructed near-tie flips as the first-order rule says;
 * the decisions analysis: control, consistency of flips with the measured
 * errors, thread independence, sharding */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <mpfr.h>

#include "fplab.h"
#include "helpers.h"

/* log(sum exp(x_i)) with MPFR at 256 bits, rounded to binary64 */
static double lse_mpfr(const double *x, size_t n)
{
    mpfr_t s, t;
    mpfr_inits2(256, s, t, (mpfr_ptr)0);
    mpfr_set_zero(s, 1);
    for (size_t i = 0; i < n; i++) {
        mpfr_set_d(t, x[i], MPFR_RNDN);
        mpfr_exp(t, t, MPFR_RNDN);
        mpfr_add(s, s, t, MPFR_RNDN);
    }
    mpfr_log(s, s, MPFR_RNDN);
    double r = mpfr_get_d(s, MPFR_RNDN);
    mpfr_clears(s, t, (mpfr_ptr)0);
    return r;
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 11;
}

static double unif(uint64_t *s) { return (double)lcg(s) / 9007199254740992.0; }

static void test_lse_against_mpfr(void **state)
{
    (void)state;
    fpl_policy_t ex, f32, b16;
    fpl_policy_exact(&ex);
    assert_int_equal(fpl_policy_parse("a=fp32,acc=fp32", &f32), 0);
    assert_int_equal(fpl_policy_parse("a=bf16,acc=bf16", &b16), 0);
    uint64_t seed = 7;
    double x[200], xr[200];
    for (int rep = 0; rep < 300; rep++) {
        size_t n = 1 + (size_t)(lcg(&seed) % 200);
        double spread = rep % 3 == 0 ? 1 : rep % 3 == 1 ? 30 : 700;
        double shift = rep % 5 == 0 ? -1e5 : rep % 5 == 1 ? 300 : 0;
        for (size_t i = 0; i < n; i++)
            x[i] = shift + spread * (2 * unif(&seed) - 1);
        double ref = lse_mpfr(x, n);
        /* binary64 with a compensated sum: a few ulps */
        double r = fpl_logsumexp(&ex, x, n, NULL);
        assert_true(fabs(r - ref) <= 4 * 0x1p-52 * fabs(ref) + 0x1p-1070);
        /* in a format, on inputs of the format: the first-order bound
         * (n + 4) u max(1, |result|) */
        const fpl_policy_t *ps[] = {&f32, &b16};
        for (int k = 0; k < 2; k++) {
            fpl_round_array(&ps[k]->a, x, xr, n, FPL_RNE, NULL);
            double rf = fpl_logsumexp(ps[k], xr, n, NULL), rr = lse_mpfr(xr, n);
            double u = ps[k]->a.unit_roundoff;
            if (!(fabs(rf - rr) <= ((double)n + 4) * u * fmax(1.0, fabs(rr))))
                fail_msg("policy %s, n = %zu: lse %.17g, MPFR %.17g", ps[k]->text, n, rf, rr);
            assert_true(fpl_format_contains(&ps[k]->a, rf));
        }
    }
}

static void test_lse_special_inputs(void **state)
{
    (void)state;
    fpl_policy_t ex, f16;
    fpl_policy_exact(&ex);
    assert_int_equal(fpl_policy_parse("a=fp16,acc=fp16", &f16), 0);
    const fpl_policy_t *ps[] = {&ex, &f16};
    for (int k = 0; k < 2; k++) {
        const fpl_policy_t *p = ps[k];
        /* all equal: x + log n */
        double eq[8] = {-3, -3, -3, -3, -3, -3, -3, -3};
        /* as documented: log of the sum rounded, then the add rounded */
        double want = p->exact ? -3 + log(8.0)
                               : fpl_round(&p->a, -3 + fpl_round(&p->a, log(8.0), FPL_RNE, NULL),
                                           FPL_RNE, NULL);
        assert_true(fabs(fpl_logsumexp(p, eq, 8, NULL) - want) <= 4e-16 * 3);
        /* -inf terms contribute nothing; all -inf (or none) gives -inf */
        double mi[3] = {-INFINITY, 0.5, -INFINITY};
        assert_true(fpl_logsumexp(p, mi, 3, NULL) == 0.5);
        double allmi[2] = {-INFINITY, -INFINITY};
        assert_true(fpl_logsumexp(p, allmi, 2, NULL) == -INFINITY);
        assert_true(fpl_logsumexp(p, allmi, 0, NULL) == -INFINITY);
        /* NaN and +inf */
        double na[2] = {1, NAN}, pi[2] = {1, INFINITY};
        assert_true(isnan(fpl_logsumexp(p, na, 2, NULL)));
        assert_true(fpl_logsumexp(p, pi, 2, NULL) == INFINITY);
    }
    /* large negative inputs: no underflow after subtracting the max */
    double big[3] = {-1e300, -1e300, -1e300};
    double r = fpl_logsumexp(&ex, big, 3, NULL);
    assert_true(r == -1e300); /* log 3 vanishes beside 1e300 */
    double mid[2] = {-50000, -50000 - log(3.0)};
    assert_true(fabs(fpl_logsumexp(&ex, mid, 2, NULL) - lse_mpfr(mid, 2)) <= 1e-15 * 50000);
}

/* P(o) by summing over every state path */
static double brute_loglik(const fpl_hmm_t *h, const unsigned *o, size_t L)
{
    size_t S = h->S, paths = 1;
    for (size_t t = 0; t < L; t++)
        paths *= S;
    mpfr_t sum, pr;
    mpfr_inits2(200, sum, pr, (mpfr_ptr)0);
    mpfr_set_zero(sum, 1);
    for (size_t code = 0; code < paths; code++) {
        size_t c = code, prev = 0;
        mpfr_set_d(pr, 1.0, MPFR_RNDN);
        for (size_t t = 0; t < L; t++) {
            size_t s = c % S;
            c /= S;
            mpfr_mul_d(pr, pr, t ? h->A[prev * S + s] : h->pi[s], MPFR_RNDN);
            mpfr_mul_d(pr, pr, h->B[s * h->O + o[t]], MPFR_RNDN);
            prev = s;
        }
        mpfr_add(sum, sum, pr, MPFR_RNDN);
    }
    mpfr_log(sum, sum, MPFR_RNDN);
    double r = mpfr_get_d(sum, MPFR_RNDN);
    mpfr_clears(sum, pr, (mpfr_ptr)0);
    return r;
}

static void test_hmm_brute_force(void **state)
{
    (void)state;
    const double A[9] = {0.7, 0.2, 0.1, 0.3, 0.3, 0.4, 0.05, 0.15, 0.8};
    const double B[6] = {0.9, 0.1, 0.2, 0.8, 0.5, 0.5};
    const double pi[3] = {0.5, 0.3, 0.2};
    fpl_hmm_t h = {3, 2, A, B, pi};
    const unsigned obs[8] = {0, 1, 1, 0, 1, 0, 0, 1};
    size_t ck[8];
    for (size_t t = 0; t < 8; t++)
        ck[t] = t + 1;
    fpl_policy_t ex, f32;
    fpl_policy_exact(&ex);
    fpl_policy_parse("a=fp32,acc=fp32", &f32);
    for (int v = 0; v < 3; v++) {
        double ll[8], llf[8];
        assert_int_equal(fpl_hmm_forward(&ex, &h, (fpl_hmm_variant_t)v, obs, 8, ck, 8, ll, NULL), 0);
        assert_int_equal(fpl_hmm_forward(&f32, &h, (fpl_hmm_variant_t)v, obs, 8, ck, 8, llf, NULL),
                         0);
        for (size_t t = 0; t < 8; t++) {
            double ref = brute_loglik(&h, obs, t + 1);
            if (!(fabs(ll[t] - ref) <= 1e-14 * fabs(ref)))
                fail_msg("variant %d, t = %zu: %.17g, brute force %.17g", v, t + 1, ll[t], ref);
            assert_true(fabs(llf[t] - ref) <= 1e-5 * fabs(ref)); /* fp32: a few dozen u */
        }
    }
}

static void test_hmm_underflow_and_errors(void **state)
{
    (void)state;
    /* two states, four symbols: about log 4 nats per step */
    const double A[4] = {0.5, 0.5, 0.5, 0.5}, B[8] = {.25, .25, .25, .25, .25, .25, .25, .25};
    const double pi[2] = {0.5, 0.5};
    fpl_hmm_t h = {2, 4, A, B, pi};
    unsigned obs[60] = {0};
    size_t ck[2] = {10, 60};
    fpl_policy_t f16;
    fpl_policy_parse("a=fp16,acc=fp16", &f16);
    double ll[2];
    /* plain fp16 probabilities: 4^-10 ~ 1e-6 is still a subnormal, 4^-60 is
     * far below fp16's 2^-24: -inf */
    assert_int_equal(fpl_hmm_forward(&f16, &h, FPL_HMM_NAIVE, obs, 60, ck, 2, ll, NULL), 0);
    assert_true(isfinite(ll[0]));
    assert_true(ll[1] == -INFINITY);
    /* the scaled and log recursions do not underflow; every step here is
     * exact in fp16 (powers of two), so they give -L log 4 rounded */
    for (int v = 0; v < 2; v++) {
        assert_int_equal(fpl_hmm_forward(&f16, &h, (fpl_hmm_variant_t)v, obs, 60, ck, 2, ll, NULL),
                         0);
        assert_true(fabs(ll[1] + 60 * log(4.0)) <= 60 * 0.05);
    }
    /* bad input */
    unsigned bad[3] = {0, 4, 1};
    size_t ck3[1] = {3}, down[2] = {3, 2};
    assert_int_equal(fpl_hmm_forward(&f16, &h, FPL_HMM_LOG, bad, 3, ck3, 1, ll, NULL), FPL_EINVAL);
    assert_non_null(strstr(fpl_last_error(), "symbol"));
    assert_int_equal(fpl_hmm_forward(&f16, &h, FPL_HMM_LOG, obs, 3, down, 2, ll, NULL), FPL_EINVAL);
    size_t far[1] = {4};
    assert_int_equal(fpl_hmm_forward(&f16, &h, FPL_HMM_LOG, obs, 3, far, 1, ll, NULL), FPL_EINVAL);
}

/* argmax as torch and numpy define it: the first maximum */
static size_t argmax(const double *z, size_t n)
{
    size_t k = 0;
    for (size_t i = 1; i < n; i++)
        if (z[i] > z[k])
            k = i;
    return k;
}

/* z = W h with a margin of 2^-10 between two logits: the winner is row 1.
 * bf16 logits (8 bits) round 1 + 2^-10 to 1: the error of the difference
 * equals the margin, the two tie, and argmax takes row 0 -- a flip, as the
 * rule "flip when the error of the difference reaches the margin" says.
 * fp16 logits (11 bits) hold 1 + 2^-10: no error, no flip. */
static void test_near_tie_flips_as_predicted(void **state)
{
    (void)state;
    const double W[4] = {1, 0, 1, 0x1p-10}, h[2] = {1, 1};
    fpl_policy_t ex, b16, f16;
    fpl_policy_exact(&ex);
    fpl_policy_parse("w=bf16,a=bf16,acc=fp32,out=bf16", &b16);
    fpl_policy_parse("w=fp16,a=fp16,acc=fp32,out=fp16", &f16);
    double z[2], zb[2], zf[2];
    fpl_matvec(&ex, W, h, z, 2, 2, NULL);
    fpl_matvec(&b16, W, h, zb, 2, 2, NULL);
    fpl_matvec(&f16, W, h, zf, 2, 2, NULL);
    double margin = z[1] - z[0];
    assert_true(margin == 0x1p-10 && argmax(z, 2) == 1);
    double ed_b = (zb[0] - z[0]) - (zb[1] - z[1]), ed_f = (zf[0] - z[0]) - (zf[1] - z[1]);
    assert_true(ed_b >= margin);      /* predicted: flip */
    assert_int_equal(argmax(zb, 2), 0); /* measured: flip */
    assert_true(ed_f < margin);       /* predicted: no flip */
    assert_int_equal(argmax(zf, 2), 1);
}

/* ---- the analysis ------------------------------------------------------------- */
static char dir1[] = "/tmp/fplab-dec1-XXXXXX", dir2[] = "/tmp/fplab-dec2-XXXXXX";
static char out1[65536]; /* the standard output of the run in dir1 */

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir1) || !mkdtemp(dir2))
        return -1;
    if (fpt_sh(out1, sizeof out1, "'%s/analyses/decisions' --quick --out '%s' --threads 1",
               fpt_builddir(), dir1) ||
        fpt_run("'%s/analyses/decisions' --quick --out '%s' --threads 2 >/dev/null", fpt_builddir(),
                dir2))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return fpt_run("rm -rf '%s' '%s'", dir1, dir2) == 0 ? 0 : -1;
}

static void test_decisions_thread_independent(void **state)
{
    (void)state;
    const char *files[] = {"decisions", "decisions_flip", "decisions_temperature",
                           "decisions_chain", "decisions_verdicts"};
    for (size_t i = 0; i < 5; i++)
        if (fpt_run("cmp -s '%s/data/%s.csv' '%s/data/%s.csv'", dir1, files[i], dir2, files[i]))
            fail_msg("%s.csv differs between 1 and 2 threads", files[i]);
}

/* every data row of a CSV, split at commas */
typedef struct {
    char f[12][64];
    int n;
} row_t;

static size_t read_rows(const char *path, row_t *rows, size_t max)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        fail_msg("cannot read %s", path);
    char line[1024];
    size_t n = 0;
    int header = 1;
    while (fgets(line, sizeof line, fp) && n < max) {
        if (line[0] == '#')
            continue;
        if (header) {
            header = 0;
            continue;
        }
        line[strcspn(line, "\n")] = '\0';
        row_t *r = &rows[n++];
        r->n = 0;
        for (char *tok = strtok(line, ","); tok && r->n < 12; tok = strtok(NULL, ","))
            snprintf(r->f[r->n++], sizeof r->f[0], "%s", tok);
    }
    fclose(fp);
    return n;
}

/* The exact control flips nothing.  No configuration flips a pair in a
 * margin bin above every error difference it produced (the predicted
 * exceedance of the bin below is 0): a flip needs an error of the
 * difference at least the margin.  Where flips are common, the measured
 * count agrees with the first-order prediction within a factor of 1.5 (it
 * assumes errors independent of the margin, which rounding the logits to
 * a coarse grid is not). */
static void test_decisions_flips_follow_errors(void **state)
{
    (void)state;
    static row_t rows[2000];
    char path[4200];
    snprintf(path, sizeof path, "%s/data/decisions_flip.csv", dir1);
    size_t n = read_rows(path, rows, 2000);
    assert_true(n > 50);
    double flips = 0, pred = 0, prev_pred = 1;
    const char *cur = "";
    int checked = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || strcmp(rows[i].f[0], cur)) {
            if (flips >= 100) {
                if (!(flips <= 1.5 * pred && pred <= 1.5 * flips))
                    fail_msg("%s: %g flips, %g predicted", cur, flips, pred);
                checked++;
            }
            if (i == n)
                break;
            cur = rows[i].f[0];
            flips = pred = 0;
            prev_pred = 1;
        }
        double pairs = atof(rows[i].f[3]), fl = atof(rows[i].f[4]), pr = atof(rows[i].f[6]);
        if (!strcmp(cur, "exact") || !strcmp(cur, "fp32"))
            assert_true(fl == 0);
        if (prev_pred == 0 && fl > 0)
            fail_msg("%s: %g flips at margin %s, beyond every error difference", cur, fl,
                     rows[i].f[1]);
        flips += fl;
        pred += pr * pairs;
        prev_pred = pr;
    }
    assert_true(checked >= 4); /* bf16, e4m3 and the 4-bit quantizers flip often */
    snprintf(path, sizeof path, "%s/data/decisions.csv", dir1);
    n = read_rows(path, rows, 2000);
    assert_true(!strcmp(rows[0].f[0], "exact"));
    assert_true(atof(rows[0].f[2]) == 0 && atof(rows[0].f[3]) == 1);
}

/* The chains: fp32 beats bf16; plain probabilities underflow in fp16
 * before fp32; the exact reference's two methods agree. */
static void test_decisions_chains(void **state)
{
    (void)state;
    static row_t rows[4000];
    char path[4200];
    snprintf(path, sizeof path, "%s/data/decisions_chain.csv", dir1);
    size_t n = read_rows(path, rows, 4000);
    assert_true(n > 100);
    size_t under16 = 0, under32 = 0;
    double last32 = 0, last16b = 0;
    for (size_t i = 0; i < n; i++) {
        const row_t *r = &rows[i];
        size_t L = (size_t)atol(r->f[3]);
        double re = atof(r->f[7]);
        assert_true(atof(r->f[8]) <= 1e-12 * fabs(atof(r->f[4])));
        if (!strcmp(r->f[1], "naive") && isinf(re)) {
            if (!strcmp(r->f[0], "fp16") && (!under16 || L < under16))
                under16 = L;
            if (!strcmp(r->f[0], "fp32") && (!under32 || L < under32))
                under32 = L;
        }
        if (!strcmp(r->f[1], "log") && L == 10000 && !strcmp(r->f[2], "0")) {
            if (!strcmp(r->f[0], "fp32"))
                last32 = re;
            if (!strcmp(r->f[0], "bf16"))
                last16b = re;
        }
    }
    assert_true(under16 > 0 && under32 > under16);
    assert_true(last32 < 1e-4 && last16b > 100 * last32);
}

/* the paper's interface: T4 names a drawn figure and a short condition;
 * every key number the paper's section quotes is there, and they agree
 * with each other, with the data and with the formats' precisions */
static void test_decisions_paper(void **state)
{
    (void)state;
    static const char *const claims[] = {"T4"};
    static const char *const keys[] = {
        "DecAgreeBf",    "DecAgreeIntFour", "DecAgreeQEight", "DecAgreeQFourK", "DecBandBf",
        "DecBandBfPred", "DecBandWide",     "DecBandWidePred", "DecBins",       "DecBinsOk",
        "DecChainBf",    "DecChainHalf",    "DecChainLength", "DecChainSingle", "DecContexts",
        "DecFarFlips",   "DecHidden",       "DecKlGrowthBf",  "DecKlTstarBf",   "DecScaledBf",
        "DecStallBf",    "DecStallHalf",    "DecStallHalfNats", "DecStepNats",  "DecTempMin",
        "DecTieBf",      "DecTieHalf",      "DecTopK",        "DecTruthNats",   "DecUnderSingle",
        "DecVocab"};
    fpt_paper_outputs(dir1, "decisions", out1, claims, 1, keys, sizeof keys / sizeof keys[0]);
    fpt_paper_finite(dir1, "decisions", keys, sizeof keys / sizeof keys[0]);
#define K(k) fpt_paper_key(dir1, "decisions", k)
    assert_true(K("DecBins") > 0 && K("DecBinsOk") <= K("DecBins"));
    static const char *const pct[] = {"DecAgreeBf", "DecAgreeIntFour", "DecAgreeQEight",
                                      "DecAgreeQFourK", "DecTieBf", "DecTieHalf", "DecBandBf",
                                      "DecBandWide"};
    for (size_t i = 0; i < sizeof pct / sizeof pct[0]; i++)
        assert_true(K(pct[i]) >= 0 && K(pct[i]) <= 100);
    /* 4-bit weights never agree more often than 8-bit ones */
    assert_true(K("DecAgreeIntFour") <= K("DecAgreeQEight"));
    /* fewer significant bits lose a nat sooner: bf16 (8) before fp16 (11)
     * before fp32 (24); absorption sets in later in fp16 than in bf16, and
     * the stalled fp16 chain falls short of the truth */
    assert_true(K("DecChainBf") <= K("DecChainHalf") && K("DecChainHalf") <= K("DecChainSingle"));
    assert_true(K("DecStallBf") + 3 == K("DecStallHalf"));
    assert_true(K("DecStallHalfNats") < K("DecTruthNats"));
    assert_true(K("DecScaledBf") < 0.01 && K("DecTempMin") < 1);
    /* the keys describe the data: the contexts of decisions.csv */
    static row_t rows[64];
    char path[4200];
    snprintf(path, sizeof path, "%s/data/decisions.csv", dir1);
    size_t n = read_rows(path, rows, 64);
    assert_true(n > 0);
    assert_true(atof(rows[0].f[1]) == K("DecContexts"));
#undef K
}

static void test_decisions_bad_options(void **state)
{
    (void)state;
    assert_int_not_equal(fpt_run("'%s/analyses/decisions' --quick --bogus 2>/dev/null", fpt_builddir()), 0);
    assert_int_not_equal(fpt_run("'%s/analyses/decisions' --threads 0 2>/dev/null", fpt_builddir()), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lse_against_mpfr),
        cmocka_unit_test(test_lse_special_inputs),
        cmocka_unit_test(test_hmm_brute_force),
        cmocka_unit_test(test_hmm_underflow_and_errors),
        cmocka_unit_test(test_near_tie_flips_as_predicted),
        cmocka_unit_test(test_decisions_thread_independent),
        cmocka_unit_test(test_decisions_flips_follow_errors),
        cmocka_unit_test(test_decisions_chains),
        cmocka_unit_test(test_decisions_paper),
        cmocka_unit_test(test_decisions_bad_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
