/*
 * train/check.c - runs a training fixture folder (config.json or
 * open_clip_config.json, init.pt or init.safetensors, expected.safetensors
 * with inputs, metadata and expected loss, gradients and states, optionally
 * the step-1 train-mode features) through the trainer and compares every
 * figure; the comparisons are reported through a callback (the library never
 * prints).
 */
#include "train/trainer.h"
#include "train/check.h"

#include "core/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct chk {
    mc_train_report_fn fn;
    void *ud;
    int pass, fail;
} chk;

static void report(chk *c, const char *what, double e, double tol) {
    int ok = e <= tol && e == e;
    if (ok) c->pass++; else c->fail++;
    if (c->fn) c->fn(c->ud, what, e, tol, ok);
}

/* JSON array of numbers in metadata key -> out (returns count) */
static int meta_floats(const mc_checkpoint *ck, const char *key, float *out, int cap) {
    const char *s = mc_checkpoint_metadata(ck, key);
    if (!s) return -1;
    mc_json *j = NULL;
    if (mc_json_parse(s, strlen(s), &j, NULL) != MC_OK) return -1;
    int n = -1;
    if (j->type == MC_JSON_ARRAY) {
        n = 0;
        for (size_t i = 0; i < j->len && n < cap; i++) out[n++] = (float)mc_json_number(&j->items[i], 0);
    } else if (j->type == MC_JSON_NUMBER) {
        out[0] = (float)j->number;
        n = 1;
    }
    mc_json_free(j);
    return n;
}

mc_status mc_train_fixture_settings(const mc_checkpoint *ex, mc_dr_loss_params *lp,
                                    mc_adamw_params *op, float *bn_momentum, int *steps,
                                    mc_error *err) {
    memset(lp, 0, sizeof *lp);
    *op = mc_adamw_default_params();
    float dims[8], sc[8], w[2];
    int nd = meta_floats(ex, "teacher_dims", dims, 8);
    int ns = meta_floats(ex, "distill_logit_scale", sc, 8);
    int nw = meta_floats(ex, "loss_weights", w, 2);
    if (nd < 1 || nw != 2)
        return mc_fail(err, MC_ERR_FORMAT, "expected.safetensors: metadata needs teacher_dims and loss_weights");
    lp->n_teachers = nd;
    for (int i = 0; i < nd; i++) {
        lp->teacher_dims[i] = (int)dims[i];
        lp->teacher_scales[i] = ns == nd ? sc[i] : (ns >= 1 ? sc[0] : 100.0f);
    }
    lp->w_contrastive = w[0];
    lp->w_distill = w[1];
    lp->lambda = w[1];
    *bn_momentum = 0.1f;
    *steps = 2;
    const char *oj = mc_checkpoint_metadata(ex, "optimizer_json");
    if (oj) {
        mc_json *j = NULL;
        mc_status st = mc_json_parse(oj, strlen(oj), &j, err);
        if (st != MC_OK) return st;
        const char *name = mc_json_str(mc_json_get(j, "name"), "adamw");
        if (strcmp(name, "adamw")) {
            mc_json_free(j);
            return mc_fail(err, MC_ERR_UNSUPPORTED, "optimizer '%s' (only adamw)", name);
        }
        op->lr = (float)mc_json_number(mc_json_get(j, "lr"), op->lr);
        const mc_json *b = mc_json_get(j, "betas");
        if (b && b->type == MC_JSON_ARRAY && b->len == 2) {
            op->beta1 = (float)mc_json_number(&b->items[0], 0.9);
            op->beta2 = (float)mc_json_number(&b->items[1], 0.999);
        }
        op->eps = (float)mc_json_number(mc_json_get(j, "eps"), op->eps);
        op->weight_decay = (float)mc_json_number(mc_json_get(j, "weight_decay"), op->weight_decay);
        op->logit_scale_max = (float)mc_json_number(mc_json_get(j, "logit_scale_max"), op->logit_scale_max);
        op->grad_clip = (float)mc_json_number(mc_json_get(j, "grad_clip"), 0);
        op->warmup_steps = mc_json_int(mc_json_get(j, "warmup"), 0);
        op->total_steps = mc_json_int(mc_json_get(j, "total_steps"), 0);
        op->accum_steps = mc_json_int(mc_json_get(j, "accum_freq"), 1);
        *bn_momentum = (float)mc_json_number(mc_json_get(j, "bn_momentum"), 0.1);
        *steps = mc_json_int(mc_json_get(j, "steps"), 2);
        mc_json_free(j);
    }
    return MC_OK;
}

