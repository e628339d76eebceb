/* main.c -- the fplab command: dispatch to one file per command */
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

static const char usage_main[] =
    "usage: fplab COMMAND [ARGS]\n"
    "\n"
    "Exact emulation of low-precision number formats.\n"
    "\n"
    "commands:\n"
    "  formats                 list every named format with its properties\n"
    "  info FORMAT             bits, bias, range, unit roundoff, special values\n"
    "  table FORMAT            every encoding and its value (formats of 16 bits or less)\n"
    "  round FORMAT [VALUE...] round values (or lines of standard input) to FORMAT\n"
    "  calc FORMAT OP          correctly rounded OP on operands read from standard input\n"
    "  quant SCHEME            quantize standard input (int4:g128, q8_0, mxfp4, nvfp4, ...)\n"
    "  run ANALYSIS            run an experiment (data, figures, verdicts), or one shard\n"
    "  merge ANALYSIS          finish an experiment run in shards\n"
    "\n"
    "  fplab COMMAND --help    help on one command\n"
    "  fplab --version         print the version\n"
    "\n"
    "FORMAT is a name (fp32 tf32 fp16 bf16 e4m3 e5m2 e4m3fnuz e5m2fnuz e4m3b11fnuz\n"
    "e3m2 e2m3 e2m1 e8m0 int8 uint8 int4 uint4 ...), an ml_dtypes/PyTorch alias\n"
    "(float8_e4m3fn, bfloat16, ...), or a generic spelling such as fp:e=4,m=3,fn.\n";

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {{"formats", cmd_formats}, {"info", cmd_info}, {"table", cmd_table},
                {"round", cmd_round},     {"calc", cmd_calc},   {"quant", cmd_quant},
                {"run", cmd_run},         {"merge", cmd_merge}};

int main(int argc, char **argv)
{
    if (argc < 2)
        return fputs(usage_main, stderr), EXIT_USAGE;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        if (argc > 2) {
            char *sub[] = {"--help", NULL};
            for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
                if (!strcmp(argv[2], commands[i].name))
                    return commands[i].run(1, sub);
            return die(EXIT_USAGE, "help: unknown command '%s'", argv[2]);
        }
        return help(usage_main);
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("fplab %s\n", fpl_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name))
            return commands[i].run(argc - 2, argv + 2);
    return die(EXIT_USAGE, "unknown command '%s' (try 'fplab --help')", cmd);
}
