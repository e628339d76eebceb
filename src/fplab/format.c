/* format.c -- format descriptors: presets, parsing, encode and decode */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "format.h"
#include "internal.h"

double fpl__pow2(int e)
{
    if (e >= -1022)
        return fpl__double((uint64_t)(e + 1023) << 52);
    return fpl__double((uint64_t)1 << (e + 1074)); /* subnormal double */
}

/* ---- presets ---------------------------------------------------------- */

enum { P_FLOAT, P_INT, P_E8M0 };

typedef struct {
    const char *name;
    const char *aliases;
    int kind;
    int ebits, mbits, bias; /* bias -1: IEEE default */
    fpl_specials_t specials;
    int is_signed; /* ints */
} preset_t;

static const preset_t presets[] = {
    {"fp64", "float64 double binary64", P_FLOAT, 11, 52, -1, FPL_SPECIALS_IEEE, 0},
    {"fp32", "float32 float binary32", P_FLOAT, 8, 23, -1, FPL_SPECIALS_IEEE, 0},
    {"tf32", "tensorfloat32", P_FLOAT, 8, 10, -1, FPL_SPECIALS_IEEE, 0},
    {"fp16", "float16 half binary16", P_FLOAT, 5, 10, -1, FPL_SPECIALS_IEEE, 0},
    {"bf16", "bfloat16", P_FLOAT, 8, 7, -1, FPL_SPECIALS_IEEE, 0},
    {"e4m3", "float8_e4m3fn e4m3fn fp8_e4m3", P_FLOAT, 4, 3, 7, FPL_SPECIALS_FN, 0},
    {"e5m2", "float8_e5m2 fp8_e5m2", P_FLOAT, 5, 2, 15, FPL_SPECIALS_IEEE, 0},
    {"e4m3fnuz", "float8_e4m3fnuz", P_FLOAT, 4, 3, 8, FPL_SPECIALS_FNUZ, 0},
    {"e5m2fnuz", "float8_e5m2fnuz", P_FLOAT, 5, 2, 16, FPL_SPECIALS_FNUZ, 0},
    {"e4m3b11fnuz", "float8_e4m3b11fnuz", P_FLOAT, 4, 3, 11, FPL_SPECIALS_FNUZ, 0},
    {"e3m2", "float6_e3m2fn fp6_e3m2", P_FLOAT, 3, 2, 3, FPL_SPECIALS_NONE, 0},
    {"e2m3", "float6_e2m3fn fp6_e2m3", P_FLOAT, 2, 3, 1, FPL_SPECIALS_NONE, 0},
    {"e2m1", "float4_e2m1fn fp4_e2m1 fp4", P_FLOAT, 2, 1, 1, FPL_SPECIALS_NONE, 0},
    {"e8m0", "float8_e8m0fnu e8m0fnu", P_E8M0, 8, 0, 127, FPL_SPECIALS_FN, 0},
    {"int8", "i8", P_INT, 8, 0, 0, 0, 1},
    {"uint8", "u8", P_INT, 8, 0, 0, 0, 0},
    {"int4", "i4", P_INT, 4, 0, 0, 0, 1},
    {"uint4", "u4", P_INT, 4, 0, 0, 0, 0},
    {"int2", "i2", P_INT, 2, 0, 0, 0, 1},
    {"uint2", "u2", P_INT, 2, 0, 0, 0, 0},
};
#define NPRESETS (sizeof presets / sizeof presets[0])

const char *fpl_format_preset(size_t i, const char **aliases)
{
    if (i >= NPRESETS)
        return NULL;
    if (aliases)
        *aliases = presets[i].aliases;
    return presets[i].name;
}

const char *fpl_overflow_name(fpl_overflow_t o)
{
    switch (o) {
    case FPL_OVERFLOW_INF: return "inf";
    case FPL_OVERFLOW_NAN: return "nan";
    case FPL_OVERFLOW_SATURATE: return "saturate";
    }
    return "?";
}

const char *fpl_specials_name(fpl_specials_t s)
{
    switch (s) {
    case FPL_SPECIALS_IEEE: return "ieee";
    case FPL_SPECIALS_FN: return "fn";
    case FPL_SPECIALS_FNUZ: return "fnuz";
    case FPL_SPECIALS_NONE: return "none";
    }
    return "?";
}

int fpl_overflow_parse(const char *s, fpl_overflow_t *out)
{
    if (!strcmp(s, "inf"))
        *out = FPL_OVERFLOW_INF;
    else if (!strcmp(s, "nan"))
        *out = FPL_OVERFLOW_NAN;
    else if (!strcmp(s, "saturate") || !strcmp(s, "sat"))
        *out = FPL_OVERFLOW_SATURATE;
    else
        return fpl__fail(FPL_EINVAL,
                         "unknown overflow policy '%s' (expected inf, nan or saturate)", s);
    return FPL_OK;
}

