/* round.c -- fast bit-level rounding and the MPFR reference rounding */
#include <fenv.h>
#include <math.h>
#include <string.h>

#include "error.h"
#include "internal.h"
#include "round.h"
#include "round_impl.h"

/* ---- modes and the stochastic stream ---------------------------------- */

static const char *const mode_names[FPL_NMODES] = {"rne", "rna", "rtz", "rup", "rdown", "sr"};

int fpl_rmode_parse(const char *s, fpl_rmode_t *mode)
{
    for (int i = 0; i < FPL_NMODES; i++)
        if (!strcmp(s, mode_names[i])) {
            *mode = (fpl_rmode_t)i;
            return FPL_OK;
        }
    return fpl__fail(FPL_EINVAL,
                     "unknown rounding mode '%s' (expected rne, rna, rtz, rup, rdown or sr)", s);
}

const char *fpl_rmode_name(fpl_rmode_t mode)
{
    return (unsigned)mode < FPL_NMODES ? mode_names[mode] : "?";
}

void fpl_sr_seed(fpl_sr_t *sr, uint64_t seed)
{
    sr->key = splitmix64(seed + SM_GAMMA); /* decorrelate nearby seeds */
    sr->counter = 0;
}

void fpl_sr_seed_gsl(fpl_sr_t *sr, gsl_rng *rng)
{
    /* gsl_rng_get may give fewer than 32 bits: take 16 at a time */
    uint64_t k = 0;
    for (int i = 0; i < 4; i++)
        k = (k << 16) | (uint64_t)gsl_rng_uniform_int(rng, 65536);
    fpl_sr_seed(sr, k);
}

uint64_t fpl_sr_at(const fpl_sr_t *sr, uint64_t index) { return sr_at(sr, index); }

uint64_t fpl_sr_next(fpl_sr_t *sr)
{
    return fpl_sr_at(sr, sr->counter++);
}

double fpl_round(const fpl_format_t *f, double x, fpl_rmode_t mode, fpl_sr_t *sr)
{
    uint64_t u = 0;
    if (mode == FPL_SR)
        u = sr ? fpl_sr_next(sr) : 0;
    if (f->kind == FPL_KIND_INT)
        return round_int_one(f, x, mode, u);
    fparams_t P;
    fparams_init(&P, f);
    return round_float_one(&P, x, mode, u);
}


/* ---- the AVX2 kernel ------------------------------------------------------
 * The same algorithm as round_float_one, four doubles at a time: variable
 * 64-bit shifts (vpsrlvq/vpsllvq) keep the significand arithmetic exact, the
 * result is composed from bits, and lanes holding inf or NaN are redone by
 * the scalar code.  Used for formats with a sign and a zero whose smallest
 * normal is a normal double (every named format but fp64, e8m0, integers). */
#if defined(__x86_64__) && defined(__GNUC__)
#define FPL_HAVE_AVX2_KERNEL 1
#include <immintrin.h>

#include <cpuid.h>
#include <stdatomic.h>
#include <unistd.h>

#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2")))

/* Low 64 bits of a * b for a constant b = bhi * 2^32 + blo (AVX2 has no
 * vpmullq): lo(a)*blo + ((hi(a)*blo + lo(a)*bhi) << 32), from three
 * 32x32->64-bit products; bhi is passed pre-shifted so no lane moves. */
AVX2_INLINE __m256i mullo64c(__m256i a, __m256i b, __m256i bhi)
{
    __m256i lo = _mm256_mul_epu32(a, b);
    __m256i c1 = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), b);
    __m256i c2 = _mm256_mul_epu32(a, bhi);
    return _mm256_add_epi64(lo, _mm256_slli_epi64(_mm256_add_epi64(c1, c2), 32));
}

/* splitmix64's output function on four states at once: the same bits as
 * splitmix64() in round_impl.h, lane by lane. */
AVX2_INLINE __m256i splitmix64_x4(__m256i z)
{
    const __m256i M1 = _mm256_set1_epi64x((long long)0xbf58476d1ce4e5b9ULL);
    const __m256i M1H = _mm256_set1_epi64x((long long)(0xbf58476d1ce4e5b9ULL >> 32));
    const __m256i M2 = _mm256_set1_epi64x((long long)0x94d049bb133111ebULL);
    const __m256i M2H = _mm256_set1_epi64x((long long)(0x94d049bb133111ebULL >> 32));
    z = mullo64c(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), M1, M1H);
    z = mullo64c(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), M2, M2H);
    return _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
}

/* Store four results; lanes whose input was inf or NaN (spec) take the
 * scalar rule first.  Streaming stores bypass the cache. */
AVX2_INLINE void store4(const fparams_t *P, const double *in, double *out, __m256d res,
                        __m256i spec, const int stream)
{
    if (__builtin_expect(!_mm256_testz_si256(spec, spec), 0)) {
        double tmp[4];
        _mm256_storeu_pd(tmp, res);
        for (int j = 0; j < 4; j++)
            if (!isfinite(in[j]))
                tmp[j] = isnan(in[j]) ? NAN : (in[j] < 0 ? P->inf_neg : P->inf_pos);
        res = _mm256_loadu_pd(tmp);
    }
    if (stream)
        _mm256_stream_pd(out, res);
    else
        _mm256_storeu_pd(out, res);
}