static const float *need_f32(const mc_checkpoint *ex, const char *name, int64_t numel, mc_error *err,
                             mc_status *st) {
    const mc_tensor_info *t = mc_checkpoint_find(ex, name);
    if (!t) { *st = mc_fail(err, MC_ERR_MISSING_TENSOR, "expected.safetensors: no '%s'", name); return NULL; }
    if (t->dtype != MC_DTYPE_F32 || (numel >= 0 && t->numel != numel)) {
        *st = mc_fail(err, MC_ERR_SHAPE, "expected.safetensors: '%s' has the wrong dtype or size", name);
        return NULL;
    }
    return t->data;
}

static int32_t *tokens_i32(const mc_tensor_info *t) {
    int32_t *o = malloc(t->numel * sizeof *o + 4);
    if (!o) return NULL;
    for (int64_t i = 0; i < t->numel; i++) {
        if (t->dtype == MC_DTYPE_I64) { int64_t v; memcpy(&v, (const char *)t->data + 8 * i, 8); o[i] = (int32_t)v; }
        else if (t->dtype == MC_DTYPE_I32) { int32_t v; memcpy(&v, (const char *)t->data + 4 * i, 4); o[i] = v; }
        else { free(o); return NULL; }
    }
    return o;
}

/* The tolerance of each step-1 gradient element, kept per parameter for the
 * state comparisons (indexed like the trainer's parameters). */
typedef struct gtols {
    double **tol;
    size_t n;
} gtols;

/* Gradient element k of a parameter: max(1e-4 max|ref|, sqrt(n) u S[k]) with
 * u = 2^-24 and S[k] the sum of |terms| of the final summation that produced
 * the element (mc_tparam.gabs), n the number of terms (mc_tparam.gterms).
 * A float sum of n terms is only determined to about sqrt(n) u S (the
 * probabilistic rounding-error bound of recursive summation): where the terms
 * cancel (e.g. a 1x1 conv before a batch-statistics BatchNorm, whose exact
 * gradient is a 1e-5-sized remainder of terms 1e5 times larger) the
 * reference's own float32 value carries that error.  For sums that do not
 * cancel S[k] <= max|ref| and sqrt(n) u < 1e-4 (n < 2^20), so the first term
 * decides.  See docs/training.md, "Conditioning". */
static double grad_tol(const mc_tparam *p, size_t k, double maxabs) {
    double t = 1e-4 * maxabs + 1e-12;
    if (p->gabs) {
        double r = sqrt((double)p->gterms) * ldexp(1.0, -24) * p->gabs[k];
        if (r > t) t = r;
    }
    return t;
}

/* Parameters and buffers after step `step`.  A parameter element's tolerance
 * is 1e-5 (relative above 1) plus what its step-1 gradient tolerance gt allows
 * through AdamW: an update lr g/(|g| + eps) moves by lr eps dg/(|g| + eps)^2
 * when g moves by dg (at most 2 lr), so elements whose reference gradient is
 * at the level of its tolerance are held to what their gradient determines.
 * Buffers: 1e-5 relative after step 1, 1e-4 later (they see the previous
 * step's weights). */