/* ---- construction ----------------------------------------------------- */

static fpl_overflow_t default_overflow(fpl_specials_t s)
{
    switch (s) {
    case FPL_SPECIALS_IEEE: return FPL_OVERFLOW_INF;
    case FPL_SPECIALS_FN:
    case FPL_SPECIALS_FNUZ: return FPL_OVERFLOW_NAN;
    case FPL_SPECIALS_NONE: return FPL_OVERFLOW_SATURATE;
    }
    return FPL_OVERFLOW_SATURATE;
}

/* The generic spelling of a float format; it names every field that is not
 * the default, so parsing it gives the same format back. */
static void generic_name(fpl_format_t *f)
{
    int n = snprintf(f->name, sizeof f->name, "fp:e=%d,m=%d", f->ebits, f->mbits);
    if (f->bias != (1 << (f->ebits - 1)) - 1)
        n += snprintf(f->name + n, sizeof f->name - n, ",bias=%d", f->bias);
    if (f->specials != FPL_SPECIALS_IEEE)
        n += snprintf(f->name + n, sizeof f->name - n, ",%s",
                      f->specials == FPL_SPECIALS_NONE ? "nospecials"
                                                       : fpl_specials_name(f->specials));
    if (!f->subnormals)
        n += snprintf(f->name + n, sizeof f->name - n, ",nosub");
    if (f->overflow != default_overflow(f->specials))
        snprintf(f->name + n, sizeof f->name - n, ",ovf=%s",
                 f->overflow == FPL_OVERFLOW_SATURATE ? "sat" : fpl_overflow_name(f->overflow));
}

int fpl_format_set_overflow(fpl_format_t *f, fpl_overflow_t o)
{
    if (f->kind == FPL_KIND_INT && o != FPL_OVERFLOW_SATURATE)
        return fpl__fail(FPL_EINVAL, "integer format %s only saturates", f->name);
    if (o == FPL_OVERFLOW_INF && !f->has_inf)
        return fpl__fail(FPL_EINVAL, "format %s has no infinity, so overflow cannot be 'inf'",
                         f->name);
    if (o == FPL_OVERFLOW_NAN && !f->has_nan)
        return fpl__fail(FPL_EINVAL, "format %s has no NaN, so overflow cannot be 'nan'",
                         f->name);
    f->overflow = o;
    if (f->kind == FPL_KIND_FLOAT && !strncmp(f->name, "fp:", 3))
        generic_name(f); /* keep the spelling true (named presets keep their name) */
    return FPL_OK;
}

/* Fill the derived fields of a float format; check it fits binary64. */
static int float_finish(fpl_format_t *f)
{
    int E = f->ebits, M = f->mbits, B = f->bias;
    int topfield = (1 << E) - 1;
    double gap = 1.0; /* the largest finite value is (2 - gap*2^-M) * 2^emax */

    f->nbits = f->has_sign + E + M;
    f->emin = f->has_zero ? 1 - B : -B;
    if (f->specials == FPL_SPECIALS_IEEE) {
        topfield -= 1; /* all-ones exponent: inf and NaN */
    } else if (f->specials == FPL_SPECIALS_FN) {
        if (M == 0)
            topfield -= 1; /* the all-ones code is NaN; the binade below is 2^emax */
        else
            gap = 2.0; /* all-ones exponent and mantissa is NaN */
    }
    if (topfield < (f->has_zero ? 1 : 0))
        return fpl__fail(FPL_EINVAL, "format %s has no normal numbers", f->name);
    f->emax = topfield - B;
    if (f->emax > 1023)
        return fpl__fail(FPL_EINVAL, "format %s exceeds the range of binary64 (bias too small)",
                         f->name);
    if (f->emin - M < -1074) /* the quantum of the smallest normals, with or without subnormals */
        return fpl__fail(FPL_EINVAL,
                         "format %s reaches below binary64's smallest subnormal (bias too large)",
                         f->name);
    f->max_finite = M == 0 ? ldexp(1.0, f->emax) : ldexp(2.0 - ldexp(gap, -M), f->emax);
    f->min_finite = f->has_sign ? -f->max_finite : (f->has_zero ? 0.0 : ldexp(1.0, f->emin));
    f->min_normal = ldexp(1.0, f->emin);
    f->min_positive = ldexp(1.0, f->emin - (f->subnormals ? M : 0));
    f->unit_roundoff = ldexp(1.0, -(M + 1));
    f->has_inf = f->specials == FPL_SPECIALS_IEEE;
    f->has_nan = (f->specials == FPL_SPECIALS_IEEE && M >= 1) || f->specials == FPL_SPECIALS_FN ||
                 f->specials == FPL_SPECIALS_FNUZ;
    f->has_negzero = f->has_sign && f->has_zero && f->specials != FPL_SPECIALS_FNUZ;
    return fpl_format_set_overflow(f, f->overflow);
}

