/* policy.h -- precision policies: the format of each tensor role */
#ifndef FPL_POLICY_H
#define FPL_POLICY_H

#include <stddef.h>

#include "format.h"
#include "round.h"

/* Summation order of a reduction. */
typedef enum {
    FPL_ORDER_SEQ = 0,      /* s = s + p_i, left to right */
    FPL_ORDER_PAIRWISE = 1, /* recursive halving */
    FPL_ORDER_BLOCKED = 2   /* k terms in the accumulator format, then the
                               partial sum is added into a wider format
                               (tensor cores; DeepSeek-V3's FP8 GEMM) */
} fpl_order_t;

/* A mixed-precision recipe.  Text spelling (fpl_policy_parse), keys in any
 * order, all optional:
 *   w=FMT a=FMT prod=exact|FMT acc=FMT|align:F[:G] norm=FMT out=FMT rnd=MODE
 *   order=seq|pairwise|blocked:K promote=FMT
 * e.g. "w=e4m3,a=bf16,acc=fp32,norm=fp32,rnd=rne".  Defaults: a=fp32, w=a,
 * prod=exact, acc=fp32, norm=fp32, out=a, rnd=rne, order=seq, promote=fp32.
 * An integer weight format (w=int8) means weights quantized per output row
 * with an absmax scale and used dequantized (weight-only quantization).
 *
 * acc=FMT: every addition of a reduction is the exact sum rounded once to FMT
 * in mode rnd.
 *
 * acc=align:F[:G] (1 <= F <= 30, 1 <= G <= 1024, G = 32 by default) models
 * the fixed-point accumulator of an FP8 tensor core (Hopper: align:13:32).
 * The products of a reduction are taken G at a time (the MMA's k-slice); the
 * partial sum carried from the previous slice of the same block joins them
 * as one more addend.  Every addend of a slice is aligned to the largest
 * exponent E among them (E = floor(log2 |a|), at least -126) and truncated
 * toward zero, by magnitude, to a multiple of 2^(E-F); the truncated addends
 * are added exactly; the sum is renormalised and truncated toward zero to
 * F+1 significant bits.  The partial sum is therefore a value of
 * fp:e=8,m=F (p->acc is set to that format), the register never rounds to
 * nearest, whatever rnd says, and small addends vanish entirely when they
 * lie below 2^(E-F).  An exact zero slice sum is -0 only if every addend
 * is negative or -0.  A slice holding NaN, or +inf and -inf, gives NaN; one
 * holding an infinity gives it; a sum beyond (2-2^-F)*2^127 gives +-inf.
 * With order=seq the whole reduction runs in the aligned accumulator (no
 * promotion); with order=blocked:K each block of K terms starts from an
 * empty accumulator, is split into slices of G (the last one shorter when
 * G does not divide K), and its result is added into `promote` in mode rnd,
 * as DeepSeek-V3 does with K = 128 (arXiv 2412.19437, §3.3).  order=pairwise
 * is refused.  rnd also rounds the products when prod=FMT. */
typedef struct {
    fpl_format_t w;       /* weights */
    fpl_format_t a;       /* activations: inputs of layers, elementwise results */
    fpl_format_t prod;    /* products inside reductions, unless prod_exact */
    int prod_exact;       /* products kept exact */
    fpl_format_t acc;     /* accumulator of reductions */
    fpl_format_t norm;    /* normalisation statistics (mean, variance, rms) */
    fpl_format_t out;     /* layer outputs */
    fpl_rmode_t rnd;      /* rounding mode of every rounding */
    fpl_order_t order;    /* summation order */
    size_t block;         /* K of blocked order */
    fpl_format_t promote; /* format the blocked partial sums are added into */
    int align_frac;       /* F of acc=align:F:G; 0 for a rounding accumulator */
    size_t align_group;   /* G of acc=align:F:G: products per k-slice */
    int exact;            /* 1 for the reference policy: nothing is rounded */
    char text[640];       /* canonical spelling */
} fpl_policy_t;

/* Parse a policy spelling into *p.  Returns 0 or FPL_EINVAL with a message
 * naming the bad key or value (fpl_last_error). */
int fpl_policy_parse(const char *spec, fpl_policy_t *p);

/* The reference policy: binary64 everywhere, nothing rounded beyond it;
 * reductions are compensated (see fpl_dot). */
void fpl_policy_exact(fpl_policy_t *p);

#endif /* FPL_POLICY_H */
