/* test_cli.c -- the fplab command's contract and its bad-input behaviour */
#include <math.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"

extern char **environ;

typedef struct {
    int status;
    char *out, *err;
    size_t out_len;
} run_t;

/* Run $FPLAB with the given arguments (NULL-terminated) and standard input. */
static run_t run(const char *input, ...)
{
    const char *exe = getenv("FPLAB");
    if (!exe)
        fail_msg("FPLAB is not set (run through make check)");
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)exe;
    va_list ap;
    va_start(ap, input);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    char in[] = "/tmp/fplab-cli-in-XXXXXX", out[] = "/tmp/fplab-cli-out-XXXXXX",
         err[] = "/tmp/fplab-cli-err-XXXXXX";
    int fi = mkstemp(in), fo = mkstemp(out), fe = mkstemp(err);
    assert_true(fi >= 0 && fo >= 0 && fe >= 0);
    if (input)
        assert_int_equal(write(fi, input, strlen(input)), (ssize_t)strlen(input));
    lseek(fi, 0, SEEK_SET);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fi, 0);
    posix_spawn_file_actions_adddup2(&fa, fo, 1);
    posix_spawn_file_actions_adddup2(&fa, fe, 2);
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, exe, &fa, NULL, argv, environ), 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    posix_spawn_file_actions_destroy(&fa);
    close(fi);
    close(fo);
    close(fe);
    run_t r;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.out = fpt_slurp(out, &r.out_len);
    r.err = fpt_slurp(err, NULL);
    unlink(in);
    unlink(out);
    unlink(err);
    return r;
}

static void run_free(run_t *r)
{
    free(r->out);
    free(r->err);
}

/* success: status 0, nothing on stderr, stdout equal to want */
static void expect_out(run_t r, const char *want)
{
    if (r.status != 0 || strcmp(r.out, want) != 0 || r.err[0])
        fail_msg("status %d\nstdout: [%s]\nwant:   [%s]\nstderr: [%s]", r.status, r.out, want,
                 r.err);
    run_free(&r);
}

/* failure: non-zero status, empty stdout, one line on stderr mentioning
 * `needle` */
static void expect_error(run_t r, const char *needle)
{
    size_t lines = 0;
    for (const char *p = r.err; *p; p++)
        lines += *p == '\n';
    if (r.status == 0 || r.out_len != 0 || lines != 1 || !strstr(r.err, needle))
        fail_msg("status %d\nstdout: [%s]\nstderr: [%s]\nexpected one error line with '%s'",
                 r.status, r.out, r.err, needle);
    run_free(&r);
}

static void test_cli_version_and_help(void **state)
{
    (void)state;
    run_t r = run(NULL, "--version", NULL);
    assert_int_equal(r.status, 0);
    assert_true(!strncmp(r.out, "fplab ", 6));
    run_free(&r);
    const char *cmds[] = {"formats", "info", "table", "round", "calc", "quant"};
    for (size_t i = 0; i < 6; i++) {
        char want[64];
        snprintf(want, sizeof want, "usage: fplab %s", cmds[i]);
        r = run(NULL, cmds[i], "--help", NULL);
        assert_int_equal(r.status, 0);
        assert_non_null(strstr(r.out, want));
        run_free(&r);
        r = run(NULL, "help", cmds[i], NULL);
        assert_int_equal(r.status, 0);
        assert_non_null(strstr(r.out, want));
        run_free(&r);
    }
    r = run(NULL, "--help", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "usage: fplab COMMAND"));
    run_free(&r);
    r = run(NULL, NULL);
    assert_true(r.status != 0);
    assert_int_equal(r.out_len, 0);
    run_free(&r);
}

static void test_cli_formats_lists_presets(void **state)
{
    (void)state;
    run_t r = run(NULL, "formats", NULL);
    assert_int_equal(r.status, 0);
    const char *name, *aliases;
    for (size_t i = 0; (name = fpl_format_preset(i, &aliases)) != NULL; i++) {
        char key[32];
        snprintf(key, sizeof key, "\n%s ", name);
        if (!strstr(r.out, key))
            fail_msg("'fplab formats' does not list %s", name);
    }
    assert_non_null(strstr(r.out, "float8_e4m3fn"));
    char *line = strstr(r.out, "\ne4m3 ");
    assert_non_null(line);
    assert_non_null(strstr(line, " 448 "));
    run_free(&r);
}

