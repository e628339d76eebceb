/* policy.c -- parsing and validating precision policies */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "internal.h"
#include "policy.h"

static void set_text(fpl_policy_t *p)
{
    char ord[32];
    if (p->order == FPL_ORDER_BLOCKED)
        snprintf(ord, sizeof ord, "blocked:%zu", p->block);
    else
        snprintf(ord, sizeof ord, "%s", p->order == FPL_ORDER_SEQ ? "seq" : "pairwise");
    char acc[80];
    if (p->align_frac)
        snprintf(acc, sizeof acc, "align:%d:%zu", p->align_frac, p->align_group);
    else
        snprintf(acc, sizeof acc, "%s", p->acc.name);
    snprintf(p->text, sizeof p->text, "w=%s,a=%s,prod=%s,acc=%s,norm=%s,out=%s,rnd=%s,order=%s%s%s",
             p->w.name, p->a.name, p->prod_exact ? "exact" : p->prod.name, acc,
             p->norm.name, p->out.name, fpl_rmode_name(p->rnd), ord,
             p->order == FPL_ORDER_BLOCKED ? ",promote=" : "",
             p->order == FPL_ORDER_BLOCKED ? p->promote.name : "");
}

void fpl_policy_exact(fpl_policy_t *p)
{
    memset(p, 0, sizeof *p);
    fpl_format_parse("fp64", &p->w);
    p->a = p->prod = p->acc = p->norm = p->out = p->promote = p->w;
    p->prod_exact = 1;
    p->rnd = FPL_RNE;
    p->order = FPL_ORDER_SEQ;
    p->exact = 1;
    snprintf(p->text, sizeof p->text, "exact");
}

static int reduction_format_ok(const fpl_format_t *f, fpl_rmode_t rnd, const char *role)
{
    if (f->kind != FPL_KIND_FLOAT)
        return fpl__fail(FPL_EINVAL, "policy: %s=%s must be a floating-point format", role,
                         f->name);
    /* sums are rounded once through binary64 round-to-odd, which needs two
     * spare bits (Boldo & Melquiond, IEEE TC 2008) */
    if (f->mbits > 50 && rnd != FPL_RNE)
        return fpl__fail(FPL_EINVAL, "policy: %s=%s supports only rnd=rne", role, f->name);
    return FPL_OK;
}

/* "align:F" or "align:F:G" (acc=): the aligned-truncating accumulator */
static int parse_align(const char *val, fpl_policy_t *p)
{
    char *e;
    long F = strtol(val + 6, &e, 10), G = 32;
    if (e != val + 6 && *e == ':') {
        const char *g = e + 1;
        G = strtol(g, &e, 10);
        if (e == g)
            G = 0;
    }
    if (e == val + 6 || *e || F < 1 || F > 30 || G < 1 || G > 1024)
        return fpl__fail(FPL_EINVAL,
                         "policy: bad accumulator '%s' (expected align:F or align:F:G with "
                         "1 <= F <= 30 fraction bits and 1 <= G <= 1024 products per slice)",
                         val);
    char name[32];
    snprintf(name, sizeof name, "fp:e=8,m=%ld", F);
    if (fpl_format_parse(name, &p->acc))
        return fpl__fail(FPL_EINVAL, "policy: %s", fpl_last_error());
    p->align_frac = (int)F;
    p->align_group = (size_t)G;
    return FPL_OK;
}

