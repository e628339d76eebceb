/* error.c -- status codes and per-thread error messages */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>

#include "fplab.h"
#include "internal.h"

static _Thread_local char last_error[512];

const char *fpl_strerror(int status)
{
    switch (status) {
    case FPL_OK: return "success";
    case FPL_EINVAL: return "invalid argument";
    case FPL_ERANGE: return "value out of range";
    case FPL_ENOMEM: return "out of memory";
    case FPL_EIO: return "input/output error";
    case FPL_ENOTFOUND: return "program not found";
    default: return "unknown error";
    }
}

const char *fpl_last_error(void) { return last_error; }

int fpl__fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

const char *fpl_version(void) { return PACKAGE_VERSION; }
