/*
 * train/loss.c - the DR loss of multi-modal reinforced training (see train.h):
 * CLIP contrastive loss plus distillation from an ensemble of teachers
 * (mean over teachers of softmax(scale x teacher similarity) as the target of
 * the student's log-softmax), image-to-text and text-to-image averaged, with
 * its gradient.
 */
#include "train/loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* row softmax of s[b,b] into p (double) */
static void softmax_rows_d(const double *s, int b, double *p) {
    for (int i = 0; i < b; i++) {
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < b; j++) mx = s[i * b + j] > mx ? s[i * b + j] : mx;
        for (int j = 0; j < b; j++) { p[i * b + j] = exp(s[i * b + j] - mx); sum += p[i * b + j]; }
        for (int j = 0; j < b; j++) p[i * b + j] /= sum;
    }
}

/* target[i,j] = mean_k softmax_j(scale_k <a_i^k, c_j^k>) */
static void teacher_targets(const mc_dr_loss_params *p, const float *a, const float *c, int b,
                            double *target, double *tmp, double *tmp2) {
    int tot = 0;
    for (int k = 0; k < p->n_teachers; k++) tot += p->teacher_dims[k];
    memset(target, 0, sizeof(double) * b * b);
    int off = 0;
    for (int k = 0; k < p->n_teachers; k++) {
        int dk = p->teacher_dims[k];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < b; j++) {
                double s = 0;
                for (int q = 0; q < dk; q++)
                    s += (double)a[(size_t)i * tot + off + q] * c[(size_t)j * tot + off + q];
                tmp[i * b + j] = p->teacher_scales[k] * s;
            }
        softmax_rows_d(tmp, b, tmp2);
        for (int i = 0; i < b * b; i++) target[i] += tmp2[i] / p->n_teachers;
        off += dk;
    }
}

void mc_train_dr_loss(const mc_dr_loss_params *p, const float *img, const float *txt, int b, int e,
                      const float *t_img, const float *t_txt, float logit_scale_raw,
                      float terms[2], float *d_img, float *d_txt, float *d_scale) {
    size_t bb = (size_t)b * b;
    double *sim = calloc(bb * 9 + 1, sizeof(double));
    if (!sim) { terms[0] = terms[1] = NAN; return; }
    double *li = sim + bb, *lt = li + bb, *pi = lt + bb, *pt = pi + bb, *ti = pt + bb,
           *tt = ti + bb, *tmp = tt + bb, *tmp2 = tmp + bb;
    double scale = exp((double)logit_scale_raw);
    for (int i = 0; i < b; i++)
        for (int j = 0; j < b; j++) {
            double s = 0;
            for (int q = 0; q < e; q++) s += (double)img[(size_t)i * e + q] * txt[(size_t)j * e + q];
            sim[i * b + j] = s;
            li[i * b + j] = scale * s;
            lt[j * b + i] = scale * s;
        }
    softmax_rows_d(li, b, pi);
    softmax_rows_d(lt, b, pt);
    teacher_targets(p, t_img, t_txt, b, ti, tmp, tmp2);
    teacher_targets(p, t_txt, t_img, b, tt, tmp, tmp2);
    double ce_i = 0, ce_t = 0, kd_i = 0, kd_t = 0;
    for (int i = 0; i < b; i++)
        for (int j = 0; j < b; j++) {
            double lpi = log(pi[i * b + j]), lpt = log(pt[i * b + j]);
            if (i == j) { ce_i -= lpi; ce_t -= lpt; }
            li[i * b + j] = lpi;
            lt[i * b + j] = lpt;
        }
    for (size_t q = 0; q < bb; q++) { kd_i -= ti[q] * li[q]; kd_t -= tt[q] * lt[q]; }
    double wc = p->w_contrastive, wd = p->w_distill;
    terms[0] = (float)(wc * (ce_i + ce_t) / (2.0 * b));
    terms[1] = (float)(wd * (kd_i + kd_t) / (2.0 * b));
    /* dL/dlogits_i[i,j] = 0.5/b [ (wc + wd sum_j target) p - wc onehot - wd target ] (+ same for
     * the text side, transposed) */
    double dscale = 0;
    for (int i = 0; i < b; i++)
        for (int j = 0; j < b; j++) {
            double rti = 0, rtt = 0;
            for (int q = 0; q < b; q++) { rti += ti[i * b + q]; rtt += tt[j * b + q]; }
            double gi = (wc + wd * rti) * pi[i * b + j] - (i == j ? wc : 0) - wd * ti[i * b + j];
            double gt = (wc + wd * rtt) * pt[j * b + i] - (i == j ? wc : 0) - wd * tt[j * b + i];
            double g = (gi + gt) * 0.5 / b;   /* d loss / d logit(img i, txt j) */
            dscale += g * scale * sim[i * b + j];
            double gs = g * scale;
            if (d_img)
                for (int q = 0; q < e; q++) d_img[(size_t)i * e + q] += (float)(gs * txt[(size_t)j * e + q]);
            if (d_txt)
                for (int q = 0; q < e; q++) d_txt[(size_t)j * e + q] += (float)(gs * img[(size_t)i * e + q]);
        }
    if (d_scale) *d_scale += (float)dscale;
    free(sim);
}
