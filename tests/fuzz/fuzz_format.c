/* fuzz_format.c -- format names and generic spellings.  Properties: a parsed
 * format's canonical name parses to the same format; rounding is idempotent
 * and lands on values of the format; codes of small formats round-trip. */
#include <math.h>

#include "fplab.h"
#include "fuzz.h"

static int same_format(const fpl_format_t *a, const fpl_format_t *b)
{
    return a->kind == b->kind && a->nbits == b->nbits && a->ebits == b->ebits &&
           a->mbits == b->mbits && a->bias == b->bias && a->specials == b->specials &&
           a->overflow == b->overflow && a->subnormals == b->subnormals &&
           a->has_sign == b->has_sign;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[256];
    fuzz_string(data, size, s, sizeof s);
    fpl_format_t f, g;
    if (fpl_format_parse(s, &f) != 0) {
        FUZZ_ASSERT(fpl_last_error()[0] != '\0', "no message for '%s'", s);
        return 0;
    }
    FUZZ_ASSERT(fpl_format_parse(f.name, &g) == 0, "canonical '%s' of '%s' does not parse: %s",
                f.name, s, fpl_last_error());
    FUZZ_ASSERT(same_format(&f, &g), "'%s' and its canonical name '%s' differ", s, f.name);
    const double probe[] = {0.0,  -0.0,          1.0,           -1.5,        1.0 / 3,
                            1e-300, f.max_finite, f.min_positive, 0.5 * f.min_positive,
                            2 * f.max_finite + 1, INFINITY, -INFINITY, NAN};
    for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++)
        for (int m = FPL_RNE; m <= FPL_RDOWN; m++) {
            double r = fpl_round(&f, probe[i], (fpl_rmode_t)m, NULL);
            if (isnan(r))
                continue;
            double rr = fpl_round(&f, r, (fpl_rmode_t)m, NULL);
            FUZZ_ASSERT(rr == r && !signbit(rr) == !signbit(r),
                        "%s: round(%a) = %a but round of that is %a", f.name, probe[i], r, rr);
            FUZZ_ASSERT(isinf(r) || fpl_format_contains(&f, r), "%s: round(%a) = %a not in format",
                        f.name, probe[i], r);
        }
    if (f.nbits <= 12) {
        for (uint64_t c = 0; c < ((uint64_t)1 << f.nbits); c++) {
            double v = fpl_format_decode(&f, c);
            if (isnan(v))
                continue;
            uint64_t c2;
            FUZZ_ASSERT(fpl_format_encode(&f, v, &c2) == 0, "%s: cannot encode %a", f.name, v);
            FUZZ_ASSERT(fpl_format_decode(&f, c2) == v, "%s: code 0x%llx -> %a -> 0x%llx", f.name,
                        (unsigned long long)c, v, (unsigned long long)c2);
        }
    }
    return 0;
}
