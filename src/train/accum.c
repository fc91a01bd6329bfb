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

/* The data-parallel loss (accum.h) of this rank's N samples. */
typedef struct dist_loss {
    const mc_train_collective *c;   /* NULL: a world of one */
    int world, rank;
    mc_dr_loss_params lp;           /* n_teachers 0 when the loss does not distill */
    int D;                          /* teacher width (all teachers) */
    double comm;                    /* seconds in collectives, added to */
} dist_loss;

static dist_loss dist_loss_make(mc_trainer *t, const mc_train_collective *c) {
    dist_loss x = {.c = c && c->world > 1 ? c : NULL, .world = 1, .rank = 0, .lp = *mc_trainer_loss_params(t)};
    if (x.c) x.world = c->world, x.rank = c->rank;
    if (!(x.lp.n_teachers > 0 && x.lp.w_distill != 0.0f)) x.lp.n_teachers = 0, x.lp.w_distill = 0;
    for (int i = 0; i < x.lp.n_teachers; i++) x.D += x.lp.teacher_dims[i];
    return x;
}

static mc_status gather(dist_loss *x, const float *local, size_t n, float *global, mc_error *err) {
    if (!x->c) { memcpy(global, local, n * sizeof(float)); return MC_OK; }
    double t0 = mc_now_s();
    mc_status st = x->c->allgather(x->c->ud, local, n, global, err);
    x->comm += mc_now_s() - t0;
    return st;
}

/* feat [nt, N, E]: this rank's L2-normalised image, real-caption and (nt = 3)
 * synthetic-caption embeddings; teach [nt, N, D] the teachers' rows (NULL
 * without distillation).  The features of every rank are gathered, the loss
 * is computed (the global batch's or this rank's rows), and grad [nt, N, E]
 * receives this rank's rows of dL/d embedding, *d_scale its part of dL/d
 * logit_scale (the sum over the ranks is the step's); terms: the global
 * batch's loss terms on every rank. */
static mc_status dist_loss_run(dist_loss *x, int N, int E, int nt, const float *feat, const float *teach,
                               float logit_scale_raw, float terms[4], float *grad, float *d_scale, mc_error *err) {
    const mc_train_collective *c = x->c;
    const int world = x->world, D = x->D, local = c && c->local_loss, with_grad = !c || c->gather_with_grad;
    const int64_t G = (int64_t)world * N, R0 = (int64_t)x->rank * N;
    const size_t fe = (size_t)N * E, ge = (size_t)G * E;
    float *glob = malloc(sizeof(float) * ge * nt), *gall = calloc(ge * nt + 1, sizeof(float));
    float *gteach = D ? malloc(sizeof(float) * (size_t)G * D * nt) : NULL;
    mc_status st = MC_OK;
    if (!glob || !gall || (D && !gteach)) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory (a global batch of %lld)", (long long)G); goto done; }
    /* the global batch: every rank's rows (and teacher rows), rank after rank */
    for (int s = 0; s < nt; s++) {
        if ((st = gather(x, feat + s * fe, fe, glob + s * ge, err)) != MC_OK) goto done;
        if (D && (st = gather(x, teach + (size_t)s * N * D, (size_t)N * D, gteach + (size_t)s * G * D, err)) != MC_OK)
            goto done;
    }
    /* the loss: of the whole global batch, or of this rank's rows (local) */
    const float *ti = D ? gteach : NULL, *tr = D ? gteach + (size_t)G * D : NULL,
                *tsy = D && nt == 3 ? gteach + (size_t)2 * G * D : NULL;
    const int row0 = local ? (int)R0 : 0, nrows = local ? N : (int)G;
    float ds = 0;
    memset(terms, 0, 4 * sizeof(float));
    mc_train_dr_loss_rows(&x->lp, glob, glob + ge, (int)G, E, row0, nrows, ti, tr, logit_scale_raw, terms, gall,
                          gall + ge, &ds);
    if (nt == 3)
        mc_train_dr_loss_rows(&x->lp, glob, glob + 2 * ge, (int)G, E, row0, nrows, ti, tsy, logit_scale_raw, terms + 2,
                              gall, gall + 2 * ge, &ds);
    /* this rank's rows of the feature gradient: with local loss and the
     * gradient through the gather, summed over every rank's loss */
    double t0 = mc_now_s();
    for (int s = 0; s < nt; s++) {
        if (local && with_grad) {
            if ((st = c->reduce_scatter_sum(c->ud, gall + s * ge, fe, grad + s * fe, err)) != MC_OK) goto done;
        } else {
            memcpy(grad + s * fe, gall + s * ge + (size_t)R0 * E, fe * sizeof(float));
        }
    }
    /* without the gradient through the gather, DDP's average over the ranks */
    if (!with_grad)
        for (size_t q = 0; q < fe * nt; q++) grad[q] /= world;
    if (local && (st = c->allreduce_sum(c->ud, terms, 4, err)) != MC_OK) goto done;
    x->comm += mc_now_s() - t0;
    /* the logit scale's gradient: of the whole loss, the same on every rank
     * (counted once in the sum), or of this rank's rows */
    if (local || x->rank == 0) *d_scale += ds;
done:
    free(glob);
    free(gall);
    free(gteach);
    return st;
}