int fpl_policy_parse(const char *spec, fpl_policy_t *p)
{
    char buf[512];
    int have_w = 0, have_out = 0;
    if (strlen(spec) >= sizeof buf)
        return fpl__fail(FPL_EINVAL, "policy: spelling too long");
    if (!strcmp(spec, "exact")) {
        fpl_policy_exact(p);
        return FPL_OK;
    }
    memset(p, 0, sizeof *p);
    fpl_format_parse("fp32", &p->a);
    p->acc = p->norm = p->promote = p->a;
    p->prod_exact = 1;
    p->rnd = FPL_RNE;
    p->order = FPL_ORDER_SEQ;
    strcpy(buf, spec);
    /* formats contain commas (fp:e=4,m=3): a key starts only at "name=" for
     * a known key, so split on commas followed by a known key */
    static const char *const keys[] = {"w", "a", "prod", "acc", "norm", "out", "rnd", "order",
                                       "promote"};
    char *s = buf;
    while (*s) {
        char *eq = strchr(s, '=');
        if (!eq)
            return fpl__fail(FPL_EINVAL, "policy: expected key=value at '%s'", s);
        *eq = '\0';
        int key = -1;
        for (int k = 0; k < 9; k++)
            if (!strcmp(s, keys[k]))
                key = k;
        if (key < 0)
            return fpl__fail(FPL_EINVAL,
                             "policy: unknown key '%s' (expected w, a, prod, acc, norm, out, rnd, "
                             "order, promote)", s);
        char *val = eq + 1, *end = val;
        /* the value runs to the next ",key=" */
        for (;;) {
            char *c = strchr(end, ',');
            if (!c) {
                end = val + strlen(val);
                break;
            }
            int next_is_key = 0;
            for (int k = 0; k < 9; k++) {
                size_t n = strlen(keys[k]);
                if (!strncmp(c + 1, keys[k], n) && c[1 + n] == '=')
                    next_is_key = 1;
            }
            if (next_is_key) {
                end = c;
                break;
            }
            end = c + 1;
        }
        char saved = *end;
        *end = '\0';
        fpl_format_t f;
        int st = FPL_OK;
        switch (key) {
        case 6:
            st = fpl_rmode_parse(val, &p->rnd);
            break;
        case 7:
            if (!strcmp(val, "seq")) {
                p->order = FPL_ORDER_SEQ;
            } else if (!strcmp(val, "pairwise")) {
                p->order = FPL_ORDER_PAIRWISE;
            } else if (!strncmp(val, "blocked:", 8)) {
                char *e;
                long k = strtol(val + 8, &e, 10);
                if (*e || k < 1 || k > (1L << 30))
                    return fpl__fail(FPL_EINVAL, "policy: bad block size in '%s'", val);
                p->order = FPL_ORDER_BLOCKED;
                p->block = (size_t)k;
            } else {
                return fpl__fail(FPL_EINVAL,
                                 "policy: bad order '%s' (expected seq, pairwise, blocked:K)", val);
            }
            break;
        case 2:
            if (!strcmp(val, "exact")) {
                p->prod_exact = 1;
                break;
            }
            goto format;
        case 3:
            if (!strncmp(val, "align:", 6)) {
                st = parse_align(val, p);
                if (st)
                    return st;
                break;
            }
            p->align_frac = 0;
            goto format;
        format:
        default:
            if (fpl_format_parse(val, &f))
                return fpl__fail(FPL_EINVAL, "policy: %s=%s: %s", keys[key], val,
                                 fpl_last_error());
            switch (key) {
            case 0: p->w = f; have_w = 1; break;
            case 1: p->a = f; break;
            case 2: p->prod = f; p->prod_exact = 0; break;
            case 3: p->acc = f; break;
            case 4: p->norm = f; break;
            case 5: p->out = f; have_out = 1; break;
            default: p->promote = f; break;
            }
        }
        if (st)
            return fpl__fail(FPL_EINVAL, "policy: %s", fpl_last_error());
        s = saved ? end + 1 : end;
    }
    if (!have_w)
        p->w = p->a;
    if (!have_out)
        p->out = p->a;
    if (p->a.kind != FPL_KIND_FLOAT || p->out.kind != FPL_KIND_FLOAT)
        return fpl__fail(FPL_EINVAL, "policy: activations and outputs must be floating point");
    int st = reduction_format_ok(&p->acc, p->rnd, "acc");
    if (!st)
        st = reduction_format_ok(&p->norm, p->rnd, "norm");
    if (!st && p->align_frac && p->order == FPL_ORDER_PAIRWISE)
        st = fpl__fail(FPL_EINVAL, "policy: acc=align works with order=seq or blocked:K, "
                                   "not pairwise");
    if (!st && p->order == FPL_ORDER_BLOCKED)
        st = reduction_format_ok(&p->promote, p->rnd, "promote");
    if (!st && !p->prod_exact)
        st = reduction_format_ok(&p->prod, p->rnd, "prod");
    if (st)
        return st;
    set_text(p);
    return FPL_OK;
}
