/*
 * model/zeroshot.c - zero-shot classification from embeddings (see
 * mobileclip.h): prompts filled in from templates, label classifiers from the
 * prompts' embeddings, label probabilities of an image.  One recipe for
 * 'mobileclip classify', the server and the evaluation.
 */
#include "mobileclip.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t placeholder_at(const char *p) {   /* length of a placeholder at p, or 0 */
    if (p[0] == '{' && p[1] == '}') return 2;
    if (p[0] == '{' && p[1] == 'c' && p[2] == '}') return 3;
    return 0;
}

char *mc_fill_template(const char *tmpl, const char *label) {
    size_t nl = strlen(label), len = 0, k;
    for (const char *p = tmpl; *p; p += k ? k : 1) {
        k = placeholder_at(p);
        size_t add = k ? nl : 1;
        if (len > SIZE_MAX - add - 1) return NULL;
        len += add;
    }
    char *out = malloc(len + 1), *o = out;
    if (!out) return NULL;
    for (const char *p = tmpl; *p;) {
        if ((k = placeholder_at(p))) {
            memcpy(o, label, nl);
            o += nl;
            p += k;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    return out;
}

void mc_zeroshot_classifiers(const float *prompt_emb, int n_labels, int n_templates, int dim, float *out) {
    for (int l = 0; l < n_labels; l++) {
        float *c = out + (size_t)l * dim;
        memset(c, 0, (size_t)dim * sizeof *c);
        for (int t = 0; t < n_templates; t++) {
            const float *e = prompt_emb + ((size_t)l * n_templates + t) * dim;
            for (int k = 0; k < dim; k++) c[k] += e[k];
        }
        double ss = 0;
        for (int k = 0; k < dim; k++) {
            c[k] /= (float)n_templates;
            ss += (double)c[k] * c[k];
        }
        double nrm = sqrt(ss) < 1e-12 ? 1e-12 : sqrt(ss);
        for (int k = 0; k < dim; k++) c[k] = (float)(c[k] / nrm);
    }
}

void mc_zeroshot_probs(const float *image_emb, const float *classifiers, int n_labels, int dim, float logit_scale,
                       double *probs) {
    double scale = logit_scale;
    if (!(scale > 0)) scale = 100.0;   /* a model without the parameter: CLIP's usual value */
    if (scale > 100.0) scale = 100.0;
    double mx = -INFINITY, sum = 0;
    for (int l = 0; l < n_labels; l++) {
        double dot = 0;
        for (int k = 0; k < dim; k++) dot += (double)image_emb[k] * classifiers[(size_t)l * dim + k];
        probs[l] = scale * dot;
        if (probs[l] > mx) mx = probs[l];
    }
    for (int l = 0; l < n_labels; l++) sum += (probs[l] = exp(probs[l] - mx));
    for (int l = 0; l < n_labels; l++) probs[l] /= sum;
}
