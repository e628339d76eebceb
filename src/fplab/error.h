/* error.h -- status codes and error messages of libfplab */
#ifndef FPL_ERROR_H
#define FPL_ERROR_H

/* Status codes returned by every function that can fail (0 = success). */
enum {
    FPL_OK = 0,
    FPL_EINVAL = 1, /* invalid argument: unknown name, malformed spelling */
    FPL_ERANGE = 2, /* value outside what the format can encode */
    FPL_ENOMEM = 3, /* allocation failed */
    FPL_EIO = 4,      /* reading or writing a file failed */
    FPL_ENOTFOUND = 5 /* a required program (gnuplot, LaTeX) is not installed */
};

/* A short fixed description of a status code ("invalid argument", ...). */
const char *fpl_strerror(int status);

/* The message of the most recent failure in this thread: what failed and
 * why, in one line without a trailing newline.  Never NULL; "" when no call
 * has failed yet.  The text stays valid until the next failing call in the
 * same thread. */
const char *fpl_last_error(void);

#endif /* FPL_ERROR_H */
