/* model.h -- small neural networks trained and run under a precision recipe */
#ifndef FPL_MODEL_H
#define FPL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "policy.h"

/* ---- architecture -------------------------------------------------------
 * A model is a sequence of layers applied to a mini-batch of B rows (row-
 * major, one sample per row).  All parameters live in one array
 * (model->params, model->nparams doubles); layer i owns
 * params[layers[i].off .. layers[i].off + layers[i].nparams).  Saving,
 * quantizing or comparing a whole model is one loop over that array.
 *
 * Layers and their parameters (in this order in the array):
 *   LINEAR     y = x W^T + b; W is out x in (row = output channel), then b
 *   RELU GELU SILU TANH   elementwise, no parameters (GELU: x Phi(x), erf form;
 *              ReLU is x > 0 ? x : 0, as fmaxf(x, 0) in CUDA kernels: it maps
 *              NaN to 0, where PyTorch's relu passes NaN through)
 *   LAYERNORM  y = gamma (x - mean)/sqrt(var + eps) + beta; gamma, beta
 *   RMSNORM    y = gamma x / sqrt(mean(x^2) + eps); gamma
 *   RES_BEGIN, RES_END   a residual block: the layers between them form the
 *              branch f and RES_END outputs x + f(x), x being RES_BEGIN's
 *              input; blocks nest, f must keep the width.
 *   TIMEEMB    the last input column is a time t; the output is the other
 *              columns unchanged followed by the sinusoidal embedding
 *              [sin(t w_0) .. sin(t w_{h-1}), cos(t w_0) .. cos(t w_{h-1})],
 *              w_k = period^(-k/h), h = dim/2 (Vaswani et al. 2017, 3.5;
 *              DDPM's timestep embedding). */
typedef enum {
    FPL_LAYER_LINEAR = 1,
    FPL_LAYER_RELU = 2,
    FPL_LAYER_GELU = 3,
    FPL_LAYER_SILU = 4,
    FPL_LAYER_TANH = 5,
    FPL_LAYER_LAYERNORM = 6,
    FPL_LAYER_RMSNORM = 7,
    FPL_LAYER_RES_BEGIN = 8,
    FPL_LAYER_RES_END = 9,
    FPL_LAYER_TIMEEMB = 10
} fpl_layer_kind_t;

/* One layer.  Plain data, filled by the fpl_model_add_* calls. */
typedef struct {
    fpl_layer_kind_t kind;
    size_t in, out;      /* widths of the input and output rows */
    size_t off, nparams; /* its parameters: model->params[off .. off + nparams) */
    size_t link;         /* RES_BEGIN/RES_END: index of the matching layer */
    double eps;          /* norms: epsilon; TIMEEMB: the period (10000 usually) */
} fpl_mlayer_t;

/* A model.  The fields are read-only for callers, except the values in
 * params, which may be edited (e.g. quantized) between calls. */
typedef struct {
    size_t in, out;       /* input and output widths */
    size_t nlayers;
    fpl_mlayer_t *layers;
    size_t nparams;
    double *params;       /* the weights, one array */
    size_t open;          /* residual blocks not yet closed */
    size_t cap_layers, cap_params;
} fpl_model_t;

/* A model taking rows of `in` values, with no layers yet.  NULL (FPL_EINVAL
 * or FPL_ENOMEM, see fpl_last_error) for in == 0 or no memory. */
fpl_model_t *fpl_model_alloc(size_t in);
void fpl_model_free(fpl_model_t *m);

/* Append a layer; each returns 0, FPL_EINVAL (bad width, kind or an
 * unmatched residual block) or FPL_ENOMEM, and leaves the model unchanged on
 * failure.  New parameters are zero (gammas one) until fpl_model_init. */