int fpl_format_float(fpl_format_t *f, int ebits, int mbits, int bias, int subnormals,
                     fpl_specials_t specials, fpl_overflow_t overflow)
{
    if (ebits < 1 || ebits > 11)
        return fpl__fail(FPL_EINVAL, "exponent width %d out of range (1 to 11)", ebits);
    if (mbits < 0 || mbits > 52)
        return fpl__fail(FPL_EINVAL, "mantissa width %d out of range (0 to 52)", mbits);
    memset(f, 0, sizeof *f);
    f->kind = FPL_KIND_FLOAT;
    f->has_sign = 1;
    f->has_zero = 1;
    f->ebits = ebits;
    f->mbits = mbits;
    f->bias = bias < 0 ? (1 << (ebits - 1)) - 1 : bias;
    f->subnormals = subnormals ? 1 : 0;
    f->specials = specials;
    f->overflow = overflow;
    generic_name(f);
    return float_finish(f);
}

int fpl_format_int(fpl_format_t *f, int bits, int is_signed)
{
    if (bits < 2 || bits > 32)
        return fpl__fail(FPL_EINVAL, "integer width %d out of range (2 to 32)", bits);
    memset(f, 0, sizeof *f);
    f->kind = FPL_KIND_INT;
    f->ibits = f->nbits = bits;
    f->has_sign = is_signed ? 1 : 0;
    f->has_zero = 1;
    f->specials = FPL_SPECIALS_NONE;
    f->overflow = FPL_OVERFLOW_SATURATE;
    if (bits == 2 || bits == 4 || bits == 8) /* the named presets */
        snprintf(f->name, sizeof f->name, "%sint%d", is_signed ? "" : "u", bits);
    else /* a spelling that parses back */
        snprintf(f->name, sizeof f->name, "int:b=%d%s", bits, is_signed ? "" : ",unsigned");
    if (is_signed) {
        f->max_finite = ldexp(1.0, bits - 1) - 1.0;
        f->min_finite = -ldexp(1.0, bits - 1);
    } else {
        f->max_finite = ldexp(1.0, bits) - 1.0;
        f->min_finite = 0.0;
    }
    f->min_normal = f->min_positive = 1.0;
    f->unit_roundoff = 0.5; /* absolute: rounding to nearest moves by <= 1/2 */
    return FPL_OK;
}

static int from_preset(const preset_t *p, fpl_format_t *f)
{
    int st;
    if (p->kind == P_INT) {
        st = fpl_format_int(f, p->ebits, p->is_signed);
    } else {
        st = fpl_format_float(f, p->ebits, p->mbits, p->bias, p->kind != P_E8M0, p->specials,
                              default_overflow(p->specials));
        if (st == FPL_OK && p->kind == P_E8M0) {
            /* e8m0: no sign bit, no zero; the exponent field 0 is 2^-127 */
            f->has_sign = 0;
            f->has_zero = 0;
            st = float_finish(f);
        }
    }
    if (st == FPL_OK)
        snprintf(f->name, sizeof f->name, "%s", p->name);
    return st;
}

/* ---- parsing ---------------------------------------------------------- */

static int name_in_list(const char *name, const char *list)
{
    size_t n = strlen(name);
    const char *s = list;
    while (*s) {
        const char *e = strchr(s, ' ');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == n && !strncmp(s, name, n))
            return 1;
        if (!e)
            break;
        s = e + 1;
    }
    return 0;
}

