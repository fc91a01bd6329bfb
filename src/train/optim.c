/*
 * train/optim.c - AdamW as PyTorch implements it, the reference's parameter
 * groups (no weight decay on ndim < 2 or bn/ln/bias/logit_scale names), the
 * warm-up + cosine learning-rate schedule of open_clip.
 */
#include "kernels/threads.h"
#include "train/optim.h"
#include "kernels/threads.h"

#include <math.h>
#include <string.h>

mc_adamw_params mc_adamw_default_params(void) {
    mc_adamw_params p;
    memset(&p, 0, sizeof p);
    p.lr = 1e-3f;
    p.beta1 = 0.9f;
    p.beta2 = 0.95f;
    p.eps = 1e-6f;
    p.weight_decay = 0.2f;
    p.logit_scale_max = (float)log(100.0);
    p.grad_clip = 0;
    p.warmup_steps = 0;
    p.total_steps = 0;
    p.accum_steps = 1;
    return p;
}

float mc_train_lr_at(const mc_adamw_params *p, int step) {
    if (p->warmup_steps > 0 && step < p->warmup_steps)
        return (float)((double)p->lr * (step + 1) / p->warmup_steps);
    if (p->total_steps <= 0) return p->lr;
    int e = step - p->warmup_steps, es = p->total_steps - p->warmup_steps;
    if (es <= 0) return p->lr;
    return (float)(0.5 * (1.0 + cos(M_PI * e / es)) * p->lr);
}

int mc_train_param_decays(const char *name, int ndim) {
    if (ndim < 2) return 0;
    if (strstr(name, "bn") || strstr(name, "ln") || strstr(name, "bias") ||
        strstr(name, "logit_scale"))
        return 0;
    return 1;
}

void mc_adamw_update(float *w, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                     float beta2, float eps, float wd, int t) {
    double bc1 = 1.0 - pow((double)beta1, t), bc2 = 1.0 - pow((double)beta2, t);
    float step_size = (float)(lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float decay = (float)(1.0 - (double)lr * wd);
    /* elementwise: threads and vector lanes give the same values as a plain loop */
    int nt = mc_threads_for(12.0 * (double)n);
    #pragma omp parallel for simd num_threads(nt) schedule(static) if (nt > 1)
    for (size_t i = 0; i < n; i++) {
        if (wd != 0) w[i] *= decay;
        m[i] = m[i] * beta1 + g[i] * (1.0f - beta1);
        v[i] = v[i] * beta2 + g[i] * g[i] * (1.0f - beta2);
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        w[i] -= step_size * (m[i] / denom);
    }
}
