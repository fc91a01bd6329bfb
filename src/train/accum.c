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

/* Every gradient summed over the ranks, in buckets of at most
 * MC_TRAIN_GRAD_BUCKET_FLOATS floats filled from the last parameter back (the
 * order in which the backward pass finishes them); a parameter larger than a
 * bucket goes alone, in place. */
static mc_status reduce_grads(mc_trainer *t, const mc_train_collective *c, mc_error *err) {
    const size_t cap = MC_TRAIN_GRAD_BUCKET_FLOATS;
    float *buf = malloc(cap * sizeof(float));
    if (!buf) return mc_fail(err, MC_ERR_NOMEM, "out of memory (a gradient bucket of %zu floats)", cap);
    mc_status st = MC_OK;
    size_t i = mc_trainer_count(t);
    while (st == MC_OK && i > 0) {
        mc_tparam *p = mc_trainer_param(t, i - 1);
        if (!p->g) { i--; continue; }
        if (p->n > cap) { st = c->allreduce_sum(c->ud, p->g, p->n, err); i--; continue; }
        /* params i-1, i-2, ..., first fill the bucket, in that order */
        size_t first = i, fill = 0;
        while (first > 0) {
            mc_tparam *q = mc_trainer_param(t, first - 1);
            if (q->g && (q->n > cap || fill + q->n > cap)) break;
            if (q->g) { memcpy(buf + fill, q->g, q->n * sizeof(float)); fill += q->n; }
            first--;
        }
        st = c->allreduce_sum(c->ud, buf, fill, err);
        for (size_t j = i, off = 0; st == MC_OK && j > first; j--) {
            mc_tparam *q = mc_trainer_param(t, j - 1);
            if (q->g) { memcpy(q->g, buf + off, q->n * sizeof(float)); off += q->n; }
        }
        i = first;
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
    /* 2. the loss: of the whole global batch, or of this rank's rows (local) */
    const int local = world > 1 && c->local_loss, with_grad = world == 1 || c->gather_with_grad;
    for (int s = 0; s < nt; s++) l2norm_rows(glob + s * ge, (int)G, E, nrm + s * ge, norms + (size_t)s * G);
    mc_tparam *ls = mc_trainer_find(t, "logit_scale");
    if (!ls || !ls->g) { st = mc_fail(err, MC_ERR_MISSING_TENSOR, "accumulation: no trainable logit_scale"); goto done; }
    mc_dr_loss_params l = *lp;
    if (!distill) l.n_teachers = 0, l.w_distill = 0;
    float terms[4] = {0, 0, 0, 0}, dscale = 0;
    const float *ti = distill ? gteach : NULL, *tr = distill ? gteach + (size_t)G * D : NULL,
                *tsy = distill && syn ? gteach + (size_t)2 * G * D : NULL;
    const int row0 = local ? (int)R0 : 0, nrows = local ? (int)N : (int)G;
    mc_train_dr_loss_rows(&l, nrm, nrm + ge, (int)G, E, row0, nrows, ti, tr, ls->w[0], terms, grad, grad + ge, &dscale);
    if (syn)
        mc_train_dr_loss_rows(&l, nrm, nrm + 2 * ge, (int)G, E, row0, nrows, ti, tsy, ls->w[0], terms + 2, grad,
                              grad + 2 * ge, &dscale);
    double c2 = mc_now_s();
    /* this rank's rows of the feature gradient: with local loss and the
     * gradient through the gather, summed over every rank's loss */
    for (int s = 0; s < nt; s++) {
        if (local && with_grad) {
            /* raw (this rank's features, gathered already) takes the sum */
            if ((st = c->reduce_scatter_sum(c->ud, grad + s * ge, fe, raw + s * fe, err)) != MC_OK) goto done;
            memcpy(grad + s * fe, raw + s * fe, fe * sizeof(float));
        } else {
            memmove(grad + s * fe, grad + s * ge + (size_t)R0 * E, fe * sizeof(float));
        }
    }
    /* without the gradient through the gather, DDP's average over the ranks */
    if (!with_grad)
        for (size_t q = 0; q < fe * nt; q++) grad[q] /= world;
    if (local && (st = c->allreduce_sum(c->ud, terms, 4, err)) != MC_OK) goto done;
    comm += mc_now_s() - c2;
    for (int s = 0; s < nt; s++)
        l2norm_back(nrm + s * ge + (size_t)R0 * E, norms + (size_t)s * G + R0, (int)N, E, grad + s * fe);
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
    /* the logit scale's gradient: of the whole loss, the same on every rank (counted
     * once in the sum), or of this rank's rows */
    if (local || rank == 0) ls->g[0] += dscale;
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