static int parse_int_value(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

static int parse_generic_float(const char *spec, const char *body, fpl_format_t *f)
{
    long e = -1, m = -1, bias = -1;
    int sub = 1, have_ovf = 0;
    fpl_specials_t sp = FPL_SPECIALS_IEEE;
    fpl_overflow_t ovf = FPL_OVERFLOW_INF;
    char buf[128];
    if (strlen(body) >= sizeof buf)
        return fpl__fail(FPL_EINVAL, "format spelling '%s' is too long", spec);
    strcpy(buf, body);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (!strncmp(tok, "e=", 2)) {
            if (!parse_int_value(tok + 2, 1, 11, &e))
                return fpl__fail(FPL_EINVAL, "in '%s': exponent width must be 1 to 11", spec);
        } else if (!strncmp(tok, "m=", 2)) {
            if (!parse_int_value(tok + 2, 0, 52, &m))
                return fpl__fail(FPL_EINVAL, "in '%s': mantissa width must be 0 to 52", spec);
        } else if (!strncmp(tok, "bias=", 5)) {
            if (!parse_int_value(tok + 5, -2000, 2000, &bias))
                return fpl__fail(FPL_EINVAL, "in '%s': bad bias '%s'", spec, tok + 5);
        } else if (!strcmp(tok, "ieee")) {
            sp = FPL_SPECIALS_IEEE;
        } else if (!strcmp(tok, "fn")) {
            sp = FPL_SPECIALS_FN;
        } else if (!strcmp(tok, "fnuz")) {
            sp = FPL_SPECIALS_FNUZ;
        } else if (!strcmp(tok, "nospecials") || !strcmp(tok, "none")) {
            sp = FPL_SPECIALS_NONE;
        } else if (!strcmp(tok, "nosub")) {
            sub = 0;
        } else if (!strcmp(tok, "sub")) {
            sub = 1;
        } else if (!strcmp(tok, "sat")) {
            ovf = FPL_OVERFLOW_SATURATE;
            have_ovf = 1;
        } else if (!strncmp(tok, "ovf=", 4)) {
            if (fpl_overflow_parse(tok + 4, &ovf))
                return fpl__fail(FPL_EINVAL, "in '%s': %s", spec, fpl_last_error());
            have_ovf = 1;
        } else {
            return fpl__fail(FPL_EINVAL,
                             "in '%s': unknown field '%s' (expected e=, m=, bias=, ieee, fn, "
                             "fnuz, nospecials, nosub, ovf=)", spec, tok);
        }
    }
    if (e < 0 || m < 0)
        return fpl__fail(FPL_EINVAL, "in '%s': both e= and m= are required", spec);
    if (bias < 0 && bias != -1)
        return fpl__fail(FPL_EINVAL, "in '%s': bias must be >= 0", spec);
    if (!have_ovf)
        ovf = default_overflow(sp);
    return fpl_format_float(f, (int)e, (int)m, (int)bias, sub, sp, ovf);
}

static int parse_generic_int(const char *spec, const char *body, fpl_format_t *f)
{
    long b = -1;
    int sgn = 1;
    char buf[64];
    if (strlen(body) >= sizeof buf)
        return fpl__fail(FPL_EINVAL, "format spelling '%s' is too long", spec);
    strcpy(buf, body);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (!strncmp(tok, "b=", 2)) {
            if (!parse_int_value(tok + 2, 2, 32, &b))
                return fpl__fail(FPL_EINVAL, "in '%s': integer width must be 2 to 32", spec);
        } else if (!strcmp(tok, "unsigned")) {
            sgn = 0;
        } else if (!strcmp(tok, "signed")) {
            sgn = 1;
        } else {
            return fpl__fail(FPL_EINVAL, "in '%s': unknown field '%s' (expected b=, signed, unsigned)",
                             spec, tok);
        }
    }
    if (b < 0)
        return fpl__fail(FPL_EINVAL, "in '%s': b= is required", spec);
    return fpl_format_int(f, (int)b, sgn);
}

int fpl_format_parse(const char *spec, fpl_format_t *f)
{
    char low[128];
    size_t n = spec ? strlen(spec) : 0;
    if (n == 0)
        return fpl__fail(FPL_EINVAL, "empty format name");
    if (n >= sizeof low)
        return fpl__fail(FPL_EINVAL, "format name too long");
    for (size_t i = 0; i <= n; i++)
        low[i] = (char)tolower((unsigned char)spec[i]);
    for (size_t i = 0; i < NPRESETS; i++)
        if (!strcmp(low, presets[i].name) || name_in_list(low, presets[i].aliases))
            return from_preset(&presets[i], f);
    if (!strncmp(low, "fp:", 3))
        return parse_generic_float(spec, low + 3, f);
    if (!strncmp(low, "int:", 4))
        return parse_generic_int(spec, low + 4, f);
    return fpl__fail(FPL_EINVAL,
                     "unknown format '%s' (see 'fplab formats'; generic: fp:e=E,m=M[,fn|fnuz|...])",
                     spec);
}

/* ---- encode / decode -------------------------------------------------- */

static uint64_t mask_bits(int n) { return n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1); }

