/*
 * model.c - model assembly: loading (config, checkpoint, towers, tokenizer),
 * model info, contexts and the encode entry points.
 */
#include "model.h"

#include <math.h>

void mc_l2_normalize_rows(float *x, int n, int d) {
    for (int i = 0; i < n; i++) {
        float *r = x + (size_t)i * d;
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)r[j] * r[j];
        double nrm = sqrt(s);
        float inv = (float)(1.0 / (nrm > 1e-12 ? nrm : 1e-12));
        for (int j = 0; j < d; j++) r[j] *= inv;
    }
}