static void test_cli_info(void **state)
{
    (void)state;
    run_t r = run(NULL, "info", "float8_e4m3fn", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "name: e4m3\n"));
    assert_non_null(strstr(r.out, "max_finite: 0x1.cp+8 (448)\n"));
    assert_non_null(strstr(r.out, "min_subnormal: 0x1p-9 "));
    assert_non_null(strstr(r.out, "inf: no\n"));
    assert_non_null(strstr(r.out, "overflow: nan\n"));
    run_free(&r);
    r = run(NULL, "info", "e4m3", "--overflow", "saturate", NULL);
    assert_non_null(strstr(r.out, "overflow: saturate\n"));
    run_free(&r);
    r = run(NULL, "info", "fp16", NULL);
    assert_non_null(strstr(r.out, "max_finite: 0x1.ffcp+15 (65504)\n"));
    assert_non_null(strstr(r.out, "unit_roundoff: 0x1p-11 "));
    run_free(&r);
}

static void test_cli_table(void **state)
{
    (void)state;
    expect_out(run(NULL, "table", "e2m1", NULL),
               "0x0 0x0p+0 zero\n0x1 0x1p-1 subnormal\n0x2 0x1p+0 normal\n0x3 0x1.8p+0 normal\n"
               "0x4 0x1p+1 normal\n0x5 0x1.8p+1 normal\n0x6 0x1p+2 normal\n0x7 0x1.8p+2 normal\n"
               "0x8 -0x0p+0 zero\n0x9 -0x1p-1 subnormal\n0xa -0x1p+0 normal\n"
               "0xb -0x1.8p+0 normal\n0xc -0x1p+1 normal\n0xd -0x1.8p+1 normal\n"
               "0xe -0x1p+2 normal\n0xf -0x1.8p+2 normal\n");
    run_t r = run(NULL, "table", "bf16", NULL);
    assert_int_equal(r.status, 0);
    size_t lines = 0;
    for (const char *p = r.out; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 65536);
    assert_non_null(strstr(r.out, "0x7f80 inf inf\n"));
    assert_non_null(strstr(r.out, "0x7f7f 0x1.fep+127 normal\n"));
    run_free(&r);
    expect_error(run(NULL, "table", "fp32", NULL), "16 bits");
}

static void test_cli_round(void **state)
{
    (void)state;
    expect_out(run(NULL, "round", "e4m3", "464", "465", "-1.5", "1e-9", "inf", "nan", NULL),
               "0x1.cp+8\nnan\n-0x1.8p+0\n0x0p+0\nnan\nnan\n");
    expect_out(run(NULL, "round", "e4m3", "--overflow", "saturate", "1000", "-inf", NULL),
               "0x1.cp+8\n-0x1.cp+8\n");
    expect_out(run("0.1\n  -0x1.8p3 \n\n65520\n", "round", "fp16", NULL),
               "0x1.998p-4\n-0x1.8p+3\ninf\n");
    expect_out(run(NULL, "round", "bf16", "--rounding", "rtz", "1.999", NULL), "0x1.fep+0\n");
    expect_out(run(NULL, "round", "bf16", "--rounding=rup", "1.0001", NULL), "0x1.02p+0\n");
    expect_out(run(NULL, "round", "int8", "2.5", "3.5", "-200", NULL), "0x1p+1\n0x1p+2\n-0x1p+7\n");
    /* a decimal just above a bf16 midpoint whose nearest double IS the
     * midpoint: read exactly it rounds up; through binary64 it ties to even */
    expect_out(run(NULL, "round", "bf16", "1.00390625000000000000001", NULL), "0x1.02p+0\n");
    expect_out(run(NULL, "round", "bf16", "--path", "fast", "1.00390625000000000000001", NULL),
               "0x1p+0\n");
    /* a decimal below the double range still rounds up to the smallest subnormal */
    expect_out(run(NULL, "round", "fp16", "--rounding", "rup", "1e-400", NULL), "0x1p-24\n");
}

