/* fuzz.h -- shared by the libFuzzer harnesses (make fuzz) */
#ifndef FPL_FUZZ_H
#define FPL_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property that must hold for every input: print and abort, so the
 * fuzzer saves the input as a crash. */
#define FUZZ_ASSERT(cond, ...)                                                                    \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "fuzz: property failed: %s: ", #cond);                                \
            fprintf(stderr, __VA_ARGS__);                                                         \
            fputc('\n', stderr);                                                                  \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

/* The input as a NUL-terminated string of at most cap-1 bytes. */
static inline void fuzz_string(const uint8_t *data, size_t size, char *buf, size_t cap)
{
    size_t n = size < cap - 1 ? size : cap - 1;
    memcpy(buf, data, n);
    buf[n] = '\0';
}

#endif
