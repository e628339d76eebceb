/* replay.c -- runs a fuzz harness on every file of its corpus directories
 * without libFuzzer, as a TAP test in `make check`: the seed corpus and every
 * input a fuzzer ever found (saved under tests/fuzz/corpus/NAME/) stay
 * regression tests, under the sanitizers too. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
#ifdef FUZZ_CORPUS
    char *deflt[] = {argv[0], FUZZ_CORPUS, NULL};
    if (argc < 2) {
        argv = deflt;
        argc = 2;
    }
#endif
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR...\n", argv[0]);
        return 2;
    }
    char **files = NULL;
    size_t n = 0, cap = 0;
    for (int a = 1; a < argc; a++) {
        DIR *d = opendir(argv[a]);
        if (!d) {
            printf("Bail out! cannot open %s\n", argv[a]);
            return 1;
        }
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.')
                continue;
            if (n == cap && !(files = realloc(files, (cap = cap ? 2 * cap : 64) * sizeof *files)))
                return 1;
            size_t len = strlen(argv[a]) + strlen(e->d_name) + 2;
            files[n] = malloc(len);
            snprintf(files[n++], len, "%s/%s", argv[a], e->d_name);
        }
        closedir(d);
    }
    qsort(files, n, sizeof *files, cmp);
    printf("1..%zu\n", n);
    for (size_t i = 0; i < n; i++) {
        FILE *fp = fopen(files[i], "rb");
        uint8_t *buf = NULL;
        size_t len = 0;
        if (fp) {
            fseek(fp, 0, SEEK_END);
            long sz = ftell(fp);
            rewind(fp);
            buf = malloc(sz > 0 ? (size_t)sz : 1);
            len = buf && sz > 0 ? fread(buf, 1, (size_t)sz, fp) : 0;
            fclose(fp);
        }
        if (!buf) {
            printf("not ok %zu - %s (unreadable)\n", i + 1, files[i]);
            continue;
        }
        fflush(stdout);
        LLVMFuzzerTestOneInput(buf, len); /* a failed property aborts */
        printf("ok %zu - %s\n", i + 1, files[i]);
        free(buf);
        free(files[i]);
    }
    free(files);
    return 0;
}
