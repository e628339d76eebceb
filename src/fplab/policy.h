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
 *   w=FMT a=FMT prod=exact|FMT acc=FMT norm=FMT out=FMT rnd=MODE
 *   order=seq|pairwise|blocked:K promote=FMT
 * e.g. "w=e4m3,a=bf16,acc=fp32,norm=fp32,rnd=rne".  Defaults: a=fp32, w=a,
 * prod=exact, acc=fp32, norm=fp32, out=a, rnd=rne, order=seq, promote=fp32.
 * An integer weight format (w=int8) means weights quantized per output row
 * with an absmax scale and used dequantized (weight-only quantization). */
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
