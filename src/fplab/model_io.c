/* model_io.c -- the weight file of a model (format in model.h) */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "internal.h"
#include "model.h"

#define MAGIC "FPLMODEL"
enum { VERSION = 1, HEADER = 24, RECORD = 32, MAX_LAYERS = 4096 };

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3u;
    }
    return h;
}

static void put(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int fpl_model_serialize(const fpl_model_t *m, unsigned char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    if (m->open)
        return fpl__fail(FPL_EINVAL, "model: cannot save with an open residual block");
    size_t n = HEADER + RECORD * m->nlayers + 8 + 8 * m->nparams + 8;
    unsigned char *b = malloc(n), *p = b;
    if (!b)
        return fpl__fail(FPL_ENOMEM, "model: out of memory");
    memcpy(p, MAGIC, 8);
    put(p + 8, VERSION, 4);
    put(p + 12, m->nlayers, 4);
    put(p + 16, m->in, 8);
    p += HEADER;
    for (size_t i = 0; i < m->nlayers; i++, p += RECORD) {
        const fpl_mlayer_t *L = &m->layers[i];
        int has_out = L->kind == FPL_LAYER_LINEAR || L->kind == FPL_LAYER_TIMEEMB;
        put(p, (uint64_t)L->kind, 4);
        put(p + 4, 0, 4);
        put(p + 8, has_out ? L->out : 0, 8);
        put(p + 16, L->nparams, 8);
        put(p + 24, fpl__bits(L->eps), 8);
    }
    put(p, m->nparams, 8);
    p += 8;
    for (size_t i = 0; i < m->nparams; i++, p += 8)
        put(p, fpl__bits(m->params[i]), 8);
    put(p, fnv1a(b, (size_t)(p - b)), 8);
    *buf = b;
    *len = n;
    return FPL_OK;
}

static int bad(fpl_model_t *m, int status, const char *what)
{
    fpl_model_free(m);
    return fpl__fail(status, "weight file: %s", what);
}

int fpl_model_deserialize(const unsigned char *buf, size_t len, fpl_model_t **out)
{
    *out = NULL;
    if (len < 8 || memcmp(buf, MAGIC, 8) != 0)
        return fpl__fail(FPL_EINVAL, "weight file: not an fplab weight file (bad magic)");
    if (len < HEADER)
        return fpl__fail(FPL_EINVAL, "weight file: truncated (%zu bytes, header needs %d)", len,
                         HEADER);
    uint64_t version = get(buf + 8, 4), L = get(buf + 12, 4), in = get(buf + 16, 8);
    if (version != VERSION)
        return fpl__fail(FPL_EINVAL, "weight file: version %llu (this library reads %d)",
                         (unsigned long long)version, VERSION);
    if (L < 1 || L > MAX_LAYERS)
        return fpl__fail(FPL_EINVAL, "weight file: %llu layers (1..%d)", (unsigned long long)L,
                         MAX_LAYERS);
    size_t fixed = HEADER + RECORD * (size_t)L + 8;
    if (len < fixed + 8)
        return fpl__fail(FPL_EINVAL, "weight file: truncated (%zu bytes, at least %zu needed)",
                         len, fixed + 8);
    uint64_t P = get(buf + fixed - 8, 8);
    if (P > (len - fixed - 8) / 8)
        return fpl__fail(FPL_EINVAL,
                         "weight file: truncated (%zu bytes for %llu parameters)", len,
                         (unsigned long long)P);
    size_t want = fixed + 8 * (size_t)P + 8;
    if (len != want)
        return fpl__fail(FPL_EINVAL, "weight file: %zu bytes of trailing data",
                         len - want);
    if (fnv1a(buf, want - 8) != get(buf + want - 8, 8))
        return fpl__fail(FPL_EINVAL, "weight file: checksum mismatch (corrupt file)");
    if (in < 1 || in > ((uint64_t)1 << 24))
        return fpl__fail(FPL_EINVAL, "weight file: input width %llu", (unsigned long long)in);
    fpl_model_t *m = fpl_model_alloc((size_t)in);
    if (!m)
        return FPL_ENOMEM;
    const unsigned char *r = buf + HEADER;
    for (size_t i = 0; i < L; i++, r += RECORD) {
        uint64_t kind = get(r, 4), o = get(r + 8, 8), np = get(r + 16, 8);
        double eps = fpl__double(get(r + 24, 8));
        int st;
        int has_out = kind == FPL_LAYER_LINEAR || kind == FPL_LAYER_TIMEEMB;
        int has_eps = kind == FPL_LAYER_LAYERNORM || kind == FPL_LAYER_RMSNORM ||
                      kind == FPL_LAYER_TIMEEMB;
        if (get(r + 4, 4) != 0 || (!has_out && o != 0) || (!has_eps && get(r + 24, 8) != 0)) {
            char msg[96];
            snprintf(msg, sizeof msg, "layer %zu has a non-zero unused field", i + 1);
            return bad(m, FPL_EINVAL, msg);
        }
        /* the parameters a layer would allocate must be in the file already */
        uint64_t d = m->out, need = kind == FPL_LAYER_LINEAR      ? o * (d + 1)
                                    : kind == FPL_LAYER_LAYERNORM ? 2 * d
                                    : kind == FPL_LAYER_RMSNORM   ? d
                                                                  : 0;
        if (o > ((uint64_t)1 << 24) || need != np || np > P - m->nparams) {
            char msg[96];
            snprintf(msg, sizeof msg, "layer %zu has an inconsistent parameter count", i + 1);
            return bad(m, FPL_EINVAL, msg);
        }
        switch (kind) {
        case FPL_LAYER_LINEAR:
            st = fpl_model_add_linear(m, (size_t)o);
            break;
        case FPL_LAYER_RELU:
        case FPL_LAYER_GELU:
        case FPL_LAYER_SILU:
        case FPL_LAYER_TANH:
            st = fpl_model_add_activation(m, (fpl_layer_kind_t)kind);
            break;
        case FPL_LAYER_LAYERNORM:
        case FPL_LAYER_RMSNORM:
            st = fpl_model_add_norm(m, (fpl_layer_kind_t)kind, eps);
            break;
        case FPL_LAYER_RES_BEGIN:
            st = fpl_model_add_residual_begin(m);
            break;
        case FPL_LAYER_RES_END:
            st = fpl_model_add_residual_end(m);
            break;
        case FPL_LAYER_TIMEEMB:
            st = o < m->out || o - m->out + 1 > ((uint64_t)1 << 24)
                     ? FPL_EINVAL
                     : fpl_model_add_time_embedding(m, (size_t)(o - m->out + 1), eps);
            break;
        default:
            return bad(m, FPL_EINVAL, "unknown layer kind");
        }
        if (st == FPL_ENOMEM)
            return bad(m, FPL_ENOMEM, "out of memory");
        if (st != 0 || m->layers[m->nlayers - 1].nparams != np) {
            char msg[96];
            snprintf(msg, sizeof msg, "layer %zu has an inconsistent shape", i + 1);
            return bad(m, FPL_EINVAL, msg);
        }
    }
    if (m->open)
        return bad(m, FPL_EINVAL, "a residual block is not closed");
    if (m->nparams != P)
        return bad(m, FPL_EINVAL, "parameter count does not match the layers");
    const unsigned char *q = buf + fixed;
    for (size_t i = 0; i < P; i++, q += 8)
        m->params[i] = fpl__double(get(q, 8));
    *out = m;
    return FPL_OK;
}

int fpl_model_save(const fpl_model_t *m, const char *path)
{
    unsigned char *buf;
    size_t len;
    int st = fpl_model_serialize(m, &buf, &len);
    if (st)
        return st;
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp) {
        free(buf);
        return fpl__fail(FPL_ENOMEM, "model: out of memory");
    }
    snprintf(tmp, pl + 16, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        free(buf);
        free(tmp);
        return fpl__fail(FPL_EIO, "weight file %s: %s", path, strerror(e));
    }
    int ok = fwrite(buf, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    int e = errno;
    free(buf);
    if (!ok || rename(tmp, path) != 0) {
        e = ok ? errno : e;
        unlink(tmp);
        free(tmp);
        return fpl__fail(FPL_EIO, "weight file %s: cannot write: %s", path, strerror(e));
    }
    free(tmp);
    return FPL_OK;
}

int fpl_model_load(const char *path, fpl_model_t **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fpl__fail(FPL_EIO, "weight file %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        if (cap > ((size_t)1 << 34)) { /* 2^31 parameters is the model limit */
            free(buf);
            fclose(f);
            return fpl__fail(FPL_EINVAL, "weight file %s: too large", path);
        }
        unsigned char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf)
        return fpl__fail(FPL_ENOMEM, "weight file %s: out of memory", path);
    if (err) {
        free(buf);
        return fpl__fail(FPL_EIO, "weight file %s: read error", path);
    }
    int st = fpl_model_deserialize(buf, len, out);
    free(buf);
    if (st) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", fpl_last_error());
        return fpl__fail(st, "%s: %s", path, msg);
    }
    return FPL_OK;
}
