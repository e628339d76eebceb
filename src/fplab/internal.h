/* internal.h -- helpers shared inside libfplab, not installed */
#ifndef FPL_INTERNAL_H
#define FPL_INTERNAL_H

#include <stdint.h>
#include <string.h>

/* Record a failure message (printf-style) for fpl_last_error and return the
 * status, so a failing function can end with `return fpl__fail(...)`. */
int fpl__fail(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline uint64_t fpl__bits(double x)
{
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}

static inline double fpl__double(uint64_t b)
{
    double x;
    memcpy(&x, &b, sizeof x);
    return x;
}

/* 2^e as a double for -1074 <= e <= 1023, exactly. */
double fpl__pow2(int e);

#endif /* FPL_INTERNAL_H */