double fpl_format_decode(const fpl_format_t *f, uint64_t code)
{
    code &= mask_bits(f->nbits);
    if (f->kind == FPL_KIND_INT) {
        if (f->has_sign && (code >> (f->ibits - 1)) & 1)
            return (double)code - ldexp(1.0, f->ibits);
        return (double)code;
    }
    int E = f->ebits, M = f->mbits;
    uint64_t emask = mask_bits(E), mmask = mask_bits(M);
    int neg = f->has_sign ? (int)((code >> (E + M)) & 1) : 0;
    uint64_t ef = (code >> M) & emask, mf = code & mmask;
    double v;
    switch (f->specials) {
    case FPL_SPECIALS_IEEE:
        if (ef == emask)
            return mf ? NAN : (neg ? -INFINITY : INFINITY);
        break;
    case FPL_SPECIALS_FN:
        if (ef == emask && mf == mmask)
            return NAN;
        break;
    case FPL_SPECIALS_FNUZ:
        if (code == (uint64_t)1 << (f->nbits - 1))
            return NAN;
        break;
    case FPL_SPECIALS_NONE: break;
    }
    if (f->has_zero && ef == 0)
        v = f->subnormals ? ldexp((double)mf, f->emin - M) : 0.0;
    else
        v = ldexp((double)(mf | ((uint64_t)1 << M)), (int)ef - f->bias - M);
    if (v == 0 && !f->has_negzero)
        return 0.0; /* FNUZ without subnormals: no -0 to read */
    return neg ? -v : v;
}

/* 1 if a*2^k is an integer (a >= 0 finite, scaling exact). */
static int is_integer_scaled(double a, int k)
{
    double r = ldexp(a, k);
    return r == floor(r);
}

int fpl_format_contains(const fpl_format_t *f, double v)
{
    if (isnan(v))
        return 0;
    if (isinf(v))
        return f->has_inf && (v > 0 || f->has_sign);
    if (f->kind == FPL_KIND_INT)
        return v == floor(v) && v >= f->min_finite && v <= f->max_finite;
    double a = fabs(v);
    if (signbit(v) && !f->has_sign)
        return 0;
    if (a == 0)
        return f->has_zero;
    if (a > f->max_finite)
        return 0;
    if (a < f->min_normal) {
        if (!f->has_zero || !f->subnormals)
            return 0;
        return is_integer_scaled(a, f->mbits - f->emin);
    }
    return is_integer_scaled(a, f->mbits - ilogb(a));
}

int fpl_format_encode(const fpl_format_t *f, double v, uint64_t *code)
{
    int E = f->ebits, M = f->mbits;
    uint64_t signbit_ = f->has_sign ? (uint64_t)1 << (f->nbits - 1) : 0;
    if (isnan(v)) {
        if (!f->has_nan)
            return fpl__fail(FPL_ERANGE, "format %s has no NaN", f->name);
        if (f->specials == FPL_SPECIALS_FNUZ)
            *code = (uint64_t)1 << (f->nbits - 1);
        else if (f->specials == FPL_SPECIALS_FN)
            *code = mask_bits(E + M) | (signbit(v) ? signbit_ : 0);
        else /* IEEE quiet NaN */
            *code = (mask_bits(E) << M) | ((uint64_t)1 << (M - 1)) | (signbit(v) ? signbit_ : 0);
        return FPL_OK;
    }
    if (isinf(v)) {
        if (!f->has_inf)
            return fpl__fail(FPL_ERANGE, "format %s has no infinity", f->name);
        *code = (mask_bits(E) << M) | (v < 0 ? signbit_ : 0);
        return FPL_OK;
    }
    if (v == 0 && f->specials == FPL_SPECIALS_FNUZ)
        v = 0.0; /* no -0: -0 encodes as +0 */
    if (!fpl_format_contains(f, v))
        return fpl__fail(FPL_ERANGE, "%a is not a value of format %s", v, f->name);
    if (f->kind == FPL_KIND_INT) {
        *code = (uint64_t)(int64_t)v & mask_bits(f->ibits);
        return FPL_OK;
    }
    double a = fabs(v);
    uint64_t ef, mf;
    if (a == 0) {
        ef = mf = 0;
    } else if (a < f->min_normal) {
        ef = 0;
        mf = (uint64_t)ldexp(a, M - f->emin);
    } else {
        int x = ilogb(a);
        ef = (uint64_t)(x + f->bias);
        mf = (uint64_t)ldexp(a, M - x) - ((uint64_t)1 << M);
    }
    *code = (ef << M) | mf | (signbit(v) ? signbit_ : 0);
    return FPL_OK;
}
