/* track.h -- the twin run: where error is born and how it travels */
#ifndef FPL_TRACK_H
#define FPL_TRACK_H

#include <stddef.h>

#include "format.h"
#include "policy.h"
#include "round.h"

/* A layer: y = forward(x) with in_dim inputs and out_dim outputs.  Under
 * the exact policy (pol->exact) forward must compute the exact (reference)
 * layer; under any other policy the emulated one.  Returns 0 on success. */
typedef struct fpl_layer fpl_layer_t;
struct fpl_layer {
    const char *name;
    size_t in_dim, out_dim;
    int (*forward)(const fpl_layer_t *L, const double *x, double *y, const fpl_policy_t *pol,
                   fpl_sr_t *sr);
    void *state;
};

/* Error of an emulated vector a against a reference b (length n). */
typedef struct {
    double rel;     /* normwise relative error ||a - b||_2 / ||b||_2 */
    double maxabs;  /* max |a_i - b_i| */
    double ulps;    /* max |a_i - b_i| / ulp(b_i) in format f (ulp of the
                       binade of b_i, never below the subnormal spacing) */
    double sqnr_db; /* 10 log10(||b||^2 / ||a - b||^2); +inf when exact */
    double cosine;  /* a.b / (||a|| ||b||) */
} fpl_err_t;

/* Fill *e.  Non-finite a_i make every metric inf (cosine NaN). */
void fpl_error_metrics(const double *a, const double *b, size_t n, const fpl_format_t *f,
                       fpl_err_t *e);

/* What the tracker reports for layer k, for output y_k:
 *   total      y_k emulated vs y_k reference
 *   introduced the emulated layer vs the exact layer, both on the emulated
 *              input: this layer's own rounding
 *   inherited  the exact layer on the emulated input vs on the reference
 *              input: earlier error carried through
 *   amplification  inherited.rel / (total relative error of the input) */
typedef struct {
    fpl_err_t total, introduced, inherited;
    double amplification;
} fpl_track_report_t;

/* Run a chain of n layers on x0 (length layers[0].in_dim) twice: emulated
 * under pol (the input is first rounded to pol->a; input_err receives that
 * error) and as the exact reference; fill rep[0..n).  ULPs are counted in
 * pol->out.  Returns 0, FPL_EINVAL (dimensions do not chain), FPL_ENOMEM,
 * or a layer's non-zero status. */
int fpl_track(const fpl_layer_t *layers, size_t n, const double *x0, const fpl_policy_t *pol,
              fpl_sr_t *sr, fpl_err_t *input_err, fpl_track_report_t *rep);

#endif /* FPL_TRACK_H */
