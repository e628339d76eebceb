/* cmd_run.c -- fplab run ANALYSIS and fplab merge ANALYSIS: run an experiment
 * program, whole or one shard of its sweep, and merge the shards */
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
    "usage: fplab run ANALYSIS [--quick] [--out DIR] [--seed N] [--threads N] [--shard I/N]\n"
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
    "  decisions  T4: top-1/top-5 flips of an LM head against the exact margin, KL and\n"
    "             total variation against temperature, HMM log-likelihood chains\n"
    "  diffusion  D1-D3: error of DDIM, DDPM, probability-flow ODE and Heun samplers on\n"
    "             an exact-score Gaussian mixture against the step count; error over\n"
    "             sigma_t; distance to the mixture beside the seed-to-seed floor\n"
    "  diffusion_quant  D4: weight quantizers on a learned MLP denoiser: distance to\n"
    "             the mixture, per-sample drift, amplification beside a residual stack\n"
    "  vae_head   V1-V3: a VAE's Gaussian head: exp(logvar) per format (range against\n"
    "             precision), reparameterisation, KL naive/stable/fused and its sum\n"
    "  training   P1: an MLP trained in fp32, bf16 and fp8 over seeds, then INT8/INT4\n"
    "             weight quantization: loss increase per recipe with CIs\n"
    "  vae_model  V4-V5: a small trained VAE: which parts (heads, exp, reparam, KL) must\n"
    "             stay fp32 around an fp16/bf16/e4m3 body; decoder overflow (range)\n"
    "             against rounding (precision) in fp16, bf16, e8m10, e5m7; the fixes\n"
    "\n"
    "  --quick      small sizes (seconds; what the tests run)\n"
    "  --out DIR    where data/ and plots/ go\n"
    "  --seed N     master seed (default 1)\n"
    "  --threads N  OpenMP threads (default: all cores)\n"
    "  --shard I/N  compute slice I (0 <= I < N) of the analysis' sweep and write only\n"
    "               DIR/data/ANALYSIS.shard-I-of-N.csv; run every I (in any order, on any\n"
    "               machines sharing DIR or copying the files into it), then\n"
    "               'fplab merge ANALYSIS' with the same --quick and --seed\n"
    "\n"
    "Options of one analysis (see 'fplab run ANALYSIS --help') are passed on to it.\n";

static const char usage_merge[] =
    "usage: fplab merge ANALYSIS [--quick] [--out DIR] [--seed N] [--threads N]\n"
    "\n"
    "Finish an analysis whose sweep was run in shards ('fplab run ANALYSIS --shard I/N'\n"
    "for every I): read all of DIR/data/ANALYSIS.shard-*-of-N.csv, check that they come\n"
    "from the same command (--quick, --seed) and hold every cell exactly once, and write\n"
    "the data, figures and verdicts.  The CSV is byte-identical to an unsharded run.\n"
    "The shard files are left in place.\n";

static const char *const analyses[] = {"dot",       "residual",  "layernorm", "granularity",
                                       "decisions", "diffusion", "vae_head",  "training",
                                       "vae_model", "diffusion_quant"};

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

/* Check the options of run/merge and exec the analysis program with them
 * (plus extra, if not NULL). */
static int exec_analysis(const char *cmd, const char *usage, int argc, char **argv,
                         const char *extra)
{
    if (argc < 1)
        return die(EXIT_USAGE, "%s: missing ANALYSIS (try 'fplab %s --help')", cmd, cmd);
    if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))
        return help(usage);
    const char *name = argv[0];
    int known = 0;
    for (size_t i = 0; i < sizeof analyses / sizeof analyses[0]; i++)
        known |= !strcmp(name, analyses[i]);
    if (!known)
        return die(EXIT_USAGE, "%s: unknown analysis '%s' (try 'fplab run --help')", cmd, name);
    /* check the options here so a mistake gets fplab's one-line message */
    int shard_ok = !extra;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick") || !strcmp(a, "--help") || !strcmp(a, "-h"))
            continue;
        const char *opts[] = {"--out", "--seed", "--threads", "--shard"};
        int k = -1;
        const char *val = NULL;
        for (int j = 0; j < 4; j++) {
            size_t n = strlen(opts[j]);
            if (!strncmp(a, opts[j], n) && (a[n] == '\0' || a[n] == '=')) {
                k = j;
                val = a[n] == '=' ? a + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
            }
        }
        if (k == 3 && !shard_ok)
            return die(EXIT_USAGE, "%s: unknown option '%s' (try 'fplab %s --help')", cmd, a, cmd);
        if (k < 0) {
            /* an option of this analysis (--policy LIST, ...): the program
             * checks it and names it in its own one-line message */
            if (strncmp(a, "--", 2))
                return die(EXIT_USAGE, "%s: unexpected argument '%s' (try 'fplab %s --help')",
                           cmd, a, cmd);
            if (!strchr(a, '=') && i + 1 < argc && strncmp(argv[i + 1], "--", 2))
                i++;
            continue;
        }
        if (!val)
            return die(EXIT_USAGE, "%s: option %s needs a value", cmd, a);
        unsigned si, sn;
        char tail;
        if (k == 3 && (sscanf(val, "%u/%u%c", &si, &sn, &tail) != 2 || strchr(val, '-') ||
                       sn < 1 || si >= sn))
            return die(EXIT_USAGE, "%s: bad value '%s' for --shard (expected I/N with 0 <= I < N)",
                       cmd, val);
    }
    char dir[4096], path[4200];
    analyses_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (access(path, X_OK) != 0)
        return die(1, "%s: analysis program %s not found (build it with 'make', or set "
                      "FPLAB_ANALYSES_DIR)", cmd, path);
    char **args = calloc((size_t)argc + 2, sizeof *args);
    if (!args)
        return die(1, "out of memory");
    args[0] = path;
    for (int i = 1; i < argc; i++)
        args[i] = argv[i];
    if (extra)
        args[argc] = (char *)extra;
    fflush(stdout);
    execv(path, args);
    free(args);
    return die(1, "%s: cannot execute %s: %s", cmd, path, strerror(errno));
}

int cmd_run(int argc, char **argv)
{
    return exec_analysis("run", usage_run, argc, argv, NULL);
}

int cmd_merge(int argc, char **argv)
{
    return exec_analysis("merge", usage_merge, argc, argv, "--merge");
}
