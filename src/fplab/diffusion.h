/* diffusion.h -- DDPM noise schedules, a Gaussian-mixture target with its
 * exact score, and DDIM / DDPM / probability-flow samplers, runnable under a
 * precision policy */
#ifndef FPL_DIFFUSION_H
#define FPL_DIFFUSION_H

#include <stddef.h>

#include <gsl/gsl_rng.h>

#include "model.h"
#include "policy.h"
#include "quant.h"
#include "round.h"

/* ---- the schedule -------------------------------------------------------
 * Variance-preserving DDPM (Ho et al., NeurIPS 2020): beta_t, t = 1..T,
 * linear from beta_1 to beta_T, and alpha_bar_t = prod_{s<=t} (1 - beta_s)
 * with alpha_bar_0 = 1 (the data).  Computed in binary64; the schedule is
 * the same for the exact and the emulated runs (an emulated sampler rounds
 * the coefficients it derives from it). */
typedef struct {
    size_t T;
    double *beta;      /* beta[t], t = 0..T (beta[0] = 0) */
    double *alpha_bar; /* alpha_bar[t], t = 0..T */
} fpl_schedule_t;

/* Fill s for the linear schedule (T >= 1, 0 < beta_1 <= beta_T < 1): the
 * default DDPM one is (1000, 1e-4, 0.02).  Returns 0, FPL_EINVAL or
 * FPL_ENOMEM; free with fpl_schedule_free. */
int fpl_schedule_linear(fpl_schedule_t *s, size_t T, double beta_1, double beta_T);
void fpl_schedule_free(fpl_schedule_t *s);

/* N sampling steps evenly spaced in 1..T: tau[i] = floor(i T / N) for
 * i = 0..N (tau[0] = 0, tau[N] = T, strictly increasing).  A sampler goes
 * from tau[N] down to tau[0].  Returns 0 or FPL_EINVAL (N outside 1..T). */
int fpl_schedule_steps(const fpl_schedule_t *s, size_t N, size_t *tau);

/* ---- the target: a Gaussian mixture with an exact score -----------------
 * K equal-weight isotropic components N(mu_k, s^2 I) in d dimensions.  Under
 * the forward process x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps the marginal
 * p_t is again such a mixture, with means sqrt(ab) mu_k and variance
 * v = ab s^2 + 1 - ab, so the ideal noise prediction is known exactly:
 *   w_k(x)  = softmax_k(-||x - sqrt(ab) mu_k||^2 / (2 v))
 *   score   = (sum_k w_k sqrt(ab) mu_k - x) / v
 *   eps*(x) = -sqrt(1 - ab) score = sqrt(1 - ab) / v (x - sum_k w_k sqrt(ab) mu_k)
 * (the softmax is an attention over the K means). */
typedef struct {
    size_t K, d;
    double s;   /* component standard deviation */
    double *mu; /* K x d, row-major */
} fpl_mixture_t;

/* K means evenly on a circle of the given radius in d = 2 (mu_k at angle
 * 2 pi k / K). */
int fpl_mixture_circle(fpl_mixture_t *m, size_t K, double radius, double s);
/* K means drawn N(0, sd_means^2 I) in d dimensions from rng. */
int fpl_mixture_gaussian(fpl_mixture_t *m, size_t K, size_t d, double sd_means, double s,
                         gsl_rng *rng);
void fpl_mixture_free(fpl_mixture_t *m);

/* n fresh samples of the mixture (n x d) from rng: a uniform component,
 * then mu_k + s z. */
void fpl_mixture_sample(const fpl_mixture_t *m, gsl_rng *rng, double *x, size_t n);

/* log p_t(x) of the marginal at alpha_bar ab (binary64, log-sum-exp). */
double fpl_mixture_logp(const fpl_mixture_t *m, double ab, const double *x);

