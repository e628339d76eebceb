/* format.h -- descriptors of the number formats fplab emulates */
#ifndef FPL_FORMAT_H
#define FPL_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* What kind of numbers a format holds. */
typedef enum {
    FPL_KIND_FLOAT = 0, /* binary floating point: sign, exponent, mantissa */
    FPL_KIND_INT = 1    /* two's complement or unsigned integers */
} fpl_kind_t;

/* How a floating-point format spends its special encodings. */
typedef enum {
    FPL_SPECIALS_IEEE = 0, /* all-ones exponent: inf (mantissa 0) and NaN */
    FPL_SPECIALS_FN = 1,   /* finite: no inf; NaN = all-ones exponent and
                              mantissa (OCP E4M3, float8_e4m3fn) */
    FPL_SPECIALS_FNUZ = 2, /* finite, unsigned zero: one NaN at the
                              negative-zero encoding, no -0 */
    FPL_SPECIALS_NONE = 3  /* every encoding is a finite number (FP6, FP4) */
} fpl_specials_t;

/* What a conversion does with a value beyond the largest finite number. */
typedef enum {
    FPL_OVERFLOW_INF = 0,     /* +-inf (IEEE) */
    FPL_OVERFLOW_NAN = 1,     /* NaN (float8_e4m3fn, FNUZ formats) */
    FPL_OVERFLOW_SATURATE = 2 /* +-largest finite (hardware satfinite) */
} fpl_overflow_t;

/* A number format.  Fill it with fpl_format_parse (names and generic
 * spellings) or fpl_format_float / fpl_format_int; the derived fields at the
 * end are computed by those calls and must not be edited by hand.  The
 * struct is plain data: copy it freely. */
typedef struct {
    char name[64];          /* canonical spelling, e.g. "e4m3" */
    fpl_kind_t kind;
    int has_sign;           /* 0 for e8m0 and unsigned integers */
    int ebits, mbits;       /* float: exponent and mantissa field widths */
    int bias;               /* float: exponent bias */
    int subnormals;         /* float: 1 if exponent field 0 holds subnormals */
    int has_zero;           /* float: 0 only for e8m0 (every code is 2^k) */
    fpl_specials_t specials;
    fpl_overflow_t overflow;
    int ibits;              /* int: width in bits */

    /* derived */
    int nbits;              /* bits per encoding */
    int emin, emax;         /* float: unbiased exponents of the smallest and
                               largest binade holding normal numbers */
    double max_finite;      /* largest finite value */
    double min_finite;      /* most negative finite value */
    double min_normal;      /* smallest positive normal (float) */
    double min_positive;    /* smallest positive value */
    double unit_roundoff;   /* u = 2^-p for p = mbits + 1 (float); 0.5 (int) */
    int has_inf, has_nan, has_negzero;
} fpl_format_t;

/* Parse a format name into *f.  Accepted: the named presets listed by
 * fpl_format_preset (fp64, fp32, tf32, fp16, bf16, e4m3, e5m2, e4m3fnuz,
 * e5m2fnuz, e4m3b11fnuz, e3m2, e2m3, e2m1, e8m0, int8, uint8, int4, uint4,
 * int2, uint2) and their ml_dtypes / PyTorch aliases (float8_e4m3fn,
 * bfloat16, float32, ...); the generic spelling
 *   fp:e=E,m=M[,bias=B][,ieee|fn|fnuz|nospecials][,nosub][,ovf=inf|nan|sat]
 * with 1 <= E <= 11, 0 <= M <= 52; and int:b=N[,unsigned] with 2 <= N <= 32.
 * Names are case-insensitive.  Returns 0, or FPL_EINVAL with a message
 * (fpl_last_error) naming the problem. */
int fpl_format_parse(const char *spec, fpl_format_t *f);

/* Build a floating-point format from its fields and check it.  `bias` < 0
 * selects the IEEE bias 2^(ebits-1) - 1.  The format must fit inside binary64
 * (every value a double).  Returns 0 or FPL_EINVAL. */
int fpl_format_float(fpl_format_t *f, int ebits, int mbits, int bias,
                     int subnormals, fpl_specials_t specials,
                     fpl_overflow_t overflow);

/* Build an integer format of `bits` bits (2..32), signed or not.  Integers
 * always saturate. */
int fpl_format_int(fpl_format_t *f, int bits, int is_signed);

/* Change the overflow policy.  FPL_OVERFLOW_INF needs a format with
 * infinities, FPL_OVERFLOW_NAN one with a NaN; integers only saturate.
 * Returns 0 or FPL_EINVAL. */
int fpl_format_set_overflow(fpl_format_t *f, fpl_overflow_t overflow);

/* Parse "inf", "nan" or "saturate" ("sat"). Returns 0 or FPL_EINVAL. */
int fpl_overflow_parse(const char *s, fpl_overflow_t *out);
const char *fpl_overflow_name(fpl_overflow_t o);
const char *fpl_specials_name(fpl_specials_t s);

/* The named presets, in display order: returns the canonical name of preset
 * i (0-based) and, in *aliases if not NULL, a space-separated list of its
 * accepted aliases ("" if none); NULL once i is past the end. */
const char *fpl_format_preset(size_t i, const char **aliases);

/* The value of encoding `code` (the low nbits bits are used).  NaN for NaN
 * encodings.  For formats without subnormals, encodings with a zero exponent
 * field and a non-zero mantissa are not canonical and decode to a signed
 * zero, as flush-to-zero hardware reads them. */
double fpl_format_decode(const fpl_format_t *f, uint64_t code);

/* The encoding of v, which must be a value of the format (NaN and, where
 * the format has them, +-inf included).  Returns 0, or FPL_ERANGE when v is
 * not exactly representable (e.g. NaN in a format without NaN). */
int fpl_format_encode(const fpl_format_t *f, double v, uint64_t *code);

/* 1 if v is exactly a value of the format (+-inf included where the format
 * has infinities; NaN never), else 0. */
int fpl_format_contains(const fpl_format_t *f, double v);

#endif /* FPL_FORMAT_H */
