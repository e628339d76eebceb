/* test_vae_model.c -- the vae_model analysis (V4, V5): the rescaling of a
 * layer pair leaves the exact function unchanged; the exact control has zero
 * error; fp16 overflows where s * amax passes its threshold and e8m10 never;
 * CSVs byte-identical for 1 and 2 threads; bad options refused */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <math.h>

#include <cmocka.h>

#include "helpers.h"

/* A decoder-shaped MLP (8 -> 32 ReLU -> 32 ReLU -> 16); layer 0 times s
 * (weights and bias), layer 2's weights divided by s.  ReLU(s x) = s ReLU(x)
 * for s > 0, so the function is unchanged: bit for bit in binary64 when s is
 * a power of two (every value scales exactly), to rounding otherwise. */
static void test_vae_model_rescale_exact(void **state)
{
    (void)state;
    enum { IN = 8, H = 32, OUT = 16, B = 24 };
    fpl_model_t *m = fpl_model_alloc(IN);
    assert_non_null(m);
    assert_int_equal(fpl_model_add_linear(m, H), 0);
    assert_int_equal(fpl_model_add_activation(m, FPL_LAYER_RELU), 0);
    assert_int_equal(fpl_model_add_linear(m, H), 0);
    assert_int_equal(fpl_model_add_activation(m, FPL_LAYER_RELU), 0);
    assert_int_equal(fpl_model_add_linear(m, OUT), 0);
    assert_int_equal(fpl_model_init(m, fpt_seed(7)), 0);
    fpt_rng_t r;
    fpt_rng_init(&r, fpt_seed(7));
    /* nonzero biases, so the bias of the scaled layer matters */
    for (size_t k = 0; k < H; k++)
        m->params[m->layers[0].off + IN * H + k] = (double)(fpt_rng_u64(&r) % 1000) / 2000.0 - 0.25;
    double x[B * IN], y0[B * OUT];
    for (size_t i = 0; i < B * IN; i++)
        x[i] = (double)(fpt_rng_u64(&r) % 2001) / 500.0 - 2.0;
    fpl_recipe_t ex;
    assert_int_equal(fpl_recipe_parse("exact", &ex), 0);
    fpl_optim_t o = FPL_OPTIM_SGD_INIT;
    fpl_trainer_t *t = fpl_trainer_alloc(m, &ex, &o, B, 1);
    assert_non_null(t);
    memcpy(y0, fpl_trainer_forward(t, x, B, 0), sizeof y0);
    fpl_trainer_free(t);
    const double scales[] = {1024.0, 65536.0, 0x1p40, 3.0, 1000.0};
    for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
        double s = scales[si];
        fpl_model_t *c = fpl_model_clone(m);
        assert_non_null(c);
        const fpl_mlayer_t *A = &c->layers[0], *Bl = &c->layers[2];
        for (size_t k = 0; k < A->nparams; k++)
            c->params[A->off + k] *= s;
        for (size_t k = 0; k < Bl->in * Bl->out; k++)
            c->params[Bl->off + k] /= s;
        t = fpl_trainer_alloc(c, &ex, &o, B, 1);
        assert_non_null(t);
        const double *y = fpl_trainer_forward(t, x, B, 0);
        int pow2 = frexp(s, &(int){0}) == 0.5;
        double worst = 0;
        for (size_t i = 0; i < B * OUT; i++) {
            if (pow2 && !fpt_same(y[i], y0[i]))
                fail_msg("s = %g: output %zu is %.17g, not %.17g", s, i, y[i], y0[i]);
            worst = fmax(worst, fabs(y[i] - y0[i]) / fmax(fabs(y0[i]), 1e-300));
        }
        assert_true(worst < 1e-12); /* a few binary64 roundings of the scaled weights */
        fpl_trainer_free(t);
        fpl_model_free(c);
    }
    fpl_model_free(m);
}

/* a data row of a CSV (comment and header lines skipped) split at commas */
static int fields(char *line, char **f, int max)
{
    int n = 0;
    for (char *p = strtok(line, ",\n"); p && n < max; p = strtok(NULL, ",\n"))
        f[n++] = p;
    return n;
}

/* The analysis at --quick size, 1 and 2 threads: byte-identical CSVs; the
 * exact controls give zero error; overflow exactly where theory says. */
