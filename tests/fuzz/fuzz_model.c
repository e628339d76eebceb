/* fuzz_model.c -- weight files, as fpl_model_load reads them.  The first
 * byte is a flag: bit 0 set means the harness rewrites the file's last 8
 * bytes with a valid checksum first, so the fuzzer gets past the checksum
 * and exercises the shape checks.  Properties: reading any bytes is safe
 * and either refuses them with a message or gives a model that serializes
 * back to exactly the same bytes, passes a forward pass of the exact recipe
 * without faults, and whose parameter count matches its layers. */
#include <math.h>

#include "fplab.h"
#include "fuzz.h"

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211u;
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int reseal = data[0] & 1;
    size--;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, size);
    if (reseal && size >= 8) {
        uint64_t h = fnv1a(buf, size - 8);
        for (int i = 0; i < 8; i++)
            buf[size - 8 + i] = (uint8_t)(h >> (8 * i));
    }
    fpl_model_t *m = (fpl_model_t *)1;
    int st = fpl_model_deserialize(buf, size, &m);
    if (st != 0) {
        FUZZ_ASSERT(m == NULL, "refused, yet a model was returned");
        FUZZ_ASSERT(fpl_last_error()[0] != '\0', "refused without a message");
        free(buf);
        return 0;
    }
    unsigned char *out;
    size_t len;
    FUZZ_ASSERT(fpl_model_serialize(m, &out, &len) == 0, "%s", fpl_last_error());
    FUZZ_ASSERT(len == size && memcmp(out, buf, size) == 0, "the bytes do not round-trip");
    free(out);
    size_t np = 0, act = m->in;
    for (size_t i = 0; i < m->nlayers; i++) {
        np += m->layers[i].nparams;
        act += m->layers[i].out;
    }
    FUZZ_ASSERT(np == m->nparams, "layers hold %zu parameters, the model %zu", np, m->nparams);
    if (act <= 4096 && m->nparams <= 65536) { /* run small models once */
        fpl_recipe_t r;
        fpl_optim_t o = FPL_OPTIM_SGD_INIT;
        FUZZ_ASSERT(fpl_recipe_parse("exact", &r) == 0, "recipe");
        fpl_trainer_t *t = fpl_trainer_alloc(m, &r, &o, 2, 1);
        FUZZ_ASSERT(t != NULL, "%s", fpl_last_error());
        double *x = calloc(2 * m->in, sizeof *x);
        if (x) {
            for (size_t i = 0; i < 2 * m->in; i++)
                x[i] = (double)(i % 7) - 3;
            FUZZ_ASSERT(fpl_trainer_forward(t, x, 2, 1) != NULL, "%s", fpl_last_error());
            double *d = calloc(2 * m->out, sizeof *d);
            if (d) {
                FUZZ_ASSERT(fpl_trainer_backward(t, d) != NULL, "%s", fpl_last_error());
                free(d);
            }
            free(x);
        }
        fpl_trainer_free(t);
    }
    fpl_model_free(m);
    free(buf);
    return 0;
}