AVX2_INLINE size_t avx2_loop(const fparams_t *P, const double *in, double *out, size_t n,
                             const fpl_rmode_t mode, const int stream)
{
    const __m256i SIGN = _mm256_set1_epi64x((long long)SIGN_BIT);
    const __m256i MANT = _mm256_set1_epi64x((long long)MANT52);
    const __m256i IMPL = _mm256_set1_epi64x(1LL << 52);
    const __m256i ONE = _mm256_set1_epi64x(1), ZERO = _mm256_setzero_si256();
    const __m256i ALL = _mm256_set1_epi64x(-1);
    const __m256i C63 = _mm256_set1_epi64x(63);
    const __m256i C2047 = _mm256_set1_epi64x(2047);
    const __m256i EMINB1 = _mm256_set1_epi64x(P->emin_b - 1);
    const __m256i SNORM = _mm256_set1_epi64x(52 - P->m);
    const __m256i QSUB1075 = _mm256_set1_epi64x(P->qsub + 1075);
    const __m256i SHSUB = _mm256_set1_epi64x(P->shsub);
    const __m256i BSUB = _mm256_set1_epi64x((long long)P->bsub);
    const __m256i DSUB = _mm256_set1_epi64x((long long)fpl__bits(P->dsub));
    const __m256d MAX = _mm256_set1_pd(P->max), OVF = _mm256_set1_pd(P->ovf);
    const int fnuz = P->f->specials == FPL_SPECIALS_FNUZ;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i b = _mm256_castpd_si256(_mm256_loadu_pd(in + i));
        __m256i sgn = _mm256_and_si256(b, SIGN);
        __m256i a = _mm256_andnot_si256(SIGN, b);
        __m256i e = _mm256_srli_epi64(a, 52);
        __m256i ezero = _mm256_cmpeq_epi64(e, ZERO);
        __m256i ee = _mm256_sub_epi64(e, ezero);
        __m256i sig = _mm256_or_si256(_mm256_and_si256(a, MANT), _mm256_andnot_si256(ezero, IMPL));
        __m256i normal = _mm256_cmpgt_epi64(ee, EMINB1);
        __m256i s = _mm256_blendv_epi8(_mm256_sub_epi64(QSUB1075, ee), SNORM, normal);
        __m256i sc = _mm256_blendv_epi8(s, C63, _mm256_cmpgt_epi64(s, C63));
        __m256i t = _mm256_srlv_epi64(sig, sc);
        __m256i pw = _mm256_sllv_epi64(ONE, sc);
        __m256i rem = _mm256_and_si256(sig, _mm256_sub_epi64(pw, ONE));
        __m256i half = _mm256_srli_epi64(pw, 1);
        __m256i remnz = _mm256_xor_si256(_mm256_cmpeq_epi64(rem, ZERO), ALL);
        __m256i neg = _mm256_cmpgt_epi64(ZERO, b);
        __m256i inc, up;
        switch (mode) {
        case FPL_RNE:
            inc = _mm256_andnot_si256(_mm256_cmpeq_epi64(sc, ZERO),
                                      _mm256_cmpgt_epi64(_mm256_add_epi64(rem, _mm256_and_si256(t, ONE)), half));
            up = ALL;
            break;
        case FPL_RNA:
            inc = _mm256_andnot_si256(_mm256_cmpgt_epi64(half, rem), remnz);
            up = ALL;
            break;
        case FPL_RTZ:
            inc = ZERO;
            up = ZERO;
            break;
        case FPL_RUP:
            inc = _mm256_andnot_si256(neg, remnz);
            up = _mm256_xor_si256(neg, ALL);
            break;
        case FPL_RDOWN:
            inc = _mm256_and_si256(neg, remnz);
            up = neg;
            break;
        default: /* FPL_SR has its own kernel, avx2_sr */
            inc = ZERO;
            up = ALL;
            break;
        }
        t = _mm256_sub_epi64(t, inc);
        __m256i base = _mm256_blendv_epi8(BSUB, _mm256_slli_epi64(_mm256_sub_epi64(ee, ONE), 52), normal);
        __m256i sh = _mm256_blendv_epi8(SHSUB, SNORM, normal);
        __m256d r = _mm256_castsi256_pd(_mm256_add_epi64(base, _mm256_sllv_epi64(t, sh)));
        r = _mm256_sub_pd(r, _mm256_castsi256_pd(_mm256_andnot_si256(normal, DSUB)));
        __m256d over = _mm256_cmp_pd(r, MAX, _CMP_GT_OQ);
        r = _mm256_blendv_pd(r, _mm256_blendv_pd(MAX, OVF, _mm256_castsi256_pd(up)), over);
        if (fnuz)
            sgn = _mm256_andnot_si256(_mm256_castpd_si256(_mm256_cmp_pd(r, _mm256_setzero_pd(), _CMP_EQ_OQ)), sgn);
        __m256d res = _mm256_castsi256_pd(_mm256_or_si256(_mm256_castpd_si256(r), sgn));
        store4(P, in + i, out + i, res, _mm256_cmpeq_epi64(e, C2047), stream);
    }
    if (stream)
        _mm_sfence();
    return i;
}

