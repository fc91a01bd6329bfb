/*
 * train/accum.c - open_clip's gradient accumulation (accum.h).
 */
#include "train/accum.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* x [n, e] -> y = x / |x| per row; keeps the norms. */
static void l2norm_rows(const float *x, int n, int e, float *y, double *norm) {
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int q = 0; q < e; q++) s += (double)x[(size_t)i * e + q] * x[(size_t)i * e + q];
        norm[i] = sqrt(s);
        for (int q = 0; q < e; q++) y[(size_t)i * e + q] = (float)(x[(size_t)i * e + q] / norm[i]);
    }
}

/* d/dx of y = x/|x| given dL/dy: (g - y (y.g)) / |x|, in place on g. */
static void l2norm_back(const float *y, const double *norm, int n, int e, float *g) {
    for (int i = 0; i < n; i++) {
        double dot = 0;
        for (int q = 0; q < e; q++) dot += (double)y[(size_t)i * e + q] * g[(size_t)i * e + q];
        for (int q = 0; q < e; q++)
            g[(size_t)i * e + q] = (float)(((double)g[(size_t)i * e + q] - y[(size_t)i * e + q] * dot) / norm[i]);
    }
}

static void cat_rows(float *dst, const float *src, int n, int w) { memcpy(dst, src, (size_t)n * w * sizeof(float)); }

mc_status mc_trainer_train_step_accum(mc_trainer *t, const mc_train_batch *b, int k, mc_train_result *res,
                                      mc_error *err) {
    return mc_trainer_train_step_dist(t, b, k, NULL, res, err);
}

/* All gradients, flattened, summed over the ranks. */
static mc_status reduce_grads(mc_trainer *t, const mc_train_collective *c, mc_error *err) {
    size_t total = 0;
    for (size_t i = 0; i < mc_trainer_count(t); i++)
        if (mc_trainer_param(t, i)->g) total += mc_trainer_param(t, i)->n;
    float *buf = malloc(total * sizeof(float) + 1);
    if (!buf) return mc_fail(err, MC_ERR_NOMEM, "out of memory (%zu gradient floats)", total);
    size_t off = 0;
    for (size_t i = 0; i < mc_trainer_count(t); i++) {
        mc_tparam *p = mc_trainer_param(t, i);
        if (p->g) { memcpy(buf + off, p->g, p->n * sizeof(float)); off += p->n; }
    }
    mc_status st = c->allreduce_sum(c->ud, buf, total, err);
    off = 0;
    for (size_t i = 0; st == MC_OK && i < mc_trainer_count(t); i++) {
        mc_tparam *p = mc_trainer_param(t, i);
        if (p->g) { memcpy(p->g, buf + off, p->n * sizeof(float)); off += p->n; }
    }
    free(buf);
    return st;
}

