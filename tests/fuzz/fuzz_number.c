/* fuzz_number.c -- number parsing of the fplab command (src/cli/common.c).
 * Properties: when both the exact reader and glibc's strtod/strtof (which
 * round correctly) accept a string, rounding the exact value to binary64
 * and binary32 with MPFR gives their results bit for bit; parse_u64 agrees
 * with strtoull on what it accepts. */
#include <errno.h>
#include <math.h>

#include "../../src/cli/cli.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    static fpl_format_t f64, f32;
    static mpfr_t x;
    if (!ready) {
        fpl_format_parse("fp64", &f64);
        fpl_format_parse("fp32", &f32);
        mpfr_init2(x, 256);
        ready = 1;
    }
    char s[128];
    fuzz_string(data, size, s, sizeof s);
    if (memchr(data, '\0', size < sizeof s - 1 ? size : sizeof s - 1))
        return 0; /* the command never sees embedded NULs */
    if (read_exact(s, x) == 0) {
        char *end;
        double d = strtod(s, &end);
        while (*end == ' ' || (*end >= '\t' && *end <= '\r'))
            end++;
        if (end != s && !*end) {
            double r = fpl_round_mpfr(&f64, x, FPL_RNE, NULL);
            FUZZ_ASSERT((isnan(r) && isnan(d)) || (r == d && !signbit(r) == !signbit(d)),
                        "'%s': exact read rounds to %a, strtod gives %a", s, r, d);
            float fl = strtof(s, NULL);
            double r32 = fpl_round_mpfr(&f32, x, FPL_RNE, NULL);
            FUZZ_ASSERT((isnan(r32) && isnan(fl)) || (r32 == (double)fl && !signbit(r32) == !signbit(fl)),
                        "'%s': exact read rounds to %a in fp32, strtof gives %a", s, r32,
                        (double)fl);
        }
    }
    uint64_t u;
    if (parse_u64(s, &u)) {
        errno = 0;
        FUZZ_ASSERT(strtoull(s, NULL, 10) == u && errno == 0, "'%s': parse_u64 gives %llu", s,
                    (unsigned long long)u);
    }
    return 0;
}