/* Stochastic rounding, four doubles at a time.  With s the number of
 * discarded bits, rem their value and u the draw, SR rounds up iff
 * u < rem * 2^(64-s), i.e. iff floor(u / 2^(64-s)) < rem (rem < 2^s), i.e. iff
 * rem + floor(~u / 2^(64-s)) carries into bit s: so the draw's complement,
 * shifted right, is added below the kept bits and the sum truncated, the
 * same bits as increment() in round_impl.h.  In the format's normal range s
 * is the constant 52 - m and this works on the bits of |x| directly (a carry
 * into the exponent is the next binade; beyond the top it reads as inf and
 * becomes the overflow value).  Below the smallest normal the quantum is
 * fixed: there the significand is shifted per lane.  Lanes with s >= 64 lie
 * 2^11 or more below that quantum: the sum truncates to 0, and since their
 * threshold is below 2^53 only a draw u < 2^53 (odds 2^-11) can round them
 * up; only then is the exact threshold computed. */
AVX2_INLINE size_t avx2_sr(const fparams_t *P, const double *in, double *out, size_t n,
                           uint64_t key, uint64_t c0, const int stream)
{
    const __m256i SIGN = _mm256_set1_epi64x((long long)SIGN_BIT);
    const __m256i MANT = _mm256_set1_epi64x((long long)MANT52);
    const __m256i IMPL = _mm256_set1_epi64x(1LL << 52);
    const __m256i ONE = _mm256_set1_epi64x(1), ZERO = _mm256_setzero_si256();
    const __m256i ALL = _mm256_set1_epi64x(-1);
    const __m256i C64 = _mm256_set1_epi64x(64);
    const __m256i EXP2047 = _mm256_set1_epi64x(0x7ff0000000000000LL);
    const __m256i EMINB1 = _mm256_set1_epi64x(P->emin_b - 1);
    const __m256i KEEP = _mm256_set1_epi64x((long long)~((1ULL << (52 - P->m)) - 1));
    const __m128i DSHIFT = _mm_cvtsi32_si128(12 + P->m);
    const __m128i SHSUB = _mm_cvtsi32_si128(P->shsub);
    const __m256i QSUB1075 = _mm256_set1_epi64x(P->qsub + 1075);
    const __m256i BSUB = _mm256_set1_epi64x((long long)P->bsub);
    const __m256d DSUB = _mm256_set1_pd(P->dsub);
    const __m256d MAX = _mm256_set1_pd(P->max), OVF = _mm256_set1_pd(P->ovf);
    const int fnuz = P->f->specials == FPL_SPECIALS_FNUZ;
    const __m256i STEP = _mm256_set1_epi64x((long long)(4 * SM_GAMMA));
    __m256i ctr = _mm256_set_epi64x(
        (long long)(key + (c0 + 4) * SM_GAMMA), (long long)(key + (c0 + 3) * SM_GAMMA),
        (long long)(key + (c0 + 2) * SM_GAMMA), (long long)(key + (c0 + 1) * SM_GAMMA));
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i b = _mm256_castpd_si256(_mm256_loadu_pd(in + i));
        __m256i sgn = _mm256_and_si256(b, SIGN);
        __m256i a = _mm256_xor_si256(b, sgn);
        __m256i u = splitmix64_x4(ctr);
        ctr = _mm256_add_epi64(ctr, STEP);
        __m256i nu = _mm256_xor_si256(u, ALL);
        /* the format's normal range and above */
        __m256i rn = _mm256_and_si256(_mm256_add_epi64(a, _mm256_srl_epi64(nu, DSHIFT)), KEEP);
        /* below it: t = (sig + floor(~u / 2^(64-s))) >> s, r = t * 2^qsub */
        __m256i e = _mm256_srli_epi64(a, 52);
        __m256i ezero = _mm256_cmpeq_epi64(e, ZERO);
        __m256i ee = _mm256_sub_epi64(e, ezero);
        __m256i sig = _mm256_or_si256(_mm256_and_si256(a, MANT), _mm256_andnot_si256(ezero, IMPL));
        __m256i s = _mm256_sub_epi64(QSUB1075, ee);
        __m256i t = _mm256_srlv_epi64(
            _mm256_add_epi64(sig, _mm256_srlv_epi64(nu, _mm256_sub_epi64(C64, s))), s);
        __m256i maybe = _mm256_andnot_si256(_mm256_cmpgt_epi64(C64, s),
                                            _mm256_cmpeq_epi64(_mm256_srli_epi64(u, 53), ZERO));
        if (__builtin_expect(!_mm256_testz_si256(maybe, maybe), 0)) {
            /* s >= 64 and u < 2^53: up iff u < sig (s = 64) or
             * u < ceil(sig / 2^(s-64)); both sides below 2^53 */
            __m256i k = _mm256_sub_epi64(s, C64);
            __m256i low = _mm256_and_si256(sig, _mm256_sub_epi64(_mm256_sllv_epi64(ONE, k), ONE));
            __m256i sticky = _mm256_andnot_si256(_mm256_cmpeq_epi64(low, ZERO), ONE);
            __m256i thr = _mm256_add_epi64(_mm256_srlv_epi64(sig, k), sticky);
            __m256i lt = _mm256_and_si256(maybe, _mm256_cmpgt_epi64(thr, u));
            t = _mm256_sub_epi64(t, lt); /* t was 0 in these lanes */
        }
        /* 2^emin + t * 2^qsub is a normal double; removing 2^emin is exact */
        __m256d rs = _mm256_sub_pd(
            _mm256_castsi256_pd(_mm256_add_epi64(BSUB, _mm256_sll_epi64(t, SHSUB))), DSUB);
        __m256d normal = _mm256_castsi256_pd(_mm256_cmpgt_epi64(ee, EMINB1));
        __m256d r = _mm256_blendv_pd(rs, _mm256_castsi256_pd(rn), normal);
        r = _mm256_blendv_pd(r, OVF, _mm256_cmp_pd(r, MAX, _CMP_GT_OQ));
        if (fnuz)
            sgn = _mm256_andnot_si256(
                _mm256_castpd_si256(_mm256_cmp_pd(r, _mm256_setzero_pd(), _CMP_EQ_OQ)), sgn);
        __m256d res = _mm256_castsi256_pd(_mm256_or_si256(_mm256_castpd_si256(r), sgn));
        store4(P, in + i, out + i, res, _mm256_cmpeq_epi64(_mm256_and_si256(b, EXP2047), EXP2047),
               stream);
    }
    if (stream)
        _mm_sfence();
    return i;
}