static void compare_state(chk *c, mc_trainer *tr, const mc_checkpoint *ex, int step, float lr,
                          float eps, const gtols *gt) {
    char pre[64], what[600];
    snprintf(pre, sizeof pre, "step%d/state/", step);
    size_t pl = strlen(pre);
    int seen = 0;
    for (size_t i = 0; i < mc_checkpoint_count(ex); i++) {
        const mc_tensor_info *e = mc_checkpoint_tensor(ex, i);
        if (strncmp(e->name, pre, pl)) continue;
        seen++;
        mc_tparam *p = mc_trainer_find(tr, e->name + pl);
        snprintf(what, sizeof what, "%s", e->name);
        if (!p) { report(c, what, INFINITY, 0); continue; }
        if (p->is_counter) {
            int64_t v = 0;
            if (e->dtype == MC_DTYPE_I64) memcpy(&v, e->data, 8);
            report(c, what, (double)llabs(v - p->count), 0);
            continue;
        }
        if (e->dtype != MC_DTYPE_F32 || (size_t)e->numel != p->n) { report(c, what, INFINITY, 0); continue; }
        char gname[600];
        snprintf(gname, sizeof gname, "step1/grad/%s", e->name + pl);
        const mc_tensor_info *eg = p->is_buffer ? NULL : mc_checkpoint_find(ex, gname);
        const float *rg = eg && eg->dtype == MC_DTYPE_F32 && (size_t)eg->numel == p->n ? eg->data : NULL;
        const double *gtol = NULL;
        for (size_t j = 0; j < gt->n && rg; j++)
            if (mc_trainer_param(tr, j) == p) gtol = gt->tol[j];
        if (!gtol) rg = NULL;
        const float *r = e->data;
        double worst = -1, wd = 0, wt = 0;
        for (size_t k = 0; k < p->n; k++) {
            double d = fabs((double)r[k] - p->w[k]);
            double base = p->is_buffer && step > 1 ? 1e-4 : 1e-5;
            double tol = base * (fabs(r[k]) > 1 ? fabs(r[k]) : 1);
            if (rg) {
                double q = fabs(rg[k]) + eps;
                double amp = eps * gtol[k] / (q * q);
                tol += step * lr * (amp < 2 ? amp : 2);
            }
            double ratio = d != d ? INFINITY : d / tol;
            if (ratio > worst) { worst = ratio; wd = d != d ? INFINITY : d; wt = tol; }
        }
        report(c, what, wd, wt);
    }
    snprintf(what, sizeof what, "step%d/state: tensors present", step);
    report(c, what, seen > 0 ? 0 : 1, 0);
}

/* max-abs difference of n floats against the reference tensor `name` of ex,
 * reported against 1e-4 max(1, max|ref|); absent references are skipped. */
static void compare_floats(chk *c, const mc_checkpoint *ex, const char *name, const float *got, size_t n) {
    const mc_tensor_info *r = mc_checkpoint_find(ex, name);
    if (!r) return;
    if (r->dtype != MC_DTYPE_F32 || (size_t)r->numel != n) { report(c, name, INFINITY, 0); return; }
    const float *v = r->data;
    double mr = 1, e = 0;
    for (size_t k = 0; k < n; k++) {
        double d = fabs((double)v[k] - got[k]);
        if (fabs(v[k]) > mr) mr = fabs(v[k]);
        if (!(d <= e)) e = d;
    }
    report(c, name, e, 1e-4 * mr);
}

/* The step-1 train-mode features (before L2 normalisation) when the fixture
 * holds them (step1/features/image, .../text_real, .../text_syn): a second
 * trainer from the same weights runs the towers alone, as the step does
 * (BatchNorm on batch statistics gives the same outputs). */