/* The exact noise prediction eps*(x, t) of n states x (n x d, row-major)
 * at alpha_bar ab, into eps (n x d), under policy p.
 *
 * p = fpl_policy_exact: binary64, the three reductions compensated (Dot2 of
 * Ogita, Rump & Oishi, as fpl_dot does under the exact policy).
 *
 * Any other policy rounds every intermediate, in mode p->rnd, by role:
 *   p->w    the keys/values of the attention: the scaled means
 *           c_k = sqrt(ab) mu_k (computed in binary64, rounded once);
 *   p->a    the denoiser's input (x rounded to p->a on entry) and its
 *           elementwise results: each difference x_j - c_kj, the softmax
 *           numerators e_k, the attention output m_j = (sum_k e_k c_kj) / Z,
 *           the residual x_j - m_j and the coefficient sqrt(1 - ab) / v;
 *   p->acc  the reductions, with fpl_dot's rules (products exact or rounded
 *           to p->prod, sequential order; other orders and acc=align go
 *           through fpl_dot itself, trajectory by trajectory): the squared
 *           distances D_k = sum_j (x_j - c_kj)^2, the softmax sum
 *           Z = sum_k e_k and the weighted sums sum_k e_k c_kj; the logits
 *           l_k = -D_k * (1/(2v)) and l_k - max_k l live in p->acc too,
 *           as a fused attention kernel keeps scores in its accumulator
 *           (at d = 64 the squared distances reach the hundreds: beyond
 *           e4m3's 448 long before the softmax, so an FP8 kernel must not
 *           store them in its input format);
 *   exp     e_k = exp(l_k - max l) computed in binary64 and rounded once to
 *           p->a (as fpl_gelu does), so the error is the format's, not a
 *           library's;
 *   p->out  the output eps_j = coef (x_j - m_j), rounded once.
 * Each operation is the exact result rounded once (round-to-odd in binary64
 * first where binary64 cannot hold it: Boldo & Melquiond 2008), and the
 * batched reductions give the bits of fpl_dot on each trajectory.
 * Stochastic rounding draws from sr in a fixed order that depends on n.
 * Returns 0, FPL_ENOMEM. */
int fpl_mixture_eps(const fpl_mixture_t *m, const fpl_policy_t *p, double ab, const double *x,
                    size_t n, double *eps, fpl_sr_t *sr);

/* ---- denoisers ----------------------------------------------------------
 * Anything that maps n states x (n x d) at timestep t (alpha_bar ab) to
 * predicted noise eps (n x d) under a policy: the exact mixture score
 * (fpl_mixture_denoiser) or a learned model.  The samplers see only this. */
typedef struct fpl_denoiser fpl_denoiser_t;
struct fpl_denoiser {
    size_t d;
    int (*eps)(const fpl_denoiser_t *D, const fpl_policy_t *p, size_t t, double ab, const double *x,
               size_t n, double *eps, fpl_sr_t *sr);
    const void *state;
};

/* The exact-score denoiser of mixture m (m must outlive D). */
void fpl_mixture_denoiser(const fpl_mixture_t *m, fpl_denoiser_t *D);

/* ---- samplers -----------------------------------------------------------
 *   DDIM  eta = 0 (Song, Meng & Ermon, ICLR 2021 eq. 12):
 *         x0 = (x - sqrt(1-ab) eps) / sqrt(ab), x' = sqrt(ab') x0 + sqrt(1-ab') eps
 *   DDPM  ancestral, with the respaced beta of the subsampled schedule,
 *         b = 1 - ab / ab' (Nichol & Dhariwal 2021, section 4):
 *         x' = (x - b / sqrt(1-ab) eps) / sqrt(1-b) + sigma z,
 *         sigma^2 = b (1-ab') / (1-ab) (no noise on the step to t = 0)
 *   ODE   Euler on the probability-flow ODE of the VP SDE (Song et al.,
 *         ICLR 2021 eq. 13) in the discrete time: dx/dt = -beta_t/2 (x - eps/sigma_t),
 *         x' = x + beta_t (t - t') / 2 (x - eps / sqrt(1-ab))
 *   HEUN  Heun's second-order method on the same ODE written in
 *         u = x / sqrt(ab) against s = sqrt((1-ab)/ab), where du/ds = eps
 *         (Karras et al., NeurIPS 2022, Algorithm 1); Euler on the last
 *         step (to s = 0).  Two denoiser evaluations per step but the last.
 * Emulated (p not exact): the state and every intermediate of the update
 * are rounded to p->out (each coefficient computed in binary64 and rounded
 * once, each product and sum of the update rounded once); the denoiser runs
 * under p as fpl_mixture_eps says.  The caller keeps the state in p->out
 * (round x_T once before the first step). */