int fpl_model_add_linear(fpl_model_t *m, size_t out);
/* kind: FPL_LAYER_RELU, _GELU, _SILU or _TANH */
int fpl_model_add_activation(fpl_model_t *m, fpl_layer_kind_t kind);
/* kind: FPL_LAYER_LAYERNORM or FPL_LAYER_RMSNORM; eps > 0 (1e-5 is usual) */
int fpl_model_add_norm(fpl_model_t *m, fpl_layer_kind_t kind, double eps);
int fpl_model_add_residual_begin(fpl_model_t *m);
int fpl_model_add_residual_end(fpl_model_t *m);
/* dim even, >= 2; period > 1 (10000 is usual); the input width must be >= 1 */
int fpl_model_add_time_embedding(fpl_model_t *m, size_t dim, double period);

/* Draw the parameters from `seed`: linear weights uniform in
 * [-1/sqrt(in), 1/sqrt(in)] (PyTorch's nn.Linear), biases zero, norm gains
 * one and shifts zero.  The same seed gives the same bits on every machine
 * (GSL's mt19937).  Returns 0, or FPL_EINVAL if a residual block is open. */
int fpl_model_init(fpl_model_t *m, uint64_t seed);

/* A copy of the model (architecture and parameters), or NULL (FPL_ENOMEM). */
fpl_model_t *fpl_model_clone(const fpl_model_t *m);

/* ---- precision recipes ---------------------------------------------------
 * Where a recipe rounds (the boundaries at which mixed-precision hardware
 * and frameworks round):
 *   - master weights and optimiser state are kept in `master`;
 *   - every layer's output (forward) is rounded to `act`, every gradient a
 *     layer passes back, and every parameter gradient, to `grad`;
 *   - inside a layer, a fused kernel computes in binary64 from its rounded
 *     inputs and rounds once at its output; LayerNorm and RMSNorm normalise
 *     with fpl_layernorm/fpl_rmsnorm (statistics in fp32, norm=fp32), apply
 *     gamma and beta (rounded to act) in binary64 and round to act; their
 *     backward recomputes the statistics in binary64, and their parameter
 *     gradients are binary64 sums over the batch rounded to grad;
 *   - a linear layer is a GEMM: in the forward its inputs X and W are
 *     rounded to `gemm_fwd` (with a per-tensor scale when scaling != NONE),
 *     products are exact, sums are sequential in `acc` (fpl_matmul with
 *     prod=exact,acc=ACC,order=seq,rnd=rne); the epilogue computes
 *     acc/(s_x s_w) + b in `acc`, b rounded to `act`, and rounds the sum
 *     to `act`.  In the backward the
 *     output gradient dY is rounded to `gemm_bwd` (scaled likewise) and
 *     dX = dY W, dW = dY^T X are GEMMs of the same kind with the forward's
 *     rounded W and X, rounded to `grad`; db sums dY (in `grad`) in `acc`.
 * Per-tensor scaling (FP8): the scale of a tensor is the power of two
 *   s = 2^(floor(log2(fmax / amax)) - margin), fmax the format's largest
 *   finite value, so amax*s <= fmax and descaling is exact (Transformer
 *   Engine allows any fp32 scale; a power of two keeps the emulation exact).
 *   CURRENT takes amax of the tensor itself; DELAYED takes the largest amax
 *   of the last `history` steps of that tensor (Transformer Engine's
 *   DelayedScaling with amax_compute_algo="max"), the current amax being
 *   recorded after the cast; with an empty history the current amax is used.
 *   Casts saturate (cvt.satfinite), so a value beyond the delayed scale's
 *   range clips to +-fmax instead of becoming NaN.
 * Dynamic loss scaling (fp16): gradients are computed for loss*S; a step
 *   whose parameter gradients hold inf or NaN is skipped and S halves; after
 *   `growth_interval` good steps in a row S doubles (PyTorch GradScaler).
 * The exact recipe is the binary64 reference: nothing is rounded, GEMMs use
 *   fpl_policy_exact (compensated dot products). */
typedef enum { FPL_SCALE_NONE = 0, FPL_SCALE_DELAYED = 1, FPL_SCALE_CURRENT = 2 } fpl_scaling_t;