/* The loss hook of a single micro-batch (mc_trainer_forward_backward_loss):
 * the towers' forward and backward run once, around the gathered loss. */
static mc_status dist_loss_hook(void *ud, const mc_train_batch *b, const float *img, const float *real,
                                const float *syn, int n, int e, float logit_scale_raw, float terms[4], float *g_img,
                                float *g_real, float *g_syn, float *d_scale, mc_error *err) {
    dist_loss *x = ud;
    const int nt = syn ? 3 : 2, D = x->D;
    const size_t fe = (size_t)n * e, td = (size_t)n * D;
    float *feat = malloc(sizeof(float) * fe * nt * 2 + 1), *teach = D ? malloc(sizeof(float) * td * nt) : NULL;
    if (!feat || (D && !teach)) { free(feat); free(teach); return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
    float *grad = feat + fe * nt;
    const float *in[3] = {img, real, syn}, *tin[3] = {b->teacher_image, b->teacher_text_real, b->teacher_text_syn};
    float *out[3] = {g_img, g_real, g_syn};
    for (int s = 0; s < nt; s++) {
        memcpy(feat + s * fe, in[s], fe * sizeof(float));
        if (D) memcpy(teach + s * td, tin[s], td * sizeof(float));
    }
    mc_status st = dist_loss_run(x, n, e, nt, feat, teach, logit_scale_raw, terms, grad, d_scale, err);
    for (int s = 0; st == MC_OK && s < nt; s++)
        for (size_t q = 0; q < fe; q++) out[s][q] += grad[s * fe + q];
    free(feat);
    free(teach);
    return st;
}

/* After the backward: the gradients summed over the ranks; the step. */
static mc_status finish_step(mc_trainer *t, const mc_train_collective *c, dist_loss *x, mc_train_result *res,
                             mc_error *err) {
    double t0 = mc_now_s();
    mc_status st = x->c ? reduce_grads(t, c, err) : MC_OK;
    x->comm += mc_now_s() - t0;
    if (st != MC_OK) { mc_trainer_zero_grad(t); return st; }
    mc_trainer_set_accumulated(t, 1);   /* the summed gradient is the batch's: no division */
    if (res) {
        res->t_backward += mc_now_s() - t0;
        res->t_comm += x->comm;
    }
    st = mc_trainer_step(t, res, err);
    if (st != MC_OK) mc_trainer_zero_grad(t);
    return st;
}

mc_status mc_trainer_train_step_dist(mc_trainer *t, const mc_train_batch *b, int k, const mc_train_collective *c,
                                     mc_train_result *res, mc_error *err) {
    if (k < 1 || !b) return mc_fail(err, MC_ERR_INVALID_ARG, "accumulation: no micro-batches");
    dist_loss x = dist_loss_make(t, c);
    if (k == 1 && x.world == 1) return mc_trainer_train_step(t, b, res, err);
    const int distill = x.lp.n_teachers > 0, syn = b[0].tokens_syn != NULL, D = x.D;
    int64_t N = 0;
    for (int j = 0; j < k; j++) {
        if (b[j].n < 1 || !b[j].pixels || !b[j].tokens_real || (b[j].tokens_syn != NULL) != syn ||
            (distill && (!b[j].teacher_image || !b[j].teacher_text_real || (syn && !b[j].teacher_text_syn))))
            return mc_fail(err, MC_ERR_INVALID_ARG, "accumulation: micro-batch %d lacks inputs the others have", j);
        N += b[j].n;
    }
    if (N > 1 << 20) return mc_fail(err, MC_ERR_INVALID_ARG, "accumulation: %lld samples in one step", (long long)N);
    if (k == 1) {   /* data parallelism without accumulation: one forward, the loss in between, one backward */
        mc_status st = mc_trainer_forward_backward_loss(t, b, dist_loss_hook, &x, res, err);
        if (st != MC_OK) { mc_trainer_zero_grad(t); return st; }
        return finish_step(t, c, &x, res, err);
    }
    const int E = mc_trainer_embed_dim(t);
    if (E < 1) return mc_fail(err, MC_ERR_UNSUPPORTED, "accumulation: the model has no text projection width");
    const int nt = syn ? 3 : 2;   /* image, real text, synthetic text */
    const size_t fe = (size_t)N * E;
    float *raw = malloc(sizeof(float) * fe * nt), *nrm = malloc(sizeof(float) * fe * nt),
          *grad = malloc(sizeof(float) * fe * nt + 1);
    double *norms = malloc(sizeof(double) * (size_t)N * nt);
    float *teach = distill ? malloc(sizeof(float) * (size_t)N * D * nt) : NULL;
    mc_status st = MC_OK;
    if (!raw || !nrm || !grad || !norms || (distill && !teach)) {
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
    for (int s = 0; s < nt; s++) l2norm_rows(raw + s * fe, (int)N, E, nrm + s * fe, norms + (size_t)s * N);
    double c1 = mc_now_s();
    /* 2. the loss over all micro-batches (and ranks) together */
    mc_tparam *ls = mc_trainer_find(t, "logit_scale");
    if (!ls || !ls->g) { st = mc_fail(err, MC_ERR_MISSING_TENSOR, "accumulation: no trainable logit_scale"); goto done; }
    float terms[4], dscale = 0;
    if ((st = dist_loss_run(&x, (int)N, E, nt, nrm, teach, ls->w[0], terms, grad, &dscale, err)) != MC_OK) goto done;
    for (int s = 0; s < nt; s++) l2norm_back(nrm + s * fe, norms + (size_t)s * N, (int)N, E, grad + s * fe);
    double c2 = mc_now_s();
    /* 3. each micro-batch again, driven by its slice of the gradient (the
     * recomputed features go to raw, no longer needed) */
    off = 0;
    for (int j = 0; j < k; j++) {
        int n = b[j].n;
        if ((st = mc_trainer_features(t, b[j].pixels, n, b[j].tokens_real, n, raw, raw + fe, grad + off * E,
                                      grad + fe + off * E, err)) != MC_OK)
            goto done;
        if (syn && (st = mc_trainer_features(t, NULL, 0, b[j].tokens_syn, n, NULL, raw, NULL, grad + 2 * fe + off * E,
                                             err)) != MC_OK)
            goto done;
        off += n;
    }
    ls->g[0] += dscale;
    if (res) {
        memcpy(res->terms, terms, sizeof terms);
        res->loss = terms[0] + terms[1] + terms[2] + terms[3];
        res->t_forward += c1 - c0;
        res->t_loss += c2 - c1;
        res->t_backward += mc_now_s() - c2;
    }
    st = finish_step(t, c, &x, res, err);
done:
    if (st != MC_OK) mc_trainer_zero_grad(t);
    free(raw);
    free(nrm);
    free(grad);
    free(norms);
    free(teach);
    return st;
}