static void test_cli_round_sr_reproducible(void **state)
{
    (void)state;
    char input[64 * 16] = "";
    for (int i = 0; i < 64; i++)
        strcat(input, "1.3\n");
    run_t a = run(input, "round", "e4m3", "--rounding", "sr", "--seed", "12", NULL);
    run_t b = run(input, "round", "e4m3", "--rounding", "sr", "--seed", "12", NULL);
    run_t c = run(input, "round", "e4m3", "--rounding", "sr", "--seed", "13", NULL);
    assert_int_equal(a.status, 0);
    assert_string_equal(a.out, b.out);
    assert_string_not_equal(a.out, c.out);
    /* only the two neighbours 1.25 and 1.375 */
    for (char *p = strtok(a.out, "\n"); p; p = strtok(NULL, "\n"))
        if (strcmp(p, "0x1.4p+0") && strcmp(p, "0x1.6p+0"))
            fail_msg("sr gave %s", p);
    run_free(&a);
    run_free(&b);
    run_free(&c);
}

static void test_cli_calc(void **state)
{
    (void)state;
    expect_out(run("1 0.125\n448 8\n-0.5 0.5\n", "calc", "e4m3", "add", NULL),
               "0x1.2p+0\n0x1.cp+8\n0x0p+0\n");
    expect_out(run("448 448\n", "calc", "e4m3", "mul", NULL), "nan\n");
    expect_out(run("1 0\n", "calc", "e4m3", "div", NULL), "nan\n");
    expect_out(run("1 0\n-1 0\n", "calc", "fp16", "div", NULL), "inf\n-inf\n");
    expect_out(run("2\n", "calc", "bf16", "sqrt", NULL), "0x1.6ap+0\n");
    expect_out(run("2\n", "calc", "bf16", "sqrt", "--rounding", "rup", NULL), "0x1.6cp+0\n");
    expect_out(run("2\n", "calc", "bf16", "sqrt", "--rounding", "rdown", NULL), "0x1.6ap+0\n");
    expect_out(run("1.0078125 1.0078125 -1\n", "calc", "bf16", "fma", "--rounding", "rup", NULL),
               "0x1.02p-6\n");
    expect_out(run("1\n", "calc", "bf16", "exp", NULL), "0x1.5cp+1\n");
    expect_out(run("0.1 0.2\n", "calc", "bf16", "add", "--round-inputs", NULL), "0x1.34p-2\n");
    expect_out(run("inf 1\n", "calc", "fp16", "add", NULL), "inf\n");
}

static void test_cli_bad_input(void **state)
{
    (void)state;
    expect_error(run(NULL, "round", "fp7", "1", NULL), "unknown format 'fp7'");
    expect_error(run(NULL, "round", "bf16", "--rounding", "up", "1", NULL), "rounding mode");
    expect_error(run(NULL, "round", "bf16", "1", "abc", NULL), "not a number: 'abc'");
    expect_error(run("1\n2\nx1\n", "round", "bf16", NULL), "line 3");
    expect_error(run(NULL, "round", "bf16", "--seed", "-4", "1", NULL), "bad seed");
    expect_error(run(NULL, "round", "bf16", "--seed", NULL), "needs a value");
    expect_error(run(NULL, "round", "bf16", "--frobnicate", "1", NULL), "unknown option");
    expect_error(run(NULL, "round", NULL), "missing FORMAT");
    expect_error(run(NULL, "round", "e4m3", "--overflow", "inf", "1", NULL), "no infinity");
    expect_error(run(NULL, "round", "bf16", "@nan@", NULL), "not a number");
    expect_error(run(NULL, "round", "bf16", "1.5x", NULL), "not a number");
    expect_error(run(NULL, "frobnicate", NULL), "unknown command");
    expect_error(run(NULL, "info", NULL), "missing FORMAT");
    expect_error(run(NULL, "info", "bf16", "extra", NULL), "unexpected argument");
    expect_error(run(NULL, "formats", "extra", NULL), "unexpected argument");
    expect_error(run("1 2\n", "calc", "bf16", NULL), "missing OP");
    expect_error(run("1 2\n", "calc", "bf16", "pow", NULL), "unknown operation");
    expect_error(run("1\n", "calc", "bf16", "add", NULL), "takes 2 operands, got 1");
    expect_error(run("1 2 3\n", "calc", "bf16", "add", NULL), "got more");
    expect_error(run("0.1 1\n", "calc", "bf16", "add", NULL), "not a value of bf16");
    expect_error(run("inf 1\n", "calc", "e4m3", "add", NULL), "not a value of e4m3");
    expect_error(run("1 2\n3 y\n", "calc", "bf16", "add", NULL), "line 2");
    expect_error(run(NULL, "calc", "bf16", "add", "1", NULL), "unexpected argument");
}


