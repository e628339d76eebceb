/* records.h -- CSV records with provenance, written atomically */
#ifndef FPL_RECORDS_H
#define FPL_RECORDS_H

#include <stdint.h>

typedef struct fpl_csv fpl_csv_t;

/* Start a CSV file at `path`.  Data go to a temporary file beside it; only
 * fpl_csv_close renames it into place, so `path` is never half-written.
 * The file begins with a provenance header of comment lines -- "# fplab
 * VERSION", "# command: COMMAND", "# seed: SEED" (no dates, no host names,
 * so reruns are byte-identical) -- then the column line `columns`.
 * Returns NULL on failure (fpl_last_error says why). */
fpl_csv_t *fpl_csv_open(const char *path, const char *command, uint64_t seed,
                        const char *columns);

/* Append one line (printf-style, without the newline).  Numbers should be
 * printed with %.17g or %a so nothing is lost.  Returns 0 or FPL_EIO. */
int fpl_csv_row(fpl_csv_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Finish: flush, close and rename into place; frees c.  Returns 0 or
 * FPL_EIO (the temporary file is then removed and `path` left untouched). */
int fpl_csv_close(fpl_csv_t *c);

/* Abandon: remove the temporary file; frees c. */
void fpl_csv_abort(fpl_csv_t *c);

/* Write `len` bytes to `path` atomically (temporary file, then rename).
 * Returns 0 or FPL_EIO. */
int fpl_write_atomic(const char *path, const char *data, size_t len);

#endif /* FPL_RECORDS_H */