static mc_status compare_features(chk *c, const mc_train_config *cfg, const mc_checkpoint *init,
                                  const char *ipath, const mc_dr_loss_params *lp, const mc_adamw_params *op,
                                  const mc_checkpoint *ex, const mc_train_batch *b, mc_error *err) {
    static const char *names[3] = {"step1/features/image", "step1/features/text_real", "step1/features/text_syn"};
    if (!mc_checkpoint_find(ex, names[0]) && !mc_checkpoint_find(ex, names[1]) && !mc_checkpoint_find(ex, names[2]))
        return MC_OK;
    mc_trainer *t = NULL;
    mc_status st = mc_trainer_new(cfg, init, ipath, lp, op, &t, err);
    if (st != MC_OK) return st;
    int e = mc_trainer_embed_dim(t), n = b->n;
    float *f = calloc((size_t)3 * n * (e > 0 ? e : 1) + 1, sizeof(float));
    if (!f) { mc_trainer_free(t); return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
    float *fi = f, *fr = f + (size_t)n * e, *fs = fr + (size_t)n * e;
    st = mc_trainer_features(t, b->pixels, n, b->tokens_real, n, fi, fr, NULL, NULL, err);
    if (st == MC_OK) st = mc_trainer_features(t, NULL, 0, b->tokens_syn, n, NULL, fs, NULL, NULL, err);
    if (st == MC_OK)
        for (int k = 0; k < 3; k++) compare_floats(c, ex, names[k], f + (size_t)k * n * e, (size_t)n * e);
    free(f);
    mc_trainer_free(t);
    return st;
}

mc_status mc_train_check_fixture(const char *dir, const char *init_path, mc_train_report_fn fn,
                                 void *ud, int *n_pass, int *n_fail, mc_error *err) {
    chk c = {fn, ud, 0, 0};
    gtols gt = {NULL, 0};
    char path[4096];
    mc_train_config cfg;
    mc_checkpoint *init = NULL, *ex = NULL;
    mc_trainer *tr = NULL;
    int32_t *tr_tok = NULL, *ts_tok = NULL;
    mc_status st;
    if ((st = mc_train_config_load(dir, &cfg, err)) != MC_OK) return st;
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    if ((st = mc_checkpoint_open(path, &ex, err)) != MC_OK) return st;
    if (!init_path) {
        snprintf(path, sizeof path, "%s/init.pt", dir);
        if (!mc_path_is_file(path)) snprintf(path, sizeof path, "%s/init.safetensors", dir);
        init_path = path;
    }
    char ipath[4096];
    snprintf(ipath, sizeof ipath, "%s", init_path);
    if ((st = mc_checkpoint_open(ipath, &init, err)) != MC_OK) goto done;
    mc_dr_loss_params lp;
    mc_adamw_params op;
    int steps;
    if ((st = mc_train_fixture_settings(ex, &lp, &op, &cfg.bn_momentum, &steps, err)) != MC_OK) goto done;
    const mc_tensor_info *px = mc_checkpoint_find(ex, "pixels");
    const mc_tensor_info *tkr = mc_checkpoint_find(ex, "tokens_real"), *tks = mc_checkpoint_find(ex, "tokens_syn");
    if (!px || px->ndim != 4 || px->dtype != MC_DTYPE_F32 || !tkr || !tks || tkr->ndim != 2) {
        st = mc_fail(err, MC_ERR_MISSING_TENSOR, "expected.safetensors: needs pixels [n,3,S,S], tokens_real, tokens_syn");
        goto done;
    }
    int n = (int)px->shape[0];
    cfg.image_size = (int)px->shape[2];
    cfg.context_length = (int)tkr->shape[1];
    int td = 0;
    for (int i = 0; i < lp.n_teachers; i++) td += lp.teacher_dims[i];
    mc_train_batch b;
    b.n = n;
    b.pixels = px->data;
    b.teacher_image = need_f32(ex, "teacher_image", (int64_t)n * td, err, &st);
    b.teacher_text_real = b.teacher_image ? need_f32(ex, "teacher_text_real", (int64_t)n * td, err, &st) : NULL;
    b.teacher_text_syn = b.teacher_text_real ? need_f32(ex, "teacher_text_syn", (int64_t)n * td, err, &st) : NULL;
    if (!b.teacher_text_syn) goto done;
    tr_tok = tokens_i32(tkr);
    ts_tok = tokens_i32(tks);
    if (!tr_tok || !ts_tok || tks->numel != tkr->numel) {
        st = mc_fail(err, MC_ERR_FORMAT, "expected.safetensors: tokens must be integer [n, context]");
        goto done;
    }
    b.tokens_real = tr_tok;
    b.tokens_syn = ts_tok;
    if ((st = mc_trainer_new(&cfg, init, ipath, &lp, &op, &tr, err)) != MC_OK) goto done;
    if ((st = compare_features(&c, &cfg, init, ipath, &lp, &op, ex, &b, err)) != MC_OK) goto done;
    if ((st = mc_trainer_track_grad_terms(tr, 1, err)) != MC_OK) goto done;
    gt.n = mc_trainer_count(tr);
    gt.tol = calloc(gt.n + 1, sizeof *gt.tol);
    int oom = !gt.tol;
    for (size_t i = 0; !oom && i < gt.n; i++) {
        mc_tparam *p = mc_trainer_param(tr, i);
        if (p->g && !(gt.tol[i] = calloc(p->n + 1, sizeof(double)))) oom = 1;
    }
    if (oom) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); goto done; }

    for (int s = 1; s <= steps; s++) {
        mc_train_result res;
        if ((st = mc_trainer_forward_backward(tr, &b, &res, err)) != MC_OK) goto done;
        char what[600];
        snprintf(what, sizeof what, "step%d/loss", s);
        const mc_tensor_info *el = mc_checkpoint_find(ex, what);
        if (el && el->dtype == MC_DTYPE_F32 && el->numel == 1) {
            float r = *(const float *)el->data;
            report(&c, what, fabs(r - res.loss), 1e-5 * fabs(r));
        } else if (s == 1) {
            report(&c, what, INFINITY, 0);
        }
        snprintf(what, sizeof what, "step%d/loss_terms", s);
        const mc_tensor_info *lt = mc_checkpoint_find(ex, what);
        if (lt && lt->dtype == MC_DTYPE_F32 && lt->numel == 4) {
            const float *r = lt->data;
            for (int k = 0; k < 4; k++) {
                static const char *nm[4] = {"contrastive real", "distill real", "contrastive syn", "distill syn"};
                char w2[700];
                snprintf(w2, sizeof w2, "%s[%d] %s", what, k, nm[k]);
                report(&c, w2, fabs(r[k] - res.terms[k]), 1e-5 * fabs(r[k]) + 1e-12);
            }
        } else if (s == 1) {
            report(&c, what, INFINITY, 0);
        }
        /* gradients */
        char gpre[64];
        snprintf(gpre, sizeof gpre, "step%d/grad/", s);
        int ngrad = 0;
        for (size_t i = 0; i < mc_trainer_count(tr); i++) {
            mc_tparam *p = mc_trainer_param(tr, i);
            if (!p->g) continue;
            snprintf(what, sizeof what, "%s%s", gpre, p->name);
            const mc_tensor_info *eg = mc_checkpoint_find(ex, what);
            if (!eg) { if (s == 1) report(&c, what, INFINITY, 0); continue; }
            ngrad++;
            if (eg->dtype != MC_DTYPE_F32 || (size_t)eg->numel != p->n) { report(&c, what, INFINITY, 0); continue; }
            const float *r = eg->data;
            double mr = 0, worst = -1, wd = 0, wt = 0;
            for (size_t k = 0; k < p->n; k++) if (fabs(r[k]) > mr) mr = fabs(r[k]);
            double *tk = s == 1 && i < gt.n ? gt.tol[i] : NULL;
            for (size_t k = 0; k < p->n; k++) {
                double d = fabs((double)r[k] - p->g[k]), tol = grad_tol(p, k, mr);
                if (tk) tk[k] = tol;
                double ratio = d != d ? INFINITY : d / tol;
                if (ratio > worst) { worst = ratio; wd = d != d ? INFINITY : d; wt = tol; }
            }
            report(&c, what, wd, wt);
        }
        if ((st = mc_trainer_step(tr, &res, err)) != MC_OK) goto done;
        compare_state(&c, tr, ex, s, res.lr, op.eps, &gt);
        (void)ngrad;
    }
    st = MC_OK;
done:
    for (size_t i = 0; gt.tol && i < gt.n; i++) free(gt.tol[i]);
    free(gt.tol);
    if (n_pass) *n_pass = c.pass;
    if (n_fail) *n_fail = c.fail;
    free(tr_tok);
    free(ts_tok);
    mc_trainer_free(tr);
    mc_checkpoint_close(init);
    mc_checkpoint_close(ex);
    return st;
}
