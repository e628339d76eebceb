/* installcheck.c -- compiled by `make installcheck` against the installed
 * library, through the installed fplab.pc alone: the headers are found,
 * the library links, and it computes (e4m3 rounds 300.7 to 288; the
 * version is the one installed). */
#include <fplab.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    fpl_format_t f;
    if (fpl_format_parse("e4m3", &f) != 0) {
        fprintf(stderr, "installcheck: %s\n", fpl_last_error());
        return 1;
    }
    double y = fpl_round(&f, 300.7, FPL_RNE, NULL);
    if (y != 288.0 || strcmp(fpl_version(), EXPECT_VERSION) != 0) {
        fprintf(stderr, "installcheck: e4m3(300.7) = %g, version %s (expected 288, %s)\n", y,
                fpl_version(), EXPECT_VERSION);
        return 1;
    }
    printf("installcheck: fplab %s links through pkg-config and rounds correctly\n",
           fpl_version());
    return 0;
}