typedef enum {
    FPL_SAMPLER_DDIM = 0,
    FPL_SAMPLER_DDPM = 1,
    FPL_SAMPLER_ODE = 2,
    FPL_SAMPLER_HEUN = 3
} fpl_sampler_t;
#define FPL_NSAMPLERS 4

/* "ddim", "ddpm", "ode", "heun".  Returns 0 or FPL_EINVAL. */
int fpl_sampler_parse(const char *name, fpl_sampler_t *k);
const char *fpl_sampler_name(fpl_sampler_t k);

/* One step of sampler k from timestep t down to t_prev < t on n states
 * x (n x d) into y (may not alias x).  z (n x d) is the step's Gaussian
 * noise for DDPM (ignored otherwise; may be NULL then): the emulated and
 * the exact run of a twin pass the same z.  Returns 0, FPL_EINVAL or the
 * denoiser's status. */
int fpl_sampler_step(fpl_sampler_t k, const fpl_schedule_t *s, const fpl_denoiser_t *D,
                     const fpl_policy_t *p, size_t t, size_t t_prev, const double *x, double *y,
                     size_t n, const double *z, fpl_sr_t *sr);

/* A per-step callback: step i goes from tau[i] to tau[i-1] and has left x
 * (n x d) behind; a non-zero return stops the sampler with that status. */
typedef int (*fpl_sampler_cb)(void *ctx, size_t i, size_t t, size_t t_prev, const double *x,
                              size_t n);

/* The whole sampler: N steps (fpl_schedule_steps) from x (n x d, holding
 * x_T; rounded to p->out first unless p is exact) to x_0, in place.  The
 * DDPM noise is drawn from rng (n x d standard normals per step, in step
 * order).  cb may be NULL.  Returns 0, FPL_EINVAL, FPL_ENOMEM or a
 * callback's status. */
int fpl_sample(fpl_sampler_t k, const fpl_schedule_t *s, const fpl_denoiser_t *D,
               const fpl_policy_t *p, size_t N, double *x, size_t n, gsl_rng *rng,
               fpl_sampler_cb cb, void *ctx, fpl_sr_t *sr);

/* ---- the twin run ---------------------------------------------------------
 * One sampler run under the reference (exact policy, denoiser ref) beside P
 * emulated runs (run q: policy pol[q], denoiser emu[q], or ref when emu is
 * NULL or emu[q] is NULL -- a quantized model against its binary64 original
 * for D4), all from the same x_T and the same noise, in lockstep.  After
 * every step the callback gets, for each run q and trajectory i, the error
 * split of the tracker (track.h), as rms over the d coordinates
 * (||.|| / sqrt(d); inf when non-finite):
 *   introduced[i]  the emulated step vs the exact step, both from run q's state
 *   inherited[i]   the exact step from run q's state vs from the reference state
 * so the total error of run q after the step is at most their sum.  Step 0
 * reports storing x_T in each run's state format (t = t_prev = T; inherited
 * 0); steps 1..N follow in sampling order.
 * x_ref (n x d) holds x_T on entry and the reference x_0 on return; x_emu
 * (P x n x d) receives each run's x_0.  The DDPM noise comes from rng as in
 * fpl_sample; sr[q] is run q's stochastic-rounding stream (sr may be NULL).
 * Returns 0, FPL_EINVAL, FPL_ENOMEM, a denoiser's or the callback's status. */
typedef int (*fpl_twin_cb)(void *ctx, size_t step, size_t t, size_t t_prev, size_t q,
                           const double *introduced, const double *inherited, size_t n);

int fpl_diffusion_twin(fpl_sampler_t k, const fpl_schedule_t *s, const fpl_denoiser_t *ref,
                       const fpl_denoiser_t *const *emu, const fpl_policy_t *pol, fpl_sr_t *sr,
                       size_t P, size_t N, double *x_ref, double *x_emu, size_t n, gsl_rng *rng,
                       fpl_twin_cb cb, void *ctx);