typedef struct {
    char name[32];
    int exact;              /* 1: the binary64 reference, nothing rounded */
    fpl_format_t master;    /* master weights, optimiser state */
    fpl_format_t act;       /* activations (layer outputs) */
    fpl_format_t grad;      /* gradients */
    fpl_format_t gemm_fwd;  /* GEMM inputs in the forward pass */
    fpl_format_t gemm_bwd;  /* the output gradient as a GEMM input */
    fpl_format_t acc;       /* GEMM accumulation */
    fpl_scaling_t scaling;  /* per-tensor scales of GEMM inputs */
    size_t history;         /* DELAYED: amax history length */
    int margin;             /* scale margin, in powers of two */
    int loss_scaling;       /* 1: dynamic loss scaling */
    double loss_scale;      /* initial loss scale */
    unsigned growth_interval;
} fpl_recipe_t;

/* Parse a recipe: a name, then optional ",key=value" settings.
 *   exact   binary64 reference
 *   fp32    everything fp32
 *   bf16    act, grad and GEMM inputs bf16; fp32 master and accumulation
 *   fp16    as bf16 with fp16, dynamic loss scaling from 2^16, growth 2000
 *   fp8     GEMM inputs E4M3 forward, E5M2 for gradients, delayed scaling
 *           (history 16, margin 0); act and grad bf16; fp32 master and acc
 *   fp8-current   fp8 with the current amax
 * keys: history=N (1..1024), margin=N (0..16), scale=S (loss scale, a power
 * of two), growth=N (>= 1).  Returns 0 or FPL_EINVAL with a message. */
int fpl_recipe_parse(const char *spec, fpl_recipe_t *r);

/* ---- losses -------------------------------------------------------------
 * Both are means over the batch, computed in binary64 from the outputs
 * given; the gradient with respect to the outputs goes to d (B x C, may be
 * NULL). */

/* Softmax cross-entropy of logits (B x C) against labels in [0, C), with a
 * stable log-sum-exp (the maximum subtracted).  A label out of range gives
 * NaN.  d = (softmax - onehot) / B. */
double fpl_loss_xent(const double *logits, const int *labels, size_t B, size_t C, double *d);

/* Mean squared error: sum((y - t)^2) / (B C); d = 2 (y - t) / (B C). */
double fpl_loss_mse(const double *y, const double *t, size_t B, size_t C, double *d);

/* ---- training -----------------------------------------------------------*/
typedef enum { FPL_OPT_SGD = 0, FPL_OPT_ADAM = 1 } fpl_opt_kind_t;

/* The optimiser.  SGD: v = momentum v + g; w -= lr (v + wd w).
 * Adam (Kingma & Ba 2015, Algorithm 1, with L2 weight decay added to g):
 * m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
 * w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).  Each state
 * update and the new weight are rounded to the recipe's master format. */
typedef struct {
    fpl_opt_kind_t kind;
    double lr, momentum, beta1, beta2, eps, weight_decay;
} fpl_optim_t;
#define FPL_OPTIM_ADAM_INIT {FPL_OPT_ADAM, 1e-3, 0.0, 0.9, 0.999, 1e-8, 0.0}
#define FPL_OPTIM_SGD_INIT {FPL_OPT_SGD, 1e-2, 0.9, 0.0, 0.0, 0.0, 0.0}

/* A trainer runs one model under one recipe: it owns the activations of the
 * last forward pass, the parameter gradients (model layout), the optimiser
 * state, the amax histories and the loss scale.  `threads` (>= 1) threads
 * share each GEMM by output rows; every output keeps its summation order,
 * so results are the same bits for any thread count.  At allocation the
 * model's parameters are rounded to the recipe's master format.  NULL on
 * failure (FPL_EINVAL: open residual block, zero max_batch or threads;
 * FPL_ENOMEM). */
typedef struct fpl_trainer fpl_trainer_t;
fpl_trainer_t *fpl_trainer_alloc(fpl_model_t *m, const fpl_recipe_t *r, const fpl_optim_t *o,
                                 size_t max_batch, int threads);
void fpl_trainer_free(fpl_trainer_t *t);

/* Forward pass of B <= max_batch rows x (B x m->in); returns the output
 * (B x m->out, valid until the next call).  The input is rounded to `act`
 * first.  train = 1 records amax histories (delayed scaling) and keeps what
 * the backward needs; train = 0 is inference (histories read, not
 * written).  NULL with FPL_EINVAL when B is out of range. */
