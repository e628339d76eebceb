/* resstack.h -- residual stacks x <- x + g f(N(x)) under a precision
 * policy, and their twin run against exact references */
#ifndef FPL_RESSTACK_H
#define FPL_RESSTACK_H

#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_rng.h>

#include "format.h"
#include "policy.h"
#include "round.h"

/* Where the normalisation sits in a block (f is a two-layer GELU MLP):
 *   PRELN   y = x + f(LN(x))          (GPT-2 and later)
 *   POSTLN  y = LN(x + f(x))          (the original transformer, BERT)
 *   PRERMS  y = x + f(RMSNorm(x))     (LLaMA)
 *   NONORM  y = x + f(x)              (the control) */
typedef enum {
    FPL_RES_PRELN = 0,
    FPL_RES_POSTLN = 1,
    FPL_RES_PRERMS = 2,
    FPL_RES_NONORM = 3
} fpl_res_variant_t;

/* The shape of a stack.  f(u) = W2 GELU(W1 u) with W1 (hidden x d) drawn
 * N(0, 1/d) and W2 (d x hidden) drawn N(0, gain^2/hidden): GPT-2 puts
 * gain = 1/sqrt(2 depth) on the residual branches, gain = 1 is undamped.
 * The normalisation has no affine parameters and epsilon 1e-5.  `tokens`
 * vectors of length d go through the stack together (one weight set). */
typedef struct {
    fpl_res_variant_t variant;
    size_t d, hidden, tokens, depth;
    double gain;
} fpl_resstack_t;

/* A stack's precision: the policy of the blocks (normalisation, GEMM
 * inputs, hidden activations, GEMM outputs in block.out) and the format the
 * residual stream x is kept in: every x + f is rounded once to `stream`, and
 * so is post-LN's output (which is the stream).  With block.exact set the
 * whole stack is the exact reference (stream ignored). */
typedef struct {
    fpl_policy_t block;
    fpl_format_t stream;
} fpl_res_policy_t;

/* Draw the input (tokens x d, N(0, 1)) and then one block's weights from
 * rng, in the order fpl_resstack_run uses: input first, then block 1, 2, ... */
void fpl_resstack_input(const fpl_resstack_t *c, gsl_rng *rng, double *x0);
void fpl_resstack_weights(const fpl_resstack_t *c, gsl_rng *rng, double *W1, double *W2);

/* Weights as policy p stores them.  A floating-point weight format gets a
 * per-tensor power-of-two scale 2^k, the smallest with max|W| / 2^k at
 * most the format's largest finite value (as FP8 recipes scale weights per
 * tensor; for bf16 and fp16 weights it changes nothing unless values would
 * be subnormal), and each weight is 2^k round(W / 2^k).  An integer format
 * is quantized per row as fpl_weights does.  The exact policy copies. */
void fpl_resstack_store(const fpl_policy_t *p, const double *W, double *Wq, size_t rows,
                        size_t cols);

/* Scratch (in doubles) that fpl_resstack_block needs. */
size_t fpl_resstack_work_size(const fpl_resstack_t *c);

/* One block on x (tokens x d) into y, with the weights W1, W2 as given
 * (already stored by the policy).  Emulated: the normalisation under
 * p->block (statistics in norm, output in out), the GEMM input rounded to
 * block.a, hidden activations in block.a, the branch output in block.out,
 * x + gain-branch rounded to stream.  y must not alias x. */
void fpl_resstack_block(const fpl_resstack_t *c, const double *W1, const double *W2,
                        const double *x, double *y, const fpl_res_policy_t *p, fpl_sr_t *sr,
                        double *work);

/* What the twin run reports for one policy after one block (all errors
 * normwise over tokens x d; inf once a non-finite value has appeared). */
typedef struct {
    double rel;           /* vs the original model in exact arithmetic: what a user sees */
    double abs;           /* the same, as an rms absolute error ||y~ - y|| / sqrt(n) */
    double arith_rel;     /* vs the same stored weights in exact arithmetic: the
                             arithmetic's error alone */
    double introduced;    /* this block's rounding: emulated vs exact block on the
                             emulated input (stored weights) */
    double inherited;     /* exact block on the emulated vs on the arithmetic
                             reference's input */
    double amplification; /* inherited / arith_rel of the block's input (NaN when
                             the input is exact) */
    double weights_rel;   /* stored-weight model vs original, both exact: the fixed
                             change of the model */
    double signal_rms;    /* rms of the original model's output */
    double out_rms;       /* rms of the emulated output (inf when non-finite) */
    int finite;           /* 1 while every emulated value so far is finite */
} fpl_resstack_report_t;

/* Draw a stack from rng (input, then weights block by block, so memory is
 * one block's worth) and run it once exactly with the original weights, and
 * for each of the npol policies: emulated, and exactly with that policy's
 * stored weights.  rep[k * depth + l] receives policy k after block l + 1.
 * Policy k's stochastic rounding uses the stream seeded sr_seed + k.  The
 * emulated input is x0 rounded to the stream format.  Returns 0 or
 * FPL_ENOMEM / FPL_EINVAL. */
int fpl_resstack_run(const fpl_resstack_t *c, gsl_rng *rng, const fpl_res_policy_t *pol,
                     size_t npol, uint64_t sr_seed, fpl_resstack_report_t *rep);

#endif /* FPL_RESSTACK_H */