/* RNE for formats with subnormals, by the binary64 adder itself: with
 * c = +-2^(max(E, emin) + 52 - m), E the exponent of x, the sum x + c lies in
 * [|c|, 2|c|) where binary64's spacing is the format's quantum at x, so
 * (x + c) - c is x rounded to the format, to nearest even, exactly once (the
 * subtraction is exact).  E is capped two binades above emax: anything there
 * overflows anyway.  Needs the FP environment in round-to-nearest. */
AVX2_INLINE size_t avx2_rne_adder(const fparams_t *P, const double *in, double *out, size_t n,
                                  const int stream)
{
    const __m256i SIGN = _mm256_set1_epi64x((long long)SIGN_BIT);
    const __m256i EXPM = _mm256_set1_epi64x(0x7ff0000000000000LL);
    const __m256i LO = _mm256_set1_epi64x((long long)((uint64_t)P->emin_b << 52));
    const __m256i HI = _mm256_set1_epi64x((long long)((uint64_t)(P->f->emax + 1023 + 2) << 52));
    const __m256i OFF = _mm256_set1_epi64x((long long)((uint64_t)(52 - P->m) << 52));
    const __m256i C2047 = _mm256_set1_epi64x(0x7ff0000000000000LL);
    const __m256d MAX = _mm256_set1_pd(P->max), OVF = _mm256_set1_pd(P->ovf);
    const __m256d ABS = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    const int fnuz = P->f->specials == FPL_SPECIALS_FNUZ;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d x = _mm256_loadu_pd(in + i);
        __m256i b = _mm256_castpd_si256(x);
        __m256i sgn = _mm256_and_si256(b, SIGN);
        __m256i e = _mm256_and_si256(b, EXPM);
        e = _mm256_blendv_epi8(e, LO, _mm256_cmpgt_epi64(LO, e));
        e = _mm256_blendv_epi8(e, HI, _mm256_cmpgt_epi64(e, HI));
        __m256d c = _mm256_castsi256_pd(_mm256_or_si256(_mm256_add_epi64(e, OFF), sgn));
        __m256d r = _mm256_and_pd(_mm256_sub_pd(_mm256_add_pd(x, c), c), ABS);
        r = _mm256_blendv_pd(r, OVF, _mm256_cmp_pd(r, MAX, _CMP_GT_OQ));
        if (fnuz)
            sgn = _mm256_andnot_si256(_mm256_castpd_si256(_mm256_cmp_pd(r, _mm256_setzero_pd(), _CMP_EQ_OQ)), sgn);
        __m256d res = _mm256_castsi256_pd(_mm256_or_si256(_mm256_castpd_si256(r), sgn));
        store4(P, in + i, out + i, res, _mm256_cmpeq_epi64(_mm256_and_si256(b, EXPM), C2047),
               stream);
    }
    if (stream)
        _mm_sfence();
    return i;
}

/* ---- the AVX-512 kernel for SR ---------------------------------------------
 * avx2_sr eight lanes at a time, where the draw's 64-bit multiplies are
 * native (vpmullq) and blends are mask registers; the same bits. */
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f,avx512dq")))