const double *fpl_trainer_forward(fpl_trainer_t *t, const double *x, size_t B, int train);

/* Backward pass after a training forward: dout (B x m->out) is the
 * gradient of the loss with respect to the output (unscaled); it is
 * multiplied by the loss scale and rounded to `grad`.  Sets the parameter
 * gradients (fpl_trainer_grads, scaled by the loss scale) and returns the
 * gradient with respect to the input (B x m->in, unscaled, valid until the
 * next call); NULL with FPL_EINVAL without a training forward before it. */
const double *fpl_trainer_backward(fpl_trainer_t *t, const double *dout);

/* The parameter gradients of the last backward (m->nparams, times the
 * current loss scale). */
const double *fpl_trainer_grads(const fpl_trainer_t *t);

/* Apply the optimiser to the model's parameters.  Returns 0 after a step, 1
 * when dynamic loss scaling skipped it (non-finite gradients). */
int fpl_trainer_step(fpl_trainer_t *t);

/* forward, the loss (xent with labels, or MSE with targets y: give exactly
 * one), backward and step.  Returns the loss of the batch (NaN on bad
 * arguments, with FPL_EINVAL). */
double fpl_trainer_train(fpl_trainer_t *t, const double *x, const double *y, const int *labels,
                         size_t B);

/* Change the learning rate (for a schedule); the optimiser state is kept. */
void fpl_trainer_set_lr(fpl_trainer_t *t, double lr);

/* The current loss scale (1 without loss scaling); the number of steps
 * taken and skipped so far. */
double fpl_trainer_loss_scale(const fpl_trainer_t *t);
size_t fpl_trainer_steps(const fpl_trainer_t *t, size_t *skipped);

/* The scale the last forward (which = 0: input X, 1: weights W) or backward
 * (which = 2: output gradient dY) pass used for linear layer `layer` (an
 * index into m->layers); 1 when the recipe does not scale, 0 for a bad
 * index. */
double fpl_trainer_scale(const fpl_trainer_t *t, size_t layer, int which);

/* ---- weight files ---------------------------------------------------------
 * Format (version 1), all integers little-endian:
 *   offset 0   8 bytes  magic "FPLMODEL"
 *          8   u32      version (1)
 *         12   u32      number of layers L (1 .. 4096)
 *         16   u64      input width (1 .. 2^24)
 *         24   L records of 32 bytes: u32 kind, u32 reserved (0),
 *                       u64 out (for LINEAR, TIMEEMB; 0 otherwise),
 *                       u64 nparams of the layer, f64 eps/period (the
 *                       binary64 bits; 0 where unused)
 *              u64      total number of parameters P
 *              P f64    the parameter array (binary64 bits)
 *              u64      checksum: FNV-1a 64 of every preceding byte
 * The file ends there.  The reader rebuilds the architecture with the
 * fpl_model_add_* calls, so every shape is checked, and refuses a file that
 * is truncated, longer, foreign (bad magic), of another version, of
 * inconsistent shapes or counts, or whose checksum differs. */

/* Write the model to path atomically (a temporary file, then rename).
 * Returns 0, FPL_EINVAL (open residual block) or FPL_EIO. */
int fpl_model_save(const fpl_model_t *m, const char *path);

/* The file as bytes: *buf (caller frees) of *len bytes.  0 or FPL_ENOMEM. */
int fpl_model_serialize(const fpl_model_t *m, unsigned char **buf, size_t *len);

/* Read a model from bytes / from a file.  On success *out is a new model
 * (free with fpl_model_free) and 0 is returned; otherwise *out is NULL and
 * the status is FPL_EINVAL (not a valid weight file; the message says what
 * is wrong), FPL_EIO (cannot read the file) or FPL_ENOMEM. */
int fpl_model_deserialize(const unsigned char *buf, size_t len, fpl_model_t **out);
int fpl_model_load(const char *path, fpl_model_t **out);

#endif /* FPL_MODEL_H */
