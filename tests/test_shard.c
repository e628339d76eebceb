/* test_shard.c -- sweeps split into shards: `fplab run NAME --shard I/N` for
 * every I, then `fplab merge NAME`, gives the same bytes as one run; every
 * way a merge can be wrong is refused with a message */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

/* The analyses whose sweep can be sharded: all of them. */
static const char *const sharded[] = {"granularity", "dot",       "residual", "layernorm",
                                      "decisions",   "diffusion", "vae_head", "training",
                                      "vae_model", "diffusion_quant"};

static char *tmpdir(void)
{
    char *d = strdup("/tmp/fplab-shard-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void rmdir_all(char *d)
{
    fpt_sh_all(NULL, 0, "rm -rf '%s'", d);
    free(d);
}

/* Three shards run with different thread counts, in reverse order, then
 * merged: every data file and the printed verdicts equal one whole run. */
static void test_shard_merge_is_byte_identical(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof sharded / sizeof sharded[0]; k++) {
        const char *a = sharded[k];
        char *whole = tmpdir(), *parts = tmpdir();
        static char out_whole[65536], out_merge[65536], buf[65536];
        assert_int_equal(
            fpt_sh_all(out_whole, sizeof out_whole,
                       "'%s' run %s --quick --seed 3 --out '%s' --threads 2 | grep ^verdict",
                       fpt_fplab(), a, whole),
            0);
        for (int i = 2; i >= 0; i--)
            assert_int_equal(fpt_sh_all(buf, sizeof buf,
                                        "'%s' run %s --quick --seed 3 --out '%s' "
                                        "--threads %d --shard %d/3",
                                        fpt_fplab(), a, parts, 1 + i % 2, i),
                             0);
        /* a shard writes its slice and nothing else */
        assert_int_equal(
            fpt_sh_all(buf, sizeof buf, "ls '%s/data' | grep -v '\\.shard-' | wc -l", parts), 0);
        assert_int_equal(atoi(buf), 0);
        assert_int_equal(fpt_sh_all(out_merge, sizeof out_merge,
                                    "'%s' merge %s --quick --seed 3 --out '%s' | grep ^verdict",
                                    fpt_fplab(), a, parts),
                         0);
        assert_string_equal(out_whole, out_merge);
        assert_int_equal(fpt_sh_all(buf, sizeof buf,
                                    "cd '%s/data' && n=0 && for f in *.csv; do n=$((n+1)); "
                                    "cmp '%s/data/'$f $f || exit 1; done && echo $n",
                                    whole, parts),
                         0);
        if (atoi(buf) < 2)
            fail_msg("%s: only %d data files compared", a, atoi(buf));
        rmdir_all(whole);
        rmdir_all(parts);
    }
}

/* A merge that cannot be right is refused, and writes nothing. */
static void test_shard_merge_refusals(void **state)
{
    (void)state;
    const char *a = sharded[0];
    char *d = tmpdir();
    static char buf[65536];
    /* nothing to merge */
    assert_int_not_equal(
        fpt_sh_all(buf, sizeof buf, "'%s' merge %s --quick --out '%s'", fpt_fplab(), a, d), 0);
    assert_non_null(strstr(buf, "no shard files"));
    for (int i = 0; i < 3; i += 2) /* shards 0 and 2 of 3 */
        assert_int_equal(
            fpt_sh_all(NULL, 0, "'%s' run %s --quick --out '%s' --shard %d/3", fpt_fplab(), a, d, i),
            0);
    assert_int_not_equal(
        fpt_sh_all(buf, sizeof buf, "'%s' merge %s --quick --out '%s'", fpt_fplab(), a, d), 0);
    assert_non_null(strstr(buf, "shard 1 of 3 is missing"));
    assert_int_equal(
        fpt_sh_all(NULL, 0, "'%s' run %s --quick --out '%s' --shard 1/3", fpt_fplab(), a, d), 0);
    /* another seed, or the full size, is another sweep */
    assert_int_not_equal(
        fpt_sh_all(buf, sizeof buf, "'%s' merge %s --quick --seed 2 --out '%s'", fpt_fplab(), a, d), 0);
    assert_non_null(strstr(buf, "use the same --quick and --seed"));
    /* a damaged shard: a line cut short */
    assert_int_equal(fpt_sh_all(NULL, 0,
                                "cd '%s/data' && cp %s.shard-1-of-3.csv keep && "
                                "sed -i '$ s/,[0-9a-f]*$//' %s.shard-1-of-3.csv",
                                d, a, a),
                     0);
    assert_int_not_equal(
        fpt_sh_all(buf, sizeof buf, "'%s' merge %s --quick --out '%s'", fpt_fplab(), a, d), 0);
    assert_non_null(strstr(buf, "expected"));
    /* a repeated cell */
    assert_int_equal(fpt_sh_all(NULL, 0,
                                "cd '%s/data' && cp keep %s.shard-1-of-3.csv && "
                                "tail -n 1 keep >> %s.shard-1-of-3.csv",
                                d, a, a),
                     0);
    assert_int_not_equal(
        fpt_sh_all(buf, sizeof buf, "'%s' merge %s --quick --out '%s'", fpt_fplab(), a, d), 0);
    assert_non_null(strstr(buf, "repeated cell"));
    assert_int_equal(fpt_sh_all(NULL, 0, "cd '%s/data' && mv keep %s.shard-1-of-3.csv", d, a), 0);
    /* shards of two splits */
    assert_int_equal(
        fpt_sh_all(NULL, 0, "'%s' run %s --quick --out '%s' --shard 0/2", fpt_fplab(), a, d), 0);
    assert_int_not_equal(
        fpt_sh_all(buf, sizeof buf, "'%s' merge %s --quick --out '%s'", fpt_fplab(), a, d), 0);
    assert_non_null(strstr(buf, "two splits"));
    /* none of the refused merges wrote a result */
    assert_int_equal(fpt_sh_all(buf, sizeof buf, "ls '%s/data' | grep -v '\\.shard-' | wc -l", d),
                     0);
    assert_int_equal(atoi(buf), 0);
    /* after removing the stray split, the merge goes through */
    assert_int_equal(fpt_sh_all(NULL, 0, "rm '%s/data/%s.shard-0-of-2.csv'", d, a), 0);
    assert_int_equal(fpt_sh_all(buf, sizeof buf, "'%s' merge %s --quick --out '%s'", fpt_fplab(), a, d),
                     0);
    rmdir_all(d);
}

/* The Slurm script, run as the tasks of an array --array=4-6 would be (the
 * environment Slurm sets), gives the shards a merge accepts. */
static void test_shard_slurm_script(void **state)
{
    (void)state;
    const char *src = getenv("FPL_SRCDIR");
    if (!src)
        src = ".";
    char *whole = tmpdir(), *parts = tmpdir();
    static char a[65536], b[65536];
    assert_int_equal(fpt_sh_all(a, sizeof a,
                                "'%s' run granularity --quick --out '%s' | grep ^verdict", fpt_fplab(),
                                whole),
                     0);
    for (int id = 4; id <= 6; id++)
        assert_int_equal(
            fpt_sh_all(b, sizeof b,
                       "SLURM_ARRAY_TASK_ID=%d SLURM_ARRAY_TASK_MIN=4 SLURM_ARRAY_TASK_COUNT=3 "
                       "SLURM_CPUS_PER_TASK=1 FPLAB='%s' bash '%s/scripts/fplab-slurm.sbatch' "
                       "granularity --quick --out '%s'",
                       id, fpt_fplab(), src, parts),
            0);
    assert_int_equal(fpt_sh_all(b, sizeof b, "ls '%s/data'", parts), 0);
    assert_non_null(strstr(b, "granularity.shard-2-of-3.csv"));
    assert_int_equal(fpt_sh_all(b, sizeof b,
                                "'%s' merge granularity --quick --out '%s' | grep ^verdict",
                                fpt_fplab(), parts),
                     0);
    assert_string_equal(a, b);
    assert_int_equal(fpt_sh_all(NULL, 0, "cmp '%s/data/granularity.csv' '%s/data/granularity.csv'",
                                whole, parts),
                     0);
    /* outside a job array it says so */
    assert_int_not_equal(
        fpt_sh_all(b, sizeof b,
                   "env -u SLURM_ARRAY_TASK_ID bash '%s/scripts/fplab-slurm.sbatch' "
                   "granularity",
                   src),
        0);
    assert_non_null(strstr(b, "job array"));
    rmdir_all(whole);
    rmdir_all(parts);
}

/* Bad --shard values get fplab's one-line message and exit status 2. */
static void test_shard_bad_options(void **state)
{
    (void)state;
    static char buf[4096];
    const char *bad[] = {"3/3", "-1/3", "1/0", "1", "a/b", "1/2/3", "1/3x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(fpt_sh_all(buf, sizeof buf,
                                    "'%s' run granularity --quick --out /nonexistent "
                                    "--shard '%s'",
                                    fpt_fplab(), bad[i]),
                         2);
        assert_non_null(strstr(buf, "--shard"));
    }
    assert_int_equal(fpt_sh_all(buf, sizeof buf, "'%s' merge granularity --shard 0/2", fpt_fplab()), 2);
    assert_int_equal(fpt_sh_all(buf, sizeof buf, "'%s' merge", fpt_fplab()), 2);
    assert_non_null(strstr(buf, "missing ANALYSIS"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard_merge_is_byte_identical),
        cmocka_unit_test(test_shard_merge_refusals),
        cmocka_unit_test(test_shard_slurm_script),
        cmocka_unit_test(test_shard_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