AVX512_INLINE __m512i splitmix64_x8(__m512i z)
{
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                           _mm512_set1_epi64((long long)0xbf58476d1ce4e5b9ULL));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                           _mm512_set1_epi64((long long)0x94d049bb133111ebULL));
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

AVX512_INLINE size_t avx512_sr(const fparams_t *P, const double *in, double *out, size_t n,
                               uint64_t key, uint64_t c0, const int stream)
{
    const __m512i SIGN = _mm512_set1_epi64((long long)SIGN_BIT);
    const __m512i MANT = _mm512_set1_epi64((long long)MANT52);
    const __m512i IMPL = _mm512_set1_epi64(1LL << 52);
    const __m512i ONE = _mm512_set1_epi64(1), ZERO = _mm512_setzero_si512();
    const __m512i ALL = _mm512_set1_epi64(-1);
    const __m512i C63 = _mm512_set1_epi64(63), C64 = _mm512_set1_epi64(64);
    const __m512i EXP2047 = _mm512_set1_epi64(0x7ff0000000000000LL);
    const __m512i EMINB1 = _mm512_set1_epi64(P->emin_b - 1);
    const __m512i KEEP = _mm512_set1_epi64((long long)~((1ULL << (52 - P->m)) - 1));
    const __m128i DSHIFT = _mm_cvtsi32_si128(12 + P->m);
    const __m128i SHSUB = _mm_cvtsi32_si128(P->shsub);
    const __m512i QSUB1075 = _mm512_set1_epi64(P->qsub + 1075);
    const __m512i BSUB = _mm512_set1_epi64((long long)P->bsub);
    const __m512d DSUB = _mm512_set1_pd(P->dsub);
    const __m512d MAX = _mm512_set1_pd(P->max), OVF = _mm512_set1_pd(P->ovf);
    const int fnuz = P->f->specials == FPL_SPECIALS_FNUZ;
    const __m512i STEP = _mm512_set1_epi64((long long)(8 * SM_GAMMA));
    const uint64_t g = SM_GAMMA;
    __m512i ctr =
        _mm512_add_epi64(_mm512_set1_epi64((long long)(key + (c0 + 1) * g)),
                         _mm512_set_epi64((long long)(7 * g), (long long)(6 * g),
                                          (long long)(5 * g), (long long)(4 * g),
                                          (long long)(3 * g), (long long)(2 * g), (long long)g, 0));
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512i b = _mm512_loadu_si512(in + i);
        __m512i sgn = _mm512_and_si512(b, SIGN);
        __m512i a = _mm512_xor_si512(b, sgn);
        __m512i u = splitmix64_x8(ctr);
        ctr = _mm512_add_epi64(ctr, STEP);
        __m512i nu = _mm512_xor_si512(u, ALL);
        __m512i rn = _mm512_and_si512(_mm512_add_epi64(a, _mm512_srl_epi64(nu, DSHIFT)), KEEP);
        __m512i e = _mm512_srli_epi64(a, 52);
        __mmask8 ez = _mm512_cmpeq_epi64_mask(e, ZERO);
        __m512i ee = _mm512_mask_add_epi64(e, ez, e, ONE);
        __m512i m52 = _mm512_and_si512(a, MANT);
        __m512i sig = _mm512_mask_or_epi64(m52, (__mmask8)~ez, m52, IMPL);
        __m512i s = _mm512_sub_epi64(QSUB1075, ee);
        __m512i t = _mm512_srlv_epi64(
            _mm512_add_epi64(sig, _mm512_srlv_epi64(nu, _mm512_sub_epi64(C64, s))), s);
        __mmask8 maybe = _mm512_mask_cmpeq_epi64_mask(_mm512_cmpgt_epi64_mask(s, C63),
                                                      _mm512_srli_epi64(u, 53), ZERO);
        if (__builtin_expect(maybe != 0, 0)) {
            __m512i k = _mm512_sub_epi64(s, C64);
            __m512i low = _mm512_and_si512(sig, _mm512_sub_epi64(_mm512_sllv_epi64(ONE, k), ONE));
            __m512i thr = _mm512_mask_add_epi64(_mm512_srlv_epi64(sig, k),
                                                _mm512_cmpneq_epi64_mask(low, ZERO),
                                                _mm512_srlv_epi64(sig, k), ONE);
            t = _mm512_mask_add_epi64(t, _mm512_mask_cmplt_epu64_mask(maybe, u, thr), t, ONE);
        }
        __m512d rs = _mm512_sub_pd(
            _mm512_castsi512_pd(_mm512_add_epi64(BSUB, _mm512_sll_epi64(t, SHSUB))), DSUB);
        __m512d r =
            _mm512_mask_blend_pd(_mm512_cmpgt_epi64_mask(ee, EMINB1), rs, _mm512_castsi512_pd(rn));
        r = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(r, MAX, _CMP_GT_OQ), r, OVF);
        if (fnuz)
            sgn = _mm512_mask_mov_epi64(sgn, _mm512_cmp_pd_mask(r, _mm512_setzero_pd(), _CMP_EQ_OQ),
                                        ZERO);
        __m512d res = _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(r), sgn));
        if (__builtin_expect(_mm512_cmpeq_epi64_mask(_mm512_and_si512(b, EXP2047), EXP2047) != 0,
                             0)) {
            double tmp[8];
            _mm512_storeu_pd(tmp, res);
            for (int j = 0; j < 8; j++)
                if (!isfinite(in[i + j]))
                    tmp[j] = isnan(in[i + j]) ? NAN : (in[i + j] < 0 ? P->inf_neg : P->inf_pos);
            res = _mm512_loadu_pd(tmp);
        }
        if (stream)
            _mm512_stream_pd(out + i, res);
        else
            _mm512_storeu_pd(out + i, res);
    }
    if (stream)
        _mm_sfence();
    return i;
}

