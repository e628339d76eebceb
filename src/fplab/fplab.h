/* fplab.h -- umbrella header of libfplab */
#ifndef FPL_FPLAB_H
#define FPL_FPLAB_H

#include "arith.h"
#include "bounds.h"
#include "diffusion.h"
#include "error.h"
#include "format.h"
#include "kernels.h"
#include "logspace.h"
#include "model.h"
#include "policy.h"
#include "plot.h"
#include "quant.h"
#include "records.h"
#include "resstack.h"
#include "round.h"
#include "stats.h"
#include "track.h"
#include "vae.h"

/* The library's version, e.g. "0.1.0". */
const char *fpl_version(void);

#endif /* FPL_FPLAB_H */