static void test_vae_model_analysis(void **state)
{
    (void)state;
    char d1[] = "/tmp/fplab-vaem1-XXXXXX", d2[] = "/tmp/fplab-vaem2-XXXXXX";
    assert_non_null(mkdtemp(d1));
    assert_non_null(mkdtemp(d2));
    static char out1[65536];
    assert_int_equal(fpt_sh(out1, sizeof out1,
                            "'%s' run vae_model --quick --out %s --threads 1 2>/dev/null",
                            fpt_fplab(), d1),
                     0);
    assert_int_equal(fpt_run("FPL_GNUPLOT=/nonexistent '%s' run vae_model --quick --out %s --threads 2 "
                        ">/dev/null 2>&1; test $? -le 1", fpt_fplab(), d2), 0);
    const char *files[] = {"vae_model", "vae_mixed", "vae_range", "vae_model_verdicts"};
    for (size_t i = 0; i < 4; i++)
        if (fpt_run("cmp -s %s/data/%s.csv %s/data/%s.csv", d1, files[i], d2, files[i]) != 0)
            fail_msg("%s.csv differs between 1 and 2 threads", files[i]);
    /* V4 and V5 with figures and conditions; the keys sec_vae.tex quotes */
    static const char *const claims[] = {"V4", "V5"};
    static const char *const keys[] = {"VmAmax",
                                       "VmElboNoneBf",
                                       "VmElboNoneEFour",
                                       "VmElboNoneHalf",
                                       "VmElboRecoveryMax",
                                       "VmElboRecoveryMin",
                                       "VmErrBf",
                                       "VmErrEEightMTen",
                                       "VmErrEFiveMSeven",
                                       "VmErrHalf",
                                       "VmErrSub",
                                       "VmFixRescale",
                                       "VmFixWide",
                                       "VmHiddenErr",
                                       "VmKlAloneFactor",
                                       "VmKlNoneBf",
                                       "VmKlRecoveryMax",
                                       "VmKlRecoveryMin",
                                       "VmKlWideBf",
                                       "VmLogvarMax",
                                       "VmLogvarMin",
                                       "VmNonfiniteTop",
                                       "VmOtherAloneFactor",
                                       "VmOvfFromLog",
                                       "VmOvfTop",
                                       "VmPredGap",
                                       "VmRatioBf",
                                       "VmRatioEFiveMSeven",
                                       "VmSeeds",
                                       "VmSubLog",
                                       "VmTestElbo",
                                       "VmTopLog"};
    fpt_paper_outputs(d1, "vae_model", out1, claims, 2, keys, sizeof keys / sizeof keys[0]);
    fpt_paper_finite(d1, "vae_model", keys, sizeof keys / sizeof keys[0]);
    /* three fraction bits fewer: 2^3 times the error, whatever the exponent
     * width; the same fraction bits: the same error */
    double rb = fpt_paper_key(d1, "vae_model", "VmRatioBf"),
           r57 = fpt_paper_key(d1, "vae_model", "VmRatioEFiveMSeven"),
           rs = fpt_paper_key(d1, "vae_model", "VmErrEEightMTen") /
                fpt_paper_key(d1, "vae_model", "VmErrHalf");
    if (!(rb > 4 && rb < 16 && r57 > 4 && r57 < 16 && rs > 0.5 && rs < 2))
        fail_msg("error ratios m7/m10 %g and %g, e8m10/fp16 %g", rb, r57, rs);
    /* the recoveries are fractions of an error: at most 100% */
    assert_true(fpt_paper_key(d1, "vae_model", "VmKlRecoveryMax") <= 100);

    /* V4: the exact control (every part exact) has zero error; the fp32
     * control is small but not zero; an fp16 body is worse than fp32 */
    char path[512], line[1024], *f[16];
    snprintf(path, sizeof path, "%s/data/vae_mixed.csv", d1);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    int nexact = 0, nfp32 = 0, header = 0;
    double fp32_rec = NAN, fp16_rec = NAN;
    while (fgets(line, sizeof line, fp)) {
        if (line[0] == '#')
            continue;
        if (!header++) {
            assert_non_null(strstr(line, "mean_rel_err"));
            continue;
        }
        assert_int_equal(fields(line, f, 16), 13);
        double err = strtod(f[9], NULL), nonfin = strtod(f[12], NULL);
        if (!strcmp(f[0], "exact")) {
            nexact++;
            assert_true(err == 0 && nonfin == 0);
        } else if (!strcmp(f[0], "fp32")) {
            nfp32++;
            assert_true(err > 0 && err < 1e-5);
            if (!strcmp(f[7], "reconstruction"))
                fp32_rec = err;
        } else if (!strcmp(f[0], "fp16") && !strcmp(f[6], "none") &&
                   !strcmp(f[7], "reconstruction")) {
            fp16_rec = err;
        }
    }
    fclose(fp);
    assert_int_equal(nexact, 3);
    assert_int_equal(nfp32, 3);
    /* fp16's unit roundoff is 2^13 times fp32's: its error is far larger */
    assert_true(fp16_rec > 100 * fp32_rec);

    /* V5, per seed: fp16's scaled layer overflows iff its exact maximum
     * passes the threshold (away from the threshold by 1%, where the fp16
     * computation of that maximum cannot cross it); e8m10 never overflows;
     * the exact decoder is unchanged by the scaling; at s = 1 bf16's error
     * is 2^3 times fp16's within a factor 2 */
    snprintf(path, sizeof path, "%s/data/vae_range.csv", d1);
    fp = fopen(path, "r");
    assert_non_null(fp);
    header = 0;
    int checked_lo = 0, checked_hi = 0, ne8 = 0, nex = 0;
    double e16[16] = {0}, ebf[16] = {0};
    while (fgets(line, sizeof line, fp)) {
        if (line[0] == '#')
            continue;
        if (!header++)
            continue;
        assert_int_equal(fields(line, f, 16), 13);
        const char *fmt = f[0], *var = f[4];
        int seed = atoi(f[5]), k = atoi(f[6]);
        double amax = strtod(f[7], NULL), ovf = strtod(f[8], NULL), nonfin = strtod(f[10], NULL),
               err = strtod(f[11], NULL);
        if (!strcmp(fmt, "exact")) {
            nex++;
            assert_true(ovf == 0 && nonfin == 0 && err == 0);
        }
        if (!strcmp(fmt, "e8m10")) {
            ne8++;
            assert_true(ovf == 0 && nonfin == 0);
        }
        if (!strcmp(fmt, "fp16") && !strcmp(var, "scaled")) {
            if (amax < 0.99 * 65504) {
                assert_true(ovf == 0 && nonfin == 0);
                checked_lo++;
            } else if (amax > 1.01 * 65520) {
                assert_true(ovf > 0);
                checked_hi++;
            }
        }
        if (!strcmp(fmt, "fp16") && strcmp(var, "scaled") && ovf != 0)
            fail_msg("fp16 with the %s fix overflowed at s = 2^%d", var, k);
        if (k == 0 && !strcmp(var, "scaled") && seed < 16) {
            if (!strcmp(fmt, "fp16"))
                e16[seed] = err;
            if (!strcmp(fmt, "bf16"))
                ebf[seed] = err;
        }
    }
    fclose(fp);
    assert_true(checked_lo > 0 && checked_hi > 0 && ne8 > 0 && nex > 0);
    for (int s = 0; s < 16 && e16[s] > 0; s++) {
        double ratio = ebf[s] / e16[s];
        if (!(ratio > 4 && ratio < 16))
            fail_msg("seed %d: bf16/fp16 error ratio %.3g, expected about 8", s, ratio);
    }
    fpt_run("rm -rf %s %s", d1, d2);

    char d3[] = "/tmp/fplab-vaem3-XXXXXX";
    assert_non_null(mkdtemp(d3));
    assert_int_not_equal(fpt_run("'%s' run vae_model --quick --out %s --bogus 1 >/dev/null 2>&1", fpt_fplab(), d3), 0);
    assert_int_not_equal(fpt_run("'%s' run vae_model --quick --out %s --threads 0 >/dev/null 2>&1", fpt_fplab(), d3), 0);
    assert_int_not_equal(fpt_run("'%s' run vae_model --quick --out %s --seed x >/dev/null 2>&1", fpt_fplab(), d3), 0);
    assert_int_not_equal(fpt_run("'%s' run vae_model --quick --out %s --shard 3/2 >/dev/null 2>&1", fpt_fplab(), d3), 0);
    assert_int_equal(fpt_run("test ! -e %s/data || test -z \"$(ls -A %s/data)\"", d3, d3), 0);
    fpt_run("rm -rf %s", d3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vae_model_rescale_exact),
        cmocka_unit_test(test_vae_model_analysis),
    };
    return cmocka_run_group_tests_name("vae_model", tests, NULL, NULL);
}