__attribute__((target("avx512f,avx512dq"))) static size_t
fpl__round_avx512(const fparams_t *P, const double *in, double *out, size_t n, uint64_t key,
                  uint64_t c0, int stream)
{
    return stream ? avx512_sr(P, in, out, n, key, c0, 1) : avx512_sr(P, in, out, n, key, c0, 0);
}

__attribute__((target("avx2"))) static size_t fpl__round_avx2(const fparams_t *P, const double *in,
                                                              double *out, size_t n,
                                                              fpl_rmode_t mode, uint64_t key,
                                                              uint64_t c0, int stream)
{
    if (mode == FPL_RNE && P->f->subnormals && P->f->emax + 2 + 52 - P->m <= 1023 &&
        fegetround() == FE_TONEAREST)
        return stream ? avx2_rne_adder(P, in, out, n, 1) : avx2_rne_adder(P, in, out, n, 0);
    if (mode == FPL_SR)
        return stream ? avx2_sr(P, in, out, n, key, c0, 1) : avx2_sr(P, in, out, n, key, c0, 0);
#define AVX2_CASE(M)                                                                               \
    case M: return stream ? avx2_loop(P, in, out, n, M, 1) : avx2_loop(P, in, out, n, M, 0);
    switch (mode) {
        AVX2_CASE(FPL_RNE)
        AVX2_CASE(FPL_RNA)
        AVX2_CASE(FPL_RTZ)
        AVX2_CASE(FPL_RUP)
        AVX2_CASE(FPL_RDOWN)
    case FPL_SR: break;
    }
#undef AVX2_CASE
    return 0;
}

/* The best kernel this CPU runs. */
static int cpu_isa(void)
{
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        return FPL__ISA_AVX512;
    return __builtin_cpu_supports("avx2") ? FPL__ISA_AVX2 : FPL__ISA_SCALAR;
}

/* Bytes of the largest (last-level) data cache one core uses, from cpuid's
 * deterministic cache parameters (leaf 4; AMD's 0x8000001d), which describe
 * one instance of the cache; sysconf's figure (glibc may report a whole
 * package's L3 there) only when cpuid says nothing.  0 if unknown. */
static size_t llc_probe(void)
{
    unsigned a, b, c, d, leaf = 4;
    size_t best = 0;
    if (__get_cpuid(0, &a, &b, &c, &d) && b == 0x68747541 /* "Auth"enticAMD */)
        leaf = __get_cpuid_max(0x80000000, NULL) >= 0x8000001d ? 0x8000001d : 0;
    for (unsigned sub = 0; leaf && sub < 16; sub++) {
        if (!__get_cpuid_count(leaf, sub, &a, &b, &c, &d) || (a & 31) == 0)
            break;
        if ((a & 31) == 2) /* instruction cache */
            continue;
        size_t size = (size_t)((b >> 22) + 1) * (((b >> 12) & 0x3ff) + 1) * ((b & 0xfff) + 1) *
                      ((size_t)c + 1);
        if (size > best)
            best = size;
    }
    if (best == 0) {
        long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE), l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
        best = l3 > 0 ? (size_t)l3 : l2 > 0 ? (size_t)l2 : 0;
    }
    return best;
}

/* Streaming (non-temporal) stores skip the read-for-ownership of the output
 * and leave the cache alone, which pays when the data cannot stay in the
 * cache anyway, and costs (a later reader misses) when it could: so they are
 * used when input and output together exceed this machine's last-level
 * cache, as glibc's memcpy does, not above a fixed size. */
static int stream_pays(size_t n)
{
    static _Atomic size_t llc; /* 0: not probed yet; SIZE_MAX: unknown */
    size_t c = atomic_load_explicit(&llc, memory_order_relaxed);
    if (c == 0) {
        c = llc_probe();
        if (c == 0)
            c = SIZE_MAX;
        atomic_store_explicit(&llc, c, memory_order_relaxed);
    }
    return c != SIZE_MAX && n > c / (2 * sizeof(double));
}
#else
#define FPL_HAVE_AVX2_KERNEL 0
#endif