/* ---- distances ----------------------------------------------------------
 * Sliced Wasserstein-1 between two samples of n points (n x d each): the
 * mean over `nproj` directions (drawn uniformly on the sphere from rng) of
 * the 1-D Wasserstein-1 distance of the projections (mean |a_(i) - b_(i)|
 * of the sorted projections).  Returns the distance, or NaN when out of
 * memory or a value is not finite. */
double fpl_sliced_w1(const double *a, const double *b, size_t n, size_t d, size_t nproj,
                     gsl_rng *rng);

/* ---- a learned denoiser (D4; diffusion_model.c) ---------------------------
 * A small MLP eps_theta(x, t) on rows [x_1 .. x_d, t] (d + 1 values, t the
 * integer timestep 1..T as a double): a sinusoidal time embedding of `emb`
 * values appended to x (model.h's TIMEEMB, period 10000, as in DDPM), then
 * `layers` times LINEAR(hidden) + SiLU, then LINEAR(d).  The first linear
 * layer reads d + emb values: choose emb so that d + emb and hidden are
 * multiples of 256, and every weight quantizer (q4_K's super-blocks of 256
 * included) applies to every linear layer.  Parameters drawn by
 * fpl_model_init(seed).  NULL (FPL_EINVAL: d, hidden or layers zero, emb odd
 * or zero; FPL_ENOMEM). */
fpl_model_t *fpl_diffusion_mlp(size_t d, size_t emb, size_t hidden, size_t layers, uint64_t seed);

/* Training with the DDPM noise-prediction loss (Ho et al. 2020, Algorithm 1):
 * each step draws `batch` x_0 from the mixture, t uniform in 1..T and
 * eps ~ N(0, I), forms x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps and takes
 * one optimiser step of fpl_trainer_train on the MSE between
 * eps_theta(x_t, t) and eps.  Adam (lr, then a cosine decay to zero over the
 * steps), under recipe r, `threads` threads (the same bits for any count:
 * the data come from one stream seeded `seed`, in step order). */
typedef struct {
    size_t steps, batch;
    double lr;
    uint64_t seed;
    int threads;
} fpl_diffusion_train_t;

/* Train m (an fpl_diffusion_mlp of the mixture's d) in place.  *loss (may be
 * NULL) receives the mean loss over the last tenth of the steps.  Returns 0,
 * FPL_EINVAL (widths do not match the mixture, zero steps or batch, lr not
 * positive, threads < 1, a non-finite loss) or FPL_ENOMEM. */
int fpl_diffusion_train(fpl_model_t *m, const fpl_mixture_t *mix, const fpl_schedule_t *s,
                        const fpl_recipe_t *r, const fpl_diffusion_train_t *opt, double *loss);

/* A model as a denoiser, evaluated in binary64 by an exact-recipe trainer
 * (model.h: nothing rounded, compensated dot products), in batches of at
 * most max_batch rows.  The model is copied, so m may change or go away
 * afterwards.  D (filled) refers to the returned object, which must outlive
 * it; one object per thread (it owns the activations).  The denoiser
 * refuses every policy but the exact one (FPL_EINVAL): its arithmetic is
 * binary64, and what changes between twins is the weights (quantize a copy
 * with fpl_model_quantize).  NULL on failure (FPL_EINVAL: the model does
 * not map d + 1 values to d, max_batch 0; FPL_ENOMEM). */
typedef struct fpl_model_denoiser fpl_model_denoiser_t;
fpl_model_denoiser_t *fpl_model_denoiser_alloc(const fpl_model_t *m, size_t d, size_t max_batch,
                                               fpl_denoiser_t *D);
void fpl_model_denoiser_free(fpl_model_denoiser_t *md);

/* Quantize every linear layer's weight matrix W (out x in, a row per output
 * channel) of m in place with scheme q: W <- fpl_quant_apply(q, W); biases
 * and every other parameter are left alone.  Returns 0 or FPL_EINVAL (a
 * layer's shape does not fit the scheme; m is then unchanged). */
int fpl_model_quantize(fpl_model_t *m, const fpl_quant_t *q);

#endif /* FPL_DIFFUSION_H */
