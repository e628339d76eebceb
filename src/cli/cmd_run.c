/* cmd_run.c -- fplab run ANALYSIS: run an experiment program */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

static const char usage_run[] =
    "usage: fplab run ANALYSIS [--quick] [--out DIR] [--seed N] [--threads N]\n"
    "\n"
    "Run one experiment: it writes DIR/data/ANALYSIS*.csv and DIR/plots/ANALYSIS*.png|pdf\n"
    "(DIR defaults to .) and prints verdict lines 'verdict CLAIM holds|conditional|refuted\n"
    "REASON'.  The same seed gives byte-identical CSV for any number of threads.\n"
    "\n"
    "analyses:\n"
    "  dot        T1: error of length-n dot products against n (formats, accumulators,\n"
    "             orders, rounding modes; positive and zero-mean data)\n"
    "  residual   T2: per-layer error of residual stacks with pre-LN, post-LN, RMSNorm\n"
    "             and no normalisation (total, introduced, inherited, amplification)\n"
    "  layernorm  T3: LayerNorm against scale-like and random perturbations; the error\n"
    "             of LayerNorm statistics in low precision\n"
    "  granularity T5: SQNR against bits per value of integer (per tensor, channel,\n"
    "             group), GGUF, MX and NVFP4 quantizers; matmul error\n"
    "\n"
    "  --quick      small sizes (seconds; what the tests run)\n"
    "  --out DIR    where data/ and plots/ go\n"
    "  --seed N     master seed (default 1)\n"
    "  --threads N  OpenMP threads (default: all cores)\n";

static const char *const analyses[] = {"dot", "residual", "layernorm", "granularity"};

/* Where the analysis programs are: $FPLAB_ANALYSES_DIR, else the build
 * tree when this fplab is the one built there, else the installed libexec. */
static void analyses_dir(char *buf, size_t n)
{
    const char *env = getenv("FPLAB_ANALYSES_DIR");
    if (env && *env) {
        snprintf(buf, n, "%s", env);
        return;
    }
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    self[len > 0 ? len : 0] = '\0';
    size_t bl = strlen(FPL_BUILDDIR);
    if (len > 0 && !strncmp(self, FPL_BUILDDIR "/", bl + 1))
        snprintf(buf, n, "%s/analyses", FPL_BUILDDIR);
    else
        snprintf(buf, n, "%s", FPL_LIBEXECDIR);
}

int cmd_run(int argc, char **argv)
{
    if (argc < 1)
        return die(EXIT_USAGE, "run: missing ANALYSIS (try 'fplab run --help')");
    if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))
        return help(usage_run);
    const char *name = argv[0];
    int known = 0;
    for (size_t i = 0; i < sizeof analyses / sizeof analyses[0]; i++)
        known |= !strcmp(name, analyses[i]);
    if (!known)
        return die(EXIT_USAGE, "run: unknown analysis '%s' (try 'fplab run --help')", name);
    /* check the options here so a mistake gets fplab's one-line message */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick") || !strcmp(a, "--help") || !strcmp(a, "-h"))
            continue;
        int takes = !strcmp(a, "--out") || !strcmp(a, "--seed") || !strcmp(a, "--threads");
        int inline_val = !strncmp(a, "--out=", 6) || !strncmp(a, "--seed=", 7) ||
                         !strncmp(a, "--threads=", 10);
        if (takes && i + 1 >= argc)
            return die(EXIT_USAGE, "run: option %s needs a value", a);
        if (!takes && !inline_val)
            return die(EXIT_USAGE, "run: unknown option '%s' (try 'fplab run --help')", a);
        i += takes;
    }
    char dir[4096], path[4200];
    analyses_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (access(path, X_OK) != 0)
        return die(1, "run: analysis program %s not found (build it with 'make', or set "
                      "FPLAB_ANALYSES_DIR)", path);
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args)
        return die(1, "out of memory");
    args[0] = path;
    for (int i = 1; i < argc; i++)
        args[i] = argv[i];
    fflush(stdout);
    execv(path, args);
    free(args);
    return die(1, "run: cannot execute %s: %s", path, strerror(errno));
}