static void test_cli_quant(void **state)
{
    (void)state;
    char in[32 * 8 + 1] = "";
    for (int i = 0; i < 32; i++)
        strcat(in, i == 0 ? "127\n" : i == 1 ? "2.5\n" : "0\n");
    run_t r = run(in, "quant", "q8_0", NULL);
    assert_int_equal(r.status, 0);
    assert_true(!strncmp(r.out, "0x1.fcp+6\n0x1.8p+1\n0x0p+0\n", 26)); /* 127, roundf(2.5)=3, 0 */
    run_free(&r);
    r = run(in, "quant", "q8_0", "--stats", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "bits_per_weight: 8.5\n"));
    assert_non_null(strstr(r.out, "packed_bytes: 34\n"));
    assert_non_null(strstr(r.out, "max_abs_error: 0x1p-1 "));
    run_free(&r);
    /* packed bytes on disk, read back identically */
    char path[] = "/tmp/fplab-quant-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    run_t a = run(in, "quant", "int4", "--group", "16", "--rows", "2", "--pack", path, NULL);
    assert_int_equal(a.status, 0);
    FILE *fp = fopen(path, "rb");
    fseek(fp, 0, SEEK_END);
    assert_int_equal(ftell(fp), 24); /* 2 groups x (32 + 16 x 4) bits */
    fclose(fp);
    run_t b = run(NULL, "quant", "int4:g16", "--unpack", path, "--rows", "2", "--cols", "16", NULL);
    assert_int_equal(b.status, 0);
    assert_string_equal(a.out, b.out);
    run_free(&a);
    run_free(&b);
    expect_error(run(NULL, "quant", "int4:g16", "--unpack", path, "--rows", "1", "--cols", "64",
                     NULL), "takes 48");
    unlink(path);
    expect_error(run(in, "quant", "q5_k", NULL), "unknown quantization scheme");
    expect_error(run("1\n2\n3\n", "quant", "q4_0", NULL), "blocks of 32");
    expect_error(run(in, "quant", "q4_K", NULL), "blocks of 256");
    expect_error(run(in, "quant", "int4", "--rows", "3", NULL), "do not make 3 equal rows");
    expect_error(run("1\nnan\n", "quant", "int8", NULL), "refused");
    expect_error(run("1\nx\n", "quant", "int8", NULL), "not a number");
    expect_error(run(in, "quant", "mxfp4", "--group", "16", NULL), "integer schemes");
    expect_error(run(in, "quant", "int8", "--calib", "p20", NULL), "percentile");
    expect_error(run(in, "quant", "int8", "--calib", "best", NULL), "bad calibration");
    expect_error(run(in, "quant", NULL), "missing SCHEME");
    expect_error(run(NULL, "quant", "int8", "--unpack", "/nonexistent", "--rows", "1", "--cols",
                     "4", NULL), "cannot open");
    r = run(NULL, "quant", "--help", NULL);
    assert_non_null(strstr(r.out, "usage: fplab quant"));
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_version_and_help),
        cmocka_unit_test(test_cli_formats_lists_presets),
        cmocka_unit_test(test_cli_info),
        cmocka_unit_test(test_cli_table),
        cmocka_unit_test(test_cli_round),
        cmocka_unit_test(test_cli_round_sr_reproducible),
        cmocka_unit_test(test_cli_calc),
        cmocka_unit_test(test_cli_bad_input),
        cmocka_unit_test(test_cli_quant),
    };
    return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