/* One loop per mode so that the mode is a constant inside each. */
#define FLOAT_LOOP(MODE)                                                                 \
    for (size_t i = 0; i < n; i++)                                                       \
        out[i] = round_float_one(&P, in[i], MODE, 0);

void fpl__round_array_with(const fpl_format_t *f, const double *in, double *out, size_t n,
                           fpl_rmode_t mode, fpl_sr_t *sr, int isa, int stream)
{
    static const fpl_sr_t zero_stream = FPL_SR_INIT;
    const fpl_sr_t *S = sr ? sr : &zero_stream;
    uint64_t c0 = S->counter;
    if (f->kind == FPL_KIND_INT) {
        for (size_t i = 0; i < n; i++)
            out[i] = round_int_one(f, in[i], mode, mode == FPL_SR ? sr_at(S, c0 + i) : 0);
    } else {
        fparams_t P;
        fparams_init(&P, f);
        size_t done = 0;
#if FPL_HAVE_AVX2_KERNEL
        int best = cpu_isa();
        if (isa > best)
            isa = best;
        if (P.plain && isa >= FPL__ISA_AVX2) {
            /* scalar head until out is 64-byte aligned (if it can be), so
             * that streaming stores of either width may be used */
            size_t head = ((uintptr_t)out & 7) ? 0 : ((64 - ((uintptr_t)out & 63)) & 63) / 8;
            if (head > n)
                head = n;
            for (size_t i = 0; i < head; i++)
                out[i] = round_float_one(&P, in[i], mode, mode == FPL_SR ? sr_at(S, c0 + i) : 0);
            int st = ((uintptr_t)(out + head) & 63) == 0 &&
                     (stream > 0 || (stream < 0 && stream_pays(n)));
            if (mode == FPL_SR && isa >= FPL__ISA_AVX512)
                done = head + fpl__round_avx512(&P, in + head, out + head, n - head, S->key,
                                                c0 + head, st);
            else
                done = head + fpl__round_avx2(&P, in + head, out + head, n - head, mode, S->key,
                                              c0 + head, st);
        }
#else
        (void)isa;
        (void)stream;
#endif
        in += done;
        out += done;
        n -= done;
        c0 += done;
        switch (mode) {
        case FPL_RNE: FLOAT_LOOP(FPL_RNE) break;
        case FPL_RNA: FLOAT_LOOP(FPL_RNA) break;
        case FPL_RTZ: FLOAT_LOOP(FPL_RTZ) break;
        case FPL_RUP: FLOAT_LOOP(FPL_RUP) break;
        case FPL_RDOWN: FLOAT_LOOP(FPL_RDOWN) break;
        case FPL_SR:
            for (size_t i = 0; i < n; i++)
                out[i] = round_float_one(&P, in[i], FPL_SR, sr_at(S, c0 + i));
            break;
        }
    }
    if (mode == FPL_SR && sr)
        sr->counter = c0 + n;
}

void fpl_round_array(const fpl_format_t *f, const double *in, double *out, size_t n,
                     fpl_rmode_t mode, fpl_sr_t *sr)
{
    fpl__round_array_with(f, in, out, n, mode, sr, FPL__ISA_AVX512, -1);
}

/* ---- the MPFR reference path ------------------------------------------ */

/* Round the magnitude a (> 0) to the format's grid with MPFR rounding rnd:
 * p-bit rounding in the caller's (wide) exponent range, then the format's
 * range with mpfr_check_range and mpfr_subnormalize on the ternary value.
 * Returns the value as a double (inf if beyond the double range). */
static double mpfr_grid(const fpl_format_t *f, mpfr_srcptr a, mpfr_rnd_t rnd)
{
    mpfr_exp_t old_emin = mpfr_get_emin(), old_emax = mpfr_get_emax();
    mpfr_t y;
    mpfr_init2(y, f->mbits + 1);
    int inex = mpfr_set(y, a, rnd);
    /* MPFR writes x = 0.1b...b * 2^E, so 2^emin is 0.1 * 2^(emin+1) and the
     * smallest subnormal 2^(emin-m) has MPFR exponent emin - m + 1.  Two
     * binades of headroom above emax let the caller see the rounded value
     * beyond the largest finite number and apply the overflow policy. */
    mpfr_set_emin(f->subnormals ? f->emin - f->mbits + 1 : f->emin + 1);
    mpfr_set_emax(f->emax + 3);
    inex = mpfr_check_range(y, inex, rnd);
    if (f->subnormals)
        mpfr_subnormalize(y, inex, rnd);
    mpfr_set_emin(old_emin);
    mpfr_set_emax(old_emax);
    double r = mpfr_get_d(y, MPFR_RNDN); /* exact: y is a format value or inf */
    mpfr_clear(y);
    return r;
}

/* Decide between lo and hi = lo + one unit for RNA and SR, given the exact
 * fraction frac = (a - lo) / (hi - lo) in (0, 1). */
