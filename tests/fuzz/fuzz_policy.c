/* fuzz_policy.c -- policy spellings.  Property: the canonical text of a
 * parsed policy parses to the same canonical text. */
#include "fplab.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[512];
    fuzz_string(data, size, s, sizeof s);
    fpl_policy_t p, q;
    if (fpl_policy_parse(s, &p) != 0) {
        FUZZ_ASSERT(fpl_last_error()[0] != '\0', "no message for '%s'", s);
        return 0;
    }
    FUZZ_ASSERT(fpl_policy_parse(p.text, &q) == 0, "canonical '%s' of '%s' does not parse: %s",
                p.text, s, fpl_last_error());
    FUZZ_ASSERT(!strcmp(p.text, q.text), "'%s' -> '%s' -> '%s'", s, p.text, q.text);
    return 0;
}
