/* logspace.c -- log-sum-exp and HMM forward recursions under a policy */
#include <math.h>
#include <stdlib.h>

#include "arith.h"
#include "error.h"
#include "internal.h"
#include "logspace.h"

static double rn(const fpl_policy_t *p, const fpl_format_t *f, double v, fpl_sr_t *sr)
{
    return p->exact ? v : fpl_round(f, v, p->rnd, sr);
}

/* lse with a caller's scratch of n doubles */
static double lse(const fpl_policy_t *p, const double *x, size_t n, double *e, fpl_sr_t *sr)
{
    double m = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i]))
            return NAN;
        if (x[i] > m)
            m = x[i];
    }
    if (isinf(m)) /* every term -inf (or none), or a +inf term */
        return m;
    for (size_t i = 0; i < n; i++)
        e[i] = x[i] == -INFINITY ? 0.0 : rn(p, &p->a, exp(rn(p, &p->a, x[i] - m, sr)), sr);
    double s = fpl_sum(p, e, n, sr); /* >= 1: the max term is exp(0) = 1 */
    double l = rn(p, &p->a, log(s), sr);
    return rn(p, &p->a, m + l, sr);
}

double fpl_logsumexp(const fpl_policy_t *p, const double *x, size_t n, fpl_sr_t *sr)
{
    double stack[64];
    double *e = n <= 64 ? stack : malloc(n * sizeof *e);
    if (!e) {
        fpl__fail(FPL_ENOMEM, "logsumexp: out of memory for %zu terms", n);
        return NAN;
    }
    double r = lse(p, x, n, e, sr);
    if (e != stack)
        free(e);
    return r;
}

/* running sum of the log-likelihood: in the accumulator, or compensated */
typedef struct {
    double s, c;
} acc_t;

static void acc_add(const fpl_policy_t *p, acc_t *a, double v, fpl_sr_t *sr)
{
    if (!p->exact) {
        a->s = fpl_round(&p->acc, a->s + v, p->rnd, sr);
        return;
    }
    double t = a->s + v; /* Neumaier */
    if (fabs(a->s) >= fabs(v))
        a->c += (a->s - t) + v;
    else
        a->c += (v - t) + a->s;
    a->s = t;
}

int fpl_hmm_forward(const fpl_policy_t *p, const fpl_hmm_t *h, fpl_hmm_variant_t v,
                    const unsigned *obs, size_t L, const size_t *ck, size_t nck, double *ll,
                    fpl_sr_t *sr)
{
    size_t S = h->S, O = h->O;
    if (S < 1 || O < 1 || S > 4096 || O > 65536 || L < 1 || (v != FPL_HMM_LOG &&
        v != FPL_HMM_SCALED && v != FPL_HMM_NAIVE))
        return fpl__fail(FPL_EINVAL, "hmm: bad sizes (S = %zu, O = %zu, L = %zu) or variant", S,
                         O, L);
    for (size_t k = 0; k < nck; k++)
        if (ck[k] < 1 || ck[k] > L || (k && ck[k] <= ck[k - 1]))
            return fpl__fail(FPL_EINVAL, "hmm: checkpoints must rise within 1..%zu", L);
    for (size_t t = 0; t < L; t++)
        if (obs[t] >= O)
            return fpl__fail(FPL_EINVAL, "hmm: symbol %u at t = %zu is not below O = %zu",
                             obs[t], t, O);
    /* tables in the format: AT[j*S + i] = A[i*S + j] (or its log) */
    double *AT = malloc(S * S * sizeof *AT), *Bq = malloc(S * O * sizeof *Bq),
           *pq = malloc(S * sizeof *pq), *al = malloc(S * sizeof *al),
           *nx = malloc(S * sizeof *nx), *tmp = malloc(S * sizeof *tmp),
           *scr = malloc(S * sizeof *scr);
    int rc = 0;
    if (!AT || !Bq || !pq || !al || !nx || !tmp || !scr) {
        rc = fpl__fail(FPL_ENOMEM, "hmm: out of memory for S = %zu, O = %zu", S, O);
        goto done;
    }
    int lg = v == FPL_HMM_LOG;
    for (size_t i = 0; i < S; i++)
        for (size_t j = 0; j < S; j++)
            AT[j * S + i] = rn(p, &p->a, lg ? log(h->A[i * S + j]) : h->A[i * S + j], sr);
    for (size_t i = 0; i < S * O; i++)
        Bq[i] = rn(p, &p->a, lg ? log(h->B[i]) : h->B[i], sr);
    for (size_t j = 0; j < S; j++)
        pq[j] = rn(p, &p->a, lg ? log(h->pi[j]) : h->pi[j], sr);

    acc_t sum = {0, 0};
    size_t k = 0;
    for (size_t t = 0; t < L && k < nck; t++) {
        const double *b = Bq + obs[t]; /* b[j * O] */
        for (size_t j = 0; j < S; j++) {
            const double *col = AT + j * S;
            if (lg) {
                double prev;
                if (t == 0) {
                    prev = pq[j];
                } else {
                    for (size_t i = 0; i < S; i++)
                        tmp[i] = rn(p, &p->a, al[i] + col[i], sr);
                    prev = lse(p, tmp, S, scr, sr);
                }
                nx[j] = rn(p, &p->a, prev + b[j * O], sr);
            } else {
                double prev = t == 0 ? pq[j] : rn(p, &p->a, fpl_dot(p, al, col, S, sr), sr);
                nx[j] = rn(p, &p->a, prev * b[j * O], sr);
            }
        }
        double *sw = al;
        al = nx;
        nx = sw;
        if (v == FPL_HMM_SCALED) {
            double c = fpl_sum(p, al, S, sr);
            if (c > 0 && isfinite(c)) {
                for (size_t j = 0; j < S; j++)
                    al[j] = rn(p, &p->a, al[j] / c, sr);
                acc_add(p, &sum, rn(p, &p->a, log(c), sr), sr);
            } else {
                acc_add(p, &sum, c > 0 ? INFINITY : -INFINITY, sr);
            }
        }
        if (t + 1 == ck[k]) {
            if (v == FPL_HMM_LOG)
                ll[k] = lse(p, al, S, scr, sr);
            else if (v == FPL_HMM_SCALED)
                ll[k] = sum.s + sum.c;
            else
                ll[k] = rn(p, &p->a, log(fpl_sum(p, al, S, sr)), sr);
            k++;
        }
    }
done:
    free(AT);
    free(Bq);
    free(pq);
    free(al);
    free(nx);
    free(tmp);
    free(scr);
    return rc;
}