static int mpfr_take_hi(fpl_rmode_t mode, mpfr_srcptr frac, uint64_t u)
{
    if (mode == FPL_RNA)
        return mpfr_cmp_d(frac, 0.5) >= 0;
    /* SR: up iff u < frac * 2^64, compared exactly */
    mpfr_t F;
    mpfr_init2(F, mpfr_get_prec(frac));
    mpfr_mul_2ui(F, frac, 64, MPFR_RNDN);
    int up = mpfr_cmp_ui(F, (unsigned long)u) > 0;
    mpfr_clear(F);
    return up;
}

/* frac = (a - lo) / (hi - lo) exactly (hi - lo is a power of two). */
static void mpfr_fraction(mpfr_ptr frac, mpfr_srcptr a, double lo, double hi)
{
    mpfr_t d;
    /* a - lo < hi - lo spans at most PREC(a) + 53 bits */
    mpfr_init2(d, mpfr_get_prec(a) + 64);
    mpfr_sub_d(d, a, lo, MPFR_RNDN);
    mpfr_set_prec(frac, mpfr_get_prec(d));
    mpfr_div_d(frac, d, hi - lo, MPFR_RNDN);
    mpfr_clear(d);
}

static double mpfr_round_int(const fpl_format_t *f, mpfr_srcptr a, int neg, fpl_rmode_t mode,
                             uint64_t u)
{
    if (mpfr_cmp_d(a, 0x1p52) >= 0)
        return finish_int(f, 0x1p52, neg);
    mpfr_t lo, frac;
    mpfr_init2(lo, 64);
    mpfr_init2(frac, 64);
    mpfr_rint(lo, a, MPFR_RNDZ); /* exact: |a| < 2^52 */
    double l = mpfr_get_d(lo, MPFR_RNDN), r = l;
    if (mpfr_cmp(lo, a) != 0) {
        mpfr_fraction(frac, a, l, l + 1.0);
        int cmp = mpfr_cmp_d(frac, 0.5);
        int up;
        switch (mode) {
        case FPL_RNE: up = cmp > 0 || (cmp == 0 && fmod(l, 2.0) != 0); break;
        case FPL_RTZ: up = 0; break;
        case FPL_RUP: up = !neg; break;
        case FPL_RDOWN: up = neg; break;
        default: up = mpfr_take_hi(mode, frac, u); break;
        }
        r = up ? l + 1.0 : l;
    }
    mpfr_clear(lo);
    mpfr_clear(frac);
    return finish_int(f, r, neg);
}

double fpl_round_mpfr(const fpl_format_t *f, mpfr_srcptr x, fpl_rmode_t mode, fpl_sr_t *sr)
{
    uint64_t u = 0;
    if (mode == FPL_SR)
        u = sr ? fpl_sr_next(sr) : 0;
    if (mpfr_nan_p(x))
        return NAN;
    int neg = mpfr_signbit(x) != 0;
    if (mpfr_inf_p(x))
        return round_inf(f, neg);
    if (f->kind == FPL_KIND_FLOAT && neg && !f->has_sign)
        return mpfr_zero_p(x) ? finish_float(f, 0.0, 0, mode) : NAN;
    if (mpfr_zero_p(x))
        return f->kind == FPL_KIND_INT ? 0.0 : finish_float(f, 0.0, neg, mode);

    mpfr_t a;
    mpfr_init2(a, mpfr_get_prec(x));
    mpfr_abs(a, x, MPFR_RNDN); /* exact */
    double r;
    if (f->kind == FPL_KIND_INT) {
        r = mpfr_round_int(f, a, neg, mode, u);
        mpfr_clear(a);
        return r;
    }
    switch (mode) {
    case FPL_RNE: r = mpfr_grid(f, a, MPFR_RNDN); break;
    case FPL_RTZ: r = mpfr_grid(f, a, MPFR_RNDZ); break;
    case FPL_RUP: r = mpfr_grid(f, a, neg ? MPFR_RNDZ : MPFR_RNDA); break;
    case FPL_RDOWN: r = mpfr_grid(f, a, neg ? MPFR_RNDA : MPFR_RNDZ); break;
    default: {
        /* RNA and SR: the two neighbours on the grid, then the exact fraction */
        double lo = mpfr_grid(f, a, MPFR_RNDZ), hi = mpfr_grid(f, a, MPFR_RNDA);
        r = lo;
        if (lo != hi) {
            if (lo > f->max_finite) {
                r = hi; /* both neighbours overflow */
            } else {
                mpfr_t frac;
                mpfr_init2(frac, 64);
                mpfr_fraction(frac, a, lo, hi);
                r = mpfr_take_hi(mode, frac, u) ? hi : lo;
                mpfr_clear(frac);
            }
        }
        break;
    }
    }
    mpfr_clear(a);
    return finish_float(f, r, neg, mode);
}

double fpl_round_mpfr_d(const fpl_format_t *f, double x, fpl_rmode_t mode, fpl_sr_t *sr)
{
    mpfr_t m;
    mpfr_init2(m, 53);
    mpfr_set_d(m, x, MPFR_RNDN);
    double r = fpl_round_mpfr(f, m, mode, sr);
    mpfr_clear(m);
    return r;
}