mc_status mc_trainer_train_step_dist(mc_trainer *t, const mc_train_batch *b, int k, const mc_train_collective *c,
                                     mc_train_result *res, mc_error *err) {
    if (k < 1 || !b) return mc_fail(err, MC_ERR_INVALID_ARG, "accumulation: no micro-batches");
    const int world = c && c->world > 1 ? c->world : 1, rank = world > 1 ? c->rank : 0;
    if (k == 1 && world == 1) return mc_trainer_train_step(t, b, res, err);
    const mc_dr_loss_params *lp = mc_trainer_loss_params(t);
    const int distill = lp->n_teachers > 0 && lp->w_distill != 0.0f;
    const int syn = b[0].tokens_syn != NULL;
    int D = 0;
    for (int i = 0; i < lp->n_teachers; i++) D += lp->teacher_dims[i];
    int64_t N = 0;
    for (int j = 0; j < k; j++) {
        if (b[j].n < 1 || !b[j].pixels || !b[j].tokens_real || (b[j].tokens_syn != NULL) != syn ||
            (distill && (!b[j].teacher_image || !b[j].teacher_text_real || (syn && !b[j].teacher_text_syn))))
            return mc_fail(err, MC_ERR_INVALID_ARG, "accumulation: micro-batch %d lacks inputs the others have", j);
        N += b[j].n;
    }
    if (N > 1 << 20) return mc_fail(err, MC_ERR_INVALID_ARG, "accumulation: %lld samples in one step", (long long)N);
    const int E = mc_trainer_embed_dim(t);
    if (E < 1) return mc_fail(err, MC_ERR_UNSUPPORTED, "accumulation: the model has no text projection width");
    const int nt = syn ? 3 : 2;   /* image, real text, synthetic text */
    /* local rows: N; global rows G = world * N, this rank's at R0 */
    const int64_t G = (int64_t)world * N, R0 = (int64_t)rank * N;
    size_t fe = (size_t)N * E, ge = (size_t)G * E;
    float *raw = malloc(sizeof(float) * fe * nt), *glob = malloc(sizeof(float) * ge * nt),
          *nrm = malloc(sizeof(float) * ge * nt), *grad = calloc(ge * nt + 1, sizeof(float));
    double *norms = malloc(sizeof(double) * (size_t)G * nt);
    float *teach = distill ? malloc(sizeof(float) * (size_t)N * D * nt) : NULL;
    float *gteach = distill ? malloc(sizeof(float) * (size_t)G * D * nt) : NULL;
    mc_status st = MC_OK;
    if (!raw || !glob || !nrm || !grad || !norms || (distill && (!teach || !gteach))) {
        st = mc_fail(err, MC_ERR_NOMEM, "out of memory");
        goto done;
    }
    float *fi = raw, *fr = raw + fe, *fs = syn ? raw + 2 * fe : NULL;
    double c0 = mc_now_s();
    /* 1. features, no backward */
    int64_t off = 0;
    for (int j = 0; j < k; j++) {
        int n = b[j].n;
        if ((st = mc_trainer_features(t, b[j].pixels, n, b[j].tokens_real, n, fi + off * E, fr + off * E, NULL, NULL,
                                      err)) != MC_OK)
            goto done;
        if (syn && (st = mc_trainer_features(t, NULL, 0, b[j].tokens_syn, n, NULL, fs + off * E, NULL, NULL, err)) != MC_OK)
            goto done;
        if (distill) {
            cat_rows(teach + off * D, b[j].teacher_image, n, D);
            cat_rows(teach + ((size_t)N + off) * D, b[j].teacher_text_real, n, D);
            if (syn) cat_rows(teach + ((size_t)2 * N + off) * D, b[j].teacher_text_syn, n, D);
        }
        off += n;
    }
    /* the global batch: every rank's features (and teacher rows), rank after rank */
    double comm = 0, g0 = mc_now_s();
    for (int s = 0; s < nt; s++) {
        if (world == 1) memcpy(glob + s * ge, raw + s * fe, fe * sizeof(float));
        else if ((st = c->allgather(c->ud, raw + s * fe, fe, glob + s * ge, err)) != MC_OK) goto done;
        if (!distill) continue;
        if (world == 1) memcpy(gteach + (size_t)s * G * D, teach + (size_t)s * N * D, (size_t)N * D * sizeof(float));
        else if ((st = c->allgather(c->ud, teach + (size_t)s * N * D, (size_t)N * D, gteach + (size_t)s * G * D, err)) != MC_OK)
            goto done;
    }
    double c1 = mc_now_s();
    comm += c1 - g0;
    /* 2. the loss over the whole (global) batch */
    for (int s = 0; s < nt; s++) l2norm_rows(glob + s * ge, (int)G, E, nrm + s * ge, norms + (size_t)s * G);
    mc_tparam *ls = mc_trainer_find(t, "logit_scale");
    if (!ls || !ls->g) { st = mc_fail(err, MC_ERR_MISSING_TENSOR, "accumulation: no trainable logit_scale"); goto done; }
    mc_dr_loss_params l = *lp;
    if (!distill) l.n_teachers = 0, l.w_distill = 0;
    float terms[4] = {0, 0, 0, 0}, dscale = 0;
    const float *ti = distill ? gteach : NULL, *tr = distill ? gteach + (size_t)G * D : NULL,
                *tsy = distill && syn ? gteach + (size_t)2 * G * D : NULL;
    mc_train_dr_loss(&l, nrm, nrm + ge, (int)G, E, ti, tr, ls->w[0], terms, grad, grad + ge, &dscale);
    if (syn) mc_train_dr_loss(&l, nrm, nrm + 2 * ge, (int)G, E, ti, tsy, ls->w[0], terms + 2, grad, grad + 2 * ge, &dscale);
    for (int s = 0; s < nt; s++) l2norm_back(nrm + s * ge, norms + (size_t)s * G, (int)G, E, grad + s * ge);
    /* this rank's rows of the gradient */
    for (int s = 0; s < nt; s++) memmove(grad + s * fe, grad + s * ge + (size_t)R0 * E, fe * sizeof(float));
    double c2 = mc_now_s();
    /* 3. each micro-batch again, driven by its slice of the gradient (the
     * recomputed features go to nrm, no longer needed) */
    off = 0;
    for (int j = 0; j < k; j++) {
        int n = b[j].n;
        if ((st = mc_trainer_features(t, b[j].pixels, n, b[j].tokens_real, n, nrm, nrm + fe, grad + off * E,
                                      grad + fe + off * E, err)) != MC_OK)
            goto done;
        if (syn && (st = mc_trainer_features(t, NULL, 0, b[j].tokens_syn, n, NULL, nrm, NULL, grad + 2 * fe + off * E,
                                             err)) != MC_OK)
            goto done;
        off += n;
    }
    if (rank == 0) ls->g[0] += dscale;   /* every rank has the same dscale: counted once in the sum */
    double r0 = mc_now_s();
    if (world > 1 && (st = reduce_grads(t, c, err)) != MC_OK) goto done;
    comm += mc_now_s() - r0;
    mc_trainer_set_accumulated(t, 1);   /* the summed gradient is the batch's: no division */
    double c3 = mc_now_s();
    if (res) {
        memcpy(res->terms, terms, sizeof terms);
        res->loss = terms[0] + terms[1] + terms[2] + terms[3];
        res->t_forward += c1 - c0;
        res->t_loss += c2 - c1;
        res->t_backward += c3 - c2;
        res->t_comm += comm;
    }
    st = mc_trainer_step(t, res, err);
done:
    if (st != MC_OK) mc_trainer_zero_grad(t);
    free(raw);
    free(glob);
    free(gteach);
    free(nrm);
    free(grad);
    free(norms);
    free(teach);
    return st;
}
